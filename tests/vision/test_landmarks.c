/* test_landmarks: FaceLandmark68Net and FaceLandmark68TinyNet against the reference's goldens
 * (tests/fixtures/vision, written by reference/make_goldens.mjs).
 *
 * - raw parity: the reference's own 112x112 input tensors (raw/lm_K_input_u8) through
 *   fn_landmark_forward give its raw fc outputs (raw/lm_K_output, raw/lmtiny_K_output) within 1e-3;
 * - preprocessing: our crop/pad/resize of the first face equals the reference's float tensor;
 * - end to end: every reference face of every sample photo (our loader's pixels, checked by
 *   SHA-256 against the pixels the goldens were made from): from the reference's detection box,
 *   the same crop and landmarks within 2 px (SSD faces with the full net, tiny-detector faces with
 *   both nets);
 * - bind failures: a missing tensor, a wrong shape, the tiny flag on the full model, no weights;
 * - degenerate boxes (partly or wholly outside the photo) neither crash nor produce NaN.
 * Timings (CPU ms/face) are printed, not asserted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glib.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vision/nets.h"
#include "vision/ops_isa.h"
#include "vision/preprocess.h"

#include "goldens_util.h"

#define PARITY_TOL 1e-3
#define PREP_TOL   1e-2 /* intensity units (0..255) */
#define LM_PX_TOL  2.0

typedef struct ctx {
    fn_weights *w_full, *w_tiny;
    fn_landmark_net *full, *tiny;
    float *scratch;
    char fixtures[1024]; /* .../tests/fixtures/vision */
    char samples[1024];
} ctx;

static int setup(void **state)
{
    ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);
    /* As a worker would run: one OpenBLAS thread (fn_vision_init caps it). */
    assert_int_equal(fn_vision_init(), 0);
    char err[512];
    c->w_full = load_weights("face_landmark_68_model");
    c->w_tiny = load_weights("face_landmark_68_tiny_model");
    if (fn_landmark_bind(c->w_full, 0, &c->full, err, sizeof err) != 0) fail_msg("bind: %s", err);
    if (fn_landmark_bind(c->w_tiny, 1, &c->tiny, err, sizeof err) != 0) fail_msg("bind: %s", err);
    c->scratch = malloc(fn_landmark_scratch_floats() * sizeof(float));
    assert_non_null(c->scratch);
    goldens_dirs(c->fixtures, sizeof c->fixtures, c->samples, sizeof c->samples);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    ctx *c = *state;
    fn_landmark_free(c->full);
    fn_landmark_free(c->tiny);
    fn_weights_free(c->w_full);
    fn_weights_free(c->w_tiny);
    free(c->scratch);
    free(c);
    return 0;
}

/* Raw parity with the landmark nets' and the ops' kernel choices given (-1: by the CPU). */
static void raw_parity(ctx *c, int lm_isa, int ops_isa)
{
    char name[64];
    fn_landmark_set_isa(lm_isa);
    fn_ops_set_isa(ops_isa);
    for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof name, "lm_%d_input_u8", k);
        float *in = load_raw(c->fixtures, name, 112 * 112 * 3);
        normalise(in, 112 * 112);
        for (int tiny = 0; tiny < 2; tiny++) {
            snprintf(name, sizeof name, "%s_%d_output", tiny ? "lmtiny" : "lm", k);
            float *ref = load_raw(c->fixtures, name, 136);
            memcpy(c->scratch, in, 112 * 112 * 3 * sizeof(float));
            fn_t3 x = {112, 112, 3, c->scratch};
            float out[136];
            fn_landmark_forward(tiny ? c->tiny : c->full, &x, c->scratch, out);
            double d = max_abs_diff(out, ref, 136);
            print_message("raw %-15s (kernels %2d/%2d) max abs diff %.3g\n", name, lm_isa, ops_isa,
                          d);
            if (!(d <= PARITY_TOL)) fail_msg("%s: max abs diff %g > %g", name, d, PARITY_TOL);
            free(ref);
        }
        free(in);
    }
    fn_landmark_set_isa(-1);
    fn_ops_set_isa(-1);
}

static void test_raw_parity(void **state)
{
    raw_parity(*state, -1, -1);
}

/* The kernels this CPU does not pick by default: the portable depthwise kernel of landmarks.c,
 * the ops' generic C kernels, and their AVX2 ones on an AVX-512 CPU (elsewhere they are the
 * default or not there). */
static void test_raw_parity_other_kernels(void **state)
{
    raw_parity(*state, 0, -1);
    raw_parity(*state, 0, 0);
    raw_parity(*state, 1, 0);
    if (fn_avx2_beside_default()) raw_parity(*state, 1, FN_ISA_AVX2);
}

static void check_crop(json_t *face, const fn_image *img, const fn_det *d, const char *what)
{
    int box[4];
    assert_int_equal(fn_landmark_crop_box(img, d, box), 1);
    json_t *lc = json_object_get(face, "landmark_crop");
    const char *keys[4] = {"x", "y", "width", "height"};
    for (int k = 0; k < 4; k++)
        if (box[k] != json_integer_value(json_object_get(lc, keys[k])))
            fail_msg("%s: landmark crop %s = %d, reference %d", what, keys[k], box[k],
                     (int)json_integer_value(json_object_get(lc, keys[k])));
}

static double landmarks_diff(float got[68][2], json_t *ref)
{
    if (json_array_size(ref) != 68) fail_msg("reference landmarks: not 68 points");
    double m = 0;
    for (int i = 0; i < 68; i++) {
        json_t *p = json_array_get(ref, (size_t)i);
        for (int k = 0; k < 2; k++) {
            double d = fabs(got[i][k] - json_number_value(json_array_get(p, (size_t)k)));
            if (!(d <= m)) m = d;
        }
    }
    return m;
}

static void test_preprocessing(void **state)
{
    ctx *c = *state;
    char path[1200];
    snprintf(path, sizeof path, "%s/goldens.json", c->fixtures);
    json_t *g = load_json(path);
    json_t *image = json_array_get(json_object_get(g, "images"), 0);
    fn_image img = {0};
    load_sample(c->fixtures, c->samples, image, &img);
    json_t *face = json_array_get(json_object_get(image, "faces_ssd"), 0);
    assert_non_null(face);
    fn_det d = det_of(face);
    int box[4];
    assert_int_equal(fn_landmark_crop_box(&img, &d, box), 1);
    fn_t3 t = {112, 112, 3, c->scratch};
    fn_pad_resize_region(&img, box[0], box[1], box[2], box[3], 1, 112, &t);
    float *ref = load_raw(c->fixtures, "lm_0_preprocessed", 112 * 112 * 3);
    double diff = max_abs_diff(t.d, ref, 112 * 112 * 3);
    print_message("lm_0 preprocessed (0..255) max abs diff %.3g\n", diff);
    /* The wasm backend lerps in float32, we in double: ~5e-4 apart on 0..255 values. */
    if (!(diff <= PREP_TOL)) fail_msg("preprocessing differs by %g", diff);
    free(ref);
    fn_image_free(&img);
    json_decref(g);
}

static void test_end_to_end(void **state)
{
    ctx *c = *state;
    char path[1200], what[256];
    snprintf(path, sizeof path, "%s/goldens.json", c->fixtures);
    json_t *g = load_json(path);
    json_t *images = json_object_get(g, "images"), *image;
    size_t i;
    double worst_full = 0, worst_tiny = 0, ms = 0;
    int faces = 0;
    json_array_foreach(images, i, image)
    {
        fn_image img = {0};
        load_sample(c->fixtures, c->samples, image, &img);
        const char *file = json_string_value(json_object_get(image, "file"));
        for (int det_kind = 0; det_kind < 2; det_kind++) {
            json_t *list = json_object_get(image, det_kind ? "faces_tiny" : "faces_ssd"), *face;
            size_t j;
            json_array_foreach(list, j, face)
            {
                fn_det d = det_of(face);
                snprintf(what, sizeof what, "%s %s face %zu", file, det_kind ? "tiny" : "ssd", j);
                check_crop(face, &img, &d, what);
                float pts[68][2];
                double t0 = now_ms();
                fn_landmark_run(c->full, &img, &d, c->scratch, pts);
                ms += now_ms() - t0;
                faces++;
                double df = landmarks_diff(pts, json_object_get(face, "landmarks"));
                if (df > worst_full) worst_full = df;
                if (!(df <= LM_PX_TOL)) fail_msg("%s: landmarks off by %g px", what, df);
                json_t *lt = json_object_get(face, "landmarks_tiny");
                if (!lt) continue;
                fn_landmark_run(c->tiny, &img, &d, c->scratch, pts);
                double dt = landmarks_diff(pts, lt);
                if (dt > worst_tiny) worst_tiny = dt;
                if (!(dt <= LM_PX_TOL)) fail_msg("%s: tiny landmarks off by %g px", what, dt);
            }
        }
        fn_image_free(&img);
    }
    assert_true(faces > 0);
    print_message("end to end: %d faces, worst landmark diff %.3g px (tiny net %.3g px), "
                  "%.2f CPU ms/face (FaceLandmark68Net)\n",
                  faces, worst_full, worst_tiny, ms / faces);
    json_decref(g);
}

static void expect_bind_error(const fn_weights *w, int tiny, const char *needle)
{
    char err[512] = "";
    fn_landmark_net *n = (fn_landmark_net *)&err; /* must be reset to NULL */
    int rc = fn_landmark_bind(w, tiny, &n, err, sizeof err);
    assert_int_equal(rc, FN_ERR_MODEL);
    assert_null(n);
    if (!strstr(err, needle)) fail_msg("error message \"%s\" does not name %s", err, needle);
}

static void test_bind_failures(void **state)
{
    ctx *c = *state;
    fn_weights *t = tampered(c->w_full, "dense2/conv1/pointwise_filter", "dense2/conv1/other", -1);
    expect_bind_error(t, 0, "dense2/conv1/pointwise_filter");
    free_tampered(t);

    t = tampered(c->w_full, "fc/bias", NULL, -1);
    expect_bind_error(t, 0, "fc/bias");
    free_tampered(t);

    t = tampered(c->w_tiny, "dense0/conv0/filters", NULL, -1);
    expect_bind_error(t, 1, "dense0/conv0/filters");
    free_tampered(t);

    /* The full model bound as the tiny one: its fc has 256 inputs, not 128. */
    expect_bind_error(c->w_full, 1, "fc/weights");
    /* And the tiny model as the full one: its blocks have no conv3. */
    expect_bind_error(c->w_tiny, 0, "dense0/conv3");

    char err[128];
    fn_landmark_net *n = NULL;
    assert_int_equal(fn_landmark_bind(NULL, 0, &n, err, sizeof err), FN_ERR_INVALID);
    assert_null(n);
    fn_landmark_free(NULL);
}

static void test_degenerate_boxes(void **state)
{
    ctx *c = *state;
    fn_image img = {64, 48, malloc(64 * 48 * 3)};
    assert_non_null(img.rgb);
    for (int i = 0; i < 64 * 48 * 3; i++)
        img.rgb[i] = (uint8_t)(i * 7 + i / 191);
    const fn_det boxes[] = {
        {-10.5f, -5.25f, 40, 30, 1}, /* over the top-left corner */
        {50, 40, 40, 30, 1},         /* over the bottom-right corner */
        {0, 0, 64, 48, 1},           /* the whole image, wider than high */
        {30, 0, 3, 48, 1},           /* a thin strip */
        {100, 100, 20, 20, 1},       /* wholly outside */
        {NAN, 0, 20, 20, 1},         /* garbage: never a crop */
        {0, 0, 1e30f, 20, 1},
    };
    for (size_t b = 0; b < sizeof boxes / sizeof boxes[0]; b++) {
        int crop[4];
        int inside = fn_landmark_crop_box(&img, &boxes[b], crop);
        assert_int_equal(inside, b < 4);
        if (inside) {
            assert_true(crop[0] >= 0 && crop[1] >= 0);
            assert_true(crop[0] + crop[2] <= img.width && crop[1] + crop[3] <= img.height);
        }
        for (int tiny = 0; tiny < 2; tiny++) {
            float pts[68][2];
            fn_landmark_run(tiny ? c->tiny : c->full, &img, &boxes[b], c->scratch, pts);
            if (b < 5)
                for (int i = 0; i < 68; i++)
                    assert_true(isfinite(pts[i][0]) && isfinite(pts[i][1]));
        }
    }
    free(img.rgb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bind_failures), cmocka_unit_test(test_degenerate_boxes),
        cmocka_unit_test(test_raw_parity),    cmocka_unit_test(test_raw_parity_other_kernels),
        cmocka_unit_test(test_preprocessing), cmocka_unit_test(test_end_to_end),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
