/* test_walk.c: the ingest enumeration: stable order (sorted per folder, depth-first, a folder's
 * own item before its contents), problem items (a folder named like a photo, symlink loops),
 * quiet counting of everything else, seeking to a checkpoint position, and the counting mode
 * agreeing with the real walk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tasks/walk.h"

static const char *const exts[] = {"jpg", "jpeg", "png"};
static char root[256];

static void touch(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("x", f);
    fclose(f);
}

static void mk(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/fn-walk-XXXXXX");
    assert_non_null(mkdtemp(root));
    mk("a");
    mk("a/d");
    mk("x.jpg");
    touch("a/c.JPG");
    touch("a/b.jpg");
    touch("a/d/e.png");
    touch("a.jpg");
    touch("z.txt");
    touch("x.jpg/y.jpg");
    char p[512];
    snprintf(p, sizeof p, "%s/a/loop", root);
    assert_int_equal(symlink("..", p), 0);
    snprintf(p, sizeof p, "%s/self.jpg", root);
    assert_int_equal(symlink("self.jpg", p), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    return system(cmd);
}

/* Walks and returns "rel[:code]" lines joined by spaces. */
static char *walk_all(int follow, int count_only, const char *seek)
{
    fn_walk_opts o = {.recursive = 1,
                      .follow_symlinks = follow,
                      .exts = exts,
                      .n_exts = 3,
                      .count_only = count_only};
    const char *roots[] = {root};
    fn_walk *w;
    assert_int_equal(fn_walk_open(roots, 1, &o, &w), 0);
    if (seek) fn_walk_seek(w, 0, seek);
    static char out[4096];
    out[0] = 0;
    fn_walk_item it;
    int rc;
    while ((rc = fn_walk_next(w, &it)) == 1) {
        char line[600];
        snprintf(line, sizeof line, "%s%s%s%s", out[0] ? " " : "", it.rel, it.err ? ":" : "",
                 it.err ? it.code : "");
        strcat(out, line);
        if (!it.err && !count_only) {
            assert_true(it.path[0] == '/');
            assert_non_null(strstr(it.path, it.rel));
        }
    }
    assert_int_equal(rc, 0);
    fn_walk_free(w);
    return out;
}

static void test_order_no_follow(void **state)
{
    (void)state;
    assert_string_equal(walk_all(0, 0, NULL),
                        "a/b.jpg a/c.JPG a/d/e.png a.jpg x.jpg:not_file x.jpg/y.jpg");
}

static void test_order_follow_reports_loops(void **state)
{
    (void)state;
    assert_string_equal(walk_all(1, 0, NULL), "a/b.jpg a/c.JPG a/d/e.png a/loop:symlink_loop "
                                              "a.jpg self.jpg:symlink_loop x.jpg:not_file "
                                              "x.jpg/y.jpg");
}

static void test_stats(void **state)
{
    (void)state;
    fn_walk_opts o = {.recursive = 1, .exts = exts, .n_exts = 3};
    const char *roots[] = {root};
    fn_walk *w;
    assert_int_equal(fn_walk_open(roots, 1, &o, &w), 0);
    fn_walk_item it;
    while (fn_walk_next(w, &it) == 1) {
    }
    assert_int_equal(fn_walk_stats_of(w)->non_images, 1);
    assert_int_equal(fn_walk_stats_of(w)->symlinks_skipped, 2);
    assert_int_equal(fn_walk_stats_of(w)->items, 6);
    fn_walk_free(w);
}

static int count_words(const char *s)
{
    int n = 0;
    for (const char *p = s; *p; p++)
        if (*p != ' ' && (p == s || p[-1] == ' ')) n++;
    return n;
}

static void test_count_only_agrees(void **state)
{
    (void)state;
    int a = count_words(walk_all(1, 0, NULL));
    int b = count_words(walk_all(1, 1, NULL));
    assert_int_equal(a, b);
    assert_int_equal(count_words(walk_all(0, 1, NULL)), 6);
}

static void test_seek(void **state)
{
    (void)state;
    assert_string_equal(walk_all(0, 0, "a/c.JPG"), "a/d/e.png a.jpg x.jpg:not_file x.jpg/y.jpg");
    assert_string_equal(walk_all(0, 0, "a/d/e.png"), "a.jpg x.jpg:not_file x.jpg/y.jpg");
    /* a position whose file is gone since: continue after where it was */
    assert_string_equal(walk_all(0, 0, "a/bz.jpg"), "a/c.JPG a/d/e.png a.jpg x.jpg:not_file "
                                                    "x.jpg/y.jpg");
    assert_string_equal(walk_all(0, 0, "x.jpg"), "x.jpg/y.jpg");
    assert_string_equal(walk_all(0, 0, "x.jpg/y.jpg"), "");
    /* a file added before the position is not revisited */
    touch("a/a0.jpg");
    assert_string_equal(walk_all(0, 0, "a/b.jpg"), "a/c.JPG a/d/e.png a.jpg x.jpg:not_file "
                                                   "x.jpg/y.jpg");
    char p[512];
    snprintf(p, sizeof p, "%s/a/a0.jpg", root);
    unlink(p);
}

static void test_cmp_and_ext(void **state)
{
    (void)state;
    assert_true(fn_walk_cmp_rel("a/b", "a.jpg") < 0);
    assert_true(fn_walk_cmp_rel("a", "a/b") < 0);
    assert_true(fn_walk_cmp_rel("a/b", "a/b") == 0);
    assert_true(fn_walk_cmp_rel("b", "a/z") > 0);
    assert_true(fn_walk_cmp_rel("a/z", "a0") < 0);
    assert_true(fn_walk_has_ext("x.JPG", exts, 3));
    assert_false(fn_walk_has_ext("jpg", exts, 3));
    assert_false(fn_walk_has_ext(".jpg", exts, 3));
    assert_false(fn_walk_has_ext("x.jpg.txt", exts, 3));
}

static void test_missing_root_and_file_root(void **state)
{
    (void)state;
    fn_walk_opts o = {.recursive = 1, .exts = exts, .n_exts = 3};
    char file[512];
    snprintf(file, sizeof file, "%s/z.txt", root);
    const char *roots[] = {"/nonexistent/fn-walk", file};
    fn_walk *w;
    assert_int_equal(fn_walk_open(roots, 2, &o, &w), 0);
    fn_walk_item it;
    assert_int_equal(fn_walk_next(w, &it), 1);
    assert_string_equal(it.code, "not_found");
    assert_int_equal(it.root, 0);
    assert_int_equal(fn_walk_next(w, &it), 1); /* a named file is tried whatever its extension */
    assert_int_equal(it.err, 0);
    assert_int_equal(it.root, 1);
    assert_string_equal(it.rel, "");
    assert_int_equal(fn_walk_next(w, &it), 0);
    fn_walk_free(w);
}

static void test_non_recursive(void **state)
{
    (void)state;
    fn_walk_opts o = {.recursive = 0, .exts = exts, .n_exts = 3};
    const char *roots[] = {root};
    fn_walk *w;
    assert_int_equal(fn_walk_open(roots, 1, &o, &w), 0);
    fn_walk_item it;
    int n = 0;
    while (fn_walk_next(w, &it) == 1)
        n++;
    assert_int_equal(n, 2); /* a.jpg and the folder x.jpg */
    fn_walk_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_no_follow),
        cmocka_unit_test(test_order_follow_reports_loops),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_count_only_agrees),
        cmocka_unit_test(test_seek),
        cmocka_unit_test(test_cmp_and_ext),
        cmocka_unit_test(test_missing_root_and_file_root),
        cmocka_unit_test(test_non_recursive),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
