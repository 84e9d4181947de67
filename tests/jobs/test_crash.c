/* test_crash.c: kill -9 at random points. A child process runs a job (batches of rows committed
 * with their checkpoint) and is killed with SIGKILL after a random delay, 25 times over; each new
 * child's fn_engine_open recovers the job its killed predecessor left "running". At the end the
 * parent recovers, cancels and resumes the job and runs the rest. The committed items must be
 * exactly those of an uninterrupted run of the same job: none lost, none twice; the same for its
 * item errors; and the database passes integrity_check. Set FN_CRASH_SEED to replay a run. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <signal.h>
#include <sys/wait.h>

#include "helpers.h"

#define PAYLOAD "{\"n\":4000,\"batch\":7,\"spin_us\":30,\"bad\":[5,77,1001,3999]}"
#define KILLS   25

/* Tells the parent the child has committed its first batch, so the parent's random delay falls
 * inside the job (a batch, a commit, a claim) rather than inside the child's start-up, however
 * slow the build (TSan) is. */
static void hook_ready(fn_job_ctx *ctx, int batch_no, void *arg)
{
    (void)ctx;
    int fd = *(int *)arg;
    if (batch_no == 1 && write(fd, "r", 1) != 1) _exit(4);
}

static void child_run(const char *dir, int ready_fd)
{
    fn_config c = test_config();
    fn_engine *e;
    if (fn_engine_open(dir, &c, &e)) _exit(2);
    register_count(e, "count", 0, 0);
    if (fn_engine_start(e, 0)) _exit(3);
    T.hook = hook_ready;
    T.hook_arg = &ready_fd;
    fn_engine_run_pending(e, 0, NULL);
    fn_engine_close(e);
    _exit(0);
}

static fn_job_id enqueue_one(const char *dir)
{
    fn_config c = test_config();
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "count", PAYLOAD, FN_PRIO_NORMAL, &id), 0);
    fn_engine_close(e);
    return id;
}

static char *items_of(const char *dir)
{
    return q_text(dir,
                  fn_test_on_pg()
                      ? "SELECT string_agg(CAST(item AS TEXT), ',' ORDER BY item) FROM items"
                      : "SELECT group_concat(item) FROM (SELECT item FROM items ORDER BY item)");
}

static void test_sigkill_recovery(void **state)
{
    (void)state;
    unsigned seed = (unsigned)fn_mono_ns();
    if (getenv("FN_CRASH_SEED")) seed = (unsigned)strtoul(getenv("FN_CRASH_SEED"), NULL, 10);
    fprintf(stderr, "FN_CRASH_SEED=%u\n", seed);
    srand(seed);

    /* The reference: the same job, uninterrupted. */
    char *ref = tmp_library();
    enqueue_one(ref);
    {
        fn_config c = test_config();
        fn_engine *e;
        assert_int_equal(fn_engine_open(ref, &c, &e), 0);
        register_count(e, "count", 0, 0);
        assert_int_equal(fn_engine_start(e, 0), 0);
        assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
        fn_engine_close(e);
    }

    char *dir = tmp_library();
    fn_job_id id = enqueue_one(dir);
    int killed_mid_run = 0;
    long long last_next = -1;
    for (int k = 0; k < KILLS; k++) {
        fflush(NULL);
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            child_run(dir, fds[1]);
        }
        close(fds[1]);
        char b;
        ssize_t got = read(fds[0], &b, 1);
        close(fds[0]);
        if (got == 1) { /* else the child exited: nothing left to run */
            struct timespec ts = {0, (long)(rand() % 8000) * 1000L};
            nanosleep(&ts, NULL);
        }
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        char *ck = q_text(dir, "SELECT checkpoint FROM jobs ORDER BY id LIMIT 1");
        long long next = ck ? atoll(strchr(ck, ':') + 1) : 0;
        free(ck);
        if (getenv("FN_CRASH_VERBOSE"))
            fprintf(stderr, "kill %d: status %d next %lld\n", k, status, next);
        assert_true(next >= last_next); /* the checkpoint never goes back */
        if (WIFSIGNALED(status) && next > last_next && next < 4000) killed_mid_run++;
        last_next = next;
    }
    /* The kills must have landed inside the job, not only before or after it. */
    assert_true(killed_mid_run >= 5);

    fn_config c = test_config();
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    register_count(e, "count", 0, 0);
    assert_int_equal(fn_engine_start(e, 0), 0);
    fn_job_state st = job_state(e, id);
    fn_job_id final_id = id;
    if (st == FN_JOB_QUEUED) {
        /* Recovered: cancel it, then resume it as a new job (the contract's resume path). */
        assert_int_equal(fn_job_cancel(e, id), 0);
        assert_int_equal(fn_job_resume(e, id, &final_id), 0);
    }
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    assert_int_equal(job_state(e, final_id), FN_JOB_COMPLETED);
    char *log;
    assert_int_equal(fn_job_log(e, id, &log), 0);
    assert_non_null(strstr(log, "recovered: owner"));
    free(log);
    fn_engine_close(e);

    char *got = items_of(dir), *want = items_of(ref);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
    free(want);
    assert_int_equal(q_int(dir, "SELECT count(*) - count(DISTINCT item) FROM items"), 0);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM items"), 3996);
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM job_errors WHERE job=%lld",
             (long long)final_id);
    assert_int_equal(q_int(dir, sql), 4);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM jobs WHERE state=1"), 0);
    /* SQLite's own check of the file (a server checks its own storage). */
    if (!fn_test_on_pg()) {
        char *ok = q_text(dir, "PRAGMA integrity_check");
        assert_string_equal(ok, "ok");
        free(ok);
    }
    rm_library(dir);
    rm_library(ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_recovery),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
