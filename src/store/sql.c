/* sql.c: the fn_sql_* functions of sql.h, each a thin wrapper that hands the call to the
 * connection's driver: SQLite (store_sqlite.c, fn_lite_*) or PostgreSQL (a statement's st->pg is a
 * libpq driver statement, src/store/pg, fn_pg_*; connection-level calls go through store_pg.c,
 * fn_pgs_*). The choice is one branch per call, on st->pg for a statement or s->backend for a
 * connection. */
#include "store/sql.h"

#include <stdlib.h>
#include <string.h>

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

/* ---- bulk reads ------------------------------------------------------------------------------ */

/* The driver's decoded values, handed on as sql.h's (the same fields; copying a row's few values
 * costs little next to parsing its descriptor). */
typedef struct bulk_relay {
    fn_sql_row_fn row;
    void *arg;
} bulk_relay;

static int relay_row(void *ctx, const fn_pg_value *in, int ncols)
{
    const bulk_relay *r = ctx;
    fn_sql_value out[FN_PG_COPY_MAX_COLS];
    for (int c = 0; c < ncols; c++)
        out[c] = (fn_sql_value){
            .type = in[c].type, .bytes = in[c].len, .i = in[c].i, .d = in[c].d, .blob = in[c].p};
    return r->row(r->arg, out, ncols);
}

/* The statement loop: SQLite's bulk read, and PostgreSQL's when COPY is switched off. */
static int bulk_by_rows(fn_store *s, const char *sql, const int64_t *params, int nparams, int ncols,
                        fn_sql_row_fn row, void *arg)
{
    fn_sql_value vals[FN_PG_COPY_MAX_COLS];
    if (ncols < 1 || ncols > FN_PG_COPY_MAX_COLS)
        return fn_store_msg(s, FN_ERR_INVALID, "reading in bulk", "too many columns", 0);
    fn_sql_stmt *st = fn_store_stmt(s, sql);
    if (!st) return FN_ERR_DB;
    for (int k = 0; k < nparams; k++)
        fn_sql_bind_int64(st, k + 1, params[k]);
    int rc;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        for (int c = 0; c < ncols; c++) {
            fn_sql_value *v = &vals[c];
            memset(v, 0, sizeof *v);
            v->type = fn_sql_column_type(st, c);
            switch (v->type) {
            case FN_SQL_INTEGER:
                v->i = fn_sql_column_int64(st, c);
                v->d = (double)v->i;
                break;
            case FN_SQL_FLOAT:
                v->d = fn_sql_column_double(st, c);
                v->i = fn_sql_column_int64(st, c);
                break;
            case FN_SQL_BLOB:
            case FN_SQL_TEXT:
                v->blob = fn_sql_column_blob(st, c);
                v->bytes = fn_sql_column_bytes(st, c);
                if (!v->bytes) v->blob = NULL;
                break;
            default:
                break;
            }
        }
        int code = row(arg, vals, ncols);
        if (code < 0) {
            fn_sql_reset(st);
            return code;
        }
    }
    fn_sql_reset(st);
    return rc == FN_SQL_DONE ? FN_OK : rc;
}

int fn_sql_bulk_read(fn_store *s, const char *sql, const int64_t *params, int nparams, int ncols,
                     fn_sql_row_fn row, void *arg)
{
    if (s->backend == FN_SQL_POSTGRES && fn_pgs_bulk_copy(s)) {
        bulk_relay r = {row, arg};
        return fn_pgs_copy_rows(s, sql, params, nparams, ncols, relay_row, &r);
    }
    return bulk_by_rows(s, sql, params, nparams, ncols, row, arg);
}

void fn_store_set_bulk_copy(fn_store *s, int on)
{
    if (s->backend == FN_SQL_POSTGRES) fn_pgs_set_bulk_copy(s, on);
}
