/* test_names.c: hostile file names through the built `facenames` program (docs/cli.md, "Paths in
 * JSON"; docs/design.md decision 13).
 *
 * test_hostile_names is fuzz-style: it creates files whose names are random bytes (invalid UTF-8,
 * C0 and C1 control characters, backslashes, "\xHH"-looking text, valid multi-byte UTF-8), a few
 * of them copies of a sample photo and the rest broken photos, ingests the folder, and checks
 * that every JSON output parses and gives back the names' bytes (decoded here from the documented
 * format, independently of the program's own decoder), that `jobs retry --item <what JSON printed>`
 * and `jobs errors --item <relative path>` select the right error, and that no human-readable
 * output carries a raw control character or invalid UTF-8. The seed is printed; set
 * FACENAMES_TEST_SEED to replay one. A fixed set of names (one of each hostile kind) comes first,
 * so every seed covers each kind.
 *
 * test_rough_edges: `--` before paths, `jobs show -1`, `ingest --detach --json`, and the second
 * Ctrl-C writing no terminal codes into a pipe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "cli_json.h"

static char models_env[1100];
static char sample[PATH_MAX];

static int group_setup(void **state)
{
    if (harness_group_setup(state) != 0) return -1;
    const char *m = getenv("FACENAMES_MODELS"), *s = getenv("FACENAMES_SAMPLES");
    snprintf(models_env, sizeof models_env, "FACENAMES_MODELS_DIR=%s", m ? m : "");
    if (s) snprintf(sample, sizeof sample, "%s/sample1.jpg", s);
    return 0;
}

/* ---- the documented format, decoded independently ---------------------------------------------
 */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* \xHH -> byte, \\ -> backslash (docs/cli.md); anything else as it is. */
static char *unescape(const char *t)
{
    char *out = malloc(strlen(t) + 1), *o = out;
    assert_non_null(out);
    while (*t) {
        if (t[0] == '\\' && t[1] == '\\') {
            *o++ = '\\';
            t += 2;
        } else if (t[0] == '\\' && t[1] == 'x' && hexval(t[2]) >= 0 && hexval(t[3]) >= 0) {
            *o++ = (char)(hexval(t[2]) << 4 | hexval(t[3]));
            t += 4;
        } else {
            *o++ = *t++;
        }
    }
    *o = '\0';
    return out;
}

static char *base64_decode(const char *t)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(strlen(t) + 1), *o = out;
    assert_non_null(out);
    unsigned acc = 0;
    int bits = 0;
    for (; *t && *t != '='; t++) {
        const char *p = strchr(a, *t);
        assert_non_null(p);
        acc = acc << 6 | (unsigned)(p - a);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *o++ = (char)(acc >> bits & 0xFF);
        }
    }
    *o = '\0';
    return out;
}

static int utf8_valid(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s;
        int n = c < 0x80                 ? 0
                : c >= 0xC2 && c <= 0xDF ? 1
                : c >= 0xE0 && c <= 0xEF ? 2
                : c >= 0xF0 && c <= 0xF4 ? 3
                                         : -1;
        if (n < 0) return 0;
        unsigned cp = n == 0 ? c : c & (0x3F >> n);
        for (int i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (s[i] & 0x3F);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        s += n + 1;
    }
    return 1;
}

/* The bytes of path field `f` of object o, checked against the format: "<f>_b64" exactly when the
 * text is not the bytes as they are, and then the text decodes to the same bytes. */
static char *path_of(const json_t *o, const char *f)
{
    char key[64];
    snprintf(key, sizeof key, "%s_b64", f);
    const char *text = json_string_value(json_object_get(o, f));
    const char *b64 = json_string_value(json_object_get(o, key));
    assert_non_null(text);
    if (!b64) return strdup(text);
    char *bytes = base64_decode(b64), *back = unescape(text);
    assert_false(utf8_valid((const unsigned char *)bytes)); /* only when needed */
    assert_string_equal(back, bytes);
    free(back);
    return bytes;
}

/* Human output: no byte that a terminal obeys (C0 but newline, DEL, C1) and valid UTF-8. */
static int term_safe(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; u[i]; i++) {
        if ((u[i] < 0x20 && u[i] != '\n') || u[i] == 0x7F) return 0;
        if (u[i] == 0xC2 && u[i + 1] >= 0x80 && u[i + 1] <= 0x9F) return 0;
    }
    return utf8_valid(u);
}

#define CHECK_SAFE(r)                                                                              \
    do {                                                                                           \
        CHECK(r, term_safe((r).out));                                                              \
        CHECK(r, term_safe((r).err));                                                              \
    } while (0)

/* ---- the names --------------------------------------------------------------------------------
 */

#define N_GOOD  3
#define N_BAD   7
#define N_NAMES (N_GOOD + N_BAD)

static uint64_t rng;

static unsigned next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng >> 11);
}

/* Appends a random piece of a hostile name. */
static void random_atom(char *buf, size_t len)
{
    static const char ascii[] = "abcXYZ019 _-+=,;'\"!#$%&()[]{}~`@^";
    static const char *const multi[] = {"\xC3\xA9", "\xE6\x97\xA5", "\xF0\x9F\x98\x80",
                                        "\xE2\x80\xAE"};
    size_t n = strlen(buf);
    if (n + 8 >= len) return;
    char *o = buf + n;
    switch (next_rand() % 7) {
    case 0:
        *o++ = ascii[next_rand() % (sizeof ascii - 1)];
        break;
    case 1:
        *o++ = (char)(0x80 + next_rand() % 0x80);
        break; /* a lone high byte */
    case 2:
        *o++ = (char)(next_rand() % 5 ? 1 + next_rand() % 31 : 0x7F);
        break; /* C0, DEL */
    case 3:
        *o++ = (char)0xC2; /* a C1 control, valid UTF-8 */
        *o++ = (char)(0x80 + next_rand() % 0x20);
        break;
    case 4:
        o += sprintf(o, next_rand() % 2 ? "\\x%02X" : "\\", next_rand() % 256);
        break;
    case 5:
        o += sprintf(o, "%s", multi[next_rand() % 4]);
        break;
    default:
        *o++ = (char)(0xE0 + next_rand() % 16);
        break; /* a truncated sequence */
    }
    *o = '\0';
}

/* One of each kind first, then random ones; all end in ".jpg" (so the walk takes them) and none
 * has '/' or starts with '.'. */
static void make_names(char names[N_NAMES][200])
{
    static const char *const fixed[] = {
        "ok\xFE",              /* the example */
        "esc\x1B]0;title\x07", /* sets a window title */
        "c1\xC2\x9B"
        "2J",                     /* CSI as a C1 control: clears the screen */
        "new\nline\ttab",         /* newline, tab */
        "back\\xFE\\\\slash\xFF", /* text that looks escaped, and a real invalid byte */
        "\xFF\xFElast",           /* sorts last: the ingest checkpoint's "last" */
    };
    size_t nf = sizeof fixed / sizeof *fixed;
    for (size_t i = 0; i < N_NAMES; i++) {
        for (;;) {
            if (i < nf) {
                snprintf(names[i], 200, "%s", fixed[i]);
            } else {
                snprintf(names[i], 200, "r%zu", i);
                int atoms = 1 + (int)(next_rand() % 10);
                for (int k = 0; k < atoms; k++)
                    random_atom(names[i], 190);
            }
            for (char *p = names[i]; *p; p++)
                if (*p == '/') *p = '_';
            strcat(names[i], ".jpg");
            int dup = 0;
            for (size_t k = 0; k < i; k++)
                dup |= strcmp(names[k], names[i]) == 0;
            if (!dup) break;
        }
    }
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Index of `bytes` among the full paths, or -1. */
static int find_path(char paths[N_NAMES][PATH_MAX], const char *bytes)
{
    for (int i = 0; i < N_NAMES; i++)
        if (strcmp(paths[i], bytes) == 0) return i;
    return -1;
}

static void check_detect(char paths[N_NAMES][PATH_MAX]);

static void test_hostile_names(void **state)
{
    (void)state;
    if (!sample[0]) skip();
    const char *seed_env = getenv("FACENAMES_TEST_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL);
    printf("test_hostile_names: seed %llu (replay with FACENAMES_TEST_SEED=%llu)\n",
           (unsigned long long)seed, (unsigned long long)seed);
    rng = seed * 2654435761u + 1;

    char *photo = slurp(sample);
    struct stat st;
    assert_int_equal(stat(sample, &st), 0);
    char dir[600], lib[600];
    snprintf(dir, sizeof dir, "%s/hostile", harness_tmp);
    snprintf(lib, sizeof lib, "%s/hostile-lib", harness_tmp);
    assert_int_equal(mkdir(dir, 0755), 0);
    static char names[N_NAMES][200], paths[N_NAMES][PATH_MAX];
    make_names(names);
    /* good photos at indexes 1, 4, 7 (one fixed hostile kind among them), broken ones elsewhere */
    int good[N_NAMES] = {0};
    for (int g = 0; g < N_GOOD; g++)
        good[1 + 3 * g] = 1;
    for (int i = 0; i < N_NAMES; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/%s", dir, names[i]);
        if (good[i])
            write_file(paths[i], photo, (size_t)st.st_size);
        else
            write_file(paths[i], "not a photo", 11);
    }
    free(photo);
    const char *env[] = {models_env, NULL};

    struct cli_result r =
        cli_run(env, (const char *[]){"--library", lib, "ingest", dir, "--detector", "tiny", NULL});
    CHECK(r, r.code == 4); /* done, with the broken files as item errors */
    CHECK_SAFE(r);
    cli_result_free(&r);

    /* photos list --json: every file once, by its bytes */
    r = cli_run(env, (const char *[]){"--library", lib, "photos", "list", "--json", NULL});
    CHECK(r, r.code == 0);
    json_t *list = json_loads(r.out, 0, NULL);
    CHECK(r, json_array_size(list) == N_NAMES);
    int seen[N_NAMES] = {0};
    size_t i;
    json_t *x;
    json_array_foreach(list, i, x)
    {
        char *p = path_of(x, "path");
        int k = find_path(paths, p);
        CHECK(r, k >= 0);
        seen[k]++;
        CHECK(r, strcmp(json_string_value(json_object_get(x, "status")),
                        good[k] ? "ok" : "error") == 0);
        /* photos show takes what JSON printed, and finds the same photo */
        struct cli_result s = cli_run(
            env, (const char *[]){"--library", lib, "photos", "show",
                                  json_string_value(json_object_get(x, "path")), "--json", NULL});
        json_t *one = json_loads(s.out, 0, NULL);
        CHECK(s, s.code == 0 && json_integer_value(json_object_get(one, "id")) ==
                                    json_integer_value(json_object_get(x, "id")));
        char *p2 = path_of(one, "path");
        assert_string_equal(p2, p);
        free(p2);
        json_decref(one);
        /* and its human form is safe */
        s.code = 0;
        cli_result_free(&s);
        s = cli_run(env, (const char *[]){"--library", lib, "photos", "show",
                                          json_string_value(json_object_get(x, "path")), NULL});
        CHECK(s, s.code == 0);
        CHECK_SAFE(s);
        cli_result_free(&s);
        free(p);
    }
    for (int k = 0; k < N_NAMES; k++)
        CHECK(r, seen[k] == 1);
    json_decref(list);
    cli_result_free(&r);

    r = cli_run(env, (const char *[]){"--library", lib, "photos", "list", NULL});
    CHECK(r, r.code == 0);
    CHECK_SAFE(r);
    cli_result_free(&r);

    /* faces list --json: faces only of the good photos, each good photo with some */
    r = cli_run(env, (const char *[]){"--library", lib, "faces", "list", "--json", NULL});
    CHECK(r, r.code == 0);
    list = json_loads(r.out, 0, NULL);
    CHECK(r, json_array_size(list) > 0);
    memset(seen, 0, sizeof seen);
    json_array_foreach(list, i, x)
    {
        char *p = path_of(x, "photo");
        int k = find_path(paths, p);
        CHECK(r, k >= 0 && good[k]);
        seen[k]++;
        free(p);
    }
    for (int k = 0; k < N_NAMES; k++)
        CHECK(r, !good[k] || seen[k] > 0);
    json_decref(list);
    cli_result_free(&r);
    r = cli_run(env, (const char *[]){"--library", lib, "faces", "list", NULL});
    CHECK(r, r.code == 0);
    CHECK_SAFE(r);
    cli_result_free(&r);

    /* jobs show --json and jobs errors --json: one error per broken file, with its bytes */
    const char *const *cmds[] = {
        (const char *[]){"--library", lib, "jobs", "show", "1", "--json", NULL},
        (const char *[]){"--library", lib, "jobs", "errors", "1", "--json", NULL},
    };
    char retry_ref[PATH_MAX] = "";
    int retry_k = -1;
    for (int c = 0; c < 2; c++) {
        r = cli_run(env, cmds[c]);
        CHECK(r, r.code == 0 || r.code == 4);
        json_t *root = json_loads(r.out, 0, NULL);
        json_t *errs = c == 0 ? json_object_get(root, "errors") : root;
        CHECK(r, json_array_size(errs) == N_BAD);
        memset(seen, 0, sizeof seen);
        json_array_foreach(errs, i, x)
        {
            char *p = path_of(x, "item");
            int k = find_path(paths, p);
            CHECK(r, k >= 0 && !good[k]);
            seen[k]++;
            /* the message names the file: it survives too */
            CHECK(r, json_string_value(json_object_get(x, "message")) != NULL);
            /* the retry below names the last broken file with an escaped form, when one has */
            if (json_object_get(x, "item_b64") || retry_k < 0) {
                snprintf(retry_ref, sizeof retry_ref, "%s",
                         json_string_value(json_object_get(x, "item")));
                retry_k = k;
            }
            free(p);
        }
        for (int k = 0; k < N_NAMES; k++)
            CHECK(r, good[k] || seen[k] == 1);
        json_decref(root);
        cli_result_free(&r);
    }
    /* the checkpoint's position is a path too: the last name walked (names sort by bytes) */
    r = cli_run(env, (const char *[]){"--library", lib, "jobs", "show", "1", "--json", NULL});
    json_t *shown = json_loads(r.out, 0, NULL);
    json_t *ck = json_object_get(shown, "checkpoint");
    CHECK(r, json_is_object(ck) && json_object_get(ck, "last"));
    char *last = path_of(ck, "last");
    assert_string_equal(last, "\xFF\xFElast.jpg");
    free(last);
    json_decref(shown);
    cli_result_free(&r);
    r = cli_run(env, (const char *[]){"--library", lib, "jobs", "show", "1", NULL});
    CHECK_SAFE(r);
    cli_result_free(&r);
    r = cli_run(env, (const char *[]){"--library", lib, "jobs", "errors", "1", NULL});
    CHECK(r, r.code == 0);
    CHECK_SAFE(r);
    cli_result_free(&r);

    /* jobs retry --item <what JSON printed>: a job redoing exactly that file */
    r = cli_run(env, (const char *[]){"--library", lib, "jobs", "retry", "1", "--item", retry_ref,
                                      "--json", NULL});
    CHECK(r, r.code == 4);
    CHECK(r, term_safe(r.err)); /* stdout is JSON: UTF-8 as JSON allows */
    json_t *retry = json_loads(r.out, 0, NULL);
    json_t *rerrs = json_object_get(retry, "errors");
    CHECK(r, json_array_size(rerrs) == 1);
    char *again = path_of(json_array_get(rerrs, 0), "item");
    assert_string_equal(again, paths[retry_k]);
    free(again);
    json_decref(retry);
    cli_result_free(&r);

    /* jobs errors --item with a path relative to the current folder, escaped as JSON prints it */
    char rel[PATH_MAX], cwd[PATH_MAX];
    snprintf(rel, sizeof rel, "hostile/%s", strrchr(retry_ref, '/') + 1);
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(harness_tmp), 0);
    r = cli_run(env, (const char *[]){"--library", lib, "jobs", "errors", "1", "--item", rel,
                                      "--json", NULL});
    assert_int_equal(chdir(cwd), 0);
    CHECK(r, r.code == 0);
    json_t *sel = json_loads(r.out, 0, NULL);
    CHECK(r, json_array_size(sel) == 1);
    char *chosen = path_of(json_array_get(sel, 0), "item");
    assert_string_equal(chosen, paths[retry_k]);
    free(chosen);
    json_decref(sel);
    cli_result_free(&r);

    check_detect(paths);
}

/* detect: one JSON line per image, "image" (and "image_b64") giving the bytes back, the error
 * message of a broken one a string; the human output safe. Names 1 (a photo, with ESC and BEL)
 * and 0 (broken, not UTF-8). */
static void check_detect(char paths[N_NAMES][PATH_MAX])
{
    const char *env[] = {models_env, NULL};
    struct cli_result r = cli_run(env, (const char *[]){"detect", "--detector", "tiny", "--json",
                                                        "--", paths[1], paths[0], NULL});
    CHECK(r, r.code == 4);
    char *save = NULL;
    int n = 0;
    for (char *line = strtok_r(r.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *o = json_loads(line, 0, NULL);
        CHECK(r, o != NULL && n < 2);
        char *p = path_of(o, "image");
        assert_string_equal(p, paths[1 - n]);
        free(p);
        if (n == 1)
            CHECK(r, json_string_value(json_object_get(json_object_get(o, "error"), "message")));
        else
            CHECK(r, json_array_size(json_object_get(o, "faces")) > 0);
        json_decref(o);
        n++;
    }
    CHECK(r, n == 2);
    cli_result_free(&r);
    r = cli_run(env,
                (const char *[]){"detect", "--detector", "tiny", "--", paths[1], paths[0], NULL});
    CHECK(r, r.code == 4);
    CHECK_SAFE(r);
    cli_result_free(&r);
}

static void test_rough_edges(void **state)
{
    (void)state;
    if (!sample[0]) skip();
    const char *env[] = {models_env, NULL};
    char lib[600], dir[600], dash[700];
    snprintf(lib, sizeof lib, "%s/edges-lib", harness_tmp);
    snprintf(dir, sizeof dir, "%s/edges", harness_tmp);
    assert_int_equal(mkdir(dir, 0755), 0);
    char *photo = slurp(sample);
    struct stat st;
    assert_int_equal(stat(sample, &st), 0);
    /* a file whose name starts with '-', named after "--" */
    snprintf(dash, sizeof dash, "%s/-x.jpg", dir);
    write_file(dash, photo, (size_t)st.st_size);
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    struct cli_result r = cli_run(env, (const char *[]){"--library", lib, "ingest", "--detector",
                                                        "tiny", "--", "-x.jpg", NULL});
    assert_int_equal(chdir(cwd), 0);
    CHECK(r, r.code == 0);
    cli_result_free(&r);

    /* --item: the bytes as written win over their decoded form ("lit\x41" names that file, not
     * "litA"); a reference that matches nothing as written is decoded */
    char exact[600], lit[700], dec[700];
    snprintf(exact, sizeof exact, "%s/exact", harness_tmp);
    assert_int_equal(mkdir(exact, 0755), 0);
    snprintf(lit, sizeof lit, "%s/lit\\x41.jpg", exact);
    snprintf(dec, sizeof dec, "%s/litA.jpg", exact);
    write_file(lit, "broken", 6);
    write_file(dec, "broken", 6);
    r = cli_run(env, (const char *[]){"--library", lib, "ingest", exact, NULL});
    CHECK(r, r.code == 4);
    cli_result_free(&r);
    const char *want[] = {lit, dec};
    const char *refs[] = {lit, "exact/lit\\x42.jpg"}; /* the second: relative, decoded: litB */
    for (int k = 0; k < 2; k++) {
        char *w = NULL;
        if (k == 1) {
            /* a file whose name only the decoded form gives */
            char b[700];
            snprintf(b, sizeof b, "%s/litB.jpg", exact);
            write_file(b, "broken", 6);
            r = cli_run(env, (const char *[]){"--library", lib, "ingest", b, NULL});
            cli_result_free(&r);
            w = strdup(b);
        } else {
            w = strdup(want[k]);
        }
        assert_int_equal(chdir(harness_tmp), 0);
        r = cli_run(env, (const char *[]){"--library", lib, "jobs", "errors", k ? "3" : "2",
                                          "--item", refs[k], "--json", NULL});
        assert_int_equal(chdir(cwd), 0);
        json_t *sel = json_loads(r.out, 0, NULL);
        CHECK(r, r.code == 0 && json_array_size(sel) == 1);
        char *got = path_of(json_array_get(sel, 0), "item");
        assert_string_equal(got, w);
        free(got);
        free(w);
        json_decref(sel);
        cli_result_free(&r);
    }

    /* jobs show -1: not a job id, not an unknown option */
    r = cli_run(env, (const char *[]){"--library", lib, "jobs", "show", "-1", NULL});
    CHECK(r, r.code == 2 && strstr(r.err, "not a job id") && !strstr(r.err, "unknown option"));
    cli_result_free(&r);

    /* ingest --detach --json: the queued job, as jobs show --json prints it */
    for (int k = 0; k < 40; k++) {
        char p[700];
        snprintf(p, sizeof p, "%s/copy%02d.jpg", dir, k);
        write_file(p, photo, (size_t)st.st_size);
    }
    free(photo);
    r = cli_run(env, (const char *[]){"--library", lib, "ingest", "--detach", "--json", dir,
                                      "--detector", "tiny", "--batch", "64", NULL});
    CHECK(r, r.code == 0);
    json_t *j = json_loads(r.out, 0, NULL);
    CHECK(r, json_is_object(j));
    CHECK(r, strcmp(json_string_value(json_object_get(j, "state")), "queued") == 0);
    CHECK(r, strcmp(json_string_value(json_object_get(j, "type")), "ingest") == 0);
    json_int_t id = json_integer_value(json_object_get(j, "id"));
    CHECK(r, id > 1);
    json_decref(j);
    cli_result_free(&r);

    /* Ctrl-C twice with stderr a file: the second stops at once, with no terminal codes */
    /* the same ingest again runs the queued one in the foreground, printing a plain progress
     * line every 10 ms */
    const char *fast_env[] = {models_env, "FACENAMES_PROGRESS_INTERVAL_MS=10", NULL};
    pid_t p = cli_spawn(fast_env,
                        (const char *[]){"--library", lib, "ingest", dir, "--detector", "tiny",
                                         "--batch", "64", NULL},
                        "cc");
    /* wait until it is inside its one batch (a photo done, the others still to do: the live
     * progress says so), then press twice; a Ctrl-C before the batch would end the job at once,
     * before the second press */
    char errp[700];
    snprintf(errp, sizeof errp, "%s/.cc.stderr", harness_tmp);
    int running = 0;
    for (int k = 0; k < 2400 && !running; k++) { /* up to a minute: sanitizers start slowly */
        char *e = slurp(errp);
        for (const char *q = e; q && (q = strstr(q, " files")) && !running; q++) {
            const char *slash = q;
            while (slash > e && slash[-1] != '/' && slash[-1] != ' ')
                slash--;
            if (slash > e && slash[-1] == '/') {
                const char *num = slash - 1;
                while (num > e && num[-1] >= '0' && num[-1] <= '9')
                    num--;
                long done = strtol(num, NULL, 10), total = strtol(slash, NULL, 10);
                running = done > 0 && done < total;
            }
        }
        free(e);
        if (!running) sleep_ms(10);
    }
    assert_true(running);
    kill(p, SIGINT);
    sleep_ms(50); /* the first is handled at once (a self-pipe wakes the loop) */
    kill(p, SIGINT);
    r = cli_wait(p, "cc");
    CHECK(r, strstr(r.err, "stopped at once"));
    CHECK(r, !strchr(r.err, '\033') && !strchr(r.err, '\r'));
    cli_result_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_names),
        cmocka_unit_test(test_rough_edges),
    };
    return cmocka_run_group_tests(tests, group_setup, harness_group_teardown);
}
