/* bench_interop.c: the repair, export and import jobs on synthetic libraries (bench/bench_interop
 * drives it). Rows are inserted directly (white-box, SQLite), each photo a small file so repair
 * has something to stat; every face has landmarks, a descriptor and a thumbnail, so nothing needs
 * recomputing.
 *
 *   run DIR FACES WORKERS   a library of FACES faces (4 per photo, each named, a quarter
 *                           confirmed) in DIR: times export json, import of it into an empty
 *                           library, export xmp (sidecars next to the photos), and repair of the
 *                           same library with every photo unchanged, with WORKERS worker threads
 *   repair DIR PHOTOS W     a library of PHOTOS photos with one face each: times repair
 *
 * Output: `name value unit` lines. */
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "facenames/jobs.h"
#include "facenames/tasks.h"
#include "store/library/library_store.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static fn_engine *engine(const char *dir, int workers)
{
    fn_config cfg;
    fn_config_defaults(&cfg);
    cfg.workers_cpu_max = workers;
    snprintf(cfg.log_path, sizeof cfg.log_path, "-");
    fn_engine *e = NULL;
    if (fn_engine_open(dir, &cfg, &e) != 0 || fn_tasks_register_all(e) != 0 ||
        fn_engine_start(e, workers) != 0) {
        fprintf(stderr, "bench_interop: engine: %s\n", e ? fn_engine_errmsg(e) : "?");
        exit(1);
    }
    return e;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double last_cpu; /* CPU seconds (all threads) of the last job() */

/* Runs one job to its end; its wall time in seconds (and its CPU time in last_cpu: on a shared
 * machine the wall time also counts other processes' turns). */
static double job(fn_engine *e, const char *type, const char *payload, const char *counter,
                  long long *value)
{
    fn_job_id id;
    double c0 = cpu_s();
    double t0 = now_s();
    if (fn_enqueue(e, type, payload, FN_PRIO_NORMAL, &id) != 0) {
        fprintf(stderr, "bench_interop: %s: %s\n", type, fn_engine_errmsg(e));
        exit(1);
    }
    fn_job_state st;
    while (fn_job_wait(e, id, 60000, &st) == 0 && (st == FN_JOB_QUEUED || st == FN_JOB_RUNNING))
        ;
    double t = now_s() - t0;
    last_cpu = cpu_s() - c0;
    fn_job_info *j = NULL;
    fn_job_inspect(e, id, &j);
    /* the job's own time (started to finished), not how long the wait took to notice */
    if (j && j->finished_at > j->started_at) t = (double)(j->finished_at - j->started_at) / 1e3;
    if (!j || j->state != FN_JOB_COMPLETED) {
        char *s = NULL;
        fn_job_inspect_json(e, id, &s);
        fprintf(stderr, "bench_interop: %s did not complete: %s\n", type, s ? s : "?");
        exit(1);
    }
    if (counter && value) {
        const char *p = strstr(j->progress, counter);
        *value = p ? atoll(p + strlen(counter) + 1) : -1;
    }
    fn_job_info_free(j);
    return t;
}

static void exec_or_die(sqlite3 *db, const char *q)
{
    char *err = NULL;
    if (sqlite3_exec(db, q, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "bench_interop: %s: %s\n", q, err);
        exit(1);
    }
}

/* A library of n_photos photos with `per` faces each, every face named. */
static void synth(const char *dir, long n_photos, int per)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/photos", dir);
    mkdir(dir, 0755);
    mkdir(path, 0755);
    fn_engine *e = engine(dir, 1); /* creates and migrates the library */
    fn_engine_close(e);
    snprintf(path, sizeof path, "%s/library.db", dir);
    char err[256];
    fn_store *s = NULL;
    if (fn_store_open(path, 5000, &s, err, sizeof err) != 0 || fn_library_migrate(s) != 0) {
        fprintf(stderr, "bench_interop: %s\n", err);
        exit(1);
    }
    fn_store_close(s);
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) exit(1);
    /* the ingest job the roots come from */
    exec_or_die(db, "BEGIN");
    char q[2048];
    snprintf(q, sizeof q,
             "INSERT INTO jobs (type, priority, payload, state, created_at, updated_at, queued_at)"
             " VALUES ('ingest', 1, '{\"paths\":[\"%s/photos\"]}', 3, 0, 0, 0)",
             dir);
    if (sqlite3_exec(db, q, NULL, NULL, NULL) != SQLITE_OK)
        fprintf(stderr, "bench_interop: note: no ingest job row (%s); roots empty\n",
                sqlite3_errmsg(db));
    sqlite3_stmt *ph, *fa, *pe;
    sqlite3_prepare_v2(db,
                       "INSERT INTO photos (path, size, mtime_ns, hash, width, height, format,"
                       " status, ingested_at) VALUES (?1, 1, ?2, ?3, 4000, 3000, 'jpeg', 'ok', 0)",
                       -1, &ph, NULL);
    sqlite3_prepare_v2(db,
                       "INSERT INTO faces (photo_id, x, y, width, height, score, landmarks,"
                       " descriptor, thumbnail, person_id, state, created_at) VALUES (?1, ?2, 300,"
                       " 200, 260, 0.9, ?3, ?4, ?5, ?6, ?7, 0)",
                       -1, &fa, NULL);
    if (sqlite3_prepare_v2(db, "INSERT INTO persons (name, created_at) VALUES (?1, 0)", -1, &pe,
                           NULL) != SQLITE_OK ||
        !ph || !fa) {
        fprintf(stderr, "bench_interop: %s\n", sqlite3_errmsg(db));
        exit(1);
    }
    for (int k = 0; k < 500; k++) {
        char name[32];
        snprintf(name, sizeof name, "Person %03d", k);
        sqlite3_bind_text(pe, 1, name, -1, SQLITE_TRANSIENT);
        sqlite3_step(pe);
        sqlite3_reset(pe);
    }
    float lm[68][2], desc[128];
    unsigned char thumb[2000];
    memset(thumb, 0xab, sizeof thumb);
    unsigned seed = 1;
    for (long i = 0; i < n_photos; i++) {
        snprintf(path, sizeof path, "%s/photos/d%03ld/p%07ld.jpg", dir, i / 1000, i);
        if (i % 1000 == 0) {
            char d[1024];
            snprintf(d, sizeof d, "%s/photos/d%03ld", dir, i / 1000);
            mkdir(d, 0755);
        }
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, "x", 1) != 1) exit(1);
        close(fd);
        struct stat sb;
        stat(path, &sb);
        sqlite3_bind_text(ph, 1, path, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(ph, 2,
                           (sqlite3_int64)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec);
        sqlite3_bind_int64(ph, 3, (sqlite3_int64)(i * 2654435761u + 1));
        sqlite3_step(ph);
        sqlite3_reset(ph);
        sqlite3_int64 pid = sqlite3_last_insert_rowid(db);
        for (int f = 0; f < per; f++) {
            for (int k = 0; k < 68; k++) {
                lm[k][0] = 100.0f * f + (float)(rand_r(&seed) % 20000) / 100.0f;
                lm[k][1] = 300.0f + (float)(rand_r(&seed) % 26000) / 100.0f;
            }
            for (int k = 0; k < 128; k++)
                desc[k] = (float)(rand_r(&seed) % 2000 - 1000) / 5000.0f;
            sqlite3_bind_int64(fa, 1, pid);
            sqlite3_bind_double(fa, 2, 100.0 + 900.0 * f);
            sqlite3_bind_blob(fa, 3, lm, sizeof lm, SQLITE_STATIC);
            sqlite3_bind_blob(fa, 4, desc, sizeof desc, SQLITE_STATIC);
            sqlite3_bind_blob(fa, 5, thumb, sizeof thumb, SQLITE_STATIC);
            sqlite3_bind_int64(fa, 6, 1 + (i * per + f) % 500);
            sqlite3_bind_text(fa, 7, f == 0 ? "confirmed" : "auto", -1, SQLITE_STATIC);
            sqlite3_step(fa);
            sqlite3_reset(fa);
        }
    }
    sqlite3_finalize(ph);
    sqlite3_finalize(fa);
    sqlite3_finalize(pe);
    exec_or_die(db, "COMMIT");
    sqlite3_close(db);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: bench_interop run|repair DIR N WORKERS\n");
        return 2;
    }
    const char *dir = argv[2];
    long n = atol(argv[3]);
    int workers = atoi(argv[4]);
    char lib[1024], payload[2048];
    long long v = 0;
    mkdir(dir, 0755);
    if (strcmp(argv[1], "repair") == 0) {
        snprintf(lib, sizeof lib, "%s/repair-lib", dir);
        double t0 = now_s();
        synth(lib, n, 1);
        fprintf(stderr, "bench_interop: %ld photos made in %.1f s\n", n, now_s() - t0);
        fn_engine *e = engine(lib, workers);
        double t = job(e, "repair", "{}", "\"photos_checked\"", &v);
        printf("repair_unchanged_photos %lld photos\n", v);
        printf("repair_unchanged_s %.2f s\n", t);
        printf("repair_unchanged_cpu_s %.2f s\n", last_cpu);
        printf("repair_unchanged_photos_per_s %.0f photos/s\n", (double)v / t);
        fn_engine_close(e);
        return 0;
    }
    long photos = (n + 3) / 4;
    snprintf(lib, sizeof lib, "%s/lib", dir);
    double t0 = now_s();
    synth(lib, photos, 4);
    fprintf(stderr, "bench_interop: %ld photos, %ld faces made in %.1f s\n", photos, photos * 4,
            now_s() - t0);
    fn_engine *e = engine(lib, workers);
    char out[1024];
    snprintf(out, sizeof out, "%s/out", dir);
    mkdir(out, 0755);
    snprintf(payload, sizeof payload, "{\"format\": \"json\", \"to\": \"%s\"}", out);
    double t = job(e, "export", payload, "\"faces_exported\"", &v);
    printf("export_json_faces %lld faces\n", v);
    printf("export_json_s %.2f s\n", t);
    printf("export_json_cpu_s %.2f s\n", last_cpu);
    char file[1200];
    snprintf(file, sizeof file, "%s/facenames-export.json", out);
    struct stat sb;
    if (stat(file, &sb) == 0) printf("export_json_mb %.1f MB\n", (double)sb.st_size / 1e6);

    snprintf(lib, sizeof lib, "%s/empty-lib", dir);
    fn_engine *e2 = engine(lib, workers);
    snprintf(payload, sizeof payload, "{\"path\": \"%s\", \"batch\": 512}", file);
    t = job(e2, "import", payload, "\"faces_added\"", &v);
    printf("import_json_faces %lld faces\n", v);
    printf("import_json_s %.2f s\n", t);
    printf("import_json_cpu_s %.2f s\n", last_cpu);
    fn_engine_close(e2);

    t = job(e, "export", "{\"format\": \"xmp\"}", "\"sidecars_written\"", &v);
    printf("export_xmp_sidecars %lld sidecars\n", v);
    printf("export_xmp_photos_per_s %.0f photos/s\n", (double)v / t);
    printf("export_xmp_photos_per_cpu_s %.0f photos/s\n", (double)v / last_cpu);

    t = job(e, "repair", "{}", "\"photos_checked\"", &v);
    printf("repair_photos %lld photos\n", v);
    printf("repair_s %.2f s\n", t);
    printf("repair_cpu_s %.2f s\n", last_cpu);
    fn_engine_close(e);
    return 0;
}
