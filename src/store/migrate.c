/* migrate.c: per-component schema versions.
 *
 * schema_versions(component, version) records how far each component's ordered migration list has
 * been applied. Each migration runs in its own IMMEDIATE transaction together with the version
 * bump, so a crash leaves a component either before or after a migration, never half-way; two
 * processes opening the same library at once serialise on the write lock and the second finds
 * nothing left to do. A version newer than this build knows is refused (FN_ERR_VERSION). */
#include <stdio.h>

#include "facenames/error.h"
#include "store/store_impl.h"
#include "store/store_pg.h"
#include "store/store_sql.h"

static int current_version(fn_store *s, const char *component, int *v)
{
    fn_sql_stmt *st = NULL;
    *v = 0;
    int rc = fn_sql_prepare(s, "SELECT version FROM schema_versions WHERE component=?1", &st);
    if (rc != FN_OK) return fn_store_fail(s, rc, "reading the schema version");
    fn_sql_bind_text(st, 1, component, -1, FN_SQL_STATIC);
    rc = fn_sql_step(st);
    if (rc == FN_SQL_ROW) *v = fn_sql_column_int(st, 0);
    int code = (rc == FN_SQL_ROW || rc == FN_SQL_DONE)
                   ? FN_OK
                   : fn_store_fail(s, rc, "reading the schema version");
    fn_sql_finalize(st);
    return code;
}

/* The refusal of a component newer than this build knows, with both versions in the message. */
static int too_new(fn_store *s, const char *component, int have, int newest)
{
    char detail[200];
    snprintf(detail, sizeof detail,
             "component %s is at schema version %d but this facenames knows only up to %d",
             component, have, newest);
    fn_store_set_msg(s, FN_ERR_VERSION, "checking the schema version", detail);
    return FN_ERR_VERSION;
}

int fn_store_check_version(fn_store *s, const char *component, const fn_migration *m, size_t n)
{
    if (s->backend == FN_SQL_POSTGRES)
        return fn_pgs_check_version(s, component, n ? m[n - 1].version : 0);
    long long tables = 0;
    fn_sql_stmt *st = NULL;
    int rc = fn_sql_prepare(s,
                            "SELECT count(*) FROM sqlite_master WHERE type='table' AND "
                            "name='schema_versions'",
                            &st);
    if (rc == FN_OK && (rc = fn_sql_step(st)) == FN_SQL_ROW) tables = fn_sql_column_int(st, 0);
    fn_sql_finalize(st);
    if (rc != FN_SQL_ROW) return fn_store_fail(s, rc, "reading the schema version");
    if (!tables) return FN_OK; /* nothing there yet: whatever writes it first sets it up */
    int have = 0;
    int code = current_version(s, component, &have);
    if (code) return code;
    int newest = n ? m[n - 1].version : 0;
    return have > newest ? too_new(s, component, have, newest) : FN_OK;
}

int fn_store_migrate(fn_store *s, const char *component, const fn_migration *m, size_t n)
{
    if (s->backend == FN_SQL_POSTGRES) return fn_pgs_migrate(s, component, m, n);
    int rc = fn_sql_exec(s, "CREATE TABLE IF NOT EXISTS schema_versions("
                            "component TEXT PRIMARY KEY, version INTEGER NOT NULL)");
    if (rc != FN_OK) return fn_store_fail(s, rc, "creating schema_versions");
    int have = 0;
    int code = current_version(s, component, &have);
    if (code) return code;
    int newest = n ? m[n - 1].version : 0;
    if (have > newest) return too_new(s, component, have, newest);
    for (size_t i = 0; i < n; i++) {
        if (m[i].version <= have) continue;
        fn_store_tx *tx;
        if ((code = fn_store_begin(s, &tx))) return code;
        /* Re-read inside the write lock: another process may have migrated meanwhile. */
        if ((code = current_version(s, component, &have))) {
            fn_store_rollback(tx);
            return code;
        }
        if (m[i].version <= have) {
            fn_store_rollback(tx);
            continue;
        }
        rc = fn_sql_exec(s, m[i].sql);
        if (rc != FN_OK) {
            code = fn_store_fail(s, rc, "applying a schema migration");
            fn_store_rollback(tx);
            return code;
        }
        fn_sql_stmt *st = NULL;
        rc = fn_sql_prepare(s,
                            "INSERT INTO schema_versions(component, version) VALUES(?1, ?2) "
                            "ON CONFLICT(component) DO UPDATE SET version=?2",
                            &st);
        if (rc == FN_OK) {
            fn_sql_bind_text(st, 1, component, -1, FN_SQL_STATIC);
            fn_sql_bind_int(st, 2, m[i].version);
            rc = fn_sql_step(st);
            if (rc == FN_SQL_DONE) rc = FN_OK;
        }
        fn_sql_finalize(st);
        if (rc != FN_OK) {
            code = fn_store_fail(s, rc, "recording a schema version");
            fn_store_rollback(tx);
            return code;
        }
        if ((code = fn_store_commit(tx))) return code;
        have = m[i].version;
    }
    return FN_OK;
}
