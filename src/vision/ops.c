/* ops.c: the tensor kernels of ops.h (HWC float32, TensorFlow padding rules).
 *
 * Convolutions are GEMMs: an im2col matrix [oh*ow][kh*kw*cin], built in strips of output rows
 * (skipped for 1x1 stride-1 convs, whose input already is that matrix; for 3x3 stride-1 convs on
 * the vector kernels only each input row's taps, read in three segments: conv3_rows; none for
 * the pixels of a wide interior, whose taps are read in the input: conv_rows), times the
 * HWIO weights viewed as [kh*kw*cin][cout]. fn_sepconv chains a depthwise 3x3 and a pointwise
 * GEMM strip by strip so the intermediate map stays in cache; fn_sepconv_sum_w adds a dense
 * block's running sum in the GEMM's epilogue; fn_sepchain_w chains across a head conv and
 * several such blocks, each keeping only a window of rows of its output; fn_conv2d_pool_w and
 * fn_sepconv_pool_w pool a conv's output strip by strip. The element-wise kernels keep the channel
 * loop innermost and contiguous so the compiler vectorises them (the pools have their own AVX2
 * version, fn_pool_avx2).
 *
 * Dispatch: on a CPU with AVX-512 the GEMM and the 3x3 depthwise conv run the AVX-512 kernels
 * below (bias and activation fused into their only store; 2-5x faster than OpenBLAS 0.3.21 on
 * these thin matrices, which it runs with its Haswell kernels on Zen 5); on one with AVX2 and FMA
 * only, the packed GEMM and the depthwise conv of ops_avx2.c (the same floats); everywhere else
 * OpenBLAS sgemm (single-threaded) and the generic loops here.
 *
 * What must stay true: results equal TensorFlow's (same padding split, same pooling divisor, same
 * bilinear source coordinates); nothing here allocates. */
#include "vision/ops.h"
#include "vision/gemm_amx.h"
#include "vision/gemm_i16.h"
#include "vision/ops_isa.h"

#include <cblas.h>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#endif
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int fn_out_size(int in, int k, int stride, fn_pad pad)
{
    if (pad == FN_PAD_SAME) return (in + stride - 1) / stride;
    return (in - k) / stride + 1;
}

/* Padding before (top/left) along one axis, as TensorFlow splits it. */
static int pad_before(int in, int k, int stride, fn_pad pad)
{
    if (pad != FN_PAD_SAME) return 0;
    int out = fn_out_size(in, k, stride, pad);
    int total = (out - 1) * stride + k - in;
    if (total < 0) total = 0;
    return total / 2;
}

/* The generic loops are also compiled for AVX2+FMA machines (x86-64-v3) and picked at load time
 * (GCC function multiversioning), so CPUs without AVX-512 still get 256-bit vectors. FMA
 * contraction stays off (-std=c11), so every clone computes the same floats. The clone is named
 * by its feature level: GCC 12's resolver for "arch=haswell" tests the CPU's model (an Intel
 * Haswell) rather than its features, so no AMD or later Intel core ever ran that clone. */
/* Not under ThreadSanitizer: a clone's resolver (an ifunc) runs while the dynamic loader relocates,
 * before TSan's runtime is up, and crashes there; the TSan build then runs the default clone. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__) &&       \
    !defined(__SANITIZE_THREAD__)
#define GENERIC_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define GENERIC_CLONES
#endif

static inline float act1(float x, fn_act act)
{
    switch (act) {
    case FN_ACT_RELU:
        return x > 0.0f ? x : 0.0f;
    case FN_ACT_RELU6:
        return x > 0.0f ? (x < 6.0f ? x : 6.0f) : 0.0f;
    case FN_ACT_LEAKY:
        return x < 0.0f ? 0.1f * x : x;
    default:
        return x;
    }
}

/* y[i] = act(y[i] + bias[i % c]) over n rows of c channels: one simple loop per case so the
 * compiler vectorises each. */
GENERIC_CLONES static void bias_act_rows(float *restrict y, size_t rows, int c,
                                         const float *restrict bias, fn_act act)
{
    if (bias)
        for (size_t r = 0; r < rows; r++) {
            float *restrict p = y + r * (size_t)c;
            for (int j = 0; j < c; j++)
                p[j] += bias[j];
        }
    const size_t n = rows * (size_t)c;
    switch (act) {
    case FN_ACT_RELU:
        for (size_t i = 0; i < n; i++)
            y[i] = y[i] > 0.0f ? y[i] : 0.0f;
        break;
    case FN_ACT_RELU6:
        for (size_t i = 0; i < n; i++) {
            float v = y[i] > 0.0f ? y[i] : 0.0f;
            y[i] = v < 6.0f ? v : 6.0f;
        }
        break;
    case FN_ACT_LEAKY:
        for (size_t i = 0; i < n; i++)
            y[i] = y[i] < 0.0f ? 0.1f * y[i] : y[i];
        break;
    default:
        break;
    }
}

/* ---- Packed weights (fn_wpack) ----
 *
 * A layer's weights are copied once, at model load, into the column panels ops_isa.h describes
 * (fn_panel_width). The kernel then reads B as one sequential stream with aligned, unmasked loads,
 * where the in-place path reads rows a whole weight row apart (the B loads were its hottest
 * instructions: cache and TLB misses on every k). A 16-wide panel does one FMA per broadcast in
 * the AVX-512 tiles, half the rate, hence 64 columns as one 64-wide panel (a 6x4 tile: 10 loads
 * for 24 FMAs, where two 32-wide panels' 12x2 tiles took 14 and read A twice); a partial last
 * vector is masked only at the store. */
/* Floats of the packed copy of a [k][n] matrix. */
static size_t packed_floats(int k, int n)
{
    size_t f = 0;
    for (int n0 = 0; n0 < n;) {
        int w = fn_panel_width(n - n0);
        f += (size_t)k * (size_t)((w + 15) / 16 * 16);
        n0 += w;
    }
    return f;
}

/* ---- AVX-512 kernels ------------------------------------------------------------------------
 *
 * Compiled with per-function target attributes, so this file builds with the project's baseline
 * flags and the binary still runs on any x86-64: they are called only when use_avx512() says the
 * CPU has AVX-512 (F, VL, DQ, BW).
 *
 * - gemm_avx512: C[M][N] = act(A[M][K] B[K][N] + bias), row-major. An 8x48 tile keeps 24
 *   accumulators in registers; the epilogue adds the bias and applies the activation before the
 *   only store. Leftover rows take 4- and 1-row tiles; a partial last column vector uses masks,
 *   and only then (masked loads/stores measured several times slower than plain ones on Zen 5).
 *   B is read in place, or for wide layers packed block by block on the stack (see below).
 * - dw3x3_avx512: depthwise 3x3 (stride 1 or 2, any padding), 16 channels per vector, the nine
 *   weight vectors in registers, eight outputs of a row at a time (dw_runs; rows of six and seven
 *   one run, their outputs stored; narrower rows four and one at a time), bias and activation
 *   fused.
 * Both differ from the generic path only by float rounding (FMA); test_ops checks both. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#define AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,fma")))

AVX512 static inline __m512 act_v(__m512 x, fn_act act)
{
    switch (act) {
    case FN_ACT_RELU:
        return _mm512_max_ps(x, _mm512_setzero_ps());
    case FN_ACT_RELU6:
        return _mm512_min_ps(_mm512_max_ps(x, _mm512_setzero_ps()), _mm512_set1_ps(6.0f));
    case FN_ACT_LEAKY: {
        __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
        return _mm512_mask_mul_ps(x, neg, x, _mm512_set1_ps(0.1f));
    }
    default:
        return x;
    }
}

static inline __mmask16 tail_mask(int n)
{
    return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}

/* MR rows x NV vectors over K: the accumulators start from zero or, with `accumulate`, from C (an
 * earlier block of K); with `finish` the bias and activation are applied before the store. With
 * MASKED the last vector is partial (m_last); otherwise every access is a plain unmasked one,
 * because masked loads and stores are several times slower on some cores (measured on Zen 5). */
#define LDM(masked, v, nv, mask, ptr)                                                              \
    (((masked) && (v) == (nv)-1) ? _mm512_maskz_loadu_ps(mask, ptr) : _mm512_loadu_ps(ptr))
#define STM(masked, v, nv, mask, ptr, x)                                                           \
    do {                                                                                           \
        if ((masked) && (v) == (nv)-1)                                                             \
            _mm512_mask_storeu_ps(ptr, mask, x);                                                   \
        else                                                                                       \
            _mm512_storeu_ps(ptr, x);                                                              \
    } while (0)

#define GEMM_TILE(MR, NV, MASKED, NAME)                                                            \
    AVX512 static void NAME(int K, const float *A, int lda, const float *B, int ldb,               \
                            const float *bias, fn_act act, float *C, int ldc, __mmask16 m_last,    \
                            int accumulate, int finish)                                            \
    {                                                                                              \
        __m512 acc[MR][NV];                                                                        \
        _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++)                                      \
            _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++) acc[r][v] =                      \
                accumulate ? LDM(MASKED, v, NV, m_last, C + (size_t)r * ldc + v * 16)              \
                           : _mm512_setzero_ps();                                                  \
        for (int k = 0; k < K; k++) {                                                              \
            __m512 b[NV];                                                                          \
            _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++) b[v] =                           \
                LDM(MASKED, v, NV, m_last, B + (size_t)k * ldb + v * 16);                          \
            _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++)                                  \
            {                                                                                      \
                __m512 a = _mm512_set1_ps(A[(size_t)r * lda + k]);                                 \
                _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++) acc[r][v] =                  \
                    _mm512_fmadd_ps(a, b[v], acc[r][v]);                                           \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++)                                      \
        {                                                                                          \
            __m512 bv = (finish && bias) ? LDM(MASKED, v, NV, m_last, bias + v * 16)               \
                                         : _mm512_setzero_ps();                                    \
            _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++)                                  \
            {                                                                                      \
                __m512 x = acc[r][v];                                                              \
                if (finish) x = act_v(_mm512_add_ps(x, bv), act);                                  \
                STM(MASKED, v, NV, m_last, C + (size_t)r * ldc + v * 16, x);                       \
            }                                                                                      \
        }                                                                                          \
    }

GEMM_TILE(8, 3, 0, tile_8x3f)
GEMM_TILE(8, 2, 0, tile_8x2f)
GEMM_TILE(8, 1, 0, tile_8x1f)
GEMM_TILE(4, 3, 0, tile_4x3f)
GEMM_TILE(4, 2, 0, tile_4x2f)
GEMM_TILE(4, 1, 0, tile_4x1f)
GEMM_TILE(1, 3, 0, tile_1x3f)
GEMM_TILE(1, 2, 0, tile_1x2f)
GEMM_TILE(1, 1, 0, tile_1x1f)
GEMM_TILE(8, 3, 1, tile_8x3m)
GEMM_TILE(8, 2, 1, tile_8x2m)
GEMM_TILE(8, 1, 1, tile_8x1m)
GEMM_TILE(4, 3, 1, tile_4x3m)
GEMM_TILE(4, 2, 1, tile_4x2m)
GEMM_TILE(4, 1, 1, tile_4x1m)
GEMM_TILE(1, 3, 1, tile_1x3m)
GEMM_TILE(1, 2, 1, tile_1x2m)
GEMM_TILE(1, 1, 1, tile_1x1m)
GEMM_TILE(6, 4, 0, tile_6x4f)
GEMM_TILE(4, 4, 0, tile_4x4f)
GEMM_TILE(1, 4, 0, tile_1x4f)
GEMM_TILE(6, 4, 1, tile_6x4m)
GEMM_TILE(4, 4, 1, tile_4x4m)
GEMM_TILE(1, 4, 1, tile_1x4m)

typedef void (*tile_fn)(int, const float *, int, const float *, int, const float *, fn_act, float *,
                        int, __mmask16, int, int);

/* Rows of A against one panel of B (w columns, nv vectors): 8-row tiles (6-row for 4 vectors), then
 * a 4-row tile, then single rows. */
AVX512 static void gemm_rows(int M, int K, const float *A, int lda, const float *B, int ldb,
                             const float *bias, fn_act act, float *C, int ldc, int w,
                             int accumulate, int finish)
{
    /* [masked][vectors]: the masked variants only when the panel's width is not a multiple of 16 */
    static const tile_fn t8[2][5] = {{NULL, tile_8x1f, tile_8x2f, tile_8x3f, tile_6x4f},
                                     {NULL, tile_8x1m, tile_8x2m, tile_8x3m, tile_6x4m}};
    static const tile_fn t4[2][5] = {{NULL, tile_4x1f, tile_4x2f, tile_4x3f, tile_4x4f},
                                     {NULL, tile_4x1m, tile_4x2m, tile_4x3m, tile_4x4m}};
    static const tile_fn t1[2][5] = {{NULL, tile_1x1f, tile_1x2f, tile_1x3f, tile_1x4f},
                                     {NULL, tile_1x1m, tile_1x2m, tile_1x3m, tile_1x4m}};
    const int nv = (w + 15) / 16, mk = w % 16 != 0, mr = nv == 4 ? 6 : 8;
    const __mmask16 ml = tail_mask(w - (nv - 1) * 16);
    int m = 0;
    for (; m + mr <= M; m += mr)
        t8[mk][nv](K, A + (size_t)m * lda, lda, B, ldb, bias, act, C + (size_t)m * ldc, ldc, ml,
                   accumulate, finish);
    for (; m + 4 <= M; m += 4)
        t4[mk][nv](K, A + (size_t)m * lda, lda, B, ldb, bias, act, C + (size_t)m * ldc, ldc, ml,
                   accumulate, finish);
    for (; m < M; m++)
        t1[mk][nv](K, A + (size_t)m * lda, lda, B, ldb, bias, act, C + (size_t)m * ldc, ldc, ml,
                   accumulate, finish);
}

/* Two ways through B. Wide layers with many rows (N >= 256, M >= 64: the last MobileNet layers)
 * cut K into blocks of GEMM_KC and copy each block of a 48-column panel into a contiguous buffer
 * on the stack (48 KB) first: the kernel then streams one dense block that stays in L1/L2 while
 * every row of A passes, instead of rows a whole weight row apart (a page each). Elsewhere the
 * copy costs more than it saves, and B is read in place, in column blocks whose K x nb slice
 * stays in L2. */
#define GEMM_KC 256

AVX512 static void gemm_avx512(int M, int N, int K, const float *A, int lda, const float *B,
                               int ldb, const float *bias, fn_act act, float *C, int ldc)
{
    if (N >= 256 && M >= 64) {
        float bp[GEMM_KC * 48] __attribute__((aligned(64)));
        for (int n = 0; n < N; n += 48) {
            const int w = N - n < 48 ? N - n : 48;
            for (int k0 = 0; k0 < K; k0 += GEMM_KC) {
                const int kc = K - k0 < GEMM_KC ? K - k0 : GEMM_KC;
                for (int k = 0; k < kc; k++)
                    memcpy(bp + (size_t)k * 48, B + (size_t)(k0 + k) * ldb + n, sizeof(float) * w);
                gemm_rows(M, kc, A + k0, lda, bp, 48, bias ? bias + n : NULL, act, C + n, ldc, w,
                          k0 > 0, k0 + kc == K);
            }
        }
        return;
    }
    int nb = (int)((256 * 1024 / 4) / (K > 0 ? K : 1));
    nb = nb / 48 * 48;
    if (nb < 48) nb = 48;
    for (int n0 = 0; n0 < N; n0 += nb) {
        const int n1 = n0 + nb < N ? n0 + nb : N;
        for (int n = n0; n < n1; n += 48)
            gemm_rows(M, K, A, lda, B + n, ldb, bias ? bias + n : NULL, act, C + n, ldc,
                      n1 - n < 48 ? n1 - n : 48, 0, 1);
    }
}

/* One panel tile: MR rows of A times the packed panel (NV vectors wide, K rows), bias and
 * activation fused into the only store; the last vector's store is masked by m_last. With SUM
 * (fn_sepconv_sum_w's running sum; Sin and Sout offset as C), each result x (act is none then) is
 * added to Sin, the sum stored to Sout unless it is NULL, and max(sum, 0) to C: the sum's loads
 * and stores run beside the next tile's FMAs instead of in a pass of their own over the map. */
#define PTILE_PF 24
#define PTILE(MR, NV, SUM, SEG, NAME)                                                              \
    AVX512 static void NAME(int K, const float *A, int lda, const float *Bp, const float *bias,    \
                            fn_act act, float *C, int ldc, __mmask16 m_last, const float *Sin,     \
                            float *Sout, const fn_gemm_seg *seg)                                   \
    {                                                                                              \
        __m512 acc[MR][NV];                                                                        \
        _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++)                                      \
            _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps(); \
        const int ns = SEG ? seg->n : 1, ks = K / ns;                                              \
        for (int s = 0; s < ns; s++) {                                                             \
            const float *As = A + (SEG ? s * seg->stride : 0);                                     \
            const float *Bs = Bp + (size_t)s * ks * (NV * 16);                                     \
            for (int k = 0; k < ks; k++) {                                                         \
                __m512 b[NV];                                                                      \
                _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++)                              \
                {                                                                                  \
                    b[v] = _mm512_load_ps(Bs + (size_t)k * (NV * 16) + v * 16);                    \
                    _mm_prefetch((const char *)(Bs + (size_t)(k + PTILE_PF) * (NV * 16) + v * 16), \
                                 _MM_HINT_T0);                                                     \
                }                                                                                  \
                _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++)                              \
                {                                                                                  \
                    __m512 a = _mm512_set1_ps(As[(size_t)r * lda + k]);                            \
                    _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++) acc[r][v] =              \
                        _mm512_fmadd_ps(a, b[v], acc[r][v]);                                       \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 16") for (int v = 0; v < NV; v++)                                      \
        {                                                                                          \
            const __mmask16 m = v == NV - 1 ? m_last : (__mmask16)0xffff;                          \
            __m512 bv = bias ? _mm512_maskz_loadu_ps(m, bias + v * 16) : _mm512_setzero_ps();      \
            _Pragma("GCC unroll 16") for (int r = 0; r < MR; r++)                                  \
            {                                                                                      \
                const size_t o = (size_t)r * ldc + v * 16;                                         \
                __m512 x = act_v(_mm512_add_ps(acc[r][v], bv), act);                               \
                if (SUM) {                                                                         \
                    x = _mm512_add_ps(m == (__mmask16)0xffff ? _mm512_loadu_ps(Sin + o)            \
                                                             : _mm512_maskz_loadu_ps(m, Sin + o),  \
                                      x);                                                          \
                    if (Sout && m == (__mmask16)0xffff)                                            \
                        _mm512_storeu_ps(Sout + o, x);                                             \
                    else if (Sout)                                                                 \
                        _mm512_mask_storeu_ps(Sout + o, m, x);                                     \
                    x = _mm512_max_ps(x, _mm512_setzero_ps());                                     \
                }                                                                                  \
                if (m == (__mmask16)0xffff)                                                        \
                    _mm512_storeu_ps(C + o, x);                                                    \
                else                                                                               \
                    _mm512_mask_storeu_ps(C + o, m, x);                                            \
            }                                                                                      \
        }                                                                                          \
    }

PTILE(8, 3, 0, 0, ptile_8x3)
PTILE(4, 3, 0, 0, ptile_4x3)
PTILE(1, 3, 0, 0, ptile_1x3)
PTILE(12, 2, 0, 0, ptile_12x2)
PTILE(4, 2, 0, 0, ptile_4x2)
PTILE(1, 2, 0, 0, ptile_1x2)
PTILE(16, 1, 0, 0, ptile_16x1)
PTILE(4, 1, 0, 0, ptile_4x1)
PTILE(1, 1, 0, 0, ptile_1x1)
/* The same with the running sum (a separate set, so the plain tiles' code is what it was). */
PTILE(8, 3, 1, 0, ptile_8x3s)
PTILE(4, 3, 1, 0, ptile_4x3s)
PTILE(1, 3, 1, 0, ptile_1x3s)
PTILE(12, 2, 1, 0, ptile_12x2s)
PTILE(4, 2, 1, 0, ptile_4x2s)
PTILE(1, 2, 1, 0, ptile_1x2s)
PTILE(16, 1, 1, 0, ptile_16x1s)
PTILE(4, 1, 1, 0, ptile_4x1s)
PTILE(1, 1, 1, 0, ptile_1x1s)
/* And with A in segments (fn_gemm_seg: rows of taps, conv3_rows; a conv's input, conv_rows). */
PTILE(8, 3, 0, 1, ptile_8x3g)
PTILE(4, 3, 0, 1, ptile_4x3g)
PTILE(1, 3, 0, 1, ptile_1x3g)
PTILE(12, 2, 0, 1, ptile_12x2g)
PTILE(4, 2, 0, 1, ptile_4x2g)
PTILE(1, 2, 0, 1, ptile_1x2g)
PTILE(16, 1, 0, 1, ptile_16x1g)
PTILE(4, 1, 0, 1, ptile_4x1g)
PTILE(1, 1, 0, 1, ptile_1x1g)

/* And both (a residual conv's epilogue, fn_conv2d_res_wn, on rows of taps). */
PTILE(8, 3, 1, 1, ptile_8x3sg)
PTILE(4, 3, 1, 1, ptile_4x3sg)
PTILE(1, 3, 1, 1, ptile_1x3sg)
PTILE(12, 2, 1, 1, ptile_12x2sg)
PTILE(4, 2, 1, 1, ptile_4x2sg)
PTILE(1, 2, 1, 1, ptile_1x2sg)
PTILE(16, 1, 1, 1, ptile_16x1sg)
PTILE(4, 1, 1, 1, ptile_4x1sg)
PTILE(1, 1, 1, 1, ptile_1x1sg)
PTILE(6, 4, 0, 0, ptile_6x4)
PTILE(4, 4, 0, 0, ptile_4x4)
PTILE(1, 4, 0, 0, ptile_1x4)
PTILE(6, 4, 1, 0, ptile_6x4s)
PTILE(4, 4, 1, 0, ptile_4x4s)
PTILE(1, 4, 1, 0, ptile_1x4s)
PTILE(6, 4, 0, 1, ptile_6x4g)
PTILE(4, 4, 0, 1, ptile_4x4g)
PTILE(1, 4, 0, 1, ptile_1x4g)
PTILE(6, 4, 1, 1, ptile_6x4sg)
PTILE(4, 4, 1, 1, ptile_4x4sg)
PTILE(1, 4, 1, 1, ptile_1x4sg)

typedef void (*ptile_fn)(int, const float *, int, const float *, const float *, fn_act, float *,
                         int, __mmask16, const float *, float *, const fn_gemm_seg *);

/* C[M][N] = act(A[M][K] B + bias) with B packed by fn_wpack_init: rows in blocks whose slice of A
 * (GEMM_A_BLOCK bytes at most) stays in L2 while every panel of B passes over it; within a block,
 * panel by panel, rows in tiles of the panel's height (6 rows for 4 vectors, 8 for 3, 12 for 2, 16
 * for 1), then 4-row and 1-row tiles for the rest. Without the row blocks, a 1024x512 A (2 MB) was
 * re-read from L3 for each of the 11 panels of a 512-wide layer: 0.75 of the peak instead of the
 * 0.9 the same tile reaches when A fits. */
#define GEMM_A_BLOCK (512 * 1024)

AVX512 static void gemm_packed_avx512(int M, int N, int K, const float *A, int lda, const float *Bp,
                                      const float *bias, fn_act act, float *C, int ldc,
                                      const fn_gemm_sum *sum, const fn_gemm_seg *seg)
{
    /* [plain, with the sum, A in segments, both][vectors] */
    static const ptile_fn bigs[4][5] = {
        {NULL, ptile_16x1, ptile_12x2, ptile_8x3, ptile_6x4},
        {NULL, ptile_16x1s, ptile_12x2s, ptile_8x3s, ptile_6x4s},
        {NULL, ptile_16x1g, ptile_12x2g, ptile_8x3g, ptile_6x4g},
        {NULL, ptile_16x1sg, ptile_12x2sg, ptile_8x3sg, ptile_6x4sg}};
    static const ptile_fn fours[4][5] = {
        {NULL, ptile_4x1, ptile_4x2, ptile_4x3, ptile_4x4},
        {NULL, ptile_4x1s, ptile_4x2s, ptile_4x3s, ptile_4x4s},
        {NULL, ptile_4x1g, ptile_4x2g, ptile_4x3g, ptile_4x4g},
        {NULL, ptile_4x1sg, ptile_4x2sg, ptile_4x3sg, ptile_4x4sg}};
    static const ptile_fn ones[4][5] = {{NULL, ptile_1x1, ptile_1x2, ptile_1x3, ptile_1x4},
                                        {NULL, ptile_1x1s, ptile_1x2s, ptile_1x3s, ptile_1x4s},
                                        {NULL, ptile_1x1g, ptile_1x2g, ptile_1x3g, ptile_1x4g},
                                        {NULL, ptile_1x1sg, ptile_1x2sg, ptile_1x3sg, ptile_1x4sg}};
    const int set = (sum ? 1 : 0) + (seg ? 2 : 0);
    const ptile_fn *big = bigs[set], *four = fours[set], *one = ones[set];
    static const int big_rows[5] = {0, 16, 12, 8, 6};
    /* A tile may not recompute rows whose sum it updated in place (it would add them twice). */
    const int redo = !(sum && sum->out == sum->in);
    /* A multiple of 48 rows, so every tile height divides it. */
    int mc = (int)(GEMM_A_BLOCK / sizeof(float) / (size_t)(K > 0 ? K : 1)) / 48 * 48;
    if (mc < 48) mc = 48;
    for (int m0 = 0; m0 < M; m0 += mc) {
        const int m1 = m0 + mc < M ? m0 + mc : M;
        const float *bp = Bp;
        for (int n0 = 0; n0 < N;) {
            const int w = fn_panel_width(N - n0), nv = (w + 15) / 16;
            const __mmask16 ml = tail_mask(w - (nv - 1) * 16);
            const float *bb = bias ? bias + n0 : NULL;
            const int mr = big_rows[nv];
/* A tile's rows from m on: its A, C and sums. */
#define AT(m)                                                                                      \
    A + (size_t)(m)*lda, lda, bp, bb, act, C + (size_t)(m)*ldc + n0, ldc, ml,                      \
        sum ? sum->in + (size_t)(m)*ldc + n0 : NULL,                                               \
        sum && sum->out ? sum->out + (size_t)(m)*ldc + n0 : NULL, seg
            int m = m0;
            for (; m + mr <= m1; m += mr)
                big[nv](K, AT(m));
            const int left = m1 - m;
            if (redo && left > 0 && m1 - m0 >= mr && left / 4 + left % 4 >= 3) {
                /* The leftover rows as one more full tile ending at the last row: it recomputes
                 * some rows of the tile before (C does not alias A, and every tile writes C
                 * from scratch, so they get the same values again). A 4- or 1-row tile takes
                 * about a third of a full tile's time per k (it is bound by the FMA latency,
                 * not the FMA units), so this pays from three such small tiles on. */
                big[nv](K, AT(m1 - mr));
                m = m1;
            }
            for (; m + 4 <= m1; m += 4)
                four[nv](K, AT(m));
            for (; m < m1; m++)
                one[nv](K, AT(m));
#undef AT
            bp += (size_t)K * nv * 16;
            n0 += w;
        }
    }
}

/* C[M][N] = act(A[M][K] B + bias) with B as the bytes of fn_wpack_bytes: panel by panel, K in
 * blocks of BYTES_KC rows, each block decoded (w = q * s + m, one FMA per 16 weights, the same
 * floats as the panels hold) into a buffer on the stack that stays in L1 while gemm_rows runs every
 * row of A over it, the sums carried in C from block to block; the bytes are prefetched BYTES_PF
 * ahead (two blocks of a 48-wide panel), as the hardware's prefetcher stops while the FMAs run.
 * For GEMMs with few rows (the recognition net's 256-channel layers on 1x1 to 4x4 maps) the
 * panels' floats come from memory once per call, at a rate the FMAs outrun; the bytes are a
 * quarter of them. The same products in the same order as gemm_packed_avx512's tiles, so the same
 * floats (test_gemm_bytes). */
#define BYTES_KC 64
#define BYTES_PF 6144

AVX512 static void gemm_bytes_avx512(int M, int N, int K, const float *A, int lda,
                                     const fn_wpack *wp, const float *bias, fn_act act, float *C,
                                     int ldc)
{
    float bp[BYTES_KC * 64] __attribute__((aligned(64)));
    const unsigned char *qp = wp->q;
    const float *sm = wp->qsm;
    for (int n0 = 0; n0 < N;) {
        const int w = fn_panel_width(N - n0), nv = (w + 15) / 16, ld = nv * 16;
        __m512 sv[4], mv[4];
        for (int v = 0; v < nv; v++) {
            sv[v] = _mm512_load_ps(sm + v * 16);
            mv[v] = _mm512_load_ps(sm + ld + v * 16);
        }
        for (int k0 = 0; k0 < K; k0 += BYTES_KC) {
            const int kc = K - k0 < BYTES_KC ? K - k0 : BYTES_KC;
            const unsigned char *q = qp + (size_t)k0 * ld;
            for (int k = 0; k < kc; k++) {
                _mm_prefetch((const char *)(q + (size_t)k * ld + BYTES_PF), _MM_HINT_T0);
                for (int v = 0; v < nv; v++) {
                    const int i = k * ld + v * 16;
                    const __m512i b =
                        _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(q + i)));
                    _mm512_store_ps(bp + i, _mm512_fmadd_ps(_mm512_cvtepi32_ps(b), sv[v], mv[v]));
                }
            }
            gemm_rows(M, kc, A + k0, lda, bp, ld, bias ? bias + n0 : NULL, act, C + n0, ldc, w,
                      k0 > 0, k0 + kc == K);
        }
        qp += (size_t)K * ld;
        sm += 2 * ld;
        n0 += w;
    }
}

/* One output vector of the depthwise 3x3 at a border (taps outside the input skipped), its taps
 * in the interior kernels' order. Unrolled, with plain loads for a full channel block: the loop
 * with variable bounds and masked loads it was took a tenth of the landmark nets' depthwise time
 * (their 7- to 56-pixel rows have two border pixels each). r: the three input rows at the channel
 * block, `zero` (fn_dw_zero at the block) for those outside the image, which are skipped. */
AVX512 static inline __m512 dw3x3_edge(const float *const r[3], const float *zero, int iw, int c,
                                       const __m512 *wk, __m512 bv, __mmask16 m, int x0)
{
    __m512 acc = bv;
    _Pragma("GCC unroll 3") for (int ky = 0; ky < 3; ky++)
    {
        if (r[ky] == zero) continue;
        _Pragma("GCC unroll 3") for (int kx = 0; kx < 3; kx++)
        {
            if (x0 + kx < 0 || x0 + kx >= iw) continue;
            const float *q = r[ky] + (size_t)(x0 + kx) * c;
            const __m512 v =
                m == (__mmask16)0xffff ? _mm512_loadu_ps(q) : _mm512_maskz_loadu_ps(m, q);
            acc = _mm512_fmadd_ps(v, wk[ky * 3 + kx], acc);
        }
    }
    return acc;
}

/* The nine taps of one interior output vector; r0, r1, r2 (in scope) are its three input rows
 * (channel block), off the offset of its left column. LD is the load: unmasked for full channel
 * blocks (masked loads are slow on some cores). */
#define DW_TAPS(LD, acc, off)                                                                      \
    do {                                                                                           \
        const float *q0_ = r0 + (off), *q1_ = r1 + (off), *q2_ = r2 + (off);                       \
        acc = _mm512_fmadd_ps(LD(q0_), w0, acc);                                                   \
        acc = _mm512_fmadd_ps(LD(q0_ + c), w1, acc);                                               \
        acc = _mm512_fmadd_ps(LD(q0_ + 2 * c), w2, acc);                                           \
        acc = _mm512_fmadd_ps(LD(q1_), w3, acc);                                                   \
        acc = _mm512_fmadd_ps(LD(q1_ + c), w4, acc);                                               \
        acc = _mm512_fmadd_ps(LD(q1_ + 2 * c), w5, acc);                                           \
        acc = _mm512_fmadd_ps(LD(q2_), w6, acc);                                                   \
        acc = _mm512_fmadd_ps(LD(q2_ + c), w7, acc);                                               \
        acc = _mm512_fmadd_ps(LD(q2_ + 2 * c), w8, acc);                                           \
    } while (0)
/* One output's three taps of one input row (columns x0-x2, weights wa-wc), in order. */
#define DW_FMA3(acc, x0, x1, x2, wa, wb, wc)                                                       \
    do {                                                                                           \
        acc = _mm512_fmadd_ps(x0, wa, acc);                                                        \
        acc = _mm512_fmadd_ps(x1, wb, acc);                                                        \
        acc = _mm512_fmadd_ps(x2, wc, acc);                                                        \
    } while (0)
/* One input row's three taps for eight stride-1 outputs a[0..7]: columns q + j*c, j = 0..9, each
 * loaded once as the outputs pass along the row (three columns live, not ten: with ten the
 * compiler spilled them and the weights to the stack, and kept the ten addresses there too). */
#define DW_S1_ROW(a, q, wa, wb, wc)                                                                \
    do {                                                                                           \
        const float *p_ = (q);                                                                     \
        __asm__("" : "+r"(p_));                                                                    \
        __m512 x0_ = _mm512_loadu_ps(p_), x1_ = _mm512_loadu_ps(p_ + c);                           \
        p_ += 2 * (size_t)c;                                                                       \
        _Pragma("GCC unroll 8") for (int j_ = 0; j_ < 8; j_++)                                     \
        {                                                                                          \
            const __m512 x2_ = _mm512_loadu_ps(p_);                                                \
            p_ += c;                                                                               \
            __asm__("" : "+r"(p_));                                                                \
            DW_FMA3(a[j_], x0_, x1_, x2_, wa, wb, wc);                                             \
            x0_ = x1_;                                                                             \
            x1_ = x2_;                                                                             \
        }                                                                                          \
    } while (0)
/* The same for N (4 or 8) stride-2 outputs: columns q + j*c, j = 0..2N (output j reads 2j, 2j+1,
 * 2j+2). */
#define DW_S2_ROW_N(N, a, q, wa, wb, wc)                                                           \
    do {                                                                                           \
        const float *p_ = (q);                                                                     \
        __asm__("" : "+r"(p_));                                                                    \
        __m512 x0_ = _mm512_loadu_ps(p_);                                                          \
        _Pragma("GCC unroll 8") for (int j_ = 0; j_ < (N); j_++)                                   \
        {                                                                                          \
            const __m512 x1_ = _mm512_loadu_ps(p_ + c), x2_ = _mm512_loadu_ps(p_ + 2 * (size_t)c); \
            p_ += 2 * (size_t)c;                                                                   \
            __asm__("" : "+r"(p_));                                                                \
            DW_FMA3(a[j_], x0_, x1_, x2_, wa, wb, wc);                                             \
            x0_ = x2_;                                                                             \
        }                                                                                          \
    } while (0)
#define DW_S2_ROW(a, q, wa, wb, wc)  DW_S2_ROW_N(4, a, q, wa, wb, wc)
#define DW_S2_ROW8(a, q, wa, wb, wc) DW_S2_ROW_N(8, a, q, wa, wb, wc)
/* N interior outputs of the row from ox on (their left column at r0 + off): the three input rows
 * through ROW, then the activation and the stores. Reads r0-r2, w0-w8, bv, orow, ox, c, act. */
#define DW_RUN(N, ROW, off)                                                                        \
    do {                                                                                           \
        const size_t off_ = (off);                                                                 \
        __m512 a_[N];                                                                              \
        for (int j_ = 0; j_ < (N); j_++)                                                           \
            a_[j_] = bv;                                                                           \
        ROW(a_, r0 + off_, w0, w1, w2);                                                            \
        ROW(a_, r1 + off_, w3, w4, w5);                                                            \
        ROW(a_, r2 + off_, w6, w7, w8);                                                            \
        float *o_ = orow + (size_t)ox * c;                                                         \
        for (int j_ = 0; j_ < (N); j_++)                                                           \
            _mm512_storeu_ps(o_ + (size_t)j_ * c, act_v(a_[j_], act));                             \
    } while (0)
#define LD_FULL(ptr) _mm512_loadu_ps(ptr)
#define LD_MASK(ptr) _mm512_maskz_loadu_ps(m, ptr)

/* Column j of a run's input row `row` (column 0 at the channel block), the run's left column x_
 * in scope with iw and c: zero for columns outside the row. */
#define DW_COL(row, j)                                                                             \
    ((unsigned)(x_ + (j)) < (unsigned)iw ? _mm512_loadu_ps((row) + (ptrdiff_t)(x_ + (j)) * c)      \
                                         : _mm512_setzero_ps())
/* DW_S1_ROW and DW_S2_ROW for eight outputs whose columns may reach outside the row. */
#define DW_S1_ROW_EDGE(a, row, wa, wb, wc)                                                         \
    do {                                                                                           \
        __m512 x0_ = DW_COL(row, 0), x1_ = DW_COL(row, 1);                                         \
        _Pragma("GCC unroll 8") for (int j_ = 0; j_ < 8; j_++)                                     \
        {                                                                                          \
            const __m512 x2_ = DW_COL(row, j_ + 2);                                                \
            DW_FMA3(a[j_], x0_, x1_, x2_, wa, wb, wc);                                             \
            x0_ = x1_;                                                                             \
            x1_ = x2_;                                                                             \
        }                                                                                          \
    } while (0)
#define DW_S2_ROW_EDGE(a, row, wa, wb, wc)                                                         \
    do {                                                                                           \
        __m512 x0_ = DW_COL(row, 0);                                                               \
        _Pragma("GCC unroll 8") for (int j_ = 0; j_ < 8; j_++)                                     \
        {                                                                                          \
            const __m512 x1_ = DW_COL(row, 2 * j_ + 1), x2_ = DW_COL(row, 2 * j_ + 2);             \
            DW_FMA3(a[j_], x0_, x1_, x2_, wa, wb, wc);                                             \
            x0_ = x2_;                                                                             \
        }                                                                                          \
    } while (0)
/* One output row (at least DW_RUN_MIN_OW wide) at stride S, its full 16-channel blocks (c0 <
 * cfull), in runs of eight outputs (a row narrower than eight: one run from column 0, only the
 * row's outputs stored; the two store loops keep the eight-wide one unrolled with a[] in
 * registers): each run through every channel block before the next run (the run's columns read
 * front to back along their channels), the last run ending at the row's end (it may recompute
 * outputs of the run before: the same values). A run whose columns reach outside the row reads
 * zeros for them, and an input row outside the image (NULL) is skipped, so the border outputs take
 * the same eight-way path as the others (one output at a time, as before, was a chain of nine
 * dependent FMAs at a quarter of the FMA rate). Each output's taps in DW_TAPS's order (a missing
 * one adds zero: the same sum). One function per stride and activation, not inlined: with both as
 * variables the compiler kept the row pointers on the stack and tested the activation at every
 * store. */
#define DW_ROW_RUNS(S, ACT, NAME)                                                                  \
    AVX512 __attribute__((noinline)) static void NAME(                                             \
        const float *r0, const float *r1, const float *r2, int iw, int c, const float *w,          \
        const float *bias, int pl, float *orow, int ow, int cfull)                                 \
    {                                                                                              \
        for (int ox = 0;; ox += 8) {                                                               \
            if (ox + 8 > ow) ox = ow > 8 ? ow - 8 : 0;                                             \
            const int x_ = ox * (S)-pl;                                                            \
            const int inside = x_ >= 0 && x_ + 7 * (S) + 2 < iw;                                   \
            for (int c0 = 0; c0 < cfull; c0 += 16) {                                               \
                const float *wc0 = w + c0;                                                         \
                const __m512 w0 = _mm512_loadu_ps(wc0), w1 = _mm512_loadu_ps(wc0 + c),             \
                             w2 = _mm512_loadu_ps(wc0 + 2 * (size_t)c),                            \
                             w3 = _mm512_loadu_ps(wc0 + 3 * (size_t)c),                            \
                             w4 = _mm512_loadu_ps(wc0 + 4 * (size_t)c),                            \
                             w5 = _mm512_loadu_ps(wc0 + 5 * (size_t)c),                            \
                             w6 = _mm512_loadu_ps(wc0 + 6 * (size_t)c),                            \
                             w7 = _mm512_loadu_ps(wc0 + 7 * (size_t)c),                            \
                             w8 = _mm512_loadu_ps(wc0 + 8 * (size_t)c);                            \
                const __m512 bv = bias ? _mm512_loadu_ps(bias + c0) : _mm512_setzero_ps();         \
                __m512 a[8];                                                                       \
                for (int j = 0; j < 8; j++)                                                        \
                    a[j] = bv;                                                                     \
                const float *q0 = r0 ? r0 + c0 : NULL, *q1 = r1 ? r1 + c0 : NULL,                  \
                            *q2 = r2 ? r2 + c0 : NULL;                                             \
                if (inside) {                                                                      \
                    const size_t off = (size_t)x_ * c;                                             \
                    if (q0) DW_ROW_##S(a, q0 + off, w0, w1, w2);                                   \
                    if (q1) DW_ROW_##S(a, q1 + off, w3, w4, w5);                                   \
                    if (q2) DW_ROW_##S(a, q2 + off, w6, w7, w8);                                   \
                } else {                                                                           \
                    if (q0) DW_ROW_EDGE_##S(a, q0, w0, w1, w2);                                    \
                    if (q1) DW_ROW_EDGE_##S(a, q1, w3, w4, w5);                                    \
                    if (q2) DW_ROW_EDGE_##S(a, q2, w6, w7, w8);                                    \
                }                                                                                  \
                float *o = orow + (size_t)ox * c + c0;                                             \
                if (ow >= 8)                                                                       \
                    for (int j = 0; j < 8; j++)                                                    \
                        _mm512_storeu_ps(o + (size_t)j * c, act_v(a[j], ACT));                     \
                else /* a row narrower than the run: its first ow outputs */                       \
                    for (int j = 0; j < ow; j++)                                                   \
                        _mm512_storeu_ps(o + (size_t)j * c, act_v(a[j], ACT));                     \
            }                                                                                      \
            if (ox + 8 >= ow) break;                                                               \
        }                                                                                          \
    }
#define DW_ROW_1      DW_S1_ROW
#define DW_ROW_2      DW_S2_ROW8
#define DW_ROW_EDGE_1 DW_S1_ROW_EDGE
#define DW_ROW_EDGE_2 DW_S2_ROW_EDGE
DW_ROW_RUNS(1, FN_ACT_NONE, dw_runs_1n)
DW_ROW_RUNS(1, FN_ACT_RELU, dw_runs_1r)
DW_ROW_RUNS(1, FN_ACT_RELU6, dw_runs_1r6)
DW_ROW_RUNS(1, FN_ACT_LEAKY, dw_runs_1l)
DW_ROW_RUNS(2, FN_ACT_NONE, dw_runs_2n)
DW_ROW_RUNS(2, FN_ACT_RELU, dw_runs_2r)
DW_ROW_RUNS(2, FN_ACT_RELU6, dw_runs_2r6)
DW_ROW_RUNS(2, FN_ACT_LEAKY, dw_runs_2l)
typedef void (*dw_runs_fn)(const float *, const float *, const float *, int, int, const float *,
                           const float *, int, float *, int, int);
/* [stride - 1][activation] */
static const dw_runs_fn dw_runs[2][4] = {{dw_runs_1n, dw_runs_1r, dw_runs_1r6, dw_runs_1l},
                                         {dw_runs_2n, dw_runs_2r, dw_runs_2r6, dw_runs_2l}};

/* One output row of one 16-channel block, for rows narrower than DW_RUN_MIN_OW outputs and a
 * partial last block (dw_runs takes the others): the pixels outside [lo, hi) by dw3x3_edge, the
 * others four at a time with the nine weights in registers (independent FMA chains hide the FMA
 * latency). Input rows outside the image read fn_dw_zero (lo < hi only when the caller has checked
 * that it is wide enough). */
AVX512 static void dw3x3_row_block(const float *in, int ring, int ih, int iw, int c, const float *w,
                                   const float *bias, int stride, int pl, fn_act act, float *orow,
                                   int y0, int ow, int lo, int hi, int c0)
{
    const size_t rs = (size_t)iw * c;     /* floats per input row */
    const size_t xs = (size_t)stride * c; /* floats between neighbouring outputs' inputs */
    const __mmask16 m = tail_mask(c - c0);
    __m512 wk[9];
    for (int k = 0; k < 9; k++)
        wk[k] = _mm512_maskz_loadu_ps(m, w + (size_t)k * c + c0);
    const __m512 w0 = wk[0], w1 = wk[1], w2 = wk[2], w3 = wk[3], w4 = wk[4], w5 = wk[5], w6 = wk[6],
                 w7 = wk[7], w8 = wk[8];
    const __m512 bv = bias ? _mm512_maskz_loadu_ps(m, bias + c0) : _mm512_setzero_ps();
    const float *inc = in + c0;
    const float *r0 = y0 >= 0 && y0 < ih ? fn_dw_row(inc, ring, rs, y0) : fn_dw_zero + c0;
    const float *r1 =
        y0 + 1 >= 0 && y0 + 1 < ih ? fn_dw_row(inc, ring, rs, y0 + 1) : fn_dw_zero + c0;
    const float *r2 =
        y0 + 2 >= 0 && y0 + 2 < ih ? fn_dw_row(inc, ring, rs, y0 + 2) : fn_dw_zero + c0;
    const float *const r[3] = {r0, r1, r2};
    orow += c0;
    int ox = 0;
    for (; ox < lo; ox++)
        _mm512_mask_storeu_ps(
            orow + (size_t)ox * c, m,
            act_v(dw3x3_edge(r, fn_dw_zero + c0, iw, c, wk, bv, m, ox * stride - pl), act));
    if (m == (__mmask16)0xffff) {
        /* At stride 2, neighbouring outputs share a column: each column of a row is loaded
         * once (DW_S2_ROW), the same taps in the same order as DW_TAPS. */
        if (stride == 2)
            for (; ox + 4 <= hi; ox += 4)
                DW_RUN(4, DW_S2_ROW, (size_t)(ox * 2 - pl) * c);
        for (; ox + 4 <= hi; ox += 4) {
            const size_t off = (size_t)(ox * stride - pl) * c;
            __m512 a0 = bv, a1 = bv, a2 = bv, a3 = bv;
            DW_TAPS(LD_FULL, a0, off);
            DW_TAPS(LD_FULL, a1, off + xs);
            DW_TAPS(LD_FULL, a2, off + 2 * xs);
            DW_TAPS(LD_FULL, a3, off + 3 * xs);
            float *o = orow + (size_t)ox * c;
            _mm512_storeu_ps(o, act_v(a0, act));
            _mm512_storeu_ps(o + c, act_v(a1, act));
            _mm512_storeu_ps(o + 2 * c, act_v(a2, act));
            _mm512_storeu_ps(o + 3 * c, act_v(a3, act));
        }
        for (; ox < hi; ox++) {
            __m512 a0 = bv;
            DW_TAPS(LD_FULL, a0, (size_t)(ox * stride - pl) * c);
            _mm512_storeu_ps(orow + (size_t)ox * c, act_v(a0, act));
        }
    } else {
        for (; ox < hi; ox++) {
            __m512 a0 = bv;
            DW_TAPS(LD_MASK, a0, (size_t)(ox * stride - pl) * c);
            _mm512_mask_storeu_ps(orow + (size_t)ox * c, m, act_v(a0, act));
        }
    }
    for (; ox < ow; ox++)
        _mm512_mask_storeu_ps(
            orow + (size_t)ox * c, m,
            act_v(dw3x3_edge(r, fn_dw_zero + c0, iw, c, wk, bv, m, ox * stride - pl), act));
}

/* Output rows are the outer loop, so the three input rows an output row reads stay in L1/L2 while
 * it is made. Within a row, rows of at least eight outputs go run by run through the channel
 * blocks (dw_runs); the order before, every run of one channel block before the next block, read
 * the same lines but a whole pixel apart each step and ran SSD's depthwise layers 1.2-1.3x slower
 * (bench_vision --layers), and with its border outputs and leftovers one or four at a time, rows of
 * 8 and 16 outputs at half the speed. (The order before that, all rows of one channel block and
 * then the next, read a single 64-byte line out of every pixel's channels per pass: 6-20 GFLOP/s
 * on the 512- and 1024-channel layers.) */
/* Rows of at least this many outputs go through dw_runs (narrower ones compute the run's eight
 * outputs and store theirs: the landmark nets' 7x7 maps ran at a third of their 14x14 ones' rate
 * one and four outputs at a time); below it dw3x3_row_block. */
#define DW_RUN_MIN_OW 6

AVX512 static void dw3x3_avx512(const float *in, int ring, int ih, int iw, int c, const float *w,
                                const float *bias, int stride, int pt, int pl, fn_act act,
                                float *out, int oy_begin, int oy_end, int ow)
{
    /* Output columns whose three input columns are all inside: [ox_lo, ox_hi). None when the
     * input is narrower than the taps' reach (C's division rounds -1 / 2 up to 0, which made the
     * one column of a 2-wide input at stride 2 an interior one, reading past its row). */
    int ox_lo = (pl + stride - 1) / stride,
        ox_hi = iw - 3 + pl >= 0 ? (iw - 3 + pl) / stride + 1 : 0;
    if (ox_hi > ow) ox_hi = ow;
    if (ox_lo > ox_hi) ox_lo = ox_hi;
    for (int oy = oy_begin; oy < oy_end; oy++) {
        const int y0 = oy * stride - pt;
        float *orow = out + (size_t)(oy - oy_begin) * ow * c;
        /* Rows whose input rows are all inside, or whose missing ones fn_dw_zero can stand for. */
        const int full = (y0 >= 0 && y0 + 3 <= ih) || (size_t)iw * c <= FN_DW_ZERO_FLOATS;
        const int lo = full ? ox_lo : ow, hi = full ? ox_hi : ow;
        int c0 = 0;
        if (ow >= DW_RUN_MIN_OW && c >= 16) {
            const size_t rs = (size_t)iw * c;
            const float *r0 = y0 >= 0 && y0 < ih ? fn_dw_row(in, ring, rs, y0) : NULL,
                        *r1 = y0 + 1 >= 0 && y0 + 1 < ih ? fn_dw_row(in, ring, rs, y0 + 1) : NULL,
                        *r2 = y0 + 2 >= 0 && y0 + 2 < ih ? fn_dw_row(in, ring, rs, y0 + 2) : NULL;
            c0 = c / 16 * 16;
            dw_runs[stride - 1][act](r0, r1, r2, iw, c, w, bias, pl, orow, ow, c0);
        }
        for (; c0 < c; c0 += 16)
            dw3x3_row_block(in, ring, ih, iw, c, w, bias, stride, pl, act, orow, y0, ow, lo, hi,
                            c0);
    }
}

int fn_cpu_has_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
}

#else
int fn_cpu_has_avx512(void)
{
    return 0;
}
static void gemm_avx512(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                        const float *bias, fn_act act, float *C, int ldc)
{
    (void)M, (void)N, (void)K, (void)A, (void)lda, (void)B, (void)ldb, (void)bias, (void)act;
    (void)C, (void)ldc;
}
static void dw3x3_avx512(const float *in, int ring, int ih, int iw, int c, const float *w,
                         const float *bias, int stride, int pt, int pl, fn_act act, float *out,
                         int oy_begin, int oy_end, int ow)
{
    (void)in, (void)ring, (void)ih, (void)iw, (void)c, (void)w, (void)bias, (void)stride, (void)pt,
        (void)pl;
    (void)act, (void)out, (void)oy_begin, (void)oy_end, (void)ow;
}
static void gemm_packed_avx512(int M, int N, int K, const float *A, int lda, const float *Bp,
                               const float *bias, fn_act act, float *C, int ldc,
                               const fn_gemm_sum *sum, const fn_gemm_seg *seg)
{
    (void)M, (void)N, (void)K, (void)A, (void)lda, (void)Bp, (void)bias, (void)act, (void)C;
    (void)ldc, (void)sum, (void)seg;
}
static void gemm_bytes_avx512(int M, int N, int K, const float *A, int lda, const fn_wpack *wp,
                              const float *bias, fn_act act, float *C, int ldc)
{
    (void)M, (void)N, (void)K, (void)A, (void)lda, (void)wp, (void)bias, (void)act, (void)C;
    (void)ldc;
}
#endif

static _Thread_local double ops_flops;

double fn_ops_flops(void)
{
    return ops_flops;
}

void fn_ops_flops_add(double flops)
{
    ops_flops += flops;
}

/* The per-layer trace (fn_ops_set_trace): off unless a benchmark sets it, and then one thread-CPU
 * clock read before and after each layer (each strip's two halves for the separable conv). */
static _Thread_local fn_ops_trace_fn ops_trace;

void fn_ops_set_trace(fn_ops_trace_fn fn)
{
    ops_trace = fn;
}

static double trace_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void trace_layer(const char *op, int m, int n, int k, double flops, double floats,
                        double seconds)
{
    const fn_ops_layer l = {op, m, n, k, flops, floats * sizeof(float), seconds};
    ops_trace(&l);
}

float fn_dw_zero[FN_DW_ZERO_FLOATS]; /* untouched .bss pages all read the kernel's one zero page */

/* Which kernels run: -1 not decided yet, else FN_ISA_*. Read and written atomically so
 * concurrent first calls are well defined (they all store the same value). */
static int isa_level = -1;

static int isa_by_cpu(void)
{
    return fn_cpu_has_avx512() ? FN_ISA_AVX512 : fn_cpu_has_avx2() ? FN_ISA_AVX2 : FN_ISA_GENERIC;
}

void fn_ops_set_isa(int level)
{
    int v = -1;
    if (level == FN_ISA_AVX512)
        v = fn_cpu_has_avx512() ? FN_ISA_AVX512 : FN_ISA_GENERIC;
    else if (level == FN_ISA_AVX2)
        v = fn_cpu_has_avx2() ? FN_ISA_AVX2 : FN_ISA_GENERIC;
    else if (level >= 0)
        v = FN_ISA_GENERIC;
    __atomic_store_n(&isa_level, v, __ATOMIC_RELAXED);
}

int fn_ops_isa(void)
{
    int v = __atomic_load_n(&isa_level, __ATOMIC_RELAXED);
    if (v < 0) {
        v = isa_by_cpu();
        __atomic_store_n(&isa_level, v, __ATOMIC_RELAXED);
    }
    return v;
}

static int use_avx512(void)
{
    return fn_ops_isa() == FN_ISA_AVX512;
}

static int use_avx2(void)
{
    return fn_ops_isa() == FN_ISA_AVX2;
}

/* im2col runs over strips of output rows so its scratch stays in L2 instead of growing with the
 * image (conv0 of a 512x512 input would need 7 MB): this many floats per strip (256 KB, well
 * inside a 1-2 MB L2 next to the weights and the output), at least one output row. The strip is
 * written and at once read back by the GEMM; at 2 MB (the earlier size) it spilled out of L2
 * between the two, and the descriptor's first conv (7x7, 72 rows of 10584 floats, one strip)
 * ran at 0.2 of the peak. */
#define COL_STRIP_FLOATS ((size_t)64 * 1024)

static int strip_rows(int oh, int ow, int k)
{
    size_t row = (size_t)ow * (size_t)k;
    size_t rows = row ? COL_STRIP_FLOATS / row : 1;
    if (rows < 1) rows = 1;
    return rows > (size_t)oh ? oh : (int)rows;
}

size_t fn_conv2d_scratch_floats(int in_h, int in_w, int cin, int kh, int kw, int stride, fn_pad pad)
{
    return fn_conv2d_scratch_floats_n(1, in_h, in_w, cin, kh, kw, stride, pad);
}

size_t fn_conv2d_scratch_floats_n(int nimg, int in_h, int in_w, int cin, int kh, int kw, int stride,
                                  fn_pad pad)
{
    if (kh == 1 && kw == 1 && stride == 1) return 0;
    int oh = fn_out_size(in_h, kh, stride, pad), ow = fn_out_size(in_w, kw, stride, pad);
    int k = kh * kw * cin;
    return (size_t)strip_rows(nimg * oh, ow, k) * ow * k;
}

/* A [k][n] matrix of `size`-byte elements copied into the panels' layout (ops_isa.h), each row of
 * a panel zero-filled past its width: fn_wpack's floats and its bytes. */
static void to_panels(void *dst, const void *src, size_t size, int k, int n, int sliced)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    for (int n0 = 0; n0 < n;) {
        const int pw = fn_panel_width(n - n0), wpad = (pw + 15) / 16 * 16;
        memset(d, 0, size * (size_t)k * (size_t)wpad);
        for (int r = 0; r < k; r++)
            for (int j = 0; j < pw; j += 16) /* a row's part of a slice is contiguous */
                memcpy(d + size * fn_panel_index(k, wpad, sliced, r, j),
                       s + size * ((size_t)r * n + n0 + j), size * (size_t)fn_slice_cols(pw, j));
        d += size * (size_t)k * (size_t)wpad;
        n0 += pw;
    }
}

int fn_wpack_init(fn_wpack *wp, const float *w, int k, int n)
{
    wp->w = w;
    wp->p = NULL;
    wp->k = k;
    wp->n = n;
    wp->amx = NULL;
    wp->i16 = NULL;
    wp->q = NULL;
    wp->qsm = NULL;
    /* Sliced where the AVX2 kernels are the CPU's best (fn_panel_index); the AVX-512 and AMX
     * kernels read rows, and a CPU that has them never slices. */
    wp->sliced = !fn_cpu_has_avx512() && fn_cpu_has_avx2();
    if ((!fn_cpu_has_avx512() && !fn_cpu_has_avx2()) || k <= 0 || n <= 0) return 0;
    float *p = aligned_alloc(64, (packed_floats(k, n) * sizeof(float) + 63) / 64 * 64);
    if (!p) return -1;
    to_panels(p, w, sizeof(float), k, n, wp->sliced);
    wp->p = p;
    return 0;
}

void fn_wpack_free(fn_wpack *wp)
{
    if (!wp) return;
    free(wp->p);
    wp->p = NULL;
    free(wp->q);
    free(wp->qsm);
    wp->q = NULL;
    wp->qsm = NULL;
    fn_wpack_amx_free(wp);
    fn_wpack_i16_free(wp);
}

/* fn_decode_bytes's loop; a static clone set, as a global one's resolver would be exported. */
GENERIC_CLONES static void decode_bytes(const unsigned char *q, size_t rows, int n, const float *s,
                                        const float *m, float *out)
{
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < n; c++)
            out[r * (size_t)n + (size_t)c] = fmaf((float)q[r * (size_t)n + (size_t)c], s[c], m[c]);
}

void fn_decode_bytes(const unsigned char *q, size_t rows, int n, const float *s, const float *m,
                     float *out)
{
    decode_bytes(q, rows, n, s, m, out);
}

size_t fn_cpu_l2_bytes(void)
{
#ifdef _SC_LEVEL2_CACHE_SIZE
    const long n = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (n > 0) return (size_t)n;
#endif
    return (size_t)1 << 20;
}

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static _Thread_local void *tscratch;
static _Thread_local size_t tscratch_cap;

static void scratch_free(void *p)
{
    free(p);
}

static void scratch_key_make(void)
{
    if (pthread_key_create(&scratch_key, scratch_free)) abort(); /* only at resource exhaustion */
}

void *fn_thread_scratch(size_t bytes)
{
    if (bytes <= tscratch_cap) return tscratch;
    pthread_once(&scratch_once, scratch_key_make);
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) return NULL;
    free(tscratch);
    tscratch = p;
    tscratch_cap = bytes;
    pthread_setspecific(scratch_key, p);
    return p;
}

int fn_wpack_bytes(fn_wpack *wp, const unsigned char *q, const float *s, const float *m)
{
    if (!wp->p || !(fn_cpu_has_avx512() || fn_cpu_has_avx2())) return 0;
    const int k = wp->k, n = wp->n;
    const size_t qbytes = packed_floats(k, n), sfloats = packed_floats(2, n);
    unsigned char *qb = aligned_alloc(64, (qbytes + 63) / 64 * 64);
    float *sm = aligned_alloc(64, (sfloats * sizeof(float) + 63) / 64 * 64);
    if (!qb || !sm) {
        free(qb);
        free(sm);
        return -1;
    }
    /* The bytes in the panels' layout, each row checked against the floats the panel holds. */
    to_panels(qb, q, 1, k, n, 0);
    const unsigned char *d = qb;
    const float *p = wp->p;
    float *e = sm, row[64];
    for (int n0 = 0; n0 < n;) {
        const int pw = fn_panel_width(n - n0), wpad = (pw + 15) / 16 * 16;
        for (int r = 0; r < k; r++, d += wpad) {
            fn_decode_bytes(d, 1, pw, s + n0, m + n0, row);
            for (int j = 0; j < pw; j += 16)
                if (memcmp(&row[j], p + fn_panel_index(k, wpad, wp->sliced, r, j),
                           sizeof(float) * (size_t)fn_slice_cols(pw, j)) != 0) {
                    free(qb);
                    free(sm);
                    return -2;
                }
        }
        p += (size_t)k * wpad;
        for (int j = 0; j < wpad; j++) {
            e[j] = j < pw ? s[n0 + j] : 0.0f;
            e[wpad + j] = j < pw ? m[n0 + j] : 0.0f;
        }
        e += 2 * wpad;
        n0 += pw;
    }
    wp->q = qb;
    wp->qsm = sm;
    return 0;
}

float fn_wpack_at(const fn_wpack *wp, int r, int c)
{
    if (wp->w) return wp->w[(size_t)r * wp->n + c];
    const float *bp = wp->p;
    int n0 = 0, pw = fn_panel_width(wp->n);
    while (c >= n0 + pw) {
        bp += (size_t)wp->k * ((pw + 15) / 16 * 16);
        n0 += pw;
        pw = fn_panel_width(wp->n - n0);
    }
    return bp[fn_panel_index(wp->k, (pw + 15) / 16 * 16, wp->sliced, r, c - n0)];
}

/* C = act(A B + bias) from the packed panels in portable C: for a pack whose source was dropped
 * (fn_wpack.w NULL) when the generic kernels are forced on a CPU that packs (tests). */
GENERIC_CLONES static void gemm_packed_generic(int M, int N, int K, const float *A, const float *Bp,
                                               int sliced, const float *bias, fn_act act, float *C)
{
    for (int n0 = 0; n0 < N;) {
        const int w = fn_panel_width(N - n0), wpad = (w + 15) / 16 * 16;
        /* a row of the panel: wpad floats, or (sliced) 16 floats of each slice */
        const int ld = sliced ? 16 : wpad;
        for (int m = 0; m < M; m++) {
            float *restrict c = C + (size_t)m * N + n0;
            for (int j = 0; j < w; j++)
                c[j] = 0.0f;
            for (int j0 = 0; j0 < w; j0 += 16) {
                const int jn = fn_slice_cols(w, j0);
                const float *bj = Bp + fn_panel_index(K, wpad, sliced, 0, j0);
                for (int k = 0; k < K; k++) {
                    const float a = A[(size_t)m * K + k];
                    const float *restrict b = bj + (size_t)k * ld;
                    for (int j = 0; j < jn; j++)
                        c[j0 + j] += a * b[j];
                }
            }
        }
        Bp += (size_t)K * wpad;
        n0 += w;
    }
    bias_act_rows(C, (size_t)M, N, bias, act);
}

/* 1 when this thread runs a GEMM of m rows on wp's bytes (gemm_bytes_avx512, fn_gemm_bytes_avx2):
 * AVX-512 or AVX2 kernels, not AMX, and few enough rows that the panels' streaming would be its
 * time. */
#define BYTES_MAX_ROWS 64
static int bytes_path(const fn_wpack *wp, int m)
{
    return wp->q && m <= BYTES_MAX_ROWS && (use_avx512() || use_avx2()) &&
           !(fn_amx_thread() && wp->amx);
}

/* 1 when this thread runs a GEMM of m rows on wp's int16 pack (vision.precision = int16,
 * gemm_i16.c). Not below I16_MIN_ROWS rows where the bytes kernel applies: it streams one byte a
 * weight where the int16 pack has two, and a GEMM of a row or two is that streaming (the
 * descriptor's last layers: 1 row 0.8x int16 vs bytes, 9 rows 1.1x, 16 rows 1.3x). */
#define I16_MIN_ROWS 4
static int i16_path(const fn_wpack *wp, int m)
{
    return fn_i16_thread() && wp->i16 && !(m < I16_MIN_ROWS && bytes_path(wp, m));
}

/* The GEMM with fused bias and activation, by the fastest kernel this CPU has: the packed panels
 * when the weights have them (AVX-512 or AVX2), else B read in place (AVX-512) or OpenBLAS. */
static void gemm_bias_act(int m, const fn_wpack *wp, const float *a, const float *bias, fn_act act,
                          float *c)
{
    const int n = wp->n, k = wp->k;
    /* vision.precision = bf16 (gemm_amx.c). The thread's setting is read first: a thread with BF16
     * off never reads wp->amx, which a BF16 thread may be filling in (models.c). FP32 below if
     * its buffer cannot grow. */
    if (fn_amx_thread() && wp->amx && fn_gemm_amx(m, wp, a, bias, act, c) == 0) return;
    /* vision.precision = int16 (gemm_i16.c), likewise. */
    if (i16_path(wp, m) && fn_gemm_i16(m, wp, a, bias, act, NULL, c) == 0) return;
    if (bytes_path(wp, m)) {
        if (use_avx2())
            fn_gemm_bytes_avx2(m, n, k, a, k, wp->q, wp->qsm, bias, act, c, n);
        else
            gemm_bytes_avx512(m, n, k, a, k, wp, bias, act, c, n);
        return;
    }
    if (wp->p && use_avx2()) {
        fn_gemm_packed_avx2(m, n, k, a, k, wp->p, wp->sliced, bias, act, c, n, NULL, NULL);
        return;
    }
    if (!wp->w) {
        if (use_avx512())
            gemm_packed_avx512(m, n, k, a, k, wp->p, bias, act, c, n, NULL, NULL);
        else
            gemm_packed_generic(m, n, k, a, wp->p, wp->sliced, bias, act, c);
        return;
    }
    if (use_avx512()) {
        if (wp->p)
            gemm_packed_avx512(m, n, k, a, k, wp->p, bias, act, c, n, NULL, NULL);
        else
            gemm_avx512(m, n, k, a, k, wp->w, n, bias, act, c, n);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, wp->w, n, 0.0f, c,
                n);
    bias_act_rows(c, (size_t)m, n, bias, act);
}

/* 1 when this thread runs wp's GEMMs on the AVX-512 or AVX2 packed kernels (not AMX): the ones
 * that read A in segments and take a sum in their epilogue. */
static int packed_path(const fn_wpack *wp)
{
    return wp->p && (use_avx512() || use_avx2()) && !(fn_amx_thread() && wp->amx);
}

/* C[m][wp->n] = act(A B + bias) on those kernels (packed_path), A's rows lda floats apart, in
 * segments with `seg`, the sum of fn_gemm_sum in the epilogue with `sum` (act none then). */
static void gemm_packed(int m, const fn_wpack *wp, const float *a, int lda, const float *bias,
                        fn_act act, const fn_gemm_sum *sum, const fn_gemm_seg *seg, float *c)
{
    if (use_avx2())
        fn_gemm_packed_avx2(m, wp->n, wp->k, a, lda, wp->p, wp->sliced, bias, act, c, wp->n, sum,
                            seg);
    else
        gemm_packed_avx512(m, wp->n, wp->k, a, lda, wp->p, bias, act, c, wp->n, sum, seg);
}

/* out = relu(out + res) over n floats: fn_conv2d_res_wn's sum where the GEMM cannot take it. */
GENERIC_CLONES static void res_relu(float *restrict out, const float *restrict res, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const float v = res[i] + out[i];
        out[i] = v > 0.0f ? v : 0.0f;
    }
}

/* gemm_bias_act, and with `res` (act none then) C = relu(A B + bias + res), res laid out as C: in
 * the packed GEMMs' epilogue (fn_gemm_sum with no sum stored), else a pass after the GEMM. */
static void gemm_bias_act_res(int m, const fn_wpack *wp, const float *a, const float *bias,
                              fn_act act, const float *res, float *c)
{
    if (res && i16_path(wp, m) && fn_gemm_i16(m, wp, a, bias, FN_ACT_NONE, res, c) == 0) return;
    if (res && packed_path(wp) && !bytes_path(wp, m)) {
        const fn_gemm_sum sum = {res, NULL};
        gemm_packed(m, wp, a, wp->k, bias, FN_ACT_NONE, &sum, NULL, c);
        return;
    }
    gemm_bias_act(m, wp, a, bias, act, c);
    if (res) res_relu(c, res, (size_t)m * wp->n);
}

static void conv_im2col(const fn_t3 *in, int nimg, const fn_wpack *wp, const float *bias, int kh,
                        int kw, int stride, fn_pad pad, fn_act act, const float *res, fn_t3 *out,
                        float *scratch);

void fn_conv2d_w(const fn_t3 *in, const fn_wpack *wp, const float *bias, int kh, int kw, int stride,
                 fn_pad pad, fn_act act, fn_t3 *out, float *scratch)
{
    fn_conv2d_wn(in, 1, wp, bias, kh, kw, stride, pad, act, out, scratch);
}

/* fn_conv2d_wn, and with `res` fn_conv2d_res_wn. */
static void conv2d_wn(const fn_t3 *in, int nimg, const fn_wpack *wp, const float *bias, int kh,
                      int kw, int stride, fn_pad pad, fn_act act, const float *res, fn_t3 *out,
                      float *scratch)
{
    const int cout = wp->n;
    const int ih = in->h, iw = in->w, cin = in->c;
    const int oh = fn_out_size(ih, kh, stride, pad), ow = fn_out_size(iw, kw, stride, pad);
    out->h = oh;
    out->w = ow;
    out->c = cout;
    const int k = kh * kw * cin;
    const double flops = 2.0 * nimg * oh * ow * k * cout;
    ops_flops += flops;
    const double t0 = ops_trace ? trace_now() : 0;
    if (kh == 1 && kw == 1 && stride == 1) {
        gemm_bias_act_res(nimg * oh * ow, wp, in->d, bias, act, res, out->d);
    } else {
        conv_im2col(in, nimg, wp, bias, kh, kw, stride, pad, act, res, out, scratch);
    }
    if (ops_trace)
        trace_layer(kh == 1 && kw == 1 ? "pointwise" : "conv", nimg * oh * ow, cout, k, flops,
                    (double)nimg * ih * iw * cin + (double)k * cout + (double)nimg * oh * ow * cout,
                    trace_now() - t0);
}

void fn_conv2d_wn(const fn_t3 *in, int nimg, const fn_wpack *wp, const float *bias, int kh, int kw,
                  int stride, fn_pad pad, fn_act act, fn_t3 *out, float *scratch)
{
    conv2d_wn(in, nimg, wp, bias, kh, kw, stride, pad, act, NULL, out, scratch);
}

void fn_conv2d_res_wn(const fn_t3 *in, int nimg, const fn_wpack *wp, const float *bias, int kh,
                      int kw, int stride, fn_pad pad, const float *res, fn_t3 *out, float *scratch)
{
    conv2d_wn(in, nimg, wp, bias, kh, kw, stride, pad, FN_ACT_NONE, res, out, scratch);
}

/* One row of the im2col matrix: the kh x kw taps (k = kh * kw * cin floats) of the output pixel
 * whose top-left tap is input pixel (y0, x0) of img (ih x iw x cin); taps outside are zeros. */
static inline void im2col_px(const float *img, int ih, int iw, int cin, int kh, int kw, int y0,
                             int x0, float *row)
{
    for (int ky = 0; ky < kh; ky++) {
        const int y = y0 + ky;
        if (y >= 0 && y < ih && x0 >= 0 && x0 + kw <= iw) {
            /* The kw taps of an input row are kw * cin adjacent floats: one copy (for the RGB
             * first layers, 3 floats a call was most of the layer). The RGB first layers' runs
             * (3x3: 9 floats, 7x7: 21) are copies of a size known here, so the compiler inlines
             * them: a call per 36 or 84 bytes was most of those layers' im2col. */
            float *dst = row + (size_t)ky * kw * cin;
            const float *src = img + ((size_t)y * iw + x0) * cin;
            const int run = kw * cin;
            if (run == 9)
                memcpy(dst, src, sizeof(float) * 9);
            else if (run == 21)
                memcpy(dst, src, sizeof(float) * 21);
            else
                memcpy(dst, src, sizeof(float) * (size_t)run);
            continue;
        }
        for (int kx = 0; kx < kw; kx++) {
            const int x = x0 + kx;
            float *dst = row + ((size_t)ky * kw + kx) * cin;
            if (y < 0 || y >= ih || x < 0 || x >= iw) {
                memset(dst, 0, sizeof(float) * (size_t)cin);
            } else {
                const float *src = img + ((size_t)y * iw + x) * cin;
                if (cin <= 4) /* the RGB first layers: no call per tap */
                    for (int j = 0; j < cin; j++)
                        dst[j] = src[j];
                else
                    memcpy(dst, src, sizeof(float) * (size_t)cin);
            }
        }
    }
}

/* Rows [y0, y1) of the im2col matrix of nimg images (row gy: image gy / oh, output row gy % oh)
 * into col, ow * k floats a row. */
static void im2col_rows(const fn_t3 *in, int oh, int ow, int kh, int kw, int stride, int pt, int pl,
                        int y0, int y1, float *col)
{
    const int ih = in->h, iw = in->w, cin = in->c, k = kh * kw * cin;
    for (int gy = y0; gy < y1; gy++) {
        const int oy = gy % oh;
        const float *img = in->d + (size_t)(gy / oh) * ih * iw * cin;
        for (int ox = 0; ox < ow; ox++)
            im2col_px(img, ih, iw, cin, kh, kw, oy * stride - pt, ox * stride - pl,
                      col + ((size_t)(gy - y0) * ow + ox) * (size_t)k);
    }
}

/* Convs whose output rows have a wide interior (the output pixels all of whose taps are inside the
 * input) read those pixels' taps where they are, without an im2col matrix: the kw taps of one
 * kernel row are kw * cin adjacent floats of the input, so row ox of an output row's A is kh
 * segments of them, one input row apart, and the next pixel's start stride * cin floats on (the
 * GEMM's row stride). One GEMM per output row over its interior; the border pixels (a SAME
 * conv's first and last columns and rows) go through im2col. The same products in the same order
 * as im2col for every pixel. The first layers of the networks are such convs (RGB, 7x7 or 3x3,
 * stride 2: the recognition net's VALID, SSD's and the landmark nets' SAME, whose padding on an
 * even input is one column and row at the end), whose im2col matrices (27 or 147 floats for
 * every 32 outputs) took 0.3 of the recognition net's first layer's 0.7 ms a face. */
#define DIRECT_MIN_OW 24

/* A conv's geometry on one image. */
typedef struct conv_geom {
    int ih, iw, cin, kh, kw, stride, pt, pl, oh, ow;
    int x_lo, x_hi; /* the interior output columns (x_lo == x_hi: none) */
} conv_geom;

static conv_geom conv_geom_of(int ih, int iw, int cin, int kh, int kw, int stride, int pt, int pl,
                              int oh, int ow)
{
    conv_geom g = {ih, iw, cin, kh, kw, stride, pt, pl, oh, ow, 0, 0};
    /* ox * stride - pl >= 0, and ox * stride - pl + kw <= iw (C's division rounds a negative
     * numerator towards 0, hence the test). */
    g.x_lo = (pl + stride - 1) / stride;
    g.x_hi = iw - kw + pl >= 0 ? (iw - kw + pl) / stride + 1 : 0;
    if (g.x_hi > ow) g.x_hi = ow;
    if (g.x_lo > g.x_hi) g.x_lo = g.x_hi;
    return g;
}

/* 1 when the conv's output rows go direct: the vector GEMM on packed weights, a wide interior. */
static int conv_direct_path(const conv_geom *g, const fn_wpack *wp)
{
    return g->x_hi - g->x_lo >= DIRECT_MIN_OW && packed_path(wp);
}

/* Output rows [y0, y1) of one image (img) into dst (row y0 first): on conv_direct_path, each row
 * whose taps are all inside vertically directly over its interior, its border pixels and the
 * other rows through im2col a row at a time; elsewhere by im2col of the whole strip. col holds
 * (y1 - y0) * ow * k floats (one row's worth on conv_direct_path). */
static void conv_rows(const float *img, const conv_geom *g, const fn_wpack *wp, const float *bias,
                      fn_act act, int y0, int y1, float *dst, float *col)
{
    const int n = wp->n, k = g->kh * g->kw * g->cin, ow = g->ow;
    const fn_t3 in = {g->ih, g->iw, g->cin, (float *)img};
    if (!conv_direct_path(g, wp)) {
        im2col_rows(&in, g->oh, ow, g->kh, g->kw, g->stride, g->pt, g->pl, y0, y1, col);
        gemm_bias_act((y1 - y0) * ow, wp, col, bias, act, dst);
        return;
    }
    const fn_gemm_seg sg = {(size_t)g->iw * g->cin, g->kh};
    for (int oy = y0; oy < y1; oy++) {
        float *o = dst + (size_t)(oy - y0) * ow * n;
        const int ytop = oy * g->stride - g->pt;
        if (ytop < 0 || ytop + g->kh > g->ih) {
            im2col_rows(&in, g->oh, ow, g->kh, g->kw, g->stride, g->pt, g->pl, oy, oy + 1, col);
            gemm_bias_act(ow, wp, col, bias, act, o);
            continue;
        }
        gemm_packed(g->x_hi - g->x_lo, wp,
                    img + ((size_t)ytop * g->iw + (size_t)(g->x_lo * g->stride - g->pl)) * g->cin,
                    g->stride * g->cin, bias, act, NULL, &sg, o + (size_t)g->x_lo * n);
        /* The border pixels: [0, x_lo) and [x_hi, ow). */
        const int spans[2][2] = {{0, g->x_lo}, {g->x_hi, ow}};
        for (int sp = 0; sp < 2; sp++) {
            const int a = spans[sp][0], b = spans[sp][1];
            if (a == b) continue;
            for (int ox = a; ox < b; ox++)
                im2col_px(img, g->ih, g->iw, g->cin, g->kh, g->kw, ytop, ox * g->stride - g->pl,
                          col + (size_t)(ox - a) * k);
            gemm_bias_act(b - a, wp, col, bias, act, o + (size_t)a * n);
        }
    }
}

/* A 3x3 stride-1 SAME conv on the AVX-512 or AVX2 GEMM without the full im2col matrix. Row m of
 * that matrix is three runs of 3 x cin floats, the taps of input rows y - 1, y and y + 1 around
 * x; so a strip of output rows needs only "rows of taps" (each pixel's three horizontal
 * neighbours) for its input rows and the one above and below, and the GEMM's tiles read their A
 * in three segments one input row of taps apart (ptile_*g, AVX2 tile_*g). A third of im2col's
 * copying, the same products in the same order (the same floats). Maps of at least
 * CONV3_MIN_PIXELS, one image at a time (smaller maps keep im2col, whose strips take the rows of
 * several images in one GEMM so their weights stream once for the batch). */
#define CONV3_MIN_PIXELS 256

static int conv3_rows_path(const fn_t3 *in, const fn_wpack *wp, int kh, int kw, int stride,
                           fn_pad pad)
{
    return kh == 3 && kw == 3 && stride == 1 && pad == FN_PAD_SAME &&
           in->h * in->w >= CONV3_MIN_PIXELS && packed_path(wp);
}

/* Rows of taps [y0, y1) of one image into col (rows outside the image are zeros). */
static void taps_rows(const fn_t3 *img, int y0, int y1, float *col)
{
    const int h = img->h, w = img->w, c = img->c;
    const size_t run = (size_t)3 * c;
    for (int y = y0; y < y1; y++) {
        float *row = col + (size_t)(y - y0) * w * run;
        if (y < 0 || y >= h) {
            memset(row, 0, sizeof(float) * w * run);
            continue;
        }
        const float *src = img->d + (size_t)y * w * c;
        for (int x = 0; x < w; x++) {
            float *dst = row + (size_t)x * run;
            if (x >= 1 && x + 1 < w) {
                memcpy(dst, src + (size_t)(x - 1) * c, sizeof(float) * run);
                continue;
            }
            for (int t = 0; t < 3; t++) {
                const int xx = x - 1 + t;
                if (xx < 0 || xx >= w)
                    memset(dst + (size_t)t * c, 0, sizeof(float) * c);
                else
                    memcpy(dst + (size_t)t * c, src + (size_t)xx * c, sizeof(float) * c);
            }
        }
    }
}

/* conv3_rows_path's conv of nimg images; scratch holds `floats` (what im2col would use, at least
 * one im2col row: three rows of taps). */
static void conv3_rows(const fn_t3 *in, int nimg, const fn_wpack *wp, const float *bias, fn_act act,
                       const float *res, fn_t3 *out, float *scratch, size_t floats)
{
    const int h = in->h, w = in->w, c = in->c, n = wp->n;
    const size_t tap_row = (size_t)w * 3 * c; /* floats of one row of taps */
    int rows = (int)(floats / tap_row) - 2;   /* output rows per strip */
    const fn_gemm_seg sg = {tap_row, 3};
    const int i16 = fn_i16_thread() && wp->i16; /* vision.precision = int16 (gemm_i16.c) */
    if (rows < 1) rows = 1;
    for (int i = 0; i < nimg; i++) {
        const fn_t3 img = {h, w, c, in->d + (size_t)i * h * w * c};
        /* int16: one scale for the image, whatever the strips and the batch */
        const float amax = i16 ? fn_i16_absmax(img.d, (size_t)h * w * c) : 0.0f;
        for (int y0 = 0; y0 < h; y0 += rows) {
            const int y1 = y0 + rows < h ? y0 + rows : h;
            taps_rows(&img, y0 - 1, y1 + 1, scratch);
            const size_t at = ((size_t)i * h + (size_t)y0) * w * n;
            if (i16 &&
                fn_gemm_i16_seg((y1 - y0) * w, wp, scratch, 3 * c, 3, tap_row, amax, bias,
                                res ? FN_ACT_NONE : act, res ? res + at : NULL, out->d + at) == 0)
                continue;
            const fn_gemm_sum sum = {res ? res + at : NULL, NULL};
            gemm_packed((y1 - y0) * w, wp, scratch, 3 * c, bias, act, res ? &sum : NULL, &sg,
                        out->d + at);
        }
    }
}

/* fn_conv2d_w's im2col path: the im2col matrix strip by strip, each strip's GEMM at once; with
 * `res`, out = relu(conv + res) (act none). */
static void conv_im2col(const fn_t3 *in, int nimg, const fn_wpack *wp, const float *bias, int kh,
                        int kw, int stride, fn_pad pad, fn_act act, const float *res, fn_t3 *out,
                        float *scratch)
{
    const int ih = in->h, iw = in->w, cin = in->c, cout = wp->n;
    const int oh = out->h, ow = out->w, k = kh * kw * cin;
    const int pt = pad_before(ih, kh, stride, pad), pl = pad_before(iw, kw, stride, pad);
    /* The images' output rows one after the other (image gy / oh, row gy % oh): a strip may span
     * images, so a small map's GEMM gets the rows of several images at once. */
    const int total = nimg * oh, rows = strip_rows(total, ow, k);
    if (conv3_rows_path(in, wp, kh, kw, stride, pad)) {
        conv3_rows(in, nimg, wp, bias, act, res, out, scratch, (size_t)rows * ow * k);
        return;
    }
    const conv_geom g = conv_geom_of(ih, iw, cin, kh, kw, stride, pt, pl, oh, ow);
    if (conv_direct_path(&g, wp)) {
        for (int i = 0; i < nimg; i++)
            conv_rows(in->d + (size_t)i * ih * iw * cin, &g, wp, bias, act, 0, oh,
                      out->d + (size_t)i * oh * ow * cout, scratch);
        if (res) res_relu(out->d, res, (size_t)nimg * oh * ow * cout);
        return;
    }
    for (int y0 = 0; y0 < total; y0 += rows) {
        const int y1 = y0 + rows < total ? y0 + rows : total;
        im2col_rows(in, oh, ow, kh, kw, stride, pt, pl, y0, y1, scratch);
        const size_t at = (size_t)y0 * ow * cout;
        gemm_bias_act_res((y1 - y0) * ow, wp, scratch, bias, act, res ? res + at : NULL,
                          out->d + at);
    }
}

void fn_conv2d(const fn_t3 *in, const float *w_hwio, const float *bias, int kh, int kw, int cout,
               int stride, fn_pad pad, fn_act act, fn_t3 *out, float *scratch)
{
    const fn_wpack wp = {.w = w_hwio, .k = kh * kw * in->c, .n = cout};
    fn_conv2d_w(in, &wp, bias, kh, kw, stride, pad, act, out, scratch);
}

/* The portable depthwise loop for output rows [oy_begin, oy_end). in->d holds the input's rows
 * (fn_dw_row; in->h is the whole map's height). */
GENERIC_CLONES static void dw_rows_generic(const fn_t3 *in, int ring, const float *w,
                                           const float *bias, int k, int stride, int pt, int pl,
                                           fn_act act, float *out, int oy_begin, int oy_end, int ow)
{
    const int ih = in->h, iw = in->w, c = in->c;
    for (int oy = oy_begin; oy < oy_end; oy++) {
        for (int ox = 0; ox < ow; ox++) {
            float *restrict o = out + ((size_t)(oy - oy_begin) * ow + ox) * c;
            for (int j = 0; j < c; j++)
                o[j] = 0.0f;
            for (int ky = 0; ky < k; ky++) {
                int y = oy * stride - pt + ky;
                if (y < 0 || y >= ih) continue;
                for (int kx = 0; kx < k; kx++) {
                    int x = ox * stride - pl + kx;
                    if (x < 0 || x >= iw) continue;
                    const float *restrict p =
                        fn_dw_row(in->d, ring, (size_t)iw * c, y) + (size_t)x * c;
                    const float *restrict wk = w + ((size_t)ky * k + kx) * c;
                    for (int j = 0; j < c; j++)
                        o[j] += p[j] * wk[j];
                }
            }
        }
    }
    bias_act_rows(out, (size_t)(oy_end - oy_begin) * ow, c, bias, act);
}

/* Output rows [oy_begin, oy_end) of a k x k depthwise conv into out (which holds those rows).
 * in->d holds the input's rows (fn_dw_row): all of them (ring 0), or the ring of them a
 * separable chain keeps (fn_sepchain_w), which must hold every row these outputs read. */
static void dw_rows(const fn_t3 *in, int ring, const float *w, const float *bias, int k, int stride,
                    int pt, int pl, fn_act act, float *out, int oy_begin, int oy_end, int ow)
{
    if (k == 3 && use_avx512()) {
        dw3x3_avx512(in->d, ring, in->h, in->w, in->c, w, bias, stride, pt, pl, act, out, oy_begin,
                     oy_end, ow);
        return;
    }
    if (k == 3 && use_avx2()) {
        fn_dw3x3_avx2(in->d, ring, in->h, in->w, in->c, w, bias, stride, pt, pl, act, out, oy_begin,
                      oy_end, ow);
        return;
    }
    dw_rows_generic(in, ring, w, bias, k, stride, pt, pl, act, out, oy_begin, oy_end, ow);
}

void fn_dwconv2d(const fn_t3 *in, const float *w, const float *bias, int k, int stride, fn_pad pad,
                 fn_act act, fn_t3 *out)
{
    const int oh = fn_out_size(in->h, k, stride, pad), ow = fn_out_size(in->w, k, stride, pad);
    out->h = oh;
    out->w = ow;
    out->c = in->c;
    const double flops = 2.0 * oh * ow * k * k * in->c;
    ops_flops += flops;
    const double t0 = ops_trace ? trace_now() : 0;
    dw_rows(in, 0, w, bias, k, stride, pad_before(in->h, k, stride, pad),
            pad_before(in->w, k, stride, pad), act, out->d, 0, oh, ow);
    if (ops_trace)
        trace_layer("depthwise", oh * ow, in->c, k * k, flops,
                    (double)in->h * in->w * in->c + (double)k * k * in->c + (double)oh * ow * in->c,
                    trace_now() - t0);
}

static void pool_strip(const fn_t3 *strip, int y0, fn_t3 *out);

/* The separable conv runs in strips of output rows: the depthwise result of a strip (at most
 * this many floats, unless the whole map is small) stays in L2 and feeds the GEMM at once. */
#define SEP_STRIP_FLOATS ((size_t)128 * 1024)
#define SEP_WHOLE_FLOATS ((size_t)512 * 1024)

static int sep_strip_rows(int oh, int ow, int c)
{
    size_t row = (size_t)ow * c;
    if (row * oh <= SEP_WHOLE_FLOATS) return oh;
    size_t rows = SEP_STRIP_FLOATS / row;
    if (rows < 1) rows = 1;
    return rows > (size_t)oh ? oh : (int)rows;
}

size_t fn_sepconv_scratch_floats(int in_h, int in_w, int cin, int stride)
{
    int oh = fn_out_size(in_h, 3, stride, FN_PAD_SAME),
        ow = fn_out_size(in_w, 3, stride, FN_PAD_SAME);
    return (size_t)sep_strip_rows(oh, ow, cin) * ow * cin;
}

/* fn_sepconv_pool_w's strips: an even number of rows (each strip pools into whole rows). */
static int sep_pool_rows(int oh, int ow, int c)
{
    const int rows = sep_strip_rows(oh, ow, c);
    return rows >= oh ? oh : rows > 1 ? rows / 2 * 2 : 2;
}

size_t fn_sepconv_pool_scratch_floats(int in_h, int in_w, int cin, int cout)
{
    const int rows = sep_pool_rows(in_h, in_w, cin);
    return (size_t)rows * in_w * (cin + cout);
}

/* fn_sepconv_w, and with pool_2x2 (stride 1 then) fn_sepconv_pool_w: each strip's pointwise output
 * into the scratch after its depthwise rows, then max pooled into out. */
static void sepconv_strips(const fn_t3 *in, const float *dw_w, const float *dw_b, int stride,
                           fn_act dw_act, const fn_wpack *pw, const float *pw_b, fn_act pw_act,
                           int pool_2x2, fn_t3 *out, float *scratch)
{
    const int ih = in->h, iw = in->w, c = in->c, cout = pw->n;
    const int oh = fn_out_size(ih, 3, stride, FN_PAD_SAME),
              ow = fn_out_size(iw, 3, stride, FN_PAD_SAME);
    const int pt = pad_before(ih, 3, stride, FN_PAD_SAME),
              pl = pad_before(iw, 3, stride, FN_PAD_SAME);
    const int rows = pool_2x2 ? sep_pool_rows(oh, ow, c) : sep_strip_rows(oh, ow, c);
    /* With the pool, the strip's pointwise rows go after its depthwise rows, to be pooled. */
    float *pout = pool_2x2 ? scratch + (size_t)rows * ow * c : NULL;
    out->h = pool_2x2 ? fn_out_size(oh, 2, 2, FN_PAD_SAME) : oh;
    out->w = pool_2x2 ? fn_out_size(ow, 2, 2, FN_PAD_SAME) : ow;
    out->c = cout;
    ops_flops += 2.0 * oh * ow * c * (9 + cout);
    double t_dw = 0, t_pw = 0;
    for (int y0 = 0; y0 < oh; y0 += rows) {
        const int y1 = y0 + rows < oh ? y0 + rows : oh;
        const double t0 = ops_trace ? trace_now() : 0;
        dw_rows(in, 0, dw_w, dw_b, 3, stride, pt, pl, dw_act, scratch, y0, y1, ow);
        const double t1 = ops_trace ? trace_now() : 0;
        if (!pool_2x2) {
            gemm_bias_act((y1 - y0) * ow, pw, scratch, pw_b, pw_act,
                          out->d + (size_t)y0 * ow * cout);
        } else {
            gemm_bias_act((y1 - y0) * ow, pw, scratch, pw_b, pw_act, pout);
            const fn_t3 cv = {y1 - y0, ow, cout, pout};
            pool_strip(&cv, y0, out);
        }
        if (ops_trace) t_dw += t1 - t0, t_pw += trace_now() - t1;
    }
    if (ops_trace) {
        /* The depthwise half's traffic is its input and weights (its output stays in cache);
         * the pointwise half's is its weights and output. */
        trace_layer("sep.depthwise", oh * ow, c, 9, 2.0 * oh * ow * c * 9,
                    (double)ih * iw * c + 9.0 * c, t_dw);
        trace_layer("sep.pointwise", oh * ow, cout, c, 2.0 * oh * ow * c * cout,
                    (double)c * cout + (double)out->h * out->w * cout, t_pw);
    }
}

void fn_sepconv_w(const fn_t3 *in, const float *dw_w, const float *dw_b, int stride, fn_act dw_act,
                  const fn_wpack *pw, const float *pw_b, fn_act pw_act, fn_t3 *out, float *scratch)
{
    sepconv_strips(in, dw_w, dw_b, stride, dw_act, pw, pw_b, pw_act, 0, out, scratch);
}

void fn_sepconv_pool_w(const fn_t3 *in, const float *dw_w, const float *dw_b, fn_act dw_act,
                       const fn_wpack *pw, const float *pw_b, fn_act pw_act, fn_t3 *out,
                       float *scratch)
{
    sepconv_strips(in, dw_w, dw_b, 1, dw_act, pw, pw_b, pw_act, 1, out, scratch);
}

/* ---- A dense block's separable conv (fn_sepconv_sum_w) ----
 *
 * FaceLandmark68Net keeps a running sum of its separable convs' outputs: sum += q, then relu(sum)
 * is the next conv's input. Done as three passes over whole maps (depthwise, pointwise, then the
 * sum), the pointwise output q went to L2 and was read back by a separate add loop: that loop took
 * a fifth of the net's time (perf, Intel Xeon VM), and still 18 % when it ran per strip on a q in
 * L1 (its loads and stores of the sum maps, in L2, waited with nothing else to do). So the sum is
 * the packed GEMMs' epilogue (fn_gemm_sum): those loads and stores overlap the next tile's FMAs,
 * and q is never stored. A strip of rows at a time, so the depthwise rows the GEMM reads (about
 * SUM_STRIP_FLOATS) stay in L1; the other kernels (OpenBLAS, AMX) keep the separate pass. */
#define SUM_STRIP_FLOATS ((size_t)8 * 1024)

static int sum_strip_rows(int oh, int ow, int c, int cout)
{
    const size_t row = (size_t)ow * (size_t)(c > cout ? c : cout);
    size_t rows = row ? SUM_STRIP_FLOATS / row : 1;
    if (rows < 1) rows = 1;
    return rows > (size_t)oh ? oh : (int)rows;
}

size_t fn_sepconv_sum_scratch_floats(int h, int w, int cin, int cout)
{
    return (size_t)sum_strip_rows(h, w, cin, cout) * (size_t)w * (size_t)(cin + cout);
}

/* sum_out = sum_in + q, relu_out = relu(sum_out) (sum_out may be sum_in, or NULL: not stored).
 * The relu is the one of bias_act_rows and act_v: NaN and -0 give +0. */
GENERIC_CLONES static void add_sum_relu(const float *sum_in, const float *restrict q,
                                        float *sum_out, float *restrict relu_out, size_t n)
{
    if (!sum_out) {
        for (size_t i = 0; i < n; i++) {
            const float v = sum_in[i] + q[i];
            relu_out[i] = v > 0.0f ? v : 0.0f;
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const float v = sum_in[i] + q[i];
        sum_out[i] = v;
        relu_out[i] = v > 0.0f ? v : 0.0f;
    }
}

/* relu_out = max(sum_in + (A B + bias), 0), and the sum into sum_out unless it is NULL: in the
 * packed GEMMs' epilogue where this thread runs them, else the GEMM into q (m x n floats) and a
 * pass over it. */
static void gemm_sum(int m, const fn_wpack *wp, const float *a, const float *bias,
                     const float *sum_in, float *sum_out, float *relu_out, float *q)
{
    const int n = wp->n, k = wp->k;
    const fn_gemm_sum sum = {sum_in, sum_out};
    if (packed_path(wp) && !i16_path(wp, m)) {
        gemm_packed(m, wp, a, k, bias, FN_ACT_NONE, &sum, NULL, relu_out);
        return;
    }
    gemm_bias_act(m, wp, a, bias, FN_ACT_NONE, q); /* int16 there when the thread has it on */
    add_sum_relu(sum_in, q, sum_out, relu_out, (size_t)m * n);
}

void fn_sepconv_sum_w(const fn_t3 *in, const float *dw_w, const fn_wpack *pw, const float *pw_b,
                      const float *sum_in, float *sum_out, float *relu_out, float *scratch)
{
    const int h = in->h, w = in->w, c = in->c, cout = pw->n;
    const int rows = sum_strip_rows(h, w, c, cout);
    const int pt = pad_before(h, 3, 1, FN_PAD_SAME), pl = pad_before(w, 3, 1, FN_PAD_SAME);
    float *q = scratch + (size_t)rows * w * c;
    ops_flops += 2.0 * h * w * c * (9 + cout);
    double t_dw = 0, t_pw = 0;
    for (int y0 = 0; y0 < h; y0 += rows) {
        const int y1 = y0 + rows < h ? y0 + rows : h;
        const size_t off = (size_t)y0 * w * cout;
        const double t0 = ops_trace ? trace_now() : 0;
        dw_rows(in, 0, dw_w, NULL, 3, 1, pt, pl, FN_ACT_NONE, scratch, y0, y1, w);
        const double t1 = ops_trace ? trace_now() : 0;
        gemm_sum((y1 - y0) * w, pw, scratch, pw_b, sum_in + off, sum_out ? sum_out + off : NULL,
                 relu_out + off, q);
        if (ops_trace) t_dw += t1 - t0, t_pw += trace_now() - t1;
    }
    if (ops_trace) {
        trace_layer("sum.depthwise", h * w, c, 9, 2.0 * h * w * c * 9, (double)h * w * c + 9.0 * c,
                    t_dw);
        trace_layer("sum.pointwise", h * w, cout, c, 2.0 * h * w * c * cout,
                    (double)c * cout + 3.0 * h * w * cout, t_pw);
    }
}

void fn_sepconv(const fn_t3 *in, const float *dw_w, const float *dw_b, int stride, fn_act dw_act,
                const float *pw_w, const float *pw_b, int cout, fn_act pw_act, fn_t3 *out,
                float *scratch)
{
    const fn_wpack wp = {.w = pw_w, .k = in->c, .n = cout};
    fn_sepconv_w(in, dw_w, dw_b, stride, dw_act, &wp, pw_b, pw_act, out, scratch);
}

/* ---- Chains of separable blocks (fn_sepchain_w) ----
 *
 * Each block is a stage that makes its output rows a strip at a time: the depthwise rows of the
 * strip into its own small buffer, then the pointwise GEMM on them. A stage's input is the stage
 * before's output, which that stage keeps only as a window of rows (those the next strip still
 * reads, plus one strip more), made on demand when the stage after asks for rows it does not hold
 * yet. The window is a ring (row y at row y % cap), so rows never move: moving the rows still
 * needed to the window's start before each strip (as it did) copied 46 MB per SSD run. An optional
 * head conv (SSD's conv0) is a stage too, its strips im2col then GEMM. So the big maps of SSD's
 * first layers (8-16 MB each at 256x256 and 128x128) never go to memory: fn_sepconv_w wrote each
 * one out and the next block's depthwise read it back at DRAM speed (0.05-0.15 of the peak,
 * bench_vision --layers). Every output is computed once, by the same kernels and in the same order
 * as fn_conv2d_w and fn_sepconv_w, so the results are the same to the bit (on the AVX-512 path:
 * OpenBLAS may sum in another order for another number of rows). */

/* Strip height of a stage: about this many floats of its widest row (input, im2col or output),
 * at least one row. */
#define CHAIN_STRIP_FLOATS ((size_t)32 * 1024)

typedef struct chain_stage {
    const fn_conv_head *conv; /* the head conv, or NULL: block b */
    const fn_sep_block *b;
    int ih, iw, c, oh, ow, cout, pt, pl, stride, kh;
    int rows;   /* output rows per strip */
    int cap;    /* rows the window holds, a multiple of rows or oh (not for the last stage) */
    float *dw;  /* the strip's depthwise output (rows * ow * c) or im2col matrix */
    float *win; /* output rows [lo, done), row y at y % cap (the last stage: the caller's map) */
    int lo, done;
    double t_dw, t_pw; /* trace only */
} chain_stage;

/* Shapes, strip heights and window capacities of the stages; with `scratch`, also their
 * buffers. Returns the scratch floats they need. */
static size_t chain_plan(int in_h, int in_w, int cin, const fn_conv_head *head,
                         const fn_sep_block *blocks, int nb, chain_stage *st, float *scratch)
{
    size_t total = 0;
    int h = in_h, w = in_w, c = cin;
    const int ns = nb + (head ? 1 : 0);
    for (int s = 0; s < ns; s++) {
        chain_stage *g = &st[s];
        g->conv = head && s == 0 ? head : NULL;
        g->b = g->conv ? NULL : &blocks[s - (head ? 1 : 0)];
        const int k = g->conv ? head->k : 3;
        const fn_pad pad = g->conv ? head->pad : FN_PAD_SAME;
        g->stride = g->conv ? head->stride : g->b->stride;
        g->kh = k;
        g->ih = h, g->iw = w, g->c = c;
        g->oh = fn_out_size(h, k, g->stride, pad);
        g->ow = fn_out_size(w, k, g->stride, pad);
        g->cout = g->conv ? head->wp->n : g->b->pw->n;
        g->pt = pad_before(h, k, g->stride, pad);
        g->pl = pad_before(w, k, g->stride, pad);
        const int kin = g->conv ? k * k * c : c; /* floats per pixel of the strip buffer */
        const size_t row = (size_t)g->ow * (size_t)(kin > g->cout ? kin : g->cout);
        const size_t r = row ? CHAIN_STRIP_FLOATS / row : 1;
        g->rows = r < 1 ? 1 : r > (size_t)g->oh ? g->oh : (int)r;
        g->lo = g->done = 0;
        g->t_dw = g->t_pw = 0;
        h = g->oh, w = g->ow, c = g->cout;
    }
    for (int s = 0; s < ns; s++) {
        chain_stage *g = &st[s];
        const int kin = g->conv ? g->kh * g->kh * g->c : g->c;
        const size_t dw = ((size_t)g->rows * g->ow * kin + 15) / 16 * 16;
        size_t win = 0;
        g->cap = 0;
        if (s + 1 < ns) {
            /* The next stage's strip reads (rows - 1) * stride + 3 of our rows; we hold them from
             * its first on, and a strip of ours can overshoot what it asked for by rows - 1. */
            const chain_stage *n = &st[s + 1];
            g->cap = (n->rows - 1) * n->stride + 3 + g->rows - 1;
            /* Whole strips, so that no strip wraps around the ring's end. */
            g->cap = (g->cap + g->rows - 1) / g->rows * g->rows;
            if (g->cap > g->oh) g->cap = g->oh;
            win = ((size_t)g->cap * g->ow * g->cout + 15) / 16 * 16;
        }
        if (scratch) {
            g->dw = scratch + total;
            g->win = win ? scratch + total + dw : NULL;
        }
        total += dw + win;
    }
    return total;
}

size_t fn_sepchain_scratch_floats(int in_h, int in_w, int cin, const fn_conv_head *head,
                                  const fn_sep_block *blocks, int nblocks)
{
    chain_stage st[FN_SEPCHAIN_MAX + 1];
    if (nblocks < (head ? 0 : 1) || nblocks > FN_SEPCHAIN_MAX) return 0;
    return chain_plan(in_h, in_w, cin, head, blocks, nblocks, st, NULL);
}

/* Makes stage s hold its output rows [need_lo, need_hi) (the last stage: writes them to out),
 * first dropping the rows below need_lo, which no later strip reads. */
static void chain_fill(chain_stage *st, int s, int last, const fn_t3 *in, fn_t3 *out, int need_lo,
                       int need_hi)
{
    chain_stage *g = &st[s];
    const size_t orow = (size_t)g->ow * g->cout;
    if (s != last && need_lo > g->lo) {
        /* Consecutive strips of a stage read overlapping or adjacent rows (strides 1 and 2), so
         * need_lo <= done; were it not, the rows between would be needed by nobody. */
        if (g->done < need_lo) g->done = need_lo;
        g->lo = need_lo;
    }
    while (g->done < need_hi) {
        const int y0 = g->done;
        int y1 = y0 + g->rows < g->oh ? y0 + g->rows : g->oh;
        /* Strips start at multiples of rows, but were one not to, it still must not wrap. */
        if (s != last && y1 - y0 > g->cap - y0 % g->cap) y1 = y0 + g->cap - y0 % g->cap;
        int in_lo = y0 * g->stride - g->pt, in_hi = (y1 - 1) * g->stride - g->pt + g->kh;
        if (in_lo < 0) in_lo = 0;
        if (in_hi > g->ih) in_hi = g->ih;
        fn_t3 src = *in;
        int ring = 0;
        if (s > 0) {
            chain_fill(st, s - 1, last, in, out, in_lo, in_hi);
            src = (fn_t3){g->ih, g->iw, g->c, st[s - 1].win};
            ring = st[s - 1].cap;
        }
        float *dst = s == last ? out->d + (size_t)y0 * orow : g->win + (size_t)(y0 % g->cap) * orow;
        const double t0 = ops_trace ? trace_now() : 0;
        if (g->conv) {
            /* The head reads the caller's whole input (stage 0 only). */
            const conv_geom cg = conv_geom_of(g->ih, g->iw, g->c, g->kh, g->kh, g->stride, g->pt,
                                              g->pl, g->oh, g->ow);
            conv_rows(src.d, &cg, g->conv->wp, g->conv->bias, g->conv->act, y0, y1, dst, g->dw);
            if (ops_trace) g->t_pw += trace_now() - t0;
        } else {
            dw_rows(&src, ring, g->b->dw_w, g->b->dw_b, 3, g->stride, g->pt, g->pl, g->b->dw_act,
                    g->dw, y0, y1, g->ow);
            const double t1 = ops_trace ? trace_now() : 0;
            gemm_bias_act((y1 - y0) * g->ow, g->b->pw, g->dw, g->b->pw_b, g->b->pw_act, dst);
            if (ops_trace) g->t_dw += t1 - t0, g->t_pw += trace_now() - t1;
        }
        g->done = y1;
    }
}

void fn_sepchain_w(const fn_t3 *in, const fn_conv_head *head, const fn_sep_block *blocks,
                   int nblocks, fn_t3 *out, float *scratch)
{
    chain_stage st[FN_SEPCHAIN_MAX + 1];
    if (nblocks < (head ? 0 : 1) || nblocks > FN_SEPCHAIN_MAX) return;
    chain_plan(in->h, in->w, in->c, head, blocks, nblocks, st, scratch);
    const int last = nblocks + (head ? 1 : 0) - 1;
    out->h = st[last].oh;
    out->w = st[last].ow;
    out->c = st[last].cout;
    for (int s = 0; s <= last; s++) {
        const chain_stage *g = &st[s];
        const double m = (double)g->oh * g->ow;
        ops_flops +=
            g->conv ? 2.0 * m * g->kh * g->kh * g->c * g->cout : 2.0 * m * g->c * (9 + g->cout);
    }
    chain_fill(st, last, last, in, out, 0, st[last].oh);
    if (ops_trace)
        for (int s = 0; s <= last; s++) {
            /* The least traffic: the first stage's input, the weights, the last stage's output;
             * the maps between stages stay in cache. */
            const chain_stage *g = &st[s];
            const double m = (double)g->oh * g->ow,
                         first = s == 0 ? (double)g->ih * g->iw * g->c : 0;
            const double lastout = s == last ? m * g->cout : 0;
            if (g->conv) {
                const int k = g->kh * g->kh * g->c;
                trace_layer("chain.conv", (int)m, g->cout, k, 2.0 * m * k * g->cout,
                            first + (double)k * g->cout + lastout, g->t_pw);
                continue;
            }
            trace_layer("chain.depthwise", (int)m, g->c, 9, 2.0 * m * g->c * 9, first + 9.0 * g->c,
                        g->t_dw);
            trace_layer("chain.pointwise", (int)m, g->cout, g->c, 2.0 * m * g->c * g->cout,
                        (double)g->c * g->cout + lastout, g->t_pw);
        }
}

/* The portable pooling loop, for CPUs without AVX2 (fn_pool_avx2 elsewhere: the same floats). */
GENERIC_CLONES static void pool_generic(const fn_t3 *in, int k, int stride, int pt, int pl,
                                        int is_max, fn_t3 *out)
{
    const int ih = in->h, iw = in->w, c = in->c, oh = out->h, ow = out->w;
    for (int oy = 0; oy < oh; oy++) {
        for (int ox = 0; ox < ow; ox++) {
            float *o = out->d + ((size_t)oy * ow + ox) * c;
            for (int j = 0; j < c; j++)
                o[j] = is_max ? -FLT_MAX : 0.0f;
            int count = 0;
            for (int ky = 0; ky < k; ky++) {
                int y = oy * stride - pt + ky;
                if (y < 0 || y >= ih) continue;
                for (int kx = 0; kx < k; kx++) {
                    int x = ox * stride - pl + kx;
                    if (x < 0 || x >= iw) continue;
                    const float *p = in->d + ((size_t)y * iw + x) * c;
                    count++;
                    if (is_max) {
                        for (int j = 0; j < c; j++)
                            o[j] = p[j] > o[j] ? p[j] : o[j];
                    } else {
                        for (int j = 0; j < c; j++)
                            o[j] += p[j];
                    }
                }
            }
            if (!is_max && count > 0) {
                float inv = 1.0f / (float)count;
                for (int j = 0; j < c; j++)
                    o[j] *= inv;
            }
        }
    }
}

static void pool(const fn_t3 *in, int k, int stride, fn_pad pad, int is_max, fn_t3 *out)
{
    out->h = fn_out_size(in->h, k, stride, pad);
    out->w = fn_out_size(in->w, k, stride, pad);
    out->c = in->c;
    const int pt = pad_before(in->h, k, stride, pad), pl = pad_before(in->w, k, stride, pad);
    if (use_avx512() || use_avx2())
        fn_pool_avx2(in->d, in->h, in->w, in->c, k, stride, pt, pl, is_max, out->d, out->h, out->w);
    else
        pool_generic(in, k, stride, pt, pl, is_max, out);
}

/* The 2x2 stride-2 max pool (SAME) of a strip of a map's rows starting at row y0 into its rows of
 * the map's pool `out` (whose h, w, c are set): pooling the strip alone is pooling those rows of
 * the whole map, since y0 and the strip's height are even (but for the last strip, which the
 * map's own SAME padding ends the same way). fn_conv2d_pool_w's and fn_sepconv_pool_w's. */
static void pool_strip(const fn_t3 *strip, int y0, fn_t3 *out)
{
    fn_t3 pv = {0, 0, 0, out->d + (size_t)(y0 / 2) * out->w * out->c};
    pool(strip, 2, 2, FN_PAD_SAME, 1, &pv);
}

/* fn_conv2d_pool_w: strips of this many conv output rows (even, so each strip's pooled rows are
 * whole ones): 8 rows of TinyFaceDetector's first conv are 212 KB, which stay in L2 for the pool.
 */
#define CONV_POOL_ROWS 8

size_t fn_conv2d_pool_scratch_floats(int in_h, int in_w, int cin, int k, int cout)
{
    const int oh = in_h - k + 1, ow = in_w - k + 1;
    if (oh < 1 || ow < 1) return 0;
    const int rows = oh < CONV_POOL_ROWS ? oh : CONV_POOL_ROWS;
    return (size_t)rows * ow * cout +
           fn_conv2d_scratch_floats(rows + k - 1, in_w, cin, k, k, 1, FN_PAD_VALID);
}

void fn_conv2d_pool_w(const fn_t3 *in, const fn_wpack *wp, const float *bias, int k, fn_act act,
                      fn_t3 *out, float *scratch)
{
    const int iw = in->w, cin = in->c, cout = wp->n;
    const int oh = fn_out_size(in->h, k, 1, FN_PAD_VALID), ow = fn_out_size(iw, k, 1, FN_PAD_VALID);
    const int rows = oh < CONV_POOL_ROWS ? oh : CONV_POOL_ROWS;
    float *strip = scratch, *col = scratch + (size_t)rows * ow * cout;
    out->h = fn_out_size(oh, 2, 2, FN_PAD_SAME);
    out->w = fn_out_size(ow, 2, 2, FN_PAD_SAME);
    out->c = cout;
    const double flops = 2.0 * oh * ow * k * k * cin * cout;
    ops_flops += flops;
    double t_conv = 0;
    for (int y0 = 0; y0 < oh; y0 += rows) {
        const int n = oh - y0 < rows ? oh - y0 : rows;
        /* A VALID conv of input rows [y0, y0 + n + k - 1) is output rows [y0, y0 + n). */
        const fn_t3 iv = {n + k - 1, iw, cin, in->d + (size_t)y0 * iw * cin};
        fn_t3 cv = {n, ow, cout, strip};
        const double t0 = ops_trace ? trace_now() : 0;
        conv_im2col(&iv, 1, wp, bias, k, k, 1, FN_PAD_VALID, act, NULL, &cv, col);
        if (ops_trace) t_conv += trace_now() - t0;
        pool_strip(&cv, y0, out);
    }
    if (ops_trace)
        trace_layer("conv", oh * ow, cout, k * k * cin, flops,
                    (double)in->h * iw * cin + (double)k * k * cin * cout +
                        (double)out->h * out->w * cout,
                    t_conv);
}

void fn_maxpool(const fn_t3 *in, int k, int stride, fn_pad pad, fn_t3 *out)
{
    pool(in, k, stride, pad, 1, out);
}

void fn_avgpool(const fn_t3 *in, int k, int stride, fn_pad pad, fn_t3 *out)
{
    pool(in, k, stride, pad, 0, out);
}

void fn_scale_offset(fn_t3 *t, const float *scale, const float *offset, fn_act act)
{
    const int c = t->c;
    const size_t rows = (size_t)t->h * t->w;
    for (size_t r = 0; r < rows; r++) {
        float *p = t->d + r * c;
        for (int j = 0; j < c; j++) {
            float v = p[j];
            if (scale) v *= scale[j];
            if (offset) v += offset[j];
            p[j] = act1(v, act);
        }
    }
}

void fn_add(const fn_t3 *a, const fn_t3 *b, fn_act act, fn_t3 *out)
{
    const size_t n = (size_t)a->h * a->w * a->c;
    out->h = a->h;
    out->w = a->w;
    out->c = a->c;
    for (size_t i = 0; i < n; i++)
        out->d[i] = act1(a->d[i] + b->d[i], act);
}

void fn_activate(fn_t3 *t, fn_act act)
{
    if (act == FN_ACT_NONE) return;
    bias_act_rows(t->d, (size_t)t->h * t->w, t->c, NULL, act);
}

void fn_dense(const float *in, int n_in, const float *w, const float *bias, int n_out, float *out)
{
    for (int j = 0; j < n_out; j++)
        out[j] = bias ? bias[j] : 0.0f;
    ops_flops += 2.0 * n_in * n_out;
    const double t0 = ops_trace ? trace_now() : 0;
    if (use_avx512())
        /* A one-row GEMM (OpenBLAS's sgemv runs its SSE3 "Prescott" kernel on these CPUs). */
        gemm_avx512(1, n_out, n_in, in, n_in, w, n_out, bias, FN_ACT_NONE, out, n_out);
    else if (use_avx2())
        fn_dense_avx2(in, n_in, w, bias, n_out, out);
    else
        cblas_sgemv(CblasRowMajor, CblasTrans, n_in, n_out, 1.0f, w, n_out, in, 1, 1.0f, out, 1);
    if (ops_trace)
        trace_layer("dense", 1, n_out, n_in, 2.0 * n_in * n_out,
                    (double)n_in * n_out + n_in + n_out, trace_now() - t0);
}

void fn_global_avgpool(const fn_t3 *in, float *out)
{
    const int c = in->c;
    const size_t rows = (size_t)in->h * in->w;
    for (int j = 0; j < c; j++)
        out[j] = 0.0f;
    for (size_t r = 0; r < rows; r++) {
        const float *p = in->d + r * c;
        for (int j = 0; j < c; j++)
            out[j] += p[j];
    }
    float inv = 1.0f / (float)rows;
    for (int j = 0; j < c; j++)
        out[j] *= inv;
}

void fn_resize_bilinear_rgb8(const unsigned char *rgb, int w, int h, int stride_bytes, fn_t3 *out)
{
    /* TFJS's wasm kernel (align_corners=false, half_pixel_centers=false): source = dst * (in / out)
     * in float32, neighbours floor(source) and min(ceil(source), in - 1), the lerps in float32. */
    const int oh = out->h, ow = out->w;
    const float ry = (float)h / (float)oh, rx = (float)w / (float)ow;
    out->c = 3;
    for (int oy = 0; oy < oh; oy++) {
        float fy = ry * (float)oy;
        int y0 = (int)floorf(fy);
        int y1 = (int)ceilf(fy);
        if (y1 > h - 1) y1 = h - 1;
        float dy = fy - (float)y0;
        const unsigned char *r0 = rgb + (size_t)y0 * stride_bytes;
        const unsigned char *r1 = rgb + (size_t)y1 * stride_bytes;
        for (int ox = 0; ox < ow; ox++) {
            float fx = rx * (float)ox;
            int x0 = (int)floorf(fx);
            int x1 = (int)ceilf(fx);
            if (x1 > w - 1) x1 = w - 1;
            float dx = fx - (float)x0;
            float *o = out->d + ((size_t)oy * ow + ox) * 3;
            for (int ch = 0; ch < 3; ch++) {
                float tl = r0[x0 * 3 + ch], tr = r0[x1 * 3 + ch];
                float bl = r1[x0 * 3 + ch], br = r1[x1 * 3 + ch];
                float top = tl + (tr - tl) * dx;
                float bot = bl + (br - bl) * dx;
                o[ch] = top + (bot - top) * dy;
            }
        }
    }
}
