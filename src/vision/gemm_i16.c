/* gemm_i16.c: the 16-bit integer GEMM (gemm_i16.h), the kernel behind vision.precision = int16.
 *
 * Weights: i16_build recovers each weight's byte q (w = q * scale + min exactly, one scale for the
 * tensor or one per column) and stores q - 128 as int16 (fn_wpack_i16_init_float instead rounds
 * float weights per column to integers up to fn_i16_float_wmax(K), gemm_i16.h), in slices of 16
 * columns (zero-filled past n) and, per slice and pair of rows (k even, k odd), the 16 columns'
 * pairs: columns 0-7 then 8-15, each column's two values side by side, as VPMADDWD multiplies them
 * with a broadcast pair of activations; each column's scale and min + 128 * scale beside them.
 * Activations: per block of rows (about 128 KB of int16, so it stays in L2 while every slice
 * passes), each row times 2048 clamped to [0, 12288] (fixed packs: relu6 outputs; the clamp only
 * guards the integer range) or times qmax / (the row's max |a|) (scaled packs), rounded to the
 * nearest integer (even on ties) into a per-thread buffer, with each row's sum and the factor
 * back. fn_gemm_i16_seg converts each run of a conv's rows of taps once, with one factor for the
 * call. Tiles: 6 rows x 16 columns, twelve 8-lane int32 accumulators; per pair of rows of B, two
 * loads of B, six broadcasts of A and twelve VPMADDWD + VPADDD, A read in one or more segments.
 * The epilogue turns the exact integer sums into floats as gemm_i16.h says, then bias and the
 * activation or the residual sum. */
#include "vision/gemm_i16.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vision/ops_isa.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#endif

#define I16_SCALE 2048.0f /* activations are stored as round(a * 2048) */
#define SLICE     16      /* columns per slice of the pack */

typedef struct i16_pack {
    int dynamic; /* 0: fixed (inputs in [0, 6] at 1/2048); 1: scaled to their max */
    int wmax; /* the largest |weight integer|: 128 (byte packs: q - 128), else fn_i16_float_wmax(K)
               */
    int slices;
    float *cs;  /* per column (slices x 16): the weights' scale, a sum's weight once scaled back */
    float *cm;  /* per column: min + 128 * scale, the weight of a row's activation sum */
    int16_t *b; /* slices x (k / 2) x 32 int16, 64-byte aligned */
} i16_pack;

int fn_i16_available(const char **reason)
{
    if (fn_cpu_has_avx2()) {
        if (reason) *reason = NULL;
        return 1;
    }
    if (reason) *reason = "this CPU has no AVX2 (needed for the int16 kernel); int16 runs as fp32";
    return 0;
}

/* AMD family 19h (Zen 3 and Zen 4): CPUID leaf 0's vendor and leaf 1's family. */
static int cpu_is_amd_19h(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return 0;
    const int amd = b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u; /* "AuthenticAMD" */
    if (!amd || !__get_cpuid(1, &a, &b, &c, &d)) return 0;
    const unsigned base = (a >> 8) & 0xfu;
    return base == 0xfu && base + ((a >> 20) & 0xffu) == 0x19u;
#else
    return 0;
#endif
}

int fn_i16_preferred(void)
{
    return fn_i16_available(NULL) && (!fn_cpu_has_avx512() || cpu_is_amd_19h());
}

static _Thread_local int thread_i16;

int fn_i16_set_thread(int on)
{
    int was = thread_i16;
    thread_i16 = on && fn_i16_available(NULL);
    return was;
}

int fn_i16_thread(void)
{
    return thread_i16;
}

/* ---- weights ------------------------------------------------------------------------------ */

/* The quantization a pack is made from: one scale and offset (qscale, qmin; a weight is
 * (float)(q * qscale + qmin), computed in double) or one per column (cs, cm: fmaf(q, cs, cm)). */
typedef struct i16_quant {
    double qscale, qmin;
    const float *cs, *cm;
} i16_quant;

static float i16_weight(const i16_quant *qz, int c, int q)
{
    return qz->cs ? fmaf((float)q, qz->cs[c], qz->cm[c]) : (float)(q * qz->qscale + qz->qmin);
}

/* 1 when wp can take an int16 pack up to max_k deep: none yet, a CPU that runs them, K even. */
static int packable(const fn_wpack *wp, int max_k)
{
    return !wp->i16 && fn_i16_available(NULL) && wp->k > 0 && wp->n > 0 && wp->k % 2 == 0 &&
           wp->k <= max_k;
}

/* Weight (r, c) of wp, from its row-major floats or its panels. */
static float weight_at(const fn_wpack *wp, int r, int c)
{
    return wp->w ? wp->w[(size_t)r * wp->n + c] : fn_wpack_at(wp, r, c);
}

static void pack_free(i16_pack *pk)
{
    if (pk) free(pk->b), free(pk->cs);
    free(pk);
}

/* An empty pack for K x n weights (K even): its integers and per-column factors zeroed. NULL
 * when out of memory. */
static i16_pack *pack_new(int k, int n)
{
    const int slices = (n + SLICE - 1) / SLICE, cols = slices * SLICE;
    i16_pack *pk = calloc(1, sizeof *pk);
    if (!pk) return NULL;
    pk->slices = slices;
    pk->b = aligned_alloc(64, (size_t)cols * (size_t)k * sizeof(int16_t));
    pk->cs = calloc(2 * (size_t)cols, sizeof(float));
    if (!pk->b || !pk->cs) {
        pack_free(pk);
        return NULL;
    }
    memset(pk->b, 0, (size_t)cols * (size_t)k * sizeof(int16_t));
    pk->cm = pk->cs + cols;
    return pk;
}

/* Where weight (r, c) of a K-deep pack is: its slice, its pair of rows, its half of the slice,
 * its column's pair. */
static size_t pack_index(int k, int r, int c)
{
    return (size_t)(c / SLICE) * k * SLICE + (size_t)(r / 2) * 2 * SLICE +
           (size_t)(c % SLICE / 8) * 16 + (size_t)(c % 8) * 2 + (size_t)(r % 2);
}

static int i16_build(fn_wpack *wp, const i16_quant *qz, int dynamic)
{
    const int k = wp->k, n = wp->n;
    if (!packable(wp, dynamic ? FN_I16_MAX_K_SCALED : FN_I16_MAX_K)) return 0;
    i16_pack *pk = pack_new(k, n);
    if (!pk) return -1;
    for (int c = 0; c < n; c++) {
        const double s = qz->cs ? qz->cs[c] : qz->qscale, mn = qz->cs ? qz->cm[c] : qz->qmin;
        if (!(fabs(s) > 0)) { /* no byte quantization: stays FP32 */
            pack_free(pk);
            return 0;
        }
        pk->cs[c] = (float)s;
        pk->cm[c] = (float)(mn + 128.0 * s);
        const double inv = 1.0 / s;
        for (int r = 0; r < k; r++) {
            const float w = weight_at(wp, r, c);
            const double x = (w - mn) * inv;
            const int q = x < 0 ? 0 : x > 255 ? 255 : (int)(x + 0.5);
            if (i16_weight(qz, c, q) != w) { /* not a byte of this scale: stays FP32 */
                pack_free(pk);
                return 0;
            }
            pk->b[pack_index(k, r, c)] = (int16_t)(q - 128);
        }
    }
    pk->dynamic = dynamic;
    pk->wmax = 128;
    wp->i16 = pk;
    return 0;
}

int fn_wpack_i16_init(fn_wpack *wp, double qscale, double qmin)
{
    const i16_quant qz = {qscale, qmin, NULL, NULL};
    return i16_build(wp, &qz, wp->k > FN_I16_MAX_K);
}

int fn_wpack_i16_init_scaled(fn_wpack *wp, double qscale, double qmin)
{
    const i16_quant qz = {qscale, qmin, NULL, NULL};
    return i16_build(wp, &qz, 1);
}

int fn_wpack_i16_init_cols(fn_wpack *wp, const float *scale, const float *min)
{
    const i16_quant qz = {0, 0, scale, min};
    return i16_build(wp, &qz, 1);
}

int fn_i16_float_wmax(int k)
{
    if (k <= 0) return 0;
    const double q = floor(sqrt(2147483647.0 / k));
    return q > 32767 ? 32767 : (int)q;
}

int fn_wpack_i16_init_float(fn_wpack *wp)
{
    const int k = wp->k, n = wp->n, qw = fn_i16_float_wmax(k);
    if (!packable(wp, FN_I16_MAX_K_SCALED)) return 0;
    i16_pack *pk = pack_new(k, n); /* cm stays 0: no offset term */
    if (!pk) return -1;
    for (int c = 0; c < n; c++) {
        float amax = 0.0f;
        for (int r = 0; r < k; r++) {
            const float w = weight_at(wp, r, c);
            if (!(fabsf(w) < INFINITY)) { /* not finite: stays FP32 */
                pack_free(pk);
                return 0;
            }
            amax = fabsf(w) > amax ? fabsf(w) : amax;
        }
        const float scale = amax > 0 ? amax / (float)qw : 1.0f;
        pk->cs[c] = scale;
        for (int r = 0; r < k; r++) {
            const float w = weight_at(wp, r, c);
            long q = lrintf(w / scale);
            q = q < -qw ? -qw : q > qw ? qw : q;
            pk->b[pack_index(k, r, c)] = (int16_t)q;
        }
    }
    pk->dynamic = 1;
    pk->wmax = qw;
    wp->i16 = pk;
    return 0;
}

void fn_wpack_i16_free(fn_wpack *wp)
{
    pack_free(wp->i16);
    wp->i16 = NULL;
}

/* The largest |integer| an activation becomes for a K-deep pack: K * wmax * it stays below 2^31. */
static int i16_qmax(const i16_pack *pk, int k)
{
    if (!pk->dynamic) return 12288; /* 6 * 2048 */
    const long q = 2147483647L / ((long)pk->wmax * k);
    return q > 32767 ? 32767 : (int)q;
}

/* ---- the kernel --------------------------------------------------------------------------- */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

/* How a run of activations becomes integers: round(min(max(a * mul, lo), hi)) to nearest even.
 * Fixed (relu6 inputs): mul 2048, lo 0, hi 12288, the same as clamping a to [0, 6] first (a * 2048
 * is exact). Scaled: mul = qmax / amax, lo = -qmax, hi = qmax. */
typedef struct i16_conv {
    float mul, lo, hi;
} i16_conv;

/* n floats (n even) of src as int16 into dst; returns their sum (exact: at most K * 32767). */
AVX2 static int quantize_run(const float *src, int n, const i16_conv *qc, int16_t *d)
{
    const __m256 mul = _mm256_set1_ps(qc->mul), lo = _mm256_set1_ps(qc->lo),
                 hi = _mm256_set1_ps(qc->hi);
    __m256i sum = _mm256_setzero_si256();
    int j = 0;
    for (; j + 16 <= n; j += 16) {
        __m256 x0 = _mm256_mul_ps(_mm256_loadu_ps(src + j), mul),
               x1 = _mm256_mul_ps(_mm256_loadu_ps(src + j + 8), mul);
        x0 = _mm256_min_ps(_mm256_max_ps(x0, lo), hi);
        x1 = _mm256_min_ps(_mm256_max_ps(x1, lo), hi);
        const __m256i i0 = _mm256_cvtps_epi32(x0), i1 = _mm256_cvtps_epi32(x1);
        sum = _mm256_add_epi32(sum, _mm256_add_epi32(i0, i1));
        /* packs works per 128-bit lane: put the quarters back in order */
        const __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(i0, i1), 0xd8);
        _mm256_storeu_si256((__m256i *)(d + j), p);
    }
    int tail = 0;
    for (; j < n; j++) { /* the same rounding, one at a time */
        const __m128 x = _mm_min_ss(
            _mm_max_ss(_mm_mul_ss(_mm_set_ss(src[j]), _mm_set_ss(qc->mul)), _mm_set_ss(qc->lo)),
            _mm_set_ss(qc->hi));
        const int v = _mm_cvtss_si32(x);
        d[j] = (int16_t)v;
        tail += v;
    }
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
    return _mm_cvtsi128_si32(s4) + tail;
}

/* max |a| over n floats (NaN if one is NaN). */
AVX2 static float absmax(const float *a, size_t n)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps(), nan = m;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_andnot_ps(sign, _mm256_loadu_ps(a + i));
        m = _mm256_max_ps(m, x);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    }
    float r = 0.0f;
    int bad = _mm256_movemask_ps(nan) != 0;
    for (int j = 0; j < 8; j++)
        r = m[j] > r ? m[j] : r;
    for (; i < n; i++) {
        const float x = fabsf(a[i]);
        bad |= x != x;
        r = x > r ? x : r;
    }
    return bad ? NAN : r;
}

/* The conversion for activations of max |a| amax, and the factor that takes the integers back
 * (1 / mul; NaN when amax is not finite, so that the outputs are NaN as FP32's would be). */
static i16_conv scaled_conv(float amax, int qmax, float *inv)
{
    const float q = (float)qmax;
    if (!(amax < INFINITY)) {
        *inv = NAN;
        return (i16_conv){0.0f, -q, q};
    }
    const float mul = amax > 0 ? q / amax : 1.0f;
    *inv = 1.0f / mul;
    return (i16_conv){mul, -q, q};
}

AVX2 static inline __m256 act_i16(__m256 x, fn_act act)
{
    const __m256 zero = _mm256_setzero_ps();
    switch (act) {
    case FN_ACT_RELU:
        return _mm256_max_ps(x, zero);
    case FN_ACT_RELU6:
        return _mm256_min_ps(_mm256_max_ps(x, zero), _mm256_set1_ps(6.0f));
    case FN_ACT_LEAKY:
        return _mm256_blendv_ps(x, _mm256_mul_ps(x, _mm256_set1_ps(0.1f)),
                                _mm256_cmp_ps(x, zero, _CMP_LT_OQ));
    default:
        return x;
    }
}

/* A pair of int16 activations read as one int32 (the buffer is written as int16). */
typedef int32_t __attribute__((may_alias)) i16_pair;

/* Where a GEMM's integer rows are and how they become floats: row i's K values are nseg runs of
 * kseg int16 (segment s at a + i * lda + s * sstride); inv[i] takes row i's integers back to
 * activations, rs[i] is the sum of its activations as rounded (integer sum * inv[i]). */
typedef struct i16_rows {
    const int16_t *a;
    size_t lda, sstride;
    int kseg, nseg;
    const float *inv, *rs;
} i16_rows;

/* A tile's epilogue: the exact sums acc[r] (columns 0-7, 8-15 of slice j) of its rows 0..mr-1
 * (rows r0.. of ar) as floats into C, as gemm_i16.h says, then bias and act or the residual. */
AVX2 static inline void i16_store(const __m256i acc[][2], int mr, const i16_rows *ar, int r0,
                                  const i16_pack *pk, int j, const float *bias, fn_act act,
                                  const float *res, float *c, int ldc, int w)
{
    for (int h = 0; h < 2; h++) {
        const int left = w - 8 * h;
        if (left <= 0) break;
        const __m256i mask =
            _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const __m256 bv = bias ? _mm256_maskload_ps(bias + 8 * h, mask) : _mm256_setzero_ps();
        const __m256 cs = _mm256_loadu_ps(pk->cs + j * SLICE + 8 * h),
                     cm = _mm256_loadu_ps(pk->cm + j * SLICE + 8 * h);
        for (int r = 0; r < mr; r++) {
            const __m256 x =
                _mm256_mul_ps(_mm256_cvtepi32_ps(acc[r][h]), _mm256_set1_ps(ar->inv[r0 + r]));
            const __m256 off = _mm256_mul_ps(_mm256_set1_ps(ar->rs[r0 + r]), cm);
            __m256 v = _mm256_add_ps(_mm256_fmadd_ps(x, cs, off), bv);
            const size_t at = (size_t)r * ldc + 8 * h;
            if (res)
                v = _mm256_max_ps(_mm256_add_ps(v, _mm256_maskload_ps(res + at, mask)),
                                  _mm256_setzero_ps());
            else
                v = act_i16(v, act);
            if (left >= 8)
                _mm256_storeu_ps(c + at, v);
            else
                _mm256_maskstore_ps(c + at, mask, v);
        }
    }
}

/* One 6x16 tile: rows r0.. r0 + mr - 1 of ar (rows past mr repeat the last one), the slice j,
 * into C from c (columns [0, w) of the slice); with res, relu(. + res) (act none then). */
AVX2 static void tile6(const i16_rows *ar, int r0, int mr, const i16_pack *pk, int j,
                       const float *bias, fn_act act, const float *res, float *c, int ldc, int w)
{
    const int16_t *a = ar->a + (size_t)r0 * ar->lda;
    const size_t lda = ar->lda;
    const i16_pair *p0 = (const i16_pair *)a, *p1 = (const i16_pair *)(a + (size_t)(mr > 1) * lda),
                   *p2 = (const i16_pair *)(a + (size_t)(mr > 2 ? 2 : mr - 1) * lda),
                   *p3 = (const i16_pair *)(a + (size_t)(mr > 3 ? 3 : mr - 1) * lda),
                   *p4 = (const i16_pair *)(a + (size_t)(mr > 4 ? 4 : mr - 1) * lda),
                   *p5 = (const i16_pair *)(a + (size_t)(mr > 5 ? 5 : mr - 1) * lda);
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
            c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const int kp_seg = ar->kseg / 2;
    const size_t step = ar->sstride / 2; /* pairs from one segment to the next */
    const int16_t *bp = pk->b + (size_t)j * (size_t)ar->kseg * ar->nseg * SLICE;
    for (int sg = 0; sg < ar->nseg; sg++) {
        for (int kp = 0; kp < kp_seg; kp++, bp += 2 * SLICE) {
            const __m256i b0 = _mm256_load_si256((const __m256i *)bp),
                          b1 = _mm256_load_si256((const __m256i *)(bp + SLICE));
            __m256i av;
#define I16_ROW(p, x0, x1)                                                                         \
    av = _mm256_set1_epi32(p[kp]);                                                                 \
    x0 = _mm256_add_epi32(x0, _mm256_madd_epi16(av, b0));                                          \
    x1 = _mm256_add_epi32(x1, _mm256_madd_epi16(av, b1));
            I16_ROW(p0, c00, c01)
            I16_ROW(p1, c10, c11)
            I16_ROW(p2, c20, c21)
            I16_ROW(p3, c30, c31)
            I16_ROW(p4, c40, c41)
            I16_ROW(p5, c50, c51)
#undef I16_ROW
        }
        p0 += step, p1 += step, p2 += step, p3 += step, p4 += step, p5 += step;
    }
    const __m256i acc[6][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                               {c30, c31}, {c40, c41}, {c50, c51}};
    i16_store(acc, mr, ar, r0, pk, j, bias, act, res, c, ldc, w);
}

#define VNNI __attribute__((target("avx512f,avx512vl,avx512bw,avx512vnni,avx2,fma")))

/* One tile of R rows (1 to 12) x 16 columns with AVX-512 VNNI (VPDPWSSD: VPMADDWD and VPADDD in
 * one instruction, the same exact integer sums): rows r0 .. r0 + R - 1 of ar, the slice j whole
 * in one 512-bit register per row (the pack's 16 columns in order), each activation pair
 * broadcast from memory (VPBROADCASTD: a load, no ALU work); the epilogue is tile6's on the two
 * halves of each row. R is a constant at every call (tile_vnni), so the loops over rows unroll and
 * the accumulators stay in registers. */
VNNI static inline __attribute__((always_inline)) void
tile_vnni_rows(const i16_rows *ar, int r0, const int R, const i16_pack *pk, int j,
               const float *bias, fn_act act, const float *res, float *c, int ldc, int w)
{
    const size_t lp = ar->lda / 2; /* pairs from one row to the next */
    const i16_pair *p = (const i16_pair *)(ar->a + (size_t)r0 * ar->lda);
    __m512i acc[12];
#pragma GCC unroll 12
    for (int i = 0; i < R; i++)
        acc[i] = _mm512_setzero_si512();
    const int kp_seg = ar->kseg / 2;
    const size_t step = ar->sstride / 2;
    const int16_t *bp = pk->b + (size_t)j * (size_t)ar->kseg * ar->nseg * SLICE;
    for (int sg = 0; sg < ar->nseg; sg++, p += step) {
        for (int kp = 0; kp < kp_seg; kp++, bp += 2 * SLICE) {
            const __m512i b = _mm512_load_si512((const void *)bp);
#pragma GCC unroll 12
            for (int i = 0; i < R; i++)
                acc[i] = _mm512_dpwssd_epi32(acc[i], b, _mm512_set1_epi32(p[(size_t)i * lp + kp]));
        }
    }
    __m256i halves[12][2];
#pragma GCC unroll 12
    for (int i = 0; i < R; i++) {
        halves[i][0] = _mm512_castsi512_si256(acc[i]);
        halves[i][1] = _mm512_extracti64x4_epi64(acc[i], 1);
    }
    i16_store(halves, R, ar, r0, pk, j, bias, act, res, c, ldc, w);
}

/* tile_vnni_rows for mr rows (1 to 12), each count its own unrolled code. */
VNNI static void tile_vnni(const i16_rows *ar, int r0, int mr, const i16_pack *pk, int j,
                           const float *bias, fn_act act, const float *res, float *c, int ldc,
                           int w)
{
    /* clang-format off */
#define I16_ROWS(R) case R: tile_vnni_rows(ar, r0, R, pk, j, bias, act, res, c, ldc, w); break;
    switch (mr) {
    I16_ROWS(1) I16_ROWS(2) I16_ROWS(3) I16_ROWS(4) I16_ROWS(5) I16_ROWS(6)
    I16_ROWS(7) I16_ROWS(8) I16_ROWS(9) I16_ROWS(10) I16_ROWS(11) I16_ROWS(12)
    default: break;
    }
    /* clang-format on */
#undef I16_ROWS
}

int fn_i16_vnni(void)
{
    __builtin_cpu_init();
    return fn_ops_isa() == FN_ISA_AVX512 && __builtin_cpu_supports("avx512vnni");
}

/* C[m][n] for ar's rows 0..m-1: every slice over the rows, 12 at a time with VNNI (the last
 * tile as many as are left), else 6. */
AVX2 static void i16_tiles(const i16_rows *ar, int m, const i16_pack *pk, int n, const float *bias,
                           fn_act act, const float *res, float *c)
{
    const int vnni = fn_i16_vnni();
    for (int j = 0; j < pk->slices; j++) {
        const int w = n - j * SLICE < SLICE ? n - j * SLICE : SLICE;
        for (int r = 0; vnni && r < m; r += 12) {
            const size_t at = (size_t)r * n + (size_t)j * SLICE;
            tile_vnni(ar, r, m - r < 12 ? m - r : 12, pk, j, bias ? bias + j * SLICE : NULL, act,
                      res ? res + at : NULL, c + at, n, w);
        }
        for (int r = 0; !vnni && r < m; r += 6) {
            const size_t at = (size_t)r * n + (size_t)j * SLICE;
            tile6(ar, r, m - r < 6 ? m - r : 6, pk, j, bias ? bias + j * SLICE : NULL, act,
                  res ? res + at : NULL, c + at, n, w);
        }
    }
}

/* The rows of A converted per block: about this many int16 bytes (in L2 beside a slice). */
#define ABLOCK_BYTES ((size_t)128 * 1024)

AVX2 static void gemm_i16_avx2(int m, const fn_wpack *wp, const float *a, const float *bias,
                               fn_act act, const float *res, float *c, unsigned char *buf, int mb)
{
    const i16_pack *pk = wp->i16;
    const int k = wp->k, n = wp->n, qmax = i16_qmax(pk, k);
    int16_t *ab = (int16_t *)buf;
    float *inv = (float *)(buf + ((size_t)mb * k * sizeof(int16_t) + 63) / 64 * 64), *rs = inv + mb;
    const i16_conv fixed = {I16_SCALE, 0.0f, (float)qmax};
    for (int m0 = 0; m0 < m; m0 += mb) {
        const int rows = m - m0 < mb ? m - m0 : mb;
        for (int r = 0; r < rows; r++) {
            const float *src = a + (size_t)(m0 + r) * k;
            i16_conv qc = fixed;
            inv[r] = 1.0f / I16_SCALE;
            if (pk->dynamic) qc = scaled_conv(absmax(src, (size_t)k), qmax, &inv[r]);
            rs[r] = (float)quantize_run(src, k, &qc, ab + (size_t)r * k) * inv[r];
        }
        const i16_rows ar = {ab, (size_t)k, 0, k, 1, inv, rs};
        const size_t at = (size_t)m0 * n;
        i16_tiles(&ar, rows, pk, n, bias, act, res ? res + at : NULL, c + at);
    }
}

int fn_gemm_i16(int m, const fn_wpack *wp, const float *a, const float *bias, fn_act act,
                const float *res, float *c)
{
    const int k = wp->k;
    int mb = (int)(ABLOCK_BYTES / ((size_t)k * sizeof(int16_t))) / 12 * 12; /* whole tiles */
    if (mb < 12) mb = 12;
    if (mb > m) mb = m;
    const size_t abytes = ((size_t)mb * k * sizeof(int16_t) + 63) / 64 * 64;
    unsigned char *buf = fn_thread_scratch(abytes + 2 * (size_t)mb * sizeof(float));
    if (!buf) return -1;
    gemm_i16_avx2(m, wp, a, bias, act, res, c, buf, mb);
    return 0;
}

AVX2 static void gemm_i16_seg_avx2(int m, const fn_wpack *wp, const float *a, int lda, int nseg,
                                   size_t sstride, const i16_conv *qc, float inv1,
                                   const float *bias, fn_act act, const float *res, float *c,
                                   unsigned char *buf, int runs)
{
    const i16_pack *pk = wp->i16;
    const size_t skip = sstride / (size_t)lda; /* runs from one segment to the next */
    int16_t *ab = (int16_t *)buf;
    int *sums = (int *)(buf + ((size_t)runs * lda * sizeof(int16_t) + 63) / 64 * 64);
    float *inv = (float *)(sums + runs), *rs = inv + m;
    for (int i = 0; i < runs; i++)
        sums[i] = quantize_run(a + (size_t)i * lda, lda, qc, ab + (size_t)i * lda);
    for (int i = 0; i < m; i++) {
        int s = 0;
        for (int sg = 0; sg < nseg; sg++)
            s += sums[(size_t)i + sg * skip];
        inv[i] = inv1;
        rs[i] = (float)s * inv1;
    }
    const i16_rows ar = {ab, (size_t)lda, sstride, lda, nseg, inv, rs};
    i16_tiles(&ar, m, pk, wp->n, bias, act, res, c);
}

int fn_gemm_i16_seg(int m, const fn_wpack *wp, const float *a, int lda, int nseg, size_t sstride,
                    float amax, const float *bias, fn_act act, const float *res, float *c)
{
    const i16_pack *pk = wp->i16;
    if (lda % 2 || (size_t)lda * nseg != (size_t)wp->k || sstride % (size_t)lda) return -1;
    const int runs = m + (nseg - 1) * (int)(sstride / (size_t)lda);
    const size_t abytes = ((size_t)runs * lda * sizeof(int16_t) + 63) / 64 * 64;
    unsigned char *buf =
        fn_thread_scratch(abytes + (size_t)runs * sizeof(int) + 2 * (size_t)m * sizeof(float));
    if (!buf) return -1;
    const int qmax = i16_qmax(pk, wp->k);
    float inv = 1.0f / I16_SCALE;
    i16_conv qc = {I16_SCALE, 0.0f, (float)qmax};
    if (pk->dynamic) qc = scaled_conv(amax, qmax, &inv);
    gemm_i16_seg_avx2(m, wp, a, lda, nseg, sstride, &qc, inv, bias, act, res, c, buf, runs);
    return 0;
}

float fn_i16_absmax(const float *a, size_t n)
{
    return absmax(a, n);
}

#else
int fn_i16_vnni(void)
{
    return 0;
}

/* Never called: without an AVX2 build there is no pack. */
int fn_gemm_i16(int m, const fn_wpack *wp, const float *a, const float *bias, fn_act act,
                const float *res, float *c)
{
    (void)m, (void)wp, (void)a, (void)bias, (void)act, (void)res, (void)c;
    return -1;
}

int fn_gemm_i16_seg(int m, const fn_wpack *wp, const float *a, int lda, int nseg, size_t sstride,
                    float amax, const float *bias, fn_act act, const float *res, float *c)
{
    (void)m, (void)wp, (void)a, (void)lda, (void)nseg, (void)sstride, (void)amax, (void)bias;
    (void)act, (void)res, (void)c;
    return -1;
}

float fn_i16_absmax(const float *a, size_t n)
{
    float r = 0.0f;
    for (size_t i = 0; i < n; i++)
        r = fabsf(a[i]) > r || a[i] != a[i] ? fabsf(a[i]) : r;
    return r;
}
#endif
