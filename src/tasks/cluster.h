/* cluster.h: the "clustering" job type (internal to tasks): its declarations and run (cluster.c)
 * and its summary (cluster_summary.c). */
#ifndef FN_TASKS_CLUSTER_H
#define FN_TASKS_CLUSTER_H

#include "facenames/jobtype.h"

enum { CC_FACES_TOTAL, CC_FACES_DONE, CC_CLUSTERS_CREATED, CC_NOISE, CC_JOINED, CC_COUNT };
enum { CH_CLUSTER_SIZE, CH_COUNT };

/* The type, registered by fn_tasks_register_all. */
extern const fn_jobtype fn_cluster_type;

char *cluster_summary(const fn_job_info *job, void *user);

/* Test hook: when set, called on the job's thread as each face (its index in the plan) is handed
 * to the driver, before its batch commits (a test cancels there). Process-wide; NULL in
 * production. */
extern void (*fn_cluster_test_hook)(size_t face, void *arg);
extern void *fn_cluster_test_hook_arg;

#endif
