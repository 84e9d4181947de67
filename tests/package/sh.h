/* sh.h: runs shell commands for the packaging tests (tests/package) and captures what they print.
 * Header-only; include it after <cmocka.h>. The commands are built by the tests from paths they
 * made themselves, so quoting with single quotes (sh_quote) is enough. */
#ifndef FN_TEST_SH_H
#define FN_TEST_SH_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

struct sh_result {
    int code;  /* exit status, or 128 + signal */
    char *out; /* stdout (stderr too when the command says 2>&1); free with sh_free */
};

/* Runs `sh -c` on the formatted command; fails the test only if it cannot be started. */
static inline struct sh_result sh_run(const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof cmd);
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
    out[len] = '\0';
    int st = pclose(p);
    struct sh_result r = {WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), out};
    return r;
}

static inline void sh_free(struct sh_result *r)
{
    free(r->out);
    r->out = NULL;
}

/* Fails with the command's output when it did not exit with `code`. */
#define SH_EXPECT(r, want)                                                                         \
    do {                                                                                           \
        if ((r).code != (want)) {                                                                  \
            fprintf(stderr, "exit %d, expected %d; output:\n%s\n", (r).code, (want), (r).out);     \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* Fails with the haystack when it does not contain the needle. */
#define SH_HAS(text, needle)                                                                       \
    do {                                                                                           \
        if (!strstr((text), (needle))) {                                                           \
            fprintf(stderr, "expected \"%s\" in:\n%s\n", (needle), (text));                        \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

#endif
