/* library_read.c: reading photos and faces: the lookups ingest does for every file (cached
 * statements, one indexed probe each) and the listings the CLI prints (streamed through a
 * callback, so listing a million faces needs no more memory than one row). */
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "store/library/library_store.h"
#include "store/store_sql.h"

#define PHOTO_COLS                                                                                 \
    "p.id, p.path, p.size, p.mtime_ns, p.hash, p.width, p.height, p.taken_at, p.format, p.status," \
    " p.error_code, (SELECT count(*) FROM faces f WHERE f.photo_id = p.id),"                       \
    " p.faces_skipped_small, p.ingested_at, p.job_id"

struct fn_library_reader {
    fn_store *s;
    fn_sql_stmt *by_path, *by_id, *probe, *probe_rel;
    int holding;
};

void fn_photo_row_clear(fn_photo_row *r)
{
    if (!r) return;
    free(r->path);
    r->path = NULL;
}

void fn_face_row_clear(fn_face_row *r)
{
    if (!r) return;
    free(r->photo_path);
    r->photo_path = NULL;
}

static void copy_text(char *dst, size_t cap, const char *src)
{
    dst[0] = 0;
    if (src) {
        strncpy(dst, src, cap - 1);
        dst[cap - 1] = 0;
    }
}

/* Fills r from a row of PHOTO_COLS; r->path is malloc'd unless `borrow`. */
static int photo_from_row(fn_sql_stmt *st, fn_photo_row *r, int borrow)
{
    memset(r, 0, sizeof *r);
    r->id = fn_sql_column_int64(st, 0);
    const char *path = fn_sql_column_text(st, 1);
    r->path = borrow ? (char *)path : strdup(path ? path : "");
    if (!r->path) return FN_ERR_NOMEM;
    r->size = fn_sql_column_int64(st, 2);
    r->mtime_ns = fn_sql_column_int64(st, 3);
    r->hash = (uint64_t)fn_sql_column_int64(st, 4);
    r->width = fn_sql_column_int(st, 5);
    r->height = fn_sql_column_int(st, 6);
    r->taken_at = fn_sql_column_type(st, 7) == FN_SQL_NULL ? -1 : fn_sql_column_int64(st, 7);
    copy_text(r->format, sizeof r->format, fn_sql_column_text(st, 8));
    fn_photo_status status = FN_PHOTO_ERROR;
    fn_photo_status_parse(fn_sql_column_text(st, 9), &status);
    r->status = status;
    copy_text(r->error_code, sizeof r->error_code, fn_sql_column_text(st, 10));
    r->n_faces = fn_sql_column_int(st, 11);
    r->faces_skipped_small = fn_sql_column_int(st, 12);
    r->ingested_at = fn_sql_column_int64(st, 13);
    r->job_id = fn_sql_column_int64(st, 14);
    return 0;
}

int fn_library_reader_new(fn_store *s, fn_library_reader **out)
{
    *out = NULL;
    fn_library_reader *r = calloc(1, sizeof *r);
    if (!r) return FN_ERR_NOMEM;
    r->s = s;
    int rc =
        fn_sql_prepare(s, "SELECT " PHOTO_COLS " FROM photos p WHERE p.path = ?1", &r->by_path);
    if (rc == FN_OK)
        rc = fn_sql_prepare(s, "SELECT " PHOTO_COLS " FROM photos p WHERE p.id = ?1", &r->by_id);
    if (rc == FN_OK)
        rc = fn_sql_prepare(s,
                            "SELECT id, size, mtime_ns, hash, status, ingested_at FROM photos"
                            " WHERE path = ?1",
                            &r->probe);
    if (rc == FN_OK)
        rc = fn_sql_prepare(s,
                            "SELECT id, size, mtime_ns, hash, status, ingested_at, path FROM photos"
                            " WHERE root = ?1 AND rel = ?2 ORDER BY id LIMIT 1",
                            &r->probe_rel);
    if (rc != FN_OK) {
        int err = fn_store_fail(s, rc, "preparing photo lookups");
        fn_library_reader_free(r);
        return err;
    }
    *out = r;
    return 0;
}

int fn_library_reader_hold(fn_library_reader *r, int on)
{
    if (!!on == r->holding) return 0;
    int rc = fn_sql_exec(r->s, on ? "BEGIN" : "COMMIT");
    if (rc != FN_OK) return fn_store_fail(r->s, rc, "holding a read transaction");
    r->holding = !!on;
    return 0;
}

void fn_library_reader_free(fn_library_reader *r)
{
    if (!r) return;
    fn_library_reader_hold(r, 0);
    fn_sql_finalize(r->by_path);
    fn_sql_finalize(r->by_id);
    fn_sql_finalize(r->probe);
    fn_sql_finalize(r->probe_rel);
    free(r);
}

static int lookup(fn_library_reader *r, fn_sql_stmt *st, fn_photo_row *out)
{
    int rc = fn_sql_step(st);
    int ret;
    if (rc == FN_SQL_ROW)
        ret = photo_from_row(st, out, 0);
    else if (rc == FN_SQL_DONE)
        ret = FN_ERR_NOT_FOUND;
    else
        ret = fn_store_fail(r->s, rc, "looking up a photo");
    fn_sql_reset(st);
    return ret;
}

int fn_library_photo_by_path(fn_library_reader *r, const char *path, fn_photo_row *out)
{
    fn_sql_bind_text(r->by_path, 1, path, -1, FN_SQL_TRANSIENT);
    return lookup(r, r->by_path, out);
}

/* Reads a probe row (id, size, mtime_ns, hash, status, ingested_at[, path]) of `st`, bound. */
static int probe_row(fn_library_reader *r, fn_sql_stmt *st, fn_photo_probe *out, char **path)
{
    int rc = fn_sql_step(st), ret = 0;
    if (rc == FN_SQL_ROW) {
        out->id = fn_sql_column_int64(st, 0);
        out->size = fn_sql_column_int64(st, 1);
        out->mtime_ns = fn_sql_column_int64(st, 2);
        out->hash = (uint64_t)fn_sql_column_int64(st, 3);
        fn_photo_status status = FN_PHOTO_ERROR;
        fn_photo_status_parse(fn_sql_column_text(st, 4), &status);
        out->status = status;
        out->ingested_at = fn_sql_column_int64(st, 5);
        if (path) {
            const char *p = fn_sql_column_text(st, 6);
            if (!(*path = strdup(p ? p : ""))) ret = FN_ERR_NOMEM;
        }
    } else if (rc == FN_SQL_DONE) {
        ret = FN_ERR_NOT_FOUND;
    } else {
        ret = fn_store_fail(r->s, rc, "looking up a photo");
    }
    fn_sql_reset(st);
    fn_sql_clear_bindings(st);
    return ret;
}

int fn_library_photo_probe(fn_library_reader *r, const char *path, fn_photo_probe *out)
{
    fn_sql_bind_text(r->probe, 1, path, -1, FN_SQL_STATIC);
    return probe_row(r, r->probe, out, NULL);
}

int fn_library_photo_probe_rel(fn_library_reader *r, int64_t root, const char *rel,
                               fn_photo_probe *out, char **path)
{
    *path = NULL;
    fn_sql_bind_int64(r->probe_rel, 1, root);
    fn_sql_bind_text(r->probe_rel, 2, rel, -1, FN_SQL_STATIC);
    return probe_row(r, r->probe_rel, out, path);
}

int fn_library_photo_by_id(fn_library_reader *r, int64_t id, fn_photo_row *out)
{
    fn_sql_bind_int64(r->by_id, 1, id);
    return lookup(r, r->by_id, out);
}

int fn_library_photo_by_copy(fn_library_reader *r, const char *path, fn_photo_row *out)
{
    fn_photo_probe copy;
    int stale = 0;
    int rc = fn_library_copy_probe(r->s, path, &copy, &stale, NULL);
    return rc ? rc : fn_library_photo_by_id(r, copy.id, out);
}

int fn_library_photos_each(fn_store *s, const fn_photo_filter *f, fn_photo_cb cb, void *arg)
{
    static const fn_photo_filter all = {.status = -1};
    if (!f) f = &all;
        /* The prefix test is a range on the path index: path > 'dir/' and path < 'dir0' ('0'
         * follows
         * '/'), so "photos under a folder" never scans the table. Both the range and the order are
         * byte order: SQLite's, and PostgreSQL's "C" collation whatever the database's default (in
         * en-US, "/p/DIR/x" would fall inside the range of "/p/dir"). */
#define PHOTOS_EACH_SQL(C)                                                                         \
    "SELECT " PHOTO_COLS " FROM photos p"                                                          \
    " WHERE (CAST(?1 AS TEXT) IS NULL OR p.status = ?1)"                                           \
    " AND (CAST(?2 AS TEXT) IS NULL OR (p.path" C " > ?2 || '/' AND p.path" C " < ?2 || '0'))"     \
    " ORDER BY p.path" C " LIMIT ?3 OFFSET ?4"
    fn_sql_stmt *st = NULL;
    int rc = fn_sql_prepare(
        s, FN_SQL_PICK(s, PHOTOS_EACH_SQL(""), PHOTOS_EACH_SQL(" COLLATE \"C\"")), &st);
#undef PHOTOS_EACH_SQL
    if (rc != FN_OK) return fn_store_fail(s, rc, "listing photos");
    if (f->status >= 0)
        fn_sql_bind_text(st, 1, fn_photo_status_name((fn_photo_status)f->status), -1,
                         FN_SQL_STATIC);
    if (f->path_prefix) {
        size_t len = strlen(f->path_prefix);
        while (len > 0 && f->path_prefix[len - 1] == '/')
            len--;
        fn_sql_bind_text(st, 2, f->path_prefix, (int)len, FN_SQL_TRANSIENT);
    }
    fn_sql_bind_int64(st, 3, f->limit ? (int64_t)f->limit : INT64_MAX);
    fn_sql_bind_int64(st, 4, (int64_t)f->offset);
    int ret = 0;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        fn_photo_row row;
        photo_from_row(st, &row, 1);
        if ((ret = cb(&row, arg)) != 0) break;
    }
    if (ret == 0 && rc != FN_SQL_DONE) ret = fn_store_fail(s, rc, "listing photos");
    fn_sql_finalize(st);
    return ret;
}

static void blob_to_floats(fn_sql_stmt *st, int col, float *dst, size_t n, int *has)
{
    const void *b = fn_sql_column_blob(st, col);
    size_t len = (size_t)fn_sql_column_bytes(st, col);
    *has = b && len == n * sizeof(float);
    if (*has) memcpy(dst, b, len);
}

int fn_library_faces_each(fn_store *s, const fn_face_filter *f, fn_face_cb cb, void *arg)
{
    static const fn_face_filter all = {0};
    if (!f) f = &all;
    fn_sql_stmt *st = NULL;
    /* Ordered by path in byte order on both backends (see fn_library_photos_each). */
#define FACES_EACH_SQL(C)                                                                          \
    "SELECT f.id, f.photo_id, p.path, f.x, f.y, f.width, f.height, f.score, f.person_id,"          \
    " f.cluster_id, f.origin, length(f.thumbnail),"                                                \
    " CASE WHEN ?5 THEN f.landmarks END, CASE WHEN ?5 THEN f.descriptor END,"                      \
    " f.state, sp.id, sp.name, s.confidence"                                                       \
    " FROM faces f JOIN photos p ON p.id = f.photo_id"                                             \
    " LEFT JOIN suggestions s ON s.face_id = f.id AND f.person_id IS NULL"                         \
    " AND f.state = 'auto'"                                                                        \
    " LEFT JOIN persons sp ON sp.id = s.person_id AND sp.deleted_at IS NULL"                       \
    " WHERE (?1 = 0 OR f.photo_id = ?1)"                                                           \
    " AND (?2 = 0 OR (?2 = -1 AND f.person_id IS NULL) OR f.person_id = ?2)"                       \
    " AND (?3 = 0 OR (?3 = -1 AND f.cluster_id IS NULL) OR f.cluster_id = ?3)"                     \
    " ORDER BY p.path" C ", f.id LIMIT ?4 OFFSET ?6"
    int rc = fn_sql_prepare(s, FN_SQL_PICK(s, FACES_EACH_SQL(""), FACES_EACH_SQL(" COLLATE \"C\"")),
                            &st);
#undef FACES_EACH_SQL
    if (rc != FN_OK) return fn_store_fail(s, rc, "listing faces");
    fn_sql_bind_int64(st, 1, f->photo_id);
    fn_sql_bind_int64(st, 2, f->person_id);
    fn_sql_bind_int64(st, 3, f->cluster_id);
    fn_sql_bind_int64(st, 4, f->limit ? (int64_t)f->limit : INT64_MAX);
    fn_sql_bind_int(st, 5, f->with_vectors ? 1 : 0);
    fn_sql_bind_int64(st, 6, (int64_t)f->offset);
    int ret = 0;
    fn_face_row *row = malloc(sizeof *row);
    if (!row) {
        fn_sql_finalize(st);
        return FN_ERR_NOMEM;
    }
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        memset(row, 0, sizeof *row);
        row->id = fn_sql_column_int64(st, 0);
        row->photo_id = fn_sql_column_int64(st, 1);
        row->photo_path = (char *)fn_sql_column_text(st, 2);
        row->x = (float)fn_sql_column_double(st, 3);
        row->y = (float)fn_sql_column_double(st, 4);
        row->width = (float)fn_sql_column_double(st, 5);
        row->height = (float)fn_sql_column_double(st, 6);
        row->score = (float)fn_sql_column_double(st, 7);
        row->person_id = fn_sql_column_int64(st, 8);
        row->cluster_id = fn_sql_column_int64(st, 9);
        const char *origin = fn_sql_column_text(st, 10);
        row->origin_user = origin && strcmp(origin, "user") == 0;
        row->thumb_len = (size_t)fn_sql_column_int64(st, 11);
        if (f->with_vectors) {
            blob_to_floats(st, 12, &row->landmarks[0][0], 136, &row->has_landmarks);
            blob_to_floats(st, 13, row->descriptor, 128, &row->has_descriptor);
        }
        const char *state = fn_sql_column_text(st, 14);
        row->state = state && strcmp(state, "confirmed") == 0 ? 1
                     : state && strcmp(state, "ignored") == 0 ? 2
                                                              : 0;
        row->suggestion_person = fn_sql_column_int64(st, 15);
        if (row->suggestion_person) {
            row->suggestion_name = fn_sql_column_text(st, 16);
            row->suggestion_confidence = (float)fn_sql_column_double(st, 17);
        }
        if ((ret = cb(row, arg)) != 0) break;
    }
    if (ret == 0 && rc != FN_SQL_DONE) ret = fn_store_fail(s, rc, "listing faces");
    free(row);
    fn_sql_finalize(st);
    return ret;
}

int fn_library_face_thumbnail(fn_store *s, int64_t face_id, uint8_t **jpeg, size_t *len)
{
    *jpeg = NULL;
    *len = 0;
    fn_sql_stmt *st = NULL;
    int rc = fn_sql_prepare(s, "SELECT thumbnail FROM faces WHERE id = ?1", &st);
    if (rc != FN_OK) return fn_store_fail(s, rc, "reading a face thumbnail");
    fn_sql_bind_int64(st, 1, face_id);
    int ret = FN_ERR_NOT_FOUND;
    rc = fn_sql_step(st);
    if (rc == FN_SQL_ROW) {
        size_t n = (size_t)fn_sql_column_bytes(st, 0);
        const void *b = fn_sql_column_blob(st, 0);
        if (b && n) {
            *jpeg = malloc(n);
            if (*jpeg) {
                memcpy(*jpeg, b, n);
                *len = n;
                ret = 0;
            } else {
                ret = FN_ERR_NOMEM;
            }
        }
    } else if (rc != FN_SQL_DONE) {
        ret = fn_store_fail(s, rc, "reading a face thumbnail");
    }
    fn_sql_finalize(st);
    return ret;
}

int fn_library_count(fn_store *s, fn_library_counts *out)
{
    memset(out, 0, sizeof *out);
    fn_sql_stmt *st = NULL;
    int rc = fn_sql_prepare(s,
                            "SELECT (SELECT count(*) FROM photos),"
                            " (SELECT count(*) FROM photos WHERE status = 'ok'),"
                            " (SELECT count(*) FROM photos WHERE status = 'no_faces'),"
                            " (SELECT count(*) FROM photos WHERE status = 'error'),"
                            " (SELECT count(*) FROM faces), (SELECT count(*) FROM persons),"
                            " (SELECT count(*) FROM clusters)",
                            &st);
    if (rc != FN_OK) return fn_store_fail(s, rc, "counting photos and faces");
    int ret = 0;
    if ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        out->photos = fn_sql_column_int64(st, 0);
        out->photos_ok = fn_sql_column_int64(st, 1);
        out->photos_no_faces = fn_sql_column_int64(st, 2);
        out->photos_error = fn_sql_column_int64(st, 3);
        out->faces = fn_sql_column_int64(st, 4);
        out->persons = fn_sql_column_int64(st, 5);
        out->clusters = fn_sql_column_int64(st, 6);
    } else {
        ret = fn_store_fail(s, rc, "counting photos and faces");
    }
    fn_sql_finalize(st);
    return ret;
}
