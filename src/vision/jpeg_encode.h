/* jpeg_encode.h: RGB pixels to a JPEG in memory with libjpeg itself (internal).
 *
 * For the face thumbnails: a libvips save of a 112 px image costs about 400 us, most of it
 * setting up its pipeline and thread; libjpeg alone takes about 85 us (docs/design.md decision
 * 61). */
#ifndef FN_VISION_JPEG_ENCODE_H
#define FN_VISION_JPEG_ENCODE_H

#include <stddef.h>
#include <stdint.h>

/* Encodes w x h RGB pixels (rows of w*3 bytes) as a baseline JPEG of `quality` (1-100), 4:2:0,
 * with a JFIF header and no other metadata. *out gets a malloc'ed buffer (the caller frees it
 * with free) of *len bytes. Returns 0, or -1 (bad arguments, out of memory, a libjpeg error;
 * *out is then NULL). Any thread. */
int fn_jpeg_encode_rgb(const uint8_t *rgb, int w, int h, int quality, uint8_t **out, size_t *len);

#endif
