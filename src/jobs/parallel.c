/* parallel.c: fn_job_parallel_for, a parallel map over idle workers (docs/design.md decision 8).
 *
 * The job's own thread publishes a task and works on it; idle worker threads that find no runnable
 * job join it (fn_par_help_locked) and take items with an atomic counter. The total number of
 * threads on a task is at most fn_job_parallelism() = the engine's worker threads (which never
 * exceed workers.cpu_max), the job's own thread included. Helpers take slots 1..; the job's thread
 * is slot 0. Queued jobs win over helping: a worker helps only when it has nothing to pick, so
 * interactive work takes workers back at the next item. */
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

/* Called by an idle worker with e->mu held; returns 1 if it helped (mu is held again on return). */
int fn_par_help_locked(fn_engine *e)
{
    for (fn_ptask *t = e->tasks; t; t = t->next_task) {
        if (t->helpers_joined >= t->max_helpers || atomic_load(&t->next) >= t->n) continue;
        int slot = 1 + t->helpers_joined++;
        t->helpers_active++;
        e->helping++;
        pthread_mutex_unlock(&e->mu);
        work(t, slot);
        pthread_mutex_lock(&e->mu);
        e->helping--;
        t->helpers_active--;
        pthread_cond_broadcast(&e->done_cv);
        return 1;
    }
    return 0;
}

int fn_job_parallel_for(fn_job_ctx *ctx, size_t n, fn_parallel_fn fn, void *arg)
{
    if (!fn) return fn_eng_fail(FN_ERR_INVALID, "parallel_for needs a function");
    if (n == 0) return 0;
    fn_engine *e = ctx->e;
    int par = fn_job_parallelism(ctx);
    fn_ptask t = {0};
    t.n = n;
    atomic_store(&t.next, 0);
    t.fn = fn;
    t.arg = arg;
    t.max_helpers = par - 1;
    if (t.max_helpers > 0 && n > 1) {
        pthread_mutex_lock(&e->mu);
        t.next_task = e->tasks;
        e->tasks = &t;
        pthread_cond_broadcast(&e->work_cv);
        pthread_mutex_unlock(&e->mu);
    }
    work(&t, 0);
    if (t.max_helpers > 0 && n > 1) {
        pthread_mutex_lock(&e->mu);
        for (fn_ptask **p = &e->tasks; *p; p = &(*p)->next_task)
            if (*p == &t) {
                *p = t.next_task;
                break;
            }
        while (t.helpers_active > 0)
            pthread_cond_wait(&e->done_cv, &e->mu);
        pthread_mutex_unlock(&e->mu);
    }
    return 0;
}
