/* cmd_faces.c: `facenames faces list`: the faces in the library, optionally of one photo.
 *
 * With --json the output is one JSON array of {"id", "photo" (path), "box": {"x", "y", "width",
 * "height"}, "score", "person", "cluster"} (person and cluster null when unassigned), streamed row
 * by row so a library of a million faces lists in constant memory. Like `photos`, it reads the
 * database directly and works while an ingest runs elsewhere. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "store/library/library_store.h"

static const char usage[] =
    "usage: facenames faces list [--photo ID|PATH] [--person ID|none] [--cluster ID|none]\n"
    "                            [--limit N] [--json]\n"
    "\n"
    "Lists the faces in the library by photo path: box (x, y, width, height in the oriented\n"
    "photo's pixels), detection score, person and cluster.\n";

static int open_library(cli_ctx *ctx, fn_store **out)
{
    char path[4200];
    *out = NULL;
    snprintf(path, sizeof path, "%s/library.db", ctx->library_dir);
    if (access(path, F_OK) != 0) return 1;
    char err[1024];
    if (fn_store_open(path, ctx->cfg.db_busy_timeout_ms, out, err, sizeof err) < 0) {
        cli_error(ctx, "%s", err);
        return -1;
    }
    if (fn_library_migrate(*out) < 0) {
        cli_error(ctx, "%s", fn_store_errmsg(*out));
        fn_store_close(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

typedef struct list_state {
    int json, first;
    size_t n;
    cli_table *t;
} list_state;

static int list_cb(const fn_face_row *f, void *arg)
{
    list_state *ls = arg;
    ls->n++;
    if (ls->json) {
        json_t *o =
            json_pack("{s:I, s:s, s:{s:f, s:f, s:f, s:f}, s:f}", "id", (json_int_t)f->id, "photo",
                      f->photo_path, "box", "x", (double)f->x, "y", (double)f->y, "width",
                      (double)f->width, "height", (double)f->height, "score", (double)f->score);
        json_object_set_new(o, "person", f->person_id ? json_integer(f->person_id) : json_null());
        json_object_set_new(o, "cluster",
                            f->cluster_id ? json_integer(f->cluster_id) : json_null());
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(7));
        printf("%s\n  %s", ls->first ? "" : ",", s ? s : "null");
        free(s);
        json_decref(o);
        ls->first = 0;
        return 0;
    }
    char id[24], box[96], score[16], person[24], cluster[24];
    snprintf(id, sizeof id, "%lld", (long long)f->id);
    snprintf(box, sizeof box, "%.0f,%.0f %.0fx%.0f", f->x, f->y, f->width, f->height);
    snprintf(score, sizeof score, "%.3f", f->score);
    snprintf(person, sizeof person, "%lld", (long long)f->person_id);
    snprintf(cluster, sizeof cluster, "%lld", (long long)f->cluster_id);
    const char *cells[] = {
        id, f->photo_path, box, score, f->person_id ? person : "-", f->cluster_id ? cluster : "-"};
    cli_table_add(ls->t, cells);
    return 0;
}

static int parse_ref(const char *v, int64_t *out)
{
    long long n;
    if (strcmp(v, "none") == 0) {
        *out = -1;
        return 0;
    }
    if (cli_parse_ll(v, 1, LLONG_MAX, &n) < 0) return -1;
    *out = n;
    return 0;
}

static int faces_list(cli_ctx *ctx, int argc, char **argv)
{
    const char *cmd = "faces list";
    fn_face_filter f = {0};
    const char *photo = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int m;
        long long n;
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return CLI_EXIT_OK;
        }
        if ((m = cli_opt_value(ctx, cmd, argv, argc, &i, "--photo", &v)) != 0) {
            if (m < 0) return CLI_EXIT_USAGE;
            photo = v;
        } else if ((m = cli_opt_value(ctx, cmd, argv, argc, &i, "--person", &v)) != 0) {
            if (m < 0) return CLI_EXIT_USAGE;
            if (parse_ref(v, &f.person_id) < 0)
                return cli_usage_error(ctx, cmd, "--person wants an id or none");
        } else if ((m = cli_opt_value(ctx, cmd, argv, argc, &i, "--cluster", &v)) != 0) {
            if (m < 0) return CLI_EXIT_USAGE;
            if (parse_ref(v, &f.cluster_id) < 0)
                return cli_usage_error(ctx, cmd, "--cluster wants an id or none");
        } else if ((m = cli_opt_value(ctx, cmd, argv, argc, &i, "--limit", &v)) != 0) {
            if (m < 0) return CLI_EXIT_USAGE;
            if (cli_parse_ll(v, 1, LLONG_MAX, &n) < 0)
                return cli_usage_error(ctx, cmd, "--limit wants a positive number");
            f.limit = (size_t)n;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            return cli_usage_error(ctx, cmd, "unexpected argument %s", argv[i]);
        }
    }
    fn_store *s = NULL;
    int o = open_library(ctx, &s);
    if (o < 0) return CLI_EXIT_FAILURE;
    if (o == 1 && photo) return cli_error(ctx, "no photo %s (the library is empty)", photo);
    if (photo) {
        fn_library_reader *r = NULL;
        fn_photo_row row;
        long long id;
        int rc = fn_library_reader_new(s, &r);
        if (rc == 0) {
            if (cli_parse_ll(photo, 1, LLONG_MAX, &id) == 0) {
                rc = fn_library_photo_by_id(r, id, &row);
            } else {
                char *real = realpath(photo, NULL);
                rc = fn_library_photo_by_path(r, real ? real : photo, &row);
                free(real);
            }
        }
        fn_library_reader_free(r);
        if (rc < 0) {
            if (rc == FN_ERR_NOT_FOUND)
                cli_error(ctx, "no photo %s in the library", photo);
            else
                cli_error(ctx, "%s", fn_store_errmsg(s));
            fn_store_close(s);
            return CLI_EXIT_FAILURE;
        }
        f.photo_id = row.id;
        fn_photo_row_clear(&row);
    }
    static const char *const headers[] = {"ID", "PHOTO", "BOX", "SCORE", "PERSON", "CLUSTER"};
    static const int right[] = {1, 0, 0, 1, 1, 1};
    list_state ls = {.json = json, .first = 1};
    if (!json) ls.t = cli_table_new(6, headers, right);
    if (json) printf("[");
    int rc = o == 0 ? fn_library_faces_each(s, &f, list_cb, &ls) : 0;
    if (json) printf("%s]\n", ls.n ? "\n" : "");
    if (!json) {
        if (ls.n)
            cli_table_print(ls.t, stdout);
        else
            printf("no faces%s\n", o == 1 ? " (the library is empty)" : "");
        cli_table_free(ls.t);
    }
    if (rc < 0) cli_error(ctx, "listing faces: %s", fn_store_errmsg(s));
    fn_store_close(s);
    return rc < 0 ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

int cmd_faces(cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 2 || cli_is_help(argv[1])) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "list") == 0) return faces_list(ctx, argc - 1, argv + 1);
    return cli_usage_error(ctx, "faces", "unknown subcommand %s (list)", argv[1]);
}
