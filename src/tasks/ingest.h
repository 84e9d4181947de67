/* ingest.h: the ingest job's pieces (internal to tasks): its options, read from the payload with
 * the engine's configuration as defaults, and its handler. */
#ifndef FN_TASKS_INGEST_H
#define FN_TASKS_INGEST_H

#include <stddef.h>

#include "facenames/config.h"
#include "facenames/jobs.h"
#include "facenames/vision.h"

typedef struct ingest_opts {
    char **paths; /* roots, in the order given */
    size_t n_paths;
    int recursive;       /* default 1 */
    int follow_symlinks; /* default 0 */
    char **exts;         /* lower case, no dot */
    size_t n_exts;
    int min_face_size;    /* pixels; default ingest.min_face_size */
    fn_detector detector; /* default ingest.detector */
    int batch;            /* photos processed per commit; default ingest.batch */
    int thumb_size;       /* face thumbnail side in pixels; default 112 */
    char **retry_items;   /* when has_retry: only these files */
    size_t n_retry;
    int has_retry;
} ingest_opts;

/* Parses the payload JSON (NULL or "" means {}). On a bad value returns FN_ERR_INVALID with a
 * sentence in err naming the key and what is allowed. */
int ingest_opts_parse(const char *payload, const fn_config *cfg, ingest_opts *o, char *err,
                      size_t errlen);
void ingest_opts_free(ingest_opts *o);

/* Test hook (beanstalkd's falloc idea): when set, called on the job's thread right after each
 * listed file has been considered and before its batch is processed, so a test can delete a file
 * "during the run" or cancel at an exact point. Process-wide; NULL (the default) in production. */
typedef void (*ingest_hook_fn)(const char *path, void *arg);
extern ingest_hook_fn fn_ingest_test_hook;
extern void *fn_ingest_test_hook_arg;

/* The "ingest" handler's run function. */
int ingest_run(fn_job_ctx *ctx, void *user);

#endif
