/* test_reingest.c: a photo ingested again keeps what people decided (issue 9), end to end in
 * engine inline mode. A sample photo is ingested; a person names one face, ignores another, and a
 * third has a suggestion and a rejection (a cannot-link); then the photo is re-encoded at another
 * JPEG quality (its content changes, its faces barely move) and ingested again; then it fails
 * (truncated) and, repaired with the same bytes, is retried. After each, the decided faces keep
 * their ids and decisions and take the new detections' boxes, and no face is stored twice.
 *
 * The expected faces are not copied from an earlier run: a second, fresh library ingests the
 * re-encoded photo, and its faces are what the named library must hold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "facenames/people.h"
#include "helpers.h"
#include "store/store_sql.h" /* white-box: the suggestion and the rejection written directly */

static char *base;

typedef struct decided {
    int64_t ann, bo;        /* persons */
    int64_t named, ignored; /* face ids */
    int64_t suggested;      /* undecided, with a suggestion for Ann and a cannot-link to Bo */
} decided;

typedef struct boxes {
    size_t n;
    float b[64][4];
} boxes;

static int boxes_cb(const fn_face_row *r, void *arg)
{
    boxes *s = arg;
    assert_true(s->n < 64);
    float *b = s->b[s->n++];
    b[0] = r->x, b[1] = r->y, b[2] = r->width, b[3] = r->height;
    return 0;
}

/* The faces a fresh library stores for `photo` (copied into a folder of its own). */
static void fresh_ingest(const char *photo, const char *tag, boxes *out)
{
    char lib[600], dir[600], cmd[1400];
    snprintf(lib, sizeof lib, "%s/lib-%s", base, tag);
    snprintf(dir, sizeof dir, "%s/photos-%s", base, tag);
    h_mkdir("%s%s", dir, "");
    snprintf(cmd, sizeof cmd, "%s/p.jpg", dir);
    h_copy(photo, cmd);
    fn_engine *e = h_engine(lib);
    char payload[1024];
    snprintf(payload, sizeof payload, "{\"paths\": [\"%s\"]}", dir);
    fn_job_info *j = h_run(e, payload, NULL);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    fn_job_info_free(j);
    fn_engine_close(e);
    fn_store *s = h_store(lib);
    out->n = 0;
    assert_int_equal(fn_library_faces_each(s, NULL, boxes_cb, out), 0);
    fn_store_close(s);
}

static fn_library_face *faces_now(fn_library *lib, size_t *n)
{
    fn_library_face *f;
    assert_int_equal(fn_faces_query(lib, NULL, &f, n), 0);
    return f;
}

static const fn_library_face *face_by_id(const fn_library_face *f, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (f[i].id == id) return &f[i];
    fail_msg("face %lld was lost by the re-ingest", (long long)id);
    return NULL;
}

static int64_t count_sql(const char *lib, const char *fmt, long long a, long long b)
{
    char sql[400];
    snprintf(sql, sizeof sql, fmt, a, b);
    fn_store *s = h_store(lib);
    fn_sql_stmt *st;
    assert_int_equal(fn_sql_prepare(s, sql, &st), FN_OK);
    assert_int_equal(fn_sql_step(st), FN_SQL_ROW);
    int64_t v = fn_sql_column_int64(st, 0);
    fn_sql_finalize(st);
    fn_store_close(s);
    return v;
}

/* After a reprocessing whose fresh result is `now`: the library holds as many faces as `now`
 * (nothing doubled), the decided faces kept their rows and decisions, their boxes are boxes of
 * `now` (so they were matched and renewed, not left behind), the rejection is still there and
 * every audit_faces row points at an existing face. */
static void check_decided(const char *lib, const decided *d, const boxes *now)
{
    fn_library *L;
    assert_int_equal(fn_library_open(h_addr(lib), NULL, &L), 0);
    size_t n;
    fn_library_face *f = faces_now(L, &n);
    assert_int_equal(n, now->n);
    const fn_library_face *named = face_by_id(f, n, d->named);
    assert_int_equal(named->person_id, d->ann);
    assert_int_equal(named->state, FN_FACE_CONFIRMED);
    const fn_library_face *ignored = face_by_id(f, n, d->ignored);
    assert_int_equal(ignored->state, FN_FACE_IGNORED);
    assert_int_equal(ignored->person_id, 0);
    const fn_library_face *sug = face_by_id(f, n, d->suggested);
    assert_int_equal(sug->state, FN_FACE_AUTO);
    assert_int_equal(sug->suggestion_person, d->ann);
    const fn_library_face *kept[3] = {named, ignored, sug};
    for (int k = 0; k < 3; k++) {
        int found = 0;
        for (size_t i = 0; i < now->n; i++)
            found |= fabsf(now->b[i][0] - kept[k]->x) < 0.01f &&
                     fabsf(now->b[i][1] - kept[k]->y) < 0.01f &&
                     fabsf(now->b[i][2] - kept[k]->width) < 0.01f &&
                     fabsf(now->b[i][3] - kept[k]->height) < 0.01f;
        assert_true(found);
    }
    fn_library_free(f);
    /* what `facenames faces list` reads (fn_library_faces_each) holds no face twice either */
    size_t listed;
    free(h_faces(lib, &listed));
    assert_int_equal(listed, now->n);
    fn_person *people;
    size_t np;
    assert_int_equal(fn_people_list(L, &people, &np), 0);
    for (size_t i = 0; i < np; i++)
        if (people[i].id == d->ann) assert_int_equal(people[i].confirmed, 1);
    fn_persons_free(people, np);
    fn_library_close(L);
    assert_int_equal(count_sql(lib,
                               "SELECT count(*) FROM cannot_links WHERE face_id = %lld"
                               " AND person_id = %lld",
                               (long long)d->suggested, (long long)d->bo),
                     1);
    assert_int_equal(count_sql(lib,
                               "SELECT count(*) FROM audit_faces a LEFT JOIN faces f"
                               " ON f.id = a.face_id WHERE f.id IS NULL -- %lld %lld",
                               0, 0),
                     0);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *out = fopen(path, "wb");
    assert_non_null(out);
    assert_int_equal(fwrite(data, 1, len, out), len);
    fclose(out);
}

static void test_reingest_keeps_decisions(void **state)
{
    (void)state;
    /* the sample with the most faces (a fresh ingest of each says how many) */
    int k = 0;
    boxes first = {0}, b;
    for (int i = 1; i <= 6; i++) {
        char src[1024], tag[16];
        snprintf(src, sizeof src, "%s/sample%d.jpg", samples_dir(), i);
        snprintf(tag, sizeof tag, "s%d", i);
        fresh_ingest(src, tag, &b);
        if (b.n > first.n) first = b, k = i;
    }
    assert_true(first.n >= 3);

    char lib[600], photos[600], photo[700], tmp[700];
    snprintf(lib, sizeof lib, "%s/lib", base);
    snprintf(photos, sizeof photos, "%s/photos", base);
    snprintf(photo, sizeof photo, "%s/p.jpg", photos);
    snprintf(tmp, sizeof tmp, "%s/reencoded.jpg", base);
    h_mkdir("%s%s", photos, "");
    h_sample(k, photos, "p.jpg");
    char payload[1024];
    snprintf(payload, sizeof payload, "{\"paths\": [\"%s\"]}", photos);
    fn_engine *e = h_engine(lib);
    fn_job_info *j = h_run(e, payload, NULL);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    fn_job_info_free(j);

    /* A person names one face and ignores another. Predict suggested Ann for a third, and a
     * person rejected Bo for it (written directly: predict needs named faces elsewhere). */
    decided d;
    fn_library *L;
    assert_int_equal(fn_library_open(h_addr(lib), NULL, &L), 0);
    size_t n;
    fn_library_face *f = faces_now(L, &n);
    assert_int_equal(n, first.n);
    d.named = f[0].id;
    d.ignored = f[1].id;
    d.suggested = f[2].id;
    fn_library_free(f);
    int64_t audit;
    assert_int_equal(fn_faces_assign_named(L, &d.named, 1, "Ann", &d.ann, &audit), 0);
    assert_int_equal(fn_faces_ignore(L, &d.ignored, 1, &audit), 0);
    assert_int_equal(fn_people_create(L, "Bo", &d.bo, &audit), 0);
    fn_library_close(L);
    fn_store *s = h_store(lib);
    char sql[400];
    snprintf(sql, sizeof sql,
             "INSERT INTO suggestions (face_id, person_id, confidence, distance, margin,"
             " created_at) VALUES (%lld, %lld, 0.8, 0.4, 0.1, 0);"
             "INSERT INTO cannot_links (face_id, person_id, created_at) VALUES (%lld, %lld, 0)",
             (long long)d.suggested, (long long)d.ann, (long long)d.suggested, (long long)d.bo);
    assert_int_equal(fn_sql_exec(s, sql), FN_OK);
    fn_store_close(s);

    /* the content changes: re-encoded at another JPEG quality */
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "vips copy '%s' '%s[Q=80]'", photo, tmp);
    if (system(cmd) != 0) fail_msg("could not re-encode with the vips command: %s", cmd);
    h_copy(tmp, photo);
    boxes now;
    fresh_ingest(tmp, "reencoded", &now);
    j = h_run(e, payload, NULL);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(h_counter(j, "skipped_unchanged"), 0); /* reprocessed */
    assert_int_equal(h_counter(j, "faces_found"), (int64_t)now.n);
    fn_job_info_free(j);
    check_decided(lib, &d, &now);

    /* it fails (truncated: its faces stay), then, repaired with the same bytes, is retried: a
     * retry reprocesses it without the unchanged shortcut */
    FILE *in = fopen(tmp, "rb");
    assert_non_null(in);
    static unsigned char bytes[1 << 23];
    size_t len = fread(bytes, 1, sizeof bytes, in);
    fclose(in);
    assert_true(len > 1000 && len < sizeof bytes);
    write_file(photo, bytes, len / 2);
    fn_job_id failed;
    j = h_run(e, payload, &failed);
    assert_int_equal(h_counter(j, "errors"), 1);
    fn_job_info_free(j);
    check_decided(lib, &d, &now);
    write_file(photo, bytes, len);
    fn_job_id retry;
    assert_int_equal(fn_job_retry(e, failed, NULL, &retry), 0);
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    assert_int_equal(fn_job_inspect(e, retry, &j), 0);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(h_counter(j, "files_total"), 1);
    assert_int_equal(h_counter(j, "faces_found"), (int64_t)now.n);
    fn_job_info_free(j);
    check_decided(lib, &d, &now);
    fn_engine_close(e);
}

static int setup(void **state)
{
    (void)state;
    base = h_tmpdir("reingest");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    h_rmrf(base);
    free(base);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reingest_keeps_decisions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
