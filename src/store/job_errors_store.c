/* job_errors_store.c: SQL for the contract's error decisions and for retry items (see
 * jobs_store.h).
 *
 * What must stay true: a decision is appended to job_error_decisions (who, when, from, to) in the
 * same statement group that changes job_errors.resolution, so the current value is always the
 * last decision and history is never lost; retry items are computed in SQL (one INSERT ... SELECT,
 * de-duplicated by GROUP BY), so 100k failed items cost one sort, not a quadratic scan, and never
 * grow a payload. Selections come as JSON arrays and are expanded with json_each. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "store/jobs_store.h"
#include "store/store_sql.h"
#include "util/pathenc_json.h"
#include "util/clock.h"

#define STMT(s, sql)                                                                               \
    fn_sql_stmt *st = fn_store_stmt((s), (sql));                                                   \
    if (!st) return FN_ERR_DB

/* The selection predicate. ?2 = codes JSON, ?3 = items JSON; with both NULL, `dflt` decides. */
#define SELECTED(dflt)                                                                             \
    "(CASE WHEN ?2 IS NULL AND ?3 IS NULL THEN (" dflt ") ELSE"                                    \
    " (code IN (SELECT value FROM json_each(?2)) OR hex(item) IN (SELECT value FROM "              \
    "json_each(?3)))"                                                                              \
    " END)"

/* The same on PostgreSQL: json_array_elements_text for json_each (the arrays come as text), and
 * SQLite's hex() (upper case, of the text's bytes) spelled out. The casts type parameters that
 * only NULL tests would otherwise leave unknown. */
#define SELECTED_PG(dflt)                                                                          \
    "(CASE WHEN CAST(?2 AS TEXT) IS NULL AND CAST(?3 AS TEXT) IS NULL THEN (" dflt ") ELSE"        \
    " (code IN (SELECT json_array_elements_text(CAST(?2 AS TEXT)::json)) OR"                       \
    " upper(encode(convert_to(item, 'UTF8'), 'hex')) IN"                                           \
    " (SELECT json_array_elements_text(CAST(?3 AS TEXT)::json)))"                                  \
    " END)"

static void bind_sel(fn_sql_stmt *st, const char *codes_json, const char *items_json)
{
    if (codes_json) fn_sql_bind_text(st, 2, codes_json, -1, FN_SQL_STATIC);
    if (items_json) fn_sql_bind_text(st, 3, items_json, -1, FN_SQL_STATIC);
}

static int step_done(fn_store *s, fn_sql_stmt *st, const char *what)
{
    int rc = fn_sql_step(st);
    int code = rc == FN_SQL_DONE || rc == FN_SQL_ROW ? 0 : fn_store_fail(s, rc, what);
    fn_sql_reset(st);
    return code;
}

/* A resume takes pending (0) and retry (2) errors; an explicit selection takes what it names.
 * One row per distinct item goes in; its seq is the id of its first error, so the items keep the
 * errors' order (seq need not be dense: paging goes by seq). */
// clang-format off
static const char SQL_TAKEN[] =
    "SELECT coalesce(sum(sel AND resolution=0), 0), coalesce(sum(sel AND resolution=2), 0),"
    " coalesce(sum(sel AND resolution=1), 0), coalesce(sum(NOT sel AND resolution=1), 0),"
    " coalesce(sum(sel), 0)"
    " FROM (SELECT resolution, " SELECTED("resolution<>1") " AS sel FROM job_errors WHERE job=?1)";
static const char SQL_TAKE[] =
    "INSERT INTO job_items(job, seq, item)"
    " SELECT ?4, min(id), item FROM job_errors WHERE job=?1 AND " SELECTED("resolution<>1")
    " GROUP BY item";
/* PostgreSQL: no sum() of booleans (count ... FILTER), an alias on the subquery, typed ?4. */
static const char SQL_TAKEN_PG[] =
    "SELECT count(*) FILTER (WHERE sel AND resolution=0), count(*) FILTER (WHERE sel AND resolution=2),"
    " count(*) FILTER (WHERE sel AND resolution=1), count(*) FILTER (WHERE NOT sel AND resolution=1),"
    " count(*) FILTER (WHERE sel)"
    " FROM (SELECT resolution, " SELECTED_PG("resolution<>1") " AS sel FROM job_errors WHERE job=?1) AS t";
static const char SQL_TAKE_PG[] =
    "INSERT INTO job_items(job, seq, item)"
    " SELECT CAST(?4 AS BIGINT), min(id), item FROM job_errors WHERE job=?1 AND " SELECTED_PG("resolution<>1")
    " GROUP BY item";
// clang-format on

int fn_js_take_items(fn_store *s, int64_t from, int64_t to, const char *codes_json,
                     const char *items_json, fn_js_taken *out)
{
    memset(out, 0, sizeof *out);
    {
        STMT(s, FN_SQL_PICK(s, SQL_TAKEN, SQL_TAKEN_PG));
        fn_sql_bind_int64(st, 1, from);
        bind_sel(st, codes_json, items_json);
        int rc = fn_sql_step(st);
        if (rc == FN_SQL_ROW) {
            out->pending = fn_sql_column_int64(st, 0);
            out->retry = fn_sql_column_int64(st, 1);
            out->skipped = fn_sql_column_int64(st, 2);
            out->left = fn_sql_column_int64(st, 3);
            out->matched = fn_sql_column_int64(st, 4);
        }
        int code = rc == FN_SQL_ROW ? 0 : fn_store_fail(s, rc, "counting the errors to retry");
        fn_sql_reset(st);
        if (code) return code;
    }
    if (!to || !out->matched) return 0;
    STMT(s, FN_SQL_PICK(s, SQL_TAKE, SQL_TAKE_PG));
    fn_sql_bind_int64(st, 1, from);
    bind_sel(st, codes_json, items_json);
    fn_sql_bind_int64(st, 4, to);
    int code = step_done(s, st, "storing the items to retry");
    if (!code) out->items = fn_sql_changes(s);
    return code;
}

static const char SQL_ITEMS_AFTER[] =
    "SELECT item, seq FROM job_items WHERE job=?1 AND seq>?2 ORDER BY seq LIMIT ?3";
static const char SQL_ITEMS_OFFSET[] =
    "SELECT item, seq FROM job_items WHERE job=?1 ORDER BY seq LIMIT ?3 OFFSET ?2";
static const char SQL_ITEMS_COUNT[] = "SELECT count(*) FROM job_items WHERE job=?1";

int fn_js_items_page(fn_store *s, int64_t job, size_t offset, int64_t *after_seq, size_t cap,
                     char ***items, size_t *n)
{
    *items = NULL;
    *n = 0;
    STMT(s, *after_seq >= 0 ? SQL_ITEMS_AFTER : SQL_ITEMS_OFFSET);
    fn_sql_bind_int64(st, 1, job);
    fn_sql_bind_int64(st, 2, *after_seq >= 0 ? *after_seq : (int64_t)offset);
    fn_sql_bind_int64(st, 3, (int64_t)cap);
    char **a = calloc(cap ? cap : 1, sizeof *a);
    if (!a) {
        fn_sql_reset(st);
        return FN_ERR_NOMEM;
    }
    int rc, code = 0;
    size_t k = 0;
    while (k < cap && (rc = fn_sql_step(st)) == FN_SQL_ROW) {
        const char *t = fn_sql_column_text(st, 0);
        if (!(a[k] = strdup(t ? t : ""))) {
            code = FN_ERR_NOMEM;
            break;
        }
        *after_seq = fn_sql_column_int64(st, 1);
        k++;
    }
    if (!code && k < cap && rc != FN_SQL_DONE) code = fn_store_fail(s, rc, "reading retry items");
    fn_sql_reset(st);
    if (code) {
        for (size_t i = 0; i < k; i++)
            free(a[i]);
        free(a);
        return code;
    }
    *items = a;
    *n = k;
    return 0;
}

int fn_js_items_count(fn_store *s, int64_t job, size_t *n)
{
    *n = 0;
    STMT(s, SQL_ITEMS_COUNT);
    fn_sql_bind_int64(st, 1, job);
    int rc = fn_sql_step(st);
    if (rc == FN_SQL_ROW) *n = (size_t)fn_sql_column_int64(st, 0);
    int code = rc == FN_SQL_ROW ? 0 : fn_store_fail(s, rc, "counting retry items");
    fn_sql_reset(st);
    return code;
}

// clang-format off
static const char SQL_MATCHED[] = "SELECT count(*) FROM job_errors WHERE job=?1 AND " SELECTED("1");
static const char SQL_DECIDE[] =
    "INSERT INTO job_error_decisions(error, at, who, from_res, to_res)"
    " SELECT id, ?5, ?6, resolution, ?4 FROM job_errors"
    " WHERE job=?1 AND resolution<>?4 AND " SELECTED("1") " ORDER BY id";
static const char SQL_RESOLVE[] =
    "UPDATE job_errors SET resolution=?4 WHERE job=?1 AND resolution<>?4 AND " SELECTED("1");
static const char SQL_MATCHED_PG[] = "SELECT count(*) FROM job_errors WHERE job=?1 AND " SELECTED_PG("TRUE");
static const char SQL_DECIDE_PG[] =
    "INSERT INTO job_error_decisions(error, at, who, from_res, to_res)"
    " SELECT id, CAST(?5 AS BIGINT), CAST(?6 AS TEXT), resolution, CAST(?4 AS BIGINT) FROM job_errors"
    " WHERE job=?1 AND resolution<>CAST(?4 AS BIGINT) AND " SELECTED_PG("TRUE") " ORDER BY id";
static const char SQL_RESOLVE_PG[] =
    "UPDATE job_errors SET resolution=CAST(?4 AS BIGINT) WHERE job=?1 AND"
    " resolution<>CAST(?4 AS BIGINT) AND " SELECTED_PG("TRUE");
// clang-format on

int fn_js_errors_resolve(fn_store *s, int64_t job, const char *codes_json, const char *items_json,
                         int res, const char *who, int64_t now, size_t *matched, size_t *changed)
{
    *matched = *changed = 0;
    {
        STMT(s, FN_SQL_PICK(s, SQL_MATCHED, SQL_MATCHED_PG));
        fn_sql_bind_int64(st, 1, job);
        bind_sel(st, codes_json, items_json);
        int rc = fn_sql_step(st);
        if (rc == FN_SQL_ROW) *matched = (size_t)fn_sql_column_int64(st, 0);
        int code = rc == FN_SQL_ROW ? 0 : fn_store_fail(s, rc, "selecting job errors");
        fn_sql_reset(st);
        if (code || !*matched) return code;
    }
    {
        STMT(s, FN_SQL_PICK(s, SQL_DECIDE, SQL_DECIDE_PG));
        fn_sql_bind_int64(st, 1, job);
        bind_sel(st, codes_json, items_json);
        fn_sql_bind_int(st, 4, res);
        fn_sql_bind_int64(st, 5, now);
        fn_sql_bind_text(st, 6, who, -1, FN_SQL_STATIC);
        int code = step_done(s, st, "recording error decisions");
        if (code) return code;
    }
    STMT(s, FN_SQL_PICK(s, SQL_RESOLVE, SQL_RESOLVE_PG));
    fn_sql_bind_int64(st, 1, job);
    bind_sel(st, codes_json, items_json);
    fn_sql_bind_int(st, 4, res);
    int code = step_done(s, st, "changing error resolutions");
    if (!code) *changed = (size_t)fn_sql_changes(s);
    return code;
}

static const char *const res_names[] = {"pending", "skip", "retry"};

static const char *res_name(int r)
{
    return r >= 0 && r < 3 ? res_names[r] : "pending";
}

static json_t *iso_time(int64_t ms)
{
    char buf[32];
    return json_string(fn_iso8601(ms, buf, sizeof buf));
}

static json_t *col_string(fn_sql_stmt *st, int i)
{
    const char *t = fn_sql_column_text(st, i);
    return json_string(t ? t : "");
}

/* One pass over the errors, their decisions joined in order (a LEFT JOIN: an error without
 * decisions gives one row with NULL decision columns). */
static const char SQL_ERRORS_JSON[] =
    "SELECT e.id, e.item, e.code, e.message, e.resolution, d.at, d.who, d.from_res, d.to_res"
    " FROM job_errors e LEFT JOIN job_error_decisions d ON d.error=e.id"
    " WHERE e.job=?1 AND " SELECTED("1") " ORDER BY e.id, d.id";
static const char SQL_ERRORS_JSON_PG[] =
    "SELECT e.id, e.item, e.code, e.message, e.resolution, d.at, d.who, d.from_res, d.to_res"
    " FROM job_errors e LEFT JOIN job_error_decisions d ON d.error=e.id"
    " WHERE e.job=?1 AND " SELECTED_PG("TRUE") " ORDER BY e.id, d.id";

int fn_js_errors_json(fn_store *s, int64_t job, const char *codes_json, const char *items_json,
                      char **json)
{
    *json = NULL;
    STMT(s, FN_SQL_PICK(s, SQL_ERRORS_JSON, SQL_ERRORS_JSON_PG));
    fn_sql_bind_int64(st, 1, job);
    bind_sel(st, codes_json, items_json);
    json_t *arr = json_array(), *cur = NULL;
    int64_t cur_id = 0;
    int rc;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        int64_t id = fn_sql_column_int64(st, 0);
        if (!cur || id != cur_id) {
            cur = json_object();
            cur_id = id;
            json_object_set_new(cur, "id", json_integer(id));
            /* an item (a path) and its message may hold any bytes: the path encoding */
            fn_json_set_path(cur, "item", fn_sql_column_text(st, 1));
            json_object_set_new(cur, "code", col_string(st, 2));
            json_object_set_new(cur, "message", fn_json_text(fn_sql_column_text(st, 3)));
            json_object_set_new(cur, "resolution", json_string(res_name(fn_sql_column_int(st, 4))));
            json_object_set_new(cur, "decisions", json_array());
            json_array_append_new(arr, cur);
        }
        if (fn_sql_column_type(st, 5) != FN_SQL_NULL) {
            json_t *d = json_object();
            json_object_set_new(d, "at", iso_time(fn_sql_column_int64(st, 5)));
            json_object_set_new(d, "who", col_string(st, 6));
            json_object_set_new(d, "from", json_string(res_name(fn_sql_column_int(st, 7))));
            json_object_set_new(d, "to", json_string(res_name(fn_sql_column_int(st, 8))));
            json_array_append_new(json_object_get(cur, "decisions"), d);
        }
    }
    int code = rc == FN_SQL_DONE ? 0 : fn_store_fail(s, rc, "reading job errors");
    fn_sql_reset(st);
    if (!code && !(*json = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        code = FN_ERR_NOMEM;
    json_decref(arr);
    return code;
}

/* Queued first (continuing it is free), then the oldest running one. */
static const char SQL_FIND_SAME[] = "SELECT id, state FROM jobs WHERE state IN (0, 1) AND"
                                    " priority=?2 AND type=?1 AND payload=?3"
                                    " ORDER BY state, id LIMIT 1";

int fn_js_find_same(fn_store *s, const char *type, int priority, const char *payload, int64_t *id,
                    int *state)
{
    *id = 0;
    *state = -1;
    STMT(s, SQL_FIND_SAME);
    fn_sql_bind_text(st, 1, type, -1, FN_SQL_STATIC);
    fn_sql_bind_int(st, 2, priority);
    fn_sql_bind_text(st, 3, payload ? payload : "{}", -1, FN_SQL_STATIC);
    int rc = fn_sql_step(st);
    if (rc == FN_SQL_ROW) {
        *id = fn_sql_column_int64(st, 0);
        *state = fn_sql_column_int(st, 1);
    }
    int code = rc == FN_SQL_ROW || rc == FN_SQL_DONE ? 0 : fn_store_fail(s, rc, "finding a job");
    fn_sql_reset(st);
    return code;
}

static const char SQL_LIVE_CHILD[] =
    "SELECT id FROM jobs WHERE parent=?1 AND state IN (0, 1) ORDER BY id LIMIT 1";

int fn_js_live_child(fn_store *s, int64_t parent, int64_t *child)
{
    *child = 0;
    STMT(s, SQL_LIVE_CHILD);
    fn_sql_bind_int64(st, 1, parent);
    int rc = fn_sql_step(st);
    if (rc == FN_SQL_ROW) *child = fn_sql_column_int64(st, 0);
    int code =
        rc == FN_SQL_ROW || rc == FN_SQL_DONE ? 0 : fn_store_fail(s, rc, "finding a job's resume");
    fn_sql_reset(st);
    return code;
}
