/* predict.c: the weighted vote of confirmed faces behind a suggestion (see predict.h and
 * docs/predict.md).
 *
 * The model keeps the confirmed faces by person and, within a person, in groups no wider than
 * group_extent (split around the two most distant faces until each part is narrow enough), each
 * with its centre (the mean of its faces) and extent (the largest distance of one of its faces
 * from the centre). A query is measured against every centre in one sgemm block; by the
 * triangle inequality no face of group g is nearer than |q - centre_g| - extent_g, so a group is
 * opened only when that bound is within reach: its person's radius for the vote, then the
 * winner's distance plus margin_full for the runner-up. In 128 dimensions that bound is loose
 * (a query is about 1.0 from other people's centres and an extent is about 0.4, so many groups
 * stay in reach), which is why only the `candidates` nearest centres are opened by default: the
 * faces within a person's radius of a query belong, in practice, to the groups with the nearest
 * centres, and the bench measures the rare difference. */
#include "cluster/predict.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"

struct fn_predict_model {
    fn_predict_opts o;
    size_t n, np, ng;
    float *desc;       /* n x DIM, grouped by person, then by group */
    float *norm;       /* n */
    int64_t *face;     /* n */
    int64_t *person;   /* np, ascending */
    float *radius;     /* np */
    size_t *g_start;   /* ng + 1: group g's faces are [g_start[g], g_start[g + 1]) */
    size_t *g_person;  /* ng: the group's person (an index into person[]) */
    float *centre;     /* ng x DIM */
    float *centre_n;   /* ng */
    float *extent;     /* ng */
    float *vote_reach; /* ng: (radius + extent)^2, the squared centre distance worth voting from */
    float *far_reach;  /* ng: (radius_max + margin_full + extent)^2: beyond, never measured */
};

void fn_predict_opts_default(fn_predict_opts *o)
{
    o->k = 10;
    o->threshold = 0.4f;
    o->radius_min = 0.45f;
    o->radius_max = 0.6f;
    o->radius_default = 0.5f;
    o->radius_slack = 0.15f;
    o->margin_full = 0.2f;
    o->dist_scale = 0.03f;
    o->candidates = 16;
    o->group_extent = 0.4f;
}

static float dist(const float *a, const float *b)
{
    float s = 0;
    for (int k = 0; k < FN_DESC_DIM; k++) {
        float d = a[k] - b[k];
        s += d * d;
    }
    return sqrtf(s);
}

typedef struct ref_order {
    int64_t person;
    size_t i;
} ref_order;

static int cmp_ref(const void *x, const void *y)
{
    const ref_order *a = x, *b = y;
    if (a->person != b->person) return a->person < b->person ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

void fn_predict_model_free(fn_predict_model *m)
{
    if (!m) return;
    free(m->desc);
    free(m->norm);
    free(m->face);
    free(m->person);
    free(m->radius);
    free(m->g_start);
    free(m->g_person);
    free(m->centre);
    free(m->centre_n);
    free(m->extent);
    free(m->vote_reach);
    free(m->far_reach);
    free(m);
}

/* The person's radius from the spread of its faces: the mean pairwise distance (over at most the
 * first 64 faces: enough to measure a spread) plus the slack, clamped. */
static float person_radius(const fn_predict_opts *o, const float *desc, const size_t *idx, size_t n)
{
    if (n < 2) return o->radius_default;
    if (n > 64) n = 64;
    double sum = 0;
    size_t pairs = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++, pairs++)
            sum += dist(desc + idx[i] * FN_DESC_DIM, desc + idx[j] * FN_DESC_DIM);
    float r = (float)(sum / (double)pairs) + o->radius_slack;
    if (r < o->radius_min) r = o->radius_min;
    if (r > o->radius_max) r = o->radius_max;
    return r;
}

/* The groups being built: faces (indices into the caller's arrays) in output order, and where
 * each group starts. */
typedef struct group_build {
    const float *desc;
    float limit;
    size_t *order, n_order;
    size_t *start, *person, ng;
    float *centre, *extent;
} group_build;

static void centre_of(const float *desc, const size_t *idx, size_t n, float *c)
{
    memset(c, 0, FN_DESC_DIM * sizeof *c);
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < FN_DESC_DIM; k++)
            c[k] += desc[idx[i] * FN_DESC_DIM + k];
    for (int k = 0; k < FN_DESC_DIM; k++)
        c[k] /= (float)n;
}

/* Splits faces idx[0..n) of person p in two around its two most distant faces until every part
 * is within `limit` of its centre (or one face, or deep enough), and emits the parts as groups. */
static void split(group_build *g, size_t *idx, size_t n, size_t p, int depth)
{
    float c[FN_DESC_DIM];
    centre_of(g->desc, idx, n, c);
    float ext = 0;
    size_t far = 0;
    for (size_t i = 0; i < n; i++) {
        float d = dist(c, g->desc + idx[i] * FN_DESC_DIM);
        if (d > ext) {
            ext = d;
            far = i;
        }
    }
    if (n > 1 && ext > g->limit && depth < 12) {
        const float *a = g->desc + idx[far] * FN_DESC_DIM, *b = a;
        float best = -1;
        for (size_t i = 0; i < n; i++) {
            float d = dist(a, g->desc + idx[i] * FN_DESC_DIM);
            if (d > best) {
                best = d;
                b = g->desc + idx[i] * FN_DESC_DIM;
            }
        }
        size_t lo = 0; /* faces nearer a first */
        for (size_t i = 0; i < n; i++) {
            const float *x = g->desc + idx[i] * FN_DESC_DIM;
            if (dist(x, a) <= dist(x, b)) {
                size_t t = idx[lo];
                idx[lo++] = idx[i];
                idx[i] = t;
            }
        }
        if (lo > 0 && lo < n) {
            split(g, idx, lo, p, depth + 1);
            split(g, idx + lo, n - lo, p, depth + 1);
            return;
        }
    }
    g->start[g->ng] = g->n_order;
    g->person[g->ng] = p;
    memcpy(g->centre + g->ng * FN_DESC_DIM, c, sizeof c);
    /* a hair of slack: the centre distances come from an sgemm whose rounding differs from the
     * direct sums, and a bound must never drop a face that is within reach */
    g->extent[g->ng++] = ext + 1e-3f;
    memcpy(g->order + g->n_order, idx, n * sizeof *idx);
    g->n_order += n;
}

/* One OpenBLAS thread per caller: the engine runs the chunks of a batch on its own workers, and
 * OpenBLAS's threads would compete with them for the cores (spinning in sched_yield while they
 * wait). The vision code sets the same (src/vision/image.c); it is process-wide. */
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_single(void)
{
    openblas_set_num_threads(1);
}

int fn_predict_model_new(const float *desc, const int64_t *person, const int64_t *face_id, size_t n,
                         const fn_predict_opts *opts, fn_predict_model **out)
{
    *out = NULL;
    pthread_once(&blas_once, blas_single);
    fn_predict_opts o;
    if (opts)
        o = *opts;
    else
        fn_predict_opts_default(&o);
    if (o.k < 1 || o.k > FN_PREDICT_K_MAX || !(o.radius_min > 0) || o.radius_max < o.radius_min ||
        !(o.margin_full > 0) || !(o.dist_scale > 0) || o.candidates < 0 || !(o.group_extent > 0))
        return FN_ERR_INVALID;
    for (size_t i = 0; i < n; i++)
        if (person[i] <= 0) return FN_ERR_INVALID;
    fn_predict_model *m = calloc(1, sizeof *m);
    ref_order *ord = calloc(n ? n : 1, sizeof *ord);
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    group_build g = {.desc = desc, .limit = o.group_extent};
    size_t n1 = n ? n : 1;
    g.order = malloc(n1 * sizeof *g.order);
    g.start = malloc((n + 1) * sizeof *g.start);
    g.person = malloc(n1 * sizeof *g.person);
    g.centre = malloc(n1 * FN_DESC_DIM * sizeof *g.centre);
    g.extent = malloc(n1 * sizeof *g.extent);
    int rc = FN_ERR_NOMEM;
    if (!m || !ord || !idx || !g.order || !g.start || !g.person || !g.centre || !g.extent)
        goto fail;
    m->o = o;
    m->n = n;
    for (size_t i = 0; i < n; i++)
        ord[i] = (ref_order){person[i], i};
    qsort(ord, n, sizeof *ord, cmp_ref);
    size_t np = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || ord[i].person != ord[i - 1].person) np++;
    m->np = np;
    m->person = malloc((np ? np : 1) * sizeof *m->person);
    m->radius = malloc((np ? np : 1) * sizeof *m->radius);
    if (!m->person || !m->radius) goto fail;
    for (size_t i = 0, p = 0; i < n;) {
        size_t j = i;
        while (j < n && ord[j].person == ord[i].person) {
            idx[j - i] = ord[j].i;
            j++;
        }
        m->person[p] = ord[i].person;
        m->radius[p] = person_radius(&o, desc, idx, j - i);
        split(&g, idx, j - i, p, 0);
        p++;
        i = j;
    }
    size_t ng = m->ng = g.ng;
    g.start[ng] = n;
    m->desc = malloc(n1 * FN_DESC_DIM * sizeof *m->desc);
    m->norm = malloc(n1 * sizeof *m->norm);
    m->face = malloc(n1 * sizeof *m->face);
    m->centre_n = malloc((ng ? ng : 1) * sizeof *m->centre_n);
    m->vote_reach = malloc((ng ? ng : 1) * sizeof *m->vote_reach);
    m->far_reach = malloc((ng ? ng : 1) * sizeof *m->far_reach);
    if (!m->desc || !m->norm || !m->face || !m->centre_n || !m->vote_reach || !m->far_reach)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        memcpy(m->desc + i * FN_DESC_DIM, desc + g.order[i] * FN_DESC_DIM,
               FN_DESC_DIM * sizeof(float));
        m->face[i] = face_id ? face_id[g.order[i]] : 0;
    }
    fn_l2_norms(m->desc, n, m->norm);
    m->g_start = g.start;
    m->g_person = g.person;
    m->centre = g.centre;
    m->extent = g.extent;
    g.start = g.person = NULL;
    g.centre = g.extent = NULL;
    fn_l2_norms(m->centre, ng, m->centre_n);
    for (size_t k = 0; k < ng; k++) {
        float v = m->radius[m->g_person[k]] + m->extent[k];
        float f = o.radius_max + o.margin_full + m->extent[k];
        m->vote_reach[k] = v * v;
        m->far_reach[k] = f * f;
    }
    free(ord);
    free(idx);
    free(g.order);
    *out = m;
    return 0;
fail:
    free(ord);
    free(idx);
    free(g.order);
    free(g.start);
    free(g.person);
    free(g.centre);
    free(g.extent);
    fn_predict_model_free(m);
    return rc;
}

size_t fn_predict_model_persons(const fn_predict_model *m)
{
    return m ? m->np : 0;
}

static long find_person(const fn_predict_model *m, int64_t person)
{
    size_t lo = 0, hi = m->np;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->person[mid] < person)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->np && m->person[lo] == person ? (long)lo : -1;
}

float fn_predict_model_radius(const fn_predict_model *m, int64_t person)
{
    long p = m ? find_person(m, person) : -1;
    return p < 0 ? -1.0f : m->radius[p];
}

/* ---- one query ------------------------------------------------------------------------------ */

typedef struct query_state {
    const fn_predict_model *m;
    const float *q;
    float qn;
    int k;
    size_t nt; /* the k nearest voters so far, nearest first */
    float td[FN_PREDICT_K_MAX];
    size_t tp[FN_PREDICT_K_MAX], tf[FN_PREDICT_K_MAX];
    /* the nearest measured face of the two nearest distinct persons (p = SIZE_MAX: none) */
    float d1, d2;
    size_t p1, p2;
} query_state;

static void best_two(query_state *s, float d, size_t p)
{
    if (p == s->p1) {
        if (d < s->d1) s->d1 = d;
    } else if (d < s->d1) {
        s->d2 = s->d1;
        s->p2 = s->p1;
        s->d1 = d;
        s->p1 = p;
    } else if (d < s->d2) {
        s->d2 = d;
        s->p2 = p;
    }
}

/* Measures every face of group g: the runner-up tracking, and the voters when `vote`. */
static void measure(query_state *s, size_t g, int vote)
{
    const fn_predict_model *m = s->m;
    size_t p = m->g_person[g];
    float r = m->radius[p];
    for (size_t j = m->g_start[g]; j < m->g_start[g + 1]; j++) {
        const float *x = m->desc + j * FN_DESC_DIM;
        /* eight partial sums: independent chains the compiler can keep in vector registers */
        float acc[8] = {0};
        for (int k = 0; k < FN_DESC_DIM; k += 8)
            for (int u = 0; u < 8; u++)
                acc[u] += s->q[k + u] * x[k + u];
        float dot =
            ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        float d2 = s->qn + m->norm[j] - 2 * dot;
        float d = d2 > 0 ? sqrtf(d2) : 0;
        best_two(s, d, p);
        if (!vote || d > r) continue;
        if (s->nt == (size_t)s->k && d >= s->td[s->nt - 1]) continue;
        size_t at = s->nt < (size_t)s->k ? s->nt++ : s->nt - 1;
        while (at > 0 && s->td[at - 1] > d) {
            s->td[at] = s->td[at - 1];
            s->tp[at] = s->tp[at - 1];
            s->tf[at] = s->tf[at - 1];
            at--;
        }
        s->td[at] = d;
        s->tp[at] = p;
        s->tf[at] = j;
    }
}

static int excluded(const fn_predict_model *m, size_t g, const int64_t *ex, size_t nex)
{
    for (size_t i = 0; i < nex; i++)
        if (ex[i] == m->person[m->g_person[g]]) return 1;
    return 0;
}

static float logistic(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

/* The groups a query may measure: those the bound does not rule out, and of those (unless
 * candidates is 0) the nearest `candidates` centres. cand has room for every group. */
static size_t candidates(const fn_predict_model *m, const float *d2c, const int64_t *ex, size_t nex,
                         size_t *cand)
{
    size_t c = 0, cap = m->o.candidates ? (size_t)m->o.candidates : m->ng;
    float worst = INFINITY; /* the farthest kept centre once the list is full */
    for (size_t g = 0; g < m->ng; g++) {
        float d = d2c[g];
        if (d >= worst || d > m->far_reach[g]) continue;
        if (nex && excluded(m, g, ex, nex)) continue;
        size_t at = c < cap ? c++ : c - 1;
        if (m->o.candidates)
            while (at > 0 && d2c[cand[at - 1]] > d) {
                cand[at] = cand[at - 1];
                at--;
            }
        cand[at] = g;
        if (c == cap && m->o.candidates) worst = d2c[cand[c - 1]];
    }
    return c;
}

/* The answer for one query, given its squared distances to every group centre (d2c[ng]). cand
 * (ng) and opened (ng) are scratch. */
static void predict_one(const fn_predict_model *m, const float *q, float qn, const float *d2c,
                        const int64_t *ex, size_t nex, size_t *cand, unsigned char *opened,
                        fn_prediction *out)
{
    const fn_predict_opts *o = &m->o;
    query_state s = {.m = m, .q = q, .qn = qn, .k = o->k};
    s.d1 = s.d2 = INFINITY;
    s.p1 = s.p2 = SIZE_MAX;
    memset(out, 0, sizeof *out);
    out->distance = -1;
    size_t nc = candidates(m, d2c, ex, nex, cand);
    for (size_t c = 0; c < nc; c++) {
        size_t g = cand[c];
        opened[c] = d2c[g] <= m->vote_reach[g];
        if (opened[c]) measure(&s, g, 1);
    }
    if (s.nt == 0) return; /* no confirmed face within its person's radius: unknown */

    /* The vote: weight 1 - (d / r)^2, from 1 at the face to 0 at the person's radius. */
    size_t vp[FN_PREDICT_K_MAX];
    float vs[FN_PREDICT_K_MAX], vd[FN_PREDICT_K_MAX];
    size_t vf[FN_PREDICT_K_MAX], nv = 0;
    float total = 0;
    for (size_t t = 0; t < s.nt; t++) {
        float r = m->radius[s.tp[t]], x = s.td[t] / r;
        float w = 1.0f - x * x;
        if (w < 1e-6f) w = 1e-6f; /* a face on the radius still counts a little */
        total += w;
        size_t v = 0;
        while (v < nv && vp[v] != s.tp[t])
            v++;
        if (v == nv) { /* voters come nearest first: the first is the person's nearest face */
            vp[nv] = s.tp[t];
            vs[nv] = 0;
            vd[nv] = s.td[t];
            vf[nv++] = s.tf[t];
        }
        vs[v] += w;
    }
    size_t win = 0;
    for (size_t v = 1; v < nv; v++)
        if (vs[v] > vs[win] || (vs[v] == vs[win] && vd[v] < vd[win])) win = v;
    size_t wp = vp[win];
    float d = vd[win];

    /* The runner-up: the nearest face of any other person, looked for up to d + margin_full.
     * The groups opened for the vote are measured already; any other could still hide a face
     * nearer than the runner-up found so far (beyond its own person's radius, but within the
     * winner's), so each one whose bound allows that is opened too. */
    float rd = s.p1 == wp ? s.d2 : s.d1;
    float reach = d + o->margin_full;
    if (rd < reach) reach = rd;
    for (size_t c = 0; c < nc; c++) {
        size_t g = cand[c];
        if (opened[c] || m->g_person[g] == wp) continue;
        float lim = reach + m->extent[g];
        if (d2c[g] <= lim * lim) measure(&s, g, 0);
    }
    rd = s.p1 == wp ? s.d2 : s.d1;
    float margin = rd - d;
    if (!(margin < o->margin_full)) margin = o->margin_full;

    float r = m->radius[wp];
    float c_dist = logistic(((r - d) - 1.5f * o->dist_scale) / o->dist_scale);
    float c_margin = 0.5f + margin / (2 * o->margin_full);
    if (c_margin < 0) c_margin = 0;
    if (c_margin > 1) c_margin = 1;
    float share = vs[win] / total;
    float conf = c_dist * c_margin * share;
    if (conf > 1) conf = 1;
    out->candidate = m->person[wp];
    out->confidence = conf;
    out->distance = d;
    out->margin = margin;
    out->support_face = m->face[vf[win]];
    out->person = conf >= o->threshold ? m->person[wp] : 0;
}

/* ---- the same-photo rule -------------------------------------------------------------------- */

typedef struct photo_order {
    int64_t photo, person;
    float conf;
    size_t i;
} photo_order;

static int cmp_photo(const void *x, const void *y)
{
    const photo_order *a = x, *b = y;
    if (a->photo != b->photo) return a->photo < b->photo ? -1 : 1;
    if (a->person != b->person) return a->person < b->person ? -1 : 1;
    if (a->conf != b->conf) return a->conf > b->conf ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* Two faces of one photo are two people: of the queries of one photo suggested as one person,
 * the most confident keeps the suggestion. */
static int one_per_photo(const int64_t *photo, size_t nq, fn_prediction *out)
{
    size_t n = 0;
    for (size_t i = 0; i < nq; i++)
        n += out[i].person != 0;
    if (n < 2) return 0;
    photo_order *o = malloc(n * sizeof *o);
    if (!o) return FN_ERR_NOMEM;
    n = 0;
    for (size_t i = 0; i < nq; i++)
        if (out[i].person) o[n++] = (photo_order){photo[i], out[i].person, out[i].confidence, i};
    qsort(o, n, sizeof *o, cmp_photo);
    for (size_t i = 1; i < n; i++)
        if (o[i].photo == o[i - 1].photo && o[i].person == o[i - 1].person) out[o[i].i].person = 0;
    free(o);
    return 0;
}

int fn_predict_run(const fn_predict_model *m, const float *q, size_t nq, const int64_t *photo,
                   const size_t *excl_off, const int64_t *excl_person, fn_prediction *out)
{
    if (nq == 0) return 0;
    size_t ng = m->ng;
    if (ng == 0) {
        for (size_t i = 0; i < nq; i++) {
            memset(&out[i], 0, sizeof out[i]);
            out[i].distance = -1;
        }
        return 0;
    }
    /* Queries per sgemm block: 64, fewer when there are very many groups (the block of centre
     * distances stays under 16 MB). */
    size_t qb = ((size_t)4 << 20) / ng;
    if (qb > 64) qb = 64;
    if (qb < 1) qb = 1;
    float *qn = malloc(qb * sizeof *qn);
    float *d2c = malloc(qb * ng * sizeof *d2c);
    size_t *cand = malloc(ng * sizeof *cand);
    unsigned char *opened = malloc(ng);
    int rc = 0;
    if (!qn || !d2c || !cand || !opened) {
        rc = FN_ERR_NOMEM;
        goto out;
    }
    for (size_t b0 = 0; b0 < nq; b0 += qb) {
        size_t nb = nq - b0 < qb ? nq - b0 : qb;
        const float *qblk = q + b0 * FN_DESC_DIM;
        fn_l2_norms(qblk, nb, qn);
        fn_l2sq_block(qblk, qn, nb, m->centre, m->centre_n, ng, d2c, ng);
        for (size_t i = 0; i < nb; i++) {
            size_t g = b0 + i;
            const int64_t *ex = NULL;
            size_t nex = 0;
            if (excl_off && excl_person) {
                ex = excl_person + excl_off[g];
                nex = excl_off[g + 1] - excl_off[g];
            }
            predict_one(m, qblk + i * FN_DESC_DIM, qn[i], d2c + i * ng, ex, nex, cand, opened,
                        &out[g]);
        }
    }
    if (photo) rc = one_per_photo(photo, nq, out);
out:
    free(qn);
    free(d2c);
    free(cand);
    free(opened);
    return rc;
}
