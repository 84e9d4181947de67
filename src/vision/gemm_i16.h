/* gemm_i16.h: the 16-bit integer GEMM behind `vision.precision = int16` (internal).
 *
 * For layers whose weights are stored as bytes (w = q * scale + min, as face-api's
 * uint8-quantized tensors; one scale for the tensor, or one per column where a scale layer was
 * folded in; and, rounded to integers per column, float32 ones: fn_wpack_i16_init_float): the
 * activations are rounded to integers of 16 bits, the products q' * a (q' = q - 128) summed exactly
 * in 32-bit integers by VPMADDWD (sixteen multiply-adds an instruction where a 256-bit FMA does
 * eight), and the float result is C[m][n] = fmaf((float)sum * inv[m], scale[n], rowsum[m] * (min[n]
 * + 128 * scale[n])) + bias[n] (inv[m]: what takes row m's integers back to activations; rowsum[m]:
 * the row's rounded activations' sum, times inv[m]), then the activation. Two kinds of pack: fixed
 * (fn_wpack_i16_init, SSD's layers after a relu6): a = round(a * 2048) clamped to [0, 12288], inv =
 * 1/2048 (error at most 1/4096 an activation); scaled (fn_wpack_i16_init_cols, the descriptor's
 * convs; and SSD's deeper than FN_I16_MAX_K): a = round(a * mul) with mul = qmax / amax (floats),
 * amax the row's largest |a| (fn_gemm_i16) or the image's (fn_gemm_i16_seg), qmax = min(32767, 2^31
 * / (128 K)) so that no sum overflows; inv = 1 / mul (error about amax / (2 qmax) an activation: 13
 * bits or more at the descriptor's K). The sums are integers, so the result depends on neither the
 * order of the sums nor the CPU: every AVX2 CPU (AVX-512 ones included) computes the same floats;
 * and a row's scale is its own or its image's, so a face's results do not depend on the batch it
 * ran in (design decisions 55, 57).
 *
 * A layer gets a second pack of its weights (int16 pairs, made on demand by fn_wpack_i16_init*,
 * owned by the fn_wpack, freed by fn_wpack_free), and while the calling thread has int16 on
 * (fn_i16_set_thread) ops.c's GEMMs hand every layer that has such a pack to fn_gemm_i16 (and
 * its 3x3 rows-of-taps convs to fn_gemm_i16_seg). Layers without the pack, and every thread that
 * has not turned int16 on, run the FP32 kernels. Without AVX2 there is no pack and int16 means
 * FP32. */
#ifndef FN_VISION_GEMM_I16_H
#define FN_VISION_GEMM_I16_H

#include "vision/ops.h"

/* The deepest layer a pack is made for: |sum| <= K * 128 * 12288 stays below 2^31. */
#define FN_I16_MAX_K 1024
/* ... and for a scaled pack (fn_wpack_i16_init_cols), whose activations become integers up to
 * 2^31 / (128 K) (at most 32767; 2047 at this K). */
#define FN_I16_MAX_K_SCALED 8192

/* 1 when this CPU runs the int16 kernel (AVX2); else 0 and, if reason is not NULL, a static
 * sentence saying why. Thread-safe. */
int fn_i16_available(const char **reason);

/* 1 when the int16 kernel is this CPU's faster arithmetic: it runs here and the CPU's FP32 FMAs
 * are at most 256 bits at a time (no AVX-512, or an AMD family 19h core, Zen 4, which runs a
 * 512-bit FMA as two 256-bit halves); 0 on CPUs with full-width AVX-512 FMAs (Intel's, AMD Zen 5)
 * or without AVX2. What vision.precision = auto picks (docs/design.md decision 59). Thread-safe. */
int fn_i16_preferred(void);

/* Builds wp's int16 pack from its FP32 weights (wp->w or the panels), given the tensor's byte
 * quantization (every weight must be exactly (float)(q * qscale + qmin) for a q in 0..255, as
 * weights.c dequantizes; the layer's inputs must be in [0, 6]). Up to FN_I16_MAX_K a fixed pack
 * (activations at 1/2048, as above); deeper (SSD's 3x3 extra layers, K 1152 and 2304) a scaled
 * one (below), its inputs' range notwithstanding. Returns 0 with the pack made, or without one
 * (no AVX2, K odd or over FN_I16_MAX_K_SCALED, a weight not of that form, the pack made already:
 * the layer stays FP32); -1 when out of memory. Not while other threads read wp. */
int fn_wpack_i16_init(fn_wpack *wp, double qscale, double qmin);
/* fn_wpack_i16_init for inputs of any sign and size: always a scaled pack (below), the
 * activations scaled to each row's max (the landmark net's pointwise convs, whose inputs are
 * depthwise outputs). Returns as fn_wpack_i16_init. */
int fn_wpack_i16_init_scaled(fn_wpack *wp, double qscale, double qmin);
/* The same for weights quantized per column (w[r][c] = fmaf(q, scale[c], min[c]), scale and min
 * n floats; the descriptor net's, its scale layer folded in) and inputs of any sign: a scaled
 * pack. Its GEMMs turn the activations into integers scaled to their largest magnitude (up to
 * 2^31 / (128 K), at most 32767): per row in fn_gemm_i16, per call in fn_gemm_i16_seg. K up to
 * FN_I16_MAX_K_SCALED. Returns as fn_wpack_i16_init. */
int fn_wpack_i16_init_cols(fn_wpack *wp, const float *scale, const float *min);
/* The same for weights that are not bytes of one scale (the descriptor net's 64-channel convs,
 * stored as float32 in the model): each column quantized to integers up to
 * wmax = fn_i16_float_wmax(K) (w ~ q * scale[c], scale[c] = the column's max |w| / wmax, q
 * rounded to nearest), a scaled pack whose activations go up to 2^31 / (wmax K) (about wmax
 * itself: the two share the 31 bits, about 11 bits each at K 576). Not exact weights, unlike the
 * byte packs: the error is the weights' rounding (half a step of the column's max / wmax) beside
 * the activations'. Returns as fn_wpack_i16_init (no pack for K odd or over
 * FN_I16_MAX_K_SCALED, or a weight that is not finite). */
int fn_wpack_i16_init_float(fn_wpack *wp);
/* floor(sqrt(2^31 / k)), at most 32767: a float pack's largest weight integer at depth k. */
int fn_i16_float_wmax(int k);
void fn_wpack_i16_free(fn_wpack *wp);

/* 1 when the int16 GEMMs run their AVX-512 VNNI tiles (12 rows x 16 columns, VPDPWSSD: the
 * multiply and the add in one instruction; the same exact sums as the AVX2 tiles, so the same
 * floats): the CPU has AVX-512 VNNI and the AVX-512 kernels run (fn_ops_isa; a test forces the
 * AVX2 tiles on such a CPU with fn_ops_set_isa(FN_ISA_AVX2)). Thread-safe. */
int fn_i16_vnni(void);

/* Turns int16 on (1) or off (0) for the calling thread's GEMMs; returns the previous setting.
 * Without AVX2 it changes nothing (fn_i16_thread stays 0). */
int fn_i16_set_thread(int on);
int fn_i16_thread(void);

/* C[m][n] = act(A[m][k] B + bias) as above for a pack made by fn_wpack_i16_init* (wp->i16
 * non-NULL); A and C row-major with k and n floats per row; with res (laid out as C; act none
 * then), C = relu(A B + bias + res). Only while fn_i16_thread() is 1. Returns 0, or -1 with C
 * untouched when the thread's scratch cannot grow (out of memory: the caller runs FP32). */
int fn_gemm_i16(int m, const fn_wpack *wp, const float *a, const float *bias, fn_act act,
                const float *res, float *c);

/* The same with A's row i made of nseg runs of lda floats, run s at a + i * lda + s * sstride
 * (sstride a multiple of lda, K = nseg * lda, lda even): a 3x3 conv's rows of taps (ops.c
 * conv3_rows), each run converted once for the nseg rows that read it. A scaled pack's
 * activations are scaled by one factor for the call, from amax (the largest |a| of the image,
 * given by the caller so that every strip of an image gets the same factor); a fixed pack's as
 * fn_gemm_i16's. Returns 0, or -1 with C untouched (out of memory, or a shape not as above). */
int fn_gemm_i16_seg(int m, const fn_wpack *wp, const float *a, int lda, int nseg, size_t sstride,
                    float amax, const float *bias, fn_act act, const float *res, float *c);

/* max |a[i]| over n floats, NaN when one is NaN. */
float fn_i16_absmax(const float *a, size_t n);

#endif
