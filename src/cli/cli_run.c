/* cli_run.c: opening the engine for a command, and following a job to its end in the foreground
 * (live progress, Ctrl-C handling, the final summary and exit code).
 *
 * The loop polls two descriptors: the engine's event fd and a self-pipe written by the
 * SIGINT/SIGTERM handler, so a Ctrl-C wakes it at once. The events cover the jobs this process
 * runs (live progress between commits) and, through the engine's change feed, jobs other
 * processes run (a `facenames worker`, the app), so `jobs watch` follows a detached job as it
 * moves. The job is also read from the database every two seconds, a safety net should an event
 * be missed (its progress is used only until the first progress event: it lags the live one, and
 * must not move the line backwards). What must stay true: the first Ctrl-C only requests a cancel
 * (the job stops after its current batch and keeps its work); the second ends the process at once
 * from the signal handler itself, so it works even if the main thread is blocked (safe: the
 * database is transactional). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "facenames/tasks.h"
#include "store/library/library_store.h"
#include "util/clock.h"
#include "util/libaddr.h"
#include "util/pathenc.h"

/* mkdir -p */
static int make_dirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST) return -1;
    struct stat st;
    if (stat(buf, &st) < 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int cli_library_probe(cli_ctx *ctx, int *readonly)
{
    char db[4200];
    struct stat st;
    *readonly = 0;
    /* A library on a server: whether it exists and may be written is the server's to say when the
     * store connects. */
    if (fn_libaddr_is_url(ctx->library_dir)) return 0;
    if (stat(ctx->library_dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        cli_error(ctx, "library %s is not a folder; choose another with --library DIR",
                  ctx->library_dir);
        return -1;
    }
    snprintf(db, sizeof db, "%s/library.db", ctx->library_dir);
    if (stat(db, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return CLI_NO_LIBRARY;
        /* EACCES: the folder (or one above it) cannot be entered. */
        cli_error(ctx,
                  "configuration: the library folder %s cannot be entered (%s); fix its "
                  "permissions or choose another library with --library DIR",
                  ctx->library_dir, strerror(errno));
        return -1;
    }
    /* SQLite needs to write the folder (the -wal and -shm files) and the file to write at all. */
    if (access(ctx->library_dir, W_OK) != 0 || access(db, W_OK) != 0) *readonly = 1;
    return 0;
}

/* A library this program cannot write, in a sentence that says what still works. */
static int readonly_error(cli_ctx *ctx)
{
    return cli_error(ctx,
                     "library %s is read-only (its folder or library.db cannot be written): this "
                     "command changes the library; reading commands (photos list, faces list, "
                     "jobs list, jobs show) still work",
                     ctx->library_dir);
}

/* A library written by a newer facenames is refused before anything is enqueued on it, rather
 * than failing the job later: the jobs part checks its tables at fn_engine_open, this the
 * library's. */
static int check_library_version(cli_ctx *ctx)
{
    char path[4200], err[1024];
    fn_libaddr_db(ctx->library_dir, path, sizeof path);
    fn_store *s = NULL;
    if (fn_store_open_readonly(path, ctx->cfg.db_busy_timeout_ms, &s, err, sizeof err) < 0)
        return cli_error(ctx, "%s", err);
    int rc = fn_library_check_version(s);
    if (rc < 0) cli_error(ctx, "%s", fn_store_errmsg(s));
    fn_store_close(s);
    return rc < 0 ? -1 : 0;
}

static int open_engine(cli_ctx *ctx, int readonly, fn_engine **out)
{
    fn_engine *e = NULL;
    int rc = readonly ? fn_engine_open_readonly(ctx->library_dir, &ctx->cfg, &e)
                      : fn_engine_open(ctx->library_dir, &ctx->cfg, &e);
    if (rc < 0) {
        /* The message is per thread, so it is readable even though no engine was returned
         * (cli_engine_error would print only the code's sentence, "database error"). */
        if (rc == FN_ERR_READONLY) return readonly_error(ctx);
        return cli_error(ctx, "library %s: %s", ctx->library_dir, fn_engine_errmsg(NULL));
    }
    if (check_library_version(ctx) < 0) {
        fn_engine_close(e);
        return CLI_EXIT_FAILURE;
    }
    rc = fn_tasks_register_all(e);
    if (rc < 0) {
        cli_engine_error(ctx, e, rc, "registering job types");
        fn_engine_close(e);
        return CLI_EXIT_FAILURE;
    }
    *out = e;
    return 0;
}

int cli_open_engine(cli_ctx *ctx, fn_engine **out)
{
    *out = NULL;
    int readonly = 0;
    int p = cli_library_probe(ctx, &readonly);
    if (p < 0) return CLI_EXIT_FAILURE;
    if (p == 0 && readonly) return readonly_error(ctx);
    if (!fn_libaddr_is_url(ctx->library_dir) && make_dirs(ctx->library_dir) < 0)
        return cli_error(ctx, "cannot create library directory %s: %s", ctx->library_dir,
                         strerror(errno));
    return open_engine(ctx, 0, out);
}

int cli_open_existing(cli_ctx *ctx, int for_writing, fn_engine **out)
{
    *out = NULL;
    int readonly = 0;
    int p = cli_library_probe(ctx, &readonly);
    if (p != 0) return p < 0 ? -1 : CLI_NO_LIBRARY;
    if (readonly && for_writing) {
        readonly_error(ctx);
        return -1;
    }
    return open_engine(ctx, readonly, out) != 0 ? -1 : 0;
}

/* ---- Signals ----------------------------------------------------------------------------------
 */

static volatile sig_atomic_t interrupts;
static int sig_pipe[2] = {-1, -1};
static char hard_msg[512];
static volatile sig_atomic_t hard_len;
static volatile sig_atomic_t hard_armed;
static struct sigaction old_intr, old_term;
static int installed;

static void on_interrupt(int sig)
{
    (void)sig;
    int saved = errno;
    interrupts++;
    if (hard_armed) {
        ssize_t w = write(STDERR_FILENO, hard_msg, (size_t)hard_len);
        (void)w;
        _exit(CLI_EXIT_CANCELLED);
    }
    if (sig_pipe[1] >= 0) {
        ssize_t w = write(sig_pipe[1], "x", 1);
        (void)w;
    }
    errno = saved;
}

int cli_signals_install(void)
{
    if (sig_pipe[0] < 0 && pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) < 0) return -1;
    interrupts = 0;
    hard_armed = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_intr);
    sigaction(SIGTERM, &sa, &old_term);
    installed = 1;
    return sig_pipe[0];
}

void cli_signals_restore(void)
{
    if (!installed) return;
    hard_armed = 0;
    sigaction(SIGINT, &old_intr, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    installed = 0;
    cli_signals_count();
}

int cli_signals_count(void)
{
    char buf[64];
    while (sig_pipe[0] >= 0 && read(sig_pipe[0], buf, sizeof buf) > 0) {
    }
    return (int)interrupts;
}

void cli_signals_arm_hard_exit(const char *msg)
{
    hard_armed = 0;
    snprintf(hard_msg, sizeof hard_msg, "%s", msg);
    hard_len = (sig_atomic_t)strlen(hard_msg);
    hard_armed = 1;
}

/* ---- Following a job --------------------------------------------------------------------------
 */

static int is_final(fn_job_state s)
{
    return s == FN_JOB_CANCELLED || s == FN_JOB_COMPLETED || s == FN_JOB_FAILED;
}

static double job_seconds(const fn_job_info *j)
{
    if (j->started_at < 0) return -1;
    int64_t end = j->finished_at >= 0 ? j->finished_at : fn_wall_ms();
    return (double)(end - j->started_at) / 1000.0;
}

/* ", CODE N" after the first. */
static void code_count(const char *code, size_t n, void *arg)
{
    int *first = arg;
    printf("%s%s %zu", *first ? "" : ", ", fn_term_str(code), n);
    *first = 0;
}

static void default_summary(const fn_job_info *job)
{
    char d[32];
    printf("job %lld (%s) %s in %s\n", (long long)job->id, job->type, fn_job_state_name(job->state),
           cli_fmt_elapsed(job_seconds(job), d, sizeof d));
    cli_print_progress_lines(job->progress, stdout, "  ");
    if (job->n_errors > 0) {
        /* errors by code, in order of first appearance */
        printf("  errors: %zu (", job->n_errors);
        int first = 1;
        fn_job_errors_by_code(job, code_count, &first);
        printf("); see: facenames jobs show %lld\n", (long long)job->id);
    }
    if (job->state == FN_JOB_FAILED && job->fail_reason)
        printf("  failed: %s\n", fn_term_str(job->fail_reason));
}

int cli_print_summary(fn_engine *e, const fn_job_info *job)
{
    char *text = NULL;
    if (fn_job_summary(e, job, &text) == 0) {
        fputs(text, stdout);
        free(text);
        return 1;
    }
    default_summary(job);
    return 0;
}

/* Prints an item-error event's {item, code, message} above the progress line; a file name's
 * control characters are shown escaped (util/pathenc.h), never sent to the terminal. */
static void print_error_event(const char *json)
{
    json_t *o = json_loads(json ? json : "", 0, NULL);
    /* item and message in their text form (escaped alike), so the message's repeat of the item
     * is recognised; fn_term_str shows a text form as it shows the bytes */
    const char *item = json_string_value(json_object_get(o, "item"));
    const char *code = json_string_value(json_object_get(o, "code"));
    const char *msg = json_string_value(json_object_get(o, "message"));
    cli_term_lock();
    if (o)
        fprintf(stderr, "  error: %s%s%s: %s\n", item && *item ? fn_term_str(item) : "",
                item && *item ? ": " : "", fn_term_str(code ? code : "?"),
                fn_term_str(cli_error_message(item, msg)));
    else
        fprintf(stderr, "  error: %s\n", fn_term_str(json ? json : "?"));
    cli_term_unlock();
    json_decref(o);
}

#define MAX_PRINTED_ERRORS 10

int cli_follow_job(cli_ctx *ctx, fn_engine *e, fn_job_id id, int run_here, int json)
{
    const char *what = run_here ? "running the job" : "jobs watch";
    fn_job_info *info = NULL;
    int rc = fn_job_inspect(e, id, &info);
    if (rc < 0) return cli_engine_error(ctx, e, rc, "%s", what);
    /* the handler goes in before any worker starts: a Ctrl-C from the very first moment must
     * cancel, not kill */
    int sigfd = cli_signals_install();
    if (sigfd < 0) {
        fn_job_info_free(info);
        return cli_error(ctx, "cannot install the Ctrl-C handler: %s", strerror(errno));
    }
    if (run_here) {
        rc = fn_engine_start(e, -1);
        if (rc < 0 && rc != FN_ERR_STATE) {
            fn_job_info_free(info);
            cli_signals_restore();
            return cli_engine_error(ctx, e, rc, "starting workers");
        }
    }
    cli_progress *p = cli_progress_new(id, info->type, fn_engine_rate_unit(e, info->type),
                                       ctx->stderr_tty, info->started_at);
    if (!p) {
        fn_job_info_free(info);
        cli_signals_restore();
        return cli_error(ctx, "out of memory");
    }
    cli_progress_update(p, info->progress);
    cli_progress_state(p, info->state);
    fn_job_state state = info->state;
    char type[64];
    snprintf(type, sizeof type, "%s", info->type);
    fn_job_info_free(info);
    info = NULL;

    int efd = fn_engine_events_fd(e);
    int handled = 0, cancel_requested = 0, watch_stopped = 0, errors_printed = 0;
    int queued_hint = 0;
    uint64_t t0 = fn_mono_ns(), last_db = t0, last_event = 0;
    uint64_t db_every = 2000000000u;

    while (!is_final(state)) {
        struct pollfd pfd[2] = {{sigfd, POLLIN, 0}, {efd, POLLIN, 0}};
        int r = poll(pfd, efd >= 0 ? 2 : 1, ctx->stderr_tty ? 100 : 250);
        if (r < 0 && errno != EINTR) break;

        int seen = cli_signals_count();
        if (seen > handled) {
            handled = seen;
            if (!run_here) {
                watch_stopped = 1;
                break;
            }
            if (!cancel_requested) {
                cancel_requested = 1;
                char msg[512];
                /* the codes that clear a progress line only on a terminal, never into a pipe */
                snprintf(msg, sizeof msg,
                         "%s%s: stopped at once; committed work is kept (see: %s jobs show "
                         "%lld)\n",
                         ctx->stderr_tty ? "\r\033[K" : "", ctx->prog, ctx->prog, (long long)id);
                cli_signals_arm_hard_exit(msg);
                int crc = fn_job_cancel(e, id);
                if (crc < 0 && crc != FN_ERR_STATE) cli_engine_error(ctx, e, crc, "cancelling");
                cli_term_lock();
                fprintf(stderr,
                        "cancelling after the current batch; resume with: %s jobs resume %lld\n"
                        "(press Ctrl-C again to stop at once)\n",
                        ctx->prog, (long long)id);
                cli_term_unlock();
            }
        }

        if (efd >= 0) {
            fn_event evs[64];
            size_t n;
            do {
                n = 0;
                if (fn_engine_events_drain(e, evs, 64, &n) < 0) break;
                for (size_t i = 0; i < n; i++) {
                    if (evs[i].job == id) {
                        switch (evs[i].kind) {
                        case FN_EVENT_PROGRESS:
                            cli_progress_update(p, evs[i].json);
                            last_event = fn_mono_ns();
                            break;
                        case FN_EVENT_STATE:
                            state = evs[i].state;
                            cli_progress_state(p, state);
                            break;
                        case FN_EVENT_ERROR:
                            cli_progress_error_seen(p);
                            if (errors_printed < MAX_PRINTED_ERRORS) {
                                print_error_event(evs[i].json);
                            } else if (errors_printed == MAX_PRINTED_ERRORS) {
                                cli_term_lock();
                                fprintf(stderr, "  (more errors: see %s jobs show %lld)\n",
                                        ctx->prog, (long long)id);
                                cli_term_unlock();
                            }
                            errors_printed++;
                            break;
                        case FN_EVENT_AUDIT:
                            break;
                        }
                    }
                    fn_event_clear(&evs[i]);
                }
            } while (n == 64);
        }

        uint64_t now = fn_mono_ns();
        if (!is_final(state) && now - last_db >= db_every) {
            last_db = now;
            if (fn_job_inspect(e, id, &info) == 0) {
                /* the committed progress until the first progress event (a job that has not
                 * moved since this process started watching) */
                if (!last_event) cli_progress_update(p, info->progress);
                state = info->state;
                cli_progress_state(p, state);
                fn_job_info_free(info);
                info = NULL;
            }
            if (run_here && state == FN_JOB_QUEUED && !queued_hint && now - t0 > 5000000000u) {
                queued_hint = 1;
                cli_term_lock();
                fprintf(stderr,
                        "job %lld is still queued: waiting for a free worker (other jobs run "
                        "first, or this build has no '%s' handler)\n",
                        (long long)id, type);
                cli_term_unlock();
            }
        }
        cli_progress_tick(p, 0);
    }
    cli_signals_restore();
    cli_progress_clear(p);

    rc = fn_job_inspect(e, id, &info);
    if (rc < 0) {
        cli_progress_free(p);
        return cli_engine_error(ctx, e, rc, "%s", what);
    }
    cli_progress_update(p, info->progress);
    cli_progress_state(p, info->state);
    char line[1024], d[32];
    cli_progress_describe(p, line, sizeof line);
    cli_progress_free(p);

    if (watch_stopped) {
        fprintf(stderr, "%s #%lld: %s, %s (stopped watching)\n", info->type, (long long)id,
                fn_job_state_name(info->state), line);
        fn_job_info_free(info);
        return 130;
    }
    fprintf(stderr, "%s #%lld %s in %s: %s\n", info->type, (long long)id,
            fn_job_state_name(info->state), cli_fmt_elapsed(job_seconds(info), d, sizeof d), line);
    int own_summary = 0;
    if (json) {
        char *text = NULL;
        rc = fn_job_inspect_json(e, id, &text);
        if (rc < 0) {
            fn_job_info_free(info);
            return cli_engine_error(ctx, e, rc, "%s", what);
        }
        printf("%s\n", text);
        free(text);
    } else {
        own_summary = cli_print_summary(e, info);
    }
    /* a type-specific summary says how to continue itself */
    if (info->state == FN_JOB_CANCELLED && !own_summary)
        fprintf(stderr, "job %lld cancelled; resume with: %s jobs resume %lld\n", (long long)id,
                ctx->prog, (long long)id);
    else if (info->state == FN_JOB_FAILED)
        fprintf(stderr, "%s: job %lld failed: %s\n", ctx->prog, (long long)id,
                fn_term_str(info->fail_reason ? info->fail_reason : "no reason recorded"));
    int code = cli_job_exit_code(info);
    fn_job_info_free(info);
    fflush(stdout);
    return code;
}

int cli_run_foreground(cli_ctx *ctx, fn_engine *e, fn_job_id id, int json)
{
    return cli_follow_job(ctx, e, id, 1, json);
}

int cli_start_job(cli_ctx *ctx, fn_engine *e, const char *cmd, const char *type,
                  const struct json_t *payload, fn_priority prio, int detach, int json,
                  const char *same)
{
    char *text = json_dumps(payload, JSON_COMPACT);
    fn_job_id id = 0;
    int continued = 0;
    fn_enqueue_opts o = {
        .type = type, .payload = text, .priority = prio, .gpu_slots = -1, .mem_mb = -1};
    int rc = !text  ? FN_ERR_NOMEM
             : same ? fn_enqueue_or_continue(e, &o, &id, &continued)
                    : fn_enqueue_ex(e, &o, &id);
    free(text);
    if (rc < 0) return cli_engine_error(ctx, e, rc, "%s", cmd);
    if (detach && json) {
        char *shown = NULL;
        rc = fn_job_inspect_json(e, id, &shown);
        if (rc < 0) return cli_engine_error(ctx, e, rc, "%s", cmd);
        printf("%s\n", shown);
        free(shown);
        return CLI_EXIT_OK;
    }
    if (detach) {
        printf("%lld\n", (long long)id);
        return CLI_EXIT_OK;
    }
    if (continued == 2) {
        fprintf(stderr,
                "%s job %lld with the same %s is already running; following it instead of "
                "starting a second one (Ctrl-C stops following, the job goes on)\n",
                type, (long long)id, same);
        return cli_follow_job(ctx, e, id, 0, json);
    }
    if (continued)
        fprintf(stderr,
                "continuing %s job %lld, already queued with the same %s (from its checkpoint, "
                "if it ran before)\n",
                type, (long long)id, same);
    return cli_run_foreground(ctx, e, id, json);
}
