/* cli_args.c: option matching, number parsing and the error messages of every command, so that
 * all commands spell mistakes the same way: "facenames jobs: <what>" plus a pointer to --help, and
 * exit code 2 for anything wrong with the command line. A message may quote a file name, so its
 * control characters are escaped (util/pathenc.h) before it reaches the terminal. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "util/libaddr.h"
#include "util/pathenc.h"

int cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

int cli_opt_value(cli_ctx *ctx, const char *cmd, char **argv, int argc, int *i, const char *name,
                  const char **value)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        *value = a + n + 1;
        return 1;
    }
    if (a[n] != '\0') return 0;
    if (*i + 1 >= argc) {
        cli_usage_error(ctx, cmd, "option %s needs a value", name);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

int cli_parse_ll(const char *s, long long min, long long max, long long *out)
{
    if (!s || !*s) return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int cli_parse_job_id(cli_ctx *ctx, const char *cmd, const char *s, fn_job_id *out)
{
    long long v;
    if (s[0] == '#') s++;
    if (cli_parse_ll(s, 1, INT64_MAX, &v) < 0) {
        cli_usage_error(ctx, cmd, "'%s' is not a job id (a positive number, as `jobs list` shows)",
                        s);
        return -1;
    }
    *out = (fn_job_id)v;
    return 0;
}

int cli_usage_error(cli_ctx *ctx, const char *cmd, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fn_libaddr_redact(ctx->library_dir, msg, sizeof msg);
    cli_term_lock();
    if (cmd)
        fprintf(stderr, "%s %s: %s\nTry '%s %s --help'.\n", ctx->prog, cmd, fn_term_str(msg),
                ctx->prog, cmd);
    else
        fprintf(stderr, "%s: %s\nTry '%s --help'.\n", ctx->prog, fn_term_str(msg), ctx->prog);
    cli_term_unlock();
    return CLI_EXIT_USAGE;
}

int cli_engine_error(cli_ctx *ctx, fn_engine *e, int rc, const char *what_fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, what_fmt);
    vsnprintf(what, sizeof what, what_fmt, ap);
    va_end(ap);
    const char *detail = e ? fn_engine_errmsg(e) : "";
    if (!detail || !*detail) detail = fn_strerror(rc);
    char shown[1024];
    snprintf(shown, sizeof shown, "%s", detail);
    fn_libaddr_redact(ctx->library_dir, what, sizeof what);
    fn_libaddr_redact(ctx->library_dir, shown, sizeof shown);
    detail = shown;
    cli_term_lock();
    fprintf(stderr, "%s: %s: %s\n", ctx->prog, fn_term_str(what), fn_term_str(detail));
    cli_term_unlock();
    return CLI_EXIT_FAILURE;
}

int cli_error(cli_ctx *ctx, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fn_libaddr_redact(ctx->library_dir, msg, sizeof msg);
    cli_term_lock();
    fprintf(stderr, "%s: %s\n", ctx->prog, fn_term_str(msg));
    cli_term_unlock();
    return CLI_EXIT_FAILURE;
}
