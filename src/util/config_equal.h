/* config_equal.h: field-by-field equality of two fn_config values, for the config test and the
 * config fuzz target (a header-only helper: neither needs more than this, and the fuzz target
 * must not depend on cmocka).
 *
 * What must stay true: it compares every field of fn_config (include/facenames/config.h); a field
 * added there must be added here, or round-trip checks silently stop covering it. Field by field
 * because struct copies need not copy padding, so memcmp would be flaky. */
#ifndef FN_UTIL_CONFIG_EQUAL_H
#define FN_UTIL_CONFIG_EQUAL_H

#include <string.h>

#include "facenames/config.h"

/* 1 when a and b hold the same values, else 0. */
static inline int fn_config_equal(const fn_config *a, const fn_config *b)
{
    return a->workers_cpu_max == b->workers_cpu_max && a->workers_gpu_max == b->workers_gpu_max &&
           a->workers_mem_max_mb == b->workers_mem_max_mb &&
           a->events_progress_hz == b->events_progress_hz &&
           a->events_queue_max == b->events_queue_max &&
           a->jobs_heartbeat_ms == b->jobs_heartbeat_ms &&
           a->jobs_owner_timeout_ms == b->jobs_owner_timeout_ms &&
           a->jobs_aging_ms == b->jobs_aging_ms && a->db_busy_timeout_ms == b->db_busy_timeout_ms &&
           strcmp(a->log_path, b->log_path) == 0 && strcmp(a->db_url, b->db_url) == 0 &&
           strcmp(a->models_dir, b->models_dir) == 0 && strcmp(a->detector, b->detector) == 0 &&
           strcmp(a->detect_tiles, b->detect_tiles) == 0 &&
           strcmp(a->vision_precision, b->vision_precision) == 0 &&
           a->ingest_min_face_size == b->ingest_min_face_size &&
           a->ingest_batch == b->ingest_batch && strcmp(a->worker_host, b->worker_host) == 0;
}

#endif
