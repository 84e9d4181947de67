/* ssd.c: SsdMobilenetv1, face-api's default face detector (512x512 input).
 *
 * The network (the .ts files of ssdMobilenetv1/ in the reference):
 *   input: the image padded at the bottom/right to a square, resized to 512, then x / 127.5 - 1;
 *   MobileNetV1: conv 3x3/2 (+ offset, relu6), then 13 pairs of depthwise 3x3 (batch norm,
 *     relu6; stride 2 at pairs 2, 4, 6, 12) and pointwise 1x1 (+ offset, relu6);
 *   prediction layers: 8 more convs (1x1, then 3x3/2, alternating; + offset, relu6) and six box
 *     predictors (1x1 conv + bias: 4 box values and 3 class logits per anchor) on conv11, the
 *     backbone output and prediction convs 1, 3, 5, 7: 3072+1536+384+96+24+6 = 5118 anchors
 *     (here each predictor's two convs are one, its box columns then its class columns, so its
 *     input map is read once);
 *   output: boxes decoded against the anchors of Output/extra_dim ([ymin, xmin, ymax, xmax],
 *     scales 10, 10, 5, 5), scores = sigmoid(class logit 1);
 *   detection: scores > min_confidence, greedy NMS at IoU 0.5 (at most 100 faces), boxes clipped
 *     to 0..1, scaled by 512 / (the resized image's size) and then by the image size.
 *
 * What must stay true: bind checks every tensor's name and shape; the depthwise batch norms are
 * folded into the depthwise weights once at bind time (scale = gamma / sqrt(var + eps)); forward
 * and detect use only the caller's scratch (fn_ssd_scratch_floats()). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vision/gemm_amx.h"
#include "vision/gemm_i16.h"
#include "vision/nets.h"
#include "vision/preprocess.h"

#define SSD_SIZE    512
#define SSD_ANCHORS 5118
#define SSD_MAX_DET 100
#define SSD_IOU     0.5
#define BN_EPS      0.0010000000474974513

typedef struct ssd_conv {
    const float *w; /* HWIO */
    const float *b; /* [cout] */
    int k, cin, cout;
    fn_wpack wp;         /* w packed for the GEMM once, at bind (owned) */
    double qscale, qmin; /* w's byte quantization (weights.h), qscale 0 when it has none */
} ssd_conv;

typedef struct ssd_dw {
    float *w; /* [3][3][c], batch norm scale folded in (owned) */
    float *b; /* [c] folded offset (owned) */
    int c;
} ssd_dw;

struct fn_ssd_net {
    ssd_conv conv0;
    ssd_dw dw[14];        /* 1..13 */
    ssd_conv pw[14];      /* 1..13 */
    ssd_conv pred[8];     /* Prediction/Conv2d_i_pointwise */
    ssd_conv head[6];     /* BoxEncodingPredictor's columns, then ClassPredictor's */
    float *head_wb[6];    /* head[i]'s weights [cin][7 * anchors], then bias (owned) */
    const float *anchors; /* [5118][4] */
};

/* Scratch layout (floats). */
#define BUFA_FLOATS ((size_t)256 * 256 * 64) /* odd blocks' outputs: block 1's is the largest */
#define BUFB_FLOATS ((size_t)256 * 256 * 32) /* conv0's and the even blocks' outputs */
#define COL_FLOATS  ssd_col_floats()
#define IN_FLOATS   ((size_t)SSD_SIZE * SSD_SIZE * 3)
#define RAWB_FLOATS ((size_t)SSD_ANCHORS * 4)
#define RAWC_FLOATS ((size_t)SSD_ANCHORS * 3)

/* conv0 and blocks 1..SSD_CHAIN run as one chain (fn_sepchain_w): their 256x256 and 128x128
 * maps stay in cache instead of going through memory. The chain's output goes to the buffer the
 * layers one by one would have left it in (a for an odd block). */
#ifndef SSD_CHAIN
#define SSD_CHAIN 5
#endif
/* Beyond block 11 the chain would swallow conv11, which the first box predictor reads. */
_Static_assert(SSD_CHAIN >= 1 && SSD_CHAIN <= 11, "SSD_CHAIN: blocks 1..1 to 1..11");

static int ssd_stride(int i)
{
    return (i == 2 || i == 4 || i == 6 || i == 12) ? 2 : 1;
}

/* The chain's blocks (1..SSD_CHAIN at [0..SSD_CHAIN-1]); with n NULL only the shapes (in
 * `shapes`), for the scratch size. */
static void ssd_chain_blocks(const fn_ssd_net *n, fn_sep_block *blocks, fn_wpack *shapes)
{
    static const int pw_out[14] = {32,  64,  128, 128, 256, 256,  512,
                                   512, 512, 512, 512, 512, 1024, 1024};
    for (int i = 1; i <= SSD_CHAIN; i++) {
        if (!n) shapes[i] = (fn_wpack){.k = pw_out[i - 1], .n = pw_out[i]};
        blocks[i - 1] = (fn_sep_block){
            n ? n->dw[i].w : NULL,         n ? n->dw[i].b : NULL, ssd_stride(i), FN_ACT_RELU6,
            n ? &n->pw[i].wp : &shapes[i], n ? n->pw[i].b : NULL, FN_ACT_RELU6};
    }
}

/* The scratch of the convs: the largest im2col strip of the 3x3 convs (conv0 and prediction
 * convs 1, 3, 5, 7), depthwise strip of the 13 separable blocks, the chain's buffers, or box
 * predictor output (run_predictor's, the largest on conv11: 32x32 pixels, 7 x 3 anchors). */
static size_t ssd_col_floats(void)
{
    static const int pw_in[14] = {0,   32,  64,  128, 128, 256, 256,
                                  512, 512, 512, 512, 512, 512, 1024};
    static const int in_s[5] = {512, 16, 8, 4, 2}, in_c[5] = {3, 256, 128, 128, 64};
    size_t m = (size_t)32 * 32 * 7 * 3;
    for (int i = 0; i < 5; i++) {
        size_t f = fn_conv2d_scratch_floats(in_s[i], in_s[i], in_c[i], 3, 3, 2, FN_PAD_SAME);
        if (f > m) m = f;
    }
    fn_sep_block blocks[13];
    fn_wpack shapes[14];
    ssd_chain_blocks(NULL, blocks, shapes);
    const fn_wpack conv0 = {.k = 27, .n = 32};
    const fn_conv_head head = {&conv0, NULL, 3, 2, FN_PAD_SAME, FN_ACT_RELU6};
    size_t chain = fn_sepchain_scratch_floats(SSD_SIZE, SSD_SIZE, 3, &head, blocks, SSD_CHAIN);
    if (chain > m) m = chain;
    int sz = 256;
    for (int i = 1; i <= 13; i++) {
        int stride = (i == 2 || i == 4 || i == 6 || i == 12) ? 2 : 1;
        size_t f = fn_sepconv_scratch_floats(sz, sz, pw_in[i], stride);
        if (f > m) m = f;
        sz = fn_out_size(sz, 3, stride, FN_PAD_SAME);
    }
    return (m + 15) / 16 * 16;
}

size_t fn_ssd_scratch_floats(void)
{
    return BUFA_FLOATS + BUFB_FLOATS + COL_FLOATS + RAWB_FLOATS + RAWC_FLOATS + IN_FLOATS +
           RAWB_FLOATS + SSD_ANCHORS;
}

static const fn_tensor *get(const fn_weights *w, const char *name, int rank, const int *shape,
                            char *err, size_t errlen)
{
    return fn_weights_get(w, name, rank, shape, err, errlen);
}

static int bind_conv(const fn_weights *w, const char *wname, const char *bname, int k, int cin,
                     int cout, ssd_conv *c, char *err, size_t errlen)
{
    const int ws[4] = {k, k, cin, cout}, bs[1] = {cout};
    const fn_tensor *tw = get(w, wname, 4, ws, err, errlen);
    if (!tw) return FN_ERR_MODEL;
    const fn_tensor *tb = get(w, bname, 1, bs, err, errlen);
    if (!tb) return FN_ERR_MODEL;
    c->w = tw->d;
    c->b = tb->d;
    c->qscale = tw->q8 ? tw->qscale : 0;
    c->qmin = tw->q8 ? tw->qmin : 0;
    c->k = k;
    c->cin = cin;
    c->cout = cout;
    if (fn_wpack_init(&c->wp, tw->d, k * k * cin, cout)) {
        snprintf(err, errlen, "out of memory binding %s", wname);
        return FN_ERR_NOMEM;
    }
    return 0;
}

static int bind_dw(const fn_weights *w, int i, int c, ssd_dw *d, char *err, size_t errlen)
{
    char name[128];
    const int ws[4] = {3, 3, c, 1}, vs[1] = {c};
    const fn_tensor *t[5];
    static const char *parts[5] = {"depthwise_weights", "BatchNorm/gamma", "BatchNorm/beta",
                                   "BatchNorm/moving_mean", "BatchNorm/moving_variance"};
    for (int j = 0; j < 5; j++) {
        snprintf(name, sizeof name, "MobilenetV1/Conv2d_%d_depthwise/%s", i, parts[j]);
        t[j] = get(w, name, j == 0 ? 4 : 1, j == 0 ? ws : vs, err, errlen);
        if (!t[j]) return FN_ERR_MODEL;
    }
    d->c = c;
    d->w = malloc(sizeof(float) * 9 * (size_t)c);
    d->b = malloc(sizeof(float) * (size_t)c);
    if (!d->w || !d->b) {
        snprintf(err, errlen, "out of memory binding %s", w->source ? w->source : "ssd");
        return FN_ERR_NOMEM;
    }
    for (int ch = 0; ch < c; ch++) {
        float scale = (float)(t[1]->d[ch] / sqrt((double)t[4]->d[ch] + BN_EPS));
        for (int k = 0; k < 9; k++)
            d->w[k * c + ch] = t[0]->d[k * c + ch] * scale;
        d->b[ch] = t[2]->d[ch] - t[3]->d[ch] * scale;
    }
    return 0;
}

/* Box predictor i as one 1x1 conv: BoxEncodingPredictor's 4 * anchors columns, then
 * ClassPredictor's 3 * anchors (weights and biases copied side by side into n->head_wb[i]). */
static int bind_head(const fn_weights *w, int i, int cin, int anchors, fn_ssd_net *n, char *err,
                     size_t errlen)
{
    static const char *parts[2] = {"BoxEncodingPredictor", "ClassPredictor"};
    const int cols[2] = {4 * anchors, 3 * anchors}, cout = 7 * anchors;
    const fn_tensor *t[2][2];
    char name[128];
    for (int p = 0; p < 2; p++) {
        const int ws[4] = {1, 1, cin, cols[p]}, bs[1] = {cols[p]};
        snprintf(name, sizeof name, "Prediction/BoxPredictor_%d/%s/weights", i, parts[p]);
        if (!(t[p][0] = get(w, name, 4, ws, err, errlen))) return FN_ERR_MODEL;
        snprintf(name, sizeof name, "Prediction/BoxPredictor_%d/%s/biases", i, parts[p]);
        if (!(t[p][1] = get(w, name, 1, bs, err, errlen))) return FN_ERR_MODEL;
    }
    float *wb = malloc(sizeof(float) * (size_t)(cin + 1) * (size_t)cout);
    n->head_wb[i] = wb;
    for (int r = 0; wb && r <= cin; r++) /* row cin: the biases */
        for (int p = 0, o = 0; p < 2; o += cols[p++])
            memcpy(wb + (size_t)r * cout + o,
                   r < cin ? t[p][0]->d + (size_t)r * cols[p] : t[p][1]->d,
                   sizeof(float) * (size_t)cols[p]);
    ssd_conv *c = &n->head[i];
    *c = (ssd_conv){wb, wb + (size_t)cin * cout, 1, cin, cout, {0}, 0, 0};
    if (!wb || fn_wpack_init(&c->wp, wb, cin, cout)) {
        snprintf(err, errlen, "out of memory binding box predictor %d", i);
        return FN_ERR_NOMEM;
    }
    return 0;
}

void fn_ssd_free(fn_ssd_net *n)
{
    if (!n) return;
    for (int i = 1; i <= 13; i++) {
        free(n->dw[i].w);
        free(n->dw[i].b);
    }
    fn_wpack_free(&n->conv0.wp);
    for (int i = 0; i < 14; i++)
        fn_wpack_free(&n->pw[i].wp);
    for (int i = 0; i < 8; i++)
        fn_wpack_free(&n->pred[i].wp);
    for (int i = 0; i < 6; i++) {
        fn_wpack_free(&n->head[i].wp);
        free(n->head_wb[i]);
    }
    free(n);
}

int fn_ssd_amx_init(fn_ssd_net *n)
{
    int bad = fn_wpack_amx_init(&n->conv0.wp);
    for (int i = 0; i < 14; i++)
        bad |= fn_wpack_amx_init(&n->pw[i].wp);
    for (int i = 0; i < 8; i++)
        bad |= fn_wpack_amx_init(&n->pred[i].wp);
    for (int i = 0; i < 6; i++)
        bad |= fn_wpack_amx_init(&n->head[i].wp);
    return bad ? -1 : 0;
}

int fn_ssd_i16_init(fn_ssd_net *n)
{
    /* The layers whose inputs are relu6 outputs and whose weights are one tensor's bytes: the
     * backbone's pointwise convs (after a depthwise conv's relu6) and the extra feature layers
     * (after the last pointwise's). conv0 reads pixels; each box predictor joins two tensors of
     * their own quantization (and is 1 % of the net). */
    int bad = 0;
    for (int i = 1; i <= 13; i++)
        bad |= fn_wpack_i16_init(&n->pw[i].wp, n->pw[i].qscale, n->pw[i].qmin);
    for (int i = 0; i < 8; i++)
        bad |= fn_wpack_i16_init(&n->pred[i].wp, n->pred[i].qscale, n->pred[i].qmin);
    return bad ? -1 : 0;
}

int fn_ssd_bind(const fn_weights *w, fn_ssd_net **out, char *err, size_t errlen)
{
    static const int pw_out[14] = {32,  64,  128, 128, 256, 256,  512,
                                   512, 512, 512, 512, 512, 1024, 1024};
    static const int pred_k[8] = {1, 3, 1, 3, 1, 3, 1, 3};
    static const int pred_out[8] = {256, 512, 128, 256, 128, 256, 64, 128};
    static const int box_in[6] = {512, 1024, 512, 256, 256, 128};
    static const int box_anch[6] = {3, 6, 6, 6, 6, 6};
    char wn[128], bn[128];
    int rc;
    *out = NULL;
    fn_ssd_net *n = calloc(1, sizeof *n);
    if (!n) return FN_ERR_NOMEM;

    if ((rc = bind_conv(w, "MobilenetV1/Conv2d_0_pointwise/weights",
                        "MobilenetV1/Conv2d_0_pointwise/convolution_bn_offset", 3, 3, 32, &n->conv0,
                        err, errlen)))
        goto fail;
    for (int i = 1; i <= 13; i++) {
        if ((rc = bind_dw(w, i, pw_out[i - 1], &n->dw[i], err, errlen))) goto fail;
        snprintf(wn, sizeof wn, "MobilenetV1/Conv2d_%d_pointwise/weights", i);
        snprintf(bn, sizeof bn, "MobilenetV1/Conv2d_%d_pointwise/convolution_bn_offset", i);
        if ((rc = bind_conv(w, wn, bn, 1, pw_out[i - 1], pw_out[i], &n->pw[i], err, errlen)))
            goto fail;
    }
    for (int i = 0; i < 8; i++) {
        snprintf(wn, sizeof wn, "Prediction/Conv2d_%d_pointwise/weights", i);
        snprintf(bn, sizeof bn, "Prediction/Conv2d_%d_pointwise/convolution_bn_offset", i);
        int cin = i == 0 ? 1024 : pred_out[i - 1];
        if ((rc = bind_conv(w, wn, bn, pred_k[i], cin, pred_out[i], &n->pred[i], err, errlen)))
            goto fail;
    }
    for (int i = 0; i < 6; i++)
        if ((rc = bind_head(w, i, box_in[i], box_anch[i], n, err, errlen))) goto fail;
    const int as[3] = {1, SSD_ANCHORS, 4};
    const fn_tensor *ta = get(w, "Output/extra_dim", 3, as, err, errlen);
    if (!ta) {
        rc = FN_ERR_MODEL;
        goto fail;
    }
    n->anchors = ta->d;
    *out = n;
    return 0;
fail:
    fn_ssd_free(n);
    return rc;
}

static void run_conv(const ssd_conv *c, const fn_t3 *in, int stride, fn_act act, fn_t3 *out,
                     float *col)
{
    fn_conv2d_w(in, &c->wp, c->b, c->k, c->k, stride, FN_PAD_SAME, act, out, col);
}

/* A box predictor on feature map `x`: raw box encodings and class logits of its anchors, through
 * `tmp` (x's pixels times 7 * anchors floats), which holds each pixel's box values then logits. */
static void run_predictor(const fn_ssd_net *n, int i, const fn_t3 *x, float *rawb, float *rawc,
                          size_t *anchor, float *tmp)
{
    const ssd_conv *c = &n->head[i];
    const int a = c->cout / 7, px = x->h * x->w;
    fn_t3 o = {0, 0, 0, tmp};
    run_conv(c, x, 1, FN_ACT_NONE, &o, NULL);
    for (int p = 0; p < px; p++) {
        const float *t = tmp + (size_t)p * c->cout;
        memcpy(rawb + (*anchor + (size_t)p * a) * 4, t, sizeof(float) * 4 * (size_t)a);
        memcpy(rawc + (*anchor + (size_t)p * a) * 3, t + 4 * a, sizeof(float) * 3 * (size_t)a);
    }
    *anchor += (size_t)px * a;
}

void fn_ssd_forward(const fn_ssd_net *n, const fn_t3 *in, float *scratch, float *boxes,
                    float *scores)
{
    float *bufa = scratch, *bufb = bufa + BUFA_FLOATS, *col = bufb + BUFB_FLOATS;
    float *rawb = col + COL_FLOATS, *rawc = rawb + RAWB_FLOATS;
    fn_t3 a = {0, 0, 0, bufa}, b = {0, 0, 0, bufb};
    size_t anchor = 0;

    /* conv0 into b; block i reads one buffer and writes the other, so the odd blocks (conv11 and
     * the backbone's output among them) end in a. The first layers run as one chain. */
    const fn_conv_head head = {&n->conv0.wp, n->conv0.b, 3, 2, FN_PAD_SAME, FN_ACT_RELU6};
    fn_sep_block blocks[13];
    ssd_chain_blocks(n, blocks, NULL);
    fn_sepchain_w(in, &head, blocks, SSD_CHAIN, (SSD_CHAIN % 2) ? &a : &b, col);
    if (SSD_CHAIN == 11) run_predictor(n, 0, &a, rawb, rawc, &anchor, col);
    for (int i = SSD_CHAIN + 1; i <= 13; i++) {
        int stride = ssd_stride(i);
        const fn_t3 *src = (i % 2) ? &b : &a;
        fn_t3 *dst = (i % 2) ? &a : &b;
        fn_sepconv_w(src, n->dw[i].w, n->dw[i].b, stride, FN_ACT_RELU6, &n->pw[i].wp, n->pw[i].b,
                     FN_ACT_RELU6, dst, col);
        if (i == 11) run_predictor(n, 0, &a, rawb, rawc, &anchor, col);
    }
    run_predictor(n, 1, &a, rawb, rawc, &anchor, col);
    for (int i = 0; i < 8; i++) {
        fn_t3 *src = (i % 2 == 0) ? &a : &b, *dst = (i % 2 == 0) ? &b : &a;
        run_conv(&n->pred[i], src, (i % 2) ? 2 : 1, FN_ACT_RELU6, dst, col);
        if (i % 2) run_predictor(n, 1 + (i + 1) / 2, dst, rawb, rawc, &anchor, col);
    }

    /* Decode as outputLayer.ts does, in float32 like TFJS. */
    for (int i = 0; i < SSD_ANCHORS; i++) {
        const float *an = n->anchors + (size_t)i * 4, *p = rawb + (size_t)i * 4;
        float sy = an[2] - an[0], sx = an[3] - an[1];
        float cy = an[0] + sy / 2, cx = an[1] + sx / 2;
        float hh = expf(p[2] / 5) * sy / 2, hw = expf(p[3] / 5) * sx / 2;
        float y = p[0] / 10 * sy + cy, x = p[1] / 10 * sx + cx;
        boxes[i * 4 + 0] = y - hh;
        boxes[i * 4 + 1] = x - hw;
        boxes[i * 4 + 2] = y + hh;
        boxes[i * 4 + 3] = x + hw;
        scores[i] = 1.0f / (1.0f + expf(-rawc[(size_t)i * 3 + 1]));
    }
}

/* IoU as ssdMobilenetv1/nonMaxSuppression.ts computes it (corners re-ordered, double). */
static double ssd_iou(const float *a, const float *b)
{
    double ay0 = fmin(a[0], a[2]), ax0 = fmin(a[1], a[3]), ay1 = fmax(a[0], a[2]),
           ax1 = fmax(a[1], a[3]);
    double by0 = fmin(b[0], b[2]), bx0 = fmin(b[1], b[3]), by1 = fmax(b[0], b[2]),
           bx1 = fmax(b[1], b[3]);
    double area_a = (ay1 - ay0) * (ax1 - ax0), area_b = (by1 - by0) * (bx1 - bx0);
    if (area_a <= 0 || area_b <= 0) return 0.0;
    double ih = fmax(fmin(ay1, by1) - fmax(ay0, by0), 0.0);
    double iw = fmax(fmin(ax1, bx1) - fmax(ax0, bx0), 0.0);
    double inter = ih * iw;
    return inter / (area_a + area_b - inter);
}

/* Candidates sorted by descending score; ties keep index order (V8's sort is stable). */
static void sort_candidates(int *idx, int n, const float *scores)
{
    for (int i = 1; i < n; i++) {
        int v = idx[i], j = i - 1;
        while (j >= 0 && scores[idx[j]] < scores[v]) {
            idx[j + 1] = idx[j];
            j--;
        }
        idx[j + 1] = v;
    }
}

size_t fn_ssd_detect(const fn_ssd_net *n, const fn_image *img, float min_confidence, float *scratch,
                     fn_det *out, size_t cap)
{
    float *in_d = scratch + BUFA_FLOATS + BUFB_FLOATS + COL_FLOATS + RAWB_FLOATS + RAWC_FLOATS;
    float *boxes = in_d + IN_FLOATS, *scores = boxes + RAWB_FLOATS;
    fn_t3 in = {SSD_SIZE, SSD_SIZE, 3, in_d};
    if (!img || img->width <= 0 || img->height <= 0) return 0;

    fn_pad_resize_region(img, 0, 0, img->width, img->height, 0, SSD_SIZE, &in);
    for (size_t i = 0; i < IN_FLOATS; i++)
        in_d[i] = (float)(in_d[i] / 127.5) - 1.0f;
    fn_ssd_forward(n, &in, scratch, boxes, scores);

    /* Candidate indices live in the (now free) first activation buffer. */
    int *cand = (int *)scratch, nc = 0;
    for (int i = 0; i < SSD_ANCHORS; i++)
        if (scores[i] > min_confidence) cand[nc++] = i;
    sort_candidates(cand, nc, scores);
    int *sel = cand + SSD_ANCHORS, ns = 0;
    for (int c = 0; c < nc && ns < SSD_MAX_DET; c++) {
        int keep = 1;
        for (int j = ns - 1; j >= 0; j--)
            if (ssd_iou(boxes + cand[c] * 4, boxes + sel[j] * 4) > SSD_IOU) {
                keep = 0;
                break;
            }
        if (keep) sel[ns++] = cand[c];
    }

    /* Back to image coordinates (SsdMobilenetv1.locateFaces + FaceDetection). */
    const int iw = img->width, ih = img->height;
    const double scale = (double)SSD_SIZE / (iw > ih ? iw : ih);
    const double rw = floor(iw * scale + 0.5), rh = floor(ih * scale + 0.5);
    const double pad_x = SSD_SIZE / rw, pad_y = SSD_SIZE / rh;
    size_t nout = 0;
    for (int j = 0; j < ns && nout < cap; j++) {
        const float *b = boxes + sel[j] * 4;
        double top = fmax(0.0, b[0]) * pad_y, bottom = fmin(1.0, b[2]) * pad_y;
        double left = fmax(0.0, b[1]) * pad_x, right = fmin(1.0, b[3]) * pad_x;
        fn_det *d = &out[nout++];
        d->x = (float)(left * iw);
        d->y = (float)(top * ih);
        d->w = (float)((right - left) * iw);
        d->h = (float)((bottom - top) * ih);
        d->score = scores[sel[j]];
    }
    return nout;
}
