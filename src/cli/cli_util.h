/* cli_util.h: helpers every `facenames` command may use: option matching, number and job-id
 * parsing, error messages in one format, aligned tables, human numbers and times, and the live
 * progress line. Internal to the CLI; nothing here is part of libfacenames. */
#ifndef FN_CLI_UTIL_H
#define FN_CLI_UTIL_H

#include <stdint.h>
#include <stdio.h>

#include "cli/commands.h"
#include "util/fmt.h"

/* ---- Arguments (cli_args.c) -------------------------------------------------------------------
 */

/* Matches argv[*i] against option `name` ("--state") taking a value, given as "--state X" or
 * "--state=X". Returns 1 and sets *value (advancing *i past a separate value), 0 if argv[*i] is
 * another argument, or -1 when the value is missing (message printed, return CLI_EXIT_USAGE). */
int cli_opt_value(cli_ctx *ctx, const char *cmd, char **argv, int argc, int *i, const char *name,
                  const char **value);

/* Whether argv[i] is -h or --help. */
int cli_is_help(const char *arg);

/* Parses a whole number in [min, max]. Returns 0, or -1 (nothing printed). */
int cli_parse_ll(const char *s, long long min, long long max, long long *out);

/* Parses a job id ("12" or "#12"). Returns 0, or prints a usage error and returns -1. */
int cli_parse_job_id(cli_ctx *ctx, const char *cmd, const char *s, fn_job_id *out);

/* Prints "facenames CMD: <message>" and a hint to run `facenames CMD --help` on stderr; returns
 * CLI_EXIT_USAGE. */
int cli_usage_error(cli_ctx *ctx, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prints "facenames: <what>: <detail>" where detail is the engine's message for the failing call
 * (or fn_strerror(rc) when it has none). Returns CLI_EXIT_FAILURE. `e` may be NULL. */
int cli_engine_error(cli_ctx *ctx, fn_engine *e, int rc, const char *what_fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prints "facenames: <message>" on stderr (clearing a progress line first). Returns
 * CLI_EXIT_FAILURE. */
int cli_error(cli_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- Output (cli_format.c) --------------------------------------------------------------------
 */

/* Counts, durations and sizes: fn_fmt_count, fn_fmt_duration, fn_fmt_bytes (util/fmt.h). */
/* An elapsed time: "0.24 s", "12.5 s" under a minute, else as fn_fmt_duration. Returns buf. */
char *cli_fmt_elapsed(double seconds, char *buf, size_t len);
/* Epoch ms as "2026-11-28 20:01:14" in local time; ms < 0: "-". Returns buf. */
char *cli_fmt_time(int64_t ms, char *buf, size_t len);
/* Epoch ms relative to now: "12 s ago", "5 min ago", "3 h ago", else the local date
 * "2026-11-28"; ms < 0: "-". Returns buf. */
char *cli_fmt_ago(int64_t ms, char *buf, size_t len);
/* Epoch ms as ISO-8601 UTC "2026-11-28T20:01:14.123Z"; ms < 0: "-". Returns buf. */
char *cli_fmt_iso(int64_t ms, char *buf, size_t len);

/* An aligned text table: add a header row and data rows (cells copied), then print. Columns whose
 * `right` flag is set are right-aligned (numbers). */
typedef struct cli_table cli_table;
cli_table *cli_table_new(int ncols, const char *const *headers, const int *right);
void cli_table_add(cli_table *t, const char *const *cells);
void cli_table_print(const cli_table *t, FILE *out);
void cli_table_free(cli_table *t);

/* An error message without a leading "<item>: " when it repeats the item shown beside it. */
const char *cli_error_message(const char *item, const char *message);

/* The job's exit code: completed 0 (4 with item errors), cancelled 3, failed 1, unfinished 1. */
int cli_job_exit_code(const fn_job_info *job);

/* Prints a job's counters/histograms (its progress JSON) as "  name  value" lines, and its errors
 * grouped by code, to `out`. Used by `jobs show` and the default end-of-run summary. */
void cli_print_progress_lines(const char *progress_json, FILE *out, const char *indent);

/* ---- Reading the library directly (cli_library.c) ----------------------------------------------
 * For the commands that read the library without the engine (`photos`, `faces`); the store types
 * are only named here, so the other commands need not include the store's headers. */
struct fn_store;
struct fn_library_reader;
struct fn_photo_row;
struct json_t;

/* Opens <library>/library.db (migrating it): 0 and *out when opened, 1 (*out NULL) when there is
 * no library yet, -1 on error (message printed). Close *out with fn_store_close. */
int cli_library_open(cli_ctx *ctx, struct fn_store **out);

/* Looks up photo `which`, a photo id or a path (made absolute when it exists; when no photo has
 * it as given, its \xHH and \\ escapes decoded, as JSON prints a path that is not UTF-8), into
 * *row: the store's fn_library_photo_by_id/_by_path code (FN_ERR_NOT_FOUND when there is none). */
int cli_library_photo(struct fn_library_reader *r, const char *which, struct fn_photo_row *row);

/* Matches "--limit N" (N >= 1) as cli_opt_value does: 1 and sets *limit, 0 if argv[*i] is another
 * argument, -1 on a usage error (message printed, return CLI_EXIT_USAGE). */
int cli_opt_limit(cli_ctx *ctx, const char *cmd, char **argv, int argc, int *i, size_t *limit);
/* The same for `--priority interactive|normal|background` into *prio. */
int cli_opt_priority(cli_ctx *ctx, const char *cmd, char **argv, int argc, int *i,
                     fn_priority *prio);

/* A list printed as a table (rows added with cli_list_row, printed at the end) or, with json, as a
 * JSON array streamed row by row (cli_list_json). n counts the rows. */
typedef struct cli_list {
    int json, first;
    size_t n;
    cli_table *t;
} cli_list;
void cli_list_begin(cli_list *l, int json, int ncols, const char *const *headers, const int *right);
/* Prints `o` (json_dumps flags) as the next element and releases it. */
void cli_list_json(cli_list *l, struct json_t *o, size_t flags);
void cli_list_row(cli_list *l, const char *const *cells);
/* Ends the array, or prints the table, or "no <what>" (" (the library is empty)" with
 * no_library) when there was no row; frees the table. */
void cli_list_end(cli_list *l, const char *what, int no_library);

/* ---- Naming through facenames/people.h (cli_people.c) -------------------------------------------
 * For `people`, `faces assign|unassign|ignore|move`, `suggestions`, `undo` and `audit`. */
struct fn_library;
struct fn_person;

/* Opens the library with fn_library_open, the actor "cli:<login>": 0 and *out, CLI_NO_LIBRARY when
 * there is none (only when !for_writing; nothing printed), or -1 after printing why (a write
 * command on a read-only library or where there is no library). Close with fn_library_close. */
int cli_people_open(cli_ctx *ctx, int for_writing, struct fn_library **out);
/* Prints the handle's message for a failed call (fn_strerror(rc) when it has none); returns
 * CLI_EXIT_FAILURE. */
int cli_people_error(cli_ctx *ctx, struct fn_library *lib, int rc);
/* Parses n face ids; -1 after a usage error naming the bad one. */
int cli_parse_face_ids(cli_ctx *ctx, const char *cmd, char **args, int n, int64_t *out);
/* Finds a person by id or name (fn_people_find); -1 after printing why not. */
int cli_find_person(cli_ctx *ctx, struct fn_library *lib, const char *which, struct fn_person *out);
/* Prints what audit entry `audit_id` did: its summary and how to undo it, or with json one object
 * {"audit", "action", "faces", "summary"} merged into `extra` (taken; may be NULL). audit_id 0:
 * "nothing to change". Returns CLI_EXIT_OK. */
int cli_people_done(cli_ctx *ctx, struct fn_library *lib, int64_t audit_id, int json,
                    struct json_t *extra);

/* ---- Terminal output shared with a progress line (cli_progress.c) -----------------------------
 */

/* Locks stderr against the progress line: clears the line if one is drawn, so the caller's text
 * lands on a clean line; the line is redrawn at the next tick. Pair with cli_term_unlock. Any
 * thread (the library's log handler runs on worker threads). */
void cli_term_lock(void);
void cli_term_unlock(void);

/* Renders the progress of one job from its progress JSON ({"counters": {...}, ...}) as a redrawn
 * line on a terminal or as plain periodic lines otherwise. Used by the foreground runner and by
 * `jobs watch`. Only one progress line exists at a time. */
typedef struct cli_progress cli_progress;
/* rate_unit: what the rate counts (fn_engine_rate_unit: "photos"); NULL or "items": the noun of
 * the job's X_done/X_total counters. */
cli_progress *cli_progress_new(fn_job_id id, const char *type, const char *rate_unit, int tty,
                               int64_t started_at_ms);
void cli_progress_update(cli_progress *p, const char *progress_json);
void cli_progress_state(cli_progress *p, fn_job_state state);
/* Counts an item error reported by an event (used when the counters carry no "errors"). */
void cli_progress_error_seen(cli_progress *p);
/* Draws if due (10 Hz on a terminal; every few seconds otherwise), or now when force is set. */
void cli_progress_tick(cli_progress *p, int force);
/* Removes the line from the terminal (a final plain line is the caller's business). */
void cli_progress_clear(cli_progress *p);
/* Formats the progress as one line without bar ("1,234/5,000 files, 2,345 faces, ..."). */
void cli_progress_describe(cli_progress *p, char *buf, size_t len);
void cli_progress_free(cli_progress *p);

/* Follows job `id` until it ends, drawing its progress, and prints the end as cli_run_foreground
 * does. With run_here the engine's workers are started and the first Ctrl-C cancels the job;
 * without (`jobs watch`), the job runs elsewhere (a `facenames worker`, the app), progress is read
 * from the database, and Ctrl-C only stops watching (exit 130). */
int cli_follow_job(cli_ctx *ctx, fn_engine *e, fn_job_id id, int run_here, int json);

/* Prints the job type's summary (fn_job_summary), or the default one (state, duration, counters,
 * errors by code) when the type has none, to stdout. 1 when the type's own summary was printed. */
int cli_print_summary(fn_engine *e, const fn_job_info *job);

/* Ctrl-C and SIGTERM. install returns a descriptor to poll (readable after a signal) or -1;
 * count drains it and returns how many signals arrived since install; after arm_hard_exit the
 * next signal prints `msg` and ends the process at once (from the handler, so it works even when
 * the main thread is blocked). restore puts back the previous handlers. Main thread only. */
int cli_signals_install(void);
int cli_signals_count(void);
void cli_signals_arm_hard_exit(const char *msg);
void cli_signals_restore(void);

/* Installs a library log handler printing warnings and errors (verbosity 1: info, 2: debug) to
 * stderr as "facenames: warning: ...", coordinated with the progress line. */
void cli_install_log(int verbosity);

#endif
