/* jpeg_decode.h: a JPEG in memory to 8-bit RGB pixels with libjpeg itself (internal; image.c's
 * fast path for JPEG photos).
 *
 * libvips' JPEG loader runs the same libjpeg underneath, with the same defaults (integer DCT,
 * fancy upsampling, the DCT's own scaling for shrink-on-load), so the pixels are the same bytes;
 * what it adds around it (its lazy pipeline, a region per strip, the sink's buffers) cost about
 * as much again as the decode itself on 2026-12-04's measurements (docs/design.md decision 63).
 * image.c keeps libvips for everything else: the format sniffing, the header, the EXIF
 * orientation and date, the pixel limit, every other format, the resize, and every JPEG this
 * path declines (it then decodes the file as before, so damaged files get the same codes and
 * messages). */
#ifndef FN_VISION_JPEG_DECODE_H
#define FN_VISION_JPEG_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "facenames/vision.h"

/* Decodes the JPEG of len bytes at data at 1/denom of its size (denom 1, 2, 4 or 8: libjpeg's DCT
 * scaling; the size rounded down, as libvips' loader gives it, at least 1) into *out (rgb
 * malloc'ed, rows of width * 3 bytes; the caller frees it with free). Returns 0; or -1 with *out
 * zeroed when it declines: a libjpeg error or any warning (a truncated or damaged file, whose
 * pixels libjpeg would make up), a colour space other than YCbCr, RGB or grayscale (CMYK, YCCK),
 * bad arguments, out of memory. Any thread; data is only read. */
int fn_jpeg_decode_rgb(const uint8_t *data, size_t len, int denom, fn_image *out);

#endif
