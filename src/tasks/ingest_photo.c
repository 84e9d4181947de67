/* ingest_photo.c: the work on one photo (on a worker slot) and the rows a batch of photos writes
 * (the "ingest" type's fn_jobtype callbacks; see ingest.h).
 *
 * What must stay true:
 * - A worker touches only its own item and its own slot; counters and histograms are the only
 *   shared things it updates (atomically), which is what moves live progress per photo.
 * - A file is read once for its hash before it is decoded: the hash describes the bytes the faces
 *   came from (a file rewritten while being read is caught by the next run's mtime). Both are the
 *   item's `prepare` (on the job's prefetcher when it has one, ahead of the workers); its decoded
 *   pixels live until its `process` ran the networks on them.
 * - The rows go in the driver's commit, with the checkpoint: a crash never loses or repeats one. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "tasks/content_hash.h"
#include "tasks/ingest.h"
#include "tasks/models_cache.h"
#include "tasks/models_sum.h"
#include "util/clock.h"

/* The hash's read size: on the stack of whichever thread prepares the photo (the prefetcher's or
 * a worker's), so no buffer is allocated per photo; the hash streams, so the size only sets the
 * number of reads. */
enum { READ_BUF = 64 * 1024 };

fn_resolution ingest_resolution(const char *code)
{
    /* Failures the user can fix without changing the file (permissions, a file moved back, a copy
     * still in progress) are worth retrying; damaged or foreign files are skipped. */
    if (strcmp(code, "not_found") == 0 || strcmp(code, "unreadable") == 0 ||
        strcmp(code, "io") == 0 || strcmp(code, "truncated") == 0 || strcmp(code, "nomem") == 0)
        return FN_RES_RETRY;
    return FN_RES_SKIP;
}

int ingest_warm(fn_batch *b)
{
    ingest_job *st = fn_batch_state(b);
    if (st->models) return 0;
    char err[1024] = "";
    int rc = fn_models_cache_get(st->models_dir, st->models_which, &st->models, err, sizeof err);
    if (rc < 0) {
        fn_batch_fail(b, "ingest: %s", err);
        return rc;
    }
    /* Recorded with each photo, so repair knows which faces other model files computed. A file
     * that loaded but cannot be hashed again leaves it unknown rather than failing the job. */
    if (fn_models_sum(st->models_dir, st->models_sum) < 0) st->models_sum[0] = 0;
    return 0;
}

int ingest_slot_open(fn_batch *b, void *slot, char *err, size_t errlen)
{
    ingest_job *st = fn_batch_state(b);
    ingest_slot *s = slot;
    int rc = fn_vision_new(st->models, &s->vis);
    if (rc < 0) snprintf(err, errlen, "setting up a vision worker: %s", fn_strerror(rc));
    return rc;
}

void ingest_slot_close(fn_batch *b, void *slot)
{
    (void)b;
    ingest_slot *s = slot;
    fn_vision_free(s->vis);
}

void ingest_item_clear(fn_batch *b, fn_item *it)
{
    (void)b;
    ingest_photo *ph = it->data;
    fn_decoded_free(&ph->decoded); /* (prepared, then dropped unprocessed by a stop) */
    for (size_t i = 0; ph->thumbs && i < ph->n_faces; i++)
        free(ph->thumbs[i]);
    free(ph->thumbs);
    free(ph->faces);
    free(ph->landmarks);
    free(ph->descriptors);
    free(ph->key);
}

/* Largest files first: workers take items in this order, so the batch ends on small photos and no
 * worker idles long waiting for the last big one (longest-processing-time first). The rows are
 * written in source order, so this changes nothing stored. */
int ingest_compare(const fn_item *a, const fn_item *b)
{
    int64_t sa = ((const ingest_photo *)a->data)->size, sb = ((const ingest_photo *)b->data)->size;
    return sa < sb ? 1 : sa > sb ? -1 : 0;
}

/* Copies the faces out of the fn_vision (which reuses its buffers on the next call). */
static int keep_faces(ingest_photo *ph, const fn_faces *f)
{
    ph->width = f->width;
    ph->height = f->height;
    ph->taken_at = f->info.taken_at;
    snprintf(ph->format, sizeof ph->format, "%s", f->info.format);
    ph->skipped_small = f->skipped_small;
    ph->n_faces = 0;
    if (!f->n) return 0;
    ph->faces = calloc(f->n, sizeof *ph->faces);
    ph->landmarks = calloc(f->n, sizeof *ph->landmarks);
    ph->descriptors = calloc(f->n, sizeof *ph->descriptors);
    ph->thumbs = calloc(f->n, sizeof *ph->thumbs);
    if (!ph->faces || !ph->landmarks || !ph->descriptors || !ph->thumbs) return FN_ERR_NOMEM;
    for (size_t i = 0; i < f->n; i++) {
        const fn_face *src = &f->faces[i];
        fn_face_put *p = &ph->faces[i];
        memcpy(ph->landmarks[i], src->landmarks, sizeof ph->landmarks[i]);
        memcpy(ph->descriptors[i], src->descriptor, sizeof ph->descriptors[i]);
        p->x = src->x;
        p->y = src->y;
        p->width = src->width;
        p->height = src->height;
        p->score = src->score;
        p->landmarks = (const float(*)[2])ph->landmarks[i];
        p->descriptor = ph->descriptors[i];
        if (src->thumb_jpeg && src->thumb_len) {
            ph->thumbs[i] = malloc(src->thumb_len);
            if (!ph->thumbs[i]) return FN_ERR_NOMEM;
            memcpy(ph->thumbs[i], src->thumb_jpeg, src->thumb_len);
            p->thumb_jpeg = ph->thumbs[i];
            p->thumb_len = src->thumb_len;
        }
        ph->n_faces = i + 1;
    }
    return 0;
}

/* Adds ns to a millisecond counter whose exact sum is kept in *sum: each call adds the whole
 * milliseconds the sum crossed, so the counter never drifts from the sum by rounding. */
static void add_ms(fn_batch *b, int counter, _Atomic uint64_t *sum, uint64_t ns)
{
    uint64_t before = atomic_fetch_add(sum, ns);
    int64_t ms = (int64_t)((before + ns) / 1000000u - before / 1000000u);
    if (ms) fn_batch_add(b, counter, ms);
}

/* The photo's counters and histograms, as soon as it is done (live progress): its vision time
 * (decode and networks) and, of it, its decode time. */
static void count(fn_batch *b, ingest_photo *ph, uint64_t vision_ns, uint64_t decode_ns)
{
    ingest_job *st = fn_batch_state(b);
    add_ms(b, C_VISION_MS, &st->vision_ns, vision_ns);
    add_ms(b, C_DECODE_MS, &st->decode_ns, decode_ns);
    if (!ph) return;
    fn_batch_add(b, C_FACES_FOUND, (int64_t)ph->n_faces);
    fn_batch_add(b, C_FACES_SKIPPED_SMALL, (int64_t)ph->skipped_small);
    if (!ph->n_faces) fn_batch_add(b, C_NO_FACE_IMAGES, 1);
    fn_batch_observe(b, H_FACES_PER_PHOTO, (double)ph->n_faces);
    for (size_t k = 0; k < ph->n_faces; k++) {
        float w = ph->faces[k].width, h = ph->faces[k].height;
        fn_batch_observe(b, H_FACE_SIZE, w < h ? w : h);
    }
}

/* Reads the photo once for its hash, then decodes it (on the prefetcher, ahead of the worker). */
void ingest_prepare(fn_batch *b, fn_item *it)
{
    ingest_photo *ph = it->data;
    int64_t size = ph->size;
    int rc = 0;
    /* Hashed already when it was considered (its size was a known photo's): not read twice. */
    if (!ph->hashed) {
        unsigned char buf[READ_BUF];
        rc = fn_hash_file(it->ref, buf, sizeof buf, &ph->hash, &size);
    }
    if (rc < 0) {
        if (rc == FN_ERR_NOT_FOUND)
            fn_item_fail(it, rc, NULL, "%s: vanished (listed, then gone before it was read)",
                         it->ref);
        else
            fn_item_fail(it, rc, NULL, "%s: %s (%s)", it->ref, fn_strerror(rc), strerror(errno));
        return;
    }
    fn_batch_add(b, C_BYTES_READ, size);
    ph->size = size; /* rewritten since the stat: record what was read */
    char err[1024] = "";
    rc = fn_vision_decode_file(it->ref, &ph->decoded, err, sizeof err);
    if (rc < 0) {
        uint64_t decode_ns = (uint64_t)(ph->decoded.ms_decode * 1e6);
        count(b, NULL, decode_ns, decode_ns);
        if (rc == FN_ERR_NOT_FOUND)
            fn_item_fail(it, rc, NULL, "%s: vanished (listed, then gone before it was read)",
                         it->ref);
        else
            fn_item_fail(it, rc, NULL, "%s", err[0] ? err : fn_strerror(rc));
    }
}

void ingest_process(fn_batch *b, void *slot, fn_item *it)
{
    ingest_job *st = fn_batch_state(b);
    ingest_slot *s = slot;
    ingest_photo *ph = it->data;
    fn_faces faces;
    char err[1024] = "";
    uint64_t t0 = fn_mono_ns();
    int rc = fn_vision_detect_decoded(s->vis, &ph->decoded, &st->det, &faces, err, sizeof err);
    /* the photo's vision time: its decode (wherever it ran) and its networks */
    uint64_t decode_ns = (uint64_t)(ph->decoded.ms_decode * 1e6);
    uint64_t vision_ns = fn_mono_ns() - t0 + decode_ns;
    fn_decoded_free(&ph->decoded); /* (the pixels are done with: a batch holds no photo longer) */
    if (rc < 0) {
        count(b, NULL, vision_ns, decode_ns);
        fn_item_fail(it, rc, NULL, "%s: %s", it->ref, err[0] ? err : fn_strerror(rc));
        return;
    }
    if ((rc = keep_faces(ph, &faces)) < 0) {
        count(b, NULL, vision_ns, decode_ns);
        fn_item_fail(it, rc, NULL, "%s: out of memory keeping the faces", it->ref);
        return;
    }
    count(b, ph, vision_ns, decode_ns);
}

/* The root of `path` on this host: a known one, or one made (in the batch's transaction) of the
 * payload folder that holds it. 0 and *root = 0 when no payload folder holds it (a retry of a
 * path the payload does not name). */
static int locate(ingest_job *st, fn_store_tx *tx, const char *path, int64_t *root,
                  const char **rel)
{
    if ((*root = ingest_root_of(st, path, rel)) > 0) return 0;
    for (size_t i = 0; i < st->n_dirs; i++) {
        size_t n = strlen(st->dirs[i]);
        if (strncmp(st->dirs[i], path, n) != 0 || (path[n] != '/' && path[n] != 0 && n > 1))
            continue;
        fn_root_path *v = realloc(st->roots, (st->n_roots + 1) * sizeof *v);
        if (!v) return FN_ERR_NOMEM;
        st->roots = v;
        fn_root_path *p = &v[st->n_roots];
        memset(p, 0, sizeof *p);
        int rc = fn_library_root_ensure(tx, st->host, st->dirs[i], &p->root, &p->path);
        if (rc < 0) return rc;
        st->n_roots++;
        *root = ingest_root_of(st, path, rel);
        return 0;
    }
    return 0;
}

int ingest_write(fn_batch *b, fn_store_tx *tx, fn_item *const *items, size_t n_items)
{
    ingest_job *st = fn_batch_state(b);
    fn_library_reader_hold(st->reader, 0); /* let the WAL be checkpointed past our snapshot */
    fn_photo_put *puts = calloc(n_items ? n_items : 1, sizeof *puts);
    if (!puts) return FN_ERR_NOMEM;
    size_t n = 0;
    fn_job_id job = fn_job_id_of(fn_batch_ctx(b));
    for (size_t i = 0; i < n_items; i++) {
        const fn_item *it = items[i];
        const ingest_photo *ph = it->data;
        fn_photo_put *p = &puts[n];
        p->path = ph->key ? ph->key : it->ref;
        int rc = locate(st, tx, it->ref, &p->root, &p->rel);
        if (rc < 0) {
            free(puts);
            return rc;
        }
        p->size = ph->size;
        p->mtime_ns = ph->mtime_ns;
        p->hash = ph->hash;
        p->job_id = job;
        p->taken_at = -1;
        p->same_as = ph->same_as;
        p->fresh = ph->fresh;
        p->was_copy = ph->was_copy;
        if (ph->same_as && !it->err) {
            /* A known photo seen here (ingest.c, recognise). One photo moves once per batch: a
             * second file of it, found before the first move was committed, is its copy. */
            p->kind = ph->relink ? FN_PUT_RELINK : FN_PUT_COPY;
            for (size_t k = 0; k < n && p->kind == FN_PUT_RELINK; k++)
                if (puts[k].kind == FN_PUT_RELINK && puts[k].same_as == ph->same_as)
                    p->kind = FN_PUT_COPY;
        } else if (ph->touch) {
            p->kind = FN_PUT_TOUCH;
        } else if (it->work && !it->err) {
            p->kind = FN_PUT_RESULT;
            p->width = ph->width;
            p->height = ph->height;
            p->taken_at = ph->taken_at;
            p->format = ph->format;
            p->faces = ph->faces;
            p->n_faces = ph->n_faces;
            p->faces_skipped_small = (int)ph->skipped_small;
            p->models = st->models_sum;
        } else if (it->work && it->err != FN_ERR_NOT_FOUND && it->err != FN_ERR_NOT_FILE &&
                   it->err != FN_ERR_NOMEM) {
            /* A file that is there but is not a usable photo: remember it as such. */
            p->kind = FN_PUT_ERROR;
            p->error_code = it->code;
        } else {
            continue; /* not a photo (gone, a folder, a loop): no row */
        }
        n++;
    }
    int rc = n ? fn_library_put_photos(tx, puts, n, NULL) : 0;
    free(puts);
    return rc;
}
