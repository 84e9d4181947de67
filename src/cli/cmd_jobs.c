/* cmd_jobs.c: `facenames jobs list|show|cancel|resume|retry|watch|log`, the contract's controller
 * API on the command line.
 *
 * `--json` output is the engine's own (fn_job_inspect_json), so the command line, the Python
 * binding and the UI all see the contract's field names; the human output is a view of the same
 * fn_job_info. Commands that start work (resume, retry) run it in the foreground with live progress
 * unless given --detach, which only enqueues it for `facenames worker`. */
#include <ctype.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "util/clock.h"
#include "util/pathenc.h"

static const char jobs_usage[] =
    "usage: facenames jobs list [--state STATE] [--limit N] [--json]\n"
    "       facenames jobs show ID [--json]\n"
    "       facenames jobs cancel ID [--wait]\n"
    "       facenames jobs resume ID [--detach] [--json]\n"
    "       facenames jobs retry ID [--code CODE]... [--item REF]... [--detach] [--json]\n"
    "       facenames jobs errors ID [--code CODE]... [--item REF]... [--json]\n"
    "       facenames jobs skip ID [--code CODE]... [--item REF]...\n"
    "       facenames jobs watch [ID] [--json]\n"
    "       facenames jobs log ID\n"
    "\n"
    "  list     jobs, newest first; STATE is queued, running, cancelled, completed or failed\n"
    "           (a split job's shards are listed under it)\n"
    "  show     one job: times, progress, checkpoint, errors\n"
    "  cancel   a queued job ends at once; a running one stops after its current batch and\n"
    "           keeps its work (--wait: until it has stopped)\n"
    "  resume   a new job continuing a cancelled or failed one from its checkpoint, first\n"
    "           redoing its failed items (not those marked skip); a job interrupted by a\n"
    "           crash (queued again) continues under its own id\n"
    "  retry    a new job reprocessing only the failed items: those not marked skip, or\n"
    "           those with error code CODE, or item REF (both repeatable)\n"
    "  errors   the job's item errors with their resolution and its history\n"
    "  skip     marks the selected errors skip (recorded with who and when): resume and\n"
    "           retry leave them alone\n"
    "  watch    live progress of a job run elsewhere (a worker, the app) until it ends;\n"
    "           without ID the newest running (else queued) job. Ctrl-C stops watching only\n"
    "  log      the job's lifecycle log\n"
    "\n"
    "  --limit N  at most N jobs\n"
    "  --json     print the job as JSON with the contract's field names (list: an array)\n"
    "  --detach   only enqueue the new job; `facenames worker` runs it\n"
    "\n"
    "resume and retry run the new job here with live progress; Ctrl-C once cancels it after\n"
    "the current batch, twice stops at once. Exit codes: 0 completed, 1 error or failed,\n"
    "2 bad command line, 3 cancelled, 4 completed with item errors.\n";

#define CMD "jobs"

static int state_final(fn_job_state s)
{
    return s == FN_JOB_CANCELLED || s == FN_JOB_COMPLETED || s == FN_JOB_FAILED;
}

/* "1,234/5,000 files" from a progress object's main pair, "" when it has none. */
static void progress_pair(const char *progress, char *buf, size_t len)
{
    buf[0] = '\0';
    json_t *root = json_loads(progress ? progress : "", 0, NULL);
    json_t *c = json_object_get(root, "counters");
    const char *key, *found = NULL;
    json_t *v;
    char noun[96] = "";
    if (json_object_get(c, "files_done")) {
        found = "files_done";
    } else {
        json_object_foreach(c, key, v)
        {
            size_t n = strlen(key);
            if (!found && n > 5 && strcmp(key + n - 5, "_done") == 0) found = key;
        }
    }
    if (found) {
        snprintf(noun, sizeof noun, "%.*s", (int)(strlen(found) - 5), found);
        char tk[128], a[40], b[40];
        snprintf(tk, sizeof tk, "%s_total", noun);
        json_t *t = json_object_get(c, tk);
        int64_t done = json_integer_value(json_object_get(c, found));
        if (json_integer_value(t) > 0)
            snprintf(buf, len, "%s/%s %s", fn_fmt_count(done, a, sizeof a),
                     fn_fmt_count(json_integer_value(t), b, sizeof b), noun);
        else
            snprintf(buf, len, "%s %s", fn_fmt_count(done, a, sizeof a), noun);
    }
    json_decref(root);
}

/* Run time: start to finish, or to now while running; none while queued (a job that went back
 * to the queue, yielded or recovered, is not running). */
static double duration_s(const fn_job_info *j)
{
    if (j->started_at < 0 || j->state == FN_JOB_QUEUED) return -1;
    int64_t end = j->finished_at >= 0 ? j->finished_at : fn_wall_ms();
    return (double)(end - j->started_at) / 1000.0;
}

static void free_list(fn_job_info **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fn_job_info_free(list[i]);
    free(list);
}

/* The engine on the existing library for a command about job `id` (never creating a library
 * by looking); says so when there is no library. 0 or -1 (message printed). */
static int open_for_job(cli_ctx *ctx, const char *sub, fn_job_id id, int for_writing, fn_engine **e)
{
    int r = cli_open_existing(ctx, for_writing, e);
    if (r == CLI_NO_LIBRARY)
        cli_error(ctx, "jobs %s: job %lld: there is no library in %s", sub, (long long)id,
                  ctx->library_dir);
    return r == 0 ? 0 : -1;
}

/* A shard's place in its job: "shard 2/5" from its payload's range (its index counts from 0). */
static void shard_label(const fn_job_info *j, char *out, size_t len)
{
    json_t *p = json_loads(j->payload ? j->payload : "{}", 0, NULL);
    json_t *sh = json_object_get(p, "shard");
    snprintf(out, len, "  shard %lld/%lld",
             (long long)json_integer_value(json_object_get(sh, "index")) + 1,
             (long long)json_integer_value(json_object_get(sh, "of")));
    json_decref(p);
}

/* The listing's order: newest first, each shard right under the job it is part of (in range
 * order) when that job is listed too. order[] gets indexes into list. */
static void nest_shards(fn_job_info **list, size_t n, size_t *order)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int parent_listed = 0;
        for (size_t p = 0; list[i]->shard_of && p < n && !parent_listed; p++)
            parent_listed = list[p]->id == list[i]->shard_of;
        if (parent_listed) continue;
        order[k++] = i;
        if (list[i]->shards <= 0) continue;
        for (size_t c = n; c-- > 0;) /* oldest (first range) first */
            if (list[c]->shard_of == list[i]->id) order[k++] = c;
    }
}

static int jobs_list(cli_ctx *ctx, int argc, char **argv)
{
    int json = 0, state = -1;
    long long limit = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (cli_is_help(argv[i])) {
            fputs(jobs_usage, stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if ((r = cli_opt_value(ctx, CMD " list", argv, argc, &i, "--state", &v)) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            fn_job_state s;
            if (fn_job_state_parse(v, &s) < 0)
                return cli_usage_error(ctx, CMD " list",
                                       "--state '%s': expected queued, running, cancelled, "
                                       "completed or failed",
                                       v);
            state = (int)s;
        } else if ((r = cli_opt_value(ctx, CMD " list", argv, argc, &i, "--limit", &v)) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            if (cli_parse_ll(v, 1, 1000000000, &limit) < 0)
                return cli_usage_error(ctx, CMD " list", "--limit '%s': expected a positive number",
                                       v);
        } else {
            return cli_usage_error(ctx, CMD " list", "unexpected argument '%s'", argv[i]);
        }
    }
    fn_engine *e;
    int o = cli_open_existing(ctx, 0, &e);
    if (o < 0) return CLI_EXIT_FAILURE;
    if (o == CLI_NO_LIBRARY) {
        /* Nothing to list, and looking creates nothing. */
        if (json)
            fputs("[]\n", stdout);
        else
            printf("no %s%sjobs (there is no library in %s yet)\n",
                   state < 0 ? "" : fn_job_state_name((fn_job_state)state), state < 0 ? "" : " ",
                   ctx->library_dir);
        return CLI_EXIT_OK;
    }
    fn_job_info **list = NULL;
    size_t n = 0;
    int rc = fn_job_list(e, state, (size_t)limit, &list, &n);
    if (rc < 0) {
        cli_engine_error(ctx, e, rc, "jobs list");
        fn_engine_close(e);
        return CLI_EXIT_FAILURE;
    }
    int code = CLI_EXIT_OK;
    if (json) {
        fputs("[", stdout);
        for (size_t i = 0; i < n; i++) {
            char *text = NULL;
            rc = fn_job_inspect_json(e, list[i]->id, &text);
            if (rc < 0) {
                code = cli_engine_error(ctx, e, rc, "jobs list");
                break;
            }
            printf("%s\n%s", i ? "," : "", text);
            free(text);
        }
        fputs(n ? "\n]\n" : "]\n", stdout);
    } else if (n == 0) {
        printf(state < 0 ? "no jobs\n" : "no %s jobs\n",
               state < 0 ? "" : fn_job_state_name((fn_job_state)state));
    } else {
        static const char *const hdr[] = {"ID",      "TYPE", "PRIORITY", "STATE",
                                          "CREATED", "TIME", "PROGRESS", "ERRORS"};
        static const int right[] = {1, 0, 0, 0, 0, 1, 0, 1};
        cli_table *t = cli_table_new(8, hdr, right);
        size_t *order = calloc(n, sizeof *order);
        if (order) nest_shards(list, n, order);
        for (size_t i = 0; i < n; i++) {
            const fn_job_info *j = list[order ? order[i] : i];
            char id[32], created[40], dur[32], prog[128], errs[32], type[48];
            snprintf(type, sizeof type, "%s", j->type);
            if (j->shard_of) shard_label(j, type, sizeof type);
            snprintf(id, sizeof id, "%lld", (long long)j->id);
            cli_fmt_ago(j->created_at, created, sizeof created);
            cli_fmt_elapsed(duration_s(j), dur, sizeof dur);
            progress_pair(j->progress, prog, sizeof prog);
            fn_fmt_count((int64_t)j->n_errors, errs, sizeof errs);
            const char *row[] = {id,
                                 type,
                                 fn_priority_name(j->priority),
                                 fn_job_state_name(j->state),
                                 created,
                                 dur,
                                 prog,
                                 errs};
            cli_table_add(t, row);
        }
        free(order);
        cli_table_print(t, stdout);
        cli_table_free(t);
    }
    free_list(list, n);
    fn_engine_close(e);
    return code;
}

/* Parses "SUB ID [--json]" style arguments shared by show/log/cancel. */
static int one_id(cli_ctx *ctx, const char *sub, int argc, char **argv, fn_job_id *id, int *json,
                  int *wait)
{
    int have = 0;
    char cmd[32];
    snprintf(cmd, sizeof cmd, CMD " %s", sub);
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(jobs_usage, stdout);
            return -2;
        } else if (json && strcmp(argv[i], "--json") == 0) {
            *json = 1;
        } else if (wait && strcmp(argv[i], "--wait") == 0) {
            *wait = 1;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0' && !isdigit((unsigned char)argv[i][1])) {
            /* "-1" is a bad job id, not an option: cli_parse_job_id says so */
            cli_usage_error(ctx, cmd, "unknown option '%s'", argv[i]);
            return -1;
        } else if (have) {
            cli_usage_error(ctx, cmd, "unexpected argument '%s' (one job id only)", argv[i]);
            return -1;
        } else {
            if (cli_parse_job_id(ctx, cmd, argv[i], id) < 0) return -1;
            have = 1;
        }
    }
    if (!have) {
        cli_usage_error(ctx, cmd, "missing job id");
        return -1;
    }
    return 0;
}

static void print_json_field(const char *label, const char *json)
{
    if (!json || !*json || strcmp(json, "null") == 0) return;
    printf("%-10s  %s\n", label, fn_term_str(json));
}

/* A split job's shards by state ("shards      3: 1 running, 2 completed (jobs 12-14)"). */
static void print_shards(fn_engine *e, const fn_job_info *j)
{
    fn_job_info **list = NULL;
    size_t n = 0;
    int by_state[5] = {0};
    fn_job_id lo = 0, hi = 0;
    if (fn_job_list(e, -1, 0, &list, &n) == 0)
        for (size_t i = 0; i < n; i++)
            if (list[i]->shard_of == j->id && (unsigned)list[i]->state < 5) {
                by_state[list[i]->state]++;
                if (!lo || list[i]->id < lo) lo = list[i]->id;
                if (list[i]->id > hi) hi = list[i]->id;
            }
    free_list(list, n);
    printf("%-10s  %d:", "shards", j->shards);
    const char *sep = " ";
    for (int st = 0; st < 5; st++)
        if (by_state[st]) {
            printf("%s%d %s", sep, by_state[st], fn_job_state_name((fn_job_state)st));
            sep = ", ";
        }
    if (lo) printf(" (jobs %lld-%lld)", (long long)lo, (long long)hi);
    printf("\n");
}

static int jobs_show(cli_ctx *ctx, int argc, char **argv)
{
    fn_job_id id;
    int json = 0;
    int r = one_id(ctx, "show", argc, argv, &id, &json, NULL);
    if (r == -2) return CLI_EXIT_OK;
    if (r < 0) return CLI_EXIT_USAGE;
    fn_engine *e;
    if (open_for_job(ctx, "show", id, 0, &e) != 0) return CLI_EXIT_FAILURE;
    int code = CLI_EXIT_OK;
    if (json) {
        char *text = NULL;
        int rc = fn_job_inspect_json(e, id, &text);
        if (rc < 0)
            code = cli_engine_error(ctx, e, rc, "jobs show");
        else
            printf("%s\n", text);
        free(text);
        fn_engine_close(e);
        return code;
    }
    fn_job_info *j = NULL;
    int rc = fn_job_inspect(e, id, &j);
    if (rc < 0) {
        code = cli_engine_error(ctx, e, rc, "jobs show");
        fn_engine_close(e);
        return code;
    }
    char t[40], d[32];
    printf("job %lld: %s, %s priority, %s\n", (long long)j->id, j->type,
           fn_priority_name(j->priority), fn_job_state_name(j->state));
    if (j->parent > 0) printf("%-10s  job %lld\n", "continues", (long long)j->parent);
    if (j->shard_of > 0) {
        char label[48];
        shard_label(j, label, sizeof label);
        printf("%-10s  job %lld (%s)\n", "shard of", (long long)j->shard_of, label + 2);
    }
    if (j->shards > 0) print_shards(e, j);
    printf("%-10s  %s\n", "created", cli_fmt_iso(j->created_at, t, sizeof t));
    if (j->started_at >= 0)
        printf("%-10s  %s\n", "started", cli_fmt_iso(j->started_at, t, sizeof t));
    if (j->finished_at >= 0)
        printf("%-10s  %s\n", "finished", cli_fmt_iso(j->finished_at, t, sizeof t));
    printf("%-10s  %s\n", "updated", cli_fmt_iso(j->updated_at, t, sizeof t));
    if (duration_s(j) >= 0)
        printf("%-10s  %s%s\n", "time", cli_fmt_elapsed(duration_s(j), d, sizeof d),
               state_final(j->state) ? "" : " so far");
    if (j->fail_reason) printf("%-10s  %s\n", "failed", fn_term_str(j->fail_reason));
    print_json_field("payload", j->payload);
    print_json_field("checkpoint", j->checkpoint);
    if (j->progress && *j->progress) {
        printf("progress\n");
        cli_print_progress_lines(j->progress, stdout, "  ");
    }
    if (j->n_errors > 0) {
        printf("errors (%zu)\n", j->n_errors);
        static const char *const hdr[] = {"ITEM", "CODE", "RESOLUTION", "MESSAGE"};
        cli_table *tab = cli_table_new(4, hdr, NULL);
        for (size_t i = 0; i < j->n_errors; i++) {
            const fn_job_error *er = &j->errors[i];
            const char *row[] = {er->item && *er->item ? er->item : "-", er->code,
                                 fn_resolution_name(er->resolution),
                                 cli_error_message(er->item, er->message)};
            cli_table_add(tab, row);
        }
        cli_table_print(tab, stdout);
        cli_table_free(tab);
    }
    fn_job_info_free(j);
    fn_engine_close(e);
    return code;
}

static int jobs_cancel(cli_ctx *ctx, int argc, char **argv)
{
    fn_job_id id;
    int wait = 0;
    int r = one_id(ctx, "cancel", argc, argv, &id, NULL, &wait);
    if (r == -2) return CLI_EXIT_OK;
    if (r < 0) return CLI_EXIT_USAGE;
    fn_engine *e;
    if (open_for_job(ctx, "cancel", id, 1, &e) != 0) return CLI_EXIT_FAILURE;
    int code = CLI_EXIT_OK;
    int rc = fn_job_cancel(e, id);
    if (rc < 0) {
        code = cli_engine_error(ctx, e, rc, "jobs cancel");
    } else {
        fn_job_state st = FN_JOB_RUNNING;
        if (wait) {
            rc = fn_job_wait(e, id, -1, &st);
            if (rc < 0) code = cli_engine_error(ctx, e, rc, "jobs cancel --wait");
        } else {
            fn_job_info *j = NULL;
            if (fn_job_inspect(e, id, &j) == 0) st = j->state;
            fn_job_info_free(j);
        }
        if (code == CLI_EXIT_OK) {
            if (state_final(st))
                printf("job %lld %s; resume with: %s jobs resume %lld\n", (long long)id,
                       fn_job_state_name(st), ctx->prog, (long long)id);
            else
                printf("job %lld: cancel requested; it stops after its current batch and keeps "
                       "its work\n",
                       (long long)id);
        }
    }
    fn_engine_close(e);
    return code;
}

static int jobs_log(cli_ctx *ctx, int argc, char **argv)
{
    fn_job_id id;
    int r = one_id(ctx, "log", argc, argv, &id, NULL, NULL);
    if (r == -2) return CLI_EXIT_OK;
    if (r < 0) return CLI_EXIT_USAGE;
    fn_engine *e;
    if (open_for_job(ctx, "log", id, 0, &e) != 0) return CLI_EXIT_FAILURE;
    char *text = NULL;
    int code = CLI_EXIT_OK;
    int rc = fn_job_log(e, id, &text);
    if (rc < 0) {
        code = cli_engine_error(ctx, e, rc, "jobs log");
    } else if (text && *text) {
        size_t n = strlen(text);
        fputs(text, stdout);
        if (text[n - 1] != '\n') fputc('\n', stdout);
    }
    free(text);
    fn_engine_close(e);
    return code;
}

/* What a resume or retry took from the old job's errors, in a sentence. */
static void say_taken(const fn_followup *f, const char *verb)
{
    if (!f->items && !f->left) return;
    cli_term_lock();
    fprintf(stderr, "%s: %zu item(s) reprocessed first", verb, f->items);
    if (f->items)
        fprintf(stderr, " (errors: %zu pending, %zu marked retry%s", f->pending, f->retry,
                f->skipped ? "" : ")");
    if (f->items && f->skipped) fprintf(stderr, ", %zu marked skip but named)", f->skipped);
    if (f->left) fprintf(stderr, "; %zu marked skip left alone", f->left);
    fputc('\n', stderr);
    cli_term_unlock();
}

/* After resume/retry: run the job here, or say where it waits. */
static int start_or_detach(cli_ctx *ctx, fn_engine *e, fn_job_id old_id, const fn_followup *f,
                           const char *verb, int detach, int json)
{
    if (detach) {
        if (json) {
            char *text = NULL;
            int rc = fn_job_inspect_json(e, f->id, &text);
            if (rc < 0) return cli_engine_error(ctx, e, rc, "jobs %s", verb);
            printf("%s\n", text);
            free(text);
        } else if (f->continued) {
            printf("job %lld is queued and continues from its checkpoint; run it with: %s worker\n",
                   (long long)f->id, ctx->prog);
        } else {
            printf("queued job %lld (%s of job %lld); run it with: %s worker\n", (long long)f->id,
                   verb, (long long)old_id, ctx->prog);
        }
        return CLI_EXIT_OK;
    }
    cli_term_lock();
    if (f->continued)
        fprintf(stderr, "job %lld was interrupted; continuing it from its checkpoint\n",
                (long long)f->id);
    else
        fprintf(stderr, "job %lld: %s of job %lld\n", (long long)f->id, verb, (long long)old_id);
    cli_term_unlock();
    say_taken(f, verb);
    return cli_run_foreground(ctx, e, f->id, json);
}

static int jobs_resume(cli_ctx *ctx, int argc, char **argv)
{
    fn_job_id id = 0;
    int json = 0, detach = 0, have = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(jobs_usage, stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--detach") == 0) {
            detach = 1;
        } else if (argv[i][0] == '-') {
            return cli_usage_error(ctx, CMD " resume", "unknown option '%s'", argv[i]);
        } else if (have) {
            return cli_usage_error(ctx, CMD " resume", "unexpected argument '%s'", argv[i]);
        } else {
            if (cli_parse_job_id(ctx, CMD " resume", argv[i], &id) < 0) return CLI_EXIT_USAGE;
            have = 1;
        }
    }
    if (!have) return cli_usage_error(ctx, CMD " resume", "missing job id");
    fn_engine *e;
    if (open_for_job(ctx, "resume", id, 1, &e) != 0) return CLI_EXIT_FAILURE;
    fn_followup f;
    int code;
    int rc = fn_job_resume_ex(e, id, &f);
    if (rc < 0)
        code = cli_engine_error(ctx, e, rc, "jobs resume");
    else
        code = start_or_detach(ctx, e, id, &f, "resume", detach, json);
    fn_engine_close(e);
    return code;
}

/* `jobs retry|skip|errors ID [--code CODE]... [--item REF]... [--json] [--detach]`: a job id and
 * an error selection. `flags` says which of --json and --detach the subcommand takes. */
typedef struct sel_args {
    fn_job_id id;
    int json, detach;
    const char **codes, **items;
    char **owned; /* the items as resolved by resolve_items, freed with the rest */
    fn_error_selection sel;
} sel_args;

enum { TAKES_JSON = 1, TAKES_DETACH = 2 };

static void sel_args_free(sel_args *a)
{
    for (size_t i = 0; a->owned && i < a->sel.n_items; i++)
        free(a->owned[i]);
    free(a->owned);
    free(a->codes);
    free(a->items);
}

/* An item reference as a path the job recorded: made absolute the way ingest makes its paths
 * (realpath when it exists, else joined to the current folder). */
static char *absolute_item(const char *ref)
{
    char *real = realpath(ref, NULL);
    if (real || ref[0] == '/') return real ? real : strdup(ref);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return strdup(ref);
    size_t n = strlen(cwd) + strlen(ref) + 2;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%s/%s", cwd, ref);
    return out;
}

/* Whether job `id` has an error for item `path`. */
static int job_has_item(fn_engine *e, fn_job_id id, const char *path)
{
    const char *one[] = {path};
    fn_error_selection sel = {.items = one, .n_items = 1};
    char *text = NULL;
    json_t *arr = NULL;
    if (fn_job_errors_json(e, id, &sel, &text) == 0) arr = json_loads(text, 0, NULL);
    int has = json_array_size(arr) > 0;
    json_decref(arr);
    free(text);
    return has;
}

/* Turns each --item REF into the path it names (docs/cli.md, "Paths in JSON"). Candidates, the
 * first the job has an error for winning: REF exactly as written (when absolute), REF made
 * absolute, and, when REF carries \xHH or \\ escapes (as JSON and the human output print a name
 * that is not UTF-8), the same two of the decoded bytes. With no match, REF made absolute (the
 * retry then says the selection names no error). -1 when out of memory (message printed). */
static int resolve_items(cli_ctx *ctx, fn_engine *e, sel_args *a)
{
    if (!a->sel.n_items) return 0;
    a->owned = calloc(a->sel.n_items, sizeof *a->owned);
    if (!a->owned) return cli_error(ctx, "out of memory"), -1;
    for (size_t i = 0; i < a->sel.n_items; i++) {
        const char *ref = a->items[i];
        char *cand[4] = {NULL, NULL, NULL, NULL};
        int oom = 0;
        if (ref[0] == '/') oom |= !(cand[0] = strdup(ref));
        oom |= !(cand[1] = absolute_item(ref));
        if (!oom && fn_path_has_escape(ref)) {
            char *bytes = fn_path_unescape(ref, NULL);
            oom |= !bytes;
            if (bytes && bytes[0] == '/') oom |= !(cand[2] = strdup(bytes));
            if (bytes) oom |= !(cand[3] = absolute_item(bytes));
            free(bytes);
        }
        int pick = 1;
        for (int k = 0; !oom && k < 4; k++)
            if (cand[k] && job_has_item(e, a->id, cand[k])) {
                pick = k;
                break;
            }
        for (int k = 0; k < 4; k++)
            if (k != pick) free(cand[k]);
        if (oom) {
            free(cand[pick]);
            return cli_error(ctx, "out of memory"), -1;
        }
        a->owned[i] = cand[pick];
        a->items[i] = cand[pick];
    }
    return 0;
}

/* 0, -2 after --help, or -1 after a usage error (printed). */
static int parse_sel_args(cli_ctx *ctx, const char *sub, int argc, char **argv, int flags,
                          sel_args *a)
{
    memset(a, 0, sizeof *a);
    char cmd[32];
    snprintf(cmd, sizeof cmd, CMD " %s", sub);
    a->codes = calloc((size_t)argc, sizeof *a->codes);
    a->items = calloc((size_t)argc, sizeof *a->items);
    if (!a->codes || !a->items) {
        cli_error(ctx, "out of memory");
        return -1;
    }
    int have = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (cli_is_help(argv[i])) {
            fputs(jobs_usage, stdout);
            return -2;
        } else if ((flags & TAKES_JSON) && strcmp(argv[i], "--json") == 0) {
            a->json = 1;
        } else if ((flags & TAKES_DETACH) && strcmp(argv[i], "--detach") == 0) {
            a->detach = 1;
        } else if ((r = cli_opt_value(ctx, cmd, argv, argc, &i, "--code", &v)) != 0) {
            if (r < 0) return -1;
            if (!*v) {
                cli_usage_error(ctx, cmd, "--code needs an error code (e.g. corrupt)");
                return -1;
            }
            a->codes[a->sel.n_codes++] = v;
        } else if ((r = cli_opt_value(ctx, cmd, argv, argc, &i, "--item", &v)) != 0) {
            if (r < 0) return -1;
            a->items[a->sel.n_items++] = v;
        } else if (argv[i][0] == '-' && !isdigit((unsigned char)argv[i][1])) {
            cli_usage_error(ctx, cmd, "unknown option '%s'", argv[i]);
            return -1;
        } else if (have) {
            cli_usage_error(ctx, cmd, "unexpected argument '%s'", argv[i]);
            return -1;
        } else {
            if (cli_parse_job_id(ctx, cmd, argv[i], &a->id) < 0) return -1;
            have = 1;
        }
    }
    if (!have) {
        cli_usage_error(ctx, cmd, "missing job id");
        return -1;
    }
    a->sel.codes = a->codes;
    a->sel.items = a->items;
    return 0;
}

static int jobs_retry(cli_ctx *ctx, int argc, char **argv)
{
    sel_args a;
    int r = parse_sel_args(ctx, "retry", argc, argv, TAKES_JSON | TAKES_DETACH, &a);
    int code = r == -2 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    fn_engine *e = NULL;
    if (r == 0 && open_for_job(ctx, "retry", a.id, 1, &e) != 0) code = CLI_EXIT_FAILURE;
    if (r == 0 && e && resolve_items(ctx, e, &a) < 0) {
        code = CLI_EXIT_FAILURE;
        fn_engine_close(e);
        e = NULL;
    }
    if (r == 0 && e) {
        fn_followup f;
        int rc = fn_job_retry_ex(e, a.id, &a.sel, &f);
        if (rc < 0)
            code = cli_engine_error(ctx, e, rc, "jobs retry");
        else
            code = start_or_detach(ctx, e, a.id, &f, "retry", a.detach, a.json);
        fn_engine_close(e);
    }
    sel_args_free(&a);
    return code;
}

/* Who made a decision: the CLI and the user running it. */
static void who_am_i(char *buf, size_t len)
{
    const char *user = getenv("USER");
    snprintf(buf, len, "cli:%s", user && *user ? user : "unknown");
}

static int jobs_skip(cli_ctx *ctx, int argc, char **argv)
{
    sel_args a;
    int r = parse_sel_args(ctx, "skip", argc, argv, 0, &a);
    int code = r == -2 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    fn_engine *e = NULL;
    if (r == 0 && !a.sel.n_codes && !a.sel.n_items) {
        cli_usage_error(ctx, CMD " skip",
                        "name the errors to skip with --code CODE or --item REF (jobs errors "
                        "%lld lists them)",
                        (long long)a.id);
        r = -1;
    }
    if (r == 0 && open_for_job(ctx, "skip", a.id, 1, &e) != 0) code = CLI_EXIT_FAILURE;
    if (r == 0 && e && resolve_items(ctx, e, &a) < 0) {
        code = CLI_EXIT_FAILURE;
        fn_engine_close(e);
        e = NULL;
    }
    if (r == 0 && e) {
        char who[96];
        who_am_i(who, sizeof who);
        size_t changed = 0;
        int rc = fn_job_errors_resolve(e, a.id, &a.sel, FN_RES_SKIP, who, &changed);
        if (rc < 0) {
            code = cli_engine_error(ctx, e, rc, "jobs skip");
        } else {
            printf("job %lld: %zu error(s) marked skip; resume and retry leave them alone\n",
                   (long long)a.id, changed);
            code = CLI_EXIT_OK;
        }
        fn_engine_close(e);
    }
    sel_args_free(&a);
    return code;
}

static int jobs_errors(cli_ctx *ctx, int argc, char **argv)
{
    sel_args a;
    int r = parse_sel_args(ctx, "errors", argc, argv, TAKES_JSON, &a);
    int code = r == -2 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    fn_engine *e = NULL;
    if (r == 0 && open_for_job(ctx, "errors", a.id, 0, &e) != 0) code = CLI_EXIT_FAILURE;
    if (r == 0 && e && resolve_items(ctx, e, &a) < 0) {
        code = CLI_EXIT_FAILURE;
        fn_engine_close(e);
        e = NULL;
    }
    if (r == 0 && e) {
        char *text = NULL;
        int rc = fn_job_errors_json(e, a.id, &a.sel, &text);
        if (rc < 0) {
            code = cli_engine_error(ctx, e, rc, "jobs errors");
        } else if (a.json) {
            printf("%s\n", text);
            code = CLI_EXIT_OK;
        } else {
            json_t *arr = json_loads(text, 0, NULL);
            size_t i;
            json_t *x;
            json_array_foreach(arr, i, x)
            {
                /* item and message in their JSON text form; control characters escaped */
                printf("%-8s %-12s %s\n", json_string_value(json_object_get(x, "resolution")),
                       fn_term_str(json_string_value(json_object_get(x, "code"))),
                       fn_term_str(
                           cli_error_message(json_string_value(json_object_get(x, "item")),
                                             json_string_value(json_object_get(x, "message")))));
                size_t k;
                json_t *d;
                json_array_foreach(json_object_get(x, "decisions"), k, d)
                    printf("         %s -> %s by %s at %s\n",
                           json_string_value(json_object_get(d, "from")),
                           json_string_value(json_object_get(d, "to")),
                           fn_term_str(json_string_value(json_object_get(d, "who"))),
                           json_string_value(json_object_get(d, "at")));
            }
            if (!json_array_size(arr)) printf("job %lld has no such errors\n", (long long)a.id);
            json_decref(arr);
            code = CLI_EXIT_OK;
        }
        free(text);
        fn_engine_close(e);
    }
    sel_args_free(&a);
    return code;
}

static int jobs_watch(cli_ctx *ctx, int argc, char **argv)
{
    fn_job_id id = 0;
    int json = 0, have = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(jobs_usage, stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (argv[i][0] == '-') {
            return cli_usage_error(ctx, CMD " watch", "unknown option '%s'", argv[i]);
        } else if (have) {
            return cli_usage_error(ctx, CMD " watch", "unexpected argument '%s'", argv[i]);
        } else {
            if (cli_parse_job_id(ctx, CMD " watch", argv[i], &id) < 0) return CLI_EXIT_USAGE;
            have = 1;
        }
    }
    /* Watching creates no library: with none here there is nothing to watch. */
    int readonly = 0;
    int p = cli_library_probe(ctx, &readonly);
    if (p < 0) return CLI_EXIT_FAILURE;
    if (p == CLI_NO_LIBRARY)
        return have
                   ? cli_error(ctx, "jobs watch: job %lld: there is no library in %s",
                               (long long)id, ctx->library_dir)
                   : cli_error(ctx, "no running or queued job to watch (there is no library in %s)",
                               ctx->library_dir);
    /* A library this user cannot write is watched through a read-only engine (it polls). */
    fn_engine *e;
    if (readonly ? cli_open_existing(ctx, 0, &e) != 0 : cli_open_engine(ctx, &e) != 0)
        return CLI_EXIT_FAILURE;
    if (!have) {
        static const fn_job_state order[] = {FN_JOB_RUNNING, FN_JOB_QUEUED};
        for (size_t k = 0; k < 2 && !have; k++) {
            fn_job_info **list = NULL;
            size_t n = 0;
            int rc = fn_job_list(e, (int)order[k], 1, &list, &n);
            if (rc < 0) {
                cli_engine_error(ctx, e, rc, "jobs watch");
                fn_engine_close(e);
                return CLI_EXIT_FAILURE;
            }
            if (n > 0) {
                id = list[0]->id;
                have = 1;
            }
            free_list(list, n);
        }
        if (!have) {
            cli_error(ctx, "no running or queued job to watch");
            fn_engine_close(e);
            return CLI_EXIT_FAILURE;
        }
    }
    int code = cli_follow_job(ctx, e, id, 0, json);
    fn_engine_close(e);
    return code;
}

int cmd_jobs(cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 2) {
        fputs(jobs_usage, stderr);
        return CLI_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (cli_is_help(sub)) {
        fputs(jobs_usage, stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(sub, "list") == 0 || strcmp(sub, "ls") == 0)
        return jobs_list(ctx, argc - 1, argv + 1);
    if (strcmp(sub, "show") == 0) return jobs_show(ctx, argc - 1, argv + 1);
    if (strcmp(sub, "cancel") == 0) return jobs_cancel(ctx, argc - 1, argv + 1);
    if (strcmp(sub, "resume") == 0) return jobs_resume(ctx, argc - 1, argv + 1);
    if (strcmp(sub, "retry") == 0) return jobs_retry(ctx, argc - 1, argv + 1);
    if (strcmp(sub, "watch") == 0) return jobs_watch(ctx, argc - 1, argv + 1);
    if (strcmp(sub, "log") == 0) return jobs_log(ctx, argc - 1, argv + 1);
    if (strcmp(sub, "errors") == 0) return jobs_errors(ctx, argc - 1, argv + 1);
    if (strcmp(sub, "skip") == 0) return jobs_skip(ctx, argc - 1, argv + 1);
    return cli_usage_error(ctx, CMD,
                           "unknown subcommand '%s' (list, show, cancel, resume, retry, errors, "
                           "skip, watch, log)",
                           sub);
}
