/* registry.c: the list of job types this build implements. Each type loads what it needs (models,
 * its read connection) when a job of its type first runs, so registering is free and an engine
 * that never runs an ingest never loads a model. */
#include "facenames/tasks.h"

#include "facenames/jobtype.h"
#include "tasks/cluster.h"
#include "tasks/ingest.h"
#include "tasks/interop.h"
#include "tasks/predict.h"

int fn_tasks_register_all(fn_engine *e)
{
    const fn_jobtype *types[] = {&fn_ingest_type, &fn_cluster_type, &fn_predict_type,
                                 &fn_repair_type, &fn_export_type,  &fn_import_type};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        int rc = fn_jobtype_register(e, types[i]);
        if (rc < 0) return rc;
    }
    return 0;
}
