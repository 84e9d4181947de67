/* test_predict.c: the "predict" job on small libraries whose persons, confirmed faces and
 * cannot-links are written with SQL: suggestions are written with what the vote computed, a
 * stale one is dropped when its face becomes unknown, cannot-links and the one-person-per-photo
 * rule hold, user decisions (confirmed, ignored, user-drawn faces) are never changed,
 * auto-accept confirms and audits as the job, cancel then resume does every face once, two
 * worker threads give every face its answer, and bad payloads are refused at enqueue. Engine in
 * inline mode (0 threads) except for the worker test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "cluster/predict.h"
#include "facenames/error.h"
#include "helpers.h"
#include "store/store_sql.h" /* white-box: the test writes its library with SQL */
#include "tasks/predict.h"

#define D 128

static char *base;

static void vec(float *v, int i, float a, int j, float b)
{
    memset(v, 0, D * sizeof *v);
    v[i] += a;
    if (b != 0) v[j] += b;
}

static void sql(fn_store *s, const char *text)
{
    int rc = fn_sql_exec(s, text);
    if (rc != FN_OK) {
        fn_store_fail(s, rc, "sql");
        fprintf(stderr, "sql: %s: %s\n", text, fn_store_errmsg(s));
        abort();
    }
}

/* Steps an INSERT ... RETURNING id once and gives the id. */
static int64_t returned_id(fn_sql_stmt *st)
{
    assert_int_equal(fn_sql_step(st), FN_SQL_ROW);
    int64_t id = fn_sql_column_int64(st, 0);
    fn_sql_finalize(st);
    return id;
}

static int64_t photo(fn_store *s, int k)
{
    char text[256];
    snprintf(text, sizeof text,
             "INSERT INTO photos (path, size, mtime_ns, status, ingested_at)"
             " VALUES ('/p/%d.jpg', 1, 1, 'ok', 1) RETURNING id",
             k);
    fn_sql_stmt *st;
    assert_int_equal(fn_sql_prepare(s, text, &st), FN_OK);
    return returned_id(st);
}

static int64_t person(fn_store *s, const char *name)
{
    fn_sql_stmt *st;
    fn_sql_prepare(s, "INSERT INTO persons (name, created_at) VALUES (?1, 1) RETURNING id", &st);
    fn_sql_bind_text(st, 1, name, -1, FN_SQL_STATIC);
    return returned_id(st);
}

/* A face of photo `ph` with descriptor v, person (0: none), state and origin. */
static int64_t face(fn_store *s, int64_t ph, const float *v, int64_t who, const char *state,
                    const char *origin)
{
    fn_sql_stmt *st;
    fn_sql_prepare(s,
                   "INSERT INTO faces (photo_id, x, y, width, height, score, descriptor,"
                   " person_id, state, origin, created_at)"
                   " VALUES (?1, 0, 0, 50, 50, 0.9, ?2, ?3, ?4, ?5, 1) RETURNING id",
                   &st);
    fn_sql_bind_int64(st, 1, ph);
    fn_sql_bind_blob(st, 2, v, D * sizeof(float), FN_SQL_STATIC);
    if (who)
        fn_sql_bind_int64(st, 3, who);
    else
        fn_sql_bind_null(st, 3);
    fn_sql_bind_text(st, 4, state, -1, FN_SQL_STATIC);
    fn_sql_bind_text(st, 5, origin, -1, FN_SQL_STATIC);
    return returned_id(st);
}

static int64_t q_int(fn_store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The first column of the first row of a query (-1 when NULL, -2 when no row). */
static int64_t q_int(fn_store *s, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    fn_sql_stmt *st;
    assert_int_equal(fn_sql_prepare(s, text, &st), FN_OK);
    int64_t v = -2;
    if (fn_sql_step(st) == FN_SQL_ROW)
        v = fn_sql_column_type(st, 0) == FN_SQL_NULL ? -1 : fn_sql_column_int64(st, 0);
    fn_sql_finalize(st);
    return v;
}

/* Every face's person, state, cluster and origin, one line each: what no job may change. */
static char *decisions(fn_store *s)
{
    fn_sql_stmt *st;
    fn_sql_prepare(s, "SELECT id, person_id, state, cluster_id, origin FROM faces ORDER BY id",
                   &st);
    char *out = calloc(1, 1);
    size_t len = 0;
    while (fn_sql_step(st) == FN_SQL_ROW) {
        char line[128];
        int n = snprintf(line, sizeof line, "%lld %lld %s %lld %s\n",
                         (long long)fn_sql_column_int64(st, 0),
                         (long long)fn_sql_column_int64(st, 1), fn_sql_column_text(st, 2),
                         (long long)fn_sql_column_int64(st, 3), fn_sql_column_text(st, 4));
        out = realloc(out, len + (size_t)n + 1);
        memcpy(out + len, line, (size_t)n + 1);
        len += (size_t)n;
    }
    fn_sql_finalize(st);
    return out;
}

/* Histogram `name`'s count in bucket `i` (bounds ascending, one overflow bucket after). */
static int64_t h_bucket(const fn_job_info *j, const char *name, size_t i)
{
    json_error_t jerr;
    json_t *p = json_loads(j->progress ? j->progress : "{}", 0, &jerr);
    json_t *h = json_object_get(json_object_get(p, "histograms"), name);
    json_t *v = json_array_get(json_object_get(h, "counts"), i);
    int64_t r = v ? (int64_t)json_integer_value(v) : -1;
    json_decref(p);
    return r;
}

/* An inline engine (0 threads) with the predict type alone: this program links the parts it needs
 * and not the vision code, so it also runs under TSan (libvips and GLib do not). */
static fn_engine *engine(const char *lib)
{
    fn_config cfg;
    fn_config_defaults(&cfg);
    snprintf(cfg.log_path, sizeof cfg.log_path, "-");
    fn_engine *e = NULL;
    assert_int_equal(fn_engine_open(h_engine_addr(lib), &cfg, &e), 0);
    assert_int_equal(fn_jobtype_register(e, &fn_predict_type), 0);
    assert_int_equal(fn_engine_start(e, 0), 0);
    return e;
}

static fn_job_info *run(fn_engine *e, const char *payload, fn_job_id *id_out)
{
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "predict", payload, FN_PRIO_NORMAL, &id), 0);
    if (id_out) *id_out = id;
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    fn_job_info *j = NULL;
    assert_int_equal(fn_job_inspect(e, id, &j), 0);
    return j;
}

/* ---- the library of the first tests ---------------------------------------------------------
 *
 * A (centre 0.7 e0) and B (centre 0.7 e1) have three confirmed faces each, one per photo. The
 * faces without a person: */
typedef struct lib1 {
    int64_t a, b;
    int64_t near_a, near_a_weaker; /* both in one photo */
    int64_t near_b, stranger, linked, user_drawn, ignored, in_a_photo, a_photo;
    float refs[6][D];
    int64_t ref_person[6], ref_face[6];
} lib1;

static void make_lib1(fn_store *s, lib1 *l)
{
    l->a = person(s, "A");
    l->b = person(s, "B");
    for (int i = 0; i < 3; i++) {
        vec(l->refs[i], 0, 0.7f, 10 + i, 0.2f);
        vec(l->refs[3 + i], 1, 0.7f, 20 + i, 0.2f);
    }
    for (int i = 0; i < 6; i++) {
        l->ref_person[i] = i < 3 ? l->a : l->b;
        int64_t ph = photo(s, i);
        if (i == 0) l->a_photo = ph;
        l->ref_face[i] = face(s, ph, l->refs[i], l->ref_person[i], "confirmed", "auto");
    }
    float v[D];
    int64_t p10 = photo(s, 10);
    vec(v, 0, 0.7f, 40, 0.25f);
    l->near_a = face(s, p10, v, 0, "auto", "auto");
    vec(v, 0, 0.7f, 41, 0.3f);
    l->near_a_weaker = face(s, p10, v, 0, "auto", "auto");
    vec(v, 1, 0.7f, 42, 0.22f);
    l->near_b = face(s, photo(s, 11), v, 0, "auto", "auto");
    vec(v, 5, 0.7f, 0, 0);
    l->stranger = face(s, photo(s, 12), v, 0, "auto", "auto");
    vec(v, 0, 0.7f, 43, 0.25f);
    l->linked = face(s, photo(s, 13), v, 0, "auto", "auto");
    vec(v, 0, 0.7f, 44, 0.2f);
    l->user_drawn = face(s, photo(s, 14), v, 0, "auto", "user");
    vec(v, 0, 0.7f, 45, 0.25f);
    l->ignored = face(s, photo(s, 16), v, 0, "ignored", "auto");
    vec(v, 0, 0.7f, 46, 0.25f);
    l->in_a_photo = face(s, l->a_photo, v, 0, "auto", "auto");
    char text[256];
    snprintf(text, sizeof text,
             "INSERT INTO cannot_links (face_id, person_id, created_at) VALUES (%lld, %lld, 1)",
             (long long)l->linked, (long long)l->a);
    sql(s, text);
    /* a stale suggestion: the stranger was once suggested as A */
    snprintf(text, sizeof text,
             "INSERT INTO suggestions (face_id, person_id, confidence, distance, margin,"
             " created_at) VALUES (%lld, %lld, 0.7, 0.5, 0.1, 1)",
             (long long)l->stranger, (long long)l->a);
    sql(s, text);
}

/* What the vote says for one face of lib1 alone (no exclusions). */
static fn_prediction expect(const lib1 *l, int axis, int off_axis, float off)
{
    fn_predict_model *m = NULL;
    assert_int_equal(fn_predict_model_new(&l->refs[0][0], l->ref_person, l->ref_face, 6, NULL, &m),
                     0);
    float v[D];
    vec(v, axis, 0.7f, off_axis, off);
    fn_prediction p;
    assert_int_equal(fn_predict_run(m, v, 1, NULL, NULL, NULL, &p), 0);
    fn_predict_model_free(m);
    return p;
}

static void test_suggestions_written(void **state)
{
    (void)state;
    char lib[512];
    snprintf(lib, sizeof lib, "%s/lib1", base);
    fn_engine *e = engine(lib);
    fn_store *s = h_store(lib);
    lib1 l;
    make_lib1(s, &l);
    char *before = decisions(s);

    fn_job_id id;
    fn_job_info *j = run(e, "{}", &id);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    /* the faces without a person and state auto: all but the confirmed and the ignored */
    assert_int_equal(h_counter(j, "faces_total"), 7);
    assert_int_equal(h_counter(j, "faces_done"), 7);
    assert_int_equal(h_counter(j, "confirmed_faces"), 6);
    assert_int_equal(h_counter(j, "suggested"), 3);  /* near_a, near_b, user_drawn */
    assert_int_equal(h_counter(j, "same_photo"), 1); /* near_a_weaker */
    assert_int_equal(h_counter(j, "dropped"), 1);    /* the stranger's stale suggestion */
    assert_int_equal(h_counter(j, "unknown"), 3);    /* stranger, linked, in_a_photo */
    assert_int_equal(h_counter(j, "accepted"), 0);
    /* id_frequency (bounds 1, 2, 3, ...): B is suggested once, A twice (near_a, user_drawn) */
    assert_int_equal(h_bucket(j, "id_frequency", 0), 1);
    assert_int_equal(h_bucket(j, "id_frequency", 1), 1);
    assert_int_equal(h_bucket(j, "id_frequency", 2), 0);
    /* confidence_histogram: one observation per face with a prediction (7), none for none */
    int64_t observed = 0;
    for (size_t i = 0; i < 11; i++)
        observed += h_bucket(j, "confidence_histogram", i);
    assert_int_equal(observed, 7);
    char *summary = NULL;
    assert_int_equal(fn_job_summary(e, j, &summary), 0);
    assert_non_null(strstr(summary, "suggestions  3"));
    free(summary);
    fn_job_info_free(j);

    /* the rows: what the vote computed, for the right faces only */
    fn_prediction want = expect(&l, 0, 40, 0.25f);
    assert_int_equal(want.person, l.a);
    fn_sql_stmt *st;
    fn_sql_prepare(s,
                   "SELECT person_id, confidence, distance, margin, support_face_id, job_id"
                   " FROM suggestions WHERE face_id = ?1",
                   &st);
    fn_sql_bind_int64(st, 1, l.near_a);
    assert_int_equal(fn_sql_step(st), FN_SQL_ROW);
    assert_int_equal(fn_sql_column_int64(st, 0), l.a);
    assert_float_equal(fn_sql_column_double(st, 1), want.confidence, 1e-5);
    assert_float_equal(fn_sql_column_double(st, 2), want.distance, 1e-5);
    assert_float_equal(fn_sql_column_double(st, 3), want.margin, 1e-5);
    assert_int_equal(fn_sql_column_int64(st, 4), want.support_face);
    assert_int_equal(fn_sql_column_int64(st, 5), id);
    fn_sql_finalize(st);
    assert_int_equal(
        q_int(s, "SELECT person_id FROM suggestions WHERE face_id = %lld", (long long)l.near_b),
        l.b);
    assert_int_equal(
        q_int(s, "SELECT person_id FROM suggestions WHERE face_id = %lld", (long long)l.user_drawn),
        l.a);
    assert_int_equal(q_int(s, "SELECT count(*) FROM suggestions"), 3);
    /* the weaker face of photo 10 alone would have been A too: the rule, not the vote, left it */
    fn_prediction weaker = expect(&l, 0, 41, 0.3f);
    assert_int_equal(weaker.person, l.a);
    assert_true(weaker.confidence < want.confidence);
    /* and the linked face alone would have been A too: the cannot-link left it unknown */
    assert_int_equal(expect(&l, 0, 43, 0.25f).person, l.a);
    assert_int_equal(expect(&l, 0, 46, 0.25f).person, l.a); /* in_a_photo likewise */

    /* no face's person, state, cluster or origin changed */
    char *after = decisions(s);
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* A person rejects near_a's suggestion (a cannot-link) and names near_b: the next run drops
     * the one, leaves the other face alone, and does not suggest A for near_a again. */
    char text[256];
    snprintf(text, sizeof text,
             "INSERT INTO cannot_links (face_id, person_id, created_at) VALUES (%lld, %lld, 2);"
             "UPDATE faces SET person_id = %lld, state = 'confirmed' WHERE id = %lld;"
             "DELETE FROM suggestions WHERE face_id = %lld",
             (long long)l.near_a, (long long)l.a, (long long)l.b, (long long)l.near_b,
             (long long)l.near_b);
    sql(s, text);
    before = decisions(s);
    j = run(e, "{}", NULL);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(h_counter(j, "faces_done"), 6);
    assert_int_equal(h_counter(j, "confirmed_faces"), 7);
    fn_job_info_free(j);
    assert_int_equal(
        q_int(s, "SELECT count(*) FROM suggestions WHERE face_id = %lld", (long long)l.near_a), 0);
    /* with near_a out of the running, the weaker face of photo 10 gets A */
    assert_int_equal(q_int(s, "SELECT person_id FROM suggestions WHERE face_id = %lld",
                           (long long)l.near_a_weaker),
                     l.a);
    after = decisions(s);
    assert_string_equal(before, after);
    free(before);
    free(after);
    fn_store_close(s);
    fn_engine_close(e);
}

static void test_auto_accept_audited(void **state)
{
    (void)state;
    char lib[512];
    snprintf(lib, sizeof lib, "%s/lib2", base);
    fn_engine *e = engine(lib);
    fn_store *s = h_store(lib);
    lib1 l;
    make_lib1(s, &l);
    fn_prediction a = expect(&l, 0, 40, 0.25f), b = expect(&l, 1, 42, 0.22f);
    /* a bar between the two: the more confident is accepted, the other only suggested */
    double bar = (a.confidence + b.confidence) / 2;
    assert_true(fabs(a.confidence - b.confidence) > 1e-4);
    int a_wins = a.confidence > b.confidence;
    int64_t accepted = a_wins ? l.near_a : l.near_b, only = a_wins ? l.near_b : l.near_a;
    int64_t accepted_as = a_wins ? l.a : l.b;
    if (bar < 0.5) bar = 0.5;
    assert_true((a_wins ? a.confidence : b.confidence) >= bar);
    assert_true((a_wins ? b.confidence : a.confidence) < bar);
    /* the user-drawn face is over the bar too */
    assert_true(expect(&l, 0, 44, 0.2f).confidence >= bar);
    char payload[128];
    snprintf(payload, sizeof payload, "{\"auto_accept\": true, \"auto_accept_min\": %.6f}", bar);
    fn_job_id id;
    fn_job_info *j = run(e, payload, &id);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    int64_t n_acc = h_counter(j, "accepted");
    fn_job_info_free(j);
    /* the user-drawn face is never confirmed by a job, whatever its confidence */
    assert_int_equal(q_int(s,
                           "SELECT state = 'auto' AND person_id IS NULL FROM faces WHERE id = "
                           "%lld",
                           (long long)l.user_drawn),
                     1);
    assert_int_equal(q_int(s,
                           "SELECT person_id FROM faces WHERE id = %lld AND state = "
                           "'confirmed'",
                           (long long)accepted),
                     accepted_as);
    assert_int_equal(
        q_int(s, "SELECT count(*) FROM suggestions WHERE face_id = %lld", (long long)accepted), 0);
    assert_int_equal(q_int(s, "SELECT state = 'auto' FROM faces WHERE id = %lld", (long long)only),
                     1);
    /* one audit entry, the job's, with one row per confirmed face */
    assert_int_equal(q_int(s, "SELECT count(*) FROM audit_log"), 1);
    assert_int_equal(q_int(s,
                           "SELECT job_id FROM audit_log WHERE actor = 'job:%lld' AND action "
                           "= 'suggestion.accept'",
                           (long long)id),
                     id);
    assert_int_equal(q_int(s, "SELECT count(*) FROM audit_faces"), n_acc);
    assert_int_equal(q_int(s,
                           "SELECT person_after FROM audit_faces WHERE face_id = %lld AND "
                           "person_before IS NULL AND state_before = 'auto' AND state_after = "
                           "'confirmed'",
                           (long long)accepted),
                     accepted_as);
    fn_store_close(s);
    fn_engine_close(e);
}

/* ---- cancel, then resume -------------------------------------------------------------------- */

typedef struct cancel_at {
    fn_engine *e;
    fn_job_id id;
    int seen, at;
} cancel_at;

static void cancel_hook(int64_t f, void *arg)
{
    (void)f;
    cancel_at *c = arg;
    if (++c->seen == c->at) assert_int_equal(fn_job_cancel(c->e, c->id), 0);
}

static void test_cancel_then_resume(void **state)
{
    (void)state;
    char lib[512];
    snprintf(lib, sizeof lib, "%s/lib3", base);
    fn_engine *e = engine(lib);
    fn_store *s = h_store(lib);
    lib1 l;
    make_lib1(s, &l);
    /* 30 more faces, one photo each, alternately near A and near B */
    for (int i = 0; i < 30; i++) {
        float v[D];
        vec(v, i % 2, 0.7f, 60 + i, 0.25f);
        face(s, photo(s, 100 + i), v, 0, "auto", "auto");
    }
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "predict", "{\"batch\": 4}", FN_PRIO_NORMAL, &id), 0);
    cancel_at c = {.e = e, .id = id, .at = 10};
    fn_predict_test_hook = cancel_hook;
    fn_predict_test_hook_arg = &c;
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    fn_predict_test_hook = NULL;
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(e, id, &j), 0);
    assert_int_equal(j->state, FN_JOB_CANCELLED);
    int64_t done = h_counter(j, "faces_done"), total = h_counter(j, "faces_total");
    assert_int_equal(total, 37);
    assert_true(done >= 10 && done < total); /* stopped after the batch holding face 10 */
    fn_job_info_free(j);
    /* the faces of the committed batches have their answers (suggested ones their rows) */
    int64_t first = q_int(s, "SELECT count(*) FROM suggestions WHERE job_id = %lld", (long long)id);
    assert_true(first > 0);

    fn_job_id id2;
    assert_int_equal(fn_job_resume(e, id, &id2), 0);
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    assert_int_equal(fn_job_inspect(e, id2, &j), 0);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(h_counter(j, "faces_done"), total);
    fn_job_info_free(j);
    /* the resumed job did not redo a face of the first: their rows are still the first job's */
    assert_int_equal(
        q_int(s, "SELECT count(*) FROM suggestions WHERE job_id = %lld", (long long)id), first);
    /* every one of the 30 new faces (each alone in its photo, near A or B) is suggested once */
    assert_int_equal(q_int(s, "SELECT count(*) FROM suggestions s JOIN faces f ON f.id = "
                              "s.face_id JOIN photos p ON p.id = f.photo_id WHERE p.path LIKE "
                              "'/p/1__.jpg'"),
                     30);
    fn_store_close(s);
    fn_engine_close(e);
}

/* ---- worker threads ------------------------------------------------------------------------- */

/* With two worker threads a batch's chunks run on both: every face still gets its own answer. */
static void test_two_workers(void **state)
{
    (void)state;
    char lib[512];
    snprintf(lib, sizeof lib, "%s/lib5", base);
    fn_config cfg;
    fn_config_defaults(&cfg);
    cfg.workers_cpu_max = 2;
    snprintf(cfg.log_path, sizeof cfg.log_path, "-");
    fn_engine *e = NULL;
    assert_int_equal(fn_engine_open(h_engine_addr(lib), &cfg, &e), 0);
    assert_int_equal(fn_jobtype_register(e, &fn_predict_type), 0);
    fn_store *s = h_store(lib);
    lib1 l;
    make_lib1(s, &l);
    /* 300 faces, one photo each, alternately near A and near B: five chunks of one batch */
    enum { N = 300 };
    int64_t ids[N];
    for (int i = 0; i < N; i++) {
        float v[D];
        vec(v, i % 2, 0.7f, 60 + i % 60, 0.2f + 0.001f * (float)(i / 60));
        ids[i] = face(s, photo(s, 1000 + i), v, 0, "auto", "auto");
    }
    assert_int_equal(fn_engine_start(e, 2), 0);
    fn_job_id id;
    fn_job_state st;
    assert_int_equal(fn_enqueue(e, "predict", "{}", FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_job_wait(e, id, 120000, &st), 0);
    assert_int_equal(st, FN_JOB_COMPLETED);
    for (int i = 0; i < N; i++)
        assert_int_equal(
            q_int(s, "SELECT person_id FROM suggestions WHERE face_id = %lld", (long long)ids[i]),
            i % 2 ? l.b : l.a);
    fn_store_close(s);
    fn_engine_close(e);
}

/* ---- the payload ---------------------------------------------------------------------------- */

static void test_payload(void **state)
{
    (void)state;
    char lib[512];
    snprintf(lib, sizeof lib, "%s/lib4", base);
    fn_config cfg;
    fn_config_defaults(&cfg);
    snprintf(cfg.log_path, sizeof cfg.log_path, "-");
    char err[256];
    assert_int_equal(fn_config_set(&cfg, "predict.k", "7", err, sizeof err), 0);
    assert_int_equal(fn_config_set(&cfg, "predict.auto_accept", "on", err, sizeof err), 0);
    assert_int_not_equal(fn_config_set(&cfg, "predict.threshold", "1.5", err, sizeof err), 0);
    fn_engine *e = NULL;
    assert_int_equal(fn_engine_open(h_engine_addr(lib), &cfg, &e), 0);
    assert_int_equal(fn_jobtype_register(e, &fn_predict_type), 0);
    assert_int_equal(fn_engine_start(e, 0), 0);
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "predict", "{\"k\": 0}", FN_PRIO_NORMAL, &id), FN_ERR_INVALID);
    assert_int_equal(fn_enqueue(e, "predict", "{\"treshold\": 0.4}", FN_PRIO_NORMAL, &id),
                     FN_ERR_INVALID);
    assert_int_equal(fn_enqueue(e, "predict", "{}", FN_PRIO_NORMAL, &id), 0);
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(e, id, &j), 0);
    assert_non_null(strstr(j->payload, "\"k\":7"));
    assert_non_null(strstr(j->payload, "\"auto_accept\":true"));
    assert_non_null(strstr(j->payload, "\"threshold\":0.4"));
    fn_job_info_free(j);
    /* an empty library: nothing to do, completed */
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    assert_int_equal(fn_job_inspect(e, id, &j), 0);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(h_counter(j, "faces_done"), 0);
    fn_job_info_free(j);
    fn_engine_close(e);
}

static int setup(void **state)
{
    (void)state;
    base = h_tmpdir("predict");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    h_rmrf(base);
    free(base);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suggestions_written),
        cmocka_unit_test(test_auto_accept_audited),
        cmocka_unit_test(test_cancel_then_resume),
        cmocka_unit_test(test_two_workers),
        cmocka_unit_test(test_payload),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
