/* ingest_summary.c: what a person wants to know after an ingest (the "ingest" type's summary,
 * printed by the CLI at the end of a run and by `jobs show`). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tasks/ingest.h"
#include "util/fmt.h"
#include "util/pathenc.h"

/* Writes `s` to f with its control characters escaped (a message quotes a file name, which must
 * not drive the terminal). Library code on any thread: no per-thread ring, the copy is freed. */
static void put_term(FILE *f, const char *s)
{
    char *t = fn_term_text(s);
    fputs(t ? t : "?", f);
    free(t);
}

static long long counter(json_t *counters, const char *name)
{
    return (long long)json_integer_value(json_object_get(counters, name));
}

/* One "    CODE  N" line per error code (fn_job_errors_by_code). */
static void code_line(const char *code, size_t n, void *arg)
{
    char *shown = fn_term_text(code);
    fprintf(arg, "    %-12s %zu\n", shown ? shown : "?", n);
    free(shown);
}

char *ingest_summary(const fn_job_info *job, void *user)
{
    (void)user;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) return NULL;
    json_error_t jerr;
    json_t *p = json_loads(job->progress ? job->progress : "{}", 0, &jerr);
    json_t *c = json_object_get(p, "counters");
    long long done = counter(c, "files_done"), total = counter(c, "files_total");
    long long errors = counter(c, "errors"), unchanged = counter(c, "skipped_unchanged");
    long long known = counter(c, "recognised_by_content");
    long long processed = done - errors - unchanged - known;
    if (processed < 0) processed = 0;
    long long faces = counter(c, "faces_found"), noface = counter(c, "no_face_images");
    /* The counters are the totals of the logical job. A continued run (resume, or recovery after
     * a crash) also recorded them at its start: what this run did is the difference, and its
     * rate is over its own time, not since the first run began. */
    json_t *run = json_object_get(p, "run");
    json_t *base = json_object_get(run, "counters_at_start");
    int continued = base != NULL;
    long long run_processed = processed, run_faces = faces;
    int64_t run_start = job->started_at;
    if (continued) {
        long long b_processed = counter(base, "files_done") - counter(base, "errors") -
                                counter(base, "skipped_unchanged") -
                                counter(base, "recognised_by_content");
        run_processed = processed - (b_processed > 0 ? b_processed : 0);
        if (run_processed < 0) run_processed = 0;
        run_faces = faces - counter(base, "faces_found");
        if (run_faces < 0) run_faces = 0;
        if (json_is_integer(json_object_get(run, "started_at")))
            run_start = (int64_t)json_integer_value(json_object_get(run, "started_at"));
    }
    double secs = job->finished_at >= 0 && run_start >= 0
                      ? (double)(job->finished_at - run_start) / 1000.0
                      : 0;
    char b1[32], b2[32], b3[32];
    fprintf(f, "ingest job %lld %s", (long long)job->id, fn_job_state_name(job->state));
    if (job->parent > 0) fprintf(f, " (continues job %lld)", (long long)job->parent);
    fputc('\n', f);
    fprintf(f, "  photos      %s processed of %s found", fn_fmt_count(processed, b1, sizeof b1),
            fn_fmt_count(total, b2, sizeof b2));
    if (continued)
        fprintf(f, ", %s of them in this run", fn_fmt_count(run_processed, b3, sizeof b3));
    if (unchanged) fprintf(f, " (%s unchanged, skipped)", fn_fmt_count(unchanged, b3, sizeof b3));
    if (known)
        fprintf(f,
                "\n  known       %s already in the library under another folder (same content"
                " and relative path: not processed again)",
                fn_fmt_count(known, b1, sizeof b1));
    fprintf(f, "\n  faces       %s", fn_fmt_count(faces, b1, sizeof b1));
    if (counter(c, "faces_skipped_small"))
        fprintf(f, " (%s smaller than the minimum size ignored)",
                fn_fmt_count(counter(c, "faces_skipped_small"), b2, sizeof b2));
    fprintf(f, "\n  no faces    %s photos\n", fn_fmt_count(noface, b1, sizeof b1));
    if (counter(c, "non_images"))
        fprintf(f, "  not photos  %s files ignored\n",
                fn_fmt_count(counter(c, "non_images"), b1, sizeof b1));
    fprintf(f, "  errors      %s\n", fn_fmt_count(errors, b1, sizeof b1));
    fn_job_errors_by_code(job, code_line, f);
    fprintf(f, "  time        %s%s", fn_fmt_duration(secs, b1, sizeof b1),
            continued ? " (this run)" : "");
    if (secs > 0 && run_processed > 0)
        fprintf(f, ", %.2f photos/s, %.2f faces/s", (double)run_processed / secs,
                (double)run_faces / secs);
    fprintf(f, ", %s read\n", fn_fmt_bytes(counter(c, "bytes_read"), b1, sizeof b1));
    if (job->n_errors) {
        size_t show = job->n_errors < 5 ? job->n_errors : 5;
        for (size_t i = 0; i < show; i++) {
            fputs("  ! ", f);
            put_term(f, job->errors[i].code);
            fputs(": ", f);
            put_term(f, job->errors[i].message);
            fputc('\n', f);
        }
        if (job->n_errors > show)
            fprintf(f, "  ... %zu more: facenames jobs errors %lld\n", job->n_errors - show,
                    (long long)job->id);
        fprintf(f,
                "  to retry the failed files once fixed: facenames jobs retry %lld"
                " (facenames jobs skip %lld --code CODE leaves some out)\n",
                (long long)job->id, (long long)job->id);
    }
    if (job->state == FN_JOB_CANCELLED)
        fprintf(f, "  to continue: facenames jobs resume %lld (or run the same ingest again)\n",
                (long long)job->id);
    json_decref(p);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}
