/* test_i16: the 16-bit integer GEMM (gemm_i16.c) behind vision.precision = int16, against a loop
 * written here from gemm_i16.h's definition (activations clamped to [0, 6] and rounded to
 * multiples of 1/2048, nearest even; the products of the weights' bytes summed exactly in 64-bit
 * integers; the same float epilogue), which it must equal to the bit: shapes with every kind of
 * tail (rows, K, columns), several row blocks, all activations, packs with and without their FP32
 * source, and 1x1 convolutions through ops.c's hook. Also which layers get no pack (K odd, K over
 * FN_I16_MAX_K_SCALED, weights that are not one scale's bytes) and that a thread with int16 off, or
 * a layer without the pack, runs FP32 to the bit. Skips, saying why, on a CPU without AVX2. On a
 * CPU with AVX-512 VNNI every test runs twice: its VNNI tiles, then the AVX2 tiles. Float packs
 * (the descriptor's float32 convs, rounded per column) against their own definition too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "facenames/vision.h"
#include "vision/gemm_i16.h"
#include "vision/ops.h"
#include "vision/ops_isa.h"

static uint32_t rng_state = 1616;

static uint32_t rnd(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

/* Activations as a relu6 layer leaves them, with ties of the rounding (x.5 / 2048), exact zeros
 * and sixes, and a few values outside [0, 6] that the clamp must catch. */
static float act_value(void)
{
    switch (rnd() % 16) {
    case 0:
        return 0.0f;
    case 1:
        return 6.0f;
    case 2:
        return (float)(rnd() % 12288 + 0.5) / 2048.0f;
    case 3:
        return -0.25f;
    case 4:
        return 6.5f;
    default:
        return (float)(rnd() % 1000000) / 1000000.0f * 6.0f;
    }
}

typedef struct layer {
    int k, n;
    double qscale, qmin;
    unsigned char *q; /* [k][n] */
    float *w;         /* [k][n] = (float)(q * qscale + qmin) */
    float *bias;      /* [n] */
} layer;

static layer make_layer(int k, int n)
{
    layer l = {k, n, 0.003 + (rnd() % 100) * 1e-4, -0.4 + (rnd() % 100) * 1e-3, NULL, NULL, NULL};
    l.q = malloc((size_t)k * n);
    l.w = malloc(sizeof(float) * (size_t)k * n);
    l.bias = malloc(sizeof(float) * (size_t)n);
    assert_true(l.q && l.w && l.bias);
    for (size_t i = 0; i < (size_t)k * n; i++) {
        l.q[i] = (unsigned char)(rnd() & 255);
        l.w[i] = (float)(l.q[i] * l.qscale + l.qmin);
    }
    for (int j = 0; j < n; j++)
        l.bias[j] = (float)(rnd() % 2000) / 1000.0f - 1.0f;
    return l;
}

static void free_layer(layer *l)
{
    free(l->q), free(l->w), free(l->bias);
}

static float ref_act(float x, fn_act a)
{
    switch (a) {
    case FN_ACT_RELU:
        return x > 0 ? x : 0;
    case FN_ACT_RELU6:
        return x < 0 ? 0 : (x > 6 ? 6 : x);
    case FN_ACT_LEAKY:
        return x < 0 ? x * 0.1f : x;
    default:
        return x;
    }
}

/* gemm_i16.h's definition, one output at a time. */
static void ref_gemm(int m, const layer *l, const float *a, const float *bias, fn_act act, float *c)
{
    const float s = (float)(l->qscale / 2048.0), moff = (float)(l->qmin + 128.0 * l->qscale);
    int32_t *ai = malloc(sizeof(int32_t) * (size_t)l->k);
    assert_non_null(ai);
    for (int r = 0; r < m; r++) {
        int64_t rsum = 0;
        for (int kk = 0; kk < l->k; kk++) {
            float x = a[(size_t)r * l->k + kk];
            x = x < 0 ? 0 : x > 6 ? 6 : x;
            ai[kk] = (int32_t)rintf(x * 2048.0f); /* the default rounding: nearest even */
            rsum += ai[kk];
        }
        const float rs = (float)rsum / 2048.0f;
        for (int j = 0; j < l->n; j++) {
            int64_t sum = 0;
            for (int kk = 0; kk < l->k; kk++)
                sum += (int64_t)((int)l->q[(size_t)kk * l->n + j] - 128) * ai[kk];
            assert_true(sum >= INT32_MIN && sum <= INT32_MAX);
            const float v = fmaf((float)sum, s, rs * moff) + (bias ? bias[j] : 0.0f);
            c[(size_t)r * l->n + j] = ref_act(v, act);
        }
    }
    free(ai);
}

static int skip_without_avx2(void)
{
    const char *why = NULL;
    if (fn_i16_available(&why)) return 0;
    print_message("skipped: %s\n", why);
    return 1;
}

static void check_shape(int m, int k, int n, fn_act act, int keep_w, int with_bias)
{
    layer l = make_layer(k, n);
    fn_wpack wp;
    assert_int_equal(fn_wpack_init(&wp, l.w, k, n), 0);
    if (!keep_w && wp.p) wp.w = NULL; /* the pack made from the panels */
    assert_int_equal(fn_wpack_i16_init(&wp, l.qscale, l.qmin), 0);
    assert_non_null(wp.i16);
    float *a = malloc(sizeof(float) * (size_t)m * k), *c = malloc(sizeof(float) * (size_t)m * n),
          *ref = malloc(sizeof(float) * (size_t)m * n);
    assert_true(a && c && ref);
    for (size_t i = 0; i < (size_t)m * k; i++)
        a[i] = act_value();
    const float *bias = with_bias ? l.bias : NULL;
    assert_int_equal(fn_i16_set_thread(1), 0);
    assert_int_equal(fn_gemm_i16(m, &wp, a, bias, act, NULL, c), 0);
    fn_i16_set_thread(0);
    ref_gemm(m, &l, a, bias, act, ref);
    for (size_t i = 0; i < (size_t)m * n; i++)
        if (c[i] != ref[i])
            fail_msg("m %d k %d n %d act %d: C[%zu][%zu] = %.9g, expected %.9g", m, k, n, (int)act,
                     i / (size_t)n, i % (size_t)n, c[i], ref[i]);
    free(a), free(c), free(ref);
    fn_wpack_free(&wp);
    free_layer(&l);
}

static void test_gemm_exact(void **state)
{
    (void)state;
    if (skip_without_avx2()) skip();
    /* rows: every count up to a tile of 12 (VNNI: each its own code) and over it, several
     * blocks of 128 KB of int16 (K 1024: 60 rows a block); K: a pair, a tail under 16, 16, the
     * largest; columns: under, at and over a slice of 16, and SSD's widths. */
    static const int ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 25, 131};
    static const int ks[] = {2, 18, 32, 510, 1024};
    static const int ns[] = {1, 9, 16, 21, 48};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++)
            for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++)
                check_shape(ms[i], ks[j], ns[t], (fn_act)((i + j + t) % 4), (int)(t % 2),
                            (int)((i + t) % 3 != 0));
    check_shape(700, 256, 64, FN_ACT_RELU6, 1, 1); /* many blocks at a mid depth */
}

/* The largest sums the kernel can meet: every activation 6 and every byte 0 (q - 128 = -128) or
 * 255, K = FN_I16_MAX_K: within int32, exact. */
static void test_gemm_extremes(void **state)
{
    (void)state;
    if (skip_without_avx2()) skip();
    const int m = 7, k = FN_I16_MAX_K, n = 16;
    layer l = make_layer(k, n);
    for (size_t i = 0; i < (size_t)k * n; i++) {
        l.q[i] = (i % (size_t)n) < 8 ? 0 : 255;
        l.w[i] = (float)(l.q[i] * l.qscale + l.qmin);
    }
    fn_wpack wp;
    assert_int_equal(fn_wpack_init(&wp, l.w, k, n), 0);
    assert_int_equal(fn_wpack_i16_init(&wp, l.qscale, l.qmin), 0);
    float *a = malloc(sizeof(float) * (size_t)m * k), c[7 * 16], ref[7 * 16];
    assert_non_null(a);
    for (size_t i = 0; i < (size_t)m * k; i++)
        a[i] = 6.0f;
    fn_i16_set_thread(1);
    assert_int_equal(fn_gemm_i16(m, &wp, a, NULL, FN_ACT_NONE, NULL, c), 0);
    fn_i16_set_thread(0);
    ref_gemm(m, &l, a, NULL, FN_ACT_NONE, ref);
    assert_memory_equal(c, ref, sizeof c);
    free(a);
    fn_wpack_free(&wp);
    free_layer(&l);
}

/* Packs w (k x n) with one scale (cs NULL: fn_wpack_i16_init) or per column
 * (fn_wpack_i16_init_cols) and asserts that the layer got no pack: it keeps FP32. */
static void assert_no_pack(const float *w, int k, int n, double qscale, double qmin,
                           const float *cs, const float *cm)
{
    fn_wpack wp;
    assert_int_equal(fn_wpack_init(&wp, w, k, n), 0);
    if (cs)
        assert_int_equal(fn_wpack_i16_init_cols(&wp, cs, cm), 0);
    else
        assert_int_equal(fn_wpack_i16_init(&wp, qscale, qmin), 0);
    assert_null(wp.i16);
    fn_wpack_free(&wp);
}

/* Layers the kernel cannot take keep FP32: no pack. */
static void test_no_pack(void **state)
{
    (void)state;
    if (skip_without_avx2()) skip();
    layer odd = make_layer(27, 16), deep = make_layer(FN_I16_MAX_K_SCALED + 2, 16),
          nb = make_layer(32, 16);
    assert_no_pack(odd.w, 27, 16, odd.qscale, odd.qmin, NULL, NULL);
    assert_no_pack(deep.w, deep.k, 16, deep.qscale, deep.qmin, NULL, NULL);
    nb.w[5 * 16 + 3] += 1e-3f; /* one weight not a byte of the scale */
    assert_no_pack(nb.w, 32, 16, nb.qscale, nb.qmin, NULL, NULL);
    assert_no_pack(nb.w, 32, 16, 0, nb.qmin, NULL, NULL); /* no quantization */
    free_layer(&odd), free_layer(&deep), free_layer(&nb);
}

/* A 1x1 conv through ops.c: the int16 kernel while the thread has int16 on and the layer its
 * pack; FP32 to the bit with the thread's int16 off. */
static void test_conv_hook(void **state)
{
    (void)state;
    if (skip_without_avx2()) skip();
    const int h = 9, w = 11, cin = 64, cout = 40;
    layer l = make_layer(cin, cout);
    fn_wpack wp, plain;
    assert_int_equal(fn_wpack_init(&wp, l.w, cin, cout), 0);
    assert_int_equal(fn_wpack_init(&plain, l.w, cin, cout), 0);
    assert_int_equal(fn_wpack_i16_init(&wp, l.qscale, l.qmin), 0);
    const size_t npx = (size_t)h * w;
    fn_t3 in = {h, w, cin, malloc(sizeof(float) * npx * cin)};
    fn_t3 out = {0, 0, 0, malloc(sizeof(float) * npx * cout)};
    float *ref = malloc(sizeof(float) * npx * cout), *fp32 = malloc(sizeof(float) * npx * cout);
    assert_true(in.d && out.d && ref && fp32);
    for (size_t i = 0; i < npx * cin; i++)
        in.d[i] = act_value();
    fn_conv2d_w(&in, &plain, l.bias, 1, 1, 1, FN_PAD_SAME, FN_ACT_NONE, &out, NULL);
    memcpy(fp32, out.d, sizeof(float) * npx * cout);
    fn_conv2d_w(&in, &wp, l.bias, 1, 1, 1, FN_PAD_SAME, FN_ACT_NONE, &out, NULL);
    assert_memory_equal(out.d, fp32, sizeof(float) * npx * cout); /* int16 off: FP32 */
    fn_i16_set_thread(1);
    fn_conv2d_w(&in, &wp, l.bias, 1, 1, 1, FN_PAD_SAME, FN_ACT_NONE, &out, NULL);
    ref_gemm((int)npx, &l, in.d, l.bias, FN_ACT_NONE, ref);
    assert_memory_equal(out.d, ref, sizeof(float) * npx * cout);
    assert_memory_not_equal(out.d, fp32, sizeof(float) * npx * cout);
    fn_conv2d_w(&in, &plain, l.bias, 1, 1, 1, FN_PAD_SAME, FN_ACT_NONE, &out, NULL);
    assert_memory_equal(out.d, fp32, sizeof(float) * npx * cout); /* no pack: FP32 */
    fn_i16_set_thread(0);
    free(in.d), free(out.d), free(ref), free(fp32);
    fn_wpack_free(&wp);
    fn_wpack_free(&plain);
    free_layer(&l);
}

/* ---- scaled packs (fn_wpack_i16_init_cols): the descriptor net's convs ---------------------- */

/* A layer quantized per column as recognition.c folds it: w = fmaf(q, cs[c], cm[c]), some
 * scales negative (a scale layer's weight may be). */
typedef struct scaled {
    int k, n;
    unsigned char *q;
    float *cs, *cm, *w, *bias;
} scaled;

static scaled make_scaled(int k, int n)
{
    scaled l = {k,
                n,
                malloc((size_t)k * n),
                malloc(sizeof(float) * (size_t)n),
                malloc(sizeof(float) * (size_t)n),
                malloc(sizeof(float) * (size_t)k * n),
                malloc(sizeof(float) * (size_t)n)};
    assert_true(l.q && l.cs && l.cm && l.w && l.bias);
    for (int c = 0; c < n; c++) {
        l.cs[c] = (float)(0.002 + (rnd() % 100) * 1e-4) * (c % 5 == 3 ? -1.0f : 1.0f);
        l.cm[c] = (float)(-0.3 + (rnd() % 100) * 1e-3);
        l.bias[c] = (float)(rnd() % 2000) / 1000.0f - 1.0f;
    }
    for (size_t i = 0; i < (size_t)k * n; i++) {
        l.q[i] = (unsigned char)(rnd() & 255);
        l.w[i] = fmaf((float)l.q[i], l.cs[i % (size_t)n], l.cm[i % (size_t)n]);
    }
    return l;
}

static void free_scaled(scaled *l)
{
    free(l->q), free(l->cs), free(l->cm), free(l->w), free(l->bias);
}

/* Activations of either sign and of any size (relu outputs, and the signed ones the pack also
 * takes), exact zeros among them. */
static float any_value(void)
{
    const float mag = (float)(1u << (rnd() % 8)) / 16.0f;
    return rnd() % 7 == 0 ? 0.0f : ((float)(rnd() % 2000001) / 1000000.0f - 1.0f) * mag;
}

/* gemm_i16.h's definition for a scaled pack: row r's activations times mul = qmax / amax[r]
 * (qmax = min(32767, (2^31 - 1) / (128 K))), clamped to [-qmax, qmax], rounded to nearest even;
 * exact sums; x = sum * inv (inv = 1 / mul), rs = rowsum * inv; fmaf(x, cs, rs * (cm + 128 cs))
 * + bias; then relu(. + res) with res, else the activation. */
static void ref_scaled(int m, const scaled *l, const float *a, const float *amax, const float *bias,
                       fn_act act, const float *res, float *c)
{
    const long ql = 2147483647L / (128L * l->k);
    const float qmax = (float)(ql > 32767 ? 32767 : ql);
    int32_t *ai = malloc(sizeof(int32_t) * (size_t)l->k);
    assert_non_null(ai);
    for (int r = 0; r < m; r++) {
        const float mul = amax[r] > 0 ? qmax / amax[r] : 1.0f, inv = 1.0f / mul;
        int64_t rsum = 0;
        for (int kk = 0; kk < l->k; kk++) {
            float x = a[(size_t)r * l->k + kk] * mul;
            x = x < -qmax ? -qmax : x > qmax ? qmax : x;
            ai[kk] = (int32_t)rintf(x);
            rsum += ai[kk];
        }
        const float rs = (float)rsum * inv;
        for (int j = 0; j < l->n; j++) {
            int64_t sum = 0;
            for (int kk = 0; kk < l->k; kk++)
                sum += (int64_t)((int)l->q[(size_t)kk * l->n + j] - 128) * ai[kk];
            assert_true(sum >= INT32_MIN && sum <= INT32_MAX);
            const float cm = (float)((double)l->cm[j] + 128.0 * l->cs[j]);
            float v = fmaf((float)sum * inv, l->cs[j], rs * cm) + (bias ? bias[j] : 0.0f);
            if (res) {
                v = v + res[(size_t)r * l->n + j];
                v = v > 0 ? v : 0;
            } else {
                v = ref_act(v, act);
            }
            c[(size_t)r * l->n + j] = v;
        }
    }
    free(ai);
}

static float row_absmax(const float *a, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++)
        m = fabsf(a[i]) > m ? fabsf(a[i]) : m;
    return m;
}

static void check_equal(const float *c, const float *ref, size_t count, int n, const char *what)
{
    for (size_t i = 0; i < count; i++)
        if (c[i] != ref[i])
            fail_msg("%s: C[%zu][%zu] = %.9g, expected %.9g", what, i / (size_t)n, i % (size_t)n,
                     c[i], ref[i]);
}

/* fn_gemm_i16 on scaled packs: each row scaled to its own max (a row of zeros among them), to the
 * bit, with and without the residual sum, at depths up to the descriptor's 2304. */
static void test_scaled_gemm(void **state)
{
    (void)state;
    if (skip_without_avx2()) skip();
    static const int ms[] = {1, 7, 131};
    static const int ks[] = {2, 288, 1152, 2304};
    static const int ns[] = {9, 32};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++)
            for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
                const int m = ms[i], k = ks[j], n = ns[t], with_res = (int)((i + j + t) % 2);
                scaled l = make_scaled(k, n);
                fn_wpack wp;
                assert_int_equal(fn_wpack_init(&wp, l.w, k, n), 0);
                if (t % 2 && wp.p) wp.w = NULL; /* the pack made from the panels */
                assert_int_equal(fn_wpack_i16_init_cols(&wp, l.cs, l.cm), 0);
                assert_non_null(wp.i16);
                float *a = malloc(sizeof(float) * (size_t)m * k),
                      *c = malloc(sizeof(float) * (size_t)m * n),
                      *ref = malloc(sizeof(float) * (size_t)m * n),
                      *res = malloc(sizeof(float) * (size_t)m * n),
                      *amax = malloc(sizeof(float) * (size_t)m);
                assert_true(a && c && ref && res && amax);
                for (size_t x = 0; x < (size_t)m * k; x++)
                    a[x] = any_value();
                if (m > 1) memset(a + k, 0, sizeof(float) * (size_t)k); /* a row of zeros */
                for (size_t x = 0; x < (size_t)m * n; x++)
                    res[x] = any_value();
                for (int r = 0; r < m; r++)
                    amax[r] = row_absmax(a + (size_t)r * k, (size_t)k);
                const fn_act act = with_res ? FN_ACT_NONE : (fn_act)((i + t) % 4);
                fn_i16_set_thread(1);
                assert_int_equal(fn_gemm_i16(m, &wp, a, l.bias, act, with_res ? res : NULL, c), 0);
                fn_i16_set_thread(0);
                ref_scaled(m, &l, a, amax, l.bias, act, with_res ? res : NULL, ref);
                char what[64];
                snprintf(what, sizeof what, "m %d k %d n %d res %d", m, k, n, with_res);
                check_equal(c, ref, (size_t)m * n, n, what);
                free(a), free(c), free(ref), free(res), free(amax);
                fn_wpack_free(&wp);
                free_scaled(&l);
            }
}

/* A NaN among a row's activations makes that row's outputs NaN (as FP32's would be), and only
 * that row's. */
static void test_scaled_nan(void **state)
{
    (void)state;
    if (skip_without_avx2()) skip();
    const int m = 3, k = 64, n = 16;
    scaled l = make_scaled(k, n);
    fn_wpack wp;
    assert_int_equal(fn_wpack_init(&wp, l.w, k, n), 0);
    assert_int_equal(fn_wpack_i16_init_cols(&wp, l.cs, l.cm), 0);
    float a[3 * 64], c[3 * 16];
    for (int x = 0; x < m * k; x++)
        a[x] = any_value();
    a[k + 5] = NAN;
    fn_i16_set_thread(1);
    assert_int_equal(fn_gemm_i16(m, &wp, a, l.bias, FN_ACT_NONE, NULL, c), 0);
    fn_i16_set_thread(0);
    for (int j = 0; j < n; j++) {
        assert_false(isnan(c[j]));
        assert_true(isnan(c[n + j]));
        assert_false(isnan(c[2 * n + j]));
    }
    assert_true(isnan(fn_i16_absmax(a, (size_t)m * k)));
    assert_true(fn_i16_absmax(a, (size_t)k) == row_absmax(a, (size_t)k));
    fn_wpack_free(&wp);
    free_scaled(&l);
}

/* im2col of one image's 3x3 SAME conv (zeros outside), the test's own. */
static void im2col3(const float *img, int h, int w, int c, float *col)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++)
                    for (int ch = 0; ch < c; ch++) {
                        const int yy = y + dy, xx = x + dx;
                        *col++ = yy < 0 || yy >= h || xx < 0 || xx >= w
                                     ? 0.0f
                                     : img[((size_t)yy * w + xx) * c + ch];
                    }
}

/* A 3x3 SAME conv of two images on a scaled pack through ops.c (the rows-of-taps path,
 * fn_gemm_i16_seg): every row of an image scaled by that image's max, to the bit, with the
 * residual sum and without; an image's output the same alone as beside another (the scale is the
 * image's, whatever the batch); FP32 to the bit with the thread's int16 off. */
static void test_scaled_conv3(void **state)
{
    (void)state;
    if (skip_without_avx2()) skip();
    const int h = 18, w = 17, cin = 16, cout = 24, k = 9 * cin, nimg = 2;
    const size_t px = (size_t)h * w, isz = px * cin, osz = px * cout;
    scaled l = make_scaled(k, cout);
    fn_wpack wp, plain;
    assert_int_equal(fn_wpack_init(&wp, l.w, k, cout), 0);
    assert_int_equal(fn_wpack_init(&plain, l.w, k, cout), 0);
    assert_int_equal(fn_wpack_i16_init_cols(&wp, l.cs, l.cm), 0);
    fn_t3 in = {h, w, cin, malloc(sizeof(float) * isz * nimg)};
    fn_t3 out = {0, 0, 0, malloc(sizeof(float) * osz * nimg)};
    float *res = malloc(sizeof(float) * osz * nimg), *ref = malloc(sizeof(float) * osz),
          *col = malloc(sizeof(float) * px * k), *fp32 = malloc(sizeof(float) * osz * nimg),
          *amax = malloc(sizeof(float) * px),
          *scratch = malloc(sizeof(float) *
                            fn_conv2d_scratch_floats_n(nimg, h, w, cin, 3, 3, 1, FN_PAD_SAME));
    assert_true(in.d && out.d && res && ref && col && fp32 && amax && scratch);
    for (size_t x = 0; x < isz * nimg; x++) /* relu outputs, the second image 4x the first */
        in.d[x] = fabsf(any_value()) * (x < isz ? 1.0f : 4.0f);
    for (size_t x = 0; x < osz * nimg; x++)
        res[x] = any_value();
    for (int with_res = 0; with_res < 2; with_res++) {
        const float *rs = with_res ? res : NULL;
        if (with_res)
            fn_conv2d_res_wn(&in, nimg, &plain, l.bias, 3, 3, 1, FN_PAD_SAME, res, &out, scratch);
        else
            fn_conv2d_wn(&in, nimg, &plain, l.bias, 3, 3, 1, FN_PAD_SAME, FN_ACT_RELU, &out,
                         scratch);
        memcpy(fp32, out.d, sizeof(float) * osz * nimg);
        fn_i16_set_thread(1);
        if (with_res)
            fn_conv2d_res_wn(&in, nimg, &wp, l.bias, 3, 3, 1, FN_PAD_SAME, res, &out, scratch);
        else
            fn_conv2d_wn(&in, nimg, &wp, l.bias, 3, 3, 1, FN_PAD_SAME, FN_ACT_RELU, &out, scratch);
        fn_i16_set_thread(0);
        for (int i = 0; i < nimg; i++) {
            const float *img = in.d + (size_t)i * isz;
            im2col3(img, h, w, cin, col);
            const float mx = row_absmax(img, isz);
            for (size_t r = 0; r < px; r++)
                amax[r] = mx;
            ref_scaled((int)px, &l, col, amax, l.bias, FN_ACT_RELU,
                       rs ? rs + (size_t)i * osz : NULL, ref);
            char what[48];
            snprintf(what, sizeof what, "conv3 image %d res %d", i, with_res);
            check_equal(out.d + (size_t)i * osz, ref, osz, cout, what);
        }
        assert_memory_not_equal(out.d, fp32, sizeof(float) * osz * nimg);
        /* the second image alone: the same floats as in the batch */
        fn_t3 one = {h, w, cin, in.d + isz}, o1 = {0, 0, 0, fp32};
        fn_i16_set_thread(1);
        if (with_res)
            fn_conv2d_res_wn(&one, 1, &wp, l.bias, 3, 3, 1, FN_PAD_SAME, res + osz, &o1, scratch);
        else
            fn_conv2d_wn(&one, 1, &wp, l.bias, 3, 3, 1, FN_PAD_SAME, FN_ACT_RELU, &o1, scratch);
        fn_i16_set_thread(0);
        assert_memory_equal(o1.d, out.d + osz, sizeof(float) * osz);
    }
    /* int16 off: FP32 to the bit */
    fn_conv2d_wn(&in, nimg, &plain, l.bias, 3, 3, 1, FN_PAD_SAME, FN_ACT_RELU, &out, scratch);
    memcpy(fp32, out.d, sizeof(float) * osz * nimg);
    fn_conv2d_wn(&in, nimg, &wp, l.bias, 3, 3, 1, FN_PAD_SAME, FN_ACT_RELU, &out, scratch);
    assert_memory_equal(out.d, fp32, sizeof(float) * osz * nimg);
    free(in.d), free(out.d), free(res), free(ref), free(col), free(fp32), free(amax);
    free(scratch);
    fn_wpack_free(&wp);
    fn_wpack_free(&plain);
    free_scaled(&l);
}

/* Layers a scaled pack cannot take: K odd or over FN_I16_MAX_K_SCALED, a column of scale 0, a
 * weight not fmaf(q, scale, min) of its column. */
static void test_scaled_no_pack(void **state)
{
    (void)state;
    if (skip_without_avx2()) skip();
    scaled odd = make_scaled(147, 16), deep = make_scaled(FN_I16_MAX_K_SCALED + 2, 8),
           nb = make_scaled(32, 16);
    assert_no_pack(odd.w, 147, 16, 0, 0, odd.cs, odd.cm);
    assert_no_pack(deep.w, deep.k, 8, 0, 0, deep.cs, deep.cm);
    nb.w[7 * 16 + 2] += 1e-3f;
    assert_no_pack(nb.w, 32, 16, 0, 0, nb.cs, nb.cm);
    nb.w[7 * 16 + 2] -= 1e-3f;
    nb.cs[4] = 0.0f;
    assert_no_pack(nb.w, 32, 16, 0, 0, nb.cs, nb.cm);
    free_scaled(&odd), free_scaled(&deep), free_scaled(&nb);
}

/* A relu6 layer deeper than FN_I16_MAX_K (SSD's 3x3 extra layers) gets a scaled pack: each row
 * scaled to its own max, as fn_wpack_i16_init_cols's. Scale and offset exact in a float, so that
 * both forms of the weights are the same floats. */
/* A layer of one tensor-wide byte quantization on a scaled pack: made by fn_wpack_i16_init for
 * K over FN_I16_MAX_K (SSD's 3x3 extra layers), or asked for with fn_wpack_i16_init_scaled (the
 * landmark net's pointwise convs, whose inputs have either sign); to the bit against ref_scaled. */
static void check_tensor_scaled(int m, int k, int n, int forced, const char *what)
{
    scaled l = make_scaled(k, n);
    for (int c = 0; c < n; c++)
        l.cs[c] = 1.0f / 256, l.cm[c] = -0.5f;
    for (size_t i = 0; i < (size_t)k * n; i++)
        l.w[i] = fmaf((float)l.q[i], l.cs[0], l.cm[0]);
    fn_wpack wp;
    assert_int_equal(fn_wpack_init(&wp, l.w, k, n), 0);
    if (forced)
        assert_int_equal(fn_wpack_i16_init_scaled(&wp, 1.0 / 256, -0.5), 0);
    else
        assert_int_equal(fn_wpack_i16_init(&wp, 1.0 / 256, -0.5), 0);
    assert_non_null(wp.i16);
    float *a = malloc(sizeof(float) * (size_t)m * k), *c = malloc(sizeof(float) * (size_t)m * n),
          *ref = malloc(sizeof(float) * (size_t)m * n), *amax = malloc(sizeof(float) * (size_t)m);
    assert_true(a && c && ref && amax);
    for (size_t x = 0; x < (size_t)m * k; x++)
        a[x] = forced ? any_value() : act_value();
    for (int r = 0; r < m; r++)
        amax[r] = row_absmax(a + (size_t)r * k, (size_t)k);
    fn_i16_set_thread(1);
    assert_int_equal(fn_gemm_i16(m, &wp, a, l.bias, FN_ACT_RELU6, NULL, c), 0);
    fn_i16_set_thread(0);
    ref_scaled(m, &l, a, amax, l.bias, FN_ACT_RELU6, NULL, ref);
    check_equal(c, ref, (size_t)m * n, n, what);
    free(a), free(c), free(ref), free(amax);
    fn_wpack_free(&wp);
    free_scaled(&l);
}

static void test_deep_fixed_is_scaled(void **state)
{
    (void)state;
    if (skip_without_avx2()) skip();
    check_tensor_scaled(9, 2304, 24, 0, "k 2304 relu6 layer");
    check_tensor_scaled(49, 256, 40, 1, "k 256 scaled by request, signed inputs");
    check_tensor_scaled(13, 128, 16, 1, "k 128 scaled by request, signed inputs");
}

/* A GEMM of under 4 rows on a layer that also has bytes (fn_wpack_bytes) takes the bytes
 * kernel, which streams half the bytes: FP32's floats; from 4 rows, the int16 kernel. */
static void test_few_rows_bytes(void **state)
{
    (void)state;
    if (skip_without_avx2()) skip();
    const int k = 256, n = 64;
    scaled l = make_scaled(k, n);
    fn_wpack wp, plain;
    assert_int_equal(fn_wpack_init(&wp, l.w, k, n), 0);
    assert_int_equal(fn_wpack_init(&plain, l.w, k, n), 0);
    assert_int_equal(fn_wpack_bytes(&wp, l.q, l.cs, l.cm), 0);
    assert_int_equal(fn_wpack_bytes(&plain, l.q, l.cs, l.cm), 0);
    assert_int_equal(fn_wpack_i16_init_cols(&wp, l.cs, l.cm), 0);
    float a[4 * 256], c[4 * 64], ref[4 * 64], amax[4];
    for (int x = 0; x < 4 * k; x++)
        a[x] = any_value();
    for (int m = 1; m <= 4; m++) {
        fn_t3 in = {1, m, k, a}, out = {0, 0, 0, c}, fo = {0, 0, 0, ref};
        fn_conv2d_w(&in, &plain, l.bias, 1, 1, 1, FN_PAD_SAME, FN_ACT_NONE, &fo, NULL);
        fn_i16_set_thread(1);
        fn_conv2d_w(&in, &wp, l.bias, 1, 1, 1, FN_PAD_SAME, FN_ACT_NONE, &out, NULL);
        fn_i16_set_thread(0);
        if (m < 4) {
            assert_memory_equal(c, ref, sizeof(float) * (size_t)m * n);
            continue;
        }
        for (int r = 0; r < m; r++)
            amax[r] = row_absmax(a + (size_t)r * k, (size_t)k);
        ref_scaled(m, &l, a, amax, l.bias, FN_ACT_NONE, NULL, ref);
        check_equal(c, ref, (size_t)m * n, n, "4 rows");
    }
    fn_wpack_free(&wp);
    fn_wpack_free(&plain);
    free_scaled(&l);
}

/* vision.precision = auto: int16 where the CPU's FP32 FMAs are at most 256 bits wide (AVX2 without
 * AVX-512, AMD Zen 3 and 4), fp32 on Intel's AVX-512 cores and without AVX2; told here from the
 * compiler's own CPU probe, not gemm_i16.c's. And the names parse to their precisions, others are
 * refused. */
static void test_auto_precision(void **state)
{
    (void)state;
    __builtin_cpu_init();
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const int avx512 = __builtin_cpu_supports("avx512f");
    fn_precision p = FN_PRECISION_BF16;
    assert_int_equal(fn_vision_precision_parse("auto", &p), 0);
    assert_int_equal(p, fn_vision_precision_auto());
    if (!avx2 || (avx512 && __builtin_cpu_is("intel")))
        assert_int_equal(p, FN_PRECISION_FP32);
    else if (!avx512)
        assert_int_equal(p, FN_PRECISION_INT16);
    print_message("auto is %s here (avx2 %d, avx512f %d)\n", fn_vision_precision_name(p), avx2,
                  avx512);
    assert_int_equal(fn_i16_preferred(), p == FN_PRECISION_INT16);
    static const char *const names[] = {"fp32", "bf16", "int16"};
    for (int i = 0; i < 3; i++) {
        p = (fn_precision)-1;
        assert_int_equal(fn_vision_precision_parse(names[i], &p), 0);
        assert_int_equal(p, (fn_precision)i);
        assert_string_equal(fn_vision_precision_name(p), names[i]);
    }
    assert_string_equal(fn_vision_precision_name((fn_precision)7), "unknown");
    static const char *const bad[] = {"", "FP32", "int8", "auto ", "fp16"};
    for (int i = 0; i < 5; i++) {
        p = FN_PRECISION_BF16;
        assert_int_equal(fn_vision_precision_parse(bad[i], &p), FN_ERR_INVALID);
        assert_int_equal(p, FN_PRECISION_BF16);
    }
    assert_int_equal(fn_vision_precision_parse(NULL, &p), FN_ERR_INVALID);
}

/* ---- float packs (fn_wpack_i16_init_float): the descriptor net's float32 convs ------------- */

/* gemm_i16.h's definition for a float pack: wmax = floor(sqrt((2^31 - 1) / K)) (at most 32767),
 * each column's weights q = round(w / scale) (scale = the column's max |w| / wmax, 1 for a column
 * of zeros), the activations as a scaled pack's with qmax = min(32767, (2^31 - 1) / (wmax K));
 * exact sums; fmaf(sum * inv, scale, rs * 0) + bias, then the activation. */
static void ref_float(int m, int k, int n, const float *w, const float *a, const float *bias,
                      fn_act act, float *c)
{
    double wq = floor(sqrt(2147483647.0 / k));
    const int qw = wq > 32767 ? 32767 : (int)wq;
    const long ql = 2147483647L / ((long)qw * k);
    const float qmax = (float)(ql > 32767 ? 32767 : ql);
    int32_t *ai = malloc(sizeof(int32_t) * (size_t)k);
    float *scale = malloc(sizeof(float) * (size_t)n);
    assert_true(ai && scale);
    for (int j = 0; j < n; j++) {
        float mx = 0;
        for (int kk = 0; kk < k; kk++)
            mx = fmaxf(mx, fabsf(w[(size_t)kk * n + j]));
        scale[j] = mx > 0 ? mx / (float)qw : 1.0f;
    }
    for (int r = 0; r < m; r++) {
        const float amax = row_absmax(a + (size_t)r * k, (size_t)k);
        const float mul = amax > 0 ? qmax / amax : 1.0f, inv = 1.0f / mul;
        int64_t rsum = 0;
        for (int kk = 0; kk < k; kk++) {
            float x = a[(size_t)r * k + kk] * mul;
            x = x < -qmax ? -qmax : x > qmax ? qmax : x;
            ai[kk] = (int32_t)rintf(x);
            rsum += ai[kk];
        }
        const float rs = (float)rsum * inv;
        for (int j = 0; j < n; j++) {
            int64_t sum = 0;
            for (int kk = 0; kk < k; kk++) {
                long q = lrintf(w[(size_t)kk * n + j] / scale[j]);
                q = q < -qw ? -qw : q > qw ? qw : q;
                sum += (int64_t)q * ai[kk];
            }
            assert_true(sum >= INT32_MIN && sum <= INT32_MAX);
            const float v = fmaf((float)sum * inv, scale[j], rs * 0.0f) + (bias ? bias[j] : 0.0f);
            c[(size_t)r * n + j] = ref_act(v, act);
        }
    }
    free(ai), free(scale);
}

/* fn_gemm_i16 on float packs: to the bit against ref_float (weights of any sign and size, a
 * column of zeros, a column with one large weight), with every kind of row and column tail;
 * within the quantization's error of the FP32 GEMM; and a weight that is not finite leaves the
 * layer FP32 (no pack). */
static void test_float_pack(void **state)
{
    (void)state;
    if (skip_without_avx2()) skip();
    static const int ms[] = {1, 7, 13, 131};
    static const int ks[] = {2, 576, 1152};
    static const int ns[] = {9, 64};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++)
            for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
                const int m = ms[i], k = ks[j], n = ns[t];
                float *w = malloc(sizeof(float) * (size_t)k * n),
                      *a = malloc(sizeof(float) * (size_t)m * k),
                      *bias = malloc(sizeof(float) * (size_t)n),
                      *c = malloc(sizeof(float) * (size_t)m * n),
                      *ref = malloc(sizeof(float) * (size_t)m * n);
                assert_true(w && a && bias && c && ref);
                for (size_t x = 0; x < (size_t)k * n; x++) {
                    const int col = (int)(x % (size_t)n);
                    w[x] = col == 2 ? 0.0f : any_value() * 0.1f;
                }
                w[(size_t)(k / 2) * n + 3] = 7.5f; /* one large weight in column 3 */
                for (size_t x = 0; x < (size_t)m * k; x++)
                    a[x] = any_value();
                for (int x = 0; x < n; x++)
                    bias[x] = any_value();
                fn_wpack wp;
                assert_int_equal(fn_wpack_init(&wp, w, k, n), 0);
                if (t % 2 && wp.p) wp.w = NULL; /* the pack made from the panels */
                assert_int_equal(fn_wpack_i16_init_float(&wp), 0);
                assert_non_null(wp.i16);
                const fn_act act = (fn_act)((i + j + t) % 4);
                fn_i16_set_thread(1);
                assert_int_equal(fn_gemm_i16(m, &wp, a, bias, act, NULL, c), 0);
                fn_i16_set_thread(0);
                ref_float(m, k, n, w, a, bias, act, ref);
                char what[64];
                snprintf(what, sizeof what, "float pack m %d k %d n %d", m, k, n);
                check_equal(c, ref, (size_t)m * n, n, what);
                /* The FP32 result, within the two roundings: each product off by at most half
                 * a step of its weight's column and of its row's activations. */
                if (act == FN_ACT_NONE)
                    for (int r = 0; r < m; r++)
                        for (int col = 0; col < n; col++) {
                            double exact = bias[col], bound = 1e-6;
                            float wm = 0;
                            for (int kk = 0; kk < k; kk++)
                                wm = fmaxf(wm, fabsf(w[(size_t)kk * n + col]));
                            const float am = row_absmax(a + (size_t)r * k, (size_t)k);
                            for (int kk = 0; kk < k; kk++) {
                                const double x = a[(size_t)r * k + kk], y = w[(size_t)kk * n + col];
                                exact += x * y;
                                bound += fabs(x) * wm / (2.0 * fn_i16_float_wmax(k)) +
                                         fabs(y) * am / (2.0 * 1000.0);
                            }
                            assert_true(fabs(c[(size_t)r * n + col] - exact) <= bound);
                        }
                fn_wpack_free(&wp);
                free(w), free(a), free(bias), free(c), free(ref);
            }
    /* Not finite: no pack. */
    float w[4 * 2] = {0.1f, 0.2f, 0.3f, INFINITY, 0.5f, 0.6f, 0.7f, 0.8f};
    fn_wpack wp;
    assert_int_equal(fn_wpack_init(&wp, w, 4, 2), 0);
    assert_int_equal(fn_wpack_i16_init_float(&wp), 0);
    assert_null(wp.i16);
    fn_wpack_free(&wp);
    assert_int_equal(fn_i16_float_wmax(576), 1930);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto_precision), cmocka_unit_test(test_gemm_exact),
        cmocka_unit_test(test_gemm_extremes),  cmocka_unit_test(test_no_pack),
        cmocka_unit_test(test_conv_hook),      cmocka_unit_test(test_scaled_gemm),
        cmocka_unit_test(test_scaled_nan),     cmocka_unit_test(test_scaled_conv3),
        cmocka_unit_test(test_scaled_no_pack), cmocka_unit_test(test_deep_fixed_is_scaled),
        cmocka_unit_test(test_few_rows_bytes), cmocka_unit_test(test_float_pack),
    };
    int failed = cmocka_run_group_tests_name("int16, the CPU's tiles", tests, NULL, NULL);
    if (fn_i16_vnni()) { /* the AVX2 tiles too, which CPUs without VNNI run */
        fn_ops_set_isa(FN_ISA_AVX2);
        failed += cmocka_run_group_tests_name("int16, the AVX2 tiles", tests, NULL, NULL);
        fn_ops_set_isa(-1);
    }
    return failed;
}
