/* photo_copies.c: photos by content (library migration 6, design decision 34). A file whose bytes
 * equal a known photo's, at the same path relative to its root (or one path ending the other) but
 * under another root, is that photo seen elsewhere: a tree copied to another folder, or a share
 * another host mounted without mapping it to the photo's root. Ingest records it as a copy of the
 * photo (photo_copies) instead of storing it and detecting its faces again, or moves the photo to
 * it when the known file is gone. Duplicates inside one root (the same bytes under two names) stay
 * photos of their own: a relative path is part of a photo's identity.
 *
 * The lookups here run on the ingest job's read connection for every new file (cheap: an index
 * probe by size, and by size and hash only when some photo has that size) and once more in the
 * batch's write transaction, where photos committed since (another host's, or this batch's own)
 * are seen too. */
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "store/library/library_store.h"
#include "store/store_sql.h"

static const char SQL_SIZE_KNOWN[] = "SELECT 1 FROM photos WHERE size = ?1 LIMIT 1";
/* Photos that failed keep an older content's hash beside their new size: never a match. */
static const char SQL_SAME_CONTENT[] =
    "SELECT id, root, rel, path FROM photos WHERE size = ?1 AND hash = ?2 AND status <> 'error'"
    " ORDER BY id";
static const char SQL_COPIES_OF[] = "SELECT path FROM photo_copies WHERE photo_id = ?1 ORDER BY id";
static const char SQL_COPY_PROBE[] =
    "SELECT c.photo_id, c.size, c.mtime_ns, c.hash, c.seen_at, p.hash, p.root, p.rel, p.path"
    " FROM photo_copies c JOIN photos p ON p.id = c.photo_id WHERE c.path = ?1";

int fn_library_size_known(fn_store *s, int64_t size)
{
    fn_sql_stmt *st = fn_store_stmt(s, SQL_SIZE_KNOWN);
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, size);
    int rc = fn_sql_step(st);
    int ret = rc == FN_SQL_ROW    ? 1
              : rc == FN_SQL_DONE ? 0
                                  : fn_store_fail(s, rc, "looking up photos by size");
    fn_sql_reset(st);
    return ret;
}

/* Whether `a` ends with `b` at a path component: equal, or a/.../b. */
static int ends_with_path(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (nb > na || strcmp(a + na - nb, b) != 0) return 0;
    return na == nb || a[na - nb - 1] == '/';
}

int fn_library_photo_same_content(fn_store *s, int64_t size, uint64_t hash, int64_t root,
                                  const char *rel, const char *path, fn_photo_match *out)
{
    memset(out, 0, sizeof *out);
    if (!hash || !rel || !*rel) return FN_ERR_NOT_FOUND;
    fn_sql_stmt *st = fn_store_stmt(s, SQL_SAME_CONTENT);
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, size);
    fn_sql_bind_int64(st, 2, (int64_t)hash);
    int rc, code = FN_ERR_NOT_FOUND, exact = 0;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        int64_t id = fn_sql_column_int64(st, 0), r = fn_sql_column_int64(st, 1);
        const char *prel = fn_sql_column_text(st, 2), *ppath = fn_sql_column_text(st, 3);
        if (!ppath || strcmp(ppath, path) == 0) continue;
        /* Under the same root, another relative path is another photo (a duplicate). A photo
         * stored before roots existed has no rel: its absolute path stands in for it. */
        if (root > 0 && r == root) continue;
        const char *key = prel ? prel : ppath;
        int same = strcmp(key, rel) == 0;
        if (!same && !ends_with_path(key, rel) && !ends_with_path(rel, key)) continue;
        if (code == 0 && (exact || !same)) continue; /* the first exact match, else the first */
        free(out->rel);
        free(out->path);
        out->id = id;
        out->root = r;
        out->rel = prel ? strdup(prel) : NULL;
        out->path = strdup(ppath);
        if ((prel && !out->rel) || !out->path) {
            code = FN_ERR_NOMEM;
            break;
        }
        code = 0;
        exact = same;
    }
    if (code != FN_ERR_NOMEM && rc != FN_SQL_ROW && rc != FN_SQL_DONE)
        code = fn_store_fail(s, rc, "looking up photos by content");
    fn_sql_reset(st);
    if (code) fn_photo_match_clear(out);
    return code;
}

void fn_photo_match_clear(fn_photo_match *m)
{
    if (!m) return;
    free(m->rel);
    free(m->path);
    m->rel = m->path = NULL;
}

int fn_library_copy_probe(fn_store *s, const char *path, fn_photo_probe *out, int *stale,
                          fn_photo_match *photo)
{
    if (photo) memset(photo, 0, sizeof *photo);
    fn_sql_stmt *st = fn_store_stmt(s, SQL_COPY_PROBE);
    if (!st) return FN_ERR_DB;
    fn_sql_bind_text(st, 1, path, -1, FN_SQL_STATIC);
    int rc = fn_sql_step(st), ret = 0;
    if (rc == FN_SQL_ROW) {
        memset(out, 0, sizeof *out);
        out->id = fn_sql_column_int64(st, 0);
        out->size = fn_sql_column_int64(st, 1);
        out->mtime_ns = fn_sql_column_int64(st, 2);
        out->hash = (uint64_t)fn_sql_column_int64(st, 3);
        out->ingested_at = fn_sql_column_int64(st, 4);
        out->status = FN_PHOTO_OK;
        /* The photo was reprocessed with other bytes since: this file no longer equals it. */
        *stale = (uint64_t)fn_sql_column_int64(st, 5) != out->hash;
        if (photo) {
            const char *rel = fn_sql_column_text(st, 7), *ppath = fn_sql_column_text(st, 8);
            photo->id = out->id;
            photo->root = fn_sql_column_int64(st, 6);
            photo->rel = rel ? strdup(rel) : NULL;
            photo->path = strdup(ppath ? ppath : "");
            if ((rel && !photo->rel) || !photo->path) {
                fn_photo_match_clear(photo);
                ret = FN_ERR_NOMEM;
            }
        }
    } else if (rc == FN_SQL_DONE) {
        ret = FN_ERR_NOT_FOUND;
    } else {
        ret = fn_store_fail(s, rc, "looking up a photo's copy");
    }
    fn_sql_reset(st);
    return ret;
}

int fn_library_photo_copies(fn_store *s, int64_t photo, char ***paths, size_t *n)
{
    *paths = NULL;
    *n = 0;
    fn_sql_stmt *st = fn_store_stmt(s, SQL_COPIES_OF);
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, photo);
    char **v = NULL;
    size_t len = 0;
    int rc, code = 0;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        const char *p = fn_sql_column_text(st, 0);
        char **nv = realloc(v, (len + 1) * sizeof *v);
        if (!nv || !(nv[len] = strdup(p ? p : ""))) {
            if (nv) v = nv;
            code = FN_ERR_NOMEM;
            break;
        }
        v = nv;
        len++;
    }
    if (!code && rc != FN_SQL_DONE) code = fn_store_fail(s, rc, "reading a photo's copies");
    fn_sql_reset(st);
    if (code) {
        for (size_t i = 0; i < len; i++)
            free(v[i]);
        free(v);
        return code;
    }
    *paths = v;
    *n = len;
    return 0;
}
