/* cli_json.h: what the CLI tests that read the program's JSON share: running facenames and parsing
 * its output, a job's counter, and a sleep. Built on cli_harness.h; needs Jansson. */
#ifndef FN_TEST_CLI_JSON_H
#define FN_TEST_CLI_JSON_H

#include <jansson.h>
#include <time.h>

#include "cli_harness.h"

static inline void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Runs facenames (see cli_run) and parses its stdout; NULL (with the output printed) when it
 * failed or printed no JSON. Caller decrefs. */
static inline json_t *cli_run_json(const char *const *envs, const char *const *args)
{
    struct cli_result r = cli_run(envs, args);
    json_t *j = r.code == 0 ? json_loads(r.out, 0, NULL) : NULL;
    if (!j) print_error("%s failed (%d): %s%s\n", args[2], r.code, r.out, r.err);
    cli_result_free(&r);
    return j;
}

/* A counter of a job as `jobs show --json` prints it (0 when absent). */
static inline json_int_t job_counter(json_t *job, const char *name)
{
    return json_integer_value(
        json_object_get(json_object_get(json_object_get(job, "progress"), "counters"), name));
}

#endif
