/* test_recover.c: crash recovery and error decisions from the user's side, through the built
 * `facenames` program. An ingest killed with SIGKILL mid-run comes back queued; `jobs resume ID`
 * then runs it in the foreground under the same id (it used to refuse: "only a cancelled or
 * failed job can be resumed"), and running the same `facenames ingest` again continues it rather
 * than leaving it queued beside a new job. `jobs errors`, `jobs skip` and `jobs retry` on a job
 * with a broken photo: the decision is recorded with who made it, and retry leaves skipped errors
 * alone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "cli_json.h"

static char models_env[1100];
static const char *env[2];

static json_t *only_job(const char *lib)
{
    json_t *list =
        cli_run_json(env, (const char *[]){"--library", lib, "jobs", "list", "--json", NULL});
    assert_non_null(list);
    assert_int_equal(json_array_size(list), 1);
    json_t *j = json_incref(json_array_get(list, 0));
    json_decref(list);
    return j;
}

static json_int_t files_done(json_t *job)
{
    return job_counter(job, "files_done");
}

/* Starts `facenames ingest` of the samples, one photo per batch, and kills it with SIGKILL once
 * it has committed at least one photo. Returns the job's id. */
static json_int_t ingest_and_kill(const char *lib, const char *samples)
{
    pid_t p = cli_spawn(env,
                        (const char *[]){"--library", lib, "ingest", samples, "--batch", "1",
                                         "--detector", "tiny", NULL},
                        "ingest");
    json_int_t id = 0, done = 0;
    for (int i = 0; i < 600 && done < 1; i++) {
        sleep_ms(50);
        struct cli_result r =
            cli_run(env, (const char *[]){"--library", lib, "jobs", "list", "--json", NULL});
        json_t *list = r.code == 0 ? json_loads(r.out, 0, NULL) : NULL;
        cli_result_free(&r);
        json_t *j = json_array_get(list, 0);
        if (j) {
            id = json_integer_value(json_object_get(j, "id"));
            done = files_done(j);
        }
        json_decref(list);
    }
    kill(p, SIGKILL);
    struct cli_result r = cli_wait(p, "ingest");
    cli_result_free(&r);
    assert_true(done >= 1);
    return id;
}

static void test_resume_after_crash(void **state)
{
    (void)state;
    const char *samples = getenv("FACENAMES_SAMPLES");
    if (!samples) skip();
    char lib[600], idtext[32];
    snprintf(lib, sizeof lib, "%s/crash", harness_tmp);

    json_int_t id = ingest_and_kill(lib, samples);
    snprintf(idtext, sizeof idtext, "%lld", (long long)id);
    struct cli_result r =
        cli_run(env, (const char *[]){"--library", lib, "jobs", "resume", idtext, NULL});
    CHECK(r, r.code == 0);
    CHECK(r, strstr(r.err, "was interrupted; continuing it from its checkpoint"));
    CHECK(r, strstr(r.out, "ingest job"));
    cli_result_free(&r);
    json_t *j = only_job(lib); /* the same job, no second one */
    assert_int_equal(json_integer_value(json_object_get(j, "id")), id);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "completed");
    assert_true(job_counter(j, "files_total") >= 6); /* the sample photos and screenshots */
    assert_int_equal(files_done(j), job_counter(j, "files_total"));
    json_decref(j);

    /* Again, and this time the user just runs the same ingest again. */
    snprintf(lib, sizeof lib, "%s/crash2", harness_tmp);
    id = ingest_and_kill(lib, samples);
    r = cli_run(env, (const char *[]){"--library", lib, "ingest", samples, "--batch", "1",
                                      "--detector", "tiny", NULL});
    CHECK(r, r.code == 0);
    CHECK(r, strstr(r.err, "continuing ingest job"));
    cli_result_free(&r);
    j = only_job(lib);
    assert_int_equal(json_integer_value(json_object_get(j, "id")), id);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "completed");
    json_int_t total = job_counter(j, "files_total");
    json_decref(j);
    /* Each photo once. */
    r = cli_run(env, (const char *[]){"--library", lib, "photos", "list", "--json", NULL});
    json_t *photos = json_loads(r.out, 0, NULL);
    CHECK(r, r.code == 0 && (json_int_t)json_array_size(photos) == total);
    json_decref(photos);
    cli_result_free(&r);
}

static void test_errors_skip_retry(void **state)
{
    (void)state;
    const char *samples = getenv("FACENAMES_SAMPLES");
    if (!samples) skip();
    char dir[600], path[700], lib[600];
    snprintf(dir, sizeof dir, "%s/photos", harness_tmp);
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/broken.jpg", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("\xff\xd8\xff\xe0 not really a jpeg", f);
    fclose(f);
    snprintf(lib, sizeof lib, "%s/errs", harness_tmp);
    struct cli_result r =
        cli_run(env, (const char *[]){"--library", lib, "ingest", dir, "--detector", "tiny", NULL});
    CHECK(r, r.code == 4);
    cli_result_free(&r);
    json_t *j = only_job(lib);
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)json_integer_value(json_object_get(j, "id")));
    json_decref(j);

    json_t *errs =
        cli_run_json(env, (const char *[]){"--library", lib, "jobs", "errors", id, "--json", NULL});
    assert_int_equal(json_array_size(errs), 1);
    json_t *e0 = json_array_get(errs, 0);
    const char *code = json_string_value(json_object_get(e0, "code"));
    char code_copy[64];
    snprintf(code_copy, sizeof code_copy, "%s", code);
    assert_string_equal(json_string_value(json_object_get(e0, "item")), path);
    json_decref(errs);

    /* Mark it skip (as a user who gave up on that file), with who and when. */
    r = cli_run((const char *[]){"USER=ann", models_env, NULL},
                (const char *[]){"--library", lib, "jobs", "skip", id, "--code", code_copy, NULL});
    CHECK(r, r.code == 0 && strstr(r.out, "1 error(s) marked skip"));
    cli_result_free(&r);
    r = cli_run(env, (const char *[]){"--library", lib, "jobs", "errors", id, NULL});
    CHECK(r, r.code == 0 && strstr(r.out, "skip") && strstr(r.out, "by cli:ann at"));
    cli_result_free(&r);
    /* Retry leaves it alone, and says why. */
    r = cli_run(env, (const char *[]){"--library", lib, "jobs", "retry", id, NULL});
    CHECK(r, r.code == 1 && strstr(r.err, "marked skip"));
    cli_result_free(&r);
    /* Unless named. */
    r = cli_run(env, (const char *[]){"--library", lib, "jobs", "retry", id, "--item", path, NULL});
    CHECK(r, r.code == 4 && strstr(r.err, "marked skip but named"));
    cli_result_free(&r);
    /* skip without a selection is a usage error */
    r = cli_run(env, (const char *[]){"--library", lib, "jobs", "skip", id, NULL});
    CHECK(r, r.code == 2 && strstr(r.err, "--code CODE or --item REF"));
    cli_result_free(&r);
}

int main(void)
{
    const char *m = getenv("FACENAMES_MODELS");
    snprintf(models_env, sizeof models_env, "FACENAMES_MODELS_DIR=%s", m ? m : "");
    env[0] = models_env;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_after_crash),
        cmocka_unit_test(test_errors_skip_retry),
    };
    return cmocka_run_group_tests(tests, harness_group_setup, harness_group_teardown);
}
