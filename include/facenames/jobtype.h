/* facenames: writing a job type on the batch-job driver (docs/job-types.md walks through one).
 *
 * A job type is a table of declarations (its payload schema, counters, histograms, item reference
 * format, progress unit and summary) plus its item work. The driver owns everything else, the same
 * way for every type:
 *   - the payload: checked and resolved at enqueue (unknown keys, wrong types, limits, defaults
 *     from the configuration), so a bad value is an error naming the key before any job exists,
 *     and the stored payload holds every effective setting (resume and retry use it as it is);
 *   - the cursor: "next_index" (items handled so far) and "retry_next" in the checkpoint, plus the
 *     type's own cursor fields, written with every commit and handed back on resume;
 *   - the retry phase: items of the errors a retry selected (or a resume found pending or marked
 *     retry) are reprocessed first, through the type's `retry_item`;
 *   - batches: items are gathered from the source until `batch` need work, or the flush policy says
 *     so (N items handled or T ms without a commit, e.g. while only skipping), then
 *     `warm` runs once on the job's thread (load models, acquire devices), the items needing work
 *     are fanned out over the worker slots (`process`, each slot's state set up once by
 *     `slot_open`), failures become item errors with the type's resolution, and the batch's rows
 *     (`write`), its checkpoint, progress and errors commit in ONE transaction;
 *   - stop and yield (checked after every commit), and fail reasons.
 *
 * Threading: `open`, `close`, `next`, `retry_item`, `warm`, `cursor`, `write` and `item_clear` run
 * on the job's thread; `prepare` on the job's prefetcher thread or a worker; `process` on worker
 * slots, several at once. `prepare` and `process` touch only their own item (and `process` its own
 * slot state), and may add to counters and histograms (fn_batch_add/observe are atomic) but
 * call nothing else of the engine. */
#ifndef FACENAMES_JOBTYPE_H
#define FACENAMES_JOBTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "facenames/jobs.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* ---- The payload schema -----------------------------------------------------------------------
 */

typedef enum fn_param_type {
    FN_PARAM_BOOL = 0,
    FN_PARAM_INT = 1,     /* integer within [min, max] */
    FN_PARAM_REAL = 2,    /* number within [min, max] */
    FN_PARAM_STRING = 3,  /* non-empty string; with `choices`, one of them */
    FN_PARAM_STRINGS = 4, /* array of non-empty strings (at least `min` of them) */
} fn_param_type;

typedef struct fn_param {
    const char *key; /* payload key */
    fn_param_type type;
    const char *config_key;     /* default: this configuration key's effective value (NULL: dflt) */
    const char *dflt;           /* default as JSON text ("40", "true", "\"ssd\"", "[\"jpg\"]"); NULL
                                   with no config_key: the key is required */
    double min, max;            /* INT, REAL: inclusive limits; STRINGS: min = fewest elements */
    const char *const *choices; /* STRING: the allowed values, NULL-terminated; NULL: any */
    const char *help;           /* one line, for error messages and docs */
} fn_param;

/* ---- Declarations -----------------------------------------------------------------------------
 */

typedef struct fn_histogram_decl {
    const char *name;
    const double *bounds; /* ascending upper bounds; one overflow bucket follows */
    size_t n_bounds;
} fn_histogram_decl;

typedef struct fn_batch fn_batch; /* the driver's view of one running job */

/* What the source hands the driver for each item. The driver zeroes it before each call. */
typedef struct fn_item {
    char *ref;     /* the item reference (what errors and retry name): fn_item_set_ref() */
    int work;      /* 1: process() must run for it on a worker slot */
    int keep;      /* 1: stays in the batch (for write) even without work */
    int err;       /* an fn_err: the item failed (set by the source or by process) */
    char code[32]; /* its error code (default fn_errname(err)) */
    char *msg;     /* its error sentence: fn_item_fail() */
    void *data;    /* the type's per-item record: item_size bytes, zeroed */
} fn_item;

/* Source results. */
enum {
    FN_SOURCE_END = 0,  /* no more items */
    FN_SOURCE_ITEM = 1, /* an item: kept in the batch when it has work, keep or err set */
    FN_SOURCE_MORE = 2, /* retry_item only: an item, and the reference has more (a folder whose
                           files are retried one by one): call again with the same reference
                           until it returns FN_SOURCE_END or FN_SOURCE_ITEM. A crash in between
                           retries the reference from its start. */
};

typedef struct fn_jobtype {
    const char *type;       /* the job type name */
    const fn_param *params; /* the payload schema */
    size_t n_params;
    const char *const *counters; /* counter names; a counter's handle is its index here */
    size_t n_counters;
    const fn_histogram_decl *histograms; /* a histogram's handle is its index here */
    size_t n_histograms;
    int done_counter;        /* the counter the driver keeps at "items handled" (-1: none) */
    int total_counter;       /* the counter of the items expected (-1: none); the type sets it */
    int errors_counter;      /* the counter of failed items the driver adds to (-1: none) */
    const char *item_ref;    /* what an item reference is, for docs and messages ("a file path") */
    const char *rate_unit;   /* what a progress rate counts ("photos"; NULL: "items") */
    const char *batch_param; /* the INT payload key giving the items of work per batch (NULL: 32) */
    int flush_items;         /* commit after this many items handled without work (0: 4096) */
    int flush_ms;            /* ... or after this long since the last commit (0: 1000 ms) */
    int gpu_slots, mem_mb;   /* what a running job declares (fn_handler) */
    size_t job_size;         /* bytes of the type's job state (zeroed; fn_batch_state) */
    size_t slot_size;        /* bytes of each worker slot's state (zeroed) */
    size_t item_size;        /* bytes of each item's record (zeroed) */
    /* 1: batches overlap (with more than one worker slot): the workers run one batch while the
     * job's thread gathers the next and commits the one before. For a type whose `next` needs
     * nothing of the batch before it committed: a file seen in both is found with
     * fn_batch_pending, and the previous batch's rows are not in the store yet; whose `cursor`
     * is the source's position alone (it is taken when a batch is sealed, before its items run).
     * `process` then runs beside `next`, `write` and `cursor` (it must not touch what they
     * change). */
    int overlap;

    /* Sets up the job state from the resolved payload (fn_batch_payload) and the checkpoint's
     * type fields (fn_batch_checkpoint; NULL on a fresh start). May set the total counter. */
    int (*open)(fn_batch *b);
    void (*close)(fn_batch *b); /* releases the job state; also after a failed open */
    /* Once per slot, on its first item, on the worker that runs it (may be NULL). A failure (an
     * fn_err, with a sentence in err) fails the item and then the job. */
    int (*slot_open)(fn_batch *b, void *slot, char *err, size_t errlen);
    void (*slot_close)(fn_batch *b, void *slot); /* may be NULL */
    /* The next item from the source: FN_SOURCE_ITEM or FN_SOURCE_END, or an fn_err that fails the
     * job (describe it with fn_batch_fail). The type advances its own cursor. */
    int (*next)(fn_batch *b, fn_item *item);
    /* Builds the item of a retry reference (a previous error's item); same results as next, plus
     * FN_SOURCE_MORE. NULL: the type cannot retry (its errors are marked skip). */
    int (*retry_item)(fn_batch *b, const char *ref, fn_item *item);
    /* Once per batch that has work, on the job's thread before the fan-out: acquire device
     * handles, load models (the contract's warm-up). May be NULL. */
    int (*warm)(fn_batch *b);
    /* Optional, the first part of an item's work: what waits on the disk and the decoder rather
     * than the cores (reading a file, decoding it into the item's record). It runs exactly once
     * per item that needs work, before its `process`: on the job's prefetcher thread while the
     * workers compute the items before it (workers.prefetch), or else on the worker, just before
     * `process`. No slot: it may touch only its own item (and add to counters). Fail it with
     * fn_item_fail; `process` is then not called. What it keeps in the item is freed by
     * `item_clear` (an item prepared ahead may be dropped unprocessed, by a stop). */
    void (*prepare)(fn_batch *b, fn_item *item);
    /* The work of one item on a worker slot. Fail it with fn_item_fail. */
    void (*process)(fn_batch *b, void *slot, fn_item *item);
    /* Orders the items that need work before the fan-out, as qsort would (e.g. largest first, so
     * no worker idles at the end of a batch behind a big one). NULL: source order. */
    int (*compare)(const fn_item *a, const fn_item *b);
    /* The batch's rows, inside the commit transaction: items[0..n) in source order (failed ones
     * included, err set). May be NULL. */
    int (*write)(fn_batch *b, fn_store_tx *tx, fn_item *const *items, size_t n);
    /* The type's cursor fields, as a JSON object text (malloc'ed), or NULL for none. */
    char *(*cursor)(fn_batch *b);
    void (*item_clear)(fn_batch *b, fn_item *item); /* frees the item's data (may be NULL) */
    /* The resolution an error code gets (NULL: pending). */
    fn_resolution (*resolution)(const char *code);
    fn_handler_summary_fn summary; /* a person-readable summary (NULL: the counters) */

    /* Shards (docs/job-types.md, "Shards"): a fresh job whose total counter, as `open` set it,
     * exceeds the INT payload key `shard_param` (0 there: never; like every setting it travels
     * with the job, its default from the configuration) is split, right after its open, into
     * shards of that many source items: contiguous ranges of the source, which idle workers of any
     * process or host claim as jobs of their own. The driver runs a shard from the cursor before
     * its range (fn_batch_checkpoint, as a resume) and the type ends its source after the range's
     * last item (fn_batch_shard_last). NULL / NULL: never split. */
    const char *shard_param;
    /* The type's cursor fields (as `cursor` writes them, a JSON object text, malloc'ed) at every
     * `per`-th item of the source: (*cursors)[i] is the cursor after item (i + 1) * per - 1, for
     * each such item that has another item after it. *n gets how many. Job thread; may be slow
     * (it walks the source) but must not do the items' work. */
    int (*shard_bounds)(fn_batch *b, int64_t per, char ***cursors, size_t *n);
} fn_jobtype;

/* Registers `t` (which must outlive the engine) as a handler on the driver. */
int fn_jobtype_register(fn_engine *e, const fn_jobtype *t);

/* Checks and resolves a payload against `t`'s schema (what enqueue does). *resolved is the
 * payload with every key present (malloc'ed, keys in schema order). FN_ERR_INVALID with a
 * sentence in err naming the key and what is allowed. */
int fn_jobtype_resolve(const fn_jobtype *t, const char *payload, const fn_config *cfg,
                       char **resolved, char *err, size_t errlen);

/* ---- Inside a job (the type's callbacks) ------------------------------------------------------
 */

fn_job_ctx *fn_batch_ctx(fn_batch *b);
void *fn_batch_state(fn_batch *b);            /* the type's job state (job_size bytes) */
const char *fn_batch_checkpoint(fn_batch *b); /* the checkpoint resumed from, or NULL */
int fn_batch_is_retry(fn_batch *b);           /* 1: the job only reprocesses retry items */
int64_t fn_batch_next_index(fn_batch *b);     /* source items handled before this run started */
/* Shards: 1 when this job is a shard of a split job. Its source starts after the cursor in
 * fn_batch_checkpoint (NULL: from the start) and must end after the item whose cursor fields are
 * fn_batch_shard_last (a JSON object text as `cursor` wrote it; NULL: at the source's end). */
int fn_batch_is_shard(fn_batch *b);
const char *fn_batch_shard_last(fn_batch *b);
/* The items gathered into the current batch so far, in source order (for a type that must not
 * take one item twice in a batch). Job thread. */
size_t fn_batch_items(fn_batch *b, fn_item *const **items);
/* Whether an item with reference `ref` is in a batch not committed yet: the one being gathered,
 * or (overlap) the one the workers run. Job thread. */
int fn_batch_pending(fn_batch *b, const char *ref);

/* The resolved payload's values (the schema guarantees them; a wrong key or type aborts in debug
 * builds and returns 0 / NULL). Strings are valid while the job runs. */
int64_t fn_batch_int(fn_batch *b, const char *key);
double fn_batch_real(fn_batch *b, const char *key);
int fn_batch_bool(fn_batch *b, const char *key);
const char *fn_batch_string(fn_batch *b, const char *key);
size_t fn_batch_strings(fn_batch *b, const char *key, const char *const **out);

/* Counters and histograms by declaration index. Any thread; lock-free. */
void fn_batch_add(fn_batch *b, int counter, int64_t delta);
void fn_batch_set(fn_batch *b, int counter, int64_t value);
int64_t fn_batch_get(fn_batch *b, int counter);
void fn_batch_observe(fn_batch *b, int histogram, double value);

/* The job's read connection (fn_job_reader). Job thread. */
fn_store *fn_batch_reader(fn_batch *b);

/* Why the job fails (when a callback returns an fn_err). Job thread. */
void fn_batch_fail(fn_batch *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Item helpers: the reference (copied), and a failure (code NULL: fn_errname(err); msg copied).
 * 0 or FN_ERR_NOMEM. */
int fn_item_set_ref(fn_item *it, const char *ref);
int fn_item_fail(fn_item *it, int err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
