/* test_cli.c: the `facenames` program's command line, run as a subprocess against a temporary
 * library: help and version, bad arguments (exit 2), configuration sources and their precedence,
 * bad configuration values (clear errors), `jobs list` on an empty library and `jobs show` of a
 * missing job. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sys/stat.h>

#include "cli_harness.h"

static void test_help(void **state)
{
    (void)state;
    struct cli_result r = cli_run(NULL, (const char *[]){"--help", NULL});
    CHECK(r, r.code == 0);
    CHECK(r, strstr(r.out, "usage: facenames"));
    CHECK(r, strstr(r.out, "jobs"));
    CHECK(r, strstr(r.out, "worker"));
    CHECK(r, strstr(r.out, "ingest"));
    CHECK(r, strstr(r.out, "--library DIR"));
    CHECK(r, strstr(r.out, "--set KEY=VALUE"));
    CHECK(r, strstr(r.out, "Exit codes:"));
    for (int code = 0; code <= 4; code++) {
        char line[16];
        snprintf(line, sizeof line, "\n  %d  ", code);
        CHECK(r, strstr(r.out, line));
    }
    cli_result_free(&r);

    r = cli_run(NULL, (const char *[]){"help", NULL});
    CHECK(r, r.code == 0 && strstr(r.out, "usage: facenames"));
    cli_result_free(&r);

    static const char *const cmds[] = {"jobs", "worker", "config"};
    for (size_t i = 0; i < 3; i++) {
        r = cli_run(NULL, (const char *[]){cmds[i], "--help", NULL});
        CHECK(r, r.code == 0);
        CHECK(r, strstr(r.out, "usage: facenames"));
        CHECK(r, strstr(r.out, cmds[i]));
        cli_result_free(&r);
        r = cli_run(NULL, (const char *[]){"help", cmds[i], NULL});
        CHECK(r, r.code == 0 && strstr(r.out, cmds[i]));
        cli_result_free(&r);
    }
    r = cli_run(NULL, (const char *[]){"jobs", "retry", "--help", NULL});
    CHECK(r, r.code == 0 && strstr(r.out, "--code CODE"));
    cli_result_free(&r);
}

static void test_version(void **state)
{
    (void)state;
    struct cli_result r = cli_run(NULL, (const char *[]){"--version", NULL});
    CHECK(r, r.code == 0);
    CHECK(r, strncmp(r.out, "facenames ", 10) == 0);
    CHECK(r, r.out[10] >= '0' && r.out[10] <= '9');
    cli_result_free(&r);
}

struct bad_args {
    const char *args[8];
    const char *expect; /* on stderr */
};

static void test_bad_args(void **state)
{
    (void)state;
    char lib[600];
    lib_path("lib_bad", lib, sizeof lib);
    const struct bad_args cases[] = {
        {{NULL}, "usage: facenames"},
        {{"--bogus", NULL}, "unknown option '--bogus'"},
        {{"frobnicate", NULL}, "unknown command 'frobnicate'"},
        {{"--library", NULL}, "option --library needs a value"},
        {{"--library", lib, "jobs", NULL}, "usage: facenames jobs"},
        {{"--library", lib, "jobs", "frob", NULL}, "unknown subcommand 'frob'"},
        {{"--library", lib, "jobs", "show", NULL}, "missing job id"},
        {{"--library", lib, "jobs", "show", "abc", NULL}, "'abc' is not a job id"},
        {{"--library", lib, "jobs", "show", "0", NULL}, "'0' is not a job id"},
        {{"--library", lib, "jobs", "show", "1", "2", NULL}, "one job id only"},
        {{"--library", lib, "jobs", "list", "--state", "sleeping", NULL}, "--state 'sleeping'"},
        {{"--library", lib, "jobs", "list", "--state", NULL}, "--state needs a value"},
        {{"--library", lib, "jobs", "list", "--limit", "-3", NULL}, "--limit '-3'"},
        {{"--library", lib, "jobs", "list", "extra", NULL}, "unexpected argument 'extra'"},
        {{"--library", lib, "jobs", "retry", "1", "--code", NULL}, "--code needs a value"},
        {{"--library", lib, "jobs", "resume", NULL}, "missing job id"},
        {{"--library", lib, "jobs", "cancel", "--now", "1", NULL}, "unknown option '--now'"},
        {{"--library", lib, "worker", "--threads", "0", NULL}, "--threads '0'"},
        {{"--library", lib, "worker", "--threads", "many", NULL}, "--threads 'many'"},
        {{"--library", lib, "config", "edit", NULL}, "unknown subcommand 'edit'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cli_result r = cli_run(NULL, cases[i].args);
        CHECK(r, r.code == 2);
        CHECK(r, strstr(r.err, cases[i].expect));
        CHECK(r, r.out[0] == '\0');
        cli_result_free(&r);
    }
}

static void test_bad_set(void **state)
{
    (void)state;
    char lib[600];
    lib_path("lib_set", lib, sizeof lib);
    struct cli_result r = cli_run(
        NULL, (const char *[]){"--library", lib, "--set", "workers.cpu_max=0", "config", NULL});
    CHECK(r, r.code == 2);
    CHECK(r, strstr(r.err, "workers.cpu_max"));
    CHECK(r, strstr(r.err, "allowed: a whole number from 1 to"));
    cli_result_free(&r);

    r = cli_run(NULL, (const char *[]){"--library", lib, "--set", "ingest.detector=yolo", "jobs",
                                       "list", NULL});
    CHECK(r, r.code == 2);
    CHECK(r, strstr(r.err, "ingest.detector: \"yolo\" is not allowed; allowed: \"ssd\" or "
                           "\"tiny\""));
    cli_result_free(&r);

    r = cli_run(NULL,
                (const char *[]){"--library", lib, "--set", "workers.cpumax=2", "config", NULL});
    CHECK(r, r.code == 2);
    CHECK(r, strstr(r.err, "did you mean \"workers.cpu_max\""));
    cli_result_free(&r);

    r = cli_run(NULL,
                (const char *[]){"--library", lib, "--set", "workers.cpu_max", "config", NULL});
    CHECK(r, r.code == 2);
    CHECK(r, strstr(r.err, "expected KEY=VALUE"));
    cli_result_free(&r);

    /* a bad combination found only once every source is applied */
    r = cli_run(NULL, (const char *[]){"--library", lib, "--set", "jobs.heartbeat_ms=9000",
                                       "config", NULL});
    CHECK(r, r.code == 1);
    CHECK(r, strstr(r.err, "jobs.owner_timeout_ms"));
    cli_result_free(&r);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* defaults < <library>/facenames.conf < FACENAMES_* < --set; --config and $FACENAMES_CONFIG */
static void test_config_sources(void **state)
{
    (void)state;
    char lib[600], conf[700], other[700];
    lib_path("lib_conf", lib, sizeof lib);
    struct cli_result r = cli_run(NULL, (const char *[]){"--library", lib, "config", NULL});
    CHECK(r, r.code == 0);
    CHECK(r, strstr(r.out, "ingest.batch = 32\n")); /* default */
    CHECK(r, strstr(r.out, "# file: (none)"));
    cli_result_free(&r);

    r = cli_run(NULL, (const char *[]){"--library", lib, "config", "path", NULL});
    CHECK(r, r.code == 0 && r.out[0] == '\0');
    cli_result_free(&r);

    snprintf(conf, sizeof conf, "%s/facenames.conf", lib);
    mkdir(lib, 0755);
    write_text(conf, "# test\ningest.batch = 10\ningest.min_face_size = 20\nworkers.gpu_max = 0\n");
    r = cli_run(NULL, (const char *[]){"--library", lib, "config", NULL});
    CHECK(r, r.code == 0);
    CHECK(r, strstr(r.out, "ingest.batch = 10\n"));
    CHECK(r, strstr(r.out, conf));
    cli_result_free(&r);

    const char *env[] = {"FACENAMES_INGEST_BATCH=11", "FACENAMES_INGEST_MIN_FACE_SIZE=21", NULL};
    r = cli_run(env, (const char *[]){"--library", lib, "--set", "ingest.min_face_size=22",
                                      "config", "show", NULL});
    CHECK(r, r.code == 0);
    CHECK(r, strstr(r.out, "ingest.batch = 11\n"));         /* env over file */
    CHECK(r, strstr(r.out, "ingest.min_face_size = 22\n")); /* --set over env */
    CHECK(r, strstr(r.out, "workers.gpu_max = 0\n"));       /* file over default */
    /* the default precision, and what it runs here */
    CHECK(r, strstr(r.out, "vision.precision = auto\n"));
    CHECK(r, strstr(r.out, "# vision.precision = auto runs int16 on this CPU\n") ||
                 strstr(r.out, "# vision.precision = auto runs fp32 on this CPU\n"));
    cli_result_free(&r);
    r = cli_run(
        NULL, (const char *[]){"--library", lib, "--set", "vision.precision=fp32", "config", NULL});
    CHECK(r, r.code == 0);
    CHECK(r, strstr(r.out, "vision.precision = fp32\n") && !strstr(r.out, "auto runs"));
    cli_result_free(&r);

    /* global options are accepted after the command too */
    r = cli_run(NULL, (const char *[]){"config", "--library", lib, "--set=ingest.batch=5", NULL});
    CHECK(r, r.code == 0);
    CHECK(r, strstr(r.out, "ingest.batch = 5\n"));
    CHECK(r, strstr(r.out, conf));
    cli_result_free(&r);

    /* the library from the environment, and the file found in it */
    char libenv[700];
    snprintf(libenv, sizeof libenv, "FACENAMES_LIBRARY=%s", lib);
    r = cli_run((const char *[]){libenv, NULL}, (const char *[]){"config", "path", NULL});
    CHECK(r, r.code == 0);
    CHECK(r, strstr(r.out, conf));
    cli_result_free(&r);

    /* --config names another file, which must exist */
    snprintf(other, sizeof other, "%s/other.conf", harness_tmp);
    write_text(other, "ingest.batch = 7\n");
    r = cli_run(NULL, (const char *[]){"--library", lib, "--config", other, "config", NULL});
    CHECK(r, r.code == 0);
    CHECK(r, strstr(r.out, "ingest.batch = 7\n"));
    CHECK(r, strstr(r.out, "workers.gpu_max = 1\n")); /* the library's file is not read */
    cli_result_free(&r);
    char envconf[800];
    snprintf(envconf, sizeof envconf, "FACENAMES_CONFIG=%s", other);
    r = cli_run((const char *[]){envconf, NULL},
                (const char *[]){"--library", lib, "config", NULL});
    CHECK(r, r.code == 0 && strstr(r.out, "ingest.batch = 7\n"));
    cli_result_free(&r);
    r = cli_run(NULL, (const char *[]){"--library", lib, "--config", "/nonexistent/x.conf",
                                       "config", NULL});
    CHECK(r, r.code == 1);
    CHECK(r, strstr(r.err, "facenames: configuration: /nonexistent/x.conf"));
    cli_result_free(&r);

    /* the default library: $XDG_DATA_HOME/facenames, else ~/.local/share/facenames */
    r = cli_run(NULL, (const char *[]){"config", NULL});
    char want[700];
    snprintf(want, sizeof want, "# library: %s/home/.local/share/facenames\n", harness_tmp);
    CHECK(r, r.code == 0 && strstr(r.out, want));
    cli_result_free(&r);
    char xdg[700];
    snprintf(xdg, sizeof xdg, "XDG_DATA_HOME=%s/xdg", harness_tmp);
    r = cli_run((const char *[]){xdg, NULL}, (const char *[]){"config", NULL});
    snprintf(want, sizeof want, "# library: %s/xdg/facenames\n", harness_tmp);
    CHECK(r, r.code == 0 && strstr(r.out, want));
    cli_result_free(&r);
}

static void test_bad_config_file_and_env(void **state)
{
    (void)state;
    char lib[600], conf[700];
    lib_path("lib_badconf", lib, sizeof lib);
    mkdir(lib, 0755);
    snprintf(conf, sizeof conf, "%s/facenames.conf", lib);
    write_text(conf, "workers.cpu_max = 2\nworkers.gpu_max = lots\n");
    struct cli_result r = cli_run(NULL, (const char *[]){"--library", lib, "jobs", "list", NULL});
    CHECK(r, r.code == 1);
    char want[800];
    snprintf(want, sizeof want, "facenames: configuration: %s:2: workers.gpu_max: \"lots\"", conf);
    CHECK(r, strstr(r.err, want));
    CHECK(r, strstr(r.err, "allowed: a whole number from 0 to 64"));
    cli_result_free(&r);
    /* help still works with a broken configuration */
    r = cli_run(NULL, (const char *[]){"--library", lib, "jobs", "--help", NULL});
    CHECK(r, r.code == 0 && strstr(r.out, "usage: facenames jobs"));
    cli_result_free(&r);
    unlink(conf);

    r = cli_run((const char *[]){"FACENAMES_WORKERS_CPU_MAX=none", NULL},
                (const char *[]){"--library", lib, "config", NULL});
    CHECK(r, r.code == 1);
    CHECK(r, strstr(r.err, "environment variable FACENAMES_WORKERS_CPU_MAX: workers.cpu_max: "
                           "\"none\" is not a whole number"));
    cli_result_free(&r);
}

/* Reading commands on a folder that is not a library say so and create nothing (issue 8 #7);
 * the commands that add work create it on first use. */
static void test_jobs_empty_library(void **state)
{
    (void)state;
    char lib[600], db[700];
    lib_path("lib_empty/nested", lib, sizeof lib);
    snprintf(db, sizeof db, "%s/library.db", lib);
    struct cli_result r = cli_run(NULL, (const char *[]){"--library", lib, "jobs", "list", NULL});
    CHECK(r, r.code == 0);
    CHECK(r, strncmp(r.out, "no jobs (there is no library in ", 32) == 0);
    cli_result_free(&r);
    assert_int_not_equal(access(lib, F_OK), 0);

    r = cli_run(NULL, (const char *[]){"--library", lib, "jobs", "list", "--json", NULL});
    CHECK(r, r.code == 0);
    CHECK(r, strcmp(r.out, "[]\n") == 0);
    cli_result_free(&r);

    r = cli_run(NULL,
                (const char *[]){"--library", lib, "jobs", "list", "--state", "running", NULL});
    CHECK(r, r.code == 0);
    CHECK(r, strncmp(r.out, "no running jobs (there is no library in ", 40) == 0);
    cli_result_free(&r);

    r = cli_run(NULL, (const char *[]){"--library", lib, "jobs", "show", "42", NULL});
    CHECK(r, r.code == 1);
    CHECK(r, strncmp(r.err, "facenames: jobs show: job 42: ", 30) == 0);
    CHECK(r, r.out[0] == '\0');
    cli_result_free(&r);

    r = cli_run(NULL, (const char *[]){"--library", lib, "jobs", "show", "#42", "--json", NULL});
    CHECK(r, r.code == 1);
    CHECK(r, strncmp(r.err, "facenames: jobs show: job 42: ", 30) == 0);
    cli_result_free(&r);

    static const char *const subs[][2] = {
        {"cancel", NULL}, {"resume", "--detach"}, {"retry", "--detach"}, {"log", NULL}};
    for (size_t i = 0; i < 4; i++) {
        r = cli_run(NULL,
                    (const char *[]){"--library", lib, "jobs", subs[i][0], "42", subs[i][1], NULL});
        CHECK(r, r.code == 1);
        CHECK(r, strstr(r.err, "job 42"));
        cli_result_free(&r);
    }

    assert_int_not_equal(access(db, F_OK), 0);

    r = cli_run(NULL, (const char *[]){"--library", lib, "jobs", "watch", NULL});
    CHECK(r, r.code == 1);
    CHECK(r, strstr(r.err, "no running or queued job"));
    cli_result_free(&r);
    assert_int_not_equal(access(db, F_OK), 0);

    r = cli_run(NULL, (const char *[]){"--library", lib, "worker", "--until-idle", NULL});
    CHECK(r, r.code == 0);
    CHECK(r, strstr(r.err, "0 job(s) finished"));
    cli_result_free(&r);
}

/* the library path is a file, not a directory */
static void test_library_not_dir(void **state)
{
    (void)state;
    char lib[600];
    lib_path("a_file", lib, sizeof lib);
    write_text(lib, "x");
    struct cli_result r = cli_run(NULL, (const char *[]){"--library", lib, "jobs", "list", NULL});
    CHECK(r, r.code == 1);
    CHECK(r, strstr(r.err, "is not a folder"));
    cli_result_free(&r);
    r = cli_run(NULL, (const char *[]){"--library", lib, "worker", "--until-idle", NULL});
    CHECK(r, r.code == 1);
    CHECK(r, strstr(r.err, "is not a folder"));
    cli_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_bad_set),
        cmocka_unit_test(test_config_sources),
        cmocka_unit_test(test_bad_config_file_and_env),
        cmocka_unit_test(test_jobs_empty_library),
        cmocka_unit_test(test_library_not_dir),
    };
    return cmocka_run_group_tests(tests, harness_group_setup, harness_group_teardown);
}
