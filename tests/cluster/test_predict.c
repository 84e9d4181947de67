/* test_predict.c: the nearest-person vote (src/cluster/predict.c) on descriptors built by hand:
 * the weighted vote beats the single nearest face, the per-person radius follows the spread of
 * the person's faces and is clamped, far faces are unknown, cannot-links exclude a person (from
 * the vote and from the runner-up), two faces of one photo are not both suggested as one person,
 * and the pruned search gives the same answers as measuring every confirmed face (exactly with
 * candidates = 0, nearly always with the default). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/predict.h"

#define D FN_DESC_DIM

/* A descriptor: `a` along axis i plus `b` along axis j (0 for none). */
static void vec(float *v, int i, float a, int j, float b)
{
    memset(v, 0, D * sizeof *v);
    v[i] += a;
    if (b != 0) v[j] += b;
}

static float dist(const float *a, const float *b)
{
    double s = 0;
    for (int k = 0; k < D; k++)
        s += ((double)a[k] - b[k]) * ((double)a[k] - b[k]);
    return (float)sqrt(s);
}

static float logistic(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

/* The confidence predict.h documents, from its three factors. */
static float confidence(const fn_predict_opts *o, float r, float d, float margin, float share)
{
    float c_dist = logistic(((r - d) - 1.5f * o->dist_scale) / o->dist_scale);
    if (margin > o->margin_full) margin = o->margin_full;
    float c_margin = 0.5f + margin / (2 * o->margin_full);
    if (c_margin < 0) c_margin = 0;
    if (c_margin > 1) c_margin = 1;
    return c_dist * c_margin * share;
}

/* Person 1 ("A") has three faces around c e0, person 2 ("B") three around c e1: each face is the
 * centre plus `off` along its own axis, so a person's faces are off * sqrt(2) apart. */
static float refs[6][D];
static int64_t ref_person[6] = {1, 1, 1, 2, 2, 2}, ref_face[6] = {11, 12, 13, 21, 22, 23};

static fn_predict_model *two_people(const fn_predict_opts *o, float c, float off)
{
    for (int i = 0; i < 3; i++) {
        vec(refs[i], 0, c, 10 + i, off);
        vec(refs[3 + i], 1, c, 20 + i, off);
    }
    fn_predict_model *m = NULL;
    assert_int_equal(fn_predict_model_new(&refs[0][0], ref_person, ref_face, 6, o, &m), 0);
    assert_int_equal(fn_predict_model_persons(m), 2);
    return m;
}

static void test_suggests_the_near_person(void **state)
{
    (void)state;
    fn_predict_opts o;
    fn_predict_opts_default(&o);
    fn_predict_model *m = two_people(&o, 0.7f, 0.2f);
    /* a new face of A: its centre plus 0.25 along a fresh axis; nearest to none in particular */
    float q[D];
    vec(q, 0, 0.7f, 40, 0.25f);
    q[10] = 0.05f; /* a little nearer face 11 than 12 and 13 */
    fn_prediction p;
    assert_int_equal(fn_predict_run(m, q, 1, NULL, NULL, NULL, &p), 0);
    assert_int_equal(p.person, 1);
    assert_int_equal(p.candidate, 1);
    assert_int_equal(p.support_face, 11);
    assert_float_equal(p.distance, dist(q, refs[0]), 1e-4);
    /* B is about 1.0 away: more than margin_full behind, so the margin is reported as full */
    assert_true(dist(q, refs[3]) - p.distance > o.margin_full);
    assert_float_equal(p.margin, o.margin_full, 1e-6);
    /* all votes are A's: share 1 */
    float r = fn_predict_model_radius(m, 1);
    assert_float_equal(p.confidence, confidence(&o, r, p.distance, p.margin, 1.0f), 1e-4);
    assert_true(p.confidence >= o.threshold && p.confidence <= 1.0f);
    fn_predict_model_free(m);
}

/* The vote weighs k neighbours: two faces of A a little farther outweigh the single nearest face
 * of C, and the winner's share of the vote lowers its confidence. */
static void test_weighted_vote(void **state)
{
    (void)state;
    fn_predict_opts o;
    fn_predict_opts_default(&o);
    o.k = 3;
    float r[4][D];
    int64_t person[4] = {1, 1, 3, 1}, face[4] = {1, 2, 3, 4};
    float q[D];
    vec(q, 0, 0.7f, 0, 0);
    vec(r[0], 0, 0.7f, 10, 0.32f); /* A at 0.32 */
    vec(r[1], 0, 0.7f, 11, 0.33f); /* A at 0.33 */
    vec(r[2], 0, 0.7f, 12, 0.30f); /* C at 0.30: the nearest face */
    vec(r[3], 0, 0.7f, 13, 0.59f); /* A, too far to be among the k = 3 nearest */
    fn_predict_model *m = NULL;
    assert_int_equal(fn_predict_model_new(&r[0][0], person, face, 4, &o, &m), 0);
    float ra = fn_predict_model_radius(m, 1), rc = fn_predict_model_radius(m, 3);
    assert_float_equal(rc, o.radius_default, 1e-6); /* one face: the default radius */
    float wa = (1 - powf(0.32f / ra, 2)) + (1 - powf(0.33f / ra, 2));
    float wc = 1 - powf(0.30f / rc, 2);
    assert_true(wa > wc); /* the precondition of this test */
    fn_prediction p;
    assert_int_equal(fn_predict_run(m, q, 1, NULL, NULL, NULL, &p), 0);
    assert_int_equal(p.candidate, 1);
    assert_int_equal(p.support_face, 1);
    assert_float_equal(p.distance, 0.32f, 1e-4);
    assert_float_equal(p.margin, 0.30f - 0.32f, 1e-4); /* C is nearer: a negative margin */
    assert_float_equal(p.confidence, confidence(&o, ra, 0.32f, -0.02f, wa / (wa + wc)), 1e-4);
    /* a tie-like margin and a shared vote: not confident enough to suggest */
    assert_int_equal(p.person, 0);

    /* with k = 1 only the nearest face votes: C */
    fn_predict_model_free(m);
    o.k = 1;
    assert_int_equal(fn_predict_model_new(&r[0][0], person, face, 4, &o, &m), 0);
    assert_int_equal(fn_predict_run(m, q, 1, NULL, NULL, NULL, &p), 0);
    assert_int_equal(p.candidate, 3);
    assert_int_equal(p.support_face, 3);
    fn_predict_model_free(m);
}

static void test_radius_from_spread(void **state)
{
    (void)state;
    fn_predict_opts o;
    fn_predict_opts_default(&o);
    /* persons 1 (tight), 2 (medium), 3 (wide), 4 (one face) */
    float r[7][D];
    int64_t person[7] = {1, 1, 2, 2, 3, 3, 4}, face[7] = {1, 2, 3, 4, 5, 6, 7};
    vec(r[0], 0, 0.7f, 10, 0.05f);
    vec(r[1], 0, 0.7f, 11, 0.05f);
    vec(r[2], 1, 0.7f, 12, 0.25f);
    vec(r[3], 1, 0.7f, 13, 0.25f);
    vec(r[4], 2, 0.7f, 14, 0.4f);
    vec(r[5], 2, 0.7f, 15, 0.4f);
    vec(r[6], 3, 0.7f, 0, 0);
    fn_predict_model *m = NULL;
    assert_int_equal(fn_predict_model_new(&r[0][0], person, face, 7, &o, &m), 0);
    assert_float_equal(fn_predict_model_radius(m, 1), o.radius_min, 1e-6);
    assert_float_equal(fn_predict_model_radius(m, 2), dist(r[2], r[3]) + o.radius_slack, 1e-4);
    assert_float_equal(fn_predict_model_radius(m, 3), o.radius_max, 1e-6);
    assert_float_equal(fn_predict_model_radius(m, 4), o.radius_default, 1e-6);
    assert_float_equal(fn_predict_model_radius(m, 99), -1.0f, 0);

    /* Person 2's radius decides: a query just inside it is a candidate, just outside unknown. */
    float r2 = fn_predict_model_radius(m, 2);
    float q[D];
    fn_prediction p;
    vec(q, 1, 0.7f, 12, 0.25f); /* on face 3 ... */
    q[40] = r2 - 0.01f;         /* ... then r2 - 0.01 away from it along a fresh axis */
    assert_true(dist(q, r[2]) < r2);
    assert_int_equal(fn_predict_run(m, q, 1, NULL, NULL, NULL, &p), 0);
    assert_int_equal(p.candidate, 2);
    q[40] = r2 + 0.01f;
    /* farther than r2 from face 3, and farther still from face 4 */
    assert_true(dist(q, r[2]) > r2 && dist(q, r[3]) > r2);
    assert_int_equal(fn_predict_run(m, q, 1, NULL, NULL, NULL, &p), 0);
    assert_int_equal(p.candidate, 0);
    assert_int_equal(p.person, 0);
    fn_predict_model_free(m);
}

static void test_stranger_is_unknown(void **state)
{
    (void)state;
    fn_predict_model *m = two_people(NULL, 0.7f, 0.2f);
    float q[D];
    vec(q, 5, 0.7f, 0, 0); /* about 1.0 from everyone */
    fn_prediction p;
    assert_int_equal(fn_predict_run(m, q, 1, NULL, NULL, NULL, &p), 0);
    assert_int_equal(p.person, 0);
    assert_int_equal(p.candidate, 0);
    assert_int_equal(p.support_face, 0);
    assert_float_equal(p.confidence, 0, 0);
    assert_float_equal(p.distance, -1, 0);
    fn_predict_model_free(m);

    /* no confirmed face at all: every answer is unknown */
    assert_int_equal(fn_predict_model_new(NULL, NULL, NULL, 0, NULL, &m), 0);
    assert_int_equal(fn_predict_run(m, q, 1, NULL, NULL, NULL, &p), 0);
    assert_int_equal(p.person, 0);
    fn_predict_model_free(m);
}

static void test_cannot_link(void **state)
{
    (void)state;
    fn_predict_opts o;
    fn_predict_opts_default(&o);
    /* A and B closer together (centres 0.71 apart), and a face between them, a little nearer A:
     * both vote, A wins with a small margin */
    fn_predict_model *m = two_people(&o, 0.5f, 0.2f);
    float q[D];
    vec(q, 0, 0.28f, 1, 0.24f);
    fn_prediction p[2];
    assert_int_equal(fn_predict_run(m, q, 1, NULL, NULL, NULL, &p[0]), 0);
    assert_int_equal(p[0].candidate, 1);
    float near_b = dist(q, refs[3]);
    assert_true(near_b < fn_predict_model_radius(m, 2)); /* B votes too */
    assert_float_equal(p[0].margin, near_b - p[0].distance, 1e-4);

    /* a cannot-link (face, A): A neither wins nor counts as B's runner-up */
    size_t off[2] = {0, 1};
    int64_t ex[1] = {1};
    assert_int_equal(fn_predict_run(m, q, 1, NULL, off, ex, &p[1]), 0);
    assert_int_equal(p[1].candidate, 2);
    assert_true(p[1].person == 0 || p[1].person == 2);
    assert_float_equal(p[1].distance, near_b, 1e-4);
    assert_float_equal(p[1].margin, o.margin_full, 1e-6);
    fn_predict_model_free(m);
}

/* The runner-up may be a person whose faces are all outside its own (small) radius, so the vote
 * never opened it, yet nearer than the runner-up the vote found: its distance still sets the
 * margin. */
static void test_runner_up_outside_its_radius(void **state)
{
    (void)state;
    float r[6][D];
    int64_t person[6] = {1, 1, 1, 2, 2, 3}, face[6] = {1, 2, 3, 4, 5, 6};
    vec(r[0], 1, 0.40f, 0, 0); /* W: three faces 0.40 from the query, radius 0.6 */
    vec(r[1], 2, 0.40f, 0, 0);
    vec(r[2], 3, 0.40f, 0, 0);
    vec(r[3], 4, 0.55f, 0, 0); /* Y: a face at 0.55, inside its radius 0.6: it votes */
    vec(r[4], 4, 0.55f, 5, 0.5f);
    vec(r[5], 6, 0.52f, 0, 0); /* X: one face at 0.52, outside its radius 0.5 */
    fn_predict_model *m = NULL;
    assert_int_equal(fn_predict_model_new(&r[0][0], person, face, 6, NULL, &m), 0);
    assert_float_equal(fn_predict_model_radius(m, 1), 0.6f, 1e-6);
    assert_float_equal(fn_predict_model_radius(m, 2), 0.6f, 1e-6);
    assert_float_equal(fn_predict_model_radius(m, 3), 0.5f, 1e-6);
    float q[D] = {0};
    fn_prediction p;
    assert_int_equal(fn_predict_run(m, q, 1, NULL, NULL, NULL, &p), 0);
    assert_int_equal(p.candidate, 1);
    assert_float_equal(p.distance, 0.40f, 1e-5);
    assert_float_equal(p.margin, 0.52f - 0.40f, 1e-5); /* X, not Y (0.55) */
    fn_predict_model_free(m);
}

static void test_one_person_per_photo(void **state)
{
    (void)state;
    fn_predict_model *m = two_people(NULL, 0.7f, 0.2f);
    /* three faces near A: queries 0 and 1 in photo 7 (query 1 nearer, so more confident), query
     * 2 in photo 8 */
    float q[3][D];
    vec(q[0], 0, 0.7f, 40, 0.28f);
    vec(q[1], 0, 0.7f, 41, 0.2f);
    vec(q[2], 0, 0.7f, 42, 0.28f);
    int64_t photo[3] = {7, 7, 8};
    fn_prediction p[3], alone[3];
    assert_int_equal(fn_predict_run(m, &q[0][0], 3, NULL, NULL, NULL, alone), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(alone[i].person, 1); /* each alone is A */
    assert_true(alone[1].confidence > alone[0].confidence);
    assert_int_equal(fn_predict_run(m, &q[0][0], 3, photo, NULL, NULL, p), 0);
    assert_int_equal(p[0].person, 0); /* the weaker of photo 7 */
    assert_int_equal(p[0].candidate, 1);
    assert_int_equal(p[1].person, 1);
    assert_int_equal(p[2].person, 1); /* another photo */
    fn_predict_model_free(m);
}

/* ---- the pruned search against measuring everything ---------------------------------------- */

static uint64_t rng = 88172645463325252ULL;

static double uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static float gauss(void)
{
    double u = uniform(), v = uniform();
    if (u < 1e-12) u = 1e-12;
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

/* The answer by measuring every confirmed face (what predict.h promises the pruning equals). */
static void brute(const fn_predict_opts *o, const fn_predict_model *m, const float *r,
                  const int64_t *person, const int64_t *face, size_t n, const float *q,
                  fn_prediction *out)
{
    float *d = malloc(n * sizeof *d);
    size_t *idx = malloc(n * sizeof *idx), nv = 0;
    for (size_t i = 0; i < n; i++) {
        d[i] = dist(q, r + i * D);
        if (d[i] <= fn_predict_model_radius(m, person[i])) idx[nv++] = i;
    }
    for (size_t a = 1; a < nv; a++) /* voters nearest first */
        for (size_t b = a; b > 0 && d[idx[b]] < d[idx[b - 1]]; b--) {
            size_t t = idx[b];
            idx[b] = idx[b - 1];
            idx[b - 1] = t;
        }
    if (nv > (size_t)o->k) nv = (size_t)o->k;
    memset(out, 0, sizeof *out);
    out->distance = -1;
    if (nv == 0) goto done;
    int64_t vp[64];
    float vs[64], vd[64], total = 0;
    int64_t vf[64];
    size_t np = 0;
    for (size_t t = 0; t < nv; t++) {
        size_t i = idx[t];
        float x = d[i] / fn_predict_model_radius(m, person[i]), w = 1 - x * x;
        if (w < 1e-6f) w = 1e-6f;
        total += w;
        size_t v = 0;
        while (v < np && vp[v] != person[i])
            v++;
        if (v == np) {
            vp[np] = person[i];
            vs[np] = 0;
            vd[np] = d[i];
            vf[np++] = face[i];
        }
        vs[v] += w;
    }
    size_t win = 0;
    for (size_t v = 1; v < np; v++)
        if (vs[v] > vs[win] || (vs[v] == vs[win] && vd[v] < vd[win])) win = v;
    float rd = INFINITY;
    for (size_t i = 0; i < n; i++)
        if (person[i] != vp[win] && d[i] < rd) rd = d[i];
    float margin = rd - vd[win];
    if (!(margin < o->margin_full)) margin = o->margin_full;
    out->candidate = vp[win];
    out->distance = vd[win];
    out->margin = margin;
    out->support_face = vf[win];
    out->confidence =
        confidence(o, fn_predict_model_radius(m, vp[win]), vd[win], margin, vs[win] / total);
    out->person = out->confidence >= o->threshold ? vp[win] : 0;
done:
    free(d);
    free(idx);
}

static void test_pruning_is_exact(void **state)
{
    (void)state;
    enum { NP = 150, PER = 4, NQ = 600 };
    size_t n = NP * PER;
    float *centre = malloc(NP * D * sizeof(float)), *r = malloc(n * D * sizeof(float));
    float *q = malloc(NQ * D * sizeof(float));
    int64_t *person = malloc(n * sizeof(int64_t)), *face = malloc(n * sizeof(int64_t));
    /* identity centres about 1.0 apart (look-alikes 0.5), faces about 0.4 apart around them (the
     * spread of the spread varies per person, so radii differ) */
    for (int p = 0; p < NP; p++)
        for (int k = 0; k < D; k++) /* every fourth person a look-alike of the one before */
            centre[p * D + k] = p % 4 == 1 ? centre[(p - 1) * D + k] + gauss() * 0.5f / sqrtf(D)
                                           : gauss() * 0.7f / sqrtf(D);
    for (size_t i = 0; i < n; i++) {
        int p = (int)(i / PER);
        float s = (0.15f + 0.2f * (float)(p % 5) / 4) / sqrtf(D);
        person[i] = 1000 + p;
        face[i] = (int64_t)i + 1;
        /* every tenth person's last two faces far from the first two (the same person decades
         * apart): the person's faces form two groups */
        float shift = p % 10 == 3 && i % PER >= 2 ? 0.6f / sqrtf(D) : 0;
        for (int k = 0; k < D; k++)
            r[i * D + k] = centre[p * D + k] + gauss() * s + (k % 2 ? shift : -shift);
    }
    /* queries: faces of known people, of near-misses and strangers */
    for (int i = 0; i < NQ; i++) {
        int p = (int)(uniform() * NP);
        float s = (i % 3 == 2 ? 0.6f : 0.25f) / sqrtf(D);
        for (int k = 0; k < D; k++)
            q[i * D + k] =
                (i % 7 == 6 ? gauss() * 0.7f / sqrtf(D) : centre[p * D + k]) + gauss() * s;
    }
    fn_predict_opts o;
    fn_predict_opts_default(&o);
    o.candidates = 0; /* exact */
    fn_predict_model *m = NULL, *fast = NULL;
    assert_int_equal(fn_predict_model_new(r, person, face, n, &o, &m), 0);
    fn_predict_opts fo;
    fn_predict_opts_default(&fo);
    assert_int_equal(fn_predict_model_new(r, person, face, n, &fo, &fast), 0);
    fn_prediction *got = malloc(NQ * sizeof *got), *quick = malloc(NQ * sizeof *quick);
    assert_int_equal(fn_predict_run(m, q, NQ, NULL, NULL, NULL, got), 0);
    assert_int_equal(fn_predict_run(fast, q, NQ, NULL, NULL, NULL, quick), 0);
    int suggested = 0, unknown = 0, small_margin = 0, same = 0;
    for (int i = 0; i < NQ; i++) {
        fn_prediction want;
        brute(&o, m, r, person, face, n, q + i * D, &want);
        same += quick[i].person == want.person && quick[i].candidate == want.candidate &&
                fabsf(quick[i].confidence - want.confidence) < 1e-3f;
        assert_int_equal(got[i].candidate, want.candidate);
        assert_int_equal(got[i].person, want.person);
        assert_int_equal(got[i].support_face, want.support_face);
        assert_float_equal(got[i].distance, want.distance, 2e-4);
        assert_float_equal(got[i].margin, want.margin, 2e-4);
        assert_float_equal(got[i].confidence, want.confidence, 2e-3);
        suggested += got[i].person != 0;
        unknown += got[i].candidate == 0;
        small_margin += got[i].candidate && got[i].margin < o.margin_full;
    }
    /* the set exercises every branch: suggestions, unknowns and measured margins */
    assert_true(suggested > 50 && unknown > 50 && small_margin > 5);
    /* the default (the nearest 16 centres only) gives the same answers nearly always */
    assert_true(same >= NQ * 99 / 100);
    free(got);
    free(quick);
    fn_predict_model_free(m);
    fn_predict_model_free(fast);
    free(centre);
    free(r);
    free(q);
    free(person);
    free(face);
}

static void test_bad_input(void **state)
{
    (void)state;
    fn_predict_opts o;
    fn_predict_opts_default(&o);
    float r[D] = {0};
    int64_t person = 0, face = 1;
    fn_predict_model *m = (fn_predict_model *)&o;
    assert_int_not_equal(fn_predict_model_new(r, &person, &face, 1, &o, &m), 0);
    assert_null(m);
    person = 1;
    o.k = 0;
    assert_int_not_equal(fn_predict_model_new(r, &person, &face, 1, &o, &m), 0);
    o.k = FN_PREDICT_K_MAX + 1;
    assert_int_not_equal(fn_predict_model_new(r, &person, &face, 1, &o, &m), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suggests_the_near_person),
        cmocka_unit_test(test_weighted_vote),
        cmocka_unit_test(test_radius_from_spread),
        cmocka_unit_test(test_stranger_is_unknown),
        cmocka_unit_test(test_cannot_link),
        cmocka_unit_test(test_runner_up_outside_its_radius),
        cmocka_unit_test(test_one_person_per_photo),
        cmocka_unit_test(test_pruning_is_exact),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
