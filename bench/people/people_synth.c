/* people_synth.c: the synthetic people of people_synth.h, and the clustering scores.
 *
 * Where the numbers come from: the 23 faces the detector finds (min size 40) in the six sample
 * photos (the .jpg files of reference/node_modules/@vladmandic/face-api/demo, ingested with
 * `facenames ingest`) have descriptor norms 1.40-1.51 (mean 1.45), a common mean of norm 1.37, a
 * per- dimension spread of 0.044 around it, and pairwise distances (nearly all between different
 * people) of median 0.71, 5th percentile 0.57, minimum 0.47. The model keeps that: a common mean
 * of norm 1.37; unrelated identities 0.71 apart on average (ident_sd 0.036, with the face noise
 * sqrt(2 * 128 * (0.036^2 + 0.026^2)) = 0.71); same-person distances sqrt(2 * 128) * 0.026 =
 * 0.42, each identity's noise scaled by 0.75-1.25 so they spread over 0.3-0.55 (the model's
 * known range); half the identity variance shared within families of 1-3 identities, so
 * relatives are 0.58 apart on average (the lower tail the samples show). Face counts per identity
 * are heavy-tailed (2 + 3 (u^-0.8 - 1), at most 5000): a few people with thousands of faces, many
 * with a handful. Weak faces get 1.6 times the noise. Faces are shuffled, then packed into photos
 * of 1-4 faces, a photo never holding one identity twice. */
#include "people_synth.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DIM 128

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double unif(uint64_t *s)
{
    return ((double)(mix(s) >> 11) + 0.5) / 9007199254740992.0;
}

static double gauss(uint64_t *s)
{
    double u = unif(s), v = unif(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

void fn_synth_defaults(fn_synth_opts *o, size_t n, uint64_t seed)
{
    memset(o, 0, sizeof *o);
    o->n = n;
    o->strangers = 0.2;
    o->weak = 0.05;
    o->same_sd = 0.026;
    o->ident_sd = 0.036;
    o->family_share = 0.5;
    o->seed = seed;
}

void fn_synth_free(fn_synth *s)
{
    free(s->desc);
    free(s->identity);
    free(s->photo);
    free(s->weak);
    memset(s, 0, sizeof *s);
}

int fn_synth_make(const fn_synth_opts *o, fn_synth *out)
{
    memset(out, 0, sizeof *out);
    uint64_t seed = o->seed ? o->seed : 1;
    size_t n = o->n;
    out->n = n;
    out->desc = malloc((n ? n : 1) * DIM * sizeof(float));
    out->identity = malloc((n ? n : 1) * sizeof *out->identity);
    out->photo = malloc((n ? n : 1) * sizeof *out->photo);
    out->weak = malloc(n ? n : 1);
    if (!out->desc || !out->identity || !out->photo || !out->weak) goto fail;
    /* identities: sizes first (strangers are identities of one face) */
    size_t n_str = (size_t)((double)n * o->strangers), filled = 0, n_id = 0;
    for (; filled < n_str; filled++)
        out->identity[filled] = (int32_t)n_id++;
    while (filled < n) {
        double sz = 2 + 3 * (pow(unif(&seed), -0.8) - 1);
        size_t k = sz > 5000 ? 5000 : (size_t)sz;
        if (k > n - filled) k = n - filled;
        for (size_t i = 0; i < k; i++)
            out->identity[filled++] = (int32_t)n_id;
        n_id++;
    }
    out->n_ident = n_id;
    /* identity centres: mean + family + own */
    float mean[DIM];
    double mn = 0;
    for (int c = 0; c < DIM; c++) {
        mean[c] = (float)gauss(&seed);
        mn += (double)mean[c] * mean[c];
    }
    for (int c = 0; c < DIM; c++)
        mean[c] = (float)(mean[c] * 1.37 / sqrt(mn));
    float *cent = malloc((n_id ? n_id : 1) * DIM * sizeof *cent);
    float *scale = malloc((n_id ? n_id : 1) * sizeof *scale);
    if (!cent || !scale) {
        free(cent);
        free(scale);
        goto fail;
    }
    double fam_sd = o->ident_sd * sqrt(o->family_share);
    double own_sd = o->ident_sd * sqrt(1 - o->family_share);
    float fam[DIM];
    size_t fam_left = 0;
    for (size_t id = 0; id < n_id; id++) {
        if (!fam_left) {
            fam_left = 1 + (size_t)(mix(&seed) % 3);
            for (int c = 0; c < DIM; c++)
                fam[c] = (float)(fam_sd * gauss(&seed));
        }
        fam_left--;
        for (int c = 0; c < DIM; c++)
            cent[id * DIM + c] = mean[c] + fam[c] + (float)(own_sd * gauss(&seed));
        scale[id] = (float)(0.75 + 0.5 * unif(&seed));
    }
    /* faces, then shuffled */
    for (size_t i = 0; i < n; i++) {
        int32_t id = out->identity[i];
        out->weak[i] = unif(&seed) < o->weak;
        double sd = o->same_sd * scale[id] * (out->weak[i] ? 1.6 : 1.0);
        for (int c = 0; c < DIM; c++)
            out->desc[i * DIM + c] = cent[(size_t)id * DIM + c] + (float)(sd * gauss(&seed));
    }
    free(cent);
    free(scale);
    float tmp[DIM];
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(mix(&seed) % i);
        size_t a = i - 1;
        memcpy(tmp, out->desc + a * DIM, sizeof tmp);
        memcpy(out->desc + a * DIM, out->desc + j * DIM, sizeof tmp);
        memcpy(out->desc + j * DIM, tmp, sizeof tmp);
        int32_t t = out->identity[a];
        out->identity[a] = out->identity[j];
        out->identity[j] = t;
        uint8_t w = out->weak[a];
        out->weak[a] = out->weak[j];
        out->weak[j] = w;
    }
    int64_t photo = 1;
    size_t in_photo = 0, want = 1;
    for (size_t i = 0; i < n; i++) {
        int clash = 0;
        for (size_t j = i - in_photo; j < i; j++)
            if (out->identity[j] == out->identity[i]) clash = 1;
        if (in_photo == want || clash) {
            photo++;
            in_photo = 0;
            want = 1 + (size_t)(mix(&seed) % 4);
        }
        out->photo[i] = photo;
        in_photo++;
    }
    return 0;
fail:
    fn_synth_free(out);
    return -1;
}

/* ---- scores ------------------------------------------------------------------------------------
 */

typedef struct cell {
    int64_t pred, truth;
} cell;

static int cmp_cell(const void *x, const void *y)
{
    const cell *a = x, *b = y;
    if (a->pred != b->pred) return a->pred < b->pred ? -1 : 1;
    return (a->truth > b->truth) - (a->truth < b->truth);
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

int fn_cluster_score(const int32_t *truth, const int32_t *pred, size_t n, fn_cluster_scores *out)
{
    memset(out, 0, sizeof *out);
    if (!n) return 0;
    cell *c = malloc(n * sizeof *c);
    int64_t *p = malloc(n * sizeof *p), *t = malloc(n * sizeof *t);
    if (!c || !p || !t) {
        free(c);
        free(p);
        free(t);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        /* noise: a singleton of its own, named below every real group */
        c[i].pred = pred[i] >= 0 ? pred[i] : -1 - (int64_t)i;
        c[i].truth = truth[i];
        p[i] = c[i].pred;
        t[i] = truth[i];
    }
    qsort(c, n, sizeof *c, cmp_cell);
    qsort(p, n, sizeof *p, cmp_i64);
    qsort(t, n, sizeof *t, cmp_i64);
    /* BCubed: every item of a (pred, truth) cell of size m, in pred group P and identity T,
     * has precision m/|P| and recall m/|T|. */
    double bp = 0, br = 0, tp_pairs = 0, pred_pairs = 0, true_pairs = 0;
    for (size_t a = 0, b; a < n; a = b) {
        for (b = a; b < n && p[b] == p[a]; b++)
            ;
        double m = (double)(b - a);
        pred_pairs += m * (m - 1) / 2;
        if (b - a >= 2) out->clusters++;
    }
    for (size_t a = 0, b; a < n; a = b) {
        for (b = a; b < n && t[b] == t[a]; b++)
            ;
        double m = (double)(b - a);
        true_pairs += m * (m - 1) / 2;
        if (b - a >= 2) out->identities++;
    }
    for (size_t a = 0, b; a < n; a = b) {
        for (b = a; b < n && c[b].pred == c[a].pred && c[b].truth == c[a].truth; b++)
            ;
        double m = (double)(b - a);
        tp_pairs += m * (m - 1) / 2;
        /* the sizes of this cell's group and identity: binary searches in p and t */
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (p[mid] < c[a].pred)
                lo = mid + 1;
            else
                hi = mid;
        }
        size_t p0 = lo;
        hi = n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (p[mid] <= c[a].pred)
                lo = mid + 1;
            else
                hi = mid;
        }
        double psz = (double)(lo - p0);
        lo = 0;
        hi = n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (t[mid] < c[a].truth)
                lo = mid + 1;
            else
                hi = mid;
        }
        size_t t0 = lo;
        hi = n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (t[mid] <= c[a].truth)
                lo = mid + 1;
            else
                hi = mid;
        }
        double tsz = (double)(lo - t0);
        bp += m * m / psz;
        br += m * m / tsz;
    }
    out->bcubed_p = bp / (double)n;
    out->bcubed_r = br / (double)n;
    out->bcubed_f = 2 * out->bcubed_p * out->bcubed_r / (out->bcubed_p + out->bcubed_r);
    out->pair_p = pred_pairs > 0 ? tp_pairs / pred_pairs : 1;
    out->pair_r = true_pairs > 0 ? tp_pairs / true_pairs : 1;
    out->pair_f = out->pair_p + out->pair_r > 0
                      ? 2 * out->pair_p * out->pair_r / (out->pair_p + out->pair_r)
                      : 0;
    free(c);
    free(p);
    free(t);
    return 0;
}
