/* test_library_db.c: what the engine does with the database file it is pointed at (issue 8 #4,
 * #7 and its rough edges): another program's SQLite file is refused and left byte for byte as it
 * was; our databases carry our application_id, and old unmarked ones are adopted; a schema newer
 * than this build is refused at open; a read-only open creates and writes nothing; the store's
 * messages say what happened without internal guesses; the same work enqueued while it runs
 * returns the running job; a continued run records what it counted at its start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sys/stat.h>

#include "helpers.h"
#include "store/jobs_store.h"
#include "store/store.h"

/* The application_id facenames writes; the test reads it back from the file, so a constant here
 * that disagreed with store.c would fail test_new_database_marked. */
static const long long OUR_APP_ID = 0x466e4e6d;

static char *read_file(const char *path, size_t *len)
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

static void exec_sql(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", sql, msg);
}

/* Another program's database, in the rollback-journal mode SQLite starts in. */
static void make_foreign(const char *dir, const char *extra_sql)
{
    char path[512];
    snprintf(path, sizeof path, "%s/library.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    exec_sql(db, "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);"
                 "INSERT INTO notes(body) VALUES('keep me')");
    if (extra_sql) exec_sql(db, extra_sql);
    sqlite3_close(db);
}

static int exists(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static void test_foreign_database_untouched(void **state)
{
    FN_SKIP_ON_PG("another program's SQLite file is a SQLite case (store_pg refuses a foreign "
                  "database: tests/pg/test_pg_store.c)");
    (void)state;
    static const char *const variants[] = {NULL, "PRAGMA application_id=1234"};
    for (size_t v = 0; v < 2; v++) {
        char *dir = tmp_library();
        make_foreign(dir, variants[v]);
        char path[512];
        snprintf(path, sizeof path, "%s/library.db", dir);
        size_t before_len = 0, after_len = 0;
        char *before = read_file(path, &before_len);
        assert_non_null(before);

        fn_config cfg = test_config();
        cfg.log_path[0] = '\0';
        fn_engine *e = NULL;
        int rc = fn_engine_open(dir, &cfg, &e);
        assert_int_equal(rc, FN_ERR_FOREIGN);
        assert_null(e);
        const char *msg = fn_engine_errmsg(NULL);
        assert_non_null(strstr(msg, path));
        assert_non_null(strstr(msg, "another program"));

        fn_store *s = NULL;
        char err[512];
        assert_int_equal(fn_store_open(path, 1000, &s, err, sizeof err), FN_ERR_FOREIGN);
        assert_int_equal(fn_store_open_readonly(path, 1000, &s, err, sizeof err), FN_ERR_FOREIGN);
        assert_int_equal(fn_engine_open_readonly(dir, &cfg, &e), FN_ERR_FOREIGN);

        /* Byte for byte as it was, still in its own journal mode, and nothing beside it. */
        char *after = read_file(path, &after_len);
        assert_int_equal(after_len, before_len);
        assert_memory_equal(after, before, before_len);
        assert_false(exists(dir, "library.db-wal"));
        assert_false(exists(dir, "jobs.log"));
        char *mode = q_text(dir, "PRAGMA journal_mode");
        assert_string_equal(mode, "delete");
        free(mode);
        assert_int_equal(q_int(dir, "SELECT count(*) FROM sqlite_master"), 1);
        free(before);
        free(after);
        rm_library(dir);
    }
}

static void test_new_database_marked(void **state)
{
    FN_SKIP_ON_PG("PRAGMA application_id is SQLite's mark");
    (void)state;
    char *dir = tmp_library();
    fn_config cfg = test_config();
    fn_engine *e = NULL;
    assert_int_equal(fn_engine_open(dir, &cfg, &e), 0);
    fn_engine_close(e);
    assert_int_equal(q_int(dir, "PRAGMA application_id"), OUR_APP_ID);
    /* And it opens again (the mark is what the check accepts). */
    assert_int_equal(fn_engine_open(dir, &cfg, &e), 0);
    fn_engine_close(e);
    rm_library(dir);
}

/* A library made before the mark existed: our schema_versions, application_id 0. */
static void test_unmarked_library_adopted(void **state)
{
    FN_SKIP_ON_PG("PRAGMA application_id is SQLite's mark");
    (void)state;
    char *dir = tmp_library();
    fn_config cfg = test_config();
    fn_engine *e = NULL;
    assert_int_equal(fn_engine_open(dir, &cfg, &e), 0);
    fn_job_id id = 0;
    assert_int_equal(fn_enqueue(e, "count", "{\"n\":1}", FN_PRIO_NORMAL, &id), 0);
    fn_engine_close(e);
    sqlite3 *db = open_db(dir);
    exec_sql(db, "PRAGMA application_id=0");
    sqlite3_close(db);
    assert_int_equal(q_int(dir, "PRAGMA application_id"), 0);

    /* Read-only: accepted, but it cannot be marked. */
    assert_int_equal(fn_engine_open_readonly(dir, &cfg, &e), 0);
    fn_job_info *j = NULL;
    assert_int_equal(fn_job_inspect(e, id, &j), 0);
    fn_job_info_free(j);
    fn_engine_close(e);
    assert_int_equal(q_int(dir, "PRAGMA application_id"), 0);

    assert_int_equal(fn_engine_open(dir, &cfg, &e), 0);
    assert_int_equal(fn_job_inspect(e, id, &j), 0);
    fn_job_info_free(j);
    fn_engine_close(e);
    assert_int_equal(q_int(dir, "PRAGMA application_id"), OUR_APP_ID);
    rm_library(dir);
}

static void test_newer_schema_refused_at_open(void **state)
{
    (void)state;
    char *dir = tmp_library();
    fn_config cfg = test_config();
    fn_engine *e = NULL;
    assert_int_equal(fn_engine_open(dir, &cfg, &e), 0);
    fn_engine_close(e);
    long long known = q_int(dir, "SELECT version FROM schema_versions WHERE component='jobs'");
    assert_int_equal(
        q_exec(dir, "UPDATE schema_versions SET version=version+1 WHERE component='jobs'"), 0);
    for (int ro = 0; ro < 2; ro++) {
        int rc = ro ? fn_engine_open_readonly(dir, &cfg, &e) : fn_engine_open(dir, &cfg, &e);
        assert_int_equal(rc, FN_ERR_VERSION);
        const char *msg = fn_engine_errmsg(NULL);
        char want[96];
        snprintf(want, sizeof want, "knows only up to %lld", known);
        assert_non_null(strstr(msg, want));
        assert_null(strstr(msg, "SQLite"));
    }
    rm_library(dir);
}

static void test_readonly_open_writes_nothing(void **state)
{
    FN_SKIP_ON_PG("checks files in the library folder");
    (void)state;
    fn_config cfg = test_config();
    fn_engine *e = NULL;
    /* No library: said so, and nothing is created. */
    char *dir = tmp_library();
    assert_int_equal(fn_engine_open_readonly(dir, &cfg, &e), FN_ERR_NOT_FOUND);
    assert_non_null(strstr(fn_engine_errmsg(NULL), "no library"));
    assert_false(exists(dir, "library.db"));
    assert_false(exists(dir, "jobs.log"));
    char missing[600];
    snprintf(missing, sizeof missing, "%s/not-there", dir);
    assert_int_equal(fn_engine_open_readonly(missing, &cfg, &e), FN_ERR_NOT_FOUND);
    assert_false(exists(dir, "not-there"));

    /* A library: reading works; writing fails with FN_ERR_READONLY; no owner row is added. */
    assert_int_equal(fn_engine_open(dir, &cfg, &e), 0);
    fn_job_id id = 0;
    assert_int_equal(fn_enqueue(e, "count", "{\"n\":1}", FN_PRIO_NORMAL, &id), 0);
    fn_engine_close(e);
    long long owners = q_int(dir, "SELECT count(*) FROM job_owners");
    assert_int_equal(unlink(strcat(strcpy(missing, dir), "/jobs.log")), 0);
    assert_int_equal(fn_engine_open_readonly(dir, &cfg, &e), 0);
    fn_job_info **list = NULL;
    size_t n = 0;
    assert_int_equal(fn_job_list(e, -1, 0, &list, &n), 0);
    assert_int_equal(n, 1);
    fn_job_info_free(list[0]);
    free(list);
    fn_job_id other = 0;
    assert_int_equal(fn_enqueue(e, "count", "{\"n\":2}", FN_PRIO_NORMAL, &other), FN_ERR_READONLY);
    assert_non_null(strstr(fn_engine_errmsg(e), "read-only"));
    assert_int_equal(fn_job_cancel(e, id), FN_ERR_READONLY);
    assert_int_equal(fn_engine_start(e, 1), FN_ERR_READONLY);
    fn_engine_close(e);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM job_owners"), owners);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM jobs"), 1);
    assert_false(exists(dir, "jobs.log"));
    rm_library(dir);
}

/* The write lock held past the busy timeout, and a message that is not SQLite's: both say what
 * happened and what to do, with no internal guess and no "see the SQLite message". */
static void test_store_messages(void **state)
{
    (void)state;
    char *dir = tmp_library();
    char path[512], err[512];
    snprintf(path, sizeof path, fn_test_on_pg() ? "%s" : "%s/library.db", dir);
    fn_store *s = NULL;
    assert_int_equal(fn_store_open(path, 30, &s, err, sizeof err), 0);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    fn_store_set_write_lock(s, &mu);
    pthread_mutex_lock(&mu);
    fn_store_tx *tx = NULL;
    assert_int_equal(fn_store_begin(s, &tx), FN_ERR_BUSY);
    const char *msg = fn_store_errmsg(s);
    /* (after the library's name: a server's address has a query string) */
    assert_null(strstr(msg + strlen(fn_store_path(s)), "?"));
    assert_null(strstr(msg, "inside another"));
    assert_non_null(strstr(msg, "busy_timeout"));
    pthread_mutex_unlock(&mu);
    fn_store_set_write_lock(s, NULL);

    fn_store_set_msg(s, FN_ERR_STATE, "beginning a transaction",
                     "a transaction is already open on this connection");
    assert_null(strstr(fn_store_errmsg(s), "SQLite"));
    fn_store_set_msg(s, FN_ERR_VERSION, "checking the schema version", "component x is newer");
    assert_null(strstr(fn_store_errmsg(s), "SQLite"));
    assert_non_null(strstr(fn_store_errmsg(s), "newer facenames"));
    fn_store_close(s);
    rm_library(dir);
}

/* The same work enqueued while it runs: fn_enqueue_or_continue returns the running job (2)
 * rather than a second job that would redo it. The hook runs inside the job's run (inline). */
static fn_engine *same_e;
static fn_job_id same_id, same_seen;
static int same_continued = -1;

static void same_hook(fn_job_ctx *ctx, int committed, void *arg)
{
    (void)ctx;
    (void)arg;
    if (committed != 1 || same_continued >= 0) return;
    fn_enqueue_opts o = {.type = "count",
                         .payload = "{\"n\":4,\"batch\":1}",
                         .priority = FN_PRIO_NORMAL,
                         .gpu_slots = -1,
                         .mem_mb = -1};
    assert_int_equal(fn_enqueue_or_continue(same_e, &o, &same_seen, &same_continued), 0);
}

static void test_enqueue_same_while_running(void **state)
{
    (void)state;
    test_reset();
    char *dir = tmp_library();
    fn_config cfg = test_config();
    assert_int_equal(fn_engine_open(dir, &cfg, &same_e), 0);
    register_count(same_e, "count", 0, 0);
    assert_int_equal(fn_engine_start(same_e, 0), 0);
    fn_enqueue_opts o = {.type = "count",
                         .payload = "{\"n\":4,\"batch\":1}",
                         .priority = FN_PRIO_NORMAL,
                         .gpu_slots = -1,
                         .mem_mb = -1};
    int continued = -1;
    assert_int_equal(fn_enqueue_or_continue(same_e, &o, &same_id, &continued), 0);
    assert_int_equal(continued, 0);
    T.hook = same_hook;
    int ran = 0;
    assert_int_equal(fn_engine_run_pending(same_e, 0, &ran), 0);
    T.hook = NULL;
    assert_int_equal(same_continued, 2);
    assert_int_equal(same_seen, same_id);
    assert_int_equal(ran, 1);
    assert_int_equal(q_int(dir, "SELECT count(*) FROM jobs"), 1);
    fn_engine_close(same_e);
    rm_library(dir);
}

/* A resumed job's progress says what it had counted when its run started (the parent's totals),
 * so its summary can tell this run's work from the whole job's. */
static int stop_after;
static fn_engine *stop_e;
static fn_job_id stop_id;
static void stop_hook(fn_job_ctx *ctx, int committed, void *arg)
{
    (void)ctx;
    (void)arg;
    if (committed == stop_after) fn_job_cancel(stop_e, stop_id);
}

static void test_resumed_run_start_counters(void **state)
{
    (void)state;
    test_reset();
    char *dir = tmp_library();
    fn_config cfg = test_config();
    assert_int_equal(fn_engine_open(dir, &cfg, &stop_e), 0);
    register_count(stop_e, "count", 0, 0);
    assert_int_equal(fn_engine_start(stop_e, 0), 0);
    assert_int_equal(
        fn_enqueue(stop_e, "count", "{\"n\":10,\"batch\":1}", FN_PRIO_NORMAL, &stop_id), 0);
    stop_after = 3;
    T.hook = stop_hook;
    assert_int_equal(fn_engine_run_pending(stop_e, 0, NULL), 0);
    T.hook = NULL;
    fn_job_info *parent = NULL;
    assert_int_equal(fn_job_inspect(stop_e, stop_id, &parent), 0);
    assert_int_equal(parent->state, FN_JOB_CANCELLED);
    json_t *pp = json_loads(parent->progress, 0, NULL);
    assert_null(json_object_get(pp, "run")); /* a first run has nothing before it */
    fn_followup f;
    assert_int_equal(fn_job_resume_ex(stop_e, stop_id, &f), 0);
    assert_int_equal(fn_engine_run_pending(stop_e, 0, NULL), 0);
    fn_job_info *child = NULL;
    assert_int_equal(fn_job_inspect(stop_e, f.id, &child), 0);
    assert_int_equal(child->state, FN_JOB_COMPLETED);
    json_t *cp = json_loads(child->progress, 0, NULL);
    json_t *run = json_object_get(cp, "run");
    assert_non_null(run);
    assert_true(
        json_equal(json_object_get(run, "counters_at_start"), json_object_get(pp, "counters")));
    json_int_t at = json_integer_value(json_object_get(run, "started_at"));
    assert_true(at >= parent->finished_at && at <= child->finished_at);
    json_decref(pp);
    json_decref(cp);
    fn_job_info_free(parent);
    fn_job_info_free(child);
    fn_engine_close(stop_e);
    rm_library(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_foreign_database_untouched),
        cmocka_unit_test(test_new_database_marked),
        cmocka_unit_test(test_unmarked_library_adopted),
        cmocka_unit_test(test_newer_schema_refused_at_open),
        cmocka_unit_test(test_readonly_open_writes_nothing),
        cmocka_unit_test(test_store_messages),
        cmocka_unit_test(test_enqueue_same_while_running),
        cmocka_unit_test(test_resumed_run_start_counters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
