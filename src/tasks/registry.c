/* registry.c: the list of job types this build implements. Each type loads what it needs (models,
 * its read connection) when a job of its type first runs, so registering is free and an engine
 * that never runs an ingest never loads a model. */
#include "facenames/tasks.h"

#include "facenames/jobtype.h"
#include "tasks/cluster.h"
#include "tasks/ingest.h"
#include "tasks/predict.h"

int fn_tasks_register_all(fn_engine *e)
{
    int rc = fn_jobtype_register(e, &fn_ingest_type);
    if (rc == 0) rc = fn_jobtype_register(e, &fn_cluster_type);
    if (rc == 0) rc = fn_jobtype_register(e, &fn_predict_type);
    return rc;
}
