/* cmd_audit.c: `facenames audit list`, `facenames undo [AUDIT_ID]` and `facenames suggestions
 * list|accept|reject`: the record of naming, its undo, and the predict job's suggestions a person
 * accepts or rejects (facenames/people.h). */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "facenames/error.h"
#include "facenames/people.h"

static const char audit_usage[] =
    "usage: facenames audit list [--limit N] [--json]\n"
    "\n"
    "The naming done in the library, newest first: id, time, who, action, faces changed, what it\n"
    "did, and whether it was undone. With --json: [{\"id\", \"at\" (ISO-8601 UTC), \"actor\",\n"
    "\"action\", \"faces\", \"summary\", \"detail\", \"job\", \"undone_by\", \"undoes\"}].\n";

static const char undo_usage[] =
    "usage: facenames undo [AUDIT_ID] [--json]\n"
    "\n"
    "Reverts audit entry AUDIT_ID (default: the newest one not undone yet), faces and persons\n"
    "alike (unmerge, undelete, unsplit), and records the undo as an entry of its own; undoing "
    "that\n"
    "entry redoes. Refused, naming the face, when a later entry still in force changed one of its\n"
    "faces: undo that one first.\n";

static const char sugg_usage[] =
    "usage: facenames suggestions list [--person ID|NAME] [--limit N] [--json]\n"
    "       facenames suggestions accept FACE_ID... [--json]\n"
    "       facenames suggestions reject FACE_ID... [--json]\n"
    "\n"
    "The predict job's suggestions for faces without a person, most confident first. accept:\n"
    "the faces become the suggested person's (confirmed). reject: the face is never suggested\n"
    "or joined to that person again (a cannot-link). Each writes one audit entry.\n";

static int audit_list(cli_ctx *ctx, int argc, char **argv)
{
    const char *cmd = "audit list";
    size_t limit = 0;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        int m;
        if (cli_is_help(argv[i])) {
            fputs(audit_usage, stdout);
            return CLI_EXIT_OK;
        }
        if ((m = cli_opt_limit(ctx, cmd, argv, argc, &i, &limit)) != 0) {
            if (m < 0) return CLI_EXIT_USAGE;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            return cli_usage_error(ctx, cmd, "unexpected argument %s", argv[i]);
        }
    }
    fn_library *lib = NULL;
    int o = cli_people_open(ctx, 0, &lib);
    if (o < 0) return CLI_EXIT_FAILURE;
    fn_audit_entry *e = NULL;
    size_t n = 0;
    int rc = lib ? fn_audit_list(lib, 0, limit, &e, &n) : 0;
    if (rc < 0) {
        cli_people_error(ctx, lib, rc);
        fn_library_close(lib);
        return CLI_EXIT_FAILURE;
    }
    static const char *const headers[] = {"ID", "WHEN", "ACTOR", "ACTION", "FACES", "WHAT"};
    static const int right[] = {1, 0, 0, 0, 1, 0};
    cli_list ls;
    cli_list_begin(&ls, json, 6, headers, right);
    for (size_t i = 0; i < n; i++) {
        json_t *detail = json_loads(e[i].detail, 0, NULL);
        const char *summary = json_string_value(json_object_get(detail, "summary"));
        if (!summary) summary = "";
        char at[40];
        if (json) {
            json_t *o2 = json_pack("{s:I, s:s, s:s, s:s, s:I, s:s, s:O}", "id", (json_int_t)e[i].id,
                                   "at", cli_fmt_iso(e[i].at, at, sizeof at), "actor", e[i].actor,
                                   "action", e[i].action, "faces", (json_int_t)e[i].faces,
                                   "summary", summary, "detail", detail ? detail : json_null());
            json_object_set_new(o2, "job", e[i].job_id ? json_integer(e[i].job_id) : json_null());
            json_object_set_new(o2, "undone_by",
                                e[i].undone_by ? json_integer(e[i].undone_by) : json_null());
            json_object_set_new(o2, "undoes",
                                e[i].undoes ? json_integer(e[i].undoes) : json_null());
            cli_list_json(&ls, o2, JSON_COMPACT);
        } else {
            char id[24], faces[24], what[1200];
            snprintf(id, sizeof id, "%lld", (long long)e[i].id);
            snprintf(faces, sizeof faces, "%lld", (long long)e[i].faces);
            if (e[i].undone_by)
                snprintf(what, sizeof what, "%s [undone by %lld]", summary,
                         (long long)e[i].undone_by);
            else
                snprintf(what, sizeof what, "%s", summary);
            const char *cells[] = {
                id, cli_fmt_time(e[i].at, at, sizeof at), e[i].actor, e[i].action, faces, what};
            cli_list_row(&ls, cells);
        }
        json_decref(detail);
    }
    cli_list_end(&ls, "audit entries", lib == NULL);
    fn_audit_free(e, n);
    fn_library_close(lib);
    return CLI_EXIT_OK;
}

int cmd_audit(cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 2 || cli_is_help(argv[1])) {
        fputs(audit_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "list") == 0) return audit_list(ctx, argc - 1, argv + 1);
    return cli_usage_error(ctx, "audit", "unknown subcommand %s (list)", argv[1]);
}

int cmd_undo(cli_ctx *ctx, int argc, char **argv)
{
    int64_t target = 0;
    int json = 0, have = 0;
    for (int i = 1; i < argc; i++) {
        long long v;
        if (cli_is_help(argv[i])) {
            fputs(undo_usage, stdout);
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (!have &&
                   cli_parse_ll(argv[i][0] == '#' ? argv[i] + 1 : argv[i], 1, LLONG_MAX, &v) == 0) {
            target = v;
            have = 1;
        } else {
            return cli_usage_error(ctx, "undo", "unexpected argument %s (an audit entry id)",
                                   argv[i]);
        }
    }
    fn_library *lib = NULL;
    if (cli_people_open(ctx, 1, &lib) < 0) return CLI_EXIT_FAILURE;
    int64_t u = 0;
    int rc = fn_people_undo(lib, target, &u);
    int ret = rc < 0 ? cli_people_error(ctx, lib, rc) : cli_people_done(ctx, lib, u, json, NULL);
    fn_library_close(lib);
    return ret;
}

static int sugg_list(cli_ctx *ctx, int argc, char **argv)
{
    const char *cmd = "suggestions list";
    size_t limit = 0;
    int json = 0;
    const char *person = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int m;
        if (cli_is_help(argv[i])) {
            fputs(sugg_usage, stdout);
            return CLI_EXIT_OK;
        }
        if ((m = cli_opt_limit(ctx, cmd, argv, argc, &i, &limit)) != 0) {
            if (m < 0) return CLI_EXIT_USAGE;
        } else if ((m = cli_opt_value(ctx, cmd, argv, argc, &i, "--person", &v)) != 0) {
            if (m < 0) return CLI_EXIT_USAGE;
            person = v;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            return cli_usage_error(ctx, cmd, "unexpected argument %s", argv[i]);
        }
    }
    fn_library *lib = NULL;
    int o = cli_people_open(ctx, 0, &lib);
    if (o < 0) return CLI_EXIT_FAILURE;
    int64_t pid = 0;
    if (lib && person) {
        fn_person p;
        if (cli_find_person(ctx, lib, person, &p) < 0) {
            fn_library_close(lib);
            return CLI_EXIT_FAILURE;
        }
        pid = p.id;
        fn_library_free(p.name);
    }
    fn_suggestion *s = NULL;
    size_t n = 0;
    fn_person *pp = NULL;
    size_t np = 0;
    int rc = lib ? fn_suggestions_list(lib, pid, limit, &s, &n) : 0;
    if (rc == 0 && lib) rc = fn_people_list(lib, &pp, &np);
    if (rc < 0) {
        cli_people_error(ctx, lib, rc);
        fn_library_free(s);
        fn_library_close(lib);
        return CLI_EXIT_FAILURE;
    }
    static const char *const headers[] = {"FACE", "PERSON", "NAME", "CONFIDENCE", "DISTANCE"};
    static const int right[] = {1, 1, 0, 1, 1};
    cli_list ls;
    cli_list_begin(&ls, json, 5, headers, right);
    for (size_t i = 0; i < n; i++) {
        const char *name = "";
        for (size_t k = 0; k < np; k++)
            if (pp[k].id == s[i].person_id) name = pp[k].name;
        if (json) {
            cli_list_json(
                &ls,
                json_pack("{s:I, s:I, s:s, s:f, s:f, s:f, s:o}", "face", (json_int_t)s[i].face_id,
                          "person", (json_int_t)s[i].person_id, "name", name, "confidence",
                          (double)s[i].confidence, "distance", (double)s[i].distance, "margin",
                          (double)s[i].margin, "support_face",
                          s[i].support_face ? json_integer(s[i].support_face) : json_null()),
                JSON_COMPACT | JSON_REAL_PRECISION(5));
        } else {
            char face[24], pers[24], conf[16], dist[16];
            snprintf(face, sizeof face, "%lld", (long long)s[i].face_id);
            snprintf(pers, sizeof pers, "%lld", (long long)s[i].person_id);
            snprintf(conf, sizeof conf, "%.2f", s[i].confidence);
            snprintf(dist, sizeof dist, "%.3f", s[i].distance);
            const char *cells[] = {face, pers, name, conf, dist};
            cli_list_row(&ls, cells);
        }
    }
    cli_list_end(&ls, "suggestions", lib == NULL);
    fn_library_free(s);
    fn_persons_free(pp, np);
    fn_library_close(lib);
    return CLI_EXIT_OK;
}

static int sugg_decide(cli_ctx *ctx, int argc, char **argv, int accept)
{
    const char *cmd = accept ? "suggestions accept" : "suggestions reject";
    int json = 0, n = 0;
    int64_t *ids = calloc((size_t)argc + 1, sizeof *ids);
    if (!ids) return cli_error(ctx, "out of memory");
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            free(ids);
            fputs(sugg_usage, stdout);
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
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
    fn_library *lib = NULL;
    if (cli_people_open(ctx, 1, &lib) < 0) {
        free(ids);
        return CLI_EXIT_FAILURE;
    }
    int64_t audit = 0;
    int rc = accept ? fn_suggestions_accept(lib, ids, (size_t)n, &audit)
                    : fn_suggestions_reject(lib, ids, (size_t)n, &audit);
    int ret =
        rc < 0 ? cli_people_error(ctx, lib, rc) : cli_people_done(ctx, lib, audit, json, NULL);
    fn_library_close(lib);
    free(ids);
    return ret;
}

int cmd_suggestions(cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 2 || cli_is_help(argv[1])) {
        fputs(sugg_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "list") == 0) return sugg_list(ctx, argc - 1, argv + 1);
    if (strcmp(argv[1], "accept") == 0) return sugg_decide(ctx, argc - 1, argv + 1, 1);
    if (strcmp(argv[1], "reject") == 0) return sugg_decide(ctx, argc - 1, argv + 1, 0);
    return cli_usage_error(ctx, "suggestions", "unknown subcommand %s (list, accept, reject)",
                           argv[1]);
}
