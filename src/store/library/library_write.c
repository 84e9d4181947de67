/* library_write.c: writing photos and their faces inside the job engine's batch transaction.
 *
 * A batch prepares its statements once and binds them per row: an ingest batch is 32 photos and a
 * few hundred faces, and this runs while the database write lock is held, so it must be short.
 * Re-ingesting a photo upserts its row (the path is the key) and replaces its auto faces in the
 * same transaction, so a reader never sees a photo with half its faces.
 *
 * Replacing keeps what people decided (docs/people.md, "Re-ingest"): each new detection is matched
 * to an old auto face of the photo by box overlap (IoU >= 0.5, greedy best-first, one to one), and
 * a matched old face keeps its row (id, person, state, cluster; so suggestions, cannot-links and
 * audit entries still point at it) with only its box, score, landmarks, descriptor and thumbnail
 * renewed. An old face nobody decided (state 'auto', no person) that no detection matches is
 * deleted; one with a person or a state a person set is kept as it was, so a name is never dropped
 * by a job. Unmatched detections are inserted as new faces.
 *
 * A file that is a known photo seen elsewhere (photo_copies.c) writes no photo and no face: its
 * place is recorded as the photo's copy, or the photo moves to it when its known file is gone. */
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "store/library/library_store.h"
#include "store/store_sql.h"
#include "util/clock.h"

enum {
    ST_UPSERT,
    ST_UPSERT_ERROR,
    ST_TOUCH,
    ST_OLD_FACES,
    ST_DEL_FACE,
    ST_UPD_FACE,
    ST_INS_FACE,
    ST_COPY,
    ST_RELINK,
    ST_DEL_COPY,
    ST_COUNT
};

static const char *const sql[ST_COUNT] = {
    /* A photo found again is no longer missing; `models` records which model files computed
     * its faces (library migration 3). */
    [ST_UPSERT] = "INSERT INTO photos (path, size, mtime_ns, hash, width, height, taken_at, format,"
                  " status, error_code, faces_skipped_small, ingested_at, job_id, models, root,"
                  " rel)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, ?10, ?11, ?12, ?13, ?14,"
                  " ?15)"
                  " ON CONFLICT (path) DO UPDATE SET size = ?2, mtime_ns = ?3, hash = ?4,"
                  " width = ?5, height = ?6, taken_at = ?7, format = ?8, status = ?9,"
                  " error_code = NULL, faces_skipped_small = ?10, ingested_at = ?11, job_id = ?12,"
                  " models = ?13, missing_at = NULL, root = coalesce(?14, photos.root),"
                  " rel = coalesce(?15, photos.rel) RETURNING id",
    /* A failed attempt keeps what the row knew (its faces too: a photo that became unreadable
     * should not silently lose the names a user gave its faces). */
    [ST_UPSERT_ERROR] = "INSERT INTO photos (path, size, mtime_ns, status, error_code, ingested_at,"
                        " job_id, root, rel) VALUES (?1, ?2, ?3, 'error', ?4, ?5, ?6, ?7, ?8)"
                        " ON CONFLICT (path) DO UPDATE SET status = 'error', error_code = ?4,"
                        " ingested_at = ?5, job_id = ?6, root = coalesce(?7, photos.root),"
                        " rel = coalesce(?8, photos.rel) RETURNING id",
    [ST_TOUCH] = "UPDATE photos SET mtime_ns = ?2, missing_at = NULL WHERE path = ?1 RETURNING id",
    /* Faces a user drew (origin 'user') are neither matched nor replaced: they stay as drawn.
     * `free`: nobody decided the face, so it may go when no new detection matches it. */
    [ST_OLD_FACES] = "SELECT id, x, y, width, height, state = 'auto' AND person_id IS NULL"
                     " FROM faces WHERE photo_id = ?1 AND origin = 'auto' ORDER BY id",
    [ST_DEL_FACE] = "DELETE FROM faces WHERE id = ?1",
    [ST_UPD_FACE] = "UPDATE faces SET x = ?2, y = ?3, width = ?4, height = ?5, score = ?6,"
                    " landmarks = ?7, descriptor = ?8, thumbnail = ?9 WHERE id = ?1",
    [ST_INS_FACE] =
        "INSERT INTO faces (photo_id, x, y, width, height, score, landmarks, descriptor,"
        " thumbnail, origin, created_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'auto', ?10)",
    /* Photos by content (photo_copies.c): a place where a photo's bytes were found again. */
    [ST_COPY] =
        "INSERT INTO photo_copies (path, photo_id, root, rel, size, mtime_ns, hash, seen_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        " ON CONFLICT (path) DO UPDATE SET photo_id = ?2,"
        " root = coalesce(?3, photo_copies.root), rel = coalesce(?4, photo_copies.rel),"
        " size = ?5, mtime_ns = ?6, hash = ?7, seen_at = ?8 RETURNING photo_id",
    /* The photo follows its file; not onto a path another photo holds by now. */
    [ST_RELINK] = "UPDATE photos SET path = ?2, root = coalesce(?3, root), rel = coalesce(?4, rel),"
                  " size = ?5, mtime_ns = ?6, missing_at = NULL WHERE id = ?1"
                  " AND NOT EXISTS (SELECT 1 FROM photos o WHERE o.path = ?2) RETURNING id",
    [ST_DEL_COPY] = "DELETE FROM photo_copies WHERE path = ?1",
};

static int step_id(fn_store *s, fn_sql_stmt *st, int64_t *id, const char *what)
{
    int rc = fn_sql_step(st);
    if (rc == FN_SQL_ROW) {
        if (id) *id = fn_sql_column_int64(st, 0);
        rc = fn_sql_step(st);
    }
    if (rc != FN_SQL_DONE) return fn_store_fail(s, rc, what);
    return 0;
}

static void bind_text_or_null(fn_sql_stmt *st, int i, const char *v)
{
    if (v && *v)
        fn_sql_bind_text(st, i, v, -1, FN_SQL_STATIC);
    else
        fn_sql_bind_null(st, i);
}

/* Binds a detection's measurements to ?2..?9 (box, score, landmarks, descriptor, thumbnail), the
 * same positions in the insert and the update. */
static void bind_face(fn_sql_stmt *f, const fn_face_put *fp)
{
    fn_sql_bind_double(f, 2, fp->x);
    fn_sql_bind_double(f, 3, fp->y);
    fn_sql_bind_double(f, 4, fp->width);
    fn_sql_bind_double(f, 5, fp->height);
    fn_sql_bind_double(f, 6, fp->score);
    if (fp->landmarks)
        fn_sql_bind_blob(f, 7, fp->landmarks, 68 * 2 * sizeof(float), FN_SQL_STATIC);
    else
        fn_sql_bind_null(f, 7);
    if (fp->descriptor)
        fn_sql_bind_blob(f, 8, fp->descriptor, 128 * sizeof(float), FN_SQL_STATIC);
    else
        fn_sql_bind_null(f, 8);
    if (fp->thumb_jpeg && fp->thumb_len)
        fn_sql_bind_blob(f, 9, fp->thumb_jpeg, (int)fp->thumb_len, FN_SQL_STATIC);
    else
        fn_sql_bind_null(f, 9);
}

typedef struct old_face {
    int64_t id;
    double x, y, w, h;
    int free; /* nobody decided it: deleted when unmatched */
    int matched;
} old_face;

typedef struct face_pair {
    double iou;
    size_t old, put;
} face_pair;

/* Best overlap first; ties by the older face, then the earlier detection, so the match does not
 * depend on qsort's order. */
static int pair_cmp(const void *a, const void *b)
{
    const face_pair *p = a, *q = b;
    if (p->iou != q->iou) return p->iou > q->iou ? -1 : 1;
    if (p->old != q->old) return p->old < q->old ? -1 : 1;
    return p->put < q->put ? -1 : p->put > q->put;
}

static double box_iou(const old_face *o, const fn_face_put *f)
{
    double x0 = o->x > f->x ? o->x : f->x, y0 = o->y > f->y ? o->y : f->y;
    double x1 = o->x + o->w < f->x + f->width ? o->x + o->w : f->x + f->width;
    double y1 = o->y + o->h < f->y + f->height ? o->y + o->h : f->y + f->height;
    double inter = x1 > x0 && y1 > y0 ? (x1 - x0) * (y1 - y0) : 0;
    double uni = o->w * o->h + (double)f->width * f->height - inter;
    return uni > 0 ? inter / uni : 0;
}

/* Replaces photo `photo_id`'s auto faces by the detections `faces`, keeping decided faces (see the
 * comment at the top). A photo has a handful of faces, so all pairs are scored. */
static int replace_faces(fn_store *s, fn_sql_stmt **st, int64_t photo_id, const fn_face_put *faces,
                         size_t n_faces, int64_t now)
{
    old_face *old = NULL;
    face_pair *pairs = NULL;
    int64_t *match = NULL; /* per detection: the old face id it renews, 0 for a new face */
    size_t n_old = 0, cap = 0, n_pairs = 0;
    int rc = 0, src;

    fn_sql_stmt *q = st[ST_OLD_FACES];
    fn_sql_reset(q);
    fn_sql_bind_int64(q, 1, photo_id);
    while ((src = fn_sql_step(q)) == FN_SQL_ROW) {
        if (n_old == cap) {
            size_t ncap = cap ? 2 * cap : 8;
            old_face *grown = realloc(old, ncap * sizeof *old);
            if (!grown) {
                rc = FN_ERR_NOMEM;
                goto out;
            }
            old = grown;
            cap = ncap;
        }
        old[n_old++] = (old_face){.id = fn_sql_column_int64(q, 0),
                                  .x = fn_sql_column_double(q, 1),
                                  .y = fn_sql_column_double(q, 2),
                                  .w = fn_sql_column_double(q, 3),
                                  .h = fn_sql_column_double(q, 4),
                                  .free = fn_sql_column_int(q, 5)};
    }
    fn_sql_reset(q);
    if (src != FN_SQL_DONE) {
        rc = fn_store_fail(s, src, "reading a photo's faces");
        goto out;
    }

    if (n_faces && !(match = calloc(n_faces, sizeof *match))) {
        rc = FN_ERR_NOMEM;
        goto out;
    }
    if (n_old && n_faces) {
        if (!(pairs = malloc(n_old * n_faces * sizeof *pairs))) {
            rc = FN_ERR_NOMEM;
            goto out;
        }
        for (size_t o = 0; o < n_old; o++)
            for (size_t i = 0; i < n_faces; i++) {
                double v = box_iou(&old[o], &faces[i]);
                if (v >= 0.5) pairs[n_pairs++] = (face_pair){.iou = v, .old = o, .put = i};
            }
        qsort(pairs, n_pairs, sizeof *pairs, pair_cmp);
        for (size_t k = 0; k < n_pairs; k++) {
            const face_pair *pr = &pairs[k];
            if (old[pr->old].matched || match[pr->put]) continue;
            old[pr->old].matched = 1;
            match[pr->put] = old[pr->old].id;
        }
    }

    fn_sql_stmt *d = st[ST_DEL_FACE];
    for (size_t o = 0; o < n_old; o++) {
        if (old[o].matched || !old[o].free) continue;
        fn_sql_reset(d);
        fn_sql_bind_int64(d, 1, old[o].id);
        if ((rc = step_id(s, d, NULL, "removing a face no longer found")) < 0) goto out;
    }
    for (size_t i = 0; i < n_faces; i++) {
        fn_sql_stmt *f = match[i] ? st[ST_UPD_FACE] : st[ST_INS_FACE];
        fn_sql_reset(f);
        bind_face(f, &faces[i]);
        if (match[i]) {
            fn_sql_bind_int64(f, 1, match[i]);
            rc = step_id(s, f, NULL, "renewing a face");
        } else {
            fn_sql_bind_int64(f, 1, photo_id);
            fn_sql_bind_int64(f, 10, now);
            rc = step_id(s, f, NULL, "storing a face");
        }
        if (rc < 0) goto out;
    }
out:
    free(old);
    free(pairs);
    free(match);
    return rc;
}

/* Binds the photo's root and relative path to ?i and ?i+1 (NULL when it has none: the upsert
 * then keeps what the row had). */
static void bind_root(fn_sql_stmt *st, int i, const fn_photo_put *p)
{
    if (p->root > 0 && p->rel) {
        fn_sql_bind_int64(st, i, p->root);
        fn_sql_bind_text(st, i + 1, p->rel, -1, FN_SQL_STATIC);
    } else {
        fn_sql_bind_null(st, i);
        fn_sql_bind_null(st, i + 1);
    }
}

static int del_copy(fn_store *s, fn_sql_stmt **st, const char *path)
{
    fn_sql_stmt *d = st[ST_DEL_COPY];
    fn_sql_reset(d);
    fn_sql_bind_text(d, 1, path, -1, FN_SQL_STATIC);
    return step_id(s, d, NULL, "forgetting a copy of a photo");
}

/* Records the file `p` as a copy of photo `photo` (*id gets the photo's id). */
static int put_copy(fn_store *s, fn_sql_stmt **st, const fn_photo_put *p, int64_t photo,
                    int64_t now, int64_t *id)
{
    fn_sql_stmt *c = st[ST_COPY];
    fn_sql_reset(c);
    fn_sql_bind_text(c, 1, p->path, -1, FN_SQL_STATIC);
    fn_sql_bind_int64(c, 2, photo);
    bind_root(c, 3, p);
    fn_sql_bind_int64(c, 5, p->size);
    fn_sql_bind_int64(c, 6, p->mtime_ns);
    fn_sql_bind_int64(c, 7, (int64_t)p->hash);
    fn_sql_bind_int64(c, 8, now);
    return step_id(s, c, id, "recording a copy of a photo");
}

/* Moves photo p->same_as to the file `p`; a path taken meanwhile makes it a copy instead. */
static int put_relink(fn_store *s, fn_sql_stmt **st, const fn_photo_put *p, int64_t now,
                      int64_t *id)
{
    fn_sql_stmt *u = st[ST_RELINK];
    fn_sql_reset(u);
    fn_sql_bind_int64(u, 1, p->same_as);
    fn_sql_bind_text(u, 2, p->path, -1, FN_SQL_STATIC);
    bind_root(u, 3, p);
    fn_sql_bind_int64(u, 5, p->size);
    fn_sql_bind_int64(u, 6, p->mtime_ns);
    int rc = step_id(s, u, id, "moving a photo to where its file is now");
    if (rc < 0) return rc;
    if (!*id) return put_copy(s, st, p, p->same_as, now, id);
    return del_copy(s, st, p->path);
}

static int put_one(fn_store *s, fn_sql_stmt **st, const fn_photo_put *p, int64_t now, int64_t *id)
{
    int rc;
    *id = 0;
    if (p->kind == FN_PUT_COPY) return put_copy(s, st, p, p->same_as, now, id);
    if (p->kind == FN_PUT_RELINK) return put_relink(s, st, p, now, id);
    if (p->was_copy && (rc = del_copy(s, st, p->path)) < 0) return rc;
    if (p->kind == FN_PUT_RESULT && p->fresh) {
        /* The same photo under another root, stored since the file was considered (another
         * host's commit, or an earlier item of this batch): a copy of it, not a second photo. */
        fn_photo_match m;
        rc = fn_library_photo_same_content(s, p->size, p->hash, p->root, p->rel, p->path, &m);
        if (rc == 0) {
            rc = put_copy(s, st, p, m.id, now, id);
            fn_photo_match_clear(&m);
            return rc;
        }
        if (rc != FN_ERR_NOT_FOUND) return rc;
    }
    if (p->kind == FN_PUT_TOUCH) {
        fn_sql_stmt *t = st[ST_TOUCH];
        fn_sql_reset(t);
        fn_sql_bind_text(t, 1, p->path, -1, FN_SQL_STATIC);
        fn_sql_bind_int64(t, 2, p->mtime_ns);
        return step_id(s, t, id, "recording a photo's new modification time");
    }
    if (p->kind == FN_PUT_ERROR) {
        fn_sql_stmt *t = st[ST_UPSERT_ERROR];
        fn_sql_reset(t);
        fn_sql_bind_text(t, 1, p->path, -1, FN_SQL_STATIC);
        fn_sql_bind_int64(t, 2, p->size);
        fn_sql_bind_int64(t, 3, p->mtime_ns);
        fn_sql_bind_text(t, 4, p->error_code ? p->error_code : "unknown", -1, FN_SQL_STATIC);
        fn_sql_bind_int64(t, 5, now);
        fn_sql_bind_int64(t, 6, p->job_id);
        bind_root(t, 7, p);
        return step_id(s, t, id, "recording a photo that failed");
    }

    fn_sql_stmt *u = st[ST_UPSERT];
    fn_sql_reset(u);
    fn_sql_bind_text(u, 1, p->path, -1, FN_SQL_STATIC);
    fn_sql_bind_int64(u, 2, p->size);
    fn_sql_bind_int64(u, 3, p->mtime_ns);
    fn_sql_bind_int64(u, 4, (int64_t)p->hash);
    fn_sql_bind_int(u, 5, p->width);
    fn_sql_bind_int(u, 6, p->height);
    if (p->taken_at >= 0)
        fn_sql_bind_int64(u, 7, p->taken_at);
    else
        fn_sql_bind_null(u, 7);
    bind_text_or_null(u, 8, p->format);
    fn_sql_bind_text(u, 9, fn_photo_status_name(p->n_faces ? FN_PHOTO_OK : FN_PHOTO_NO_FACES), -1,
                     FN_SQL_STATIC);
    fn_sql_bind_int(u, 10, p->faces_skipped_small);
    fn_sql_bind_int64(u, 11, now);
    fn_sql_bind_int64(u, 12, p->job_id);
    bind_text_or_null(u, 13, p->models);
    bind_root(u, 14, p);
    if ((rc = step_id(s, u, id, "storing a photo")) < 0) return rc;

    return replace_faces(s, st, *id, p->faces, p->n_faces, now);
}

int fn_library_put_photos(fn_store_tx *tx, const fn_photo_put *p, size_t n, int64_t *photo_ids)
{
    fn_store *s = fn_store_tx_store(tx);
    fn_sql_stmt *st[ST_COUNT] = {0};
    int rc = 0;
    int64_t now = fn_wall_ms();

    for (int i = 0; i < ST_COUNT; i++) {
        int src = fn_sql_prepare(s, sql[i], &st[i]);
        if (src != FN_OK) {
            rc = fn_store_fail(s, src, "preparing the photo statements");
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        int64_t id;
        if ((rc = put_one(s, st, &p[i], now, &id)) < 0) goto out;
        if (photo_ids) photo_ids[i] = id;
    }
out:
    for (int i = 0; i < ST_COUNT; i++)
        fn_sql_finalize(st[i]);
    return rc;
}

int fn_library_audit(fn_store_tx *tx, const char *actor, const char *action, const char *detail,
                     int64_t job_id)
{
    fn_store *s = fn_store_tx_store(tx);
    fn_sql_stmt *st = NULL;
    int src = fn_sql_prepare(s,
                             "INSERT INTO audit_log (at, actor, action, detail, job_id)"
                             " VALUES (?1, ?2, ?3, ?4, ?5)",
                             &st);
    if (src != FN_OK) return fn_store_fail(s, src, "preparing an audit entry");
    fn_sql_bind_int64(st, 1, fn_wall_ms());
    fn_sql_bind_text(st, 2, actor ? actor : "user", -1, FN_SQL_STATIC);
    fn_sql_bind_text(st, 3, action, -1, FN_SQL_STATIC);
    bind_text_or_null(st, 4, detail);
    if (job_id)
        fn_sql_bind_int64(st, 5, job_id);
    else
        fn_sql_bind_null(st, 5);
    int rc = step_id(s, st, NULL, "writing an audit entry");
    fn_sql_finalize(st);
    return rc;
}
