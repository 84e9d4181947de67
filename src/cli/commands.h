/* commands.h: what every `facenames` subcommand shares (internal to the CLI).
 *
 * main.c parses the global options (--library DIR, --config FILE, --set key=value, --help,
 * --version), resolves the library directory ($FACENAMES_LIBRARY, else $XDG_DATA_HOME/facenames,
 * else ~/.local/share/facenames) and the configuration (defaults < file < environment < --set),
 * then calls the subcommand with argv[0] = its name. A command returns the process exit code. */
#ifndef FN_CLI_COMMANDS_H
#define FN_CLI_COMMANDS_H

#include <stdio.h>

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
    char library_dir[4096]; /* resolved library directory, or a postgresql:// address */
    int library_default;    /* library_dir is the default folder (no --library, no
                               FACENAMES_LIBRARY): db.url may replace it */
    fn_config cfg;          /* effective configuration */
    int stdout_tty, stderr_tty;
    /* added by the CLI part: */
    char config_path[4096]; /* the configuration file that was read, "" if none */
    int verbose;            /* -v count: 1 logs info, 2 debug */
} cli_ctx;

/* Opens the engine for ctx->library_dir with ctx->cfg, creating the library if needed, and
 * registers every job type (fn_tasks_register_all). For commands that add work (ingest, worker).
 * A read-only library, a folder that cannot be entered, or a library written by a newer facenames
 * is refused up front. On failure prints the reason to stderr and returns nonzero. */
int cli_open_engine(cli_ctx *ctx, fn_engine **out);

/* What cli_library_probe and cli_open_existing return when there is no library (no library.db)
 * in ctx->library_dir: nothing was printed and nothing created; the caller says so. */
#define CLI_NO_LIBRARY 1

/* Is there a library in ctx->library_dir? 0 (and *readonly = 1 when this process cannot write
 * it), CLI_NO_LIBRARY, or -1 after printing that the folder cannot be entered (a configuration
 * error). Creates nothing. */
int cli_library_probe(cli_ctx *ctx, int *readonly);

/* Opens the engine on an existing library without creating anything. Commands that only read pass
 * for_writing = 0 and get a read-only engine when the library cannot be written; commands that
 * change an existing library's jobs (cancel, resume, retry, skip) pass 1 and are refused on a
 * read-only library. Returns 0, CLI_NO_LIBRARY, or -1 after printing why. */
int cli_open_existing(cli_ctx *ctx, int for_writing, fn_engine **out);

/* Runs job `id` in the foreground on this process's workers with live progress on stderr (a
 * redrawn line on a terminal, plain periodic lines otherwise), until it ends. First Ctrl-C: cancel
 * after the current batch and print how to resume; second: stop at once (still safe). At the end
 * it prints the job type's summary (fn_job_summary; the counters when the type has none), or with
 * json != 0 the final job as `jobs show --json` does. Returns the job's exit code. */
int cli_run_foreground(cli_ctx *ctx, fn_engine *e, fn_job_id id, int json);

struct json_t;
/* How every command that adds work starts its job (of `type`, with the JSON `payload` the
 * command built, priority `prio`): enqueue it, then print the queued job (`detach`; as `jobs show
 * --json` prints it with `json`) or run it in the foreground (cli_run_foreground). With `same`
 * (words for what makes two such jobs the same, e.g. "paths and settings") an identical queued
 * job is continued rather than a second added, and an identical running one is followed (two
 * would race to write the same rows); NULL always adds a job. Messages name `cmd`. Returns the
 * exit code; the caller still owns `e`. */
int cli_start_job(cli_ctx *ctx, fn_engine *e, const char *cmd, const char *type,
                  const struct json_t *payload, fn_priority prio, int detach, int json,
                  const char *same);

/* The subcommands. */
/* jobs list|show|cancel|resume|retry|watch|log */
int cmd_jobs(cli_ctx *ctx, int argc, char **argv);
int cmd_worker(cli_ctx *ctx, int argc, char **argv); /* worker [--threads N] [--until-idle] */
int cmd_detect(cli_ctx *ctx, int argc, char **argv); /* detect IMAGE... (vision part) */
int cmd_ingest(cli_ctx *ctx, int argc, char **argv); /* ingest PATH... (ingest part) */
/* cluster [--full] (cluster part) */
int cmd_cluster(cli_ctx *ctx, int argc, char **argv);
int cmd_photos(cli_ctx *ctx, int argc, char **argv); /* photos list|show (ingest part) */
int cmd_roots(cli_ctx *ctx, int argc, char **argv);  /* roots list|add|map */
int cmd_faces(cli_ctx *ctx, int argc, char **argv);  /* faces list (ingest part), assign... */
int cmd_config(cli_ctx *ctx, int argc, char **argv); /* config [show|path] (CLI part) */
/* people list|show|rename|merge|split|delete|sheet (people part) */
int cmd_people(cli_ctx *ctx, int argc, char **argv);
int cmd_suggestions(cli_ctx *ctx, int argc, char **argv); /* suggestions list|accept|reject */
int cmd_undo(cli_ctx *ctx, int argc, char **argv);        /* undo [AUDIT_ID] */
int cmd_audit(cli_ctx *ctx, int argc, char **argv);       /* audit list */
/* predict [--k N] [--threshold X] [--auto-accept] [--detach] [--json] (predict part) */
int cmd_predict(cli_ctx *ctx, int argc, char **argv);
/* `--version`: version, revision, library versions, model files and their checksums (always 0). */
int cli_print_version(FILE *out);
int cmd_repair(cli_ctx *ctx, int argc, char **argv); /* repair (cmd_interop.c) */
int cmd_export(cli_ctx *ctx, int argc, char **argv); /* export --format F (cmd_interop.c) */
int cmd_import(cli_ctx *ctx, int argc, char **argv); /* import FILE|DIR (cmd_interop.c) */

/* Shared helpers (option parsing, errors, tables, progress line): */
#include "cli/cli_util.h"

#endif
