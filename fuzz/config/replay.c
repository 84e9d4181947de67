/* replay.c: runs LLVMFuzzerTestOneInput over saved inputs without libFuzzer, so the corpus (and
 * any crash file a fuzzing run found) is a regression test in every build.
 *
 * usage: fuzz_config_replay FILE_OR_DIR...   (a directory: every regular file in it) */
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
    fclose(f);
    /* an exact-size copy, so ASan catches a read one byte past the input */
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

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
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
        if (stat(argv[i], &st) < 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            failed |= run_file(argv[i]) < 0;
            ran++;
            continue;
        }
        struct dirent **names;
        int n = scandir(argv[i], &names, NULL, NULL);
        if (n < 0) {
            perror(argv[i]);
            return 1;
        }
        char **paths = calloc((size_t)n, sizeof *paths);
        int np = 0;
        for (int j = 0; j < n; j++) {
            if (names[j]->d_name[0] != '.' && paths) {
                size_t len = strlen(argv[i]) + strlen(names[j]->d_name) + 2;
                paths[np] = malloc(len);
                if (paths[np]) snprintf(paths[np++], len, "%s/%s", argv[i], names[j]->d_name);
            }
            free(names[j]);
        }
        free(names);
        if (!paths) return 1;
        qsort(paths, (size_t)np, sizeof *paths, cmp);
        for (int j = 0; j < np; j++) {
            if (stat(paths[j], &st) == 0 && S_ISREG(st.st_mode)) {
                failed |= run_file(paths[j]) < 0;
                ran++;
            }
            free(paths[j]);
        }
        free(paths);
    }
    printf("replayed %d input(s)\n", ran);
    return failed || ran == 0 ? 1 : 0;
}
