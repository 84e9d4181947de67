/* test_library.c: the library schema and its rows: migration is idempotent, a photo is upserted
 * by path and its auto faces replaced (user faces kept), a failure keeps the faces, a touch only
 * moves the mtime, vectors round-trip bit for bit, listings filter and order, a rolled-back
 * batch leaves nothing, and a re-ingest keeps the faces people decided (matched by box overlap).
 * The interop reads give the same text and counts on both backends. With FN_TEST_BACKEND=pg
 * (suite tasks-pg) the library is a fresh PostgreSQL database. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "facenames/error.h"
#include "store/library/library_interop.h"
#include "store/library/library_store.h"
#include "store/store_sql.h" /* white-box: raw SQL on the test's connection */
#include "tasks/backend.h"

static char dir[256];
static fn_store *s;

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/fn-lib-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[600], err[256];
    if (fn_test_on_pg()) {
        char *url = h_library_at(dir);
        snprintf(path, sizeof path, "%s", url);
        free(url);
    } else {
        snprintf(path, sizeof path, "%s/library.db", dir);
    }
    if (fn_store_open(path, 1000, &s, err, sizeof err) != 0) fail_msg("open: %s", err);
    assert_int_equal(fn_library_migrate(s), 0);
    assert_int_equal(fn_library_migrate(s), 0); /* idempotent */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fn_store_close(s);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static float lm[3][68][2], desc[3][128];
static const uint8_t thumb[] = {0xff, 0xd8, 0xff, 0xd9};

static fn_face_put face(int i)
{
    for (int k = 0; k < 68; k++) {
        lm[i][k][0] = (float)(i * 100 + k) + 0.25f;
        lm[i][k][1] = (float)k * 0.5f;
    }
    for (int k = 0; k < 128; k++)
        desc[i][k] = (float)(k - 64) / 64.0f + (float)i * 1e-3f;
    fn_face_put f = {.x = 10.5f * (float)(i + 1),
                     .y = 20,
                     .width = 50,
                     .height = 60,
                     .score = 0.9f,
                     .landmarks = (const float(*)[2])lm[i],
                     .descriptor = desc[i],
                     .thumb_jpeg = thumb,
                     .thumb_len = sizeof thumb};
    return f;
}

static int put(const fn_photo_put *p, size_t n)
{
    fn_store_tx *tx;
    assert_int_equal(fn_store_begin(s, &tx), 0);
    int rc = fn_library_put_photos(tx, p, n, NULL);
    if (rc == 0)
        rc = fn_store_commit(tx);
    else
        fn_store_rollback(tx);
    return rc;
}

static int count_cb(const fn_face_row *r, void *arg)
{
    (void)r;
    (*(int *)arg)++;
    return 0;
}

static int faces_of(int64_t photo_id)
{
    int n = 0;
    fn_face_filter f = {.photo_id = photo_id};
    assert_int_equal(fn_library_faces_each(s, &f, count_cb, &n), 0);
    return n;
}

static int check_vectors_cb(const fn_face_row *r, void *arg)
{
    int *i = arg;
    assert_true(r->has_landmarks && r->has_descriptor);
    assert_memory_equal(r->landmarks, lm[*i], sizeof lm[0]);
    assert_memory_equal(r->descriptor, desc[*i], sizeof desc[0]);
    assert_int_equal(r->thumb_len, sizeof thumb);
    assert_non_null(strstr(r->photo_path, "/photos/a.jpg"));
    (*i)++;
    return 0;
}

static void test_put_lookup_replace(void **state)
{
    (void)state;
    fn_face_put faces[2] = {face(0), face(1)};
    fn_photo_put p = {.kind = FN_PUT_RESULT,
                      .path = "/photos/a.jpg",
                      .size = 1000,
                      .mtime_ns = 123456789,
                      .hash = 0xfeedbeefULL,
                      .width = 640,
                      .height = 480,
                      .taken_at = 1700000000,
                      .format = "jpeg",
                      .faces = faces,
                      .n_faces = 2,
                      .faces_skipped_small = 3,
                      .job_id = 7};
    fn_photo_put q = {.kind = FN_PUT_RESULT,
                      .path = "/photos/b.jpg",
                      .size = 5,
                      .mtime_ns = 1,
                      .taken_at = -1,
                      .job_id = 7};
    fn_photo_put both[2] = {p, q};
    assert_int_equal(put(both, 2), 0);

    fn_library_reader *r;
    assert_int_equal(fn_library_reader_new(s, &r), 0);
    fn_photo_row row;
    assert_int_equal(fn_library_photo_by_path(r, "/photos/a.jpg", &row), 0);
    assert_int_equal(row.size, 1000);
    assert_int_equal(row.mtime_ns, 123456789);
    assert_true(row.hash == 0xfeedbeefULL);
    assert_int_equal(row.width, 640);
    assert_int_equal(row.taken_at, 1700000000);
    assert_string_equal(row.format, "jpeg");
    assert_int_equal(row.status, FN_PHOTO_OK);
    assert_int_equal(row.n_faces, 2);
    assert_int_equal(row.faces_skipped_small, 3);
    assert_int_equal(row.job_id, 7);
    int64_t id = row.id;
    fn_photo_row_clear(&row);
    assert_int_equal(fn_library_photo_by_path(r, "/photos/none.jpg", &row), FN_ERR_NOT_FOUND);
    assert_int_equal(fn_library_photo_by_path(r, "/photos/b.jpg", &row), 0);
    assert_int_equal(row.status, FN_PHOTO_NO_FACES);
    assert_int_equal(row.taken_at, -1);
    fn_photo_row_clear(&row);

    int i = 0;
    fn_face_filter f = {.photo_id = id, .with_vectors = 1};
    assert_int_equal(fn_library_faces_each(s, &f, check_vectors_cb, &i), 0);
    assert_int_equal(i, 2);

    /* a user-drawn face survives re-ingest; auto faces are replaced */
    char sql[200];
    snprintf(sql, sizeof sql,
             "INSERT INTO faces (photo_id, x, y, width, height, score, origin, created_at)"
             " VALUES (%lld, 1, 1, 5, 5, 1, 'user', 0)",
             (long long)id);
    assert_int_equal(fn_sql_exec(s, sql), FN_OK);
    fn_face_put one = face(2);
    p.faces = &one;
    p.n_faces = 1;
    p.size = 1001;
    assert_int_equal(put(&p, 1), 0);
    assert_int_equal(faces_of(id), 2); /* 1 new auto + 1 user */
    assert_int_equal(fn_library_photo_by_path(r, "/photos/a.jpg", &row), 0);
    assert_int_equal(row.id, id); /* same row, upserted */
    assert_int_equal(row.size, 1001);
    fn_photo_row_clear(&row);

    /* a failure keeps the faces and records the code */
    fn_photo_put e = {.kind = FN_PUT_ERROR,
                      .path = "/photos/a.jpg",
                      .size = 3,
                      .mtime_ns = 9,
                      .error_code = "corrupt"};
    assert_int_equal(put(&e, 1), 0);
    assert_int_equal(faces_of(id), 2);
    assert_int_equal(fn_library_photo_by_id(r, id, &row), 0);
    assert_int_equal(row.status, FN_PHOTO_ERROR);
    assert_string_equal(row.error_code, "corrupt");
    fn_photo_row_clear(&row);

    /* a touch moves only the mtime */
    fn_photo_put t = {.kind = FN_PUT_TOUCH, .path = "/photos/b.jpg", .mtime_ns = 42};
    assert_int_equal(put(&t, 1), 0);
    assert_int_equal(fn_library_photo_by_path(r, "/photos/b.jpg", &row), 0);
    assert_int_equal(row.mtime_ns, 42);
    assert_int_equal(row.size, 5);
    fn_photo_row_clear(&row);
    fn_library_reader_free(r);
}

static int list_cb(const fn_photo_row *r, void *arg)
{
    char *out = arg;
    strcat(out, r->path);
    strcat(out, " ");
    return 0;
}

static void test_listing_and_counts(void **state)
{
    (void)state;
    fn_photo_put p[3] = {
        {.kind = FN_PUT_RESULT, .path = "/photos/sub/c.jpg", .size = 1, .taken_at = -1},
        {.kind = FN_PUT_RESULT, .path = "/photos/sub0.jpg", .size = 1, .taken_at = -1},
        {.kind = FN_PUT_ERROR, .path = "/other/d.jpg", .size = 1, .error_code = "truncated"},
    };
    assert_int_equal(put(p, 3), 0);
    char out[1024] = "";
    fn_photo_filter f = {.status = -1, .path_prefix = "/photos/sub/"};
    assert_int_equal(fn_library_photos_each(s, &f, list_cb, out), 0);
    assert_string_equal(out, "/photos/sub/c.jpg ");
    out[0] = 0;
    f.path_prefix = "/photos";
    f.limit = 2;
    assert_int_equal(fn_library_photos_each(s, &f, list_cb, out), 0);
    assert_string_equal(out, "/photos/a.jpg /photos/b.jpg ");
    out[0] = 0;
    fn_photo_filter e = {.status = FN_PHOTO_ERROR};
    assert_int_equal(fn_library_photos_each(s, &e, list_cb, out), 0);
    assert_string_equal(out, "/other/d.jpg /photos/a.jpg ");
    fn_library_counts c;
    assert_int_equal(fn_library_count(s, &c), 0);
    assert_int_equal(c.photos, 5);
    assert_int_equal(c.photos_error, 2);
    assert_int_equal(c.faces, 2);
    uint8_t *jpeg;
    size_t len;
    /* face 2: a.jpg's second face, renewed in place by test_put_lookup_replace's re-ingest */
    assert_int_equal(fn_library_face_thumbnail(s, 2, &jpeg, &len), 0);
    assert_int_equal(len, sizeof thumb);
    free(jpeg);
}

static int fail_write(fn_store_tx *tx)
{
    fn_face_put f = face(0);
    fn_photo_put p = {.kind = FN_PUT_RESULT,
                      .path = "/photos/rolled.jpg",
                      .faces = &f,
                      .n_faces = 1,
                      .taken_at = -1};
    assert_int_equal(fn_library_put_photos(tx, &p, 1, NULL), 0);
    return FN_ERR_IO;
}

static void test_rollback_leaves_nothing(void **state)
{
    (void)state;
    fn_library_counts before, after;
    assert_int_equal(fn_library_count(s, &before), 0);
    fn_store_tx *tx;
    assert_int_equal(fn_store_begin(s, &tx), 0);
    assert_int_equal(fail_write(tx), FN_ERR_IO);
    fn_store_rollback(tx);
    assert_int_equal(fn_library_count(s, &after), 0);
    assert_int_equal(after.photos, before.photos);
    assert_int_equal(after.faces, before.faces);
}

/* One integer from the test's connection (the first column of the first row; -1 when no row). */
static int64_t q1(const char *fmt, long long arg)
{
    char sql[400];
    snprintf(sql, sizeof sql, fmt, arg);
    fn_sql_stmt *st;
    assert_int_equal(fn_sql_prepare(s, sql, &st), FN_OK);
    int64_t v = -1;
    int rc = fn_sql_step(st);
    if (rc == FN_SQL_ROW) v = fn_sql_column_int64(st, 0);
    assert_true(rc == FN_SQL_ROW || rc == FN_SQL_DONE);
    fn_sql_finalize(st);
    return v;
}

static void run_sql(const char *fmt, long long a, long long b)
{
    char sql[400];
    snprintf(sql, sizeof sql, fmt, a, b);
    assert_int_equal(fn_sql_exec(s, sql), FN_OK);
}

/* A detection at (x, y) with the vectors of face(v). */
static fn_face_put face_at(int v, float x, float y)
{
    fn_face_put f = face(v);
    f.x = x;
    f.y = y;
    return f;
}

/* Issue 9: a re-ingest (changed content, or a retry) never drops what a person decided. Five
 * faces, 50x60 and far apart: A confirmed to Ann (with an audit entry), B ignored, C undecided with
 * a suggestion and a cannot-link, D undecided, E confirmed to Ann. The new detections move A, B and
 * C by a few pixels, miss D and E, and add two: A2 (overlapping A, IoU 0.67, listed before the
 * closer A1 so a first-come match would pick it) and N far away. */
static void test_reingest_keeps_decisions(void **state)
{
    (void)state;
    const float xs[5] = {0, 100, 200, 300, 400};
    fn_face_put first[5];
    for (int i = 0; i < 5; i++)
        first[i] = face_at(0, xs[i], 20);
    fn_photo_put p = {.kind = FN_PUT_RESULT,
                      .path = "/photos/keep.jpg",
                      .size = 10,
                      .taken_at = -1,
                      .faces = first,
                      .n_faces = 5};
    assert_int_equal(put(&p, 1), 0);
    int64_t photo = q1("SELECT id FROM photos WHERE path = '/photos/keep.jpg' -- %lld", 0);
    int64_t id[5];
    for (int i = 0; i < 5; i++) {
        char fmt[200];
        snprintf(fmt, sizeof fmt, "SELECT id FROM faces WHERE photo_id = %%lld AND x = %g",
                 (double)xs[i]);
        id[i] = q1(fmt, (long long)photo);
        assert_true(id[i] > 0);
    }
    run_sql("INSERT INTO persons (id, name, created_at) VALUES (%lld, 'Ann', 0), (%lld, 'Bo', 0)",
            901, 902);
    run_sql("INSERT INTO clusters (id, created_at) VALUES (%lld, 0) -- %lld", 77, 0);
    run_sql(
        "UPDATE faces SET person_id = 901, state = 'confirmed', cluster_id = 77, cluster_run = 5"
        " WHERE id IN (%lld, %lld)",
        (long long)id[0], (long long)id[4]);
    run_sql("UPDATE faces SET state = 'ignored' WHERE id = %lld -- %lld", (long long)id[1], 0);
    run_sql("INSERT INTO suggestions (face_id, person_id, confidence, distance, margin, created_at)"
            " VALUES (%lld, %lld, 0.9, 0.3, 0.1, 0)",
            (long long)id[2], 901);
    run_sql("INSERT INTO cannot_links (face_id, person_id, created_at) VALUES (%lld, %lld, 0)",
            (long long)id[2], 902);
    run_sql("INSERT INTO audit_log (id, at, actor, action) VALUES (%lld, 0, 'user', 'face.assign')"
            " -- %lld",
            55, 0);
    run_sql("INSERT INTO audit_faces (audit_id, face_id, person_after, state_before, state_after)"
            " VALUES (55, %lld, %lld, 'auto', 'confirmed')",
            (long long)id[0], 901);

    fn_face_put again[5] = {
        face_at(2, xs[0] + 10, 20), /* A2 */
        face_at(1, xs[0] + 2, 21),  /* A1: A, moved a little */
        face_at(1, xs[1] - 2, 20),  /* B */
        face_at(1, xs[2] + 1, 19),  /* C */
        face_at(1, 600, 20),        /* N */
    };
    p.faces = again;
    p.size = 11;
    for (int round = 0; round < 2; round++) { /* a changed photo, then a retry of the same */
        assert_int_equal(put(&p, 1), 0);
        /* A keeps its row, person, state and cluster; its box and vectors are the new ones */
        assert_int_equal(q1("SELECT person_id FROM faces WHERE id = %lld", (long long)id[0]), 901);
        assert_int_equal(q1("SELECT state = 'confirmed' AND cluster_id = 77 AND cluster_run = 5"
                            " FROM faces WHERE id = %lld",
                            (long long)id[0]),
                         1);
        assert_int_equal(q1("SELECT x = 2 AND y = 21 FROM faces WHERE id = %lld", (long long)id[0]),
                         1);
        fn_sql_stmt *st;
        assert_int_equal(
            fn_sql_prepare(s, "SELECT descriptor, landmarks FROM faces WHERE id = ?1", &st), FN_OK);
        fn_sql_bind_int64(st, 1, id[0]);
        assert_int_equal(fn_sql_step(st), FN_SQL_ROW);
        assert_memory_equal(fn_sql_column_blob(st, 0), desc[1], sizeof desc[1]);
        assert_memory_equal(fn_sql_column_blob(st, 1), lm[1], sizeof lm[1]);
        fn_sql_finalize(st);
        assert_int_equal(q1("SELECT count(*) FROM audit_faces a JOIN faces f ON f.id = a.face_id"
                            " WHERE a.audit_id = 55 -- %lld",
                            0),
                         1);
        /* B stays ignored; C keeps its suggestion and cannot-link */
        assert_int_equal(
            q1("SELECT state = 'ignored' AND x = 98 FROM faces WHERE id = %lld", (long long)id[1]),
            1);
        assert_int_equal(
            q1("SELECT person_id FROM suggestions WHERE face_id = %lld", (long long)id[2]), 901);
        assert_int_equal(
            q1("SELECT person_id FROM cannot_links WHERE face_id = %lld", (long long)id[2]), 902);
        /* D (nobody decided, not found again) is gone; E (Ann's, not found again) stays as it was
         */
        assert_int_equal(q1("SELECT count(*) FROM faces WHERE id = %lld", (long long)id[3]), 0);
        assert_int_equal(
            q1("SELECT person_id = 901 AND state = 'confirmed' AND x = 400 FROM faces WHERE id = "
               "%lld",
               (long long)id[4]),
            1);
        /* A2 and N are new faces; nothing doubled: A, B, C, E, A2, N */
        assert_int_equal(q1("SELECT count(*) FROM faces WHERE photo_id = %lld AND x IN (10, 600)"
                            " AND state = 'auto' AND person_id IS NULL",
                            (long long)photo),
                         2);
        assert_int_equal(faces_of(photo), 6);
    }
}

static int face_path_cb(const fn_face_row *r, void *arg)
{
    strcat(arg, r->photo_path);
    strcat(arg, " ");
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Listings and the folder-prefix test follow byte order, as on SQLite, whatever the server's
 * collation: on PostgreSQL the library is a database whose default collation is ICU's en-US
 * (which sorts "a" before "B", and would put "/p/DIR/c.jpg" between "/p/dir/" and "/p/dir0"). The
 * expected order is strcmp's. */
static void test_byte_order_on_any_collation(void **state)
{
    (void)state;
    char dir2[64] = "/tmp/fn-lib2-XXXXXX", path[600], err[256];
    assert_non_null(mkdtemp(dir2));
    if (fn_test_on_pg()) {
        const char *base = fn_pg_fixture_start();
        fn_pg_conn *c = fn_pg_fixture_connect(base);
        int rc = fn_pg_exec(c, "CREATE DATABASE icu_lib TEMPLATE template0 LOCALE_PROVIDER icu"
                               " ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'");
        if (rc) fprintf(stderr, "skipped: no ICU collation here: %s\n", fn_pg_errmsg(c));
        fn_pg_close(c);
        if (rc) skip();
        snprintf(path, sizeof path, "postgresql:///icu_lib%s", strchr(base, '?'));
    } else {
        snprintf(path, sizeof path, "%s/library.db", dir2);
    }
    fn_store *keep = s;
    if (fn_store_open(path, 1000, &s, err, sizeof err) != 0) fail_msg("open: %s", err);
    assert_int_equal(fn_library_migrate(s), 0);
    const char *paths[] = {"/p/dir/a.jpg", "/p/dir/B.jpg", "/p/DIR/c.jpg", "/p/dir-x/d.jpg",
                           "/p/dir/_e.jpg"};
    enum { N = sizeof paths / sizeof paths[0] };
    fn_photo_put p[N];
    fn_face_put fc[N];
    for (int i = 0; i < N; i++) {
        fc[i] = face(0);
        p[i] = (fn_photo_put){.kind = FN_PUT_RESULT,
                              .path = paths[i],
                              .size = 1,
                              .taken_at = -1,
                              .faces = &fc[i],
                              .n_faces = 1};
    }
    assert_int_equal(put(p, N), 0);
    const char *sorted[N];
    memcpy(sorted, paths, sizeof sorted);
    qsort(sorted, N, sizeof sorted[0], cmp_str);
    char want_all[512] = "", want_dir[512] = "", got[512] = "";
    for (int i = 0; i < N; i++) {
        strcat(want_all, sorted[i]);
        strcat(want_all, " ");
        if (strncmp(sorted[i], "/p/dir/", 7) == 0) {
            strcat(want_dir, sorted[i]);
            strcat(want_dir, " ");
        }
    }
    fn_photo_filter all = {.status = -1};
    assert_int_equal(fn_library_photos_each(s, &all, list_cb, got), 0);
    assert_string_equal(got, want_all);
    got[0] = 0;
    fn_photo_filter under = {.status = -1, .path_prefix = "/p/dir"};
    assert_int_equal(fn_library_photos_each(s, &under, list_cb, got), 0);
    assert_string_equal(got, want_dir);
    got[0] = 0;
    assert_int_equal(fn_library_faces_each(s, NULL, face_path_cb, got), 0);
    assert_string_equal(got, want_all);
    fn_store_close(s);
    s = keep;
    char cmd[100];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir2);
    assert_int_equal(system(cmd), 0);
}

typedef struct named {
    char *name;
    int64_t id, faces;
} named;

static int named_cmp(const void *a, const void *b)
{
    const named *x = a, *y = b;
    int k = strcmp(x->name, y->name); /* byte order, as SQLite sorts text */
    return k ? k : (x->id > y->id) - (x->id < y->id);
}

/* The persons JSON the export copies is the same text on both backends (SQLite's compact
 * json_group_array, names in byte order), and the database checks run on both. The expected text
 * is built here from the rows with jansson, not by the store's SQL. */
static void test_interop_text_and_checks(void **state)
{
    (void)state;
    assert_int_equal(fn_sql_exec(s, "INSERT INTO persons (name, created_at) VALUES ('Bo', 1),"
                                    " ('ann', 1), ('Ann', 1), ('Zo\xc3\xab \"Z\" \\ x', 1)"),
                     FN_OK);
    assert_int_equal(fn_sql_exec(s, "INSERT INTO persons (name, created_at, deleted_at)"
                                    " VALUES ('Gone', 1, 2)"),
                     FN_OK);
    fn_sql_stmt *st = NULL;
    assert_int_equal(fn_sql_prepare(s,
                                    "SELECT id, name, (SELECT count(*) FROM faces f WHERE"
                                    " f.person_id = p.id) FROM persons p WHERE deleted_at IS NULL",
                                    &st),
                     FN_OK);
    named rows[64];
    size_t n = 0;
    while (fn_sql_step(st) == FN_SQL_ROW && n < 64) {
        rows[n].id = fn_sql_column_int64(st, 0);
        rows[n].name = strdup(fn_sql_column_text(st, 1));
        rows[n].faces = fn_sql_column_int64(st, 2);
        n++;
    }
    fn_sql_finalize(st);
    assert_true(n >= 4);
    qsort(rows, n, sizeof rows[0], named_cmp);
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(
            a, json_pack("{s:s, s:I}", "name", rows[i].name, "faces", (json_int_t)rows[i].faces));
        free(rows[i].name);
    }
    char *want = json_dumps(a, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(a);
    char *got = fn_xp_persons_json(s);
    if (!got) fail_msg("persons json: %s", fn_store_errmsg(s));
    assert_string_equal(got, want);
    free(got);
    free(want);

    fn_xp_health h;
    int rc = fn_xp_check(s, &h);
    if (rc) fail_msg("check: %s", fn_store_errmsg(s));
    assert_int_equal(h.integrity, 0);
    assert_int_equal(h.foreign_keys, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_lookup_replace),
        cmocka_unit_test(test_listing_and_counts),
        cmocka_unit_test(test_rollback_leaves_nothing),
        cmocka_unit_test(test_reingest_keeps_decisions),
        cmocka_unit_test(test_interop_text_and_checks),
        cmocka_unit_test(test_byte_order_on_any_collation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
