/* commands.h: what every `facenames` subcommand shares (internal to the CLI).
 *
 * main.c parses the global options (--library DIR, --config FILE, --set key=value, --help,
 * --version), resolves the library directory ($FACENAMES_LIBRARY, else $XDG_DATA_HOME/facenames,
 * else ~/.local/share/facenames) and the configuration (defaults < file < environment < --set),
 * then calls the subcommand with argv[0] = its name. A command returns the process exit code. */
#ifndef FN_CLI_COMMANDS_H
#define FN_CLI_COMMANDS_H

#include "facenames/config.h"
#include "facenames/jobs.h"

enum cli_exit {
    CLI_EXIT_OK = 0,        /* done; for jobs: completed without item errors */
    CLI_EXIT_FAILURE = 1,   /* an error (message on stderr), or the job failed */
    CLI_EXIT_USAGE = 2,     /* bad command line */
    CLI_EXIT_CANCELLED = 3, /* the job was cancelled (Ctrl-C or jobs cancel) */
    CLI_EXIT_ITEMS = 4,     /* the job completed but some items had errors */
};

typedef struct cli_ctx {
    const char *prog;       /* argv[0] of the program, for messages */
    char library_dir[4096]; /* resolved library directory */
    fn_config cfg;          /* effective configuration */
    int stdout_tty, stderr_tty;
    /* added by the CLI part: */
    char config_path[4096]; /* the configuration file that was read, "" if none */
    int verbose;            /* -v count: 1 logs info, 2 debug */
} cli_ctx;

/* Opens the engine for ctx->library_dir with ctx->cfg and registers every job type
 * (fn_tasks_register_all). On failure prints the reason to stderr and returns nonzero. */
int cli_open_engine(cli_ctx *ctx, fn_engine **out);

/* Runs job `id` in the foreground on this process's workers with live progress on stderr (a
 * redrawn line on a terminal, plain periodic lines otherwise), until it ends. First Ctrl-C: cancel
 * after the current batch and print how to resume; second: stop at once (still safe). At the end
 * it prints the job type's summary (fn_job_summary; the counters when the type has none), or with
 * json != 0 the final job as `jobs show --json` does. Returns the job's exit code. */
int cli_run_foreground(cli_ctx *ctx, fn_engine *e, fn_job_id id, int json);

/* The subcommands. */
/* jobs list|show|cancel|resume|retry|watch|log */
int cmd_jobs(cli_ctx *ctx, int argc, char **argv);
int cmd_worker(cli_ctx *ctx, int argc, char **argv); /* worker [--threads N] [--until-idle] */
int cmd_detect(cli_ctx *ctx, int argc, char **argv); /* detect IMAGE... (vision part) */
int cmd_ingest(cli_ctx *ctx, int argc, char **argv); /* ingest PATH... (ingest part) */
int cmd_photos(cli_ctx *ctx, int argc, char **argv); /* photos list|show (ingest part) */
int cmd_faces(cli_ctx *ctx, int argc, char **argv);  /* faces list (ingest part) */
int cmd_config(cli_ctx *ctx, int argc, char **argv); /* config [show|path] (CLI part) */

/* Shared helpers (option parsing, errors, tables, progress line): */
#include "cli/cli_util.h"

#endif
