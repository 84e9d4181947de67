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
 * The descriptors come from bench/people/people_synth.c, the model bench_people clusters
 * (measured on the sample photos' faces: unrelated people about 0.71 apart, relatives 0.58,
 * faces of one person 0.3-0.55, strangers seen once). People with at least `--confirmed` + 1
 * faces are named, in turn, until `--named` are (their first `--confirmed` faces are the
 * confirmed ones); the queries are every other face: the named people's further faces, the
 * faces of people nobody named and the strangers. These are easier than real photos (no ageing,
 * no profile views, no bad light): the accuracy here checks the method's arithmetic, the
 * real-face figures come from bench/eval_people. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/l2.h"
#include "cluster/predict.h"
#include "people_synth.h"

#define D FN_DESC_DIM

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
    size_t named = 2000, confirmed = 5, faces = 120000;
    int threads = 2, reps = 3;
    fn_predict_opts o;
    fn_predict_opts_default(&o);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--named") == 0)
            named = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--confirmed") == 0)
            confirmed = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--faces") == 0)
            faces = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--reps") == 0)
            reps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--threshold") == 0)
            o.threshold = strtof(argv[i + 1], NULL);
        else {
            fprintf(stderr, "usage: bench_predict [--named N] [--confirmed N] [--faces N]"
                            " [--threads N] [--reps N] [--threshold C]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 16 || named == 0 || confirmed == 0 || faces == 0) return 2;
    l2_kernel_choice();

    fn_synth_opts so;
    fn_synth_defaults(&so, faces, 7);
    fn_synth syn;
    if (fn_synth_make(&so, &syn) != 0) return 1;
    /* faces per identity, then the named identities: those with a face to spare, in id order */
    size_t *count = calloc(syn.n_ident, sizeof *count), *taken = calloc(syn.n_ident, sizeof *taken);
    uint8_t *is_named = calloc(syn.n_ident, 1);
    if (!count || !taken || !is_named) return 1;
    for (size_t i = 0; i < syn.n; i++)
        count[syn.identity[i]]++;
    size_t n_named_ids = 0;
    for (size_t id = 0; id < syn.n_ident && n_named_ids < named; id++)
        if (count[id] > confirmed) {
            is_named[id] = 1;
            n_named_ids++;
        }
    size_t nref = n_named_ids * confirmed, queries = syn.n - nref;
    float *ref = malloc(nref * D * sizeof *ref), *q = malloc(queries * D * sizeof *q);
    int64_t *person = malloc(nref * sizeof *person), *face = malloc(nref * sizeof *face);
    int64_t *truth = malloc(queries * sizeof *truth); /* the person, 0 for one nobody named */
    if (!ref || !q || !person || !face || !truth) return 1;
    size_t r = 0, k = 0;
    for (size_t i = 0; i < syn.n; i++) {
        int32_t id = syn.identity[i];
        if (is_named[id] && taken[id] < confirmed) {
            taken[id]++;
            memcpy(ref + r * D, syn.desc + i * D, D * sizeof *ref);
            person[r] = (int64_t)id + 1;
            face[r] = (int64_t)i + 1;
            r++;
        } else {
            memcpy(q + k * D, syn.desc + i * D, D * sizeof *q);
            truth[k] = is_named[id] ? (int64_t)id + 1 : 0;
            k++;
        }
    }

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
    free(count);
    free(taken);
    free(is_named);
    fn_synth_free(&syn);
    return 0;
}
