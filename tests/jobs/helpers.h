/* helpers.h: shared fixtures of the engine tests: a temporary library directory, a configurable
 * test handler ("count") that processes numbered items in batches, writes one row per committed
 * item into a test table through fn_job_commit's write callback, and calls a per-test hook after
 * every committed batch; and small database readers for the checks.
 *
 * Payload keys of "count": n (items), batch (items per commit), bad ([item numbers] recorded as
 * item errors, code "decode" when odd, "io" when even), fail_at (item number at which the job
 * fails), spin_us (busy work per item), hold_at (item number before which the handler waits, with
 * T.held set, until the test sets T.release: a job caught between its commits). Retry items
 * ("item-K", fn_job_retry_items) are processed first: in a retry job (which processes nothing else)
 * they succeed, as if the user fixed them; in a resume, bad ones fail again.
 *
 * Backends: with FN_TEST_BACKEND=pg (suite engine-pg) a test's library is a fresh database on the
 * program's throwaway PostgreSQL cluster (pg_fixture.h), its postgresql:// address standing for
 * the library folder; q_int and q_text then read through the store, and tests that need SQLite's
 * own file call FN_SKIP_ON_PG (pg_fixture.h) with the reason. Include cmocka before this header. */
#ifndef FN_TESTS_JOBS_HELPERS_H
#define FN_TESTS_JOBS_HELPERS_H

#include <ftw.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "facenames/jobs.h"
#include "facenames/log.h"
#include "pg_fixture.h"
#include "store/store_sql.h" /* white-box: rows written in the job's own transaction */
#include "util/clock.h"

static inline int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static inline char *tmp_library(void)
{
    if (fn_test_on_pg()) {
        char *url = fn_pg_fixture_db();
        if (!url) abort(); /* FN_TEST_PG=0 with FN_TEST_BACKEND=pg: nothing to run on */
        return url;
    }
    char *d = strdup("/tmp/fn-engine-test-XXXXXX");
    if (!mkdtemp(d)) abort();
    return d;
}

static inline void rm_library(char *d)
{
    /* A database on the test cluster goes with the cluster when the program ends. */
    if (strncmp(d, "postgresql://", 13) != 0) nftw(d, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(d);
}

static inline fn_config test_config(void)
{
    fn_config c;
    fn_config_defaults(&c);
    c.workers_cpu_max = 2;
    c.jobs_heartbeat_ms = 100;
    c.db_busy_timeout_ms = 2000;
    return c;
}

/* ---- the "count" handler ----------------------------------------------------------------------
 */

typedef void (*batch_hook_fn)(fn_job_ctx *ctx, int batch_no, void *arg);

typedef struct test_state {
    batch_hook_fn hook;
    void *hook_arg;
    atomic_int runs;    /* handler invocations */
    atomic_int order_n; /* order[] holds the ids of jobs as they start */
    fn_job_id order[64];
    _Atomic size_t inherited_seen; /* errors inherited by the last run */
    atomic_int held;               /* the handler waits at hold_at */
    atomic_int release;            /* the test lets it go on */
} test_state;

static test_state T;

static inline void test_reset(void)
{
    memset(&T, 0, sizeof T);
}

typedef struct rows {
    fn_job_id job;
    int items[4096];
    int n;
} rows;

static int write_rows(fn_store_tx *tx, void *arg)
{
    rows *r = arg;
    fn_store *s = fn_store_tx_store(tx);
    int rc = fn_sql_exec(s, "CREATE TABLE IF NOT EXISTS items(job INTEGER, item INTEGER)");
    if (rc != FN_OK) return fn_store_fail(s, rc, "creating the test table");
    fn_sql_stmt *st;
    rc = fn_sql_prepare(s, "INSERT INTO items(job, item) VALUES(?1,?2)", &st);
    if (rc != FN_OK) return fn_store_fail(s, rc, "preparing");
    for (int i = 0; i < r->n; i++) {
        fn_sql_bind_int64(st, 1, r->job);
        fn_sql_bind_int(st, 2, r->items[i]);
        rc = fn_sql_step(st);
        fn_sql_reset(st);
        if (rc != FN_SQL_DONE) {
            int code = fn_store_fail(s, rc, "writing test rows");
            fn_sql_finalize(st);
            return code;
        }
    }
    fn_sql_finalize(st);
    return 0;
}

static inline void spin_us(int us)
{
    if (us <= 0) return;
    uint64_t end = fn_mono_ns() + (uint64_t)us * 1000u;
    volatile uint64_t x = 1;
    while (fn_mono_ns() < end)
        for (int i = 0; i < 100; i++)
            x = x * 6364136223846793005ull + 1442695040888963407ull;
}

static int json_has_int(json_t *arr, int v)
{
    size_t i;
    json_t *x;
    json_array_foreach(arr, i, x) if (json_integer_value(x) == v) return 1;
    return 0;
}

static int count_run(fn_job_ctx *ctx, void *user)
{
    (void)user;
    int o = atomic_fetch_add(&T.runs, 1);
    (void)o;
    int k = atomic_fetch_add(&T.order_n, 1);
    if (k < 64) T.order[k] = fn_job_id_of(ctx);
    size_t n_inh = 0;
    fn_job_inherited_errors(ctx, &n_inh);
    atomic_store(&T.inherited_seen, n_inh);

    json_error_t jerr;
    json_t *p = json_loads(fn_job_payload(ctx), 0, &jerr);
    int n = (int)json_integer_value(json_object_get(p, "n"));
    int batch = (int)json_integer_value(json_object_get(p, "batch"));
    if (batch <= 0) batch = 4;
    json_t *bad = json_object_get(p, "bad");
    json_t *fail_at = json_object_get(p, "fail_at");
    int spin = (int)json_integer_value(json_object_get(p, "spin_us"));
    json_t *hold_at = json_object_get(p, "hold_at");
    int list[4096];
    int total = 0;
    for (int i = 0; i < n && i < 4096; i++)
        list[total++] = i;
    int next = 0;
    size_t retry_next = 0;
    if (fn_job_checkpoint(ctx)) {
        json_t *c = json_loads(fn_job_checkpoint(ctx), 0, &jerr);
        next = (int)json_integer_value(json_object_get(c, "next"));
        retry_next = (size_t)json_integer_value(json_object_get(c, "retry_next"));
        json_decref(c);
    }
    int c_done = fn_job_counter(ctx, "items_done");
    int c_err = fn_job_counter(ctx, "errors");
    double bounds[] = {10, 100, 1000};
    int h = fn_job_histogram(ctx, "item_value", bounds, 3);
    static _Thread_local rows r;
    int batch_no = 0;
    int rc = 0;
    /* The items to redo first (a retry's selection, a resume's pending and retry errors), in one
     * batch. A retry job does nothing else. */
    size_t n_retry = fn_job_retry_count(ctx);
    if (retry_next < n_retry) {
        char **items = NULL;
        size_t got = 0;
        if (fn_job_retry_items(ctx, retry_next, 4096, &items, &got) != 0) abort();
        r.job = fn_job_id_of(ctx);
        r.n = 0;
        for (size_t i = 0; i < got; i++) {
            int item = atoi(items[i] + 5);
            /* A retry comes after the user fixed things; a resume meets the same bad items. */
            if (!fn_job_is_retry(ctx) && json_has_int(bad, item)) {
                fn_job_error_add(ctx, items[i], item % 2 ? "decode" : "io", "simulated bad item",
                                 FN_RES_PENDING);
                fn_job_add(ctx, c_err, 1);
            } else if (r.n < 4096) {
                r.items[r.n++] = item;
            }
            fn_job_add(ctx, c_done, 1);
            free(items[i]);
        }
        free(items);
        char ck[96];
        snprintf(ck, sizeof ck, "{\"next\":%d,\"retry_next\":%zu}", next, n_retry);
        fn_job_set_checkpoint(ctx, ck);
        if ((rc = fn_job_commit(ctx, write_rows, &r))) goto out;
    }
    if (fn_job_is_retry(ctx)) total = 0;
    while (next < total) {
        r.job = fn_job_id_of(ctx);
        r.n = 0;
        int end = next + batch < total ? next + batch : total;
        for (int i = next; i < end; i++) {
            int item = list[i];
            if (hold_at && json_integer_value(hold_at) == item) {
                atomic_store(&T.held, 1);
                while (!atomic_load(&T.release))
                    nanosleep(&(struct timespec){0, 1000000}, NULL);
            }
            spin_us(spin);
            if (fail_at && json_integer_value(fail_at) == item) {
                fn_job_fail_reason(ctx, "item-%d: simulated failure", item);
                rc = FN_ERR_IO;
                goto out;
            }
            if (json_has_int(bad, item)) {
                char ref[32];
                snprintf(ref, sizeof ref, "item-%d", item);
                fn_job_error_add(ctx, ref, item % 2 ? "decode" : "io", "simulated bad item",
                                 FN_RES_PENDING);
                fn_job_add(ctx, c_err, 1);
            } else {
                r.items[r.n++] = item;
            }
            fn_job_add(ctx, c_done, 1);
            fn_job_observe(ctx, h, (double)item);
        }
        next = end;
        char ck[96];
        if (n_retry)
            snprintf(ck, sizeof ck, "{\"next\":%d,\"retry_next\":%zu}", next, n_retry);
        else
            snprintf(ck, sizeof ck, "{\"next\":%d}", next);
        fn_job_set_checkpoint(ctx, ck);
        rc = fn_job_commit(ctx, write_rows, &r);
        if (rc) goto out;
        batch_no++;
        if (T.hook) T.hook(ctx, batch_no, T.hook_arg);
        fn_stop s = fn_job_should_stop(ctx);
        if (s == FN_STOP_CANCEL) {
            rc = FN_ERR_CANCELLED;
            goto out;
        }
        if (s == FN_STOP_YIELD && next < total) {
            rc = FN_ERR_YIELDED;
            goto out;
        }
    }
out:
    json_decref(p);
    return rc;
}

static inline void register_count(fn_engine *e, const char *type, int gpu, int mem)
{
    fn_handler h = {.type = type, .run = count_run, .gpu_slots = gpu, .mem_mb = mem};
    if (fn_engine_register(e, &h) != 0) abort();
}

/* ---- the fixture: a fresh library with an engine in inline mode --------------------------------
 */

typedef struct fx {
    char *dir;
    fn_engine *e;
} fx;

/* Opens a fresh library (test_config, then `tune` may change it) with the "count" handler
 * registered under each of the NULL-terminated `types` and whatever `reg` registers, started
 * inline. `tune` and `reg` may be NULL. */
static void log_to_stderr(fn_log_level level, const char *msg, void *user)
{
    (void)user;
    fprintf(stderr, "log %d: %s\n", (int)level, msg);
}

static inline fx *fx_open(const char *const *types, void (*tune)(fn_config *),
                          void (*reg)(fn_engine *))
{
    /* FN_TEST_LOG=1 shows the engine's warnings, to see why a test failed. */
    if (getenv("FN_TEST_LOG")) fn_log_set_handler(log_to_stderr, NULL, FN_LOG_WARN);
    test_reset();
    fx *f = calloc(1, sizeof *f);
    f->dir = tmp_library();
    fn_config c = test_config();
    if (tune) tune(&c);
    if (fn_engine_open(f->dir, &c, &f->e) != 0) abort();
    for (size_t i = 0; types && types[i]; i++)
        register_count(f->e, types[i], 0, 0);
    if (reg) reg(f->e);
    if (fn_engine_start(f->e, 0) != 0) abort();
    return f;
}

static inline int fx_teardown(void **state)
{
    fx *f = *state;
    fn_engine_close(f->e);
    rm_library(f->dir);
    free(f);
    return 0;
}

/* ---- a job's progress, as fn_job_inspect gave it ---------------------------------------------
 */

/* One counter's value (0 when it has none). */
static inline long long progress_counter(const fn_job_info *j, const char *name)
{
    json_t *p = json_loads(j->progress, 0, NULL);
    long long v =
        (long long)json_integer_value(json_object_get(json_object_get(p, "counters"), name));
    json_decref(p);
    return v;
}

/* How many values histogram `hist` holds: the sum of its buckets. */
static inline long long progress_hist_total(const fn_job_info *j, const char *hist)
{
    json_t *p = json_loads(j->progress, 0, NULL);
    json_t *c = json_object_get(json_object_get(json_object_get(p, "histograms"), hist), "counts");
    long long n = 0;
    for (size_t k = 0; k < json_array_size(c); k++)
        n += (long long)json_integer_value(json_array_get(c, k));
    json_decref(p);
    return n;
}

/* ---- database readers for checks --------------------------------------------------------------
 */

static inline sqlite3 *open_db(const char *dir)
{
    /* Only the SQLite tests get here: the others skip (FN_SKIP_ON_PG) or read through q_store. */
    if (strncmp(dir, "postgresql://", 13) == 0) {
        fputs("open_db: the library is not SQLite's; this test needs FN_SKIP_ON_PG\n", stderr);
        abort();
    }
    char path[512];
    snprintf(path, sizeof path, "%s/library.db", dir);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) abort();
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* The first column of the first row of `sql` through the store (the PostgreSQL library at the
 * address `url`), as text (malloc'ed) into *text when text is not NULL, else as an integer (-1:
 * no row or an error). */
static inline long long q_store(const char *url, const char *sql, char **text)
{
    fn_store *s = NULL;
    char err[512];
    long long v = -1;
    if (text) *text = NULL;
    if (fn_store_open(url, 5000, &s, err, sizeof err) != 0) {
        fprintf(stderr, "q_store: %s\n", err);
        return -1;
    }
    fn_sql_stmt *st = NULL;
    if (fn_sql_prepare(s, sql, &st) == 0) {
        if (fn_sql_step(st) == FN_SQL_ROW) {
            v = fn_sql_column_int64(st, 0);
            const char *t = fn_sql_column_text(st, 0);
            if (text && t) *text = strdup(t);
        }
        fn_sql_finalize(st);
    } else {
        fprintf(stderr, "q_store: %s\n", fn_store_errmsg(s));
    }
    fn_store_close(s);
    return v;
}

/* Runs `sql` (no rows) on the library `dir` (a folder or a postgresql:// address) from a
 * connection of its own, as another process would; 0 or the backend's error (printed). */
static inline int q_exec(const char *dir, const char *sql)
{
    int rc;
    if (strncmp(dir, "postgresql://", 13) == 0) {
        fn_store *s = NULL;
        char err[512];
        if ((rc = fn_store_open(dir, 5000, &s, err, sizeof err)) != 0) {
            fprintf(stderr, "q_exec: %s\n", err);
            return rc;
        }
        if ((rc = fn_sql_exec(s, sql)) != 0)
            fprintf(stderr, "q_exec: %s: %s\n", sql,
                    (fn_store_fail(s, rc, "q_exec"), fn_store_errmsg(s)));
        fn_store_close(s);
        return rc;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/library.db", dir);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) abort();
    sqlite3_busy_timeout(db, 5000);
    char *err = NULL;
    rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK) fprintf(stderr, "q_exec: %s: %s\n", sql, err ? err : "");
    sqlite3_free(err);
    sqlite3_close(db);
    return rc;
}

/* Another process holding the library's write lock: SQLite's exclusive lock on the file, or on
 * PostgreSQL a write transaction of another connection (it holds the library's advisory lock). */
typedef struct locker {
    sqlite3 *db;
    fn_store *s;
    fn_store_tx *tx;
} locker;

static inline void locker_take(const char *dir, locker *l)
{
    memset(l, 0, sizeof *l);
    char err[512];
    if (strncmp(dir, "postgresql://", 13) == 0) {
        if (fn_store_open(dir, 5000, &l->s, err, sizeof err) != 0 || fn_store_begin(l->s, &l->tx))
            abort();
        return;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/library.db", dir);
    if (sqlite3_open(path, &l->db) != SQLITE_OK ||
        sqlite3_exec(l->db, "BEGIN EXCLUSIVE", NULL, NULL, NULL) != SQLITE_OK)
        abort();
}

static inline void locker_release(locker *l)
{
    if (l->s) {
        fn_store_rollback(l->tx);
        fn_store_close(l->s);
    }
    if (l->db) {
        sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(l->db);
    }
    memset(l, 0, sizeof *l);
}

/* What a message names the library by: its file, or its server address. */
static inline const char *lib_name(void)
{
    return fn_test_on_pg() ? "postgresql://" : "library.db";
}

static inline long long q_int(const char *dir, const char *sql)
{
    if (strncmp(dir, "postgresql://", 13) == 0) return q_store(dir, sql, NULL);
    sqlite3 *db = open_db(dir);
    sqlite3_stmt *st;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return v;
}

static inline char *q_text(const char *dir, const char *sql)
{
    if (strncmp(dir, "postgresql://", 13) == 0) {
        char *v = NULL;
        q_store(dir, sql, &v);
        return v;
    }
    sqlite3 *db = open_db(dir);
    sqlite3_stmt *st;
    char *v = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
            v = strdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return v;
}

static inline fn_job_state job_state(fn_engine *e, fn_job_id id)
{
    fn_job_info *j;
    if (fn_job_inspect(e, id, &j) != 0) return (fn_job_state)-1;
    fn_job_state s = j->state;
    fn_job_info_free(j);
    return s;
}

static inline void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#endif
