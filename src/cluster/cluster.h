/* cluster.h: grouping faces into clusters under the people rules, from a neighbour graph
 * (knn.h). Pure arithmetic: the clustering job (src/tasks/cluster*.c) loads the faces and writes
 * the result.
 *
 * The method (docs/clustering.md has the measurements, docs/design.md the decision): the graph's
 * edges are taken shortest first, and an edge joins its two faces' groups (a union-find) only if
 *   - the groups do not both carry a label (two persons, or two existing clusters, are never
 *     merged by a job: prefer a split to a merge);
 *   - no photo has a face in each group (two faces of one photo are never one person);
 *   - no face of the unlabelled group is forbidden the other group's label (a cannot-link between
 *     a face and a person, or the same-photo rule against faces that are not points here);
 *   - the root-mean-square distance between the faces of the two groups (average linkage) stays
 *     below `link` (the chaining bound: a chain of close pairs cannot walk from one person to
 *     another, because most pairs across two people are far apart);
 *   - the two faces are not both weak (low quality: they join a group through a good face only).
 * Groups without a label and with fewer than `min_faces` good faces are noise.
 *
 * Points are faces, and (for incremental runs) the centres of existing clusters and persons: a
 * centre is one point with the group's label and its size as weight, so a new face joins it
 * through the same rules as through a face.
 *
 * Threading: reentrant, single-threaded, no state. */
#ifndef FN_CLUSTER_CLUSTER_H
#define FN_CLUSTER_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/knn.h"

typedef struct fn_cluster_forbid {
    int32_t point; /* a point index */
    int32_t label; /* the label its group may not carry */
} fn_cluster_forbid;

typedef struct fn_cluster_in {
    size_t n;             /* points */
    const float *desc;    /* n x FN_DESC_DIM */
    const float *weight;  /* n: how many faces a point stands for (NULL: 1 each) */
    const int64_t *photo; /* n: photo id, 0 for a centre (NULL: no same-photo rule) */
    const int32_t *label; /* n: -1 free, >= 0 a fixed group (NULL: all free) */
    const uint8_t *weak;  /* n: 1 for a low-quality face (NULL: none) */
    const fn_cluster_forbid *forbid;
    size_t n_forbid;
} fn_cluster_in;

typedef struct fn_cluster_params {
    float link;    /* the chaining bound: the largest RMS distance between two groups' faces */
    int min_faces; /* good faces a new cluster needs (>= 1) */
} fn_cluster_params;

/* Clusters the points. g holds the neighbours of points [0, g->n) (g->n <= in->n; indices into
 * the points; an edge to itself is ignored). Labels are below n_labels. out[i] (n entries): the
 * point's label when its group has one; else, for a group kept as a new cluster, n_labels + its
 * new group number (0, 1, ... in order of each group's smallest point); else -1 (noise). *n_new
 * gets the number of new groups. 0 or FN_ERR_NOMEM / FN_ERR_INVALID. */
int fn_cluster_run(const fn_cluster_in *in, const fn_knn *g, const fn_cluster_params *p,
                   int32_t n_labels, int32_t *out, size_t *n_new);

#endif
