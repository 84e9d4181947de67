/* library_store.h: the library part of the schema (photos, faces, persons, clusters, audit_log) and
 * the rows the tasks and the CLI read and write (internal; SQL stays in src/store).
 *
 * What must stay true:
 * - A photo is keyed by its absolute, normalised path (realpath), so a library opened from another
 *   working directory still finds its photos. Callers pass such paths; these functions do not
 *   resolve them (they may be called for files that no longer exist). The same bytes at the same
 *   relative path under another root are the same photo: that path is a row of photo_copies
 *   pointing at it, not a photo of its own (design decision 34).
 * - Replacing a photo's faces replaces only the faces the pipeline found (origin 'auto'); faces a
 *   user drew (origin 'user') are kept. It keeps what people decided (docs/people.md,
 *   "Re-ingest"): a new detection overlapping an old face (IoU >= 0.5, best first, one to one)
 *   renews that face's row (id, person, state, cluster kept; box, score and vectors replaced); an
 *   unmatched old face is deleted only when undecided (state 'auto', no person), else kept.
 * - Writes happen inside an fn_store_tx (the job engine's batch transaction), so a batch's photos,
 *   its faces, the checkpoint and the progress commit together or not at all.
 *
 * Threading: like fn_store, one connection per thread. fn_library_reader caches prepared
 * statements for the hot lookups (a rerun over 100k photos does 100k lookups). */
#ifndef FN_STORE_LIBRARY_STORE_H
#define FN_STORE_LIBRARY_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* Brings the "library" component of the schema up to date (idempotent). */
int fn_library_migrate(fn_store *s);
/* Checks, writing nothing, that the "library" component is not newer than this build knows
 * (FN_ERR_VERSION, naming both versions); for read-only connections and for refusing a library
 * before a job is enqueued on it. */
int fn_library_check_version(fn_store *s);

/* ---- Rows -------------------------------------------------------------------------------------
 */

typedef enum fn_photo_status {
    FN_PHOTO_OK = 0,       /* processed, at least one face */
    FN_PHOTO_NO_FACES = 1, /* processed, no face found */
    FN_PHOTO_ERROR = 2,    /* the last attempt failed (error_code says why) */
} fn_photo_status;

const char *fn_photo_status_name(fn_photo_status s); /* "ok", "no_faces", "error" */
int fn_photo_status_parse(const char *s, fn_photo_status *out);

typedef struct fn_photo_row {
    int64_t id;
    char *path;        /* owned by the row */
    int64_t size;      /* bytes */
    int64_t mtime_ns;  /* modification time, ns since the epoch */
    uint64_t hash;     /* content hash (fn_content_hash), 0 when not computed */
    int width, height; /* oriented full size, 0 when unknown */
    int64_t taken_at;  /* EXIF capture time, epoch seconds, -1 when absent */
    char format[16];   /* "jpeg", "png", ... */
    fn_photo_status status;
    char error_code[32];     /* fn_errname of the last failure, "" when none */
    int n_faces;             /* faces stored for the photo (auto and user) */
    int faces_skipped_small; /* faces dropped by min_face_size at the last ingest */
    int64_t ingested_at;     /* epoch ms of the last ingest */
    int64_t job_id;          /* the job that last wrote the row */
} fn_photo_row;

void fn_photo_row_clear(fn_photo_row *r); /* frees path; NULL-safe */

typedef struct fn_face_row {
    int64_t id;
    int64_t photo_id;
    char *photo_path; /* owned by the row (filled by listings) */
    float x, y, width, height, score;
    int64_t person_id;  /* 0 when not assigned */
    int64_t cluster_id; /* 0 when not assigned */
    int origin_user;    /* 0 auto, 1 user */
    int has_landmarks, has_descriptor;
    float landmarks[68][2]; /* filled when the listing asks for them */
    float descriptor[128];
    size_t thumb_len; /* bytes of the JPEG thumbnail (the blob itself is not loaded) */
    /* added by the people part: */
    int state; /* fn_face_state (facenames/people.h): 0 auto, 1 confirmed, 2 ignored */
    int64_t suggestion_person;   /* the pending suggestion's person, 0 when none */
    const char *suggestion_name; /* its name (borrowed: lives for the callback) */
    float suggestion_confidence; /* [0, 1] */
} fn_face_row;

void fn_face_row_clear(fn_face_row *r);

/* ---- Writing (inside the batch transaction) ---------------------------------------------------
 */

typedef struct fn_face_put {
    float x, y, width, height, score;
    const float (*landmarks)[2]; /* 68 points or NULL */
    const float *descriptor;     /* 128 floats or NULL */
    const uint8_t *thumb_jpeg;   /* or NULL */
    size_t thumb_len;
} fn_face_put;

typedef enum fn_photo_put_kind {
    FN_PUT_RESULT = 0, /* processed: upsert the photo and replace its auto faces */
    FN_PUT_ERROR = 1,  /* failed: upsert the photo as status error, keep its faces */
    FN_PUT_TOUCH = 2,  /* unchanged content (hash matched): only record the new mtime */
    FN_PUT_COPY = 3,   /* the file is photo `same_as` seen elsewhere: record (or renew) it as a
                          copy of it (photo_copies), the photo unchanged */
    FN_PUT_RELINK = 4, /* the file is photo `same_as`, whose known file is gone: the photo's path,
                          root and rel become the file's (its faces unchanged) */
} fn_photo_put_kind;

typedef struct fn_photo_put {
    fn_photo_put_kind kind;
    const char *path;
    int64_t size, mtime_ns;
    uint64_t hash;
    int width, height;
    int64_t taken_at;
    const char *format;     /* may be NULL */
    const char *error_code; /* FN_PUT_ERROR */
    int faces_skipped_small;
    const fn_face_put *faces;
    size_t n_faces;
    int64_t job_id;
    const char *models; /* FN_PUT_RESULT: checksum of the model files used (NULL: unknown) */
    int64_t root;       /* the photo's root (roots.id), 0: none (the row keeps what it had) */
    const char *rel;    /* its path relative to the root's folder ("" for the root itself) */
    int64_t same_as;    /* FN_PUT_COPY, FN_PUT_RELINK: the photo the file is */
    /* FN_PUT_RESULT: the path was no photo when the item was considered (nor a copy of one that
     * still matches): if, by now, a photo with the same content at a matching relative path under
     * another root exists (committed since, or earlier in this batch), the file is recorded as
     * its copy instead of a new photo (fn_library_photo_same_content). */
    int fresh;
    int was_copy; /* the path is recorded as a copy: that record goes (it is a photo now) */
} fn_photo_put;

/* Writes `n` photos (each with its faces) in the caller's open transaction, preparing each
 * statement once for the whole batch. On error returns it (the caller rolls back) with the message
 * in fn_store_errmsg(fn_store_tx_store(tx)). photo_ids (may be NULL) gets each photo's id. */
int fn_library_put_photos(fn_store_tx *tx, const fn_photo_put *p, size_t n, int64_t *photo_ids);

/* Appends an audit entry (actor "user" or a job, action e.g. "face.rename", detail JSON or NULL).
 */
int fn_library_audit(fn_store_tx *tx, const char *actor, const char *action, const char *detail,
                     int64_t job_id);

/* ---- Reading ----------------------------------------------------------------------------------
 */

/* A connection's cached statements for the hot lookups. Free before the store. */
typedef struct fn_library_reader fn_library_reader;
int fn_library_reader_new(fn_store *s, fn_library_reader **out);
void fn_library_reader_free(fn_library_reader *r);

/* Holds (on != 0) or releases (on == 0) one read transaction across many lookups: without it,
 * every lookup opens and closes its own, which costs a handful of lock system calls each. Release
 * it before waiting on anything, so the database's WAL can be checkpointed. Idempotent. */
int fn_library_reader_hold(fn_library_reader *r, int on);

/* Looks up the photo stored under `path`. 0 and *out filled (caller clears), FN_ERR_NOT_FOUND when
 * there is none, or another error. */
int fn_library_photo_by_path(fn_library_reader *r, const char *path, fn_photo_row *out);
int fn_library_photo_by_id(fn_library_reader *r, int64_t id, fn_photo_row *out);

/* What ingest needs to decide whether a file changed: the cheapest lookup (one index probe). */
typedef struct fn_photo_probe {
    int64_t id, size, mtime_ns, ingested_at;
    uint64_t hash;
    fn_photo_status status;
} fn_photo_probe;
int fn_library_photo_probe(fn_library_reader *r, const char *path, fn_photo_probe *out);
/* The same for the photo stored under root `root` at `rel` (reached through another host's mount
 * of the root, perhaps): *path gets the path its row is stored under (malloc'ed; NULL unless 0 is
 * returned). */
int fn_library_photo_probe_rel(fn_library_reader *r, int64_t root, const char *rel,
                               fn_photo_probe *out, char **path);

/* ---- Roots (library migration 5) -------------------------------------------------------------
 * A root is a photo folder the library knows by a name, mounted at a path per host. */

typedef struct fn_root_path {
    int64_t root;
    char *name; /* the root's name */
    char *host; /* NULL for a root no host has mapped */
    char *path;
} fn_root_path;

/* Every root and each host's path of it, by name then host. *out is caller-owned
 * (fn_root_paths_free). `host` non-NULL: only that host's paths (roots it has none of left out). */
int fn_library_root_paths(fn_store *s, const char *host, fn_root_path **out, size_t *n);
void fn_root_paths_free(fn_root_path *p, size_t n);

/* Adds root `name` with `host`'s path `path`, in the caller's transaction. FN_ERR_EXISTS when the
 * name is taken (the message says so). */
int fn_library_root_add(fn_store_tx *tx, const char *name, const char *host, const char *path,
                        int64_t *id);
/* Sets `host`'s path of root `name` (replacing the one it had). FN_ERR_NOT_FOUND when there is no
 * such root. */
int fn_library_root_map(fn_store_tx *tx, const char *name, const char *host, const char *path);
/* The root of `host` whose path holds `dir` (the longest such path), or a new one named after
 * dir's last component (made unique with "-2", "-3", ...) with `dir` as this host's path. *id and
 * *base (malloc'ed: the root's path on this host) are set. In the caller's transaction. */
int fn_library_root_ensure(fn_store_tx *tx, const char *host, const char *dir, int64_t *id,
                           char **base);

/* ---- Photos by content (library migration 6, photo_copies.c) ---------------------------------
 * A file with a known photo's bytes at the same relative path (or one ending the other) under
 * another root is that photo (design decision 34). All of these run on any connection, inside the
 * caller's transaction if it has one. */

/* 1 when some photo has exactly `size` bytes, 0 when none, or a negative fn_err. */
int fn_library_size_known(fn_store *s, int64_t size);

typedef struct fn_photo_match {
    int64_t id, root; /* root 0: the photo has none */
    char *rel;        /* NULL when it has none */
    char *path;       /* where its row says it is */
} fn_photo_match;
void fn_photo_match_clear(fn_photo_match *m);

/* The photo that a file at `path`, relative path `rel` under root `root` (0: a root not made
 * yet), with `size` bytes hashing to `hash`, is: same size and hash, not failed, under another
 * root, and its relative path equal to `rel` or one ending the other at a '/' (the first by id
 * with an equal one, else the first by id). 0 and *out filled (fn_photo_match_clear), or
 * FN_ERR_NOT_FOUND (also for hash 0 or an empty rel), or another error. */
int fn_library_photo_same_content(fn_store *s, int64_t size, uint64_t hash, int64_t root,
                                  const char *rel, const char *path, fn_photo_match *out);

/* The copy recorded at `path`: *out gets the photo's id (id), the copy's size, mtime_ns, hash
 * and when it was recorded (ingested_at); *stale is set when the photo's hash is no longer the
 * copy's (the photo was reprocessed with other bytes); *photo (may be NULL) gets the photo's id,
 * root, rel and path (fn_photo_match_clear, after a 0 return). 0, FN_ERR_NOT_FOUND or an error. */
int fn_library_copy_probe(fn_store *s, const char *path, fn_photo_probe *out, int *stale,
                          fn_photo_match *photo);

/* The paths recorded as copies of photo `photo`, in the order they were found: *paths (each
 * string and the array malloc'ed; caller frees) and *n. */
int fn_library_photo_copies(fn_store *s, int64_t photo, char ***paths, size_t *n);

/* The photo that `path` is recorded as a copy of (fn_library_photo_by_path's twin for copies):
 * 0 and *out filled (caller clears), FN_ERR_NOT_FOUND, or another error. */
int fn_library_photo_by_copy(fn_library_reader *r, const char *path, fn_photo_row *out);

typedef struct fn_photo_filter {
    int status;              /* fn_photo_status, or -1 for any */
    const char *path_prefix; /* only photos under this directory, or NULL */
    size_t limit;            /* 0: no limit */
    size_t offset;
} fn_photo_filter;

/* Calls `cb` for each photo matching `f` (NULL: all), ordered by path. The row lives for the
 * call. A nonzero return from cb stops the listing and is returned. */
typedef int (*fn_photo_cb)(const fn_photo_row *row, void *arg);
int fn_library_photos_each(fn_store *s, const fn_photo_filter *f, fn_photo_cb cb, void *arg);

typedef struct fn_face_filter {
    int64_t photo_id;     /* 0: any */
    int64_t person_id;    /* 0: any; -1: unassigned */
    int64_t cluster_id;   /* 0: any; -1: unassigned */
    int with_vectors;     /* fill landmarks and descriptor */
    size_t limit, offset; /* limit 0: no limit */
} fn_face_filter;

/* Calls `cb` for each face matching `f` (NULL: all), ordered by photo path then face id. */
typedef int (*fn_face_cb)(const fn_face_row *row, void *arg);
int fn_library_faces_each(fn_store *s, const fn_face_filter *f, fn_face_cb cb, void *arg);

/* Reads one face's JPEG thumbnail (caller frees *jpeg). */
int fn_library_face_thumbnail(fn_store *s, int64_t face_id, uint8_t **jpeg, size_t *len);

typedef struct fn_library_counts {
    int64_t photos, photos_ok, photos_no_faces, photos_error;
    int64_t faces, persons, clusters;
} fn_library_counts;
int fn_library_count(fn_store *s, fn_library_counts *out);

#endif
