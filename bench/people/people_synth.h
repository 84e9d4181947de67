/* people_synth.h: synthetic face descriptors with known identities, and the scores of a
 * clustering against them (BCubed and pairwise precision, recall and F1). Shared by
 * bench_people and the people evaluation (the predict part reuses the scores).
 *
 * The model (people_synth.c says where each number comes from): descriptor = common mean +
 * family offset + identity offset + per-face noise, Gaussian per dimension, so that same-person
 * distances sit around 0.42 (0.3-0.55), unrelated people around 0.71 and relatives (identities of
 * one "family") around 0.58, as measured on the sample photos' faces. Plus strangers seen once,
 * photos of 1-4 faces of distinct identities, and some low-quality ("weak") faces with more
 * noise. Deterministic for a seed. */
#ifndef FN_BENCH_PEOPLE_SYNTH_H
#define FN_BENCH_PEOPLE_SYNTH_H

#include <stddef.h>
#include <stdint.h>

typedef struct fn_synth_opts {
    size_t n;            /* faces */
    double strangers;    /* fraction of faces that are people seen once (0.2) */
    double weak;         /* fraction of low-quality faces (0.05) */
    double same_sd;      /* per-dimension sd of a face around its identity (0.026) */
    double ident_sd;     /* per-dimension sd of identities around the mean (0.036) */
    double family_share; /* part of ident_sd's variance shared within a family (0.5) */
    uint64_t seed;
} fn_synth_opts;

typedef struct fn_synth {
    size_t n, n_ident;
    float *desc;       /* n x 128 */
    int32_t *identity; /* n: the true person */
    int64_t *photo;    /* n: photo id (>= 1) */
    uint8_t *weak;     /* n */
} fn_synth;

void fn_synth_defaults(fn_synth_opts *o, size_t n, uint64_t seed);
int fn_synth_make(const fn_synth_opts *o, fn_synth *out); /* 0 or -1 (out of memory) */
void fn_synth_free(fn_synth *s);

typedef struct fn_cluster_scores {
    double bcubed_p, bcubed_r, bcubed_f;
    double pair_p, pair_r, pair_f;
    size_t clusters;   /* predicted groups of two or more */
    size_t identities; /* true identities with two or more faces */
} fn_cluster_scores;

/* Scores pred (a group per item, -1 noise: its own singleton) against truth, over n items. */
int fn_cluster_score(const int32_t *truth, const int32_t *pred, size_t n, fn_cluster_scores *out);

#endif
