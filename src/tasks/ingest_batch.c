/* ingest_batch.c: processing and committing one ingest batch (see ingest_batch.h).
 *
 * What must stay true:
 * - Workers touch only their own entry and their own slot; every fn_job_* call other than the
 *   parallel map happens on the job's thread after the map returns (the engine's rule).
 * - The batch's rows, its errors, the checkpoint and the progress go to the database in ONE
 *   fn_job_commit, so after a crash each file is either committed with its checkpoint or redone.
 * - A file is read once for its hash before it is decoded: the hash describes the bytes the
 *   faces came from (a file rewritten while being read is caught by the next run's mtime). */
#include "tasks/ingest_batch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "tasks/content_hash.h"
#include "tasks/models_cache.h"
#include "util/clock.h"

enum { READ_BUF = 1 << 20 };

int batch_add(ingest_state *st, enum entry_kind kind, const char *path, int64_t size,
              int64_t mtime_ns, uint64_t hash, int rc, const char *code, const char *msg)
{
    if (st->n_entries == st->cap_entries) {
        size_t nc = st->cap_entries ? st->cap_entries * 2 : 64;
        entry *ne = realloc(st->entries, nc * sizeof *ne);
        if (!ne) return FN_ERR_NOMEM;
        st->entries = ne;
        st->cap_entries = nc;
    }
    entry *e = &st->entries[st->n_entries];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->path = strdup(path);
    e->msg = msg ? strdup(msg) : NULL;
    if (!e->path || (msg && !e->msg)) {
        free(e->path);
        free(e->msg);
        return FN_ERR_NOMEM;
    }
    e->size = size;
    e->mtime_ns = mtime_ns;
    e->hash = hash;
    e->rc = rc;
    e->taken_at = -1;
    if (code) snprintf(e->code, sizeof e->code, "%s", code);
    st->n_entries++;
    if (kind == ENTRY_PROCESS) st->n_process++;
    return 0;
}

int batch_has(const ingest_state *st, const char *path)
{
    for (size_t i = 0; i < st->n_entries; i++)
        if (strcmp(st->entries[i].path, path) == 0) return 1;
    return 0;
}

static void entry_clear(entry *e)
{
    free(e->path);
    free(e->msg);
    for (size_t i = 0; e->thumbs && i < e->n_faces; i++)
        free(e->thumbs[i]);
    free(e->thumbs);
    free(e->faces);
    free(e->landmarks);
    free(e->descriptors);
    memset(e, 0, sizeof *e);
}

fn_resolution ingest_resolution(const char *code)
{
    /* Failures the user can fix without changing the file (permissions, a file moved back, a copy
     * still in progress) are worth retrying; damaged or foreign files are skipped. */
    if (strcmp(code, "not_found") == 0 || strcmp(code, "unreadable") == 0 ||
        strcmp(code, "io") == 0 || strcmp(code, "truncated") == 0 || strcmp(code, "nomem") == 0)
        return FN_RES_RETRY;
    return FN_RES_SKIP;
}

static void fail_entry(entry *e, int rc, const char *msg)
{
    e->rc = rc;
    snprintf(e->code, sizeof e->code, "%s", fn_errname(rc));
    char buf[1024];
    if (rc == FN_ERR_NOT_FOUND)
        snprintf(buf, sizeof buf, "%s: vanished (listed, then gone before it was read)", e->path);
    else
        snprintf(buf, sizeof buf, "%s", msg && *msg ? msg : fn_strerror(rc));
    free(e->msg);
    e->msg = strdup(buf);
}

/* Copies the faces out of the fn_vision (which reuses its buffers on the next call). */
static int keep_faces(entry *e, const fn_faces *f)
{
    e->width = f->width;
    e->height = f->height;
    e->taken_at = f->info.taken_at;
    snprintf(e->format, sizeof e->format, "%s", f->info.format);
    e->skipped_small = f->skipped_small;
    e->n_faces = 0;
    if (!f->n) return 0;
    e->faces = calloc(f->n, sizeof *e->faces);
    e->landmarks = calloc(f->n, sizeof *e->landmarks);
    e->descriptors = calloc(f->n, sizeof *e->descriptors);
    e->thumbs = calloc(f->n, sizeof *e->thumbs);
    if (!e->faces || !e->landmarks || !e->descriptors || !e->thumbs) return FN_ERR_NOMEM;
    for (size_t i = 0; i < f->n; i++) {
        const fn_face *src = &f->faces[i];
        fn_face_put *p = &e->faces[i];
        memcpy(e->landmarks[i], src->landmarks, sizeof e->landmarks[i]);
        memcpy(e->descriptors[i], src->descriptor, sizeof e->descriptors[i]);
        p->x = src->x;
        p->y = src->y;
        p->width = src->width;
        p->height = src->height;
        p->score = src->score;
        p->landmarks = (const float(*)[2])e->landmarks[i];
        p->descriptor = e->descriptors[i];
        if (src->thumb_jpeg && src->thumb_len) {
            e->thumbs[i] = malloc(src->thumb_len);
            if (!e->thumbs[i]) return FN_ERR_NOMEM;
            memcpy(e->thumbs[i], src->thumb_jpeg, src->thumb_len);
            p->thumb_jpeg = e->thumbs[i];
            p->thumb_len = src->thumb_len;
        }
        e->n_faces = i + 1;
    }
    return 0;
}

static void process_one(size_t i, int worker, void *arg)
{
    ingest_state *st = arg;
    entry *e = &st->entries[st->todo[i]];
    if (worker < 0 || worker >= st->n_slots) { /* the engine broke its promise: fail, not crash */
        fail_entry(e, FN_ERR_STATE, "ingest: worker slot out of range");
        return;
    }
    slot *s = &st->slots[worker];
    if (!s->vis && s->rc == 0) {
        s->rc = fn_vision_new(st->models, &s->vis);
        if (s->rc == 0 && !(s->buf = malloc(READ_BUF))) s->rc = FN_ERR_NOMEM;
        s->buflen = READ_BUF;
        if (s->rc < 0)
            snprintf(s->err, sizeof s->err, "setting up a vision worker: %s", fn_strerror(s->rc));
    }
    if (s->rc < 0) {
        fail_entry(e, s->rc, s->err);
        return;
    }
    int64_t size = 0;
    int rc = fn_hash_file(e->path, s->buf, s->buflen, &e->hash, &size);
    if (rc < 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s: %s (%s)", e->path, fn_strerror(rc), strerror(errno));
        fail_entry(e, rc, msg);
        return;
    }
    e->bytes = size;
    if (size != e->size) e->size = size; /* rewritten since the stat: record what was read */
    fn_faces faces;
    char err[1024] = "";
    uint64_t t0 = fn_mono_ns();
    rc = fn_vision_detect_file(s->vis, e->path, &st->det, &faces, err, sizeof err);
    e->vision_ns = fn_mono_ns() - t0;
    if (rc < 0) {
        fail_entry(e, rc, err);
        return;
    }
    rc = keep_faces(e, &faces);
    if (rc < 0) fail_entry(e, rc, "out of memory keeping the faces");
    /* Counted per photo, not per batch, so that live progress events show faces arriving. */
    if (rc >= 0) fn_job_add(st->ctx, st->counters[C_FACES_FOUND], (int64_t)e->n_faces);
}

static int write_rows(fn_store_tx *tx, void *arg)
{
    ingest_state *st = arg;
    fn_photo_put *puts = calloc(st->n_entries ? st->n_entries : 1, sizeof *puts);
    if (!puts) return FN_ERR_NOMEM;
    size_t n = 0;
    fn_job_id job = fn_job_id_of(st->ctx);
    for (size_t i = 0; i < st->n_entries; i++) {
        const entry *e = &st->entries[i];
        fn_photo_put *p = &puts[n];
        p->path = e->path;
        p->size = e->size;
        p->mtime_ns = e->mtime_ns;
        p->hash = e->hash;
        p->job_id = job;
        p->taken_at = -1;
        if (e->kind == ENTRY_TOUCH) {
            p->kind = FN_PUT_TOUCH;
        } else if (e->kind == ENTRY_PROCESS && e->rc == 0) {
            p->kind = FN_PUT_RESULT;
            p->width = e->width;
            p->height = e->height;
            p->taken_at = e->taken_at;
            p->format = e->format;
            p->faces = e->faces;
            p->n_faces = e->n_faces;
            p->faces_skipped_small = (int)e->skipped_small;
        } else if (e->kind == ENTRY_PROCESS && e->rc != FN_ERR_NOT_FOUND &&
                   e->rc != FN_ERR_NOT_FILE && e->rc != FN_ERR_NOMEM) {
            /* A file that is there but is not a usable photo: remember it as such. */
            p->kind = FN_PUT_ERROR;
            p->error_code = e->code;
        } else {
            continue; /* not a photo (gone, a folder, a loop): no row */
        }
        n++;
    }
    int rc = n ? fn_library_put_photos(tx, puts, n, NULL) : 0;
    free(puts);
    return rc;
}

static void record(ingest_state *st)
{
    fn_job_ctx *ctx = st->ctx;
    uint64_t vision_ns = st->vision_ns_rest;
    for (size_t i = 0; i < st->n_entries; i++) {
        entry *e = &st->entries[i];
        if (e->kind == ENTRY_TOUCH) continue;
        vision_ns += e->vision_ns;
        if (e->bytes) fn_job_add(ctx, st->counters[C_BYTES_READ], e->bytes);
        if (e->kind == ENTRY_PROBLEM || e->rc != 0) {
            fn_job_add(ctx, st->counters[C_ERRORS], 1);
            const char *code = e->code[0] ? e->code : fn_errname(e->rc);
            char msg[1400];
            snprintf(msg, sizeof msg, "%s", e->msg ? e->msg : fn_strerror(e->rc));
            fn_job_error_add(ctx, e->path, code, msg, ingest_resolution(code));
            continue;
        }
        fn_job_add(ctx, st->counters[C_FACES_SKIPPED_SMALL], (int64_t)e->skipped_small);
        if (!e->n_faces) fn_job_add(ctx, st->counters[C_NO_FACE_IMAGES], 1);
        fn_job_observe(ctx, st->hists[H_FACES_PER_PHOTO], (double)e->n_faces);
        for (size_t k = 0; k < e->n_faces; k++) {
            float w = e->faces[k].width, h = e->faces[k].height;
            fn_job_observe(ctx, st->hists[H_FACE_SIZE], w < h ? w : h);
        }
    }
    fn_job_add(ctx, st->counters[C_VISION_MS], (int64_t)(vision_ns / 1000000));
    st->vision_ns_rest = vision_ns % 1000000;
}

static int larger_first(const void *a, const void *b, void *arg)
{
    const entry *entries = arg;
    int64_t sa = entries[*(const size_t *)a].size, sb = entries[*(const size_t *)b].size;
    return sa < sb ? 1 : sa > sb ? -1 : 0;
}

int batch_flush(ingest_state *st, const char *checkpoint_json)
{
    size_t n = 0;
    if (st->n_process > st->cap_todo) {
        size_t *nt = realloc(st->todo, st->n_process * sizeof *nt);
        if (!nt) return FN_ERR_NOMEM;
        st->todo = nt;
        st->cap_todo = st->n_process;
    }
    for (size_t i = 0; i < st->n_entries; i++)
        if (st->entries[i].kind == ENTRY_PROCESS && st->entries[i].rc == 0) st->todo[n++] = i;
    /* Largest files first: workers take items in this order, so the batch ends on small photos
     * and no worker idles long waiting for the last big one (longest-processing-time first). The
     * rows are committed by entry, so the order changes nothing stored. */
    if (n > 1) qsort_r(st->todo, n, sizeof *st->todo, larger_first, st->entries);
    int rc = 0;
    if (n && !st->models) {
        char err[1024] = "";
        rc = fn_models_cache_get(st->models_dir, st->models_which, &st->models, err, sizeof err);
        if (rc < 0) {
            fn_job_fail_reason(st->ctx, "ingest: %s", err);
            goto out;
        }
    }
    if (n) rc = fn_job_parallel_for(st->ctx, n, process_one, st);
    if (rc < 0) {
        fn_job_fail_reason(st->ctx, "ingest: running a batch over the workers failed: %s",
                           fn_engine_errmsg(fn_job_engine(st->ctx)));
        goto out;
    }
    for (int i = 0; i < st->n_slots; i++) {
        if (st->slots[i].rc < 0) {
            fn_job_fail_reason(st->ctx, "ingest: %s", st->slots[i].err);
            rc = st->slots[i].rc;
            goto out;
        }
    }
    record(st);
    if ((rc = fn_job_set_checkpoint(st->ctx, checkpoint_json)) < 0) goto out;
    rc = fn_job_commit(st->ctx, write_rows, st);
    if (rc < 0)
        fn_job_fail_reason(st->ctx, "ingest: committing a batch failed: %s",
                           fn_engine_errmsg(fn_job_engine(st->ctx)));
out:
    for (size_t i = 0; i < st->n_entries; i++)
        entry_clear(&st->entries[i]);
    st->n_entries = 0;
    st->n_process = 0;
    return rc;
}

void batch_free(ingest_state *st)
{
    for (size_t i = 0; i < st->n_entries; i++)
        entry_clear(&st->entries[i]);
    free(st->entries);
    free(st->todo);
    st->entries = NULL;
    st->todo = NULL;
    st->n_entries = st->cap_entries = st->n_process = st->cap_todo = 0;
}
