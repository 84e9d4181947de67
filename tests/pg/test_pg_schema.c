/* test_pg_schema.c: the PostgreSQL migrations (src/store/pg/pg_schema.c) on a real server. They
 * apply to an empty database in order; a second run changes nothing; a database newer than the
 * list is refused; and the result is the SQLite schema's twin: the same tables, columns (with the
 * type mapping of docs/postgresql.md), NOT NULL, defaults, primary keys, indexes (partial ones
 * too), foreign keys, triggers and last versions as fn_js_migrate and fn_library_migrate make in
 * a SQLite database, read back from both catalogs (so a migration added on one side only fails
 * here). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "facenames/error.h"
#include "pg_fixture.h"
#include "store/jobs_store.h"
#include "store/library/library_store.h"
#include "store/pg/pg_schema.h"
#include "store/store_sql.h"

static void exec_ok(fn_pg_conn *c, const char *sql)
{
    int rc = fn_pg_exec(c, sql);
    if (rc) fprintf(stderr, "%s: %s\n", sql, fn_pg_errmsg(c));
    assert_int_equal(rc, FN_OK);
}

static int migrate_all(fn_pg_conn *c)
{
    int rc = fn_pg_migrate(c, "jobs", fn_pg_jobs_migrations, fn_pg_jobs_migrations_count);
    if (!rc)
        rc = fn_pg_migrate(c, "library", fn_pg_library_migrations, fn_pg_library_migrations_count);
    if (rc) fprintf(stderr, "migrate: %s\n", fn_pg_errmsg(c));
    return rc;
}

/* One text cell of the first row of `sql`, as a new string ("" for none). */
static char *pg_one(fn_pg_conn *c, const char *sql)
{
    fn_pg_stmt *st = NULL;
    int rc = fn_pg_prepare(c, sql, &st);
    if (rc) fprintf(stderr, "%s: %s\n", sql, fn_pg_errmsg(c));
    assert_int_equal(rc, FN_OK);
    rc = fn_pg_step(st);
    assert_true(rc == FN_PG_ROW || rc == FN_PG_DONE);
    const char *t = rc == FN_PG_ROW ? fn_pg_column_text(st, 0) : NULL;
    char *out = strdup(t ? t : "");
    fn_pg_finalize(st);
    return out;
}

/* Every row of `sql` (each row's columns joined by '|', rows by '\n'), as a new string. */
static char *pg_rows(fn_pg_conn *c, const char *sql)
{
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    fn_pg_stmt *st = NULL;
    int rc = fn_pg_prepare(c, sql, &st);
    if (rc) fprintf(stderr, "%s: %s\n", sql, fn_pg_errmsg(c));
    assert_int_equal(rc, FN_OK);
    while ((rc = fn_pg_step(st)) == FN_PG_ROW) {
        for (int i = 0; i < fn_pg_column_count(st); i++) {
            const char *t = fn_pg_column_text(st, i);
            fprintf(f, "%s%s", i ? "|" : "", t ? t : "");
        }
        fputc('\n', f);
    }
    assert_int_equal(rc, FN_PG_DONE);
    fn_pg_finalize(st);
    fclose(f);
    return out;
}

static char *lite_rows(sqlite3 *db, const char *sql)
{
    char *out = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&out, &n);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc) fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
    assert_int_equal(rc, SQLITE_OK);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(st); i++) {
            const unsigned char *t = sqlite3_column_text(st, i);
            fprintf(f, "%s%s", i ? "|" : "", t ? (const char *)t : "");
        }
        fputc('\n', f);
    }
    assert_int_equal(rc, SQLITE_DONE);
    sqlite3_finalize(st);
    fclose(f);
    return out;
}

static void test_migrations_apply_in_order_once(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    fn_pg_conn *c = fn_pg_fixture_connect(url);
    /* Versions 1, 2, 3 ... in order, as fn_store_migrate expects. */
    for (size_t i = 0; i < fn_pg_jobs_migrations_count; i++)
        assert_int_equal(fn_pg_jobs_migrations[i].version, (int)i + 1);
    for (size_t i = 0; i < fn_pg_library_migrations_count; i++)
        assert_int_equal(fn_pg_library_migrations[i].version, (int)i + 1);
    /* One at a time: each prefix of the list applies on top of the previous one. */
    for (size_t k = 1; k <= fn_pg_jobs_migrations_count; k++) {
        assert_int_equal(fn_pg_migrate(c, "jobs", fn_pg_jobs_migrations, k), FN_OK);
        char *v = pg_one(c, "SELECT version FROM schema_versions WHERE component='jobs'");
        assert_int_equal(atoi(v), (int)k);
        free(v);
    }
    assert_int_equal(migrate_all(c), FN_OK);
    char *before = pg_rows(c, "SELECT component, version FROM schema_versions ORDER BY 1");
    char *tables = pg_rows(c, "SELECT count(*) FROM pg_tables WHERE schemaname='public'");
    char want[64];
    snprintf(want, sizeof want, "jobs|%zu\nlibrary|%zu\n", fn_pg_jobs_migrations_count,
             fn_pg_library_migrations_count);
    assert_string_equal(before, want);
    /* Twice: nothing to do, nothing changes. */
    assert_int_equal(migrate_all(c), FN_OK);
    char *after = pg_rows(c, "SELECT component, version FROM schema_versions ORDER BY 1");
    char *tables2 = pg_rows(c, "SELECT count(*) FROM pg_tables WHERE schemaname='public'");
    assert_string_equal(before, after);
    assert_string_equal(tables, tables2);
    /* An older list (a build that knows fewer migrations) is refused, naming both versions. */
    assert_int_equal(fn_pg_migrate(c, "library", fn_pg_library_migrations, 2), FN_ERR_VERSION);
    snprintf(want, sizeof want, "schema version %zu", fn_pg_library_migrations_count);
    assert_non_null(strstr(fn_pg_errmsg(c), want));
    assert_non_null(strstr(fn_pg_errmsg(c), "only up to 2"));
    /* And the refusal left no transaction open. */
    exec_ok(c, "CREATE TABLE after_refusal(x BIGINT); DROP TABLE after_refusal");
    exec_ok(c, "UPDATE schema_versions SET version=99 WHERE component='jobs'");
    assert_int_equal(fn_pg_migrate(c, "jobs", fn_pg_jobs_migrations, fn_pg_jobs_migrations_count),
                     FN_ERR_VERSION);
    assert_non_null(strstr(fn_pg_errmsg(c), "99"));
    free(before);
    free(after);
    free(tables);
    free(tables2);
    fn_pg_close(c);
    free(url);
}

/* Two connections migrating at once: both succeed, each migration once. */
static void test_concurrent_migrators(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    fn_pg_conn *a = fn_pg_fixture_connect(url), *b = fn_pg_fixture_connect(url);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fn_pg_conn *cc = NULL;
        int rc = fn_pg_connect(url, &cc);
        if (!rc) rc = migrate_all(cc);
        _exit(rc ? 1 : 0);
    }
    int rc = migrate_all(a);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_int_equal(rc, FN_OK);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char *v = pg_rows(b, "SELECT component, version FROM schema_versions ORDER BY 1");
    char want[64];
    snprintf(want, sizeof want, "jobs|%zu\nlibrary|%zu\n", fn_pg_jobs_migrations_count,
             fn_pg_library_migrations_count);
    assert_string_equal(v, want);
    free(v);
    fn_pg_close(a);
    fn_pg_close(b);
    free(url);
}

/* The change-feed trigger fires only with two owners, as SQLite's WHEN clause; identity columns
 * number new rows. */
static void test_trigger_and_identity(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    fn_pg_conn *c = fn_pg_fixture_connect(url);
    assert_int_equal(migrate_all(c), FN_OK);
    exec_ok(c, "INSERT INTO job_owners(pid, host, started_at, heartbeat_at) VALUES(1, 'a', 0, 0);"
               "INSERT INTO jobs(type, priority, state, created_at, updated_at, queued_at)"
               " VALUES('t', 0, 0, 0, 0, 0), ('t', 0, 0, 0, 0, 0);"
               "UPDATE jobs SET state=1 WHERE id=1");
    char *n = pg_one(c, "SELECT count(*) FROM job_changes");
    assert_string_equal(n, "0");
    free(n);
    exec_ok(c, "INSERT INTO job_owners(pid, host, started_at, heartbeat_at) VALUES(2, 'b', 0, 0);"
               "UPDATE jobs SET progress='{}' WHERE id=2;"
               "UPDATE jobs SET fail_reason='x' WHERE id=1");
    n = pg_rows(c, "SELECT seq, job FROM job_changes ORDER BY seq");
    assert_string_equal(n, "1|2\n");
    free(n);
    n = pg_rows(c, "SELECT id FROM jobs ORDER BY id");
    assert_string_equal(n, "1\n2\n");
    free(n);
    fn_pg_close(c);
    free(url);
}

/* ---- the SQLite twin --------------------------------------------------------------------------
 */

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* The PostgreSQL type a SQLite declared type becomes (docs/postgresql.md). */
static const char *pg_type_of(const char *lite)
{
    if (!strcmp(lite, "INTEGER")) return "bigint";
    if (!strcmp(lite, "TEXT")) return "text";
    if (!strcmp(lite, "REAL")) return "double precision";
    if (!strcmp(lite, "BLOB")) return "bytea";
    return lite;
}

static void test_same_schema_as_sqlite(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    char dir[] = "/tmp/fn-pg-schema-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[512];
    snprintf(path, sizeof path, "%s/library.db", dir);
    fn_store *s = NULL;
    char err[256];
    assert_int_equal(fn_store_open(path, 2000, &s, err, sizeof err), FN_OK);
    assert_int_equal(fn_js_migrate(s), FN_OK);
    assert_int_equal(fn_library_migrate(s), FN_OK);
    /* the SQLite side is read through its file (the store no longer hands out its connection) */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    fn_pg_conn *c = fn_pg_fixture_connect(url);
    assert_int_equal(migrate_all(c), FN_OK);

    /* Last versions. */
    char *lv = lite_rows(db, "SELECT component, version FROM schema_versions ORDER BY 1");
    char *pv = pg_rows(c, "SELECT component, version FROM schema_versions ORDER BY 1");
    assert_string_equal(lv, pv);
    free(lv);
    free(pv);

    /* Tables. */
    char *lt = lite_rows(db, "SELECT name FROM sqlite_master WHERE type='table' AND name NOT "
                             "LIKE 'sqlite_%' ORDER BY name COLLATE BINARY");
    char *pt = pg_rows(c, "SELECT tablename FROM pg_tables WHERE schemaname='public' ORDER BY "
                          "tablename COLLATE \"C\"");
    assert_string_equal(lt, pt);

    /* Per table: columns, primary key, indexes, foreign keys. */
    int ntables = 0;
    for (char *t = strtok(lt, "\n"); t; t = strtok(NULL, "\n")) {
        ntables++;
        char sql[1024];
        /* Columns in order: name, type, not null (a primary key column is NOT NULL on
         * PostgreSQL; SQLite's rowid alias reports 0), has a default (an identity counts as one:
         * SQLite numbers an omitted INTEGER PRIMARY KEY too), primary key position. */
        snprintf(sql, sizeof sql,
                 "SELECT name, type, CASE WHEN pk > 0 THEN 1 ELSE \"notnull\" END,"
                 " dflt_value IS NOT NULL OR (pk = 1 AND type = 'INTEGER' AND"
                 " (SELECT count(*) FROM pragma_table_info('%s') WHERE pk > 0) = 1 AND"
                 " (SELECT sql FROM sqlite_master WHERE name='%s') NOT LIKE '%%WITHOUT ROWID%%'),"
                 " pk FROM pragma_table_info('%s') ORDER BY cid",
                 t, t, t);
        char *lc = lite_rows(db, sql);
        /* Map SQLite's declared types to PostgreSQL's names, line by line. */
        char *mapped = NULL;
        size_t mn = 0;
        FILE *mf = open_memstream(&mapped, &mn);
        char *save = NULL;
        for (char *line = strtok_r(lc, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            char name[128], type[64];
            int nn, df, pk;
            assert_int_equal(sscanf(line, "%127[^|]|%63[^|]|%d|%d|%d", name, type, &nn, &df, &pk),
                             5);
            fprintf(mf, "%s|%s|%d|%d|%d\n", name, pg_type_of(type), nn, df, pk);
        }
        fclose(mf);
        snprintf(sql, sizeof sql,
                 "SELECT c.column_name, c.data_type, CASE WHEN c.is_nullable='NO' THEN 1 ELSE 0 "
                 "END, CASE WHEN c.column_default IS NOT NULL OR c.is_identity='YES' THEN 1 ELSE "
                 "0 END, coalesce((SELECT k.ordinal_position FROM "
                 "information_schema.key_column_usage k JOIN information_schema.table_constraints "
                 "tc ON tc.constraint_name=k.constraint_name AND tc.table_name=k.table_name WHERE "
                 "tc.constraint_type='PRIMARY KEY' AND k.table_name=c.table_name AND "
                 "k.column_name=c.column_name), 0) FROM information_schema.columns c WHERE "
                 "c.table_schema='public' AND c.table_name='%s' ORDER BY c.ordinal_position",
                 t);
        char *pc = pg_rows(c, sql);
        if (strcmp(mapped, pc))
            fprintf(stderr, "table %s\nSQLite:\n%sPostgreSQL:\n%s", t, mapped, pc);
        assert_string_equal(mapped, pc);
        free(mapped);
        free(lc);
        free(pc);

        /* Indexes other than the primary key's and UNIQUE's: name, columns, partial. */
        snprintf(sql, sizeof sql,
                 "SELECT l.name, (SELECT group_concat(name, ',') FROM (SELECT name FROM "
                 "pragma_index_info(l.name) ORDER BY seqno)), l.partial, l.\"unique\" FROM "
                 "pragma_index_list('%s') l WHERE l.origin='c' ORDER BY l.name COLLATE BINARY",
                 t);
        char *li = lite_rows(db, sql);
        snprintf(sql, sizeof sql,
                 "SELECT i.relname, (SELECT string_agg(a.attname, ',' ORDER BY k.n) FROM "
                 "unnest(x.indkey) WITH ORDINALITY k(attnum, n) JOIN pg_attribute a ON "
                 "a.attrelid=x.indrelid AND a.attnum=k.attnum), CASE WHEN x.indpred IS NULL THEN "
                 "0 ELSE 1 END, CASE WHEN x.indisunique THEN 1 ELSE 0 END FROM pg_index x JOIN "
                 "pg_class i ON i.oid=x.indexrelid WHERE x.indrelid='%s'::regclass AND NOT "
                 "x.indisprimary AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE "
                 "k.conindid=x.indexrelid) ORDER BY i.relname COLLATE \"C\"",
                 t);
        char *pi = pg_rows(c, sql);
        if (strcmp(li, pi)) fprintf(stderr, "indexes of %s\nSQLite:\n%sPostgreSQL:\n%s", t, li, pi);
        assert_string_equal(li, pi);
        free(li);
        free(pi);

        /* UNIQUE constraints (SQLite's autoindexes of origin 'u'). */
        snprintf(sql, sizeof sql,
                 "SELECT (SELECT group_concat(name, ',') FROM pragma_index_info(l.name)) FROM "
                 "pragma_index_list('%s') l WHERE l.origin='u' ORDER BY 1",
                 t);
        char *lu = lite_rows(db, sql);
        snprintf(sql, sizeof sql,
                 "SELECT (SELECT string_agg(a.attname, ',') FROM pg_attribute a WHERE "
                 "a.attrelid=k.conrelid AND a.attnum = ANY(k.conkey)) FROM pg_constraint k WHERE "
                 "k.conrelid='%s'::regclass AND k.contype='u' ORDER BY 1",
                 t);
        char *pu = pg_rows(c, sql);
        assert_string_equal(lu, pu);
        free(lu);
        free(pu);

        /* Foreign keys: column, referenced table and column, on delete. */
        snprintf(sql, sizeof sql,
                 "SELECT \"from\", \"table\", \"to\", on_delete FROM pragma_foreign_key_list('%s') "
                 "ORDER BY 1",
                 t);
        char *lf = lite_rows(db, sql);
        snprintf(sql, sizeof sql,
                 "SELECT a.attname, r.relname, ra.attname, CASE k.confdeltype WHEN 'c' THEN "
                 "'CASCADE' WHEN 'n' THEN 'SET NULL' WHEN 'r' THEN 'RESTRICT' WHEN 'd' THEN 'SET "
                 "DEFAULT' ELSE 'NO ACTION' END FROM pg_constraint k JOIN pg_attribute a ON "
                 "a.attrelid=k.conrelid AND a.attnum=k.conkey[1] JOIN pg_class r ON "
                 "r.oid=k.confrelid JOIN pg_attribute ra ON ra.attrelid=k.confrelid AND "
                 "ra.attnum=k.confkey[1] WHERE k.conrelid='%s'::regclass AND k.contype='f' "
                 "ORDER BY 1",
                 t);
        char *pf = pg_rows(c, sql);
        assert_string_equal(lf, pf);
        free(lf);
        free(pf);

        /* CHECK constraints: as many. */
        snprintf(sql, sizeof sql,
                 "SELECT (length(sql) - length(replace(sql, 'CHECK (', ''))) / 7 FROM "
                 "sqlite_master WHERE name='%s'",
                 t);
        char *lk = lite_rows(db, sql);
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM pg_constraint WHERE conrelid='%s'::regclass AND "
                 "contype='c'",
                 t);
        char *pk = pg_rows(c, sql);
        assert_string_equal(lk, pk);
        free(lk);
        free(pk);
    }
    assert_true(ntables >= 15);
    free(lt);
    free(pt);

    char *ltr = lite_rows(db, "SELECT name, tbl_name FROM sqlite_master WHERE type='trigger' "
                              "ORDER BY 1");
    char *ptr = pg_rows(c, "SELECT tgname, tgrelid::regclass::text FROM pg_trigger WHERE NOT "
                           "tgisinternal ORDER BY 1");
    assert_string_equal(ltr, ptr);
    free(ltr);
    free(ptr);

    fn_pg_close(c);
    sqlite3_close(db);
    fn_store_close(s);
    nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    free(url);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrations_apply_in_order_once),
        cmocka_unit_test(test_concurrent_migrators),
        cmocka_unit_test(test_trigger_and_identity),
        cmocka_unit_test(test_same_schema_as_sqlite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
