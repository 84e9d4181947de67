/* predict_store.c: the predict job's SQL (see predict_store.h): the confirmed faces, the faces
 * to predict with what excludes a person for each, and the suggestions written one face at a
 * time in the batch transaction, each re-checked against what a person may have decided since
 * the face was read. */
#include "store/library/predict_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "store/store_sql.h"
#include "util/clock.h"

#define DESC_BYTES (128 * sizeof(float))

static const char sql_refs[] =
    "SELECT f.id, f.person_id, f.descriptor FROM faces f JOIN persons p ON p.id = f.person_id"
    " WHERE f.state = 'confirmed' AND p.deleted_at IS NULL AND f.descriptor IS NOT NULL"
    " ORDER BY f.id";

typedef struct refs_loading {
    float **desc;
    int64_t **person, **face;
    size_t *n, cap;
} refs_loading;

static int ref_row(void *arg, const fn_sql_value *v, int ncols)
{
    (void)ncols;
    refs_loading *l = arg;
    if (v[2].bytes != (int)DESC_BYTES) return 0; /* not a descriptor */
    size_t n = *l->n;
    if (n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        float *d = realloc(*l->desc, l->cap * DESC_BYTES);
        if (d) *l->desc = d;
        int64_t *p = realloc(*l->person, l->cap * sizeof *p);
        if (p) *l->person = p;
        int64_t *f = realloc(*l->face, l->cap * sizeof *f);
        if (f) *l->face = f;
        if (!d || !p || !f) return FN_ERR_NOMEM;
    }
    (*l->face)[n] = v[0].i;
    (*l->person)[n] = v[1].i;
    memcpy(*l->desc + n * 128, v[2].blob, DESC_BYTES);
    (*l->n)++;
    return 0;
}

int fn_predict_load_refs(fn_store *s, float **desc, int64_t **person, int64_t **face, size_t *n)
{
    *desc = NULL;
    *person = *face = NULL;
    *n = 0;
    /* Every confirmed face's descriptor: a bulk read (one round trip on PostgreSQL). */
    refs_loading l = {desc, person, face, n, 0};
    int rc = fn_sql_bulk_read(s, sql_refs, NULL, 0, 3, ref_row, &l);
    if (rc == FN_ERR_NOMEM) return rc;
    if (rc != FN_OK) return fn_store_fail(s, rc, "reading the confirmed faces");
    return 0;
}

static const char sql_count[] =
    "SELECT count(*) FROM faces WHERE person_id IS NULL AND state = 'auto'"
    " AND descriptor IS NOT NULL";

int fn_predict_count_faces(fn_store *s, int64_t *n)
{
    *n = 0;
    fn_sql_stmt *st = fn_store_stmt(s, sql_count);
    if (!st) return FN_ERR_DB;
    int rc = fn_sql_step(st);
    if (rc == FN_SQL_ROW) *n = fn_sql_column_int64(st, 0);
    fn_sql_reset(st);
    if (rc != FN_SQL_ROW) return fn_store_fail(s, rc, "counting the faces to predict");
    return 0;
}

/* `photo_id >= ?1` repeats the key's first part in a form the faces_photo index can start from:
 * with the OR alone, PostgreSQL walked the index from the first photo and filtered up to the
 * page, each page (200 ms a page at 100k faces, quadratic in all). */
static const char sql_page[] =
    "SELECT id, photo_id, descriptor FROM faces WHERE person_id IS NULL AND state = 'auto'"
    " AND descriptor IS NOT NULL AND photo_id >= ?1"
    " AND (photo_id > ?1 OR (photo_id = ?1 AND id > ?2)) ORDER BY photo_id, id LIMIT ?3";
/* On SQLite the same, walking the faces_photo index: left to itself SQLite picks faces_state or
 * faces_person (equalities that hold for nearly every face), then sorts every face to predict for
 * each page of 256, which made a predict job quadratic in the library's faces. */
static const char sql_page_lite[] =
    "SELECT id, photo_id, descriptor FROM faces INDEXED BY faces_photo WHERE person_id IS NULL"
    " AND state = 'auto' AND descriptor IS NOT NULL AND photo_id >= ?1"
    " AND (photo_id > ?1 OR (photo_id = ?1 AND id > ?2)) ORDER BY photo_id, id LIMIT ?3";

/* The persons each face of a page must not be suggested as: its cannot-links, and the persons of
 * the other faces of its photo; for all the page's faces in one read, the page being the faces of
 * sql_page from after (?1, ?2) up to and including (?3, ?4) in (photo, face) order. (One query
 * per face was a round trip per face on PostgreSQL.) The BETWEEN repeats the range in a form both
 * engines can look up in the faces_photo index; without it each page scanned the whole table. */
static const char sql_excl_page[] =
    "SELECT q.id, c.person_id FROM faces q JOIN cannot_links c ON c.face_id = q.id"
    " WHERE q.person_id IS NULL AND q.state = 'auto' AND q.descriptor IS NOT NULL"
    " AND (q.photo_id > ?1 OR (q.photo_id = ?1 AND q.id > ?2))"
    " AND q.photo_id BETWEEN ?1 AND ?3 AND (q.photo_id < ?3 OR (q.photo_id = ?3 AND q.id <= ?4))"
    " UNION SELECT q.id, f.person_id FROM faces q JOIN faces f ON f.photo_id = q.photo_id"
    " AND f.id <> q.id AND f.person_id IS NOT NULL"
    " WHERE q.person_id IS NULL AND q.state = 'auto' AND q.descriptor IS NOT NULL"
    " AND (q.photo_id > ?1 OR (q.photo_id = ?1 AND q.id > ?2))"
    " AND q.photo_id BETWEEN ?1 AND ?3 AND (q.photo_id < ?3 OR (q.photo_id = ?3 AND q.id <= ?4))"
    " ORDER BY 1, 2";
/* SQLite: the page's faces looked up in faces_photo (as sql_page_lite). */
static const char sql_excl_page_lite[] =
    "SELECT q.id, c.person_id FROM faces q INDEXED BY faces_photo JOIN cannot_links c ON c.face_id "
    "= q.id"
    " WHERE q.person_id IS NULL AND q.state = 'auto' AND q.descriptor IS NOT NULL"
    " AND (q.photo_id > ?1 OR (q.photo_id = ?1 AND q.id > ?2))"
    " AND q.photo_id BETWEEN ?1 AND ?3 AND (q.photo_id < ?3 OR (q.photo_id = ?3 AND q.id <= ?4))"
    " UNION SELECT q.id, f.person_id FROM faces q INDEXED BY faces_photo JOIN faces f ON "
    "f.photo_id = q.photo_id"
    " AND f.id <> q.id AND f.person_id IS NOT NULL"
    " WHERE q.person_id IS NULL AND q.state = 'auto' AND q.descriptor IS NOT NULL"
    " AND (q.photo_id > ?1 OR (q.photo_id = ?1 AND q.id > ?2))"
    " AND q.photo_id BETWEEN ?1 AND ?3 AND (q.photo_id < ?3 OR (q.photo_id = ?3 AND q.id <= ?4))"
    " ORDER BY 1, 2";

/* The page's faces by id, to hand each exclusion to its face. */
typedef struct excl_loading {
    fn_predict_face *out;
    size_t *by_id; /* indices into out, sorted by face id */
    size_t n;
} excl_loading;

static _Thread_local const fn_predict_face *sort_page;

static int by_face_id(const void *x, const void *y)
{
    int64_t a = sort_page[*(const size_t *)x].face, b = sort_page[*(const size_t *)y].face;
    return (a > b) - (a < b);
}

static int excl_row(void *arg, const fn_sql_value *v, int ncols)
{
    (void)ncols;
    excl_loading *l = arg;
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (l->out[l->by_id[mid]].face < v[0].i)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == l->n || l->out[l->by_id[lo]].face != v[0].i) return 0; /* not in this page */
    fn_predict_face *f = &l->out[l->by_id[lo]];
    if (f->no_desc) return 0; /* nothing will be predicted for it */
    /* Rows come by face: a face's list grows by doubling from 4. */
    if (f->n_excl == 0 || (f->n_excl >= 4 && !(f->n_excl & (f->n_excl - 1)))) {
        size_t cap = f->n_excl ? f->n_excl * 2 : 4;
        int64_t *e = realloc(f->excl, cap * sizeof *e);
        if (!e) return FN_ERR_NOMEM;
        f->excl = e;
    }
    f->excl[f->n_excl++] = v[1].i;
    return 0;
}

static int exclusions(fn_store *s, int64_t after_photo, int64_t after_face, fn_predict_face *out,
                      size_t n)
{
    if (!n) return 0;
    size_t *by_id = malloc(n * sizeof *by_id);
    if (!by_id) return FN_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        by_id[i] = i;
    sort_page = out;
    qsort(by_id, n, sizeof *by_id, by_face_id);
    int64_t params[4] = {after_photo, after_face, out[n - 1].photo, out[n - 1].face};
    excl_loading l = {out, by_id, n};
    int rc = fn_sql_bulk_read(s, FN_SQL_PICK(s, sql_excl_page_lite, sql_excl_page), params, 4, 2,
                              excl_row, &l);
    free(by_id);
    if (rc == FN_ERR_NOMEM) return rc;
    if (rc != FN_OK) return fn_store_fail(s, rc, "reading the faces' cannot-links");
    return 0;
}

typedef struct page_loading {
    fn_predict_face *out;
    size_t *n, max;
} page_loading;

static int page_row(void *arg, const fn_sql_value *v, int ncols)
{
    (void)ncols;
    page_loading *l = arg;
    if (*l->n == l->max) return 0; /* LIMIT says no more; never reached */
    fn_predict_face *f = &l->out[*l->n];
    memset(f, 0, sizeof *f);
    f->face = v[0].i;
    f->photo = v[1].i;
    if (v[2].bytes != (int)DESC_BYTES)
        f->no_desc = 1; /* nothing to predict from; it still moves the cursor */
    else
        memcpy(f->desc, v[2].blob, DESC_BYTES);
    (*l->n)++;
    return 0;
}

int fn_predict_faces_page(fn_store *s, int64_t after_photo, int64_t after_face, size_t max,
                          fn_predict_face *out, size_t *n)
{
    *n = 0;
    /* A page of faces with their descriptors: a bulk read. */
    int64_t params[3] = {after_photo, after_face, (int64_t)max};
    page_loading l = {out, n, max};
    int rc =
        fn_sql_bulk_read(s, FN_SQL_PICK(s, sql_page_lite, sql_page), params, 3, 3, page_row, &l);
    if (rc == FN_ERR_NOMEM) return rc;
    if (rc != FN_OK) return fn_store_fail(s, rc, "reading the faces to predict");
    return exclusions(s, after_photo, after_face, out, *n);
}

/* ---- writing ------------------------------------------------------------------------------- */

static const char sql_drop[] = "DELETE FROM suggestions WHERE face_id = ?1";
/* The face may take this person: it has no person and is still 'auto', the person exists and is
 * not deleted, and no cannot-link says otherwise. Returns its origin and cluster. */
static const char sql_check[] =
    "SELECT f.origin, f.cluster_id FROM faces f JOIN persons p ON p.id = ?2"
    " AND p.deleted_at IS NULL WHERE f.id = ?1 AND f.person_id IS NULL AND f.state = 'auto'"
    " AND NOT EXISTS (SELECT 1 FROM cannot_links c WHERE c.face_id = ?1 AND c.person_id = ?2)";
static const char sql_still_free[] =
    "SELECT 1 FROM faces WHERE id = ?1 AND person_id IS NULL AND state = 'auto'";
/* Another face of the photo already is this person. */
static const char sql_photo_has[] =
    "SELECT 1 FROM faces WHERE photo_id = ?1 AND id <> ?2 AND person_id = ?3 LIMIT 1";
/* The best suggestion of this person for an earlier face of the photo (written in this pass:
 * faces go in (photo, face) order). */
static const char sql_photo_rival[] =
    "SELECT max(s.confidence) FROM suggestions s JOIN faces f ON f.id = s.face_id"
    " WHERE f.photo_id = ?1 AND s.face_id < ?2 AND s.person_id = ?3";
static const char sql_photo_drop[] =
    "DELETE FROM suggestions WHERE person_id = ?3 AND face_id <> ?2"
    " AND face_id IN (SELECT id FROM faces WHERE photo_id = ?1 AND id < ?2)";
static const char sql_upsert[] =
    "INSERT INTO suggestions (face_id, person_id, confidence, distance, margin, support_face_id,"
    " job_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    " ON CONFLICT (face_id) DO UPDATE SET person_id = ?2, confidence = ?3, distance = ?4,"
    " margin = ?5, support_face_id = ?6, job_id = ?7, created_at = ?8";
static const char sql_accept[] =
    "UPDATE faces SET person_id = ?2, state = 'confirmed' WHERE id = ?1 AND person_id IS NULL"
    " AND state = 'auto' AND origin = 'auto'";
static const char sql_audit[] = "INSERT INTO audit_log (at, actor, action, detail, job_id)"
                                " VALUES (?1, ?2, 'suggestion.accept', ?3, ?4) RETURNING id";
static const char sql_audit_detail[] = "UPDATE audit_log SET detail = ?2 WHERE id = ?1";
static const char sql_audit_face[] =
    "INSERT INTO audit_faces (audit_id, face_id, person_before, person_after, state_before,"
    " state_after, cluster_before, cluster_after)"
    " VALUES (?1, ?2, NULL, ?3, 'auto', 'confirmed', ?4, ?4)";

/* Steps a statement that returns at most one row: 1 with a row (left for reading), 0 without;
 * the caller resets it. */
static int step_row(fn_store *s, fn_sql_stmt *st, const char *what)
{
    int rc = fn_sql_step(st);
    if (rc == FN_SQL_ROW) return 1;
    if (rc == FN_SQL_DONE) return 0;
    return fn_store_fail(s, rc, what);
}

static int exec_face(fn_store *s, const char *sql, int64_t face, int *changed)
{
    fn_sql_stmt *st = fn_store_stmt(s, sql);
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, face);
    int rc = fn_sql_step(st);
    fn_sql_reset(st);
    if (rc != FN_SQL_DONE) return fn_store_fail(s, rc, "writing a suggestion");
    if (changed) *changed = fn_sql_changes(s) > 0;
    return 0;
}

static int put_one(fn_store *s, const fn_predict_put *p, int64_t job_id, double accept_min,
                   int64_t now, int64_t *audit_id, int64_t *accepted, int *outcome)
{
    int rc, changed = 0;
    if (p->person == 0) {
        if ((rc = exec_face(s, sql_drop, p->face, &changed)) < 0) return rc;
        *outcome = changed ? FN_PREDICT_DROPPED : FN_PREDICT_NONE;
        return 0;
    }
    fn_sql_stmt *st = fn_store_stmt(s, sql_check);
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, p->face);
    fn_sql_bind_int64(st, 2, p->person);
    rc = step_row(s, st, "checking a face before suggesting");
    int user_drawn = 0;
    int64_t cluster = 0;
    int has_cluster = 0;
    if (rc == 1) {
        const char *origin = fn_sql_column_text(st, 0);
        user_drawn = origin && strcmp((const char *)origin, "user") == 0;
        has_cluster = fn_sql_column_type(st, 1) != FN_SQL_NULL;
        cluster = fn_sql_column_int64(st, 1);
    }
    fn_sql_reset(st);
    if (rc < 0) return rc;
    if (rc == 0) {
        /* A person decided since the face was read (it has a person, was ignored, the person
         * was deleted or rejected for it): leave the face as it is; a suggestion it still has
         * for a face without a person is stale. */
        st = fn_store_stmt(s, sql_still_free);
        if (!st) return FN_ERR_DB;
        fn_sql_bind_int64(st, 1, p->face);
        rc = step_row(s, st, "checking a face before suggesting");
        fn_sql_reset(st);
        if (rc < 0) return rc;
        if (rc == 1 && (rc = exec_face(s, sql_drop, p->face, NULL)) < 0) return rc;
        *outcome = FN_PREDICT_SKIPPED;
        return 0;
    }

    /* Two faces of one photo are two people. */
    st = fn_store_stmt(s, sql_photo_has);
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, p->photo);
    fn_sql_bind_int64(st, 2, p->face);
    fn_sql_bind_int64(st, 3, p->person);
    rc = step_row(s, st, "checking a photo's other faces");
    fn_sql_reset(st);
    if (rc < 0) return rc;
    int lose = rc == 1;
    if (!lose) {
        st = fn_store_stmt(s, sql_photo_rival);
        if (!st) return FN_ERR_DB;
        fn_sql_bind_int64(st, 1, p->photo);
        fn_sql_bind_int64(st, 2, p->face);
        fn_sql_bind_int64(st, 3, p->person);
        rc = step_row(s, st, "checking a photo's other suggestions");
        if (rc == 1 && fn_sql_column_type(st, 0) != FN_SQL_NULL)
            lose = fn_sql_column_double(st, 0) >= (double)p->confidence;
        fn_sql_reset(st);
        if (rc < 0) return rc;
    }
    if (lose) {
        if ((rc = exec_face(s, sql_drop, p->face, NULL)) < 0) return rc;
        *outcome = FN_PREDICT_SAME_PHOTO;
        return 0;
    }
    st = fn_store_stmt(s, sql_photo_drop);
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, p->photo);
    fn_sql_bind_int64(st, 2, p->face);
    fn_sql_bind_int64(st, 3, p->person);
    rc = fn_sql_step(st);
    fn_sql_reset(st);
    if (rc != FN_SQL_DONE) return fn_store_fail(s, rc, "dropping a weaker suggestion");

    if ((double)p->confidence >= accept_min && !user_drawn) {
        if (!*audit_id) {
            st = fn_store_stmt(s, sql_audit);
            if (!st) return FN_ERR_DB;
            char actor[48];
            snprintf(actor, sizeof actor, "job:%lld", (long long)job_id);
            fn_sql_bind_int64(st, 1, now);
            fn_sql_bind_text(st, 2, actor, -1, FN_SQL_TRANSIENT);
            fn_sql_bind_null(st, 3);
            fn_sql_bind_int64(st, 4, job_id);
            rc = step_row(s, st, "writing the audit entry of accepted suggestions");
            if (rc == 1) *audit_id = fn_sql_column_int64(st, 0);
            fn_sql_reset(st);
            if (rc < 0) return rc;
            if (rc == 0) return fn_store_fail(s, FN_ERR_DB, "an audit entry without an id");
        }
        st = fn_store_stmt(s, sql_accept);
        if (!st) return FN_ERR_DB;
        fn_sql_bind_int64(st, 1, p->face);
        fn_sql_bind_int64(st, 2, p->person);
        rc = fn_sql_step(st);
        fn_sql_reset(st);
        if (rc != FN_SQL_DONE) return fn_store_fail(s, rc, "confirming a face");
        st = fn_store_stmt(s, sql_audit_face);
        if (!st) return FN_ERR_DB;
        fn_sql_bind_int64(st, 1, *audit_id);
        fn_sql_bind_int64(st, 2, p->face);
        fn_sql_bind_int64(st, 3, p->person);
        if (has_cluster)
            fn_sql_bind_int64(st, 4, cluster);
        else
            fn_sql_bind_null(st, 4);
        rc = fn_sql_step(st);
        fn_sql_reset(st);
        if (rc != FN_SQL_DONE) return fn_store_fail(s, rc, "auditing a confirmed face");
        if ((rc = exec_face(s, sql_drop, p->face, NULL)) < 0) return rc;
        (*accepted)++;
        *outcome = FN_PREDICT_ACCEPTED;
        return 0;
    }

    st = fn_store_stmt(s, sql_upsert);
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, p->face);
    fn_sql_bind_int64(st, 2, p->person);
    fn_sql_bind_double(st, 3, p->confidence);
    fn_sql_bind_double(st, 4, p->distance);
    fn_sql_bind_double(st, 5, p->margin);
    if (p->support_face)
        fn_sql_bind_int64(st, 6, p->support_face);
    else
        fn_sql_bind_null(st, 6);
    if (job_id)
        fn_sql_bind_int64(st, 7, job_id);
    else
        fn_sql_bind_null(st, 7);
    fn_sql_bind_int64(st, 8, now);
    rc = fn_sql_step(st);
    fn_sql_reset(st);
    if (rc != FN_SQL_DONE) return fn_store_fail(s, rc, "writing a suggestion");
    *outcome = FN_PREDICT_SUGGESTED;
    return 0;
}

int fn_predict_put_batch(fn_store_tx *tx, const fn_predict_put *p, size_t n, int64_t job_id,
                         double accept_min, int *outcome, int64_t *audit_id)
{
    fn_store *s = fn_store_tx_store(tx);
    int64_t now = fn_wall_ms(), audit = 0, accepted = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        int out = FN_PREDICT_NONE;
        rc = put_one(s, &p[i], job_id, accept_min, now, &audit, &accepted, &out);
        if (outcome) outcome[i] = out;
    }
    if (rc == 0 && audit) {
        /* what a UI shows for the entry: how many faces, and why */
        char detail[160];
        snprintf(detail, sizeof detail,
                 "{\"faces\":%lld,\"auto_accept\":true,\"min_confidence\":%.3f}",
                 (long long)accepted, accept_min);
        fn_sql_stmt *st = fn_store_stmt(s, sql_audit_detail);
        if (!st) return FN_ERR_DB;
        fn_sql_bind_int64(st, 1, audit);
        fn_sql_bind_text(st, 2, detail, -1, FN_SQL_TRANSIENT);
        int src = fn_sql_step(st);
        fn_sql_reset(st);
        if (src != FN_SQL_DONE) rc = fn_store_fail(s, src, "writing the audit entry's detail");
    }
    if (audit_id) *audit_id = audit;
    return rc;
}

static const char sql_per_person[] =
    "SELECT person_id, count(*) FROM suggestions GROUP BY person_id";

int fn_predict_suggestions_per_person(fn_store *s, void (*cb)(int64_t person, int64_t n, void *),
                                      void *arg)
{
    fn_sql_stmt *st = fn_store_stmt(s, sql_per_person);
    if (!st) return FN_ERR_DB;
    int rc;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW)
        cb(fn_sql_column_int64(st, 0), fn_sql_column_int64(st, 1), arg);
    fn_sql_reset(st);
    if (rc != FN_SQL_DONE) return fn_store_fail(s, rc, "counting suggestions per person");
    return 0;
}
