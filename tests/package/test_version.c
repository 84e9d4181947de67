/* test_version: version.h and `facenames --version` (src/version, src/cli/cli_version.c), and where
 * a build that is installed finds its models (fn_models_default_dir, src/vision/models.c).
 *
 * - fn_sha256_file agrees with sha256sum(1) on files whose sizes straddle SHA-256's padding edges;
 * - fn_models_pinned lists exactly models/SHA256SUMS;
 * - the versions are this project's and the run-time libraries';
 * - --version prints each model file's checksum, computed here with sha256sum, and marks a file
 *   that differs or is missing;
 * - without $FACENAMES_MODELS, a program finds <its bindir>/<FN_MODELS_REL_BIN> and a shared
 *   library <its libdir>/<FN_MODELS_REL_LIB> when that exists (an installed tree, wherever it was
 *   unpacked), else the source tree's copy.
 * Arguments: the project version, the source root, the shared library. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "facenames/version.h"
#include "facenames/vision.h"
#include "sh.h"
#include "version/paths.h"

static const char *want_version, *source_root, *shared_lib;
static char tmp[256], exe[1024];

static int setup(void **state)
{
    (void)state;
    const char *b = getenv("FACENAMES_BUILD_DIR");
    if (!b) return -1;
    snprintf(exe, sizeof exe, "%s/src/cli/facenames", b);
    snprintf(tmp, sizeof tmp, "/tmp/fn_test_version.XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    struct sh_result r = sh_run("rm -rf '%s'", tmp);
    sh_free(&r);
    return 0;
}

static void write_file(const char *path, size_t len, unsigned seed)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        fputc((int)(seed >> 16) & 0xff, f);
    }
    assert_int_equal(fclose(f), 0);
}

static void test_sha256_matches_sha256sum(void **state)
{
    (void)state;
    /* 0, the padding edges around 55/56 and 64 bytes, several blocks, and more than one read. */
    const size_t sizes[] = {0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 1000, 65536, 200001};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char path[512], got[65];
        snprintf(path, sizeof path, "%s/data%zu", tmp, sizes[i]);
        write_file(path, sizes[i], (unsigned)i + 7);
        assert_int_equal(fn_sha256_file(path, got), 0);
        struct sh_result r = sh_run("sha256sum '%s'", path);
        SH_EXPECT(r, 0);
        if (strncmp(r.out, got, 64) != 0) {
            fprintf(stderr, "%zu bytes: ours %s, sha256sum %.64s\n", sizes[i], got, r.out);
            fail();
        }
        sh_free(&r);
    }
    char got[65];
    char missing[512];
    snprintf(missing, sizeof missing, "%s/no-such-file", tmp);
    assert_int_equal(fn_sha256_file(missing, got), FN_ERR_NOT_FOUND);
    assert_string_equal(got, "");
    assert_int_equal(fn_sha256_file(tmp, got), FN_ERR_IO); /* a directory */
}

static void test_pinned_models_are_sha256sums(void **state)
{
    (void)state;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/models/SHA256SUMS", source_root);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512], sum[65], name[256];
    size_t i = 0;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%64s %255s", sum, name) != 2) continue;
        const char *pinned_sum = NULL;
        const char *pinned = fn_models_pinned(i++, &pinned_sum);
        assert_non_null(pinned);
        assert_string_equal(pinned, name);
        assert_string_equal(pinned_sum, sum);
    }
    fclose(f);
    assert_true(i >= 10);
    assert_null(fn_models_pinned(i, NULL));
}

static void test_versions(void **state)
{
    (void)state;
    assert_string_equal(fn_version(), want_version);
    assert_true(strlen(fn_version_revision()) > 0);
    const char *s = fn_version_sqlite();
    assert_true(s[0] == '3' && s[1] == '.');
    assert_true(strncmp(fn_version_vips(), "8.", 2) == 0);
    assert_true(strncmp(fn_version_openblas(), "OpenBLAS", 8) == 0);
}

/* `facenames --version` against a copy of the models with one file changed and one removed. */
static void test_cli_version_checksums(void **state)
{
    (void)state;
    const char *models = getenv("FACENAMES_MODELS");
    assert_non_null(models);
    struct sh_result r = sh_run("'%s' --version", exe);
    SH_EXPECT(r, 0);
    char first[128];
    snprintf(first, sizeof first, "facenames %s\nrevision: %s\nlibvips %s, SQLite %s, ",
             want_version, fn_version_revision(), fn_version_vips(), fn_version_sqlite());
    assert_true(strncmp(r.out, first, strlen(first)) == 0);
    SH_HAS(r.out, "OpenBLAS");
    char line[512];
    snprintf(line, sizeof line, "models: %s\n", models);
    SH_HAS(r.out, line);
    for (size_t i = 0; fn_models_pinned(i, NULL); i++) {
        const char *name = fn_models_pinned(i, NULL);
        struct sh_result s = sh_run("cd '%s' && sha256sum '%s'", models, name);
        SH_EXPECT(s, 0);
        snprintf(line, sizeof line, "  %.64s  %s\n", s.out, name);
        SH_HAS(r.out, line);
        sh_free(&s);
    }
    assert_null(strstr(r.out, "DIFFERS"));
    assert_null(strstr(r.out, "MISSING"));
    sh_free(&r);

    r = sh_run("mkdir '%s/m' && cp '%s'/* '%s/m/' && echo x >> '%s/m/%s' && rm '%s/m/%s' && "
               "FACENAMES_MODELS='%s/m' '%s' --version",
               tmp, models, tmp, tmp, fn_models_pinned(1, NULL), tmp, fn_models_pinned(2, NULL),
               tmp, exe);
    SH_EXPECT(r, 0);
    snprintf(line, sizeof line, "%s  DIFFERS from the pinned ", fn_models_pinned(1, NULL));
    SH_HAS(r.out, line);
    snprintf(line, sizeof line, "%s  MISSING", fn_models_pinned(2, NULL));
    SH_HAS(r.out, line);
    SH_HAS(r.out, "2 model files are not the pinned ones");
    sh_free(&r);
}

/* The directory `rel` (one of paths.h's) names from `from`, made real so it compares. */
static void make_installed(const char *from, const char *rel, char *out, size_t len)
{
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/%s", from, rel);
    struct sh_result r = sh_run("mkdir -p '%s'", want);
    SH_EXPECT(r, 0);
    sh_free(&r);
    assert_non_null(realpath(want, out));
    assert_true(strlen(out) < len);
}

/* This test program links libfacenames statically, as the facenames program does: it is "the
 * program", found through /proc/self/exe. */
static void test_program_finds_installed_models(void **state)
{
    (void)state;
    char self[PATH_MAX], dir[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    char *saved = getenv("FACENAMES_MODELS") ? strdup(getenv("FACENAMES_MODELS")) : NULL;
    unsetenv("FACENAMES_MODELS");
    /* A run that failed half-way may have left the (empty) directories behind: start clean. */
    struct sh_result c = sh_run("cd '%s' && rmdir -p '%s' 2>/dev/null", self, FN_MODELS_REL_BIN);
    sh_free(&c);
    const char *before = fn_models_default_dir();
    char before_copy[PATH_MAX];
    snprintf(before_copy, sizeof before_copy, "%s", before);

    make_installed(self, FN_MODELS_REL_BIN, dir, sizeof dir);
    assert_string_equal(fn_models_default_dir(), dir);
    /* Remove what we made (only the empty directories) and the source tree's copy is back. */
    char parent[PATH_MAX], grandparent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", dir);
    *strrchr(parent, '/') = '\0';
    snprintf(grandparent, sizeof grandparent, "%s", parent);
    *strrchr(grandparent, '/') = '\0';
    struct sh_result r = sh_run("rmdir '%s' '%s' '%s' 2>&1", dir, parent, grandparent);
    SH_EXPECT(r, 0);
    sh_free(&r);
    assert_string_equal(fn_models_default_dir(), before_copy);
    assert_null(strstr(before_copy, FN_MODELS_REL_BIN));

    setenv("FACENAMES_MODELS", "/somewhere/else", 1);
    assert_string_equal(fn_models_default_dir(), "/somewhere/else");
    if (saved) setenv("FACENAMES_MODELS", saved, 1);
    free(saved);
}

/* A copy of libfacenames.so placed at the depth of libdir in a scratch tree, with the models
 * directory where an install puts it. */
static void test_shared_library_finds_installed_models(void **state)
{
    (void)state;
    char libdir[PATH_MAX], dir[PATH_MAX], so[PATH_MAX + 32];
    /* As many levels below the tree's root as FN_MODELS_REL_LIB climbs. */
    snprintf(libdir, sizeof libdir, "%s/root/usr", tmp);
    for (const char *p = FN_MODELS_REL_LIB; strncmp(p, "../", 3) == 0; p += 3)
        strcat(libdir, "/d");
    struct sh_result r =
        sh_run("mkdir -p '%s' && cp '%s' '%s/libfacenames.so.0'", libdir, shared_lib, libdir);
    SH_EXPECT(r, 0);
    sh_free(&r);
    make_installed(libdir, FN_MODELS_REL_LIB, dir, sizeof dir);
    snprintf(so, sizeof so, "%s/libfacenames.so.0", libdir);
    void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!h) fprintf(stderr, "dlopen: %s\n", dlerror());
    assert_non_null(h);
    const char *(*default_dir)(void);
    *(void **)&default_dir = dlsym(h, "fn_models_default_dir");
    assert_non_null(default_dir);
    char *saved = getenv("FACENAMES_MODELS") ? strdup(getenv("FACENAMES_MODELS")) : NULL;
    unsetenv("FACENAMES_MODELS");
    assert_string_equal(default_dir(), dir);
    if (saved) setenv("FACENAMES_MODELS", saved, 1);
    free(saved);
    dlclose(h);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: test_version VERSION SOURCE_ROOT LIBFACENAMES_SO\n");
        return 2;
    }
    want_version = argv[1];
    source_root = argv[2];
    shared_lib = argv[3];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_matches_sha256sum),
        cmocka_unit_test(test_pinned_models_are_sha256sums),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_cli_version_checksums),
        cmocka_unit_test(test_program_finds_installed_models),
        cmocka_unit_test(test_shared_library_finds_installed_models),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
