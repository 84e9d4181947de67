/* bench_pg_results: what reading a result costs in the driver's binary versus text result format
 * (src/store/pg/pg_driver.c), on rows shaped like the library's faces (ids, doubles, a short text,
 * a 512-byte descriptor blob).
 *
 *   bench_pg_results URL binary|text [rows] [passes]
 *
 * Fills table bench_faces once (rows, default 20000), then runs passes (default 10) of
 * SELECT * reading every column through fn_pg_column_*, and prints rows read per second. Time it
 * from outside, A against B interleaved: farm-bench --vs '... text' -- ... binary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/pg/pg_driver.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int die(fn_pg_conn *c, const char *what)
{
    fprintf(stderr, "bench_pg_results: %s: %s\n", what, fn_pg_errmsg(c));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_pg_results URL binary|text [rows] [passes]\n");
        return 2;
    }
    int rows = argc > 3 ? atoi(argv[3]) : 20000, passes = argc > 4 ? atoi(argv[4]) : 10;
    fn_pg_conn *c = NULL;
    if (fn_pg_connect(argv[1], &c)) return die(c, "connect");
    fn_pg_set_binary_results(c, strcmp(argv[2], "binary") == 0);
    if (fn_pg_exec(c, "CREATE TABLE IF NOT EXISTS bench_faces(id BIGINT PRIMARY KEY, photo_id "
                      "BIGINT, x DOUBLE PRECISION, y DOUBLE PRECISION, score DOUBLE PRECISION, "
                      "state TEXT, descriptor BYTEA)"))
        return die(c, "create");
    fn_pg_stmt *n = NULL;
    if (fn_pg_prepare(c, "SELECT count(*) FROM bench_faces", &n) || fn_pg_step(n) != FN_PG_ROW)
        return die(c, "count");
    int have = fn_pg_column_int(n, 0);
    fn_pg_finalize(n);
    if (have < rows) {
        fn_pg_stmt *ins = NULL;
        if (fn_pg_exec(c, "BEGIN") ||
            fn_pg_prepare(c, "INSERT INTO bench_faces VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)", &ins))
            return die(c, "insert");
        float desc[128];
        for (int i = have; i < rows; i++) {
            for (int k = 0; k < 128; k++)
                desc[k] = (float)((i * 31 + k) % 97) / 97.0f;
            fn_pg_bind_int64(ins, 1, i);
            fn_pg_bind_int64(ins, 2, i / 3);
            fn_pg_bind_double(ins, 3, i * 0.25);
            fn_pg_bind_double(ins, 4, i * 0.5);
            fn_pg_bind_double(ins, 5, 0.9);
            fn_pg_bind_text(ins, 6, "auto", -1, FN_PG_STATIC);
            fn_pg_bind_blob(ins, 7, desc, sizeof desc, FN_PG_STATIC);
            if (fn_pg_step(ins) != FN_PG_DONE) return die(c, "insert");
            fn_pg_reset(ins);
        }
        fn_pg_finalize(ins);
        if (fn_pg_exec(c, "COMMIT")) return die(c, "commit");
    }
    fn_pg_stmt *sel = NULL;
    if (fn_pg_prepare(c,
                      "SELECT id, photo_id, x, y, score, state, descriptor FROM bench_faces "
                      "WHERE id < ?1",
                      &sel))
        return die(c, "select");
    double t0 = now_s(), sum = 0;
    long read = 0;
    for (int p = 0; p < passes; p++) {
        fn_pg_reset(sel);
        fn_pg_bind_int(sel, 1, rows);
        int rc;
        while ((rc = fn_pg_step(sel)) == FN_PG_ROW) {
            sum += (double)fn_pg_column_int64(sel, 0) + (double)fn_pg_column_int64(sel, 1) +
                   fn_pg_column_double(sel, 2) + fn_pg_column_double(sel, 3) +
                   fn_pg_column_double(sel, 4) + (double)fn_pg_column_bytes(sel, 5);
            const float *d = fn_pg_column_blob(sel, 6);
            if (d && fn_pg_column_bytes(sel, 6) == 512) sum += d[7];
            read++;
        }
        if (rc != FN_PG_DONE) return die(c, "step");
    }
    double dt = now_s() - t0;
    printf("%s: %ld rows in %.3f s: %.0f rows/s (checksum %.1f)\n", argv[2], read, dt,
           (double)read / dt, sum);
    fn_pg_finalize(sel);
    fn_pg_close(c);
    return 0;
}
