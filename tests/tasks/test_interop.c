/* test_interop.c: the repair, export and import jobs end to end, in engine inline mode, on
 * libraries ingested from the sample photos (tiny detector, for speed).
 *
 * Nothing expected is copied from an earlier run: every check compares two things this test
 * computes (the library before and after, a straight run and a cancelled-then-resumed one, our
 * boxes and what exiftool reads back from our sidecars). Decisions (persons, states, rejections,
 * drawn faces) are written with SQL, as the people API would. exiftool (Debian's
 * libimage-exiftool-perl, installed by scripts/bootstrap) writes and reads the XMP the way other
 * photo tools do. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <sqlite3.h>
#include <sys/wait.h>

#include "helpers.h"
#include "tasks/interop.h"

static char *base;
static int serial;

/* ---- fixtures ---------------------------------------------------------------------------------
 */

typedef struct lib {
    char dir[512];    /* the library */
    char photos[512]; /* its photos */
    fn_engine *e;
} lib;

static void lib_new(lib *l, const char *tag)
{
    serial++;
    snprintf(l->dir, sizeof l->dir, "%s/%s%d-lib", base, tag, serial);
    snprintf(l->photos, sizeof l->photos, "%s/%s%d-photos", base, tag, serial);
    h_mkdir("%s%s", l->photos, "");
    l->e = h_engine(l->dir);
}

static void lib_close(lib *l)
{
    fn_engine_close(l->e);
    l->e = NULL;
}

/* Enqueues a job of `type`, runs what is pending inline, returns the job (caller frees). */
static fn_job_info *run(fn_engine *e, const char *type, const char *payload, fn_job_id *id_out)
{
    fn_job_id id;
    int rc = fn_enqueue(e, type, payload, FN_PRIO_NORMAL, &id);
    if (rc != 0) fprintf(stderr, "enqueue %s: %s\n", type, fn_engine_errmsg(e));
    assert_int_equal(rc, 0);
    if (id_out) *id_out = id;
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    fn_job_info *j = NULL;
    assert_int_equal(fn_job_inspect(e, id, &j), 0);
    if (j->state != FN_JOB_COMPLETED) {
        char *s = NULL;
        fn_job_inspect_json(e, id, &s);
        fprintf(stderr, "job %lld: %s\n", (long long)id, s ? s : "?");
        free(s);
    }
    return j;
}

static void ingest(lib *l, const char *path)
{
    char p[1200];
    snprintf(p, sizeof p, "{\"paths\": [\"%s\"], \"detector\": \"tiny\"}", path ? path : l->photos);
    fn_job_info *j = run(l->e, "ingest", p, NULL);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    fn_job_info_free(j);
}

/* These tests check the library with SQLite's own SQL (printf, group_concat) through SQLite
 * itself; on PostgreSQL they skip before opening anything (a skip later would leave its engines'
 * connections open, and the server's connections run out). Export, import and repair on
 * PostgreSQL are covered by test_payloads here and by the store's own SQL being prepared
 * (test_pg_sql). */
#define SKIP_SQLITE_CHECKS()                                                                       \
    FN_SKIP_ON_PG("checks the library with SQLite's own SQL (printf, group_concat) through SQLite")

static sqlite3 *db_of(const lib *l)
{
    char p[600];
    snprintf(p, sizeof p, "%s/library.db", l->dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static void sql(const lib *l, const char *fmt, ...)
{
    char q[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    sqlite3 *db = db_of(l);
    char *err = NULL;
    int rc = sqlite3_exec(db, q, NULL, NULL, &err);
    if (rc != SQLITE_OK) fprintf(stderr, "%s: %s\n", q, err);
    assert_int_equal(rc, SQLITE_OK);
    sqlite3_close(db);
}

static int64_t sql_int(const lib *l, const char *fmt, ...)
{
    char q[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    sqlite3 *db = db_of(l);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, q, -1, &st, NULL);
    if (rc != SQLITE_OK) fprintf(stderr, "%s: %s\n", q, sqlite3_errmsg(db));
    assert_int_equal(rc, SQLITE_OK);
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The rows of a query, one line each, columns separated by '|' (caller frees). */
static char *dump(const lib *l, const char *q)
{
    sqlite3 *db = db_of(l);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, q, -1, &st, NULL);
    if (rc != SQLITE_OK) fprintf(stderr, "%s: %s\n", q, sqlite3_errmsg(db));
    assert_int_equal(rc, SQLITE_OK);
    size_t cap = 1024, len = 0;
    char *out = calloc(1, cap);
    while (sqlite3_step(st) == SQLITE_ROW) {
        for (int i = 0; i < sqlite3_column_count(st); i++) {
            const char *t = (const char *)sqlite3_column_text(st, i);
            size_t n = strlen(t ? t : "NULL") + 2;
            if (len + n + 1 > cap) out = realloc(out, cap = (cap + n) * 2);
            len += (size_t)sprintf(out + len, "%s%c", t ? t : "NULL",
                                   i + 1 < sqlite3_column_count(st) ? '|' : '\n');
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

/* Every face with what was decided about it, by file name (not folder: photos move) and box. */
static const char faces_q[] =
    "SELECT replace(p.path, rtrim(p.path, replace(p.path, '/', '')), ''),"
    " printf('%.2f %.2f %.2f %.2f', f.x, f.y, f.width, f.height), f.state, f.origin,"
    " coalesce(pe.name, '-'), (SELECT group_concat(name) FROM (SELECT q.name FROM cannot_links c"
    " JOIN persons q ON q.id = c.person_id WHERE c.face_id = f.id ORDER BY q.name))"
    " FROM faces f JOIN photos p ON p.id = f.photo_id LEFT JOIN persons pe ON pe.id = f.person_id"
    " ORDER BY 1, 2";

static const char persons_q[] = "SELECT name FROM persons WHERE deleted_at IS NULL ORDER BY name";

/* The first face (by id) of the photo whose path ends with `name`. */
static int64_t face_of(const lib *l, const char *name, int nth)
{
    return sql_int(l,
                   "SELECT f.id FROM faces f JOIN photos p ON p.id = f.photo_id WHERE p.path LIKE "
                   "'%%/%s' ORDER BY f.id LIMIT 1 OFFSET %d",
                   name, nth);
}

/* Decisions on a library of samples 1..3: Ann confirmed, one ignored, Carl by a job with Ann
 * rejected, Dan drawn by a person, Bob confirmed on sample2, Zed without faces. */
static void decide(const lib *l)
{
    int64_t a = face_of(l, "sample1.jpg", 0), b = face_of(l, "sample1.jpg", 1);
    int64_t c = face_of(l, "sample1.jpg", 2), d = face_of(l, "sample2.jpg", 0);
    assert_true(a > 0 && b > 0 && c > 0 && d > 0);
    sql(l,
        "INSERT INTO persons (name, created_at) VALUES ('Ann', 0), ('Bob, Jr. \"B\"', 0),"
        " ('Carl', 0), ('Dan', 0), ('Zed', 0);"
        "UPDATE faces SET person_id = 1, state = 'confirmed' WHERE id = %lld;"
        "UPDATE faces SET state = 'ignored' WHERE id = %lld;"
        "UPDATE faces SET person_id = 3 WHERE id = %lld;"
        "INSERT INTO cannot_links (face_id, person_id, created_at) VALUES (%lld, 1, 0);"
        "UPDATE faces SET person_id = 2, state = 'confirmed' WHERE id = %lld;"
        "INSERT INTO faces (photo_id, x, y, width, height, score, person_id, origin, state,"
        " created_at) SELECT photo_id, 10, 20, 50, 60, 0, 4, 'user', 'confirmed', 0 FROM faces"
        " WHERE id = %lld;",
        (long long)a, (long long)b, (long long)c, (long long)c, (long long)d, (long long)d);
}

static void samples(const lib *l, int from, int to)
{
    for (int k = from; k <= to; k++) {
        char name[32];
        snprintf(name, sizeof name, "sample%d.jpg", k);
        h_sample(k, l->photos, name);
    }
}

/* Runs a shell command; its exit status. */
static int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = 0;
    fclose(f);
    return s;
}

typedef struct cancel_at {
    fn_engine *e;
    fn_job_id id;
    const char *type;
    int at, seen;
} cancel_at;

static void cancel_hook(const char *type, const char *ref, void *arg)
{
    (void)ref;
    cancel_at *c = arg;
    if (strcmp(type, c->type) == 0 && ++c->seen == c->at)
        assert_int_equal(fn_job_cancel(c->e, c->id), 0);
}

/* Enqueues, cancels at the at-th item, resumes; returns both jobs' ids. */
static void cancel_resume(fn_engine *e, const char *type, const char *payload, int at,
                          fn_job_id *first, fn_job_id *second)
{
    assert_int_equal(fn_enqueue(e, type, payload, FN_PRIO_NORMAL, first), 0);
    cancel_at c = {.e = e, .id = *first, .type = type, .at = at};
    fn_interop_test_hook = cancel_hook;
    fn_interop_test_hook_arg = &c;
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    fn_interop_test_hook = NULL;
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(e, *first, &j), 0);
    assert_int_equal(j->state, FN_JOB_CANCELLED);
    fn_job_info_free(j);
    assert_int_equal(fn_job_resume(e, *first, second), 0);
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    assert_int_equal(fn_job_inspect(e, *second, &j), 0);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    fn_job_info_free(j);
}

static int group_setup(void **state)
{
    (void)state;
    base = h_tmpdir("interop");
    if (sh("command -v exiftool >/dev/null") != 0) {
        fprintf(stderr, "exiftool is missing: run scripts/bootstrap (libimage-exiftool-perl)\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    h_rmrf(base);
    free(base);
    return 0;
}

/* ---- export json -> import into an empty library ----------------------------------------------
 */

static void test_round_trip(void **state)
{
    SKIP_SQLITE_CHECKS();
    (void)state;
    lib a, b;
    lib_new(&a, "rt");
    samples(&a, 1, 3);
    ingest(&a, NULL);
    decide(&a);
    char out[600], payload[1400];
    snprintf(out, sizeof out, "%s/export", a.dir);
    assert_int_equal(mkdir(out, 0755), 0);
    snprintf(payload, sizeof payload,
             "{\"format\": \"json\", \"to\": \"%s\", \"with_descriptors\": true}", out);
    fn_job_info *j = run(a.e, "export", payload, NULL);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(h_counter(j, "photos_exported"), 3);
    fn_job_info_free(j);

    lib_new(&b, "rt");
    snprintf(payload, sizeof payload, "{\"path\": \"%s/facenames-export.json\"}", out);
    fn_job_id imp;
    j = run(b.e, "import", payload, &imp);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(h_counter(j, "photos_added"), 3);
    assert_int_equal(h_counter(j, "errors"), 0);
    fn_job_info_free(j);

    /* the same people, faces and decisions */
    char *fa = dump(&a, faces_q), *fb = dump(&b, faces_q);
    assert_string_equal(fa, fb);
    char *pa = dump(&a, persons_q), *pb = dump(&b, persons_q);
    assert_string_equal(pa, pb);
    assert_non_null(strstr(pa, "Zed")); /* a person without faces too */
    /* descriptors and landmarks came over exactly (descriptors to the bit) */
    static const char vec_q[] =
        "SELECT printf('%.2f', f.x), hex(f.descriptor), length(f.landmarks) FROM faces f"
        " ORDER BY f.x";
    char *va = dump(&a, vec_q), *vb = dump(&b, vec_q);
    assert_string_equal(va, vb);
    /* the confirmations are audit entries of the job, written with it */
    char actor[64];
    snprintf(actor, sizeof actor, "job:%lld", (long long)imp);
    assert_true(sql_int(&b, "SELECT count(*) FROM audit_log WHERE actor = '%s' AND job_id = %lld",
                        actor, (long long)imp) >= 1);
    assert_int_equal(sql_int(&b, "SELECT count(*) FROM audit_faces"),
                     sql_int(&b, "SELECT count(*) FROM faces WHERE person_id IS NOT NULL OR"
                                 " state != 'auto'"));
    /* importing the same file again changes nothing */
    j = run(b.e, "import", payload, NULL);
    assert_int_equal(h_counter(j, "photos_matched"), 3);
    assert_int_equal(h_counter(j, "faces_added"), 0);
    assert_int_equal(h_counter(j, "faces_confirmed"), 0);
    fn_job_info_free(j);
    char *fb2 = dump(&b, faces_q);
    assert_string_equal(fa, fb2);
    free(fa), free(fb), free(fb2), free(pa), free(pb), free(va), free(vb);
    lib_close(&a);
    lib_close(&b);
}

/* A cancelled export resumed writes the same file as one straight run; a cancelled import
 * resumed gives the same library. */
static void test_cancel_resume_export_import(void **state)
{
    SKIP_SQLITE_CHECKS();
    (void)state;
    lib a;
    lib_new(&a, "cr");
    samples(&a, 1, 4);
    ingest(&a, NULL);
    decide(&a);
    char d1[600], d2[600], payload[1400];
    snprintf(d1, sizeof d1, "%s/straight", a.dir);
    snprintf(d2, sizeof d2, "%s/resumed", a.dir);
    assert_int_equal(mkdir(d1, 0755), 0);
    assert_int_equal(mkdir(d2, 0755), 0);
    snprintf(payload, sizeof payload, "{\"format\": \"json\", \"to\": \"%s\", \"batch\": 1}", d1);
    fn_job_info *j = run(a.e, "export", payload, NULL);
    fn_job_info_free(j);
    snprintf(payload, sizeof payload, "{\"format\": \"json\", \"to\": \"%s\", \"batch\": 1}", d2);
    fn_job_id first, second;
    cancel_resume(a.e, "export", payload, 2, &first, &second);
    char p1[700], p2[700];
    snprintf(p1, sizeof p1, "%s/facenames-export.json", d1);
    snprintf(p2, sizeof p2, "%s/facenames-export.json", d2);
    json_error_t jerr;
    json_t *x = json_load_file(p1, 0, &jerr), *y = json_load_file(p2, 0, &jerr);
    assert_non_null(x);
    assert_non_null(y);
    json_object_del(x, "exported_at");
    json_object_del(y, "exported_at");
    assert_true(json_equal(x, y));
    assert_int_equal(json_array_size(json_object_get(y, "photos")), 4);
    json_decref(x);
    json_decref(y);
    char part[720];
    snprintf(part, sizeof part, "%s.part", p2);
    assert_int_equal(access(part, F_OK), -1);

    lib b, c;
    lib_new(&b, "cr");
    lib_new(&c, "cr");
    snprintf(payload, sizeof payload, "{\"path\": \"%s\", \"batch\": 1}", p1);
    j = run(b.e, "import", payload, NULL);
    fn_job_info_free(j);
    cancel_resume(c.e, "import", payload, 2, &first, &second);
    char *fb = dump(&b, faces_q), *fc = dump(&c, faces_q);
    assert_string_equal(fb, fc);
    assert_int_equal(sql_int(&c, "SELECT count(*) FROM photos"), 4);
    char *pb = dump(&b, persons_q), *pc = dump(&c, persons_q);
    assert_string_equal(pb, pc);
    free(fb), free(fc), free(pb), free(pc);
    lib_close(&a);
    lib_close(&b);
    lib_close(&c);
}

/* A face confirmed as Ann here and as Bob in the import is an item error and stays Ann. */
static void test_import_conflict(void **state)
{
    SKIP_SQLITE_CHECKS();
    (void)state;
    lib a, b;
    lib_new(&a, "cf");
    samples(&a, 1, 1);
    ingest(&a, NULL);
    int64_t f = face_of(&a, "sample1.jpg", 0);
    sql(&a,
        "INSERT INTO persons (name, created_at) VALUES ('Bob', 0);"
        "UPDATE faces SET person_id = 1, state = 'confirmed' WHERE id = %lld;",
        (long long)f);
    char out[600], payload[1400];
    snprintf(out, sizeof out, "%s/export", a.dir);
    assert_int_equal(mkdir(out, 0755), 0);
    snprintf(payload, sizeof payload, "{\"format\": \"json\", \"to\": \"%s\"}", out);
    fn_job_info_free(run(a.e, "export", payload, NULL));

    /* the same photo in another library, the same face confirmed as Ann */
    lib_new(&b, "cf");
    ingest(&b, a.photos);
    int64_t g = face_of(&b, "sample1.jpg", 0);
    sql(&b,
        "INSERT INTO persons (name, created_at) VALUES ('Ann', 0);"
        "UPDATE faces SET person_id = 1, state = 'confirmed' WHERE id = %lld;",
        (long long)g);
    snprintf(payload, sizeof payload, "{\"path\": \"%s/facenames-export.json\"}", out);
    fn_job_info *j = run(b.e, "import", payload, NULL);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(h_counter(j, "conflicts"), 1);
    assert_int_equal(h_counter(j, "errors"), 1);
    assert_int_equal(j->n_errors, 1);
    assert_string_equal(j->errors[0].code, "conflict");
    assert_non_null(strstr(j->errors[0].message, "Ann"));
    assert_non_null(strstr(j->errors[0].message, "Bob"));
    fn_job_info_free(j);
    assert_int_equal(sql_int(&b,
                             "SELECT count(*) FROM faces f JOIN persons p ON p.id = f.person_id"
                             " WHERE f.id = %lld AND p.name = 'Ann' AND f.state = 'confirmed'",
                             (long long)g),
                     1);
    lib_close(&a);
    lib_close(&b);
}

/* A file that is not an export fails the job with a sentence; an entry without a path is an
 * item error. */
static void test_import_bad_json(void **state)
{
    SKIP_SQLITE_CHECKS();
    (void)state;
    lib a;
    lib_new(&a, "bj");
    char p[700], payload[1400];
    snprintf(p, sizeof p, "%s/other.json", a.photos);
    FILE *f = fopen(p, "w");
    fputs("{\"hello\": 1}", f);
    fclose(f);
    snprintf(payload, sizeof payload, "{\"path\": \"%s\"}", p);
    fn_job_info *j = run(a.e, "import", payload, NULL);
    assert_int_equal(j->state, FN_JOB_FAILED);
    fn_job_info_free(j);
    f = fopen(p, "w");
    fputs("{\"format\": \"facenames-export\", \"version\": 1, \"roots\": [],"
          " \"photos\": [{\"faces\": []}, 7, {\"path\": \"/nowhere/x.jpg\", \"size\": 3,"
          " \"faces\": [{\"box\": {\"x\": 1, \"y\": 2, \"width\": -5, \"height\": 3}}]}],"
          " \"persons\": [{\"name\": \"Solo\"}, {\"name\": 3}]}",
          f);
    fclose(f);
    j = run(a.e, "import", payload, NULL);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(h_counter(j, "errors"), 2); /* two entries without a path */
    assert_string_equal(j->errors[0].code, "bad_entry");
    assert_int_equal(h_counter(j, "photos_added"), 1);
    assert_int_equal(h_counter(j, "faces_added"), 0); /* a box with a negative width is no face */
    fn_job_info_free(j);
    assert_int_equal(sql_int(&a, "SELECT count(*) FROM persons WHERE name = 'Solo'"), 1);
    lib_close(&a);
}

/* ---- xmp --------------------------------------------------------------------------------------
 */

/* exiftool's reading of one sidecar, as JSON (caller decrefs). */
static json_t *exiftool_regions(const char *file)
{
    char out[700];
    snprintf(out, sizeof out, "%s.exiftool.json", file);
    assert_int_equal(sh("exiftool -j -n -XMP-mwg-rs:all -XMP-dc:Title '%s' > '%s'", file, out), 0);
    json_error_t jerr;
    json_t *j = json_load_file(out, 0, &jerr);
    assert_non_null(j);
    json_t *o = json_incref(json_array_get(j, 0));
    json_decref(j);
    return o;
}

typedef struct box_check {
    const lib *l;
    int checked;
} box_check;

/* Every region exiftool lists maps back to its face's box within 1 px, in the photo as displayed
 * (AppliedToDimensions is the displayed size). */
static int check_regions(const lib *l, const char *photo_name, json_t *x)
{
    int64_t w = sql_int(l, "SELECT width FROM photos WHERE path LIKE '%%/%s'", photo_name);
    int64_t h = sql_int(l, "SELECT height FROM photos WHERE path LIKE '%%/%s'", photo_name);
    assert_int_equal(json_integer_value(json_object_get(x, "RegionAppliedToDimensionsW")), w);
    assert_int_equal(json_integer_value(json_object_get(x, "RegionAppliedToDimensionsH")), h);
    json_t *names = json_object_get(x, "RegionName");
    int n = 0;
    for (size_t i = 0; i < json_array_size(names); i++) {
        const char *name = json_string_value(json_array_get(names, i));
        const char *type = json_string_value(json_array_get(json_object_get(x, "RegionType"), i));
        if (strcmp(type, "Face") != 0 || strncmp(name, "P", 1) != 0) continue;
        double cx = json_number_value(json_array_get(json_object_get(x, "RegionAreaX"), i));
        double cy = json_number_value(json_array_get(json_object_get(x, "RegionAreaY"), i));
        double rw = json_number_value(json_array_get(json_object_get(x, "RegionAreaW"), i));
        double rh = json_number_value(json_array_get(json_object_get(x, "RegionAreaH"), i));
        char q[512];
        snprintf(q, sizeof q,
                 "SELECT printf('%%.3f %%.3f %%.3f %%.3f', f.x, f.y, f.width, f.height) FROM faces"
                 " f JOIN persons p ON p.id = f.person_id WHERE p.name = '%s'",
                 name);
        char *row = dump(l, q);
        double fx, fy, fw, fh;
        assert_int_equal(sscanf(row, "%lf %lf %lf %lf", &fx, &fy, &fw, &fh), 4);
        free(row);
        assert_true(fabs((cx - rw / 2) * w - fx) <= 1);
        assert_true(fabs((cy - rh / 2) * h - fy) <= 1);
        assert_true(fabs(rw * w - fw) <= 1);
        assert_true(fabs(rh * h - fh) <= 1);
        n++;
    }
    return n;
}

static void test_xmp_export_exiftool(void **state)
{
    SKIP_SQLITE_CHECKS();
    (void)state;
    lib a;
    lib_new(&a, "xe");
    samples(&a, 1, 2);
    /* the same photo as a camera held sideways would store it: EXIF orientation 6 and 8 */
    h_sample(1, a.photos, "rot6.jpg");
    h_sample(1, a.photos, "rot8.jpg");
    assert_int_equal(sh("exiftool -q -overwrite_original -Orientation#=6 '%s/rot6.jpg' && "
                        "exiftool -q -overwrite_original -Orientation#=8 '%s/rot8.jpg'",
                        a.photos, a.photos),
                     0);
    /* sample2 already has a sidecar from another tool: a title, a pet, a stranger's face, and a
     * face region where our first face of sample2 is (replaced by ours) */
    char side[800];
    snprintf(side, sizeof side, "%s/sample2.jpg.xmp", a.photos);
    assert_int_equal(sh("exiftool -q -o '%s' -XMP-dc:Title=Holiday "
                        "'-XMP-mwg-rs:RegionInfo={AppliedToDimensions={W=1920,H=1367,Unit=pixel},"
                        "RegionList=[{Area={W=0.05,H=0.05,X=0.5,Y=0.9,Unit=normalized},Name=Rex,"
                        "Type=Pet},{Area={W=0.04,H=0.04,X=0.05,Y=0.05,Unit=normalized},"
                        "Name=Stranger,Type=Face}]}'",
                        side),
                     0);
    ingest(&a, NULL);
    assert_int_equal(sql_int(&a, "SELECT width < height FROM photos WHERE path LIKE '%%/rot6.jpg'"),
                     1);
    /* a face drawn on each turned photo (the detector finds few faces lying on their side), so
     * each has regions whatever the detector does */
    sql(&a, "INSERT INTO faces (photo_id, x, y, width, height, score, origin, state, created_at)"
            " SELECT id, 100.5, 1500.25, 300, 200, 0, 'user', 'confirmed', 0 FROM photos WHERE"
            " path LIKE '%%/rot_.jpg'");
    /* every face named P<id> */
    sql(&a, "INSERT INTO persons (id, name, created_at) SELECT id, 'P' || id, 0 FROM faces;"
            "UPDATE faces SET person_id = id, state = 'confirmed';");
    fn_job_info *j = run(a.e, "export", "{\"format\": \"xmp\"}", NULL);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(h_counter(j, "sidecars_written"), 4);
    assert_int_equal(h_counter(j, "faces_exported"), sql_int(&a, "SELECT count(*) FROM faces"));
    fn_job_info_free(j);

    const char *names[] = {"sample1.jpg", "sample2.jpg", "rot6.jpg", "rot8.jpg"};
    for (int i = 0; i < 4; i++) {
        char f[800];
        snprintf(f, sizeof f, "%s/%s.xmp", a.photos, names[i]);
        json_t *x = exiftool_regions(f);
        int n = check_regions(&a, names[i], x);
        assert_int_equal(n, sql_int(&a,
                                    "SELECT count(*) FROM faces f JOIN photos p ON p.id ="
                                    " f.photo_id WHERE p.path LIKE '%%/%s'",
                                    names[i]));
        if (i == 1) {
            /* the other tool's metadata and regions are still there */
            assert_string_equal(json_string_value(json_object_get(x, "Title")), "Holiday");
            json_t *rn = json_object_get(x, "RegionName");
            int rex = 0, stranger = 0;
            for (size_t k = 0; k < json_array_size(rn); k++) {
                rex |= !strcmp(json_string_value(json_array_get(rn, k)), "Rex");
                stranger |= !strcmp(json_string_value(json_array_get(rn, k)), "Stranger");
            }
            assert_true(rex && stranger);
        }
        json_decref(x);
    }
    /* a second export replaces our regions rather than adding them twice */
    fn_job_info_free(run(a.e, "export", "{\"format\": \"xmp\"}", NULL));
    json_t *x = exiftool_regions(side);
    assert_int_equal(json_array_size(json_object_get(x, "RegionName")),
                     2 + sql_int(&a, "SELECT count(*) FROM faces f JOIN photos p ON p.id ="
                                     " f.photo_id WHERE p.path LIKE '%%/sample2.jpg'"));
    json_decref(x);
    /* a sidecar that is not XMP is an item error and stays as it was */
    snprintf(side, sizeof side, "%s/sample1.jpg.xmp", a.photos);
    FILE *f = fopen(side, "w");
    fputs("<x:xmpmeta><rdf:RDF><broken", f);
    fclose(f);
    j = run(a.e, "export", "{\"format\": \"xmp\"}", NULL);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(h_counter(j, "errors"), 1);
    assert_string_equal(j->errors[0].code, "bad_xmp");
    fn_job_info_free(j);
    char *still = slurp(side);
    assert_string_equal(still, "<x:xmpmeta><rdf:RDF><broken");
    free(still);
    lib_close(&a);
}

static void test_xmp_import(void **state)
{
    SKIP_SQLITE_CHECKS();
    (void)state;
    lib a;
    lib_new(&a, "xi");
    samples(&a, 1, 3);
    /* sample2 carries its regions inside the JPEG, written by exiftool before the ingest */
    char photo[800];
    snprintf(photo, sizeof photo, "%s/sample2.jpg", a.photos);
    ingest(&a, NULL);
    /* regions drawn by another tool around our first face of each photo, a little looser */
    char q[256];
    snprintf(q, sizeof q, "%s", "");
    double box[3][4];
    int64_t w[3], h[3];
    const char *files[] = {"sample1.jpg", "sample2.jpg", "sample3.jpg"};
    for (int i = 0; i < 3; i++) {
        char sel[600];
        snprintf(sel, sizeof sel,
                 "SELECT printf('%%f %%f %%f %%f', f.x, f.y, f.width, f.height) FROM faces f JOIN"
                 " photos p ON p.id = f.photo_id WHERE p.path LIKE '%%/%s' ORDER BY f.id LIMIT 1",
                 files[i]);
        char *row = dump(&a, sel);
        assert_int_equal(
            sscanf(row, "%lf %lf %lf %lf", &box[i][0], &box[i][1], &box[i][2], &box[i][3]), 4);
        free(row);
        w[i] = sql_int(&a, "SELECT width FROM photos WHERE path LIKE '%%/%s'", files[i]);
        h[i] = sql_int(&a, "SELECT height FROM photos WHERE path LIKE '%%/%s'", files[i]);
    }
    /* area of a face box grown by 10% on each side */
#define AREA(i)                                                                                    \
    (box[i][0] + box[i][2] / 2) / w[i], (box[i][1] + box[i][3] / 2) / h[i],                        \
        box[i][2] * 1.2 / w[i], box[i][3] * 1.2 / h[i]
    /* sample1: Lightroom's and exiftool's sidecar name (PHOTO.xmp), a face and a region where
     * no face was detected */
    assert_int_equal(sh("exiftool -q -o '%s/sample1.xmp' "
                        "'-XMP-mwg-rs:RegionInfo={RegionList=[{Area={X=%f,Y=%f,W=%f,H=%f,"
                        "Unit=normalized},Name=Dora,Type=Face},{Area={X=0.05,Y=0.05,W=0.04,"
                        "H=0.06,Unit=normalized},Name=Eve,Type=Face}]}'",
                        a.photos, AREA(0)),
                     0);
    /* sample2: embedded in the photo (written after the ingest; the import reads the file) */
    assert_int_equal(sh("exiftool -q -overwrite_original "
                        "'-XMP-mwg-rs:RegionInfo={RegionList=[{Area={X=%f,Y=%f,W=%f,H=%f,"
                        "Unit=normalized},Name=Fay,Type=Face}]}' '%s'",
                        AREA(1), photo),
                     0);
    /* sample3: a malformed sidecar */
    char bad[800];
    snprintf(bad, sizeof bad, "%s/sample3.jpg.xmp", a.photos);
    FILE *f = fopen(bad, "w");
    fputs("<?xpacket begin=''?><x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF><rdf:Description", f);
    fclose(f);
    char payload[1200];
    snprintf(payload, sizeof payload, "{\"path\": \"%s\"}", a.photos);
    fn_job_id id;
    fn_job_info *j = run(a.e, "import", payload, &id);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(h_counter(j, "faces_confirmed"), 3);
    assert_int_equal(h_counter(j, "faces_added"), 1);
    assert_int_equal(h_counter(j, "errors"), 1);
    assert_string_equal(j->errors[0].code, "bad_xmp");
    fn_job_info_free(j);
    /* Dora and Fay confirmed on the detected faces; Eve a face a person drew, where the region
     * is */
    assert_int_equal(sql_int(&a, "SELECT count(*) FROM faces f JOIN persons p ON p.id = f.person_id"
                                 " WHERE p.name IN ('Dora', 'Fay') AND f.state = 'confirmed' AND"
                                 " f.origin = 'auto'"),
                     2);
    int64_t eve = sql_int(&a, "SELECT f.id FROM faces f JOIN persons p ON p.id = f.person_id WHERE"
                              " p.name = 'Eve' AND f.origin = 'user' AND f.state = 'confirmed'");
    assert_true(eve > 0);
    assert_true(
        fabs((double)sql_int(&a, "SELECT round(x) FROM faces WHERE id = %lld", (long long)eve) -
             (0.05 - 0.02) * (double)w[0]) <= 1);
    /* one audit entry by the job, with each face's before and after */
    assert_int_equal(sql_int(&a,
                             "SELECT count(*) FROM audit_log WHERE actor = 'job:%lld' AND"
                             " job_id = %lld AND action = 'import'",
                             (long long)id, (long long)id),
                     1);
    assert_int_equal(sql_int(&a,
                             "SELECT count(*) FROM audit_faces af JOIN audit_log l ON l.id ="
                             " af.audit_id WHERE l.job_id = %lld AND af.state_after = 'confirmed'",
                             (long long)id),
                     3);
    /* a second import finds everything already so */
    j = run(a.e, "import", payload, NULL);
    assert_int_equal(h_counter(j, "faces_confirmed"), 0);
    assert_int_equal(h_counter(j, "faces_added"), 0);
    fn_job_info_free(j);
    /* one sidecar named on its own imports its photo (the malformed one replaced) */
    assert_int_equal(unlink(bad), 0);
    assert_int_equal(sh("exiftool -q -o '%s' '-XMP-mwg-rs:RegionInfo={RegionList=[{Area={X=%f,"
                        "Y=%f,W=%f,H=%f,Unit=normalized},Name=Gus,Type=Face}]}'",
                        bad, AREA(2)),
                     0);
    snprintf(payload, sizeof payload, "{\"path\": \"%s\"}", bad);
    j = run(a.e, "import", payload, NULL);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(h_counter(j, "faces_confirmed"), 1);
    assert_int_equal(h_counter(j, "photos_matched"), 1);
    fn_job_info_free(j);
    assert_int_equal(sql_int(&a, "SELECT count(*) FROM faces f JOIN persons p ON p.id = f.person_id"
                                 " JOIN photos ph ON ph.id = f.photo_id WHERE p.name = 'Gus' AND"
                                 " ph.path LIKE '%%/sample3.jpg' AND f.origin = 'auto'"),
                     1);
    lib_close(&a);
#undef AREA
}

/* ---- repair -----------------------------------------------------------------------------------
 */

static const char library_q[] =
    "SELECT p.id, p.path, p.missing_at IS NOT NULL, p.models, f.id, f.person_id, f.state,"
    " hex(f.descriptor), length(f.thumbnail) FROM photos p LEFT JOIN faces f ON f.photo_id = p.id"
    " ORDER BY p.id, f.id";

static void test_repair_moves(void **state)
{
    SKIP_SQLITE_CHECKS();
    (void)state;
    lib a;
    lib_new(&a, "rp");
    char dir[700];
    snprintf(dir, sizeof dir, "%s/a", a.photos);
    h_mkdir("%s%s", dir, "");
    for (int k = 1; k <= 6; k++) {
        char name[32];
        snprintf(name, sizeof name, "sample%d.jpg", k);
        h_sample(k, dir, name);
    }
    ingest(&a, NULL);
    /* each photo's faces named after the file */
    sql(&a, "INSERT INTO persons (id, name, created_at) SELECT id,"
            " replace(path, rtrim(path, replace(path, '/', '')), ''), 0 FROM photos;"
            "UPDATE faces SET person_id = photo_id, state = 'confirmed';");
    char *names_before = dump(&a, "SELECT p.name, count(*) FROM faces f JOIN persons p ON p.id ="
                                  " f.person_id GROUP BY 1 ORDER BY 1");
    /* half moved to other folders (one renamed on the way), one renamed in place, two deleted;
     * sample6 renamed and ingested again under its new name (its faces are now listed twice) */
    assert_int_equal(sh("cd '%s' && mkdir -p ../b/c ../d && mv sample1.jpg ../b/c/ && "
                        "mv sample2.jpg ../d/two.jpg && mv sample3.jpg three.jpg && "
                        "rm sample4.jpg sample5.jpg && mv sample6.jpg ../d/six.jpg",
                        dir),
                     0);
    char six[800];
    snprintf(six, sizeof six, "%s/d/six.jpg", a.photos);
    ingest(&a, six);
    assert_int_equal(sql_int(&a, "SELECT count(*) FROM photos"), 7);

    fn_job_info *j = run(a.e, "repair", "{\"dry_run\": true, \"detector\": \"tiny\"}", NULL);
    assert_int_equal(h_counter(j, "relinked"), 4);
    assert_int_equal(h_counter(j, "missing"), 2);
    fn_job_info_free(j);
    assert_int_equal(sql_int(&a, "SELECT count(*) FROM photos WHERE missing_at IS NOT NULL"), 0);

    j = run(a.e, "repair", "{\"detector\": \"tiny\"}", NULL);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(h_counter(j, "photos_checked"), 7);
    assert_int_equal(h_counter(j, "relinked"), 4);
    assert_int_equal(h_counter(j, "missing"), 2);
    assert_int_equal(h_counter(j, "pruned"), 0);
    fn_job_info_free(j);
    /* every name kept, on the photos where they are now; the renamed-and-ingested one is listed
     * once */
    char *names_after = dump(&a, "SELECT p.name, count(*) FROM faces f JOIN persons p ON p.id ="
                                 " f.person_id GROUP BY 1 ORDER BY 1");
    assert_string_equal(names_before, names_after);
    assert_int_equal(sql_int(&a, "SELECT count(*) FROM photos"), 6);
    assert_int_equal(sql_int(&a, "SELECT count(*) FROM photos WHERE path LIKE '%%/b/c/sample1.jpg'"
                                 " AND missing_at IS NULL"),
                     1);
    assert_int_equal(sql_int(&a, "SELECT count(*) FROM photos p JOIN faces f ON f.photo_id = p.id"
                                 " JOIN persons q ON q.id = f.person_id WHERE p.path LIKE"
                                 " '%%/d/six.jpg' AND q.name = 'sample6.jpg'"),
                     sql_int(&a, "SELECT count(*) FROM faces f JOIN photos p ON p.id = f.photo_id"
                                 " WHERE p.path LIKE '%%/d/six.jpg'"));
    assert_int_equal(sql_int(&a, "SELECT count(*) FROM photos WHERE missing_at IS NOT NULL AND"
                                 " (path LIKE '%%/sample4.jpg' OR path LIKE '%%/sample5.jpg')"),
                     2);
    /* logged */
    assert_int_equal(sql_int(&a, "SELECT count(*) FROM audit_log WHERE action = 'repair.relink'"),
                     4);

    /* a second repair changes nothing */
    char *lib1 = dump(&a, library_q);
    j = run(a.e, "repair", "{\"detector\": \"tiny\"}", NULL);
    assert_int_equal(h_counter(j, "relinked"), 0);
    assert_int_equal(h_counter(j, "missing"), 2);
    assert_int_equal(h_counter(j, "faces_recomputed"), 0);
    assert_int_equal(h_counter(j, "orphans_removed"), 0);
    fn_job_info_free(j);
    char *lib2 = dump(&a, library_q);
    assert_string_equal(lib1, lib2);

    /* prune removes the gone ones, and the persons only they held */
    j = run(a.e, "repair", "{\"prune\": true, \"detector\": \"tiny\"}", NULL);
    assert_int_equal(h_counter(j, "pruned"), 2);
    assert_int_equal(h_counter(j, "orphans_removed"), 2);
    fn_job_info_free(j);
    assert_int_equal(sql_int(&a, "SELECT count(*) FROM photos"), 4);
    assert_int_equal(sql_int(&a, "SELECT count(*) FROM persons WHERE deleted_at IS NULL"), 4);
    free(names_before), free(names_after), free(lib1), free(lib2);
    lib_close(&a);
}

/* Faces other model files computed, or missing their vectors, are recomputed; the result is what
 * the current models give (the vectors they had); a cancelled repair resumed does each photo
 * once. */
static void test_repair_recompute(void **state)
{
    SKIP_SQLITE_CHECKS();
    (void)state;
    lib a;
    lib_new(&a, "rc");
    samples(&a, 1, 3);
    ingest(&a, NULL);
    char *before = dump(&a, library_q);
    int64_t faces = sql_int(&a, "SELECT count(*) FROM faces");
    assert_true(faces > 3);
    int64_t f2 = face_of(&a, "sample2.jpg", 0);
    /* sample1 "computed by other models"; a face of sample2 lost its descriptor and thumbnail;
     * sample3 both */
    sql(&a,
        "UPDATE photos SET models = '0123456789abcdef' WHERE path LIKE '%%/sample1.jpg' OR path"
        " LIKE '%%/sample3.jpg';"
        "UPDATE faces SET descriptor = NULL, thumbnail = NULL WHERE id = %lld;"
        "UPDATE faces SET landmarks = NULL WHERE photo_id = (SELECT id FROM photos WHERE path LIKE"
        " '%%/sample3.jpg');",
        (long long)f2);
    int64_t want = sql_int(&a, "SELECT count(*) FROM faces f JOIN photos p ON p.id = f.photo_id"
                               " WHERE p.path NOT LIKE '%%/sample2.jpg'") +
                   sql_int(&a, "SELECT count(*) FROM faces f JOIN photos p ON p.id = f.photo_id"
                               " WHERE p.path LIKE '%%/sample2.jpg'");
    fn_job_id first, second;
    cancel_resume(a.e, "repair", "{\"detector\": \"tiny\", \"batch\": 1}", 1, &first, &second);
    fn_job_info *j1, *j2;
    assert_int_equal(fn_job_inspect(a.e, first, &j1), 0);
    assert_int_equal(fn_job_inspect(a.e, second, &j2), 0);
    int64_t r1 = h_counter(j1, "faces_recomputed"), r2 = h_counter(j2, "faces_recomputed");
    /* the resumed job's counters go on from the first's: every face once, none twice */
    assert_true(r1 > 0 && r1 < want);
    assert_int_equal(r2, want);
    assert_int_equal(h_counter(j2, "photos_checked"), 3);
    fn_job_info_free(j1);
    fn_job_info_free(j2);
    char *after = dump(&a, library_q);
    assert_string_equal(before, after);
    free(before), free(after);
    lib_close(&a);
}

static void test_repair_database(void **state)
{
    SKIP_SQLITE_CHECKS();
    (void)state;
    lib a;
    lib_new(&a, "db");
    samples(&a, 1, 1);
    ingest(&a, NULL);
    int64_t f = face_of(&a, "sample1.jpg", 0);
    sql(&a,
        "INSERT INTO persons (name, created_at) VALUES ('Kept', 0), ('Nobody', 0);"
        "UPDATE faces SET person_id = 1 WHERE id = %lld;"
        "INSERT INTO clusters (label, created_at) VALUES ('empty', 0);"
        "PRAGMA foreign_keys = OFF;"
        "UPDATE faces SET cluster_id = 999 WHERE id = %lld;"
        "INSERT INTO faces (photo_id, x, y, width, height, score, created_at)"
        " VALUES (999, 1, 1, 5, 5, 0.5, 0);",
        (long long)f, (long long)f);
    fn_job_info *j = run(a.e, "repair", "{\"dry_run\": true, \"detector\": \"tiny\"}", NULL);
    assert_int_equal(h_counter(j, "integrity_errors"), 2);
    assert_int_equal(h_counter(j, "orphans_removed"), 2);
    fn_job_info_free(j);
    j = run(a.e, "repair", "{\"detector\": \"tiny\"}", NULL);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(h_counter(j, "integrity_errors"), 2);
    assert_int_equal(h_counter(j, "orphans_removed"), 4);
    fn_job_info_free(j);
    assert_int_equal(sql_int(&a, "SELECT count(*) FROM faces WHERE photo_id = 999"), 0);
    assert_int_equal(
        sql_int(&a, "SELECT cluster_id IS NULL FROM faces WHERE id = %lld", (long long)f), 1);
    assert_int_equal(sql_int(&a, "SELECT count(*) FROM clusters"), 0);
    assert_int_equal(
        sql_int(&a, "SELECT deleted_at IS NOT NULL FROM persons WHERE name = 'Nobody'"), 1);
    assert_int_equal(sql_int(&a, "SELECT deleted_at IS NULL FROM persons WHERE name = 'Kept'"), 1);
    assert_int_equal(sql_int(&a, "SELECT count(*) FROM audit_log WHERE action = 'repair.database'"),
                     1);
    j = run(a.e, "repair", "{\"detector\": \"tiny\"}", NULL);
    assert_int_equal(h_counter(j, "integrity_errors"), 0);
    assert_int_equal(h_counter(j, "orphans_removed"), 0);
    fn_job_info_free(j);
    lib_close(&a);
}

/* Payloads are checked at enqueue. */
static void test_payloads(void **state)
{
    (void)state;
    lib a;
    lib_new(&a, "pl");
    fn_job_id id;
    assert_int_not_equal(fn_enqueue(a.e, "export", "{\"format\": \"pdf\"}", FN_PRIO_NORMAL, &id),
                         0);
    assert_int_not_equal(fn_enqueue(a.e, "export", "{}", FN_PRIO_NORMAL, &id), 0);
    assert_int_not_equal(fn_enqueue(a.e, "import", "{}", FN_PRIO_NORMAL, &id), 0);
    assert_int_not_equal(fn_enqueue(a.e, "repair", "{\"prune\": 3}", FN_PRIO_NORMAL, &id), 0);
    /* json without a folder fails with a sentence rather than writing somewhere */
    fn_job_info *j = run(a.e, "export", "{\"format\": \"json\"}", NULL);
    assert_int_equal(j->state, FN_JOB_FAILED);
    fn_job_info_free(j);
    lib_close(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payloads),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_cancel_resume_export_import),
        cmocka_unit_test(test_import_conflict),
        cmocka_unit_test(test_import_bad_json),
        cmocka_unit_test(test_xmp_export_exiftool),
        cmocka_unit_test(test_xmp_import),
        cmocka_unit_test(test_repair_moves),
        cmocka_unit_test(test_repair_recompute),
        cmocka_unit_test(test_repair_database),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
