/* gemm_amx.h: the BF16 GEMM on AMX tiles behind `vision.precision = bf16` (internal).
 *
 * A layer's weights get a second pack in the tile layout (BF16, made on demand by
 * fn_wpack_amx_init, owned by the fn_wpack, freed by fn_wpack_free), and while the calling thread
 * has BF16 on (fn_amx_set_thread) ops.c's GEMM hands every layer that has such a pack to
 * fn_gemm_amx: activations rounded to BF16 per block of rows, products accumulated in FP32 in the
 * tiles, bias and activation applied to the FP32 result. Layers without the pack, and every
 * thread that has not turned BF16 on, run the FP32 kernels as before.
 *
 * AMX needs the CPU (CPUID AMX-TILE and AMX-BF16, plus AVX-512 for the conversions) and, on Linux,
 * the process's permission for the tile state (arch_prctl ARCH_REQ_XCOMP_PERM), asked for once by
 * fn_amx_available. Where either is missing, bf16 means FP32 (design decision 36). */
#ifndef FN_VISION_GEMM_AMX_H
#define FN_VISION_GEMM_AMX_H

#include "vision/ops.h"

/* 1 when this process may run the AMX kernels; else 0 and, if reason is not NULL, a static
 * sentence saying why (for the caller to log once). The first call asks the kernel for the tile
 * permission; thread-safe, and the answer never changes afterwards. fn_amx_force_unavailable(1)
 * makes it answer 0 (tests of the fallback; not while other threads run kernels). */
int fn_amx_available(const char **reason);
void fn_amx_force_unavailable(int on);

/* Builds wp's BF16 tile pack from its FP32 weights (wp->w or the panels). Returns 0 (also when AMX
 * is unavailable or wp->k is under 32: then no pack is made and the layer stays FP32; and when the
 * pack exists already), -1 when out of memory.
 * Not while other threads read wp. */
int fn_wpack_amx_init(fn_wpack *wp);
void fn_wpack_amx_free(fn_wpack *wp);

/* Turns BF16 on (1) or off (0) for the calling thread's GEMMs; returns the previous setting.
 * Without AMX it changes nothing (fn_amx_thread stays 0). */
int fn_amx_set_thread(int on);
int fn_amx_thread(void);

/* C[m][n] = act(A[m][k] B + bias) for a pack made by fn_wpack_amx_init (wp->amx non-NULL); A and
 * C row-major with k and n floats per row. Only while fn_amx_thread() is 1. Returns 0, or -1 with C
 * untouched when the thread's buffer for A in BF16 cannot grow: the caller then runs FP32 (as
 * fn_gemm_i16 does). */
int fn_gemm_amx(int m, const fn_wpack *wp, const float *a, const float *bias, fn_act act,
                float *c);

#endif
