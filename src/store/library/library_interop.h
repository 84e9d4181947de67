/* library_interop.h: the rows the repair, export and import jobs read and write (internal; the SQL
 * stays in src/store). Photos with their faces, the faces' people and decisions, relinking and
 * pruning photos, recomputed face vectors, and the database checks with their fixes.
 *
 * What must stay true:
 * - A face whose state is confirmed or ignored, or whose origin is user, keeps its person, state
 *   and box: nothing here changes them except an import's explicit decisions (which refuse to
 *   overwrite a different decision: the caller reports a conflict).
 * - Writes happen in the job's batch transaction (fn_store_tx).
 *
 * Threading: like fn_store, one connection per thread. */
#ifndef FN_STORE_LIBRARY_INTEROP_H
#define FN_STORE_LIBRARY_INTEROP_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

typedef struct fn_xp_face {
    int64_t id;
    float x, y, width, height, score;
    int origin_user;
    int state;         /* 0 auto, 1 confirmed, 2 ignored (fn_face_state) */
    int64_t person_id; /* 0: none */
    char *person;      /* the person's name, NULL when none; owned */
    char *rejected;    /* JSON array of the names of persons rejected for it, NULL when none */
    int64_t cluster_id;
    int has_landmarks, has_descriptor, has_thumbnail;
    float landmarks[68][2];
    float descriptor[128];
} fn_xp_face;

typedef struct fn_xp_photo {
    int64_t id;
    char *path; /* owned */
    int64_t size, mtime_ns;
    uint64_t hash;
    int width, height;
    int64_t taken_at; /* -1 when absent */
    char format[16];
    char status[16];
    int64_t missing_at; /* 0 when present */
    char models[17];    /* "" when unknown */
    int incomplete;     /* auto faces lacking landmarks, descriptor or thumbnail */
    fn_xp_face *faces;  /* owned; filled when asked */
    size_t n_faces;
} fn_xp_photo;

void fn_xp_photo_clear(fn_xp_photo *p);
const char *fn_xp_state_name(int state); /* "auto", "confirmed", "ignored" */
int fn_xp_state_parse(const char *s);    /* 0..2, or -1 */

/* ---- Reading (the job's read connection) ------------------------------------------------------
 */

typedef struct fn_xp_reader fn_xp_reader;
int fn_xp_reader_new(fn_store *s, fn_xp_reader **out);
void fn_xp_reader_free(fn_xp_reader *r); /* releases a held read transaction */
/* Holds (on != 0) or releases one read transaction across many lookups (as
 * fn_library_reader_hold: a lookup outside one opens and closes its own, which costs lock system
 * calls each). Release it before the batch commits, so the WAL can be checkpointed and the next
 * lookups see the commit. Idempotent. */
int fn_xp_reader_hold(fn_xp_reader *r, int on);

enum { FN_XP_FACES = 1, FN_XP_VECTORS = 2, FN_XP_NAMED_ONLY = 4 };
/* The photo with the smallest id > after (with its faces per `what`: FN_XP_FACES, plus landmarks
 * and descriptors with FN_XP_VECTORS; FN_XP_NAMED_ONLY keeps only faces with a person). 0 and
 * *out (caller clears), FN_ERR_NOT_FOUND after the last, or an error. */
int fn_xp_photo_after(fn_xp_reader *r, int64_t after, unsigned what, fn_xp_photo *out);
/* Photos (all, or only those under `prefix`/ when not NULL). */
int64_t fn_xp_count_photos(fn_store *s, const char *prefix);
/* The persons (not deleted) as a JSON array of {"name", "faces"}, ordered by name (malloc'ed;
 * NULL on error). */
char *fn_xp_persons_json(fn_store *s);
/* Another photo row (not `not_id`, not marked missing) with this size and content hash: its id and
 * path (caller frees), or FN_ERR_NOT_FOUND. `skip` is called to drop candidates (a file that is
 * gone too); NULL keeps all. */
int fn_xp_photo_same_content(fn_xp_reader *r, int64_t size, uint64_t hash, int64_t not_id,
                             int (*keep)(const char *path, void *arg), void *arg, int64_t *id,
                             char **path);
/* Whether a photo is stored under exactly this path. */
int fn_xp_path_known(fn_xp_reader *r, const char *path);
/* The distinct paths every ingest job of this library was given (its roots), ordered; the
 * caller frees each and the array. */
int fn_xp_ingest_paths(fn_store *s, char ***out, size_t *n);

/* The database checks (read only): problems found. */
typedef struct fn_xp_health {
    int64_t integrity;        /* rows of PRAGMA integrity_check other than "ok" */
    int64_t foreign_keys;     /* rows of PRAGMA foreign_key_check */
    int64_t orphan_clusters;  /* clusters no face is in */
    int64_t faceless_persons; /* persons (not deleted) with no face and no pending suggestion */
} fn_xp_health;
int fn_xp_check(fn_store *s, fn_xp_health *h);

/* ---- Writing (inside the batch transaction) ---------------------------------------------------
 */

/* Repair. */
int fn_xp_relink(fn_store_tx *tx, int64_t id, const char *path, int64_t mtime_ns);
int fn_xp_set_missing(fn_store_tx *tx, int64_t id, int64_t at_ms); /* at 0: present again */
int fn_xp_delete_photo(fn_store_tx *tx, int64_t id);
/* Moves photo `from`'s people onto photo `to` (the same content, ingested again under another
 * path): each of from's faces that has a person, a decision or rejections gives them to the auto
 * undecided face of `to` it overlaps most (IoU >= 0.5); user-drawn faces move over; then `from`
 * is deleted. *moved gets the faces whose people moved. */
int fn_xp_merge_photo(fn_store_tx *tx, int64_t from, int64_t to, int64_t *moved);
/* Recomputed vectors of one face (box, person and state untouched) and the photo's checksum. */
int fn_xp_face_vectors(fn_store_tx *tx, int64_t face_id, const float (*landmarks)[2],
                       const float *descriptor, const uint8_t *thumb, size_t thumb_len);
int fn_xp_set_models(fn_store_tx *tx, int64_t photo_id, const char *models);
/* The fixes for what fn_xp_check finds (foreign keys, orphans); *fixed per kind. */
int fn_xp_fix(fn_store_tx *tx, fn_xp_health *fixed);

/* Import. */
/* The person named exactly `name` (not deleted), created when there is none (create != 0): 0 and
 * *id, FN_ERR_NOT_FOUND (create == 0). */
int fn_xp_person(fn_store_tx *tx, const char *name, int create, int64_t *id);
/* Reads one photo (by id) with its faces inside the transaction. */
int fn_xp_photo_tx(fn_store_tx *tx, int64_t id, fn_xp_photo *out);
/* The photo row with this size and hash, or under this path: its id, or FN_ERR_NOT_FOUND. */
int fn_xp_find_photo(fn_store_tx *tx, int64_t size, uint64_t hash, const char *path, int64_t *id);
/* A new photo row (from an export; status as given) and its id. */
int fn_xp_insert_photo(fn_store_tx *tx, const fn_xp_photo *p, int64_t job_id, int64_t *id);
/* A new face on photo_id with its person, state, origin and (optional) vectors. */
int fn_xp_insert_face(fn_store_tx *tx, int64_t photo_id, const fn_xp_face *f, int64_t *id);
/* Sets a face's person and state. */
int fn_xp_face_decide(fn_store_tx *tx, int64_t face_id, int64_t person_id, int state);
int fn_xp_cannot_link(fn_store_tx *tx, int64_t face_id, int64_t person_id);
/* An audit entry (actor, action, detail JSON or NULL, job) and its id; then one row per face. */
int fn_xp_audit(fn_store_tx *tx, const char *actor, const char *action, const char *detail,
                int64_t job_id, int64_t *audit_id);
int fn_xp_audit_face(fn_store_tx *tx, int64_t audit_id, int64_t face_id, int64_t person_before,
                     int64_t person_after, int state_before, int state_after,
                     int64_t cluster_before, int64_t cluster_after);

#endif
