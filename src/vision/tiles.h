/* tiles.h: the rule of FN_DETECT_TILES_AUTO (internal; pipeline.c), apart so that tests can put
 * constructed detections to it. */
#ifndef FN_VISION_TILES_H
#define FN_VISION_TILES_H

#include <stddef.h>

#include "vision/nets.h"

/* Whether tiles pay on an image whose long side is `side` pixels, seen by the detector at `input`
 * pixels, from what its whole-image pass found: dets[0, n) in the image's coordinates, the faces
 * (score above conf) and, after them, the candidates the pass kept down to
 * FN_TILE_AUTO_PROBE. Pure: no state, any thread. */
int fn_tiles_auto_pays(int side, int input, const fn_det *dets, size_t n, float conf);

/* Score down to which the auto mode's whole-image pass keeps candidates: below it, the samples'
 * own backgrounds leave small candidates too (bench_recall's group sets, decision 37). */
#define FN_TILE_AUTO_PROBE 0.07f

#endif
