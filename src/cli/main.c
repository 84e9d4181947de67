/* main.c: the `facenames` program: global options, the library directory, the configuration
 * (defaults < file < environment < --set), and dispatch to a subcommand.
 *
 * What must stay true: a bad command line (including a bad --set) exits 2 with a message saying
 * what was wrong; every other failure exits 1 with "facenames: <what>: <why>"; `--help` documents
 * every exit code (enum cli_exit in commands.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "util/libaddr.h"

struct command {
    const char *name;
    int (*fn)(cli_ctx *ctx, int argc, char **argv);
};

static const struct command commands[] = {
    {"ingest", cmd_ingest},
    {"photos", cmd_photos},
    {"roots", cmd_roots},
    {"faces", cmd_faces},
    {"detect", cmd_detect},
    {"jobs", cmd_jobs},
    {"worker", cmd_worker},
    {"config", cmd_config},
    /* the people commands */
    {"cluster", cmd_cluster},
    {"people", cmd_people},
    {"suggestions", cmd_suggestions},
    {"undo", cmd_undo},
    {"audit", cmd_audit},
    {"predict", cmd_predict},
    {"repair", cmd_repair},
    {"export", cmd_export},
    {"import", cmd_import},
};

static void usage(FILE *out)
{
    fputs("usage: facenames [OPTIONS] COMMAND [ARGS...]\n"
          "\n"
          "Finds the faces in a photo library and runs the background jobs that do it.\n"
          "\n"
          "Commands:\n"
          "  ingest PATH...     add photos to the library and find their faces\n"
          "  photos list|show   the library's photos\n"
          "  roots list|add|map the photo folders and each host's path of them\n"
          "  faces list         the faces found, with their person, state and suggestion\n"
          "  faces assign|move|unassign|ignore FACE_ID...  name faces (--person NAME|ID)\n"
          "  people SUBCOMMAND  list, show, rename, merge, split, delete persons; sheet\n"
          "  suggestions list|accept|reject  the predict job's suggestions\n"
          "  undo [AUDIT_ID]    revert a naming (default: the last one)\n"
          "  audit list         the naming done, newest first\n"
          "  cluster [--full]   group the faces without a person into clusters\n"
          "  predict            suggest a person for every face without one\n"
          "  detect IMAGE...    find faces in images (no library needed)\n"
          "  repair             relink moved photos, mark gone ones, recompute stale faces\n"
          "  export --format F  people and faces as json, XMP sidecars or csv\n"
          "  import FILE|DIR    names from a json export or from XMP face regions\n"
          "  jobs SUBCOMMAND    list, show, cancel, resume, retry, watch jobs; show their log\n"
          "  worker             run queued jobs (those enqueued with --detach)\n"
          "  config [show|path] print the effective configuration, or the file it came from\n"
          "  help [COMMAND]     this text, or a command's\n"
          "\n"
          "Options (before the command):\n"
          "  --library DIR      the library (default: $FACENAMES_LIBRARY, else\n"
          "                     $XDG_DATA_HOME/facenames, else ~/.local/share/facenames)\n"
          "  --config FILE      configuration file (default: $FACENAMES_CONFIG, else\n"
          "                     <library>/facenames.conf when it exists)\n"
          "  --set KEY=VALUE    override a configuration key; repeatable (keys: facenames config)\n"
          "  -v, --verbose      log the library's info messages (twice: debug)\n"
          "  -h, --help         this help; `facenames COMMAND --help` for a command's\n"
          "  --version          the version; library versions and model checksums\n"
          "\n"
          "Configuration: defaults < file < FACENAMES_<KEY> environment variables < --set\n"
          "(e.g. FACENAMES_WORKERS_CPU_MAX=2 for workers.cpu_max); see docs/configuration.md.\n"
          "\n"
          "Exit codes:\n"
          "  0  done; for a job: completed without item errors\n"
          "  1  error (message on stderr), or the job failed\n"
          "  2  bad command line, or a bad --set value\n"
          "  3  the job was cancelled (Ctrl-C, or jobs cancel)\n"
          "  4  the job completed, but some items had errors (see jobs show ID)\n"
          "  130  jobs watch stopped by Ctrl-C (the job goes on)\n",
          out);
}

/* "DIR" made absolute (the library's path is recorded, so it must not depend on the cwd). */
static int absolute(const char *dir, char *out, size_t len)
{
    if (dir[0] == '/') {
        if ((size_t)snprintf(out, len, "%s", dir) >= len) return -1;
    } else {
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd)) return -1;
        if ((size_t)snprintf(out, len, "%s/%s", cwd, dir) >= len) return -1;
    }
    /* drop trailing slashes and a trailing "/." so messages show a tidy path */
    size_t n = strlen(out);
    while (n > 1 && (out[n - 1] == '/' || (n > 2 && out[n - 1] == '.' && out[n - 2] == '/')))
        out[--n] = '\0';
    return 0;
}

static int resolve_library(cli_ctx *ctx, const char *opt)
{
    const char *env = getenv("FACENAMES_LIBRARY");
    const char *xdg = getenv("XDG_DATA_HOME");
    const char *home = getenv("HOME");
    char buf[4096];
    if (opt && !*opt) return cli_usage_error(ctx, NULL, "--library needs a directory");
    if (opt) {
        snprintf(buf, sizeof buf, "%s", opt);
    } else if (env && *env) {
        snprintf(buf, sizeof buf, "%s", env);
    } else if (xdg && xdg[0] == '/') { /* the XDG spec ignores relative values */
        snprintf(buf, sizeof buf, "%s/facenames", xdg);
    } else if (home && *home) {
        snprintf(buf, sizeof buf, "%s/.local/share/facenames", home);
    } else {
        return cli_error(ctx, "no library: give --library DIR or set FACENAMES_LIBRARY (HOME is "
                              "not set)");
    }
    if (fn_libaddr_is_url(buf)) {
        /* a PostgreSQL address is used as it is (only a folder is made absolute) */
        if (fn_libaddr_db(buf, ctx->library_dir, sizeof ctx->library_dir) < 0)
            return cli_error(ctx, "library address: too long");
        return 0;
    }
    ctx->library_default = !opt && !(env && *env);
    if (absolute(buf, ctx->library_dir, sizeof ctx->library_dir) < 0)
        return cli_error(ctx, "library path %s: %s", buf, strerror(errno ? errno : ENAMETOOLONG));
    return 0;
}

/* Applies the file and the environment. Returns 0 or an exit code (message printed). */
static int load_config(cli_ctx *ctx, const char *opt_config)
{
    char err[1024];
    const char *env = getenv("FACENAMES_CONFIG");
    const char *file = opt_config && *opt_config ? opt_config : (env && *env ? env : NULL);
    int rc;
    if (file) {
        /* a file named explicitly must exist */
        rc = fn_config_load_file(&ctx->cfg, file, err, sizeof err);
        if (rc < 0) return cli_error(ctx, "configuration: %s", err);
        snprintf(ctx->config_path, sizeof ctx->config_path, "%s", file);
    } else if (!fn_libaddr_is_url(ctx->library_dir)) {
        /* a library on a server has no folder to hold a facenames.conf */
        char path[4200];
        snprintf(path, sizeof path, "%s/facenames.conf", ctx->library_dir);
        struct stat st;
        if (stat(path, &st) != 0 && errno == EACCES)
            return cli_error(ctx,
                             "configuration: the library folder %s cannot be entered (%s); fix "
                             "its permissions or choose another library with --library DIR",
                             ctx->library_dir, strerror(errno));
        rc = fn_config_load_file(&ctx->cfg, path, err, sizeof err);
        if (rc < 0 && rc != FN_ERR_NOT_FOUND) return cli_error(ctx, "configuration: %s", err);
        if (rc == 0 && (size_t)snprintf(ctx->config_path, sizeof ctx->config_path, "%s", path) >=
                           sizeof ctx->config_path)
            return cli_error(ctx, "configuration: %s: path too long", path);
    }
    rc = fn_config_apply_env(&ctx->cfg, err, sizeof err);
    if (rc < 0) return cli_error(ctx, "configuration: %s", err);
    return 0;
}

static int apply_sets(cli_ctx *ctx, char **sets, int n)
{
    char err[1024];
    for (int i = 0; i < n; i++) {
        char *eq = strchr(sets[i], '=');
        if (!eq || eq == sets[i])
            return cli_usage_error(ctx, NULL,
                                   "--set '%s': expected KEY=VALUE, e.g. --set "
                                   "workers.cpu_max=2",
                                   sets[i]);
        *eq = '\0';
        int rc = fn_config_set(&ctx->cfg, sets[i], eq + 1, err, sizeof err);
        *eq = '=';
        if (rc < 0) return cli_usage_error(ctx, NULL, "--set: %s", err);
    }
    return 0;
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    static cli_ctx ctx; /* large (paths); static keeps it off the stack */
    ctx.prog = "facenames";
    ctx.stdout_tty = isatty(STDOUT_FILENO);
    ctx.stderr_tty = isatty(STDERR_FILENO);
    fn_config_defaults(&ctx.cfg);

    const char *opt_library = NULL, *opt_config = NULL;
    char **sets = calloc((size_t)argc + 1, sizeof *sets);
    int nsets = 0, i = 1;
    if (!sets) return cli_error(&ctx, "out of memory");
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i], *v;
        int r;
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (cli_is_help(a)) {
            usage(stdout);
            free(sets);
            return CLI_EXIT_OK;
        }
        if (strcmp(a, "--version") == 0) {
            free(sets);
            return cli_print_version(stdout);
        }
        if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
            ctx.verbose++;
            continue;
        }
        if (strcmp(a, "-vv") == 0) {
            ctx.verbose += 2;
            continue;
        }
        if ((r = cli_opt_value(&ctx, NULL, argv, argc, &i, "--library", &v)) != 0) {
            if (r < 0) goto usage_fail;
            opt_library = v;
            continue;
        }
        if ((r = cli_opt_value(&ctx, NULL, argv, argc, &i, "--config", &v)) != 0) {
            if (r < 0) goto usage_fail;
            opt_config = v;
            continue;
        }
        if ((r = cli_opt_value(&ctx, NULL, argv, argc, &i, "--set", &v)) != 0) {
            if (r < 0) goto usage_fail;
            sets[nsets++] = (char *)v;
            continue;
        }
        cli_usage_error(&ctx, NULL, "unknown option '%s'", a);
        goto usage_fail;
    }
    if (i >= argc) {
        usage(stderr);
        goto usage_fail;
    }

    const char *name = argv[i];
    char *help_argv[3];
    if (strcmp(name, "help") == 0) {
        if (i + 1 >= argc) {
            usage(stdout);
            free(sets);
            return CLI_EXIT_OK;
        }
        /* `help jobs` is `jobs --help` */
        help_argv[0] = argv[i + 1];
        help_argv[1] = "--help";
        help_argv[2] = NULL;
        argv = help_argv;
        argc = 2;
        i = 0;
        name = argv[0];
    }
    const struct command *cmd = find_command(name);
    if (!cmd) {
        cli_usage_error(&ctx, NULL, "unknown command '%s'", name);
        goto usage_fail;
    }
    /* --library, --config and --set are also accepted after the command (`facenames jobs list
     * --library X`): they are taken out before the command sees its arguments. No command has
     * options of these names; after "--" nothing is taken. */
    char **cargv = calloc((size_t)argc + 1, sizeof *cargv);
    if (!cargv) {
        free(sets);
        return cli_error(&ctx, "out of memory");
    }
    int cargc = 0;
    cargv[cargc++] = argv[i];
    for (int k = i + 1; k < argc; k++) {
        const char *v;
        int r = 0;
        if (strcmp(argv[k], "--") == 0) {
            while (k < argc)
                cargv[cargc++] = argv[k++];
            break;
        }
        if ((r = cli_opt_value(&ctx, NULL, argv, argc, &k, "--library", &v)) > 0)
            opt_library = v;
        else if (r == 0 && (r = cli_opt_value(&ctx, NULL, argv, argc, &k, "--config", &v)) > 0)
            opt_config = v;
        else if (r == 0 && (r = cli_opt_value(&ctx, NULL, argv, argc, &k, "--set", &v)) > 0)
            sets[nsets++] = (char *)v;
        if (r < 0) {
            free(cargv);
            goto usage_fail;
        }
        if (r == 0) cargv[cargc++] = argv[k];
    }
    cargv[cargc] = NULL;
    int wants_help = 0;
    for (int k = 1; k < cargc; k++)
        wants_help |= cli_is_help(cargv[k]);

    cli_install_log(ctx.verbose);
    int rc = resolve_library(&ctx, opt_library);
    if (rc == CLI_EXIT_USAGE) {
        free(sets);
        free(cargv);
        return rc;
    }
    if (rc == 0) rc = load_config(&ctx, opt_config);
    if (rc == 0) rc = apply_sets(&ctx, sets, nsets);
    /* db.url names the library when neither --library nor FACENAMES_LIBRARY did. */
    if (rc == 0 && ctx.library_default && ctx.cfg.db_url[0])
        snprintf(ctx.library_dir, sizeof ctx.library_dir, "%s", ctx.cfg.db_url);
    if (rc == 0) {
        char err[512];
        if (fn_config_validate(&ctx.cfg, err, sizeof err) < 0)
            rc = cli_error(&ctx, "configuration: %s", err);
    }
    free(sets);
    /* a broken configuration must not stop `COMMAND --help` from helping */
    if (rc != 0 && !wants_help) {
        free(cargv);
        return rc;
    }
    rc = cmd->fn(&ctx, cargc, cargv);
    free(cargv);
    fflush(stdout);
    if (ferror(stdout)) return cli_error(&ctx, "writing output: %s", strerror(errno));
    return rc;

usage_fail:
    free(sets);
    return CLI_EXIT_USAGE;
}
