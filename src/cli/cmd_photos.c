/* cmd_photos.c: `facenames photos list|show`: what the library knows about its photos.
 *
 * Reading commands open the library's database directly through the library store (no engine, no
 * owner registration, no recovery): they must work, and stay cheap, while an ingest is running in
 * another process. A library that does not exist yet simply has no photos. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "store/library/library_store.h"
#include "util/pathenc.h"
#include "util/pathenc_json.h"

static const char usage[] =
    "usage: facenames photos list [--status ok|no_faces|error] [--under DIR] [--limit N] [--json]\n"
    "       facenames photos show ID|PATH [--json]\n"
    "\n"
    "list: the photos in the library, by path, with size, faces and status.\n"
    "show: one photo (by id or by path) and its faces.\n";

static json_t *photo_json(const fn_photo_row *r)
{
    char hash[20];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)r->hash);
    json_t *o = json_pack("{s:I}", "id", (json_int_t)r->id);
    /* a path need not be UTF-8: "path" (escaped when it is not) and then "path_b64" */
    fn_json_set_path(o, "path", r->path);
    json_t *rest =
        json_pack("{s:I, s:I, s:s, s:i, s:i, s:s, s:i, s:i}", "size", (json_int_t)r->size,
                  "mtime_ns", (json_int_t)r->mtime_ns, "hash", hash, "width", r->width, "height",
                  r->height, "status", fn_photo_status_name(r->status), "faces", r->n_faces,
                  "faces_skipped_small", r->faces_skipped_small);
    json_object_update(o, rest);
    json_decref(rest);
    json_object_set_new(o, "format", r->format[0] ? json_string(r->format) : json_null());
    json_object_set_new(o, "taken_at", r->taken_at >= 0 ? json_integer(r->taken_at) : json_null());
    json_object_set_new(o, "error_code",
                        r->error_code[0] ? json_string(r->error_code) : json_null());
    char iso[40];
    json_object_set_new(o, "ingested_at",
                        json_string(cli_fmt_iso(r->ingested_at, iso, sizeof iso)));
    json_object_set_new(o, "job", json_integer(r->job_id));
    return o;
}

static int list_cb(const fn_photo_row *r, void *arg)
{
    cli_list *ls = arg;
    if (ls->json) {
        cli_list_json(ls, photo_json(r), JSON_COMPACT);
        return 0;
    }
    char id[24], size[32], dims[32], faces[16];
    snprintf(id, sizeof id, "%lld", (long long)r->id);
    fn_fmt_bytes(r->size, size, sizeof size);
    snprintf(dims, sizeof dims, "%dx%d", r->width, r->height);
    snprintf(faces, sizeof faces, "%d", r->n_faces);
    const char *status =
        r->status == FN_PHOTO_ERROR ? r->error_code : fn_photo_status_name(r->status);
    const char *cells[] = {id, r->path, size, r->width ? dims : "-", faces, status};
    cli_list_row(ls, cells);
    return 0;
}

static int photos_list(cli_ctx *ctx, int argc, char **argv)
{
    const char *cmd = "photos list";
    fn_photo_filter f = {.status = -1};
    int json = 0;
    /* owned: every return below frees it (an early one on a bad option used to leak it) */
    char *under = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int m;
        int bad = -1; /* exit code when the command line is done with early */
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            bad = CLI_EXIT_OK;
        } else if ((m = cli_opt_value(ctx, cmd, argv, argc, &i, "--status", &v)) != 0) {
            fn_photo_status s;
            if (m < 0)
                bad = CLI_EXIT_USAGE;
            else if (fn_photo_status_parse(v, &s) < 0)
                bad = cli_usage_error(ctx, cmd, "--status is ok, no_faces or error");
            else
                f.status = (int)s;
        } else if ((m = cli_opt_value(ctx, cmd, argv, argc, &i, "--under", &v)) != 0) {
            if (m < 0) {
                bad = CLI_EXIT_USAGE;
            } else {
                free(under);
                under = realpath(v, NULL);
                if (!under) under = strdup(v);
                f.path_prefix = under;
            }
        } else if ((m = cli_opt_limit(ctx, cmd, argv, argc, &i, &f.limit)) != 0) {
            if (m < 0) bad = CLI_EXIT_USAGE;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            bad = cli_usage_error(ctx, cmd, "unexpected argument %s", argv[i]);
        }
        if (bad >= 0) {
            free(under);
            return bad;
        }
    }
    fn_store *s = NULL;
    int o = cli_library_open(ctx, &s);
    if (o < 0) {
        free(under);
        return CLI_EXIT_FAILURE;
    }
    static const char *const headers[] = {"ID", "PATH", "SIZE", "PIXELS", "FACES", "STATUS"};
    static const int right[] = {1, 0, 1, 1, 1, 0};
    cli_list ls;
    cli_list_begin(&ls, json, 6, headers, right);
    int rc = o == 0 ? fn_library_photos_each(s, &f, list_cb, &ls) : 0;
    cli_list_end(&ls, "photos", o == 1);
    if (rc < 0) cli_error(ctx, "listing photos: %s", fn_store_errmsg(s));
    fn_store_close(s);
    free(under);
    return rc < 0 ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

static int face_cb(const fn_face_row *f, void *arg)
{
    json_t *faces = arg;
    json_t *o = json_pack("{s:I, s:{s:f, s:f, s:f, s:f}, s:f, s:s}", "id", (json_int_t)f->id, "box",
                          "x", (double)f->x, "y", (double)f->y, "width", (double)f->width, "height",
                          (double)f->height, "score", (double)f->score, "origin",
                          f->origin_user ? "user" : "auto");
    json_object_set_new(o, "person", f->person_id ? json_integer(f->person_id) : json_null());
    json_object_set_new(o, "cluster", f->cluster_id ? json_integer(f->cluster_id) : json_null());
    json_array_append_new(faces, o);
    return 0;
}

static int photos_show(cli_ctx *ctx, int argc, char **argv)
{
    const char *cmd = "photos show";
    const char *which = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (!which)
            which = argv[i];
        else
            return cli_usage_error(ctx, cmd, "unexpected argument %s", argv[i]);
    }
    if (!which) return cli_usage_error(ctx, cmd, "name a photo by id or path");
    fn_store *s = NULL;
    int o = cli_library_open(ctx, &s);
    if (o < 0) return CLI_EXIT_FAILURE;
    if (o == 1)
        return cli_error(ctx, "no photo %s: there is no library in %s", which, ctx->library_dir);
    fn_library_reader *r = NULL;
    fn_photo_row row;
    int rc = fn_library_reader_new(s, &r);
    if (rc == 0) rc = cli_library_photo(r, which, &row);
    int ret = CLI_EXIT_OK;
    if (rc == FN_ERR_NOT_FOUND) {
        ret = cli_error(ctx, "no photo %s in the library", which);
    } else if (rc < 0) {
        ret = cli_error(ctx, "%s", fn_store_errmsg(s));
    } else {
        json_t *faces = json_array();
        fn_face_filter ff = {.photo_id = row.id};
        fn_library_faces_each(s, &ff, face_cb, faces);
        json_t *p = photo_json(&row);
        /* Where else its bytes were found (design decision 34); a read error leaves it out. */
        char **copies = NULL;
        size_t n_copies = 0;
        fn_library_photo_copies(s, row.id, &copies, &n_copies);
        if (json) {
            json_t *ca = json_array();
            for (size_t i = 0; i < n_copies; i++) {
                json_t *co = json_object();
                fn_json_set_path(co, "path", copies[i]);
                json_array_append_new(ca, co);
            }
            json_object_set_new(p, "copies", ca);
            json_object_set(p, "faces", faces);
            char *t = json_dumps(p, JSON_INDENT(2));
            printf("%s\n", t ? t : "null");
            free(t);
        } else {
            char b[64], iso[40];
            printf("photo %lld  %s\n", (long long)row.id, fn_term_str(row.path));
            printf("  status     %s%s%s\n", fn_photo_status_name(row.status),
                   row.error_code[0] ? " " : "", fn_term_str(row.error_code));
            printf("  size       %s, %dx%d %s\n", fn_fmt_bytes(row.size, b, sizeof b), row.width,
                   row.height, row.format);
            if (row.taken_at >= 0)
                printf("  taken      %s\n", cli_fmt_time(row.taken_at * 1000, b, sizeof b));
            printf("  ingested   %s by job %lld\n", cli_fmt_iso(row.ingested_at, iso, sizeof iso),
                   (long long)row.job_id);
            for (size_t i = 0; i < n_copies; i++)
                printf("  copy       %s\n", fn_term_str(copies[i]));
            printf("  faces      %d", row.n_faces);
            if (row.faces_skipped_small)
                printf(" (%d smaller than the minimum size ignored)", row.faces_skipped_small);
            printf("\n");
            for (size_t i = 0; i < json_array_size(faces); i++) {
                json_t *fo = json_array_get(faces, i);
                json_t *box = json_object_get(fo, "box");
                printf("    face %lld  %.0f,%.0f %.0fx%.0f  score %.3f\n",
                       (long long)json_integer_value(json_object_get(fo, "id")),
                       json_real_value(json_object_get(box, "x")),
                       json_real_value(json_object_get(box, "y")),
                       json_real_value(json_object_get(box, "width")),
                       json_real_value(json_object_get(box, "height")),
                       json_real_value(json_object_get(fo, "score")));
            }
        }
        json_decref(p);
        json_decref(faces);
        for (size_t i = 0; i < n_copies; i++)
            free(copies[i]);
        free(copies);
        fn_photo_row_clear(&row);
    }
    fn_library_reader_free(r);
    fn_store_close(s);
    return ret;
}

int cmd_photos(cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 2 || cli_is_help(argv[1])) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "list") == 0) return photos_list(ctx, argc - 1, argv + 1);
    if (strcmp(argv[1], "show") == 0) return photos_show(ctx, argc - 1, argv + 1);
    return cli_usage_error(ctx, "photos", "unknown subcommand %s (list, show)", argv[1]);
}
