/* test_util.h: a private temporary folder for a vision test that writes files (test_image,
 * test_weights): created by the group setup, removed with everything in it by the group teardown.
 *
 * Header-only; include it after <cmocka.h> (write_bytes asserts). One folder per test program, in
 * the file-scope `tmpdir`; tpath's results stay valid for the next three calls. */
#ifndef FACENAMES_TESTS_VISION_TEST_UTIL_H
#define FACENAMES_TESTS_VISION_TEST_UTIL_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static char tmpdir[256];

/* nftw callback: removes one entry, made writable first (a test may have taken permissions away
 * to provoke an error). */
static inline int tmpdir_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    chmod(p, 0700);
    return remove(p);
}

/* Creates tmpdir as /tmp/<prefix>.XXXXXX. Returns 0, or -1 (for a cmocka setup). */
static inline int tmpdir_create(const char *prefix)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/%s.XXXXXX", prefix);
    return mkdtemp(tmpdir) ? 0 : -1;
}

/* Removes tmpdir and everything in it. */
static inline void tmpdir_remove(void)
{
    nftw(tmpdir, tmpdir_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* <tmpdir>/<name>, in one of four rotating buffers. */
static inline const char *tpath(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static inline void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

#endif
