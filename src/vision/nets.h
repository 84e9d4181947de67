/* nets.h: the four face-api networks (internal). Each network is bound once to its loaded weights
 * (checking every tensor's name and shape) and is then immutable and shared by all threads; every
 * run gets the caller's scratch memory (fn_<net>_scratch_floats() floats, allocated once per worker
 * by fn_vision) so nothing allocates on the per-image path.
 *
 * Owners: ssd.c / tiny.c (detectors), landmarks.c (FaceLandmark68Net and the tiny variant),
 * recognition.c (FaceRecognitionNet + the landmark-based face crop), models.c (fn_models_load:
 * reads weights with weights.h and calls the bind functions), pipeline.c (fn_vision_*). */
#ifndef FN_VISION_NETS_H
#define FN_VISION_NETS_H

#include <stddef.h>

#include "facenames/vision.h"
#include "vision/ops.h"
#include "vision/weights.h"

/* A detection before landmarks: box in the coordinates of the image that was passed in. */
typedef struct fn_det {
    float x, y, w, h;
    float score;
} fn_det;

/* ---- SsdMobilenetv1 (ssd.c) ---- */
typedef struct fn_ssd_net fn_ssd_net;
int fn_ssd_bind(const fn_weights *w, fn_ssd_net **out, char *err, size_t errlen);
void fn_ssd_free(fn_ssd_net *n);
size_t fn_ssd_scratch_floats(void);
/* Raw network: `in` is the 512x512x3 input exactly as the reference feeds it (after its own
 * normalisation); writes 5118 decoded boxes [ymin, xmin, ymax, xmax] (relative) and scores. */
void fn_ssd_forward(const fn_ssd_net *n, const fn_t3 *in, float *scratch, float *boxes,
                    float *scores);
/* Whole detector on an RGB8 image as the reference does it (pad/resize, normalise, decode, NMS,
 * min_confidence). Writes up to `cap` detections (image coordinates) and returns how many. */
size_t fn_ssd_detect(const fn_ssd_net *n, const fn_image *img, float min_confidence, float *scratch,
                     fn_det *out, size_t cap);

/* ---- TinyFaceDetector (tiny.c) ---- */
typedef struct fn_tiny_net fn_tiny_net;
int fn_tiny_bind(const fn_weights *w, fn_tiny_net **out, char *err, size_t errlen);
void fn_tiny_free(fn_tiny_net *n);
size_t fn_tiny_scratch_floats(int input_size);
/* Raw network output grid (input_size/32)^2 x 5 anchors x 5 values (x, y, w, h, score logit),
 * before decoding. */
void fn_tiny_forward(const fn_tiny_net *n, const fn_t3 *in, float *scratch, float *out);
size_t fn_tiny_detect(const fn_tiny_net *n, const fn_image *img, int input_size,
                      float min_confidence, float *scratch, fn_det *out, size_t cap);

/* ---- FaceLandmark68Net / FaceLandmark68TinyNet (landmarks.c) ---- */
typedef struct fn_landmark_net fn_landmark_net;
int fn_landmark_bind(const fn_weights *w, int tiny, fn_landmark_net **out, char *err,
                     size_t errlen);
void fn_landmark_free(fn_landmark_net *n);
size_t fn_landmark_scratch_floats(void);
/* Raw: 112x112x3 input as the reference feeds it (after its normalisation (rgb - mean) / 255) ->
 * 136 outputs. `in` may occupy the first 112*112*3 floats of scratch. */
void fn_landmark_forward(const fn_landmark_net *n, const fn_t3 *in, float *scratch, float *out136);
/* The reference's whole step for one face: crop `det` from `img`, pad to square, resize, run,
 * map the 68 points back to img coordinates. */
void fn_landmark_run(const fn_landmark_net *n, const fn_image *img, const fn_det *det,
                     float *scratch, float out[68][2]);
/* The reference's face crop for `det` (Box.clipAtImageBorders, then floor): box = x, y, w, h in
 * whole pixels. Returns 1, or 0 when the clipped box is empty or det is not finite (then the
 * box is zeros). (Added by landmarks.c.) */
int fn_landmark_crop_box(const fn_image *img, const fn_det *det, int box[4]);
/* Which depthwise kernel the landmark nets use: -1 (default) the ops' AVX-512 kernel when the CPU
 * has it, else landmarks.c's portable vector kernel; 0 always the portable one; 1 always the ops'
 * (fn_dwconv2d). For tests, like fn_ops_set_isa; not while other threads run the nets. */
void fn_landmark_set_isa(int level);

/* ---- FaceRecognitionNet (recognition.c) ---- */
typedef struct fn_recog_net fn_recog_net;
int fn_recog_bind(const fn_weights *w, fn_recog_net **out, char *err, size_t errlen);
void fn_recog_free(fn_recog_net *n);
size_t fn_recog_scratch_floats(void);
/* Raw: 150x150x3 input as the reference feeds it (after its normalisation (rgb - mean) / 255) ->
 * 128-d descriptor. `in` may occupy the first 150*150*3 floats of scratch. */
void fn_recog_forward(const fn_recog_net *n, const fn_t3 *in, float *scratch, float out[128]);
/* fn_recog_forward over nimg inputs (150x150x3 each, one after the other at in->d; `in` holds one's
 * shape; not inside scratch) -> out[nimg][128], equal to nimg fn_recog_forward calls: the convs run
 * every face at once, so the last layers (3x3, 2x2 and 1x1 maps against 1-2 MB of weights each)
 * read their weights once per batch instead of once per face. Scratch:
 * fn_recog_batch_scratch_floats(nimg) floats. (Added by the kernels engineer; the pipeline runs
 * a photo's faces through it, FN_DESC_BATCH at a time.) */
size_t fn_recog_batch_scratch_floats(int nimg);
void fn_recog_forward_batch(const fn_recog_net *n, const fn_t3 *in, int nimg, float *scratch,
                            float (*out)[128]);
/* The reference's whole step: the aligned face box from the 68 landmarks, crop from img, pad,
 * resize, run. */
void fn_recog_run(const fn_recog_net *n, const fn_image *img, const float landmarks[68][2],
                  float *scratch, float out[128]);
/* The same, exactly as the reference: FaceLandmarks.alignDlib bounds the box's side by the size
 * of the landmark crop (plus x/y), which only fn_recog_run_det knows (from `det`, the detection the
 * landmarks were computed from). The pipeline should call this one. (Added by recognition.c.) */
void fn_recog_run_det(const fn_recog_net *n, const fn_image *img, const fn_det *det,
                      const float landmarks[68][2], float *scratch, float out[128]);
/* fn_recog_run_det split in two for fn_recog_forward_batch: writes the normalised 150x150x3 input
 * of the face into `in` (fn_recog_input_floats() floats, caller's) and returns 1; returns 0 when
 * the face has no descriptor (NaN landmarks, or an aligned box empty once clipped to the image:
 * fn_recog_run_det gives zeros then), leaving `in` unspecified. fn_recog_forward_batch over the
 * inputs gives, to the bit, what fn_recog_run_det gives. Pure; any thread. (For pipeline.c.) */
size_t fn_recog_input_floats(void);
/* How many of the net's weight packs carry a byte copy (fn_wpack_bytes: the 256-channel convs'
 * nine, and the 128-channel convs' six where the L2 is small, recognition.c rc_bytes, on a CPU
 * with the AVX-512 or AVX2 kernels; none elsewhere): for tests. */
int fn_recog_byte_packs(const fn_recog_net *n);
int fn_recog_input_det(const fn_image *img, const fn_det *det, const float landmarks[68][2],
                       float *in);
/* The aligned face box (x, y, w, h, whole pixels, before clipping to the image) that the
 * descriptor is computed from; crop_w/crop_h: the landmark crop's size, or 0 for no bound. */
void fn_recog_aligned_box(const float landmarks[68][2], int crop_w, int crop_h, float box[4]);

/* ---- BF16 packs (vision.precision = bf16; gemm_amx.h) ---- */
/* Each makes the BF16 tile packs of its net's GEMM layers (fn_wpack_amx_init on each), so that a
 * thread with BF16 on (fn_amx_set_thread) runs them on the AMX kernel. Returns 0, or -1 when out of
 * memory (the packs made so far stay, each complete). Not while other threads run the net:
 * models.c calls them once, under its lock, before any thread turns BF16 on. */
int fn_ssd_amx_init(fn_ssd_net *n);
int fn_tiny_amx_init(fn_tiny_net *n);
int fn_landmark_amx_init(fn_landmark_net *n);
int fn_recog_amx_init(fn_recog_net *n);

/* ---- int16 packs (vision.precision = int16; gemm_i16.h) ---- */
/* Makes the int16 packs of SSD's layers whose inputs are relu6 outputs (fn_wpack_i16_init), so
 * that a thread with int16 on (fn_i16_set_thread) runs them on the int16 kernel. Returns 0, or -1
 * when out of memory. Not while other threads run the net (models.c, as for the BF16 packs). */
int fn_ssd_i16_init(fn_ssd_net *n);
/* The same for the recognition net's residual convs, as scaled packs (fn_wpack_i16_init_cols:
 * their inputs are relu outputs of any size, their filters bytes of a per-column scale). */
int fn_recog_i16_init(fn_recog_net *n);
/* The same for the 68-point landmark net's pointwise convs of 128 input channels and more
 * (fn_wpack_i16_init_scaled: their inputs are depthwise outputs of any sign; shallower ones are
 * faster in FP32, docs/design.md decision 66); the tiny landmark net stays FP32. */
int fn_landmark_i16_init(fn_landmark_net *n);

/* ---- Shared preprocessing (preprocess.c, owned by the SSD/tiny owner) ---- */
/* The reference's padToSquare + resizeBilinear of the region (x, y, w, h) of `img` (clipped to the
 * image) into an s x s RGB float tensor (0..255, not normalised). Writes out->d (s*s*3 floats). */
void fn_crop_square_resize(const fn_image *img, float x, float y, float w, float h, int s,
                           fn_t3 *out);

/* ---- Padding before detection (pipeline.c) ---- */
enum { FN_PAD_FILL_BLACK = 0, FN_PAD_FILL_EDGE = 1, FN_PAD_FILL_MIRROR = 2, FN_PAD_FILL_GREY = 3 };
/* The padding's margin (each side, as a fraction of the photo's longer side) and fill, for
 * bench/bench_recall to compare; the defaults are the measured choice. Not while other threads
 * detect. */
void fn_vision_set_pad_tuning(float fraction, int fill);

#endif
