/* test_models: fn_models_load (models.c): every real model loads and binds; the default directory
 * follows $FACENAMES_MODELS; a missing directory, a missing model file and a model whose tensor
 * has the wrong shape fail with FN_ERR_NOT_FOUND / FN_ERR_MODEL and a message naming the file and
 * the install command; only the models asked for are loaded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "facenames/vision.h"
#include "vision/models.h"

static char tmpdir[256];
static char err[1024];
static const char *real_dir;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    (void)state;
    real_dir = getenv("FACENAMES_MODELS");
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fn_test_models.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void need_models(void)
{
    if (!real_dir) {
        print_message("skipping: FACENAMES_MODELS is not set\n");
        skip();
    }
}

static void test_load_all(void **s)
{
    (void)s;
    need_models();
    fn_models *m = NULL;
    int rc = fn_models_load(real_dir, FN_MODEL_ALL, &m, err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_non_null(m->ssd);
    assert_non_null(m->tiny);
    assert_non_null(m->landmarks);
    assert_non_null(m->landmarks_tiny);
    assert_non_null(m->recognition);
    assert_int_equal(m->which, FN_MODEL_ALL);
    fn_models_free(m);
    fn_models_free(NULL);
}

static void test_only_what_was_asked(void **s)
{
    (void)s;
    need_models();
    fn_models *m = NULL;
    assert_int_equal(
        fn_models_load(real_dir, FN_MODEL_TINY | FN_MODEL_LANDMARKS_TINY, &m, err, sizeof err), 0);
    assert_null(m->ssd);
    assert_non_null(m->tiny);
    assert_null(m->landmarks);
    assert_non_null(m->landmarks_tiny);
    assert_null(m->recognition);
    fn_models_free(m);
    assert_int_equal(fn_models_load(real_dir, 0, &m, err, sizeof err), FN_ERR_INVALID);
    assert_null(m);
}

static void test_default_dir(void **s)
{
    (void)s;
    need_models();
    assert_string_equal(fn_models_default_dir(), real_dir);
    fn_models *m = NULL;
    assert_int_equal(fn_models_load(NULL, FN_MODEL_LANDMARKS_TINY, &m, err, sizeof err), 0);
    fn_models_free(m);
    assert_int_equal(fn_models_load("", FN_MODEL_LANDMARKS_TINY, &m, err, sizeof err), 0);
    fn_models_free(m);
}

static void test_missing_dir(void **s)
{
    (void)s;
    fn_models *m = (fn_models *)1;
    assert_int_equal(fn_models_load("/nonexistent/models", FN_MODEL_ALL, &m, err, sizeof err),
                     FN_ERR_NOT_FOUND);
    assert_null(m);
    assert_non_null(strstr(err, "/nonexistent/models"));
    assert_non_null(strstr(err, "scripts/bootstrap"));
}

static void test_missing_file(void **s)
{
    (void)s;
    fn_models *m = (fn_models *)1;
    assert_int_equal(fn_models_load(tmpdir, FN_MODEL_RECOGNITION, &m, err, sizeof err),
                     FN_ERR_MODEL);
    assert_null(m);
    assert_non_null(strstr(err, "face_recognition_model-weights_manifest.json"));
    assert_non_null(strstr(err, "scripts/bootstrap"));
}

/* Copies the tiny landmark model with one tensor's shape changed: the bind must refuse it. */
static void test_wrong_shape(void **s)
{
    (void)s;
    need_models();
    char src[1024], dst[1024];
    snprintf(src, sizeof src, "%s/face_landmark_68_tiny_model-weights_manifest.json", real_dir);
    FILE *f = fopen(src, "rb");
    assert_non_null(f);
    char *text = calloc(1, 1 << 20);
    assert_true(fread(text, 1, (1 << 20) - 1, f) > 0);
    fclose(f);
    /* The first conv filter is [3,3,3,32]; call it [3,3,1,96] (same byte count, wrong shape). */
    char *p = strstr(text, "[3,3,3,32]");
    if (!p) fail_msg("unexpected manifest: no [3,3,3,32] tensor");
    memcpy(p, "[3,3,1,96]", 10); /* same length: the rest of the text is untouched */
    snprintf(dst, sizeof dst, "%s/face_landmark_68_tiny_model-weights_manifest.json", tmpdir);
    f = fopen(dst, "wb");
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    free(text);
    snprintf(src, sizeof src, "%s/face_landmark_68_tiny_model.bin", real_dir);
    snprintf(dst, sizeof dst, "%s/face_landmark_68_tiny_model.bin", tmpdir);
    assert_int_equal(symlink(src, dst), 0);

    fn_models *m = (fn_models *)1;
    assert_int_equal(fn_models_load(tmpdir, FN_MODEL_LANDMARKS_TINY, &m, err, sizeof err),
                     FN_ERR_MODEL);
    assert_null(m);
    assert_true(strlen(err) > 0);
    print_message("wrong shape message: %s\n", err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_all),     cmocka_unit_test(test_only_what_was_asked),
        cmocka_unit_test(test_default_dir),  cmocka_unit_test(test_missing_dir),
        cmocka_unit_test(test_missing_file), cmocka_unit_test(test_wrong_shape),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
