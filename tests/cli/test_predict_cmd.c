/* test_predict_cmd.c: `facenames predict` run as a subprocess: help and usage errors, a run on a
 * new library (creates it, nothing to do), a run on a library whose persons and faces the test
 * wrote with SQL (one face suggested, the JSON is the job's), the configuration's defaults in the
 * payload, and --detach. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "cli_json.h"

static void test_usage(void **state)
{
    (void)state;
    struct cli_result r = cli_run(NULL, (const char *[]){"predict", "--help", NULL});
    CHECK(r, r.code == 0 && strstr(r.out, "usage: facenames predict"));
    cli_result_free(&r);
    char lib[600];
    snprintf(lib, sizeof lib, "%s/usage", harness_tmp);
    r = cli_run(NULL, (const char *[]){"--library", lib, "predict", "--k", "0", NULL});
    CHECK(r, r.code == 2 && strstr(r.err, "--k"));
    cli_result_free(&r);
    r = cli_run(NULL, (const char *[]){"--library", lib, "predict", "--threshold", "2", NULL});
    CHECK(r, r.code == 2 && strstr(r.err, "--threshold"));
    cli_result_free(&r);
    r = cli_run(NULL, (const char *[]){"--library", lib, "predict", "--frobnicate", NULL});
    CHECK(r, r.code == 2);
    cli_result_free(&r);
    /* a usage error creates nothing */
    assert_int_not_equal(access(lib, F_OK), 0);
}

static void exec_sql(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) fail_msg("%s: %s", sql, err);
}

static void add_face(sqlite3 *db, int photo, int axis, float off, int off_axis, const char *who)
{
    float v[128] = {0};
    v[axis] = 0.7f;
    v[off_axis] += off;
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db,
                       "INSERT INTO faces (photo_id, x, y, width, height, score, descriptor,"
                       " person_id, state, created_at) VALUES (?1, 0, 0, 9, 9, 0.9, ?2,"
                       " (SELECT id FROM persons WHERE name = ?3),"
                       " CASE WHEN ?3 IS NULL THEN 'auto' ELSE 'confirmed' END, 1)",
                       -1, &st, NULL);
    sqlite3_bind_int(st, 1, photo);
    sqlite3_bind_blob(st, 2, v, sizeof v, SQLITE_STATIC);
    if (who)
        sqlite3_bind_text(st, 3, who, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, 3);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
}

static void test_runs(void **state)
{
    (void)state;
    char lib[600], db_path[700];
    snprintf(lib, sizeof lib, "%s/lib", harness_tmp);
    snprintf(db_path, sizeof db_path, "%s/library.db", lib);
    /* a new library: created, nothing to predict */
    json_t *j = cli_run_json(NULL, (const char *[]){"--library", lib, "predict", "--json", NULL});
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "completed");
    assert_string_equal(json_string_value(json_object_get(j, "type")), "predict");
    assert_int_equal(job_counter(j, "faces_total"), 0);
    json_decref(j);

    /* A (two confirmed faces) and three faces without a person: one near A, two strangers */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    exec_sql(db, "INSERT INTO photos (id, path, size, mtime_ns, status, ingested_at) VALUES"
                 " (1, '/p/1.jpg', 1, 1, 'ok', 1), (2, '/p/2.jpg', 1, 1, 'ok', 1),"
                 " (3, '/p/3.jpg', 1, 1, 'ok', 1), (4, '/p/4.jpg', 1, 1, 'ok', 1);"
                 "INSERT INTO persons (name, created_at) VALUES ('A', 1)");
    add_face(db, 1, 0, 0.2f, 10, "A");
    add_face(db, 2, 0, 0.2f, 11, "A");
    add_face(db, 3, 0, 0.25f, 12, NULL);
    add_face(db, 4, 5, 0, 5, NULL);
    add_face(db, 4, 6, 0, 6, NULL);
    j = cli_run_json(NULL, (const char *[]){"--library", lib, "--set", "predict.k=3", "predict",
                                            "--json", NULL});
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "completed");
    assert_int_equal(job_counter(j, "faces_total"), 3);
    assert_int_equal(job_counter(j, "faces_done"), 3);
    assert_int_equal(job_counter(j, "confirmed_faces"), 2);
    assert_int_equal(job_counter(j, "suggested"), 1);
    assert_int_equal(job_counter(j, "unknown"), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "payload"), "k")), 3);
    json_decref(j);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db,
                       "SELECT f.photo_id, p.name FROM suggestions s JOIN faces f ON"
                       " f.id = s.face_id JOIN persons p ON p.id = s.person_id",
                       -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 3);
    assert_string_equal((const char *)sqlite3_column_text(st, 1), "A");
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* the summary a person reads */
    struct cli_result r = cli_run(NULL, (const char *[]){"--library", lib, "predict", NULL});
    CHECK(r, r.code == 0 && strstr(r.out, "suggestions  1") && strstr(r.out, "unknown      2"));
    cli_result_free(&r);
    /* --detach: only the id of the queued job */
    r = cli_run(NULL, (const char *[]){"--library", lib, "predict", "--detach", NULL});
    CHECK(r, r.code == 0 && atoi(r.out) > 0);
    cli_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_runs),
    };
    return cmocka_run_group_tests(tests, harness_group_setup, harness_group_teardown);
}
