/* bench_ingest.c: the ingest benchmark's C side (bench/bench_ingest drives it). Modes:
 *
 *   corpus DIR N            writes N photos made from the six samples with libvips (rescaled from
 *                           0.3x to 1.3x, some cropped, some mirrored; JPEG q85), unless DIR
 *                           already holds them
 *   ppm DIR OUT STEP        writes every STEP-th corpus photo as a binary PPM into OUT (the
 *                           reference decodes PPM when jpeg-js is not installed)
 *   run LIB DIR WORKERS     ingests DIR into the fresh library LIB with WORKERS worker threads and
 *                           prints photos/s, faces/s, CPU ms per photo, peak RSS and the share of
 *                           wall time spent outside vision code; first, untimed, as the reference
 *                           does, the models are loaded and one photo ingested (warm_up_s)
 *   resume DIR LIB N        synthesizes a library of N photos that are all ingested already (N
 *                           one-byte files, their rows inserted directly) and times a rerun of the
 *                           ingest over it, and a resume from a checkpoint at its end
 *
 * Output: `name value unit` lines. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>

#include "facenames/jobs.h"
#include "facenames/tasks.h"
#include "store/library/library_store.h"
#include "tasks/content_hash.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *samples(void)
{
    const char *s = getenv("FACENAMES_SAMPLES");
    return s && *s ? s : "reference/node_modules/@vladmandic/face-api/demo";
}

static int corpus(const char *dir, int n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/p%04d.jpg", dir, n - 1);
    if (access(path, F_OK) == 0) return 0; /* already there */
    mkdir(dir, 0755);
    static const double scales[] = {0.3, 0.5, 0.7, 1.0, 1.3};
    for (int i = 0; i < n; i++) {
        int k = i % 6 + 1, v = i / 6;
        char src[1024];
        snprintf(src, sizeof src, "%s/sample%d.jpg", samples(), k);
        VipsImage *in = vips_image_new_from_file(src, "access", VIPS_ACCESS_SEQUENTIAL, NULL);
        if (!in) {
            fprintf(stderr, "bench_ingest: %s: %s\n", src, vips_error_buffer());
            return 1;
        }
        VipsImage *a = NULL, *b = NULL, *c = NULL;
        int rc = vips_resize(in, &a, scales[v % 5], NULL);
        if (rc == 0) {
            int w = vips_image_get_width(a), h = vips_image_get_height(a);
            if (v % 3 == 1)
                rc = vips_extract_area(a, &b, w / 10, h / 10, w * 8 / 10, h * 8 / 10, NULL);
            else if (v % 3 == 2)
                rc = vips_extract_area(a, &b, 0, 0, w * 9 / 10, h * 7 / 10, NULL);
            else
                b = (g_object_ref(a), a);
        }
        if (rc == 0) {
            if (v % 2)
                rc = vips_flip(b, &c, VIPS_DIRECTION_HORIZONTAL, NULL);
            else
                c = (g_object_ref(b), b);
        }
        snprintf(path, sizeof path, "%s/p%04d.jpg", dir, i);
        if (rc == 0) rc = vips_jpegsave(c, path, "Q", 85, NULL);
        if (rc != 0) fprintf(stderr, "bench_ingest: %s: %s\n", path, vips_error_buffer());
        if (c) g_object_unref(c);
        if (b) g_object_unref(b);
        if (a) g_object_unref(a);
        g_object_unref(in);
        if (rc != 0) return 1;
    }
    return 0;
}

static int ppm(const char *dir, const char *out, int step)
{
    mkdir(out, 0755);
    for (int i = 0;; i += step) {
        char src[1024], dst[1024];
        snprintf(src, sizeof src, "%s/p%04d.jpg", dir, i);
        if (access(src, F_OK) != 0) break;
        snprintf(dst, sizeof dst, "%s/p%04d.ppm", out, i);
        if (access(dst, F_OK) == 0) continue;
        VipsImage *in = vips_image_new_from_file(src, NULL);
        if (!in || vips_ppmsave(in, dst, NULL) != 0) {
            fprintf(stderr, "bench_ingest: %s: %s\n", dst, vips_error_buffer());
            if (in) g_object_unref(in);
            return 1;
        }
        g_object_unref(in);
    }
    return 0;
}

static long peak_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb;
}

static int64_t counter(const char *progress, const char *name)
{
    json_error_t jerr;
    json_t *p = json_loads(progress ? progress : "{}", 0, &jerr);
    int64_t v = json_integer_value(json_object_get(json_object_get(p, "counters"), name));
    json_decref(p);
    return v;
}

static fn_engine *engine(const char *lib, int workers)
{
    fn_config cfg;
    fn_config_defaults(&cfg);
    /* FACENAMES_* overrides apply (FACENAMES_VISION_PRECISION=bf16 runs the ingest in BF16). */
    char err[512];
    if (fn_config_apply_env(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "bench_ingest: %s\n", err);
        exit(1);
    }
    if (workers > 0) cfg.workers_cpu_max = workers;
    snprintf(cfg.log_path, sizeof cfg.log_path, "-");
    fn_engine *e = NULL;
    if (fn_engine_open(lib, &cfg, &e) != 0 || fn_tasks_register_all(e) != 0 ||
        fn_engine_start(e, workers) != 0) {
        fprintf(stderr, "bench_ingest: %s\n", fn_engine_errmsg(e));
        exit(1);
    }
    return e;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* What the reference does before its clock starts (reference/bench_ingest.mjs: the models loaded,
 * then one warm-up photo): the first photo of `dir` (by name) ingested into a scratch library
 * beside `lib`, so the process's model cache holds the models and the precision's packs, and the
 * timed run measures the steady rate, as the reference's does. Returns its seconds. */
static double warm_up(const char *lib, const char *dir, int workers)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    char photo[2048] = "";
    for (int i = 0; i < n; i++) {
        const char *dot = strrchr(names[i]->d_name, '.');
        if (!photo[0] && dot && !strcmp(dot, ".jpg"))
            snprintf(photo, sizeof photo, "%s/%s", dir, names[i]->d_name);
        free(names[i]);
    }
    if (n >= 0) free(names);
    if (!photo[0]) return 0;
    char scratch[1100], payload[4200];
    snprintf(scratch, sizeof scratch, "%s.warm-up", lib);
    snprintf(payload, sizeof payload, "{\"paths\": [\"%s\"]}", photo);
    double t0 = now_s();
    fn_engine *e = engine(scratch, workers);
    fn_job_id id;
    fn_job_state st;
    if (fn_enqueue(e, "ingest", payload, FN_PRIO_NORMAL, &id) != 0 ||
        fn_job_wait(e, id, -1, &st) != 0 || st != FN_JOB_COMPLETED) {
        fprintf(stderr, "bench_ingest: the warm-up ingest did not complete: %s\n",
                fn_engine_errmsg(e));
        exit(1);
    }
    fn_engine_close(e);
    nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return now_s() - t0;
}

static int run(const char *lib, const char *dir, int workers)
{
    const double warm = warm_up(lib, dir, workers);
    fn_engine *e = engine(lib, workers);
    char payload[2048];
    snprintf(payload, sizeof payload, "{\"paths\": [\"%s\"]}", dir);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = now_s();
    fn_job_id id;
    fn_job_state st;
    if (fn_enqueue(e, "ingest", payload, FN_PRIO_NORMAL, &id) != 0 ||
        fn_job_wait(e, id, -1, &st) != 0 || st != FN_JOB_COMPLETED) {
        fprintf(stderr, "bench_ingest: the ingest did not complete: %s\n", fn_engine_errmsg(e));
        return 1;
    }
    double secs = now_s() - t0;
    getrusage(RUSAGE_SELF, &r1);
    fn_job_info *j;
    fn_job_inspect(e, id, &j);
    int64_t photos = counter(j->progress, "files_done") - counter(j->progress, "errors");
    int64_t faces = counter(j->progress, "faces_found");
    double vision_s = (double)counter(j->progress, "vision_ms") / 1000.0;
    double decode_s = (double)counter(j->progress, "decode_ms") / 1000.0;
    double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) +
                 (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
                 (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6 +
                 (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
    int par = workers;
    printf("ingest_%dw_warm_up_s %.3f s\n", workers, warm);
    printf("ingest_%dw_photos %lld photos\n", workers, (long long)photos);
    printf("ingest_%dw_faces %lld faces\n", workers, (long long)faces);
    printf("ingest_%dw_seconds %.3f s\n", workers, secs);
    printf("ingest_%dw_photos_per_s %.3f photos/s\n", workers, (double)photos / secs);
    printf("ingest_%dw_faces_per_s %.3f faces/s\n", workers, (double)faces / secs);
    printf("ingest_%dw_cpu_ms_per_photo %.1f ms\n", workers, 1000.0 * cpu / (double)photos);
    printf("ingest_%dw_peak_rss_mb %.1f MB\n", workers, (double)peak_rss_kb() / 1024.0);
    /* The share of the workers' wall time not spent running the networks: walking, stat,
     * lookups, hashing, copying results, commits, the engine, any worker idling at the end of a
     * batch or waiting for the prefetcher (the model load is the warm-up's), and every decode
     * the workers ran themselves. Since decision 60 the decode is not counted as the workers'
     * vision time: the prefetcher runs most of it beside them (`decode_ms` is all of it,
     * wherever it ran), so this errs high by the decodes a worker did run itself. Before, the
     * decode was inside the vision time (`_with_decode`: that figure, comparable with runs
     * before decision 60, and below 0 when decodes overlap the workers, printed as 0). */
    double over = 1.0 - (vision_s - decode_s) / (secs * par);
    double over_dec = 1.0 - vision_s / (secs * par);
    printf("ingest_%dw_decode_share %.4f fraction\n", workers,
           vision_s > 0 ? decode_s / vision_s : 0);
    printf("ingest_%dw_overhead_fraction %.4f fraction\n", workers, over < 0 ? 0 : over);
    printf("ingest_%dw_overhead_fraction_with_decode %.4f fraction\n", workers,
           over_dec < 0 ? 0 : over_dec);
    fn_job_info_free(j);
    fn_engine_close(e);
    return 0;
}

static int resume_bench(const char *dir, const char *lib, int n)
{
    /* The tree: n one-byte ".jpg" files, 1000 per folder, a day old (as photos are). */
    mkdir(dir, 0755);
    double t0 = now_s();
    struct timespec old[2] = {{1600000000, 0}, {1600000000, 0}}; /* photos from 2020 */
    char path[1024];
    snprintf(path, sizeof path, "%s/d%03d/p%06d.jpg", dir, (n - 1) / 1000, n - 1);
    int have = access(path, F_OK) == 0; /* a tree left by an earlier run (BENCH_KEEP=1) */
    for (int i = 0; i < n && !have; i++) {
        if (i % 1000 == 0) {
            snprintf(path, sizeof path, "%s/d%03d", dir, i / 1000);
            mkdir(path, 0755);
        }
        snprintf(path, sizeof path, "%s/d%03d/p%06d.jpg", dir, i / 1000, i);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, "x", 1) != 1 || futimens(fd, old) != 0) {
            fprintf(stderr, "bench_ingest: %s: %s\n", path, strerror(errno));
            return 1;
        }
        close(fd);
    }
    double t_tree = now_s() - t0;

    /* The library: the engine's schema, then every photo as already ingested. */
    fn_engine *e = engine(lib, 0);
    char dbp[1024], err[256];
    snprintf(dbp, sizeof dbp, "%s/library.db", lib);
    fn_store *s;
    if (fn_store_open(dbp, 5000, &s, err, sizeof err) != 0 || fn_library_migrate(s) != 0) {
        fprintf(stderr, "bench_ingest: %s\n", err);
        return 1;
    }
    fn_hash64 h;
    fn_hash64_init(&h);
    fn_hash64_update(&h, "x", 1);
    uint64_t hash = fn_hash64_final(&h);
    fn_photo_put *puts = calloc((size_t)n, sizeof *puts);
    char **paths = calloc((size_t)n, sizeof *paths);
    char *real = realpath(dir, NULL);
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/d%03d/p%06d.jpg", real, i / 1000, i);
        paths[i] = strdup(path);
        puts[i] = (fn_photo_put){.kind = FN_PUT_RESULT,
                                 .path = paths[i],
                                 .size = 1,
                                 .mtime_ns = (int64_t)old[0].tv_sec * 1000000000LL + old[0].tv_nsec,
                                 .hash = hash,
                                 .width = 1,
                                 .height = 1,
                                 .taken_at = -1};
    }
    fn_store_tx *tx;
    if (fn_store_begin(s, &tx) != 0 || fn_library_put_photos(tx, puts, (size_t)n, NULL) != 0 ||
        fn_store_commit(tx) != 0) {
        fprintf(stderr, "bench_ingest: %s\n", fn_store_errmsg(s));
        return 1;
    }
    fn_store_close(s);

    /* A rerun of the ingest over the done tree: every file stat'ed, looked up and skipped. */
    char payload[2048];
    snprintf(payload, sizeof payload, "{\"paths\": [\"%s\"]}", real);
    fn_job_id id;
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    t0 = now_s();
    fn_enqueue(e, "ingest", payload, FN_PRIO_NORMAL, &id);
    fn_engine_run_pending(e, 0, NULL);
    double t_rerun = now_s() - t0;
    getrusage(RUSAGE_SELF, &r1);
    double user = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) +
                  (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6;
    double sys = (double)(r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) +
                 (double)(r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
    fn_job_info *j;
    fn_job_inspect(e, id, &j);
    if (j->state != FN_JOB_COMPLETED || counter(j->progress, "skipped_unchanged") != n)
        fprintf(stderr, "bench_ingest: the rerun did not skip every photo (%s)\n", j->progress);
    fn_job_info_free(j);

    /* A resume from a checkpoint at the end (a cancelled or crashed job that had finished its
     * walk): the seek skips every folder without reading it. */
    char cp[256];
    snprintf(cp, sizeof cp, "{\"next_index\": %d, \"root\": 0, \"last\": \"d%03d/p%06d.jpg\"}", n,
             (n - 1) / 1000, n - 1);
    fn_enqueue_opts o = {.type = "ingest",
                         .payload = payload,
                         .checkpoint = cp,
                         .priority = FN_PRIO_NORMAL,
                         .gpu_slots = -1,
                         .mem_mb = -1};
    t0 = now_s();
    fn_enqueue_ex(e, &o, &id);
    fn_engine_run_pending(e, 0, NULL);
    double t_cp = now_s() - t0;
    fn_engine_close(e);

    printf("resume_tree_build_s %.3f s\n", t_tree);
    printf("resume_done_100k_s %.3f s\n", t_rerun * 100000.0 / n);
    printf("resume_done_%dk_measured_s %.3f s\n", n / 1000, t_rerun);
    printf("resume_done_%dk_cpu_user_s %.3f s\n", n / 1000, user);
    printf("resume_done_%dk_cpu_sys_s %.3f s\n", n / 1000, sys);
    printf("resume_checkpoint_%dk_s %.3f s\n", n / 1000, t_cp);
    for (int i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    free(puts);
    free(real);
    return 0;
}

int main(int argc, char **argv)
{
    if (VIPS_INIT(argv[0])) return 1;
    vips_concurrency_set(1);
    if (argc == 4 && strcmp(argv[1], "corpus") == 0) return corpus(argv[2], atoi(argv[3]));
    if (argc == 5 && strcmp(argv[1], "ppm") == 0) return ppm(argv[2], argv[3], atoi(argv[4]));
    if (argc == 5 && strcmp(argv[1], "run") == 0) return run(argv[2], argv[3], atoi(argv[4]));
    if (argc == 5 && strcmp(argv[1], "resume") == 0)
        return resume_bench(argv[2], argv[3], atoi(argv[4]));
    fprintf(stderr, "usage: bench_ingest corpus DIR N | ppm DIR OUT STEP | run LIB DIR WORKERS |"
                    " resume DIR LIB N\n");
    return 2;
}
