/* preprocess.c: padToSquare + resizeBilinear as face-api does them, in one pass over the pixels.
 *
 * What must stay true (compare NetInput.toBatchTensor and ops/padToSquare.ts of the reference):
 * - the padded square has side max(w, h); the padding is zeros; with centring the part after the
 *   image is round(diff / 2) and the part before it diff - round(diff / 2);
 * - the resize is TFJS's wasm kernel (the reference backend of our goldens): scale = side / s and
 *   source = dst * scale in float32, neighbours floor(source) and min(ceil(source), side - 1),
 *   lerps in float32 (TFJS's CPU backend does the same in double: differences ~1e-3). A
 *   square already of side s is copied unchanged, which the same formula gives too. */
#include "vision/preprocess.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vision/nets.h"

#define PR_BLOCK 512 /* output columns per table block */

/* One padded-square pixel row (y in square coordinates) as a pointer to image bytes, or NULL for a
 * padding row. */
static const uint8_t *square_row(const fn_image *img, int rx, int ry, int rh, int py, int y)
{
    int iy = y - py;
    if (iy < 0 || iy >= rh) return NULL;
    return img->rgb + ((size_t)(ry + iy) * img->width + rx) * 3;
}

/* The columns of one block of output columns: per column the byte offsets of its two source
 * pixels in a row (-1: padding) and its weight; [lo, hi) are the columns whose two pixels are both
 * in the image (offsets are monotonic, so padding columns are only before lo and from hi on). */
typedef struct pr_cols {
    int n, lo, hi;
    int off0[PR_BLOCK], off1[PR_BLOCK];
    float wx[PR_BLOCK];
} pr_cols;

/* One source row lerped along x for a block's columns: h[i*3+c] = tl + (tr - tl) * dx, with a
 * padding row or pixel read as 0 (the same float operations as lerping zeros). */
static void lerp_row(const pr_cols *k, const uint8_t *r, float *h)
{
    if (!r) {
        memset(h, 0, sizeof(float) * (size_t)k->n * 3);
        return;
    }
    for (int i = 0; i < k->n; i++) {
        if (i == k->lo && k->hi > k->lo) {
            for (; i < k->hi; i++) { /* both pixels in the image: no tests */
                const uint8_t *p0 = r + k->off0[i], *p1 = r + k->off1[i];
                const float dx = k->wx[i];
                for (int c = 0; c < 3; c++) {
                    float tl = p0[c], tr = p1[c];
                    h[i * 3 + c] = tl + (tr - tl) * dx;
                }
            }
            if (i == k->n) break;
        }
        const int a0 = k->off0[i], a1 = k->off1[i];
        const float dx = k->wx[i];
        for (int c = 0; c < 3; c++) {
            float tl = a0 >= 0 ? r[a0 + c] : 0.0f;
            float tr = a1 >= 0 ? r[a1 + c] : 0.0f;
            h[i * 3 + c] = tl + (tr - tl) * dx;
        }
    }
}

void fn_pad_resize_region(const fn_image *img, int rx, int ry, int rw, int rh, int center, int s,
                          fn_t3 *out)
{
    const int side = rw > rh ? rw : rh;
    const int diff = rw > rh ? rw - rh : rh - rw;
    const int after = center ? (int)floor(diff * 0.5 + 0.5) : diff;
    const int before = diff - after;
    const int px = rw < rh ? before : 0; /* padding columns before the image */
    const int py = rh < rw ? before : 0; /* padding rows before the image */
    const float ratio = (float)side / (float)s;

    out->h = out->w = s;
    out->c = 3;
    /* Per block of output columns: the columns' source offsets and weights (once per call, not
     * per row), then per output row its two source rows lerped along x (each source row once:
     * when a row's first source row is the last row's second, that lerp is reused) and the two
     * lerped along y. Each output is top + (bot - top) * dy of those, as the reference computes. */
    pr_cols k; /* 18 KB of stack with hbuf */
    float hbuf[2][PR_BLOCK * 3];
    for (int cb = 0; cb < s; cb += PR_BLOCK) {
        k.n = s - cb < PR_BLOCK ? s - cb : PR_BLOCK;
        k.lo = k.n;
        k.hi = 0;
        for (int i = 0; i < k.n; i++) {
            float fx = ratio * (float)(cb + i);
            int x0 = (int)floorf(fx);
            int x1 = (int)ceilf(fx);
            if (x1 > side - 1) x1 = side - 1;
            k.wx[i] = fx - (float)x0;
            int ix0 = x0 - px, ix1 = x1 - px;
            k.off0[i] = ix0 >= 0 && ix0 < rw ? ix0 * 3 : -1;
            k.off1[i] = ix1 >= 0 && ix1 < rw ? ix1 * 3 : -1;
            if (k.off0[i] >= 0 && k.off1[i] >= 0) {
                if (i < k.lo) k.lo = i;
                k.hi = i + 1;
            }
        }
        float *top = hbuf[0], *bot = hbuf[1];
        int ytop = -1, ybot = -1; /* the source rows now in top and bot */
        for (int oy = 0; oy < s; oy++) {
            float fy = ratio * (float)oy;
            int y0 = (int)floorf(fy);
            int y1 = (int)ceilf(fy);
            if (y1 > side - 1) y1 = side - 1;
            float dy = fy - (float)y0;
            if (y0 == ybot && y0 != ytop) { /* the last row's second source row is this first */
                float *t = top;
                top = bot;
                bot = t;
                ytop = ybot;
                ybot = -1;
            }
            if (y0 != ytop) {
                lerp_row(&k, square_row(img, rx, ry, rh, py, y0), top);
                ytop = y0;
            }
            if (y1 != ybot) {
                if (y1 == ytop)
                    memcpy(bot, top, sizeof(float) * (size_t)k.n * 3);
                else
                    lerp_row(&k, square_row(img, rx, ry, rh, py, y1), bot);
                ybot = y1;
            }
            float *o = out->d + ((size_t)oy * s + cb) * 3;
            for (int j = 0; j < k.n * 3; j++)
                o[j] = top[j] + (bot[j] - top[j]) * dy;
        }
    }
}

int fn_clip_box(int img_w, int img_h, float x, float y, float w, float h, int *cx, int *cy, int *cw,
                int *ch)
{
    /* Box.clipAtImageBorders, in double as JavaScript computes it. */
    double bx = x, by = y, right = (double)x + w, bottom = (double)y + h;
    double nx = bx > 0 ? bx : 0, ny = by > 0 ? by : 0;
    double nw = right - nx, nh = bottom - ny;
    if (nw > img_w - nx) nw = img_w - nx;
    if (nh > img_h - ny) nh = img_h - ny;
    *cx = (int)floor(nx);
    *cy = (int)floor(ny);
    *cw = (int)floor(nw);
    *ch = (int)floor(nh);
    /* Flooring x and width separately can reach one column past the edge; the reference's slice
     * would fail there, so keep the box inside. */
    if (*cx + *cw > img_w) *cw = img_w - *cx;
    if (*cy + *ch > img_h) *ch = img_h - *cy;
    return *cw > 0 && *ch > 0;
}

void fn_crop_square_resize(const fn_image *img, float x, float y, float w, float h, int s,
                           fn_t3 *out)
{
    int cx, cy, cw, ch;
    if (!fn_clip_box(img->width, img->height, x, y, w, h, &cx, &cy, &cw, &ch)) {
        out->h = out->w = s;
        out->c = 3;
        memset(out->d, 0, sizeof(float) * (size_t)s * s * 3);
        return;
    }
    fn_pad_resize_region(img, cx, cy, cw, ch, 1, s, out);
}

/* img shrunk to w x h (at most its size) by averaging each output pixel's box of source pixels:
 * antialiased, and one pass over the photo (a libvips lanczos3 resize here cost as much as a
 * photo's whole detection on large faceless photos, docs/design.md decision 64). */
static void shrink_box(const fn_image *img, int w, int h, uint8_t *out)
{
    const int W = img->width, H = img->height;
    for (int y = 0; y < h; y++) {
        const int y0 = (int)((long)y * H / h), y1 = (int)((long)(y + 1) * H / h);
        for (int x = 0; x < w; x++) {
            const int x0 = (int)((long)x * W / w), x1 = (int)((long)(x + 1) * W / w);
            unsigned sum[3] = {0, 0, 0};
            for (int yy = y0; yy < y1; yy++) {
                const uint8_t *p = img->rgb + ((size_t)yy * W + (size_t)x0) * 3;
                for (int xx = x0; xx < x1; xx++, p += 3)
                    sum[0] += p[0], sum[1] += p[1], sum[2] += p[2];
            }
            const unsigned n = (unsigned)((y1 - y0) * (x1 - x0));
            for (int c = 0; c < 3; c++)
                out[((size_t)y * w + (size_t)x) * 3 + (size_t)c] = (uint8_t)((sum[c] + n / 2) / n);
        }
    }
}

/* Where canvas coordinate v (relative to the image's first pixel) reads the image of n pixels
 * along that axis under `fill`: itself inside; outside, -1 (the fill colour), the nearest edge
 * pixel (FN_PAD_FILL_EDGE), or the image mirrored about its edges, repeating every 2n
 * (FN_PAD_FILL_MIRROR): what libvips' embed does with each extend mode. */
static int pad_source(int v, int n, int fill)
{
    if (v >= 0 && v < n) return v;
    if (fill == FN_PAD_FILL_EDGE) return v < 0 ? 0 : n - 1;
    if (fill != FN_PAD_FILL_MIRROR) return -1;
    const int m = ((v % (2 * n)) + 2 * n) % (2 * n);
    return m < n ? m : 2 * n - 1 - m;
}

int fn_pad_canvas(const fn_image *img, float fraction, int fill, int max_side, fn_image *out,
                  int *ox, int *oy, double *fx, double *fy)
{
    const int W = img->width, H = img->height, side = W > H ? W : H;
    const double S = side * (1.0 + 2.0 * fraction);
    const double f = S > max_side ? max_side / S : 1.0;
    /* The shrunk photo (w x h) centred in an s x s canvas. */
    const int w = f < 1.0 ? (int)fmax(1.0, (double)lround(W * f)) : W;
    const int h = f < 1.0 ? (int)fmax(1.0, (double)lround(H * f)) : H;
    const int s = (int)lround(S * f);
    *ox = (s - w) / 2, *oy = (s - h) / 2;
    *fx = (double)w / W, *fy = (double)h / H;
    uint8_t *small = f < 1.0 ? malloc((size_t)w * h * 3) : NULL;
    *out = (fn_image){s, s, malloc((size_t)s * s * 3)};
    if ((f < 1.0 && !small) || !out->rgb) {
        free(small), free(out->rgb);
        out->rgb = NULL;
        return FN_ERR_NOMEM;
    }
    if (small) shrink_box(img, w, h, small);
    const uint8_t *src = small ? small : img->rgb;
    const uint8_t colour = fill == FN_PAD_FILL_GREY ? 128 : 0;
    for (int y = 0; y < s; y++) {
        uint8_t *row = out->rgb + (size_t)y * s * 3;
        const int sy = pad_source(y - *oy, h, fill);
        for (int x = 0; x < s; x++) {
            const int sx = sy < 0 ? -1 : pad_source(x - *ox, w, fill);
            if (sx < 0)
                memset(row + (size_t)x * 3, colour, 3);
            else
                memcpy(row + (size_t)x * 3, src + ((size_t)sy * w + (size_t)sx) * 3, 3);
        }
    }
    free(small);
    return 0;
}
