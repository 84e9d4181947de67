/* shards_store.c: the rows of split jobs (see jobs_store.h, "Shards", and docs/job-types.md).
 *
 * A split job (its `shards` column > 0) stays running under no owner while its shards, ordinary
 * jobs with `shard_of` = its id, are claimed by any worker. Its progress and checkpoint are
 * recomputed from its shards' rows by fn_js_shard_settle, which each shard's commit and end and
 * each cancel call in their own transaction, and which ends the split job once its last shard has
 * ended. The split's record is the parent's checkpoint:
 *   {"next_index": N, "split": {"job": ID, "shards": n, "base": PROGRESS, "done": "files_done",
 *    "total": "files_total", "next_base": N0}}
 * where ID is the job that split (a resume that has not split again yet carries it on), PROGRESS is
 * the parent's progress when it split (what it had counted itself: the total of its counting pass,
 * a resumed job's earlier counts), "done"/"total" name the type's done and total counters (a
 * shard's total is its range, part of the parent's, so it is not added), and next_index is
 * next_base plus the items the shards handled.
 *
 * What must stay true: the settle locks the parent's row before it reads the shards (PostgreSQL:
 * the ends of two shards are written by transactions that do not take the library's lock, and
 * without it each could see the other still running, leaving the parent running forever). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/jobs_store.h"
#include "store/store_sql.h"

#define STMT(s, sql)                                                                               \
    fn_sql_stmt *st = fn_store_stmt((s), (sql));                                                   \
    if (!st) return FN_ERR_DB

#define PG_NOTIFY " RETURNING pg_notify('" FN_JS_CHANNEL "', CAST(id AS TEXT))"

static int run(fn_store *s, fn_sql_stmt *st, const char *what)
{
    int rc = fn_sql_step(st);
    int code = (rc == FN_SQL_DONE || rc == FN_SQL_ROW) ? 0 : fn_store_fail(s, rc, what);
    fn_sql_reset(st);
    return code;
}

static char *dup_col(fn_sql_stmt *st, int i)
{
    const char *t = fn_sql_column_text(st, i);
    return t ? strdup(t) : NULL;
}

/* Fenced by owner, as a commit: a worker whose job was recovered elsewhere cannot split it. Nor
 * is a job split whose cancel another process asked for meanwhile: it would reach no shard. */
#define SPLIT                                                                                      \
    "UPDATE jobs SET owner=NULL, shards=?2, checkpoint=?3, progress=coalesce(?4, progress),"       \
    " updated_at=?5 WHERE id=?1 AND state=1 AND owner=?6 AND cancel_requested=0"
static const char SQL_SPLIT[] = SPLIT;
static const char SQL_SPLIT_PG[] = SPLIT PG_NOTIFY;

int fn_js_split(fn_store *s, int64_t id, int64_t owner, int n, const char *checkpoint,
                const char *progress, int64_t now)
{
    STMT(s, FN_SQL_PICK(s, SQL_SPLIT, SQL_SPLIT_PG));
    fn_sql_bind_int64(st, 1, id);
    fn_sql_bind_int(st, 2, n);
    fn_sql_bind_text(st, 3, checkpoint, -1, FN_SQL_STATIC);
    if (progress) fn_sql_bind_text(st, 4, progress, -1, FN_SQL_STATIC);
    fn_sql_bind_int64(st, 5, now);
    fn_sql_bind_int64(st, 6, owner);
    int code = run(s, st, "splitting a job into shards");
    if (!code && fn_sql_changes(s) == 0) {
        int64_t cancel = 0;
        fn_sql_stmt *c = fn_store_stmt(
            s, "SELECT cancel_requested FROM jobs WHERE id=?1 AND state=1 AND owner=?2");
        if (!c) return FN_ERR_DB;
        fn_sql_bind_int64(c, 1, id);
        fn_sql_bind_int64(c, 2, owner);
        if (fn_sql_step(c) == FN_SQL_ROW) cancel = fn_sql_column_int64(c, 0);
        fn_sql_reset(c);
        if (cancel) {
            fn_store_set_msg(s, FN_ERR_CANCELLED, "splitting a job into shards",
                             "its cancel was asked for first");
            return FN_ERR_CANCELLED;
        }
        char detail[160];
        snprintf(detail, sizeof detail,
                 "job %lld is no longer running under this process (it was recovered or "
                 "finished elsewhere); it is not split",
                 (long long)id);
        fn_store_set_msg(s, FN_ERR_STATE, "splitting a job into shards", detail);
        return FN_ERR_STATE;
    }
    return code;
}

static const char SQL_SHARDS[] = "SELECT id, state, payload, checkpoint, progress, fail_reason"
                                 " FROM jobs WHERE shard_of=?1 ORDER BY id";

void fn_js_shards_free(fn_js_shard *sh, size_t n)
{
    for (size_t i = 0; sh && i < n; i++) {
        free(sh[i].payload);
        free(sh[i].checkpoint);
        free(sh[i].progress);
        free(sh[i].fail_reason);
    }
    free(sh);
}

int fn_js_shards(fn_store *s, int64_t parent, fn_js_shard **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    STMT(s, SQL_SHARDS);
    fn_sql_bind_int64(st, 1, parent);
    size_t cap = 0;
    int rc, code = 0;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            fn_js_shard *ns = realloc(*out, cap * sizeof *ns);
            if (!ns) {
                code = FN_ERR_NOMEM;
                break;
            }
            *out = ns;
        }
        fn_js_shard *sh = &(*out)[(*n)++];
        sh->id = fn_sql_column_int64(st, 0);
        sh->state = fn_sql_column_int(st, 1);
        sh->payload = dup_col(st, 2);
        sh->checkpoint = dup_col(st, 3);
        sh->progress = dup_col(st, 4);
        sh->fail_reason = dup_col(st, 5);
    }
    if (!code && rc != FN_SQL_DONE) code = fn_store_fail(s, rc, "reading a job's shards");
    fn_sql_reset(st);
    if (code) {
        fn_js_shards_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return code;
}

/* The parent's row, locked (PostgreSQL) before its shards are read. */
static const char SQL_PARENT[] = "SELECT state, shards, checkpoint FROM jobs WHERE id=?1";
static const char SQL_PARENT_PG[] =
    "SELECT state, shards, checkpoint FROM jobs WHERE id=?1 FOR UPDATE";

#define SETTLE                                                                                     \
    "UPDATE jobs SET state=CAST(?2 AS BIGINT), progress=?3, checkpoint=?4, updated_at=?5,"         \
    " finished_at=CASE WHEN CAST(?2 AS BIGINT) IN (2,3,4) THEN CAST(?5 AS BIGINT) END,"            \
    " fail_reason=coalesce(?6, fail_reason),"                                                      \
    " cancel_requested=CASE WHEN CAST(?2 AS BIGINT)=1 THEN cancel_requested ELSE 0 END"            \
    " WHERE id=?1 AND state=1 AND shards>0"
static const char SQL_SETTLE[] = SETTLE;
static const char SQL_SETTLE_PG[] = SETTLE PG_NOTIFY;

/* Adds src's integer members to dst's (dst: an object of integers), except `skip`. */
static void add_counters(json_t *dst, json_t *src, const char *skip)
{
    const char *k;
    json_t *v;
    json_object_foreach(src, k, v)
    {
        if (!json_is_integer(v) || (skip && strcmp(k, skip) == 0)) continue;
        json_t *d = json_object_get(dst, k);
        json_int_t have = json_is_integer(d) ? json_integer_value(d) : 0;
        json_object_set_new(dst, k, json_integer(have + json_integer_value(v)));
    }
}

/* Adds src's histogram counts to dst's, bucket by bucket (same bounds: one type declares them). */
static void add_histograms(json_t *dst, json_t *src)
{
    const char *k;
    json_t *h;
    json_object_foreach(src, k, h)
    {
        json_t *d = json_object_get(dst, k);
        if (!d) {
            json_object_set_new(dst, k, json_deep_copy(h));
            continue;
        }
        json_t *dc = json_object_get(d, "counts"), *sc = json_object_get(h, "counts");
        if (!json_is_array(dc) || !json_is_array(sc) || json_array_size(dc) != json_array_size(sc))
            continue;
        for (size_t i = 0; i < json_array_size(dc); i++)
            json_array_set_new(dc, i,
                               json_integer(json_integer_value(json_array_get(dc, i)) +
                                            json_integer_value(json_array_get(sc, i))));
    }
}

void fn_js_settled_clear(fn_js_settled *out)
{
    free(out->progress);
    memset(out, 0, sizeof *out);
}

int fn_js_shard_settle(fn_store *s, int64_t parent, int64_t now, fn_js_settled *out)
{
    memset(out, 0, sizeof *out);
    int state = -1, n_split = 0;
    char *ck = NULL;
    {
        STMT(s, FN_SQL_PICK(s, SQL_PARENT, SQL_PARENT_PG));
        fn_sql_bind_int64(st, 1, parent);
        int rc = fn_sql_step(st);
        if (rc == FN_SQL_ROW) {
            state = fn_sql_column_int(st, 0);
            n_split = fn_sql_column_int(st, 1);
            ck = dup_col(st, 2);
        }
        int code =
            rc == FN_SQL_ROW || rc == FN_SQL_DONE ? 0 : fn_store_fail(s, rc, "reading a job");
        fn_sql_reset(st);
        if (code) {
            free(ck);
            return code;
        }
    }
    if (state != FN_JOB_RUNNING || n_split <= 0) { /* not split, or ended already */
        free(ck);
        return 0;
    }
    json_error_t jerr;
    json_t *ckj = ck ? json_loads(ck, 0, &jerr) : NULL;
    free(ck);
    json_t *split = json_object_get(ckj, "split");
    json_t *base = json_object_get(split, "base");
    const char *done_name = json_string_value(json_object_get(split, "done"));
    const char *total_name = json_string_value(json_object_get(split, "total"));
    json_int_t next_base = json_integer_value(json_object_get(split, "next_base"));

    fn_js_shard *sh = NULL;
    size_t n = 0;
    int code = fn_js_shards(s, parent, &sh, &n);
    if (code) {
        json_decref(ckj);
        return code;
    }
    json_t *prog = json_is_object(base) ? json_deep_copy(base) : json_object();
    json_t *cs = json_object_get(prog, "counters"), *hs = json_object_get(prog, "histograms");
    if (!json_is_object(cs)) json_object_set_new(prog, "counters", cs = json_object());
    if (!json_is_object(hs)) json_object_set_new(prog, "histograms", hs = json_object());
    json_int_t handled = 0;
    int live = 0, failed = 0, cancelled = 0;
    char reason[512] = "";
    for (size_t i = 0; i < n; i++) {
        if (sh[i].state == FN_JOB_QUEUED || sh[i].state == FN_JOB_RUNNING) live++;
        if (sh[i].state == FN_JOB_CANCELLED) cancelled++;
        if (sh[i].state == FN_JOB_FAILED && failed++ == 0)
            snprintf(reason, sizeof reason, "shard %lld failed: %s", (long long)sh[i].id,
                     sh[i].fail_reason ? sh[i].fail_reason : "(no reason recorded)");
        json_t *p = sh[i].progress ? json_loads(sh[i].progress, 0, &jerr) : NULL;
        json_t *pc = json_object_get(p, "counters");
        add_counters(cs, pc, total_name);
        add_histograms(hs, json_object_get(p, "histograms"));
        if (done_name) handled += json_integer_value(json_object_get(pc, done_name));
        json_decref(p);
    }
    fn_js_shards_free(sh, n);
    /* The total is the parent's count; a tree that grew after the split may pass it. */
    if (done_name && total_name) {
        json_int_t done = json_integer_value(json_object_get(cs, done_name));
        json_int_t total = json_integer_value(json_object_get(cs, total_name));
        if (total < done) json_object_set_new(cs, total_name, json_integer(done));
    }
    int new_state = live        ? FN_JOB_RUNNING
                    : failed    ? FN_JOB_FAILED
                    : cancelled ? FN_JOB_CANCELLED
                                : FN_JOB_COMPLETED;
    if (!json_is_object(ckj)) {
        json_decref(ckj);
        ckj = json_object();
    }
    json_object_set_new(ckj, "next_index", json_integer(next_base + handled));
    char *ptext = json_dumps(prog, JSON_COMPACT | JSON_REAL_PRECISION(12));
    char *cktext = json_dumps(ckj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(prog);
    json_decref(ckj);
    if (!ptext || !cktext) {
        free(ptext);
        free(cktext);
        return FN_ERR_NOMEM;
    }
    {
        fn_sql_stmt *st = fn_store_stmt(s, FN_SQL_PICK(s, SQL_SETTLE, SQL_SETTLE_PG));
        if (!st) code = FN_ERR_DB;
        if (st) {
            fn_sql_bind_int64(st, 1, parent);
            fn_sql_bind_int(st, 2, new_state);
            fn_sql_bind_text(st, 3, ptext, -1, FN_SQL_STATIC);
            fn_sql_bind_text(st, 4, cktext, -1, FN_SQL_STATIC);
            fn_sql_bind_int64(st, 5, now);
            if (new_state == FN_JOB_FAILED) fn_sql_bind_text(st, 6, reason, -1, FN_SQL_STATIC);
            code = run(s, st, "updating a split job from its shards");
        }
    }
    free(cktext);
    /* Always in the change feed (the trigger writes it only while two processes are open): the
     * split job's errors and end are told from its row, in this process too. */
    if (!code) {
        fn_sql_stmt *st = fn_store_stmt(s, "INSERT INTO job_changes(job) VALUES(?1)");
        if (!st) code = FN_ERR_DB;
        if (st) {
            fn_sql_bind_int64(st, 1, parent);
            code = run(s, st, "recording a split job's change");
        }
    }
    if (!code && new_state != FN_JOB_RUNNING) {
        snprintf(out->line, sizeof out->line,
                 "%s: its last shard ended (%d shard(s): %d failed, %d cancelled)",
                 new_state == FN_JOB_COMPLETED ? "finish: completed"
                 : new_state == FN_JOB_FAILED  ? "fail: failed"
                                               : "cancel: cancelled",
                 n_split, failed, cancelled);
        code = fn_js_log_add(s, parent, now, out->line);
    }
    if (code) {
        free(ptext);
        return code;
    }
    out->touched = 1;
    out->state = new_state;
    out->progress = ptext;
    return 0;
}

static const char SQL_SHARD_OF[] = "SELECT shard_of FROM jobs WHERE id=?1";

int fn_js_shard_of(fn_store *s, int64_t id, int64_t *parent)
{
    *parent = 0;
    STMT(s, SQL_SHARD_OF);
    fn_sql_bind_int64(st, 1, id);
    int rc = fn_sql_step(st);
    if (rc == FN_SQL_ROW) *parent = fn_sql_column_int64(st, 0);
    int code = rc == FN_SQL_ROW || rc == FN_SQL_DONE ? 0 : fn_store_fail(s, rc, "reading a job");
    fn_sql_reset(st);
    return code;
}

#define CANCEL_SHARDS_QUEUED                                                                       \
    "UPDATE jobs SET state=2, finished_at=?2, updated_at=?2 WHERE shard_of=?1 AND state=0"
#define CANCEL_SHARDS_RUNNING                                                                      \
    "UPDATE jobs SET cancel_requested=1, updated_at=?2 WHERE shard_of=?1 AND state=1"
static const char SQL_CANCEL_SHARDS_QUEUED[] = CANCEL_SHARDS_QUEUED;
static const char SQL_CANCEL_SHARDS_RUNNING[] = CANCEL_SHARDS_RUNNING;
static const char SQL_CANCEL_SHARDS_QUEUED_PG[] = CANCEL_SHARDS_QUEUED PG_NOTIFY;
static const char SQL_CANCEL_SHARDS_RUNNING_PG[] = CANCEL_SHARDS_RUNNING PG_NOTIFY;

int fn_js_cancel_shards(fn_store *s, int64_t parent, int64_t now)
{
    int code;
    {
        STMT(s, FN_SQL_PICK(s, SQL_CANCEL_SHARDS_QUEUED, SQL_CANCEL_SHARDS_QUEUED_PG));
        fn_sql_bind_int64(st, 1, parent);
        fn_sql_bind_int64(st, 2, now);
        if ((code = run(s, st, "cancelling a job's shards"))) return code;
    }
    STMT(s, FN_SQL_PICK(s, SQL_CANCEL_SHARDS_RUNNING, SQL_CANCEL_SHARDS_RUNNING_PG));
    fn_sql_bind_int64(st, 1, parent);
    fn_sql_bind_int64(st, 2, now);
    return run(s, st, "cancelling a job's shards");
}
