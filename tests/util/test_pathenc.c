/* test_pathenc.c: the path encoding of util/pathenc.h and util/pathenc_json.h as units: known
 * vectors (the documented format), and round trips on random byte strings (seed printed; set
 * FACENAMES_TEST_SEED to replay one): the text form is valid UTF-8 and decodes to the bytes, the
 * terminal form has no control character and shows a path and its text form alike, base64 and
 * the JSON fields give the bytes back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/pathenc.h"
#include "util/pathenc_json.h"

static void check_text(const char *path, const char *want, int want_escaped)
{
    int esc = -1;
    char *t = fn_path_text(path, &esc);
    assert_non_null(t);
    assert_string_equal(t, want);
    assert_int_equal(esc, want_escaped);
    free(t);
}

static void test_vectors(void **state)
{
    (void)state;
    check_text("plain/é/日本.jpg", "plain/é/日本.jpg", 0);
    check_text("a\\b", "a\\b", 0); /* valid UTF-8: as it is, backslash too */
    check_text("ok\xFE.jpg", "ok\\xFE.jpg", 1);
    check_text("a\\b\xFF", "a\\\\b\\xFF", 1);
    check_text("\xC0\x80", "\\xC0\\x80", 1);                   /* overlong NUL */
    check_text("\xED\xA0\x80", "\\xED\\xA0\\x80", 1);          /* a surrogate */
    check_text("\xF4\x90\x80\x80", "\\xF4\\x90\\x80\\x80", 1); /* above U+10FFFF */
    check_text("\xE6\x97", "\\xE6\\x97", 1);                   /* truncated */
    check_text("\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80", 0);

    size_t n;
    char *b = fn_path_unescape("a\\\\b\\xff\\xFE\\x00\\q\\x4", &n);
    assert_int_equal(n, strlen("a\\b\xFF\xFE\\x00\\q\\x4"));
    assert_string_equal(b, "a\\b\xFF\xFE\\x00\\q\\x4");
    free(b);
    assert_true(fn_path_has_escape("x\\x41"));
    assert_true(fn_path_has_escape("x\\\\"));
    assert_false(fn_path_has_escape("x\\q\\x0"));

    char *t = fn_term_text("e\x1B]0;t\x07 n\nl\tc1\xC2\x9B ok\xC2\xA0 del\x7F");
    assert_string_equal(t, "e\\x1B]0;t\\x07 n\\nl\\tc1\\xC2\\x9B ok\xC2\xA0 del\\x7F");
    free(t);
    t = fn_term_text("a\\b\xFE");
    assert_string_equal(t, "a\\\\b\\xFE");
    free(t);
    assert_string_equal(fn_term_str(NULL), "");

    static const char *const b64[][2] = {{"", ""},
                                         {"f", "Zg=="},
                                         {"fo", "Zm8="},
                                         {"foo", "Zm9v"},
                                         {"foob", "Zm9vYg=="},
                                         {"fooba", "Zm9vYmE="},
                                         {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof b64 / sizeof *b64; i++) {
        char *e = fn_base64_encode(b64[i][0], strlen(b64[i][0]));
        assert_string_equal(e, b64[i][1]);
        char *d = fn_base64_decode(e, &n);
        assert_int_equal(n, strlen(b64[i][0]));
        assert_string_equal(d, b64[i][0]);
        free(e);
        free(d);
    }
    assert_null(fn_base64_decode("Zm9v!", &n));
    assert_null(fn_base64_decode("Z", &n));
}

static uint64_t rng;

static unsigned next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng >> 11);
}

/* Random bytes without NUL, biased to what breaks things: high bytes, controls, backslashes,
 * "\x" text and valid multi-byte sequences. */
static void random_bytes(char *buf, size_t max)
{
    size_t n = next_rand() % max, i = 0;
    while (i < n) {
        unsigned k = next_rand() % 6;
        if (k == 0 && i + 4 < n) {
            i += (size_t)sprintf(buf + i, "\\x%02X", next_rand() % 256);
        } else if (k == 1 && i + 2 < n) {
            memcpy(buf + i, "\xC3\xA9", 2);
            i += 2;
        } else if (k == 2) {
            buf[i++] = '\\';
        } else {
            buf[i++] = (char)(1 + next_rand() % 255);
        }
    }
    buf[n < i ? i : n] = '\0';
}

static int term_safe(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; u[i]; i++) {
        if (u[i] < 0x20 || u[i] == 0x7F) return 0;
        if (u[i] == 0xC2 && u[i + 1] >= 0x80 && u[i + 1] <= 0x9F) return 0;
    }
    return fn_utf8_valid(s, strlen(s));
}

static void test_random_round_trips(void **state)
{
    (void)state;
    const char *env = getenv("FACENAMES_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL);
    printf("test_random_round_trips: seed %llu (replay with FACENAMES_TEST_SEED=%llu)\n",
           (unsigned long long)seed, (unsigned long long)seed);
    rng = seed * 2654435761u + 1;
    char b[96];
    for (int round = 0; round < 20000; round++) {
        random_bytes(b, 64);
        size_t n = strlen(b);
        int esc = -1;
        char *t = fn_path_text(b, &esc);
        assert_true(fn_utf8_valid(t, strlen(t)));
        assert_int_equal(esc, !fn_utf8_valid(b, n));
        if (esc) {
            size_t m;
            char *back = fn_path_unescape(t, &m);
            assert_int_equal(m, n);
            assert_memory_equal(back, b, n);
            free(back);
        } else {
            assert_string_equal(t, b);
        }
        /* the terminal form: safe, the same for the bytes and their text form */
        char *tb = fn_term_text(b), *tt = fn_term_text(t);
        assert_true(term_safe(tb));
        assert_string_equal(tb, tt);
        if (esc || !strchr(b, '\\')) {
            /* what a person copies from the terminal decodes to the bytes */
            char *back = fn_path_unescape(tb, NULL);
            assert_string_equal(back, b);
            free(back);
        }
        free(tb);
        free(tt);
        /* base64 */
        char *e = fn_base64_encode(b, n);
        size_t m;
        char *d = fn_base64_decode(e, &m);
        assert_int_equal(m, n);
        assert_memory_equal(d, b, n);
        free(e);
        free(d);
        /* JSON fields: the object dumps (valid UTF-8) and gives the bytes back */
        json_t *o = json_object();
        assert_int_equal(fn_json_set_path(o, "path", b), 0);
        assert_int_equal(json_object_get(o, "path_b64") != NULL, esc);
        char *dump = json_dumps(o, JSON_COMPACT);
        assert_non_null(dump);
        json_t *o2 = json_loads(dump, 0, NULL);
        assert_non_null(o2);
        char *got = fn_json_get_path(o2, "path");
        assert_string_equal(got, b);
        free(got);
        json_t *msg = fn_json_text(b);
        assert_non_null(msg);
        json_decref(msg);
        json_decref(o2);
        free(dump);
        json_decref(o);
        free(t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_random_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
