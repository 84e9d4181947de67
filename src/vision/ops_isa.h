/* ops_isa.h: which kernels of ops.c run, generic C or AVX-512 (internal; kernels engineer).
 *
 * ops.c picks its AVX-512 kernels at run time (fn_cpu_has_avx512) so one binary runs on every
 * x86-64; tests force the generic C path with fn_ops_set_isa(0) to check both paths against the
 * same naive references. */
#ifndef FN_VISION_OPS_ISA_H
#define FN_VISION_OPS_ISA_H

#include "vision/ops.h"

/* 1 when this CPU runs the AVX-512 kernels (F, VL, DQ, BW). */
int fn_cpu_has_avx512(void);

/* -1: choose by the CPU (default); 0: generic C kernels only; 1: AVX-512 if the CPU has it.
 * Not for use while other threads run kernels. */
void fn_ops_set_isa(int level);

/* The floating-point operations (2 per multiply-add) the convolution, depthwise and dense kernels
 * of the calling thread have run, counted per layer from the shapes (biases and activations not
 * counted), so a benchmark can state each network's GFLOP/s without a hand-made model of it.
 * Thread-local; the increments are one per layer call, so they cost nothing measurable. */
double fn_ops_flops(void);
void fn_ops_flops_add(double flops);

/* A per-layer trace for benchmarks: while set (on the calling thread only), every conv, depthwise,
 * separable (reported as its depthwise and pointwise halves) and dense layer calls `fn` after it
 * ran, with its shape as a GEMM (m rows, n columns, k depth), its FLOPs, the least memory traffic
 * it needs (inputs, weights and outputs once, in bytes) and the thread CPU time it took. NULL
 * turns it off (the default). The layer record is valid only during the call. */
typedef struct fn_ops_layer {
    const char *op; /* "conv", "pointwise", "depthwise", "sep.depthwise", "sep.pointwise",
                     * "chain.conv", "chain.depthwise", "chain.pointwise" (fn_sepchain_w's head and
                     * blocks), "dense" */
    int m, n, k;
    double flops, bytes, seconds;
} fn_ops_layer;
typedef void (*fn_ops_trace_fn)(const fn_ops_layer *layer);
void fn_ops_set_trace(fn_ops_trace_fn fn);

#endif
