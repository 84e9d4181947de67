/* bench_people.c: the people benchmark (clustering part). Prints `name value unit` lines (see
 * bench/bench_people):
 *
 *   cluster_10k_s, cluster_100k_s, cluster_1m_s   neighbour graph + grouping of N synthetic faces
 *                                                 (in memory: the algorithm, not the database)
 *   cluster_1m_peak_rss_mb                        peak resident memory of the 1M run (its own
 *                                                 process: descriptors, graph and grouping)
 *   incremental_1k_into_1m_s                      1000 new faces against the centres of the 1M
 *                                                 run's clusters, and grouped among themselves
 *   index_edge_recall                             the index's neighbours of 2000 sampled faces of
 *                                                 the 100k set against exact search's (both k
 *                                                 nearest below the radius)
 *   bcubed_p_*, bcubed_r_*, bcubed_f_*, pair_*    the grouping against the synthetic identities
 *   clusters_*, identities_*                      groups of 2+ found, identities of 2+ faces
 *
 *   blas_core                                     the OpenBLAS kernels in use (docs/clustering.md)
 *   l2_kernel                                     the distance kernel in use (src/cluster/l2.c;
 *                                                 FN_BENCH_L2=sgemm|avx2|avx512 forces one)
 *
 * FN_BENCH_SIZES=10k,100k,1m picks the sizes (default 10k,100k: the 1M run takes a minute and
 * 1.2 GB, keep it rare on a shared machine). FN_BENCH_SWITCH=1 adds the exact-vs-index timings
 * that chose the switch point; FN_BENCH_SWEEP=1 the radius/link grid that chose the defaults.
 * Synthetic faces: people_synth.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "cluster/knn.h"
#include "cluster/l2.h"
#include "people_synth.h"

#define RADIUS 0.5f
#define LINK   0.45f
#define K      16

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *size_name(size_t n, char *buf, size_t len)
{
    if (n >= 1000000 && n % 1000000 == 0)
        snprintf(buf, len, "%zum", n / 1000000);
    else
        snprintf(buf, len, "%zuk", n / 1000);
    return buf;
}

static void opts(fn_knn_opts *o, float radius, int method)
{
    memset(o, 0, sizeof *o);
    o->radius = radius;
    o->k = K;
    o->method = method;
    o->seed = 42;
    /* knobs for measuring the index (not part of the printed defaults) */
    if (getenv("FN_BENCH_NPROBE")) o->nprobe = atoi(getenv("FN_BENCH_NPROBE"));
    if (getenv("FN_BENCH_NLIST")) o->nlist = atoi(getenv("FN_BENCH_NLIST"));
}

/* Clusters s with (radius, link); result in pred; returns seconds, < 0 on failure. */
static double run_cluster(const fn_synth *s, float radius, float link, int min_faces, int method,
                          int32_t *pred, size_t *n_new)
{
    double t0 = now_s();
    fn_knn_opts o;
    opts(&o, radius, method);
    fn_knn g;
    if (fn_knn_build(s->desc, s->n, &o, NULL, &g) < 0) return -1;
    fn_cluster_in in = {.n = s->n, .desc = s->desc, .photo = s->photo, .weak = s->weak};
    fn_cluster_params p = {.link = link, .min_faces = min_faces};
    int rc = fn_cluster_run(&in, &g, &p, 0, pred, n_new);
    fn_knn_free(&g);
    return rc < 0 ? -1 : now_s() - t0;
}

static void print_scores(const char *tag, const fn_synth *s, const int32_t *pred)
{
    fn_cluster_scores sc;
    if (fn_cluster_score(s->identity, pred, s->n, &sc) < 0) return;
    printf("bcubed_p_%s %.4f ratio\nbcubed_r_%s %.4f ratio\nbcubed_f_%s %.4f ratio\n", tag,
           sc.bcubed_p, tag, sc.bcubed_r, tag, sc.bcubed_f);
    printf("pair_p_%s %.4f ratio\npair_r_%s %.4f ratio\npair_f_%s %.4f ratio\n", tag, sc.pair_p,
           tag, sc.pair_r, tag, sc.pair_f);
    printf("clusters_%s %zu count\nidentities_%s %zu count\n", tag, sc.clusters, tag,
           sc.identities);
}

/* The new faces (the last n_new of s) against the centres of the groups pred gives the others. */
static double incremental(const fn_synth *s, const int32_t *pred, size_t n_groups, size_t n_new)
{
    size_t n_old = s->n - n_new;
    /* the centres and sizes of the old groups (not timed: the job reads them from the clusters
     * table, where each run keeps them) */
    double *sum = calloc(n_groups * FN_DESC_DIM, sizeof *sum);
    float *w = calloc(n_groups, sizeof *w);
    size_t np = n_new + n_groups;
    float *pts = malloc(np * FN_DESC_DIM * sizeof *pts);
    float *wt = malloc(np * sizeof *wt);
    int64_t *photo = malloc(np * sizeof *photo);
    int32_t *label = malloc(np * sizeof *label);
    uint8_t *weak = malloc(np);
    int32_t *out = malloc(np * sizeof *out);
    if (!sum || !w || !pts || !wt || !photo || !label || !weak || !out) return -1;
    for (size_t i = 0; i < n_old; i++) {
        if (pred[i] < 0) continue;
        for (int c = 0; c < FN_DESC_DIM; c++)
            sum[(size_t)pred[i] * FN_DESC_DIM + c] += s->desc[i * FN_DESC_DIM + c];
        w[pred[i]]++;
    }
    memcpy(pts, s->desc + n_old * FN_DESC_DIM, n_new * FN_DESC_DIM * sizeof *pts);
    for (size_t i = 0; i < n_new; i++) {
        wt[i] = 1;
        photo[i] = s->photo[n_old + i];
        label[i] = -1;
        weak[i] = s->weak[n_old + i];
    }
    size_t m = n_new;
    for (size_t gi = 0; gi < n_groups; gi++) {
        if (!w[gi]) continue;
        for (int c = 0; c < FN_DESC_DIM; c++)
            pts[m * FN_DESC_DIM + c] = (float)(sum[gi * FN_DESC_DIM + c] / w[gi]);
        wt[m] = w[gi];
        photo[m] = 0;
        label[m] = (int32_t)gi;
        weak[m] = 0;
        m++;
    }
    double t0 = now_s();
    fn_knn_opts o;
    opts(&o, RADIUS, 1);
    o.k = K + 1; /* a query finds itself among the points */
    fn_knn g;
    double secs = -1;
    if (fn_knn_query(pts, n_new, pts, m, &o, &g) == 0) {
        fn_cluster_in in = {
            .n = m, .desc = pts, .weight = wt, .photo = photo, .label = label, .weak = weak};
        fn_cluster_params p = {.link = LINK, .min_faces = 2};
        size_t nn;
        if (fn_cluster_run(&in, &g, &p, (int32_t)n_groups, out, &nn) == 0) secs = now_s() - t0;
        size_t joined = 0;
        for (size_t i = 0; i < n_new; i++)
            joined += out[i] >= 0 && out[i] < (int32_t)n_groups;
        printf("incremental_joined %zu count\nincremental_new_clusters %zu count\n", joined, nn);
    }
    fn_knn_free(&g);
    free(sum);
    free(w);
    free(pts);
    free(wt);
    free(photo);
    free(label);
    free(weak);
    free(out);
    return secs;
}

/* Recall of the index's graph against exact search, on `sample` faces of s. The graph keeps k
 * edges per face, so what the index must find is min(k, E) edges below the radius for a face
 * with E of them: edge_recall is the edges the index found (all below the radius by
 * construction, none twice) over that. topk_recall is stricter: the exact k nearest found. */
static int edge_recall(const fn_synth *s, size_t sample, double *edge, double *topk)
{
    fn_knn_opts o;
    opts(&o, RADIUS, 2);
    fn_knn ivf;
    if (fn_knn_build(s->desc, s->n, &o, NULL, &ivf) < 0) return -1;
    size_t stride = s->n / sample;
    float *q = malloc(sample * FN_DESC_DIM * sizeof *q);
    for (size_t i = 0; i < sample; i++)
        memcpy(q + i * FN_DESC_DIM, s->desc + i * stride * FN_DESC_DIM, FN_DESC_DIM * sizeof *q);
    opts(&o, RADIUS, 1);
    o.k = K + 1; /* the query itself is among the references */
    fn_knn ex;
    double found = 0, total = 0, got = 0;
    if (fn_knn_query(q, sample, s->desc, s->n, &o, &ex) == 0) {
        for (size_t i = 0; i < sample; i++) {
            size_t row = i * stride;
            const int32_t *e = ex.idx + i * (size_t)ex.k;
            const int32_t *f = ivf.idx + row * (size_t)ivf.k;
            int taken = 0;
            for (int a = 0; a < ex.k && e[a] >= 0 && taken < K; a++) {
                if ((size_t)e[a] == row) continue;
                taken++;
                total++;
                for (int b = 0; b < ivf.k && f[b] >= 0; b++)
                    if (f[b] == e[a]) {
                        found++;
                        break;
                    }
            }
            for (int b = 0; b < ivf.k && f[b] >= 0; b++)
                got++;
        }
    }
    fn_knn_free(&ex);
    fn_knn_free(&ivf);
    free(q);
    *edge = total > 0 ? got / total : 1;
    *topk = total > 0 ? found / total : 1;
    return 0;
}

static int one_size(size_t n, int with_incremental)
{
    char tag[32];
    size_name(n, tag, sizeof tag);
    fn_synth_opts so;
    fn_synth_defaults(&so, n, 7);
    fn_synth s;
    if (fn_synth_make(&so, &s) < 0) return 1;
    int32_t *pred = malloc(n * sizeof *pred);
    size_t n_new = 0;
    /* the incremental case clusters all but the last 1000 first */
    size_t n_inc = with_incremental ? 1000 : 0;
    fn_synth head = s;
    head.n = n - n_inc;
    double c0 = cpu_s();
    double secs = run_cluster(&head, RADIUS, LINK, 2, 0, pred, &n_new);
    if (secs < 0) return 1;
    printf("cluster_%s_s %.3f s\ncluster_%s_cpu_s %.3f s\n", tag, secs, tag, cpu_s() - c0);
    print_scores(tag, &head, pred);
    if (with_incremental) {
        double inc = incremental(&s, pred, n_new, n_inc);
        printf("incremental_1k_into_%s_s %.3f s\n", tag, inc);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("cluster_%s_peak_rss_mb %.0f MB\n", tag, (double)ru.ru_maxrss / 1024.0);
    fflush(stdout);
    free(pred);
    fn_synth_free(&s);
    return 0;
}

/* Each size in its own process, so its peak memory is its own. */
static int in_child(size_t n, int inc)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) _exit(one_size(n, inc));
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

static void switch_point(void)
{
    size_t sizes[] = {10000, 20000, 50000};
    for (size_t i = 0; i < 3; i++) {
        fn_synth_opts so;
        fn_synth_defaults(&so, sizes[i], 11);
        fn_synth s;
        if (fn_synth_make(&so, &s) < 0) return;
        char tag[32];
        size_name(sizes[i], tag, sizeof tag);
        for (int m = 1; m <= 2; m++) {
            fn_knn_opts o;
            opts(&o, RADIUS, m);
            double t0 = now_s();
            fn_knn g;
            if (fn_knn_build(s.desc, s.n, &o, NULL, &g) == 0)
                printf("knn_%s_%s_s %.3f s\n", m == 1 ? "exact" : "index", tag, now_s() - t0);
            fn_knn_free(&g);
        }
        fflush(stdout);
        fn_synth_free(&s);
    }
}

static void sweep(void)
{
    fn_synth_opts so;
    fn_synth_defaults(&so, 20000, 13);
    fn_synth s;
    if (fn_synth_make(&so, &s) < 0) return;
    int32_t *pred = malloc(s.n * sizeof *pred);
    float radii[] = {0.45f, 0.5f, 0.55f, 0.6f};
    if (getenv("FN_BENCH_SWEEP_FAST")) radii[0] = radii[2] = radii[3] = 0.5f;
    float links[] = {0.45f, 0.5f, 0.55f, 0.6f, 0.65f, 10.0f};
    for (size_t a = 0; a < 4; a++)
        for (size_t b = 0; b < 6; b++) {
            size_t nn;
            if (run_cluster(&s, radii[a], links[b], 2, 1, pred, &nn) < 0) continue;
            fn_cluster_scores sc;
            fn_cluster_score(s.identity, pred, s.n, &sc);
            printf("sweep_r%.2f_link%.2f bcubed_p=%.4f bcubed_r=%.4f bcubed_f=%.4f clusters=%zu "
                   "identities=%zu\n",
                   radii[a], links[b] > 5 ? 0.0 : links[b], sc.bcubed_p, sc.bcubed_r, sc.bcubed_f,
                   sc.clusters, sc.identities);
            fflush(stdout);
        }
    free(pred);
    fn_synth_free(&s);
}

extern char *openblas_get_corename(void);

/* FN_BENCH_L2 (sgemm, avx2, avx512) forces that distance kernel; the one in use is printed. */
static void l2_kernel_choice(void)
{
    const char *e = getenv("FN_BENCH_L2");
    int want = -1;
    for (int l = 0; e && fn_l2_isa_name(l); l++)
        if (strcmp(e, fn_l2_isa_name(l)) == 0) want = l;
    printf("l2_kernel %s name\n", fn_l2_isa_name(fn_l2_set_isa(want)));
}

int main(void)
{
    printf("blas_core %s name\n", openblas_get_corename());
    l2_kernel_choice();
    const char *sizes = getenv("FN_BENCH_SIZES");
    if (!sizes) sizes = "10k,100k";
    if (getenv("FN_BENCH_SWEEP")) sweep();
    if (getenv("FN_BENCH_SWITCH")) switch_point();
    int rc = 0;
    char *copy = strdup(sizes);
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        size_t n = strcmp(t, "1m") == 0 ? 1000000 : (size_t)atol(t) * 1000;
        if (n) rc |= in_child(n, n >= 1000000);
    }
    free(copy);
    if (strstr(sizes, "100k")) {
        fn_synth_opts so;
        fn_synth_defaults(&so, 100000, 7);
        fn_synth s;
        if (fn_synth_make(&so, &s) == 0) {
            double edge, topk;
            if (edge_recall(&s, 2000, &edge, &topk) == 0)
                printf("index_edge_recall %.4f ratio\nindex_topk_recall %.4f ratio\n", edge, topk);
            fn_synth_free(&s);
        }
    }
    return rc;
}
