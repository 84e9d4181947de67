/* test_image_stress.c: many threads decoding the same photos at once (issue 8 #6).
 *
 * A segfault inside liborc (libvips' run-time code generator) was seen once during an ingest (and
 * again in bench_ingest with liborc on; docs/design.md decision 22). This loads the sample photos
 * and resized variants of them (PNG and JPEG, written by the test) from several threads at once,
 * at two sizes, for a few seconds, and checks every result against the same load done alone
 * first: same size, same pixels. It runs in the normal build and under ASan/UBSan (about 7 s
 * there; FACENAMES_STRESS_SECONDS changes the budget). Not under TSan: libvips, GLib and the
 * codecs are not instrumented, GLib's futex-based locks are invisible to TSan, so it reports
 * races inside those libraries and runs for many minutes. With FACENAMES_STRESS_ORC=1 it enables
 * liborc first, as the pipeline did before that decision, to stress that path too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>
#include <vips/vector.h>

#include "facenames/error.h"
#include "facenames/vision.h"

#define MAX_FILES 32
#define N_THREADS 4

static const int sides[] = {256, 640};
#define N_SIDES (sizeof sides / sizeof sides[0])

typedef struct expect {
    int w, h;
    uint64_t sum;
} expect;

static char files[MAX_FILES][600];
static int n_files;
static expect want[MAX_FILES][N_SIDES];
static char tmpdir[] = "/tmp/fn_stress_XXXXXX";
static double budget_s = 3.0;
static atomic_int mismatches, failures, loads;

static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int load(int f, int s, expect *out, char *err, size_t errlen)
{
    fn_load_opts o = {.max_side = sides[s]};
    fn_image img = {0};
    int rc = fn_image_load(files[f], &o, &img, NULL, err, errlen);
    if (rc == 0) {
        out->w = img.width;
        out->h = img.height;
        out->sum = fnv(img.rgb, (size_t)img.width * (size_t)img.height * 3);
    }
    fn_image_free(&img);
    return rc;
}

static void *worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    double end = now_s() + budget_s;
    /* Each thread walks the (file, size) pairs in its own order, so different threads are in
     * different decoders and resizes at the same moment. */
    int n = n_files * (int)N_SIDES;
    for (int pass = 0; pass < 1 || now_s() < end; pass++) {
        for (int k = 0; k < n; k++) {
            int idx = (k * (2 * t + 1) + t * 7 + pass) % n;
            int f = idx / (int)N_SIDES, s = idx % (int)N_SIDES;
            expect got;
            char err[512];
            if (load(f, s, &got, err, sizeof err) != 0) {
                print_error("thread %d: %s at %d: %s\n", t, files[f], sides[s], err);
                atomic_fetch_add(&failures, 1);
                continue;
            }
            atomic_fetch_add(&loads, 1);
            if (got.w != want[f][s].w || got.h != want[f][s].h || got.sum != want[f][s].sum) {
                print_error("thread %d: %s at %d differs from the lone load\n", t, files[f],
                            sides[s]);
                atomic_fetch_add(&mismatches, 1);
            }
        }
    }
    return NULL;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    (void)state;
    const char *samples = getenv("FACENAMES_SAMPLES");
    const char *b = getenv("FACENAMES_STRESS_SECONDS");
    if (b && atof(b) > 0) budget_s = atof(b);
    if (!samples || !mkdtemp(tmpdir)) return 0; /* the test skips */
    if (fn_vision_init() != 0) return -1;
    const char *orc = getenv("FACENAMES_STRESS_ORC");
    if (orc && strcmp(orc, "1") == 0) vips_vector_set_enabled(1);
    for (int i = 1; i <= 6; i++) {
        snprintf(files[n_files], sizeof files[0], "%s/sample%d.jpg", samples, i);
        if (access(files[n_files], R_OK) != 0) continue;
        const char *src = files[n_files++];
        /* Resized variants, as a library holds them: smaller JPEGs and PNGs of the same photo. */
        static const struct {
            int side;
            const char *ext;
        } var[] = {{900, "jpg"}, {500, "png"}};
        for (size_t v = (size_t)i % 2; v < 2; v += 2) { /* one variant each, JPEG or PNG */
            fn_load_opts o = {.max_side = var[v].side};
            fn_image img = {0};
            char err[512];
            if (fn_image_load(src, &o, &img, NULL, err, sizeof err) != 0) return -1;
            snprintf(files[n_files], sizeof files[0], "%s/s%d-%d.%s", tmpdir, i, var[v].side,
                     var[v].ext);
            int rc = fn_image_save(&img, files[n_files], err, sizeof err);
            fn_image_free(&img);
            if (rc != 0) return -1;
            n_files++;
        }
    }
    for (int f = 0; f < n_files; f++)
        for (size_t s = 0; s < N_SIDES; s++) {
            char err[512];
            if (load(f, (int)s, &want[f][s], err, sizeof err) != 0) return -1;
        }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (tmpdir[strlen(tmpdir) - 1] != 'X') nftw(tmpdir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void test_concurrent_loads(void **state)
{
    (void)state;
    if (n_files == 0) skip();
    assert_true(n_files >= 12);
    pthread_t th[N_THREADS];
    for (int t = 0; t < N_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t), 0);
    for (int t = 0; t < N_THREADS; t++)
        pthread_join(th[t], NULL);
    print_message("%d loads of %d files at %zu sizes on %d threads (liborc %s)\n",
                  atomic_load(&loads), n_files, N_SIDES, N_THREADS,
                  vips_vector_isenabled() ? "on" : "off");
    assert_int_equal(atomic_load(&failures), 0);
    assert_int_equal(atomic_load(&mismatches), 0);
    assert_true(atomic_load(&loads) >= N_THREADS * n_files * (int)N_SIDES);
}

/* The pipeline's default: liborc is off unless FACENAMES_VIPS_ORC=1. */
static void test_orc_off_by_default(void **state)
{
    (void)state;
    const char *env = getenv("FACENAMES_VIPS_ORC");
    const char *stress = getenv("FACENAMES_STRESS_ORC");
    if ((env && strcmp(env, "1") == 0) || (stress && strcmp(stress, "1") == 0)) skip();
    assert_int_equal(fn_vision_init(), 0);
    assert_false(vips_vector_isenabled());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_orc_off_by_default),
        cmocka_unit_test(test_concurrent_loads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
