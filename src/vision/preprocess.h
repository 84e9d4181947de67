/* preprocess.h: the reference's input preparation (internal; owned by the detector engineer).
 *
 * face-api turns any image into a network input the same way: padToSquare (zeros appended at the
 * bottom/right for the detectors, split around the image for the face crops) and then
 * tf.image.resizeBilinear to the network size. These functions do both in one pass, reading the
 * zero padding virtually, so the padded square is never built. fn_crop_square_resize (nets.h) is
 * the centred variant used for landmark and recognition crops. */
#ifndef FN_VISION_PREPROCESS_H
#define FN_VISION_PREPROCESS_H

#include "facenames/vision.h"
#include "vision/ops.h"

/* The region (rx, ry, rw, rh) (integers, inside img) padded with zeros to a square of side
 * max(rw, rh) (centred as padToSquare(isCenterImage) does when `center`, else at the bottom/right)
 * and resized bilinearly to s x s. Writes out->h = out->w = s, out->c = 3 and s*s*3 floats. */
void fn_pad_resize_region(const fn_image *img, int rx, int ry, int rw, int rh, int center, int s,
                          fn_t3 *out);

/* The reference's Box.clipAtImageBorders (clip to the image, then floor x, y, width, height):
 * writes the integer box; returns 0 when it is empty (the reference then drops the face). */
int fn_clip_box(int img_w, int img_h, float x, float y, float w, float h, int *cx, int *cy, int *cw,
                int *ch);

/* The canvas of padding before detection (fn_detect_pad): img centred in a square of side
 * longer side x (1 + 2 x fraction), the margin filled as `fill` says (FN_PAD_FILL_*: black, grey
 * 128, the edge pixels repeated, the image mirrored: libvips' embed modes, to the byte), the whole
 * shrunk first (img by a box average) so the side is at most max_side. *out gets a malloc'ed
 * canvas; *ox, *oy: where the image's first pixel is on it; *fx, *fy: the image's scale on each
 * axis. 0, or FN_ERR_NOMEM with out->rgb NULL. Any thread. */
int fn_pad_canvas(const fn_image *img, float fraction, int fill, int max_side, fn_image *out,
                  int *ox, int *oy, double *fx, double *fy);

#endif
