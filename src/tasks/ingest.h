/* ingest.h: the "ingest" job type (internal to tasks): its declarations (ingest.c), the work on
 * one photo and the rows it writes (ingest_photo.c), and its summary (ingest_summary.c).
 *
 * An ingest item is one file, named by its absolute path. The source walks the payload's paths in
 * the walk's stable order (walk.h) and decides per file on the job's thread whether it needs work
 * (a stat and one indexed lookup; a content hash only when in doubt); the work (hash, decode,
 * detect, landmarks, descriptors, thumbnails) runs on the worker slots, each with its own
 * fn_vision. */
#ifndef FN_TASKS_INGEST_H
#define FN_TASKS_INGEST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "facenames/jobtype.h"
#include "facenames/vision.h"
#include "store/library/library_store.h"
#include "tasks/walk.h"

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
    C_RECOGNISED, /* files found to be known photos under another root (by content) */
    C_DECODE_MS,  /* the part of vision_ms spent decoding (ahead, on the prefetcher, or not) */
    C_COUNT
};
enum { H_FACES_PER_PHOTO, H_FACE_SIZE, H_COUNT };

/* The job state (fn_batch_state). */
typedef struct ingest_job {
    fn_detect_opts det;
    const fn_models *models; /* NULL until the first batch with work (ingest_warm) */
    unsigned models_which;
    const char *models_dir;
    char models_sum[17]; /* the landmark and recognition models' checksum ("" when unknown) */
    char **exts;         /* lower case, without the dot */
    size_t n_exts;
    fn_library_reader *reader;
    fn_walk *walk;
    fn_walk *retry_walk; /* a folder being retried (its reference in retry_root) */
    char *retry_root;
    int64_t skip; /* walk items to pass over: a checkpoint with an index but no position */
    int has_pos;  /* the cursor: the last file handed to the driver (root, rel) */
    size_t root;
    char *last;
    uint8_t *hashbuf;
    _Atomic uint64_t vision_ns; /* time inside the vision code in this run */
    _Atomic uint64_t decode_ns; /* ... of which decoding */
    /* Roots (library migration 5): this host's id, its mounts of the library's roots (loaded at
     * open, grown by ingest_write when a payload folder is in none), and the payload's folders
     * (realpath; a file's parent) that a new root is made of. Job thread. */
    char host[256];
    fn_root_path *roots;
    size_t n_roots;
    char **dirs;
    size_t n_dirs;
    char **local; /* the payload's paths as this host mounts them (translated through roots) */
    size_t n_local;
    fn_root_path *all_roots; /* every host's mounts, for translating retry items (loaded once) */
    size_t n_all_roots;
    int all_loaded;
    /* A shard (fn_batch_is_shard): the walk ends after (end_root, end_last) when has_end. */
    int has_end;
    size_t end_root;
    char *end_last;
} ingest_job;

/* One photo's record (fn_item.data). */
typedef struct ingest_photo {
    int touch;              /* unchanged content, new mtime: only that is recorded */
    char *key;              /* the path its row is stored under when that is not the item's own
                               (the photo was first reached through another host's mount of
                               its root); NULL: the item's path. Freed by ingest_item_clear. */
    int64_t size, mtime_ns; /* from the stat that decided to process it */
    uint64_t hash;
    int hashed;      /* hash was computed when the file was considered: the worker reuses it */
    int64_t same_as; /* the known photo this file is (by content, or its recorded copy) */
    int relink;      /* ... and that photo's file is gone from this host: it moves here */
    int fresh;       /* no photo had this path when considered (fn_photo_put.fresh) */
    int was_copy;    /* the path was recorded as a copy that no longer matches its photo */
    fn_decoded decoded; /* prepared: the photo's pixels, until process ran the networks */
    /* results, written by exactly one worker */
    int width, height;
    int64_t taken_at;
    char format[16];
    size_t n_faces, skipped_small;
    fn_face_put *faces;
    float (*landmarks)[68][2];
    float (*descriptors)[128];
    uint8_t **thumbs;
} ingest_photo;

/* A worker slot: its own fn_vision, made on its first photo. */
typedef struct ingest_slot {
    fn_vision *vis;
} ingest_slot;

/* The type, registered by fn_tasks_register_all. */
extern const fn_jobtype fn_ingest_type;

/* ingest_photo.c: the work and the rows (fn_jobtype callbacks). */
int ingest_warm(fn_batch *b);
int ingest_slot_open(fn_batch *b, void *slot, char *err, size_t errlen);
void ingest_slot_close(fn_batch *b, void *slot);
void ingest_prepare(fn_batch *b, fn_item *item);
void ingest_process(fn_batch *b, void *slot, fn_item *item);
int ingest_compare(const fn_item *a, const fn_item *b);
int ingest_write(fn_batch *b, fn_store_tx *tx, fn_item *const *items, size_t n);
void ingest_item_clear(fn_batch *b, fn_item *item);
/* The resolution an ingest error gets: retry what the user can fix without changing the file. */
fn_resolution ingest_resolution(const char *code);

/* ingest.c: the root of this host that holds `path`, and the path relative to it (pointing into
 * `path`); 0 when no root holds it. */
int64_t ingest_root_of(const ingest_job *st, const char *path, const char **rel);

/* ingest_summary.c */
char *ingest_summary(const fn_job_info *job, void *user);

/* Test hook (beanstalkd's falloc idea): when set, called on the job's thread right after each
 * listed file has been considered and before its batch is processed, so a test can delete a file
 * "during the run" or cancel at an exact point. Process-wide; NULL (the default) in production. */
typedef void (*ingest_hook_fn)(const char *path, void *arg);
extern ingest_hook_fn fn_ingest_test_hook;
extern void *fn_ingest_test_hook_arg;

#endif
