/* cli_progress.c: the live progress line of a running job, and the lock that keeps other stderr
 * output (errors, library log lines from worker threads) from tearing it.
 *
 * The line is built from the job's progress JSON ({"counters": {...}, "histograms": {...}}): the
 * main pair is files_done/files_total when present, else the first X_done/X_total pair; the other
 * counters are shown generically; the rate and ETA are measured here over a sliding window of the
 * last ~10 seconds, so they follow the current speed rather than the average since the start.
 * On a terminal the line is redrawn in place at most 10 times a second; otherwise a plain line is
 * printed every few seconds (FACENAMES_PROGRESS_INTERVAL_MS, default 5000) and on state changes. */
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/cli_util.h"
#include "facenames/log.h"
#include "util/clock.h"
#include "util/pathenc.h"

static pthread_mutex_t term_mu = PTHREAD_MUTEX_INITIALIZER;
static int line_shown; /* a progress line is on the terminal (guarded by term_mu) */

void cli_term_lock(void)
{
    pthread_mutex_lock(&term_mu);
    if (line_shown) {
        fputs("\r\033[K", stderr);
        line_shown = 0;
    }
}

void cli_term_unlock(void)
{
    fflush(stderr);
    pthread_mutex_unlock(&term_mu);
}

#define N_SAMPLES 64

struct cli_progress {
    fn_job_id id;
    char type[32];
    char unit[32]; /* what the rate counts: the type's rate unit ("photos"), "" for the noun */
    int tty;
    int64_t started_at; /* wall ms, -1 unknown */
    fn_job_state state;
    int have_state;
    json_t *counters; /* latest counters object (owned) */
    char noun[64];    /* "files" from files_done/files_total */
    int64_t done, total;
    int have_pair, have_total;
    int64_t errors_counter; /* the "errors" counter, or -1 */
    int64_t errors_seen;    /* item-error events seen */
    /* (time, done) samples for the rate; ring buffer */
    uint64_t st[N_SAMPLES];
    int64_t sd[N_SAMPLES];
    int ns, head;
    uint64_t last_draw, last_plain, interval_ns;
    int plain_dirty; /* something changed since the last plain line */
};

cli_progress *cli_progress_new(fn_job_id id, const char *type, const char *rate_unit, int tty,
                               int64_t started_at_ms)
{
    cli_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->id = id;
    snprintf(p->type, sizeof p->type, "%s", type ? type : "job");
    snprintf(p->unit, sizeof p->unit, "%s",
             rate_unit && strcmp(rate_unit, "items") != 0 ? rate_unit : "");
    p->tty = tty;
    p->started_at = started_at_ms;
    p->errors_counter = -1;
    p->state = FN_JOB_QUEUED;
    long long ms = 5000;
    const char *env = getenv("FACENAMES_PROGRESS_INTERVAL_MS");
    if (env && cli_parse_ll(env, 10, 3600000, &ms) < 0) ms = 5000;
    p->interval_ns = (uint64_t)ms * 1000000u;
    p->last_plain = fn_mono_ns();
    return p;
}

void cli_progress_free(cli_progress *p)
{
    if (!p) return;
    json_decref(p->counters);
    free(p);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

void cli_progress_update(cli_progress *p, const char *progress_json)
{
    if (!p || !progress_json) return;
    json_t *root = json_loads(progress_json, 0, NULL);
    if (!root) return;
    json_t *counters = json_object_get(root, "counters");
    if (!json_is_object(counters)) {
        json_decref(root);
        return;
    }
    json_incref(counters);
    json_decref(p->counters);
    p->counters = counters;
    json_decref(root);

    /* the main pair */
    const char *noun = NULL;
    if (json_object_get(counters, "files_done")) {
        noun = "files";
    } else {
        const char *key;
        json_t *v;
        json_object_foreach(counters, key, v)
        {
            if (!ends_with(key, "_done")) continue;
            char total[128];
            snprintf(total, sizeof total, "%.*s_total", (int)(strlen(key) - 5), key);
            if (json_object_get(counters, total)) {
                noun = key;
                break;
            }
        }
        if (!noun) {
            json_object_foreach(counters, key, v) if (ends_with(key, "_done") && !noun) noun = key;
        }
    }
    p->have_pair = noun != NULL;
    if (noun) {
        size_t n = strcmp(noun, "files") == 0 ? 5 : strlen(noun) - 5;
        snprintf(p->noun, sizeof p->noun, "%.*s", (int)n, noun);
        char k[96];
        snprintf(k, sizeof k, "%s_done", p->noun);
        p->done = json_integer_value(json_object_get(counters, k));
        snprintf(k, sizeof k, "%s_total", p->noun);
        json_t *t = json_object_get(counters, k);
        p->have_total = json_is_integer(t) && json_integer_value(t) > 0;
        p->total = json_integer_value(t);
    }
    json_t *errs = json_object_get(counters, "errors");
    p->errors_counter = json_is_integer(errs) ? json_integer_value(errs) : -1;

    /* a rate sample, at most 4 a second */
    uint64_t now = fn_mono_ns();
    int last = (p->head + N_SAMPLES - 1) % N_SAMPLES;
    if (p->have_pair && (p->ns == 0 || now - p->st[last] >= 250000000u)) {
        p->st[p->head] = now;
        p->sd[p->head] = p->done;
        p->head = (p->head + 1) % N_SAMPLES;
        if (p->ns < N_SAMPLES) p->ns++;
    }
    p->plain_dirty = 1;
}

void cli_progress_state(cli_progress *p, fn_job_state state)
{
    if (!p) return;
    int changed = !p->have_state || p->state != state;
    p->state = state;
    p->have_state = 1;
    if (state == FN_JOB_RUNNING && p->started_at < 0) p->started_at = fn_wall_ms();
    if (changed && !p->tty && (state == FN_JOB_RUNNING || state == FN_JOB_QUEUED)) {
        cli_term_lock();
        fprintf(stderr, "%s #%lld: %s\n", p->type, (long long)p->id, fn_job_state_name(state));
        cli_term_unlock();
    }
}

void cli_progress_error_seen(cli_progress *p)
{
    if (p) p->errors_seen++;
}

/* Items per second over the last ~10 s of samples; before a second of samples exists, the average
 * since the job started (when known). Negative when unknown. */
static double rate_of(const cli_progress *p)
{
    if (p->ns == 0) return -1;
    uint64_t now = fn_mono_ns();
    int newest = (p->head + N_SAMPLES - 1) % N_SAMPLES;
    int oldest = newest;
    for (int k = 1; k < p->ns; k++) {
        int i = (newest - k + N_SAMPLES) % N_SAMPLES;
        if (now - p->st[i] > 10000000000u) break;
        oldest = i;
    }
    double span = (double)(p->st[newest] - p->st[oldest]) / 1e9;
    if (span >= 1.0) return (double)(p->sd[newest] - p->sd[oldest]) / span;
    if (p->started_at > 0) {
        double since = (double)(fn_wall_ms() - p->started_at) / 1000.0;
        if (since >= 0.5) return (double)p->done / since;
    }
    return -1;
}

/* "faces_found" -> "faces", "no_face_images" -> "no face images"; bytes_* shown as sizes. */
static void counter_text(const char *key, json_t *v, char *buf, size_t len)
{
    char num[48], name[96];
    int64_t x = json_integer_value(v);
    if (strncmp(key, "bytes_", 6) == 0) {
        snprintf(buf, len, "%s %s", fn_fmt_bytes(x, num, sizeof num), key + 6);
        return;
    }
    snprintf(name, sizeof name, "%s", key);
    if (ends_with(name, "_found")) name[strlen(name) - 6] = '\0';
    for (char *c = name; *c; c++)
        if (*c == '_') *c = ' ';
    if (json_is_real(v))
        snprintf(buf, len, "%.3g %s", json_real_value(v), name);
    else
        snprintf(buf, len, "%s %s", fn_fmt_count(x, num, sizeof num), name);
}

/* Appends to buf (bounded). */
static void cat(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cat(char *buf, size_t len, const char *fmt, ...)
{
    size_t n = strlen(buf);
    if (n + 1 >= len) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, len - n, fmt, ap);
    va_end(ap);
}

/* The line's parts after the bar: the main pair first, then rate, ETA and errors (always shown),
 * with the job's other non-zero counters between them as long as the whole stays within `width`
 * characters (a terminal line must not wrap); `sep` between parts. */
static void describe(cli_progress *p, char *buf, size_t len, const char *sep, size_t width)
{
    char a[48], b[48], head[160] = "", tail[200] = "";
    buf[0] = '\0';
    if (!p->counters) {
        cat(buf, len, "%s",
            p->state == FN_JOB_QUEUED ? "queued, waiting for a worker" : "starting");
        return;
    }
    if (p->have_pair) {
        if (p->have_total)
            cat(head, sizeof head, "%s/%s %s", fn_fmt_count(p->done, a, sizeof a),
                fn_fmt_count(p->total, b, sizeof b), p->noun);
        else
            cat(head, sizeof head, "%s %s", fn_fmt_count(p->done, a, sizeof a), p->noun);
    }
    double r = rate_of(p);
    if (r >= 0) {
        const char *unit = p->unit[0] ? p->unit : (p->have_pair ? p->noun : "items");
        cat(tail, sizeof tail, "%.1f %s/s", r, unit);
        if (p->have_total && r > 0 && p->state == FN_JOB_RUNNING)
            cat(tail, sizeof tail, "%sETA %s", sep,
                fn_fmt_duration((double)(p->total - p->done) / r, a, sizeof a));
    }
    int64_t errors = p->errors_counter >= 0 ? p->errors_counter : p->errors_seen;
    cat(tail, sizeof tail, "%serrors %lld", *tail ? sep : "", (long long)errors);

    size_t seplen = strlen(sep);
    size_t used = strlen(head) + seplen + strlen(tail);
    cat(buf, len, "%s", head);
    const char *key;
    json_t *v;
    json_object_foreach(p->counters, key, v)
    {
        if (!json_is_number(v) || strcmp(key, "errors") == 0) continue;
        if (json_number_value(v) == 0) continue; /* "0 faces skipped" says nothing */
        if (p->have_pair) {
            char k1[96], k2[96];
            snprintf(k1, sizeof k1, "%s_done", p->noun);
            snprintf(k2, sizeof k2, "%s_total", p->noun);
            if (strcmp(key, k1) == 0 || strcmp(key, k2) == 0) continue;
        }
        char t[160];
        counter_text(key, v, t, sizeof t);
        if (used + strlen(t) + seplen > width) continue; /* a shorter one may still fit */
        used += strlen(t) + seplen;
        cat(buf, len, "%s%s", *buf ? sep : "", t);
    }
    cat(buf, len, "%s%s", *buf ? sep : "", tail);
}

void cli_progress_describe(cli_progress *p, char *buf, size_t len)
{
    describe(p, buf, len, ", ", (size_t)-1);
}

/* Shortens `line` to at most `cols` bytes at a boundary between parts (two spaces), else
 * between words, so a narrow terminal shows whole parts ("errors 3"), never "err". */
static void cut_to_width(char *line, size_t cols)
{
    if (strlen(line) <= cols) return;
    size_t part = 0, word = 0;
    for (size_t k = 1; k <= cols; k++) {
        if (line[k] != ' ') continue;
        word = k;
        if (line[k + 1] == ' ') part = k;
    }
    size_t at = part ? part : word ? word : cols;
    while (at > 0 && line[at - 1] == ' ')
        at--;
    line[at] = '\0';
}

/* The terminal's width: $COLUMNS when set (shells export it; tests pin it), else the tty's. */
static int term_cols(void)
{
    long long env;
    if (cli_parse_ll(getenv("COLUMNS"), 20, 10000, &env) == 0) return (int)env;
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10) return ws.ws_col;
    return 80;
}

void cli_progress_tick(cli_progress *p, int force)
{
    if (!p) return;
    uint64_t now = fn_mono_ns();
    if (p->tty) {
        if (!force && now - p->last_draw < 100000000u) return;
        p->last_draw = now;
        char rest[1024], line[1200];
        size_t cols = (size_t)term_cols() - 1;
        /* the bar goes first when the line would not fit with it (a narrow terminal) */
        int bar_too = p->have_pair && p->have_total;
        for (;;) {
            snprintf(line, sizeof line, "%s #%lld  ", p->type, (long long)p->id);
            size_t prefix = strlen(line) + (bar_too ? 13 : 0);
            describe(p, rest, sizeof rest, "  ", cols > prefix ? cols - prefix : 0);
            if (!bar_too || prefix + strlen(rest) <= cols) break;
            bar_too = 0;
        }
        if (bar_too) {
            char bar[13];
            int w = 10;
            double f = p->total > 0 ? (double)p->done / (double)p->total : 0;
            if (f > 1) f = 1;
            int fill = (int)(f * w);
            bar[0] = '[';
            for (int i = 0; i < w; i++)
                bar[1 + i] = i < fill ? '=' : (i == fill ? '>' : ' ');
            if (fill == w) bar[w] = '=';
            bar[w + 1] = ']';
            bar[w + 2] = '\0';
            cat(line, sizeof line, "%s ", bar);
        }
        cat(line, sizeof line, "%s", rest);
        /* never wrap: a wrapped line cannot be redrawn with \r */
        cut_to_width(line, cols);
        pthread_mutex_lock(&term_mu);
        fprintf(stderr, "\r%s\033[K", line);
        fflush(stderr);
        line_shown = 1;
        pthread_mutex_unlock(&term_mu);
    } else {
        if (!force && (now - p->last_plain < p->interval_ns || !p->plain_dirty)) return;
        p->last_plain = now;
        p->plain_dirty = 0;
        char rest[1024];
        describe(p, rest, sizeof rest, ", ", (size_t)-1);
        cli_term_lock();
        fprintf(stderr, "%s #%lld: %s\n", p->type, (long long)p->id, rest);
        cli_term_unlock();
    }
}

void cli_progress_clear(cli_progress *p)
{
    (void)p;
    cli_term_lock();
    cli_term_unlock();
}

/* ---- The library's log messages ---------------------------------------------------------------
 */

static void log_to_stderr(fn_log_level level, const char *msg, void *user)
{
    (void)user;
    static const char *const names[] = {"debug", "info", "warning", "error"};
    cli_term_lock();
    /* a message may quote a file name: its control characters are shown, not obeyed (freed
     * here, not in fn_term_str's ring: this runs on worker threads, which come and go) */
    char *shown = fn_term_text(msg);
    fprintf(stderr, "facenames: %s: %s\n", names[level <= FN_LOG_ERROR ? level : FN_LOG_ERROR],
            shown ? shown : "?");
    free(shown);
    cli_term_unlock();
}

void cli_install_log(int verbosity)
{
    fn_log_level min = verbosity >= 2 ? FN_LOG_DEBUG : verbosity == 1 ? FN_LOG_INFO : FN_LOG_WARN;
    fn_log_set_handler(log_to_stderr, NULL, min);
}
