/* image.c: photo files to oriented 8-bit sRGB RGB pixels, through libvips.
 *
 * The path for every photo: open the file ourselves (so missing, unreadable, directory and empty
 * files get exact codes from errno and fstat, and a FIFO cannot block us), let libvips sniff the
 * format from the bytes (never from the file name), accept only the formats we support, read the
 * header alone and refuse images over the pixel limit before any pixel is decoded, then decode
 * with the decoder's own shrink-on-load (JPEG DCT scaling, libwebp scaled decoding) straight to
 * about opts->max_side, convert to 8-bit sRGB, resize the rest of the way (libvips' lanczos3),
 * stream the rows into the caller's buffer and apply the EXIF orientation to that small result.
 * JPEGs take a fast path for the decode itself: libjpeg directly on the file's bytes
 * (jpeg_decode.h; the same pixels as libvips' loader), libvips only resizing what the DCT
 * scaling leaves too large; any JPEG it declines (a warning, CMYK) decodes as above.
 *
 * Decisions:
 * - Alpha is flattened onto white, the way viewers show a transparent photo on a page; this does
 *   not depend on whatever colour an encoder left in fully transparent pixels.
 * - Truncation is an error, not a gray bottom: the decoders run with fail_on=truncated, and a
 *   decode failure on a JPEG without its end marker or a PNG without IEND is reported as
 *   FN_ERR_TRUNCATED even when libvips' message does not say so.
 * - The libvips operation cache is off: every photo is new, and the cache would pin decoded images
 *   and open sources.
 * - libvips' error buffer is one buffer for the whole process (8.14), so messages are taken with
 *   vips_error_buffer_copy (copy and clear under its lock). Codes come from our own checks first
 *   (errno, fstat, magic bytes, end markers, header size); libvips' text only refines a decode
 *   failure, so a message another thread took or mixed in can at worst blur the detail.
 * - libvips' warnings (g_warning) go to FN_LOG at debug level: the library never prints.
 * - liborc is disabled (see init_vips and docs/design.md).
 *
 * What must stay true: thread-safe (called from many workers at once), never crashes or hangs on
 * any input, every failure returns a distinct fn_err with a message naming the file. */
#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>
#include <vips/vector.h> /* vips_vector_set_enabled: not in vips.h; needs glib first */

#include "facenames/vision.h"
#include "util/log.h"
#include "vision/image_load.h"
#include "vision/jpeg_decode.h"
#include "vision/verr.h"

#define DEFAULT_MAX_PIXELS 100000000ull
#define SUPPORTED          "JPEG, PNG, WebP, HEIC/HEIF, TIFF, GIF"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc;

/* libvips reports decoder warnings through g_warning; the library never prints, so they go to
 * our log at debug level (the failures that matter come back as error codes). */
static void vips_log_handler(const gchar *domain, GLogLevelFlags level, const gchar *message,
                             gpointer user)
{
    (void)level;
    (void)user;
    FN_LOG(FN_LOG_DEBUG, "%s: %s", domain ? domain : "glib", message);
}

static void init_vips(void)
{
    g_log_set_handler("VIPS", G_LOG_LEVEL_MASK & ~G_LOG_LEVEL_ERROR, vips_log_handler, NULL);
    if (VIPS_INIT("facenames") != 0) {
        init_rc = FN_ERR_UNSUPPORTED;
        return;
    }
    /* Our workers decide the parallelism: one libvips thread and one BLAS thread per caller. */
    vips_concurrency_set(1);
    vips_cache_set_max(0);
    /* liborc (libvips' run-time SIMD code generator) is off: it compiles code at run time on
     * first use, it is the one component a crash was ever seen in (issue 8 #6), and with our
     * pipeline (decode with shrink-on-load, then a small resize) it saves too little to be worth
     * that (docs/design.md, "liborc"). FACENAMES_VIPS_ORC=1 turns it back on, for measuring. */
    const char *orc = getenv("FACENAMES_VIPS_ORC");
    vips_vector_set_enabled(orc && strcmp(orc, "1") == 0);
    /* Loaders libvips marks untrusted (ImageMagick, PDF, ...) never see our users' files. */
    vips_block_untrusted_set(TRUE);
    openblas_set_num_threads(1);
}

int fn_vision_init(void)
{
    pthread_once(&init_once, init_vips);
    return init_rc;
}

/* libvips' message, taken and cleared, on one line ("" when another thread took it first). */
static void take_vips_error(char *buf, size_t len)
{
    char *msg = vips_error_buffer_copy();
    size_t at = 0;
    for (const char *p = msg; p && *p && at + 1 < len; p++) {
        if (*p == '\n') {
            if (p[1] && at + 3 < len) {
                buf[at++] = ';';
                buf[at++] = ' ';
            }
        } else {
            buf[at++] = *p;
        }
    }
    buf[at] = '\0';
    g_free(msg);
}

/* The formats we accept, by libvips loader class ("VipsForeignLoadJpegSource" ...). */
static const char *format_of_loader(const char *loader)
{
    static const struct {
        const char *prefix, *format;
    } map[] = {
        {"VipsForeignLoadJpeg", "jpeg"}, {"VipsForeignLoadPng", "png"},
        {"VipsForeignLoadWebp", "webp"}, {"VipsForeignLoadHeif", "heif"},
        {"VipsForeignLoadTiff", "tiff"}, {"VipsForeignLoadNsgif", "gif"},
        {"VipsForeignLoadGif", "gif"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strncmp(loader, map[i].prefix, strlen(map[i].prefix))) return map[i].format;
    return NULL;
}

/* What we know about the bytes, for telling truncation from corruption. */
typedef struct byte_facts {
    unsigned char head[16], tail[16];
    size_t head_len, tail_len;
    uint64_t size; /* total bytes */
    /* Where all of them can be read again for the JPEG fast path: the open file (fd >= 0) or
     * the caller's buffer (mem). */
    int fd;
    const void *mem;
} byte_facts;

static uint32_t get_u32(const unsigned char *p, int little)
{
    return little
               ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
               : (uint32_t)p[3] | (uint32_t)p[2] << 8 | (uint32_t)p[1] << 16 | (uint32_t)p[0] << 24;
}

/* The format the first bytes claim, whether or not libvips could open the file. */
static const char *sniff_format(const byte_facts *bf)
{
    const unsigned char *h = bf->head;
    size_t n = bf->head_len;
    if (n >= 3 && h[0] == 0xff && h[1] == 0xd8 && h[2] == 0xff) return "jpeg";
    if (n >= 8 && !memcmp(h, "\x89PNG\r\n\x1a\n", 8)) return "png";
    if (n >= 6 && (!memcmp(h, "GIF87a", 6) || !memcmp(h, "GIF89a", 6))) return "gif";
    if (n >= 12 && !memcmp(h, "RIFF", 4) && !memcmp(h + 8, "WEBP", 4)) return "webp";
    if (n >= 4 && (!memcmp(h, "II*\0", 4) || !memcmp(h, "MM\0*", 4) || !memcmp(h, "II+\0", 4) ||
                   !memcmp(h, "MM\0+", 4)))
        return "tiff";
    if (n >= 12 && !memcmp(h + 4, "ftyp", 4)) {
        static const char *brands[] = {"heic", "heix", "hevc", "heim", "heis",
                                       "mif1", "msf1", "avif", "avis"};
        for (size_t i = 0; i < sizeof brands / sizeof brands[0]; i++)
            if (!memcmp(h + 8, brands[i], 4)) return "heif";
    }
    return NULL;
}

/* 0 when the bytes visibly end before the format's structure does (a missing JPEG EOI, PNG IEND
 * or GIF trailer, a WebP shorter than its RIFF size, a TIFF whose first IFD is past the end). */
static int has_end_marker(const char *format, const byte_facts *bf)
{
    const unsigned char *t = bf->tail;
    size_t n = bf->tail_len;
    if (!strcmp(format, "gif")) return n > 0 && t[n - 1] == 0x3b;
    if (!strcmp(format, "webp"))
        return bf->head_len >= 8 && (uint64_t)get_u32(bf->head + 4, 1) + 8 <= bf->size;
    if (!strcmp(format, "tiff"))
        return bf->head_len >= 8 && get_u32(bf->head + 4, bf->head[0] == 'I') < bf->size;
    if (!strcmp(format, "jpeg")) {
        /* Writers may pad after EOI; look for FF D9 near the end. */
        for (size_t i = 0; i + 1 < n; i++)
            if (t[i] == 0xff && t[i + 1] == 0xd9) return 1;
        return 0;
    }
    if (!strcmp(format, "png")) {
        for (size_t i = 0; i + 4 <= n; i++)
            if (!memcmp(t + i, "IEND", 4)) return 1;
        return 0;
    }
    return 1; /* no cheap structural test for the others */
}

static int contains_ci(const char *hay, const char *needle)
{
    return strcasestr(hay, needle) != NULL;
}

/* Turns a libvips failure while reading the header or the pixels into our code and message. */
static int decode_failure(const char *name, const char *format, const byte_facts *bf, char *err,
                          size_t errlen)
{
    char vmsg[400];
    take_vips_error(vmsg, sizeof vmsg);
    const char *detail = vmsg[0] ? vmsg : "no detail";
    if (!has_end_marker(format, bf) || contains_ci(vmsg, "truncated") ||
        contains_ci(vmsg, "premature end") || contains_ci(vmsg, "unexpected end") ||
        contains_ci(vmsg, "end of file") || contains_ci(vmsg, "end of stream") ||
        contains_ci(vmsg, "not enough data") || contains_ci(vmsg, "short read") ||
        contains_ci(vmsg, "bad seek"))
        return fn_verr(err, errlen, FN_ERR_TRUNCATED,
                       "%s: the %s data ends early; the file is truncated (libvips: %s)", name,
                       format, detail);
    if (contains_ci(vmsg, "no frames") || contains_ci(vmsg, "no image") ||
        contains_ci(vmsg, "no primary"))
        return fn_verr(err, errlen, FN_ERR_NO_IMAGE, "%s: the %s file holds no image (libvips: %s)",
                       name, format, detail);
    return fn_verr(err, errlen, FN_ERR_CORRUPT, "%s: damaged %s data (libvips: %s)", name, format,
                   detail);
}

/* EXIF "YYYY:MM:DD HH:MM:SS" (libvips appends a description in parentheses) to epoch seconds,
 * the local time taken as UTC since EXIF 2.2 stores no zone. -1 when absent or malformed. */
static int64_t exif_time(VipsImage *im)
{
    const char *s = NULL;
    if (vips_image_get_typeof(im, "exif-ifd2-DateTimeOriginal") == 0 ||
        vips_image_get_string(im, "exif-ifd2-DateTimeOriginal", &s) != 0 || !s)
        return -1;
    int Y, M, D, h, m, sec;
    if (sscanf(s, "%4d:%2d:%2d %2d:%2d:%2d", &Y, &M, &D, &h, &m, &sec) != 6) return -1;
    if (Y < 1800 || Y > 9999 || M < 1 || M > 12 || D < 1 || D > 31 || h < 0 || h > 23 || m < 0 ||
        m > 59 || sec < 0 || sec > 60)
        return -1;
    struct tm tm = {0};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    return (int64_t)timegm(&tm);
}

typedef struct sink_ctx {
    uint8_t *rgb;
    int width;
} sink_ctx;

/* vips_sink_disc hands us finished strips top to bottom; copy them into the caller's buffer. */
static int sink_rows(VipsRegion *region, VipsRect *area, void *a)
{
    sink_ctx *c = a;
    for (int y = area->top; y < area->top + area->height; y++)
        memcpy(c->rgb + ((size_t)y * (size_t)c->width + (size_t)area->left) * 3,
               VIPS_REGION_ADDR(region, area->left, y), (size_t)area->width * 3);
    return 0;
}

/* 8-bit sRGB, alpha flattened onto white, exactly 3 bands. Takes ownership of `in`. */
static VipsImage *to_rgb8(VipsImage *in)
{
    VipsImage *t = NULL;
    if (in->Type != VIPS_INTERPRETATION_sRGB || in->BandFmt != VIPS_FORMAT_UCHAR) {
        int rc = vips_colourspace(in, &t, VIPS_INTERPRETATION_sRGB, NULL);
        g_object_unref(in);
        if (rc) return NULL;
        in = t;
    }
    if (vips_image_hasalpha(in)) {
        VipsArrayDouble *white = vips_array_double_newv(1, 255.0);
        int rc = vips_flatten(in, &t, "background", white, NULL);
        vips_area_unref(VIPS_AREA(white));
        g_object_unref(in);
        if (rc) return NULL;
        in = t;
    }
    if (in->BandFmt != VIPS_FORMAT_UCHAR) {
        int rc = vips_cast_uchar(in, &t, NULL);
        g_object_unref(in);
        if (rc) return NULL;
        in = t;
    }
    if (in->Bands > 3) {
        int rc = vips_extract_band(in, &t, 0, "n", 3, NULL);
        g_object_unref(in);
        if (rc) return NULL;
        in = t;
    } else if (in->Bands < 3) {
        VipsImage *first = NULL;
        int rc = vips_extract_band(in, &first, 0, NULL);
        g_object_unref(in);
        if (rc) return NULL;
        VipsImage *three[3] = {first, first, first};
        rc = vips_bandjoin(three, &t, 3, NULL);
        g_object_unref(first);
        if (rc) return NULL;
        in = t;
    }
    return in;
}

/* Applies EXIF orientation `o` (1..8) to `in`, writing the photo as a person sees it to *out.
 * Orientation 1 hands the buffer over; otherwise a new buffer is made and in's is freed. For each
 * output pixel (X, Y) the stored pixel is: 2 (w-1-X, Y) mirrored; 3 (w-1-X, h-1-Y) turned 180;
 * 4 (X, h-1-Y) flipped; 5 (Y, X) transposed; 6 (Y, h-1-X) turned 90 clockwise; 7 (w-1-Y, h-1-X)
 * transversed; 8 (w-1-Y, X) turned 90 counter-clockwise. */
static int orient_rgb(const fn_image *in, int o, fn_image *out)
{
    int w = in->width, h = in->height;
    if (o <= 1 || o > 8) {
        *out = *in;
        return 0;
    }
    int ow = o >= 5 ? h : w, oh = o >= 5 ? w : h;
    uint8_t *d = malloc((size_t)w * h * 3);
    if (!d) return -1;
    for (int Y = 0; Y < oh; Y++) {
        uint8_t *row = d + (size_t)Y * ow * 3;
        for (int X = 0; X < ow; X++) {
            int x, y;
            switch (o) {
            case 2:
                x = w - 1 - X, y = Y;
                break;
            case 3:
                x = w - 1 - X, y = h - 1 - Y;
                break;
            case 4:
                x = X, y = h - 1 - Y;
                break;
            case 5:
                x = Y, y = X;
                break;
            case 6:
                x = Y, y = h - 1 - X;
                break;
            case 7:
                x = w - 1 - Y, y = h - 1 - X;
                break;
            default:
                x = w - 1 - Y, y = X;
                break; /* 8 */
            }
            memcpy(row + (size_t)X * 3, in->rgb + ((size_t)y * w + x) * 3, 3);
        }
    }
    free(in->rgb);
    out->width = ow;
    out->height = oh;
    out->rgb = d;
    return 0;
}

/* JPEG's shrink-on-load: the largest DCT scaling (8, 4, 2) that leaves the longer side at least
 * lo and the shorter one at least a pixel (libvips' loader rounds the size down, and an image
 * of width 0 is an assertion failure inside libvips, which aborts: found by fuzz_image); 1 when
 * none does. */
static int jpeg_shrink(int longest, int shortest, int lo)
{
    int f = 8;
    while (f > 1 && ((longest + f - 1) / f < lo || shortest < f))
        f /= 2;
    return f;
}

/* fn_image_set_jpeg_direct's switch: JPEGs through libjpeg itself (1, the default) or libvips. */
static int jpeg_direct = 1;

void fn_image_set_jpeg_direct(int on)
{
    __atomic_store_n(&jpeg_direct, on != 0, __ATOMIC_RELAXED);
}

/* What the pixel helpers below return besides 0 and FN_ERR_NOMEM. */
enum { PX_VIPS_FAILED = 1, PX_DECLINED = 2 };

/* Streams im's pixels (8-bit, 3 bands) into out (malloc'ed). 0; FN_ERR_NOMEM; PX_VIPS_FAILED
 * (libvips' error buffer says why). Does not take im. */
static int sink_rgb(VipsImage *im, fn_image *out)
{
    size_t bytes = (size_t)im->Xsize * (size_t)im->Ysize * 3;
    sink_ctx c = {malloc(bytes), im->Xsize};
    if (!c.rgb) return FN_ERR_NOMEM;
    if (vips_sink_disc(im, sink_rows, &c) != 0) {
        free(c.rgb);
        return PX_VIPS_FAILED;
    }
    *out = (fn_image){im->Xsize, im->Ysize, c.rgb};
    return 0;
}

/* The whole file of bf (size bytes from offset 0), malloc'ed; NULL if it cannot be read whole
 * now (a read error, or it shrank since fstat: the libvips decode then says what is wrong). */
static uint8_t *read_whole(const byte_facts *bf)
{
    if (bf->size > SIZE_MAX) return NULL;
    uint8_t *b = malloc((size_t)bf->size);
    size_t got = 0;
    while (b && got < bf->size) {
        const ssize_t n = pread(bf->fd, b + got, (size_t)bf->size - got, (off_t)got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            free(b);
            return NULL;
        }
        got += (size_t)n;
    }
    return b;
}

/* The fast path reads a file whole into memory. A JPEG's compressed data is smaller than its
 * pixels' bytes, so a file larger than those plus this much is mostly something else (a long
 * video appended after the image, junk): libvips decodes it, streaming, and a worker's memory
 * does not grow by the file's size. A JPEG in memory already (fn_image_load_buffer) is taken. */
#define JPEG_DIRECT_SLACK ((uint64_t)16 << 20)
static int jpeg_direct_fits(const byte_facts *bf, int w, int h)
{
    return bf->mem || bf->size <= (uint64_t)w * (uint64_t)h * 3 + JPEG_DIRECT_SLACK;
}

/* A JPEG through libjpeg itself (jpeg_decode.h), at 1/f of its size, then resized by libvips to
 * `side` if it is still over hi, into *out. 0; PX_DECLINED (the caller decodes it with
 * libvips); FN_ERR_NOMEM; PX_VIPS_FAILED when the resize fails. */
static int jpeg_direct_load(const byte_facts *bf, int f, int side, int hi, fn_image *out)
{
    uint8_t *file = bf->mem ? NULL : read_whole(bf);
    const uint8_t *data = bf->mem ? bf->mem : file;
    fn_image px;
    const int rc = data ? fn_jpeg_decode_rgb(data, (size_t)bf->size, f, &px) : -1;
    free(file);
    if (rc != 0) return PX_DECLINED;
    const int longest = px.width > px.height ? px.width : px.height;
    if (!side || longest <= hi) {
        *out = px;
        return 0;
    }
    VipsImage *m = vips_image_new_from_memory(px.rgb, (size_t)px.width * (size_t)px.height * 3,
                                              px.width, px.height, 3, VIPS_FORMAT_UCHAR);
    VipsImage *t = NULL;
    int r = PX_VIPS_FAILED;
    if (m && vips_resize(m, &t, (double)side / longest, NULL) == 0) r = sink_rgb(t, out);
    if (t) g_object_unref(t);
    if (m) g_object_unref(m);
    free(px.rgb);
    return r;
}

static int out_of_memory(const char *name, int w, int h, char *err, size_t errlen)
{
    return fn_verr(err, errlen, FN_ERR_NOMEM, "%s: out of memory for %d x %d pixels", name, w, h);
}

/* The common part of fn_image_load, fn_image_load_buffer and fn_image_load_near. Does not take
 * `src`. `near`: opts->max_side is a target with the tolerance of image_load.h, not a bound. */
static int load_source(VipsSource *src, const char *name, const byte_facts *bf,
                       const fn_load_opts *opts, int near, fn_image *img, fn_image_info *info,
                       char *err, size_t errlen)
{
    char vmsg[400];
    /* Only bytes that claim one of our formats reach libvips' sniffers and decoders: the other
     * loaders (text matrices, PPM, SVG, FITS, ...) never see our users' files. */
    const char *claimed = sniff_format(bf);
    if (!claimed)
        return fn_verr(err, errlen, FN_ERR_UNSUPPORTED,
                       "%s: not an image in a supported format (" SUPPORTED ")", name);
    const char *loader = vips_foreign_find_load_source(src);
    if (!loader) {
        /* libvips rejects some damaged files at the sniffing stage (a TIFF whose directory is
         * gone): the first bytes claim a format we support, so it is damage, not a format. */
        return decode_failure(name, claimed, bf, err, errlen);
    }
    const char *format = format_of_loader(loader);
    if (!format)
        return fn_verr(err, errlen, FN_ERR_UNSUPPORTED,
                       "%s: this kind of file (%s) is not supported; supported: " SUPPORTED, name,
                       loader);

    /* Header only: size, orientation and EXIF, before a single pixel is decoded. The same lazy
     * image decodes the pixels later unless a shrink-on-load reopens the source. */
    VipsImage *im = vips_image_new_from_source(src, "", "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                                               VIPS_FAIL_ON_TRUNCATED, NULL);
    if (!im) return decode_failure(name, format, bf, err, errlen);
    int w = im->Xsize, h = im->Ysize;
    int orientation = vips_image_get_orientation(im);
    int swap = vips_image_get_orientation_swap(im);
    int64_t taken = exif_time(im);
    if (orientation < 1 || orientation > 8) orientation = 1;

    uint64_t limit = opts && opts->max_pixels ? opts->max_pixels : DEFAULT_MAX_PIXELS;
    if ((uint64_t)w * (uint64_t)h > limit) {
        g_object_unref(im);
        return fn_verr(err, errlen, FN_ERR_TOO_LARGE,
                       "%s: %d x %d pixels is over the limit of %llu pixels; not decoded", name, w,
                       h, (unsigned long long)limit);
    }

    /* Shrink-on-load: the decoder itself produces a smaller image (JPEG DCT scaling by 2, 4 or 8,
     * libwebp's scaled decode), never below the target, so quality comes from the final
     * resize. Unlike vips_thumbnail, which keeps a factor of two for its own resampler, we take
     * the largest factor: a 6000 px JPEG for a 2048 px target decodes at 3000 px, not 6000. */
    int side = opts && opts->max_side > 0 ? opts->max_side : 0;
    int longest = w > h ? w : h, shortest = w > h ? h : w;
    /* Within the tolerance of fn_image_load_near: the shrink may undershoot the target down to
     * lo, and what is at most hi is not resized at all. */
    const int lo = near ? FN_NEAR_LO(side) : side, hi = near ? FN_NEAR_HI(side) : side;
    const int jpeg = !strcmp(format, "jpeg");
    const int f = jpeg && side && longest > hi ? jpeg_shrink(longest, shortest, lo) : 1;
    fn_image stored = {0, 0, NULL};
    if (jpeg && __atomic_load_n(&jpeg_direct, __ATOMIC_RELAXED) && jpeg_direct_fits(bf, w, h)) {
        const int rc = jpeg_direct_load(bf, f, side, hi, &stored);
        if (rc == FN_ERR_NOMEM) {
            g_object_unref(im);
            return out_of_memory(name, w, h, err, errlen);
        }
        if (rc == PX_VIPS_FAILED) {
            g_object_unref(im);
            return decode_failure(name, format, bf, err, errlen);
        }
        if (rc == 0) {
            if (f > 1)
                FN_LOG(FN_LOG_DEBUG,
                       "%s: jpeg shrink-on-load from %d x %d to about %d px (libjpeg)", name, w, h,
                       side);
            else
                FN_LOG(FN_LOG_DEBUG, "%s: jpeg decoded at full size (libjpeg)", name);
            g_object_unref(im);
            im = NULL;
        }
    }
    if (im && side && longest > hi) {
        VipsImage *shrunk = NULL;
        int reopen = 0;
        if (jpeg) {
            if (f > 1) {
                reopen = 1;
                shrunk =
                    vips_image_new_from_source(src, "", "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
                                               VIPS_FAIL_ON_TRUNCATED, "shrink", f, NULL);
            }
        } else if (!strcmp(format, "webp")) {
            reopen = 1;
            shrunk = vips_image_new_from_source(src, "", "access", VIPS_ACCESS_SEQUENTIAL,
                                                "fail_on", VIPS_FAIL_ON_TRUNCATED, "scale",
                                                (double)side / longest, NULL);
        }
        if (reopen) {
            FN_LOG(FN_LOG_DEBUG, "%s: %s shrink-on-load from %d x %d to about %d px", name, format,
                   w, h, side);
            g_object_unref(im);
            if (!shrunk) return decode_failure(name, format, bf, err, errlen);
            im = shrunk;
        }
    }
    if (im) {
        im = to_rgb8(im);
        if (!im) {
            take_vips_error(vmsg, sizeof vmsg);
            return fn_verr(err, errlen, FN_ERR_UNSUPPORTED,
                           "%s: cannot convert this %s image's colours to sRGB (libvips: %s)", name,
                           format, vmsg[0] ? vmsg : "no detail");
        }
        int now_longest = im->Xsize > im->Ysize ? im->Xsize : im->Ysize;
        if (side && now_longest > hi) {
            VipsImage *t = NULL;
            int rc = vips_resize(im, &t, (double)side / now_longest, NULL);
            g_object_unref(im);
            if (rc) return decode_failure(name, format, bf, err, errlen);
            im = t;
        }
        const int ow = im->Xsize, oh = im->Ysize, rc = sink_rgb(im, &stored);
        g_object_unref(im);
        if (rc == FN_ERR_NOMEM)
            return out_of_memory(name, ow, oh, err, errlen);
        if (rc != 0) return decode_failure(name, format, bf, err, errlen);
    }
    /* EXIF orientation last, on the small 8-bit result: cheap, and it keeps the decode
     * sequential (a 90-degree turn of a streamed image would need the whole image). */
    if (orient_rgb(&stored, orientation, img) != 0) {
        free(stored.rgb);
        return out_of_memory(name, stored.width, stored.height, err, errlen);
    }

    if (info) {
        memset(info, 0, sizeof *info);
        info->width = swap ? h : w;
        info->height = swap ? w : h;
        info->orientation = orientation;
        snprintf(info->format, sizeof info->format, "%s", format);
        info->taken_at = taken;
    }
    return 0;
}

static void clear_out(fn_image *img, fn_image_info *info)
{
    if (img) memset(img, 0, sizeof *img);
    if (info) {
        memset(info, 0, sizeof *info);
        info->taken_at = -1;
    }
}

static int load_path(const char *path, const fn_load_opts *opts, int near, fn_image *img,
                     fn_image_info *info, char *err, size_t errlen)
{
    clear_out(img, info);
    if (!path || !img)
        return fn_verr(err, errlen, FN_ERR_INVALID, "fn_image_load: invalid arguments");
    if (fn_vision_init() != 0)
        return fn_verr(err, errlen, FN_ERR_UNSUPPORTED, "%s: libvips could not be initialised",
                       path);

    /* O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then rejects it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR || e == ELOOP || e == ENAMETOOLONG)
            return fn_verr(err, errlen, FN_ERR_NOT_FOUND, "%s: no such file", path);
        if (e == EACCES || e == EPERM)
            return fn_verr(err, errlen, FN_ERR_UNREADABLE, "%s: permission denied", path);
        return fn_verr(err, errlen, FN_ERR_IO, "%s: cannot open: %s", path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return fn_verr(err, errlen, FN_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return fn_verr(err, errlen, FN_ERR_NOT_FILE, "%s: is a directory, not a photo", path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return fn_verr(err, errlen, FN_ERR_NOT_FILE, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return fn_verr(err, errlen, FN_ERR_NO_IMAGE, "%s: empty file (0 bytes), no image data",
                       path);
    }
    /* A read probe: some file systems grant open() but refuse read() (EACCES, EIO). */
    byte_facts bf;
    memset(&bf, 0, sizeof bf);
    bf.size = (uint64_t)st.st_size;
    off_t at = st.st_size > (off_t)sizeof bf.tail ? st.st_size - (off_t)sizeof bf.tail : 0;
    ssize_t got = pread(fd, bf.tail, sizeof bf.tail, at);
    ssize_t got_head = got < 0 ? got : pread(fd, bf.head, sizeof bf.head, 0);
    if (got_head < 0) got = got_head;
    if (got < 0) {
        int e = errno;
        close(fd);
        if (e == EACCES || e == EPERM)
            return fn_verr(err, errlen, FN_ERR_UNREADABLE, "%s: permission denied", path);
        return fn_verr(err, errlen, FN_ERR_IO, "%s: read error: %s", path, strerror(e));
    }
    bf.tail_len = (size_t)got;
    bf.head_len = (size_t)got_head;
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);

    VipsSource *src = vips_source_new_from_descriptor(fd); /* dups fd */
    if (!src) {
        close(fd);
        char vmsg[200];
        take_vips_error(vmsg, sizeof vmsg);
        return fn_verr(err, errlen, FN_ERR_IO, "%s: cannot read (libvips: %s)", path, vmsg);
    }
    bf.fd = fd;
    int rc = load_source(src, path, &bf, opts, near, img, info, err, errlen);
    g_object_unref(src);
    close(fd);
    if (rc) clear_out(img, info);
    return rc;
}

int fn_image_load(const char *path, const fn_load_opts *opts, fn_image *img, fn_image_info *info,
                  char *err, size_t errlen)
{
    return load_path(path, opts, 0, img, info, err, errlen);
}

int fn_image_load_near(const char *path, int side, fn_image *img, fn_image_info *info, char *err,
                       size_t errlen)
{
    fn_load_opts o = {side, 0};
    return load_path(path, &o, side > 0, img, info, err, errlen);
}

int fn_image_load_buffer(const void *data, size_t len, const char *name, const fn_load_opts *opts,
                         fn_image *img, fn_image_info *info, char *err, size_t errlen)
{
    clear_out(img, info);
    if (!name) name = "(memory)";
    if (!img || (!data && len))
        return fn_verr(err, errlen, FN_ERR_INVALID, "fn_image_load_buffer: invalid arguments");
    if (len == 0)
        return fn_verr(err, errlen, FN_ERR_NO_IMAGE, "%s: empty (0 bytes), no image data", name);
    if (fn_vision_init() != 0)
        return fn_verr(err, errlen, FN_ERR_UNSUPPORTED, "%s: libvips could not be initialised",
                       name);
    byte_facts bf;
    memset(&bf, 0, sizeof bf);
    bf.size = len;
    bf.head_len = len < sizeof bf.head ? len : sizeof bf.head;
    memcpy(bf.head, data, bf.head_len);
    bf.tail_len = len < sizeof bf.tail ? len : sizeof bf.tail;
    memcpy(bf.tail, (const unsigned char *)data + len - bf.tail_len, bf.tail_len);
    bf.fd = -1;
    bf.mem = data;
    VipsSource *src = vips_source_new_from_memory(data, len); /* borrows data until unref */
    if (!src) {
        char vmsg[200];
        take_vips_error(vmsg, sizeof vmsg);
        return fn_verr(err, errlen, FN_ERR_NOMEM, "%s: cannot read (libvips: %s)", name, vmsg);
    }
    int rc = load_source(src, name, &bf, opts, 0, img, info, err, errlen);
    g_object_unref(src);
    if (rc) clear_out(img, info);
    return rc;
}

static int ends_with_ci(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcasecmp(s + n - k, suffix);
}

int fn_image_save(const fn_image *img, const char *path, char *err, size_t errlen)
{
    if (!img || !path || !img->rgb || img->width <= 0 || img->height <= 0)
        return fn_verr(err, errlen, FN_ERR_INVALID, "fn_image_save: invalid arguments");
    int png = ends_with_ci(path, ".png");
    int jpeg = ends_with_ci(path, ".jpg") || ends_with_ci(path, ".jpeg");
    if (!png && !jpeg)
        return fn_verr(err, errlen, FN_ERR_UNSUPPORTED, "%s: can only write .png, .jpg or .jpeg",
                       path);
    if (fn_vision_init() != 0)
        return fn_verr(err, errlen, FN_ERR_UNSUPPORTED, "%s: libvips could not be initialised",
                       path);
    size_t bytes = (size_t)img->width * (size_t)img->height * 3;
    VipsImage *im =
        vips_image_new_from_memory(img->rgb, bytes, img->width, img->height, 3, VIPS_FORMAT_UCHAR);
    if (!im) {
        char vmsg[200];
        take_vips_error(vmsg, sizeof vmsg);
        return fn_verr(err, errlen, FN_ERR_NOMEM, "%s: %s", path, vmsg);
    }
    int rc = png ? vips_pngsave(im, path, NULL) : vips_jpegsave(im, path, "Q", 92, NULL);
    g_object_unref(im);
    if (rc) {
        char vmsg[400];
        take_vips_error(vmsg, sizeof vmsg);
        return fn_verr(err, errlen, FN_ERR_IO, "%s: cannot write (libvips: %s)", path,
                       vmsg[0] ? vmsg : "no detail");
    }
    return 0;
}

void fn_image_free(fn_image *img)
{
    if (!img) return;
    free(img->rgb);
    memset(img, 0, sizeof *img);
}
