/* test_ops: every kernel of ops.h against a naive implementation written here from TensorFlow's
 * definitions (padding split, pooling divisor, bilinear source coordinates), over odd and even
 * sizes, strides 1 and 2, SAME and VALID, every activation. Also the padToSquare + resize of
 * preprocess.c against a padded square built explicitly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vision/nets.h"
#include "vision/ops.h"
#include "vision/ops_isa.h"
#include "vision/preprocess.h"

static uint32_t rng_state = 12345;

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

static float ref_act(float x, fn_act a)
{
    switch (a) {
    case FN_ACT_RELU:
        return x > 0 ? x : 0;
    case FN_ACT_RELU6:
        return x < 0 ? 0 : (x > 6 ? 6 : x);
    case FN_ACT_LEAKY:
        return x < 0 ? 0.1f * x : x;
    default:
        return x;
    }
}

/* TensorFlow's SAME: out = ceil(in / s), total = max((out - 1) * s + k - in, 0), floor half before.
 */
static void ref_geom(int in, int k, int s, fn_pad pad, int *out, int *before)
{
    if (pad == FN_PAD_SAME) {
        *out = (in + s - 1) / s;
        int total = (*out - 1) * s + k - in;
        if (total < 0) total = 0;
        *before = total / 2;
    } else {
        *out = (in - k) / s + 1;
        *before = 0;
    }
}

static void assert_close(const float *a, const float *b, size_t n, float tol)
{
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        float lim = tol * (1.0f + fabsf(b[i]));
        if (!(d <= lim)) fail_msg("element %zu: %g vs %g (diff %g)", i, a[i], b[i], d);
    }
}

static void check_conv(int h, int w, int cin, int cout, int k, int s, fn_pad pad, fn_act act,
                       int with_bias)
{
    fn_t3 in = {h, w, cin, rand_buf((size_t)h * w * cin)};
    float *wt = rand_buf((size_t)k * k * cin * cout);
    float *bias = with_bias ? rand_buf((size_t)cout) : NULL;
    int oh, ow, pt, pl;
    ref_geom(h, k, s, pad, &oh, &pt);
    ref_geom(w, k, s, pad, &ow, &pl);
    assert_int_equal(fn_out_size(h, k, s, pad), oh);
    size_t on = (size_t)oh * ow * cout;
    float *ref = calloc(on, sizeof(float));
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
            for (int co = 0; co < cout; co++) {
                double acc = bias ? bias[co] : 0;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        int y = oy * s - pt + ky, x = ox * s - pl + kx;
                        if (y < 0 || y >= h || x < 0 || x >= w) continue;
                        for (int ci = 0; ci < cin; ci++)
                            acc += (double)in.d[((size_t)y * w + x) * cin + ci] *
                                   wt[(((size_t)ky * k + kx) * cin + ci) * cout + co];
                    }
                ref[((size_t)oy * ow + ox) * cout + co] = ref_act((float)acc, act);
            }
    size_t sn = fn_conv2d_scratch_floats(h, w, cin, k, k, s, pad);
    float *scratch = malloc((sn + 1) * sizeof(float));
    fn_t3 out = {0, 0, 0, malloc((on + 1) * sizeof(float))};
    fn_conv2d(&in, wt, bias, k, k, cout, s, pad, act, &out, scratch);
    assert_int_equal(out.h, oh);
    assert_int_equal(out.w, ow);
    assert_int_equal(out.c, cout);
    assert_close(out.d, ref, on, 1e-4f);
    /* The same with the weights packed as the networks bind them (column panels). */
    fn_wpack wp;
    assert_int_equal(fn_wpack_init(&wp, wt, k * k * cin, cout), 0);
    memset(out.d, 0, on * sizeof(float));
    fn_conv2d_w(&in, &wp, bias, k, k, s, pad, act, &out, scratch);
    assert_int_equal(out.h, oh);
    assert_int_equal(out.w, ow);
    assert_int_equal(out.c, cout);
    assert_close(out.d, ref, on, 1e-4f);
    if (wp.p) {
        /* Only the panels, as the recognition net keeps them (its own copy dropped). */
        wp.w = NULL;
        memset(out.d, 0, on * sizeof(float));
        fn_conv2d_w(&in, &wp, bias, k, k, s, pad, act, &out, scratch);
        assert_close(out.d, ref, on, 1e-4f);
    }
    fn_wpack_free(&wp);
    free(in.d), free(wt), free(bias), free(ref), free(scratch), free(out.d);
}

static void test_conv2d(void **state)
{
    (void)state;
    static const int sizes[][2] = {{7, 7}, {8, 8}, {9, 6}, {1, 1}, {2, 3}, {16, 15}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        int h = sizes[i][0], w = sizes[i][1];
        for (int s = 1; s <= 2; s++) {
            check_conv(h, w, 3, 5, 3, s, FN_PAD_SAME, FN_ACT_RELU6, 1);
            check_conv(h, w, 4, 6, 1, s, FN_PAD_SAME, FN_ACT_NONE, 1);
            check_conv(h, w, 5, 17, 1, s, FN_PAD_VALID, FN_ACT_LEAKY, 0);
            if (h >= 3 && w >= 3) check_conv(h, w, 3, 16, 3, s, FN_PAD_VALID, FN_ACT_LEAKY, 1);
            check_conv(h, w, 8, 33, 3, s, FN_PAD_SAME, FN_ACT_RELU, 1);
        }
    }
    check_conv(32, 32, 64, 128, 1, 1, FN_PAD_SAME, FN_ACT_RELU6, 1);
    check_conv(12, 10, 32, 64, 3, 2, FN_PAD_SAME, FN_ACT_RELU6, 1);
    check_conv(13, 13, 16, 48, 7, 2, FN_PAD_SAME, FN_ACT_NONE, 1);
    /* GEMM edges: several column panels and a partial one, row remainders, a long K. */
    check_conv(7, 5, 1024, 100, 1, 1, FN_PAD_SAME, FN_ACT_RELU6, 1);
    check_conv(3, 3, 64, 25, 1, 1, FN_PAD_VALID, FN_ACT_NONE, 1);
    check_conv(9, 9, 40, 200, 3, 1, FN_PAD_SAME, FN_ACT_LEAKY, 0);
    /* The AVX-512 GEMM's packed path (N >= 256, M >= 64): several K blocks, a partial panel,
     * 8-, 4- and 1-row tiles. */
    check_conv(9, 9, 300, 260, 1, 1, FN_PAD_SAME, FN_ACT_RELU6, 1);
    check_conv(10, 7, 520, 256, 1, 1, FN_PAD_VALID, FN_ACT_NONE, 0);
    /* Packed panels (fn_conv2d_w): 48-wide, the last 64 columns as one 64-wide panel, a lone or
     * partial last panel; row counts that leave remainders after the 6-, 8-, 12- and 16-row
     * tiles (11 rows of 64 columns: a 6-row tile, then a 4-row and a 1-row one). */
    check_conv(5, 7, 64, 1024, 1, 1, FN_PAD_SAME, FN_ACT_RELU6, 1);
    check_conv(13, 3, 32, 64, 1, 1, FN_PAD_SAME, FN_ACT_RELU, 1);
    check_conv(11, 1, 16, 64, 1, 1, FN_PAD_SAME, FN_ACT_LEAKY, 1);
    check_conv(5, 2, 40, 160, 1, 1, FN_PAD_VALID, FN_ACT_RELU6, 1); /* 48 + 48 + 64 */
    check_conv(29, 1, 24, 16, 1, 1, FN_PAD_VALID, FN_ACT_LEAKY, 1);
    check_conv(6, 5, 36, 112, 1, 1, FN_PAD_VALID, FN_ACT_NONE, 0);
    check_conv(11, 11, 9, 42, 3, 1, FN_PAD_SAME, FN_ACT_RELU6, 1);
    check_conv(3, 3, 256, 9, 1, 1, FN_PAD_SAME, FN_ACT_NONE, 1);
    /* 3x3 stride 1 SAME on 256 pixels and more (rows of taps on the AVX-512 path): the recognition
     * net's shape (several strips), one pixel wide (every tap row at a border), one row, odd
     * channel counts, wide rows (one output row a strip) */
    check_conv(35, 35, 32, 32, 3, 1, FN_PAD_SAME, FN_ACT_RELU, 1);
    check_conv(300, 1, 8, 16, 3, 1, FN_PAD_SAME, FN_ACT_NONE, 1);
    check_conv(1, 300, 5, 7, 3, 1, FN_PAD_SAME, FN_ACT_LEAKY, 0);
    check_conv(16, 17, 13, 40, 3, 1, FN_PAD_SAME, FN_ACT_RELU6, 1);
    check_conv(6, 200, 64, 24, 3, 1, FN_PAD_SAME, FN_ACT_NONE, 1);
    /* im2col in several strips of output rows (and a short last strip). */
    check_conv(100, 97, 32, 8, 3, 1, FN_PAD_SAME, FN_ACT_RELU6, 1);
    check_conv(101, 64, 32, 20, 3, 2, FN_PAD_SAME, FN_ACT_NONE, 1);
    /* Convs with 24 or more interior output pixels a row (their taps read in place on the
     * AVX-512 and AVX2 paths, the border pixels through im2col: conv_rows): the recognition net's
     * first layer (VALID 7x7 stride 2 on RGB, 72 wide), stride 1, a partial panel, an output row
     * off the tile heights, one output row; SAME stride 2 on RGB as SSD's and the landmark nets'
     * (an even input: a border column and row at the end; an odd one: one at each side), SAME
     * 5x5 stride 1 (two border columns each side). */
    check_conv(150, 150, 3, 32, 7, 2, FN_PAD_VALID, FN_ACT_RELU, 1);
    check_conv(9, 61, 8, 40, 3, 1, FN_PAD_VALID, FN_ACT_LEAKY, 1);
    check_conv(12, 57, 4, 16, 5, 2, FN_PAD_VALID, FN_ACT_NONE, 0);
    check_conv(3, 30, 6, 70, 3, 1, FN_PAD_VALID, FN_ACT_RELU6, 1);
    check_conv(40, 60, 3, 32, 3, 2, FN_PAD_SAME, FN_ACT_RELU6, 1);
    check_conv(41, 61, 3, 32, 3, 2, FN_PAD_SAME, FN_ACT_RELU, 1);
    check_conv(9, 30, 5, 20, 5, 1, FN_PAD_SAME, FN_ACT_NONE, 0);
}

/* fn_conv2d_res_wn against fn_conv2d_wn (no activation) and then relu(res + out), to the bit: the
 * sum in the GEMMs' epilogue (rows of taps, im2col strips across images, 1x1) or a pass after. */
static void check_conv_res(int nimg, int h, int w, int cin, int cout, int k, int s, fn_pad pad)
{
    fn_t3 in = {h, w, cin, rand_buf((size_t)nimg * h * w * cin)};
    float *wt = rand_buf((size_t)k * k * cin * cout), *bias = rand_buf((size_t)cout);
    const int oh = fn_out_size(h, k, s, pad), ow = fn_out_size(w, k, s, pad);
    const size_t on = (size_t)nimg * oh * ow * cout;
    float *res = rand_buf(on);
    fn_wpack wp;
    assert_int_equal(fn_wpack_init(&wp, wt, k * k * cin, cout), 0);
    float *scratch =
        malloc((fn_conv2d_scratch_floats_n(nimg, h, w, cin, k, k, s, pad) + 1) * sizeof(float));
    fn_t3 want = {0, 0, 0, malloc(on * sizeof(float))}, got = {0, 0, 0, malloc(on * sizeof(float))};
    fn_conv2d_wn(&in, nimg, &wp, bias, k, k, s, pad, FN_ACT_NONE, &want, scratch);
    for (size_t i = 0; i < on; i++) {
        const float v = res[i] + want.d[i];
        want.d[i] = v > 0.0f ? v : 0.0f;
    }
    fn_conv2d_res_wn(&in, nimg, &wp, bias, k, k, s, pad, res, &got, scratch);
    assert_int_equal(got.h, oh);
    assert_int_equal(got.w, ow);
    assert_int_equal(got.c, cout);
    assert_memory_equal(got.d, want.d, on * sizeof(float));
    fn_wpack_free(&wp);
    free(in.d), free(wt), free(bias), free(res), free(scratch), free(want.d), free(got.d);
}

static void test_conv2d_res(void **state)
{
    (void)state;
    check_conv_res(2, 35, 35, 32, 32, 3, 1, FN_PAD_SAME); /* rows of taps: the recognition net's */
    check_conv_res(1, 17, 17, 13, 21, 3, 1, FN_PAD_SAME); /* partial vectors */
    check_conv_res(3, 4, 4, 40, 48, 3, 1, FN_PAD_SAME);   /* im2col, a strip across images */
    check_conv_res(5, 3, 3, 256, 64, 3, 1, FN_PAD_SAME);  /* long K, row remainders */
    check_conv_res(2, 9, 9, 20, 24, 1, 1, FN_PAD_SAME);   /* 1x1: the GEMM alone */
    check_conv_res(1, 40, 60, 3, 32, 3, 2, FN_PAD_SAME);  /* taps in place: a pass after */
    check_conv_res(1, 17, 17, 64, 64, 3, 1, FN_PAD_SAME); /* a 64-wide panel, rows of taps */
}

/* Whether the kernels run now are the AVX-512 or AVX2 ones, which give a chain the same floats as
 * its layers one at a time, and a conv on 1x1 maps the same floats as its centre taps (set by the
 * groups' setup below). */
static int isa_vector;

/* got against want, n floats, where the two sum in the same order on the vector kernels: equal to
 * the bit there; on the generic path within tol (OpenBLAS's sum order may depend on the rows of a
 * call: its Haswell kernels on an AVX2-only Zen do, its SkylakeX ones did not). */
static void assert_same_floats(const float *got, const float *want, size_t n, float tol)
{
    if (isa_vector)
        assert_memory_equal(got, want, n * sizeof(float));
    else
        assert_close(got, want, n, tol);
}

/* A k x k SAME stride-1 conv on 1x1 maps against the 1x1 conv with its centre taps' weights (the
 * recognition net's last conv runs so, rc_conv_run): the same floats on the vector kernels, whose
 * sums skip nothing but the padding's zero products; close on the generic path (OpenBLAS). */
static void check_conv_centre(int nimg, int cin, int cout, int k, fn_act act)
{
    fn_t3 in = {1, 1, cin, rand_buf((size_t)nimg * cin)};
    float *wt = rand_buf((size_t)k * k * cin * cout), *bias = rand_buf((size_t)cout);
    const size_t on = (size_t)nimg * cout;
    fn_wpack all, ctr;
    assert_int_equal(fn_wpack_init(&all, wt, k * k * cin, cout), 0);
    assert_int_equal(fn_wpack_init(&ctr, wt + (size_t)(k / 2 * k + k / 2) * cin * cout, cin, cout),
                     0);
    float *scratch = malloc(
        (fn_conv2d_scratch_floats_n(nimg, 1, 1, cin, k, k, 1, FN_PAD_SAME) + 1) * sizeof(float));
    fn_t3 want = {0, 0, 0, malloc(on * sizeof(float))}, got = {0, 0, 0, malloc(on * sizeof(float))};
    fn_conv2d_wn(&in, nimg, &all, bias, k, k, 1, FN_PAD_SAME, act, &want, scratch);
    fn_conv2d_wn(&in, nimg, &ctr, bias, 1, 1, 1, FN_PAD_SAME, act, &got, scratch);
    assert_int_equal(got.h, 1);
    assert_int_equal(got.w, 1);
    assert_int_equal(got.c, cout);
    assert_same_floats(got.d, want.d, on, 1e-5f);
    fn_wpack_free(&all), fn_wpack_free(&ctr);
    free(in.d), free(wt), free(bias), free(scratch), free(want.d), free(got.d);
}

static void test_conv2d_centre(void **state)
{
    (void)state;
    check_conv_centre(1, 256, 256, 3, FN_ACT_NONE); /* the recognition net's, one face */
    check_conv_centre(8, 256, 256, 3, FN_ACT_RELU); /* a batch */
    check_conv_centre(3, 40, 70, 3, FN_ACT_RELU6);  /* partial vectors and panels */
    check_conv_centre(2, 16, 24, 5, FN_ACT_NONE);
}

/* A pack with a byte copy (fn_wpack_bytes) against the same pack without: GEMMs of few rows
 * decode the bytes (the AVX-512 and AVX2 kernels), the others read the panels, and both must give
 * the same floats: a k x k conv of nimg h x w maps, plain and with a residual sum, on every kernel
 * set. */
static void check_bytes(int nimg, int h, int w, int cin, int cout, int k, fn_act act)
{
    const int kk = k * k * cin;
    const size_t nw = (size_t)kk * cout, in_n = (size_t)nimg * h * w * cin;
    unsigned char *q = malloc(nw);
    float *s = malloc(2 * (size_t)cout * sizeof(float)), *wt = malloc(nw * sizeof(float));
    for (int o = 0; o < cout; o++) {
        s[o] = 0.01f * frand();
        s[cout + o] = 0.5f * frand();
    }
    for (size_t i = 0; i < nw; i++) {
        q[i] = (unsigned char)(rng_state >> 24);
        frand();
        wt[i] = fmaf((float)q[i], s[i % (size_t)cout], s[cout + i % (size_t)cout]);
    }
    fn_wpack plain, bytes;
    assert_int_equal(fn_wpack_init(&plain, wt, kk, cout), 0);
    assert_int_equal(fn_wpack_init(&bytes, wt, kk, cout), 0);
    assert_int_equal(fn_wpack_bytes(&bytes, q, s, s + cout), 0);
    const int vector_cpu = fn_cpu_has_avx512() || fn_cpu_has_avx2();
    if (vector_cpu)
        assert_non_null(bytes.q);
    else
        assert_null(bytes.q);
    /* A weight that is not what its byte gives: no copy. */
    fn_wpack odd;
    wt[nw / 2] = nextafterf(wt[nw / 2], 1e30f);
    assert_int_equal(fn_wpack_init(&odd, wt, kk, cout), 0);
    assert_int_equal(fn_wpack_bytes(&odd, q, s, s + cout), vector_cpu ? -2 : 0);
    assert_null(odd.q);

    fn_t3 in = {h, w, cin, rand_buf(in_n)};
    float *bias = rand_buf((size_t)cout);
    const size_t on = (size_t)nimg * h * w * cout; /* SAME, stride 1 */
    float *res = rand_buf(on);
    float *scratch = malloc(
        (fn_conv2d_scratch_floats_n(nimg, h, w, cin, k, k, 1, FN_PAD_SAME) + 1) * sizeof(float));
    fn_t3 want = {0, 0, 0, malloc(on * sizeof(float))}, got = {0, 0, 0, malloc(on * sizeof(float))};
    fn_conv2d_wn(&in, nimg, &plain, bias, k, k, 1, FN_PAD_SAME, act, &want, scratch);
    fn_conv2d_wn(&in, nimg, &bytes, bias, k, k, 1, FN_PAD_SAME, act, &got, scratch);
    assert_memory_equal(got.d, want.d, on * sizeof(float));
    fn_conv2d_res_wn(&in, nimg, &plain, bias, k, k, 1, FN_PAD_SAME, res, &want, scratch);
    fn_conv2d_res_wn(&in, nimg, &bytes, bias, k, k, 1, FN_PAD_SAME, res, &got, scratch);
    assert_memory_equal(got.d, want.d, on * sizeof(float));
    fn_wpack_free(&plain), fn_wpack_free(&bytes), fn_wpack_free(&odd);
    free(q), free(s), free(wt), free(in.d), free(bias), free(res), free(scratch);
    free(want.d), free(got.d);
}

/* fn_wpack_init's panels hold every weight where fn_wpack_at (fn_panel_index) reads it, in the
 * layout this CPU gets: 16-column slices where the AVX2 kernels are its best, rows elsewhere. */
static void test_wpack_layout(void **state)
{
    (void)state;
    static const int shapes[][2] = {{5, 100}, {3, 64}, {7, 40}, {1, 16}, {130, 7}};
    const uint32_t rng_saved = rng_state; /* the tests after it keep their inputs */
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int k = shapes[i][0], n = shapes[i][1];
        float *w = rand_buf((size_t)k * n);
        fn_wpack wp;
        assert_int_equal(fn_wpack_init(&wp, w, k, n), 0);
        assert_int_equal(wp.sliced, !fn_cpu_has_avx512() && fn_cpu_has_avx2());
        if (wp.p) {
            wp.w = NULL; /* read the panels */
            for (int r = 0; r < k; r++)
                for (int c = 0; c < n; c++)
                    assert_true(fn_wpack_at(&wp, r, c) == w[(size_t)r * n + c]);
        }
        fn_wpack_free(&wp);
        free(w);
    }
    rng_state = rng_saved;
}

static void test_gemm_bytes(void **state)
{
    (void)state;
    check_bytes(1, 4, 4, 256, 256, 3, FN_ACT_RELU); /* the recognition net's, one face */
    check_bytes(1, 3, 3, 128, 256, 3, FN_ACT_NONE); /* 9 rows, K not a multiple of the block */
    check_bytes(1, 1, 1, 256, 256, 1, FN_ACT_NONE); /* one row */
    check_bytes(4, 4, 4, 64, 256, 3, FN_ACT_RELU);  /* a batch: 64 rows */
    check_bytes(8, 4, 4, 32, 256, 3, FN_ACT_RELU);  /* 128 rows: the panels */
    check_bytes(3, 2, 3, 40, 70, 3, FN_ACT_RELU6);  /* partial vectors and panels */
    check_bytes(2, 1, 5, 24, 100, 1, FN_ACT_LEAKY); /* a 1x1 conv, a 4-column panel */
}

static void check_dw(int h, int w, int c, int k, int s, fn_pad pad, fn_act act, int with_bias)
{
    fn_t3 in = {h, w, c, rand_buf((size_t)h * w * c)};
    float *wt = rand_buf((size_t)k * k * c);
    float *bias = with_bias ? rand_buf((size_t)c) : NULL;
    int oh, ow, pt, pl;
    ref_geom(h, k, s, pad, &oh, &pt);
    ref_geom(w, k, s, pad, &ow, &pl);
    size_t on = (size_t)oh * ow * c;
    float *ref = calloc(on, sizeof(float));
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
            for (int ch = 0; ch < c; ch++) {
                double acc = bias ? bias[ch] : 0;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        int y = oy * s - pt + ky, x = ox * s - pl + kx;
                        if (y < 0 || y >= h || x < 0 || x >= w) continue;
                        acc += (double)in.d[((size_t)y * w + x) * c + ch] *
                               wt[((size_t)ky * k + kx) * c + ch];
                    }
                ref[((size_t)oy * ow + ox) * c + ch] = ref_act((float)acc, act);
            }
    /* A pixel's worth of sentinels after the map: a run that stored past a narrow row's end
     * would overwrite them from the last row (the rows before are overwritten again later). */
    fn_t3 out = {0, 0, 0, malloc((on + (size_t)c) * sizeof(float))};
    for (size_t i = on; i < on + (size_t)c; i++)
        out.d[i] = -12345.0f;
    fn_dwconv2d(&in, wt, bias, k, s, pad, act, &out);
    assert_int_equal(out.h, oh);
    assert_int_equal(out.w, ow);
    assert_int_equal(out.c, c);
    assert_close(out.d, ref, on, 1e-5f);
    for (size_t i = on; i < on + (size_t)c; i++)
        assert_true(out.d[i] == -12345.0f);
    free(in.d), free(wt), free(bias), free(ref), free(out.d);
}

static void test_dwconv(void **state)
{
    (void)state;
    static const int sizes[][2] = {{7, 7}, {8, 8}, {9, 6}, {1, 1}, {2, 3}, {17, 16}};
    static const int chans[] = {1, 3, 8, 16, 19, 32, 64};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (size_t j = 0; j < sizeof chans / sizeof chans[0]; j++)
            for (int s = 1; s <= 2; s++) {
                check_dw(sizes[i][0], sizes[i][1], chans[j], 3, s, FN_PAD_SAME, FN_ACT_RELU6, 1);
                check_dw(sizes[i][0], sizes[i][1], chans[j], 3, s, FN_PAD_SAME, FN_ACT_NONE, 0);
                if (sizes[i][0] >= 3 && sizes[i][1] >= 3)
                    check_dw(sizes[i][0], sizes[i][1], chans[j], 3, s, FN_PAD_VALID, FN_ACT_LEAKY,
                             1);
            }
    check_dw(64, 64, 128, 3, 2, FN_PAD_SAME, FN_ACT_RELU6, 1);
    check_dw(32, 32, 512, 3, 1, FN_PAD_SAME, FN_ACT_RELU6, 1);
    /* Rows of eight outputs or more go in runs of eight, the last one overlapping the one before
     * when the width is no multiple of eight, the border columns read as zeros: widths either
     * side of a multiple, both strides and paddings, with a partial last channel block. Rows of
     * six and seven outputs run one run and store their outputs only (widths 6, 7 at stride 1,
     * 13, 14 at stride 2). */
    static const int widths[] = {6, 7, 13, 14, 15, 16, 17, 23, 37};
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++)
        for (int s = 1; s <= 2; s++) {
            check_dw(4, widths[i], 48, 3, s, FN_PAD_SAME, FN_ACT_RELU, 1);
            check_dw(5, widths[i], 40, 3, s, FN_PAD_VALID, FN_ACT_LEAKY, 1);
        }
    /* Two columns at stride 2 (no left padding): the one output column's taps reach past the
     * row, so it is a border pixel (the AVX-512 kernel once took it for an interior one and read
     * the next row's first pixel as its third column). */
    for (int h = 1; h <= 4; h++)
        for (size_t j = 0; j < sizeof chans / sizeof chans[0]; j++)
            check_dw(h, 2, chans[j], 3, 2, FN_PAD_SAME, FN_ACT_NONE, 1);
}

/* fn_sepconv against the naive depthwise then naive pointwise conv. */
static void check_sep(int h, int w, int c, int cout, int s, fn_act dw_act, fn_act pw_act,
                      int biases)
{
    fn_t3 in = {h, w, c, rand_buf((size_t)h * w * c)};
    float *dw = rand_buf((size_t)9 * c), *db = biases ? rand_buf((size_t)c) : NULL;
    float *pw = rand_buf((size_t)c * cout), *pb = biases ? rand_buf((size_t)cout) : NULL;
    int oh, ow, pt, pl;
    ref_geom(h, 3, s, FN_PAD_SAME, &oh, &pt);
    ref_geom(w, 3, s, FN_PAD_SAME, &ow, &pl);
    float *mid = calloc((size_t)oh * ow * c, sizeof(float));
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
            for (int ch = 0; ch < c; ch++) {
                double acc = db ? db[ch] : 0;
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++) {
                        int y = oy * s - pt + ky, x = ox * s - pl + kx;
                        if (y < 0 || y >= h || x < 0 || x >= w) continue;
                        acc +=
                            (double)in.d[((size_t)y * w + x) * c + ch] * dw[(ky * 3 + kx) * c + ch];
                    }
                mid[((size_t)oy * ow + ox) * c + ch] = ref_act((float)acc, dw_act);
            }
    size_t on = (size_t)oh * ow * cout;
    float *ref = malloc(on * sizeof(float));
    for (size_t p = 0; p < (size_t)oh * ow; p++)
        for (int co = 0; co < cout; co++) {
            double acc = pb ? pb[co] : 0;
            for (int ci = 0; ci < c; ci++)
                acc += (double)mid[p * c + ci] * pw[(size_t)ci * cout + co];
            ref[p * cout + co] = ref_act((float)acc, pw_act);
        }
    float *scratch = malloc((fn_sepconv_scratch_floats(h, w, c, s) + 1) * sizeof(float));
    fn_t3 out = {0, 0, 0, malloc((on + 1) * sizeof(float))};
    fn_sepconv(&in, dw, db, s, dw_act, pw, pb, cout, pw_act, &out, scratch);
    assert_int_equal(out.h, oh);
    assert_int_equal(out.w, ow);
    assert_int_equal(out.c, cout);
    assert_close(out.d, ref, on, 1e-4f);
    fn_wpack wp;
    assert_int_equal(fn_wpack_init(&wp, pw, c, cout), 0);
    memset(out.d, 0, on * sizeof(float));
    fn_sepconv_w(&in, dw, db, s, dw_act, &wp, pb, pw_act, &out, scratch);
    assert_int_equal(out.c, cout);
    assert_close(out.d, ref, on, 1e-4f);
    fn_wpack_free(&wp);
    free(in.d), free(dw), free(db), free(pw), free(pb), free(mid), free(ref), free(scratch);
    free(out.d);
}

static void test_sepconv(void **state)
{
    (void)state;
    check_sep(7, 7, 16, 32, 1, FN_ACT_RELU6, FN_ACT_RELU6, 1);
    check_sep(8, 9, 32, 64, 2, FN_ACT_RELU6, FN_ACT_RELU6, 1);
    check_sep(13, 13, 20, 25, 1, FN_ACT_NONE, FN_ACT_LEAKY, 0);
    check_sep(1, 1, 8, 8, 2, FN_ACT_NONE, FN_ACT_NONE, 1);
    /* several strips, a short last one, stride 2 with an odd size */
    check_sep(130, 130, 40, 24, 1, FN_ACT_RELU6, FN_ACT_RELU6, 1);
    check_sep(131, 129, 48, 16, 2, FN_ACT_NONE, FN_ACT_LEAKY, 1);
}

/* fn_conv2d_pool_w and fn_sepconv_pool_w against their two steps one after the other (the conv,
 * then fn_maxpool 2x2/2): the same floats (OpenBLAS: within rounding), over maps that take several
 * strips, the last one of an odd height, and odd widths (the pool's SAME padding on the right). */
static void check_conv_pool(int h, int w, int cin, int cout)
{
    fn_t3 in = {h, w, cin, rand_buf((size_t)h * w * cin)};
    float *wt = rand_buf((size_t)9 * cin * cout), *bias = rand_buf((size_t)cout);
    fn_wpack wp;
    assert_int_equal(fn_wpack_init(&wp, wt, 9 * cin, cout), 0);
    const size_t n = (size_t)h * w * cout;
    float *mid = calloc(n, sizeof(float)), *ref = calloc(n, sizeof(float)),
          *got = calloc(n, sizeof(float));
    float *scratch = malloc((fn_conv2d_scratch_floats(h, w, cin, 3, 3, 1, FN_PAD_VALID) +
                             fn_conv2d_pool_scratch_floats(h, w, cin, 3, cout) + 1) *
                            sizeof(float));
    fn_t3 m = {0, 0, 0, mid}, r = {0, 0, 0, ref}, g = {0, 0, 0, got};
    fn_conv2d_w(&in, &wp, bias, 3, 3, 1, FN_PAD_VALID, FN_ACT_LEAKY, &m, scratch);
    fn_maxpool(&m, 2, 2, FN_PAD_SAME, &r);
    fn_conv2d_pool_w(&in, &wp, bias, 3, FN_ACT_LEAKY, &g, scratch);
    assert_int_equal(g.h, r.h);
    assert_int_equal(g.w, r.w);
    assert_int_equal(g.c, cout);
    assert_same_floats(got, ref, (size_t)r.h * r.w * cout, 1e-5f);
    fn_wpack_free(&wp);
    free(in.d), free(wt), free(bias), free(mid), free(ref), free(got), free(scratch);
}

static void check_sep_pool(int h, int w, int c, int cout)
{
    fn_t3 in = {h, w, c, rand_buf((size_t)h * w * c)};
    float *dw = rand_buf((size_t)9 * c), *pw = rand_buf((size_t)c * cout),
          *pb = rand_buf((size_t)cout);
    fn_wpack wp;
    assert_int_equal(fn_wpack_init(&wp, pw, c, cout), 0);
    const size_t n = (size_t)h * w * cout;
    float *mid = calloc(n, sizeof(float)), *ref = calloc(n, sizeof(float)),
          *got = calloc(n, sizeof(float));
    const size_t a = fn_sepconv_scratch_floats(h, w, c, 1),
                 b = fn_sepconv_pool_scratch_floats(h, w, c, cout);
    float *scratch = malloc(((a > b ? a : b) + 1) * sizeof(float));
    fn_t3 m = {0, 0, 0, mid}, r = {0, 0, 0, ref}, g = {0, 0, 0, got};
    fn_sepconv_w(&in, dw, NULL, 1, FN_ACT_NONE, &wp, pb, FN_ACT_LEAKY, &m, scratch);
    fn_maxpool(&m, 2, 2, FN_PAD_SAME, &r);
    fn_sepconv_pool_w(&in, dw, NULL, FN_ACT_NONE, &wp, pb, FN_ACT_LEAKY, &g, scratch);
    assert_int_equal(g.h, r.h);
    assert_int_equal(g.w, r.w);
    assert_int_equal(g.c, cout);
    assert_same_floats(got, ref, (size_t)r.h * r.w * cout, 1e-5f);
    fn_wpack_free(&wp);
    free(in.d), free(dw), free(pw), free(pb), free(mid), free(ref), free(got), free(scratch);
}

static void test_conv_pool(void **state)
{
    (void)state;
    /* Its own random numbers: the tests after it keep the inputs they were written against. */
    const uint32_t rng_saved = rng_state;
    check_conv_pool(25, 30, 3, 16);  /* conv rows 23: strips of 8, 8 and 7 */
    check_conv_pool(12, 11, 3, 16);  /* 10 x 9: an odd width */
    check_conv_pool(5, 5, 8, 20);    /* one strip of 3 rows */
    check_sep_pool(139, 64, 64, 32); /* strips of 32 rows (and 11 last) */
    check_sep_pool(127, 70, 64, 32); /* 29 rows a strip rounded to 28 (and 15 last) */
    check_sep_pool(13, 13, 16, 32);  /* the whole map in one strip, odd */
    check_sep_pool(1, 1, 16, 16);
    rng_state = rng_saved;
}

/* fn_sepchain_w against the same layers one at a time (fn_conv2d_w for the head, fn_sepconv_w for
 * each block): the chain computes every output once, with the same kernels in the same order, so
 * on the AVX-512 path the results must be equal to the bit (OpenBLAS, the generic path's GEMM,
 * may sum in another order for another number of rows). strides[i] is block i's stride, chans[i]
 * its output channels; with head_k the chain starts with a head_k x head_k conv (stride head_s, pad
 * head_pad) from cin channels to chans0. */
static void check_chain(int h, int w, int cin, int head_k, int head_s, fn_pad head_pad, int chans0,
                        int nb, const int *strides, const int *chans, int biases)
{
    fn_t3 in = {h, w, cin, rand_buf((size_t)h * w * cin)};
    fn_wpack hp = {0}, pw[FN_SEPCHAIN_MAX];
    fn_conv_head head = {0};
    fn_sep_block blocks[FN_SEPCHAIN_MAX];
    float *hw = NULL, *hb = NULL, *dw[FN_SEPCHAIN_MAX], *db[FN_SEPCHAIN_MAX], *pww[FN_SEPCHAIN_MAX],
          *pb[FN_SEPCHAIN_MAX];
    int c = cin;
    if (head_k) {
        hw = rand_buf((size_t)head_k * head_k * cin * chans0);
        hb = biases ? rand_buf((size_t)chans0) : NULL;
        assert_int_equal(fn_wpack_init(&hp, hw, head_k * head_k * cin, chans0), 0);
        head = (fn_conv_head){&hp, hb, head_k, head_s, head_pad, FN_ACT_RELU6};
        c = chans0;
    }
    for (int i = 0; i < nb; i++) {
        dw[i] = rand_buf((size_t)9 * c);
        db[i] = biases ? rand_buf((size_t)c) : NULL;
        pww[i] = rand_buf((size_t)c * chans[i]);
        pb[i] = biases ? rand_buf((size_t)chans[i]) : NULL;
        assert_int_equal(fn_wpack_init(&pw[i], pww[i], c, chans[i]), 0);
        blocks[i] = (fn_sep_block){dw[i],
                                   db[i],
                                   strides[i],
                                   i % 2 ? FN_ACT_NONE : FN_ACT_RELU6,
                                   &pw[i],
                                   pb[i],
                                   i % 3 ? FN_ACT_RELU6 : FN_ACT_LEAKY};
        c = chans[i];
    }

    /* The layers one at a time, each into a map of its own. */
    fn_t3 maps[FN_SEPCHAIN_MAX + 2];
    int nm = 0;
    maps[nm++] = in;
    if (head_k) {
        fn_t3 *x = &maps[nm - 1], *y = &maps[nm++];
        const int oh =
            head_pad == FN_PAD_SAME ? (h + head_s - 1) / head_s : (h - head_k) / head_s + 1;
        const int ow =
            head_pad == FN_PAD_SAME ? (w + head_s - 1) / head_s : (w - head_k) / head_s + 1;
        *y = (fn_t3){0, 0, 0, malloc((size_t)oh * ow * chans0 * sizeof(float))};
        float *scratch =
            malloc((fn_conv2d_scratch_floats(h, w, cin, head_k, head_k, head_s, head_pad) + 1) *
                   sizeof(float));
        fn_conv2d_w(x, &hp, hb, head_k, head_k, head_s, head_pad, FN_ACT_RELU6, y, scratch);
        free(scratch);
    }
    for (int i = 0; i < nb; i++) {
        fn_t3 *x = &maps[nm - 1], *y = &maps[nm++];
        const int oh = (x->h + strides[i] - 1) / strides[i],
                  ow = (x->w + strides[i] - 1) / strides[i];
        *y = (fn_t3){0, 0, 0, malloc((size_t)oh * ow * chans[i] * sizeof(float))};
        float *scratch =
            malloc((fn_sepconv_scratch_floats(x->h, x->w, x->c, strides[i]) + 1) * sizeof(float));
        fn_sepconv_w(x, dw[i], db[i], strides[i], blocks[i].dw_act, &pw[i], pb[i], blocks[i].pw_act,
                     y, scratch);
        free(scratch);
    }
    const fn_t3 ref = maps[nm - 1];

    size_t cf = fn_sepchain_scratch_floats(h, w, cin, head_k ? &head : NULL, blocks, nb);
    assert_true(cf > 0);
    /* The scratch and the output exactly as large as asked, so that ASan sees any overrun. */
    float *cs = malloc(cf * sizeof(float));
    const size_t on = (size_t)ref.h * ref.w * ref.c;
    fn_t3 out = {0, 0, 0, malloc(on * sizeof(float))};
    fn_sepchain_w(&in, head_k ? &head : NULL, blocks, nb, &out, cs);
    assert_int_equal(out.h, ref.h);
    assert_int_equal(out.w, ref.w);
    assert_int_equal(out.c, ref.c);
    /* (the rounding grows with the layers: OpenBLAS on an AVX2-only Zen 2.4e-4 after six) */
    assert_same_floats(out.d, ref.d, on, 1e-3f);

    free(cs), free(out.d);
    for (int i = 0; i < nm; i++)
        free(maps[i].d);
    for (int i = 0; i < nb; i++) {
        fn_wpack_free(&pw[i]);
        free(dw[i]), free(db[i]), free(pww[i]), free(pb[i]);
    }
    fn_wpack_free(&hp);
    free(hw), free(hb);
}

static void test_sepchain(void **state)
{
    (void)state;
    static const int s5[] = {1, 2, 1, 2, 1}, c5[] = {64, 128, 128, 256, 256};
    /* SSD's head and first five blocks at a quarter of its 512x512 input: many strips per stage,
     * stride-2 stages that read odd windows */
    check_chain(128, 128, 3, 3, 2, FN_PAD_SAME, 32, 5, s5, c5, 1);
    /* odd sizes, channels off the vector width, no biases */
    static const int s4[] = {2, 1, 2, 2}, c4[] = {19, 8, 33, 24};
    check_chain(37, 41, 5, 3, 2, FN_PAD_SAME, 16, 4, s4, c4, 0);
    check_chain(23, 29, 3, 3, 1, FN_PAD_VALID, 20, 4, s4, c4, 1);
    /* no head; a head alone; a 7x7 head; maps down to one pixel */
    check_chain(45, 44, 24, 0, 0, FN_PAD_SAME, 0, 4, s4, c4, 1);
    check_chain(40, 38, 3, 3, 2, FN_PAD_SAME, 48, 0, s4, c4, 1);
    check_chain(40, 38, 3, 7, 2, FN_PAD_VALID, 32, 2, s4, c4, 1);
    /* a 3x3 stride-1 SAME head on 480 pixels: the chain builds its im2col matrix, the conv alone
     * reads rows of taps (conv3_rows), and on the vector paths the two must agree to the bit */
    check_chain(20, 24, 16, 3, 1, FN_PAD_SAME, 32, 2, s4, c4, 1);
    check_chain(3, 2, 16, 0, 0, FN_PAD_SAME, 0, 4, s4, c4, 1);
    /* wide rows: one row a strip */
    static const int s2[] = {1, 2}, c2[] = {600, 40};
    check_chain(9, 70, 8, 0, 0, FN_PAD_SAME, 0, 2, s2, c2, 1);
    /* no layer at all, or more blocks than a chain takes */
    assert_int_equal(fn_sepchain_scratch_floats(8, 8, 8, NULL, NULL, 0), 0);
    assert_int_equal(fn_sepchain_scratch_floats(8, 8, 8, NULL, NULL, FN_SEPCHAIN_MAX + 1), 0);
}

/* fn_sepconv_sum_w against its steps one after the other (fn_dwconv2d, fn_conv2d_w, then the sum
 * and its relu here): to the bit on the AVX-512 and AVX2 paths (the same kernels in the same
 * order), within rounding on the generic one (OpenBLAS may sum in another order for another
 * number of rows). With the sum in place (sum_out == sum_in, as a dense block's middle convs run
 * it), into a map of its own (as its first does) and not stored (its last). */
static void check_sum(int h, int w, int c, int cout)
{
    const size_t n_in = (size_t)h * w * c, n = (size_t)h * w * cout;
    fn_t3 in = {h, w, c, rand_buf(n_in)};
    float *dw = rand_buf((size_t)9 * c), *pw = rand_buf((size_t)c * cout);
    float *pb = rand_buf((size_t)cout), *sum0 = rand_buf(n);
    fn_wpack wp;
    assert_int_equal(fn_wpack_init(&wp, pw, c, cout), 0);

    fn_t3 mid = {0, 0, 0, malloc(n_in * sizeof(float))}, q = {0, 0, 0, malloc(n * sizeof(float))};
    fn_dwconv2d(&in, dw, NULL, 3, 1, FN_PAD_SAME, FN_ACT_NONE, &mid);
    fn_conv2d_w(&mid, &wp, pb, 1, 1, 1, FN_PAD_VALID, FN_ACT_NONE, &q, NULL);
    float *ref_sum = malloc(n * sizeof(float)), *ref_relu = malloc(n * sizeof(float));
    size_t negative = 0;
    for (size_t i = 0; i < n; i++) {
        ref_sum[i] = sum0[i] + q.d[i];
        ref_relu[i] = ref_sum[i] > 0.0f ? ref_sum[i] : 0.0f;
        negative += ref_sum[i] < 0.0f;
    }
    assert_true(negative > 0 && negative < n); /* the relu has work to do */

    float *scratch = malloc((fn_sepconv_sum_scratch_floats(h, w, c, cout) + 1) * sizeof(float));
    float *sum = malloc(n * sizeof(float)), *relu = malloc(n * sizeof(float));
    const float tol = isa_vector ? 0.0f : 1e-5f;
    /* 0: into a map of its own; 1: in place; 2: the relu alone (sum_out NULL) */
    for (int mode = 0; mode < 3; mode++) {
        memset(relu, 0xff, n * sizeof(float)); /* NaN: every element must be written */
        if (mode == 1) {
            memcpy(sum, sum0, n * sizeof(float));
            fn_sepconv_sum_w(&in, dw, &wp, pb, sum, sum, relu, scratch);
        } else {
            memset(sum, 0xff, n * sizeof(float));
            fn_sepconv_sum_w(&in, dw, &wp, pb, sum0, mode ? NULL : sum, relu, scratch);
        }
        if (tol == 0.0f) {
            if (mode < 2) assert_memory_equal(sum, ref_sum, n * sizeof(float));
            assert_memory_equal(relu, ref_relu, n * sizeof(float));
        } else {
            if (mode < 2) assert_close(sum, ref_sum, n, tol);
            assert_close(relu, ref_relu, n, tol);
        }
        if (mode == 2) /* nothing was written to the sum */
            for (size_t i = 0; i < n; i++)
                assert_true(isnan(sum[i]));
    }
    fn_wpack_free(&wp);
    free(in.d), free(dw), free(pw), free(pb), free(sum0), free(mid.d), free(q.d), free(ref_sum);
    free(ref_relu), free(scratch), free(sum), free(relu);
}

static void test_sepconv_sum(void **state)
{
    (void)state;
    /* the landmark net's dense blocks: one strip (7x7x256) and many (56x56x32) */
    check_sum(56, 56, 32, 32);
    check_sum(28, 28, 64, 64); /* a 64-wide panel */
    check_sum(7, 7, 256, 256);
    /* channels off the vector width, a short last strip, one-pixel and one-row maps */
    check_sum(37, 23, 20, 40);
    check_sum(1, 1, 16, 8);
    check_sum(1, 90, 24, 24);
    /* rows left over after the full tiles (90 = 7 x 12 + 6 for the AVX-512 tiles, 95 = 15 x 6 + 5
     * for the AVX2 ones), which must not run as one more full tile over rows already summed */
    check_sum(1, 95, 24, 24);
}

static void check_pool(int h, int w, int c, int k, int s, fn_pad pad, int is_max)
{
    fn_t3 in = {h, w, c, rand_buf((size_t)h * w * c)};
    int oh, ow, pt, pl;
    ref_geom(h, k, s, pad, &oh, &pt);
    ref_geom(w, k, s, pad, &ow, &pl);
    size_t on = (size_t)oh * ow * c;
    float *ref = calloc(on, sizeof(float));
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++)
            for (int ch = 0; ch < c; ch++) {
                double acc = is_max ? -INFINITY : 0;
                int n = 0;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        int y = oy * s - pt + ky, x = ox * s - pl + kx;
                        if (y < 0 || y >= h || x < 0 || x >= w) continue;
                        double v = in.d[((size_t)y * w + x) * c + ch];
                        n++;
                        if (is_max)
                            acc = v > acc ? v : acc;
                        else
                            acc += v;
                    }
                ref[((size_t)oy * ow + ox) * c + ch] = (float)(is_max ? acc : acc / n);
            }
    fn_t3 out = {0, 0, 0, malloc((on + 1) * sizeof(float))};
    if (is_max)
        fn_maxpool(&in, k, s, pad, &out);
    else
        fn_avgpool(&in, k, s, pad, &out);
    assert_int_equal(out.h, oh);
    assert_int_equal(out.w, ow);
    assert_close(out.d, ref, on, 1e-6f);
    free(in.d), free(ref), free(out.d);
}

static void test_pool(void **state)
{
    (void)state;
    static const int sizes[][2] = {{7, 7}, {8, 8}, {13, 13}, {1, 1}, {2, 3}, {207, 5}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int is_max = 0; is_max <= 1; is_max++)
            for (int c = 1; c <= 33; c += 8) {
                check_pool(sizes[i][0], sizes[i][1], c, 2, 2, FN_PAD_SAME, is_max);
                check_pool(sizes[i][0], sizes[i][1], c, 2, 1, FN_PAD_SAME, is_max);
                check_pool(sizes[i][0], sizes[i][1], c, 3, 2, FN_PAD_SAME, is_max);
                if (sizes[i][0] >= 3 && sizes[i][1] >= 3)
                    check_pool(sizes[i][0], sizes[i][1], c, 3, 2, FN_PAD_VALID, is_max);
            }
}

/* The vector pools (fn_pool_avx2, on CPUs with AVX2) give the generic loop's floats to the bit:
 * the same max and the same sums in the same order. */
static void test_pool_same_floats(void **state)
{
    (void)state;
    if (!fn_cpu_has_avx2()) {
        print_message("this CPU has no AVX2: nothing to compare the generic pools with\n");
        return;
    }
    static const int shapes[][3] = {{13, 13, 40}, {208, 9, 16}, {9, 7, 25}, {26, 26, 128}};
    const int group_isa = fn_ops_isa(); /* the group's kernels, for the tests after this one */
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int h = shapes[i][0], w = shapes[i][1], c = shapes[i][2];
        fn_t3 in = {h, w, c, rand_buf((size_t)h * w * c)};
        for (int v = 0; v < 6; v++) {
            const int k = v % 3 == 2 ? 3 : 2, s = v % 3 == 1 ? 1 : 2, is_max = v < 3;
            float *out[2];
            size_t on = 0;
            for (int isa = 0; isa < 2; isa++) {
                fn_ops_set_isa(isa ? FN_ISA_AVX2 : FN_ISA_GENERIC);
                fn_t3 o = {0, 0, 0, out[isa] = calloc((size_t)h * w * c, sizeof(float))};
                if (is_max)
                    fn_maxpool(&in, k, s, FN_PAD_SAME, &o);
                else
                    fn_avgpool(&in, k, s, FN_PAD_SAME, &o);
                on = (size_t)o.h * o.w * o.c;
            }
            fn_ops_set_isa(group_isa);
            assert_memory_equal(out[0], out[1], on * sizeof(float));
            free(out[0]), free(out[1]);
        }
        free(in.d);
    }
}

static void test_elementwise(void **state)
{
    (void)state;
    const int h = 5, w = 7, c = 19;
    const size_t n = (size_t)h * w * c;
    float *a = rand_buf(n), *b = rand_buf(n), *sc = rand_buf(c), *of = rand_buf(c);
    for (size_t i = 0; i < n; i++)
        a[i] *= 10, b[i] *= 10;
    for (int act = FN_ACT_NONE; act <= FN_ACT_LEAKY; act++) {
        float *ref = malloc(n * sizeof(float));
        fn_t3 ta = {h, w, c, malloc(n * sizeof(float))}, tb = {h, w, c, b};
        memcpy(ta.d, a, n * sizeof(float));
        for (size_t i = 0; i < n; i++)
            ref[i] = ref_act(a[i] + b[i], (fn_act)act);
        fn_add(&ta, &tb, (fn_act)act, &ta); /* aliasing allowed */
        assert_close(ta.d, ref, n, 1e-6f);

        memcpy(ta.d, a, n * sizeof(float));
        for (size_t i = 0; i < n; i++)
            ref[i] = ref_act(a[i] * sc[i % c] + of[i % c], (fn_act)act);
        fn_scale_offset(&ta, sc, of, (fn_act)act);
        assert_close(ta.d, ref, n, 1e-6f);

        memcpy(ta.d, a, n * sizeof(float));
        for (size_t i = 0; i < n; i++)
            ref[i] = ref_act(a[i] + of[i % c], (fn_act)act);
        fn_scale_offset(&ta, NULL, of, (fn_act)act);
        assert_close(ta.d, ref, n, 1e-6f);

        memcpy(ta.d, a, n * sizeof(float));
        for (size_t i = 0; i < n; i++)
            ref[i] = ref_act(a[i], (fn_act)act);
        fn_activate(&ta, (fn_act)act);
        assert_close(ta.d, ref, n, 1e-6f);
        free(ref), free(ta.d);
    }
    /* dense and global average pooling */
    float *wt = rand_buf((size_t)n * 11), out[11], ref[11], g[19], gr[19];
    for (int j = 0; j < 11; j++) {
        double acc = of[j];
        for (size_t i = 0; i < n; i++)
            acc += (double)a[i] * wt[i * 11 + j];
        ref[j] = (float)acc;
    }
    fn_dense(a, (int)n, wt, of, 11, out);
    assert_close(out, ref, 11, 1e-4f);
    /* The landmark nets' shape: 136 outputs (whole vectors and a partial one), no bias. */
    {
        float *w2 = rand_buf((size_t)n * 136), o2[136], r2[136];
        for (int j = 0; j < 136; j++) {
            double acc = 0;
            for (size_t i = 0; i < n; i++)
                acc += (double)a[i] * w2[i * 136 + j];
            r2[j] = (float)acc;
        }
        fn_dense(a, (int)n, w2, NULL, 136, o2);
        assert_close(o2, r2, 136, 1e-4f);
        free(w2);
    }
    fn_t3 ta = {h, w, c, a};
    for (int j = 0; j < c; j++) {
        double acc = 0;
        for (int r = 0; r < h * w; r++)
            acc += a[r * c + j];
        gr[j] = (float)(acc / (h * w));
    }
    fn_global_avgpool(&ta, g);
    assert_close(g, gr, (size_t)c, 1e-5f);
    free(a), free(b), free(sc), free(of), free(wt);
}

/* TFJS resizeBilinear on a float image (the wasm backend's loop, in float32). */
static void ref_resize(const float *src, int h, int w, int oh, int ow, float *dst)
{
    float ry = (float)h / (float)oh, rx = (float)w / (float)ow;
    for (int y = 0; y < oh; y++) {
        float fy = ry * (float)y;
        int y0 = (int)floorf(fy), y1 = (int)fminf((float)(h - 1), ceilf(fy));
        for (int x = 0; x < ow; x++) {
            float fx = rx * (float)x;
            int x0 = (int)floorf(fx), x1 = (int)fminf((float)(w - 1), ceilf(fx));
            float ax = fx - (float)x0, ay = fy - (float)y0;
            for (int c = 0; c < 3; c++) {
                float tl = src[(y0 * w + x0) * 3 + c], tr = src[(y0 * w + x1) * 3 + c];
                float bl = src[(y1 * w + x0) * 3 + c], br = src[(y1 * w + x1) * 3 + c];
                float top = tl + (tr - tl) * ax, bot = bl + (br - bl) * ax;
                dst[(y * ow + x) * 3 + c] = top + (bot - top) * ay;
            }
        }
    }
}

static fn_image rand_image(int w, int h)
{
    fn_image img = {w, h, malloc((size_t)w * h * 3)};
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
        img.rgb[i] = (uint8_t)(frand() * 127 + 128);
    return img;
}

static void test_resize(void **state)
{
    (void)state;
    static const int dims[][4] = {{10, 7, 5, 5},        {7, 10, 16, 16}, {33, 20, 20, 33},
                                  {512, 384, 512, 512}, {3, 3, 3, 3},    {1, 1, 4, 2}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        int w = dims[i][0], h = dims[i][1], ow = dims[i][2], oh = dims[i][3];
        fn_image img = rand_image(w, h);
        float *src = malloc((size_t)w * h * 3 * sizeof(float));
        for (size_t j = 0; j < (size_t)w * h * 3; j++)
            src[j] = img.rgb[j];
        float *ref = malloc((size_t)ow * oh * 3 * sizeof(float));
        ref_resize(src, h, w, oh, ow, ref);
        fn_t3 out = {oh, ow, 0, malloc((size_t)ow * oh * 3 * sizeof(float))};
        fn_resize_bilinear_rgb8(img.rgb, w, h, w * 3, &out);
        assert_int_equal(out.c, 3);
        assert_close(out.d, ref, (size_t)ow * oh * 3, 1e-6f);
        free(img.rgb), free(src), free(ref), free(out.d);
    }
}

/* padToSquare built explicitly, then the reference resize. */
static void ref_pad_resize(const fn_image *img, int rx, int ry, int rw, int rh, int center, int s,
                           float *dst)
{
    int side = rw > rh ? rw : rh, diff = abs(rw - rh);
    int after = center ? (int)lround(diff * 0.5 + 1e-9) : diff;
    if (center && diff % 2) after = diff / 2 + 1; /* Math.round(x.5) rounds up */
    int before = diff - after;
    float *sq = calloc((size_t)side * side * 3, sizeof(float));
    int px = rw < rh ? before : 0, py = rh < rw ? before : 0;
    for (int y = 0; y < rh; y++)
        for (int x = 0; x < rw; x++)
            for (int c = 0; c < 3; c++)
                sq[((size_t)(y + py) * side + x + px) * 3 + c] =
                    img->rgb[((size_t)(ry + y) * img->width + rx + x) * 3 + c];
    ref_resize(sq, side, side, s, s, dst);
    free(sq);
}

static void test_pad_resize(void **state)
{
    (void)state;
    fn_image img = rand_image(61, 40);
    static const int regions[][4] = {{0, 0, 61, 40}, {3, 2, 20, 31}, {10, 5, 21, 20},
                                     {0, 0, 1, 1},   {5, 5, 30, 9},  {50, 0, 11, 40}};
    static const int sizes[] = {5, 16, 112, 150, 1100}; /* 1100: more than one column block */
    for (size_t i = 0; i < sizeof regions / sizeof regions[0]; i++)
        for (size_t j = 0; j < sizeof sizes / sizeof sizes[0]; j++)
            for (int center = 0; center <= 1; center++) {
                int s = sizes[j];
                float *ref = malloc((size_t)s * s * 3 * sizeof(float));
                fn_t3 out = {0, 0, 0, malloc((size_t)s * s * 3 * sizeof(float))};
                ref_pad_resize(&img, regions[i][0], regions[i][1], regions[i][2], regions[i][3],
                               center, s, ref);
                fn_pad_resize_region(&img, regions[i][0], regions[i][1], regions[i][2],
                                     regions[i][3], center, s, &out);
                assert_int_equal(out.h, s);
                assert_int_equal(out.w, s);
                assert_close(out.d, ref, (size_t)s * s * 3, 1e-6f);
                free(ref), free(out.d);
            }
    /* fn_crop_square_resize clips like Box.clipAtImageBorders (then floors). */
    int cx, cy, cw, ch;
    assert_int_equal(fn_clip_box(61, 40, -3.5f, 2.7f, 20.2f, 50.f, &cx, &cy, &cw, &ch), 1);
    assert_int_equal(cx, 0);
    assert_int_equal(cy, 2);
    assert_int_equal(cw, 16);
    assert_int_equal(ch, 37);
    assert_int_equal(fn_clip_box(61, 40, 70.f, 2.f, 20.f, 20.f, &cx, &cy, &cw, &ch), 0);
    float *ref = malloc(112 * 112 * 3 * sizeof(float));
    fn_t3 out = {0, 0, 0, malloc(112 * 112 * 3 * sizeof(float))};
    ref_pad_resize(&img, 0, 2, 16, 37, 1, 112, ref);
    fn_crop_square_resize(&img, -3.5f, 2.7f, 20.2f, 50.f, 112, &out);
    assert_close(out.d, ref, 112 * 112 * 3, 1e-6f);
    free(ref), free(out.d), free(img.rgb);
}

/* One packed conv (1x1 or 3x3) and one depthwise conv under the AVX-512 kernels and under the AVX2
 * ones: the same operations in the same order, so the same floats (ops_isa.h). Needs a CPU with
 * both; elsewhere there is nothing to compare. */
static void same_floats(int h, int w, int cin, int cout, int k, int s, fn_pad pad, fn_act act)
{
    fn_t3 in = {h, w, cin, rand_buf((size_t)h * w * cin)};
    float *wt = rand_buf((size_t)k * k * cin * cout), *bias = rand_buf((size_t)cout);
    float *dw = rand_buf((size_t)9 * cin), *dwb = rand_buf((size_t)cin);
    fn_wpack wp;
    assert_int_equal(fn_wpack_init(&wp, wt, k * k * cin, cout), 0);
    const size_t on = (size_t)h * w * (cin > cout ? cin : cout);
    float *scratch =
        malloc((fn_conv2d_scratch_floats(h, w, cin, k, k, s, pad) + 1) * sizeof(float));
    float *out[2][2];
    const int group_isa = fn_ops_isa(); /* the group's kernels, for the tests after this one */
    for (int v = 0; v < 2; v++) {
        fn_ops_set_isa(v ? FN_ISA_AVX2 : FN_ISA_AVX512);
        fn_t3 o = {0, 0, 0, out[v][0] = calloc(on, sizeof(float))};
        fn_conv2d_w(&in, &wp, bias, k, k, s, pad, act, &o, scratch);
        fn_t3 d = {0, 0, 0, out[v][1] = calloc(on, sizeof(float))};
        fn_dwconv2d(&in, dw, dwb, 3, s, FN_PAD_SAME, act, &d);
    }
    fn_ops_set_isa(group_isa);
    assert_memory_equal(out[0][0], out[1][0], on * sizeof(float));
    assert_memory_equal(out[0][1], out[1][1], on * sizeof(float));
    for (int v = 0; v < 2; v++)
        free(out[v][0]), free(out[v][1]);
    fn_wpack_free(&wp);
    free(in.d), free(wt), free(bias), free(dw), free(dwb), free(scratch);
}

/* fn_dense on the AVX-512 kernels against the AVX2 ones: the same floats. */
static void same_dense(int n_in, int n_out, int with_bias)
{
    float *in = rand_buf((size_t)n_in), *wt = rand_buf((size_t)n_in * n_out);
    float *bias = with_bias ? rand_buf((size_t)n_out) : NULL;
    float *out[2] = {calloc((size_t)n_out, sizeof(float)), calloc((size_t)n_out, sizeof(float))};
    const int group_isa = fn_ops_isa();
    for (int v = 0; v < 2; v++) {
        fn_ops_set_isa(v ? FN_ISA_AVX2 : FN_ISA_AVX512);
        fn_dense(in, n_in, wt, bias, n_out, out[v]);
    }
    fn_ops_set_isa(group_isa);
    assert_memory_equal(out[0], out[1], (size_t)n_out * sizeof(float));
    free(in), free(wt), free(bias), free(out[0]), free(out[1]);
}

static void test_avx2_equals_avx512(void **state)
{
    (void)state;
    if (!fn_avx2_beside_default()) {
        print_message("this CPU has no AVX-512: nothing to compare the AVX2 kernels with\n");
        return;
    }
    same_floats(17, 13, 32, 64, 1, 1, FN_PAD_SAME, FN_ACT_RELU6);
    same_floats(9, 11, 20, 100, 1, 1, FN_PAD_SAME,
                FN_ACT_LEAKY); /* partial panel, partial channel block */
    same_floats(15, 16, 24, 48, 3, 2, FN_PAD_SAME, FN_ACT_RELU); /* im2col, stride 2 */
    same_floats(5, 3, 512, 256, 1, 1, FN_PAD_SAME, FN_ACT_NONE); /* long K, row remainders */
    /* 3x3 stride 1 from 256 pixels, where both read rows of taps (conv3_rows; against im2col:
     * test_sepchain) */
    same_floats(35, 35, 32, 32, 3, 1, FN_PAD_SAME,
                FN_ACT_RELU); /* the recognition net's, several strips */
    same_floats(17, 17, 64, 64, 3, 1, FN_PAD_SAME, FN_ACT_NONE);
    same_floats(40, 7, 20, 40, 3, 1, FN_PAD_SAME, FN_ACT_LEAKY); /* channels off the vector width */
    /* wide output rows, where both read the taps in place (conv_rows) */
    same_floats(150, 150, 3, 32, 7, 2, FN_PAD_VALID, FN_ACT_RELU); /* the recognition net's */
    same_floats(9, 61, 8, 40, 3, 1, FN_PAD_VALID, FN_ACT_NONE);
    same_floats(41, 61, 3, 32, 3, 2, FN_PAD_SAME, FN_ACT_RELU6); /* border pixels both sides */
    same_dense(256, 136, 0); /* the landmark nets': a partial vector */
    same_dense(256, 128, 1); /* the recognition net's */
    same_dense(37, 11, 1);
}

static int generic_isa(void **state)
{
    (void)state;
    fn_ops_set_isa(FN_ISA_GENERIC);
    isa_vector = 0;
    return 0;
}

static int avx2_isa(void **state)
{
    (void)state;
    fn_ops_set_isa(FN_ISA_AVX2);
    isa_vector = fn_ops_isa() != FN_ISA_GENERIC;
    return 0;
}

static int best_isa(void **state)
{
    (void)state;
    fn_ops_set_isa(-1);
    isa_vector = fn_ops_isa() != FN_ISA_GENERIC;
    return 0;
}

int main(void)
{
    print_message("CPU kernels: %s%s generic\n", fn_cpu_has_avx512() ? "AVX-512, " : "",
                  fn_cpu_has_avx2() ? "AVX2," : "");
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_conv2d_centre),
        cmocka_unit_test(test_wpack_layout),
        cmocka_unit_test(test_gemm_bytes),
        cmocka_unit_test(test_dwconv),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_pool_same_floats),
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_pad_resize),
        cmocka_unit_test(test_sepconv),
        cmocka_unit_test(test_sepchain),
        cmocka_unit_test(test_conv_pool),
        cmocka_unit_test(test_sepconv_sum),
        cmocka_unit_test(test_avx2_equals_avx512),
        cmocka_unit_test(test_conv2d_res),
    };
    /* clang-format on */
    /* Every kernel on the generic C path, on the AVX2 kernels (where the CPU has them: every CPU
     * with AVX-512 too), then on what this CPU runs by default. */
    int failed = cmocka_run_group_tests_name("generic", tests, generic_isa, best_isa);
    if (fn_cpu_has_avx2()) failed += cmocka_run_group_tests_name("avx2", tests, avx2_isa, best_isa);
    return failed + cmocka_run_group_tests_name("dispatched", tests, best_isa, NULL);
}
