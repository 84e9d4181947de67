/* people_store.h: the SQL of naming (internal): the reads behind include/facenames/people.h and
 * every naming operation with its audit entry, run inside the caller's write transaction.
 *
 * src/people owns the handle, checks what it can without the database (names, counts, ids) and
 * opens the transaction; what needs the database (does the face exist, is the person deleted,
 * which later entry stands in the way of an undo) is decided here, in the same transaction as the
 * change, so a check and the write it guards cannot be separated by another process's write.
 *
 * Every function fills ctx->msg with a sentence naming what was at fault when it fails (the
 * caller then rolls back, so a failed operation changes nothing), and returns an fn_err code.
 *
 * An audit entry's detail is a JSON object: "summary" (one sentence a UI can show), the ids and
 * names it concerns, and "effects", what undo needs beyond the per-face rows of audit_faces:
 * persons created and deleted, a rename, a cluster's person, the cannot-links it added. Undo
 * replays audit_faces backwards and inverts "effects" (an undo of an undo re-applies them).
 *
 * Threading: as fn_store (one connection, one thread at a time). */
#ifndef FN_STORE_LIBRARY_PEOPLE_STORE_H
#define FN_STORE_LIBRARY_PEOPLE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "facenames/people.h"
#include "store/store.h"

typedef struct fn_ps_ctx {
    fn_store *s;
    const char *actor; /* who the audit entries name */
    char msg[1024];    /* why the last call failed */
} fn_ps_ctx;

/* ---- Reading (no transaction needed) ----------------------------------------------------------
 */
int fn_ps_people_list(fn_ps_ctx *c, fn_person **out, size_t *n);
/* A person by id (include_deleted: also a deleted one) or by name (exact, then ASCII
 * case-insensitive; FN_ERR_INVALID when that matches several). out->name is malloc'd. */
int fn_ps_person_by_id(fn_ps_ctx *c, int64_t id, int include_deleted, fn_person *out);
int fn_ps_person_by_name(fn_ps_ctx *c, const char *name, fn_person *out);
int fn_ps_clusters_list(fn_ps_ctx *c, size_t limit, fn_cluster **out, size_t *n);
int fn_ps_faces_query(fn_ps_ctx *c, const fn_face_query *q, fn_library_face **out, size_t *n);
int fn_ps_photo_path(fn_ps_ctx *c, int64_t photo_id, char **path);
int fn_ps_suggestions_list(fn_ps_ctx *c, int64_t person_id, size_t limit, fn_suggestion **out,
                           size_t *n);
int fn_ps_audit_list(fn_ps_ctx *c, int64_t since_id, size_t limit, fn_audit_entry **out, size_t *n);

/* ---- Naming (inside an open write transaction on c->s) ----------------------------------------
 * Names arrive checked (trimmed, non-empty, short enough); ids > 0; n > 0. */
int fn_ps_create(fn_ps_ctx *c, const char *name, int64_t *person_id, int64_t *audit_id);
int fn_ps_name_cluster(fn_ps_ctx *c, int64_t cluster_id, const char *name, int64_t *person_id,
                       int64_t *audit_id);
/* To person_id, or with `name` set to the person of that name, created when there is none. */
int fn_ps_assign(fn_ps_ctx *c, const int64_t *faces, size_t n, int64_t person_id, const char *name,
                 int64_t *person_out, int64_t *audit_id);
int fn_ps_unassign(fn_ps_ctx *c, const int64_t *faces, size_t n, int64_t *audit_id);
int fn_ps_ignore(fn_ps_ctx *c, const int64_t *faces, size_t n, int64_t *audit_id);
int fn_ps_rename(fn_ps_ctx *c, int64_t person_id, const char *name, int64_t *audit_id);
int fn_ps_merge(fn_ps_ctx *c, int64_t from, int64_t into, int64_t *audit_id);
int fn_ps_split(fn_ps_ctx *c, int64_t person_id, const int64_t *faces, size_t n,
                const char *new_name, int64_t *new_person, int64_t *audit_id);
int fn_ps_delete(fn_ps_ctx *c, int64_t person_id, int64_t *audit_id);
int fn_ps_accept(fn_ps_ctx *c, const int64_t *faces, size_t n, int64_t *audit_id);
int fn_ps_reject(fn_ps_ctx *c, const int64_t *faces, size_t n, int64_t *audit_id);
int fn_ps_undo(fn_ps_ctx *c, int64_t audit_id, int64_t *undo_id);

#endif
