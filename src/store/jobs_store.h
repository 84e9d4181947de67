/* jobs_store.h: the job registry's rows (internal; the engine's only way to its tables).
 *
 * Tables (component "jobs"): jobs, job_errors, job_log, job_audit, job_owners. A job's state is
 * an fn_job_state number; `owner` is set while it runs; `cancel_requested` carries a cancel from
 * another process to the one running it. None of these functions opens a transaction unless its
 * comment says so: the engine groups them (a batch commit, a claim, a finish) with
 * fn_store_begin/commit. Every function returns 0 or an fn_err with the message on the store. */
#ifndef FN_STORE_JOBS_STORE_H
#define FN_STORE_JOBS_STORE_H

#include <stdint.h>

#include "facenames/jobs.h"
#include "store/store.h"

/* The PostgreSQL channel job changes are notified on (the payload is the job's id): every update
 * of a job's state or progress and every new job, by the statement that writes it. */
#define FN_JS_CHANNEL "fn_jobs"

/* Creates or upgrades the job tables. */
int fn_js_migrate(fn_store *s);
/* Checks, writing nothing, that the job tables are not newer than this build (FN_ERR_VERSION). */
int fn_js_check_version(fn_store *s);

typedef struct fn_js_new {
    const char *type;
    const char *payload;    /* NULL: {} */
    const char *checkpoint; /* may be NULL */
    const char *progress;   /* may be NULL */
    int priority, gpu_slots, mem_mb;
    int64_t parent;   /* 0: none */
    int retry_only;   /* a retry job: only its items (job_items) */
    int64_t shard_of; /* a shard of this job (0: none) */
} fn_js_new;

int fn_js_insert(fn_store *s, const fn_js_new *j, int64_t now, int64_t *id);

/* Copies job `from`'s errors (all with resolution -1, else only those with that resolution) to
 * job `to`, and recounts to's errors. */
int fn_js_copy_errors(fn_store *s, int64_t from, int64_t to, int resolution);

/* A queued job as the scheduler needs it. */
typedef struct fn_js_queued {
    int64_t id, queued_at;
    int priority, gpu_slots, mem_mb;
    char type[64];
} fn_js_queued;

/* What a queued job must fit to be picked now (fn_js_lane_type_heads). */
typedef struct fn_js_fit {
    int gpu_default, mem_default; /* the handler's needs, for jobs stored with -1 */
    int gpu_free, gpu_max;        /* device slots free now, and workers.gpu_max */
    int mem_free, mem_max;        /* MB free now, and workers.mem_max_mb (0: no memory cap) */
} fn_js_fit;

/* The oldest (at most cap) queued jobs of lane `priority` and of type `type` with id > after, by
 * id, leaving out those whose device slots or memory do not fit what is free now but keeping those
 * that can never fit under the caps (so that the caller fails them). One index range (migration
 * 2): jobs of other types and jobs waiting for capacity cost nothing, however many. */
int fn_js_lane_type_heads(fn_store *s, int priority, const char *type, int64_t after,
                          const fn_js_fit *fit, fn_js_queued *out, int cap, int *n);

/* What a worker loads when it claims a job. Strings are malloc'ed. */
typedef struct fn_js_claim {
    char *type, *payload, *checkpoint, *progress;
    int priority;
    int64_t parent, started_at, created_at;
    int cancel_requested;
    int64_t n_errors; /* errors already recorded: a continued job's inherited errors */
    int retry_only;   /* a retry job */
    int64_t shard_of; /* a shard of this job (0: none) */
} fn_js_claim;
void fn_js_claim_clear(fn_js_claim *c);

/* queued -> running for `owner`. *claimed = 0 when the job was no longer queued (or, on
 * PostgreSQL, when another transaction holds its row: FOR UPDATE SKIP LOCKED, so competing
 * claimers never wait for each other; run it in fn_store_begin_rows's transaction). */
int fn_js_claim_job(fn_store *s, int64_t id, int64_t owner, int64_t now, fn_js_claim *out,
                    int *claimed);

/* The job's errors as stored (caller frees with fn_js_errors_free). */
int fn_js_errors(fn_store *s, int64_t id, fn_job_error **out, size_t *n);
void fn_js_errors_free(fn_job_error *e, size_t n);

/* Batch commit parts. progress NULL leaves the column as it is; the checkpoint is written only
 * when set_checkpoint. FN_ERR_STATE when the job is no longer running under `owner` (fencing). */
int fn_js_save_progress(fn_store *s, int64_t id, int64_t owner, const char *checkpoint,
                        int set_checkpoint, const char *progress, int64_t now);
int fn_js_add_error(fn_store *s, int64_t id, const char *item, const char *code, const char *msg,
                    int resolution);
int fn_js_add_audit(fn_store *s, int64_t id, int64_t now, const char *action, const char *detail);
int fn_js_log_add(fn_store *s, int64_t id, int64_t now, const char *line);

/* running under `owner` -> state (queued for a yield, or a final state). A job no longer running
 * under `owner` is left alone (another process recovered it) and FN_ERR_STATE says so: the caller
 * must then record nothing else of that run's end (errors, log line, events). */
int fn_js_finish(fn_store *s, int64_t id, int64_t owner, int state, int64_t now,
                 const char *fail_reason, const char *progress);

/* Cancel. If queued: cancelled at once (*outcome = 1). If running: cancel_requested=1
 * (*outcome = 2). Already cancelled: 4; completed or failed: 3. Missing: FN_ERR_NOT_FOUND. Opens
 * its own transaction. */
int fn_js_cancel(fn_store *s, int64_t id, int64_t now, int *outcome);

/* Ids of running jobs of `owner` with cancel_requested set. */
int fn_js_cancel_requests(fn_store *s, int64_t owner, int64_t *ids, int cap, int *n);

int fn_js_get(fn_store *s, int64_t id, int with_errors, fn_job_info **out);
int fn_js_state(fn_store *s, int64_t id, int *state);
int fn_js_list(fn_store *s, int state, size_t limit, fn_job_info ***out, size_t *n);
/* Frees what fn_js_get and fn_js_list return (NULL-safe); the public fn_job_info_free calls it. */
void fn_js_info_free(fn_job_info *info);
int fn_js_log_text(fn_store *s, int64_t id, char **text);

/* Owners: register (own transaction), heartbeat, leave; recovery requeues running jobs whose owner
 * is gone (same host and pid dead, or silent longer than timeout_ms) in one transaction and writes
 * a log line for each. *recovered gets how many. A heartbeat for an owner whose row is gone (a
 * process that was taken for dead while it lived, say stopped past its lease) is FN_ERR_NOT_FOUND:
 * the caller registers again. */
int fn_js_owner_register(fn_store *s, int pid, const char *host, int64_t now, int64_t *owner);
int fn_js_owner_heartbeat(fn_store *s, int64_t owner, int64_t now);
int fn_js_owner_leave(fn_store *s, int64_t owner);
int fn_js_recover(fn_store *s, int64_t self, const char *host, int64_t now, int timeout_ms,
                  int *recovered);
/* How many owners other than `self` are gone (as fn_js_recover decides it), reading only: the
 * engine's monitor asks this periodically and recovers only when one is. On PostgreSQL the
 * heartbeats are written and their ages measured by the server's clock (`now` is unused there);
 * on SQLite by the hosts' (one host). */
int fn_js_owners_gone(fn_store *s, int64_t self, const char *host, int64_t now, int timeout_ms,
                      int *gone);

/* The change feed: how a monitor learns what other processes did to jobs (events for a UI). A
 * trigger appends (seq, job) to job_changes for every update of a job's state or progress; new
 * rows are found by id and new item errors by job_errors.id. */
int fn_js_data_version(fn_store *s, int64_t *v); /* PRAGMA data_version: moves when another
                                                    connection commits */
/* On PostgreSQL error ids are taken at insert, not at commit: a transaction can commit error 7
 * after another committed error 8 and a reader took it. The cursor keeps the ids it skipped
 * below `err` for FN_JS_GAP_MS (a transaction that wrote an error commits well within that, or
 * rolled back and left a hole for good) and reads them again until they appear. */
enum { FN_JS_GAPS = 64, FN_JS_GAP_MS = 30000 };
typedef struct fn_js_cursor {
    int64_t seq, id, err; /* the last job_changes seq, job id and job_errors id read */
    int n_gaps;
    int64_t gap[FN_JS_GAPS];     /* error ids below err not seen yet (PostgreSQL) */
    uint64_t gap_ns[FN_JS_GAPS]; /* when each was first missed (fn_mono_ns) */
} fn_js_cursor;
typedef struct fn_js_change {
    int64_t id, owner; /* owner 0: none */
    int state;
    char *progress; /* NULL for the caller's own jobs (owner == self) or none stored */
} fn_js_change;
typedef struct fn_js_error_row {
    int64_t id, job;
    char *item, *code, *message;
    int resolution;
} fn_js_error_row;
typedef struct fn_js_feed {
    fn_js_change *jobs;
    size_t n_jobs, cap_jobs;
    fn_js_error_row *errs;
    size_t n_errs, cap_errs;
    int more; /* a limit was reached: read again without waiting for a new data version */
} fn_js_feed;
/* Where the feed stands now (a cursor that skips everything already there). */
int fn_js_feed_cursor(fn_store *s, fn_js_cursor *c);
/* The jobs changed or added after *c and the errors added after it (at most `cap` of each kind),
 * in one read transaction, into f (reused between calls; free with fn_js_feed_free); advances
 * *c. `self` is the caller's owner id (their progress is not read). */
int fn_js_feed_read(fn_store *s, fn_js_cursor *c, int64_t self, int cap, fn_js_feed *f);
/* As fn_js_feed_read, but the changed jobs are `ids` (from fn_js_listen_drain), not the change
 * feed's; *c's seq is left as it is. (PostgreSQL, whose feed's seq is not in commit order.) */
int fn_js_feed_read_ids(fn_store *s, fn_js_cursor *c, int64_t self, int cap, const int64_t *ids,
                        size_t n_ids, fn_js_feed *f);
void fn_js_feed_clear(fn_js_feed *f);
/* Deletes all but the last `keep` changes (own transaction). A reader whose cursor falls behind
 * the kept range misses the changes in between. */
int fn_js_feed_prune(fn_store *s, int64_t keep);
void fn_js_feed_free(fn_js_feed *f);

/* Cross-host notifications (PostgreSQL): fn_js_listen makes `s`, a connection kept for this
 * alone, LISTEN on FN_JS_CHANNEL (FN_ERR_UNSUPPORTED on SQLite: poll fn_js_data_version there);
 * fn_js_listen_fd is the socket to wait on (-1 on SQLite); fn_js_listen_drain gives the distinct
 * job ids notified since the last call, without blocking (*overflow = 1 when more than `cap`
 * arrived: read everything then). */
int fn_js_listen(fn_store *s);
int fn_js_listen_fd(fn_store *s);
int fn_js_listen_drain(fn_store *s, int64_t *ids, int cap, int *n, int *overflow);

/* ---- Error decisions and retry items (job_errors_store.c) -------------------------------------
 * A selection is two JSON arrays of strings (codes, items; either may be NULL): an error is
 * selected when its code or its item is listed, an item as the upper-case hex of its bytes (an
 * item is a path, which need not be UTF-8). Both NULL: the function's default. */

/* Counts what a resume (explicit = 0: pending and retry errors) or retry takes from job `from`,
 * then writes the distinct items of the taken errors (first error order) as job `to`'s items. */
typedef struct fn_js_taken {
    int64_t pending, retry, skipped, left, matched; /* errors */
    int64_t items;                                  /* distinct items written (with `to`) */
} fn_js_taken;
int fn_js_take_items(fn_store *s, int64_t from, int64_t to, const char *codes_json,
                     const char *items_json, fn_js_taken *out);

/* Up to `cap` of job's items after the first `offset`, in order: after *after_seq when it is
 * >= 0 (the seq of the last item of the previous page, which *after_seq is then set to: pages in
 * sequence cost O(page)), else by offset. The count of them all. */
int fn_js_items_page(fn_store *s, int64_t job, size_t offset, int64_t *after_seq, size_t cap,
                     char ***items, size_t *n);
int fn_js_items_count(fn_store *s, int64_t job, size_t *n);

/* Appends a decision (who, now, previous value) to the selected errors (both NULL: all) not
 * already at `res`, and sets their resolution. *matched: errors selected at all; *changed: how
 * many changed. */
int fn_js_errors_resolve(fn_store *s, int64_t job, const char *codes_json, const char *items_json,
                         int res, const char *who, int64_t now, size_t *matched, size_t *changed);

/* The selected errors (both NULL: all) with their decisions, as a JSON array text (malloc'ed). */
int fn_js_errors_json(fn_store *s, int64_t job, const char *codes_json, const char *items_json,
                      char **json);

/* A live job with this type, priority and payload (0: none): the oldest queued one, else the
 * oldest running one; *state gets its state (-1: none). */
int fn_js_find_same(fn_store *s, const char *type, int priority, const char *payload, int64_t *id,
                    int *state);
/* A queued or running job whose parent is `parent` (0: none). */
int fn_js_live_child(fn_store *s, int64_t parent, int64_t *child);

/* ---- Shards (shards_store.c; docs/job-types.md, "Shards") -------------------------------------
 * A split job has `shards` > 0 and runs under no owner while its shards (jobs with shard_of = its
 * id) run; its checkpoint records the split (shards_store.c says how). */

/* Job `id`, running under `owner`, becomes a split job of n shards (inserted by the caller in the
 * same transaction, with fn_js_insert and shard_of = id): no owner from now on, `checkpoint` the
 * split's record, progress as given (NULL: kept). FN_ERR_STATE when it no longer runs under
 * `owner` (fencing, as for a commit); FN_ERR_CANCELLED when a cancel of it was asked for (it
 * would reach no shard: the caller ends the job cancelled instead). */
int fn_js_split(fn_store *s, int64_t id, int64_t owner, int n, const char *checkpoint,
                const char *progress, int64_t now);

typedef struct fn_js_shard {
    int64_t id;
    int state;
    char *payload, *checkpoint, *progress, *fail_reason;
} fn_js_shard;
/* Job parent's shards, by id (free with fn_js_shards_free). */
int fn_js_shards(fn_store *s, int64_t parent, fn_js_shard **out, size_t *n);
void fn_js_shards_free(fn_js_shard *sh, size_t n);

typedef struct fn_js_settled {
    int touched;    /* the parent is a split job that was running: it was updated */
    int state;      /* its state now: running, or its final state once its last shard ended */
    char *progress; /* its progress now: the split's base plus its shards' (malloc'ed) */
    char line[256]; /* the log line of its end (when final; also in job_log) */
} fn_js_settled;
/* Recomputes split job `parent`'s progress and checkpoint from its shards' rows and, when none is
 * queued or running any more, ends it: failed if a shard failed, else cancelled if a shard was
 * cancelled, else completed. Locks the parent's row first (PostgreSQL). Nothing when `parent` is
 * not a running split job. Call inside the transaction that changed a shard. */
int fn_js_shard_settle(fn_store *s, int64_t parent, int64_t now, fn_js_settled *out);
void fn_js_settled_clear(fn_js_settled *out);
/* The job a shard is part of (0: not a shard, or no such job). */
int fn_js_shard_of(fn_store *s, int64_t id, int64_t *parent);
/* Cancels a split job's shards: queued ones at once, running ones by cancel_requested. */
int fn_js_cancel_shards(fn_store *s, int64_t parent, int64_t now);
/* As fn_js_cancel, and shards: a split job's cancel cancels its shards too, and the cancel of a
 * split job or of a queued shard settles the split job in the same transaction (*settled: what
 * it became; touched = 0 when nothing was split). */
int fn_js_cancel_ex(fn_store *s, int64_t id, int64_t now, int *outcome, fn_js_settled *settled);

#endif
