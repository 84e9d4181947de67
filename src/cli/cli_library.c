/* cli_library.c: what the commands that read the library directly (`photos`, `faces`) share:
 * opening <library>/library.db without the engine, finding a photo by id or by path, the --limit
 * option, and printing a list as an aligned table or as a streamed JSON array.
 *
 * Reading commands must work, and stay cheap, while an ingest runs in another process: nothing
 * here registers an owner or recovers jobs, and lists are printed row by row so a large library
 * lists in constant memory. */
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cli/commands.h"
#include "store/library/library_store.h"
#include "util/libaddr.h"
#include "util/pathenc.h"

int cli_library_open(cli_ctx *ctx, fn_store **out)
{
    char path[4200];
    *out = NULL;
    fn_libaddr_db(ctx->library_dir, path, sizeof path);
    int readonly = 0;
    int p = cli_library_probe(ctx, &readonly);
    if (p != 0) return p < 0 ? -1 : 1;
    char err[1024];
    int rc = readonly
                 ? fn_store_open_readonly(path, ctx->cfg.db_busy_timeout_ms, out, err, sizeof err)
                 : fn_store_open(path, ctx->cfg.db_busy_timeout_ms, out, err, sizeof err);
    if (rc < 0) {
        cli_error(ctx, "%s", err);
        return -1;
    }
    /* A library we cannot write is read as it is (a newer schema is still refused). */
    if ((readonly ? fn_library_check_version(*out) : fn_library_migrate(*out)) < 0) {
        cli_error(ctx, "%s", fn_store_errmsg(*out));
        fn_store_close(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

int cli_library_photo(fn_library_reader *r, const char *which, fn_photo_row *row)
{
    long long id;
    if (cli_parse_ll(which, 1, LLONG_MAX, &id) == 0) return fn_library_photo_by_id(r, id, row);
    char *real = realpath(which, NULL);
    int rc = fn_library_photo_by_path(r, real ? real : which, row);
    free(real);
    if (rc == FN_ERR_NOT_FOUND && fn_path_has_escape(which)) {
        /* not as given: the path as JSON printed it, escapes decoded (docs/cli.md) */
        char *bytes = fn_path_unescape(which, NULL);
        if (!bytes) return FN_ERR_NOMEM;
        real = realpath(bytes, NULL);
        rc = fn_library_photo_by_path(r, real ? real : bytes, row);
        free(real);
        free(bytes);
    }
    if (rc == FN_ERR_NOT_FOUND) {
        /* a copy of a photo (design decision 34) names that photo */
        real = realpath(which, NULL);
        rc = fn_library_photo_by_copy(r, real ? real : which, row);
        free(real);
    }
    return rc;
}

int cli_opt_limit(cli_ctx *ctx, const char *cmd, char **argv, int argc, int *i, size_t *limit)
{
    const char *v;
    long long n;
    int m = cli_opt_value(ctx, cmd, argv, argc, i, "--limit", &v);
    if (m <= 0) return m;
    if (cli_parse_ll(v, 1, LLONG_MAX, &n) < 0) {
        cli_usage_error(ctx, cmd, "--limit wants a positive number");
        return -1;
    }
    *limit = (size_t)n;
    return 1;
}

int cli_opt_priority(cli_ctx *ctx, const char *cmd, char **argv, int argc, int *i,
                     fn_priority *prio)
{
    const char *v;
    int m = cli_opt_value(ctx, cmd, argv, argc, i, "--priority", &v);
    if (m <= 0) return m;
    if (fn_priority_parse(v, prio) < 0) {
        cli_usage_error(ctx, cmd, "--priority is interactive, normal or background");
        return -1;
    }
    return 1;
}

void cli_list_begin(cli_list *l, int json, int ncols, const char *const *headers, const int *right)
{
    l->json = json;
    l->first = 1;
    l->n = 0;
    l->t = json ? NULL : cli_table_new(ncols, headers, right);
    if (json) printf("[");
}

void cli_list_json(cli_list *l, json_t *o, size_t flags)
{
    l->n++;
    char *s = json_dumps(o, flags);
    printf("%s\n  %s", l->first ? "" : ",", s ? s : "null");
    l->first = 0;
    free(s);
    json_decref(o);
}

void cli_list_row(cli_list *l, const char *const *cells)
{
    l->n++;
    cli_table_add(l->t, cells);
}

void cli_list_end(cli_list *l, const char *what, int no_library)
{
    if (l->json) {
        printf("%s]\n", l->n ? "\n" : "");
        return;
    }
    if (l->n)
        cli_table_print(l->t, stdout);
    else
        printf("no %s%s\n", what,
               no_library ? " (there is no library here yet: facenames ingest creates it)" : "");
    cli_table_free(l->t);
    l->t = NULL;
}
