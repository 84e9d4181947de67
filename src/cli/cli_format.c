/* cli_format.c: human output: numbers with thousands separators, durations, sizes, times, aligned
 * tables, a job's counters and errors, and the mapping from a job's end to the exit code. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_util.h"
#include "util/clock.h"
#include "util/fmt.h"
#include "util/pathenc.h"

char *cli_fmt_elapsed(double seconds, char *buf, size_t len)
{
    if (seconds >= 0 && seconds < 10)
        snprintf(buf, len, "%.2f s", seconds);
    else if (seconds >= 10 && seconds < 59.95)
        snprintf(buf, len, "%.1f s", seconds);
    else
        fn_fmt_duration(seconds, buf, len);
    return buf;
}

char *cli_fmt_time(int64_t ms, char *buf, size_t len)
{
    if (ms < 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

char *cli_fmt_ago(int64_t ms, char *buf, size_t len)
{
    if (ms < 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    int64_t ago = (fn_wall_ms() - ms) / 1000;
    if (ago < 0) ago = 0; /* another host's clock a little ahead */
    if (ago < 60)
        snprintf(buf, len, "%lld s ago", (long long)ago);
    else if (ago < 3600)
        snprintf(buf, len, "%lld min ago", (long long)(ago / 60));
    else if (ago < 86400)
        snprintf(buf, len, "%lld h ago", (long long)(ago / 3600));
    else {
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        localtime_r(&t, &tm);
        strftime(buf, len, "%Y-%m-%d", &tm);
    }
    return buf;
}

char *cli_fmt_iso(int64_t ms, char *buf, size_t len)
{
    if (ms < 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    return fn_iso8601(ms, buf, len);
}

/* ---- Tables -----------------------------------------------------------------------------------
 */

struct cli_table {
    int ncols;
    int *right;
    char **cells; /* rows * ncols, row 0 the header */
    size_t rows, cap;
};

cli_table *cli_table_new(int ncols, const char *const *headers, const int *right)
{
    cli_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->ncols = ncols;
    t->right = calloc((size_t)ncols, sizeof *t->right);
    if (!t->right) {
        free(t);
        return NULL;
    }
    if (right) memcpy(t->right, right, (size_t)ncols * sizeof *right);
    cli_table_add(t, headers);
    return t;
}

void cli_table_add(cli_table *t, const char *const *cells)
{
    if (!t) return;
    if (t->rows == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 16;
        char **nc = realloc(t->cells, ncap * (size_t)t->ncols * sizeof *nc);
        if (!nc) return;
        t->cells = nc;
        t->cap = ncap;
    }
    /* a cell is often a file name: control characters are shown, never sent to the terminal */
    for (int c = 0; c < t->ncols; c++)
        t->cells[t->rows * (size_t)t->ncols + (size_t)c] = fn_term_text(cells[c]);
    t->rows++;
}

/* Display width of UTF-8 text: counts code points, not bytes (good enough for paths and names). */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) w++;
    return w;
}

void cli_table_print(const cli_table *t, FILE *out)
{
    if (!t) return;
    size_t *width = calloc((size_t)t->ncols, sizeof *width);
    if (!width) return;
    for (size_t r = 0; r < t->rows; r++)
        for (int c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * (size_t)t->ncols + (size_t)c];
            size_t w = cell ? text_width(cell) : 0;
            if (w > width[c]) width[c] = w;
        }
    for (size_t r = 0; r < t->rows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * (size_t)t->ncols + (size_t)c];
            if (!cell) cell = "";
            size_t pad = width[c] - text_width(cell);
            int last = c == t->ncols - 1;
            if (t->right[c])
                fprintf(out, "%*s%s", (int)pad, "", cell);
            else
                fprintf(out, "%s%*s", cell, last ? 0 : (int)pad, "");
            if (!last) fputs("  ", out);
        }
        fputc('\n', out);
    }
    free(width);
}

void cli_table_free(cli_table *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->rows * (size_t)t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t->right);
    free(t);
}

const char *cli_error_message(const char *item, const char *message)
{
    if (!message) return "";
    size_t n = item ? strlen(item) : 0;
    if (n && strncmp(message, item, n) == 0 && message[n] == ':' && message[n + 1] == ' ')
        return message + n + 2;
    return message;
}

int cli_job_exit_code(const fn_job_info *job)
{
    switch (job->state) {
    case FN_JOB_COMPLETED:
        return job->n_errors > 0 ? CLI_EXIT_ITEMS : CLI_EXIT_OK;
    case FN_JOB_CANCELLED:
        return CLI_EXIT_CANCELLED;
    default:
        return CLI_EXIT_FAILURE;
    }
}

void cli_print_progress_lines(const char *progress_json, FILE *out, const char *indent)
{
    if (!progress_json || !*progress_json) return;
    json_error_t jerr;
    json_t *root = json_loads(progress_json, 0, &jerr);
    if (!root) {
        fprintf(out, "%s%s\n", indent, fn_term_str(progress_json));
        return;
    }
    json_t *counters = json_object_get(root, "counters");
    json_t *hists = json_object_get(root, "histograms");
    size_t wname = 0;
    const char *key;
    json_t *val;
    json_object_foreach(counters, key, val) if (strlen(key) > wname) wname = strlen(key);
    json_object_foreach(hists, key, val) if (strlen(key) > wname) wname = strlen(key);
    char num[48];
    json_object_foreach(counters, key, val)
    {
        if (json_is_integer(val))
            fprintf(out, "%s%-*s  %s\n", indent, (int)wname, key,
                    fn_fmt_count(json_integer_value(val), num, sizeof num));
        else if (json_is_real(val))
            fprintf(out, "%s%-*s  %.3g\n", indent, (int)wname, key, json_real_value(val));
    }
    /* A histogram: {"bounds": [...], "counts": [...]} (counts has one more, the overflow) when the
     * engine writes it so; anything else is shown as compact JSON. */
    json_object_foreach(hists, key, val)
    {
        json_t *bounds = json_object_get(val, "bounds");
        json_t *counts = json_object_get(val, "counts");
        fprintf(out, "%s%-*s  ", indent, (int)wname, key);
        if (json_is_array(bounds) && json_is_array(counts) &&
            json_array_size(counts) == json_array_size(bounds) + 1) {
            for (size_t i = 0; i < json_array_size(counts); i++) {
                json_t *b = json_array_get(bounds, i);
                if (i < json_array_size(bounds))
                    fprintf(out, "%s<=%g: %lld", i ? ", " : "", json_number_value(b),
                            (long long)json_integer_value(json_array_get(counts, i)));
                else
                    fprintf(out, ", more: %lld",
                            (long long)json_integer_value(json_array_get(counts, i)));
            }
            fputc('\n', out);
        } else {
            char *s = json_dumps(val, JSON_COMPACT);
            fprintf(out, "%s\n", s ? s : "?");
            free(s);
        }
    }
    /* anything else the engine adds to progress (rates, ...) */
    json_object_foreach(root, key, val)
    {
        if (strcmp(key, "counters") == 0 || strcmp(key, "histograms") == 0) continue;
        char *s = json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY);
        fprintf(out, "%s%-*s  %s\n", indent, (int)wname, key, s ? s : "?");
        free(s);
    }
    json_decref(root);
}
