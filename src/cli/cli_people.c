/* cli_people.c: what the naming commands (`people`, `faces assign|unassign|ignore|move`,
 * `suggestions`, `undo`, `audit`) share: opening the library through the public naming API
 * (facenames/people.h), naming the actor "cli:<login>", reading face ids and persons from the
 * command line, and printing what an operation did from its audit entry. */
#include <jansson.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "facenames/error.h"
#include "facenames/people.h"

int cli_people_open(cli_ctx *ctx, int for_writing, fn_library **out)
{
    *out = NULL;
    int readonly = 0;
    int p = cli_library_probe(ctx, &readonly);
    if (p < 0) return -1;
    if (p == CLI_NO_LIBRARY) {
        if (!for_writing) return CLI_NO_LIBRARY;
        cli_error(ctx, "there is no library in %s yet (facenames ingest creates it)",
                  ctx->library_dir);
        return -1;
    }
    if (readonly && for_writing) {
        cli_error(ctx,
                  "library %s is read-only (its folder or library.db cannot be written): this "
                  "command changes the library; reading commands (people list, faces list, "
                  "audit list) still work",
                  ctx->library_dir);
        return -1;
    }
    fn_library *lib = NULL;
    int rc = fn_library_open(ctx->library_dir, &ctx->cfg, &lib);
    if (rc < 0) {
        cli_error(ctx, "%s", lib ? fn_library_errmsg(lib) : fn_strerror(rc));
        fn_library_close(lib);
        return -1;
    }
    /* the audit names who acted: the login of the user running the command */
    const char *login = NULL;
    struct passwd *pw = getpwuid(geteuid());
    if (pw && pw->pw_name && *pw->pw_name) login = pw->pw_name;
    if (!login) login = getenv("USER");
    char actor[300];
    snprintf(actor, sizeof actor, "cli:%s", login && *login ? login : "unknown");
    fn_library_set_actor(lib, actor);
    *out = lib;
    return 0;
}

int cli_people_error(cli_ctx *ctx, fn_library *lib, int rc)
{
    const char *m = lib ? fn_library_errmsg(lib) : "";
    return cli_error(ctx, "%s", m && *m ? m : fn_strerror(rc));
}

int cli_parse_face_ids(cli_ctx *ctx, const char *cmd, char **args, int n, int64_t *out)
{
    for (int i = 0; i < n; i++) {
        long long v;
        if (cli_parse_ll(args[i], 1, LLONG_MAX, &v) < 0) {
            cli_usage_error(ctx, cmd, "%s is not a face id (a positive number)", args[i]);
            return -1;
        }
        out[i] = v;
    }
    return 0;
}

int cli_find_person(cli_ctx *ctx, fn_library *lib, const char *which, fn_person *out)
{
    int rc = fn_people_find(lib, which, out);
    if (rc < 0) {
        cli_people_error(ctx, lib, rc);
        return -1;
    }
    return 0;
}

/* The entry `id` (NULL when it cannot be read). */
static fn_audit_entry *entry_get(fn_library *lib, int64_t id)
{
    fn_audit_entry *e = NULL;
    size_t n = 0;
    if (fn_audit_list(lib, id - 1, 0, &e, &n) < 0) return NULL;
    for (size_t i = 0; i < n; i++)
        if (e[i].id == id) {
            fn_audit_entry *one = malloc(sizeof *one);
            if (one) {
                *one = e[i];
                memset(&e[i], 0, sizeof e[i]);
            }
            fn_audit_free(e, n);
            return one;
        }
    fn_audit_free(e, n);
    return NULL;
}

int cli_people_done(cli_ctx *ctx, fn_library *lib, int64_t audit_id, int json, json_t *extra)
{
    if (!extra) extra = json_object();
    if (audit_id == 0) {
        if (json) {
            json_object_set_new(extra, "audit", json_null());
            json_object_set_new(extra, "summary", json_string("nothing to change"));
            char *s = json_dumps(extra, JSON_COMPACT);
            printf("%s\n", s ? s : "{}");
            free(s);
        } else {
            printf("nothing to change\n");
        }
        json_decref(extra);
        return CLI_EXIT_OK;
    }
    fn_audit_entry *e = entry_get(lib, audit_id);
    json_t *detail = e ? json_loads(e->detail, 0, NULL) : NULL;
    const char *summary = json_string_value(json_object_get(detail, "summary"));
    if (json) {
        json_object_set_new(extra, "audit", json_integer(audit_id));
        if (e) {
            json_object_set_new(extra, "action", json_string(e->action));
            json_object_set_new(extra, "faces", json_integer(e->faces));
        }
        json_object_set_new(extra, "summary", json_string(summary ? summary : ""));
        char *s = json_dumps(extra, JSON_COMPACT);
        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        printf("%s (audit %lld; `facenames undo %lld` reverts it)\n", summary ? summary : "done",
               (long long)audit_id, (long long)audit_id);
    }
    json_decref(detail);
    json_decref(extra);
    if (e) fn_audit_free(e, 1);
    return CLI_EXIT_OK;
}
