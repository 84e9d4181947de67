/* cmd_ingest.c: `facenames ingest PATH...`: enqueue an ingest job for the given files and
 * folders, run it in the foreground with live progress, and print what it did.
 *
 * Paths are made absolute and normalised here (realpath), so the job means the same thing whoever
 * runs it (a `facenames worker` started from another folder, `--detach`). A path that does not
 * exist is a usage error at once rather than a job error later: it is almost always a typo. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "util/pathenc.h"

static const char usage[] =
    "usage: facenames ingest PATH... [options]\n"
    "\n"
    "Finds the photos in the given files and folders (recursively), detects their faces and\n"
    "stores photos, faces, landmarks, descriptors and thumbnails in the library. Photos already\n"
    "ingested and unchanged are skipped; changed ones are reprocessed. Runs in the foreground\n"
    "with live progress; Ctrl-C once cancels after the current batch (resume it with\n"
    "`facenames jobs resume ID`, or run the same ingest again), twice stops at once.\n"
    "\n"
    "options:\n"
    "  --min-face-size PX   ignore faces smaller than PX pixels (default: ingest.min_face_size)\n"
    "  --detector ssd|tiny  face detector (default: ingest.detector; tiny is faster, finds fewer)\n"
    "  --batch N            photos per batch and commit (default: ingest.batch)\n"
    "  --priority P         interactive, normal (default) or background\n"
    "  --no-recursive       only the files directly in each folder\n"
    "  --follow-symlinks    follow symbolic links to files and folders (loops are reported)\n"
    "  --ext LIST           extensions to ingest, comma separated\n"
    "                       (default: jpg,jpeg,png,webp,heic,heif,tif,tiff,gif)\n"
    "  --detach             only enqueue the job (for `facenames worker`) and print its id\n"
    "  --json               print the final job (with --detach: the queued job) as\n"
    "                       `facenames jobs show --json` does\n"
    "  --                   what follows is a path, even when it starts with -\n"
    "\n"
    "Running the same ingest again while an interrupted one is waiting continues that job;\n"
    "while the same ingest is running (another terminal, a worker), this one follows it.\n"
    "\n"
    "exit status: 0 done, 1 failed, 2 usage, 3 cancelled, 4 done but some files had errors\n";

static int add_exts(json_t *payload, const char *list)
{
    json_t *a = json_array();
    char *copy = strdup(list);
    if (!copy) return -1;
    for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (*t) json_array_append_new(a, json_string(t));
    free(copy);
    if (!json_array_size(a)) {
        json_decref(a);
        return -1;
    }
    json_object_set_new(payload, "extensions", a);
    return 0;
}

int cmd_ingest(cli_ctx *ctx, int argc, char **argv)
{
    const char *cmd = "ingest";
    json_t *payload = json_object();
    json_t *paths = json_array();
    json_object_set_new(payload, "paths", paths);
    fn_priority prio = FN_PRIO_NORMAL;
    int detach = 0, json = 0, rc = CLI_EXIT_USAGE, only_paths = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int m;
        long long n;
        if (only_paths || (argv[i][0] != '-' || !argv[i][1])) {
            /* a path (after "--", anything is one: a file may be named "-x") */
            char *real = realpath(argv[i], NULL);
            if (!real) {
                rc = cli_error(ctx, "ingest: %s: no such file or folder", argv[i]);
                goto out;
            }
            if (!fn_utf8_valid(real, strlen(real))) {
                /* the job's payload is JSON text; files inside such a folder are fine */
                rc = cli_error(ctx,
                               "ingest: %s: a path that is not UTF-8 cannot be named yet; name "
                               "the folder that contains it",
                               argv[i]);
                free(real);
                goto out;
            }
            json_array_append_new(paths, json_string(real));
            free(real);
            continue;
        }
        if (strcmp(argv[i], "--") == 0) {
            only_paths = 1;
            continue;
        }
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            rc = CLI_EXIT_OK;
            goto out;
        }
        if ((m = cli_opt_value(ctx, cmd, argv, argc, &i, "--min-face-size", &v)) != 0) {
            if (m < 0) goto out;
            if (cli_parse_ll(v, 0, 100000, &n) < 0) {
                rc = cli_usage_error(ctx, cmd, "--min-face-size wants pixels (0..100000)");
                goto out;
            }
            json_object_set_new(payload, "min_face_size", json_integer(n));
        } else if ((m = cli_opt_value(ctx, cmd, argv, argc, &i, "--detector", &v)) != 0) {
            if (m < 0) goto out;
            if (strcmp(v, "ssd") != 0 && strcmp(v, "tiny") != 0) {
                rc = cli_usage_error(ctx, cmd, "--detector is ssd or tiny, not %s", v);
                goto out;
            }
            json_object_set_new(payload, "detector", json_string(v));
        } else if ((m = cli_opt_value(ctx, cmd, argv, argc, &i, "--batch", &v)) != 0) {
            if (m < 0) goto out;
            if (cli_parse_ll(v, 1, 4096, &n) < 0) {
                rc = cli_usage_error(ctx, cmd, "--batch wants a number of photos (1..4096)");
                goto out;
            }
            json_object_set_new(payload, "batch", json_integer(n));
        } else if ((m = cli_opt_priority(ctx, cmd, argv, argc, &i, &prio)) != 0) {
            if (m < 0) goto out;
        } else if ((m = cli_opt_value(ctx, cmd, argv, argc, &i, "--ext", &v)) != 0) {
            if (m < 0) goto out;
            if (add_exts(payload, v) < 0) {
                rc = cli_usage_error(ctx, cmd, "--ext wants a list like jpg,png");
                goto out;
            }
        } else if (strcmp(argv[i], "--no-recursive") == 0) {
            json_object_set_new(payload, "recursive", json_false());
        } else if (strcmp(argv[i], "--follow-symlinks") == 0) {
            json_object_set_new(payload, "follow_symlinks", json_true());
        } else if (strcmp(argv[i], "--detach") == 0) {
            detach = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            rc = cli_usage_error(ctx, cmd, "unknown option %s", argv[i]);
            goto out;
        }
    }
    if (!json_array_size(paths)) {
        rc = cli_usage_error(ctx, cmd, "name at least one file or folder of photos");
        goto out;
    }

    fn_engine *e = NULL;
    if (cli_open_engine(ctx, &e) != 0) {
        rc = CLI_EXIT_FAILURE;
        goto out;
    }
    /* The same ingest run again while an identical job waits (recovered after a crash, or
     * enqueued with --detach and not run yet) continues that job rather than adding a second;
     * while one runs, this follows it (two would each process every photo and churn face ids). */
    rc = cli_start_job(ctx, e, "ingest", "ingest", payload, prio, detach, json,
                       "paths and settings");
    fn_engine_close(e);
out:
    json_decref(payload);
    return rc;
}
