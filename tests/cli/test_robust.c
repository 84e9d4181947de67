/* test_robust.c: the library folder as a careless user or a hostile folder hands it to the
 * `facenames` program (issue 8 #4, #7 and rough edges), through the built program:
 * - reading commands on a folder that is not a library say so and create nothing;
 * - another program's SQLite file is refused and left byte for byte as it was;
 * - a library written by a newer facenames is refused before `ingest` enqueues anything;
 * - a read-only library can be read, writing commands say it is read-only, and a folder that
 *   cannot be entered is a configuration error. Permission bits do not stop root, so as root the
 *   program runs as user 65534 (nobody) against root's files, which exercises the same paths;
 * - two runs of the same ingest at once: the second follows the first rather than redoing it;
 * - a resumed ingest's summary says what this run did. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <grp.h>
#include <jansson.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>

#include "cli_json.h"

static char models_env[1100];
static const char *env[2];

static int exists(const char *dir, const char *name)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

static void sql(const char *db_path, const char *text)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *msg = NULL;
    if (sqlite3_exec(db, text, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", text, msg);
    sqlite3_close(db);
}

static long long sql_int(const char *db_path, const char *text)
{
    sqlite3 *db = NULL;
    long long v = -1;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, text, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Like cli_run, but as user `uid` when it is not ours (we are root then). */
static struct cli_result run_as(uid_t uid, const char *const *args)
{
    if (uid == geteuid()) return cli_run(env, args);
    pid_t pid = fork();
    if (pid == 0) {
        /* The child drops to `uid` and then behaves as cli_run: the harness's own fork and wait
         * collect the output files, which we make writable for it first. */
        char outp[600], errp[600];
        snprintf(outp, sizeof outp, "%s/.as.stdout", harness_tmp);
        snprintf(errp, sizeof errp, "%s/.as.stderr", harness_tmp);
        int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        int in = open("/dev/null", O_RDONLY);
        if (o < 0 || e < 0 || in < 0) _exit(127);
        if (setgroups(0, NULL) != 0 || setgid(uid) != 0 || setuid(uid) != 0) _exit(126);
        dup2(in, 0);
        dup2(o, 1);
        dup2(e, 2);
        const char *argv[64];
        size_t n = 0;
        argv[n++] = harness_exe;
        for (size_t i = 0; args[i] && n < 63; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        char home[600];
        snprintf(home, sizeof home, "HOME=%s", harness_tmp);
        const char *envp[] = {home, "PATH=/usr/bin:/bin", "LC_ALL=C", models_env, NULL};
        execve(harness_exe, (char *const *)argv, (char *const *)envp);
        _exit(127);
    }
    struct cli_result r = {0};
    int status = 0;
    waitpid(pid, &status, 0);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    char outp[600], errp[600];
    snprintf(outp, sizeof outp, "%s/.as.stdout", harness_tmp);
    snprintf(errp, sizeof errp, "%s/.as.stderr", harness_tmp);
    r.out = slurp(outp);
    r.err = slurp(errp);
    return r;
}

/* A folder with `n` of the sample photos (copies under distinct names). */
static void photo_folder(const char *dir, const char *samples, int n)
{
    assert_int_equal(mkdir(dir, 0755), 0);
    for (int i = 0; i < n; i++) {
        char cmd[2600];
        snprintf(cmd, sizeof cmd, "cp '%s/sample%d.jpg' '%s/p%02d.jpg'", samples, i % 6 + 1, dir,
                 i);
        assert_int_equal(system(cmd), 0);
    }
}

static void test_not_a_library(void **state)
{
    (void)state;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/plain", harness_tmp);
    assert_int_equal(mkdir(dir, 0755), 0);
    static const char *const reads[][4] = {
        {"jobs", "list", NULL},  {"jobs", "list", "--json"}, {"photos", "list", NULL},
        {"faces", "list", NULL}, {"jobs", "show", "1"},      {"jobs", "log", "1"},
        {"jobs", "errors", "1"}, {"photos", "show", "1"},    {"jobs", "cancel", "1"},
        {"jobs", "resume", "1"},
    };
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
        const char *args[] = {"--library", dir, reads[i][0], reads[i][1], reads[i][2], NULL};
        struct cli_result r = cli_run(env, args);
        /* Lists answer (empty); a command about one job or photo fails; all say why. */
        if (strcmp(reads[i][1], "list") == 0) {
            CHECK(r, r.code == 0);
            CHECK(r,
                  reads[i][2] ? strcmp(r.out, "[]\n") == 0 : strstr(r.out, "no library") != NULL);
        } else {
            CHECK(r, r.code == 1);
            CHECK(r, strstr(r.err, "no library"));
        }
        cli_result_free(&r);
        assert_false(exists(dir, "library.db"));
        assert_false(exists(dir, "jobs.log"));
    }
}

static void test_foreign_database(void **state)
{
    (void)state;
    char dir[600], db[700];
    snprintf(dir, sizeof dir, "%s/foreign", harness_tmp);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(db, sizeof db, "%s/library.db", dir);
    sql(db, "CREATE TABLE contacts(name TEXT); INSERT INTO contacts VALUES('ann')");
    size_t before_len = 0, after_len = 0;
    char *before = read_all(db, &before_len);
    static const char *const cmds[][3] = {
        {"jobs", "list", NULL}, {"photos", "list", NULL}, {"worker", "--until-idle", NULL}};
    for (size_t i = 0; i < 3; i++) {
        const char *args[] = {"--library", dir, cmds[i][0], cmds[i][1], NULL};
        struct cli_result r = cli_run(env, args);
        CHECK(r, r.code == 1);
        CHECK(r, strstr(r.err, db) && strstr(r.err, "another program"));
        cli_result_free(&r);
    }
    char *after = read_all(db, &after_len);
    assert_int_equal(after_len, before_len);
    assert_memory_equal(after, before, before_len);
    assert_false(exists(dir, "library.db-wal"));
    assert_false(exists(dir, "jobs.log"));
    free(before);
    free(after);
}

/* The library part of the schema newer than this build: `ingest` refuses before enqueueing
 * (it used to enqueue a job that then failed). */
static void test_newer_library_schema(void **state)
{
    (void)state;
    char lib[600], db[700], photos[600];
    snprintf(lib, sizeof lib, "%s/newer", harness_tmp);
    snprintf(db, sizeof db, "%s/library.db", lib);
    snprintf(photos, sizeof photos, "%s/newer-photos", harness_tmp);
    assert_int_equal(mkdir(photos, 0755), 0);
    struct cli_result r =
        cli_run(env, (const char *[]){"--library", lib, "worker", "--until-idle", NULL});
    CHECK(r, r.code == 0);
    cli_result_free(&r);
    r = cli_run(env, (const char *[]){"--library", lib, "photos", "list", NULL});
    CHECK(r, r.code == 0);
    cli_result_free(&r);
    long long known = sql_int(db, "SELECT version FROM schema_versions WHERE component='library'");
    assert_true(known >= 1);
    sql(db, "UPDATE schema_versions SET version=version+1 WHERE component='library'");
    r = cli_run(env, (const char *[]){"--library", lib, "ingest", photos, NULL});
    char want[64];
    snprintf(want, sizeof want, "knows only up to %lld", known);
    CHECK(r, r.code == 1);
    CHECK(r, strstr(r.err, want) && strstr(r.err, "library"));
    cli_result_free(&r);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM jobs"), 0);
}

static void test_readonly_library(void **state)
{
    (void)state;
    const char *samples = getenv("FACENAMES_SAMPLES");
    if (!samples) skip();
    char lib[600], db[700], photos[600];
    snprintf(lib, sizeof lib, "%s/ro", harness_tmp);
    snprintf(db, sizeof db, "%s/library.db", lib);
    snprintf(photos, sizeof photos, "%s/ro-photos", harness_tmp);
    photo_folder(photos, samples, 2);
    struct cli_result r = cli_run(
        env, (const char *[]){"--library", lib, "ingest", photos, "--detector", "tiny", NULL});
    CHECK(r, r.code == 0);
    cli_result_free(&r);
    json_t *jobs =
        cli_run_json(env, (const char *[]){"--library", lib, "jobs", "list", "--json", NULL});
    assert_int_equal(json_array_size(jobs), 1);
    json_int_t id = json_integer_value(json_object_get(json_array_get(jobs, 0), "id"));
    json_decref(jobs);
    char idtext[32];
    snprintf(idtext, sizeof idtext, "%lld", (long long)id);
    /* Whoever runs the program must not be able to write: as root, user 65534 on root's files. */
    uid_t who = geteuid() == 0 ? 65534 : geteuid();
    assert_int_equal(chmod(harness_tmp, 0755), 0);
    assert_int_equal(chmod(db, 0444), 0);
    assert_int_equal(chmod(lib, 0555), 0);
    assert_false(exists(lib, "library.db-wal")); /* so the read-only open must cope without it */

    r = run_as(who, (const char *[]){"--library", lib, "jobs", "list", "--json", NULL});
    CHECK(r, r.code == 0);
    jobs = json_loads(r.out, 0, NULL);
    CHECK(r, json_array_size(jobs) == 1);
    json_decref(jobs);
    cli_result_free(&r);
    r = run_as(who, (const char *[]){"--library", lib, "jobs", "show", idtext, NULL});
    CHECK(r, r.code == 0 && strstr(r.out, "completed"));
    cli_result_free(&r);
    r = run_as(who, (const char *[]){"--library", lib, "photos", "list", "--json", NULL});
    json_t *list = json_loads(r.out, 0, NULL);
    CHECK(r, r.code == 0 && json_array_size(list) == 2);
    json_decref(list);
    cli_result_free(&r);
    r = run_as(who, (const char *[]){"--library", lib, "faces", "list", NULL});
    CHECK(r, r.code == 0);
    cli_result_free(&r);
    r = run_as(who, (const char *[]){"--library", lib, "jobs", "watch", idtext, NULL});
    CHECK(r, r.code == 0);
    cli_result_free(&r);
    static const char *const writes[][4] = {
        {"ingest", NULL, "--detector", "tiny"},
        {"jobs", "cancel", NULL, NULL},
        {"worker", "--until-idle", NULL, NULL},
    };
    for (size_t i = 0; i < 3; i++) {
        const char *args[] = {
            "--library",  lib,          writes[i][0], writes[i][1] ? writes[i][1] : photos,
            writes[i][2], writes[i][3], NULL};
        if (i == 1) args[4] = idtext;
        r = run_as(who, args);
        CHECK(r, r.code == 1);
        CHECK(r, strstr(r.err, "read-only"));
        cli_result_free(&r);
    }
    assert_false(exists(lib, "library.db-wal"));

    /* A folder that cannot be entered: a configuration error that says so. */
    assert_int_equal(chmod(lib, 0), 0);
    r = run_as(who, (const char *[]){"--library", lib, "jobs", "list", NULL});
    CHECK(r, r.code == 1);
    CHECK(r, strstr(r.err, "configuration") && strstr(r.err, "cannot be entered"));
    cli_result_free(&r);
    r = run_as(who, (const char *[]){"--library", lib, "photos", "list", NULL});
    CHECK(r, r.code == 1 && strstr(r.err, "cannot be entered"));
    cli_result_free(&r);
    assert_int_equal(chmod(lib, 0755), 0);
    assert_int_equal(chmod(db, 0644), 0);
    assert_int_equal(chmod(harness_tmp, 0700), 0);
}

/* Waits until job `id` (0: the only job) is running with at least `done` files done. */
static json_int_t wait_running(const char *lib, json_int_t min_done)
{
    for (int i = 0; i < 1200; i++) {
        struct cli_result r =
            cli_run(env, (const char *[]){"--library", lib, "jobs", "list", "--json", NULL});
        json_t *list = r.code == 0 ? json_loads(r.out, 0, NULL) : NULL;
        cli_result_free(&r);
        json_t *j = json_array_get(list, 0);
        json_int_t id = 0;
        if (j && strcmp(json_string_value(json_object_get(j, "state")), "running") == 0 &&
            job_counter(j, "files_done") >= min_done)
            id = json_integer_value(json_object_get(j, "id"));
        json_decref(list);
        if (id) return id;
        sleep_ms(25);
    }
    return 0;
}

static void test_same_ingest_twice(void **state)
{
    (void)state;
    const char *samples = getenv("FACENAMES_SAMPLES");
    if (!samples) skip();
    char lib[600], photos[600];
    snprintf(lib, sizeof lib, "%s/twice", harness_tmp);
    snprintf(photos, sizeof photos, "%s/twice-photos", harness_tmp);
    photo_folder(photos, samples, 24);
    const char *args[] = {"--library", lib,          "ingest", photos, "--batch",
                          "1",         "--detector", "tiny",   NULL};
    pid_t first = cli_spawn(env, args, "first");
    json_int_t id = wait_running(lib, 1);
    assert_true(id > 0);
    struct cli_result r = cli_run(env, args);
    struct cli_result r1 = cli_wait(first, "first");
    CHECK(r1, r1.code == 0);
    CHECK(r, r.code == 0);
    CHECK(r, strstr(r.err, "already running; following it"));
    cli_result_free(&r);
    cli_result_free(&r1);
    json_t *list =
        cli_run_json(env, (const char *[]){"--library", lib, "jobs", "list", "--json", NULL});
    assert_int_equal(json_array_size(list), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "id")), id);
    json_decref(list);
}

/* Cancelled part-way with Ctrl-C, then resumed: the summary says how many of the photos this run
 * processed (the difference between the two jobs' counters) besides the logical job's total. */
static void test_resumed_summary(void **state)
{
    (void)state;
    const char *samples = getenv("FACENAMES_SAMPLES");
    if (!samples) skip();
    char lib[600], photos[600], idtext[32];
    snprintf(lib, sizeof lib, "%s/resumed", harness_tmp);
    snprintf(photos, sizeof photos, "%s/resumed-photos", harness_tmp);
    photo_folder(photos, samples, 12);
    pid_t p = cli_spawn(env,
                        (const char *[]){"--library", lib, "ingest", photos, "--batch", "1",
                                         "--detector", "tiny", NULL},
                        "cancelled");
    json_int_t id = wait_running(lib, 2);
    assert_true(id > 0);
    kill(p, SIGINT);
    struct cli_result r = cli_wait(p, "cancelled");
    CHECK(r, r.code == 3);
    cli_result_free(&r);
    snprintf(idtext, sizeof idtext, "%lld", (long long)id);
    json_t *parent = cli_run_json(
        env, (const char *[]){"--library", lib, "jobs", "show", idtext, "--json", NULL});
    assert_non_null(parent);
    r = cli_run(env, (const char *[]){"--library", lib, "jobs", "resume", idtext, NULL});
    CHECK(r, r.code == 0);
    json_t *list =
        cli_run_json(env, (const char *[]){"--library", lib, "jobs", "list", "--json", NULL});
    json_t *child = json_array_get(list, 0); /* newest first */
    assert_true(json_integer_value(json_object_get(child, "id")) != id);
    json_int_t total = job_counter(child, "files_done") - job_counter(child, "errors") -
                       job_counter(child, "skipped_unchanged");
    json_int_t before = job_counter(parent, "files_done") - job_counter(parent, "errors") -
                        job_counter(parent, "skipped_unchanged");
    assert_true(before >= 2 && total > before);
    char want[96];
    snprintf(want, sizeof want, "%lld processed of", (long long)total);
    CHECK(r, strstr(r.out, want));
    snprintf(want, sizeof want, "%lld of them in this run", (long long)(total - before));
    CHECK(r, strstr(r.out, want));
    cli_result_free(&r);
    json_decref(list);
    json_decref(parent);
}

int main(void)
{
    const char *m = getenv("FACENAMES_MODELS");
    snprintf(models_env, sizeof models_env, "FACENAMES_MODELS_DIR=%s", m ? m : "");
    env[0] = models_env;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_a_library),        cmocka_unit_test(test_foreign_database),
        cmocka_unit_test(test_newer_library_schema), cmocka_unit_test(test_readonly_library),
        cmocka_unit_test(test_same_ingest_twice),    cmocka_unit_test(test_resumed_summary),
    };
    return cmocka_run_group_tests(tests, harness_group_setup, harness_group_teardown);
}
