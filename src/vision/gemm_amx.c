/* gemm_amx.c: the BF16 GEMM on AMX tiles (gemm_amx.h), the kernel behind vision.precision = bf16.
 *
 * One TDPBF16PS multiplies a 16x32 BF16 tile of A by a 32x16 BF16 tile of B into a 16x16 FP32
 * tile: 8192 multiply-adds, where a 512-bit FMA does 16. The kernel keeps a 32x32 block of C in
 * four accumulator tiles (tmm0-3) and, per 32-deep step of K, loads two tiles of A (tmm4-5, 32
 * rows) and two of B (tmm6-7, 32 columns) for four TDPBF16PS.
 *
 * Weights: fn_wpack_amx_init rounds them to BF16 once and stores them as the tiles load them:
 * column panels 32 wide, and per panel and 32-deep step the two B tiles of 16 rows of 32 BF16,
 * each row the 16 columns' pairs (k even, k odd) -- the "VNNI" layout TDPBF16PS reads. K and N are
 * padded with zeros to whole tiles. Activations: per block of rows (about 128 KB of BF16, so it
 * stays in L2 while every panel passes), rounded to BF16 (nearest even) into a per-thread buffer,
 * rows and K padded with zeros. Results: the four tiles go to a 32x32 FP32 buffer, and bias and
 * activation are applied on the way to C.
 *
 * The thread's BF16 setting and the conversion buffer are per thread; the tile state is requested
 * per process (arch_prctl) and released after every call, so a thread not in a GEMM carries no
 * tile state through context switches. */
#include "vision/gemm_amx.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#define HAVE_AMX_BUILD 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#else
#define HAVE_AMX_BUILD 0
#endif

#define PANEL    32 /* columns per panel (two B tiles) */
#define KSTEP    32 /* BF16 elements of K per tile step */
#define TILE_U16 (16 * 32)

/* ---- availability ------------------------------------------------------------------------- */

static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static int amx_ok;
static const char *amx_why = "not checked";
static int amx_forced_off;

#if HAVE_AMX_BUILD
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA  18

static void amx_check(void)
{
    unsigned a, b, c, d;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw")) {
        amx_why = "this CPU has no AVX-512 (needed beside AMX-BF16); bf16 runs as fp32";
        return;
    }
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 22))) {
        amx_why = "this CPU has no AMX-BF16 tiles (CPUID AMX-TILE/AMX-BF16); bf16 runs as fp32";
        return;
    }
    /* Linux hands out the 8 KB tile state only to a process that asked (since 5.16). */
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) {
        amx_why = "the kernel refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM, Linux "
                  "5.16 or later); bf16 runs as fp32";
        return;
    }
    amx_ok = 1;
    amx_why = NULL;
}
#else
static void amx_check(void)
{
    amx_why = "AMX needs an x86-64 Linux build; bf16 runs as fp32";
}
#endif

int fn_amx_available(const char **reason)
{
    pthread_once(&amx_once, amx_check);
    if (__atomic_load_n(&amx_forced_off, __ATOMIC_RELAXED)) {
        if (reason) *reason = "AMX turned off for a test; bf16 runs as fp32";
        return 0;
    }
    if (reason) *reason = amx_why;
    return amx_ok;
}

void fn_amx_force_unavailable(int on)
{
    __atomic_store_n(&amx_forced_off, on ? 1 : 0, __ATOMIC_RELAXED);
}

static _Thread_local int thread_bf16;

int fn_amx_set_thread(int on)
{
    int was = thread_bf16;
    thread_bf16 = on && fn_amx_available(NULL);
    return was;
}

int fn_amx_thread(void)
{
    return thread_bf16;
}

/* ---- weights ------------------------------------------------------------------------------ */

/* FP32 to BF16, rounded to nearest even (the values are finite). */
static uint16_t to_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static int round_up(int x, int to)
{
    return (x + to - 1) / to * to;
}

int fn_wpack_amx_init(fn_wpack *wp)
{
    /* A layer less deep than one tile step keeps FP32: the first convs on RGB pixels (K 27), bound
     * by their im2col and their output rather than by arithmetic (they ran no faster on the tiles,
     * bench_vision --layers), whose inputs are the pixels themselves, which BF16 would round. */
    if (wp->k < KSTEP) return 0;
    if (wp->amx || wp->n <= 0 || !fn_amx_available(NULL)) return 0;
    const int k = wp->k, n = wp->n, ksteps = round_up(k, KSTEP) / KSTEP;
    const int panels = round_up(n, PANEL) / PANEL;
    const size_t count = (size_t)panels * ksteps * 2 * TILE_U16;
    uint16_t *p = aligned_alloc(64, count * sizeof(uint16_t));
    if (!p) return -1;
    memset(p, 0, count * sizeof(uint16_t));
    for (int pn = 0; pn < panels; pn++)
        for (int s = 0; s < ksteps; s++)
            for (int t = 0; t < 2; t++) {
                uint16_t *tile = p + (((size_t)pn * ksteps + s) * 2 + t) * TILE_U16;
                for (int r = 0; r < 16; r++)
                    for (int col = 0; col < 16; col++)
                        for (int j = 0; j < 2; j++) {
                            const int kk = s * KSTEP + 2 * r + j, nn = pn * PANEL + t * 16 + col;
                            if (kk < k && nn < n)
                                tile[r * 32 + col * 2 + j] = to_bf16(fn_wpack_at(wp, kk, nn));
                        }
            }
    wp->amx = p;
    return 0;
}

void fn_wpack_amx_free(fn_wpack *wp)
{
    if (!wp) return;
    free(wp->amx);
    wp->amx = NULL;
}

/* ---- the kernel --------------------------------------------------------------------------- */

#if HAVE_AMX_BUILD

/* Rows of A rounded to BF16 into dst (kp elements a row, zeros past k): 16 floats at a time. */
__attribute__((target("avx512f,avx512bw"))) static void convert_rows(const float *a, int rows,
                                                                     int k, int kp, uint16_t *dst)
{
    const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
    for (int r = 0; r < rows; r++) {
        const float *src = a + (size_t)r * k;
        uint16_t *d = dst + (size_t)r * kp;
        for (int j = 0; j < kp; j += 16) {
            const int left = k - j;
            const __mmask16 m =
                left >= 16 ? (__mmask16)0xffff : (left > 0 ? (__mmask16)((1u << left) - 1) : 0);
            __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, src + j));
            u = _mm512_add_epi32(
                u, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(u, 16), one)));
            _mm256_storeu_si256((__m256i *)(d + j),
                                _mm512_cvtepi32_epi16(_mm512_srli_epi32(u, 16)));
        }
    }
}

/* bias and activation on up to 32 columns of `rows` rows of the FP32 block, into C. */
__attribute__((target("avx512f,avx512bw"))) static void
store_block(const float *blk, int rows, int w, const float *bias, fn_act act, float *c, int ldc)
{
    const __mmask16 m0 = w >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << w) - 1);
    const __mmask16 m1 =
        w >= 32 ? (__mmask16)0xffff : (w > 16 ? (__mmask16)((1u << (w - 16)) - 1) : (__mmask16)0);
    const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f),
                 tenth = _mm512_set1_ps(0.1f);
    const __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : zero;
    const __m512 b1 = bias && m1 ? _mm512_maskz_loadu_ps(m1, bias + 16) : zero;
    for (int r = 0; r < rows; r++) {
        for (int h = 0; h < 2; h++) {
            const __mmask16 m = h ? m1 : m0;
            if (!m) continue;
            __m512 v = _mm512_add_ps(_mm512_load_ps(blk + r * PANEL + h * 16), h ? b1 : b0);
            switch (act) {
            case FN_ACT_RELU:
                v = _mm512_max_ps(v, zero);
                break;
            case FN_ACT_RELU6:
                v = _mm512_min_ps(_mm512_max_ps(v, zero), six);
                break;
            case FN_ACT_LEAKY:
                v = _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LT_OQ), v, tenth);
                break;
            default:
                break;
            }
            _mm512_mask_storeu_ps(c + (size_t)r * ldc + h * 16, m, v);
        }
    }
}

typedef struct tilecfg {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

/* The rows of A converted per block: about this many BF16 bytes (in L2 beside the panel). */
#define ABLOCK_BYTES ((size_t)128 * 1024)

__attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw"))) int
fn_gemm_amx(int m, const fn_wpack *wp, const float *a, const float *bias, fn_act act, float *c)
{
    const int k = wp->k, n = wp->n, kp = round_up(k, KSTEP), ksteps = kp / KSTEP;
    const int panels = round_up(n, PANEL) / PANEL;
    int mb = (int)(ABLOCK_BYTES / ((size_t)kp * sizeof(uint16_t))) / 32 * 32;
    if (mb < 32) mb = 32;
    if (mb > round_up(m, 32)) mb = round_up(m, 32);
    uint16_t *ab = fn_thread_scratch((size_t)mb * kp * sizeof(uint16_t));
    if (!ab) return -1; /* out of memory for the buffer: the caller runs FP32 */
    tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    _tile_loadconfig(&cfg);
    float blk[32 * PANEL] __attribute__((aligned(64)));
    const uint16_t *bp = wp->amx;
    const size_t astride = (size_t)kp * sizeof(uint16_t);
    for (int m0 = 0; m0 < m; m0 += mb) {
        const int rows = m - m0 < mb ? m - m0 : mb, rows_p = round_up(rows, 32);
        convert_rows(a + (size_t)m0 * k, rows, k, kp, ab);
        memset(ab + (size_t)rows * kp, 0, (size_t)(rows_p - rows) * astride);
        for (int pn = 0; pn < panels; pn++) {
            const uint16_t *panel = bp + (size_t)pn * ksteps * 2 * TILE_U16;
            const int n0 = pn * PANEL, w = n - n0 < PANEL ? n - n0 : PANEL;
            for (int r0 = 0; r0 < rows_p; r0 += 32) {
                const uint16_t *ar = ab + (size_t)r0 * kp;
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
                for (int s = 0; s < ksteps; s++) {
                    const uint16_t *bt = panel + (size_t)s * 2 * TILE_U16;
                    _tile_loadd(4, ar + s * KSTEP, astride);
                    _tile_loadd(5, ar + 16 * (size_t)kp + s * KSTEP, astride);
                    _tile_loadd(6, bt, 64);
                    _tile_loadd(7, bt + TILE_U16, 64);
                    _tile_dpbf16ps(0, 4, 6);
                    _tile_dpbf16ps(1, 4, 7);
                    _tile_dpbf16ps(2, 5, 6);
                    _tile_dpbf16ps(3, 5, 7);
                }
                _tile_stored(0, blk, PANEL * sizeof(float));
                _tile_stored(1, blk + 16, PANEL * sizeof(float));
                _tile_stored(2, blk + 16 * PANEL, PANEL * sizeof(float));
                _tile_stored(3, blk + 16 * PANEL + 16, PANEL * sizeof(float));
                const int live = rows - r0 < 32 ? rows - r0 : 32;
                store_block(blk, live, w, bias ? bias + n0 : NULL, act,
                            c + (size_t)(m0 + r0) * n + n0, n);
            }
        }
    }
    _tile_release();
    return 0;
}

#else
int fn_gemm_amx(int m, const fn_wpack *wp, const float *a, const float *bias, fn_act act, float *c)
{
    (void)m, (void)wp, (void)a, (void)bias, (void)act, (void)c;
    return -1;
}
#endif
