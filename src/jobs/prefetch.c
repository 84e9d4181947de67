/* prefetch.c: the thread that prepares a job's items ahead of its workers (prefetch.h).
 *
 * What must stay true: every state change of an item happens under mu, so an item is prepared
 * once (free -> being prepared by the thread, or free -> the worker's); the thread prepares only
 * items of a queued batch, and a batch leaves the queue only under mu and while none of its items
 * is being prepared; mu is released around each prepare. */
#include "jobs/prefetch.h"

#include <pthread.h>
#include <stdlib.h>

#include "facenames/error.h"

enum { FREE = 0, PREPARING = 1, PREPARED = 2, WORKERS = 3 };

struct fn_prefetch {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* any change: a batch queued or withdrawn, an item taken or prepared */
    pthread_t thread;
    size_t ahead;
    fn_prep_batch *head; /* the queue, in the order the workers take the batches */
    fn_prep_batch *busy; /* the batch the thread is preparing an item of, or NULL */
    int stop;
    size_t by_thread, by_workers;
};

/* The next item the thread may prepare (under mu): a free one of the first batch, within `ahead`
 * items of those the workers took. NULL when there is none yet. */
static fn_prep_batch *next_item(fn_prefetch *p, size_t *i)
{
    for (fn_prep_batch *pb = p->head; pb; pb = pb->next) {
        size_t claimed = atomic_load(pb->claimed);
        while (pb->scan < pb->n && pb->state[pb->scan] != FREE)
            pb->scan++;
        if (pb->scan < pb->n) {
            if (pb->scan >= claimed + p->ahead) return NULL; /* far enough ahead */
            *i = pb->scan++;
            return pb;
        }
        /* every item of pb is taken or prepared: look at the batch after it, which the workers
         * will take once pb's items are handed out (not more than `ahead` of them either) */
        size_t left = claimed < pb->n ? pb->n - claimed : 0;
        if (left >= p->ahead) return NULL;
    }
    return NULL;
}

static void *thread_main(void *arg)
{
    fn_prefetch *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        size_t i = 0;
        fn_prep_batch *pb = next_item(p, &i);
        if (!pb) {
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        pb->state[i] = PREPARING;
        p->busy = pb;
        pthread_mutex_unlock(&p->mu);
        pb->fn(i, pb->arg);
        pthread_mutex_lock(&p->mu);
        pb->state[i] = PREPARED;
        p->busy = NULL;
        p->by_thread++;
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

fn_prefetch *fn_prefetch_new(size_t ahead)
{
    fn_prefetch *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->ahead = ahead ? ahead : 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (pthread_create(&p->thread, NULL, thread_main, p) != 0) {
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
    return p;
}

void fn_prefetch_free(fn_prefetch *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int fn_prefetch_publish(fn_prefetch *p, fn_prep_batch *pb)
{
    if (pb->n > pb->cap) {
        unsigned char *s = realloc(pb->state, pb->n);
        if (!s) return FN_ERR_NOMEM;
        pb->state = s;
        pb->cap = pb->n;
    }
    for (size_t i = 0; i < pb->n; i++)
        pb->state[i] = FREE;
    pb->scan = 0;
    pb->next = NULL;
    pthread_mutex_lock(&p->mu);
    fn_prep_batch **q = &p->head;
    while (*q)
        q = &(*q)->next;
    *q = pb;
    pb->queued = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

void fn_prefetch_withdraw(fn_prefetch *p, fn_prep_batch *pb)
{
    if (!p || !pb->queued) return;
    pthread_mutex_lock(&p->mu);
    while (p->busy == pb)
        pthread_cond_wait(&p->cv, &p->mu);
    for (fn_prep_batch **q = &p->head; *q; q = &(*q)->next)
        if (*q == pb) {
            *q = pb->next;
            break;
        }
    pb->queued = 0;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int fn_prefetch_take(fn_prefetch *p, fn_prep_batch *pb, size_t i)
{
    pthread_mutex_lock(&p->mu);
    int mine = pb->state[i] == FREE;
    if (mine) {
        pb->state[i] = WORKERS;
        p->by_workers++;
    }
    while (pb->state[i] == PREPARING)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_cond_broadcast(&p->cv); /* the workers moved on: the thread may go further ahead */
    pthread_mutex_unlock(&p->mu);
    return mine;
}

void fn_prefetch_counts(fn_prefetch *p, size_t *by_thread, size_t *by_workers)
{
    pthread_mutex_lock(&p->mu);
    *by_thread = p->by_thread;
    *by_workers = p->by_workers;
    pthread_mutex_unlock(&p->mu);
}
