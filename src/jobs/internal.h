/* internal.h: the engine's private structures, shared by the files of src/jobs.
 *
 * Locking (what must stay true):
 *   e->mu    guards the running table, the worker counts, device/memory use, the parallel task,
 *            the unwritten job ends and `stopping`. It guards memory only: handlers, database
 *            reads and waits for the write lock never happen with it held. Two local workers
 *            never pick the same job because each picks inside its write transaction (the
 *            engine's write lock serialises them) and reserves its pick in the running table
 *            before committing.
 *   e->api_mu guards e->store (the controller connection used by fn_enqueue, inspect, cancel ...).
 *   ev.mu    guards the event ring, each ctx's coalescing fields (prog_seq, last_emit_ns,
 *            emitted_hash) and the table of what the consumer was told about each job.
 *   Lock order: e->mu before ev.mu (the monitor queues a live snapshot while it pins the ctx).
 *   A ctx's counters and histograms are atomics (parallel_for helpers add to them); everything
 *   else in a ctx belongs to the job's own thread. ctx->stop is written by any thread (cancel,
 *   yield, monitor) and read by the handler. */
#ifndef FN_JOBS_INTERNAL_H
#define FN_JOBS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "facenames/jobs.h"
#include "store/jobs_store.h"
#include "store/store.h"

#define FN_MAX_COUNTERS   64
#define FN_MAX_HISTOGRAMS 16
#define FN_MAX_BOUNDS     64
#define FN_NAME_MAX       48

typedef struct fn_counter {
    char name[FN_NAME_MAX];
    _Atomic int64_t v;
} fn_counter;

typedef struct fn_histogram {
    char name[FN_NAME_MAX];
    size_t n_bounds;
    double bounds[FN_MAX_BOUNDS];
    _Atomic int64_t counts[FN_MAX_BOUNDS + 1];
} fn_histogram;

typedef struct fn_pending_error {
    char *item, *code, *message;
    fn_resolution res;
} fn_pending_error;

typedef struct fn_pending_audit {
    char *action, *detail;
} fn_pending_audit;

struct fn_worker;

struct fn_job_ctx {
    fn_engine *e;
    struct fn_worker *w;
    fn_job_id id;
    char *type, *payload, *checkpoint;
    int priority, gpu_slots, mem_mb;
    uint64_t run_started_ns;         /* when claimed (set under e->mu before it is shared) */
    _Atomic uint64_t last_commit_ns; /* its last batch commit (or claim): preemption order */
    uint64_t run_t0;                 /* when its handler started (job thread only) */
    int64_t started_at, created_at;
    _Atomic int stop; /* fn_stop */

    fn_counter counters[FN_MAX_COUNTERS];
    int n_counters;
    fn_histogram hists[FN_MAX_HISTOGRAMS];
    int n_hists;
    /* How many counters and histograms the monitor may read (their names and bounds are written
     * before these are release-stored, and never change after). */
    _Atomic int pub_counters, pub_hists;
    void *restored;         /* json_t *: the progress stored when this run started */
    int64_t run_started_at; /* wall ms when this run started (fn_ctx_restore) */
    int64_t items_at_start;

    fn_pending_error *errs;
    size_t n_errs, cap_errs;
    fn_pending_audit *audits;
    size_t n_audits, cap_audits;
    char *next_checkpoint;
    int checkpoint_set;
    int commits, failed_commits;
    int errs_by_res[3]; /* item errors recorded in this run, by resolution */

    fn_job_error *inherited;
    size_t n_inherited;
    int retry_only; /* a retry job */
    int64_t parent; /* the job this one resumes or retries (0: none) */
    /* A shard: the split job it is part of, where its errors go (0: none). Atomic: set when
     * the claim commits, after the ctx is in the running table, where a cancel of the split job
     * reads it (under e->mu) to stop the shard at once. */
    _Atomic int64_t shard_of;
    int sharded;            /* the handler split this job (fn_job_split): its run ends unrecorded */
    int64_t n_retry_items;  /* -1 until counted */
    size_t retry_page_end;  /* paging: the offset just past the last page read ... */
    int64_t retry_page_seq; /* ... and its last item's seq (-1: none yet) */
    char fail_reason[512];

    /* Event coalescing (under ev.mu). */
    uint64_t prog_seq; /* sequence of this job's queued progress event + 1, 0 none */
    uint64_t last_emit_ns;
    uint64_t emitted_hash; /* hash of the last snapshot queued (live snapshots skip repeats) */
};

struct fn_end; /* a job end not yet written (sched.c) */

typedef struct fn_worker {
    fn_engine *e;
    int index; /* -1: the inline (caller) worker */
    pthread_t thread;
    fn_store *store;
    fn_store *reader;    /* fn_job_reader's connection, opened on first use */
    int impossible_seen; /* the last claim_next failed a job that can never run */
} fn_worker;

typedef struct fn_handler_entry {
    fn_handler h;
    char *type;
    _Atomic uint64_t avg_run_ns; /* decaying mean run time: decides prefetching (engine.c) */
} fn_handler_entry;

/* A parallel map in progress (docs/design.md decision 8). */
typedef struct fn_ptask {
    size_t n;
    _Atomic size_t next;
    fn_parallel_fn fn;
    void *arg;
    int max_helpers;
    int helpers_joined; /* under e->mu */
    int helpers_active; /* under e->mu */
    /* A task started apart (fn_par_start): the job's slots, busy[i] under e->mu (busy[0] is the
     * job's thread's), shared by the job's tasks that run at once, so that no two threads use
     * one slot; NULL for fn_job_parallel_for's (one task at a time: slot 1 + joined). */
    unsigned char *busy;
    int n_slots;
    int published; /* in e->tasks */
    struct fn_ptask *next_task;
} fn_ptask;

/* A parallel map the job's thread starts and finishes apart, to work on something else meanwhile
 * (the batch driver's overlap, driver.c). `t` is set up by the caller (n, fn, arg, busy with
 * busy[0] = 1 for the job's thread, n_slots) and outlives the calls. fn_par_start publishes it to
 * idle workers; fn_par_step runs one of its items on the job's thread, in slot 0 (0: none was
 * left); fn_par_done says whether all of its items have finished; fn_par_wait waits for that
 * (fn_par_step first, to take part); fn_par_end withdraws a done task; fn_par_abandon hands out
 * no more items, waits for the running ones and withdraws it. */
void fn_par_start(fn_job_ctx *ctx, fn_ptask *t);
int fn_par_step(fn_ptask *t);
int fn_par_done(fn_engine *e, fn_ptask *t);
void fn_par_wait(fn_engine *e, fn_ptask *t);
void fn_par_end(fn_engine *e, fn_ptask *t);
void fn_par_abandon(fn_engine *e, fn_ptask *t);

/* What the consumer was told about one job (events.c): so that a change another process made
 * is reported once, and a change this process made is never reported twice (once from memory,
 * once from the database). */
typedef struct fn_evjob {
    int64_t id;        /* 0: a free slot */
    uint64_t db_hash;  /* another process's job: hash of the last progress told */
    uint64_t db_seq;   /* ... its progress event still queued (sequence + 1), 0 none */
    uint64_t db_ns;    /* ... when that progress was queued */
    uint64_t final_ns; /* when a final state was told (the entry is dropped some seconds later) */
    int8_t state;      /* the last state told, -1 none */
    uint8_t by_db;     /* that state was told from the database (another process's change) */
    uint8_t mine;      /* running in this process: its events come from memory */
} fn_evjob;

typedef struct fn_evq {
    pthread_mutex_t mu;
    fn_event *ring;
    size_t cap;
    uint64_t head, tail; /* sequence numbers: events [head, tail) are queued */
    int fd;
    size_t queue_max;
    uint64_t min_interval_ns;
    fn_evjob *jobs; /* open addressing by id; cap a power of two */
    size_t jobs_n, jobs_cap;
    int64_t own_lo, own_hi; /* the latest run of consecutive job ids this process enqueued */
} fn_evq;

/* A copy of a running job's counters and histograms, taken while the ctx is pinned (e->mu), so
 * that its JSON can be built after the lock is released (events.c). */
typedef struct fn_snap {
    int nc, nh;
    struct {
        char name[FN_NAME_MAX];
        int64_t v;
    } c[FN_MAX_COUNTERS];
    struct {
        char name[FN_NAME_MAX];
        size_t n_bounds;
        double bounds[FN_MAX_BOUNDS];
        int64_t counts[FN_MAX_BOUNDS + 1];
    } h[FN_MAX_HISTOGRAMS];
} fn_snap;

struct fn_engine {
    char *dir, *db_path, *log_path;
    fn_config cfg;
    char host[256];
    /* This process's row in job_owners. Atomic: the monitor replaces it when the row was taken for
     * dead and removed (it registers again), while workers claim and commit with it. */
    _Atomic int64_t owner;

    pthread_mutex_t api_mu;
    pthread_mutex_t wmu; /* the engine's connections' shared write lock (store.h) */
    fn_store *store;
    int readonly; /* fn_engine_open_readonly: no owner, no monitor, no log file, no writes */

    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* workers wait here */
    pthread_cond_t done_cv; /* job finished / helper left */
    fn_handler_entry *handlers;
    size_t n_handlers;
    int started, stopping;
    int n_threads;
    fn_worker *workers;
    int n_workers_alloc;
    int busy;    /* workers (threads or inline) running a job */
    int helping; /* worker threads helping a parallel_for: busy too, for preemption */
    int gpu_used, mem_used;
    fn_job_ctx **running;
    size_t n_running, cap_running;
    fn_ptask *tasks;
    /* Job ends a write could not record (database locked or full), kept until a later loop
     * iteration of any worker, or fn_engine_run_pending, writes them (sched.c). */
    struct fn_end *unwritten;
    int n_unwritten, cap_unwritten;

    pthread_mutex_t inline_mu;
    fn_worker inline_worker;

    /* Monitor: heartbeat, cross-process cancels, preemption for other processes' jobs. */
    pthread_t monitor;
    int monitor_started;
    fn_store *monitor_store;
    pthread_mutex_t mon_mu;
    pthread_cond_t mon_cv;
    int mon_stop;
    /* Where the change feed of other processes' jobs starts (set before the monitor starts,
     * then the monitor's own). */
    int feed_ok;
    int64_t feed_dv;
    fn_js_cursor feed_cur;
    /* PostgreSQL: a connection of the monitor's that LISTENs for job changes (NULL on SQLite, or
     * while the server cannot be reached: the monitor polls then). */
    fn_store *listen_store;

    pthread_mutex_t log_mu;
    int log_fd;
    char *log_buf; /* lines not yet written to the file (under log_mu) */
    size_t log_len, log_cap;

    fn_evq ev;
};

#define FN_PREFETCH 16             /* jobs one worker may claim at once ... */
#define FN_QUICK_NS (1000 * 1000u) /* ... when its type's jobs take less than this on average */

/* engine.c: error messages (per thread), connections. */
int fn_eng_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int fn_eng_store_fail(fn_store *s, int code, const char *what_fmt, ...)
    __attribute__((format(printf, 3, 4)));

const fn_handler_entry *fn_eng_handler(fn_engine *e, const char *type);
/* Opens one of the engine's connections (shared write lock, monitor-driven checkpoints). */
int fn_eng_open_conn(fn_engine *e, fn_store **out, char *err, size_t errlen);

/* sched.c */
void *fn_eng_worker_main(void *arg);
int fn_eng_is_running_locked(fn_engine *e, fn_job_id id);
int fn_eng_idle_workers_locked(fn_engine *e);
/* Asks the lowest-priority running job to yield if an interactive job waits and no worker is
 * idle. Call with e->mu held. */
void fn_eng_maybe_preempt_locked(fn_engine *e);
/* Whether lane `lane` holds a queued job this process could run now (a handler here, fits the
 * free capacity, not already taken here): one index range per local type, so queued jobs of other
 * types never hide one. Call without e->mu, on a connection of the calling thread. */
int fn_eng_lane_has_runnable(fn_engine *e, fn_store *s, int lane);
/* Writes the job ends kept after a failed write, once (close calls it); if that fails too they are
 * dropped and their jobs recovered at the next open. */
void fn_eng_flush_unwritten(fn_engine *e, fn_store *s);
/* Wakes a worker after an enqueue; preempts for interactive jobs. */
void fn_eng_notify_enqueued(fn_engine *e, int interactive);

/* Lifecycle log (joblog.c): writes `line` to the log file, prefixed by time and job. */
void fn_joblog_file(fn_engine *e, fn_job_id id, const char *type, const char *line);
void fn_joblog_file_many(fn_engine *e, const char *text, size_t len);
/* Writes the buffered lines (the monitor calls it every tick; close calls it last). */
void fn_joblog_flush(fn_engine *e);
void fn_joblog_prefix(char *buf, size_t len, int64_t now, fn_job_id id, const char *type);

/* Events (events.c). json is taken over (freed by the queue). */
int fn_evq_init(fn_evq *q, const fn_config *cfg);
void fn_evq_destroy(fn_evq *q);
void fn_evq_push(fn_evq *q, fn_event_kind kind, fn_job_id job, fn_job_state state, char *json);
void fn_evq_push_state(fn_evq *q, fn_job_id job, fn_job_state state);
/* A job this process ran goes on elsewhere without an end here (it was split into shards): its
 * state and progress are reported from the database from now on, as another process's job. */
void fn_evq_handoff(fn_evq *q, fn_job_id job);
/* The queued event of a job this process just enqueued (after its commit): dropped when a newer
 * state of the job was told meanwhile (a worker claimed it first, or the monitor read it). */
void fn_evq_push_queued_new(fn_evq *q, fn_job_id job);
/* The latest run [lo, hi] of consecutive ids whose queued state this process told (its own
 * enqueues; 0, 0 for none): the feed skips reading them as new rows (their later changes are in
 * the change feed). */
void fn_evq_own_ids(fn_evq *q, int64_t *lo, int64_t *hi);
/* Queues a progress snapshot for ctx, coalescing with one still queued; `force` ignores the rate
 * limit and the queue limit (the final snapshot). */
void fn_evq_progress(fn_evq *q, fn_job_ctx *ctx, char *json, int force);
size_t fn_evq_len(fn_evq *q);
/* Live progress between commits (the monitor): copies ctx's published counters and histograms
 * (call with the ctx pinned: e->mu held, ctx in the running table); builds the same JSON as
 * fn_ctx_progress_json from the copy (no lock needed). */
void fn_snap_take(fn_snap *sn, fn_job_ctx *ctx);
char *fn_snap_json(const fn_snap *sn);
/* Queues json as ctx's progress unless it is what was last queued for ctx; rate and queue limits
 * as for a commit's snapshot. Call with the ctx pinned (e->mu held). json is taken over. */
void fn_evq_progress_live(fn_evq *q, fn_job_ctx *ctx, char *json);
/* Turns one read of the change feed into events for jobs this process does not run: state
 * changes (once each), their item errors and progress. `self` is this engine's owner id. */
struct fn_js_feed;
void fn_evq_feed(fn_evq *q, int64_t self, struct fn_js_feed *f);
/* Forgets jobs whose final state was told more than keep_ns ago. */
void fn_evq_prune(fn_evq *q, uint64_t keep_ns);

/* shards.c (docs/job-types.md, "Shards"). */
/* Splits ctx's job into n shards, one transaction: the shards (same type, lane and needs;
 * payloads[i], checkpoints[i] may be NULL) are queued with shard_of = the job, which then runs
 * under no owner with `split_checkpoint` as its checkpoint and `progress` as its progress (the
 * base its shards add to) until its last shard ends. The handler then returns 0 and its run ends
 * without an end of its own (ctx->sharded). Job thread. */
int fn_job_split(fn_job_ctx *ctx, size_t n, char *const *payloads, char *const *checkpoints,
                 const char *split_checkpoint, const char *progress);
/* After a transaction that settled split job `parent` (fn_js_shard_settle) committed: its
 * progress event, its end's log file line and its final state event, as the change feed would
 * report them. Clears *st. */
void fn_eng_settled(fn_engine *e, int64_t parent, fn_js_settled *st);
/* The job a ctx's item errors are recorded under: its split job for a shard, else its own. */
static inline fn_job_id fn_ctx_error_job(const fn_job_ctx *ctx)
{
    return ctx->shard_of ? ctx->shard_of : ctx->id;
}

/* ctx.c */
char *fn_ctx_progress_json(fn_job_ctx *ctx);
int64_t fn_ctx_items(fn_job_ctx *ctx);
void fn_ctx_free_pending(fn_job_ctx *ctx);
void fn_ctx_restore(fn_job_ctx *ctx, const char *progress);

/* parallel.c: an idle worker helps a parallel_for; call with e->mu held. */
int fn_par_help_locked(fn_engine *e);

/* Test hooks. */
int fn_engine_request_yield(fn_engine *e, fn_job_id id);
size_t fn_engine_events_queued(fn_engine *e);
int fn_engine_heartbeat_now(fn_engine *e);
/* Makes fn_engine_start fail to start worker thread `index` as if pthread_create had failed (-1:
 * off). Process-wide; for tests of a start that fails halfway. */
void fn_engine_test_fail_worker_start(int index);

#endif
