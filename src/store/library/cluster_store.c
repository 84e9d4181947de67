/* cluster_store.c: the clustering job's reads and writes (see cluster_store.h). */
#include "store/library/cluster_store.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "store/store_sql.h"
#include "util/clock.h"

#define DIM 128

static const char q_free_full[] =
    "SELECT id, photo_id, CASE WHEN cluster_run IS NOT DISTINCT FROM ?1 THEN cluster_prev ELSE "
    "cluster_id END,"
    " width, height, score, descriptor FROM faces"
    " WHERE state = 'auto' AND origin = 'auto' AND descriptor IS NOT NULL"
    " AND (person_id IS NULL OR cluster_run IS NOT DISTINCT FROM ?1) AND id <= ?2 ORDER BY id";
static const char q_free_new[] =
    "SELECT id, photo_id, CASE WHEN cluster_run IS NOT DISTINCT FROM ?1 THEN cluster_prev ELSE "
    "cluster_id END,"
    " width, height, score, descriptor FROM faces"
    " WHERE state = 'auto' AND origin = 'auto' AND descriptor IS NOT NULL"
    " AND ((cluster_run IS NULL AND person_id IS NULL) OR cluster_run = ?1) AND id <= ?2"
    " ORDER BY id";
/* A person's faces, except the ones this run placed (they are the run's input, not its anchors). */
static const char q_persons[] =
    "SELECT f.person_id, f.descriptor FROM faces f JOIN persons p ON p.id = f.person_id"
    " WHERE p.deleted_at IS NULL AND f.state <> 'ignored' AND f.descriptor IS NOT NULL"
    " AND NOT (f.cluster_run IS NOT DISTINCT FROM ?1 AND f.state = 'auto' AND f.origin = 'auto')"
    " ORDER BY f.person_id, f.id";
static const char q_clusters[] =
    "SELECT id, size, centroid FROM clusters WHERE person_id IS NULL AND size > 0"
    " AND centroid IS NOT NULL AND job_id IS DISTINCT FROM ?1 ORDER BY id";
static const char q_max_id[] = "SELECT coalesce(max(id), 0) FROM clusters";
/* The faces with a person or a cluster in the photos of the faces to place (the photos as the two
 * free-face queries above select them, ?1 and ?2 the same), by photo: one read for all photos,
 * not one query per photo (a round trip each on PostgreSQL). */
static const char q_siblings_full[] =
    "SELECT photo_id, id, person_id, cluster_id FROM faces"
    " WHERE (person_id IS NOT NULL OR cluster_id IS NOT NULL) AND photo_id IN"
    " (SELECT photo_id FROM faces WHERE state = 'auto' AND origin = 'auto'"
    " AND descriptor IS NOT NULL AND (person_id IS NULL OR cluster_run IS NOT DISTINCT FROM ?1)"
    " AND id <= ?2) ORDER BY photo_id, id";
static const char q_siblings_new[] =
    "SELECT photo_id, id, person_id, cluster_id FROM faces"
    " WHERE (person_id IS NOT NULL OR cluster_id IS NOT NULL) AND photo_id IN"
    " (SELECT photo_id FROM faces WHERE state = 'auto' AND origin = 'auto'"
    " AND descriptor IS NOT NULL AND ((cluster_run IS NULL AND person_id IS NULL)"
    " OR cluster_run = ?1) AND id <= ?2) ORDER BY photo_id, id";
static const char q_cannot[] = "SELECT face_id, person_id FROM cannot_links ORDER BY face_id";
static const char w_cluster[] =
    "INSERT INTO clusters (id, job_id, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";
static const char w_place[] =
    "UPDATE faces SET cluster_prev = CASE WHEN cluster_run IS NOT DISTINCT FROM ?4 THEN "
    "cluster_prev"
    " ELSE cluster_id END, cluster_id = ?2, person_id = ?3, cluster_run = ?4"
    " WHERE id = ?1 AND state = 'auto' AND origin = 'auto'";
static const char w_size[] = "UPDATE clusters SET size = (SELECT count(*) FROM faces"
                             " WHERE cluster_id = ?1), centroid = ?2 WHERE id = ?1";
static const char w_delete[] = "DELETE FROM clusters WHERE person_id IS NULL AND NOT EXISTS"
                               " (SELECT 1 FROM faces WHERE cluster_id = clusters.id)";

void fn_cl_input_free(fn_cl_input *in)
{
    free(in->faces);
    free(in->desc);
    free(in->persons);
    free(in->clusters);
    free(in->forbid);
    memset(in, 0, sizeof *in);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap * 2 : 256;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return FN_ERR_NOMEM;
    *p = q;
    *cap = c;
    return 0;
}

static int face_index(const fn_cl_input *in, int64_t id, size_t *at)
{
    size_t lo = 0, hi = in->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (in->faces[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < in->n && in->faces[lo].id == id) {
        *at = lo;
        return 1;
    }
    return 0;
}

static int add_forbid(fn_cl_input *in, size_t *cap, size_t face, int64_t person, int64_t cluster)
{
    if (grow((void **)&in->forbid, cap, in->n_forbid + 1, sizeof *in->forbid) < 0)
        return FN_ERR_NOMEM;
    in->forbid[in->n_forbid++] = (fn_cl_forbid){face, person, cluster};
    return 0;
}

/* Sorting face indices by photo. The loader runs on one thread per job, but two jobs could load at
 * once, so the array to sort by is per thread. */
static _Thread_local const fn_cl_face *sort_faces;

static int by_photo(const void *x, const void *y)
{
    const fn_cl_face *a = &sort_faces[*(const size_t *)x], *b = &sort_faces[*(const size_t *)y];
    if (a->photo_id != b->photo_id) return a->photo_id < b->photo_id ? -1 : 1;
    return (*(const size_t *)x > *(const size_t *)y) - (*(const size_t *)x < *(const size_t *)y);
}

/* The bulk reads' row callbacks (fn_sql_bulk_read): the input being built and its capacities. */
typedef struct loading {
    fn_cl_input *in;
    size_t cap, dcap;
} loading;

static int free_face_row(void *arg, const fn_sql_value *v, int ncols)
{
    (void)ncols;
    loading *l = arg;
    fn_cl_input *in = l->in;
    if (v[6].bytes != DIM * (int)sizeof(float)) return 0; /* not a descriptor */
    if (grow((void **)&in->faces, &l->cap, in->n + 1, sizeof *in->faces) < 0 ||
        grow((void **)&in->desc, &l->dcap, (in->n + 1), DIM * sizeof(float)) < 0)
        return FN_ERR_NOMEM;
    fn_cl_face *f = &in->faces[in->n];
    f->id = v[0].i;
    f->photo_id = v[1].i;
    f->old_cluster = v[2].i;
    f->width = (float)v[3].d;
    f->height = (float)v[4].d;
    f->score = (float)v[5].d;
    memcpy(in->desc + in->n * DIM, v[6].blob, DIM * sizeof(float));
    in->n++;
    return 0;
}

static int person_face_row(void *arg, const fn_sql_value *v, int ncols)
{
    (void)ncols;
    loading *l = arg;
    fn_cl_input *in = l->in;
    if (v[1].bytes != DIM * (int)sizeof(float)) return 0;
    int64_t pid = v[0].i;
    const float *d = v[1].blob;
    if (!in->n_persons || in->persons[in->n_persons - 1].id != pid) {
        if (grow((void **)&in->persons, &l->cap, in->n_persons + 1, sizeof *in->persons) < 0)
            return FN_ERR_NOMEM;
        memset(&in->persons[in->n_persons], 0, sizeof *in->persons);
        in->persons[in->n_persons++].id = pid;
    }
    fn_cl_group *g = &in->persons[in->n_persons - 1];
    /* a running mean, so no second pass is needed; the blob may be unaligned (a pointer into
     * PostgreSQL's stream), so each float is copied out */
    g->weight += 1;
    for (int c = 0; c < DIM; c++) {
        float x;
        memcpy(&x, d + c, sizeof x);
        g->centre[c] += (float)((x - g->centre[c]) / g->weight);
    }
    return 0;
}

static int cluster_row(void *arg, const fn_sql_value *v, int ncols)
{
    (void)ncols;
    loading *l = arg;
    fn_cl_input *in = l->in;
    if (v[2].bytes != DIM * (int)sizeof(float)) return 0;
    if (grow((void **)&in->clusters, &l->cap, in->n_clusters + 1, sizeof *in->clusters) < 0)
        return FN_ERR_NOMEM;
    fn_cl_group *g = &in->clusters[in->n_clusters++];
    g->id = v[0].i;
    g->weight = (double)v[1].i;
    memcpy(g->centre, v[2].blob, sizeof g->centre);
    return 0;
}

/* The merge of the placed faces (order: their indices sorted by photo) with the photos' faces
 * that have a person or a cluster (rows by photo): [a, b) is the run of placed faces of the
 * current row's photo. */
typedef struct siblings {
    fn_cl_input *in;
    const size_t *order;
    size_t a, b, cap;
    int full;
} siblings;

static int sibling_row(void *arg, const fn_sql_value *v, int ncols)
{
    (void)ncols;
    siblings *sb = arg;
    fn_cl_input *in = sb->in;
    int64_t photo = v[0].i;
    if (sb->a == sb->b || in->faces[sb->order[sb->a]].photo_id != photo) {
        while (sb->a < in->n && in->faces[sb->order[sb->a]].photo_id < photo)
            sb->a++;
        for (sb->b = sb->a; sb->b < in->n && in->faces[sb->order[sb->b]].photo_id == photo; sb->b++)
            ;
    }
    if (sb->a == sb->b) return 0; /* no face of this photo is placed (a bad descriptor) */
    size_t at;
    if (face_index(in, v[1].i, &at)) return 0; /* placed too */
    int64_t person = v[2].i;
    int64_t cluster = sb->full ? 0 : v[3].i;
    for (size_t j = sb->a; j < sb->b; j++)
        if ((person && add_forbid(in, &sb->cap, sb->order[j], person, 0) < 0) ||
            (cluster && add_forbid(in, &sb->cap, sb->order[j], 0, cluster) < 0))
            return FN_ERR_NOMEM;
    return 0;
}

static int load(fn_store *s, int full, int64_t run, int64_t upto, fn_cl_input *in)
{
    /* The faces, the persons' faces and the clusters are what a run reads in volume (a
     * descriptor of 512 bytes each): bulk reads, one round trip each on PostgreSQL. */
    int64_t params[2] = {run, upto > 0 ? upto : INT64_MAX};
    loading l = {in, 0, 0};
    int rc = fn_sql_bulk_read(s, full ? q_free_full : q_free_new, params, 2, 7, free_face_row, &l);
    if (rc != FN_OK)
        return rc == FN_ERR_NOMEM ? rc : fn_store_fail(s, rc, "reading the faces to cluster");

    /* persons: the mean of each one's faces */
    l = (loading){in, 0, 0};
    rc = fn_sql_bulk_read(s, q_persons, params, 1, 2, person_face_row, &l);
    if (rc != FN_OK)
        return rc == FN_ERR_NOMEM ? rc : fn_store_fail(s, rc, "reading the persons' faces");

    if (!full) {
        l = (loading){in, 0, 0};
        rc = fn_sql_bulk_read(s, q_clusters, params, 1, 3, cluster_row, &l);
        if (rc != FN_OK)
            return rc == FN_ERR_NOMEM ? rc : fn_store_fail(s, rc, "reading the clusters");
    }
    fn_sql_stmt *st;
    size_t cap;
    if (!(st = fn_store_stmt(s, q_max_id))) return FN_ERR_DB;
    if ((rc = fn_sql_step(st)) == FN_SQL_ROW) in->max_cluster_id = fn_sql_column_int64(st, 0);
    fn_sql_reset(st);

    /* What each face is forbidden: the persons and clusters of the other faces of its photo that
     * are not being placed. The placed faces, sorted by photo, are merged with the photos'
     * faces, which come by photo too. */
    size_t *order = malloc((in->n ? in->n : 1) * sizeof *order);
    if (!order) return FN_ERR_NOMEM;
    for (size_t i = 0; i < in->n; i++)
        order[i] = i;
    sort_faces = in->faces;
    qsort(order, in->n, sizeof *order, by_photo);
    siblings sb = {in, order, 0, 0, 0, full};
    rc = fn_sql_bulk_read(s, full ? q_siblings_full : q_siblings_new, params, 2, 4, sibling_row,
                          &sb);
    free(order);
    if (rc == FN_ERR_NOMEM) return rc;
    if (rc != FN_OK) return fn_store_fail(s, rc, "reading the faces' photos");
    cap = sb.cap;
    if (!(st = fn_store_stmt(s, q_cannot))) return FN_ERR_DB;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        size_t at;
        if (face_index(in, fn_sql_column_int64(st, 0), &at) &&
            add_forbid(in, &cap, at, fn_sql_column_int64(st, 1), 0) < 0)
            return FN_ERR_NOMEM;
    }
    fn_sql_reset(st);
    if (rc != FN_SQL_DONE) return fn_store_fail(s, rc, "reading the cannot-links");
    return 0;
}

int fn_cl_load(fn_store *s, int full, int64_t run, int64_t upto, fn_cl_input *out)
{
    memset(out, 0, sizeof *out);
    /* One snapshot for all the reads, as SQLite's deferred transaction gives: PostgreSQL's default
     * (READ COMMITTED) would let each statement see a newer commit than the one before. */
    int rc = fn_sql_exec(s, FN_SQL_PICK(s, "BEGIN", "BEGIN ISOLATION LEVEL REPEATABLE READ"));
    if (rc != FN_OK) return fn_store_fail(s, rc, "reading the faces to cluster");
    int r = load(s, full, run, upto, out);
    fn_sql_exec(s, "COMMIT");
    if (r < 0) fn_cl_input_free(out);
    return r;
}

int fn_cl_write(fn_store_tx *tx, int64_t run, const int64_t *ids, size_t n_ids,
                const fn_cl_place *p, size_t n)
{
    fn_store *s = fn_store_tx_store(tx);
    fn_sql_stmt *st = fn_store_stmt(s, w_cluster);
    if (!st) return FN_ERR_DB;
    int64_t now = fn_wall_ms();
    int rc;
    for (size_t i = 0; i < n_ids; i++) {
        fn_sql_bind_int64(st, 1, ids[i]);
        fn_sql_bind_int64(st, 2, run);
        fn_sql_bind_int64(st, 3, now);
        rc = fn_sql_step(st);
        fn_sql_reset(st);
        if (rc != FN_SQL_DONE) return fn_store_fail(s, rc, "creating a cluster");
    }
    /* Clusters are numbered by the job (max id + 1 ...), not by the table; PostgreSQL's identity
     * sequence does not follow explicit ids as SQLite's rowid does, so move it past them for any
     * insert that takes a default id later (import). */
    if (n_ids && fn_store_backend(s) == FN_SQL_POSTGRES) {
        rc = fn_sql_exec(s, "SELECT setval(pg_get_serial_sequence('clusters', 'id'), max(id))"
                            " FROM clusters");
        if (rc != FN_OK) return fn_store_fail(s, rc, "numbering the clusters");
    }
    if (!(st = fn_store_stmt(s, w_place))) return FN_ERR_DB;
    for (size_t i = 0; i < n; i++) {
        fn_sql_bind_int64(st, 1, p[i].face);
        if (p[i].cluster)
            fn_sql_bind_int64(st, 2, p[i].cluster);
        else
            fn_sql_bind_null(st, 2);
        if (p[i].person)
            fn_sql_bind_int64(st, 3, p[i].person);
        else
            fn_sql_bind_null(st, 3);
        fn_sql_bind_int64(st, 4, run);
        rc = fn_sql_step(st);
        fn_sql_reset(st);
        if (rc != FN_SQL_DONE) return fn_store_fail(s, rc, "placing a face");
    }
    return 0;
}

int fn_cl_finish(fn_store_tx *tx, int full, const fn_cl_group *touched, size_t n)
{
    fn_store *s = fn_store_tx_store(tx);
    fn_sql_stmt *st = fn_store_stmt(s, w_size);
    if (!st) return FN_ERR_DB;
    int rc;
    for (size_t i = 0; i < n; i++) {
        fn_sql_bind_int64(st, 1, touched[i].id);
        fn_sql_bind_blob(st, 2, touched[i].centre, sizeof touched[i].centre, FN_SQL_STATIC);
        rc = fn_sql_step(st);
        fn_sql_reset(st);
        if (rc != FN_SQL_DONE) return fn_store_fail(s, rc, "updating a cluster");
    }
    if (full) {
        rc = fn_sql_exec(s, w_delete);
        if (rc != FN_OK) return fn_store_fail(s, rc, "removing empty clusters");
    }
    return 0;
}
