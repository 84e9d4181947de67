/* helpers.h: what the ingest tests share: temporary trees built from the sample photos, an
 * engine in inline mode (0 threads: jobs run on the test's thread, deterministically), and
 * readers for the job's counters and the library's faces. Header-only, static functions.
 *
 * Tests name a library by a folder path. With FN_TEST_BACKEND=pg (suites tasks-pg, cluster-pg)
 * h_addr maps each such path to a fresh PostgreSQL database, made on its first use and forgotten
 * by h_rmrf, so the same tests run on both backends (backend.h). */
#ifndef FN_TESTS_TASKS_HELPERS_H
#define FN_TESTS_TASKS_HELPERS_H

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "facenames/config.h"
#include "facenames/jobs.h"
#include "facenames/tasks.h"
#include "store/library/library_store.h"
#include "backend.h"
#include "tasks/predict.h"

static inline const char *samples_dir(void)
{
    const char *s = getenv("FACENAMES_SAMPLES");
    return s && *s ? s : "reference/node_modules/@vladmandic/face-api/demo";
}

static inline void h_copy(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY), out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0) {
        fprintf(stderr, "copy %s -> %s: %s\n", src, dst, strerror(errno));
        abort();
    }
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n) abort();
    close(in);
    close(out);
}

/* Copies sample<k>.jpg to dir/name. */
static inline void h_sample(int k, const char *dir, const char *name)
{
    char src[1024], dst[1024];
    snprintf(src, sizeof src, "%s/sample%d.jpg", samples_dir(), k);
    snprintf(dst, sizeof dst, "%s/%s", dir, name);
    h_copy(src, dst);
}

static inline void h_mkdir(const char *fmt, const char *a, const char *b)
{
    char p[1024];
    snprintf(p, sizeof p, fmt, a, b);
    if (mkdir(p, 0755) != 0 && errno != EEXIST) abort();
}

static inline char *h_tmpdir(const char *tag)
{
    char *d = malloc(256);
    snprintf(d, 256, "/tmp/fn-%s-XXXXXX", tag);
    if (!mkdtemp(d)) abort();
    return d;
}

/* The library a test names by folder `lib`: the folder itself on SQLite, its database's URL on
 * PostgreSQL (the same URL for the same path until h_rmrf removes the folder or one above it). */
static struct {
    char *path, *url;
} h_libs[64];

static inline const char *h_addr(const char *lib)
{
    if (!fn_test_on_pg() || strncmp(lib, "postgresql://", 13) == 0) return lib;
    size_t free_slot = sizeof h_libs / sizeof h_libs[0];
    for (size_t i = 0; i < sizeof h_libs / sizeof h_libs[0]; i++) {
        if (h_libs[i].path && strcmp(h_libs[i].path, lib) == 0) return h_libs[i].url;
        if (!h_libs[i].path && free_slot == sizeof h_libs / sizeof h_libs[0]) free_slot = i;
    }
    if (free_slot == sizeof h_libs / sizeof h_libs[0]) abort();
    h_libs[free_slot].path = strdup(lib);
    h_libs[free_slot].url = h_library_at(lib);
    return h_libs[free_slot].url;
}

static inline void h_rmrf(const char *d)
{
    size_t dl = strlen(d);
    for (size_t i = 0; i < sizeof h_libs / sizeof h_libs[0]; i++)
        if (h_libs[i].path && strncmp(h_libs[i].path, d, dl) == 0 &&
            (h_libs[i].path[dl] == 0 || h_libs[i].path[dl] == '/')) {
            free(h_libs[i].path);
            free(h_libs[i].url);
            h_libs[i].path = h_libs[i].url = NULL;
        }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", d);
}

/* On PostgreSQL, whether the job engine runs there yet (its store is another branch's work,
 * pgjobs): a predict job on an empty scratch database must complete (predict, not ingest, so
 * programs without the vision code can ask too). Checked once per program; the reason is kept
 * for the skip message. */
static char h_engine_pg_why[512];

static inline int h_engine_pg_ready(void)
{
    static int known = -1;
    if (known >= 0) return known;
    char *dir = h_tmpdir("probe");
    char *url = h_library_at(dir);
    fn_config cfg;
    fn_config_defaults(&cfg);
    snprintf(cfg.log_path, sizeof cfg.log_path, "-");
    fn_engine *e = NULL;
    fn_job_id id = 0;
    fn_job_info *j = NULL;
    known = fn_engine_open(url, &cfg, &e) == 0 && fn_jobtype_register(e, &fn_predict_type) == 0 &&
            fn_engine_start(e, 0) == 0 &&
            fn_enqueue(e, "predict", "{}", FN_PRIO_NORMAL, &id) == 0 &&
            fn_engine_run_pending(e, 0, NULL) == 0 && fn_job_inspect(e, id, &j) == 0 &&
            j->state == FN_JOB_COMPLETED;
    if (!known)
        snprintf(h_engine_pg_why, sizeof h_engine_pg_why,
                 "the job engine does not run on PostgreSQL on this branch yet (jobs_store.c is "
                 "branch pgjobs's): a predict job on an empty library %s %s",
                 j ? "ended in state" : "could not run:",
                 j   ? fn_job_state_name(j->state)
                 : e ? fn_engine_errmsg(e)
                     : "no engine");
    if (j) fn_job_info_free(j);
    if (e) fn_engine_close(e);
    free(url);
    h_rmrf(dir);
    free(dir);
    return known;
}

/* In a cmocka test that runs jobs: skip it on PostgreSQL while the engine cannot run there. */
#define H_PG_ENGINE_OR_SKIP()                                                                      \
    do {                                                                                           \
        if (fn_test_on_pg() && !h_engine_pg_ready()) {                                             \
            fprintf(stderr, "skipped on PostgreSQL: %s\n", h_engine_pg_why);                       \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* The address to open an engine on, for tests that open it themselves (skips as above). */
static inline const char *h_engine_addr(const char *lib)
{
    H_PG_ENGINE_OR_SKIP();
    return h_addr(lib);
}

static inline fn_engine *h_engine(const char *lib)
{
    /* A URL comes from a test that checked already (a child process given its parent's). */
    if (strncmp(lib, "postgresql://", 13) != 0) H_PG_ENGINE_OR_SKIP();
    fn_config cfg;
    fn_config_defaults(&cfg);
    snprintf(cfg.log_path, sizeof cfg.log_path, "-");
    fn_engine *e = NULL;
    if (fn_engine_open(h_addr(lib), &cfg, &e) != 0 || fn_tasks_register_all(e) != 0 ||
        fn_engine_start(e, 0) != 0) {
        fprintf(stderr, "engine: %s\n", fn_engine_errmsg(e));
        abort();
    }
    return e;
}

static inline uint64_t h_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Enqueues an ingest with `payload`, runs everything pending inline, returns the job. */
static inline fn_job_info *h_run(fn_engine *e, const char *payload, fn_job_id *id_out)
{
    fn_job_id id;
    if (fn_enqueue(e, "ingest", payload, FN_PRIO_NORMAL, &id) != 0) abort();
    if (id_out) *id_out = id;
    if (fn_engine_run_pending(e, 0, NULL) != 0) abort();
    fn_job_info *j = NULL;
    if (fn_job_inspect(e, id, &j) != 0) abort();
    return j;
}

static inline int64_t h_counter(const fn_job_info *j, const char *name)
{
    json_error_t jerr;
    json_t *p = json_loads(j->progress ? j->progress : "{}", 0, &jerr);
    json_t *v = json_object_get(json_object_get(p, "counters"), name);
    int64_t r = v ? (int64_t)json_integer_value(v) : -1;
    json_decref(p);
    return r;
}

static inline fn_store *h_store(const char *lib)
{
    char path[600], err[256];
    H_PG_ENGINE_OR_SKIP(); /* what the tests read was written by jobs */
    if (fn_test_on_pg()) {
        snprintf(path, sizeof path, "%s", h_addr(lib));
    } else if ((size_t)snprintf(path, sizeof path, "%s/library.db", lib) >= sizeof path) {
        fprintf(stderr, "store: library path too long: %s\n", lib);
        abort();
    }
    fn_store *s = NULL;
    if (fn_store_open(path, 5000, &s, err, sizeof err) != 0 || fn_library_migrate(s) != 0) {
        fprintf(stderr, "store: %s\n", err);
        abort();
    }
    return s;
}

typedef struct h_sig {
    char *text;
    size_t len, cap;
    size_t n;
} h_sig;

static inline int h_sig_cb(const fn_face_row *r, void *arg)
{
    h_sig *s = arg;
    const char *base = strrchr(r->photo_path, '/');
    char line[512];
    int n = snprintf(line, sizeof line, "%s %.1f %.1f %.1f %.1f %.3f\n", base ? base + 1 : "", r->x,
                     r->y, r->width, r->height, r->score);
    if (s->len + (size_t)n + 1 > s->cap) {
        s->cap = (s->cap + (size_t)n + 1) * 2;
        s->text = realloc(s->text, s->cap);
    }
    memcpy(s->text + s->len, line, (size_t)n + 1);
    s->len += (size_t)n;
    s->n++;
    return 0;
}

/* Every face in the library as "photo-name x y w h score" lines, ordered by path then id.
 * Caller frees. *n gets the face count. */
static inline char *h_faces(const char *lib, size_t *n)
{
    fn_store *s = h_store(lib);
    h_sig sig = {0};
    sig.text = calloc(1, 1);
    sig.cap = 1;
    if (fn_library_faces_each(s, NULL, h_sig_cb, &sig) != 0) abort();
    fn_store_close(s);
    if (n) *n = sig.n;
    return sig.text;
}

/* Sorted copy of the lines of text (face order within a photo may follow insertion order). */
static inline int h_cmp_lines(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static inline char *h_sorted(const char *text)
{
    char *copy = strdup(text);
    size_t n = 0, cap = 16;
    char **lines = malloc(cap * sizeof *lines);
    for (char *save = NULL, *t = strtok_r(copy, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
        if (n == cap) lines = realloc(lines, (cap *= 2) * sizeof *lines);
        lines[n++] = t;
    }
    qsort(lines, n, sizeof *lines, h_cmp_lines);
    char *out = calloc(1, strlen(text) + 2);
    for (size_t i = 0; i < n; i++) {
        strcat(out, lines[i]);
        strcat(out, "\n");
    }
    free(lines);
    free(copy);
    return out;
}

#endif
