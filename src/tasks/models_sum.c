/* models_sum.c: the models' checksum (models_sum.h): a 64-bit content hash over the landmark and
 * recognition models' manifest and weights files, in a fixed order. */
#include "tasks/models_sum.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "facenames/vision.h"
#include "tasks/content_hash.h"

int fn_models_sum(const char *dir, char out[17])
{
    static const char *const files[] = {
        "face_landmark_68_model-weights_manifest.json", "face_landmark_68_model.bin",
        "face_recognition_model-weights_manifest.json", "face_recognition_model.bin"};
    out[0] = 0;
    if (!dir || !*dir) dir = fn_models_default_dir();
    enum { BUF = 1 << 20 };
    uint8_t *buf = malloc(BUF);
    if (!buf) return FN_ERR_NOMEM;
    fn_hash64 all;
    fn_hash64_init(&all);
    int rc = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0] && rc == 0; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        uint64_t h;
        int64_t n;
        if ((rc = fn_hash_file(path, buf, BUF, &h, &n)) == 0) {
            fn_hash64_update(&all, &h, sizeof h);
            fn_hash64_update(&all, &n, sizeof n);
        }
    }
    free(buf);
    if (rc == 0) snprintf(out, 17, "%016llx", (unsigned long long)fn_hash64_final(&all));
    return rc;
}
