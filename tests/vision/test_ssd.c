/* test_ssd: the detectors and the whole pipeline against the reference's golden fixtures
 * (tests/fixtures/vision, written by reference/make_goldens.mjs from the pixels our loader
 * decodes).
 *
 * - Preprocessing: our padToSquare + resize of each photo equals the reference's detector input
 *   (subsampled check, 1e-3).
 * - Network parity: given the reference's own input tensor, SsdMobilenetv1's decoded boxes and
 *   scores and TinyFaceDetector's raw output grid match within 1e-3 (absolute), and the detections
 *   on those inputs match the reference's.
 * - End to end (fn_vision_detect_image on the decoded photo, SSD and tiny): every reference face
 *   found with IoU >= 0.9, score within 0.03, landmarks within 2 px, descriptor distance <= 0.03,
 *   no extra face. The worst figures are printed.
 * - Batched descriptors: the pipeline's descriptors, computed several faces per call, equal the
 *   one-face-at-a-time ones to the bit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <unistd.h>
#include <vips/vips.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/vision.h"
#include "vision/models.h"
#include "vision/nets.h"
#include "vision/ops_isa.h"
#include "vision/preprocess.h"

#define NET_TOL 1e-3f

static char fixdir[1024], sampledir[1024];
static fn_models *models;
static json_t *goldens, *index_json;

static void *read_file(const char *dir, const char *name, size_t want)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open fixture %s", path);
    void *buf = malloc(want ? want : 1);
    assert_non_null(buf);
    size_t got = fread(buf, 1, want, f);
    int extra = fgetc(f);
    fclose(f);
    if (got != want || extra != EOF) fail_msg("%s: expected exactly %zu bytes", path, want);
    return buf;
}

static void *raw(const char *name, size_t bytes)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/raw", fixdir);
    return read_file(dir, name, bytes);
}

static int setup(void **state)
{
    (void)state;
    const char *fx = getenv("FACENAMES_TEST_FIXTURES");
    const char *sm = getenv("FACENAMES_SAMPLES");
    snprintf(fixdir, sizeof fixdir, "%s/vision", fx ? fx : "tests/fixtures");
    snprintf(sampledir, sizeof sampledir, "%s",
             sm ? sm : "reference/node_modules/@vladmandic/face-api/demo");
    char err[512], path[1200];
    json_error_t je;
    snprintf(path, sizeof path, "%s/goldens.json", fixdir);
    goldens = json_load_file(path, 0, &je);
    if (!goldens) fail_msg("%s: %s", path, je.text);
    snprintf(path, sizeof path, "%s/raw/index.json", fixdir);
    index_json = json_load_file(path, 0, &je);
    if (!index_json) fail_msg("%s: %s", path, je.text);
    if (fn_models_load(getenv("FACENAMES_MODELS"), FN_MODEL_ALL, &models, err, sizeof err))
        fail_msg("models: %s", err);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fn_models_free(models);
    json_decref(goldens);
    json_decref(index_json);
    return 0;
}

static float max_abs_diff(const float *a, const float *b, size_t n, size_t *at)
{
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m)) {
            m = d;
            if (at) *at = i;
        }
    }
    return m;
}

static double iou(double ax, double ay, double aw, double ah, double bx, double by, double bw,
                  double bh)
{
    double w = fmin(ax + aw, bx + bw) - fmax(ax, bx), h = fmin(ay + ah, by + bh) - fmax(ay, by);
    if (w <= 0 || h <= 0) return 0;
    return w * h / (aw * ah + bw * bh - w * h);
}

/* Our detections vs the reference's list of {score, box}: same count, pairwise IoU and score. */
static void match_dets(const char *what, const fn_det *d, size_t n, json_t *ref, double min_iou,
                       double score_tol)
{
    size_t nr = json_array_size(ref);
    if (n != nr) fail_msg("%s: %zu detections, reference %zu", what, n, nr);
    for (size_t i = 0; i < nr; i++) {
        json_t *r = json_array_get(ref, i), *b = json_object_get(r, "box");
        double rx = json_number_value(json_object_get(b, "x")),
               ry = json_number_value(json_object_get(b, "y")),
               rw = json_number_value(json_object_get(b, "width")),
               rh = json_number_value(json_object_get(b, "height"));
        double best = 0;
        size_t bj = 0;
        for (size_t j = 0; j < n; j++) {
            double v = iou(d[j].x, d[j].y, d[j].w, d[j].h, rx, ry, rw, rh);
            if (v > best) best = v, bj = j;
        }
        double sd = fabs(d[bj].score - json_number_value(json_object_get(r, "score")));
        if (best < min_iou || sd > score_tol)
            fail_msg("%s: reference face %zu: best IoU %.4f, score diff %.4f", what, i, best, sd);
    }
}

/* A photo named in the fixtures: the sample folder's, else the fixture folder's own. */
static void image_path(const char *file, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", sampledir, file);
    FILE *f = fopen(buf, "rb");
    if (f) {
        fclose(f);
        return;
    }
    snprintf(buf, len, "%s/%s", fixdir, file);
}

/* Every "pre_*" tensor: the reference's detector input (float, subsampled by 8) of a photo. */
static void test_ssd_preprocess(void **state)
{
    (void)state;
    json_t *tensors = json_object_get(index_json, "tensors"), *t;
    size_t i, checked = 0;
    json_array_foreach(tensors, i, t)
    {
        const char *name = json_string_value(json_object_get(t, "name"));
        if (!name || strncmp(name, "pre_", 4)) continue;
        const char *image = json_string_value(json_object_get(t, "image"));
        int s = (int)json_integer_value(json_object_get(t, "input_size"));
        json_t *shape = json_object_get(t, "shape");
        int ns = (int)json_integer_value(json_array_get(shape, 0));
        assert_non_null(image);
        assert_true(s > 0 && ns == (s + 7) / 8);
        char path[1200], err[256];
        image_path(image, path, sizeof path);
        fn_image img;
        if (fn_image_load(path, NULL, &img, NULL, err, sizeof err)) fail_msg("%s", err);
        fn_t3 in = {s, s, 3, malloc(sizeof(float) * s * s * 3)};
        fn_pad_resize_region(&img, 0, 0, img.width, img.height, 0, s, &in);
        float *ref =
            raw(json_string_value(json_object_get(t, "file")), sizeof(float) * ns * ns * 3);
        float worst = 0;
        for (int y = 0; y < ns; y++)
            for (int x = 0; x < ns; x++)
                for (int ch = 0; ch < 3; ch++) {
                    float d = fabsf(in.d[((size_t)y * 8 * s + x * 8) * 3 + ch] -
                                    ref[((size_t)y * ns + x) * 3 + ch]);
                    if (d > worst) worst = d;
                }
        print_message("%s (%s %dx%d -> %d): max abs diff %g\n", name, image, img.width, img.height,
                      s, worst);
        if (worst > NET_TOL) fail_msg("%s: resize differs by %g", name, worst);
        free(ref), free(in.d);
        fn_image_free(&img);
        checked++;
    }
    assert_true(checked >= 2);
}

static void test_ssd_raw(void **state)
{
    (void)state;
    const size_t na = 5118;
    float *scratch = malloc(sizeof(float) * fn_ssd_scratch_floats());
    float *boxes = malloc(sizeof(float) * na * 4), *scores = malloc(sizeof(float) * na);
    json_t *cases = json_object_get(index_json, "cases");
    for (int k = 0; k < 2; k++) {
        char name[64];
        snprintf(name, sizeof name, "ssd_%d_input_u8.bin", k);
        uint8_t *u8 = raw(name, 512 * 512 * 3);
        fn_t3 in = {512, 512, 3, malloc(sizeof(float) * 512 * 512 * 3)};
        for (size_t i = 0; i < 512 * 512 * 3; i++)
            in.d[i] = (float)(u8[i] / 127.5) - 1.0f;
        snprintf(name, sizeof name, "ssd_%d_boxes.bin", k);
        float *rb = raw(name, sizeof(float) * na * 4);
        snprintf(name, sizeof name, "ssd_%d_scores.bin", k);
        float *rs = raw(name, sizeof(float) * na);
        /* Every kernel path: the portable one (any x86-64), AVX2 where it is not what this CPU
         * runs by default (an AVX-512 CPU: elsewhere it is that default or not there), and the
         * one this CPU runs by default. */
        static const int isas[] = {FN_ISA_GENERIC, FN_ISA_AVX2, -1};
        static const char *isa_names[] = {"generic", "AVX2", "dispatched"};
        for (int isa = 0; isa < 3; isa++) {
            if (isas[isa] == FN_ISA_AVX2 && !fn_avx2_beside_default()) continue;
            fn_ops_set_isa(isas[isa]);
            fn_ssd_forward(models->ssd, &in, scratch, boxes, scores);
            size_t at = 0;
            float db = max_abs_diff(boxes, rb, na * 4, &at),
                  ds = max_abs_diff(scores, rs, na, NULL);
            print_message("ssd_%d raw (%s kernels): boxes max abs diff %g (at %zu), scores %g\n", k,
                          isa_names[isa], db, at, ds);
            if (db > NET_TOL || ds > NET_TOL) fail_msg("ssd_%d: boxes %g, scores %g", k, db, ds);
        }

        /* Detections on that exact input (the reference's locateFaces on the 512x512 tensor). */
        fn_image img = {512, 512, u8};
        fn_det d[100];
        size_t n = fn_ssd_detect(models->ssd, &img, 0.5f, scratch, d, 100);
        snprintf(name, sizeof name, "ssd_%d", k);
        match_dets(name, d, n, json_object_get(json_object_get(cases, name), "detections_on_input"),
                   0.999, 1e-3);
        free(u8), free(in.d), free(rb), free(rs);
    }
    free(scratch), free(boxes), free(scores);
}

/* Every "tiny_*" case: its input (a uint8 tensor file, maybe a crop of it), the raw grid and the
 * detections on that input. */
static void test_tiny_raw(void **state)
{
    (void)state;
    static const float mean[3] = {117.001f, 114.697f, 97.404f};
    json_t *cases = json_object_get(index_json, "cases"), *c;
    const char *key;
    size_t checked = 0;
    json_object_foreach(cases, key, c)
    {
        if (strncmp(key, "tiny_", 5)) continue;
        json_t *input = json_object_get(c, "input"), *shape = json_object_get(input, "shape");
        json_t *crop = json_object_get(input, "crop");
        int s = (int)json_integer_value(json_object_get(c, "input_size")), g = s / 32;
        int fh = (int)json_integer_value(json_array_get(shape, 0));
        int fw = (int)json_integer_value(json_array_get(shape, 1));
        int cx = crop ? (int)json_integer_value(json_object_get(crop, "x")) : 0;
        int cy = crop ? (int)json_integer_value(json_object_get(crop, "y")) : 0;
        assert_true(s > 0 && s % 32 == 0);
        assert_true(cx + s <= fw && cy + s <= fh);
        uint8_t *file = raw(json_string_value(json_object_get(input, "file")), (size_t)fh * fw * 3);
        uint8_t *u8 = malloc((size_t)s * s * 3);
        for (int y = 0; y < s; y++)
            memcpy(u8 + (size_t)y * s * 3, file + ((size_t)(cy + y) * fw + cx) * 3, (size_t)s * 3);
        fn_t3 in = {s, s, 3, malloc(sizeof(float) * s * s * 3)};
        for (size_t i = 0; i < (size_t)s * s * 3; i++)
            in.d[i] = (u8[i] - mean[i % 3]) / 255.0f;
        float *scratch = malloc(sizeof(float) * fn_tiny_scratch_floats(s));
        float *out = malloc(sizeof(float) * g * g * 25);
        fn_tiny_forward(models->tiny, &in, scratch, out);
        char name[64];
        snprintf(name, sizeof name, "%s_output.bin", key);
        float *ref = raw(name, sizeof(float) * g * g * 25);
        float d = max_abs_diff(out, ref, (size_t)g * g * 25, NULL);
        print_message("%s raw (%d): output max abs diff %g\n", key, s, d);
        if (d > NET_TOL) fail_msg("%s: output differs by %g", key, d);

        fn_image img = {s, s, u8};
        fn_det dets[100];
        size_t n = fn_tiny_detect(models->tiny, &img, s, 0.5f, scratch, dets, 100);
        match_dets(key, dets, n, json_object_get(c, "detections_on_input"), 0.999, 1e-3);
        free(file), free(u8), free(in.d), free(out), free(ref), free(scratch);
        checked++;
    }
    assert_true(checked >= 1);
}

typedef struct worst {
    double iou, score, lm, desc;
} worst;

static void check_faces(const char *what, const fn_faces *f, json_t *ref, int tiny_lm, worst *w)
{
    size_t nr = json_array_size(ref);
    if (f->n != nr) fail_msg("%s: %zu faces, reference %zu", what, f->n, nr);
    for (size_t i = 0; i < nr; i++) {
        json_t *r = json_array_get(ref, i), *b = json_object_get(r, "box");
        double rx = json_number_value(json_object_get(b, "x")),
               ry = json_number_value(json_object_get(b, "y")),
               rw = json_number_value(json_object_get(b, "width")),
               rh = json_number_value(json_object_get(b, "height"));
        double best = 0;
        size_t bj = 0;
        for (size_t j = 0; j < f->n; j++) {
            const fn_face *o = &f->faces[j];
            double v = iou(o->x, o->y, o->width, o->height, rx, ry, rw, rh);
            if (v > best) best = v, bj = j;
        }
        const fn_face *o = &f->faces[bj];
        double sd = fabs(o->score - json_number_value(json_object_get(r, "score")));
        json_t *lms = json_object_get(r, tiny_lm ? "landmarks_tiny" : "landmarks");
        double lmd = 0;
        for (int k = 0; k < 68; k++) {
            json_t *p = json_array_get(lms, k);
            double dx = o->landmarks[k][0] - json_number_value(json_array_get(p, 0));
            double dy = o->landmarks[k][1] - json_number_value(json_array_get(p, 1));
            lmd = fmax(lmd, sqrt(dx * dx + dy * dy));
        }
        double dd = 0;
        if (!tiny_lm) {
            json_t *desc = json_object_get(r, "descriptor");
            float rd[128];
            for (int k = 0; k < 128; k++)
                rd[k] = (float)json_number_value(json_array_get(desc, k));
            dd = fn_descriptor_distance(o->descriptor, rd);
        }
        w->iou = fmin(w->iou, best);
        w->score = fmax(w->score, sd);
        w->lm = fmax(w->lm, lmd);
        w->desc = fmax(w->desc, dd);
        if (best < 0.9 || sd > 0.03 || lmd > 2.0 || dd > 0.03)
            fail_msg("%s face %zu: IoU %.4f, score diff %.4f, landmarks %.3f px, descriptor %.4f",
                     what, i, best, sd, lmd, dd);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void test_end_to_end(void **state)
{
    (void)state;
    fn_vision *v;
    assert_int_equal(fn_vision_new(models, &v), 0);
    json_t *images = json_object_get(goldens, "images");
    worst ws = {1, 0, 0, 0}, wt = {1, 0, 0, 0}, wtl = {1, 0, 0, 0};
    size_t nfaces = 0, nfast = 0;
    double fast_desc[64], fast_iou = 1;
    for (size_t i = 0; i < json_array_size(images); i++) {
        json_t *im = json_array_get(images, i);
        const char *file = json_string_value(json_object_get(im, "file"));
        char path[1200], err[256];
        image_path(file, path, sizeof path);
        fn_image img;
        if (fn_image_load(path, NULL, &img, NULL, err, sizeof err)) fail_msg("%s", err);
        assert_int_equal(img.width, json_integer_value(json_object_get(im, "width")));
        assert_int_equal(img.height, json_integer_value(json_object_get(im, "height")));
        fn_detect_opts o;
        fn_faces f;
        fn_detect_opts_default(&o);
        if (fn_vision_detect_image(v, &img, &o, &f, err, sizeof err)) fail_msg("%s", err);
        check_faces(file, &f, json_object_get(im, "faces_ssd"), 0, &ws);
        nfaces += f.n;
        o.detector = FN_DETECTOR_TINY;
        if (fn_vision_detect_image(v, &img, &o, &f, err, sizeof err)) fail_msg("%s", err);
        check_faces(file, &f, json_object_get(im, "faces_tiny"), 0, &wt);
        o.landmarks = 2;
        o.descriptors = 0;
        if (fn_vision_detect_image(v, &img, &o, &f, err, sizeof err)) fail_msg("%s", err);
        check_faces(file, &f, json_object_get(im, "faces_tiny"), 1, &wtl);
        fn_image_free(&img);

        /* The fast path on the original file: the same faces (IoU >= 0.8), descriptor distances
         * to the reference reported. */
        fn_detect_opts_default(&o);
        if (fn_vision_detect_file(v, path, &o, &f, err, sizeof err)) fail_msg("%s", err);
        json_t *ref = json_object_get(im, "faces_ssd");
        if (f.n != json_array_size(ref))
            fail_msg("%s fast path: %zu faces, reference %zu", file, f.n, json_array_size(ref));
        for (size_t k = 0; k < json_array_size(ref); k++) {
            json_t *r = json_array_get(ref, k), *b = json_object_get(r, "box");
            double best = 0;
            size_t bj = 0;
            for (size_t j = 0; j < f.n; j++) {
                double q = iou(f.faces[j].x, f.faces[j].y, f.faces[j].width, f.faces[j].height,
                               json_number_value(json_object_get(b, "x")),
                               json_number_value(json_object_get(b, "y")),
                               json_number_value(json_object_get(b, "width")),
                               json_number_value(json_object_get(b, "height")));
                if (q > best) best = q, bj = j;
            }
            float rd[128];
            for (int q = 0; q < 128; q++)
                rd[q] =
                    (float)json_number_value(json_array_get(json_object_get(r, "descriptor"), q));
            if (nfast < 64) fast_desc[nfast++] = fn_descriptor_distance(f.faces[bj].descriptor, rd);
            fast_iou = fmin(fast_iou, best);
            if (best < 0.8)
                fail_msg("%s fast path: reference face %zu best IoU %.3f", file, k, best);
        }
    }
    qsort(fast_desc, nfast, sizeof fast_desc[0], cmp_double);
    print_message("fast path (detect_file), %zu faces: min IoU %.4f, descriptor distance to the "
                  "reference median %.4f, worst %.4f\n",
                  nfast, fast_iou, nfast ? fast_desc[nfast / 2] : 0.0,
                  nfast ? fast_desc[nfast - 1] : 0.0);
    print_message("end to end, %zu SSD faces: min IoU %.4f, max score diff %.5f, max landmark "
                  "%.3f px, max descriptor distance %.5f\n",
                  nfaces, ws.iou, ws.score, ws.lm, ws.desc);
    print_message("end to end, tiny: min IoU %.4f, max score diff %.5f, max landmark %.3f px, "
                  "max descriptor distance %.5f; tiny landmarks %.3f px\n",
                  wt.iou, wt.score, wt.lm, wt.desc, wtl.lm);
    fn_vision_free(v);
}

static void test_bad_args(void **state)
{
    (void)state;
    fn_vision *v;
    char err[256];
    fn_faces f;
    fn_detect_opts o;
    fn_detect_opts_default(&o);
    assert_int_equal(fn_vision_new(NULL, &v), FN_ERR_INVALID);
    assert_int_equal(fn_vision_new(models, &v), 0);
    fn_image empty = {0, 0, NULL};
    assert_int_equal(fn_vision_detect_image(v, &empty, &o, &f, err, sizeof err), FN_ERR_INVALID);
    o.detector = FN_DETECTOR_TINY;
    o.tiny_input_size = 100;
    uint8_t px[3 * 64 * 64] = {0};
    fn_image small = {64, 64, px};
    assert_int_equal(fn_vision_detect_image(v, &small, &o, &f, err, sizeof err), FN_ERR_INVALID);
    fn_detect_opts_default(&o);
    o.min_confidence = 1.0f;
    assert_int_equal(fn_vision_detect_image(v, &small, &o, &f, err, sizeof err), FN_ERR_INVALID);
    fn_detect_opts_default(&o);
    o.landmarks = 0; /* descriptors need landmarks */
    assert_int_equal(fn_vision_detect_image(v, &small, &o, &f, err, sizeof err), FN_ERR_INVALID);
    o.descriptors = 0;
    assert_int_equal(fn_vision_detect_image(v, &small, &o, &f, err, sizeof err), 0);
    assert_int_equal(f.n, 0);
    assert_int_equal(fn_vision_detect_file(v, "/nonexistent/x.jpg", &o, &f, err, sizeof err),
                     FN_ERR_NOT_FOUND);
    fn_vision_free(v);
    fn_vision_free(NULL);
    float a[128] = {0}, b[128] = {0};
    b[3] = 3, b[7] = 4;
    assert_true(fabsf(fn_descriptor_distance(a, b) - 5.0f) < 1e-6f);
}

/* The fast path on a photo larger than the useful resolution: sample1 upscaled to 4000 px wide
 * (a JPEG written here with libvips) is decoded with shrink-on-load, and the faces must still be
 * the reference's (scaled): IoU >= 0.8; descriptor distances printed. */
static void test_fast_path_large(void **state)
{
    (void)state;
    char src[1200], tmp[] = "/tmp/fn_test_ssd_XXXXXX.jpg", err[256];
    image_path("sample1.jpg", src, sizeof src);
    int fd = mkstemps(tmp, 4);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(fn_vision_init(), 0);
    VipsImage *in = vips_image_new_from_file(src, NULL), *big = NULL;
    assert_non_null(in);
    const double scale = 4000.0 / 1920.0;
    assert_int_equal(vips_resize(in, &big, scale, NULL), 0);
    assert_int_equal(vips_jpegsave(big, tmp, "Q", 95, NULL), 0);
    g_object_unref(big);
    g_object_unref(in);

    fn_vision *v;
    fn_faces f;
    fn_detect_opts o;
    fn_detect_opts_default(&o);
    assert_int_equal(fn_vision_new(models, &v), 0);
    int rc = fn_vision_detect_file(v, tmp, &o, &f, err, sizeof err);
    unlink(tmp);
    if (rc) fail_msg("%s", err);
    assert_int_equal(f.width, 4000);
    json_t *ref =
        json_object_get(json_array_get(json_object_get(goldens, "images"), 0), "faces_ssd");
    assert_int_equal(f.n, json_array_size(ref));
    double worst_iou = 1, worst_d = 0, worst_lm = 0;
    for (size_t k = 0; k < json_array_size(ref); k++) {
        json_t *r = json_array_get(ref, k), *b = json_object_get(r, "box");
        double best = 0;
        size_t bj = 0;
        for (size_t j = 0; j < f.n; j++) {
            double q = iou(f.faces[j].x, f.faces[j].y, f.faces[j].width, f.faces[j].height,
                           scale * json_number_value(json_object_get(b, "x")),
                           scale * json_number_value(json_object_get(b, "y")),
                           scale * json_number_value(json_object_get(b, "width")),
                           scale * json_number_value(json_object_get(b, "height")));
            if (q > best) best = q, bj = j;
        }
        float rd[128];
        for (int q = 0; q < 128; q++)
            rd[q] = (float)json_number_value(json_array_get(json_object_get(r, "descriptor"), q));
        json_t *lms = json_object_get(r, "landmarks");
        for (int q = 0; q < 68; q++) {
            json_t *p = json_array_get(lms, q);
            double dx =
                f.faces[bj].landmarks[q][0] / scale - json_number_value(json_array_get(p, 0));
            double dy =
                f.faces[bj].landmarks[q][1] / scale - json_number_value(json_array_get(p, 1));
            worst_lm = fmax(worst_lm, sqrt(dx * dx + dy * dy));
        }
        worst_iou = fmin(worst_iou, best);
        worst_d = fmax(worst_d, fn_descriptor_distance(f.faces[bj].descriptor, rd));
    }
    print_message("fast path on sample1 upscaled to 4000 px: min IoU %.4f, worst landmark %.2f px "
                  "(1920 px scale), worst descriptor distance %.4f\n",
                  worst_iou, worst_lm, worst_d);
    if (worst_iou < 0.8) fail_msg("fast path: IoU %.3f", worst_iou);
    fn_vision_free(v);
}

/* Workers share one fn_models, each with its own fn_vision: two threads at once must give exactly
 * the single-threaded results (the networks are read-only after binding). */
typedef struct worker_arg {
    const fn_image *img;
    fn_face faces[16];
    size_t n;
    int rc;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    fn_vision *v;
    fn_faces f;
    fn_detect_opts o;
    char err[256];
    fn_detect_opts_default(&o);
    a->rc = fn_vision_new(models, &v);
    for (int r = 0; r < 2 && a->rc == 0; r++)
        a->rc = fn_vision_detect_image(v, a->img, &o, &f, err, sizeof err);
    if (a->rc == 0) {
        a->n = f.n < 16 ? f.n : 16;
        memcpy(a->faces, f.faces, a->n * sizeof(fn_face));
    }
    fn_vision_free(v);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    char path[1200], err[256];
    image_path("sample1.jpg", path, sizeof path);
    fn_image img;
    if (fn_image_load(path, NULL, &img, NULL, err, sizeof err)) fail_msg("%s", err);
    static worker_arg solo, a[2];
    solo.img = a[0].img = a[1].img = &img;
    worker(&solo);
    assert_int_equal(solo.rc, 0);
    assert_true(solo.n > 0);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, &a[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].rc, 0);
        assert_int_equal(a[i].n, solo.n);
        for (size_t k = 0; k < solo.n; k++) {
            assert_memory_equal(&a[i].faces[k].x, &solo.faces[k].x, 5 * sizeof(float));
            assert_memory_equal(a[i].faces[k].landmarks, solo.faces[k].landmarks,
                                sizeof solo.faces[k].landmarks);
            assert_memory_equal(a[i].faces[k].descriptor, solo.faces[k].descriptor,
                                sizeof solo.faces[k].descriptor);
        }
    }
    fn_image_free(&img);
}

/* Mean absolute difference per channel value between a face's JPEG thumbnail and libvips'
 * lanczos3 resize of the same square crop (the box grown by 1.2 around its centre, clipped) of the
 * full-size photo: the thumbnail must show that part of the photo, the right way round. */
static double thumb_error(const fn_image *full, const fn_face *face)
{
    double side = fmax(face->width, face->height) * 1.2;
    double cx = face->x + face->width / 2, cy = face->y + face->height / 2;
    int x0 = (int)fmax(floor(cx - side / 2), 0), y0 = (int)fmax(floor(cy - side / 2), 0);
    int x1 = (int)fmin(ceil(cx + side / 2), full->width);
    int y1 = (int)fmin(ceil(cy + side / 2), full->height);
    char err[256];
    fn_image t;
    assert_int_equal(fn_image_load_buffer(face->thumb_jpeg, face->thumb_len, "thumb", NULL, &t,
                                          NULL, err, sizeof err),
                     0);
    VipsImage *base = vips_image_new_from_memory(full->rgb, (size_t)full->width * full->height * 3,
                                                 full->width, full->height, 3, VIPS_FORMAT_UCHAR);
    VipsImage *crop = NULL, *want = NULL;
    assert_int_equal(vips_crop(base, &crop, x0, y0, x1 - x0, y1 - y0, NULL), 0);
    assert_int_equal(vips_resize(crop, &want, (double)t.width / (x1 - x0), "vscale",
                                 (double)t.height / (y1 - y0), NULL),
                     0);
    size_t len = 0;
    uint8_t *w = vips_image_write_to_memory(want, &len);
    assert_int_equal(len, (size_t)t.width * t.height * 3);
    double sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += fabs((double)w[i] - t.rgb[i]);
    g_free(w);
    g_object_unref(want);
    g_object_unref(crop);
    g_object_unref(base);
    fn_image_free(&t);
    return sum / (double)len;
}

/* Thumbnails show their face: shrunk (64 px, from faces of about 200 px) and enlarged (512 px). */
static void test_thumbnails(void **state)
{
    (void)state;
    fn_vision *v;
    char err[256], path[1200];
    fn_faces f;
    fn_detect_opts o;
    snprintf(path, sizeof path, "%s/sample1.jpg", sampledir);
    fn_image full;
    assert_int_equal(fn_image_load(path, NULL, &full, NULL, err, sizeof err), 0);
    assert_int_equal(fn_vision_new(models, &v), 0);
    fn_detect_opts_default(&o);
    static const int sizes[] = {64, 512};
    for (int k = 0; k < 2; k++) {
        o.thumb_size = sizes[k];
        assert_int_equal(fn_vision_detect_file(v, path, &o, &f, err, sizeof err), 0);
        assert_true(f.n >= 2);
        for (size_t i = 0; i < f.n; i++) {
            double e = thumb_error(&full, &f.faces[i]);
            /* Measured 1.4-3.7 (JPEG at Q85; a box or bilinear filter, not lanczos3); the
             * neighbouring face gives 33 and more. */
            assert_true(e < 10.0);
            if (i + 1 < f.n) {
                fn_face other = f.faces[i + 1];
                other.thumb_jpeg = f.faces[i].thumb_jpeg;
                other.thumb_len = f.faces[i].thumb_len;
                assert_true(thumb_error(&full, &other) > 15.0);
            }
        }
    }
    fn_image_free(&full);
    fn_vision_free(v);
}

/* min_face_size filtering, thumbnails, landmarks off, on the fast path. */
static void test_options(void **state)
{
    (void)state;
    fn_vision *v;
    char err[256], path[1200];
    fn_faces f;
    fn_detect_opts o;
    snprintf(path, sizeof path, "%s/sample1.jpg", sampledir);
    assert_int_equal(fn_vision_new(models, &v), 0);
    fn_detect_opts_default(&o);
    o.landmarks = 0;
    o.descriptors = 0;
    assert_int_equal(fn_vision_detect_file(v, path, &o, &f, err, sizeof err), 0);
    size_t all = f.n;
    assert_true(all >= 2);
    assert_int_equal(f.skipped_small, 0);
    assert_int_equal(f.width, 1920);
    assert_int_equal(f.height, 1280);
    float smallest = 1e9f, largest = 0;
    for (size_t i = 0; i < f.n; i++) {
        float side = fminf(f.faces[i].width, f.faces[i].height);
        smallest = fminf(smallest, side);
        largest = fmaxf(largest, side);
        assert_true(f.faces[i].landmarks[10][0] == 0.0f); /* not computed */
    }
    o.min_face_size = (int)largest + 1;
    assert_int_equal(fn_vision_detect_file(v, path, &o, &f, err, sizeof err), 0);
    assert_int_equal(f.n, 0);
    assert_int_equal(f.skipped_small, all);
    if (largest - smallest >= 2) {
        o.min_face_size = (int)ceilf(smallest) + 1;
        assert_int_equal(fn_vision_detect_file(v, path, &o, &f, err, sizeof err), 0);
        assert_true(f.n >= 1 && f.skipped_small >= 1);
        assert_int_equal(f.n + f.skipped_small, all);
    }
    o.min_face_size = 0;
    o.thumb_size = 64;
    assert_int_equal(fn_vision_detect_file(v, path, &o, &f, err, sizeof err), 0);
    assert_int_equal(f.n, all);
    for (size_t i = 0; i < f.n; i++) {
        assert_non_null(f.faces[i].thumb_jpeg);
        assert_true(f.faces[i].thumb_len > 100);
        assert_int_equal(f.faces[i].thumb_jpeg[0], 0xff);
        assert_int_equal(f.faces[i].thumb_jpeg[1], 0xd8);
        fn_image t;
        assert_int_equal(fn_image_load_buffer(f.faces[i].thumb_jpeg, f.faces[i].thumb_len, "thumb",
                                              NULL, &t, NULL, err, sizeof err),
                         0);
        assert_true(t.width <= 64 && t.height <= 64 && (t.width == 64 || t.height == 64));
        fn_image_free(&t);
    }
    /* The next call releases the thumbnails it does not produce. */
    o.thumb_size = 0;
    assert_int_equal(fn_vision_detect_file(v, path, &o, &f, err, sizeof err), 0);
    for (size_t i = 0; i < f.n; i++)
        assert_null(f.faces[i].thumb_jpeg);
    fn_vision_free(v);
}

/* The pipeline's batched descriptors (fn_recog_forward_batch, several faces per call) equal, to
 * the bit, the one-face-at-a-time fn_recog_run_det on each face's detection and landmarks: on
 * every sample photo, and on a mosaic of all six at half size with tiled detection, which has more
 * faces than one batch holds (full batches and a remainder). */
static void check_batched(fn_vision *v, const fn_image *img, const fn_detect_opts *o,
                          const char *what, size_t min_faces)
{
    char err[256];
    fn_faces f;
    if (fn_vision_detect_image(v, img, o, &f, err, sizeof err)) fail_msg("%s", err);
    if (f.n < min_faces) fail_msg("%s: %zu faces, want at least %zu", what, f.n, min_faces);
    float *scratch = malloc(fn_recog_scratch_floats() * sizeof(float));
    assert_non_null(scratch);
    for (size_t k = 0; k < f.n; k++) {
        const fn_face *fc = &f.faces[k];
        fn_det d = {fc->x, fc->y, fc->width, fc->height, fc->score};
        float one[128];
        fn_recog_run_det(models->recognition, img, &d, fc->landmarks, scratch, one);
        if (memcmp(one, fc->descriptor, sizeof one))
            fail_msg("%s face %zu: batched descriptor differs from the one-face one", what, k);
    }
    print_message("%s: %zu faces, batched descriptors equal to one at a time\n", what, f.n);
    free(scratch);
}

static void test_batched_descriptors(void **state)
{
    (void)state;
    fn_vision *v;
    assert_int_equal(fn_vision_new(models, &v), 0);
    fn_detect_opts o;
    fn_detect_opts_default(&o);
    fn_image half[6];
    int cw = 0, ch = 0;
    char path[1200], err[256], name[32];
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "sample%d.jpg", i + 1);
        image_path(name, path, sizeof path);
        fn_image img;
        if (fn_image_load(path, NULL, &img, NULL, err, sizeof err)) fail_msg("%s", err);
        check_batched(v, &img, &o, name, 1);
        /* Halved by 2x2 means, for the mosaic. */
        half[i].width = img.width / 2;
        half[i].height = img.height / 2;
        half[i].rgb = malloc((size_t)half[i].width * half[i].height * 3);
        assert_non_null(half[i].rgb);
        for (int y = 0; y < half[i].height; y++)
            for (int x = 0; x < half[i].width; x++)
                for (int c = 0; c < 3; c++) {
                    const uint8_t *p = img.rgb + ((size_t)(2 * y) * img.width + 2 * x) * 3 + c;
                    const size_t row = (size_t)img.width * 3;
                    half[i].rgb[((size_t)y * half[i].width + x) * 3 + c] =
                        (uint8_t)((p[0] + p[3] + p[row] + p[row + 3] + 2) / 4);
                }
        if (half[i].width > cw) cw = half[i].width;
        if (half[i].height > ch) ch = half[i].height;
        fn_image_free(&img);
    }
    fn_image mosaic = {3 * cw, 2 * ch, calloc((size_t)3 * cw * 2 * ch, 3)};
    assert_non_null(mosaic.rgb);
    memset(mosaic.rgb, 128, (size_t)3 * cw * 2 * ch * 3);
    for (int i = 0; i < 6; i++) {
        const int x0 = (i % 3) * cw, y0 = (i / 3) * ch;
        for (int y = 0; y < half[i].height; y++)
            memcpy(mosaic.rgb + ((size_t)(y0 + y) * mosaic.width + x0) * 3,
                   half[i].rgb + (size_t)y * half[i].width * 3, (size_t)half[i].width * 3);
        free(half[i].rgb);
    }
    o.tiles = FN_DETECT_TILES_ON;
    /* The six samples hold 21 faces; at least 17 makes two full batches of 8 and a remainder. */
    check_batched(v, &mosaic, &o, "mosaic", 17);
    free(mosaic.rgb);
    fn_vision_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thumbnails), cmocka_unit_test(test_ssd_preprocess),
        cmocka_unit_test(test_ssd_raw),    cmocka_unit_test(test_tiny_raw),
        cmocka_unit_test(test_end_to_end), cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_options),    cmocka_unit_test(test_fast_path_large),
        cmocka_unit_test(test_threads),    cmocka_unit_test(test_batched_descriptors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
