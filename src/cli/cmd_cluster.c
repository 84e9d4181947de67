/* cmd_cluster.c: `facenames cluster`: enqueue a clustering job, run it in the foreground with live
 * progress, and print what it did (the job type's summary). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"

static const char usage[] =
    "usage: facenames cluster [options]\n"
    "\n"
    "Groups the faces that have no person into clusters. By default only the faces clustering\n"
    "has not seen yet: they join existing clusters and persons when close enough, or form new\n"
    "clusters among themselves; cluster ids stay as they were. --full re-clusters every\n"
    "unconfirmed face without a person, keeping the old id of a cluster that mostly stays.\n"
    "Faces a person confirmed, ignored or drew are never changed. Runs in the foreground with\n"
    "live progress; Ctrl-C once cancels after the current batch (resume it with\n"
    "`facenames jobs resume ID`), twice stops at once.\n"
    "\n"
    "options:\n"
    "  --full            re-cluster every unconfirmed face without a person\n"
    "  --threshold D     largest distance of two faces joined (default: cluster.threshold)\n"
    "  --min-faces N     faces a new cluster needs (default: cluster.min_faces)\n"
    "  --priority P      interactive, normal (default) or background\n"
    "  --detach          only enqueue the job (for `facenames worker`) and print its id\n"
    "  --json            print the final job (with --detach: the queued job) as\n"
    "                    `facenames jobs show --json` does\n"
    "\n"
    "exit status: 0 done, 1 failed, 2 usage, 3 cancelled\n";

int cmd_cluster(cli_ctx *ctx, int argc, char **argv)
{
    const char *cmd = "cluster";
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
        if ((m = cli_opt_value(ctx, cmd, argv, argc, &i, "--threshold", &v)) != 0) {
            if (m < 0) goto out;
            char *end = NULL;
            double d = strtod(v, &end);
            if (!end || *end || !(d >= 0.01 && d <= 2)) {
                rc = cli_usage_error(ctx, cmd, "--threshold wants a distance (0.01..2)");
                goto out;
            }
            json_object_set_new(payload, "threshold", json_real(d));
        } else if ((m = cli_opt_value(ctx, cmd, argv, argc, &i, "--min-faces", &v)) != 0) {
            if (m < 0) goto out;
            if (cli_parse_ll(v, 1, 1000000, &n) < 0) {
                rc = cli_usage_error(ctx, cmd, "--min-faces wants a number of faces (1..1000000)");
                goto out;
            }
            json_object_set_new(payload, "min_faces", json_integer(n));
        } else if ((m = cli_opt_priority(ctx, cmd, argv, argc, &i, &prio)) != 0) {
            if (m < 0) goto out;
        } else if (strcmp(argv[i], "--full") == 0) {
            json_object_set_new(payload, "full", json_true());
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
    /* As with ingest: two clusterings at once would only race to place the same faces. */
    rc = cli_start_job(ctx, e, "cluster", "clustering", payload, prio, detach, json, "settings");
    fn_engine_close(e);
out:
    json_decref(payload);
    return rc;
}
