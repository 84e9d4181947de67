/* store.c: one SQLite connection to a library's database, its error mapping, its write
 * transactions and a small prepared-statement cache.
 *
 * What must stay true: every writable connection is in WAL mode with synchronous=NORMAL and a busy
 * timeout, so a crash loses at most uncommitted work and readers never block the writer; a file
 * that is not ours (another program's SQLite database) is refused before anything is written to
 * it, not even the WAL switch; every SQLite
 * failure that leaves this file is turned into an fn_err with a sentence naming the database file
 * and what to do; a connection is used by one thread at a time (callers guarantee it). */
#include "store/store_sql.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"

#define STMT_CACHE 48

/* PRAGMA application_id of a facenames database ("FnNm"), written when the database is created
 * (or adopted, for one made before the mark), so another program's SQLite file is recognised as
 * such and left alone (see check_identity). */
#define FN_APPLICATION_ID 0x466e4e6d

struct fn_store_tx {
    fn_store *store;
    int open;
};

struct fn_store {
    sqlite3 *db;
    pthread_mutex_t *wlock; /* shared by the connections of one engine; may be NULL */
    int busy_ms;
    int readonly; /* opened with fn_store_open_readonly */
    char *path;
    char msg[512];
    fn_store_tx tx;
    struct {
        const char *key; /* the SQL text pointer: callers pass string literals */
        sqlite3_stmt *stmt;
        uint64_t used; /* use_clock when it was last handed out */
    } cache[STMT_CACHE];
    int n_cache;
    uint64_t use_clock;
};

/* Fault injection (beanstalkd's falloc idea): read on every write transaction. */
static atomic_int fault_code;

void fn_store_fault_inject(int code)
{
    atomic_store(&fault_code, code);
}

static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return FN_OK;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return FN_ERR_BUSY;
    case SQLITE_FULL:
        return FN_ERR_FULL;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return FN_ERR_CORRUPT;
    case SQLITE_NOMEM:
        return FN_ERR_NOMEM;
    case SQLITE_CANTOPEN:
        return FN_ERR_UNREADABLE;
    case SQLITE_IOERR:
        return FN_ERR_IO;
    case SQLITE_READONLY:
        return FN_ERR_READONLY;
    default:
        return FN_ERR_DB;
    }
}

/* The advice that goes with each kind of failure: the user reads this, not the SQLite code. */
static const char *advice(int code)
{
    switch (code) {
    case FN_ERR_BUSY:
        return "the database is locked by another process or thread for longer than the busy "
               "timeout; close the other facenames program using this library or raise "
               "db.busy_timeout_ms, then retry";
    case FN_ERR_FULL:
        return "the disk or the database is full; free some disk space, then retry (work "
               "committed so far is kept)";
    case FN_ERR_CORRUPT:
        return "the database file is damaged or is not a facenames database; restore it from a "
               "backup or move it away to start a new library";
    case FN_ERR_UNREADABLE:
        return "the database cannot be opened; check that the library directory exists and is "
               "writable";
    case FN_ERR_IO:
        return "a read or write of the database failed; check the disk";
    case FN_ERR_READONLY:
        return "the library is read-only (its folder or database file cannot be written); "
               "commands that only read work, this one needs write access to the library";
    case FN_ERR_FOREIGN:
        return "this file is another program's database, not a facenames library, and was left "
               "untouched; choose another library folder (--library DIR)";
    case FN_ERR_VERSION:
        return "use a newer facenames with this library";
    default:
        return NULL;
    }
}

/* `detail` says what happened (SQLite's message, or ours); the advice says what to do. Only a
 * message that came from SQLite is labelled as such. */
static int set_msg_from(fn_store *s, int code, const char *what, const char *detail, int sqlite)
{
    const char *adv = advice(code);
    if (!detail) detail = fn_strerror(code);
    if (adv)
        snprintf(s->msg, sizeof s->msg, "%s: %s: %s (%s%s)", s->path, what ? what : "database", adv,
                 sqlite ? "SQLite: " : "", detail);
    else
        snprintf(s->msg, sizeof s->msg, "%s: %s: %s%s", s->path, what ? what : "database",
                 sqlite ? "SQLite says: " : "", detail);
    return code;
}

static int set_msg(fn_store *s, int code, const char *what, const char *detail)
{
    return set_msg_from(s, code, what, detail, 0);
}

int fn_store_fail(fn_store *s, int sqlite_rc, const char *what)
{
    int code = map_rc(sqlite_rc);
    if (code == FN_OK) code = FN_ERR_DB;
    return set_msg_from(s, code, what, sqlite3_errmsg(s->db), 1);
}

static int exec(fn_store *s, const char *sql, const char *what)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? FN_OK : fn_store_fail(s, rc, what);
}

/* One integer from a query ("PRAGMA application_id", a count). */
static int query_int(fn_store *s, const char *sql, long long *v, const char *what)
{
    sqlite3_stmt *st = NULL;
    *v = 0;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *v = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    int code = rc == SQLITE_OK || rc == SQLITE_DONE ? FN_OK : fn_store_fail(s, rc, what);
    sqlite3_finalize(st);
    return code;
}

/* Is this database ours? Marked with our application_id: yes. Unmarked and empty (just created):
 * yes, and it gets the mark. Unmarked but holding our schema_versions table: one made before the
 * mark existed, adopted (marked). Anything else belongs to another program: FN_ERR_FOREIGN, with
 * nothing written. These reads are also the first to touch the file, so a file that is not a
 * database at all fails here (FN_ERR_CORRUPT). A read-only connection checks but cannot mark. */
static int check_identity(fn_store *s)
{
    const char *what = "checking that the database belongs to facenames";
    long long app = 0, objects = 0, ours = 0;
    int code = query_int(s, "PRAGMA application_id", &app, what);
    if (!code) code = query_int(s, "SELECT count(*) FROM sqlite_master", &objects, what);
    if (!code)
        code = query_int(s,
                         "SELECT count(*) FROM sqlite_master WHERE type='table' AND "
                         "name='schema_versions'",
                         &ours, what);
    if (code) return code;
    if (app == FN_APPLICATION_ID) return FN_OK;
    if (app == 0 && (objects == 0 || ours)) {
        if (s->readonly) return FN_OK;
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA application_id=%d", FN_APPLICATION_ID);
        return exec(s, sql, "marking the database as a facenames library");
    }
    char detail[160];
    snprintf(detail, sizeof detail,
             "its application_id is %lld, not facenames' %d, and it holds %lld tables or indexes "
             "of its own",
             app, FN_APPLICATION_ID, objects);
    return set_msg(s, FN_ERR_FOREIGN, "opening the database", detail);
}

/* "file:" URI for `path` with `query`, escaping what a URI would misread. */
static char *file_uri(const char *path, const char *query)
{
    size_t n = strlen(path);
    char *u = malloc(n * 3 + strlen(query) + 8);
    if (!u) return NULL;
    char *o = u + sprintf(u, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("/-._~", *p))
            *o++ = (char)*p;
        else
            o += sprintf(o, "%%%02X", *p);
    }
    sprintf(o, "?%s", query);
    return u;
}

static int open_conn(fn_store *s, const char *name, int flags)
{
    sqlite3_close(s->db);
    s->db = NULL;
    int rc = sqlite3_open_v2(name, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return s->db ? fn_store_fail(s, rc, "opening the database")
                     : set_msg(s, FN_ERR_NOMEM, "opening the database", NULL);
    sqlite3_extended_result_codes(s->db, 0);
    sqlite3_busy_timeout(s->db, s->busy_ms);
    return check_identity(s);
}

static int open_store(const char *path, int busy_timeout_ms, int readonly, fn_store **out,
                      char *err, size_t errlen)
{
    *out = NULL;
    fn_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        if (err && errlen) snprintf(err, errlen, "%s: out of memory", path);
        return FN_ERR_NOMEM;
    }
    s->tx.store = s;
    s->readonly = readonly;
    s->busy_ms = busy_timeout_ms > 0 ? busy_timeout_ms : 0;
    int code;
    if (readonly) {
        code = open_conn(s, path, SQLITE_OPEN_READONLY);
        /* A WAL database needs its -shm file; in a folder we cannot write, with no -shm left
         * behind (the last writer removed it), SQLite can only read it as immutable, which is
         * right for a library nobody can write. */
        if (code == FN_ERR_UNREADABLE || code == FN_ERR_READONLY) {
            char *uri = file_uri(path, "immutable=1");
            code = uri ? open_conn(s, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI)
                       : set_msg(s, FN_ERR_NOMEM, "opening the database", NULL);
            free(uri);
        }
    } else {
        code = open_conn(s, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
        if (!code) code = exec(s, "PRAGMA journal_mode=WAL", "opening the database");
        if (!code) code = exec(s, "PRAGMA synchronous=NORMAL", "opening the database");
    }
    if (!code) code = exec(s, "PRAGMA foreign_keys=ON", "opening the database");
    if (code) {
        if (err && errlen) snprintf(err, errlen, "%s", s->msg);
        fn_store_close(s);
        return code;
    }
    *out = s;
    return FN_OK;
}

int fn_store_open(const char *path, int busy_timeout_ms, fn_store **out, char *err, size_t errlen)
{
    return open_store(path, busy_timeout_ms, 0, out, err, errlen);
}

int fn_store_open_readonly(const char *path, int busy_timeout_ms, fn_store **out, char *err,
                           size_t errlen)
{
    return open_store(path, busy_timeout_ms, 1, out, err, errlen);
}

int fn_store_readonly(const fn_store *s)
{
    return s->readonly;
}

void fn_store_close(fn_store *s)
{
    if (!s) return;
    for (int i = 0; i < s->n_cache; i++)
        sqlite3_finalize(s->cache[i].stmt);
    if (s->tx.open) fn_store_rollback(&s->tx);
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

const char *fn_store_errmsg(const fn_store *s)
{
    return s ? s->msg : "no database";
}

const char *fn_store_path(const fn_store *s)
{
    return s ? s->path : "";
}

sqlite3 *fn_store_db(fn_store *s)
{
    return s->db;
}

void fn_store_set_msg(fn_store *s, int code, const char *what, const char *detail)
{
    set_msg(s, code, what, detail);
}

/* Eviction takes the least recently handed-out statement that is not being stepped. A caller may
 * still hold a statement it fetched earlier (iterating rows while it fetches another one), so
 * neither the oldest slot nor an arbitrary one is safe: the most recently used ones are those
 * in use, and sqlite3_stmt_busy() tells which are mid-iteration. */
sqlite3_stmt *fn_store_stmt(fn_store *s, const char *sql)
{
    for (int i = 0; i < s->n_cache; i++)
        if (s->cache[i].key == sql) {
            s->cache[i].used = ++s->use_clock;
            sqlite3_reset(s->cache[i].stmt);
            sqlite3_clear_bindings(s->cache[i].stmt);
            return s->cache[i].stmt;
        }
    int slot = s->n_cache;
    if (slot == STMT_CACHE) {
        slot = -1;
        for (int i = 0; i < STMT_CACHE; i++)
            if (!sqlite3_stmt_busy(s->cache[i].stmt) &&
                (slot < 0 || s->cache[i].used < s->cache[slot].used))
                slot = i;
        if (slot < 0) {
            set_msg(s, FN_ERR_STATE, "preparing a statement",
                    "every cached statement is in use (a statement left unreset?)");
            return NULL;
        }
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK) {
        fn_store_fail(s, rc, "preparing a statement");
        return NULL;
    }
    if (slot == s->n_cache)
        s->n_cache++;
    else
        sqlite3_finalize(s->cache[slot].stmt);
    s->cache[slot].key = sql;
    s->cache[slot].stmt = st;
    s->cache[slot].used = ++s->use_clock;
    return st;
}

void fn_store_set_write_lock(fn_store *s, pthread_mutex_t *mu)
{
    s->wlock = mu;
}

void fn_store_set_autocheckpoint(fn_store *s, int pages)
{
    sqlite3_wal_autocheckpoint(s->db, pages);
}

int fn_store_wal_checkpoint(fn_store *s, int *wal_pages)
{
    int log = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    if (wal_pages) *wal_pages = log;
    return rc == SQLITE_OK || rc == SQLITE_BUSY ? FN_OK
                                                : fn_store_fail(s, rc, "checkpointing the WAL");
}

int fn_store_begin(fn_store *s, fn_store_tx **tx)
{
    *tx = NULL;
    if (s->tx.open)
        return set_msg(s, FN_ERR_STATE, "beginning a transaction",
                       "a transaction is already open on this connection");
    if (s->readonly)
        return set_msg(s, FN_ERR_READONLY, "beginning a write transaction",
                       "the database was opened read-only");
    int fault = atomic_load(&fault_code);
    if (fault == FN_ERR_BUSY)
        return set_msg(s, FN_ERR_BUSY, "beginning a write transaction",
                       "database is locked (injected fault)");
    if (s->wlock) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += s->busy_ms / 1000;
        until.tv_nsec += (long)(s->busy_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (pthread_mutex_timedlock(s->wlock, &until) != 0)
            return set_msg(s, FN_ERR_BUSY, "beginning a write transaction",
                           "another thread of this process kept the library's write lock for "
                           "longer than the busy timeout");
    }
    int code = exec(s, "BEGIN IMMEDIATE", "beginning a write transaction");
    if (code) {
        if (s->wlock) pthread_mutex_unlock(s->wlock);
        return code;
    }
    s->tx.open = 1;
    *tx = &s->tx;
    return FN_OK;
}

int fn_store_commit(fn_store_tx *tx)
{
    fn_store *s = tx->store;
    int fault = atomic_load(&fault_code);
    if (fault == FN_ERR_FULL) {
        fn_store_rollback(tx);
        return set_msg(s, FN_ERR_FULL, "committing a transaction",
                       "database or disk is full (injected fault)");
    }
    int rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int code = fn_store_fail(s, rc, "committing a transaction");
        /* A failed COMMIT may leave the transaction open (SQLITE_BUSY); never leave it so. */
        if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        s->tx.open = 0;
        if (s->wlock) pthread_mutex_unlock(s->wlock);
        return code;
    }
    s->tx.open = 0;
    if (s->wlock) pthread_mutex_unlock(s->wlock);
    return FN_OK;
}

void fn_store_rollback(fn_store_tx *tx)
{
    if (!tx) return;
    fn_store *s = tx->store;
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    if (s->tx.open && s->wlock) pthread_mutex_unlock(s->wlock);
    s->tx.open = 0;
}

fn_store *fn_store_tx_store(fn_store_tx *tx)
{
    return tx->store;
}
