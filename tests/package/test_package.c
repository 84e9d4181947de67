/* test_package: the Debian packages as a user installs them.
 *
 * scripts/package builds the .debs (dpkg-buildpackage -us -uc -b, then lintian, whose errors fail
 * it); every .deb is unpacked with `dpkg -x` into an empty root (no chroot: the system's libvips,
 * SQLite ... serve as the dependencies), the exported source tree is deleted, and from a scratch
 * folder with an empty environment (PATH and HOME only: no FACENAMES_*, no LD_LIBRARY_PATH):
 * - `facenames --version` reports the unpacked models and each one's pinned checksum;
 * - `facenames detect` and `facenames ingest` find as many faces as the build tree's program on
 *   the same photos (the expectation is that program's result, computed here);
 * - `man` shows facenames(1) and facenames.conf(5), and the installed completion completes;
 * - a ten-line C program compiled with `pkg-config --cflags --libs facenames` against the unpacked
 *   headers and .pc enqueues and inspects a job, run against the unpacked libfacenames.so.0
 *   (LD_LIBRARY_PATH to the unpacked lib directory: the one variable `dpkg -x` makes necessary),
 *   and the unpacked program sees that job;
 * - when the tree has python/facenames, the unpacked python3-facenames does the same from Python
 *   (skipped, saying so, when it has not).
 * Minutes of work (suite 'package'); exits 77 (skipped) when dpkg-buildpackage or debhelper is not
 * installed (scripts/bootstrap installs them). Arguments: the source root, the build directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sh.h"

static const char *source_root, *build_dir;
static char tmp[256], root[512], libdir[1024], run_env[2048], build_exe[1024];

static int setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof tmp, "/tmp/fn_test_package.XXXXXX");
    if (!mkdtemp(tmp)) return -1;
    snprintf(root, sizeof root, "%s/root", tmp);
    snprintf(build_exe, sizeof build_exe, "%s/src/cli/facenames", build_dir);
    /* Everything the unpacked program runs with: an empty environment but for PATH and HOME,
     * in a folder that is not the source tree. */
    snprintf(run_env, sizeof run_env,
             "mkdir -p '%s/work' '%s/home' && cd '%s/work' && env -i PATH=/usr/bin:/bin "
             "HOME='%s/home' LANG=C.UTF-8",
             tmp, tmp, tmp, tmp);

    struct sh_result r = sh_run("cd '%s' && scripts/package --no-bootstrap '%s/deb' > "
                                "'%s/package.log' 2>&1; echo $?",
                                source_root, tmp, tmp);
    int code = atoi(r.out);
    sh_free(&r);
    if (code != 0) {
        r = sh_run("tail -n 80 '%s/package.log'", tmp);
        fprintf(stderr, "scripts/package failed (exit %d):\n%s\n", code, r.out);
        sh_free(&r);
        return -1;
    }
    /* Unpack every package but the debug symbols, then delete the exported source tree so nothing
     * can be found there. */
    r = sh_run("set -e; mkdir -p '%s'; for d in '%s'/deb/*.deb; do case $d in *dbgsym*) ;; "
               "*) dpkg -x \"$d\" '%s' ;; esac; done; rm -rf '%s/deb/stage'; "
               "dirname \"$(ls '%s'/usr/lib/*/libfacenames.so.0)\"",
               root, tmp, root, tmp, root);
    if (r.code != 0) {
        fprintf(stderr, "unpacking failed:\n%s\n", r.out);
        return -1;
    }
    r.out[strcspn(r.out, "\n")] = '\0';
    snprintf(libdir, sizeof libdir, "%s", r.out);
    sh_free(&r);
    /* Two sample photos to work on, outside the source tree. */
    const char *samples = getenv("FACENAMES_SAMPLES");
    if (!samples) return -1;
    r = sh_run("mkdir -p '%s/photos' && cp '%s/sample1.jpg' '%s/sample2.jpg' '%s/photos/'", tmp,
               samples, samples, tmp);
    code = r.code;
    sh_free(&r);
    return code == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    struct sh_result r = sh_run("rm -rf '%s'", tmp);
    sh_free(&r);
    return 0;
}

static void test_debs_and_lintian(void **state)
{
    (void)state;
    const char *debs[] = {"facenames_", "facenames-models_", "libfacenames0_", "libfacenames-dev_"};
    struct sh_result r = sh_run("ls '%s/deb'", tmp);
    for (int i = 0; i < 4; i++)
        SH_HAS(r.out, debs[i]);
    sh_free(&r);
    /* scripts/package fails on a lintian error; check its report too (it must have run). */
    r = sh_run("cat '%s/deb/lintian.txt' && ! grep '^E:' '%s/deb/lintian.txt'", tmp, tmp);
    SH_EXPECT(r, 0);
    sh_free(&r);
}

static void test_version_reports_installed_models(void **state)
{
    (void)state;
    struct sh_result r = sh_run("%s '%s/usr/bin/facenames' --version 2>&1", run_env, root);
    SH_EXPECT(r, 0);
    char want[1024];
    snprintf(want, sizeof want, "models: %s/usr/share/facenames/models\n", root);
    SH_HAS(r.out, want);
    assert_null(strstr(r.out, "DIFFERS"));
    assert_null(strstr(r.out, "MISSING"));
    SH_HAS(r.out, "ssd_mobilenetv1_model.bin\n");
    sh_free(&r);
}

/* Faces per image in `detect --json` output (one JSON object per line). */
static int count_faces(const char *out, int *images)
{
    int faces = 0;
    *images = 0;
    char *copy = strdup(out);
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        if (!o) {
            fprintf(stderr, "not JSON: %s\n", line);
            fail();
        }
        json_t *f = json_object_get(o, "faces");
        assert_true(json_is_array(f));
        faces += (int)json_array_size(f);
        (*images)++;
        json_decref(o);
    }
    free(copy);
    return faces;
}

static void test_detect_from_the_package(void **state)
{
    (void)state;
    struct sh_result got = sh_run("%s '%s/usr/bin/facenames' detect --json '%s/photos/sample1.jpg' "
                                  "'%s/photos/sample2.jpg'",
                                  run_env, root, tmp, tmp);
    SH_EXPECT(got, 0);
    struct sh_result want = sh_run("'%s' detect --json '%s/photos/sample1.jpg' "
                                   "'%s/photos/sample2.jpg'",
                                   build_exe, tmp, tmp);
    SH_EXPECT(want, 0);
    int n_got, n_want;
    int f_got = count_faces(got.out, &n_got), f_want = count_faces(want.out, &n_want);
    assert_int_equal(n_got, 2);
    assert_int_equal(n_want, 2);
    assert_true(f_want > 0);
    assert_int_equal(f_got, f_want);
    sh_free(&got);
    sh_free(&want);
}

static void test_ingest_from_the_package(void **state)
{
    (void)state;
    struct sh_result r =
        sh_run("%s '%s/usr/bin/facenames' --library '%s/lib' ingest '%s/photos' 2>&1 && "
               "%s '%s/usr/bin/facenames' --library '%s/lib' faces list --json",
               run_env, root, tmp, tmp, run_env, root, tmp);
    SH_EXPECT(r, 0);
    json_error_t err;
    json_t *faces = json_loads(strrchr(r.out, '['), 0, &err);
    assert_non_null(faces);
    struct sh_result w = sh_run("'%s' --library '%s/lib-build' ingest '%s/photos' >/dev/null 2>&1 "
                                "&& '%s' --library '%s/lib-build' faces list --json",
                                build_exe, tmp, tmp, build_exe, tmp);
    SH_EXPECT(w, 0);
    json_t *want = json_loads(w.out, 0, &err);
    assert_non_null(want);
    assert_true(json_array_size(want) > 0);
    assert_int_equal(json_array_size(faces), json_array_size(want));
    json_decref(faces);
    json_decref(want);
    sh_free(&r);
    sh_free(&w);
}

static void test_man_pages_and_completion(void **state)
{
    (void)state;
    struct sh_result r =
        sh_run("%s MANWIDTH=100 man -M '%s/usr/share/man' facenames", run_env, root);
    SH_EXPECT(r, 0);
    SH_HAS(r.out, "facenames - find the faces in a photo library");
    SH_HAS(r.out, "COMMAND REFERENCE");
    sh_free(&r);
    r = sh_run("%s MANWIDTH=100 man -M '%s/usr/share/man' 5 facenames.conf", run_env, root);
    SH_EXPECT(r, 0);
    SH_HAS(r.out, "workers.cpu_max");
    sh_free(&r);
    r = sh_run(
        "%s bash --norc --noprofile -c 'source \"$0\"; COMP_WORDS=(\"$1\" jo); COMP_CWORD=1; "
        "_facenames; echo \"${COMPREPLY[*]}\"' "
        "'%s/usr/share/bash-completion/completions/facenames' '%s/usr/bin/facenames'",
        run_env, root, root);
    SH_EXPECT(r, 0);
    assert_string_equal(r.out, "jobs\n");
    sh_free(&r);
}

/* The ten lines a developer writes first. */
static const char *hello_c =
    "#include <facenames/jobs.h>\n"
    "#include <stdio.h>\n"
    "int main(int argc, char **argv) {\n"
    "    fn_engine *e; fn_job_id id; fn_job_info *job;\n"
    "    if (argc != 2 || fn_engine_open(argv[1], NULL, &e) < 0) return 1;\n"
    "    if (fn_enqueue(e, \"hello\", \"{\\\"n\\\": 1}\", FN_PRIO_NORMAL, &id) < 0) return 2;\n"
    "    if (fn_job_inspect(e, id, &job) < 0) return 3;\n"
    "    printf(\"%lld %s %s\\n\", (long long)job->id, job->type, fn_job_state_name(job->state));\n"
    "    fn_job_info_free(job); fn_engine_close(e); return 0;\n"
    "}\n";

static void test_c_program_with_pkg_config(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/hello.c", tmp);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(hello_c, f);
    fclose(f);
    /* The unpacked .pc, with its prefix moved to where it was unpacked. */
    char pc[2048];
    snprintf(pc, sizeof pc,
             "PKG_CONFIG_PATH='%s/pkgconfig' pkg-config --define-variable=prefix='%s/usr' "
             "--cflags --libs facenames",
             libdir, root);
    struct sh_result flags = sh_run("%s", pc);
    SH_EXPECT(flags, 0);
    char want[2048];
    snprintf(want, sizeof want, "-I%s/usr/include", root);
    SH_HAS(flags.out, want);
    snprintf(want, sizeof want, "-L%s", libdir);
    SH_HAS(flags.out, want);
    SH_HAS(flags.out, "-lfacenames");
    sh_free(&flags);

    struct sh_result r =
        sh_run("cd '%s' && cc -std=c11 -Wall -Werror hello.c $(%s) -o hello 2>&1", tmp, pc);
    SH_EXPECT(r, 0);
    sh_free(&r);
    /* It links the unpacked shared library, not a copy from anywhere else. */
    r = sh_run("LD_LIBRARY_PATH='%s' ldd '%s/hello'", libdir, tmp);
    SH_EXPECT(r, 0);
    snprintf(want, sizeof want, "libfacenames.so.0 => %s/libfacenames.so.0", libdir);
    SH_HAS(r.out, want);
    sh_free(&r);

    r = sh_run("%s LD_LIBRARY_PATH='%s' '%s/hello' '%s/clib'", run_env, libdir, tmp, tmp);
    SH_EXPECT(r, 0);
    long long id = 0;
    char type[64] = "", st[64] = "";
    assert_int_equal(sscanf(r.out, "%lld %63s %63s", &id, type, st), 3);
    assert_true(id > 0);
    assert_string_equal(type, "hello");
    assert_string_equal(st, "queued");
    sh_free(&r);
    /* The unpacked program sees the job the program enqueued. */
    r = sh_run("%s '%s/usr/bin/facenames' --library '%s/clib' jobs show %lld --json", run_env, root,
               tmp, id);
    SH_EXPECT(r, 0);
    json_error_t err;
    json_t *job = json_loads(r.out, 0, &err);
    assert_non_null(job);
    assert_string_equal(json_string_value(json_object_get(job, "type")), "hello");
    assert_string_equal(json_string_value(json_object_get(job, "state")), "queued");
    json_decref(job);
    sh_free(&r);
}

/* python3-facenames, when this tree has python/facenames (scripts/package builds it then): the
 * unpacked binding loads the unpacked libfacenames.so.0 (found through LD_LIBRARY_PATH, as the
 * C program's is) and enqueues and inspects a job. */
static void test_python_binding(void **state)
{
    (void)state;
    struct sh_result r = sh_run("ls '%s'/deb/python3-facenames_*.deb 2>/dev/null", tmp);
    int built = r.code == 0;
    sh_free(&r);
    if (!built) {
        r = sh_run("test -d '%s/python/facenames'", source_root);
        int have_python = r.code == 0;
        sh_free(&r);
        /* A tree with the binding must have produced its package. */
        assert_false(have_python);
        printf("python/facenames is not in this tree: python3-facenames was not built\n");
        skip();
    }
    r = sh_run("%s PYTHONPATH='%s/usr/lib/python3/dist-packages' LD_LIBRARY_PATH='%s' python3 -c "
               "'import sys, facenames\n"
               "with facenames.Engine(sys.argv[1]) as e:\n"
               "    job = e.inspect(e.enqueue(\"hello\", {\"n\": 1}))\n"
               "    print(job[\"type\"], job[\"state\"])' '%s/pylib' 2>&1",
               run_env, root, libdir, tmp);
    SH_EXPECT(r, 0);
    assert_string_equal(r.out, "hello queued\n");
    sh_free(&r);
    /* the app's launcher, desktop entry and icon; the launcher's --help runs the app's argument
     * parsing (Qt is imported, no window is opened) */
    r = sh_run("test -f '%s/usr/share/applications/facenames.desktop' && "
               "grep -qx 'Exec=facenames-app' '%s/usr/share/applications/facenames.desktop' && "
               "test -f '%s/usr/share/icons/hicolor/scalable/apps/facenames.svg' && "
               "%s PYTHONPATH='%s/usr/lib/python3/dist-packages' LD_LIBRARY_PATH='%s' "
               "QT_QPA_PLATFORM=offscreen '%s/usr/bin/facenames-app' --help 2>&1",
               root, root, root, run_env, root, libdir, root);
    SH_EXPECT(r, 0);
    assert_non_null(strstr(r.out, "usage: facenames-app"));
    sh_free(&r);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_package SOURCE_ROOT BUILD_DIR\n");
        return 2;
    }
    source_root = argv[1];
    build_dir = argv[2];
    struct sh_result r = sh_run("command -v dpkg-buildpackage >/dev/null && command -v dh "
                                ">/dev/null && command -v dpkg-deb >/dev/null && command -v "
                                "pkg-config >/dev/null && command -v man >/dev/null");
    int have = r.code == 0;
    sh_free(&r);
    if (!have) {
        printf("SKIP: dpkg-buildpackage, debhelper (dh), pkg-config or man is not installed; "
               "scripts/bootstrap installs them\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_debs_and_lintian),
        cmocka_unit_test(test_version_reports_installed_models),
        cmocka_unit_test(test_detect_from_the_package),
        cmocka_unit_test(test_ingest_from_the_package),
        cmocka_unit_test(test_man_pages_and_completion),
        cmocka_unit_test(test_c_program_with_pkg_config),
        cmocka_unit_test(test_python_binding),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
