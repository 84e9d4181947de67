/* cmd_faces.c: placeholder until its part lands. */
#include <stdio.h>

#include "cli/commands.h"

int cmd_faces(cli_ctx *ctx, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "%s: 'faces' is not available in this build yet\n", ctx->prog);
    return CLI_EXIT_FAILURE;
}
