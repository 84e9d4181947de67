/* people.c: the fn_library handle of include/facenames/people.h and its operations.
 *
 * This file checks what needs no database (names, id lists, a merge into itself), opens one write
 * transaction per naming operation and hands the work to the store (src/store/library/
 * people_store.c), which decides everything that needs a row and writes the change with its audit
 * entry. A failure rolls the transaction back, so a refused operation leaves no trace, and its
 * reason stays in the handle for fn_library_errmsg. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "facenames/error.h"
#include "facenames/people.h"
#include "store/library/library_store.h"
#include "store/library/people_store.h"
#include "store/store.h"
#include "util/libaddr.h"

struct fn_library {
    fn_store *s;
    fn_ps_ctx ctx; /* ctx.msg is the handle's last error */
    char actor[256];
    char dir[4096];
};

__attribute__((format(printf, 3, 4))) static int fail(fn_library *lib, int code, const char *fmt,
                                                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lib->ctx.msg, sizeof lib->ctx.msg, fmt, ap);
    va_end(ap);
    return code;
}

/* A call's start: the previous message goes (the header promises "" after a success). */
static void begin_call(fn_library *lib)
{
    lib->ctx.msg[0] = 0;
}

static int make_dirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) < 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0777) < 0 && errno != EEXIST) return -1;
    return 0;
}

int fn_library_open(const char *library_dir, const fn_config *cfg, fn_library **out)
{
    *out = NULL;
    fn_library *lib = calloc(1, sizeof *lib);
    if (!lib) return FN_ERR_NOMEM;
    *out = lib;
    snprintf(lib->actor, sizeof lib->actor, "user");
    lib->ctx.actor = lib->actor;
    if (!library_dir || !*library_dir) return fail(lib, FN_ERR_INVALID, "no library folder given");
    if (strlen(library_dir) > sizeof lib->dir - 32)
        return fail(lib, FN_ERR_INVALID, "the library folder's path is too long");
    snprintf(lib->dir, sizeof lib->dir, "%s", library_dir);
    fn_config defaults;
    if (!cfg) {
        fn_config_defaults(&defaults);
        cfg = &defaults;
    }
    char db[4200], err[1024] = "";
    fn_libaddr_db(library_dir, db, sizeof db);
    struct stat st;
    const int url = fn_libaddr_is_url(library_dir);
    if (!url && stat(library_dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return fail(lib, FN_ERR_NOT_FILE, "library %s is not a folder", library_dir);
    /* A database on a server is made and checked by the store when it connects. */
    int exists = url || stat(db, &st) == 0;
    /* A library this process cannot write is read as it is: the reading calls work and every
     * naming call says FN_ERR_READONLY. */
    int readonly = !url && exists && (access(library_dir, W_OK) != 0 || access(db, W_OK) != 0);
    if (!exists && make_dirs(library_dir) < 0)
        return fail(lib, errno == EACCES || errno == EROFS ? FN_ERR_READONLY : FN_ERR_IO,
                    "cannot create the library folder %s: %s", library_dir, strerror(errno));
    int rc = readonly
                 ? fn_store_open_readonly(db, cfg->db_busy_timeout_ms, &lib->s, err, sizeof err)
                 : fn_store_open(db, cfg->db_busy_timeout_ms, &lib->s, err, sizeof err);
    if (rc < 0) return fail(lib, rc, "%s", err);
    lib->ctx.s = lib->s;
    rc = readonly ? fn_library_check_version(lib->s) : fn_library_migrate(lib->s);
    if (rc < 0) {
        fail(lib, rc, "%s", fn_store_errmsg(lib->s));
        fn_store_close(lib->s);
        lib->s = lib->ctx.s = NULL;
        return rc;
    }
    return 0;
}

void fn_library_close(fn_library *lib)
{
    if (!lib) return;
    fn_store_close(lib->s);
    free(lib);
}

const char *fn_library_errmsg(const fn_library *lib)
{
    return lib ? lib->ctx.msg : "no library handle";
}

int fn_library_set_actor(fn_library *lib, const char *actor)
{
    begin_call(lib);
    if (!actor || !*actor) return fail(lib, FN_ERR_INVALID, "an actor cannot be empty");
    if (strlen(actor) >= sizeof lib->actor)
        return fail(lib, FN_ERR_INVALID, "an actor is at most %zu bytes", sizeof lib->actor - 1);
    snprintf(lib->actor, sizeof lib->actor, "%s", actor);
    return 0;
}

void fn_library_free(void *p)
{
    free(p);
}

const char *fn_face_state_name(fn_face_state s)
{
    static const char *const names[] = {"auto", "confirmed", "ignored"};
    return (unsigned)s < 3 ? names[s] : "unknown";
}

/* ---- Checks made before the database ----------------------------------------------------------
 */

/* Whether s[0..len) is valid UTF-8 without control characters. */
static int name_chars_ok(const unsigned char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        unsigned char b = s[i];
        if (b < 0x20 || b == 0x7f) return 0;
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t k = b >= 0xf0 && b < 0xf5 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 && b < 0xe0 ? 2 : 0;
        if (k == 0 || i + k > len) return 0;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xc0) != 0x80) return 0;
        i += k;
    }
    return 1;
}

/* Trims `name` into buf (FN_PERSON_NAME_MAX + 1 bytes) and checks it. */
static int check_name(fn_library *lib, const char *name, char *buf)
{
    if (!name) return fail(lib, FN_ERR_INVALID, "no name given");
    while (*name == ' ' || *name == '\t' || *name == '\n' || *name == '\r')
        name++;
    size_t len = strlen(name);
    while (len > 0 && (name[len - 1] == ' ' || name[len - 1] == '\t' || name[len - 1] == '\n' ||
                       name[len - 1] == '\r'))
        len--;
    if (len == 0) return fail(lib, FN_ERR_INVALID, "a person's name cannot be empty or blank");
    if (len > FN_PERSON_NAME_MAX)
        return fail(lib, FN_ERR_INVALID, "a person's name is at most %d bytes (this one has %zu)",
                    FN_PERSON_NAME_MAX, len);
    if (!name_chars_ok((const unsigned char *)name, len))
        return fail(lib, FN_ERR_INVALID,
                    "a person's name must be UTF-8 text without control characters");
    size_t digits = strspn(name, "0123456789");
    if (digits >= len)
        return fail(lib, FN_ERR_INVALID,
                    "a person's name cannot be only digits (it would read as an id)");
    memcpy(buf, name, len);
    buf[len] = 0;
    return 0;
}

static int check_faces(fn_library *lib, const int64_t *faces, size_t n)
{
    if (!faces || n == 0) return fail(lib, FN_ERR_INVALID, "no face given");
    for (size_t i = 0; i < n; i++)
        if (faces[i] <= 0)
            return fail(lib, FN_ERR_INVALID, "%lld is not a face id (ids are positive)",
                        (long long)faces[i]);
    return 0;
}

static int check_id(fn_library *lib, int64_t id, const char *what)
{
    if (id <= 0)
        return fail(lib, FN_ERR_INVALID, "%lld is not a %s id (ids are positive)", (long long)id,
                    what);
    return 0;
}

static int check_open(fn_library *lib)
{
    if (!lib->s) return fail(lib, FN_ERR_STATE, "the library did not open");
    return 0;
}

static int tx_begin(fn_library *lib, fn_store_tx **tx)
{
    int rc = check_open(lib);
    if (rc < 0) return rc;
    if (fn_store_readonly(lib->s))
        return fail(lib, FN_ERR_READONLY,
                    "library %s is read-only (its folder or library.db cannot be written): "
                    "naming changes it; reading still works",
                    lib->dir);
    rc = fn_store_begin(lib->s, tx);
    if (rc < 0) return fail(lib, rc, "%s", fn_store_errmsg(lib->s));
    return 0;
}

static int tx_end(fn_library *lib, fn_store_tx *tx, int rc)
{
    if (rc < 0) {
        fn_store_rollback(tx);
        if (!lib->ctx.msg[0]) fail(lib, rc, "%s", fn_strerror(rc));
        return rc;
    }
    rc = fn_store_commit(tx);
    if (rc < 0) return fail(lib, rc, "%s", fn_store_errmsg(lib->s));
    return 0;
}

static void zero(int64_t *p)
{
    if (p) *p = 0;
}

/* ---- Reading ----------------------------------------------------------------------------------
 */

int fn_people_list(fn_library *lib, fn_person **out, size_t *n)
{
    begin_call(lib);
    *out = NULL;
    *n = 0;
    int rc = check_open(lib);
    return rc < 0 ? rc : fn_ps_people_list(&lib->ctx, out, n);
}

void fn_persons_free(fn_person *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++)
        free(p[i].name);
    free(p);
}

int fn_people_find(fn_library *lib, const char *which, fn_person *out)
{
    begin_call(lib);
    memset(out, 0, sizeof *out);
    int rc = check_open(lib);
    if (rc < 0) return rc;
    if (!which || !*which) return fail(lib, FN_ERR_INVALID, "no person given");
    char *end = NULL;
    errno = 0;
    long long id = strtoll(which, &end, 10);
    if (*which >= '0' && *which <= '9' && end && *end == 0 && errno == 0) {
        if (id <= 0) return fail(lib, FN_ERR_NOT_FOUND, "no person %lld in the library", id);
        return fn_ps_person_by_id(&lib->ctx, id, 0, out);
    }
    char name[FN_PERSON_NAME_MAX + 1];
    /* a name that could never be stored is simply not found */
    if (check_name(lib, which, name) < 0)
        return fail(lib, FN_ERR_NOT_FOUND, "no person named \"%s\" in the library", which);
    return fn_ps_person_by_name(&lib->ctx, name, out);
}

int fn_clusters_list(fn_library *lib, size_t limit, fn_cluster **out, size_t *n)
{
    begin_call(lib);
    *out = NULL;
    *n = 0;
    int rc = check_open(lib);
    return rc < 0 ? rc : fn_ps_clusters_list(&lib->ctx, limit, out, n);
}

int fn_faces_query(fn_library *lib, const fn_face_query *q, fn_library_face **out, size_t *n)
{
    begin_call(lib);
    *out = NULL;
    *n = 0;
    int rc = check_open(lib);
    return rc < 0 ? rc : fn_ps_faces_query(&lib->ctx, q, out, n);
}

int fn_face_thumbnail(fn_library *lib, int64_t face_id, uint8_t **jpeg, size_t *len)
{
    begin_call(lib);
    *jpeg = NULL;
    *len = 0;
    int rc = check_open(lib);
    if (rc < 0) return rc;
    rc = fn_library_face_thumbnail(lib->s, face_id, jpeg, len);
    if (rc == FN_ERR_NOT_FOUND)
        return fail(lib, rc, "face %lld does not exist or has no thumbnail", (long long)face_id);
    if (rc < 0) return fail(lib, rc, "%s", fn_store_errmsg(lib->s));
    return 0;
}

int fn_photo_path(fn_library *lib, int64_t photo_id, char **path)
{
    begin_call(lib);
    *path = NULL;
    int rc = check_open(lib);
    return rc < 0 ? rc : fn_ps_photo_path(&lib->ctx, photo_id, path);
}

typedef struct photo_list {
    fn_photo_entry *v;
    size_t n, cap;
} photo_list;

static int photo_cb(const fn_photo_row *row, void *arg)
{
    photo_list *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        fn_photo_entry *v = realloc(l->v, cap * sizeof *v);
        if (!v) return FN_ERR_NOMEM;
        l->v = v;
        l->cap = cap;
    }
    char *path = strdup(row->path);
    if (!path) return FN_ERR_NOMEM;
    l->v[l->n++] = (fn_photo_entry){.id = row->id,
                                    .path = path,
                                    .width = row->width,
                                    .height = row->height,
                                    .taken_at = row->taken_at,
                                    .faces = row->n_faces,
                                    .status = (int)row->status};
    return 0;
}

int fn_photos_list(fn_library *lib, const char *under, size_t limit, size_t offset,
                   fn_photo_entry **out, size_t *n)
{
    begin_call(lib);
    *out = NULL;
    *n = 0;
    int rc = check_open(lib);
    if (rc < 0) return rc;
    fn_photo_filter f = {.status = -1, .path_prefix = under, .limit = limit, .offset = offset};
    photo_list l = {0};
    rc = fn_library_photos_each(lib->s, &f, photo_cb, &l);
    if (rc < 0) {
        fn_photos_free(l.v, l.n);
        return fail(lib, rc, "listing the photos: %s",
                    rc == FN_ERR_NOMEM ? "out of memory" : fn_store_errmsg(lib->s));
    }
    *out = l.v;
    *n = l.n;
    return 0;
}

void fn_photos_free(fn_photo_entry *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++)
        free(p[i].path);
    free(p);
}

int fn_suggestions_list(fn_library *lib, int64_t person_id, size_t limit, fn_suggestion **out,
                        size_t *n)
{
    begin_call(lib);
    *out = NULL;
    *n = 0;
    int rc = check_open(lib);
    return rc < 0 ? rc : fn_ps_suggestions_list(&lib->ctx, person_id, limit, out, n);
}

int fn_audit_list(fn_library *lib, int64_t since_id, size_t limit, fn_audit_entry **out, size_t *n)
{
    begin_call(lib);
    *out = NULL;
    *n = 0;
    int rc = check_open(lib);
    return rc < 0 ? rc : fn_ps_audit_list(&lib->ctx, since_id, limit, out, n);
}

void fn_audit_free(fn_audit_entry *a, size_t n)
{
    for (size_t i = 0; a && i < n; i++) {
        free(a[i].actor);
        free(a[i].action);
        free(a[i].detail);
    }
    free(a);
}

/* ---- Naming -----------------------------------------------------------------------------------
 */

int fn_people_name_cluster(fn_library *lib, int64_t cluster_id, const char *name,
                           int64_t *person_id, int64_t *audit_id)
{
    begin_call(lib);
    zero(person_id);
    zero(audit_id);
    char nm[FN_PERSON_NAME_MAX + 1];
    fn_store_tx *tx;
    int rc = check_id(lib, cluster_id, "cluster");
    if (rc == 0) rc = check_name(lib, name, nm);
    if (rc == 0) rc = tx_begin(lib, &tx);
    if (rc < 0) return rc;
    return tx_end(lib, tx, fn_ps_name_cluster(&lib->ctx, cluster_id, nm, person_id, audit_id));
}

int fn_people_create(fn_library *lib, const char *name, int64_t *person_id, int64_t *audit_id)
{
    begin_call(lib);
    zero(person_id);
    zero(audit_id);
    char nm[FN_PERSON_NAME_MAX + 1];
    fn_store_tx *tx;
    int rc = check_name(lib, name, nm);
    if (rc == 0) rc = tx_begin(lib, &tx);
    if (rc < 0) return rc;
    return tx_end(lib, tx, fn_ps_create(&lib->ctx, nm, person_id, audit_id));
}

int fn_faces_assign(fn_library *lib, const int64_t *face_ids, size_t n, int64_t person_id,
                    int64_t *audit_id)
{
    begin_call(lib);
    zero(audit_id);
    fn_store_tx *tx;
    int rc = check_faces(lib, face_ids, n);
    if (rc == 0) rc = check_id(lib, person_id, "person");
    if (rc == 0) rc = tx_begin(lib, &tx);
    if (rc < 0) return rc;
    return tx_end(lib, tx, fn_ps_assign(&lib->ctx, face_ids, n, person_id, NULL, NULL, audit_id));
}

int fn_faces_assign_named(fn_library *lib, const int64_t *face_ids, size_t n, const char *name,
                          int64_t *person_id, int64_t *audit_id)
{
    begin_call(lib);
    zero(person_id);
    zero(audit_id);
    char nm[FN_PERSON_NAME_MAX + 1];
    fn_store_tx *tx;
    int rc = check_faces(lib, face_ids, n);
    if (rc == 0) rc = check_name(lib, name, nm);
    if (rc == 0) rc = tx_begin(lib, &tx);
    if (rc < 0) return rc;
    return tx_end(lib, tx, fn_ps_assign(&lib->ctx, face_ids, n, 0, nm, person_id, audit_id));
}

int fn_faces_unassign(fn_library *lib, const int64_t *face_ids, size_t n, int64_t *audit_id)
{
    begin_call(lib);
    zero(audit_id);
    fn_store_tx *tx;
    int rc = check_faces(lib, face_ids, n);
    if (rc == 0) rc = tx_begin(lib, &tx);
    if (rc < 0) return rc;
    return tx_end(lib, tx, fn_ps_unassign(&lib->ctx, face_ids, n, audit_id));
}

int fn_faces_ignore(fn_library *lib, const int64_t *face_ids, size_t n, int64_t *audit_id)
{
    begin_call(lib);
    zero(audit_id);
    fn_store_tx *tx;
    int rc = check_faces(lib, face_ids, n);
    if (rc == 0) rc = tx_begin(lib, &tx);
    if (rc < 0) return rc;
    return tx_end(lib, tx, fn_ps_ignore(&lib->ctx, face_ids, n, audit_id));
}

int fn_people_rename(fn_library *lib, int64_t person_id, const char *name, int64_t *audit_id)
{
    begin_call(lib);
    zero(audit_id);
    char nm[FN_PERSON_NAME_MAX + 1];
    fn_store_tx *tx;
    int rc = check_id(lib, person_id, "person");
    if (rc == 0) rc = check_name(lib, name, nm);
    if (rc == 0) rc = tx_begin(lib, &tx);
    if (rc < 0) return rc;
    return tx_end(lib, tx, fn_ps_rename(&lib->ctx, person_id, nm, audit_id));
}

int fn_people_merge(fn_library *lib, int64_t from, int64_t into, int64_t *audit_id)
{
    begin_call(lib);
    zero(audit_id);
    fn_store_tx *tx;
    int rc = check_id(lib, from, "person");
    if (rc == 0) rc = check_id(lib, into, "person");
    if (rc == 0 && from == into)
        rc = fail(lib, FN_ERR_INVALID, "cannot merge person %lld into itself", (long long)from);
    if (rc == 0) rc = tx_begin(lib, &tx);
    if (rc < 0) return rc;
    return tx_end(lib, tx, fn_ps_merge(&lib->ctx, from, into, audit_id));
}

int fn_people_split(fn_library *lib, int64_t person_id, const int64_t *face_ids, size_t n,
                    const char *new_name, int64_t *new_person, int64_t *audit_id)
{
    begin_call(lib);
    zero(new_person);
    zero(audit_id);
    char nm[FN_PERSON_NAME_MAX + 1];
    fn_store_tx *tx;
    int rc = check_id(lib, person_id, "person");
    if (rc == 0) rc = check_faces(lib, face_ids, n);
    if (rc == 0) rc = check_name(lib, new_name, nm);
    if (rc == 0) rc = tx_begin(lib, &tx);
    if (rc < 0) return rc;
    return tx_end(lib, tx,
                  fn_ps_split(&lib->ctx, person_id, face_ids, n, nm, new_person, audit_id));
}

int fn_people_delete(fn_library *lib, int64_t person_id, int64_t *audit_id)
{
    begin_call(lib);
    zero(audit_id);
    fn_store_tx *tx;
    int rc = check_id(lib, person_id, "person");
    if (rc == 0) rc = tx_begin(lib, &tx);
    if (rc < 0) return rc;
    return tx_end(lib, tx, fn_ps_delete(&lib->ctx, person_id, audit_id));
}

int fn_suggestions_accept(fn_library *lib, const int64_t *face_ids, size_t n, int64_t *audit_id)
{
    begin_call(lib);
    zero(audit_id);
    fn_store_tx *tx;
    int rc = check_faces(lib, face_ids, n);
    if (rc == 0) rc = tx_begin(lib, &tx);
    if (rc < 0) return rc;
    return tx_end(lib, tx, fn_ps_accept(&lib->ctx, face_ids, n, audit_id));
}

int fn_suggestions_reject(fn_library *lib, const int64_t *face_ids, size_t n, int64_t *audit_id)
{
    begin_call(lib);
    zero(audit_id);
    fn_store_tx *tx;
    int rc = check_faces(lib, face_ids, n);
    if (rc == 0) rc = tx_begin(lib, &tx);
    if (rc < 0) return rc;
    return tx_end(lib, tx, fn_ps_reject(&lib->ctx, face_ids, n, audit_id));
}

int fn_people_undo(fn_library *lib, int64_t audit_id, int64_t *undo_id)
{
    begin_call(lib);
    zero(undo_id);
    fn_store_tx *tx;
    int rc = audit_id < 0
                 ? fail(lib, FN_ERR_INVALID, "%lld is not an audit entry id", (long long)audit_id)
                 : 0;
    if (rc == 0) rc = tx_begin(lib, &tx);
    if (rc < 0) return rc;
    return tx_end(lib, tx, fn_ps_undo(&lib->ctx, audit_id, undo_id));
}
