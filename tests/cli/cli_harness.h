/* cli_harness.h: runs the built `facenames` program as a subprocess for the CLI tests, with a
 * clean environment (no FACENAMES_* from the caller, HOME in a temporary directory), and captures
 * its exit code, stdout and stderr. Header-only: each test program is one file plus this; include
 * it after <cmocka.h> (CHECK and the group setup/teardown are cmocka's). */
#ifndef FN_TEST_CLI_HARNESS_H
#define FN_TEST_CLI_HARNESS_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

struct cli_result {
    int code;  /* exit code, or 128 + signal */
    char *out; /* stdout (caller frees with cli_result_free) */
    char *err; /* stderr */
};

static char harness_tmp[512]; /* the test's temporary directory */
static char harness_exe[1024];

static inline int harness_setup(void)
{
    const char *build = getenv("FACENAMES_BUILD_DIR");
    if (!build) {
        fprintf(stderr, "FACENAMES_BUILD_DIR is not set (run through meson test)\n");
        return -1;
    }
    snprintf(harness_exe, sizeof harness_exe, "%s/src/cli/facenames", build);
    if (access(harness_exe, X_OK) != 0) {
        fprintf(stderr, "%s: not built\n", harness_exe);
        return -1;
    }
    snprintf(harness_tmp, sizeof harness_tmp, "/tmp/fn_test_cli_XXXXXX");
    return mkdtemp(harness_tmp) ? 0 : -1;
}

static inline void harness_teardown(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", harness_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", harness_tmp);
}

static inline char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
    if (buf) buf[got] = '\0';
    fclose(f);
    return buf;
}

/* Starts facenames with the NULL-terminated `args`; `envs` is a NULL-terminated list of "K=V" to
 * add to the clean environment (may be NULL). Output goes to files named by `tag`; collect it
 * with cli_wait. */
static inline pid_t cli_spawn(const char *const *envs, const char *const *args, const char *tag)
{
    char outp[600], errp[600];
    snprintf(outp, sizeof outp, "%s/.%s.stdout", harness_tmp, tag);
    snprintf(errp, sizeof errp, "%s/.%s.stderr", harness_tmp, tag);
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int in = open("/dev/null", O_RDONLY);
        if (o < 0 || e < 0 || in < 0) _exit(127);
        dup2(in, 0);
        dup2(o, 1);
        dup2(e, 2);
        /* a clean environment: nothing of the caller's facenames settings */
        char *env[256];
        int n = 0;
        for (char **p = environ; *p && n < 200; p++)
            if (strncmp(*p, "FACENAMES_", 10) != 0 && strncmp(*p, "HOME=", 5) != 0 &&
                strncmp(*p, "XDG_DATA_HOME=", 14) != 0)
                env[n++] = *p;
        static char home[600];
        snprintf(home, sizeof home, "HOME=%s/home", harness_tmp);
        env[n++] = home;
        for (const char *const *p = envs; p && *p && n < 254; p++)
            env[n++] = (char *)*p;
        env[n] = NULL;
        char *argv[64];
        int a = 0;
        argv[a++] = harness_exe;
        for (const char *const *p = args; *p && a < 63; p++)
            argv[a++] = (char *)*p;
        argv[a] = NULL;
        execve(harness_exe, argv, env);
        _exit(127);
    }
    return pid;
}

/* Waits for a spawned facenames and collects its exit code and output. */
static inline struct cli_result cli_wait(pid_t pid, const char *tag)
{
    struct cli_result r = {-1, NULL, NULL};
    char outp[600], errp[600];
    snprintf(outp, sizeof outp, "%s/.%s.stdout", harness_tmp, tag);
    snprintf(errp, sizeof errp, "%s/.%s.stderr", harness_tmp, tag);
    int status = 0;
    if (pid > 0 && waitpid(pid, &status, 0) == pid)
        r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = slurp(outp);
    r.err = slurp(errp);
    return r;
}

/* Runs facenames to its end (see cli_spawn). */
static inline struct cli_result cli_run(const char *const *envs, const char *const *args)
{
    return cli_wait(cli_spawn(envs, args, "run"), "run");
}

static inline void cli_result_free(struct cli_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

/* cmocka group setup and teardown: harness_setup and harness_teardown. */
static inline int harness_group_setup(void **state)
{
    (void)state;
    return harness_setup();
}

static inline int harness_group_teardown(void **state)
{
    (void)state;
    harness_teardown();
    return 0;
}

/* Fails the test with the program's output when `cond` is false. */
#define CHECK(r, cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            print_error("check failed: %s\nexit %d\n--- stdout\n%s--- stderr\n%s---\n", #cond,     \
                        (r).code, (r).out, (r).err);                                               \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* "--library <tmp>/<name>" helper: writes the path into buf. */
static inline const char *lib_path(const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", harness_tmp, name);
    return buf;
}

#endif
