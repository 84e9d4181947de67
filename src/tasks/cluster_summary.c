/* cluster_summary.c: what a person wants to know after a clustering run (the "clustering" type's
 * summary, printed by the CLI at the end of a run and by `jobs show`). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "tasks/cluster.h"
#include "util/fmt.h"

static long long counter(json_t *counters, const char *name)
{
    return (long long)json_integer_value(json_object_get(counters, name));
}

char *cluster_summary(const fn_job_info *job, void *user)
{
    (void)user;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    json_error_t jerr;
    json_t *p = json_loads(job->progress ? job->progress : "{}", 0, &jerr);
    json_t *c = json_object_get(p, "counters");
    json_t *payload = json_loads(job->payload ? job->payload : "{}", 0, &jerr);
    char b1[32], b2[32];
    fprintf(f, "clustering job %lld %s%s", (long long)job->id, fn_job_state_name(job->state),
            json_is_true(json_object_get(payload, "full")) ? " (full)" : "");
    if (job->parent > 0) fprintf(f, " (continues job %lld)", (long long)job->parent);
    fputc('\n', f);
    fprintf(f, "  faces       %s placed of %s\n",
            fn_fmt_count(counter(c, "faces_done"), b1, sizeof b1),
            fn_fmt_count(counter(c, "faces_total"), b2, sizeof b2));
    fprintf(f, "  clusters    %s new\n",
            fn_fmt_count(counter(c, "clusters_created"), b1, sizeof b1));
    fprintf(f, "  persons     %s faces joined a person\n",
            fn_fmt_count(counter(c, "joined_person"), b1, sizeof b1));
    fprintf(f, "  noise       %s faces left unclustered\n",
            fn_fmt_count(counter(c, "noise_count"), b1, sizeof b1));
    double secs = job->finished_at >= 0 && job->started_at >= 0
                      ? (double)(job->finished_at - job->started_at) / 1000.0
                      : 0;
    fprintf(f, "  time        %s\n", fn_fmt_duration(secs, b1, sizeof b1));
    if (job->state == FN_JOB_CANCELLED)
        fprintf(f, "  to continue: facenames jobs resume %lld\n", (long long)job->id);
    json_decref(p);
    json_decref(payload);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
