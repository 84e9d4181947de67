/* ops_avx2.c: the GEMM on packed weights and the 3x3 depthwise conv for CPUs with AVX2 and FMA
 * but not AVX-512 (AMD Zen 2/3, Intel before Skylake-SP, and VMs that hide AVX-512), where ops.c
 * otherwise ran OpenBLAS and the generic loops (internal; kernels engineer).
 *
 * Both compute every output with the same operations in the same order as ops.c's AVX-512
 * kernels (the GEMM: a sum from zero over k by FMA, then the bias, then the activation; the
 * depthwise conv: from the bias, the taps row by row, left to right, by FMA), so on a CPU that has
 * both the two paths give the same floats, and a separable chain gives the same floats as its
 * layers one at a time (ops_isa.h).
 *
 * - fn_gemm_packed_avx2: the panels of fn_wpack (ops_isa.h) cut into 16-column slices, one cache
 *   line of B per k (stored slice after slice where these kernels are the CPU's best:
 *   fn_panel_index); a 6x16 tile keeps 12 of the 16 YMM registers as accumulators (two B loads
 *   and six broadcasts per twelve FMAs). Rows in blocks whose slice of A stays in L2, as the
 *   AVX-512 kernel does; a leftover of rows is one more full tile ending at the last row.
 * - fn_gemm_bytes_avx2: the same on weights stored as bytes, decoded block by block (GEMMs of few
 *   rows, as ops.c's gemm_bytes_avx512).
 * - fn_dense_avx2: a one-row product (the landmark and recognition nets' last layers) as the
 *   AVX-512 one-row tiles compute it.
 * - fn_dw3x3_avx2: 8 channels per vector, pixel-major: a run of neighbouring outputs goes through
 *   every channel block before the next run (rows of six and seven outputs: one run of eight,
 *   borders included, as ops.c's AVX-512 runs; at 512 channels or more four outputs through the
 *   two blocks of a cache line, which L1's sets otherwise evicted between them). Within a run each
 *   input column is loaded once and fed to the up to three outputs that read it, with only that
 *   row's three weight vectors in registers (eight outputs at stride 1, four at stride 2 in wider
 *   rows: accumulators, weights and the column fit in 16 registers).
 * - fn_pool_avx2: max and average pools, 16 channels of an output pixel in two registers over
 *   every tap of its window before the one store; used on AVX-512 CPUs too (a pool moves little
 *   arithmetic: the wider registers would not pay), the same floats as ops.c's portable loop.
 * Compiled with per-function target attributes so the file builds with the baseline flags; called
 * only when fn_cpu_has_avx2() says the CPU has AVX2 and FMA. */
#include "vision/ops_isa.h"

#include <float.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

int fn_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

AVX2 static inline __m256 act8(__m256 x, fn_act act)
{
    switch (act) {
    case FN_ACT_RELU:
        return _mm256_max_ps(x, _mm256_setzero_ps());
    case FN_ACT_RELU6:
        return _mm256_min_ps(_mm256_max_ps(x, _mm256_setzero_ps()), _mm256_set1_ps(6.0f));
    case FN_ACT_LEAKY: {
        const __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
        return _mm256_blendv_ps(x, _mm256_mul_ps(x, _mm256_set1_ps(0.1f)), neg);
    }
    default:
        return x;
    }
}

/* Lanes [0, n) on (n <= 8), for masked loads and stores. */
AVX2 static inline __m256i lanes(int n)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
}

/* Stores x's first n lanes (all 8 when n >= 8). */
AVX2 static inline void store_n(float *p, __m256 x, int n)
{
    if (n >= 8)
        _mm256_storeu_ps(p, x);
    else if (n > 0)
        _mm256_maskstore_ps(p, lanes(n), x);
}

/* The first n floats at p (all 8 when n >= 8), the other lanes 0. */
AVX2 static inline __m256 load_n(const float *p, int n)
{
    if (n >= 8) return _mm256_loadu_ps(p);
    return n > 0 ? _mm256_maskload_ps(p, lanes(n)) : _mm256_setzero_ps();
}

/* x's sum with the first n lanes of p (all 8 when n >= 8), stored to q (unless NULL), then
 * max(sum, 0): one vector of the running-sum epilogue (fn_gemm_sum). */
AVX2 static inline __m256 add_sum8(__m256 x, const float *p, float *q, int n)
{
    if (n <= 0) return x;
    x = _mm256_add_ps(n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lanes(n)), x);
    if (q) store_n(q, x, n);
    return _mm256_max_ps(x, _mm256_setzero_ps());
}

/* MR rows of A times one 16-column slice of a packed panel (ldb floats per k row), bias and
 * activation fused into the only store; only the first w columns (w <= 16) are stored. With SUM
 * the running sum (fn_gemm_sum; Sin and Sout offset as C) is applied before the store; with SEG
 * A is read in the segments of `seg` (fn_gemm_seg). With PART the sums over K may come in parts
 * (fn_gemm_bytes_avx2's blocks): `part` & 1, C holds the sums so far, the FMAs go on from them;
 * `part` & 2, this is not the last part: C gets the sums as they are, no bias nor activation.
 * Storing a sum and loading it back changes no bit, so the parts give the same floats. */
#define GEMM_PF 16
#define TILE2(MR, SUM, SEG, PART, NAME)                                                            \
    AVX2 static void NAME(int K, const float *A, int lda, const float *B, int ldb,                 \
                          const float *bias, fn_act act, float *C, int ldc, int w,                 \
                          const float *Sin, float *Sout, const fn_gemm_seg *seg, int part)         \
    {                                                                                              \
        __m256 acc[MR][2];                                                                         \
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)                                       \
        {                                                                                          \
            const int go_on_ = PART && (part & 1);                                                 \
            acc[r][0] = go_on_ ? load_n(C + (size_t)r * ldc, w) : _mm256_setzero_ps();             \
            acc[r][1] = go_on_ ? load_n(C + (size_t)r * ldc + 8, w - 8) : _mm256_setzero_ps();     \
        }                                                                                          \
        const int ns = SEG ? seg->n : 1, ks = K / ns;                                              \
        for (int s = 0; s < ns; s++) {                                                             \
            const float *As = A + (SEG ? s * seg->stride : 0), *Bs = B + (size_t)s * ks * ldb;     \
            for (int k = 0; k < ks; k++) {                                                         \
                const float *b = Bs + (size_t)k * ldb;                                             \
                const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);                   \
                _mm_prefetch((const char *)(b + (size_t)GEMM_PF * ldb), _MM_HINT_T0);              \
                _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)                               \
                {                                                                                  \
                    const __m256 a = _mm256_broadcast_ss(As + (size_t)r * lda + k);                \
                    acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);                                 \
                    acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);                                 \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        if (PART && (part & 2)) {                                                                  \
            _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)                                   \
            {                                                                                      \
                store_n(C + (size_t)r * ldc, acc[r][0], w);                                        \
                store_n(C + (size_t)r * ldc + 8, acc[r][1], w - 8);                                \
            }                                                                                      \
            return;                                                                                \
        }                                                                                          \
        __m256 bv0 = _mm256_setzero_ps(), bv1 = _mm256_setzero_ps();                               \
        if (bias) {                                                                                \
            bv0 = w >= 8 ? _mm256_loadu_ps(bias) : _mm256_maskload_ps(bias, lanes(w));             \
            if (w > 8)                                                                             \
                bv1 = w >= 16 ? _mm256_loadu_ps(bias + 8)                                          \
                              : _mm256_maskload_ps(bias + 8, lanes(w - 8));                        \
        }                                                                                          \
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)                                       \
        {                                                                                          \
            const size_t o = (size_t)r * ldc;                                                      \
            __m256 x0 = act8(_mm256_add_ps(acc[r][0], bv0), act);                                  \
            __m256 x1 = act8(_mm256_add_ps(acc[r][1], bv1), act);                                  \
            if (SUM) {                                                                             \
                x0 = add_sum8(x0, Sin + o, Sout ? Sout + o : NULL, w);                             \
                x1 = add_sum8(x1, Sin + o + 8, Sout ? Sout + o + 8 : NULL, w - 8);                 \
            }                                                                                      \
            store_n(C + o, x0, w);                                                                 \
            store_n(C + o + 8, x1, w - 8);                                                         \
        }                                                                                          \
    }

TILE2(6, 0, 0, 0, tile_6)
TILE2(5, 0, 0, 0, tile_5)
TILE2(4, 0, 0, 0, tile_4)
TILE2(3, 0, 0, 0, tile_3)
TILE2(2, 0, 0, 0, tile_2)
TILE2(1, 0, 0, 0, tile_1)
/* The same with the running sum (a separate set, so the plain tiles' code is what it was). */
TILE2(6, 1, 0, 0, tile_6s)
TILE2(5, 1, 0, 0, tile_5s)
TILE2(4, 1, 0, 0, tile_4s)
TILE2(3, 1, 0, 0, tile_3s)
TILE2(2, 1, 0, 0, tile_2s)
TILE2(1, 1, 0, 0, tile_1s)
/* And with A in segments (fn_gemm_seg). */
TILE2(6, 0, 1, 0, tile_6g)
TILE2(5, 0, 1, 0, tile_5g)
TILE2(4, 0, 1, 0, tile_4g)
TILE2(3, 0, 1, 0, tile_3g)
TILE2(2, 0, 1, 0, tile_2g)
TILE2(1, 0, 1, 0, tile_1g)

/* And both (a residual conv's epilogue on rows of taps). */
TILE2(6, 1, 1, 0, tile_6sg)
TILE2(5, 1, 1, 0, tile_5sg)
TILE2(4, 1, 1, 0, tile_4sg)
TILE2(3, 1, 1, 0, tile_3sg)
TILE2(2, 1, 1, 0, tile_2sg)
TILE2(1, 1, 1, 0, tile_1sg)
/* And in parts (fn_gemm_bytes_avx2). */
TILE2(6, 0, 0, 1, tile_6p)
TILE2(5, 0, 0, 1, tile_5p)
TILE2(4, 0, 0, 1, tile_4p)
TILE2(3, 0, 0, 1, tile_3p)
TILE2(2, 0, 0, 1, tile_2p)
TILE2(1, 0, 0, 1, tile_1p)

typedef void (*tile_fn)(int, const float *, int, const float *, int, const float *, fn_act, float *,
                        int, int, const float *, float *, const fn_gemm_seg *, int);

/* Rows of A whose slice (this many bytes at most) stays in L2 while every panel passes over it. */
#define GEMM_A_BLOCK (256 * 1024)

AVX2 void fn_gemm_packed_avx2(int M, int N, int K, const float *A, int lda, const float *Bp,
                              int sliced, const float *bias, fn_act act, float *C, int ldc,
                              const fn_gemm_sum *sum, const fn_gemm_seg *seg)
{
    /* [plain, with the sum, A in segments, both][rows] */
    static const tile_fn tiles[4][7] = {
        {NULL, tile_1, tile_2, tile_3, tile_4, tile_5, tile_6},
        {NULL, tile_1s, tile_2s, tile_3s, tile_4s, tile_5s, tile_6s},
        {NULL, tile_1g, tile_2g, tile_3g, tile_4g, tile_5g, tile_6g},
        {NULL, tile_1sg, tile_2sg, tile_3sg, tile_4sg, tile_5sg, tile_6sg}};
    const tile_fn *small = tiles[(sum ? 1 : 0) + (seg ? 2 : 0)], full = small[6];
    /* A tile may not recompute rows whose sum it updated in place (it would add them twice). */
    const int redo = !(sum && sum->out == sum->in);
    int mc = (int)(GEMM_A_BLOCK / sizeof(float) / (size_t)(K > 0 ? K : 1)) / 6 * 6;
    if (mc < 6) mc = 6;
    for (int m0 = 0; m0 < M; m0 += mc) {
        const int m1 = m0 + mc < M ? m0 + mc : M;
        const float *bp = Bp;
        for (int n0 = 0; n0 < N;) {
            const int pw = fn_panel_width(N - n0), wpad = (pw + 15) / 16 * 16;
            for (int s = 0; s < pw; s += 16) {
                const int w = fn_slice_cols(pw, s);
                const float *bs = bp + fn_panel_index(K, wpad, sliced, 0, s),
                            *bb = bias ? bias + n0 + s : NULL;
                const int ldb = sliced ? 16 : wpad;
/* A tile's rows from m on: its A, C and sums. */
#define AT(m)                                                                                      \
    A + (size_t)(m)*lda, lda, bs, ldb, bb, act, C + (size_t)(m)*ldc + n0 + s, ldc, w,              \
        sum ? sum->in + (size_t)(m)*ldc + n0 + s : NULL,                                           \
        sum && sum->out ? sum->out + (size_t)(m)*ldc + n0 + s : NULL, seg, 0
                int m = m0;
                for (; m + 6 <= m1; m += 6)
                    full(K, AT(m));
                if (m < m1) {
                    /* The leftover rows: one more full tile ending at the last row when the
                     * block has one (it recomputes rows of the tile before with the same sums;
                     * C does not alias A), else a tile of their height. */
                    if (redo && m1 - m0 >= 6)
                        full(K, AT(m1 - 6));
                    else
                        small[m1 - m](K, AT(m));
                }
#undef AT
            }
            bp += (size_t)K * wpad;
            n0 += pw;
        }
    }
}

/* C[M][N] = act(A[M][K] B + bias) with B as the bytes of fn_wpack_bytes (q, and qsm: per panel
 * its columns' scales then offsets), as ops.c's gemm_bytes_avx512 does on AVX-512: panel by panel,
 * K in blocks of BYTES_KC rows, each block decoded (fmaf(q, s, m): the floats the panels hold) into
 * a buffer on the stack that stays in L1 while every row of A passes, the sums carried in C from
 * block to block (the tiles in parts), the bytes prefetched BYTES_PF ahead. For GEMMs of few rows,
 * whose time is the weights' streaming from memory: the bytes are a quarter of the panels' floats.
 * The same products in the same order as fn_gemm_packed_avx2, so the same floats. */
#define BYTES_KC 64
#define BYTES_PF 6144

AVX2 void fn_gemm_bytes_avx2(int M, int N, int K, const float *A, int lda, const unsigned char *q,
                             const float *qsm, const float *bias, fn_act act, float *C, int ldc)
{
    static const tile_fn tiles[7] = {NULL, tile_1p, tile_2p, tile_3p, tile_4p, tile_5p, tile_6p};
    float bp[BYTES_KC * 64] __attribute__((aligned(32)));
    for (int n0 = 0; n0 < N;) {
        const int pw = fn_panel_width(N - n0), ld = (pw + 15) / 16 * 16;
        for (int k0 = 0; k0 < K; k0 += BYTES_KC) {
            const int kc = K - k0 < BYTES_KC ? K - k0 : BYTES_KC;
            const int part = (k0 > 0 ? 1 : 0) | (k0 + kc < K ? 2 : 0);
            const unsigned char *qb = q + (size_t)k0 * ld;
            for (int k = 0; k < kc; k++) {
                _mm_prefetch((const char *)(qb + (size_t)k * ld + BYTES_PF), _MM_HINT_T0);
                for (int j = 0; j < ld; j += 8) {
                    const __m256i b = _mm256_cvtepu8_epi32(
                        _mm_loadl_epi64((const __m128i *)(qb + (size_t)k * ld + j)));
                    _mm256_store_ps(bp + k * ld + j,
                                    _mm256_fmadd_ps(_mm256_cvtepi32_ps(b), _mm256_load_ps(qsm + j),
                                                    _mm256_load_ps(qsm + ld + j)));
                }
            }
            for (int s = 0; s < pw; s += 16) {
                const int w = fn_slice_cols(pw, s);
                const float *bb = bias ? bias + n0 + s : NULL;
                for (int m = 0; m < M; m += 6) {
                    const int mr = M - m < 6 ? M - m : 6;
                    tiles[mr](kc, A + (size_t)m * lda + k0, lda, bp + s, ld, bb, act,
                              C + (size_t)m * ldc + n0 + s, ldc, w, NULL, NULL, NULL, part);
                }
            }
        }
        q += (size_t)K * ld;
        qsm += 2 * ld;
        n0 += pw;
    }
}

/* out[n_out] = in[n_in] W + bias (W [n_in][n_out]): 8 columns at a time, from zero over k by FMA,
 * then the bias, as the AVX-512 GEMM's one-row tiles compute it (ops.c fn_dense), so the same
 * floats; OpenBLAS's sgemv, which ran here before, sums in an order of its own. */
AVX2 void fn_dense_avx2(const float *in, int n_in, const float *w, const float *bias, int n_out,
                        float *out)
{
    for (int j = 0; j < n_out; j += 8) {
        const int n = n_out - j < 8 ? n_out - j : 8;
        const __m256i m = lanes(n);
        __m256 acc = _mm256_setzero_ps();
        for (int k = 0; k < n_in; k++) {
            const float *p = w + (size_t)k * n_out + j;
            acc = _mm256_fmadd_ps(_mm256_broadcast_ss(in + k),
                                  n == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m), acc);
        }
        /* + 0 without a bias, as there (it turns a sum of -0 into +0) */
        acc = _mm256_add_ps(acc, bias ? load_n(bias + j, n) : _mm256_setzero_ps());
        store_n(out + j, acc, n);
    }
}

/* ---- Depthwise 3x3 ---- */

/* One output vector at a border (taps outside the input skipped), 8 channels from c0 (the first
 * n): unrolled, plain loads for a full block (as the AVX-512 kernel's dw3x3_edge). r: the three
 * input rows, fn_dw_zero for those outside the image (skipped). */
AVX2 static inline __m256 dw_edge(const float *const r[3], int c0, int iw, int c, const __m256 *wk,
                                  __m256 bv, __m256i m, int n, int x0)
{
    __m256 acc = bv;
    _Pragma("GCC unroll 3") for (int ky = 0; ky < 3; ky++)
    {
        if (r[ky] == fn_dw_zero) continue;
        _Pragma("GCC unroll 3") for (int kx = 0; kx < 3; kx++)
        {
            if (x0 + kx < 0 || x0 + kx >= iw) continue;
            const float *q = r[ky] + c0 + (size_t)(x0 + kx) * c;
            const __m256 v = n == 8 ? _mm256_loadu_ps(q) : _mm256_maskload_ps(q, m);
            acc = _mm256_fmadd_ps(v, wk[ky * 3 + kx], acc);
        }
    }
    return acc;
}

/* NOUT outputs of one input row at stride S: input column j (of q + j * c) feeds output j / S
 * with the row's first weight (j even or S == 1), output (j - 1) / S with the second and output
 * (j - 2) / S with the third, so each output gets its three taps in order. */
#define DW_ROW(S, NOUT, a, q, w3)                                                                  \
    do {                                                                                           \
        const __m256 wa_ = _mm256_loadu_ps(w3), wb_ = _mm256_loadu_ps((w3) + c),                   \
                     wc_ = _mm256_loadu_ps((w3) + 2 * c);                                          \
        const float *p_ = (q);                                                                     \
        _Pragma("GCC unroll 20") for (int j_ = 0; j_ < (NOUT - 1) * (S) + 3; j_++)                 \
        {                                                                                          \
            /* One pointer stepping a column at a time, opaque to the optimiser: otherwise GCC     \
             * keeps every column's address as a loop invariant, on the stack. */                  \
            __asm__("" : "+r"(p_));                                                                \
            const __m256 x_ = _mm256_loadu_ps(p_);                                                 \
            p_ += c;                                                                               \
            if (j_ % (S) == 0 && j_ / (S) < NOUT)                                                  \
                a[j_ / (S)] = _mm256_fmadd_ps(x_, wa_, a[j_ / (S)]);                               \
            if (j_ >= 1 && (j_ - 1) % (S) == 0 && (j_ - 1) / (S) < NOUT)                           \
                a[(j_ - 1) / (S)] = _mm256_fmadd_ps(x_, wb_, a[(j_ - 1) / (S)]);                   \
            if (j_ >= 2 && (j_ - 2) % (S) == 0 && (j_ - 2) / (S) < NOUT)                           \
                a[(j_ - 2) / (S)] = _mm256_fmadd_ps(x_, wc_, a[(j_ - 2) / (S)]);                   \
        }                                                                                          \
    } while (0)

/* NOUT interior outputs from ox on (input column ox * S - pl) of the 8-channel block at offset
 * c0: from the bias, the three input rows' taps in order, then the activation. Reads r0, r1, r2
 * (the input rows), w, bias, c, pl, act and writes orow, all in scope. */
#define DW_RUN(S, NOUT)                                                                            \
    do {                                                                                           \
        __m256 a[NOUT];                                                                            \
        const __m256 bv_ = bias ? _mm256_loadu_ps(bias + c0) : _mm256_setzero_ps();                \
        _Pragma("GCC unroll 8") for (int j = 0; j < NOUT; j++) a[j] = bv_;                         \
        const size_t off = (size_t)(ox * (S)-pl) * c + c0;                                         \
        DW_ROW(S, NOUT, a, r0 + off, w + c0);                                                      \
        DW_ROW(S, NOUT, a, r1 + off, w + 3 * (size_t)c + c0);                                      \
        DW_ROW(S, NOUT, a, r2 + off, w + 6 * (size_t)c + c0);                                      \
        float *o_ = orow + (size_t)ox * c + c0;                                                    \
        _Pragma("GCC unroll 8") for (int j = 0; j < NOUT; j++)                                     \
            _mm256_storeu_ps(o_ + (size_t)j * c, act8(a[j], act));                                 \
    } while (0)

/* DW_ROW for a run whose columns may reach outside the row (`row`: column 0 of the input row at
 * the channel block; xl, the run's left column, and iw in scope): such columns read zeros, so a
 * missing tap adds zero (the same sum as skipping it, as ops.c's DW_COL). */
#define DW_ROW_EDGE(S, NOUT, a, row, w3)                                                           \
    do {                                                                                           \
        const __m256 wa_ = _mm256_loadu_ps(w3), wb_ = _mm256_loadu_ps((w3) + c),                   \
                     wc_ = _mm256_loadu_ps((w3) + 2 * c);                                          \
        _Pragma("GCC unroll 20") for (int j_ = 0; j_ < (NOUT - 1) * (S) + 3; j_++)                 \
        {                                                                                          \
            const __m256 x_j = (unsigned)(xl + j_) < (unsigned)iw                                  \
                                   ? _mm256_loadu_ps((row) + (ptrdiff_t)(xl + j_) * c)             \
                                   : _mm256_setzero_ps();                                          \
            if (j_ % (S) == 0 && j_ / (S) < NOUT)                                                  \
                a[j_ / (S)] = _mm256_fmadd_ps(x_j, wa_, a[j_ / (S)]);                              \
            if (j_ >= 1 && (j_ - 1) % (S) == 0 && (j_ - 1) / (S) < NOUT)                           \
                a[(j_ - 1) / (S)] = _mm256_fmadd_ps(x_j, wb_, a[(j_ - 1) / (S)]);                  \
            if (j_ >= 2 && (j_ - 2) % (S) == 0 && (j_ - 2) / (S) < NOUT)                           \
                a[(j_ - 2) / (S)] = _mm256_fmadd_ps(x_j, wc_, a[(j_ - 2) / (S)]);                  \
        }                                                                                          \
    } while (0)

/* One output row of six or seven outputs at stride S, its full 8-channel blocks (c0 < cfull), as
 * one run of eight from column 0 whose first ow outputs are stored (ops.c's DW_ROW_RUNS for such
 * rows): the columns it reads outside the row are zeros and an input row outside the image (NULL)
 * is skipped, so the border outputs take the eight-way path too; the same sums as the AVX-512
 * runs. Where the interior took a run of four and one output and each border output a chain of
 * nine dependent FMAs, this takes 0.46-0.56 of the time on 7x7 and 6x6 maps at stride 1 and 0.8
 * on 14x14 and 13x13 ones at stride 2 (standalone, interleaved, a Zen 3 core). Wider
 * rows stay with the runs below: in runs of eight only (the last one pulled back to end at the
 * row's end, as the AVX-512 kernel does) they were slower there, 28x28x64 1.15x and 64x64x256 at
 * stride 2 1.5x the time: the OoO core overlaps the single outputs of consecutive channel blocks,
 * and the recomputed outputs and the border runs' tested loads cost more than they saved. One
 * function per stride and activation, not inlined (as ops.c's, for the same reasons). */
#define DW_RUNS_AVX2(S, ACT, NAME)                                                                 \
    AVX2 __attribute__((noinline)) static void NAME(                                               \
        const float *r0, const float *r1, const float *r2, int iw, int c, const float *w,          \
        const float *bias, int pl, float *orow, int ow, int cfull)                                 \
    {                                                                                              \
        const int xl = -pl;                                                                        \
        const int inside = xl >= 0 && xl + 7 * (S) + 2 < iw;                                       \
        const float *q[3] = {r0, r1, r2};                                                          \
        for (int c0 = 0; c0 < cfull; c0 += 8) {                                                    \
            __m256 a[8];                                                                           \
            const __m256 bv_ = bias ? _mm256_loadu_ps(bias + c0) : _mm256_setzero_ps();            \
            _Pragma("GCC unroll 8") for (int j = 0; j < 8; j++) a[j] = bv_;                        \
            _Pragma("GCC unroll 3") for (int ky = 0; ky < 3; ky++)                                 \
            {                                                                                      \
                if (!q[ky]) continue;                                                              \
                const float *w3 = w + 3 * (size_t)ky * c + c0;                                     \
                if (inside)                                                                        \
                    DW_ROW(S, 8, a, q[ky] + (size_t)xl * c + c0, w3);                              \
                else                                                                               \
                    DW_ROW_EDGE(S, 8, a, q[ky] + c0, w3);                                          \
            }                                                                                      \
            float *o = orow + c0;                                                                  \
            _Pragma("GCC unroll 6") for (int j = 0; j < 6; j++)                                    \
                _mm256_storeu_ps(o + (size_t)j * c, act8(a[j], ACT));                              \
            if (ow > 6) _mm256_storeu_ps(o + 6 * (size_t)c, act8(a[6], ACT));                      \
        }                                                                                          \
    }
DW_RUNS_AVX2(1, FN_ACT_NONE, dw_runs_1n)
DW_RUNS_AVX2(1, FN_ACT_RELU, dw_runs_1r)
DW_RUNS_AVX2(1, FN_ACT_RELU6, dw_runs_1r6)
DW_RUNS_AVX2(1, FN_ACT_LEAKY, dw_runs_1l)
DW_RUNS_AVX2(2, FN_ACT_NONE, dw_runs_2n)
DW_RUNS_AVX2(2, FN_ACT_RELU, dw_runs_2r)
DW_RUNS_AVX2(2, FN_ACT_RELU6, dw_runs_2r6)
DW_RUNS_AVX2(2, FN_ACT_LEAKY, dw_runs_2l)
typedef void (*dw_runs_fn)(const float *, const float *, const float *, int, int, const float *,
                           const float *, int, float *, int, int);
/* [stride - 1][activation] */
static const dw_runs_fn dw_runs[2][4] = {{dw_runs_1n, dw_runs_1r, dw_runs_1r6, dw_runs_1l},
                                         {dw_runs_2n, dw_runs_2r, dw_runs_2r6, dw_runs_2l}};
/* Rows of this many outputs and seven go through dw_runs (ops.c's DW_RUN_MIN_OW). */
#define DW_RUN_MIN_OW 6

/* DW_RUN for the two 8-channel blocks of a cache line (c0, c0 + 8), NOUT outputs: each input
 * row's columns through the first block, then the same columns (still in L1) through the second,
 * so each line is read from L2 once per run. For maps of DW_PAIR_MIN_C channels or more at stride
 * 1: their columns are 2 KB or more apart (SSD's 32x32x512 and 16x16x1024 maps), so a run of
 * eight's thirty lines (ten columns, three rows) fall in one or two of the L1's 64 sets, which
 * hold eight lines each, and were evicted before the second block of their line read them (the
 * same layer with 520 channels ran 1.45x faster, with 1032 instead of 1024 1.85x). Four outputs a
 * pair: 0.72-0.75 of the time of runs of eight there (standalone, interleaved, a Zen 3 core);
 * 0.96 at 256 channels and slower below, so those keep the runs of eight. */
#define DW_PAIR_MIN_C 512
#define DW_RUN_PAIR(S, NOUT)                                                                       \
    do {                                                                                           \
        __m256 a[NOUT], b[NOUT];                                                                   \
        const __m256 ba_ = bias ? _mm256_loadu_ps(bias + c0) : _mm256_setzero_ps(),                \
                     bb_ = bias ? _mm256_loadu_ps(bias + c0 + 8) : _mm256_setzero_ps();            \
        _Pragma("GCC unroll 8") for (int j = 0; j < NOUT; j++) a[j] = ba_, b[j] = bb_;             \
        const size_t off = (size_t)(ox * (S)-pl) * c + c0;                                         \
        DW_ROW(S, NOUT, a, r0 + off, w + c0);                                                      \
        DW_ROW(S, NOUT, b, r0 + off + 8, w + c0 + 8);                                              \
        DW_ROW(S, NOUT, a, r1 + off, w + 3 * (size_t)c + c0);                                      \
        DW_ROW(S, NOUT, b, r1 + off + 8, w + 3 * (size_t)c + c0 + 8);                              \
        DW_ROW(S, NOUT, a, r2 + off, w + 6 * (size_t)c + c0);                                      \
        DW_ROW(S, NOUT, b, r2 + off + 8, w + 6 * (size_t)c + c0 + 8);                              \
        float *o_ = orow + (size_t)ox * c + c0;                                                    \
        _Pragma("GCC unroll 8") for (int j = 0; j < NOUT; j++)                                     \
        {                                                                                          \
            _mm256_storeu_ps(o_ + (size_t)j * c, act8(a[j], act));                                 \
            _mm256_storeu_ps(o_ + (size_t)j * c + 8, act8(b[j], act));                             \
        }                                                                                          \
    } while (0)

/* The border outputs of one output row ([0, lo) and [hi, ow)) by dw_edge, and every output of a
 * partial last channel block (its masked taps one output at a time), channel block by block from
 * c_begin (only the partial block when dw_runs took the full ones). */
AVX2 static void dw_row_edges(int iw, int c, int c_begin, const float *w, const float *bias,
                              int stride, int pl, fn_act act, float *orow, int ow, int lo, int hi,
                              const float *const r[3])
{
    for (int c0 = c_begin; c0 < c; c0 += 8) {
        const int n = c - c0 < 8 ? c - c0 : 8;
        const __m256i m = lanes(n);
        __m256 wk[9];
        for (int k = 0; k < 9; k++)
            wk[k] = _mm256_maskload_ps(w + (size_t)k * c + c0, m);
        const __m256 bv = bias ? _mm256_maskload_ps(bias + c0, m) : _mm256_setzero_ps();
        for (int ox = 0; ox < ow; ox++) {
            if (ox == lo && n == 8) ox = hi; /* full blocks' interior: dw3x3 runs */
            if (ox >= ow) break;
            __m256 acc;
            if (ox < lo || ox >= hi) {
                acc = dw_edge(r, c0, iw, c, wk, bv, m, n, ox * stride - pl);
            } else {
                const size_t off = (size_t)(ox * stride - pl) * c + c0;
                acc = bv;
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++)
                        acc = _mm256_fmadd_ps(_mm256_maskload_ps(r[ky] + off + (size_t)kx * c, m),
                                              wk[ky * 3 + kx], acc);
            }
            store_n(orow + (size_t)ox * c + c0, act8(acc, act), n);
        }
    }
}

/* Output rows one after the other; within a row, the interior outputs in runs (eight at stride 1,
 * four at stride 2), each run through every full channel block before the next run, so the run's
 * input columns are read front to back along their channels. The other order (every run of one
 * channel block, then the next block, as the AVX-512 kernel does) ran these layers 1.3-1.7x
 * slower on an AMD EPYC (Zen 3 class) VM: ten columns x three rows a whole pixel apart each step
 * (bench_vision --layers: SSD's depthwise layers 20-25 ms against 12-14 ms). Rows of six and
 * seven outputs: one run of eight (dw_runs), borders included; maps of 512 channels or more at
 * stride 1: runs of four through both blocks of a cache line (DW_RUN_PAIR). Input rows outside
 * the image read fn_dw_zero (only when it is wide enough: `full`). */
AVX2 void fn_dw3x3_avx2(const float *in, int ring, int ih, int iw, int c, const float *w,
                        const float *bias, int stride, int pt, int pl, fn_act act, float *out,
                        int oy_begin, int oy_end, int ow)
{
    int ox_lo = (pl + stride - 1) / stride,
        ox_hi = iw - 3 + pl >= 0 ? (iw - 3 + pl) / stride + 1 : 0;
    if (ox_hi > ow) ox_hi = ow;
    if (ox_lo > ox_hi) ox_lo = ox_hi;
    const size_t rs = (size_t)iw * c;
    const int cfull = c / 8 * 8;
    for (int oy = oy_begin; oy < oy_end; oy++) {
        const int y0 = oy * stride - pt;
        float *orow = out + (size_t)(oy - oy_begin) * ow * c;
        const int full = (y0 >= 0 && y0 + 3 <= ih) || rs <= FN_DW_ZERO_FLOATS;
        const int lo = full ? ox_lo : ow, hi = full ? ox_hi : ow;
        const float *r[3];
        for (int k = 0; k < 3; k++)
            r[k] = y0 + k >= 0 && y0 + k < ih ? fn_dw_row(in, ring, rs, y0 + k) : fn_dw_zero;
        if (ow >= DW_RUN_MIN_OW && ow < 8 && cfull > 0) {
            dw_runs[stride - 1][act](
                r[0] == fn_dw_zero ? NULL : r[0], r[1] == fn_dw_zero ? NULL : r[1],
                r[2] == fn_dw_zero ? NULL : r[2], iw, c, w, bias, pl, orow, ow, cfull);
            if (cfull < c)
                dw_row_edges(iw, c, cfull, w, bias, stride, pl, act, orow, ow, lo, hi, r);
            continue;
        }
        dw_row_edges(iw, c, 0, w, bias, stride, pl, act, orow, ow, lo, hi, r);
        const float *r0 = r[0], *r1 = r[1], *r2 = r[2];
        if (stride == 1 && c >= DW_PAIR_MIN_C && c % 16 == 0) {
            for (int ox = lo; ox < hi;) {
                if (hi - ox >= 4) {
                    for (int c0 = 0; c0 < cfull; c0 += 16)
                        DW_RUN_PAIR(1, 4);
                    ox += 4;
                } else {
                    for (int c0 = 0; c0 < cfull; c0 += 8)
                        DW_RUN(1, 1);
                    ox += 1;
                }
            }
            continue;
        }
        for (int ox = lo; ox < hi;) {
            const int left = hi - ox;
            if (stride == 1 && left >= 8) {
                for (int c0 = 0; c0 < cfull; c0 += 8)
                    DW_RUN(1, 8);
                ox += 8;
            } else if (left >= 4) {
                for (int c0 = 0; c0 < cfull; c0 += 8)
                    if (stride == 1)
                        DW_RUN(1, 4);
                    else
                        DW_RUN(2, 4);
                ox += 4;
            } else {
                for (int c0 = 0; c0 < cfull; c0 += 8)
                    if (stride == 1)
                        DW_RUN(1, 1);
                    else
                        DW_RUN(2, 1);
                ox += 1;
            }
        }
    }
}

/* One output pixel's window, channels [j0, c) in vectors of 8 (two at a time while they last),
 * the running max or sum in registers over every tap before the one store, then the rest one by
 * one. IS_MAX a constant at each call, so each loop is branch-free. */
AVX2 static inline void pool_px(const float *in, int iw, int c, int y0, int y1, int x0, int x1,
                                int is_max, float inv, float *o)
{
    const __m256 init = _mm256_set1_ps(is_max ? -FLT_MAX : 0.0f), vinv = _mm256_set1_ps(inv);
    int j = 0;
    for (; j + 16 <= c; j += 16) {
        __m256 a0 = init, a1 = init;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) {
                const float *p = in + ((size_t)y * iw + x) * c + j;
                const __m256 v0 = _mm256_loadu_ps(p), v1 = _mm256_loadu_ps(p + 8);
                /* max(v, a) is v > a ? v : a, as the generic loop computes it */
                a0 = is_max ? _mm256_max_ps(v0, a0) : _mm256_add_ps(a0, v0);
                a1 = is_max ? _mm256_max_ps(v1, a1) : _mm256_add_ps(a1, v1);
            }
        _mm256_storeu_ps(o + j, is_max ? a0 : _mm256_mul_ps(a0, vinv));
        _mm256_storeu_ps(o + j + 8, is_max ? a1 : _mm256_mul_ps(a1, vinv));
    }
    for (; j + 8 <= c; j += 8) {
        __m256 a0 = init;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) {
                const __m256 v0 = _mm256_loadu_ps(in + ((size_t)y * iw + x) * c + j);
                a0 = is_max ? _mm256_max_ps(v0, a0) : _mm256_add_ps(a0, v0);
            }
        _mm256_storeu_ps(o + j, is_max ? a0 : _mm256_mul_ps(a0, vinv));
    }
    for (; j < c; j++) {
        float a = is_max ? -FLT_MAX : 0.0f;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) {
                const float v = in[((size_t)y * iw + x) * c + j];
                a = is_max ? (v > a ? v : a) : a + v;
            }
        o[j] = is_max ? a : a * inv;
    }
}

AVX2 void fn_pool_avx2(const float *in, int ih, int iw, int c, int k, int stride, int pt, int pl,
                       int is_max, float *out, int oh, int ow)
{
    for (int oy = 0; oy < oh; oy++) {
        const int yt = oy * stride - pt, y0 = yt < 0 ? 0 : yt, y1 = yt + k > ih ? ih : yt + k;
        for (int ox = 0; ox < ow; ox++) {
            const int xl = ox * stride - pl, x0 = xl < 0 ? 0 : xl, x1 = xl + k > iw ? iw : xl + k;
            const int count = (y1 > y0 ? y1 - y0 : 0) * (x1 > x0 ? x1 - x0 : 0);
            /* An average over no tap stays 0, as in the generic loop. */
            const float inv = count > 0 ? 1.0f / (float)count : 1.0f;
            float *o = out + ((size_t)oy * ow + ox) * c;
            if (is_max)
                pool_px(in, iw, c, y0, y1, x0, x1, 1, inv, o);
            else
                pool_px(in, iw, c, y0, y1, x0, x1, 0, inv, o);
        }
    }
}

#else
int fn_cpu_has_avx2(void)
{
    return 0;
}
void fn_gemm_packed_avx2(int M, int N, int K, const float *A, int lda, const float *Bp, int sliced,
                         const float *bias, fn_act act, float *C, int ldc, const fn_gemm_sum *sum,
                         const fn_gemm_seg *seg)
{
    (void)M, (void)N, (void)K, (void)A, (void)lda, (void)Bp, (void)sliced, (void)bias, (void)act;
    (void)C;
    (void)ldc, (void)sum, (void)seg;
}
void fn_gemm_bytes_avx2(int M, int N, int K, const float *A, int lda, const unsigned char *q,
                        const float *qsm, const float *bias, fn_act act, float *C, int ldc)
{
    (void)M, (void)N, (void)K, (void)A, (void)lda, (void)q, (void)qsm, (void)bias, (void)act;
    (void)C, (void)ldc;
}
void fn_dense_avx2(const float *in, int n_in, const float *w, const float *bias, int n_out,
                   float *out)
{
    (void)in, (void)n_in, (void)w, (void)bias, (void)n_out, (void)out;
}
void fn_dw3x3_avx2(const float *in, int ring, int ih, int iw, int c, const float *w,
                   const float *bias, int stride, int pt, int pl, fn_act act, float *out,
                   int oy_begin, int oy_end, int ow)
{
    (void)in, (void)ring, (void)ih, (void)iw, (void)c, (void)w, (void)bias, (void)stride, (void)pt;
    (void)pl, (void)act, (void)out, (void)oy_begin, (void)oy_end, (void)ow;
}
void fn_pool_avx2(const float *in, int ih, int iw, int c, int k, int stride, int pt, int pl,
                  int is_max, float *out, int oh, int ow)
{
    (void)in, (void)ih, (void)iw, (void)c, (void)k, (void)stride, (void)pt, (void)pl, (void)is_max;
    (void)out, (void)oh, (void)ow;
}
#endif
