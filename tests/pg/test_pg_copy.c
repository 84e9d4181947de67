/* test_pg_copy.c: the binary COPY parser (src/store/pg/pg_copy.c) on streams written here, byte by
 * byte, as the PostgreSQL documentation lays the format out: values of every type it decodes,
 * NULLs, a stream cut at every point (into chunks, and short), and damaged streams (signature,
 * flags, field count, lengths, sizes, bytes after the trailer). No server: the parser is pure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "store/pg/pg_copy.h"
#include "store/pg/pg_driver.h"

/* ---- a stream writer ------------------------------------------------------------------------ */

typedef struct out {
    unsigned char b[8192];
    size_t n;
} out;

static void put(out *o, const void *p, size_t n)
{
    assert_true(o->n + n <= sizeof o->b);
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void put16(out *o, int v)
{
    unsigned char b[2] = {(unsigned char)((unsigned)v >> 8), (unsigned char)v};
    put(o, b, 2);
}

static void put32(out *o, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    put(o, b, 4);
}

static void put64(out *o, uint64_t v)
{
    put32(o, (uint32_t)(v >> 32));
    put32(o, (uint32_t)v);
}

static void header(out *o, uint32_t flags, uint32_t ext)
{
    put(o, "PGCOPY\n\377\r\n\0", 11);
    put32(o, flags);
    put32(o, ext);
    for (uint32_t i = 0; i < ext; i++)
        put(o, "x", 1);
}

static void f_int8(out *o, int64_t v)
{
    put32(o, 8);
    put64(o, (uint64_t)v);
}

static void f_float8(out *o, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    put32(o, 8);
    put64(o, u);
}

static void f_bytes(out *o, const void *p, int n)
{
    put32(o, (uint32_t)n);
    put(o, p, (size_t)n);
}

static void f_null(out *o)
{
    put32(o, 0xFFFFFFFFu);
}

/* ---- a reader that records what it was given ------------------------------------------------ */

typedef struct got {
    int rows;
    int ncols;
    fn_pg_value v[8][4];
    unsigned char blob[8][600];
    int stop_at; /* row at which to return FN_ERR_CANCELLED (0: never) */
} got;

static int record(void *ctx, const fn_pg_value *row, int ncols)
{
    got *g = ctx;
    if (g->stop_at && g->rows + 1 == g->stop_at) return FN_ERR_CANCELLED;
    assert_true(g->rows < 8 && ncols <= 4);
    g->ncols = ncols;
    for (int c = 0; c < ncols; c++) {
        g->v[g->rows][c] = row[c];
        if ((row[c].type == FN_PG_BLOB || row[c].type == FN_PG_TEXT) && row[c].len) {
            assert_non_null(row[c].p);
            assert_true(row[c].len <= 600);
            memcpy(g->blob[g->rows], row[c].p, (size_t)row[c].len);
        }
    }
    g->rows++;
    return 0;
}

/* The faces-shaped stream: (int8 id, float8 score, bytea descriptor) x 3, with NULLs in row 2. */
static const uint32_t face_oids[3] = {FN_PG_OID_INT8, FN_PG_OID_FLOAT8, FN_PG_OID_BYTEA};
static float desc[2][128];

static void faces_stream(out *o)
{
    for (int r = 0; r < 2; r++)
        for (int k = 0; k < 128; k++)
            desc[r][k] = (float)(r * 1000 + k) / 7.0f;
    header(o, 0, 0);
    put16(o, 3);
    f_int8(o, 1);
    f_float8(o, 0.75);
    f_bytes(o, desc[0], sizeof desc[0]);
    put16(o, 3);
    f_null(o);
    f_null(o);
    f_null(o);
    put16(o, 3);
    f_int8(o, -9007199254740993LL);
    f_float8(o, -2.5);
    f_bytes(o, desc[1], sizeof desc[1]);
    put16(o, -1);
}

static void check_faces(const got *g)
{
    assert_int_equal(g->rows, 3);
    assert_int_equal(g->ncols, 3);
    assert_int_equal(g->v[0][0].type, FN_PG_INTEGER);
    assert_int_equal(g->v[0][0].i, 1);
    assert_int_equal(g->v[0][1].type, FN_PG_FLOAT);
    assert_true(g->v[0][1].d == 0.75);
    assert_int_equal(g->v[0][1].i, 0);
    assert_int_equal(g->v[0][2].type, FN_PG_BLOB);
    assert_int_equal(g->v[0][2].len, (int)sizeof desc[0]);
    assert_memory_equal(g->blob[0], desc[0], sizeof desc[0]);
    for (int c = 0; c < 3; c++) {
        assert_int_equal(g->v[1][c].type, FN_PG_NULL);
        assert_int_equal(g->v[1][c].i, 0);
        assert_true(g->v[1][c].d == 0);
        assert_null(g->v[1][c].p);
        assert_int_equal(g->v[1][c].len, 0);
    }
    assert_int_equal(g->v[2][0].i, -9007199254740993LL);
    assert_true(g->v[2][1].d == -2.5);
    assert_int_equal(g->v[2][1].i, -2);
    assert_memory_equal(g->blob[2], desc[1], sizeof desc[1]);
}

/* Feeds the stream in chunks of `chunk` bytes (0: whole); returns feed's first error or end's. */
static int parse_stream(const out *o, size_t chunk, const uint32_t *oids, int ncols, got *g)
{
    fn_pg_copy p;
    int rc = fn_pg_copy_begin(&p, oids, ncols, record, g);
    for (size_t at = 0; !rc && at < o->n;) {
        size_t n = chunk && o->n - at > chunk ? chunk : o->n - at;
        rc = fn_pg_copy_feed(&p, o->b + at, n);
        at += n;
    }
    if (!rc) rc = fn_pg_copy_end(&p);
    if (rc) assert_true(p.err[0] != 0); /* every failure says why */
    fn_pg_copy_free(&p);
    return rc;
}

static void test_faces_whole_and_in_chunks(void **state)
{
    (void)state;
    out o = {0};
    faces_stream(&o);
    size_t chunks[] = {0, 1, 2, 3, 7, 64, 500, 513};
    for (size_t k = 0; k < sizeof chunks / sizeof *chunks; k++) {
        got g = {0};
        assert_int_equal(parse_stream(&o, chunks[k], face_oids, 3, &g), FN_OK);
        check_faces(&g);
    }
    /* Two chunks cut at every point. */
    for (size_t cut = 1; cut < o.n; cut++) {
        got g = {0};
        fn_pg_copy p;
        assert_int_equal(fn_pg_copy_begin(&p, face_oids, 3, record, &g), FN_OK);
        assert_int_equal(fn_pg_copy_feed(&p, o.b, cut), FN_OK);
        assert_int_equal(fn_pg_copy_feed(&p, o.b + cut, o.n - cut), FN_OK);
        assert_int_equal(fn_pg_copy_end(&p), FN_OK);
        fn_pg_copy_free(&p);
        check_faces(&g);
    }
}

static void test_truncated_anywhere(void **state)
{
    (void)state;
    out o = {0};
    faces_stream(&o);
    for (size_t len = 0; len < o.n; len++) {
        out t = {0};
        put(&t, o.b, len);
        got g = {0};
        assert_int_equal(parse_stream(&t, 0, face_oids, 3, &g), FN_ERR_TRUNCATED);
        assert_true(g.rows <= 3);
    }
}

static void test_other_types(void **state)
{
    (void)state;
    const uint32_t oids[4] = {FN_PG_OID_INT4, FN_PG_OID_INT2, FN_PG_OID_FLOAT4, FN_PG_OID_TEXT};
    const uint32_t oids2[4] = {FN_PG_OID_BOOL, FN_PG_OID_OID, FN_PG_OID_VARCHAR, FN_PG_OID_BYTEA};
    out o = {0};
    header(&o, 1u << 20 /* a non-critical flag: ignored */, 5 /* an extension: skipped */);
    put16(&o, 4);
    put32(&o, 4);
    put32(&o, (uint32_t)-7);
    put32(&o, 2);
    put16(&o, -3);
    float f = 1.5f;
    uint32_t u;
    memcpy(&u, &f, 4);
    put32(&o, 4);
    put32(&o, u);
    f_bytes(&o, "hello", 5);
    put16(&o, -1);
    got g = {0};
    assert_int_equal(parse_stream(&o, 3, oids, 4, &g), FN_OK);
    assert_int_equal(g.rows, 1);
    assert_int_equal(g.v[0][0].i, -7);
    assert_true(g.v[0][0].d == -7.0);
    assert_int_equal(g.v[0][1].i, -3);
    assert_int_equal(g.v[0][2].type, FN_PG_FLOAT);
    assert_true(g.v[0][2].d == 1.5);
    assert_int_equal(g.v[0][2].i, 1);
    assert_int_equal(g.v[0][3].type, FN_PG_TEXT);
    assert_int_equal(g.v[0][3].len, 5);
    assert_memory_equal(g.blob[0], "hello", 5);

    out o2 = {0};
    header(&o2, 0, 0);
    put16(&o2, 4);
    f_bytes(&o2, "\1", 1);
    put32(&o2, 4);
    put32(&o2, 0xFFFFFFF0u); /* an oid is unsigned */
    f_bytes(&o2, "", 0);
    f_bytes(&o2, "", 0); /* an empty bytea: no pointer, length 0, still a blob */
    put16(&o2, -1);
    got g2 = {0};
    assert_int_equal(parse_stream(&o2, 0, oids2, 4, &g2), FN_OK);
    assert_int_equal(g2.v[0][0].i, 1);
    assert_int_equal(g2.v[0][1].i, 0xFFFFFFF0LL);
    assert_int_equal(g2.v[0][2].type, FN_PG_TEXT);
    assert_int_equal(g2.v[0][3].type, FN_PG_BLOB);
    assert_int_equal(g2.v[0][3].len, 0);
    assert_null(g2.v[0][3].p);
}

/* A faces stream with one thing changed by `damage`, which must fail as FN_ERR_CORRUPT. */
static void expect_corrupt(void (*damage)(out *))
{
    out o = {0};
    damage(&o);
    for (size_t chunk = 0; chunk < 4; chunk++) {
        got g = {0};
        assert_int_equal(parse_stream(&o, chunk, face_oids, 3, &g), FN_ERR_CORRUPT);
    }
}

static void bad_signature(out *o)
{
    faces_stream(o);
    o->b[7] = 0xFE;
}

static void critical_flag(out *o)
{
    faces_stream(o);
    o->b[14] = 1; /* flags bit 0 */
}

static void oid_flag(out *o)
{
    faces_stream(o);
    o->b[13] = 1; /* flags bit 16: an OID field per tuple */
}

static void wrong_field_count(out *o)
{
    header(o, 0, 0);
    put16(o, 2);
    f_int8(o, 1);
    f_float8(o, 1);
    put16(o, -1);
}

static void too_many_fields(out *o)
{
    header(o, 0, 0);
    put16(o, 4);
    f_int8(o, 1);
    f_float8(o, 1);
    f_null(o);
    f_null(o);
    put16(o, -1);
}

static void negative_length(out *o)
{
    header(o, 0, 0);
    put16(o, 3);
    f_int8(o, 1);
    put32(o, (uint32_t)-2);
    f_null(o);
    put16(o, -1);
}

static void int8_of_four_bytes(out *o)
{
    header(o, 0, 0);
    put16(o, 3);
    put32(o, 4);
    put32(o, 1);
    f_float8(o, 1);
    f_null(o);
    put16(o, -1);
}

static void float8_of_nine_bytes(out *o)
{
    header(o, 0, 0);
    put16(o, 3);
    f_int8(o, 1);
    f_bytes(o, "123456789", 9);
    f_null(o);
    put16(o, -1);
}

static void after_trailer(out *o)
{
    faces_stream(o);
    put16(o, 3);
}

static void test_corrupt(void **state)
{
    (void)state;
    expect_corrupt(bad_signature);
    expect_corrupt(critical_flag);
    expect_corrupt(oid_flag);
    expect_corrupt(wrong_field_count);
    expect_corrupt(too_many_fields);
    expect_corrupt(negative_length);
    expect_corrupt(int8_of_four_bytes);
    expect_corrupt(float8_of_nine_bytes);
    expect_corrupt(after_trailer);
    /* Garbage fails at its first byte, not at the end of a stream that never comes. */
    fn_pg_copy p;
    assert_int_equal(fn_pg_copy_begin(&p, face_oids, 3, record, NULL), FN_OK);
    assert_int_equal(fn_pg_copy_feed(&p, "X", 1), FN_ERR_CORRUPT);
    assert_int_equal(fn_pg_copy_feed(&p, "PGCOPY", 6), FN_ERR_STATE); /* stays failed */
    assert_int_equal(fn_pg_copy_end(&p), FN_ERR_STATE);
    fn_pg_copy_free(&p);
}

static void test_reader_stops(void **state)
{
    (void)state;
    out o = {0};
    faces_stream(&o);
    got g = {.stop_at = 2};
    assert_int_equal(parse_stream(&o, 0, face_oids, 3, &g), FN_ERR_CANCELLED);
    assert_int_equal(g.rows, 1);
}

static void test_begin_refuses(void **state)
{
    (void)state;
    fn_pg_copy p;
    const uint32_t numeric = 1700, ts = 1184;
    assert_int_equal(fn_pg_copy_begin(&p, &numeric, 1, record, NULL), FN_ERR_UNSUPPORTED);
    assert_non_null(strstr(p.err, "1700"));
    fn_pg_copy_free(&p);
    assert_int_equal(fn_pg_copy_begin(&p, &ts, 1, record, NULL), FN_ERR_UNSUPPORTED);
    fn_pg_copy_free(&p);
    assert_int_equal(fn_pg_copy_begin(&p, face_oids, 0, record, NULL), FN_ERR_INVALID);
    fn_pg_copy_free(&p);
    assert_int_equal(fn_pg_copy_begin(&p, face_oids, FN_PG_COPY_MAX_COLS + 1, record, NULL),
                     FN_ERR_INVALID);
    fn_pg_copy_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faces_whole_and_in_chunks),
        cmocka_unit_test(test_truncated_anywhere),
        cmocka_unit_test(test_other_types),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_reader_stops),
        cmocka_unit_test(test_begin_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
