/* engine.c: the engine's lifetime (open, register, start, close), its error messages and its
 * monitor thread. The scheduler and the worker loop are in sched.c.
 *
 * What must stay true: fn_engine_open leaves no job of a dead owner "running" (recovery runs before
 * anything else); fn_engine_close asks running jobs to yield, joins every thread, and only then
 * removes this process's owner row, so a job is never left "running" under a live-looking owner.
 *
 * The monitor thread heartbeats the owner row, turns cancel requests written by other processes
 * into local stop requests (at most every 200 ms), preempts for interactive jobs that other
 * processes enqueued, checkpoints the WAL (so batch commits never pay for its fsync) and flushes
 * the log file. Every 1/events.progress_hz (10 to 100 ms) it also queues live progress snapshots
 * of this process's running jobs and, when PRAGMA data_version says another connection wrote,
 * turns the database's change feed into events for the jobs other processes run. On PostgreSQL
 * it waits on a listening connection's socket instead: a notification names each job another
 * host changed, and wakes the monitor at once, so cancels and events cross hosts without waiting
 * for a poll (data_version polling stays the fallback while that connection is down). Every
 * engine also recovers the jobs of owners that went silent, periodically, not only at open: on
 * many hosts nobody else may be about to open the library. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jobs/internal.h"
#include "store/jobs_store.h"
#include "util/clock.h"
#include "util/libaddr.h"
#include "util/log.h"
static _Thread_local char tl_msg[768];

int fn_eng_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_msg, sizeof tl_msg, fmt, ap);
    va_end(ap);
    return code;
}

int fn_eng_store_fail(fn_store *s, int code, const char *what_fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, what_fmt);
    vsnprintf(what, sizeof what, what_fmt, ap);
    va_end(ap);
    snprintf(tl_msg, sizeof tl_msg, "%s: %s", what, fn_store_errmsg(s));
    return code;
}

const char *fn_engine_errmsg(const fn_engine *e)
{
    (void)e;
    return tl_msg;
}

const char *fn_engine_library_dir(const fn_engine *e)
{
    return e->dir;
}

const fn_config *fn_engine_config(const fn_engine *e)
{
    return &e->cfg;
}

const fn_handler_entry *fn_eng_handler(fn_engine *e, const char *type)
{
    for (size_t i = 0; i < e->n_handlers; i++)
        if (strcmp(e->handlers[i].type, type) == 0) return &e->handlers[i];
    return NULL;
}

/* ---- open / close
 * -------------------------------------------------------------------------------- */

/* Every connection of the engine shares one write lock. The monitor checkpoints the WAL every
 * tick; the automatic checkpoint (now at 8192 pages) is only the safety net for a WAL the monitor
 * cannot keep small (a long reader), so batch commits normally never include the fsync. */
int fn_eng_open_conn(fn_engine *e, fn_store **out, char *err, size_t errlen)
{
    int code = e->readonly
                   ? fn_store_open_readonly(e->db_path, e->cfg.db_busy_timeout_ms, out, err, errlen)
                   : fn_store_open(e->db_path, e->cfg.db_busy_timeout_ms, out, err, errlen);
    if (code) return code;
    fn_store_set_write_lock(*out, &e->wmu);
    fn_store_set_autocheckpoint(*out, 8192);
    return 0;
}

static void *monitor_main(void *arg);
static int feed_start(fn_engine *e);
static void listen_open(fn_engine *e);

static int open_engine(const char *library_dir, const fn_config *cfg, int readonly,
                       fn_engine **out);

int fn_engine_open(const char *library_dir, const fn_config *cfg, fn_engine **out)
{
    return open_engine(library_dir, cfg, 0, out);
}

int fn_engine_open_readonly(const char *library_dir, const fn_config *cfg, fn_engine **out)
{
    *out = NULL;
    if (!library_dir || !*library_dir)
        return fn_eng_fail(FN_ERR_INVALID, "no library directory given");
    /* A reader creates nothing: no library here is an answer, not something to make. */
    char db[4200];
    struct stat st;
    snprintf(db, sizeof db, "%s/library.db", library_dir);
    /* A server's database is looked for by connecting to it (fn_store_open_readonly). */
    if (!fn_libaddr_is_url(library_dir) && stat(db, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return fn_eng_fail(FN_ERR_NOT_FOUND, "%s: there is no library here (no library.db)",
                               library_dir);
        return fn_eng_fail(errno == EACCES ? FN_ERR_CONFIG : FN_ERR_IO,
                           "%s: cannot look into the library folder: %s", library_dir,
                           strerror(errno));
    }
    return open_engine(library_dir, cfg, 1, out);
}

static int open_engine(const char *library_dir, const fn_config *cfg, int readonly, fn_engine **out)
{
    *out = NULL;
    if (!library_dir || !*library_dir)
        return fn_eng_fail(FN_ERR_INVALID, "no library directory given");
    const int url = fn_libaddr_is_url(library_dir);
    if (!readonly && !url && mkdir(library_dir, 0777) != 0 && errno != EEXIST)
        return fn_eng_fail(FN_ERR_IO, "%s: cannot create the library directory: %s", library_dir,
                           strerror(errno));
    fn_engine *e = calloc(1, sizeof *e);
    if (!e) return fn_eng_fail(FN_ERR_NOMEM, "out of memory opening %s", library_dir);
    e->readonly = readonly;
    if (cfg)
        e->cfg = *cfg;
    else
        fn_config_defaults(&e->cfg);
    /* The configuration part checks files and overrides; these are the values the engine
     * cannot work with, whoever built the struct. */
    const char *bad = NULL;
    long badv = 0;
    if (e->cfg.workers_cpu_max < 0)
        bad = "workers.cpu_max", badv = e->cfg.workers_cpu_max;
    else if (e->cfg.workers_gpu_max < 0)
        bad = "workers.gpu_max", badv = e->cfg.workers_gpu_max;
    else if (e->cfg.workers_mem_max_mb < 0)
        bad = "workers.mem_max_mb", badv = e->cfg.workers_mem_max_mb;
    else if (e->cfg.db_busy_timeout_ms < 0)
        bad = "db.busy_timeout_ms", badv = e->cfg.db_busy_timeout_ms;
    else if (e->cfg.jobs_heartbeat_ms < 0)
        bad = "jobs.heartbeat_ms", badv = e->cfg.jobs_heartbeat_ms;
    else if (e->cfg.jobs_owner_timeout_ms < 0)
        bad = "jobs.owner_timeout_ms", badv = e->cfg.jobs_owner_timeout_ms;
    else if (e->cfg.jobs_aging_ms < 0)
        bad = "jobs.aging_ms", badv = e->cfg.jobs_aging_ms;
    if (bad) {
        free(e);
        return fn_eng_fail(FN_ERR_CONFIG, "%s: %s is %ld; it must be 0 or more", library_dir, bad,
                           badv);
    }
    if (e->cfg.workers_cpu_max <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        e->cfg.workers_cpu_max = n > 0 ? (int)n : 1;
    }
    if (e->cfg.events_progress_hz <= 0) e->cfg.events_progress_hz = 20;
    if (e->cfg.events_queue_max == 0) e->cfg.events_queue_max = 4096;
    if (e->cfg.jobs_heartbeat_ms <= 0) e->cfg.jobs_heartbeat_ms = 1000;
    if (e->cfg.jobs_owner_timeout_ms <= 0) e->cfg.jobs_owner_timeout_ms = 10000;
    if (e->cfg.jobs_aging_ms <= 0) e->cfg.jobs_aging_ms = 30000;
    e->log_fd = -1;
    pthread_mutex_init(&e->api_mu, NULL);
    pthread_mutex_init(&e->wmu, NULL);
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->inline_mu, NULL);
    pthread_mutex_init(&e->mon_mu, NULL);
    pthread_mutex_init(&e->log_mu, NULL);
    pthread_cond_init(&e->work_cv, NULL);
    pthread_cond_init(&e->done_cv, NULL);
    pthread_cond_init(&e->mon_cv, NULL);
    e->inline_worker.e = e;
    e->inline_worker.index = -1;
    int code = FN_OK;
    size_t dl = strlen(library_dir);
    e->dir = strdup(library_dir);
    e->db_path = malloc(dl + 16);
    if (!e->dir || !e->db_path) {
        code = fn_eng_fail(FN_ERR_NOMEM, "out of memory opening %s", library_dir);
        goto fail;
    }
    fn_libaddr_db(library_dir, e->db_path, dl + 16);
    /* A library on a server has no folder for jobs.log: only an explicit log.path writes one (the
     * log is in the database either way). */
    if (!readonly && strcmp(e->cfg.log_path, "-") != 0 && (!url || e->cfg.log_path[0])) {
        if (e->cfg.log_path[0]) {
            e->log_path = strdup(e->cfg.log_path);
        } else {
            e->log_path = malloc(dl + 16);
            if (e->log_path) snprintf(e->log_path, dl + 16, "%s/jobs.log", library_dir);
        }
        if (!e->log_path) {
            code = fn_eng_fail(FN_ERR_NOMEM, "out of memory opening %s", library_dir);
            goto fail;
        }
    }
    /* worker.host names this process's host in the owner rows; two processes on one machine
     * may claim to be different hosts (a test of several hosts, a container), and then never
     * take each other's pids for their own. */
    if (e->cfg.worker_host[0])
        snprintf(e->host, sizeof e->host, "%s", e->cfg.worker_host);
    else if (gethostname(e->host, sizeof e->host - 1) != 0)
        snprintf(e->host, sizeof e->host, "localhost");

    char err[512];
    code = fn_eng_open_conn(e, &e->store, err, sizeof err);
    if (code) {
        fn_eng_fail(code, "opening the library: %s", err);
        goto fail;
    }
    if (readonly) {
        /* Read as it is: no owner, no recovery, no log file, no monitor (nothing to heartbeat). */
        if ((code = fn_js_check_version(e->store))) {
            fn_eng_store_fail(e->store, code, "reading the job tables");
            goto fail;
        }
        if ((code = fn_evq_init(&e->ev, &e->cfg))) {
            fn_eng_fail(code, "%s: cannot create the event queue", library_dir);
            goto fail;
        }
        *out = e;
        return FN_OK;
    }
    if ((code = fn_js_migrate(e->store))) {
        fn_eng_store_fail(e->store, code, "preparing the job tables");
        goto fail;
    }
    {
        fn_store_tx *tx;
        if ((code = fn_store_begin(e->store, &tx))) {
            fn_eng_store_fail(e->store, code, "registering this process");
            goto fail;
        }
        int64_t owner = 0;
        code = fn_js_owner_register(e->store, (int)getpid(), e->host, fn_wall_ms(), &owner);
        atomic_store(&e->owner, owner);
        if (!code)
            code = fn_store_commit(tx);
        else
            fn_store_rollback(tx);
        if (code) {
            fn_eng_store_fail(e->store, code, "registering this process");
            goto fail;
        }
    }
    int recovered = 0;
    if ((code = fn_js_recover(e->store, e->owner, e->host, fn_wall_ms(),
                              e->cfg.jobs_owner_timeout_ms, &recovered))) {
        fn_eng_store_fail(e->store, code, "recovering the jobs of processes that are gone");
        goto fail;
    }
    if (recovered) FN_LOG(FN_LOG_INFO, "%s: recovered %d orphaned job(s)", e->db_path, recovered);
    if (e->log_path) {
        e->log_fd = open(e->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (e->log_fd < 0) {
            code = fn_eng_fail(FN_ERR_IO,
                               "%s: cannot open the job log: %s (set log.path, or \"-\" for none)",
                               e->log_path, strerror(errno));
            goto fail;
        }
    }
    if ((code = fn_evq_init(&e->ev, &e->cfg))) {
        fn_eng_fail(code, "%s: cannot create the event queue", library_dir);
        goto fail;
    }
    code = fn_eng_open_conn(e, &e->monitor_store, err, sizeof err);
    if (code) {
        fn_eng_fail(code, "opening the library: %s", err);
        goto fail;
    }
    /* Listening starts before the feed's cursor is read, so a change after that is never
     * missed. */
    if (fn_libaddr_is_url(library_dir)) listen_open(e);
    feed_start(e); /* a failure is retried by the monitor */
    if (pthread_create(&e->monitor, NULL, monitor_main, e) != 0) {
        code = fn_eng_fail(FN_ERR_NOMEM, "cannot start the monitor thread");
        goto fail;
    }
    e->monitor_started = 1;
    *out = e;
    return FN_OK;
fail : {
    char keep[sizeof tl_msg];
    memcpy(keep, tl_msg, sizeof keep);
    fn_engine_close(e);
    memcpy(tl_msg, keep, sizeof keep);
    return code;
}
}

int fn_engine_register(fn_engine *e, const fn_handler *h)
{
    if (!h || !h->type || !h->run)
        return fn_eng_fail(FN_ERR_INVALID, "a handler needs a type and a run function");
    if (strlen(h->type) >= 64)
        return fn_eng_fail(FN_ERR_INVALID, "job type \"%.64s...\" is too long", h->type);
    pthread_mutex_lock(&e->mu);
    int code = FN_OK;
    if (e->started) {
        code = fn_eng_fail(FN_ERR_STATE, "handler %s: register handlers before fn_engine_start",
                           h->type);
    } else if (fn_eng_handler(e, h->type)) {
        code = fn_eng_fail(FN_ERR_INVALID, "handler %s is already registered", h->type);
    } else {
        fn_handler_entry *nh = realloc(e->handlers, (e->n_handlers + 1) * sizeof *nh);
        char *t = strdup(h->type);
        if (!nh || !t) {
            free(t);
            if (nh) e->handlers = nh;
            code = fn_eng_fail(FN_ERR_NOMEM, "out of memory");
        } else {
            e->handlers = nh;
            nh[e->n_handlers].h = *h;
            nh[e->n_handlers].type = t;
            /* Not "quick" until its jobs have shown it: no prefetching before that. */
            atomic_store(&nh[e->n_handlers].avg_run_ns, (uint64_t)FN_QUICK_NS * 2);
            nh[e->n_handlers].h.type = t;
            e->n_handlers++;
        }
    }
    pthread_mutex_unlock(&e->mu);
    return code;
}

static atomic_int fail_worker_start = -1;

void fn_engine_test_fail_worker_start(int index)
{
    atomic_store(&fail_worker_start, index);
}

/* Asks the running jobs to yield, stops and joins the worker threads started so far and closes
 * their connections. Used by close, and by a start that fails halfway so that it leaves the engine
 * as it found it. The caller sets `stopping` back if the engine goes on. */
static void stop_workers(fn_engine *e)
{
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    for (size_t i = 0; i < e->n_running; i++) {
        int none = FN_STOP_NONE;
        atomic_compare_exchange_strong(&e->running[i]->stop, &none, FN_STOP_YIELD);
    }
    pthread_cond_broadcast(&e->work_cv);
    int n = e->n_threads;
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < n; i++)
        pthread_join(e->workers[i].thread, NULL);
    for (int i = 0; i < e->n_workers_alloc; i++) {
        fn_store_close(e->workers[i].store);
        fn_store_close(e->workers[i].reader);
    }
    free(e->workers);
    pthread_mutex_lock(&e->mu);
    e->workers = NULL;
    e->n_workers_alloc = 0;
    e->n_threads = 0;
    pthread_mutex_unlock(&e->mu);
}

/* A start that fails halfway: join what started (its jobs yield back to queued), then the
 * engine is not started, so fn_engine_start may be called again. Returns `code`. */
static int start_failed(fn_engine *e, int code)
{
    char keep[sizeof tl_msg];
    memcpy(keep, tl_msg, sizeof keep);
    stop_workers(e);
    pthread_mutex_lock(&e->mu);
    e->stopping = 0;
    e->started = 0;
    pthread_mutex_unlock(&e->mu);
    memcpy(tl_msg, keep, sizeof keep);
    return code;
}

int fn_engine_start(fn_engine *e, int threads)
{
    if (e->readonly)
        return fn_eng_fail(FN_ERR_READONLY, "%s: the library was opened read-only; no job runs",
                           e->dir);
    if (threads < 0 || threads > e->cfg.workers_cpu_max) threads = e->cfg.workers_cpu_max;
    pthread_mutex_lock(&e->mu);
    if (e->started) {
        pthread_mutex_unlock(&e->mu);
        return fn_eng_fail(FN_ERR_STATE, "%s: the engine is already started", e->dir);
    }
    e->started = 1;
    pthread_mutex_unlock(&e->mu);
    if (threads == 0) return FN_OK;
    fn_worker *workers = calloc((size_t)threads, sizeof *workers);
    if (!workers)
        return start_failed(e, fn_eng_fail(FN_ERR_NOMEM, "out of memory starting workers"));
    pthread_mutex_lock(&e->mu);
    e->workers = workers;
    e->n_workers_alloc = threads;
    pthread_mutex_unlock(&e->mu);
    char err[512];
    for (int i = 0; i < threads; i++) {
        fn_worker *w = &e->workers[i];
        w->e = e;
        w->index = i;
        int code = fn_eng_open_conn(e, &w->store, err, sizeof err);
        if (code) return start_failed(e, fn_eng_fail(code, "starting worker %d: %s", i, err));
    }
    for (int i = 0; i < threads; i++) {
        if (i == atomic_load(&fail_worker_start) ||
            pthread_create(&e->workers[i].thread, NULL, fn_eng_worker_main, &e->workers[i]) != 0)
            return start_failed(e, fn_eng_fail(FN_ERR_NOMEM, "cannot start worker thread %d", i));
        pthread_mutex_lock(&e->mu);
        e->n_threads = i + 1;
        pthread_mutex_unlock(&e->mu);
    }
    return FN_OK;
}

void fn_engine_close(fn_engine *e)
{
    if (!e) return;
    stop_workers(e);
    /* A thread may be inside fn_engine_run_pending (its job was just asked to yield): the inline
     * connection is its until it returns. */
    pthread_mutex_lock(&e->inline_mu);
    fn_store_close(e->inline_worker.store);
    fn_store_close(e->inline_worker.reader);
    e->inline_worker.store = NULL;
    e->inline_worker.reader = NULL;
    pthread_mutex_unlock(&e->inline_mu);
    /* Job ends no write could record yet get a last try (else the next open recovers them). */
    pthread_mutex_lock(&e->api_mu);
    fn_eng_flush_unwritten(e, e->store);
    pthread_mutex_unlock(&e->api_mu);
    if (e->monitor_started) {
        pthread_mutex_lock(&e->mon_mu);
        e->mon_stop = 1;
        pthread_cond_signal(&e->mon_cv);
        pthread_mutex_unlock(&e->mon_mu);
        pthread_join(e->monitor, NULL);
    }
    fn_store_close(e->monitor_store);
    fn_store_close(e->listen_store);
    if (e->store && e->owner) {
        fn_store_tx *tx;
        if (fn_store_begin(e->store, &tx) == 0) {
            if (fn_js_owner_leave(e->store, e->owner) == 0)
                fn_store_commit(tx);
            else
                fn_store_rollback(tx);
        }
    }
    fn_store_close(e->store);
    if (e->ev.ring) fn_evq_destroy(&e->ev);
    fn_joblog_flush(e);
    free(e->log_buf);
    if (e->log_fd >= 0) close(e->log_fd);
    for (size_t i = 0; i < e->n_handlers; i++)
        free(e->handlers[i].type);
    free(e->handlers);
    free(e->running);
    pthread_mutex_destroy(&e->api_mu);
    pthread_mutex_destroy(&e->wmu);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->inline_mu);
    pthread_mutex_destroy(&e->mon_mu);
    pthread_mutex_destroy(&e->log_mu);
    pthread_cond_destroy(&e->work_cv);
    pthread_cond_destroy(&e->done_cv);
    pthread_cond_destroy(&e->mon_cv);
    free(e->dir);
    free(e->db_path);
    free(e->log_path);
    free(e);
}
/* ---- monitor
 * ------------------------------------------------------------------------------------- */

/* Through fn_store_begin, so it queues on the engine's write lock rather than in SQLite's busy
 * handler (which sleeps whole milliseconds). A process whose owner row is gone (another one took it
 * for dead, say while it was stopped past its lease, and recovered its jobs) registers again:
 * otherwise every job it claimed would carry an owner nobody knows and be recovered again from
 * under it, for good. Its jobs of before stay fenced (their commits name the old owner). */
static int heartbeat(fn_engine *e, fn_store *s)
{
    fn_store_tx *tx;
    int code = fn_store_begin_rows(s, &tx); /* its own row only */
    if (code) return code;
    const int64_t owner = atomic_load(&e->owner);
    int64_t fresh = 0;
    code = fn_js_owner_heartbeat(s, owner, fn_wall_ms());
    if (code == FN_ERR_NOT_FOUND) {
        /* A new id, never the old one (jobs migration 5): this process's runs of before must
         * stay fenced, and a run it claimed anew under the old id would pass their fence. */
        code = fn_js_owner_register(s, (int)getpid(), e->host, fn_wall_ms(), &fresh);
    }
    if (code) {
        fn_store_rollback(tx);
        return code;
    }
    if ((code = fn_store_commit(tx))) return code;
    if (fresh) {
        atomic_store(&e->owner, fresh);
        FN_LOG(FN_LOG_WARN,
               "%s: this process was taken for dead (owner %lld, heartbeat late) and its jobs "
               "recovered elsewhere; registered again as owner %lld",
               e->db_path, (long long)owner, (long long)fresh);
    }
    return FN_OK;
}

int fn_engine_heartbeat_now(fn_engine *e)
{
    pthread_mutex_lock(&e->api_mu);
    int code = heartbeat(e, e->store);
    if (code) fn_eng_store_fail(e->store, code, "heartbeat");
    pthread_mutex_unlock(&e->api_mu);
    return code;
}

/* Cancel requests other processes wrote for jobs running here become local stop requests. */
static void take_cancels(fn_engine *e, fn_store *s)
{
    int64_t ids[64];
    int n = 0;
    if (fn_js_cancel_requests(s, e->owner, ids, 64, &n) == 0 && n > 0) {
        pthread_mutex_lock(&e->mu);
        for (int i = 0; i < n; i++)
            for (size_t j = 0; j < e->n_running; j++)
                if (e->running[j]->id == ids[i]) atomic_store(&e->running[j]->stop, FN_STOP_CANCEL);
        pthread_mutex_unlock(&e->mu);
    }
}

static void monitor_tick(fn_engine *e, fn_store *s)
{
    take_cancels(e, s);
    pthread_mutex_lock(&e->mu);
    int all_busy = e->n_threads > 0 && fn_eng_idle_workers_locked(e) == 0 && e->n_running > 0;
    pthread_mutex_unlock(&e->mu);
    if (all_busy) {
        /* Only interactive jobs this process can run are worth a yield here (other processes'
         * enqueues; this process's own preempt at enqueue). */
        if (fn_eng_lane_has_runnable(e, s, FN_PRIO_INTERACTIVE)) {
            pthread_mutex_lock(&e->mu);
            fn_eng_maybe_preempt_locked(e);
            pthread_mutex_unlock(&e->mu);
        }
    }
}

/* Whether ctx is still in the running table as job id. Call with e->mu held. */
static int still_running_locked(fn_engine *e, fn_job_ctx *ctx, fn_job_id id)
{
    for (size_t i = 0; i < e->n_running; i++)
        if (e->running[i] == ctx) return ctx->id == id;
    return 0;
}

/* Live progress: a snapshot of each running job's counters, queued when it moved since the last
 * one queued for it. The ctx is pinned by e->mu only while its atomics are copied and while the
 * event is queued (its end removes it from the running table under e->mu before the final
 * snapshot is queued, so a live snapshot never follows the final one); the JSON is built from
 * the copy with no lock held. Jobs that started less than one interval ago are left alone, so
 * quick jobs cost nothing here. */
static void live_progress(fn_engine *e, fn_snap *sn)
{
    enum { MAXJ = 64 };
    fn_job_ctx *ctxs[MAXJ];
    fn_job_id ids[MAXJ];
    int n = 0;
    uint64_t now = fn_mono_ns(), min_age = e->ev.min_interval_ns;
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < e->n_running && n < MAXJ; i++) {
        fn_job_ctx *c = e->running[i];
        if (now - c->run_started_ns < min_age) continue;
        ctxs[n] = c;
        ids[n++] = c->id;
    }
    pthread_mutex_unlock(&e->mu);
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&e->mu);
        int alive = still_running_locked(e, ctxs[i], ids[i]);
        if (alive) fn_snap_take(sn, ctxs[i]);
        pthread_mutex_unlock(&e->mu);
        if (!alive) continue;
        char *json = fn_snap_json(sn);
        if (!json) continue;
        pthread_mutex_lock(&e->mu);
        if (still_running_locked(e, ctxs[i], ids[i]))
            fn_evq_progress_live(&e->ev, ctxs[i], json);
        else
            free(json);
        pthread_mutex_unlock(&e->mu);
    }
}

/* Other processes' jobs: nothing to read unless another connection committed. */
typedef struct feed_state {
    int64_t data_version;
    fn_js_cursor cur;
    fn_js_feed feed;
} feed_state;

static int feed_start(fn_engine *e)
{
    /* Start from now (what happened before is in the database), before fn_engine_open returns,
     * so that a change made after it is never missed. */
    e->feed_ok = fn_js_data_version(e->monitor_store, &e->feed_dv) == 0 &&
                 fn_js_feed_cursor(e->monitor_store, &e->feed_cur) == 0;
    if (!e->feed_ok) FN_LOG(FN_LOG_WARN, "%s", fn_store_errmsg(e->monitor_store));
    return e->feed_ok;
}

/* PostgreSQL: a connection that LISTENs (before the feed's cursor is read). On failure the
 * monitor polls, and tries again later. */
static void listen_open(fn_engine *e)
{
    char err[512];
    fn_store *l = NULL;
    if (fn_store_open(e->db_path, e->cfg.db_busy_timeout_ms, &l, err, sizeof err) != 0) {
        FN_LOG(FN_LOG_WARN, "%s", err);
        return;
    }
    if (fn_js_listen(l) != 0) {
        FN_LOG(FN_LOG_WARN, "%s", fn_store_errmsg(l));
        fn_store_close(l);
        return;
    }
    e->listen_store = l;
}

/* The jobs other hosts changed, as their notifications name them, turned into events (and a
 * cancel of a job running here taken at once). Returns 0 when the listening connection failed
 * (then closed: the caller polls). Writers that bypass the store notify nobody: the change feed
 * (the trigger's job_changes, polled at the monitor's poll interval) still catches those. */
static int notified_changes(fn_engine *e, fn_store *s, feed_state *fs)
{
    enum { CAP = 2048 };
    static _Thread_local int64_t ids[CAP];
    int n = 0, overflow = 0;
    if (fn_js_listen_drain(e->listen_store, ids, CAP, &n, &overflow) < 0) {
        FN_LOG(FN_LOG_WARN, "%s", fn_store_errmsg(e->listen_store));
        fn_store_close(e->listen_store);
        e->listen_store = NULL;
        return 0;
    }
    if (overflow)
        FN_LOG(FN_LOG_WARN,
               "%s: more than %d jobs changed within one tick; events for some "
               "of them are not sent",
               e->db_path, CAP);
    if (n == 0) return 1;
    if (n > 0) take_cancels(e, s);
    int64_t lo, hi;
    fn_evq_own_ids(&e->ev, &lo, &hi);
    if (lo && fs->cur.id + 1 >= lo && fs->cur.id < hi) fs->cur.id = hi;
    if (fn_js_feed_read_ids(s, &fs->cur, e->owner, CAP, ids, (size_t)n, &fs->feed)) {
        FN_LOG(FN_LOG_WARN, "%s", fn_store_errmsg(s));
        return 1;
    }
    if (fs->feed.n_jobs || fs->feed.n_errs) fn_evq_feed(&e->ev, e->owner, &fs->feed);
    return 1;
}

static void foreign_changes(fn_engine *e, fn_store *s, feed_state *fs)
{
    if (!e->feed_ok) {
        if (feed_start(e)) {
            fs->data_version = e->feed_dv;
            fs->cur = e->feed_cur;
        }
        return;
    }
    int64_t dv;
    if (fn_js_data_version(s, &dv)) return;
    if (dv == fs->data_version && !fs->feed.more) return;
    fs->data_version = dv;
    /* A few bounded reads when much changed (a busy worker elsewhere writes tens of thousands of
     * changes a second); the rest waits for the next tick. */
    for (int k = 0; k < 8; k++) {
        /* New rows this process enqueued itself were told already (a bulk enqueue of 100k jobs
         * would otherwise be read back row by row). */
        int64_t lo, hi;
        fn_evq_own_ids(&e->ev, &lo, &hi);
        if (lo && fs->cur.id + 1 >= lo && fs->cur.id < hi) fs->cur.id = hi;
        if (fn_js_feed_read(s, &fs->cur, e->owner, 2048, &fs->feed)) {
            FN_LOG(FN_LOG_WARN, "%s", fn_store_errmsg(s));
            return;
        }
        if (fs->feed.n_jobs || fs->feed.n_errs) fn_evq_feed(&e->ev, e->owner, &fs->feed);
        if (!fs->feed.more) break;
    }
}

static void *monitor_main(void *arg)
{
    fn_engine *e = arg;
    int poll_ms = e->cfg.jobs_heartbeat_ms < 200 ? e->cfg.jobs_heartbeat_ms : 200;
    /* The events' tick: progress_hz, kept within 10..100 ms (and no slower than the poll). */
    int tick_ms = (int)(1000.0 / e->cfg.events_progress_hz);
    if (tick_ms < 10) tick_ms = 10;
    if (tick_ms > 100) tick_ms = 100;
    if (tick_ms > poll_ms) tick_ms = poll_ms;
    uint64_t last_beat = fn_mono_ns(), last_poll = last_beat, last_prune = last_beat;
    uint64_t last_recover = last_beat, last_listen = last_beat;
    /* Dead owners are looked for four times per owner timeout, so their jobs are back in the
     * queue within 1.25 timeouts of their last heartbeat. */
    uint64_t recover_ns = (uint64_t)e->cfg.jobs_owner_timeout_ms * 250000u;
    unsigned prunes = 0;
    fn_snap *sn = malloc(sizeof *sn);
    feed_state fs;
    memset(&fs, 0, sizeof fs);
    fs.data_version = e->feed_dv;
    fs.cur = e->feed_cur;
    pthread_mutex_lock(&e->mon_mu);
    while (!e->mon_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)tick_ms * 1000000L;
        while (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (e->listen_store) {
            /* Woken by the server as soon as another host changes a job; close notices the stop
             * within a tick. */
            int fd = fn_js_listen_fd(e->listen_store);
            pthread_mutex_unlock(&e->mon_mu);
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            if (fd >= 0) poll(&pfd, 1, tick_ms);
            pthread_mutex_lock(&e->mon_mu);
        } else {
            pthread_cond_timedwait(&e->mon_cv, &e->mon_mu, &ts);
        }
        if (e->mon_stop) break;
        pthread_mutex_unlock(&e->mon_mu);
        uint64_t now = fn_mono_ns();
        if (now - last_beat >= (uint64_t)e->cfg.jobs_heartbeat_ms * 1000000u) {
            if (heartbeat(e, e->monitor_store))
                FN_LOG(FN_LOG_WARN, "%s", fn_store_errmsg(e->monitor_store));
            last_beat = now;
        }
        if (sn) live_progress(e, sn);
        /* With a listener, the jobs are read when notified, and the change feed at every poll as
         * the fallback; without one the feed is polled every tick, as on SQLite. */
        int polled = now - last_poll + 2000000u >= (uint64_t)poll_ms * 1000000u;
        if (!e->listen_store || !notified_changes(e, e->monitor_store, &fs) || polled)
            foreign_changes(e, e->monitor_store, &fs);
        if (!e->listen_store && fn_libaddr_is_url(e->dir) && now - last_listen >= 5000000000u) {
            last_listen = now;
            listen_open(e);
        }
        if (now - last_recover >= recover_ns) {
            last_recover = now;
            int gone = 0, recovered = 0;
            if (fn_js_owners_gone(e->monitor_store, e->owner, e->host, fn_wall_ms(),
                                  e->cfg.jobs_owner_timeout_ms, &gone) == 0 &&
                gone > 0) {
                if (fn_js_recover(e->monitor_store, e->owner, e->host, fn_wall_ms(),
                                  e->cfg.jobs_owner_timeout_ms, &recovered))
                    FN_LOG(FN_LOG_WARN, "%s", fn_store_errmsg(e->monitor_store));
                else if (recovered)
                    FN_LOG(FN_LOG_INFO, "%s: recovered %d job(s) of processes that are gone",
                           e->db_path, recovered);
            }
        }
        /* The tick may be shorter than the poll: what follows keeps its own pace. */
        if (now - last_poll + 2000000u >= (uint64_t)poll_ms * 1000000u) {
            last_poll = now;
            monitor_tick(e, e->monitor_store);
            if (fn_store_wal_checkpoint(e->monitor_store, NULL))
                FN_LOG(FN_LOG_WARN, "%s", fn_store_errmsg(e->monitor_store));
            fn_joblog_flush(e);
        }
        if (now - last_prune >= 5000000000u) {
            last_prune = now;
            fn_evq_prune(&e->ev, 10000000000u);
            /* Every engine trims the change feed: monitors read it within a tick, so the last
             * 100k changes are plenty (several seconds of the busiest worker). */
            if (++prunes % 12 == 0 && fn_js_feed_prune(e->monitor_store, 100000))
                FN_LOG(FN_LOG_WARN, "%s", fn_store_errmsg(e->monitor_store));
        }
        pthread_mutex_lock(&e->mon_mu);
    }
    pthread_mutex_unlock(&e->mon_mu);
    fn_js_feed_free(&fs.feed);
    free(sn);
    return NULL;
}
