/* ingest.c: the "ingest" job: from folders of photos to faces in the library.
 *
 * The item loop runs on the job's thread: walk the tree in its stable order, decide per file
 * whether it needs work (a stat and one indexed lookup; a content hash only when in doubt), and
 * gather the files that do into a batch. A full batch is fanned out over the worker slots and
 * committed with its checkpoint (ingest_batch.c).
 *
 * The checkpoint is {"next_index": N, "root": R, "last": REL}: N files of the enumeration are
 * handled, the last of them being REL under root R. Resume seeks to (R, REL) rather than counting
 * N files, because the tree may change between runs: a file added before the cursor would shift
 * every index, and resuming by index alone would then skip one unprocessed file and redo one done
 * file. Seeking by path skips exactly the files at or before the last committed one, and never
 * reads the directories wholly before it. N only feeds the progress (and is the cursor when the
 * checkpoint has no path, e.g. one written by hand, and in retry mode, where the item list is
 * fixed in the payload).
 *
 * Deciding "unchanged": same size and same mtime as stored, and the stored mtime was not so close
 * to when it was stored that a same-second rewrite could hide (the "racy" case git also guards
 * against); when size matches but mtime does not, or the mtime is racy, the content hash decides.
 * Rows that recorded a failure are always tried again. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "facenames/error.h"
#include "store/library/library_store.h"
#include "tasks/content_hash.h"
#include "tasks/ingest.h"
#include "tasks/ingest_batch.h"
#include "tasks/models_cache.h"
#include "tasks/walk.h"
#include "util/clock.h"

/* Commit at least this often while only skipping unchanged files, so progress moves, a cancel is
 * seen and a crash loses little. */
#define SKIP_COMMIT_FILES 4096
#define SKIP_COMMIT_NS    (1000ULL * 1000 * 1000)
#define RACY_WINDOW_NS    (2LL * 1000 * 1000 * 1000)

ingest_hook_fn fn_ingest_test_hook;
void *fn_ingest_test_hook_arg;

static const char *const counter_names[C_COUNT] = {
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
};

static const double faces_per_photo_bounds[] = {0, 1, 2, 3, 4, 5, 7, 10, 15, 20, 50};
static const double face_size_bounds[] = {20, 30, 40, 60, 80, 120, 160, 240, 320, 480, 640, 960};

typedef struct cursor {
    int64_t next_index; /* files handled so far, in enumeration order */
    int has_pos;
    size_t root;
    char *last; /* relative path of the last handled file */
} cursor;

static int parse_checkpoint(const char *json, cursor *c)
{
    memset(c, 0, sizeof *c);
    if (!json || !*json) return 0;
    json_error_t jerr;
    json_t *j = json_loads(json, 0, &jerr);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        return FN_ERR_INVALID;
    }
    json_t *ni = json_object_get(j, "next_index");
    json_t *root = json_object_get(j, "root"), *last = json_object_get(j, "last");
    int rc = 0;
    if (!json_is_integer(ni) || json_integer_value(ni) < 0) rc = FN_ERR_INVALID;
    if (rc == 0) c->next_index = json_integer_value(ni);
    if (rc == 0 && json_is_integer(root) && json_is_string(last)) {
        c->has_pos = 1;
        c->root = (size_t)json_integer_value(root);
        if (!(c->last = strdup(json_string_value(last)))) rc = FN_ERR_NOMEM;
    }
    json_decref(j);
    return rc;
}

static char *checkpoint_json(const cursor *c)
{
    json_t *j = json_object();
    json_object_set_new(j, "next_index", json_integer(c->next_index));
    if (c->has_pos) {
        json_object_set_new(j, "root", json_integer((json_int_t)c->root));
        json_object_set_new(j, "last", json_string(c->last ? c->last : ""));
    }
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static int cursor_set(cursor *c, size_t root, const char *rel)
{
    size_t len = strlen(rel);
    char *p = realloc(c->last, len + 1);
    if (!p) return FN_ERR_NOMEM;
    memcpy(p, rel, len + 1);
    c->last = p;
    c->root = root;
    c->has_pos = 1;
    return 0;
}

typedef struct run {
    ingest_state st;
    fn_store *store;
    fn_library_reader *reader;
    cursor cur;
    uint64_t last_commit_ns;
    int64_t since_commit; /* files handled since the last commit */
    uint8_t *hashbuf;
} run;

static int flush(run *r)
{
    fn_library_reader_hold(r->reader, 0); /* let the WAL be checkpointed past our snapshot */
    fn_job_set(r->st.ctx, r->st.counters[C_FILES_DONE], r->cur.next_index);
    if (fn_job_get(r->st.ctx, r->st.counters[C_FILES_TOTAL]) < r->cur.next_index)
        fn_job_set(r->st.ctx, r->st.counters[C_FILES_TOTAL], r->cur.next_index);
    char *cp = checkpoint_json(&r->cur);
    if (!cp) return FN_ERR_NOMEM;
    int rc = batch_flush(&r->st, cp);
    free(cp);
    r->last_commit_ns = fn_mono_ns();
    r->since_commit = 0;
    return rc;
}

/* Flushes when the batch is full, or when skipped files have piled up; then honours a stop. */
static int maybe_flush(run *r, int force)
{
    int due = force || r->st.n_process >= (size_t)r->st.opts.batch ||
              r->since_commit >= SKIP_COMMIT_FILES ||
              (r->since_commit && fn_mono_ns() - r->last_commit_ns >= SKIP_COMMIT_NS);
    if (!due) return 0;
    if (!r->since_commit && !r->st.n_entries && !force) return 0;
    int rc = flush(r);
    if (rc < 0) return rc;
    fn_stop stop = fn_job_should_stop(r->st.ctx);
    if (stop == FN_STOP_CANCEL) return FN_ERR_CANCELLED;
    if (stop == FN_STOP_YIELD) return FN_ERR_YIELDED;
    return 0;
}

/* Decides what to do with one listed file and adds it to the batch if it needs anything. */
static int consider(run *r, const char *path, int force)
{
    ingest_state *st = &r->st;
    if (batch_has(st, path)) { /* the same file reached twice through links */
        fn_job_add(st->ctx, st->counters[C_SKIPPED_UNCHANGED], 1);
        return 0;
    }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        int e = errno;
        char msg[1200];
        int code = e == ENOENT ? FN_ERR_NOT_FOUND : e == EACCES ? FN_ERR_UNREADABLE : FN_ERR_IO;
        if (code == FN_ERR_NOT_FOUND)
            snprintf(msg, sizeof msg, "%s: vanished (listed, then gone before it was read)", path);
        else
            snprintf(msg, sizeof msg, "%s: %s", path, strerror(e));
        return batch_add(st, ENTRY_PROBLEM, path, -1, -1, 0, code, fn_errname(code), msg);
    }
    if (!S_ISREG(sb.st_mode)) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s: %s, not a photo", path,
                 S_ISDIR(sb.st_mode) ? "is a folder" : "is not a regular file");
        return batch_add(st, ENTRY_PROBLEM, path, -1, -1, 0, FN_ERR_NOT_FILE,
                         fn_errname(FN_ERR_NOT_FILE), msg);
    }
    int64_t size = (int64_t)sb.st_size;
    int64_t mtime = (int64_t)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
    if (!force) {
        fn_photo_probe row;
        int rc = fn_library_reader_hold(r->reader, 1);
        if (rc == 0) rc = fn_library_photo_probe(r->reader, path, &row);
        if (rc == 0) {
            int same_size = row.size == size && row.status != FN_PHOTO_ERROR;
            int racy = row.mtime_ns >= row.ingested_at * 1000000LL - RACY_WINDOW_NS;
            int same_mtime = row.mtime_ns == mtime;
            if (same_size && same_mtime && !racy) {
                fn_job_add(st->ctx, st->counters[C_SKIPPED_UNCHANGED], 1);
                return 0;
            }
            if (same_size && row.hash) {
                uint64_t h;
                int64_t n;
                if (fn_hash_file(path, r->hashbuf, 1 << 20, &h, &n) == 0 && h == row.hash &&
                    n == size) {
                    fn_job_add(st->ctx, st->counters[C_SKIPPED_UNCHANGED], 1);
                    if (same_mtime) return 0;
                    return batch_add(st, ENTRY_TOUCH, path, size, mtime, h, 0, NULL, NULL);
                }
            }
        } else if (rc != FN_ERR_NOT_FOUND) {
            fn_job_fail_reason(st->ctx, "ingest: looking up %s: %s", path,
                               fn_store_errmsg(r->store));
            return rc;
        }
    }
    return batch_add(st, ENTRY_PROCESS, path, size, mtime, 0, 0, NULL, NULL);
}

static int walk_opts(const ingest_opts *o, int count_only, fn_walk_opts *wo)
{
    memset(wo, 0, sizeof *wo);
    wo->recursive = o->recursive;
    wo->follow_symlinks = o->follow_symlinks;
    wo->exts = (const char *const *)o->exts;
    wo->n_exts = o->n_exts;
    wo->count_only = count_only;
    return 0;
}

/* The counting pre-pass: names only (readdir's type, no stat of files, no sorting), so it costs a
 * small fraction of the real walk and warms the directory cache that walk then reads. It gives
 * files_total before the first photo is decoded. */
static int count_pass(run *r)
{
    fn_walk_opts wo;
    walk_opts(&r->st.opts, 1, &wo);
    fn_walk *w = NULL;
    int rc = fn_walk_open((const char *const *)r->st.opts.paths, r->st.opts.n_paths, &wo, &w);
    fn_walk_item it;
    int64_t n = 0, k = 0;
    while (rc == 0 && (rc = fn_walk_next(w, &it)) == 1) {
        n++;
        rc = 0;
        /* A huge tree: let a cancel through while counting. */
        if ((++k & 8191) == 0 && fn_job_should_stop(r->st.ctx) != FN_STOP_NONE) break;
    }
    if (rc == 0) {
        fn_job_set(r->st.ctx, r->st.counters[C_FILES_TOTAL], n);
        fn_job_set(r->st.ctx, r->st.counters[C_NON_IMAGES], fn_walk_stats_of(w)->non_images);
    }
    fn_walk_free(w);
    return rc;
}

static int run_walk(run *r)
{
    int rc = count_pass(r);
    if (rc < 0) return rc;
    /* Publish files_total now (a progress-only commit), not after the first batch. */
    if ((rc = fn_job_commit(r->st.ctx, NULL, NULL)) < 0) {
        fn_job_fail_reason(r->st.ctx, "ingest: %s", fn_engine_errmsg(fn_job_engine(r->st.ctx)));
        return rc;
    }
    fn_walk_opts wo;
    walk_opts(&r->st.opts, 0, &wo);
    fn_walk *w = NULL;
    if ((rc = fn_walk_open((const char *const *)r->st.opts.paths, r->st.opts.n_paths, &wo, &w)) < 0)
        return rc;
    int64_t skip_by_index = 0;
    if (r->cur.has_pos)
        fn_walk_seek(w, r->cur.root, r->cur.last);
    else
        skip_by_index = r->cur.next_index; /* a checkpoint without a path: count */
    fn_walk_item it;
    int64_t seen = 0;
    while ((rc = fn_walk_next(w, &it)) == 1) {
        if (seen++ < skip_by_index) continue;
        if (it.err)
            rc = batch_add(&r->st, ENTRY_PROBLEM, it.path, -1, -1, 0, it.err, it.code, it.msg);
        else
            rc = consider(r, it.path, 0);
        if (rc == 0) rc = cursor_set(&r->cur, it.root, it.rel);
        if (rc < 0) break;
        if (fn_ingest_test_hook) fn_ingest_test_hook(it.path, fn_ingest_test_hook_arg);
        r->cur.next_index++;
        r->since_commit++;
        if ((rc = maybe_flush(r, 0)) < 0) break;
    }
    fn_walk_free(w);
    if (rc < 0) return rc;
    return maybe_flush(r, 1);
}

static int run_retry(run *r)
{
    const ingest_opts *o = &r->st.opts;
    fn_job_set(r->st.ctx, r->st.counters[C_FILES_TOTAL], (int64_t)o->n_retry);
    r->cur.has_pos = 0;
    int rc = 0;
    for (size_t i = (size_t)r->cur.next_index; i < o->n_retry; i++) {
        if ((rc = consider(r, o->retry_items[i], 1)) < 0) return rc;
        if (fn_ingest_test_hook) fn_ingest_test_hook(o->retry_items[i], fn_ingest_test_hook_arg);
        r->cur.next_index = (int64_t)i + 1;
        r->since_commit++;
        if ((rc = maybe_flush(r, 0)) < 0) return rc;
    }
    return maybe_flush(r, 1);
}

static int setup(run *r, fn_job_ctx *ctx)
{
    ingest_state *st = &r->st;
    fn_engine *e = fn_job_engine(ctx);
    const fn_config *cfg = fn_engine_config(e);
    char err[1024] = "";
    int rc = ingest_opts_parse(fn_job_payload(ctx), cfg, &st->opts, err, sizeof err);
    if (rc < 0) {
        fn_job_fail_reason(ctx, "%s", err);
        return rc;
    }
    if ((rc = parse_checkpoint(fn_job_checkpoint(ctx), &r->cur)) < 0) {
        fn_job_fail_reason(ctx, "ingest: the checkpoint %s is not {\"next_index\": N, ...}",
                           fn_job_checkpoint(ctx));
        return rc;
    }
    for (int i = 0; i < C_COUNT; i++) {
        if ((st->counters[i] = fn_job_counter(ctx, counter_names[i])) < 0) {
            fn_job_fail_reason(ctx, "ingest: %s", fn_engine_errmsg(e));
            return st->counters[i];
        }
    }
    st->hists[H_FACES_PER_PHOTO] =
        fn_job_histogram(ctx, "faces_per_photo", faces_per_photo_bounds,
                         sizeof faces_per_photo_bounds / sizeof faces_per_photo_bounds[0]);
    st->hists[H_FACE_SIZE] = fn_job_histogram(ctx, "face_size", face_size_bounds,
                                              sizeof face_size_bounds / sizeof face_size_bounds[0]);
    if (st->hists[0] < 0 || st->hists[1] < 0) {
        fn_job_fail_reason(ctx, "ingest: %s", fn_engine_errmsg(e));
        return FN_ERR_INVALID;
    }

    fn_detect_opts_default(&st->det);
    st->det.detector = st->opts.detector;
    st->det.min_face_size = st->opts.min_face_size;
    st->det.landmarks = 1;
    st->det.descriptors = 1;
    st->det.thumb_size = st->opts.thumb_size;
    /* Models are loaded by the first batch that has a photo to process, so a rerun over an
     * unchanged tree never pays for them. */
    st->models_which = FN_MODEL_LANDMARKS | FN_MODEL_RECOGNITION |
                       (st->opts.detector == FN_DETECTOR_TINY ? FN_MODEL_TINY : FN_MODEL_SSD);
    st->models_dir = cfg->models_dir;
    /* One slot (its own fn_vision, made on first use) per worker the job can fan out to; the
     * engine keeps fn_job_parallelism() constant once started. */
    st->n_slots = fn_job_parallelism(ctx);
    if (!(st->slots = calloc((size_t)st->n_slots, sizeof *st->slots))) return FN_ERR_NOMEM;
    if (!(r->hashbuf = malloc(1 << 20))) return FN_ERR_NOMEM;

    /* The job's own connection for the per-file lookups (the engine's connection belongs to
     * commits). It also brings the library schema up to date before the first commit needs it. */
    char path[4200];
    snprintf(path, sizeof path, "%s/library.db", fn_engine_library_dir(e));
    if ((rc = fn_store_open(path, cfg->db_busy_timeout_ms, &r->store, err, sizeof err)) < 0) {
        fn_job_fail_reason(ctx, "ingest: %s", err);
        return rc;
    }
    if ((rc = fn_library_migrate(r->store)) < 0 ||
        (rc = fn_library_reader_new(r->store, &r->reader)) < 0) {
        fn_job_fail_reason(ctx, "ingest: %s", fn_store_errmsg(r->store));
        return rc;
    }
    r->last_commit_ns = fn_mono_ns();
    return 0;
}

static void teardown(run *r)
{
    ingest_state *st = &r->st;
    batch_free(st);
    for (int i = 0; st->slots && i < st->n_slots; i++) {
        fn_vision_free(st->slots[i].vis);
        free(st->slots[i].buf);
    }
    free(st->slots);
    ingest_opts_free(&st->opts);
    fn_library_reader_free(r->reader);
    fn_store_close(r->store);
    free(r->cur.last);
    free(r->hashbuf);
}

int ingest_run(fn_job_ctx *ctx, void *user)
{
    (void)user;
    run r;
    memset(&r, 0, sizeof r);
    r.st.ctx = ctx;
    int rc = setup(&r, ctx);
    if (rc == 0) rc = r.st.opts.has_retry ? run_retry(&r) : run_walk(&r);
    if (rc == FN_ERR_NOMEM) fn_job_fail_reason(ctx, "ingest: out of memory");
    teardown(&r);
    return rc;
}
