/* events.c: the queue of events for the owner's (UI) thread and its pollable descriptor.
 *
 * DESIGN. A growable ring of fn_event under one mutex, with an eventfd that is readable exactly
 * while the ring is non-empty (written when the ring goes from empty to non-empty, read back when
 * a drain empties it). Workers never block on the consumer: pushing is a short critical section.
 *
 * Coalescing: a job has at most one progress event in the ring. A new snapshot replaces the queued
 * one in place (its json swapped), so a stalled consumer sees one progress event per job however
 * long it stalls: memory stays bounded by the number of jobs, plus the state, error and audit
 * events, which are never dropped. When the ring is not holding one, a new snapshot is queued only
 * if 1/events.progress_hz has passed since the last one and the ring is shorter than
 * events.queue_max; the final snapshot (force) ignores both.
 *
 * Live progress: the monitor thread (engine.c) copies each running job's counters every
 * 1/events.progress_hz and queues the copy's JSON when it differs from the last snapshot queued
 * for that job (compared by a hash of the text, so nothing is added to the per-item path).
 *
 * Other processes' jobs: the monitor reads the database's change feed and hands it to
 * fn_evq_feed. A table of what the consumer was told about each job (state, and for another
 * process's job its last progress) decides what is new. This process's own pushes go through the
 * same table, so a change it made is reported once whichever way arrives first: the monitor skips
 * jobs running here (by owner in the row, or `mine` in the table), and an own state event that the
 * monitor already reported from the database is dropped. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <jansson.h>

#include "jobs/internal.h"
#include "store/jobs_store.h"
#include "util/clock.h"
#include "util/pathenc_json.h"

int fn_evq_init(fn_evq *q, const fn_config *cfg)
{
    memset(q, 0, sizeof *q);
    q->cap = 256;
    q->ring = calloc(q->cap, sizeof *q->ring);
    if (!q->ring) return FN_ERR_NOMEM;
    q->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->fd < 0) {
        free(q->ring);
        q->ring = NULL;
        return FN_ERR_IO;
    }
    q->queue_max = cfg->events_queue_max;
    q->min_interval_ns = (uint64_t)(1e9 / cfg->events_progress_hz);
    pthread_mutex_init(&q->mu, NULL);
    return 0;
}

void fn_evq_destroy(fn_evq *q)
{
    free(q->jobs);
    q->jobs = NULL;
    for (uint64_t s = q->head; s < q->tail; s++)
        fn_event_clear(&q->ring[s % q->cap]);
    free(q->ring);
    q->ring = NULL;
    if (q->fd >= 0) close(q->fd);
    pthread_mutex_destroy(&q->mu);
}

static void signal_fd(fn_evq *q)
{
    uint64_t one = 1;
    ssize_t r = write(q->fd, &one, sizeof one);
    (void)r; /* EAGAIN only if the counter is saturated: it is readable then anyway */
}

/* Call with q->mu held. Returns the event's sequence number. */
static int push_locked(fn_evq *q, fn_event_kind kind, fn_job_id job, fn_job_state state, char *json,
                       uint64_t *seq)
{
    if (q->tail - q->head == q->cap) {
        size_t ncap = q->cap * 2;
        fn_event *nr = calloc(ncap, sizeof *nr);
        if (!nr) return FN_ERR_NOMEM;
        for (uint64_t s = q->head; s < q->tail; s++)
            nr[s % ncap] = q->ring[s % q->cap];
        free(q->ring);
        q->ring = nr;
        q->cap = ncap;
    }
    int was_empty = q->tail == q->head;
    fn_event *ev = &q->ring[q->tail % q->cap];
    ev->kind = kind;
    ev->job = job;
    ev->state = state;
    ev->json = json;
    *seq = q->tail++;
    if (was_empty) signal_fd(q);
    return 0;
}

void fn_evq_push(fn_evq *q, fn_event_kind kind, fn_job_id job, fn_job_state state, char *json)
{
    uint64_t seq;
    pthread_mutex_lock(&q->mu);
    int code = push_locked(q, kind, job, state, json, &seq);
    pthread_mutex_unlock(&q->mu);
    if (code) free(json);
}

/* ---- what the consumer was told, per job ------------------------------------------------------
 */

static size_t slot_of(int64_t id, size_t cap)
{
    return (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

/* Call with q->mu held. NULL if absent. */
static fn_evjob *job_find(fn_evq *q, int64_t id)
{
    if (!q->jobs_cap || id <= 0) return NULL;
    for (size_t i = slot_of(id, q->jobs_cap);; i = (i + 1) & (q->jobs_cap - 1)) {
        if (q->jobs[i].id == id) return &q->jobs[i];
        if (q->jobs[i].id == 0) return NULL;
    }
}

static void job_place(fn_evjob *tab, size_t cap, const fn_evjob *j)
{
    size_t i = slot_of(j->id, cap);
    while (tab[i].id != 0)
        i = (i + 1) & (cap - 1);
    tab[i] = *j;
}

/* Rebuilds the table with room for `cap` slots, keeping the entries `keep` accepts. */
static int job_rebuild(fn_evq *q, size_t cap, uint64_t now, uint64_t keep_ns)
{
    fn_evjob *nt = calloc(cap, sizeof *nt);
    if (!nt) return FN_ERR_NOMEM;
    size_t n = 0;
    for (size_t i = 0; i < q->jobs_cap; i++) {
        fn_evjob *j = &q->jobs[i];
        if (j->id == 0) continue;
        if (keep_ns && j->final_ns && now - j->final_ns > keep_ns) continue;
        job_place(nt, cap, j);
        n++;
    }
    free(q->jobs);
    q->jobs = nt;
    q->jobs_cap = cap;
    q->jobs_n = n;
    return 0;
}

/* Call with q->mu held. NULL only when out of memory (then the job is simply not tracked). */
static fn_evjob *job_get(fn_evq *q, int64_t id)
{
    if (id <= 0) return NULL;
    fn_evjob *j = job_find(q, id);
    if (j) return j;
    if ((q->jobs_n + 1) * 2 > q->jobs_cap &&
        job_rebuild(q, q->jobs_cap ? q->jobs_cap * 2 : 256, 0, 0))
        return NULL;
    fn_evjob fresh = {.id = id, .state = -1};
    size_t i = slot_of(id, q->jobs_cap);
    while (q->jobs[i].id != 0)
        i = (i + 1) & (q->jobs_cap - 1);
    q->jobs[i] = fresh;
    q->jobs_n++;
    return &q->jobs[i];
}

void fn_evq_prune(fn_evq *q, uint64_t keep_ns)
{
    pthread_mutex_lock(&q->mu);
    size_t cap = q->jobs_cap;
    /* Shrink when mostly empty, but never below the initial size. */
    while (cap > 256 && q->jobs_n * 8 < cap)
        cap /= 2;
    if (q->jobs_cap) job_rebuild(q, cap, fn_mono_ns(), keep_ns);
    pthread_mutex_unlock(&q->mu);
}

static int is_final_state(int s)
{
    return s == FN_JOB_CANCELLED || s == FN_JOB_COMPLETED || s == FN_JOB_FAILED;
}

static char *state_json(int state)
{
    static const char *const text[] = {"{\"state\":\"queued\"}", "{\"state\":\"running\"}",
                                       "{\"state\":\"cancelled\"}", "{\"state\":\"completed\"}",
                                       "{\"state\":\"failed\"}"};
    return strdup((unsigned)state < 5 ? text[state] : "{\"state\":\"unknown\"}");
}

/* This process's own state changes (enqueue, claim, end, cancel of a queued job). */
void fn_evq_push_state(fn_evq *q, fn_job_id job, fn_job_state state)
{
    char *json = state_json(state);
    if (!json) return;
    uint64_t seq;
    pthread_mutex_lock(&q->mu);
    fn_evjob *j = job_get(q, job);
    /* The monitor may have read this change from the database before this call: then it was
     * reported already. After a final state nothing else is news. */
    int told = j && ((j->by_db && j->state == (int)state) || is_final_state(j->state));
    int code = told ? 1 : push_locked(q, FN_EVENT_STATE, job, state, json, &seq);
    if (j && !told) {
        j->state = (int8_t)state;
        j->by_db = 0;
        j->mine = state == FN_JOB_RUNNING;
        j->final_ns = is_final_state(state) ? fn_mono_ns() : 0;
    }
    if (j && told) {
        j->by_db = 0;
        if (state != FN_JOB_RUNNING) j->mine = 0;
    }
    pthread_mutex_unlock(&q->mu);
    if (code) free(json);
}

void fn_evq_handoff(fn_evq *q, fn_job_id job)
{
    pthread_mutex_lock(&q->mu);
    fn_evjob *j = job_get(q, job);
    if (j) {
        j->mine = 0;
        j->by_db = 1;
    }
    pthread_mutex_unlock(&q->mu);
}

void fn_evq_push_queued_new(fn_evq *q, fn_job_id job)
{
    char *json = state_json(FN_JOB_QUEUED);
    if (!json) return;
    uint64_t seq;
    pthread_mutex_lock(&q->mu);
    fn_evjob *j = job_get(q, job);
    /* Anything told already is at least as new: the monitor read the row first, or a worker
     * claimed (even finished) the job between the enqueue's commit and this call. */
    int told = j && j->state >= 0;
    int code = told ? 1 : push_locked(q, FN_EVENT_STATE, job, FN_JOB_QUEUED, json, &seq);
    if (j && !told) j->state = FN_JOB_QUEUED;
    if (j) j->by_db = 0;
    /* One transaction's ids are consecutive (writers are serialised), so a bulk enqueue is one
     * run here, which the feed need not read back (fn_evq_own_ids). */
    if (j) {
        if (q->own_hi && job == q->own_hi + 1) {
            q->own_hi = job;
        } else {
            q->own_lo = q->own_hi = job;
        }
    }
    pthread_mutex_unlock(&q->mu);
    if (code) free(json);
}

void fn_evq_own_ids(fn_evq *q, int64_t *lo, int64_t *hi)
{
    pthread_mutex_lock(&q->mu);
    *lo = q->own_lo;
    *hi = q->own_hi;
    pthread_mutex_unlock(&q->mu);
}

/* FNV-1a: identifies a snapshot's text (equal text, equal hash; 0 is kept for "none"). */
static uint64_t text_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h ? h : 1;
}

/* Call with q->mu held. */
static void progress_locked(fn_evq *q, fn_job_ctx *ctx, char *json, uint64_t hash, int force)
{
    uint64_t now = fn_mono_ns();
    if (ctx->prog_seq && ctx->prog_seq - 1 >= q->head) {
        /* Still queued: replace it in place. */
        fn_event *ev = &q->ring[(ctx->prog_seq - 1) % q->cap];
        free(ev->json);
        ev->json = json;
        ctx->last_emit_ns = now;
        ctx->emitted_hash = hash;
        return;
    }
    if (!force &&
        (now - ctx->last_emit_ns < q->min_interval_ns || q->tail - q->head >= q->queue_max)) {
        free(json);
        return;
    }
    uint64_t seq;
    if (push_locked(q, FN_EVENT_PROGRESS, ctx->id, FN_JOB_RUNNING, json, &seq) == 0) {
        ctx->prog_seq = seq + 1;
        ctx->last_emit_ns = now;
        ctx->emitted_hash = hash;
    } else {
        free(json);
    }
}

void fn_evq_progress(fn_evq *q, fn_job_ctx *ctx, char *json, int force)
{
    if (!json) return;
    uint64_t hash = text_hash(json);
    pthread_mutex_lock(&q->mu);
    progress_locked(q, ctx, json, hash, force);
    pthread_mutex_unlock(&q->mu);
}

void fn_evq_progress_live(fn_evq *q, fn_job_ctx *ctx, char *json)
{
    if (!json) return;
    uint64_t hash = text_hash(json);
    pthread_mutex_lock(&q->mu);
    /* Only between its running event and its end: a ctx in the running table may still be a
     * reservation whose claim has not committed (or will fail). */
    fn_evjob *j = job_find(q, ctx->id);
    if (hash == ctx->emitted_hash || !j || !j->mine)
        free(json); /* nothing moved since the last snapshot queued, or not running yet */
    else
        progress_locked(q, ctx, json, hash, 0);
    pthread_mutex_unlock(&q->mu);
}

/* ---- live snapshots ---------------------------------------------------------------------------
 */

void fn_snap_take(fn_snap *sn, fn_job_ctx *ctx)
{
    sn->nc = atomic_load_explicit(&ctx->pub_counters, memory_order_acquire);
    sn->nh = atomic_load_explicit(&ctx->pub_hists, memory_order_acquire);
    for (int i = 0; i < sn->nc; i++) {
        memcpy(sn->c[i].name, ctx->counters[i].name, FN_NAME_MAX);
        sn->c[i].v = atomic_load_explicit(&ctx->counters[i].v, memory_order_relaxed);
    }
    for (int i = 0; i < sn->nh; i++) {
        const fn_histogram *h = &ctx->hists[i];
        memcpy(sn->h[i].name, h->name, FN_NAME_MAX);
        sn->h[i].n_bounds = h->n_bounds;
        memcpy(sn->h[i].bounds, h->bounds, h->n_bounds * sizeof *h->bounds);
        for (size_t k = 0; k <= h->n_bounds; k++)
            sn->h[i].counts[k] =
                atomic_load_explicit(&((fn_histogram *)h)->counts[k], memory_order_relaxed);
    }
}

/* The same text fn_ctx_progress_json writes for the same values (same keys, order and number
 * format), so a live snapshot and a commit's compare equal when nothing moved in between. */
char *fn_snap_json(const fn_snap *sn)
{
    json_t *root = json_object();
    json_t *cs = json_object();
    json_t *hs = json_object();
    for (int i = 0; i < sn->nc; i++)
        json_object_set_new(cs, sn->c[i].name, json_integer(sn->c[i].v));
    for (int i = 0; i < sn->nh; i++) {
        json_t *b = json_array(), *c = json_array();
        for (size_t k = 0; k < sn->h[i].n_bounds; k++)
            json_array_append_new(b, json_real(sn->h[i].bounds[k]));
        for (size_t k = 0; k <= sn->h[i].n_bounds; k++)
            json_array_append_new(c, json_integer(sn->h[i].counts[k]));
        json_object_set_new(hs, sn->h[i].name, json_pack("{s:o,s:o}", "bounds", b, "counts", c));
    }
    json_object_set_new(root, "counters", cs);
    json_object_set_new(root, "histograms", hs);
    char *s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(root);
    return s;
}

/* ---- other processes' jobs --------------------------------------------------------------------
 */

static int by_job(const void *a, const void *b)
{
    const fn_js_error_row *x = a, *y = b;
    if (x->job != y->job) return x->job < y->job ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Call with q->mu held. Queues the errors of `job` in the feed (sorted by job). */
static void feed_errors_locked(fn_evq *q, const fn_js_feed *f, int64_t job)
{
    size_t lo = 0, hi = f->n_errs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (f->errs[mid].job < job)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < f->n_errs && f->errs[i].job == job; i++) {
        const fn_js_error_row *r = &f->errs[i];
        /* As fn_job_error_add builds it: the path encoding keeps an item that is not UTF-8. */
        json_t *o = json_object();
        fn_json_set_path(o, "item", r->item ? r->item : "");
        json_object_set_new(o, "code", fn_json_text(r->code ? r->code : "unknown"));
        json_object_set_new(o, "message", fn_json_text(r->message ? r->message : ""));
        json_object_set_new(o, "resolution",
                            json_string(fn_resolution_name((fn_resolution)r->resolution)));
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        uint64_t seq;
        if (s && push_locked(q, FN_EVENT_ERROR, job, FN_JOB_RUNNING, s, &seq)) free(s);
    }
}

/* Call with q->mu held. Another process's job's progress, coalesced like our own. */
static void feed_progress_locked(fn_evq *q, fn_evjob *j, const char *progress, int force)
{
    if (!progress) return;
    uint64_t hash = text_hash(progress), now = fn_mono_ns();
    if (hash == j->db_hash) return;
    char *json = strdup(progress);
    if (!json) return;
    if (j->db_seq && j->db_seq - 1 >= q->head) {
        fn_event *ev = &q->ring[(j->db_seq - 1) % q->cap];
        free(ev->json);
        ev->json = json;
    } else if (!force &&
               (now - j->db_ns < q->min_interval_ns || q->tail - q->head >= q->queue_max)) {
        free(json);
        return;
    } else {
        uint64_t seq;
        if (push_locked(q, FN_EVENT_PROGRESS, j->id, FN_JOB_RUNNING, json, &seq)) {
            free(json);
            return;
        }
        j->db_seq = seq + 1;
    }
    j->db_hash = hash;
    j->db_ns = now;
}

void fn_evq_feed(fn_evq *q, int64_t self, fn_js_feed *f)
{
    if (f->n_errs > 1) qsort(f->errs, f->n_errs, sizeof *f->errs, by_job);
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < f->n_jobs; i++) {
        const fn_js_change *r = &f->jobs[i];
        if (r->owner == self) continue; /* running here: reported from memory */
        fn_evjob *j = job_find(q, r->id);
        /* Claimed here: its end is reported from memory. Unless another process owns it now
         * (it recovered the job while this one's heartbeat was silent; this run's end will be
         * dropped, not reported). */
        if (j && j->mine && r->owner == 0) continue;
        if (j && j->mine) {
            j->mine = 0;
            j->by_db = 1; /* its state and progress come from the database from now on */
        }
        /* A final state is the last word; the row read may even be older than it (this read's
         * snapshot began before our own worker ended the job). */
        if (j && is_final_state(j->state)) continue;
        if (j && j->state == r->state) {
            /* Told already (by us, or by an earlier read); a job another process runs may have
             * moved on. */
            if (r->state == FN_JOB_RUNNING && j->by_db) {
                feed_errors_locked(q, f, r->id);
                feed_progress_locked(q, j, r->progress, 0);
            }
            continue;
        }
        if (!j && !(j = job_get(q, r->id))) continue;
        uint64_t seq;
        char *sj = state_json(r->state);
        if (r->state == FN_JOB_RUNNING) {
            if (sj && push_locked(q, FN_EVENT_STATE, r->id, FN_JOB_RUNNING, sj, &seq)) free(sj);
            feed_errors_locked(q, f, r->id);
            feed_progress_locked(q, j, r->progress, 0);
        } else if (is_final_state(r->state)) {
            /* Its errors and last progress come before the final state, as for our own jobs. */
            feed_errors_locked(q, f, r->id);
            feed_progress_locked(q, j, r->progress, 1);
            if (sj && push_locked(q, FN_EVENT_STATE, r->id, (fn_job_state)r->state, sj, &seq))
                free(sj);
            j->final_ns = fn_mono_ns();
        } else {
            /* Queued: a new job, or one given back. Errors of a queued job are the ones a
             * resumed job inherits, not new ones. */
            if (sj && push_locked(q, FN_EVENT_STATE, r->id, (fn_job_state)r->state, sj, &seq))
                free(sj);
        }
        j->state = (int8_t)r->state;
        j->by_db = 1;
    }
    pthread_mutex_unlock(&q->mu);
}

size_t fn_evq_len(fn_evq *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = (size_t)(q->tail - q->head);
    pthread_mutex_unlock(&q->mu);
    return n;
}

int fn_engine_events_fd(fn_engine *e)
{
    return e->ev.fd;
}

size_t fn_engine_events_queued(fn_engine *e)
{
    return fn_evq_len(&e->ev);
}

int fn_engine_events_drain(fn_engine *e, fn_event *out, size_t cap, size_t *n)
{
    fn_evq *q = &e->ev;
    *n = 0;
    pthread_mutex_lock(&q->mu);
    while (*n < cap && q->head < q->tail) {
        fn_event *ev = &q->ring[q->head % q->cap];
        out[(*n)++] = *ev;
        memset(ev, 0, sizeof *ev);
        q->head++;
    }
    if (q->head == q->tail) {
        uint64_t v;
        ssize_t r = read(q->fd, &v, sizeof v);
        (void)r; /* EAGAIN: already clear */
    }
    pthread_mutex_unlock(&q->mu);
    return 0;
}

void fn_event_clear(fn_event *ev)
{
    if (!ev) return;
    free(ev->json);
    ev->json = NULL;
}
