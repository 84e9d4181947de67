/* test_worker.c: detached work across processes, through the built `facenames` program: an ingest
 * of the sample photos enqueued with --detach, a `worker` stopped with Ctrl-C mid-job (the job goes
 * back to the queue, never stays "running"), then a `worker --until-idle` that finishes it while
 * `jobs watch` follows it from a third process and exits with the job's exit code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <time.h>

#include "cli_json.h"

/* `jobs show ID --json` parsed; NULL on failure. */
static json_t *show(const char *lib, const char *id)
{
    return cli_run_json(NULL,
                        (const char *[]){"--library", lib, "jobs", "show", id, "--json", NULL});
}

static void test_detach_worker_watch(void **state)
{
    (void)state;
    const char *samples = getenv("FACENAMES_SAMPLES");
    if (!samples) skip();
    /* the model directory the test environment names, as the configuration key */
    static char models[1100];
    const char *m = getenv("FACENAMES_MODELS");
    snprintf(models, sizeof models, "FACENAMES_MODELS_DIR=%s", m ? m : "");
    const char *env[] = {models, NULL};
    char lib[600];
    snprintf(lib, sizeof lib, "%s/lib", harness_tmp);

    struct cli_result r = cli_run(env, (const char *[]){"--library", lib, "ingest", samples,
                                                        "--batch", "1", "--detach", NULL});
    CHECK(r, r.code == 0);
    cli_result_free(&r);
    r = cli_run(NULL, (const char *[]){"--library", lib, "jobs", "list", "--json", NULL});
    json_t *list = json_loads(r.out, 0, NULL);
    CHECK(r, r.code == 0 && json_array_size(list) == 1);
    char id[32];
    snprintf(id, sizeof id, "%lld",
             (long long)json_integer_value(json_object_get(json_array_get(list, 0), "id")));
    CHECK(r, strcmp(json_string_value(json_object_get(json_array_get(list, 0), "state")),
                    "queued") == 0);
    json_decref(list);
    cli_result_free(&r);

    /* a worker picks it up; Ctrl-C once it has committed a photo */
    pid_t w = cli_spawn(env, (const char *[]){"--library", lib, "worker", "--threads", "1", NULL},
                        "worker");
    json_int_t done = 0;
    for (int i = 0; i < 600 && done < 1; i++) {
        sleep_ms(100);
        json_t *j = show(lib, id);
        done = job_counter(j, "files_done");
        json_decref(j);
    }
    assert_true(done >= 1);
    kill(w, SIGINT);
    r = cli_wait(w, "worker");
    CHECK(r, r.code == 0);
    CHECK(r, strstr(r.err, "worker: stopping; running jobs go back to the queue"));
    CHECK(r, strstr(r.out, "ingest: running"));
    cli_result_free(&r);

    /* never left running: back in the queue (or done, if the last photo was already in hand) */
    json_t *j = show(lib, id);
    assert_non_null(j);
    const char *st = json_string_value(json_object_get(j, "state"));
    if (strcmp(st, "queued") != 0 && strcmp(st, "completed") != 0)
        fail_msg("job state after the worker stopped: %s", st);
    json_decref(j);

    /* a worker until idle finishes it while `jobs watch` follows from another process */
    w = cli_spawn(env, (const char *[]){"--library", lib, "worker", "--until-idle", NULL},
                  "worker2");
    r = cli_run((const char *[]){"FACENAMES_PROGRESS_INTERVAL_MS=500", NULL},
                (const char *[]){"--library", lib, "jobs", "watch", id, NULL});
    CHECK(r, r.code == 0);
    CHECK(r, strstr(r.err, "completed in"));
    CHECK(r, strstr(r.out, "completed"));
    cli_result_free(&r);
    r = cli_wait(w, "worker2");
    CHECK(r, r.code == 0);
    cli_result_free(&r);

    j = show(lib, id);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "completed");
    assert_true(job_counter(j, "files_done") == job_counter(j, "files_total"));
    json_decref(j);

    /* the lifecycle log tells the story */
    r = cli_run(NULL, (const char *[]){"--library", lib, "jobs", "log", id, NULL});
    CHECK(r, r.code == 0 && strstr(r.out, "queued") && strstr(r.out, "finish"));
    cli_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detach_worker_watch),
    };
    return cmocka_run_group_tests(tests, harness_group_setup, harness_group_teardown);
}
