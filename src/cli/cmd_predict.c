/* cmd_predict.c: `facenames predict`: enqueue a predict job (a suggested person for every face
 * without one, from the faces people confirmed), run it in the foreground with live progress,
 * and print what it did. docs/predict.md describes the method. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"

static const char usage[] =
    "usage: facenames predict [options]\n"
    "\n"
    "Suggests a person for every face that has none, by a vote of the faces people confirmed\n"
    "(the k nearest, weighted, within each person's radius), with a confidence from 0 to 1;\n"
    "below the threshold a face stays unknown. Suggestions wait for a person to accept or\n"
    "reject them (facenames suggestions list); a rejected one is never suggested again. Faces\n"
    "a person confirmed, ignored or drew are never changed. Runs in the foreground with live\n"
    "progress; Ctrl-C once cancels after the current batch (facenames jobs resume ID), twice\n"
    "stops at once.\n"
    "\n"
    "options:\n"
    "  --k N              confirmed faces that vote per face, 1..64 (default: predict.k)\n"
    "  --threshold X      confidence below which a face is unknown, 0..1\n"
    "                     (default: predict.threshold)\n"
    "  --auto-accept      confirm suggestions with a confidence of at least 0.95 (audited as\n"
    "                     the job's; facenames undo reverts them) (default: predict.auto_accept)\n"
    "  --no-auto-accept   leave every suggestion to a person\n"
    "  --batch N          faces per batch and commit (default 256)\n"
    "  --priority P       interactive, normal (default) or background\n"
    "  --detach           only enqueue the job (for `facenames worker`) and print its id\n"
    "  --json             print the final job (with --detach: the queued job) as\n"
    "                     `facenames jobs show --json` does\n"
    "\n"
    "exit status: 0 done, 1 failed, 2 usage, 3 cancelled\n";

int cmd_predict(cli_ctx *ctx, int argc, char **argv)
{
    const char *cmd = "predict";
    json_t *payload = json_object();
    fn_priority prio = FN_PRIO_NORMAL;
    int detach = 0, json = 0, rc = CLI_EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int m;
        long long n;
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            rc = CLI_EXIT_OK;
            goto out;
        }
        if ((m = cli_opt_value(ctx, cmd, argv, argc, &i, "--k", &v)) != 0) {
            if (m < 0) goto out;
            if (cli_parse_ll(v, 1, 64, &n) < 0) {
                rc = cli_usage_error(ctx, cmd, "--k wants a number of faces (1..64)");
                goto out;
            }
            json_object_set_new(payload, "k", json_integer(n));
        } else if ((m = cli_opt_value(ctx, cmd, argv, argc, &i, "--threshold", &v)) != 0) {
            if (m < 0) goto out;
            char *end = NULL;
            double x = strtod(v, &end);
            if (end == v || *end || !(x >= 0 && x <= 1)) {
                rc = cli_usage_error(ctx, cmd, "--threshold wants a number from 0 to 1");
                goto out;
            }
            json_object_set_new(payload, "threshold", json_real(x));
        } else if ((m = cli_opt_value(ctx, cmd, argv, argc, &i, "--batch", &v)) != 0) {
            if (m < 0) goto out;
            if (cli_parse_ll(v, 1, 65536, &n) < 0) {
                rc = cli_usage_error(ctx, cmd, "--batch wants a number of faces (1..65536)");
                goto out;
            }
            json_object_set_new(payload, "batch", json_integer(n));
        } else if ((m = cli_opt_priority(ctx, cmd, argv, argc, &i, &prio)) != 0) {
            if (m < 0) goto out;
        } else if (strcmp(argv[i], "--auto-accept") == 0) {
            json_object_set_new(payload, "auto_accept", json_true());
        } else if (strcmp(argv[i], "--no-auto-accept") == 0) {
            json_object_set_new(payload, "auto_accept", json_false());
        } else if (strcmp(argv[i], "--detach") == 0) {
            detach = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            rc = cli_usage_error(ctx, cmd, "unknown option %s", argv[i]);
            goto out;
        }
    }

    fn_engine *e = NULL;
    if (cli_open_engine(ctx, &e) != 0) {
        rc = CLI_EXIT_FAILURE;
        goto out;
    }
    /* As with ingest: two predicts at once would only race to write the same suggestions. */
    rc = cli_start_job(ctx, e, "predict", "predict", payload, prio, detach, json, "settings");
    fn_engine_close(e);
out:
    json_decref(payload);
    return rc;
}
