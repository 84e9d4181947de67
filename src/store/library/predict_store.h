/* predict_store.h: the rows the predict job reads and writes (internal; SQL stays in src/store).
 *
 * Reads: the confirmed faces that teach the model (faces whose state is 'confirmed', with a
 * person that is not deleted, and a descriptor), and the faces to predict (no person, state
 * 'auto', a descriptor), in (photo, face) order with, per face, the persons it must not be
 * suggested as: its cannot-links, and the persons of the other faces of its photo (two faces of
 * one photo are two people).
 *
 * Writes, inside the job's batch transaction, one face at a time in that order (see
 * fn_predict_put): a suggestion replaces the face's previous one; "unknown" drops it. Nothing is
 * written for a face that got a person or left state 'auto' since it was read, for a person
 * deleted or cannot-linked since, or when another face of the same photo already has or is
 * suggested that person (the more confident suggestion stays). With auto-accept, a suggestion at
 * or above the bar confirms the face (state 'confirmed', that person) and records it in the
 * audit: one audit_log entry per batch (actor "job:<id>", action "suggestion.accept", job_id set)
 * with one audit_faces row per face, so the people API can list and undo it.
 *
 * Threading: like fn_store (one connection per thread). */
#ifndef FN_STORE_LIBRARY_PREDICT_STORE_H
#define FN_STORE_LIBRARY_PREDICT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* The confirmed faces: *desc (n x 128 floats), *person and *face (n each), malloc'ed (the caller
 * frees them; NULL when n = 0). */
int fn_predict_load_refs(fn_store *s, float **desc, int64_t **person, int64_t **face, size_t *n);

/* How many faces a predict job has to look at. */
int fn_predict_count_faces(fn_store *s, int64_t *n);

/* A face to predict. */
typedef struct fn_predict_face {
    int64_t face, photo;
    int no_desc; /* 1: its descriptor is not 128 floats (nothing to predict from) */
    float desc[128];
    int64_t *excl; /* malloc'ed: the persons it must not be suggested as */
    size_t n_excl;
} fn_predict_face;

/* Up to `max` faces after (after_photo, after_face) in (photo, face) order, into out[0..*n).
 * Free each one's excl with free(). */
int fn_predict_faces_page(fn_store *s, int64_t after_photo, int64_t after_face, size_t max,
                          fn_predict_face *out, size_t *n);

/* One face's answer to write. */
typedef struct fn_predict_put {
    int64_t face, photo;
    int64_t person; /* 0: unknown (drop its suggestion) */
    float confidence, distance, margin;
    int64_t support_face;
} fn_predict_put;

/* What fn_predict_put did with each face. */
typedef enum fn_predict_outcome {
    FN_PREDICT_NONE = 0,       /* unknown, and it had no suggestion */
    FN_PREDICT_DROPPED = 1,    /* unknown: its previous suggestion was dropped */
    FN_PREDICT_SUGGESTED = 2,  /* a suggestion written (or replaced) */
    FN_PREDICT_ACCEPTED = 3,   /* confirmed by auto-accept (and audited) */
    FN_PREDICT_SKIPPED = 4,    /* the face or person changed since it was read: left alone */
    FN_PREDICT_SAME_PHOTO = 5, /* another face of its photo has or is suggested that person */
} fn_predict_outcome;

/* Writes n answers in the caller's transaction, in order. accept_min > 1 disables auto-accept;
 * otherwise a suggestion with confidence >= accept_min of a face whose origin is 'auto' is
 * confirmed. outcome (may be NULL) gets one fn_predict_outcome per answer; *audit_id (may be
 * NULL) the audit entry of the accepted ones (0 when none). */
int fn_predict_put_batch(fn_store_tx *tx, const fn_predict_put *p, size_t n, int64_t job_id,
                         double accept_min, int *outcome, int64_t *audit_id);

/* Calls cb once per person with pending suggestions, with how many faces suggest it. */
int fn_predict_suggestions_per_person(fn_store *s, void (*cb)(int64_t person, int64_t n, void *),
                                      void *arg);

#endif
