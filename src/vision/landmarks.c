/* landmarks.c: FaceLandmark68Net and FaceLandmark68TinyNet (face-api's 68-point landmark nets).
 *
 * Both are a "dense block" feature extractor followed by one fully connected layer:
 *   input 112x112x3, normalised as (rgb - mean) / 255 with face-api's mean RGB;
 *   dense0: conv 3x3 stride 2 SAME + bias + relu (the only plain conv), then separable convs;
 *   dense1..3 (tiny: dense1..2): the same with a separable conv 3x3 stride 2 in front;
 *   average pool over the final 7x7 (tiny: 14x14) map, fc -> 136 = 68 (x, y) pairs in 0..1 of the
 *   padded square input.
 * A dense block keeps the running sum of its convolutions' outputs: with out1 = relu(conv0(x)),
 * out_k = sep_k(relu(out1 + ... + out_{k-1})) and the block's output is relu(out1 + ... + out_n).
 * A separable conv is depthwise 3x3 (no bias) then pointwise 1x1 + bias, no activation.
 * Convolutions go through ops.h (GEMM for the 3x3 and 1x1 convs); sep_2..n with the running sum
 * run as fn_sepconv_sum_w (depthwise, pointwise and the sum a strip of rows at a time). The
 * strided sep_1's depthwise 3x3 has a portable vector version here (lm_dw3x3) used where the ops
 * have no AVX-512 or AVX2 kernel, because the ops' generic C loop is not vectorised at -O2.
 *
 * What must stay true: the arithmetic is the reference's (FaceFeatureExtractor.ts, denseBlock.ts,
 * FaceLandmark68NetBase.ts): same normalisation, same padding, same postProcess mapping; the net
 * points into the fn_weights it was bound to (which must outlive it); forward/run never allocate
 * and use only the caller's scratch (fn_landmark_scratch_floats() floats). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vision/gemm_amx.h"
#include "vision/gemm_i16.h"
#include "vision/nets.h"
#include "vision/ops_isa.h"
#include "vision/preprocess.h"

#define LM_SIZE    112
#define LM_MAX_BLK 4
#define LM_MAX_CNV 4

/* face-api's mean RGB for the feature extractors and the recognition net. */
static const float lm_mean[3] = {122.782f, 117.001f, 104.298f};

typedef struct lm_sep {
    const float *dw;   /* [3][3][cin][1] */
    const float *pw;   /* [1][1][cin][cout] */
    const float *bias; /* [cout] */
    int cin, cout;
    double qscale, qmin; /* pw's byte quantization (weights.h), qscale 0 when it has none */
    fn_wpack pwp;        /* pw packed for the GEMM once, at bind (owned) */
} lm_sep;

struct fn_landmark_net {
    int tiny;
    int nblocks;                        /* 4, tiny 3 */
    int nconvs;                         /* convs per block: 4, tiny 3 */
    const float *conv0_f;               /* dense0/conv0 [3][3][3][32] */
    const float *conv0_b;               /* [32] */
    fn_wpack conv0_p;                   /* conv0_f packed (owned) */
    lm_sep sep[LM_MAX_BLK][LM_MAX_CNV]; /* sep[0][0] unused (plain conv) */
    int ch[LM_MAX_BLK];                 /* output channels of each block */
    const float *fc_w;                  /* [fc_in][136] */
    const float *fc_b;                  /* [136] */
    int fc_in;
};

/* Looks up one tensor; fn_weights_get's message names the manifest, the tensor, both shapes and
 * the command that installs the models. */
static const float *lm_get(const fn_weights *w, const char *name, int rank, const int *shape,
                           char *err, size_t errlen)
{
    const fn_tensor *t = fn_weights_get(w, name, rank, shape, err, errlen);
    return t ? t->d : NULL;
}

int fn_landmark_bind(const fn_weights *w, int tiny, fn_landmark_net **out, char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (!w || !out) {
        if (err && errlen) snprintf(err, errlen, "fn_landmark_bind: no weights");
        return FN_ERR_INVALID;
    }
    fn_landmark_net *n = calloc(1, sizeof *n);
    if (!n) {
        if (err && errlen) snprintf(err, errlen, "out of memory binding the landmark net");
        return FN_ERR_NOMEM;
    }
    n->tiny = tiny ? 1 : 0;
    n->nblocks = tiny ? 3 : 4;
    n->nconvs = tiny ? 3 : 4;
    static const int chans[LM_MAX_BLK] = {32, 64, 128, 256};
    char name[64];
    int cin = 3;
    for (int b = 0; b < n->nblocks; b++) {
        const int c = chans[b];
        n->ch[b] = c;
        for (int k = 0; k < n->nconvs; k++) {
            const int kin = k == 0 ? cin : c;
            if (b == 0 && k == 0) {
                const int fs[4] = {3, 3, 3, c}, bs[1] = {c};
                snprintf(name, sizeof name, "dense0/conv0/filters");
                if (!(n->conv0_f = lm_get(w, name, 4, fs, err, errlen))) goto fail;
                snprintf(name, sizeof name, "dense0/conv0/bias");
                if (!(n->conv0_b = lm_get(w, name, 1, bs, err, errlen))) goto fail;
                if (fn_wpack_init(&n->conv0_p, n->conv0_f, 27, c)) goto nomem;
                continue;
            }
            lm_sep *s = &n->sep[b][k];
            const int ds[4] = {3, 3, kin, 1}, ps[4] = {1, 1, kin, c}, bs[1] = {c};
            s->cin = kin;
            s->cout = c;
            snprintf(name, sizeof name, "dense%d/conv%d/depthwise_filter", b, k);
            if (!(s->dw = lm_get(w, name, 4, ds, err, errlen))) goto fail;
            snprintf(name, sizeof name, "dense%d/conv%d/pointwise_filter", b, k);
            const fn_tensor *tp = fn_weights_get(w, name, 4, ps, err, errlen);
            if (!tp) goto fail;
            s->pw = tp->d;
            s->qscale = tp->q8 ? tp->qscale : 0;
            s->qmin = tp->qmin;
            snprintf(name, sizeof name, "dense%d/conv%d/bias", b, k);
            if (!(s->bias = lm_get(w, name, 1, bs, err, errlen))) goto fail;
            if (fn_wpack_init(&s->pwp, s->pw, kin, c)) goto nomem;
        }
        cin = c;
    }
    n->fc_in = cin;
    {
        const int ws[2] = {cin, 136}, bs[1] = {136};
        if (!(n->fc_w = lm_get(w, "fc/weights", 2, ws, err, errlen))) goto fail;
        if (!(n->fc_b = lm_get(w, "fc/bias", 1, bs, err, errlen))) goto fail;
    }
    *out = n;
    return 0;
nomem:
    if (err && errlen) snprintf(err, errlen, "out of memory binding the landmark net");
    fn_landmark_free(n);
    return FN_ERR_NOMEM;
fail:
    fn_landmark_free(n);
    return FN_ERR_MODEL;
}

void fn_landmark_free(fn_landmark_net *n)
{
    if (!n) return;
    fn_wpack_free(&n->conv0_p);
    for (int b = 0; b < LM_MAX_BLK; b++)
        for (int k = 0; k < LM_MAX_CNV; k++)
            fn_wpack_free(&n->sep[b][k].pwp);
    free(n);
}

int fn_landmark_amx_init(fn_landmark_net *n)
{
    int bad = fn_wpack_amx_init(&n->conv0_p);
    for (int b = 0; b < LM_MAX_BLK; b++)
        for (int k = 0; k < LM_MAX_CNV; k++)
            bad |= fn_wpack_amx_init(&n->sep[b][k].pwp);
    return bad ? -1 : 0;
}

int fn_landmark_i16_init(fn_landmark_net *n)
{
    /* The pointwise convs at least LM_I16_MIN_K deep (their inputs: depthwise outputs of any
     * sign, scaled to each row's max); conv0 reads pixels (K 27, odd). Shallower ones stay FP32:
     * at K 32 each row's max, its conversion and the running sum's separate pass cost more than
     * the integer products save (0.073 -> 0.105 ms a layer on a Zen 4), at K 64 they break even,
     * from K 128 on int16 is ahead (0.060 -> 0.043). */
    enum { LM_I16_MIN_K = 128 };
    int bad = 0;
    for (int b = 0; b < n->nblocks; b++)
        for (int k = b == 0 ? 1 : 0; k < n->nconvs; k++) {
            lm_sep *s = &n->sep[b][k];
            if (s->qscale > 0 && s->cin >= LM_I16_MIN_K)
                bad |= fn_wpack_i16_init_scaled(&s->pwp, s->qscale, s->qmin);
        }
    return bad ? -1 : 0;
}

/* Scratch layout (floats): the 112x112x3 input, then four block-sized buffers (three that the
 * block tensors rotate through, and the depthwise map / fn_sepconv_sum_w strips), then the im2col
 * scratch of the first conv. The largest block tensor is dense0's output, 56x56x32; every later
 * tensor is smaller, and so are the strips (fn_sepconv_sum_scratch_floats). */
#define LM_IN_FLOATS  ((size_t)LM_SIZE * LM_SIZE * 3)
#define LM_MAP_FLOATS ((size_t)56 * 56 * 32)
/* Each buffer is a map and 272 floats (1088 bytes) more, so that the same element of two maps
 * (the sum's input and output and its relu, read and written together) is never at the same
 * address modulo 4 KB: a map is a multiple of 4 KB, and a load from an address whose low 12 bits
 * match a pending store's waits for that store (4K aliasing). With the sum as a loop of its own
 * the net took 1.35 ms with the offset against 1.39-1.46 without (Intel Xeon VM, interleaved). */
#define LM_BUF_FLOATS (LM_MAP_FLOATS + 272)

size_t fn_landmark_scratch_floats(void)
{
    size_t col = fn_conv2d_scratch_floats(LM_SIZE, LM_SIZE, 3, 3, 3, 2, FN_PAD_SAME);
    return LM_IN_FLOATS + 4 * LM_BUF_FLOATS + col;
}

/* Four floats as one GCC/Clang vector (one SSE register, baseline x86-64; NEON on ARM). The
 * depthwise loop below uses it so it is vectorised at -O2 too (GCC's -O2 cost model does
 * not vectorise loops that need a run-time aliasing check). Loads and stores go through memcpy,
 * so nothing needs to be aligned. Every channel count here is a multiple of 32. */
typedef float lm_v4 __attribute__((vector_size(16)));

static inline lm_v4 lm_ld(const float *p)
{
    lm_v4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void lm_st(float *p, lm_v4 v)
{
    memcpy(p, &v, sizeof v);
}

/* Depthwise 3x3, SAME padding, no bias, channel multiplier 1: fn_dwconv2d specialised for these
 * nets (c a multiple of 8) so that it is vectorised whatever the optimisation level. Same taps in
 * the same order as fn_dwconv2d (row-major, out-of-bounds taps skipped), so the same sums. */
static void lm_dw3x3(const fn_t3 *in, const float *w, int stride, fn_t3 *out)
{
    const int ih = in->h, iw = in->w, c = in->c;
    const int oh = fn_out_size(ih, 3, stride, FN_PAD_SAME);
    const int ow = fn_out_size(iw, 3, stride, FN_PAD_SAME);
    const int th = (oh - 1) * stride + 3 - ih, tw = (ow - 1) * stride + 3 - iw;
    const int pt = th > 0 ? th / 2 : 0, pl = tw > 0 ? tw / 2 : 0;
    out->h = oh;
    out->w = ow;
    out->c = c;
    fn_ops_flops_add(2.0 * oh * ow * 9 * c);
    for (int oy = 0; oy < oh; oy++) {
        const int y0 = oy * stride - pt;
        for (int ox = 0; ox < ow; ox++) {
            const int x0 = ox * stride - pl;
            float *o = out->d + ((size_t)oy * ow + ox) * c;
            for (int cb = 0; cb < c; cb += 8) {
                lm_v4 a0 = {0, 0, 0, 0}, a1 = {0, 0, 0, 0};
                for (int ky = 0; ky < 3; ky++) {
                    const int y = y0 + ky;
                    if (y < 0 || y >= ih) continue;
                    for (int kx = 0; kx < 3; kx++) {
                        const int x = x0 + kx;
                        if (x < 0 || x >= iw) continue;
                        const float *p = in->d + ((size_t)y * iw + x) * c + cb;
                        const float *wk = w + (size_t)(ky * 3 + kx) * c + cb;
                        a0 += lm_ld(p) * lm_ld(wk);
                        a1 += lm_ld(p + 4) * lm_ld(wk + 4);
                    }
                }
                lm_st(o + cb, a0);
                lm_st(o + cb + 4, a1);
            }
        }
    }
}

/* Depthwise 3x3 (stride, SAME, no bias) into t, then pointwise 1x1 + bias (+ act) into q. The
 * ops' depthwise kernel is used where it has its AVX-512 or AVX2 version (AVX-512 measured 1.4x
 * faster than lm_dw3x3 here; with AVX2 the whole landmark net ran 1.82 ms against 2.41 ms, best
 * of 200 interleaved runs on an AMD EPYC, Zen 3 class); elsewhere lm_dw3x3, whose vectors do not
 * depend on the optimisation level. */
static void lm_sepconv(const lm_sep *s, const fn_t3 *in, int stride, fn_act act, int ops_dw,
                       fn_t3 *t, fn_t3 *q)
{
    if (ops_dw)
        fn_dwconv2d(in, s->dw, NULL, 3, stride, FN_PAD_SAME, FN_ACT_NONE, t);
    else
        lm_dw3x3(in, s->dw, stride, t);
    fn_conv2d_w(t, &s->pwp, s->bias, 1, 1, 1, FN_PAD_VALID, act, q, NULL);
}

/* -1: by the CPU; 0: lm_dw3x3; 1: fn_dwconv2d (see fn_landmark_set_isa). */
static int lm_isa = -1;

void fn_landmark_set_isa(int level)
{
    __atomic_store_n(&lm_isa, level < 0 ? -1 : level > 0 ? 1 : 0, __ATOMIC_RELAXED);
}

/* The first of the three rotating block buffers that is neither u nor v. */
static float *lm_other(float *const p[3], const float *u, const float *v)
{
    for (int i = 0; i < 3; i++)
        if (p[i] != u && p[i] != v) return p[i];
    return NULL; /* not reached: three buffers, two excluded at most */
}

/* `in` may be the first 112*112*3 floats of `scratch` (fn_landmark_run puts it there); the rest
 * of the scratch holds the activations: three block buffers that rotate, the depthwise map of a
 * block's strided first conv (also fn_sepconv_sum_w's strips), and the first conv's im2col. */
void fn_landmark_forward(const fn_landmark_net *n, const fn_t3 *in, float *scratch, float *out136)
{
    float *const p[3] = {scratch + LM_IN_FLOATS, scratch + LM_IN_FLOATS + LM_BUF_FLOATS,
                         scratch + LM_IN_FLOATS + 2 * LM_BUF_FLOATS};
    float *const t = scratch + LM_IN_FLOATS + 3 * LM_BUF_FLOATS;
    float *const col = scratch + LM_IN_FLOATS + 4 * LM_BUF_FLOATS;
    const int isa = __atomic_load_n(&lm_isa, __ATOMIC_RELAXED);
    const int ops_dw = isa < 0 ? fn_ops_isa() != FN_ISA_GENERIC : isa;
    fn_t3 x = *in;
    for (int b = 0; b < n->nblocks; b++) {
        /* out1 = relu(conv0(x)) into a: it starts the running sum and is conv1's input. */
        fn_t3 a = {0, 0, 0, lm_other(p, x.d, NULL)};
        if (b == 0)
            fn_conv2d_w(&x, &n->conv0_p, n->conv0_b, 3, 3, 2, FN_PAD_SAME, FN_ACT_RELU, &a, col);
        else {
            fn_t3 tt = {0, 0, 0, t};
            lm_sepconv(&n->sep[b][0], &x, 2, FN_ACT_RELU, ops_dw, &tt, &a);
        }
        /* x is dead now: the sum may take its buffer. Each conv k reads relu(sum so far) and
         * writes the next one into the buffer its input did not use (a's, once conv1 has read
         * it). The block's output is the last relu(sum). */
        float *sum = lm_other(p, a.d, NULL), *r = lm_other(p, a.d, sum);
        fn_t3 cur = a;
        for (int k = 1; k < n->nconvs; k++) {
            const lm_sep *sp = &n->sep[b][k];
            float *relu_out = cur.d == r ? a.d : r;
            /* The last conv's sum is needed only through its relu. */
            fn_sepconv_sum_w(&cur, sp->dw, &sp->pwp, sp->bias, k == 1 ? a.d : sum,
                             k + 1 < n->nconvs ? sum : NULL, relu_out, t);
            cur.d = relu_out;
            cur.c = sp->cout;
        }
        x = cur;
    }
    /* avgPool (7x7 or 14x14, stride 2, VALID) over a map of exactly that size = the global mean. */
    float feat[256];
    fn_global_avgpool(&x, feat);
    fn_dense(feat, n->fc_in, n->fc_w, n->fc_b, 136, out136);
}

/* (rgb - mean) / 255 per pixel, in place, as FaceFeatureExtractor's normalize().div(255). */
static void lm_normalise(fn_t3 *t)
{
    size_t n = (size_t)t->h * t->w;
    float *p = t->d;
    for (size_t i = 0; i < n; i++, p += 3) {
        p[0] = (p[0] - lm_mean[0]) / 255.0f;
        p[1] = (p[1] - lm_mean[1]) / 255.0f;
        p[2] = (p[2] - lm_mean[2]) / 255.0f;
    }
}

/* A coordinate a crop can be computed from: finite and far from int overflow (a photo is at most
 * ~1e5 pixels a side). */
static int lm_sane(float v)
{
    return isfinite(v) && fabsf(v) < 1e8f;
}

int fn_landmark_crop_box(const fn_image *img, const fn_det *det, int box[4])
{
    if (!(lm_sane(det->x) && lm_sane(det->y) && lm_sane(det->w) && lm_sane(det->h))) {
        box[0] = box[1] = box[2] = box[3] = 0;
        return 0;
    }
    return fn_clip_box(img->width, img->height, det->x, det->y, det->w, det->h, &box[0], &box[1],
                       &box[2], &box[3]);
}

void fn_landmark_run(const fn_landmark_net *n, const fn_image *img, const fn_det *det,
                     float *scratch, float out[68][2])
{
    int box[4];
    if (!fn_landmark_crop_box(img, det, box)) {
        /* The reference drops such a face (extractFaceTensors filters empty boxes); we have to
         * return something, so every point is the box's corner. Detectors never produce these. */
        for (int i = 0; i < 68; i++)
            out[i][0] = det->x, out[i][1] = det->y;
        return;
    }
    fn_t3 in = {LM_SIZE, LM_SIZE, 3, scratch};
    fn_pad_resize_region(img, box[0], box[1], box[2], box[3], 1, LM_SIZE, &in);
    lm_normalise(&in);
    float raw[136];
    fn_landmark_forward(n, &in, scratch, raw);

    /* FaceLandmark68NetBase.postProcess (float32 tensor ops): the square input's padding is taken
     * off, then points are relative to the crop; FaceLandmarks scales them to the crop's pixels
     * and extendWithFaceLandmarks shifts them by the detection's (unclipped) box origin. */
    const double scale = (double)LM_SIZE / (box[2] > box[3] ? box[2] : box[3]);
    const double iwd = box[2] * scale, ihd = box[3] * scale;
    /* JS computes these in double; tf.fill stores them as float32. */
    const float iw = (float)iwd, ih = (float)ihd;
    const float pad_x = (float)(iwd < ihd ? fabs(iwd - ihd) / 2 : 0.0);
    const float pad_y = (float)(ihd < iwd ? fabs(iwd - ihd) / 2 : 0.0);
    for (int i = 0; i < 68; i++) {
        float rx = (raw[2 * i] * (float)LM_SIZE - pad_x) / iw;
        float ry = (raw[2 * i + 1] * (float)LM_SIZE - pad_y) / ih;
        out[i][0] = (float)((double)rx * box[2] + det->x);
        out[i][1] = (float)((double)ry * box[3] + det->y);
    }
}
