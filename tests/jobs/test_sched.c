/* test_sched.c: the scheduler's and the engine lifetime's defects found by review (issue 7,
 * "Engine, second pass", section 4), one test each: head-of-line blocking by jobs this process
 * cannot run or cannot admit yet, job ends fenced by owner, job ends that could not be written and
 * are retried, claims that hold the engine mutex across a transaction, the statement cache's
 * eviction, a start that fails halfway, close racing fn_engine_run_pending, and parallel_for
 * helpers that hid busy workers from preemption.
 *
 * TEST_FILTER=<pattern> runs only the matching tests (cmocka's filter), which helps when checking
 * one of them against the code before its fix. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <pthread.h>

#include "helpers.h"
#include "jobs/internal.h"

static inline fn_job_state wait_state(fn_engine *e, fn_job_id id, int timeout_ms)
{
    fn_job_state st = (fn_job_state)-1;
    if (fn_job_wait(e, id, timeout_ms, &st) != 0)
        fprintf(stderr, "wait: %s\n", fn_engine_errmsg(e));
    return st;
}

static inline void wait_running(fn_engine *e, fn_job_id id)
{
    for (int i = 0; i < 5000 && job_state(e, id) != FN_JOB_RUNNING; i++)
        sleep_ms(1);
    assert_int_equal(job_state(e, id), FN_JOB_RUNNING);
}

/* State events of job `id` drained so far that say `state`. */
static inline int drain_state_events(fn_engine *e, fn_job_id id, fn_job_state state)
{
    fn_event ev[256];
    size_t n;
    int found = 0;
    do {
        assert_int_equal(fn_engine_events_drain(e, ev, 256, &n), 0);
        for (size_t i = 0; i < n; i++) {
            if (ev[i].kind == FN_EVENT_STATE && ev[i].job == id && ev[i].state == state) found++;
            fn_event_clear(&ev[i]);
        }
    } while (n > 0);
    return found;
}

static inline long long log_lines(const char *dir, fn_job_id id, const char *like)
{
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM job_log WHERE job=%lld AND line LIKE '%s'",
             (long long)id, like);
    return q_int(dir, sql);
}

/* ---- 1. head-of-line blocking --------------------------------------------------------------- */

/* More queued jobs of a type nobody here runs than a lane used to read (16) must not hide the
 * runnable job behind them. Inline mode, so the order is exact. */
static void test_foreign_types_do_not_block(void **state)
{
    (void)state;
    test_reset();
    char *dir = tmp_library();
    fn_config c = test_config();
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    register_count(e, "count", 0, 0);
    assert_int_equal(fn_engine_start(e, 0), 0);
    fn_enqueue_opts o = {"elsewhere", NULL, NULL, FN_PRIO_NORMAL, -1, -1};
    fn_enqueue_opts many[40];
    for (int i = 0; i < 40; i++)
        many[i] = o;
    assert_int_equal(fn_enqueue_many(e, many, 40, NULL), 0);
    fn_job_id mine;
    assert_int_equal(fn_enqueue(e, "count", "{\"n\":3}", FN_PRIO_NORMAL, &mine), 0);
    int ran = 0;
    assert_int_equal(fn_engine_run_pending(e, 0, &ran), 0);
    assert_int_equal(ran, 1);
    assert_int_equal(job_state(e, mine), FN_JOB_COMPLETED);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM jobs WHERE type='elsewhere' AND state=0"),
                     40);
    fn_engine_close(e);
    rm_library(dir);
}

/* A job holding the only accelerator slot, and 20 more jobs of the same type that each need it:
 * a job of that type that needs no slot must still run on the other worker. */
static atomic_int gate_open;
static atomic_int light_ran;

static int gated_run(fn_job_ctx *ctx, void *user)
{
    (void)user;
    if (strstr(fn_job_payload(ctx), "light")) {
        atomic_store(&light_ran, 1);
        return 0;
    }
    while (!atomic_load(&gate_open) && fn_job_should_stop(ctx) == FN_STOP_NONE)
        sleep_ms(1);
    return 0;
}

static void test_full_caps_do_not_block(void **state)
{
    (void)state;
    atomic_store(&gate_open, 0);
    atomic_store(&light_ran, 0);
    char *dir = tmp_library();
    fn_config c = test_config();
    c.workers_gpu_max = 1;
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    fn_handler h = {.type = "gated", .run = gated_run, .gpu_slots = 0, .mem_mb = 0};
    assert_int_equal(fn_engine_register(e, &h), 0);
    fn_enqueue_opts heavy = {"gated", NULL, NULL, FN_PRIO_NORMAL, 1, -1};
    fn_job_id first;
    assert_int_equal(fn_enqueue_ex(e, &heavy, &first), 0);
    assert_int_equal(fn_engine_start(e, 2), 0);
    wait_running(e, first);
    fn_enqueue_opts more[20];
    for (int i = 0; i < 20; i++)
        more[i] = heavy;
    assert_int_equal(fn_enqueue_many(e, more, 20, NULL), 0);
    fn_enqueue_opts light = {"gated", "{\"light\":1}", NULL, FN_PRIO_NORMAL, 0, -1};
    fn_job_id lid;
    assert_int_equal(fn_enqueue_ex(e, &light, &lid), 0);
    assert_int_equal(wait_state(e, lid, 3000), FN_JOB_COMPLETED);
    assert_int_equal(atomic_load(&light_ran), 1);
    assert_int_equal(job_state(e, first), FN_JOB_RUNNING); /* it still holds the slot */
    atomic_store(&gate_open, 1);
    assert_int_equal(wait_state(e, first, 10000), FN_JOB_COMPLETED);
    fn_engine_close(e);
    rm_library(dir);
}

/* ---- 2. the end of a job recovered by another process --------------------------------------- */

static const char *steal_dir;

static void steal_row(fn_job_id id)
{
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE jobs SET owner=424242 WHERE id=%lld", (long long)id);
    assert_int_equal(q_exec(steal_dir, sql), 0);
}

/* Records an item error, then loses its row to "another process" and returns success. */
static int stolen_run(fn_job_ctx *ctx, void *user)
{
    (void)user;
    fn_job_error_add(ctx, "item-1", "decode", "simulated bad item", FN_RES_PENDING);
    steal_row(fn_job_id_of(ctx));
    return 0;
}

static void test_lost_job_end_not_reported(void **state)
{
    (void)state;
    char *dir = tmp_library();
    steal_dir = dir;
    fn_config c = test_config();
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    fn_handler h = {.type = "stolen", .run = stolen_run, .gpu_slots = 0, .mem_mb = 0};
    assert_int_equal(fn_engine_register(e, &h), 0);
    assert_int_equal(fn_engine_start(e, 0), 0);
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "stolen", NULL, FN_PRIO_NORMAL, &id), 0);
    drain_state_events(e, id, FN_JOB_QUEUED);
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    /* The row belongs to its new owner: still running there, and nothing of this run's end. */
    assert_int_equal(job_state(e, id), FN_JOB_RUNNING);
    assert_int_equal(q_int(dir, "SELECT owner FROM jobs"), 424242);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM job_errors"), 0);
    assert_int_equal(q_int(dir, "SELECT n_errors FROM jobs"), 0);
    assert_int_equal(log_lines(dir, id, "finish:%"), 0);
    assert_int_equal(drain_state_events(e, id, FN_JOB_COMPLETED), 0);
    fn_engine_close(e);
    if (fn_test_on_pg()) { /* a library on a server has no folder for a log file */
        rm_library(dir);
        return;
    }
    /* Nor in the log file. */
    char path[512];
    snprintf(path, sizeof path, "%s/jobs.log", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[1024];
    while (fgets(line, sizeof line, f))
        assert_null(strstr(line, "finish:"));
    fclose(f);
    rm_library(dir);
}

/* ---- 3. ends that could not be written ------------------------------------------------------ */

/* Makes every later commit fail (a full disk) and returns success: its end cannot be written. */
static int disk_fills_run(fn_job_ctx *ctx, void *user)
{
    (void)ctx;
    (void)user;
    fn_store_fault_inject(FN_ERR_FULL);
    return 0;
}

static void test_unwritten_end_retried_inline(void **state)
{
    (void)state;
    char *dir = tmp_library();
    fn_config c = test_config();
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    fn_handler h = {.type = "fills", .run = disk_fills_run, .gpu_slots = 0, .mem_mb = 0};
    assert_int_equal(fn_engine_register(e, &h), 0);
    assert_int_equal(fn_engine_start(e, 0), 0);
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "fills", NULL, FN_PRIO_NORMAL, &id), 0);
    drain_state_events(e, id, FN_JOB_QUEUED);
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    assert_int_equal(job_state(e, id), FN_JOB_RUNNING); /* its end is not written yet */
    assert_int_equal(drain_state_events(e, id, FN_JOB_COMPLETED), 0);
    fn_store_fault_inject(0);
    /* The disk has room again: the next pass writes the end it kept. */
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    assert_int_equal(wait_state(e, id, 1000), FN_JOB_COMPLETED);
    assert_int_equal(log_lines(dir, id, "finish:%"), 1);
    assert_int_equal(drain_state_events(e, id, FN_JOB_COMPLETED), 1);
    fn_engine_close(e);
    rm_library(dir);
}

static void *clear_fault_later(void *arg)
{
    (void)arg;
    sleep_ms(1500); /* longer than the worker's own retries of the write */
    fn_store_fault_inject(0);
    return NULL;
}

static void test_unwritten_end_retried_threads(void **state)
{
    (void)state;
    char *dir = tmp_library();
    fn_config c = test_config();
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    fn_handler h = {.type = "fills", .run = disk_fills_run, .gpu_slots = 0, .mem_mb = 0};
    assert_int_equal(fn_engine_register(e, &h), 0);
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "fills", NULL, FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_engine_start(e, 2), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, clear_fault_later, NULL), 0);
    /* fn_job_wait ends: the workers keep the end and write it once the disk has room. */
    assert_int_equal(wait_state(e, id, 10000), FN_JOB_COMPLETED);
    pthread_join(t, NULL);
    assert_int_equal(log_lines(dir, id, "finish:%"), 1);
    fn_engine_close(e);
    rm_library(dir);
}

/* ---- 4. a claim waiting for the write lock must not hold the engine mutex ------------------- */

static atomic_int holding_write_lock;
static atomic_int par_requested;
static _Atomic uint64_t par_ms_x1000, cancel_seen_ns;

static int slow_write(fn_store_tx *tx, void *arg)
{
    (void)tx;
    (void)arg;
    atomic_store(&holding_write_lock, 1);
    sleep_ms(1200);
    return 0;
}

static int slow_commit_run(fn_job_ctx *ctx, void *user)
{
    (void)user;
    return fn_job_commit(ctx, slow_write, NULL);
}

static void nop_item(size_t i, int worker, void *arg)
{
    (void)i, (void)worker, (void)arg;
}

/* Runs until cancelled; runs a parallel_for when asked and times it. */
static int spinner_run(fn_job_ctx *ctx, void *user)
{
    (void)user;
    for (;;) {
        if (atomic_exchange(&par_requested, 0)) {
            uint64_t t0 = fn_mono_ns();
            fn_job_parallel_for(ctx, 8, nop_item, NULL);
            atomic_store(&par_ms_x1000, (fn_mono_ns() - t0) / 1000);
        }
        if (fn_job_should_stop(ctx) == FN_STOP_CANCEL) {
            atomic_store(&cancel_seen_ns, fn_mono_ns());
            return FN_ERR_CANCELLED;
        }
        sleep_ms(1);
    }
}

typedef struct cancel_arg {
    fn_engine *e;
    fn_job_id id;
    int rc;
} cancel_arg;

static void *cancel_thread(void *arg)
{
    cancel_arg *a = arg;
    a->rc = fn_job_cancel(a->e, a->id);
    return NULL;
}

static void test_claim_does_not_hold_engine_mutex(void **state)
{
    (void)state;
    atomic_store(&holding_write_lock, 0);
    atomic_store(&par_requested, 0);
    atomic_store(&par_ms_x1000, 0);
    atomic_store(&cancel_seen_ns, 0);
    char *dir = tmp_library();
    fn_config c = test_config();
    c.workers_cpu_max = 3;
    c.db_busy_timeout_ms = 5000;
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    fn_handler hs = {.type = "spinner", .run = spinner_run, .gpu_slots = 0, .mem_mb = 0};
    fn_handler hw = {.type = "slow", .run = slow_commit_run, .gpu_slots = 0, .mem_mb = 0};
    assert_int_equal(fn_engine_register(e, &hs), 0);
    assert_int_equal(fn_engine_register(e, &hw), 0);
    assert_int_equal(fn_engine_start(e, 3), 0);
    fn_job_id spin, slow;
    assert_int_equal(fn_enqueue(e, "spinner", NULL, FN_PRIO_NORMAL, &spin), 0);
    wait_running(e, spin);
    assert_int_equal(fn_enqueue(e, "slow", NULL, FN_PRIO_NORMAL, &slow), 0);
    while (!atomic_load(&holding_write_lock))
        sleep_ms(1);
    /* The third worker looks for work at least every 250 ms: by now it waits for the write
     * lock inside its claim. */
    sleep_ms(400);
    /* Another thread cancels the spinner while it runs a parallel_for: both take the engine
     * mutex, neither needs the write lock for it. */
    cancel_arg ca = {e, spin, -1};
    pthread_t t;
    uint64_t t0 = fn_mono_ns();
    atomic_store(&par_requested, 1);
    assert_int_equal(pthread_create(&t, NULL, cancel_thread, &ca), 0);
    while (atomic_load(&par_ms_x1000) == 0 || atomic_load(&cancel_seen_ns) == 0)
        sleep_ms(1);
    double par_ms = (double)atomic_load(&par_ms_x1000) / 1000;
    double cancel_ms = (double)(atomic_load(&cancel_seen_ns) - t0) / 1e6;
    fprintf(stderr, "parallel_for took %.1f ms, the cancel was seen after %.1f ms\n", par_ms,
            cancel_ms);
    /* The write callback holds the lock for 1200 ms; 400 ms of it remain at least, so either
     * would take 400 ms or more had it waited for the lock (350: room for a loaded machine). */
    assert_true(par_ms < 350);
    assert_true(cancel_ms < 350);
    pthread_join(t, NULL);
    assert_int_equal(ca.rc, 0); /* its database part waited for the write lock */
    assert_int_equal(wait_state(e, slow, 10000), FN_JOB_COMPLETED);
    assert_int_equal(wait_state(e, spin, 10000), FN_JOB_CANCELLED);
    fn_engine_close(e);
    rm_library(dir);
}

/* ---- 5. the statement cache ----------------------------------------------------------------- */

/* A statement still being stepped must survive more distinct SQL than the cache holds. */
static void test_stmt_cache_keeps_statement_in_use(void **state)
{
    (void)state;
    char *dir = tmp_library();
    char path[512];
    snprintf(path, sizeof path, fn_test_on_pg() ? "%s" : "%s/library.db", dir);
    fn_store *s;
    char err[256];
    assert_int_equal(fn_store_open(path, 1000, &s, err, sizeof err), 0);
    static const char SQL_ROWS[] = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM r "
                                   "WHERE x<100) SELECT x FROM r";
    fn_sql_stmt *first = fn_store_stmt(s, SQL_ROWS);
    assert_non_null(first);
    assert_int_equal(fn_sql_step(first), FN_SQL_ROW);
    assert_int_equal(fn_sql_column_int(first, 0), 1);
    /* The cache is keyed by the SQL's address: 200 distinct strings are 200 distinct entries. */
    enum { OTHERS = 200 };
    char *other[OTHERS];
    for (int i = 0; i < OTHERS; i++) {
        other[i] = malloc(64);
        snprintf(other[i], 64, "SELECT %d", 1000 + i);
        fn_sql_stmt *st = fn_store_stmt(s, other[i]);
        assert_non_null(st);
        assert_int_equal(fn_sql_step(st), FN_SQL_ROW);
        assert_int_equal(fn_sql_column_int(st, 0), 1000 + i);
        fn_sql_reset(st);
        /* The first statement is still the one being stepped. */
        if (i % 50 == 49) {
            assert_int_equal(fn_sql_step(first), FN_SQL_ROW);
            assert_int_equal(fn_sql_column_int(first, 0), 2 + i / 50);
        }
    }
    int next = 2 + OTHERS / 50, rc;
    while ((rc = fn_sql_step(first)) == FN_SQL_ROW)
        assert_int_equal(fn_sql_column_int(first, 0), next++);
    assert_int_equal(rc, FN_SQL_DONE);
    assert_int_equal(next, 101);
    fn_sql_reset(first);
    /* The cache still answers for recently used SQL. */
    assert_ptr_equal(fn_store_stmt(s, SQL_ROWS), first);
    fn_store_close(s);
    for (int i = 0; i < OTHERS; i++)
        free(other[i]);
    rm_library(dir);
}

/* ---- 6. a start that fails halfway ---------------------------------------------------------- */

static void test_start_failure_rolls_back(void **state)
{
    (void)state;
    test_reset();
    char *dir = tmp_library();
    fn_config c = test_config();
    c.workers_cpu_max = 4;
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    register_count(e, "count", 0, 0);
    fn_job_id id;
    assert_int_equal(
        fn_enqueue(e, "count", "{\"n\":40,\"batch\":4,\"spin_us\":500}", FN_PRIO_NORMAL, &id), 0);
    fn_engine_test_fail_worker_start(2); /* threads 0 and 1 start, thread 2 does not */
    int rc = fn_engine_start(e, 4);
    fn_engine_test_fail_worker_start(-1);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(fn_engine_errmsg(e), "worker thread 2"));
    pthread_mutex_lock(&e->mu);
    int started = e->started, threads = e->n_threads, running = (int)e->n_running;
    pthread_mutex_unlock(&e->mu);
    assert_int_equal(started, 0);
    assert_int_equal(threads, 0);
    assert_int_equal(running, 0);
    /* Whatever the started threads had begun went back to queued; a second start works. */
    fn_job_state st = job_state(e, id);
    assert_true(st == FN_JOB_QUEUED || st == FN_JOB_COMPLETED);
    assert_int_equal(fn_engine_start(e, 2), 0);
    assert_int_equal(wait_state(e, id, 10000), FN_JOB_COMPLETED);
    char *s = q_text(dir, "SELECT count(DISTINCT item) || '/' || count(*) FROM items");
    assert_string_equal(s, "40/40");
    free(s);
    fn_engine_close(e);
    rm_library(dir);
}

/* ---- 7. close while another thread is in fn_engine_run_pending ------------------------------ */

typedef struct inline_run {
    fn_engine *e;
    int rc, ran;
} inline_run;

static void *run_pending_thread(void *arg)
{
    inline_run *r = arg;
    r->rc = fn_engine_run_pending(r->e, 0, &r->ran);
    return NULL;
}

static void test_close_waits_for_inline_run(void **state)
{
    (void)state;
    test_reset();
    char *dir = tmp_library();
    fn_config c = test_config();
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    register_count(e, "count", 0, 0);
    assert_int_equal(fn_engine_start(e, 0), 0);
    fn_job_id id;
    /* Batches of 4 items of 10 ms: close lands inside a batch, whose commit comes after. */
    assert_int_equal(
        fn_enqueue(e, "count", "{\"n\":400,\"batch\":4,\"spin_us\":10000}", FN_PRIO_NORMAL, &id),
        0);
    inline_run r = {e, -1, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_pending_thread, &r), 0);
    wait_running(e, id);
    sleep_ms(60);
    fn_engine_close(e);
    pthread_join(t, NULL);
    assert_int_equal(r.rc, 0);
    /* The job yielded at close and continues at the next open. */
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    register_count(e, "count", 0, 0);
    assert_int_equal(fn_engine_start(e, 0), 0);
    assert_int_equal(job_state(e, id), FN_JOB_QUEUED);
    assert_int_equal(log_lines(dir, id, "yield:%"), 1);
    fn_engine_close(e);
    rm_library(dir);
}

/* ---- 8. parallel_for helpers are busy workers ----------------------------------------------- */

static atomic_int helper_joined;
static atomic_int saw_yield;

static void slow_item(size_t i, int worker, void *arg)
{
    (void)i, (void)arg;
    if (worker > 0) atomic_store(&helper_joined, 1);
    sleep_ms(5);
}

/* Two batches of a 100-item parallel_for; yields when asked between them. */
static int fan_run(fn_job_ctx *ctx, void *user)
{
    (void)user;
    int done = fn_job_checkpoint(ctx) ? 1 : 0;
    for (int b = done; b < 2; b++) {
        fn_job_parallel_for(ctx, 100, slow_item, NULL);
        fn_job_set_checkpoint(ctx, "{\"b\":1}");
        int rc = fn_job_commit(ctx, NULL, NULL);
        if (rc) return rc;
        fn_stop s = fn_job_should_stop(ctx);
        if (s == FN_STOP_YIELD && b == 0) {
            atomic_store(&saw_yield, 1);
            return FN_ERR_YIELDED;
        }
        if (s == FN_STOP_CANCEL) return FN_ERR_CANCELLED;
    }
    return 0;
}

static void test_helpers_count_as_busy(void **state)
{
    (void)state;
    test_reset();
    atomic_store(&helper_joined, 0);
    atomic_store(&saw_yield, 0);
    char *dir = tmp_library();
    fn_config c = test_config();
    c.workers_cpu_max = 2;
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    fn_handler h = {.type = "fan", .run = fan_run, .gpu_slots = 0, .mem_mb = 0};
    assert_int_equal(fn_engine_register(e, &h), 0);
    register_count(e, "count", 0, 0);
    assert_int_equal(fn_engine_start(e, 2), 0);
    fn_job_id bg, ia;
    assert_int_equal(fn_enqueue(e, "fan", NULL, FN_PRIO_BACKGROUND, &bg), 0);
    while (!atomic_load(&helper_joined))
        sleep_ms(1);
    /* Both workers are on the background job's parallel_for: the interactive job needs a
     * yield. */
    assert_int_equal(fn_enqueue(e, "count", "{\"n\":2}", FN_PRIO_INTERACTIVE, &ia), 0);
    pthread_mutex_lock(&e->mu);
    int stop = FN_STOP_NONE;
    for (size_t i = 0; i < e->n_running; i++)
        if (e->running[i]->id == bg) stop = atomic_load(&e->running[i]->stop);
    pthread_mutex_unlock(&e->mu);
    assert_int_equal(stop, FN_STOP_YIELD);
    assert_int_equal(wait_state(e, ia, 10000), FN_JOB_COMPLETED);
    assert_int_equal(wait_state(e, bg, 10000), FN_JOB_COMPLETED);
    assert_int_equal(atomic_load(&saw_yield), 1);
    assert_int_equal(log_lines(dir, bg, "yield:%"), 1);
    fn_engine_close(e);
    rm_library(dir);
}

/* ---- the monitor's preemption for other processes' interactive jobs ------------------------- */

static atomic_int spin_runs;

/* Runs until asked to stop (at most 10 s) the first time; ends at once after that. */
static int spin_until_stopped_run(fn_job_ctx *ctx, void *user)
{
    (void)user;
    if (atomic_fetch_add(&spin_runs, 1) > 0) return 0;
    for (int i = 0; i < 2000; i++) {
        sleep_ms(5);
        if (fn_job_commit(ctx, NULL, NULL) != 0) return FN_ERR_IO;
        fn_stop st = fn_job_should_stop(ctx);
        if (st == FN_STOP_YIELD) return FN_ERR_YIELDED;
        if (st == FN_STOP_CANCEL) return FN_ERR_CANCELLED;
    }
    return 0;
}

/* Another process enqueues an interactive job this one can run, behind 20 interactive jobs of a
 * type nobody here runs: the monitor must still see it and make the background job yield (it
 * used to look at the lane's 16 oldest jobs only). */
static void test_monitor_preempts_behind_foreign(void **state)
{
    (void)state;
    test_reset();
    atomic_store(&spin_runs, 0);
    char *dir = tmp_library();
    fn_config c = test_config();
    c.workers_cpu_max = 1;
    fn_engine *e, *other;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    fn_handler h = {.type = "spin", .run = spin_until_stopped_run};
    assert_int_equal(fn_engine_register(e, &h), 0);
    register_count(e, "count", 0, 0);
    assert_int_equal(fn_engine_start(e, 1), 0);
    fn_job_id bg, ia;
    assert_int_equal(fn_enqueue(e, "spin", NULL, FN_PRIO_BACKGROUND, &bg), 0);
    wait_running(e, bg);
    assert_int_equal(fn_engine_open(dir, &c, &other), 0); /* another owner, no handlers */
    for (int i = 0; i < 20; i++)
        assert_int_equal(fn_enqueue(other, "foreign", NULL, FN_PRIO_INTERACTIVE, NULL), 0);
    assert_int_equal(fn_enqueue(other, "count", "{\"n\":2}", FN_PRIO_INTERACTIVE, &ia), 0);
    assert_int_equal(wait_state(e, ia, 5000), FN_JOB_COMPLETED);
    assert_int_equal(log_lines(dir, bg, "yield:%"), 1);
    fn_engine_close(other);
    fn_engine_close(e);
    rm_library(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_foreign_types_do_not_block),
        cmocka_unit_test(test_full_caps_do_not_block),
        cmocka_unit_test(test_lost_job_end_not_reported),
        cmocka_unit_test(test_unwritten_end_retried_inline),
        cmocka_unit_test(test_unwritten_end_retried_threads),
        cmocka_unit_test(test_claim_does_not_hold_engine_mutex),
        cmocka_unit_test(test_stmt_cache_keeps_statement_in_use),
        cmocka_unit_test(test_start_failure_rolls_back),
        cmocka_unit_test(test_close_waits_for_inline_run),
        cmocka_unit_test(test_helpers_count_as_busy),
        cmocka_unit_test(test_monitor_preempts_behind_foreign),
    };
    if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
