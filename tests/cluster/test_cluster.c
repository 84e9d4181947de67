/* test_cluster.c: the neighbour search and the grouping rules (src/cluster), on generated
 * descriptors: every distance kernel this CPU can run against double precision, the index's recall
 * against exact search, the same-photo rule, forbidden labels (cannot-links), the chaining bound,
 * and fixed groups never merged. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster/cluster.h"
#include "cluster/knn.h"
#include "cluster/l2.h"

#define D FN_DESC_DIM

static uint64_t rng = 12345;

static double gauss(void)
{
    double u, v;
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    u = ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    v = ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* n faces around n / per identity centres: same-person distances about 0.35, others about 0.8. */
static float *people(size_t n, size_t per, int32_t *ident)
{
    float *x = malloc(n * D * sizeof *x), c[D];
    for (size_t i = 0; i < n; i++) {
        if (i % per == 0)
            for (int k = 0; k < D; k++)
                c[k] = (float)(0.05 * gauss());
        ident[i] = (int32_t)(i / per);
        for (int k = 0; k < D; k++)
            x[i * D + k] = c[k] + (float)(0.022 * gauss());
    }
    return x;
}

static void test_index_recall(void **state)
{
    (void)state;
    size_t n = 6000;
    int32_t *ident = malloc(n * sizeof *ident);
    float *x = people(n, 12, ident);
    fn_knn_opts o = {.radius = 0.5f, .k = 8, .method = 1, .seed = 3};
    fn_knn ex, ix;
    assert_int_equal(fn_knn_build(x, n, &o, NULL, &ex), 0);
    o.method = 2;
    assert_int_equal(fn_knn_build(x, n, &o, NULL, &ix), 0);
    size_t total = 0, found = 0;
    for (size_t i = 0; i < n; i++)
        for (int a = 0; a < 8 && ex.idx[i * 8 + a] >= 0; a++) {
            total++;
            for (int b = 0; b < 8 && ix.idx[i * 8 + b] >= 0; b++)
                if (ix.idx[i * 8 + b] == ex.idx[i * 8 + a]) {
                    found++;
                    break;
                }
            /* exact search only keeps pairs below the radius */
            assert_true(ex.d2[i * 8 + a] < 0.25f);
        }
    /* every face has its 11 same-person faces well inside the radius: exact finds 8 each */
    assert_int_equal(total, n * 8);
    double recall = (double)found / (double)total;
    assert_true(recall >= 0.99);
    fn_knn_free(&ex);
    fn_knn_free(&ix);
    free(x);
    free(ident);
}

static void test_exact_is_exact(void **state)
{
    (void)state;
    size_t n = 300;
    int32_t *ident = malloc(n * sizeof *ident);
    float *x = people(n, 10, ident);
    fn_knn_opts o = {.radius = 0.5f, .k = 4, .method = 1};
    fn_knn g;
    assert_int_equal(fn_knn_build(x, n, &o, NULL, &g), 0);
    /* compare with a plain loop: the nearest other face of each */
    for (size_t i = 0; i < n; i++) {
        double best = INFINITY;
        size_t bj = 0;
        for (size_t j = 0; j < n; j++) {
            if (j == i) continue;
            double s = 0;
            for (int k = 0; k < D; k++)
                s += (double)(x[i * D + k] - x[j * D + k]) * (x[i * D + k] - x[j * D + k]);
            if (s < best) {
                best = s;
                bj = j;
            }
        }
        assert_int_equal(g.idx[i * 4], (int32_t)bj);
        assert_true(fabs(g.d2[i * 4] - best) < 1e-4);
    }
    fn_knn_free(&g);
    free(x);
    free(ident);
}

/* One distance kernel (forced by fn_l2_set_isa) against a double-precision loop, over block
 * shapes that hit every edge of the micro-tiles: query counts not a multiple of 8 or 6, reference
 * counts not a multiple of 32 or 16, ldd > nr (the columns past nr must stay untouched), and
 * references equal to a query (distance 0: the clamp must keep it >= 0). */
static void check_kernel(int level)
{
    if (fn_l2_set_isa(level) != level) {
        fn_l2_set_isa(-1);
        skip();
    }
    static const size_t nqs[] = {1, 5, 6, 7, 8, 9, 13, 64, 71};
    static const size_t nrs[] = {1, 3, 15, 16, 17, 31, 32, 33, 100, 257};
    const size_t maxq = 71, maxr = 257, pad = 5, ldd = maxr + pad;
    int32_t *ident = malloc((maxq + maxr) * sizeof *ident);
    float *x = people(maxq + maxr, 7, ident);
    float *q = x, *r = x + maxq * D;
    /* a few references are exact copies of queries */
    for (size_t j = 0; j < maxr; j += 11)
        memcpy(r + j * D, q + (j % maxq) * D, D * sizeof *r);
    float *qn = malloc(maxq * sizeof *qn), *rn = malloc(maxr * sizeof *rn);
    float *d = malloc(maxq * ldd * sizeof *d);
    fn_l2_norms(q, maxq, qn);
    fn_l2_norms(r, maxr, rn);
    for (size_t a = 0; a < sizeof nqs / sizeof *nqs; a++)
        for (size_t b = 0; b < sizeof nrs / sizeof *nrs; b++) {
            size_t nq = nqs[a], nr = nrs[b];
            for (size_t i = 0; i < maxq * ldd; i++)
                d[i] = -7.0f;
            fn_l2sq_block(q, qn, nq, r, rn, nr, d, ldd);
            for (size_t i = 0; i < maxq; i++)
                for (size_t j = 0; j < ldd; j++) {
                    float got = d[i * ldd + j];
                    if (i >= nq || j >= nr) {
                        assert_true(got == -7.0f);
                        continue;
                    }
                    double s = 0;
                    for (int k = 0; k < D; k++) {
                        double t = (double)q[i * D + k] - (double)r[j * D + k];
                        s += t * t;
                    }
                    /* float rounding of |q|^2 + |r|^2 - 2 q.r grows with the norms */
                    double tol = 1e-5 * (qn[i] + rn[j]) + 1e-7;
                    assert_true(got >= 0);
                    if (fabs(got - s) > tol)
                        fail_msg("level %d nq %zu nr %zu: d[%zu][%zu] = %.9g, exact %.9g", level,
                                 nq, nr, i, j, (double)got, s);
                }
        }
    fn_l2_set_isa(-1);
    free(d);
    free(rn);
    free(qn);
    free(x);
    free(ident);
}

/* Back to the CPU's best kernel, also after a failed check (which leaves its level forced). */
static int l2_reset(void **state)
{
    (void)state;
    fn_l2_set_isa(-1);
    return 0;
}

static void test_l2_sgemm(void **state)
{
    (void)state;
    check_kernel(FN_L2_SGEMM);
}

static void test_l2_avx2(void **state)
{
    (void)state;
    check_kernel(FN_L2_AVX2);
}

static void test_l2_avx512(void **state)
{
    (void)state;
    check_kernel(FN_L2_AVX512);
}

/* Runs the grouping over x with exact neighbours. */
static size_t group(const fn_cluster_in *in, float link, int32_t n_labels, int32_t *out)
{
    fn_knn_opts o = {.radius = 0.5f, .k = 16, .method = 1};
    fn_knn g;
    assert_int_equal(fn_knn_query(in->desc, in->n, in->desc, in->n, &o, &g), 0);
    fn_cluster_params p = {.link = link, .min_faces = 2};
    size_t n_new = 0;
    assert_int_equal(fn_cluster_run(in, &g, &p, n_labels, out, &n_new), 0);
    fn_knn_free(&g);
    return n_new;
}

static void test_people_found(void **state)
{
    (void)state;
    size_t n = 200;
    int32_t ident[200], out[200];
    float *x = people(n, 10, ident);
    fn_cluster_in in = {.n = n, .desc = x};
    assert_int_equal(group(&in, 0.4f, 0, out), 20);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            assert_int_equal(out[i] == out[j], ident[i] == ident[j]);
    free(x);
}

static void test_same_photo(void **state)
{
    (void)state;
    size_t n = 20;
    int32_t ident[20], out[20];
    float *x = people(n, 10, ident);
    int64_t photo[20];
    for (size_t i = 0; i < n; i++)
        photo[i] = (int64_t)i + 1;
    /* faces 0 and 1 are one person in one photo (a mirror, a poster): never one cluster */
    photo[1] = photo[0];
    fn_cluster_in in = {.n = n, .desc = x, .photo = photo};
    group(&in, 0.4f, 0, out);
    assert_true(out[0] != out[1]);
    /* without the photo rule they are together (the test can fail) */
    fn_cluster_in in2 = {.n = n, .desc = x};
    group(&in2, 0.4f, 0, out);
    assert_int_equal(out[0], out[1]);
    free(x);
}

static void test_forbidden_label(void **state)
{
    (void)state;
    size_t n = 11;
    int32_t ident[11], out[11];
    float *x = people(n, 10, ident);
    /* point 10: the person's centre (label 0, weight 9); face 0 has a cannot-link with it */
    float c[D] = {0};
    for (size_t i = 1; i < 10; i++)
        for (int k = 0; k < D; k++)
            c[k] += x[i * D + k] / 9;
    memcpy(x + 10 * D, c, sizeof c);
    float w[11];
    int32_t label[11];
    int64_t photo[11];
    for (size_t i = 0; i < 11; i++) {
        w[i] = 1;
        label[i] = -1;
        photo[i] = (int64_t)i + 1;
    }
    w[10] = 9;
    label[10] = 0;
    photo[10] = 0;
    fn_cluster_forbid fb = {0, 0};
    fn_cluster_in in = {.n = n, .desc = x, .weight = w, .photo = photo, .label = label};
    group(&in, 0.4f, 1, out);
    assert_int_equal(out[0], 0); /* without the cannot-link it joins the person */
    in.forbid = &fb;
    in.n_forbid = 1;
    group(&in, 0.4f, 1, out);
    assert_true(out[0] != 0);
    for (size_t i = 1; i < 10; i++)
        assert_int_equal(out[i], 0);
    free(x);
}

static void test_chaining_bound(void **state)
{
    (void)state;
    /* 12 faces on a line, 0.3 apart: every neighbour pair is "the same person", the ends are
     * 3.3 apart. Without the bound it is one cluster; with it, several. */
    size_t n = 12;
    float *x = calloc(n * D, sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i * D] = 0.3f * (float)i;
    int32_t out[12];
    fn_cluster_in in = {.n = n, .desc = x};
    assert_int_equal(group(&in, 100.0f, 0, out), 1);
    size_t groups = group(&in, 0.4f, 0, out);
    assert_true(groups >= 2);
    assert_true(out[0] != out[11]);
    free(x);
}

static void test_labels_never_merge(void **state)
{
    (void)state;
    /* two persons' centres 0.1 apart, and a face between them */
    float x[3 * D] = {0};
    x[0 * D] = 0;
    x[1 * D] = 0.1f;
    x[2 * D] = 0.05f;
    int32_t label[3] = {0, 1, -1}, out[3];
    fn_cluster_in in = {.n = 3, .desc = x, .label = label};
    group(&in, 0.4f, 2, out);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 1);
    assert_true(out[2] == 0 || out[2] == 1);
}

static void test_weak_faces(void **state)
{
    (void)state;
    /* two weak faces alone are no cluster (their edge is not taken) */
    float x[4 * D] = {0};
    x[1 * D] = 0.1f;
    x[2 * D] = 0.2f;
    x[3 * D] = 0.25f;
    uint8_t weak[4] = {1, 1, 0, 0};
    int32_t out[4];
    fn_cluster_in in = {.n = 2, .desc = x, .weak = weak};
    group(&in, 0.4f, 0, out);
    assert_int_equal(out[0], -1);
    assert_int_equal(out[1], -1);
    /* with two good faces near them, they join the good faces' cluster */
    in.n = 4;
    group(&in, 0.4f, 0, out);
    assert_true(out[0] >= 0);
    for (int i = 1; i < 4; i++)
        assert_int_equal(out[i], out[0]);
    /* weak faces count toward no cluster's minimum: one good face and two weak ones are noise */
    in.n = 3;
    group(&in, 0.4f, 0, out);
    for (int i = 0; i < 3; i++)
        assert_int_equal(out[i], -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_l2_sgemm, l2_reset),
        cmocka_unit_test_teardown(test_l2_avx2, l2_reset),
        cmocka_unit_test_teardown(test_l2_avx512, l2_reset),
        cmocka_unit_test(test_index_recall),
        cmocka_unit_test(test_exact_is_exact),
        cmocka_unit_test(test_people_found),
        cmocka_unit_test(test_same_photo),
        cmocka_unit_test(test_forbidden_label),
        cmocka_unit_test(test_chaining_bound),
        cmocka_unit_test(test_labels_never_merge),
        cmocka_unit_test(test_weak_faces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
