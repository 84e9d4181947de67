/* xmp_regions.h: Metadata Working Group face regions in XMP packets, read and merged with exempi
 * (Adobe's XMP toolkit), for the export and import job types (internal to tasks).
 *
 * A region here is a named face rectangle normalised to the photo as displayed (EXIF orientation
 * applied): x, y its top-left corner and w, h its size, each in [0, 1] of the displayed width or
 * height. MWG's stArea stores the centre instead; the conversion happens here and nowhere else.
 *
 * Malformed packets are errors with a message, never a crash. Threading: any thread, each call on
 * its own packet (exempi's global state is set up once by fn_xmp_init, which is thread-safe). */
#ifndef FN_TASKS_XMP_REGIONS_H
#define FN_TASKS_XMP_REGIONS_H

#include <stddef.h>

typedef struct fn_xmp_region {
    char *name; /* UTF-8; owned */
    double x, y, w, h;
} fn_xmp_region;

/* Sets exempi up once per process. 0 or FN_ERR_UNSUPPORTED. */
int fn_xmp_init(void);

/* The named face regions (mwg-rs:Type "Face", a non-empty mwg-rs:Name, a normalised area inside
 * the photo) of `packet` (len bytes, any XMP text: a sidecar or an embedded packet). Regions of
 * other types or without a name are left out. 0 with *out (n elements, caller frees with
 * fn_xmp_regions_free; NULL when none), or FN_ERR_CORRUPT with a sentence in err. */
int fn_xmp_regions_read(const char *packet, size_t len, fn_xmp_region **out, size_t *n, char *err,
                        size_t errlen);
void fn_xmp_regions_free(fn_xmp_region *r, size_t n);

/* The packet `existing` (NULL or len 0: a new one) with `ours` merged into its mwg-rs:Regions:
 * face regions that overlap one of ours (intersection over union >= 0.5) are replaced, every other
 * region and every other property stays. AppliedToDimensions becomes width x height pixels.
 * *out (malloc'ed, *outlen bytes) is a complete sidecar document. 0, FN_ERR_CORRUPT (existing is
 * not XMP) or FN_ERR_NOMEM, with a sentence in err. */
int fn_xmp_regions_merge(const char *existing, size_t len, const fn_xmp_region *ours, size_t n,
                         int width, int height, char **out, size_t *outlen, char *err,
                         size_t errlen);

/* Intersection over union of two rectangles (x, y, w, h), 0 when they do not meet. */
double fn_rect_iou(double ax, double ay, double aw, double ah, double bx, double by, double bw,
                   double bh);

#endif
