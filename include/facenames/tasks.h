/* facenames: the job types (the contract's ingest, clustering, predict, repair, export, import),
 * each a handler for the job engine. */
#ifndef FACENAMES_TASKS_H
#define FACENAMES_TASKS_H

#include "facenames/jobs.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API; the rest is hidden */

/* Registers every job type this build implements with `e` (before fn_engine_start). Returns 0 or
 * the first registration error. The handlers load models lazily, once per worker. */
int fn_tasks_register_all(fn_engine *e);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
