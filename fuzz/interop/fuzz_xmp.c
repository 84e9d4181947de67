/* fuzz_xmp.c: fuzz target for the XMP face region reader and merger (src/tasks/xmp_regions.c),
 * what the import job runs on every sidecar and embedded packet, and the export job on every
 * existing sidecar.
 *
 * Besides "does not crash": every region read is normalised and inside the photo, and merging our
 * regions into any packet that parses gives a packet from which our regions read back (the
 * other regions stay as they were, or are replaced when they overlap ours). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tasks/xmp_regions.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const fn_xmp_region *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!r[i].name || !r[i].name[0] ||
            !(r[i].x >= 0 && r[i].y >= 0 && r[i].w > 0 && r[i].h > 0 && r[i].x + r[i].w <= 1.0001 &&
              r[i].y + r[i].h <= 1.0001))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fn_xmp_region *r = NULL;
    size_t n = 0;
    char err[256];
    memset(err, 'x', sizeof err);
    int rc = fn_xmp_regions_read((const char *)data, size, &r, &n, err, sizeof err);
    if (rc < 0) {
        if (!memchr(err, 0, sizeof err) || r || n) abort();
        return 0;
    }
    check(r, n);
    fn_xmp_regions_free(r, n);

    fn_xmp_region ours[2] = {{"Fuzz One", 0.1, 0.1, 0.2, 0.3}, {"Zwei", 0.6, 0.5, 0.1, 0.1}};
    char *out = NULL;
    size_t out_len = 0;
    rc = fn_xmp_regions_merge((const char *)data, size, ours, 2, 640, 480, &out, &out_len, err,
                              sizeof err);
    if (rc < 0) {
        if (!memchr(err, 0, sizeof err) || out) abort();
        return 0;
    }
    rc = fn_xmp_regions_read(out, out_len, &r, &n, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "our merged packet does not read back: %s\n%s\n", err, out);
        abort();
    }
    check(r, n);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 2; k++)
            if (!strcmp(r[i].name, ours[k].name) &&
                fn_rect_iou(r[i].x, r[i].y, r[i].w, r[i].h, ours[k].x, ours[k].y, ours[k].w,
                            ours[k].h) > 0.99)
                found |= 1 << k;
    if (found != 3) {
        fprintf(stderr, "our regions are not in the merged packet:\n%s\n", out);
        abort();
    }
    fn_xmp_regions_free(r, n);
    free(out);
    return 0;
}
