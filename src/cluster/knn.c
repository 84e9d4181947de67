/* knn.c: the radius-bounded k-nearest-neighbour search, exact and by inverted-file index (see
 * knn.h for what and why). */
#include "cluster/knn.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/l2.h"
#include "facenames/error.h"

#define QB       256  /* query rows per distance block */
#define RB       2048 /* reference rows per distance block */
#define KMAX     64
#define STRIPES  1024 /* locks over the result rows of the index search */
#define KM_ITERS 6    /* k-means rounds: the lists only need to be roughly right */
#define KM_PER   16   /* training sample rows per list */

extern void openblas_set_num_threads(int);

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_single(void)
{
    openblas_set_num_threads(1);
}

void fn_cluster_blas_init(void)
{
    pthread_once(&blas_once, blas_single);
}

void fn_knn_free(fn_knn *k)
{
    if (!k) return;
    free(k->idx);
    free(k->d2);
    k->idx = NULL;
    k->d2 = NULL;
    k->n = 0;
}

static int knn_alloc(fn_knn *out, size_t n, int k)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    out->k = k;
    out->idx = malloc((n ? n : 1) * (size_t)k * sizeof *out->idx);
    out->d2 = malloc((n ? n : 1) * (size_t)k * sizeof *out->d2);
    if (!out->idx || !out->d2) return FN_ERR_NOMEM;
    for (size_t i = 0; i < n * (size_t)k; i++) {
        out->idx[i] = -1;
        out->d2[i] = INFINITY;
    }
    return 0;
}

/* Inserts (j, d) into the sorted row (idx, d2) of k slots when it is among the k nearest. */
static inline void topk_insert(int32_t *idx, float *d2, int k, int32_t j, float d)
{
    if (!(d < d2[k - 1])) return;
    int p = k - 1;
    while (p > 0 && d2[p - 1] > d) {
        d2[p] = d2[p - 1];
        idx[p] = idx[p - 1];
        p--;
    }
    d2[p] = d;
    idx[p] = j;
}

/* As topk_insert, for a row that may hold j already (the index finds a pair from both sides). */
static inline void topk_insert_once(int32_t *idx, float *d2, int k, int32_t j, float d)
{
    if (!(d < d2[k - 1])) return;
    for (int s = 0; s < k && idx[s] >= 0; s++)
        if (idx[s] == j) return;
    topk_insert(idx, d2, k, j, d);
}

static int n_threads(const fn_knn_opts *o)
{
    if (o->threads > 0) return o->threads;
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    return c < 1 ? 1 : c > 64 ? 64 : (int)c;
}

/* ---- a minimal parallel loop: tasks 0..n_tasks taken by an atomic counter --------------------
 */

typedef struct par {
    void (*fn)(struct par *p, size_t task, float *scratch);
    size_t n_tasks;
    atomic_size_t next;
    size_t scratch_floats;
    atomic_int failed, stopped;
    const fn_knn_stop *stop; /* asked on the calling thread only, between tasks */
    void *arg;
} par;

static void *par_run_tasks(par *p, int is_caller)
{
    float *scratch = malloc(p->scratch_floats * sizeof *scratch);
    if (!scratch) {
        atomic_store(&p->failed, 1);
        return NULL;
    }
    for (;;) {
        if (is_caller && p->stop && p->stop->fn && p->stop->fn(p->stop->arg))
            atomic_store(&p->stopped, 1);
        if (atomic_load(&p->stopped) || atomic_load(&p->failed)) break;
        size_t t = atomic_fetch_add(&p->next, 1);
        if (t >= p->n_tasks) break;
        p->fn(p, t, scratch);
    }
    free(scratch);
    return NULL;
}

static void *par_worker(void *arg)
{
    return par_run_tasks(arg, 0);
}

static int par_run(par *p, int threads)
{
    atomic_store(&p->next, 0);
    atomic_store(&p->failed, 0);
    atomic_store(&p->stopped, 0);
    if ((size_t)threads > p->n_tasks) threads = p->n_tasks ? (int)p->n_tasks : 1;
    pthread_t th[64];
    int started = 0;
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&th[started], NULL, par_worker, p) != 0) break;
        started++;
    }
    par_run_tasks(p, 1);
    for (int t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    if (atomic_load(&p->failed)) return FN_ERR_NOMEM;
    if (atomic_load(&p->stopped)) return FN_ERR_CANCELLED;
    return 0;
}

/* ---- exact --------------------------------------------------------------------------------------
 */

typedef struct exact_arg {
    const float *q, *qn, *r, *rn;
    size_t nq, nr;
    int self;
    float r2;
    fn_knn *out;
} exact_arg;

/* One block of QB queries against every reference, RB at a time. The rows are this task's own. */
static void exact_task(par *p, size_t task, float *d)
{
    exact_arg *a = p->arg;
    size_t i0 = task * QB, ni = a->nq - i0 < QB ? a->nq - i0 : QB;
    int k = a->out->k;
    for (size_t j0 = 0; j0 < a->nr; j0 += RB) {
        size_t nj = a->nr - j0 < RB ? a->nr - j0 : RB;
        fn_l2sq_block(a->q + i0 * FN_DESC_DIM, a->qn + i0, ni, a->r + j0 * FN_DESC_DIM, a->rn + j0,
                      nj, d, RB);
        for (size_t i = 0; i < ni; i++) {
            const float *row = d + i * RB;
            int32_t *idx = a->out->idx + (i0 + i) * (size_t)k;
            float *d2 = a->out->d2 + (i0 + i) * (size_t)k;
            for (size_t j = 0; j < nj; j++) {
                if (row[j] < a->r2 && !(a->self && j0 + j == i0 + i))
                    topk_insert(idx, d2, k, (int32_t)(j0 + j), row[j]);
            }
        }
    }
}

static int check_opts(const fn_knn_opts *o)
{
    return o->k >= 1 && o->k <= KMAX && o->radius > 0 ? 0 : FN_ERR_INVALID;
}

static int exact_run(const float *q, size_t nq, const float *r, size_t nr, int self,
                     const fn_knn_opts *o, const fn_knn_stop *stop, fn_knn *out)
{
    int rc = knn_alloc(out, nq, o->k);
    if (rc < 0) return rc;
    float *qn = malloc((nq ? nq : 1) * sizeof *qn);
    float *rn = self ? qn : malloc((nr ? nr : 1) * sizeof *rn);
    if (!qn || !rn) {
        free(qn);
        if (!self) free(rn);
        return FN_ERR_NOMEM;
    }
    fn_l2_norms(q, nq, qn);
    if (!self) fn_l2_norms(r, nr, rn);
    exact_arg a = {q, qn, r, rn, nq, nr, self, o->radius * o->radius, out};
    par p = {.fn = exact_task,
             .n_tasks = (nq + QB - 1) / QB,
             .scratch_floats = (size_t)QB * RB,
             .stop = stop,
             .arg = &a};
    rc = par_run(&p, n_threads(o));
    free(qn);
    if (!self) free(rn);
    return rc;
}

int fn_knn_query(const float *q, size_t nq, const float *r, size_t nr, const fn_knn_opts *o,
                 fn_knn *out)
{
    memset(out, 0, sizeof *out);
    if (check_opts(o) < 0) return FN_ERR_INVALID;
    fn_cluster_blas_init();
    return exact_run(q, nq, r, nr, 0, o, NULL, out);
}

/* ---- the inverted-file index --------------------------------------------------------------------
 */

typedef struct ivf {
    const float *x, *xn;
    size_t n;
    int nlist, nprobe;
    float *cent, *cn; /* nlist centres and their squared norms */
    int32_t *probe;   /* n * nprobe lists per row, nearest first; probe[i*nprobe] = its list */
    size_t *mem_off;  /* nlist + 1: members of list j are mem[mem_off[j] .. mem_off[j+1]) */
    int32_t *mem;     /* rows by list */
    size_t *qry_off;  /* nlist + 1: rows probing list j */
    int32_t *qry;
    pthread_mutex_t *locks;
    float r2;
    fn_knn *out;
} ivf;

typedef struct probe_arg {
    ivf *v;
    const float *x, *xn;
    size_t n;
    int m;
    int32_t *probe;
} probe_arg;

/* One block of QB rows: their nearest m centres. The centre count is at most RB here (fn_knn
 * bounds nlist), so one distance block holds a row's every centre. */
static void probe_task(par *p, size_t task, float *d)
{
    probe_arg *a = p->arg;
    size_t i0 = task * QB, ni = a->n - i0 < QB ? a->n - i0 : QB;
    float best[KMAX];
    fn_l2sq_block(a->x + i0 * FN_DESC_DIM, a->xn + i0, ni, a->v->cent, a->v->cn,
                  (size_t)a->v->nlist, d, RB);
    for (size_t i = 0; i < ni; i++) {
        int32_t *pi = a->probe + (i0 + i) * (size_t)a->m;
        for (int s = 0; s < a->m; s++) {
            pi[s] = -1;
            best[s] = INFINITY;
        }
        const float *row = d + i * RB;
        for (int c = 0; c < a->v->nlist; c++)
            topk_insert(pi, best, a->m, c, row[c]);
    }
}

/* Row order of `n` items by key (a counting sort): off[key] .. off[key + 1]. */
static int by_key(const int32_t *key, size_t stride, size_t n, size_t per, int nkeys, size_t **off,
                  int32_t **rows)
{
    *off = calloc((size_t)nkeys + 1, sizeof **off);
    *rows = malloc((n * per != 0 ? n * per : 1) * sizeof **rows);
    if (!*off || !*rows) return FN_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        for (size_t s = 0; s < per; s++)
            if (key[i * stride + s] >= 0) (*off)[key[i * stride + s] + 1]++;
    for (int j = 0; j < nkeys; j++)
        (*off)[j + 1] += (*off)[j];
    size_t *pos = malloc(((size_t)nkeys + 1) * sizeof *pos);
    if (!pos) return FN_ERR_NOMEM;
    memcpy(pos, *off, ((size_t)nkeys + 1) * sizeof *pos);
    for (size_t i = 0; i < n; i++)
        for (size_t s = 0; s < per; s++) {
            int32_t kk = key[i * stride + s];
            if (kk >= 0) (*rows)[pos[kk]++] = (int32_t)i;
        }
    free(pos);
    return 0;
}

/* One list: its members gathered, the rows probing it gathered QB at a time, one distance block
 * each; each row's candidates below the radius merge into its result under the row's lock. */
#define LIST_MAX_GATHER 8192
static void list_task(par *p, size_t task, float *scratch)
{
    ivf *v = p->arg;
    int k = v->out->k;
    size_t m0 = v->mem_off[task], nm = v->mem_off[task + 1] - m0;
    size_t q0 = v->qry_off[task], nq = v->qry_off[task + 1] - q0;
    if (!nm || !nq) return;
    float *d = scratch;                      /* QB x RB */
    float *rbuf = scratch + (size_t)QB * RB; /* RB x dim */
    float *rnb = rbuf + (size_t)RB * FN_DESC_DIM;
    float *qbuf = rnb + RB; /* QB x dim */
    float *qnb = qbuf + (size_t)QB * FN_DESC_DIM;
    int32_t lidx[KMAX];
    float ld2[KMAX];
    for (size_t r0 = 0; r0 < nm; r0 += RB) {
        size_t nr = nm - r0 < RB ? nm - r0 : RB;
        for (size_t j = 0; j < nr; j++) {
            int32_t row = v->mem[m0 + r0 + j];
            memcpy(rbuf + j * FN_DESC_DIM, v->x + (size_t)row * FN_DESC_DIM,
                   FN_DESC_DIM * sizeof(float));
            rnb[j] = v->xn[row];
        }
        for (size_t i0 = 0; i0 < nq; i0 += QB) {
            size_t ni = nq - i0 < QB ? nq - i0 : QB;
            for (size_t i = 0; i < ni; i++) {
                int32_t row = v->qry[q0 + i0 + i];
                memcpy(qbuf + i * FN_DESC_DIM, v->x + (size_t)row * FN_DESC_DIM,
                       FN_DESC_DIM * sizeof(float));
                qnb[i] = v->xn[row];
            }
            fn_l2sq_block(qbuf, qnb, ni, rbuf, rnb, nr, d, RB);
            for (size_t i = 0; i < ni; i++) {
                int32_t qrow = v->qry[q0 + i0 + i];
                const float *drow = d + i * RB;
                int nl = 0;
                for (int s = 0; s < k; s++) {
                    lidx[s] = -1;
                    ld2[s] = INFINITY;
                }
                /* Few distances are below the radius: a branch-free test of 16 at a time (the
                 * compiler's vectors) skips the rest, which costs about as much as the distance
                 * kernel itself when done one by one. */
                for (size_t c0 = 0; c0 < nr; c0 += 16) {
                    size_t c1 = nr - c0 < 16 ? nr : c0 + 16;
                    int any = 0;
                    for (size_t j = c0; j < c1; j++)
                        any |= drow[j] < v->r2;
                    if (!any) continue;
                    for (size_t j = c0; j < c1; j++) {
                        if (drow[j] < v->r2) {
                            int32_t ref = v->mem[m0 + r0 + j];
                            if (ref == qrow) continue;
                            topk_insert(lidx, ld2, k, ref, drow[j]);
                            nl++;
                        }
                    }
                }
                if (!nl) continue;
                pthread_mutex_t *mu = &v->locks[(size_t)qrow % STRIPES];
                int32_t *idx = v->out->idx + (size_t)qrow * k;
                float *d2 = v->out->d2 + (size_t)qrow * k;
                pthread_mutex_lock(mu);
                for (int s = 0; s < k && lidx[s] >= 0; s++)
                    topk_insert_once(idx, d2, k, lidx[s], ld2[s]);
                pthread_mutex_unlock(mu);
                /* The pair is a neighbour of the reference too: a pair is then found when either
                 * face probes the other's list, which is what lifts the recall (measured in
                 * docs/clustering.md). */
                for (int s = 0; s < k && lidx[s] >= 0; s++) {
                    pthread_mutex_t *mr = &v->locks[(size_t)lidx[s] % STRIPES];
                    pthread_mutex_lock(mr);
                    topk_insert_once(v->out->idx + (size_t)lidx[s] * k,
                                     v->out->d2 + (size_t)lidx[s] * k, k, qrow, ld2[s]);
                    pthread_mutex_unlock(mr);
                }
            }
        }
    }
}

/* Deterministic pseudo-random numbers (splitmix64) for the sample. */
static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void ivf_free(ivf *v)
{
    free(v->cent);
    free(v->cn);
    free(v->probe);
    free(v->mem_off);
    free(v->mem);
    free(v->qry_off);
    free(v->qry);
    if (v->locks) {
        for (int i = 0; i < STRIPES; i++)
            pthread_mutex_destroy(&v->locks[i]);
        free(v->locks);
    }
}

/* Trains the centres: k-means over a sample of KM_PER rows per list, KM_ITERS rounds. */
static int train(ivf *v, const fn_knn_opts *o, const fn_knn_stop *stop, int threads)
{
    size_t ns = (size_t)v->nlist * KM_PER;
    if (ns > v->n) ns = v->n;
    uint64_t seed = o->seed ? o->seed : 0x5eed;
    /* a sample without repeats: a partial Fisher-Yates shuffle of the row numbers */
    int32_t *perm = malloc(v->n * sizeof *perm);
    float *sx = malloc(ns * FN_DESC_DIM * sizeof *sx);
    float *sxn = malloc(ns * sizeof *sxn);
    int32_t *assign = malloc(ns * sizeof *assign);
    double *sum = malloc((size_t)v->nlist * FN_DESC_DIM * sizeof *sum);
    size_t *cnt = malloc((size_t)v->nlist * sizeof *cnt);
    int rc = FN_ERR_NOMEM;
    if (!perm || !sx || !sxn || !assign || !sum || !cnt) goto out;
    for (size_t i = 0; i < v->n; i++)
        perm[i] = (int32_t)i;
    for (size_t i = 0; i < ns; i++) {
        size_t j = i + (size_t)(mix(&seed) % (v->n - i));
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        memcpy(sx + i * FN_DESC_DIM, v->x + (size_t)perm[i] * FN_DESC_DIM,
               FN_DESC_DIM * sizeof(float));
        sxn[i] = v->xn[perm[i]];
    }
    memcpy(v->cent, sx, (size_t)v->nlist * FN_DESC_DIM * sizeof(float));
    for (int it = 0; it < KM_ITERS; it++) {
        fn_l2_norms(v->cent, (size_t)v->nlist, v->cn);
        probe_arg pa = {v, sx, sxn, ns, 1, assign};
        par p = {.fn = probe_task,
                 .n_tasks = (ns + QB - 1) / QB,
                 .scratch_floats = (size_t)QB * RB,
                 .stop = stop,
                 .arg = &pa};
        if ((rc = par_run(&p, threads)) < 0) goto out;
        memset(sum, 0, (size_t)v->nlist * FN_DESC_DIM * sizeof *sum);
        memset(cnt, 0, (size_t)v->nlist * sizeof *cnt);
        for (size_t i = 0; i < ns; i++) {
            double *s = sum + (size_t)assign[i] * FN_DESC_DIM;
            const float *xi = sx + i * FN_DESC_DIM;
            for (int c = 0; c < FN_DESC_DIM; c++)
                s[c] += xi[c];
            cnt[assign[i]]++;
        }
        for (int j = 0; j < v->nlist; j++) {
            float *c = v->cent + (size_t)j * FN_DESC_DIM;
            if (!cnt[j]) { /* an empty list restarts on a random sample row */
                memcpy(c, sx + (size_t)(mix(&seed) % ns) * FN_DESC_DIM,
                       FN_DESC_DIM * sizeof(float));
                continue;
            }
            for (int cc = 0; cc < FN_DESC_DIM; cc++)
                c[cc] = (float)(sum[(size_t)j * FN_DESC_DIM + cc] / (double)cnt[j]);
        }
    }
    fn_l2_norms(v->cent, (size_t)v->nlist, v->cn);
    rc = 0;
out:
    free(perm);
    free(sx);
    free(sxn);
    free(assign);
    free(sum);
    free(cnt);
    return rc;
}

static int ivf_run(const float *x, const float *xn, size_t n, const fn_knn_opts *o,
                   const fn_knn_stop *stop, fn_knn *out)
{
    int threads = n_threads(o);
    ivf v = {.x = x, .xn = xn, .n = n, .r2 = o->radius * o->radius, .out = out};
    v.nprobe = o->nprobe > 0 ? o->nprobe : FN_KNN_NPROBE;
    v.nlist = o->nlist > 0 ? o->nlist : (int)lrint(sqrt(1.6 * (double)n));
    if (v.nlist > RB) v.nlist = RB;
    if ((size_t)v.nlist > n / 8) v.nlist = (int)(n / 8);
    if (v.nlist < 1) v.nlist = 1;
    if (v.nprobe > v.nlist) v.nprobe = v.nlist;
    if (v.nprobe > KMAX) v.nprobe = KMAX;
    int rc = FN_ERR_NOMEM;
    v.cent = malloc((size_t)v.nlist * FN_DESC_DIM * sizeof *v.cent);
    v.cn = malloc((size_t)v.nlist * sizeof *v.cn);
    v.probe = malloc(n * (size_t)v.nprobe * sizeof *v.probe);
    v.locks = malloc(STRIPES * sizeof *v.locks);
    if (!v.cent || !v.cn || !v.probe || !v.locks) {
        free(v.locks);
        v.locks = NULL;
        goto out;
    }
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&v.locks[i], NULL);
    if ((rc = train(&v, o, stop, threads)) < 0) goto out;
    probe_arg pa = {&v, x, xn, n, v.nprobe, v.probe};
    par p1 = {.fn = probe_task,
              .n_tasks = (n + QB - 1) / QB,
              .scratch_floats = (size_t)QB * RB,
              .stop = stop,
              .arg = &pa};
    if ((rc = par_run(&p1, threads)) < 0) goto out;
    if ((rc = by_key(v.probe, (size_t)v.nprobe, n, 1, v.nlist, &v.mem_off, &v.mem)) < 0) goto out;
    if ((rc = by_key(v.probe, (size_t)v.nprobe, n, (size_t)v.nprobe, v.nlist, &v.qry_off, &v.qry)) <
        0)
        goto out;
    par p2 = {.fn = list_task,
              .n_tasks = (size_t)v.nlist,
              .scratch_floats =
                  (size_t)QB * RB + (size_t)RB * (FN_DESC_DIM + 1) + (size_t)QB * (FN_DESC_DIM + 1),
              .stop = stop,
              .arg = &v};
    rc = par_run(&p2, threads);
out:
    ivf_free(&v);
    return rc;
}

int fn_knn_build(const float *x, size_t n, const fn_knn_opts *o, const fn_knn_stop *stop,
                 fn_knn *out)
{
    memset(out, 0, sizeof *out);
    if (check_opts(o) < 0) return FN_ERR_INVALID;
    fn_cluster_blas_init();
    size_t exact_max = o->exact_max ? o->exact_max : FN_KNN_EXACT_MAX;
    int exact = o->method == 1 || (o->method == 0 && n <= exact_max) || n < 64;
    if (exact) return exact_run(x, n, x, n, 1, o, stop, out);
    int rc = knn_alloc(out, n, o->k);
    float *xn = malloc(n * sizeof *xn);
    if (rc < 0 || !xn) {
        free(xn);
        return FN_ERR_NOMEM;
    }
    fn_l2_norms(x, n, xn);
    rc = ivf_run(x, xn, n, o, stop, out);
    free(xn);
    return rc;
}
