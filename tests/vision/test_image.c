/* test_image: photo loading (image.c). Every supported format generated here through libvips
 * itself, EXIF orientation with a marked block that must land where a person sees it, EXIF date,
 * shrink-on-load (sizes, and the decoder's own pre-shrink seen in libvips' log), alpha, grey and
 * 16-bit input, the pixel limit checked from the header, and every bad input the issue lists:
 * zero bytes, truncated data, random bytes named .jpg, a 60000x60000 PNG header, a directory, a
 * missing file, an unreadable file, a FIFO. Also concurrent loads from several threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vips/vips.h>

#include "facenames/log.h"
#include "facenames/vision.h"
#include "vision/image_load.h"
#include "vision/jpeg_encode.h"

#include "test_util.h"

static char err[1024];

/* ---- helpers ----------------------------------------------------------------------------------
 */

static int setup_dir(void **state)
{
    (void)state;
    if (tmpdir_create("fn_test_image") != 0) return -1;
    /* Traversable by an unprivileged child (the unreadable-file test drops to nobody). */
    chmod(tmpdir, 0755);
    return fn_vision_init();
}

static int teardown_dir(void **state)
{
    (void)state;
    tmpdir_remove();
    return 0;
}

/* Four flat quadrants, easy to recognise after lossy coding and rotation. */
static const uint8_t QUAD[4][3] = {{220, 30, 30}, {30, 200, 30}, {30, 30, 220}, {230, 230, 230}};

static uint8_t *quadrants(int w, int h)
{
    uint8_t *px = malloc((size_t)w * h * 3);
    assert_non_null(px);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            memcpy(px + ((size_t)y * w + x) * 3, QUAD[(y >= h / 2) * 2 + (x >= w / 2)], 3);
    return px;
}

static VipsImage *vimage(const uint8_t *px, int w, int h, int bands)
{
    VipsImage *im =
        vips_image_new_from_memory_copy(px, (size_t)w * h * bands, w, h, bands, VIPS_FORMAT_UCHAR);
    assert_non_null(im);
    return im;
}

/* Encodes `im` as `suffix` (".jpg" ...); NULL when this libvips cannot write that format. */
static void *encode(VipsImage *im, const char *suffix, size_t *len)
{
    void *buf = NULL;
    if (vips_image_write_to_buffer(im, suffix, &buf, len, NULL) != 0) {
        vips_error_clear();
        return NULL;
    }
    return buf;
}

static void assert_near(const uint8_t *px, const uint8_t *want, int tol)
{
    for (int c = 0; c < 3; c++)
        if (abs((int)px[c] - (int)want[c]) > tol)
            fail_msg("pixel %d,%d,%d differs from %d,%d,%d by more than %d", px[0], px[1], px[2],
                     want[0], want[1], want[2], tol);
}

static const uint8_t *pixel(const fn_image *im, int x, int y)
{
    return im->rgb + ((size_t)y * im->width + x) * 3;
}

static void check_quadrants(const fn_image *im, int tol)
{
    int w = im->width, h = im->height;
    assert_near(pixel(im, w / 4, h / 4), QUAD[0], tol);
    assert_near(pixel(im, 3 * w / 4, h / 4), QUAD[1], tol);
    assert_near(pixel(im, w / 4, 3 * h / 4), QUAD[2], tol);
    assert_near(pixel(im, 3 * w / 4, 3 * h / 4), QUAD[3], tol);
}

/* w x h pixels of `bands` bands as a JPEG (libvips' default settings) in the test folder. */
static void write_jpeg(const uint8_t *px, int w, int h, int bands, const char *name)
{
    VipsImage *vi = vimage(px, w, h, bands);
    size_t len;
    void *buf = encode(vi, ".jpg", &len);
    g_object_unref(vi);
    assert_non_null(buf);
    write_bytes(tpath(name), buf, len);
    g_free(buf);
}

static int load(const char *path, const fn_load_opts *o, fn_image *im, fn_image_info *info)
{
    err[0] = '\0';
    return fn_image_load(path, o, im, info, err, sizeof err);
}

static void expect_error(const char *path, int code)
{
    fn_image im;
    fn_image_info info;
    int rc = load(path, NULL, &im, &info);
    if (rc != code)
        fail_msg("%s: expected %s, got %s (%s)", path, fn_errname(code), fn_errname(rc), err);
    assert_null(im.rgb);
    assert_int_equal(im.width, 0);
    assert_non_null(strstr(err, path)); /* the message names the file */
}

/* ---- good loads -------------------------------------------------------------------------------
 */

static void check_format(const char *suffix, const char *format, int tol)
{
    uint8_t *px = quadrants(64, 48);
    VipsImage *vi = vimage(px, 64, 48, 3);
    size_t len = 0;
    void *buf = encode(vi, suffix, &len);
    g_object_unref(vi);
    free(px);
    if (!buf) {
        print_message("skipping %s: this libvips cannot write it\n", format);
        skip();
    }
    char name[32];
    snprintf(name, sizeof name, "photo%s", suffix);
    write_bytes(tpath(name), buf, len);

    fn_image im;
    fn_image_info info;
    int rc = load(tpath(name), NULL, &im, &info);
    if (rc) fail_msg("%s: %s", format, err);
    assert_int_equal(im.width, 64);
    assert_int_equal(im.height, 48);
    assert_int_equal(info.width, 64);
    assert_int_equal(info.height, 48);
    assert_int_equal(info.orientation, 1);
    assert_string_equal(info.format, format);
    assert_int_equal(info.taken_at, -1);
    check_quadrants(&im, tol);

    /* The same bytes from memory give the same pixels. */
    fn_image im2;
    assert_int_equal(fn_image_load_buffer(buf, len, name, NULL, &im2, NULL, err, sizeof err), 0);
    assert_int_equal(im2.width, im.width);
    assert_int_equal(im2.height, im.height);
    assert_memory_equal(im2.rgb, im.rgb, (size_t)im.width * im.height * 3);
    fn_image_free(&im2);
    fn_image_free(&im);
    g_free(buf);
}

static void test_jpeg(void **s)
{
    (void)s;
    check_format(".jpg", "jpeg", 40);
}
static void test_png(void **s)
{
    (void)s;
    check_format(".png", "png", 0);
}
static void test_webp(void **s)
{
    (void)s;
    check_format(".webp", "webp", 40);
}
static void test_tiff(void **s)
{
    (void)s;
    check_format(".tif", "tiff", 0);
}
static void test_gif(void **s)
{
    (void)s;
    check_format(".gif", "gif", 8);
}
/* HEIF: AVIF (AV1) generated here, since the HEVC encoder (x265) leaks under LeakSanitizer; the
 * HEVC decoder is covered by the small HEIC the fuzz corpus holds. */
static void test_heif(void **s)
{
    (void)s;
    check_format(".avif", "heif", 40);
    const char *fx = getenv("FACENAMES_TEST_FIXTURES");
    if (!fx) return;
    char p[1024];
    snprintf(p, sizeof p, "%s/../../fuzz/vision/corpus_image/small.heic", fx);
    fn_image im;
    fn_image_info info;
    assert_int_equal(load(p, NULL, &im, &info), 0);
    assert_string_equal(info.format, "heif");
    assert_int_equal(im.width, 16);
    assert_int_equal(im.height, 12);
    fn_image_free(&im);
}

static void test_alpha_flattened_on_white(void **s)
{
    (void)s;
    uint8_t px[4 * 4 * 4] = {0};
    px[0] = 200, px[1] = 10, px[2] = 10, px[3] = 255; /* (0,0) opaque red; rest transparent black */
    VipsImage *vi = vimage(px, 4, 4, 4);
    size_t len;
    void *buf = encode(vi, ".png", &len);
    assert_non_null(buf);
    g_object_unref(vi);
    fn_image im;
    assert_int_equal(fn_image_load_buffer(buf, len, "alpha.png", NULL, &im, NULL, err, sizeof err),
                     0);
    const uint8_t red[3] = {200, 10, 10}, white[3] = {255, 255, 255};
    assert_near(pixel(&im, 0, 0), red, 0);
    assert_near(pixel(&im, 2, 2), white, 0);
    fn_image_free(&im);
    g_free(buf);
}

static void test_grey_and_16bit(void **s)
{
    (void)s;
    uint8_t grey[8 * 8];
    memset(grey, 100, sizeof grey);
    VipsImage *vi = vimage(grey, 8, 8, 1);
    size_t len;
    void *buf = encode(vi, ".png", &len);
    g_object_unref(vi);
    fn_image im;
    assert_int_equal(fn_image_load_buffer(buf, len, "grey.png", NULL, &im, NULL, err, sizeof err),
                     0);
    const uint8_t g100[3] = {100, 100, 100};
    assert_near(pixel(&im, 3, 3), g100, 0);
    fn_image_free(&im);
    g_free(buf);

    uint16_t deep[8 * 8 * 3];
    for (int i = 0; i < 64; i++)
        deep[3 * i] = 65535, deep[3 * i + 1] = 0, deep[3 * i + 2] = 32896;
    vi = vips_image_new_from_memory_copy(deep, sizeof deep, 8, 8, 3, VIPS_FORMAT_USHORT);
    vi->Type = VIPS_INTERPRETATION_RGB16;
    buf = encode(vi, ".png", &len);
    g_object_unref(vi);
    assert_non_null(buf);
    assert_int_equal(fn_image_load_buffer(buf, len, "deep.png", NULL, &im, NULL, err, sizeof err),
                     0);
    const uint8_t want[3] = {255, 0, 128};
    assert_near(pixel(&im, 5, 5), want, 1);
    fn_image_free(&im);
    g_free(buf);
}

/* A 40x20 photo whose top-left 10x10 block is red, stored with EXIF orientation `o`. */
static void *oriented_jpeg(int o, const char *date, size_t *len)
{
    uint8_t *px = malloc(40 * 20 * 3);
    for (int i = 0; i < 40 * 20; i++) {
        int x = i % 40, y = i / 40, red = x < 10 && y < 10;
        px[3 * i] = red ? 230 : 120, px[3 * i + 1] = red ? 20 : 120, px[3 * i + 2] = red ? 20 : 120;
    }
    VipsImage *vi = vimage(px, 40, 20, 3), *c = NULL;
    free(px);
    assert_int_equal(vips_copy(vi, &c, NULL), 0);
    g_object_unref(vi);
    vips_image_set_int(c, "orientation", o);
    if (date) vips_image_set_string(c, "exif-ifd2-DateTimeOriginal", date);
    void *buf = encode(c, ".jpg", len);
    g_object_unref(c);
    assert_non_null(buf);
    return buf;
}

static int is_red(const fn_image *im, int x, int y)
{
    const uint8_t *p = pixel(im, x, y);
    return p[0] > 180 && p[1] < 80 && p[2] < 80;
}

static void test_exif_orientation(void **s)
{
    (void)s;
    size_t len;
    void *buf = oriented_jpeg(6, NULL, &len);
    write_bytes(tpath("rot6.jpg"), buf, len);
    g_free(buf);
    fn_image im;
    fn_image_info info;
    assert_int_equal(load(tpath("rot6.jpg"), NULL, &im, &info), 0);
    /* Orientation 6: the stored image is shown turned 90 degrees clockwise, so the stored
     * top-left block is seen at the top right of a 20x40 (portrait) photo. */
    assert_int_equal(info.orientation, 6);
    assert_int_equal(im.width, 20);
    assert_int_equal(im.height, 40);
    assert_int_equal(info.width, 20);
    assert_int_equal(info.height, 40);
    assert_true(is_red(&im, 15, 4));
    assert_false(is_red(&im, 4, 4));
    assert_false(is_red(&im, 15, 35));
    fn_image_free(&im);

    /* Shrunk on load: the image is oriented and halved; info keeps the full oriented size. */
    fn_load_opts o = {.max_side = 20};
    assert_int_equal(load(tpath("rot6.jpg"), &o, &im, &info), 0);
    assert_int_equal(im.width, 10);
    assert_int_equal(im.height, 20);
    assert_int_equal(info.width, 20);
    assert_int_equal(info.height, 40);
    assert_true(is_red(&im, 8, 2));
    assert_false(is_red(&im, 2, 2));
    fn_image_free(&im);

    /* Orientation 3: turned 180 degrees, the block is at the bottom right. */
    buf = oriented_jpeg(3, NULL, &len);
    assert_int_equal(fn_image_load_buffer(buf, len, "rot3.jpg", NULL, &im, &info, err, sizeof err),
                     0);
    g_free(buf);
    assert_int_equal(info.orientation, 3);
    assert_int_equal(im.width, 40);
    assert_int_equal(im.height, 20);
    assert_true(is_red(&im, 35, 15));
    assert_false(is_red(&im, 4, 4));
    fn_image_free(&im);
}

/* All eight EXIF orientations against libvips' own vips_autorot, pixel for pixel: a 5x3 image
 * of distinct pixels stored losslessly (TIFF, whose Orientation tag libvips writes and reads). */
static void test_all_orientations(void **s)
{
    (void)s;
    uint8_t px[5 * 3 * 3];
    for (int i = 0; i < 15; i++)
        px[3 * i] = (uint8_t)(10 * i), px[3 * i + 1] = (uint8_t)(255 - 10 * i), px[3 * i + 2] = 7;
    for (int o = 1; o <= 8; o++) {
        VipsImage *vi = vimage(px, 5, 3, 3), *c = NULL, *want = NULL, *want8 = NULL;
        assert_int_equal(vips_copy(vi, &c, NULL), 0);
        g_object_unref(vi);
        vips_image_set_int(c, "orientation", o);
        size_t len;
        void *buf = encode(c, ".tif", &len);
        assert_non_null(buf);
        assert_int_equal(vips_autorot(c, &want, NULL), 0);
        assert_int_equal(vips_cast_uchar(want, &want8, NULL), 0);
        size_t wlen;
        uint8_t *wpx = vips_image_write_to_memory(want8, &wlen);
        assert_non_null(wpx);

        fn_image im;
        fn_image_info info;
        assert_int_equal(fn_image_load_buffer(buf, len, "o.tif", NULL, &im, &info, err, sizeof err),
                         0);
        assert_int_equal(info.orientation, o);
        assert_int_equal(im.width, want8->Xsize);
        assert_int_equal(im.height, want8->Ysize);
        assert_int_equal(info.width, want8->Xsize);
        assert_int_equal(info.height, want8->Ysize);
        assert_int_equal(wlen, (size_t)im.width * im.height * 3);
        if (memcmp(im.rgb, wpx, wlen)) fail_msg("orientation %d differs from vips_autorot", o);
        fn_image_free(&im);
        g_free(wpx);
        g_free(buf);
        g_object_unref(want8);
        g_object_unref(want);
        g_object_unref(c);
    }
}

static void test_exif_date(void **s)
{
    (void)s;
    size_t len;
    void *buf = oriented_jpeg(1, "2020:01:02 03:04:05", &len);
    fn_image im;
    fn_image_info info;
    assert_int_equal(fn_image_load_buffer(buf, len, "dated.jpg", NULL, &im, &info, err, sizeof err),
                     0);
    assert_int_equal(info.taken_at, 1577934245); /* 2020-01-02T03:04:05Z */
    fn_image_free(&im);
    g_free(buf);
}

/* fn_image_load_near (the face pipeline's decode): a photo up to 1.5x the target is kept at its
 * own size, not resampled to the exact target as fn_image_load does; a larger JPEG takes the
 * decoder's largest shrink that stays at or above 3/4 of the target; a PNG (no decoder shrink)
 * over 1.5x is resized to the target. */
static void test_load_near(void **s)
{
    (void)s;
    static const struct {
        int w, h;
        const char *suffix;
        int side, want_w; /* want_w: the longer side fn_image_load_near must give */
    } cases[] = {
        {1300, 1000, ".jpg", 1000, 1300}, /* within 1.5x: kept (fn_image_load: 1000) */
        {1500, 1000, ".jpg", 1000, 1500}, /* exactly 1.5x: kept */
        {2016, 1512, ".jpg", 1000, 1008}, /* over: DCT shrink 2 gives 1008 >= 750 */
        {3000, 2000, ".jpg", 1000, 750},  /* shrink 4 gives 750 = 3/4 of the target */
        {3200, 2000, ".jpg", 1000, 800},  /* shrink 4 gives 800 */
        {1600, 1000, ".png", 1000, 1000}, /* no decoder shrink, over 1.5x: resized */
        {1400, 1000, ".png", 1000, 1400}, /* no decoder shrink, within 1.5x: kept */
        {800, 600, ".jpg", 1000, 800},    /* smaller than the target: never enlarged */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *px = quadrants(cases[i].w, cases[i].h);
        VipsImage *vi = vimage(px, cases[i].w, cases[i].h, 3);
        free(px);
        size_t len;
        void *buf = encode(vi, cases[i].suffix, &len);
        g_object_unref(vi);
        assert_non_null(buf);
        char name[64];
        snprintf(name, sizeof name, "near%zu%s", i, cases[i].suffix);
        write_bytes(tpath(name), buf, len);
        g_free(buf);
        fn_image im;
        fn_image_info info;
        assert_int_equal(
            fn_image_load_near(tpath(name), cases[i].side, &im, &info, err, sizeof err), 0);
        assert_int_equal(im.width, cases[i].want_w);
        int want_h = (int)((double)cases[i].h * cases[i].want_w / cases[i].w + 0.5);
        assert_in_range(im.height, want_h - 1, want_h + 1);
        assert_int_equal(info.width, cases[i].w);
        assert_int_equal(info.height, cases[i].h);
        check_quadrants(&im, 40);
        fn_image_free(&im);
        /* fn_image_load keeps its bound. */
        fn_load_opts o = {.max_side = cases[i].side};
        assert_int_equal(load(tpath(name), &o, &im, &info), 0);
        int longest = im.width > im.height ? im.width : im.height;
        assert_true(longest <= cases[i].side);
        fn_image_free(&im);
    }
}

/* Captures the loader's debug log to see the JPEG decoder's own shrink. */
static atomic_int saw_preshrink;
static void log_capture(fn_log_level level, const char *msg, void *user)
{
    (void)level;
    (void)user;
    if (strstr(msg, "big.jpg: jpeg shrink-on-load")) atomic_store(&saw_preshrink, 1);
}

static void test_shrink_on_load(void **s)
{
    (void)s;
    uint8_t *px = quadrants(3000, 2000);
    write_jpeg(px, 3000, 2000, 3, "big.jpg");
    free(px);
    size_t len;
    void *buf;
    VipsImage *vi;

    fn_log_set_handler(log_capture, NULL, FN_LOG_DEBUG);
    fn_image im;
    fn_image_info info;
    fn_load_opts o = {.max_side = 500};
    assert_int_equal(load(tpath("big.jpg"), &o, &im, &info), 0);
    fn_log_set_handler(NULL, NULL, FN_LOG_ERROR);
    assert_int_equal(im.width, 500);
    assert_in_range(im.height, 333, 334);
    assert_int_equal(info.width, 3000);
    assert_int_equal(info.height, 2000);
    check_quadrants(&im, 40);
    fn_image_free(&im);
    /* The loader logs (debug) when the decoder itself shrinks: the 6-megapixel JPEG was not
     * decoded at full size. */
    assert_true(atomic_load(&saw_preshrink));

    /* WebP (libwebp's scaled decode) and PNG (no decoder shrink: resize only) reach the same
     * bounding box. */
    static const char *other[] = {".webp", ".png"};
    for (int k = 0; k < 2; k++) {
        px = quadrants(1200, 800);
        vi = vimage(px, 1200, 800, 3);
        free(px);
        buf = encode(vi, other[k], &len);
        g_object_unref(vi);
        assert_non_null(buf);
        o.max_side = 300;
        assert_int_equal(fn_image_load_buffer(buf, len, other[k], &o, &im, &info, err, sizeof err),
                         0);
        g_free(buf);
        assert_int_equal(im.width, 300);
        assert_int_equal(im.height, 200);
        assert_int_equal(info.width, 1200);
        assert_int_equal(info.height, 800);
        check_quadrants(&im, 40);
        fn_image_free(&im);
    }
    o.max_side = 500;

    /* Never upscaled. */
    o.max_side = 5000;
    assert_int_equal(load(tpath("big.jpg"), &o, &im, &info), 0);
    assert_int_equal(im.width, 3000);
    assert_int_equal(im.height, 2000);
    fn_image_free(&im);

    /* A real photo. */
    const char *samples = getenv("FACENAMES_SAMPLES");
    if (samples) {
        char p[1024];
        snprintf(p, sizeof p, "%s/sample1.jpg", samples);
        o.max_side = 512;
        assert_int_equal(load(p, &o, &im, &info), 0);
        assert_int_equal(im.width > im.height ? im.width : im.height, 512);
        int want_h = (int)((double)info.height * 512 / info.width + 0.5);
        assert_in_range(im.height, want_h - 1, want_h + 1);
        fn_image_free(&im);
    }
}

/* Counts the loader's "(libjpeg)" debug lines: JPEGs the fast path decoded itself. */
static atomic_int by_libjpeg;
static void count_libjpeg(fn_log_level level, const char *msg, void *user)
{
    (void)level, (void)user;
    if (strstr(msg, "(libjpeg)")) atomic_fetch_add(&by_libjpeg, 1);
}

/* One file loaded both ways (libjpeg itself, then libvips: fn_image_set_jpeg_direct) at longer
 * side `side` (0: full size; near: fn_image_load_near): the same pixels to the byte and the same
 * info. Returns 1 when the fast path decoded it (0 when it declined it). */
static int same_both_ways(const char *path, int side, int near)
{
    fn_image a, b;
    fn_image_info ia, ib;
    fn_load_opts o = {.max_side = side};
    const int before = atomic_load(&by_libjpeg);
    fn_log_set_handler(count_libjpeg, NULL, FN_LOG_DEBUG);
    int rc = near ? fn_image_load_near(path, side, &a, &ia, err, sizeof err)
                  : fn_image_load(path, &o, &a, &ia, err, sizeof err);
    fn_log_set_handler(NULL, NULL, FN_LOG_ERROR);
    if (rc) fail_msg("%s: %s", path, err);
    const int direct = atomic_load(&by_libjpeg) > before;
    fn_image_set_jpeg_direct(0);
    rc = near ? fn_image_load_near(path, side, &b, &ib, err, sizeof err)
              : fn_image_load(path, &o, &b, &ib, err, sizeof err);
    fn_image_set_jpeg_direct(1);
    if (rc) fail_msg("%s (libvips): %s", path, err);
    if (a.width != b.width || a.height != b.height ||
        memcmp(a.rgb, b.rgb, (size_t)a.width * a.height * 3) != 0)
        fail_msg("%s at %d%s: libjpeg's %d x %d pixels differ from libvips' %d x %d", path, side,
                 near ? " (near)" : "", a.width, a.height, b.width, b.height);
    assert_memory_equal(&ia, &ib, sizeof ia);
    fn_image_free(&a);
    fn_image_free(&b);
    return direct;
}

/* JPEGs decoded by libjpeg itself (image.c's fast path) are the bytes libvips decodes: 4:2:0,
 * 4:4:4, progressive, grayscale, EXIF-rotated, at full size, DCT-shrunk, shrunk then resized, and
 * the sample photos at the face pipeline's sizes; a CMYK JPEG is left to libvips (declined), as
 * are damaged ones (test_truncated, test_corrupt: the same codes as before). */
static void test_jpeg_direct_same_pixels(void **s)
{
    (void)s;
    const int w = 1003, h = 701;
    uint8_t *px = malloc((size_t)w * h * 4);
    assert_non_null(px);
    uint32_t x = 12345;
    for (size_t i = 0; i < (size_t)w * h * 4; i++) { /* gradients with noise: every DCT band */
        x = x * 1103515245u + 12345u;
        px[i] = (uint8_t)((i / 4 % (size_t)w) * 200 / (size_t)w + (x >> 27));
    }
    static const struct {
        const char *name;
        int bands,
            opt; /* opt: 0 default, 1 no chroma subsampling, 2 progressive, 3 orientation 6 */
    } kinds[] = {{"d420.jpg", 3, 0},  {"d444.jpg", 3, 1}, {"dprog.jpg", 3, 2},
                 {"dgrey.jpg", 1, 0}, {"drot.jpg", 3, 3}, {"dcmyk.jpg", 4, 0}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        VipsImage *vi = vips_image_new_from_memory_copy(px, (size_t)w * h * (size_t)kinds[k].bands,
                                                        w, h, kinds[k].bands, VIPS_FORMAT_UCHAR),
                  *c = NULL;
        assert_non_null(vi);
        assert_int_equal(vips_copy(vi, &c, "interpretation",
                                   kinds[k].bands == 4   ? VIPS_INTERPRETATION_CMYK
                                   : kinds[k].bands == 1 ? VIPS_INTERPRETATION_B_W
                                                         : VIPS_INTERPRETATION_sRGB,
                                   NULL),
                         0);
        g_object_unref(vi);
        if (kinds[k].opt == 3) vips_image_set_int(c, "orientation", 6);
        void *buf = NULL;
        size_t len = 0;
        assert_int_equal(vips_jpegsave_buffer(c, &buf, &len, "Q", 90, "subsample_mode",
                                              kinds[k].opt == 1 ? VIPS_FOREIGN_SUBSAMPLE_OFF
                                                                : VIPS_FOREIGN_SUBSAMPLE_AUTO,
                                              "interlace", kinds[k].opt == 2, NULL),
                         0);
        g_object_unref(c);
        write_bytes(tpath(kinds[k].name), buf, len);
        g_free(buf);
        static const int sides[] = {0, 1003, 500, 300, 120};
        int direct = 0;
        for (size_t i = 0; i < sizeof sides / sizeof sides[0]; i++)
            direct += same_both_ways(tpath(kinds[k].name), sides[i], 0);
        direct += same_both_ways(tpath(kinds[k].name), 400, 1);
        if (kinds[k].bands == 4)
            assert_int_equal(direct, 0);
        else
            assert_int_equal(direct, 6);
    }
    free(px);
    const char *samples = getenv("FACENAMES_SAMPLES");
    if (samples)
        for (int i = 1; i <= 6; i++) {
            char p[1024];
            snprintf(p, sizeof p, "%s/sample%d.jpg", samples, i);
            assert_true(same_both_ways(p, 0, 0));
            assert_true(same_both_ways(p, 512, 1));
            assert_true(same_both_ways(p, 300, 0));
        }
}

/* A JPEG one pixel high and thousands wide (found by fuzz_image): the DCT shrink must not take
 * the short side to 0 pixels (libvips asserts and aborts on an image of height 0). Loads, at most
 * max_side wide, through libjpeg and through libvips. */
static void test_jpeg_one_pixel_high(void **s)
{
    (void)s;
    const int w = 4000;
    uint8_t *px = malloc((size_t)w);
    assert_non_null(px);
    for (int i = 0; i < w; i++)
        px[i] = (uint8_t)(i * 7);
    write_jpeg(px, w, 1, 1, "wide.jpg");
    free(px);
    for (int direct = 1; direct >= 0; direct--) {
        fn_image_set_jpeg_direct(direct);
        fn_image im;
        fn_load_opts o = {.max_side = 256};
        assert_int_equal(load(tpath("wide.jpg"), &o, &im, NULL), 0);
        assert_int_equal(im.width, 256);
        assert_int_equal(im.height, 1);
        fn_image_free(&im);
        assert_int_equal(fn_image_load_near(tpath("wide.jpg"), 512, &im, NULL, err, sizeof err), 0);
        assert_in_range(im.width, 384, 768);
        fn_image_free(&im);
    }
    fn_image_set_jpeg_direct(1);
}

/* A JPEG file mostly other bytes (here 17 MB of zeros after the image's end, where a
 * phone's motion photo has its video) is not read whole by the fast path: libvips decodes it, the same
 * pixels. The same image with a short tail takes the fast path. */
static void test_jpeg_with_a_large_tail(void **s)
{
    (void)s;
    uint8_t *px = quadrants(64, 48);
    write_jpeg(px, 64, 48, 3, "tail.jpg");
    free(px);
    const size_t tails[2] = {4096, (size_t)17 << 20};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(tpath("tail.jpg"), "ab");
        assert_non_null(f);
        uint8_t *zeros = calloc(1, tails[i]);
        assert_non_null(zeros);
        assert_int_equal(fwrite(zeros, 1, tails[i], f), tails[i]);
        free(zeros);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(same_both_ways(tpath("tail.jpg"), 0, 0), i == 0);
    }
}

static void test_save_roundtrip(void **s)
{
    (void)s;
    fn_image im = {.width = 16, .height = 12, .rgb = quadrants(16, 12)};
    assert_int_equal(fn_image_save(&im, tpath("saved.png"), err, sizeof err), 0);
    fn_image back;
    assert_int_equal(load(tpath("saved.png"), NULL, &back, NULL), 0);
    assert_memory_equal(back.rgb, im.rgb, 16 * 12 * 3);
    fn_image_free(&back);
    assert_int_equal(fn_image_save(&im, tpath("saved.JPG"), err, sizeof err), 0);
    assert_int_equal(load(tpath("saved.JPG"), NULL, &back, NULL), 0);
    check_quadrants(&back, 40);
    fn_image_free(&back);
    assert_int_equal(fn_image_save(&im, tpath("saved.bmp"), err, sizeof err), FN_ERR_UNSUPPORTED);
    assert_int_equal(fn_image_save(&im, tpath("no/such/dir/x.png"), err, sizeof err), FN_ERR_IO);
    assert_non_null(strstr(err, "no/such/dir/x.png"));
    fn_image_free(&im);
    fn_image_free(&im); /* zeroed: harmless */
    fn_image_free(NULL);
}

/* The thumbnails' encoder (jpeg_encode.c): a JPEG that decodes to the same size and nearly the
 * same pixels, its buffer grown past its first 16 KB for a larger noisy image (the length the
 * decoder accepts, every byte initialised: ASan and valgrind), and bad arguments refused with
 * nothing allocated. */
static void test_jpeg_encode(void **s)
{
    (void)s;
    uint8_t *jpg = NULL;
    size_t len = 0;
    uint8_t *px = quadrants(112, 96);
    assert_int_equal(fn_jpeg_encode_rgb(px, 112, 96, 85, &jpg, &len), 0);
    assert_non_null(jpg);
    assert_true(len > 100 && len < 16384);
    assert_int_equal(jpg[0], 0xff);
    assert_int_equal(jpg[1], 0xd8);
    assert_int_equal(jpg[len - 2], 0xff);
    assert_int_equal(jpg[len - 1], 0xd9);
    fn_image back;
    fn_image_info info;
    assert_int_equal(fn_image_load_buffer(jpg, len, "thumb", NULL, &back, &info, err, sizeof err),
                     0);
    assert_string_equal(info.format, "jpeg");
    assert_int_equal(back.width, 112);
    assert_int_equal(back.height, 96);
    check_quadrants(&back, 40);
    fn_image_free(&back);
    free(jpg);
    free(px);

    enum { W = 320, H = 240 };
    uint8_t *noise = malloc((size_t)W * H * 3);
    assert_non_null(noise);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < (size_t)W * H * 3; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        noise[i] = (uint8_t)x;
    }
    assert_int_equal(fn_jpeg_encode_rgb(noise, W, H, 95, &jpg, &len), 0);
    assert_true(len > 65536); /* grown twice at least */
    assert_int_equal(fn_image_load_buffer(jpg, len, "noise", NULL, &back, NULL, err, sizeof err),
                     0);
    assert_int_equal(back.width, W);
    assert_int_equal(back.height, H);
    fn_image_free(&back);
    free(jpg);

    jpg = (uint8_t *)1;
    len = 7;
    assert_int_equal(fn_jpeg_encode_rgb(NULL, 4, 4, 85, &jpg, &len), -1);
    assert_null(jpg);
    assert_int_equal(len, 0);
    assert_int_equal(fn_jpeg_encode_rgb(noise, 0, 4, 85, &jpg, &len), -1);
    assert_int_equal(fn_jpeg_encode_rgb(noise, 4, -1, 85, &jpg, &len), -1);
    assert_int_equal(fn_jpeg_encode_rgb(noise, 70000, 1, 85, &jpg, &len), -1);
    assert_int_equal(fn_jpeg_encode_rgb(noise, 4, 4, 0, &jpg, &len), -1);
    assert_int_equal(fn_jpeg_encode_rgb(noise, 4, 4, 101, &jpg, &len), -1);
    assert_int_equal(fn_jpeg_encode_rgb(noise, 4, 4, 85, NULL, &len), -1);
    assert_int_equal(fn_jpeg_encode_rgb(noise, 4, 4, 85, &jpg, NULL), -1);
    free(noise);
}

/* ---- bad input ------------------------------------------------------------------------------- */

static void test_zero_byte(void **s)
{
    (void)s;
    write_bytes(tpath("empty.jpg"), "", 0);
    expect_error(tpath("empty.jpg"), FN_ERR_NO_IMAGE);
    fn_image im;
    assert_int_equal(fn_image_load_buffer("", 0, "empty", NULL, &im, NULL, err, sizeof err),
                     FN_ERR_NO_IMAGE);
}

static void truncated_case(const char *suffix, double keep)
{
    uint8_t *px = quadrants(300, 200);
    for (int i = 0; i < 300 * 200 * 3; i++) /* texture, so the data is not tiny */
        px[i] = (uint8_t)(px[i] + (i * 7919 % 23));
    VipsImage *vi = vimage(px, 300, 200, 3);
    free(px);
    size_t len;
    void *buf = encode(vi, suffix, &len);
    g_object_unref(vi);
    if (!buf) return; /* a format this libvips cannot write: covered by its format test */
    char name[32];
    snprintf(name, sizeof name, "cut%s", suffix);
    write_bytes(tpath(name), buf, (size_t)(len * keep));
    expect_error(tpath(name), FN_ERR_TRUNCATED);
    g_free(buf);
}

static void test_truncated(void **s)
{
    (void)s;
    truncated_case(".jpg", 0.5);
    truncated_case(".jpg", 0.97);
    truncated_case(".png", 0.5);
    truncated_case(".png", 0.99);
    truncated_case(".gif", 0.5);
    truncated_case(".webp", 0.5);
    truncated_case(".tif", 0.5);
    truncated_case(".avif", 0.5);
    const char *samples = getenv("FACENAMES_SAMPLES");
    if (samples) { /* a real camera JPEG cut at 60% */
        char p[1024];
        snprintf(p, sizeof p, "%s/sample2.jpg", samples);
        gchar *data;
        gsize len;
        assert_true(g_file_get_contents(p, &data, &len, NULL));
        write_bytes(tpath("cut_sample.jpg"), data, len * 6 / 10);
        g_free(data);
        expect_error(tpath("cut_sample.jpg"), FN_ERR_TRUNCATED);
        fn_load_opts o = {.max_side = 512}; /* also on the shrink-on-load path */
        fn_image im;
        assert_int_equal(load(tpath("cut_sample.jpg"), &o, &im, NULL), FN_ERR_TRUNCATED);
    }
}

static void test_corrupt(void **s)
{
    (void)s;
    uint8_t *px = quadrants(64, 64);
    VipsImage *vi = vimage(px, 64, 64, 3);
    free(px);
    size_t len;
    uint8_t *buf = encode(vi, ".jpg", &len);
    g_object_unref(vi);
    /* Zero the SOF0 frame's component count: the header is complete (EOI present) but wrong. */
    size_t i = 2;
    while (i + 9 < len && !(buf[i] == 0xff && buf[i + 1] == 0xc0))
        i++;
    assert_true(i + 9 < len);
    buf[i + 9] = 0;
    write_bytes(tpath("corrupt.jpg"), buf, len);
    g_free(buf);
    expect_error(tpath("corrupt.jpg"), FN_ERR_CORRUPT);
}

static void test_random_bytes_named_jpg(void **s)
{
    (void)s;
    uint8_t junk[4096];
    uint32_t r = 2463534242u;
    for (size_t i = 0; i < sizeof junk; i++) {
        r ^= r << 13, r ^= r >> 17, r ^= r << 5;
        junk[i] = (uint8_t)r;
    }
    junk[0] = 'Z'; /* never a magic number by chance */
    write_bytes(tpath("random.jpg"), junk, sizeof junk);
    expect_error(tpath("random.jpg"), FN_ERR_UNSUPPORTED);
    /* A text file, and a format libvips knows but we do not accept (PPM). */
    write_bytes(tpath("text.png"), "hello, world\n", 13);
    expect_error(tpath("text.png"), FN_ERR_UNSUPPORTED);
    const char ppm[] = "P6\n2 2\n255\n\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c";
    write_bytes(tpath("image.jpg"), ppm, sizeof ppm - 1);
    expect_error(tpath("image.jpg"), FN_ERR_UNSUPPORTED);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return c ^ 0xffffffffu;
}

/* A PNG that claims w x h (8-bit RGB) with one empty IDAT and IEND, valid CRCs. */
static size_t png_header(uint8_t *out, uint32_t w, uint32_t h)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const uint8_t idat[] = {0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01};
    size_t n = 0;
    memcpy(out, sig, 8), n = 8;
    put_be32(out + n, 13), memcpy(out + n + 4, "IHDR", 4);
    put_be32(out + n + 8, w), put_be32(out + n + 12, h);
    out[n + 16] = 8, out[n + 17] = 2, out[n + 18] = 0, out[n + 19] = 0, out[n + 20] = 0;
    put_be32(out + n + 21, crc32_png(out + n + 4, 17)), n += 25;
    put_be32(out + n, sizeof idat), memcpy(out + n + 4, "IDAT", 4),
        memcpy(out + n + 8, idat, sizeof idat);
    put_be32(out + n + 8 + sizeof idat, crc32_png(out + n + 4, 4 + sizeof idat)),
        n += 12 + sizeof idat;
    put_be32(out + n, 0), memcpy(out + n + 4, "IEND", 4),
        put_be32(out + n + 8, crc32_png(out + n + 4, 4));
    return n + 12;
}

static void test_huge_png_header(void **s)
{
    (void)s;
    uint8_t png[128];
    size_t n = png_header(png, 60000, 60000);
    write_bytes(tpath("bomb.png"), png, n);
    expect_error(tpath("bomb.png"), FN_ERR_TOO_LARGE);
    assert_non_null(strstr(err, "60000"));
    fn_image im;
    assert_int_equal(fn_image_load_buffer(png, n, "bomb.png", NULL, &im, NULL, err, sizeof err),
                     FN_ERR_TOO_LARGE);
    /* The limit is the caller's: a small real image over a lowered limit is refused too. */
    uint8_t *px = quadrants(100, 100);
    VipsImage *vi = vimage(px, 100, 100, 3);
    free(px);
    size_t len;
    void *buf = encode(vi, ".png", &len);
    g_object_unref(vi);
    fn_load_opts o = {.max_pixels = 9999};
    assert_int_equal(fn_image_load_buffer(buf, len, "small.png", &o, &im, NULL, err, sizeof err),
                     FN_ERR_TOO_LARGE);
    o.max_pixels = 10000;
    assert_int_equal(fn_image_load_buffer(buf, len, "small.png", &o, &im, NULL, err, sizeof err),
                     0);
    fn_image_free(&im);
    g_free(buf);
}

static void test_directory(void **s)
{
    (void)s;
    assert_int_equal(mkdir(tpath("folder.jpg"), 0755), 0);
    expect_error(tpath("folder.jpg"), FN_ERR_NOT_FILE);
}

static void test_fifo(void **s)
{
    (void)s;
    assert_int_equal(mkfifo(tpath("pipe.jpg"), 0644), 0);
    expect_error(tpath("pipe.jpg"), FN_ERR_NOT_FILE); /* and does not wait for a writer */
}

static void test_missing(void **s)
{
    (void)s;
    expect_error(tpath("does-not-exist.jpg"), FN_ERR_NOT_FOUND);
    expect_error(tpath("empty.jpg/below"), FN_ERR_NOT_FOUND);
}

static void test_unreadable(void **s)
{
    (void)s;
    uint8_t *px = quadrants(8, 8);
    VipsImage *vi = vimage(px, 8, 8, 3);
    free(px);
    size_t len;
    void *buf = encode(vi, ".png", &len);
    g_object_unref(vi);
    write_bytes(tpath("secret.png"), buf, len);
    g_free(buf);
    assert_int_equal(chmod(tpath("secret.png"), 0), 0);
    if (geteuid() != 0) {
        expect_error(tpath("secret.png"), FN_ERR_UNREADABLE);
        return;
    }
    /* Root reads any file, so the check runs in a child that gives up root for 'nobody'. */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0) _exit(77);
        fn_image im;
        char e[512];
        int rc = fn_image_load(tpath("secret.png"), NULL, &im, NULL, e, sizeof e);
        _exit(rc == FN_ERR_UNREADABLE && strstr(e, "secret.png") ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) {
        print_message("skipping: running as root and cannot drop privileges to test EACCES\n");
        skip();
    }
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_invalid_args(void **s)
{
    (void)s;
    fn_image im;
    assert_int_equal(fn_image_load(NULL, NULL, &im, NULL, err, sizeof err), FN_ERR_INVALID);
    assert_int_equal(fn_image_load(tpath("x.jpg"), NULL, NULL, NULL, NULL, 0), FN_ERR_INVALID);
    assert_int_equal(fn_image_load_buffer(NULL, 5, "x", NULL, &im, NULL, err, sizeof err),
                     FN_ERR_INVALID);
    /* NULL message buffer is allowed. */
    assert_int_equal(fn_image_load(tpath("nope.jpg"), NULL, &im, NULL, NULL, 0), FN_ERR_NOT_FOUND);
}

/* ---- threads ----------------------------------------------------------------------------------
 */

static void *loader_thread(void *arg)
{
    (void)arg;
    static const struct {
        const char *name;
        int code;
    } cases[] = {{"photo.jpg", 0},
                 {"cut.jpg", FN_ERR_TRUNCATED},
                 {"random.jpg", FN_ERR_UNSUPPORTED},
                 {"does-not-exist.jpg", FN_ERR_NOT_FOUND},
                 {"bomb.png", FN_ERR_TOO_LARGE},
                 {"folder.jpg", FN_ERR_NOT_FILE}};
    for (int it = 0; it < 8; it++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            fn_image im;
            char e[512];
            fn_load_opts o = {.max_side = 32};
            char path[512]; /* not tpath(): its rotating buffers are not for threads */
            snprintf(path, sizeof path, "%s/%s", tmpdir, cases[i].name);
            int rc = fn_image_load(path, &o, &im, NULL, e, sizeof e);
            fn_image_free(&im);
            if (rc != cases[i].code) return (void *)cases[i].name;
        }
    return NULL;
}

static void test_threads(void **s)
{
    (void)s;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, loader_thread, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *bad = NULL;
        pthread_join(t[i], &bad);
        if (bad) fail_msg("wrong result for %s under concurrency", (const char *)bad);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* Order matters only for test_threads, which reuses files the others wrote. */
        cmocka_unit_test(test_jpeg),
        cmocka_unit_test(test_png),
        cmocka_unit_test(test_webp),
        cmocka_unit_test(test_tiff),
        cmocka_unit_test(test_gif),
        cmocka_unit_test(test_heif),
        cmocka_unit_test(test_alpha_flattened_on_white),
        cmocka_unit_test(test_grey_and_16bit),
        cmocka_unit_test(test_exif_orientation),
        cmocka_unit_test(test_all_orientations),
        cmocka_unit_test(test_exif_date),
        cmocka_unit_test(test_shrink_on_load),
        cmocka_unit_test(test_jpeg_direct_same_pixels),
        cmocka_unit_test(test_jpeg_one_pixel_high),
        cmocka_unit_test(test_jpeg_with_a_large_tail),
        cmocka_unit_test(test_save_roundtrip),
        cmocka_unit_test(test_jpeg_encode),
        cmocka_unit_test(test_zero_byte),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_random_bytes_named_jpg),
        cmocka_unit_test(test_huge_png_header),
        cmocka_unit_test(test_directory),
        cmocka_unit_test(test_fifo),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_unreadable),
        cmocka_unit_test(test_invalid_args),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_load_near),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
