/* test_interop_cmds.c: `facenames repair`, `export` and `import` through the program: usage
 * errors, a folder without a library, and the round trip export -> import into a new library
 * with the exit codes the README promises (0, and 4 when an import meets a conflict). The jobs
 * themselves are tested in tests/tasks/test_interop.c; this checks the commands around them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "cli_harness.h"

static char models[1100], lib[700], photos[700];
static int have_samples;

static void copy(const char *from, const char *to)
{
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    assert_int_equal(system(cmd), 0);
}

static void sql(const char *library, const char *q)
{
    char p[800];
    snprintf(p, sizeof p, "%s/library.db", library);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *err = NULL;
    int rc = sqlite3_exec(db, q, NULL, NULL, &err);
    if (rc != SQLITE_OK) fprintf(stderr, "%s: %s\n", q, err);
    assert_int_equal(rc, SQLITE_OK);
    sqlite3_close(db);
}

static char *names(const char *library)
{
    char p[800];
    snprintf(p, sizeof p, "%s/library.db", library);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT group_concat(n, ';') FROM (SELECT p.name || ':' ||"
                                        " f.state || ':' || printf('%.1f', f.x) AS n FROM faces f"
                                        " JOIN persons p ON p.id = f.person_id ORDER BY n)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    char *r = NULL;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        r = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return r ? r : strdup("");
}

static int group_setup(void **state)
{
    if (harness_group_setup(state) != 0) return -1;
    const char *samples = getenv("FACENAMES_SAMPLES");
    const char *m = getenv("FACENAMES_MODELS");
    if (!samples || !m) return 0; /* the tests that need photos skip */
    snprintf(models, sizeof models, "FACENAMES_MODELS_DIR=%s", m);
    snprintf(lib, sizeof lib, "%s/lib", harness_tmp);
    snprintf(photos, sizeof photos, "%s/photos", harness_tmp);
    if (mkdir(photos, 0755) != 0) return -1;
    for (int k = 1; k <= 2; k++) {
        char from[1200], to[1200];
        snprintf(from, sizeof from, "%s/sample%d.jpg", samples, k);
        snprintf(to, sizeof to, "%s/sample%d.jpg", photos, k);
        copy(from, to);
    }
    const char *env[] = {models, NULL};
    struct cli_result r = cli_run(
        env, (const char *[]){"--library", lib, "ingest", "--detector", "tiny", photos, NULL});
    int ok = r.code == 0;
    if (!ok) fprintf(stderr, "ingest failed (%d): %s%s\n", r.code, r.out, r.err);
    cli_result_free(&r);
    have_samples = ok;
    return ok ? 0 : -1;
}

static int group_teardown(void **state)
{
    return harness_group_teardown(state);
}

static void test_usage_and_no_library(void **state)
{
    (void)state;
    struct cli_result r = cli_run(NULL, (const char *[]){"--library", lib, "export", NULL});
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "--format"));
    cli_result_free(&r);
    r = cli_run(NULL, (const char *[]){"--library", lib, "export", "--format", "pdf", NULL});
    assert_int_equal(r.code, 2);
    cli_result_free(&r);
    r = cli_run(NULL, (const char *[]){"--library", lib, "import", NULL});
    assert_int_equal(r.code, 2);
    cli_result_free(&r);
    r = cli_run(NULL, (const char *[]){"--library", lib, "repair", "--bogus", NULL});
    assert_int_equal(r.code, 2);
    cli_result_free(&r);
    /* a folder that is not a library: said so, nothing created */
    char none[800];
    snprintf(none, sizeof none, "%s/none", harness_tmp);
    assert_int_equal(mkdir(none, 0755), 0);
    r = cli_run(NULL, (const char *[]){"--library", none, "repair", NULL});
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.err, "no library"));
    cli_result_free(&r);
    r = cli_run(NULL, (const char *[]){"--library", none, "export", "--format", "xmp", NULL});
    assert_int_equal(r.code, 1);
    cli_result_free(&r);
    char db[900];
    snprintf(db, sizeof db, "%s/library.db", none);
    assert_int_equal(access(db, F_OK), -1);
}

static void test_round_trip_and_conflict(void **state)
{
    (void)state;
    if (!have_samples) skip();
    sql(lib, "INSERT INTO persons (name, created_at) VALUES ('Ann', 0), ('Bob', 0);"
             "UPDATE faces SET person_id = 1, state = 'confirmed' WHERE id = 1;"
             "UPDATE faces SET person_id = 2 WHERE id = 2;");
    char out[800];
    snprintf(out, sizeof out, "%s/out", harness_tmp);
    struct cli_result r = cli_run(
        NULL, (const char *[]){"--library", lib, "export", "--format", "json", "--to", out, NULL});
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "facenames-export.json"));
    cli_result_free(&r);
    char file[900], lib2[800];
    snprintf(file, sizeof file, "%s/facenames-export.json", out);
    snprintf(lib2, sizeof lib2, "%s/lib2", harness_tmp);
    /* import creates the library, and --json prints the job */
    r = cli_run(NULL, (const char *[]){"--library", lib2, "import", file, "--json", NULL});
    assert_int_equal(r.code, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "completed");
    json_decref(j);
    cli_result_free(&r);
    char *a = names(lib), *b = names(lib2);
    assert_true(strlen(a) > 0);
    assert_string_equal(a, b);
    free(a);
    free(b);

    /* the face confirmed as Ann there is confirmed as Bob here: a conflict, exit 4, Bob stays */
    sql(lib2, "UPDATE faces SET person_id = (SELECT id FROM persons WHERE name = 'Bob')"
              " WHERE person_id = (SELECT id FROM persons WHERE name = 'Ann');");
    r = cli_run(NULL, (const char *[]){"--library", lib2, "import", file, NULL});
    assert_int_equal(r.code, 4);
    assert_non_null(strstr(r.out, "1 conflicts"));
    cli_result_free(&r);
    r = cli_run(NULL, (const char *[]){"--library", lib2, "jobs", "errors", "2", "--json", NULL});
    assert_int_equal(r.code, 0);
    assert_non_null(strstr(r.out, "conflict"));
    cli_result_free(&r);

    /* repair after a photo moved: relinked, the names with it */
    char from[900], to[900];
    snprintf(from, sizeof from, "%s/sample1.jpg", photos);
    snprintf(to, sizeof to, "%s/moved.jpg", photos);
    assert_int_equal(rename(from, to), 0);
    r = cli_run(NULL, (const char *[]){"--library", lib, "repair", "--json", NULL});
    assert_int_equal(r.code, 0);
    j = json_loads(r.out, 0, NULL);
    assert_non_null(j);
    json_t *c = json_object_get(json_object_get(j, "progress"), "counters");
    assert_int_equal(json_integer_value(json_object_get(c, "relinked")), 1);
    assert_int_equal(json_integer_value(json_object_get(c, "missing")), 0);
    json_decref(j);
    cli_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_and_no_library),
        cmocka_unit_test(test_round_trip_and_conflict),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
