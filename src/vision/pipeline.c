/* pipeline.c: photos to faces (fn_vision_*): detection, landmarks, descriptors, thumbnails.
 *
 * Two paths share one per-face loop:
 * - fn_vision_detect_image, the reference path: the detector sees the given pixels through the
 *   reference's own padToSquare + resizeBilinear, and the landmark and recognition crops come from
 *   the same pixels, so results equal face-api's on those pixels.
 * - fn_vision_detect_file, the fast path: the photo is decoded with shrink-on-load to about a
 *   "useful resolution" (FN_USEFUL_SIDE, within the tolerance of image_load.h: large enough that a
 *   face covering a small part of a photo still has more pixels than the 150x150 recognition
 *   input, small enough that a 24-megapixel JPEG is decoded at a fraction of its size, and never
 *   resampled once more only to land on the exact number); the detector runs on the 512 input
 *   made from it, and the landmark and recognition crops are taken from that image, never from
 *   the detector's downscaled input. Boxes and points are then scaled to the full oriented photo.
 *
 * A photo's descriptors run FN_DESC_BATCH faces at a time through fn_recog_forward_batch (each
 * layer's weights read once per batch, not once per face; decision 32), giving to the bit what
 * one face at a time gives.
 *
 * What must stay true: a fn_vision allocates its scratch (the largest need of any network, the tiny
 * detector counted at its default input size, the descriptor at FN_DESC_BATCH faces), the batch's
 * descriptor inputs and its face arrays once, in fn_vision_new; the
 * scratch grows once more only if a caller asks for a larger tiny input size. Per image only the
 * decoded photo and the optional JPEG thumbnails are allocated. One fn_vision serves one thread at
 * a time; the kernels need about 64 KB of stack. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vision/gemm_amx.h"
#include "vision/gemm_i16.h"
#include "vision/image_load.h"
#include "vision/jpeg_encode.h"
#include "vision/models.h"
#include "vision/nets.h"
#include "vision/preprocess.h"
#include "vision/tiles.h"

#define FN_MAX_FACES   256
#define FN_USEFUL_SIDE 2048
/* Faces per fn_recog_forward_batch call. Measured with bench_vision's descriptor_batchN lines
 * (decision 32): the time per face falls up to this size and not beyond, and the batch's scratch
 * (about 2.7 MB a face) still fits in SSD's, which the vision allocates anyway. */
#define FN_DESC_BATCH 8

struct fn_vision {
    const fn_models *models;
    float *scratch;
    size_t scratch_floats;
    fn_det dets[FN_MAX_FACES];
    fn_face *faces;         /* FN_MAX_FACES */
    float *desc_in;         /* FN_DESC_BATCH descriptor inputs, fn_recog_input_floats() each */
    float (*desc_out)[128]; /* FN_DESC_BATCH */
    size_t desc_face[FN_DESC_BATCH]; /* the face (index in faces) of each batch slot */
};

static double ms_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int fail(char *err, size_t errlen, int code, const char *msg, const char *what)
{
    if (err && errlen) snprintf(err, errlen, "%s%s%s", what ? what : "", what ? ": " : "", msg);
    return code;
}

void fn_detect_opts_default(fn_detect_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->detector = FN_DETECTOR_SSD;
    opts->min_confidence = 0.5f;
    opts->tiny_input_size = 416;
    opts->min_face_size = 0;
    opts->landmarks = 1;
    opts->descriptors = 1;
    opts->thumb_size = 0;
    opts->pad = FN_DETECT_PAD_RETRY;
}

/* TinyFaceDetector input sizes: the scratch is sized for the default at creation and grows once
 * if a caller asks for a larger one; sizes above this are refused. */
#define FN_TINY_DEFAULT_INPUT 416
#define FN_TINY_MAX_INPUT     1024

static size_t max_sz(size_t a, size_t b)
{
    return a > b ? a : b;
}

int fn_vision_new(const fn_models *models, fn_vision **out)
{
    if (!out) return FN_ERR_INVALID;
    *out = NULL;
    if (!models) return FN_ERR_INVALID;
    fn_vision *v = calloc(1, sizeof *v);
    if (!v) return FN_ERR_NOMEM;
    v->models = models;
    size_t need = 0;
    if (models->ssd) need = max_sz(need, fn_ssd_scratch_floats());
    if (models->tiny) need = max_sz(need, fn_tiny_scratch_floats(FN_TINY_DEFAULT_INPUT));
    if (models->landmarks || models->landmarks_tiny)
        need = max_sz(need, fn_landmark_scratch_floats());
    if (models->recognition) {
        need = max_sz(need, fn_recog_scratch_floats());
        need = max_sz(need, fn_recog_batch_scratch_floats(FN_DESC_BATCH));
        size_t in = (size_t)FN_DESC_BATCH * fn_recog_input_floats() * sizeof(float);
        v->desc_in = aligned_alloc(64, (in + 63) / 64 * 64);
        v->desc_out = malloc(FN_DESC_BATCH * sizeof *v->desc_out);
        if (!v->desc_in || !v->desc_out) {
            fn_vision_free(v);
            return FN_ERR_NOMEM;
        }
    }
    v->scratch_floats = need;
    v->scratch = need ? aligned_alloc(64, ((need * sizeof(float)) + 63) / 64 * 64) : NULL;
    v->faces = calloc(FN_MAX_FACES, sizeof *v->faces);
    if ((need && !v->scratch) || !v->faces) {
        fn_vision_free(v);
        return FN_ERR_NOMEM;
    }
    *out = v;
    return 0;
}

/* Grows the scratch to `need` floats (only for a larger tiny input size than before). */
static int ensure_scratch(fn_vision *v, size_t need)
{
    if (need <= v->scratch_floats) return 0;
    float *p = aligned_alloc(64, ((need * sizeof(float)) + 63) / 64 * 64);
    if (!p) return FN_ERR_NOMEM;
    free(v->scratch);
    v->scratch = p;
    v->scratch_floats = need;
    return 0;
}

static void free_thumbs(fn_vision *v)
{
    for (size_t i = 0; i < FN_MAX_FACES; i++) {
        free(v->faces[i].thumb_jpeg);
        v->faces[i].thumb_jpeg = NULL;
        v->faces[i].thumb_len = 0;
    }
}

void fn_vision_free(fn_vision *v)
{
    if (!v) return;
    if (v->faces) free_thumbs(v);
    free(v->faces);
    free(v->scratch);
    free(v->desc_in);
    free(v->desc_out);
    free(v);
}

/* Resamples the w x h RGB region at `src` (row stride `stride` bytes) to ow x oh into `dst`: the
 * mean of the source pixels each output pixel covers when shrinking (what a face thumbnail nearly
 * always does), bilinear between pixel centres when enlarging (faces smaller than the thumbnail).
 * Done here rather than by a libvips crop + resize pipeline: for a 112 px thumbnail that pipeline
 * cost more than encoding the JPEG (decision 27). */
static void thumb_resample(const uint8_t *src, size_t stride, int w, int h, uint8_t *dst, int ow,
                           int oh)
{
    const double fx = (double)w / ow, fy = (double)h / oh;
    for (int oy = 0; oy < oh; oy++) {
        int ya = (int)(oy * fy), yb = (int)ceil((oy + 1) * fy);
        if (yb > h) yb = h;
        if (yb <= ya) yb = ya + 1;
        for (int ox = 0; ox < ow; ox++) {
            uint8_t *o = dst + ((size_t)oy * ow + ox) * 3;
            if (fx >= 1.0 && fy >= 1.0) {
                int xa = (int)(ox * fx), xb = (int)ceil((ox + 1) * fx);
                if (xb > w) xb = w;
                if (xb <= xa) xb = xa + 1;
                unsigned sum[3] = {0, 0, 0};
                for (int y = ya; y < yb; y++) {
                    const uint8_t *r = src + (size_t)y * stride + (size_t)xa * 3;
                    for (int x = xa; x < xb; x++, r += 3) {
                        sum[0] += r[0];
                        sum[1] += r[1];
                        sum[2] += r[2];
                    }
                }
                unsigned n = (unsigned)((yb - ya) * (xb - xa));
                for (int c = 0; c < 3; c++)
                    o[c] = (uint8_t)((sum[c] + n / 2) / n);
            } else {
                double sx = fmin(fmax((ox + 0.5) * fx - 0.5, 0), w - 1);
                double sy = fmin(fmax((oy + 0.5) * fy - 0.5, 0), h - 1);
                int x0 = (int)sx, y0 = (int)sy;
                int x1 = x0 + 1 < w ? x0 + 1 : x0, y1 = y0 + 1 < h ? y0 + 1 : y0;
                double ax = sx - x0, ay = sy - y0;
                const uint8_t *r0 = src + (size_t)y0 * stride, *r1 = src + (size_t)y1 * stride;
                for (int c = 0; c < 3; c++) {
                    double top = r0[x0 * 3 + c] + (r0[x1 * 3 + c] - r0[x0 * 3 + c]) * ax;
                    double bot = r1[x0 * 3 + c] + (r1[x1 * 3 + c] - r1[x0 * 3 + c]) * ax;
                    o[c] = (uint8_t)lround(top + (bot - top) * ay);
                }
            }
        }
    }
}

/* A square JPEG thumbnail of the face: the box grown to a square (plus a margin) around its
 * centre, clipped to the image, resampled to at most size x size here and encoded by libjpeg
 * (jpeg_encode.h). Returns 0 or -1. */
static int make_thumb(const fn_image *img, const fn_det *d, int size, uint8_t **jpeg, size_t *len)
{
    double side = fmax(d->w, d->h) * 1.2;
    double cx = d->x + d->w / 2, cy = d->y + d->h / 2;
    int x0 = (int)floor(cx - side / 2), y0 = (int)floor(cy - side / 2);
    int x1 = (int)ceil(cx + side / 2), y1 = (int)ceil(cy + side / 2);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > img->width) x1 = img->width;
    if (y1 > img->height) y1 = img->height;
    if (x1 - x0 < 1 || y1 - y0 < 1) return -1;
    int cw = x1 - x0, ch = y1 - y0;
    double scale = (double)size / (cw > ch ? cw : ch);
    int ow = (int)lround(cw * scale), oh = (int)lround(ch * scale);
    if (ow < 1) ow = 1;
    if (oh < 1) oh = 1;
    uint8_t *px = malloc((size_t)ow * oh * 3);
    if (!px) return -1;
    thumb_resample(img->rgb + ((size_t)y0 * img->width + x0) * 3, (size_t)img->width * 3, cw, ch,
                   px, ow, oh);
    int rc = fn_jpeg_encode_rgb(px, ow, oh, 85, jpeg, len);
    free(px);
    return rc;
}

/* The detector the options ask for on `img`: up to FN_MAX_FACES detections in v->dets, in img's
 * coordinates. Returns how many, or a negative fn_err (message in err). */
static long detect_once(fn_vision *v, const fn_image *img, const fn_detect_opts *opts, float conf,
                        fn_det *dets, char *err, size_t errlen)
{
    const fn_models *m = v->models;
    if (opts->detector == FN_DETECTOR_TINY) {
        int s = opts->tiny_input_size ? opts->tiny_input_size : 416;
        if (!m->tiny)
            return fail(err, errlen, FN_ERR_MODEL, "TinyFaceDetector model not loaded", NULL);
        if (s < 32 || s % 32 || s > FN_TINY_MAX_INPUT)
            return fail(err, errlen, FN_ERR_INVALID,
                        "tiny_input_size must be a multiple of 32 between 32 and 1024", NULL);
        if (ensure_scratch(v, fn_tiny_scratch_floats(s)))
            return fail(err, errlen, FN_ERR_NOMEM, "out of memory for the tiny detector", NULL);
        return (long)fn_tiny_detect(m->tiny, img, s, conf, v->scratch, dets, FN_MAX_FACES);
    }
    if (!m->ssd) return fail(err, errlen, FN_ERR_MODEL, "SsdMobilenetv1 model not loaded", NULL);
    return (long)fn_ssd_detect(m->ssd, img, conf, v->scratch, dets, FN_MAX_FACES);
}

/* Padding before detection (fn_detect_pad). The photo is centred in a square canvas whose side is
 * its longer side times (1 + 2 * pad_fraction), filled as pad_fill says, and the whole shrunk so
 * that side is at most FN_PAD_MAX_SIDE (the detectors see 512 or 416 px anyway, so a larger canvas
 * would only cost memory). The fraction and the fill were chosen with bench/bench_recall (README,
 * "Tight portrait crops"); fn_vision_set_pad_tuning changes them for that benchmark. */
#define FN_PAD_MAX_SIDE    1024
#define FN_PAD_SMALL_SIDE  640 /* FN_DETECT_PAD_SMALL: photos up to this size ... */
#define FN_PAD_SMALL_RATIO 1.5 /* ... whose sides differ by at most this factor */

static float pad_fraction = 0.6f;
static int pad_fill = FN_PAD_FILL_GREY;

void fn_vision_set_pad_tuning(float fraction, int fill)
{
    pad_fraction = fraction;
    pad_fill = fill;
}

/* Detects on the padded canvas and maps the boxes back into img's coordinates, clipped to it
 * (boxes that end up empty are dropped). The photo is shrunk before it is embedded, so the work
 * is proportional to the photo, not to the larger canvas. Returns how many, or a negative fn_err.
 */
static long detect_padded(fn_vision *v, const fn_image *img, const fn_detect_opts *opts, float conf,
                          char *err, size_t errlen)
{
    const int W = img->width, H = img->height;
    fn_image pimg;
    int ox, oy;
    double fx, fy;
    if (fn_pad_canvas(img, pad_fraction, pad_fill, FN_PAD_MAX_SIDE, &pimg, &ox, &oy, &fx, &fy))
        return fail(err, errlen, FN_ERR_NOMEM, "out of memory padding the photo for detection",
                    NULL);
    long n = detect_once(v, &pimg, opts, conf, v->dets, err, errlen);
    free(pimg.rgb);
    long kept = 0;
    for (long i = 0; i < n; i++) {
        fn_det d = v->dets[i];
        double x0 = fmax((d.x - ox) / fx, 0), y0 = fmax((d.y - oy) / fy, 0);
        double x1 = fmin((d.x + d.w - ox) / fx, W), y1 = fmin((d.y + d.h - oy) / fy, H);
        if (!(x1 > x0 && y1 > y0)) continue;
        v->dets[kept++] =
            (fn_det){(float)x0, (float)y0, (float)(x1 - x0), (float)(y1 - y0), d.score};
    }
    return n < 0 ? n : kept;
}

/* Tiled detection (fn_detect_tiles): tiles of FN_TILE_SIDE pixels of the image the detector was
 * given, overlapping by a quarter, so a face up to a quarter of a tile across lies whole in one of
 * them. A tile's face that touches one of its inner edges is cut and dropped (the overlapping
 * tile has it whole). Images whose sides are all below 1.5 tiles gain nothing: the whole-photo
 * pass already sees them near 1:1. */
#define FN_TILE_SIDE   512
#define FN_TILE_STRIDE 384

static double det_iou(const fn_det *a, const fn_det *b)
{
    double w = fmin(a->x + a->w, b->x + b->w) - fmax(a->x, b->x);
    double h = fmin(a->y + a->h, b->y + b->h) - fmax(a->y, b->y);
    if (w <= 0 || h <= 0) return 0;
    return w * h / ((double)a->w * a->h + (double)b->w * b->h - w * h);
}

/* Whether a and b are the same face: overlapping boxes, or one's centre inside the other (a tile
 * box and the whole-photo box of one face differ in size more than IoU tolerates). */
static int same_face(const fn_det *a, const fn_det *b)
{
    double ax = a->x + a->w / 2, ay = a->y + a->h / 2, bx = b->x + b->w / 2, by = b->y + b->h / 2;
    return det_iou(a, b) > 0.3 ||
           (ax >= b->x && ax <= b->x + b->w && ay >= b->y && ay <= b->y + b->h) ||
           (bx >= a->x && bx <= a->x + a->w && by >= a->y && by <= a->y + a->h);
}

static int tile_count(int side)
{
    return side <= FN_TILE_SIDE ? 1
                                : (side - FN_TILE_SIDE + FN_TILE_STRIDE - 1) / FN_TILE_STRIDE + 1;
}

/* Adds to v->dets[0, n) the faces only the tiles find; the first n are kept as they are. Returns
 * the new count, or a negative fn_err. */
static long detect_tiles(fn_vision *v, const fn_image *img, const fn_detect_opts *opts, float conf,
                         long n, char *err, size_t errlen)
{
    const int W = img->width, H = img->height, T = FN_TILE_SIDE;
    if (W < T * 3 / 2 && H < T * 3 / 2) return n;
    const long whole = n;
    const int tw = W < T ? W : T, th = H < T ? H : T;
    uint8_t *buf = malloc((size_t)tw * th * 3);
    fn_det *td = malloc(sizeof(fn_det) * FN_MAX_FACES);
    if (!buf || !td) {
        free(buf), free(td);
        return fail(err, errlen, FN_ERR_NOMEM, "out of memory for tiled detection", NULL);
    }
    const int nx = tile_count(W), ny = tile_count(H);
    for (int ty = 0; ty < ny; ty++)
        for (int tx = 0; tx < nx; tx++) {
            const int x0 = tx * FN_TILE_STRIDE < W - tw ? tx * FN_TILE_STRIDE : W - tw;
            const int y0 = ty * FN_TILE_STRIDE < H - th ? ty * FN_TILE_STRIDE : H - th;
            for (int y = 0; y < th; y++)
                memcpy(buf + (size_t)y * tw * 3, img->rgb + ((size_t)(y0 + y) * W + x0) * 3,
                       (size_t)tw * 3);
            fn_image t = {tw, th, buf};
            long k = detect_once(v, &t, opts, conf, td, err, errlen);
            if (k < 0) {
                free(buf), free(td);
                return k;
            }
            for (long i = 0; i < k; i++) {
                fn_det d = td[i];
                if ((d.x <= 1 && x0 > 0) || (d.y <= 1 && y0 > 0) ||
                    (d.x + d.w >= tw - 1 && x0 + tw < W) || (d.y + d.h >= th - 1 && y0 + th < H))
                    continue; /* cut by an inner edge */
                d.x += (float)x0;
                d.y += (float)y0;
                long j = 0;
                while (j < n && !same_face(&d, &v->dets[j]))
                    j++;
                if (j < n) { /* known: a tile face replaces another tile's weaker one */
                    if (j >= whole && d.score > v->dets[j].score) v->dets[j] = d;
                    continue;
                }
                if (n < FN_MAX_FACES) v->dets[n++] = d;
            }
        }
    free(buf), free(td);
    return n;
}

/* FN_DETECT_TILES_AUTO's rule, measured with bench/bench_recall's group sets (README, "Small
 * faces in large photos"; decision 37): the whole-photo pass cannot see faces of a few pixels at
 * its input, but where such faces are it leaves weak, small candidates behind, or finds one of
 * the larger ones, small. Photos whose faces are all large (the samples as they are, or enlarged
 * to 4000 px) leave almost no such candidates. Sizes are the box's longer side in the detector's
 * input pixels. */
#define FN_TILE_AUTO_FACE  40 /* a face found smaller than this says there may be more */
#define FN_TILE_AUTO_SMALL 32 /* and so does a candidate (above FN_TILE_AUTO_PROBE) this small */

int fn_tiles_auto_pays(int side, int input, const fn_det *dets, size_t n, float conf)
{
    if (side < FN_TILE_SIDE * 3 / 2) return 0; /* the whole pass sees it near 1:1 already */
    for (size_t i = 0; i < n; i++) {
        const double s = fmax(dets[i].w, dets[i].h) * input / side;
        if (dets[i].score > conf ? s < FN_TILE_AUTO_FACE
                                 : dets[i].score > FN_TILE_AUTO_PROBE && s < FN_TILE_AUTO_SMALL)
            return 1;
    }
    return 0;
}

/* Detection as opts asks: the plain pass, the padded one instead of it (near-square small photos
 * with FN_DETECT_PAD_SMALL); then the tiles (FN_DETECT_TILES_ON, or FN_DETECT_TILES_AUTO where
 * fn_tiles_auto_pays); then the padded pass when nothing was found. */
static long detect(fn_vision *v, const fn_image *img, const fn_detect_opts *opts, float conf,
                   char *err, size_t errlen)
{
    const int W = img->width, H = img->height;
    const int lo = W < H ? W : H, hi = W > H ? W : H;
    if (opts->pad == FN_DETECT_PAD_SMALL && hi <= FN_PAD_SMALL_SIDE &&
        hi <= FN_PAD_SMALL_RATIO * lo)
        return detect_padded(v, img, opts, conf, err, errlen);
    long n;
    if (opts->tiles == FN_DETECT_TILES_AUTO &&
        (W >= FN_TILE_SIDE * 3 / 2 || H >= FN_TILE_SIDE * 3 / 2)) {
        /* One pass down to the probe score: its faces above conf are exactly the plain pass's
         * (greedy NMS takes boxes by falling score, so a weaker candidate never suppresses a
         * face), in the same order, ahead of the weaker candidates. */
        n = detect_once(v, img, opts, FN_TILE_AUTO_PROBE < conf ? FN_TILE_AUTO_PROBE : conf,
                        v->dets, err, errlen);
        if (n < 0) return n;
        const int input = opts->detector == FN_DETECTOR_TINY
                              ? (opts->tiny_input_size ? opts->tiny_input_size : 416)
                              : 512;
        const int pays = fn_tiles_auto_pays(hi, input, v->dets, (size_t)n, conf);
        long k = 0;
        while (k < n && v->dets[k].score > conf)
            k++;
        n = k;
        if (pays) n = detect_tiles(v, img, opts, conf, n, err, errlen);
    } else {
        n = detect_once(v, img, opts, conf, v->dets, err, errlen);
        if (n >= 0 && opts->tiles == FN_DETECT_TILES_ON)
            n = detect_tiles(v, img, opts, conf, n, err, errlen);
    }
    if (n == 0 && opts->pad != FN_DETECT_PAD_OFF)
        n = detect_padded(v, img, opts, conf, err, errlen);
    return n;
}

/* Runs the descriptor over the nb inputs queued in v->desc_in and stores each in its face. */
static void flush_descriptors(fn_vision *v, int nb)
{
    if (nb <= 0) return;
    fn_t3 in = {150, 150, 3, v->desc_in};
    fn_recog_forward_batch(v->models->recognition, &in, nb, v->scratch, v->desc_out);
    for (int j = 0; j < nb; j++)
        memcpy(v->faces[v->desc_face[j]].descriptor, v->desc_out[j], sizeof v->desc_out[j]);
}

/* Detection, filtering, landmarks, descriptors and thumbnails on `img`; coordinates are then
 * multiplied by (sx, sy) into the caller's frame. */
static int run_faces(fn_vision *v, const fn_image *img, const fn_detect_opts *opts, double sx,
                     double sy, fn_faces *out, char *err, size_t errlen)
{
    const fn_models *m = v->models;
    /* The reference's options treat 0 as "not given" and use 0.5; a threshold must be below 1. */
    float conf = opts->min_confidence > 0 ? opts->min_confidence : 0.5f;
    if (!(conf < 1.0f))
        return fail(err, errlen, FN_ERR_INVALID, "min_confidence must be below 1", NULL);
    double t0 = ms_now();
    long nd = detect(v, img, opts, conf, err, errlen);
    if (nd < 0) return (int)nd;
    size_t n = (size_t)nd;
    double t1 = ms_now();
    out->ms_detect = t1 - t0;

    const fn_landmark_net *lm = opts->landmarks == 2   ? m->landmarks_tiny
                                : opts->landmarks == 1 ? m->landmarks
                                                       : NULL;
    if (opts->landmarks && !lm)
        return fail(err, errlen, FN_ERR_MODEL, "landmark model not loaded", NULL);
    int want_desc = opts->descriptors && lm;
    if (want_desc && !m->recognition)
        return fail(err, errlen, FN_ERR_MODEL, "FaceRecognitionNet model not loaded", NULL);

    size_t kept = 0;
    double ms_lm = 0, ms_desc = 0;
    const size_t in_floats = want_desc ? fn_recog_input_floats() : 0;
    int nb = 0; /* descriptor inputs queued in v->desc_in */
    for (size_t i = 0; i < n; i++) {
        const fn_det *d = &v->dets[i];
        double fw = d->w * sx, fh = d->h * sy;
        if (opts->min_face_size > 0 && fmin(fw, fh) < opts->min_face_size) {
            out->skipped_small++;
            continue;
        }
        fn_face *f = &v->faces[kept++];
        f->x = (float)(d->x * sx);
        f->y = (float)(d->y * sy);
        f->width = (float)fw;
        f->height = (float)fh;
        f->score = d->score;
        memset(f->landmarks, 0, sizeof f->landmarks);
        memset(f->descriptor, 0, sizeof f->descriptor);
        if (lm) {
            double a = ms_now();
            fn_landmark_run(lm, img, d, v->scratch, f->landmarks);
            double b = ms_now();
            ms_lm += b - a;
            /* The input is taken now, while the landmarks are still in img's frame; the
             * descriptor is computed when the batch is full (a face without one keeps zeros). */
            if (want_desc &&
                fn_recog_input_det(img, d, f->landmarks, v->desc_in + (size_t)nb * in_floats)) {
                v->desc_face[nb++] = kept - 1;
                if (nb == FN_DESC_BATCH) {
                    flush_descriptors(v, nb);
                    nb = 0;
                }
            }
            if (want_desc) ms_desc += ms_now() - b;
            for (int k = 0; k < 68; k++) {
                f->landmarks[k][0] = (float)(f->landmarks[k][0] * sx);
                f->landmarks[k][1] = (float)(f->landmarks[k][1] * sy);
            }
        }
        if (opts->thumb_size > 0)
            (void)make_thumb(img, d, opts->thumb_size, &f->thumb_jpeg, &f->thumb_len);
    }
    double a = ms_now();
    flush_descriptors(v, nb);
    ms_desc += ms_now() - a;
    out->faces = v->faces;
    out->n = kept;
    out->ms_landmarks = ms_lm;
    out->ms_descriptors = ms_desc;
    return 0;
}

static int check_args(fn_vision *v, const fn_detect_opts *opts, fn_faces *out, char *err,
                      size_t errlen)
{
    if (!v || !opts || !out) return fail(err, errlen, FN_ERR_INVALID, "invalid arguments", NULL);
    memset(out, 0, sizeof *out);
    out->info.taken_at = -1;
    free_thumbs(v);
    if (opts->descriptors && !opts->landmarks)
        return fail(err, errlen, FN_ERR_INVALID, "descriptors need landmarks", NULL);
    if (opts->precision != FN_PRECISION_FP32 && opts->precision != FN_PRECISION_BF16 &&
        opts->precision != FN_PRECISION_INT16)
        return fail(err, errlen, FN_ERR_INVALID, "unknown precision", NULL);
    return 0;
}

int fn_vision_precision_supported(fn_precision p, const char **reason)
{
    if (p == FN_PRECISION_FP32) {
        if (reason) *reason = NULL;
        return 1;
    }
    if (p == FN_PRECISION_INT16) return fn_i16_available(reason);
    if (p != FN_PRECISION_BF16) {
        if (reason) *reason = "unknown precision";
        return 0;
    }
    return fn_amx_available(reason);
}

fn_precision fn_vision_precision_auto(void)
{
    return fn_i16_preferred() ? FN_PRECISION_INT16 : FN_PRECISION_FP32;
}

/* The precisions' names, indexed by fn_precision. */
static const char *const precision_names[] = {
    [FN_PRECISION_FP32] = "fp32", [FN_PRECISION_BF16] = "bf16", [FN_PRECISION_INT16] = "int16"};

const char *fn_vision_precision_name(fn_precision p)
{
    return (unsigned)p < sizeof precision_names / sizeof *precision_names ? precision_names[p]
                                                                          : "unknown";
}

int fn_vision_precision_parse(const char *name, fn_precision *out)
{
    if (!name || !out) return FN_ERR_INVALID;
    if (!strcmp(name, "auto")) {
        *out = fn_vision_precision_auto();
        return 0;
    }
    for (size_t i = 0; i < sizeof precision_names / sizeof *precision_names; i++)
        if (!strcmp(name, precision_names[i])) {
            *out = (fn_precision)i;
            return 0;
        }
    return FN_ERR_INVALID;
}

/* run_faces in the precision opts ask for: BF16 turns the thread's AMX kernels on (after the
 * shared models' BF16 packs exist), int16 its int16 kernel (likewise), for this call only. */
static int run_faces_in(fn_vision *v, const fn_image *img, const fn_detect_opts *opts, double sx,
                        double sy, fn_faces *out, char *err, size_t errlen)
{
    int bf16 = opts->precision == FN_PRECISION_BF16 && fn_amx_available(NULL);
    if (bf16 && fn_models_amx_init(v->models, FN_MODELS_BF16))
        return fail(err, errlen, FN_ERR_NOMEM, "out of memory for the BF16 weights", NULL);
    int i16 = opts->precision == FN_PRECISION_INT16 && fn_i16_available(NULL);
    if (i16 && fn_models_i16_init(v->models))
        return fail(err, errlen, FN_ERR_NOMEM, "out of memory for the int16 weights", NULL);
    const int was = fn_amx_set_thread(bf16), was16 = fn_i16_set_thread(i16);
    int rc = run_faces(v, img, opts, sx, sy, out, err, errlen);
    fn_amx_set_thread(was);
    fn_i16_set_thread(was16);
    return rc;
}

int fn_vision_detect_image(fn_vision *v, const fn_image *img, const fn_detect_opts *opts,
                           fn_faces *out, char *err, size_t errlen)
{
    int rc = check_args(v, opts, out, err, errlen);
    if (rc) return rc;
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
        return fail(err, errlen, FN_ERR_INVALID, "empty image", NULL);
    out->width = out->info.width = img->width;
    out->height = out->info.height = img->height;
    out->info.orientation = 1;
    return run_faces_in(v, img, opts, 1.0, 1.0, out, err, errlen);
}

int fn_vision_decode_file(const char *path, fn_decoded *d, char *err, size_t errlen)
{
    if (!d) return fail(err, errlen, FN_ERR_INVALID, "invalid arguments", NULL);
    memset(d, 0, sizeof *d);
    d->info.taken_at = -1;
    if (!path) return fail(err, errlen, FN_ERR_INVALID, "no path", NULL);
    double t0 = ms_now();
    int rc = fn_image_load_near(path, FN_USEFUL_SIDE, &d->img, &d->info, err, errlen);
    d->ms_decode = ms_now() - t0;
    return rc;
}

void fn_decoded_free(fn_decoded *d)
{
    if (!d) return;
    fn_image_free(&d->img);
    memset(d, 0, sizeof *d);
}

int fn_vision_detect_decoded(fn_vision *v, const fn_decoded *d, const fn_detect_opts *opts,
                             fn_faces *out, char *err, size_t errlen)
{
    int rc = check_args(v, opts, out, err, errlen);
    if (rc) return rc;
    if (!d || !d->img.rgb || d->img.width <= 0 || d->img.height <= 0 || d->info.width <= 0 ||
        d->info.height <= 0)
        return fail(err, errlen, FN_ERR_INVALID, "no decoded photo", NULL);
    out->info = d->info;
    out->ms_decode = d->ms_decode;
    out->width = d->info.width;
    out->height = d->info.height;
    double sx = (double)d->info.width / d->img.width, sy = (double)d->info.height / d->img.height;
    return run_faces_in(v, &d->img, opts, sx, sy, out, err, errlen);
}

int fn_vision_detect_file(fn_vision *v, const char *path, const fn_detect_opts *opts, fn_faces *out,
                          char *err, size_t errlen)
{
    int rc = check_args(v, opts, out, err, errlen);
    if (rc) return rc;
    fn_decoded d;
    if ((rc = fn_vision_decode_file(path, &d, err, errlen)) != 0) {
        out->info = d.info;
        out->ms_decode = d.ms_decode;
        return rc;
    }
    rc = fn_vision_detect_decoded(v, &d, opts, out, err, errlen);
    fn_decoded_free(&d);
    return rc;
}

float fn_descriptor_distance(const float a[128], const float b[128])
{
    double s = 0;
    for (int i = 0; i < 128; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return (float)sqrt(s);
}
