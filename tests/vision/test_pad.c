/* test_pad: padding before detection (fn_detect_opts.pad) and tiled detection (.tiles).
 *
 * Padding, on tight portrait crops made from the reference goldens' faces (each SsdMobilenetv1 face
 * of the samples and the portrait cut exactly to its box and resized to 150 px, as
 * bench/bench_recall makes its "tight150" set).
 *
 * - The default (FN_DETECT_PAD_RETRY) finds at least PAD_MIN_FOUND of them where padding is off
 *   (the reference's behaviour) finds about one in six, each box inside the crop and on the face
 *   (IoU >= 0.4 with the golden box mapped into the crop).
 * - Parity: wherever the plain pass finds a face, the default's faces are exactly the plain ones.
 * - No new false faces: squares of the samples away from every face give none, padded or not.
 * - The fast path (fn_vision_detect_file) maps the boxes back through the padding and the
 *   shrink-on-load: a tight crop enlarged to 3000 px gives its face in the file's coordinates.
 * - Tiles: a face of sample2 pasted 90 px wide into sample1 enlarged 2.5x (a 4800 px "group
 *   photo", as bench/bench_recall's group set) is found with tiles on and not without, and the
 *   whole-photo faces come out unchanged (also with the auto mode).
 * - The auto mode tiles a large photo of small faces (sample1 at half size in a 6000 px canvas,
 *   as tasks/ingest's test_detect_tiles makes it): the faces tiles on finds, none of which the
 *   whole pass finds.
 * - The auto mode's rule (fn_tiles_auto_pays) on constructed detections: a small photo never
 *   tiles; a large one tiles when its pass found a small face or left a weak small candidate, and
 *   not when it found only large faces.
 * - Parity of the auto mode where tiles do not pay: on the six samples as they are and on sample1
 *   enlarged to 4000 px (large photos whose faces the whole pass finds), auto gives exactly what
 *   off gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vips/vips.h>

#include "facenames/vision.h"
#include "vision/nets.h"
#include "vision/preprocess.h"
#include "vision/tiles.h"

/* Measured with bench/bench_recall on these 24 crops (README, "Tight portrait crops"); see
 * test_tight_crops. */
#define PAD_MIN_FOUND 22
#define MATCH_IOU     0.4

static char fixdir[1024], sampledir[1024];
static fn_models *models;
static json_t *goldens;

typedef struct box {
    double x, y, w, h;
} box;

static double iou(box a, box b)
{
    double w = fmin(a.x + a.w, b.x + b.w) - fmax(a.x, b.x);
    double h = fmin(a.y + a.h, b.y + b.h) - fmax(a.y, b.y);
    if (w <= 0 || h <= 0) return 0;
    return w * h / (a.w * a.h + b.w * b.h - w * h);
}

static box golden_box(json_t *face)
{
    json_t *b = json_object_get(face, "box");
    return (box){json_number_value(json_object_get(b, "x")),
                 json_number_value(json_object_get(b, "y")),
                 json_number_value(json_object_get(b, "width")),
                 json_number_value(json_object_get(b, "height"))};
}

static void image_path(const char *file, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", sampledir, file);
    if (access(buf, R_OK) == 0) return;
    snprintf(buf, len, "%s/%s", fixdir, file);
}

/* The region r of img (clipped to it) resized so its longer side is `side` pixels; *at and *scale
 * say where a box of img lands: (x - at.x) * scale. */
static void crop_resize(const fn_image *img, box r, int side, fn_image *out, box *at, double *scale)
{
    int x = (int)floor(fmax(r.x, 0)), y = (int)floor(fmax(r.y, 0));
    int x1 = (int)ceil(fmin(r.x + r.w, img->width)), y1 = (int)ceil(fmin(r.y + r.h, img->height));
    VipsImage *base = vips_image_new_from_memory(img->rgb, (size_t)img->width * img->height * 3,
                                                 img->width, img->height, 3, VIPS_FORMAT_UCHAR);
    VipsImage *c = NULL, *s = NULL;
    double f = (double)side / (x1 - x > y1 - y ? x1 - x : y1 - y);
    assert_int_equal(vips_crop(base, &c, x, y, x1 - x, y1 - y, NULL), 0);
    assert_int_equal(vips_resize(c, &s, f, NULL), 0);
    size_t len;
    out->width = vips_image_get_width(s);
    out->height = vips_image_get_height(s);
    out->rgb = vips_image_write_to_memory(s, &len);
    assert_non_null(out->rgb);
    g_object_unref(s);
    g_object_unref(c);
    g_object_unref(base);
    *at = (box){x, y, x1 - x, y1 - y};
    *scale = f;
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
    if (fn_models_load(getenv("FACENAMES_MODELS"),
                       FN_MODEL_SSD | FN_MODEL_LANDMARKS | FN_MODEL_RECOGNITION, &models, err,
                       sizeof err))
        fail_msg("models: %s", err);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fn_models_free(models);
    json_decref(goldens);
    return 0;
}

/* Returns 1 when a face of f matches `want`. With `padded` (the faces come from the padded pass)
 * every face must also lie inside the w x h image: mapped back and clipped. (The plain pass
 * keeps the reference's unclipped boxes.) */
static int check_found(const fn_faces *f, int w, int h, box want, int padded, const char *what)
{
    int found = 0;
    for (size_t i = 0; i < f->n; i++) {
        const fn_face *fc = &f->faces[i];
        if (padded && !(fc->x >= 0 && fc->y >= 0 && fc->x + fc->width <= w + 1e-3 &&
                        fc->y + fc->height <= h + 1e-3 && fc->width > 0 && fc->height > 0))
            fail_msg("%s: face %zu (%.1f %.1f %.1f %.1f) is not inside the %dx%d image", what, i,
                     fc->x, fc->y, fc->width, fc->height, w, h);
        for (int k = 0; k < 68; k++)
            if (!isfinite(fc->landmarks[k][0]) || !isfinite(fc->landmarks[k][1]))
                fail_msg("%s: face %zu has a landmark that is not finite", what, i);
        if (iou((box){fc->x, fc->y, fc->width, fc->height}, want) >= MATCH_IOU) found = 1;
    }
    return found;
}

static void test_tight_crops(void **state)
{
    (void)state;
    fn_vision *v;
    assert_int_equal(fn_vision_new(models, &v), 0);
    json_t *images = json_object_get(goldens, "images");
    int total = 0, found_off = 0, found_pad = 0;
    for (size_t i = 0; i < json_array_size(images); i++) {
        json_t *im = json_array_get(images, i);
        const char *file = json_string_value(json_object_get(im, "file"));
        char path[1200], err[256], what[1300];
        image_path(file, path, sizeof path);
        fn_image img;
        if (fn_image_load(path, NULL, &img, NULL, err, sizeof err)) fail_msg("%s", err);
        json_t *faces = json_object_get(im, "faces_ssd");
        for (size_t k = 0; k < json_array_size(faces); k++) {
            box b = golden_box(json_array_get(faces, k)), at;
            fn_image c;
            double s;
            crop_resize(&img, b, 150, &c, &at, &s);
            box want = {(b.x - at.x) * s, (b.y - at.y) * s, b.w * s, b.h * s};
            snprintf(what, sizeof what, "%s face %zu (%dx%d crop)", file, k, c.width, c.height);
            fn_detect_opts o;
            fn_detect_opts_default(&o);
            assert_int_equal(o.pad, FN_DETECT_PAD_RETRY);
            fn_faces f;
            o.pad = FN_DETECT_PAD_OFF;
            if (fn_vision_detect_image(v, &c, &o, &f, err, sizeof err)) fail_msg("%s", err);
            size_t n_off = f.n;
            fn_face off[8];
            memcpy(off, f.faces, sizeof(fn_face) * (n_off < 8 ? n_off : 8));
            found_off += check_found(&f, c.width, c.height, want, 0, what);
            o.pad = FN_DETECT_PAD_RETRY;
            if (fn_vision_detect_image(v, &c, &o, &f, err, sizeof err)) fail_msg("%s", err);
            found_pad += check_found(&f, c.width, c.height, want, n_off == 0, what);
            if (n_off) { /* parity: the plain pass's faces, unchanged */
                assert_int_equal(f.n, n_off);
                for (size_t j = 0; j < n_off && j < 8; j++) {
                    assert_true(f.faces[j].x == off[j].x && f.faces[j].y == off[j].y);
                    assert_true(f.faces[j].width == off[j].width);
                    assert_true(f.faces[j].score == off[j].score);
                    assert_memory_equal(f.faces[j].descriptor, off[j].descriptor,
                                        sizeof off[j].descriptor);
                }
            }
            total++;
            fn_image_free(&c);
        }
        fn_image_free(&img);
    }
    print_message("tight 150 px crops: %d faces, found %d without padding, %d with the default "
                  "padding\n",
                  total, found_off, found_pad);
    assert_int_equal(total, 24);
    assert_true(found_off < total / 2); /* the crops really are the hard case */
    assert_true(found_pad >= PAD_MIN_FOUND);
    fn_vision_free(v);
}

/* Squares of the samples that touch no face either reference detector found (grown by half),
 * resized to 150 px: no face, with the default padding as without. */
static void test_negatives(void **state)
{
    (void)state;
    fn_vision *v;
    assert_int_equal(fn_vision_new(models, &v), 0);
    json_t *images = json_object_get(goldens, "images");
    int crops = 0;
    for (size_t i = 0; i < json_array_size(images); i++) {
        json_t *im = json_array_get(images, i);
        const char *file = json_string_value(json_object_get(im, "file"));
        if (strncmp(file, "sample", 6) != 0) continue;
        char path[1200], err[256];
        image_path(file, path, sizeof path);
        fn_image img;
        if (fn_image_load(path, NULL, &img, NULL, err, sizeof err)) fail_msg("%s", err);
        box avoid[64];
        int na = 0;
        const char *lists[] = {"faces_ssd", "faces_tiny", "near_threshold_ssd",
                               "near_threshold_tiny"};
        for (int l = 0; l < 4; l++) {
            json_t *fl = json_object_get(im, lists[l]);
            for (size_t k = 0; k < json_array_size(fl) && na < 64; k++) {
                box b = golden_box(json_array_get(fl, k));
                avoid[na++] = (box){b.x - b.w / 2, b.y - b.h / 2, 2 * b.w, 2 * b.h};
            }
        }
        for (int s = 150; s <= 300; s += 150) {
            int taken = 0;
            for (int y = 0; y + s <= img.height && taken < 8; y += s)
                for (int x = (y / s % 2) * s / 2; x + s <= img.width && taken < 8; x += 2 * s) {
                    box r = {x, y, s, s}, at;
                    int ok = 1;
                    for (int a = 0; a < na && ok; a++)
                        ok = iou(r, avoid[a]) == 0;
                    if (!ok) continue;
                    fn_image c;
                    double sc;
                    crop_resize(&img, r, 150, &c, &at, &sc);
                    fn_detect_opts o;
                    fn_detect_opts_default(&o);
                    fn_faces f;
                    if (fn_vision_detect_image(v, &c, &o, &f, err, sizeof err)) fail_msg("%s", err);
                    if (f.n)
                        fail_msg("%s: %zu face(s) in the square at %d,%d (side %d)", file, f.n, x,
                                 y, s);
                    fn_image_free(&c);
                    taken++, crops++;
                }
        }
        fn_image_free(&img);
    }
    print_message("%d background squares, no face\n", crops);
    assert_true(crops >= 40);
    fn_vision_free(v);
}

/* The fast path: a tight crop enlarged to 3000 px and saved as JPEG is decoded shrunk (at most
 * 2048 px), padded, detected; its face comes back in the file's own coordinates. */
static void test_fast_path_mapping(void **state)
{
    (void)state;
    fn_vision *v;
    assert_int_equal(fn_vision_new(models, &v), 0);
    json_t *images = json_object_get(goldens, "images");
    int found_any = 0;
    char tmp[] = "/tmp/fn-test-pad-XXXXXX", file[1300];
    assert_non_null(mkdtemp(tmp));
    snprintf(file, sizeof file, "%s/crop.jpg", tmp);
    /* Faces in turn until one that only the padded pass finds (the case this test is about); the
     * others must still come back inside the photo where the padded pass ran. */
    for (size_t i = 0; i < json_array_size(images) && !found_any; i++) {
        json_t *im = json_array_get(images, i);
        char path[1200], err[256];
        image_path(json_string_value(json_object_get(im, "file")), path, sizeof path);
        fn_image img;
        if (fn_image_load(path, NULL, &img, NULL, err, sizeof err)) fail_msg("%s", err);
        json_t *faces = json_object_get(im, "faces_ssd");
        for (size_t k = 0; k < json_array_size(faces) && !found_any; k++) {
            box b = golden_box(json_array_get(faces, k)), at;
            fn_image c;
            double s;
            crop_resize(&img, b, 3000, &c, &at, &s);
            box want = {(b.x - at.x) * s, (b.y - at.y) * s, b.w * s, b.h * s};
            assert_int_equal(fn_image_save(&c, file, err, sizeof err), 0);
            fn_detect_opts o;
            fn_detect_opts_default(&o);
            fn_faces f;
            o.pad = FN_DETECT_PAD_OFF;
            if (fn_vision_detect_file(v, file, &o, &f, err, sizeof err)) fail_msg("%s", err);
            const size_t n_off = f.n;
            o.pad = FN_DETECT_PAD_RETRY;
            if (fn_vision_detect_file(v, file, &o, &f, err, sizeof err)) fail_msg("%s", err);
            assert_int_equal(f.width, c.width);
            assert_int_equal(f.height, c.height);
            int found = check_found(&f, c.width, c.height, want, n_off == 0, "enlarged crop");
            if (n_off == 0 && found) found_any = 1;
            fn_image_free(&c);
        }
        fn_image_free(&img);
    }
    unlink(file);
    rmdir(tmp);
    assert_true(found_any);
    fn_vision_free(v);
}

static void test_tiles(void **state)
{
    (void)state;
    json_t *images = json_object_get(goldens, "images");
    json_t *im1 = json_array_get(images, 0), *im2 = json_array_get(images, 1);
    char path[1200], err[256], tmp[] = "/tmp/fn-test-tiles-XXXXXX", file[1300];
    fn_image a, b;
    image_path(json_string_value(json_object_get(im1, "file")), path, sizeof path);
    if (fn_image_load(path, NULL, &a, NULL, err, sizeof err)) fail_msg("%s", err);
    image_path(json_string_value(json_object_get(im2, "file")), path, sizeof path);
    if (fn_image_load(path, NULL, &b, NULL, err, sizeof err)) fail_msg("%s", err);
    /* the piece: sample2's first face with context, the face 90 px wide */
    box q = golden_box(json_array_get(json_object_get(im2, "faces_ssd"), 0)), at;
    box r = {q.x + q.w / 2 - q.w * 0.8, q.y + q.h / 2 - q.h * 0.8, q.w * 1.6, q.h * 1.6};
    fn_image piece;
    double sc;
    crop_resize(&b, r, (int)lround(90.0 / q.w * fmax(r.w, r.h)), &piece, &at, &sc);
    /* the canvas: sample1 at 2.5x; the piece in the first cell of a 6 x 4 grid far from its faces
     */
    VipsImage *base = vips_image_new_from_memory(a.rgb, (size_t)a.width * a.height * 3, a.width,
                                                 a.height, 3, VIPS_FORMAT_UCHAR);
    VipsImage *canvas = NULL, *pi = NULL, *out = NULL;
    assert_int_equal(vips_resize(base, &canvas, 2.5, NULL), 0);
    const int W = vips_image_get_width(canvas), H = vips_image_get_height(canvas);
    json_t *faces = json_object_get(im1, "faces_ssd");
    int px = -1, py = -1;
    for (int cell = 0; cell < 24 && px < 0; cell++) {
        box cb = {(cell % 6) * W / 6.0, (cell / 6) * H / 4.0, W / 6.0, H / 4.0};
        int ok = 1;
        for (size_t k = 0; k < json_array_size(faces) && ok; k++) {
            box f = golden_box(json_array_get(faces, k));
            ok = iou(cb, (box){(f.x - f.w) * 2.5, (f.y - f.h) * 2.5, 7.5 * f.w, 7.5 * f.h}) == 0;
        }
        if (ok) {
            px = (int)(cb.x + (cb.w - piece.width) / 2);
            py = (int)(cb.y + (cb.h - piece.height) / 2);
        }
    }
    assert_true(px >= 0);
    pi = vips_image_new_from_memory(piece.rgb, (size_t)piece.width * piece.height * 3, piece.width,
                                    piece.height, 3, VIPS_FORMAT_UCHAR);
    assert_int_equal(vips_insert(canvas, pi, &out, px, py, NULL), 0);
    assert_non_null(mkdtemp(tmp));
    snprintf(file, sizeof file, "%s/group.jpg", tmp);
    assert_int_equal(vips_jpegsave(out, file, "Q", 90, NULL), 0);
    g_object_unref(out);
    g_object_unref(pi);
    g_object_unref(canvas);
    g_object_unref(base);
    box want = {px + (q.x - at.x) * sc, py + (q.y - at.y) * sc, q.w * sc, q.h * sc};

    fn_vision *v;
    assert_int_equal(fn_vision_new(models, &v), 0);
    fn_detect_opts o;
    fn_detect_opts_default(&o);
    assert_int_equal(o.tiles, FN_DETECT_TILES_OFF);
    fn_faces f;
    if (fn_vision_detect_file(v, file, &o, &f, err, sizeof err)) fail_msg("%s", err);
    const size_t n_off = f.n;
    assert_int_equal(n_off, json_array_size(faces));
    fn_face *off = malloc(sizeof(fn_face) * n_off);
    memcpy(off, f.faces, sizeof(fn_face) * n_off);
    int small_off = 0;
    for (size_t j = 0; j < n_off; j++)
        small_off |= iou((box){off[j].x, off[j].y, off[j].width, off[j].height}, want) >= MATCH_IOU;
    o.tiles = FN_DETECT_TILES_ON;
    if (fn_vision_detect_file(v, file, &o, &f, err, sizeof err)) fail_msg("%s", err);
    assert_true(f.n > n_off);
    for (size_t j = 0; j < n_off; j++) { /* the whole-photo faces first, unchanged */
        assert_true(f.faces[j].x == off[j].x && f.faces[j].y == off[j].y);
        assert_true(f.faces[j].width == off[j].width && f.faces[j].score == off[j].score);
        assert_memory_equal(f.faces[j].descriptor, off[j].descriptor, sizeof off[j].descriptor);
    }
    int small_on = 0;
    for (size_t j = n_off; j < f.n; j++)
        small_on |= iou((box){f.faces[j].x, f.faces[j].y, f.faces[j].width, f.faces[j].height},
                        want) >= MATCH_IOU;
    print_message("group photo %dx%d: %zu faces without tiles, %zu with; the pasted one %s / %s\n",
                  W, H, n_off, f.n, small_off ? "found" : "missed", small_on ? "found" : "missed");
    assert_false(small_off);
    assert_true(small_on);
    /* auto: one small face alone leaves too little behind for the rule (bench_recall's group
     * photos hold 6-12); whether it tiles or not, the whole-photo faces come first, unchanged */
    o.tiles = FN_DETECT_TILES_AUTO;
    if (fn_vision_detect_file(v, file, &o, &f, err, sizeof err)) fail_msg("%s", err);
    assert_true(f.n >= n_off);
    for (size_t j = 0; j < n_off; j++) {
        assert_true(f.faces[j].x == off[j].x && f.faces[j].y == off[j].y);
        assert_true(f.faces[j].width == off[j].width && f.faces[j].score == off[j].score);
    }
    free(off);
    unlink(file);
    rmdir(tmp);
    fn_image_free(&piece);
    fn_image_free(&a);
    fn_image_free(&b);
    fn_vision_free(v);
}

/* A detection whose longer side is `s` pixels of the detector's 512 px input on a photo of `side`
 * pixels (boxes are in the photo's coordinates). */
static fn_det det_of(int side, double s, float score)
{
    const float w = (float)(s * side / 512.0);
    return (fn_det){100, 100, w, w * 0.8f, score};
}

static void test_tiles_auto_rule(void **state)
{
    (void)state;
    const float conf = 0.5f;
    /* a small photo never tiles, whatever its pass left */
    fn_det d[3] = {det_of(700, 60, 0.9f), det_of(700, 10, 0.6f), det_of(700, 12, 0.4f)};
    assert_false(fn_tiles_auto_pays(700, 512, d, 3, conf));
    assert_false(fn_tiles_auto_pays(700, 512, d, 0, conf));
    /* a large photo with only large faces (and weak candidates that are large or very weak) */
    fn_det big[4] = {det_of(2400, 60, 0.99f), det_of(2400, 45, 0.8f), det_of(2400, 50, 0.3f),
                     det_of(2400, 15, 0.06f)};
    assert_false(fn_tiles_auto_pays(2400, 512, big, 4, conf));
    /* the same boxes on a photo twice as large are half as large at the input: small faces */
    assert_true(fn_tiles_auto_pays(4800, 512, big, 2, conf));
    /* the same photo, where its pass also found a small face ... */
    fn_det small_face[2] = {big[0], det_of(2400, 20, 0.7f)};
    assert_true(fn_tiles_auto_pays(2400, 512, small_face, 2, conf));
    /* ... or left a weak small candidate */
    fn_det weak[3] = {big[0], big[1], det_of(2400, 18, 0.15f)};
    assert_true(fn_tiles_auto_pays(2400, 512, weak, 3, conf));
    /* a detection at exactly conf is a candidate, not a face (faces score above conf): 35 px
     * would be a small face but is no small candidate */
    fn_det at_conf[2] = {big[0], det_of(2400, 35, conf)};
    assert_false(fn_tiles_auto_pays(2400, 512, at_conf, 2, conf));
    at_conf[1].score = 0.51f;
    assert_true(fn_tiles_auto_pays(2400, 512, at_conf, 2, conf));
    /* sizes are taken at the detector's input: the same box is larger at a larger input */
    fn_det t[1] = {det_of(2400, 36, 0.9f)};
    assert_true(fn_tiles_auto_pays(2400, 512, t, 1, conf));
    assert_false(fn_tiles_auto_pays(2400, 416 * 2, t, 1, conf));
}

/* Auto against off on one photo file: the same faces, to the bit. */
static void check_auto_parity(fn_vision *v, const char *file, const char *what)
{
    char err[256];
    fn_detect_opts o;
    fn_detect_opts_default(&o);
    fn_faces f;
    if (fn_vision_detect_file(v, file, &o, &f, err, sizeof err)) fail_msg("%s", err);
    const size_t n = f.n;
    fn_face *off = malloc(sizeof(fn_face) * (n ? n : 1));
    memcpy(off, f.faces, sizeof(fn_face) * n);
    o.tiles = FN_DETECT_TILES_AUTO;
    if (fn_vision_detect_file(v, file, &o, &f, err, sizeof err)) fail_msg("%s", err);
    print_message("%s: %zu faces off, %zu auto\n", what, n, f.n);
    if (f.n != n) fail_msg("%s: auto found %zu faces, off %zu", what, f.n, n);
    for (size_t j = 0; j < n; j++) {
        assert_true(f.faces[j].x == off[j].x && f.faces[j].y == off[j].y);
        assert_true(f.faces[j].width == off[j].width && f.faces[j].height == off[j].height);
        assert_true(f.faces[j].score == off[j].score);
        assert_memory_equal(f.faces[j].landmarks, off[j].landmarks, sizeof off[j].landmarks);
        assert_memory_equal(f.faces[j].descriptor, off[j].descriptor, sizeof off[j].descriptor);
    }
    free(off);
}

static void test_tiles_auto_small_faces(void **state)
{
    (void)state;
    char path[1200], err[256], tmp[] = "/tmp/fn-test-auto-XXXXXX", file[1300];
    image_path("sample1.jpg", path, sizeof path);
    VipsImage *photo = vips_image_new_from_file(path, NULL), *small = NULL, *black = NULL,
              *grey = NULL, *out = NULL;
    assert_non_null(photo);
    assert_int_equal(vips_resize(photo, &small, 0.5, NULL), 0);
    assert_int_equal(vips_black(&black, 6000, 4000, "bands", 3, NULL), 0);
    assert_int_equal(vips_linear1(black, &grey, 1.0, 128.0, "uchar", TRUE, NULL), 0);
    assert_int_equal(vips_insert(grey, small, &out, 2200, 1500, NULL), 0);
    assert_non_null(mkdtemp(tmp));
    snprintf(file, sizeof file, "%s/group.jpg", tmp);
    assert_int_equal(vips_jpegsave(out, file, "Q", 90, NULL), 0);
    g_object_unref(out);
    g_object_unref(grey);
    g_object_unref(black);
    g_object_unref(small);
    g_object_unref(photo);

    fn_vision *v;
    assert_int_equal(fn_vision_new(models, &v), 0);
    fn_detect_opts o;
    fn_detect_opts_default(&o);
    fn_faces f;
    if (fn_vision_detect_file(v, file, &o, &f, err, sizeof err)) fail_msg("%s", err);
    const size_t n_off = f.n;
    o.tiles = FN_DETECT_TILES_ON;
    if (fn_vision_detect_file(v, file, &o, &f, err, sizeof err)) fail_msg("%s", err);
    const size_t n_on = f.n;
    fn_face *on = malloc(sizeof(fn_face) * (n_on ? n_on : 1));
    memcpy(on, f.faces, sizeof(fn_face) * n_on);
    o.tiles = FN_DETECT_TILES_AUTO;
    if (fn_vision_detect_file(v, file, &o, &f, err, sizeof err)) fail_msg("%s", err);
    print_message("small faces in 6000 px: %zu faces off, %zu on, %zu auto\n", n_off, n_on, f.n);
    assert_int_equal(n_off, 0);
    assert_true(n_on >= 2);
    assert_int_equal(f.n, n_on);
    for (size_t j = 0; j < n_on; j++) {
        assert_true(f.faces[j].x == on[j].x && f.faces[j].y == on[j].y);
        assert_true(f.faces[j].width == on[j].width && f.faces[j].score == on[j].score);
    }
    free(on);
    unlink(file);
    rmdir(tmp);
    fn_vision_free(v);
}

static void test_tiles_auto_parity(void **state)
{
    (void)state;
    fn_vision *v;
    assert_int_equal(fn_vision_new(models, &v), 0);
    char path[1200], err[256], tmp[] = "/tmp/fn-test-auto-XXXXXX", file[1300];
    for (int i = 1; i <= 6; i++) {
        char name[32];
        snprintf(name, sizeof name, "sample%d.jpg", i);
        image_path(name, path, sizeof path);
        check_auto_parity(v, path, name);
    }
    /* sample1 enlarged to 4000 px: large, but its faces are large too */
    image_path("sample1.jpg", path, sizeof path);
    VipsImage *in = vips_image_new_from_file(path, NULL), *big = NULL;
    assert_non_null(in);
    assert_int_equal(vips_resize(in, &big, 4000.0 / vips_image_get_width(in), NULL), 0);
    assert_non_null(mkdtemp(tmp));
    snprintf(file, sizeof file, "%s/big.jpg", tmp);
    assert_int_equal(vips_jpegsave(big, file, "Q", 90, NULL), 0);
    g_object_unref(big);
    g_object_unref(in);
    check_auto_parity(v, file, "sample1 at 4000 px");
    unlink(file);
    rmdir(tmp);
    (void)err;
    fn_vision_free(v);
}

/* The padded canvas (fn_pad_canvas) against libvips' embed of the same image, to the byte, in
 * each fill (black, grey, edge copy, mirror), for margins under and over the short side (the
 * mirror repeats); and for a photo over the side limit: shrunk by a box average to the same
 * place and size, flat colours kept exactly. */
static void test_canvas_equals_embed(void **state)
{
    (void)state;
    static const int sizes[][2] = {{37, 23}, {20, 41}, {64, 64}, {5, 3}};
    static const VipsExtend ext[] = {VIPS_EXTEND_BLACK, VIPS_EXTEND_COPY, VIPS_EXTEND_MIRROR,
                                     VIPS_EXTEND_BACKGROUND};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        const int w = sizes[k][0], h = sizes[k][1];
        fn_image img = {w, h, malloc((size_t)w * h * 3)};
        assert_non_null(img.rgb);
        for (int i = 0; i < w * h * 3; i++)
            img.rgb[i] = (uint8_t)(i * 37 + i / 3);
        for (int fill = 0; fill < 4; fill++)
            for (int m = 0; m < 2; m++) {
                const float frac = m ? 0.6f : 0.15f;
                fn_image c;
                int ox, oy;
                double fx, fy;
                assert_int_equal(fn_pad_canvas(&img, frac, fill, 1024, &c, &ox, &oy, &fx, &fy), 0);
                assert_true(fx == 1.0 && fy == 1.0);
                VipsImage *base = vips_image_new_from_memory(img.rgb, (size_t)w * h * 3, w, h, 3,
                                                             VIPS_FORMAT_UCHAR),
                          *emb = NULL;
                assert_non_null(base);
                VipsArrayDouble *grey = vips_array_double_newv(3, 128.0, 128.0, 128.0);
                assert_int_equal(vips_embed(base, &emb, ox, oy, c.width, c.height, "extend",
                                            ext[fill], "background", grey, NULL),
                                 0);
                vips_area_unref(VIPS_AREA(grey));
                size_t len = 0;
                uint8_t *want = vips_image_write_to_memory(emb, &len);
                assert_int_equal(len, (size_t)c.width * c.height * 3);
                if (memcmp(want, c.rgb, len) != 0)
                    fail_msg(
                        "%d x %d, fill %d, margin %.2f: the canvas differs from libvips' embed", w,
                        h, fill, (double)frac);
                g_free(want);
                g_object_unref(emb);
                g_object_unref(base);
                free(c.rgb);
            }
        free(img.rgb);
    }
    /* 3000 x 1000, left half red and right half blue: the canvas (1024 a side at most) holds
     * the photo shrunk to the same proportions, centred, flat colours exact, grey around. */
    fn_image big = {3000, 1000, malloc((size_t)3000 * 1000 * 3)};
    assert_non_null(big.rgb);
    for (int i = 0; i < 3000 * 1000; i++) {
        const int red = i % 3000 < 1500;
        big.rgb[3 * i] = red ? 200 : 10, big.rgb[3 * i + 1] = 20,
                    big.rgb[3 * i + 2] = red ? 10 : 220;
    }
    fn_image c;
    int ox, oy;
    double fx, fy;
    assert_int_equal(fn_pad_canvas(&big, 0.6f, FN_PAD_FILL_GREY, 1024, &c, &ox, &oy, &fx, &fy), 0);
    assert_int_equal(c.width, 1024);
    assert_int_equal(c.height, 1024);
    const int sw = (int)lround(3000 * fx), sh = (int)lround(1000 * fy);
    assert_int_equal(sw, (int)lround(3000.0 * 1024 / 6600)); /* the side: 3000 x (1 + 2 x 0.6) */
    assert_int_equal(sh, (int)lround(1000.0 * 1024 / 6600));
    assert_int_equal(ox, (1024 - sw) / 2);
    assert_int_equal(oy, (1024 - sh) / 2);
    const uint8_t *p = c.rgb + ((size_t)(oy + sh / 2) * 1024 + (size_t)(ox + sw / 4)) * 3;
    assert_true(p[0] == 200 && p[1] == 20 && p[2] == 10);
    p = c.rgb + ((size_t)(oy + sh / 2) * 1024 + (size_t)(ox + 3 * sw / 4)) * 3;
    assert_true(p[0] == 10 && p[1] == 20 && p[2] == 220);
    p = c.rgb + ((size_t)(oy - 1) * 1024 + (size_t)ox) * 3;
    assert_true(p[0] == 128 && p[1] == 128 && p[2] == 128);
    free(c.rgb);
    free(big.rgb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tight_crops),       cmocka_unit_test(test_negatives),
        cmocka_unit_test(test_fast_path_mapping), cmocka_unit_test(test_tiles),
        cmocka_unit_test(test_tiles_auto_rule),   cmocka_unit_test(test_tiles_auto_small_faces),
        cmocka_unit_test(test_tiles_auto_parity), cmocka_unit_test(test_canvas_equals_embed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
