/* predict.h: the nearest named person of a face, by a weighted vote of confirmed faces.
 *
 * A model is built once from the confirmed faces (descriptor, person, face id). For each query
 * descriptor, the k nearest confirmed faces that lie within their person's radius vote for their
 * person with a weight that falls from 1 at distance 0 to 0 at the radius; the person with the
 * largest vote wins. Its confidence in [0, 1] is the product of three factors, each in [0, 1]:
 * how far inside the radius the nearest face of the person is, how far the nearest face of any
 * other person is behind it (the margin), and the winner's share of the vote. Below the threshold
 * the answer is "unknown" (person 0). docs/predict.md gives the method and why.
 *
 * Per-person radius: from the spread of the person's confirmed faces (their mean pairwise
 * distance plus a slack), clamped to [radius_min, radius_max]; radius_default for a person with
 * one confirmed face. The model's "same person" bound is a Euclidean distance of about 0.6, so
 * radius_max stays there.
 *
 * Speed: each person's confirmed faces are split into groups no wider than group_extent (one
 * group for most people; more for a person whose faces spread far, e.g. over decades). The
 * distances from a block of queries to every group centre are one sgemm (l2.h). A group's faces
 * are measured only when the triangle inequality says one of them could be within reach
 * (|q - centre| - max |face - centre| <= reach), and, unless `candidates` is 0, only for the
 * `candidates` groups with the nearest centres. With candidates = 0 the answer is exactly that of
 * measuring every confirmed face; with the default the bench and the tests measure how often it
 * differs (a face within reach belongs to a group whose centre is near, so rarely). Margins
 * beyond margin_full are not measured: they are reported as margin_full.
 *
 * Threading: a model is read-only once built; any number of threads may call fn_predict_run on
 * one model at once. No global state. */
#ifndef FN_CLUSTER_PREDICT_H
#define FN_CLUSTER_PREDICT_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/l2.h"

#define FN_PREDICT_K_MAX 64

typedef struct fn_predict_opts {
    int k;                /* nearest confirmed faces that vote, 1..FN_PREDICT_K_MAX; 10 */
    float threshold;      /* confidence below which the answer is unknown; 0.4 */
    float radius_min;     /* per-person radius clamp (Euclidean); 0.45 */
    float radius_max;     /* 0.6 */
    float radius_default; /* for a person with one confirmed face; 0.5 */
    float radius_slack;   /* added to the mean pairwise distance of a person's faces; 0.15 */
    float margin_full;    /* the margin at which the margin factor reaches 1; 0.2 */
    float dist_scale;     /* softness of the distance factor (see predict.c); 0.03 */
    int candidates;       /* groups of faces measured per query, nearest centres first; 0: every
                             group the triangle inequality cannot rule out (exact); 16 */
    float group_extent;   /* a person's faces are split into groups no wider than this; 0.4 */
} fn_predict_opts;

void fn_predict_opts_default(fn_predict_opts *o);

typedef struct fn_predict_model fn_predict_model;

/* Builds a model from n confirmed faces: desc (n x FN_DESC_DIM floats, contiguous), person[i] >
 * 0 and face_id[i] per face. Copies what it needs. 0, FN_ERR_NOMEM or FN_ERR_INVALID (a person
 * id <= 0, bad options). n may be 0 (every answer is then unknown). */
int fn_predict_model_new(const float *desc, const int64_t *person, const int64_t *face_id, size_t n,
                         const fn_predict_opts *o, fn_predict_model **out);
void fn_predict_model_free(fn_predict_model *m);
size_t fn_predict_model_persons(const fn_predict_model *m);
/* The radius of `person`, or -1 when the model has no such person. */
float fn_predict_model_radius(const fn_predict_model *m, int64_t person);

typedef struct fn_prediction {
    int64_t person;       /* the suggested person; 0: unknown */
    float confidence;     /* [0, 1]: of the best candidate, also when it is below the threshold */
    float distance;       /* Euclidean distance to the supporting face (-1 when no candidate) */
    float margin;         /* nearest other person's distance minus distance, at most margin_full */
    int64_t support_face; /* the candidate's nearest confirmed face (0 when none) */
    int64_t candidate;    /* the best candidate person even when unknown (0 when none) */
} fn_prediction;

/* Predicts nq queries (q: nq x FN_DESC_DIM floats). Optional inputs (NULL: none):
 * - photo[nq]: the photo of each query; two queries of one photo are never both suggested as
 *   the same person: the more confident keeps it (equal: the first), the other becomes unknown;
 * - excl_off[nq + 1], excl_person[]: per query i, the persons excl_person[excl_off[i] ..
 *   excl_off[i + 1]) it must not be suggested (cannot-links, persons already in its photo); they
 *   neither vote nor count as the runner-up.
 * out[nq] receives the answers. 0 or FN_ERR_NOMEM. */
int fn_predict_run(const fn_predict_model *m, const float *q, size_t nq, const int64_t *photo,
                   const size_t *excl_off, const int64_t *excl_person, fn_prediction *out);

#endif
