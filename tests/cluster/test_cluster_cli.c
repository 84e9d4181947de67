/* test_cluster_cli.c: `facenames cluster` through the built program: usage errors, then a library
 * filled by one ingest of the sample photos, clustered incrementally and with --full.
 *
 * Nothing here knows how many faces the samples hold: the expectations come from the jobs' own
 * counters and from `faces list --json` (every face placed in a cluster is listed with one). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>

#include "../cli/cli_harness.h"

static char lib[600], models[1100], samples[1100];

static json_t *run_json(const char *const *args)
{
    const char *envs[] = {models, NULL};
    struct cli_result r = cli_run(envs, args);
    json_error_t e;
    json_t *j = r.code == 0 ? json_loads(r.out, 0, &e) : NULL;
    CHECK(r, j != NULL);
    cli_result_free(&r);
    return j;
}

static json_int_t counter(json_t *job, const char *name)
{
    return json_integer_value(
        json_object_get(json_object_get(json_object_get(job, "progress"), "counters"), name));
}

/* Faces listed with a cluster. */
static size_t clustered(size_t *total)
{
    const char *args[] = {"--library", lib, "faces", "list", "--json", NULL};
    json_t *a = run_json(args);
    size_t n = 0, i;
    json_t *f;
    json_array_foreach(a, i, f) n += json_is_integer(json_object_get(f, "cluster"));
    *total = json_array_size(a);
    json_decref(a);
    return n;
}

static void test_usage(void **state)
{
    (void)state;
    lib_path("usage", lib, sizeof lib);
    const char *bad1[] = {"--library", lib, "cluster", "--threshold", "5", NULL};
    struct cli_result r = cli_run(NULL, bad1);
    CHECK(r, r.code == 2);
    cli_result_free(&r);
    const char *bad2[] = {"--library", lib, "cluster", "--min-faces", "0", NULL};
    r = cli_run(NULL, bad2);
    CHECK(r, r.code == 2);
    cli_result_free(&r);
    const char *bad3[] = {"--library", lib, "cluster", "--bogus", NULL};
    r = cli_run(NULL, bad3);
    CHECK(r, r.code == 2);
    cli_result_free(&r);
}

static void test_cluster_samples(void **state)
{
    (void)state;
    lib_path("lib", lib, sizeof lib);
    const char *ing[] = {"--library", lib, "ingest", samples, "--json", NULL};
    json_decref(run_json(ing));
    size_t total = 0;
    assert_int_equal(clustered(&total), 0);
    assert_true(total > 0);

    const char *inc[] = {"--library", lib, "cluster", "--json", NULL};
    json_t *j = run_json(inc);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "completed");
    assert_int_equal(counter(j, "faces_total"), (json_int_t)total);
    assert_int_equal(counter(j, "faces_done"), (json_int_t)total);
    json_int_t noise = counter(j, "noise_count");
    json_decref(j);
    size_t n = 0;
    assert_int_equal(clustered(&n), (size_t)((json_int_t)total - noise));

    /* again: nothing new */
    j = run_json(inc);
    assert_int_equal(counter(j, "faces_total"), 0);
    json_decref(j);

    /* --full with clusters of one: every face gets a cluster */
    const char *full[] = {"--library",   lib, "cluster", "--full",
                          "--min-faces", "1", "--json",  NULL};
    j = run_json(full);
    assert_int_equal(counter(j, "faces_total"), (json_int_t)total);
    assert_int_equal(counter(j, "noise_count"), 0);
    json_decref(j);
    assert_int_equal(clustered(&n), total);
}

int main(void)
{
    const char *m = getenv("FACENAMES_MODELS"), *s = getenv("FACENAMES_SAMPLES");
    snprintf(models, sizeof models, "FACENAMES_MODELS_DIR=%s", m ? m : "");
    snprintf(samples, sizeof samples, "%s", s ? s : "");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_cluster_samples),
    };
    return cmocka_run_group_tests(tests, harness_group_setup, harness_group_teardown);
}
