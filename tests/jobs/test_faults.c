/* test_faults.c: a full disk and a locked database give clear errors and no corruption: the
 * failed batch is rolled back whole, committed rows and the checkpoint stay, PRAGMA
 * integrity_check is ok. Both injected faults (fn_store_fault_inject) and real ones (a database
 * capped with max_page_count; another connection holding an exclusive lock). Also: a damaged file
 * and a database from a newer version are refused with a message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "helpers.h"
#include "jobs/internal.h"

static char last_msg[1024];
static int last_rc;

static void integrity_ok(const char *dir)
{
    if (fn_test_on_pg()) return; /* SQLite's check of its file; a server checks its own storage */
    char *s = q_text(dir, "PRAGMA integrity_check");
    assert_non_null(s);
    assert_string_equal(s, "ok");
    free(s);
}

/* ---- a handler that commits batch 1, then meets a fault in batch 2 ----------------------------
 */

typedef enum { FAULT_INJECT_FULL, FAULT_REAL_FULL, FAULT_REAL_LOCK } fault_kind;
static fault_kind kind;
static const char *g_dir;

static int full_write(fn_store_tx *tx, void *arg)
{
    (void)arg;
    fn_store *s = fn_store_tx_store(tx);
    fn_sql_exec(s, "CREATE TABLE IF NOT EXISTS blobs(b BLOB)");
    /* Cap the database at its current size: the next page it needs makes it "full". */
    fn_sql_stmt *st;
    fn_sql_prepare(s, "PRAGMA page_count", &st);
    fn_sql_step(st);
    int pages = fn_sql_column_int(st, 0);
    fn_sql_finalize(st);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count=%d", pages);
    fn_sql_exec(s, sql);
    int rc = fn_sql_exec(s, "INSERT INTO blobs SELECT zeroblob(4000) FROM "
                            "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE "
                            "x<500) SELECT x FROM c)");
    int code = rc == FN_OK ? 0 : fn_store_fail(s, rc, "writing the batch's blobs");
    fn_sql_exec(s, "PRAGMA max_page_count=1073741823");
    return code;
}

static int fault_run(fn_job_ctx *ctx, void *user)
{
    (void)user;
    static rows r;
    r.job = fn_job_id_of(ctx);
    r.n = 3;
    r.items[0] = 0, r.items[1] = 1, r.items[2] = 2;
    fn_job_set_checkpoint(ctx, "{\"next\":3}");
    int rc = fn_job_commit(ctx, write_rows, &r);
    if (rc) return rc;
    r.items[0] = 3, r.items[1] = 4, r.items[2] = 5;
    fn_job_set_checkpoint(ctx, "{\"next\":6}");
    if (kind == FAULT_INJECT_FULL) {
        fn_store_fault_inject(FN_ERR_FULL);
        rc = fn_job_commit(ctx, write_rows, &r);
        fn_store_fault_inject(0);
    } else if (kind == FAULT_REAL_FULL) {
        rc = fn_job_commit(ctx, full_write, NULL);
    } else {
        locker l;
        locker_take(g_dir, &l);
        rc = fn_job_commit(ctx, write_rows, &r);
        locker_release(&l);
    }
    last_rc = rc;
    snprintf(last_msg, sizeof last_msg, "%s", fn_engine_errmsg(fn_job_engine(ctx)));
    fn_job_fail_reason(ctx, "%s", last_msg);
    return rc ? rc : 0;
}

static void run_fault(fault_kind k, int expect_rc, const char *expect_text)
{
    kind = k;
    char *dir = tmp_library();
    g_dir = dir;
    fn_config c = test_config();
    c.db_busy_timeout_ms = 100;
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    fn_handler h = {.type = "fault", .run = fault_run, .gpu_slots = 0, .mem_mb = 0};
    assert_int_equal(fn_engine_register(e, &h), 0);
    assert_int_equal(fn_engine_start(e, 0), 0);
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "fault", NULL, FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    assert_int_equal(last_rc, expect_rc);
    assert_non_null(strstr(last_msg, lib_name()));
    assert_non_null(strstr(last_msg, expect_text));
    assert_non_null(strstr(last_msg, "the batch was not committed"));
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(e, id, &j), 0);
    assert_int_equal(j->state, FN_JOB_FAILED);
    assert_string_equal(j->checkpoint, "{\"next\":3}"); /* batch 2 rolled back whole */
    assert_non_null(strstr(j->fail_reason, expect_text));
    fn_job_info_free(j);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM items"), 3);
    assert_int_equal(q_int(dir, "SELECT max(item) FROM items"), 2);
    if (k == FAULT_REAL_FULL) /* even the CREATE TABLE of the failed batch is gone */
        assert_int_equal(q_int(dir, "SELECT count(*) FROM sqlite_master WHERE name='blobs'"), 0);
    fn_engine_close(e);
    integrity_ok(dir);
    rm_library(dir);
}

static void test_injected_full(void **state)
{
    (void)state;
    run_fault(FAULT_INJECT_FULL, FN_ERR_FULL, "full; free some disk space");
}

static void test_real_full(void **state)
{
    (void)state;
    FN_SKIP_ON_PG("a real full database is SQLite's max_page_count; a server's disk is not the "
                  "test's to fill");
    run_fault(FAULT_REAL_FULL, FN_ERR_FULL, "full; free some disk space");
}

static void test_real_lock_during_commit(void **state)
{
    (void)state;
    run_fault(FAULT_REAL_LOCK, FN_ERR_BUSY, "locked by another process");
}

static void test_locked_enqueue(void **state)
{
    (void)state;
    char *dir = tmp_library();
    fn_config c = test_config();
    c.db_busy_timeout_ms = 100;
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    fn_job_id a, b;
    assert_int_equal(fn_enqueue(e, "x", NULL, FN_PRIO_NORMAL, &a), 0);
    locker l;
    locker_take(dir, &l);
    uint64_t t0 = fn_mono_ns();
    assert_int_equal(fn_enqueue(e, "x", NULL, FN_PRIO_NORMAL, &b), FN_ERR_BUSY);
    assert_true(fn_mono_ns() - t0 >= 90000000u); /* waited the busy timeout */
    const char *m = fn_engine_errmsg(e);
    assert_non_null(strstr(m, lib_name()));
    assert_non_null(strstr(m, "locked"));
    assert_non_null(strstr(m, "db.busy_timeout_ms"));
    assert_int_equal(fn_job_cancel(e, a), FN_ERR_BUSY);
    locker_release(&l);
    /* Injected lock. */
    fn_store_fault_inject(FN_ERR_BUSY);
    assert_int_equal(fn_enqueue(e, "x", NULL, FN_PRIO_NORMAL, &b), FN_ERR_BUSY);
    assert_non_null(strstr(fn_engine_errmsg(e), "locked"));
    fn_store_fault_inject(0);
    assert_int_equal(fn_enqueue(e, "x", NULL, FN_PRIO_NORMAL, &b), 0);
    assert_int_equal(job_state(e, a), FN_JOB_QUEUED);
    fn_engine_close(e);
    integrity_ok(dir);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM jobs"), 2);
    rm_library(dir);
}

/* Fencing: a job recovered by another process (as if this one's heartbeat had gone silent) can no
 * longer be committed into or finished by this one. */
static const char *fence_dir;
static int fence_rc;
static char fence_msg[512];

static void hook_steal(fn_job_ctx *ctx, int batch_no, void *arg)
{
    (void)arg;
    if (batch_no != 1) return;
    char sql[128];
    snprintf(sql, sizeof sql, "UPDATE jobs SET owner=424242 WHERE id=%lld",
             (long long)fn_job_id_of(ctx));
    assert_int_equal(q_exec(fence_dir, sql), 0);
    static rows r;
    r.job = fn_job_id_of(ctx);
    r.n = 1;
    r.items[0] = 999;
    fn_job_set_checkpoint(ctx, "{\"next\":999}");
    fence_rc = fn_job_commit(ctx, write_rows, &r);
    snprintf(fence_msg, sizeof fence_msg, "%s", fn_engine_errmsg(fn_job_engine(ctx)));
    fn_job_cancel(fn_job_engine(ctx), fn_job_id_of(ctx)); /* stop the handler */
}

static void test_fencing(void **state)
{
    (void)state;
    test_reset();
    char *dir = tmp_library();
    fence_dir = dir;
    T.hook = hook_steal;
    fn_config c = test_config();
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    register_count(e, "count", 0, 0);
    assert_int_equal(fn_engine_start(e, 0), 0);
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "count", "{\"n\":20,\"batch\":5}", FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    assert_int_equal(fence_rc, FN_ERR_STATE);
    assert_non_null(strstr(fence_msg, "no longer running under this process"));
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(e, id, &j), 0);
    assert_int_equal(j->state, FN_JOB_RUNNING); /* left to its new owner */
    assert_string_equal(j->checkpoint, "{\"next\":5}");
    fn_job_info_free(j);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM items WHERE item=999"), 0);
    fn_engine_close(e);
    rm_library(dir);
}

static void test_corrupt_and_version(void **state)
{
    (void)state;
    char *dir = tmp_library();
    fn_engine *e = NULL;
    /* A damaged file is SQLite's case; the newer version below is both backends'. */
    if (!fn_test_on_pg()) {
        char path[512];
        snprintf(path, sizeof path, "%s/library.db", dir);
        FILE *f = fopen(path, "w");
        for (int i = 0; i < 512; i++)
            fputs("this is not a database ", f);
        fclose(f);
        int rc = fn_engine_open(dir, NULL, &e);
        assert_int_equal(rc, FN_ERR_CORRUPT);
        assert_null(e);
        assert_non_null(strstr(fn_engine_errmsg(NULL), "library.db"));
        assert_non_null(strstr(fn_engine_errmsg(NULL), "damaged"));
        remove(path);
    }
    assert_int_equal(fn_engine_open(dir, NULL, &e), 0);
    fn_engine_close(e);
    assert_int_equal(q_exec(dir, "UPDATE schema_versions SET version=99 WHERE component='jobs'"),
                     0);
    assert_int_equal(fn_engine_open(dir, NULL, &e), FN_ERR_VERSION);
    assert_non_null(strstr(fn_engine_errmsg(NULL), "newer facenames"));
    rm_library(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_injected_full),
        cmocka_unit_test(test_real_full),
        cmocka_unit_test(test_real_lock_during_commit),
        cmocka_unit_test(test_locked_enqueue),
        cmocka_unit_test(test_fencing),
        cmocka_unit_test(test_corrupt_and_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
