/* cluster_store.h: the rows the clustering job reads and writes (internal; SQL stays in
 * src/store). The job (src/tasks/cluster.c) explains the run, its resume and its ids; here are
 * only the queries.
 *
 * "The run" is the id of the first job of a resume chain: faces it placed carry it in
 * faces.cluster_run, clusters it created carry it in clusters.job_id, so a resumed run reads the
 * same input as the run it continues (its own writes are recognised and seen through).
 *
 * Threading: as fn_store (one connection per thread). */
#ifndef FN_STORE_LIBRARY_CLUSTER_STORE_H
#define FN_STORE_LIBRARY_CLUSTER_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct fn_cl_face {
    int64_t id, photo_id;
    int64_t old_cluster; /* its cluster before this run (0 none) */
    float width, height, score;
} fn_cl_face;

/* A fixed group: a person (the mean of its faces) or, in incremental runs, an existing cluster. */
typedef struct fn_cl_group {
    int64_t id;
    double weight; /* faces */
    float centre[128];
} fn_cl_group;

/* A face may not join this person or cluster (a cannot-link, or another face of its photo). */
typedef struct fn_cl_forbid {
    size_t face;             /* index into faces */
    int64_t person, cluster; /* one of them nonzero */
} fn_cl_forbid;

typedef struct fn_cl_input {
    size_t n;
    fn_cl_face *faces; /* the faces to place, by id */
    float *desc;       /* n x 128 */
    size_t n_persons, n_clusters, n_forbid;
    fn_cl_group *persons, *clusters;
    fn_cl_forbid *forbid;
    int64_t max_cluster_id;
} fn_cl_input;

/* Reads what run `run` places: full != 0, every auto face (origin auto) without a person; else the
 * faces clustering has not seen; only faces with id <= upto (0: all), so a resumed run leaves out
 * faces added since the run began. Plus the persons (and, incremental, the clusters) they may join
 * and what they are forbidden. Holds one read transaction. */
int fn_cl_load(fn_store *s, int full, int64_t run, int64_t upto, fn_cl_input *out);
void fn_cl_input_free(fn_cl_input *in);

typedef struct fn_cl_place {
    int64_t face, cluster, person; /* 0: none */
} fn_cl_place;

/* Inside the batch transaction: creates the clusters ids[0..n) when missing (job_id = run), then
 * places the faces. A face a person decided meanwhile (no longer auto) is left alone. */
int fn_cl_write(fn_store_tx *tx, int64_t run, const int64_t *ids, size_t n_ids,
                const fn_cl_place *p, size_t n);

/* The end of a run, inside its last transaction: each touched cluster's size (counted) and centre;
 * with full != 0, clusters without a face and without a person are deleted. */
int fn_cl_finish(fn_store_tx *tx, int full, const fn_cl_group *touched, size_t n);

#endif
