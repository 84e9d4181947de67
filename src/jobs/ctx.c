/* ctx.c: what a running handler sees of its job: payload, checkpoint, counters, histograms,
 * errors, audit actions, stop requests, and the batch commit.
 *
 * What must stay true: counter and histogram updates are lock-free and allocation-free (relaxed
 * atomics, so parallel_for helpers may add too) and a stop check is one atomic load, so the
 * per-item cost stays under 100 ns; fn_job_commit writes the handler's rows, the checkpoint, the
 * progress, the errors and the audit entries in ONE transaction (docs/design.md decision 1), so
 * after a crash an item is either committed with its checkpoint or redone. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/internal.h"
#include "store/jobs_store.h"
#include "util/clock.h"
#include "util/pathenc_json.h"
#include "util/log.h"

fn_job_id fn_job_id_of(const fn_job_ctx *ctx)
{
    return ctx->id;
}

fn_engine *fn_job_engine(const fn_job_ctx *ctx)
{
    return ctx->e;
}

const char *fn_job_type(const fn_job_ctx *ctx)
{
    return ctx->type;
}

const char *fn_job_payload(const fn_job_ctx *ctx)
{
    return ctx->payload ? ctx->payload : "{}";
}

const char *fn_job_checkpoint(const fn_job_ctx *ctx)
{
    return ctx->checkpoint;
}

const fn_job_error *fn_job_inherited_errors(const fn_job_ctx *ctx, size_t *n)
{
    *n = ctx->n_inherited;
    return ctx->inherited;
}

int fn_job_is_retry(const fn_job_ctx *ctx)
{
    return ctx->retry_only;
}

size_t fn_job_retry_count(fn_job_ctx *ctx)
{
    if (ctx->n_retry_items < 0) {
        size_t n = 0;
        if (fn_js_items_count(ctx->w->store, ctx->id, &n) != 0) {
            FN_LOG(FN_LOG_WARN, "job %lld: %s", (long long)ctx->id, fn_store_errmsg(ctx->w->store));
            return 0; /* not cached: asked again next time */
        }
        ctx->n_retry_items = (int64_t)n;
    }
    return (size_t)ctx->n_retry_items;
}

int fn_job_retry_items(fn_job_ctx *ctx, size_t offset, size_t cap, char ***items, size_t *n)
{
    /* The next page in sequence continues after the last seq read; any other offset (a resumed
     * run's first page) is found by counting. */
    int64_t after = offset == ctx->retry_page_end ? ctx->retry_page_seq : -1;
    int code = fn_js_items_page(ctx->w->store, ctx->id, offset, &after, cap, items, n);
    if (!code) {
        ctx->retry_page_end = offset + *n;
        ctx->retry_page_seq = after;
    }
    if (code)
        return fn_eng_store_fail(ctx->w->store, code, "job %lld: reading its retry items",
                                 (long long)ctx->id);
    return 0;
}

int fn_job_reader(fn_job_ctx *ctx, fn_store **out)
{
    fn_worker *w = ctx->w;
    if (!w->reader) {
        char err[512];
        int code = fn_store_open(ctx->e->db_path, ctx->e->cfg.db_busy_timeout_ms, &w->reader, err,
                                 sizeof err);
        if (code)
            return fn_eng_fail(code, "job %lld: opening the library: %s", (long long)ctx->id, err);
    }
    *out = w->reader;
    return 0;
}

/* ---- counters and histograms ------------------------------------------------------------------
 */

void fn_ctx_restore(fn_job_ctx *ctx, const char *progress)
{
    ctx->run_started_at = fn_wall_ms();
    if (!progress) return;
    json_error_t jerr;
    json_t *j = json_loads(progress, 0, &jerr);
    if (j && json_is_object(j))
        ctx->restored = j;
    else
        json_decref(j);
    /* Declare the stored counters now so a continued job reports them even before its handler
     * declares them again. */
    json_t *cs = ctx->restored ? json_object_get((json_t *)ctx->restored, "counters") : NULL;
    const char *k;
    json_t *v;
    json_object_foreach(cs, k, v)
    {
        if (ctx->n_counters >= FN_MAX_COUNTERS || strlen(k) >= FN_NAME_MAX) continue;
        fn_counter *c = &ctx->counters[ctx->n_counters++];
        snprintf(c->name, sizeof c->name, "%s", k);
        atomic_store(&c->v, json_integer_value(v));
    }
    atomic_store_explicit(&ctx->pub_counters, ctx->n_counters, memory_order_release);
}

int fn_job_counter(fn_job_ctx *ctx, const char *name)
{
    for (int i = 0; i < ctx->n_counters; i++)
        if (strcmp(ctx->counters[i].name, name) == 0) return i;
    if (ctx->n_counters >= FN_MAX_COUNTERS || strlen(name) >= FN_NAME_MAX)
        return fn_eng_fail(FN_ERR_INVALID,
                           "job %lld: counter \"%s\": at most %d counters of up to %d characters",
                           (long long)ctx->id, name, FN_MAX_COUNTERS, FN_NAME_MAX - 1);
    fn_counter *c = &ctx->counters[ctx->n_counters];
    snprintf(c->name, sizeof c->name, "%s", name);
    atomic_store(&c->v, 0);
    /* Published after its name is written: the monitor's live snapshots read up to here. */
    atomic_store_explicit(&ctx->pub_counters, ctx->n_counters + 1, memory_order_release);
    return ctx->n_counters++;
}

void fn_job_add(fn_job_ctx *ctx, int counter, int64_t delta)
{
    if ((unsigned)counter < (unsigned)ctx->n_counters)
        atomic_fetch_add_explicit(&ctx->counters[counter].v, delta, memory_order_relaxed);
}

void fn_job_set(fn_job_ctx *ctx, int counter, int64_t value)
{
    if ((unsigned)counter < (unsigned)ctx->n_counters)
        atomic_store_explicit(&ctx->counters[counter].v, value, memory_order_relaxed);
}

int64_t fn_job_get(const fn_job_ctx *ctx, int counter)
{
    if ((unsigned)counter >= (unsigned)ctx->n_counters) return 0;
    return atomic_load_explicit(&((fn_job_ctx *)ctx)->counters[counter].v, memory_order_relaxed);
}

int fn_job_histogram(fn_job_ctx *ctx, const char *name, const double *bounds, size_t n_bounds)
{
    for (int i = 0; i < ctx->n_hists; i++)
        if (strcmp(ctx->hists[i].name, name) == 0) return i;
    if (ctx->n_hists >= FN_MAX_HISTOGRAMS || strlen(name) >= FN_NAME_MAX ||
        n_bounds > FN_MAX_BOUNDS)
        return fn_eng_fail(FN_ERR_INVALID,
                           "job %lld: histogram \"%s\": at most %d histograms of up to %d bounds",
                           (long long)ctx->id, name, FN_MAX_HISTOGRAMS, FN_MAX_BOUNDS);
    for (size_t i = 1; i < n_bounds; i++)
        if (!(bounds[i] > bounds[i - 1]))
            return fn_eng_fail(FN_ERR_INVALID, "job %lld: histogram \"%s\": bounds must ascend",
                               (long long)ctx->id, name);
    fn_histogram *h = &ctx->hists[ctx->n_hists];
    snprintf(h->name, sizeof h->name, "%s", name);
    h->n_bounds = n_bounds;
    memcpy(h->bounds, bounds, n_bounds * sizeof *bounds);
    for (size_t i = 0; i <= n_bounds; i++)
        atomic_store(&h->counts[i], 0);
    /* Continue the stored counts when the bounds are the same. */
    json_t *hs = ctx->restored ? json_object_get((json_t *)ctx->restored, "histograms") : NULL;
    json_t *old = json_object_get(hs, name);
    json_t *ob = json_object_get(old, "bounds"), *oc = json_object_get(old, "counts");
    if (json_array_size(ob) == n_bounds && json_array_size(oc) == n_bounds + 1) {
        int same = 1;
        for (size_t i = 0; i < n_bounds; i++)
            if (json_real_value(json_array_get(ob, i)) != bounds[i] &&
                json_number_value(json_array_get(ob, i)) != bounds[i])
                same = 0;
        if (same)
            for (size_t i = 0; i <= n_bounds; i++)
                atomic_store(&h->counts[i], json_integer_value(json_array_get(oc, i)));
    }
    atomic_store_explicit(&ctx->pub_hists, ctx->n_hists + 1, memory_order_release);
    return ctx->n_hists++;
}

void fn_job_observe(fn_job_ctx *ctx, int histogram, double value)
{
    if ((unsigned)histogram >= (unsigned)ctx->n_hists) return;
    fn_histogram *h = &ctx->hists[histogram];
    /* Binary search for the first bound >= value; values above every bound go to overflow. */
    size_t lo = 0, hi = h->n_bounds;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (value <= h->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&h->counts[lo], 1, memory_order_relaxed);
}

int64_t fn_ctx_items(fn_job_ctx *ctx)
{
    /* The throughput in the lifecycle log counts "items", else the first "*_done" counter, else
     * the first counter. */
    int pick = -1;
    for (int i = 0; i < ctx->n_counters && pick < 0; i++)
        if (strcmp(ctx->counters[i].name, "items") == 0) pick = i;
    for (int i = 0; i < ctx->n_counters && pick < 0; i++) {
        size_t l = strlen(ctx->counters[i].name);
        if (l >= 5 && strcmp(ctx->counters[i].name + l - 5, "_done") == 0) pick = i;
    }
    if (pick < 0 && ctx->n_counters > 0) pick = 0;
    return pick < 0 ? 0 : fn_job_get(ctx, pick);
}

char *fn_ctx_progress_json(fn_job_ctx *ctx)
{
    json_t *root = json_object();
    json_t *cs = json_object();
    json_t *hs = json_object();
    for (int i = 0; i < ctx->n_counters; i++)
        json_object_set_new(cs, ctx->counters[i].name, json_integer(fn_job_get(ctx, i)));
    for (int i = 0; i < ctx->n_hists; i++) {
        fn_histogram *h = &ctx->hists[i];
        json_t *b = json_array(), *c = json_array();
        for (size_t k = 0; k < h->n_bounds; k++)
            json_array_append_new(b, json_real(h->bounds[k]));
        for (size_t k = 0; k <= h->n_bounds; k++)
            json_array_append_new(
                c, json_integer(atomic_load_explicit(&h->counts[k], memory_order_relaxed)));
        json_object_set_new(hs, h->name, json_pack("{s:o,s:o}", "bounds", b, "counts", c));
    }
    json_object_set_new(root, "counters", cs);
    json_object_set_new(root, "histograms", hs);
    /* A continued run (resumed, or recovered) carries the totals of the whole logical job; what
     * it counted at its start lets a summary say what this run did, and at what rate. */
    json_t *base = ctx->restored ? json_object_get((json_t *)ctx->restored, "counters") : NULL;
    if (json_object_size(base))
        json_object_set_new(root, "run",
                            json_pack("{s:I,s:O}", "started_at", (json_int_t)ctx->run_started_at,
                                      "counters_at_start", base));
    char *s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(12));
    json_decref(root);
    return s;
}

/* ---- errors, audit, checkpoint, fail reason ---------------------------------------------------
 */

static char *dup_or(const char *s, const char *dflt)
{
    return strdup(s ? s : dflt);
}

int fn_job_error_add(fn_job_ctx *ctx, const char *item, const char *code, const char *message,
                     fn_resolution resolution)
{
    if (ctx->n_errs == ctx->cap_errs) {
        size_t cap = ctx->cap_errs ? ctx->cap_errs * 2 : 8;
        fn_pending_error *n = realloc(ctx->errs, cap * sizeof *n);
        if (!n) return fn_eng_fail(FN_ERR_NOMEM, "out of memory");
        ctx->errs = n;
        ctx->cap_errs = cap;
    }
    fn_pending_error *pe = &ctx->errs[ctx->n_errs];
    pe->item = dup_or(item, "");
    pe->code = dup_or(code, "unknown");
    pe->message = dup_or(message, "");
    pe->res = resolution;
    if (!pe->item || !pe->code || !pe->message) {
        free(pe->item);
        free(pe->code);
        free(pe->message);
        return fn_eng_fail(FN_ERR_NOMEM, "out of memory");
    }
    ctx->n_errs++;
    if ((unsigned)resolution < 3) ctx->errs_by_res[resolution]++;
    /* the path encoding (pathenc.h): an item or message that is not UTF-8 still makes an event */
    json_t *o = json_object();
    fn_json_set_path(o, "item", pe->item);
    json_object_set_new(o, "code", fn_json_text(pe->code));
    json_object_set_new(o, "message", fn_json_text(pe->message));
    json_object_set_new(o, "resolution", json_string(fn_resolution_name(resolution)));
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    /* A shard's errors are its split job's, and are told with the split job's row, as another
     * process's (the change feed: once, in order, before its final state, wherever the shard
     * ran). */
    if (ctx->shard_of) {
        free(s);
        return 0;
    }
    fn_evq_push(&ctx->e->ev, FN_EVENT_ERROR, ctx->id, FN_JOB_RUNNING, s);
    return 0;
}

int fn_job_audit(fn_job_ctx *ctx, const char *action, const char *detail_json)
{
    if (!action)
        return fn_eng_fail(FN_ERR_INVALID, "job %lld: an audit action needs a name",
                           (long long)ctx->id);
    if (ctx->n_audits == ctx->cap_audits) {
        size_t cap = ctx->cap_audits ? ctx->cap_audits * 2 : 8;
        fn_pending_audit *n = realloc(ctx->audits, cap * sizeof *n);
        if (!n) return fn_eng_fail(FN_ERR_NOMEM, "out of memory");
        ctx->audits = n;
        ctx->cap_audits = cap;
    }
    fn_pending_audit *a = &ctx->audits[ctx->n_audits];
    a->action = strdup(action);
    a->detail = detail_json ? strdup(detail_json) : NULL;
    if (!a->action || (detail_json && !a->detail)) {
        free(a->action);
        free(a->detail);
        return fn_eng_fail(FN_ERR_NOMEM, "out of memory");
    }
    ctx->n_audits++;
    json_error_t jerr;
    json_t *d = detail_json ? json_loads(detail_json, JSON_DECODE_ANY, &jerr) : json_null();
    if (!d) d = json_string(detail_json);
    json_t *o = json_pack("{s:s,s:o}", "action", action, "detail", d);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    fn_evq_push(&ctx->e->ev, FN_EVENT_AUDIT, ctx->id, FN_JOB_RUNNING, s);
    return 0;
}

int fn_job_set_checkpoint(fn_job_ctx *ctx, const char *json)
{
    char *c = json ? strdup(json) : NULL;
    if (json && !c) return fn_eng_fail(FN_ERR_NOMEM, "out of memory");
    free(ctx->next_checkpoint);
    ctx->next_checkpoint = c;
    ctx->checkpoint_set = 1;
    return 0;
}

void fn_job_fail_reason(fn_job_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->fail_reason, sizeof ctx->fail_reason, fmt, ap);
    va_end(ap);
}

fn_stop fn_job_should_stop(fn_job_ctx *ctx)
{
    return (fn_stop)atomic_load_explicit(&ctx->stop, memory_order_relaxed);
}

void fn_ctx_free_pending(fn_job_ctx *ctx)
{
    for (size_t i = 0; i < ctx->n_errs; i++) {
        free(ctx->errs[i].item);
        free(ctx->errs[i].code);
        free(ctx->errs[i].message);
    }
    ctx->n_errs = 0;
    for (size_t i = 0; i < ctx->n_audits; i++) {
        free(ctx->audits[i].action);
        free(ctx->audits[i].detail);
    }
    ctx->n_audits = 0;
}

/* ---- the batch commit --------------------------------------------------------------------------
 */

int fn_job_commit(fn_job_ctx *ctx, fn_commit_write_fn write, void *arg)
{
    fn_store *s = ctx->w->store;
    char *progress = fn_ctx_progress_json(ctx);
    if (!progress) return fn_eng_fail(FN_ERR_NOMEM, "out of memory");
    int64_t now = fn_wall_ms();
    fn_store_tx *tx;
    int code = fn_store_begin(s, &tx);
    if (code) {
        free(progress);
        ctx->failed_commits++;
        return fn_eng_store_fail(s, code, "job %lld: the batch was not committed (%s)",
                                 (long long)ctx->id, fn_errname(code));
    }
    if (write) {
        fn_store_set_msg(s, FN_ERR_DB, "writing the batch's rows",
                         "the job's write callback failed");
        code = write(tx, arg);
        if (code) {
            fn_store_rollback(tx);
            free(progress);
            ctx->failed_commits++;
            return fn_eng_store_fail(s, code, "job %lld: the batch was not committed (%s)",
                                     (long long)ctx->id, fn_errname(code));
        }
    }
    code = fn_js_save_progress(s, ctx->id, ctx->e->owner, ctx->next_checkpoint, ctx->checkpoint_set,
                               progress, now);
    for (size_t i = 0; !code && i < ctx->n_errs; i++)
        code = fn_js_add_error(s, fn_ctx_error_job(ctx), ctx->errs[i].item, ctx->errs[i].code,
                               ctx->errs[i].message, (int)ctx->errs[i].res);
    for (size_t i = 0; !code && i < ctx->n_audits; i++)
        code = fn_js_add_audit(s, ctx->id, now, ctx->audits[i].action, ctx->audits[i].detail);
    /* A shard's commit moves the progress of the job it is part of in the same transaction. */
    fn_js_settled settled;
    memset(&settled, 0, sizeof settled);
    if (!code && ctx->shard_of) code = fn_js_shard_settle(s, ctx->shard_of, now, &settled);
    if (code) {
        fn_store_rollback(tx);
    } else {
        code = fn_store_commit(tx);
    }
    if (code) fn_js_settled_clear(&settled);
    if (code) {
        free(progress);
        ctx->failed_commits++;
        return fn_eng_store_fail(s, code, "job %lld: the batch was not committed (%s)",
                                 (long long)ctx->id, fn_errname(code));
    }
    fn_ctx_free_pending(ctx);
    if (ctx->checkpoint_set) {
        free(ctx->checkpoint);
        ctx->checkpoint = ctx->next_checkpoint;
        ctx->next_checkpoint = NULL;
        ctx->checkpoint_set = 0;
    }
    ctx->commits++;
    atomic_store(&ctx->last_commit_ns, fn_mono_ns());
    fn_evq_progress(&ctx->e->ev, ctx, progress, 0);
    if (settled.touched) fn_eng_settled(ctx->e, ctx->shard_of, &settled);
    return 0;
}
