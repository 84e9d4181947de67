/* test_pg_driver.c: the libpq driver (src/store/pg/pg_driver.c) against a real PostgreSQL server
 * (pg_fixture.h): every bind and column type round trip in both result formats, `?N` translation,
 * step/reset/rebind loops, the statement cache, error mapping, LISTEN/NOTIFY across two
 * connections, and the server clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "facenames/error.h"
#include "pg_fixture.h"

static void exec_ok(fn_pg_conn *c, const char *sql)
{
    int rc = fn_pg_exec(c, sql);
    if (rc) fprintf(stderr, "%s: %s\n", sql, fn_pg_errmsg(c));
    assert_int_equal(rc, FN_OK);
}

static fn_pg_stmt *prep(fn_pg_conn *c, const char *sql)
{
    fn_pg_stmt *st = NULL;
    int rc = fn_pg_prepare(c, sql, &st);
    if (rc) fprintf(stderr, "%s: %s\n", sql, fn_pg_errmsg(c));
    assert_int_equal(rc, FN_OK);
    assert_non_null(st);
    return st;
}

/* ---- ?N translation (pure text) ---------------------------------------------------------------
 */

static void check_translation(const char *in, const char *want, int want_n)
{
    int n = -1;
    char *out = fn_pg_translate(in, &n);
    assert_non_null(out);
    assert_string_equal(out, want);
    assert_int_equal(n, want_n);
    free(out);
}

static void test_translate(void **state)
{
    (void)state;
    check_translation("SELECT 1", "SELECT 1", 0);
    check_translation("SELECT ?1, ?2", "SELECT $1, $2", 2);
    check_translation("SELECT ?2, ?1, ?2", "SELECT $2, $1, $2", 2);
    check_translation("SELECT ?3", "SELECT $3", 3);
    /* Bare ?: SQLite numbers it one past the largest number so far. */
    check_translation("VALUES(?, ?5, ?)", "VALUES($1, $5, $6)", 6);
    check_translation("SELECT ?12", "SELECT $12", 12);
    /* Left alone: string literals (with doubled quotes), quoted identifiers, comments, E''
     * strings with backslash escapes, dollar-quoted bodies. */
    check_translation("SELECT '?', ?1", "SELECT '?', $1", 1);
    check_translation("SELECT 'it''s ?2', ?1", "SELECT 'it''s ?2', $1", 1);
    check_translation("SELECT \"a?\" FROM t WHERE x=?1", "SELECT \"a?\" FROM t WHERE x=$1", 1);
    check_translation("SELECT 1 -- what ?1\n, ?2", "SELECT 1 -- what ?1\n, $2", 2);
    check_translation("SELECT /* ?1 */ ?2", "SELECT /* ?1 */ $2", 2);
    check_translation("SELECT E'\\'?1', ?2", "SELECT E'\\'?1', $2", 2);
    check_translation("SELECT $fn$ ?1 $fn$, ?2", "SELECT $fn$ ?1 $fn$, $2", 2);
    check_translation("SELECT $$?$$, ?1", "SELECT $$?$$, $1", 1);
    check_translation("SELECT $1, ?2", "SELECT $1, $2", 2);
    /* `$` inside an identifier starts no dollar quote. */
    check_translation("SELECT x$y$ FROM t WHERE k=?1", "SELECT x$y$ FROM t WHERE k=$1", 1);
    check_translation("SELECT a$1 FROM t", "SELECT a$1 FROM t", 0);
}

/* ---- round trips ----------------------------------------------------------------------------- */

static void round_trip(const char *url, int binary)
{
    fn_pg_conn *c = fn_pg_fixture_connect(url);
    fn_pg_set_binary_results(c, binary);
    exec_ok(c, "DROP TABLE IF EXISTS rt;"
               "CREATE TABLE rt(k BIGINT PRIMARY KEY, i BIGINT, d DOUBLE PRECISION, s TEXT, "
               "b BYTEA)");
    size_t big_n = 4u << 20;
    unsigned char *big = malloc(big_n);
    assert_non_null(big);
    for (size_t k = 0; k < big_n; k++)
        big[k] = (unsigned char)(k * 131 + 7);
    const char *utf8 = "Zoë 東京 🙂 \xc3\xa9";
    char partial[] = "abcdef";
    struct {
        int64_t i;
        double d;
        const char *s;
        int s_n;
        const void *b;
        int b_n;
    } rows[] = {
        {INT64_MAX, 0.1, utf8, -1, "\x00\x01\x02\xff", 4},
        {INT64_MIN, -1e308, "", -1, "", 0}, /* empty text and empty (non-NULL) blob */
        {0, 2.0, partial, 3, big, (int)big_n},
        {-1, 1.5e-300, "x", -1, NULL, 0},
    };
    fn_pg_stmt *ins = prep(c, "INSERT INTO rt(k, i, d, s, b) VALUES(?1, ?2, ?3, ?4, ?5)");
    assert_int_equal(fn_pg_bind_parameter_count(ins), 5);
    for (int r = 0; r < 4; r++) {
        fn_pg_bind_int(ins, 1, r);
        fn_pg_bind_int64(ins, 2, rows[r].i);
        fn_pg_bind_double(ins, 3, rows[r].d);
        fn_pg_bind_text(ins, 4, rows[r].s, rows[r].s_n, r % 2 ? FN_PG_STATIC : FN_PG_TRANSIENT);
        fn_pg_bind_blob(ins, 5, rows[r].b, rows[r].b_n, r % 2 ? FN_PG_TRANSIENT : FN_PG_STATIC);
        assert_int_equal(fn_pg_step(ins), FN_PG_DONE);
        assert_int_equal(fn_pg_changes(c), 1);
        fn_pg_reset(ins);
    }
    /* A row of NULLs: every column bound NULL explicitly, or left unbound. */
    fn_pg_clear_bindings(ins);
    fn_pg_bind_int(ins, 1, 4);
    fn_pg_bind_null(ins, 2);
    fn_pg_bind_text(ins, 4, NULL, -1, FN_PG_STATIC);
    assert_int_equal(fn_pg_step(ins), FN_PG_DONE);
    fn_pg_finalize(ins);

    fn_pg_stmt *sel = prep(c, "SELECT i, d, s, b FROM rt WHERE k=?1");
    for (int r = 0; r < 4; r++) {
        fn_pg_reset(sel);
        fn_pg_bind_int(sel, 1, r);
        assert_int_equal(fn_pg_step(sel), FN_PG_ROW);
        assert_int_equal(fn_pg_column_count(sel), 4);
        assert_int_equal(fn_pg_column_type(sel, 0), FN_PG_INTEGER);
        assert_int_equal(fn_pg_column_type(sel, 1), FN_PG_FLOAT);
        assert_int_equal(fn_pg_column_type(sel, 2), FN_PG_TEXT);
        assert_true(fn_pg_column_int64(sel, 0) == rows[r].i);
        assert_true(fn_pg_column_double(sel, 1) == rows[r].d); /* exact, both formats */
        int want_s = rows[r].s_n < 0 ? (int)strlen(rows[r].s) : rows[r].s_n;
        assert_int_equal(fn_pg_column_bytes(sel, 2), want_s);
        assert_memory_equal(fn_pg_column_text(sel, 2), rows[r].s, (size_t)want_s);
        assert_int_equal(fn_pg_column_text(sel, 2)[want_s], 0);
        if (!rows[r].b) {
            assert_int_equal(fn_pg_column_type(sel, 3), FN_PG_NULL);
            assert_null(fn_pg_column_blob(sel, 3));
        } else {
            assert_int_equal(fn_pg_column_type(sel, 3), FN_PG_BLOB);
            assert_int_equal(fn_pg_column_bytes(sel, 3), rows[r].b_n);
            if (rows[r].b_n)
                assert_memory_equal(fn_pg_column_blob(sel, 3), rows[r].b, (size_t)rows[r].b_n);
            else
                assert_null(fn_pg_column_blob(sel, 3)); /* empty reads as NULL, as in SQLite */
        }
        assert_int_equal(fn_pg_step(sel), FN_PG_DONE);
    }
    /* The NULL row: NULL reads as 0, 0.0, NULL text and blob, 0 bytes. */
    fn_pg_reset(sel);
    fn_pg_bind_int(sel, 1, 4);
    assert_int_equal(fn_pg_step(sel), FN_PG_ROW);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fn_pg_column_type(sel, i), FN_PG_NULL);
        assert_int_equal(fn_pg_column_bytes(sel, i), 0);
        assert_null(fn_pg_column_text(sel, i));
        assert_null(fn_pg_column_blob(sel, i));
        assert_true(fn_pg_column_int64(sel, i) == 0);
        assert_true(fn_pg_column_double(sel, i) == 0.0);
    }
    fn_pg_finalize(sel);

    /* SQLite's conversions between types. */
    fn_pg_stmt *conv = prep(c, "SELECT 42::bigint, 2.0::float8, 1.5::float8, '12abc'::text, "
                               "'3.7e1x'::text, 'zz'::text, true, 7::int4, 123::numeric, "
                               "1.25::numeric, '\\x3132'::bytea, 9223372036854775807::numeric, "
                               "(-32768)::int2, 1.5::float4");
    assert_int_equal(fn_pg_step(conv), FN_PG_ROW);
    assert_string_equal(fn_pg_column_text(conv, 0), "42");
    assert_int_equal(fn_pg_column_bytes(conv, 0), 2);
    assert_true(fn_pg_column_double(conv, 0) == 42.0);
    assert_string_equal(fn_pg_column_text(conv, 1), "2.0");
    assert_string_equal(fn_pg_column_text(conv, 2), "1.5");
    assert_int_equal(fn_pg_column_int(conv, 2), 1);
    assert_int_equal(fn_pg_column_int(conv, 3), 12);
    assert_int_equal(fn_pg_column_int(conv, 4), 37);
    assert_true(fn_pg_column_double(conv, 4) == 37.0);
    assert_int_equal(fn_pg_column_int(conv, 5), 0);
    assert_int_equal(fn_pg_column_type(conv, 6), FN_PG_INTEGER);
    assert_int_equal(fn_pg_column_int(conv, 6), 1);
    assert_string_equal(fn_pg_column_text(conv, 6), "1");
    assert_int_equal(fn_pg_column_int(conv, 7), 7);
    assert_int_equal(fn_pg_column_type(conv, 8), FN_PG_INTEGER);
    assert_int_equal(fn_pg_column_int(conv, 8), 123);
    assert_string_equal(fn_pg_column_text(conv, 8), "123");
    assert_int_equal(fn_pg_column_type(conv, 9), FN_PG_FLOAT);
    assert_true(fn_pg_column_double(conv, 9) == 1.25);
    assert_int_equal(fn_pg_column_int(conv, 9), 1);
    assert_int_equal(fn_pg_column_type(conv, 10), FN_PG_BLOB);
    assert_string_equal(fn_pg_column_text(conv, 10), "12");
    assert_int_equal(fn_pg_column_int(conv, 10), 12);
    assert_int_equal(fn_pg_column_type(conv, 11), FN_PG_INTEGER);
    assert_true(fn_pg_column_int64(conv, 11) == INT64_MAX);
    assert_int_equal(fn_pg_column_int(conv, 12), -32768);
    assert_true(fn_pg_column_double(conv, 13) == 1.5);
    assert_int_equal(fn_pg_step(conv), FN_PG_DONE);
    fn_pg_finalize(conv);

    free(big);
    fn_pg_close(c);
}

static void test_round_trip_binary(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    round_trip(url, 1);
    free(url);
}

static void test_round_trip_text(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    round_trip(url, 0);
    free(url);
}

/* Types the binary readers do not decode (timestamps, jsonb, uuid, arrays) still read as their
 * text, in the default (binary) mode. */
static void test_other_types_read_as_text(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    fn_pg_conn *c = fn_pg_fixture_connect(url);
    fn_pg_stmt *st = prep(c, "SELECT '2026-01-02 03:04:05+00'::timestamptz AT TIME ZONE 'UTC', "
                             "'{\"a\": 1}'::jsonb, "
                             "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, ARRAY[1,2]::bigint[], "
                             "?1::bigint");
    fn_pg_bind_int(st, 1, 7);
    assert_int_equal(fn_pg_step(st), FN_PG_ROW);
    assert_string_equal(fn_pg_column_text(st, 0), "2026-01-02 03:04:05");
    assert_string_equal(fn_pg_column_text(st, 1), "{\"a\": 1}");
    assert_string_equal(fn_pg_column_text(st, 2), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_string_equal(fn_pg_column_text(st, 3), "{1,2}");
    assert_int_equal(fn_pg_column_type(st, 1), FN_PG_TEXT);
    assert_int_equal(fn_pg_column_int(st, 4), 7);
    fn_pg_finalize(st);
    fn_pg_close(c);
    free(url);
}

/* ?N on the server: repeated and out-of-order parameters, a `?` in a literal. */
static void test_parameters_on_server(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    fn_pg_conn *c = fn_pg_fixture_connect(url);
    fn_pg_stmt *st = prep(c, "SELECT ?2::bigint - ?1::bigint, '?1 ?', ?2::bigint * 10, ?");
    assert_int_equal(fn_pg_bind_parameter_count(st), 3);
    fn_pg_bind_int(st, 1, 5);
    fn_pg_bind_int(st, 2, 8);
    fn_pg_bind_text(st, 3, "third", -1, FN_PG_STATIC);
    assert_int_equal(fn_pg_step(st), FN_PG_ROW);
    assert_int_equal(fn_pg_column_int(st, 0), 3);
    assert_string_equal(fn_pg_column_text(st, 1), "?1 ?");
    assert_int_equal(fn_pg_column_int(st, 2), 80);
    assert_string_equal(fn_pg_column_text(st, 3), "third");
    fn_pg_finalize(st);
    /* A number the text skips (?2 here), as SQLite allows: the server cannot infer its type, so
     * the driver declares it; whatever is bound to it is ignored. */
    st = prep(c, "SELECT ?1::bigint + ?3::bigint");
    assert_int_equal(fn_pg_bind_parameter_count(st), 3);
    fn_pg_bind_int(st, 1, 40);
    fn_pg_bind_int(st, 2, 1000);
    fn_pg_bind_int(st, 3, 2);
    assert_int_equal(fn_pg_step(st), FN_PG_ROW);
    assert_int_equal(fn_pg_column_int(st, 0), 42);
    fn_pg_finalize(st);
    fn_pg_close(c);
    free(url);
}

/* One statement stepped, reset and re-bound many times; a step after DONE runs it again;
 * bindings survive a reset; changes() counts the last INSERT/UPDATE/DELETE only. */
static void test_step_reset_rebind(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    fn_pg_conn *c = fn_pg_fixture_connect(url);
    exec_ok(c, "CREATE TABLE n(v BIGINT NOT NULL, tag TEXT)");
    fn_pg_stmt *ins = prep(c, "INSERT INTO n(v, tag) VALUES(?1, ?2)");
    for (int v = 1; v <= 200; v++) {
        fn_pg_bind_int(ins, 1, v);
        fn_pg_bind_text(ins, 2, v % 2 ? "odd" : "even", -1, FN_PG_STATIC);
        assert_int_equal(fn_pg_step(ins), FN_PG_DONE);
        fn_pg_reset(ins);
    }
    fn_pg_finalize(ins);
    fn_pg_stmt *sum = prep(c, "SELECT count(*), sum(v) FROM n WHERE tag=?1 AND v<=?2");
    for (int lim = 0; lim <= 200; lim += 50) {
        fn_pg_bind_text(sum, 1, "odd", -1, FN_PG_TRANSIENT);
        fn_pg_bind_int(sum, 2, lim);
        assert_int_equal(fn_pg_step(sum), FN_PG_ROW);
        long long want_n = (lim + 1) / 2, want_sum = want_n * want_n; /* 1+3+...+(2n-1) */
        assert_int_equal(fn_pg_column_int64(sum, 0), want_n);
        /* sum(bigint) is numeric on PostgreSQL; it still reads as an integer (NULL when no
         * rows: then 0). */
        assert_int_equal(fn_pg_column_int64(sum, 1), want_sum);
        assert_int_equal(fn_pg_step(sum), FN_PG_DONE);
        /* Step after DONE: runs again with the kept bindings. */
        assert_int_equal(fn_pg_step(sum), FN_PG_ROW);
        assert_int_equal(fn_pg_column_int64(sum, 0), want_n);
        fn_pg_reset(sum);
    }
    fn_pg_finalize(sum);
    fn_pg_stmt *all = prep(c, "SELECT v FROM n ORDER BY v");
    int seen = 0;
    while (fn_pg_step(all) == FN_PG_ROW)
        assert_int_equal(fn_pg_column_int(all, 0), ++seen);
    assert_int_equal(seen, 200);
    /* A reset in the middle starts over. */
    assert_int_equal(fn_pg_step(all), FN_PG_ROW);
    assert_int_equal(fn_pg_step(all), FN_PG_ROW);
    assert_int_equal(fn_pg_column_int(all, 0), 2);
    fn_pg_reset(all);
    assert_int_equal(fn_pg_step(all), FN_PG_ROW);
    assert_int_equal(fn_pg_column_int(all, 0), 1);
    fn_pg_finalize(all);
    exec_ok(c, "UPDATE n SET tag='x' WHERE v<=7");
    assert_int_equal(fn_pg_changes(c), 7);
    exec_ok(c, "SELECT * FROM n");
    assert_int_equal(fn_pg_changes(c), 7);
    fn_pg_stmt *del = prep(c, "DELETE FROM n WHERE v>?1 RETURNING v");
    fn_pg_bind_int(del, 1, 190);
    int returned = 0;
    while (fn_pg_step(del) == FN_PG_ROW)
        returned++;
    assert_int_equal(returned, 10);
    assert_int_equal(fn_pg_changes(c), 10);
    fn_pg_finalize(del);
    fn_pg_close(c);
    free(url);
}

/* Preparing the same text again reuses the server's statement (no second PREPARE). */
static void test_statement_cache(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    fn_pg_conn *c = fn_pg_fixture_connect(url);
    for (int k = 0; k < 5; k++) {
        fn_pg_stmt *st = prep(c, "SELECT ?1::bigint + 1");
        fn_pg_bind_int(st, 1, k);
        assert_int_equal(fn_pg_step(st), FN_PG_ROW);
        assert_int_equal(fn_pg_column_int(st, 0), k + 1);
        fn_pg_finalize(st);
    }
    fn_pg_stmt *n = prep(c, "SELECT count(*) FROM pg_prepared_statements");
    assert_int_equal(fn_pg_step(n), FN_PG_ROW);
    assert_int_equal(fn_pg_column_int(n, 0), 2); /* the SELECT above and this one */
    fn_pg_finalize(n);
    fn_pg_close(c);
    free(url);
}

/* ---- errors -----------------------------------------------------------------------------------
 */

static void test_unique_violation_is_db(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    fn_pg_conn *c = fn_pg_fixture_connect(url);
    exec_ok(c, "CREATE TABLE u(k BIGINT PRIMARY KEY)");
    fn_pg_stmt *st = prep(c, "INSERT INTO u VALUES(?1)");
    fn_pg_bind_int(st, 1, 1);
    assert_int_equal(fn_pg_step(st), FN_PG_DONE);
    assert_int_equal(fn_pg_step(st), FN_ERR_DB);
    assert_non_null(strstr(fn_pg_errmsg(c), "duplicate key"));
    assert_string_equal(fn_pg_sqlstate(c), "23505");
    /* The statement is usable again after an error. */
    fn_pg_bind_int(st, 1, 2);
    assert_int_equal(fn_pg_step(st), FN_PG_DONE);
    fn_pg_finalize(st);
    /* A bad statement fails at prepare, with the server's message. */
    fn_pg_stmt *bad = NULL;
    assert_int_equal(fn_pg_prepare(c, "SELECT nope FROM u", &bad), FN_ERR_DB);
    assert_null(bad);
    assert_non_null(strstr(fn_pg_errmsg(c), "nope"));
    fn_pg_close(c);
    free(url);
}

/* Two REPEATABLE READ transactions updating the same row: the second fails with 40001. */
static void test_serialization_failure_is_busy(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    fn_pg_conn *a = fn_pg_fixture_connect(url), *b = fn_pg_fixture_connect(url);
    exec_ok(a, "CREATE TABLE s(k BIGINT PRIMARY KEY, v BIGINT); INSERT INTO s VALUES(1, 0)");
    exec_ok(a, "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT v FROM s");
    exec_ok(b, "UPDATE s SET v=v+1 WHERE k=1");
    fn_pg_stmt *up = prep(a, "UPDATE s SET v=v+10 WHERE k=?1");
    fn_pg_bind_int(up, 1, 1);
    assert_int_equal(fn_pg_step(up), FN_ERR_BUSY);
    assert_string_equal(fn_pg_sqlstate(a), "40001");
    assert_non_null(strstr(fn_pg_errmsg(a), "serialize"));
    fn_pg_finalize(up);
    exec_ok(a, "ROLLBACK");
    /* lock_timeout: 55P03 is BUSY too. */
    exec_ok(b, "BEGIN; SELECT v FROM s WHERE k=1 FOR UPDATE");
    exec_ok(a, "SET lock_timeout='50ms'");
    assert_int_equal(fn_pg_exec(a, "UPDATE s SET v=0 WHERE k=1"), FN_ERR_BUSY);
    assert_string_equal(fn_pg_sqlstate(a), "55P03");
    exec_ok(b, "ROLLBACK");
    fn_pg_close(a);
    fn_pg_close(b);
    free(url);
}

/* Two transactions taking two rows in opposite orders: the server's deadlock detector fails one
 * of them with 40P01, which is FN_ERR_BUSY (the caller retries). The second transaction runs in a
 * child process, since a connection's call blocks while it waits for the lock. */
static void test_deadlock_is_busy(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    fn_pg_conn *a = fn_pg_fixture_connect(url);
    exec_ok(a, "CREATE TABLE d(k BIGINT PRIMARY KEY, v BIGINT); INSERT INTO d VALUES(1,0), (2,0)");
    exec_ok(a, "SET deadlock_timeout='100ms'; BEGIN; UPDATE d SET v=1 WHERE k=1");
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fn_pg_conn *b = NULL;
        int rc = fn_pg_connect(url, &b);
        if (!rc)
            rc = fn_pg_exec(b, "SET deadlock_timeout='100ms'; BEGIN; UPDATE d SET v=2 WHERE k=2");
        char one = 1;
        if (write(ready[1], &one, 1) != 1) _exit(3);
        if (!rc) rc = fn_pg_exec(b, "UPDATE d SET v=2 WHERE k=1"); /* waits for a */
        _exit(rc == FN_ERR_BUSY && !strcmp(fn_pg_sqlstate(b), "40P01") ? 1 : rc ? 2 : 0);
    }
    char one;
    assert_int_equal(read(ready[0], &one, 1), 1);
    struct timespec nap = {0, 200000000}; /* let the child start waiting for row 1 */
    nanosleep(&nap, NULL);
    int rc = fn_pg_exec(a, "UPDATE d SET v=1 WHERE k=2");
    int a_busy = rc == FN_ERR_BUSY && !strcmp(fn_pg_sqlstate(a), "40P01");
    assert_true(rc == FN_OK || a_busy);
    exec_ok(a, "ROLLBACK");
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    int child = WEXITSTATUS(status);
    /* Exactly one of the two was chosen as the victim, and it saw BUSY. */
    assert_true((a_busy && child == 0) || (!a_busy && child == 1));
    close(ready[0]);
    close(ready[1]);
    fn_pg_close(a);
    free(url);
}

/* A write in a read-only transaction (as on a hot standby) is FN_ERR_READONLY; a multi-statement
 * exec that fails part-way keeps nothing (one implicit transaction) and names the failure. */
static void test_readonly_and_exec_atomic(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    fn_pg_conn *c = fn_pg_fixture_connect(url);
    exec_ok(c, "CREATE TABLE r(k BIGINT PRIMARY KEY)");
    exec_ok(c, "BEGIN READ ONLY");
    assert_int_equal(fn_pg_exec(c, "INSERT INTO r VALUES(1)"), FN_ERR_READONLY);
    assert_string_equal(fn_pg_sqlstate(c), "25006");
    /* The failed transaction refuses everything else until it ends (25P02). */
    assert_int_equal(fn_pg_exec(c, "SELECT 1"), FN_ERR_DB);
    assert_string_equal(fn_pg_sqlstate(c), "25P02");
    exec_ok(c, "ROLLBACK");
    assert_int_equal(fn_pg_exec(c, "INSERT INTO r VALUES(1); INSERT INTO r VALUES(1)"), FN_ERR_DB);
    assert_string_equal(fn_pg_sqlstate(c), "23505");
    fn_pg_stmt *n = prep(c, "SELECT count(*) FROM r");
    assert_int_equal(fn_pg_step(n), FN_PG_ROW);
    assert_int_equal(fn_pg_column_int(n, 0), 0);
    fn_pg_finalize(n);
    fn_pg_close(c);
    free(url);
}

static void test_server_gone_is_io(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    fn_pg_conn *a = fn_pg_fixture_connect(url), *b = fn_pg_fixture_connect(url);
    fn_pg_stmt *pid = prep(a, "SELECT pg_backend_pid()");
    assert_int_equal(fn_pg_step(pid), FN_PG_ROW);
    int a_pid = fn_pg_column_int(pid, 0);
    fn_pg_finalize(pid);
    /* The server ends a's session (as a restart or a crash would). */
    fn_pg_stmt *kill = prep(b, "SELECT pg_terminate_backend(?1)");
    fn_pg_bind_int(kill, 1, a_pid);
    assert_int_equal(fn_pg_step(kill), FN_PG_ROW);
    fn_pg_finalize(kill);
    int rc = fn_pg_exec(a, "SELECT 1");
    assert_int_equal(rc, FN_ERR_IO);
    assert_non_null(strstr(fn_pg_errmsg(a), "PostgreSQL server"));
    assert_non_null(strstr(fn_pg_errmsg(a), "check that the server is running"));
    fn_pg_stmt *st = NULL;
    assert_int_equal(fn_pg_prepare(a, "SELECT 2", &st), FN_ERR_IO);
    fn_pg_close(a);
    fn_pg_close(b);

    /* No server at all: the message names where we looked. */
    fn_pg_conn *none = NULL;
    assert_int_equal(fn_pg_connect("postgresql:///postgres?host=/nonexistent-fn-dir", &none),
                     FN_ERR_IO);
    assert_non_null(none);
    assert_non_null(strstr(fn_pg_errmsg(none), "/nonexistent-fn-dir"));
    assert_non_null(strstr(fn_pg_errmsg(none), "check that the server is running"));
    fn_pg_close(none);
    free(url);
}

/* ---- LISTEN / NOTIFY, clock ------------------------------------------------------------------ */

typedef struct heard {
    int n;
    char channel[64], payload[256];
} heard;

static void on_note(void *ctx, const char *channel, const char *payload, int pid)
{
    (void)pid;
    heard *h = ctx;
    h->n++;
    snprintf(h->channel, sizeof h->channel, "%s", channel);
    snprintf(h->payload, sizeof h->payload, "%s", payload);
}

/* Waits up to ms for notifications on `c`, draining them into h. */
static void wait_notes(fn_pg_conn *c, heard *h, int want, int ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (h->n < want) {
        struct pollfd p = {.fd = fn_pg_socket(c), .events = POLLIN};
        assert_true(p.fd >= 0);
        poll(&p, 1, 50);
        assert_true(fn_pg_drain_notifications(c, on_note, h) >= 0);
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > ms) break;
    }
}

static void test_listen_notify(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    fn_pg_conn *ui = fn_pg_fixture_connect(url), *worker = fn_pg_fixture_connect(url);
    assert_int_equal(fn_pg_listen(ui, "fn jobs"), FN_OK); /* a space: quoted as identifier */
    heard h = {0};
    assert_int_equal(fn_pg_drain_notifications(ui, on_note, &h), 0);
    assert_int_equal(fn_pg_notify(worker, "fn jobs", "{\"job\":7,\"state\":\"running\"}"), FN_OK);
    wait_notes(ui, &h, 1, 5000);
    assert_int_equal(h.n, 1);
    assert_string_equal(h.channel, "fn jobs");
    assert_string_equal(h.payload, "{\"job\":7,\"state\":\"running\"}");
    /* Inside a transaction: delivered at commit, not before. */
    exec_ok(worker, "BEGIN");
    assert_int_equal(fn_pg_notify(worker, "fn jobs", "in tx"), FN_OK);
    wait_notes(ui, &h, 2, 300);
    assert_int_equal(h.n, 1);
    exec_ok(worker, "COMMIT");
    wait_notes(ui, &h, 2, 5000);
    assert_int_equal(h.n, 2);
    assert_string_equal(h.payload, "in tx");
    /* Other channels are not heard. */
    assert_int_equal(fn_pg_notify(worker, "elsewhere", NULL), FN_OK);
    wait_notes(ui, &h, 3, 300);
    assert_int_equal(h.n, 2);
    fn_pg_close(ui);
    fn_pg_close(worker);
    free(url);
}

static void test_now(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    fn_pg_conn *c = fn_pg_fixture_connect(url);
    int64_t a = 0, b = 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t host = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    assert_int_equal(fn_pg_now_ns(c, &a), FN_OK);
    /* Same machine here: the server's clock is the host's, within a few seconds. */
    assert_true(llabs(a - host) < 5 * 1000000000LL);
    assert_int_equal(a % 1000, 0); /* microseconds */
    /* Inside a transaction it still moves (clock_timestamp, not the transaction's now()). */
    exec_ok(c, "BEGIN");
    assert_int_equal(fn_pg_now_ns(c, &a), FN_OK);
    struct timespec nap = {0, 2000000};
    nanosleep(&nap, NULL);
    assert_int_equal(fn_pg_now_ns(c, &b), FN_OK);
    assert_true(b - a >= 2000000);
    exec_ok(c, "COMMIT");
    fn_pg_close(c);
    free(url);
}

/* ---- bulk reads: COPY binary ---------------------------------------------------------------- */

/* What the reader was given, row by row, to compare with what stepping the same query gives. */
typedef struct copied {
    int rows;
    int64_t id[16];
    int type[16][4];
    int64_t i[16][4];
    double d[16][4];
    int len[16][4];
    unsigned char blob[16][8];
    int stop_at;
} copied;

static int copy_row(void *ctx, const fn_pg_value *v, int ncols)
{
    copied *g = ctx;
    assert_int_equal(ncols, 4);
    if (g->stop_at && g->rows == g->stop_at) return FN_ERR_CANCELLED;
    assert_true(g->rows < 16);
    for (int c = 0; c < ncols; c++) {
        g->type[g->rows][c] = v[c].type;
        g->i[g->rows][c] = v[c].i;
        g->d[g->rows][c] = v[c].d;
        g->len[g->rows][c] = v[c].len;
        if (c == 3 && v[c].len) memcpy(g->blob[g->rows], v[c].p, (size_t)v[c].len);
    }
    g->rows++;
    return 0;
}

static void test_copy_rows(void **state)
{
    (void)state;
    FN_PG_DB_OR_SKIP(url);
    fn_pg_conn *c = fn_pg_fixture_connect(url);
    exec_ok(c, "CREATE TABLE t(id BIGINT, n INTEGER, score DOUBLE PRECISION, b BYTEA, x NUMERIC)");
    exec_ok(c, "INSERT INTO t VALUES (1, 7, 0.5, '\\x0102'::bytea, 1),"
               " (2, NULL, NULL, NULL, 2), (3, -4, -1e300, ''::bytea, 3),"
               " (-9223372036854775808, 2147483647, 'NaN', '\\xff'::bytea, 4)");
    static const char q[] = "SELECT id, n, score, b FROM t WHERE id <> ?1 AND id >= ?2 ORDER BY id";
    /* Every row, as stepping the statement reads it (the row-by-row path). */
    for (int pass = 0; pass < 2; pass++) {
        if (pass)
            exec_ok(c, "BEGIN ISOLATION LEVEL REPEATABLE READ"); /* inside a transaction too */
        int64_t params[2] = {2, INT64_MIN};
        copied g = {0};
        int rc = fn_pg_copy_rows(c, q, params, 2, 4, copy_row, &g);
        if (rc) fprintf(stderr, "%s\n", fn_pg_errmsg(c));
        assert_int_equal(rc, FN_OK);
        fn_pg_stmt *st = prep(c, q);
        fn_pg_bind_int64(st, 1, 2);
        fn_pg_bind_int64(st, 2, INT64_MIN);
        int n = 0;
        while (fn_pg_step(st) == FN_PG_ROW) {
            assert_true(n < g.rows);
            for (int col = 0; col < 4; col++) {
                assert_int_equal(g.type[n][col], fn_pg_column_type(st, col));
                if (col < 3) assert_int_equal(g.i[n][col], fn_pg_column_int64(st, col));
                if (col == 2 && !isnan(g.d[n][col]))
                    assert_true(g.d[n][col] == fn_pg_column_double(st, col));
                if (col == 3) {
                    assert_int_equal(g.len[n][col], fn_pg_column_bytes(st, col));
                    if (g.len[n][col])
                        assert_memory_equal(g.blob[n], fn_pg_column_blob(st, col),
                                            (size_t)g.len[n][col]);
                }
            }
            n++;
        }
        fn_pg_finalize(st);
        assert_int_equal(n, 3); /* id 2 left out by ?1 */
        assert_int_equal(g.rows, 3);
        assert_int_equal(g.i[0][0], INT64_MIN);
        assert_int_equal(g.type[1][3], FN_PG_BLOB);
        assert_int_equal(g.len[1][3], 2);
        if (pass) exec_ok(c, "COMMIT");
    }
    /* A parameter past the ones given reads as NULL: no rows. */
    copied g = {0};
    assert_int_equal(fn_pg_copy_rows(c, q, (int64_t[]){0}, 1, 4, copy_row, &g), FN_OK);
    assert_int_equal(g.rows, 0);
    /* Another number of columns than the query has. */
    assert_int_equal(fn_pg_copy_rows(c, q, NULL, 0, 3, copy_row, &g), FN_ERR_STATE);
    assert_non_null(strstr(fn_pg_errmsg(c), "columns"));
    /* A type the parser does not decode. */
    assert_int_equal(fn_pg_copy_rows(c, "SELECT id, n, x, b FROM t", NULL, 0, 4, copy_row, &g),
                     FN_ERR_UNSUPPORTED);
    assert_non_null(strstr(fn_pg_errmsg(c), "1700"));
    /* A query the server refuses. */
    assert_int_equal(fn_pg_copy_rows(c, "SELECT nope FROM t", NULL, 0, 4, copy_row, &g), FN_ERR_DB);
    /* The reader stops after one row: its code comes back, and the connection is ready for the
     * next command (the rest of the stream was read). */
    copied h = {.stop_at = 1};
    assert_int_equal(fn_pg_copy_rows(c, q, (int64_t[]){0, INT64_MIN}, 2, 4, copy_row, &h),
                     FN_ERR_CANCELLED);
    assert_int_equal(h.rows, 1);
    fn_pg_stmt *st = prep(c, "SELECT count(*) FROM t");
    assert_int_equal(fn_pg_step(st), FN_PG_ROW);
    assert_int_equal(fn_pg_column_int64(st, 0), 4);
    fn_pg_finalize(st);
    fn_pg_close(c);
    free(url);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_translate),
        cmocka_unit_test(test_round_trip_binary),
        cmocka_unit_test(test_round_trip_text),
        cmocka_unit_test(test_other_types_read_as_text),
        cmocka_unit_test(test_parameters_on_server),
        cmocka_unit_test(test_step_reset_rebind),
        cmocka_unit_test(test_statement_cache),
        cmocka_unit_test(test_unique_violation_is_db),
        cmocka_unit_test(test_serialization_failure_is_busy),
        cmocka_unit_test(test_deadlock_is_busy),
        cmocka_unit_test(test_readonly_and_exec_atomic),
        cmocka_unit_test(test_server_gone_is_io),
        cmocka_unit_test(test_listen_notify),
        cmocka_unit_test(test_now),
        cmocka_unit_test(test_copy_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
