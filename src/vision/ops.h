/* ops.h: the tensor kernels every network is built from (internal).
 *
 * Tensors are single images in HWC order (row-major: h, then w, then channel), float32, matching
 * TFJS's NHWC with batch 1. Weights are as TFJS stores them: conv [kh][kw][cin][cout] (HWIO),
 * depthwise [kh][kw][cin][1], fully connected [in][out].
 *
 * Padding follows TensorFlow exactly: VALID uses no padding; SAME gives out = ceil(in / stride) and
 * pads total = max((out - 1) * stride + k - in, 0) with floor(total / 2) before (top/left) and the
 * rest after. The kernels never allocate: callers hand in outputs (and scratch where a kernel needs
 * it, sized by the *_scratch_floats functions). Activations are fused into the kernel's last pass.
 *
 * Contract: out must not alias in unless a function says it may. Single-threaded; OpenBLAS must be
 * limited to one thread by the caller (fn_vision_init does it). */
#ifndef FN_VISION_OPS_H
#define FN_VISION_OPS_H

#include <stddef.h>

typedef struct fn_t3 {
    int h, w, c;
    float *d; /* h*w*c floats */
} fn_t3;

typedef enum fn_act {
    FN_ACT_NONE = 0,
    FN_ACT_RELU,
    FN_ACT_RELU6, /* min(max(x, 0), 6) */
    FN_ACT_LEAKY, /* x < 0 ? 0.1x : x  (TinyFaceDetector's leaky relu) */
} fn_act;

typedef enum fn_pad {
    FN_PAD_VALID = 0,
    FN_PAD_SAME = 1,
} fn_pad;

/* Output size of a conv/pool along one axis. */
int fn_out_size(int in, int k, int stride, fn_pad pad);

/* Regular convolution (kh x kw, any stride) via GEMM; 1x1 stride-1 convs skip im2col. `bias` may be
 * NULL. Writes out->h/w/c and out->d (caller-sized). scratch: fn_conv2d_scratch_floats() floats. */
size_t fn_conv2d_scratch_floats(int in_h, int in_w, int cin, int kh, int kw, int stride,
                                fn_pad pad);
void fn_conv2d(const fn_t3 *in, const float *w_hwio, const float *bias, int kh, int kw, int cout,
               int stride, fn_pad pad, fn_act act, fn_t3 *out, float *scratch);

/* Weights of a conv (HWIO, viewed as a [kh*kw*cin][cout] matrix) prepared once, at model load, for
 * the GEMM: on a CPU with the AVX-512 kernels, a copy in the column panels the microkernel streams
 * (owned, 64-byte aligned; see ops.c); elsewhere none, and the kernels read `w`. `w` is not
 * copied for the other paths and must outlive the pack, unless the caller sets it to NULL after a
 * successful pack (p non-NULL) to free its own copy: every kernel then reads the panels (the
 * generic one too, slowly). fn_wpack_init returns 0, or -1 when out of memory; fn_wpack_free
 * frees the copy (NULL and a zeroed pack are fine). Packs are immutable after init and may be
 * shared by threads. */
typedef struct fn_wpack {
    const float *w;   /* [k][n], not owned; NULL: only the panels */
    float *p;         /* packed panels (owned) or NULL */
    int k, n;         /* k = kh * kw * cin, n = cout */
    void *amx;        /* BF16 tile pack (gemm_amx.h, owned) or NULL; made on demand for bf16 */
    void *i16;        /* int16 pack (gemm_i16.h, owned) or NULL; made on demand for int16 */
    unsigned char *q; /* the panels as bytes (fn_wpack_bytes, owned) or NULL */
    float *qsm;       /* per panel, its columns' scales then offsets (owned with q) */
    int sliced;       /* p's panels as 16-column slices (ops_isa.h, fn_panel_index) */
} fn_wpack;
int fn_wpack_init(fn_wpack *wp, const float *w, int k, int n);
void fn_wpack_free(fn_wpack *wp);
/* Adds to a pack a copy of its weights as bytes, for GEMMs with few rows, whose time is the
 * weights' streaming from memory (a quarter of the bytes; ops.c's gemm_bytes_avx512, ops_avx2.c's
 * fn_gemm_bytes_avx2). Every weight must be exactly fmaf((float)q[r][c], s[c], m[c]) (q [k][n], s
 * and m [n]: the caller folds its weights so), which is checked: the kernels that decode the bytes
 * then compute the same floats as those that read the panels. Returns 0 with the copy made, or
 * without one when this CPU has neither AVX-512 nor AVX2 kernels or wp has no panels; -1 out of
 * memory; -2 when a weight is not what its byte gives (no copy). Call before the pack is shared;
 * freed by fn_wpack_free. */
int fn_wpack_bytes(fn_wpack *wp, const unsigned char *q, const float *s, const float *m);
/* The bytes of one core's L2 cache (sysconf; 1 MB when the system does not say). A layer whose
 * panels do not fit in half of it pays for a byte copy (recognition.c): its GEMMs of few rows
 * then decode blocks that stay in L1 instead of streaming the floats from L3. Any thread. */
size_t fn_cpu_l2_bytes(void);
/* The calling thread's scratch buffer of at least `bytes` (64-byte aligned), grown on demand and
 * freed when the thread exits; its contents last until the thread's next call. For the kernels
 * that convert a block of activations (gemm_amx.c, gemm_i16.c; one GEMM at a time per thread).
 * NULL when out of memory. */
void *fn_thread_scratch(size_t bytes);
/* out[r][c] = fmaf((float)q[r][c], s[c], m[c]) for r < rows, c < n: weights given as bytes
 * decoded as fn_wpack_bytes requires (vectorised where the CPU has FMA). */
void fn_decode_bytes(const unsigned char *q, size_t rows, int n, const float *s, const float *m,
                     float *out);
/* Element [r][c] of the weights, from `w` or, when it was dropped, from the panels (for packing
 * them again in another layout: gemm_amx.c). */
float fn_wpack_at(const fn_wpack *wp, int r, int c);

/* fn_conv2d with packed weights (wp->k must be kh * kw * in->c; cout is wp->n). */
void fn_conv2d_w(const fn_t3 *in, const fn_wpack *wp, const float *bias, int kh, int kw, int stride,
                 fn_pad pad, fn_act act, fn_t3 *out, float *scratch);
/* fn_conv2d_w over nimg images of in's shape stored one after the other at in->d (outputs one
 * after the other at out->d; out->h/w/c are one image's): the same results as nimg calls, but one
 * GEMM takes the rows of several images, so a small map's layer streams its weights once for the
 * batch. scratch: fn_conv2d_scratch_floats_n() floats. */
size_t fn_conv2d_scratch_floats_n(int nimg, int in_h, int in_w, int cin, int kh, int kw, int stride,
                                  fn_pad pad);
void fn_conv2d_wn(const fn_t3 *in, int nimg, const fn_wpack *wp, const float *bias, int kh, int kw,
                  int stride, fn_pad pad, fn_act act, fn_t3 *out, float *scratch);
/* fn_conv2d_wn and a residual connection: out = relu(conv(in) + bias + res), res laid out as out
 * (nimg maps of the output's shape; it must alias neither in nor out). The same floats as
 * fn_conv2d_wn with FN_ACT_NONE followed by relu(res + out), but on the vector kernels the sum and
 * the relu run in the GEMM's epilogue instead of a pass over the maps. */
void fn_conv2d_res_wn(const fn_t3 *in, int nimg, const fn_wpack *wp, const float *bias, int kh,
                      int kw, int stride, fn_pad pad, const float *res, fn_t3 *out, float *scratch);

/* A k x k VALID conv at stride 1 (fn_conv2d_w) followed by a 2x2 max pool at stride 2 (SAME),
 * strip by strip, so the conv's output map is never written whole: the same floats as the two
 * calls. out is the pool's output. scratch: fn_conv2d_pool_scratch_floats() floats. */
size_t fn_conv2d_pool_scratch_floats(int in_h, int in_w, int cin, int k, int cout);
void fn_conv2d_pool_w(const fn_t3 *in, const fn_wpack *wp, const float *bias, int k, fn_act act,
                      fn_t3 *out, float *scratch);

/* Depthwise convolution, k x k, channel multiplier 1. `bias` may be NULL. */
void fn_dwconv2d(const fn_t3 *in, const float *w, const float *bias, int k, int stride, fn_pad pad,
                 fn_act act, fn_t3 *out);

/* Depthwise-separable conv, the MobileNet block: depthwise 3x3 SAME (stride 1 or 2, channel
 * multiplier 1, bias dw_b may be NULL, then dw_act), then pointwise 1x1 to cout (+ pw_b, pw_act).
 * Equal to fn_dwconv2d followed by fn_conv2d, but run in strips of rows so the intermediate map
 * stays in cache instead of going through memory. scratch: fn_sepconv_scratch_floats() floats.
 * (Added by the kernels engineer.) */
size_t fn_sepconv_scratch_floats(int in_h, int in_w, int cin, int stride);
void fn_sepconv(const fn_t3 *in, const float *dw_w, const float *dw_b, int stride, fn_act dw_act,
                const float *pw_w, const float *pw_b, int cout, fn_act pw_act, fn_t3 *out,
                float *scratch);

/* fn_sepconv with packed pointwise weights (pw->k must be in->c; cout is pw->n). */
void fn_sepconv_w(const fn_t3 *in, const float *dw_w, const float *dw_b, int stride, fn_act dw_act,
                  const fn_wpack *pw, const float *pw_b, fn_act pw_act, fn_t3 *out, float *scratch);

/* fn_sepconv_w at stride 1 followed by a 2x2 max pool at stride 2 (SAME), strip by strip, so the
 * separable conv's output map is never written whole: the same floats as the two calls. out is
 * the pool's output. scratch: fn_sepconv_pool_scratch_floats() floats. */
size_t fn_sepconv_pool_scratch_floats(int in_h, int in_w, int cin, int cout);
void fn_sepconv_pool_w(const fn_t3 *in, const float *dw_w, const float *dw_b, fn_act dw_act,
                       const fn_wpack *pw, const float *pw_b, fn_act pw_act, fn_t3 *out,
                       float *scratch);

/* A dense block's separable conv (FaceLandmark68Net): q = pointwise(depthwise(in)) + pw_b, the
 * depthwise 3x3 SAME, stride 1, without bias or activation (weights dw_w [3][3][in->c][1], pw
 * packed, pw->k = in->c), then sum_out = sum_in + q and relu_out = max(sum_out, 0), all three maps
 * in->h x in->w x pw->n. The same floats as fn_dwconv2d, fn_conv2d_w and the sum one after the
 * other, but a strip of rows at a time, the sum in the GEMM's epilogue (q is not stored where the
 * AVX-512 or AVX2 kernels run). sum_out may be sum_in, or NULL when only the relu is wanted;
 * neither sum_out nor relu_out may overlap `in`. scratch: fn_sepconv_sum_scratch_floats(in->h,
 * in->w, in->c, pw->n) floats. */
size_t fn_sepconv_sum_scratch_floats(int h, int w, int cin, int cout);
void fn_sepconv_sum_w(const fn_t3 *in, const float *dw_w, const fn_wpack *pw, const float *pw_b,
                      const float *sum_in, float *sum_out, float *relu_out, float *scratch);

/* A chain of separable blocks (fn_sepconv_w's MobileNet block: depthwise 3x3 SAME, then pointwise
 * 1x1), each block's output the next one's input, optionally after a head conv (fn_conv2d_w's
 * conv, any kernel size, stride and padding; NULL: none): the same results as the fn_conv2d_w and
 * nblocks fn_sepconv_w calls (to the bit with the AVX-512 kernels; with OpenBLAS within rounding,
 * as its sum order may depend on the rows per call), but run a strip of output rows at a time
 * through every layer, so the maps between layers exist only as windows of a few rows in cache,
 * never whole in memory. nblocks is 0 (with a head) or 1 to FN_SEPCHAIN_MAX; blocks[i].pw->k must
 * be the channels of block i's input (head->wp->k: k * k * in->c). out: the last layer's output
 * (whole map; it must not alias in). scratch: fn_sepchain_scratch_floats() floats (0 for a bad
 * nblocks, and then fn_sepchain_w does nothing). The head, the blocks and their weights are only
 * read. */
#define FN_SEPCHAIN_MAX 16
typedef struct fn_conv_head {
    const fn_wpack *wp; /* [k * k * cin][cout] */
    const float *bias;  /* [cout] or NULL */
    int k, stride;
    fn_pad pad;
    fn_act act;
} fn_conv_head;
typedef struct fn_sep_block {
    const float *dw_w, *dw_b; /* depthwise [3][3][c] (HWC), bias [c] or NULL */
    int stride;               /* 1 or 2 */
    fn_act dw_act;
    const fn_wpack *pw; /* pointwise [c][cout] */
    const float *pw_b;  /* [cout] or NULL */
    fn_act pw_act;
} fn_sep_block;
size_t fn_sepchain_scratch_floats(int in_h, int in_w, int cin, const fn_conv_head *head,
                                  const fn_sep_block *blocks, int nblocks);
void fn_sepchain_w(const fn_t3 *in, const fn_conv_head *head, const fn_sep_block *blocks,
                   int nblocks, fn_t3 *out, float *scratch);

/* Max and average pooling, k x k window. Average pooling divides by the number of in-bounds cells
 * (TensorFlow's SAME semantics). */
void fn_maxpool(const fn_t3 *in, int k, int stride, fn_pad pad, fn_t3 *out);
void fn_avgpool(const fn_t3 *in, int k, int stride, fn_pad pad, fn_t3 *out);

/* Per-channel y = x * scale[c] + offset[c] (batch norm folded, or TinyFaceDetector's
 * normalisation), in place, then `act`. scale or offset may be NULL (1 and 0). */
void fn_scale_offset(fn_t3 *t, const float *scale, const float *offset, fn_act act);

/* out = a + b (+ act), elementwise; out may alias a or b. */
void fn_add(const fn_t3 *a, const fn_t3 *b, fn_act act, fn_t3 *out);

/* In-place activation. */
void fn_activate(fn_t3 *t, fn_act act);

/* Fully connected: out[j] = bias[j] + sum_i in[i] * w[i][j]. bias may be NULL. */
void fn_dense(const float *in, int n_in, const float *w, const float *bias, int n_out, float *out);

/* Mean over h and w: out[c]. */
void fn_global_avgpool(const fn_t3 *in, float *out);

/* Bilinear resize of an RGB8 image region to an HWC float tensor, as tf.image.resizeBilinear with
 * align_corners=false and half_pixel_centers=false (TFJS's default). */
void fn_resize_bilinear_rgb8(const unsigned char *rgb, int w, int h, int stride_bytes, fn_t3 *out);

#endif
