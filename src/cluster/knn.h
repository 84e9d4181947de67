/* knn.h: the neighbour search clustering runs on: for each face, its k nearest other faces
 * closer than a radius (a "radius-bounded k-nearest-neighbour graph").
 *
 * Why k nearest and not every edge below the radius: a person with 20 000 faces has 200 million
 * edges below the "same person" radius, and clustering needs only enough of them to connect the
 * person's faces; k nearest per face keeps the graph at n * k edges whatever the library holds.
 *
 * Two searches give the same kind of result:
 * - exact: every pair, a block of distances at a time by one sgemm (l2.h); n^2 work, the right
 *   choice below a few tens of thousands of faces;
 * - an inverted-file index (IVF): k-means "lists" trained on a sample, every face stored in the
 *   list of its nearest centre, and searched in the `nprobe` lists whose centres are nearest to
 *   it (each list's members joined exactly, by sgemm, against the faces probing it). Its recall of
 *   the exact result is measured by bench/bench_people (index_edge_recall) and tests/cluster.
 * fn_knn_build picks between them by n (the switch point measured in docs/clustering.md).
 *
 * Threading: every function is reentrant; the searches run on `threads` threads of their own and
 * call OpenBLAS single-threaded (the library's policy, see src/vision/image.c). No state. */
#ifndef FN_CLUSTER_KNN_H
#define FN_CLUSTER_KNN_H

#include <stddef.h>
#include <stdint.h>

/* The result: row i holds up to k neighbours of query i, nearest first; idx -1 past the last. */
typedef struct fn_knn {
    size_t n;
    int k;
    int32_t *idx; /* n * k reference indices */
    float *d2;    /* n * k squared distances */
} fn_knn;

typedef struct fn_knn_opts {
    float radius;     /* only neighbours closer than this (Euclidean) */
    int k;            /* neighbours kept per face (1..64) */
    int threads;      /* 0: the online cores */
    int method;       /* 0: by n (exact up to exact_max), 1: exact, 2: index */
    size_t exact_max; /* 0: FN_KNN_EXACT_MAX */
    int nlist;        /* index lists; 0: sqrt(1.6 n) (400 at 100k) */
    int nprobe;       /* lists searched per face; 0: FN_KNN_NPROBE */
    uint64_t seed;    /* the sample and the initial centres (deterministic for a given seed) */
} fn_knn_opts;

#define FN_KNN_EXACT_MAX 5000
#define FN_KNN_NPROBE    16

/* A cancel check: fn(arg) != 0 stops the search. Called on the calling thread only, between
 * blocks of work (a few milliseconds apart), so it may use what that thread owns (a job's
 * fn_job_should_stop). */
typedef struct fn_knn_stop {
    int (*fn)(void *arg);
    void *arg;
} fn_knn_stop;

/* The k nearest other rows of x (n rows of FN_DESC_DIM floats) closer than o->radius, for every
 * row. 0, or FN_ERR_NOMEM / FN_ERR_CANCELLED (stop said so; stop may be NULL). out is freed by
 * fn_knn_free even after a failure. */
int fn_knn_build(const float *x, size_t n, const fn_knn_opts *o, const fn_knn_stop *stop,
                 fn_knn *out);

/* Exact search of nq queries against nr references (different sets: no row is skipped). */
int fn_knn_query(const float *q, size_t nq, const float *r, size_t nr, const fn_knn_opts *o,
                 fn_knn *out);

void fn_knn_free(fn_knn *k);

/* Starts OpenBLAS single-threaded (once per process): the searches run their own threads. */
void fn_cluster_blas_init(void);

#endif
