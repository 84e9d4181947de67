/* gemm_i16.c: the 16-bit integer GEMM (gemm_i16.h), the kernel behind vision.precision = int16.
 *
 * Weights: fn_wpack_i16_init recovers each weight's byte q (w = q * scale + min exactly) and
 * stores q - 128 as int16, in slices of 16 columns (zero-filled past n) and, per slice and pair of
 * rows (k even, k odd), the 16 columns' pairs: columns 0-7 then 8-15, each column's two values
 * side by side, as VPMADDWD multiplies them with a broadcast pair of activations.
 * Activations: per block of rows (about 128 KB of int16, so it stays in L2 while every slice
 * passes), clamped to [0, 6] (they are relu6 outputs; the clamp only guards the integer range),
 * times 2048 rounded to the nearest integer (even on ties) into a per-thread buffer, with each
 * row's sum. Tiles: 6 rows x 16 columns, twelve 8-lane int32 accumulators; per pair of rows of B,
 * two loads of B, six broadcasts of A and twelve VPMADDWD + VPADDD. The epilogue turns the exact
 * integer sums into floats as gemm_i16.h says, then bias and activation. */
#include "vision/gemm_i16.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vision/ops_isa.h"

#define I16_SCALE 2048.0f /* activations are stored as round(a * 2048) */
#define SLICE     16      /* columns per slice of the pack */

typedef struct i16_pack {
    float s;    /* scale / 2048: a sum's weight */
    float moff; /* min + 128 * scale: the weight of a row's activation sum */
    int slices;
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

int fn_wpack_i16_init(fn_wpack *wp, double qscale, double qmin)
{
    const int k = wp->k, n = wp->n;
    if (wp->i16 || !fn_i16_available(NULL) || k <= 0 || n <= 0 || k % 2 || k > FN_I16_MAX_K ||
        !(qscale > 0))
        return 0;
    const int slices = (n + SLICE - 1) / SLICE;
    i16_pack *pk = malloc(sizeof *pk);
    int16_t *b = aligned_alloc(64, (size_t)slices * (size_t)k * SLICE * sizeof(int16_t));
    if (!pk || !b) {
        free(pk), free(b);
        return -1;
    }
    memset(b, 0, (size_t)slices * (size_t)k * SLICE * sizeof(int16_t));
    const double inv = 1.0 / qscale;
    for (int r = 0; r < k; r++)
        for (int c = 0; c < n; c++) {
            const float w = wp->w ? wp->w[(size_t)r * n + c] : fn_wpack_at(wp, r, c);
            const double x = (w - qmin) * inv;
            const int q = x < 0 ? 0 : x > 255 ? 255 : (int)(x + 0.5);
            if ((float)(q * qscale + qmin) != w) { /* not a byte of this scale: stays FP32 */
                free(pk), free(b);
                return 0;
            }
            const size_t at = (size_t)(c / SLICE) * k * SLICE + (size_t)(r / 2) * 2 * SLICE +
                              (size_t)(c % SLICE / 8) * 16 + (size_t)(c % 8) * 2 + (size_t)(r % 2);
            b[at] = (int16_t)(q - 128);
        }
    pk->s = (float)(qscale / I16_SCALE);
    pk->moff = (float)(qmin + 128.0 * qscale);
    pk->slices = slices;
    pk->b = b;
    wp->i16 = pk;
    return 0;
}

void fn_wpack_i16_free(fn_wpack *wp)
{
    i16_pack *pk = wp->i16;
    if (pk) free(pk->b);
    free(pk);
    wp->i16 = NULL;
}

/* ---- the kernel --------------------------------------------------------------------------- */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

/* Rows of A as int16 (round(min(max(a, 0), 6) * 2048), to nearest even) into dst, k a row, and
 * each row's sum of them / 2048 into rs (exact: at most 1024 * 12288 < 2^24). */
AVX2 static void quantize_rows(const float *a, int rows, int k, int16_t *dst, float *rs)
{
    const __m256 zero = _mm256_setzero_ps(), six = _mm256_set1_ps(6.0f),
                 scale = _mm256_set1_ps(I16_SCALE);
    for (int r = 0; r < rows; r++) {
        const float *src = a + (size_t)r * k;
        int16_t *d = dst + (size_t)r * k;
        __m256i sum = _mm256_setzero_si256();
        int j = 0;
        for (; j + 16 <= k; j += 16) {
            __m256 x0 = _mm256_loadu_ps(src + j), x1 = _mm256_loadu_ps(src + j + 8);
            x0 = _mm256_mul_ps(_mm256_min_ps(_mm256_max_ps(x0, zero), six), scale);
            x1 = _mm256_mul_ps(_mm256_min_ps(_mm256_max_ps(x1, zero), six), scale);
            const __m256i i0 = _mm256_cvtps_epi32(x0), i1 = _mm256_cvtps_epi32(x1);
            sum = _mm256_add_epi32(sum, _mm256_add_epi32(i0, i1));
            /* packs works per 128-bit lane: put the quarters back in order */
            const __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(i0, i1), 0xd8);
            _mm256_storeu_si256((__m256i *)(d + j), p);
        }
        int tail = 0;
        for (; j < k; j++) { /* the same rounding, one at a time */
            const __m128 x = _mm_mul_ss(
                _mm_min_ss(_mm_max_ss(_mm_set_ss(src[j]), _mm_setzero_ps()), _mm_set_ss(6.0f)),
                _mm_set_ss(I16_SCALE));
            const int v = _mm_cvtss_si32(x);
            d[j] = (int16_t)v;
            tail += v;
        }
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        rs[r] = (float)(_mm_cvtsi128_si32(s4) + tail) / I16_SCALE;
    }
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

/* One 6x16 tile: rows a[0..5] (int16, k each; rows past mr repeat the last one), the slice bs,
 * into mr rows of C from c (columns [0, w) of the slice). */
AVX2 static void tile6(int k, const int16_t *a, int mr, const int16_t *bs, const float *rs, float s,
                       float moff, const float *bias, fn_act act, float *c, int ldc, int w)
{
    const i16_pair *p0 = (const i16_pair *)a, *p1 = (const i16_pair *)(a + (size_t)(mr > 1) * k),
                   *p2 = (const i16_pair *)(a + (size_t)(mr > 2 ? 2 : mr - 1) * k),
                   *p3 = (const i16_pair *)(a + (size_t)(mr > 3 ? 3 : mr - 1) * k),
                   *p4 = (const i16_pair *)(a + (size_t)(mr > 4 ? 4 : mr - 1) * k),
                   *p5 = (const i16_pair *)(a + (size_t)(mr > 5 ? 5 : mr - 1) * k);
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
            c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const int16_t *bp = bs;
    for (int kp = 0; kp < k / 2; kp++, bp += 2 * SLICE) {
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
    const __m256i acc[6][2] = {{c00, c01}, {c10, c11}, {c20, c21},
                               {c30, c31}, {c40, c41}, {c50, c51}};
    const __m256 vs = _mm256_set1_ps(s);
    for (int h = 0; h < 2; h++) {
        const int left = w - 8 * h;
        if (left <= 0) break;
        const __m256i mask =
            _mm256_cmpgt_epi32(_mm256_set1_epi32(left), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const __m256 bv = bias ? _mm256_maskload_ps(bias + 8 * h, mask) : _mm256_setzero_ps();
        for (int r = 0; r < mr; r++) {
            const __m256 off = _mm256_set1_ps(rs[r] * moff);
            const __m256 v = act_i16(
                _mm256_add_ps(_mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r][h]), vs, off), bv), act);
            float *o = c + (size_t)r * ldc + 8 * h;
            if (left >= 8)
                _mm256_storeu_ps(o, v);
            else
                _mm256_maskstore_ps(o, mask, v);
        }
    }
}

/* The rows of A converted per block: about this many int16 bytes (in L2 beside a slice). */
#define ABLOCK_BYTES ((size_t)128 * 1024)

AVX2 static void gemm_i16_avx2(int m, const fn_wpack *wp, const float *a, const float *bias,
                               fn_act act, float *c, int16_t *ab, float *rs, int mb)
{
    const i16_pack *pk = wp->i16;
    const int k = wp->k, n = wp->n;
    for (int m0 = 0; m0 < m; m0 += mb) {
        const int rows = m - m0 < mb ? m - m0 : mb;
        quantize_rows(a + (size_t)m0 * k, rows, k, ab, rs);
        for (int j = 0; j < pk->slices; j++) {
            const int16_t *bs = pk->b + (size_t)j * k * SLICE;
            const int w = n - j * SLICE < SLICE ? n - j * SLICE : SLICE;
            for (int r = 0; r < rows; r += 6)
                tile6(k, ab + (size_t)r * k, rows - r < 6 ? rows - r : 6, bs, rs + r, pk->s,
                      pk->moff, bias ? bias + j * SLICE : NULL, act,
                      c + (size_t)(m0 + r) * n + j * SLICE, n, w);
        }
    }
}

void fn_gemm_i16(int m, const fn_wpack *wp, const float *a, const float *bias, fn_act act, float *c)
{
    const int k = wp->k;
    int mb = (int)(ABLOCK_BYTES / ((size_t)k * sizeof(int16_t))) / 6 * 6;
    if (mb < 6) mb = 6;
    if (mb > m) mb = m;
    const size_t abytes = ((size_t)mb * k * sizeof(int16_t) + 63) / 64 * 64;
    unsigned char *buf = fn_thread_scratch(abytes + (size_t)mb * sizeof(float));
    if (!buf) { /* out of memory for the buffer: the FP32 kernel instead (never fails) */
        const int was = fn_i16_set_thread(0);
        fn_t3 in = {m, 1, k, (float *)a}, out = {m, 1, wp->n, c};
        fn_conv2d_w(&in, wp, bias, 1, 1, 1, FN_PAD_VALID, act, &out, NULL);
        fn_i16_set_thread(was);
        return;
    }
    gemm_i16_avx2(m, wp, a, bias, act, c, (int16_t *)buf, (float *)(buf + abytes), mb);
}

#else
void fn_gemm_i16(int m, const fn_wpack *wp, const float *a, const float *bias, fn_act act, float *c)
{
    (void)m, (void)wp, (void)a, (void)bias, (void)act, (void)c; /* never: no AVX2 build, no pack */
}
#endif
