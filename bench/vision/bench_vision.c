/* bench_vision: the vision stages timed on sample photos, one thread, printing `name value unit`
 * lines (bench/bench_vision runs it next to the reference's reference_bench.mjs).
 *
 * Usage: bench_vision [--reps N] [--networks] [--layers] [--precision fp32|bf16|int16|auto]
 *                     [--isa avx512|avx2|generic] [--only NETWORK] PHOTO...
 *   (models from $FACENAMES_MODELS or the default dir). --networks: only the networks' GFLOP/s
 *   (no photos needed); --layers: also each layer's time, GFLOP/s, fraction of the peak and the
 *   GB/s of the least traffic it needs (from the kernels' trace, fn_ops_set_trace), which shows
 *   which layers are bound by memory rather than by the FMA units. --precision bf16: every stage
 *   and network in vision.precision = bf16 (the AMX kernel; FP32 where the CPU has none, printed
 *   as amx_bf16_unavailable); the FLOPs and fractions are then against the FP32 peak still.
 *   --precision int16: likewise with SSD's int16 kernel (gemm_i16.h; printed as precision_int16);
 *   auto: what vision.precision = auto runs on this CPU (the default stays fp32 here: the fractions
 *   are of the FP32 peak).
 *   --isa: the kernel set (fn_ops_set_isa; default the CPU's best, printed as `kernels_*`), e.g.
 *   the AVX2 kernels on an AVX-512 core to see whether 256-bit ones would be faster there.
 *   --only ssd|tiny|landmarks|descriptor|descriptor_batch: with --networks, that network alone
 *   (descriptor_batch also times the one-face descriptor its ratios need), e.g. under perf record.
 *
 * Stages: decode (fn_image_load as the fast path loads: shrink-on-load to the useful resolution;
 * decode_libvips the same loads with JPEGs through libvips' loader instead of libjpeg itself,
 * fn_image_set_jpeg_direct, interleaved photo by photo),
 * ssd and tiny (whole detectors on that image: resize, network, NMS), landmarks and descriptor
 * per face, the whole fast pipeline (fn_vision_detect_file) in photos/s; and each network alone
 * (SSD, tiny, landmarks, descriptor on synthetic inputs) in GFLOP/s against the core's peak FP32
 * FMA rate, measured at run time by an FMA microkernel at 512 and 256 bits (see measured_peak)
 * just before and after each network (<net>_peak_fraction; <net>_peak_fraction_first is against
 * the run's first measurement, cpu_peak), with the FLOPs counted by the kernels themselves
 * (fn_ops_flops). Every stage is warmed up once;
 * each item's (photo's, face's) best of the repetitions counts and the stages show the mean over
 * items. Times are wall time unless BENCH_CLOCK=cpu (see ms_now). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <vips/vips.h>

#include "facenames/vision.h"
#include "vision/gemm_amx.h"
#include "vision/image_load.h"
#include "vision/gemm_i16.h"
#include "vision/jpeg_encode.h"
#include "vision/models.h"
#include "vision/nets.h"
#include "vision/ops_isa.h"

/* The clock: wall time by default (each item's best of the repetitions, which filters out the
 * moments other processes held the core); BENCH_CLOCK=cpu for process CPU time (all our threads,
 * libvips' included). reference_bench.mjs makes the same choice; node's own helper threads (GC,
 * compiler) make its CPU time larger than its wall time. */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static double ms_now(void)
{
    struct timespec t;
    clock_gettime(bench_clock, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

/* ---- The measured peak ----------------------------------------------------------------------
 *
 * The core's FP32 FMA rate, measured rather than modelled (lanes x FMA units x clock is twice the
 * truth on a core that runs 512-bit instructions as two 256-bit halves, and the clock of a virtual
 * machine is not what /proc/cpuinfo says): a loop of FMAs on independent accumulators (16 at 512
 * bits, 12 at 256), more than the FMA latency (4-5 cycles) times two FMA ports, so only the
 * throughput limits it. Written in assembly so that the accumulators stay in registers whatever
 * the compiler does. Each width runs FMA_REPS times in thread CPU time (time the thread was not
 * running does not count) and its best counts. acc += a * b with a tiny product never overflows
 * nor goes denormal. */
#define FMA_ITERS (4L * 1000 * 1000)
#define FMA_REPS  7

static double thread_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define FMA12(R)                                                                                   \
    "vfmadd231ps %1, %2, %%" R "0\n\t"                                                             \
    "vfmadd231ps %1, %2, %%" R "1\n\t"                                                             \
    "vfmadd231ps %1, %2, %%" R "2\n\t"                                                             \
    "vfmadd231ps %1, %2, %%" R "3\n\t"                                                             \
    "vfmadd231ps %1, %2, %%" R "4\n\t"                                                             \
    "vfmadd231ps %1, %2, %%" R "5\n\t"                                                             \
    "vfmadd231ps %1, %2, %%" R "6\n\t"                                                             \
    "vfmadd231ps %1, %2, %%" R "7\n\t"                                                             \
    "vfmadd231ps %1, %2, %%" R "8\n\t"                                                             \
    "vfmadd231ps %1, %2, %%" R "9\n\t"                                                             \
    "vfmadd231ps %1, %2, %%" R "10\n\t"                                                            \
    "vfmadd231ps %1, %2, %%" R "11\n\t"

/* GFLOP/s of one run at 512 bits: 16 chains in zmm0-15, the operands in zmm16 and up. */
__attribute__((target("avx512f"))) static double fma_gflops_512(void)
{
    __m512 a = _mm512_set1_ps(1e-3f), b = _mm512_set1_ps(1e-3f);
    long n = FMA_ITERS;
    double t0 = thread_s();
    __asm__ volatile("vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
                     "vmovaps %%zmm0, %%zmm1\n\tvmovaps %%zmm0, %%zmm2\n\t"
                     "vmovaps %%zmm0, %%zmm3\n\tvmovaps %%zmm0, %%zmm4\n\t"
                     "vmovaps %%zmm0, %%zmm5\n\tvmovaps %%zmm0, %%zmm6\n\t"
                     "vmovaps %%zmm0, %%zmm7\n\tvmovaps %%zmm0, %%zmm8\n\t"
                     "vmovaps %%zmm0, %%zmm9\n\tvmovaps %%zmm0, %%zmm10\n\t"
                     "vmovaps %%zmm0, %%zmm11\n\tvmovaps %%zmm0, %%zmm12\n\t"
                     "vmovaps %%zmm0, %%zmm13\n\tvmovaps %%zmm0, %%zmm14\n\t"
                     "vmovaps %%zmm0, %%zmm15\n\t"
                     "1:\n\t" FMA12("zmm") "vfmadd231ps %1, %2, %%zmm12\n\t"
                                           "vfmadd231ps %1, %2, %%zmm13\n\t"
                                           "vfmadd231ps %1, %2, %%zmm14\n\t"
                                           "vfmadd231ps %1, %2, %%zmm15\n\t"
                                           "dec %0\n\t"
                                           "jnz 1b\n\t"
                                           "vzeroupper"
                     : "+r"(n)
                     : "v"(a), "v"(b)
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                       "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc");
    double t = thread_s() - t0;
    return t > 0 ? (double)FMA_ITERS * 16 * 16 * 2 / t / 1e9 : 0;
}

/* GFLOP/s of one run at 256 bits: 12 chains in ymm0-11, the operands in the four left. */
__attribute__((target("avx2,fma"))) static double fma_gflops_256(void)
{
    __m256 a = _mm256_set1_ps(1e-3f), b = _mm256_set1_ps(1e-3f);
    long n = FMA_ITERS;
    double t0 = thread_s();
    __asm__ volatile("vxorps %%ymm0, %%ymm0, %%ymm0\n\t"
                     "vmovaps %%ymm0, %%ymm1\n\tvmovaps %%ymm0, %%ymm2\n\t"
                     "vmovaps %%ymm0, %%ymm3\n\tvmovaps %%ymm0, %%ymm4\n\t"
                     "vmovaps %%ymm0, %%ymm5\n\tvmovaps %%ymm0, %%ymm6\n\t"
                     "vmovaps %%ymm0, %%ymm7\n\tvmovaps %%ymm0, %%ymm8\n\t"
                     "vmovaps %%ymm0, %%ymm9\n\tvmovaps %%ymm0, %%ymm10\n\t"
                     "vmovaps %%ymm0, %%ymm11\n\t"
                     "1:\n\t" FMA12("ymm") "dec %0\n\t"
                                           "jnz 1b\n\t"
                                           "vzeroupper"
                     : "+r"(n)
                     : "x"(a), "x"(b)
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                       "xmm9", "xmm10", "xmm11", "cc");
    double t = thread_s() - t0;
    return t > 0 ? (double)FMA_ITERS * 12 * 8 * 2 / t / 1e9 : 0;
}

/* The BF16 dot-product rate (AVX512_BF16 vdpbf16ps: two multiply-adds per FP32 lane), in the same
 * way: whether a BF16 GEMM could beat the FP32 one on this core depends on this figure against
 * fma_peak_512 (docs/design.md decision 25). 20 chains, zmm0-19. */
__attribute__((target("avx512f,avx512bf16"))) static double bf16_dot_gflops_512(void)
{
    __m512 a = _mm512_set1_ps(1e-3f);
    long n = FMA_ITERS;
    double t0 = thread_s();
    __asm__ volatile("vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
                     "vmovaps %%zmm0, %%zmm1\n\tvmovaps %%zmm0, %%zmm2\n\t"
                     "vmovaps %%zmm0, %%zmm3\n\tvmovaps %%zmm0, %%zmm4\n\t"
                     "vmovaps %%zmm0, %%zmm5\n\tvmovaps %%zmm0, %%zmm6\n\t"
                     "vmovaps %%zmm0, %%zmm7\n\tvmovaps %%zmm0, %%zmm8\n\t"
                     "vmovaps %%zmm0, %%zmm9\n\tvmovaps %%zmm0, %%zmm10\n\t"
                     "vmovaps %%zmm0, %%zmm11\n\tvmovaps %%zmm0, %%zmm12\n\t"
                     "vmovaps %%zmm0, %%zmm13\n\tvmovaps %%zmm0, %%zmm14\n\t"
                     "vmovaps %%zmm0, %%zmm15\n\tvmovaps %%zmm0, %%zmm16\n\t"
                     "vmovaps %%zmm0, %%zmm17\n\tvmovaps %%zmm0, %%zmm18\n\t"
                     "vmovaps %%zmm0, %%zmm19\n\t"
                     "1:\n\t"
                     "vdpbf16ps %1, %1, %%zmm0\n\tvdpbf16ps %1, %1, %%zmm1\n\t"
                     "vdpbf16ps %1, %1, %%zmm2\n\tvdpbf16ps %1, %1, %%zmm3\n\t"
                     "vdpbf16ps %1, %1, %%zmm4\n\tvdpbf16ps %1, %1, %%zmm5\n\t"
                     "vdpbf16ps %1, %1, %%zmm6\n\tvdpbf16ps %1, %1, %%zmm7\n\t"
                     "vdpbf16ps %1, %1, %%zmm8\n\tvdpbf16ps %1, %1, %%zmm9\n\t"
                     "vdpbf16ps %1, %1, %%zmm10\n\tvdpbf16ps %1, %1, %%zmm11\n\t"
                     "vdpbf16ps %1, %1, %%zmm12\n\tvdpbf16ps %1, %1, %%zmm13\n\t"
                     "vdpbf16ps %1, %1, %%zmm14\n\tvdpbf16ps %1, %1, %%zmm15\n\t"
                     "vdpbf16ps %1, %1, %%zmm16\n\tvdpbf16ps %1, %1, %%zmm17\n\t"
                     "vdpbf16ps %1, %1, %%zmm18\n\tvdpbf16ps %1, %1, %%zmm19\n\t"
                     "dec %0\n\t"
                     "jnz 1b\n\t"
                     "vzeroupper"
                     : "+r"(n)
                     : "v"(a)
                     : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                       "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16",
                       "xmm17", "xmm18", "xmm19", "cc");
    double t = thread_s() - t0;
    return t > 0 ? (double)FMA_ITERS * 20 * 16 * 4 / t / 1e9 : 0;
}

static double bf16_dot_peak(void)
{
    double best = 0;
    if (!__builtin_cpu_supports("avx512bf16")) return 0;
    for (int r = 0; r < FMA_REPS; r++) {
        double g = bf16_dot_gflops_512();
        if (g > best) best = g;
    }
    return best;
}

/* The AMX-BF16 rate: TDPBF16PS (a 16x32 by 32x16 BF16 tile product into a 16x16 FP32 tile, 8192
 * multiply-adds) on six independent accumulator tiles (tmm0-5) from two operand tiles (tmm6-7),
 * more than the instruction's latency over its throughput, so only the throughput limits it.
 * Thread CPU time like the FMA loops; 0 where this process may not use AMX (fn_amx_available).
 * The operands are zeros: the tile unit's speed does not depend on the values. */
#define AMX_ITERS (200L * 1000)

typedef struct bench_tilecfg {
    unsigned char palette, start_row, reserved[14];
    unsigned short colsb[16];
    unsigned char rows[16];
} bench_tilecfg;

__attribute__((target("amx-tile,amx-bf16"))) static double amx_bf16_gflops(void)
{
    static unsigned short zeros[16 * 32] __attribute__((aligned(64)));
    static float sink[16 * 16] __attribute__((aligned(64)));
    bench_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++)
        cfg.rows[t] = 16, cfg.colsb[t] = 64;
    _tile_loadconfig(&cfg);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_zero(4);
    _tile_zero(5);
    _tile_loadd(6, zeros, 64);
    _tile_loadd(7, zeros, 64);
    double t0 = thread_s();
    for (long i = 0; i < AMX_ITERS; i++) {
        _tile_dpbf16ps(0, 6, 7);
        _tile_dpbf16ps(1, 6, 7);
        _tile_dpbf16ps(2, 6, 7);
        _tile_dpbf16ps(3, 6, 7);
        _tile_dpbf16ps(4, 6, 7);
        _tile_dpbf16ps(5, 6, 7);
    }
    double t = thread_s() - t0;
    _tile_stored(0, sink, 64);
    _tile_release();
    return t > 0 ? (double)AMX_ITERS * 6 * 16 * 16 * 32 * 2 / t / 1e9 : 0;
}

static double amx_bf16_peak(void)
{
    double best = 0;
    if (!fn_amx_available(NULL)) return 0;
    for (int r = 0; r < FMA_REPS; r++) {
        double g = amx_bf16_gflops();
        if (g > best) best = g;
    }
    return best;
}

/* Best of FMA_REPS runs at each width this CPU has; 0 for a width it lacks. */
static void measured_peak(double *p512, double *p256)
{
    __builtin_cpu_init();
    *p512 = *p256 = 0;
    for (int r = 0; r < FMA_REPS; r++) {
        if (__builtin_cpu_supports("avx512f")) {
            double g = fma_gflops_512();
            if (g > *p512) *p512 = g;
        }
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
            double g = fma_gflops_256();
            if (g > *p256) *p256 = g;
        }
    }
}
#else
static void measured_peak(double *p512, double *p256)
{
    *p512 = *p256 = 0;
}
static double bf16_dot_peak(void)
{
    return 0;
}
static double amx_bf16_peak(void)
{
    return 0;
}
#endif

/* One network alone on a synthetic input: its best thread CPU time over `reps` runs (after a
 * warm-up; the same clock as the peak, so the fraction is the core's, whatever else runs on the
 * machine) and the FLOPs the kernels counted during one run. */
typedef void (*net_run_fn)(const void *net, const fn_t3 *in, float *scratch, float *out);

static void run_ssd(const void *net, const fn_t3 *in, float *scratch, float *out)
{
    fn_ssd_forward(net, in, scratch, out, out + 5118 * 4);
}
static void run_tiny(const void *net, const fn_t3 *in, float *scratch, float *out)
{
    fn_tiny_forward(net, in, scratch, out);
}
static void run_landmarks(const void *net, const fn_t3 *in, float *scratch, float *out)
{
    fn_landmark_forward(net, in, scratch, out);
}
static void run_descriptor(const void *net, const fn_t3 *in, float *scratch, float *out)
{
    fn_recog_forward(net, in, scratch, out);
}
/* batch_n copies of the input: the same work as batch_n faces (the kernels do not look at
 * values). */
#define MAX_BATCH 16
static int batch_n = 8;
static void run_descriptor_batch(const void *net, const fn_t3 *in, float *scratch, float *out)
{
    static float batch_in[MAX_BATCH * 150 * 150 * 3], batch_out[MAX_BATCH][128];
    for (int i = 0; i < batch_n; i++)
        memcpy(batch_in + (size_t)i * 150 * 150 * 3, in->d, sizeof(float) * 150 * 150 * 3);
    fn_t3 all = {150, 150, 3, batch_in};
    fn_recog_forward_batch(net, &all, batch_n, scratch, batch_out);
    memcpy(out, batch_out[0], sizeof batch_out[0]);
}

/* --layers: each layer's best thread CPU time over the repetitions, from the kernels' trace
 * (fn_ops_set_trace), indexed by its position in the network. */
#define MAX_LAYERS 160
static fn_ops_layer layer_rec[MAX_LAYERS];
static double layer_best[MAX_LAYERS];
static int layer_n, show_layers;
/* --only NAME: time that network alone (to profile it with perf); NULL: all of them. */
static const char *only;

static void on_layer(const fn_ops_layer *l)
{
    if (layer_n >= MAX_LAYERS) return;
    layer_rec[layer_n] = *l;
    if (l->seconds < layer_best[layer_n]) layer_best[layer_n] = l->seconds;
    layer_n++;
}

/* Returns the best time of one run, in ms. */
static double time_network(const char *name, net_run_fn run, const void *net, int size, int reps,
                           float *scratch, double peak)
{
    fn_t3 in = {size, size, 3, malloc(sizeof(float) * size * size * 3)};
    float *out = malloc(sizeof(float) * 5118 * 5);
    for (size_t i = 0; i < (size_t)size * size * 3; i++)
        in.d[i] = (float)((i * 2654435761u) % 255) / 127.5f - 1.0f;
    run(net, &in, scratch, out);
    double f0 = fn_ops_flops();
    run(net, &in, scratch, out);
    double fl = fn_ops_flops() - f0, best = 1e30;
    /* The peak is measured again just before and just after the network (the better of the
     * two counts): on a shared VM the core's speed drifts by a third within a minute (a host
     * neighbour, the clock), and a fraction is only meaningful against the peak of the same
     * moment. `peak` (the run's first measurement) is printed beside it. */
    double p512, p256;
    measured_peak(&p512, &p256);
    double near = p512 > p256 ? p512 : p256;
    for (int r = 0; r < reps; r++) {
        double t0 = thread_s();
        run(net, &in, scratch, out);
        double d = (thread_s() - t0) * 1e3;
        if (d < best) best = d;
    }
    measured_peak(&p512, &p256);
    if (p512 > near) near = p512;
    if (p256 > near) near = p256;
    double gflops = fl / (best * 1e-3) / 1e9;
    printf("%s_network %.3f ms\n", name, best);
    printf("%s_flops %.4f GFLOP\n", name, fl / 1e9);
    printf("%s_gflops %.1f GFLOP/s\n", name, gflops);
    printf("%s_peak_nearby %.1f GFLOP/s\n", name, near);
    printf("%s_peak_fraction %.3f ratio\n", name, near > 0 ? gflops / near : 0);
    printf("%s_peak_fraction_first %.3f ratio\n", name, peak > 0 ? gflops / peak : 0);
    peak = near;
    if (show_layers) {
        /* Separate runs with the trace on (its clock reads are not in the figures above). */
        for (int i = 0; i < MAX_LAYERS; i++)
            layer_best[i] = 1e30;
        fn_ops_set_trace(on_layer);
        for (int r = 0; r < reps; r++) {
            layer_n = 0;
            run(net, &in, scratch, out);
        }
        fn_ops_set_trace(NULL);
        double total = 0;
        for (int i = 0; i < layer_n; i++)
            total += layer_best[i];
        for (int i = 0; i < layer_n; i++) {
            const fn_ops_layer *l = &layer_rec[i];
            const double t = layer_best[i], g = l->flops / t / 1e9;
            printf("layer %s %2d %-13s %5dx%4dx%4d %7.3f ms %4.1f%% %6.1f GFLOP/s %.3f peak %6.1f "
                   "GB/s\n",
                   name, i, l->op, l->m, l->n, l->k, t * 1e3, 100 * t / total, g,
                   peak > 0 ? g / peak : 0, l->bytes / t / 1e9);
        }
        printf("layer %s sum %.3f ms (of the layers traced)\n", name, total * 1e3);
    }
    free(in.d), free(out);
    return best;
}

/* Each network alone: GFLOP/s against the measured peak (the wider of the two widths). */
static void run_networks(const fn_models *m, float *scratch, int reps)
{
    double p512, p256;
    measured_peak(&p512, &p256);
    double peak = p512 > p256 ? p512 : p256;
    printf("fma_peak_512 %.1f GFLOP/s\n", p512);
    printf("fma_peak_256 %.1f GFLOP/s\n", p256);
    printf("cpu_peak %.1f GFLOP/s\n", peak);
    printf("bf16_dot_peak_512 %.1f GFLOP/s\n", bf16_dot_peak());
    const char *why = NULL;
    fn_amx_available(&why);
    printf("amx_bf16_peak %.1f GFLOP/s\n", amx_bf16_peak());
    if (why) printf("amx_bf16_unavailable 1 flag (%s)\n", why);
#define WANT(name) (!only || !strcmp(only, name))
    if (WANT("ssd")) time_network("ssd", run_ssd, m->ssd, 512, 3 * reps, scratch, peak);
    if (WANT("tiny")) time_network("tiny", run_tiny, m->tiny, 416, 3 * reps, scratch, peak);
    if (WANT("landmarks"))
        time_network("landmarks", run_landmarks, m->landmarks, 112, 10 * reps, scratch, peak);
    if (!WANT("descriptor") && !WANT("descriptor_batch")) return;
    double one =
        time_network("descriptor", run_descriptor, m->recognition, 150, 10 * reps, scratch, peak);
    if (!WANT("descriptor_batch")) return;
#undef WANT
    /* The descriptor over several faces at once (fn_recog_forward_batch), as the pipeline runs a
     * photo's faces (FN_DESC_BATCH at a time, pipeline.c): the time per face and the scratch at
     * each batch size, from which that size was chosen (design decision 32; a batch's scratch up to
     * SSD's costs no memory, the pipeline's one scratch serving both). */
    printf("descriptor_scratch %.1f MB\n", fn_recog_scratch_floats() * sizeof(float) / 1e6);
    printf("ssd_scratch %.1f MB\n", fn_ssd_scratch_floats() * sizeof(float) / 1e6);
    static const int sizes[] = {2, 4, 8, 16};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        batch_n = sizes[k];
        const size_t floats = fn_recog_batch_scratch_floats(batch_n);
        float *bs = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
        if (!bs) continue;
        char name[32];
        snprintf(name, sizeof name, "descriptor_batch%d", batch_n);
        double ms = time_network(name, run_descriptor_batch, m->recognition, 150,
                                 batch_n >= 8 ? 3 * reps : 5 * reps, bs, peak);
        printf("%s_per_face %.3f ms\n", name, ms / batch_n);
        printf("%s_per_face_vs_one %.3f ratio\n", name, ms / batch_n / one);
        printf("%s_scratch %.1f MB\n", name, floats * sizeof(float) / 1e6);
        free(bs);
    }
}

int main(int argc, char **argv)
{
    int reps = 3, nphotos = 0, networks_only = 0, bf16 = 0, i16 = 0, isa = -1;
    const char *photos[64];
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--networks"))
            networks_only = 1;
        else if (!strcmp(argv[i], "--layers"))
            show_layers = 1;
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--precision") && i + 1 < argc) {
            fn_precision p = FN_PRECISION_FP32;
            if (fn_vision_precision_parse(argv[++i], &p) != 0) isa = -2; /* usage */
            bf16 = p == FN_PRECISION_BF16;
            i16 = p == FN_PRECISION_INT16;
        } else if (!strcmp(argv[i], "--isa") && i + 1 < argc) {
            i++;
            isa = !strcmp(argv[i], "avx512")    ? FN_ISA_AVX512
                  : !strcmp(argv[i], "avx2")    ? FN_ISA_AVX2
                  : !strcmp(argv[i], "generic") ? FN_ISA_GENERIC
                                                : -2;
        } else if (nphotos < 64)
            photos[nphotos++] = argv[i];
    }
    if ((!nphotos && !networks_only) || reps < 1 || isa == -2) {
        fprintf(
            stderr,
            "usage: bench_vision [--reps N] [--networks] [--layers] [--precision "
            "fp32|bf16|int16|auto] [--isa avx512|avx2|generic] [--only ssd|tiny|landmarks|descriptor|"
            "descriptor_batch] PHOTO...\n");
        return 2;
    }
    fn_ops_set_isa(isa);
    printf("kernels_avx512 %d flag\nkernels_avx2 %d flag\n", fn_ops_isa() == FN_ISA_AVX512,
           fn_ops_isa() == FN_ISA_AVX2);
    const char *bc = getenv("BENCH_CLOCK");
    if (bc && !strcmp(bc, "cpu")) bench_clock = CLOCK_PROCESS_CPUTIME_ID;
    printf("clock_is_process_cpu %d flag\n", bench_clock != CLOCK_MONOTONIC);
    char err[512];
    fn_models *m;
    if (fn_models_load(NULL, FN_MODEL_ALL, &m, err, sizeof err)) {
        fprintf(stderr, "bench_vision: %s\n", err);
        return 1;
    }
    fn_vision *v;
    if (fn_vision_new(m, &v)) return 1;
    /* BF16: the nets' packs made as the pipeline makes them, and this thread's kernels switched
     * for the stages that call the nets directly. */
    printf("precision_bf16 %d flag\n", bf16 && fn_amx_available(NULL));
    if (bf16 && fn_models_amx_init(m, FN_MODELS_BF16)) return 1;
    fn_amx_set_thread(bf16);
    printf("precision_int16 %d flag\n", i16 && fn_i16_available(NULL));
    if (i16 && fn_models_i16_init(m)) return 1;
    fn_i16_set_thread(i16);
    size_t sn = fn_ssd_scratch_floats();
    size_t t = fn_tiny_scratch_floats(416);
    if (t > sn) sn = t;
    if (fn_landmark_scratch_floats() > sn) sn = fn_landmark_scratch_floats();
    if (fn_recog_scratch_floats() > sn) sn = fn_recog_scratch_floats();
    float *scratch = aligned_alloc(64, (sn * sizeof(float) + 63) / 64 * 64);
    if (networks_only) {
        run_networks(m, scratch, reps);
        free(scratch);
        fn_vision_free(v);
        fn_models_free(m);
        return 0;
    }
    fn_image imgs[64];
    fn_load_opts lo = {2048, 0};

    /* Every item (photo or face) is timed `reps` times after a warm-up; its best time counts (on
     * a shared machine the best is the run nobody interrupted) and the mean over items is shown. */
    static double best[64][100];
#define BEST_RESET()                                                                               \
    for (int i_ = 0; i_ < 64; i_++)                                                                \
        for (int j_ = 0; j_ < 100; j_++)                                                           \
            best[i_][j_] = 1e30;
#define KEEP(i, j, t)                                                                              \
    do {                                                                                           \
        double t_ = (t);                                                                           \
        if (t_ < best[i][j]) best[i][j] = t_;                                                      \
    } while (0)

    /* decode */
    BEST_RESET();
    if (fn_image_load(photos[0], &lo, &imgs[0], NULL, err, sizeof err)) {
        fprintf(stderr, "bench_vision: %s\n", err);
        return 1;
    }
    fn_image_free(&imgs[0]);
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < nphotos; i++) {
            if (r > 0) fn_image_free(&imgs[i]);
            double t0 = ms_now();
            if (fn_image_load(photos[i], &lo, &imgs[i], NULL, err, sizeof err)) {
                fprintf(stderr, "bench_vision: %s\n", err);
                return 1;
            }
            KEEP(i, 0, ms_now() - t0);
            /* the same photo through libvips' JPEG loader (image.c's path before decision 63;
             * other formats take it anyway): the same pixels */
            fn_image via_vips;
            fn_image_set_jpeg_direct(0);
            t0 = ms_now();
            const int rc = fn_image_load(photos[i], &lo, &via_vips, NULL, err, sizeof err);
            const double t_vips = ms_now() - t0;
            fn_image_set_jpeg_direct(1);
            if (rc) {
                fprintf(stderr, "bench_vision: %s\n", err);
                return 1;
            }
            KEEP(i, 1, t_vips);
            fn_image_free(&via_vips);
        }
    double sum = 0, sum_vips = 0;
    for (int i = 0; i < nphotos; i++)
        sum += best[i][0], sum_vips += best[i][1];
    printf("decode %.2f ms/photo\n", sum / nphotos);
    printf("decode_libvips %.2f ms/photo\n", sum_vips / nphotos);
    printf("decode_libjpeg_speedup %.2f ratio\n", sum > 0 ? sum_vips / sum : 0);

    /* a face thumbnail's JPEG encode (112 x 112 from each photo's centre): libjpeg itself, as
     * the pipeline encodes them (decision 61), against the libvips save it replaced, alternated
     * item by item; best of the repetitions per photo */
    {
        enum { T = 112 };
        static uint8_t tpx[T * T * 3];
        double bj = 0, bv = 0;
        for (int i = 0; i < nphotos; i++) {
            const fn_image *im = &imgs[i];
            int x0 = im->width > T ? (im->width - T) / 2 : 0,
                y0 = im->height > T ? (im->height - T) / 2 : 0;
            if (im->width < T || im->height < T) continue;
            for (int y = 0; y < T; y++)
                memcpy(tpx + (size_t)y * T * 3, im->rgb + ((size_t)(y0 + y) * im->width + x0) * 3,
                       T * 3);
            double tj = 1e9, tv = 1e9;
            for (int r = 0; r < reps * 10; r++) {
                uint8_t *jpg;
                size_t len;
                double t0 = ms_now();
                if (fn_jpeg_encode_rgb(tpx, T, T, 85, &jpg, &len)) return 1;
                double t1 = ms_now();
                free(jpg);
                VipsImage *vi =
                    vips_image_new_from_memory(tpx, sizeof tpx, T, T, 3, VIPS_FORMAT_UCHAR);
                void *vb = NULL;
                double t2 = ms_now();
                if (!vi || vips_jpegsave_buffer(vi, &vb, &len, "Q", 85, "strip", TRUE, NULL))
                    return 1;
                double t3 = ms_now();
                g_free(vb);
                g_object_unref(vi);
                if (t1 - t0 < tj) tj = t1 - t0;
                if (t3 - t2 < tv) tv = t3 - t2;
            }
            bj += tj;
            bv += tv;
        }
        printf("thumb_encode_libjpeg_us %.1f us/face\n", 1e3 * bj / nphotos);
        printf("thumb_encode_libvips_us %.1f us/face\n", 1e3 * bv / nphotos);
        printf("thumb_encode_speedup %.2f ratio\n", bj > 0 ? bv / bj : 0);
    }

    /* detectors */
    static fn_det dets[64][100];
    size_t ndet[64];
    BEST_RESET();
    fn_ssd_detect(m->ssd, &imgs[0], 0.5f, scratch, dets[0], 100);
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < nphotos; i++) {
            double t0 = ms_now();
            ndet[i] = fn_ssd_detect(m->ssd, &imgs[i], 0.5f, scratch, dets[i], 100);
            KEEP(i, 0, ms_now() - t0);
        }
    sum = 0;
    for (int i = 0; i < nphotos; i++)
        sum += best[i][0];
    printf("ssd %.2f ms/photo\n", sum / nphotos);
    fn_det td[100];
    BEST_RESET();
    fn_tiny_detect(m->tiny, &imgs[0], 416, 0.5f, scratch, td, 100);
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < nphotos; i++) {
            double t0 = ms_now();
            fn_tiny_detect(m->tiny, &imgs[i], 416, 0.5f, scratch, td, 100);
            KEEP(i, 0, ms_now() - t0);
        }
    sum = 0;
    for (int i = 0; i < nphotos; i++)
        sum += best[i][0];
    printf("tiny %.2f ms/photo\n", sum / nphotos);

    /* landmarks and descriptors per face (best[i][j]: landmarks; dbest: descriptors) */
    static float lms[64][100][68][2];
    static double dbest[64][100];
    float desc[128];
    size_t nfaces = 0;
    BEST_RESET();
    for (int i = 0; i < nphotos; i++)
        for (size_t j = 0; j < ndet[i]; j++)
            dbest[i][j] = 1e30;
    for (int r = 0; r <= reps; r++)
        for (int i = 0; i < nphotos; i++)
            for (size_t j = 0; j < ndet[i]; j++) {
                double t0 = ms_now();
                fn_landmark_run(m->landmarks, &imgs[i], &dets[i][j], scratch, lms[i][j]);
                double t1 = ms_now();
                fn_recog_run_det(m->recognition, &imgs[i], &dets[i][j], lms[i][j], scratch, desc);
                double t2 = ms_now();
                if (r == 0) continue; /* warm-up */
                KEEP(i, j, t1 - t0);
                if (t2 - t1 < dbest[i][j]) dbest[i][j] = t2 - t1;
            }
    double lm = 0, rc = 0;
    for (int i = 0; i < nphotos; i++)
        for (size_t j = 0; j < ndet[i]; j++)
            lm += best[i][j], rc += dbest[i][j], nfaces++;
    printf("faces %zu faces\n", nfaces);
    printf("landmarks %.2f ms/face\n", nfaces ? lm / nfaces : 0);
    printf("descriptor %.2f ms/face\n", nfaces ? rc / nfaces : 0);

    run_networks(m, scratch, reps);

    /* whole fast pipeline, decode included: photos/s from each photo's best time */
    fn_detect_opts o;
    fn_detect_opts_default(&o);
    o.precision = bf16 ? FN_PRECISION_BF16 : i16 ? FN_PRECISION_INT16 : FN_PRECISION_FP32;
    fn_faces f;
    if (fn_vision_detect_file(v, photos[0], &o, &f, err, sizeof err)) {
        fprintf(stderr, "bench_vision: %s\n", err);
        return 1;
    }
    BEST_RESET();
    for (int r = 0; r < reps; r++)
        for (int i = 0; i < nphotos; i++) {
            double t0 = ms_now();
            if (fn_vision_detect_file(v, photos[i], &o, &f, err, sizeof err)) {
                fprintf(stderr, "bench_vision: %s\n", err);
                return 1;
            }
            KEEP(i, 0, ms_now() - t0);
        }
    sum = 0;
    for (int i = 0; i < nphotos; i++)
        sum += best[i][0];
    printf("pipeline %.3f photos/s\n", 1000.0 * nphotos / sum);

    for (int i = 0; i < nphotos; i++)
        fn_image_free(&imgs[i]);
    free(scratch);
    fn_vision_free(v);
    fn_models_free(m);
    return 0;
}
