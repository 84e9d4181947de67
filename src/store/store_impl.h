/* store_impl.h: what the backend-neutral store (store.c, sql.c) and a database driver share, for
 * files in src/store only.
 *
 * An fn_store is one connection to a library's database. store.c keeps what does not depend on the
 * database (the path, the message, the write transaction with its process-wide write lock and the
 * fault injection); the driver keeps the connection itself and its statement cache. Today the only
 * driver is SQLite's (store_sqlite.c, functions fn_lite_*); the PostgreSQL driver (src/store/pg,
 * functions fn_pg_*) fills the `pg` fields, and each fn_sql_* wrapper in sql.c has one place where
 * it picks the driver.
 *
 * Threading: as store.h (a connection and its statements are used by one thread at a time). */
#ifndef FN_STORE_STORE_IMPL_H
#define FN_STORE_STORE_IMPL_H

#include <pthread.h>
#include <stdint.h>

#include "store/sql.h"
#include "store/store.h"

struct fn_store_tx {
    fn_store *store;
    int open;
    int wlocked; /* holds the store's wlock (fn_store_begin_rows on PostgreSQL does not) */
};

struct fn_lite; /* the SQLite driver's connection (store_sqlite.c) */

struct fn_store {
    fn_sql_backend backend;
    struct fn_lite *lite; /* set when backend == FN_SQL_SQLITE */
    void *pg;             /* the PostgreSQL driver's connection, when backend == FN_SQL_POSTGRES */
    pthread_mutex_t *wlock; /* shared by the connections of one engine; may be NULL */
    int busy_ms;
    int readonly; /* opened with fn_store_open_readonly */
    char *path;
    char msg[512];
    fn_store_tx tx;
};

/* A prepared statement: exactly one of `lite` (the SQLite driver's statement handle) and `pg` is
 * set. Cached statements live in their driver's cache (owned by the connection); fn_sql_prepare's
 * are allocated and freed by fn_sql_finalize. */
struct fn_sql_stmt {
    fn_store *store;
    void *lite;
    void *pg;
    int cached; /* 1: owned by the connection's cache, never freed by fn_sql_finalize */
};

/* Records `detail` (the backend's message when `from_backend`) with the advice for `code`;
 * returns `code`. */
int fn_store_msg(fn_store *s, int code, const char *what, const char *detail, int from_backend);

/* The SQLite driver (store_sqlite.c). fn_lite_open fills s->lite and checks that the database is
 * ours (FN_OK or an fn_err, message set); the others mirror the fn_sql_* and fn_store_* functions
 * of the same name. */
int fn_lite_open(fn_store *s);
void fn_lite_close(fn_store *s);
const char *fn_lite_errmsg(fn_store *s);
int fn_lite_in_transaction(fn_store *s);
void fn_lite_set_autocheckpoint(fn_store *s, int pages);
int fn_lite_wal_checkpoint(fn_store *s, int *wal_pages);
fn_sql_stmt *fn_lite_stmt(fn_store *s, const char *sql);
int fn_lite_prepare(fn_store *s, const char *sql, fn_sql_stmt *st);
void fn_lite_finalize(fn_sql_stmt *st);
int fn_lite_exec(fn_store *s, const char *sql);
int64_t fn_lite_changes(fn_store *s);
void fn_lite_bind_int(fn_sql_stmt *st, int i, int v);
void fn_lite_bind_int64(fn_sql_stmt *st, int i, int64_t v);
void fn_lite_bind_double(fn_sql_stmt *st, int i, double v);
void fn_lite_bind_text(fn_sql_stmt *st, int i, const char *text, int n, fn_sql_lifetime life);
void fn_lite_bind_blob(fn_sql_stmt *st, int i, const void *data, int n, fn_sql_lifetime life);
void fn_lite_bind_null(fn_sql_stmt *st, int i);
int fn_lite_bind_parameter_count(fn_sql_stmt *st);
int fn_lite_step(fn_sql_stmt *st);
void fn_lite_reset(fn_sql_stmt *st);
void fn_lite_clear_bindings(fn_sql_stmt *st);
int fn_lite_column_type(fn_sql_stmt *st, int i);
int fn_lite_column_int(fn_sql_stmt *st, int i);
int64_t fn_lite_column_int64(fn_sql_stmt *st, int i);
double fn_lite_column_double(fn_sql_stmt *st, int i);
const char *fn_lite_column_text(fn_sql_stmt *st, int i);
const void *fn_lite_column_blob(fn_sql_stmt *st, int i);
int fn_lite_column_bytes(fn_sql_stmt *st, int i);

#endif
