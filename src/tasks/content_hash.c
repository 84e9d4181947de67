/* content_hash.c: the file content hash (see content_hash.h). Words of 8 bytes are mixed with a
 * multiply-xorshift step (the finaliser of splitmix64/murmur3), which runs at several GB/s, so
 * hashing a photo costs far less than decoding it. */
#include "tasks/content_hash.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "facenames/error.h"

static inline uint64_t mix(uint64_t h, uint64_t v)
{
    v *= 0x9e3779b97f4a7c15ULL;
    v ^= v >> 29;
    h ^= v;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return h;
}

void fn_hash64_init(fn_hash64 *c)
{
    memset(c, 0, sizeof *c);
    c->h = 0x243f6a8885a308d3ULL;
}

void fn_hash64_update(fn_hash64 *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    c->total += len;
    if (c->n_tail) { /* complete the pending word first */
        size_t take = 8 - c->n_tail;
        if (take > len) take = len;
        memcpy(c->tail + c->n_tail, p, take);
        c->n_tail += take;
        p += take;
        len -= take;
        if (c->n_tail < 8) return;
        uint64_t v;
        memcpy(&v, c->tail, 8);
        c->h = mix(c->h, v);
        c->n_tail = 0;
    }
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c->h = mix(c->h, v);
        p += 8;
        len -= 8;
    }
    memcpy(c->tail, p, len); /* len < 8 */
    c->n_tail = len;
}

uint64_t fn_hash64_final(fn_hash64 *c)
{
    uint64_t v = 0;
    memcpy(&v, c->tail, c->n_tail);
    uint64_t h = mix(mix(c->h, v), c->total);
    h ^= h >> 31;
    return h ? h : 1;
}

int fn_hash_file(const char *path, void *buf, size_t buflen, uint64_t *hash, int64_t *size)
{
    *hash = 0;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        switch (errno) {
        case ENOENT:
            return FN_ERR_NOT_FOUND;
        case EACCES:
        case EPERM:
            return FN_ERR_UNREADABLE;
        default:
            return FN_ERR_IO;
        }
    }
    struct stat sb;
    if (fstat(fd, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        close(fd);
        return FN_ERR_NOT_FILE;
    }
    fn_hash64 c;
    fn_hash64_init(&c);
    for (;;) {
        ssize_t n = read(fd, buf, buflen);
        if (n < 0) {
            int e = errno;
            if (e == EINTR) continue;
            close(fd);
            errno = e; /* the caller may name it */
            return e == EISDIR ? FN_ERR_NOT_FILE : FN_ERR_IO;
        }
        if (n == 0) break;
        fn_hash64_update(&c, buf, (size_t)n);
    }
    close(fd);
    *size = (int64_t)c.total;
    *hash = fn_hash64_final(&c);
    return 0;
}
