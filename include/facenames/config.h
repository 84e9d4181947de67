/* facenames: configuration.
 *
 * Values come, later ones winning, from the defaults, the file (`<library>/facenames.conf`, or the
 * file named by $FACENAMES_CONFIG), environment variables (FACENAMES_WORKERS_CPU_MAX for
 * workers.cpu_max: upper case, dots and dashes as underscores) and command-line `--set key=value`.
 * The file is lines of `key = value`; `#` starts a comment; unknown keys and bad values are errors
 * naming the file, the line and what is allowed. docs/configuration.md lists every key.
 *
 * fn_config is a plain struct: copy it freely. Functions here touch no global state except
 * fn_config_apply_env (reads the environment). */
#ifndef FACENAMES_CONFIG_H
#define FACENAMES_CONFIG_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API; the rest is hidden */

typedef struct fn_config {
    int workers_cpu_max;    /* workers.cpu_max: worker threads; default: number of cores */
    int workers_gpu_max;    /* workers.gpu_max: accelerator slots; default 1 */
    int workers_mem_max_mb; /* workers.mem_max_mb: memory admitted jobs may declare; 0 = no cap */
    char workers_prefetch[8];  /* workers.prefetch: "auto" (a job type's read-and-decode stage
                                  runs ahead of its workers on a thread of the job's own, except
                                  in inline mode), "on", "off"; "auto" */
    double events_progress_hz; /* events.progress_hz: progress events per job per second; 20 */
    size_t events_queue_max;   /* events.queue_max: queued events before progress is coalesced
                                  harder; 4096 */
    int jobs_heartbeat_ms;     /* jobs.heartbeat_ms: owner heartbeat interval; 1000 */
    int jobs_owner_timeout_ms; /* jobs.owner_timeout_ms: an owner silent this long is gone; 10000 */
    int jobs_aging_ms;         /* jobs.aging_ms: a queued job moves up one lane after this; 30000 */
    int db_busy_timeout_ms;    /* db.busy_timeout_ms: wait for a locked database; 5000 */
    char log_path[1024];       /* log.path: lifecycle log file; "" = <library>/jobs.log;
                                  "-" = none */
    char models_dir[1024];     /* models.dir: face-api weights; "" = built-in search */
    char detector[16];         /* ingest.detector: "ssd" or "tiny"; "ssd" */
    int ingest_min_face_size;  /* ingest.min_face_size: pixels; 40 */
    int ingest_batch;          /* ingest.batch: photos per batch (per commit); 32 */
    double cluster_threshold;  /* cluster.threshold: the largest distance of an edge; 0.5 */
    double cluster_link;       /* cluster.link: the largest RMS distance between two joined groups'
                                  faces (average linkage, the chaining bound); 0.45 */
    int cluster_min_faces;     /* cluster.min_faces: good faces a new cluster needs; 2 */
    int cluster_weak_size;     /* cluster.weak_size: smaller faces (pixels) are weak; 48 */
    double cluster_weak_score; /* cluster.weak_score: faces detected with a lower score are weak;
                                  0.5 */
    int predict_k;             /* predict.k: confirmed faces that vote per face; 10 */
    double predict_threshold;  /* predict.threshold: confidence below which a face is unknown;
                                  0.4 */
    int predict_auto_accept;   /* predict.auto_accept: confirm very confident suggestions (and
                                  audit them as the job's); 0 (off) */
    char db_url[1024];         /* db.url: the library as a postgresql:// address, used when
                                  neither --library nor FACENAMES_LIBRARY names one; "" = none */
    char detect_tiles[8];      /* ingest.detect_tiles: "off", "on" (overlapping tiles find small
                                  faces in large photos, at one detector pass per tile) or "auto"
                                  (tiles only where the whole-photo pass says they pay); "off" */
    char worker_host[256];     /* worker.host: this process's host id in the job owners (what
                                  "same host, pid dead" recovery compares); "" = the hostname */
    int ingest_shard_photos;   /* ingest.shard_photos: an ingest of more photos is split into
                                  shards of this many, which workers on any host share; 0 =
                                  never; 1000 */
    char vision_precision[8];  /* vision.precision: "auto" (int16 where it is the faster
                                  arithmetic, else fp32: fn_vision_precision_auto), "fp32",
                                  "bf16" (the networks' convolutions on AMX-BF16 tiles where the
                                  CPU has them, FP32 elsewhere) or "int16" (SSD's and the
                                  recognition net's on 16-bit integers where the CPU has AVX2);
                                  "auto" */
} fn_config;

/* Fills *cfg with the defaults. */
void fn_config_defaults(fn_config *cfg);

/* A configuration on the heap holding the defaults, for callers that cannot embed the struct (a
 * binding through a foreign-function interface, which then never depends on its size or layout):
 * fill it with the functions below, hand it to fn_engine_open / fn_library_open (which copy it),
 * free it with fn_config_free. NULL when out of memory. fn_config_free(NULL) is a no-op. */
fn_config *fn_config_new(void);
void fn_config_free(fn_config *cfg);

/* Sets one key from its text value. On a bad key or value returns FN_ERR_CONFIG and writes a
 * sentence into err (which key, what is allowed). */
int fn_config_set(fn_config *cfg, const char *key, const char *value, char *err, size_t errlen);

/* Reads a file of `key = value` lines. A missing file is FN_ERR_NOT_FOUND (callers that treat the
 * file as optional ignore that); errors name the file and line. */
int fn_config_load_file(fn_config *cfg, const char *path, char *err, size_t errlen);

/* Parses config text held in memory (used by load_file and the fuzz target); `origin` names it in
 * messages. */
int fn_config_parse(fn_config *cfg, const char *text, size_t len, const char *origin, char *err,
                    size_t errlen);

/* Applies FACENAMES_* environment overrides for every known key. */
int fn_config_apply_env(fn_config *cfg, char *err, size_t errlen);

/* Writes the effective configuration as `key = value` lines into a caller-freed string (NULL when
 * out of memory). fn_config_parse reads it back to the same values. */
char *fn_config_format(const fn_config *cfg);

/* Writes the effective value of `key` ("ingest.min_face_size") as text ("40"; strings unquoted)
 * into out. FN_ERR_NOT_FOUND for an unknown key, FN_ERR_INVALID when out is too small. */
int fn_config_get(const fn_config *cfg, const char *key, char *out, size_t outlen);

/* Checks rules that tie keys together (jobs.owner_timeout_ms >= 2 * jobs.heartbeat_ms), to call
 * once every source has been applied. FN_ERR_CONFIG with a sentence in err. */
int fn_config_validate(const fn_config *cfg, char *err, size_t errlen);

/* Writes the environment variable that overrides `key` ("FACENAMES_WORKERS_CPU_MAX") into out.
 * FN_ERR_NOT_FOUND for an unknown key. */
int fn_config_env_name(const char *key, char *out, size_t outlen);

/* Every failing call above leaves *cfg unchanged: a file with a bad line 9 applies nothing. */

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
