/* test_run.c: the CLI's foreground job runner (cli_run_foreground) and the jobs commands, in
 * process, against a temporary library with a test handler ("cli_test") whose payload says how
 * many items to do, which ones fail, when the job fails, and when to "press Ctrl-C" (a SIGINT to
 * the process). stdout and stderr are redirected to files and checked.
 *
 * Checked: exit codes (0 completed, 4 item errors, 1 failed, 3 cancelled), plain progress lines
 * when stderr is not a terminal and a redrawn line with bar, rate and ETA when it is, item errors
 * printed as they happen, the first Ctrl-C cancelling after the current batch with the resume hint,
 * the second stopping the process at once, --json output, and `jobs show/list/cancel/resume/log`
 * on real jobs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"

static char tmp[256];
static int lib_no;

/* ---- the test handler -------------------------------------------------------------------------
 */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int test_run(fn_job_ctx *ctx, void *user)
{
    (void)user;
    json_t *p = json_loads(fn_job_payload(ctx), 0, NULL);
    int n = (int)json_integer_value(json_object_get(p, "n"));
    int error_every = (int)json_integer_value(json_object_get(p, "error_every"));
    int fail_at = (int)json_integer_value(json_object_get(p, "fail_at"));
    int sigint_at = (int)json_integer_value(json_object_get(p, "sigint_at"));
    int sigint2_at = (int)json_integer_value(json_object_get(p, "sigint2_at"));
    int ms = (int)json_integer_value(json_object_get(p, "sleep_ms"));
    int ignore_stop = json_is_true(json_object_get(p, "ignore_stop"));
    json_decref(p);
    int start = 0;
    const char *cp = fn_job_checkpoint(ctx);
    if (cp) {
        json_t *c = json_loads(cp, 0, NULL);
        start = (int)json_integer_value(json_object_get(c, "next_index"));
        json_decref(c);
    }
    int done = fn_job_counter(ctx, "items_done");
    int total = fn_job_counter(ctx, "items_total");
    int found = fn_job_counter(ctx, "widgets_found");
    fn_job_set(ctx, total, n);
    fn_job_set(ctx, done, start);
    for (int i = start; i < n; i++) {
        if (ms) sleep_ms(ms);
        if (fail_at && i + 1 == fail_at) {
            fn_job_fail_reason(ctx, "boom at item %d", i);
            return FN_ERR_IO;
        }
        if (error_every && (i + 1) % error_every == 0) {
            char item[32];
            snprintf(item, sizeof item, "item%d", i);
            fn_job_error_add(ctx, item, "corrupt", "cannot read it", FN_RES_PENDING);
        }
        fn_job_add(ctx, done, 1);
        fn_job_add(ctx, found, 2);
        char ck[64];
        snprintf(ck, sizeof ck, "{\"next_index\": %d}", i + 1);
        fn_job_set_checkpoint(ctx, ck);
        int rc = fn_job_commit(ctx, NULL, NULL);
        if (rc < 0) return rc;
        if ((sigint_at && i + 1 == sigint_at) || (sigint2_at && i + 1 == sigint2_at))
            kill(getpid(), SIGINT); /* the user presses Ctrl-C */
        if (ignore_stop) continue;
        fn_stop s = fn_job_should_stop(ctx);
        if (s == FN_STOP_CANCEL) return FN_ERR_CANCELLED;
        if (s == FN_STOP_YIELD) return FN_ERR_YIELDED;
    }
    return 0;
}

/* ---- plumbing ---------------------------------------------------------------------------------
 */

static void new_ctx(cli_ctx *ctx, int tty)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->prog = "facenames";
    snprintf(ctx->library_dir, sizeof ctx->library_dir, "%s/lib%d", tmp, ++lib_no);
    fn_config_defaults(&ctx->cfg);
    ctx->cfg.workers_cpu_max = 2;
    ctx->stderr_tty = tty;
}

static fn_engine *open_engine(cli_ctx *ctx)
{
    mkdir(ctx->library_dir, 0755);
    fn_engine *e = NULL;
    int rc = fn_engine_open(ctx->library_dir, &ctx->cfg, &e);
    if (rc < 0) print_error("open: %s\n", fn_engine_errmsg(e));
    assert_int_equal(rc, 0);
    fn_handler h = {.type = "cli_test", .run = test_run};
    assert_int_equal(fn_engine_register(e, &h), 0);
    return e;
}

struct captured {
    int code;
    char *out, *err;
};

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = '\0';
    fclose(f);
    return b;
}

static int saved_out = -1, saved_err = -1;

static void capture_begin(void)
{
    char p[300];
    fflush(stdout);
    fflush(stderr);
    saved_out = dup(1);
    saved_err = dup(2);
    snprintf(p, sizeof p, "%s/out", tmp);
    int o = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    snprintf(p, sizeof p, "%s/err", tmp);
    int e = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(o, 1);
    dup2(e, 2);
    close(o);
    close(e);
}

static void capture_end(struct captured *c)
{
    char p[300];
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    snprintf(p, sizeof p, "%s/out", tmp);
    c->out = slurp(p);
    snprintf(p, sizeof p, "%s/err", tmp);
    c->err = slurp(p);
    if (getenv("FN_TEST_VERBOSE")) /* to look at the output while developing */
        fprintf(stderr, "--- stdout\n%s--- stderr\n%s---\n", c->out, c->err);
}

static void captured_free(struct captured *c)
{
    free(c->out);
    free(c->err);
}

#define CHECK(c, cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            print_error("check failed: %s\nexit %d\n--- stdout\n%s--- stderr\n%s---\n", #cond,     \
                        (c).code, (c).out, (c).err);                                               \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* Enqueues a cli_test job with `payload` and runs it in the foreground. */
static struct captured run_job(cli_ctx *ctx, fn_engine *e, const char *payload, int json,
                               fn_job_id *id_out)
{
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "cli_test", payload, FN_PRIO_INTERACTIVE, &id), 0);
    if (id_out) *id_out = id;
    struct captured c;
    capture_begin();
    c.code = cli_run_foreground(ctx, e, id, json);
    capture_end(&c);
    return c;
}

/* ---- tests ------------------------------------------------------------------------------------
 */

static void test_completes(void **state)
{
    (void)state;
    cli_ctx ctx;
    new_ctx(&ctx, 0);
    setenv("FACENAMES_PROGRESS_INTERVAL_MS", "50", 1);
    fn_engine *e = open_engine(&ctx);
    fn_job_id id;
    struct captured c = run_job(&ctx, e, "{\"n\": 12, \"sleep_ms\": 20}", 0, &id);
    CHECK(c, c.code == CLI_EXIT_OK);
    char want[128];
    /* plain periodic lines: stderr is not a terminal */
    snprintf(want, sizeof want, "cli_test #%lld: ", (long long)id);
    CHECK(c, strstr(c.err, want));
    CHECK(c, strstr(c.err, "/12 items"));
    CHECK(c, !strchr(c.err, '\r'));
    snprintf(want, sizeof want, "cli_test #%lld completed in ", (long long)id);
    CHECK(c, strstr(c.err, want));
    CHECK(c, strstr(c.err, "12/12 items, 24 widgets"));
    /* the default summary */
    snprintf(want, sizeof want, "job %lld (cli_test) completed in ", (long long)id);
    CHECK(c, strstr(c.out, want));
    CHECK(c, strstr(c.out, "items_done"));
    captured_free(&c);
    fn_engine_close(e);
    unsetenv("FACENAMES_PROGRESS_INTERVAL_MS");
}

static void test_item_errors_and_json(void **state)
{
    (void)state;
    cli_ctx ctx;
    new_ctx(&ctx, 0);
    fn_engine *e = open_engine(&ctx);
    fn_job_id id;
    struct captured c = run_job(&ctx, e, "{\"n\": 9, \"error_every\": 3}", 1, &id);
    CHECK(c, c.code == CLI_EXIT_ITEMS);
    CHECK(c, strstr(c.err, "error: item2: corrupt: cannot read it"));
    CHECK(c, strstr(c.err, "error: item8: corrupt"));
    json_t *j = json_loads(c.out, 0, NULL);
    CHECK(c, j != NULL);
    CHECK(c, json_integer_value(json_object_get(j, "id")) == id);
    CHECK(c, strcmp(json_string_value(json_object_get(j, "state")), "completed") == 0);
    CHECK(c, json_array_size(json_object_get(j, "errors")) == 3);
    json_decref(j);
    captured_free(&c);
    fn_engine_close(e);
}

static void test_fails(void **state)
{
    (void)state;
    cli_ctx ctx;
    new_ctx(&ctx, 0);
    fn_engine *e = open_engine(&ctx);
    fn_job_id id;
    struct captured c = run_job(&ctx, e, "{\"n\": 9, \"fail_at\": 4}", 0, &id);
    CHECK(c, c.code == CLI_EXIT_FAILURE);
    CHECK(c, strstr(c.err, "failed: boom at item 3"));
    captured_free(&c);
    fn_engine_close(e);
}

static void test_tty_line(void **state)
{
    (void)state;
    cli_ctx ctx;
    new_ctx(&ctx, 1);
    fn_engine *e = open_engine(&ctx);
    struct captured c = run_job(&ctx, e, "{\"n\": 25, \"sleep_ms\": 60}", 0, NULL);
    CHECK(c, c.code == CLI_EXIT_OK);
    CHECK(c, strstr(c.err, "\r"));
    CHECK(c, strstr(c.err, "\033[K"));
    CHECK(c, strstr(c.err, "] "));        /* the bar */
    CHECK(c, strstr(c.err, "/25 items")); /* the main pair */
    CHECK(c, strstr(c.err, " items/s"));  /* the rate */
    CHECK(c, strstr(c.err, "ETA "));      /* remaining time */
    CHECK(c, strstr(c.err, "widgets  ")); /* other counters, "_found" dropped */
    captured_free(&c);
    fn_engine_close(e);
}

/* first Ctrl-C: cancel after the current batch; the committed items stay */
static void test_ctrl_c_cancels(void **state)
{
    (void)state;
    cli_ctx ctx;
    new_ctx(&ctx, 0);
    fn_engine *e = open_engine(&ctx);
    fn_job_id id;
    struct captured c = run_job(&ctx, e, "{\"n\": 200, \"sleep_ms\": 5, \"sigint_at\": 3}", 0, &id);
    CHECK(c, c.code == CLI_EXIT_CANCELLED);
    char want[160];
    snprintf(want, sizeof want,
             "cancelling after the current batch; resume with: facenames jobs resume %lld",
             (long long)id);
    CHECK(c, strstr(c.err, want));
    fn_job_info *info;
    assert_int_equal(fn_job_inspect(e, id, &info), 0);
    assert_int_equal(info->state, FN_JOB_CANCELLED);
    json_t *p = json_loads(info->progress, 0, NULL);
    json_int_t done =
        json_integer_value(json_object_get(json_object_get(p, "counters"), "items_done"));
    json_decref(p);
    fn_job_info_free(info);
    CHECK(c, done >= 3 && done < 200);
    captured_free(&c);

    /* resume it through the CLI (foreground): it finishes the remaining items */
    char idtext[32];
    snprintf(idtext, sizeof idtext, "%lld", (long long)id);
    fn_engine_close(e);
    e = open_engine(&ctx);
    /* cmd_jobs opens its own engine with the built-in types only, so run the resume by hand: */
    fn_job_id new_id;
    assert_int_equal(fn_job_resume(e, id, &new_id), 0);
    capture_begin();
    c.code = cli_run_foreground(&ctx, e, new_id, 0);
    capture_end(&c);
    CHECK(c, c.code == CLI_EXIT_OK);
    CHECK(c, strstr(c.out, "items_done"));
    assert_int_equal(fn_job_inspect(e, new_id, &info), 0);
    assert_int_equal(info->parent, id);
    p = json_loads(info->progress, 0, NULL);
    done = json_integer_value(json_object_get(json_object_get(p, "counters"), "items_done"));
    json_decref(p);
    fn_job_info_free(info);
    CHECK(c, done == 200);
    captured_free(&c);
    fn_engine_close(e);
}

/* second Ctrl-C: the process stops at once (in a child, since it exits) */
static void test_second_ctrl_c_stops(void **state)
{
    (void)state;
    cli_ctx ctx;
    new_ctx(&ctx, 0);
    char errp[300];
    snprintf(errp, sizeof errp, "%s/child_err", tmp);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        fn_engine *e = NULL;
        mkdir(ctx.library_dir, 0755);
        if (fn_engine_open(ctx.library_dir, &ctx.cfg, &e) < 0) _exit(100);
        fn_handler h = {.type = "cli_test", .run = test_run};
        fn_engine_register(e, &h);
        fn_job_id id;
        /* the job ignores stop requests: only the hard stop can end it before its 20 items */
        if (fn_enqueue(e, "cli_test",
                       "{\"n\": 20, \"sleep_ms\": 100, \"sigint_at\": 1, "
                       "\"sigint2_at\": 3, \"ignore_stop\": true}",
                       FN_PRIO_NORMAL, &id) < 0)
            _exit(101);
        int code = cli_run_foreground(&ctx, e, id, 0);
        _exit(50 + code); /* not reached when the second Ctrl-C works */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    char *err = slurp(errp);
    struct captured c = {WIFEXITED(status) ? WEXITSTATUS(status) : -1, strdup(""), err};
    CHECK(c, c.code == CLI_EXIT_CANCELLED);
    CHECK(c, strstr(c.err, "cancelling after the current batch"));
    CHECK(c, strstr(c.err, "facenames: stopped at once; committed work is kept"));
    captured_free(&c);
}

/* the jobs commands on real jobs (enqueued with a type the CLI build has no handler for) */
static void test_jobs_commands(void **state)
{
    (void)state;
    cli_ctx ctx;
    new_ctx(&ctx, 0);
    fn_engine *e = open_engine(&ctx);
    fn_job_id a, b;
    assert_int_equal(fn_enqueue(e, "cli_test", "{\"n\": 3}", FN_PRIO_NORMAL, &a), 0);
    assert_int_equal(
        fn_enqueue(e, "cli_test", "{\"n\": 5, \"error_every\": 2}", FN_PRIO_BACKGROUND, &b), 0);
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    fn_job_id q;
    assert_int_equal(fn_enqueue(e, "other_type", NULL, FN_PRIO_NORMAL, &q), 0);
    fn_engine_close(e);

    char ids[3][32];
    snprintf(ids[0], 32, "%lld", (long long)a);
    snprintf(ids[1], 32, "%lld", (long long)b);
    snprintf(ids[2], 32, "%lld", (long long)q);
    struct captured c;

    capture_begin();
    c.code = cmd_jobs(&ctx, 2, (char *[]){"jobs", "list", NULL});
    capture_end(&c);
    CHECK(c, c.code == 0);
    CHECK(c, strstr(c.out, "ID  TYPE"));
    CHECK(c, strstr(c.out, "other_type"));
    CHECK(c, strstr(c.out, "completed"));
    CHECK(c, strstr(c.out, "3/3 items"));
    CHECK(c, strstr(c.out, "queued"));
    captured_free(&c);

    capture_begin();
    c.code = cmd_jobs(&ctx, 4, (char *[]){"jobs", "list", "--state", "queued", NULL});
    capture_end(&c);
    CHECK(c, c.code == 0 && strstr(c.out, "other_type") && !strstr(c.out, "cli_test"));
    captured_free(&c);

    capture_begin();
    c.code = cmd_jobs(&ctx, 3, (char *[]){"jobs", "list", "--json", NULL});
    capture_end(&c);
    json_t *arr = json_loads(c.out, 0, NULL);
    CHECK(c, c.code == 0 && json_is_array(arr) && json_array_size(arr) == 3);
    static const char *const fields[] = {"id",          "type",       "priority",   "payload",
                                         "state",       "created_at", "updated_at", "started_at",
                                         "finished_at", "progress",   "checkpoint", "errors"};
    for (size_t i = 0; i < json_array_size(arr); i++)
        for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
            CHECK(c, json_object_get(json_array_get(arr, i), fields[f]) != NULL);
    json_decref(arr);
    captured_free(&c);

    capture_begin();
    c.code = cmd_jobs(&ctx, 4, (char *[]){"jobs", "show", ids[1], "--json", NULL});
    capture_end(&c);
    json_t *j = json_loads(c.out, 0, NULL);
    CHECK(c, c.code == 0 && j && json_array_size(json_object_get(j, "errors")) == 2);
    json_decref(j);
    captured_free(&c);

    capture_begin();
    c.code = cmd_jobs(&ctx, 3, (char *[]){"jobs", "show", ids[1], NULL});
    capture_end(&c);
    CHECK(c, c.code == 0);
    CHECK(c, strstr(c.out, "cli_test, background priority, completed"));
    CHECK(c, strstr(c.out, "errors (2)"));
    CHECK(c, strstr(c.out, "item1"));
    CHECK(c, strstr(c.out, "pending"));
    CHECK(c, strstr(c.out, "items_done"));
    captured_free(&c);

    capture_begin();
    c.code = cmd_jobs(&ctx, 3, (char *[]){"jobs", "log", ids[0], NULL});
    capture_end(&c);
    CHECK(c, c.code == 0 && c.out[0] != '\0');
    captured_free(&c);

    /* cancelling a queued job ends it at once; cancelling a finished one is an error */
    capture_begin();
    c.code = cmd_jobs(&ctx, 3, (char *[]){"jobs", "cancel", ids[2], NULL});
    capture_end(&c);
    CHECK(c, c.code == 0 && strstr(c.out, "cancelled; resume with: facenames jobs resume"));
    captured_free(&c);
    capture_begin();
    c.code = cmd_jobs(&ctx, 3, (char *[]){"jobs", "cancel", ids[0], NULL});
    capture_end(&c);
    CHECK(c, c.code == CLI_EXIT_FAILURE && strstr(c.err, "facenames: jobs cancel: job "));
    captured_free(&c);

    /* resume --detach of the cancelled job queues a new one */
    capture_begin();
    c.code = cmd_jobs(&ctx, 4, (char *[]){"jobs", "resume", ids[2], "--detach", NULL});
    capture_end(&c);
    CHECK(c, c.code == 0 && strstr(c.out, "queued job ") && strstr(c.out, "(resume of job "));
    captured_free(&c);
    /* resume of a completed job is refused with the engine's reason */
    capture_begin();
    c.code = cmd_jobs(&ctx, 4, (char *[]){"jobs", "resume", ids[0], "--detach", NULL});
    capture_end(&c);
    CHECK(c, c.code == CLI_EXIT_FAILURE && strstr(c.err, "facenames: jobs resume: "));
    captured_free(&c);
    /* retry with a code that matches no error */
    capture_begin();
    c.code =
        cmd_jobs(&ctx, 6, (char *[]){"jobs", "retry", ids[1], "--code", "io", "--detach", NULL});
    capture_end(&c);
    CHECK(c, c.code == CLI_EXIT_FAILURE && strstr(c.err, "facenames: jobs retry: "));
    captured_free(&c);
    capture_begin();
    c.code = cmd_jobs(
        &ctx, 7,
        (char *[]){"jobs", "retry", ids[1], "--code", "corrupt", "--detach", "--json", NULL});
    capture_end(&c);
    j = json_loads(c.out, 0, NULL);
    CHECK(c, c.code == 0 && j &&
                 strcmp(json_string_value(json_object_get(j, "state")), "queued") == 0);
    CHECK(c, strstr(json_string_value(json_object_get(j, "type")), "cli_test"));
    json_decref(j);
    captured_free(&c);

    /* jobs watch of a finished job prints its end and its exit code */
    capture_begin();
    c.code = cmd_jobs(&ctx, 3, (char *[]){"jobs", "watch", ids[1], NULL});
    capture_end(&c);
    CHECK(c, c.code == CLI_EXIT_ITEMS && strstr(c.out, "errors: 2 (corrupt 2)"));
    captured_free(&c);
}

/* Presses Ctrl-C every 200 ms until told to stop: robust against a slow start (sanitizers,
 * valgrind) since the test installs a harmless SIGINT handler of its own first. */
static atomic_int keep_pressing;

static void ignore_signal(int sig)
{
    (void)sig;
}

static void *press_ctrl_c(void *arg)
{
    (void)arg;
    while (atomic_load(&keep_pressing)) {
        sleep_ms(200);
        if (atomic_load(&keep_pressing)) kill(getpid(), SIGINT);
    }
    return NULL;
}

static void pressing_start(pthread_t *t)
{
    signal(SIGINT, ignore_signal);
    atomic_store(&keep_pressing, 1);
    pthread_create(t, NULL, press_ctrl_c, NULL);
}

static void pressing_stop(pthread_t t)
{
    atomic_store(&keep_pressing, 0);
    pthread_join(t, NULL);
    signal(SIGINT, SIG_DFL);
}

/* jobs watch of a job nobody runs: Ctrl-C stops watching (130), the job stays queued */
static void test_watch_ctrl_c(void **state)
{
    (void)state;
    cli_ctx ctx;
    new_ctx(&ctx, 0);
    fn_engine *e = open_engine(&ctx);
    fn_job_id q;
    assert_int_equal(fn_enqueue(e, "nobody_runs_this", NULL, FN_PRIO_NORMAL, &q), 0);
    fn_engine_close(e);
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)q);
    pthread_t t;
    pressing_start(&t);
    struct captured c;
    capture_begin();
    c.code = cmd_jobs(&ctx, 3, (char *[]){"jobs", "watch", id, NULL});
    capture_end(&c);
    pressing_stop(t);
    CHECK(c, c.code == 130);
    CHECK(c, strstr(c.err, "queued"));
    CHECK(c, strstr(c.err, "(stopped watching)"));
    captured_free(&c);

    /* without an id, watch picks the queued job */
    pressing_start(&t);
    capture_begin();
    c.code = cmd_jobs(&ctx, 2, (char *[]){"jobs", "watch", NULL});
    capture_end(&c);
    pressing_stop(t);
    char want[64];
    snprintf(want, sizeof want, "nobody_runs_this #%s: queued", id);
    CHECK(c, c.code == 130 && strstr(c.err, want));
    captured_free(&c);

    /* a worker leaves a job of a type it has no handler for, and says so */
    capture_begin();
    c.code = cmd_worker(&ctx, 2, (char *[]){"worker", "--until-idle", NULL});
    capture_end(&c);
    CHECK(c, c.code == 0);
    CHECK(c, strstr(c.err, "queued jobs remain that this worker does not run"));
    CHECK(c, strstr(c.err, "0 job(s) finished"));
    captured_free(&c);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof tmp, "/tmp/fn_test_run_XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_completes),      cmocka_unit_test(test_item_errors_and_json),
        cmocka_unit_test(test_fails),          cmocka_unit_test(test_tty_line),
        cmocka_unit_test(test_ctrl_c_cancels), cmocka_unit_test(test_second_ctrl_c_stops),
        cmocka_unit_test(test_jobs_commands),  cmocka_unit_test(test_watch_ctrl_c),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
