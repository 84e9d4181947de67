/* test_people_cmds.c: the naming commands end to end through the built `facenames` program, with
 * --json: people list|show|rename|merge|split|delete|sheet, faces assign|move|unassign|ignore,
 * faces list's state and suggestion, suggestions list|accept|reject, undo and audit list, and the
 * refusals (exit 1 naming the fault, exit 2 for a bad command line) that change nothing.
 *
 * The library is filled by one ingest of one sample photo; the face ids come from `faces list
 * --json`, so nothing here knows how many faces the sample holds beyond needing three. The
 * predict job is not on this branch: one suggestion is written with SQLite, as it would write it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "cli_json.h"

static char lib[600];
static char models[1100];
static json_int_t face[3]; /* three face ids of the sample */
static int ready;

static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb");
    FILE *b = fopen(to, "wb");
    int ok = a && b;
    char buf[65536];
    size_t n;
    while (ok && (n = fread(buf, 1, sizeof buf, a)) > 0)
        ok = fwrite(buf, 1, n, b) == n;
    if (a) fclose(a);
    if (b && fclose(b) != 0) ok = 0;
    return ok ? 0 : -1;
}

static int group_setup(void **state)
{
    if (harness_group_setup(state) != 0) return -1;
    const char *samples = getenv("FACENAMES_SAMPLES");
    const char *m = getenv("FACENAMES_MODELS");
    if (!samples || !m) return 0; /* every test skips */
    snprintf(models, sizeof models, "FACENAMES_MODELS_DIR=%s", m);
    snprintf(lib, sizeof lib, "%s/lib", harness_tmp);
    char dir[700], from[1200], to[1200];
    snprintf(dir, sizeof dir, "%s/photos", harness_tmp);
    if (mkdir(dir, 0755) != 0) return -1;
    snprintf(from, sizeof from, "%s/sample1.jpg", samples);
    snprintf(to, sizeof to, "%s/sample1.jpg", dir);
    if (copy_file(from, to) != 0) return -1;
    const char *env[] = {models, NULL};
    struct cli_result r = cli_run(env, (const char *[]){"--library", lib, "ingest", dir, NULL});
    int ok = r.code == 0;
    if (!ok) fprintf(stderr, "ingest failed (%d): %s%s\n", r.code, r.out, r.err);
    cli_result_free(&r);
    if (!ok) return -1;
    json_t *faces =
        cli_run_json(NULL, (const char *[]){"--library", lib, "faces", "list", "--json", NULL});
    if (!faces || json_array_size(faces) < 3) {
        fprintf(stderr, "the sample has fewer than 3 faces\n");
        json_decref(faces);
        return -1;
    }
    for (int i = 0; i < 3; i++)
        face[i] = json_integer_value(json_object_get(json_array_get(faces, (size_t)i), "id"));
    json_decref(faces);
    ready = 1;
    return 0;
}

#define SKIP_UNLESS_READY()                                                                        \
    do {                                                                                           \
        if (!ready) skip();                                                                        \
    } while (0)

static const char *id_str(json_int_t v, char *buf)
{
    sprintf(buf, "%lld", (long long)v);
    return buf;
}

/* Runs a command that must fail with `code`, its stderr containing `says`. */
static void expect_fail(int code, const char *says, const char *const *args)
{
    struct cli_result r = cli_run(NULL, args);
    CHECK(r, r.code == code);
    CHECK(r, strstr(r.err, says) != NULL);
    cli_result_free(&r);
}

/* faces list --json, the face with id `id` (a new reference). */
static json_t *face_json(json_int_t id)
{
    json_t *all =
        cli_run_json(NULL, (const char *[]){"--library", lib, "faces", "list", "--json", NULL});
    assert_non_null(all);
    size_t i;
    json_t *v, *found = NULL;
    json_array_foreach(all, i, v)
    {
        if (json_integer_value(json_object_get(v, "id")) == id) found = json_incref(v);
    }
    json_decref(all);
    assert_non_null(found);
    return found;
}

static json_t *people(void)
{
    json_t *p =
        cli_run_json(NULL, (const char *[]){"--library", lib, "people", "list", "--json", NULL});
    assert_non_null(p);
    return p;
}

static json_int_t person_field(json_t *list, const char *name, const char *field)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "name")), name) == 0)
            return json_integer_value(json_object_get(v, field));
    }
    return -1;
}

static void test_naming_round_trip(void **state)
{
    (void)state;
    SKIP_UNLESS_READY();
    char a[24], b[24], c[24], n[24];
    id_str(face[0], a);
    id_str(face[1], b);
    id_str(face[2], c);

    json_t *j = cli_run_json(NULL, (const char *[]){"--library", lib, "faces", "assign", a, b,
                                                    "--person", "Ann", "--json", NULL});
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "action")), "face.assign");
    assert_int_equal(json_integer_value(json_object_get(j, "faces")), 2);
    json_int_t ann = json_integer_value(json_object_get(j, "person"));
    json_int_t first = json_integer_value(json_object_get(j, "audit"));
    json_decref(j);
    json_t *p = people();
    assert_int_equal(json_array_size(p), 1);
    assert_int_equal(person_field(p, "Ann", "id"), ann);
    assert_int_equal(person_field(p, "Ann", "faces"), 2);
    assert_int_equal(person_field(p, "Ann", "confirmed"), 2);
    json_decref(p);
    json_t *f = face_json(face[0]);
    assert_string_equal(json_string_value(json_object_get(f, "state")), "confirmed");
    assert_int_equal(json_integer_value(json_object_get(f, "person")), ann);
    assert_true(json_is_null(json_object_get(f, "suggestion")));
    assert_non_null(json_object_get(f, "box")); /* the old fields stay */
    json_decref(f);

    /* move wants an existing person; assign creates one */
    expect_fail(1, "no person named \"Bob\"",
                (const char *[]){"--library", lib, "faces", "move", b, "--person", "Bob", NULL});
    j = cli_run_json(NULL, (const char *[]){"--library", lib, "faces", "assign", c, "--person",
                                            "Bob", "--json", NULL});
    json_int_t bob = json_integer_value(json_object_get(j, "person"));
    json_decref(j);
    j = cli_run_json(NULL, (const char *[]){"--library", lib, "faces", "move", b, "--person", "bob",
                                            "--json", NULL});
    assert_string_equal(json_string_value(json_object_get(j, "action")), "face.move");
    json_decref(j);

    /* rename, show */
    j = cli_run_json(NULL, (const char *[]){"--library", lib, "people", "rename", "Ann", "Anna",
                                            "--json", NULL});
    assert_string_equal(json_string_value(json_object_get(j, "action")), "person.rename");
    json_decref(j);
    j = cli_run_json(NULL,
                     (const char *[]){"--library", lib, "people", "show", "anna", "--json", NULL});
    assert_int_equal(json_integer_value(json_object_get(j, "id")), ann);
    assert_int_equal(json_array_size(json_object_get(j, "face_list")), 1);
    json_decref(j);

    /* merge and unmerge */
    j = cli_run_json(
        NULL, (const char *[]){"--library", lib, "people", "merge", "Anna", "Bob", "--json", NULL});
    json_int_t merge = json_integer_value(json_object_get(j, "audit"));
    json_decref(j);
    p = people();
    assert_int_equal(json_array_size(p), 1);
    assert_int_equal(person_field(p, "Bob", "faces"), 3);
    json_decref(p);
    j = cli_run_json(NULL, (const char *[]){"--library", lib, "undo", "--json", NULL});
    assert_string_equal(json_string_value(json_object_get(j, "action")), "undo");
    assert_non_null(strstr(json_string_value(json_object_get(j, "summary")), "Merged"));
    json_decref(j);
    p = people();
    assert_int_equal(json_array_size(p), 2);
    assert_int_equal(person_field(p, "Anna", "faces"), 1);
    json_decref(p);

    /* split, delete, ignore, unassign */
    j = cli_run_json(NULL, (const char *[]){"--library", lib, "people", "split", "Bob", "--name",
                                            "Cleo", b, "--json", NULL});
    json_int_t cleo = json_integer_value(json_object_get(j, "person"));
    assert_true(cleo != bob && cleo > 0);
    json_decref(j);
    f = face_json(face[1]);
    assert_int_equal(json_integer_value(json_object_get(f, "person")), cleo);
    json_decref(f);
    j = cli_run_json(
        NULL, (const char *[]){"--library", lib, "people", "delete", "Cleo", "--json", NULL});
    assert_string_equal(json_string_value(json_object_get(j, "action")), "person.delete");
    json_decref(j);
    f = face_json(face[1]);
    assert_true(json_is_null(json_object_get(f, "person")));
    assert_string_equal(json_string_value(json_object_get(f, "state")), "auto");
    json_decref(f);
    j = cli_run_json(NULL,
                     (const char *[]){"--library", lib, "faces", "ignore", b, "--json", NULL});
    json_decref(j);
    f = face_json(face[1]);
    assert_string_equal(json_string_value(json_object_get(f, "state")), "ignored");
    json_decref(f);
    expect_fail(1, "is ignored",
                (const char *[]){"--library", lib, "faces", "assign", b, "--person", "Bob", NULL});
    j = cli_run_json(NULL,
                     (const char *[]){"--library", lib, "faces", "unassign", b, "--json", NULL});
    json_decref(j);

    /* the first assign cannot be undone: later entries changed its faces */
    snprintf(n, sizeof n, "%lld", (long long)first);
    expect_fail(1, "was changed again by audit entry",
                (const char *[]){"--library", lib, "undo", n, NULL});

    /* the audit: newest first, the merge undone */
    j = cli_run_json(NULL, (const char *[]){"--library", lib, "audit", "list", "--json", NULL});
    assert_true(json_array_size(j) >= 10);
    json_int_t prev = 0;
    size_t i;
    json_t *e;
    json_array_foreach(j, i, e)
    {
        json_int_t id = json_integer_value(json_object_get(e, "id"));
        if (prev) assert_true(id < prev);
        prev = id;
        assert_true(strncmp(json_string_value(json_object_get(e, "actor")), "cli:", 4) == 0);
        assert_non_null(json_object_get(e, "summary"));
        if (id == merge) assert_true(json_is_integer(json_object_get(e, "undone_by")));
    }
    json_decref(j);
    (void)ann;
}

static void test_suggestions_and_sheet(void **state)
{
    (void)state;
    SKIP_UNLESS_READY();
    char a[24], c[24], db[700];
    id_str(face[0], a);
    id_str(face[2], c);
    /* a face without a person, and a suggestion for it as the predict job would write it */
    json_t *j = cli_run_json(NULL, (const char *[]){"--library", lib, "faces", "assign", c,
                                                    "--person", "Dee", "--json", NULL});
    json_int_t dee = json_integer_value(json_object_get(j, "person"));
    json_decref(j);
    j = cli_run_json(NULL,
                     (const char *[]){"--library", lib, "faces", "unassign", a, "--json", NULL});
    json_decref(j);
    snprintf(db, sizeof db, "%s/library.db", lib);
    sqlite3 *s = NULL;
    assert_int_equal(sqlite3_open(db, &s), SQLITE_OK);
    sqlite3_busy_timeout(s, 5000);
    char q[300];
    snprintf(q, sizeof q,
             "INSERT INTO suggestions (face_id, person_id, confidence, distance, margin,"
             " created_at) VALUES (%lld, %lld, 0.75, 0.4, 0.1, 1)",
             (long long)face[0], (long long)dee);
    assert_int_equal(sqlite3_exec(s, q, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(s);

    j = cli_run_json(NULL,
                     (const char *[]){"--library", lib, "suggestions", "list", "--json", NULL});
    assert_int_equal(json_array_size(j), 1);
    json_t *g = json_array_get(j, 0);
    assert_int_equal(json_integer_value(json_object_get(g, "face")), face[0]);
    assert_string_equal(json_string_value(json_object_get(g, "name")), "Dee");
    json_decref(j);
    json_t *f = face_json(face[0]);
    json_t *sg = json_object_get(f, "suggestion");
    assert_int_equal(json_integer_value(json_object_get(sg, "person")), dee);
    assert_string_equal(json_string_value(json_object_get(sg, "name")), "Dee");
    assert_true(json_real_value(json_object_get(sg, "confidence")) > 0.74);
    json_decref(f);

    j = cli_run_json(
        NULL, (const char *[]){"--library", lib, "suggestions", "reject", a, "--json", NULL});
    assert_string_equal(json_string_value(json_object_get(j, "action")), "suggestion.reject");
    json_decref(j);
    expect_fail(1, "no pending suggestion",
                (const char *[]){"--library", lib, "suggestions", "accept", a, NULL});
    j = cli_run_json(NULL, (const char *[]){"--library", lib, "undo", "--json", NULL});
    json_decref(j);
    j = cli_run_json(
        NULL, (const char *[]){"--library", lib, "suggestions", "accept", a, "--json", NULL});
    assert_string_equal(json_string_value(json_object_get(j, "action")), "suggestion.accept");
    json_decref(j);
    f = face_json(face[0]);
    assert_int_equal(json_integer_value(json_object_get(f, "person")), dee);
    assert_string_equal(json_string_value(json_object_get(f, "state")), "confirmed");
    json_decref(f);

    /* the contact sheets */
    char html[700], png[700];
    snprintf(html, sizeof html, "%s/sheet.html", harness_tmp);
    snprintf(png, sizeof png, "%s/sheet.png", harness_tmp);
    struct cli_result r =
        cli_run(NULL, (const char *[]){"--library", lib, "people", "sheet", html, NULL});
    CHECK(r, r.code == 0);
    cli_result_free(&r);
    char *text = slurp(html);
    assert_non_null(strstr(text, "Dee (person"));
    assert_non_null(strstr(text, "data:image/jpeg;base64,/9j/")); /* a JPEG's first bytes */
    free(text);
    r = cli_run(NULL,
                (const char *[]){"--library", lib, "people", "sheet", png, "--max", "1", NULL});
    CHECK(r, r.code == 0);
    cli_result_free(&r);
    FILE *pf = fopen(png, "rb");
    assert_non_null(pf);
    unsigned char magic[8] = {0};
    assert_int_equal(fread(magic, 1, 8, pf), 8);
    fclose(pf);
    assert_memory_equal(magic, "\x89PNG\r\n\x1a\n", 8);
    expect_fail(2, "OUT.html or OUT.png",
                (const char *[]){"--library", lib, "people", "sheet", "x.txt", NULL});
}

/* Refusals say why and change nothing (the audit and the persons are compared). */
static void test_bad_input(void **state)
{
    (void)state;
    SKIP_UNLESS_READY();
    char a[24];
    id_str(face[0], a);
    json_t *p0 = people();
    json_t *a0 =
        cli_run_json(NULL, (const char *[]){"--library", lib, "audit", "list", "--json", NULL});
    if (json_array_size(p0) == 0) {
        json_t *j = cli_run_json(NULL, (const char *[]){"--library", lib, "faces", "assign", a,
                                                        "--person", "Eve", "--json", NULL});
        json_decref(j);
        json_decref(p0);
        json_decref(a0);
        p0 = people();
        a0 =
            cli_run_json(NULL, (const char *[]){"--library", lib, "audit", "list", "--json", NULL});
    }
    const char *who = json_string_value(json_object_get(json_array_get(p0, 0), "name"));
    expect_fail(
        1, "no face 999999",
        (const char *[]){"--library", lib, "faces", "assign", "999999", "--person", who, NULL});
    expect_fail(1, "into itself",
                (const char *[]){"--library", lib, "people", "merge", who, who, NULL});
    expect_fail(1, "empty", (const char *[]){"--library", lib, "people", "rename", who, " ", NULL});
    expect_fail(1, "at most 200 bytes",
                (const char *[]){"--library", lib, "faces", "assign", a, "--person",
                                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                                 "xxxxxxxxxxxxxxx",
                                 NULL});
    expect_fail(1, "no person named",
                (const char *[]){"--library", lib, "people", "show", "Nobody", NULL});
    expect_fail(1, "no audit entry 99999",
                (const char *[]){"--library", lib, "undo", "99999", NULL});
    expect_fail(2, "at least one face id",
                (const char *[]){"--library", lib, "faces", "assign", "--person", who, NULL});
    expect_fail(2, "--person", (const char *[]){"--library", lib, "faces", "assign", a, NULL});
    expect_fail(2, "not a face id",
                (const char *[]){"--library", lib, "faces", "ignore", "abc", NULL});
    expect_fail(2, "--name", (const char *[]){"--library", lib, "people", "split", who, a, NULL});
    expect_fail(2, "unknown subcommand",
                (const char *[]){"--library", lib, "people", "frobnicate", NULL});
    json_t *p1 = people();
    json_t *a1 =
        cli_run_json(NULL, (const char *[]){"--library", lib, "audit", "list", "--json", NULL});
    assert_true(json_equal(p0, p1));
    assert_true(json_equal(a0, a1));
    json_decref(p0);
    json_decref(p1);
    json_decref(a0);
    json_decref(a1);
}

static void test_help_and_empty(void **state)
{
    (void)state;
    struct cli_result r = cli_run(NULL, (const char *[]){"help", NULL});
    CHECK(r, r.code == 0);
    CHECK(r, strstr(r.out, "people SUBCOMMAND") && strstr(r.out, "undo [AUDIT_ID]") &&
                 strstr(r.out, "suggestions list") && strstr(r.out, "audit list") &&
                 strstr(r.out, "faces assign"));
    cli_result_free(&r);
    /* no library: reading says so and creates nothing, writing is refused */
    char empty[700];
    snprintf(empty, sizeof empty, "%s/none", harness_tmp);
    json_t *j =
        cli_run_json(NULL, (const char *[]){"--library", empty, "people", "list", "--json", NULL});
    assert_int_equal(json_array_size(j), 0);
    json_decref(j);
    expect_fail(1, "no library",
                (const char *[]){"--library", empty, "faces", "ignore", "1", NULL});
    struct stat st;
    assert_int_not_equal(stat(empty, &st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_naming_round_trip),
        cmocka_unit_test(test_suggestions_and_sheet),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_help_and_empty),
    };
    return cmocka_run_group_tests(tests, group_setup, harness_group_teardown);
}
