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
                       int64_t parent, const char *progress, const char *why, char **filebuf,
                       size_t *filelen)
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
                       parent};
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

int fn_enqueue_many(fn_engine *e, const fn_enqueue_opts *opts, size_t n, fn_job_id *ids)
{
    int interactive = 0;
    for (size_t i = 0; i < n; i++) {
        /* A bulk enqueue usually repeats one payload: check each distinct pointer once. */
        int code = i > 0 && opts[i].payload == opts[i - 1].payload &&
                           opts[i].type == opts[i - 1].type &&
                           opts[i].priority == opts[i - 1].priority
                       ? 0
                       : check_opts(&opts[i]);
        if (code) return code;
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
    if (code) {
        fn_eng_store_fail(e->store, code, "enqueueing %zu job(s)", n);
    } else {
        code = insert_jobs(e, opts, n, out, 0, NULL, NULL, &filebuf, &filelen);
        if (code) {
            fn_store_rollback(tx);
        } else if ((code = fn_store_commit(tx))) {
            fn_eng_store_fail(e->store, code, "enqueueing %zu job(s)", n);
        }
    }
    pthread_mutex_unlock(&e->api_mu);
    if (!code) {
        fn_joblog_file_many(e, filebuf, filelen);
        for (size_t i = 0; i < n; i++)
            fn_evq_push_state(&e->ev, out[i], FN_JOB_QUEUED);
        fn_eng_notify_enqueued(e, interactive);
    }
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

int fn_job_inspect_json(fn_engine *e, fn_job_id id, char **json)
{
    *json = NULL;
    fn_job_info *j;
    int code = fn_job_inspect(e, id, &j);
    if (code) return code;
    json_t *errs = json_array();
    for (size_t i = 0; i < j->n_errors; i++)
        json_array_append_new(errs,
                              json_pack("{s:s,s:s,s:s,s:s}", "item", j->errors[i].item, "code",
                                        j->errors[i].code, "message", j->errors[i].message,
                                        "resolution", fn_resolution_name(j->errors[i].resolution)));
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
    json_object_set_new(o, "errors", errs);
    *json = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    fn_job_info_free(j);
    return *json ? 0 : fn_eng_fail(FN_ERR_NOMEM, "out of memory");
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
        if (e->running[i]->id == id) {
            atomic_store(&e->running[i]->stop, FN_STOP_CANCEL);
            local = 1;
        }
    pthread_mutex_unlock(&e->mu);

    pthread_mutex_lock(&e->api_mu);
    int outcome = 0;
    int code = fn_js_cancel(e->store, id, fn_wall_ms(), &outcome);
    if (code == FN_ERR_NOT_FOUND)
        fn_eng_fail(code, "job %lld: no such job in %s", (long long)id, e->db_path);
    else if (code)
        fn_eng_store_fail(e->store, code, "job %lld: cancelling it", (long long)id);
    pthread_mutex_unlock(&e->api_mu);
    if (code) return code;
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

/* Enqueues a follow-up of job `old` (resume or retry) in one transaction. */
static int follow_up(fn_engine *e, const fn_job_info *old, const char *payload,
                     const char *checkpoint, const char *progress, int copy_errors, const char *why,
                     fn_job_id *new_id)
{
    fn_enqueue_opts o = {old->type, payload, checkpoint, old->priority, -1, -1};
    pthread_mutex_lock(&e->api_mu);
    fn_store_tx *tx;
    char *filebuf = NULL;
    size_t filelen = 0;
    int code = fn_store_begin(e->store, &tx);
    if (code) {
        fn_eng_store_fail(e->store, code, "job %lld: enqueueing its follow-up", (long long)old->id);
    } else {
        code = insert_jobs(e, &o, 1, new_id, old->id, progress, why, &filebuf, &filelen);
        if (!code && copy_errors && (code = fn_js_copy_errors(e->store, old->id, *new_id)))
            fn_eng_store_fail(e->store, code, "job %lld: copying its errors", (long long)old->id);
        if (code)
            fn_store_rollback(tx);
        else if ((code = fn_store_commit(tx)))
            fn_eng_store_fail(e->store, code, "job %lld: enqueueing its follow-up",
                              (long long)old->id);
    }
    pthread_mutex_unlock(&e->api_mu);
    if (!code) {
        fn_joblog_file_many(e, filebuf, filelen);
        fn_evq_push_state(&e->ev, *new_id, FN_JOB_QUEUED);
        fn_eng_notify_enqueued(e, old->priority == FN_PRIO_INTERACTIVE &&
                                      fn_eng_handler(e, old->type) != NULL);
    }
    free(filebuf);
    return code;
}

int fn_job_resume(fn_engine *e, fn_job_id id, fn_job_id *new_id)
{
    fn_job_info *j;
    int code = fn_job_inspect(e, id, &j);
    if (code) return code;
    if (j->state != FN_JOB_CANCELLED && j->state != FN_JOB_FAILED) {
        code = fn_eng_fail(FN_ERR_STATE,
                           "job %lld is %s; only a cancelled or failed job can be resumed",
                           (long long)id, fn_job_state_name(j->state));
    } else {
        char why[64];
        snprintf(why, sizeof why, ", resumes job %lld", (long long)id);
        code = follow_up(e, j, j->payload, j->checkpoint, j->progress, 1, why, new_id);
    }
    fn_job_info_free(j);
    return code;
}

static int selected(const fn_retry_selection *sel, const fn_job_error *err)
{
    if (!sel || (sel->n_codes == 0 && sel->n_items == 0)) return 1;
    for (size_t i = 0; i < sel->n_codes; i++)
        if (sel->codes[i] && strcmp(sel->codes[i], err->code) == 0) return 1;
    for (size_t i = 0; i < sel->n_items; i++)
        if (sel->items[i] && strcmp(sel->items[i], err->item) == 0) return 1;
    return 0;
}

int fn_job_retry(fn_engine *e, fn_job_id id, const fn_retry_selection *sel, fn_job_id *new_id)
{
    fn_job_info *j;
    int code = fn_job_inspect(e, id, &j);
    if (code) return code;
    json_error_t jerr;
    json_t *payload = json_loads(j->payload, 0, &jerr);
    if (!payload || !json_is_object(payload)) {
        json_decref(payload);
        payload = json_object();
    }
    json_t *items = json_array();
    for (size_t i = 0; i < j->n_errors; i++) {
        if (!selected(sel, &j->errors[i])) continue;
        /* One entry per item, in error order. */
        int dup = 0;
        size_t k;
        json_t *v;
        json_array_foreach(items, k, v) if (strcmp(json_string_value(v), j->errors[i].item) == 0)
            dup = 1;
        if (!dup) json_array_append_new(items, json_string(j->errors[i].item));
    }
    if (json_array_size(items) == 0) {
        code =
            fn_eng_fail(FN_ERR_NOT_FOUND, "job %lld: the selection names none of its %zu error(s)",
                        (long long)id, j->n_errors);
        json_decref(items);
    } else {
        json_object_set_new(payload, "retry_items", items);
        char *ptext = json_dumps(payload, JSON_COMPACT | JSON_PRESERVE_ORDER);
        char why[96];
        snprintf(why, sizeof why, ", retries %zu item(s) of job %lld", json_array_size(items),
                 (long long)id);
        code = ptext ? follow_up(e, j, ptext, NULL, NULL, 0, why, new_id)
                     : fn_eng_fail(FN_ERR_NOMEM, "out of memory");
        free(ptext);
    }
    json_decref(payload);
    fn_job_info_free(j);
    return code;
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
