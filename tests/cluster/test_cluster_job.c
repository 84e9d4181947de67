/* test_cluster_job.c: the clustering job end to end on a small library whose faces are inserted
 * through the store with generated descriptors (known identities): people found, stable cluster
 * ids across incremental runs, user decisions untouched by --full, and cancel + resume giving the
 * uninterrupted run's result. Inline engine (0 threads): deterministic. */
#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../tasks/helpers.h"
#include "store/store_sql.h"
#include "tasks/cluster.h"

#define D       128
#define N_IDENT 6
#define PER     5

static float centre[N_IDENT + 8][D];

static double gauss(uint64_t *r)
{
    *r = *r * 6364136223846793005ULL + 1442695040888963407ULL;
    double u = ((double)(*r >> 11) + 0.5) / 9007199254740992.0;
    *r = *r * 6364136223846793005ULL + 1442695040888963407ULL;
    double v = ((double)(*r >> 11) + 0.5) / 9007199254740992.0;
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static void centres(void)
{
    uint64_t r = 99;
    for (int i = 0; i < N_IDENT + 8; i++)
        for (int k = 0; k < D; k++)
            centre[i][k] = (float)(0.05 * gauss(&r));
}

/* Adds one photo per face: identity `id` (or a stranger when id < 0), `n` faces, noise from seed.
 */
static void add_faces(const char *lib, const int *ids, size_t n, uint64_t seed, const char *tag)
{
    fn_store *s = h_store(lib);
    fn_store_tx *tx;
    assert_int_equal(fn_store_begin(s, &tx), 0);
    uint64_t r = seed;
    for (size_t i = 0; i < n; i++) {
        float desc[D];
        int id = ids[i];
        for (int k = 0; k < D; k++)
            desc[k] =
                (id >= 0 ? centre[id][k] : (float)(0.05 * gauss(&r))) + (float)(0.02 * gauss(&r));
        fn_face_put f = {
            .x = 1, .y = 1, .width = 100, .height = 100, .score = 0.9f, .descriptor = desc};
        char path[256];
        snprintf(path, sizeof path, "/photos/%s-%03zu.jpg", tag, i);
        fn_photo_put p = {.kind = FN_PUT_RESULT,
                          .path = path,
                          .size = 1,
                          .mtime_ns = 1,
                          .faces = &f,
                          .n_faces = 1,
                          .taken_at = -1,
                          .job_id = 0};
        assert_int_equal(fn_library_put_photos(tx, &p, 1, NULL), 0);
    }
    assert_int_equal(fn_store_commit(tx), 0);
    fn_store_close(s);
}

/* The first library: N_IDENT people of PER faces each, interleaved, and 4 strangers. The face
 * with id i belongs to ident_of[i]. */
static int ident_of[1000];
static size_t n_faces;

static void base_library(const char *lib)
{
    int ids[N_IDENT * PER + 4];
    size_t n = 0;
    for (int k = 0; k < PER; k++)
        for (int i = 0; i < N_IDENT; i++)
            ids[n++] = i;
    for (int k = 0; k < 4; k++)
        ids[n++] = -1 - k;
    add_faces(lib, ids, n, 7, "base");
    for (size_t i = 0; i < n; i++)
        ident_of[i + 1] = ids[i];
    n_faces = n;
}

static fn_job_info *run_cluster(fn_engine *e, const char *payload)
{
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "clustering", payload, FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    fn_job_info *j = NULL;
    assert_int_equal(fn_job_inspect(e, id, &j), 0);
    return j;
}

/* face id -> cluster id, person id, state */
typedef struct placed {
    int64_t cluster, person;
    char state[16];
} placed;

static void read_faces(const char *lib, placed *out, size_t n)
{
    fn_store *s = h_store(lib);
    fn_sql_stmt *st;
    assert_int_equal(fn_sql_prepare(s,
                                    "SELECT id, coalesce(cluster_id, 0),"
                                    " coalesce(person_id, 0), state FROM faces ORDER BY id",
                                    &st),
                     FN_OK);
    memset(out, 0, n * sizeof *out);
    while (fn_sql_step(st) == FN_SQL_ROW) {
        int64_t id = fn_sql_column_int64(st, 0);
        assert_true(id >= 1 && (size_t)id < n);
        out[id].cluster = fn_sql_column_int64(st, 1);
        out[id].person = fn_sql_column_int64(st, 2);
        snprintf(out[id].state, sizeof out[id].state, "%s", fn_sql_column_text(st, 3));
    }
    fn_sql_finalize(st);
    fn_store_close(s);
}

static void exec_sql(const char *lib, const char *sql)
{
    fn_store *s = h_store(lib);
    assert_int_equal(fn_sql_exec(s, sql), FN_OK);
    fn_store_close(s);
}

/* Each identity is exactly one cluster, strangers none. */
static void check_people(const placed *p, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        if (ident_of[i] < 0) {
            assert_int_equal(p[i].cluster, 0);
            continue;
        }
        assert_true(p[i].cluster > 0);
        for (size_t j = 1; j < n; j++)
            if (ident_of[j] >= 0)
                assert_int_equal(p[i].cluster == p[j].cluster, ident_of[i] == ident_of[j]);
    }
}

static void test_end_to_end(void **state)
{
    (void)state;
    H_PG_ENGINE_OR_SKIP(); /* before anything is allocated */
    char *lib = h_tmpdir("cluster");
    fn_engine *e = h_engine(lib);
    base_library(lib);
    fn_job_info *j = run_cluster(e, "{}");
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(h_counter(j, "faces_total"), (int64_t)n_faces);
    assert_int_equal(h_counter(j, "faces_done"), (int64_t)n_faces);
    assert_int_equal(h_counter(j, "clusters_created"), N_IDENT);
    assert_int_equal(h_counter(j, "noise_count"), 4);
    fn_job_info_free(j);
    placed p[64];
    read_faces(lib, p, 64);
    check_people(p, n_faces + 1);
    /* the clusters' sizes were written */
    fn_store *s = h_store(lib);
    fn_sql_stmt *st;
    fn_sql_prepare(s, "SELECT count(*), min(size), max(size) FROM clusters", &st);
    assert_int_equal(fn_sql_step(st), FN_SQL_ROW);
    assert_int_equal(fn_sql_column_int(st, 0), N_IDENT);
    assert_int_equal(fn_sql_column_int(st, 1), PER);
    assert_int_equal(fn_sql_column_int(st, 2), PER);
    fn_sql_finalize(st);
    fn_store_close(s);
    fn_engine_close(e);
    h_rmrf(lib);
    free(lib);
}

static void test_incremental_stable(void **state)
{
    (void)state;
    H_PG_ENGINE_OR_SKIP(); /* before anything is allocated */
    char *lib = h_tmpdir("cluster");
    fn_engine *e = h_engine(lib);
    base_library(lib);
    fn_job_info_free(run_cluster(e, "{}"));
    placed before[64], after[64];
    read_faces(lib, before, 64);
    /* one more face of each person, and a new person of three faces */
    int ids[N_IDENT + 3];
    for (int i = 0; i < N_IDENT; i++)
        ids[i] = i;
    for (int i = 0; i < 3; i++)
        ids[N_IDENT + i] = N_IDENT;
    add_faces(lib, ids, N_IDENT + 3, 1234, "more");
    for (int i = 0; i < N_IDENT + 3; i++)
        ident_of[n_faces + 1 + (size_t)i] = ids[i];
    fn_job_info *j = run_cluster(e, "{}");
    /* only the new faces are taken */
    assert_int_equal(h_counter(j, "faces_total"), N_IDENT + 3);
    assert_int_equal(h_counter(j, "clusters_created"), 1);
    fn_job_info_free(j);
    read_faces(lib, after, 64);
    size_t n = n_faces + N_IDENT + 3;
    for (size_t i = 1; i <= n_faces; i++)
        assert_int_equal(after[i].cluster, before[i].cluster); /* ids kept */
    check_people(after, n + 1);
    /* an incremental run with nothing new changes nothing */
    j = run_cluster(e, "{}");
    assert_int_equal(h_counter(j, "faces_total"), 0);
    fn_job_info_free(j);
    placed again[64];
    read_faces(lib, again, 64);
    assert_memory_equal(again, after, sizeof again);
    fn_engine_close(e);
    h_rmrf(lib);
    free(lib);
}

static void test_full_keeps_user_decisions(void **state)
{
    (void)state;
    H_PG_ENGINE_OR_SKIP(); /* before anything is allocated */
    char *lib = h_tmpdir("cluster");
    fn_engine *e = h_engine(lib);
    base_library(lib);
    fn_job_info_free(run_cluster(e, "{}"));
    placed before[64], after[64];
    read_faces(lib, before, 64);
    /* a person confirmed face 1 (identity 0) and moved face 2 (identity 1) to them by hand;
     * face 3 is ignored; face 4 was drawn by the user */
    exec_sql(lib, "INSERT INTO persons (id, name, created_at) VALUES (7, 'Ann', 0);"
                  "UPDATE faces SET person_id = 7, state = 'confirmed' WHERE id IN (1, 2);"
                  "UPDATE faces SET state = 'ignored' WHERE id = 3;"
                  "UPDATE faces SET origin = 'user' WHERE id = 4;");
    read_faces(lib, before, 64);
    fn_job_info *j = run_cluster(e, "{\"full\":true}");
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    fn_job_info_free(j);
    read_faces(lib, after, 64);
    for (int i = 1; i <= 4; i++) {
        assert_int_equal(after[i].cluster, before[i].cluster);
        assert_int_equal(after[i].person, before[i].person);
        assert_string_equal(after[i].state, before[i].state);
    }
    /* the person is never merged into a cluster, and the other faces of identity 0 keep their
     * cluster id (it mostly stays) or join the person; their state stays auto */
    for (size_t i = 5; i <= n_faces; i++) {
        assert_string_equal(after[i].state, "auto");
        if (ident_of[i] == 2) assert_int_equal(after[i].cluster, before[i].cluster);
    }
    fn_engine_close(e);
    h_rmrf(lib);
    free(lib);
}

typedef struct cancel_at {
    fn_engine *e;
    fn_job_id id;
    size_t at;
} cancel_at;

static void cancel_hook(size_t face, void *arg)
{
    cancel_at *c = arg;
    if (face == c->at) assert_int_equal(fn_job_cancel(c->e, c->id), 0);
}

/* Called between the cancel and the resume (may be NULL). */
static void (*between)(void);

/* Runs `payload` on library b cancelled while face `at` is handed over, then resumed; returns
 * how many faces the cancelled job had written. */
static int64_t cancel_and_resume(fn_engine *eb, const char *payload, size_t at)
{
    fn_job_id id;
    assert_int_equal(fn_enqueue(eb, "clustering", payload, FN_PRIO_NORMAL, &id), 0);
    cancel_at c = {eb, id, at};
    fn_cluster_test_hook = cancel_hook;
    fn_cluster_test_hook_arg = &c;
    assert_int_equal(fn_engine_run_pending(eb, 0, NULL), 0);
    fn_cluster_test_hook = NULL;
    fn_job_info *j = NULL;
    assert_int_equal(fn_job_inspect(eb, id, &j), 0);
    assert_int_equal(j->state, FN_JOB_CANCELLED);
    int64_t done = h_counter(j, "faces_done");
    fn_job_info_free(j);
    if (between) between();
    fn_job_id nid;
    assert_int_equal(fn_job_resume(eb, id, &nid), 0);
    assert_int_equal(fn_engine_run_pending(eb, 0, NULL), 0);
    assert_int_equal(fn_job_inspect(eb, nid, &j), 0);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    fn_job_info_free(j);
    return done;
}

static const char *lib_b;

/* A face of person 0 added to library b while its run is cancelled. */
static void add_one(void)
{
    int id = 0;
    add_faces(lib_b, &id, 1, 777, "between");
}

static void test_cancel_resume_same_result(void **state)
{
    (void)state;
    H_PG_ENGINE_OR_SKIP(); /* before anything is allocated */
    /* two identical libraries: one clustered at once, one cancelled after its first batch and
     * resumed; a full run, then an incremental one whose new person is split by the cancel */
    char *a = h_tmpdir("cluster"), *b = h_tmpdir("cluster");
    fn_engine *ea = h_engine(a), *eb = h_engine(b);
    base_library(a);
    base_library(b);
    const char *payload = "{\"batch\":4,\"full\":true}";
    fn_job_info_free(run_cluster(ea, payload));
    int64_t done = cancel_and_resume(eb, payload, 5);
    assert_true(done > 0 && done < (int64_t)n_faces); /* some written, not all */
    placed pa[64], pb[64];
    read_faces(a, pa, 64);
    read_faces(b, pb, 64);
    assert_memory_equal(pa, pb, sizeof pa);
    check_people(pb, n_faces + 1);

    /* new faces: one per person (indices 0..5 of the run), then a new person (6..8) */
    int ids[N_IDENT + 3];
    for (int i = 0; i < N_IDENT; i++)
        ids[i] = i;
    for (int i = 0; i < 3; i++)
        ids[N_IDENT + i] = N_IDENT;
    add_faces(a, ids, N_IDENT + 3, 1234, "more");
    add_faces(b, ids, N_IDENT + 3, 1234, "more");
    for (int i = 0; i < N_IDENT + 3; i++)
        ident_of[n_faces + 1 + (size_t)i] = ids[i];
    payload = "{\"batch\":7}";
    fn_job_info_free(run_cluster(ea, payload));
    /* a face added between the cancel and the resume is left to the next run */
    lib_b = b;
    between = add_one;
    done = cancel_and_resume(eb, payload, 2);
    between = NULL;
    assert_int_equal(done, 7); /* the new person's first face written, the other two not */
    size_t n = n_faces + N_IDENT + 3, extra = n + 1;
    read_faces(a, pa, 64);
    read_faces(b, pb, 64);
    assert_memory_equal(pa, pb, extra * sizeof pa[0]);
    check_people(pb, n + 1);
    assert_int_equal(pb[extra].cluster, 0);
    fn_job_info_free(run_cluster(eb, "{}"));
    read_faces(b, pb, 64);
    assert_int_equal(pb[extra].cluster, pb[1].cluster); /* face 1 is person 0 too */
    fn_engine_close(ea);
    fn_engine_close(eb);
    h_rmrf(a);
    h_rmrf(b);
    free(a);
    free(b);
}

int main(void)
{
    centres();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_end_to_end),
        cmocka_unit_test(test_incremental_stable),
        cmocka_unit_test(test_full_keeps_user_decisions),
        cmocka_unit_test(test_cancel_resume_same_result),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
