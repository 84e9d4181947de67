/* image_load.h: the face pipeline's photo decode (internal; image.c implements it).
 *
 * fn_image_load promises a longer side of at most max_side, which costs a full resampling pass
 * whenever the decoder cannot shrink to it exactly (a 2496 px JPEG is decoded at 2496 px and then
 * resized to 2048 with lanczos3, about five times the cost of the decode). The face pipeline only
 * needs "about" its useful resolution, so it loads with a tolerance instead (docs/design.md,
 * decision 27). */
#ifndef FN_VISION_IMAGE_LOAD_H
#define FN_VISION_IMAGE_LOAD_H

#include <stddef.h>

#include "facenames/vision.h"

/* The decoder's own shrink-on-load takes the largest factor that leaves the longer side at least
 * FN_NEAR_LO(side); what it gives is kept as it is up to FN_NEAR_HI(side) and resized to `side`
 * only above that (formats without shrink-on-load, or photos over 8 x FN_NEAR_HI). */
#define FN_NEAR_LO(side) ((side)*3 / 4)
#define FN_NEAR_HI(side) ((side)*3 / 2)

/* fn_image_load with max_side = `side` loosened as above (the longer side of *img ends between
 * FN_NEAR_LO(side) and FN_NEAR_HI(side) when the photo is larger than FN_NEAR_HI(side), and is
 * the photo's own otherwise). Same errors, same ownership; any thread. */
int fn_image_load_near(const char *path, int side, fn_image *img, fn_image_info *info, char *err,
                       size_t errlen);

/* JPEG photos are decoded by libjpeg itself (jpeg_decode.h; 1, the default) or by libvips (0),
 * the same pixels either way; for tests and benchmarks that compare the two. Not while other
 * threads load images. */
void fn_image_set_jpeg_direct(int on);

#endif
