/* test_recognition: FaceRecognitionNet and the dlib-aligned face crop against the reference's
 * goldens (tests/fixtures/vision, written by reference/make_goldens.mjs).
 *
 * - raw parity: the reference's 150x150 input tensors (raw/rec_K_input_u8) through
 *   fn_recog_forward give its descriptors (raw/rec_K_output) within 1e-3 per value;
 * - preprocessing: our crop/pad/resize of the first face's aligned box equals the reference's;
 * - the aligned box: from the reference's landmarks, fn_recog_aligned_box gives exactly its
 *   descriptor_rect, and clipping gives its descriptor_crop;
 * - end to end, on our loader's pixels (checked by SHA-256 against the goldens'): from each
 *   reference detection, our landmarks and then our descriptor are within Euclidean distance 0.03
 *   of the reference's descriptor (SSD and tiny-detector faces); so is the descriptor computed from
 *   the reference's own landmarks;
 * - alignDlib worked by hand on synthetic landmarks, including the side bound by the landmark
 *   crop's size; a face wholly outside the photo gives a zero descriptor, as the reference does;
 * - bind failures: a missing tensor, a wrong shape, the wrong model, no weights.
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
#define DESC_TOL   0.03

typedef struct ctx {
    fn_weights *w_rec, *w_lm;
    fn_recog_net *rec;
    fn_landmark_net *lm;
    float *scratch;
    char fixtures[1024];
    char samples[1024];
} ctx;

static int setup(void **state)
{
    ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);
    /* As a worker would run: one OpenBLAS thread (fn_vision_init caps it). */
    assert_int_equal(fn_vision_init(), 0);
    char err[512];
    c->w_rec = load_weights("face_recognition_model");
    c->w_lm = load_weights("face_landmark_68_model");
    if (fn_recog_bind(c->w_rec, &c->rec, err, sizeof err) != 0) fail_msg("bind: %s", err);
    if (fn_landmark_bind(c->w_lm, 0, &c->lm, err, sizeof err) != 0) fail_msg("bind: %s", err);
    size_t n = fn_recog_scratch_floats();
    if (fn_landmark_scratch_floats() > n) n = fn_landmark_scratch_floats();
    c->scratch = malloc(n * sizeof(float));
    assert_non_null(c->scratch);
    goldens_dirs(c->fixtures, sizeof c->fixtures, c->samples, sizeof c->samples);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    ctx *c = *state;
    fn_recog_free(c->rec);
    fn_landmark_free(c->lm);
    fn_weights_free(c->w_rec);
    fn_weights_free(c->w_lm);
    free(c->scratch);
    free(c);
    return 0;
}

/* Raw parity with the ops' kernel choice given (-1: by the CPU, else FN_ISA_*). */
static void raw_parity(ctx *c, int ops_isa)
{
    char name[64];
    fn_ops_set_isa(ops_isa);
    for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof name, "rec_%d_input_u8", k);
        float *in = load_raw(c->fixtures, name, 150 * 150 * 3);
        normalise(in, 150 * 150);
        snprintf(name, sizeof name, "rec_%d_output", k);
        float *ref = load_raw(c->fixtures, name, 128);
        memcpy(c->scratch, in, 150 * 150 * 3 * sizeof(float));
        fn_t3 x = {150, 150, 3, c->scratch};
        float out[128];
        fn_recog_forward(c->rec, &x, c->scratch, out);
        double d = max_abs_diff(out, ref, 128);
        print_message("raw %-12s (ops kernels %2d) max abs diff %.3g\n", name, ops_isa, d);
        if (!(d <= PARITY_TOL)) fail_msg("%s: max abs diff %g > %g", name, d, PARITY_TOL);
        free(ref);
        free(in);
    }
    fn_ops_set_isa(-1);
}

static void test_raw_parity(void **state)
{
    raw_parity(*state, -1);
}

static void test_raw_parity_generic_kernels(void **state)
{
    raw_parity(*state, 0);
}

static void test_raw_parity_avx2_kernels(void **state)
{
    if (fn_avx2_beside_default()) raw_parity(*state, FN_ISA_AVX2);
}

/* fn_recog_forward_batch on the three golden inputs at once (both kernel paths): the goldens'
 * parity, and every descriptor equal to the one-face forward's to the bit, because each output
 * is the same sums in the same order whichever GEMM rows it shares a tile with. */
static void batch_parity(ctx *c, int ops_isa)
{
    char name[64];
    fn_ops_set_isa(ops_isa);
    float *in = malloc(3 * 150 * 150 * 3 * sizeof(float)), (*ref)[128] = malloc(3 * 128 * 4);
    float single[3][128], batch[3][128];
    assert_non_null(in);
    assert_non_null(ref);
    for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof name, "rec_%d_input_u8", k);
        float *x = load_raw(c->fixtures, name, 150 * 150 * 3);
        normalise(x, 150 * 150);
        memcpy(in + (size_t)k * 150 * 150 * 3, x, 150 * 150 * 3 * sizeof(float));
        snprintf(name, sizeof name, "rec_%d_output", k);
        float *r = load_raw(c->fixtures, name, 128);
        memcpy(ref[k], r, sizeof ref[k]);
        free(x), free(r);
        memcpy(c->scratch, in + (size_t)k * 150 * 150 * 3, 150 * 150 * 3 * sizeof(float));
        fn_t3 one = {150, 150, 3, c->scratch};
        fn_recog_forward(c->rec, &one, c->scratch, single[k]);
    }
    float *scratch = malloc(fn_recog_batch_scratch_floats(3) * sizeof(float));
    assert_non_null(scratch);
    fn_t3 all = {150, 150, 3, in};
    fn_recog_forward_batch(c->rec, &all, 3, scratch, batch);
    for (int k = 0; k < 3; k++) {
        double d = max_abs_diff(batch[k], ref[k], 128);
        if (!(d <= PARITY_TOL)) fail_msg("batch face %d: max abs diff %g > %g", k, d, PARITY_TOL);
        assert_memory_equal(batch[k], single[k], sizeof batch[k]);
    }
    free(scratch), free(in), free(ref);
    fn_ops_set_isa(-1);
}

static void test_batch_parity(void **state)
{
    batch_parity(*state, -1);
    batch_parity(*state, 0);
    if (fn_avx2_beside_default()) batch_parity(*state, FN_ISA_AVX2);
}

static void ref_landmarks(json_t *face, float pts[68][2])
{
    json_t *l = json_object_get(face, "landmarks");
    if (json_array_size(l) != 68) fail_msg("reference landmarks: not 68 points");
    for (int i = 0; i < 68; i++)
        for (int k = 0; k < 2; k++)
            pts[i][k] =
                (float)json_number_value(json_array_get(json_array_get(l, (size_t)i), (size_t)k));
}

static double distance(const float *a, json_t *ref)
{
    if (json_array_size(ref) != 128) fail_msg("reference descriptor: not 128 values");
    float r[128];
    for (int i = 0; i < 128; i++)
        r[i] = (float)json_number_value(json_array_get(ref, (size_t)i));
    return fn_descriptor_distance(a, r);
}

static void check_rect(json_t *r, const float box[4], const char *what, const char *field)
{
    const char *keys[4] = {"x", "y", "width", "height"};
    for (int k = 0; k < 4; k++) {
        double want = json_number_value(json_object_get(r, keys[k]));
        if (!(fabs(box[k] - want) <= 1e-6))
            fail_msg("%s: %s.%s = %g, reference %g", what, field, keys[k], box[k], want);
    }
}

static void test_aligned_box(void **state)
{
    ctx *c = *state;
    char path[1200], what[256];
    snprintf(path, sizeof path, "%s/goldens.json", c->fixtures);
    json_t *g = load_json(path);
    json_t *image;
    size_t i;
    int n = 0;
    json_array_foreach(json_object_get(g, "images"), i, image)
    {
        const int W = (int)json_integer_value(json_object_get(image, "width"));
        const int H = (int)json_integer_value(json_object_get(image, "height"));
        for (int kind = 0; kind < 2; kind++) {
            json_t *face;
            size_t j;
            json_array_foreach(json_object_get(image, kind ? "faces_tiny" : "faces_ssd"), j, face)
            {
                snprintf(what, sizeof what, "%s %s face %zu",
                         json_string_value(json_object_get(image, "file")), kind ? "tiny" : "ssd",
                         j);
                float pts[68][2], box[4];
                ref_landmarks(face, pts);
                json_t *lc = json_object_get(face, "landmark_crop");
                fn_recog_aligned_box(pts, (int)json_integer_value(json_object_get(lc, "width")),
                                     (int)json_integer_value(json_object_get(lc, "height")), box);
                check_rect(json_object_get(face, "descriptor_rect"), box, what, "descriptor_rect");
                int cb[4];
                assert_int_equal(fn_clip_box(W, H, box[0], box[1], box[2], box[3], &cb[0], &cb[1],
                                             &cb[2], &cb[3]),
                                 1);
                float cf[4] = {(float)cb[0], (float)cb[1], (float)cb[2], (float)cb[3]};
                check_rect(json_object_get(face, "descriptor_crop"), cf, what, "descriptor_crop");
                n++;
            }
        }
    }
    assert_true(n > 0);
    json_decref(g);
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
    json_t *dc =
        json_object_get(json_array_get(json_object_get(image, "faces_ssd"), 0), "descriptor_crop");
    assert_non_null(dc);
    fn_t3 t = {150, 150, 3, c->scratch};
    fn_pad_resize_region(&img, (int)json_integer_value(json_object_get(dc, "x")),
                         (int)json_integer_value(json_object_get(dc, "y")),
                         (int)json_integer_value(json_object_get(dc, "width")),
                         (int)json_integer_value(json_object_get(dc, "height")), 1, 150, &t);
    float *ref = load_raw(c->fixtures, "rec_0_preprocessed", 150 * 150 * 3);
    double diff = max_abs_diff(t.d, ref, 150 * 150 * 3);
    print_message("rec_0 preprocessed (0..255) max abs diff %.3g\n", diff);
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
    json_t *image;
    size_t i;
    double worst = 0, worst_reflm = 0, ms = 0;
    int faces = 0;
    json_array_foreach(json_object_get(g, "images"), i, image)
    {
        fn_image img = {0};
        load_sample(c->fixtures, c->samples, image, &img);
        for (int kind = 0; kind < 2; kind++) {
            json_t *face;
            size_t j;
            json_array_foreach(json_object_get(image, kind ? "faces_tiny" : "faces_ssd"), j, face)
            {
                snprintf(what, sizeof what, "%s %s face %zu",
                         json_string_value(json_object_get(image, "file")), kind ? "tiny" : "ssd",
                         j);
                fn_det d = det_of(face);
                json_t *ref = json_object_get(face, "descriptor");
                float pts[68][2], desc[128];
                /* Ours all the way from the detection. */
                fn_landmark_run(c->lm, &img, &d, c->scratch, pts);
                double t0 = now_ms();
                fn_recog_run_det(c->rec, &img, &d, pts, c->scratch, desc);
                ms += now_ms() - t0;
                faces++;
                double dist = distance(desc, ref);
                if (dist > worst) worst = dist;
                if (!(dist <= DESC_TOL)) fail_msg("%s: descriptor distance %g", what, dist);
                /* From the reference's landmarks: the recognition step alone. */
                ref_landmarks(face, pts);
                fn_recog_run_det(c->rec, &img, &d, pts, c->scratch, desc);
                dist = distance(desc, ref);
                if (dist > worst_reflm) worst_reflm = dist;
                if (!(dist <= DESC_TOL))
                    fail_msg("%s: descriptor distance %g from the reference's landmarks", what,
                             dist);
            }
        }
        fn_image_free(&img);
    }
    assert_true(faces > 0);
    print_message("end to end: %d faces, worst descriptor distance %.3g (from the reference's "
                  "landmarks %.3g), %.2f CPU ms/face\n",
                  faces, worst, worst_reflm, ms / faces);
    json_decref(g);
}

/* Landmarks with every left-eye point at le, right-eye point at re, mouth point at mo (the other
 * points are irrelevant to the alignment and are put far away to prove it). */
static void synthetic(float pts[68][2], const float le[2], const float re[2], const float mo[2])
{
    for (int i = 0; i < 68; i++) {
        const float *p = i < 36 ? NULL : i < 42 ? le : i < 48 ? re : mo;
        pts[i][0] = p ? p[0] : 5000.0f;
        pts[i][1] = p ? p[1] : -5000.0f;
    }
}

static void test_align_by_hand(void **state)
{
    (void)state;
    float pts[68][2], box[4];
    /* Eyes (100, 100) and (140, 100), mouth (120, 150): both eye-to-mouth distances are
     * sqrt(20^2 + 50^2) = 53.852, side = floor(53.852 / 0.45) = floor(119.67) = 119; the
     * centroid is (120, 116.667): x = floor(120 - 59.5) = 60, y = floor(116.667 - 51.17) = 65. */
    synthetic(pts, (const float[]){100, 100}, (const float[]){140, 100}, (const float[]){120, 150});
    fn_recog_aligned_box(pts, 0, 0, box);
    assert_true(box[0] == 60 && box[1] == 65 && box[2] == 119 && box[3] == 119);
    /* alignDlib bounds the side by the landmarks' image size + x: 50 + 60 = 110 wide, 30 + 65 =
     * 95 high. */
    fn_recog_aligned_box(pts, 50, 30, box);
    assert_true(box[0] == 60 && box[1] == 65 && box[2] == 110 && box[3] == 95);
    /* Near the top-left corner x and y are clamped at 0 (and the bound becomes the crop size):
     * eyes (10, 10) and (30, 10), mouth (20, 30): distance sqrt(10^2 + 20^2) = 22.361, side 49,
     * centroid (20, 16.667) -> x = max(0, -4.5) = 0, y = max(0, -4.40) = 0. */
    synthetic(pts, (const float[]){10, 10}, (const float[]){30, 10}, (const float[]){20, 30});
    fn_recog_aligned_box(pts, 40, 60, box);
    assert_true(box[0] == 0 && box[1] == 0 && box[2] == 40 && box[3] == 49);
}

static void test_outside_gives_zeros(void **state)
{
    ctx *c = *state;
    fn_image img = {32, 32, calloc(32 * 32 * 3, 1)};
    assert_non_null(img.rgb);
    float pts[68][2], desc[128];
    synthetic(pts, (const float[]){100, 100}, (const float[]){140, 100}, (const float[]){120, 150});
    for (int i = 0; i < 128; i++)
        desc[i] = NAN;
    fn_recog_run(c->rec, &img, pts, c->scratch, desc);
    for (int i = 0; i < 128; i++)
        assert_true(desc[i] == 0.0f);
    /* NaN landmarks (what fn_landmark_run gives for a garbage box): zeros too, no crash. */
    synthetic(pts, (const float[]){NAN, 1}, (const float[]){2, 1}, (const float[]){1, 3});
    desc[0] = NAN;
    fn_recog_run(c->rec, &img, pts, c->scratch, desc);
    for (int i = 0; i < 128; i++)
        assert_true(desc[i] == 0.0f);
    /* A face partly inside: a real, finite descriptor. */
    synthetic(pts, (const float[]){10, 12}, (const float[]){22, 12}, (const float[]){16, 26});
    fn_det d = {2, 2, 28, 28, 1};
    fn_recog_run_det(c->rec, &img, &d, pts, c->scratch, desc);
    double norm = 0;
    for (int i = 0; i < 128; i++) {
        assert_true(isfinite(desc[i]));
        norm += (double)desc[i] * desc[i];
    }
    assert_true(norm > 0);
    free(img.rgb);
}

/* The convs whose packs should carry their weights as bytes (fn_wpack_bytes): where the AVX-512 or
 * AVX2 kernels run, those of 128 channels or more whose floats (3 x 3 x cin x cout) do not fit in
 * half the L2: the 256-channel convs' nine (one of 128 -> 256, eight of 256 -> 256 with the last
 * one's centre pack), and on a 512 KB L2 the 128-channel convs' six (one of 64 -> 128, five of
 * 128 -> 128). */
static int expected_byte_packs(void)
{
    if (!fn_cpu_has_avx512() && !fn_cpu_has_avx2()) return 0;
    const size_t half = fn_cpu_l2_bytes() / 2;
#define BIG(cin, cout) ((size_t)9 * (cin) * (cout) * sizeof(float) > half)
    return BIG(64, 128) + 5 * BIG(128, 128) + BIG(128, 256) + 8 * BIG(256, 256);
#undef BIG
}

/* The packs carry their weights as bytes where expected_byte_packs says; a conv whose filters do
 * not decode from the quantization the manifest gives keeps only its floats, folded as before, and
 * the net still matches the goldens. */
static void test_byte_packs(void **state)
{
    ctx *c = *state;
    const int all = expected_byte_packs();
    assert_int_equal(fn_recog_byte_packs(c->rec), all);
    fn_weights *t = tampered(c->w_rec, "conv256_1/conv1/conv/filters", NULL, 0);
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->t[i].name, "conv256_1/conv1/conv/filters")) {
            t->t[i].shape[0] -= 1; /* tampered() grew it; only the quantization changes here */
            t->t[i].qscale *= 1.001;
        }
    fn_recog_net *n = NULL;
    char err[256];
    assert_int_equal(fn_recog_bind(t, &n, err, sizeof err), 0);
    assert_int_equal(fn_recog_byte_packs(n), all ? all - 1 : 0);
    float *in = load_raw(c->fixtures, "rec_0_input_u8", 150 * 150 * 3);
    normalise(in, 150 * 150);
    float *ref = load_raw(c->fixtures, "rec_0_output", 128), out[128];
    memcpy(c->scratch, in, 150 * 150 * 3 * sizeof(float));
    fn_t3 x = {150, 150, 3, c->scratch};
    fn_recog_forward(n, &x, c->scratch, out);
    const double d = max_abs_diff(out, ref, 128);
    if (!(d <= PARITY_TOL)) fail_msg("without one byte pack: max abs diff %g > %g", d, PARITY_TOL);
    free(ref), free(in);
    fn_recog_free(n);
    free_tampered(t);
}

static void expect_bind_error(const fn_weights *w, const char *needle)
{
    char err[512] = "";
    static int sentinel;
    fn_recog_net *n = (fn_recog_net *)&sentinel; /* bind must reset it */
    assert_int_equal(fn_recog_bind(w, &n, err, sizeof err), FN_ERR_MODEL);
    assert_null(n);
    if (!strstr(err, needle)) fail_msg("error message \"%s\" does not name %s", err, needle);
}

static void test_bind_failures(void **state)
{
    ctx *c = *state;
    fn_weights *t = tampered(c->w_rec, "conv128_1/conv2/scale/biases", "conv128_1/conv2/x", 0);
    expect_bind_error(t, "conv128_1/conv2/scale/biases");
    free_tampered(t);

    t = tampered(c->w_rec, "conv64_down/conv1/conv/filters", NULL, 0);
    expect_bind_error(t, "conv64_down/conv1/conv/filters");
    free_tampered(t);

    t = tampered(c->w_rec, "fc", NULL, 0);
    expect_bind_error(t, "'fc'");
    free_tampered(t);

    expect_bind_error(c->w_lm, "conv32_down");

    char err[128];
    fn_recog_net *n = NULL;
    assert_int_equal(fn_recog_bind(NULL, &n, err, sizeof err), FN_ERR_INVALID);
    assert_null(n);
    fn_recog_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bind_failures),
        cmocka_unit_test(test_align_by_hand),
        cmocka_unit_test(test_outside_gives_zeros),
        cmocka_unit_test(test_raw_parity),
        cmocka_unit_test(test_raw_parity_generic_kernels),
        cmocka_unit_test(test_raw_parity_avx2_kernels),
        cmocka_unit_test(test_batch_parity),
        cmocka_unit_test(test_byte_packs),
        cmocka_unit_test(test_aligned_box),
        cmocka_unit_test(test_preprocessing),
        cmocka_unit_test(test_end_to_end),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
