/* test_weights: TFJS manifests and weight files (weights.c). Every real face-api model loads and
 * a few tensors are checked against the raw bytes dequantized here; a hand-made manifest covers
 * every stored type (float32, int32, uint8 and uint16 quantization, float16, scalars) across two
 * groups in two .bin files; and each way an install can be broken gives FN_ERR_MODEL with a
 * message naming the file and the install command: wrong total size, missing .bin, bad JSON,
 * malformed fields, a wrong tensor shape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "facenames/error.h"
#include "vision/weights.h"

#include "test_util.h"

static char err[1024];

static int setup_dir(void **state)
{
    (void)state;
    return tmpdir_create("fn_test_weights");
}

static int teardown_dir(void **state)
{
    (void)state;
    tmpdir_remove();
    return 0;
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static const char *models_dir(void)
{
    const char *d = getenv("FACENAMES_MODELS");
    if (!d) {
        print_message("skipping: FACENAMES_MODELS is not set\n");
        skip();
    }
    return d;
}

/* ---- the real models --------------------------------------------------------------------------
 */

static void test_every_real_model_loads(void **s)
{
    (void)s;
    const char *dir = models_dir();
    static const char *names[] = {"ssd_mobilenetv1_model", "tiny_face_detector_model",
                                  "face_landmark_68_model", "face_landmark_68_tiny_model",
                                  "face_recognition_model"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s-weights_manifest.json", dir, names[i]);
        fn_weights *w = NULL;
        int rc = fn_weights_load(p, &w, err, sizeof err);
        if (rc) fail_msg("%s: %s", names[i], err);
        assert_true(w->n > 10);
        assert_string_equal(w->source, p);
        for (size_t k = 0; k < w->n; k++) {
            const fn_tensor *t = &w->t[k];
            size_t n = 1;
            for (int d = 0; d < t->rank; d++)
                n *= (size_t)t->shape[d];
            assert_int_equal(n, t->n);
            for (size_t j = 0; j < t->n; j++)
                if (!isfinite(t->d[j])) fail_msg("%s: %s[%zu] is not finite", names[i], t->name, j);
        }
        fn_weights_free(w);
    }
}

static void test_real_values(void **s)
{
    (void)s;
    const char *dir = models_dir();
    char p[1024], b[1024];
    snprintf(p, sizeof p, "%s/face_recognition_model-weights_manifest.json", dir);
    snprintf(b, sizeof b, "%s/face_recognition_model.bin", dir);
    fn_weights *w = NULL;
    assert_int_equal(fn_weights_load(p, &w, err, sizeof err), 0);
    /* The first tensor is uint8-quantized with the scale and min the manifest records. */
    const int shape[4] = {7, 7, 3, 32};
    const fn_tensor *t = fn_weights_get(w, "conv32_down/conv/filters", 4, shape, err, sizeof err);
    assert_non_null(t);
    size_t len;
    unsigned char *raw = read_all(b, &len);
    const double scale = 0.0005260649557207145, min = -0.07101876902229645;
    for (size_t j = 0; j < t->n; j += 97)
        assert_float_equal(t->d[j], (float)(raw[j] * scale + min), 1e-7);
    free(raw);

    /* A wrong shape is refused with both shapes, the tensor and the file named. */
    const int wrong[4] = {3, 3, 3, 32};
    assert_null(fn_weights_get(w, "conv32_down/conv/filters", 4, wrong, err, sizeof err));
    assert_non_null(strstr(err, "[7, 7, 3, 32]"));
    assert_non_null(strstr(err, "[3, 3, 3, 32]"));
    assert_non_null(strstr(err, "conv32_down/conv/filters"));
    assert_non_null(strstr(err, "face_recognition_model-weights_manifest.json"));
    assert_non_null(strstr(err, "scripts/bootstrap"));
    assert_null(fn_weights_get(w, "no/such/tensor", 1, wrong, err, sizeof err));
    assert_non_null(strstr(err, "no/such/tensor"));
    assert_non_null(fn_weights_get(w, "conv32_down/conv/filters", 0, NULL, err, sizeof err));
    fn_weights_free(w);

    /* SSD's int32 shape constants are quantized too: 5118 anchors. */
    snprintf(p, sizeof p, "%s/ssd_mobilenetv1_model-weights_manifest.json", dir);
    assert_int_equal(fn_weights_load(p, &w, err, sizeof err), 0);
    t = fn_weights_get(w, "Postprocessor/stack/1", 0, (const int[1]){0}, err, sizeof err);
    assert_non_null(t);
    assert_int_equal(t->n, 1);
    assert_float_equal(t->d[0], 5118.0f, 0);
    fn_weights_free(w);
}

/* ---- a hand-made manifest ---------------------------------------------------------------------
 */

static const char GOOD[] =
    "[{\"paths\":[\"a.bin\"],\"weights\":["
    "{\"name\":\"f\",\"shape\":[2],\"dtype\":\"float32\"},"
    "{\"name\":\"q\",\"shape\":[1,3],\"dtype\":\"float32\","
    "\"quantization\":{\"dtype\":\"uint8\",\"scale\":0.5,\"min\":-1}},"
    "{\"name\":\"i\",\"shape\":[1],\"dtype\":\"int32\"}]},"
    "{\"paths\":[\"b.bin\"],\"weights\":["
    "{\"name\":\"h\",\"shape\":[2],\"dtype\":\"float32\",\"quantization\":{\"dtype\":\"float16\"}},"
    "{\"name\":\"u\",\"shape\":[1],\"dtype\":\"float32\","
    "\"quantization\":{\"dtype\":\"uint16\",\"scale\":2,\"min\":1}},"
    "{\"name\":\"s\",\"shape\":[],\"dtype\":\"float32\"}]}]";

/* a.bin: f (8 bytes) q (3) i (4) = 15; b.bin: h (4) u (2) s (4) = 10. */
static void good_bins(unsigned char a[15], unsigned char b[10])
{
    float f[2] = {1.5f, -2.0f}, sc = 42.25f;
    int32_t i = -7;
    uint16_t h[2] = {0x3c00, 0xc000}, u = 3;
    memcpy(a, f, 8);
    a[8] = 0, a[9] = 2, a[10] = 255;
    memcpy(a + 11, &i, 4);
    memcpy(b, h, 4);
    memcpy(b + 4, &u, 2);
    memcpy(b + 6, &sc, 4);
}

static void write_good(const char *manifest, int a_extra, int b_missing)
{
    unsigned char a[16], b[10];
    good_bins(a, b);
    a[15] = 0;
    write_bytes(tpath("good-weights_manifest.json"), manifest, strlen(manifest));
    write_bytes(tpath("a.bin"), a, 15 + (size_t)a_extra);
    if (b_missing)
        remove(tpath("b.bin"));
    else
        write_bytes(tpath("b.bin"), b, 10);
}

static void test_every_stored_type(void **s)
{
    (void)s;
    write_good(GOOD, 0, 0);
    fn_weights *w = NULL;
    int rc = fn_weights_load(tpath("good-weights_manifest.json"), &w, err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_int_equal(w->n, 6);
    const fn_tensor *t = fn_weights_get(w, "f", 1, (const int[]){2}, err, sizeof err);
    assert_float_equal(t->d[0], 1.5f, 0);
    assert_float_equal(t->d[1], -2.0f, 0);
    t = fn_weights_get(w, "q", 2, (const int[]){1, 3}, err, sizeof err);
    assert_non_null(t);
    assert_float_equal(t->d[0], -1.0f, 0);
    assert_float_equal(t->d[1], 0.0f, 0);
    assert_float_equal(t->d[2], 126.5f, 0);
    t = fn_weights_get(w, "i", 1, (const int[]){1}, err, sizeof err);
    assert_float_equal(t->d[0], -7.0f, 0);
    t = fn_weights_get(w, "h", 1, (const int[]){2}, err, sizeof err);
    assert_float_equal(t->d[0], 1.0f, 0);
    assert_float_equal(t->d[1], -2.0f, 0);
    t = fn_weights_get(w, "u", 1, (const int[]){1}, err, sizeof err);
    assert_float_equal(t->d[0], 7.0f, 0);
    t = fn_weights_get(w, "s", 0, NULL, err, sizeof err);
    assert_int_equal(t->rank, 0);
    assert_int_equal(t->n, 1);
    assert_float_equal(t->d[0], 42.25f, 0);
    fn_weights_free(w);
    fn_weights_free(NULL);
}

static void expect_model_error(const char *must_name)
{
    fn_weights *w = (fn_weights *)1;
    int rc = fn_weights_load(tpath("good-weights_manifest.json"), &w, err, sizeof err);
    if (rc != FN_ERR_MODEL) fail_msg("expected model error, got %s: %s", fn_errname(rc), err);
    assert_null(w);
    assert_non_null(strstr(err, must_name));
    assert_non_null(strstr(err, "scripts/bootstrap"));
}

static void test_wrong_total_size(void **s)
{
    (void)s;
    write_good(GOOD, 1, 0); /* one byte too many */
    expect_model_error("good-weights_manifest.json");
    assert_non_null(strstr(err, "26 bytes"));
    write_good(GOOD, 0, 0);
    write_bytes(tpath("b.bin"), "\0\0\0\0\0\0\0\0\0", 9); /* one byte short */
    expect_model_error("good-weights_manifest.json");
    assert_non_null(strstr(err, "'s'")); /* the tensor that runs off the end */
}

static void test_missing_bin(void **s)
{
    (void)s;
    write_good(GOOD, 0, 1);
    expect_model_error("b.bin");
    fn_weights *w = NULL;
    assert_int_equal(fn_weights_load(tpath("none-weights_manifest.json"), &w, err, sizeof err),
                     FN_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "none-weights_manifest.json"));
}

static void test_bad_manifests(void **s)
{
    (void)s;
    static const char *bad[] = {
        "",
        "[{",
        "{}",
        "[]",
        "[1]",
        "[{\"paths\":[\"a.bin\"]}]",
        "[{\"paths\":[\"a.bin\"],\"weights\":{}}]",
        "[{\"paths\":[\"a.bin\"],\"weights\":[]}]",
        "[{\"paths\":\"a.bin\",\"weights\":[{\"name\":\"f\",\"shape\":[2],\"dtype\":\"float32\"}]}"
        "]",
        "[{\"paths\":[\"../"
        "a.bin\"],\"weights\":[{\"name\":\"f\",\"shape\":[2],\"dtype\":\"float32\"}]}]",
        "[{\"paths\":[\"a.bin\"],\"weights\":[{\"shape\":[2],\"dtype\":\"float32\"}]}]",
        "[{\"paths\":[\"a.bin\"],\"weights\":[{\"name\":\"f\",\"dtype\":\"float32\"}]}]",
        "[{\"paths\":[\"a.bin\"],\"weights\":[{\"name\":\"f\",\"shape\":[-2],\"dtype\":\"float32\"}"
        "]}]",
        "[{\"paths\":[\"a.bin\"],\"weights\":[{\"name\":\"f\",\"shape\":[1,1,1,1,2],\"dtype\":"
        "\"float32\"}]}]",
        "[{\"paths\":[\"a.bin\"],\"weights\":[{\"name\":\"f\",\"shape\":[2.5],\"dtype\":"
        "\"float32\"}]}]",
        "[{\"paths\":[\"a.bin\"],\"weights\":[{\"name\":\"f\",\"shape\":[2],\"dtype\":\"float64\"}]"
        "}]",
        "[{\"paths\":[\"a.bin\"],\"weights\":[{\"name\":\"f\",\"shape\":[2],\"dtype\":\"float32\","
        "\"quantization\":{\"dtype\":\"uint8\"}}]}]",
        "[{\"paths\":[\"a.bin\"],\"weights\":[{\"name\":\"f\",\"shape\":[2],\"dtype\":\"float32\","
        "\"quantization\":{\"dtype\":\"int4\",\"scale\":1,\"min\":0}}]}]",
        "[{\"paths\":[\"a.bin\"],\"weights\":[{\"name\":\"f\",\"shape\":[2147483647,2147483647,"
        "2147483647,2147483647],\"dtype\":\"float32\"}]}]",
    };
    unsigned char a[16], b[10];
    good_bins(a, b);
    write_bytes(tpath("a.bin"), a, 15);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_bytes(tpath("good-weights_manifest.json"), bad[i], strlen(bad[i]));
        fn_weights *w = (fn_weights *)1;
        int rc = fn_weights_load(tpath("good-weights_manifest.json"), &w, err, sizeof err);
        if (rc != FN_ERR_MODEL) fail_msg("case %zu: expected model error, got %d: %s", i, rc, err);
        assert_null(w);
        assert_non_null(strstr(err, "good-weights_manifest.json"));
        /* The in-memory parser (the fuzz target's entry point) agrees. */
        rc = fn_weights_parse(bad[i], strlen(bad[i]), a, 15, "mem", &w, err, sizeof err);
        assert_int_equal(rc, FN_ERR_MODEL);
        assert_null(w);
    }
}

static void test_parse_in_memory(void **s)
{
    (void)s;
    unsigned char bin[25];
    good_bins(bin, bin + 15);
    fn_weights *w = NULL;
    assert_int_equal(fn_weights_parse(GOOD, strlen(GOOD), bin, 25, "mem", &w, err, sizeof err), 0);
    assert_int_equal(w->n, 6);
    assert_string_equal(w->source, "mem");
    fn_weights_free(w);
    assert_int_equal(fn_weights_parse(GOOD, strlen(GOOD), bin, 24, "mem", &w, NULL, 0),
                     FN_ERR_MODEL);
    assert_int_equal(fn_weights_parse(NULL, 0, bin, 24, "mem", &w, err, sizeof err),
                     FN_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_real_model_loads),
        cmocka_unit_test(test_real_values),
        cmocka_unit_test(test_every_stored_type),
        cmocka_unit_test(test_wrong_total_size),
        cmocka_unit_test(test_missing_bin),
        cmocka_unit_test(test_bad_manifests),
        cmocka_unit_test(test_parse_in_memory),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
