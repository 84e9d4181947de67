/* facenames: the job engine (the contract's JobManager).
 *
 * An engine runs the jobs of one library (one SQLite database, `<library>/library.db`). Job types
 * are handlers registered by name; the engine owns states, lanes, worker threads, cancellation
 * tokens, progress, checkpoints, errors, events and the lifecycle log, and the handler owns its
 * item loop, calling back into the engine between items and batches through its fn_job_ctx.
 *
 * Threading: every fn_engine_* / fn_job_* function may be called from any thread unless its comment
 * says otherwise. Handlers run on worker threads (or on the calling thread in inline mode, when the
 * engine was started with 0 threads). Events are never delivered by calling into the owner: they
 * are queued and fn_engine_events_fd() becomes readable; the owner drains them on its own thread.
 *
 * Errors: functions return 0 (FN_OK) or a negative fn_err; fn_engine_errmsg() then holds a sentence
 * naming what failed (job id, file, what to do), per calling thread. */
#ifndef FACENAMES_JOBS_H
#define FACENAMES_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include "facenames/config.h"
#include "facenames/error.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API; the rest is hidden */

typedef struct fn_engine fn_engine;     /* one open library's job engine */
typedef struct fn_job_ctx fn_job_ctx;   /* what a running handler sees of its job */
typedef struct fn_store_tx fn_store_tx; /* an open write transaction (see store.h) */
typedef struct fn_store fn_store;       /* a database connection (see store.h) */
typedef struct fn_job_info fn_job_info; /* a snapshot of one job (below) */
typedef int64_t fn_job_id;

typedef enum fn_job_state {
    FN_JOB_QUEUED = 0,
    FN_JOB_RUNNING = 1,
    FN_JOB_CANCELLED = 2,
    FN_JOB_COMPLETED = 3,
    FN_JOB_FAILED = 4,
} fn_job_state;

typedef enum fn_priority {
    FN_PRIO_BACKGROUND = 0,
    FN_PRIO_NORMAL = 1,
    FN_PRIO_INTERACTIVE = 2, /* user-triggered; preempts lower lanes within one batch */
} fn_priority;

typedef enum fn_resolution {
    FN_RES_PENDING = 0,
    FN_RES_SKIP = 1,
    FN_RES_RETRY = 2,
} fn_resolution;

/* "queued", "running", ...; "interactive", "normal", "background"; "pending", "skip", "retry".
 * Static strings. The *_parse functions return 0 and write *out, or FN_ERR_INVALID. */
const char *fn_job_state_name(fn_job_state s);
const char *fn_priority_name(fn_priority p);
const char *fn_resolution_name(fn_resolution r);
int fn_job_state_parse(const char *s, fn_job_state *out);
int fn_priority_parse(const char *s, fn_priority *out);
int fn_resolution_parse(const char *s, fn_resolution *out);

/* ---- Handlers ---------------------------------------------------------------------------------
 */

/* Runs one job to its end, a stop request, or an error, on a worker thread.
 * Returns 0 when every item was handled (item errors recorded with fn_job_error() do not fail the
 * job), FN_ERR_CANCELLED or FN_ERR_YIELDED after fn_job_should_stop() said so (the engine then
 * marks the job cancelled, or requeues it), or another negative code to fail the job (describe
 * it first with fn_job_fail_reason()). */
typedef int (*fn_handler_run_fn)(fn_job_ctx *ctx, void *user);

/* Optional: checks the payload of a job of this type when it is enqueued (in a process where the
 * type is registered) and resolves it. *resolved (malloc'ed; NULL keeps the payload as given) is
 * what gets stored: every setting that changes the job's results filled in, from `cfg` where the
 * payload leaves it out, so resume, retry and any worker run the job the same way whatever their
 * own configuration. A bad payload: FN_ERR_INVALID and a sentence in err naming the key and what
 * is allowed; nothing is enqueued. Runs on the enqueueing thread. */
typedef int (*fn_handler_prepare_fn)(const char *payload, const fn_config *cfg, char **resolved,
                                     char *err, size_t errlen, void *user);

/* Optional: a person-readable summary of a job (lines ending in "\n"; malloc'ed, or NULL when
 * out of memory). Runs on the caller's thread of fn_job_summary. */
typedef char *(*fn_handler_summary_fn)(const fn_job_info *job, void *user);

typedef struct fn_handler {
    const char *type;      /* "ingest", "clustering", "predict", "repair", "export", "import" */
    fn_handler_run_fn run; /* required */
    void *user;            /* handed to run, prepare and summary; must outlive the engine */
    int gpu_slots;         /* accelerator slots a job of this type holds while running (0 or 1) */
    int mem_mb;            /* memory a running job of this type declares (checked against
                              workers.mem_max_mb) */
    fn_handler_prepare_fn prepare; /* NULL: any JSON object is accepted as is */
    fn_handler_summary_fn summary; /* NULL: fn_job_summary lists the counters */
    const char *rate_unit;         /* what a progress rate counts ("photos"); NULL: "items" */
} fn_handler;

/* ---- Engine lifetime --------------------------------------------------------------------------
 */

/* Opens (creating if needed) the library in `library_dir` and its job registry, registers this
 * process as an owner, and recovers jobs whose owner process is gone (they go back to queued and
 * later continue from their checkpoint). `cfg` is copied; NULL means defaults. No thread is started
 * until fn_engine_start(). On success *out owns the engine (free with fn_engine_close). */
int fn_engine_open(const char *library_dir, const fn_config *cfg, fn_engine **out);

/* Opens an existing library for reading only (inspect, list, log, errors): creates, migrates and
 * writes nothing (no owner row, no recovery, no log file, no monitor thread), so it works on a
 * library that cannot be written and leaves a folder that is not a library as it is. No library
 * (no library.db): FN_ERR_NOT_FOUND; a folder that cannot be entered: FN_ERR_CONFIG; a database
 * of another program: FN_ERR_FOREIGN. Calls that write (enqueue, cancel, resume ...) then fail
 * with FN_ERR_READONLY and fn_engine_start with FN_ERR_READONLY. Free with fn_engine_close. */
int fn_engine_open_readonly(const char *library_dir, const fn_config *cfg, fn_engine **out);

/* Registers a handler before fn_engine_start(). The struct is copied; `type` is copied too.
 * FN_ERR_STATE after start, FN_ERR_INVALID for a duplicate type. */
int fn_engine_register(fn_engine *e, const fn_handler *h);

/* Starts `threads` workers (capped by workers.cpu_max; negative means workers.cpu_max). 0 starts
 * none: jobs then run only inside fn_engine_run_pending() on the caller's thread (inline mode,
 * deterministic, for tests and for one-shot CLI commands). */
int fn_engine_start(fn_engine *e, int threads);

/* Runs queued jobs on the calling thread until none is runnable (inline mode, or `worker
 * --until-idle`). With `max_jobs` > 0 runs at most that many. *ran (may be NULL) gets the count. */
int fn_engine_run_pending(fn_engine *e, int max_jobs, int *ran);

/* Asks running jobs to yield (they checkpoint and return to queued), joins the workers, writes the
 * owner's departure and closes the database. NULL is a no-op. Must not be called from a handler. */
void fn_engine_close(fn_engine *e);

/* The detail of the last error on the calling thread ("job 12: no such job"). Never NULL. `e` may
 * be NULL: that is how to read why fn_engine_open failed. */
const char *fn_engine_errmsg(const fn_engine *e);

/* The library directory and the effective configuration. Valid until fn_engine_close. */
const char *fn_engine_library_dir(const fn_engine *e);
const fn_config *fn_engine_config(const fn_engine *e);

/* ---- Controller API (the contract's enqueue / inspect / cancel / resume / retry) --------------
 */

typedef struct fn_enqueue_opts {
    const char *type;       /* registered or not: a job can be enqueued for another process */
    const char *payload;    /* JSON object text, NULL for {} */
    const char *checkpoint; /* JSON text to start from, NULL for none */
    fn_priority priority;
    int gpu_slots; /* -1: the handler's default */
    int mem_mb;    /* -1: the handler's default */
} fn_enqueue_opts;

/* Persists a new queued job and wakes a worker. *id gets its id. When the type is registered here
 * and has a prepare hook, the payload is checked and resolved first (FN_ERR_INVALID with the
 * hook's sentence in fn_engine_errmsg for a bad one). */
int fn_enqueue(fn_engine *e, const char *type, const char *payload, fn_priority priority,
               fn_job_id *id);
int fn_enqueue_ex(fn_engine *e, const fn_enqueue_opts *opts, fn_job_id *id);

/* Like fn_enqueue_ex, but when a queued job of the same type, priority and (resolved) payload
 * already exists (typically one recovered after a crash, waiting to continue from its
 * checkpoint), returns that job's id with *continued = 1 instead of adding a second one; when
 * there is none but such a job is running (in this process or another), returns the running
 * job's id with *continued = 2, so the caller follows it rather than redoing the same work at
 * the same time. */
int fn_enqueue_or_continue(fn_engine *e, const fn_enqueue_opts *opts, fn_job_id *id,
                           int *continued);

/* Enqueues `n` jobs in one transaction (bulk). ids may be NULL. */
int fn_enqueue_many(fn_engine *e, const fn_enqueue_opts *opts, size_t n, fn_job_id *ids);

/* A snapshot of one job. All strings are owned by the struct; free with fn_job_info_free. */
typedef struct fn_job_error {
    char *item; /* the file or face the error is about; may be "" for job-level */
    char *code; /* fn_errname() of the failure, or a handler-specific code */
    char *message;
    fn_resolution resolution; /* the latest decision (fn_job_errors_resolve appends decisions) */
    int64_t id;               /* the error's id in the library (stable; 0 before it is stored) */
} fn_job_error;

struct fn_job_info {
    fn_job_id id;
    char *type;
    fn_priority priority;
    char *payload; /* JSON text */
    fn_job_state state;
    int64_t created_at, updated_at, started_at, finished_at; /* epoch ms UTC, -1 when not yet */
    char *progress;   /* JSON object: {"counters": {...}, "histograms": {...}, ...} */
    char *checkpoint; /* JSON text or NULL */
    fn_job_error *errors;
    size_t n_errors;
    fn_job_id parent;  /* the job this one resumes or retries, 0 if none */
    char *fail_reason; /* why a failed job failed, or NULL */
    int retry_only;    /* 1: a retry job (reprocesses only its retry items) */
    /* Shards (docs/job-types.md): a job split into shards has shards > 0 and stays running, under
     * no process, until its last shard ends; its progress, errors and checkpoint are its shards'
     * together. A shard has shard_of = the job it is part of (0: not a shard). */
    fn_job_id shard_of;
    int shards;
};

/* Reads job `id`. FN_ERR_NOT_FOUND if there is none. *out is caller-owned. */
int fn_job_inspect(fn_engine *e, fn_job_id id, fn_job_info **out);
void fn_job_info_free(fn_job_info *info);

/* The job as one JSON object with exactly the contract's field names (id, type, priority, payload,
 * state, created_at, updated_at, started_at, finished_at, progress, checkpoint, errors), times as
 * ISO-8601 UTC (null when not reached), errors as {item, code, message, resolution}. An item that
 * is not UTF-8 is written with \xHH escapes plus "item_b64" (its bytes in base64), and messages
 * have invalid bytes escaped (docs/cli.md, "Paths in JSON"). Caller frees *json with free(). */
int fn_job_inspect_json(fn_engine *e, fn_job_id id, char **json);

/* Lists jobs, newest first, optionally only those in `state` (-1 for all), at most `limit`
 * (0: no limit). *out is a caller-owned array of caller-owned infos (free each, then free(*out));
 * infos from a listing carry no errors (n_errors may be nonzero; errors NULL). */
int fn_job_list(fn_engine *e, int state, size_t limit, fn_job_info ***out, size_t *n);

/* The jobs as one JSON array, newest first, optionally only those in `state` (-1 for all), at
 * most `limit` (0: no limit): each element has the fields of fn_job_inspect_json except "errors"
 * (a listing does not read them), plus "n_errors", "parent" (0 if none), "retry_only" and
 * "fail_reason" (null unless failed). For callers that cannot walk fn_job_list's array of structs
 * (a binding). Caller frees *json with fn_free() or free(). */
int fn_job_list_json(fn_engine *e, int state, size_t limit, char **json);

/* Frees a string or array this header's functions returned to the caller to free with free()
 * (fn_job_inspect_json, fn_job_list_json, fn_job_errors_json, fn_job_summary, fn_job_log): for
 * callers whose free() may not be the library's (a binding, another C runtime). NULL is a no-op. */
void fn_free(void *p);

/* Cancels job `id`. A queued job is cancelled at once; a running one (in this process or another)
 * stops after its current batch, keeping what it committed. FN_ERR_STATE if already finished. */
int fn_job_cancel(fn_engine *e, fn_job_id id);

/* Which errors of a job an operation takes: those whose code is in `codes` or whose item is in
 * `items` (an error is selected if it matches either list). With both lists empty (or a NULL
 * selection) the operation's default applies (see each function). */
typedef struct fn_error_selection {
    const char *const *codes;
    size_t n_codes;
    const char *const *items;
    size_t n_items;
} fn_error_selection;
typedef fn_error_selection fn_retry_selection; /* the name retry used first */

/* What a resume or retry took. */
typedef struct fn_followup {
    fn_job_id id;   /* the job that does the work */
    int continued;  /* resume: 1 when `id` is the job itself, queued already (recovered after a
                       crash), which continues under its own id */
    size_t pending; /* errors of the old job taken that were still pending */
    size_t retry;   /* errors taken that a decision marked retry */
    size_t skipped; /* errors taken although marked skip (named explicitly by a retry selection) */
    size_t left;    /* errors left alone because marked skip */
    size_t items;   /* distinct items the new job reprocesses first */
} fn_followup;

/* Resume. For a cancelled or failed job: enqueues a new job of the same type, payload and
 * priority (parent = id) that first reprocesses the items of id's errors that are pending or
 * marked retry, then continues from id's checkpoint; errors marked skip are carried over as they
 * are and not reprocessed. For a queued job that ran before (recovered after a crash): nothing new
 * is enqueued; out->id = id and out->continued = 1 (the caller runs or watches it). FN_ERR_STATE
 * for a running or completed job, or when another resume of id is still queued or running (the
 * message names it): one live resume per job. `out` may be NULL. */
int fn_job_resume_ex(fn_engine *e, fn_job_id id, fn_followup *out);
int fn_job_resume(fn_engine *e, fn_job_id id, fn_job_id *new_id);

/* Retry. Enqueues a new job (parent = id, same payload) that reprocesses only the items of the
 * selected errors of id, once each, in error order, then ends. NULL or an empty selection takes
 * the errors that are pending or marked retry (not those marked skip); an explicit selection
 * takes what it names whatever its resolution. The items are stored in a table, not in the
 * payload (100k items enqueue in well under a second). FN_ERR_NOT_FOUND when the selection names
 * no error of the job. `out` may be NULL. */
int fn_job_retry_ex(fn_engine *e, fn_job_id id, const fn_error_selection *sel, fn_followup *out);
int fn_job_retry(fn_engine *e, fn_job_id id, const fn_retry_selection *sel, fn_job_id *new_id);

/* Appends a decision to the selected errors of job `id` (NULL or empty selection: all of them):
 * their resolution becomes `res`. Each change is recorded with `who` (NULL: "api"), the time and
 * the previous value; history is never overwritten. Errors already at `res` are left as they are.
 * *changed (may be NULL) gets how many changed. FN_ERR_NOT_FOUND when the selection names no
 * error of the job. One transaction; any thread. */
int fn_job_errors_resolve(fn_engine *e, fn_job_id id, const fn_error_selection *sel,
                          fn_resolution res, const char *who, size_t *changed);

/* The errors of job `id` (NULL or empty selection: all) as a JSON array, oldest first:
 * [{"id", "item", "code", "message", "resolution", "decisions": [{"at", "who", "from", "to"}]}],
 * times ISO-8601 UTC; items and messages encoded as in fn_job_inspect_json ("item_b64" when
 * needed). Caller frees *json with free(). */
int fn_job_errors_json(fn_engine *e, fn_job_id id, const fn_error_selection *sel, char **json);

/* Calls fn(code, count, arg) once per distinct error code of `job` (read with its errors), in the
 * order each code first appears. On the caller's thread; no allocation. */
void fn_job_errors_by_code(const fn_job_info *job,
                           void (*fn)(const char *code, size_t n, void *arg), void *arg);

/* A person-readable summary of `job` (read with fn_job_inspect), made by its type's summary hook,
 * or from its counters when the type has none or is not registered here. Caller frees *text. */
int fn_job_summary(fn_engine *e, const fn_job_info *job, char **text);

/* What a progress rate of `type` counts ("photos"); "items" when the type does not say or is not
 * registered here. Static or engine-owned; valid until fn_engine_close. */
const char *fn_engine_rate_unit(fn_engine *e, const char *type);

/* Waits until job `id` is cancelled, completed or failed, or `timeout_ms` passes (negative: no
 * limit; FN_ERR_BUSY on timeout). Works for jobs run by other processes too (polls the database).
 * *state (may be NULL) gets the final state. */
int fn_job_wait(fn_engine *e, fn_job_id id, int timeout_ms, fn_job_state *state);

/* The stored lifecycle log lines of job `id`, oldest first, as one caller-owned string. */
int fn_job_log(fn_engine *e, fn_job_id id, char **text);

/* ---- Events to the UI thread ------------------------------------------------------------------
 */

typedef enum fn_event_kind {
    FN_EVENT_STATE = 0,    /* state changed; never dropped */
    FN_EVENT_PROGRESS = 1, /* coalesced per job to config events.progress_hz; the last one before a
                              final state is never dropped */
    FN_EVENT_ERROR = 2,    /* an item error; never dropped */
    FN_EVENT_AUDIT = 3,    /* an action that needs an audit entry; never dropped */
} fn_event_kind;

typedef struct fn_event {
    fn_event_kind kind;
    fn_job_id job;
    fn_job_state state; /* the job's state when the event was queued */
    char *json;         /* kind-specific JSON: progress object, error object, audit object, or
                           {"state": ...} ; owned by the event */
} fn_event;

/* A file descriptor that is readable while events are queued. Owned by the engine; do not close
 * or read it. Watch it with poll/QSocketNotifier and call fn_engine_events_drain. */
int fn_engine_events_fd(fn_engine *e);

/* Moves up to `cap` queued events into `out` (caller-owned array) and writes how many to *n; the
 * caller releases each with fn_event_clear. Never blocks. Call from one thread at a time. */
int fn_engine_events_drain(fn_engine *e, fn_event *out, size_t cap, size_t *n);
void fn_event_clear(fn_event *ev);

/* ---- Inside a handler (only on the job's own thread, during run) ------------------------------
 */

fn_job_id fn_job_id_of(const fn_job_ctx *ctx);
fn_engine *fn_job_engine(const fn_job_ctx *ctx);
const char *fn_job_type(const fn_job_ctx *ctx);
const char *fn_job_payload(const fn_job_ctx *ctx);    /* JSON object text; valid during run */
const char *fn_job_checkpoint(const fn_job_ctx *ctx); /* JSON text or NULL; valid during run */

/* Errors this job already has when it starts: those a resume carried over (marked skip), and those
 * of an earlier run of the same job (yielded or recovered). The ones to redo are the retry items
 * below, not these. Valid during run. */
const fn_job_error *fn_job_inherited_errors(const fn_job_ctx *ctx, size_t *n);

/* The items this run must reprocess first: a retry's selection, or a resume's errors that were
 * pending or marked retry, in order. Pages through them: up to `cap` items from `offset` into
 * *items (a caller-freed array of caller-freed strings; *n = 0 past the end). */
int fn_job_retry_items(fn_job_ctx *ctx, size_t offset, size_t cap, char ***items, size_t *n);
/* How many retry items this job has (0: none). */
size_t fn_job_retry_count(fn_job_ctx *ctx);
/* 1 when this job is a retry: it reprocesses its retry items and nothing else. */
int fn_job_is_retry(const fn_job_ctx *ctx);

/* A read connection to the library (the job's own worker's, opened on first use and kept by the
 * engine; never NULL on success). For the handler's lookups between commits; writes go through
 * fn_job_commit. FN_ERR_* with fn_engine_errmsg on failure. Job thread only. */
int fn_job_reader(fn_job_ctx *ctx, fn_store **out);

/* Progress. Named counters and histograms are declared once (returning a small handle) and then
 * updated by handle without locks or allocation; the engine snapshots them for events and commits.
 * A histogram has `n_bounds` ascending upper bounds and one overflow bucket. */
int fn_job_counter(fn_job_ctx *ctx, const char *name);
void fn_job_add(fn_job_ctx *ctx, int counter, int64_t delta);
void fn_job_set(fn_job_ctx *ctx, int counter, int64_t value);
int64_t fn_job_get(const fn_job_ctx *ctx, int counter);
int fn_job_histogram(fn_job_ctx *ctx, const char *name, const double *bounds, size_t n_bounds);
void fn_job_observe(fn_job_ctx *ctx, int histogram, double value);

/* Records an item error (queued for the next commit, emitted as an event at once). */
int fn_job_error_add(fn_job_ctx *ctx, const char *item, const char *code, const char *message,
                     fn_resolution resolution);

/* Sets the checkpoint written by the next commit. `json` is copied. */
int fn_job_set_checkpoint(fn_job_ctx *ctx, const char *json);

/* Surfaces an action that needs an audit entry at the service layer (queued as an event and stored
 * with the next commit). */
int fn_job_audit(fn_job_ctx *ctx, const char *action, const char *detail_json);

/* Explains a job failure before run returns an error. */
void fn_job_fail_reason(fn_job_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

typedef enum fn_stop {
    FN_STOP_NONE = 0,
    FN_STOP_CANCEL = 1, /* return FN_ERR_CANCELLED after committing */
    FN_STOP_YIELD = 2,  /* return FN_ERR_YIELDED after committing */
} fn_stop;

/* Whether the handler should stop after its current batch, and why. Cheap (an atomic load, plus a
 * database look at most every few hundred ms for cross-process cancels); call it between items. */
fn_stop fn_job_should_stop(fn_job_ctx *ctx);

/* Writes the handler's rows (through `write`, which gets the open transaction), the checkpoint, the
 * progress and the queued errors and audit entries in ONE transaction. `write` may be NULL. If
 * write returns an error the transaction is rolled back and that error returned. Emits a progress
 * event (coalesced).
 * `write` runs on the job's thread holding the engine's write lock: it must not call fn_enqueue,
 * fn_job_cancel or other controller functions (they would wait for that lock and fail with
 * FN_ERR_BUSY after db.busy_timeout_ms). FN_ERR_STATE when the job was recovered by another
 * process meanwhile (this one's heartbeat was silent too long): the batch is discarded. */
typedef int (*fn_commit_write_fn)(fn_store_tx *tx, void *arg);
int fn_job_commit(fn_job_ctx *ctx, fn_commit_write_fn write, void *arg);

/* Fans `n` items out over idle workers (never more than workers.cpu_max threads in total, the job's
 * own thread included) and returns when all are done. `fn(i, worker, arg)` gets the item index and
 * a worker slot in [0, fn_job_parallelism(ctx)) that is used by one thread at a time, so the
 * handler can keep per-slot scratch memory. Must not call fn_job_* functions other than
 * counters/observe. */
typedef void (*fn_parallel_fn)(size_t i, int worker, void *arg);
int fn_job_parallel_for(fn_job_ctx *ctx, size_t n, fn_parallel_fn fn, void *arg);

/* The number of worker slots fn_job_parallel_for may use: the engine's planned worker threads
 * (1 in inline mode), capped by workers.cpu_max. Constant once the engine is started, so a handler
 * may size per-slot scratch from it once. */
int fn_job_parallelism(const fn_job_ctx *ctx);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
