/* predict.c: the "predict" job type: for every face without a person (state 'auto'), the nearest
 * named person by the vote of the confirmed faces (src/cluster/predict.h), written as a pending
 * suggestion a person accepts or rejects; "unknown" drops a stale suggestion.
 *
 * Source: the faces to predict in (photo, face) order, a page at a time from the job's read
 * connection, each with the persons it must not be suggested as (its cannot-links, and the
 * persons of the other faces of its photo). The checkpoint's type fields are {"photo": P,
 * "face": F}, the last face handed to the driver; resume pages on after it, so faces added or
 * named in between neither shift nor repeat anything.
 *
 * Work: the batch's faces in chunks of 64 over the worker slots from `warm` (one sgemm block per
 * chunk; the model is read-only and shared), which the driver calls on the job's thread before
 * it fans the items out; `process` then only records each face's confidence (and predicts a
 * face alone when its chunk ran out of memory). Rows: in the
 * batch transaction, face by face (store/library/predict_store.h), each re-checked against what a
 * person decided since it was read: the job never changes a confirmed, ignored or user-drawn
 * face, and with auto-accept off (the default) it changes no face at all, only suggestions.
 *
 * Counters: faces_total, faces_done (the driver's), and what the rows did: suggested, unknown,
 * dropped (a stale suggestion removed), same_photo (a weaker face of a photo that already has or
 * is suggested the person), skipped (a person decided meanwhile), accepted (auto-accept). The
 * row counters are counted in the batch transaction, after the batch's progress was recorded, so
 * the stored progress catches up one batch later (and at the end). Histograms:
 * confidence_histogram (every face with a candidate person, its confidence; faces with none
 * count as 0) and id_frequency (at the end of the job, one observation per person with pending
 * suggestions: how many faces suggest that person, so a person suggested for hundreds of faces,
 * a sign of a bad confirmed face, stands out). */
#include "tasks/predict.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/predict.h"
#include "facenames/error.h"
#include "store/library/library_store.h"
#include "store/library/predict_store.h"
#include "util/fmt.h"

predict_hook_fn fn_predict_test_hook;
void *fn_predict_test_hook_arg;

enum {
    C_FACES_TOTAL,
    C_FACES_DONE,
    C_SUGGESTED,
    C_UNKNOWN,
    C_DROPPED,
    C_SAME_PHOTO,
    C_SKIPPED,
    C_ACCEPTED,
    C_CONFIRMED_FACES,
    C_COUNT
};
enum { H_CONFIDENCE, H_ID_FREQUENCY, H_COUNT };

static const char *const counters[C_COUNT] = {
    [C_FACES_TOTAL] = "faces_total",
    [C_FACES_DONE] = "faces_done",
    [C_SUGGESTED] = "suggested",
    [C_UNKNOWN] = "unknown",
    [C_DROPPED] = "dropped",
    [C_SAME_PHOTO] = "same_photo",
    [C_SKIPPED] = "skipped",
    [C_ACCEPTED] = "accepted",
    [C_CONFIRMED_FACES] = "confirmed_faces",
};

static const double confidence_bounds[] = {0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
static const double id_bounds[] = {1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000};

static const fn_histogram_decl histograms[H_COUNT] = {
    [H_CONFIDENCE] = {"confidence_histogram", confidence_bounds,
                      sizeof confidence_bounds / sizeof confidence_bounds[0]},
    [H_ID_FREQUENCY] = {"id_frequency", id_bounds, sizeof id_bounds / sizeof id_bounds[0]},
};

static const fn_param params[] = {
    {"k", FN_PARAM_INT, "predict.k", NULL, 1, FN_PREDICT_K_MAX, NULL, "confirmed faces that vote"},
    {"threshold", FN_PARAM_REAL, "predict.threshold", NULL, 0, 1, NULL,
     "confidence below which a face is unknown"},
    {"auto_accept", FN_PARAM_BOOL, "predict.auto_accept", NULL, 0, 0, NULL,
     "confirm suggestions at or above auto_accept_min"},
    {"auto_accept_min", FN_PARAM_REAL, NULL, "0.95", 0.5, 1, NULL, "confidence"},
    {"batch", FN_PARAM_INT, NULL, "256", 1, 65536, NULL, "faces per commit"},
};

#define PAGE 256

typedef struct predict_job {
    fn_predict_model *model;
    double accept_min; /* > 1: auto-accept off */
    fn_predict_face *page;
    size_t n_page, i_page;
    int64_t page_photo, page_face; /* the key the next page starts after */
    int has_pos;
    int64_t last_photo, last_face; /* the cursor: the last face handed to the driver */
    int ended;
} predict_job;

typedef struct predict_item {
    fn_predict_face f;
    fn_prediction pred;
    int done; /* pred was computed with its batch (predict_warm) */
} predict_item;

/* ---- the source ----------------------------------------------------------------------------- */

static int predict_next(fn_batch *b, fn_item *it)
{
    predict_job *st = fn_batch_state(b);
    if (st->i_page == st->n_page) {
        st->n_page = st->i_page = 0;
        fn_store *s = fn_batch_reader(b);
        int rc =
            fn_predict_faces_page(s, st->page_photo, st->page_face, PAGE, st->page, &st->n_page);
        if (rc < 0) {
            for (size_t i = 0; i < st->n_page; i++)
                free(st->page[i].excl);
            st->n_page = 0;
            fn_batch_fail(b, "predict: %s", fn_store_errmsg(s));
            return rc;
        }
        if (st->n_page == 0) {
            st->ended = 1;
            return FN_SOURCE_END;
        }
        st->page_photo = st->page[st->n_page - 1].photo;
        st->page_face = st->page[st->n_page - 1].face;
    }
    predict_item *pi = it->data;
    pi->f = st->page[st->i_page];
    st->page[st->i_page++].excl = NULL; /* the item owns it now */
    char ref[24];
    snprintf(ref, sizeof ref, "%lld", (long long)pi->f.face);
    int rc = fn_item_set_ref(it, ref);
    if (rc < 0) return rc;
    /* kept even without work: a face with no usable descriptor is unknown, which drops a stale
     * suggestion in write */
    it->work = !pi->f.no_desc;
    it->keep = 1;
    st->has_pos = 1;
    st->last_photo = pi->f.photo;
    st->last_face = pi->f.face;
    if (fn_predict_test_hook) fn_predict_test_hook(pi->f.face, fn_predict_test_hook_arg);
    return FN_SOURCE_ITEM;
}

static char *predict_cursor(fn_batch *b)
{
    predict_job *st = fn_batch_state(b);
    if (!st->has_pos) return NULL;
    char *s = malloc(64);
    if (s)
        snprintf(s, 64, "{\"photo\":%lld,\"face\":%lld}", (long long)st->last_photo,
                 (long long)st->last_face);
    return s;
}

/* ---- the work and the rows ------------------------------------------------------------------ */

/* The faces of a batch are predicted in chunks of this many: one sgemm block against the group
 * centres per chunk (fn_predict_run) instead of one matrix-vector product per face. */
#define CHUNK 64

typedef struct chunk_work {
    fn_batch *b;
    fn_item **todo;
    size_t n;
} chunk_work;

static void predict_chunk(size_t c, int worker, void *arg)
{
    (void)worker;
    chunk_work *w = arg;
    predict_job *st = fn_batch_state(w->b);
    size_t lo = c * CHUNK, n = w->n - lo < CHUNK ? w->n - lo : CHUNK, n_excl = 0;
    for (size_t i = 0; i < n; i++)
        n_excl += ((predict_item *)w->todo[lo + i]->data)->f.n_excl;
    float *q = malloc(n * FN_DESC_DIM * sizeof *q);
    size_t *off = malloc((n + 1) * sizeof *off);
    int64_t *excl = malloc((n_excl ? n_excl : 1) * sizeof *excl);
    fn_prediction *pred = malloc(n * sizeof *pred);
    if (q && off && excl && pred) {
        off[0] = 0;
        for (size_t i = 0; i < n; i++) {
            const predict_item *pi = w->todo[lo + i]->data;
            memcpy(q + i * FN_DESC_DIM, pi->f.desc, sizeof pi->f.desc);
            if (pi->f.n_excl) memcpy(excl + off[i], pi->f.excl, pi->f.n_excl * sizeof *excl);
            off[i + 1] = off[i] + pi->f.n_excl;
        }
        if (fn_predict_run(st->model, q, n, NULL, off, excl, pred) == 0)
            for (size_t i = 0; i < n; i++) {
                predict_item *pi = w->todo[lo + i]->data;
                pi->pred = pred[i];
                pi->done = 1;
            }
    }
    /* out of memory: the faces are left to process(), one at a time */
    free(q);
    free(off);
    free(excl);
    free(pred);
}

/* Once per batch, before the fan-out: the batch's faces in chunks over the worker slots. */
static int predict_warm(fn_batch *b)
{
    fn_item *const *items;
    size_t n = fn_batch_items(b, &items), m = 0;
    fn_item **todo = malloc((n ? n : 1) * sizeof *todo);
    if (!todo) return 0; /* process() predicts them one by one */
    for (size_t i = 0; i < n; i++)
        if (items[i]->work && !items[i]->err) todo[m++] = items[i];
    chunk_work w = {b, todo, m};
    fn_job_parallel_for(fn_batch_ctx(b), (m + CHUNK - 1) / CHUNK, predict_chunk, &w);
    free(todo);
    return 0;
}

static void predict_process(fn_batch *b, void *slot, fn_item *it)
{
    (void)slot;
    predict_job *st = fn_batch_state(b);
    predict_item *pi = it->data;
    if (pi->done) {
        fn_batch_observe(b, H_CONFIDENCE, pi->pred.confidence);
        return;
    }
    size_t off[2] = {0, pi->f.n_excl};
    int rc = fn_predict_run(st->model, pi->f.desc, 1, NULL, off, pi->f.excl, &pi->pred);
    if (rc < 0) {
        fn_item_fail(it, rc, NULL, "face %lld: out of memory predicting it", (long long)pi->f.face);
        return;
    }
    fn_batch_observe(b, H_CONFIDENCE, pi->pred.confidence);
}

static void per_person(int64_t person, int64_t n, void *arg)
{
    (void)person;
    fn_batch_observe(arg, H_ID_FREQUENCY, (double)n);
}

static int predict_write(fn_batch *b, fn_store_tx *tx, fn_item *const *items, size_t n)
{
    predict_job *st = fn_batch_state(b);
    fn_predict_put *puts = calloc(n ? n : 1, sizeof *puts);
    int *outcome = calloc(n ? n : 1, sizeof *outcome);
    if (!puts || !outcome) {
        free(puts);
        free(outcome);
        return FN_ERR_NOMEM;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const fn_item *it = items[i];
        if (it->err) continue;
        const predict_item *pi = it->data;
        fn_predict_put *p = &puts[m++];
        p->face = pi->f.face;
        p->photo = pi->f.photo;
        p->person = pi->pred.person;
        p->confidence = pi->pred.confidence;
        p->distance = pi->pred.distance;
        p->margin = pi->pred.margin;
        p->support_face = pi->pred.support_face;
    }
    fn_job_id job = fn_job_id_of(fn_batch_ctx(b));
    int rc = fn_predict_put_batch(tx, puts, m, job, st->accept_min, outcome, NULL);
    if (rc == 0) {
        static const int counter_of[] = {
            [FN_PREDICT_NONE] = C_UNKNOWN,        [FN_PREDICT_DROPPED] = C_DROPPED,
            [FN_PREDICT_SUGGESTED] = C_SUGGESTED, [FN_PREDICT_ACCEPTED] = C_ACCEPTED,
            [FN_PREDICT_SKIPPED] = C_SKIPPED,     [FN_PREDICT_SAME_PHOTO] = C_SAME_PHOTO,
        };
        for (size_t i = 0; i < m; i++) {
            fn_batch_add(b, counter_of[outcome[i]], 1);
            /* a dropped suggestion is an unknown face too */
            if (outcome[i] == FN_PREDICT_DROPPED) fn_batch_add(b, C_UNKNOWN, 1);
        }
    }
    free(puts);
    free(outcome);
    /* The last batch: every suggestion of the job is in this transaction's view. */
    if (rc == 0 && st->ended)
        rc = fn_predict_suggestions_per_person(fn_store_tx_store(tx), per_person, b);
    return rc;
}

static void predict_item_clear(fn_batch *b, fn_item *it)
{
    (void)b;
    predict_item *pi = it->data;
    if (pi) {
        free(pi->f.excl);
        pi->f.excl = NULL;
    }
}

/* ---- opening the job ------------------------------------------------------------------------ */

static int read_position(fn_batch *b, predict_job *st)
{
    const char *ck = fn_batch_checkpoint(b);
    if (!ck) return 0;
    json_error_t jerr;
    json_t *j = json_loads(ck, 0, &jerr);
    json_t *photo = json_object_get(j, "photo"), *face = json_object_get(j, "face");
    if (json_is_integer(photo) && json_is_integer(face)) {
        st->has_pos = 1;
        st->last_photo = st->page_photo = (int64_t)json_integer_value(photo);
        st->last_face = st->page_face = (int64_t)json_integer_value(face);
    }
    json_decref(j);
    return 0;
}

static int predict_open(fn_batch *b)
{
    predict_job *st = fn_batch_state(b);
    fn_job_ctx *ctx = fn_batch_ctx(b);
    fn_store *s = fn_batch_reader(b);
    if (!s) {
        fn_batch_fail(b, "predict: %s", fn_engine_errmsg(fn_job_engine(ctx)));
        return FN_ERR_DB;
    }
    int rc;
    if ((rc = fn_library_migrate(s)) < 0) {
        fn_batch_fail(b, "predict: %s", fn_store_errmsg(s));
        return rc;
    }
    if (!(st->page = calloc(PAGE, sizeof *st->page))) return FN_ERR_NOMEM;
    st->accept_min = fn_batch_bool(b, "auto_accept") ? fn_batch_real(b, "auto_accept_min") : 2.0;
    read_position(b, st);

    float *desc = NULL;
    int64_t *person = NULL, *face = NULL;
    size_t n = 0;
    if ((rc = fn_predict_load_refs(s, &desc, &person, &face, &n)) < 0) {
        if (rc != FN_ERR_NOMEM) fn_batch_fail(b, "predict: %s", fn_store_errmsg(s));
        return rc;
    }
    fn_predict_opts o;
    fn_predict_opts_default(&o);
    o.k = (int)fn_batch_int(b, "k");
    o.threshold = (float)fn_batch_real(b, "threshold");
    rc = fn_predict_model_new(desc, person, face, n, &o, &st->model);
    free(desc);
    free(person);
    free(face);
    if (rc < 0) {
        fn_batch_fail(b, "predict: building the model of %zu confirmed faces failed: %s", n,
                      fn_strerror(rc));
        return rc;
    }
    fn_batch_set(b, C_CONFIRMED_FACES, (int64_t)n);
    int64_t total = 0;
    if ((rc = fn_predict_count_faces(s, &total)) < 0) {
        fn_batch_fail(b, "predict: %s", fn_store_errmsg(s));
        return rc;
    }
    fn_batch_set(b, C_FACES_TOTAL, total);
    return 0;
}

static void predict_close(fn_batch *b)
{
    predict_job *st = fn_batch_state(b);
    fn_predict_model_free(st->model);
    for (size_t i = st->i_page; st->page && i < st->n_page; i++)
        free(st->page[i].excl);
    free(st->page);
}

/* ---- the summary ---------------------------------------------------------------------------- */

static long long counter(json_t *c, const char *name)
{
    return (long long)json_integer_value(json_object_get(c, name));
}

static char *predict_summary(const fn_job_info *job, void *user)
{
    (void)user;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    json_error_t jerr;
    json_t *p = json_loads(job->progress ? job->progress : "{}", 0, &jerr);
    json_t *c = json_object_get(p, "counters");
    char b1[32], b2[32], b3[32];
    fprintf(f, "predict job %lld %s", (long long)job->id, fn_job_state_name(job->state));
    if (job->parent > 0) fprintf(f, " (continues job %lld)", (long long)job->parent);
    fputc('\n', f);
    fprintf(f, "  faces        %s looked at of %s without a person, against %s confirmed faces\n",
            fn_fmt_count(counter(c, "faces_done"), b1, sizeof b1),
            fn_fmt_count(counter(c, "faces_total"), b2, sizeof b2),
            fn_fmt_count(counter(c, "confirmed_faces"), b3, sizeof b3));
    fprintf(f, "  suggestions  %s", fn_fmt_count(counter(c, "suggested"), b1, sizeof b1));
    if (counter(c, "accepted"))
        fprintf(f, ", %s confirmed by auto-accept (facenames audit list; undo to revert)",
                fn_fmt_count(counter(c, "accepted"), b2, sizeof b2));
    fprintf(f, "\n  unknown      %s", fn_fmt_count(counter(c, "unknown"), b1, sizeof b1));
    if (counter(c, "dropped"))
        fprintf(f, " (%s earlier suggestions dropped)",
                fn_fmt_count(counter(c, "dropped"), b2, sizeof b2));
    fputc('\n', f);
    if (counter(c, "same_photo"))
        fprintf(f, "  not suggested: %s faces whose photo already has that person\n",
                fn_fmt_count(counter(c, "same_photo"), b1, sizeof b1));
    if (counter(c, "skipped"))
        fprintf(f, "  left alone:   %s faces named or ignored while the job ran\n",
                fn_fmt_count(counter(c, "skipped"), b1, sizeof b1));
    if (job->state == FN_JOB_CANCELLED)
        fprintf(f, "  to continue: facenames jobs resume %lld\n", (long long)job->id);
    else if (job->state == FN_JOB_COMPLETED && counter(c, "suggested"))
        fputs("  review them: facenames suggestions list\n", f);
    json_decref(p);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

const fn_jobtype fn_predict_type = {
    .type = "predict",
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .counters = counters,
    .n_counters = C_COUNT,
    .histograms = histograms,
    .n_histograms = H_COUNT,
    .done_counter = C_FACES_DONE,
    .total_counter = C_FACES_TOTAL,
    .errors_counter = -1,
    .item_ref = "the face id",
    .rate_unit = "faces",
    .batch_param = "batch",
    .flush_items = 4096,
    .flush_ms = 1000,
    .gpu_slots = 0,
    /* the model: 10k confirmed faces are about 6 MB; a batch of faces is small */
    .mem_mb = 64,
    .job_size = sizeof(predict_job),
    .slot_size = 0,
    .item_size = sizeof(predict_item),
    .open = predict_open,
    .close = predict_close,
    .next = predict_next,
    .warm = predict_warm,
    .process = predict_process,
    .write = predict_write,
    .cursor = predict_cursor,
    .item_clear = predict_item_clear,
    .summary = predict_summary,
};
