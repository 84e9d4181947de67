/* cli_version.c: `facenames --version`: the version, the source revision, the run-time versions of
 * libvips, SQLite and OpenBLAS, and the model files the program would load (the default search:
 * $FACENAMES_MODELS, the installed models, the source tree's), each with its SHA-256 and whether it
 * is the file this build pins (models/SHA256SUMS). A bug report pasted from it says exactly what
 * ran. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "facenames/version.h"
#include "facenames/vision.h"

int cli_print_version(FILE *out)
{
    fprintf(out, "facenames %s\n", fn_version());
    fprintf(out, "revision: %s\n", fn_version_revision());
    fprintf(out, "libvips %s, SQLite %s, %s\n", fn_version_vips(), fn_version_sqlite(),
            fn_version_openblas());
    const char *dir = fn_models_default_dir();
    fprintf(out, "models: %s\n", dir);
    int bad = 0;
    const char *want;
    for (size_t i = 0; fn_models_pinned(i, &want); i++) {
        const char *name = fn_models_pinned(i, NULL);
        char path[4096], got[65];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        int rc = fn_sha256_file(path, got);
        if (rc < 0) {
            fprintf(out, "  %-64s  %s  %s\n", "-", name,
                    rc == FN_ERR_NOT_FOUND ? "MISSING" : "UNREADABLE");
            bad++;
        } else if (strcmp(got, want) != 0) {
            fprintf(out, "  %s  %s  DIFFERS from the pinned %s\n", got, name, want);
            bad++;
        } else {
            fprintf(out, "  %s  %s\n", got, name);
        }
    }
    if (bad)
        fprintf(out,
                "%d model file%s not the pinned one%s: reinstall the models (scripts/bootstrap "
                "in the source tree, or the facenames-models package)\n",
                bad, bad == 1 ? " is" : "s are", bad == 1 ? "" : "s");
    return CLI_EXIT_OK;
}
