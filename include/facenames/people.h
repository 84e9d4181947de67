/* facenames: people — naming the faces a library holds (the service layer's user actions).
 *
 * A face belongs to at most one person. Its state says who decided that:
 * - FN_FACE_AUTO: nobody yet; a job (clustering) may put it in a cluster or join it to a person.
 * - FN_FACE_CONFIRMED: a person assigned, moved or accepted it; no job ever changes it.
 * - FN_FACE_IGNORED: not a face, or a stranger; no job looks at it again.
 *
 * Every operation below that changes something is one transaction with one audit entry that
 * records, per face, the person, state and cluster before and after, so fn_people_undo can put
 * any of them back (unmerge, undelete and unsplit included). An operation that fails changes
 * nothing and says why in fn_library_errmsg. Ids are the library's row ids (int64, > 0).
 *
 * Threading: an fn_library is one connection; use it from one thread at a time (open one per
 * thread that needs one). Writes wait up to db.busy_timeout_ms for the database lock, so call
 * them off a UI thread. */
#ifndef FACENAMES_PEOPLE_H
#define FACENAMES_PEOPLE_H

#include <stddef.h>
#include <stdint.h>

#include "facenames/config.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API; the rest is hidden */

/* The longest name a person can have, in bytes of UTF-8 (after leading and trailing blanks are
 * trimmed). */
#define FN_PERSON_NAME_MAX 200

/* ---- The library handle -------------------------------------------------------------------- */

typedef struct fn_library fn_library;

/* Opens <library_dir>/library.db for reading and naming (creating or migrating it like the
 * engine does). cfg may be NULL (defaults). Returns 0 and *out, or an error code; on error *out
 * is still set when it could be allocated, so fn_library_errmsg(*out) says why: close it after.
 * The caller owns *out. */
int fn_library_open(const char *library_dir, const fn_config *cfg, fn_library **out);
/* Closes the handle; NULL is a no-op. */
void fn_library_close(fn_library *lib);
/* The message of the last failed call on `lib` (names the face, person or audit entry at fault
 * and what to do); "" when none. Lives until the next call on `lib`. */
const char *fn_library_errmsg(const fn_library *lib);
/* Who the audit entries of this handle's actions name: "user" by default (the CLI passes
 * "cli:<login>", the app "app:<login>"). Copied. Returns 0 or FN_ERR_INVALID (empty). */
int fn_library_set_actor(fn_library *lib, const char *actor);
/* Frees what a function of this header returned through a `char **` or `uint8_t **`. */
void fn_library_free(void *p);

/* ---- Reading --------------------------------------------------------------------------------- */

typedef enum fn_face_state {
    FN_FACE_AUTO = 0,
    FN_FACE_CONFIRMED = 1,
    FN_FACE_IGNORED = 2,
} fn_face_state;

/* "auto", "confirmed", "ignored". */
const char *fn_face_state_name(fn_face_state s);

typedef struct fn_person {
    int64_t id;
    char *name;         /* owned by the list */
    int64_t faces;      /* faces assigned (auto and confirmed) */
    int64_t confirmed;  /* of which confirmed */
    int64_t cover_face; /* a confirmed face to show for the person, 0 when none */
    int64_t created_at; /* epoch ms */
} fn_person;

/* The (not deleted) persons, most faces first. *out (n elements) is freed with fn_persons_free.
 */
int fn_people_list(fn_library *lib, fn_person **out, size_t *n);
void fn_persons_free(fn_person *p, size_t n);
/* One person by id, or by name when `which` is not a number (exact, then case-insensitive).
 * FN_ERR_NOT_FOUND when there is none; FN_ERR_INVALID when a name is ambiguous. The caller
 * frees out->name with fn_library_free. */
int fn_people_find(fn_library *lib, const char *which, fn_person *out);

typedef struct fn_cluster {
    int64_t id;
    int64_t faces;      /* faces currently in the cluster with no person */
    int64_t cover_face; /* the face nearest its centre */
    int64_t person_id;  /* the person it was named as, 0 when none */
} fn_cluster;

/* Clusters that still hold faces without a person, biggest first; limit 0 = all. Freed with
 * fn_library_free(*out). */
int fn_clusters_list(fn_library *lib, size_t limit, fn_cluster **out, size_t *n);

typedef struct fn_library_face {
    int64_t id;
    int64_t photo_id;
    float x, y, width, height; /* box in the oriented photo's pixels */
    float score;               /* detection score */
    int64_t person_id;         /* 0 when none */
    int64_t cluster_id;        /* 0 when none */
    fn_face_state state;
    int user_drawn; /* 1 when a person drew the box (origin user) */
    /* the pending suggestion, suggestion_person 0 when none */
    int64_t suggestion_person;
    float suggestion_confidence;
} fn_library_face;

typedef struct fn_face_query {
    int64_t person_id;    /* 0: any; -1: faces without a person */
    int64_t cluster_id;   /* 0: any; -1: faces without a cluster */
    int64_t photo_id;     /* 0: any */
    int state;            /* fn_face_state, or -1 for any */
    size_t limit, offset; /* limit 0: all */
} fn_face_query;

/* The faces matching `q` (NULL: all) ordered by id. Freed with fn_library_free(*out). */
int fn_faces_query(fn_library *lib, const fn_face_query *q, fn_library_face **out, size_t *n);
/* One face's JPEG thumbnail (*jpeg freed with fn_library_free). FN_ERR_NOT_FOUND when the face
 * does not exist or has no thumbnail. */
int fn_face_thumbnail(fn_library *lib, int64_t face_id, uint8_t **jpeg, size_t *len);
typedef struct fn_photo_entry {
    int64_t id;
    char *path;        /* bytes, as stored; owned by the list */
    int width, height; /* oriented pixels, 0 when unknown */
    int64_t taken_at;  /* EXIF capture time, epoch seconds, -1 when absent */
    int faces;         /* faces stored for the photo */
    int status;        /* 0 processed with faces, 1 no face found, 2 the last attempt failed */
} fn_photo_entry;

/* The library's photos ordered by path, `limit` (0: all) from `offset`, only those under the
 * directory `under` when it is not NULL. *out (n elements) is freed with fn_photos_free. */
int fn_photos_list(fn_library *lib, const char *under, size_t limit, size_t offset,
                   fn_photo_entry **out, size_t *n);
void fn_photos_free(fn_photo_entry *p, size_t n);
/* One photo's path (bytes, as stored; freed with fn_library_free). */
int fn_photo_path(fn_library *lib, int64_t photo_id, char **path);

/* ---- Naming (each one transaction + one audit entry; *audit_id may be NULL) ------------------ */

/* Names cluster `cluster_id`: creates a person called `name` (or uses the existing person of
 * that name) and confirms every face of the cluster that has no person as that person's. */
int fn_people_name_cluster(fn_library *lib, int64_t cluster_id, const char *name,
                           int64_t *person_id, int64_t *audit_id);
/* Creates a person (FN_ERR_EXISTS when a person of that name exists). */
int fn_people_create(fn_library *lib, const char *name, int64_t *person_id, int64_t *audit_id);
/* Confirms faces as person_id's (from no person or another person: a move). An ignored face is
 * refused (FN_ERR_INVALID, naming it) unless it is first unignored with fn_faces_unassign. */
int fn_faces_assign(fn_library *lib, const int64_t *face_ids, size_t n, int64_t person_id,
                    int64_t *audit_id);
/* Confirms faces as the person called `name` (found as fn_people_find finds a name), creating
 * that person when there is none: one audit entry, so one undo takes back both. *person_id (may
 * be NULL) gets the person. */
int fn_faces_assign_named(fn_library *lib, const int64_t *face_ids, size_t n, const char *name,
                          int64_t *person_id, int64_t *audit_id);
/* Takes faces off their person (state back to auto, no cluster) and un-ignores ignored ones. */
int fn_faces_unassign(fn_library *lib, const int64_t *face_ids, size_t n, int64_t *audit_id);
/* Marks faces ignored (and takes them off their person and cluster). */
int fn_faces_ignore(fn_library *lib, const int64_t *face_ids, size_t n, int64_t *audit_id);
/* Renames a person (FN_ERR_EXISTS when another person has the name). */
int fn_people_rename(fn_library *lib, int64_t person_id, const char *name, int64_t *audit_id);
/* Moves every face of `from` to `into` (states kept) and deletes `from`; its cannot-links carry
 * over. Merging a person into itself is FN_ERR_INVALID. */
int fn_people_merge(fn_library *lib, int64_t from, int64_t into, int64_t *audit_id);
/* Moves faces of `person_id` to a new person called `new_name` (confirmed). */
int fn_people_split(fn_library *lib, int64_t person_id, const int64_t *face_ids, size_t n,
                    const char *new_name, int64_t *new_person, int64_t *audit_id);
/* Deletes a person: its faces go back to auto with no person (an undo brings them back). */
int fn_people_delete(fn_library *lib, int64_t person_id, int64_t *audit_id);

/* ---- Suggestions (written by the predict job) ------------------------------------------------ */

typedef struct fn_suggestion {
    int64_t face_id;
    int64_t person_id;
    float confidence; /* [0, 1] */
    float distance;   /* to the nearest confirmed face of the person */
    float margin;     /* distance to the runner-up person minus distance */
    int64_t support_face;
} fn_suggestion;

/* Pending suggestions (person_id 0: all), most confident first. Freed with fn_library_free. */
int fn_suggestions_list(fn_library *lib, int64_t person_id, size_t limit, fn_suggestion **out,
                        size_t *n);
/* Accepting confirms each face as its suggested person; rejecting records a cannot-link between
 * the face and the suggested person (no job suggests or joins that pair again) and drops it. */
int fn_suggestions_accept(fn_library *lib, const int64_t *face_ids, size_t n, int64_t *audit_id);
int fn_suggestions_reject(fn_library *lib, const int64_t *face_ids, size_t n, int64_t *audit_id);

/* ---- Audit and undo ----------------------------------------------------------------------------
 */

typedef struct fn_audit_entry {
    int64_t id;
    int64_t at;        /* epoch ms */
    char *actor;       /* owned by the list */
    char *action;      /* "person.name_cluster", "face.assign", "person.merge", "undo" ... */
    char *detail;      /* JSON: what changed, in words a UI can show */
    int64_t faces;     /* faces the entry changed */
    int64_t job_id;    /* the job that surfaced it, 0 for a person's own action */
    int64_t undone_by; /* the undo entry that reverted it, 0 when in force */
    int64_t undoes;    /* for an undo entry: the entry it reverted */
} fn_audit_entry;

/* Audit entries with id > since_id, newest first, at most `limit` (0: all). */
int fn_audit_list(fn_library *lib, int64_t since_id, size_t limit, fn_audit_entry **out, size_t *n);
void fn_audit_free(fn_audit_entry *a, size_t n);
/* Reverts audit entry `audit_id` (0: the newest entry not yet undone that is not itself an undo)
 * and records the undo as a new entry (*undo_id); undoing an undo entry redoes what it undid.
 * Refused with FN_ERR_CONFLICT, naming the face and the entry, when a later entry still in force
 * changed one of its faces (undo that one first), when a face would go back to a person deleted
 * since, or when a person it would take away or bring back is in the way (faces given to it since,
 * its name taken); FN_ERR_STATE when the entry was undone already; FN_ERR_NOT_FOUND when there is
 * no such entry (or nothing to undo). See docs/people.md. */
int fn_people_undo(fn_library *lib, int64_t audit_id, int64_t *undo_id);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
