/* cmd_people.c: `facenames people list|show|rename|merge|split|delete|sheet`: the persons of the
 * library and the naming operations on them, through the public naming API (facenames/people.h).
 *
 * Every change is one audit entry; the command prints its summary and the `facenames undo ID`
 * that reverts it (with --json: {"audit", "action", "faces", "summary", ...}). Persons are given
 * by id or by name (exact, then case-insensitive). */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "facenames/error.h"
#include "facenames/people.h"
#include "util/pathenc_json.h"

static const char usage[] =
    "usage: facenames people list [--json]\n"
    "       facenames people show ID|NAME [--json]\n"
    "       facenames people rename ID|NAME NEW_NAME [--json]\n"
    "       facenames people merge FROM INTO [--json]\n"
    "       facenames people split ID|NAME --name NEW_NAME FACE_ID... [--json]\n"
    "       facenames people delete ID|NAME [--json]\n"
    "       facenames people sheet OUT.html|OUT.png [--max N]\n"
    "\n"
    "The persons of the library. list: id, name, faces and confirmed faces, most faces first.\n"
    "show: one person's faces. rename, merge (FROM's faces move to INTO, FROM is deleted), split\n"
    "(the faces given move to a new person) and delete (the faces stay, without a person) each\n"
    "write one audit entry: `facenames undo` reverts them. sheet: a contact sheet of face\n"
    "thumbnails per person and per cluster, biggest first, at most N faces each (default 24).\n";

/* Positional arguments and the options every subcommand takes. */
typedef struct args {
    char **pos;
    int n;
    int json;
    const char *name; /* --name */
    long long max;    /* --max */
} args;

static int parse(cli_ctx *ctx, const char *cmd, int argc, char **argv, args *a, int want_name,
                 int want_max)
{
    memset(a, 0, sizeof *a);
    a->max = 24;
    a->pos = calloc((size_t)argc + 1, sizeof *a->pos);
    if (!a->pos) return cli_error(ctx, "out of memory");
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int m;
        if (only_pos || argv[i][0] != '-' || (argv[i][1] >= '0' && argv[i][1] <= '9')) {
            a->pos[a->n++] = argv[i];
        } else if (strcmp(argv[i], "--") == 0) {
            only_pos = 1;
        } else if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return -2;
        } else if (strcmp(argv[i], "--json") == 0) {
            a->json = 1;
        } else if (want_name && (m = cli_opt_value(ctx, cmd, argv, argc, &i, "--name", &v)) != 0) {
            if (m < 0) return CLI_EXIT_USAGE;
            a->name = v;
        } else if (want_max && (m = cli_opt_value(ctx, cmd, argv, argc, &i, "--max", &v)) != 0) {
            if (m < 0) return CLI_EXIT_USAGE;
            if (cli_parse_ll(v, 1, 100000, &a->max) < 0)
                return cli_usage_error(ctx, cmd, "--max wants a number from 1 to 100000");
        } else {
            return cli_usage_error(ctx, cmd, "unexpected argument %s", argv[i]);
        }
    }
    return 0;
}

static int people_list(cli_ctx *ctx, fn_library *lib, const args *a)
{
    fn_person *p = NULL;
    size_t n = 0;
    int rc = lib ? fn_people_list(lib, &p, &n) : 0;
    if (rc < 0) return cli_people_error(ctx, lib, rc);
    static const char *const headers[] = {"ID", "NAME", "FACES", "CONFIRMED"};
    static const int right[] = {1, 0, 1, 1};
    cli_list ls;
    cli_list_begin(&ls, a->json, 4, headers, right);
    for (size_t i = 0; i < n; i++) {
        if (a->json) {
            cli_list_json(&ls,
                          json_pack("{s:I, s:s, s:I, s:I}", "id", (json_int_t)p[i].id, "name",
                                    p[i].name, "faces", (json_int_t)p[i].faces, "confirmed",
                                    (json_int_t)p[i].confirmed),
                          JSON_COMPACT);
        } else {
            char id[24], faces[24], conf[24];
            snprintf(id, sizeof id, "%lld", (long long)p[i].id);
            snprintf(faces, sizeof faces, "%lld", (long long)p[i].faces);
            snprintf(conf, sizeof conf, "%lld", (long long)p[i].confirmed);
            const char *cells[] = {id, p[i].name, faces, conf};
            cli_list_row(&ls, cells);
        }
    }
    cli_list_end(&ls, "persons", lib == NULL);
    fn_persons_free(p, n);
    return CLI_EXIT_OK;
}

static int people_show(cli_ctx *ctx, fn_library *lib, const args *a)
{
    fn_person p;
    if (cli_find_person(ctx, lib, a->pos[0], &p) < 0) return CLI_EXIT_FAILURE;
    fn_face_query q = {.person_id = p.id, .state = -1};
    fn_library_face *f = NULL;
    size_t n = 0;
    int rc = fn_faces_query(lib, &q, &f, &n);
    if (rc < 0) {
        fn_library_free(p.name);
        return cli_people_error(ctx, lib, rc);
    }
    json_t *items = a->json ? json_array() : NULL;
    if (!a->json) {
        printf("person %lld: %s, %lld faces (%lld confirmed)\n", (long long)p.id, p.name,
               (long long)p.faces, (long long)p.confirmed);
    }
    static const char *const headers[] = {"FACE", "PHOTO", "BOX", "STATE", "CLUSTER"};
    static const int right[] = {1, 0, 0, 0, 1};
    cli_table *t = a->json ? NULL : cli_table_new(5, headers, right);
    for (size_t i = 0; i < n; i++) {
        char *path = NULL;
        if (fn_photo_path(lib, f[i].photo_id, &path) < 0) path = NULL;
        if (a->json) {
            json_t *o = json_pack("{s:I}", "id", (json_int_t)f[i].id);
            fn_json_set_path(o, "photo", path ? path : "");
            json_object_set_new(o, "box",
                                json_pack("{s:f, s:f, s:f, s:f}", "x", (double)f[i].x, "y",
                                          (double)f[i].y, "width", (double)f[i].width, "height",
                                          (double)f[i].height));
            json_object_set_new(o, "state", json_string(fn_face_state_name(f[i].state)));
            json_object_set_new(o, "cluster",
                                f[i].cluster_id ? json_integer(f[i].cluster_id) : json_null());
            json_array_append_new(items, o);
        } else {
            char id[24], box[96], cluster[24];
            snprintf(id, sizeof id, "%lld", (long long)f[i].id);
            snprintf(box, sizeof box, "%.0f,%.0f %.0fx%.0f", f[i].x, f[i].y, f[i].width,
                     f[i].height);
            snprintf(cluster, sizeof cluster, "%lld", (long long)f[i].cluster_id);
            const char *cells[] = {id, path ? path : "?", box, fn_face_state_name(f[i].state),
                                   f[i].cluster_id ? cluster : "-"};
            cli_table_add(t, cells);
        }
        fn_library_free(path);
    }
    if (a->json) {
        json_t *o = json_pack("{s:I, s:s, s:I, s:I, s:o}", "id", (json_int_t)p.id, "name", p.name,
                              "faces", (json_int_t)p.faces, "confirmed", (json_int_t)p.confirmed,
                              "face_list", items);
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(7));
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(o);
    } else {
        if (n) cli_table_print(t, stdout);
        cli_table_free(t);
    }
    fn_library_free(f);
    fn_library_free(p.name);
    return CLI_EXIT_OK;
}

int cli_people_sheet(cli_ctx *ctx, fn_library *lib, const char *out, long long max);

int cmd_people(cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 2 || cli_is_help(argv[1])) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    const char *sub = argv[1];
    static const struct {
        const char *name;
        int npos; /* positional arguments wanted; -1: at least one more than 1 */
        int writes, name_opt, max_opt;
    } subs[] = {
        {"list", 0, 0, 0, 0},  {"show", 1, 0, 0, 0},   {"rename", 2, 1, 0, 0},
        {"merge", 2, 1, 0, 0}, {"split", -1, 1, 1, 0}, {"delete", 1, 1, 0, 0},
        {"sheet", 1, 0, 0, 1},
    };
    int k = -1;
    for (int i = 0; i < (int)(sizeof subs / sizeof subs[0]); i++)
        if (strcmp(sub, subs[i].name) == 0) k = i;
    if (k < 0)
        return cli_usage_error(ctx, "people",
                               "unknown subcommand %s (list, show, rename, merge, split, delete, "
                               "sheet)",
                               sub);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "people %s", sub);
    args a;
    int rc = parse(ctx, cmd, argc - 1, argv + 1, &a, subs[k].name_opt, subs[k].max_opt);
    if (rc != 0) {
        free(a.pos);
        return rc == -2 ? CLI_EXIT_OK : rc;
    }
    if (subs[k].npos >= 0 && a.n != subs[k].npos) {
        free(a.pos);
        return cli_usage_error(ctx, cmd, "wants %d argument%s, got %d", subs[k].npos,
                               subs[k].npos == 1 ? "" : "s", a.n);
    }
    if (subs[k].npos < 0 && (a.n < 2 || !a.name)) {
        free(a.pos);
        return cli_usage_error(ctx, cmd, "wants ID|NAME, --name NEW_NAME and at least one face id");
    }
    fn_library *lib = NULL;
    int o = cli_people_open(ctx, subs[k].writes, &lib);
    if (o < 0) {
        free(a.pos);
        return CLI_EXIT_FAILURE;
    }
    if (o == CLI_NO_LIBRARY && strcmp(sub, "list") != 0) {
        free(a.pos);
        return cli_error(ctx, "there is no library in %s yet (facenames ingest creates it)",
                         ctx->library_dir);
    }
    int ret = CLI_EXIT_OK;
    int64_t audit = 0;
    fn_person p = {0}, q = {0};
    if (strcmp(sub, "list") == 0) {
        ret = people_list(ctx, lib, &a);
    } else if (strcmp(sub, "show") == 0) {
        ret = people_show(ctx, lib, &a);
    } else if (strcmp(sub, "sheet") == 0) {
        ret = cli_people_sheet(ctx, lib, a.pos[0], a.max);
    } else if (cli_find_person(ctx, lib, a.pos[0], &p) < 0) {
        ret = CLI_EXIT_FAILURE;
    } else if (strcmp(sub, "rename") == 0) {
        rc = fn_people_rename(lib, p.id, a.pos[1], &audit);
        ret = rc < 0 ? cli_people_error(ctx, lib, rc)
                     : cli_people_done(ctx, lib, audit, a.json,
                                       json_pack("{s:I}", "person", (json_int_t)p.id));
    } else if (strcmp(sub, "delete") == 0) {
        rc = fn_people_delete(lib, p.id, &audit);
        ret = rc < 0 ? cli_people_error(ctx, lib, rc)
                     : cli_people_done(ctx, lib, audit, a.json,
                                       json_pack("{s:I}", "person", (json_int_t)p.id));
    } else if (strcmp(sub, "merge") == 0) {
        if (cli_find_person(ctx, lib, a.pos[1], &q) < 0) {
            ret = CLI_EXIT_FAILURE;
        } else {
            rc = fn_people_merge(lib, p.id, q.id, &audit);
            ret = rc < 0 ? cli_people_error(ctx, lib, rc)
                         : cli_people_done(ctx, lib, audit, a.json,
                                           json_pack("{s:I, s:I}", "from", (json_int_t)p.id, "into",
                                                     (json_int_t)q.id));
        }
    } else { /* split */
        int64_t *ids = calloc((size_t)a.n, sizeof *ids), np = 0;
        if (!ids) {
            ret = cli_error(ctx, "out of memory");
        } else if (cli_parse_face_ids(ctx, cmd, a.pos + 1, a.n - 1, ids) < 0) {
            ret = CLI_EXIT_USAGE;
        } else {
            rc = fn_people_split(lib, p.id, ids, (size_t)(a.n - 1), a.name, &np, &audit);
            ret = rc < 0 ? cli_people_error(ctx, lib, rc)
                         : cli_people_done(ctx, lib, audit, a.json,
                                           json_pack("{s:I, s:I}", "from", (json_int_t)p.id,
                                                     "person", (json_int_t)np));
        }
        free(ids);
    }
    fn_library_free(p.name);
    fn_library_free(q.name);
    fn_library_close(lib);
    free(a.pos);
    return ret;
}
