/* models_cache.h: the face-api models, loaded once per process and shared by every job and worker
 * (internal to tasks). Loading costs ~100 ms and tens of MB; a worker process runs many jobs. */
#ifndef FN_TASKS_MODELS_CACHE_H
#define FN_TASKS_MODELS_CACHE_H

#include <stddef.h>

#include "facenames/vision.h"

/* Returns the models in `which` (fn_model_kind bits) from `dir` ("" or NULL: the default search),
 * loading them the first time. The models stay loaded until fn_models_cache_clear (never while a
 * job runs). Thread-safe. */
int fn_models_cache_get(const char *dir, unsigned which, const fn_models **out, char *err,
                        size_t errlen);

/* Frees every cached model (process exit, tests). No job may be running. */
void fn_models_cache_clear(void);

#endif
