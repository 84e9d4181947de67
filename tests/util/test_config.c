/* test_config.c: the configuration keys, file parser, environment overrides and their errors.
 *
 * Every bad value of every key must be refused with a message that names the key and says what is
 * allowed, and must leave the configuration as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "facenames/config.h"
#include "facenames/error.h"
#include "util/config_equal.h"

static void test_defaults(void **state)
{
    (void)state;
    fn_config c;
    fn_config_defaults(&c);
    assert_int_equal(c.workers_cpu_max, (int)sysconf(_SC_NPROCESSORS_ONLN));
    assert_int_equal(c.workers_gpu_max, 1);
    assert_int_equal(c.workers_mem_max_mb, 0);
    assert_true(c.events_progress_hz == 20.0);
    assert_int_equal(c.events_queue_max, 4096);
    assert_int_equal(c.jobs_heartbeat_ms, 1000);
    assert_int_equal(c.jobs_owner_timeout_ms, 10000);
    assert_int_equal(c.jobs_aging_ms, 30000);
    assert_int_equal(c.db_busy_timeout_ms, 5000);
    assert_string_equal(c.log_path, "");
    assert_string_equal(c.models_dir, "");
    assert_string_equal(c.detector, "ssd");
    assert_int_equal(c.ingest_min_face_size, 40);
    assert_int_equal(c.ingest_batch, 32);
    assert_int_equal(c.ingest_shard_photos, 1000);
    char err[256];
    assert_int_equal(fn_config_validate(&c, err, sizeof err), 0);
}

static void test_set_good(void **state)
{
    (void)state;
    fn_config c;
    fn_config_defaults(&c);
    char err[256];
    assert_int_equal(fn_config_set(&c, "workers.cpu_max", "7", err, sizeof err), 0);
    assert_int_equal(c.workers_cpu_max, 7);
    assert_int_equal(fn_config_set(&c, "workers.cpu_max", "auto", err, sizeof err), 0);
    assert_int_equal(c.workers_cpu_max, (int)sysconf(_SC_NPROCESSORS_ONLN));
    assert_int_equal(fn_config_set(&c, "workers.gpu_max", "0", err, sizeof err), 0);
    assert_int_equal(c.workers_gpu_max, 0);
    assert_int_equal(fn_config_set(&c, "workers.mem_max_mb", "2048", err, sizeof err), 0);
    assert_int_equal(c.workers_mem_max_mb, 2048);
    assert_int_equal(fn_config_set(&c, "events.progress_hz", "2.5", err, sizeof err), 0);
    assert_true(c.events_progress_hz == 2.5);
    assert_int_equal(fn_config_set(&c, "events.queue_max", "100000", err, sizeof err), 0);
    assert_int_equal(c.events_queue_max, 100000);
    assert_int_equal(fn_config_set(&c, "jobs.heartbeat_ms", "250", err, sizeof err), 0);
    assert_int_equal(c.jobs_heartbeat_ms, 250);
    assert_int_equal(fn_config_set(&c, "jobs.owner_timeout_ms", "3000", err, sizeof err), 0);
    assert_int_equal(c.jobs_owner_timeout_ms, 3000);
    assert_int_equal(fn_config_set(&c, "jobs.aging_ms", "1", err, sizeof err), 0);
    assert_int_equal(c.jobs_aging_ms, 1);
    assert_int_equal(fn_config_set(&c, "db.busy_timeout_ms", "0", err, sizeof err), 0);
    assert_int_equal(c.db_busy_timeout_ms, 0);
    assert_int_equal(fn_config_set(&c, "log.path", "-", err, sizeof err), 0);
    assert_string_equal(c.log_path, "-");
    assert_int_equal(fn_config_set(&c, "models.dir", "/opt/models", err, sizeof err), 0);
    assert_string_equal(c.models_dir, "/opt/models");
    assert_int_equal(fn_config_set(&c, "db.url", "postgresql://faces@nas/faces", err, sizeof err),
                     0);
    assert_string_equal(c.db_url, "postgresql://faces@nas/faces");
    assert_int_equal(fn_config_set(&c, "db.url", "", err, sizeof err), 0);
    assert_string_equal(c.db_url, "");
    assert_int_equal(fn_config_set(&c, "worker.host", "nas-2", err, sizeof err), 0);
    assert_string_equal(c.worker_host, "nas-2");
    assert_int_equal(fn_config_set(&c, "ingest.detector", "tiny", err, sizeof err), 0);
    assert_string_equal(c.detector, "tiny");
    assert_int_equal(fn_config_set(&c, "ingest.detect_tiles", "auto", err, sizeof err), 0);
    assert_string_equal(c.detect_tiles, "auto");
    assert_int_equal(fn_config_set(&c, "ingest.detect_tiles", "on", err, sizeof err), 0);
    assert_string_equal(c.detect_tiles, "on");
    assert_string_equal(c.workers_prefetch, "auto");
    assert_int_equal(fn_config_set(&c, "workers.prefetch", "off", err, sizeof err), 0);
    assert_string_equal(c.workers_prefetch, "off");
    assert_int_equal(fn_config_set(&c, "ingest.min_face_size", "12", err, sizeof err), 0);
    assert_int_equal(c.ingest_min_face_size, 12);
    assert_int_equal(fn_config_set(&c, "ingest.batch", " 64 ", err, sizeof err), 0);
    assert_int_equal(c.ingest_batch, 64);
}

struct bad {
    const char *key, *value, *expect; /* expect: a fragment the message must contain */
};

static const struct bad bads[] = {
    {"workers.cpu_max", "0", "from 1 to 4096"},
    {"workers.cpu_max", "-1", "from 1 to 4096"},
    {"workers.cpu_max", "abc", "not a whole number"},
    {"workers.cpu_max", "", "not a whole number"},
    {"workers.cpu_max", "2.5", "not a whole number"},
    {"workers.cpu_max", "4x", "not a whole number"},
    {"workers.cpu_max", "99999999999999999999999", "out of range"},
    {"workers.cpu_max", "5000", "or \"auto\""},
    {"workers.gpu_max", "-1", "from 0 to 64"},
    {"workers.gpu_max", "65", "from 0 to 64"},
    {"workers.mem_max_mb", "-5", "from 0 to"},
    {"workers.mem_max_mb", "3000000000", "out of range"},
    {"events.progress_hz", "0", "above 0"},
    {"events.progress_hz", "-3", "above 0"},
    {"events.progress_hz", "nan", "above 0"},
    {"events.progress_hz", "inf", "above 0"},
    {"events.progress_hz", "1001", "at most 1000"},
    {"events.progress_hz", "fast", "above 0"},
    {"events.queue_max", "15", "from 16 to"},
    {"events.queue_max", "lots", "not a whole number"},
    {"jobs.heartbeat_ms", "5", "from 10 to"},
    {"jobs.owner_timeout_ms", "99", "from 100 to"},
    {"jobs.aging_ms", "0", "from 1 to"},
    {"db.busy_timeout_ms", "-1", "from 0 to"},
    {"ingest.detector", "yolo", "\"ssd\" or \"tiny\""},
    {"ingest.detector", "SSD", "\"ssd\" or \"tiny\""},
    {"ingest.detector", "", "\"ssd\" or \"tiny\""},
    {"ingest.detect_tiles", "AUTO", "\"off\", \"on\" or \"auto\""},
    {"ingest.detect_tiles", "tiled", "\"off\", \"on\" or \"auto\""},
    {"ingest.detect_tiles", "", "\"off\", \"on\" or \"auto\""},
    {"workers.prefetch", "yes", "\"auto\", \"on\" or \"off\""},
    {"workers.prefetch", "OFF", "\"auto\", \"on\" or \"off\""},
    {"vision.precision", "fp16", "\"fp32\", \"bf16\" or \"int16\""},
    {"vision.precision", "BF16", "\"fp32\", \"bf16\" or \"int16\""},
    {"vision.precision", "int8", "\"fp32\", \"bf16\" or \"int16\""},
    {"ingest.min_face_size", "0", "from 1 to"},
    {"ingest.batch", "0", "from 1 to 4096"},
    {"ingest.batch", "4097", "from 1 to 4096"},
    {"log.path", "a\nb", "control character"},
    {"db.url", "/home/me/faces", "postgresql://"},
    {"db.url", "mysql://h/db", "postgresql://"},
};

static void test_set_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        fn_config c, before;
        fn_config_defaults(&c);
        before = c;
        char err[512] = "";
        int rc = fn_config_set(&c, bads[i].key, bads[i].value, err, sizeof err);
        if (rc != FN_ERR_CONFIG || !strstr(err, bads[i].key) || !strstr(err, bads[i].expect)) {
            print_error("%s = '%s' gave rc %d, message: %s\n", bads[i].key, bads[i].value, rc, err);
            fail();
        }
        assert_true(fn_config_equal(&c, &before));
    }
}

static void test_long_string(void **state)
{
    (void)state;
    fn_config c;
    fn_config_defaults(&c);
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char err[256];
    assert_int_equal(fn_config_set(&c, "models.dir", big, err, sizeof err), FN_ERR_CONFIG);
    assert_non_null(strstr(err, "at most 1023"));
    assert_string_equal(c.models_dir, "");
}

static void test_unknown_key(void **state)
{
    (void)state;
    fn_config c;
    fn_config_defaults(&c);
    char err[512];
    assert_int_equal(fn_config_set(&c, "workers.cpu_mx", "2", err, sizeof err), FN_ERR_CONFIG);
    assert_non_null(strstr(err, "did you mean \"workers.cpu_max\""));
    assert_int_equal(fn_config_set(&c, "cpu_max", "2", err, sizeof err), FN_ERR_CONFIG);
    assert_non_null(strstr(err, "did you mean \"workers.cpu_max\""));
    assert_int_equal(fn_config_set(&c, "zzzzzzzzzz", "2", err, sizeof err), FN_ERR_CONFIG);
    assert_non_null(strstr(err, "known keys:"));
    /* a tiny buffer is truncated, never overrun */
    char tiny[8];
    assert_int_equal(fn_config_set(&c, "nope", "2", tiny, sizeof tiny), FN_ERR_CONFIG);
    assert_int_equal(strlen(tiny), 7);
}

static void test_parse(void **state)
{
    (void)state;
    const char *text = "\xEF\xBB\xBF# a comment\n"
                       "\n"
                       "   workers.cpu_max = 3   # trailing comment\r\n"
                       "ingest.detector=tiny\n"
                       "\tlog.path = \"/tmp/with # hash and \\\"quotes\\\"\"  # c\n"
                       "models.dir = /a#b\n"
                       "events.progress_hz = 5\n"
                       "workers.cpu_max = 4\n"
                       "   # indented comment";
    fn_config c;
    fn_config_defaults(&c);
    char err[256];
    assert_int_equal(fn_config_parse(&c, text, strlen(text), "t.conf", err, sizeof err), 0);
    assert_int_equal(c.workers_cpu_max, 4); /* later lines win */
    assert_string_equal(c.detector, "tiny");
    assert_string_equal(c.log_path, "/tmp/with # hash and \"quotes\"");
    assert_string_equal(c.models_dir, "/a#b");
    assert_true(c.events_progress_hz == 5.0);
    /* empty text is fine */
    assert_int_equal(fn_config_parse(&c, "", 0, "t.conf", err, sizeof err), 0);
}

struct bad_text {
    const char *text;
    const char *expect;
};

static const struct bad_text bad_texts[] = {
    {"workers.cpu_max = 2\nworkers.cpu_max 3\n", "t.conf:2: expected `key = value`"},
    {"= 3\n", "t.conf:1: expected"},
    {"# x\n\nworkers.cpu_max = lots\n",
     "t.conf:3: workers.cpu_max: \"lots\" is not a whole number"},
    {"nope.key = 1\n", "t.conf:1: unknown configuration key \"nope.key\""},
    {"log.path = \"abc\n", "t.conf:1: unterminated quoted value"},
    {"log.path = \"abc\" junk\n", "t.conf:1: unexpected text after the closing quote"},
    {"log.path = \"a\\nb\"\n", "t.conf:1: in a quoted value only"},
    {"wor$kers = 1\n", "t.conf:1: a key holds only"},
    {"ingest.batch = 9999\n", "t.conf:1: ingest.batch: \"9999\" is out of range; allowed: a whole "
                              "number from 1 to 4096"},
};

static void test_parse_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_texts / sizeof bad_texts[0]; i++) {
        fn_config c, before;
        fn_config_defaults(&c);
        before = c;
        char err[512] = "";
        int rc = fn_config_parse(&c, bad_texts[i].text, strlen(bad_texts[i].text), "t.conf", err,
                                 sizeof err);
        if (rc != FN_ERR_CONFIG || !strstr(err, bad_texts[i].expect)) {
            print_error("text %zu gave rc %d, message: %s\n", i, rc, err);
            fail();
        }
        assert_true(fn_config_equal(&c, &before));
    }
    /* a NUL byte inside the text */
    fn_config c;
    fn_config_defaults(&c);
    char err[256];
    const char nul[] = "ingest.batch = 3\nlog.path = a\0b\n";
    assert_int_equal(fn_config_parse(&c, nul, sizeof nul - 1, "t.conf", err, sizeof err),
                     FN_ERR_CONFIG);
    assert_non_null(strstr(err, "t.conf:2: the line holds a NUL byte"));
    assert_int_equal(c.ingest_batch, 32); /* line 1 was not applied */
}

static char tmpdir[256];

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fn_test_config_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_load_file(void **state)
{
    (void)state;
    char path[512], err[512];
    fn_config c;
    fn_config_defaults(&c);
    snprintf(path, sizeof path, "%s/missing.conf", tmpdir);
    assert_int_equal(fn_config_load_file(&c, path, err, sizeof err), FN_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "missing.conf"));

    snprintf(path, sizeof path, "%s/good.conf", tmpdir);
    write_file(path, "workers.gpu_max = 0\ningest.batch = 8\n");
    assert_int_equal(fn_config_load_file(&c, path, err, sizeof err), 0);
    assert_int_equal(c.workers_gpu_max, 0);
    assert_int_equal(c.ingest_batch, 8);

    snprintf(path, sizeof path, "%s/bad.conf", tmpdir);
    write_file(path, "# ok\ningest.batch = 16\ningest.detector = fast\n");
    assert_int_equal(fn_config_load_file(&c, path, err, sizeof err), FN_ERR_CONFIG);
    char want[600];
    snprintf(want, sizeof want, "%s:3: ingest.detector: \"fast\" is not allowed", path);
    assert_non_null(strstr(err, want));
    assert_int_equal(c.ingest_batch, 8); /* nothing of the bad file applied */

    /* a directory is not a configuration file */
    assert_true(fn_config_load_file(&c, tmpdir, err, sizeof err) < 0);
    assert_non_null(strstr(err, tmpdir));
}

static void test_env(void **state)
{
    (void)state;
    char err[512], name[64];
    assert_int_equal(fn_config_env_name("workers.cpu_max", name, sizeof name), 0);
    assert_string_equal(name, "FACENAMES_WORKERS_CPU_MAX");
    assert_int_equal(fn_config_env_name("ingest.min_face_size", name, sizeof name), 0);
    assert_string_equal(name, "FACENAMES_INGEST_MIN_FACE_SIZE");
    assert_int_equal(fn_config_env_name("nope", name, sizeof name), FN_ERR_NOT_FOUND);

    fn_config c;
    fn_config_defaults(&c);
    setenv("FACENAMES_WORKERS_CPU_MAX", "3", 1);
    setenv("FACENAMES_INGEST_DETECTOR", "tiny", 1);
    setenv("FACENAMES_LOG_PATH", "", 1); /* empty = unset */
    assert_int_equal(fn_config_apply_env(&c, err, sizeof err), 0);
    assert_int_equal(c.workers_cpu_max, 3);
    assert_string_equal(c.detector, "tiny");
    assert_string_equal(c.log_path, "");

    setenv("FACENAMES_EVENTS_PROGRESS_HZ", "-1", 1);
    fn_config before = c;
    assert_int_equal(fn_config_apply_env(&c, err, sizeof err), FN_ERR_CONFIG);
    assert_non_null(strstr(err, "FACENAMES_EVENTS_PROGRESS_HZ"));
    assert_non_null(strstr(err, "events.progress_hz"));
    assert_true(fn_config_equal(&c, &before));
    unsetenv("FACENAMES_EVENTS_PROGRESS_HZ");
    unsetenv("FACENAMES_WORKERS_CPU_MAX");
    unsetenv("FACENAMES_INGEST_DETECTOR");
    unsetenv("FACENAMES_LOG_PATH");
}

/* defaults < file < environment < --set, the order the CLI applies them in */
static void test_precedence(void **state)
{
    (void)state;
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/prec.conf", tmpdir);
    write_file(path, "workers.cpu_max = 2\ningest.batch = 10\ningest.min_face_size = 20\n");
    fn_config c;
    fn_config_defaults(&c);
    assert_int_equal(fn_config_load_file(&c, path, err, sizeof err), 0);
    setenv("FACENAMES_INGEST_BATCH", "11", 1);
    setenv("FACENAMES_INGEST_MIN_FACE_SIZE", "21", 1);
    assert_int_equal(fn_config_apply_env(&c, err, sizeof err), 0);
    assert_int_equal(fn_config_set(&c, "ingest.min_face_size", "22", err, sizeof err), 0);
    assert_int_equal(c.workers_cpu_max, 2);       /* file */
    assert_int_equal(c.ingest_batch, 11);         /* env over file */
    assert_int_equal(c.ingest_min_face_size, 22); /* --set over env */
    assert_int_equal(c.jobs_aging_ms, 30000);     /* default */
    unsetenv("FACENAMES_INGEST_BATCH");
    unsetenv("FACENAMES_INGEST_MIN_FACE_SIZE");
}

static void test_validate(void **state)
{
    (void)state;
    fn_config c;
    fn_config_defaults(&c);
    char err[512];
    assert_int_equal(fn_config_set(&c, "jobs.heartbeat_ms", "6000", err, sizeof err), 0);
    assert_int_equal(fn_config_validate(&c, err, sizeof err), FN_ERR_CONFIG);
    assert_non_null(strstr(err, "jobs.owner_timeout_ms"));
    assert_non_null(strstr(err, "jobs.heartbeat_ms"));
    assert_int_equal(fn_config_set(&c, "jobs.owner_timeout_ms", "12000", err, sizeof err), 0);
    assert_int_equal(fn_config_validate(&c, err, sizeof err), 0);
}

static void test_format_roundtrip(void **state)
{
    (void)state;
    fn_config c;
    fn_config_defaults(&c);
    char err[512];
    assert_int_equal(fn_config_set(&c, "log.path", " spaced # \"odd\" \\path ", err, sizeof err),
                     0);
    assert_int_equal(fn_config_set(&c, "events.progress_hz", "0.1", err, sizeof err), 0);
    assert_int_equal(fn_config_set(&c, "workers.mem_max_mb", "777", err, sizeof err), 0);
    char *text = fn_config_format(&c);
    assert_non_null(text);
    assert_non_null(strstr(text, "workers.mem_max_mb = 777\n"));
    assert_non_null(strstr(text, "ingest.detector = ssd\n"));
    assert_non_null(strstr(text, "models.dir = \"\"\n"));
    fn_config back;
    fn_config_defaults(&back);
    back.workers_cpu_max = 99;
    assert_int_equal(fn_config_parse(&back, text, strlen(text), "formatted", err, sizeof err), 0);
    assert_true(fn_config_equal(&back, &c));
    free(text);
}

static const char *docs_path; /* docs/configuration.md, from the command line */

/* Every key fn_config_format prints is documented, with its default and environment variable, so
 * the documentation cannot silently fall behind the table in config.c. */
static void test_docs_list_every_key(void **state)
{
    (void)state;
    if (!docs_path) skip();
    FILE *f = fopen(docs_path, "rb");
    assert_non_null(f);
    static char doc[65536];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    doc[n] = '\0';
    fclose(f);
    fn_config c;
    fn_config_defaults(&c);
    char *text = fn_config_format(&c);
    assert_non_null(text);
    int keys = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char key[64], env[96], want[200];
        assert_int_equal(sscanf(line, "%63s", key), 1);
        assert_int_equal(fn_config_env_name(key, env, sizeof env), 0);
        snprintf(want, sizeof want, "| `%s` |", key);
        if (!strstr(doc, want)) fail_msg("%s: key %s is not in the table", docs_path, key);
        snprintf(want, sizeof want, "`%s`", env);
        if (!strstr(doc, want)) fail_msg("%s: %s is not documented", docs_path, env);
        keys++;
    }
    assert_int_equal(keys, 28);
    free(text);
}

int main(int argc, char **argv)
{
    if (argc > 1) docs_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_set_good),
        cmocka_unit_test(test_set_bad),
        cmocka_unit_test(test_long_string),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_format_roundtrip),
        cmocka_unit_test(test_docs_list_every_key),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
