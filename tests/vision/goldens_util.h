/* goldens_util.h: helpers shared by the vision tests that check our nets against the reference's
 * golden fixtures (tests/fixtures/vision, written by reference/make_goldens.mjs): environment,
 * weights, the goldens' JSON and raw tensors, the sample photos, and tampered weights for the bind
 * failure tests.
 *
 * Header-only (static inline, so a test that uses only some of them still builds with -Werror);
 * include it after <cmocka.h>, whose fail_msg/assert_* every helper uses: a helper that cannot
 * read a fixture fails the running test. */
#ifndef FACENAMES_TESTS_VISION_GOLDENS_UTIL_H
#define FACENAMES_TESTS_VISION_GOLDENS_UTIL_H

#include <glib.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "facenames/vision.h"
#include "vision/nets.h"
#include "vision/weights.h"

/* This thread's CPU time: the machine is shared, so wall time would mostly measure the others. */
static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static inline const char *env_or_fail(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) fail_msg("%s is not set (run the tests through meson)", name);
    return v;
}

/* The fixture folder (<FACENAMES_TEST_FIXTURES>/vision) and the sample photos' folder. */
static inline void goldens_dirs(char *fixtures, size_t fixtures_len, char *samples,
                                size_t samples_len)
{
    snprintf(fixtures, fixtures_len, "%s/vision", env_or_fail("FACENAMES_TEST_FIXTURES"));
    snprintf(samples, samples_len, "%s", env_or_fail("FACENAMES_SAMPLES"));
}

static inline fn_weights *load_weights(const char *model)
{
    char path[1200], err[512];
    snprintf(path, sizeof path, "%s/%s-weights_manifest.json", env_or_fail("FACENAMES_MODELS"),
             model);
    fn_weights *w = NULL;
    if (fn_weights_load(path, &w, err, sizeof err) != 0)
        fail_msg("fn_weights_load(%s): %s", path, err);
    return w;
}

static inline json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j)
        fail_msg("%s: %s (line %d); regenerate the fixtures with scripts/make-goldens", path,
                 je.text, je.line);
    return j;
}

/* Reads raw tensor `name` listed in <fixtures>/raw/index.json: `n` values of its dtype as
 * floats. */
static inline float *load_raw(const char *fixtures, const char *name, size_t n)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/raw/index.json", fixtures);
    json_t *idx = load_json(path);
    json_t *tensors = json_object_get(idx, "tensors"), *t;
    size_t i;
    const char *file = NULL, *dtype = NULL;
    size_t count = 0;
    json_array_foreach(tensors, i, t)
    {
        if (strcmp(json_string_value(json_object_get(t, "name")), name)) continue;
        file = json_string_value(json_object_get(t, "file"));
        dtype = json_string_value(json_object_get(t, "dtype"));
        count = 1;
        json_t *d;
        size_t k;
        json_array_foreach(json_object_get(t, "shape"), k, d) count *=
            (size_t)json_integer_value(d);
        break;
    }
    if (!file) fail_msg("%s: no tensor '%s'", path, name);
    if (count != n) fail_msg("%s: tensor '%s' has %zu values, expected %zu", path, name, count, n);
    const int u8 = !strcmp(dtype, "uint8");
    snprintf(path, sizeof path, "%s/raw/%s", fixtures, file);
    json_decref(idx);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    const size_t esz = u8 ? 1 : 4;
    unsigned char *bytes = malloc(n * esz);
    float *out = malloc(n * sizeof(float));
    assert_non_null(bytes);
    assert_non_null(out);
    size_t got = fread(bytes, esz, n, f);
    fclose(f);
    if (got != n) fail_msg("%s: short file", path);
    if (u8)
        for (size_t k = 0; k < n; k++)
            out[k] = bytes[k];
    else
        memcpy(out, bytes, n * sizeof(float));
    free(bytes);
    return out;
}

/* The landmark and recognition nets' input normalisation, in place on `pixels` RGB floats
 * (0..255): minus the per-channel mean, over 255. */
static inline void normalise(float *p, size_t pixels)
{
    static const float mean_rgb[3] = {122.782f, 117.001f, 104.298f};
    for (size_t i = 0; i < pixels * 3; i++)
        p[i] = (p[i] - mean_rgb[i % 3]) / 255.0f;
}

static inline double max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

/* Loads the goldens' photo `image` with our loader and checks its pixels are the goldens'
 * pixels. */
static inline void load_sample(const char *fixtures, const char *samples, json_t *image,
                               fn_image *img)
{
    const char *file = json_string_value(json_object_get(image, "file"));
    char path[1200], err[512];
    /* The sample photos live in the reference package; extra photos (an EXIF-rotated one) are
     * committed next to the goldens. */
    snprintf(path, sizeof path, "%s/%s", fixtures, file);
    if (access(path, R_OK) != 0) snprintf(path, sizeof path, "%s/%s", samples, file);
    if (fn_image_load(path, NULL, img, NULL, err, sizeof err) != 0)
        fail_msg("fn_image_load(%s): %s", path, err);
    assert_int_equal(img->width, json_integer_value(json_object_get(image, "width")));
    assert_int_equal(img->height, json_integer_value(json_object_get(image, "height")));
    gchar *sha = g_compute_checksum_for_data(G_CHECKSUM_SHA256, img->rgb,
                                             (gsize)img->width * img->height * 3);
    const char *want = json_string_value(json_object_get(image, "rgb_sha256"));
    if (!want || strcmp(sha, want))
        fail_msg("%s: our loader's pixels (sha256 %s) are not the pixels the goldens were made "
                 "from (%s); regenerate the fixtures with scripts/make-goldens",
                 file, sha, want ? want : "?");
    g_free(sha);
}

/* A reference face's detection: its box and score. */
static inline fn_det det_of(json_t *face)
{
    json_t *b = json_object_get(face, "box");
    fn_det d = {(float)json_number_value(json_object_get(b, "x")),
                (float)json_number_value(json_object_get(b, "y")),
                (float)json_number_value(json_object_get(b, "width")),
                (float)json_number_value(json_object_get(b, "height")),
                (float)json_number_value(json_object_get(face, "score"))};
    return d;
}

/* A shallow copy of `w` whose tensor `name` is renamed (rename != NULL) or has dimension `dim`
 * (-1: the last) grown by one; the tensors' data stay owned by `w`. Free with free_tampered. */
static inline fn_weights *tampered(const fn_weights *w, const char *name, const char *rename,
                                   int dim)
{
    fn_weights *t = malloc(sizeof *t);
    assert_non_null(t);
    *t = *w;
    t->t = malloc(w->n * sizeof *w->t);
    assert_non_null(t->t);
    memcpy(t->t, w->t, w->n * sizeof *w->t);
    int found = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->t[i].name, name)) continue;
        found = 1;
        if (rename)
            t->t[i].name = (char *)rename;
        else
            t->t[i].shape[dim < 0 ? t->t[i].rank - 1 : dim] += 1;
    }
    if (!found) fail_msg("no tensor %s to tamper with", name);
    return t;
}

static inline void free_tampered(fn_weights *t)
{
    free(t->t);
    free(t);
}

#endif
