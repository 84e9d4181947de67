/* bench_predict.c: the predict arithmetic (src/cluster/predict.c) on synthetic descriptors.
 * Prints `name value unit` lines (see bench/bench_predict):
 *
 *   l2_kernel                   the distance kernel in use (src/cluster/l2.c; FN_BENCH_L2=sgemm,
 *                               avx2 or avx512 forces one)
 *   predict_model_build_ms      building the model from the confirmed faces
 *   predict_faces_per_s         queries answered per second, one thread per core
 *   predict_faces_per_s_1t      the same on one thread
 *   predict_faces_per_cpu_s     queries per second of processor time on one thread: what one
 *                               core does when nothing else runs (the machine is shared)
 *   predict_cpu_share           the cores the threaded run actually got (2.00 on an idle machine)
 *   predict_named_right         share of the named people's new faces suggested as the right person
 *   predict_named_wrong         ... suggested as another person
 *   predict_named_unknown       ... left unknown
 *   predict_strangers_suggested share of the faces of people nobody named that get a suggestion
 *
 * The descriptors: identity centres drawn so that two identities are about 1.0 apart (what the
 * face model gives unrelated people), a share of them look-alikes of another identity (centres
 * about 0.6 apart: siblings), and each identity's faces drawn around its centre with a spread of
 * its own, so that two faces of one person are 0.3 to 0.55 apart (the model's same-person range).
 * The named people have `--confirmed` confirmed faces each; the queries are new faces of named
 * people and faces of strangers (identities nobody named). These are easier than real photos (no
 * ageing, no profile views, no bad light): the accuracy here checks the method's arithmetic, the
 * real-face figures come from bench/eval_people. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/l2.h"
#include "cluster/predict.h"

#define D FN_DESC_DIM

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

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

static double clock_s(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double now_s(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

typedef struct identity {
    float centre[D];
    float spread; /* per-dimension standard deviation of its faces */
} identity;

/* One face of identity `id` into out. */
static void draw_face(const identity *id, float *out)
{
    for (int k = 0; k < D; k++)
        out[k] = id->centre[k] + gauss() * id->spread;
}

typedef struct run_arg {
    const fn_predict_model *m;
    const float *q;
    size_t n;
    fn_prediction *out;
    int rc;
} run_arg;

static void *run_part(void *arg)
{
    run_arg *a = arg;
    /* blocks of 256 queries, as the job hands them over */
    for (size_t i = 0; i < a->n && a->rc == 0; i += 256) {
        size_t nb = a->n - i < 256 ? a->n - i : 256;
        a->rc = fn_predict_run(a->m, a->q + i * D, nb, NULL, NULL, NULL, a->out + i);
    }
    return NULL;
}

/* Answers all queries on `threads` threads; returns the seconds it took (best of `reps`), and
 * in *cpu the processor time the best run used (all threads): on a machine shared with other
 * work, queries per CPU-second is the figure that does not depend on what else runs. */
static double timed_run(const fn_predict_model *m, const float *q, size_t n, fn_prediction *out,
                        int threads, int reps, double *cpu)
{
    double best = INFINITY;
    for (int r = 0; r < reps; r++) {
        pthread_t th[16];
        run_arg a[16];
        double c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        double t0 = now_s();
        for (int t = 0; t < threads; t++) {
            size_t lo = n * (size_t)t / (size_t)threads, hi = n * (size_t)(t + 1) / (size_t)threads;
            a[t] = (run_arg){m, q + lo * D, hi - lo, out + lo, 0};
            if (pthread_create(&th[t], NULL, run_part, &a[t]) != 0) exit(1);
        }
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            if (a[t].rc != 0) {
                fprintf(stderr, "bench_predict: fn_predict_run failed (%d)\n", a[t].rc);
                exit(1);
            }
        }
        double dt = now_s() - t0;
        if (dt < best) {
            best = dt;
            *cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        }
    }
    return best;
}

/* FN_BENCH_L2 (sgemm, avx2, avx512) forces that distance kernel; the one in use is printed. */
static void l2_kernel_choice(void)
{
    const char *e = getenv("FN_BENCH_L2");
    int want = -1;
    for (int l = 0; e && fn_l2_isa_name(l); l++)
        if (strcmp(e, fn_l2_isa_name(l)) == 0) want = l;
    printf("l2_kernel %s name\n", fn_l2_isa_name(fn_l2_set_isa(want)));
}

int main(int argc, char **argv)
{
    size_t named = 2000, confirmed = 5, strangers = 2000, queries = 100000;
    double lookalike = 0.05, stranger_share = 0.2;
    int threads = 2, reps = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--named") == 0)
            named = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--confirmed") == 0)
            confirmed = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--queries") == 0)
            queries = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--lookalike") == 0)
            lookalike = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--reps") == 0)
            reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr,
                    "usage: bench_predict [--named N] [--confirmed N] [--queries N] [--threads N]"
                    " [--lookalike SHARE] [--reps N]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 16 || named == 0 || confirmed == 0 || queries == 0) return 2;
    l2_kernel_choice();

    /* identities 0..named-1 are named, the rest strangers */
    size_t nid = named + strangers;
    identity *ids = malloc(nid * sizeof *ids);
    for (size_t i = 0; i < nid; i++) {
        /* centres: |a - b| ~ sqrt(2 D) * s = 1.0 for s = 0.707 / sqrt(D) */
        int like = i > 0 && uniform() < lookalike;
        size_t of = like ? (size_t)(uniform() * (double)i) : 0;
        for (int k = 0; k < D; k++)
            ids[i].centre[k] = like ? ids[of].centre[k] + gauss() * 0.6f / sqrtf(2.0f * D)
                                    : gauss() * 0.707f / sqrtf(D);
        /* two faces of one identity: |a - b| ~ sqrt(2 D) * spread, 0.3 to 0.55 */
        float pair = 0.3f + 0.25f * (float)uniform();
        ids[i].spread = pair / sqrtf(2.0f * D);
    }
    size_t nref = named * confirmed;
    float *ref = malloc(nref * D * sizeof *ref);
    int64_t *person = malloc(nref * sizeof *person), *face = malloc(nref * sizeof *face);
    for (size_t i = 0; i < nref; i++) {
        size_t id = i / confirmed;
        draw_face(&ids[id], ref + i * D);
        person[i] = (int64_t)id + 1;
        face[i] = (int64_t)i + 1;
    }
    float *q = malloc(queries * D * sizeof *q);
    int64_t *truth = malloc(queries * sizeof *truth); /* the person, 0 for a stranger */
    for (size_t i = 0; i < queries; i++) {
        int stranger = uniform() < stranger_share;
        size_t id = stranger ? named + (size_t)(uniform() * (double)strangers)
                             : (size_t)(uniform() * (double)named);
        draw_face(&ids[id], q + i * D);
        truth[i] = stranger ? 0 : (int64_t)id + 1;
    }

    fn_predict_opts o;
    fn_predict_opts_default(&o);
    fn_predict_model *m = NULL;
    double t0 = now_s();
    if (fn_predict_model_new(ref, person, face, nref, &o, &m) != 0) {
        fprintf(stderr, "bench_predict: building the model failed\n");
        return 1;
    }
    double build = now_s() - t0;
    fn_prediction *out = malloc(queries * sizeof *out);
    double c_par = 0, c_one = 0;
    double t_par = timed_run(m, q, queries, out, threads, reps, &c_par);
    double t_one = timed_run(m, q, queries, out, 1, reps, &c_one);

    size_t n_named = 0, right = 0, wrong = 0, n_str = 0, str_sugg = 0;
    for (size_t i = 0; i < queries; i++) {
        if (truth[i]) {
            n_named++;
            right += out[i].person == truth[i];
            wrong += out[i].person != 0 && out[i].person != truth[i];
        } else {
            n_str++;
            str_sugg += out[i].person != 0;
        }
    }
    printf("predict_confirmed_faces %zu faces\n", nref);
    printf("predict_persons %zu persons\n", fn_predict_model_persons(m));
    printf("predict_queries %zu faces\n", queries);
    printf("predict_model_build_ms %.1f ms\n", build * 1e3);
    printf("predict_faces_per_s %.0f faces/s\n", (double)queries / t_par);
    printf("predict_threads %d threads\n", threads);
    printf("predict_faces_per_s_1t %.0f faces/s\n", (double)queries / t_one);
    printf("predict_faces_per_cpu_s %.0f faces/s\n", (double)queries / c_one);
    printf("predict_cpu_share %.2f cores\n", c_par / t_par);
    printf("predict_named_right %.4f share\n", n_named ? (double)right / (double)n_named : 0);
    printf("predict_named_wrong %.4f share\n", n_named ? (double)wrong / (double)n_named : 0);
    printf("predict_named_unknown %.4f share\n",
           n_named ? (double)(n_named - right - wrong) / (double)n_named : 0);
    printf("predict_strangers_suggested %.4f share\n",
           n_str ? (double)str_sugg / (double)n_str : 0);
    fn_predict_model_free(m);
    free(out);
    free(q);
    free(truth);
    free(ref);
    free(person);
    free(face);
    free(ids);
    return 0;
}
