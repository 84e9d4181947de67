/* test_amx: the AMX-BF16 GEMM (gemm_amx.c) behind vision.precision = bf16, against a loop in
 * double precision over the same BF16-rounded inputs, so the only difference left is the FP32
 * accumulation: shapes with every kind of tail (rows, K, columns), several row blocks, all
 * activations, packs with and without their FP32 source, and convolutions through ops.c's hook.
 * Also the fallback: without AMX (or with it turned off) nothing changes and a reason is given.
 * The kernel tests skip, saying why, on a machine without AMX. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vision/gemm_amx.h"
#include "vision/ops.h"

static uint32_t rng_state = 4242;

static float frand(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static float *rand_buf(size_t n)
{
    float *p = malloc(n * sizeof(float));
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = frand();
    return p;
}

/* BF16 rounding (nearest even), written here from the format's definition. */
static double bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    const uint32_t lower = u & 0xffffu, upper = u & 0xffff0000u;
    uint32_t r = upper;
    if (lower > 0x8000u || (lower == 0x8000u && (upper & 0x10000u))) r += 0x10000u;
    float f;
    memcpy(&f, &r, sizeof f);
    return f;
}

static double ref_act(double x, fn_act a)
{
    switch (a) {
    case FN_ACT_RELU:
        return x > 0 ? x : 0;
    case FN_ACT_RELU6:
        return x < 0 ? 0 : (x > 6 ? 6 : x);
    case FN_ACT_LEAKY:
        return x < 0 ? 0.1 * x : x;
    default:
        return x;
    }
}

static int skip_without_amx(void)
{
    const char *why = NULL;
    if (fn_amx_available(&why)) return 0;
    print_message("skipped: %s\n", why);
    return 1;
}

/* One GEMM m x k by k x n through ops.c (a 1x1 conv) with BF16 on, against the reference. */
static void check_gemm(int m, int k, int n, fn_act act, int drop_source)
{
    float *a = rand_buf((size_t)m * k), *w = rand_buf((size_t)k * n), *bias = rand_buf(n);
    float *c = malloc(sizeof(float) * (size_t)m * n);
    assert_non_null(c);
    fn_wpack wp;
    assert_int_equal(fn_wpack_init(&wp, w, k, n), 0);
    if (drop_source && wp.p) wp.w = NULL; /* the pack reads the FP32 panels (fn_wpack_at) */
    assert_int_equal(fn_wpack_amx_init(&wp), 0);
    assert_non_null(wp.amx);
    const int was = fn_amx_set_thread(1);
    assert_int_equal(fn_amx_thread(), 1);
    fn_t3 in = {m, 1, k, a}, out = {0, 0, 0, c};
    fn_conv2d_w(&in, &wp, bias, 1, 1, 1, FN_PAD_VALID, act, &out, NULL);
    fn_amx_set_thread(was);
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = bias[j], mag = fabs(bias[j]);
            for (int q = 0; q < k; q++) {
                const double p = bf16(a[(size_t)i * k + q]) * bf16(w[(size_t)q * n + j]);
                s += p;
                mag += fabs(p);
            }
            const double want = ref_act(s, act), got = c[(size_t)i * n + j];
            /* FP32 accumulation of k products: a few ulps of the sum of magnitudes. */
            if (fabs(got - want) > 1e-6 * mag + 1e-6) {
                fail_msg("m=%d k=%d n=%d act=%d drop=%d at [%d][%d]: got %.7g want %.7g", m, k, n,
                         (int)act, drop_source, i, j, got, want);
            }
        }
    fn_wpack_free(&wp);
    assert_null(wp.amx);
    free(a), free(w), free(bias), free(c);
}

static void test_gemm_shapes(void **state)
{
    (void)state;
    if (skip_without_amx()) skip();
    static const int ms[] = {1, 16, 17, 33, 300};
    static const int ks[] = {32, 45, 64, 512, 1100};
    static const int ns[] = {5, 16, 33, 64, 100};
    int t = 0;
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++)
            for (size_t l = 0; l < sizeof ns / sizeof ns[0]; l++, t++)
                check_gemm(ms[i], ks[j], ns[l], (fn_act)(t % 4), t % 3 == 0);
}

/* A 3x3 stride-2 SAME conv (im2col strips, then the hook) against the same conv computed by the
 * FP32 kernels from BF16-rounded inputs and weights. */
static void test_conv_through_hook(void **state)
{
    (void)state;
    if (skip_without_amx()) skip();
    const int h = 23, w = 19, cin = 24, cout = 40, kk = 3 * 3 * cin; /* K 216 */
    float *x = rand_buf((size_t)h * w * cin), *wt = rand_buf((size_t)kk * cout);
    float *bias = rand_buf(cout);
    float *xr = malloc(sizeof(float) * (size_t)h * w * cin),
          *wr = malloc(sizeof(float) * kk * cout);
    assert_non_null(xr), assert_non_null(wr);
    for (size_t i = 0; i < (size_t)h * w * cin; i++)
        xr[i] = (float)bf16(x[i]);
    for (size_t i = 0; i < (size_t)kk * cout; i++)
        wr[i] = (float)bf16(wt[i]);
    const size_t sf = fn_conv2d_scratch_floats(h, w, cin, 3, 3, 2, FN_PAD_SAME);
    float *scratch = malloc(sizeof(float) * (sf ? sf : 1));
    const int oh = fn_out_size(h, 3, 2, FN_PAD_SAME), ow = fn_out_size(w, 3, 2, FN_PAD_SAME);
    float *got = malloc(sizeof(float) * (size_t)oh * ow * cout);
    float *want = malloc(sizeof(float) * (size_t)oh * ow * cout);
    assert_non_null(scratch), assert_non_null(got), assert_non_null(want);
    fn_wpack wp, wpr;
    assert_int_equal(fn_wpack_init(&wp, wt, kk, cout), 0);
    assert_int_equal(fn_wpack_init(&wpr, wr, kk, cout), 0);
    assert_int_equal(fn_wpack_amx_init(&wp), 0);
    fn_t3 in = {h, w, cin, x}, inr = {h, w, cin, xr}, o = {0, 0, 0, got}, orf = {0, 0, 0, want};
    fn_amx_set_thread(1);
    fn_conv2d_w(&in, &wp, bias, 3, 3, 2, FN_PAD_SAME, FN_ACT_RELU6, &o, scratch);
    fn_amx_set_thread(0);
    fn_conv2d_w(&inr, &wpr, bias, 3, 3, 2, FN_PAD_SAME, FN_ACT_RELU6, &orf, scratch);
    assert_int_equal(o.h, oh), assert_int_equal(o.w, ow), assert_int_equal(o.c, cout);
    for (size_t i = 0; i < (size_t)oh * ow * cout; i++)
        if (fabsf(got[i] - want[i]) > 1e-4f) fail_msg("at %zu: %g vs %g", i, got[i], want[i]);
    /* With BF16 off the same pack runs the FP32 kernel: not the rounded result. */
    fn_conv2d_w(&in, &wp, bias, 3, 3, 2, FN_PAD_SAME, FN_ACT_RELU6, &o, scratch);
    size_t differ = 0;
    for (size_t i = 0; i < (size_t)oh * ow * cout; i++)
        differ += got[i] != want[i];
    assert_true(differ > 0);
    fn_wpack_free(&wp), fn_wpack_free(&wpr);
    free(x), free(wt), free(bias), free(xr), free(wr), free(scratch), free(got), free(want);
}

/* A layer under 32 deep (the first convs on pixels) gets no pack: it stays FP32. */
static void test_shallow_stays_fp32(void **state)
{
    (void)state;
    float *w = rand_buf(27 * 40);
    fn_wpack wp;
    assert_int_equal(fn_wpack_init(&wp, w, 27, 40), 0);
    assert_int_equal(fn_wpack_amx_init(&wp), 0);
    assert_null(wp.amx);
    fn_wpack_free(&wp);
    free(w);
}

/* Without AMX (forced here, so it runs everywhere) bf16 changes nothing and says why. */
static void test_fallback(void **state)
{
    (void)state;
    fn_amx_force_unavailable(1);
    const char *why = NULL;
    assert_int_equal(fn_amx_available(&why), 0);
    assert_non_null(why);
    assert_non_null(strstr(why, "fp32"));
    fn_amx_set_thread(1);
    assert_int_equal(fn_amx_thread(), 0);
    float *w = rand_buf(64 * 40); /* deep enough for a pack where AMX is on */
    fn_wpack wp;
    assert_int_equal(fn_wpack_init(&wp, w, 64, 40), 0);
    assert_int_equal(fn_wpack_amx_init(&wp), 0);
    assert_null(wp.amx);
    fn_wpack_free(&wp);
    free(w);
    fn_amx_force_unavailable(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_shapes),
        cmocka_unit_test(test_conv_through_hook),
        cmocka_unit_test(test_shallow_stays_fp32),
        cmocka_unit_test(test_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
