/* cluster.c: the "clustering" job type: groups the faces that have no person into clusters, or
 * joins them to a person or an existing cluster (docs/clustering.md).
 *
 * A run computes its whole plan when it opens: it loads the faces to place (fn_cl_load), builds
 * the neighbour graph (src/cluster/knn.h) and groups them (src/cluster/cluster.h), and gives every
 * face its cluster id or person. The plan is deterministic: the same library gives the same plan.
 * The items are then the faces, in id order, written a batch at a time with the checkpoint; the
 * batch of the last face also writes the clusters' sizes and centres and (with --full) removes the
 * clusters left empty.
 *
 * Cancel and resume: a resumed job recomputes the plan and skips the faces already written. That
 * gives the plan the first job would have written because the input does not move under the
 * run's own writes: the run's id (the first job of the chain, kept in the checkpoint as "run")
 * marks the faces it placed (faces.cluster_run) and the clusters it created (clusters.job_id);
 * the loader takes those faces as input again, with their cluster before the run
 * (faces.cluster_prev), leaves those clusters out of the targets, and cluster sizes and centres
 * change only in the last batch. New cluster ids are "base" + group number, the base kept in the
 * checkpoint, so the resumed run gives new clusters the same ids; "upto", the largest face id of
 * the input, keeps faces added between the cancel and the resume out of the resumed run (the next
 * run takes them). A person's decisions made in between do change the plan: the faces they
 * touched are left alone by the write, the others are placed by the new plan.
 *
 * Stable ids: an incremental run never renumbers (faces join existing clusters by id). A full run
 * gives a new group the id of the old cluster most of its faces were in, when that is also most of
 * that old cluster's faces (so each old id goes to at most one group); other groups get new ids.
 *
 * User decisions: only faces whose state is 'auto' and origin 'auto' are placed, and the write
 * checks it again (a face confirmed while the job ran is left alone); persons are never merged,
 * and a face joined to a person keeps state 'auto'. */
#include "tasks/cluster.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "cluster/knn.h"
#include "cluster/l2.h"
#include "facenames/error.h"
#include "store/library/cluster_store.h"
#include "store/library/library_store.h"

#define K_FACES   16 /* neighbours per face in the graph (docs/clustering.md) */
#define K_CENTRES 4  /* nearest person or cluster centres per face */

void (*fn_cluster_test_hook)(size_t face, void *arg);
void *fn_cluster_test_hook_arg;

static const fn_param params[] = {
    {"full", FN_PARAM_BOOL, NULL, "false", 0, 0, NULL, NULL},
    {"threshold", FN_PARAM_REAL, "cluster.threshold", NULL, 0.01, 2, NULL, "distance"},
    {"link", FN_PARAM_REAL, "cluster.link", NULL, 0.01, 2, NULL, "distance"},
    {"min_faces", FN_PARAM_INT, "cluster.min_faces", NULL, 1, 1000000, NULL, "faces"},
    {"weak_size", FN_PARAM_INT, "cluster.weak_size", NULL, 0, 100000, NULL, "pixels"},
    {"weak_score", FN_PARAM_REAL, "cluster.weak_score", NULL, 0, 1, NULL, "score"},
    {"batch", FN_PARAM_INT, NULL, "2048", 1, 1000000, NULL, "faces per commit"},
};

static const char *const counters[CC_COUNT] = {
    [CC_FACES_TOTAL] = "faces_total",
    [CC_FACES_DONE] = "faces_done",
    [CC_CLUSTERS_CREATED] = "clusters_created",
    [CC_NOISE] = "noise_count",
    [CC_JOINED] = "joined_person",
};

static const double size_bounds[] = {1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 5000};
static const fn_histogram_decl histograms[CH_COUNT] = {
    [CH_CLUSTER_SIZE] = {"cluster_size_histogram", size_bounds,
                         sizeof size_bounds / sizeof size_bounds[0]},
};

typedef struct cluster_job {
    int full;
    int64_t run, base;
    int64_t upto; /* the largest face id of the run's input (0 until the first open) */
    fn_cl_input in;
    fn_cl_place *plan; /* in.n faces */
    fn_cl_group *touched;
    size_t n_touched;
    size_t pos;   /* faces handed to the driver */
    int64_t skip; /* items a resumed run passes over (written before) */
} cluster_job;

/* ---- the plan ---------------------------------------------------------------------------------
 */

static int stop_asked(void *arg)
{
    return fn_job_should_stop(fn_batch_ctx(arg)) != FN_STOP_NONE;
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

static int group_index(const fn_cl_group *g, size_t n, int64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (g[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && g[lo].id == id ? (int)lo : -1;
}

/* The graph: each face's K_FACES nearest faces, then its K_CENTRES nearest centres (point indices
 * after the faces), in one row. */
static int graph(fn_batch *b, const float *pts, size_t n, size_t n_centres, float radius, fn_knn *g)
{
    /* The search runs on as many threads as the engine may use for jobs (workers.cpu_max), not
     * on every core of the machine. */
    const fn_config *cfg = fn_engine_config(fn_job_engine(fn_batch_ctx(b)));
    fn_knn_opts o = {.radius = radius, .k = K_FACES, .seed = 1, .threads = cfg->workers_cpu_max};
    fn_knn_stop stop = {stop_asked, b};
    fn_knn faces = {0}, centres = {0};
    int rc = fn_knn_build(pts, n, &o, &stop, &faces);
    if (rc == 0 && n_centres) {
        o.k = K_CENTRES;
        rc = fn_knn_query(pts, n, pts + n * FN_DESC_DIM, n_centres, &o, &centres);
    }
    if (rc < 0) goto out;
    int k = K_FACES + K_CENTRES;
    g->n = n;
    g->k = k;
    g->idx = malloc((n ? n : 1) * (size_t)k * sizeof *g->idx);
    g->d2 = malloc((n ? n : 1) * (size_t)k * sizeof *g->d2);
    if (!g->idx || !g->d2) {
        rc = FN_ERR_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        int m = 0;
        for (int s = 0; s < K_FACES && faces.idx[i * K_FACES + s] >= 0; s++, m++) {
            g->idx[i * k + m] = faces.idx[i * K_FACES + s];
            g->d2[i * k + m] = faces.d2[i * K_FACES + s];
        }
        for (int s = 0; n_centres && s < K_CENTRES && centres.idx[i * K_CENTRES + s] >= 0;
             s++, m++) {
            g->idx[i * k + m] = (int32_t)n + centres.idx[i * K_CENTRES + s];
            g->d2[i * k + m] = centres.d2[i * K_CENTRES + s];
        }
        for (; m < k; m++) {
            g->idx[i * k + m] = -1;
            g->d2[i * k + m] = INFINITY;
        }
    }
out:
    fn_knn_free(&faces);
    fn_knn_free(&centres);
    return rc;
}

typedef struct pair {
    int32_t group;
    int64_t old;
} pair;

static int cmp_pair(const void *x, const void *y)
{
    const pair *a = x, *b = y;
    if (a->group != b->group) return a->group < b->group ? -1 : 1;
    return (a->old > b->old) - (a->old < b->old);
}

/* The cluster id of each new group: a full run's stable match to an old id, else base + g. */
static int group_ids(cluster_job *st, const int32_t *out, int32_t n_labels, size_t n_new,
                     int64_t *ids)
{
    const fn_cl_input *in = &st->in;
    for (size_t g = 0; g < n_new; g++)
        ids[g] = st->base + (int64_t)g;
    if (!st->full) return 0;
    pair *p = malloc((in->n ? in->n : 1) * sizeof *p);
    int64_t *olds = malloc((in->n ? in->n : 1) * sizeof *olds);
    size_t m = 0, no = 0;
    if (!p || !olds) {
        free(p);
        free(olds);
        return FN_ERR_NOMEM;
    }
    for (size_t i = 0; i < in->n; i++) {
        if (in->faces[i].old_cluster) olds[no++] = in->faces[i].old_cluster;
        if (out[i] >= n_labels) p[m++] = (pair){out[i] - n_labels, in->faces[i].old_cluster};
    }
    qsort(p, m, sizeof *p, cmp_pair);
    qsort(olds, no, sizeof *olds, cmp_i64);
    for (size_t a = 0, b; a < m; a = b) {
        for (b = a; b < m && p[b].group == p[a].group; b++)
            ;
        size_t best = 0, best_n = 0;
        for (size_t c = a, d; c < b; c = d) {
            for (d = c; d < b && p[d].old == p[c].old; d++)
                ;
            if (p[c].old && d - c > best_n) {
                best_n = d - c;
                best = c;
            }
        }
        if (!best_n || 2 * best_n <= b - a) continue;
        /* the old cluster's faces among those placed now: the run of its id in olds */
        int64_t o = p[best].old;
        size_t lo = 0, hi = no;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (olds[mid] < o)
                lo = mid + 1;
            else
                hi = mid;
        }
        size_t o_n = 0;
        while (lo + o_n < no && olds[lo + o_n] == o)
            o_n++;
        if (2 * best_n > o_n) ids[p[a].group] = o;
    }
    free(p);
    free(olds);
    return 0;
}

/* The touched clusters and their centres: the faces placed in each, plus (incremental) what the
 * cluster held already. */
static int centres(cluster_job *st)
{
    const fn_cl_input *in = &st->in;
    int64_t *ids = malloc((in->n ? in->n : 1) * sizeof *ids);
    size_t m = 0;
    if (!ids) return FN_ERR_NOMEM;
    for (size_t i = 0; i < in->n; i++)
        if (st->plan[i].cluster) ids[m++] = st->plan[i].cluster;
    qsort(ids, m, sizeof *ids, cmp_i64);
    size_t u = 0;
    for (size_t i = 0; i < m; i++)
        if (!u || ids[u - 1] != ids[i]) ids[u++] = ids[i];
    st->touched = calloc(u ? u : 1, sizeof *st->touched);
    double *sum = calloc((u ? u : 1) * FN_DESC_DIM, sizeof *sum);
    if (!st->touched || !sum) {
        free(ids);
        free(sum);
        return FN_ERR_NOMEM;
    }
    st->n_touched = u;
    for (size_t t = 0; t < u; t++) {
        st->touched[t].id = ids[t];
        int c = group_index(in->clusters, in->n_clusters, ids[t]);
        if (c >= 0) {
            st->touched[t].weight = in->clusters[c].weight;
            for (int d = 0; d < FN_DESC_DIM; d++)
                sum[t * FN_DESC_DIM + d] = in->clusters[c].centre[d] * in->clusters[c].weight;
        }
    }
    free(ids);
    for (size_t i = 0; i < in->n; i++) {
        if (!st->plan[i].cluster) continue;
        int t = group_index(st->touched, st->n_touched, st->plan[i].cluster);
        st->touched[t].weight += 1;
        for (int d = 0; d < FN_DESC_DIM; d++)
            sum[(size_t)t * FN_DESC_DIM + d] += in->desc[i * FN_DESC_DIM + d];
    }
    for (size_t t = 0; t < u; t++)
        for (int d = 0; d < FN_DESC_DIM; d++)
            st->touched[t].centre[d] = (float)(sum[t * FN_DESC_DIM + d] /
                                               (st->touched[t].weight ? st->touched[t].weight : 1));
    free(sum);
    return 0;
}

static int plan(fn_batch *b, cluster_job *st)
{
    fn_cl_input *in = &st->in;
    size_t np = in->n_persons, nc = in->n_clusters, n = in->n, total = n + np + nc;
    int32_t n_labels = (int32_t)(np + nc);
    /* The points are the loaded descriptors with the centres appended in place: a second copy
     * of 1M descriptors would be another 512 MB. */
    float *pts = realloc(in->desc, (total ? total : 1) * FN_DESC_DIM * sizeof *pts);
    if (pts) in->desc = pts;
    float *w = malloc((total ? total : 1) * sizeof *w);
    int64_t *photo = malloc((total ? total : 1) * sizeof *photo);
    int32_t *label = malloc((total ? total : 1) * sizeof *label);
    uint8_t *weak = malloc(total ? total : 1);
    int32_t *out = malloc((total ? total : 1) * sizeof *out);
    fn_cluster_forbid *fb = malloc((in->n_forbid ? in->n_forbid : 1) * sizeof *fb);
    int64_t *ids = NULL;
    fn_knn g = {0};
    int rc = FN_ERR_NOMEM;
    st->plan = calloc(n ? n : 1, sizeof *st->plan);
    if (!pts || !w || !photo || !label || !weak || !out || !fb || !st->plan) goto out;
    double weak_size = (double)fn_batch_int(b, "weak_size");
    double weak_score = fn_batch_real(b, "weak_score");
    for (size_t i = 0; i < n; i++) {
        const fn_cl_face *f = &in->faces[i];
        w[i] = 1;
        photo[i] = f->photo_id;
        label[i] = -1;
        float side = f->width < f->height ? f->width : f->height;
        weak[i] = side < weak_size || f->score < weak_score;
    }
    for (size_t j = 0; j < np + nc; j++) {
        const fn_cl_group *gr = j < np ? &in->persons[j] : &in->clusters[j - np];
        memcpy(pts + (n + j) * FN_DESC_DIM, gr->centre, sizeof gr->centre);
        w[n + j] = (float)gr->weight;
        photo[n + j] = 0;
        label[n + j] = (int32_t)j;
        weak[n + j] = 0;
    }
    size_t nf = 0;
    for (size_t i = 0; i < in->n_forbid; i++) {
        const fn_cl_forbid *f = &in->forbid[i];
        int l = f->person ? group_index(in->persons, np, f->person)
                          : group_index(in->clusters, nc, f->cluster);
        if (l < 0) continue; /* not a target: nothing to forbid */
        fb[nf++] = (fn_cluster_forbid){(int32_t)f->face, (int32_t)(f->person ? l : (int)np + l)};
    }
    if ((rc = graph(b, pts, n, np + nc, (float)fn_batch_real(b, "threshold"), &g)) < 0) goto out;
    fn_cluster_in ci = {.n = total,
                        .desc = pts,
                        .weight = w,
                        .photo = photo,
                        .label = label,
                        .weak = weak,
                        .forbid = fb,
                        .n_forbid = nf};
    fn_cluster_params cp = {.link = (float)fn_batch_real(b, "link"),
                            .min_faces = (int)fn_batch_int(b, "min_faces")};
    size_t n_new = 0;
    if ((rc = fn_cluster_run(&ci, &g, &cp, n_labels, out, &n_new)) < 0) goto out;
    rc = FN_ERR_NOMEM;
    if (!(ids = malloc((n_new ? n_new : 1) * sizeof *ids))) goto out;
    if ((rc = group_ids(st, out, n_labels, n_new, ids)) < 0) goto out;
    int64_t noise = 0, joined = 0;
    for (size_t i = 0; i < n; i++) {
        fn_cl_place *p = &st->plan[i];
        p->face = in->faces[i].id;
        if (out[i] < 0) {
            noise++;
        } else if ((size_t)out[i] < np) {
            p->person = in->persons[out[i]].id;
            joined++;
        } else if (out[i] < n_labels) {
            p->cluster = in->clusters[out[i] - (int32_t)np].id;
        } else {
            p->cluster = ids[out[i] - n_labels];
        }
    }
    int64_t created = 0;
    for (size_t gi = 0; gi < n_new; gi++)
        created += ids[gi] >= st->base;
    fn_batch_set(b, CC_CLUSTERS_CREATED, created);
    fn_batch_set(b, CC_NOISE, noise);
    fn_batch_set(b, CC_JOINED, joined);
    rc = centres(st);
out:
    fn_knn_free(&g);
    free(w);
    free(photo);
    free(label);
    free(weak);
    free(out);
    free(fb);
    free(ids);
    return rc;
}

/* ---- the job ----------------------------------------------------------------------------------
 */

static int cluster_open(fn_batch *b)
{
    cluster_job *st = fn_batch_state(b);
    st->full = fn_batch_bool(b, "full");
    st->run = fn_job_id_of(fn_batch_ctx(b));
    const char *ck = fn_batch_checkpoint(b);
    if (ck) {
        json_error_t jerr;
        json_t *j = json_loads(ck, 0, &jerr);
        json_t *run = json_object_get(j, "run"), *base = json_object_get(j, "base");
        json_t *upto = json_object_get(j, "upto");
        if (json_is_integer(run) && json_is_integer(base) && json_is_integer(upto)) {
            st->run = json_integer_value(run);
            st->base = json_integer_value(base);
            st->upto = json_integer_value(upto);
        }
        json_decref(j);
    }
    st->skip = fn_batch_next_index(b);
    fn_store *s = fn_batch_reader(b);
    if (!s) {
        fn_batch_fail(b, "clustering: %s", fn_engine_errmsg(fn_job_engine(fn_batch_ctx(b))));
        return FN_ERR_DB;
    }
    int rc;
    if ((rc = fn_library_migrate(s)) < 0 ||
        (rc = fn_cl_load(s, st->full, st->run, st->upto, &st->in)) < 0) {
        fn_batch_fail(b, "clustering: %s", fn_store_errmsg(s));
        return rc;
    }
    if (!st->base) st->base = st->in.max_cluster_id + 1;
    if (!st->upto) st->upto = st->in.n ? st->in.faces[st->in.n - 1].id : INT64_MAX;
    fn_batch_set(b, CC_FACES_TOTAL, (int64_t)st->in.n);
    if ((rc = plan(b, st)) < 0) {
        if (rc == FN_ERR_CANCELLED) /* a stop asked while planning: nothing was written */
            return fn_job_should_stop(fn_batch_ctx(b)) == FN_STOP_YIELD ? FN_ERR_YIELDED
                                                                        : FN_ERR_CANCELLED;
        fn_batch_fail(b, "clustering: planning failed: %s", fn_strerror(rc));
        return rc;
    }
    return 0;
}

static void cluster_close(fn_batch *b)
{
    cluster_job *st = fn_batch_state(b);
    fn_cl_input_free(&st->in);
    free(st->plan);
    free(st->touched);
}

static int cluster_next(fn_batch *b, fn_item *it)
{
    cluster_job *st = fn_batch_state(b);
    if (st->skip > 0) { /* a resumed run passes over the faces its predecessor committed */
        st->pos = (size_t)st->skip < st->in.n ? (size_t)st->skip : st->in.n;
        st->skip = 0;
    }
    if (st->pos >= st->in.n) return FN_SOURCE_END;
    char ref[32];
    snprintf(ref, sizeof ref, "face:%lld", (long long)st->plan[st->pos].face);
    if (st->pos + 1 == st->in.n) /* the last face: its batch writes the clusters' sizes */
        for (size_t t = 0; t < st->n_touched; t++)
            fn_batch_observe(b, CH_CLUSTER_SIZE, st->touched[t].weight);
    int rc = fn_item_set_ref(it, ref);
    if (rc < 0) return rc;
    *(size_t *)it->data = st->pos;
    /* "work" (a no-op) rather than "keep": the payload's batch then sets the faces per commit */
    it->work = 1;
    if (fn_cluster_test_hook) fn_cluster_test_hook(st->pos, fn_cluster_test_hook_arg);
    st->pos++;
    return FN_SOURCE_ITEM;
}

static void cluster_process(fn_batch *b, void *slot, fn_item *it)
{
    (void)b, (void)slot, (void)it; /* the plan is made: a face's work is its row (write) */
}

static int cluster_write(fn_batch *b, fn_store_tx *tx, fn_item *const *items, size_t n)
{
    cluster_job *st = fn_batch_state(b);
    fn_cl_place *p = malloc((n ? n : 1) * sizeof *p);
    int64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    size_t m = 0, u = 0;
    int finish = 0, rc = FN_ERR_NOMEM;
    if (!p || !ids) goto out;
    for (size_t i = 0; i < n; i++) {
        size_t at = *(size_t *)items[i]->data;
        if (at + 1 == st->in.n) finish = 1;
        p[m++] = st->plan[at];
        if (st->plan[at].cluster) ids[u++] = st->plan[at].cluster;
    }
    qsort(ids, u, sizeof *ids, cmp_i64);
    size_t v = 0;
    for (size_t i = 0; i < u; i++)
        if (!v || ids[v - 1] != ids[i]) ids[v++] = ids[i];
    rc = fn_cl_write(tx, st->run, ids, v, p, m);
    if (rc == 0 && finish) rc = fn_cl_finish(tx, st->full, st->touched, st->n_touched);
out:
    free(p);
    free(ids);
    return rc;
}

static char *cluster_cursor(fn_batch *b)
{
    cluster_job *st = fn_batch_state(b);
    json_t *j = json_pack("{s:I,s:I,s:I}", "run", (json_int_t)st->run, "base", (json_int_t)st->base,
                          "upto", (json_int_t)st->upto);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    return s;
}

const fn_jobtype fn_cluster_type = {
    .type = "clustering",
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .counters = counters,
    .n_counters = CC_COUNT,
    .histograms = histograms,
    .n_histograms = CH_COUNT,
    .done_counter = CC_FACES_DONE,
    .total_counter = CC_FACES_TOTAL,
    .errors_counter = -1,
    .item_ref = "face:ID",
    .rate_unit = "faces",
    .batch_param = "batch",
    .flush_items = 4096,
    .flush_ms = 1000,
    .gpu_slots = 0,
    /* The plan of a 1M-face library: descriptors (512 MB), the graph and the grouping. */
    .mem_mb = 1500,
    .job_size = sizeof(cluster_job),
    .slot_size = 0,
    .item_size = sizeof(size_t),
    .open = cluster_open,
    .close = cluster_close,
    .next = cluster_next,
    .process = cluster_process,
    .write = cluster_write,
    .cursor = cluster_cursor,
    .summary = cluster_summary,
};
