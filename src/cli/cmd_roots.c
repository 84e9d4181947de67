/* cmd_roots.c: `facenames roots list | add NAME PATH | map NAME PATH [--host ID]`: the library's
 * photo roots, each a folder known by a name and mounted at a path per host, so that workers on
 * several machines recognise one photo whatever path their machine reaches it through.
 *
 * Ingest makes a root of a folder no root of this host holds; `add` names one before that, `map`
 * tells the library where another host (or this one, after a move) mounts a root. Paths that
 * exist here are resolved (realpath), as ingest resolves them; a path given for another host is
 * kept as written (it need not exist here), but must be absolute. */
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
    "usage: facenames roots list [--json]\n"
    "       facenames roots add NAME PATH [--host ID]\n"
    "       facenames roots map NAME PATH [--host ID]\n"
    "\n"
    "list: the library's photo roots and each host's path of them.\n"
    "add:  a new root NAME, mounted at PATH on this host (or host ID).\n"
    "map:  where this host (or host ID) mounts root NAME; replaces its previous path.\n"
    "A host is named by worker.host (default: the hostname), as `worker --host` names it.\n";

/* This process's host id, as the engine records it. */
static void this_host(cli_ctx *ctx, char *out, size_t cap)
{
    if (ctx->cfg.worker_host[0])
        snprintf(out, cap, "%s", ctx->cfg.worker_host);
    else if (gethostname(out, cap - 1) != 0)
        snprintf(out, cap, "localhost");
    out[cap - 1] = 0;
}

static int roots_list(cli_ctx *ctx, int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else
            return cli_usage_error(ctx, "roots", "unexpected argument %s", argv[i]);
    }
    fn_store *s = NULL;
    int o = cli_library_open(ctx, &s);
    if (o < 0) return CLI_EXIT_FAILURE;
    fn_root_path *v = NULL;
    size_t n = 0;
    int rc = o == 0 ? fn_library_root_paths(s, NULL, &v, &n) : 0;
    if (rc < 0) {
        cli_error(ctx, "listing roots: %s", fn_store_errmsg(s));
        fn_store_close(s);
        return CLI_EXIT_FAILURE;
    }
    static const char *const headers[] = {"ID", "NAME", "HOST", "PATH"};
    static const int right[] = {1, 0, 0, 0};
    cli_list ls;
    cli_list_begin(&ls, json, 4, headers, right);
    for (size_t i = 0; i < n; i++) {
        if (json) {
            json_t *j = json_pack("{s:I, s:s}", "id", (json_int_t)v[i].root, "name", v[i].name);
            json_object_set_new(j, "host", v[i].host ? json_string(v[i].host) : json_null());
            if (v[i].path)
                fn_json_set_path(j, "path", v[i].path);
            else
                json_object_set_new(j, "path", json_null());
            cli_list_json(&ls, j, JSON_COMPACT);
            continue;
        }
        char id[24];
        snprintf(id, sizeof id, "%lld", (long long)v[i].root);
        const char *cells[] = {id, fn_term_str(v[i].name), v[i].host ? fn_term_str(v[i].host) : "-",
                               v[i].path ? fn_term_str(v[i].path) : "-"};
        cli_list_row(&ls, cells);
    }
    cli_list_end(&ls, "roots", o == 1);
    fn_root_paths_free(v, n);
    if (s) fn_store_close(s);
    return CLI_EXIT_OK;
}

static int roots_set(cli_ctx *ctx, int add, int argc, char **argv)
{
    const char *cmd = add ? "roots add" : "roots map";
    const char *pos[2] = {NULL, NULL};
    size_t npos = 0;
    char host[256];
    this_host(ctx, host, sizeof host);
    int other_host = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if ((r = cli_opt_value(ctx, cmd, argv, argc, &i, "--host", &v)) != 0) {
            if (r < 0) return CLI_EXIT_USAGE;
            if (!*v || strlen(v) >= sizeof host)
                return cli_usage_error(ctx, cmd, "--host: expected an id of 1 to 255 bytes");
            snprintf(host, sizeof host, "%s", v);
            other_host = 1;
        } else if (npos < 2) {
            pos[npos++] = argv[i];
        } else {
            return cli_usage_error(ctx, cmd, "unexpected argument %s", argv[i]);
        }
    }
    if (npos < 2) return cli_usage_error(ctx, cmd, "expected NAME and PATH");
    if (!*pos[0]) return cli_usage_error(ctx, cmd, "the root's name is empty");
    char *path = realpath(pos[1], NULL);
    if (!path) {
        /* Another host's mount need not exist here; this host's must. */
        if (!other_host || pos[1][0] != '/') {
            return cli_error(ctx, "%s: %s does not exist here%s", cmd, fn_term_str(pos[1]),
                             other_host ? " (another host's path must be absolute)" : "");
        }
        if (!(path = strdup(pos[1]))) return cli_error(ctx, "out of memory");
    }
    /* The engine creates the library when there is none yet, as ingest would. */
    fn_engine *e;
    if (cli_open_engine(ctx, &e) != 0) {
        free(path);
        return CLI_EXIT_FAILURE;
    }
    fn_engine_close(e);
    fn_store *s = NULL;
    if (cli_library_open(ctx, &s) != 0) {
        free(path);
        return CLI_EXIT_FAILURE;
    }
    fn_store_tx *tx;
    int64_t id = 0;
    int rc = fn_store_begin(s, &tx);
    if (rc == 0) {
        rc = add ? fn_library_root_add(tx, pos[0], host, path, &id)
                 : fn_library_root_map(tx, pos[0], host, path);
        if (rc == 0)
            rc = fn_store_commit(tx);
        else
            fn_store_rollback(tx);
    }
    if (rc < 0)
        cli_error(ctx, "%s %s: %s", cmd, fn_term_str(pos[0]), fn_store_errmsg(s));
    else
        printf("root %s: %s on host %s\n", fn_term_str(pos[0]), fn_term_str(path),
               fn_term_str(host));
    fn_store_close(s);
    free(path);
    return rc < 0 ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

int cmd_roots(cli_ctx *ctx, int argc, char **argv)
{
    if (argc < 2 || cli_is_help(argv[1])) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "list") == 0) return roots_list(ctx, argc - 1, argv + 1);
    if (strcmp(argv[1], "add") == 0) return roots_set(ctx, 1, argc - 1, argv + 1);
    if (strcmp(argv[1], "map") == 0) return roots_set(ctx, 0, argc - 1, argv + 1);
    return cli_usage_error(ctx, "roots", "unknown subcommand %s (list, add, map)", argv[1]);
}
