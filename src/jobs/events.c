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
 * events.queue_max; the final snapshot (force) ignores both. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "jobs/internal.h"
#include "util/clock.h"

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

void fn_evq_push_state(fn_evq *q, fn_job_id job, fn_job_state state)
{
    static const char *const text[] = {"{\"state\":\"queued\"}", "{\"state\":\"running\"}",
                                       "{\"state\":\"cancelled\"}", "{\"state\":\"completed\"}",
                                       "{\"state\":\"failed\"}"};
    const char *s = (unsigned)state < 5 ? text[state] : "{\"state\":\"unknown\"}";
    fn_evq_push(q, FN_EVENT_STATE, job, state, strdup(s));
}

void fn_evq_progress(fn_evq *q, fn_job_ctx *ctx, char *json, int force)
{
    if (!json) return;
    uint64_t now = fn_mono_ns();
    pthread_mutex_lock(&q->mu);
    if (ctx->prog_seq && ctx->prog_seq - 1 >= q->head) {
        /* Still queued: replace it in place. */
        fn_event *ev = &q->ring[(ctx->prog_seq - 1) % q->cap];
        free(ev->json);
        ev->json = json;
        ctx->last_emit_ns = now;
        pthread_mutex_unlock(&q->mu);
        return;
    }
    if (!force &&
        (now - ctx->last_emit_ns < q->min_interval_ns || q->tail - q->head >= q->queue_max)) {
        pthread_mutex_unlock(&q->mu);
        free(json);
        return;
    }
    uint64_t seq;
    if (push_locked(q, FN_EVENT_PROGRESS, ctx->id, FN_JOB_RUNNING, json, &seq) == 0) {
        ctx->prog_seq = seq + 1;
        ctx->last_emit_ns = now;
    } else {
        free(json);
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
