/* names.c: the names of states, lanes and resolutions as stored in JSON and shown by the CLI.
 * These strings are part of the JSON format: never change them once released. */
#include <string.h>

#include "facenames/jobs.h"

static const char *const state_names[] = {"queued", "running", "cancelled", "completed", "failed"};
static const char *const prio_names[] = {"background", "normal", "interactive"};
static const char *const res_names[] = {"pending", "skip", "retry"};

#define N(a) (int)(sizeof(a) / sizeof(a)[0])

const char *fn_job_state_name(fn_job_state s)
{
    return (int)s >= 0 && (int)s < N(state_names) ? state_names[s] : "unknown";
}

const char *fn_priority_name(fn_priority p)
{
    return (int)p >= 0 && (int)p < N(prio_names) ? prio_names[p] : "unknown";
}

const char *fn_resolution_name(fn_resolution r)
{
    return (int)r >= 0 && (int)r < N(res_names) ? res_names[r] : "unknown";
}

static int parse(const char *s, const char *const *names, int n, int *out)
{
    if (!s) return FN_ERR_INVALID;
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    return FN_ERR_INVALID;
}

int fn_job_state_parse(const char *s, fn_job_state *out)
{
    int v;
    int rc = parse(s, state_names, N(state_names), &v);
    if (!rc) *out = (fn_job_state)v;
    return rc;
}

int fn_priority_parse(const char *s, fn_priority *out)
{
    int v;
    int rc = parse(s, prio_names, N(prio_names), &v);
    if (!rc) *out = (fn_priority)v;
    return rc;
}

int fn_resolution_parse(const char *s, fn_resolution *out)
{
    int v;
    int rc = parse(s, res_names, N(res_names), &v);
    if (!rc) *out = (fn_resolution)v;
    return rc;
}
