/* backend.h: one test program, two backends (issue 14). With FN_TEST_BACKEND=pg in the
 * environment (the suites tasks-pg, people-pg, cluster-pg) a test's library is a fresh database
 * on the program's throwaway PostgreSQL cluster (tests/pg/pg_fixture.h, started on first use)
 * instead of a folder; otherwise it is a folder, as before. A second connection (h_db) seeds and
 * checks rows with the same SQL text on either backend. Header-only, static functions; programs
 * that include it link tests/pg/pg_fixture.c and libpq. Single-threaded. */
#ifndef FN_TESTS_TASKS_BACKEND_H
#define FN_TESTS_TASKS_BACKEND_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../pg/pg_fixture.h"

/* A new library address: `dir` itself on SQLite (the caller made the folder), a fresh database's
 * postgresql:// URL on PostgreSQL. Caller frees. */
static inline char *h_library_at(const char *dir)
{
    if (!fn_test_on_pg()) return strdup(dir);
    char *url = fn_pg_fixture_db();
    if (!url) {
        fprintf(stderr, "FN_TEST_BACKEND=pg but FN_TEST_PG=0: no server to test on\n");
        abort();
    }
    return url;
}

/* A second connection to a library (address as h_library_at gives), for seeding and checks. */
typedef struct h_db {
    sqlite3 *lite;
    fn_pg_conn *pg;
} h_db;

static inline void h_db_open(h_db *d, const char *library)
{
    memset(d, 0, sizeof *d);
    if (strncmp(library, "postgresql://", 13) == 0) {
        d->pg = fn_pg_fixture_connect(library);
        return;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/library.db", library);
    if (sqlite3_open(path, &d->lite) != SQLITE_OK) fail_msg("open %s", path);
    sqlite3_busy_timeout(d->lite, 2000);
    sqlite3_exec(d->lite, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
}

static inline void h_db_close(h_db *d)
{
    if (d->lite) sqlite3_close(d->lite);
    if (d->pg) fn_pg_close(d->pg);
    memset(d, 0, sizeof *d);
}

/* A blob literal for this backend: x'ab01' on SQLite, '\xab01'::bytea on PostgreSQL. `hex` is
 * lower-case hex digits; the result lives in a static buffer until the next call. */
static inline const char *h_blob(const h_db *d, const char *hex)
{
    static char lit[4200];
    snprintf(lit, sizeof lit, d->pg ? "'\\x%s'::bytea" : "x'%s'", hex);
    return lit;
}

/* Runs SQL (no rows), failing the test with the backend's message. */
static inline void h_db_exec(h_db *d, const char *fmt, ...)
{
    char q[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    if (d->pg) {
        if (fn_pg_exec(d->pg, q) != 0) fail_msg("%s: %s", q, fn_pg_errmsg(d->pg));
        return;
    }
    char *err = NULL;
    if (sqlite3_exec(d->lite, q, NULL, NULL, &err) != SQLITE_OK) fail_msg("%s: %s", q, err);
}

/* Every row of a query as "v|v|...|\n" lines (NULL as empty); caller frees. */
static inline char *h_db_rows(h_db *d, const char *fmt, ...)
{
    char q[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    size_t cap = 1 << 12, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    out[0] = 0;
    sqlite3_stmt *ls = NULL;
    fn_pg_stmt *ps = NULL;
    if (d->pg) {
        if (fn_pg_prepare(d->pg, q, &ps) != 0) fail_msg("%s: %s", q, fn_pg_errmsg(d->pg));
    } else if (sqlite3_prepare_v2(d->lite, q, -1, &ls, NULL) != SQLITE_OK) {
        fail_msg("%s: %s", q, sqlite3_errmsg(d->lite));
    }
    for (;;) {
        int rc = d->pg ? fn_pg_step(ps) : sqlite3_step(ls);
        if (d->pg ? rc != FN_PG_ROW : rc != SQLITE_ROW) {
            if (d->pg ? rc != FN_PG_DONE : rc != SQLITE_DONE)
                fail_msg("%s: %s", q, d->pg ? fn_pg_errmsg(d->pg) : sqlite3_errmsg(d->lite));
            break;
        }
        int nc = d->pg ? fn_pg_column_count(ps) : sqlite3_column_count(ls);
        for (int k = 0; k < nc; k++) {
            const char *t =
                d->pg ? fn_pg_column_text(ps, k) : (const char *)sqlite3_column_text(ls, k);
            size_t need = strlen(t ? t : "") + 4;
            while (len + need >= cap) {
                cap *= 2;
                out = realloc(out, cap);
                assert_non_null(out);
            }
            len += (size_t)sprintf(out + len, "%s|", t ? t : "");
        }
        if (len + 2 >= cap) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
        out[len++] = '\n';
        out[len] = 0;
    }
    if (ps) fn_pg_finalize(ps);
    if (ls) sqlite3_finalize(ls);
    return out;
}

/* The first column of the first row as an integer, -999 when there is no row. */
static inline int64_t h_db_int(h_db *d, const char *fmt, ...)
{
    char q[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    char *rows = h_db_rows(d, "%s", q);
    int64_t v = rows[0] ? strtoll(rows, NULL, 10) : -999;
    free(rows);
    return v;
}

/* After rows were inserted with explicit ids, moves PostgreSQL's identity sequences past them
 * (SQLite numbers new rows after the largest id by itself). */
static inline void h_db_sync_ids(h_db *d, const char *table)
{
    if (!d->pg) return;
    h_db_exec(d,
              "SELECT setval(pg_get_serial_sequence('%s', 'id'), coalesce(max(id), 0) + 1, false)"
              " FROM %s",
              table, table);
}

#endif
