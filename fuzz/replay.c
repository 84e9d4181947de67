/* replay.c: runs a fuzz target's LLVMFuzzerTestOneInput over saved inputs without libFuzzer, so
 * the seed corpus (and any crash file a fuzzing run found, once saved there) is a regression test
 * in every build, with or without sanitizers. One driver for every fuzz target: each target's
 * meson.build links it with that target's fuzz_<target>.c.
 *
 * usage: fuzz_<target>_replay FILE_OR_DIR...   (a directory: each regular file in it, sorted)
 * Exits 1 when an input could not be read or when nothing was replayed (an empty or misnamed
 * corpus must not pass as a test). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(f);
            return -1;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        uint8_t *nb = realloc(buf, cap * 2);
        if (!nb) free(buf);
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "%s: read error\n", path);
        free(buf);
        return -1;
    }
    /* An exact-size copy, so ASan catches a read one byte past the input. */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays each regular file of dir in name order; adds them to *ran. */
static int run_dir(const char *dir, int *ran)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, NULL);
    if (n < 0) {
        perror(dir);
        return -1;
    }
    char **paths = calloc(n ? (size_t)n : 1, sizeof *paths);
    int np = 0, rc = paths ? 0 : -1;
    for (int j = 0; j < n; j++) {
        if (names[j]->d_name[0] != '.' && paths) {
            size_t len = strlen(dir) + strlen(names[j]->d_name) + 2;
            paths[np] = malloc(len);
            if (paths[np])
                snprintf(paths[np++], len, "%s/%s", dir, names[j]->d_name);
            else
                rc = -1;
        }
        free(names[j]);
    }
    free(names);
    if (!paths) return -1;
    qsort(paths, (size_t)np, sizeof *paths, by_name);
    for (int j = 0; j < np; j++) {
        struct stat st;
        if (stat(paths[j], &st) == 0 && S_ISREG(st.st_mode)) {
            if (run_file(paths[j]) != 0) rc = -1;
            (*ran)++;
        }
        free(paths[j]);
    }
    free(paths);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
        return 2;
    }
    int ran = 0, failed = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            failed = 1;
        } else if (S_ISDIR(st.st_mode)) {
            if (run_dir(argv[i], &ran) != 0) failed = 1;
        } else {
            if (run_file(argv[i]) != 0) failed = 1;
            ran++;
        }
    }
    printf("replayed %d input(s)\n", ran);
    return failed || ran == 0 ? 1 : 0;
}
