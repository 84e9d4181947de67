/* roots_store.c: the library's photo roots (migration 5): a root is a photo folder known by a
 * name, mounted at a path per host (root_paths), so that workers on several machines recognise a
 * photo by its root and its path relative to it, whatever path each machine mounts it under.
 *
 * Paths here are absolute and normalised, as the photos' (the callers resolve them); a host's path
 * of a root holds a folder `dir` when it is `dir` or a prefix of it ending at a '/'. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "store/library/library_store.h"
#include "store/store_sql.h"

static const char SQL_PATHS[] =
    "SELECT r.id, r.name, p.host, p.path FROM roots r LEFT JOIN root_paths p ON p.root = r.id"
    " ORDER BY r.name, p.host";
static const char SQL_PATHS_HOST[] =
    "SELECT r.id, r.name, p.host, p.path FROM roots r JOIN root_paths p ON p.root = r.id"
    " WHERE p.host = ?1 ORDER BY r.name";
static const char SQL_ROOT_ID[] = "SELECT id FROM roots WHERE name = ?1";
static const char SQL_ROOT_INS[] = "INSERT INTO roots (name) VALUES (?1) RETURNING id";
/* A host maps a root once: a new path replaces the old one. */
static const char SQL_PATH_SET[] = "INSERT INTO root_paths (root, host, path) VALUES (?1, ?2, ?3)"
                                   " ON CONFLICT (root, host) DO UPDATE SET path = ?3";

void fn_root_paths_free(fn_root_path *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++) {
        free(p[i].name);
        free(p[i].host);
        free(p[i].path);
    }
    free(p);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int fn_library_root_paths(fn_store *s, const char *host, fn_root_path **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    fn_sql_stmt *st = fn_store_stmt(s, host ? SQL_PATHS_HOST : SQL_PATHS);
    if (!st) return FN_ERR_DB;
    if (host) fn_sql_bind_text(st, 1, host, -1, FN_SQL_STATIC);
    fn_root_path *v = NULL;
    size_t len = 0, cap = 0;
    int rc, code = 0;
    while ((rc = fn_sql_step(st)) == FN_SQL_ROW) {
        if (len == cap) {
            cap = cap ? cap * 2 : 8;
            fn_root_path *nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                code = FN_ERR_NOMEM;
                break;
            }
            v = nv;
        }
        fn_root_path *p = &v[len++];
        memset(p, 0, sizeof *p);
        p->root = fn_sql_column_int64(st, 0);
        p->name = dup_or_null(fn_sql_column_text(st, 1));
        p->host = dup_or_null(fn_sql_column_text(st, 2));
        p->path = dup_or_null(fn_sql_column_text(st, 3));
        if (!p->name || (fn_sql_column_text(st, 2) && !p->host) ||
            (fn_sql_column_text(st, 3) && !p->path)) {
            code = FN_ERR_NOMEM;
            break;
        }
    }
    if (!code && rc != FN_SQL_DONE) code = fn_store_fail(s, rc, "reading the roots");
    fn_sql_reset(st);
    if (code) {
        fn_root_paths_free(v, len);
        return code;
    }
    *out = v;
    *n = len;
    return 0;
}

/* The id of root `name`: 0, or FN_ERR_NOT_FOUND. */
static int root_id(fn_store *s, const char *name, int64_t *id)
{
    fn_sql_stmt *st = fn_store_stmt(s, SQL_ROOT_ID);
    if (!st) return FN_ERR_DB;
    fn_sql_bind_text(st, 1, name, -1, FN_SQL_STATIC);
    int rc = fn_sql_step(st), code = 0;
    if (rc == FN_SQL_ROW)
        *id = fn_sql_column_int64(st, 0);
    else if (rc == FN_SQL_DONE)
        code = FN_ERR_NOT_FOUND;
    else
        code = fn_store_fail(s, rc, "looking up a root");
    fn_sql_reset(st);
    return code;
}

static int path_set(fn_store *s, int64_t root, const char *host, const char *path)
{
    fn_sql_stmt *st = fn_store_stmt(s, SQL_PATH_SET);
    if (!st) return FN_ERR_DB;
    fn_sql_bind_int64(st, 1, root);
    fn_sql_bind_text(st, 2, host, -1, FN_SQL_STATIC);
    fn_sql_bind_text(st, 3, path, -1, FN_SQL_STATIC);
    int rc = fn_sql_step(st);
    fn_sql_reset(st);
    return rc == FN_SQL_DONE ? 0 : fn_store_fail(s, rc, "recording a root's path");
}

int fn_library_root_add(fn_store_tx *tx, const char *name, const char *host, const char *path,
                        int64_t *id)
{
    fn_store *s = fn_store_tx_store(tx);
    int64_t old;
    int code = root_id(s, name, &old);
    if (code == 0) {
        fn_store_set_msg(s, FN_ERR_EXISTS, "adding a root",
                         "a root of that name exists (map it for this host instead)");
        return FN_ERR_EXISTS;
    }
    if (code != FN_ERR_NOT_FOUND) return code;
    fn_sql_stmt *st = fn_store_stmt(s, SQL_ROOT_INS);
    if (!st) return FN_ERR_DB;
    fn_sql_bind_text(st, 1, name, -1, FN_SQL_STATIC);
    int rc = fn_sql_step(st);
    if (rc == FN_SQL_ROW) {
        *id = fn_sql_column_int64(st, 0);
        rc = fn_sql_step(st);
    }
    fn_sql_reset(st);
    if (rc != FN_SQL_DONE) return fn_store_fail(s, rc, "adding a root");
    return path_set(s, *id, host, path);
}

int fn_library_root_map(fn_store_tx *tx, const char *name, const char *host, const char *path)
{
    fn_store *s = fn_store_tx_store(tx);
    int64_t id = 0;
    int code = root_id(s, name, &id);
    if (code == FN_ERR_NOT_FOUND)
        fn_store_set_msg(s, code, "mapping a root", "there is no root of that name");
    if (code) return code;
    return path_set(s, id, host, path);
}

/* Whether `base` holds `dir` (equal, or a parent of it). */
static int holds(const char *base, const char *dir)
{
    size_t n = strlen(base);
    if (n == 1 && base[0] == '/') return dir[0] == '/';
    return strncmp(base, dir, n) == 0 && (dir[n] == 0 || dir[n] == '/');
}

int fn_library_root_ensure(fn_store_tx *tx, const char *host, const char *dir, int64_t *id,
                           char **base)
{
    fn_store *s = fn_store_tx_store(tx);
    *base = NULL;
    fn_root_path *v;
    size_t n;
    int code = fn_library_root_paths(s, host, &v, &n);
    if (code) return code;
    size_t best = n;
    for (size_t i = 0; i < n; i++)
        if (v[i].path && holds(v[i].path, dir) &&
            (best == n || strlen(v[i].path) > strlen(v[best].path)))
            best = i;
    if (best < n) {
        *id = v[best].root;
        *base = v[best].path;
        v[best].path = NULL;
        fn_root_paths_free(v, n);
        return 0;
    }
    fn_root_paths_free(v, n);
    /* A new root, named after the folder; a name another host's root has already is made unique
     * rather than joined, since only the user knows that two folders are one root (roots map). */
    const char *last = strrchr(dir, '/');
    const char *stem = last && last[1] ? last + 1 : "root";
    size_t cap = strlen(stem) + 24;
    char *name = malloc(cap);
    if (!name) return FN_ERR_NOMEM;
    snprintf(name, cap, "%s", stem);
    for (int k = 2;; k++) {
        int64_t other;
        code = root_id(s, name, &other);
        if (code == FN_ERR_NOT_FOUND) break;
        if (code) {
            free(name);
            return code;
        }
        snprintf(name, cap, "%s-%d", stem, k);
    }
    code = fn_library_root_add(tx, name, host, dir, id);
    free(name);
    if (code) return code;
    if (!(*base = strdup(dir))) return FN_ERR_NOMEM;
    return 0;
}
