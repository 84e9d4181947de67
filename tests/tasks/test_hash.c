/* test_hash.c: the content hash that decides whether a photo whose mtime changed really changed:
 * the same bytes give the same hash however they are split into reads, any changed, added or
 * removed byte changes it, and fn_hash_file agrees with the streaming API and reports errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "facenames/error.h"
#include "tasks/content_hash.h"

static uint64_t hash_split(const uint8_t *d, size_t n, size_t chunk)
{
    fn_hash64 c;
    fn_hash64_init(&c);
    for (size_t i = 0; i < n; i += chunk)
        fn_hash64_update(&c, d + i, n - i < chunk ? n - i : chunk);
    return fn_hash64_final(&c);
}

static void test_split_invariant(void **state)
{
    (void)state;
    uint8_t d[1000];
    for (size_t i = 0; i < sizeof d; i++)
        d[i] = (uint8_t)(i * 7 + 3);
    uint64_t whole = hash_split(d, sizeof d, sizeof d);
    static const size_t chunks[] = {1, 2, 3, 5, 7, 8, 9, 13, 64, 999};
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++)
        assert_true(hash_split(d, sizeof d, chunks[k]) == whole);
}

static void test_changes_change_it(void **state)
{
    (void)state;
    uint8_t d[257];
    memset(d, 0, sizeof d);
    uint64_t h0 = hash_split(d, sizeof d, 64);
    assert_true(h0 != 0);
    assert_true(hash_split(d, sizeof d - 1, 64) != h0); /* one byte shorter (zeros) */
    for (size_t i = 0; i < sizeof d; i += 17) {
        d[i] = 1;
        assert_true(hash_split(d, sizeof d, 64) != h0);
        d[i] = 0;
    }
    assert_true(hash_split(d, 0, 1) != hash_split(d, 1, 1)); /* empty vs one zero byte */
}

static void test_file(void **state)
{
    (void)state;
    char path[] = "/tmp/fn-hash-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    uint8_t d[3000];
    for (size_t i = 0; i < sizeof d; i++)
        d[i] = (uint8_t)(i ^ (i >> 3));
    assert_int_equal(write(fd, d, sizeof d), (ssize_t)sizeof d);
    close(fd);
    uint8_t buf[100]; /* a small buffer: many reads */
    uint64_t h;
    int64_t size;
    assert_int_equal(fn_hash_file(path, buf, sizeof buf, &h, &size), 0);
    assert_int_equal(size, sizeof d);
    assert_true(h == hash_split(d, sizeof d, 4096));
    unlink(path);
    assert_int_equal(fn_hash_file(path, buf, sizeof buf, &h, &size), FN_ERR_NOT_FOUND);
    assert_int_equal(fn_hash_file("/tmp", buf, sizeof buf, &h, &size), FN_ERR_NOT_FILE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_invariant),
        cmocka_unit_test(test_changes_change_it),
        cmocka_unit_test(test_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
