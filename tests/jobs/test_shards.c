/* test_shards.c: one big job split into shards on the batch-job driver, with a synthetic type
 * ("range": items 0..n-1, each written as a row; its cursor is the last item handed over) that
 * declares shards above ingest.shard_photos items. Split boundaries (no item in two shards, none
 * lost, a job at the threshold not split), the split job's progress, errors and checkpoint as its
 * shards' together, its events, its end (completed, failed when a shard failed, cancelled), cancel,
 * resume and retry of the whole job, and shards shared by two worker threads. Inline mode unless
 * said otherwise. Both backends (suite engine-pg). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "facenames/jobtype.h"
#include "helpers.h"

/* ---- the "range" type -------------------------------------------------------------------------
 */

enum { RG_TOTAL, RG_DONE, RG_ERRORS, RG_COUNT };
static const char *const rg_counters[RG_COUNT] = {"items_total", "items_done", "errors"};
static const double rg_bounds[] = {10, 100};
static const fn_histogram_decl rg_hists[] = {{"value", rg_bounds, 2}};
static const fn_param rg_params[] = {
    {"n", FN_PARAM_INT, NULL, NULL, 0, 100000, NULL, "items"},
    {"batch", FN_PARAM_INT, NULL, "4", 1, 1000, NULL, NULL},
    {"bad", FN_PARAM_STRINGS, NULL, "[]", 0, 0, NULL, NULL},
    {"shard_items", FN_PARAM_INT, "ingest.shard_photos", NULL, 0, 100000, NULL, NULL},
};

typedef struct rg_job {
    int64_t pos, end; /* the next item; the last item of the range */
} rg_job;
typedef struct rg_item {
    int64_t i;
} rg_item;

static struct {
    atomic_int fixed, fail_at, cancel_at_batch, batches, bounds_calls;
    _Atomic fn_job_id cancel_id;
    fn_engine *e;
    const char *cancel_row_in_open; /* the library: set the job's cancel_requested in its open */
} R;

static int64_t json_pos(const char *text, const char *key, int64_t dflt)
{
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    json_t *v = json_object_get(j, key);
    int64_t out = json_is_integer(v) ? json_integer_value(v) : dflt;
    json_decref(j);
    return out;
}

static int rg_open(fn_batch *b)
{
    rg_job *j = fn_batch_state(b);
    int64_t n = fn_batch_int(b, "n");
    j->pos = json_pos(fn_batch_checkpoint(b), "last", -1) + 1;
    j->end = json_pos(fn_batch_shard_last(b), "last", n - 1);
    if (!fn_batch_is_shard(b)) fn_batch_set(b, RG_TOTAL, n);
    /* Another process's cancel, written to the row before this process's monitor has seen it. */
    if (R.cancel_row_in_open && !fn_batch_is_shard(b)) {
        char sql[96];
        snprintf(sql, sizeof sql, "UPDATE jobs SET cancel_requested=1 WHERE id=%lld",
                 (long long)fn_job_id_of(fn_batch_ctx(b)));
        if (q_exec(R.cancel_row_in_open, sql) != 0) abort();
    }
    return 0;
}

static int is_bad(fn_batch *b, int64_t i)
{
    const char *const *bad;
    size_t n = fn_batch_strings(b, "bad", &bad);
    for (size_t k = 0; k < n; k++)
        if (atoll(bad[k]) == i) return 1;
    return 0;
}

static int fill(int64_t i, fn_item *it)
{
    char ref[32];
    snprintf(ref, sizeof ref, "rg-%lld", (long long)i);
    if (fn_item_set_ref(it, ref) < 0) return FN_ERR_NOMEM;
    ((rg_item *)it->data)->i = i;
    it->work = 1;
    return FN_SOURCE_ITEM;
}

static int rg_next(fn_batch *b, fn_item *it)
{
    rg_job *j = fn_batch_state(b);
    if (j->pos > j->end) return FN_SOURCE_END;
    if (R.fail_at && j->pos == R.fail_at) {
        fn_batch_fail(b, "range: the source broke at %lld", (long long)j->pos);
        return FN_ERR_IO;
    }
    return fill(j->pos++, it);
}

static int rg_retry(fn_batch *b, const char *ref, fn_item *it)
{
    (void)b;
    return fill(atoll(ref + 3), it);
}

static void rg_process(fn_batch *b, void *slot, fn_item *it)
{
    (void)slot;
    rg_item *d = it->data;
    if (!R.fixed && is_bad(b, d->i)) {
        fn_item_fail(it, FN_ERR_CORRUPT, "bad", "%s: simulated", it->ref);
        return;
    }
    fn_batch_observe(b, 0, (double)d->i);
}

static int rg_write(fn_batch *b, fn_store_tx *tx, fn_item *const *items, size_t n)
{
    fn_store *s = fn_store_tx_store(tx);
    if (fn_sql_exec(s, "CREATE TABLE IF NOT EXISTS rg(job INTEGER, i INTEGER)") != FN_OK)
        return FN_ERR_DB;
    fn_sql_stmt *st;
    if (fn_sql_prepare(s, "INSERT INTO rg VALUES(?1,?2)", &st) != FN_OK) return FN_ERR_DB;
    int rc = 0;
    for (size_t k = 0; k < n && !rc; k++) {
        if (items[k]->err || !items[k]->work) continue;
        fn_sql_bind_int64(st, 1, fn_job_id_of(fn_batch_ctx(b)));
        fn_sql_bind_int64(st, 2, ((const rg_item *)items[k]->data)->i);
        if (fn_sql_step(st) != FN_SQL_DONE) rc = FN_ERR_DB;
        fn_sql_reset(st);
    }
    fn_sql_finalize(st);
    return rc;
}

/* Once per batch before its commit: where a test cancels the whole job "during" a shard. */
static char *rg_cursor(fn_batch *b)
{
    rg_job *j = fn_batch_state(b);
    if (R.cancel_at_batch && atomic_fetch_add(&R.batches, 1) + 1 == R.cancel_at_batch &&
        fn_job_cancel(R.e, R.cancel_id) != 0)
        abort();
    char *s = malloc(48);
    if (s) snprintf(s, 48, "{\"last\":%lld}", (long long)(j->pos - 1));
    return s;
}

static int rg_bounds_fn(fn_batch *b, int64_t per, char ***cursors, size_t *n)
{
    atomic_fetch_add(&R.bounds_calls, 1);
    int64_t items = fn_batch_int(b, "n");
    size_t k = items > 0 ? (size_t)((items - 1) / per) : 0;
    *cursors = calloc(k ? k : 1, sizeof **cursors);
    *n = k;
    for (size_t i = 0; i < k; i++) {
        (*cursors)[i] = malloc(48);
        snprintf((*cursors)[i], 48, "{\"last\":%lld}", (long long)((int64_t)(i + 1) * per - 1));
    }
    return 0;
}

static fn_resolution rg_resolution(const char *code)
{
    (void)code;
    return FN_RES_RETRY;
}

static const fn_jobtype range_type = {
    .type = "range",
    .params = rg_params,
    .n_params = sizeof rg_params / sizeof rg_params[0],
    .counters = rg_counters,
    .n_counters = RG_COUNT,
    .histograms = rg_hists,
    .n_histograms = 1,
    .done_counter = RG_DONE,
    .total_counter = RG_TOTAL,
    .errors_counter = RG_ERRORS,
    .item_ref = "rg-N",
    .batch_param = "batch",
    .job_size = sizeof(rg_job),
    .item_size = sizeof(rg_item),
    .open = rg_open,
    .next = rg_next,
    .retry_item = rg_retry,
    .process = rg_process,
    .write = rg_write,
    .cursor = rg_cursor,
    .resolution = rg_resolution,
    .shard_param = "shard_items",
    .shard_bounds = rg_bounds_fn,
};

/* ---- fixture ----------------------------------------------------------------------------------
 */

static void shard_10(fn_config *c)
{
    c->ingest_shard_photos = 10;
}

static void register_range(fn_engine *e)
{
    assert_int_equal(fn_jobtype_register(e, &range_type), 0);
}

static int setup(void **state)
{
    memset(&R, 0, sizeof R);
    fx *f = fx_open(NULL, shard_10, register_range);
    R.e = f->e;
    *state = f;
    return 0;
}

static long long q(fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long long q(fx *f, const char *fmt, ...)
{
    char sql[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return q_int(f->dir, sql);
}

static fn_job_info *info(fx *f, fn_job_id id)
{
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(f->e, id, &j), 0);
    return j;
}

/* Every item of 0..n-1 exactly once in the rows. */
static void assert_rows_exact(fx *f, long long n)
{
    assert_int_equal(q(f, "SELECT count(*) FROM rg"), n);
    assert_int_equal(q(f, "SELECT count(DISTINCT i) FROM rg"), n);
    assert_int_equal(q(f, "SELECT min(i) FROM rg"), 0);
    assert_int_equal(q(f, "SELECT max(i) FROM rg"), n - 1);
}

/* ---- tests ------------------------------------------------------------------------------------
 */

/* 25 items in ranges of 10: three shards (0-9, 10-19, 20-24) that hold every item once; the split
 * job completes with its shards' counters and histograms, its checkpoint counting their items. */
static void test_split_boundaries(void **state)
{
    fx *f = *state;
    fn_job_id id;
    assert_int_equal(fn_enqueue(f->e, "range", "{\"n\":25}", FN_PRIO_NORMAL, &id), 0);
    int ran = 0;
    assert_int_equal(fn_engine_run_pending(f->e, 0, &ran), 0);
    assert_int_equal(ran, 4); /* the job (its split) and three shards */
    fn_job_info *j = info(f, id);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(j->shards, 3);
    assert_int_equal(progress_counter(j, "items_done"), 25);
    assert_int_equal(progress_counter(j, "items_total"), 25);
    assert_int_equal(progress_hist_total(j, "value"), 25);
    assert_int_equal(json_pos(j->checkpoint, "next_index", -1), 25);
    fn_job_info_free(j);
    assert_int_equal(q(f, "SELECT count(*) FROM jobs WHERE shard_of=%lld", (long long)id), 3);
    assert_int_equal(
        q(f, "SELECT count(*) FROM jobs WHERE shard_of=%lld AND state=3", (long long)id), 3);
    /* Each shard wrote exactly its range. */
    long long first = q(f, "SELECT min(id) FROM jobs WHERE shard_of=%lld", (long long)id);
    const long long lo[3] = {0, 10, 20}, hi[3] = {9, 19, 24};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(q(f, "SELECT min(i) FROM rg WHERE job=%lld", first + k), lo[k]);
        assert_int_equal(q(f, "SELECT max(i) FROM rg WHERE job=%lld", first + k), hi[k]);
        assert_int_equal(q(f, "SELECT count(*) FROM rg WHERE job=%lld", first + k),
                         hi[k] - lo[k] + 1);
    }
    assert_rows_exact(f, 25);
    /* Nothing written under the split job itself (it did no item's work). */
    assert_int_equal(q(f, "SELECT count(*) FROM rg WHERE job=%lld", (long long)id), 0);
}

/* At the threshold a job is not split; one item above it is (10 + 1). */
static void test_threshold(void **state)
{
    fx *f = *state;
    fn_job_id a, b;
    assert_int_equal(fn_enqueue(f->e, "range", "{\"n\":10}", FN_PRIO_NORMAL, &a), 0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    fn_job_info *j = info(f, a);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(j->shards, 0);
    fn_job_info_free(j);
    assert_int_equal(R.bounds_calls, 0);
    assert_int_equal(q(f, "SELECT count(*) FROM rg WHERE job=%lld", (long long)a), 10);
    assert_int_equal(fn_enqueue(f->e, "range", "{\"n\":11}", FN_PRIO_NORMAL, &b), 0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    j = info(f, b);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(j->shards, 2);
    assert_int_equal(progress_counter(j, "items_done"), 11);
    fn_job_info_free(j);
    assert_int_equal(q(f, "SELECT count(*) FROM rg WHERE job<>%lld", (long long)a), 11);
    assert_int_equal(q(f, "SELECT count(DISTINCT i) FROM rg WHERE job<>%lld", (long long)a), 11);
}

/* Item errors of the shards are the split job's errors (its list, count, counter and events); a
 * shard's events name the split job for its errors, and the split job's own events end with its
 * final state after its last progress. */
static void test_errors_and_events(void **state)
{
    fx *f = *state;
    fn_job_id id;
    assert_int_equal(
        fn_enqueue(f->e, "range", "{\"n\":30,\"bad\":[\"3\",\"17\",\"28\"]}", FN_PRIO_NORMAL, &id),
        0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(f->e, id, &j), 0);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(j->n_errors, 3);
    assert_int_equal(progress_counter(j, "errors"), 3);
    assert_int_equal(progress_counter(j, "items_done"), 30);
    assert_string_equal(j->errors[0].item, "rg-3");
    assert_string_equal(j->errors[1].item, "rg-17");
    assert_string_equal(j->errors[2].item, "rg-28");
    fn_job_info_free(j);
    assert_int_equal(q(f, "SELECT count(*) FROM job_errors WHERE job<>%lld", (long long)id), 0);
    /* The split job's events come through the change feed (the monitor's next tick). */
    fn_event ev[512];
    size_t n = 0;
    int errors = 0, completed_at = -1, last_progress = -1;
    long long last_done = -1;
    for (int tries = 0; tries < 500 && completed_at < 0; tries++) {
        size_t got = 0;
        assert_int_equal(fn_engine_events_drain(f->e, ev + n, 512 - n, &got), 0);
        for (size_t i = n; i < n + got; i++)
            if (ev[i].job == id && ev[i].kind == FN_EVENT_STATE && ev[i].state == FN_JOB_COMPLETED)
                completed_at = (int)i;
        n += got;
        if (completed_at < 0) usleep(10000);
    }
    completed_at = -1;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].job != id) continue;
        if (ev[i].kind == FN_EVENT_ERROR) errors++;
        if (ev[i].kind == FN_EVENT_STATE && ev[i].state == FN_JOB_COMPLETED) completed_at = (int)i;
        if (ev[i].kind == FN_EVENT_PROGRESS) {
            last_progress = (int)i;
            json_t *p = json_loads(ev[i].json, 0, NULL);
            last_done = (long long)json_integer_value(
                json_object_get(json_object_get(p, "counters"), "items_done"));
            json_decref(p);
        }
    }
    for (size_t i = 0; i < n; i++)
        fn_event_clear(&ev[i]);
    assert_int_equal(errors, 3);
    assert_true(completed_at >= 0);
    assert_true(last_progress >= 0 && last_progress < completed_at);
    assert_int_equal(last_done, 30);
}

/* Cancel of the split job while its shards are queued cancels them all at once, and the job with
 * them; a resume splits again into the same ranges and does every item once. */
static void test_cancel_queued_then_resume(void **state)
{
    fx *f = *state;
    fn_job_id id;
    assert_int_equal(fn_enqueue(f->e, "range", "{\"n\":25}", FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_engine_run_pending(f->e, 1, NULL), 0); /* only the split */
    fn_job_info *j = info(f, id);
    assert_int_equal(j->state, FN_JOB_RUNNING);
    assert_int_equal(j->shards, 3);
    fn_job_info_free(j);
    assert_int_equal(fn_job_cancel(f->e, id), 0);
    j = info(f, id);
    assert_int_equal(j->state, FN_JOB_CANCELLED);
    fn_job_info_free(j);
    assert_int_equal(
        q(f, "SELECT count(*) FROM jobs WHERE shard_of=%lld AND state=2", (long long)id), 3);
    int ran = -1;
    assert_int_equal(fn_engine_run_pending(f->e, 0, &ran), 0);
    assert_int_equal(ran, 0);
    fn_followup fu;
    assert_int_equal(fn_job_resume_ex(f->e, id, &fu), 0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    j = info(f, fu.id);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(j->shards, 3);
    assert_int_equal(progress_counter(j, "items_done"), 25);
    fn_job_info_free(j);
    assert_rows_exact(f, 25);
}

/* Cancel of the split job while a shard runs (from inside its second batch): the running shard
 * stops after that batch, the queued ones at once, and the job ends cancelled when the running one
 * has. Its progress counts what was done. The resume continues the stopped shard from its
 * checkpoint and runs the others: every item once. A shard cannot be resumed or retried alone. */
static void test_cancel_running_then_resume(void **state)
{
    fx *f = *state;
    fn_job_id id;
    assert_int_equal(fn_enqueue(f->e, "range", "{\"n\":25}", FN_PRIO_NORMAL, &id), 0);
    R.cancel_id = id;
    R.cancel_at_batch = 2; /* batches of 4: the first shard stops after items 0-7 */
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    fn_job_info *j = info(f, id);
    assert_int_equal(j->state, FN_JOB_CANCELLED);
    assert_int_equal(progress_counter(j, "items_done"), 8);
    assert_int_equal(json_pos(j->checkpoint, "next_index", -1), 8);
    fn_job_info_free(j);
    assert_int_equal(q(f, "SELECT count(*) FROM rg"), 8);
    long long shard0 = q(f, "SELECT min(id) FROM jobs WHERE shard_of=%lld", (long long)id);
    assert_int_equal(fn_job_resume(f->e, shard0, NULL), FN_ERR_STATE);
    assert_non_null(strstr(fn_engine_errmsg(f->e), "is a shard of job"));
    assert_int_equal(fn_job_retry(f->e, shard0, NULL, NULL), FN_ERR_STATE);
    R.cancel_at_batch = 0;
    fn_followup fu;
    assert_int_equal(fn_job_resume_ex(f->e, id, &fu), 0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    j = info(f, fu.id);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(progress_counter(j, "items_done"), 25);
    fn_job_info_free(j);
    assert_rows_exact(f, 25);
}

/* A shard that fails fails the split job once its other shards have ended (they run to their
 * end: their work stands), with the shard's reason; the resume redoes only that shard's rest, and
 * a retry of the job takes its errors, whichever shard recorded them. */
static void test_failed_shard_resume_retry(void **state)
{
    fx *f = *state;
    fn_job_id id;
    assert_int_equal(
        fn_enqueue(f->e, "range", "{\"n\":25,\"bad\":[\"2\",\"22\"]}", FN_PRIO_NORMAL, &id), 0);
    R.fail_at = 14;
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    fn_job_info *j = info(f, id);
    assert_int_equal(j->state, FN_JOB_FAILED);
    assert_non_null(j->fail_reason);
    assert_non_null(strstr(j->fail_reason, "the source broke at 14"));
    assert_int_equal(progress_counter(j, "items_done"),
                     10 + 4 + 5); /* shard 2 stopped after 10-13 */
    fn_job_info_free(j);
    assert_int_equal(q(f, "SELECT count(*) FROM rg"), 10 + 4 + 5 - 2);
    R.fail_at = 0;
    fn_followup fu;
    assert_int_equal(fn_job_resume_ex(f->e, id, &fu), 0);
    assert_int_equal(fu.items, 2); /* the two bad items, redone by the resume itself */
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    j = info(f, fu.id);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(j->shards, 1);   /* only the failed shard goes on */
    assert_int_equal(j->n_errors, 2); /* still bad */
    fn_job_info_free(j);
    assert_int_equal(q(f, "SELECT count(*) FROM rg"), 23);
    assert_int_equal(q(f, "SELECT count(DISTINCT i) FROM rg"), 23);
    R.fixed = 1;
    fn_followup rt;
    assert_int_equal(fn_job_retry_ex(f->e, fu.id, NULL, &rt), 0);
    assert_int_equal(rt.items, 2);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    j = info(f, rt.id);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(j->shards, 0); /* a retry is never split */
    fn_job_info_free(j);
    assert_rows_exact(f, 25);
}

/* A resume cancelled in its retry phase, before it split again, still hands the first split
 * job's unfinished shards on to the next resume: every item once in the end. */
static void test_resume_cancelled_before_split(void **state)
{
    fx *f = *state;
    fn_job_id id;
    assert_int_equal(fn_enqueue(f->e, "range", "{\"n\":25,\"bad\":[\"2\"]}", FN_PRIO_NORMAL, &id),
                     0);
    R.cancel_id = id;
    R.cancel_at_batch = 4; /* shard 1's first batch (10-13): shard 2 never runs */
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    fn_job_info *j = info(f, id);
    assert_int_equal(j->state, FN_JOB_CANCELLED);
    fn_job_info_free(j);
    assert_int_equal(q(f, "SELECT count(*) FROM rg"), 13); /* 0-13 but the bad 2 */
    fn_followup fu;
    assert_int_equal(fn_job_resume_ex(f->e, id, &fu), 0);
    R.cancel_id = fu.id; /* cancelled at its first batch: item 2's retry, before it splits */
    R.batches = 0;
    R.cancel_at_batch = 1;
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    j = info(f, fu.id);
    assert_int_equal(j->state, FN_JOB_CANCELLED);
    assert_int_equal(j->shards, 0);
    fn_job_info_free(j);
    R.cancel_at_batch = 0;
    R.fixed = 1;
    fn_followup fu2;
    assert_int_equal(fn_job_resume_ex(f->e, fu.id, &fu2), 0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    j = info(f, fu2.id);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(j->shards, 2); /* the first job's shards 2 and 3 */
    fn_job_info_free(j);
    assert_rows_exact(f, 25);
}

/* A cancel another process wrote to the job's row before it split (this process not yet told):
 * the job is not split (its shards would never hear of the cancel) and ends cancelled. */
static void test_cancel_before_split(void **state)
{
    fx *f = *state;
    fn_job_id id;
    assert_int_equal(fn_enqueue(f->e, "range", "{\"n\":25}", FN_PRIO_NORMAL, &id), 0);
    R.cancel_row_in_open = f->dir;
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    R.cancel_row_in_open = NULL;
    fn_job_info *j = info(f, id);
    assert_int_equal(j->state, FN_JOB_CANCELLED);
    assert_int_equal(j->shards, 0);
    fn_job_info_free(j);
    assert_int_equal(q(f, "SELECT count(*) FROM jobs WHERE shard_of=%lld", (long long)id), 0);
}

/* Two worker threads share one split job's shards; the result is exact. */
static void test_two_threads(void **state)
{
    (void)state;
    memset(&R, 0, sizeof R);
    char *dir = tmp_library();
    fn_config c = test_config();
    c.ingest_shard_photos = 50;
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    register_range(e);
    assert_int_equal(fn_engine_start(e, 2), 0);
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "range", "{\"n\":1000,\"batch\":16}", FN_PRIO_NORMAL, &id), 0);
    fn_job_state st;
    assert_int_equal(fn_job_wait(e, id, 60000, &st), 0);
    assert_int_equal(st, FN_JOB_COMPLETED);
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(e, id, &j), 0);
    assert_int_equal(j->shards, 20);
    assert_int_equal(progress_counter(j, "items_done"), 1000);
    fn_job_info_free(j);
    fn_engine_close(e);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM rg"), 1000);
    assert_int_equal(q_int(dir, "SELECT count(DISTINCT i) FROM rg"), 1000);
    rm_library(dir);
}

/* The split job runs under no owner; recovery (an engine that opens the library) leaves it alone
 * and its shards finish it. */
static void test_not_recovered(void **state)
{
    fx *f = *state;
    fn_job_id id;
    assert_int_equal(fn_enqueue(f->e, "range", "{\"n\":25}", FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_engine_run_pending(f->e, 1, NULL), 0); /* the split only */
    fn_engine_close(f->e);
    fn_config c = test_config();
    c.ingest_shard_photos = 10;
    assert_int_equal(fn_engine_open(f->dir, &c, &f->e), 0);
    register_range(f->e);
    assert_int_equal(fn_engine_start(f->e, 0), 0);
    R.e = f->e;
    fn_job_info *j = info(f, id);
    assert_int_equal(j->state, FN_JOB_RUNNING);
    fn_job_info_free(j);
    int ran = 0;
    assert_int_equal(fn_engine_run_pending(f->e, 0, &ran), 0);
    assert_int_equal(ran, 3); /* its shards, not the job again */
    j = info(f, id);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    fn_job_info_free(j);
    assert_rows_exact(f, 25);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_split_boundaries, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_threshold, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_errors_and_events, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_queued_then_resume, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_running_then_resume, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_failed_shard_resume_retry, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_before_split, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_resume_cancelled_before_split, setup, fx_teardown),
        cmocka_unit_test(test_two_threads),
        cmocka_unit_test_setup_teardown(test_not_recovered, setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
