/* cmd_interop.c: `facenames repair`, `facenames export` and `facenames import`: enqueue the job
 * with its payload, run it in the foreground with live progress (or only enqueue it with
 * --detach), and print its summary. The jobs are in src/tasks (repair.c, export.c, import.c);
 * what they do is in docs/export.md.
 *
 * Paths are made absolute here (realpath), so a worker started elsewhere means the same files.
 * repair and export need an existing library (they say so, and create nothing, when there is
 * none); import creates one, so a json export can be brought into an empty library. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "util/pathenc.h"

static const char repair_usage[] =
    "usage: facenames repair [--dry-run] [--prune] [--root DIR]... [--detach] [--json]\n"
    "\n"
    "Puts the library right after its photos moved: photos moved or renamed are found again by\n"
    "their content under the library's roots (the folders given to ingest, or --root) and keep\n"
    "their faces and names; photos that are gone are marked missing and kept with their people\n"
    "(--prune removes them); faces whose descriptors or thumbnails are missing, or that other\n"
    "model files computed, are recomputed; the database is checked (integrity, foreign keys,\n"
    "empty clusters, persons without faces) and what can be fixed is fixed.\n"
    "\n"
    "options:\n"
    "  --dry-run   count what would change, change nothing\n"
    "  --prune     remove the photos that are gone (their faces and names with them)\n"
    "  --root DIR  look for moved photos here (repeatable; default: the ingested folders)\n"
    "  --detach    only enqueue the job (for `facenames worker`) and print its id\n"
    "  --json      print the final job as `facenames jobs show --json` does\n"
    "\n"
    "exit status: 0 done, 1 failed, 2 usage, 3 cancelled, 4 done but some photos had errors\n";

static const char export_usage[] =
    "usage: facenames export --format json|xmp|csv [--to DIR] [--with-descriptors] [--detach]\n"
    "                        [--json]\n"
    "\n"
    "Writes the library's people, faces and photos for other tools (docs/export.md):\n"
    "  json  DIR/facenames-export.json: versioned, portable, read back by `facenames import`\n"
    "  xmp   a sidecar PHOTO.EXT.xmp per photo with named faces (MWG face regions, read by\n"
    "        digiKam, Lightroom, darktable, exiftool), next to the photo or under --to DIR;\n"
    "        an existing sidecar is merged, never clobbered; photos are never written\n"
    "  csv   DIR/facenames-export.csv, one row per face\n"
    "\n"
    "options:\n"
    "  --to DIR            where to write (json, csv: default the current folder)\n"
    "  --with-descriptors  json: include each face's 128 numbers (and the models' checksum)\n"
    "  --detach, --json    as for ingest\n";

static const char import_usage[] =
    "usage: facenames import FILE|DIR [--detach] [--json]\n"
    "\n"
    "Brings names from elsewhere into the library (docs/export.md):\n"
    "  FILE.json  an export of another library: photos matched by content, then path (photos\n"
    "             this library lacks are added), people by name, decisions applied\n"
    "  DIR|PHOTO  XMP face regions of the library's photos under DIR (sidecars and packets\n"
    "             embedded in the photos, as digiKam, Lightroom or exiftool write them): each\n"
    "             named region confirms the face it covers, or becomes a face of its own\n"
    "A face decided differently here is never overwritten: it is reported as a conflict.\n"
    "\n"
    "exit status: 0 done, 1 failed, 2 usage, 3 cancelled, 4 done but some items had errors\n";

/* Enqueues `type` with `payload` and runs it as ingest does (foreground, or --detach). */
static int run_job(cli_ctx *ctx, const char *cmd, int create, json_t *payload, int detach, int json)
{
    fn_engine *e = NULL;
    if (create) {
        if (cli_open_engine(ctx, &e) != 0) return CLI_EXIT_FAILURE;
    } else {
        int ro = 0;
        int p = cli_library_probe(ctx, &ro);
        if (p == CLI_NO_LIBRARY)
            return cli_error(ctx, "%s: there is no library in %s (ingest photos first)", cmd,
                             ctx->library_dir);
        if (p < 0) return CLI_EXIT_FAILURE;
        if (cli_open_engine(ctx, &e) != 0) return CLI_EXIT_FAILURE;
    }
    int rc = cli_start_job(ctx, e, cmd, cmd, payload, FN_PRIO_NORMAL, detach, json, NULL);
    fn_engine_close(e);
    return rc;
}

/* An absolute path for a payload, or NULL after printing why. */
static char *absolute(cli_ctx *ctx, const char *cmd, const char *arg)
{
    char *real = realpath(arg, NULL);
    if (!real) {
        cli_error(ctx, "%s: %s: no such file or folder", cmd, arg);
        return NULL;
    }
    if (!fn_utf8_valid(real, strlen(real))) {
        cli_error(ctx, "%s: %s: a path that is not UTF-8 cannot be named yet", cmd, arg);
        free(real);
        return NULL;
    }
    return real;
}

int cmd_repair(cli_ctx *ctx, int argc, char **argv)
{
    const char *cmd = "repair";
    json_t *payload = json_object(), *roots = json_array();
    int detach = 0, json = 0, rc = CLI_EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int m;
        if (cli_is_help(argv[i])) {
            fputs(repair_usage, stdout);
            rc = CLI_EXIT_OK;
            goto out;
        }
        if ((m = cli_opt_value(ctx, cmd, argv, argc, &i, "--root", &v)) != 0) {
            if (m < 0) goto out;
            char *real = absolute(ctx, cmd, v);
            if (!real) {
                rc = CLI_EXIT_USAGE;
                goto out;
            }
            json_array_append_new(roots, json_string(real));
            free(real);
        } else if (strcmp(argv[i], "--dry-run") == 0) {
            json_object_set_new(payload, "dry_run", json_true());
        } else if (strcmp(argv[i], "--prune") == 0) {
            json_object_set_new(payload, "prune", json_true());
        } else if (strcmp(argv[i], "--detach") == 0) {
            detach = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            rc = cli_usage_error(ctx, cmd, "unknown argument %s", argv[i]);
            goto out;
        }
    }
    if (json_array_size(roots)) json_object_set(payload, "roots", roots);
    rc = run_job(ctx, cmd, 0, payload, detach, json);
out:
    json_decref(roots);
    json_decref(payload);
    return rc;
}

int cmd_export(cli_ctx *ctx, int argc, char **argv)
{
    const char *cmd = "export";
    json_t *payload = json_object();
    const char *format = NULL, *to = NULL;
    int detach = 0, json = 0, rc = CLI_EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int m;
        if (cli_is_help(argv[i])) {
            fputs(export_usage, stdout);
            rc = CLI_EXIT_OK;
            goto out;
        }
        if ((m = cli_opt_value(ctx, cmd, argv, argc, &i, "--format", &v)) != 0) {
            if (m < 0) goto out;
            if (strcmp(v, "json") && strcmp(v, "xmp") && strcmp(v, "csv")) {
                rc = cli_usage_error(ctx, cmd, "--format is json, xmp or csv, not %s", v);
                goto out;
            }
            format = v;
        } else if ((m = cli_opt_value(ctx, cmd, argv, argc, &i, "--to", &v)) != 0) {
            if (m < 0) goto out;
            to = v;
        } else if (strcmp(argv[i], "--with-descriptors") == 0) {
            json_object_set_new(payload, "with_descriptors", json_true());
        } else if (strcmp(argv[i], "--detach") == 0) {
            detach = 1;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            rc = cli_usage_error(ctx, cmd, "unknown argument %s", argv[i]);
            goto out;
        }
    }
    if (!format) {
        rc = cli_usage_error(ctx, cmd, "say which format: --format json, xmp or csv");
        goto out;
    }
    json_object_set_new(payload, "format", json_string(format));
    if (!to && strcmp(format, "xmp") != 0) to = ".";
    if (to) {
        /* the folder is made when missing: exporting into a new folder is the common case */
        if (access(to, F_OK) != 0 && mkdir(to, 0755) != 0) {
            rc = cli_error(ctx, "export: cannot make the folder %s", to);
            goto out;
        }
        char *real = absolute(ctx, cmd, to);
        if (!real) {
            rc = CLI_EXIT_USAGE;
            goto out;
        }
        json_object_set_new(payload, "to", json_string(real));
        free(real);
    }
    rc = run_job(ctx, cmd, 0, payload, detach, json);
out:
    json_decref(payload);
    return rc;
}

int cmd_import(cli_ctx *ctx, int argc, char **argv)
{
    const char *cmd = "import";
    json_t *payload = json_object();
    const char *path = NULL;
    int detach = 0, json = 0, rc = CLI_EXIT_USAGE, only_paths = 0;
    for (int i = 1; i < argc; i++) {
        if (!only_paths && strcmp(argv[i], "--") == 0) {
            only_paths = 1;
        } else if (!only_paths && cli_is_help(argv[i])) {
            fputs(import_usage, stdout);
            rc = CLI_EXIT_OK;
            goto out;
        } else if (!only_paths && strcmp(argv[i], "--detach") == 0) {
            detach = 1;
        } else if (!only_paths && strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (!only_paths && argv[i][0] == '-' && argv[i][1]) {
            rc = cli_usage_error(ctx, cmd, "unknown option %s", argv[i]);
            goto out;
        } else if (path) {
            rc = cli_usage_error(ctx, cmd, "import one file or folder at a time");
            goto out;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        rc = cli_usage_error(ctx, cmd, "name a json export, or a folder or photo with XMP");
        goto out;
    }
    char *real = absolute(ctx, cmd, path);
    if (!real) goto out;
    json_object_set_new(payload, "path", json_string(real));
    free(real);
    rc = run_job(ctx, cmd, 1, payload, detach, json);
out:
    json_decref(payload);
    return rc;
}
