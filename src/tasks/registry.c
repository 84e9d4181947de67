/* registry.c: the list of job types this build implements. Each handler loads what it needs
 * (models, its own database connection) when a job of its type first runs, so registering is
 * free and an engine that never runs an ingest never loads a model. */
#include "facenames/tasks.h"

#include "tasks/ingest.h"

int fn_tasks_register_all(fn_engine *e)
{
    /* About 60 MB: the models are shared, each worker slot adds its scratch and a batch of
     * decoded results. */
    const fn_handler ingest = {
        .type = "ingest", .run = ingest_run, .user = NULL, .gpu_slots = 0, .mem_mb = 200};
    return fn_engine_register(e, &ingest);
}
