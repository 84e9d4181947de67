/* cluster.c: the constrained shortest-edge-first grouping (see cluster.h for the rules). */
#include "cluster/cluster.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/l2.h"
#include "facenames/error.h"

typedef struct edge {
    float d2;
    int32_t a, b;
} edge;

typedef struct uf {
    const fn_cluster_in *in;
    int32_t *parent;
    int32_t *size;    /* members (points) of a root's group */
    int32_t *next;    /* the members of a group as a list: head = root, ... */
    int32_t *tail;    /* a root's last member */
    int32_t *label;   /* a root's label, -1 none */
    int32_t *nforbid; /* a root's members that have forbidden labels */
    int32_t *slot;    /* a root's mean-sum slot in `sums`, -1: a single point (its descriptor) */
    double *w;        /* a root's weight (faces it stands for) */
    double *sq;       /* a root's weighted sum of squared descriptor norms */
    float *sums;      /* slot x FN_DESC_DIM: weighted sums of descriptors */
    size_t n_slots, cap_slots;
    int32_t *free_slots;
    size_t n_free;
    /* per point: the other points of its photo, and its forbidden labels */
    size_t *sib_off;
    int32_t *sib;
    size_t *fb_off;
    int32_t *fb;
} uf;

static int32_t find(uf *u, int32_t x)
{
    while (u->parent[x] != x) {
        u->parent[x] = u->parent[u->parent[x]];
        x = u->parent[x];
    }
    return x;
}

static float point_weight(const uf *u, int32_t i)
{
    return u->in->weight ? u->in->weight[i] : 1.0f;
}

/* The group's weighted sum of descriptors: its slot, or its one point. */
static void group_sum(const uf *u, int32_t r, float *out)
{
    if (u->slot[r] >= 0) {
        memcpy(out, u->sums + (size_t)u->slot[r] * FN_DESC_DIM, FN_DESC_DIM * sizeof *out);
        return;
    }
    const float *x = u->in->desc + (size_t)r * FN_DESC_DIM;
    float w = point_weight(u, r);
    for (int c = 0; c < FN_DESC_DIM; c++)
        out[c] = x[c] * w;
}

/* Whether a photo has a face in each of the groups ra (walked) and rb. */
static int photo_clash(uf *u, int32_t ra, int32_t rb)
{
    for (int32_t m = ra; m >= 0; m = u->next[m])
        for (size_t s = u->sib_off[m]; s < u->sib_off[m + 1]; s++)
            if (find(u, u->sib[s]) == rb) return 1;
    return 0;
}

/* Whether a member of the unlabelled group `free_root` is forbidden `label`. */
static int forbidden(uf *u, int32_t free_root, int32_t label)
{
    if (!u->nforbid[free_root]) return 0;
    for (int32_t m = free_root; m >= 0; m = u->next[m])
        for (size_t s = u->fb_off[m]; s < u->fb_off[m + 1]; s++)
            if (u->fb[s] == label) return 1;
    return 0;
}

static int alloc_slot(uf *u, int32_t *slot)
{
    if (u->n_free) {
        *slot = u->free_slots[--u->n_free];
        return 0;
    }
    if (u->n_slots == u->cap_slots) {
        size_t cap = u->cap_slots ? u->cap_slots * 2 : 1024;
        float *p = realloc(u->sums, cap * FN_DESC_DIM * sizeof *p);
        if (!p) return FN_ERR_NOMEM;
        u->sums = p;
        int32_t *f = realloc(u->free_slots, cap * sizeof *f);
        if (!f) return FN_ERR_NOMEM;
        u->free_slots = f;
        u->cap_slots = cap;
    }
    *slot = (int32_t)u->n_slots++;
    return 0;
}

/* Tries the edge (a, b): 1 merged, 0 refused or already one group, < 0 an error. */
static int try_join(uf *u, const fn_cluster_params *p, int32_t a, int32_t b)
{
    int32_t ra = find(u, a), rb = find(u, b);
    if (ra == rb) return 0;
    if (u->in->weak && u->in->weak[a] && u->in->weak[b]) return 0;
    if (u->label[ra] >= 0 && u->label[rb] >= 0) return 0;
    if (u->label[ra] >= 0 && forbidden(u, rb, u->label[ra])) return 0;
    if (u->label[rb] >= 0 && forbidden(u, ra, u->label[rb])) return 0;
    /* The chaining bound, by average linkage: the mean squared distance between the faces of
     * the two groups is |mA - mB|^2 + varA + varB = sqA/wA + sqB/wB - 2 mA.mB, from sums the
     * groups keep, so the check is O(dim) however large the groups are. */
    float sa[FN_DESC_DIM], sb[FN_DESC_DIM];
    group_sum(u, ra, sa);
    group_sum(u, rb, sb);
    double wa = u->w[ra], wb = u->w[rb], dot = 0;
    for (int c = 0; c < FN_DESC_DIM; c++)
        dot += (double)sa[c] * sb[c];
    double avg = u->sq[ra] / wa + u->sq[rb] / wb - 2 * dot / (wa * wb);
    if (avg >= (double)p->link * p->link) return 0;
    /* the same-photo rule: walk the smaller group */
    if (u->size[ra] > u->size[rb] ? photo_clash(u, rb, ra) : photo_clash(u, ra, rb)) return 0;
    /* union by size; the root keeps the merged state */
    if (u->size[ra] < u->size[rb]) {
        int32_t t = ra;
        ra = rb;
        rb = t;
        float tmp[FN_DESC_DIM];
        memcpy(tmp, sa, sizeof tmp);
        memcpy(sa, sb, sizeof tmp);
        memcpy(sb, tmp, sizeof tmp);
    }
    if (u->slot[ra] < 0) {
        int32_t s;
        if (alloc_slot(u, &s) < 0) return FN_ERR_NOMEM;
        u->slot[ra] = s;
    }
    float *dst = u->sums + (size_t)u->slot[ra] * FN_DESC_DIM;
    for (int c = 0; c < FN_DESC_DIM; c++)
        dst[c] = sa[c] + sb[c];
    if (u->slot[rb] >= 0) u->free_slots[u->n_free++] = u->slot[rb];
    u->slot[rb] = -1;
    u->parent[rb] = ra;
    u->size[ra] += u->size[rb];
    u->w[ra] += u->w[rb];
    u->sq[ra] += u->sq[rb];
    u->nforbid[ra] += u->nforbid[rb];
    if (u->label[ra] < 0) u->label[ra] = u->label[rb];
    u->next[u->tail[ra]] = rb;
    u->tail[ra] = u->tail[rb];
    return 1;
}

/* Stable LSD radix sort of the edges by distance (non-negative floats order as their bits). */
static int sort_edges(edge *e, size_t n)
{
    edge *tmp = malloc((n ? n : 1) * sizeof *tmp);
    if (!tmp) return FN_ERR_NOMEM;
    edge *src = e, *dst = tmp;
    for (int shift = 0; shift < 32; shift += 8) {
        size_t cnt[257] = {0};
        for (size_t i = 0; i < n; i++) {
            uint32_t k;
            memcpy(&k, &src[i].d2, sizeof k);
            cnt[((k >> shift) & 0xff) + 1]++;
        }
        for (int b = 0; b < 256; b++)
            cnt[b + 1] += cnt[b];
        for (size_t i = 0; i < n; i++) {
            uint32_t k;
            memcpy(&k, &src[i].d2, sizeof k);
            dst[cnt[(k >> shift) & 0xff]++] = src[i];
        }
        edge *t = src;
        src = dst;
        dst = t;
    }
    /* four passes: the result is back in e */
    free(tmp);
    return 0;
}

/* The graph's edges, each pair once (a row's neighbour that lists it back is taken from the row
 * of the smaller index). */
static int collect_edges(const fn_knn *g, size_t n, edge **out, size_t *n_out)
{
    size_t cap = g->n * (size_t)g->k, m = 0;
    edge *e = malloc((cap ? cap : 1) * sizeof *e);
    if (!e) return FN_ERR_NOMEM;
    for (size_t i = 0; i < g->n; i++) {
        const int32_t *row = g->idx + i * (size_t)g->k;
        for (int s = 0; s < g->k && row[s] >= 0; s++) {
            int32_t j = row[s];
            if ((size_t)j == i || (size_t)j >= n) continue;
            if ((size_t)j < i && (size_t)j < g->n) {
                /* j's row has it too when j lists i: taken there */
                const int32_t *rj = g->idx + (size_t)j * g->k;
                int listed = 0;
                for (int t = 0; t < g->k && rj[t] >= 0; t++)
                    if ((size_t)rj[t] == i) {
                        listed = 1;
                        break;
                    }
                if (listed) continue;
            }
            e[m].d2 = g->d2[i * (size_t)g->k + s];
            e[m].a = (int32_t)i;
            e[m].b = j;
            m++;
        }
    }
    *out = e;
    *n_out = m;
    return 0;
}

typedef struct photo_pt {
    int64_t photo;
    int32_t point;
} photo_pt;

static int cmp_photo(const void *x, const void *y)
{
    const photo_pt *a = x, *b = y;
    if (a->photo != b->photo) return a->photo < b->photo ? -1 : 1;
    return (a->point > b->point) - (a->point < b->point);
}

/* The siblings of each point (the other points of its photo), as CSR. */
static int build_siblings(uf *u)
{
    size_t n = u->in->n;
    u->sib_off = calloc(n + 1, sizeof *u->sib_off);
    if (!u->sib_off) return FN_ERR_NOMEM;
    if (!u->in->photo) {
        u->sib = malloc(1);
        return u->sib ? 0 : FN_ERR_NOMEM;
    }
    photo_pt *order = malloc((n ? n : 1) * sizeof *order);
    if (!order) return FN_ERR_NOMEM;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (u->in->photo[i]) order[m++] = (photo_pt){u->in->photo[i], (int32_t)i};
    qsort(order, m, sizeof *order, cmp_photo);
    size_t total = 0;
    for (size_t a = 0, b; a < m; a = b) {
        for (b = a; b < m && order[b].photo == order[a].photo; b++)
            ;
        for (size_t i = a; i < b; i++)
            u->sib_off[order[i].point + 1] = b - a - 1;
        total += (b - a) * (b - a - 1);
    }
    for (size_t i = 0; i < n; i++)
        u->sib_off[i + 1] += u->sib_off[i];
    u->sib = malloc((total ? total : 1) * sizeof *u->sib);
    if (!u->sib) {
        free(order);
        return FN_ERR_NOMEM;
    }
    for (size_t a = 0, b; a < m; a = b) {
        for (b = a; b < m && order[b].photo == order[a].photo; b++)
            ;
        for (size_t i = a; i < b; i++) {
            size_t w = u->sib_off[order[i].point];
            for (size_t j = a; j < b; j++)
                if (j != i) u->sib[w++] = order[j].point;
        }
    }
    free(order);
    return 0;
}

static int build_forbid(uf *u)
{
    size_t n = u->in->n;
    u->fb_off = calloc(n + 1, sizeof *u->fb_off);
    u->fb = malloc((u->in->n_forbid ? u->in->n_forbid : 1) * sizeof *u->fb);
    if (!u->fb_off || !u->fb) return FN_ERR_NOMEM;
    for (size_t i = 0; i < u->in->n_forbid; i++) {
        int32_t pt = u->in->forbid[i].point;
        if (pt < 0 || (size_t)pt >= n) return FN_ERR_INVALID;
        u->fb_off[pt + 1]++;
    }
    for (size_t i = 0; i < n; i++)
        u->fb_off[i + 1] += u->fb_off[i];
    size_t *pos = malloc((n + 1) * sizeof *pos);
    if (!pos) return FN_ERR_NOMEM;
    memcpy(pos, u->fb_off, (n + 1) * sizeof *pos);
    for (size_t i = 0; i < u->in->n_forbid; i++)
        u->fb[pos[u->in->forbid[i].point]++] = u->in->forbid[i].label;
    free(pos);
    return 0;
}

static void uf_free(uf *u)
{
    free(u->parent);
    free(u->size);
    free(u->next);
    free(u->tail);
    free(u->label);
    free(u->nforbid);
    free(u->slot);
    free(u->w);
    free(u->sq);
    free(u->sums);
    free(u->free_slots);
    free(u->sib_off);
    free(u->sib);
    free(u->fb_off);
    free(u->fb);
}

int fn_cluster_run(const fn_cluster_in *in, const fn_knn *g, const fn_cluster_params *p,
                   int32_t n_labels, int32_t *out, size_t *n_new)
{
    size_t n = in->n;
    *n_new = 0;
    if (g->n > n || p->min_faces < 1 || !(p->link > 0)) return FN_ERR_INVALID;
    uf u = {.in = in};
    int rc = FN_ERR_NOMEM;
    size_t nn = n ? n : 1;
    u.parent = malloc(nn * sizeof *u.parent);
    u.size = malloc(nn * sizeof *u.size);
    u.next = malloc(nn * sizeof *u.next);
    u.tail = malloc(nn * sizeof *u.tail);
    u.label = malloc(nn * sizeof *u.label);
    u.nforbid = malloc(nn * sizeof *u.nforbid);
    u.slot = malloc(nn * sizeof *u.slot);
    u.w = malloc(nn * sizeof *u.w);
    u.sq = malloc(nn * sizeof *u.sq);
    edge *e = NULL;
    int32_t *first = NULL;
    if (!u.parent || !u.size || !u.next || !u.tail || !u.label || !u.nforbid || !u.slot || !u.w ||
        !u.sq)
        goto out;
    if ((rc = build_siblings(&u)) < 0 || (rc = build_forbid(&u)) < 0) goto out;
    for (size_t i = 0; i < n; i++) {
        u.parent[i] = (int32_t)i;
        u.size[i] = 1;
        u.next[i] = -1;
        u.tail[i] = (int32_t)i;
        u.label[i] = in->label ? in->label[i] : -1;
        if (u.label[i] >= n_labels) {
            rc = FN_ERR_INVALID;
            goto out;
        }
        u.nforbid[i] = u.fb_off[i + 1] > u.fb_off[i];
        u.slot[i] = -1;
        u.w[i] = point_weight(&u, (int32_t)i);
        /* a centre point's faces are taken to sit at the centre (their spread is unknown) */
        const float *x = in->desc + i * FN_DESC_DIM;
        double q = 0;
        for (int c = 0; c < FN_DESC_DIM; c++)
            q += (double)x[c] * x[c];
        u.sq[i] = q * u.w[i];
    }
    /* Points of one label start as one group (no rule is checked: a person's faces are the
     * person's, whatever they look like). */
    if (in->label && n_labels > 0) {
        if (!(first = malloc((size_t)n_labels * sizeof *first))) goto out;
        for (int32_t l = 0; l < n_labels; l++)
            first[l] = -1;
        for (size_t i = 0; i < n; i++) {
            int32_t l = in->label[i];
            if (l < 0) continue;
            if (first[l] < 0) {
                first[l] = (int32_t)i;
                continue;
            }
            int32_t ra = find(&u, first[l]), rb = (int32_t)i;
            float sa[FN_DESC_DIM], sb[FN_DESC_DIM];
            group_sum(&u, ra, sa);
            group_sum(&u, rb, sb);
            if (u.slot[ra] < 0) {
                int32_t s;
                if ((rc = alloc_slot(&u, &s)) < 0) goto out;
                u.slot[ra] = s;
            }
            float *dst = u.sums + (size_t)u.slot[ra] * FN_DESC_DIM;
            for (int c = 0; c < FN_DESC_DIM; c++)
                dst[c] = sa[c] + sb[c];
            u.parent[rb] = ra;
            u.size[ra] += 1;
            u.w[ra] += u.w[rb];
            u.sq[ra] += u.sq[rb];
            u.nforbid[ra] += u.nforbid[rb];
            u.next[u.tail[ra]] = rb;
            u.tail[ra] = rb;
        }
    }
    size_t ne = 0;
    if ((rc = collect_edges(g, n, &e, &ne)) < 0 || (rc = sort_edges(e, ne)) < 0) goto out;
    for (size_t i = 0; i < ne; i++)
        if ((rc = try_join(&u, p, e[i].a, e[i].b)) < 0) goto out;
    /* The groups: a label's, a new cluster's (enough good faces), or noise. New groups are
     * numbered by their smallest point, so the numbering depends only on the input. */
    int32_t *good = u.size; /* reused: the root's count of good faces */
    for (size_t i = 0; i < n; i++)
        if (u.parent[i] == (int32_t)i) good[i] = 0;
    for (size_t i = 0; i < n; i++) {
        int is_face = !in->photo || in->photo[i] != 0;
        if (is_face && !(in->weak && in->weak[i])) good[find(&u, (int32_t)i)]++;
    }
    int32_t *num = u.tail; /* reused: the root's new group number, -1 none yet */
    for (size_t i = 0; i < n; i++)
        num[i] = -1;
    int32_t next_num = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t r = find(&u, (int32_t)i);
        if (u.label[r] >= 0) {
            out[i] = u.label[r];
        } else if (good[r] >= p->min_faces) {
            if (num[r] < 0) num[r] = next_num++;
            out[i] = n_labels + num[r];
        } else {
            out[i] = -1;
        }
    }
    *n_new = (size_t)next_num;
    rc = 0;
out:
    free(first);
    free(e);
    uf_free(&u);
    return rc;
}
