/* parallel.c: fn_job_parallel_for, a parallel map over idle workers (docs/design.md decision 8).
 *
 * The job's own thread publishes a task and works on it; idle worker threads that find no runnable
 * job join it (fn_par_help_locked) and take items with an atomic counter. The total number of
 * threads on a task is at most fn_job_parallelism() = the engine's worker threads (which never
 * exceed workers.cpu_max), the job's own thread included. Helpers take slots 1..; the job's thread
 * is slot 0. Queued jobs win over helping: a worker helps only when it has nothing to pick, so
 * interactive work takes workers back at the next item. A task can also be started and finished
 * apart (fn_par_start ... fn_par_end: the batch driver's overlap), the job's thread doing other
 * work between; two tasks of one job may then run at once, and their helpers take slots from the
 * job's one `busy` array so that a slot is never used by two threads. */
#include <stdlib.h>

#include "jobs/internal.h"

int fn_job_parallelism(const fn_job_ctx *ctx)
{
    fn_engine *e = ctx->e;
    /* The planned worker count, not the threads started so far: it is fixed before the first
     * worker starts, so a handler that sizes per-slot scratch from it never sees it grow. */
    int n = e->n_workers_alloc;
    if (n > ctx->e->cfg.workers_cpu_max) n = ctx->e->cfg.workers_cpu_max;
    return n > 0 ? n : 1;
}

static void work(fn_ptask *t, int slot)
{
    for (;;) {
        size_t i = atomic_fetch_add(&t->next, 1);
        if (i >= t->n) break;
        t->fn(i, slot, t->arg);
    }
}

/* A free slot of t's job for a helper (under e->mu), or -1. */
static int take_slot(fn_ptask *t)
{
    if (!t->busy) return t->helpers_joined < t->max_helpers ? 1 + t->helpers_joined : -1;
    for (int i = 1; i < t->n_slots; i++)
        if (!t->busy[i]) return i;
    return -1;
}

/* Called by an idle worker with e->mu held; returns 1 if it helped (mu is held again on return). */
int fn_par_help_locked(fn_engine *e)
{
    for (fn_ptask *t = e->tasks; t; t = t->next_task) {
        if (atomic_load(&t->next) >= t->n) continue;
        int slot = take_slot(t);
        if (slot < 0) continue;
        t->helpers_joined++;
        if (t->busy) t->busy[slot] = 1;
        t->helpers_active++;
        e->helping++;
        pthread_mutex_unlock(&e->mu);
        work(t, slot);
        pthread_mutex_lock(&e->mu);
        e->helping--;
        t->helpers_active--;
        if (t->busy) t->busy[slot] = 0;
        pthread_cond_broadcast(&e->done_cv);
        return 1;
    }
    return 0;
}

void fn_par_start(fn_job_ctx *ctx, fn_ptask *t)
{
    fn_engine *e = ctx->e;
    atomic_store(&t->next, 0);
    t->helpers_joined = t->helpers_active = 0;
    t->max_helpers = t->n_slots - 1;
    t->published = t->n > 0 && t->max_helpers > 0;
    if (!t->published) return;
    pthread_mutex_lock(&e->mu);
    /* At the end of the list: helpers take the tasks' items in the order they were published
     * (the batch driver's running batch before the next). */
    t->next_task = NULL;
    fn_ptask **p = &e->tasks;
    while (*p)
        p = &(*p)->next_task;
    *p = t;
    pthread_cond_broadcast(&e->work_cv);
    pthread_mutex_unlock(&e->mu);
}

int fn_par_step(fn_ptask *t)
{
    size_t i = atomic_fetch_add(&t->next, 1);
    if (i >= t->n) return 0;
    t->fn(i, 0, t->arg);
    return 1;
}

int fn_par_done(fn_engine *e, fn_ptask *t)
{
    if (atomic_load(&t->next) < t->n) return 0;
    if (!t->published) return 1;
    pthread_mutex_lock(&e->mu);
    int done = t->helpers_active == 0;
    pthread_mutex_unlock(&e->mu);
    return done;
}

void fn_par_wait(fn_engine *e, fn_ptask *t)
{
    while (fn_par_step(t))
        ;
    if (!t->published) return;
    pthread_mutex_lock(&e->mu);
    while (t->helpers_active > 0)
        pthread_cond_wait(&e->done_cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
}

void fn_par_end(fn_engine *e, fn_ptask *t)
{
    if (!t->published) return;
    pthread_mutex_lock(&e->mu);
    for (fn_ptask **p = &e->tasks; *p; p = &(*p)->next_task)
        if (*p == t) {
            *p = t->next_task;
            break;
        }
    while (t->helpers_active > 0) /* (none when it was done) */
        pthread_cond_wait(&e->done_cv, &e->mu);
    t->published = 0;
    pthread_mutex_unlock(&e->mu);
}

void fn_par_abandon(fn_engine *e, fn_ptask *t)
{
    atomic_store(&t->next, t->n);
    fn_par_end(e, t);
}

int fn_job_parallel_for(fn_job_ctx *ctx, size_t n, fn_parallel_fn fn, void *arg)
{
    if (!fn) return fn_eng_fail(FN_ERR_INVALID, "parallel_for needs a function");
    if (n == 0) return 0;
    if (n == 1) { /* nothing to share */
        fn(0, 0, arg);
        return 0;
    }
    fn_ptask t = {.n = n, .fn = fn, .arg = arg, .n_slots = fn_job_parallelism(ctx)};
    fn_par_start(ctx, &t);
    fn_par_wait(ctx->e, &t);
    fn_par_end(ctx->e, &t);
    return 0;
}
