/* cmd_faces.c: `facenames faces list`: the faces in the library, optionally of one photo; and
 * `faces assign|unassign|ignore|move`, the naming of faces (through facenames/people.h).
 *
 * With --json the list is one JSON array of {"id", "photo" (path), "box": {"x", "y", "width",
 * "height"}, "score", "person", "cluster", "state", "suggestion"} (person and cluster null when
 * unassigned; state "auto", "confirmed" or "ignored"; suggestion null or {"person", "name",
 * "confidence"}), streamed row by row so a library of a million faces lists in constant memory.
 * Like `photos`, it reads the database directly and works while an ingest runs elsewhere. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "facenames/error.h"
#include "facenames/people.h"
#include "store/library/library_store.h"
#include "util/pathenc_json.h"

static const char usage[] =
    "usage: facenames faces list [--photo ID|PATH] [--person ID|none] [--cluster ID|none]\n"
    "                            [--limit N] [--json]\n"
    "       facenames faces assign FACE_ID... --person NAME|ID [--json]\n"
    "       facenames faces move FACE_ID... --person NAME|ID [--json]\n"
    "       facenames faces unassign FACE_ID... [--json]\n"
    "       facenames faces ignore FACE_ID... [--json]\n"
    "\n"
    "list: the faces in the library by photo path: box (x, y, width, height in the oriented\n"
    "photo's pixels), detection score, person, cluster, state (auto, confirmed, ignored) and the\n"
    "pending suggestion.\n"
    "assign: confirms the faces as the person's (a new name creates the person); move: the same\n"
    "for faces that have a person, to an existing person; unassign: the faces go back to no\n"
    "person, no cluster, state auto (an ignored face is unignored); ignore: not a face, or a\n"
    "stranger (no job looks at it again). Each writes one audit entry (`facenames undo`).\n";

static int list_cb(const fn_face_row *f, void *arg)
{
    cli_list *ls = arg;
    if (ls->json) {
        json_t *o = json_pack("{s:I}", "id", (json_int_t)f->id);
        /* a path need not be UTF-8: "photo" (escaped when it is not) and then "photo_b64" */
        fn_json_set_path(o, "photo", f->photo_path);
        json_object_set_new(o, "box",
                            json_pack("{s:f, s:f, s:f, s:f}", "x", (double)f->x, "y", (double)f->y,
                                      "width", (double)f->width, "height", (double)f->height));
        json_object_set_new(o, "score", json_real((double)f->score));
        json_object_set_new(o, "person", f->person_id ? json_integer(f->person_id) : json_null());
        json_object_set_new(o, "cluster",
                            f->cluster_id ? json_integer(f->cluster_id) : json_null());
        json_object_set_new(o, "state", json_string(fn_face_state_name((fn_face_state)f->state)));
        json_object_set_new(o, "suggestion",
                            f->suggestion_person
                                ? json_pack("{s:I, s:s, s:f}", "person",
                                            (json_int_t)f->suggestion_person, "name",
                                            f->suggestion_name ? f->suggestion_name : "",
                                            "confidence", (double)f->suggestion_confidence)
                                : json_null());
        cli_list_json(ls, o, JSON_COMPACT | JSON_REAL_PRECISION(7));
        return 0;
    }
    char id[24], box[96], score[16], person[24], cluster[24];
    snprintf(id, sizeof id, "%lld", (long long)f->id);
    snprintf(box, sizeof box, "%.0f,%.0f %.0fx%.0f", f->x, f->y, f->width, f->height);
    snprintf(score, sizeof score, "%.3f", f->score);
    snprintf(person, sizeof person, "%lld", (long long)f->person_id);
    snprintf(cluster, sizeof cluster, "%lld", (long long)f->cluster_id);
    const char *cells[] = {id,
                           f->photo_path,
                           box,
                           score,
                           f->person_id ? person : "-",
                           f->cluster_id ? cluster : "-",
                           fn_face_state_name((fn_face_state)f->state)};
    cli_list_row(ls, cells);
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
        } else if ((m = cli_opt_limit(ctx, cmd, argv, argc, &i, &f.limit)) != 0) {
            if (m < 0) return CLI_EXIT_USAGE;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            return cli_usage_error(ctx, cmd, "unexpected argument %s", argv[i]);
        }
    }
    fn_store *s = NULL;
    int o = cli_library_open(ctx, &s);
    if (o < 0) return CLI_EXIT_FAILURE;
    if (o == 1 && photo) return cli_error(ctx, "no photo %s (the library is empty)", photo);
    if (photo) {
        fn_library_reader *r = NULL;
        fn_photo_row row;
        int rc = fn_library_reader_new(s, &r);
        if (rc == 0) rc = cli_library_photo(r, photo, &row);
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
    static const char *const headers[] = {"ID",     "PHOTO",   "BOX",  "SCORE",
                                          "PERSON", "CLUSTER", "STATE"};
    static const int right[] = {1, 0, 0, 1, 1, 1, 0};
    cli_list ls;
    cli_list_begin(&ls, json, 7, headers, right);
    int rc = o == 0 ? fn_library_faces_each(s, &f, list_cb, &ls) : 0;
    cli_list_end(&ls, "faces", o == 1);
    if (rc < 0) cli_error(ctx, "listing faces: %s", fn_store_errmsg(s));
    fn_store_close(s);
    return rc < 0 ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

/* assign|move|unassign|ignore FACE_ID... [--person NAME|ID] [--json] */
static int faces_name(cli_ctx *ctx, int argc, char **argv)
{
    const char *sub = argv[0];
    char cmd[32];
    snprintf(cmd, sizeof cmd, "faces %s", sub);
    int to_person = strcmp(sub, "assign") == 0 || strcmp(sub, "move") == 0;
    const char *person = NULL;
    int json = 0, n = 0;
    int64_t *ids = calloc((size_t)argc + 1, sizeof *ids);
    if (!ids) return cli_error(ctx, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *v;
        int m;
        if (cli_is_help(argv[i])) {
            free(ids);
            fputs(usage, stdout);
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (to_person &&
                   (m = cli_opt_value(ctx, cmd, argv, argc, &i, "--person", &v)) != 0) {
            if (m < 0) {
                free(ids);
                return CLI_EXIT_USAGE;
            }
            person = v;
        } else if (cli_parse_face_ids(ctx, cmd, argv + i, 1, ids + n) == 0) {
            n++;
        } else {
            free(ids);
            return CLI_EXIT_USAGE;
        }
    }
    if (n == 0) {
        free(ids);
        return cli_usage_error(ctx, cmd, "wants at least one face id");
    }
    if (to_person && !person) {
        free(ids);
        return cli_usage_error(ctx, cmd, "wants --person NAME|ID");
    }
    fn_library *lib = NULL;
    if (cli_people_open(ctx, 1, &lib) < 0) {
        free(ids);
        return CLI_EXIT_FAILURE;
    }
    int64_t audit = 0, pid = 0;
    int rc, ret;
    long long num;
    if (to_person && cli_parse_ll(person, 1, LLONG_MAX, &num) == 0) {
        pid = num;
        rc = fn_faces_assign(lib, ids, (size_t)n, pid, &audit);
    } else if (strcmp(sub, "assign") == 0) {
        /* a new name creates the person, in the same audit entry */
        rc = fn_faces_assign_named(lib, ids, (size_t)n, person, &pid, &audit);
    } else if (to_person) {
        fn_person p;
        rc = fn_people_find(lib, person, &p);
        if (rc == 0) {
            pid = p.id;
            fn_library_free(p.name);
            rc = fn_faces_assign(lib, ids, (size_t)n, pid, &audit);
        }
    } else if (strcmp(sub, "unassign") == 0) {
        rc = fn_faces_unassign(lib, ids, (size_t)n, &audit);
    } else {
        rc = fn_faces_ignore(lib, ids, (size_t)n, &audit);
    }
    if (rc < 0)
        ret = cli_people_error(ctx, lib, rc);
    else
        ret = cli_people_done(ctx, lib, audit, json,
                              to_person ? json_pack("{s:I}", "person", (json_int_t)pid) : NULL);
    fn_library_close(lib);
    free(ids);
    return ret;
}

int cmd_faces(cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 2 || cli_is_help(argv[1])) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "list") == 0) return faces_list(ctx, argc - 1, argv + 1);
    if (strcmp(argv[1], "assign") == 0 || strcmp(argv[1], "move") == 0 ||
        strcmp(argv[1], "unassign") == 0 || strcmp(argv[1], "ignore") == 0)
        return faces_name(ctx, argc - 1, argv + 1);
    return cli_usage_error(ctx, "faces",
                           "unknown subcommand %s (list, assign, move, unassign, ignore)", argv[1]);
}
