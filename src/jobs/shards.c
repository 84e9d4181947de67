/* shards.c: one big job, many workers: the engine's part of splitting a job into shards (the
 * driver decides where to split, src/jobs/driver.c; the rows are src/store/shards_store.c;
 * docs/job-types.md, "Shards", is the whole picture).
 *
 * A split commits in one transaction: the shards, queued like any job so that an idle worker of
 * any process or host claims them, and the split job's record (its checkpoint), after which that
 * job runs under no owner until its last shard ends. Each shard's commit and end update the split
 * job in their own transaction (fn_js_shard_settle), so its progress, errors and checkpoint are
 * its shards' together, and this file turns such an update into the events a consumer of the split
 * job expects (the job a person started). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/internal.h"
#include "util/clock.h"

int fn_job_split(fn_job_ctx *ctx, size_t n, char *const *payloads, char *const *checkpoints,
                 const char *split_checkpoint, const char *progress)
{
    fn_engine *e = ctx->e;
    fn_store *s = ctx->w->store;
    int64_t now = fn_wall_ms();
    int64_t *ids = calloc(n ? n : 1, sizeof *ids);
    if (!ids) return fn_eng_fail(FN_ERR_NOMEM, "out of memory");
    fn_store_tx *tx;
    int code = fn_store_begin(s, &tx);
    if (!code) code = fn_js_split(s, ctx->id, e->owner, (int)n, split_checkpoint, progress, now);
    for (size_t i = 0; !code && i < n; i++) {
        fn_js_new j = {.type = ctx->type,
                       .payload = payloads[i],
                       .checkpoint = checkpoints ? checkpoints[i] : NULL,
                       .priority = ctx->priority,
                       .gpu_slots = ctx->gpu_slots,
                       .mem_mb = ctx->mem_mb,
                       .shard_of = ctx->id};
        code = fn_js_insert(s, &j, now, &ids[i]);
    }
    char line[160];
    snprintf(line, sizeof line, "split: %zu shard(s), jobs %lld-%lld; it ends when they have", n,
             (long long)(n ? ids[0] : 0), (long long)(n ? ids[n - 1] : 0));
    if (!code) code = fn_js_log_add(s, ctx->id, now, line);
    if (code)
        fn_store_rollback(tx);
    else
        code = fn_store_commit(tx);
    if (code == FN_ERR_CANCELLED) {
        free(ids);
        return code; /* cancelled before it split: it ends cancelled, as a stop after a batch */
    }
    if (code) {
        free(ids);
        return fn_eng_store_fail(s, code, "job %lld: splitting it into shards (%s)",
                                 (long long)ctx->id, fn_errname(code));
    }
    ctx->sharded = 1;
    fn_joblog_file(e, ctx->id, ctx->type, line);
    /* From now on the split job moves with its shards' commits, wherever they run. */
    fn_evq_handoff(&e->ev, ctx->id);
    for (size_t i = 0; i < n; i++)
        fn_evq_push_queued_new(&e->ev, ids[i]);
    free(ids);
    pthread_mutex_lock(&e->mu);
    pthread_cond_broadcast(&e->work_cv); /* every idle worker here may take a shard */
    pthread_mutex_unlock(&e->mu);
    return 0;
}

void fn_eng_settled(fn_engine *e, int64_t parent, fn_js_settled *st)
{
    if (!st->touched) return;
    /* The split job's events come from its row through the change feed, as another process's
     * job (its item errors are only there, and must come before its final state; the settle
     * always puts it in the feed). Its progress is told now too, as the feed would read it (the
     * told-states table then reports it once, whichever path sees it first). */
    if (st->state == FN_JOB_RUNNING) {
        fn_js_change ch = {.id = parent, .owner = 0, .state = st->state, .progress = st->progress};
        fn_js_feed f;
        memset(&f, 0, sizeof f);
        f.jobs = &ch;
        f.n_jobs = 1;
        fn_evq_feed(&e->ev, -1, &f);
    } else {
        fn_joblog_file(e, parent, "", st->line);
    }
    fn_js_settled_clear(st);
}
