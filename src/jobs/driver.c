/* driver.c: the batch-job driver: the one item loop every job type runs on (see jobtype.h, and
 * docs/job-types.md for a worked example).
 *
 * One run: resolve the payload, declare the type's counters and histograms, read the checkpoint,
 * let the type open its source, publish the totals; then reprocess the retry items (a retry's
 * selection, or a resume's pending and retry errors), then, unless the job is a retry, take items
 * from the source until it ends. Items gather into a batch; a batch is flushed when `batch` items
 * need work, or when skipped items pile up (flush_items) or time passes (flush_ms): the items that
 * need work are fanned out over the worker slots, failures become item errors, and the rows, the
 * checkpoint, the progress and the errors commit in one fn_job_commit. A stop request is honoured
 * after each commit.
 *
 * What must stay true:
 * - The checkpoint written with a batch describes exactly the items committed with it:
 *   "next_index" source items and "retry_next" retry items are handled, plus the type's own cursor
 *   fields, all as of the end of that batch. So a crash redoes at most one batch, and never skips.
 * - The done counter equals its value at the start of the run plus the items handled in this run
 *   at every commit; between commits it moves per item (workers add to it as they finish), which
 *   is what live progress shows.
 * - Workers touch only their own item and their own slot (and add to counters); every other
 *   engine call happens on the job's thread.
 * - Overlap (a type's `overlap`, more than one slot; flush_overlapped): the workers run batch k
 *   while the job's thread gathers batch k+1, and go on with k+1 as soon as k has no item left
 *   to take, and while k commits. What commits with k is still exactly k: its checkpoint is
 *   taken when it is sealed, and the counter and histogram updates made for k+1 before k
 *   committed (its skips while gathering, its first items' results) are kept with k+1
 *   (`deferred`) and applied after k's commit. A stop seen when k+1
 *   is sealed commits k and drops k+1 before any of its items ran; one asked after k+1 started
 *   is seen at the next seal (k+1 then commits: no item runs that does not commit).
 *
 * Shards: a fresh job of a type that declares them, whose total exceeds its threshold, is split
 * after its open (split()): the type names the cursor at every N-th item, and each range becomes
 * a shard job whose payload is the job's plus {"shard": {...}} (the range; stripped before the
 * schema sees the payload) and whose first checkpoint is the cursor before its range, so a shard
 * starts exactly as a resume would. A resume of a split job runs the retry items itself, then
 * splits again into what its shards left (each unfinished shard's range from its checkpoint). */
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/jobtype.h"
#include "jobs/internal.h"
#include "jobs/prefetch.h"
#include "util/clock.h"
#include "util/log.h"

#define RETRY_PAGE 256

/* A counter or histogram update made for a batch before it went live (fn_batch_add and friends
 * while the batch ahead of it was not committed yet). */
typedef struct deferred {
    enum { D_ADD, D_SET, D_OBSERVE } kind;
    int index;
    int64_t value;
    double real;
} deferred;

/* One batch: the items gathered, and, once sealed, what its commit records. */
typedef struct batchbuf {
    fn_batch *b;
    /* items[0..n_items) are in it; items[n_items..n_alloc) are cleared spares. */
    fn_item **items;
    size_t n_items, n_alloc, cap_alloc, n_work;
    fn_item **todo; /* the items needing work, in the order the workers take them */
    size_t cap_todo;
    fn_ptask task;    /* its work over the worker slots */
    fn_prep_batch prep; /* its items' `prepare` on the prefetcher (queued while it runs) */
    char *checkpoint; /* sealed: the checkpoint that describes the source at its end */
    int64_t handled;  /* sealed: items handled in this run up to its end */
    /* Overlap: while the batch ahead is uncommitted, this one's counter updates are kept here
     * (they must not commit with that batch's rows and checkpoint), and applied when it goes live
     * (go_live). Workers and the job's thread add to it, under mu. */
    pthread_mutex_t mu;
    _Atomic int live;
    deferred *ops;
    size_t n_ops, cap_ops;
} batchbuf;

struct fn_batch {
    const fn_jobtype *t;
    fn_job_ctx *ctx;
    void *state;
    json_t *payload;       /* the resolved payload */
    const char ***strings; /* per param: the STRINGS values (NULL-terminated), else NULL */
    size_t *n_strings;
    int *counters, *hists;           /* declaration index -> engine handle */
    const char *checkpoint_in;       /* the checkpoint this run started from (the ctx's: valid
                                        until the first commit replaces it) */
    int resumed;                     /* this run started from a checkpoint */
    json_t *split_in;                /* that checkpoint's split record (a resumed split job) */
    int64_t next_index, start_index; /* source items handled (now, and when this run started) */
    size_t retry_next, n_retry;
    int retry_only;
    int64_t done_base, handled;
    /* The batch being gathered (cur) and, overlapping, the one the workers run (run, or NULL). */
    batchbuf bufs[2];
    batchbuf *cur, *run;
    int overlap; /* the type overlaps batches and there is more than one worker slot */
    unsigned char *slots;
    int n_slots;
    unsigned char *busy; /* per slot: a thread is in it (parallel.c; slot 0 the job's thread) */
    fn_prefetch *prefetch; /* the type's `prepare` run ahead of the workers, or NULL */
    /* Per slot: 0 not opened, 1 open, < 0 failed to open (then slot_err says why). Written by the
     * slot's thread, read by the job's thread at a commit (overlap: while slots still open). */
    _Atomic int *slot_rc;
    char (*slot_err)[256];
    int64_t since_commit; /* items handled since the last batch was sealed */
    uint64_t last_commit_ns, flush_ns;
    int batch_size, flush_items;
    json_t *shard;    /* a shard: its range ({"index", "of", "first", "count", "last"}), or NULL */
    char *shard_last; /* its range's last cursor as JSON text, or NULL */
};

/* The batch whose counters this thread's updates belong to: the item's batch on a worker, the
 * batch being gathered on the job's thread while it runs the source; NULL: update at once. */
static _Thread_local batchbuf *tl_buf;

/* The batch the job's thread gathers into, as tl_buf while it runs the source: the batch being
 * gathered when batches overlap (its updates may have to wait), else NULL. */
static batchbuf *gathering(const fn_batch *b)
{
    return b->overlap ? b->cur : NULL;
}

/* ---- what the type's callbacks use ------------------------------------------------------------
 */

fn_job_ctx *fn_batch_ctx(fn_batch *b)
{
    return b->ctx;
}

void *fn_batch_state(fn_batch *b)
{
    return b->state;
}

const char *fn_batch_checkpoint(fn_batch *b)
{
    return b->checkpoint_in;
}

int fn_batch_is_retry(fn_batch *b)
{
    return b->retry_only;
}

int64_t fn_batch_next_index(fn_batch *b)
{
    return b->start_index;
}

int fn_batch_is_shard(fn_batch *b)
{
    return b->shard != NULL;
}

const char *fn_batch_shard_last(fn_batch *b)
{
    return b->shard_last;
}

size_t fn_batch_items(fn_batch *b, fn_item *const **items)
{
    *items = b->cur->items;
    return b->cur->n_items;
}

int fn_batch_pending(fn_batch *b, const char *ref)
{
    const batchbuf *qs[2] = {b->cur, b->run};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; qs[k] && i < qs[k]->n_items; i++)
            if (qs[k]->items[i]->ref && strcmp(qs[k]->items[i]->ref, ref) == 0) return 1;
    return 0;
}

static json_t *param_value(fn_batch *b, const char *key, int *index)
{
    for (size_t i = 0; i < b->t->n_params; i++)
        if (strcmp(b->t->params[i].key, key) == 0) {
            if (index) *index = (int)i;
            return json_object_get(b->payload, key);
        }
    return NULL;
}

int64_t fn_batch_int(fn_batch *b, const char *key)
{
    return json_integer_value(param_value(b, key, NULL));
}

double fn_batch_real(fn_batch *b, const char *key)
{
    return json_number_value(param_value(b, key, NULL));
}

int fn_batch_bool(fn_batch *b, const char *key)
{
    return json_is_true(param_value(b, key, NULL));
}

const char *fn_batch_string(fn_batch *b, const char *key)
{
    return json_string_value(param_value(b, key, NULL));
}

size_t fn_batch_strings(fn_batch *b, const char *key, const char *const **out)
{
    int i = -1;
    param_value(b, key, &i);
    if (i < 0 || !b->strings[i]) {
        *out = NULL;
        return 0;
    }
    *out = b->strings[i];
    return b->n_strings[i];
}

/* Keeps an update for the thread's batch when that batch is not live yet; 0: apply it now. */
static int defer(int kind, int index, int64_t value, double real)
{
    batchbuf *q = tl_buf;
    if (!q || atomic_load(&q->live)) return 0;
    pthread_mutex_lock(&q->mu);
    int kept = !q->live;
    if (kept && q->n_ops == q->cap_ops) {
        size_t cap = q->cap_ops ? 2 * q->cap_ops : 64;
        deferred *o = realloc(q->ops, cap * sizeof *o);
        if (o) {
            q->ops = o;
            q->cap_ops = cap;
        } else {
            kept = 0; /* out of memory: counted at once (its commit may count it early) */
        }
    }
    if (kept) q->ops[q->n_ops++] = (deferred){kind, index, value, real};
    pthread_mutex_unlock(&q->mu);
    return kept;
}

void fn_batch_add(fn_batch *b, int counter, int64_t delta)
{
    if ((unsigned)counter < b->t->n_counters && !defer(D_ADD, counter, delta, 0))
        fn_job_add(b->ctx, b->counters[counter], delta);
}

void fn_batch_set(fn_batch *b, int counter, int64_t value)
{
    if ((unsigned)counter < b->t->n_counters && !defer(D_SET, counter, value, 0))
        fn_job_set(b->ctx, b->counters[counter], value);
}

int64_t fn_batch_get(fn_batch *b, int counter)
{
    return (unsigned)counter < b->t->n_counters ? fn_job_get(b->ctx, b->counters[counter]) : 0;
}

void fn_batch_observe(fn_batch *b, int histogram, double value)
{
    if ((unsigned)histogram < b->t->n_histograms && !defer(D_OBSERVE, histogram, 0, value))
        fn_job_observe(b->ctx, b->hists[histogram], value);
}

fn_store *fn_batch_reader(fn_batch *b)
{
    fn_store *s = NULL;
    return fn_job_reader(b->ctx, &s) == 0 ? s : NULL;
}

void fn_batch_fail(fn_batch *b, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fn_job_fail_reason(b->ctx, "%s", buf);
}

int fn_item_set_ref(fn_item *it, const char *ref)
{
    char *r = strdup(ref ? ref : "");
    if (!r) return FN_ERR_NOMEM;
    free(it->ref);
    it->ref = r;
    return 0;
}

int fn_item_fail(fn_item *it, int err, const char *code, const char *fmt, ...)
{
    it->err = err ? err : FN_ERR_INVALID;
    snprintf(it->code, sizeof it->code, "%s", code && *code ? code : fn_errname(it->err));
    char buf[1400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(it->msg);
    it->msg = strdup(buf);
    return it->msg ? 0 : FN_ERR_NOMEM;
}

/* ---- the batch --------------------------------------------------------------------------------
 */

/* The next free item of the batch being gathered (a cleared spare, or a new one). */
static fn_item *spare(fn_batch *b)
{
    batchbuf *q = b->cur;
    if (q->n_items == q->n_alloc) {
        if (q->n_alloc == q->cap_alloc) {
            size_t cap = q->cap_alloc ? q->cap_alloc * 2 : 64;
            fn_item **ni = realloc(q->items, cap * sizeof *ni);
            if (!ni) return NULL;
            q->items = ni;
            q->cap_alloc = cap;
        }
        /* One block: the item, then its data, aligned for any type. */
        size_t head = (sizeof(fn_item) + 15) & ~(size_t)15;
        fn_item *it = calloc(1, head + b->t->item_size);
        if (!it) return NULL;
        it->data = b->t->item_size ? (unsigned char *)it + head : NULL;
        q->items[q->n_alloc++] = it;
    }
    return q->items[q->n_items];
}

static void clear_item(fn_batch *b, fn_item *it)
{
    if (b->t->item_clear) b->t->item_clear(b, it);
    void *data = it->data;
    free(it->ref);
    free(it->msg);
    memset(it, 0, sizeof *it);
    if (data) memset(data, 0, b->t->item_size);
    it->data = data;
}

/* Empties a batch: its items cleared, its kept updates dropped (a batch never committed counts
 * for nothing), live again. */
static void empty(fn_batch *b, batchbuf *q)
{
    fn_prefetch_withdraw(b->prefetch, &q->prep);
    for (size_t i = 0; i < q->n_items; i++)
        clear_item(b, q->items[i]);
    q->n_items = q->n_work = 0;
    free(q->checkpoint);
    q->checkpoint = NULL;
    q->n_ops = 0;
    atomic_store(&q->live, 1);
}

/* Applies the updates kept for q (in the order they were made), and makes it live. */
static void go_live(fn_batch *b, batchbuf *q)
{
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < q->n_ops; i++) {
        const deferred *o = &q->ops[i];
        if (o->kind == D_ADD)
            fn_job_add(b->ctx, b->counters[o->index], o->value);
        else if (o->kind == D_SET)
            fn_job_set(b->ctx, b->counters[o->index], o->value);
        else
            fn_job_observe(b->ctx, b->hists[o->index], o->real);
    }
    q->n_ops = 0;
    atomic_store(&q->live, 1);
    pthread_mutex_unlock(&q->mu);
}

static void process_one(size_t i, int worker, void *arg)
{
    batchbuf *q = arg;
    fn_batch *b = q->b;
    fn_item *it = q->todo[i];
    if (worker < 0 || worker >= b->n_slots) { /* the engine broke its promise: fail, not crash */
        fn_item_fail(it, FN_ERR_STATE, NULL, "%s: worker slot %d out of range", b->t->type, worker);
        return;
    }
    batchbuf *outer = tl_buf; /* (the job's thread, taking part, may be gathering another) */
    tl_buf = q;
    void *slot = b->slots + (size_t)worker * b->t->slot_size;
    if (atomic_load(&b->slot_rc[worker]) == 0) {
        int rc = b->t->slot_open ? b->t->slot_open(b, slot, b->slot_err[worker], 256) : 0;
        if (rc < 0 && !b->slot_err[worker][0])
            snprintf(b->slot_err[worker], 256, "setting up a worker: %s", fn_strerror(rc));
        atomic_store(&b->slot_rc[worker], rc < 0 ? rc : 1); /* (after slot_err: published) */
    }
    int slot_rc = atomic_load(&b->slot_rc[worker]);
    if (slot_rc < 0) {
        fn_item_fail(it, slot_rc, NULL, "%s", b->slot_err[worker]);
    } else {
        /* Prepared by the prefetcher, or here (none, or it has not reached this item). */
        if (b->t->prepare && (!q->prep.queued || fn_prefetch_take(b->prefetch, &q->prep, i)))
            b->t->prepare(b, it);
        if (!it->err) b->t->process(b, slot, it); /* (a failed prepare: not processed) */
    }
    if (b->t->done_counter >= 0) fn_batch_add(b, b->t->done_counter, 1);
    tl_buf = outer;
}

/* The prefetcher's call: prepares item i of batch q ahead of the worker that will take it. */
static void prepare_one(size_t i, void *arg)
{
    batchbuf *q = arg;
    tl_buf = q; /* its counter updates belong to q (the prefetcher's thread has no other) */
    q->b->t->prepare(q->b, q->todo[i]);
    tl_buf = NULL;
}

static int cmp_items(const void *x, const void *y, void *arg)
{
    const fn_jobtype *t = arg;
    return t->compare(*(fn_item *const *)x, *(fn_item *const *)y);
}

static int write_rows(fn_store_tx *tx, void *arg)
{
    batchbuf *q = arg;
    return q->b->t->write(q->b, tx, q->items, q->n_items);
}

static char *checkpoint_json(fn_batch *b)
{
    json_t *o = NULL;
    char *type_fields = b->t->cursor ? b->t->cursor(b) : NULL;
    if (type_fields) {
        json_error_t jerr;
        o = json_loads(type_fields, 0, &jerr);
        free(type_fields);
        if (!json_is_object(o)) {
            json_decref(o);
            o = NULL;
        }
    }
    json_t *ck = json_object();
    json_object_set_new(ck, "next_index", json_integer(b->next_index));
    if (b->n_retry) json_object_set_new(ck, "retry_next", json_integer((json_int_t)b->retry_next));
    json_object_update(ck, o);
    json_decref(o);
    /* A resumed split job commits its retry items before it splits again: its checkpoint keeps
     * the split's record, so a crash in between resumes into the split again. */
    if (b->split_in) json_object_set(ck, "split", b->split_in);
    char *s = json_dumps(ck, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(ck);
    return s;
}

/* Records where the source stands at the end of batch q: its checkpoint and items handled. */
static int seal(fn_batch *b, batchbuf *q)
{
    free(q->checkpoint);
    if (!(q->checkpoint = checkpoint_json(b))) return FN_ERR_NOMEM;
    q->handled = b->handled;
    return 0;
}

/* Starts a sealed batch's work: the items needing it, ordered, published to the worker slots
 * (`warm` first). */
static int start(fn_batch *b, batchbuf *q)
{
    const fn_jobtype *t = b->t;
    size_t n = 0;
    if (q->n_work > q->cap_todo) {
        fn_item **nt = realloc(q->todo, q->n_work * sizeof *nt);
        if (!nt) return FN_ERR_NOMEM;
        q->todo = nt;
        q->cap_todo = q->n_work;
    }
    for (size_t i = 0; q->n_work && i < q->n_items; i++)
        if (q->items[i]->work && !q->items[i]->err) q->todo[n++] = q->items[i];
    if (n > 1 && t->compare) qsort_r(q->todo, n, sizeof *q->todo, cmp_items, (void *)t);
    int rc;
    if (n && t->warm && (rc = t->warm(b)) < 0) return rc;
    /* Run at once, a lone item is the job thread's own (no helper woken for it). */
    q->task = (fn_ptask){.n = n,
                         .fn = process_one,
                         .arg = q,
                         .busy = b->busy,
                         .n_slots = b->overlap || n > 1 ? b->n_slots : 1};
    if (b->prefetch && n) { /* (on failure the workers prepare every item of q themselves) */
        q->prep.n = n;
        q->prep.claimed = &q->task.next;
        q->prep.fn = prepare_one;
        q->prep.arg = q;
        fn_prefetch_publish(b->prefetch, &q->prep);
    }
    fn_par_start(b->ctx, &q->task);
    return 0;
}

/* Commits a batch whose work is done: its item errors, progress, checkpoint and rows in one
 * transaction; then empties it. */
static int commit(fn_batch *b, batchbuf *q)
{
    const fn_jobtype *t = b->t;
    int rc = 0;
    for (int i = 0; i < b->n_slots; i++) {
        int slot_rc = atomic_load(&b->slot_rc[i]);
        if (slot_rc < 0) {
            fn_batch_fail(b, "%s: %s", t->type, b->slot_err[i]);
            rc = slot_rc;
            goto out;
        }
    }
    for (size_t i = 0; i < q->n_items; i++) {
        fn_item *it = q->items[i];
        if (!it->err) continue;
        if (!it->code[0]) snprintf(it->code, sizeof it->code, "%s", fn_errname(it->err));
        fn_resolution res = t->resolution ? t->resolution(it->code) : FN_RES_PENDING;
        if (!t->retry_item) res = FN_RES_SKIP; /* nothing could retry it */
        if ((rc = fn_job_error_add(b->ctx, it->ref ? it->ref : "", it->code,
                                   it->msg ? it->msg : fn_strerror(it->err), res)) < 0)
            goto out;
        if (t->errors_counter >= 0) fn_batch_add(b, t->errors_counter, 1);
    }
    if (t->done_counter >= 0) fn_batch_set(b, t->done_counter, b->done_base + q->handled);
    if (t->total_counter >= 0 && fn_batch_get(b, t->total_counter) < b->done_base + q->handled)
        fn_batch_set(b, t->total_counter, b->done_base + q->handled);
    rc = fn_job_set_checkpoint(b->ctx, q->checkpoint);
    if (rc == 0) rc = fn_job_commit(b->ctx, t->write ? write_rows : NULL, q);
    if (rc < 0)
        fn_batch_fail(b, "%s: committing a batch failed: %s", t->type,
                      fn_engine_errmsg(fn_job_engine(b->ctx)));
out:
    empty(b, q);
    return rc;
}

/* A stop asked for, as the error that ends the run (0: none). */
static int stopping(fn_batch *b)
{
    fn_stop stop = fn_job_should_stop(b->ctx);
    return stop == FN_STOP_CANCEL ? FN_ERR_CANCELLED : stop == FN_STOP_YIELD ? FN_ERR_YIELDED : 0;
}

/* One batch at a time: processes the gathered batch over the slots, then seals it (the type's
 * cursor may count what its items became: export's output offset) and commits it. */
static int flush_one(fn_batch *b)
{
    batchbuf *q = b->cur;
    fn_engine *e = fn_job_engine(b->ctx);
    int rc = start(b, q);
    if (rc == 0) {
        fn_par_wait(e, &q->task);
        fn_par_end(e, &q->task);
        rc = seal(b, q);
    }
    if (rc == 0)
        rc = commit(b, q);
    else
        empty(b, q);
    b->since_commit = 0;
    b->last_commit_ns = fn_mono_ns();
    return rc;
}

/* Overlap: waits for the work of the batch the workers run, and commits it. */
static int finish_run(fn_batch *b, batchbuf *r)
{
    fn_engine *e = fn_job_engine(b->ctx);
    fn_par_wait(e, &r->task);
    fn_par_end(e, &r->task);
    b->run = NULL;
    return commit(b, r);
}

/* Overlapping batches (the type's `overlap`, with more than one slot): the workers run one batch
 * while the job's thread gathers the next, then commits the first while they go on with the
 * next. So no worker waits while the source is walked and checked, or a batch commits, and none
 * idles at a batch's end behind a long item: the next batch's items are there to take.
 *
 * Sealing the gathered batch: the job's thread first takes part in the running batch's work
 * until it has no item left to hand out; then, unless a stop was asked for, starts the new
 * batch, takes its items (the workers do too) until the running one is done, commits that one,
 * and applies the new one's kept counter updates (go_live). A stop commits the running batch and
 * drops the gathered one unworked (resumed from the running batch's checkpoint). `all`: the
 * source has ended (or is about to split): the new batch is waited for and committed too. */
static int flush_overlapped(fn_batch *b, int all)
{
    fn_engine *e = fn_job_engine(b->ctx);
    batchbuf *q = b->cur, *r = b->run;
    int rc = seal(b, q), stop = 0; /* (the cursor before q's items run: its source position) */
    b->since_commit = 0;
    b->last_commit_ns = fn_mono_ns();
    if (r && rc == 0 && (stop = stopping(b)) < 0) {
        while (fn_par_step(&r->task))
            ;
        rc = finish_run(b, r);
        empty(b, q);
        return rc < 0 ? rc : stop;
    }
    /* q is published before this thread takes r's last items, so that a helper that finds r
     * taken goes on to q (tasks are helped in the order they were published: r's items first)
     * instead of idling until this thread's item of r is done. A stop asked from here on is
     * honoured at the next flush, after q commits. */
    if (rc == 0) rc = start(b, q);
    if (r) {
        while (fn_par_step(&r->task))
            ;
        while (rc == 0 && !fn_par_done(e, &r->task))
            if (!fn_par_step(&q->task)) fn_par_wait(e, &r->task);
        int crc = finish_run(b, r);
        if (rc == 0) rc = crc;
    }
    if (rc < 0) {
        fn_par_abandon(e, &q->task);
        empty(b, q);
        return rc;
    }
    go_live(b, q);
    b->run = q;
    b->cur = q == &b->bufs[0] ? &b->bufs[1] : &b->bufs[0];
    if (all) return finish_run(b, q);
    atomic_store(&b->cur->live, 0); /* its updates wait for q's commit */
    return 0;
}

/* Commits what is gathered (all: and, overlapping, waits for it and commits it too). */
static int flush(fn_batch *b, int all)
{
    return b->overlap ? flush_overlapped(b, all) : flush_one(b);
}

/* Flushes when the batch is full or its flush policy says so (force: always, the source has
 * ended); then honours a stop request. */
static int maybe_flush(fn_batch *b, int force)
{
    const batchbuf *q = b->cur;
    int due = force || q->n_work >= (size_t)b->batch_size || b->since_commit >= b->flush_items ||
              (b->since_commit && fn_mono_ns() - b->last_commit_ns >= b->flush_ns);
    if (!due) return 0;
    int rc = flush(b, force);
    if (rc < 0) return rc;
    return b->overlap && !force ? 0 : stopping(b);
}

/* Where an item came from: the source, a retry reference (done with it), or a retry reference
 * that has more items to come. */
enum { FROM_SOURCE, FROM_RETRY, FROM_RETRY_PART };

/* Accounts for the item the source just filled (the batch's next spare). */
static int take(fn_batch *b, fn_item *it, int from)
{
    batchbuf *q = b->cur;
    if (from == FROM_RETRY)
        b->retry_next++;
    else if (from == FROM_SOURCE)
        b->next_index++;
    b->handled++;
    b->since_commit++;
    if (it->err) it->work = 0;
    if (it->work || it->keep || it->err) {
        q->n_items++;
        if (it->work) q->n_work++;
    } else {
        clear_item(b, it);
    }
    if (!it->work && b->t->done_counter >= 0) {
        tl_buf = gathering(b);
        fn_batch_add(b, b->t->done_counter, 1);
        tl_buf = NULL;
    }
    return maybe_flush(b, 0);
}

static int source_error(fn_batch *b, int rc, const char *what)
{
    if (!b->ctx->fail_reason[0])
        fn_batch_fail(b, "%s: %s failed: %s", b->t->type, what, fn_strerror(rc));
    return rc;
}

static int run_retry(fn_batch *b)
{
    const fn_jobtype *t = b->t;
    while (b->retry_next < b->n_retry) {
        char **refs = NULL;
        size_t n = 0;
        int rc = fn_job_retry_items(b->ctx, b->retry_next, RETRY_PAGE, &refs, &n);
        if (rc < 0) return source_error(b, rc, "reading the items to retry");
        if (n == 0) { /* fewer than counted (cannot happen in one run): stop here */
            b->n_retry = b->retry_next;
            free(refs);
            break;
        }
        for (size_t i = 0; i < n; i++) {
            int more = 1;
            while (rc >= 0 && more) {
                fn_item *it = spare(b);
                more = 0;
                if (!it) {
                    rc = FN_ERR_NOMEM;
                } else if (t->retry_item) {
                    tl_buf = gathering(b);
                    rc = t->retry_item(b, refs[i], it);
                    tl_buf = NULL;
                    more = rc == FN_SOURCE_MORE;
                    if (rc == FN_SOURCE_END) { /* a reference with nothing (left) in it */
                        clear_item(b, it);
                        b->retry_next++;
                        b->since_commit++;
                        continue;
                    }
                    if (rc >= 0 && !it->ref) rc = fn_item_set_ref(it, refs[i]);
                } else if ((rc = fn_item_set_ref(it, refs[i])) == 0) {
                    rc = fn_item_fail(it, FN_ERR_UNSUPPORTED, NULL,
                                      "%s: a %s job cannot retry an item", refs[i], t->type);
                }
                if (rc >= 0) rc = take(b, it, more ? FROM_RETRY_PART : FROM_RETRY);
            }
            free(refs[i]);
        }
        free(refs);
        if (rc < 0)
            return rc == FN_ERR_CANCELLED || rc == FN_ERR_YIELDED
                       ? rc
                       : source_error(b, rc, "retrying an item");
    }
    return 0;
}

static int run_source(fn_batch *b)
{
    for (;;) {
        fn_item *it = spare(b);
        if (!it) return source_error(b, FN_ERR_NOMEM, "taking the next item");
        tl_buf = gathering(b);
        int rc = b->t->next(b, it);
        tl_buf = NULL;
        if (rc == FN_SOURCE_END) {
            clear_item(b, it);
            return 0;
        }
        if (rc < 0) {
            clear_item(b, it);
            return source_error(b, rc, "reading the next item");
        }
        if ((rc = take(b, it, FROM_SOURCE)) < 0) return rc;
    }
}

/* ---- one run ----------------------------------------------------------------------------------
 */

/* workers.prefetch: "on", "off", or "auto": a prefetcher whenever the job runs on worker
 * threads, never in inline mode (one thread, deterministic). Measured (decision 60): with one
 * slot it takes the decode off the slot's core; with as many slots as cores it still saves
 * 1-10 % (a slot no longer waits on a read or a decode, nor at a batch's border). */
static int prefetch_wanted(const fn_batch *b)
{
    const fn_engine *e = fn_job_engine(b->ctx);
    const char *mode = e->cfg.workers_prefetch;
    if (!strcmp(mode, "on")) return 1;
    return strcmp(mode, "off") != 0 && e->n_workers_alloc > 0;
}

/* What the prefetcher did, in the log (how much of the preparing it took off the workers). */
static void log_prefetch(fn_batch *b)
{
    if (!b->prefetch) return;
    size_t ahead = 0, workers = 0;
    fn_prefetch_counts(b->prefetch, &ahead, &workers);
    FN_LOG(FN_LOG_DEBUG, "%s job %lld: prefetch: %zu items prepared ahead, %zu by the workers",
           b->t->type, (long long)fn_job_id_of(b->ctx), ahead, workers);
}

static int setup(fn_batch *b)
{
    const fn_jobtype *t = b->t;
    fn_job_ctx *ctx = b->ctx;
    fn_engine *e = fn_job_engine(ctx);
    char err[1024] = "";
    char *resolved = NULL;
    json_error_t jerr;
    /* A shard's range rides in its payload beside the job's settings; the schema sees only
     * those. */
    const char *payload = fn_job_payload(ctx);
    char *stripped = NULL;
    if (strstr(payload, "\"shard\"")) {
        json_t *p = json_loads(payload, 0, &jerr);
        json_t *sh = json_object_get(p, "shard");
        int nomem = 0;
        if (json_is_object(sh)) {
            b->shard = json_incref(sh);
            json_object_del(p, "shard");
            json_t *last = json_object_get(b->shard, "last");
            if (json_is_object(last) &&
                !(b->shard_last = json_dumps(last, JSON_COMPACT | JSON_PRESERVE_ORDER)))
                nomem = 1;
            if (!(stripped = json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER))) nomem = 1;
            payload = stripped;
        }
        json_decref(p);
        if (nomem) {
            free(stripped);
            return FN_ERR_NOMEM;
        }
    }
    /* A payload stored before the type had a schema default, or by hand: resolve it again. */
    int rc = fn_jobtype_resolve(t, payload, fn_engine_config(e), &resolved, err, sizeof err);
    free(stripped);
    if (rc < 0) {
        fn_batch_fail(b, "%s", err);
        return rc;
    }
    b->payload = json_loads(resolved, 0, &jerr);
    free(resolved);
    b->strings = calloc(t->n_params ? t->n_params : 1, sizeof *b->strings);
    b->n_strings = calloc(t->n_params ? t->n_params : 1, sizeof *b->n_strings);
    b->counters = calloc(t->n_counters ? t->n_counters : 1, sizeof *b->counters);
    b->hists = calloc(t->n_histograms ? t->n_histograms : 1, sizeof *b->hists);
    if (!b->payload || !b->strings || !b->n_strings || !b->counters || !b->hists)
        return FN_ERR_NOMEM;
    for (size_t i = 0; i < t->n_params; i++) {
        json_t *a = json_object_get(b->payload, t->params[i].key);
        if (t->params[i].type != FN_PARAM_STRINGS || !json_is_array(a)) continue;
        size_t n = json_array_size(a);
        if (!(b->strings[i] = calloc(n + 1, sizeof *b->strings[i]))) return FN_ERR_NOMEM;
        for (size_t k = 0; k < n; k++)
            b->strings[i][k] = json_string_value(json_array_get(a, k));
        b->n_strings[i] = n;
    }
    for (size_t i = 0; i < t->n_counters; i++)
        if ((b->counters[i] = fn_job_counter(ctx, t->counters[i])) < 0) {
            fn_batch_fail(b, "%s: %s", t->type, fn_engine_errmsg(e));
            return b->counters[i];
        }
    for (size_t i = 0; i < t->n_histograms; i++) {
        const fn_histogram_decl *h = &t->histograms[i];
        if ((b->hists[i] = fn_job_histogram(ctx, h->name, h->bounds, h->n_bounds)) < 0) {
            fn_batch_fail(b, "%s: %s", t->type, fn_engine_errmsg(e));
            return b->hists[i];
        }
    }

    b->checkpoint_in = fn_job_checkpoint(ctx);
    if (b->checkpoint_in) {
        json_t *ck = json_loads(b->checkpoint_in, 0, &jerr);
        json_t *ni = json_object_get(ck, "next_index"), *rn = json_object_get(ck, "retry_next");
        int ok = json_is_object(ck) &&
                 (!ni || (json_is_integer(ni) && json_integer_value(ni) >= 0)) &&
                 (!rn || (json_is_integer(rn) && json_integer_value(rn) >= 0));
        if (ok) {
            b->next_index = json_integer_value(ni);
            b->retry_next = (size_t)json_integer_value(rn);
            json_t *split = json_object_get(ck, "split");
            if (json_is_object(split) && !b->shard) b->split_in = json_incref(split);
        }
        b->resumed = 1;
        json_decref(ck);
        if (!ok) {
            fn_batch_fail(b, "%s: the checkpoint %s is not {\"next_index\": N, ...}", t->type,
                          b->checkpoint_in);
            return FN_ERR_INVALID;
        }
    }
    b->start_index = b->next_index;
    b->retry_only = fn_job_is_retry(ctx);
    b->n_retry = fn_job_retry_count(ctx);
    if (b->retry_next > b->n_retry) b->retry_next = b->n_retry;
    b->done_base = t->done_counter >= 0 ? fn_batch_get(b, t->done_counter) : 0;

    b->batch_size = t->batch_param ? (int)fn_batch_int(b, t->batch_param) : 32;
    if (b->batch_size <= 0) b->batch_size = 32;
    b->flush_items = t->flush_items > 0 ? t->flush_items : 4096;
    b->flush_ns = (uint64_t)(t->flush_ms > 0 ? t->flush_ms : 1000) * 1000000u;
    b->n_slots = fn_job_parallelism(ctx);
    if (t->prepare && prefetch_wanted(b)) b->prefetch = fn_prefetch_new((size_t)b->n_slots);
    /* (one slot and a prefetcher: the next batch is published before the last item of the one
     * before runs, so the prefetcher prepares across the batches' border too) */
    b->overlap = t->overlap && (b->n_slots > 1 || b->prefetch);
    b->slots = calloc((size_t)b->n_slots, t->slot_size ? t->slot_size : 1);
    b->busy = calloc((size_t)b->n_slots, 1);
    b->slot_rc = calloc((size_t)b->n_slots, sizeof *b->slot_rc);
    b->slot_err = calloc((size_t)b->n_slots, sizeof *b->slot_err);
    if (t->job_size) b->state = calloc(1, t->job_size);
    if (!b->slots || !b->busy || !b->slot_rc || !b->slot_err || (t->job_size && !b->state))
        return FN_ERR_NOMEM;
    b->busy[0] = 1; /* the job's thread's */
    b->last_commit_ns = fn_mono_ns();
    return 0;
}

static void teardown(fn_batch *b, int opened)
{
    const fn_jobtype *t = b->t;
    if (b->run) fn_par_abandon(fn_job_engine(b->ctx), &b->run->task); /* (a failed run) */
    log_prefetch(b);
    fn_prefetch_free(b->prefetch); /* (joined: no prepare runs from here on) */
    for (int k = 0; k < 2; k++) {
        batchbuf *q = &b->bufs[k];
        for (size_t i = 0; i < q->n_alloc; i++) {
            if (i < q->n_items) clear_item(b, q->items[i]);
            free(q->items[i]);
        }
        free(q->items);
        free(q->todo);
        free(q->prep.state);
        free(q->ops);
        free(q->checkpoint);
        pthread_mutex_destroy(&q->mu);
    }
    free(b->busy);
    for (int i = 0; b->slot_rc && i < b->n_slots; i++)
        if (b->slot_rc[i] == 1 && t->slot_close)
            t->slot_close(b, b->slots + (size_t)i * t->slot_size);
    if (opened && t->close) t->close(b);
    free(b->slots);
    free(b->slot_rc);
    free(b->slot_err);
    free(b->state);
    for (size_t i = 0; b->strings && i < t->n_params; i++)
        free(b->strings[i]);
    free(b->strings);
    free(b->n_strings);
    free(b->counters);
    free(b->hists);
    json_decref(b->payload);
    json_decref(b->shard);
    json_decref(b->split_in);
    free(b->shard_last);
}

/* ---- shards -----------------------------------------------------------------------------------
 */

/* The type's threshold: split above this many items (0: never). */
static int64_t shard_threshold(fn_batch *b)
{
    if (!b->t->shard_param || !b->t->shard_bounds) return 0;
    int64_t v = fn_batch_int(b, b->t->shard_param);
    return v > 0 ? v : 0;
}

/* Splits the job into the shards described (payloads and first checkpoints), recording its
 * progress now as the base they add to. */
static int split_into(fn_batch *b, size_t n, char *const *payloads, char *const *checkpoints)
{
    const fn_jobtype *t = b->t;
    char *progress = fn_ctx_progress_json(b->ctx);
    json_t *base = progress ? json_loads(progress, 0, NULL) : NULL;
    json_t *ck =
        json_pack("{s:I,s:{s:I,s:I,s:o,s:s?,s:s?,s:I}}", "next_index", (json_int_t)b->next_index,
                  "split", "job", (json_int_t)fn_job_id_of(b->ctx), "shards", (json_int_t)n, "base",
                  base ? base : json_object(), "done",
                  t->done_counter >= 0 ? t->counters[t->done_counter] : NULL, "total",
                  t->total_counter >= 0 ? t->counters[t->total_counter] : NULL, "next_base",
                  (json_int_t)b->next_index);
    char *cktext = ck ? json_dumps(ck, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(ck);
    /* A stop asked for before the split is honoured as after a batch: nothing is split. */
    fn_stop stop = fn_job_should_stop(b->ctx);
    int rc = stop == FN_STOP_CANCEL  ? FN_ERR_CANCELLED
             : stop == FN_STOP_YIELD ? FN_ERR_YIELDED
             : progress && cktext ? fn_job_split(b->ctx, n, payloads, checkpoints, cktext, progress)
                                  : FN_ERR_NOMEM;
    if (rc < 0 && rc != FN_ERR_NOMEM && rc != FN_ERR_CANCELLED && rc != FN_ERR_YIELDED)
        fn_batch_fail(b, "%s: %s", t->type, fn_engine_errmsg(fn_job_engine(b->ctx)));
    free(progress);
    free(cktext);
    return rc;
}

/* A fresh job above the threshold: ranges of `per` items, each the cursor after the previous
 * range's last item to its own last item. */
static int split_fresh(fn_batch *b, int64_t per, int *done)
{
    char **cursors = NULL;
    size_t n = 0;
    int rc = b->t->shard_bounds(b, per, &cursors, &n);
    if (rc < 0) return source_error(b, rc, "finding where to split it");
    size_t n_shards = n + 1;
    char **payloads = calloc(n_shards, sizeof *payloads);
    char **checkpoints = calloc(n_shards, sizeof *checkpoints);
    int64_t total = b->t->total_counter >= 0 ? fn_batch_get(b, b->t->total_counter) : 0;
    if (!payloads || !checkpoints) rc = FN_ERR_NOMEM;
    for (size_t i = 0; rc >= 0 && n > 0 && i < n_shards; i++) {
        json_error_t jerr;
        json_t *after = i > 0 ? json_loads(cursors[i - 1], 0, &jerr) : NULL;
        json_t *last = i < n ? json_loads(cursors[i], 0, &jerr) : NULL;
        int64_t first = (int64_t)i * per;
        int64_t count = i < n ? per : (total > first ? total - first : 0);
        json_t *range =
            json_pack("{s:I,s:I,s:I,s:I}", "index", (json_int_t)i, "of", (json_int_t)n_shards,
                      "first", (json_int_t)first, "count", (json_int_t)count);
        if (range && last) json_object_set(range, "last", last);
        json_t *p = json_deep_copy(b->payload);
        if (p && range) json_object_set(p, "shard", range);
        payloads[i] = p ? json_dumps(p, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        if (after) { /* the shard starts as a resume from the cursor before its range */
            json_t *c = json_pack("{s:I}", "next_index", (json_int_t)first);
            if (c) json_object_update(c, after);
            checkpoints[i] = c ? json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
            json_decref(c);
            if (!checkpoints[i]) rc = FN_ERR_NOMEM;
        }
        if (!payloads[i]) rc = FN_ERR_NOMEM;
        json_decref(p);
        json_decref(range);
        json_decref(after);
        json_decref(last);
    }
    if (rc >= 0 && n > 0) {
        rc = split_into(b, n_shards, payloads, checkpoints);
        if (rc == 0) *done = 1;
    }
    for (size_t i = 0; i < n; i++)
        free(cursors[i]);
    free(cursors);
    for (size_t i = 0; payloads && i < n_shards; i++)
        free(payloads[i]);
    for (size_t i = 0; checkpoints && i < n_shards; i++)
        free(checkpoints[i]);
    free(payloads);
    free(checkpoints);
    return rc == FN_ERR_NOMEM ? source_error(b, rc, "splitting it") : rc;
}

/* A resume of a split job: its shards that did not complete go on, as new shards of this job,
 * from their checkpoints (their errors came to this job with the split job's: the retry phase
 * before this took them). Nothing left: the source is done. The shards are those of the job the
 * split record names (the one that split): a resume that stopped in its retry phase, before it
 * split again, carries the record on to the next resume. */
static int split_resumed(fn_batch *b, int *done)
{
    fn_job_ctx *ctx = b->ctx;
    fn_js_shard *sh = NULL;
    size_t n = 0;
    int64_t split_job = json_integer_value(json_object_get(b->split_in, "job"));
    if (split_job <= 0) split_job = ctx->parent;
    int rc = split_job ? fn_js_shards(ctx->w->store, split_job, &sh, &n) : 0;
    if (rc < 0) return source_error(b, rc, "reading the shards it resumes");
    char **payloads = calloc(n ? n : 1, sizeof *payloads);
    char **checkpoints = calloc(n ? n : 1, sizeof *checkpoints);
    size_t k = 0;
    if (!payloads || !checkpoints) rc = FN_ERR_NOMEM;
    for (size_t i = 0; rc >= 0 && i < n; i++) {
        if (sh[i].state == FN_JOB_COMPLETED) continue;
        payloads[k] = sh[i].payload;
        checkpoints[k] = sh[i].checkpoint;
        k++;
    }
    *done = 1; /* the source is its shards': never walked again here */
    if (rc >= 0 && k > 0) {
        /* What this run did in its retry phase is committed before the split. */
        if ((rc = flush(b, 1)) == 0) rc = split_into(b, k, payloads, checkpoints);
    }
    free(payloads);
    free(checkpoints);
    fn_js_shards_free(sh, n);
    return rc == FN_ERR_NOMEM ? source_error(b, rc, "splitting it") : rc;
}

/* Whether the job goes on as shards (*done = 1: the source is theirs). */
static int maybe_split(fn_batch *b, int *done)
{
    *done = 0;
    if (b->shard || b->retry_only || !b->t->shard_bounds) return 0;
    if (b->resumed) return b->split_in ? split_resumed(b, done) : 0;
    int64_t per = shard_threshold(b);
    if (per <= 0 || b->t->total_counter < 0 || fn_batch_get(b, b->t->total_counter) <= per)
        return 0;
    return split_fresh(b, per, done);
}

static int driver_run(fn_job_ctx *ctx, void *user)
{
    fn_batch b;
    memset(&b, 0, sizeof b);
    b.t = user;
    b.ctx = ctx;
    for (int k = 0; k < 2; k++) {
        b.bufs[k].b = &b;
        atomic_store(&b.bufs[k].live, 1);
        pthread_mutex_init(&b.bufs[k].mu, NULL);
    }
    b.cur = &b.bufs[0];
    int opened = 0;
    int rc = setup(&b);
    if (rc == 0) {
        rc = b.t->open ? b.t->open(&b) : 0;
        opened = 1;
        if (rc < 0) source_error(&b, rc, "starting");
    }
    /* A shard's total is its range (the job it is part of counted the whole source). */
    if (rc == 0 && b.shard && b.t->total_counter >= 0) {
        int64_t count = json_integer_value(json_object_get(b.shard, "count"));
        if (fn_batch_get(&b, b.t->total_counter) < count)
            fn_batch_set(&b, b.t->total_counter, count);
    }
    if (rc == 0 && b.t->total_counter >= 0 && b.n_retry) {
        int64_t from_source = b.retry_only ? 0 : fn_batch_get(&b, b.t->total_counter);
        fn_batch_set(&b, b.t->total_counter, from_source + (int64_t)b.n_retry);
    }
    /* Publish the totals now (a progress-only commit), not after the first batch. */
    if (rc == 0 && (rc = fn_job_commit(ctx, NULL, NULL)) < 0)
        fn_batch_fail(&b, "%s: %s", b.t->type, fn_engine_errmsg(fn_job_engine(ctx)));
    if (rc == 0 && fn_job_should_stop(ctx) != FN_STOP_NONE)
        rc = fn_job_should_stop(ctx) == FN_STOP_CANCEL ? FN_ERR_CANCELLED : FN_ERR_YIELDED;
    if (rc == 0) rc = run_retry(&b);
    int split = 0;
    if (rc == 0 && !b.retry_only) rc = maybe_split(&b, &split);
    if (rc == 0 && !b.retry_only && !split) rc = run_source(&b);
    if (rc == 0 && !ctx->sharded) rc = maybe_flush(&b, 1);
    if (rc == FN_ERR_NOMEM && !ctx->fail_reason[0])
        fn_batch_fail(&b, "%s: out of memory", b.t->type);
    teardown(&b, opened);
    return rc;
}

static int driver_prepare(const char *payload, const fn_config *cfg, char **resolved, char *err,
                          size_t errlen, void *user)
{
    return fn_jobtype_resolve(user, payload, cfg, resolved, err, errlen);
}

int fn_jobtype_register(fn_engine *e, const fn_jobtype *t)
{
    if (!t || !t->type || !t->next || !t->process)
        return fn_eng_fail(FN_ERR_INVALID, "a job type needs a name, a source (next) and process");
    if ((t->done_counter >= 0 && (size_t)t->done_counter >= t->n_counters) ||
        (t->total_counter >= 0 && (size_t)t->total_counter >= t->n_counters) ||
        (t->errors_counter >= 0 && (size_t)t->errors_counter >= t->n_counters))
        return fn_eng_fail(FN_ERR_INVALID, "job type %s: a counter index is out of range", t->type);
    fn_handler h = {.type = t->type,
                    .run = driver_run,
                    .user = (void *)t,
                    .gpu_slots = t->gpu_slots,
                    .mem_mb = t->mem_mb,
                    .prepare = driver_prepare,
                    .summary = t->summary,
                    .rate_unit = t->rate_unit};
    return fn_engine_register(e, &h);
}
