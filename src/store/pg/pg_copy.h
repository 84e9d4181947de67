/* pg_copy.h: a parser of PostgreSQL's binary COPY format (COPY ... TO STDOUT (FORMAT binary)), for
 * the store's bulk reads (src/store only). It is pure: no libpq, no I/O, so the fuzz target
 * (fuzz/pgcopy) and the unit tests (tests/pg/test_pg_copy.c) drive it with bytes of their own.
 *
 * The stream is: an 11-byte signature "PGCOPY\n\377\r\n\0", a 32-bit flags word, a 32-bit header
 * extension length and that many bytes; then tuples, each a 16-bit field count and per field a
 * 32-bit length (-1: NULL) and that many bytes; then a trailer, a field count of -1. Integers are
 * big-endian. Bytes arrive in chunks cut anywhere (libpq hands over one CopyData message at a
 * time, which in practice is one tuple, but nothing here relies on that).
 *
 * The caller declares the type (PostgreSQL type oid) of each column, as the server described the
 * query: the binary form carries no types of its own. Each value is checked against its type
 * (an int8 is exactly 8 bytes, ...) and decoded into an fn_pg_value. Anything that does not fit
 * (a bad signature, a critical flag we do not know, a tuple with another number of fields than
 * declared, a negative length other than -1, a value of the wrong size, bytes after the trailer)
 * is FN_ERR_CORRUPT with a message saying where; a stream that ends before its trailer is
 * FN_ERR_TRUNCATED.
 *
 * Threading: one parser is used by one thread at a time; parsers are independent. */
#ifndef FN_STORE_PG_COPY_H
#define FN_STORE_PG_COPY_H

#include <stddef.h>
#include <stdint.h>

/* The most columns a bulk read may have. */
#define FN_PG_COPY_MAX_COLS 32

/* PostgreSQL type oids the parser decodes (pg_type.dat; stable across versions). */
enum {
    FN_PG_OID_BOOL = 16,
    FN_PG_OID_BYTEA = 17,
    FN_PG_OID_INT8 = 20,
    FN_PG_OID_INT2 = 21,
    FN_PG_OID_INT4 = 23,
    FN_PG_OID_TEXT = 25,
    FN_PG_OID_OID = 26,
    FN_PG_OID_FLOAT4 = 700,
    FN_PG_OID_FLOAT8 = 701,
    FN_PG_OID_VARCHAR = 1043,
};

/* One decoded value. `type` is pg_driver.h's FN_PG_INTEGER, FN_PG_FLOAT, FN_PG_BLOB, FN_PG_TEXT or
 * FN_PG_NULL. Integers (and booleans) fill i and d; floats d and i (truncated toward zero,
 * saturating, NaN 0: SQLite's conversion); bytea and text point into the parser's buffer (p, len;
 * text is not NUL-terminated; p is NULL when len is 0), valid during the row callback only; NULL
 * reads as zeros. */
typedef struct fn_pg_value {
    int type;
    int len;
    int64_t i;
    double d;
    const void *p;
} fn_pg_value;

/* Called once per tuple with its `ncols` values. 0 goes on; a negative fn_err stops the parse,
 * and fn_pg_copy_feed returns it. */
typedef int (*fn_pg_copy_row_fn)(void *ctx, const fn_pg_value *row, int ncols);

typedef struct fn_pg_copy {
    int ncols;
    uint32_t oids[FN_PG_COPY_MAX_COLS];
    fn_pg_copy_row_fn row;
    void *ctx;
    int state;          /* 0 before the header, 1 in the tuples, 2 after the trailer, 3 failed */
    unsigned char *buf; /* bytes of a tuple (or header) not yet complete */
    size_t len, cap;    /* of buf */
    int64_t rows;       /* tuples delivered */
    uint64_t offset;    /* bytes of the stream consumed before buf */
    fn_pg_value vals[FN_PG_COPY_MAX_COLS];
    char err[160];      /* why it failed ("" while it has not) */
    int reader_stopped; /* 1: the row callback's error stopped it (not damage) */
} fn_pg_copy;

/* Readies `p` for a stream of tuples of `ncols` columns of types oids[0..ncols). FN_OK, or
 * FN_ERR_INVALID (ncols outside 1..FN_PG_COPY_MAX_COLS) or FN_ERR_UNSUPPORTED (a type the parser
 * does not decode), with the reason in p->err. The caller calls fn_pg_copy_free afterwards
 * either way. */
int fn_pg_copy_begin(fn_pg_copy *p, const uint32_t *oids, int ncols, fn_pg_copy_row_fn row,
                     void *ctx);

/* Parses the next `n` bytes of the stream, calling the row callback for each complete tuple.
 * FN_OK; FN_ERR_CORRUPT (reason in p->err); FN_ERR_NOMEM; or the callback's fn_err. After an
 * error, later calls return FN_ERR_STATE. */
int fn_pg_copy_feed(fn_pg_copy *p, const void *data, size_t n);

/* The stream has ended: FN_OK when it ended with its trailer and nothing after it, else
 * FN_ERR_TRUNCATED (reason in p->err), or the earlier error's FN_ERR_STATE. */
int fn_pg_copy_end(fn_pg_copy *p);

/* Frees the buffer (the struct itself is the caller's). */
void fn_pg_copy_free(fn_pg_copy *p);

#endif
