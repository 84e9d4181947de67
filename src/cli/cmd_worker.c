/* cmd_worker.c: `facenames worker [--threads N] [--host ID] [--until-idle]`: runs the library's
 * queued jobs (those enqueued with --detach, by the app, or recovered from a crashed process) until
 * stopped, or until nothing runnable is left. Several workers, on one machine or many sharing a
 * library on a server, share its jobs; --host names this one's machine in the job owners
 * (worker.host).
 *
 * It prints one line per job start and end. Ctrl-C (or SIGTERM) stops it gracefully: running jobs
 * checkpoint at their next batch and go back to the queue (fn_engine_close asks them to yield), so
 * the next worker continues them under the same id; a second Ctrl-C stops at once (still safe:
 * the database is transactional, and the next open recovers the jobs). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "util/libaddr.h"
#include "util/clock.h"
#include "util/pathenc.h"

static const char worker_usage[] =
    "usage: facenames worker [--threads N] [--host ID] [--until-idle]\n"
    "\n"
    "Runs queued jobs (enqueued with --detach, or by the app) in this process.\n"
    "\n"
    "  --threads N    worker threads (default and cap: workers.cpu_max)\n"
    "  --host ID      this machine's id in the job owners (default: worker.host, else the\n"
    "                 hostname); give each machine sharing a library its own\n"
    "  --until-idle   exit when no job is left that this worker runs, instead of waiting\n"
    "\n"
    "Ctrl-C stops gracefully: running jobs go back to the queue after their current batch\n"
    "and continue later under the same id. Twice: stop at once (safe; recovered on next open).\n";

/* One line per start/end of a job this process runs; *running counts the jobs running here and
 * *activity is set when anything happened. */
static void report_events(cli_ctx *ctx, fn_engine *e, int *finished, int *failed, int *running,
                          int *activity)
{
    fn_event evs[64];
    size_t n;
    do {
        n = 0;
        if (fn_engine_events_drain(e, evs, 64, &n) < 0) return;
        for (size_t i = 0; i < n; i++) {
            *activity = 1;
            if (evs[i].kind == FN_EVENT_STATE) {
                fn_job_info *j = NULL;
                if (fn_job_inspect(e, evs[i].job, &j) == 0) {
                    char d[32] = "";
                    if (j->started_at >= 0 && j->finished_at >= 0)
                        cli_fmt_elapsed((double)(j->finished_at - j->started_at) / 1000.0, d,
                                        sizeof d);
                    int final = evs[i].state != FN_JOB_RUNNING && evs[i].state != FN_JOB_QUEUED;
                    cli_term_lock();
                    fprintf(stdout, "job %lld %s: %s%s%s", (long long)j->id, j->type,
                            fn_job_state_name(evs[i].state), final && *d ? " in " : "",
                            final && *d ? d : "");
                    if (final && j->n_errors) fprintf(stdout, ", %zu item errors", j->n_errors);
                    if (evs[i].state == FN_JOB_FAILED && j->fail_reason)
                        fprintf(stdout, ": %s", fn_term_str(j->fail_reason));
                    fputc('\n', stdout);
                    fflush(stdout);
                    cli_term_unlock();
                    if (final) (*finished)++;
                    if (evs[i].state == FN_JOB_RUNNING)
                        (*running)++;
                    else if (*running > 0)
                        (*running)--;
                    if (evs[i].state == FN_JOB_FAILED) (*failed)++;
                    fn_job_info_free(j);
                }
            }
            fn_event_clear(&evs[i]);
        }
    } while (n == 64);
}

int cmd_worker(cli_ctx *ctx, int argc, char **argv)
{
    long long threads = -1;
    int until_idle = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (cli_is_help(argv[i])) {
            fputs(worker_usage, stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--until-idle") == 0) {
            until_idle = 1;
        } else if ((r = cli_opt_value(ctx, "worker", argv, argc, &i, "--host", &v)) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            char err[512];
            if (fn_config_set(&ctx->cfg, "worker.host", v, err, sizeof err) < 0)
                return cli_usage_error(ctx, "worker", "--host: %s", err);
        } else if ((r = cli_opt_value(ctx, "worker", argv, argc, &i, "--threads", &v)) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            if (cli_parse_ll(v, 1, 4096, &threads) < 0)
                return cli_usage_error(ctx, "worker",
                                       "--threads '%s': expected a number from 1 "
                                       "to 4096",
                                       v);
        } else {
            return cli_usage_error(ctx, "worker", "unexpected argument '%s'", argv[i]);
        }
    }
    if (threads > ctx->cfg.workers_cpu_max) {
        cli_term_lock();
        fprintf(stderr, "%s: worker: --threads %lld is above workers.cpu_max; using %d\n",
                ctx->prog, threads, ctx->cfg.workers_cpu_max);
        cli_term_unlock();
        threads = ctx->cfg.workers_cpu_max;
    }
    fn_engine *e;
    if (cli_open_engine(ctx, &e) != 0) return CLI_EXIT_FAILURE;
    int nthreads = threads < 0 ? ctx->cfg.workers_cpu_max : (int)threads;
    /* the handler goes in before any worker starts, so an early Ctrl-C stops gracefully */
    int sigfd = cli_signals_install();
    if (sigfd < 0) {
        fn_engine_close(e);
        return cli_error(ctx, "cannot install the Ctrl-C handler: %s", strerror(errno));
    }
    int rc = fn_engine_start(e, nthreads);
    if (rc < 0) {
        cli_engine_error(ctx, e, rc, "starting workers");
        fn_engine_close(e);
        cli_signals_restore();
        return CLI_EXIT_FAILURE;
    }
    char shown[4096];
    fn_libaddr_display(ctx->library_dir, shown, sizeof shown);
    cli_term_lock();
    fprintf(stderr, "worker: %s, %d thread(s)%s; Ctrl-C to stop\n", shown, nthreads,
            until_idle ? ", until idle" : "");
    cli_term_unlock();

    /* Idle (for --until-idle): no job runs here and either none is queued, or the queued ones
     * have not been picked up for a while although every worker here is free: they are jobs
     * this build has no handler for, or jobs another process holds back. A runnable job is
     * claimed by a free worker within milliseconds, so the wait only costs time at the end. */
    int finished = 0, failed = 0, running = 0, worker_error = 0;
    int efd = fn_engine_events_fd(e);
    uint64_t last_activity = fn_mono_ns(), last_check = 0;
    for (;;) {
        struct pollfd pfd[2] = {{sigfd, POLLIN, 0}, {efd, POLLIN, 0}};
        poll(pfd, 2, 200);
        int activity = 0;
        report_events(ctx, e, &finished, &failed, &running, &activity);
        uint64_t now = fn_mono_ns();
        if (activity) last_activity = now;
        if (cli_signals_count() > 0) {
            cli_signals_arm_hard_exit("\nworker: stopped at once; interrupted jobs are recovered "
                                      "when the library is next opened\n");
            cli_term_lock();
            fprintf(stderr, "worker: stopping; running jobs go back to the queue after their "
                            "current batch (Ctrl-C again: stop at once)\n");
            cli_term_unlock();
            break;
        }
        if (until_idle && running == 0 && now - last_check >= 250000000u) {
            last_check = now;
            fn_job_info **list = NULL;
            size_t n = 0;
            rc = fn_job_list(e, FN_JOB_QUEUED, 1, &list, &n);
            for (size_t i = 0; i < n; i++)
                fn_job_info_free(list[i]);
            free(list);
            if (rc < 0) {
                cli_engine_error(ctx, e, rc, "listing queued jobs");
                worker_error = 1;
                break;
            }
            if (n == 0 && now - last_activity >= 300000000u) break;
            if (n > 0 && now - last_activity >= 2000000000u) {
                cli_term_lock();
                fprintf(stderr,
                        "worker: queued jobs remain that this worker does not run (see: "
                        "%s jobs list --state queued)\n",
                        ctx->prog);
                cli_term_unlock();
                break;
            }
        }
    }
    /* close asks running jobs to yield (checkpoint, back to queued) and joins the workers */
    fn_engine_close(e);
    /* the final state events were queued during close; they are gone with the engine, which is
     * fine: the jobs were yielded, not finished */
    cli_signals_restore();
    cli_term_lock();
    fprintf(stderr, "worker: %d job(s) finished, %d failed\n", finished, failed);
    cli_term_unlock();
    /* a failed job is the job's business (jobs show says why), not the worker's */
    return worker_error ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}
