/* test_pg_sql.c: every SQL string literal of the store (scripts/sql-literals) prepared on the
 * migrated PostgreSQL schema, `?N` translated as the driver translates it. This is the map for
 * making the store's DML portable (issue 14): a statement that does not prepare must be listed,
 * with why, in tests/pg/pg_known_failures.txt (and docs/postgresql.md); a new failure fails the
 * test, a listed one is reported as skipped, a listed one that now prepares is reported so the
 * list can shrink. Statements completed at run time (printf templates) are not prepared.
 *
 * FN_PG_SQL_REPORT=path writes every failure (key, file:line, SQLSTATE, message, SQL) there, which
 * is how the list and the document are made. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "pg_fixture.h"
#include "store/pg/pg_schema.h"

/* The keys of tests/pg/pg_known_failures.txt (first field of each non-comment line). */
static char **known_keys(size_t *n)
{
    *n = 0;
    FILE *f = fopen(FN_SOURCE_ROOT "/tests/pg/pg_known_failures.txt", "r");
    assert_non_null(f);
    char **keys = NULL;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        line[strcspn(line, " \t\n")] = 0;
        keys = realloc(keys, (*n + 1) * sizeof *keys);
        assert_non_null(keys);
        keys[(*n)++] = strdup(line);
    }
    fclose(f);
    return keys;
}

static int listed(char **keys, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(keys[i], key)) return 1;
    return 0;
}

static void test_store_sql_prepares(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    fn_pg_conn *c = fn_pg_fixture_connect(url);
    int rc = fn_pg_migrate(c, "jobs", fn_pg_jobs_migrations, fn_pg_jobs_migrations_count);
    if (!rc)
        rc = fn_pg_migrate(c, "library", fn_pg_library_migrations, fn_pg_library_migrations_count);
    assert_int_equal(rc, FN_OK);

    size_t nknown = 0;
    char **known = known_keys(&nknown);
    const char *report_path = getenv("FN_PG_SQL_REPORT");
    FILE *report = report_path ? fopen(report_path, "w") : NULL;

    FILE *p = popen("python3 '" FN_SOURCE_ROOT "/scripts/sql-literals' '" FN_SOURCE_ROOT "'", "r");
    assert_non_null(p);
    char *line = NULL;
    size_t cap = 0;
    int total = 0, ok = 0, templates = 0, skipped = 0, fresh = 0, stale = 0;
    while (getline(&line, &cap, p) > 0) {
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        assert_non_null(o);
        const char *file = json_string_value(json_object_get(o, "file"));
        const char *key = json_string_value(json_object_get(o, "key"));
        const char *sql = json_string_value(json_object_get(o, "sql"));
        int at = (int)json_integer_value(json_object_get(o, "line"));
        assert_non_null(file);
        assert_non_null(key);
        assert_non_null(sql);
        total++;
        if (json_is_true(json_object_get(o, "template"))) {
            templates++;
            json_decref(o);
            continue;
        }
        fn_pg_stmt *st = NULL;
        rc = fn_pg_prepare(c, sql, &st);
        fn_pg_finalize(st);
        if (rc == FN_OK) {
            ok++;
            if (listed(known, nknown, key)) {
                stale++;
                printf("now prepares (remove %s from pg_known_failures.txt): %s:%d\n", key, file,
                       at);
            }
        } else {
            if (report)
                fprintf(report, "%s\t%s:%d\t%s\t%s\t%s\n", key, file, at, fn_pg_sqlstate(c),
                        fn_pg_errmsg(c), sql);
            if (listed(known, nknown, key)) {
                skipped++;
            } else {
                fresh++;
                fprintf(stderr, "NEW: %s:%d (key %s) does not prepare on PostgreSQL: %s\n  %s\n",
                        file, at, key, fn_pg_errmsg(c), sql);
            }
            /* A connection lost would fail everything after it. */
            assert_int_not_equal(rc, FN_ERR_IO);
        }
        json_decref(o);
    }
    free(line);
    assert_int_equal(pclose(p), 0);
    if (report) fclose(report);
    printf("store SQL on PostgreSQL: %d literals, %d prepare, %d known failures skipped, %d new "
           "failures, %d run-time templates not checked, %d listed that now prepare\n",
           total, ok, skipped, fresh, templates, stale);
    for (size_t i = 0; i < nknown; i++)
        free(known[i]);
    free(known);
    /* The extraction found the store's SQL at all (a broken script would pass vacuously). */
    assert_true(total > 100);
    assert_int_equal(fresh, 0);
    fn_pg_close(c);
    free(url);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_sql_prepares),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
