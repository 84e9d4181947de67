/* test_engine.c: the engine's states and controller API in inline mode (0 threads, so nothing
 * here depends on timing): every state transition, cancel while queued / running / yielding,
 * resume, retry by selection, preemption, aging, the inspect JSON and the lifecycle log. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "helpers.h"
#include "jobs/internal.h"

static int setup(void **state)
{
    static const char *const types[] = {"count", "short", NULL};
    *state = fx_open(types, NULL, NULL);
    return 0;
}

static long long rows_of(const char *dir, fn_job_id job)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM items WHERE job=%lld", (long long)job);
    return q_int(dir, sql);
}

/* Items committed by any job, each counted once; duplicates are reported by dup_items. */
static long long distinct_items(const char *dir)
{
    return q_int(dir, "SELECT count(DISTINCT item) FROM items");
}
static long long dup_items(const char *dir)
{
    return q_int(
        dir, "SELECT count(*) FROM (SELECT item FROM items GROUP BY item HAVING count(*)>1) AS d");
}

static void test_names(void **state)
{
    (void)state;
    for (int s = 0; s <= 4; s++) {
        fn_job_state back;
        assert_int_equal(fn_job_state_parse(fn_job_state_name((fn_job_state)s), &back), 0);
        assert_int_equal(back, s);
    }
    for (int p = 0; p <= 2; p++) {
        fn_priority back;
        assert_int_equal(fn_priority_parse(fn_priority_name((fn_priority)p), &back), 0);
        assert_int_equal(back, p);
    }
    for (int r = 0; r <= 2; r++) {
        fn_resolution back;
        assert_int_equal(fn_resolution_parse(fn_resolution_name((fn_resolution)r), &back), 0);
        assert_int_equal(back, r);
    }
    fn_job_state s;
    assert_int_equal(fn_job_state_parse("done", &s), FN_ERR_INVALID);
    assert_int_equal(fn_job_state_parse(NULL, &s), FN_ERR_INVALID);
    assert_string_equal(fn_job_state_name((fn_job_state)9), "unknown");
    assert_string_equal(fn_priority_name(FN_PRIO_INTERACTIVE), "interactive");
    assert_string_equal(fn_resolution_name(FN_RES_SKIP), "skip");
}

/* queued -> running -> completed, with progress, times, log lines and the JSON. */
static void test_complete(void **state)
{
    fx *f = *state;
    fn_job_id id;
    assert_int_equal(
        fn_enqueue(f->e, "count", "{\"n\":10,\"batch\":3,\"bad\":[4]}", FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(job_state(f->e, id), FN_JOB_QUEUED);
    int ran = 0;
    assert_int_equal(fn_engine_run_pending(f->e, 0, &ran), 0);
    assert_int_equal(ran, 1);
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(f->e, id, &j), 0);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_true(j->started_at >= j->created_at);
    assert_true(j->finished_at >= j->started_at);
    assert_non_null(strstr(j->progress, "\"items_done\":10"));
    assert_non_null(strstr(j->progress, "\"errors\":1"));
    assert_string_equal(j->checkpoint, "{\"next\":10}");
    assert_int_equal(j->n_errors, 1);
    assert_string_equal(j->errors[0].item, "item-4");
    assert_string_equal(j->errors[0].code, "io");
    assert_int_equal(j->errors[0].resolution, FN_RES_PENDING);
    fn_job_info_free(j);
    assert_int_equal(rows_of(f->dir, id), 9);

    char *json;
    assert_int_equal(fn_job_inspect_json(f->e, id, &json), 0);
    json_error_t jerr;
    json_t *o = json_loads(json, 0, &jerr);
    assert_non_null(o);
    const char *keys[] = {"id",          "type",       "priority",   "payload",
                          "state",       "created_at", "updated_at", "started_at",
                          "finished_at", "progress",   "checkpoint", "errors"};
    assert_int_equal(json_object_size(o), 12);
    for (size_t i = 0; i < 12; i++)
        assert_non_null(json_object_get(o, keys[i]));
    assert_string_equal(json_string_value(json_object_get(o, "state")), "completed");
    assert_string_equal(json_string_value(json_object_get(o, "priority")), "normal");
    const char *t = json_string_value(json_object_get(o, "finished_at"));
    assert_non_null(t);
    assert_int_equal(strlen(t), 24);
    assert_int_equal(t[10], 'T');
    assert_int_equal(t[23], 'Z');
    json_t *e0 = json_array_get(json_object_get(o, "errors"), 0);
    assert_string_equal(json_string_value(json_object_get(e0, "resolution")), "pending");
    assert_string_equal(json_string_value(json_object_get(e0, "item")), "item-4");
    assert_true(json_is_object(json_object_get(o, "payload")));
    json_decref(o);
    free(json);

    char *log;
    assert_int_equal(fn_job_log(f->e, id, &log), 0);
    assert_non_null(strstr(log, "queued: normal lane"));
    assert_non_null(strstr(log, "start:"));
    assert_non_null(strstr(log, "finish: completed"));
    assert_non_null(strstr(log, "items/s"));
    assert_non_null(strstr(log, "1 item error(s) (pending 1, skip 0, retry 0)"));
    free(log);
    /* The same lines are in the log file (buffered for up to one monitor tick); a library on a
     * server has no folder for one (its log is the database's). */
    if (fn_test_on_pg()) return;
    fn_joblog_flush(f->e);
    char path[512];
    snprintf(path, sizeof path, "%s/jobs.log", f->dir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    assert_non_null(strstr(buf, "finish: completed"));
    assert_non_null(strstr(buf, " count queued"));
}

static void test_fail(void **state)
{
    fx *f = *state;
    fn_job_id id;
    assert_int_equal(
        fn_enqueue(f->e, "count", "{\"n\":10,\"batch\":2,\"fail_at\":5}", FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(f->e, id, &j), 0);
    assert_int_equal(j->state, FN_JOB_FAILED);
    assert_non_null(j->fail_reason);
    assert_non_null(strstr(j->fail_reason, "item-5: simulated failure"));
    assert_string_equal(j->checkpoint, "{\"next\":4}");
    fn_job_info_free(j);
    assert_int_equal(rows_of(f->dir, id), 4);
    char *log;
    assert_int_equal(fn_job_log(f->e, id, &log), 0);
    assert_non_null(strstr(log, "fail: failed after"));
    free(log);
    /* A failed job cannot be cancelled; it can be resumed (from its checkpoint). */
    assert_int_equal(fn_job_cancel(f->e, id), FN_ERR_STATE);
    assert_non_null(strstr(fn_engine_errmsg(f->e), "already finished"));
    fn_job_id id2;
    assert_int_equal(fn_job_resume(f->e, id, &id2), 0);
    assert_int_equal(fn_job_inspect(f->e, id2, &j), 0);
    assert_int_equal(j->state, FN_JOB_QUEUED);
    assert_int_equal(j->parent, id);
    assert_string_equal(j->checkpoint, "{\"next\":4}");
    fn_job_info_free(j);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    assert_int_equal(job_state(f->e, id2), FN_JOB_FAILED); /* item 5 still fails */
    /* Items 4 and 5 are the failing batch again: nothing committed, and 0-3 not redone. */
    assert_int_equal(rows_of(f->dir, id2), 0);
}

static void test_cancel_queued(void **state)
{
    fx *f = *state;
    fn_job_id id;
    assert_int_equal(fn_enqueue(f->e, "count", "{\"n\":10}", FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_job_cancel(f->e, id), 0);
    assert_int_equal(job_state(f->e, id), FN_JOB_CANCELLED);
    int ran = -1;
    assert_int_equal(fn_engine_run_pending(f->e, 0, &ran), 0);
    assert_int_equal(ran, 0);
    assert_int_equal(atomic_load(&T.runs), 0);
    assert_int_equal(fn_job_cancel(f->e, id), FN_ERR_STATE);
    assert_int_equal(fn_job_cancel(f->e, 9999), FN_ERR_NOT_FOUND);
    assert_non_null(strstr(fn_engine_errmsg(f->e), "no such job"));
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(f->e, id, &j), 0);
    assert_true(j->finished_at > 0);
    assert_int_equal(j->started_at, -1);
    fn_job_info_free(j);
}

static void hook_cancel_at_2(fn_job_ctx *ctx, int batch_no, void *arg)
{
    (void)arg;
    if (batch_no == 2) {
        fn_job_id other;
        /* running -> resume is not a transition: only cancelled or failed jobs resume */
        assert_int_equal(fn_job_resume(fn_job_engine(ctx), fn_job_id_of(ctx), &other),
                         FN_ERR_STATE);
        assert_int_equal(fn_job_cancel(fn_job_engine(ctx), fn_job_id_of(ctx)), 0);
    }
}

static void test_cancel_running(void **state)
{
    fx *f = *state;
    T.hook = hook_cancel_at_2;
    fn_job_id id;
    assert_int_equal(fn_enqueue(f->e, "count", "{\"n\":20,\"batch\":3}", FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(f->e, id, &j), 0);
    assert_int_equal(j->state, FN_JOB_CANCELLED);
    assert_string_equal(j->checkpoint, "{\"next\":6}");
    assert_non_null(strstr(j->progress, "\"items_done\":6"));
    fn_job_info_free(j);
    assert_int_equal(rows_of(f->dir, id), 6);
    assert_int_equal(atomic_load(&T.runs), 1);
    char *log;
    assert_int_equal(fn_job_log(f->e, id, &log), 0);
    assert_non_null(strstr(log, "cancel: cancelled"));
    free(log);
}

static void hook_yield_then_cancel(fn_job_ctx *ctx, int batch_no, void *arg)
{
    (void)arg;
    if (batch_no == 1) {
        assert_int_equal(fn_engine_request_yield(fn_job_engine(ctx), fn_job_id_of(ctx)), 0);
        assert_int_equal(fn_job_should_stop(ctx), FN_STOP_YIELD);
        assert_int_equal(fn_job_cancel(fn_job_engine(ctx), fn_job_id_of(ctx)), 0);
    }
}

static void test_cancel_while_yielding(void **state)
{
    fx *f = *state;
    T.hook = hook_yield_then_cancel;
    fn_job_id id;
    assert_int_equal(fn_enqueue(f->e, "count", "{\"n\":20,\"batch\":3}", FN_PRIO_NORMAL, &id), 0);
    int ran = 0;
    assert_int_equal(fn_engine_run_pending(f->e, 0, &ran), 0);
    assert_int_equal(ran, 1); /* not requeued */
    assert_int_equal(job_state(f->e, id), FN_JOB_CANCELLED);
    assert_int_equal(rows_of(f->dir, id), 3);
}

static void hook_yield_once(fn_job_ctx *ctx, int batch_no, void *arg)
{
    int *done = arg;
    if (batch_no == 2 && !*done) {
        *done = 1;
        assert_int_equal(fn_engine_request_yield(fn_job_engine(ctx), fn_job_id_of(ctx)), 0);
    }
}

/* running -> queued (yield) -> running -> completed under the same id, nothing redone. */
static void test_yield_requeues_same_id(void **state)
{
    fx *f = *state;
    int done = 0;
    T.hook = hook_yield_once;
    T.hook_arg = &done;
    fn_job_id id;
    assert_int_equal(fn_enqueue(f->e, "count", "{\"n\":20,\"batch\":3}", FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_engine_run_pending(f->e, 1, NULL), 0);
    assert_int_equal(job_state(f->e, id), FN_JOB_QUEUED);
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(f->e, id, &j), 0);
    assert_string_equal(j->checkpoint, "{\"next\":6}");
    int64_t started = j->started_at;
    fn_job_info_free(j);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    assert_int_equal(fn_job_inspect(f->e, id, &j), 0);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(j->started_at, started);
    assert_non_null(strstr(j->progress, "\"items_done\":20"));
    fn_job_info_free(j);
    assert_int_equal(atomic_load(&T.runs), 2);
    assert_int_equal(rows_of(f->dir, id), 20);
    assert_int_equal(dup_items(f->dir), 0);
    char *log;
    assert_int_equal(fn_job_log(f->e, id, &log), 0);
    assert_non_null(strstr(log, "yield: gave its worker back"));
    free(log);
}

/* cancelled -> resume: a new job continues from the checkpoint and the error list. */
static void test_resume(void **state)
{
    fx *f = *state;
    T.hook = hook_cancel_at_2;
    fn_job_id id, id2;
    assert_int_equal(
        fn_enqueue(f->e, "count", "{\"n\":20,\"batch\":3,\"bad\":[1,15]}", FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_job_resume(f->e, id, &id2), FN_ERR_STATE); /* still queued */
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    assert_int_equal(job_state(f->e, id), FN_JOB_CANCELLED);
    T.hook = NULL;
    assert_int_equal(fn_job_resume(f->e, id, &id2), 0);
    assert_true(id2 != id);
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(f->e, id2, &j), 0);
    assert_int_equal(j->parent, id);
    assert_string_equal(j->checkpoint, "{\"next\":6}");
    /* item-1's error was pending: the resume redoes it first instead of carrying it over. */
    assert_int_equal(j->n_errors, 0);
    assert_int_equal(j->retry_only, 0);
    fn_job_info_free(j);
    assert_int_equal(q_int(f->dir, "SELECT count(*) FROM job_items WHERE job=(SELECT max(id) FROM "
                                   "jobs) AND item='item-1'"),
                     1);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    assert_int_equal(atomic_load(&T.inherited_seen), 0);
    assert_int_equal(fn_job_inspect(f->e, id2, &j), 0);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(j->n_errors, 2); /* item-1 (still bad), item-15 */
    assert_string_equal(j->errors[0].item, "item-1");
    assert_non_null(strstr(j->progress, "\"items_done\":21")); /* 20, plus item-1 again */
    fn_job_info_free(j);
    /* Every good item committed exactly once across the two jobs. */
    assert_int_equal(distinct_items(f->dir), 18);
    assert_int_equal(q_int(f->dir, "SELECT count(*) FROM items"), 18);
    assert_int_equal(rows_of(f->dir, id2), 13); /* items 6..19 but 15 */
    /* A completed job cannot be resumed. */
    assert_int_equal(fn_job_resume(f->e, id2, &id), FN_ERR_STATE);
    assert_non_null(strstr(fn_engine_errmsg(f->e), "only a cancelled or failed job"));
}

static fn_job_id failed_job_with_errors(fx *f)
{
    fn_job_id id;
    assert_int_equal(
        fn_enqueue(f->e, "count", "{\"n\":12,\"batch\":4,\"bad\":[2,3,7,8]}", FN_PRIO_NORMAL, &id),
        0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    assert_int_equal(job_state(f->e, id), FN_JOB_COMPLETED);
    return id;
}

/* The retry items of job `id`, as a JSON array text, read straight from the table. */
static char *retry_items_of(fx *f, fn_job_id id)
{
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(f->e, id, &j), 0);
    assert_int_equal(j->parent != 0, 1);
    assert_int_equal(j->retry_only, 1);
    assert_null(strstr(j->payload, "retry_items")); /* items are not copied into the payload */
    fn_job_info_free(j);
    char sql[200];
    if (fn_test_on_pg())
        snprintf(sql, sizeof sql,
                 "SELECT '[' || string_agg('\"' || item || '\"', ',' ORDER BY seq) || ']'"
                 " FROM job_items WHERE job=%lld",
                 (long long)id);
    else
        snprintf(sql, sizeof sql,
                 "SELECT json_group_array(item) FROM (SELECT item FROM job_items WHERE job=%lld "
                 "ORDER BY seq)",
                 (long long)id);
    return q_text(f->dir, sql);
}

static void test_retry_selection(void **state)
{
    fx *f = *state;
    fn_job_id id = failed_job_with_errors(f), r;
    /* all */
    assert_int_equal(fn_job_retry(f->e, id, NULL, &r), 0);
    char *s = retry_items_of(f, r);
    assert_string_equal(s, "[\"item-2\",\"item-3\",\"item-7\",\"item-8\"]");
    free(s);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    assert_int_equal(job_state(f->e, r), FN_JOB_COMPLETED);
    assert_int_equal(rows_of(f->dir, r), 4);
    assert_int_equal(q_int(f->dir, "SELECT count(*) FROM items WHERE item IN (2,3,7,8) AND "
                                   "job<>(SELECT max(id) FROM jobs)"),
                     0);
    /* by code: "decode" is the odd items */
    const char *codes[] = {"decode"};
    fn_retry_selection by_code = {codes, 1, NULL, 0};
    assert_int_equal(fn_job_retry(f->e, id, &by_code, &r), 0);
    s = retry_items_of(f, r);
    assert_string_equal(s, "[\"item-3\",\"item-7\"]");
    free(s);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    assert_int_equal(rows_of(f->dir, r), 2);
    assert_int_equal(
        q_int(f->dir, "SELECT sum(item) FROM items WHERE job=(SELECT max(id) FROM jobs)"), 10);
    /* by item, and code or item combined */
    const char *items[] = {"item-8"};
    fn_retry_selection by_item = {NULL, 0, items, 1};
    assert_int_equal(fn_job_retry(f->e, id, &by_item, &r), 0);
    s = retry_items_of(f, r);
    assert_string_equal(s, "[\"item-8\"]");
    free(s);
    const char *codes2[] = {"io"};
    const char *items2[] = {"item-3"};
    fn_retry_selection both = {codes2, 1, items2, 1};
    assert_int_equal(fn_job_retry(f->e, id, &both, &r), 0);
    s = retry_items_of(f, r);
    assert_string_equal(s, "[\"item-2\",\"item-3\",\"item-8\"]");
    free(s);
    /* a selection naming nothing */
    const char *none[] = {"no_such_code"};
    fn_retry_selection sel_none = {none, 1, NULL, 0};
    assert_int_equal(fn_job_retry(f->e, id, &sel_none, &r), FN_ERR_NOT_FOUND);
    assert_non_null(strstr(fn_engine_errmsg(f->e), "names none"));
}

static void hook_enqueue_interactive(fn_job_ctx *ctx, int batch_no, void *arg)
{
    fn_job_id *iid = arg;
    if (batch_no == 1 && *iid == 0)
        assert_int_equal(
            fn_enqueue(fn_job_engine(ctx), "short", "{\"n\":2}", FN_PRIO_INTERACTIVE, iid), 0);
}

/* With no idle worker (inline: none), an arriving interactive job makes the running background
 * job yield; the interactive job runs next, then the background job continues under its id. */
static void test_interactive_preempts(void **state)
{
    fx *f = *state;
    fn_job_id bg, iid = 0;
    T.hook = hook_enqueue_interactive;
    T.hook_arg = &iid;
    assert_int_equal(fn_enqueue(f->e, "count", "{\"n\":12,\"batch\":3}", FN_PRIO_BACKGROUND, &bg),
                     0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    assert_int_equal(atomic_load(&T.order_n), 3);
    assert_int_equal(T.order[0], bg);
    assert_int_equal(T.order[1], iid);
    assert_int_equal(T.order[2], bg);
    assert_int_equal(job_state(f->e, bg), FN_JOB_COMPLETED);
    assert_int_equal(job_state(f->e, iid), FN_JOB_COMPLETED);
    assert_int_equal(rows_of(f->dir, bg), 12);
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(DISTINCT item) FROM items WHERE job=%lld",
             (long long)bg);
    assert_int_equal(q_int(f->dir, sql), 12);
}

/* A normal job does not preempt. */
static void test_normal_does_not_preempt(void **state)
{
    fx *f = *state;
    fn_job_id bg, nid;
    assert_int_equal(fn_enqueue(f->e, "count", "{\"n\":6,\"batch\":3}", FN_PRIO_BACKGROUND, &bg),
                     0);
    assert_int_equal(fn_enqueue(f->e, "short", "{\"n\":1}", FN_PRIO_NORMAL, &nid), 0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    assert_int_equal(T.order[0], nid);
    assert_int_equal(T.order[1], bg);
    assert_int_equal(atomic_load(&T.order_n), 2);
}

static void run_aging(int aging_ms, fn_job_id *a, fn_job_id *b, fn_job_id *c)
{
    test_reset();
    char *dir = tmp_library();
    fn_config cfg = test_config();
    cfg.jobs_aging_ms = aging_ms;
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &cfg, &e), 0);
    register_count(e, "count", 0, 0);
    assert_int_equal(fn_engine_start(e, 0), 0);
    assert_int_equal(fn_enqueue(e, "count", "{\"n\":1}", FN_PRIO_BACKGROUND, a), 0);
    sleep_ms(400);
    assert_int_equal(fn_enqueue(e, "count", "{\"n\":1}", FN_PRIO_NORMAL, b), 0);
    assert_int_equal(fn_enqueue(e, "count", "{\"n\":1}", FN_PRIO_INTERACTIVE, c), 0);
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    fn_engine_close(e);
    rm_library(dir);
}

static void test_aging(void **state)
{
    (void)state;
    fn_job_id a, b, c;
    /* No aging to speak of: lanes decide. */
    run_aging(1000000, &a, &b, &c);
    assert_int_equal(T.order[0], c);
    assert_int_equal(T.order[1], b);
    assert_int_equal(T.order[2], a);
    /* 400 ms at 190 ms per lane lifts the background job two lanes: as high as the interactive
     * one and older, so it goes first. The normal job needs 190 ms of its own to rise one lane,
     * far more than running the first job takes even on a slow build against a server (with
     * 50 ms per lane it overtook the interactive one there). */
    run_aging(190, &a, &b, &c);
    assert_int_equal(T.order[0], a);
    assert_int_equal(T.order[1], c);
    assert_int_equal(T.order[2], b);
}

static void test_bad_input(void **state)
{
    fx *f = *state;
    fn_job_id id;
    assert_int_equal(fn_enqueue(f->e, "count", "[1,2]", FN_PRIO_NORMAL, &id), FN_ERR_INVALID);
    assert_non_null(strstr(fn_engine_errmsg(f->e), "JSON object"));
    assert_int_equal(fn_enqueue(f->e, "count", "{bad", FN_PRIO_NORMAL, &id), FN_ERR_INVALID);
    assert_int_equal(fn_enqueue(f->e, "", "{}", FN_PRIO_NORMAL, &id), FN_ERR_INVALID);
    assert_int_equal(fn_enqueue(f->e, "count", "{}", (fn_priority)7, &id), FN_ERR_INVALID);
    fn_handler h = {.type = "late", .run = count_run, .gpu_slots = 0, .mem_mb = 0};
    assert_int_equal(fn_engine_register(f->e, &h), FN_ERR_STATE);
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(f->e, 4242, &j), FN_ERR_NOT_FOUND);
    assert_non_null(strstr(fn_engine_errmsg(f->e), "job 4242: no such job"));
    char *log;
    assert_int_equal(fn_job_log(f->e, 4242, &log), FN_ERR_NOT_FOUND);
    /* Unregistered types stay queued for another process. */
    assert_int_equal(fn_enqueue(f->e, "elsewhere", NULL, FN_PRIO_INTERACTIVE, &id), 0);
    int ran = -1;
    assert_int_equal(fn_engine_run_pending(f->e, 0, &ran), 0);
    assert_int_equal(ran, 0);
    assert_int_equal(job_state(f->e, id), FN_JOB_QUEUED);
    fn_job_state st;
    assert_int_equal(fn_job_wait(f->e, id, 20, &st), FN_ERR_BUSY);
    assert_non_null(strstr(fn_engine_errmsg(f->e), "still queued"));
}

static void test_register_duplicate(void **state)
{
    (void)state;
    char *dir = tmp_library();
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, NULL, &e), 0);
    register_count(e, "count", 0, 0);
    fn_handler h = {.type = "count", .run = count_run, .gpu_slots = 0, .mem_mb = 0};
    assert_int_equal(fn_engine_register(e, &h), FN_ERR_INVALID);
    fn_handler bad = {.type = "x", .run = NULL, .gpu_slots = 0, .mem_mb = 0};
    assert_int_equal(fn_engine_register(e, &bad), FN_ERR_INVALID);
    fn_engine_close(e);
    fn_engine_close(NULL);
    rm_library(dir);
}

static void test_bad_config(void **state)
{
    (void)state;
    char *dir = tmp_library();
    fn_engine *e = NULL;
    fn_config c = test_config();
    c.workers_gpu_max = -1;
    assert_int_equal(fn_engine_open(dir, &c, &e), FN_ERR_CONFIG);
    assert_null(e);
    assert_non_null(strstr(fn_engine_errmsg(NULL), "workers.gpu_max is -1; it must be 0 or more"));
    c = test_config();
    c.db_busy_timeout_ms = -5;
    assert_int_equal(fn_engine_open(dir, &c, &e), FN_ERR_CONFIG);
    assert_non_null(strstr(fn_engine_errmsg(NULL), "db.busy_timeout_ms"));
    c = test_config();
    snprintf(c.log_path, sizeof c.log_path, "%s/no/such/dir/jobs.log", dir);
    assert_int_equal(fn_engine_open(dir, &c, &e), FN_ERR_IO);
    assert_non_null(strstr(fn_engine_errmsg(NULL), "cannot open the job log"));
    /* "-" means no log file. */
    c = test_config();
    snprintf(c.log_path, sizeof c.log_path, "-");
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    register_count(e, "count", 0, 0);
    assert_int_equal(fn_enqueue(e, "count", "{\"n\":1}", FN_PRIO_NORMAL, NULL), 0);
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    fn_engine_close(e);
    char path[512];
    snprintf(path, sizeof path, "%s/jobs.log", dir);
    assert_int_equal(access(path, F_OK), -1);
    rm_library(dir);
}

static void test_list_and_wait(void **state)
{
    fx *f = *state;
    fn_job_id a, b, c;
    assert_int_equal(fn_enqueue(f->e, "count", "{\"n\":2}", FN_PRIO_NORMAL, &a), 0);
    assert_int_equal(fn_enqueue(f->e, "count", "{\"n\":2}", FN_PRIO_NORMAL, &b), 0);
    assert_int_equal(fn_enqueue(f->e, "count", "{\"n\":2}", FN_PRIO_NORMAL, &c), 0);
    assert_int_equal(fn_job_cancel(f->e, b), 0);
    assert_int_equal(fn_engine_run_pending(f->e, 1, NULL), 0);
    fn_job_info **list;
    size_t n;
    assert_int_equal(fn_job_list(f->e, -1, 0, &list, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(list[0]->id, c); /* newest first */
    for (size_t i = 0; i < n; i++)
        fn_job_info_free(list[i]);
    free(list);
    assert_int_equal(fn_job_list(f->e, FN_JOB_QUEUED, 0, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0]->id, c);
    fn_job_info_free(list[0]);
    free(list);
    assert_int_equal(fn_job_list(f->e, -1, 2, &list, &n), 0);
    assert_int_equal(n, 2);
    fn_job_info_free(list[0]);
    fn_job_info_free(list[1]);
    free(list);
    fn_job_state st;
    assert_int_equal(fn_job_wait(f->e, a, 0, &st), 0);
    assert_int_equal(st, FN_JOB_COMPLETED);
    assert_int_equal(fn_job_wait(f->e, b, 0, &st), 0);
    assert_int_equal(st, FN_JOB_CANCELLED);
}

static void test_initial_checkpoint(void **state)
{
    fx *f = *state;
    fn_enqueue_opts o = {"count", "{\"n\":10,\"batch\":4}", "{\"next\":7}", FN_PRIO_NORMAL, -1, -1};
    fn_job_id id;
    assert_int_equal(fn_enqueue_ex(f->e, &o, &id), 0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    assert_int_equal(rows_of(f->dir, id), 3);
    fn_enqueue_opts many[3] = {o, o, o};
    fn_job_id ids[3];
    assert_int_equal(fn_enqueue_many(f->e, many, 3, ids), 0);
    assert_int_equal(ids[1], ids[0] + 1);
    assert_int_equal(q_int(f->dir, "SELECT count(*) FROM jobs WHERE state=0"), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test_setup_teardown(test_complete, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_fail, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_queued, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_running, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_while_yielding, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_yield_requeues_same_id, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_resume, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_retry_selection, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_interactive_preempts, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_normal_does_not_preempt, setup, fx_teardown),
        cmocka_unit_test(test_aging),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, fx_teardown),
        cmocka_unit_test(test_register_duplicate),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test_setup_teardown(test_list_and_wait, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_initial_checkpoint, setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
