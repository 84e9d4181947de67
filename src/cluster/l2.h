/* l2.h: squared Euclidean distances between face descriptors, a block at a time.
 *
 * The face model's descriptors are 128 float32 values; "same person" is a Euclidean distance
 * below about 0.6. Distances between many descriptors are one matrix product each:
 * |q - r|^2 = |q|^2 + |r|^2 - 2 q.r, where the products come from one sgemm (OpenBLAS, the
 * library the vision convolutions use), so a block of 256 x 4096 distances runs at the GEMM's
 * speed instead of a loop's. Rounding can make a tiny distance slightly negative: results are
 * clamped at 0. Depends on nothing of ours; thread-safe (no state). */
#ifndef FN_CLUSTER_L2_H
#define FN_CLUSTER_L2_H

#include <stddef.h>

#define FN_DESC_DIM 128

/* The kernels fn_l2sq_block can run, slowest first. */
enum { FN_L2_SGEMM = 0, FN_L2_AVX2 = 1, FN_L2_AVX512 = 2 };

/* out[i] = squared norm of row i of v (n rows of FN_DESC_DIM floats). */
void fn_l2_norms(const float *v, size_t n, float *out);

/* d[i * ldd + j] = |q_i - r_j|^2 for the nq rows of q and the nr rows of r (FN_DESC_DIM floats
 * each, contiguous), given their squared norms qn and rn (fn_l2_norms). ldd >= nr. */
void fn_l2sq_block(const float *q, const float *qn, size_t nq, const float *r, const float *rn,
                   size_t nr, float *d, size_t ldd);

/* The kernel in use (FN_L2_*): the best this CPU has unless fn_l2_set_isa forced another. */
int fn_l2_isa(void);

/* For tests and benchmarks: forces kernel `level` (FN_L2_*; < 0 = the best this CPU has), capped
 * at what the CPU supports; returns the level now in use. Affects every thread. */
int fn_l2_set_isa(int level);

/* "sgemm", "avx2" or "avx512" for a level (FN_L2_*), NULL for any other value: for benchmarks'
 * output and their FN_BENCH_L2 variable. A static string. */
const char *fn_l2_isa_name(int level);

#endif
