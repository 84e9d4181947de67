/* prefetch.h: a job's `prepare` stage run ahead of its workers (docs/design.md decision 60).
 *
 * A job type may split an item's work into `prepare` (what waits on the disk and the decoder:
 * reading a photo, decoding it) and `process` (the compute). With a prefetcher, a thread of the
 * job's own prepares the items the workers will take next, at most `ahead` of them beyond the
 * items already taken, while the workers compute; a worker that reaches an item nobody prepared
 * prepares it itself, and one that reaches an item being prepared waits for it. Every item is
 * prepared exactly once, before its process, whoever does it.
 *
 * Batches are published in the order their items are handed out (fn_prefetch_publish) and
 * withdrawn before their items are cleared (fn_prefetch_withdraw: it waits while the thread is
 * preparing one of them). All calls are thread-safe; fn_prefetch_take is the workers', the rest the
 * job's thread's. The prefetcher's mutex is never held across a prepare. */
#ifndef FN_JOBS_PREFETCH_H
#define FN_JOBS_PREFETCH_H

#include <stdatomic.h>
#include <stddef.h>

/* Prepares item i of a batch (the driver's wrapper around the type's `prepare`). */
typedef void (*fn_prep_fn)(size_t i, void *arg);

/* One batch's items as the prefetcher sees them. The owner zeroes it and sets n, claimed (the
 * counter the workers take items with: items below it are taken), fn and arg before publishing;
 * state is the prefetcher's (n bytes, grown by fn_prefetch_publish). */
typedef struct fn_prep_batch {
    size_t n;
    const _Atomic size_t *claimed;
    fn_prep_fn fn;
    void *arg;
    unsigned char *state; /* per item: free, being prepared, prepared, the worker's */
    size_t cap, scan;     /* state's size; the first index the thread has not looked at */
    int queued;
    struct fn_prep_batch *next;
} fn_prep_batch;

typedef struct fn_prefetch fn_prefetch;

/* Starts the thread. NULL when it could not be started (the workers then prepare every item). */
fn_prefetch *fn_prefetch_new(size_t ahead);
/* Stops and joins the thread (after the prepare it is running, if any). NULL is a no-op. */
void fn_prefetch_free(fn_prefetch *p);
/* Queues pb after the batches already queued. FN_ERR_NOMEM (nothing queued) if its state could
 * not grow. */
int fn_prefetch_publish(fn_prefetch *p, fn_prep_batch *pb);
/* Takes pb out of the queue; returns once the thread is not preparing any of its items. */
void fn_prefetch_withdraw(fn_prefetch *p, fn_prep_batch *pb);
/* A worker took item i of pb (after raising pb's claimed counter past it): 1 when the worker must
 * prepare it itself, 0 when it is prepared (waits while the thread prepares it). */
int fn_prefetch_take(fn_prefetch *p, fn_prep_batch *pb, size_t i);
/* Items the thread prepared, and items the workers had to prepare themselves (the driver's
 * debug log line at the job's end). */
void fn_prefetch_counts(fn_prefetch *p, size_t *by_thread, size_t *by_workers);

#endif
