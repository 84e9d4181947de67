/* store_pg.h: the store's PostgreSQL backend (store_pg.c), as store.c, sql.c and migrate.c call
 * it; for files in src/store only. Each function mirrors the SQLite driver's fn_lite_* of the same
 * role (store_impl.h); statements themselves go straight to the libpq driver (st->pg is an
 * fn_pg_stmt). Threading: as store.h. */
#ifndef FN_STORE_STORE_PG_H
#define FN_STORE_STORE_PG_H

#include <stddef.h>
#include <stdint.h>

#include "store/pg/pg_copy.h"
#include "store/sql.h"
#include "store/store_sql.h"

/* Connects s (backend FN_SQL_POSTGRES, s->path the address's display form) to `url`, bounds lock
 * waits by s->busy_ms, makes a read-only store's transactions read-only, and refuses another
 * program's database (FN_ERR_FOREIGN). FN_OK or an fn_err (message set); fn_pgs_close cleans up
 * either way. */
int fn_pgs_open(fn_store *s, const char *url);
void fn_pgs_close(fn_store *s);
const char *fn_pgs_errmsg(fn_store *s);
fn_sql_stmt *fn_pgs_stmt(fn_store *s, const char *sql);
int fn_pgs_prepare(fn_store *s, const char *sql, fn_sql_stmt *st);
int fn_pgs_exec(fn_store *s, const char *sql);
int64_t fn_pgs_changes(fn_store *s);
/* BEGIN, then (when library_lock) the library's advisory write lock (waiting at most the busy
 * timeout). */
int fn_pgs_begin(fn_store *s, int library_lock);
/* fn_store_listen, fn_store_socket and fn_store_drain_notifications (store_sql.h) on PostgreSQL. */
int fn_pgs_listen(fn_store *s, const char *channel);
int fn_pgs_socket(fn_store *s);
int fn_pgs_drain(fn_store *s, void (*cb)(void *, const char *, const char *, int), void *arg);
/* fn_store_migrate / fn_store_check_version on PostgreSQL: the component's PostgreSQL migrations
 * (pg_schema.c), which must end at the same version as the SQLite list `lite`. */
/* fn_sql_bulk_read's PostgreSQL side: whether COPY is on for this connection
 * (fn_store_set_bulk_copy), and the COPY read itself (fn_pg_copy_rows on the store's connection).
 */
int fn_pgs_bulk_copy(fn_store *s);
void fn_pgs_set_bulk_copy(fn_store *s, int on);
int fn_pgs_copy_rows(fn_store *s, const char *sql, const int64_t *params, int nparams, int ncols,
                     fn_pg_copy_row_fn row, void *arg);
int fn_pgs_migrate(fn_store *s, const char *component, const fn_migration *lite, size_t n_lite);
int fn_pgs_check_version(fn_store *s, const char *component, int newest);

#endif
