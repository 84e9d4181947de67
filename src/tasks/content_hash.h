/* content_hash.h: a fast 64-bit non-cryptographic hash of a file's bytes (internal to tasks).
 *
 * It answers one question: "this photo's mtime changed; did its content?" (a copy, a `touch`, a
 * restore from backup). A 64-bit hash of the same path's old and new bytes makes a false "same"
 * astronomically unlikely; it is not meant to resist an adversary. */
#ifndef FN_TASKS_CONTENT_HASH_H
#define FN_TASKS_CONTENT_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct fn_hash64 {
    uint64_t h, total;
    uint8_t tail[8];
    size_t n_tail;
} fn_hash64;

void fn_hash64_init(fn_hash64 *c);
void fn_hash64_update(fn_hash64 *c, const void *data, size_t len);
uint64_t fn_hash64_final(fn_hash64 *c);

/* Hashes the file at `path` with the caller's scratch buffer. *size gets the bytes read.
 * Returns 0, or a negative fn_err (not_found, unreadable, not_file, io). Never returns 0 as hash.
 */
int fn_hash_file(const char *path, void *buf, size_t buflen, uint64_t *hash, int64_t *size);

#endif
