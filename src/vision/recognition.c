/* recognition.c: FaceRecognitionNet (face-api's ResNet-34-like descriptor net, 150x150 -> 128-d)
 * and the landmark-based face crop that feeds it.
 *
 * The net (FaceRecognitionNet.ts, residualLayer.ts, convLayer.ts, scaleLayer.ts):
 *   input 150x150x3 normalised as (rgb - mean) / 255;
 *   conv32_down: conv 7x7 stride 2 VALID, + bias, * scale + offset, relu -> 72x72x32;
 *   max pool 3x3 stride 2 VALID -> 35x35x32;
 *   14 residual layers; a plain one is relu(x + conv2(relu(conv1(x)))) with 3x3 SAME convs, a
 * "down" one uses conv1 3x3 stride 2 VALID and adds avgpool2x2(x) instead of x, with the pooled
 * input's channels zero-extended and the conv branch zero-extended by a row and a column where the
 * two branches' sizes differ (8 -> 3 vs 4, 4 -> 1 vs 2); mean over the final 2x2x256, times fc
 * [256][128] (no bias). Every conv layer is conv + bias followed by a per-channel scale layer; the
 * scale is folded into the filters and bias once at bind time (w' = w * s, b' = b * s + t), which
 * changes only float rounding (~1e-7 relative) and saves a pass over every activation; filters
 * stored as bytes fold as fmaf(q, scale * s, min * s), so that the 256-channel convs, whose
 * GEMMs have 1 to 16 rows a face, can stream their weights as those bytes (rc_bytes).
 *
 * The crop (ComputeFaceDescriptorsTasks.ts: landmarks.align(null, {useDlibAlignment: true})): a
 * square of side floor(mean eye-to-mouth distance / 0.45) around the centroid of the two eye
 * centres and the mouth centre (0.5 of the side left of it, 0.43 above), clipped to the image,
 * padded to a square and resized to 150.
 *
 * What must stay true: the arithmetic is the reference's; forward/run never allocate and use only
 * the caller's scratch (fn_recog_scratch_floats() floats); a bound net owns its folded filters
 * (as GEMM panels only where the AVX-512 kernels run: see rc_bind_conv) and keeps a pointer only
 * to the fc tensor of the weights it was bound to. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vision/gemm_amx.h"
#include "vision/gemm_i16.h"
#include "vision/nets.h"
#include "vision/preprocess.h"

#define RC_SIZE 150
#define RC_NRES 14

static const float rc_mean[3] = {122.782f, 117.001f, 104.298f};

typedef struct rc_conv {
    float *f;       /* folded filters [k][k][cin][cout] (owned), NULL once packed */
    const float *b; /* folded bias [cout] */
    int k, cin, cout;
    fn_wpack wp;     /* f packed for the GEMM once, at bind (owned) */
    fn_wpack centre; /* the centre taps' [cin][cout] (owned), or zeroed: see rc_conv_run */
    float *sm;       /* rc_fold's per-column scale and min (2 * cout, owned) where the filters are
                      * bytes, for the int16 pack (fn_recog_i16_init); else NULL */
} rc_conv;

typedef struct rc_res {
    rc_conv c1, c2;
    int down;
} rc_res;

struct fn_recog_net {
    rc_conv first; /* conv32_down */
    rc_res res[RC_NRES];
    const float *fc; /* [256][128], owned by the weights */
    float *mem;      /* all folded biases */
};

/* The residual layers in order: name, input channels, output channels, down-sampling. */
static const struct {
    const char *name;
    int cin, cout, down;
} rc_layers[RC_NRES] = {
    {"conv32_1", 32, 32, 0},    {"conv32_2", 32, 32, 0},           {"conv32_3", 32, 32, 0},
    {"conv64_down", 32, 64, 1}, {"conv64_1", 64, 64, 0},           {"conv64_2", 64, 64, 0},
    {"conv64_3", 64, 64, 0},    {"conv128_down", 64, 128, 1},      {"conv128_1", 128, 128, 0},
    {"conv128_2", 128, 128, 0}, {"conv256_down", 128, 256, 1},     {"conv256_1", 256, 256, 0},
    {"conv256_2", 256, 256, 0}, {"conv256_down_out", 256, 256, 1},
};

static const fn_tensor *rc_get(const fn_weights *w, const char *name, int rank, const int *shape,
                               char *err, size_t errlen)
{
    return fn_weights_get(w, name, rank, shape, err, errlen);
}

/* Folds the scale layer's s into the filters f: ff = f * s. For filters stored as bytes (f->q8),
 * as fmaf(q, sm[o], sm[cout + o]) with sm = scale * s, min * s, instead of (q * scale + min) * s
 * (a float rounding apart), so the GEMMs can decode them from their bytes to the same floats
 * (fn_wpack_bytes); returns the bytes then (malloc'ed, [k][k][cin][cout]), else NULL. sm: 2 *
 * cout floats. */
static unsigned char *rc_fold(const fn_tensor *f, const fn_tensor *s, int cout, float *ff,
                              float *sm)
{
    unsigned char *q = f->q8 && f->qscale > 0 ? malloc(f->n) : NULL;
    int bad = 0;
    const double inv = q ? 1.0 / f->qscale : 0;
    for (size_t i = 0; q && i < f->n; i++) {
        double x = (f->d[i] - f->qmin) * inv;
        bad |= !(x > -0.5 && x < 255.5);
        x = x < 0 ? 0 : x > 255 ? 255 : x;
        const int v = (int)(x + 0.5);
        q[i] = (unsigned char)v;
        bad |= (float)(v * f->qscale + f->qmin) != f->d[i];
    }
    if (bad) {
        free(q);
        q = NULL;
    }
    for (int o = 0; o < cout; o++) {
        sm[o] = (float)(f->qscale * s->d[o]);
        sm[cout + o] = (float)(f->qmin * s->d[o]);
    }
    if (q)
        fn_decode_bytes(q, f->n / (size_t)cout, cout, sm, sm + cout, ff);
    else
        for (size_t i = 0; i < f->n; i++)
            ff[i] = f->d[i] * s->d[i % (size_t)cout];
    return q;
}

/* Gives c's packs their bytes (fn_wpack_bytes) where a GEMM has few rows and the weights do not
 * fit in half the L2 (fn_cpu_l2_bytes): the 256-channel layers (1.2 and 2.4 MB of floats, on 1x1
 * to 4x4 maps) and, where the L2 is 512 KB (AMD Zen 3), the 128-channel ones too (0.3 and 0.6 MB,
 * on 8x8 maps: 1.1x faster each there; on a 2 MB L2, no faster). q, sm: rc_fold's. Returns 0 or
 * -1 (out of memory). */
static int rc_bytes(rc_conv *c, const unsigned char *q, const float *sm, int centre)
{
    const int cout = c->cout, cin = c->cin, k = c->k;
    if (!q || cout < 128 || (size_t)k * k * cin * cout * sizeof(float) <= fn_cpu_l2_bytes() / 2)
        return 0;
    int rc = fn_wpack_bytes(&c->wp, q, sm, sm + cout);
    if (rc == 0 && centre)
        rc =
            fn_wpack_bytes(&c->centre, q + (size_t)(k / 2 * k + k / 2) * cin * cout, sm, sm + cout);
    return rc == -1 ? -1 : 0;
}

/* Binds "<prefix>/conv/{filters,bias}" and "<prefix>/scale/{weights,biases}", folding the scale
 * into `*mem` (advanced past what it uses). */
static int rc_bind_conv(const fn_weights *w, const char *prefix, int k, int cin, int cout,
                        int centre, float **mem, rc_conv *c, char *err, size_t errlen)
{
    char name[96];
    const int fs[4] = {k, k, cin, cout}, vs[1] = {cout};
    const fn_tensor *f, *b, *s, *t;
    snprintf(name, sizeof name, "%s/conv/filters", prefix);
    if (!(f = rc_get(w, name, 4, fs, err, errlen))) return -1;
    snprintf(name, sizeof name, "%s/conv/bias", prefix);
    if (!(b = rc_get(w, name, 1, vs, err, errlen))) return -1;
    snprintf(name, sizeof name, "%s/scale/weights", prefix);
    if (!(s = rc_get(w, name, 1, vs, err, errlen))) return -1;
    snprintf(name, sizeof name, "%s/scale/biases", prefix);
    if (!(t = rc_get(w, name, 1, vs, err, errlen))) return -1;

    /* The folded filters go into a pack for the GEMM; where there is one (AVX-512), the folded
     * copy is dropped, so the net holds its filters once (25 MB) rather than twice. */
    float *ff = malloc(f->n * sizeof(float)), *fb = *mem,
          *sm = malloc(2 * (size_t)cout * sizeof(float));
    if (!ff || !sm) {
        free(ff);
        free(sm);
        snprintf(err, errlen, "out of memory binding %s", prefix);
        return -2;
    }
    unsigned char *q = rc_fold(f, s, cout, ff, sm);
    for (int o = 0; o < cout; o++)
        fb[o] = b->d[o] * s->d[o] + t->d[o];
    *mem = fb + cout;
    c->f = ff;
    c->b = fb;
    c->k = k;
    c->cin = cin;
    c->cout = cout;
    const float *ctr = ff + (size_t)(k / 2 * k + k / 2) * cin * cout;
    int rc = fn_wpack_init(&c->wp, ff, k * k * cin, cout) ||
                     (centre && fn_wpack_init(&c->centre, ctr, cin, cout))
                 ? -1
                 : rc_bytes(c, q, sm, centre);
    if (q)
        c->sm = sm; /* kept for the int16 pack (fn_recog_i16_init) */
    else
        free(sm);
    free(q);
    if (rc == -1) {
        snprintf(err, errlen, "out of memory binding %s", prefix);
        return -2;
    }
    if (c->wp.p && (!centre || c->centre.p)) {
        free(ff);
        c->f = NULL;
        c->wp.w = NULL;
        c->centre.w = NULL;
    }
    return 0;
}

/* Floats of a conv's folded bias in the net's `mem` (the filters are allocated apiece). */
static size_t rc_conv_floats(int k, int cin, int cout)
{
    (void)k, (void)cin;
    return (size_t)cout;
}

int fn_recog_bind(const fn_weights *w, fn_recog_net **out, char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (!w || !out) {
        if (err && errlen) snprintf(err, errlen, "fn_recog_bind: no weights");
        return FN_ERR_INVALID;
    }
    size_t need = rc_conv_floats(7, 3, 32);
    for (int i = 0; i < RC_NRES; i++)
        need += rc_conv_floats(3, rc_layers[i].cin, rc_layers[i].cout) +
                rc_conv_floats(3, rc_layers[i].cout, rc_layers[i].cout);
    fn_recog_net *n = calloc(1, sizeof *n);
    float *mem = n ? malloc(need * sizeof(float)) : NULL;
    if (!mem) {
        free(n);
        if (err && errlen) snprintf(err, errlen, "out of memory binding the recognition net");
        return FN_ERR_NOMEM;
    }
    n->mem = mem;
    char prefix[64];
    int rc = -1; /* -2: out of memory */
    if ((rc = rc_bind_conv(w, "conv32_down", 7, 3, 32, 0, &mem, &n->first, err, errlen)) < 0)
        goto fail;
    for (int i = 0; i < RC_NRES; i++) {
        rc_res *r = &n->res[i];
        r->down = rc_layers[i].down;
        snprintf(prefix, sizeof prefix, "%s/conv1", rc_layers[i].name);
        if ((rc = rc_bind_conv(w, prefix, 3, rc_layers[i].cin, rc_layers[i].cout, 0, &mem, &r->c1,
                               err, errlen)) < 0)
            goto fail;
        snprintf(prefix, sizeof prefix, "%s/conv2", rc_layers[i].name);
        /* The last layer's second conv runs on a 1x1 map (rc_conv_run). */
        if ((rc = rc_bind_conv(w, prefix, 3, rc_layers[i].cout, rc_layers[i].cout, i == RC_NRES - 1,
                               &mem, &r->c2, err, errlen)) < 0)
            goto fail;
    }
    {
        const int fs[2] = {256, 128};
        const fn_tensor *fc = rc_get(w, "fc", 2, fs, err, errlen);
        if (!fc) {
            rc = -1;
            goto fail;
        }
        n->fc = fc->d;
    }
    *out = n;
    return 0;
fail:
    fn_recog_free(n);
    return rc == -2 ? FN_ERR_NOMEM : FN_ERR_MODEL;
}

void fn_recog_free(fn_recog_net *n)
{
    if (!n) return;
    fn_wpack_free(&n->first.wp);
    free(n->first.f);
    for (int i = 0; i < RC_NRES; i++) {
        fn_wpack_free(&n->res[i].c1.wp);
        fn_wpack_free(&n->res[i].c2.wp);
        fn_wpack_free(&n->res[i].c2.centre);
        free(n->res[i].c1.f);
        free(n->res[i].c2.f);
        free(n->res[i].c1.sm);
        free(n->res[i].c2.sm);
    }
    free(n->first.sm);
    free(n->mem);
    free(n);
}

int fn_recog_byte_packs(const fn_recog_net *n)
{
    int count = n->first.wp.q != NULL;
    for (int i = 0; i < RC_NRES; i++)
        count += (n->res[i].c1.wp.q != NULL) + (n->res[i].c2.wp.q != NULL) +
                 (n->res[i].c2.centre.q != NULL);
    return count;
}

int fn_recog_amx_init(fn_recog_net *n)
{
    int bad = fn_wpack_amx_init(&n->first.wp);
    for (int i = 0; i < RC_NRES; i++) {
        bad |= fn_wpack_amx_init(&n->res[i].c1.wp);
        bad |= fn_wpack_amx_init(&n->res[i].c2.wp);
        if (n->res[i].c2.centre.k) bad |= fn_wpack_amx_init(&n->res[i].c2.centre);
    }
    return bad ? -1 : 0;
}

int fn_recog_i16_init(fn_recog_net *n)
{
    /* The residual layers' convs (inputs: relu outputs, scaled to their max): exact packs of the
     * byte-quantized weights, and float packs of the float32 ones (the 64-channel layers);
     * conv32_down reads pixels (and its K, 147, is odd); the 1x1-map centre pack is a ninth of
     * one layer. */
    int bad = 0;
    for (int i = 0; i < RC_NRES; i++) {
        rc_conv *cv[2] = {&n->res[i].c1, &n->res[i].c2};
        for (int j = 0; j < 2; j++)
            bad |= cv[j]->sm
                       ? fn_wpack_i16_init_cols(&cv[j]->wp, cv[j]->sm, cv[j]->sm + cv[j]->cout)
                       : fn_wpack_i16_init_float(&cv[j]->wp);
    }
    return bad ? -1 : 0;
}

/* Scratch: the input, four tensors the size of the largest activation (72x72x32, conv32_down's
 * output), and the largest im2col matrix (conv32_down's: 72*72 rows of 7*7*3). */
#define RC_IN_FLOATS  ((size_t)RC_SIZE * RC_SIZE * 3)
#define RC_BUF_FLOATS ((size_t)72 * 72 * 32)

static size_t rc_col_floats(int nimg)
{
    size_t m = fn_conv2d_scratch_floats_n(nimg, RC_SIZE, RC_SIZE, 3, 7, 7, 2, FN_PAD_VALID);
    int hw = 35;
    for (int i = 0; i < RC_NRES; i++) {
        const int cin = rc_layers[i].cin, cout = rc_layers[i].cout;
        size_t a, b;
        if (rc_layers[i].down) {
            int o = fn_out_size(hw, 3, 2, FN_PAD_VALID);
            a = fn_conv2d_scratch_floats_n(nimg, hw, hw, cin, 3, 3, 2, FN_PAD_VALID);
            b = fn_conv2d_scratch_floats_n(nimg, o, o, cout, 3, 3, 1, FN_PAD_SAME);
            hw = fn_out_size(hw, 2, 2, FN_PAD_VALID);
        } else {
            a = fn_conv2d_scratch_floats_n(nimg, hw, hw, cin, 3, 3, 1, FN_PAD_SAME);
            b = fn_conv2d_scratch_floats_n(nimg, hw, hw, cout, 3, 3, 1, FN_PAD_SAME);
        }
        if (a > m) m = a;
        if (b > m) m = b;
    }
    return m;
}

size_t fn_recog_scratch_floats(void)
{
    return RC_IN_FLOATS + 4 * RC_BUF_FLOATS + rc_col_floats(1);
}

size_t fn_recog_batch_scratch_floats(int nimg)
{
    return (size_t)nimg * 4 * RC_BUF_FLOATS + rc_col_floats(nimg);
}

/* out = relu(zero-extend(q) + zero-extend(pooled)) at pooled's height and width and q's channels:
 * residualDown's sum where the conv branch is one row and column short or the pooled input has
 * half the channels. */
static void rc_down_sum(const fn_t3 *q, const fn_t3 *p, fn_t3 *out)
{
    out->h = p->h;
    out->w = p->w;
    out->c = q->c;
    const int c = q->c, pc = p->c;
    for (int y = 0; y < p->h; y++) {
        for (int x = 0; x < p->w; x++) {
            float *o = out->d + ((size_t)y * p->w + x) * c;
            const float *pp = p->d + ((size_t)y * p->w + x) * pc;
            const int inq = y < q->h && x < q->w;
            const float *qq = inq ? q->d + ((size_t)y * q->w + x) * c : NULL;
            for (int j = 0; j < c; j++) {
                float v = (inq ? qq[j] : 0.0f) + (j < pc ? pp[j] : 0.0f);
                o[j] = v > 0.0f ? v : 0.0f;
            }
        }
    }
}

/* A SAME conv at stride 1 on a 1x1 map (the last layer's second) reads only its centre taps, the
 * others falling on the padding: run as a 1x1 conv with those taps' weights (c->centre), it
 * streams a ninth of the weights (256 KB instead of 2.4 MB for that layer). The same floats: the
 * padded taps' products are zeros, which leave every sum as it was (test_conv2d_centre). */
static void rc_conv_run(const rc_conv *c, const fn_t3 *in, int nimg, int stride, fn_pad pad,
                        fn_act act, fn_t3 *out, float *col)
{
    if (c->centre.k && in->h == 1 && in->w == 1 && stride == 1 && pad == FN_PAD_SAME)
        fn_conv2d_wn(in, nimg, &c->centre, c->b, 1, 1, 1, pad, act, out, col);
    else
        fn_conv2d_wn(in, nimg, &c->wp, c->b, c->k, c->k, stride, pad, act, out, col);
}

/* The net over nimg inputs stored one after the other (`in` holds one's shape): the convs take
 * every image at once (fn_conv2d_wn), the pools and sums go image by image. buf: four buffers of
 * nimg * RC_BUF_FLOATS; col: the im2col scratch for nimg images. */
static void rc_forward(const fn_recog_net *n, const fn_t3 *in, int nimg, float *buf[4], float *col,
                       float (*out)[128])
{
    fn_t3 a = {0, 0, 0, buf[0]}, cur = {0, 0, 0, buf[1]};
    rc_conv_run(&n->first, in, nimg, 2, FN_PAD_VALID, FN_ACT_RELU, &a, col);
    for (int i = 0; i < nimg; i++) {
        const size_t sa = (size_t)a.h * a.w * a.c;
        fn_t3 ai = {a.h, a.w, a.c, a.d + i * sa}, ci = {0, 0, 0, NULL};
        ci.d = cur.d + (size_t)i * fn_out_size(a.h, 3, 2, FN_PAD_VALID) *
                           fn_out_size(a.w, 3, 2, FN_PAD_VALID) * a.c;
        fn_maxpool(&ai, 3, 2, FN_PAD_VALID, &ci);
        cur.h = ci.h, cur.w = ci.w, cur.c = ci.c;
    }

    fn_t3 p = {0, 0, 0, buf[0]}, q = {0, 0, 0, buf[2]}, r = {0, 0, 0, buf[3]};
    for (int l = 0; l < RC_NRES; l++) {
        const rc_res *L = &n->res[l];
        fn_t3 t = cur;
        if (!L->down) {
            rc_conv_run(&L->c1, &cur, nimg, 1, FN_PAD_SAME, FN_ACT_RELU, &p, col);
            /* residual(): relu(conv2(...) + x), the sum in the conv's epilogue; q holds the
             * layer's output: it becomes cur, and cur's buffer is free for the next q. */
            fn_conv2d_res_wn(&p, nimg, &L->c2.wp, L->c2.b, 3, 3, 1, FN_PAD_SAME, cur.d, &q, col);
            cur = q;
            q = t;
            continue;
        }
        rc_conv_run(&L->c1, &cur, nimg, 2, FN_PAD_VALID, FN_ACT_RELU, &p, col);
        rc_conv_run(&L->c2, &p, nimg, 1, FN_PAD_SAME, FN_ACT_NONE, &q, col);
        const int ph = fn_out_size(cur.h, 2, 2, FN_PAD_VALID),
                  pw = fn_out_size(cur.w, 2, 2, FN_PAD_VALID);
        for (int i = 0; i < nimg; i++) {
            fn_t3 ci = {cur.h, cur.w, cur.c, cur.d + (size_t)i * cur.h * cur.w * cur.c};
            fn_t3 ri = {0, 0, 0, r.d + (size_t)i * ph * pw * cur.c};
            fn_t3 qi = {q.h, q.w, q.c, q.d + (size_t)i * q.h * q.w * q.c};
            fn_t3 oi = {0, 0, 0, p.d + (size_t)i * ph * pw * q.c};
            fn_avgpool(&ci, 2, 2, FN_PAD_VALID, &ri);
            rc_down_sum(&qi, &ri, &oi);
            p.h = oi.h, p.w = oi.w, p.c = oi.c;
        }
        /* residualDown(): p holds the layer's output: it becomes cur, and cur's buffer is free
         * for the next p. */
        cur = p;
        p = t;
    }
    for (int i = 0; i < nimg; i++) {
        fn_t3 ci = {cur.h, cur.w, cur.c, cur.d + (size_t)i * cur.h * cur.w * cur.c};
        float feat[256];
        fn_global_avgpool(&ci, feat);
        fn_dense(feat, 256, n->fc, NULL, 128, out[i]);
    }
}

void fn_recog_forward(const fn_recog_net *n, const fn_t3 *in, float *scratch, float out[128])
{
    float *buf[4];
    for (int i = 0; i < 4; i++)
        buf[i] = scratch + RC_IN_FLOATS + (size_t)i * RC_BUF_FLOATS;
    rc_forward(n, in, 1, buf, scratch + RC_IN_FLOATS + 4 * RC_BUF_FLOATS, (float(*)[128])out);
}

void fn_recog_forward_batch(const fn_recog_net *n, const fn_t3 *in, int nimg, float *scratch,
                            float (*out)[128])
{
    float *buf[4];
    for (int i = 0; i < 4; i++)
        buf[i] = scratch + (size_t)i * nimg * RC_BUF_FLOATS;
    rc_forward(n, in, nimg, buf, scratch + (size_t)4 * nimg * RC_BUF_FLOATS, out);
}

void fn_recog_aligned_box(const float lm[68][2], int crop_w, int crop_h, float box[4])
{
    /* FaceLandmarks68.getRefPointsForAlignment + FaceLandmarks.alignDlib, in double as JS does. */
    double c[3][2];
    static const int from[3] = {36, 42, 48}, to[3] = {42, 48, 68};
    for (int k = 0; k < 3; k++) {
        double sx = 0, sy = 0;
        for (int i = from[k]; i < to[k]; i++)
            sx += lm[i][0], sy += lm[i][1];
        c[k][0] = sx / (to[k] - from[k]);
        c[k][1] = sy / (to[k] - from[k]);
    }
    /* Point.magnitude is sqrt(x * x + y * y), not hypot (which can differ in the last bit). */
    double d0 =
        sqrt((c[2][0] - c[0][0]) * (c[2][0] - c[0][0]) + (c[2][1] - c[0][1]) * (c[2][1] - c[0][1]));
    double d1 =
        sqrt((c[2][0] - c[1][0]) * (c[2][0] - c[1][0]) + (c[2][1] - c[1][1]) * (c[2][1] - c[1][1]));
    double size = floor(((d0 + d1) / 2) / 0.45);
    double rx = (c[0][0] + c[1][0] + c[2][0]) / 3, ry = (c[0][1] + c[1][1] + c[2][1]) / 3;
    double x = floor(fmax(0.0, rx - 0.5 * size)), y = floor(fmax(0.0, ry - 0.43 * size));
    double w = size, h = size;
    /* The reference bounds the side by the landmarks' "image" size, which is the landmark crop's
     * size plus x (a quirk that only matters at the left/top edge); no crop size, no bound. */
    if (crop_w > 0 && w > crop_w + x) w = crop_w + x;
    if (crop_h > 0 && h > crop_h + y) h = crop_h + y;
    box[0] = (float)x;
    box[1] = (float)y;
    box[2] = (float)w;
    box[3] = (float)h;
}

static void rc_normalise(fn_t3 *t)
{
    size_t n = (size_t)t->h * t->w;
    float *p = t->d;
    for (size_t i = 0; i < n; i++, p += 3) {
        p[0] = (p[0] - rc_mean[0]) / 255.0f;
        p[1] = (p[1] - rc_mean[1]) / 255.0f;
        p[2] = (p[2] - rc_mean[2]) / 255.0f;
    }
}

/* Writes the face tensor for `box` into in (RC_IN_FLOATS floats): Box.clipAtImageBorders (the box
 * is already integral), then the face padded to a square and resized as NetInput.toBatchTensor
 * does, normalised. Returns 0 when the face has no descriptor (NaN landmarks, or a box that is
 * empty once clipped: the reference drops such a face; computeFaceDescriptor would give zeros). */
static int rc_input_box(const fn_image *img, const float box[4], float *in)
{
    int cx, cy, cw, ch;
    for (int k = 0; k < 4; k++)
        if (!(isfinite(box[k]) && fabsf(box[k]) < 1e8f)) return 0;
    if (!fn_clip_box(img->width, img->height, box[0], box[1], box[2], box[3], &cx, &cy, &cw, &ch))
        return 0;
    fn_t3 t = {RC_SIZE, RC_SIZE, 3, in};
    fn_pad_resize_region(img, cx, cy, cw, ch, 1, RC_SIZE, &t);
    rc_normalise(&t);
    return 1;
}

static void rc_run_box(const fn_recog_net *n, const fn_image *img, const float box[4],
                       float *scratch, float out[128])
{
    if (!rc_input_box(img, box, scratch)) {
        memset(out, 0, 128 * sizeof(float));
        return;
    }
    fn_t3 in = {RC_SIZE, RC_SIZE, 3, scratch};
    fn_recog_forward(n, &in, scratch, out);
}

void fn_recog_run(const fn_recog_net *n, const fn_image *img, const float landmarks[68][2],
                  float *scratch, float out[128])
{
    float box[4];
    fn_recog_aligned_box(landmarks, 0, 0, box);
    rc_run_box(n, img, box, scratch, out);
}

/* The box of fn_recog_run_det: the aligned box bounded by the landmark crop of `det`. */
static void rc_box_det(const fn_image *img, const fn_det *det, const float landmarks[68][2],
                       float box[4])
{
    int crop[4] = {0, 0, 0, 0};
    fn_landmark_crop_box(img, det, crop);
    fn_recog_aligned_box(landmarks, crop[2], crop[3], box);
}

void fn_recog_run_det(const fn_recog_net *n, const fn_image *img, const fn_det *det,
                      const float landmarks[68][2], float *scratch, float out[128])
{
    float box[4];
    rc_box_det(img, det, landmarks, box);
    rc_run_box(n, img, box, scratch, out);
}

size_t fn_recog_input_floats(void)
{
    return RC_IN_FLOATS;
}

int fn_recog_input_det(const fn_image *img, const fn_det *det, const float landmarks[68][2],
                       float *in)
{
    float box[4];
    rc_box_det(img, det, landmarks, box);
    return rc_input_box(img, box, in);
}
