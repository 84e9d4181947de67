/* pg_schema.h: the PostgreSQL DDL of the store's schema migrations, and a migrate on the driver.
 *
 * Each array is parallel to its SQLite one (same versions, same tables, columns, constraints and
 * indexes; docs/postgresql.md lists the type mapping and every semantic difference), so the store
 * can pick the array by backend and run the same fn_store_migrate. A new SQLite migration needs
 * its PostgreSQL twin here (tests/pg/test_pg_schema.c checks that the versions match).
 *
 * Threading: constant data; fn_pg_migrate uses the connection as pg_driver.h says. */
#ifndef FN_STORE_PG_SCHEMA_H
#define FN_STORE_PG_SCHEMA_H

#include <stddef.h>

#include "store/pg/pg_driver.h"
#include "store/store_sql.h" /* struct fn_migration */

/* Component "jobs" (src/store/jobs_store.c: jobs, job_errors, job_log, job_audit, job_owners,
 * job_items, job_error_decisions, job_changes). */
extern const fn_migration fn_pg_jobs_migrations[];
extern const size_t fn_pg_jobs_migrations_count;

/* Component "library" (src/store/library/library_schema.c: photos, faces, persons, clusters,
 * audit and people tables). */
extern const fn_migration fn_pg_library_migrations[];
extern const size_t fn_pg_library_migrations_count;

/* Brings `component` up to the last migration in `m`, each migration with its version bump in one
 * transaction, as fn_store_migrate does on SQLite: a component already there is left alone, one
 * newer than `m` knows is refused with FN_ERR_VERSION (both versions in the message), and
 * concurrent migrators serialise on a transaction-scoped advisory lock. FN_OK or an fn_err
 * (message on the connection). Until the store dispatches fn_store_migrate to PostgreSQL, this is
 * what the tests use; its SQL is what that dispatch needs. */
int fn_pg_migrate(fn_pg_conn *c, const char *component, const fn_migration *m, size_t n);

#endif
