/* ops_isa.h: which kernels of ops.c run, generic C, AVX-512 or AVX2+FMA (internal; kernels
 * engineer).
 *
 * ops.c picks its kernels at run time (fn_cpu_has_avx512, then fn_cpu_has_avx2) so one binary
 * runs on every x86-64; tests force each path with fn_ops_set_isa to check them all against the
 * same naive references. The AVX-512 and AVX2 kernels compute the same floats (same operations
 * in the same order); the generic path (OpenBLAS and plain loops) differs from them by rounding. */
#ifndef FN_VISION_OPS_ISA_H
#define FN_VISION_OPS_ISA_H

#include "vision/ops.h"

/* 1 when this CPU runs the AVX-512 kernels (F, VL, DQ, BW). */
int fn_cpu_has_avx512(void);

/* 1 when this CPU runs the AVX2 kernels (AVX2 and FMA; ops_avx2.c). */
int fn_cpu_has_avx2(void);

/* 1 when the AVX2 kernels are a set of their own beside what this CPU runs by default (a CPU
 * with AVX-512: elsewhere AVX2 is the default or not there), so tests run them too. */
static inline int fn_avx2_beside_default(void)
{
    return fn_cpu_has_avx512() && fn_cpu_has_avx2();
}

/* Kernel sets for fn_ops_set_isa / fn_ops_isa. */
enum { FN_ISA_GENERIC = 0, FN_ISA_AVX512 = 1, FN_ISA_AVX2 = 2 };

/* -1: choose by the CPU (default: AVX-512, else AVX2, else generic); FN_ISA_GENERIC: generic C
 * kernels only; FN_ISA_AVX512 or FN_ISA_AVX2: that set if the CPU has it, else generic. Not for
 * use while other threads run kernels. */
void fn_ops_set_isa(int level);

/* The kernel set that runs now (FN_ISA_*). */
int fn_ops_isa(void);

/* ---- Packed weights' layout (fn_wpack_init), shared by the kernels ----
 * A layer's [K][N] weights as column panels of 64, 48, 32 or 16 floats (the widths the AVX-512
 * tiles hold in registers), each panel K rows of its width rounded up to whole 16-float vectors
 * (zero-filled), 64-byte aligned: 48 as long as more than 64 columns remain, then 64 as one panel
 * (instead of a 48 and a lone 16), and the rest as it comes; within a panel, rows or 16-column
 * slices (fn_panel_index). The width of the panel that starts with `rem` columns left: */
static inline int fn_panel_width(int rem)
{
    if (rem == 64) return 64;
    return rem > 48 ? 48 : rem;
}

/* The columns of a panel of width pw in its 16-column slice from column j on (16 but in the last).
 */
static inline int fn_slice_cols(int pw, int j)
{
    return pw - j < 16 ? pw - j : 16;
}

/* Where column j of row r of a panel (K rows, padded width wpad) is, from the panel's start: the
 * panel's rows one after the other (wpad floats each: what the AVX-512 tiles load, a row of the
 * panel per k), or, `sliced`, its 16-column slices one after the other (K x 16 floats each: what
 * the AVX2 tiles stream, one slice at a time, so a slice of a K = 1024 panel is 64 KB in a row
 * instead of a line every 192 or 256 bytes; fn_wpack_init slices where the AVX2 kernels are the
 * CPU's best, ops.c). */
static inline size_t fn_panel_index(int K, int wpad, int sliced, int r, int j)
{
    return sliced ? (size_t)(j / 16) * K * 16 + (size_t)r * 16 + (size_t)(j % 16)
                  : (size_t)r * wpad + (size_t)j;
}

/* Zeros that stand for the missing input row of an output row at the top or bottom border of a
 * depthwise conv (SAME padding), so such rows run the interior kernels too (an exact zero product
 * changes no sum). Never written; rows wider than FN_DW_ZERO_FLOATS take the edge path. */
#define FN_DW_ZERO_FLOATS (64 * 1024)
extern float fn_dw_zero[FN_DW_ZERO_FLOATS];

/* The running sum of fn_sepconv_sum_w as the packed GEMMs' epilogue: each result x (act none)
 * becomes s = in + x, stored to `out` unless it is NULL (it may be `in`), and C gets max(s, 0).
 * Both maps laid out as C (row stride ldc). */
typedef struct fn_gemm_sum {
    const float *in;
    float *out;
} fn_gemm_sum;

/* A read in segments: row m of A is n runs of K / n floats, at A + m * lda, `stride` floats
 * further, 2 * stride further, ... (a conv's taps read where they are, ops.c: the rows of taps of
 * a 3x3 stride-1 conv, n = 3; the input itself over a conv's interior, conv_rows, n = kh). */
typedef struct fn_gemm_seg {
    size_t stride;
    int n;
} fn_gemm_seg;

/* The AVX2 kernels (ops_avx2.c), for ops.c's dispatch only. C[M][N] (row stride ldc) =
 * act(A[M][K] (row stride lda) B + bias), B packed as above (its panels sliced or not, as
 * fn_panel_index), then the sum when `sum` is not NULL;
 * C must not alias A. With `seg` (not NULL) A is read in its segments. */
void fn_gemm_packed_avx2(int M, int N, int K, const float *A, int lda, const float *Bp, int sliced,
                         const float *bias, fn_act act, float *C, int ldc, const fn_gemm_sum *sum,
                         const fn_gemm_seg *seg);
/* The same with B as the bytes of fn_wpack_bytes: q the panels' bytes, qsm per panel its columns'
 * scales then offsets (fn_wpack's q and qsm); the same floats as on the panels. */
void fn_gemm_bytes_avx2(int M, int N, int K, const float *A, int lda, const unsigned char *q,
                        const float *qsm, const float *bias, fn_act act, float *C, int ldc);
/* fn_dense (ops.h) on AVX2: out[n_out] = in[n_in] W + bias, the same floats as on AVX-512. */
void fn_dense_avx2(const float *in, int n_in, const float *w, const float *bias, int n_out,
                   float *out);
/* Where row y of a depthwise conv's input is (rs floats a row): the whole map's rows one after
 * the other at `in` (ring 0), or with ring > 0 row y at row y % ring of `in` (a separable chain's
 * window, fn_sepchain_w, whose rows never move). */
static inline const float *fn_dw_row(const float *in, int ring, size_t rs, int y)
{
    return in + (size_t)(ring > 0 ? y % ring : y) * rs;
}
/* Output rows [oy_begin, oy_end) of a 3x3 depthwise conv (stride 1 or 2, padding pt/pl) of an
 * ih x iw x c map whose rows are at `in` (fn_dw_row), into `out` (those rows, ow wide). */
void fn_dw3x3_avx2(const float *in, int ring, int ih, int iw, int c, const float *w,
                   const float *bias, int stride, int pt, int pl, fn_act act, float *out,
                   int oy_begin, int oy_end, int ow);

/* k x k pooling (max, or average over the taps inside the image) of an ih x iw x c map, padding
 * pt/pl, into out (oh x ow x c): the same floats as ops.c's portable loop. */
void fn_pool_avx2(const float *in, int ih, int iw, int c, int k, int stride, int pt, int pl,
                  int is_max, float *out, int oh, int ow);

/* The floating-point operations (2 per multiply-add) the convolution, depthwise and dense kernels
 * of the calling thread have run, counted per layer from the shapes (biases and activations not
 * counted), so a benchmark can state each network's GFLOP/s without a hand-made model of it.
 * Thread-local; the increments are one per layer call, so they cost nothing measurable. */
double fn_ops_flops(void);
void fn_ops_flops_add(double flops);

/* A per-layer trace for benchmarks: while set (on the calling thread only), every conv, depthwise,
 * separable (reported as its depthwise and pointwise halves) and dense layer calls `fn` after it
 * ran, with its shape as a GEMM (m rows, n columns, k depth), its FLOPs, the least memory traffic
 * it needs (inputs, weights and outputs once, in bytes) and the thread CPU time it took. NULL
 * turns it off (the default). The layer record is valid only during the call. */
typedef struct fn_ops_layer {
    const char *op; /* "conv", "pointwise", "depthwise", "sep.depthwise", "sep.pointwise",
                     * "chain.conv", "chain.depthwise", "chain.pointwise" (fn_sepchain_w's head and
                     * blocks), "dense" */
    int m, n, k;
    double flops, bytes, seconds;
} fn_ops_layer;
typedef void (*fn_ops_trace_fn)(const fn_ops_layer *layer);
void fn_ops_set_trace(fn_ops_trace_fn fn);

#endif
