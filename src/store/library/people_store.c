/* people_store.c: the SQL of naming: reading persons, clusters, faces, suggestions and the audit,
 * and the naming operations, each writing its audit entry, one audit_faces row per face it
 * changed, and the "effects" undo needs (see people_store.h and docs/people.md).
 *
 * Every operation runs in the caller's write transaction and checks before it writes; when a
 * check fails half-way the caller rolls back, so nothing of a refused operation remains. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "store/library/people_store.h"
#include "store/store_sql.h"
#include "util/clock.h"

/* ---- Helpers ----------------------------------------------------------------------------------
 */

__attribute__((format(printf, 3, 4))) static int fail(fn_ps_ctx *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    return code;
}

static int dbfail(fn_ps_ctx *c, int rc, const char *what)
{
    int code = fn_store_fail(c->s, rc, what);
    snprintf(c->msg, sizeof c->msg, "%s", fn_store_errmsg(c->s));
    return code;
}

/* A cached statement (see fn_store_stmt: `sql` must be a literal). */
static fn_sql_stmt *stmt(fn_ps_ctx *c, const char *sql)
{
    fn_sql_stmt *st = fn_store_stmt(c->s, sql);
    if (!st) snprintf(c->msg, sizeof c->msg, "%s", fn_store_errmsg(c->s));
    return st;
}

static void bind_id(fn_sql_stmt *st, int i, int64_t v)
{
    if (v)
        fn_sql_bind_int64(st, i, v);
    else
        fn_sql_bind_null(st, i);
}

/* Steps a statement that returns no row or one row we ignore, and resets it. */
static int exec_st(fn_ps_ctx *c, fn_sql_stmt *st, const char *what)
{
    int rc = fn_sql_step(st);
    while (rc == FN_SQL_ROW)
        rc = fn_sql_step(st);
    int ret = rc == FN_SQL_DONE ? 0 : dbfail(c, rc, what);
    fn_sql_reset(st);
    return ret;
}

static char *dup_text(const char *t)
{
    return strdup(t ? t : "");
}

static const char *const state_names[] = {"auto", "confirmed", "ignored"};

static int state_parse(const char *t)
{
    for (int i = 0; t && i < 3; i++)
        if (strcmp(t, state_names[i]) == 0) return i;
    return FN_FACE_AUTO;
}

/* A growable array of `size`-byte elements. */
static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, ncap * size);
    if (!p) return FN_ERR_NOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static int ids_push(int64_t **ids, size_t *n, size_t *cap, int64_t id)
{
    if (grow((void **)ids, cap, *n, sizeof **ids) < 0) return FN_ERR_NOMEM;
    (*ids)[(*n)++] = id;
    return 0;
}

/* ---- Reading ----------------------------------------------------------------------------------
 */

static void persons_free(fn_person *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++)
        free(p[i].name);
    free(p);
}

static void audit_free(fn_audit_entry *a, size_t n)
{
    for (size_t i = 0; a && i < n; i++) {
        free(a[i].actor);
        free(a[i].action);
        free(a[i].detail);
    }
    free(a);
}

#define PERSON_COLS                                                                                \
    "p.id, p.name, p.created_at, p.deleted_at,"                                                    \
    " (SELECT count(*) FROM faces f WHERE f.person_id = p.id),"                                    \
    " (SELECT count(*) FROM faces f WHERE f.person_id = p.id AND f.state = 'confirmed'),"          \
    " (SELECT f.id FROM faces f WHERE f.person_id = p.id AND f.state = 'confirmed'"                \
    "  ORDER BY f.score DESC, f.id LIMIT 1)"

static int person_from_row(fn_sql_stmt *st, fn_person *p, int64_t *deleted_at)
{
    p->id = fn_sql_column_int64(st, 0);
    p->name = dup_text(fn_sql_column_text(st, 1));
    p->created_at = fn_sql_column_int64(st, 2);
    if (deleted_at) *deleted_at = fn_sql_column_int64(st, 3);
    p->faces = fn_sql_column_int64(st, 4);
    p->confirmed = fn_sql_column_int64(st, 5);
    p->cover_face = fn_sql_column_int64(st, 6);
    return p->name ? 0 : FN_ERR_NOMEM;
}

static int person_cmp(const void *a, const void *b)
{
    const fn_person *x = a, *y = b;
    if (x->faces != y->faces) return x->faces > y->faces ? -1 : 1;
    int k = strcmp(x->name, y->name);
    if (k) return k;
    return x->id < y->id ? -1 : x->id > y->id;
}

int fn_ps_people_list(fn_ps_ctx *c, fn_person **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    fn_sql_stmt *st = stmt(c, "SELECT " PERSON_COLS " FROM persons p WHERE p.deleted_at IS NULL");
    if (!st) return FN_ERR_DB;
    size_t cap = 0;
    int rc, ret = 0;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        if ((ret = grow((void **)out, &cap, *n, sizeof **out)) < 0) break;
        if ((ret = person_from_row(st, &(*out)[*n], NULL)) < 0) break;
        (*n)++;
    }
    if (ret == 0 && rc != FN_SQL_DONE) ret = dbfail(c, rc, "listing persons");
    fn_sql_reset(st);
    if (ret < 0) {
        persons_free(*out, *n);
        *out = NULL;
        *n = 0;
        if (ret == FN_ERR_NOMEM) fail(c, ret, "out of memory listing persons");
        return ret;
    }
    /* Most faces first, then by name: sorted here rather than in SQL so the counts are computed
     * once per person. */
    if (*n > 1) qsort(*out, *n, sizeof **out, person_cmp);
    return 0;
}

int fn_ps_person_by_id(fn_ps_ctx *c, int64_t id, int include_deleted, fn_person *out)
{
    memset(out, 0, sizeof *out);
    fn_sql_stmt *st = stmt(c, "SELECT " PERSON_COLS " FROM persons p WHERE p.id = ?1");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, id);
    int rc = fn_sql_step(st), ret = 0;
    int64_t deleted_at = 0;
    if (rc == FN_SQL_ROW) {
        ret = person_from_row(st, out, &deleted_at);
        if (ret == 0 && deleted_at && !include_deleted) {
            ret = fail(c, FN_ERR_NOT_FOUND,
                       "person %lld (\"%s\") was deleted; `facenames audit list` shows the entry "
                       "and `facenames undo ID` brings the person back",
                       (long long)id, out->name);
            free(out->name);
            out->name = NULL;
        }
    } else if (rc == FN_SQL_DONE) {
        ret = fail(c, FN_ERR_NOT_FOUND, "no person %lld in the library", (long long)id);
    } else {
        ret = dbfail(c, rc, "reading a person");
    }
    fn_sql_reset(st);
    return ret;
}

int fn_ps_person_by_name(fn_ps_ctx *c, const char *name, fn_person *out)
{
    memset(out, 0, sizeof *out);
    /* exact match first, then ASCII case-insensitive */
    /* PostgreSQL has no NOCASE; lower() under the "C" collation folds ASCII only, as NOCASE. */
    fn_sql_stmt *st = stmt(
        c, FN_SQL_PICK(c->s,
                       "SELECT " PERSON_COLS ", p.name = ?1 AS exact FROM persons p"
                       " WHERE p.deleted_at IS NULL AND p.name = ?1 COLLATE NOCASE"
                       " ORDER BY exact DESC, p.id",
                       "SELECT " PERSON_COLS ", p.name = ?1 AS exact FROM persons p"
                       " WHERE p.deleted_at IS NULL"
                       " AND lower(p.name COLLATE \"C\") = lower(CAST(?1 AS TEXT) COLLATE \"C\")"
                       " ORDER BY exact DESC, p.id"));
    if (!st) return FN_ERR_DB;
    fn_sql_bind_text(st, 1, name, -1, FN_SQL_TRANSIENT);
    int rc, ret = 0, found = 0, exact = 0;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        int ex = fn_sql_column_int(st, 7);
        if (found == 0) {
            ret = person_from_row(st, out, NULL);
            exact = ex;
            found = 1;
            if (ret < 0) break;
        } else if (!exact || ex) {
            found = 2;
            break;
        }
    }
    if (ret == 0 && rc != FN_SQL_DONE && rc != FN_SQL_ROW) ret = dbfail(c, rc, "finding a person");
    fn_sql_reset(st);
    if (ret == 0 && found == 0)
        ret = fail(c, FN_ERR_NOT_FOUND, "no person named \"%s\" in the library", name);
    if (ret == 0 && found == 2)
        ret =
            fail(c, FN_ERR_INVALID, "several persons are named \"%s\"; give the id instead", name);
    if (ret < 0) {
        free(out->name);
        out->name = NULL;
    }
    return ret;
}

/* The face of the cluster nearest its centroid, or its best-scored face when it has none. */
static int cluster_cover(fn_ps_ctx *c, int64_t cluster, int64_t *cover)
{
    *cover = 0;
    fn_sql_stmt *st = stmt(c, "SELECT centroid FROM clusters WHERE id = ?1");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, cluster);
    float centroid[128];
    int have = 0;
    if (fn_sql_step(st) == FN_SQL_ROW && fn_sql_column_bytes(st, 0) == (int)sizeof centroid) {
        memcpy(centroid, fn_sql_column_blob(st, 0), sizeof centroid);
        have = 1;
    }
    fn_sql_reset(st);
    st = stmt(c, "SELECT id, descriptor FROM faces WHERE cluster_id = ?1 AND person_id IS NULL"
                 " AND state = 'auto' ORDER BY score DESC, id");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, cluster);
    double best = 1e30;
    int rc;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        if (!have) {
            *cover = fn_sql_column_int64(st, 0);
            break;
        }
        const float *d = fn_sql_column_blob(st, 1);
        if (!d || fn_sql_column_bytes(st, 1) != (int)sizeof centroid) continue;
        double sum = 0;
        for (int k = 0; k < 128; k++)
            sum += (double)(d[k] - centroid[k]) * (d[k] - centroid[k]);
        if (sum < best) {
            best = sum;
            *cover = fn_sql_column_int64(st, 0);
        }
    }
    int ret = rc == FN_SQL_ROW || rc == FN_SQL_DONE ? 0 : dbfail(c, rc, "reading a cluster");
    fn_sql_reset(st);
    return ret;
}

int fn_ps_clusters_list(fn_ps_ctx *c, size_t limit, fn_cluster **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    fn_sql_stmt *st =
        stmt(c, "SELECT f.cluster_id, count(*), coalesce(c.person_id, 0) FROM faces f"
                " JOIN clusters c ON c.id = f.cluster_id"
                " WHERE f.person_id IS NULL AND f.state = 'auto' AND f.cluster_id IS NOT NULL"
                " GROUP BY f.cluster_id, c.person_id ORDER BY count(*) DESC, f.cluster_id"
                " LIMIT ?1");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, limit ? (int64_t)limit : INT64_MAX);
    size_t cap = 0;
    int rc, ret = 0;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        if ((ret = grow((void **)out, &cap, *n, sizeof **out)) < 0) break;
        fn_cluster *k = &(*out)[(*n)++];
        k->id = fn_sql_column_int64(st, 0);
        k->faces = fn_sql_column_int64(st, 1);
        k->person_id = fn_sql_column_int64(st, 2);
        k->cover_face = 0;
    }
    if (ret == 0 && rc != FN_SQL_DONE) ret = dbfail(c, rc, "listing clusters");
    fn_sql_reset(st);
    for (size_t i = 0; ret == 0 && i < *n; i++)
        ret = cluster_cover(c, (*out)[i].id, &(*out)[i].cover_face);
    if (ret < 0) {
        if (ret == FN_ERR_NOMEM) fail(c, ret, "out of memory listing clusters");
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return ret;
}

int fn_ps_faces_query(fn_ps_ctx *c, const fn_face_query *q, fn_library_face **out, size_t *n)
{
    static const fn_face_query all = {.state = -1};
    if (!q) q = &all;
    *out = NULL;
    *n = 0;
    fn_sql_stmt *st =
        stmt(c, "SELECT f.id, f.photo_id, f.x, f.y, f.width, f.height, f.score, f.person_id,"
                " f.cluster_id, f.state, f.origin, sp.id, s.confidence"
                " FROM faces f LEFT JOIN suggestions s ON s.face_id = f.id AND f.person_id IS NULL"
                " AND f.state = 'auto'"
                " LEFT JOIN persons sp ON sp.id = s.person_id AND sp.deleted_at IS NULL"
                " WHERE (CAST(?1 AS BIGINT) = 0 OR (?1 = -1 AND f.person_id IS NULL)"
                " OR f.person_id = ?1)"
                " AND (CAST(?2 AS BIGINT) = 0 OR (?2 = -1 AND f.cluster_id IS NULL)"
                " OR f.cluster_id = ?2)"
                " AND (CAST(?3 AS BIGINT) = 0 OR f.photo_id = ?3)"
                " AND (CAST(?4 AS TEXT) IS NULL OR f.state = ?4)"
                " ORDER BY f.id LIMIT ?5 OFFSET ?6");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, q->person_id);
    fn_sql_bind_int64(st, 2, q->cluster_id);
    fn_sql_bind_int64(st, 3, q->photo_id);
    if (q->state >= 0 && q->state <= 2)
        fn_sql_bind_text(st, 4, state_names[q->state], -1, FN_SQL_STATIC);
    fn_sql_bind_int64(st, 5, q->limit ? (int64_t)q->limit : INT64_MAX);
    fn_sql_bind_int64(st, 6, (int64_t)q->offset);
    size_t cap = 0;
    int rc, ret = 0;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        if ((ret = grow((void **)out, &cap, *n, sizeof **out)) < 0) break;
        fn_library_face *f = &(*out)[(*n)++];
        memset(f, 0, sizeof *f);
        f->id = fn_sql_column_int64(st, 0);
        f->photo_id = fn_sql_column_int64(st, 1);
        f->x = (float)fn_sql_column_double(st, 2);
        f->y = (float)fn_sql_column_double(st, 3);
        f->width = (float)fn_sql_column_double(st, 4);
        f->height = (float)fn_sql_column_double(st, 5);
        f->score = (float)fn_sql_column_double(st, 6);
        f->person_id = fn_sql_column_int64(st, 7);
        f->cluster_id = fn_sql_column_int64(st, 8);
        f->state = (fn_face_state)state_parse(fn_sql_column_text(st, 9));
        const char *origin = fn_sql_column_text(st, 10);
        f->user_drawn = origin && strcmp((const char *)origin, "user") == 0;
        f->suggestion_person = fn_sql_column_int64(st, 11);
        f->suggestion_confidence =
            f->suggestion_person ? (float)fn_sql_column_double(st, 12) : 0.0f;
    }
    if (ret == 0 && rc != FN_SQL_DONE) ret = dbfail(c, rc, "listing faces");
    fn_sql_reset(st);
    if (ret < 0) {
        if (ret == FN_ERR_NOMEM) fail(c, ret, "out of memory listing faces");
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return ret;
}

int fn_ps_photo_path(fn_ps_ctx *c, int64_t photo_id, char **path)
{
    *path = NULL;
    fn_sql_stmt *st = stmt(c, "SELECT path FROM photos WHERE id = ?1");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, photo_id);
    int rc = fn_sql_step(st), ret = 0;
    if (rc == FN_SQL_ROW) {
        *path = dup_text(fn_sql_column_text(st, 0));
        if (!*path) ret = fail(c, FN_ERR_NOMEM, "out of memory");
    } else if (rc == FN_SQL_DONE) {
        ret = fail(c, FN_ERR_NOT_FOUND, "no photo %lld in the library", (long long)photo_id);
    } else {
        ret = dbfail(c, rc, "reading a photo's path");
    }
    fn_sql_reset(st);
    return ret;
}

int fn_ps_suggestions_list(fn_ps_ctx *c, int64_t person_id, size_t limit, fn_suggestion **out,
                           size_t *n)
{
    *out = NULL;
    *n = 0;
    /* Only what a person can still act on: the face has no person and is not ignored, and the
     * suggested person exists. */
    fn_sql_stmt *st = stmt(
        c, "SELECT s.face_id, s.person_id, s.confidence, s.distance, s.margin,"
           " coalesce(s.support_face_id, 0) FROM suggestions s"
           " JOIN persons p ON p.id = s.person_id AND p.deleted_at IS NULL"
           " JOIN faces f ON f.id = s.face_id AND f.person_id IS NULL AND f.state = 'auto'"
           " WHERE (?1 = 0 OR s.person_id = ?1) ORDER BY s.confidence DESC, s.face_id LIMIT ?2");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, person_id);
    fn_sql_bind_int64(st, 2, limit ? (int64_t)limit : INT64_MAX);
    size_t cap = 0;
    int rc, ret = 0;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        if ((ret = grow((void **)out, &cap, *n, sizeof **out)) < 0) break;
        fn_suggestion *g = &(*out)[(*n)++];
        g->face_id = fn_sql_column_int64(st, 0);
        g->person_id = fn_sql_column_int64(st, 1);
        g->confidence = (float)fn_sql_column_double(st, 2);
        g->distance = (float)fn_sql_column_double(st, 3);
        g->margin = (float)fn_sql_column_double(st, 4);
        g->support_face = fn_sql_column_int64(st, 5);
    }
    if (ret == 0 && rc != FN_SQL_DONE) ret = dbfail(c, rc, "listing suggestions");
    fn_sql_reset(st);
    if (ret < 0) {
        if (ret == FN_ERR_NOMEM) fail(c, ret, "out of memory listing suggestions");
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return ret;
}

int fn_ps_audit_list(fn_ps_ctx *c, int64_t since_id, size_t limit, fn_audit_entry **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    fn_sql_stmt *st =
        stmt(c, "SELECT a.id, a.at, a.actor, a.action, coalesce(a.detail, '{}'),"
                " (SELECT count(*) FROM audit_faces af WHERE af.audit_id = a.id),"
                " coalesce(a.job_id, 0), coalesce(a.undone_by, 0), coalesce(a.undoes, 0)"
                " FROM audit_log a WHERE a.id > ?1 ORDER BY a.id DESC LIMIT ?2");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, since_id);
    fn_sql_bind_int64(st, 2, limit ? (int64_t)limit : INT64_MAX);
    size_t cap = 0;
    int rc, ret = 0;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        if ((ret = grow((void **)out, &cap, *n, sizeof **out)) < 0) break;
        fn_audit_entry *a = &(*out)[*n];
        memset(a, 0, sizeof *a);
        a->id = fn_sql_column_int64(st, 0);
        a->at = fn_sql_column_int64(st, 1);
        a->actor = dup_text(fn_sql_column_text(st, 2));
        a->action = dup_text(fn_sql_column_text(st, 3));
        a->detail = dup_text(fn_sql_column_text(st, 4));
        a->faces = fn_sql_column_int64(st, 5);
        a->job_id = fn_sql_column_int64(st, 6);
        a->undone_by = fn_sql_column_int64(st, 7);
        a->undoes = fn_sql_column_int64(st, 8);
        (*n)++;
        if (!a->actor || !a->action || !a->detail) {
            ret = FN_ERR_NOMEM;
            break;
        }
    }
    if (ret == 0 && rc != FN_SQL_DONE) ret = dbfail(c, rc, "listing the audit");
    fn_sql_reset(st);
    if (ret < 0) {
        if (ret == FN_ERR_NOMEM) fail(c, ret, "out of memory listing the audit");
        audit_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return ret;
}

/* ---- Faces, persons and entries inside a naming transaction -----------------------------------
 */

typedef struct face_now {
    int64_t id, person, cluster;
    int state;
} face_now;

static int face_get(fn_ps_ctx *c, int64_t id, face_now *f)
{
    fn_sql_stmt *st =
        stmt(c, "SELECT coalesce(person_id, 0), coalesce(cluster_id, 0), state FROM faces"
                " WHERE id = ?1");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, id);
    int rc = fn_sql_step(st), ret = 0;
    if (rc == FN_SQL_ROW) {
        f->id = id;
        f->person = fn_sql_column_int64(st, 0);
        f->cluster = fn_sql_column_int64(st, 1);
        f->state = state_parse(fn_sql_column_text(st, 2));
    } else if (rc == FN_SQL_DONE) {
        ret = fail(c, FN_ERR_NOT_FOUND, "no face %lld in the library", (long long)id);
    } else {
        ret = dbfail(c, rc, "reading a face");
    }
    fn_sql_reset(st);
    return ret;
}

/* Sets a face's person, state and cluster, recording before and after under entry `audit`;
 * nothing (and no row) when nothing changes. A face that gets a person or is ignored loses its
 * suggestion. *changed (may be NULL) counts the faces changed. */
static int face_set(fn_ps_ctx *c, int64_t audit, const face_now *b, int64_t person, int state,
                    int64_t cluster, size_t *changed)
{
    if (b->person == person && b->state == state && b->cluster == cluster) return 0;
    fn_sql_stmt *st = stmt(c, "INSERT INTO audit_faces (audit_id, face_id, person_before,"
                              " person_after, state_before, state_after, cluster_before,"
                              " cluster_after) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, audit);
    fn_sql_bind_int64(st, 2, b->id);
    bind_id(st, 3, b->person);
    bind_id(st, 4, person);
    fn_sql_bind_text(st, 5, state_names[b->state], -1, FN_SQL_STATIC);
    fn_sql_bind_text(st, 6, state_names[state], -1, FN_SQL_STATIC);
    bind_id(st, 7, b->cluster);
    bind_id(st, 8, cluster);
    int ret = exec_st(c, st, "recording a face's change");
    if (ret < 0) return ret;
    st = stmt(c, "UPDATE faces SET person_id = ?2, state = ?3, cluster_id = ?4 WHERE id = ?1");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, b->id);
    bind_id(st, 2, person);
    fn_sql_bind_text(st, 3, state_names[state], -1, FN_SQL_STATIC);
    bind_id(st, 4, cluster);
    if ((ret = exec_st(c, st, "changing a face")) < 0) return ret;
    if (person || state == FN_FACE_IGNORED) {
        st = stmt(c, "DELETE FROM suggestions WHERE face_id = ?1");
        if (!st) return FN_ERR_DB;
        fn_sql_bind_int64(st, 1, b->id);
        if ((ret = exec_st(c, st, "dropping a suggestion")) < 0) return ret;
    }
    if (changed) (*changed)++;
    return 0;
}

static int audit_begin(fn_ps_ctx *c, const char *action, int64_t undoes, int64_t *id)
{
    fn_sql_stmt *st = stmt(c, "INSERT INTO audit_log (at, actor, action, undoes)"
                              " VALUES (?1, ?2, ?3, ?4) RETURNING id");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, fn_wall_ms());
    fn_sql_bind_text(st, 2, c->actor && *c->actor ? c->actor : "user", -1, FN_SQL_TRANSIENT);
    fn_sql_bind_text(st, 3, action, -1, FN_SQL_STATIC);
    bind_id(st, 4, undoes);
    int rc = fn_sql_step(st);
    if (rc == FN_SQL_ROW) *id = fn_sql_column_int64(st, 0);
    int ret = rc == FN_SQL_ROW ? exec_st(c, st, "writing an audit entry")
                               : dbfail(c, rc, "writing an audit entry");
    fn_sql_reset(st);
    return ret;
}

/* Writes the entry's action and detail (takes `detail`). */
static int audit_finish(fn_ps_ctx *c, int64_t id, const char *action, json_t *detail)
{
    char *s = json_dumps(detail, JSON_COMPACT);
    json_decref(detail);
    if (!s) return fail(c, FN_ERR_NOMEM, "out of memory writing an audit entry");
    fn_sql_stmt *st = stmt(c, "UPDATE audit_log SET detail = ?2, action = ?3 WHERE id = ?1");
    if (!st) {
        free(s);
        return FN_ERR_DB;
    }
    fn_sql_bind_int64(st, 1, id);
    fn_sql_bind_text(st, 2, s, -1, FN_SQL_TRANSIENT);
    fn_sql_bind_text(st, 3, action, -1, FN_SQL_STATIC);
    int ret = exec_st(c, st, "writing an audit entry");
    free(s);
    return ret;
}

/* Removes an entry that turned out to change nothing (still inside the transaction). */
static int audit_drop(fn_ps_ctx *c, int64_t id)
{
    fn_sql_stmt *st = stmt(c, "DELETE FROM audit_log WHERE id = ?1");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, id);
    return exec_st(c, st, "dropping an empty audit entry");
}

static json_t *person_json(const fn_person *p)
{
    return json_pack("{s:I, s:s}", "id", (json_int_t)p->id, "name", p->name);
}

static json_t *detail_new(const char *summary)
{
    return json_pack("{s:s, s:{}}", "summary", summary, "effects");
}

static json_t *effects(json_t *detail)
{
    return json_object_get(detail, "effects");
}

static void effect_id(json_t *detail, const char *key, int64_t id)
{
    json_t *a = json_object_get(effects(detail), key);
    if (!a) {
        a = json_array();
        json_object_set_new(effects(detail), key, a);
    }
    json_array_append_new(a, json_integer(id));
}

/* The id of another person not deleted with this name (ASCII case-insensitive), 0 when none. */
static int name_taken(fn_ps_ctx *c, const char *name, int64_t except, int64_t *other)
{
    *other = 0;
    fn_sql_stmt *st = stmt(
        c, FN_SQL_PICK(c->s,
                       "SELECT id FROM persons WHERE deleted_at IS NULL"
                       " AND name = ?1 COLLATE NOCASE AND id != ?2 ORDER BY id LIMIT 1",
                       "SELECT id FROM persons WHERE deleted_at IS NULL AND lower(name COLLATE"
                       " \"C\") = lower(CAST(?1 AS TEXT) COLLATE \"C\") AND id != ?2 ORDER BY id"
                       " LIMIT 1"));
    if (!st) return FN_ERR_DB;
    fn_sql_bind_text(st, 1, name, -1, FN_SQL_TRANSIENT);
    fn_sql_bind_int64(st, 2, except);
    int rc = fn_sql_step(st);
    if (rc == FN_SQL_ROW) *other = fn_sql_column_int64(st, 0);
    int ret = rc == FN_SQL_ROW || rc == FN_SQL_DONE ? 0 : dbfail(c, rc, "looking up a name");
    fn_sql_reset(st);
    return ret;
}

static int person_insert(fn_ps_ctx *c, const char *name, int64_t *id)
{
    int64_t other;
    int ret = name_taken(c, name, 0, &other);
    if (ret < 0) return ret;
    if (other)
        return fail(c, FN_ERR_EXISTS, "a person named \"%s\" exists already (person %lld)", name,
                    (long long)other);
    fn_sql_stmt *st =
        stmt(c, "INSERT INTO persons (name, created_at) VALUES (?1, ?2) RETURNING id");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_text(st, 1, name, -1, FN_SQL_TRANSIENT);
    fn_sql_bind_int64(st, 2, fn_wall_ms());
    int rc = fn_sql_step(st);
    if (rc != FN_SQL_ROW) {
        ret = dbfail(c, rc, "creating a person");
        fn_sql_reset(st);
        return ret;
    }
    *id = fn_sql_column_int64(st, 0);
    return exec_st(c, st, "creating a person");
}

static int person_set_deleted(fn_ps_ctx *c, int64_t id, int deleted)
{
    fn_sql_stmt *st = stmt(c, "UPDATE persons SET deleted_at = ?2 WHERE id = ?1");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, id);
    if (deleted) fn_sql_bind_int64(st, 2, fn_wall_ms());
    return exec_st(c, st, deleted ? "deleting a person" : "bringing a person back");
}

/* The ids of the faces `sql` selects with ?1 = a (a cached literal). */
static int select_ids(fn_ps_ctx *c, const char *sql, int64_t a, int64_t b, int64_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    fn_sql_stmt *st = stmt(c, sql);
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, a);
    if (fn_sql_bind_parameter_count(st) >= 2) fn_sql_bind_int64(st, 2, b);
    size_t cap = 0;
    int rc, ret = 0;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW)
        if ((ret = ids_push(ids, n, &cap, fn_sql_column_int64(st, 0))) < 0) break;
    if (ret == 0 && rc != FN_SQL_DONE) ret = dbfail(c, rc, "selecting faces");
    if (ret == FN_ERR_NOMEM) fail(c, ret, "out of memory selecting faces");
    fn_sql_reset(st);
    return ret;
}

static void done_person(fn_person *p)
{
    free(p->name);
    p->name = NULL;
}

/* "3 faces", "1 face" */
static const char *faces_word(size_t n)
{
    return n == 1 ? "face" : "faces";
}

/* ---- Naming -----------------------------------------------------------------------------------
 */

int fn_ps_create(fn_ps_ctx *c, const char *name, int64_t *person_id, int64_t *audit_id)
{
    int64_t audit = 0, id = 0;
    int ret = audit_begin(c, "person.create", 0, &audit);
    if (ret == 0) ret = person_insert(c, name, &id);
    if (ret < 0) return ret;
    char summary[600];
    snprintf(summary, sizeof summary, "Created person \"%s\" (%lld)", name, (long long)id);
    json_t *d = detail_new(summary);
    fn_person p = {.id = id, .name = (char *)name};
    json_object_set_new(d, "person", person_json(&p));
    effect_id(d, "created", id);
    if ((ret = audit_finish(c, audit, "person.create", d)) < 0) return ret;
    if (person_id) *person_id = id;
    if (audit_id) *audit_id = audit;
    return 0;
}

int fn_ps_name_cluster(fn_ps_ctx *c, int64_t cluster_id, const char *name, int64_t *person_id,
                       int64_t *audit_id)
{
    fn_sql_stmt *st = stmt(c, "SELECT coalesce(person_id, 0) FROM clusters WHERE id = ?1");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, cluster_id);
    int rc = fn_sql_step(st);
    int64_t before = rc == FN_SQL_ROW ? fn_sql_column_int64(st, 0) : 0;
    fn_sql_reset(st);
    if (rc == FN_SQL_DONE)
        return fail(c, FN_ERR_NOT_FOUND, "no cluster %lld in the library", (long long)cluster_id);
    if (rc != FN_SQL_ROW) return dbfail(c, rc, "reading a cluster");

    int64_t audit = 0, pid = 0;
    int ret = audit_begin(c, "person.name_cluster", 0, &audit);
    if (ret < 0) return ret;
    fn_person p = {0};
    int created = 0;
    ret = fn_ps_person_by_name(c, name, &p);
    if (ret == FN_ERR_NOT_FOUND) {
        if ((ret = person_insert(c, name, &pid)) < 0) return ret;
        p.id = pid;
        p.name = strdup(name);
        if (!p.name) return fail(c, FN_ERR_NOMEM, "out of memory");
        created = 1;
    } else if (ret < 0) {
        return ret;
    }
    pid = p.id;
    /* A face a person already said is not this person (a cannot-link) stays out. */
    int64_t *ids = NULL;
    size_t n = 0, changed = 0;
    ret = select_ids(c,
                     "SELECT f.id FROM faces f WHERE f.cluster_id = ?1 AND f.person_id IS NULL"
                     " AND f.state = 'auto' AND NOT EXISTS (SELECT 1 FROM cannot_links l"
                     " WHERE l.face_id = f.id AND l.person_id = ?2) ORDER BY f.id",
                     cluster_id, pid, &ids, &n);
    if (ret == 0 && n == 0)
        ret = fail(c, FN_ERR_INVALID,
                   "cluster %lld has no faces without a person that could be \"%s\"; nothing to "
                   "name",
                   (long long)cluster_id, p.name);
    for (size_t i = 0; ret == 0 && i < n; i++) {
        face_now f;
        if ((ret = face_get(c, ids[i], &f)) == 0)
            ret = face_set(c, audit, &f, pid, FN_FACE_CONFIRMED, f.cluster, &changed);
    }
    free(ids);
    if (ret == 0) {
        st = stmt(c, "UPDATE clusters SET person_id = ?2 WHERE id = ?1");
        if (!st) ret = FN_ERR_DB;
        if (st) {
            fn_sql_bind_int64(st, 1, cluster_id);
            fn_sql_bind_int64(st, 2, pid);
            ret = exec_st(c, st, "naming a cluster");
        }
    }
    if (ret == 0) {
        char summary[700];
        snprintf(summary, sizeof summary, "Named cluster %lld \"%s\"%s: %zu %s confirmed",
                 (long long)cluster_id, p.name, created ? " (a new person)" : "", changed,
                 faces_word(changed));
        json_t *d = detail_new(summary);
        json_object_set_new(d, "person", person_json(&p));
        json_object_set_new(d, "cluster", json_integer(cluster_id));
        if (created) effect_id(d, "created", pid);
        json_object_set_new(effects(d), "cluster_named",
                            json_pack("{s:I, s:o, s:I}", "cluster", (json_int_t)cluster_id,
                                      "before", before ? json_integer(before) : json_null(),
                                      "after", (json_int_t)pid));
        ret = audit_finish(c, audit, "person.name_cluster", d);
    }
    done_person(&p);
    if (ret < 0) return ret;
    if (person_id) *person_id = pid;
    if (audit_id) *audit_id = audit;
    return 0;
}

int fn_ps_assign(fn_ps_ctx *c, const int64_t *faces, size_t n, int64_t person_id, const char *name,
                 int64_t *person_out, int64_t *audit_id)
{
    fn_person p = {0};
    int64_t audit = 0;
    int created = 0;
    int ret = audit_begin(c, "face.assign", 0, &audit);
    if (ret < 0) return ret;
    if (name) {
        ret = fn_ps_person_by_name(c, name, &p);
        if (ret == FN_ERR_NOT_FOUND) {
            /* a new name: the person is created in the same entry, so one undo takes both */
            c->msg[0] = 0;
            if ((ret = person_insert(c, name, &person_id)) < 0) return ret;
            p.id = person_id;
            p.name = strdup(name);
            if (!p.name) return fail(c, FN_ERR_NOMEM, "out of memory");
            created = 1;
        } else if (ret < 0) {
            return ret;
        }
        person_id = p.id;
    } else if ((ret = fn_ps_person_by_id(c, person_id, 0, &p)) < 0) {
        return ret;
    }
    size_t changed = 0, moved = 0;
    for (size_t i = 0; ret == 0 && i < n; i++) {
        face_now f;
        if ((ret = face_get(c, faces[i], &f)) < 0) break;
        if (f.state == FN_FACE_IGNORED) {
            ret = fail(c, FN_ERR_INVALID,
                       "face %lld is ignored; unignore it first (facenames faces unassign %lld) "
                       "to give it a person",
                       (long long)f.id, (long long)f.id);
            break;
        }
        if (f.person && f.person != person_id) moved++;
        ret = face_set(c, audit, &f, person_id, FN_FACE_CONFIRMED, f.cluster, &changed);
    }
    if (ret == 0 && changed == 0 && !created) {
        ret = audit_drop(c, audit);
        audit = 0;
    } else if (ret == 0) {
        const char *action = moved ? "face.move" : "face.assign";
        char summary[700];
        snprintf(summary, sizeof summary, "%s %zu %s to \"%s\" (person %lld%s)",
                 moved ? "Moved" : "Assigned", changed, faces_word(changed), p.name,
                 (long long)p.id, created ? ", new" : "");
        json_t *d = detail_new(summary);
        json_object_set_new(d, "person", person_json(&p));
        if (created) effect_id(d, "created", p.id);
        ret = audit_finish(c, audit, action, d);
    }
    done_person(&p);
    if (ret == 0 && person_out) *person_out = person_id;
    if (ret == 0 && audit_id) *audit_id = audit;
    return ret;
}

/* unassign and ignore: the face leaves its person and cluster. */
static int faces_clear(fn_ps_ctx *c, const int64_t *faces, size_t n, int state, int64_t *audit_id)
{
    const char *action = state == FN_FACE_IGNORED ? "face.ignore" : "face.unassign";
    int64_t audit = 0;
    size_t changed = 0;
    int ret = audit_begin(c, action, 0, &audit);
    for (size_t i = 0; ret == 0 && i < n; i++) {
        face_now f;
        if ((ret = face_get(c, faces[i], &f)) == 0)
            ret = face_set(c, audit, &f, 0, state, 0, &changed);
    }
    if (ret == 0 && changed == 0) {
        ret = audit_drop(c, audit);
        audit = 0;
    } else if (ret == 0) {
        char summary[200];
        snprintf(summary, sizeof summary, "%s %zu %s",
                 state == FN_FACE_IGNORED ? "Ignored" : "Unassigned", changed, faces_word(changed));
        ret = audit_finish(c, audit, action, detail_new(summary));
    }
    if (ret == 0 && audit_id) *audit_id = audit;
    return ret;
}

int fn_ps_unassign(fn_ps_ctx *c, const int64_t *faces, size_t n, int64_t *audit_id)
{
    return faces_clear(c, faces, n, FN_FACE_AUTO, audit_id);
}

int fn_ps_ignore(fn_ps_ctx *c, const int64_t *faces, size_t n, int64_t *audit_id)
{
    return faces_clear(c, faces, n, FN_FACE_IGNORED, audit_id);
}

static int person_set_name(fn_ps_ctx *c, int64_t id, const char *name)
{
    fn_sql_stmt *st = stmt(c, "UPDATE persons SET name = ?2 WHERE id = ?1");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, id);
    fn_sql_bind_text(st, 2, name, -1, FN_SQL_TRANSIENT);
    return exec_st(c, st, "renaming a person");
}

int fn_ps_rename(fn_ps_ctx *c, int64_t person_id, const char *name, int64_t *audit_id)
{
    fn_person p;
    int ret = fn_ps_person_by_id(c, person_id, 0, &p);
    if (ret < 0) return ret;
    int64_t other = 0, audit = 0;
    if (strcmp(p.name, name) == 0) {
        done_person(&p);
        if (audit_id) *audit_id = 0;
        return 0; /* nothing to change, nothing to audit */
    }
    ret = name_taken(c, name, person_id, &other);
    if (ret == 0 && other)
        ret = fail(c, FN_ERR_EXISTS, "another person is named \"%s\" (person %lld)", name,
                   (long long)other);
    if (ret == 0) ret = audit_begin(c, "person.rename", 0, &audit);
    if (ret == 0) ret = person_set_name(c, person_id, name);
    if (ret == 0) {
        char summary[800];
        snprintf(summary, sizeof summary, "Renamed \"%s\" to \"%s\" (person %lld)", p.name, name,
                 (long long)person_id);
        json_t *d = detail_new(summary);
        json_object_set_new(d, "person",
                            json_pack("{s:I, s:s}", "id", (json_int_t)person_id, "name", name));
        json_object_set_new(effects(d), "renamed",
                            json_pack("{s:I, s:s, s:s}", "person", (json_int_t)person_id, "from",
                                      p.name, "to", name));
        ret = audit_finish(c, audit, "person.rename", d);
    }
    done_person(&p);
    if (ret == 0 && audit_id) *audit_id = audit;
    return ret;
}

static int drop_suggestions_of(fn_ps_ctx *c, int64_t person)
{
    fn_sql_stmt *st = stmt(c, "DELETE FROM suggestions WHERE person_id = ?1");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, person);
    return exec_st(c, st, "dropping suggestions");
}

static int links_copy(fn_ps_ctx *c, int64_t from, int64_t into, int64_t audit)
{
    /* The WHERE clause also keeps SQLite from reading ON CONFLICT as a join's ON. */
    fn_sql_stmt *st = stmt(c, "INSERT INTO cannot_links (face_id, person_id,"
                              " created_at, audit_id) SELECT face_id, ?2, ?3, ?4"
                              " FROM cannot_links WHERE person_id = ?1 ON CONFLICT DO NOTHING");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, from);
    fn_sql_bind_int64(st, 2, into);
    fn_sql_bind_int64(st, 3, fn_wall_ms());
    fn_sql_bind_int64(st, 4, audit);
    return exec_st(c, st, "carrying cannot-links over");
}

int fn_ps_merge(fn_ps_ctx *c, int64_t from, int64_t into, int64_t *audit_id)
{
    if (from == into)
        return fail(c, FN_ERR_INVALID, "cannot merge person %lld into itself", (long long)from);
    fn_person a = {0}, b = {0};
    int ret = fn_ps_person_by_id(c, from, 0, &a);
    if (ret == 0) ret = fn_ps_person_by_id(c, into, 0, &b);
    int64_t audit = 0, *ids = NULL;
    size_t n = 0, changed = 0;
    if (ret == 0) ret = audit_begin(c, "person.merge", 0, &audit);
    if (ret == 0)
        ret = select_ids(c, "SELECT id FROM faces WHERE person_id = ?1 ORDER BY id", from, 0, &ids,
                         &n);
    for (size_t i = 0; ret == 0 && i < n; i++) {
        face_now f;
        if ((ret = face_get(c, ids[i], &f)) == 0)
            ret = face_set(c, audit, &f, into, f.state, f.cluster, &changed);
    }
    free(ids);
    if (ret == 0) ret = person_set_deleted(c, from, 1);
    if (ret == 0) ret = links_copy(c, from, into, audit);
    if (ret == 0) ret = drop_suggestions_of(c, from);
    if (ret == 0) {
        char summary[900];
        snprintf(summary, sizeof summary,
                 "Merged \"%s\" (person %lld) into \"%s\" (person %lld): %zu %s moved", a.name,
                 (long long)from, b.name, (long long)into, changed, faces_word(changed));
        json_t *d = detail_new(summary);
        json_object_set_new(d, "from", person_json(&a));
        json_object_set_new(d, "into", person_json(&b));
        effect_id(d, "deleted", from);
        json_object_set_new(
            effects(d), "links_copied",
            json_pack("{s:I, s:I}", "from", (json_int_t)from, "into", (json_int_t)into));
        ret = audit_finish(c, audit, "person.merge", d);
    }
    done_person(&a);
    done_person(&b);
    if (ret == 0 && audit_id) *audit_id = audit;
    return ret;
}

int fn_ps_split(fn_ps_ctx *c, int64_t person_id, const int64_t *faces, size_t n,
                const char *new_name, int64_t *new_person, int64_t *audit_id)
{
    fn_person p;
    int ret = fn_ps_person_by_id(c, person_id, 0, &p);
    if (ret < 0) return ret;
    int64_t audit = 0, q = 0;
    size_t changed = 0;
    ret = audit_begin(c, "person.split", 0, &audit);
    if (ret == 0) ret = person_insert(c, new_name, &q);
    for (size_t i = 0; ret == 0 && i < n; i++) {
        face_now f;
        if ((ret = face_get(c, faces[i], &f)) < 0) break;
        if (f.person != person_id && f.person != q) {
            ret = fail(c, FN_ERR_INVALID, "face %lld is not a face of \"%s\" (person %lld)",
                       (long long)f.id, p.name, (long long)person_id);
            break;
        }
        ret = face_set(c, audit, &f, q, FN_FACE_CONFIRMED, f.cluster, &changed);
    }
    if (ret == 0) {
        char summary[900];
        snprintf(summary, sizeof summary,
                 "Split %zu %s of \"%s\" (person %lld) into \"%s\" (person %lld)", changed,
                 faces_word(changed), p.name, (long long)person_id, new_name, (long long)q);
        json_t *d = detail_new(summary);
        json_object_set_new(d, "from", person_json(&p));
        json_object_set_new(d, "person",
                            json_pack("{s:I, s:s}", "id", (json_int_t)q, "name", new_name));
        effect_id(d, "created", q);
        ret = audit_finish(c, audit, "person.split", d);
    }
    done_person(&p);
    if (ret < 0) return ret;
    if (new_person) *new_person = q;
    if (audit_id) *audit_id = audit;
    return 0;
}

int fn_ps_delete(fn_ps_ctx *c, int64_t person_id, int64_t *audit_id)
{
    fn_person p;
    int ret = fn_ps_person_by_id(c, person_id, 0, &p);
    if (ret < 0) return ret;
    int64_t audit = 0, *ids = NULL;
    size_t n = 0, changed = 0;
    ret = audit_begin(c, "person.delete", 0, &audit);
    if (ret == 0)
        ret = select_ids(c, "SELECT id FROM faces WHERE person_id = ?1 ORDER BY id", person_id, 0,
                         &ids, &n);
    for (size_t i = 0; ret == 0 && i < n; i++) {
        face_now f;
        if ((ret = face_get(c, ids[i], &f)) == 0)
            ret = face_set(c, audit, &f, 0, FN_FACE_AUTO, f.cluster, &changed);
    }
    free(ids);
    if (ret == 0) ret = person_set_deleted(c, person_id, 1);
    if (ret == 0) ret = drop_suggestions_of(c, person_id);
    if (ret == 0) {
        char summary[700];
        snprintf(summary, sizeof summary,
                 "Deleted \"%s\" (person %lld): %zu %s without a person now", p.name,
                 (long long)person_id, changed, faces_word(changed));
        json_t *d = detail_new(summary);
        json_object_set_new(d, "person", person_json(&p));
        effect_id(d, "deleted", person_id);
        ret = audit_finish(c, audit, "person.delete", d);
    }
    done_person(&p);
    if (ret == 0 && audit_id) *audit_id = audit;
    return ret;
}

/* The pending suggestion of a face (its person not deleted), or FN_ERR_INVALID saying there is
 * none. */
static int suggestion_of(fn_ps_ctx *c, int64_t face, int64_t *person)
{
    face_now f;
    int ret = face_get(c, face, &f);
    if (ret < 0) return ret;
    fn_sql_stmt *st = stmt(c, "SELECT s.person_id FROM suggestions s JOIN persons p"
                              " ON p.id = s.person_id AND p.deleted_at IS NULL"
                              " WHERE s.face_id = ?1");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, face);
    int rc = fn_sql_step(st);
    *person = rc == FN_SQL_ROW ? fn_sql_column_int64(st, 0) : 0;
    fn_sql_reset(st);
    if (rc != FN_SQL_ROW && rc != FN_SQL_DONE) return dbfail(c, rc, "reading a suggestion");
    if (!*person || f.person || f.state != FN_FACE_AUTO)
        return fail(c, FN_ERR_INVALID, "face %lld has no pending suggestion", (long long)face);
    return 0;
}

/* The suggestion of `face` as [face, person, confidence, distance, margin, support] for an
 * entry's effects, so an undo can put it back. */
static json_t *suggestion_row(fn_ps_ctx *c, int64_t face)
{
    fn_sql_stmt *st = stmt(c, "SELECT person_id, confidence, distance, margin,"
                              " coalesce(support_face_id, 0), coalesce(job_id, 0)"
                              " FROM suggestions WHERE face_id = ?1");
    if (!st) return NULL;
    fn_sql_bind_int64(st, 1, face);
    json_t *row = NULL;
    if (fn_sql_step(st) == FN_SQL_ROW)
        row = json_pack(
            "[I, I, f, f, f, I, I]", (json_int_t)face, (json_int_t)fn_sql_column_int64(st, 0),
            fn_sql_column_double(st, 1), fn_sql_column_double(st, 2), fn_sql_column_double(st, 3),
            (json_int_t)fn_sql_column_int64(st, 4), (json_int_t)fn_sql_column_int64(st, 5));
    fn_sql_reset(st);
    return row;
}

int fn_ps_accept(fn_ps_ctx *c, const int64_t *faces, size_t n, int64_t *audit_id)
{
    int64_t audit = 0, first_person = 0;
    size_t changed = 0;
    int several = 0;
    int ret = audit_begin(c, "suggestion.accept", 0, &audit);
    json_t *taken = json_array();
    for (size_t i = 0; ret == 0 && i < n; i++) {
        int64_t person = 0;
        face_now f;
        if ((ret = suggestion_of(c, faces[i], &person)) < 0) break;
        json_t *row = suggestion_row(c, faces[i]);
        if (row) json_array_append_new(taken, row);
        if ((ret = face_get(c, faces[i], &f)) < 0) break;
        if (first_person && person != first_person) several = 1;
        if (!first_person) first_person = person;
        ret = face_set(c, audit, &f, person, FN_FACE_CONFIRMED, f.cluster, &changed);
    }
    if (ret == 0) {
        char summary[700];
        fn_person p = {0};
        if (!several) ret = fn_ps_person_by_id(c, first_person, 1, &p);
        if (ret == 0) {
            if (several)
                snprintf(summary, sizeof summary, "Accepted %zu suggestions", changed);
            else
                snprintf(summary, sizeof summary, "Accepted %zu %s as \"%s\" (person %lld)",
                         changed, faces_word(changed), p.name, (long long)p.id);
            json_t *d = detail_new(summary);
            if (!several) json_object_set_new(d, "person", person_json(&p));
            json_object_set(effects(d), "suggestions", taken);
            ret = audit_finish(c, audit, "suggestion.accept", d);
        }
        done_person(&p);
    }
    json_decref(taken);
    if (ret == 0 && audit_id) *audit_id = audit;
    return ret;
}

int fn_ps_reject(fn_ps_ctx *c, const int64_t *faces, size_t n, int64_t *audit_id)
{
    int64_t audit = 0;
    int ret = audit_begin(c, "suggestion.reject", 0, &audit);
    json_t *links = json_array(), *taken = json_array();
    size_t done = 0;
    for (size_t i = 0; ret == 0 && i < n; i++) {
        int64_t person = 0;
        if ((ret = suggestion_of(c, faces[i], &person)) < 0) break;
        json_t *row = suggestion_row(c, faces[i]);
        if (row) json_array_append_new(taken, row);
        fn_sql_stmt *st = stmt(c, "INSERT INTO cannot_links (face_id, person_id,"
                                  " created_at, audit_id) VALUES (?1, ?2, ?3, ?4)"
                                  " ON CONFLICT DO NOTHING");
        if (!st) {
            ret = FN_ERR_DB;
            break;
        }
        fn_sql_bind_int64(st, 1, faces[i]);
        fn_sql_bind_int64(st, 2, person);
        fn_sql_bind_int64(st, 3, fn_wall_ms());
        fn_sql_bind_int64(st, 4, audit);
        if ((ret = exec_st(c, st, "recording a cannot-link")) < 0) break;
        st = stmt(c, "DELETE FROM suggestions WHERE face_id = ?1");
        if (!st) {
            ret = FN_ERR_DB;
            break;
        }
        fn_sql_bind_int64(st, 1, faces[i]);
        if ((ret = exec_st(c, st, "dropping a suggestion")) < 0) break;
        json_array_append_new(links, json_pack("[I, I]", (json_int_t)faces[i], (json_int_t)person));
        done++;
    }
    if (ret == 0) {
        char summary[200];
        snprintf(summary, sizeof summary,
                 "Rejected %zu %s: never suggested or joined to that person again", done,
                 done == 1 ? "suggestion" : "suggestions");
        json_t *d = detail_new(summary);
        json_object_set(effects(d), "links", links);
        json_object_set(effects(d), "suggestions", taken);
        ret = audit_finish(c, audit, "suggestion.reject", d);
    }
    json_decref(links);
    json_decref(taken);
    if (ret == 0 && audit_id) *audit_id = audit;
    return ret;
}

/* ---- Undo -------------------------------------------------------------------------------------
 */

typedef struct entry {
    int64_t id, undone_by, undoes;
    char action[64];
    json_t *detail;
} entry;

static int entry_get(fn_ps_ctx *c, int64_t id, entry *e)
{
    memset(e, 0, sizeof *e);
    fn_sql_stmt *st = stmt(c, "SELECT action, coalesce(detail, '{}'), coalesce(undone_by, 0),"
                              " coalesce(undoes, 0) FROM audit_log WHERE id = ?1");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, id);
    int rc = fn_sql_step(st), ret = 0;
    if (rc == FN_SQL_ROW) {
        e->id = id;
        snprintf(e->action, sizeof e->action, "%s", fn_sql_column_text(st, 0));
        e->detail = json_loads(fn_sql_column_text(st, 1), 0, NULL);
        if (!e->detail) e->detail = json_object();
        e->undone_by = fn_sql_column_int64(st, 2);
        e->undoes = fn_sql_column_int64(st, 3);
    } else if (rc == FN_SQL_DONE) {
        ret = fail(c, FN_ERR_NOT_FOUND, "no audit entry %lld (see facenames audit list)",
                   (long long)id);
    } else {
        ret = dbfail(c, rc, "reading an audit entry");
    }
    fn_sql_reset(st);
    return ret;
}

static const char *summary_of(const entry *e)
{
    const char *s = json_string_value(json_object_get(e->detail, "summary"));
    return s ? s : e->action;
}

static int set_undone_by(fn_ps_ctx *c, int64_t id, int64_t by)
{
    fn_sql_stmt *st = stmt(c, "UPDATE audit_log SET undone_by = ?2 WHERE id = ?1");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, id);
    bind_id(st, 2, by);
    return exec_st(c, st, "marking an audit entry undone");
}

static int person_face_count(fn_ps_ctx *c, int64_t person, int64_t *n)
{
    fn_sql_stmt *st = stmt(c, "SELECT count(*) FROM faces WHERE person_id = ?1");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, person);
    int rc = fn_sql_step(st);
    *n = rc == FN_SQL_ROW ? fn_sql_column_int64(st, 0) : 0;
    fn_sql_reset(st);
    return rc == FN_SQL_ROW ? 0 : dbfail(c, rc, "counting a person's faces");
}

/* Brings a person back, unless another person took the name meanwhile. */
static int person_undelete(fn_ps_ctx *c, int64_t id)
{
    fn_person p;
    int ret = fn_ps_person_by_id(c, id, 1, &p);
    if (ret < 0) return ret;
    int64_t other = 0;
    ret = name_taken(c, p.name, id, &other);
    if (ret == 0 && other)
        ret = fail(c, FN_ERR_CONFLICT,
                   "person %lld cannot come back as \"%s\": person %lld has that name now; "
                   "rename one of them first",
                   (long long)id, p.name, (long long)other);
    done_person(&p);
    return ret < 0 ? ret : person_set_deleted(c, id, 0);
}

/* Takes away a person an entry created, unless faces were given to it since. */
static int person_uncreate(fn_ps_ctx *c, int64_t id)
{
    int64_t n = 0;
    int ret = person_face_count(c, id, &n);
    if (ret == 0 && n > 0) {
        /* name the latest change in force that gave it one of them */
        fn_sql_stmt *st = stmt(c, "SELECT max(af.audit_id) FROM audit_faces af"
                                  " JOIN faces f ON f.id = af.face_id AND f.person_id = ?1"
                                  " JOIN audit_log l ON l.id = af.audit_id"
                                  " WHERE af.person_after = ?1 AND l.undone_by IS NULL");
        int64_t later = 0;
        if (st) {
            fn_sql_bind_int64(st, 1, id);
            if (fn_sql_step(st) == FN_SQL_ROW) later = fn_sql_column_int64(st, 0);
            fn_sql_reset(st);
        }
        if (later)
            ret = fail(c, FN_ERR_CONFLICT,
                       "person %lld has %lld %s given to it by later changes (the latest: audit "
                       "entry %lld); undo those first",
                       (long long)id, (long long)n, faces_word((size_t)n), (long long)later);
        else
            ret = fail(c, FN_ERR_CONFLICT,
                       "person %lld has %lld %s given to it since; take them off it first",
                       (long long)id, (long long)n, faces_word((size_t)n));
    }
    return ret < 0 ? ret : person_set_deleted(c, id, 1);
}

/* Applies the person-level effects of base entry `b` forward (redo) or backward (undo). */
static int effects_apply(fn_ps_ctx *c, const entry *b, int forward)
{
    json_t *ef = effects(b->detail);
    size_t i;
    json_t *v;
    int ret = 0;
    json_array_foreach(json_object_get(ef, "created"), i, v)
    {
        int64_t id = json_integer_value(v);
        ret = forward ? person_undelete(c, id) : person_uncreate(c, id);
        if (ret < 0) return ret;
    }
    json_array_foreach(json_object_get(ef, "deleted"), i, v)
    {
        int64_t id = json_integer_value(v);
        ret = forward ? person_set_deleted(c, id, 1) : person_undelete(c, id);
        if (ret < 0) return ret;
    }
    json_t *r = json_object_get(ef, "renamed");
    if (r) {
        int64_t id = json_integer_value(json_object_get(r, "person"));
        const char *to = json_string_value(json_object_get(r, forward ? "to" : "from"));
        int64_t other = 0;
        if (!to) return fail(c, FN_ERR_CORRUPT, "audit entry %lld has no names", (long long)b->id);
        if ((ret = name_taken(c, to, id, &other)) < 0) return ret;
        if (other)
            return fail(c, FN_ERR_CONFLICT,
                        "person %lld cannot be named \"%s\" again: person %lld has that name now",
                        (long long)id, to, (long long)other);
        if ((ret = person_set_name(c, id, to)) < 0) return ret;
    }
    json_t *k = json_object_get(ef, "cluster_named");
    if (k) {
        fn_sql_stmt *st = stmt(c, "UPDATE clusters SET person_id = ?2 WHERE id = ?1");
        if (!st) return FN_ERR_DB;
        fn_sql_bind_int64(st, 1, json_integer_value(json_object_get(k, "cluster")));
        bind_id(st, 2, json_integer_value(json_object_get(k, forward ? "after" : "before")));
        if ((ret = exec_st(c, st, "naming a cluster")) < 0) return ret;
    }
    /* suggestions an accept or reject used: back when undone (if the face is still free to
     * take it), gone again when redone */
    json_array_foreach(json_object_get(ef, "suggestions"), i, v)
    {
        fn_sql_stmt *st =
            forward ? stmt(c, "DELETE FROM suggestions WHERE face_id = ?1")
                    : stmt(c, "INSERT INTO suggestions (face_id, person_id, confidence,"
                              " distance, margin, support_face_id, job_id, created_at)"
                              " SELECT ?1, ?2, ?3, ?4, ?5, nullif(?6, 0), nullif(?7, 0), ?8"
                              " FROM faces f JOIN persons p ON p.id = ?2 AND p.deleted_at IS NULL"
                              " WHERE f.id = ?1 AND f.person_id IS NULL AND f.state = 'auto'"
                              " ON CONFLICT (face_id) DO UPDATE SET"
                              " person_id = excluded.person_id, confidence = excluded.confidence,"
                              " distance = excluded.distance, margin = excluded.margin,"
                              " support_face_id = excluded.support_face_id,"
                              " job_id = excluded.job_id, created_at = excluded.created_at");
        if (!st) return FN_ERR_DB;
        fn_sql_bind_int64(st, 1, json_integer_value(json_array_get(v, 0)));
        if (!forward) {
            fn_sql_bind_int64(st, 2, json_integer_value(json_array_get(v, 1)));
            fn_sql_bind_double(st, 3, json_number_value(json_array_get(v, 2)));
            fn_sql_bind_double(st, 4, json_number_value(json_array_get(v, 3)));
            fn_sql_bind_double(st, 5, json_number_value(json_array_get(v, 4)));
            fn_sql_bind_int64(st, 6, json_integer_value(json_array_get(v, 5)));
            fn_sql_bind_int64(st, 7, json_integer_value(json_array_get(v, 6)));
            fn_sql_bind_int64(st, 8, fn_wall_ms());
        }
        if ((ret = exec_st(c, st, "putting a suggestion back")) < 0) return ret;
    }
    if (!forward) {
        /* every cannot-link the entry added carries its id */
        fn_sql_stmt *st = stmt(c, "DELETE FROM cannot_links WHERE audit_id = ?1");
        if (!st) return FN_ERR_DB;
        fn_sql_bind_int64(st, 1, b->id);
        return exec_st(c, st, "removing cannot-links");
    }
    json_array_foreach(json_object_get(ef, "links"), i, v)
    {
        fn_sql_stmt *st = stmt(c, "INSERT INTO cannot_links (face_id, person_id,"
                                  " created_at, audit_id) VALUES (?1, ?2, ?3, ?4)"
                                  " ON CONFLICT DO NOTHING");
        if (!st) return FN_ERR_DB;
        fn_sql_bind_int64(st, 1, json_integer_value(json_array_get(v, 0)));
        fn_sql_bind_int64(st, 2, json_integer_value(json_array_get(v, 1)));
        fn_sql_bind_int64(st, 3, fn_wall_ms());
        fn_sql_bind_int64(st, 4, b->id);
        if ((ret = exec_st(c, st, "recording a cannot-link")) < 0) return ret;
    }
    json_t *lc = json_object_get(ef, "links_copied");
    if (lc)
        ret = links_copy(c, json_integer_value(json_object_get(lc, "from")),
                         json_integer_value(json_object_get(lc, "into")), b->id);
    return ret;
}

/* The later entry in force that changed one of `target`'s faces, if any: an undo of a still later
 * entry does not count (it put the face back as `target` left it). */
static int find_conflict(fn_ps_ctx *c, int64_t target)
{
    fn_sql_stmt *st = stmt(
        c, "SELECT af.face_id, l.id, l.action, l.actor FROM audit_faces af"
           " JOIN audit_faces lf ON lf.face_id = af.face_id AND lf.audit_id > ?1"
           " JOIN audit_log l ON l.id = lf.audit_id"
           " WHERE af.audit_id = ?1 AND l.undone_by IS NULL"
           " AND NOT (l.action = 'undo' AND l.undoes > ?1) ORDER BY l.id DESC, af.face_id LIMIT 1");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, target);
    int rc = fn_sql_step(st), ret = 0;
    if (rc == FN_SQL_ROW)
        ret = fail(c, FN_ERR_CONFLICT,
                   "face %lld was changed again by audit entry %lld (%s by %s); undo %lld first",
                   (long long)fn_sql_column_int64(st, 0), (long long)fn_sql_column_int64(st, 1),
                   fn_sql_column_text(st, 2), fn_sql_column_text(st, 3),
                   (long long)fn_sql_column_int64(st, 1));
    else if (rc != FN_SQL_DONE)
        ret = dbfail(c, rc, "checking later changes");
    fn_sql_reset(st);
    return ret;
}

/* After an undo's replay: no face it put back may belong to a person deleted meanwhile (an ignore
 * undone after its person was merged away, say). */
static int check_no_deleted_owner(fn_ps_ctx *c, int64_t undo)
{
    fn_sql_stmt *st = stmt(c, "SELECT f.id, p.id, p.name FROM audit_faces af"
                              " JOIN faces f ON f.id = af.face_id"
                              " JOIN persons p ON p.id = f.person_id"
                              " WHERE af.audit_id = ?1 AND p.deleted_at IS NOT NULL"
                              " ORDER BY f.id LIMIT 1");
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, undo);
    int rc = fn_sql_step(st), ret = 0;
    if (rc == FN_SQL_ROW)
        ret = fail(c, FN_ERR_CONFLICT,
                   "face %lld would go back to \"%s\" (person %lld), who was deleted or merged "
                   "away since; undo that first (see facenames audit list)",
                   (long long)fn_sql_column_int64(st, 0), fn_sql_column_text(st, 2),
                   (long long)fn_sql_column_int64(st, 1));
    else if (rc != FN_SQL_DONE)
        ret = dbfail(c, rc, "checking the persons of an undo");
    fn_sql_reset(st);
    return ret;
}

int fn_ps_undo(fn_ps_ctx *c, int64_t target, int64_t *undo_id)
{
    int ret;
    if (target == 0) {
        fn_sql_stmt *st = stmt(c, "SELECT id FROM audit_log WHERE undone_by IS NULL"
                                  " AND action != 'undo' ORDER BY id DESC LIMIT 1");
        if (!st) return FN_ERR_DB;
        int rc = fn_sql_step(st);
        target = rc == FN_SQL_ROW ? fn_sql_column_int64(st, 0) : 0;
        fn_sql_reset(st);
        if (rc != FN_SQL_ROW && rc != FN_SQL_DONE) return dbfail(c, rc, "finding the last change");
        if (!target) return fail(c, FN_ERR_NOT_FOUND, "nothing to undo");
    }
    entry t, base = {0};
    if ((ret = entry_get(c, target, &t)) < 0) return ret;
    /* The entry whose effects this one stands for: an undo of an undo of X stands for X. */
    int forward = 0;
    int64_t b = t.id, under = t.undoes;
    if (t.undoes) {
        entry u = t;
        u.detail = NULL;
        while (ret == 0 && u.undoes) {
            int64_t next = u.undoes;
            json_decref(u.detail);
            ret = entry_get(c, next, &u);
            forward = !forward;
        }
        if (ret == 0) {
            b = u.id;
            base = u;
        }
    }
    if (ret == 0 && t.undone_by)
        ret = fail(c, FN_ERR_STATE,
                   "audit entry %lld was undone already (by %lld); undo %lld to redo it",
                   (long long)t.id, (long long)t.undone_by, (long long)t.undone_by);
    if (ret == 0) ret = find_conflict(c, t.id);
    int64_t u = 0;
    if (ret == 0) ret = audit_begin(c, "undo", t.id, &u);
    /* faces first, backwards through the entry's rows, so a person taken away is empty by then */
    int64_t *ids = NULL;
    size_t n = 0, changed = 0;
    if (ret == 0)
        ret = select_ids(c, "SELECT face_id FROM audit_faces WHERE audit_id = ?1 ORDER BY face_id",
                         t.id, 0, &ids, &n);
    for (size_t i = 0; ret == 0 && i < n; i++) {
        fn_sql_stmt *st =
            stmt(c, "SELECT coalesce(person_before, 0), state_before, coalesce(cluster_before, 0)"
                    " FROM audit_faces WHERE audit_id = ?1 AND face_id = ?2");
        if (!st) {
            ret = FN_ERR_DB;
            break;
        }
        fn_sql_bind_int64(st, 1, t.id);
        fn_sql_bind_int64(st, 2, ids[i]);
        int rc = fn_sql_step(st);
        int64_t person = 0, cluster = 0;
        int state = 0;
        if (rc == FN_SQL_ROW) {
            person = fn_sql_column_int64(st, 0);
            state = state_parse(fn_sql_column_text(st, 1));
            cluster = fn_sql_column_int64(st, 2);
        }
        fn_sql_reset(st);
        if (rc != FN_SQL_ROW) {
            ret = dbfail(c, rc, "reading an audit entry's faces");
            break;
        }
        face_now f;
        ret = face_get(c, ids[i], &f);
        if (ret ==
            FN_ERR_NOT_FOUND) { /* the face is gone (its photo removed): nothing to put back */
            ret = 0;
            continue;
        }
        if (ret == 0) {
            /* a cluster removed since is not brought back */
            if (cluster) {
                st = stmt(c, "SELECT 1 FROM clusters WHERE id = ?1");
                if (!st) {
                    ret = FN_ERR_DB;
                    break;
                }
                fn_sql_bind_int64(st, 1, cluster);
                if (fn_sql_step(st) != FN_SQL_ROW) cluster = 0;
                fn_sql_reset(st);
            }
            ret = face_set(c, u, &f, person, state, cluster, &changed);
        }
    }
    free(ids);
    if (ret == 0) ret = effects_apply(c, t.undoes ? &base : &t, forward);
    if (ret == 0) ret = check_no_deleted_owner(c, u);
    if (ret == 0) ret = set_undone_by(c, t.id, u);
    /* an undone undo puts its entry back in force (and that one's own target out of force) */
    if (ret == 0 && under) ret = set_undone_by(c, under, 0);
    if (ret == 0 && under) {
        entry x;
        if ((ret = entry_get(c, under, &x)) == 0 && x.undoes)
            ret = set_undone_by(c, x.undoes, under);
        json_decref(x.detail);
    }
    if (ret == 0) {
        char summary[1200];
        snprintf(summary, sizeof summary, "%s %lld: %s", forward ? "Redid" : "Undid", (long long)b,
                 summary_of(t.undoes ? &base : &t));
        json_t *d = detail_new(summary);
        json_object_set_new(d, "undoes", json_integer(t.id));
        ret = audit_finish(c, u, "undo", d);
    }
    json_decref(t.detail);
    json_decref(base.detail);
    if (ret == 0 && undo_id) *undo_id = u;
    return ret;
}
