/* library_interop.c: the SQL of the repair, export and import jobs (library_interop.h).
 *
 * Statements come from the connection's cache (fn_store_stmt, keyed by the literal), so a job that
 * reads 100k photos prepares each statement once. Every statement is reset after use, so a read
 * connection holds no snapshot between calls unless the caller holds one on purpose. */
#include "store/library/library_interop.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "store/store_sql.h"
#include "util/clock.h"

struct fn_xp_reader {
    fn_store *s;
    int holding;
};

static const char *const state_names[] = {"auto", "confirmed", "ignored"};

const char *fn_xp_state_name(int state)
{
    return state >= 0 && state < 3 ? state_names[state] : "auto";
}

int fn_xp_state_parse(const char *s)
{
    for (int i = 0; s && i < 3; i++)
        if (strcmp(s, state_names[i]) == 0) return i;
    return -1;
}

void fn_xp_photo_clear(fn_xp_photo *p)
{
    if (!p) return;
    free(p->path);
    for (size_t i = 0; i < p->n_faces; i++) {
        free(p->faces[i].person);
        free(p->faces[i].rejected);
    }
    free(p->faces);
    memset(p, 0, sizeof *p);
}

int fn_xp_reader_new(fn_store *s, fn_xp_reader **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return FN_ERR_NOMEM;
    (*out)->s = s;
    return 0;
}

int fn_xp_reader_hold(fn_xp_reader *r, int on)
{
    if (!r || !!on == r->holding) return 0;
    int rc = fn_sql_exec(r->s, on ? "BEGIN" : "COMMIT");
    if (rc != FN_OK) return fn_store_fail(r->s, rc, "holding a read transaction");
    r->holding = !!on;
    return 0;
}

void fn_xp_reader_free(fn_xp_reader *r)
{
    if (r) fn_xp_reader_hold(r, 0);
    free(r);
}

static char *dup_col(fn_sql_stmt *st, int i)
{
    const char *t = fn_sql_column_text(st, i);
    return t ? strdup(t) : NULL;
}

static void copy_col(fn_sql_stmt *st, int i, char *dst, size_t cap)
{
    const char *t = fn_sql_column_text(st, i);
    dst[0] = 0;
    if (t) {
        strncpy(dst, t, cap - 1);
        dst[cap - 1] = 0;
    }
}

#define PHOTO_SEL                                                                                  \
    "SELECT p.id, p.path, p.size, p.mtime_ns, p.hash, p.width, p.height, p.taken_at, p.format,"    \
    " p.status, p.missing_at, p.models, EXISTS (SELECT 1 FROM faces f WHERE f.photo_id = p.id"     \
    " AND f.origin = 'auto' AND (f.landmarks IS NULL OR f.descriptor IS NULL"                      \
    " OR f.thumbnail IS NULL)) FROM photos p"

static const char sql_after[] = PHOTO_SEL " WHERE p.id > ?1 ORDER BY p.id LIMIT 1";
static const char sql_by_id[] = PHOTO_SEL " WHERE p.id = ?1";

static const char sql_faces[] =
    "SELECT f.id, f.x, f.y, f.width, f.height, f.score, f.origin, f.state, f.person_id, p.name,"
    " (SELECT json_group_array(q.name) FROM cannot_links c JOIN persons q ON q.id = c.person_id"
    "  WHERE c.face_id = f.id), f.cluster_id, f.landmarks, f.descriptor, f.thumbnail IS NOT NULL"
    " FROM faces f LEFT JOIN persons p ON p.id = f.person_id WHERE f.photo_id = ?1 ORDER BY f.id";
/* PostgreSQL's twin: the rejected names as SQLite's json_group_array writes them (compact, `[]`
 * when there are none; json_agg would add spaces and give NULL), since export copies the text. */
static const char sql_faces_pg[] =
    "SELECT f.id, f.x, f.y, f.width, f.height, f.score, f.origin, f.state, f.person_id, p.name,"
    " (SELECT coalesce('[' || string_agg(coalesce(to_json(q.name)::text, 'null'), ','"
    "  ORDER BY c.person_id) || ']', '[]') FROM cannot_links c JOIN persons q"
    "  ON q.id = c.person_id WHERE c.face_id = f.id), f.cluster_id, f.landmarks, f.descriptor,"
    " f.thumbnail IS NOT NULL"
    " FROM faces f LEFT JOIN persons p ON p.id = f.person_id WHERE f.photo_id = ?1 ORDER BY f.id";

static void photo_cols(fn_sql_stmt *st, fn_xp_photo *p)
{
    p->id = fn_sql_column_int64(st, 0);
    p->path = dup_col(st, 1);
    p->size = fn_sql_column_int64(st, 2);
    p->mtime_ns = fn_sql_column_int64(st, 3);
    p->hash = (uint64_t)fn_sql_column_int64(st, 4);
    p->width = fn_sql_column_int(st, 5);
    p->height = fn_sql_column_int(st, 6);
    p->taken_at = fn_sql_column_type(st, 7) == FN_SQL_NULL ? -1 : fn_sql_column_int64(st, 7);
    copy_col(st, 8, p->format, sizeof p->format);
    copy_col(st, 9, p->status, sizeof p->status);
    p->missing_at = fn_sql_column_int64(st, 10);
    copy_col(st, 11, p->models, sizeof p->models);
    p->incomplete = fn_sql_column_int(st, 12);
}

static int load_faces(fn_store *s, fn_xp_photo *p, unsigned what)
{
    fn_sql_stmt *st = fn_store_stmt(s, FN_SQL_PICK(s, sql_faces, sql_faces_pg));
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, p->id);
    size_t cap = 0;
    int rc;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        if ((what & FN_XP_NAMED_ONLY) && fn_sql_column_type(st, 9) == FN_SQL_NULL) continue;
        if (p->n_faces == cap) {
            size_t nc = cap ? cap * 2 : 8;
            fn_xp_face *g = realloc(p->faces, nc * sizeof *g);
            if (!g) {
                fn_sql_reset(st);
                return FN_ERR_NOMEM;
            }
            p->faces = g;
            cap = nc;
        }
        fn_xp_face *f = &p->faces[p->n_faces++];
        memset(f, 0, sizeof *f);
        f->id = fn_sql_column_int64(st, 0);
        f->x = (float)fn_sql_column_double(st, 1);
        f->y = (float)fn_sql_column_double(st, 2);
        f->width = (float)fn_sql_column_double(st, 3);
        f->height = (float)fn_sql_column_double(st, 4);
        f->score = (float)fn_sql_column_double(st, 5);
        const char *o = fn_sql_column_text(st, 6);
        f->origin_user = o && strcmp((const char *)o, "user") == 0;
        int state = fn_xp_state_parse(fn_sql_column_text(st, 7));
        f->state = state < 0 ? 0 : state;
        f->person_id = fn_sql_column_int64(st, 8);
        f->person = dup_col(st, 9);
        const char *rej = fn_sql_column_text(st, 10);
        if (rej && strcmp((const char *)rej, "[]") != 0) f->rejected = strdup((const char *)rej);
        f->cluster_id = fn_sql_column_int64(st, 11);
        if (fn_sql_column_bytes(st, 12) == (int)sizeof f->landmarks) {
            f->has_landmarks = 1;
            if (what & FN_XP_VECTORS)
                memcpy(f->landmarks, fn_sql_column_blob(st, 12), sizeof f->landmarks);
        }
        if (fn_sql_column_bytes(st, 13) == (int)sizeof f->descriptor) {
            f->has_descriptor = 1;
            if (what & FN_XP_VECTORS)
                memcpy(f->descriptor, fn_sql_column_blob(st, 13), sizeof f->descriptor);
        }
        f->has_thumbnail = fn_sql_column_int(st, 14);
    }
    fn_sql_reset(st);
    return rc == FN_SQL_DONE ? 0 : fn_store_fail(s, rc, "reading a photo's faces");
}

static int photo_query(fn_store *s, const char *sql, int64_t arg, unsigned what, fn_xp_photo *out)
{
    memset(out, 0, sizeof *out);
    fn_sql_stmt *st = fn_store_stmt(s, sql);
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, arg);
    int rc = fn_sql_step(st);
    if (rc == FN_SQL_ROW) {
        photo_cols(st, out);
        fn_sql_reset(st);
        if (!out->path) return FN_ERR_NOMEM;
        return what & FN_XP_FACES ? load_faces(s, out, what) : 0;
    }
    fn_sql_reset(st);
    return rc == FN_SQL_DONE ? FN_ERR_NOT_FOUND : fn_store_fail(s, rc, "reading photos");
}

int fn_xp_photo_after(fn_xp_reader *r, int64_t after, unsigned what, fn_xp_photo *out)
{
    return photo_query(r->s, sql_after, after, what, out);
}

int fn_xp_photo_tx(fn_store_tx *tx, int64_t id, fn_xp_photo *out)
{
    return photo_query(fn_store_tx_store(tx), sql_by_id, id, FN_XP_FACES, out);
}

int64_t fn_xp_count_photos(fn_store *s, const char *prefix)
{
    static const char all[] = "SELECT count(*) FROM photos";
    static const char under[] =
        "SELECT count(*) FROM photos WHERE substr(path, 1, length(?1)) = ?1";
    fn_sql_stmt *st = fn_store_stmt(s, prefix ? under : all);
    if (!st) return 0;
    if (prefix) fn_sql_bind_text(st, 1, prefix, -1, FN_SQL_TRANSIENT);
    int64_t n = fn_sql_step(st) == FN_SQL_ROW ? fn_sql_column_int64(st, 0) : 0;
    fn_sql_reset(st);
    return n;
}

int fn_xp_photo_same_content(fn_xp_reader *r, int64_t size, uint64_t hash, int64_t not_id,
                             int (*keep)(const char *path, void *arg), void *arg, int64_t *id,
                             char **path)
{
    static const char q[] = "SELECT id, path FROM photos WHERE hash = ?1 AND size = ?2 AND id != ?3"
                            " AND missing_at IS NULL ORDER BY id";
    fn_sql_stmt *st = fn_store_stmt(r->s, q);
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, (int64_t)hash);
    fn_sql_bind_int64(st, 2, size);
    fn_sql_bind_int64(st, 3, not_id);
    int rc, ret = FN_ERR_NOT_FOUND;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        const char *p = fn_sql_column_text(st, 1);
        if (!p || (keep && !keep(p, arg))) continue;
        *id = fn_sql_column_int64(st, 0);
        ret = (*path = strdup(p)) ? 0 : FN_ERR_NOMEM;
        break;
    }
    if (rc != FN_SQL_ROW && rc != FN_SQL_DONE) ret = fn_store_fail(r->s, rc, "finding a photo");
    fn_sql_reset(st);
    return ret;
}

int fn_xp_path_known(fn_xp_reader *r, const char *path)
{
    static const char q[] = "SELECT 1 FROM photos WHERE path = ?1";
    fn_sql_stmt *st = fn_store_stmt(r->s, q);
    if (!st) return 0;
    fn_sql_bind_text(st, 1, path, -1, FN_SQL_TRANSIENT);
    int known = fn_sql_step(st) == FN_SQL_ROW;
    fn_sql_reset(st);
    return known;
}

int fn_xp_ingest_paths(fn_store *s, char ***out, size_t *n)
{
    static const char q[] =
        "SELECT DISTINCT j.value FROM jobs, json_each(jobs.payload, '$.paths') j"
        " WHERE jobs.type = 'ingest' AND json_valid(jobs.payload)"
        " AND j.type = 'text' ORDER BY 1";
    /* PostgreSQL has no json_valid before 16; payloads are JSON the engine checked at enqueue.
     * The strings of the paths array, in byte order as SQLite sorts them. */
    static const char q_pg[] =
        "SELECT DISTINCT (j.value #>> '{}') COLLATE \"C\" FROM jobs,"
        " json_array_elements(CASE WHEN json_typeof(jobs.payload::json -> 'paths') = 'array'"
        " THEN jobs.payload::json -> 'paths' END) j"
        " WHERE jobs.type = 'ingest' AND json_typeof(j.value) = 'string' ORDER BY 1";
    *out = NULL;
    *n = 0;
    fn_sql_stmt *st = fn_store_stmt(s, FN_SQL_PICK(s, q, q_pg));
    if (!st) return FN_ERR_DB;
    size_t cap = 0;
    int rc;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            char **g = realloc(*out, nc * sizeof *g);
            if (!g) break;
            *out = g;
            cap = nc;
        }
        if (!((*out)[*n] = dup_col(st, 0))) break;
        (*n)++;
    }
    fn_sql_reset(st);
    if (rc == FN_SQL_ROW) return FN_ERR_NOMEM;
    return rc == FN_SQL_DONE ? 0 : fn_store_fail(s, rc, "reading the library's roots");
}

/* ---- the checks -------------------------------------------------------------------------------
 */

static const char sql_orphan_clusters[] =
    "FROM clusters WHERE NOT EXISTS (SELECT 1 FROM faces f WHERE f.cluster_id = clusters.id)";
static const char sql_faceless_persons[] =
    "FROM persons p WHERE p.deleted_at IS NULL AND NOT EXISTS (SELECT 1 FROM faces f WHERE"
    " f.person_id = p.id) AND NOT EXISTS (SELECT 1 FROM suggestions s WHERE s.person_id = p.id)";

/* The rows fn_xp_fix's foreign-key statements would change, counted (PostgreSQL's check). */
static const char sql_dangling_pg[] =
    "FROM (SELECT 1 FROM faces WHERE photo_id NOT IN (SELECT id FROM photos)"
    " UNION ALL SELECT 1 FROM faces WHERE person_id IS NOT NULL AND person_id NOT IN"
    " (SELECT id FROM persons)"
    " UNION ALL SELECT 1 FROM faces WHERE cluster_id IS NOT NULL AND cluster_id NOT IN"
    " (SELECT id FROM clusters)"
    " UNION ALL SELECT 1 FROM clusters WHERE person_id IS NOT NULL AND person_id NOT IN"
    " (SELECT id FROM persons)"
    " UNION ALL SELECT 1 FROM suggestions WHERE face_id NOT IN (SELECT id FROM faces)"
    " OR person_id NOT IN (SELECT id FROM persons)"
    " UNION ALL SELECT 1 FROM cannot_links WHERE face_id NOT IN (SELECT id FROM faces)"
    " OR person_id NOT IN (SELECT id FROM persons)"
    " UNION ALL SELECT 1 FROM audit_faces WHERE audit_id NOT IN (SELECT id FROM audit_log)) d";

static int count_rows(fn_store *s, const char *sql, int64_t *n, int ok_is_fine)
{
    fn_sql_stmt *st = NULL;
    *n = 0;
    int rc = fn_sql_prepare(s, sql, &st);
    if (rc != FN_OK) return fn_store_fail(s, rc, "checking the database");
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        const char *t = fn_sql_column_text(st, 0);
        if (ok_is_fine && t && strcmp(t, "ok") == 0) continue;
        (*n)++;
    }
    fn_sql_finalize(st);
    return rc == FN_SQL_DONE ? 0 : fn_store_fail(s, rc, "checking the database");
}

static int count_of(fn_store *s, const char *from, int64_t *n)
{
    char q[2048]; /* room for sql_dangling_pg */
    snprintf(q, sizeof q, "SELECT count(*) %s", from);
    fn_sql_stmt *st = NULL;
    *n = 0;
    int rc = fn_sql_prepare(s, q, &st);
    if (rc == FN_OK && (rc = fn_sql_step(st)) == FN_SQL_ROW) {
        *n = fn_sql_column_int64(st, 0);
        rc = FN_SQL_DONE;
    }
    fn_sql_finalize(st);
    return rc == FN_SQL_DONE ? 0 : fn_store_fail(s, rc, "checking the database");
}

int fn_xp_check(fn_store *s, fn_xp_health *h)
{
    memset(h, 0, sizeof *h);
    int rc = 0;
    if (fn_store_backend(s) == FN_SQL_POSTGRES) {
        /* The server checks its own pages (checksums, WAL) and has no statement like
         * integrity_check (amcheck is an extension a library cannot count on): nothing to count.
         * Foreign keys are always enforced there, so the rows fn_xp_fix would touch are what a
         * check can still find (a constraint made NOT VALID, or rows from before one). */
        h->integrity = 0;
        rc = count_of(s, sql_dangling_pg, &h->foreign_keys);
    } else {
        rc = count_rows(s, "PRAGMA integrity_check", &h->integrity, 1);
        if (!rc) rc = count_rows(s, "PRAGMA foreign_key_check", &h->foreign_keys, 0);
    }
    if (!rc) rc = count_of(s, sql_orphan_clusters, &h->orphan_clusters);
    if (!rc) rc = count_of(s, sql_faceless_persons, &h->faceless_persons);
    return rc;
}

static int exec_count(fn_store *s, const char *sql, int64_t *n)
{
    int rc = fn_sql_exec(s, sql);
    if (rc != FN_OK) return fn_store_fail(s, rc, "fixing the database");
    *n += fn_sql_changes(s);
    return 0;
}

int fn_xp_fix(fn_store_tx *tx, fn_xp_health *fixed)
{
    fn_store *s = fn_store_tx_store(tx);
    memset(fixed, 0, sizeof *fixed);
    /* Rows pointing at rows that are gone: what PRAGMA foreign_key_check reports for our tables.
     * A face without its photo is dropped; a face's lost person or cluster is only cleared. */
    static const char *const fk[] = {
        "DELETE FROM faces WHERE photo_id NOT IN (SELECT id FROM photos)",
        "UPDATE faces SET person_id = NULL WHERE person_id IS NOT NULL AND person_id NOT IN"
        " (SELECT id FROM persons)",
        "UPDATE faces SET cluster_id = NULL WHERE cluster_id IS NOT NULL AND cluster_id NOT IN"
        " (SELECT id FROM clusters)",
        "UPDATE clusters SET person_id = NULL WHERE person_id IS NOT NULL AND person_id NOT IN"
        " (SELECT id FROM persons)",
        "DELETE FROM suggestions WHERE face_id NOT IN (SELECT id FROM faces) OR person_id NOT IN"
        " (SELECT id FROM persons)",
        "DELETE FROM cannot_links WHERE face_id NOT IN (SELECT id FROM faces) OR person_id NOT IN"
        " (SELECT id FROM persons)",
        "DELETE FROM audit_faces WHERE audit_id NOT IN (SELECT id FROM audit_log)",
    };
    int rc = 0;
    for (size_t i = 0; !rc && i < sizeof fk / sizeof fk[0]; i++)
        rc = exec_count(s, fk[i], &fixed->foreign_keys);
    char q[512];
    snprintf(q, sizeof q, "DELETE %s", sql_orphan_clusters);
    if (!rc) rc = exec_count(s, q, &fixed->orphan_clusters);
    /* Deleted softly, like a person a user deletes: an undo (or a new face) can bring one back. */
    snprintf(q, sizeof q, "UPDATE persons SET deleted_at = %lld WHERE id IN (SELECT p.id %s)",
             (long long)fn_wall_ms(), sql_faceless_persons);
    if (!rc) rc = exec_count(s, q, &fixed->faceless_persons);
    return rc;
}

/* ---- writing ----------------------------------------------------------------------------------
 */

static int step_done(fn_store *s, fn_sql_stmt *st, const char *what)
{
    int rc = fn_sql_step(st);
    while (rc == FN_SQL_ROW)
        rc = fn_sql_step(st);
    fn_sql_reset(st);
    return rc == FN_SQL_DONE ? 0 : fn_store_fail(s, rc, what);
}

static int step_id(fn_store *s, fn_sql_stmt *st, int64_t *id, const char *what)
{
    int rc = fn_sql_step(st);
    if (rc == FN_SQL_ROW) {
        *id = fn_sql_column_int64(st, 0);
        rc = fn_sql_step(st);
    } else if (rc == FN_SQL_DONE) {
        fn_sql_reset(st);
        return FN_ERR_NOT_FOUND;
    }
    fn_sql_reset(st);
    return rc == FN_SQL_DONE ? 0 : fn_store_fail(s, rc, what);
}

#define TX_STMT(sqlv)                                                                              \
    fn_store *s = fn_store_tx_store(tx);                                                           \
    fn_sql_stmt *st = fn_store_stmt(s, sqlv);                                                      \
    if (!st) return FN_ERR_DB

int fn_xp_relink(fn_store_tx *tx, int64_t id, const char *path, int64_t mtime_ns)
{
    static const char q[] =
        "UPDATE photos SET path = ?2, mtime_ns = ?3, missing_at = NULL WHERE id = ?1";
    TX_STMT(q);
    fn_sql_bind_int64(st, 1, id);
    fn_sql_bind_text(st, 2, path, -1, FN_SQL_TRANSIENT);
    fn_sql_bind_int64(st, 3, mtime_ns);
    return step_done(s, st, "relinking a photo");
}

int fn_xp_set_missing(fn_store_tx *tx, int64_t id, int64_t at_ms)
{
    static const char q[] = "UPDATE photos SET missing_at = ?2 WHERE id = ?1";
    TX_STMT(q);
    fn_sql_bind_int64(st, 1, id);
    if (at_ms)
        fn_sql_bind_int64(st, 2, at_ms);
    else
        fn_sql_bind_null(st, 2);
    return step_done(s, st, "marking a photo missing");
}

int fn_xp_delete_photo(fn_store_tx *tx, int64_t id)
{
    static const char q[] = "DELETE FROM photos WHERE id = ?1";
    TX_STMT(q);
    fn_sql_bind_int64(st, 1, id);
    return step_done(s, st, "removing a photo");
}

int fn_xp_merge_photo(fn_store_tx *tx, int64_t from, int64_t to, int64_t *moved)
{
    fn_store *s = fn_store_tx_store(tx);
    fn_xp_photo a, b;
    *moved = 0;
    int rc = fn_xp_photo_tx(tx, from, &a);
    if (rc) return rc;
    if ((rc = fn_xp_photo_tx(tx, to, &b))) {
        fn_xp_photo_clear(&a);
        return rc;
    }
    static const char take[] =
        "UPDATE faces SET person_id = ?2, state = ?3, cluster_id = ?4 WHERE id = ?1";
    /* UPDATE OR IGNORE, portably: a link the target face already has stays on the old face. */
    static const char links[] =
        "UPDATE cannot_links SET face_id = ?2 WHERE face_id = ?1 AND NOT EXISTS (SELECT 1 FROM"
        " cannot_links d WHERE d.face_id = ?2 AND d.person_id = cannot_links.person_id)";
    static const char move[] = "UPDATE faces SET photo_id = ?2 WHERE id = ?1";
    char *used = calloc(b.n_faces + 1, 1);
    if (!used) rc = FN_ERR_NOMEM;
    for (size_t i = 0; !rc && i < a.n_faces; i++) {
        const fn_xp_face *f = &a.faces[i];
        if (f->origin_user) {
            fn_sql_stmt *st = fn_store_stmt(s, move);
            if (!st) {
                rc = FN_ERR_DB;
                break;
            }
            fn_sql_bind_int64(st, 1, f->id);
            fn_sql_bind_int64(st, 2, to);
            rc = step_done(s, st, "moving a drawn face");
            if (!rc) (*moved)++;
            continue;
        }
        if (!f->person_id && f->state == 0 && !f->rejected) continue;
        double best = 0.5;
        size_t k = b.n_faces;
        for (size_t j = 0; j < b.n_faces; j++) {
            const fn_xp_face *g = &b.faces[j];
            if (used[j] || g->origin_user || g->state != 0 || g->person_id) continue;
            /* same photo content: the same detector output lands on the same box */
            double iou = 0;
            double x0 = f->x > g->x ? f->x : g->x, y0 = f->y > g->y ? f->y : g->y;
            double x1 = f->x + f->width < g->x + g->width ? f->x + f->width : g->x + g->width;
            double y1 = f->y + f->height < g->y + g->height ? f->y + f->height : g->y + g->height;
            if (x1 > x0 && y1 > y0) {
                double in = (x1 - x0) * (y1 - y0);
                iou = in / ((double)f->width * f->height + (double)g->width * g->height - in);
            }
            if (iou >= best) {
                best = iou;
                k = j;
            }
        }
        if (k == b.n_faces) continue;
        used[k] = 1;
        fn_sql_stmt *st = fn_store_stmt(s, take);
        if (!st) {
            rc = FN_ERR_DB;
            break;
        }
        fn_sql_bind_int64(st, 1, b.faces[k].id);
        if (f->person_id)
            fn_sql_bind_int64(st, 2, f->person_id);
        else
            fn_sql_bind_null(st, 2);
        fn_sql_bind_text(st, 3, fn_xp_state_name(f->state), -1, FN_SQL_STATIC);
        if (f->cluster_id)
            fn_sql_bind_int64(st, 4, f->cluster_id);
        else
            fn_sql_bind_null(st, 4);
        if ((rc = step_done(s, st, "moving a face's person"))) break;
        if (!(st = fn_store_stmt(s, links))) {
            rc = FN_ERR_DB;
            break;
        }
        fn_sql_bind_int64(st, 1, f->id);
        fn_sql_bind_int64(st, 2, b.faces[k].id);
        if ((rc = step_done(s, st, "moving a face's rejections"))) break;
        (*moved)++;
    }
    free(used);
    fn_xp_photo_clear(&a);
    fn_xp_photo_clear(&b);
    return rc ? rc : fn_xp_delete_photo(tx, from);
}

int fn_xp_face_vectors(fn_store_tx *tx, int64_t face_id, const float (*landmarks)[2],
                       const float *descriptor, const uint8_t *thumb, size_t thumb_len)
{
    static const char q[] = "UPDATE faces SET landmarks = ?2, descriptor = ?3,"
                            " thumbnail = coalesce(?4, thumbnail) WHERE id = ?1";
    TX_STMT(q);
    fn_sql_bind_int64(st, 1, face_id);
    fn_sql_bind_blob(st, 2, landmarks, 68 * 2 * sizeof(float), FN_SQL_STATIC);
    fn_sql_bind_blob(st, 3, descriptor, 128 * sizeof(float), FN_SQL_STATIC);
    if (thumb && thumb_len)
        fn_sql_bind_blob(st, 4, thumb, (int)thumb_len, FN_SQL_STATIC);
    else
        fn_sql_bind_null(st, 4);
    return step_done(s, st, "storing recomputed face vectors");
}

int fn_xp_set_models(fn_store_tx *tx, int64_t photo_id, const char *models)
{
    static const char q[] = "UPDATE photos SET models = ?2 WHERE id = ?1";
    TX_STMT(q);
    fn_sql_bind_int64(st, 1, photo_id);
    if (models && *models)
        fn_sql_bind_text(st, 2, models, -1, FN_SQL_TRANSIENT);
    else
        fn_sql_bind_null(st, 2);
    return step_done(s, st, "recording the photo's models");
}

int fn_xp_person(fn_store_tx *tx, const char *name, int create, int64_t *id)
{
    static const char find[] =
        "SELECT id FROM persons WHERE name = ?1 AND deleted_at IS NULL ORDER BY id LIMIT 1";
    static const char add[] = "INSERT INTO persons (name, created_at) VALUES (?1, ?2) RETURNING id";
    fn_store *s = fn_store_tx_store(tx);
    fn_sql_stmt *st = fn_store_stmt(s, find);
    if (!st) return FN_ERR_DB;
    fn_sql_bind_text(st, 1, name, -1, FN_SQL_TRANSIENT);
    int rc = step_id(s, st, id, "finding a person");
    if (rc != FN_ERR_NOT_FOUND || !create) return rc;
    if (!(st = fn_store_stmt(s, add))) return FN_ERR_DB;
    fn_sql_bind_text(st, 1, name, -1, FN_SQL_TRANSIENT);
    fn_sql_bind_int64(st, 2, fn_wall_ms());
    return step_id(s, st, id, "adding a person");
}

int fn_xp_find_photo(fn_store_tx *tx, int64_t size, uint64_t hash, const char *path, int64_t *id)
{
    static const char by_hash[] =
        "SELECT id FROM photos WHERE hash = ?1 AND size = ?2 ORDER BY missing_at IS NOT NULL, id"
        " LIMIT 1";
    static const char by_path[] = "SELECT id FROM photos WHERE path = ?1";
    fn_store *s = fn_store_tx_store(tx);
    int rc = FN_ERR_NOT_FOUND;
    if (hash) {
        fn_sql_stmt *st = fn_store_stmt(s, by_hash);
        if (!st) return FN_ERR_DB;
        fn_sql_bind_int64(st, 1, (int64_t)hash);
        fn_sql_bind_int64(st, 2, size);
        rc = step_id(s, st, id, "finding a photo by content");
    }
    if (rc == FN_ERR_NOT_FOUND && path) {
        fn_sql_stmt *st = fn_store_stmt(s, by_path);
        if (!st) return FN_ERR_DB;
        fn_sql_bind_text(st, 1, path, -1, FN_SQL_TRANSIENT);
        rc = step_id(s, st, id, "finding a photo by path");
    }
    return rc;
}

int fn_xp_insert_photo(fn_store_tx *tx, const fn_xp_photo *p, int64_t job_id, int64_t *id)
{
    static const char q[] =
        "INSERT INTO photos (path, size, mtime_ns, hash, width, height, taken_at, format, status,"
        " ingested_at, job_id, models) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        " RETURNING id";
    TX_STMT(q);
    const char *status = p->status;
    if (strcmp(status, "ok") != 0 && strcmp(status, "no_faces") != 0 &&
        strcmp(status, "error") != 0)
        status = p->n_faces ? "ok" : "no_faces";
    fn_sql_bind_text(st, 1, p->path, -1, FN_SQL_TRANSIENT);
    fn_sql_bind_int64(st, 2, p->size);
    fn_sql_bind_int64(st, 3, p->mtime_ns);
    fn_sql_bind_int64(st, 4, (int64_t)p->hash);
    fn_sql_bind_int(st, 5, p->width);
    fn_sql_bind_int(st, 6, p->height);
    if (p->taken_at >= 0)
        fn_sql_bind_int64(st, 7, p->taken_at);
    else
        fn_sql_bind_null(st, 7);
    if (p->format[0])
        fn_sql_bind_text(st, 8, p->format, -1, FN_SQL_TRANSIENT);
    else
        fn_sql_bind_null(st, 8);
    fn_sql_bind_text(st, 9, status, -1, FN_SQL_STATIC);
    fn_sql_bind_int64(st, 10, fn_wall_ms());
    fn_sql_bind_int64(st, 11, job_id);
    if (p->models[0])
        fn_sql_bind_text(st, 12, p->models, -1, FN_SQL_TRANSIENT);
    else
        fn_sql_bind_null(st, 12);
    return step_id(s, st, id, "adding an imported photo");
}

int fn_xp_insert_face(fn_store_tx *tx, int64_t photo_id, const fn_xp_face *f, int64_t *id)
{
    static const char q[] =
        "INSERT INTO faces (photo_id, x, y, width, height, score, landmarks, descriptor, person_id,"
        " origin, state, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
        " RETURNING id";
    TX_STMT(q);
    fn_sql_bind_int64(st, 1, photo_id);
    fn_sql_bind_double(st, 2, f->x);
    fn_sql_bind_double(st, 3, f->y);
    fn_sql_bind_double(st, 4, f->width);
    fn_sql_bind_double(st, 5, f->height);
    fn_sql_bind_double(st, 6, f->score);
    if (f->has_landmarks)
        fn_sql_bind_blob(st, 7, f->landmarks, sizeof f->landmarks, FN_SQL_TRANSIENT);
    else
        fn_sql_bind_null(st, 7);
    if (f->has_descriptor)
        fn_sql_bind_blob(st, 8, f->descriptor, sizeof f->descriptor, FN_SQL_TRANSIENT);
    else
        fn_sql_bind_null(st, 8);
    if (f->person_id)
        fn_sql_bind_int64(st, 9, f->person_id);
    else
        fn_sql_bind_null(st, 9);
    fn_sql_bind_text(st, 10, f->origin_user ? "user" : "auto", -1, FN_SQL_STATIC);
    fn_sql_bind_text(st, 11, fn_xp_state_name(f->state), -1, FN_SQL_STATIC);
    fn_sql_bind_int64(st, 12, fn_wall_ms());
    return step_id(s, st, id, "adding an imported face");
}

int fn_xp_face_decide(fn_store_tx *tx, int64_t face_id, int64_t person_id, int state)
{
    static const char q[] = "UPDATE faces SET person_id = ?2, state = ?3 WHERE id = ?1";
    TX_STMT(q);
    fn_sql_bind_int64(st, 1, face_id);
    if (person_id)
        fn_sql_bind_int64(st, 2, person_id);
    else
        fn_sql_bind_null(st, 2);
    fn_sql_bind_text(st, 3, fn_xp_state_name(state), -1, FN_SQL_STATIC);
    return step_done(s, st, "naming a face");
}

int fn_xp_cannot_link(fn_store_tx *tx, int64_t face_id, int64_t person_id)
{
    static const char q[] = "INSERT INTO cannot_links (face_id, person_id, created_at)"
                            " VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";
    TX_STMT(q);
    fn_sql_bind_int64(st, 1, face_id);
    fn_sql_bind_int64(st, 2, person_id);
    fn_sql_bind_int64(st, 3, fn_wall_ms());
    return step_done(s, st, "recording a rejected person");
}

int fn_xp_audit(fn_store_tx *tx, const char *actor, const char *action, const char *detail,
                int64_t job_id, int64_t *audit_id)
{
    static const char q[] = "INSERT INTO audit_log (at, actor, action, detail, job_id)"
                            " VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id";
    TX_STMT(q);
    fn_sql_bind_int64(st, 1, fn_wall_ms());
    fn_sql_bind_text(st, 2, actor, -1, FN_SQL_TRANSIENT);
    fn_sql_bind_text(st, 3, action, -1, FN_SQL_TRANSIENT);
    if (detail)
        fn_sql_bind_text(st, 4, detail, -1, FN_SQL_TRANSIENT);
    else
        fn_sql_bind_null(st, 4);
    if (job_id)
        fn_sql_bind_int64(st, 5, job_id);
    else
        fn_sql_bind_null(st, 5);
    return step_id(s, st, audit_id, "writing an audit entry");
}

static void bind_id_or_null(fn_sql_stmt *st, int i, int64_t v)
{
    if (v)
        fn_sql_bind_int64(st, i, v);
    else
        fn_sql_bind_null(st, i);
}

int fn_xp_audit_face(fn_store_tx *tx, int64_t audit_id, int64_t face_id, int64_t person_before,
                     int64_t person_after, int state_before, int state_after,
                     int64_t cluster_before, int64_t cluster_after)
{
    static const char q[] =
        "INSERT INTO audit_faces (audit_id, face_id, person_before, person_after,"
        " state_before, state_after, cluster_before, cluster_after)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (audit_id, face_id) DO UPDATE SET"
        " person_before = excluded.person_before, person_after = excluded.person_after,"
        " state_before = excluded.state_before, state_after = excluded.state_after,"
        " cluster_before = excluded.cluster_before, cluster_after = excluded.cluster_after";
    TX_STMT(q);
    fn_sql_bind_int64(st, 1, audit_id);
    fn_sql_bind_int64(st, 2, face_id);
    bind_id_or_null(st, 3, person_before);
    bind_id_or_null(st, 4, person_after);
    fn_sql_bind_text(st, 5, fn_xp_state_name(state_before), -1, FN_SQL_STATIC);
    fn_sql_bind_text(st, 6, fn_xp_state_name(state_after), -1, FN_SQL_STATIC);
    bind_id_or_null(st, 7, cluster_before);
    bind_id_or_null(st, 8, cluster_after);
    return step_done(s, st, "writing an audit entry's face");
}

char *fn_xp_persons_json(fn_store *s)
{
    static const char q[] =
        "SELECT json_group_array(json_object('name', name, 'faces', n)) FROM (SELECT p.name AS"
        " name, (SELECT count(*) FROM faces f WHERE f.person_id = p.id) AS n FROM persons p"
        " WHERE p.deleted_at IS NULL ORDER BY p.name, p.id)";
    /* The same text on PostgreSQL (the export copies it): compact JSON, names in byte order. */
    static const char q_pg[] =
        "SELECT coalesce('[' || string_agg('{\"name\":' || coalesce(to_json(name)::text, 'null')"
        " || ',\"faces\":' || n, '},' ORDER BY name COLLATE \"C\", id) || '}]', '[]') FROM"
        " (SELECT p.name AS name, p.id AS id, (SELECT count(*) FROM faces f"
        " WHERE f.person_id = p.id) AS n FROM persons p WHERE p.deleted_at IS NULL) x";
    fn_sql_stmt *st = fn_store_stmt(s, FN_SQL_PICK(s, q, q_pg));
    if (!st) return NULL;
    char *r = fn_sql_step(st) == FN_SQL_ROW ? dup_col(st, 0) : NULL;
    fn_sql_reset(st);
    return r;
}
