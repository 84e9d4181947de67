/* ingest_batch.h: one ingest batch (internal to tasks): the files of a batch, processed in
 * parallel over the job's worker slots, then committed with the checkpoint in one transaction.
 *
 * A batch holds three kinds of entries, all written by the same commit, in enumeration order:
 * files to process (decode, detect, landmarks, descriptors, thumbnails), files whose content hash
 * proved them unchanged (only their new mtime is recorded), and problems found while walking
 * (a folder named x.jpg, a symlink loop, a file gone since it was listed). */
#ifndef FN_TASKS_INGEST_BATCH_H
#define FN_TASKS_INGEST_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "facenames/jobs.h"
#include "facenames/vision.h"
#include "store/library/library_store.h"
#include "tasks/ingest.h"

enum entry_kind { ENTRY_PROCESS, ENTRY_TOUCH, ENTRY_PROBLEM };

typedef struct entry {
    enum entry_kind kind;
    char *path;
    int64_t size, mtime_ns; /* from the stat that decided to process it */
    uint64_t hash;
    /* results (ENTRY_PROCESS), written by exactly one worker */
    int rc;        /* 0 or the fn_err of the failure */
    char code[32]; /* problem/failure code */
    char *msg;     /* problem/failure sentence */
    int width, height;
    int64_t taken_at;
    char format[16];
    size_t n_faces, skipped_small;
    fn_face_put *faces;
    float (*landmarks)[68][2];
    float (*descriptors)[128];
    uint8_t **thumbs;
    uint64_t vision_ns;
    int64_t bytes;
} entry;

/* Per worker slot: its own fn_vision and read buffer, made on first use and kept for the job. */
typedef struct slot {
    fn_vision *vis;
    uint8_t *buf;
    size_t buflen;
    int rc; /* a slot that could not be set up fails the job */
    char err[256];
} slot;

enum {
    C_FILES_TOTAL,
    C_FILES_DONE,
    C_FACES_FOUND,
    C_NO_FACE_IMAGES,
    C_ERRORS,
    C_FACES_SKIPPED_SMALL,
    C_BYTES_READ,
    C_NON_IMAGES,
    C_SKIPPED_UNCHANGED,
    C_VISION_MS,
    C_COUNT
};
enum { H_FACES_PER_PHOTO, H_FACE_SIZE, H_COUNT };

typedef struct ingest_state {
    fn_job_ctx *ctx;
    ingest_opts opts;
    fn_detect_opts det;
    const fn_models *models; /* NULL until the first batch with work */
    unsigned models_which;
    const char *models_dir;
    slot *slots;
    int n_slots;
    int counters[C_COUNT];
    int hists[H_COUNT];
    entry *entries;
    size_t n_entries, cap_entries, n_process;
    size_t *todo; /* indexes of ENTRY_PROCESS entries, for the parallel map */
    size_t cap_todo;
    uint64_t vision_ns_rest; /* sub-millisecond remainder of the vision time counter */
} ingest_state;

/* Appends an entry; takes ownership of nothing (copies path and msg). */
int batch_add(ingest_state *st, enum entry_kind kind, const char *path, int64_t size,
              int64_t mtime_ns, uint64_t hash, int rc, const char *code, const char *msg);

/* Whether `path` is already in the current batch (a file reached twice through links). */
int batch_has(const ingest_state *st, const char *path);

/* Processes the batch's files in parallel, records counters, histograms and errors, sets the
 * checkpoint (`checkpoint_json`, copied) and commits it all; then empties the batch. Returns 0 or
 * the commit's error (the job then fails). */
int batch_flush(ingest_state *st, const char *checkpoint_json);

void batch_free(ingest_state *st);

/* The resolution an ingest error gets by default, and a hint on what to do. */
fn_resolution ingest_resolution(const char *code);

#endif
