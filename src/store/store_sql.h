/* store_sql.h: the SQLite-typed half of the store, for files in src/store only.
 *
 * store.h is what the engine and the tasks see, and it names no SQLite type (docs/design.md
 * decisions 9 and 15); what needs the raw connection (SQL text, prepared statements, SQLite
 * result codes, migrations) is declared here. tests/build/test_layering.c checks that no file
 * outside src/store includes this header or <sqlite3.h>. White-box tests and benchmarks that
 * write their own rows in a job's transaction may include it too.
 *
 * Threading: as store.h (a connection is used by one thread at a time). */
#ifndef FN_STORE_STORE_SQL_H
#define FN_STORE_STORE_SQL_H

#include <sqlite3.h>
#include <stddef.h>

#include "store/store.h"

/* The raw connection; owned by the store, valid until fn_store_close. */
sqlite3 *fn_store_db(fn_store *s);

/* Maps the connection's last SQLite error to fn_err and records a message prefixed by `what`. */
int fn_store_fail(fn_store *s, int sqlite_rc, const char *what);

/* A prepared statement for `sql`, cached per connection by the *pointer* `sql` (pass string
 * literals), already reset with bindings cleared; owned by the store; NULL on error (message set).
 * (Added by the engine part.) */
sqlite3_stmt *fn_store_stmt(fn_store *s, const char *sql);

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

#endif
