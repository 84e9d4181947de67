/* store_pg.c: the store on a PostgreSQL server: opening a library by its postgresql:// address,
 * the statement cache keyed by SQL text pointer, write transactions, and migrations, on the libpq
 * driver of src/store/pg.
 *
 * What must stay true: the store's read-then-write logic was written for SQLite's BEGIN IMMEDIATE
 * (one writer at a time per library), so a write transaction here takes the library's advisory
 * lock first, waiting at most the busy timeout (lock_timeout) and then failing with FN_ERR_BUSY;
 * a database that holds tables but no schema_versions is another program's and is refused before
 * anything is written (FN_ERR_FOREIGN); no message carries the address's password (the store's
 * path is its display form); a connection is used by one thread at a time. */
#include "store/store_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "store/pg/pg_driver.h"
#include "store/pg/pg_schema.h"
#include "store/store_impl.h"

/* Distinct SQL texts the store prepares on one connection: about 220 literals in all, so the
 * cache never needs to evict (a statement mid-iteration must never be evicted). */
#define PG_CACHE 512

/* The advisory lock every write transaction of a library takes (advisory locks are per database).
 * "FnNm", as the SQLite application_id; migrations use their own key (pg_schema.c). */
#define WRITE_LOCK_SQL "SELECT pg_advisory_xact_lock(1181634157)"

struct pg_cached {
    const char *key; /* the SQL text pointer */
    fn_sql_stmt stmt;
};

struct fn_pgs {
    fn_pg_conn *conn;
    struct pg_cached cache[PG_CACHE];
    int n_cache;
    int rows_only; /* bulk reads step a statement instead of COPY (fn_store_set_bulk_copy) */
};

static fn_pg_conn *conn_of(fn_store *s)
{
    return ((struct fn_pgs *)s->pg)->conn;
}

/* A database with tables of its own and no schema_versions belongs to another program. */
static int check_identity(fn_store *s)
{
    fn_sql_stmt *st = NULL;
    int code = fn_sql_prepare(s,
                              "SELECT count(*), count(*) FILTER (WHERE table_name = "
                              "'schema_versions') FROM information_schema.tables WHERE "
                              "table_schema = current_schema()",
                              &st);
    if (code) return code;
    int rc = fn_sql_step(st);
    int64_t tables = rc == FN_SQL_ROW ? fn_sql_column_int64(st, 0) : 0;
    int64_t ours = rc == FN_SQL_ROW ? fn_sql_column_int64(st, 1) : 0;
    fn_sql_finalize(st);
    if (rc != FN_SQL_ROW)
        return fn_store_fail(s, rc, "checking that the database belongs to facenames");
    if (tables == 0 || ours) return FN_OK;
    char detail[200];
    snprintf(detail, sizeof detail,
             "its schema holds %lld tables of its own and no facenames schema_versions",
             (long long)tables);
    return fn_store_msg(s, FN_ERR_FOREIGN, "opening the database", detail, 0);
}

int fn_pgs_open(fn_store *s, const char *url)
{
    struct fn_pgs *p = calloc(1, sizeof *p);
    if (!p) return fn_store_msg(s, FN_ERR_NOMEM, "opening the database", NULL, 0);
    s->pg = p;
    int code = fn_pg_connect(url, &p->conn);
    if (!p->conn) return fn_store_msg(s, FN_ERR_NOMEM, "opening the database", NULL, 0);
    if (code) return fn_store_fail(s, code, "connecting to the database server");
    /* Waiting for the write lock (or any row lock) is bounded like SQLite's busy timeout. */
    char sql[96];
    snprintf(sql, sizeof sql, "SET lock_timeout = %d", s->busy_ms > 0 ? s->busy_ms : 1);
    code = fn_pg_exec(p->conn, sql);
    if (!code && s->readonly) code = fn_pg_exec(p->conn, "SET default_transaction_read_only = on");
    if (code) return fn_store_fail(s, code, "opening the database");
    return check_identity(s);
}

void fn_pgs_close(fn_store *s)
{
    struct fn_pgs *p = s->pg;
    if (!p) return;
    for (int i = 0; i < p->n_cache; i++)
        fn_pg_finalize(p->cache[i].stmt.pg);
    fn_pg_close(p->conn);
    free(p);
    s->pg = NULL;
}

const char *fn_pgs_errmsg(fn_store *s)
{
    return s->pg && conn_of(s) ? fn_pg_errmsg(conn_of(s)) : "not connected";
}

fn_sql_stmt *fn_pgs_stmt(fn_store *s, const char *sql)
{
    struct fn_pgs *p = s->pg;
    for (int i = 0; i < p->n_cache; i++)
        if (p->cache[i].key == sql) {
            fn_pg_reset(p->cache[i].stmt.pg);
            fn_pg_clear_bindings(p->cache[i].stmt.pg);
            return &p->cache[i].stmt;
        }
    if (p->n_cache == PG_CACHE) {
        fn_store_msg(s, FN_ERR_STATE, "preparing a statement",
                     "more distinct statements than the cache holds", 0);
        return NULL;
    }
    fn_pg_stmt *st = NULL;
    int code = fn_pg_prepare(p->conn, sql, &st);
    if (code) {
        fn_store_fail(s, code, "preparing a statement");
        return NULL;
    }
    struct pg_cached *c = &p->cache[p->n_cache++];
    c->key = sql;
    c->stmt = (fn_sql_stmt){.store = s, .pg = st, .cached = 1};
    return &c->stmt;
}

int fn_pgs_prepare(fn_store *s, const char *sql, fn_sql_stmt *st)
{
    fn_pg_stmt *pst = NULL;
    int code = fn_pg_prepare(conn_of(s), sql, &pst);
    if (code) return fn_store_fail(s, code, "preparing a statement");
    st->pg = pst;
    return FN_OK;
}

int fn_pgs_exec(fn_store *s, const char *sql)
{
    return fn_pg_exec(conn_of(s), sql);
}

int64_t fn_pgs_changes(fn_store *s)
{
    return fn_pg_changes(conn_of(s));
}

int fn_pgs_begin(fn_store *s, int library_lock)
{
    int code = fn_pg_exec(conn_of(s), "BEGIN");
    if (!code && library_lock) code = fn_pg_exec(conn_of(s), WRITE_LOCK_SQL);
    if (code) {
        int keep = fn_store_fail(s, code, "beginning a write transaction");
        fn_pg_exec(conn_of(s), "ROLLBACK");
        return keep;
    }
    return FN_OK;
}

int fn_pgs_listen(fn_store *s, const char *channel)
{
    int code = fn_pg_listen(conn_of(s), channel);
    return code ? fn_store_fail(s, code, "listening for job changes") : FN_OK;
}

int fn_pgs_socket(fn_store *s)
{
    return fn_pg_socket(conn_of(s));
}

int fn_pgs_drain(fn_store *s, void (*cb)(void *, const char *, const char *, int), void *arg)
{
    int code = fn_pg_drain_notifications(conn_of(s), cb, arg);
    return code < 0 ? fn_store_fail(s, code, "reading job change notifications") : code;
}

int fn_pgs_bulk_copy(fn_store *s)
{
    return !((struct fn_pgs *)s->pg)->rows_only;
}

void fn_pgs_set_bulk_copy(fn_store *s, int on)
{
    ((struct fn_pgs *)s->pg)->rows_only = !on;
}

int fn_pgs_copy_rows(fn_store *s, const char *sql, const int64_t *params, int nparams, int ncols,
                     fn_pg_copy_row_fn row, void *arg)
{
    return fn_pg_copy_rows(conn_of(s), sql, params, nparams, ncols, row, arg);
}

/* The PostgreSQL twin of a component's SQLite migrations (same versions: test_pg_schema). */
static int pg_migrations(const char *component, const fn_migration **m, size_t *n)
{
    if (strcmp(component, "jobs") == 0) {
        *m = fn_pg_jobs_migrations;
        *n = fn_pg_jobs_migrations_count;
    } else if (strcmp(component, "library") == 0) {
        *m = fn_pg_library_migrations;
        *n = fn_pg_library_migrations_count;
    } else {
        return FN_ERR_INVALID;
    }
    return FN_OK;
}

int fn_pgs_migrate(fn_store *s, const char *component, const fn_migration *lite, size_t n_lite)
{
    const fn_migration *m;
    size_t n;
    char detail[160];
    if (pg_migrations(component, &m, &n) ||
        (n_lite && (!n || m[n - 1].version != lite[n_lite - 1].version))) {
        snprintf(detail, sizeof detail,
                 "component %s has no PostgreSQL schema of the same version in this build",
                 component);
        return fn_store_msg(s, FN_ERR_STATE, "applying schema migrations", detail, 0);
    }
    int code = fn_pg_migrate(conn_of(s), component, m, n);
    return code ? fn_store_fail(s, code, "applying schema migrations") : FN_OK;
}

int fn_pgs_check_version(fn_store *s, const char *component, int newest)
{
    fn_sql_stmt *st = NULL;
    int code = fn_sql_prepare(s, "SELECT to_regclass('schema_versions') IS NOT NULL", &st);
    if (code) return code;
    int rc = fn_sql_step(st);
    int exists = rc == FN_SQL_ROW && fn_sql_column_int(st, 0);
    fn_sql_finalize(st);
    if (rc != FN_SQL_ROW) return fn_store_fail(s, rc, "reading the schema version");
    if (!exists) return FN_OK; /* nothing there yet: whatever writes it first sets it up */
    if ((code = fn_sql_prepare(s, "SELECT version FROM schema_versions WHERE component=?1", &st)))
        return code;
    fn_sql_bind_text(st, 1, component, -1, FN_SQL_STATIC);
    rc = fn_sql_step(st);
    int have = rc == FN_SQL_ROW ? fn_sql_column_int(st, 0) : 0;
    fn_sql_finalize(st);
    if (rc != FN_SQL_ROW && rc != FN_SQL_DONE)
        return fn_store_fail(s, rc, "reading the schema version");
    if (have <= newest) return FN_OK;
    char detail[200];
    snprintf(detail, sizeof detail,
             "component %s is at schema version %d but this facenames knows only up to %d",
             component, have, newest);
    return fn_store_msg(s, FN_ERR_VERSION, "checking the schema version", detail, 0);
}
