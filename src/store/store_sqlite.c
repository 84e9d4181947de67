/* store_sqlite.c: the SQLite driver behind sql.h and store.h (functions fn_lite_*, declared in
 * store_impl.h). Everything in the store that calls SQLite's C API is here, apart from
 * sqlite_version.c.
 *
 * What must stay true: every writable connection is in WAL mode with synchronous=NORMAL and a busy
 * timeout, so a crash loses at most uncommitted work and readers never block the writer; a file
 * that is not ours (another program's SQLite database) is refused before anything is written to
 * it, not even the WAL switch; every SQLite result code that leaves this file is an fn_err (or
 * FN_SQL_ROW / FN_SQL_DONE from a step), with SQLite's message left on the connection for
 * fn_store_fail; a connection is used by one thread at a time (callers guarantee it). */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "store/store_impl.h"
#include "store/store_sql.h"

#define STMT_CACHE 48

/* PRAGMA application_id of a facenames database ("FnNm"), written when the database is created
 * (or adopted, for one made before the mark), so another program's SQLite file is recognised as
 * such and left alone (see check_identity). */
#define FN_APPLICATION_ID 0x466e4e6d

struct fn_lite {
    sqlite3 *db;
    struct {
        const char *key; /* the SQL text pointer: callers pass string literals */
        fn_sql_stmt stmt;
        uint64_t used; /* use_clock when it was last handed out */
    } cache[STMT_CACHE];
    int n_cache;
    uint64_t use_clock;
};

/* The fn_err for a SQLite result code that is not a success (so never FN_OK). */
static int lite_code(int rc)
{
    switch (rc & 0xff) {
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

static sqlite3 *db_of(fn_store *s)
{
    return s->lite->db;
}

const char *fn_lite_errmsg(fn_store *s)
{
    return s->lite && s->lite->db ? sqlite3_errmsg(s->lite->db) : NULL;
}

int fn_lite_exec(fn_store *s, const char *sql)
{
    int rc = sqlite3_exec(db_of(s), sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? FN_OK : lite_code(rc);
}

static int exec(fn_store *s, const char *sql, const char *what)
{
    int code = fn_lite_exec(s, sql);
    return code ? fn_store_fail(s, code, what) : FN_OK;
}

/* One integer from a query ("PRAGMA application_id", a count). */
static int query_int(fn_store *s, const char *sql, long long *v, const char *what)
{
    sqlite3_stmt *st = NULL;
    *v = 0;
    int rc = sqlite3_prepare_v2(db_of(s), sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *v = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    int code = rc == SQLITE_OK || rc == SQLITE_DONE ? FN_OK : fn_store_fail(s, lite_code(rc), what);
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
    return fn_store_msg(s, FN_ERR_FOREIGN, "opening the database", detail, 0);
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
    sqlite3_close(s->lite->db);
    s->lite->db = NULL;
    int rc = sqlite3_open_v2(name, &s->lite->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK)
        return s->lite->db ? fn_store_fail(s, lite_code(rc), "opening the database")
                           : fn_store_msg(s, FN_ERR_NOMEM, "opening the database", NULL, 0);
    sqlite3_extended_result_codes(s->lite->db, 0);
    sqlite3_busy_timeout(s->lite->db, s->busy_ms);
    return check_identity(s);
}

int fn_lite_open(fn_store *s)
{
    s->lite = calloc(1, sizeof *s->lite);
    if (!s->lite) return fn_store_msg(s, FN_ERR_NOMEM, "opening the database", NULL, 0);
    int code;
    if (s->readonly) {
        code = open_conn(s, s->path, SQLITE_OPEN_READONLY);
        /* A WAL database needs its -shm file; in a folder we cannot write, with no -shm left
         * behind (the last writer removed it), SQLite can only read it as immutable, which is
         * right for a library nobody can write. */
        if (code == FN_ERR_UNREADABLE || code == FN_ERR_READONLY) {
            char *uri = file_uri(s->path, "immutable=1");
            code = uri ? open_conn(s, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI)
                       : fn_store_msg(s, FN_ERR_NOMEM, "opening the database", NULL, 0);
            free(uri);
        }
    } else {
        code = open_conn(s, s->path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
        if (!code) code = exec(s, "PRAGMA journal_mode=WAL", "opening the database");
        if (!code) code = exec(s, "PRAGMA synchronous=NORMAL", "opening the database");
    }
    if (!code) code = exec(s, "PRAGMA foreign_keys=ON", "opening the database");
    return code;
}

void fn_lite_close(fn_store *s)
{
    if (!s->lite) return;
    for (int i = 0; i < s->lite->n_cache; i++)
        sqlite3_finalize(s->lite->cache[i].stmt.lite);
    sqlite3_close(s->lite->db);
    free(s->lite);
    s->lite = NULL;
}

int fn_lite_in_transaction(fn_store *s)
{
    return !sqlite3_get_autocommit(db_of(s));
}

/* Eviction takes the least recently handed-out statement that is not being stepped. A caller may
 * still hold a statement it fetched earlier (iterating rows while it fetches another one), so
 * neither the oldest slot nor an arbitrary one is safe: the most recently used ones are those
 * in use, and sqlite3_stmt_busy() tells which are mid-iteration. */
fn_sql_stmt *fn_lite_stmt(fn_store *s, const char *sql)
{
    struct fn_lite *l = s->lite;
    for (int i = 0; i < l->n_cache; i++)
        if (l->cache[i].key == sql) {
            l->cache[i].used = ++l->use_clock;
            sqlite3_reset(l->cache[i].stmt.lite);
            sqlite3_clear_bindings(l->cache[i].stmt.lite);
            return &l->cache[i].stmt;
        }
    int slot = l->n_cache;
    if (slot == STMT_CACHE) {
        slot = -1;
        for (int i = 0; i < STMT_CACHE; i++)
            if (!sqlite3_stmt_busy(l->cache[i].stmt.lite) &&
                (slot < 0 || l->cache[i].used < l->cache[slot].used))
                slot = i;
        if (slot < 0) {
            fn_store_msg(s, FN_ERR_STATE, "preparing a statement",
                         "every cached statement is in use (a statement left unreset?)", 0);
            return NULL;
        }
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v3(l->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK) {
        fn_store_fail(s, lite_code(rc), "preparing a statement");
        return NULL;
    }
    if (slot == l->n_cache)
        l->n_cache++;
    else
        sqlite3_finalize(l->cache[slot].stmt.lite);
    l->cache[slot].key = sql;
    l->cache[slot].stmt = (fn_sql_stmt){.store = s, .lite = st, .cached = 1};
    l->cache[slot].used = ++l->use_clock;
    return &l->cache[slot].stmt;
}

int fn_lite_prepare(fn_store *s, const char *sql, fn_sql_stmt *st)
{
    sqlite3_stmt *lite = NULL;
    int rc = sqlite3_prepare_v2(db_of(s), sql, -1, &lite, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(lite);
        return fn_store_fail(s, lite_code(rc), "preparing a statement");
    }
    st->lite = lite;
    return FN_OK;
}

void fn_lite_finalize(fn_sql_stmt *st)
{
    sqlite3_finalize(st->lite);
    st->lite = NULL;
}

int64_t fn_lite_changes(fn_store *s)
{
    return sqlite3_changes64(db_of(s));
}

void fn_lite_set_autocheckpoint(fn_store *s, int pages)
{
    sqlite3_wal_autocheckpoint(db_of(s), pages);
}

int fn_lite_wal_checkpoint(fn_store *s, int *wal_pages)
{
    int log = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(db_of(s), NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    if (wal_pages) *wal_pages = log;
    return rc == SQLITE_OK || rc == SQLITE_BUSY
               ? FN_OK
               : fn_store_fail(s, lite_code(rc), "checkpointing the WAL");
}

static sqlite3_destructor_type lifetime(fn_sql_lifetime life)
{
    return life == FN_SQL_TRANSIENT ? SQLITE_TRANSIENT : SQLITE_STATIC;
}

void fn_lite_bind_int(fn_sql_stmt *st, int i, int v)
{
    sqlite3_bind_int(st->lite, i, v);
}

void fn_lite_bind_int64(fn_sql_stmt *st, int i, int64_t v)
{
    sqlite3_bind_int64(st->lite, i, v);
}

void fn_lite_bind_double(fn_sql_stmt *st, int i, double v)
{
    sqlite3_bind_double(st->lite, i, v);
}

void fn_lite_bind_text(fn_sql_stmt *st, int i, const char *text, int n, fn_sql_lifetime life)
{
    sqlite3_bind_text(st->lite, i, text, n, lifetime(life));
}

void fn_lite_bind_blob(fn_sql_stmt *st, int i, const void *data, int n, fn_sql_lifetime life)
{
    sqlite3_bind_blob(st->lite, i, data, n, lifetime(life));
}

void fn_lite_bind_null(fn_sql_stmt *st, int i)
{
    sqlite3_bind_null(st->lite, i);
}

int fn_lite_bind_parameter_count(fn_sql_stmt *st)
{
    return sqlite3_bind_parameter_count(st->lite);
}

int fn_lite_step(fn_sql_stmt *st)
{
    int rc = sqlite3_step(st->lite);
    if (rc == SQLITE_ROW) return FN_SQL_ROW;
    if (rc == SQLITE_DONE) return FN_SQL_DONE;
    return lite_code(rc);
}

void fn_lite_reset(fn_sql_stmt *st)
{
    sqlite3_reset(st->lite);
}

void fn_lite_clear_bindings(fn_sql_stmt *st)
{
    sqlite3_clear_bindings(st->lite);
}

/* SQLite's type codes are sql.h's FN_SQL_INTEGER ... FN_SQL_NULL (checked below). */
_Static_assert(SQLITE_INTEGER == FN_SQL_INTEGER && SQLITE_FLOAT == FN_SQL_FLOAT &&
                   SQLITE_TEXT == FN_SQL_TEXT && SQLITE_BLOB == FN_SQL_BLOB &&
                   SQLITE_NULL == FN_SQL_NULL,
               "sql.h's column types are SQLite's");

int fn_lite_column_type(fn_sql_stmt *st, int i)
{
    return sqlite3_column_type(st->lite, i);
}

int fn_lite_column_int(fn_sql_stmt *st, int i)
{
    return sqlite3_column_int(st->lite, i);
}

int64_t fn_lite_column_int64(fn_sql_stmt *st, int i)
{
    return sqlite3_column_int64(st->lite, i);
}

double fn_lite_column_double(fn_sql_stmt *st, int i)
{
    return sqlite3_column_double(st->lite, i);
}

const char *fn_lite_column_text(fn_sql_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st->lite, i);
}

const void *fn_lite_column_blob(fn_sql_stmt *st, int i)
{
    return sqlite3_column_blob(st->lite, i);
}

int fn_lite_column_bytes(fn_sql_stmt *st, int i)
{
    return sqlite3_column_bytes(st->lite, i);
}
