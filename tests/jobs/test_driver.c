/* test_driver.c: the batch-job driver with a synthetic job type ("squares": item i of n squares
 * i on a worker slot and writes a row): payload checks at enqueue and the resolved payload,
 * counters, errors and their resolutions, slots opened once and warmed once per batch, the flush
 * policy, cancel then resume (no item twice, none lost), retry of selected items, and failures of
 * a slot, the source and the rows. Inline mode: deterministic. Then, on worker threads: batches
 * that overlap, and a type with a `prepare` stage and the prefetcher (workers.prefetch). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "facenames/jobtype.h"
#include "helpers.h"

/* ---- the "squares" type -----------------------------------------------------------------------
 */

enum { SQ_TOTAL, SQ_DONE, SQ_ERRORS, SQ_SKIPPED, SQ_COUNT };
static const char *const sq_counters[SQ_COUNT] = {"items_total", "items_done", "errors", "skipped"};
static const double sq_bounds[] = {10, 100, 1000};
static const fn_histogram_decl sq_hists[] = {{"square", sq_bounds, 3}};
static const char *const sq_modes[] = {"fast", "slow", NULL};
static const fn_param sq_params[] = {
    {"n", FN_PARAM_INT, NULL, NULL, 0, 100000, NULL, "items"},
    {"batch", FN_PARAM_INT, NULL, "4", 1, 1000, NULL, NULL},
    {"bad", FN_PARAM_STRINGS, NULL, "[]", 0, 0, NULL, NULL},
    {"skip_every", FN_PARAM_INT, NULL, "0", 0, 1000, NULL, NULL},
    {"scale", FN_PARAM_REAL, NULL, "1", 0, 10, NULL, NULL},
    {"mode", FN_PARAM_STRING, NULL, "\"fast\"", 0, 0, sq_modes, NULL},
    {"min", FN_PARAM_INT, "ingest.min_face_size", NULL, 0, 100000, NULL, NULL},
    {"verbose", FN_PARAM_BOOL, NULL, "false", 0, 0, NULL, NULL},
};

typedef struct sq_job {
    int64_t pos;
} sq_job;
typedef struct sq_item {
    int64_t i, square;
} sq_item;
typedef struct sq_slot {
    int opened;
} sq_slot;

static struct {
    atomic_int slot_opens, warms, writes, cursors, fixed, fail_slot, fail_source_at,
        cancel_after_batches, processed, spin, check_commits, bad_commits;
    fn_engine *e;
} S;

static int sq_open(fn_batch *b)
{
    sq_job *j = fn_batch_state(b);
    j->pos = fn_batch_next_index(b);
    fn_batch_set(b, SQ_TOTAL, fn_batch_int(b, "n"));
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

static int fill(fn_batch *b, int64_t i, fn_item *it)
{
    char ref[32];
    snprintf(ref, sizeof ref, "sq-%lld", (long long)i);
    if (fn_item_set_ref(it, ref) < 0) return FN_ERR_NOMEM;
    ((sq_item *)it->data)->i = i;
    int64_t every = fn_batch_int(b, "skip_every");
    if (every && i % every == every - 1) {
        fn_batch_add(b, SQ_SKIPPED, 1);
        return FN_SOURCE_ITEM; /* handled, nothing to keep */
    }
    it->work = 1;
    return FN_SOURCE_ITEM;
}

static int sq_next(fn_batch *b, fn_item *it)
{
    sq_job *j = fn_batch_state(b);
    if (S.fail_source_at && j->pos == S.fail_source_at) {
        fn_batch_fail(b, "squares: the source broke at %lld", (long long)j->pos);
        return FN_ERR_IO;
    }
    if (j->pos >= fn_batch_int(b, "n")) return FN_SOURCE_END;
    return fill(b, j->pos++, it);
}

static int sq_retry(fn_batch *b, const char *ref, fn_item *it)
{
    return fill(b, atoll(ref + 3), it);
}

static int sq_slot_open(fn_batch *b, void *slot, char *err, size_t errlen)
{
    (void)b;
    atomic_fetch_add(&S.slot_opens, 1);
    if (S.fail_slot) {
        snprintf(err, errlen, "no accelerator for this slot");
        return FN_ERR_UNSUPPORTED;
    }
    ((sq_slot *)slot)->opened = 1;
    return 0;
}

static int sq_warm(fn_batch *b)
{
    (void)b;
    atomic_fetch_add(&S.warms, 1);
    return 0;
}

static void sq_process(fn_batch *b, void *slot, fn_item *it)
{
    sq_item *d = it->data;
    if (!((sq_slot *)slot)->opened) abort();
    atomic_fetch_add(&S.processed, 1);
    if (S.spin) spin_us(S.spin);
    if (!S.fixed && is_bad(b, d->i)) {
        fn_item_fail(it, FN_ERR_CORRUPT, d->i % 2 ? "odd_bad" : NULL, "%s: simulated", it->ref);
        return;
    }
    d->square = d->i * d->i;
    fn_batch_observe(b, 0, (double)d->square);
}

/* Items of 0..n-1 that skip_every = 7 skips. */
static long long skipped_below(long long n)
{
    return n / 7; /* i = 6, 13, ...: i + 1 a multiple of 7 */
}

static int sq_write(fn_batch *b, fn_store_tx *tx, fn_item *const *items, size_t n)
{
    atomic_fetch_add(&S.writes, 1);
    if (S.check_commits) {
        /* (skip_every 7, batches that end at a work item) What commits with this batch counts
         * the skips up to its last item, none of the batch after it. */
        long long last = -1;
        for (size_t k = 0; k < n; k++)
            if (((const sq_item *)items[k]->data)->i > last)
                last = ((const sq_item *)items[k]->data)->i;
        if (last >= 0 && fn_batch_get(b, SQ_SKIPPED) != skipped_below(last + 1))
            atomic_fetch_add(&S.bad_commits, 1);
    }
    fn_store *s = fn_store_tx_store(tx);
    if (fn_sql_exec(s, "CREATE TABLE IF NOT EXISTS sq(job INTEGER, i INTEGER, square INTEGER)") !=
        FN_OK)
        return FN_ERR_DB;
    fn_sql_stmt *st;
    if (fn_sql_prepare(s, "INSERT INTO sq VALUES(?1,?2,?3)", &st) != FN_OK) return FN_ERR_DB;
    int rc = 0;
    for (size_t k = 0; k < n && !rc; k++) {
        if (items[k]->err || !items[k]->work) continue;
        const sq_item *d = items[k]->data;
        fn_sql_bind_int64(st, 1, fn_job_id_of(fn_batch_ctx(b)));
        fn_sql_bind_int64(st, 2, d->i);
        fn_sql_bind_int64(st, 3, d->square);
        if (fn_sql_step(st) != FN_SQL_DONE) rc = FN_ERR_DB;
        fn_sql_reset(st);
    }
    fn_sql_finalize(st);
    return rc;
}

/* Called once per batch, before its commit and outside the transaction: where a test cancels
 * "during" a batch (the job stops after committing it). */
static char *sq_cursor(fn_batch *b)
{
    sq_job *j = fn_batch_state(b);
    int k = atomic_fetch_add(&S.cursors, 1) + 1;
    if (S.cancel_after_batches && k == S.cancel_after_batches &&
        fn_job_cancel(S.e, fn_job_id_of(fn_batch_ctx(b))) != 0)
        abort();
    char *s = malloc(48);
    if (s) snprintf(s, 48, "{\"pos\":%lld}", (long long)j->pos);
    return s;
}

static fn_resolution sq_resolution(const char *code)
{
    return strcmp(code, "odd_bad") == 0 ? FN_RES_SKIP : FN_RES_RETRY;
}

static char *sq_summary(const fn_job_info *job, void *user)
{
    (void)user;
    char *s = malloc(64);
    if (s) snprintf(s, 64, "squares job %lld\n", (long long)job->id);
    return s;
}

static const fn_jobtype squares = {
    .type = "squares",
    .params = sq_params,
    .n_params = sizeof sq_params / sizeof sq_params[0],
    .counters = sq_counters,
    .n_counters = SQ_COUNT,
    .histograms = sq_hists,
    .n_histograms = 1,
    .done_counter = SQ_DONE,
    .total_counter = SQ_TOTAL,
    .errors_counter = SQ_ERRORS,
    .item_ref = "sq-N",
    .rate_unit = "squares",
    .batch_param = "batch",
    .flush_items = 10,
    .flush_ms = 60000,
    .job_size = sizeof(sq_job),
    .slot_size = sizeof(sq_slot),
    .item_size = sizeof(sq_item),
    .open = sq_open,
    .slot_open = sq_slot_open,
    .next = sq_next,
    .retry_item = sq_retry,
    .warm = sq_warm,
    .process = sq_process,
    .write = sq_write,
    .cursor = sq_cursor,
    .resolution = sq_resolution,
    .summary = sq_summary,
};

/* ---- fixture ----------------------------------------------------------------------------------
 */

static void min_face_77(fn_config *c)
{
    c->ingest_min_face_size = 77;
}

static void register_squares(fn_engine *e)
{
    assert_int_equal(fn_jobtype_register(e, &squares), 0);
}

static int setup(void **state)
{
    memset(&S, 0, sizeof S);
    fx *f = fx_open(NULL, min_face_77, register_squares);
    S.e = f->e;
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

/* ---- tests ------------------------------------------------------------------------------------
 */

/* A bad payload is refused at enqueue, with the key and what is allowed, and leaves no job. */
static void test_payload_refused_at_enqueue(void **state)
{
    fx *f = *state;
    static const struct {
        const char *payload, *says;
    } cases[] = {
        {"{\"n\":5,\"nn\":1}", "unknown key \"nn\" (known: n, batch, bad"},
        {"{}", "\"n\" is required"},
        {"{\"n\":\"5\"}", "\"n\" must be an integer"},
        {"{\"n\":100001}", "\"n\" is 100001; it must be an integer from 0 to 100000"},
        {"{\"n\":1,\"batch\":0}", "\"batch\" is 0"},
        {"{\"n\":1,\"bad\":[1]}", "\"bad\"[0] must be a non-empty string"},
        {"{\"n\":1,\"mode\":\"medium\"}", "must be one of \"fast\", \"slow\""},
        {"{\"n\":1,\"scale\":11}", "\"scale\" is 11"},
        {"{\"n\":1,\"verbose\":1}", "\"verbose\" must be true or false"},
        {"[1]", "must be a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fn_job_id id = 0;
        assert_int_equal(fn_enqueue(f->e, "squares", cases[i].payload, FN_PRIO_NORMAL, &id),
                         FN_ERR_INVALID);
        if (!strstr(fn_engine_errmsg(f->e), cases[i].says))
            fail_msg("payload %s: got \"%s\", want \"%s\"", cases[i].payload,
                     fn_engine_errmsg(f->e), cases[i].says);
    }
    assert_int_equal(q(f, "SELECT count(*) FROM jobs"), 0);
    /* A bulk enqueue is refused whole. */
    fn_enqueue_opts o[2] = {
        {.type = "squares", .payload = "{\"n\":1}", .gpu_slots = -1, .mem_mb = -1},
        {.type = "squares", .payload = "{\"x\":1}", .gpu_slots = -1, .mem_mb = -1}};
    assert_int_equal(fn_enqueue_many(f->e, o, 2, NULL), FN_ERR_INVALID);
    assert_int_equal(q(f, "SELECT count(*) FROM jobs"), 0);
}

/* The stored payload is the job's complete settings: every key, schema order, defaults filled
 * (from the configuration where the schema says so). */
static void test_payload_resolved(void **state)
{
    fx *f = *state;
    fn_job_id id;
    assert_int_equal(fn_enqueue(f->e, "squares", "{\"scale\":2,\"n\":3}", FN_PRIO_NORMAL, &id), 0);
    fn_job_info *j = info(f, id);
    assert_string_equal(j->payload,
                        "{\"n\":3,\"batch\":4,\"bad\":[],\"skip_every\":0,\"scale\":2.0,"
                        "\"mode\":\"fast\",\"min\":77,\"verbose\":false}");
    fn_job_info_free(j);
    /* The same settings written another way are the same job: enqueue-or-continue finds it. */
    int continued = 0;
    fn_job_id id2;
    fn_enqueue_opts o = {.type = "squares",
                         .payload = "{\"n\":3,\"scale\":2.0,\"min\":77}",
                         .priority = FN_PRIO_NORMAL,
                         .gpu_slots = -1,
                         .mem_mb = -1};
    assert_int_equal(fn_enqueue_or_continue(f->e, &o, &id2, &continued), 0);
    assert_int_equal(continued, 1);
    assert_int_equal(id2, id);
    /* ... but not once it has run, nor with other settings. */
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    assert_int_equal(fn_enqueue_or_continue(f->e, &o, &id2, &continued), 0);
    assert_int_equal(continued, 0);
    assert_true(id2 != id);
    o.payload = "{\"n\":4}";
    fn_job_id id3;
    assert_int_equal(fn_enqueue_or_continue(f->e, &o, &id3, &continued), 0);
    assert_int_equal(continued, 0);
    assert_true(id3 != id2);
}

static void test_run_counters_errors(void **state)
{
    fx *f = *state;
    fn_job_id id;
    assert_int_equal(fn_enqueue(f->e, "squares",
                                "{\"n\":30,\"batch\":4,\"skip_every\":5,\"bad\":[\"3\",\"8\"]}",
                                FN_PRIO_NORMAL, &id),
                     0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    fn_job_info *j = info(f, id);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(progress_counter(j, "items_total"), 30);
    assert_int_equal(progress_counter(j, "items_done"), 30);
    assert_int_equal(progress_counter(j, "skipped"), 6);
    assert_int_equal(progress_counter(j, "errors"), 2);
    assert_int_equal(j->n_errors, 2);
    assert_string_equal(j->errors[0].item, "sq-3");
    assert_string_equal(j->errors[0].code, "odd_bad");
    assert_int_equal(j->errors[0].resolution, FN_RES_SKIP);
    assert_string_equal(j->errors[1].code, "corrupt");
    assert_int_equal(j->errors[1].resolution, FN_RES_RETRY);
    assert_non_null(strstr(j->checkpoint, "\"next_index\":30"));
    assert_non_null(strstr(j->checkpoint, "\"pos\":30"));
    assert_non_null(strstr(j->progress, "\"square\""));
    fn_job_info_free(j);
    assert_int_equal(q(f, "SELECT count(*) FROM sq"), 30 - 6 - 2);
    assert_int_equal(q(f, "SELECT count(*) - count(DISTINCT i) FROM sq"), 0);
    assert_int_equal(q(f, "SELECT sum(CASE WHEN square = i * i THEN 1 ELSE 0 END) FROM sq"), 22);
    /* One slot (inline mode), opened once; warmed once per batch with work: 24 items of work in
     * batches of 4 (the skipped ones need none). */
    assert_int_equal(atomic_load(&S.slot_opens), 1);
    assert_int_equal(atomic_load(&S.warms), 6);
    /* The type's summary and rate unit. */
    j = info(f, id);
    char *text = NULL;
    assert_int_equal(fn_job_summary(f->e, j, &text), 0);
    assert_string_equal(text, "squares job 1\n");
    free(text);
    fn_job_info_free(j);
    assert_string_equal(fn_engine_rate_unit(f->e, "squares"), "squares");
    assert_string_equal(fn_engine_rate_unit(f->e, "unknown"), "items");
}

/* Items without work still commit: after flush_items (10) of them, not only at the end. */
static void test_flush_policy(void **state)
{
    fx *f = *state;
    fn_job_id id;
    assert_int_equal(
        fn_enqueue(f->e, "squares", "{\"n\":35,\"skip_every\":1}", FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    assert_int_equal(atomic_load(&S.writes), 4); /* at 10, 20, 30, and the end */
    assert_int_equal(atomic_load(&S.warms), 0);  /* nothing needed work: nothing warmed */
    assert_int_equal(atomic_load(&S.slot_opens), 0);
    fn_job_info *j = info(f, id);
    assert_int_equal(progress_counter(j, "items_done"), 35);
    fn_job_info_free(j);
}

/* Cancel after the second batch, then resume: every item once, none lost, the checkpoint moving
 * with the batches. */
static void test_cancel_resume(void **state)
{
    fx *f = *state;
    fn_job_id id;
    assert_int_equal(
        fn_enqueue(f->e, "squares", "{\"n\":20,\"batch\":3,\"bad\":[\"4\"]}", FN_PRIO_NORMAL, &id),
        0);
    S.cancel_after_batches = 2;
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    fn_job_info *j = info(f, id);
    assert_int_equal(j->state, FN_JOB_CANCELLED);
    assert_string_equal(j->checkpoint, "{\"next_index\":6,\"pos\":6}");
    assert_int_equal(progress_counter(j, "items_done"), 6);
    fn_job_info_free(j);
    assert_int_equal(q(f, "SELECT count(*) FROM sq"), 5); /* 0..5 but 4 */
    S.cancel_after_batches = 0;
    S.fixed = 1; /* the resume meets item 4 again (pending... here retry): now it succeeds */
    fn_followup fu;
    assert_int_equal(fn_job_resume_ex(f->e, id, &fu), 0);
    assert_int_equal(fu.continued, 0);
    assert_int_equal(fu.items, 1);
    assert_int_equal(fu.retry, 1);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    j = info(f, fu.id);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(j->n_errors, 0);
    assert_int_equal(progress_counter(j, "items_total"), 21); /* 20, and item 4 once more */
    assert_int_equal(progress_counter(j, "items_done"), 21);
    assert_string_equal(j->checkpoint, "{\"next_index\":20,\"retry_next\":1,\"pos\":20}");
    fn_job_info_free(j);
    assert_int_equal(q(f, "SELECT count(*) FROM sq"), 20);
    assert_int_equal(q(f, "SELECT count(*) - count(DISTINCT i) FROM sq"), 0);
    /* One live resume per job. */
    assert_int_equal(fn_job_resume(f->e, id, NULL), 0); /* the first child completed: allowed */
    fn_job_id again;
    assert_int_equal(fn_job_resume(f->e, id, &again), FN_ERR_STATE);
    assert_non_null(strstr(fn_engine_errmsg(f->e), "is already being resumed by job"));
}

/* A resume of a resume that was cancelled after its retry phase redoes ITS retry items: the
 * checkpoint it starts from says how far its parent got through the parent's own retry list,
 * which is not its list. (Before, the resume inherited "retry_next" and skipped that many of its
 * retry items: item 4 was lost.) */
static void test_resume_of_resume(void **state)
{
    fx *f = *state;
    fn_job_id id;
    assert_int_equal(
        fn_enqueue(f->e, "squares", "{\"n\":20,\"batch\":3,\"bad\":[\"4\"]}", FN_PRIO_NORMAL, &id),
        0);
    S.cancel_after_batches = 2; /* items 0-5, 4 failed */
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    fn_followup fu;
    assert_int_equal(fn_job_resume_ex(f->e, id, &fu), 0);
    S.cursors = 0;
    S.cancel_after_batches = 1; /* its first batch: item 4 again (still bad), 6 and 7 */
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    fn_job_info *j = info(f, fu.id);
    assert_int_equal(j->state, FN_JOB_CANCELLED);
    assert_int_equal(j->n_errors, 1);
    fn_job_info_free(j);
    S.cancel_after_batches = 0;
    S.fixed = 1;
    fn_followup fu2;
    assert_int_equal(fn_job_resume_ex(f->e, fu.id, &fu2), 0);
    assert_int_equal(fu2.items, 1);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    j = info(f, fu2.id);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(j->n_errors, 0);
    fn_job_info_free(j);
    assert_int_equal(q(f, "SELECT count(*) FROM sq WHERE i=4"), 1);
    assert_int_equal(q(f, "SELECT count(DISTINCT i) FROM sq"), 20);
    assert_int_equal(q(f, "SELECT count(*) FROM sq"), 20);
}

/* Retry: only the selected items, through retry_item; the retry job is marked and walks nothing
 * else. */
static void test_retry_items(void **state)
{
    fx *f = *state;
    fn_job_id id;
    assert_int_equal(fn_enqueue(f->e, "squares", "{\"n\":12,\"bad\":[\"1\",\"2\",\"5\",\"6\"]}",
                                FN_PRIO_NORMAL, &id),
                     0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    /* 1 and 5 are odd_bad (skip), 2 and 6 corrupt (retry): the default takes 2 and 6. */
    S.fixed = 1;
    fn_followup fu;
    assert_int_equal(fn_job_retry_ex(f->e, id, NULL, &fu), 0);
    assert_int_equal(fu.items, 2);
    assert_int_equal(fu.retry, 2);
    assert_int_equal(fu.left, 2);
    int before = atomic_load(&S.writes);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    fn_job_info *j = info(f, fu.id);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(j->retry_only, 1);
    assert_int_equal(progress_counter(j, "items_total"), 2);
    assert_int_equal(progress_counter(j, "items_done"), 2);
    fn_job_info_free(j);
    assert_int_equal(atomic_load(&S.writes) - before, 1);
    assert_int_equal(q(f, "SELECT count(*) FROM sq WHERE job=%lld", (long long)fu.id), 2);
    assert_int_equal(q(f, "SELECT sum(i) FROM sq WHERE job=%lld", (long long)fu.id), 8);
    /* Naming a skipped one explicitly takes it. */
    const char *items[] = {"sq-5"};
    fn_error_selection sel = {.items = items, .n_items = 1};
    assert_int_equal(fn_job_retry_ex(f->e, id, &sel, &fu), 0);
    assert_int_equal(fu.items, 1);
    assert_int_equal(fu.skipped, 1);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    assert_int_equal(q(f, "SELECT i FROM sq WHERE job=%lld", (long long)fu.id), 5);
}

/* More retry items than one page of the driver (256): each once, in order. */
static void test_retry_pages(void **state)
{
    fx *f = *state;
    char payload[8192] = "{\"n\":700,\"batch\":64,\"bad\":[";
    for (int i = 0; i < 700; i += 2)
        snprintf(payload + strlen(payload), sizeof payload - strlen(payload), "%s\"%d\"",
                 i ? "," : "", i);
    strcat(payload, "]}");
    fn_job_id id;
    assert_int_equal(fn_enqueue(f->e, "squares", payload, FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    assert_int_equal(q(f, "SELECT count(*) FROM sq"), 350);
    S.fixed = 1;
    fn_followup fu;
    assert_int_equal(fn_job_retry_ex(f->e, id, NULL, &fu), 0);
    assert_int_equal(fu.items, 350);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    assert_int_equal(q(f, "SELECT count(*) FROM sq WHERE job=%lld", (long long)fu.id), 350);
    assert_int_equal(q(f, "SELECT count(DISTINCT i) FROM sq"), 700);
    assert_int_equal(q(f, "SELECT sum(i %% 2) FROM sq WHERE job=%lld", (long long)fu.id), 0);
}

/* A slot that cannot be set up fails the job with its reason; a source error too. */
static void test_failures(void **state)
{
    fx *f = *state;
    fn_job_id id;
    S.fail_slot = 1;
    assert_int_equal(fn_enqueue(f->e, "squares", "{\"n\":5}", FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    fn_job_info *j = info(f, id);
    assert_int_equal(j->state, FN_JOB_FAILED);
    assert_non_null(strstr(j->fail_reason, "no accelerator for this slot"));
    fn_job_info_free(j);
    assert_int_equal(q(f, "SELECT count(*) FROM sq"), -1); /* nothing written: no table even */
    S.fail_slot = 0;
    S.fail_source_at = 7;
    assert_int_equal(fn_enqueue(f->e, "squares", "{\"n\":10,\"batch\":2}", FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    j = info(f, id);
    assert_int_equal(j->state, FN_JOB_FAILED);
    assert_non_null(strstr(j->fail_reason, "the source broke at 7"));
    assert_non_null(strstr(j->checkpoint, "\"pos\":6")); /* batches before it committed */
    fn_job_info_free(j);
    assert_int_equal(q(f, "SELECT count(*) FROM sq"), 6);
}

/* ---- overlapping batches ----------------------------------------------------------------------
 */

static fn_jobtype sq_overlap;

/* A type that overlaps its batches, on two worker threads: the workers run a batch while the
 * job's thread gathers the next and commits the one before. A straight run counts every item
 * once (the skips counted while the batch before was not committed, the squares observed while
 * it was, wait for their own batch's commit). A cancel commits the running batch and drops the
 * gathered one unworked: what committed is exactly its checkpoint's items, counters and
 * histogram included, no item was processed that did not commit, and the resume ends with every
 * item once. */
static void test_overlap(void **state)
{
    (void)state;
    test_reset();
    memset(&S, 0, sizeof S);
    char *dir = tmp_library();
    fn_config c = test_config();
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    sq_overlap = squares;
    sq_overlap.type = "squares_overlap";
    sq_overlap.overlap = 1;
    assert_int_equal(fn_jobtype_register(e, &sq_overlap), 0);
    assert_int_equal(fn_engine_start(e, 2), 0);
    S.e = e;
    S.spin = 200;
    S.check_commits = 1;
    const char *payload = "{\"n\":300,\"batch\":4,\"skip_every\":7}";
    fn_job_id id;
    fn_job_state st;
    assert_int_equal(fn_enqueue(e, "squares_overlap", payload, FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_job_wait(e, id, 60000, &st), 0);
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(e, id, &j), 0);
    if (st != FN_JOB_COMPLETED)
        fail_msg("job %lld: %s", (long long)id, j->fail_reason ? j->fail_reason : "");
    assert_int_equal(progress_counter(j, "items_done"), 300);
    assert_int_equal(progress_counter(j, "items_total"), 300);
    assert_int_equal(progress_counter(j, "skipped"), skipped_below(300));
    assert_int_equal(progress_hist_total(j, "square"), 300 - skipped_below(300));
    fn_job_info_free(j);
    assert_int_equal(atomic_load(&S.processed), 300 - skipped_below(300));
    assert_int_equal(q_int(dir, "SELECT count(DISTINCT i) FROM sq"), 300 - skipped_below(300));
    assert_int_equal(q_int(dir, "SELECT count(*) FROM sq"), 300 - skipped_below(300));
    assert_int_equal(atomic_load(&S.bad_commits), 0);

    /* Cancelled when the 6th batch is sealed (its cursor taken): the 5th, running, commits. */
    fn_job_id id2;
    atomic_store(&S.processed, 0);
    atomic_store(&S.cursors, 0);
    S.cancel_after_batches = 6;
    assert_int_equal(fn_enqueue(e, "squares_overlap", payload, FN_PRIO_NORMAL, &id2), 0);
    assert_int_equal(fn_job_wait(e, id2, 60000, &st), 0);
    assert_int_equal(st, FN_JOB_CANCELLED);
    assert_int_equal(fn_job_inspect(e, id2, &j), 0);
    json_t *ck = json_loads(j->checkpoint, 0, NULL);
    long long next = (long long)json_integer_value(json_object_get(ck, "next_index"));
    json_decref(ck);
    assert_true(next > 0 && next < 300);
    assert_int_equal(progress_counter(j, "items_done"), next);
    assert_int_equal(progress_counter(j, "skipped"), skipped_below(next));
    assert_int_equal(progress_hist_total(j, "square"), next - skipped_below(next));
    fn_job_info_free(j);
    assert_int_equal(atomic_load(&S.processed), next - skipped_below(next));
    assert_int_equal(q_int(dir, "SELECT count(*) FROM sq WHERE job = 2"),
                     next - skipped_below(next));
    S.cancel_after_batches = 0;
    fn_job_id id3;
    assert_int_equal(fn_job_resume(e, id2, &id3), 0);
    assert_int_equal(fn_job_wait(e, id3, 60000, &st), 0);
    assert_int_equal(st, FN_JOB_COMPLETED);
    assert_int_equal(fn_job_inspect(e, id3, &j), 0);
    assert_int_equal(progress_counter(j, "items_done"), 300);
    assert_int_equal(progress_counter(j, "skipped"), skipped_below(300));
    assert_int_equal(progress_hist_total(j, "square"), 300 - skipped_below(300));
    fn_job_info_free(j);
    assert_int_equal(atomic_load(&S.processed), 300 - skipped_below(300));
    assert_int_equal(q_int(dir, "SELECT count(DISTINCT i) FROM sq WHERE job != 1"),
                     300 - skipped_below(300));
    assert_int_equal(q_int(dir, "SELECT count(*) FROM sq WHERE job != 1"),
                     300 - skipped_below(300));
    assert_int_equal(atomic_load(&S.bad_commits), 0);
    fn_engine_close(e);
    rm_library(dir);
}

/* ---- prepare and the prefetcher ----------------------------------------------------------------
 */

static fn_jobtype sq_prep;
static struct {
    atomic_int prepared, by_other, unprepared, twice, cleared_unprocessed, ahead_seen;
    atomic_int prep_fail;  /* 1: items whose i % 5 == 3 fail in prepare */
    atomic_int wait_ahead; /* 1: the first item processed waits for a second one prepared */
} P;

typedef struct prep_item {
    sq_item sq;   /* (what the squares' callbacks read) */
    int *buf;     /* what prepare keeps in the item: item_clear frees it */
    pthread_t by; /* the thread that prepared it */
    int processed;
} prep_item;

static void pr_prepare(fn_batch *b, fn_item *it)
{
    (void)b;
    prep_item *d = it->data;
    if (d->buf) atomic_fetch_add(&P.twice, 1);
    atomic_fetch_add(&P.prepared, 1);
    d->by = pthread_self();
    if (atomic_load(&P.prep_fail) && d->sq.i % 5 == 3) {
        fn_item_fail(it, FN_ERR_CORRUPT, "undecodable", "%s: simulated decode failure", it->ref);
        return;
    }
    d->buf = malloc(sizeof *d->buf);
    if (d->buf) *d->buf = (int)d->sq.i;
    spin_us(100); /* the "decode" */
}

static void pr_process(fn_batch *b, void *slot, fn_item *it)
{
    prep_item *d = it->data;
    if (!d->buf || *d->buf != (int)d->sq.i) atomic_fetch_add(&P.unprepared, 1);
    if (!pthread_equal(d->by, pthread_self())) atomic_fetch_add(&P.by_other, 1);
    d->processed = 1;
    /* The run's first item waits (10 s at most) until a second item is prepared: with the one
     * worker busy here, only the prefetcher can prepare it. */
    if (atomic_fetch_add(&P.ahead_seen, 1) == 0 && atomic_load(&P.wait_ahead))
        for (int k = 0; k < 10000 && atomic_load(&P.prepared) < 2; k++)
            usleep(1000);
    sq_process(b, slot, it);
}

static void pr_clear(fn_batch *b, fn_item *it)
{
    (void)b;
    prep_item *d = it->data;
    if (d->buf && !d->processed && !it->err) atomic_fetch_add(&P.cleared_unprocessed, 1);
    free(d->buf);
}

/* One worker thread and workers.prefetch `mode`; a 1-worker engine, the type overlapping. */
static fn_engine *prep_engine(char **dir, const char *mode)
{
    test_reset();
    memset(&S, 0, sizeof S);
    memset(&P, 0, sizeof P);
    *dir = tmp_library();
    fn_config c = test_config();
    snprintf(c.workers_prefetch, sizeof c.workers_prefetch, "%s", mode);
    fn_engine *e;
    assert_int_equal(fn_engine_open(*dir, &c, &e), 0);
    sq_prep = squares;
    sq_prep.type = "squares_prep";
    sq_prep.overlap = 1;
    sq_prep.item_size = sizeof(prep_item);
    sq_prep.prepare = pr_prepare;
    sq_prep.process = pr_process;
    sq_prep.item_clear = pr_clear;
    assert_int_equal(fn_jobtype_register(e, &sq_prep), 0);
    assert_int_equal(fn_engine_start(e, 1), 0);
    S.e = e;
    return e;
}

static fn_job_info *run_to_end(fn_engine *e, const char *payload, fn_job_state want)
{
    fn_job_id id;
    fn_job_state st;
    assert_int_equal(fn_enqueue(e, "squares_prep", payload, FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_job_wait(e, id, 60000, &st), 0);
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(e, id, &j), 0);
    if (st != want) fail_msg("job %lld: state %d: %s", (long long)id, (int)st, j->fail_reason);
    return j;
}

/* workers.prefetch = on: every item is prepared exactly once and before its process, and (the
 * workers busy computing) the prefetcher prepares items on its own thread, across the batches'
 * borders too. A failed prepare is the item's error, with the type's resolution, and the item is
 * not processed; the rest go on. */
static void test_prefetch_on(void **state)
{
    (void)state;
    char *dir;
    fn_engine *e = prep_engine(&dir, "on");
    S.spin = 300; /* compute longer than the "decode": the prefetcher keeps ahead */
    atomic_store(&P.wait_ahead, 1);
    fn_job_info *j = run_to_end(e, "{\"n\":60,\"batch\":4}", FN_JOB_COMPLETED);
    assert_int_equal(progress_counter(j, "items_done"), 60);
    fn_job_info_free(j);
    assert_int_equal(atomic_load(&P.prepared), 60);
    assert_int_equal(atomic_load(&P.twice), 0);
    assert_int_equal(atomic_load(&P.unprepared), 0);
    assert_int_equal(atomic_load(&S.processed), 60);
    /* prepared on another thread than the one that processed it: the second item at least
     * (how many more depends on how soon the prefetcher's thread is scheduled) */
    assert_true(atomic_load(&P.by_other) >= 1);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM sq"), 60);

    atomic_store(&P.prep_fail, 1);
    atomic_store(&P.prepared, 0);
    atomic_store(&S.processed, 0);
    j = run_to_end(e, "{\"n\":20,\"batch\":4}", FN_JOB_COMPLETED);
    assert_int_equal(progress_counter(j, "items_done"), 20);
    assert_int_equal(progress_counter(j, "errors"), 4); /* 3, 8, 13, 18 */
    assert_int_equal(j->id, 2);
    fn_job_info_free(j);
    assert_int_equal(atomic_load(&P.prepared), 20);
    assert_int_equal(atomic_load(&S.processed), 16);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM sq WHERE job = 2"), 16);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM job_errors WHERE job = 2 AND code = "
                                "'undecodable' AND item LIKE 'sq-%3'"),
                     2);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM job_errors WHERE job = 2"), 4);
    fn_engine_close(e);
    rm_library(dir);
}

/* A cancel while items are prepared ahead: the prepared, unprocessed ones are cleared (their
 * memory freed: the sanitizer and valgrind runs see a leak otherwise), nothing commits that was
 * not processed, and the resume processes every item once. */
static void test_prefetch_cancel_resume(void **state)
{
    (void)state;
    char *dir;
    fn_engine *e = prep_engine(&dir, "on");
    S.spin = 300;
    S.cancel_after_batches = 4;
    fn_job_info *j = run_to_end(e, "{\"n\":200,\"batch\":4}", FN_JOB_CANCELLED);
    json_t *ck = json_loads(j->checkpoint, 0, NULL);
    long long next = (long long)json_integer_value(json_object_get(ck, "next_index"));
    json_decref(ck);
    fn_job_id id = j->id;
    fn_job_info_free(j);
    assert_true(next > 0 && next < 200);
    assert_int_equal(atomic_load(&S.processed), next);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM sq"), next);
    /* the gathered batch was dropped unworked: whatever the prefetcher had prepared of it */
    assert_true(atomic_load(&P.prepared) >= next);
    assert_int_equal(atomic_load(&P.prepared) - next, atomic_load(&P.cleared_unprocessed));
    S.cancel_after_batches = 0;
    fn_job_id id2;
    fn_job_state st;
    assert_int_equal(fn_job_resume(e, id, &id2), 0);
    assert_int_equal(fn_job_wait(e, id2, 60000, &st), 0);
    assert_int_equal(st, FN_JOB_COMPLETED);
    assert_int_equal(atomic_load(&S.processed), 200);
    assert_int_equal(q_int(dir, "SELECT count(DISTINCT i) FROM sq"), 200);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM sq"), 200);
    assert_int_equal(atomic_load(&P.twice), 0);
    fn_engine_close(e);
    rm_library(dir);
}

/* workers.prefetch = off, and auto in inline mode (one thread, deterministic): the worker
 * prepares each item itself, just before processing it. */
static void test_prefetch_off_and_inline(void **state)
{
    (void)state;
    char *dir;
    fn_engine *e = prep_engine(&dir, "off");
    S.spin = 100;
    fn_job_info_free(run_to_end(e, "{\"n\":30,\"batch\":4}", FN_JOB_COMPLETED));
    assert_int_equal(atomic_load(&P.prepared), 30);
    assert_int_equal(atomic_load(&P.by_other), 0);
    assert_int_equal(atomic_load(&P.unprepared), 0);
    fn_engine_close(e);
    rm_library(dir);

    test_reset();
    memset(&S, 0, sizeof S);
    memset(&P, 0, sizeof P);
    dir = tmp_library();
    fn_config c = test_config();
    assert_string_equal(c.workers_prefetch, "auto"); /* the default */
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    assert_int_equal(fn_jobtype_register(e, &sq_prep), 0);
    S.e = e;
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "squares_prep", "{\"n\":30,\"batch\":4}", FN_PRIO_NORMAL, &id),
                     0);
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    assert_int_equal(atomic_load(&P.prepared), 30);
    assert_int_equal(atomic_load(&S.processed), 30);
    assert_int_equal(atomic_load(&P.by_other), 0);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM sq"), 30);
    fn_engine_close(e);
    rm_library(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_payload_refused_at_enqueue, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_payload_resolved, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_run_counters_errors, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_flush_policy, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_resume, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_resume_of_resume, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_retry_items, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_retry_pages, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_failures, setup, fx_teardown),
        cmocka_unit_test(test_overlap),
        cmocka_unit_test(test_prefetch_on),
        cmocka_unit_test(test_prefetch_cancel_resume),
        cmocka_unit_test(test_prefetch_off_and_inline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
