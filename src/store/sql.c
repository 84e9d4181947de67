/* sql.c: the fn_sql_* functions of sql.h, each a thin wrapper that hands the call to the
 * connection's driver: SQLite (store_sqlite.c, fn_lite_*) or PostgreSQL (a statement's st->pg is a
 * libpq driver statement, src/store/pg, fn_pg_*; connection-level calls go through store_pg.c,
 * fn_pgs_*). The choice is one branch per call, on st->pg for a statement or s->backend for a
 * connection. */
#include "store/sql.h"

#include <stdlib.h>

#include "facenames/error.h"
#include "store/pg/pg_driver.h"
#include "store/store_impl.h"
#include "store/store_pg.h"

fn_sql_backend fn_store_backend(const fn_store *s)
{
    return s->backend;
}

fn_sql_stmt *fn_store_stmt(fn_store *s, const char *sql)
{
    return s->backend == FN_SQL_POSTGRES ? fn_pgs_stmt(s, sql) : fn_lite_stmt(s, sql);
}

int fn_sql_prepare(fn_store *s, const char *sql, fn_sql_stmt **out)
{
    *out = NULL;
    fn_sql_stmt *st = calloc(1, sizeof *st);
    if (!st) return fn_store_msg(s, FN_ERR_NOMEM, "preparing a statement", NULL, 0);
    st->store = s;
    int code =
        s->backend == FN_SQL_POSTGRES ? fn_pgs_prepare(s, sql, st) : fn_lite_prepare(s, sql, st);
    if (code) {
        free(st);
        return code;
    }
    *out = st;
    return FN_OK;
}

void fn_sql_finalize(fn_sql_stmt *st)
{
    if (!st || st->cached) return;
    if (st->pg)
        fn_pg_finalize(st->pg);
    else
        fn_lite_finalize(st);
    free(st);
}

int fn_sql_exec(fn_store *s, const char *sql)
{
    return s->backend == FN_SQL_POSTGRES ? fn_pgs_exec(s, sql) : fn_lite_exec(s, sql);
}

int64_t fn_sql_changes(fn_store *s)
{
    return s->backend == FN_SQL_POSTGRES ? fn_pgs_changes(s) : fn_lite_changes(s);
}

void fn_sql_bind_int(fn_sql_stmt *st, int i, int v)
{
    if (st->pg)
        fn_pg_bind_int(st->pg, i, v);
    else
        fn_lite_bind_int(st, i, v);
}

void fn_sql_bind_int64(fn_sql_stmt *st, int i, int64_t v)
{
    if (st->pg)
        fn_pg_bind_int64(st->pg, i, v);
    else
        fn_lite_bind_int64(st, i, v);
}

void fn_sql_bind_double(fn_sql_stmt *st, int i, double v)
{
    if (st->pg)
        fn_pg_bind_double(st->pg, i, v);
    else
        fn_lite_bind_double(st, i, v);
}

void fn_sql_bind_text(fn_sql_stmt *st, int i, const char *text, int n, fn_sql_lifetime life)
{
    if (st->pg)
        fn_pg_bind_text(st->pg, i, text, n, (fn_pg_lifetime)life);
    else
        fn_lite_bind_text(st, i, text, n, life);
}

void fn_sql_bind_blob(fn_sql_stmt *st, int i, const void *data, int n, fn_sql_lifetime life)
{
    if (st->pg)
        fn_pg_bind_blob(st->pg, i, data, n, (fn_pg_lifetime)life);
    else
        fn_lite_bind_blob(st, i, data, n, life);
}

void fn_sql_bind_null(fn_sql_stmt *st, int i)
{
    if (st->pg)
        fn_pg_bind_null(st->pg, i);
    else
        fn_lite_bind_null(st, i);
}

int fn_sql_bind_parameter_count(fn_sql_stmt *st)
{
    return st->pg ? fn_pg_bind_parameter_count(st->pg) : fn_lite_bind_parameter_count(st);
}

int fn_sql_step(fn_sql_stmt *st)
{
    return st->pg ? fn_pg_step(st->pg) : fn_lite_step(st);
}

void fn_sql_reset(fn_sql_stmt *st)
{
    if (st->pg)
        fn_pg_reset(st->pg);
    else
        fn_lite_reset(st);
}

void fn_sql_clear_bindings(fn_sql_stmt *st)
{
    if (st->pg)
        fn_pg_clear_bindings(st->pg);
    else
        fn_lite_clear_bindings(st);
}

int fn_sql_column_type(fn_sql_stmt *st, int i)
{
    return st->pg ? fn_pg_column_type(st->pg, i) : fn_lite_column_type(st, i);
}

int fn_sql_column_int(fn_sql_stmt *st, int i)
{
    return st->pg ? fn_pg_column_int(st->pg, i) : fn_lite_column_int(st, i);
}

int64_t fn_sql_column_int64(fn_sql_stmt *st, int i)
{
    return st->pg ? fn_pg_column_int64(st->pg, i) : fn_lite_column_int64(st, i);
}

double fn_sql_column_double(fn_sql_stmt *st, int i)
{
    return st->pg ? fn_pg_column_double(st->pg, i) : fn_lite_column_double(st, i);
}

const char *fn_sql_column_text(fn_sql_stmt *st, int i)
{
    return st->pg ? fn_pg_column_text(st->pg, i) : fn_lite_column_text(st, i);
}

const void *fn_sql_column_blob(fn_sql_stmt *st, int i)
{
    return st->pg ? fn_pg_column_blob(st->pg, i) : fn_lite_column_blob(st, i);
}

int fn_sql_column_bytes(fn_sql_stmt *st, int i)
{
    return st->pg ? fn_pg_column_bytes(st->pg, i) : fn_lite_column_bytes(st, i);
}
