/* cmd_detect.c: placeholder until its part lands. */
#include <stdio.h>

#include "cli/commands.h"

int cmd_detect(cli_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "%s: 'detect' is not available in this build yet\n", ctx->prog);
    return CLI_EXIT_FAILURE;
}
