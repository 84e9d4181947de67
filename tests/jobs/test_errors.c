/* test_errors.c: the contract's error decisions (skip / retry appended with who, when and the
 * previous value, never overwriting history), what resume and retry take from them, retry items
 * kept in a table (many of them, de-duplicated, in error order), and resuming a job that a crash
 * left queued. Inline mode, with the "count" handler of helpers.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "helpers.h"

static int setup(void **state)
{
    static const char *const types[] = {"count", NULL};
    *state = fx_open(types, NULL, NULL);
    return 0;
}

/* A completed job with errors on items 2, 3, 7, 8 ("io" even, "decode" odd). */
static fn_job_id job_with_errors(fx *f)
{
    fn_job_id id;
    assert_int_equal(
        fn_enqueue(f->e, "count", "{\"n\":12,\"batch\":4,\"bad\":[2,3,7,8]}", FN_PRIO_NORMAL, &id),
        0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    return id;
}

static json_t *errors_of(fx *f, fn_job_id id)
{
    char *text = NULL;
    assert_int_equal(fn_job_errors_json(f->e, id, NULL, &text), 0);
    json_t *a = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(a);
    return a;
}

static const char *res_of(json_t *errors, size_t i)
{
    return json_string_value(json_object_get(json_array_get(errors, i), "resolution"));
}

static void test_decisions_appended(void **state)
{
    fx *f = *state;
    fn_job_id id = job_with_errors(f);
    const char *codes[] = {"decode"};
    fn_error_selection sel = {.codes = codes, .n_codes = 1};
    size_t changed = 0;
    assert_int_equal(fn_job_errors_resolve(f->e, id, &sel, FN_RES_SKIP, "cli:ann", &changed), 0);
    assert_int_equal(changed, 2);
    /* Again: already skip, nothing changes and no decision is added. */
    assert_int_equal(fn_job_errors_resolve(f->e, id, &sel, FN_RES_SKIP, "cli:ann", &changed), 0);
    assert_int_equal(changed, 0);
    /* Then item-3 back to retry, by someone else. */
    const char *items[] = {"item-3"};
    fn_error_selection one = {.items = items, .n_items = 1};
    assert_int_equal(fn_job_errors_resolve(f->e, id, &one, FN_RES_RETRY, "app:bob", &changed), 0);
    assert_int_equal(changed, 1);
    json_t *a = errors_of(f, id);
    assert_int_equal(json_array_size(a), 4);
    assert_string_equal(res_of(a, 0), "pending"); /* item-2 */
    assert_string_equal(res_of(a, 1), "retry");   /* item-3 */
    assert_string_equal(res_of(a, 2), "skip");    /* item-7 */
    json_t *hist = json_object_get(json_array_get(a, 1), "decisions");
    assert_int_equal(json_array_size(hist), 2);
    json_t *d0 = json_array_get(hist, 0), *d1 = json_array_get(hist, 1);
    assert_string_equal(json_string_value(json_object_get(d0, "who")), "cli:ann");
    assert_string_equal(json_string_value(json_object_get(d0, "from")), "pending");
    assert_string_equal(json_string_value(json_object_get(d0, "to")), "skip");
    assert_string_equal(json_string_value(json_object_get(d1, "who")), "app:bob");
    assert_string_equal(json_string_value(json_object_get(d1, "from")), "skip");
    assert_string_equal(json_string_value(json_object_get(d1, "to")), "retry");
    assert_non_null(strchr(json_string_value(json_object_get(d1, "at")), 'T'));
    json_decref(a);
    /* inspect reports the latest decision too */
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(f->e, id, &j), 0);
    assert_int_equal(j->errors[1].resolution, FN_RES_RETRY);
    assert_int_equal(j->errors[2].resolution, FN_RES_SKIP);
    assert_true(j->errors[0].id > 0);
    fn_job_info_free(j);
    /* Bad selections and arguments change nothing. */
    const char *none[] = {"no_such"};
    fn_error_selection nothing = {.codes = none, .n_codes = 1};
    assert_int_equal(fn_job_errors_resolve(f->e, id, &nothing, FN_RES_SKIP, NULL, &changed),
                     FN_ERR_NOT_FOUND);
    assert_int_equal(fn_job_errors_resolve(f->e, 999, NULL, FN_RES_SKIP, NULL, &changed),
                     FN_ERR_NOT_FOUND);
    assert_int_equal(fn_job_errors_resolve(f->e, id, NULL, (fn_resolution)7, NULL, &changed),
                     FN_ERR_INVALID);
    assert_int_equal(q_int(f->dir, "SELECT count(*) FROM job_error_decisions"), 3);
    /* The lifecycle log says who decided. */
    char *log;
    assert_int_equal(fn_job_log(f->e, id, &log), 0);
    assert_non_null(strstr(log, "errors: 2 marked skip by cli:ann"));
    assert_non_null(strstr(log, "errors: 1 marked retry by app:bob"));
    free(log);
}

/* Retry and resume take pending and retry errors by default, never skip ones. */
static void test_skip_is_respected(void **state)
{
    fx *f = *state;
    fn_job_id id = job_with_errors(f);
    const char *codes[] = {"io"};
    fn_error_selection sel = {.codes = codes, .n_codes = 1};
    assert_int_equal(fn_job_errors_resolve(f->e, id, &sel, FN_RES_SKIP, "t", NULL), 0);
    fn_followup fu;
    assert_int_equal(fn_job_retry_ex(f->e, id, NULL, &fu), 0);
    assert_int_equal(fu.items, 2);
    assert_int_equal(fu.pending, 2);
    assert_int_equal(fu.left, 2);
    char sql[200];
    snprintf(sql, sizeof sql,
             fn_test_on_pg()
                 ? "SELECT string_agg(item, ',' ORDER BY seq) FROM job_items WHERE job=%lld"
                 : "SELECT group_concat(item) FROM (SELECT item FROM job_items WHERE "
                   "job=%lld ORDER BY seq)",
             (long long)fu.id);
    char *s = q_text(f->dir, sql);
    assert_string_equal(s, "item-3,item-7");
    free(s);
    /* Everything marked skip: a retry has nothing to take, and says why. */
    assert_int_equal(fn_job_errors_resolve(f->e, id, NULL, FN_RES_SKIP, "t", NULL), 0);
    assert_int_equal(fn_job_retry_ex(f->e, id, NULL, &fu), FN_ERR_NOT_FOUND);
    assert_non_null(strstr(fn_engine_errmsg(f->e), "marked skip"));
}

/* A resume carries skip errors over as they are, and redoes the others first. */
static void test_resume_with_decisions(void **state)
{
    fx *f = *state;
    T.hook = NULL;
    fn_job_id id;
    assert_int_equal(
        fn_enqueue(f->e, "count", "{\"n\":20,\"batch\":4,\"bad\":[1,2,3,17]}", FN_PRIO_NORMAL, &id),
        0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    /* Pretend it was cancelled after item 7: rewrite its end state and checkpoint. */
    char sql[200];
    snprintf(sql, sizeof sql, "UPDATE jobs SET state=2, checkpoint='{\"next\":8}' WHERE id=%lld",
             (long long)id);
    assert_int_equal(q_exec(f->dir, sql), 0);
    assert_int_equal(q_exec(f->dir, "DELETE FROM job_errors WHERE item='item-17'"), 0);
    const char *items[] = {"item-2"};
    fn_error_selection sel = {.items = items, .n_items = 1};
    assert_int_equal(fn_job_errors_resolve(f->e, id, &sel, FN_RES_SKIP, "t", NULL), 0);
    fn_followup fu;
    assert_int_equal(fn_job_resume_ex(f->e, id, &fu), 0);
    assert_int_equal(fu.items, 2); /* item-1, item-3 */
    assert_int_equal(fu.left, 1);  /* item-2 */
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(f->e, fu.id, &j), 0);
    assert_int_equal(j->n_errors, 1); /* item-2 carried over, still skip */
    assert_string_equal(j->errors[0].item, "item-2");
    assert_int_equal(j->errors[0].resolution, FN_RES_SKIP);
    fn_job_info_free(j);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    assert_int_equal(fn_job_inspect(f->e, fu.id, &j), 0);
    /* item-2 (carried), item-1 and item-3 (redone, still bad), item-17 (after the checkpoint) */
    assert_int_equal(j->n_errors, 4);
    fn_job_info_free(j);
}

/* A job a crash left queued (it ran before): resume continues it under its own id. */
static void test_resume_interrupted(void **state)
{
    fx *f = *state;
    fn_job_id id, other;
    assert_int_equal(fn_enqueue(f->e, "count", "{\"n\":5}", FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_job_resume(f->e, id, &other), FN_ERR_STATE); /* never started */
    /* What recovery leaves behind: queued again, with a start time and a checkpoint. */
    char sql[200];
    snprintf(sql, sizeof sql,
             "UPDATE jobs SET started_at=1, checkpoint='{\"next\":2}' WHERE id=%lld",
             (long long)id);
    assert_int_equal(q_exec(f->dir, sql), 0);
    fn_followup fu;
    assert_int_equal(fn_job_resume_ex(f->e, id, &fu), 0);
    assert_int_equal(fu.continued, 1);
    assert_int_equal(fu.id, id);
    assert_int_equal(q_int(f->dir, "SELECT count(*) FROM jobs"), 1); /* nothing new */
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    assert_int_equal(job_state(f->e, id), FN_JOB_COMPLETED);
    assert_int_equal(q_int(f->dir, "SELECT count(*) FROM items"), 3); /* from the checkpoint */
    /* A running or completed job is not resumed. */
    assert_int_equal(fn_job_resume(f->e, id, &other), FN_ERR_STATE);
}

/* Many failed items: one row each in the table, de-duplicated, in error order, and the payload
 * stays as it was. */
static void test_many_retry_items(void **state)
{
    fx *f = *state;
    enum { N = 20000 };
    fn_job_id id;
    assert_int_equal(fn_enqueue(f->e, "count", "{\"n\":0}", FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_engine_run_pending(f->e, 0, NULL), 0);
    char sql[400];
    /* N errors on N/2 items (each twice), newest item first. */
    snprintf(sql, sizeof sql,
             "WITH RECURSIVE k(x) AS (SELECT 0 UNION ALL SELECT x+1 FROM k WHERE x < %d) "
             "INSERT INTO job_errors(job, item, code, message, resolution) "
             "SELECT %lld, 'item-' || (%d - x / 2), 'io', 'm', 0 FROM k",
             N - 1, (long long)id, N / 2);
    assert_int_equal(q_exec(f->dir, sql), 0);
    fn_followup fu;
    assert_int_equal(fn_job_retry_ex(f->e, id, NULL, &fu), 0);
    assert_int_equal(fu.items, N / 2);
    assert_int_equal(fu.pending, N);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM job_items WHERE job=%lld", (long long)fu.id);
    assert_int_equal(q_int(f->dir, sql), N / 2);
    snprintf(sql, sizeof sql, "SELECT item FROM job_items WHERE job=%lld ORDER BY seq LIMIT 1",
             (long long)fu.id);
    char *first = q_text(f->dir, sql);
    assert_string_equal(first, "item-10000");
    free(first);
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(f->e, fu.id, &j), 0);
    assert_string_equal(j->payload, "{\"n\":0}");
    fn_job_info_free(j);
    /* A retry of a job that has not ended is refused. */
    fn_job_id q;
    assert_int_equal(fn_enqueue(f->e, "count", "{\"n\":1}", FN_PRIO_NORMAL, &q), 0);
    assert_int_equal(fn_job_retry(f->e, q, NULL, NULL), FN_ERR_STATE);
    assert_non_null(strstr(fn_engine_errmsg(f->e), "still queued"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_decisions_appended, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_skip_is_respected, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_resume_with_decisions, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_resume_interrupted, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_many_retry_items, setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
