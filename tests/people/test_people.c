/* test_people.c: the naming API of include/facenames/people.h against a real library database.
 *
 * Each test opens a fresh library with fn_library_open, writes photos, faces, clusters and
 * suggestions straight into it with SQL (as ingest, clustering and predict would), then names
 * through the API and checks the rows, the audit entry and the undo. Refused calls are checked
 * against a dump of every table the naming touches, taken before and after: a refusal must change
 * nothing. The read-only case runs in a child process as user 65534 when the test runs as root
 * (root can write anything). With FN_TEST_BACKEND=pg (suite people-pg) each library is a fresh
 * database on a throwaway PostgreSQL server instead (tests/tasks/backend.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <grp.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "facenames/error.h"
#include "facenames/people.h"
#include "tasks/backend.h"

/* ---- Fixture ----------------------------------------------------------------------------------
 */

typedef struct fx {
    char dir[64];
    char *addr; /* the library: dir, or a PostgreSQL database's URL */
    fn_library *lib;
    h_db db; /* a second connection, for seeding and checking */
} fx;

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void sql(fx *f, const char *fmt, ...)
{
    char q[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    h_db_exec(&f->db, "%s", q);
}

static int64_t sql_int(fx *f, const char *fmt, ...)
{
    char q[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q, sizeof q, fmt, ap);
    va_end(ap);
    return h_db_int(&f->db, "%s", q);
}

/* Every row of the tables naming touches, as text. Caller frees. */
static char *dump(fx *f)
{
    static const char *const qs[] = {
        "SELECT id, coalesce(person_id, 0), coalesce(cluster_id, 0), state FROM faces ORDER BY id",
        "SELECT id, name, coalesce(deleted_at, 0) FROM persons ORDER BY id",
        "SELECT id, coalesce(person_id, 0) FROM clusters ORDER BY id",
        "SELECT face_id, person_id, confidence FROM suggestions ORDER BY face_id",
        "SELECT face_id, person_id, coalesce(audit_id, 0) FROM cannot_links ORDER BY 1, 2",
        "SELECT id, actor, action, coalesce(detail, ''), coalesce(undone_by, 0),"
        " coalesce(undoes, 0) FROM audit_log ORDER BY id",
        "SELECT audit_id, face_id, coalesce(person_before, 0), coalesce(person_after, 0),"
        " state_before, state_after, coalesce(cluster_before, 0), coalesce(cluster_after, 0)"
        " FROM audit_faces ORDER BY 1, 2",
    };
    size_t len = 0;
    char *out = calloc(1, 1);
    assert_non_null(out);
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        char *rows = h_db_rows(&f->db, "%s", qs[i]);
        size_t n = strlen(rows);
        out = realloc(out, len + n + 1);
        assert_non_null(out);
        memcpy(out + len, rows, n + 1);
        len += n;
        free(rows);
    }
    return out;
}

/* The bytes as lower-case hex, for h_blob; caller frees. */
static char *hex_of(const void *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char *h = malloc(2 * n + 1);
    assert_non_null(h);
    for (size_t i = 0; i < n; i++) {
        h[2 * i] = digits[((const unsigned char *)p)[i] >> 4];
        h[2 * i + 1] = digits[((const unsigned char *)p)[i] & 15];
    }
    h[2 * n] = 0;
    return h;
}

/* Six faces on three photos; faces 1-3 in cluster 1, 4-5 in cluster 2, face 6 in none. */
static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/fn-people-test-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    f->addr = h_library_at(f->dir);
    int rc = fn_library_open(f->addr, NULL, &f->lib);
    if (rc != 0) {
        fprintf(stderr, "open: %s\n", f->lib ? fn_library_errmsg(f->lib) : "?");
        return -1;
    }
    h_db_open(&f->db, f->addr);
    for (int p = 1; p <= 3; p++)
        sql(f,
            "INSERT INTO photos (id, path, size, mtime_ns, status, ingested_at)"
            " VALUES (%d, '/photos/p%d.jpg', 10, 1, 'ok', 1)",
            p, p);
    sql(f, "INSERT INTO clusters (id, created_at, size) VALUES (1, 1, 3), (2, 1, 2)");
    static const int photo[6] = {1, 1, 2, 2, 3, 3};
    static const int cluster[6] = {1, 1, 1, 2, 2, 0};
    for (int i = 0; i < 6; i++)
        sql(f,
            "INSERT INTO faces (id, photo_id, x, y, width, height, score, created_at, cluster_id,"
            " thumbnail) VALUES (%d, %d, 1, 2, 30, 40, 0.%d, 1, %s, %s%02x%s)",
            i + 1, photo[i], 9 - i, cluster[i] ? (cluster[i] == 1 ? "1" : "2") : "NULL",
            f->db.pg ? "'\\xffd8ff" : "x'ffd8ff", i, f->db.pg ? "'::bytea" : "'");
    /* Rows made with explicit ids: later ones the API adds must be numbered after them. */
    h_db_sync_ids(&f->db, "photos");
    h_db_sync_ids(&f->db, "clusters");
    h_db_sync_ids(&f->db, "faces");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    fn_library_close(f->lib);
    h_db_close(&f->db);
    nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(f->addr);
    free(f);
    return 0;
}

static int64_t person_of(fx *f, int64_t face)
{
    return sql_int(f, "SELECT coalesce(person_id, 0) FROM faces WHERE id = %lld", (long long)face);
}

static int64_t cluster_of(fx *f, int64_t face)
{
    return sql_int(f, "SELECT coalesce(cluster_id, 0) FROM faces WHERE id = %lld", (long long)face);
}

/* 0 auto, 1 confirmed, 2 ignored */
static int state_of(fx *f, int64_t face)
{
    return (int)sql_int(f,
                        "SELECT CASE state WHEN 'auto' THEN 0 WHEN 'confirmed' THEN 1 ELSE 2 END"
                        " FROM faces WHERE id = %lld",
                        (long long)face);
}

static int64_t create(fx *f, const char *name)
{
    int64_t p = 0, a = 0;
    int rc = fn_people_create(f->lib, name, &p, &a);
    if (rc != 0) fail_msg("create %s: %s", name, fn_library_errmsg(f->lib));
    assert_true(p > 0 && a > 0);
    return p;
}

/* The newest audit entry (freed by the caller with fn_audit_free(e, 1)). */
static fn_audit_entry *last_entry(fx *f)
{
    fn_audit_entry *e = NULL;
    size_t n = 0;
    assert_int_equal(fn_audit_list(f->lib, 0, 1, &e, &n), 0);
    assert_int_equal(n, 1);
    return e;
}

static void expect_undo(fx *f, int64_t audit)
{
    int64_t u = 0;
    int rc = fn_people_undo(f->lib, audit, &u);
    if (rc != 0) fail_msg("undo %lld: %s", (long long)audit, fn_library_errmsg(f->lib));
    assert_true(u > audit);
    if (audit == 0)
        audit = sql_int(f, "SELECT undoes FROM audit_log WHERE id = %lld", (long long)u);
    assert_int_equal(
        sql_int(f, "SELECT undone_by FROM audit_log WHERE id = %lld", (long long)audit), u);
    assert_int_equal(sql_int(f, "SELECT undoes FROM audit_log WHERE id = %lld", (long long)u),
                     audit);
}

/* ---- Tests ------------------------------------------------------------------------------------
 */

static void test_open_and_read(void **state)
{
    fx *f = *state;
    assert_string_equal(fn_library_errmsg(f->lib), "");
    fn_library_face *faces = NULL;
    size_t n = 0;
    assert_int_equal(fn_faces_query(f->lib, NULL, &faces, &n), 0);
    assert_int_equal(n, 6);
    assert_int_equal(faces[0].id, 1);
    assert_int_equal(faces[3].cluster_id, 2);
    assert_int_equal(faces[5].cluster_id, 0);
    assert_int_equal(faces[0].state, FN_FACE_AUTO);
    fn_library_free(faces);
    fn_face_query q = {.cluster_id = 1, .state = -1};
    assert_int_equal(fn_faces_query(f->lib, &q, &faces, &n), 0);
    assert_int_equal(n, 3);
    fn_library_free(faces);

    uint8_t *jpeg = NULL;
    size_t len = 0;
    assert_int_equal(fn_face_thumbnail(f->lib, 4, &jpeg, &len), 0);
    assert_int_equal(len, 4);
    assert_int_equal(jpeg[3], 3);
    fn_library_free(jpeg);
    assert_int_equal(fn_face_thumbnail(f->lib, 99, &jpeg, &len), FN_ERR_NOT_FOUND);
    assert_non_null(strstr(fn_library_errmsg(f->lib), "99"));

    char *path = NULL;
    assert_int_equal(fn_photo_path(f->lib, 2, &path), 0);
    assert_string_equal(path, "/photos/p2.jpg");
    fn_library_free(path);
    assert_int_equal(fn_photo_path(f->lib, 7, &path), FN_ERR_NOT_FOUND);

    /* the photos, by path: all, then a page, then those under a folder (none) */
    sql(f, "INSERT INTO photos (id, path, size, mtime_ns, status, error_code, ingested_at, width,"
           " height) VALUES (4, '/other/q.jpg', 10, 1, 'error', 'truncated', 1, 0, 0)");
    fn_photo_entry *ph = NULL;
    assert_int_equal(fn_photos_list(f->lib, NULL, 0, 0, &ph, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(ph[0].path, "/other/q.jpg");
    assert_int_equal(ph[0].status, 2);
    assert_int_equal(ph[0].faces, 0);
    assert_string_equal(ph[1].path, "/photos/p1.jpg");
    assert_int_equal(ph[1].id, 1);
    assert_int_equal(ph[1].faces, 2);
    assert_int_equal(ph[1].status, 0);
    fn_photos_free(ph, n);
    assert_int_equal(fn_photos_list(f->lib, "/photos", 1, 1, &ph, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ph[0].path, "/photos/p2.jpg");
    fn_photos_free(ph, n);
    assert_int_equal(fn_photos_list(f->lib, "/nowhere", 0, 0, &ph, &n), 0);
    assert_int_equal(n, 0);
    fn_photos_free(ph, n);

    fn_cluster *cl = NULL;
    assert_int_equal(fn_clusters_list(f->lib, 0, &cl, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(cl[0].id, 1); /* biggest first */
    assert_int_equal(cl[0].faces, 3);
    assert_int_equal(cl[0].cover_face, 1); /* no centroid: the best-scored face */
    fn_library_free(cl);

    fn_person *pp = NULL;
    assert_int_equal(fn_people_list(f->lib, &pp, &n), 0);
    assert_int_equal(n, 0);
    fn_persons_free(pp, n);
    assert_string_equal(fn_face_state_name(FN_FACE_IGNORED), "ignored");
}

static void test_create_and_undo(void **state)
{
    fx *f = *state;
    assert_int_equal(fn_library_set_actor(f->lib, "test:me"), 0);
    int64_t p = create(f, "  Ann Lee ");
    fn_person got;
    assert_int_equal(fn_people_find(f->lib, "ann lee", &got), 0);
    assert_int_equal(got.id, p);
    assert_string_equal(got.name, "Ann Lee"); /* trimmed */
    fn_library_free(got.name);
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)p);
    assert_int_equal(fn_people_find(f->lib, id, &got), 0);
    fn_library_free(got.name);

    fn_audit_entry *e = last_entry(f);
    assert_string_equal(e->action, "person.create");
    assert_string_equal(e->actor, "test:me");
    assert_non_null(strstr(e->detail, "Ann Lee"));
    assert_int_equal(e->faces, 0);
    int64_t audit = e->id;
    fn_audit_free(e, 1);

    expect_undo(f, audit);
    assert_int_equal(fn_people_find(f->lib, "Ann Lee", &got), FN_ERR_NOT_FOUND);
    assert_true(sql_int(f, "SELECT deleted_at FROM persons WHERE id = %lld", (long long)p) > 0);
    /* the name is free again, and a redo (undo of the undo) brings the person back */
    e = last_entry(f);
    assert_string_equal(e->action, "undo");
    int64_t u = e->id;
    fn_audit_free(e, 1);
    expect_undo(f, u);
    assert_int_equal(fn_people_find(f->lib, "Ann Lee", &got), 0);
    fn_library_free(got.name);
    assert_int_equal(sql_int(f, "SELECT coalesce(undone_by, 0) FROM audit_log WHERE id = %lld",
                             (long long)audit),
                     0);
}

static void test_assign_move_undo(void **state)
{
    fx *f = *state;
    int64_t ann = create(f, "Ann"), bob = create(f, "Bob");
    sql(f,
        "INSERT INTO suggestions (face_id, person_id, confidence, distance, margin, created_at)"
        " VALUES (1, %lld, 0.8, 0.3, 0.2, 1)",
        (long long)bob);
    int64_t faces[] = {1, 2};
    int64_t a1 = 0;
    assert_int_equal(fn_faces_assign(f->lib, faces, 2, ann, &a1), 0);
    assert_int_equal(person_of(f, 1), ann);
    assert_int_equal(state_of(f, 1), 1);
    assert_int_equal(cluster_of(f, 1), 1); /* the cluster stays */
    assert_int_equal(sql_int(f, "SELECT count(*) FROM suggestions"), 0);
    fn_audit_entry *e = last_entry(f);
    assert_int_equal(e->id, a1);
    assert_string_equal(e->action, "face.assign");
    assert_int_equal(e->faces, 2);
    fn_audit_free(e, 1);
    assert_int_equal(sql_int(f,
                             "SELECT count(*) FROM audit_faces WHERE audit_id = %lld AND"
                             " person_before IS NULL AND person_after = %lld AND state_before ="
                             " 'auto' AND state_after = 'confirmed' AND cluster_before = 1",
                             (long long)a1, (long long)ann),
                     2);

    /* assigning again changes nothing and records nothing */
    int64_t none = -1;
    assert_int_equal(fn_faces_assign(f->lib, faces, 2, ann, &none), 0);
    assert_int_equal(none, 0);

    int64_t a2 = 0;
    assert_int_equal(fn_faces_assign(f->lib, faces, 1, bob, &a2), 0);
    e = last_entry(f);
    assert_string_equal(e->action, "face.move");
    assert_int_equal(e->faces, 1);
    fn_audit_free(e, 1);
    assert_int_equal(person_of(f, 1), bob);

    /* the assign cannot be undone while the move of face 1 stands */
    char *before = dump(f);
    assert_int_equal(fn_people_undo(f->lib, a1, NULL), FN_ERR_CONFLICT);
    const char *m = fn_library_errmsg(f->lib);
    assert_non_null(strstr(m, "face 1"));
    char later[32];
    snprintf(later, sizeof later, "entry %lld", (long long)a2);
    assert_non_null(strstr(m, later));
    char *after = dump(f);
    assert_string_equal(before, after);
    free(before);
    free(after);

    expect_undo(f, 0); /* the newest: the move */
    assert_int_equal(person_of(f, 1), ann);
    expect_undo(f, a1);
    assert_int_equal(person_of(f, 1), 0);
    assert_int_equal(person_of(f, 2), 0);
    assert_int_equal(state_of(f, 2), 0);
    assert_int_equal(cluster_of(f, 2), 1);
}

static void test_unassign_ignore(void **state)
{
    fx *f = *state;
    int64_t ann = create(f, "Ann");
    int64_t faces[] = {3, 4};
    assert_int_equal(fn_faces_assign(f->lib, faces, 2, ann, NULL), 0);
    int64_t a = 0;
    assert_int_equal(fn_faces_unassign(f->lib, faces, 1, &a), 0);
    assert_int_equal(person_of(f, 3), 0);
    assert_int_equal(state_of(f, 3), 0);
    assert_int_equal(cluster_of(f, 3), 0);
    expect_undo(f, a);
    assert_int_equal(person_of(f, 3), ann);
    assert_int_equal(state_of(f, 3), 1);
    assert_int_equal(cluster_of(f, 3), 1);

    sql(f,
        "INSERT INTO suggestions (face_id, person_id, confidence, distance, margin, created_at)"
        " VALUES (6, %lld, 0.8, 0.3, 0.2, 1)",
        (long long)ann);
    int64_t six = 6, ig = 0;
    assert_int_equal(fn_faces_ignore(f->lib, faces + 1, 1, &ig), 0);
    assert_int_equal(state_of(f, 4), 2);
    assert_int_equal(person_of(f, 4), 0);
    assert_int_equal(cluster_of(f, 4), 0);
    assert_int_equal(fn_faces_ignore(f->lib, &six, 1, NULL), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM suggestions"), 0);
    fn_audit_entry *e = last_entry(f);
    assert_string_equal(e->action, "face.ignore");
    fn_audit_free(e, 1);

    /* an ignored face is refused by assign, and the refusal changes nothing */
    char *before = dump(f);
    assert_int_equal(fn_faces_assign(f->lib, &six, 1, ann, NULL), FN_ERR_INVALID);
    assert_non_null(strstr(fn_library_errmsg(f->lib), "face 6 is ignored"));
    char *after = dump(f);
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* unassign un-ignores it */
    assert_int_equal(fn_faces_unassign(f->lib, &six, 1, NULL), 0);
    assert_int_equal(state_of(f, 6), 0);
    assert_int_equal(fn_faces_assign(f->lib, &six, 1, ann, NULL), 0);
    expect_undo(f, ig);
    assert_int_equal(state_of(f, 4), 1);
    assert_int_equal(person_of(f, 4), ann);
    assert_int_equal(cluster_of(f, 4), 2);
}

static void test_name_cluster(void **state)
{
    fx *f = *state;
    int64_t one = 1;
    int64_t bob = create(f, "Bob"), cleo = create(f, "Cleo");
    assert_int_equal(fn_faces_assign(f->lib, &one, 1, bob, NULL), 0);
    sql(f, "INSERT INTO cannot_links (face_id, person_id, created_at) VALUES (3, %lld, 1)",
        (long long)cleo);
    int64_t p = 0, a = 0;
    /* an existing person's name (any case) names the cluster as that person */
    assert_int_equal(fn_people_name_cluster(f->lib, 1, "cleo", &p, &a), 0);
    assert_int_equal(p, cleo);
    assert_int_equal(person_of(f, 1), bob); /* a face with a person is not taken */
    assert_int_equal(person_of(f, 2), cleo);
    assert_int_equal(state_of(f, 2), 1);
    assert_int_equal(person_of(f, 3), 0); /* the cannot-link keeps face 3 out */
    assert_int_equal(sql_int(f, "SELECT person_id FROM clusters WHERE id = 1"), cleo);
    fn_audit_entry *e = last_entry(f);
    assert_string_equal(e->action, "person.name_cluster");
    assert_int_equal(e->faces, 1);
    assert_non_null(strstr(e->detail, "Cleo"));
    fn_audit_free(e, 1);
    fn_cluster *cl = NULL;
    size_t n = 0;
    assert_int_equal(fn_clusters_list(f->lib, 0, &cl, &n), 0);
    assert_int_equal(n, 2); /* cluster 1 still holds face 3 */
    assert_int_equal(cl[0].id, 2);
    assert_int_equal(cl[1].person_id, cleo);
    fn_library_free(cl);

    /* a new name creates the person; its undo takes the person away again */
    int64_t p2 = 0, a2 = 0;
    assert_int_equal(fn_people_name_cluster(f->lib, 2, "Dora", &p2, &a2), 0);
    assert_true(p2 > cleo);
    assert_int_equal(person_of(f, 4), p2);
    assert_int_equal(person_of(f, 5), p2);
    /* nothing left to name */
    assert_int_equal(fn_people_name_cluster(f->lib, 2, "Eve", NULL, NULL), FN_ERR_INVALID);
    assert_non_null(strstr(fn_library_errmsg(f->lib), "cluster 2"));
    expect_undo(f, a2);
    assert_int_equal(person_of(f, 4), 0);
    assert_int_equal(state_of(f, 5), 0);
    assert_true(sql_int(f, "SELECT deleted_at FROM persons WHERE id = %lld", (long long)p2) > 0);

    expect_undo(f, a);
    assert_int_equal(person_of(f, 2), 0);
    assert_int_equal(state_of(f, 2), 0);
    assert_int_equal(sql_int(f, "SELECT coalesce(person_id, 0) FROM clusters WHERE id = 1"), 0);
    assert_int_equal(
        sql_int(f, "SELECT coalesce(deleted_at, 0) FROM persons WHERE id = %lld", (long long)cleo),
        0); /* Cleo existed before: she stays */
}

static void test_rename(void **state)
{
    fx *f = *state;
    int64_t ann = create(f, "Ann");
    create(f, "Bob");
    int64_t a = 0;
    assert_int_equal(fn_people_rename(f->lib, ann, "Anna", &a), 0);
    fn_person got;
    assert_int_equal(fn_people_find(f->lib, "Anna", &got), 0);
    fn_library_free(got.name);
    fn_audit_entry *e = last_entry(f);
    assert_string_equal(e->action, "person.rename");
    assert_non_null(strstr(e->detail, "\"Ann\""));
    assert_non_null(strstr(e->detail, "\"Anna\""));
    fn_audit_free(e, 1);
    char *before = dump(f);
    assert_int_equal(fn_people_rename(f->lib, ann, "BOB", NULL), FN_ERR_EXISTS);
    assert_non_null(strstr(fn_library_errmsg(f->lib), "BOB"));
    char *after = dump(f);
    assert_string_equal(before, after);
    free(before);
    free(after);
    expect_undo(f, a);
    assert_int_equal(fn_people_find(f->lib, "Ann", &got), 0);
    assert_int_equal(got.id, ann);
    fn_library_free(got.name);
}

static void test_merge_unmerge(void **state)
{
    fx *f = *state;
    int64_t ann = create(f, "Ann"), dup = create(f, "Ann 2");
    int64_t fa[] = {1, 2}, fd[] = {3, 4};
    assert_int_equal(fn_faces_assign(f->lib, fa, 2, ann, NULL), 0);
    assert_int_equal(fn_faces_assign(f->lib, fd, 2, dup, NULL), 0);
    sql(f, "UPDATE faces SET state = 'auto' WHERE id = 4"); /* as clustering would join it */
    sql(f, "INSERT INTO cannot_links (face_id, person_id, created_at) VALUES (6, %lld, 1)",
        (long long)dup);
    int64_t a = 0;
    assert_int_equal(fn_people_merge(f->lib, dup, ann, &a), 0);
    assert_int_equal(person_of(f, 3), ann);
    assert_int_equal(person_of(f, 4), ann);
    assert_int_equal(state_of(f, 4), 0); /* states kept */
    assert_int_equal(sql_int(f,
                             "SELECT count(*) FROM cannot_links WHERE face_id = 6 AND"
                             " person_id = %lld",
                             (long long)ann),
                     1);
    fn_person *pp = NULL;
    size_t n = 0;
    assert_int_equal(fn_people_list(f->lib, &pp, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(pp[0].faces, 4);
    assert_int_equal(pp[0].confirmed, 3);
    fn_persons_free(pp, n);
    fn_audit_entry *e = last_entry(f);
    assert_string_equal(e->action, "person.merge");
    assert_int_equal(e->faces, 2);
    fn_audit_free(e, 1);

    expect_undo(f, a); /* unmerge */
    assert_int_equal(person_of(f, 3), dup);
    assert_int_equal(person_of(f, 4), dup);
    assert_int_equal(state_of(f, 4), 0);
    assert_int_equal(
        sql_int(f, "SELECT count(*) FROM cannot_links WHERE person_id = %lld", (long long)ann), 0);
    assert_int_equal(fn_people_list(f->lib, &pp, &n), 0);
    assert_int_equal(n, 2);
    fn_persons_free(pp, n);
}

static void test_split_and_delete(void **state)
{
    fx *f = *state;
    int64_t ann = create(f, "Ann");
    int64_t fa[] = {1, 2, 3};
    assert_int_equal(fn_faces_assign(f->lib, fa, 3, ann, NULL), 0);
    int64_t q = 0, a = 0, two = 2;
    assert_int_equal(fn_people_split(f->lib, ann, &two, 1, "Ann's sister", &q, &a), 0);
    assert_int_equal(person_of(f, 2), q);
    assert_int_equal(state_of(f, 2), 1);
    fn_audit_entry *e = last_entry(f);
    assert_string_equal(e->action, "person.split");
    fn_audit_free(e, 1);
    /* a face of someone else is refused */
    char *before = dump(f);
    int64_t five = 5;
    assert_int_equal(fn_people_split(f->lib, ann, &five, 1, "Other", NULL, NULL), FN_ERR_INVALID);
    assert_non_null(strstr(fn_library_errmsg(f->lib), "face 5"));
    char *after = dump(f);
    assert_string_equal(before, after);
    free(before);
    free(after);
    expect_undo(f, a); /* unsplit */
    assert_int_equal(person_of(f, 2), ann);
    assert_true(sql_int(f, "SELECT deleted_at FROM persons WHERE id = %lld", (long long)q) > 0);

    int64_t d = 0;
    assert_int_equal(fn_people_delete(f->lib, ann, &d), 0);
    assert_int_equal(person_of(f, 1), 0);
    assert_int_equal(state_of(f, 1), 0);
    assert_int_equal(cluster_of(f, 1), 1);
    assert_int_equal(fn_faces_assign(f->lib, fa, 1, ann, NULL), FN_ERR_NOT_FOUND);
    assert_non_null(strstr(fn_library_errmsg(f->lib), "deleted"));
    expect_undo(f, d); /* undelete */
    assert_int_equal(person_of(f, 1), ann);
    assert_int_equal(state_of(f, 3), 1);
}

static void test_suggestions(void **state)
{
    fx *f = *state;
    int64_t ann = create(f, "Ann"), bob = create(f, "Bob");
    sql(f,
        "INSERT INTO suggestions (face_id, person_id, confidence, distance, margin,"
        " support_face_id, created_at) VALUES (4, %lld, 0.9, 0.3, 0.2, 1, 1),"
        " (5, %lld, 0.6, 0.4, 0.1, 1, 1), (6, %lld, 0.7, 0.4, 0.1, 2, 1)",
        (long long)ann, (long long)ann, (long long)bob);
    fn_suggestion *s = NULL;
    size_t n = 0;
    assert_int_equal(fn_suggestions_list(f->lib, 0, 0, &s, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(s[0].face_id, 4);
    assert_int_equal(s[1].face_id, 6);
    assert_int_equal(s[0].support_face, 1);
    fn_library_free(s);
    fn_face_query q = {.photo_id = 3, .state = -1};
    fn_library_face *fc = NULL;
    assert_int_equal(fn_faces_query(f->lib, &q, &fc, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(fc[0].suggestion_person, ann);
    assert_true(fc[0].suggestion_confidence > 0.59f && fc[0].suggestion_confidence < 0.61f);
    fn_library_free(fc);

    int64_t four = 4, five = 5, acc = 0, rej = 0;
    assert_int_equal(fn_suggestions_accept(f->lib, &four, 1, &acc), 0);
    assert_int_equal(person_of(f, 4), ann);
    assert_int_equal(state_of(f, 4), 1);
    assert_int_equal(fn_suggestions_reject(f->lib, &five, 1, &rej), 0);
    assert_int_equal(person_of(f, 5), 0);
    assert_int_equal(sql_int(f,
                             "SELECT count(*) FROM cannot_links WHERE face_id = 5 AND"
                             " person_id = %lld AND audit_id = %lld",
                             (long long)ann, (long long)rej),
                     1);
    fn_audit_entry *e = last_entry(f);
    assert_string_equal(e->action, "suggestion.reject");
    fn_audit_free(e, 1);
    assert_int_equal(fn_suggestions_list(f->lib, ann, 0, &s, &n), 0);
    assert_int_equal(n, 0);
    fn_library_free(s);
    /* a face without a pending suggestion is refused */
    char *before = dump(f);
    assert_int_equal(fn_suggestions_accept(f->lib, &five, 1, NULL), FN_ERR_INVALID);
    assert_non_null(strstr(fn_library_errmsg(f->lib), "face 5"));
    int64_t two[] = {6, 5};
    assert_int_equal(fn_suggestions_reject(f->lib, two, 2, NULL), FN_ERR_INVALID);
    char *after = dump(f);
    assert_string_equal(before, after);
    free(before);
    free(after);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM suggestions WHERE face_id = 6"), 1);

    expect_undo(f, rej);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM cannot_links"), 0);
    /* the rejected suggestion is back, as it was */
    assert_int_equal(sql_int(f, "SELECT person_id FROM suggestions WHERE face_id = 5"), ann);
    assert_int_equal(sql_int(f, "SELECT support_face_id FROM suggestions WHERE face_id = 5"), 1);
    expect_undo(f, acc);
    assert_int_equal(person_of(f, 4), 0);
    assert_int_equal(state_of(f, 4), 0);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM suggestions WHERE face_id = 4 AND"
                                " confidence > 0.89"),
                     1);
    /* a redo of the accept takes the suggestion again */
    int64_t undo_acc =
        sql_int(f, "SELECT undone_by FROM audit_log WHERE id = %lld", (long long)acc);
    expect_undo(f, undo_acc);
    assert_int_equal(person_of(f, 4), ann);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM suggestions WHERE face_id = 4"), 0);
}

/* Every refusal names what was at fault and leaves every table as it was. */
static void test_bad_input_changes_nothing(void **state)
{
    fx *f = *state;
    int64_t ann = create(f, "Ann");
    int64_t bob = create(f, "Bob");
    int64_t gone = create(f, "Gone");
    assert_int_equal(fn_people_delete(f->lib, gone, NULL), 0);
    int64_t one = 1, six = 6, bad = 99, zero = 0;
    assert_int_equal(fn_faces_assign(f->lib, &one, 1, ann, NULL), 0);
    assert_int_equal(fn_faces_ignore(f->lib, &six, 1, NULL), 0);
    int64_t mixed[] = {2, 99};
    char long_name[FN_PERSON_NAME_MAX + 2];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = 0;
    char *before = dump(f);
    struct {
        int rc, want;
        const char *says;
    } cases[] = {
        {fn_faces_assign(f->lib, &bad, 1, ann, NULL), FN_ERR_NOT_FOUND, "face 99"},
        {fn_faces_assign(f->lib, mixed, 2, ann, NULL), FN_ERR_NOT_FOUND, "face 99"},
        {fn_faces_assign(f->lib, &zero, 1, ann, NULL), FN_ERR_INVALID, "not a face id"},
        {fn_faces_assign(f->lib, &one, 0, ann, NULL), FN_ERR_INVALID, "no face"},
        {fn_faces_assign(f->lib, &one, 1, 77, NULL), FN_ERR_NOT_FOUND, "person 77"},
        {fn_faces_assign(f->lib, &one, 1, gone, NULL), FN_ERR_NOT_FOUND, "deleted"},
        {fn_faces_assign(f->lib, &six, 1, bob, NULL), FN_ERR_INVALID, "ignored"},
        {fn_faces_unassign(f->lib, &bad, 1, NULL), FN_ERR_NOT_FOUND, "face 99"},
        {fn_faces_ignore(f->lib, &bad, 1, NULL), FN_ERR_NOT_FOUND, "face 99"},
        {fn_people_create(f->lib, "", NULL, NULL), FN_ERR_INVALID, "empty"},
        {fn_people_create(f->lib, " \t ", NULL, NULL), FN_ERR_INVALID, "empty"},
        {fn_people_create(f->lib, long_name, NULL, NULL), FN_ERR_INVALID, "at most 200"},
        {fn_people_create(f->lib, "12", NULL, NULL), FN_ERR_INVALID, "digits"},
        {fn_people_create(f->lib, "a\nb", NULL, NULL), FN_ERR_INVALID, "control"},
        {fn_people_create(f->lib, "\xff\xfe", NULL, NULL), FN_ERR_INVALID, "UTF-8"},
        {fn_people_create(f->lib, "ann", NULL, NULL), FN_ERR_EXISTS, "exists"},
        {fn_people_name_cluster(f->lib, 9, "Zed", NULL, NULL), FN_ERR_NOT_FOUND, "cluster 9"},
        {fn_people_name_cluster(f->lib, 1, "", NULL, NULL), FN_ERR_INVALID, "empty"},
        {fn_people_rename(f->lib, ann, "Bob", NULL), FN_ERR_EXISTS, "Bob"},
        {fn_people_rename(f->lib, 77, "Zed", NULL), FN_ERR_NOT_FOUND, "person 77"},
        {fn_people_rename(f->lib, ann, " ", NULL), FN_ERR_INVALID, "empty"},
        {fn_people_merge(f->lib, ann, ann, NULL), FN_ERR_INVALID, "itself"},
        {fn_people_merge(f->lib, ann, 77, NULL), FN_ERR_NOT_FOUND, "person 77"},
        {fn_people_merge(f->lib, gone, ann, NULL), FN_ERR_NOT_FOUND, "deleted"},
        {fn_people_split(f->lib, ann, &one, 1, "Bob", NULL, NULL), FN_ERR_EXISTS, "Bob"},
        {fn_people_split(f->lib, ann, &bad, 1, "Zed", NULL, NULL), FN_ERR_NOT_FOUND, "face 99"},
        {fn_people_delete(f->lib, gone, NULL), FN_ERR_NOT_FOUND, "deleted"},
        {fn_people_delete(f->lib, 0, NULL), FN_ERR_INVALID, "not a person id"},
        {fn_suggestions_accept(f->lib, &bad, 1, NULL), FN_ERR_NOT_FOUND, "face 99"},
        {fn_people_undo(f->lib, 999, NULL), FN_ERR_NOT_FOUND, "999"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].rc != cases[i].want)
            fail_msg("case %zu: %d (%s), want %d", i, cases[i].rc, fn_strerror(cases[i].rc),
                     cases[i].want);
    }
    char *after = dump(f);
    assert_string_equal(before, after);
    free(after);
    /* the messages, one call at a time (each call replaces the last message) */
    assert_int_equal(fn_faces_assign(f->lib, mixed, 2, ann, NULL), FN_ERR_NOT_FOUND);
    assert_non_null(strstr(fn_library_errmsg(f->lib), "face 99"));
    assert_int_equal(fn_people_create(f->lib, long_name, NULL, NULL), FN_ERR_INVALID);
    assert_non_null(strstr(fn_library_errmsg(f->lib), "at most 200 bytes"));
    assert_int_equal(fn_people_merge(f->lib, ann, ann, NULL), FN_ERR_INVALID);
    assert_non_null(strstr(fn_library_errmsg(f->lib), "into itself"));
    assert_int_equal(fn_people_create(f->lib, "ANN", NULL, NULL), FN_ERR_EXISTS);
    assert_non_null(strstr(fn_library_errmsg(f->lib), "exists already"));
    assert_int_equal(fn_people_undo(f->lib, 999, NULL), FN_ERR_NOT_FOUND);
    assert_non_null(strstr(fn_library_errmsg(f->lib), "999"));
    after = dump(f);
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* and a success clears the message */
    assert_int_equal(fn_faces_assign(f->lib, &one, 1, ann, NULL), 0);
    assert_string_equal(fn_library_errmsg(f->lib), "");
}

/* An undo refused because a later entry changed the same face; once that one is undone it goes
 * through. Also: an entry undone twice is refused. */
static void test_undo_conflicts(void **state)
{
    fx *f = *state;
    int64_t ann = create(f, "Ann"), bob = create(f, "Bob");
    int64_t fs[] = {1, 2, 3};
    int64_t a1 = 0, a2 = 0, a3 = 0;
    assert_int_equal(fn_people_name_cluster(f->lib, 1, "Ann", NULL, &a1), 0);
    assert_int_equal(fn_faces_ignore(f->lib, fs + 1, 1, &a2), 0);
    assert_int_equal(fn_people_merge(f->lib, ann, bob, &a3), 0);
    char *before = dump(f);
    assert_int_equal(fn_people_undo(f->lib, a1, NULL), FN_ERR_CONFLICT);
    char want[64];
    snprintf(want, sizeof want, "entry %lld", (long long)a3); /* the latest that stands */
    assert_non_null(strstr(fn_library_errmsg(f->lib), want));
    /* undoing the ignore would give face 2 back to Ann, merged away since */
    assert_int_equal(fn_people_undo(f->lib, a2, NULL), FN_ERR_CONFLICT);
    assert_non_null(strstr(fn_library_errmsg(f->lib), "face 2"));
    char *after = dump(f);
    assert_string_equal(before, after);
    free(before);
    free(after);
    expect_undo(f, a3);
    assert_int_equal(fn_people_undo(f->lib, a3, NULL), FN_ERR_STATE);
    assert_non_null(strstr(fn_library_errmsg(f->lib), "undone already"));
    /* the ignore of face 2 still stands over the naming */
    assert_int_equal(fn_people_undo(f->lib, a1, NULL), FN_ERR_CONFLICT);
    snprintf(want, sizeof want, "face 2 was changed again by audit entry %lld", (long long)a2);
    assert_non_null(strstr(fn_library_errmsg(f->lib), want));
    expect_undo(f, a2); /* Ann is back: face 2 can be hers again */
    assert_int_equal(person_of(f, 2), ann);
    expect_undo(f, a1);
    assert_int_equal(person_of(f, 1), 0);
    assert_int_equal(person_of(f, 2), 0);
    assert_int_equal(state_of(f, 2), 0);
    assert_int_equal(cluster_of(f, 2), 1);
    (void)fs;
}

/* Assigning by name creates a new person in the same entry (one undo takes both back) and finds
 * an existing one case-insensitively. */
static void test_assign_named(void **state)
{
    fx *f = *state;
    int64_t faces[] = {1, 2}, p = 0, a = 0;
    assert_int_equal(fn_faces_assign_named(f->lib, faces, 2, " Dora ", &p, &a), 0);
    assert_true(p > 0);
    assert_int_equal(person_of(f, 1), p);
    fn_audit_entry *e = last_entry(f);
    assert_int_equal(e->id, a);
    assert_string_equal(e->action, "face.assign");
    assert_int_equal(e->faces, 2);
    assert_non_null(strstr(e->detail, "\"created\":["));
    fn_audit_free(e, 1);
    int64_t three = 3, p2 = 0;
    assert_int_equal(fn_faces_assign_named(f->lib, &three, 1, "DORA", &p2, NULL), 0);
    assert_int_equal(p2, p);
    assert_int_equal(sql_int(f, "SELECT count(*) FROM persons"), 1);
    /* the later assign of face 3 is not in the way: it touched another face; but the person
     * cannot be taken away while face 3 is hers */
    assert_int_equal(fn_people_undo(f->lib, a, NULL), FN_ERR_CONFLICT);
    assert_non_null(strstr(fn_library_errmsg(f->lib), "later changes"));
    expect_undo(f, 0);
    expect_undo(f, a);
    assert_int_equal(person_of(f, 1), 0);
    assert_true(sql_int(f, "SELECT deleted_at FROM persons WHERE id = %lld", (long long)p) > 0);
    fn_person got;
    assert_int_equal(fn_people_find(f->lib, "Dora", &got), FN_ERR_NOT_FOUND);
}

/* Undo of an undo redoes, and undoing the redo undoes again: a merge back and forth. */
static void test_redo_merge(void **state)
{
    fx *f = *state;
    int64_t ann = create(f, "Ann"), bob = create(f, "Bob");
    int64_t fa[] = {1, 2}, fb[] = {3};
    assert_int_equal(fn_faces_assign(f->lib, fa, 2, ann, NULL), 0);
    assert_int_equal(fn_faces_assign(f->lib, fb, 1, bob, NULL), 0);
    int64_t m = 0, u = 0, r = 0, u2 = 0;
    assert_int_equal(fn_people_merge(f->lib, ann, bob, &m), 0);
    assert_int_equal(fn_people_undo(f->lib, m, &u), 0);
    assert_int_equal(person_of(f, 1), ann);
    assert_int_equal(fn_people_undo(f->lib, u, &r), 0); /* redo */
    assert_int_equal(person_of(f, 1), bob);
    assert_true(sql_int(f, "SELECT deleted_at FROM persons WHERE id = %lld", (long long)ann) > 0);
    assert_int_equal(
        sql_int(f, "SELECT coalesce(undone_by, 0) FROM audit_log WHERE id = %lld", (long long)m),
        0);
    assert_int_equal(sql_int(f, "SELECT undone_by FROM audit_log WHERE id = %lld", (long long)u),
                     r);
    fn_audit_entry *e = last_entry(f);
    assert_non_null(strstr(e->detail, "Redid"));
    fn_audit_free(e, 1);
    /* faces are as the merge left them */
    assert_int_equal(
        sql_int(f, "SELECT count(*) FROM faces WHERE person_id = %lld", (long long)bob), 3);
    /* the merge is in force again: undoing it (or the redo) works once */
    assert_int_equal(fn_people_undo(f->lib, r, &u2), 0);
    assert_int_equal(person_of(f, 2), ann);
    assert_int_equal(sql_int(f, "SELECT undone_by FROM audit_log WHERE id = %lld", (long long)m),
                     u);
    assert_int_equal(fn_people_undo(f->lib, m, NULL), FN_ERR_STATE);
}

/* A cluster's cover is the face nearest its centroid when it has one. */
static void test_cluster_cover(void **state)
{
    fx *f = *state;
    float d[128], centre[128];
    for (int id = 1; id <= 3; id++) {
        for (int k = 0; k < 128; k++)
            d[k] = (float)id * 0.1f + (float)k * 0.001f;
        char *h = hex_of(d, sizeof d);
        sql(f, "UPDATE faces SET descriptor = %s WHERE id = %d", h_blob(&f->db, h), id);
        free(h);
    }
    for (int k = 0; k < 128; k++) /* nearest to face 3's descriptor, not the best-scored face 1 */
        centre[k] = 0.29f + (float)k * 0.001f;
    char *h = hex_of(centre, sizeof centre);
    sql(f, "UPDATE clusters SET centroid = %s WHERE id = 1", h_blob(&f->db, h));
    free(h);
    fn_cluster *cl = NULL;
    size_t n = 0;
    assert_int_equal(fn_clusters_list(f->lib, 1, &cl, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(cl[0].id, 1);
    assert_int_equal(cl[0].cover_face, 3);
    fn_library_free(cl);
}

/* A face removed since an entry (its photo re-ingested) is skipped by the entry's undo. */
static void test_undo_after_face_removed(void **state)
{
    fx *f = *state;
    int64_t ann = create(f, "Ann");
    int64_t fs[] = {5, 6}, a = 0;
    assert_int_equal(fn_faces_assign(f->lib, fs, 2, ann, &a), 0);
    sql(f, "DELETE FROM faces WHERE id = 6");
    expect_undo(f, a);
    assert_int_equal(person_of(f, 5), 0);
    assert_int_equal(state_of(f, 5), 0);
    fn_audit_entry *e = last_entry(f);
    assert_int_equal(e->faces, 1); /* the undo changed the face that is left */
    fn_audit_free(e, 1);
}

/* The read-only case: a child that cannot write the library reads it and is refused every write. */
static void test_readonly(void **state)
{
    fx *f = *state;
    FN_SKIP_ON_PG("a read-only library is a folder's permissions; a server's are its roles");
    int64_t ann = create(f, "Ann");
    int64_t one = 1;
    assert_int_equal(fn_faces_assign(f->lib, &one, 1, ann, NULL), 0);
    sql(f, "PRAGMA wal_checkpoint(TRUNCATE)");
    char *before = dump(f);
    uid_t who = geteuid() == 0 ? 65534 : geteuid();
    assert_int_equal(chmod(f->dir, 0555), 0);
    char db[128];
    snprintf(db, sizeof db, "%s/library.db", f->dir);
    assert_int_equal(chmod(db, 0444), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (who != geteuid() && (setgroups(0, NULL) != 0 || setgid(who) != 0 || setuid(who) != 0))
            _exit(10);
        fn_library *lib = NULL;
        if (fn_library_open(f->dir, NULL, &lib) != 0) {
            fprintf(stderr, "open: %s\n", lib ? fn_library_errmsg(lib) : "?");
            _exit(11);
        }
        fn_person *pp = NULL;
        size_t n = 0;
        if (fn_people_list(lib, &pp, &n) != 0 || n != 1) _exit(12);
        fn_persons_free(pp, n);
        if (fn_people_create(lib, "Bob", NULL, NULL) != FN_ERR_READONLY) _exit(13);
        if (!strstr(fn_library_errmsg(lib), "read-only")) _exit(14);
        if (fn_faces_unassign(lib, &one, 1, NULL) != FN_ERR_READONLY) _exit(15);
        if (fn_people_undo(lib, 0, NULL) != FN_ERR_READONLY) _exit(16);
        fn_library_close(lib);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    chmod(f->dir, 0755);
    chmod(db, 0644);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    char *after = dump(f);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_and_undo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assign_move_undo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unassign_ignore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_name_cluster, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(test_merge_unmerge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_suggestions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undo_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assign_named, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redo_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_cover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undo_after_face_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
