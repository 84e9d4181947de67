/* test_pg_store.c: the store on PostgreSQL through its public-to-src interface (store.h, sql.h):
 * a postgresql:// address opens a server database, migrations run from the PostgreSQL schema,
 * statements go through the same fn_sql_* calls as on SQLite, write transactions exclude each
 * other across connections (the library's advisory lock), another program's database is refused,
 * and no message shows the address's password. Against a real throwaway server (pg_fixture). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "pg_fixture.h"
#include "store/jobs_store.h"
#include "store/library/library_store.h"
#include "store/sql.h"
#include "store/store.h"

static fn_store *open_ok(const char *url, int busy_ms)
{
    fn_store *s = NULL;
    char err[512] = "";
    int rc = fn_store_open(url, busy_ms, &s, err, sizeof err);
    if (rc) fail_msg("fn_store_open: %s", err);
    return s;
}

static void test_open_migrate_roundtrip(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    fn_store *s = open_ok(url, 2000);
    assert_int_equal(fn_store_backend(s), FN_SQL_POSTGRES);
    assert_int_equal(fn_js_migrate(s), FN_OK);
    assert_int_equal(fn_library_migrate(s), FN_OK);
    assert_int_equal(fn_js_migrate(s), FN_OK); /* twice: nothing left to do */
    assert_int_equal(fn_js_check_version(s), FN_OK);

    fn_store_tx *tx = NULL;
    assert_int_equal(fn_store_begin(s, &tx), FN_OK);
    fn_js_new j = {.type = "ingest", .payload = "{\"paths\":[\"/p\"]}", .priority = 1};
    int64_t id = 0;
    assert_int_equal(fn_js_insert(s, &j, 1234, &id), FN_OK);
    assert_true(id > 0);
    assert_int_equal(fn_store_commit(tx), FN_OK);
    int st = -1;
    assert_int_equal(fn_js_state(s, id, &st), FN_OK);
    assert_int_equal(st, FN_JOB_QUEUED);

    /* a rolled-back write leaves nothing */
    assert_int_equal(fn_store_begin(s, &tx), FN_OK);
    int64_t id2 = 0;
    assert_int_equal(fn_js_insert(s, &j, 1235, &id2), FN_OK);
    fn_store_rollback(tx);
    assert_int_equal(fn_js_state(s, id2, &st), FN_ERR_NOT_FOUND);
    fn_store_close(s);
    free(url);
}

/* One writer at a time per library, as SQLite's BEGIN IMMEDIATE: a second connection's write
 * transaction waits for the first, at most its busy timeout, then fails with FN_ERR_BUSY. */
static void test_writers_exclude_each_other(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    fn_store *a = open_ok(url, 2000), *b = open_ok(url, 200);
    assert_int_equal(fn_js_migrate(a), FN_OK);
    fn_store_tx *ta = NULL, *tb = NULL;
    assert_int_equal(fn_store_begin(a, &ta), FN_OK);
    assert_int_equal(fn_store_begin(b, &tb), FN_ERR_BUSY);
    assert_non_null(strstr(fn_store_errmsg(b), "lock"));
    fn_store_rollback(ta);
    assert_int_equal(fn_store_begin(b, &tb), FN_OK);
    assert_int_equal(fn_store_commit(tb), FN_OK);
    fn_store_close(a);
    fn_store_close(b);
    free(url);
}

static void test_foreign_database_refused(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    fn_pg_conn *c = fn_pg_fixture_connect(url);
    assert_int_equal(fn_pg_exec(c, "CREATE TABLE invoices(id int)"), FN_OK);
    fn_pg_close(c);
    fn_store *s = NULL;
    char err[512] = "";
    assert_int_equal(fn_store_open(url, 1000, &s, err, sizeof err), FN_ERR_FOREIGN);
    assert_null(s);
    assert_non_null(strstr(err, "1 tables of its own"));
    free(url);
}

static void test_password_not_in_messages(void **state)
{
    (void)state;
    const char *base = fn_pg_fixture_start();
    if (!base) skip();
    /* a server that is not there, with a password in the address */
    fn_store *s = NULL;
    char err[512] = "";
    int rc = fn_store_open("postgresql://ann:SECRET@127.0.0.1:1/nodb?connect_timeout=2", 1000, &s,
                           err, sizeof err);
    assert_int_equal(rc, FN_ERR_IO);
    assert_null(strstr(err, "SECRET"));
    assert_non_null(strstr(err, "ann:***@127.0.0.1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_migrate_roundtrip),
        cmocka_unit_test(test_writers_exclude_each_other),
        cmocka_unit_test(test_foreign_database_refused),
        cmocka_unit_test(test_password_not_in_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
