/* l2.c: squared Euclidean distance blocks (see l2.h): our own kernels for 128-float descriptors
 * (AVX-512, AVX2+FMA), chosen once by CPU, with one cblas_sgemm as the portable fallback.
 *
 * Why not just sgemm: Debian's OpenBLAS picks its kernels by CPU model, not by feature bits, and
 * takes CPUs it does not know (Sapphire Rapids in a VM, some Zen 4 setups) for "Prescott", an
 * SSE3 core; the distance blocks then ran about 3x slower than the machine allows, and a library
 * cannot set OPENBLAS_CORETYPE before OpenBLAS initialises. The shape here is always the same
 * (K = 128, |q|^2 + |r|^2 - 2 q.r, clamped at 0), so a small dedicated kernel is enough:
 *
 * - The references are packed K-major a panel at a time (32 refs for AVX-512, 16 for AVX2), in a
 *   16 KB / 8 KB buffer on the stack that stays in L1 while every query of the call passes it.
 * - A micro-tile of 8 queries x 32 refs (16 zmm accumulators) or 6 x 16 (12 ymm) runs the whole
 *   K = 128 in registers: per k, two reference vectors are loaded and each query's scalar is
 *   broadcast into two FMAs. The epilogue adds the norms and clamps before the only store.
 * - A last panel with fewer refs is padded with zeros and stored under a mask; a last tile with
 *   fewer queries repeats its last row (computed, never stored), so there is no copy of q.
 * The kernels sum each dot product in k order with FMA, so they differ from the sgemm path only
 * by float rounding; test_l2 checks every path this CPU can run against double precision.
 *
 * Dispatch is a plain function pointer set once under pthread_once (not an ifunc: ifunc
 * resolvers run before the sanitizer runtimes are up and crash TSan builds). fn_l2_set_isa lets
 * tests and benchmarks force a path. */
#include "cluster/l2.h"

#include <cblas.h>
#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define FN_L2_X86 1
#endif

typedef void (*l2_fn)(const float *q, const float *qn, size_t nq, const float *r, const float *rn,
                      size_t nr, float *d, size_t ldd);

void fn_l2_norms(const float *v, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++) {
        const float *x = v + i * FN_DESC_DIM;
        float s = 0;
        for (int k = 0; k < FN_DESC_DIM; k++)
            s += x[k] * x[k];
        out[i] = s;
    }
}

/* The portable path: d = -2 q r^T by sgemm, then the norms are added row by row while the block
 * is still in cache. */
static void l2_sgemm(const float *q, const float *qn, size_t nq, const float *r, const float *rn,
                     size_t nr, float *d, size_t ldd)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nr, FN_DESC_DIM, -2.0f, q,
                FN_DESC_DIM, r, FN_DESC_DIM, 0.0f, d, (int)ldd);
    for (size_t i = 0; i < nq; i++) {
        float *row = d + i * ldd;
        for (size_t j = 0; j < nr; j++) {
            float v = row[j] + qn[i] + rn[j];
            row[j] = v > 0 ? v : 0;
        }
    }
}

/* Copies refs [0, nj) of r into pk K-major, w refs per k (pk[k * w + j] = r[j][k]), and their
 * norms into pn; refs nj..w-1 are zeros, so the kernels need no edge case in their inner loop. */
static void pack_panel(const float *r, const float *rn, size_t nj, size_t w, float *pk, float *pn)
{
    if (nj < w) memset(pk, 0, sizeof(float) * FN_DESC_DIM * w);
    for (size_t j = 0; j < nj; j++) {
        const float *x = r + j * FN_DESC_DIM;
        for (int k = 0; k < FN_DESC_DIM; k++)
            pk[(size_t)k * w + j] = x[k];
        pn[j] = rn[j];
    }
    for (size_t j = nj; j < w; j++)
        pn[j] = 0;
}

#ifdef FN_L2_X86

#define AVX512  __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,fma")))
#define AVX2FMA __attribute__((target("avx2,fma")))

/* ---- AVX-512: 8 queries x 32 refs ---------------------------------------------------------- */
#define MR16 8
#define NR16 32

/* Two FMAs of one query row i into its accumulator pair. */
#define FMA16(i)                                                                                   \
    do {                                                                                           \
        __m512 a_ = _mm512_set1_ps(a##i[k]);                                                       \
        c##i##0 = _mm512_fmadd_ps(a_, b0, c##i##0);                                                \
        c##i##1 = _mm512_fmadd_ps(a_, b1, c##i##1);                                                \
    } while (0)

/* The epilogue of row i: |q|^2 + |r|^2 - 2 q.r clamped at 0, stored only if the row exists. */
#define STORE16(i)                                                                                 \
    do {                                                                                           \
        if ((i) < ni) {                                                                            \
            __m512 qv_ = _mm512_set1_ps(qn[i0 + (i)]);                                             \
            __m512 v0_ = _mm512_max_ps(_mm512_fmadd_ps(c##i##0, m2, _mm512_add_ps(qv_, rn0)), z);  \
            __m512 v1_ = _mm512_max_ps(_mm512_fmadd_ps(c##i##1, m2, _mm512_add_ps(qv_, rn1)), z);  \
            float *o_ = d + (i0 + (i)) * ldd + j0;                                                 \
            if (full) {                                                                            \
                _mm512_storeu_ps(o_, v0_);                                                         \
                _mm512_storeu_ps(o_ + 16, v1_);                                                    \
            } else {                                                                               \
                _mm512_mask_storeu_ps(o_, mk0, v0_);                                               \
                _mm512_mask_storeu_ps(o_ + 16, mk1, v1_);                                          \
            }                                                                                      \
        }                                                                                          \
    } while (0)

AVX512 static void l2_avx512(const float *q, const float *qn, size_t nq, const float *r,
                             const float *rn, size_t nr, float *d, size_t ldd)
{
    float pk[FN_DESC_DIM * NR16] __attribute__((aligned(64)));
    float pn[NR16] __attribute__((aligned(64)));
    const __m512 m2 = _mm512_set1_ps(-2.0f), z = _mm512_setzero_ps();
    for (size_t j0 = 0; j0 < nr; j0 += NR16) {
        const size_t nj = nr - j0 < NR16 ? nr - j0 : NR16;
        const int full = nj == NR16;
        const __mmask16 mk0 = nj >= 16 ? 0xFFFF : (__mmask16)((1u << nj) - 1);
        const __mmask16 mk1 = nj >= 32 ? 0xFFFF : nj > 16 ? (__mmask16)((1u << (nj - 16)) - 1) : 0;
        pack_panel(r + j0 * FN_DESC_DIM, rn + j0, nj, NR16, pk, pn);
        const __m512 rn0 = _mm512_load_ps(pn), rn1 = _mm512_load_ps(pn + 16);
        for (size_t i0 = 0; i0 < nq; i0 += MR16) {
            const size_t ni = nq - i0 < MR16 ? nq - i0 : MR16;
            /* rows past the end repeat the last one: computed, never stored */
#define ROW16(i) (q + (i0 + ((i) < ni ? (i) : ni - 1)) * FN_DESC_DIM)
            const float *a0 = ROW16(0), *a1 = ROW16(1), *a2 = ROW16(2), *a3 = ROW16(3);
            const float *a4 = ROW16(4), *a5 = ROW16(5), *a6 = ROW16(6), *a7 = ROW16(7);
#undef ROW16
            __m512 c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z;
            __m512 c40 = z, c41 = z, c50 = z, c51 = z, c60 = z, c61 = z, c70 = z, c71 = z;
            for (int k = 0; k < FN_DESC_DIM; k++) {
                const __m512 b0 = _mm512_load_ps(pk + k * NR16);
                const __m512 b1 = _mm512_load_ps(pk + k * NR16 + 16);
                FMA16(0);
                FMA16(1);
                FMA16(2);
                FMA16(3);
                FMA16(4);
                FMA16(5);
                FMA16(6);
                FMA16(7);
            }
            STORE16(0);
            STORE16(1);
            STORE16(2);
            STORE16(3);
            STORE16(4);
            STORE16(5);
            STORE16(6);
            STORE16(7);
        }
    }
}

/* ---- AVX2 + FMA: 6 queries x 16 refs --------------------------------------------------------- */
#define MR8 6
#define NR8 16

#define FMA8(i)                                                                                    \
    do {                                                                                           \
        __m256 a_ = _mm256_broadcast_ss(a##i + k);                                                 \
        c##i##0 = _mm256_fmadd_ps(a_, b0, c##i##0);                                                \
        c##i##1 = _mm256_fmadd_ps(a_, b1, c##i##1);                                                \
    } while (0)

/* AVX2 has no cheap masked store for floats: a partial panel goes through a small buffer. */
#define STORE8(i)                                                                                  \
    do {                                                                                           \
        if ((i) < ni) {                                                                            \
            __m256 qv_ = _mm256_set1_ps(qn[i0 + (i)]);                                             \
            __m256 v0_ = _mm256_max_ps(_mm256_fmadd_ps(c##i##0, m2, _mm256_add_ps(qv_, rn0)), z);  \
            __m256 v1_ = _mm256_max_ps(_mm256_fmadd_ps(c##i##1, m2, _mm256_add_ps(qv_, rn1)), z);  \
            float *o_ = d + (i0 + (i)) * ldd + j0;                                                 \
            if (nj == NR8) {                                                                       \
                _mm256_storeu_ps(o_, v0_);                                                         \
                _mm256_storeu_ps(o_ + 8, v1_);                                                     \
            } else {                                                                               \
                float t_[NR8];                                                                     \
                _mm256_storeu_ps(t_, v0_);                                                         \
                _mm256_storeu_ps(t_ + 8, v1_);                                                     \
                memcpy(o_, t_, nj * sizeof(float));                                                \
            }                                                                                      \
        }                                                                                          \
    } while (0)

AVX2FMA static void l2_avx2(const float *q, const float *qn, size_t nq, const float *r,
                            const float *rn, size_t nr, float *d, size_t ldd)
{
    float pk[FN_DESC_DIM * NR8] __attribute__((aligned(32)));
    float pn[NR8] __attribute__((aligned(32)));
    const __m256 m2 = _mm256_set1_ps(-2.0f), z = _mm256_setzero_ps();
    for (size_t j0 = 0; j0 < nr; j0 += NR8) {
        const size_t nj = nr - j0 < NR8 ? nr - j0 : NR8;
        pack_panel(r + j0 * FN_DESC_DIM, rn + j0, nj, NR8, pk, pn);
        const __m256 rn0 = _mm256_load_ps(pn), rn1 = _mm256_load_ps(pn + 8);
        for (size_t i0 = 0; i0 < nq; i0 += MR8) {
            const size_t ni = nq - i0 < MR8 ? nq - i0 : MR8;
#define ROW8(i) (q + (i0 + ((i) < ni ? (i) : ni - 1)) * FN_DESC_DIM)
            const float *a0 = ROW8(0), *a1 = ROW8(1), *a2 = ROW8(2), *a3 = ROW8(3);
            const float *a4 = ROW8(4), *a5 = ROW8(5);
#undef ROW8
            __m256 c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z;
            __m256 c30 = z, c31 = z, c40 = z, c41 = z, c50 = z, c51 = z;
            for (int k = 0; k < FN_DESC_DIM; k++) {
                const __m256 b0 = _mm256_load_ps(pk + k * NR8);
                const __m256 b1 = _mm256_load_ps(pk + k * NR8 + 8);
                FMA8(0);
                FMA8(1);
                FMA8(2);
                FMA8(3);
                FMA8(4);
                FMA8(5);
            }
            STORE8(0);
            STORE8(1);
            STORE8(2);
            STORE8(3);
            STORE8(4);
            STORE8(5);
        }
    }
}

static int cpu_level(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw"))
        return FN_L2_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return FN_L2_AVX2;
    return FN_L2_SGEMM;
}

static const l2_fn kernels[] = {l2_sgemm, l2_avx2, l2_avx512};

#else

static int cpu_level(void)
{
    return FN_L2_SGEMM;
}

static const l2_fn kernels[] = {l2_sgemm};

#endif

/* The best level this CPU has (set once), and the level in use: the best one unless a test or
 * benchmark forced another. Both are read atomically: the override may change while other
 * threads compute (they then finish their block on either path, both correct). */
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static int best_level;
static int cur_level;

static void detect(void)
{
    best_level = cpu_level();
    __atomic_store_n(&cur_level, best_level, __ATOMIC_RELAXED);
}

int fn_l2_set_isa(int level)
{
    pthread_once(&detect_once, detect);
    int v = level < 0 || level > best_level ? best_level : level;
    __atomic_store_n(&cur_level, v, __ATOMIC_RELAXED);
    return v;
}

int fn_l2_isa(void)
{
    pthread_once(&detect_once, detect);
    return __atomic_load_n(&cur_level, __ATOMIC_RELAXED);
}

const char *fn_l2_isa_name(int level)
{
    static const char *const names[] = {"sgemm", "avx2", "avx512"};
    return level >= 0 && level <= FN_L2_AVX512 ? names[level] : NULL;
}

void fn_l2sq_block(const float *q, const float *qn, size_t nq, const float *r, const float *rn,
                   size_t nr, float *d, size_t ldd)
{
    if (nq == 0 || nr == 0) return;
    kernels[fn_l2_isa()](q, qn, nq, r, rn, nr, d, ldd);
}
