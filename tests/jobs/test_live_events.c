/* test_live_events.c: progress a person can watch. A running job's counters reach the event
 * consumer between its commits (while the stored progress stays at commit granularity), and an
 * engine's consumer sees the jobs another engine on the same library runs (state changes, item
 * errors, progress) without ever seeing one change twice. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <poll.h>

#include "helpers.h"
#include "store/jobs_store.h"

/* What a consumer saw, in order. */
typedef struct seen {
    fn_event_kind kind;
    fn_job_id job;
    fn_job_state state;
    long long items; /* items_done of a progress event, -1 otherwise */
    char item[32];   /* an error's item */
} seen;

typedef struct collector {
    fn_engine *e;
    seen ev[16384];
    int n;
} collector;

static long long items_done(const char *json)
{
    json_t *o = json_loads(json ? json : "", 0, NULL);
    json_t *v = json_object_get(json_object_get(o, "counters"), "items_done");
    long long r = v ? json_integer_value(v) : -1;
    json_decref(o);
    return r;
}

/* Drains what is queued now into c. */
static void collect(collector *c)
{
    fn_event ev[64];
    size_t n;
    do {
        assert_int_equal(fn_engine_events_drain(c->e, ev, 64, &n), 0);
        for (size_t i = 0; i < n; i++) {
            if (c->n < 16384) {
                seen *s = &c->ev[c->n++];
                memset(s, 0, sizeof *s);
                s->kind = ev[i].kind;
                s->job = ev[i].job;
                s->state = ev[i].state;
                s->items = ev[i].kind == FN_EVENT_PROGRESS ? items_done(ev[i].json) : -1;
                if (ev[i].kind == FN_EVENT_ERROR) {
                    json_t *o = json_loads(ev[i].json, 0, NULL);
                    const char *it = json_string_value(json_object_get(o, "item"));
                    snprintf(s->item, sizeof s->item, "%s", it ? it : "");
                    json_decref(o);
                }
            }
            fn_event_clear(&ev[i]);
        }
    } while (n == 64);
}

static int has_state(const collector *c, fn_job_id job, fn_job_state st)
{
    for (int i = 0; i < c->n; i++)
        if (c->ev[i].kind == FN_EVENT_STATE && c->ev[i].job == job && c->ev[i].state == st)
            return 1;
    return 0;
}

/* Waits on the events fd, as a UI would, until job reaches state `st` or timeout_ms passes.
 * Returns the milliseconds waited, or -1 on timeout. */
static double wait_state(collector *c, fn_job_id job, fn_job_state st, int timeout_ms)
{
    uint64_t t0 = fn_mono_ns();
    for (;;) {
        collect(c);
        if (has_state(c, job, st)) return (double)(fn_mono_ns() - t0) / 1e6;
        double waited = (double)(fn_mono_ns() - t0) / 1e6;
        if (waited > timeout_ms) return -1;
        struct pollfd p = {fn_engine_events_fd(c->e), POLLIN, 0};
        poll(&p, 1, 20);
    }
}

/* The state events of `job`, in order, into out; returns how many. */
static int states_of(const collector *c, fn_job_id job, fn_job_state *out, int cap)
{
    int n = 0;
    for (int i = 0; i < c->n; i++)
        if (c->ev[i].kind == FN_EVENT_STATE && c->ev[i].job == job && n < cap)
            out[n++] = c->ev[i].state;
    return n;
}

static fn_engine *open_engine(const char *dir, int threads, int with_handler)
{
    fn_config cfg = test_config();
    cfg.events_progress_hz = 20;
    fn_engine *e;
    assert_int_equal(fn_engine_open(dir, &cfg, &e), 0);
    if (with_handler) register_count(e, "count", 0, 0);
    assert_int_equal(fn_engine_start(e, threads), 0);
    return e;
}

/* One commit at the very end of a 40-item job (10 ms an item), held before item 20: while it
 * waits there the consumer sees the counter at 20 and the stored progress still shows no commit
 * (it stays at commit granularity). The hold makes "between the commits" a fact, not a timing. */
static void test_live_progress_between_commits(void **state)
{
    (void)state;
    test_reset();
    char *dir = tmp_library();
    static collector c;
    memset(&c, 0, sizeof c);
    c.e = open_engine(dir, 1, 1);
    fn_job_id id;
    assert_int_equal(fn_enqueue(c.e, "count",
                                "{\"n\":40,\"batch\":40,\"spin_us\":10000,\"hold_at\":20}",
                                FN_PRIO_NORMAL, &id),
                     0);
    /* Until the job waits at item 20 and the consumer has seen its counter there. */
    uint64_t give_up = fn_mono_ns() + 10000000000u;
    int seen20 = 0;
    while (!seen20 && fn_mono_ns() < give_up) {
        struct pollfd p = {fn_engine_events_fd(c.e), POLLIN, 0};
        poll(&p, 1, 20);
        collect(&c);
        for (int i = 0; i < c.n && atomic_load(&T.held); i++)
            if (c.ev[i].job == id && c.ev[i].kind == FN_EVENT_PROGRESS && c.ev[i].items == 20)
                seen20 = 1;
    }
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT coalesce(progress, '') FROM jobs WHERE id=%lld",
             (long long)id);
    char *stored = q_text(dir, sql);
    long long stored_items = stored ? items_done(stored) : -1;
    free(stored);
    atomic_store(&T.release, 1); /* before any assert: a failed test must not leave it waiting */
    assert_true(seen20);
    assert_true(wait_state(&c, id, FN_JOB_COMPLETED, 10000) >= 0);

    long long last = -1;
    int finals = 0;
    for (int i = 0; i < c.n; i++) {
        if (c.ev[i].job != id) continue;
        if (c.ev[i].kind == FN_EVENT_STATE && c.ev[i].state == FN_JOB_COMPLETED) break;
        if (c.ev[i].kind != FN_EVENT_PROGRESS) continue;
        /* Never backwards, and a repeat only for the final snapshot. */
        assert_true(c.ev[i].items >= last);
        last = c.ev[i].items;
        if (c.ev[i].items == 40) finals++;
    }
    assert_true(stored_items <= 0); /* nothing committed while the job waited at item 20 */
    assert_true(finals >= 1);
    assert_int_equal(last, 40);
    fn_engine_close(c.e);
    rm_library(dir);
}

/* Engine B runs a job that engine A (same library, never started a worker) did not enqueue or
 * run: A's consumer sees it queued, running (with its item errors and moving progress) and
 * completed, each state once, and B's consumer sees B's own job's events exactly once too. */
static void test_other_engine(void **state)
{
    (void)state;
    test_reset();
    char *dir = tmp_library();
    static collector a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.e = open_engine(dir, 0, 0);
    fn_config cfg = test_config();
    cfg.events_progress_hz = 20;
    assert_int_equal(fn_engine_open(dir, &cfg, &b.e), 0);
    register_count(b.e, "count", 0, 0);
    fn_job_id id;
    assert_int_equal(fn_enqueue(b.e, "count",
                                "{\"n\":40,\"batch\":5,\"spin_us\":6000,\"bad\":[3,17,30]}",
                                FN_PRIO_NORMAL, &id),
                     0);
    /* A sees it queued before B has a worker to run it. */
    double queued_ms = wait_state(&a, id, FN_JOB_QUEUED, 5000);
    assert_true(queued_ms >= 0);
    assert_int_equal(fn_engine_start(b.e, 1), 0);
    /* Both consumers drain as they go, like two UIs; B's own completed event comes right after
     * the job's end is committed. */
    uint64_t give_up = fn_mono_ns() + 10000000000u;
    while (!has_state(&b, id, FN_JOB_COMPLETED) && fn_mono_ns() < give_up) {
        struct pollfd p[2] = {{fn_engine_events_fd(a.e), POLLIN, 0},
                              {fn_engine_events_fd(b.e), POLLIN, 0}};
        poll(p, 2, 20);
        collect(&a);
        collect(&b);
    }
    assert_true(has_state(&b, id, FN_JOB_COMPLETED));
    /* A within a bound of the end being committed (its monitor reads every 50 ms). */
    double done_ms = wait_state(&a, id, FN_JOB_COMPLETED, 2000);
    print_message("queued seen after %.1f ms, completed seen %.1f ms after the job ended\n",
                  queued_ms, done_ms);
    assert_true(done_ms >= 0);
    assert_true(done_ms <= 1000);
    sleep_ms(300); /* anything late (a duplicate) would arrive now */
    collect(&a);
    collect(&b);

    collector *both[2] = {&a, &b};
    for (int k = 0; k < 2; k++) {
        collector *c = both[k];
        fn_job_state s[16];
        int ns = states_of(c, id, s, 16);
        assert_int_equal(ns, 3);
        assert_int_equal(s[0], FN_JOB_QUEUED);
        assert_int_equal(s[1], FN_JOB_RUNNING);
        assert_int_equal(s[2], FN_JOB_COMPLETED);
        int errs = 0, progress = 0, moving = 0, after_final = 0, final_seen = 0;
        long long last = -1;
        char items[3][32] = {"", "", ""};
        for (int i = 0; i < c->n; i++) {
            seen *e = &c->ev[i];
            assert_int_equal(e->job, id);
            if (e->kind == FN_EVENT_STATE && e->state == FN_JOB_COMPLETED) final_seen = 1;
            if (e->kind == FN_EVENT_ERROR) {
                if (errs < 3) snprintf(items[errs], sizeof items[errs], "%s", e->item);
                errs++;
                if (final_seen) after_final++;
            }
            if (e->kind == FN_EVENT_PROGRESS) {
                progress++;
                assert_true(e->items >= last);
                last = e->items;
                if (e->items > 0 && e->items < 40) moving++;
                if (final_seen) after_final++;
            }
        }
        print_message("engine %c: %d events, %d progress (%d between 0 and 40), %d errors\n",
                      "AB"[k], c -> n, progress, moving, errs);
        assert_int_equal(errs, 3);
        assert_string_equal(items[0], "item-3");
        assert_string_equal(items[1], "item-17");
        assert_string_equal(items[2], "item-30");
        assert_int_equal(after_final, 0);
        assert_int_equal(last, 40);
        assert_true(moving >= 1);
    }
    fn_engine_close(b.e);
    fn_engine_close(a.e);
    rm_library(dir);
}

/* A job's state events: each state at most once, in lifecycle order (queued, running, then one
 * final state; or queued then cancelled), ending with `final`. The queued event may be missing:
 * a worker can claim a job before its enqueue's event is queued, and then that event is old
 * news. */
static void check_states(const collector *c, fn_job_id job, fn_job_state final)
{
    fn_job_state s[16] = {0};
    int ns = states_of(c, job, s, 16);
    if (ns < 1 || ns > 3 || s[ns - 1] != final) {
        print_message("job %lld: %d state events, want the last to be %d:", (long long)job, ns,
                      (int) final);
        for (int i = 0; i < ns; i++)
            print_message(" %d", (int)s[i]);
        print_message("\n");
    }
    assert_true(ns >= 1 && ns <= 3);
    assert_int_equal(s[ns - 1], final);
    for (int i = 0; i + 1 < ns; i++) {
        /* strictly forward: queued < running < any final state */
        int a = s[i] == FN_JOB_QUEUED ? 0 : s[i] == FN_JOB_RUNNING ? 1 : 2;
        int b = s[i + 1] == FN_JOB_QUEUED ? 0 : s[i + 1] == FN_JOB_RUNNING ? 1 : 2;
        assert_true(a < b);
    }
}

static int tiny_run(fn_job_ctx *ctx, void *user)
{
    (void)ctx;
    (void)user;
    return 0;
}

/* One engine, many jobs of every ending (completed, failed, cancelled while queued, cancelled
 * while running, item errors), some enqueued in bulk while both workers are busy finishing quick
 * jobs: its monitor reads all of these changes back from the database, and none may be reported
 * a second time. */
static void test_no_duplicates_for_own_jobs(void **state)
{
    (void)state;
    test_reset();
    char *dir = tmp_library();
    static collector c;
    memset(&c, 0, sizeof c);
    fn_config cfg = test_config();
    cfg.events_progress_hz = 20;
    assert_int_equal(fn_engine_open(dir, &cfg, &c.e), 0);
    register_count(c.e, "count", 0, 0);
    fn_handler tiny = {.type = "tiny", .run = tiny_run, .gpu_slots = 0, .mem_mb = 0};
    assert_int_equal(fn_engine_register(c.e, &tiny), 0);
    assert_int_equal(fn_engine_start(c.e, 2), 0);
    enum { N = 60 };
    fn_job_id ids[N];
    for (int i = 0; i < N; i++) {
        const char *payload = i % 5 == 0   ? "{\"n\":6,\"batch\":2,\"spin_us\":20000}"
                              : i % 5 == 1 ? "{\"n\":4,\"batch\":2,\"fail_at\":3}"
                              : i % 5 == 2 ? "{\"n\":8,\"batch\":2,\"bad\":[1,6],\"spin_us\":2000}"
                                           : "{\"n\":2,\"batch\":1}";
        assert_int_equal(fn_enqueue(c.e, "count", payload, FN_PRIO_NORMAL, &ids[i]), 0);
        if (i % 7 == 3) fn_job_cancel(c.e, ids[i]); /* queued or running: either is fine */
        if (i % 4 == 0) sleep_ms(15);
        collect(&c);
    }
    for (int i = 0; i < N; i++) {
        fn_job_state st;
        assert_int_equal(fn_job_wait(c.e, ids[i], 20000, &st), 0);
    }
    for (int i = 0; i < N; i++)
        assert_true(wait_state(&c, ids[i], job_state(c.e, ids[i]), 2000) >= 0);
    sleep_ms(300);
    collect(&c);
    /* Bulk: 10 x 200 tiny jobs, each chunk enqueued while the workers run the previous one (a
     * worker may then finish a job before its enqueue's queued event is even pushed). */
    enum { BULK = 2000 };
    static fn_job_id bulk[BULK];
    fn_enqueue_opts o = {"tiny", NULL, NULL, FN_PRIO_NORMAL, -1, -1};
    static fn_enqueue_opts many[200];
    for (int i = 0; i < 200; i++)
        many[i] = o;
    for (int k = 0; k < BULK; k += 200) {
        assert_int_equal(fn_enqueue_many(c.e, many, 200, bulk + k), 0);
        collect(&c);
    }
    for (int i = 0; i < BULK; i++)
        assert_int_equal(fn_job_wait(c.e, bulk[i], 20000, NULL), 0);
    for (int i = 0; i < BULK; i++)
        assert_true(wait_state(&c, bulk[i], FN_JOB_COMPLETED, 2000) >= 0);
    sleep_ms(300);
    collect(&c);
    for (int i = 0; i < BULK; i++)
        check_states(&c, bulk[i], FN_JOB_COMPLETED);
    for (int i = 0; i < N; i++) {
        fn_job_state s[16] = {0};
        int ns = states_of(&c, ids[i], s, 16);
        check_states(&c, ids[i], job_state(c.e, ids[i]));
        int errs = 0;
        for (int k = 0; k < c.n; k++)
            if (c.ev[k].kind == FN_EVENT_ERROR && c.ev[k].job == ids[i]) errs++;
        char sql[96];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM job_errors WHERE job=%lld",
                 (long long)ids[i]);
        /* Every error event is one stored error, or one the job recorded before a cancel. */
        long long stored = q_int(dir, sql);
        if (s[ns - 1] != FN_JOB_CANCELLED) assert_int_equal(errs, stored);
        assert_true(errs <= 2);
    }
    fn_engine_close(c.e);
    rm_library(dir);
}

/* ---- a job this process ran, recovered and finished by another ---------------------------- */

static const char *taken_dir;

static void exec_sql(const char *dir, const char *sql)
{
    assert_int_equal(q_exec(dir, sql), 0);
}

/* What another process does when this one's heartbeat went silent: recover the job (back to
 * queued) and claim it; then this run returns and its end is dropped (fenced by owner). */
static int taken_run(fn_job_ctx *ctx, void *user)
{
    (void)user;
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE jobs SET state=0, owner=NULL WHERE id=%lld",
             (long long)fn_job_id_of(ctx));
    exec_sql(taken_dir, sql);
    snprintf(sql, sizeof sql, "UPDATE jobs SET state=1, owner=424242 WHERE id=%lld",
             (long long)fn_job_id_of(ctx));
    exec_sql(taken_dir, sql);
    return 0;
}

static void test_job_taken_over(void **state)
{
    (void)state;
    test_reset();
    char *dir = tmp_library();
    taken_dir = dir;
    static collector c;
    memset(&c, 0, sizeof c);
    fn_config cfg = test_config();
    cfg.events_progress_hz = 20;
    assert_int_equal(fn_engine_open(dir, &cfg, &c.e), 0);
    fn_handler h = {.type = "taken", .run = taken_run, .gpu_slots = 0, .mem_mb = 0};
    assert_int_equal(fn_engine_register(c.e, &h), 0);
    /* The other process, as it registers itself (the change feed runs while a second process has
     * the library open). */
    char own[200];
    snprintf(own, sizeof own,
             "INSERT INTO job_owners(id, pid, host, started_at, heartbeat_at) VALUES(424242, 1, "
             "'other-host', 0, %lld)",
             (long long)fn_wall_ms() + 3600000);
    exec_sql(dir, own);
    assert_int_equal(fn_engine_start(c.e, 0), 0);
    fn_job_id id;
    assert_int_equal(fn_enqueue(c.e, "taken", NULL, FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_engine_run_pending(c.e, 0, NULL), 0);
    sleep_ms(150); /* the feed reads the takeover */
    /* The other process finishes it. */
    char sql[200];
    snprintf(sql, sizeof sql,
             "UPDATE jobs SET state=3, owner=NULL, progress='{\"counters\":{\"items_done\":7},"
             "\"histograms\":{}}' WHERE id=%lld",
             (long long)id);
    exec_sql(dir, sql);
    assert_true(wait_state(&c, id, FN_JOB_COMPLETED, 3000) >= 0);
    sleep_ms(200);
    collect(&c);
    fn_job_state s[8] = {0};
    assert_int_equal(states_of(&c, id, s, 8), 3);
    assert_int_equal(s[0], FN_JOB_QUEUED);
    assert_int_equal(s[1], FN_JOB_RUNNING);
    assert_int_equal(s[2], FN_JOB_COMPLETED);
    long long last = -1;
    for (int i = 0; i < c.n; i++)
        if (c.ev[i].kind == FN_EVENT_PROGRESS) last = c.ev[i].items;
    assert_int_equal(last, 7);
    fn_engine_close(c.e);
    rm_library(dir);
}

/* An item error whose item is not UTF-8 (a file name is bytes) recorded by another engine's job
 * reaches this engine's consumer as an error event too. */
static int bad_name_run(fn_job_ctx *ctx, void *user)
{
    (void)user;
    fn_job_error_add(ctx, "/photos/caf\xe9.jpg", "decode", "not a JPEG", FN_RES_PENDING);
    return fn_job_commit(ctx, NULL, NULL);
}

/* Engine B on dir running "badname" jobs on `threads` workers. */
static fn_engine *open_badname_engine(const char *dir, int threads)
{
    fn_config cfg = test_config();
    fn_engine *b;
    assert_int_equal(fn_engine_open(dir, &cfg, &b), 0);
    fn_handler h = {.type = "badname", .run = bad_name_run, .gpu_slots = 0, .mem_mb = 0};
    assert_int_equal(fn_engine_register(b, &h), 0);
    assert_int_equal(fn_engine_start(b, threads), 0);
    return b;
}

/* How many error events of job `id` c saw. */
static int error_events(const collector *c, fn_job_id id)
{
    int errs = 0;
    for (int i = 0; i < c->n; i++)
        if (c->ev[i].kind == FN_EVENT_ERROR && c->ev[i].job == id) errs++;
    return errs;
}

static void test_other_engine_error_not_utf8(void **state)
{
    (void)state;
    test_reset();
    char *dir = tmp_library();
    static collector a;
    memset(&a, 0, sizeof a);
    a.e = open_engine(dir, 0, 0);
    fn_engine *b = open_badname_engine(dir, 1);
    fn_job_id id;
    assert_int_equal(fn_enqueue(b, "badname", NULL, FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_job_wait(b, id, 10000, NULL), 0);
    assert_true(wait_state(&a, id, FN_JOB_COMPLETED, 5000) >= 0);
    assert_int_equal(error_events(&a, id), 1);
    fn_engine_close(b);
    fn_engine_close(a.e);
    rm_library(dir);
}

/* Many short jobs of another engine, each with one error, each run as soon as it is queued: every
 * error reaches this engine's consumer. A read of the feed that saw a job still queued and then
 * its error committed in between (two snapshots in one read, as PostgreSQL's default isolation
 * gives) dropped the error, taken for one a resumed job inherits. */
static void test_other_engine_many_quick_errors(void **state)
{
    (void)state;
    test_reset();
    char *dir = tmp_library();
    static collector a;
    memset(&a, 0, sizeof a);
    a.e = open_engine(dir, 0, 0);
    fn_engine *b = open_badname_engine(dir, 2);
    enum { JOBS = 60 };
    fn_job_id ids[JOBS];
    for (int i = 0; i < JOBS; i++) {
        assert_int_equal(fn_enqueue(b, "badname", NULL, FN_PRIO_NORMAL, &ids[i]), 0);
        usleep(3000);
    }
    for (int i = 0; i < JOBS; i++)
        assert_int_equal(fn_job_wait(b, ids[i], 10000, NULL), 0);
    for (int i = 0; i < JOBS; i++)
        assert_true(wait_state(&a, ids[i], FN_JOB_COMPLETED, 5000) >= 0);
    int missed = 0;
    for (int k = 0; k < JOBS; k++) {
        int errs = error_events(&a, ids[k]);
        if (errs != 1) {
            print_message("job %lld: %d error events\n", (long long)ids[k], errs);
            missed++;
        }
    }
    assert_int_equal(missed, 0);
    fn_engine_close(b);
    fn_engine_close(a.e);
    rm_library(dir);
}

/* Engine A enqueues, then B, then A again (jobs nobody runs): A's consumer gets B's job from the
 * database and its own from memory, each queued event once. (A's monitor skips reading back the
 * ids A enqueued itself, but never one in between.) */
static void test_interleaved_enqueues(void **state)
{
    (void)state;
    test_reset();
    char *dir = tmp_library();
    static collector a;
    memset(&a, 0, sizeof a);
    a.e = open_engine(dir, 0, 0);
    fn_engine *b = open_engine(dir, 0, 0);
    fn_enqueue_opts o = {"nobody", NULL, NULL, FN_PRIO_NORMAL, -1, -1};
    fn_enqueue_opts many[3] = {o, o, o};
    fn_job_id ids[7];
    assert_int_equal(fn_enqueue_many(a.e, many, 3, ids), 0);
    sleep_ms(120); /* A's monitor reads (and skips) its own first */
    assert_int_equal(fn_enqueue(b, "nobody", NULL, FN_PRIO_NORMAL, &ids[3]), 0);
    assert_int_equal(fn_enqueue_many(a.e, many, 3, ids + 4), 0);
    assert_true(wait_state(&a, ids[3], FN_JOB_QUEUED, 5000) >= 0);
    sleep_ms(300);
    collect(&a);
    for (int i = 0; i < 7; i++) {
        fn_job_state s[8] = {0};
        assert_int_equal(states_of(&a, ids[i], s, 8), 1);
        assert_int_equal(s[0], FN_JOB_QUEUED);
    }
    assert_int_equal(a.n, 7);
    fn_engine_close(b);
    fn_engine_close(a.e);
    rm_library(dir);
}

/* The change feed is trimmed to its last changes, and a reader goes on after a trim. */
static void test_feed_prune(void **state)
{
    (void)state;
    test_reset();
    char *dir = tmp_library();
    static collector a;
    memset(&a, 0, sizeof a);
    a.e = open_engine(dir, 0, 0);
    fn_engine *b = open_engine(dir, 1, 1);
    for (int i = 0; i < 5; i++) {
        fn_job_id id;
        assert_int_equal(fn_enqueue(b, "count", "{\"n\":4,\"batch\":1}", FN_PRIO_NORMAL, &id), 0);
        assert_int_equal(fn_job_wait(b, id, 10000, NULL), 0);
    }
    long long before = q_int(dir, "SELECT count(*) FROM job_changes");
    assert_true(before >= 5 * 6); /* claim, 4 commits, end */
    char path[600], err[256];
    snprintf(path, sizeof path, fn_test_on_pg() ? "%s" : "%s/library.db", dir);
    fn_store *s;
    assert_int_equal(fn_store_open(path, 2000, &s, err, sizeof err), 0);
    assert_int_equal(fn_js_feed_prune(s, 3), 0);
    fn_store_close(s);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM job_changes"), 3);
    /* The newest changes are the ones kept. */
    assert_int_equal(q_int(dir, "SELECT min(seq) FROM job_changes"), before - 2);
    fn_job_id id;
    assert_int_equal(fn_enqueue(b, "count", "{\"n\":4,\"batch\":1}", FN_PRIO_NORMAL, &id), 0);
    assert_true(wait_state(&a, id, FN_JOB_COMPLETED, 5000) >= 0);
    fn_engine_close(b);
    fn_engine_close(a.e);
    rm_library(dir);
}

/* A lone process writes no change feed (nobody else could read it); with a second process on
 * the library, every state change is in it. */
static void test_feed_only_when_shared(void **state)
{
    (void)state;
    test_reset();
    char *dir = tmp_library();
    fn_config cfg = test_config();
    fn_engine *e, *other;
    assert_int_equal(fn_engine_open(dir, &cfg, &e), 0);
    register_count(e, "count", 0, 0);
    assert_int_equal(fn_engine_start(e, 0), 0);
    assert_int_equal(fn_enqueue(e, "count", "{\"n\":3}", FN_PRIO_NORMAL, NULL), 0);
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM job_changes"), 0);
    assert_int_equal(fn_engine_open(dir, &cfg, &other), 0);
    assert_int_equal(fn_enqueue(e, "count", "{\"n\":3}", FN_PRIO_NORMAL, NULL), 0);
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    assert_true(q_int(dir, "SELECT count(*) FROM job_changes") >= 2); /* running, completed */
    fn_engine_close(other);
    fn_engine_close(e);
    rm_library(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_live_progress_between_commits),
        cmocka_unit_test(test_other_engine),
        cmocka_unit_test(test_no_duplicates_for_own_jobs),
        cmocka_unit_test(test_interleaved_enqueues),
        cmocka_unit_test(test_other_engine_error_not_utf8),
        cmocka_unit_test(test_other_engine_many_quick_errors),
        cmocka_unit_test(test_job_taken_over),
        cmocka_unit_test(test_feed_prune),
        cmocka_unit_test(test_feed_only_when_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
