/* sched.c: the scheduler and the worker loop.
 *
 * DESIGN. The database is the queue: inside its write transaction a worker reads, for each lane
 * and each type it has a handler for, the oldest queued job that fits the free device slots and
 * memory (one range of a partial index on queued jobs by lane, type and id, so jobs of other
 * types and jobs waiting for capacity block nothing), chooses the best (lane lifted by aging,
 * then the longest waiting), registers it in the running table (a reservation, so no local
 * worker picks it too and its capacity is taken) and claims it with `UPDATE ... WHERE
 * state=queued`, which has exactly one winner across processes. Jobs enqueued by other processes
 * are found without extra machinery; idle workers look again every 250 ms. e->mu is held only
 * over memory, never while waiting for the write lock or reading the database.
 *
 * One write transaction per loop iteration: it writes the ends of the jobs the worker just ran
 * (state, final progress, errors, log line) and claims the next ones; the events reporting those
 * ends are queued only after it commits, so a reported completion is durable. Ends that cannot be
 * written (database locked or full) are kept and written by a later iteration; an end whose row
 * another process has taken over is dropped unreported (fencing). Quick job types
 * (under FN_QUICK_NS on average, holding no device or memory share) are claimed up to FN_PREFETCH
 * at a time; a claimed job asked to stop before its turn is given back without running.
 *
 * Preemption: when an interactive job is queued and no worker is idle, the lowest-priority
 * running job gets FN_STOP_YIELD; among equals, the one whose last batch commit is oldest, as it
 * is likely the nearest to the end of its current batch (so the wait is the shortest); it commits,
 * returns FN_ERR_YIELDED and goes back to queued under the same id. One yield is outstanding at a
 * time. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs/internal.h"
#include "store/jobs_store.h"
#include "util/clock.h"
#include "util/log.h"

/* ---- scheduling
 * ---------------------------------------------------------------------------------- */

int fn_eng_is_running_locked(fn_engine *e, fn_job_id id)
{
    for (size_t i = 0; i < e->n_running; i++)
        if (e->running[i]->id == id) return 1;
    return 0;
}

typedef struct pick {
    fn_js_queued q;
    const fn_handler_entry *h;
    int gpu, mem;
    int impossible; /* can never run under the caps: fail it with a reason */
    /* More jobs of the same lane and quick type to claim in the same transaction. */
    fn_js_queued extra[FN_PREFETCH - 1];
    int n_extra;
} pick;

/* The device slots and memory free now, and the caps (the handler defaults are filled per type). */
static fn_js_fit free_capacity(fn_engine *e)
{
    fn_js_fit f = {0, 0, 0, e->cfg.workers_gpu_max, 0, e->cfg.workers_mem_max_mb};
    pthread_mutex_lock(&e->mu);
    f.gpu_free = e->cfg.workers_gpu_max - e->gpu_used;
    f.mem_free = e->cfg.workers_mem_max_mb > 0 ? e->cfg.workers_mem_max_mb - e->mem_used : 0;
    pthread_mutex_unlock(&e->mu);
    return f;
}

/* The first job of lane `lane` and handler h's type that fits (`fit`) and is not already running
 * here, at page[*at], with the rest of its page for prefetching. Pages on past jobs registered as
 * running here whose rows still say queued (a reservation being given back). Returns 1, 0 for
 * none, -1 on a database error. */
static int type_head(fn_engine *e, fn_store *s, int lane, const fn_handler_entry *h, fn_js_fit fit,
                     fn_js_queued *page, int *n_page, int *at)
{
    fit.gpu_default = h->h.gpu_slots;
    fit.mem_default = h->h.mem_mb;
    int64_t after = 0;
    for (;;) {
        int n = 0;
        if (fn_js_lane_type_heads(s, lane, h->type, after, &fit, page, FN_PREFETCH, &n)) return -1;
        *n_page = n;
        pthread_mutex_lock(&e->mu);
        int i = 0;
        while (i < n && fn_eng_is_running_locked(e, page[i].id))
            i++;
        pthread_mutex_unlock(&e->mu);
        if (i < n) {
            *at = i;
            return 1;
        }
        if (n < FN_PREFETCH) return 0;
        after = page[n - 1].id;
    }
}

int fn_eng_lane_has_runnable(fn_engine *e, fn_store *s, int lane)
{
    fn_js_fit base = free_capacity(e);
    fn_js_queued page[FN_PREFETCH];
    for (size_t k = 0; k < e->n_handlers; k++) {
        const fn_handler_entry *h = &e->handlers[k];
        int n = 0, at = 0;
        int r = type_head(e, s, lane, h, base, page, &n, &at);
        if (r < 0) FN_LOG(FN_LOG_WARN, "%s", fn_store_errmsg(s));
        if (r > 0) return 1;
    }
    return 0;
}

/* Chooses the next job for a worker. Call inside the worker's write transaction (so no other
 * local worker claims meanwhile: they all queue on the engine's write lock) and without e->mu,
 * which it takes only to read the free capacity and the running table. Returns 1 with *p filled,
 * 0 if none.
 *
 * Each lane is read only for the types this process has handlers for, one index range per type,
 * and only for jobs that fit the free device slots and memory (or can never fit, to be failed):
 * however many queued jobs of other types, or waiting for capacity, come first, they cost nothing
 * and block nothing. A lane's candidate is its oldest such job (FIFO within a lane); across
 * lanes the one with the highest lane lifted by aging wins, ties to the longest waiting.
 *
 * Tiny jobs cost little more than their transactions, so for a type whose jobs are quick (and
 * hold no device or memory share) up to FN_PREFETCH jobs of the chosen lane and type are taken at
 * once: one transaction then ends the previous batch and claims the next. */
static int pick_next(fn_engine *e, fn_store *s, pick *p, int prefetch)
{
    fn_js_fit base = free_capacity(e);
    int64_t now = fn_wall_ms();
    int found = 0;
    double best_eff = -1;
    fn_js_queued best_page[FN_PREFETCH], lane_page[FN_PREFETCH], page[FN_PREFETCH];
    int best_n = 0, best_at = 0;
    for (int lane = FN_PRIO_INTERACTIVE; lane >= FN_PRIO_BACKGROUND; lane--) {
        const fn_handler_entry *lane_h = NULL;
        int lane_n = 0, lane_at = 0;
        for (size_t k = 0; k < e->n_handlers; k++) {
            const fn_handler_entry *h = &e->handlers[k];
            int n = 0, at = 0;
            int r = type_head(e, s, lane, h, base, page, &n, &at);
            if (r < 0) {
                FN_LOG(FN_LOG_WARN, "%s", fn_store_errmsg(s));
                return 0;
            }
            if (r == 0 || (lane_h && page[at].id > lane_page[lane_at].id)) continue;
            lane_h = h;
            memcpy(lane_page, page, sizeof page[0] * (size_t)n);
            lane_n = n;
            lane_at = at;
        }
        if (!lane_h) continue;
        const fn_js_queued *q = &lane_page[lane_at];
        int gpu = q->gpu_slots < 0 ? lane_h->h.gpu_slots : q->gpu_slots;
        int mem = q->mem_mb < 0 ? lane_h->h.mem_mb : q->mem_mb;
        int impossible = gpu > e->cfg.workers_gpu_max ||
                         (e->cfg.workers_mem_max_mb > 0 && mem > e->cfg.workers_mem_max_mb);
        double eff = lane + (double)((now - q->queued_at) / e->cfg.jobs_aging_ms);
        if (eff > FN_PRIO_INTERACTIVE) eff = FN_PRIO_INTERACTIVE;
        if (impossible) eff = 3; /* fail it at once rather than let it block anything */
        if (!found || eff > best_eff || (eff == best_eff && q->queued_at < p->q.queued_at)) {
            found = 1;
            best_eff = eff;
            p->q = *q;
            p->h = lane_h;
            p->gpu = gpu;
            p->mem = mem;
            p->impossible = impossible;
            memcpy(best_page, lane_page, sizeof page[0] * (size_t)lane_n);
            best_n = lane_n;
            best_at = lane_at;
        }
    }
    p->n_extra = 0;
    if (!found || !prefetch || p->impossible || p->gpu || p->mem ||
        atomic_load(&((fn_handler_entry *)p->h)->avg_run_ns) >= FN_QUICK_NS)
        return found;
    for (int i = best_at + 1; i < best_n && p->n_extra < FN_PREFETCH - 1; i++) {
        const fn_js_queued *q = &best_page[i];
        if (q->gpu_slots > 0 || q->mem_mb > 0) continue;
        if ((q->gpu_slots < 0 && p->h->h.gpu_slots) || (q->mem_mb < 0 && p->h->h.mem_mb)) continue;
        p->extra[p->n_extra++] = *q; /* one running here already is left out when reserving */
    }
    return found;
}

static int add_running_locked(fn_engine *e, fn_job_ctx *ctx)
{
    if (e->n_running == e->cap_running) {
        size_t cap = e->cap_running ? e->cap_running * 2 : 8;
        fn_job_ctx **r = realloc(e->running, cap * sizeof *r);
        if (!r) return FN_ERR_NOMEM;
        e->running = r;
        e->cap_running = cap;
    }
    e->running[e->n_running++] = ctx;
    return 0;
}

static void remove_running_locked(fn_engine *e, fn_job_ctx *ctx)
{
    for (size_t i = 0; i < e->n_running; i++)
        if (e->running[i] == ctx) {
            e->running[i] = e->running[--e->n_running];
            return;
        }
}

/* A worker helping a parallel_for is not idle: it picks queued work only when its share of the
 * map ends, so an interactive job would wait for the whole map without a yield. */
int fn_eng_idle_workers_locked(fn_engine *e)
{
    int idle = e->n_threads - e->busy - e->helping;
    return idle > 0 ? idle : 0;
}

void fn_eng_maybe_preempt_locked(fn_engine *e)
{
    if (fn_eng_idle_workers_locked(e) > 0) return;
    fn_job_ctx *victim = NULL;
    for (size_t i = 0; i < e->n_running; i++) {
        fn_job_ctx *c = e->running[i];
        int st = atomic_load(&c->stop);
        if (st == FN_STOP_YIELD) return; /* one yield at a time */
        if (st != FN_STOP_NONE || c->priority >= FN_PRIO_INTERACTIVE) continue;
        if (!victim || c->priority < victim->priority ||
            (c->priority == victim->priority &&
             atomic_load(&c->last_commit_ns) < atomic_load(&victim->last_commit_ns)))
            victim = c;
    }
    if (victim) {
        int none = FN_STOP_NONE;
        atomic_compare_exchange_strong(&victim->stop, &none, FN_STOP_YIELD);
    }
}

void fn_eng_notify_enqueued(fn_engine *e, int interactive)
{
    pthread_mutex_lock(&e->mu);
    if (interactive) fn_eng_maybe_preempt_locked(e);
    pthread_cond_signal(&e->work_cv);
    pthread_mutex_unlock(&e->mu);
}

int fn_engine_request_yield(fn_engine *e, fn_job_id id)
{
    int code = FN_ERR_NOT_FOUND;
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < e->n_running; i++)
        if (e->running[i]->id == id) {
            int none = FN_STOP_NONE;
            atomic_compare_exchange_strong(&e->running[i]->stop, &none, FN_STOP_YIELD);
            code = FN_OK;
        }
    pthread_mutex_unlock(&e->mu);
    return code;
}

/* ---- running jobs
 * -------------------------------------------------------------------------------- */

/* A job whose handler has returned (or that was given back before it started) and whose end is
 * not yet written. A worker writes the ends of its batch in the same transaction as its next
 * claim (one write transaction per loop iteration), or alone when there is nothing to claim;
 * either way before any event reports them. */
typedef struct fn_end {
    fn_job_ctx *ctx;
    int state;
    const char *reason;
    char *progress;
    int lost;  /* the row is no longer this process's (recovered elsewhere): nothing to report */
    int split; /* the run split its job (fn_job_split): its end is its shards' */
    fn_js_settled settled; /* a shard's end: what its split job became */
    char line[900];
} fn_end;

static void ctx_free(fn_job_ctx *ctx)
{
    if (!ctx) return;
    free(ctx->type);
    free(ctx->payload);
    free(ctx->checkpoint);
    fn_ctx_free_pending(ctx);
    free(ctx->errs);
    free(ctx->audits);
    free(ctx->next_checkpoint);
    fn_js_errors_free(ctx->inherited, ctx->n_inherited);
    if (ctx->restored) json_decref((json_t *)ctx->restored);
    free(ctx);
}

/* A job whose row another process took over (it recovered the job after this one's heartbeat
 * went silent) is its job now: this run's end writes nothing (no errors, no log line) and is
 * reported nowhere, rather than "completing" a job that is running elsewhere. */
static int write_end_tx(fn_store *s, fn_end *end, int64_t now)
{
    fn_job_ctx *ctx = end->ctx;
    /* A split job's run wrote its split and nothing else: its shards end it. */
    if (ctx->sharded) {
        end->split = 1;
        return 0;
    }
    fn_js_settled_clear(&end->settled);
    int code = fn_js_finish(s, ctx->id, ctx->e->owner, end->state, now, end->reason, end->progress);
    end->lost = code == FN_ERR_STATE;
    if (end->lost) return 0;
    for (size_t i = 0; !code && end->state == FN_JOB_COMPLETED && i < ctx->n_errs; i++)
        code = fn_js_add_error(s, fn_ctx_error_job(ctx), ctx->errs[i].item, ctx->errs[i].code,
                               ctx->errs[i].message, (int)ctx->errs[i].res);
    for (size_t i = 0; !code && end->state == FN_JOB_COMPLETED && i < ctx->n_audits; i++)
        code = fn_js_add_audit(s, ctx->id, now, ctx->audits[i].action, ctx->audits[i].detail);
    if (!code) code = fn_js_log_add(s, ctx->id, now, end->line);
    /* A shard that ends (or yields: its progress moved) updates its split job, and the last one
     * ends it, in the same transaction. */
    if (!code && ctx->shard_of) code = fn_js_shard_settle(s, ctx->shard_of, now, &end->settled);
    return code;
}

static int write_ends_tx(fn_store *s, fn_end *ends, int n, int64_t now)
{
    int code = 0;
    for (int i = 0; !code && i < n; i++)
        code = write_end_tx(s, &ends[i], now);
    return code;
}

/* After the ends are committed: the log file, each final snapshot and state event (never
 * dropped), then the ctxs are released. */
static void ends_published(fn_engine *e, fn_end *ends, int n)
{
    for (int i = 0; i < n; i++) {
        fn_end *end = &ends[i];
        fn_job_ctx *ctx = end->ctx;
        if (end->split) {
            /* Its split was logged and told when it committed (fn_job_split). */
            free(end->progress);
            end->progress = NULL;
            ctx_free(ctx);
            end->ctx = NULL;
            continue;
        }
        if (end->lost) {
            FN_LOG(FN_LOG_WARN,
                   "job %lld: recovered by another process while it ran here; this run's end "
                   "(%s) is dropped",
                   (long long)ctx->id, fn_job_state_name((fn_job_state)end->state));
            fn_js_settled_clear(&end->settled);
            free(end->progress);
            end->progress = NULL;
            ctx_free(ctx);
            end->ctx = NULL;
            continue;
        }
        fn_joblog_file(e, ctx->id, ctx->type, end->line);
        fn_evq_progress(&e->ev, ctx, end->progress ? end->progress : fn_ctx_progress_json(ctx), 1);
        end->progress = NULL;
        fn_evq_push_state(&e->ev, ctx->id, (fn_job_state)end->state);
        if (end->settled.touched) fn_eng_settled(e, ctx->shard_of, &end->settled);
        ctx_free(ctx);
        end->ctx = NULL;
    }
}

/* Writes ends alone, retrying for a while (the database may be locked). Returns the last code. */
static int write_ends_alone(fn_store *s, fn_end *ends, int n)
{
    int code = 0;
    for (int attempt = 0; attempt < 5; attempt++) {
        fn_store_tx *tx;
        code = fn_store_begin_rows(s, &tx);
        if (!code) {
            code = write_ends_tx(s, ends, n, fn_wall_ms());
            if (!code)
                code = fn_store_commit(tx);
            else
                fn_store_rollback(tx);
        }
        if (!code) break;
        FN_LOG(FN_LOG_WARN, "job %lld: %s", (long long)ends[0].ctx->id, fn_store_errmsg(s));
        struct timespec ts = {0, 50 * 1000000L * (attempt + 1)};
        nanosleep(&ts, NULL);
    }
    return code;
}

/* Gives up on ends for good (only at close): their jobs stay "running" under this owner, whose
 * row close then removes, so the next open recovers them. */
static void drop_ends(fn_store *s, fn_end *ends, int n)
{
    for (int i = 0; i < n; i++) {
        FN_LOG(FN_LOG_ERROR,
               "job %lld: could not record its end: %s; it is recovered when the library is "
               "next opened",
               (long long)ends[i].ctx->id, fn_store_errmsg(s));
        free(ends[i].progress);
        ends[i].progress = NULL;
        fn_js_settled_clear(&ends[i].settled);
        ctx_free(ends[i].ctx);
        ends[i].ctx = NULL;
    }
}

/* Keeps ends whose write failed for a later try: the next loop iteration of any worker (idle ones
 * look again every 250 ms) or the next fn_engine_run_pending writes them with its claim. Their jobs
 * stay "running" under this live owner meanwhile, so dropping them would leave fn_job_wait waiting
 * forever; they are reported only once written. */
static void defer_ends(fn_engine *e, fn_store *s, fn_end *ends, int n)
{
    pthread_mutex_lock(&e->mu);
    if (e->n_unwritten + n > e->cap_unwritten) {
        int cap = e->cap_unwritten ? e->cap_unwritten * 2 : FN_PREFETCH;
        while (cap < e->n_unwritten + n)
            cap *= 2;
        fn_end *u = realloc(e->unwritten, (size_t)cap * sizeof *u);
        if (!u) {
            pthread_mutex_unlock(&e->mu);
            drop_ends(s, ends, n);
            return;
        }
        e->unwritten = u;
        e->cap_unwritten = cap;
    }
    memcpy(e->unwritten + e->n_unwritten, ends, (size_t)n * sizeof *ends);
    e->n_unwritten += n;
    pthread_cond_signal(&e->work_cv);
    pthread_mutex_unlock(&e->mu);
}

/* Writes ends alone (nothing to claim, or the joint transaction failed); keeps them for a later
 * try if the database keeps refusing. */
static void flush_ends(fn_engine *e, fn_store *s, fn_end *ends, int n)
{
    if (n == 0) return;
    if (write_ends_alone(s, ends, n)) {
        FN_LOG(FN_LOG_WARN, "%d job end(s) not recorded yet (%s); kept to retry", n,
               fn_store_errmsg(s));
        defer_ends(e, s, ends, n);
        return;
    }
    ends_published(e, ends, n);
}

void fn_eng_flush_unwritten(fn_engine *e, fn_store *s)
{
    pthread_mutex_lock(&e->mu);
    fn_end *ends = e->unwritten;
    int n = e->n_unwritten;
    e->unwritten = NULL;
    e->n_unwritten = e->cap_unwritten = 0;
    pthread_mutex_unlock(&e->mu);
    if (n > 0 && s && write_ends_alone(s, ends, n) == 0)
        ends_published(e, ends, n);
    else
        drop_ends(s, ends, n);
    free(ends);
}

static void fmt_rate(char *buf, size_t len, int64_t items, double secs)
{
    if (secs > 0)
        snprintf(buf, len, "%lld items, %.1f items/s", (long long)items, (double)items / secs);
    else
        snprintf(buf, len, "%lld items", (long long)items);
}

/* Turns a handler's return into the end to write. `ran` = 0 for a claimed job given back (cancel
 * or yield) before its handler started. */
static void make_end(fn_job_ctx *ctx, int rc, int ran, fn_end *end)
{
    int stop = atomic_load(&ctx->stop);
    double run_s = (double)(fn_mono_ns() - (ctx->run_t0 ? ctx->run_t0 : ctx->run_started_ns)) / 1e9;
    int64_t items = fn_ctx_items(ctx) - ctx->items_at_start;
    char rate[96];
    fmt_rate(rate, sizeof rate, items, run_s);
    memset(end, 0, sizeof *end);
    end->ctx = ctx;
    if (rc == 0) {
        end->state = FN_JOB_COMPLETED;
        end->progress = fn_ctx_progress_json(ctx);
        double total_s =
            ctx->started_at >= 0 ? (double)(fn_wall_ms() - ctx->started_at) / 1e3 : run_s;
        snprintf(end->line, sizeof end->line,
                 "finish: completed in %.3f s (this run %.3f s), %s, %d item error(s) "
                 "(pending %d, skip %d, retry %d)",
                 total_s, run_s, rate,
                 ctx->errs_by_res[0] + ctx->errs_by_res[1] + ctx->errs_by_res[2],
                 ctx->errs_by_res[0], ctx->errs_by_res[1], ctx->errs_by_res[2]);
    } else if (rc == FN_ERR_CANCELLED || (rc == FN_ERR_YIELDED && stop == FN_STOP_CANCEL)) {
        end->state = FN_JOB_CANCELLED;
        snprintf(end->line, sizeof end->line,
                 "cancel: cancelled after %.3f s (this run), %s; checkpoint kept", run_s, rate);
    } else if (rc == FN_ERR_YIELDED) {
        end->state = FN_JOB_QUEUED;
        if (ran)
            snprintf(end->line, sizeof end->line,
                     "yield: gave its worker back after %.3f s, %s; back to queued, continues "
                     "from its checkpoint",
                     run_s, rate);
        else
            snprintf(end->line, sizeof end->line,
                     "yield: back to queued before it started (its worker was needed)");
    } else {
        end->state = FN_JOB_FAILED;
        if (!ctx->fail_reason[0])
            snprintf(ctx->fail_reason, sizeof ctx->fail_reason, "%s (%s)", fn_strerror(rc),
                     fn_errname(rc));
        end->reason = ctx->fail_reason;
        snprintf(end->line, sizeof end->line, "fail: failed after %.3f s (this run), %s: %s", run_s,
                 rate, ctx->fail_reason);
    }
}

/* Releases the running entries and caps of a finished batch. Call with e->mu held. */
static void release_locked(fn_engine *e, fn_end *ends, int n)
{
    if (n == 0) return;
    for (int i = 0; i < n; i++) {
        fn_job_ctx *ctx = ends[i].ctx;
        remove_running_locked(e, ctx);
        e->gpu_used -= ctx->gpu_slots;
        e->mem_used -= ctx->mem_mb;
    }
    e->busy--;
    pthread_cond_broadcast(&e->done_cv);
    /* Capacity was freed: another worker may now admit a job it had to skip. */
    pthread_cond_signal(&e->work_cv);
}

/* Sets up the ctx of a claimed job from what the claim returned. */
static void ctx_fill(fn_worker *w, fn_job_ctx *ctx, fn_js_claim *c, int64_t now)
{
    fn_store *s = w->store;
    ctx->type = c->type;
    ctx->payload = c->payload;
    ctx->checkpoint = c->checkpoint;
    c->type = c->payload = c->checkpoint = NULL;
    ctx->started_at = c->started_at;
    ctx->created_at = c->created_at;
    fn_ctx_restore(ctx, c->progress);
    ctx->items_at_start = fn_ctx_items(ctx);
    if (c->cancel_requested) atomic_store(&ctx->stop, FN_STOP_CANCEL);
    ctx->retry_only = c->retry_only;
    ctx->parent = c->parent;
    ctx->shard_of = c->shard_of;
    ctx->n_retry_items = -1;
    ctx->retry_page_seq = -1;
    /* Only a continued job (resumed, or run before) can have errors already. */
    if (c->n_errors > 0 && fn_js_errors(s, ctx->id, &ctx->inherited, &ctx->n_inherited))
        FN_LOG(FN_LOG_WARN, "job %lld: %s", (long long)ctx->id, fn_store_errmsg(s));
}

/* Registers the picked jobs as running here (taking their device slots and memory) before their
 * claim commits, so that no other local worker picks them and the capacity is taken by the time
 * the write lock passes on. Returns how many ctxs it wrote to res (the picked job first; their
 * queued_at times in queued_at), 0 if the pick no longer holds. Call with e->mu held. */
static int reserve_locked(fn_engine *e, fn_worker *w, const pick *p, fn_job_ctx **res,
                          int64_t *queued_at)
{
    if (fn_eng_is_running_locked(e, p->q.id)) return 0;
    if (p->gpu > 0 && e->gpu_used + p->gpu > e->cfg.workers_gpu_max) return 0;
    if (e->cfg.workers_mem_max_mb > 0 && p->mem > 0 &&
        e->mem_used + p->mem > e->cfg.workers_mem_max_mb)
        return 0;
    int n = 0;
    for (int k = 0; k <= p->n_extra; k++) {
        const fn_js_queued *q = k == 0 ? &p->q : &p->extra[k - 1];
        if (k > 0 && fn_eng_is_running_locked(e, q->id)) continue;
        fn_job_ctx *ctx = calloc(1, sizeof *ctx);
        if (!ctx || add_running_locked(e, ctx)) {
            free(ctx);
            break; /* out of memory: claim what is reserved (maybe nothing) */
        }
        ctx->e = e;
        ctx->w = w;
        ctx->id = q->id;
        ctx->priority = q->priority;
        ctx->gpu_slots = k == 0 ? p->gpu : 0;
        ctx->mem_mb = k == 0 ? p->mem : 0;
        ctx->run_started_ns = fn_mono_ns();
        atomic_store(&ctx->last_commit_ns, ctx->run_started_ns);
        e->gpu_used += ctx->gpu_slots;
        e->mem_used += ctx->mem_mb;
        queued_at[n] = q->queued_at;
        res[n++] = ctx;
    }
    if (n > 0) e->busy++;
    return n;
}

/* Undoes reserve_locked for one ctx (its claim failed or lost a race). Call with e->mu held. */
static void unreserve_locked(fn_engine *e, fn_job_ctx *ctx)
{
    remove_running_locked(e, ctx);
    e->gpu_used -= ctx->gpu_slots;
    e->mem_used -= ctx->mem_mb;
    ctx_free(ctx);
}

/* One loop iteration's transaction: writes the ends of the previous batch (and any ends an earlier
 * write could not record), picks the next job (and, for quick types, a few more of its lane) and
 * claims them. Writes the claimed jobs' ctxs (registered as running, caps taken) to out and
 * returns how many. The ends are published (or flushed alone, or kept for a later try) before
 * return and *n_own reset.
 *
 * e->mu is held only over memory: waiting for the write lock, the reads of the pick and the
 * writes happen without it, so a long transaction of another job never stalls cancel, enqueue or
 * parallel_for. Local workers cannot pick the same job because they pick inside their write
 * transactions, which the engine's write lock serialises, and the picked jobs are registered
 * as running (reserved) before the transaction commits. */
static int claim_next(fn_worker *w, fn_end *own, int *n_own, fn_job_ctx **out)
{
    fn_engine *e = w->e;
    fn_store *s = w->store;
    int n_mine = *n_own;
    *n_own = 0;
    w->impossible_seen = 0;
    pthread_mutex_lock(&e->mu);
    release_locked(e, own, n_mine);
    int stopping = e->stopping;
    fn_end *ends = own;
    int ne = n_mine;
    if (e->n_unwritten > 0) {
        fn_end *all = malloc((size_t)(n_mine + e->n_unwritten) * sizeof *all);
        if (all) {
            memcpy(all, own, (size_t)n_mine * sizeof *all);
            memcpy(all + n_mine, e->unwritten, (size_t)e->n_unwritten * sizeof *all);
            ne = n_mine + e->n_unwritten;
            e->n_unwritten = 0;
            ends = all;
        }
    }
    pthread_mutex_unlock(&e->mu);
    int kept = 0;
    fn_store_tx *tx;
    /* Rows only: a claim locks its job's row (SKIP LOCKED on PostgreSQL) and an end is fenced by
     * owner, so claims of different jobs by other workers and hosts do not wait for this one. */
    int code = stopping ? FN_ERR_STATE : fn_store_begin_rows(s, &tx);
    if (code) {
        if (!stopping) FN_LOG(FN_LOG_WARN, "%s", fn_store_errmsg(s));
        flush_ends(e, s, ends, ne);
        goto out;
    }
    int64_t now = fn_wall_ms();
    if ((code = write_ends_tx(s, ends, ne, now))) {
        fn_store_rollback(tx);
        flush_ends(e, s, ends, ne);
        goto out;
    }
    pick p;
    fn_job_ctx *res[FN_PREFETCH];
    fn_js_claim c[FN_PREFETCH];
    memset(c, 0, sizeof c);
    int claimed[FN_PREFETCH];
    int64_t queued_at[FN_PREFETCH];
    int nres = 0, impossible = 0;
    char line[400];
    line[0] = '\0';
    /* Inline mode runs one job at a time, in exact order: no prefetching there. */
    if (pick_next(e, s, &p, w->index >= 0)) {
        if (p.impossible) {
            impossible = 1;
        } else {
            pthread_mutex_lock(&e->mu);
            nres = reserve_locked(e, w, &p, res, queued_at);
            pthread_mutex_unlock(&e->mu);
        }
    }
    if (impossible) {
        int got = 0;
        code = fn_js_claim_job(s, p.q.id, e->owner, now, &c[0], &got);
        fn_js_claim_clear(&c[0]);
        if (!code && got) {
            snprintf(line, sizeof line,
                     "fail: needs %d accelerator slot(s) and %d MB but workers.gpu_max is %d "
                     "and workers.mem_max_mb is %d; raise them or lower what the job declares",
                     p.gpu, p.mem, e->cfg.workers_gpu_max, e->cfg.workers_mem_max_mb);
            code = fn_js_finish(s, p.q.id, e->owner, FN_JOB_FAILED, now, line + 6, NULL);
            if (!code) code = fn_js_log_add(s, p.q.id, now, line);
        }
        impossible = !code && got;
    }
    for (int k = 0; !code && k < nres; k++) {
        code = fn_js_claim_job(s, res[k]->id, e->owner, now, &c[k], &claimed[k]);
        if (code || !claimed[k]) continue;
        snprintf(line, sizeof line, "start: %s lane, waited %.3f s",
                 fn_priority_name((fn_priority)c[k].priority), (double)(now - queued_at[k]) / 1e3);
        code = fn_js_log_add(s, res[k]->id, now, line);
    }
    if (!code)
        code = fn_store_commit(tx);
    else
        fn_store_rollback(tx);
    if (code) {
        FN_LOG(FN_LOG_WARN, "%s", fn_store_errmsg(s));
        pthread_mutex_lock(&e->mu);
        for (int k = 0; k < nres; k++)
            unreserve_locked(e, res[k]);
        if (nres > 0) e->busy--;
        pthread_mutex_unlock(&e->mu);
        for (int k = 0; k < nres; k++)
            fn_js_claim_clear(&c[k]);
        flush_ends(e, s, ends, ne); /* the joint transaction failed: try the ends alone */
        goto out;
    }
    /* Jobs another process claimed first are not ours: undo their reservations. */
    int n_claimed = 0;
    for (int k = 0; k < nres; k++)
        n_claimed += claimed[k];
    if (n_claimed < nres) {
        pthread_mutex_lock(&e->mu);
        for (int k = 0; k < nres; k++)
            if (!claimed[k]) unreserve_locked(e, res[k]);
        if (n_claimed == 0) e->busy--;
        pthread_mutex_unlock(&e->mu);
    }
    ends_published(e, ends, ne);
    if (impossible) {
        fn_joblog_file(e, p.q.id, p.q.type, line);
        fn_evq_push_state(&e->ev, p.q.id, FN_JOB_FAILED);
        w->impossible_seen = 1;
    }
    for (int k = 0; k < nres; k++) {
        if (!claimed[k]) continue;
        char sline[160];
        snprintf(sline, sizeof sline, "start: %s lane, waited %.3f s",
                 fn_priority_name((fn_priority)c[k].priority), (double)(now - queued_at[k]) / 1e3);
        fn_joblog_file(e, res[k]->id, c[k].type, sline);
        ctx_fill(w, res[k], &c[k], now);
        fn_evq_push_state(&e->ev, res[k]->id, FN_JOB_RUNNING);
        out[kept++] = res[k];
    }
    for (int k = 0; k < nres; k++)
        fn_js_claim_clear(&c[k]);
out:
    if (ends != own) free(ends);
    return kept;
}

/* Runs a claimed batch in order; a job asked to stop before its turn is given back unrun. */
static void run_batch(fn_worker *w, fn_job_ctx **batch, int n, fn_end *ends, int *n_ends)
{
    fn_engine *e = w->e;
    for (int i = 0; i < n; i++) {
        fn_job_ctx *ctx = batch[i];
        int stop = atomic_load(&ctx->stop);
        if (stop != FN_STOP_NONE) {
            make_end(ctx, stop == FN_STOP_CANCEL ? FN_ERR_CANCELLED : FN_ERR_YIELDED, 0,
                     &ends[(*n_ends)++]);
            continue;
        }
        fn_handler_entry *h = (fn_handler_entry *)fn_eng_handler(e, ctx->type);
        uint64_t t0 = fn_mono_ns();
        ctx->run_t0 = t0;
        int rc = h ? h->h.run(ctx, h->h.user) : FN_ERR_UNSUPPORTED;
        if (h) {
            uint64_t d = fn_mono_ns() - t0, avg = atomic_load(&h->avg_run_ns);
            atomic_store(&h->avg_run_ns, avg - avg / 8 + d / 8);
        }
        make_end(ctx, rc, 1, &ends[(*n_ends)++]);
    }
}

void *fn_eng_worker_main(void *arg)
{
    fn_worker *w = arg;
    fn_engine *e = w->e;
    fn_end ends[FN_PREFETCH];
    int n_ends = 0;
    fn_job_ctx *batch[FN_PREFETCH];
    for (;;) {
        int n = claim_next(w, ends, &n_ends, batch);
        if (n > 0) {
            run_batch(w, batch, n, ends, &n_ends);
            continue;
        }
        if (w->impossible_seen) continue;
        pthread_mutex_lock(&e->mu);
        if (e->stopping) {
            pthread_mutex_unlock(&e->mu);
            break;
        }
        if (!fn_par_help_locked(e)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 250 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&e->work_cv, &e->mu, &ts);
        }
        pthread_mutex_unlock(&e->mu);
    }
    return NULL;
}

int fn_engine_run_pending(fn_engine *e, int max_jobs, int *ran_out)
{
    int total = 0, code = 0;
    pthread_mutex_lock(&e->inline_mu);
    fn_worker *w = &e->inline_worker;
    if (!w->store) {
        char err[512];
        code = fn_eng_open_conn(e, &w->store, err, sizeof err);
        if (code) fn_eng_fail(code, "%s", err);
    }
    fn_end ends[FN_PREFETCH];
    int n_ends = 0;
    fn_job_ctx *batch[FN_PREFETCH];
    while (!code) {
        if (max_jobs > 0 && total >= max_jobs) {
            pthread_mutex_lock(&e->mu);
            release_locked(e, ends, n_ends);
            pthread_mutex_unlock(&e->mu);
            flush_ends(e, w->store, ends, n_ends);
            n_ends = 0;
            break;
        }
        int n = claim_next(w, ends, &n_ends, batch);
        if (n > 0) {
            run_batch(w, batch, n, ends, &n_ends);
            total++;
            continue;
        }
        if (w->impossible_seen) {
            total++;
            continue;
        }
        break;
    }
    pthread_mutex_unlock(&e->inline_mu);
    if (ran_out) *ran_out = total;
    return code;
}
