/* test_exports.c: libfacenames.so exports exactly the public API.
 *
 * The parts compile with hidden visibility and the headers in include/facenames mark their
 * declarations default, so an application linking the shared library can call what the headers
 * declare and nothing else: internal functions (fn_js_*, fn_store_*, batch_add ...) can change
 * without breaking anyone, and cannot clash with an application's own symbols.
 *
 * The test asks `nm -D --defined-only` what the built library exports, and asks the C
 * preprocessor what the public headers declare at file scope (functions and extern variables;
 * typedefs, struct members and function-pointer types are not symbols), then compares the two
 * sets both ways. Arguments: the shared library, the public header directory, the C compiler
 * command (to preprocess with). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *so_path, *include_dir, *cc_cmd;

/* A growable set of names (small: a linear search is fine). */
typedef struct names {
    char **v;
    size_t n, cap;
} names;

static void names_add(names *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->v[i]) == len && memcmp(s->v[i], name, len) == 0) return;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        assert_non_null(s->v);
    }
    s->v[s->n] = strndup(name, len);
    assert_non_null(s->v[s->n]);
    s->n++;
}

static int names_has(const names *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], name) == 0) return 1;
    return 0;
}

static void names_free(names *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

/* Reads a command's whole standard output; fails the test if it does not exit 0. */
static char *run(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t len = 0, cap = 1 << 16;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t got;
    while ((got = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len - 1 == 0) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
    }
    out[len] = 0;
    int status = pclose(p);
    if (status != 0) fail_msg("`%s` failed (status %d)", cmd, status);
    return out;
}

/* The defined dynamic symbols of the shared library ("ADDRESS TYPE NAME[@VERSION]" lines). */
static void exported(names *out)
{
    char cmd[4200];
    assert_true((size_t)snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s'", so_path) <
                sizeof cmd);
    char *text = run(cmd);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char type, name[512];
        if (sscanf(line, "%*s %c %511s", &type, name) != 2) continue;
        name[strcspn(name, "@")] = 0;
        names_add(out, name, strlen(name));
    }
    free(text);
}

/* File-scope declarations in preprocessed text that came from the public headers. A statement is
 * the tokens up to a semicolon at brace depth 0 (or up to the closing brace of a function body);
 * a statement starting with `typedef` or `static` declares no exported symbol; otherwise the
 * identifier just before its first `(` is a function, and a statement starting with `extern`
 * without a `(` declares a variable (its last identifier before `;`, `[` or `=`). */
static void declared_in(const char *text, names *funcs, names *vars)
{
    int ours = 0, depth = 0;
    int skip_stmt = 0, extern_stmt = 0, first_token = 1, have_func = 0;
    const char *last_id = NULL, *var_id = NULL;
    size_t last_len = 0, var_len = 0;
    for (const char *p = text; *p;) {
        if ((p == text || p[-1] == '\n') && *p == '#') {
            /* A line marker `# 12 "path" flags` says which file the next lines come from;
             * other directives (#pragma) are not declarations. */
            const char *eol = strchr(p, '\n');
            if (!eol) eol = p + strlen(p);
            const char *q = memchr(p, '"', (size_t)(eol - p));
            const char *end = q ? memchr(q + 1, '"', (size_t)(eol - q - 1)) : NULL;
            if (end) {
                static const char dir[] = "include/facenames/";
                ours = memmem(q + 1, (size_t)(end - q - 1), dir, strlen(dir)) != NULL;
            }
            p = eol;
            continue;
        }
        if (!ours || isspace((unsigned char)*p)) {
            p++;
            continue;
        }
        if (isalpha((unsigned char)*p) || *p == '_') {
            const char *s = p;
            while (isalnum((unsigned char)*p) || *p == '_')
                p++;
            size_t n = (size_t)(p - s);
            if (depth == 0) {
                if (first_token) {
                    skip_stmt = (n == 7 && strncmp(s, "typedef", 7) == 0) ||
                                (n == 6 && strncmp(s, "static", 6) == 0);
                    extern_stmt = n == 6 && strncmp(s, "extern", 6) == 0;
                }
                last_id = s;
                last_len = n;
            }
            first_token = 0;
            continue;
        }
        if (*p == '"' || *p == '\'') { /* literals: skip, honouring escapes */
            char quote = *p++;
            while (*p && *p != quote)
                p += (*p == '\\' && p[1]) ? 2 : 1;
            if (*p) p++;
            first_token = 0;
            continue;
        }
        char c = *p++;
        first_token = 0;
        if (c == '{') depth++;
        if (c == '}') depth--;
        if (depth != 0) continue;
        if (c == '(' && !have_func && last_id) {
            if (!skip_stmt) names_add(funcs, last_id, last_len);
            have_func = 1;
        }
        if ((c == '[' || c == '=' || c == ';') && extern_stmt && !have_func && !var_id) {
            var_id = last_id;
            var_len = last_len;
        }
        if (c == ';' || (c == '}' && have_func)) { /* end of a declaration or a function body */
            if (var_id) names_add(vars, var_id, var_len);
            skip_stmt = extern_stmt = have_func = 0;
            first_token = 1;
            last_id = var_id = NULL;
        }
    }
}

/* What every header in include/facenames declares, each header preprocessed on its own (so a
 * header that does not compile alone fails here too). */
static void declared(names *funcs, names *vars)
{
    DIR *d = opendir(include_dir);
    assert_non_null(d);
    struct dirent *de;
    int headers = 0;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 3 || strcmp(de->d_name + n - 2, ".h") != 0) continue;
        char cmd[8400];
        assert_true((size_t)snprintf(cmd, sizeof cmd, "%s -E -std=c11 -I'%s/..' '%s/%s'", cc_cmd,
                                     include_dir, include_dir, de->d_name) < sizeof cmd);
        char *text = run(cmd);
        declared_in(text, funcs, vars);
        free(text);
        headers++;
    }
    closedir(d);
    assert_true(headers > 0);
}

/* The parser itself, on a fragment with every kind of statement the headers use. */
static void test_parser(void **state)
{
    (void)state;
    const char *text = "# 1 \"/x/include/facenames/a.h\"\n"
                       "typedef struct fn_a { int (*cb)(void *arg); char s[4]; } fn_a;\n"
                       "typedef void (*fn_cb)(int level, const char *msg);\n"
                       "typedef enum fn_e { FN_E_A = 1, FN_E_B } fn_e;\n"
                       "struct fn_fwd;\n"
                       "int fn_open(const char *path, fn_a **out);\n"
                       "const char *fn_name(int code);\n"
                       "extern int fn_var;\n"
                       "extern const char *fn_list[4];\n"
                       "static inline int fn_inline(int x) { return x; }\n"
                       "void fn_after_inline(void);\n"
                       "#pragma GCC visibility pop\n"
                       "# 1 \"/usr/include/stdio.h\"\n"
                       "int printf(const char *fmt, ...);\n";
    names f = {0}, v = {0};
    declared_in(text, &f, &v);
    assert_int_equal(f.n, 3);
    assert_true(names_has(&f, "fn_after_inline"));
    assert_true(names_has(&f, "fn_open"));
    assert_true(names_has(&f, "fn_name"));
    assert_int_equal(v.n, 2);
    assert_true(names_has(&v, "fn_var"));
    assert_true(names_has(&v, "fn_list"));
    names_free(&f);
    names_free(&v);
}

/* Every exported symbol is declared in a public header: nothing internal leaks. */
static void test_nothing_internal_exported(void **state)
{
    (void)state;
    names ex = {0}, funcs = {0}, vars = {0};
    exported(&ex);
    declared(&funcs, &vars);
    assert_true(ex.n > 0);
    size_t leaked = 0;
    for (size_t i = 0; i < ex.n; i++)
        if (!names_has(&funcs, ex.v[i]) && !names_has(&vars, ex.v[i])) {
            if (leaked < 40) print_error("exported but not in include/facenames: %s\n", ex.v[i]);
            leaked++;
        }
    if (leaked) print_error("%zu of %zu exported symbols are internal\n", leaked, ex.n);
    assert_int_equal(leaked, 0);
    names_free(&ex);
    names_free(&funcs);
    names_free(&vars);
}

/* Every function and variable the public headers declare is exported: the API is usable from the
 * shared library (a missing one would be a link error in an application, not in our tests, which
 * link the static library). */
static void test_public_api_exported(void **state)
{
    (void)state;
    names ex = {0}, funcs = {0}, vars = {0};
    exported(&ex);
    declared(&funcs, &vars);
    /* The headers' parse found the API at all (a broken parse must not pass vacuously). */
    assert_true(names_has(&funcs, "fn_engine_open"));
    assert_true(names_has(&funcs, "fn_strerror"));
    assert_true(names_has(&funcs, "fn_tasks_register_all"));
    size_t missing = 0;
    for (size_t i = 0; i < funcs.n + vars.n; i++) {
        const char *name = i < funcs.n ? funcs.v[i] : vars.v[i - funcs.n];
        if (!names_has(&ex, name)) {
            print_error("declared in include/facenames but not exported: %s\n", name);
            missing++;
        }
    }
    assert_int_equal(missing, 0);
    names_free(&ex);
    names_free(&funcs);
    names_free(&vars);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s LIBFACENAMES.so INCLUDE/facenames CC\n", argv[0]);
        return 2;
    }
    so_path = argv[1];
    include_dir = argv[2];
    cc_cmd = argv[3];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parser),
        cmocka_unit_test(test_nothing_internal_exported),
        cmocka_unit_test(test_public_api_exported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
