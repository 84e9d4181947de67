/* jobs_store.c: SQL for the job registry (see jobs_store.h).
 *
 * What must stay true: a state change and the log line that reports it are written by the caller
 * in one transaction; a claim only takes a job that is still queued (so a cancel and a claim racing
 * across processes have exactly one winner); recovery only touches jobs whose owner is gone. */
#include "store/jobs_store.h"
#include "store/store_sql.h"

#include "util/clock.h"
#include "util/pathenc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const fn_migration jobs_migrations[] = {
    {1, "CREATE TABLE jobs("
        " id INTEGER PRIMARY KEY,"
        " type TEXT NOT NULL,"
        " priority INTEGER NOT NULL,"
        " payload TEXT NOT NULL DEFAULT '{}',"
        " state INTEGER NOT NULL,"
        " created_at INTEGER NOT NULL,"
        " updated_at INTEGER NOT NULL,"
        " queued_at INTEGER NOT NULL,"
        " started_at INTEGER,"
        " finished_at INTEGER,"
        " progress TEXT,"
        " checkpoint TEXT,"
        " parent INTEGER,"
        " fail_reason TEXT,"
        " gpu_slots INTEGER NOT NULL DEFAULT 0,"
        " mem_mb INTEGER NOT NULL DEFAULT 0,"
        " owner INTEGER,"
        " cancel_requested INTEGER NOT NULL DEFAULT 0,"
        " n_errors INTEGER NOT NULL DEFAULT 0);"
        /* Partial indexes: a claim touches only the small index of queued jobs, and nothing
         * indexes running jobs (recovery scans the table once per open), which keeps one worker
         * loop iteration (finish one job, claim the next) to about four pages of WAL. */
        "CREATE INDEX jobs_queued ON jobs(priority, id) WHERE state=0;"
        "CREATE INDEX jobs_cancel_requested ON jobs(id) WHERE cancel_requested=1;"
        "CREATE TABLE job_errors("
        " id INTEGER PRIMARY KEY,"
        " job INTEGER NOT NULL,"
        " item TEXT NOT NULL,"
        " code TEXT NOT NULL,"
        " message TEXT NOT NULL,"
        " resolution INTEGER NOT NULL);"
        "CREATE INDEX job_errors_by_job ON job_errors(job);"
        /* Clustered by job: a job's lines share a page and need no second index. seq is the
         * wall clock in ns (orders the lines; unique for one job in practice). */
        "CREATE TABLE job_log("
        " job INTEGER NOT NULL,"
        " seq INTEGER NOT NULL,"
        " at INTEGER NOT NULL,"
        " line TEXT NOT NULL,"
        " PRIMARY KEY(job, seq)) WITHOUT ROWID;"
        "CREATE TABLE job_audit("
        " id INTEGER PRIMARY KEY,"
        " job INTEGER NOT NULL,"
        " at INTEGER NOT NULL,"
        " action TEXT NOT NULL,"
        " detail TEXT);"
        "CREATE TABLE job_owners("
        " id INTEGER PRIMARY KEY,"
        " pid INTEGER NOT NULL,"
        " host TEXT NOT NULL,"
        " started_at INTEGER NOT NULL,"
        " heartbeat_at INTEGER NOT NULL);"},
    /* Error decisions and retry items (job_errors_store.c): a decision is appended, never
     * overwritten; a retry's items live in a table, not in its payload; a retry job is marked. */
    {2, "ALTER TABLE jobs ADD COLUMN retry_only INTEGER NOT NULL DEFAULT 0;"
        "CREATE INDEX jobs_by_parent ON jobs(parent) WHERE parent IS NOT NULL;"
        "CREATE TABLE job_items("
        " job INTEGER NOT NULL,"
        " seq INTEGER NOT NULL,"
        " item TEXT NOT NULL,"
        " PRIMARY KEY(job, seq)) WITHOUT ROWID;"
        "CREATE TABLE job_error_decisions("
        " id INTEGER PRIMARY KEY,"
        " error INTEGER NOT NULL,"
        " at INTEGER NOT NULL,"
        " who TEXT NOT NULL,"
        " from_res INTEGER NOT NULL,"
        " to_res INTEGER NOT NULL);"
        "CREATE INDEX job_error_decisions_by_error ON job_error_decisions(error);"},
    /* A worker looks for the oldest queued job of each lane among the types it has handlers for
     * (fn_js_lane_type_heads): one range of this index per lane and type, so queued jobs of other
     * types cost nothing, however many. The device slots and memory columns let the query skip
     * jobs that do not fit the free capacity without reading their rows. It replaces the index
     * by (priority, id): one partial index to update per enqueue and claim, not two. */
    {3, "CREATE INDEX jobs_queued_type ON jobs(priority, type, id, gpu_slots, mem_mb)"
        " WHERE state=0;"
        "DROP INDEX jobs_queued;"},
    /* The change feed other processes' monitors read (fn_js_feed_read): every update of a job's
     * state or progress appends the job's id to job_changes, whose rowid orders the changes by
     * commit (writers are serialised). A trigger rather than the writers' own SQL, so no writer
     * can forget it; an append to a small rowid table is the cheapest write that keeps an order
     * (about a third of the cost of numbering the job row itself through an index). Inserts do
     * not fire it: new jobs are found by id. It fires only while another process has the library
     * open (a second owner row): a lone process, the common case, has nobody to tell and pays
     * nothing (durable tiny jobs ran about 20% slower with it always on); a watcher that opens
     * later starts reading from the end of the feed anyway. fn_js_feed_prune keeps the table
     * short. */
    {4, "CREATE TABLE job_changes(seq INTEGER PRIMARY KEY, job INTEGER NOT NULL);"
        "CREATE TRIGGER jobs_changed AFTER UPDATE OF state, progress ON jobs"
        " WHEN (SELECT count(*) FROM job_owners) > 1 BEGIN"
        " INSERT INTO job_changes(job) VALUES(NEW.id);"
        " END;"},
    /* Owner ids are never handed out twice. A plain rowid gives the largest id plus one, which is
     * a dead owner's id again when its row was the last; a process that registers anew (taken for
     * dead while it lived, engine.c heartbeat) or a new process would then carry the id that the
     * dead owner's runs are fenced by, and could commit into them. The trigger names job_owners,
     * so it is dropped while the table is rebuilt. */
    {5, "DROP TRIGGER jobs_changed;"
        "CREATE TABLE job_owners_v5("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " pid INTEGER NOT NULL,"
        " host TEXT NOT NULL,"
        " started_at INTEGER NOT NULL,"
        " heartbeat_at INTEGER NOT NULL);"
        "INSERT INTO job_owners_v5 SELECT id, pid, host, started_at, heartbeat_at FROM job_owners;"
        "DROP TABLE job_owners;"
        "ALTER TABLE job_owners_v5 RENAME TO job_owners;"
        "CREATE TRIGGER jobs_changed AFTER UPDATE OF state, progress ON jobs"
        " WHEN (SELECT count(*) FROM job_owners) > 1 BEGIN"
        " INSERT INTO job_changes(job) VALUES(NEW.id);"
        " END;"},
    /* Shards (docs/job-types.md, "Shards"): a big job split at its open into jobs that any worker
     * claims. `shard_of` is the job a shard is part of (`parent` keeps its meaning, "resume or
     * retry of"); `shards` is how many shards a split job has (0: not split), which also keeps
     * recovery off a split job: it runs under no owner while its shards do. */
    {6, "ALTER TABLE jobs ADD COLUMN shard_of INTEGER;"
        "ALTER TABLE jobs ADD COLUMN shards INTEGER NOT NULL DEFAULT 0;"
        "CREATE INDEX jobs_by_shard_of ON jobs(shard_of) WHERE shard_of IS NOT NULL;"},
};

int fn_js_migrate(fn_store *s)
{
    return fn_store_migrate(s, "jobs", jobs_migrations,
                            sizeof jobs_migrations / sizeof jobs_migrations[0]);
}

int fn_js_check_version(fn_store *s)
{
    return fn_store_check_version(s, "jobs", jobs_migrations,
                                  sizeof jobs_migrations / sizeof jobs_migrations[0]);
}

static char *dup_col(fn_sql_stmt *st, int i)
{
    const char *t = fn_sql_column_text(st, i);
    return t ? strdup(t) : NULL;
}

static int64_t col_time(fn_sql_stmt *st, int i)
{
    return fn_sql_column_type(st, i) == FN_SQL_NULL ? -1 : fn_sql_column_int64(st, i);
}

/* Steps a statement that returns no rows. */
static int run(fn_store *s, fn_sql_stmt *st, const char *what)
{
    int rc = fn_sql_step(st);
    int code = (rc == FN_SQL_DONE || rc == FN_SQL_ROW) ? 0 : fn_store_fail(s, rc, what);
    fn_sql_reset(st);
    return code;
}

/* Steps an INSERT and gives the new row's id (when `id` is not NULL): the row an
 * INSERT ... RETURNING id returns, or, for an INSERT without RETURNING (the SQLite text of a hot
 * insert, see SQL_INSERT_LITE), SQLite's last_insert_rowid(). */
static int run_id(fn_store *s, fn_sql_stmt *st, int64_t *id, const char *what)
{
    int rc = fn_sql_step(st);
    int code = rc == FN_SQL_ROW || rc == FN_SQL_DONE ? 0 : fn_store_fail(s, rc, what);
    if (!code && id && rc == FN_SQL_ROW) *id = fn_sql_column_int64(st, 0);
    fn_sql_reset(st);
    if (!code && id && rc == FN_SQL_DONE) {
        fn_sql_stmt *last = fn_store_stmt(s, "SELECT last_insert_rowid()");
        if (!last) return FN_ERR_DB;
        rc = fn_sql_step(last);
        if (rc == FN_SQL_ROW)
            *id = fn_sql_column_int64(last, 0);
        else
            code = fn_store_fail(s, rc, what);
        fn_sql_reset(last);
    }
    return code;
}

#define STMT(s, sql)                                                                               \
    fn_sql_stmt *st = fn_store_stmt((s), (sql));                                                   \
    if (!st) return FN_ERR_DB

/* The database server's clock in ms since the epoch, for PostgreSQL texts: leases and heartbeats
 * compare times taken on one clock, the server's, never a host's (hosts' clocks drift apart).
 * clock_timestamp() is the time of the call (now() is the transaction's start). */
#define PG_NOW_MS "CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)"
/* Appended to a PostgreSQL UPDATE of a job's state or progress: tells every listening monitor
 * (fn_js_listen) which job moved, at the transaction's commit (a NOTIFY of a transaction that
 * rolls back is never sent). In the statement itself, so it costs no extra round trip. */
#define PG_NOTIFY " RETURNING pg_notify('" FN_JS_CHANNEL "', CAST(id AS TEXT))"

/* Two texts of one insert. SQLite's RETURNING buffers its row in a temporary table: it doubled
 * the cost of an enqueue (bulk enqueue ran at 0.55-0.65x the jobs per CPU second of the same
 * insert followed by last_insert_rowid(), the same loss in every pair of an interleaved run), so
 * on SQLite the id comes from last_insert_rowid() (run_id) and RETURNING is for the backends that
 * need it. */
#define SQL_INSERT_TEXT                                                                            \
    "INSERT INTO jobs(type, priority, payload, state, created_at, updated_at, queued_at,"          \
    " checkpoint, progress, parent, gpu_slots, mem_mb, retry_only, shard_of) "                     \
    "VALUES(?1,?2,?3,0,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)"
static const char SQL_INSERT_LITE[] = SQL_INSERT_TEXT;
/* PostgreSQL: the new job is told to listening monitors too (another host's UI shows it). */
static const char SQL_INSERT_RETURNING[] =
    SQL_INSERT_TEXT " RETURNING id, pg_notify('" FN_JS_CHANNEL "', CAST(id AS TEXT))";

int fn_js_insert(fn_store *s, const fn_js_new *j, int64_t now, int64_t *id)
{
    STMT(s, FN_SQL_PICK(s, SQL_INSERT_LITE, SQL_INSERT_RETURNING));
    fn_sql_bind_text(st, 1, j->type, -1, FN_SQL_STATIC);
    fn_sql_bind_int(st, 2, j->priority);
    fn_sql_bind_text(st, 3, j->payload ? j->payload : "{}", -1, FN_SQL_STATIC);
    fn_sql_bind_int64(st, 4, now);
    fn_sql_bind_int64(st, 5, now);
    fn_sql_bind_int64(st, 6, now);
    if (j->checkpoint) fn_sql_bind_text(st, 7, j->checkpoint, -1, FN_SQL_STATIC);
    if (j->progress) fn_sql_bind_text(st, 8, j->progress, -1, FN_SQL_STATIC);
    if (j->parent) fn_sql_bind_int64(st, 9, j->parent);
    fn_sql_bind_int(st, 10, j->gpu_slots);
    fn_sql_bind_int(st, 11, j->mem_mb);
    fn_sql_bind_int(st, 12, j->retry_only);
    if (j->shard_of) fn_sql_bind_int64(st, 13, j->shard_of);
    return run_id(s, st, id, "adding a job");
}

static const char SQL_COPY_ERRORS[] =
    "INSERT INTO job_errors(job, item, code, message, resolution)"
    " SELECT CAST(?2 AS BIGINT), item, code, message, resolution FROM job_errors WHERE job=?1"
    " AND (CAST(?3 AS BIGINT) < 0 OR resolution=CAST(?3 AS BIGINT)) ORDER BY id";
static const char SQL_COUNT_ERRORS[] =
    "UPDATE jobs SET n_errors=(SELECT count(*) FROM job_errors WHERE job=?1) WHERE id=?1";

int fn_js_copy_errors(fn_store *s, int64_t from, int64_t to, int resolution)
{
    int code;
    {
        STMT(s, SQL_COPY_ERRORS);
        fn_sql_bind_int64(st, 1, from);
        fn_sql_bind_int64(st, 2, to);
        fn_sql_bind_int(st, 3, resolution);
        if ((code = run(s, st, "copying job errors"))) return code;
    }
    STMT(s, SQL_COUNT_ERRORS);
    fn_sql_bind_int64(st, 1, to);
    return run(s, st, "counting job errors");
}

static void fill_queued(fn_sql_stmt *st, fn_js_queued *q)
{
    q->id = fn_sql_column_int64(st, 0);
    q->priority = fn_sql_column_int(st, 1);
    q->queued_at = fn_sql_column_int64(st, 2);
    q->gpu_slots = fn_sql_column_int(st, 3);
    q->mem_mb = fn_sql_column_int(st, 4);
    const char *t = fn_sql_column_text(st, 5);
    snprintf(q->type, sizeof q->type, "%s", t ? t : "");
}

/* ?4/?7: the handler's device slots and memory for jobs stored with -1. A job is kept when it fits
 * what is free (?5 slots, ?8 MB) or can never fit (more than ?6 slots, or more than ?9 MB when
 * there is a memory cap), so the caller can fail it with a reason. */
static const char SQL_LANE_TYPE[] =
    "SELECT id, priority, queued_at, gpu_slots, mem_mb, type FROM jobs"
    " WHERE state=0 AND priority=?1 AND type=?2 AND id>?3"
    " AND (CASE WHEN gpu_slots<0 THEN ?4 ELSE gpu_slots END <= ?5"
    "  OR CASE WHEN gpu_slots<0 THEN ?4 ELSE gpu_slots END > ?6)"
    " AND (?9 <= 0 OR CASE WHEN mem_mb<0 THEN ?7 ELSE mem_mb END <= ?8"
    "  OR CASE WHEN mem_mb<0 THEN ?7 ELSE mem_mb END > ?9)"
    " ORDER BY id LIMIT ?10";

int fn_js_lane_type_heads(fn_store *s, int priority, const char *type, int64_t after,
                          const fn_js_fit *fit, fn_js_queued *out, int cap, int *n)
{
    *n = 0;
    STMT(s, SQL_LANE_TYPE);
    fn_sql_bind_int(st, 1, priority);
    fn_sql_bind_text(st, 2, type, -1, FN_SQL_STATIC);
    fn_sql_bind_int64(st, 3, after);
    fn_sql_bind_int(st, 4, fit->gpu_default);
    fn_sql_bind_int(st, 5, fit->gpu_free);
    fn_sql_bind_int(st, 6, fit->gpu_max);
    fn_sql_bind_int(st, 7, fit->mem_default);
    fn_sql_bind_int(st, 8, fit->mem_free);
    fn_sql_bind_int(st, 9, fit->mem_max);
    fn_sql_bind_int(st, 10, cap);
    int rc;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW && *n < cap)
        fill_queued(st, &out[(*n)++]);
    int code =
        (rc == FN_SQL_DONE || rc == FN_SQL_ROW) ? 0 : fn_store_fail(s, rc, "reading queued jobs");
    fn_sql_reset(st);
    return code;
}

void fn_js_claim_clear(fn_js_claim *c)
{
    free(c->type);
    free(c->payload);
    free(c->checkpoint);
    free(c->progress);
    memset(c, 0, sizeof *c);
}

#define CLAIM_SET                                                                                  \
    "UPDATE jobs SET state=1, owner=?2, updated_at=?3, started_at=coalesce(started_at, ?3)"
#define CLAIM_RETURNING                                                                            \
    " RETURNING type, payload, checkpoint, progress, priority, parent, started_at, created_at,"    \
    " cancel_requested, n_errors, retry_only, shard_of"
static const char SQL_CLAIM[] = CLAIM_SET " WHERE id=?1 AND state=0" CLAIM_RETURNING;
/* PostgreSQL: claims run in transactions without the library's lock (fn_store_begin_rows), so
 * the row is locked here; a job whose row another transaction holds (a competing claim, a cancel)
 * is skipped at once instead of waited for. The re-check of state=0 after the lock keeps exactly
 * one winner. */
static const char SQL_CLAIM_PG[] =
    CLAIM_SET " WHERE id=(SELECT id FROM jobs WHERE id=?1 AND state=0 FOR UPDATE SKIP LOCKED) AND "
              "state=0" CLAIM_RETURNING ", pg_notify('" FN_JS_CHANNEL "', CAST(id AS TEXT))";

int fn_js_claim_job(fn_store *s, int64_t id, int64_t owner, int64_t now, fn_js_claim *out,
                    int *claimed)
{
    memset(out, 0, sizeof *out);
    STMT(s, FN_SQL_PICK(s, SQL_CLAIM, SQL_CLAIM_PG));
    fn_sql_bind_int64(st, 1, id);
    fn_sql_bind_int64(st, 2, owner);
    fn_sql_bind_int64(st, 3, now);
    int rc = fn_sql_step(st);
    *claimed = rc == FN_SQL_ROW;
    if (*claimed) {
        out->type = dup_col(st, 0);
        out->payload = dup_col(st, 1);
        out->checkpoint = dup_col(st, 2);
        out->progress = dup_col(st, 3);
        out->priority = fn_sql_column_int(st, 4);
        out->parent = fn_sql_column_int64(st, 5);
        out->started_at = col_time(st, 6);
        out->created_at = col_time(st, 7);
        out->cancel_requested = fn_sql_column_int(st, 8);
        out->n_errors = fn_sql_column_int64(st, 9);
        out->retry_only = fn_sql_column_int(st, 10);
        out->shard_of = fn_sql_column_int64(st, 11);
        rc = fn_sql_step(st);
    }
    int code = rc == FN_SQL_DONE ? 0 : fn_store_fail(s, rc, "claiming a job");
    fn_sql_reset(st);
    if (code) fn_js_claim_clear(out);
    return code;
}

static const char SQL_ERRORS[] =
    "SELECT item, code, message, resolution, id FROM job_errors WHERE job=?1 ORDER BY id";

int fn_js_errors(fn_store *s, int64_t id, fn_job_error **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    STMT(s, SQL_ERRORS);
    fn_sql_bind_int64(st, 1, id);
    size_t cap = 0;
    int rc;
    int code = 0;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            fn_job_error *ne = realloc(*out, cap * sizeof *ne);
            if (!ne) {
                code = FN_ERR_NOMEM;
                break;
            }
            *out = ne;
        }
        fn_job_error *e = &(*out)[(*n)++];
        e->item = dup_col(st, 0);
        e->code = dup_col(st, 1);
        e->message = dup_col(st, 2);
        e->resolution = (fn_resolution)fn_sql_column_int(st, 3);
        e->id = fn_sql_column_int64(st, 4);
        if (!e->item || !e->code || !e->message) code = FN_ERR_NOMEM;
    }
    if (!code && rc != FN_SQL_DONE) code = fn_store_fail(s, rc, "reading job errors");
    fn_sql_reset(st);
    if (code) {
        fn_js_errors_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return code;
}

void fn_js_errors_free(fn_job_error *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].item);
        free(e[i].code);
        free(e[i].message);
    }
    free(e);
}

/* Fenced by owner: a process whose job was recovered by another one (its heartbeat went silent
 * for too long) must not commit into it any more. */
#define SAVE_CK                                                                                    \
    "UPDATE jobs SET checkpoint=?2, progress=coalesce(?3, progress), updated_at=?4"                \
    " WHERE id=?1 AND state=1 AND owner=?5"
#define SAVE_NOCK                                                                                  \
    "UPDATE jobs SET progress=coalesce(?3, progress), updated_at=?4"                               \
    " WHERE id=?1 AND state=1 AND owner=?5"
static const char SQL_SAVE_CK[] = SAVE_CK;
static const char SQL_SAVE_NOCK[] = SAVE_NOCK;
static const char SQL_SAVE_CK_PG[] = SAVE_CK PG_NOTIFY;
static const char SQL_SAVE_NOCK_PG[] = SAVE_NOCK PG_NOTIFY;

int fn_js_save_progress(fn_store *s, int64_t id, int64_t owner, const char *checkpoint,
                        int set_checkpoint, const char *progress, int64_t now)
{
    STMT(s, set_checkpoint ? FN_SQL_PICK(s, SQL_SAVE_CK, SQL_SAVE_CK_PG)
                           : FN_SQL_PICK(s, SQL_SAVE_NOCK, SQL_SAVE_NOCK_PG));
    fn_sql_bind_int64(st, 1, id);
    if (set_checkpoint && checkpoint) fn_sql_bind_text(st, 2, checkpoint, -1, FN_SQL_STATIC);
    if (progress) fn_sql_bind_text(st, 3, progress, -1, FN_SQL_STATIC);
    fn_sql_bind_int64(st, 4, now);
    fn_sql_bind_int64(st, 5, owner);
    int code = run(s, st, "saving job progress");
    if (!code && fn_sql_changes(s) == 0) {
        char detail[160];
        snprintf(detail, sizeof detail,
                 "job %lld is no longer running under this process (it was recovered or "
                 "finished elsewhere); its batch is discarded",
                 (long long)id);
        fn_store_set_msg(s, FN_ERR_STATE, "saving job progress", detail);
        return FN_ERR_STATE;
    }
    return code;
}

static const char SQL_ADD_ERROR[] =
    "INSERT INTO job_errors(job, item, code, message, resolution) VALUES(?1,?2,?3,?4,?5)";
static const char SQL_BUMP_ERRORS[] = "UPDATE jobs SET n_errors=n_errors+1 WHERE id=?1";

int fn_js_add_error(fn_store *s, int64_t id, const char *item, const char *code, const char *msg,
                    int resolution)
{
    int rc;
    {
        STMT(s, SQL_ADD_ERROR);
        /* A file name is bytes; PostgreSQL's text must be UTF-8: there an item or message that is
         * not goes in as its escaped text form (util/pathenc.h: \xHH), which names it exactly. */
        char *item_t = NULL, *msg_t = NULL;
        if (fn_store_backend(s) == FN_SQL_POSTGRES) {
            if (item && !fn_utf8_valid(item, strlen(item)))
                item = item_t = fn_path_text(item, NULL);
            if (msg && !fn_utf8_valid(msg, strlen(msg))) msg = msg_t = fn_path_text(msg, NULL);
        }
        fn_sql_bind_int64(st, 1, id);
        fn_sql_bind_text(st, 2, item ? item : "", -1, FN_SQL_TRANSIENT);
        fn_sql_bind_text(st, 3, code ? code : "unknown", -1, FN_SQL_STATIC);
        fn_sql_bind_text(st, 4, msg ? msg : "", -1, FN_SQL_TRANSIENT);
        fn_sql_bind_int(st, 5, resolution);
        free(item_t);
        free(msg_t);
        if ((rc = run(s, st, "recording a job error"))) return rc;
    }
    STMT(s, SQL_BUMP_ERRORS);
    fn_sql_bind_int64(st, 1, id);
    return run(s, st, "counting job errors");
}

static const char SQL_ADD_AUDIT[] =
    "INSERT INTO job_audit(job, at, action, detail) VALUES(?1,?2,?3,?4)";

int fn_js_add_audit(fn_store *s, int64_t id, int64_t now, const char *action, const char *detail)
{
    STMT(s, SQL_ADD_AUDIT);
    fn_sql_bind_int64(st, 1, id);
    fn_sql_bind_int64(st, 2, now);
    fn_sql_bind_text(st, 3, action, -1, FN_SQL_STATIC);
    if (detail) fn_sql_bind_text(st, 4, detail, -1, FN_SQL_STATIC);
    return run(s, st, "recording an audit action");
}

static const char SQL_LOG_ADD[] =
    "INSERT INTO job_log(job, seq, at, line) VALUES(?1,"
    " max(?2, coalesce((SELECT max(seq)+1 FROM job_log WHERE job=?1), 0)),?3,?4)";
static const char SQL_LOG_ADD_PG[] =
    "INSERT INTO job_log(job, seq, at, line) VALUES(?1,"
    " greatest(CAST(?2 AS BIGINT), coalesce((SELECT max(seq)+1 FROM job_log WHERE job=?1), 0)),"
    "?3,?4)";

int fn_js_log_add(fn_store *s, int64_t id, int64_t now, const char *line)
{
    STMT(s, FN_SQL_PICK(s, SQL_LOG_ADD, SQL_LOG_ADD_PG));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fn_sql_bind_int64(st, 1, id);
    fn_sql_bind_int64(st, 2, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
    fn_sql_bind_int64(st, 3, now);
    fn_sql_bind_text(st, 4, line, -1, FN_SQL_STATIC);
    return run(s, st, "writing a job log line");
}

/* Back to queued keeps started_at (the job has started once) and sets queued_at afresh only when
 * it was never queued before: a yielded job keeps its age, so aging still lifts it. */
#define FINISH                                                                                     \
    "UPDATE jobs SET state=CAST(?2 AS BIGINT), updated_at=?3, owner=NULL,"                         \
    " finished_at=CASE WHEN CAST(?2 AS BIGINT) IN (2,3,4) THEN CAST(?3 AS BIGINT) END,"            \
    " fail_reason=coalesce(?4, fail_reason), progress=coalesce(?5, progress),"                     \
    " cancel_requested=CASE WHEN CAST(?2 AS BIGINT)=0 THEN cancel_requested ELSE 0 END"            \
    " WHERE id=?1 AND state=1 AND owner=?6"
static const char SQL_FINISH[] = FINISH;
static const char SQL_FINISH_PG[] = FINISH PG_NOTIFY;

int fn_js_finish(fn_store *s, int64_t id, int64_t owner, int state, int64_t now,
                 const char *fail_reason, const char *progress)
{
    STMT(s, FN_SQL_PICK(s, SQL_FINISH, SQL_FINISH_PG));
    fn_sql_bind_int64(st, 6, owner);
    fn_sql_bind_int64(st, 1, id);
    fn_sql_bind_int(st, 2, state);
    fn_sql_bind_int64(st, 3, now);
    if (fail_reason) fn_sql_bind_text(st, 4, fail_reason, -1, FN_SQL_STATIC);
    if (progress) fn_sql_bind_text(st, 5, progress, -1, FN_SQL_STATIC);
    int code = run(s, st, "changing a job's state");
    if (!code && fn_sql_changes(s) == 0) {
        char detail[160];
        snprintf(detail, sizeof detail,
                 "job %lld is no longer running under this process (it was recovered or "
                 "finished elsewhere); its end is not recorded",
                 (long long)id);
        fn_store_set_msg(s, FN_ERR_STATE, "changing a job's state", detail);
        return FN_ERR_STATE;
    }
    return code;
}

static const char SQL_STATE[] = "SELECT state FROM jobs WHERE id=?1";

static int state_of(fn_store *s, const char *sql, int64_t id, int *state)
{
    STMT(s, sql);
    fn_sql_bind_int64(st, 1, id);
    int rc = fn_sql_step(st);
    int code = 0;
    if (rc == FN_SQL_ROW)
        *state = fn_sql_column_int(st, 0);
    else if (rc == FN_SQL_DONE)
        code = FN_ERR_NOT_FOUND;
    else
        code = fn_store_fail(s, rc, "reading a job's state");
    fn_sql_reset(st);
    return code;
}

int fn_js_state(fn_store *s, int64_t id, int *state)
{
    return state_of(s, SQL_STATE, id, state);
}

#define CANCEL_QUEUED                                                                              \
    "UPDATE jobs SET state=2, finished_at=?2, updated_at=?2 WHERE id=?1 AND state=0"
#define CANCEL_RUNNING "UPDATE jobs SET cancel_requested=1, updated_at=?2 WHERE id=?1 AND state=1"
static const char SQL_CANCEL_QUEUED[] = CANCEL_QUEUED;
static const char SQL_CANCEL_RUNNING[] = CANCEL_RUNNING;
/* A cancel of a running job is told to the host that runs it at once (its monitor listens). */
static const char SQL_CANCEL_QUEUED_PG[] = CANCEL_QUEUED PG_NOTIFY;
static const char SQL_CANCEL_RUNNING_PG[] = CANCEL_RUNNING PG_NOTIFY;
/* PostgreSQL: claims take no library lock (SQL_CLAIM_PG), so the cancel locks the job's row
 * before it reads the state it acts on: a claim then skips the row, and a claim that came first
 * is waited for, so the state read is the one the update meets. */
static const char SQL_STATE_LOCK_PG[] = "SELECT state FROM jobs WHERE id=?1 FOR UPDATE";

int fn_js_cancel(fn_store *s, int64_t id, int64_t now, int *outcome)
{
    fn_js_settled settled;
    int code = fn_js_cancel_ex(s, id, now, outcome, &settled);
    fn_js_settled_clear(&settled);
    return code;
}

int fn_js_cancel_ex(fn_store *s, int64_t id, int64_t now, int *outcome, fn_js_settled *settled)
{
    memset(settled, 0, sizeof *settled);
    fn_store_tx *tx;
    int code = fn_store_begin(s, &tx);
    if (code) return code;
    int state = -1;
    int64_t split_of = 0;
    if ((code = state_of(s, FN_SQL_PICK(s, SQL_STATE, SQL_STATE_LOCK_PG), id, &state))) goto fail;
    /* A split job: its shards are cancelled with it, and it ends when they have (at once when
     * none was running). A queued shard: the job it is part of may end with it. */
    if (state == 1 && (code = fn_js_cancel_shards(s, id, now))) goto fail;
    if (state == 1) split_of = id;
    if (state == 0 && (code = fn_js_shard_of(s, id, &split_of))) goto fail;
    if (state == 0 || state == 1) {
        STMT(s, state == 0 ? FN_SQL_PICK(s, SQL_CANCEL_QUEUED, SQL_CANCEL_QUEUED_PG)
                           : FN_SQL_PICK(s, SQL_CANCEL_RUNNING, SQL_CANCEL_RUNNING_PG));
        fn_sql_bind_int64(st, 1, id);
        fn_sql_bind_int64(st, 2, now);
        if ((code = run(s, st, "cancelling a job"))) goto fail;
        *outcome = state == 0 ? 1 : 2;
        if (state == 0) {
            char line[64];
            snprintf(line, sizeof line, "cancel (while queued)");
            if ((code = fn_js_log_add(s, id, now, line))) goto fail;
        }
    } else {
        *outcome = state == 2 ? 4 : 3;
    }
    if (split_of && (code = fn_js_shard_settle(s, split_of, now, settled))) goto fail;
    if ((code = fn_store_commit(tx))) fn_js_settled_clear(settled);
    return code;
fail:
    fn_store_rollback(tx);
    fn_js_settled_clear(settled);
    return code;
}

static const char SQL_CANCEL_REQ[] =
    "SELECT id FROM jobs WHERE cancel_requested=1 AND state=1 AND owner=?1";

int fn_js_cancel_requests(fn_store *s, int64_t owner, int64_t *ids, int cap, int *n)
{
    *n = 0;
    STMT(s, SQL_CANCEL_REQ);
    fn_sql_bind_int64(st, 1, owner);
    int rc;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW)
        if (*n < cap) ids[(*n)++] = fn_sql_column_int64(st, 0);
    int code = rc == FN_SQL_DONE ? 0 : fn_store_fail(s, rc, "reading cancel requests");
    fn_sql_reset(st);
    return code;
}

#define INFO_COLS                                                                                  \
    "id, type, priority, payload, state, created_at, updated_at, started_at, finished_at,"         \
    " progress, checkpoint, parent, fail_reason, n_errors, retry_only, shard_of, shards"

/* The store builds fn_job_info (fn_js_get, fn_js_list), so it owns the free: the public
 * fn_job_info_free (src/jobs/api.c) calls this, and fn_store links without fn_jobs. */
void fn_js_info_free(fn_job_info *info)
{
    if (!info) return;
    free(info->type);
    free(info->payload);
    free(info->progress);
    free(info->checkpoint);
    free(info->fail_reason);
    for (size_t i = 0; info->errors && i < info->n_errors; i++) {
        free(info->errors[i].item);
        free(info->errors[i].code);
        free(info->errors[i].message);
    }
    free(info->errors);
    free(info);
}

static fn_job_info *row_info(fn_sql_stmt *st)
{
    fn_job_info *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->id = fn_sql_column_int64(st, 0);
    j->type = dup_col(st, 1);
    j->priority = (fn_priority)fn_sql_column_int(st, 2);
    j->payload = dup_col(st, 3);
    j->state = (fn_job_state)fn_sql_column_int(st, 4);
    j->created_at = col_time(st, 5);
    j->updated_at = col_time(st, 6);
    j->started_at = col_time(st, 7);
    j->finished_at = col_time(st, 8);
    j->progress = dup_col(st, 9);
    if (!j->progress) j->progress = strdup("{}");
    j->checkpoint = dup_col(st, 10);
    j->parent = fn_sql_column_int64(st, 11);
    j->fail_reason = dup_col(st, 12);
    j->n_errors = (size_t)fn_sql_column_int64(st, 13);
    j->retry_only = fn_sql_column_int(st, 14);
    j->shard_of = fn_sql_column_int64(st, 15);
    j->shards = fn_sql_column_int(st, 16);
    if (!j->type || !j->payload || !j->progress) {
        fn_js_info_free(j);
        return NULL;
    }
    return j;
}

static const char SQL_GET[] = "SELECT " INFO_COLS " FROM jobs WHERE id=?1";

int fn_js_get(fn_store *s, int64_t id, int with_errors, fn_job_info **out)
{
    *out = NULL;
    int code = 0;
    {
        STMT(s, SQL_GET);
        fn_sql_bind_int64(st, 1, id);
        int rc = fn_sql_step(st);
        if (rc == FN_SQL_ROW) {
            if (!(*out = row_info(st))) code = FN_ERR_NOMEM;
        } else if (rc == FN_SQL_DONE) {
            code = FN_ERR_NOT_FOUND;
        } else {
            code = fn_store_fail(s, rc, "reading a job");
        }
        fn_sql_reset(st);
    }
    if (!code && with_errors) {
        code = fn_js_errors(s, id, &(*out)->errors, &(*out)->n_errors);
    }
    if (code) {
        fn_js_info_free(*out);
        *out = NULL;
    }
    return code;
}

static const char SQL_LIST_ALL[] = "SELECT " INFO_COLS " FROM jobs ORDER BY id DESC LIMIT ?1";
static const char SQL_LIST_STATE[] =
    "SELECT " INFO_COLS " FROM jobs WHERE state=?1 ORDER BY id DESC LIMIT ?2";

int fn_js_list(fn_store *s, int state, size_t limit, fn_job_info ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int64_t lim = limit ? (int64_t)limit : -1;
    STMT(s, state < 0 ? SQL_LIST_ALL : SQL_LIST_STATE);
    /* No limit: SQLite's LIMIT -1; PostgreSQL refuses a negative limit and reads NULL as none. */
    const int no_limit_null = !limit && fn_store_backend(s) == FN_SQL_POSTGRES;
    if (state < 0) {
        if (!no_limit_null) fn_sql_bind_int64(st, 1, lim);
    } else {
        fn_sql_bind_int(st, 1, state);
        if (!no_limit_null) fn_sql_bind_int64(st, 2, lim);
    }
    size_t cap = 0;
    int rc, code = 0;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            fn_job_info **nv = realloc(*out, cap * sizeof *nv);
            if (!nv) {
                code = FN_ERR_NOMEM;
                break;
            }
            *out = nv;
        }
        if (!((*out)[*n] = row_info(st))) {
            code = FN_ERR_NOMEM;
            break;
        }
        (*n)++;
    }
    if (!code && rc != FN_SQL_DONE) code = fn_store_fail(s, rc, "listing jobs");
    fn_sql_reset(st);
    if (code) {
        for (size_t i = 0; i < *n; i++)
            fn_js_info_free((*out)[i]);
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return code;
}

static const char SQL_LOG_TEXT[] = "SELECT at, line FROM job_log WHERE job=?1 ORDER BY seq";
static const char SQL_LOG_HEAD[] = "SELECT created_at, priority, parent FROM jobs WHERE id=?1";

static int append_line(char **buf, size_t *len, size_t *cap, int64_t at, const char *line)
{
    char iso[32];
    fn_iso8601(at, iso, sizeof iso);
    size_t l = strlen(iso) + 1 + strlen(line);
    if (*len + l + 2 > *cap) {
        while (*len + l + 2 > *cap)
            *cap *= 2;
        char *nb = realloc(*buf, *cap);
        if (!nb) return FN_ERR_NOMEM;
        *buf = nb;
    }
    *len += (size_t)sprintf(*buf + *len, "%s %s\n", iso, line);
    return 0;
}

static const char *const lane_names[] = {"background", "normal", "interactive"};

int fn_js_log_text(fn_store *s, int64_t id, char **text)
{
    *text = NULL;
    size_t len = 0, cap = 256;
    char *buf = malloc(cap);
    if (!buf) return FN_ERR_NOMEM;
    buf[0] = '\0';
    int rc, code = 0;
    {
        /* The "queued" line is not stored (it would double the cost of a bulk enqueue): the
         * job's row says everything it would. */
        fn_sql_stmt *st = fn_store_stmt(s, SQL_LOG_HEAD);
        if (!st) {
            free(buf);
            return FN_ERR_DB;
        }
        fn_sql_bind_int64(st, 1, id);
        rc = fn_sql_step(st);
        if (rc == FN_SQL_ROW) {
            int prio = fn_sql_column_int(st, 1);
            int64_t parent = fn_sql_column_int64(st, 2);
            char line[128];
            int n = snprintf(line, sizeof line, "queued: %s lane",
                             prio >= 0 && prio <= 2 ? lane_names[prio] : "unknown");
            if (parent)
                snprintf(line + n, sizeof line - (size_t)n, ", follows job %lld",
                         (long long)parent);
            code = append_line(&buf, &len, &cap, fn_sql_column_int64(st, 0), line);
        } else {
            code = rc == FN_SQL_DONE ? FN_ERR_NOT_FOUND : fn_store_fail(s, rc, "reading a job");
        }
        fn_sql_reset(st);
        if (code) {
            free(buf);
            return code;
        }
    }
    STMT(s, SQL_LOG_TEXT);
    fn_sql_bind_int64(st, 1, id);
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        const char *line = fn_sql_column_text(st, 1);
        if ((code = append_line(&buf, &len, &cap, fn_sql_column_int64(st, 0), line ? line : "")))
            break;
    }
    if (!code && rc != FN_SQL_DONE) code = fn_store_fail(s, rc, "reading a job log");
    fn_sql_reset(st);
    if (code) {
        free(buf);
        return code;
    }
    *text = buf;
    return 0;
}

static const char SQL_OWNER_ADD[] =
    "INSERT INTO job_owners(pid, host, started_at, heartbeat_at) VALUES(?1,?2,?3,?4) RETURNING id";
/* PostgreSQL: the lease starts on the server's clock (the host's `now`, ?3 and ?4, is unused). */
static const char SQL_OWNER_ADD_PG[] = "INSERT INTO job_owners(pid, host, started_at, heartbeat_at)"
                                       " VALUES(?1,?2," PG_NOW_MS "," PG_NOW_MS ") RETURNING id";

int fn_js_owner_register(fn_store *s, int pid, const char *host, int64_t now, int64_t *owner)
{
    STMT(s, FN_SQL_PICK(s, SQL_OWNER_ADD, SQL_OWNER_ADD_PG));
    fn_sql_bind_int(st, 1, pid);
    fn_sql_bind_text(st, 2, host, -1, FN_SQL_STATIC);
    fn_sql_bind_int64(st, 3, now);
    fn_sql_bind_int64(st, 4, now);
    return run_id(s, st, owner, "registering this process as a job owner");
}

static const char SQL_OWNER_BEAT[] = "UPDATE job_owners SET heartbeat_at=?1 WHERE id=?2";
static const char SQL_OWNER_BEAT_PG[] =
    "UPDATE job_owners SET heartbeat_at=" PG_NOW_MS " WHERE id=?2";

int fn_js_owner_heartbeat(fn_store *s, int64_t owner, int64_t now)
{
    STMT(s, FN_SQL_PICK(s, SQL_OWNER_BEAT, SQL_OWNER_BEAT_PG));
    fn_sql_bind_int64(st, 1, now);
    fn_sql_bind_int64(st, 2, owner);
    int code = run(s, st, "writing the owner heartbeat");
    if (!code && fn_sql_changes(s) == 0) {
        fn_store_set_msg(s, FN_ERR_NOT_FOUND, "writing the owner heartbeat",
                         "this process's owner row is gone: another process took it for dead "
                         "(its heartbeat was late) and recovered its jobs");
        return FN_ERR_NOT_FOUND;
    }
    return code;
}

static const char SQL_OWNER_DEL[] = "DELETE FROM job_owners WHERE id=?1";

int fn_js_owner_leave(fn_store *s, int64_t owner)
{
    STMT(s, SQL_OWNER_DEL);
    fn_sql_bind_int64(st, 1, owner);
    return run(s, st, "removing the job owner");
}

/* Each other owner with the age of its last heartbeat: on PostgreSQL by the server's clock (the
 * heartbeats were written by it too), on SQLite by the caller's (?2). */
static const char SQL_OWNERS[] =
    "SELECT id, pid, host, ?2 - heartbeat_at FROM job_owners WHERE id<>?1";
static const char SQL_OWNERS_PG[] =
    "SELECT id, pid, host, " PG_NOW_MS " - heartbeat_at FROM job_owners WHERE id<>?1";
/* A split job (shards > 0) runs under no owner while its shards run: never an orphan. */
static const char SQL_ORPHANS[] = "SELECT id, owner FROM jobs WHERE state=1 AND shards=0 AND"
                                  " (owner IS NULL OR owner NOT IN (SELECT id FROM job_owners))";
#define REQUEUE "UPDATE jobs SET state=0, owner=NULL, updated_at=?2 WHERE id=?1 AND state=1"
static const char SQL_REQUEUE[] = REQUEUE;
static const char SQL_REQUEUE_PG[] = REQUEUE PG_NOTIFY;

/* Whether an owner other than `self` is gone: silent for longer than timeout_ms, or on this host
 * with its process gone. */
static int owner_dead(fn_sql_stmt *st, const char *host, int timeout_ms)
{
    int pid = fn_sql_column_int(st, 1);
    const char *h = fn_sql_column_text(st, 2);
    int64_t age = fn_sql_column_int64(st, 3);
    if (age > timeout_ms) return 1;
    return h && strcmp(h, host) == 0 && pid > 0 && kill(pid, 0) != 0 && errno == ESRCH;
}

int fn_js_owners_gone(fn_store *s, int64_t self, const char *host, int64_t now, int timeout_ms,
                      int *gone)
{
    *gone = 0;
    STMT(s, FN_SQL_PICK(s, SQL_OWNERS, SQL_OWNERS_PG));
    fn_sql_bind_int64(st, 1, self);
    fn_sql_bind_int64(st, 2, now);
    int rc;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW)
        *gone += owner_dead(st, host, timeout_ms);
    int code = rc == FN_SQL_DONE ? 0 : fn_store_fail(s, rc, "reading job owners");
    fn_sql_reset(st);
    return code;
}

int fn_js_recover(fn_store *s, int64_t self, const char *host, int64_t now, int timeout_ms,
                  int *recovered)
{
    *recovered = 0;
    fn_store_tx *tx;
    int code = fn_store_begin(s, &tx);
    if (code) return code;
    /* 1. Drop owners that are gone. */
    int64_t *gone = NULL;
    size_t n_gone = 0, cap = 0;
    {
        fn_sql_stmt *st = fn_store_stmt(s, FN_SQL_PICK(s, SQL_OWNERS, SQL_OWNERS_PG));
        if (!st) {
            code = FN_ERR_DB;
            goto out;
        }
        fn_sql_bind_int64(st, 1, self);
        fn_sql_bind_int64(st, 2, now);
        int rc;
        while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
            if (!owner_dead(st, host, timeout_ms)) continue;
            if (n_gone == cap) {
                cap = cap ? cap * 2 : 16;
                int64_t *ng = realloc(gone, cap * sizeof *ng);
                if (!ng) {
                    code = FN_ERR_NOMEM;
                    break;
                }
                gone = ng;
            }
            gone[n_gone++] = fn_sql_column_int64(st, 0);
        }
        if (!code && rc != FN_SQL_DONE) code = fn_store_fail(s, rc, "reading job owners");
        fn_sql_reset(st);
        if (code) goto out;
    }
    for (size_t i = 0; i < n_gone; i++)
        if ((code = fn_js_owner_leave(s, gone[i]))) goto out;
    /* 2. Requeue running jobs without a live owner. */
    {
        int64_t *ids = NULL, *owners = NULL;
        size_t n = 0, c2 = 0;
        fn_sql_stmt *st = fn_store_stmt(s, SQL_ORPHANS);
        if (!st) {
            code = FN_ERR_DB;
            goto out;
        }
        int rc;
        while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
            if (n == c2) {
                c2 = c2 ? c2 * 2 : 64;
                int64_t *a = realloc(ids, c2 * sizeof *a);
                if (a) ids = a;
                int64_t *b = realloc(owners, c2 * sizeof *b);
                if (b) owners = b;
                if (!a || !b) {
                    code = FN_ERR_NOMEM;
                    break;
                }
            }
            ids[n] = fn_sql_column_int64(st, 0);
            owners[n] = fn_sql_column_int64(st, 1);
            n++;
        }
        if (!code && rc != FN_SQL_DONE) code = fn_store_fail(s, rc, "finding orphaned jobs");
        fn_sql_reset(st);
        for (size_t i = 0; !code && i < n; i++) {
            fn_sql_stmt *up = fn_store_stmt(s, FN_SQL_PICK(s, SQL_REQUEUE, SQL_REQUEUE_PG));
            if (!up) {
                code = FN_ERR_DB;
                break;
            }
            fn_sql_bind_int64(up, 1, ids[i]);
            fn_sql_bind_int64(up, 2, now);
            if ((code = run(s, up, "requeueing an orphaned job"))) break;
            char line[128];
            snprintf(line, sizeof line,
                     "recovered: owner %lld is gone; back to queued, continues from its "
                     "checkpoint",
                     (long long)owners[i]);
            code = fn_js_log_add(s, ids[i], now, line);
        }
        if (!code) *recovered = (int)n;
        free(ids);
        free(owners);
    }
out:
    free(gone);
    if (code) {
        fn_store_rollback(tx);
        return code;
    }
    return fn_store_commit(tx);
}

/* ---- the change feed (other processes' jobs, for the monitor's events) ------------------------
 */

/* PostgreSQL has no data_version: the sum of the change feed's, the jobs' and the errors' last
 * numbers moves whenever a row the feed reads is added (the fallback when nobody listens). */
static const char SQL_DATA_VERSION_PG[] = "SELECT (SELECT coalesce(max(seq), 0) FROM job_changes)"
                                          " + (SELECT coalesce(max(id), 0) FROM jobs)"
                                          " + (SELECT coalesce(max(id), 0) FROM job_errors)";

int fn_js_data_version(fn_store *s, int64_t *v)
{
    STMT(s, FN_SQL_PICK(s, "PRAGMA data_version", SQL_DATA_VERSION_PG));
    int rc = fn_sql_step(st);
    int code = 0;
    if (rc == FN_SQL_ROW)
        *v = fn_sql_column_int64(st, 0);
    else
        code = fn_store_fail(s, rc, "reading the database's data version");
    fn_sql_reset(st);
    return code;
}

static const char SQL_READ_BEGIN[] = "BEGIN";
/* One snapshot for the whole read, as SQLite's read transaction is: PostgreSQL's default (READ
 * COMMITTED) takes a new one per statement, and a job read as still queued whose error then
 * committed before the errors' statement had that error dropped (a queued job's errors are the
 * ones a resumed job inherits). A read-only REPEATABLE READ transaction never fails to serialize.
 */
static const char SQL_READ_BEGIN_PG[] = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
static const char SQL_READ_END[] = "COMMIT";
static const char SQL_MAX_SEQ[] = "SELECT coalesce(max(seq), 0) FROM job_changes";
static const char SQL_MAX_ID[] = "SELECT coalesce(max(id), 0) FROM jobs";
static const char SQL_MAX_ERR[] = "SELECT coalesce(max(id), 0) FROM job_errors";

static int one_int(fn_store *s, const char *sql, int64_t *v)
{
    STMT(s, sql);
    int rc = fn_sql_step(st);
    int code = 0;
    if (rc == FN_SQL_ROW)
        *v = fn_sql_column_int64(st, 0);
    else
        code = fn_store_fail(s, rc, "reading where the change feed stands");
    fn_sql_reset(st);
    return code;
}

/* A read transaction, so the rows and the error rows of one pass are one snapshot. */
static int read_begin(fn_store *s)
{
    STMT(s, FN_SQL_PICK(s, SQL_READ_BEGIN, SQL_READ_BEGIN_PG));
    return run(s, st, "starting a read of the change feed");
}

static void read_end(fn_store *s)
{
    fn_sql_stmt *st = fn_store_stmt(s, SQL_READ_END);
    if (st) run(s, st, "ending a read of the change feed");
}

int fn_js_feed_cursor(fn_store *s, fn_js_cursor *c)
{
    memset(c, 0, sizeof *c);
    int code = read_begin(s);
    if (code) return code;
    code = one_int(s, SQL_MAX_SEQ, &c->seq);
    if (!code) code = one_int(s, SQL_MAX_ID, &c->id);
    if (!code) code = one_int(s, SQL_MAX_ERR, &c->err);
    read_end(s);
    return code;
}

/* The progress of this process's own jobs is not read (its events come from memory), nor that of
 * queued jobs (no progress event is sent for them). */
#define FEED_COLS                                                                                  \
    "SELECT id, state, coalesce(owner, 0), CASE WHEN owner=?4 OR state=0 THEN NULL ELSE progress"  \
    " END FROM jobs"
/* Each job changed in (?1, ?2] once, whatever the number of its changes. */
static const char SQL_FEED_CHANGED[] =
    FEED_COLS " WHERE id IN (SELECT job FROM job_changes WHERE seq > ?1 AND seq <= ?2)";
/* New rows (some may have been read above too: fn_js_feed_read drops the repeats). */
static const char SQL_FEED_NEW[] = FEED_COLS " WHERE id > ?3 ORDER BY id LIMIT ?5";
/* PostgreSQL: the jobs its notifications named (?6, an array literal such as {4,7}). */
static const char SQL_FEED_IDS_PG[] = FEED_COLS " WHERE id = ANY(CAST(?6 AS BIGINT[]))";
/* The jobs of the errors in (?1, ?2]: an error is told with its job's state (fn_evq_feed), and
 * the job may not be among the read's changed ones (its change was notified after this read's
 * ids were drained, or was read by an earlier one). */
static const char SQL_FEED_ERR_JOBS[] =
    FEED_COLS " WHERE id IN (SELECT job FROM job_errors WHERE id > ?1 AND id <= ?2)";
#define FEED_ERR "SELECT id, job, item, code, message, resolution FROM job_errors WHERE id > ?1"
static const char SQL_FEED_ERR[] = FEED_ERR " ORDER BY id LIMIT ?2";
/* PostgreSQL: the new errors and the ones missed below the cursor (?3, an array literal). */
static const char SQL_FEED_ERR_PG[] =
    FEED_ERR " OR id = ANY(CAST(?3 AS BIGINT[])) ORDER BY id LIMIT ?2";

/* Appends the rows of `st` (bound already) to f->jobs; *last_id gets the highest id. */
static int feed_rows(fn_store *s, fn_sql_stmt *st, fn_js_feed *f, int64_t *last_id, int *got)
{
    int rc, code = 0;
    *got = 0;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        if (f->n_jobs == f->cap_jobs) {
            size_t nc = f->cap_jobs ? f->cap_jobs * 2 : 64;
            fn_js_change *nv = realloc(f->jobs, nc * sizeof *nv);
            if (!nv) {
                code = FN_ERR_NOMEM;
                break;
            }
            f->jobs = nv;
            f->cap_jobs = nc;
        }
        fn_js_change *j = &f->jobs[f->n_jobs++];
        j->id = fn_sql_column_int64(st, 0);
        j->state = fn_sql_column_int(st, 1);
        j->owner = fn_sql_column_int64(st, 2);
        j->progress = dup_col(st, 3);
        if (j->id > *last_id) *last_id = j->id;
        (*got)++;
    }
    if (!code && rc != FN_SQL_DONE) code = fn_store_fail(s, rc, "reading changed jobs");
    fn_sql_reset(st);
    return code;
}

static void feed_bind(fn_sql_stmt *st, int64_t from, int64_t upto, int64_t after_id, int64_t self,
                      int cap)
{
    fn_sql_bind_int64(st, 1, from);
    fn_sql_bind_int64(st, 2, upto);
    fn_sql_bind_int64(st, 3, after_id);
    fn_sql_bind_int64(st, 4, self);
    fn_sql_bind_int(st, 5, cap);
}

static int by_id(const void *a, const void *b)
{
    const fn_js_change *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The ids as a PostgreSQL array literal ({1,2,3}); malloc'ed, NULL when out of memory. */
static char *id_array(const int64_t *ids, size_t n)
{
    char *t = malloc(n * 21 + 3);
    if (!t) return NULL;
    size_t k = 0;
    t[k++] = '{';
    for (size_t i = 0; i < n; i++)
        k += (size_t)sprintf(t + k, i ? ",%lld" : "%lld", (long long)ids[i]);
    t[k++] = '}';
    t[k] = '\0';
    return t;
}

/* PostgreSQL: appends the rows of jobs `ids` to f->jobs. */
static int feed_ids(fn_store *s, const fn_js_cursor *c, int64_t self, int cap, const int64_t *ids,
                    size_t n_ids, fn_js_feed *f)
{
    int code, got;
    int64_t ignored = 0;
    char *arr = id_array(ids, n_ids);
    fn_sql_stmt *st = arr ? fn_store_stmt(s, SQL_FEED_IDS_PG) : NULL;
    if (!st) {
        code = arr ? FN_ERR_DB : FN_ERR_NOMEM;
    } else {
        feed_bind(st, c->seq, c->seq, c->id, self, cap);
        fn_sql_bind_text(st, 6, arr, -1, FN_SQL_TRANSIENT);
        code = feed_rows(s, st, f, &ignored, &got);
    }
    free(arr);
    return code;
}

/* Drops the gaps older than FN_JS_GAP_MS, and gap `id` when it was found. Returns 1 when `id` was
 * one of the cursor's gaps. */
static int gap_take(fn_js_cursor *c, int64_t id, uint64_t now)
{
    int found = 0, k = 0;
    for (int i = 0; i < c->n_gaps; i++) {
        if (c->gap[i] == id) {
            found = 1;
            continue;
        }
        if (now - c->gap_ns[i] > (uint64_t)FN_JS_GAP_MS * 1000000u) continue;
        c->gap[k] = c->gap[i];
        c->gap_ns[k++] = c->gap_ns[i];
    }
    c->n_gaps = k;
    return found;
}

/* Records the ids in (from, to) as missed; the oldest go first when there are too many. */
static void gap_add(fn_js_cursor *c, int64_t from, int64_t to, uint64_t now)
{
    if (to - from - 1 > FN_JS_GAPS) from = to - 1 - FN_JS_GAPS;
    for (int64_t id = from + 1; id < to; id++) {
        if (c->n_gaps == FN_JS_GAPS) {
            memmove(c->gap, c->gap + 1, (FN_JS_GAPS - 1) * sizeof *c->gap);
            memmove(c->gap_ns, c->gap_ns + 1, (FN_JS_GAPS - 1) * sizeof *c->gap_ns);
            c->n_gaps--;
        }
        c->gap[c->n_gaps] = id;
        c->gap_ns[c->n_gaps++] = now;
    }
}

/* fn_js_feed_read and fn_js_feed_read_ids: the changed jobs come from the change feed (ids NULL)
 * or are the given ids. */
static int feed_read(fn_store *s, fn_js_cursor *c, int64_t self, int cap, const int64_t *ids,
                     size_t n_ids, fn_js_feed *f)
{
    fn_js_feed_clear(f);
    int code = read_begin(s);
    if (code) return code;
    fn_js_cursor next = *c;
    int full = 0, got = 0;
    int64_t max_seq = 0, ignored = 0;
    if (ids) {
        if (n_ids) code = feed_ids(s, c, self, cap, ids, n_ids, f);
    } else {
        code = one_int(s, SQL_MAX_SEQ, &max_seq);
        /* At most `cap` changes a read; a cursor the table was pruned past just moves on. */
        next.seq = max_seq - c->seq > cap ? c->seq + cap : max_seq;
        if (next.seq < c->seq) next.seq = max_seq;
        if (next.seq < max_seq) full = 1;
    }
    if (!code && !ids && next.seq > c->seq) {
        STMT(s, SQL_FEED_CHANGED);
        feed_bind(st, c->seq, next.seq, c->id, self, cap);
        code = feed_rows(s, st, f, &ignored, &got);
    }
    if (!code) {
        STMT(s, SQL_FEED_NEW);
        feed_bind(st, c->seq, next.seq, c->id, self, cap);
        code = feed_rows(s, st, f, &next.id, &got);
        if (got >= cap) full = 1;
    }
    const int pg = fn_store_backend(s) == FN_SQL_POSTGRES;
    const uint64_t now = fn_mono_ns();
    if (!code) {
        char *gaps = NULL;
        fn_sql_stmt *st = fn_store_stmt(s, pg ? SQL_FEED_ERR_PG : SQL_FEED_ERR);
        if (!st) code = FN_ERR_DB;
        if (!code && pg) {
            gap_take(&next, 0, now);
            if (!(gaps = id_array(next.gap, (size_t)next.n_gaps))) code = FN_ERR_NOMEM;
        }
        if (code) goto err_done;
        fn_sql_bind_int64(st, 1, c->err);
        fn_sql_bind_int(st, 2, cap);
        if (pg) fn_sql_bind_text(st, 3, gaps, -1, FN_SQL_TRANSIENT);
        free(gaps);
        int rc;
        got = 0;
        while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
            if (f->n_errs == f->cap_errs) {
                size_t nc = f->cap_errs ? f->cap_errs * 2 : 16;
                fn_js_error_row *nv = realloc(f->errs, nc * sizeof *nv);
                if (!nv) {
                    code = FN_ERR_NOMEM;
                    break;
                }
                f->errs = nv;
                f->cap_errs = nc;
            }
            fn_js_error_row *r = &f->errs[f->n_errs++];
            r->id = fn_sql_column_int64(st, 0);
            if (r->id <= next.err) {
                gap_take(&next, r->id, now); /* committed after a later one was read */
            } else {
                if (pg) gap_add(&next, next.err, r->id, now);
                next.err = r->id;
            }
            r->job = fn_sql_column_int64(st, 1);
            r->item = dup_col(st, 2);
            r->code = dup_col(st, 3);
            r->message = dup_col(st, 4);
            r->resolution = fn_sql_column_int(st, 5);
            got++;
        }
        if (!code && rc != FN_SQL_DONE) code = fn_store_fail(s, rc, "reading new job errors");
        fn_sql_reset(st);
        if (got >= cap) full = 1;
    }
err_done:
    if (!code && f->n_errs > 0 && !pg) {
        STMT(s, SQL_FEED_ERR_JOBS);
        feed_bind(st, c->err, next.err, c->id, self, cap);
        code = feed_rows(s, st, f, &ignored, &got);
    } else if (!code && f->n_errs > 0) {
        int64_t *jobs = malloc(f->n_errs * sizeof *jobs);
        if (jobs) {
            for (size_t i = 0; i < f->n_errs; i++)
                jobs[i] = f->errs[i].job;
            code = feed_ids(s, c, self, cap, jobs, f->n_errs, f);
        } else {
            code = FN_ERR_NOMEM;
        }
        free(jobs);
    }
    read_end(s);
    if (code) {
        fn_js_feed_clear(f);
        return code;
    }
    /* A job both changed and new appears twice (same snapshot, same values): keep one. */
    if (f->n_jobs > 1) {
        qsort(f->jobs, f->n_jobs, sizeof *f->jobs, by_id);
        size_t k = 0;
        for (size_t i = 0; i < f->n_jobs; i++) {
            if (k > 0 && f->jobs[k - 1].id == f->jobs[i].id) {
                free(f->jobs[i].progress);
                continue;
            }
            f->jobs[k++] = f->jobs[i];
        }
        f->n_jobs = k;
    }
    *c = next;
    f->more = full;
    return 0;
}

int fn_js_feed_read(fn_store *s, fn_js_cursor *c, int64_t self, int cap, fn_js_feed *f)
{
    return feed_read(s, c, self, cap, NULL, 0, f);
}

int fn_js_feed_read_ids(fn_store *s, fn_js_cursor *c, int64_t self, int cap, const int64_t *ids,
                        size_t n_ids, fn_js_feed *f)
{
    static const int64_t none[1] = {0};
    return feed_read(s, c, self, cap, ids ? ids : none, ids ? n_ids : 0, f);
}

/* ---- notifications (PostgreSQL's LISTEN/NOTIFY) ------------------------------------------------
 */

int fn_js_listen(fn_store *s)
{
    if (fn_store_backend(s) != FN_SQL_POSTGRES) return FN_ERR_UNSUPPORTED;
    return fn_store_listen(s, FN_JS_CHANNEL);
}

int fn_js_listen_fd(fn_store *s)
{
    return fn_store_socket(s);
}

typedef struct drain_state {
    int64_t *ids;
    int cap, n, overflow;
} drain_state;

static void on_notify(void *arg, const char *channel, const char *payload, int pid)
{
    (void)pid;
    drain_state *d = arg;
    if (strcmp(channel, FN_JS_CHANNEL) != 0 || !payload) return;
    int64_t id = strtoll(payload, NULL, 10);
    if (id <= 0) return;
    for (int i = 0; i < d->n; i++)
        if (d->ids[i] == id) return;
    if (d->n < d->cap)
        d->ids[d->n++] = id;
    else
        d->overflow = 1;
}

int fn_js_listen_drain(fn_store *s, int64_t *ids, int cap, int *n, int *overflow)
{
    drain_state d = {ids, cap, 0, 0};
    int code = fn_store_drain_notifications(s, on_notify, &d);
    *n = d.n;
    *overflow = d.overflow;
    return code;
}

static const char SQL_FEED_PRUNE[] =
    "DELETE FROM job_changes WHERE seq <= (SELECT max(seq) FROM job_changes) - ?1";

int fn_js_feed_prune(fn_store *s, int64_t keep)
{
    fn_store_tx *tx;
    int code = fn_store_begin(s, &tx);
    if (code) return code;
    {
        STMT(s, SQL_FEED_PRUNE);
        fn_sql_bind_int64(st, 1, keep);
        code = run(s, st, "pruning the job change feed");
    }
    if (code) {
        fn_store_rollback(tx);
        return code;
    }
    return fn_store_commit(tx);
}

void fn_js_feed_clear(fn_js_feed *f)
{
    for (size_t i = 0; i < f->n_jobs; i++)
        free(f->jobs[i].progress);
    for (size_t i = 0; i < f->n_errs; i++) {
        free(f->errs[i].item);
        free(f->errs[i].code);
        free(f->errs[i].message);
    }
    f->n_jobs = f->n_errs = 0;
    f->more = 0;
}

void fn_js_feed_free(fn_js_feed *f)
{
    fn_js_feed_clear(f);
    free(f->jobs);
    free(f->errs);
    memset(f, 0, sizeof *f);
}
