/* test_detect_cli: the `facenames detect` command (src/cli/cmd_detect.c), run as a program from
 * the build tree on the sample photos: the --json line format (box, score, 68 landmarks, 128-d
 * descriptor, in the oriented photo's size), an error object for an unreadable image without
 * stopping, exit codes (0, 4 some images unreadable, 2 bad command line), --min-face-size,
 * --detector tiny, --annotate output and the readable table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "facenames/vision.h"

static char exe[1024], sample[1024], tmpdir[256];
static char out[1 << 20];

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
    const char *b = getenv("FACENAMES_BUILD_DIR"), *s = getenv("FACENAMES_SAMPLES");
    if (!b || !s) return -1;
    snprintf(exe, sizeof exe, "%s/src/cli/facenames", b);
    snprintf(sample, sizeof sample, "%s/sample1.jpg", s);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fn_test_detect.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* Runs `facenames detect ARGS` (stderr discarded), captures stdout into out, returns the exit
 * code. */
static int run(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' detect %s 2>/dev/null", exe, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static json_t *line_json(int k)
{
    const char *p = out;
    for (int i = 0; i < k && p; i++) {
        p = strchr(p, '\n');
        if (p) p++;
    }
    assert_non_null(p);
    const char *e = strchr(p, '\n');
    assert_non_null(e);
    json_error_t je;
    json_t *j = json_loadb(p, (size_t)(e - p), 0, &je);
    if (!j) fail_msg("line %d is not JSON: %s", k, je.text);
    return j;
}

static void check_face(json_t *face, int w, int h)
{
    json_t *box = json_object_get(face, "box");
    double x = json_number_value(json_object_get(box, "x"));
    double y = json_number_value(json_object_get(box, "y"));
    double bw = json_number_value(json_object_get(box, "width"));
    double bh = json_number_value(json_object_get(box, "height"));
    assert_true(bw > 10 && bh > 10);
    assert_true(x > -bw && y > -bh && x + bw < w + bw && y + bh < h + bh);
    double score = json_number_value(json_object_get(face, "score"));
    assert_true(score >= 0.5 && score <= 1.0);
    json_t *lm = json_object_get(face, "landmarks"), *d = json_object_get(face, "descriptor");
    assert_int_equal(json_array_size(lm), 68);
    for (size_t i = 0; i < 68; i++) {
        json_t *pt = json_array_get(lm, i);
        assert_int_equal(json_array_size(pt), 2);
        assert_true(json_is_number(json_array_get(pt, 0)));
        double px = json_number_value(json_array_get(pt, 0));
        double py = json_number_value(json_array_get(pt, 1));
        /* the landmarks lie around the box */
        assert_true(px > x - bw && px < x + 2 * bw && py > y - bh && py < y + 2 * bh);
    }
    assert_int_equal(json_array_size(d), 128);
    double norm = 0;
    for (size_t i = 0; i < 128; i++)
        norm += json_number_value(json_array_get(d, i)) * json_number_value(json_array_get(d, i));
    assert_true(norm > 0.01);
}

static void test_json_and_error_lines(void **s)
{
    (void)s;
    char args[2048];
    snprintf(args, sizeof args, "--json '%s' '%s/missing.jpg'", sample, tmpdir);
    assert_int_equal(run(args), 4); /* one image unreadable: reported, others done */
    fn_image_info info;
    fn_image im;
    char err[512];
    fn_load_opts o = {.max_side = 16};
    assert_int_equal(fn_image_load(sample, &o, &im, &info, err, sizeof err), 0);
    fn_image_free(&im);

    json_t *j = line_json(0);
    assert_string_equal(json_string_value(json_object_get(j, "image")), sample);
    assert_int_equal(json_integer_value(json_object_get(j, "width")), info.width);
    assert_int_equal(json_integer_value(json_object_get(j, "height")), info.height);
    json_t *faces = json_object_get(j, "faces");
    assert_true(json_array_size(faces) >= 1);
    for (size_t i = 0; i < json_array_size(faces); i++)
        check_face(json_array_get(faces, i), info.width, info.height);
    json_decref(j);

    j = line_json(1);
    json_t *e = json_object_get(j, "error");
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "code")), "not_found");
    assert_non_null(strstr(json_string_value(json_object_get(e, "message")), "missing.jpg"));
    assert_null(json_object_get(j, "faces"));
    json_decref(j);
}

static void test_tiny_and_min_face_size(void **s)
{
    (void)s;
    char args[2048];
    snprintf(args, sizeof args, "--detector tiny --json '%s'", sample);
    assert_int_equal(run(args), 0);
    json_t *j = line_json(0);
    assert_true(json_array_size(json_object_get(j, "faces")) >= 1);
    json_decref(j);
    snprintf(args, sizeof args, "'%s' --json --min-face-size 100000", sample);
    assert_int_equal(run(args), 0);
    j = line_json(0);
    assert_int_equal(json_array_size(json_object_get(j, "faces")), 0);
    json_decref(j);
}

static void test_text_and_annotate(void **s)
{
    (void)s;
    char args[2048], path[1024];
    /* The same file name twice (another folder): the second copy is sample1-1.jpg. */
    char copy[1024], cmd[4096];
    snprintf(copy, sizeof copy, "%s/other", tmpdir);
    assert_int_equal(mkdir(copy, 0755), 0);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s/other/sample1.jpg'", sample, tmpdir);
    assert_int_equal(system(cmd), 0);
    snprintf(args, sizeof args, "--annotate '%s/annotated' '%s' '%s/other/sample1.jpg'", tmpdir,
             sample, tmpdir);
    assert_int_equal(run(args), 0);
    snprintf(path, sizeof path, "%s/annotated/sample1-1.jpg", tmpdir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_non_null(strstr(out, "sample1.jpg"));
    assert_non_null(strstr(out, "score"));
    snprintf(path, sizeof path, "%s/annotated/sample1.jpg", tmpdir);
    fn_image a, b;
    char err[512];
    assert_int_equal(fn_image_load(path, NULL, &a, NULL, err, sizeof err), 0);
    assert_int_equal(fn_image_load(sample, NULL, &b, NULL, err, sizeof err), 0);
    assert_int_equal(a.width, b.width);
    assert_int_equal(a.height, b.height);
    /* Something was drawn: many more pixels are box green or landmark red than in the photo. */
    size_t marked[2] = {0, 0};
    const fn_image *imgs[2] = {&a, &b};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < (size_t)a.width * a.height; i++) {
            const uint8_t *p = imgs[k]->rgb + 3 * i;
            if ((p[1] > 200 && p[0] < 80 && p[2] < 80) || (p[0] > 230 && p[1] < 70 && p[2] < 70))
                marked[k]++;
        }
    assert_true(marked[0] > marked[1] + 500);
    fn_image_free(&a);
    fn_image_free(&b);
}

/* --precision (and the vision.precision key, here through --set) reaches the networks: bf16,
 * int16 and auto find the same faces, with values that differ from fp32's where the CPU has their
 * kernels (AMX-BF16; AVX2; auto where it resolves to int16) and equal them where they run as fp32;
 * the default is auto; a bad value is a usage error. */
static void check_precision(const char *name, fn_precision p, const char *fp32)
{
    static char ours[1 << 20];
    char args[2048];
    snprintf(args, sizeof args, "--json '%s'", sample);
    assert_int_equal(run(args), 0);
    json_t *j = line_json(0);
    const size_t n = json_array_size(json_object_get(j, "faces"));
    json_decref(j);
    snprintf(args, sizeof args, "--precision %s --json '%s'", name, sample);
    assert_int_equal(run(args), 0);
    j = line_json(0);
    assert_int_equal(json_array_size(json_object_get(j, "faces")), n);
    json_decref(j);
    if (p != FN_PRECISION_FP32 && fn_vision_precision_supported(p, NULL))
        assert_string_not_equal(out, fp32);
    else
        assert_string_equal(out, fp32);
    snprintf(ours, sizeof ours, "%s", out);
    snprintf(args, sizeof args, "--json '%s' --set vision.precision=%s", sample, name);
    assert_int_equal(run(args), 0);
    assert_string_equal(out, ours);
    snprintf(args, sizeof args, "--precision fp32 --json '%s' --set vision.precision=%s", sample,
             name);
    assert_int_equal(run(args), 0);
    assert_string_equal(out, fp32);
}

static void test_precision(void **s)
{
    (void)s;
    static char fp32[1 << 20];
    char args[2048];
    snprintf(args, sizeof args, "--precision fp32 --json '%s'", sample);
    assert_int_equal(run(args), 0);
    snprintf(fp32, sizeof fp32, "%s", out);
    check_precision("bf16", FN_PRECISION_BF16, fp32);
    check_precision("int16", FN_PRECISION_INT16, fp32);
    const fn_precision dflt = fn_vision_precision_auto();
    check_precision("auto", dflt, fp32);
    /* no --precision, no key set: auto, i.e. the precision this CPU resolves it to */
    static char auto_out[1 << 20];
    snprintf(args, sizeof args, "--precision auto --json '%s'", sample);
    assert_int_equal(run(args), 0);
    snprintf(auto_out, sizeof auto_out, "%s", out);
    snprintf(args, sizeof args, "--precision %s --json '%s'", fn_vision_precision_name(dflt),
             sample);
    assert_int_equal(run(args), 0);
    assert_string_equal(out, auto_out);
    snprintf(args, sizeof args, "--json '%s'", sample);
    assert_int_equal(run(args), 0);
    assert_string_equal(out, auto_out);
    assert_int_equal(run("--precision fp16 x.jpg"), 2);
}

static void test_usage_errors(void **s)
{
    (void)s;
    assert_int_equal(run(""), 2);
    assert_int_equal(run("--bogus x.jpg"), 2);
    assert_int_equal(run("--detector huge x.jpg"), 2);
    assert_int_equal(run("--min-confidence 2 x.jpg"), 2);
    assert_int_equal(run("--min-face-size -3 x.jpg"), 2);
    assert_int_equal(run("--json"), 2);
    assert_int_equal(run("--help"), 0);
    assert_non_null(strstr(out, "usage: facenames detect"));
    assert_int_equal(run("--models /nonexistent x.jpg"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_and_error_lines),
        cmocka_unit_test(test_tiny_and_min_face_size),
        cmocka_unit_test(test_text_and_annotate),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_precision),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
