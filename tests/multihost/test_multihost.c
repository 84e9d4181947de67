/* test_multihost.c: one library, several hosts, through the built `facenames` program (suite
 * `multihost`). Three `facenames worker` processes act as three hosts (different --host, the photo
 * tree reached through a different mount each: two symlinks, and a copy for the third host, so
 * that one host really reads other files than the others and must find the photos by root and
 * relative path) and ingest one tree into one SQLite library:
 *   - roots: a photo reached through another host's mount of its root is recognised (same root
 *     and relative path), never stored twice; a folder no root maps is a new root, whose files
 *     are still recognised by content at the same relative paths (recorded as copies);
 *   - kill: one worker is SIGKILLed at a random moment of the ingest (10 trials): another one
 *     recovers the job within the lease (owner timeout plus one recovery period, with slack for a
 *     busy machine) and the library ends with every photo once and exactly the faces of a
 *     single-host run;
 *   - stale: the running worker is SIGSTOPped past the lease, another takes the job over, then
 *     the stopped one is continued: its commits are refused (fenced by owner), and the result is
 *     still exact;
 *   - shards: the same ingest split into shards of 3 photos (ingest.shard_photos) is shared by
 *     the three hosts (each reads its shards through its own mount); every photo once, exactly the
 *     faces of the single-host run; and 10 trials that SIGKILL a worker running a shard at a
 *     random moment: another recovers that shard within the lease, and the result is still exact.
 * FACENAMES_TEST_SEED replays the random kill moments. With FN_TEST_BACKEND=pg (suite
 * multihost-pg) every library is a fresh database on the program's throwaway PostgreSQL server
 * (tests/pg/pg_fixture.h) and the checks read it through the libpq driver: the same proof on
 * both backends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>

#include "../cli/cli_json.h"
#include "../pg/pg_fixture.h"

enum { N_WORKERS = 3, KILL_TRIALS = 10, OWNER_TIMEOUT_MS = 1500, HEARTBEAT_MS = 200 };

static char models_env[1100];
static char tree[600];              /* the real photo tree */
static char mounts[N_WORKERS][600]; /* each host's mount of it (symlinks; the last a copy) */
static char ref_lib[600];           /* the single-host run */
static int n_photos;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A library named `name` for this run: a folder in the test's directory, or on PostgreSQL a fresh
 * database's address. */
static void lib_at(char *out, size_t n, const char *name)
{
    if (!fn_test_on_pg()) {
        snprintf(out, n, "%s/%s", harness_tmp, name);
        return;
    }
    char *url = fn_pg_fixture_db();
    if (!url) abort(); /* FN_TEST_BACKEND=pg with FN_TEST_PG=0: nothing to run on */
    snprintf(out, n, "%s", url);
    free(url);
}

/* One integer (or the text of one value) from a library on PostgreSQL; -1 / NULL on error. */
static long long pg_int(const char *lib, const char *sql, char **text)
{
    fn_pg_conn *c = NULL;
    fn_pg_stmt *st = NULL;
    long long v = -1;
    if (fn_pg_connect(lib, &c) == FN_PG_OK && fn_pg_prepare(c, sql, &st) == FN_PG_OK) {
        if (fn_pg_step(st) == FN_PG_ROW) {
            v = fn_pg_column_int64(st, 0);
            if (text) *text = strdup(fn_pg_column_text(st, 0) ? fn_pg_column_text(st, 0) : "");
        }
        fn_pg_finalize(st);
    }
    fn_pg_close(c);
    return v;
}

/* One integer from the library (-1 on error). */
static long long q_int(const char *lib, const char *sql)
{
    if (fn_test_on_pg()) return pg_int(lib, sql, NULL);
    char path[700];
    snprintf(path, sizeof path, "%s/library.db", lib);
    sqlite3 *db;
    long long v = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
            if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
            sqlite3_finalize(st);
        }
    }
    sqlite3_close(db);
    return v;
}

/* The photos and their face counts, one "rel status faces" line each, by root-relative path
 * (hosts store a photo under the path of the mount they first read it through) (malloc'ed). */
static char *photo_faces(const char *lib)
{
    if (fn_test_on_pg()) {
        char *t = NULL;
        pg_int(lib,
               "SELECT coalesce(string_agg(p.rel || ' ' || p.status || ' ' || (SELECT count(*) FROM"
               " faces f WHERE f.photo_id = p.id) || E'\\n', '' ORDER BY p.rel COLLATE \"C\"), '')"
               " FROM photos p",
               &t);
        return t ? t : strdup("");
    }
    char path[700];
    snprintf(path, sizeof path, "%s/library.db", lib);
    sqlite3 *db;
    size_t cap = 1 << 16, len = 0;
    char *out = calloc(1, cap);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(db,
                               "SELECT p.rel, p.status, (SELECT count(*) FROM faces f WHERE"
                               " f.photo_id = p.id) FROM photos p ORDER BY p.rel",
                               -1, &st, NULL) == SQLITE_OK) {
            while (sqlite3_step(st) == SQLITE_ROW && len + 1200 < cap)
                len += (size_t)snprintf(
                    out + len, cap - len, "%s %s %d\n", (const char *)sqlite3_column_text(st, 0),
                    (const char *)sqlite3_column_text(st, 1), sqlite3_column_int(st, 2));
            sqlite3_finalize(st);
        }
    }
    sqlite3_close(db);
    return out;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

/* The tree: the sample photos twice, in two folders (12 photos); three mounts of it; and the
 * single-host reference run over it. */
static int setup(void **state)
{
    (void)state;
    if (harness_setup() != 0) return -1;
    const char *samples = getenv("FACENAMES_SAMPLES");
    const char *m = getenv("FACENAMES_MODELS");
    if (!samples || !m) return 0; /* each test skips */
    snprintf(models_env, sizeof models_env, "FACENAMES_MODELS_DIR=%s", m);
    snprintf(tree, sizeof tree, "%s/tree", harness_tmp);
    if (sh("mkdir -p '%s/one' '%s/two' && cp -p '%s'/*.jpg '%s/one/' && cp -p '%s'/*.jpg "
           "'%s/two/'",
           tree, tree, samples, tree, samples, tree) != 0)
        return -1;
    for (int i = 0; i < N_WORKERS; i++) {
        snprintf(mounts[i], sizeof mounts[i], "%s/mnt-host%d", harness_tmp, i + 1);
        if (i < N_WORKERS - 1 ? symlink(tree, mounts[i]) != 0
                              : sh("cp -rp '%s' '%s'", tree, mounts[i]) != 0)
            return -1;
    }
    lib_at(ref_lib, sizeof ref_lib, "reference");
    const char *env[] = {models_env, NULL};
    struct cli_result r =
        cli_run(env, (const char *[]){"--library", ref_lib, "--set", "workers.cpu_max=1", "--set",
                                      "worker.host=reference", "ingest", tree, NULL});
    int ok = r.code == 0;
    if (!ok) fprintf(stderr, "reference ingest failed:\n%s%s", r.out, r.err);
    cli_result_free(&r);
    n_photos = (int)q_int(ref_lib, "SELECT count(*) FROM photos");
    return ok && n_photos == 12 ? 0 : -1;
}

/* Every worker spawned, so that a failed test (cmocka leaves it at the failed check) leaves no
 * worker running behind it: the group teardown kills what is left. */
static pid_t spawned[4 * N_WORKERS * (KILL_TRIALS + 2)];
static size_t n_spawned;

static int teardown(void **state)
{
    /* Only children not reaped yet (waitpid says so): a reaped one's pid may be another's now. */
    for (size_t i = 0; i < n_spawned; i++) {
        if (waitpid(spawned[i], NULL, WNOHANG) != 0) continue;
        kill(spawned[i], SIGKILL);
        waitpid(spawned[i], NULL, 0);
    }
    return harness_group_teardown(state);
}

/* ---- roots ------------------------------------------------------------------------------------
 */

static void test_roots_across_mounts(void **state)
{
    (void)state;
    if (!tree[0]) skip();
    const char *env[] = {models_env, NULL};
    char lib[600], copy[600];
    lib_at(lib, sizeof lib, "roots");
    /* Another host's mount that is not this machine's same folder: a copy, so realpath cannot
     * make the paths agree. */
    snprintf(copy, sizeof copy, "%s/copy", harness_tmp);
    assert_int_equal(sh("cp -rp '%s' '%s'", tree, copy), 0);

    struct cli_result r =
        cli_run(env, (const char *[]){"--library", lib, "--set", "worker.host=host-a", "ingest",
                                      tree, NULL});
    CHECK(r, r.code == 0);
    cli_result_free(&r);
    assert_int_equal(q_int(lib, "SELECT count(*) FROM photos"), n_photos);
    assert_int_equal(q_int(lib, "SELECT count(*) FROM photos WHERE root IS NULL"), 0);
    assert_int_equal(q_int(lib, "SELECT count(*) FROM roots"), 1);

    /* host-b mounts the root at the copy: its ingest recognises every photo */
    r = cli_run(NULL, (const char *[]){"--library", lib, "roots", "map", "tree", copy, "--host",
                                       "host-b", NULL});
    CHECK(r, r.code == 0);
    cli_result_free(&r);
    json_t *j = cli_run_json(env, (const char *[]){"--library", lib, "--set", "worker.host=host-b",
                                                   "ingest", copy, "--json", NULL});
    assert_non_null(j);
    assert_int_equal(job_counter(j, "skipped_unchanged"), n_photos);
    assert_int_equal(job_counter(j, "faces_found"), 0);
    json_decref(j);
    assert_int_equal(q_int(lib, "SELECT count(*) FROM photos"), n_photos);
    assert_int_equal(q_int(lib, "SELECT count(*) FROM roots"), 1);

    /* host-c has no mapping: the copy is a new root, but its files are the known photos by
     * content at the same relative paths (design decision 34): recorded as their copies, no face
     * detected again. (Without the mapping each file is hashed: the mapping is what keeps the
     * fast path.) */
    j = cli_run_json(env, (const char *[]){"--library", lib, "--set", "worker.host=host-c",
                                           "ingest", copy, "--json", NULL});
    assert_non_null(j);
    assert_int_equal(job_counter(j, "recognised_by_content"), n_photos);
    assert_int_equal(job_counter(j, "faces_found"), 0);
    json_decref(j);
    assert_int_equal(q_int(lib, "SELECT count(*) FROM roots"), 2);
    assert_int_equal(q_int(lib, "SELECT count(*) FROM photos"), n_photos);
    assert_int_equal(q_int(lib, "SELECT count(*) FROM photo_copies c JOIN photos p ON"
                                " p.id = c.photo_id WHERE c.rel = p.rel AND c.root <> p.root"),
                     n_photos);
    j = cli_run_json(NULL, (const char *[]){"--library", lib, "roots", "list", "--json", NULL});
    assert_non_null(j);
    assert_int_equal(json_array_size(j), 3); /* tree on host-a and host-b, copy on host-c */
    json_decref(j);
}

/* ---- workers on three hosts -------------------------------------------------------------------
 */

typedef struct hosts {
    char lib[600];
    pid_t pid[N_WORKERS];
    char tag[N_WORKERS][32];
    char job[32];
} hosts;

static char timeout_set[64], heartbeat_set[64];

/* The pid of the worker running the job (0 when none is). */
static pid_t runner(const hosts *h);

/* A fresh library with the ingest of the tree (through host 1's mount) queued, and three workers
 * of one thread each, one per host and mount. `first` >= 0: that host's worker starts alone and
 * the others only once it has claimed the job. */
static void hosts_start_ex(hosts *h, const char *name, int first, int shard_photos)
{
    const char *env[] = {models_env, NULL};
    lib_at(h->lib, sizeof h->lib, name);
    snprintf(timeout_set, sizeof timeout_set, "jobs.owner_timeout_ms=%d", OWNER_TIMEOUT_MS);
    snprintf(heartbeat_set, sizeof heartbeat_set, "jobs.heartbeat_ms=%d", HEARTBEAT_MS);
    struct cli_result r;
    for (int i = 0; i < N_WORKERS; i++) {
        /* Each host maps the root at its own mount. */
        char host[32];
        snprintf(host, sizeof host, "host%d", i + 1);
        r = cli_run(NULL, (const char *[]){"--library", h->lib, "roots", i ? "map" : "add", "tree",
                                           mounts[i], "--host", host, NULL});
        CHECK(r, r.code == 0);
        cli_result_free(&r);
    }
    char shard_set[64];
    snprintf(shard_set, sizeof shard_set, "ingest.shard_photos=%d", shard_photos);
    r = cli_run(env,
                (const char *[]){"--library", h->lib, "--set", "worker.host=host1", "--set",
                                 shard_set, "ingest", mounts[0], "--batch", "1", "--detach", NULL});
    CHECK(r, r.code == 0);
    cli_result_free(&r);
    snprintf(h->job, sizeof h->job, "%lld",
             q_int(h->lib, "SELECT id FROM jobs WHERE type='ingest' ORDER BY id LIMIT 1"));
    for (int k = -1; k < N_WORKERS; k++) {
        int i = k < 0 ? first : k;
        if (i < 0 || (k >= 0 && i == first)) continue;
        char host[32];
        snprintf(host, sizeof host, "host%d", i + 1);
        snprintf(h->tag[i], sizeof h->tag[i], "%s-w%d", name, i + 1);
        h->pid[i] = cli_spawn(env,
                              (const char *[]){"--library", h->lib, "--set", timeout_set, "--set",
                                               heartbeat_set, "worker", "--host", host, "--threads",
                                               "1", NULL},
                              h->tag[i]);
        if (h->pid[i] > 0 && n_spawned < sizeof spawned / sizeof spawned[0])
            spawned[n_spawned++] = h->pid[i];
        for (long long t0 = now_ms(); k < 0 && !runner(h) && now_ms() - t0 < 20000;)
            sleep_ms(20);
    }
}

static void hosts_start(hosts *h, const char *name, int first)
{
    hosts_start_ex(h, name, first, 0);
}

static pid_t runner(const hosts *h)
{
    return (pid_t)q_int(h->lib, "SELECT coalesce((SELECT o.pid FROM jobs j JOIN job_owners o ON"
                                " o.id = j.owner WHERE j.type='ingest' AND j.state=1), 0)");
}

static int job_state_is(const hosts *h, int state)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT state FROM jobs WHERE id=%s", h->job);
    return q_int(h->lib, sql) == state;
}

/* Stops the live workers (SIGTERM: they give their jobs back) and reaps them all. */
static void hosts_stop(hosts *h)
{
    for (int i = 0; i < N_WORKERS; i++) {
        if (h->pid[i] <= 0) continue;
        kill(h->pid[i], SIGCONT);
        kill(h->pid[i], SIGTERM);
        struct cli_result r = cli_wait(h->pid[i], h->tag[i]);
        cli_result_free(&r);
        h->pid[i] = 0;
    }
}

/* Every photo once, with exactly the faces of the single-host run. */
static void check_exact(const hosts *h)
{
    char *want = photo_faces(ref_lib), *got = photo_faces(h->lib);
    if (strcmp(want, got) != 0) {
        print_error("single host:\n%s\nthree hosts:\n%s\n", want, got);
        fail();
    }
    free(want);
    free(got);
    assert_int_equal(q_int(h->lib, "SELECT count(*) FROM photos"), n_photos);
    assert_int_equal(
        q_int(h->lib, "SELECT count(*) FROM (SELECT DISTINCT root, rel FROM photos) AS d"),
        n_photos);
    assert_int_equal(q_int(h->lib, "SELECT count(*) FROM faces"),
                     q_int(ref_lib, "SELECT count(*) FROM faces"));
}

/* Waits for the job to finish (state 3: FN_JOB_COMPLETED); fails after `ms`. */
static void wait_done(const hosts *h, int ms)
{
    long long t0 = now_ms();
    while (!job_state_is(h, 3) && now_ms() - t0 < ms)
        sleep_ms(50);
    if (!job_state_is(h, 3)) {
        char sql[128];
        snprintf(sql, sizeof sql, "SELECT state FROM jobs WHERE id=%s", h->job);
        print_error("job %s did not complete (state %lld)\n", h->job, q_int(h->lib, sql));
        fail();
    }
}

/* The index of pid among the workers. */
static int worker_of(const hosts *h, pid_t pid)
{
    for (int i = 0; i < N_WORKERS; i++)
        if (h->pid[i] == pid) return i;
    return -1;
}

/* The lease: an owner silent this long is gone, and live owners look four times in it; a busy
 * shared machine gets half as much again. */
static const long long LEASE_MS = OWNER_TIMEOUT_MS + OWNER_TIMEOUT_MS / 2;

static void test_kill_one_host(void **state)
{
    (void)state;
    if (!tree[0]) skip();
    const char *seed_s = getenv("FACENAMES_TEST_SEED");
    unsigned seed = seed_s ? (unsigned)strtoul(seed_s, NULL, 10) : (unsigned)time(NULL);
    printf("test_kill_one_host: seed %u (replay with FACENAMES_TEST_SEED=%u)\n", seed, seed);
    srand(seed);
    for (int trial = 0; trial < KILL_TRIALS; trial++) {
        hosts h;
        memset(&h, 0, sizeof h);
        char name[32];
        snprintf(name, sizeof name, "kill%d", trial);
        hosts_start(&h, name, -1);
        /* A random moment while the job runs: from its claim to most of the way through. */
        long long t0 = now_ms();
        pid_t victim = 0;
        while (!(victim = runner(&h)) && now_ms() - t0 < 20000)
            sleep_ms(20);
        assert_true(victim > 0);
        sleep_ms(rand() % 3000);
        victim = runner(&h);
        if (!victim) { /* finished before the moment came: nothing to kill this time */
            wait_done(&h, 20000);
            check_exact(&h);
            hosts_stop(&h);
            continue;
        }
        int w = worker_of(&h, victim);
        assert_true(w >= 0);
        kill(victim, SIGKILL);
        struct cli_result r = cli_wait(victim, h.tag[w]);
        cli_result_free(&r);
        h.pid[w] = 0;
        long long killed = now_ms();
        /* Another host takes the job over within the lease. */
        pid_t next = 0;
        while (!job_state_is(&h, 3) && now_ms() - killed < 30000) {
            next = runner(&h);
            if (next && next != victim) break;
            sleep_ms(20);
        }
        long long took = now_ms() - killed;
        printf("trial %d: host%d killed; recovered in %lld ms\n", trial, w + 1, took);
        assert_true(job_state_is(&h, 3) || (next && next != victim));
        assert_true(took <= 2 * LEASE_MS);
        wait_done(&h, 60000);
        check_exact(&h);
        hosts_stop(&h);
    }
}

/* Whether another connection can take the write lock now (the stopped process holds none). */
static int writable(const char *lib)
{
    if (fn_test_on_pg()) {
        fn_pg_conn *c = NULL;
        fn_pg_stmt *st = NULL;
        int ok = 0;
        /* the library's advisory write lock (src/store/store_pg.c), tried without waiting */
        if (fn_pg_connect(lib, &c) == FN_PG_OK && fn_pg_exec(c, "BEGIN") == FN_PG_OK &&
            fn_pg_prepare(c, "SELECT pg_try_advisory_xact_lock(1181634157)", &st) == FN_PG_OK) {
            ok = fn_pg_step(st) == FN_PG_ROW && fn_pg_column_int(st, 0);
            fn_pg_finalize(st);
        }
        if (c) fn_pg_exec(c, "ROLLBACK");
        fn_pg_close(c);
        return ok;
    }
    char path[700];
    snprintf(path, sizeof path, "%s/library.db", lib);
    sqlite3 *db;
    int ok = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 300);
        ok = sqlite3_exec(db, "BEGIN IMMEDIATE; ROLLBACK;", NULL, NULL, NULL) == SQLITE_OK;
    }
    sqlite3_close(db);
    return ok;
}

static void test_stale_host_cannot_commit(void **state)
{
    (void)state;
    if (!tree[0]) skip();
    hosts h;
    memset(&h, 0, sizeof h);
    /* The stale worker is the host that reads the copy: a batch it committed after waking up
     * would store a photo the others have stored already under another path (a second row of
     * the same root and relative path), which check_exact would see. */
    hosts_start(&h, "stale", N_WORKERS - 1);
    long long t0 = now_ms();
    pid_t stale = 0;
    /* after its first commit, so it has a batch in hand when it wakes up */
    while (now_ms() - t0 < 30000) {
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM photos WHERE job_id=%s", h.job);
        if ((stale = runner(&h)) && q_int(h.lib, sql) >= 1) break;
        sleep_ms(20);
    }
    assert_true(stale > 0);
    assert_int_equal(worker_of(&h, stale), N_WORKERS - 1);
    /* Stopped outside a write transaction: a process stopped while holding SQLite's write lock
     * would stop every host (on a server it would be a lock timeout instead). */
    for (int tries = 0; tries < 50; tries++) {
        kill(stale, SIGSTOP);
        if (writable(h.lib)) break;
        kill(stale, SIGCONT);
        sleep_ms(7);
    }
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM photos WHERE job_id=%s", h.job);
    long long before = q_int(h.lib, sql);
    long long stopped = now_ms();
    pid_t next = 0;
    while (now_ms() - stopped < 30000) {
        next = runner(&h);
        if (next && next != stale) break;
        sleep_ms(20);
    }
    printf("stale: taken over after %lld ms\n", now_ms() - stopped);
    assert_true(next > 0 && next != stale);
    /* The new runner commits at least one more photo, then the stale one wakes up. */
    while (q_int(h.lib, sql) <= before && now_ms() - stopped < 30000)
        sleep_ms(20);
    kill(stale, SIGCONT);
    wait_done(&h, 60000);
    check_exact(&h);
    /* The stale worker's batch was refused: the job's log says why, and the job completed under
     * the host that took it over. */
    int w = worker_of(&h, stale);
    assert_true(w >= 0);
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM job_log WHERE job=%s AND line LIKE '%%recovered: owner%%'",
             h.job);
    assert_true(q_int(h.lib, sql) >= 1);
    hosts_stop(&h);
}

/* ---- shards: one ingest split across the three hosts -----------------------------------------
 */

enum { SHARD_PHOTOS = 3 };

/* A running shard of the job: its worker's pid and owner id (0 when none runs). */
static pid_t shard_runner(const hosts *h, long long *owner)
{
    char sql[300];
    snprintf(sql, sizeof sql,
             "SELECT coalesce((SELECT o.id FROM jobs j JOIN job_owners o ON o.id = j.owner"
             " WHERE j.shard_of=%s AND j.state=1 ORDER BY j.id LIMIT 1), 0)",
             h->job);
    *owner = q_int(h->lib, sql);
    if (*owner <= 0) return 0;
    snprintf(sql, sizeof sql, "SELECT coalesce((SELECT pid FROM job_owners WHERE id=%lld), 0)",
             *owner);
    return (pid_t)q_int(h->lib, sql);
}

/* Waits for the job to complete while noting which hosts run its shards: a bit per host seen
 * running one (job_owners.host of a running shard's owner). */
static int wait_done_hosts(const hosts *h, int ms)
{
    int mask = 0;
    long long t0 = now_ms();
    char sql[300];
    while (!job_state_is(h, 3) && now_ms() - t0 < ms) {
        for (int i = 0; i < N_WORKERS; i++) {
            snprintf(sql, sizeof sql,
                     "SELECT count(*) FROM jobs j JOIN job_owners o ON o.id = j.owner"
                     " WHERE j.shard_of=%s AND j.state=1 AND o.host='host%d'",
                     h->job, i + 1);
            if (q_int(h->lib, sql) > 0) mask |= 1 << i;
        }
        sleep_ms(20);
    }
    wait_done(h, 1);
    return mask;
}

static void test_sharded_three_hosts(void **state)
{
    (void)state;
    if (!tree[0]) skip();
    hosts h;
    memset(&h, 0, sizeof h);
    hosts_start_ex(&h, "shards", -1, SHARD_PHOTOS);
    int mask = wait_done_hosts(&h, 120000);
    char sql[200];
    snprintf(sql, sizeof sql, "SELECT shards FROM jobs WHERE id=%s", h.job);
    assert_int_equal(q_int(h.lib, sql), (n_photos + SHARD_PHOTOS - 1) / SHARD_PHOTOS);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE shard_of=%s AND state=3", h.job);
    assert_int_equal(q_int(h.lib, sql), (n_photos + SHARD_PHOTOS - 1) / SHARD_PHOTOS);
    check_exact(&h);
    printf("shards: hosts seen running shards: %s%s%s\n", mask & 1 ? "host1 " : "",
           mask & 2 ? "host2 " : "", mask & 4 ? "host3" : "");
    /* Shared: the shards ran on more than one host (at once, not one after the other). */
    assert_true(mask != 0 && mask != 1 && mask != 2 && mask != 4);
    hosts_stop(&h);
}

static void test_kill_sharded(void **state)
{
    (void)state;
    if (!tree[0]) skip();
    const char *seed_s = getenv("FACENAMES_TEST_SEED");
    unsigned seed = seed_s ? (unsigned)strtoul(seed_s, NULL, 10) : (unsigned)time(NULL);
    printf("test_kill_sharded: seed %u (replay with FACENAMES_TEST_SEED=%u)\n", seed, seed);
    srand(seed);
    for (int trial = 0; trial < KILL_TRIALS; trial++) {
        hosts h;
        memset(&h, 0, sizeof h);
        char name[32];
        snprintf(name, sizeof name, "skill%d", trial);
        hosts_start_ex(&h, name, -1, SHARD_PHOTOS);
        long long t0 = now_ms(), owner = 0;
        pid_t victim = 0;
        while (!(victim = shard_runner(&h, &owner)) && now_ms() - t0 < 20000)
            sleep_ms(20);
        assert_true(victim > 0);
        sleep_ms(rand() % 3000);
        victim = shard_runner(&h, &owner);
        if (!victim) { /* every shard ended before the moment came */
            wait_done(&h, 60000);
            check_exact(&h);
            hosts_stop(&h);
            continue;
        }
        int w = worker_of(&h, victim);
        assert_true(w >= 0);
        kill(victim, SIGKILL);
        struct cli_result r = cli_wait(victim, h.tag[w]);
        cli_result_free(&r);
        h.pid[w] = 0;
        long long killed = now_ms();
        /* Its shards go back to the queue within the lease (another host recovers them). */
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE owner=%lld AND state=1", owner);
        while (q_int(h.lib, sql) > 0 && now_ms() - killed < 30000)
            sleep_ms(20);
        long long took = now_ms() - killed;
        printf("trial %d: host%d killed while running a shard; recovered in %lld ms\n", trial,
               w + 1, took);
        assert_int_equal(q_int(h.lib, sql), 0);
        assert_true(took <= 2 * LEASE_MS);
        wait_done(&h, 120000);
        check_exact(&h);
        hosts_stop(&h);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roots_across_mounts),
        cmocka_unit_test(test_kill_one_host),
        cmocka_unit_test(test_stale_host_cannot_commit),
        cmocka_unit_test(test_sharded_three_hosts),
        cmocka_unit_test(test_kill_sharded),
    };
    if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
