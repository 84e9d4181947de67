/* precision.h: the vision.precision setting as the face jobs (ingest, repair) take it (internal
 * to tasks). */
#ifndef FN_TASKS_PRECISION_H
#define FN_TASKS_PRECISION_H

#include "facenames/vision.h"

/* The words a job's "precision" parameter takes (NULL-terminated): those of the vision.precision
 * key. */
extern const char *const fn_task_precisions[];

/* Sets det->precision from a job's "precision" parameter `name` (one of fn_task_precisions,
 * checked at enqueue) and logs, as `job`, what this CPU runs when that is not what the name says
 * (bf16 without AMX, int16 without AVX2) or what auto resolved to. The job keeps the name, so a
 * resumed job keeps its setting; auto resolves on the host that runs it. FN_ERR_INVALID for a
 * name outside the list. Any thread. */
int fn_task_precision(const char *job, const char *name, fn_detect_opts *det);

#endif
