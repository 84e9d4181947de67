/* library_write.c: writing photos and their faces inside the job engine's batch transaction.
 *
 * A batch prepares its statements once and binds them per row: an ingest batch is 32 photos and a
 * few hundred faces, and this runs while the database write lock is held, so it must be short.
 * Re-ingesting a photo upserts its row (the path is the key) and replaces its auto faces in the
 * same transaction, so a reader never sees a photo with half its faces. */
#include <string.h>

#include "facenames/error.h"
#include "store/library/library_store.h"
#include "store/store_sql.h"
#include "util/clock.h"

enum { ST_UPSERT, ST_UPSERT_ERROR, ST_TOUCH, ST_DEL_FACES, ST_INS_FACE, ST_COUNT };

static const char *const sql[ST_COUNT] = {
    /* A photo found again is no longer missing; `models` records which model files computed
     * its faces (library migration 3). */
    [ST_UPSERT] = "INSERT INTO photos (path, size, mtime_ns, hash, width, height, taken_at, format,"
                  " status, error_code, faces_skipped_small, ingested_at, job_id, models)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, ?10, ?11, ?12, ?13)"
                  " ON CONFLICT (path) DO UPDATE SET size = ?2, mtime_ns = ?3, hash = ?4,"
                  " width = ?5, height = ?6, taken_at = ?7, format = ?8, status = ?9,"
                  " error_code = NULL, faces_skipped_small = ?10, ingested_at = ?11, job_id = ?12,"
                  " models = ?13, missing_at = NULL RETURNING id",
    /* A failed attempt keeps what the row knew (its faces too: a photo that became unreadable
     * should not silently lose the names a user gave its faces). */
    [ST_UPSERT_ERROR] = "INSERT INTO photos (path, size, mtime_ns, status, error_code, ingested_at,"
                        " job_id) VALUES (?1, ?2, ?3, 'error', ?4, ?5, ?6)"
                        " ON CONFLICT (path) DO UPDATE SET status = 'error', error_code = ?4,"
                        " ingested_at = ?5, job_id = ?6 RETURNING id",
    [ST_TOUCH] = "UPDATE photos SET mtime_ns = ?2, missing_at = NULL WHERE path = ?1 RETURNING id",
    [ST_DEL_FACES] = "DELETE FROM faces WHERE photo_id = ?1 AND origin = 'auto'",
    [ST_INS_FACE] =
        "INSERT INTO faces (photo_id, x, y, width, height, score, landmarks, descriptor,"
        " thumbnail, origin, created_at)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'auto', ?10)",
};

static int step_id(fn_store *s, sqlite3_stmt *st, int64_t *id, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (id) *id = sqlite3_column_int64(st, 0);
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE) return fn_store_fail(s, rc, what);
    return 0;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *v)
{
    if (v && *v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static int put_one(fn_store *s, sqlite3_stmt **st, const fn_photo_put *p, int64_t now, int64_t *id)
{
    int rc;
    *id = 0;
    if (p->kind == FN_PUT_TOUCH) {
        sqlite3_stmt *t = st[ST_TOUCH];
        sqlite3_reset(t);
        sqlite3_bind_text(t, 1, p->path, -1, SQLITE_STATIC);
        sqlite3_bind_int64(t, 2, p->mtime_ns);
        return step_id(s, t, id, "recording a photo's new modification time");
    }
    if (p->kind == FN_PUT_ERROR) {
        sqlite3_stmt *t = st[ST_UPSERT_ERROR];
        sqlite3_reset(t);
        sqlite3_bind_text(t, 1, p->path, -1, SQLITE_STATIC);
        sqlite3_bind_int64(t, 2, p->size);
        sqlite3_bind_int64(t, 3, p->mtime_ns);
        sqlite3_bind_text(t, 4, p->error_code ? p->error_code : "unknown", -1, SQLITE_STATIC);
        sqlite3_bind_int64(t, 5, now);
        sqlite3_bind_int64(t, 6, p->job_id);
        return step_id(s, t, id, "recording a photo that failed");
    }

    sqlite3_stmt *u = st[ST_UPSERT];
    sqlite3_reset(u);
    sqlite3_bind_text(u, 1, p->path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(u, 2, p->size);
    sqlite3_bind_int64(u, 3, p->mtime_ns);
    sqlite3_bind_int64(u, 4, (int64_t)p->hash);
    sqlite3_bind_int(u, 5, p->width);
    sqlite3_bind_int(u, 6, p->height);
    if (p->taken_at >= 0)
        sqlite3_bind_int64(u, 7, p->taken_at);
    else
        sqlite3_bind_null(u, 7);
    bind_text_or_null(u, 8, p->format);
    sqlite3_bind_text(u, 9, fn_photo_status_name(p->n_faces ? FN_PHOTO_OK : FN_PHOTO_NO_FACES), -1,
                      SQLITE_STATIC);
    sqlite3_bind_int(u, 10, p->faces_skipped_small);
    sqlite3_bind_int64(u, 11, now);
    sqlite3_bind_int64(u, 12, p->job_id);
    bind_text_or_null(u, 13, p->models);
    if ((rc = step_id(s, u, id, "storing a photo")) < 0) return rc;

    sqlite3_stmt *d = st[ST_DEL_FACES];
    sqlite3_reset(d);
    sqlite3_bind_int64(d, 1, *id);
    if ((rc = step_id(s, d, NULL, "replacing a photo's faces")) < 0) return rc;

    sqlite3_stmt *f = st[ST_INS_FACE];
    for (size_t i = 0; i < p->n_faces; i++) {
        const fn_face_put *fp = &p->faces[i];
        sqlite3_reset(f);
        sqlite3_bind_int64(f, 1, *id);
        sqlite3_bind_double(f, 2, fp->x);
        sqlite3_bind_double(f, 3, fp->y);
        sqlite3_bind_double(f, 4, fp->width);
        sqlite3_bind_double(f, 5, fp->height);
        sqlite3_bind_double(f, 6, fp->score);
        if (fp->landmarks)
            sqlite3_bind_blob(f, 7, fp->landmarks, 68 * 2 * sizeof(float), SQLITE_STATIC);
        else
            sqlite3_bind_null(f, 7);
        if (fp->descriptor)
            sqlite3_bind_blob(f, 8, fp->descriptor, 128 * sizeof(float), SQLITE_STATIC);
        else
            sqlite3_bind_null(f, 8);
        if (fp->thumb_jpeg && fp->thumb_len)
            sqlite3_bind_blob(f, 9, fp->thumb_jpeg, (int)fp->thumb_len, SQLITE_STATIC);
        else
            sqlite3_bind_null(f, 9);
        sqlite3_bind_int64(f, 10, now);
        if ((rc = step_id(s, f, NULL, "storing a face")) < 0) return rc;
    }
    return 0;
}

int fn_library_put_photos(fn_store_tx *tx, const fn_photo_put *p, size_t n, int64_t *photo_ids)
{
    fn_store *s = fn_store_tx_store(tx);
    sqlite3 *db = fn_store_db(s);
    sqlite3_stmt *st[ST_COUNT] = {0};
    int rc = 0;
    int64_t now = fn_wall_ms();

    for (int i = 0; i < ST_COUNT; i++) {
        int src = sqlite3_prepare_v2(db, sql[i], -1, &st[i], NULL);
        if (src != SQLITE_OK) {
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
        sqlite3_finalize(st[i]);
    return rc;
}

int fn_library_audit(fn_store_tx *tx, const char *actor, const char *action, const char *detail,
                     int64_t job_id)
{
    fn_store *s = fn_store_tx_store(tx);
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(fn_store_db(s),
                                 "INSERT INTO audit_log (at, actor, action, detail, job_id)"
                                 " VALUES (?1, ?2, ?3, ?4, ?5)",
                                 -1, &st, NULL);
    if (src != SQLITE_OK) return fn_store_fail(s, src, "preparing an audit entry");
    sqlite3_bind_int64(st, 1, fn_wall_ms());
    sqlite3_bind_text(st, 2, actor ? actor : "user", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, action, -1, SQLITE_STATIC);
    bind_text_or_null(st, 4, detail);
    if (job_id)
        sqlite3_bind_int64(st, 5, job_id);
    else
        sqlite3_bind_null(st, 5);
    int rc = step_id(s, st, NULL, "writing an audit entry");
    sqlite3_finalize(st);
    return rc;
}
