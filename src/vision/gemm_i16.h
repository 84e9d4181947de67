/* gemm_i16.h: the 16-bit integer GEMM behind `vision.precision = int16` (internal).
 *
 * For layers whose weights are stored as bytes of one scale and offset (w = q * scale + min, as
 * face-api's uint8-quantized tensors) and whose inputs are relu6 outputs (in [0, 6]): the
 * activations are rounded to multiples of 1/2048 (16-bit integers up to 12288), the products
 * q' * a (q' = q - 128) summed exactly in 32-bit integers by VPMADDWD (sixteen multiply-adds an
 * instruction where a 256-bit FMA does eight), and the float result is
 *   C[m][n] = fmaf((float)sum, scale / 2048, rowsum[m] * (min + 128 * scale)) + bias[n]
 * (rowsum[m]: the row's rounded activations' sum, exact in a float), then the activation. The sums
 * are integers, so the result does not depend on the order of the sums nor on the CPU: every
 * AVX2 CPU (AVX-512 ones included) computes the same floats. The error against FP32 is the
 * activations' rounding, at most 1/4096 each (design decision 55).
 *
 * A layer gets a second pack of its weights (int16 pairs, made on demand by fn_wpack_i16_init,
 * owned by the fn_wpack, freed by fn_wpack_free), and while the calling thread has int16 on
 * (fn_i16_set_thread) ops.c's GEMM hands every layer that has such a pack to fn_gemm_i16. Layers
 * without the pack, and every thread that has not turned int16 on, run the FP32 kernels. Without
 * AVX2 there is no pack and int16 means FP32. */
#ifndef FN_VISION_GEMM_I16_H
#define FN_VISION_GEMM_I16_H

#include "vision/ops.h"

/* The deepest layer a pack is made for: |sum| <= K * 128 * 12288 stays below 2^31. */
#define FN_I16_MAX_K 1024

/* 1 when this CPU runs the int16 kernel (AVX2); else 0 and, if reason is not NULL, a static
 * sentence saying why. Thread-safe. */
int fn_i16_available(const char **reason);

/* Builds wp's int16 pack from its FP32 weights (wp->w or the panels), given the tensor's byte
 * quantization (every weight must be exactly (float)(q * qscale + qmin) for a q in 0..255, as
 * weights.c dequantizes; the layer's inputs must be in [0, 6]). Returns 0 with the pack made, or
 * without one (no AVX2, K odd or over FN_I16_MAX_K, a weight not of that form, the pack made
 * already: the layer stays FP32); -1 when out of memory. Not while other threads read wp. */
int fn_wpack_i16_init(fn_wpack *wp, double qscale, double qmin);
void fn_wpack_i16_free(fn_wpack *wp);

/* Turns int16 on (1) or off (0) for the calling thread's GEMMs; returns the previous setting.
 * Without AVX2 it changes nothing (fn_i16_thread stays 0). */
int fn_i16_set_thread(int on);
int fn_i16_thread(void);

/* C[m][n] = act(A[m][k] B + bias) as above for a pack made by fn_wpack_i16_init (wp->i16
 * non-NULL); A and C row-major with k and n floats per row. Only while fn_i16_thread() is 1. */
void fn_gemm_i16(int m, const fn_wpack *wp, const float *a, const float *bias, fn_act act,
                 float *c);

#endif
