/* bench_pg_bulk: what clustering and predict cost where, on SQLite and on PostgreSQL (issue 14):
 * the embedding read of N faces row by row (a prepared statement, binary results, fetched whole)
 * against COPY binary (the store's bulk read, src/store/pg/pg_copy.c), and the clustering and
 * predict jobs' wall time on one library, split into the store's reads and the rest.
 *
 *   bench_pg_bulk fill ADDR N [seed]   N synthetic faces (bench/people/people_synth.h: photos of
 *                                      1-4 faces, known identities) into the library at ADDR (a
 *                                      folder: SQLite; postgresql://...: PostgreSQL); a tenth of
 *                                      the identities get a person with half their faces
 *                                      confirmed, so predict has something to learn from
 *   bench_pg_bulk read ADDR [pairs]    the reads, A (COPY) and B (row by row) in turn, A B A B ...
 *                                      `pairs` times (default 5): the raw embedding read (id,
 *                                      photo, descriptor of every face), predict's confirmed faces
 *                                      (fn_predict_load_refs) and clustering's whole input
 *                                      (fn_cl_load, with its per-photo sibling queries); prints
 *                                      each one's median and min-max, the B/A ratio's median, and
 *                                      the peak resident memory
 *   bench_pg_bulk job ADDR cluster|predict [copy|rows]
 *                                      runs that job once on the library (inline engine, one
 *                                      thread: what one worker does) and prints its wall time next
 *                                      to the time of its reads alone, done first on the same
 *                                      library by COPY or row by row (the job itself reads as
 *                                      shipped: COPY on PostgreSQL); run it on a fresh fill each
 *                                      time (the job writes)
 *
 * On SQLite "row by row" and "COPY" are the same statement loop (fn_sql_bulk_read), so `read`
 * there is a yardstick. Timing on a shared machine is noisy: quote medians, give the load
 * average, and compare the two backends interleaved (farm-bench --vs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "facenames/config.h"
#include "facenames/error.h"
#include "facenames/jobs.h"
#include "facenames/tasks.h"
#include "people_synth.h"
#include "store/library/cluster_store.h"
#include "store/library/library_store.h"
#include "store/library/predict_store.h"
#include "store/store_sql.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int is_pg(const char *addr)
{
    return strncmp(addr, "postgresql://", 13) == 0 || strncmp(addr, "postgres://", 11) == 0;
}

static fn_store *open_store(const char *addr)
{
    char path[1200], err[512];
    if (is_pg(addr))
        snprintf(path, sizeof path, "%s", addr);
    else
        snprintf(path, sizeof path, "%s/library.db", addr);
    fn_store *s = NULL;
    if (fn_store_open(path, 10000, &s, err, sizeof err) != 0 || fn_library_migrate(s) != 0) {
        fprintf(stderr, "bench_pg_bulk: %s: %s\n", addr, s ? fn_store_errmsg(s) : err);
        exit(1);
    }
    return s;
}

static void check(fn_store *s, int rc, const char *what)
{
    if (rc == 0) return;
    fprintf(stderr, "bench_pg_bulk: %s: %d %s\n", what, rc, fn_store_errmsg(s));
    exit(1);
}

static const char q_person[] =
    "INSERT INTO persons (id, name, created_at) VALUES (?1, 'person', 0) ON CONFLICT DO NOTHING";
static const char q_confirm[] =
    "UPDATE faces SET person_id = ?2, state = 'confirmed' WHERE id = ?1";

static int fill(const char *addr, size_t n, uint64_t seed)
{
    fn_synth_opts o;
    fn_synth_defaults(&o, n, seed);
    fn_synth sy;
    if (fn_synth_make(&o, &sy) != 0) return 1;
    fn_store *s = open_store(addr);
    double t0 = now_s();
    /* Photos in batches of about 1000 faces, each photo's faces together. */
    size_t i = 0;
    while (i < sy.n) {
        fn_store_tx *tx;
        check(s, fn_store_begin(s, &tx), "begin");
        for (size_t batch = 0; i < sy.n && batch < 1000;) {
            size_t j = i;
            while (j < sy.n && sy.photo[j] == sy.photo[i])
                j++;
            fn_face_put f[16];
            size_t nf = 0;
            for (size_t k = i; k < j && nf < 16; k++, nf++)
                f[nf] = (fn_face_put){.x = (float)nf * 50,
                                      .y = 10,
                                      .width = 100,
                                      .height = 120,
                                      .score = sy.weak[k] ? 0.6f : 0.95f,
                                      .descriptor = sy.desc + k * 128};
            char path[64];
            snprintf(path, sizeof path, "/photos/%08lld.jpg", (long long)sy.photo[i]);
            fn_photo_put p = {.kind = FN_PUT_RESULT,
                              .path = path,
                              .size = 1,
                              .mtime_ns = 1,
                              .faces = f,
                              .n_faces = nf,
                              .taken_at = -1};
            check(s, fn_library_put_photos(tx, &p, 1, NULL), "put photos");
            batch += j - i;
            i = j;
        }
        check(s, fn_store_commit(tx), "commit");
    }
    /* Persons: one per tenth identity, half its faces confirmed (face ids follow the synthetic
     * order in a fresh library: ids 1..n). */
    fn_store_tx *tx;
    check(s, fn_store_begin(s, &tx), "begin");
    size_t confirmed = 0;
    char *seen = calloc(sy.n_ident + 1, 1);
    for (size_t k = 0; k < sy.n; k++) {
        int32_t id = sy.identity[k];
        if (id < 0 || id % 10 != 0) continue;
        if (seen[id]++ % 2) continue; /* every other face of the identity */
        fn_sql_stmt *pst = fn_store_stmt(s, q_person);
        if (!pst) check(s, FN_ERR_DB, "prepare");
        fn_sql_bind_int64(pst, 1, id + 1);
        if (fn_sql_step(pst) != FN_SQL_DONE) check(s, FN_ERR_DB, "person");
        fn_sql_stmt *fst = fn_store_stmt(s, q_confirm);
        if (!fst) check(s, FN_ERR_DB, "prepare");
        fn_sql_bind_int64(fst, 1, (int64_t)k + 1);
        fn_sql_bind_int64(fst, 2, id + 1);
        if (fn_sql_step(fst) != FN_SQL_DONE) check(s, FN_ERR_DB, "confirm");
        confirmed++;
    }
    free(seen);
    if (fn_store_backend(s) == FN_SQL_POSTGRES)
        check(s,
              fn_sql_exec(s, "SELECT setval(pg_get_serial_sequence('persons', 'id'), max(id))"
                             " FROM persons"),
              "persons sequence");
    check(s, fn_store_commit(tx), "commit");
    if (fn_store_backend(s) == FN_SQL_POSTGRES) fn_sql_exec(s, "ANALYZE");
    printf("filled %zu faces (%zu identities, %zu confirmed) in %.1f s\n", sy.n, sy.n_ident,
           confirmed, now_s() - t0);
    fn_store_close(s);
    fn_synth_free(&sy);
    return 0;
}

/* ---- reads ----------------------------------------------------------------------------------- */

static const char q_embed[] =
    "SELECT id, photo_id, descriptor FROM faces WHERE descriptor IS NOT NULL ORDER BY id";

typedef struct embed_sum {
    size_t n;
    double sum;
} embed_sum;

static int embed_row(void *arg, const fn_sql_value *v, int ncols)
{
    (void)ncols;
    embed_sum *e = arg;
    float x;
    if (v[2].bytes != 512) return 0;
    memcpy(&x, (const char *)v[2].blob + 4 * (e->n % 128), sizeof x);
    e->sum += x + (double)v[0].i * 1e-9;
    e->n++;
    return 0;
}

enum { R_EMBED, R_REFS, R_CLUSTER, N_READS };
static const char *read_names[N_READS] = {"embeddings", "predict_refs", "cluster_load"};

/* One read, timed; *n the faces it got. */
static double one_read(fn_store *s, int which, size_t *n)
{
    double t0 = now_s();
    if (which == R_EMBED) {
        embed_sum e = {0, 0};
        check(s, fn_sql_bulk_read(s, q_embed, NULL, 0, 3, embed_row, &e), "embedding read");
        *n = e.n;
    } else if (which == R_REFS) {
        float *d;
        int64_t *p, *f;
        check(s, fn_predict_load_refs(s, &d, &p, &f, n), "refs");
        free(d);
        free(p);
        free(f);
    } else {
        fn_cl_input in;
        check(s, fn_cl_load(s, 1, 0, 0, &in), "cluster load");
        *n = in.n;
        fn_cl_input_free(&in);
    }
    return now_s() - t0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int reads(const char *addr, int pairs)
{
    if (pairs < 1) pairs = 1;
    if (pairs > 50) pairs = 50;
    fn_store *s = open_store(addr);
    const char *backend = fn_store_backend(s) == FN_SQL_POSTGRES ? "postgresql" : "sqlite";
    for (int w = 0; w < N_READS; w++) {
        double a[50], b[50], ratio[50];
        size_t na = 0, nb = 0;
        one_read(s, w, &na); /* warm-up: caches, the server's plan */
        for (int k = 0; k < pairs; k++) {
            fn_store_set_bulk_copy(s, 1);
            a[k] = one_read(s, w, &na);
            fn_store_set_bulk_copy(s, 0);
            b[k] = one_read(s, w, &nb);
            ratio[k] = b[k] / a[k];
        }
        if (na != nb) {
            fprintf(stderr, "bench_pg_bulk: %s read %zu faces by COPY, %zu row by row\n",
                    read_names[w], na, nb);
            return 1;
        }
        double amin = a[0], amax = a[0], bmin = b[0], bmax = b[0];
        for (int k = 1; k < pairs; k++) {
            amin = a[k] < amin ? a[k] : amin;
            amax = a[k] > amax ? a[k] : amax;
            bmin = b[k] < bmin ? b[k] : bmin;
            bmax = b[k] > bmax ? b[k] : bmax;
        }
        double ma = median(a, pairs), mb = median(b, pairs);
        printf("%s %s faces=%zu copy_median_s=%.4f (%.4f-%.4f) rows_median_s=%.4f (%.4f-%.4f)"
               " rows/copy=%.2f copy_faces_per_s=%.0f\n",
               backend, read_names[w], na, ma, amin, amax, mb, bmin, bmax, median(ratio, pairs),
               ma > 0 ? (double)na / ma : 0);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%s peak_rss_mb=%.1f\n", backend, (double)ru.ru_maxrss / 1024);
    fn_store_close(s);
    return 0;
}

/* ---- jobs ------------------------------------------------------------------------------------ */

static int job(const char *addr, const char *type, int copy)
{
    /* The reads alone first, on the library as the job will find it. */
    fn_store *s = open_store(addr);
    fn_store_set_bulk_copy(s, copy);
    size_t n = 0;
    double read_s = 0;
    int is_cluster = strcmp(type, "clustering") == 0;
    if (is_cluster) {
        read_s = one_read(s, R_CLUSTER, &n);
    } else {
        /* predict: the confirmed faces, then every page of faces to predict with their
         * exclusions, as the job reads them */
        read_s = one_read(s, R_REFS, &n);
        static fn_predict_face page[256];
        int64_t ph = 0, fa = 0;
        size_t got = 0, total = 0;
        double t0 = now_s();
        do {
            check(s, fn_predict_faces_page(s, ph, fa, 256, page, &got), "page");
            for (size_t i = 0; i < got; i++)
                free(page[i].excl);
            if (got) {
                ph = page[got - 1].photo;
                fa = page[got - 1].face;
            }
            total += got;
        } while (got);
        read_s += now_s() - t0;
        n = total;
    }
    const char *backend = fn_store_backend(s) == FN_SQL_POSTGRES ? "postgresql" : "sqlite";
    fn_store_close(s);

    fn_config cfg;
    fn_config_defaults(&cfg);
    snprintf(cfg.log_path, sizeof cfg.log_path, "-");
    fn_engine *e = NULL;
    if (fn_engine_open(addr, &cfg, &e) != 0 || fn_tasks_register_all(e) != 0 ||
        fn_engine_start(e, 0) != 0) {
        fprintf(stderr, "bench_pg_bulk: engine: %s\n", e ? fn_engine_errmsg(e) : "no engine");
        return 1;
    }
    fn_job_id id;
    double t0 = now_s();
    if (fn_enqueue(e, type, is_cluster ? "{\"full\": true}" : "{}", FN_PRIO_NORMAL, &id) != 0 ||
        fn_engine_run_pending(e, 0, NULL) != 0) {
        fprintf(stderr, "bench_pg_bulk: job: %s\n", fn_engine_errmsg(e));
        return 1;
    }
    double wall = now_s() - t0;
    fn_job_info *j = NULL;
    if (fn_job_inspect(e, id, &j) != 0 || j->state != FN_JOB_COMPLETED) {
        fprintf(stderr, "bench_pg_bulk: the %s job did not complete\n", type);
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%s %s faces=%zu job_wall_s=%.2f reads_s=%.2f (%s) rest_s=%.2f peak_rss_mb=%.1f\n",
           backend, type, n, wall, read_s, copy ? "copy" : "rows", wall - read_s,
           (double)ru.ru_maxrss / 1024);
    fn_job_info_free(j);
    fn_engine_close(e);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "fill") == 0)
        return fill(argv[2], (size_t)strtoull(argv[3], NULL, 10),
                    argc > 4 ? strtoull(argv[4], NULL, 10) : 42);
    if (argc >= 3 && strcmp(argv[1], "read") == 0)
        return reads(argv[2], argc > 3 ? atoi(argv[3]) : 5);
    if (argc >= 4 && strcmp(argv[1], "job") == 0 &&
        (strcmp(argv[3], "cluster") == 0 || strcmp(argv[3], "predict") == 0))
        return job(argv[2], strcmp(argv[3], "cluster") == 0 ? "clustering" : "predict",
                   argc > 4 ? strcmp(argv[4], "rows") != 0 : 1);
    fprintf(stderr, "usage: bench_pg_bulk fill ADDR N [seed] | read ADDR [pairs] |"
                    " job ADDR cluster|predict [copy|rows]\n");
    return 2;
}
