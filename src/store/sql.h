/* sql.h: the store's backend-neutral SQL layer, for files in src/store only.
 *
 * A library lives in SQLite (a folder, the default) or PostgreSQL (a postgresql:// address; issue
 * 14). Everything in src/store talks to either through this one small API, shaped like SQLite's
 * own so the store's SQL code reads the same on both: prepared statements with numbered
 * parameters (`?1`, `?2`, ... in the SQL text; the PostgreSQL driver rewrites them to `$1`,
 * `$2`), step/column/reset, and a per-connection statement cache keyed by the SQL text pointer.
 *
 * SQL text is written once, in the dialect both engines accept (INSERT ... ON CONFLICT,
 * RETURNING, coalesce, CASE, standard aggregates). Where the two truly differ (DDL, JSON functions,
 * PRAGMAs, locking), the caller picks the text with FN_SQL_PICK(s, sqlite_text, pg_text); both
 * must be string literals (the cache is keyed by pointer).
 *
 * Types: integers are 64-bit on both (PostgreSQL columns are BIGINT), reals are double, text is
 * UTF-8, blobs are bytes (BYTEA). Reading a column converts as SQLite does (an integer column read
 * as text gives its digits; NULL reads as 0, 0.0, NULL text, NULL blob of 0 bytes).
 *
 * Errors: fn_sql_step returns FN_SQL_ROW or FN_SQL_DONE, or a negative fn_err (FN_ERR_BUSY for a
 * lock or serialization failure, FN_ERR_FULL, FN_ERR_CORRUPT, FN_ERR_READONLY, FN_ERR_DB ...) with
 * the backend's message kept on the connection; fn_store_fail(s, rc, what) then turns it into the
 * store's message (which library, what we were doing, what to do). The bind and column functions
 * do not fail on a valid statement (a bind that cannot be honoured, such as out of memory, makes
 * the next step fail).
 *
 * Threading: a statement belongs to its connection (fn_store) and is used by the same one thread
 * at a time. */
#ifndef FN_STORE_SQL_H
#define FN_STORE_SQL_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct fn_sql_stmt fn_sql_stmt;

typedef enum fn_sql_backend { FN_SQL_SQLITE = 1, FN_SQL_POSTGRES = 2 } fn_sql_backend;

/* fn_sql_step results (fn_errs are negative, so these never collide with one). */
enum { FN_SQL_OK = 0, FN_SQL_ROW = 100, FN_SQL_DONE = 101 };

/* Column types, as fn_sql_column_type reports them. */
enum { FN_SQL_INTEGER = 1, FN_SQL_FLOAT = 2, FN_SQL_TEXT = 3, FN_SQL_BLOB = 4, FN_SQL_NULL = 5 };

/* How a bound text or blob is held: STATIC means the caller keeps the bytes alive and unchanged
 * until the statement is reset (or re-bound); TRANSIENT means the bind copies them now. */
typedef enum fn_sql_lifetime { FN_SQL_STATIC = 0, FN_SQL_TRANSIENT = 1 } fn_sql_lifetime;

fn_sql_backend fn_store_backend(const fn_store *s);

/* The text for this connection's backend: `lite` on SQLite, `pg` on PostgreSQL. */
#define FN_SQL_PICK(s, lite, pg) (fn_store_backend(s) == FN_SQL_POSTGRES ? (pg) : (lite))

/* A cached prepared statement for `sql` (pass string literals: the cache is keyed by the
 * pointer), already reset with its bindings cleared; owned by the store (never finalize it);
 * NULL on error, with the message set. */
fn_sql_stmt *fn_store_stmt(fn_store *s, const char *sql);

/* An uncached statement for SQL built at run time; the caller finalizes it. FN_OK or an fn_err
 * (message set); *out is NULL on error. */
int fn_sql_prepare(fn_store *s, const char *sql, fn_sql_stmt **out);
void fn_sql_finalize(fn_sql_stmt *st); /* NULL is a no-op */

/* Runs `sql` (one or more statements separated by ';', no parameters, rows discarded). FN_OK or
 * an fn_err; the caller adds context with fn_store_fail. */
int fn_sql_exec(fn_store *s, const char *sql);

/* Parameters are numbered from 1. */
void fn_sql_bind_int(fn_sql_stmt *st, int i, int v);
void fn_sql_bind_int64(fn_sql_stmt *st, int i, int64_t v);
void fn_sql_bind_double(fn_sql_stmt *st, int i, double v);
/* n < 0: up to the terminating NUL. A NULL pointer binds SQL NULL. */
void fn_sql_bind_text(fn_sql_stmt *st, int i, const char *text, int n, fn_sql_lifetime life);
/* A NULL pointer binds SQL NULL; n == 0 with a non-NULL pointer binds an empty blob. */
void fn_sql_bind_blob(fn_sql_stmt *st, int i, const void *data, int n, fn_sql_lifetime life);
void fn_sql_bind_null(fn_sql_stmt *st, int i);
int fn_sql_bind_parameter_count(fn_sql_stmt *st);

/* FN_SQL_ROW (a row is ready to read), FN_SQL_DONE, or a negative fn_err. */
int fn_sql_step(fn_sql_stmt *st);
/* Back to before the first step; bindings are kept (as sqlite3_reset). */
void fn_sql_reset(fn_sql_stmt *st);
void fn_sql_clear_bindings(fn_sql_stmt *st);

/* Columns are numbered from 0, valid after a step returned FN_SQL_ROW and until the next step,
 * reset or finalize (pointers too). */
int fn_sql_column_type(fn_sql_stmt *st, int i);
int fn_sql_column_int(fn_sql_stmt *st, int i);
int64_t fn_sql_column_int64(fn_sql_stmt *st, int i);
double fn_sql_column_double(fn_sql_stmt *st, int i);
const char *fn_sql_column_text(fn_sql_stmt *st, int i); /* NULL for SQL NULL */
const void *fn_sql_column_blob(fn_sql_stmt *st, int i); /* NULL for SQL NULL or empty */
int fn_sql_column_bytes(fn_sql_stmt *st, int i);

/* Rows changed by the connection's last INSERT/UPDATE/DELETE. (Ids of new rows come back with
 * RETURNING, on both backends: there is no last-insert-rowid.) */
int64_t fn_sql_changes(fn_store *s);

/* ---- bulk reads (issue 14) ------------------------------------------------------------------
 *
 * What clustering and predict read in volume (every face's id and 128-float descriptor), read in
 * one go: on PostgreSQL as COPY (query) TO STDOUT (FORMAT binary), one round trip whose rows
 * stream through the store's own parser (pg/pg_copy.c) instead of a result held whole in memory;
 * on SQLite the statement loop, which is already the cheapest read there. The caller sees the same
 * rows, in the same order, as the same values on both. */

/* One column of a bulk-read row. type is FN_SQL_INTEGER (i, and d = i), FN_SQL_FLOAT (d, and i
 * as SQLite converts it), FN_SQL_BLOB or FN_SQL_TEXT (blob and bytes; blob is NULL when bytes is 0;
 * text is not NUL-terminated) or FN_SQL_NULL (all zero). Pointers are valid during the callback
 * only. */
typedef struct fn_sql_value {
    int type;
    int bytes;
    int64_t i;
    double d;
    const void *blob;
} fn_sql_value;

/* Called once per row with its ncols values: 0 goes on, a negative fn_err stops the read (and
 * fn_sql_bulk_read returns it). It must not use the store connection it is called from. */
typedef int (*fn_sql_row_fn)(void *arg, const fn_sql_value *row, int ncols);

/* Reads every row of `sql` (one SELECT, a string literal as for fn_store_stmt, returning ncols
 * columns of integer, real, blob or text types; its parameters ?1..?nparams are the integers
 * params[0..nparams)) and hands each to `row`. Inside a transaction it reads the transaction's
 * snapshot. FN_OK, the callback's fn_err, or another fn_err with the backend's message kept for
 * fn_store_fail (FN_ERR_CORRUPT / FN_ERR_TRUNCATED: PostgreSQL's stream did not parse). */
int fn_sql_bulk_read(fn_store *s, const char *sql, const int64_t *params, int nparams, int ncols,
                     fn_sql_row_fn row, void *arg);

/* On PostgreSQL, bulk reads use COPY (on, the default) or step a prepared statement with binary
 * results row by row (off), for tests that compare the two and benchmarks that time them. SQLite
 * has only the statement loop and ignores it. */
void fn_store_set_bulk_copy(fn_store *s, int on);

#endif
