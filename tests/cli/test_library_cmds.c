/* test_library_cmds.c: the commands that read the library directly, `photos list|show` and
 * `faces list`, run through the built `facenames` program against a temporary library filled by
 * one `ingest` of two sample photos and one empty (bad) file.
 *
 * Nothing here knows how many faces the samples hold: the expectations come from the ingest job's
 * own counters (`jobs show 1 --json`) and from the commands checked against each other (photos list
 * against photos show, faces list against faces list --photo, boxes against the photos' pixels).
 * Relative paths are resolved against the program's working directory, so some runs start in
 * another directory (the harness has no cwd option: the test changes its own directory around the
 * fork and goes back). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <sys/stat.h>

#include "cli_harness.h"

#define N_GOOD 2
static const char *const good_names[N_GOOD] = {"sample1.jpg", "sample2.jpg"};

static char lib[600];                    /* the library */
static char in_dir[600];                 /* the ingested folder, as given to ingest */
static char in_real[PATH_MAX];           /* ... and its real path (what the library stores) */
static char files[N_GOOD + 1][PATH_MAX]; /* real paths: the good photos, then bad.jpg */
static char models[1100];                /* FACENAMES_MODELS_DIR=... for ingest */
static struct cli_result ingest;         /* the ingest run, checked by test_ingest */
static json_t *job;                      /* `jobs show 1 --json` after it */
static int have_samples;

#define N_FILES (N_GOOD + 1)
#define BAD     N_GOOD

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

/* Runs facenames with `args` in the working directory `cwd` (NULL: the test's own). */
static struct cli_result run_in(const char *cwd, const char *const *args)
{
    char here[PATH_MAX];
    if (!getcwd(here, sizeof here)) fail_msg("getcwd failed");
    if (cwd && chdir(cwd) != 0) fail_msg("cannot change to %s", cwd);
    pid_t pid = cli_spawn(NULL, args, "run");
    if (cwd && chdir(here) != 0) fail_msg("cannot change back to %s", here);
    return cli_wait(pid, "run");
}

/* Runs a command that must succeed and print one JSON value; returns it parsed. */
static json_t *run_json(const char *cwd, const char *const *args)
{
    struct cli_result r = run_in(cwd, args);
    json_error_t e;
    json_t *j = r.code == 0 ? json_loads(r.out, 0, &e) : NULL;
    if (!j) {
        print_error("%s: exit %d or bad JSON (%s)\n--- stdout\n%s--- stderr\n%s---\n", args[2],
                    r.code, r.code == 0 ? e.text : "-", r.out, r.err);
        cli_result_free(&r);
        fail();
    }
    cli_result_free(&r);
    return j;
}

static json_int_t counter(const char *name)
{
    json_t *c =
        json_object_get(json_object_get(json_object_get(job, "progress"), "counters"), name);
    if (!json_is_integer(c)) fail_msg("jobs show: no counter %s", name);
    return json_integer_value(c);
}

/* Which of the ingested files `path` is, or -1. */
static int file_index(const char *path)
{
    for (int i = 0; path && i < N_FILES; i++)
        if (strcmp(path, files[i]) == 0) return i;
    return -1;
}

static int group_setup(void **state)
{
    if (harness_group_setup(state) != 0) return -1;
    const char *samples = getenv("FACENAMES_SAMPLES");
    const char *m = getenv("FACENAMES_MODELS");
    if (!samples || !m) return 0; /* every test skips */
    snprintf(models, sizeof models, "FACENAMES_MODELS_DIR=%s", m);
    snprintf(lib, sizeof lib, "%s/lib", harness_tmp);
    snprintf(in_dir, sizeof in_dir, "%s/photos", harness_tmp);
    if (mkdir(in_dir, 0755) != 0) return -1;
    for (int i = 0; i < N_GOOD; i++) {
        char from[1200], to[1200];
        snprintf(from, sizeof from, "%s/%s", samples, good_names[i]);
        snprintf(to, sizeof to, "%s/%s", in_dir, good_names[i]);
        if (copy_file(from, to) != 0) {
            fprintf(stderr, "cannot copy %s to %s\n", from, to);
            return -1;
        }
    }
    char bad[1200];
    snprintf(bad, sizeof bad, "%s/bad.jpg", in_dir);
    FILE *f = fopen(bad, "wb");
    if (!f || fclose(f) != 0) return -1;
    if (!realpath(in_dir, in_real)) return -1;
    for (int i = 0; i < N_FILES; i++)
        snprintf(files[i], sizeof files[i], "%.2000s/%s", in_real,
                 i < N_GOOD ? good_names[i] : "bad.jpg");

    const char *env[] = {models, NULL};
    ingest = cli_run(env, (const char *[]){"--library", lib, "ingest", in_dir, NULL});
    struct cli_result r =
        cli_run(NULL, (const char *[]){"--library", lib, "jobs", "show", "1", "--json", NULL});
    job = r.code == 0 ? json_loads(r.out, 0, NULL) : NULL;
    if (!job)
        fprintf(stderr, "jobs show 1 failed (%d)\n%s%s\ningest (%d):\n%s%s\n", r.code, r.out, r.err,
                ingest.code, ingest.out, ingest.err);
    cli_result_free(&r);
    have_samples = 1;
    return job ? 0 : -1;
}

static int group_teardown(void **state)
{
    cli_result_free(&ingest);
    json_decref(job);
    return harness_group_teardown(state);
}

/* The ingest itself: completed with the bad file as its one error (exit 4), every file seen. */
static void test_ingest(void **state)
{
    (void)state;
    if (!have_samples) skip();
    CHECK(ingest, ingest.code == 4);
    assert_string_equal(json_string_value(json_object_get(job, "state")), "completed");
    assert_int_equal(counter("files_total"), N_FILES);
    assert_int_equal(counter("files_done"), N_FILES);
    assert_int_equal(counter("errors"), 1);
    json_t *errs = json_object_get(job, "errors");
    assert_int_equal(json_array_size(errs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(errs, 0), "item")),
                        files[BAD]);
    assert_true(counter("faces_found") >= 0);
}

/* The error code the job recorded for the bad file. */
static const char *bad_code(void)
{
    const char *c = json_string_value(
        json_object_get(json_array_get(json_object_get(job, "errors"), 0), "code"));
    if (!c || !c[0]) fail_msg("the job has no error code for the bad file");
    return c;
}

/* The line of a table that names `path`, copied into buf; NULL if none. */
static const char *table_line(const char *out, const char *path, char *buf, size_t len)
{
    const char *p = out;
    while (p && *p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        snprintf(buf, len, "%.*s", (int)n, p);
        char *hit = strstr(buf, path);
        /* the whole path, not a prefix of a longer one */
        if (hit && (hit[strlen(path)] == ' ' || hit[strlen(path)] == '\0')) return buf;
        p = nl ? nl + 1 : NULL;
    }
    return NULL;
}

static int has_word(const char *line, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = strstr(line, word); p; p = strstr(p + 1, word))
        if ((p == line || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) return 1;
    return 0;
}

/* `photos list`: one row per file, the good ones ok, the bad one with its error code. */
static void test_photos_list_table(void **state)
{
    (void)state;
    if (!have_samples) skip();
    struct cli_result r = run_in(NULL, (const char *[]){"--library", lib, "photos", "list", NULL});
    CHECK(r, r.code == 0);
    CHECK(r, strstr(r.out, "PATH") && strstr(r.out, "STATUS"));
    int lines = 0;
    for (const char *p = r.out; *p; p++)
        lines += *p == '\n';
    CHECK(r, lines == 1 + N_FILES); /* header + one per file */
    char line[PATH_MAX + 200];
    for (int i = 0; i < N_GOOD; i++) {
        CHECK(r, table_line(r.out, files[i], line, sizeof line));
        CHECK(r, has_word(line, "ok"));
    }
    CHECK(r, table_line(r.out, files[BAD], line, sizeof line));
    CHECK(r, has_word(line, bad_code()));
    CHECK(r, !has_word(line, "ok"));
    cli_result_free(&r);

    /* --status filters; --limit caps */
    json_t *ok = run_json(NULL, (const char *[]){"--library", lib, "photos", "list", "--status",
                                                 "ok", "--json", NULL});
    assert_int_equal(json_array_size(ok), N_GOOD);
    json_decref(ok);
    json_t *err = run_json(NULL, (const char *[]){"--library", lib, "photos", "list", "--status",
                                                  "error", "--json", NULL});
    assert_int_equal(json_array_size(err), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(err, 0), "path")),
                        files[BAD]);
    json_decref(err);
    json_t *one = run_json(
        NULL, (const char *[]){"--library", lib, "photos", "list", "--limit", "1", "--json", NULL});
    assert_int_equal(json_array_size(one), 1);
    json_decref(one);
    /* --under: a relative folder, resolved against the working directory */
    json_t *under = run_json(harness_tmp, (const char *[]){"--library", lib, "photos", "list",
                                                           "--under", "photos", "--json", NULL});
    assert_int_equal(json_array_size(under), N_FILES);
    json_decref(under);
    under = run_json(in_dir, (const char *[]){"--library", lib, "photos", "list", "--under",
                                              "../photos/", "--json", NULL});
    assert_int_equal(json_array_size(under), N_FILES);
    json_decref(under);
    /* the root folder holds every photo (absolute paths) */
    under = run_json(
        NULL, (const char *[]){"--library", lib, "photos", "list", "--under", "/", "--json", NULL});
    assert_int_equal(json_array_size(under), N_FILES);
    json_decref(under);
    under = run_json(in_dir, (const char *[]){"--library", lib, "photos", "list", "--under", "..",
                                              "--status", "ok", "--json", NULL});
    assert_int_equal(json_array_size(under), N_GOOD);
    json_decref(under);
    json_t *none =
        run_json(NULL, (const char *[]){"--library", lib, "photos", "list", "--under", harness_tmp,
                                        "--status", "no_faces", "--json", NULL});
    assert_int_equal(json_array_size(none), counter("no_face_images"));
    json_decref(none);
}

/* `photos list --json`: one object per file with its status, faces summing to the job's count. */
static void test_photos_list_json(void **state)
{
    (void)state;
    if (!have_samples) skip();
    json_t *list =
        run_json(NULL, (const char *[]){"--library", lib, "photos", "list", "--json", NULL});
    assert_true(json_is_array(list));
    assert_int_equal(json_array_size(list), N_FILES);
    int seen[N_FILES] = {0};
    json_int_t faces = 0;
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p)
    {
        int k = file_index(json_string_value(json_object_get(p, "path")));
        if (k < 0) fail_msg("photos list: unexpected path in entry %zu", i);
        assert_int_equal(seen[k]++, 0);
        assert_true(json_is_integer(json_object_get(p, "id")));
        const char *status = json_string_value(json_object_get(p, "status"));
        assert_non_null(status);
        json_int_t n = json_integer_value(json_object_get(p, "faces"));
        if (k == BAD) {
            assert_string_equal(status, "error");
            assert_string_equal(json_string_value(json_object_get(p, "error_code")), bad_code());
            assert_int_equal(n, 0);
            assert_int_equal(json_integer_value(json_object_get(p, "size")), 0);
        } else {
            /* the samples are portraits: ok, with their pixels */
            assert_string_equal(status, "ok");
            assert_true(json_is_null(json_object_get(p, "error_code")));
            assert_true(json_integer_value(json_object_get(p, "width")) > 0);
            assert_true(json_integer_value(json_object_get(p, "height")) > 0);
            assert_true(json_integer_value(json_object_get(p, "size")) > 0);
            assert_true(n >= 1);
        }
        assert_int_equal(json_integer_value(json_object_get(p, "job")), 1);
        faces += n;
    }
    assert_int_equal(faces, counter("faces_found"));
    json_decref(list);
}

/* The `photos list --json` entry of file k. */
static json_t *list_entry(json_t *list, int k)
{
    size_t i;
    json_t *p;
    json_array_foreach(list, i, p)
    {
        if (file_index(json_string_value(json_object_get(p, "path"))) == k) return p;
    }
    fail_msg("photos list has no %s", files[k]);
    return NULL;
}

/* `photos show` by absolute path, by relative path from another directory, by a path with ./ and
 * .. in it, and by id: always the same photo as `photos list` says, with its faces. */
static void test_photos_show(void **state)
{
    (void)state;
    if (!have_samples) skip();
    json_t *list =
        run_json(NULL, (const char *[]){"--library", lib, "photos", "list", "--json", NULL});
    for (int k = 0; k < N_FILES; k++) {
        const char *name = strrchr(files[k], '/') + 1;
        json_t *want = list_entry(list, k);
        char id[32], dotted[PATH_MAX + 40], rel_up[PATH_MAX];
        snprintf(id, sizeof id, "%lld", (long long)json_integer_value(json_object_get(want, "id")));
        snprintf(dotted, sizeof dotted, "%s/./../photos/./%s", in_dir, name);
        snprintf(rel_up, sizeof rel_up, "photos/%s", name);
        struct {
            const char *cwd, *which;
        } ways[] = {{NULL, files[k]}, {in_dir, name},   {harness_tmp, rel_up},
                    {NULL, dotted},   {in_dir, dotted}, {"/", id}};
        for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++) {
            json_t *p = run_json(ways[w].cwd, (const char *[]){"--library", lib, "photos", "show",
                                                               ways[w].which, "--json", NULL});
            if (!json_equal(json_object_get(p, "id"), json_object_get(want, "id")))
                fail_msg("photos show %s (cwd %s): another photo", ways[w].which,
                         ways[w].cwd ? ways[w].cwd : ".");
            assert_string_equal(json_string_value(json_object_get(p, "path")), files[k]);
            assert_true(json_equal(json_object_get(p, "status"), json_object_get(want, "status")));
            assert_true(json_equal(json_object_get(p, "width"), json_object_get(want, "width")));
            assert_true(json_equal(json_object_get(p, "height"), json_object_get(want, "height")));
            json_t *faces = json_object_get(p, "faces");
            assert_true(json_is_array(faces));
            assert_int_equal(json_array_size(faces),
                             json_integer_value(json_object_get(want, "faces")));
            json_decref(p);
        }
        /* a relative path means the working directory's file: not found from elsewhere */
        struct cli_result nf =
            run_in(harness_tmp, (const char *[]){"--library", lib, "photos", "show", name, NULL});
        CHECK(nf, nf.code == 1 && strstr(nf.err, name) && nf.out[0] == '\0');
        cli_result_free(&nf);
        /* the text form names the photo, its status and its faces */
        struct cli_result r =
            run_in(in_dir, (const char *[]){"--library", lib, "photos", "show", name, NULL});
        CHECK(r, r.code == 0);
        CHECK(r, strstr(r.out, files[k]));
        CHECK(r, strstr(r.out, k == BAD ? bad_code() : "ok"));
        int face_lines = 0;
        for (const char *q = strstr(r.out, "    face "); q; q = strstr(q + 1, "    face "))
            face_lines++;
        CHECK(r, face_lines == json_integer_value(json_object_get(want, "faces")));
        cli_result_free(&r);
    }
    json_decref(list);
}

/* Checks one `faces list --json` entry: exactly the documented keys, a known photo, a box inside
 * the photo. Returns the photo's index. */
static int check_face(json_t *f, json_t *photos)
{
    static const char *const keys[] = {"id",     "photo",   "box",   "score",
                                       "person", "cluster", "state", "suggestion"};
    assert_true(json_is_object(f));
    assert_int_equal(json_object_size(f), sizeof keys / sizeof keys[0]);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!json_object_get(f, keys[i])) fail_msg("face without \"%s\"", keys[i]);
    assert_true(json_is_integer(json_object_get(f, "id")));
    json_t *pe = json_object_get(f, "person"), *ce = json_object_get(f, "cluster");
    assert_true(json_is_null(pe) || json_is_integer(pe));
    assert_true(json_is_null(ce) || json_is_integer(ce));
    /* nobody named anything here: every face is as ingest left it */
    assert_string_equal(json_string_value(json_object_get(f, "state")), "auto");
    assert_true(json_is_null(json_object_get(f, "suggestion")));
    double score = json_number_value(json_object_get(f, "score"));
    assert_true(json_is_number(json_object_get(f, "score")) && score > 0 && score <= 1);

    int k = file_index(json_string_value(json_object_get(f, "photo")));
    if (k < 0 || k == BAD) fail_msg("face of an unexpected photo");
    json_t *p = list_entry(photos, k);
    double pw = (double)json_integer_value(json_object_get(p, "width"));
    double ph = (double)json_integer_value(json_object_get(p, "height"));

    json_t *box = json_object_get(f, "box");
    static const char *const bkeys[] = {"x", "y", "width", "height"};
    assert_int_equal(json_object_size(box), 4);
    double v[4];
    for (int i = 0; i < 4; i++) {
        json_t *x = json_object_get(box, bkeys[i]);
        if (!json_is_number(x)) fail_msg("box without a number \"%s\"", bkeys[i]);
        v[i] = json_number_value(x);
    }
    const double eps = 1e-3; /* the printed precision */
    if (!(v[0] >= -eps && v[1] >= -eps && v[2] > 0 && v[3] > 0 && v[0] + v[2] <= pw + eps &&
          v[1] + v[3] <= ph + eps))
        fail_msg("face %lld: box %g,%g %gx%g outside the %gx%g photo",
                 (long long)json_integer_value(json_object_get(f, "id")), v[0], v[1], v[2], v[3],
                 pw, ph);
    return k;
}

/* `faces list --json`: the job's faces, each of an ingested photo, inside it; the table agrees. */
static void test_faces_list(void **state)
{
    (void)state;
    if (!have_samples) skip();
    json_t *photos =
        run_json(NULL, (const char *[]){"--library", lib, "photos", "list", "--json", NULL});
    json_t *faces =
        run_json(NULL, (const char *[]){"--library", lib, "faces", "list", "--json", NULL});
    assert_true(json_is_array(faces));
    json_int_t total = counter("faces_found");
    assert_int_equal(json_array_size(faces), total);
    json_int_t per[N_FILES] = {0};
    size_t i;
    json_t *f;
    json_array_foreach(faces, i, f)
    {
        per[check_face(f, photos)]++;
        for (size_t j = 0; j < i; j++)
            assert_false(json_equal(json_object_get(f, "id"),
                                    json_object_get(json_array_get(faces, j), "id")));
    }
    for (int k = 0; k < N_FILES; k++)
        assert_int_equal(per[k],
                         json_integer_value(json_object_get(list_entry(photos, k), "faces")));

    struct cli_result r = run_in(NULL, (const char *[]){"--library", lib, "faces", "list", NULL});
    CHECK(r, r.code == 0);
    int lines = 0;
    for (const char *p = r.out; *p; p++)
        lines += *p == '\n';
    CHECK(r, total == 0 ? strstr(r.out, "no faces") != NULL : lines == 1 + total);
    cli_result_free(&r);

    if (total > 1) {
        json_t *two = run_json(NULL, (const char *[]){"--library", lib, "faces", "list", "--limit",
                                                      "2", "--json", NULL});
        assert_int_equal(json_array_size(two), 2);
        json_decref(two);
    }
    json_decref(faces);
    json_decref(photos);
}

/* `faces list --photo`: only that photo's faces (the same ones `photos show` lists), summing to the
 * total, by absolute or relative path or id. */
static void test_faces_of_photo(void **state)
{
    (void)state;
    if (!have_samples) skip();
    json_t *photos =
        run_json(NULL, (const char *[]){"--library", lib, "photos", "list", "--json", NULL});
    json_int_t sum = 0;
    for (int k = 0; k < N_FILES; k++) {
        json_t *all = run_json(NULL, (const char *[]){"--library", lib, "faces", "list", "--photo",
                                                      files[k], "--json", NULL});
        size_t i;
        json_t *f;
        json_array_foreach(all, i, f)
        {
            assert_int_equal(check_face(f, photos), k);
        }
        assert_int_equal(json_array_size(all),
                         json_integer_value(json_object_get(list_entry(photos, k), "faces")));
        sum += (json_int_t)json_array_size(all);

        /* the same faces by a relative path and by id, and as photos show has them */
        const char *name = strrchr(files[k], '/') + 1;
        json_t *rel = run_json(in_dir, (const char *[]){"--library", lib, "faces", "list",
                                                        "--photo", name, "--json", NULL});
        assert_true(json_equal(rel, all));
        json_decref(rel);
        char id[32];
        snprintf(id, sizeof id, "%lld",
                 (long long)json_integer_value(json_object_get(list_entry(photos, k), "id")));
        json_t *byid = run_json(NULL, (const char *[]){"--library", lib, "faces", "list", "--photo",
                                                       id, "--json", NULL});
        assert_true(json_equal(byid, all));
        json_decref(byid);
        json_t *show = run_json(
            NULL, (const char *[]){"--library", lib, "photos", "show", id, "--json", NULL});
        json_t *sf = json_object_get(show, "faces");
        assert_int_equal(json_array_size(sf), json_array_size(all));
        for (i = 0; i < json_array_size(all); i++) {
            json_t *a = json_array_get(all, i);
            int found = 0;
            for (size_t j = 0; j < json_array_size(sf); j++)
                found |= json_equal(json_object_get(a, "id"),
                                    json_object_get(json_array_get(sf, j), "id"));
            if (!found) fail_msg("photos show %s lacks a face faces list gives", id);
        }
        json_decref(show);
        json_decref(all);
    }
    assert_int_equal(sum, counter("faces_found"));
    json_decref(photos);
}

/* Bad command lines exit 2, a missing photo exits 1; the message is on stderr, stdout is empty.
 * (`--under` before a bad value also checks, under ASan, that nothing leaks on the error path.) */
static void test_bad_arguments(void **state)
{
    (void)state;
    if (!have_samples) skip();
    char missing[PATH_MAX + 20];
    snprintf(missing, sizeof missing, "%s/missing.jpg", in_real);
    struct {
        const char *args[12];
        int code;
        const char *expect;
    } cases[] = {
        {{"--library", lib, "photos", "list", "--bogus", NULL}, 2, "--bogus"},
        {{"--library", lib, "photos", "list", "--limit", "abc", NULL}, 2, "--limit"},
        {{"--library", lib, "photos", "list", "--limit", "0", NULL}, 2, "--limit"},
        {{"--library", lib, "photos", "list", "--limit", NULL}, 2, "--limit"},
        {{"--library", lib, "photos", "list", "--status", "sleeping", NULL}, 2, "--status"},
        {{"--library", lib, "photos", "list", "--under", in_dir, "--status", "x", NULL},
         2,
         "--status"},
        {{"--library", lib, "photos", "list", "--under", in_dir, "--limit", "abc", NULL},
         2,
         "--limit"},
        {{"--library", lib, "photos", "list", "--under", in_dir, "--under", "/", "--limit", "-1",
          NULL},
         2,
         "--limit"},
        {{"--library", lib, "photos", "list", "--under", in_dir, "extra", NULL}, 2, "extra"},
        {{"--library", lib, "photos", "frobnicate", NULL}, 2, "frobnicate"},
        {{"--library", lib, "photos", NULL}, 2, "usage"},
        {{"--library", lib, "photos", "show", NULL}, 2, "photo"},
        {{"--library", lib, "photos", "show", files[0], files[1], NULL}, 2, files[1]},
        {{"--library", lib, "photos", "show", missing, NULL}, 1, "missing.jpg"},
        {{"--library", lib, "photos", "show", "999999", NULL}, 1, "999999"},
        {{"--library", lib, "faces", "list", "--limit", "abc", NULL}, 2, "--limit"},
        {{"--library", lib, "faces", "list", "--bogus", NULL}, 2, "--bogus"},
        {{"--library", lib, "faces", "list", "--person", "abc", NULL}, 2, "--person"},
        {{"--library", lib, "faces", "list", "--cluster", "-4", NULL}, 2, "--cluster"},
        {{"--library", lib, "faces", "list", "--photo", NULL}, 2, "--photo"},
        {{"--library", lib, "faces", "list", "--photo", missing, NULL}, 1, "missing.jpg"},
        {{"--library", lib, "faces", "frobnicate", NULL}, 2, "frobnicate"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cli_result r = run_in(NULL, cases[i].args);
        if (r.code != cases[i].code || !strstr(r.err, cases[i].expect) || r.out[0] != '\0')
            print_error("case %zu: want exit %d and \"%s\" on stderr\n", i, cases[i].code,
                        cases[i].expect);
        CHECK(r, r.code == cases[i].code);
        CHECK(r, strstr(r.err, cases[i].expect));
        CHECK(r, r.out[0] == '\0');
        cli_result_free(&r);
    }
}

/* --help anywhere prints the usage and exits 0, after an --under too (leak-free under ASan). */
static void test_help(void **state)
{
    (void)state;
    if (!have_samples) skip();
    struct cli_result r = run_in(NULL, (const char *[]){"--library", lib, "photos", "list",
                                                        "--under", in_dir, "--help", NULL});
    CHECK(r, r.code == 0 && strstr(r.out, "usage: facenames photos list") && r.err[0] == '\0');
    cli_result_free(&r);
    r = run_in(NULL, (const char *[]){"--library", lib, "faces", "list", "--photo", files[0],
                                      "--help", NULL});
    CHECK(r, r.code == 0 && strstr(r.out, "usage: facenames faces list") && r.err[0] == '\0');
    cli_result_free(&r);
}

/* A library that does not exist yet has no photos and no faces, and is not created by looking. */
static void test_empty_library(void **state)
{
    (void)state;
    char empty[600];
    lib_path("empty", empty, sizeof empty);
    struct cli_result r =
        run_in(NULL, (const char *[]){"--library", empty, "photos", "list", NULL});
    CHECK(r, r.code == 0 && strstr(r.out, "no photos"));
    cli_result_free(&r);
    json_t *j =
        run_json(NULL, (const char *[]){"--library", empty, "photos", "list", "--json", NULL});
    assert_true(json_is_array(j) && json_array_size(j) == 0);
    json_decref(j);
    j = run_json(NULL, (const char *[]){"--library", empty, "faces", "list", "--json", NULL});
    assert_true(json_is_array(j) && json_array_size(j) == 0);
    json_decref(j);
    r = run_in(NULL, (const char *[]){"--library", empty, "photos", "show", "1", NULL});
    CHECK(r, r.code == 1 && r.err[0] != '\0');
    cli_result_free(&r);
    char db[700];
    snprintf(db, sizeof db, "%s/library.db", empty);
    assert_int_not_equal(access(db, F_OK), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ingest),           cmocka_unit_test(test_photos_list_table),
        cmocka_unit_test(test_photos_list_json), cmocka_unit_test(test_photos_show),
        cmocka_unit_test(test_faces_list),       cmocka_unit_test(test_faces_of_photo),
        cmocka_unit_test(test_bad_arguments),    cmocka_unit_test(test_help),
        cmocka_unit_test(test_empty_library),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
