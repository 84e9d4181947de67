/* test_docs: the man pages and the bash completion, as a user gets them.
 *
 * - facenames(1) and facenames.conf(5), as the build generated them from docs/cli.md and
 *   docs/configuration.md, render with groff without a single warning;
 * - every command `facenames --help` lists is described in docs/cli.md and has its options in the
 *   man page (the page's COMMAND REFERENCE comes from the program itself); every configuration key
 *   `facenames config` prints is in facenames.conf(5): docs and program cannot drift apart;
 * - completion/facenames.bash, sourced in bash and called the way bash calls it, completes the
 *   commands, a command's options, a subcommand's options, option values, job ids of the library
 *   named on the line and configuration keys, each compared with what the program itself prints.
 * Arguments: the source root, the build directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "facenames/jobs.h"
#include "sh.h"

static const char *source_root, *build_dir;
static char exe[1024], tmp[256];

static int setup(void **state)
{
    (void)state;
    snprintf(exe, sizeof exe, "%s/src/cli/facenames", build_dir);
    snprintf(tmp, sizeof tmp, "/tmp/fn_test_docs.XXXXXX");
    if (!mkdtemp(tmp)) return -1;
    /* A clean environment for the program: no library or configuration of the caller's. */
    setenv("HOME", tmp, 1);
    unsetenv("FACENAMES_LIBRARY");
    unsetenv("FACENAMES_CONFIG");
    unsetenv("XDG_DATA_HOME");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    struct sh_result r = sh_run("rm -rf '%s'", tmp);
    sh_free(&r);
    return 0;
}

/* The commands under "Commands:" in `facenames --help`, as a space-separated list. */
static char *program_commands(void)
{
    struct sh_result r = sh_run("'%s' --help", exe);
    SH_EXPECT(r, 0);
    char *list = calloc(1, 4096);
    assert_non_null(list);
    char *p = strstr(r.out, "Commands:\n");
    assert_non_null(p);
    p = strchr(p, '\n') + 1;
    while (p[0] == ' ' && p[1] == ' ' && p[2] >= 'a' && p[2] <= 'z') {
        char name[64], padded[80], in_list[4200];
        size_t n = strcspn(p + 2, " \n");
        assert_true(n < sizeof name);
        memcpy(name, p + 2, n);
        name[n] = '\0';
        /* A command may take two lines ("faces list", "faces assign|..."): list it once. */
        snprintf(padded, sizeof padded, " %s ", name);
        snprintf(in_list, sizeof in_list, " %s ", list);
        if (!strstr(in_list, padded)) {
            if (*list) strcat(list, " ");
            strcat(list, name);
        }
        p = strchr(p, '\n') + 1;
    }
    sh_free(&r);
    assert_true(strlen(list) > 0);
    return list;
}

static void test_man_pages_render_without_warnings(void **state)
{
    (void)state;
    const char *pages[] = {"facenames.1", "facenames.conf.5"};
    for (int i = 0; i < 2; i++) {
        struct sh_result r =
            sh_run("groff -man -Tutf8 -ww -z '%s/docs/%s' 2>&1", build_dir, pages[i]);
        SH_EXPECT(r, 0);
        if (r.out[0]) {
            fprintf(stderr, "%s: groff warns:\n%s\n", pages[i], r.out);
            fail();
        }
        sh_free(&r);
        /* And it reads as a page: NAME and the generated-from note are there. */
        r = sh_run("MANWIDTH=100 man -l '%s/docs/%s' 2>&1", build_dir, pages[i]);
        SH_EXPECT(r, 0);
        SH_HAS(r.out, "NAME");
        sh_free(&r);
    }
}

static void test_every_command_is_documented(void **state)
{
    (void)state;
    char *cmds = program_commands();
    struct sh_result md = sh_run("cat '%s/docs/cli.md'", source_root);
    struct sh_result man = sh_run("cat '%s/docs/facenames.1'", build_dir);
    SH_EXPECT(md, 0);
    SH_EXPECT(man, 0);
    int bad = 0;
    for (char *c = strtok(cmds, " "); c; c = strtok(NULL, " ")) {
        if (strcmp(c, "help") == 0) continue;
        char want[128];
        snprintf(want, sizeof want, "`%s ", c);
        char want2[128];
        snprintf(want2, sizeof want2, "`%s`", c);
        if (!strstr(md.out, want) && !strstr(md.out, want2)) {
            fprintf(stderr, "command '%s' is in `facenames --help` but not in docs/cli.md\n", c);
            bad++;
        }
        snprintf(want, sizeof want, ".SS \"%s\"\n.nf\nusage: facenames %s", c, c);
        if (!strstr(man.out, want)) {
            fprintf(stderr, "command '%s' has no COMMAND REFERENCE entry in facenames.1\n", c);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
    free(cmds);
    sh_free(&md);
    sh_free(&man);
}

static void test_every_key_is_in_the_conf_page(void **state)
{
    (void)state;
    struct sh_result keys = sh_run("'%s' config show | awk '$2 == \"=\" {print $1}'", exe);
    SH_EXPECT(keys, 0);
    struct sh_result man = sh_run("cat '%s/docs/facenames.conf.5'", build_dir);
    int n = 0;
    for (char *k = strtok(keys.out, "\n"); k; k = strtok(NULL, "\n"), n++) {
        char want[128];
        snprintf(want, sizeof want, ".TP\n\\fB%s\\fR\n", k);
        SH_HAS(man.out, want);
    }
    assert_true(n >= 10);
    sh_free(&keys);
    sh_free(&man);
}

/* What the completion offers for the command line `words` (the last one is being completed). */
static char *complete(const char *words)
{
    struct sh_result r = sh_run(
        "bash --norc --noprofile -c 'source \"$0\"; COMP_WORDS=(\"$1\" $2); "
        "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); [[ $2 == *\" \" || -z $2 ]] && { "
        "COMP_WORDS+=(\"\"); COMP_CWORD=$((COMP_CWORD + 1)); }; _facenames; "
        "printf \"%%s\\n\" \"${COMPREPLY[@]}\" | sort' '%s/completion/facenames.bash' '%s' '%s' "
        "2>&1",
        source_root, exe, words);
    SH_EXPECT(r, 0);
    return r.out;
}

/* `got` (one word a line) holds exactly the words of `want` (space-separated). */
static void same_words(const char *what, const char *got, const char *want_list)
{
    char *want = strdup(want_list);
    size_t len = strlen(got) + 2;
    char *padded = malloc(len); /* "\n" + got: every word is then "\nword\n" */
    assert_non_null(want);
    assert_non_null(padded);
    snprintf(padded, len, "\n%s", got);
    int n_want = 0, n_got = 0, bad = 0;
    for (char *w = strtok(want, " \n"); w; w = strtok(NULL, " \n"), n_want++) {
        char line[256];
        snprintf(line, sizeof line, "\n%s\n", w);
        if (!strstr(padded, line)) {
            fprintf(stderr, "%s: '%s' not offered\n", what, w);
            bad++;
        }
    }
    for (const char *p = got; *p; p++)
        if (*p == '\n') n_got++;
    if (bad || n_got != n_want) {
        fprintf(stderr, "%s: offered %d words, expected %d:\n%s", what, n_got, n_want, got);
        fail();
    }
    free(padded);
    free(want);
}

static void test_completion_commands_and_options(void **state)
{
    (void)state;
    char *cmds = program_commands();
    char *got = complete("");
    same_words("commands", got, cmds);
    free(got);
    got = complete("jo");
    same_words("commands starting jo", got, "jobs");
    free(got);

    /* ingest's options: every "  --x" line of its help, and --help. */
    struct sh_result help =
        sh_run("'%s' help ingest | grep -E '^ +--[a-z]' | awk '{print $1}' | tr '\\n' ' '", exe);
    SH_EXPECT(help, 0);
    char want[2048];
    snprintf(want, sizeof want, "%s --help", help.out);
    got = complete("ingest --");
    same_words("ingest options", got, want);
    free(got);
    sh_free(&help);

    /* A subcommand's options are those of its usage line. */
    got = complete("jobs retry 3 --");
    same_words("jobs retry options", got, "--code --item --detach --json --help");
    free(got);
    got = complete("jobs ");
    same_words("jobs subcommands", got, "list show cancel resume retry errors skip watch log");
    free(got);

    /* Values: spelled in the help (ssd|tiny), "STATE is ...", the engine's lanes. */
    got = complete("ingest --detector ");
    same_words("--detector values", got, "ssd tiny");
    free(got);
    char states[256] = "";
    for (int s = FN_JOB_QUEUED; s <= FN_JOB_FAILED; s++) {
        strcat(states, fn_job_state_name((fn_job_state)s));
        strcat(states, " ");
    }
    got = complete("jobs list --state ");
    same_words("--state values", got, states);
    free(got);
    free(cmds);
}

static void test_completion_job_ids_and_keys(void **state)
{
    (void)state;
    /* Two queued jobs in a fresh library (ingest --detach only enqueues). */
    struct sh_result r =
        sh_run("mkdir -p '%s/photos' && '%s' --library '%s/lib' ingest --detach '%s/photos' && "
               "'%s' --library '%s/lib' ingest --detach --ext png '%s/photos' && "
               "'%s' --library '%s/lib' jobs list --json",
               tmp, exe, tmp, tmp, exe, tmp, tmp, exe, tmp);
    SH_EXPECT(r, 0);
    /* The ids as the program reports them (the last command's JSON array). */
    json_error_t jerr;
    json_t *jobs = json_loads(strchr(r.out, '['), 0, &jerr);
    assert_non_null(jobs);
    char ids[256] = "";
    size_t i;
    json_t *job;
    json_array_foreach(jobs, i, job)
    {
        char id[32];
        snprintf(id, sizeof id, "%lld ", (long long)json_integer_value(json_object_get(job, "id")));
        strcat(ids, id);
    }
    assert_int_equal(json_array_size(jobs), 2);
    json_decref(jobs);
    sh_free(&r);

    char words[1024];
    snprintf(words, sizeof words, "--library %s/lib jobs show ", tmp);
    char *got = complete(words);
    same_words("job ids", got, ids);
    free(got);
    /* --library given after the command counts too. */
    snprintf(words, sizeof words, "jobs cancel --library %s/lib ", tmp);
    got = complete(words);
    same_words("job ids (--library after the command)", got, ids);
    free(got);

    /* Configuration keys, as `facenames config` prints them, each with its "=". */
    r = sh_run("'%s' config show | awk '$2 == \"=\" {printf \"%%s= \", $1}'", exe);
    SH_EXPECT(r, 0);
    got = complete("--set ");
    same_words("configuration keys", got, r.out);
    free(got);
    sh_free(&r);
    got = complete("--set workers.cp");
    same_words("configuration keys starting workers.cp", got, "workers.cpu_max=");
    free(got);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_docs SOURCE_ROOT BUILD_DIR\n");
        return 2;
    }
    source_root = argv[1];
    build_dir = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_man_pages_render_without_warnings),
        cmocka_unit_test(test_every_command_is_documented),
        cmocka_unit_test(test_every_key_is_in_the_conf_page),
        cmocka_unit_test(test_completion_commands_and_options),
        cmocka_unit_test(test_completion_job_ids_and_keys),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
