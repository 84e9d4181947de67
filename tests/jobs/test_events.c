/* test_events.c: events reach the owner through a pollable descriptor; progress is coalesced per
 * job so a stalled consumer costs bounded memory, while state changes, item errors, audit actions
 * and the final progress snapshot are never dropped; the rate limit holds for a live consumer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <poll.h>

#include "helpers.h"
#include "jobs/internal.h"

static int readable(fn_engine *e)
{
    struct pollfd p = {fn_engine_events_fd(e), POLLIN, 0};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static fn_engine *open_inline(char *dir, double hz, size_t qmax)
{
    fn_config c = test_config();
    c.events_progress_hz = hz;
    c.events_queue_max = qmax;
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &c, &e), 0);
    register_count(e, "count", 0, 0);
    assert_int_equal(fn_engine_start(e, 0), 0);
    return e;
}

static void hook_audit(fn_job_ctx *ctx, int batch_no, void *arg)
{
    (void)arg;
    if (batch_no % 500 == 0) assert_int_equal(fn_job_audit(ctx, "merge", "{\"a\":1}"), 0);
}

static void test_stalled_consumer(void **state)
{
    (void)state;
    test_reset();
    T.hook = hook_audit;
    char *dir = tmp_library();
    /* A very high rate so only coalescing (not the rate limit) bounds the queue. */
    fn_engine *e = open_inline(dir, 1e9, 4096);
    assert_false(readable(e));
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "count", "{\"n\":4000,\"batch\":2,\"bad\":[1,10,100,1000,3999]}",
                                FN_PRIO_NORMAL, &id),
                     0);
    assert_true(readable(e));
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    /* 2000 commits, nobody draining: queued, running, 5 errors, 4 audits, ONE progress (the
     * first snapshot's slot, updated in place to the final values), completed. */
    size_t queued = fn_engine_events_queued(e);
    assert_int_equal(queued, 13);
    fn_event ev[64];
    size_t n;
    assert_int_equal(fn_engine_events_drain(e, ev, 64, &n), 0);
    assert_int_equal(n, 13);
    assert_false(readable(e));
    int states[8], ns = 0, errs = 0, audits = 0, progress = 0;
    const char *last_progress = NULL;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ev[i].job, id);
        assert_non_null(ev[i].json);
        switch (ev[i].kind) {
        case FN_EVENT_STATE:
            states[ns++] = ev[i].state;
            break;
        case FN_EVENT_ERROR:
            errs++;
            assert_non_null(strstr(ev[i].json, "\"resolution\":\"pending\""));
            break;
        case FN_EVENT_AUDIT:
            audits++;
            assert_non_null(strstr(ev[i].json, "\"action\":\"merge\""));
            break;
        case FN_EVENT_PROGRESS:
            progress++;
            last_progress = ev[i].json;
            assert_int_equal(ns, 2); /* before the final state */
            break;
        }
    }
    assert_int_equal(ns, 3);
    assert_int_equal(states[0], FN_JOB_QUEUED);
    assert_int_equal(states[1], FN_JOB_RUNNING);
    assert_int_equal(states[2], FN_JOB_COMPLETED);
    assert_int_equal(errs, 5);
    assert_int_equal(audits, 4);
    assert_int_equal(progress, 1);
    assert_non_null(strstr(last_progress, "\"items_done\":4000"));
    for (size_t i = 0; i < n; i++)
        fn_event_clear(&ev[i]);
    assert_int_equal(fn_engine_events_drain(e, ev, 64, &n), 0);
    assert_int_equal(n, 0);
    /* Audit entries are stored too. */
    assert_int_equal(q_int(dir, "SELECT count(*) FROM job_audit"), 4);
    fn_engine_close(e);
    rm_library(dir);
}

/* A consumer that drains after every batch sees at most about progress_hz snapshots a second,
 * and always the final one. */
static fn_engine *live_e;
static int live_progress;
static char live_last[256];

static void hook_drain(fn_job_ctx *ctx, int batch_no, void *arg)
{
    (void)ctx;
    (void)batch_no;
    (void)arg;
    fn_event ev[16];
    size_t n;
    fn_engine_events_drain(live_e, ev, 16, &n);
    for (size_t i = 0; i < n; i++) {
        if (ev[i].kind == FN_EVENT_PROGRESS) live_progress++;
        fn_event_clear(&ev[i]);
    }
}

static void test_rate_limit(void **state)
{
    (void)state;
    test_reset();
    T.hook = hook_drain;
    char *dir = tmp_library();
    live_e = open_inline(dir, 5, 4096); /* 5 per second */
    live_progress = 0;
    fn_job_id id;
    uint64_t t0 = fn_mono_ns();
    assert_int_equal(
        fn_enqueue(live_e, "count", "{\"n\":400,\"batch\":2,\"spin_us\":500}", FN_PRIO_NORMAL, &id),
        0);
    assert_int_equal(fn_engine_run_pending(live_e, 0, NULL), 0);
    double secs = (double)(fn_mono_ns() - t0) / 1e9;
    fn_event ev[16];
    size_t n;
    assert_int_equal(fn_engine_events_drain(live_e, ev, 16, &n), 0);
    int final_seen = 0;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].kind == FN_EVENT_PROGRESS) {
            live_progress++;
            snprintf(live_last, sizeof live_last, "%s", ev[i].json);
            final_seen = 1;
        }
        fn_event_clear(&ev[i]);
    }
    assert_true(final_seen);
    assert_non_null(strstr(live_last, "\"items_done\":400"));
    /* 200 commits in `secs` seconds at 5/s: at most 5*secs + 2 snapshots. */
    assert_true(live_progress >= 2);
    assert_true(live_progress <= (int)(5 * secs) + 3);
    fn_engine_close(live_e);
    rm_library(dir);
}

/* Many jobs, stalled consumer, small queue_max: progress beyond the limit is dropped but every
 * state event stays. */
static void test_queue_max(void **state)
{
    (void)state;
    test_reset();
    char *dir = tmp_library();
    fn_engine *e = open_inline(dir, 1e9, 8);
    for (int i = 0; i < 20; i++)
        assert_int_equal(fn_enqueue(e, "count", "{\"n\":6,\"batch\":1}", FN_PRIO_NORMAL, NULL), 0);
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    fn_event ev[256];
    size_t n;
    assert_int_equal(fn_engine_events_drain(e, ev, 256, &n), 0);
    int states = 0, finals = 0;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].kind == FN_EVENT_STATE) states++;
        if (ev[i].kind == FN_EVENT_PROGRESS && strstr(ev[i].json, "\"items_done\":6")) finals++;
        fn_event_clear(&ev[i]);
    }
    assert_int_equal(states, 60);
    assert_int_equal(finals, 20);
    assert_true(n <= 60 + 20);
    fn_engine_close(e);
    rm_library(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stalled_consumer),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_queue_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
