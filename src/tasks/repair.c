/* repair.c: the "repair" job type: what a library needs after life happens to its photos
 * (docs/export.md, "repair").
 *
 * Items are the library's photos in id order, then one last item for the database itself:
 * - a photo whose file is there: checked; its faces are recomputed (on a worker slot, with the
 *   current models) when an auto face lacks its landmarks, descriptor or thumbnail, or when the
 *   models' checksum recorded with it is not the current one. Only the vectors and thumbnails of
 *   detected faces change: every box, person, state and cluster stays.
 * - a photo whose file is gone: found again by content (size and hash) either as another row of
 *   the library (the same photo ingested again under its new name: its people move over and the
 *   old row goes), or as a file under the library's roots that the library does not know (the
 *   row is relinked to it); else it is marked missing, kept with its people, and removed only
 *   with "prune".
 * - the database: SQLite's integrity check, foreign keys, clusters no face is in, persons with no
 *   face: what can be fixed is fixed (library_interop.h, fn_xp_fix), counted, and logged in the
 *   audit log.
 * "dry_run" decides and counts everything and writes nothing.
 *
 * The index of candidate files is made at open, and only when a photo is gone: a walk of the
 * roots, hashing only the unknown files whose size is the size of a missing photo. So a repair of
 * a library where nothing moved reads no file but stats each photo once. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "facenames/error.h"
#include "facenames/vision.h"
#include "store/library/library_interop.h"
#include "store/library/library_store.h"
#include "tasks/content_hash.h"
#include "tasks/interop.h"
#include "tasks/models_cache.h"
#include "tasks/models_sum.h"
#include "tasks/precision.h"
#include "tasks/walk.h"
#include "tasks/xmp_regions.h"
#include "util/clock.h"
#include "util/pathenc_json.h"

enum {
    C_ITEMS_TOTAL, /* the photos and the database: the progress pair */
    C_ITEMS_DONE,
    C_PHOTOS_CHECKED,
    C_RELINKED,
    C_MISSING,
    C_PRUNED,
    C_FACES_RECOMPUTED,
    C_ORPHANS_REMOVED,
    C_INTEGRITY_ERRORS,
    C_ERRORS,
    C_COUNT
};

static const char *const counters[C_COUNT] = {
    [C_ITEMS_TOTAL] = "items_total",
    [C_ITEMS_DONE] = "items_done",
    [C_PHOTOS_CHECKED] = "photos_checked",
    [C_RELINKED] = "relinked",
    [C_MISSING] = "missing",
    [C_PRUNED] = "pruned",
    [C_FACES_RECOMPUTED] = "faces_recomputed",
    [C_ORPHANS_REMOVED] = "orphans_removed",
    [C_INTEGRITY_ERRORS] = "integrity_errors",
    [C_ERRORS] = "errors",
};

static const char *const detectors[] = {"ssd", "tiny", NULL};

static const fn_param params[] = {
    {"dry_run", FN_PARAM_BOOL, NULL, "false", 0, 0, NULL, NULL},
    {"prune", FN_PARAM_BOOL, NULL, "false", 0, 0, NULL, NULL},
    /* where moved photos are looked for; [] = the paths the library's ingests were given */
    {"roots", FN_PARAM_STRINGS, NULL, "[]", 0, 0, NULL, "folder"},
    {"detector", FN_PARAM_STRING, "ingest.detector", NULL, 0, 0, detectors, NULL},
    /* the arithmetic recomputed faces get: ingest's (the vision.precision key) */
    {"precision", FN_PARAM_STRING, "vision.precision", NULL, 0, 0, fn_task_precisions, NULL},
    {"batch", FN_PARAM_INT, NULL, "32", 1, 4096, NULL, "photos recomputed per commit"},
};

static const char *const photo_exts[] = {"jpg",  "jpeg", "png",  "webp", "heic",
                                         "heif", "tif",  "tiff", "gif"};

typedef enum {
    R_NONE,
    R_CLEAR_MISSING, /* the file is back */
    R_RELINK,
    R_MERGE,
    R_MARK_MISSING,
    R_PRUNE,
    R_RECOMPUTE,
    R_DATABASE,
} repair_action;

typedef struct candidate {
    int64_t size;
    uint64_t hash;
    char *path;
    int64_t mtime_ns;
    int used;
} candidate;

typedef struct repair_job {
    int dry_run, prune;
    fn_store *s;
    fn_xp_reader *reader;
    fn_roots roots;
    char models_sum[17];
    const char *models_dir;
    const fn_models *models;
    fn_detect_opts det;
    candidate *cand;
    size_t n_cand;
    int64_t last_id;
    int db_done;
    int looked; /* the candidates were looked for (at the first photo found gone) */
    uint8_t *hashbuf;
} repair_job;

typedef struct repair_item {
    repair_action action;
    fn_xp_photo photo;
    int64_t other_id; /* R_MERGE: the row it merges into */
    char *new_path;   /* R_RELINK */
    int64_t mtime_ns;
    /* R_RECOMPUTE: per face of `photo`, the recomputed vectors (matched[i] set) */
    int *matched;
    float (*landmarks)[68][2];
    float (*descriptors)[128];
    uint8_t **thumbs;
    size_t *thumb_len;
    fn_xp_health health; /* R_DATABASE */
    fn_decoded decoded;  /* R_RECOMPUTE, prepared: the photo's pixels until process */
} repair_item;

typedef struct repair_slot {
    fn_vision *vis;
} repair_slot;

/* ---- open: roots, models, the missing photos and their candidates -----------------------------
 */

static int is_file(const char *path, int64_t *mtime_ns)
{
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return 0;
    if (mtime_ns) *mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
    return 1;
}

static int exists_cb(const char *path, void *arg)
{
    (void)arg;
    return is_file(path, NULL);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The sizes of the photos whose files are gone (sorted), to know which unknown files are worth
 * hashing. */
static int missing_sizes(repair_job *st, int64_t **sizes, size_t *n)
{
    *sizes = NULL;
    *n = 0;
    size_t cap = 0;
    int64_t after = 0;
    int rc;
    fn_xp_photo p;
    while ((rc = fn_xp_photo_after(st->reader, after, 0, &p)) == 0) {
        after = p.id;
        if (!is_file(p.path, NULL)) {
            if (*n == cap) {
                size_t nc = cap ? cap * 2 : 64;
                int64_t *g = realloc(*sizes, nc * sizeof *g);
                if (!g) {
                    fn_xp_photo_clear(&p);
                    return FN_ERR_NOMEM;
                }
                *sizes = g;
                cap = nc;
            }
            (*sizes)[(*n)++] = p.size;
        }
        fn_xp_photo_clear(&p);
    }
    if (rc != FN_ERR_NOT_FOUND) return rc;
    if (*n) qsort(*sizes, *n, sizeof **sizes, cmp_i64);
    return 0;
}

static int find_candidates(fn_batch *b, repair_job *st)
{
    int64_t *sizes;
    size_t n_sizes;
    int rc = missing_sizes(st, &sizes, &n_sizes);
    if (rc < 0 || !n_sizes || !st->roots.n) {
        free(sizes);
        return rc;
    }
    fn_walk_opts wo = {
        .recursive = 1, .exts = photo_exts, .n_exts = sizeof photo_exts / sizeof photo_exts[0]};
    fn_walk *w = NULL;
    if ((rc = fn_walk_open((const char *const *)st->roots.dir, st->roots.n, &wo, &w)) < 0) {
        free(sizes);
        return rc;
    }
    fn_walk_item wi;
    size_t cap = 0;
    while ((rc = fn_walk_next(w, &wi)) == 1) {
        rc = 0;
        if (wi.err) continue;
        struct stat sb;
        if (stat(wi.path, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        int64_t size = (int64_t)sb.st_size;
        if (!bsearch(&size, sizes, n_sizes, sizeof *sizes, cmp_i64)) continue;
        if (fn_xp_path_known(st->reader, wi.path)) continue;
        uint64_t h;
        int64_t got;
        if (fn_hash_file(wi.path, st->hashbuf, 1 << 20, &h, &got) != 0 || got != size) continue;
        if (st->n_cand == cap) {
            size_t nc = cap ? cap * 2 : 16;
            candidate *g = realloc(st->cand, nc * sizeof *g);
            if (!g) {
                rc = FN_ERR_NOMEM;
                break;
            }
            st->cand = g;
            cap = nc;
        }
        candidate *c = &st->cand[st->n_cand];
        if (!(c->path = strdup(wi.path))) {
            rc = FN_ERR_NOMEM;
            break;
        }
        c->size = size;
        c->hash = h;
        c->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
        c->used = 0;
        st->n_cand++;
        if (fn_job_should_stop(fn_batch_ctx(b)) != FN_STOP_NONE) break;
    }
    fn_walk_free(w);
    free(sizes);
    return rc < 0 ? rc : 0;
}

static int repair_open(fn_batch *b)
{
    repair_job *st = fn_batch_state(b);
    fn_job_ctx *ctx = fn_batch_ctx(b);
    const fn_config *cfg = fn_engine_config(fn_job_engine(ctx));
    st->dry_run = fn_batch_bool(b, "dry_run");
    st->prune = fn_batch_bool(b, "prune");
    st->models_dir = cfg->models_dir;
    fn_detect_opts_default(&st->det);
    st->det.detector =
        strcmp(fn_batch_string(b, "detector"), "tiny") == 0 ? FN_DETECTOR_TINY : FN_DETECTOR_SSD;
    st->det.min_face_size = 0; /* every face that is there, to match the stored ones */
    st->det.landmarks = 1;
    st->det.descriptors = 1;
    st->det.thumb_size = 112;
    int rc = fn_task_precision("repair", fn_batch_string(b, "precision"), &st->det);
    if (rc) return rc;
    if (!(st->hashbuf = malloc(1 << 20))) return FN_ERR_NOMEM;
    if (!(st->s = fn_batch_reader(b))) {
        fn_batch_fail(b, "repair: %s", fn_engine_errmsg(fn_job_engine(ctx)));
        return FN_ERR_DB;
    }
    const char *const *given;
    size_t n_given = fn_batch_strings(b, "roots", &given);
    if ((rc = fn_library_migrate(st->s)) < 0 || (rc = fn_xp_reader_new(st->s, &st->reader)) < 0 ||
        (rc = fn_roots_load(st->s, given, n_given, &st->roots)) < 0) {
        fn_batch_fail(b, "repair: %s", fn_store_errmsg(st->s));
        return rc;
    }
    /* Models that cannot be read: nothing is compared with them (the faces stay as they are). */
    if (fn_models_sum(st->models_dir, st->models_sum) < 0) st->models_sum[0] = 0;
    const char *ck = fn_batch_checkpoint(b);
    json_error_t jerr;
    json_t *c = ck ? json_loads(ck, 0, &jerr) : NULL;
    st->last_id = json_integer_value(json_object_get(c, "last_id"));
    st->db_done = json_is_true(json_object_get(c, "db"));
    json_decref(c);
    fn_batch_set(b, C_ITEMS_TOTAL, fn_xp_count_photos(st->s, NULL) + 1);
    return 0;
}

static void repair_close(fn_batch *b)
{
    repair_job *st = fn_batch_state(b);
    fn_xp_reader_free(st->reader);
    fn_roots_free(&st->roots);
    for (size_t i = 0; i < st->n_cand; i++)
        free(st->cand[i].path);
    free(st->cand);
    free(st->hashbuf);
}

/* ---- the source -------------------------------------------------------------------------------
 */

static int needs_recompute(const repair_job *st, const fn_xp_photo *p)
{
    if (strcmp(p->status, "error") == 0) return 0;
    if (p->incomplete) return 1;
    /* a photo without faces has nothing other models computed */
    return strcmp(p->status, "ok") == 0 && st->models_sum[0] && p->models[0] &&
           strcmp(p->models, st->models_sum) != 0;
}

static int64_t auto_faces(const fn_xp_photo *p)
{
    int64_t n = 0;
    for (size_t i = 0; i < p->n_faces; i++)
        n += !p->faces[i].origin_user;
    return n;
}

static int database_item(fn_batch *b, repair_job *st, fn_item *it, repair_item *x)
{
    st->db_done = 1;
    int rc = fn_item_set_ref(it, "(database)");
    if (rc < 0) return rc;
    if ((rc = fn_xp_check(st->s, &x->health)) < 0) {
        fn_batch_fail(b, "repair: checking the database: %s", fn_store_errmsg(st->s));
        return rc;
    }
    fn_batch_add(b, C_INTEGRITY_ERRORS, x->health.integrity + x->health.foreign_keys);
    if (x->health.integrity) {
        /* nothing here rebuilds a damaged b-tree: that takes a backup or `sqlite3 .recover` */
        rc = fn_item_fail(it, FN_ERR_CORRUPT, "integrity",
                          "the database failed SQLite's integrity check (%lld problems): restore a "
                          "backup or run sqlite3's .recover on library.db",
                          (long long)x->health.integrity);
        if (rc < 0) return rc;
    }
    if (st->dry_run)
        fn_batch_add(b, C_ORPHANS_REMOVED, x->health.orphan_clusters + x->health.faceless_persons);
    x->action = R_DATABASE;
    it->keep = 1;
    return FN_SOURCE_ITEM;
}

static int repair_next_source(fn_batch *b, fn_item *it)
{
    repair_job *st = fn_batch_state(b);
    repair_item *x = it->data;
    fn_xp_photo *p = &x->photo;
    int rc = fn_xp_reader_hold(st->reader, 1);
    if (rc == 0) rc = fn_xp_photo_after(st->reader, st->last_id, 0, p);
    if (rc == FN_ERR_NOT_FOUND) return st->db_done ? FN_SOURCE_END : database_item(b, st, it, x);
    if (rc < 0) {
        fn_batch_fail(b, "repair: reading photos: %s", fn_store_errmsg(st->s));
        return rc;
    }
    st->last_id = p->id;
    if ((rc = fn_item_set_ref(it, p->path)) < 0) return rc;
    fn_batch_add(b, C_PHOTOS_CHECKED, 1);
    if (is_file(p->path, NULL)) {
        if (p->missing_at) {
            x->action = R_CLEAR_MISSING;
            it->keep = 1;
        }
        if (!needs_recompute(st, p)) return FN_SOURCE_ITEM;
        fn_xp_photo_clear(p);
        if ((rc = fn_xp_photo_after(st->reader, st->last_id - 1, FN_XP_FACES | FN_XP_VECTORS, p)) <
            0) {
            fn_batch_fail(b, "repair: reading faces: %s", fn_store_errmsg(st->s));
            return rc == FN_ERR_NOT_FOUND ? FN_ERR_DB : rc;
        }
        if (st->dry_run) {
            fn_batch_add(b, C_FACES_RECOMPUTED, auto_faces(p));
            return FN_SOURCE_ITEM;
        }
        x->action = R_RECOMPUTE;
        it->work = 1;
        it->keep = 1;
        return FN_SOURCE_ITEM;
    }
    /* Gone. The files under the roots are indexed now, once, for every photo that is gone: a
     * library where nothing moved never walks them. */
    if (!st->looked) {
        st->looked = 1;
        if ((rc = find_candidates(b, st)) < 0) {
            fn_batch_fail(b, "repair: looking for moved photos: %s", fn_strerror(rc));
            return rc;
        }
    }
    /* The same content ingested again under another name? */
    char *other = NULL;
    rc = fn_xp_photo_same_content(st->reader, p->size, p->hash, p->id, exists_cb, NULL,
                                  &x->other_id, &other);
    if (rc == 0 && p->hash) {
        free(other);
        x->action = R_MERGE;
        it->keep = 1;
        fn_batch_add(b, C_RELINKED, 1);
        return FN_SOURCE_ITEM;
    }
    free(other);
    if (rc < 0 && rc != FN_ERR_NOT_FOUND) {
        fn_batch_fail(b, "repair: %s", fn_store_errmsg(st->s));
        return rc;
    }
    /* A file under the roots with its content? */
    for (size_t i = 0; p->hash && i < st->n_cand; i++) {
        candidate *c = &st->cand[i];
        if (c->used || c->size != p->size || c->hash != p->hash || !is_file(c->path, NULL))
            continue;
        c->used = 1;
        if (!(x->new_path = strdup(c->path))) return FN_ERR_NOMEM;
        x->mtime_ns = c->mtime_ns;
        x->action = R_RELINK;
        it->keep = 1;
        fn_batch_add(b, C_RELINKED, 1);
        return FN_SOURCE_ITEM;
    }
    if (st->prune) {
        x->action = R_PRUNE;
        it->keep = 1;
        fn_batch_add(b, C_PRUNED, 1);
    } else {
        fn_batch_add(b, C_MISSING, 1);
        if (!p->missing_at) {
            x->action = R_MARK_MISSING;
            it->keep = 1;
        }
    }
    return FN_SOURCE_ITEM;
}

static int repair_next(fn_batch *b, fn_item *it)
{
    return fn_interop_hook("repair", it, repair_next_source(b, it));
}

static char *repair_cursor(fn_batch *b)
{
    repair_job *st = fn_batch_state(b);
    char *s;
    if (asprintf(&s, "{\"last_id\":%lld,\"db\":%s}", (long long)st->last_id,
                 st->db_done ? "true" : "false") < 0)
        return NULL;
    return s;
}

/* ---- recomputing faces ------------------------------------------------------------------------
 */

static int repair_warm(fn_batch *b)
{
    repair_job *st = fn_batch_state(b);
    if (st->models) return 0;
    unsigned which = FN_MODEL_LANDMARKS | FN_MODEL_RECOGNITION |
                     (st->det.detector == FN_DETECTOR_TINY ? FN_MODEL_TINY : FN_MODEL_SSD);
    char err[1024] = "";
    int rc = fn_models_cache_get(st->models_dir, which, &st->models, err, sizeof err);
    if (rc < 0) fn_batch_fail(b, "repair: %s", err);
    return rc;
}

static int repair_slot_open(fn_batch *b, void *slot, char *err, size_t errlen)
{
    repair_job *st = fn_batch_state(b);
    repair_slot *s = slot;
    int rc = fn_vision_new(st->models, &s->vis);
    if (rc < 0) snprintf(err, errlen, "setting up a vision worker: %s", fn_strerror(rc));
    return rc;
}

static void repair_slot_close(fn_batch *b, void *slot)
{
    (void)b;
    fn_vision_free(((repair_slot *)slot)->vis);
}

/* Decodes a photo to recompute (on the prefetcher, ahead of the worker). */
static void repair_prepare(fn_batch *b, fn_item *it)
{
    (void)b;
    repair_item *x = it->data;
    char err[1024] = "";
    int rc = fn_vision_decode_file(x->photo.path, &x->decoded, err, sizeof err);
    if (rc < 0) fn_item_fail(it, rc, NULL, "%s", err[0] ? err : fn_strerror(rc));
}

static void repair_process(fn_batch *b, void *slot, fn_item *it)
{
    repair_job *st = fn_batch_state(b);
    repair_slot *s = slot;
    repair_item *x = it->data;
    fn_xp_photo *p = &x->photo;
    fn_faces faces;
    char err[1024] = "";
    int rc = fn_vision_detect_decoded(s->vis, &x->decoded, &st->det, &faces, err, sizeof err);
    fn_decoded_free(&x->decoded);
    if (rc < 0) {
        fn_item_fail(it, rc, NULL, "%s: %s", p->path, err[0] ? err : fn_strerror(rc));
        return;
    }
    size_t n = p->n_faces ? p->n_faces : 1;
    x->matched = calloc(n, sizeof *x->matched);
    x->landmarks = calloc(n, sizeof *x->landmarks);
    x->descriptors = calloc(n, sizeof *x->descriptors);
    x->thumbs = calloc(n, sizeof *x->thumbs);
    x->thumb_len = calloc(n, sizeof *x->thumb_len);
    char *taken = calloc(faces.n + 1, 1);
    if (!x->matched || !x->landmarks || !x->descriptors || !x->thumbs || !x->thumb_len || !taken) {
        free(taken);
        fn_item_fail(it, FN_ERR_NOMEM, NULL, "%s: out of memory", p->path);
        return;
    }
    /* Each stored detected face takes the new detection it overlaps most: the same photo gives
     * the same boxes, give or take what other detector weights move. */
    int64_t done = 0;
    for (size_t i = 0; i < p->n_faces; i++) {
        const fn_xp_face *f = &p->faces[i];
        if (f->origin_user) continue;
        double best = 0.5;
        size_t k = faces.n;
        for (size_t j = 0; j < faces.n; j++) {
            if (taken[j]) continue;
            const fn_face *g = &faces.faces[j];
            double iou =
                fn_rect_iou(f->x, f->y, f->width, f->height, g->x, g->y, g->width, g->height);
            if (iou >= best) {
                best = iou;
                k = j;
            }
        }
        if (k == faces.n) continue;
        taken[k] = 1;
        const fn_face *g = &faces.faces[k];
        x->matched[i] = 1;
        memcpy(x->landmarks[i], g->landmarks, sizeof x->landmarks[i]);
        memcpy(x->descriptors[i], g->descriptor, sizeof x->descriptors[i]);
        if (g->thumb_jpeg && g->thumb_len && (x->thumbs[i] = malloc(g->thumb_len))) {
            memcpy(x->thumbs[i], g->thumb_jpeg, g->thumb_len);
            x->thumb_len[i] = g->thumb_len;
        }
        done++;
    }
    free(taken);
    fn_batch_add(b, C_FACES_RECOMPUTED, done);
}

/* ---- the rows ---------------------------------------------------------------------------------
 */

static int log_action(fn_batch *b, fn_store_tx *tx, const char *action, json_t *detail)
{
    char actor[48];
    fn_job_id job = fn_job_id_of(fn_batch_ctx(b));
    snprintf(actor, sizeof actor, "job:%lld", (long long)job);
    char *d = json_dumps(detail, JSON_COMPACT);
    json_decref(detail);
    int64_t id;
    int rc = d ? fn_xp_audit(tx, actor, action, d, job, &id) : FN_ERR_NOMEM;
    free(d);
    return rc;
}

static json_t *photo_detail(const repair_item *x)
{
    json_t *j = json_pack("{s:I}", "photo", (json_int_t)x->photo.id);
    if (j) fn_json_set_path(j, "path", x->photo.path);
    return j;
}

static int write_one(fn_batch *b, repair_job *st, fn_store_tx *tx, fn_item *it)
{
    repair_item *x = it->data;
    int rc = 0;
    json_t *d;
    switch (x->action) {
    case R_NONE:
        return 0;
    case R_CLEAR_MISSING:
        return fn_xp_set_missing(tx, x->photo.id, 0);
    case R_MARK_MISSING:
        if ((rc = fn_xp_set_missing(tx, x->photo.id, fn_wall_ms())) < 0) return rc;
        return log_action(b, tx, "repair.missing", photo_detail(x));
    case R_PRUNE:
        if ((rc = fn_xp_delete_photo(tx, x->photo.id)) < 0) return rc;
        return log_action(b, tx, "repair.prune", photo_detail(x));
    case R_RELINK:
        if ((rc = fn_xp_relink(tx, x->photo.id, x->new_path, x->mtime_ns)) < 0) return rc;
        d = photo_detail(x);
        if (d) fn_json_set_path(d, "to", x->new_path);
        return log_action(b, tx, "repair.relink", d);
    case R_MERGE: {
        int64_t moved = 0;
        if ((rc = fn_xp_merge_photo(tx, x->photo.id, x->other_id, &moved)) < 0) return rc;
        d = photo_detail(x);
        if (d) json_object_set_new(d, "into", json_integer(x->other_id));
        if (d) json_object_set_new(d, "faces_moved", json_integer(moved));
        return log_action(b, tx, "repair.relink", d);
    }
    case R_RECOMPUTE:
        /* a photo that is back and stale: unmarked too, whatever the pipeline said */
        if (x->photo.missing_at && (rc = fn_xp_set_missing(tx, x->photo.id, 0)) < 0) return rc;
        if (it->err) return 0;
        for (size_t i = 0; !rc && i < x->photo.n_faces; i++)
            if (x->matched[i])
                rc =
                    fn_xp_face_vectors(tx, x->photo.faces[i].id, (const float(*)[2])x->landmarks[i],
                                       x->descriptors[i], x->thumbs[i], x->thumb_len[i]);
        if (!rc) rc = fn_xp_set_models(tx, x->photo.id, st->models_sum);
        return rc;
    case R_DATABASE: {
        fn_xp_health fixed;
        if ((rc = fn_xp_fix(tx, &fixed)) < 0) return rc;
        int64_t orphans = fixed.foreign_keys + fixed.orphan_clusters + fixed.faceless_persons;
        fn_batch_add(b, C_ORPHANS_REMOVED, orphans);
        if (!orphans) return 0;
        d = json_pack("{s:I, s:I, s:I}", "dangling_rows", (json_int_t)fixed.foreign_keys,
                      "empty_clusters", (json_int_t)fixed.orphan_clusters, "faceless_persons",
                      (json_int_t)fixed.faceless_persons);
        return log_action(b, tx, "repair.database", d);
    }
    }
    return 0;
}

static int repair_write(fn_batch *b, fn_store_tx *tx, fn_item *const *items, size_t n)
{
    repair_job *st = fn_batch_state(b);
    fn_xp_reader_hold(st->reader, 0); /* let the WAL be checkpointed past our snapshot */
    if (st->dry_run) return 0;
    for (size_t i = 0; i < n; i++) {
        int rc = write_one(b, st, tx, items[i]);
        if (rc < 0) {
            fn_batch_fail(b, "repair: %s: %s", items[i]->ref ? items[i]->ref : "",
                          fn_store_errmsg(fn_store_tx_store(tx)));
            return rc;
        }
    }
    return 0;
}

static void repair_item_clear(fn_batch *b, fn_item *it)
{
    (void)b;
    repair_item *x = it->data;
    fn_decoded_free(&x->decoded);
    for (size_t i = 0; x->thumbs && i < x->photo.n_faces; i++)
        free(x->thumbs[i]);
    free(x->thumbs);
    free(x->thumb_len);
    free(x->matched);
    free(x->landmarks);
    free(x->descriptors);
    free(x->new_path);
    fn_xp_photo_clear(&x->photo);
}

static fn_resolution repair_resolution(const char *code)
{
    (void)code;
    return FN_RES_SKIP; /* a photo that cannot be decoded is ingest's error to report */
}

static char *repair_summary(const fn_job_info *job, void *user)
{
    (void)user;
    json_error_t jerr;
    json_t *pr = json_loads(job->progress ? job->progress : "{}", 0, &jerr);
    json_t *pl = json_loads(job->payload ? job->payload : "{}", 0, &jerr);
    json_t *c = json_object_get(pr, "counters");
#define C(name) (long long)json_integer_value(json_object_get(c, name))
    int dry = json_is_true(json_object_get(pl, "dry_run"));
    char *s;
    if (asprintf(
            &s,
            "repair %lld%s: %lld photos checked, %lld relinked, %lld missing%s, %lld pruned; "
            "%lld faces recomputed; %lld orphans removed, %lld integrity errors; %lld errors\n",
            (long long)job->id, dry ? " (dry run: nothing written)" : "", C("photos_checked"),
            C("relinked"), C("missing"),
            C("missing") ? " (kept with their people; --prune removes them)" : "", C("pruned"),
            C("faces_recomputed"), C("orphans_removed"), C("integrity_errors"), C("errors")) < 0)
        s = NULL;
#undef C
    json_decref(pr);
    json_decref(pl);
    return s;
}

const fn_jobtype fn_repair_type = {
    .type = "repair",
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .counters = counters,
    .n_counters = C_COUNT,
    .done_counter = C_ITEMS_DONE,
    .total_counter = C_ITEMS_TOTAL,
    .errors_counter = C_ERRORS,
    .item_ref = "the photo's absolute path",
    .rate_unit = "photos",
    .batch_param = "batch",
    .flush_items = 8192,
    .flush_ms = 1000,
    .mem_mb = 200,
    .job_size = sizeof(repair_job),
    .slot_size = sizeof(repair_slot),
    .item_size = sizeof(repair_item),
    .open = repair_open,
    .close = repair_close,
    .slot_open = repair_slot_open,
    .slot_close = repair_slot_close,
    .next = repair_next,
    .warm = repair_warm,
    .prepare = repair_prepare,
    .process = repair_process,
    .write = repair_write,
    .cursor = repair_cursor,
    .item_clear = repair_item_clear,
    .resolution = repair_resolution,
    .summary = repair_summary,
};
