/* fuzz_pgcopy.c: fuzz target for the binary COPY parser of the store's bulk reads
 * (src/store/pg/pg_copy.c), whose input is another program's output (a PostgreSQL server's COPY
 * stream, or whatever sits between it and us).
 *
 * Input: byte 0 gives the number of columns (1 + b % 4), the next that many bytes each column's
 * type (one of the types the parser decodes), the next byte a chunk size (0: the whole stream at
 * once); the rest is the stream. Besides "does not crash, does not read out of bounds", it checks:
 * the stream fed whole and fed in chunks gives the same result and the same rows (chunk
 * boundaries must not matter); every value has a type its column allows, and a blob or text lies
 * inside the input; a failure always says why. Built as a libFuzzer binary with -Dlibfuzzer=true
 * (clang), and always as a replay driver (fuzz/replay.c) over the seed corpus. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/pg/pg_copy.h"
#include "store/pg/pg_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint32_t types[] = {
    FN_PG_OID_INT8,   FN_PG_OID_FLOAT8, FN_PG_OID_BYTEA, FN_PG_OID_INT4, FN_PG_OID_INT2,
    FN_PG_OID_FLOAT4, FN_PG_OID_BOOL,   FN_PG_OID_TEXT,  FN_PG_OID_OID,  FN_PG_OID_VARCHAR,
};

typedef struct digest {
    uint64_t h;
    long rows;
    const uint8_t *lo, *hi; /* the stream's bytes, for the bounds of blobs in the whole feed */
    const uint32_t *oids;
} digest;

static void mix(digest *g, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        g->h = (g->h ^ b[i]) * 1099511628211ULL;
}

static int row(void *ctx, const fn_pg_value *v, int ncols)
{
    digest *g = ctx;
    g->rows++;
    for (int c = 0; c < ncols; c++) {
        int t = v[c].type;
        uint32_t oid = g->oids[c];
        int ok = t == FN_PG_NULL || (t == FN_PG_BLOB && oid == FN_PG_OID_BYTEA) ||
                 (t == FN_PG_TEXT && (oid == FN_PG_OID_TEXT || oid == FN_PG_OID_VARCHAR)) ||
                 (t == FN_PG_FLOAT && (oid == FN_PG_OID_FLOAT4 || oid == FN_PG_OID_FLOAT8)) ||
                 (t == FN_PG_INTEGER &&
                  (oid == FN_PG_OID_INT8 || oid == FN_PG_OID_INT4 || oid == FN_PG_OID_INT2 ||
                   oid == FN_PG_OID_BOOL || oid == FN_PG_OID_OID));
        if (!ok) abort();
        mix(g, &t, sizeof t);
        mix(g, &v[c].i, sizeof v[c].i);
        if (t == FN_PG_FLOAT && v[c].d == v[c].d) mix(g, &v[c].d, sizeof v[c].d);
        mix(g, &v[c].len, sizeof v[c].len);
        if (t == FN_PG_BLOB || t == FN_PG_TEXT) {
            if (v[c].len < 0 || (v[c].len == 0) != (v[c].p == NULL)) abort();
            if (v[c].len) {
                const uint8_t *p = v[c].p;
                /* Fed whole, values point into the input itself. */
                if (g->lo && (p < g->lo || p + v[c].len > g->hi)) abort();
                mix(g, p, (size_t)v[c].len);
            }
        } else if (v[c].p || v[c].len) {
            abort();
        }
    }
    return 0;
}

static int run(const uint8_t *s, size_t n, size_t chunk, const uint32_t *oids, int ncols, digest *g)
{
    fn_pg_copy p;
    int rc = fn_pg_copy_begin(&p, oids, ncols, row, g);
    for (size_t at = 0; !rc && at < n;) {
        size_t k = chunk && n - at > chunk ? chunk : n - at;
        rc = fn_pg_copy_feed(&p, s + at, k);
        at += k;
    }
    if (!rc) rc = fn_pg_copy_end(&p);
    if (rc && !p.err[0]) abort();
    fn_pg_copy_free(&p);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int ncols = 1 + data[0] % 4;
    if (size < (size_t)ncols + 2) return 0;
    uint32_t oids[4];
    for (int c = 0; c < ncols; c++)
        oids[c] = types[data[1 + c] % (sizeof types / sizeof *types)];
    size_t chunk = data[1 + ncols];
    const uint8_t *s = data + ncols + 2;
    size_t n = size - (size_t)ncols - 2;
    /* A copy of the exact size, so reading past the end is seen by the sanitizers. */
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy) return 0;
    memcpy(copy, s, n);
    digest whole = {.h = 14695981039346656037ULL, .lo = copy, .hi = copy + n, .oids = oids};
    digest cut = {.h = 14695981039346656037ULL, .oids = oids};
    int a = run(copy, n, 0, oids, ncols, &whole);
    int b = run(copy, n, chunk ? chunk : 1, oids, ncols, &cut);
    if (a != b || whole.rows != cut.rows || whole.h != cut.h) abort();
    free(copy);
    return 0;
}
