/* pg_fixture.h: a real, throwaway PostgreSQL server for one test program (scripts/pg-tmp), never a
 * mock.
 *
 * fn_pg_fixture_start() starts one cluster (the first call; later calls return the same URL) and
 * registers its removal at exit; with FN_TEST_PG=0 in the environment it returns NULL and the
 * tests call skip(). Each test then makes its own database (fn_pg_fixture_db) so tests do not see
 * each other's tables. Single-threaded: call from the test's main thread. */
#ifndef FN_TESTS_PG_FIXTURE_H
#define FN_TESTS_PG_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/pg_driver.h"

/* 1 when this run's libraries are on PostgreSQL: FN_TEST_BACKEND=pg, as the -pg suites (engine-pg,
 * tasks-pg, people-pg, cluster-pg) run the same test programs. */
static inline int fn_test_on_pg(void)
{
    const char *b = getenv("FN_TEST_BACKEND");
    return b && strcmp(b, "pg") == 0;
}

/* In a cmocka test that needs SQLite's own file (sqlite3 on library.db, its WAL, its locks, folder
 * permissions): skipped on PostgreSQL, saying why on stderr (cmocka's skip takes no message). */
#define FN_SKIP_ON_PG(why)                                                                         \
    do {                                                                                           \
        if (fn_test_on_pg()) {                                                                     \
            fprintf(stderr, "skipped on PostgreSQL: %s\n", why);                                   \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* The cluster's postgresql:// URL (database "postgres"), or NULL when FN_TEST_PG=0. Fails the
 * test program (exit 1, with pg-tmp's output on stderr) when the server cannot start. */
const char *fn_pg_fixture_start(void);

/* A new empty database on the cluster (a fresh name per call) and a URL for it, which the caller
 * frees; NULL when FN_TEST_PG=0. */
char *fn_pg_fixture_db(void);

/* Connects to `url`; fails the test (cmocka assert) when it cannot. */
fn_pg_conn *fn_pg_fixture_connect(const char *url);

/* In a cmocka test: skip() when the fixture is off, else the URL of a new empty database. */
#define FN_PG_DB_OR_SKIP(var)                                                                      \
    char *var = fn_pg_fixture_db();                                                                \
    if (!var) skip()

#endif
