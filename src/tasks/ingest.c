/* ingest.c: the "ingest" job type: from folders of photos to faces in the library. Its
 * declarations (payload, counters, histograms), and its source: the walk, and the decision per
 * file of what it needs. The work on each photo and its rows are in ingest_photo.c; the driver
 * (src/jobs/driver.c) does the rest.
 *
 * The checkpoint's type fields are {"root": R, "last": REL}: the last file handed to the driver,
 * REL under root R. Resume seeks to (R, REL) rather than counting next_index files, because the
 * tree may change between runs: a file added before the cursor would shift every index, and
 * resuming by index alone would then skip one unprocessed file and redo one done file. Seeking by
 * path skips exactly the files at or before the last committed one, and never reads the
 * directories wholly before it. next_index is the cursor only when the checkpoint has no path
 * (one written by hand).
 *
 * Shards (docs/job-types.md): above ingest.shard_photos photos the driver splits the job into
 * ranges of the walk; ingest_shard_bounds names the cursor at every N-th file (the same
 * (root, rel) positions as the checkpoint's), and a shard seeks past the cursor before its range
 * (its first checkpoint) and ends its walk after the last file of its range (has_end), compared
 * in walk order, so a file added or removed after the split moves no file into two shards.
 *
 * Deciding "unchanged": same size and same mtime as stored, and the stored mtime was not so close
 * to when it was stored that a same-second rewrite could hide (the "racy" case git also guards
 * against); when size matches but mtime does not, or the mtime is racy, the content hash decides.
 * Rows that recorded a failure are always tried again. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "facenames/error.h"
#include "tasks/content_hash.h"
#include "tasks/ingest.h"
#include "tasks/precision.h"
#include "util/log.h"
#include "util/pathenc_json.h"

#define RACY_WINDOW_NS (2LL * 1000 * 1000 * 1000)

ingest_hook_fn fn_ingest_test_hook;
void *fn_ingest_test_hook_arg;

/* ---- declarations -----------------------------------------------------------------------------
 */

static const char *const detectors[] = {"ssd", "tiny", NULL};
static const char *const tile_modes[] = {"off", "on", "auto", NULL};

static const fn_param params[] = {
    {"paths", FN_PARAM_STRINGS, NULL, NULL, 1, 0, NULL, "file or folder"},
    {"recursive", FN_PARAM_BOOL, NULL, "true", 0, 0, NULL, NULL},
    {"follow_symlinks", FN_PARAM_BOOL, NULL, "false", 0, 0, NULL, NULL},
    {"extensions", FN_PARAM_STRINGS, NULL,
     "[\"jpg\",\"jpeg\",\"png\",\"webp\",\"heic\",\"heif\",\"tif\",\"tiff\",\"gif\"]", 1, 0, NULL,
     "extension"},
    {"min_face_size", FN_PARAM_INT, "ingest.min_face_size", NULL, 0, 100000, NULL, "pixels"},
    {"detector", FN_PARAM_STRING, "ingest.detector", NULL, 0, 0, detectors, NULL},
    {"detect_tiles", FN_PARAM_STRING, "ingest.detect_tiles", NULL, 0, 0, tile_modes, NULL},
    {"precision", FN_PARAM_STRING, "vision.precision", NULL, 0, 0, fn_task_precisions, NULL},
    {"batch", FN_PARAM_INT, "ingest.batch", NULL, 1, 4096, NULL, "photos per commit"},
    {"thumb_size", FN_PARAM_INT, NULL, "112", 0, 512, NULL, "pixels"},
    {"shard_photos", FN_PARAM_INT, "ingest.shard_photos", NULL, 0, 2147483647, NULL,
     "photos per shard (0: never split)"},
};

static const char *const counters[C_COUNT] = {
    [C_FILES_TOTAL] = "files_total",
    [C_FILES_DONE] = "files_done",
    [C_FACES_FOUND] = "faces_found",
    [C_NO_FACE_IMAGES] = "no_face_images",
    [C_ERRORS] = "errors",
    [C_FACES_SKIPPED_SMALL] = "faces_skipped_small",
    [C_BYTES_READ] = "bytes_read",
    [C_NON_IMAGES] = "non_images",
    [C_SKIPPED_UNCHANGED] = "skipped_unchanged",
    [C_VISION_MS] = "vision_ms",
    [C_RECOGNISED] = "recognised_by_content",
    [C_DECODE_MS] = "decode_ms",
};

static const double faces_per_photo_bounds[] = {0, 1, 2, 3, 4, 5, 7, 10, 15, 20, 50};
static const double face_size_bounds[] = {20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960};

static const fn_histogram_decl histograms[H_COUNT] = {
    [H_FACES_PER_PHOTO] = {"faces_per_photo", faces_per_photo_bounds,
                           sizeof faces_per_photo_bounds / sizeof faces_per_photo_bounds[0]},
    [H_FACE_SIZE] = {"face_size", face_size_bounds,
                     sizeof face_size_bounds / sizeof face_size_bounds[0]},
};

/* ---- the source -------------------------------------------------------------------------------
 */

int64_t ingest_root_of(const ingest_job *st, const char *path, const char **rel)
{
    size_t best = st->n_roots, best_len = 0;
    for (size_t i = 0; i < st->n_roots; i++) {
        const char *base = st->roots[i].path;
        size_t n = base ? strlen(base) : 0;
        if (!n || (best < st->n_roots && n <= best_len)) continue;
        if (n == 1 && base[0] == '/') {
            best = i, best_len = 0;
        } else if (strncmp(base, path, n) == 0 && (path[n] == '/' || path[n] == 0)) {
            best = i, best_len = n;
        }
    }
    if (best == st->n_roots) return 0;
    const char *r = path + best_len;
    while (*r == '/')
        r++;
    *rel = r;
    return st->roots[best].root;
}

/* Where `path` would sit under this host's roots: the root that holds it and the path relative to
 * it, or, for a file in a payload folder no root holds yet (ingest_write makes that folder a
 * root), root 0 and the path relative to that folder. NULL when neither holds it. */
static const char *prospective_rel(const ingest_job *st, const char *path, int64_t *root)
{
    const char *rel;
    if ((*root = ingest_root_of(st, path, &rel)) > 0) return rel;
    for (size_t i = 0; i < st->n_dirs; i++) {
        size_t n = strlen(st->dirs[i]);
        if (n == 1 && st->dirs[i][0] == '/') return path + 1;
        if (strncmp(st->dirs[i], path, n) == 0 && path[n] == '/') return path + n + 1;
    }
    return NULL;
}

/* Whether photo `m`'s file is gone from this host: its root is mounted here and the file is not
 * there. A root this host does not mount says nothing (the photo may well be on another host). */
static int known_file_gone(const ingest_job *st, const fn_photo_match *m)
{
    if (!m->root || !m->rel) return 0;
    for (size_t i = 0; i < st->n_roots; i++) {
        if (st->roots[i].root != m->root || !st->roots[i].path) continue;
        size_t n = strlen(st->roots[i].path), r = strlen(m->rel);
        char *p = malloc(n + r + 2);
        if (!p) return 0;
        snprintf(p, n + r + 2, "%s/%s", st->roots[i].path, m->rel);
        struct stat sb;
        int gone = stat(p, &sb) != 0 && errno == ENOENT;
        free(p);
        return gone;
    }
    return 0;
}

/* Photos by content (design decision 34): whether the file `path`, which no photo holds, is a
 * known photo under another root. Only a file with the size of some photo is read (then its hash
 * is kept for the worker); a file that cannot be read now is left to the worker, which reports
 * it. 1: recognised (the item records it), 0: not, or a negative fn_err. `h` is the file's hash
 * when already computed (0: not yet). */
static int recognise(fn_batch *b, const char *path, uint64_t h, fn_item *it)
{
    ingest_job *st = fn_batch_state(b);
    ingest_photo *ph = it->data;
    fn_store *s = fn_batch_reader(b);
    int64_t root;
    const char *rel = prospective_rel(st, path, &root);
    if (!rel || !*rel) return 0;
    int rc = fn_library_size_known(s, ph->size);
    if (rc <= 0) return rc;
    if (!h) {
        int64_t n;
        if (fn_hash_file(path, st->hashbuf, 1 << 20, &h, &n) != 0 || n != ph->size) return 0;
    }
    ph->hash = h;
    ph->hashed = 1;
    fn_photo_match m;
    rc = fn_library_photo_same_content(s, ph->size, h, root, rel, path, &m);
    if (rc == FN_ERR_NOT_FOUND) return 0;
    if (rc < 0) return rc;
    ph->same_as = m.id;
    ph->relink = known_file_gone(st, &m);
    fn_photo_match_clear(&m);
    it->keep = 1;
    fn_batch_add(b, C_RECOGNISED, 1);
    return 1;
}

/* Decides what one listed file needs and fills its item: nothing (unchanged: not kept), its new
 * mtime only (touch), its record as a known photo's copy, work, or a failure. `force` (a retry)
 * skips the unchanged checks. */
static int consider(fn_batch *b, const char *path, int force, fn_item *it)
{
    ingest_job *st = fn_batch_state(b);
    ingest_photo *ph = it->data;
    if (!force && fn_batch_pending(b, path)) { /* reached twice through links */
        fn_batch_add(b, C_SKIPPED_UNCHANGED, 1);
        return FN_SOURCE_ITEM;
    }
    int rc = fn_item_set_ref(it, path);
    if (rc < 0) return rc;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        int e = errno;
        int code = e == ENOENT ? FN_ERR_NOT_FOUND : e == EACCES ? FN_ERR_UNREADABLE : FN_ERR_IO;
        if (code == FN_ERR_NOT_FOUND)
            rc = fn_item_fail(it, code, NULL, "%s: vanished (listed, then gone before it was read)",
                              path);
        else
            rc = fn_item_fail(it, code, NULL, "%s: %s", path, strerror(e));
        return rc < 0 ? rc : FN_SOURCE_ITEM;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = fn_item_fail(it, FN_ERR_NOT_FILE, NULL, "%s: %s, not a photo", path,
                          S_ISDIR(sb.st_mode) ? "is a folder" : "is not a regular file");
        return rc < 0 ? rc : FN_SOURCE_ITEM;
    }
    ph->size = (int64_t)sb.st_size;
    ph->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
    /* The row the file is: under its path, or (retries too, so that the row keeps the path it was
     * first stored under) under another host's mount of the same root, or recorded as a copy of
     * a photo. */
    fn_photo_probe row;
    fn_photo_match of = {0}; /* a copy's photo */
    int copy = 0, stale = 0;
    rc = fn_library_reader_hold(st->reader, 1);
    if (rc == 0) rc = fn_library_photo_probe(st->reader, path, &row);
    const char *rel;
    int64_t root;
    if (rc == FN_ERR_NOT_FOUND && (root = ingest_root_of(st, path, &rel)) > 0)
        rc = fn_library_photo_probe_rel(st->reader, root, rel, &row, &ph->key);
    if (rc == FN_ERR_NOT_FOUND &&
        (rc = fn_library_copy_probe(fn_batch_reader(b), path, &row, &stale, &of)) == 0)
        copy = 1;
    if (rc != 0 && rc != FN_ERR_NOT_FOUND) {
        fn_batch_fail(b, "ingest: looking up %s: %s", path, fn_store_errmsg(fn_batch_reader(b)));
        return rc;
    }
    uint64_t h = 0;
    /* A copy whose photo's file is gone from this host's mount of its root (perhaps since another
     * host, which could not tell, recorded the copy): the photo moves to it, as it would have
     * when first recognised here. */
    int moved = copy && !stale && known_file_gone(st, &of);
    fn_photo_match_clear(&of);
    if (rc == 0 && !force && !stale && !moved) {
        int same_size = row.size == ph->size && row.status != FN_PHOTO_ERROR;
        int racy = row.mtime_ns >= row.ingested_at * 1000000LL - RACY_WINDOW_NS;
        int same_mtime = row.mtime_ns == ph->mtime_ns;
        if (same_size && same_mtime && !racy) {
            fn_batch_add(b, C_SKIPPED_UNCHANGED, 1);
            return FN_SOURCE_ITEM;
        }
        int64_t n;
        if (same_size && row.hash && fn_hash_file(path, st->hashbuf, 1 << 20, &h, &n) == 0 &&
            n == ph->size) {
            ph->hash = h;
            ph->hashed = 1;
            if (h == row.hash) {
                fn_batch_add(b, C_SKIPPED_UNCHANGED, 1);
                ph->touch = !same_mtime;
                if (copy) ph->same_as = row.id; /* a copy's new mtime is the copy's */
                it->keep = ph->touch;
                return FN_SOURCE_ITEM;
            }
        }
    }
    if (rc == FN_ERR_NOT_FOUND || copy) {
        /* No photo at this path (or a copy whose bytes changed): perhaps a known photo's bytes at
         * its relative path under another root. */
        ph->fresh = 1;
        ph->was_copy = copy;
        if ((rc = recognise(b, path, h, it)) < 0) {
            fn_batch_fail(b, "ingest: looking up %s: %s", path,
                          fn_store_errmsg(fn_batch_reader(b)));
            return rc;
        }
        if (rc == 1) return FN_SOURCE_ITEM;
    }
    it->work = 1;
    return FN_SOURCE_ITEM;
}

static void walk_opts(fn_batch *b, int count_only, fn_walk_opts *wo);

/* The item of one walked file: its problem, or what it needs. */
static int walked(fn_batch *b, const fn_walk_item *w, int force, fn_item *it)
{
    if (!w->err) return consider(b, w->path, force, it);
    int rc = fn_item_set_ref(it, w->path);
    if (rc == 0) rc = fn_item_fail(it, w->err, w->code, "%s", w->msg);
    return rc < 0 ? rc : FN_SOURCE_ITEM;
}

static int ingest_next(fn_batch *b, fn_item *it)
{
    ingest_job *st = fn_batch_state(b);
    fn_walk_item w;
    int rc;
    while ((rc = fn_walk_next(st->walk, &w)) == 1 && st->skip > 0)
        st->skip--;
    if (rc <= 0) return rc; /* the end, or an error */
    if (st->has_end && (w.root > st->end_root ||
                        (w.root == st->end_root && fn_walk_cmp_rel(w.rel, st->end_last) > 0)))
        return FN_SOURCE_END; /* past this shard's range */
    if ((rc = walked(b, &w, 0, it)) < 0) return rc;
    size_t len = strlen(w.rel);
    char *p = realloc(st->last, len + 1);
    if (!p) return FN_ERR_NOMEM;
    memcpy(p, w.rel, len + 1);
    st->last = p;
    st->root = w.root;
    st->has_pos = 1;
    if (fn_ingest_test_hook) fn_ingest_test_hook(w.path, fn_ingest_test_hook_arg);
    return rc;
}

static char *translate(const ingest_job *st, const fn_root_path *all, size_t n_all,
                       const char *path);

/* A retry reference as this host reads it. Items are stored as the absolute paths of the host that
 * failed them; a retry may run on another host, which mounts the same root elsewhere (and may not
 * see the first host's mount at all): a reference under a root of another host is read at this
 * host's mount of that root. One under this host's own roots, or under no root, stays as it is.
 * NULL: keep `ref` (or out of memory, when the stat then reports it). Translating at retry time,
 * rather than storing items as (root, rel), keeps the items what `jobs errors` prints and
 * `--item` takes: a path the user recognises. */
static char *retry_local(ingest_job *st, fn_batch *b, const char *ref)
{
    const char *rel;
    if (ref[0] != '/' || ingest_root_of(st, ref, &rel) > 0) return NULL;
    if (!st->all_loaded) {
        fn_store *s = fn_batch_reader(b);
        if (fn_library_root_paths(s, NULL, &st->all_roots, &st->n_all_roots) < 0) return NULL;
        st->all_loaded = 1;
    }
    return translate(st, st->all_roots, st->n_all_roots, ref);
}

/* A retry reference is a file (considered again, without the unchanged shortcut) or a folder
 * that could not be read before (an unreadable sub-folder): then it is walked, and its files are
 * handed over one by one (FN_SOURCE_MORE), each with the unchanged check, so files committed
 * before a crash in the middle are not redone. Either is read where this host mounts it
 * (retry_local). */
static int ingest_retry_item(fn_batch *b, const char *ref_in, fn_item *it)
{
    ingest_job *st = fn_batch_state(b);
    char *local = retry_local(st, b, ref_in);
    const char *ref = local ? local : ref_in;
    struct stat sb;
    int in_walk = st->retry_walk && strcmp(st->retry_root, ref) == 0;
    int rc;
    if (!in_walk && stat(ref, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fn_walk_free(st->retry_walk);
        st->retry_walk = NULL;
        free(st->retry_root);
        if (!(st->retry_root = strdup(ref))) {
            free(local);
            return FN_ERR_NOMEM;
        }
        fn_walk_opts wo;
        walk_opts(b, 0, &wo);
        rc = fn_walk_open(&ref, 1, &wo, &st->retry_walk);
        if (rc < 0) {
            free(local);
            return rc;
        }
        in_walk = 1;
    }
    if (in_walk) {
        fn_walk_item w;
        if ((rc = fn_walk_next(st->retry_walk, &w)) <= 0) {
            fn_walk_free(st->retry_walk);
            st->retry_walk = NULL;
            free(local);
            return rc; /* the end of the folder, or an error */
        }
        rc = walked(b, &w, 0, it);
        if (rc >= 0) rc = FN_SOURCE_MORE;
        if (rc >= 0 && fn_ingest_test_hook) fn_ingest_test_hook(w.path, fn_ingest_test_hook_arg);
        free(local);
        return rc;
    }
    rc = consider(b, ref, 1, it);
    if (rc >= 0 && fn_ingest_test_hook) fn_ingest_test_hook(ref, fn_ingest_test_hook_arg);
    free(local);
    return rc;
}

/* The cursor fields of position (root, rel). */
static char *cursor_json(size_t root, const char *rel)
{
    /* "last" is a path: the path encoding (util/pathenc.h) keeps one that is not UTF-8 */
    json_t *j = json_pack("{s:I}", "root", (json_int_t)root);
    if (j && fn_json_set_path(j, "last", rel) < 0) {
        json_decref(j);
        j = NULL;
    }
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    return s;
}

static char *ingest_cursor(fn_batch *b)
{
    ingest_job *st = fn_batch_state(b);
    return st->has_pos ? cursor_json(st->root, st->last) : NULL;
}

/* ---- opening the job --------------------------------------------------------------------------
 */

static void walk_opts(fn_batch *b, int count_only, fn_walk_opts *wo)
{
    ingest_job *st = fn_batch_state(b);
    memset(wo, 0, sizeof *wo);
    wo->recursive = fn_batch_bool(b, "recursive");
    wo->follow_symlinks = fn_batch_bool(b, "follow_symlinks");
    wo->exts = (const char *const *)st->exts;
    wo->n_exts = st->n_exts;
    wo->count_only = count_only;
}

/* The counting pre-pass: names only (readdir's type, no stat of files, no sorting), so it costs a
 * small fraction of the real walk and warms the directory cache that walk then reads. It gives
 * files_total before the first photo is decoded. */
static int count_pass(fn_batch *b, const char *const *paths, size_t n_paths)
{
    fn_walk_opts wo;
    walk_opts(b, 1, &wo);
    fn_walk *w = NULL;
    int rc = fn_walk_open(paths, n_paths, &wo, &w);
    fn_walk_item it;
    int64_t n = 0, k = 0;
    while (rc == 0 && (rc = fn_walk_next(w, &it)) == 1) {
        n++;
        rc = 0;
        /* A huge tree: let a cancel through while counting. */
        if ((++k & 8191) == 0 && fn_job_should_stop(fn_batch_ctx(b)) != FN_STOP_NONE) break;
    }
    if (rc == 0) {
        fn_batch_set(b, C_FILES_TOTAL, n);
        fn_batch_set(b, C_NON_IMAGES, fn_walk_stats_of(w)->non_images);
    }
    fn_walk_free(w);
    return rc;
}

/* A position's cursor fields (as cursor_json writes them): 1 and (*root, *rel), 0 when the text
 * has none, or FN_ERR_NOMEM. */
static int parse_position(const char *text, size_t *root_out, char **rel)
{
    if (!text) return 0;
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    json_t *root = json_object_get(j, "root"), *last = json_object_get(j, "last");
    int rc = 0;
    if (json_is_integer(root) && json_is_string(last)) {
        *root_out = (size_t)json_integer_value(root);
        rc = (*rel = fn_json_get_path(j, "last")) ? 1 : FN_ERR_NOMEM;
    }
    json_decref(j);
    return rc;
}

/* The checkpoint's position, when it has one, and a shard's end. */
static int read_position(fn_batch *b, ingest_job *st)
{
    int rc = parse_position(fn_batch_checkpoint(b), &st->root, &st->last);
    if (rc < 0) return rc;
    st->has_pos = rc == 1;
    rc = parse_position(fn_batch_shard_last(b), &st->end_root, &st->end_last);
    if (rc < 0) return rc;
    st->has_end = rc == 1;
    return 0;
}

/* The cursor at every per-th file of the walk (the driver splits there): a walk of names in the
 * walk's order, without the per-file decisions. */
static int ingest_shard_bounds(fn_batch *b, int64_t per, char ***cursors, size_t *n)
{
    ingest_job *st = fn_batch_state(b);
    *cursors = NULL;
    *n = 0;
    fn_walk_opts wo;
    walk_opts(b, 0, &wo);
    fn_walk *w = NULL;
    int rc = fn_walk_open((const char *const *)st->local, st->n_local, &wo, &w);
    fn_walk_item it;
    int64_t k = 0;
    char *pending = NULL; /* the cursor of the last file of a range, until a file follows it */
    size_t cap = 0;
    while (rc == 0 && (rc = fn_walk_next(w, &it)) == 1) {
        rc = 0;
        if (pending) {
            if (*n == cap) {
                cap = cap ? cap * 2 : 16;
                char **nc = realloc(*cursors, cap * sizeof *nc);
                if (!nc) {
                    rc = FN_ERR_NOMEM;
                    break;
                }
                *cursors = nc;
            }
            (*cursors)[(*n)++] = pending;
            pending = NULL;
        }
        if (++k % per == 0 && !(pending = cursor_json(it.root, it.rel))) rc = FN_ERR_NOMEM;
    }
    free(pending);
    fn_walk_free(w);
    if (rc < 0) {
        for (size_t i = 0; i < *n; i++)
            free((*cursors)[i]);
        free(*cursors);
        *cursors = NULL;
        *n = 0;
    }
    return rc < 0 ? rc : 0;
}

/* `path` as this host mounts it: the root (of any host's mount) that holds it, then this host's
 * path of that root with the rest appended. NULL when the library knows no such pair (or out of
 * memory: the caller then keeps the path as it is, and the walk reports it missing). */
static char *translate(const ingest_job *st, const fn_root_path *all, size_t n_all,
                       const char *path)
{
    size_t best = n_all, best_len = 0;
    for (size_t i = 0; i < n_all; i++) {
        size_t n = all[i].path ? strlen(all[i].path) : 0;
        if (n > best_len && strncmp(all[i].path, path, n) == 0 && (path[n] == '/' || path[n] == 0))
            best = i, best_len = n;
    }
    if (best == n_all) return NULL;
    for (size_t i = 0; i < n_all; i++) {
        if (all[i].root != all[best].root || !all[i].host || strcmp(all[i].host, st->host) != 0)
            continue;
        size_t n = strlen(all[i].path), rest = strlen(path + best_len);
        char *out = malloc(n + rest + 1);
        if (!out) return NULL;
        memcpy(out, all[i].path, n);
        memcpy(out + n, path + best_len, rest + 1);
        return out;
    }
    return NULL;
}

/* This host's id (worker.host, else the hostname: what the job owners record), its mounts of
 * the library's roots, and the payload's folders a new root would be made of. */
static int open_roots(fn_batch *b, ingest_job *st)
{
    const fn_config *cfg = fn_engine_config(fn_job_engine(fn_batch_ctx(b)));
    if (cfg->worker_host[0])
        snprintf(st->host, sizeof st->host, "%s", cfg->worker_host);
    else if (gethostname(st->host, sizeof st->host - 1) != 0)
        snprintf(st->host, sizeof st->host, "localhost");
    fn_store *s = fn_batch_reader(b);
    int rc = fn_library_root_paths(s, st->host, &st->roots, &st->n_roots);
    if (rc < 0) {
        fn_batch_fail(b, "ingest: %s", fn_store_errmsg(s));
        return rc;
    }
    const char *const *paths;
    size_t n_paths = fn_batch_strings(b, "paths", &paths);
    if (!(st->dirs = calloc(n_paths ? n_paths : 1, sizeof *st->dirs))) return FN_ERR_NOMEM;
    if (!(st->local = calloc(n_paths ? n_paths : 1, sizeof *st->local))) return FN_ERR_NOMEM;
    fn_root_path *all = NULL;
    size_t n_all = 0;
    for (size_t i = 0; i < n_paths; i++) {
        /* A path under a root (the job may have been enqueued on another host, through its
         * mount): this host reads the root where it mounts it, when the library knows that. */
        if (!all && (rc = fn_library_root_paths(s, NULL, &all, &n_all)) < 0) {
            fn_batch_fail(b, "ingest: %s", fn_store_errmsg(s));
            return rc;
        }
        st->local[i] = translate(st, all, n_all, paths[i]);
        if (!st->local[i] && !(st->local[i] = strdup(paths[i]))) rc = FN_ERR_NOMEM;
        st->n_local = i + 1;
        if (rc < 0) break;
        char *real = realpath(st->local[i], NULL);
        if (!real) continue; /* a path that is gone: the walk reports it */
        struct stat sb;
        if (stat(real, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
            char *slash = strrchr(real, '/');
            if (slash && slash != real)
                *slash = 0;
            else if (slash)
                slash[1] = 0;
        }
        st->dirs[st->n_dirs++] = real;
    }
    fn_root_paths_free(all, n_all);
    return rc;
}

static int ingest_open(fn_batch *b)
{
    ingest_job *st = fn_batch_state(b);
    fn_job_ctx *ctx = fn_batch_ctx(b);
    const fn_config *cfg = fn_engine_config(fn_job_engine(ctx));
    const char *const *exts;
    st->n_exts = fn_batch_strings(b, "extensions", &exts);
    if (!(st->exts = calloc(st->n_exts ? st->n_exts : 1, sizeof *st->exts))) return FN_ERR_NOMEM;
    for (size_t i = 0; i < st->n_exts; i++) {
        const char *e = exts[i][0] == '.' ? exts[i] + 1 : exts[i];
        if (!(st->exts[i] = strdup(e))) return FN_ERR_NOMEM;
        for (char *p = st->exts[i]; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
    fn_detect_opts_default(&st->det);
    st->det.detector =
        strcmp(fn_batch_string(b, "detector"), "tiny") == 0 ? FN_DETECTOR_TINY : FN_DETECTOR_SSD;
    st->det.min_face_size = (int)fn_batch_int(b, "min_face_size");
    const char *tiles = fn_batch_string(b, "detect_tiles");
    st->det.tiles = !strcmp(tiles, "on")     ? FN_DETECT_TILES_ON
                    : !strcmp(tiles, "auto") ? FN_DETECT_TILES_AUTO
                                             : FN_DETECT_TILES_OFF;
    st->det.landmarks = 1;
    st->det.descriptors = 1;
    st->det.thumb_size = (int)fn_batch_int(b, "thumb_size");
    int rc = fn_task_precision("ingest", fn_batch_string(b, "precision"), &st->det);
    if (rc) return rc;
    /* Models are loaded by the first batch that has a photo to process, so a rerun over an
     * unchanged tree never pays for them. */
    st->models_which = FN_MODEL_LANDMARKS | FN_MODEL_RECOGNITION |
                       (st->det.detector == FN_DETECTOR_TINY ? FN_MODEL_TINY : FN_MODEL_SSD);
    st->models_dir = cfg->models_dir;
    atomic_store(&st->vision_ns, 0);
    atomic_store(&st->decode_ns, 0);
    if (!(st->hashbuf = malloc(1 << 20))) return FN_ERR_NOMEM;

    /* The job's read connection for the per-file lookups (commits go through the engine). It
     * also brings the library schema up to date before the first commit needs it. */
    fn_store *s = fn_batch_reader(b);
    if (!s) {
        fn_batch_fail(b, "ingest: %s", fn_engine_errmsg(fn_job_engine(ctx)));
        return FN_ERR_DB;
    }
    if ((rc = fn_library_migrate(s)) < 0 || (rc = fn_library_reader_new(s, &st->reader)) < 0) {
        fn_batch_fail(b, "ingest: %s", fn_store_errmsg(s));
        return rc;
    }
    if ((rc = read_position(b, st)) < 0) return rc;
    if ((rc = open_roots(b, st)) < 0) return rc;
    if (fn_batch_is_retry(b)) return 0; /* only the retry items: no walk */

    /* The payload's paths as this host mounts them (open_roots). */
    const char *const *paths = (const char *const *)st->local;
    size_t n_paths = st->n_local;
    /* A shard's total is its range: the job it is part of counted the tree. */
    if (!fn_batch_is_shard(b) && (rc = count_pass(b, paths, n_paths)) < 0) return rc;
    fn_walk_opts wo;
    walk_opts(b, 0, &wo);
    if ((rc = fn_walk_open(paths, n_paths, &wo, &st->walk)) < 0) return rc;
    if (st->has_pos)
        fn_walk_seek(st->walk, st->root, st->last);
    else
        st->skip = fn_batch_next_index(b); /* a checkpoint without a path: count */
    return 0;
}

static void ingest_close(fn_batch *b)
{
    ingest_job *st = fn_batch_state(b);
    for (size_t i = 0; st->exts && i < st->n_exts; i++)
        free(st->exts[i]);
    free(st->exts);
    fn_walk_free(st->walk);
    fn_walk_free(st->retry_walk);
    free(st->retry_root);
    fn_library_reader_free(st->reader);
    free(st->last);
    free(st->end_last);
    free(st->hashbuf);
    fn_root_paths_free(st->roots, st->n_roots);
    for (size_t i = 0; i < st->n_dirs; i++)
        free(st->dirs[i]);
    free(st->dirs);
    for (size_t i = 0; i < st->n_local; i++)
        free(st->local[i]);
    free(st->local);
    fn_root_paths_free(st->all_roots, st->n_all_roots);
}

const fn_jobtype fn_ingest_type = {
    .type = "ingest",
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .counters = counters,
    .n_counters = C_COUNT,
    .histograms = histograms,
    .n_histograms = H_COUNT,
    .done_counter = C_FILES_DONE,
    .total_counter = C_FILES_TOTAL,
    .errors_counter = C_ERRORS,
    .item_ref = "the photo's absolute path",
    .rate_unit = "photos",
    .batch_param = "batch",
    .flush_items = 4096,
    .flush_ms = 1000,
    .gpu_slots = 0,
    /* About 60 MB: the models are shared, each worker slot adds its scratch and a batch of
     * decoded results. */
    .mem_mb = 200,
    .job_size = sizeof(ingest_job),
    .slot_size = sizeof(ingest_slot),
    .item_size = sizeof(ingest_photo),
    .open = ingest_open,
    .close = ingest_close,
    .slot_open = ingest_slot_open,
    .slot_close = ingest_slot_close,
    .next = ingest_next,
    .retry_item = ingest_retry_item,
    .warm = ingest_warm,
    .prepare = ingest_prepare,
    .process = ingest_process,
    .compare = ingest_compare,
    .overlap = 1,
    .write = ingest_write,
    .cursor = ingest_cursor,
    .item_clear = ingest_item_clear,
    .resolution = ingest_resolution,
    .summary = ingest_summary,
    .shard_param = "shard_photos",
    .shard_bounds = ingest_shard_bounds,
};
