/* tiny.c: TinyFaceDetector, face-api's fast detector (a Tiny YOLO v2 with separable convs).
 *
 * The network (tinyYolov2/TinyYolov2Base.ts runMobilenet with the TinyFaceDetector config):
 *   input: the image padded at the bottom/right to a square, resized to input_size (a multiple
 *     of 32), then (rgb - mean_rgb) / 255;
 *   conv0: 3x3 VALID conv 3->16 + bias, leaky relu (0.1); max pool 2/2 SAME;
 *   conv1..conv5: zero pad 1, depthwise 3x3, pointwise 1x1 + bias, leaky relu; a max pool 2/2
 *     SAME after conv1..conv4 and a max pool 2/1 SAME after conv5;
 *   conv8: 1x1 conv 512 -> 25 + bias: per cell of the (input_size/32)^2 grid, 5 anchors x
 *     (x, y, w, h, score).
 *   decoding: score = sigmoid, kept when > min_confidence; centre (cell + sigmoid) / grid, size
 *     exp(v) * anchor / grid, both times input_size / (resized side) to undo the padding; greedy
 *     NMS at IoU 0.4 (no limit on the count); boxes scaled by the image size (not clipped).
 *
 * What must stay true: bind checks every tensor; forward/detect allocate nothing and stay within
 * fn_tiny_scratch_floats(input_size). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vision/gemm_amx.h"
#include "vision/nets.h"
#include "vision/preprocess.h"

#define TINY_ANCHORS 5
#define TINY_IOU     0.4

static const double tiny_anchor[TINY_ANCHORS][2] = {{1.603231, 2.094468},
                                                    {6.041143, 7.080126},
                                                    {2.882459, 3.518061},
                                                    {4.266906, 5.178857},
                                                    {9.041765, 10.66308}};
static const float tiny_mean[3] = {117.001f, 114.697f, 97.404f};

typedef struct tiny_sep {
    const float *dw, *pw, *b;
    int cin, cout;
    fn_wpack pwp; /* pw packed for the GEMM once, at bind (owned) */
} tiny_sep;

struct fn_tiny_net {
    const float *conv0_w, *conv0_b;
    tiny_sep sep[6]; /* 1..5 */
    const float *conv8_w, *conv8_b;
    fn_wpack conv0_p, conv8_p; /* packed conv0_w, conv8_w (owned) */
};

void fn_tiny_free(fn_tiny_net *n)
{
    if (!n) return;
    fn_wpack_free(&n->conv0_p);
    fn_wpack_free(&n->conv8_p);
    for (int i = 1; i <= 5; i++)
        fn_wpack_free(&n->sep[i].pwp);
    free(n);
}

int fn_tiny_amx_init(fn_tiny_net *n)
{
    int bad = fn_wpack_amx_init(&n->conv0_p);
    bad |= fn_wpack_amx_init(&n->conv8_p);
    for (int i = 1; i <= 5; i++)
        bad |= fn_wpack_amx_init(&n->sep[i].pwp);
    return bad ? -1 : 0;
}

int fn_tiny_bind(const fn_weights *w, fn_tiny_net **out, char *err, size_t errlen)
{
    static const int ch[7] = {3, 16, 32, 64, 128, 256, 512};
    char name[64];
    const fn_tensor *t;
    *out = NULL;
    fn_tiny_net *n = calloc(1, sizeof *n);
    if (!n) return FN_ERR_NOMEM;
#define TGET(nm, rank, ...)                                                                        \
    do {                                                                                           \
        const int shp_[] = {__VA_ARGS__};                                                          \
        if (!(t = fn_weights_get(w, nm, rank, shp_, err, errlen))) goto fail;                      \
    } while (0)
    TGET("conv0/filters", 4, 3, 3, 3, 16);
    n->conv0_w = t->d;
    TGET("conv0/bias", 1, 16);
    n->conv0_b = t->d;
    for (int i = 1; i <= 5; i++) {
        int cin = ch[i], cout = ch[i + 1];
        snprintf(name, sizeof name, "conv%d/depthwise_filter", i);
        TGET(name, 4, 3, 3, cin, 1);
        n->sep[i].dw = t->d;
        snprintf(name, sizeof name, "conv%d/pointwise_filter", i);
        TGET(name, 4, 1, 1, cin, cout);
        n->sep[i].pw = t->d;
        snprintf(name, sizeof name, "conv%d/bias", i);
        TGET(name, 1, cout);
        n->sep[i].b = t->d;
        n->sep[i].cin = cin;
        n->sep[i].cout = cout;
    }
    TGET("conv8/filters", 4, 1, 1, 512, 25);
    n->conv8_w = t->d;
    TGET("conv8/bias", 1, 25);
    n->conv8_b = t->d;
#undef TGET
    int bad = fn_wpack_init(&n->conv0_p, n->conv0_w, 27, 16);
    bad |= fn_wpack_init(&n->conv8_p, n->conv8_w, 512, 25);
    for (int i = 1; i <= 5; i++)
        bad |= fn_wpack_init(&n->sep[i].pwp, n->sep[i].pw, n->sep[i].cin, n->sep[i].cout);
    if (bad) {
        snprintf(err, errlen, "out of memory binding the tiny face detector");
        fn_tiny_free(n);
        return FN_ERR_NOMEM;
    }
    *out = n;
    return 0;
fail:
    fn_tiny_free(n);
    return FN_ERR_MODEL;
}

/* Scratch: two activation buffers, the convs' scratch, the input, the output grid. conv0 and the
 * separable blocks before a stride-2 pool are pooled strip by strip (fn_conv2d_pool_w,
 * fn_sepconv_pool_w), so the largest map held is conv0's pooled one. */
static size_t tiny_buf_floats(int s)
{
    size_t h1 = (size_t)(s - 1) / 2; /* after the first pool, ceil((s - 2) / 2) */
    return h1 * h1 * 16;
}

/* The convs' scratch: conv0's strips or a separable block's (fn_conv2d_pool_w, fn_sepconv_pool_w,
 * and for the last block fn_sepconv_w). */
static size_t tiny_col_floats(int s)
{
    size_t m = fn_conv2d_pool_scratch_floats(s, s, 3, 3, 16);
    int sz = (s - 2 + 1) / 2; /* after conv0 and the first pool */
    for (int i = 1; i <= 5; i++) {
        static const int cin[6] = {0, 16, 32, 64, 128, 256};
        size_t f = i < 5 ? fn_sepconv_pool_scratch_floats(sz, sz, cin[i], 2 * cin[i])
                         : fn_sepconv_scratch_floats(sz, sz, cin[i], 1);
        if (f > m) m = f;
        if (i < 5) sz = (sz + 1) / 2;
    }
    return (m + 15) / 16 * 16;
}

size_t fn_tiny_scratch_floats(int input_size)
{
    int s = input_size;
    size_t g = (size_t)s / 32;
    return 2 * tiny_buf_floats(s) + tiny_col_floats(s) + (size_t)s * s * 3 + g * g * 25 + 2 +
           2 * g * g * TINY_ANCHORS * 6;
}

void fn_tiny_forward(const fn_tiny_net *n, const fn_t3 *in, float *scratch, float *out)
{
    const size_t bufn = tiny_buf_floats(in->h);
    float *col = scratch + 2 * bufn;
    fn_t3 a = {0, 0, 0, scratch}, b = {0, 0, 0, scratch + bufn};

    fn_conv2d_pool_w(in, &n->conv0_p, n->conv0_b, 3, FN_ACT_LEAKY, &b, col);
    for (int i = 1; i <= 4; i++) {
        const tiny_sep *s = &n->sep[i];
        fn_sepconv_pool_w(&b, s->dw, NULL, FN_ACT_NONE, &s->pwp, s->b, FN_ACT_LEAKY, &a, col);
        const fn_t3 t = a;
        a = b;
        b = t;
    }
    /* The last pool is at stride 1 (its windows overlap): after the conv. */
    const tiny_sep *s5 = &n->sep[5];
    fn_sepconv_w(&b, s5->dw, NULL, 1, FN_ACT_NONE, &s5->pwp, s5->b, FN_ACT_LEAKY, &a, col);
    fn_maxpool(&a, 2, 1, FN_PAD_SAME, &b);
    fn_t3 o = {0, 0, 0, out};
    fn_conv2d_w(&b, &n->conv8_p, n->conv8_b, 1, 1, 1, FN_PAD_VALID, FN_ACT_NONE, &o, NULL);
}

static double sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

typedef struct tiny_box {
    double x, y, w, h; /* relative to the image (times the padding correction) */
    double score;
} tiny_box;

static double box_iou(const tiny_box *a, const tiny_box *b, double s)
{
    double al = a->x * s, at = a->y * s, aw = a->w * s, ah = a->h * s;
    double bl = b->x * s, bt = b->y * s, bw = b->w * s, bh = b->h * s;
    double w = fmax(0.0, fmin(al + aw, bl + bw) - fmax(al, bl));
    double h = fmax(0.0, fmin(at + ah, bt + bh) - fmax(at, bt));
    double inter = w * h;
    return inter / (aw * ah + bw * bh - inter);
}

size_t fn_tiny_detect(const fn_tiny_net *n, const fn_image *img, int input_size,
                      float min_confidence, float *scratch, fn_det *out, size_t cap)
{
    const int s = input_size;
    const int g = s / 32;
    if (!img || img->width <= 0 || img->height <= 0 || s < 32 || s % 32) return 0;
    const size_t bufn = tiny_buf_floats(s);
    float *in_d = scratch + 2 * bufn + tiny_col_floats(s);
    float *grid = in_d + (size_t)s * s * 3;
    /* The candidates hold doubles: keep them 8-byte aligned. */
    tiny_box *cand = (tiny_box *)(grid + (((size_t)g * g * 25 + 1) & ~(size_t)1));
    fn_t3 in = {s, s, 3, in_d};

    fn_pad_resize_region(img, 0, 0, img->width, img->height, 0, s, &in);
    for (size_t i = 0; i < (size_t)s * s; i++)
        for (int c = 0; c < 3; c++)
            in_d[i * 3 + c] = (in_d[i * 3 + c] - tiny_mean[c]) / 255.0f;
    fn_tiny_forward(n, &in, scratch, grid);

    const int iw = img->width, ih = img->height;
    const double scale = (double)s / (iw > ih ? iw : ih);
    const double rw = floor(iw * scale + 0.5), rh = floor(ih * scale + 0.5);
    const double side = rw > rh ? rw : rh;
    const double cfx = side / rw, cfy = side / rh;
    int nc = 0;
    for (int row = 0; row < g; row++)
        for (int col = 0; col < g; col++)
            for (int a = 0; a < TINY_ANCHORS; a++) {
                const float *v = grid + ((size_t)row * g + col) * 25 + a * 5;
                double score = sigmoid(v[4]);
                if (!(score > min_confidence)) continue;
                tiny_box *bx = &cand[nc++];
                double ctx = (col + sigmoid(v[0])) / g * cfx;
                double cty = (row + sigmoid(v[1])) / g * cfy;
                bx->w = exp(v[2]) * tiny_anchor[a][0] / g * cfx;
                bx->h = exp(v[3]) * tiny_anchor[a][1] / g * cfy;
                bx->x = ctx - bx->w / 2;
                bx->y = cty - bx->h / 2;
                bx->score = score;
            }

    /* ops/nonMaxSuppression.ts: stable ascending sort, then pop the last (highest) repeatedly:
     * among equal scores the later candidate wins. Sorting descending with ties reversed gives
     * the same order. */
    int *order = (int *)(cand + nc);
    for (int i = 0; i < nc; i++)
        order[i] = i;
    for (int i = 1; i < nc; i++) {
        int v = order[i], j = i - 1;
        while (j >= 0 && cand[order[j]].score <= cand[v].score) {
            order[j + 1] = order[j];
            j--;
        }
        order[j + 1] = v;
    }
    size_t nout = 0;
    int live = nc;
    while (live > 0) {
        int cur = order[0];
        if (nout < cap) {
            const tiny_box *bx = &cand[cur];
            fn_det *d = &out[nout++];
            d->x = (float)(bx->x * iw);
            d->y = (float)(bx->y * ih);
            d->w = (float)(bx->w * iw);
            d->h = (float)(bx->h * ih);
            d->score = (float)bx->score;
        }
        int k = 0;
        for (int i = 1; i < live; i++)
            if (box_iou(&cand[cur], &cand[order[i]], s) <= TINY_IOU) order[k++] = order[i];
        live = k;
    }
    return nout;
}
