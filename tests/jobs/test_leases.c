/* test_leases.c: leases, claims and recovery across processes and hosts (issue 14), on both
 * backends (suite engine) and on PostgreSQL (suite engine-pg): a worker whose lease was taken can
 * never commit; a live engine recovers a dead owner's jobs from its monitor, not only at open;
 * heartbeats are measured on the database server's clock, so a host whose clock is off is not
 * taken for dead; a claim on PostgreSQL takes only row locks (no library-wide lock), skips a row
 * another transaction holds instead of waiting, and still has exactly one winner. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "helpers.h"
#include "jobs/internal.h"
#include "store/jobs_store.h"

#define SKIP_ON_SQLITE(reason)                                                                     \
    do {                                                                                           \
        if (!fn_test_on_pg()) {                                                                    \
            fprintf(stderr, "skipped on SQLite: %s\n", reason);                                    \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static fn_job_state wait_state(fn_engine *e, fn_job_id id, fn_job_state want, int timeout_ms)
{
    uint64_t end = fn_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    fn_job_state s;
    while ((s = job_state(e, id)) != want && fn_mono_ns() < end)
        sleep_ms(10);
    return s;
}

static fn_store *open_store(const char *dir)
{
    char path[600], err[512];
    snprintf(path, sizeof path, fn_test_on_pg() ? "%s" : "%s/library.db", dir);
    fn_store *s = NULL;
    if (fn_store_open(path, 2000, &s, err, sizeof err) != 0) fail_msg("%s", err);
    return s;
}

/* ---- a worker whose lease was taken cannot commit --------------------------------------------
 */

static const char *lease_dir;
static int64_t lease_owner;
static fn_engine *lease_b;
static int lease_rc = -1;
static char lease_msg[512];

/* After batch 1 of engine A: A's heartbeat goes silent (its row says it last beat an hour ago),
 * and engine B opens the library, which recovers A's job and claims it. A's next commit must
 * fail, and write nothing. */
static void hook_lose_lease(fn_job_ctx *ctx, int batch_no, void *arg)
{
    (void)arg;
    if (batch_no == 1) {
        char sql[160];
        snprintf(sql, sizeof sql,
                 "UPDATE job_owners SET heartbeat_at=heartbeat_at-3600000 WHERE id=%lld",
                 (long long)lease_owner);
        assert_int_equal(q_exec(lease_dir, sql), 0);
        fn_config c = test_config();
        c.jobs_owner_timeout_ms = 1000;
        assert_int_equal(fn_engine_open(lease_dir, &c, &lease_b), 0);
        assert_int_equal(job_state(lease_b, fn_job_id_of(ctx)), FN_JOB_QUEUED);
        static rows r;
        r.job = fn_job_id_of(ctx);
        r.n = 1;
        r.items[0] = 999;
        fn_job_set_checkpoint(ctx, "{\"next\":999}");
        lease_rc = fn_job_commit(ctx, write_rows, &r);
        snprintf(lease_msg, sizeof lease_msg, "%s", fn_engine_errmsg(fn_job_engine(ctx)));
        /* A's handler carries on: its next commit fails the same way and ends its run. */
    }
}

static void test_lost_lease_cannot_commit(void **state)
{
    (void)state;
    test_reset();
    char *dir = tmp_library();
    lease_dir = dir;
    lease_b = NULL;
    lease_rc = -1;
    fn_config c = test_config();
    c.jobs_heartbeat_ms = 60000; /* A's monitor does not beat during the test */
    fn_engine *a;
    assert_int_equal(fn_engine_open(dir, &c, &a), 0);
    lease_owner = q_int(dir, "SELECT max(id) FROM job_owners");
    register_count(a, "count", 0, 0);
    assert_int_equal(fn_engine_start(a, 0), 0);
    fn_job_id id;
    assert_int_equal(fn_enqueue(a, "count", "{\"n\":20,\"batch\":5}", FN_PRIO_NORMAL, &id), 0);
    T.hook = hook_lose_lease;
    /* One run: A would otherwise claim the requeued job again, as any live worker may. */
    assert_int_equal(fn_engine_run_pending(a, 1, NULL), 0);
    T.hook = NULL;
    assert_non_null(lease_b);
    assert_int_equal(lease_rc, FN_ERR_STATE);
    assert_non_null(strstr(lease_msg, "no longer running under this process"));
    assert_int_equal(q_int(dir, "SELECT count(*) FROM items WHERE item=999"), 0);
    /* A's end is not recorded either: the job is B's, queued, from A's last good checkpoint. */
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(lease_b, id, &j), 0);
    assert_int_equal(j->state, FN_JOB_QUEUED);
    assert_string_equal(j->checkpoint, "{\"next\":5}");
    fn_job_info_free(j);
    fn_engine_close(a);
    /* B finishes it: every item once. */
    register_count(lease_b, "count", 0, 0);
    assert_int_equal(fn_engine_start(lease_b, 0), 0);
    assert_int_equal(fn_engine_run_pending(lease_b, 0, NULL), 0);
    assert_int_equal(job_state(lease_b, id), FN_JOB_COMPLETED);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM items"), 20);
    assert_int_equal(q_int(dir, "SELECT count(DISTINCT item) FROM items"), 20);
    fn_engine_close(lease_b);
    rm_library(dir);
}

/* ---- a live engine recovers a dead owner's jobs, not only at open -----------------------------
 */

static void test_monitor_recovers_dead_owner(void **state)
{
    (void)state;
    test_reset();
    char *dir = tmp_library();
    fn_config c = test_config();
    c.jobs_owner_timeout_ms = 400; /* looked for every 100 ms */
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    assert_int_equal(fn_engine_start(e, 1), 0); /* no handler: a requeued job stays queued */
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "elsewhere", NULL, FN_PRIO_NORMAL, &id), 0);
    /* Another host took it and then went silent (its last heartbeat long ago). */
    assert_int_equal(q_exec(dir, "INSERT INTO job_owners(id, pid, host, started_at, heartbeat_at)"
                                 " VALUES(424242, 1, 'other-host', 0, 0)"),
                     0);
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE jobs SET state=1, owner=424242 WHERE id=%lld", (long long)id);
    assert_int_equal(q_exec(dir, sql), 0);
    assert_int_equal(job_state(e, id), FN_JOB_RUNNING);
    /* Looked for every 100 ms; the bound is for a machine whose cores are all busy (the test
     * checks that the monitor recovers, not how fast). */
    assert_int_equal(wait_state(e, id, FN_JOB_QUEUED, 10000), FN_JOB_QUEUED);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM job_owners WHERE id=424242"), 0);
    char *log;
    assert_int_equal(fn_job_log(e, id, &log), 0);
    assert_non_null(strstr(log, "recovered: owner 424242 is gone"));
    free(log);
    fn_engine_close(e);
    rm_library(dir);
}

/* ---- heartbeats on the server's clock ---------------------------------------------------------
 */

/* A host whose clock is an hour behind heartbeats (and registers) with its own `now`; another
 * host, whose clock is right, must not find it dead: on PostgreSQL both are measured by the
 * server. */
static void test_heartbeat_on_server_clock(void **state)
{
    (void)state;
    SKIP_ON_SQLITE("one SQLite library lives on one host, whose clock is the only one");
    char *dir = tmp_library();
    fn_engine *e;
    fn_config c = test_config();
    assert_int_equal(fn_engine_open(dir, &c, &e), 0); /* creates the tables */
    fn_engine_close(e);
    fn_store *slow = open_store(dir), *right = open_store(dir);
    int64_t behind = fn_wall_ms() - 3600000, owner_slow = 0, owner_right = 0;
    fn_store_tx *tx;
    assert_int_equal(fn_store_begin(slow, &tx), 0);
    assert_int_equal(fn_js_owner_register(slow, 1, "slow-host", behind, &owner_slow), 0);
    assert_int_equal(fn_store_commit(tx), 0);
    assert_int_equal(fn_store_begin(slow, &tx), 0);
    assert_int_equal(fn_js_owner_heartbeat(slow, owner_slow, behind), 0);
    assert_int_equal(fn_store_commit(tx), 0);
    assert_int_equal(fn_store_begin(right, &tx), 0);
    assert_int_equal(fn_js_owner_register(right, 2, "right-host", fn_wall_ms(), &owner_right), 0);
    assert_int_equal(fn_store_commit(tx), 0);
    int recovered = -1;
    assert_int_equal(
        fn_js_recover(right, owner_right, "right-host", fn_wall_ms(), 10000, &recovered), 0);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM job_owners WHERE id=%lld",
             (long long)owner_slow);
    assert_int_equal(q_int(dir, sql), 1); /* still there: it beat a moment ago */
    fn_store_close(slow);
    fn_store_close(right);
    rm_library(dir);
}

/* ---- claims: row locks only, SKIP LOCKED, one winner ------------------------------------------
 */

static int quick_run(fn_job_ctx *ctx, void *user)
{
    (void)ctx;
    (void)user;
    return 0;
}

/* Another connection holds the library's write lock (a long batch commit elsewhere): a worker
 * still claims, runs and ends a job that commits nothing of its own, since claims and ends lock
 * only their rows. */
static void test_claim_without_library_lock(void **state)
{
    (void)state;
    SKIP_ON_SQLITE("SQLite has one writer at a time: there a claim waits like any write");
    test_reset();
    char *dir = tmp_library();
    fn_config c = test_config();
    c.db_busy_timeout_ms = 1000;
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    fn_handler h = {.type = "quick", .run = quick_run};
    assert_int_equal(fn_engine_register(e, &h), 0);
    assert_int_equal(fn_engine_start(e, 0), 0);
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "quick", NULL, FN_PRIO_NORMAL, &id), 0);
    locker l;
    locker_take(dir, &l);
    uint64_t t0 = fn_mono_ns();
    int ran = 0;
    assert_int_equal(fn_engine_run_pending(e, 0, &ran), 0);
    uint64_t took = fn_mono_ns() - t0;
    locker_release(&l);
    assert_int_equal(ran, 1);
    assert_int_equal(job_state(e, id), FN_JOB_COMPLETED);
    assert_true(took < 900000000u); /* never waited for the lock (1000 ms busy timeout) */
    fn_engine_close(e);
    rm_library(dir);
}

/* Two hosts claim the same job: the one whose transaction holds the row wins; the other is told
 * at once that it lost (it does not wait for the row), and after the winner commits nobody else
 * can claim it. */
static void test_claim_skip_locked_one_winner(void **state)
{
    (void)state;
    SKIP_ON_SQLITE("SQLite has no row locks");
    char *dir = tmp_library();
    fn_engine *e;
    fn_config c = test_config();
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "x", NULL, FN_PRIO_NORMAL, &id), 0);
    fn_engine_close(e);
    fn_store *a = open_store(dir), *b = open_store(dir);
    fn_store_tx *ta, *tb;
    fn_js_claim ca, cb;
    int got_a = 0, got_b = 0;
    assert_int_equal(fn_store_begin_rows(a, &ta), 0);
    assert_int_equal(fn_js_claim_job(a, id, 1, fn_wall_ms(), &ca, &got_a), 0);
    assert_int_equal(got_a, 1);
    assert_int_equal(fn_store_begin_rows(b, &tb), 0);
    uint64_t t0 = fn_mono_ns();
    assert_int_equal(fn_js_claim_job(b, id, 2, fn_wall_ms(), &cb, &got_b), 0);
    assert_true(fn_mono_ns() - t0 < 1000000000u); /* not the 2 s lock timeout */
    assert_int_equal(got_b, 0);
    fn_store_rollback(tb);
    assert_int_equal(fn_store_commit(ta), 0);
    assert_int_equal(fn_store_begin_rows(b, &tb), 0);
    assert_int_equal(fn_js_claim_job(b, id, 2, fn_wall_ms(), &cb, &got_b), 0);
    assert_int_equal(got_b, 0); /* running now: not queued */
    fn_store_rollback(tb);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT owner FROM jobs WHERE id=%lld", (long long)id);
    assert_int_equal(q_int(dir, sql), 1);
    fn_js_claim_clear(&ca);
    fn_js_claim_clear(&cb);
    fn_store_close(a);
    fn_store_close(b);
    rm_library(dir);
}

/* A cancel and a claim of a queued job racing on PostgreSQL: the cancel locks the row before it
 * reads the state it acts on, so it either cancels a job nobody claimed or asks the claimer to
 * stop; never "cancelled while queued" for a job that runs. */
typedef struct cancel_arg {
    fn_store *s;
    fn_job_id id;
    int rc, outcome;
} cancel_arg;

static void *cancel_main(void *p)
{
    cancel_arg *a = p;
    a->rc = fn_js_cancel(a->s, a->id, fn_wall_ms(), &a->outcome);
    return NULL;
}

static void test_cancel_races_claim(void **state)
{
    (void)state;
    SKIP_ON_SQLITE("SQLite has one writer at a time: a cancel and a claim never overlap");
    char *dir = tmp_library();
    fn_engine *e;
    fn_config c = test_config();
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "x", NULL, FN_PRIO_NORMAL, &id), 0);
    fn_engine_close(e);
    fn_store *a = open_store(dir), *b = open_store(dir);
    fn_store_tx *ta;
    fn_js_claim ca;
    int got = 0;
    /* The claim holds the row, uncommitted, while the cancel starts; it commits 100 ms later. */
    assert_int_equal(fn_store_begin_rows(a, &ta), 0);
    assert_int_equal(fn_js_claim_job(a, id, 7, fn_wall_ms(), &ca, &got), 0);
    assert_int_equal(got, 1);
    cancel_arg arg = {b, id, -1, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cancel_main, &arg), 0);
    sleep_ms(100);
    assert_int_equal(fn_store_commit(ta), 0);
    pthread_join(th, NULL);
    assert_int_equal(arg.rc, 0);
    assert_int_equal(arg.outcome, 2); /* running: asked to stop */
    char sql[120];
    snprintf(sql, sizeof sql, "SELECT state * 10 + cancel_requested FROM jobs WHERE id=%lld",
             (long long)id);
    assert_int_equal(q_int(dir, sql), 11);
    fn_js_claim_clear(&ca);
    fn_store_close(a);
    fn_store_close(b);
    rm_library(dir);
}

/* On PostgreSQL an error's id is taken at insert: transaction A takes error id n, B takes n + 1
 * and commits first, and a reader of the feed reads n + 1. When A commits, the next read still
 * gives error n (before, the cursor had moved past it, and another host never told it), with its
 * job's row so the event can be sent. */
static void test_error_feed_out_of_commit_order(void **state)
{
    (void)state;
    SKIP_ON_SQLITE("SQLite has one writer: ids are taken in commit order");
    char *dir = tmp_library();
    fn_engine *e;
    fn_config c = test_config();
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    fn_job_id j1, j2;
    assert_int_equal(fn_enqueue(e, "x", NULL, FN_PRIO_NORMAL, &j1), 0);
    assert_int_equal(fn_enqueue(e, "x", NULL, FN_PRIO_NORMAL, &j2), 0);
    fn_engine_close(e);
    fn_store *a = open_store(dir), *b = open_store(dir), *r = open_store(dir);
    fn_js_cursor cur;
    assert_int_equal(fn_js_feed_cursor(r, &cur), 0);
    fn_js_feed f;
    memset(&f, 0, sizeof f);
    fn_store_tx *ta, *tb;
    assert_int_equal(fn_store_begin_rows(a, &ta), 0);
    assert_int_equal(fn_js_add_error(a, j1, "first.jpg", "decode", "slow", FN_RES_PENDING), 0);
    assert_int_equal(fn_store_begin_rows(b, &tb), 0);
    assert_int_equal(fn_js_add_error(b, j2, "second.jpg", "decode", "fast", FN_RES_PENDING), 0);
    assert_int_equal(fn_store_commit(tb), 0);
    assert_int_equal(fn_js_feed_read(r, &cur, 0, 100, &f), 0);
    assert_int_equal(f.n_errs, 1);
    assert_string_equal(f.errs[0].item, "second.jpg");
    assert_int_equal(fn_store_commit(ta), 0);
    assert_int_equal(fn_js_feed_read(r, &cur, 0, 100, &f), 0);
    assert_int_equal(f.n_errs, 1);
    assert_string_equal(f.errs[0].item, "first.jpg");
    int has_job = 0;
    for (size_t i = 0; i < f.n_jobs; i++)
        if (f.jobs[i].id == j1) has_job = 1;
    assert_true(has_job);
    /* Told once: a third read gives nothing. */
    assert_int_equal(fn_js_feed_read(r, &cur, 0, 100, &f), 0);
    assert_int_equal(f.n_errs, 0);
    fn_js_feed_free(&f);
    fn_store_close(a);
    fn_store_close(b);
    fn_store_close(r);
    rm_library(dir);
}

/* An owner id is never handed out twice: after the last owner leaves (or is taken for dead and
 * removed), the next process to register gets a new id, not the one the old owner's runs are
 * fenced by. (SQLite gave the largest id plus one, that is the old id again, before jobs
 * migration 5.) */
static void test_owner_id_never_reused(void **state)
{
    (void)state;
    char *dir = tmp_library();
    fn_engine *e;
    fn_config c = test_config();
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    fn_engine_close(e);
    fn_store *s = open_store(dir);
    int64_t first = 0, second = 0;
    assert_int_equal(fn_js_owner_register(s, 1, "host-a", fn_wall_ms(), &first), 0);
    assert_int_equal(fn_js_owner_leave(s, first), 0);
    assert_int_equal(fn_js_owner_register(s, 2, "host-b", fn_wall_ms(), &second), 0);
    assert_true(second > first);
    fn_store_close(s);
    rm_library(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lost_lease_cannot_commit),
        cmocka_unit_test(test_monitor_recovers_dead_owner),
        cmocka_unit_test(test_heartbeat_on_server_clock),
        cmocka_unit_test(test_claim_without_library_lock),
        cmocka_unit_test(test_claim_skip_locked_one_winner),
        cmocka_unit_test(test_cancel_races_claim),
        cmocka_unit_test(test_error_feed_out_of_commit_order),
        cmocka_unit_test(test_owner_id_never_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
