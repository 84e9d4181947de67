/* pg_copy.c: the binary COPY parser of pg_copy.h.
 *
 * Bytes are parsed where they arrive when they hold whole tuples; only the incomplete tail of a
 * chunk is copied into the parser's buffer, to be completed by the next chunk. So a stream whose
 * chunks are whole tuples (what libpq hands over) is never copied, and one cut anywhere else is
 * parsed the same. Every length read from the stream is checked against what remains before it
 * is used: the input is another program's output and may be damaged. */
#include "store/pg/pg_copy.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "store/pg/pg_driver.h"

static const unsigned char signature[11] = {'P',  'G',  'C',  'O',  'P', 'Y',
                                            '\n', 0xFF, '\r', '\n', 0};

/* The header: signature, flags, extension length (its bytes follow). */
#define HEADER_FIXED 19

static uint32_t be32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static uint64_t be64(const unsigned char *b)
{
    return (uint64_t)be32(b) << 32 | be32(b + 4);
}

static int supported(uint32_t oid)
{
    switch (oid) {
    case FN_PG_OID_BOOL:
    case FN_PG_OID_BYTEA:
    case FN_PG_OID_INT8:
    case FN_PG_OID_INT2:
    case FN_PG_OID_INT4:
    case FN_PG_OID_TEXT:
    case FN_PG_OID_OID:
    case FN_PG_OID_FLOAT4:
    case FN_PG_OID_FLOAT8:
    case FN_PG_OID_VARCHAR:
        return 1;
    default:
        return 0;
    }
}

/* SQLite's conversion of a real to an integer, as the row-by-row readers give it. */
static int64_t d2i(double d)
{
    if (isnan(d)) return 0;
    if (d >= 9223372036854775807.0) return INT64_MAX;
    if (d <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)d;
}

static int fail(fn_pg_copy *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(fn_pg_copy *p, int code, const char *fmt, ...)
{
    char what[120];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(p->err, sizeof p->err, "binary COPY data damaged at byte %llu: %s",
             (unsigned long long)p->offset, what);
    p->state = 3;
    return code;
}

int fn_pg_copy_begin(fn_pg_copy *p, const uint32_t *oids, int ncols, fn_pg_copy_row_fn row,
                     void *ctx)
{
    memset(p, 0, sizeof *p);
    p->row = row;
    p->ctx = ctx;
    if (ncols < 1 || ncols > FN_PG_COPY_MAX_COLS) {
        snprintf(p->err, sizeof p->err, "a bulk read has 1 to %d columns, not %d",
                 FN_PG_COPY_MAX_COLS, ncols);
        p->state = 3;
        return FN_ERR_INVALID;
    }
    for (int i = 0; i < ncols; i++) {
        if (!supported(oids[i])) {
            snprintf(p->err, sizeof p->err,
                     "column %d has type oid %u, which a bulk read does not decode", i + 1,
                     (unsigned)oids[i]);
            p->state = 3;
            return FN_ERR_UNSUPPORTED;
        }
        p->oids[i] = oids[i];
    }
    p->ncols = ncols;
    return FN_OK;
}

/* Decodes one field of column `col` (len bytes at b; len -1: NULL). */
static int decode(fn_pg_copy *p, int col, const unsigned char *b, int32_t len, fn_pg_value *v)
{
    memset(v, 0, sizeof *v);
    if (len < 0) {
        v->type = FN_PG_NULL;
        return FN_OK;
    }
    uint32_t oid = p->oids[col];
    int want = 0;
    switch (oid) {
    case FN_PG_OID_BOOL:
        want = 1;
        break;
    case FN_PG_OID_INT2:
        want = 2;
        break;
    case FN_PG_OID_INT4:
    case FN_PG_OID_OID:
    case FN_PG_OID_FLOAT4:
        want = 4;
        break;
    case FN_PG_OID_INT8:
    case FN_PG_OID_FLOAT8:
        want = 8;
        break;
    default:
        break;
    }
    if (want && len != want)
        return fail(p, FN_ERR_CORRUPT, "column %d holds %d bytes, not its type's size", col + 1,
                    (int)len);
    switch (oid) {
    case FN_PG_OID_BOOL:
        v->type = FN_PG_INTEGER;
        v->i = b[0] != 0;
        break;
    case FN_PG_OID_INT2:
        v->type = FN_PG_INTEGER;
        v->i = (int16_t)(uint16_t)(b[0] << 8 | b[1]);
        break;
    case FN_PG_OID_INT4:
        v->type = FN_PG_INTEGER;
        v->i = (int32_t)be32(b);
        break;
    case FN_PG_OID_OID:
        v->type = FN_PG_INTEGER;
        v->i = be32(b);
        break;
    case FN_PG_OID_INT8:
        v->type = FN_PG_INTEGER;
        v->i = (int64_t)be64(b);
        break;
    case FN_PG_OID_FLOAT4: {
        uint32_t u = be32(b);
        float f;
        memcpy(&f, &u, sizeof f);
        v->type = FN_PG_FLOAT;
        v->d = f;
        v->i = d2i(v->d);
        return FN_OK;
    }
    case FN_PG_OID_FLOAT8: {
        uint64_t u = be64(b);
        memcpy(&v->d, &u, sizeof v->d);
        v->type = FN_PG_FLOAT;
        v->i = d2i(v->d);
        return FN_OK;
    }
    case FN_PG_OID_BYTEA:
        v->type = FN_PG_BLOB;
        v->len = len;
        v->p = len ? b : NULL;
        return FN_OK;
    default: /* the text types: their binary form is the text */
        v->type = FN_PG_TEXT;
        v->len = len;
        v->p = len ? b : NULL;
        return FN_OK;
    }
    v->d = (double)v->i;
    return FN_OK;
}

/* Parses what it can of b[0..n): the header first, then whole tuples. Sets *used to the bytes
 * consumed (a partial header or tuple is left for later). */
static int parse(fn_pg_copy *p, const unsigned char *b, size_t n, size_t *used)
{
    size_t at = 0;
    *used = 0;
    if (p->state == 0) {
        if (n < HEADER_FIXED) {
            /* Check the signature as far as it goes, so garbage fails at once. */
            if (memcmp(b, signature, n < sizeof signature ? n : sizeof signature) != 0)
                return fail(p, FN_ERR_CORRUPT, "no PGCOPY signature");
            return FN_OK;
        }
        if (memcmp(b, signature, sizeof signature) != 0)
            return fail(p, FN_ERR_CORRUPT, "no PGCOPY signature");
        uint32_t flags = be32(b + 11);
        /* Bits 0-15 are backwards-incompatible changes, bit 16 says each tuple carries an OID
         * field (gone since PostgreSQL 12): either would be misread. Bits 17-31 may be ignored. */
        if (flags & 0x1FFFFu)
            return fail(p, FN_ERR_CORRUPT, "header flags 0x%x that this reader does not know",
                        (unsigned)flags);
        uint32_t ext = be32(b + 15);
        if (ext > INT32_MAX)
            return fail(p, FN_ERR_CORRUPT, "header extension of %u bytes", (unsigned)ext);
        if (n - HEADER_FIXED < ext) return FN_OK; /* the extension is still coming */
        at = HEADER_FIXED + ext;
        p->offset += at;
        *used = at;
        p->state = 1;
    }
    while (p->state == 1 && n - at >= 2) {
        const unsigned char *t = b + at;
        int16_t nf = (int16_t)(uint16_t)(t[0] << 8 | t[1]);
        if (nf == -1) {
            p->offset += 2;
            at += 2;
            *used = at;
            p->state = 2;
            break;
        }
        if (nf != p->ncols)
            return fail(p, FN_ERR_CORRUPT, "a tuple of %d fields where the query has %d", nf,
                        p->ncols);
        /* Find the tuple's end before decoding, so a partial tuple is left whole for later. */
        size_t q = 2;
        for (int c = 0; c < nf; c++) {
            if (n - at - q < 4) return FN_OK;
            int32_t len = (int32_t)be32(t + q);
            if (len < -1)
                return fail(p, FN_ERR_CORRUPT, "column %d has length %d", c + 1, (int)len);
            q += 4;
            if (len > 0) {
                if (n - at - q < (size_t)len) return FN_OK;
                q += (size_t)len;
            }
        }
        size_t r = 2;
        for (int c = 0; c < nf; c++) {
            int32_t len = (int32_t)be32(t + r);
            r += 4;
            int code = decode(p, c, t + r, len, &p->vals[c]);
            if (code) return code;
            if (len > 0) r += (size_t)len;
        }
        p->offset += q;
        at += q;
        *used = at;
        p->rows++;
        int code = p->row ? p->row(p->ctx, p->vals, nf) : 0;
        if (code < 0) {
            snprintf(p->err, sizeof p->err, "stopped by the reader");
            p->reader_stopped = 1;
            p->state = 3;
            return code;
        }
    }
    if (p->state == 2 && at < n)
        return fail(p, FN_ERR_CORRUPT, "%zu bytes after the trailer", n - at);
    return FN_OK;
}

static int keep(fn_pg_copy *p, const unsigned char *b, size_t n)
{
    if (p->len + n > p->cap) {
        size_t c = p->cap ? p->cap : 1024;
        while (c < p->len + n)
            c *= 2;
        unsigned char *nb = realloc(p->buf, c);
        if (!nb) {
            snprintf(p->err, sizeof p->err, "out of memory buffering binary COPY data");
            p->state = 3;
            return FN_ERR_NOMEM;
        }
        p->buf = nb;
        p->cap = c;
    }
    memcpy(p->buf + p->len, b, n);
    p->len += n;
    return FN_OK;
}

int fn_pg_copy_feed(fn_pg_copy *p, const void *data, size_t n)
{
    if (p->state == 3) return FN_ERR_STATE;
    const unsigned char *b = data;
    size_t used;
    int code;
    if (n == 0) return FN_OK;
    if (p->state == 2) {
        code = parse(p, b, n, &used); /* bytes after the trailer: damaged */
        return code;
    }
    if (p->len == 0) {
        /* The common case: parse in place, keep only the incomplete tail. */
        code = parse(p, b, n, &used);
        if (code) return code;
        return used < n ? keep(p, b + used, n - used) : FN_OK;
    }
    if ((code = keep(p, b, n))) return code;
    code = parse(p, p->buf, p->len, &used);
    if (code) return code;
    memmove(p->buf, p->buf + used, p->len - used);
    p->len -= used;
    return FN_OK;
}

int fn_pg_copy_end(fn_pg_copy *p)
{
    if (p->state == 3) return FN_ERR_STATE;
    if (p->state == 2 && p->len == 0) return FN_OK;
    snprintf(p->err, sizeof p->err,
             "binary COPY data ends early, after %lld tuples and %llu bytes (%s)",
             (long long)p->rows, (unsigned long long)(p->offset + p->len),
             p->state == 0 ? "in the header" : "no trailer");
    p->state = 3;
    return FN_ERR_TRUNCATED;
}

void fn_pg_copy_free(fn_pg_copy *p)
{
    free(p->buf);
    p->buf = NULL;
    p->len = p->cap = 0;
}
