/* cmd_config.c: `facenames config [show|path]`: the effective configuration (after the file, the
 * environment and --set) in the file's own `key = value` format, so it can be saved as a starting
 * facenames.conf (with a comment saying what vision.precision = auto runs on this CPU); and which
 * file, if any, was read. */
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "facenames/vision.h"
#include "util/libaddr.h"

static const char config_usage[] =
    "usage: facenames config [show]   the effective configuration, as `key = value` lines\n"
    "       facenames config path     the configuration file that was read (none: nothing)\n"
    "\n"
    "Sources, later ones winning: defaults, the file (--config FILE, else $FACENAMES_CONFIG,\n"
    "else <library>/facenames.conf), FACENAMES_<KEY> environment variables (workers.cpu_max:\n"
    "FACENAMES_WORKERS_CPU_MAX), --set KEY=VALUE. Keys: docs/configuration.md.\n";

int cmd_config(cli_ctx *ctx, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "show";
    if (cli_is_help(sub)) {
        fputs(config_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (argc > 2) return cli_usage_error(ctx, "config", "unexpected argument '%s'", argv[2]);
    if (strcmp(sub, "path") == 0) {
        if (ctx->config_path[0]) printf("%s\n", ctx->config_path);
        return CLI_EXIT_OK;
    }
    if (strcmp(sub, "show") != 0)
        return cli_usage_error(ctx, "config", "unknown subcommand '%s' (show, path)", sub);
    char *text = fn_config_format(&ctx->cfg);
    if (!text) return cli_error(ctx, "out of memory");
    /* an address's password is not shown, in the library line or in db.url */
    char shown[4096];
    fn_libaddr_display(ctx->library_dir, shown, sizeof shown);
    fn_libaddr_redact(ctx->cfg.db_url, text, strlen(text) + 1);
    printf("# library: %s\n# file: %s\n%s", shown,
           ctx->config_path[0] ? ctx->config_path : "(none)", text);
    if (!strcmp(ctx->cfg.vision_precision, "auto")) /* what it means here (the CPU decides) */
        printf("# vision.precision = auto runs %s on this CPU\n",
               fn_vision_precision_name(fn_vision_precision_auto()));
    free(text);
    return CLI_EXIT_OK;
}
