/* bench_jobs.c: the engine's benchmark. Prints `name value unit` lines (see bench/bench_jobs).
 *
 *   item_overhead_ns          counter add + histogram observe + stop check, per item (inline)
 *   batch_commit_p99_ms       fn_job_commit of 32 result rows + checkpoint + progress
 *   durable_jobs_per_s        tiny jobs enqueued (100 per transaction) and run to completed by
 *                             the worker threads; each completion is committed before reported
 *   claim_other_types_per_s   as durable_jobs_per_s, with 10000 queued jobs of a type this process
 *                             has no handler for ahead of the runnable ones in their lane
 *   bulk_enqueue_jobs_per_s   fn_enqueue_many of 100000 jobs in one transaction
 *   cancel_latency_p99_ms     fn_job_cancel -> the "cancelled" state event, 10 ms batches
 *   interactive_pickup_p99_ms enqueue of an interactive job -> its handler starts, while every
 *                             worker runs background jobs of 10 ms batches
 *   events_drained_per_s      fn_engine_events_drain + fn_event_clear of queued events
 *   recovery_ms               fn_engine_open of a library with 100k jobs, 1k orphaned
 *   retry_100k_enqueue_ms     fn_job_retry of a failed job with 100k item errors (each item
 *                             once, in error order, into the retry items table)
 *   cross_process_event_delay_p99_ms
 *                             a job in a forked child process (its own engine) commits progress
 *                             every 10-30 ms; for each commit, the time until this process's
 *                             event consumer (poll on the events fd) holds that progress or newer
 *   claim3_p50_ms, claim3_p99_ms, claim3_per_s
 *                             3 worker processes claim 6000 queued jobs at once, each claim its
 *                             own write transaction (fn_store_begin_rows + the scheduler's
 *                             candidates + fn_js_claim_job: FOR UPDATE SKIP LOCKED on
 *                             PostgreSQL); every job must be claimed exactly once
 *   xcancel_p99_ms            fn_job_cancel in another process (its own engine, as another host)
 *                             -> the handler running the job here sees FN_STOP_CANCEL (1 ms
 *                             batches); on PostgreSQL carried by NOTIFY, on SQLite by polling
 *
 * PostgreSQL (issue 14): FN_BENCH_PG=postgresql://... runs on that server (each part in a fresh
 * database made on it), FN_BENCH_PG=start starts a throwaway durable cluster (scripts/pg-tmp
 * start --durable, FN_PG_TMP) and removes it at the end. There the default parts are durable,
 * claim3, xcancel and cross.
 *
 * The "10 ms batches" are real CPU work, not sleeps: a 64-bit LCG chain iterated until 10 ms of
 * the monotonic clock have passed, then the batch is committed like any handler's. */
#include <ftw.h>
#include <jansson.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "facenames/jobs.h"
#include "jobs/internal.h"
#include "store/jobs_store.h"
#include "store/pg/pg_driver.h"
#include "store/store_sql.h" /* white-box: rows written in the job's own transaction */
#include "util/clock.h"

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* PostgreSQL: the cluster's URL (database "postgres"), NULL for SQLite. */
static char *pg_url;
static int pg_started, pg_seq;

static void pg_stop(void)
{
    if (!pg_started) return;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' stop '%s' >/dev/null", FN_PG_TMP, pg_url);
    if (system(cmd) != 0) fprintf(stderr, "bench_jobs: could not stop %s\n", pg_url);
}

static void pg_setup(void)
{
    const char *v = getenv("FN_BENCH_PG");
    if (!v || !*v) return;
    if (strcmp(v, "start") != 0) {
        pg_url = strdup(v);
        return;
    }
    char cmd[1024], line[1024] = "";
    snprintf(cmd, sizeof cmd, "'%s' start --durable --watch %ld", FN_PG_TMP, (long)getpid());
    FILE *p = popen(cmd, "r");
    if (!p || !fgets(line, sizeof line, p)) line[0] = 0;
    if ((p ? pclose(p) : -1) != 0 || strncmp(line, "postgresql://", 13) != 0) {
        fprintf(stderr, "bench_jobs: scripts/pg-tmp start --durable failed\n");
        exit(1);
    }
    line[strcspn(line, "\n")] = 0;
    pg_url = strdup(line);
    pg_started = 1;
    atexit(pg_stop);
}

/* CREATE or DROP DATABASE `name` on the cluster. */
static void pg_admin(const char *verb, const char *name)
{
    fn_pg_conn *c = NULL;
    char sql[160];
    snprintf(sql, sizeof sql, "%s DATABASE %s%s", verb, name,
             strcmp(verb, "DROP") == 0 ? " WITH (FORCE)" : "");
    if (fn_pg_connect(pg_url, &c) || fn_pg_exec(c, sql)) {
        fprintf(stderr, "bench_jobs: %s: %s\n", sql, c ? fn_pg_errmsg(c) : "no memory");
        exit(1);
    }
    fn_pg_close(c);
}

static char *tmp_lib(void)
{
    if (pg_url) {
        char name[64];
        snprintf(name, sizeof name, "bench%d_%ld", ++pg_seq, (long)getpid());
        pg_admin("CREATE", name);
        const char *q = strchr(pg_url, '?');
        char *url = malloc(strlen(pg_url) + 80);
        sprintf(url, "postgresql:///%s%s", name, q ? q : "");
        return url;
    }
    const char *base = getenv("FN_BENCH_DIR");
    char *d = malloc(512);
    snprintf(d, 512, "%s/fn-bench-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(d)) abort();
    return d;
}

static void rm_lib(char *d)
{
    if (strncmp(d, "postgresql://", 13) == 0) {
        char name[64];
        const char *q = strchr(d, '?');
        snprintf(name, sizeof name, "%.*s", (int)((q ? q : d + strlen(d)) - (d + 14)), d + 14);
        pg_admin("DROP", name);
        free(d);
        return;
    }
    nftw(d, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(d);
}

static fn_config bench_cfg(void)
{
    fn_config c;
    fn_config_defaults(&c);
    c.workers_cpu_max = 2;
    return c;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double thread_cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double p99(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    int i = (int)(0.99 * (n - 1) + 0.5);
    return v[i];
}

static void check(int rc, fn_engine *e, const char *what)
{
    if (rc) {
        fprintf(stderr, "bench_jobs: %s: %s\n", what, e ? fn_engine_errmsg(e) : fn_strerror(rc));
        exit(1);
    }
}

/* ---- item_overhead_ns ------------------------------------------------------------------------ */

static double overhead_ns;

static int overhead_run(fn_job_ctx *ctx, void *user)
{
    (void)user;
    int c = fn_job_counter(ctx, "items_done");
    double bounds[] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
    int h = fn_job_histogram(ctx, "confidence", bounds, 9);
    const int n = 20000000;
    uint64_t t0 = fn_mono_ns();
    int stops = 0;
    for (int i = 0; i < n; i++) {
        fn_job_add(ctx, c, 1);
        fn_job_observe(ctx, h, (double)(i & 1023) / 1024.0);
        stops += fn_job_should_stop(ctx) != FN_STOP_NONE;
    }
    overhead_ns = (double)(fn_mono_ns() - t0) / n;
    return stops ? FN_ERR_CANCELLED : 0;
}

/* ---- batch_commit_p99_ms ----------------------------------------------------------------------
 */

#define COMMITS 400
static double commit_ms[COMMITS], commit_cpu_ms[COMMITS];

static int rows32(fn_store_tx *tx, void *arg)
{
    int base = *(int *)arg;
    fn_store *s = fn_store_tx_store(tx);
    static _Thread_local fn_sql_stmt *st;
    static _Thread_local fn_store *st_store;
    if (st_store != s) {
        fn_sql_exec(s, "CREATE TABLE IF NOT EXISTS bench_rows(id INTEGER PRIMARY KEY, photo TEXT, "
                       "x REAL, y REAL, w REAL, h REAL, score REAL, embedding BLOB)");
        if (fn_sql_prepare(s,
                           "INSERT INTO bench_rows(photo,x,y,w,h,score,embedding) "
                           "VALUES(?1,?2,?3,?4,?5,?6,?7)",
                           &st))
            return FN_ERR_DB;
        st_store = s;
    }
    static const float emb[128];
    for (int i = 0; i < 32; i++) {
        char path[64];
        snprintf(path, sizeof path, "/photos/2026/IMG_%06d.jpg", base + i);
        fn_sql_bind_text(st, 1, path, -1, FN_SQL_TRANSIENT);
        for (int k = 2; k <= 6; k++)
            fn_sql_bind_double(st, k, 0.5 * k);
        fn_sql_bind_blob(st, 7, emb, sizeof emb, FN_SQL_STATIC);
        int rc = fn_sql_step(st);
        fn_sql_reset(st);
        if (rc != FN_SQL_DONE) return FN_ERR_DB;
    }
    return 0;
}

static int commit_run(fn_job_ctx *ctx, void *user)
{
    (void)user;
    int c = fn_job_counter(ctx, "files_done");
    int f = fn_job_counter(ctx, "faces_found");
    double bounds[] = {0.5, 0.7, 0.9};
    int h = fn_job_histogram(ctx, "confidence", bounds, 3);
    for (int b = 0; b < COMMITS; b++) {
        int base = b * 32;
        fn_job_add(ctx, c, 32);
        fn_job_add(ctx, f, 40);
        fn_job_observe(ctx, h, 0.8);
        char ck[64];
        snprintf(ck, sizeof ck, "{\"next_index\":%d}", base + 32);
        fn_job_set_checkpoint(ctx, ck);
        uint64_t t0 = fn_mono_ns();
        double c0 = thread_cpu_ms();
        int rc = fn_job_commit(ctx, rows32, &base);
        commit_ms[b] = (double)(fn_mono_ns() - t0) / 1e6;
        commit_cpu_ms[b] = thread_cpu_ms() - c0;
        if (rc) return rc;
    }
    return 0;
}

static int tiny_run(fn_job_ctx *ctx, void *user)
{
    (void)ctx, (void)user;
    return 0;
}

/* ---- 10 ms CPU batches ------------------------------------------------------------------------
 */

static atomic_ullong started_ns[1 << 16];

static uint64_t cpu_batch_10ms(void)
{
    uint64_t end = fn_mono_ns() + 10000000u, x = 88172645463325252ull;
    while (fn_mono_ns() < end)
        for (int i = 0; i < 2000; i++)
            x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x;
}

static int cpu_run(fn_job_ctx *ctx, void *user)
{
    (void)user;
    fn_job_id id = fn_job_id_of(ctx);
    atomic_store(&started_ns[id & 0xffff], fn_mono_ns());
    int c = fn_job_counter(ctx, "items_done");
    volatile uint64_t sink = 0;
    for (int b = 0; b < 100000; b++) {
        sink += cpu_batch_10ms();
        fn_job_add(ctx, c, 1);
        char ck[48];
        snprintf(ck, sizeof ck, "{\"next\":%d}", b + 1);
        fn_job_set_checkpoint(ctx, ck);
        int rc = fn_job_commit(ctx, NULL, NULL);
        if (rc) return rc;
        fn_stop s = fn_job_should_stop(ctx);
        if (s == FN_STOP_CANCEL) return FN_ERR_CANCELLED;
        if (s == FN_STOP_YIELD) return FN_ERR_YIELDED;
    }
    return 0;
}

static int mark_run(fn_job_ctx *ctx, void *user)
{
    (void)user;
    atomic_store(&started_ns[fn_job_id_of(ctx) & 0xffff], fn_mono_ns());
    return 0;
}

/* Waits for the state event `want` of job `id` on the events fd, as a UI would. */
static void wait_state_event(fn_engine *e, fn_job_id id, fn_job_state want)
{
    fn_event ev[256];
    for (;;) {
        struct pollfd p = {fn_engine_events_fd(e), POLLIN, 0};
        poll(&p, 1, 1000);
        size_t n;
        fn_engine_events_drain(e, ev, 256, &n);
        int found = 0;
        for (size_t i = 0; i < n; i++) {
            if (ev[i].kind == FN_EVENT_STATE && ev[i].job == id && ev[i].state == want) found = 1;
            fn_event_clear(&ev[i]);
        }
        if (found) return;
    }
}

static void wait_started(fn_job_id id)
{
    while (atomic_load(&started_ns[id & 0xffff]) == 0) {
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}

/* ---- cross_process_event_delay_p99_ms ---------------------------------------------------------
 */

#define XP_COMMITS 300
/* Shared with the forked child: when each commit returned (CLOCK_MONOTONIC is system-wide). */
static _Atomic uint64_t *xp_commit_ns;

static int xp_run(fn_job_ctx *ctx, void *user)
{
    (void)user;
    int c = fn_job_counter(ctx, "seq");
    unsigned seed = 12345;
    for (int b = 1; b <= XP_COMMITS; b++) {
        fn_job_set(ctx, c, b);
        int rc = fn_job_commit(ctx, NULL, NULL);
        if (rc) return rc;
        atomic_store(&xp_commit_ns[b], fn_mono_ns());
        /* 10-30 ms apart, so commits do not fall in step with the reader's ticks. */
        struct timespec ts = {0, (long)(10 + rand_r(&seed) % 21) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* The child: its own engine on the same library, running one job inline. */
static void xp_child(const char *dir, int go_fd)
{
    char b;
    if (read(go_fd, &b, 1) != 1) _exit(2);
    fn_config cfg = bench_cfg();
    cfg.log_path[0] = '\0';
    fn_engine *e;
    if (fn_engine_open(dir, &cfg, &e)) _exit(3);
    fn_handler h = {.type = "xp", .run = xp_run, .gpu_slots = 0, .mem_mb = 0};
    if (fn_engine_register(e, &h) || fn_engine_start(e, 0)) _exit(4);
    if (fn_enqueue(e, "xp", NULL, FN_PRIO_NORMAL, NULL)) _exit(5);
    int rc = fn_engine_run_pending(e, 0, NULL);
    fn_engine_close(e);
    _exit(rc ? 6 : 0);
}

static double cross_process_delay_p99(const fn_config *cfg)
{
    xp_commit_ns = mmap(NULL, sizeof *xp_commit_ns * (XP_COMMITS + 1), PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (xp_commit_ns == MAP_FAILED) abort();
    char *d = tmp_lib();
    int go[2];
    if (pipe(go)) abort();
    /* Fork before this process opens anything (no engine threads or locks to inherit). */
    pid_t pid = fork();
    if (pid < 0) abort();
    if (pid == 0) {
        close(go[1]);
        xp_child(d, go[0]);
    }
    close(go[0]);
    fn_engine *e;
    check(fn_engine_open(d, cfg, &e), NULL, "open");
    check(fn_engine_start(e, 0), e, "start");
    if (write(go[1], "g", 1) != 1) abort();
    close(go[1]);
    static uint64_t seen_ns[XP_COMMITS + 1];
    int seen_max = 0, done = 0;
    fn_event ev[256];
    while (!done) {
        struct pollfd p = {fn_engine_events_fd(e), POLLIN, 0};
        poll(&p, 1, 1000);
        size_t n;
        fn_engine_events_drain(e, ev, 256, &n);
        uint64_t now = fn_mono_ns();
        for (size_t i = 0; i < n; i++) {
            if (ev[i].kind == FN_EVENT_PROGRESS) {
                json_t *o = json_loads(ev[i].json, 0, NULL);
                int seq =
                    (int)json_integer_value(json_object_get(json_object_get(o, "counters"), "seq"));
                json_decref(o);
                for (; seen_max < seq && seen_max < XP_COMMITS; seen_max++)
                    seen_ns[seen_max + 1] = now;
            }
            if (ev[i].kind == FN_EVENT_STATE && ev[i].state == FN_JOB_COMPLETED) done = 1;
            fn_event_clear(&ev[i]);
        }
        int status;
        if (!done && waitpid(pid, &status, WNOHANG) == pid && status != 0) {
            fprintf(stderr, "bench_jobs: the child process failed (%d)\n", status);
            exit(1);
        }
    }
    int status = 0;
    waitpid(pid, &status, 0);
    double *lat = malloc(sizeof *lat * XP_COMMITS);
    int n = 0;
    for (int b = 1; b <= XP_COMMITS; b++) {
        uint64_t c = atomic_load(&xp_commit_ns[b]);
        if (!c || !seen_ns[b]) continue;
        /* Seen before the child even noted the time: no delay to speak of. */
        lat[n++] = seen_ns[b] > c ? (double)(seen_ns[b] - c) / 1e6 : 0;
    }
    if (n < XP_COMMITS) fprintf(stderr, "bench_jobs: only %d of %d commits seen\n", n, XP_COMMITS);
    double r = n ? p99(lat, n) : -1;
    free(lat);
    fn_engine_close(e);
    rm_lib(d);
    munmap(xp_commit_ns, sizeof *xp_commit_ns * (XP_COMMITS + 1));
    return r;
}

/* ---- claim3: 3 competing worker processes ----------------------------------------------------
 */

/* The first column of `sql`'s first row on library `dir` (-1 on failure). */
static long long q_count(const char *dir, const char *sql)
{
    char path[600], err[512];
    snprintf(path, sizeof path, pg_url ? "%s" : "%s/library.db", dir);
    fn_store *s = NULL;
    long long v = -1;
    if (fn_store_open(path, 5000, &s, err, sizeof err)) return -1;
    fn_sql_stmt *st = NULL;
    if (!fn_sql_prepare(s, sql, &st) && fn_sql_step(st) == FN_SQL_ROW)
        v = fn_sql_column_int64(st, 0);
    fn_sql_finalize(st);
    fn_store_close(s);
    return v;
}

#define CLAIM_JOBS 6000
#define CLAIMERS   3

typedef struct claim_result {
    int n, skipped, failed;
    double lat_ms[CLAIM_JOBS];
} claim_result;

/* One worker process: claims until nothing is queued, each claim in its own transaction, the
 * candidates read as the scheduler reads them (the lane's oldest of the type that fit). */
static void claim_child(const char *dir, int idx, int go_fd, claim_result *out)
{
    char b, path[600], err[512];
    if (read(go_fd, &b, 1) != 1) _exit(2);
    snprintf(path, sizeof path, pg_url ? "%s" : "%s/library.db", dir);
    fn_store *s = NULL;
    if (fn_store_open(path, 10000, &s, err, sizeof err)) {
        fprintf(stderr, "bench_jobs: %s\n", err);
        _exit(3);
    }
    fn_js_fit fit = {0, 0, 0, 0, 0, 0};
    for (;;) {
        uint64_t t0 = fn_mono_ns();
        fn_store_tx *tx;
        if (fn_store_begin_rows(s, &tx)) {
            out->failed++;
            continue;
        }
        fn_js_queued q[8];
        int nq = 0, got = 0;
        int rc = fn_js_lane_type_heads(s, FN_PRIO_NORMAL, "tiny", 0, &fit, q, 8, &nq);
        for (int k = 0; !rc && k < nq && !got; k++) {
            fn_js_claim c;
            rc = fn_js_claim_job(s, q[k].id, 1000 + idx, fn_wall_ms(), &c, &got);
            fn_js_claim_clear(&c);
            if (!rc && !got) out->skipped++;
        }
        if (rc || fn_store_commit(tx)) {
            if (!rc) tx = NULL;
            if (tx) fn_store_rollback(tx);
            out->failed++;
            continue;
        }
        if (nq == 0) break;
        if (got && out->n < CLAIM_JOBS) out->lat_ms[out->n++] = (double)(fn_mono_ns() - t0) / 1e6;
    }
    fn_store_close(s);
    _exit(0);
}

static void claim3(const fn_config *cfg)
{
    char *d = tmp_lib();
    fn_engine *e;
    check(fn_engine_open(d, cfg, &e), NULL, "open");
    fn_enqueue_opts o = {"tiny", NULL, NULL, FN_PRIO_NORMAL, -1, -1};
    fn_enqueue_opts *many = malloc(sizeof *many * 100);
    for (int i = 0; i < 100; i++)
        many[i] = o;
    for (int i = 0; i < CLAIM_JOBS; i += 100)
        check(fn_enqueue_many(e, many, 100, NULL), e, "enqueue");
    free(many);
    fn_engine_close(e);
    claim_result *res = mmap(NULL, sizeof *res * CLAIMERS, PROT_READ | PROT_WRITE,
                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (res == MAP_FAILED) abort();
    memset(res, 0, sizeof *res * CLAIMERS);
    int go[2];
    if (pipe(go)) abort();
    pid_t pids[CLAIMERS];
    fflush(NULL);
    for (int i = 0; i < CLAIMERS; i++) {
        if ((pids[i] = fork()) < 0) abort();
        if (pids[i] == 0) {
            close(go[1]);
            claim_child(d, i, go[0], &res[i]);
        }
    }
    close(go[0]);
    uint64_t t0 = fn_mono_ns();
    for (int i = 0; i < CLAIMERS; i++)
        if (write(go[1], "g", 1) != 1) abort();
    close(go[1]);
    for (int i = 0; i < CLAIMERS; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        if (st != 0) {
            fprintf(stderr, "bench_jobs: claim worker %d failed (%d)\n", i, st);
            exit(1);
        }
    }
    double secs = (double)(fn_mono_ns() - t0) / 1e9;
    double *all = malloc(sizeof *all * CLAIM_JOBS * CLAIMERS);
    int n = 0, skipped = 0, failed = 0;
    for (int i = 0; i < CLAIMERS; i++) {
        memcpy(all + n, res[i].lat_ms, sizeof *all * (size_t)res[i].n);
        n += res[i].n;
        skipped += res[i].skipped;
        failed += res[i].failed;
    }
    /* Exactly once: every job claimed, by one worker, and the workers' counts add up. */
    long long running = q_count(d, "SELECT count(*) FROM jobs WHERE state=1");
    if (n != CLAIM_JOBS || running != CLAIM_JOBS) {
        fprintf(stderr, "bench_jobs: %d claims counted, %lld jobs running, %d jobs queued\n", n,
                running, CLAIM_JOBS);
        exit(1);
    }
    qsort(all, (size_t)n, sizeof *all, cmp_d);
    printf("claim3_p50_ms %.3f ms\n", all[n / 2]);
    printf("claim3_p99_ms %.3f ms\n", all[(int)(n * 0.99)]);
    printf("claim3_per_s %.0f claims/s\n", n / secs);
    printf("claim3_skipped %d rows\n", skipped);
    printf("claim3_failed_tx %d tx\n", failed);
    printf("claim3_per_worker %d/%d/%d claims\n", res[0].n, res[1].n, res[2].n);
    free(all);
    munmap(res, sizeof *res * CLAIMERS);
    rm_lib(d);
}

/* ---- xcancel: a cancel from another process ---------------------------------------------------
 */

#define XC_TRIALS 60
static _Atomic uint64_t *xc_cancel_ns; /* shared: when the other process's cancel returned */
static _Atomic uint64_t xc_seen_ns;

static int xc_run(fn_job_ctx *ctx, void *user)
{
    (void)user;
    atomic_store(&started_ns[fn_job_id_of(ctx) & 0xffff], fn_mono_ns());
    for (;;) {
        uint64_t end = fn_mono_ns() + 1000000u;
        volatile uint64_t x = 1;
        while (fn_mono_ns() < end)
            x = x * 6364136223846793005ull + 1;
        if (fn_job_should_stop(ctx) == FN_STOP_CANCEL) {
            atomic_store(&xc_seen_ns, fn_mono_ns());
            return FN_ERR_CANCELLED;
        }
    }
}

/* The other host: its own engine; cancels each job id the runner sends, 20 ms after. */
static void xc_child(const char *dir, int in_fd, int ack_fd)
{
    fn_config cfg = bench_cfg();
    cfg.log_path[0] = '\0';
    fn_engine *e;
    if (fn_engine_open(dir, &cfg, &e)) _exit(3);
    fn_job_id id;
    for (int t = 0; t < XC_TRIALS; t++) {
        if (read(in_fd, &id, sizeof id) != sizeof id) _exit(4);
        struct timespec ts = {0, 20000000L};
        nanosleep(&ts, NULL);
        if (fn_job_cancel(e, id)) _exit(5);
        atomic_store(&xc_cancel_ns[t], fn_mono_ns());
        if (write(ack_fd, "c", 1) != 1) _exit(6);
    }
    fn_engine_close(e);
    _exit(0);
}

static double xcancel_p99(const fn_config *cfg)
{
    xc_cancel_ns = mmap(NULL, sizeof *xc_cancel_ns * XC_TRIALS, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (xc_cancel_ns == MAP_FAILED) abort();
    char *d = tmp_lib();
    fn_engine *e;
    check(fn_engine_open(d, cfg, &e), NULL, "open"); /* creates the tables before the child */
    fn_handler h = {.type = "xc", .run = xc_run, .gpu_slots = 0, .mem_mb = 0};
    check(fn_engine_register(e, &h), e, "register");
    int to_child[2], ack[2];
    if (pipe(to_child) || pipe(ack)) abort();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) abort();
    if (pid == 0) {
        close(to_child[1]);
        close(ack[0]);
        xc_child(d, to_child[0], ack[1]);
    }
    close(to_child[0]);
    close(ack[1]);
    check(fn_engine_start(e, 1), e, "start");
    double lat[XC_TRIALS];
    for (int t = 0; t < XC_TRIALS; t++) {
        fn_job_id id;
        atomic_store(&xc_seen_ns, 0);
        check(fn_enqueue(e, "xc", NULL, FN_PRIO_NORMAL, &id), e, "enqueue");
        wait_started(id);
        if (write(to_child[1], &id, sizeof id) != sizeof id) abort();
        char b;
        if (read(ack[0], &b, 1) != 1) abort();
        fn_job_state st;
        check(fn_job_wait(e, id, 10000, &st), e, "wait");
        uint64_t c = atomic_load(&xc_cancel_ns[t]), s = atomic_load(&xc_seen_ns);
        lat[t] = s > c ? (double)(s - c) / 1e6 : 0;
    }
    int status;
    waitpid(pid, &status, 0);
    fn_engine_close(e);
    rm_lib(d);
    munmap(xc_cancel_ns, sizeof *xc_cancel_ns * XC_TRIALS);
    double med[XC_TRIALS];
    memcpy(med, lat, sizeof med);
    qsort(med, XC_TRIALS, sizeof *med, cmp_d);
    printf("xcancel_p50_ms %.1f ms\n", med[XC_TRIALS / 2]);
    return p99(lat, XC_TRIALS);
}

/* FN_BENCH_ONLY=durable,cancel ... runs only the named parts (for profiling). On PostgreSQL the
 * parts that measure SQLite's file (bulk, recovery, retry, events ...) are left out unless named.
 */
static int want(const char *name)
{
    const char *only = getenv("FN_BENCH_ONLY");
    if (!only && pg_url) only = "durable,claim3,xcancel,cross";
    /* SQLite's default run is as it was; the new parts run there when named. */
    if (!only) return strcmp(name, "claim3") != 0 && strcmp(name, "xcancel") != 0;
    return strstr(only, name) != NULL;
}

int main(int argc, char **argv)
{
    (void)argc, (void)argv;
    pg_setup();
    fn_config cfg = bench_cfg();
    cfg.log_path[0] = '\0';
    FILE *la = fopen("/proc/loadavg", "r");
    double load = -1;
    if (la) {
        if (fscanf(la, "%lf", &load) != 1) load = -1;
        fclose(la);
    }
    printf("load_avg_1m %.2f load\n", load);

    /* item_overhead_ns */
    if (want("overhead")) {
        char *d = tmp_lib();
        fn_engine *e;
        check(fn_engine_open(d, &cfg, &e), NULL, "open");
        fn_handler h = {.type = "overhead", .run = overhead_run, .gpu_slots = 0, .mem_mb = 0};
        check(fn_engine_register(e, &h), e, "register");
        check(fn_engine_start(e, 0), e, "start");
        check(fn_enqueue(e, "overhead", NULL, FN_PRIO_NORMAL, NULL), e, "enqueue");
        check(fn_engine_run_pending(e, 0, NULL), e, "run");
        printf("item_overhead_ns %.1f ns\n", overhead_ns);
        fn_engine_close(e);
        rm_lib(d);
    }
    fflush(stdout);

    /* batch_commit_p99_ms */
    if (want("commit")) {
        char *d = tmp_lib();
        fn_engine *e;
        check(fn_engine_open(d, &cfg, &e), NULL, "open");
        fn_handler h = {.type = "commit", .run = commit_run, .gpu_slots = 0, .mem_mb = 0};
        check(fn_engine_register(e, &h), e, "register");
        check(fn_engine_start(e, 0), e, "start");
        check(fn_enqueue(e, "commit", NULL, FN_PRIO_NORMAL, NULL), e, "enqueue");
        check(fn_engine_run_pending(e, 0, NULL), e, "run");
        printf("batch_commit_p99_ms %.3f ms\n", p99(commit_ms, COMMITS));
        printf("batch_commit_cpu_p99_ms %.3f ms\n", p99(commit_cpu_ms, COMMITS));
        fn_engine_close(e);
        rm_lib(d);
    }
    fflush(stdout);

    /* durable_jobs_per_s */
    if (want("durable")) {
        char *d = tmp_lib();
        fn_engine *e;
        fn_config c = cfg;
        c.events_queue_max = 1 << 20;
        check(fn_engine_open(d, &c, &e), NULL, "open");
        fn_handler h = {.type = "tiny", .run = tiny_run, .gpu_slots = 0, .mem_mb = 0};
        check(fn_engine_register(e, &h), e, "register");
        int threads = getenv("FN_BENCH_THREADS") ? atoi(getenv("FN_BENCH_THREADS")) : -1;
        check(fn_engine_start(e, threads), e, "start");
        const int n = 20000, chunk = 100;
        fn_enqueue_opts o = {"tiny", NULL, NULL, FN_PRIO_NORMAL, -1, -1};
        fn_enqueue_opts *many = malloc(sizeof *many * (size_t)chunk);
        for (int i = 0; i < chunk; i++)
            many[i] = o;
        fn_job_id last = 0;
        double c0 = cpu_s();
        uint64_t t0 = fn_mono_ns();
        fn_event ev[1024];
        size_t ne;
        int completed = 0;
        for (int i = 0; i < n; i += chunk) {
            fn_job_id ids[100];
            check(fn_enqueue_many(e, many, (size_t)chunk, ids), e, "enqueue");
            last = ids[chunk - 1];
        }
        if (threads == 0) check(fn_engine_run_pending(e, 0, NULL), e, "run");
        /* Count completions from the events (each is reported after its commit). */
        while (completed < n) {
            struct pollfd p = {fn_engine_events_fd(e), POLLIN, 0};
            poll(&p, 1, 1000);
            fn_engine_events_drain(e, ev, 1024, &ne);
            for (size_t i = 0; i < ne; i++) {
                if (ev[i].kind == FN_EVENT_STATE && ev[i].state == FN_JOB_COMPLETED) completed++;
                fn_event_clear(&ev[i]);
            }
        }
        double secs = (double)(fn_mono_ns() - t0) / 1e9;
        fn_job_state st;
        check(fn_job_wait(e, last, 0, &st), e, "wait");
        printf("durable_jobs_per_s %.0f jobs/s\n", n / secs);
        printf("durable_jobs_per_cpu_s %.0f jobs/cpu-s\n", n / (cpu_s() - c0));
        free(many);
        fn_engine_close(e);
        rm_lib(d);
    }
    fflush(stdout);

    /* claim_other_types_per_s: 10k jobs of a type another process runs come first in the lane;
     * the workers must reach the runnable ones behind them at full speed. */
    if (want("other")) {
        char *d = tmp_lib();
        fn_engine *e;
        fn_config c = cfg;
        c.events_queue_max = 1 << 20;
        check(fn_engine_open(d, &c, &e), NULL, "open");
        fn_handler h = {.type = "tiny", .run = tiny_run, .gpu_slots = 0, .mem_mb = 0};
        check(fn_engine_register(e, &h), e, "register");
        const int n_other = 10000, n = 20000;
        fn_enqueue_opts *many = malloc(sizeof *many * (size_t)n);
        for (int i = 0; i < n_other; i++)
            many[i] = (fn_enqueue_opts){"elsewhere", NULL, NULL, FN_PRIO_NORMAL, -1, -1};
        check(fn_enqueue_many(e, many, (size_t)n_other, NULL), e, "enqueue others");
        for (int i = 0; i < n; i++)
            many[i] = (fn_enqueue_opts){"tiny", NULL, NULL, FN_PRIO_NORMAL, -1, -1};
        check(fn_enqueue_many(e, many, (size_t)n, NULL), e, "enqueue");
        fn_event ev[1024];
        size_t ne;
        do { /* the queued events */
            fn_engine_events_drain(e, ev, 1024, &ne);
            for (size_t i = 0; i < ne; i++)
                fn_event_clear(&ev[i]);
        } while (ne);
        double c0 = cpu_s();
        uint64_t t0 = fn_mono_ns();
        check(fn_engine_start(e, -1), e, "start");
        int completed = 0;
        while (completed < n) {
            struct pollfd p = {fn_engine_events_fd(e), POLLIN, 0};
            poll(&p, 1, 1000);
            fn_engine_events_drain(e, ev, 1024, &ne);
            for (size_t i = 0; i < ne; i++) {
                if (ev[i].kind == FN_EVENT_STATE && ev[i].state == FN_JOB_COMPLETED) completed++;
                fn_event_clear(&ev[i]);
            }
        }
        double secs = (double)(fn_mono_ns() - t0) / 1e9;
        printf("claim_other_types_per_s %.0f claims/s\n", n / secs);
        printf("claim_other_types_per_cpu_s %.0f claims/cpu-s\n", n / (cpu_s() - c0));
        free(many);
        fn_engine_close(e);
        rm_lib(d);
    }
    fflush(stdout);

    /* bulk_enqueue_jobs_per_s and recovery_ms */
    if (want("bulk") || want("recovery")) {
        char *d = tmp_lib();
        fn_engine *e;
        fn_config c = cfg;
        check(fn_engine_open(d, &c, &e), NULL, "open");
        const int n = 100000;
        fn_enqueue_opts *many = malloc(sizeof *many * (size_t)n);
        for (int i = 0; i < n; i++)
            many[i] = (fn_enqueue_opts){
                "ingest", "{\"root\":\"/photos\"}", NULL, FN_PRIO_BACKGROUND, -1, -1};
        double c0 = cpu_s();
        uint64_t t0 = fn_mono_ns();
        check(fn_enqueue_many(e, many, (size_t)n, NULL), e, "bulk enqueue");
        double secs = (double)(fn_mono_ns() - t0) / 1e9;
        printf("bulk_enqueue_jobs_per_s %.0f jobs/s\n", n / secs);
        printf("bulk_enqueue_jobs_per_cpu_s %.0f jobs/cpu-s\n", n / (cpu_s() - c0));
        fflush(stdout);
        free(many);
        fn_engine_close(e);
        /* 1k of them "running" under an owner whose process is gone. */
        char path[600];
        snprintf(path, sizeof path, "%s/library.db", d);
        sqlite3 *db;
        sqlite3_open(path, &db);
        sqlite3_exec(db,
                     "INSERT INTO job_owners(id,pid,host,started_at,heartbeat_at) "
                     "VALUES(77,999999,'gone-host',0,0);"
                     "UPDATE jobs SET state=1, owner=77 WHERE id % 100 = 0;",
                     NULL, NULL, NULL);
        sqlite3_close(db);
        t0 = fn_mono_ns();
        check(fn_engine_open(d, &c, &e), NULL, "reopen");
        double ms = (double)(fn_mono_ns() - t0) / 1e6;
        fn_job_info **list;
        size_t nl;
        check(fn_job_list(e, FN_JOB_RUNNING, 0, &list, &nl), e, "list");
        for (size_t i = 0; i < nl; i++)
            fn_job_info_free(list[i]);
        free(list);
        if (nl != 0) fprintf(stderr, "bench_jobs: recovery left %zu running\n", nl);
        printf("recovery_ms %.1f ms\n", ms);
        fn_engine_close(e);
        rm_lib(d);
    }
    fflush(stdout);

    /* retry_100k_enqueue_ms */
    if (want("retry")) {
        char *d = tmp_lib();
        fn_engine *e;
        check(fn_engine_open(d, &cfg, &e), NULL, "open");
        fn_job_id id;
        check(fn_enqueue(e, "ingest", "{}", FN_PRIO_NORMAL, &id), e, "enqueue");
        char path[600], sql[600];
        snprintf(path, sizeof path, "%s/library.db", d);
        sqlite3 *db;
        sqlite3_open(path, &db);
        snprintf(sql, sizeof sql,
                 "UPDATE jobs SET state=4 WHERE id=%lld;"
                 "WITH RECURSIVE k(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM k WHERE x < 100000)"
                 " INSERT INTO job_errors(job, item, code, message, resolution)"
                 " SELECT %lld, '/photos/2026/' || x || '.jpg', 'corrupt', 'damaged', 0 FROM k;"
                 "UPDATE jobs SET n_errors=100000 WHERE id=%lld;",
                 (long long)id, (long long)id, (long long)id);
        if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) abort();
        sqlite3_close(db);
        fn_followup f;
        uint64_t t0 = fn_mono_ns();
        check(fn_job_retry_ex(e, id, NULL, &f), e, "retry");
        double ms = (double)(fn_mono_ns() - t0) / 1e6;
        if (f.items != 100000) fprintf(stderr, "bench_jobs: retry took %zu items\n", f.items);
        printf("retry_100k_enqueue_ms %.1f ms\n", ms);
        fn_engine_close(e);
        rm_lib(d);
    }
    fflush(stdout);

    /* cancel_latency_p99_ms and interactive_pickup_p99_ms */
    if (want("cancel") || want("pickup")) {
        char *d = tmp_lib();
        fn_engine *e;
        check(fn_engine_open(d, &cfg, &e), NULL, "open");
        fn_handler h = {.type = "cpu", .run = cpu_run, .gpu_slots = 0, .mem_mb = 0};
        fn_handler hm = {.type = "mark", .run = mark_run, .gpu_slots = 0, .mem_mb = 0};
        check(fn_engine_register(e, &h), e, "register");
        check(fn_engine_register(e, &hm), e, "register");
        check(fn_engine_start(e, 2), e, "start");
        enum { REPS = 40 };
        double lat[REPS];
        for (int r = 0; r < REPS; r++) {
            fn_job_id id;
            check(fn_enqueue(e, "cpu", NULL, FN_PRIO_NORMAL, &id), e, "enqueue");
            wait_started(id);
            struct timespec ts = {0, (long)(rand() % 10) * 1000000L};
            nanosleep(&ts, NULL); /* cancel at a random point within a batch */
            uint64_t t0 = fn_mono_ns();
            int crc = fn_job_cancel(e, id);
            if (crc) {
                fn_job_info *j = NULL;
                if (fn_job_inspect(e, id, &j) == 0)
                    fprintf(stderr, "bench_jobs: job %lld is %s: %s\n", (long long)id,
                            fn_job_state_name(j->state), j->fail_reason ? j->fail_reason : "");
                fn_job_info_free(j);
            }
            check(crc, e, "cancel");
            wait_state_event(e, id, FN_JOB_CANCELLED);
            lat[r] = (double)(fn_mono_ns() - t0) / 1e6;
        }
        printf("cancel_latency_p99_ms %.2f ms\n", p99(lat, REPS));
        fflush(stdout);

        /* Both workers busy with background jobs of 10 ms batches. */
        fn_job_id bg[2];
        for (int i = 0; i < 2; i++) {
            check(fn_enqueue(e, "cpu", NULL, FN_PRIO_BACKGROUND, &bg[i]), e, "enqueue");
            wait_started(bg[i]);
        }
        for (int r = 0; r < REPS; r++) {
            /* Let the yielded background job get its worker back first. */
            struct timespec ts = {0, 20000000L + (long)(rand() % 10) * 1000000L};
            nanosleep(&ts, NULL);
            fn_job_id id;
            uint64_t t0 = fn_mono_ns();
            check(fn_enqueue(e, "mark", NULL, FN_PRIO_INTERACTIVE, &id), e, "enqueue");
            wait_started(id);
            lat[r] = (double)(atomic_load(&started_ns[id & 0xffff]) - t0) / 1e6;
            wait_state_event(e, id, FN_JOB_COMPLETED);
        }
        printf("interactive_pickup_p99_ms %.2f ms\n", p99(lat, REPS));
        fflush(stdout);
        for (int i = 0; i < 2; i++)
            fn_job_cancel(e, bg[i]);
        fn_engine_close(e);
        rm_lib(d);
    }

    /* cross_process_event_delay_p99_ms */
    if (want("cross")) {
        printf("cross_process_event_delay_p99_ms %.1f ms\n", cross_process_delay_p99(&cfg));
        fflush(stdout);
    }

    /* events_drained_per_s */
    if (want("events")) {
        char *d = tmp_lib();
        fn_engine *e;
        check(fn_engine_open(d, &cfg, &e), NULL, "open");
        const int n = 1000000;
        for (int i = 0; i < n; i++)
            fn_evq_push_state(&e->ev, i, FN_JOB_RUNNING);
        fn_event *ev = malloc(sizeof *ev * 4096);
        size_t total = 0, got;
        uint64_t t0 = fn_mono_ns();
        do {
            fn_engine_events_drain(e, ev, 4096, &got);
            for (size_t i = 0; i < got; i++)
                fn_event_clear(&ev[i]);
            total += got;
        } while (got);
        double secs = (double)(fn_mono_ns() - t0) / 1e9;
        printf("events_drained_per_s %.0f events/s\n", (double)total / secs);
        free(ev);
        fn_engine_close(e);
        rm_lib(d);
    }
    fflush(stdout);

    if (want("claim3")) {
        claim3(&cfg);
        fflush(stdout);
    }
    if (want("xcancel")) {
        printf("xcancel_p99_ms %.1f ms\n", xcancel_p99(&cfg));
        fflush(stdout);
    }
    return 0;
}
