/* test_layering.c: SQLite stays inside src/store (docs/design.md decisions 9 and 15), and inside
 * src/store it stays in the SQLite driver (issue 14: the store speaks sql.h).
 *
 * The engine, the tasks, the vision code, the CLI and the public headers see the store through
 * store.h, jobs_store.h and library_store.h, which name no SQLite type; the SQLite-typed half is
 * store_sql.h. This test reads every .c and .h file under src/ and include/ outside src/store,
 * follows its #include "..." lines (resolved as the build resolves them: the file's directory,
 * include/, src/) and fails if the file or any header it reaches includes <sqlite3.h> or
 * store/store_sql.h, or if a store header it reaches mentions a sqlite3 type. (Tests and
 * benchmarks are white-box and may use SQLite directly.) Inside src/store, every file but the
 * SQLite driver (store_sqlite.c) and sqlite_version.c must reach no <sqlite3.h> either: the rest
 * of the store speaks sql.h, so the PostgreSQL driver can stand behind it. Argument: the source
 * root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char root[PATH_MAX];

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t len = 0, cap = 1 << 14;
    char *s = malloc(cap);
    assert_non_null(s);
    size_t got;
    while ((got = fread(s + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len - 1 == 0) {
            cap *= 2;
            s = realloc(s, cap);
            assert_non_null(s);
        }
    }
    s[len] = 0;
    fclose(f);
    return s;
}

/* Whether `path` (absolute) lies under root/src/store. */
static int in_store(const char *path)
{
    char dir[PATH_MAX + 16];
    assert_true((size_t)snprintf(dir, sizeof dir, "%s/src/store/", root) < sizeof dir);
    return strncmp(path, dir, strlen(dir)) == 0;
}

/* Resolves a quoted include of `from` the way the build does; 0 when it is not one of ours. */
static int resolve(const char *from, const char *name, char *out, size_t outlen)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", from);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    const char *bases[3] = {dir, NULL, NULL};
    char inc[PATH_MAX + 16], src[PATH_MAX + 16];
    snprintf(inc, sizeof inc, "%s/include", root);
    snprintf(src, sizeof src, "%s/src", root);
    bases[1] = inc;
    bases[2] = src;
    for (int i = 0; i < 3; i++) {
        if ((size_t)snprintf(out, outlen, "%s/%s", bases[i], name) >= outlen) continue;
        if (access(out, R_OK) == 0) return 1;
    }
    return 0;
}

typedef struct visit {
    char seen[64][PATH_MAX];
    int n_seen;
    char chain[16][PATH_MAX];
    int depth;
    int problems;
    int store_only; /* checking a store file: only <sqlite3.h> is a problem */
} visit;

static void report(visit *v, const char *what)
{
    print_error("%s:", what);
    for (int i = 0; i < v->depth; i++)
        print_error(" %s%s", v->chain[i] + strlen(root) + 1, i + 1 < v->depth ? " ->" : "");
    print_error("\n");
    v->problems++;
}

/* Checks `path` and, recursively, the headers of ours it includes. */
static void check_file(visit *v, const char *path)
{
    size_t len = strlen(path);
    assert_true(len < PATH_MAX);
    for (int i = 0; i < v->n_seen; i++)
        if (strcmp(v->seen[i], path) == 0) return;
    if (v->n_seen < 64) memcpy(v->seen[v->n_seen++], path, len + 1);
    if (v->depth == 16) return;
    memcpy(v->chain[v->depth++], path, len + 1);

    char *text = slurp(path);
    assert_non_null(text);
    /* A store header reached from outside must not even name a SQLite type (a forward
     * declaration of sqlite3 would bring the type in without the include). */
    if (!v->store_only && v->depth > 1 && in_store(path) && strstr(text, "sqlite3"))
        report(v, "names sqlite3");
    for (char *line = text; line && *line;) {
        char *eol = strchr(line, '\n');
        if (eol) *eol = 0;
        const char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#') {
            p++;
            while (*p == ' ' || *p == '\t')
                p++;
            if (strncmp(p, "include", 7) == 0) {
                p += 7;
                while (*p == ' ' || *p == '\t')
                    p++;
                char open = *p, name[PATH_MAX];
                const char *end = strchr(p + 1, open == '<' ? '>' : '"');
                if ((open == '<' || open == '"') && end && (size_t)(end - p - 1) < sizeof name) {
                    memcpy(name, p + 1, (size_t)(end - p - 1));
                    name[end - p - 1] = 0;
                    const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
                    if (strcmp(base, "sqlite3.h") == 0) report(v, "includes <sqlite3.h>");
                    if (!v->store_only && strcmp(base, "store_sql.h") == 0)
                        report(v, "includes store_sql.h");
                    char next[PATH_MAX];
                    if (open == '"' && resolve(path, name, next, sizeof next)) check_file(v, next);
                }
            }
        }
        line = eol ? eol + 1 : NULL;
    }
    free(text);
    v->depth--;
}

static int problems;

static int walk_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    size_t n = strlen(path);
    if (flag != FTW_F || n < 3) return 0;
    if (strcmp(path + n - 2, ".c") != 0 && strcmp(path + n - 2, ".h") != 0) return 0;
    if (in_store(path)) return 0;
    visit *v = calloc(1, sizeof *v);
    assert_non_null(v);
    check_file(v, path);
    problems += v->problems;
    free(v);
    return 0;
}

/* The files of src/store that may use SQLite's API: the driver and the version string. */
static int sqlite_driver(const char *path)
{
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    return strcmp(base, "store_sqlite.c") == 0 || strcmp(base, "sqlite_version.c") == 0;
}

static int store_files_seen;

static int store_walk_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    size_t n = strlen(path);
    if (flag != FTW_F || n < 3) return 0;
    if (strcmp(path + n - 2, ".c") != 0 && strcmp(path + n - 2, ".h") != 0) return 0;
    store_files_seen++;
    if (sqlite_driver(path)) return 0;
    visit *v = calloc(1, sizeof *v);
    assert_non_null(v);
    v->store_only = 1;
    check_file(v, path);
    problems += v->problems;
    free(v);
    return 0;
}

static int files_seen;

static int count_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)st;
    (void)ftw;
    if (flag == FTW_F) files_seen++;
    return 0;
}

/* No file outside src/store reaches SQLite through its includes. */
static void test_sqlite_stays_in_store(void **state)
{
    (void)state;
    char dir[PATH_MAX + 16];
    problems = 0;
    files_seen = 0;
    const char *tops[] = {"src", "include"};
    for (int i = 0; i < 2; i++) {
        snprintf(dir, sizeof dir, "%s/%s", root, tops[i]);
        assert_int_equal(nftw(dir, count_cb, 16, FTW_PHYS), 0);
        assert_int_equal(nftw(dir, walk_cb, 16, FTW_PHYS), 0);
    }
    /* The walk saw the tree at all (a wrong root must not pass vacuously). */
    assert_true(files_seen > 20);
    assert_int_equal(problems, 0);
}

/* Inside src/store, only the SQLite driver reaches SQLite's API. */
static void test_sqlite_stays_in_driver(void **state)
{
    (void)state;
    char dir[PATH_MAX + 16];
    problems = 0;
    store_files_seen = 0;
    snprintf(dir, sizeof dir, "%s/src/store", root);
    assert_int_equal(nftw(dir, store_walk_cb, 16, FTW_PHYS), 0);
    assert_true(store_files_seen > 10);
    assert_int_equal(problems, 0);
}

/* The store check itself: a store file that reaches <sqlite3.h> through a header of its own is
 * caught; the driver is exempt by name, and a store file may include store_sql.h. */
static void test_store_check_catches_a_chain(void **state)
{
    (void)state;
    char saved[PATH_MAX];
    snprintf(saved, sizeof saved, "%s", root);
    char tmpl[] = "/tmp/fn_layering_XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    snprintf(root, sizeof root, "%s", tmpl);
    const char *files[][2] = {
        {"src/store/lite.h", "#include <stddef.h>\n#include <sqlite3.h>\n"},
        {"src/store/store_sql.h", "#include <stddef.h>\n"},
        {"src/store/bad_store.c", "#include \"store/store_sql.h\"\n#include \"store/lite.h\"\n"},
        {"src/store/good_store.c", "#include \"store/store_sql.h\"\n"},
    };
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "mkdir -p %s/src/store", tmpl);
    assert_int_equal(system(path), 0);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpl, files[i][0]);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(files[i][1], f);
        fclose(f);
    }
    visit *v = calloc(1, sizeof *v);
    assert_non_null(v);
    v->store_only = 1;
    snprintf(path, sizeof path, "%s/src/store/bad_store.c", tmpl);
    check_file(v, path);
    int bad = v->problems;
    memset(v, 0, sizeof *v);
    v->store_only = 1;
    snprintf(path, sizeof path, "%s/src/store/good_store.c", tmpl);
    check_file(v, path);
    int good = v->problems;
    free(v);
    snprintf(path, sizeof path, "rm -rf %s", tmpl);
    int rm = system(path);
    snprintf(root, sizeof root, "%s", saved);
    assert_int_equal(bad, 1);
    assert_int_equal(good, 0);
    assert_int_equal(rm, 0);
    assert_true(sqlite_driver("/x/src/store/store_sqlite.c"));
    assert_true(sqlite_driver("/x/src/store/sqlite_version.c"));
    assert_false(sqlite_driver("/x/src/store/store.c"));
}

/* The check itself: a file in a scratch tree that includes store.h, which includes sqlite3.h, is
 * caught through the chain; one that includes only a clean header is not. */
static void test_check_catches_a_chain(void **state)
{
    (void)state;
    char saved[PATH_MAX];
    snprintf(saved, sizeof saved, "%s", root);
    char tmpl[] = "/tmp/fn_layering_XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    snprintf(root, sizeof root, "%s", tmpl);
    const char *files[][2] = {
        {"src/store/store.h", "#include <stddef.h>\n#include <sqlite3.h>\n"},
        {"src/store/clean.h", "#include <stddef.h>\n/* opaque handles only */\n"},
        {"src/jobs/bad.c", "#include \"store/clean.h\"\n#include \"store/store.h\"\n"},
        {"src/jobs/good.c", "#include \"store/clean.h\"\n"},
    };
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "mkdir -p %s/src/store %s/src/jobs", tmpl, tmpl);
    assert_int_equal(system(path), 0);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpl, files[i][0]);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(files[i][1], f);
        fclose(f);
    }
    visit *v = calloc(1, sizeof *v);
    assert_non_null(v);
    snprintf(path, sizeof path, "%s/src/jobs/bad.c", tmpl);
    check_file(v, path);
    int bad = v->problems;
    memset(v, 0, sizeof *v);
    snprintf(path, sizeof path, "%s/src/jobs/good.c", tmpl);
    check_file(v, path);
    int good = v->problems;
    free(v);
    snprintf(path, sizeof path, "rm -rf %s", tmpl);
    int rm = system(path);
    snprintf(root, sizeof root, "%s", saved);
    /* bad.c reaches store.h, which both includes <sqlite3.h> and (so) names sqlite3. */
    assert_int_equal(bad, 2);
    assert_int_equal(good, 0);
    assert_int_equal(rm, 0);
}

int main(int argc, char **argv)
{
    if (argc != 2 || !realpath(argv[1], root)) {
        fprintf(stderr, "usage: %s SOURCE_ROOT\n", argv[0]);
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_catches_a_chain),
        cmocka_unit_test(test_sqlite_stays_in_store),
        cmocka_unit_test(test_store_check_catches_a_chain),
        cmocka_unit_test(test_sqlite_stays_in_driver),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
