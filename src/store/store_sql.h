/* store_sql.h: the SQL half of the store, for files in src/store only.
 *
 * store.h is what the engine and the tasks see, and it names no SQL at all (docs/design.md
 * decisions 9 and 15); what speaks SQL (prepared statements through sql.h, error messages from
 * a failed statement, migrations) is declared here and in sql.h, and names no SQLite type either:
 * the SQLite driver is store_sqlite.c. tests/build/test_layering.c checks that no file outside
 * src/store includes this header, and that no file in src/ but the driver includes SQLite's header.
 * White-box tests and benchmarks that write their own rows in a job's transaction may include it
 * too.
 *
 * Threading: as store.h (a connection is used by one thread at a time). */
#ifndef FN_STORE_STORE_SQL_H
#define FN_STORE_STORE_SQL_H

#include <stddef.h>

#include "store/sql.h"
#include "store/store.h"

/* Records the message for a failed statement, prefixed by `what`, with the backend's own message
 * as the detail; returns the fn_err. `rc` is what the failing fn_sql_step, fn_sql_exec or
 * fn_sql_prepare returned (an fn_err); any other value (FN_SQL_ROW where none was expected)
 * counts as FN_ERR_DB. (fn_store_stmt, the cached statements, is in sql.h.) */
int fn_store_fail(fn_store *s, int rc, const char *what);

/* One migration: SQL run in the migration's transaction. */
typedef struct fn_migration {
    int version; /* 1, 2, 3 ... in order */
    const char *sql;
} fn_migration;

/* Brings `component` up to the last migration in `m` (each in its own transaction). */
int fn_store_migrate(fn_store *s, const char *component, const fn_migration *m, size_t n);

/* Checks, writing nothing, that `component` is not newer than the last migration in `m`
 * (FN_ERR_VERSION, naming both versions, when it is); a database without schema_versions yet
 * passes. For read-only connections and for refusing up front. */
int fn_store_check_version(fn_store *s, const char *component, const fn_migration *m, size_t n);

/* Notifications (added for the job engine on PostgreSQL, issue 14): LISTEN on `channel` on this
 * connection (FN_ERR_UNSUPPORTED on SQLite, which has no such thing: poll instead); the socket to
 * wait on for POLLIN (-1 on SQLite or when the connection is down); and the notifications that
 * have arrived, delivered to `cb` without blocking (returns how many, or an fn_err: FN_ERR_IO when
 * the connection was lost). A connection that listens should do nothing else, so notifications
 * are never left unread behind other statements' results. */
typedef void (*fn_store_notify_cb)(void *arg, const char *channel, const char *payload, int pid);
int fn_store_listen(fn_store *s, const char *channel);
int fn_store_socket(fn_store *s);
int fn_store_drain_notifications(fn_store *s, fn_store_notify_cb cb, void *arg);

#endif
