/* api.c: the controller API (the contract's enqueue / inspect / cancel / resume / retry, plus
 * list, wait and log).
 *
 * Every call uses the engine's controller connection under e->api_mu, so these may be called from
 * any thread, including handlers (a handler may enqueue follow-up work). A state change and its
 * lifecycle line are committed together; the event for it is queued only after the commit. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs/internal.h"
#include "store/jobs_store.h"
#include "util/clock.h"
#include "util/pathenc_json.h"

static int valid_payload(const char *payload)
{
    if (!payload) return 1;
    json_error_t jerr;
    json_t *j = json_loads(payload, 0, &jerr);
    int ok = j && json_is_object(j);
    json_decref(j);
    return ok;
}

int fn_enqueue(fn_engine *e, const char *type, const char *payload, fn_priority priority,
               fn_job_id *id)
{
    fn_enqueue_opts o = {type, payload, NULL, priority, -1, -1};
    return fn_enqueue_many(e, &o, 1, id);
}

int fn_enqueue_ex(fn_engine *e, const fn_enqueue_opts *opts, fn_job_id *id)
{
    return fn_enqueue_many(e, opts, 1, id);
}

/* Inserts jobs (and their "queued" lines) inside an open transaction on e->store. */
static int insert_jobs(fn_engine *e, const fn_enqueue_opts *opts, size_t n, fn_job_id *ids,
                       int64_t parent, const char *progress, const char *why, int retry_only,
                       char **filebuf, size_t *filelen)
{
    int64_t now = fn_wall_ms();
    size_t cap = 0;
    char *buf = NULL;
    size_t len = 0;
    char iso[32]; /* one time for the whole call: a bulk enqueue formats it once */
    fn_iso8601(now, iso, sizeof iso);
    for (size_t i = 0; i < n; i++) {
        const fn_enqueue_opts *o = &opts[i];
        /* -1 (the handler's default) is stored as is and resolved by the process that runs the
         * job: the one enqueueing it may not have the handler registered. */
        fn_js_new j = {o->type,
                       o->payload,
                       o->checkpoint,
                       progress,
                       (int)o->priority,
                       o->gpu_slots < 0 ? -1 : o->gpu_slots,
                       o->mem_mb < 0 ? -1 : o->mem_mb,
                       parent,
                       retry_only,
                       0};
        int64_t id;
        int code = fn_js_insert(e->store, &j, now, &id);
        if (code) {
            free(buf);
            return fn_eng_store_fail(e->store, code, "enqueueing a %s job", o->type);
        }
        if (ids) ids[i] = id;
        if (e->log_fd >= 0) {
            if (len + 512 > cap) {
                cap = cap ? cap * 2 : 4096;
                char *nb = realloc(buf, cap);
                if (!nb) {
                    free(buf);
                    return fn_eng_fail(FN_ERR_NOMEM, "out of memory");
                }
                buf = nb;
            }
            /* The stored log synthesises this line from the row (fn_js_log_text). */
            len += (size_t)snprintf(buf + len, cap - len, "%s job %lld %s queued: %s lane%s\n", iso,
                                    (long long)id, o->type, fn_priority_name(o->priority),
                                    why ? why : "");
        }
    }
    *filebuf = buf;
    *filelen = len;
    return 0;
}

static int check_opts(const fn_enqueue_opts *o)
{
    if (!o->type || !*o->type || strlen(o->type) >= 64)
        return fn_eng_fail(FN_ERR_INVALID, "a job needs a type name of 1 to 63 characters");
    if (o->priority < FN_PRIO_BACKGROUND || o->priority > FN_PRIO_INTERACTIVE)
        return fn_eng_fail(FN_ERR_INVALID, "job type %s: priority %d is not a lane", o->type,
                           (int)o->priority);
    if (!valid_payload(o->payload))
        return fn_eng_fail(FN_ERR_INVALID, "job type %s: the payload must be a JSON object",
                           o->type);
    return 0;
}

/* Runs the type's prepare hook on each distinct payload (a bulk enqueue usually repeats one).
 * *resolved[i] is the payload to store for job i (NULL: as given); the array itself is NULL
 * when no job needed resolving. */
static int prepare_payloads(fn_engine *e, const fn_enqueue_opts *opts, size_t n, char ***resolved)
{
    *resolved = NULL;
    char **r = NULL;
    for (size_t i = 0; i < n; i++) {
        const fn_handler_entry *h = fn_eng_handler(e, opts[i].type);
        if (!h || !h->h.prepare) continue;
        if (!r && !(r = calloc(n, sizeof *r))) return fn_eng_fail(FN_ERR_NOMEM, "out of memory");
        if (i > 0 && opts[i].payload == opts[i - 1].payload && opts[i].type == opts[i - 1].type &&
            r[i - 1]) {
            if (!(r[i] = strdup(r[i - 1]))) goto nomem;
            continue;
        }
        char err[1024] = "";
        int code = h->h.prepare(opts[i].payload, &e->cfg, &r[i], err, sizeof err, h->h.user);
        if (code) {
            for (size_t k = 0; k < n; k++)
                free(r[k]);
            free(r);
            return fn_eng_fail(code, "%s", err[0] ? err : "the payload was refused");
        }
    }
    *resolved = r;
    return 0;
nomem:
    for (size_t k = 0; k < n; k++)
        free(r[k]);
    free(r);
    return fn_eng_fail(FN_ERR_NOMEM, "out of memory");
}

static void free_resolved(char **resolved, size_t n)
{
    for (size_t k = 0; resolved && k < n; k++)
        free(resolved[k]);
    free(resolved);
}

static int enqueue_resolved(fn_engine *e, const fn_enqueue_opts *opts, size_t n, fn_job_id *ids,
                            int reuse, int *continued);

int fn_enqueue_many(fn_engine *e, const fn_enqueue_opts *opts, size_t n, fn_job_id *ids)
{
    if (n == 0) return 0;
    char **resolved = NULL;
    int code = 0;
    for (size_t i = 0; i < n && !code; i++)
        code = i > 0 && opts[i].payload == opts[i - 1].payload &&
                       opts[i].type == opts[i - 1].type && opts[i].priority == opts[i - 1].priority
                   ? 0
                   : check_opts(&opts[i]);
    if (!code) code = prepare_payloads(e, opts, n, &resolved);
    if (code) return code;
    if (!resolved) return enqueue_resolved(e, opts, n, ids, 0, NULL);
    fn_enqueue_opts *o = malloc(n * sizeof *o);
    if (!o) {
        free_resolved(resolved, n);
        return fn_eng_fail(FN_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        o[i] = opts[i];
        if (resolved[i]) o[i].payload = resolved[i];
    }
    code = enqueue_resolved(e, o, n, ids, 0, NULL);
    free(o);
    free_resolved(resolved, n);
    return code;
}

int fn_enqueue_or_continue(fn_engine *e, const fn_enqueue_opts *opts, fn_job_id *id, int *continued)
{
    *continued = 0;
    char **resolved = NULL;
    int code = check_opts(opts);
    if (!code) code = prepare_payloads(e, opts, 1, &resolved);
    if (code) return code;
    fn_enqueue_opts o = *opts;
    if (resolved && resolved[0]) o.payload = resolved[0];
    code = enqueue_resolved(e, &o, 1, id, 1, continued);
    free_resolved(resolved, 1);
    return code;
}

/* Inserts checked and resolved jobs in one transaction. With `reuse` (one job), an identical
 * queued job is returned instead (*continued = 1), else an identical running one (*continued =
 * 2): running the same work twice at once would only redo it. */
static int enqueue_resolved(fn_engine *e, const fn_enqueue_opts *opts, size_t n, fn_job_id *ids,
                            int reuse, int *continued)
{
    int interactive = 0;
    for (size_t i = 0; i < n; i++) {
        /* Preempt only for work this process can run; others' workers see it themselves. */
        if (opts[i].priority == FN_PRIO_INTERACTIVE && fn_eng_handler(e, opts[i].type))
            interactive = 1;
    }
    fn_job_id one;
    fn_job_id *out = ids ? ids : (n == 1 ? &one : malloc(n * sizeof *out));
    if (!out) return fn_eng_fail(FN_ERR_NOMEM, "out of memory");
    pthread_mutex_lock(&e->api_mu);
    fn_store_tx *tx;
    char *filebuf = NULL;
    size_t filelen = 0;
    int code = fn_store_begin(e->store, &tx);
    int64_t found = 0;
    if (code) {
        fn_eng_store_fail(e->store, code, "enqueueing %zu job(s)", n);
    } else {
        int found_state = -1;
        if (reuse && (code = fn_js_find_same(e->store, opts[0].type, (int)opts[0].priority,
                                             opts[0].payload, &found, &found_state))) {
            fn_eng_store_fail(e->store, code, "enqueueing a %s job", opts[0].type);
        } else if (found) { /* nothing to write */
            out[0] = found;
            *continued = found_state == FN_JOB_RUNNING ? 2 : 1;
        } else {
            code = insert_jobs(e, opts, n, out, 0, NULL, NULL, 0, &filebuf, &filelen);
        }
        if (code || found)
            fn_store_rollback(tx);
        else if ((code = fn_store_commit(tx)))
            fn_eng_store_fail(e->store, code, "enqueueing %zu job(s)", n);
    }
    pthread_mutex_unlock(&e->api_mu);
    if (!code && !found) {
        fn_joblog_file_many(e, filebuf, filelen);
        for (size_t i = 0; i < n; i++)
            fn_evq_push_queued_new(&e->ev, out[i]);
    }
    if (!code) fn_eng_notify_enqueued(e, interactive);
    free(filebuf);
    if (out != ids && out != &one) free(out);
    return code;
}

void fn_job_info_free(fn_job_info *info)
{
    fn_js_info_free(info);
}

int fn_job_inspect(fn_engine *e, fn_job_id id, fn_job_info **out)
{
    pthread_mutex_lock(&e->api_mu);
    int code = fn_js_get(e->store, id, 1, out);
    if (code == FN_ERR_NOT_FOUND)
        fn_eng_fail(code, "job %lld: no such job in %s", (long long)id, e->db_path);
    else if (code)
        fn_eng_store_fail(e->store, code, "job %lld: reading it", (long long)id);
    pthread_mutex_unlock(&e->api_mu);
    return code;
}

static json_t *json_text_or_string(const char *text)
{
    if (!text) return json_null();
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &jerr);
    return j ? j : json_string(text);
}

static json_t *json_time(int64_t ms)
{
    if (ms < 0) return json_null();
    char buf[32];
    return json_string(fn_iso8601(ms, buf, sizeof buf));
}

/* The contract's fields of `j` in the contract's order; its errors when `with_errors`, else what
 * a listing adds (count, parent, retry flag, failure reason). */
static json_t *job_json(const fn_job_info *j, int with_errors)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(j->id));
    json_object_set_new(o, "type", json_string(j->type));
    json_object_set_new(o, "priority", json_string(fn_priority_name(j->priority)));
    json_object_set_new(o, "payload", json_text_or_string(j->payload));
    json_object_set_new(o, "state", json_string(fn_job_state_name(j->state)));
    json_object_set_new(o, "created_at", json_time(j->created_at));
    json_object_set_new(o, "updated_at", json_time(j->updated_at));
    json_object_set_new(o, "started_at", json_time(j->started_at));
    json_object_set_new(o, "finished_at", json_time(j->finished_at));
    json_object_set_new(o, "progress", json_text_or_string(j->progress));
    json_object_set_new(o, "checkpoint", json_text_or_string(j->checkpoint));
    if (with_errors) {
        json_t *errs = json_array();
        for (size_t i = 0; i < j->n_errors; i++) {
            /* item and message may hold any bytes: the path encoding keeps the error */
            json_t *x = json_object();
            fn_json_set_path(x, "item", j->errors[i].item);
            json_object_set_new(x, "code", fn_json_text(j->errors[i].code));
            json_object_set_new(x, "message", fn_json_text(j->errors[i].message));
            json_object_set_new(x, "resolution",
                                json_string(fn_resolution_name(j->errors[i].resolution)));
            json_array_append_new(errs, x);
        }
        json_object_set_new(o, "errors", errs);
    } else {
        json_object_set_new(o, "n_errors", json_integer((json_int_t)j->n_errors));
        json_object_set_new(o, "parent", json_integer(j->parent));
        json_object_set_new(o, "retry_only", json_boolean(j->retry_only));
        json_object_set_new(o, "shard_of", json_integer(j->shard_of));
        json_object_set_new(o, "shards", json_integer(j->shards));
        json_object_set_new(o, "fail_reason",
                            j->fail_reason ? fn_json_text(j->fail_reason) : json_null());
    }
    return o;
}

int fn_job_inspect_json(fn_engine *e, fn_job_id id, char **json)
{
    *json = NULL;
    fn_job_info *j;
    int code = fn_job_inspect(e, id, &j);
    if (code) return code;
    json_t *o = job_json(j, 1);
    *json = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    fn_job_info_free(j);
    return *json ? 0 : fn_eng_fail(FN_ERR_NOMEM, "out of memory");
}

int fn_job_list_json(fn_engine *e, int state, size_t limit, char **json)
{
    *json = NULL;
    fn_job_info **list;
    size_t n;
    int code = fn_job_list(e, state, limit, &list, &n);
    if (code) return code;
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, job_json(list[i], 0));
        fn_job_info_free(list[i]);
    }
    free(list);
    *json = json_dumps(a, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(a);
    return *json ? 0 : fn_eng_fail(FN_ERR_NOMEM, "out of memory");
}

void fn_free(void *p)
{
    free(p);
}

int fn_job_list(fn_engine *e, int state, size_t limit, fn_job_info ***out, size_t *n)
{
    pthread_mutex_lock(&e->api_mu);
    int code = fn_js_list(e->store, state, limit, out, n);
    if (code) fn_eng_store_fail(e->store, code, "listing jobs");
    pthread_mutex_unlock(&e->api_mu);
    return code;
}

int fn_job_cancel(fn_engine *e, fn_job_id id)
{
    /* Local first: a running job here stops at its next check without waiting for the DB. */
    int local = 0;
    pthread_mutex_lock(&e->mu);
    for (size_t i = 0; i < e->n_running; i++)
        if (e->running[i]->id == id || e->running[i]->shard_of == id) { /* a split job's shards */
            atomic_store(&e->running[i]->stop, FN_STOP_CANCEL);
            local |= e->running[i]->id == id;
        }
    pthread_mutex_unlock(&e->mu);

    pthread_mutex_lock(&e->api_mu);
    int outcome = 0;
    fn_js_settled settled;
    int code = fn_js_cancel_ex(e->store, id, fn_wall_ms(), &outcome, &settled);
    /* The split job that was settled: this one, or the one this queued shard is part of. */
    int64_t split_of = settled.touched && outcome == 2 ? id : 0;
    if (!code && settled.touched && !split_of) fn_js_shard_of(e->store, id, &split_of);
    if (code == FN_ERR_NOT_FOUND)
        fn_eng_fail(code, "job %lld: no such job in %s", (long long)id, e->db_path);
    else if (code)
        fn_eng_store_fail(e->store, code, "job %lld: cancelling it", (long long)id);
    pthread_mutex_unlock(&e->api_mu);
    if (code) return code;
    /* A split job whose shards were all queued (or the last queued shard of one) ended now. */
    if (settled.touched) fn_eng_settled(e, split_of, &settled);
    /* The job may have seen our local request and ended cancelled before our transaction ran:
     * that is this call's success, not "already finished". */
    if (outcome == 4 && local) return 0;
    if (outcome >= 3)
        return fn_eng_fail(FN_ERR_STATE, "job %lld: already finished; nothing to cancel",
                           (long long)id);
    if (outcome == 1) {
        fn_joblog_file(e, id, "", "cancel (while queued)");
        fn_evq_push_state(&e->ev, id, FN_JOB_CANCELLED);
    }
    return 0;
}

/* A selection as the store takes it: two JSON arrays of strings, NULL when empty; the items as
 * the upper-case hex of their bytes, since an item (a path) need not be UTF-8 and JSON text must.
 */
static json_t *hex_string(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *h = malloc(2 * n + 1);
    if (!h) return NULL;
    for (size_t i = 0; i < n; i++) {
        h[2 * i] = hex[(unsigned char)s[i] >> 4];
        h[2 * i + 1] = hex[(unsigned char)s[i] & 15];
    }
    h[2 * n] = '\0';
    json_t *j = json_string(h);
    free(h);
    return j;
}

static int selection_json(const fn_error_selection *sel, char **codes, char **items)
{
    *codes = *items = NULL;
    if (!sel) return 0;
    const char *const *lists[2] = {sel->codes, sel->items};
    size_t counts[2] = {sel->n_codes, sel->n_items};
    char **outs[2] = {codes, items};
    for (int l = 0; l < 2; l++) {
        if (!counts[l]) continue;
        json_t *a = json_array();
        for (size_t i = 0; a && i < counts[l]; i++)
            if (lists[l][i])
                json_array_append_new(a, l ? hex_string(lists[l][i]) : json_string(lists[l][i]));
        *outs[l] = a ? json_dumps(a, JSON_COMPACT) : NULL;
        json_decref(a);
        if (!*outs[l]) {
            free(*codes);
            *codes = NULL;
            return fn_eng_fail(FN_ERR_NOMEM, "out of memory");
        }
    }
    return 0;
}

/* Enqueues a follow-up of job `old` (resume or retry) in one transaction: the new job, the items
 * it reprocesses first (the selected errors' items), and for a resume the errors it carries over
 * as they are (those marked skip). */
static int follow_up(fn_engine *e, const fn_job_info *old, const char *checkpoint,
                     const char *progress, int retry, const fn_error_selection *sel,
                     fn_followup *out)
{
    char *codes = NULL, *items = NULL;
    int code = selection_json(retry ? sel : NULL, &codes, &items);
    if (code) return code;
    fn_enqueue_opts o = {old->type, old->payload, checkpoint, old->priority, -1, -1};
    pthread_mutex_lock(&e->api_mu);
    fn_store_tx *tx;
    char *filebuf = NULL;
    size_t filelen = 0;
    int64_t child = 0;
    fn_js_taken taken;
    memset(&taken, 0, sizeof taken);
    code = fn_store_begin(e->store, &tx);
    if (code) {
        fn_eng_store_fail(e->store, code, "job %lld: enqueueing its follow-up", (long long)old->id);
        goto unlock;
    }
    /* One live resume per job: two would redo the same items side by side. */
    if (!retry && (code = fn_js_live_child(e->store, old->id, &child)) == 0 && child)
        code = fn_eng_fail(FN_ERR_STATE,
                           "job %lld is already being resumed by job %lld; follow it with: "
                           "facenames jobs watch %lld",
                           (long long)old->id, (long long)child, (long long)child);
    else if (!code && (code = fn_js_take_items(e->store, old->id, 0, codes, items, &taken)))
        fn_eng_store_fail(e->store, code, "job %lld: reading its errors", (long long)old->id);
    else if (!code && retry && taken.matched == 0)
        code = fn_eng_fail(FN_ERR_NOT_FOUND,
                           "job %lld: the selection names none of its %zu error(s)%s",
                           (long long)old->id, old->n_errors,
                           old->n_errors && !sel ? " (every one is marked skip)" : "");
    if (!code) {
        char why[128];
        if (retry)
            snprintf(why, sizeof why, ", retries the items of %lld error(s) of job %lld",
                     (long long)taken.matched, (long long)old->id);
        else
            snprintf(why, sizeof why, ", resumes job %lld", (long long)old->id);
        code = insert_jobs(e, &o, 1, &out->id, old->id, progress, why, retry, &filebuf, &filelen);
    }
    if (!code && (code = fn_js_take_items(e->store, old->id, out->id, codes, items, &taken)))
        fn_eng_store_fail(e->store, code, "job %lld: storing the items to redo",
                          (long long)old->id);
    if (!code && !retry && (code = fn_js_copy_errors(e->store, old->id, out->id, (int)FN_RES_SKIP)))
        fn_eng_store_fail(e->store, code, "job %lld: copying its errors", (long long)old->id);
    if (code)
        fn_store_rollback(tx);
    else if ((code = fn_store_commit(tx)))
        fn_eng_store_fail(e->store, code, "job %lld: enqueueing its follow-up", (long long)old->id);
unlock:
    pthread_mutex_unlock(&e->api_mu);
    free(codes);
    free(items);
    if (!code) {
        out->pending = (size_t)taken.pending;
        out->retry = (size_t)taken.retry;
        out->skipped = (size_t)taken.skipped;
        out->left = (size_t)taken.left;
        out->items = (size_t)taken.items;
        fn_joblog_file_many(e, filebuf, filelen);
        fn_evq_push_queued_new(&e->ev, out->id);
        fn_eng_notify_enqueued(e, old->priority == FN_PRIO_INTERACTIVE &&
                                      fn_eng_handler(e, old->type) != NULL);
    }
    free(filebuf);
    return code;
}

/* The checkpoint a resume starts from: the old job's, without its "retry_next" (how far the old
 * job got through ITS retry items; the resume's are new, taken from the old job's errors, and
 * start at 0). Kept, it made a resume of a resume skip that many of its own retry items: lost.
 * NULL when there is none or out of memory (then the resume starts from the source's start and
 * redoes rather than loses). */
static char *resume_checkpoint(const char *ck)
{
    if (!ck) return NULL;
    json_t *j = json_loads(ck, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return strdup(ck);
    }
    json_object_del(j, "retry_next");
    char *out = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    return out;
}

int fn_job_resume_ex(fn_engine *e, fn_job_id id, fn_followup *out)
{
    fn_followup local;
    if (!out) out = &local;
    memset(out, 0, sizeof *out);
    fn_job_info *j;
    int code = fn_job_inspect(e, id, &j);
    if (code) return code;
    if (j->shard_of) {
        code = fn_eng_fail(FN_ERR_STATE,
                           "job %lld is a shard of job %lld; resume job %lld (it resumes its "
                           "shards)",
                           (long long)id, (long long)j->shard_of, (long long)j->shard_of);
    } else if (j->state == FN_JOB_QUEUED && j->started_at >= 0) {
        /* Recovered after a crash (or yielded): it continues from its checkpoint under its own
         * id as soon as a worker takes it; the caller runs or watches it. */
        out->id = id;
        out->continued = 1;
    } else if (j->state != FN_JOB_CANCELLED && j->state != FN_JOB_FAILED) {
        code = fn_eng_fail(FN_ERR_STATE,
                           "job %lld is %s; only a cancelled or failed job, or a queued one that "
                           "was interrupted, can be resumed%s",
                           (long long)id, fn_job_state_name(j->state),
                           j->state == FN_JOB_RUNNING ? " (it is running: jobs watch follows it)"
                                                      : "");
    } else {
        char *ck = resume_checkpoint(j->checkpoint);
        code = follow_up(e, j, ck, j->progress, 0, NULL, out);
        free(ck);
    }
    fn_job_info_free(j);
    return code;
}

int fn_job_resume(fn_engine *e, fn_job_id id, fn_job_id *new_id)
{
    fn_followup f;
    int code = fn_job_resume_ex(e, id, &f);
    if (!code && new_id) *new_id = f.id;
    return code;
}

int fn_job_retry_ex(fn_engine *e, fn_job_id id, const fn_error_selection *sel, fn_followup *out)
{
    fn_followup local;
    if (!out) out = &local;
    memset(out, 0, sizeof *out);
    fn_job_info *j;
    /* The job without its error list: the selection runs in SQL (100k errors stay cheap). */
    pthread_mutex_lock(&e->api_mu);
    int code = fn_js_get(e->store, id, 0, &j);
    if (code == FN_ERR_NOT_FOUND)
        fn_eng_fail(code, "job %lld: no such job in %s", (long long)id, e->db_path);
    else if (code)
        fn_eng_store_fail(e->store, code, "job %lld: reading it", (long long)id);
    pthread_mutex_unlock(&e->api_mu);
    if (code) return code;
    if (j->shard_of)
        code = fn_eng_fail(FN_ERR_STATE,
                           "job %lld is a shard of job %lld, which holds its errors; retry job "
                           "%lld",
                           (long long)id, (long long)j->shard_of, (long long)j->shard_of);
    else if (j->state == FN_JOB_QUEUED || j->state == FN_JOB_RUNNING)
        code = fn_eng_fail(FN_ERR_STATE,
                           "job %lld is still %s; retry its failed items once it has ended",
                           (long long)id, fn_job_state_name(j->state));
    else
        code =
            follow_up(e, j, NULL, NULL, 1, sel && (sel->n_codes || sel->n_items) ? sel : NULL, out);
    fn_job_info_free(j);
    return code;
}

int fn_job_retry(fn_engine *e, fn_job_id id, const fn_retry_selection *sel, fn_job_id *new_id)
{
    fn_followup f;
    int code = fn_job_retry_ex(e, id, sel, &f);
    if (!code && new_id) *new_id = f.id;
    return code;
}

int fn_job_errors_resolve(fn_engine *e, fn_job_id id, const fn_error_selection *sel,
                          fn_resolution res, const char *who, size_t *changed)
{
    size_t local;
    if (!changed) changed = &local;
    *changed = 0;
    if ((unsigned)res > FN_RES_RETRY)
        return fn_eng_fail(FN_ERR_INVALID, "job %lld: %d is not a resolution", (long long)id,
                           (int)res);
    char *codes = NULL, *items = NULL;
    int code = selection_json(sel, &codes, &items);
    if (code) return code;
    size_t matched = 0;
    pthread_mutex_lock(&e->api_mu);
    int st = 0;
    fn_store_tx *tx;
    code = fn_js_state(e->store, id, &st);
    if (code == FN_ERR_NOT_FOUND)
        fn_eng_fail(code, "job %lld: no such job in %s", (long long)id, e->db_path);
    else if (code)
        fn_eng_store_fail(e->store, code, "job %lld: reading it", (long long)id);
    else if ((code = fn_store_begin(e->store, &tx)))
        fn_eng_store_fail(e->store, code, "job %lld: recording decisions", (long long)id);
    char line[200];
    line[0] = '\0';
    if (!code) {
        int64_t now = fn_wall_ms();
        code = fn_js_errors_resolve(e->store, id, codes, items, (int)res, who ? who : "api", now,
                                    &matched, changed);
        if (!code && *changed) {
            snprintf(line, sizeof line, "errors: %zu marked %s by %s", *changed,
                     fn_resolution_name(res), who ? who : "api");
            code = fn_js_log_add(e->store, id, now, line);
        }
        if (code) {
            line[0] = '\0';
            fn_eng_store_fail(e->store, code, "job %lld: recording decisions", (long long)id);
            fn_store_rollback(tx);
        } else if ((code = fn_store_commit(tx))) {
            fn_eng_store_fail(e->store, code, "job %lld: recording decisions", (long long)id);
        }
    }
    pthread_mutex_unlock(&e->api_mu);
    free(codes);
    free(items);
    if (!code && !matched)
        code = fn_eng_fail(FN_ERR_NOT_FOUND, "job %lld: the selection names none of its errors",
                           (long long)id);
    if (!code && line[0]) fn_joblog_file(e, id, "", line);
    return code;
}

int fn_job_errors_json(fn_engine *e, fn_job_id id, const fn_error_selection *sel, char **json)
{
    *json = NULL;
    char *codes = NULL, *items = NULL;
    int code = selection_json(sel, &codes, &items);
    if (code) return code;
    pthread_mutex_lock(&e->api_mu);
    int st = 0;
    code = fn_js_state(e->store, id, &st);
    if (code == FN_ERR_NOT_FOUND)
        fn_eng_fail(code, "job %lld: no such job in %s", (long long)id, e->db_path);
    else if (code || (code = fn_js_errors_json(e->store, id, codes, items, json)))
        fn_eng_store_fail(e->store, code, "job %lld: reading its errors", (long long)id);
    pthread_mutex_unlock(&e->api_mu);
    free(codes);
    free(items);
    return code;
}

void fn_job_errors_by_code(const fn_job_info *job,
                           void (*fn)(const char *code, size_t n, void *arg), void *arg)
{
    for (size_t i = 0; i < job->n_errors; i++) {
        int seen = 0;
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(job->errors[k].code, job->errors[i].code) == 0;
        if (seen) continue;
        size_t n = 0;
        for (size_t k = i; k < job->n_errors; k++)
            n += strcmp(job->errors[k].code, job->errors[i].code) == 0;
        fn(job->errors[i].code, n, arg);
    }
}

int fn_job_summary(fn_engine *e, const fn_job_info *job, char **text)
{
    *text = NULL;
    const fn_handler_entry *h = job ? fn_eng_handler(e, job->type) : NULL;
    if (!h || !h->h.summary)
        return fn_eng_fail(FN_ERR_NOT_FOUND, "job type %s has no summary here",
                           job ? job->type : "?");
    *text = h->h.summary(job, h->h.user);
    return *text ? 0 : fn_eng_fail(FN_ERR_NOMEM, "out of memory");
}

const char *fn_engine_rate_unit(fn_engine *e, const char *type)
{
    const fn_handler_entry *h = type ? fn_eng_handler(e, type) : NULL;
    return h && h->h.rate_unit ? h->h.rate_unit : "items";
}

int fn_job_wait(fn_engine *e, fn_job_id id, int timeout_ms, fn_job_state *state)
{
    uint64_t start = fn_mono_ns();
    long sleep_us = 200;
    for (;;) {
        int st = -1;
        pthread_mutex_lock(&e->api_mu);
        int code = fn_js_state(e->store, id, &st);
        if (code == FN_ERR_NOT_FOUND)
            fn_eng_fail(code, "job %lld: no such job in %s", (long long)id, e->db_path);
        else if (code)
            fn_eng_store_fail(e->store, code, "job %lld: reading its state", (long long)id);
        pthread_mutex_unlock(&e->api_mu);
        if (code) return code;
        if (st == FN_JOB_CANCELLED || st == FN_JOB_COMPLETED || st == FN_JOB_FAILED) {
            if (state) *state = (fn_job_state)st;
            return 0;
        }
        if (timeout_ms >= 0 && fn_mono_ns() - start >= (uint64_t)timeout_ms * 1000000u)
            return fn_eng_fail(FN_ERR_BUSY, "job %lld: still %s after %d ms", (long long)id,
                               fn_job_state_name((fn_job_state)st), timeout_ms);
        struct timespec ts = {0, sleep_us * 1000};
        nanosleep(&ts, NULL);
        if (sleep_us < 20000) sleep_us *= 2;
    }
}

int fn_job_log(fn_engine *e, fn_job_id id, char **text)
{
    pthread_mutex_lock(&e->api_mu);
    int st;
    int code = fn_js_state(e->store, id, &st);
    if (!code) code = fn_js_log_text(e->store, id, text);
    if (code == FN_ERR_NOT_FOUND)
        fn_eng_fail(code, "job %lld: no such job in %s", (long long)id, e->db_path);
    else if (code)
        fn_eng_store_fail(e->store, code, "job %lld: reading its log", (long long)id);
    pthread_mutex_unlock(&e->api_mu);
    return code;
}
