/* test_i16: the 16-bit integer GEMM (gemm_i16.c) behind vision.precision = int16, against a loop
 * written here from gemm_i16.h's definition (activations clamped to [0, 6] and rounded to
 * multiples of 1/2048, nearest even; the products of the weights' bytes summed exactly in 64-bit
 * integers; the same float epilogue), which it must equal to the bit: shapes with every kind of
 * tail (rows, K, columns), several row blocks, all activations, packs with and without their FP32
 * source, and 1x1 convolutions through ops.c's hook. Also which layers get no pack (K odd, K over
 * FN_I16_MAX_K, weights that are not one scale's bytes) and that a thread with int16 off, or a
 * layer without the pack, runs FP32 to the bit. Skips, saying why, on a CPU without AVX2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vision/gemm_i16.h"
#include "vision/ops.h"

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
    fn_gemm_i16(m, &wp, a, bias, act, c);
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
    /* rows: under, at and over a tile of 6, several blocks of 128 KB of int16 (K 1024: 60 rows
     * a block); K: a pair, a tail under 16, 16, the largest; columns: under, at and over a slice
     * of 16, and SSD's widths. */
    static const int ms[] = {1, 5, 6, 7, 131};
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
    fn_gemm_i16(m, &wp, a, NULL, FN_ACT_NONE, c);
    fn_i16_set_thread(0);
    ref_gemm(m, &l, a, NULL, FN_ACT_NONE, ref);
    assert_memory_equal(c, ref, sizeof c);
    free(a);
    fn_wpack_free(&wp);
    free_layer(&l);
}

/* Layers the kernel cannot take keep FP32: no pack. */
static void test_no_pack(void **state)
{
    (void)state;
    if (skip_without_avx2()) skip();
    fn_wpack wp;
    layer odd = make_layer(27, 16), deep = make_layer(FN_I16_MAX_K + 2, 16),
          nb = make_layer(32, 16);
    assert_int_equal(fn_wpack_init(&wp, odd.w, 27, 16), 0);
    assert_int_equal(fn_wpack_i16_init(&wp, odd.qscale, odd.qmin), 0);
    assert_null(wp.i16);
    fn_wpack_free(&wp);
    assert_int_equal(fn_wpack_init(&wp, deep.w, deep.k, 16), 0);
    assert_int_equal(fn_wpack_i16_init(&wp, deep.qscale, deep.qmin), 0);
    assert_null(wp.i16);
    fn_wpack_free(&wp);
    nb.w[5 * 16 + 3] += 1e-3f; /* one weight not a byte of the scale */
    assert_int_equal(fn_wpack_init(&wp, nb.w, 32, 16), 0);
    assert_int_equal(fn_wpack_i16_init(&wp, nb.qscale, nb.qmin), 0);
    assert_null(wp.i16);
    assert_int_equal(fn_wpack_i16_init(&wp, 0, nb.qmin), 0); /* no quantization */
    assert_null(wp.i16);
    fn_wpack_free(&wp);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_exact),
        cmocka_unit_test(test_gemm_extremes),
        cmocka_unit_test(test_no_pack),
        cmocka_unit_test(test_conv_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
