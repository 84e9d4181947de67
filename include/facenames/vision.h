/* facenames: photos to faces. Image loading, the face-api networks (SsdMobilenetv1,
 * TinyFaceDetector, FaceLandmark68Net and its tiny variant, FaceRecognitionNet) and face alignment,
 * implemented in C and checked against the reference JavaScript implementation.
 *
 * Objects and threads:
 * - fn_models: the loaded weights. Immutable after fn_models_load; share one among all threads.
 * - fn_vision: one worker's scratch memory (tensors, buffers), allocated once and reused for every
 *   image. Use each fn_vision from one thread at a time; make one per worker thread.
 * - fn_image: pixels owned by the caller (free with fn_image_free).
 *
 * Errors: 0 or a negative fn_err (see error.h). Image errors are FN_ERR_NOT_FOUND, FN_ERR_UNREADABLE,
 * FN_ERR_NOT_FILE, FN_ERR_UNSUPPORTED, FN_ERR_TRUNCATED, FN_ERR_CORRUPT, FN_ERR_TOO_LARGE,
 * FN_ERR_NO_IMAGE; the sentence (naming the file) goes into the caller's `err` buffer. */
#ifndef FACENAMES_VISION_H
#define FACENAMES_VISION_H

#include <stddef.h>
#include <stdint.h>

#include "facenames/error.h"

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API; the rest is hidden */

/* ---- Library set-up --------------------------------------------------------------------------- */

/* Initialises libvips once per process (thread-safe, idempotent) with its own thread pool capped at
 * one thread, so our workers decide the parallelism. Called by fn_image_load; call it early if you
 * need to. Returns 0 or FN_ERR_UNSUPPORTED. */
int fn_vision_init(void);

/* ---- Images ----------------------------------------------------------------------------------- */

typedef struct fn_image {
    int width, height;  /* pixels */
    uint8_t *rgb;       /* width*height*3 bytes, RGB interleaved, rows top to bottom */
} fn_image;

typedef struct fn_load_opts {
    int max_side;        /* shrink on load so that the longer side is at most this (0 = full size).
                            Uses the decoder's shrink-on-load when it can. */
    uint64_t max_pixels; /* refuse images whose full size is over this many pixels (0 = default,
                            100 megapixels) with FN_ERR_TOO_LARGE, before decoding */
} fn_load_opts;

typedef struct fn_image_info {
    int width, height;   /* full size after EXIF orientation, as a person sees the photo */
    int orientation;     /* EXIF orientation tag that was applied (1..8; 1 when absent) */
    char format[16];     /* "jpeg", "png", "webp", "heif", "tiff", "gif" */
    int64_t taken_at;    /* EXIF DateTimeOriginal as epoch seconds (local time taken as UTC), -1 */
} fn_image_info;

/* Loads `path` oriented (EXIF applied) and converted to 8-bit sRGB RGB. `opts` may be NULL. *img
 * receives pixels the caller frees with fn_image_free; *info (may be NULL) the full-size facts.
 * Any thread. */
int fn_image_load(const char *path, const fn_load_opts *opts, fn_image *img, fn_image_info *info,
                  char *err, size_t errlen);

/* Same, from a buffer in memory (`name` is used in messages). */
int fn_image_load_buffer(const void *data, size_t len, const char *name, const fn_load_opts *opts,
                         fn_image *img, fn_image_info *info, char *err, size_t errlen);

/* Writes `img` as PNG or JPEG (by the extension of path). */
int fn_image_save(const fn_image *img, const char *path, char *err, size_t errlen);

/* Frees the pixels and zeroes *img. NULL or an empty image is a no-op. */
void fn_image_free(fn_image *img);

/* ---- Models ----------------------------------------------------------------------------------- */

typedef struct fn_models fn_models;

typedef enum fn_model_kind {
    FN_MODEL_SSD = 1 << 0,           /* ssd_mobilenetv1_model */
    FN_MODEL_TINY = 1 << 1,          /* tiny_face_detector_model */
    FN_MODEL_LANDMARKS = 1 << 2,     /* face_landmark_68_model */
    FN_MODEL_LANDMARKS_TINY = 1 << 3,/* face_landmark_68_tiny_model */
    FN_MODEL_RECOGNITION = 1 << 4,   /* face_recognition_model */
    FN_MODEL_ALL = 0x1f,
} fn_model_kind;

/* The directory searched when `dir` is NULL or "": $FACENAMES_MODELS; else the installed
 * <datadir>/facenames/models found relative to the program or libfacenames.so itself (meson
 * install, the Debian package), when it exists; else the source tree's copy that scripts/bootstrap
 * fills (an uninstalled build). Thread-safe; the string stays valid for the life of the process
 * (the environment variable's, until it is changed). */
const char *fn_models_default_dir(void);

/* Loads the models in `which` (fn_model_kind bits) from `dir`: parses each
 * `*-weights_manifest.json`, reads the `.bin`, dequantizes, checks every tensor's name, shape and
 * the total size. On failure returns FN_ERR_MODEL (or FN_ERR_NOT_FOUND) with a message naming the
 * file and the command that installs the models. *out is shared, read-only, freed by
 * fn_models_free after every fn_vision using it. */
int fn_models_load(const char *dir, unsigned which, fn_models **out, char *err, size_t errlen);
void fn_models_free(fn_models *m);

/* ---- Detection pipeline ----------------------------------------------------------------------- */

typedef enum fn_detector {
    FN_DETECTOR_SSD = 0,  /* SsdMobilenetv1, 512x512 (default) */
    FN_DETECTOR_TINY = 1, /* TinyFaceDetector, input size opts.tiny_input_size */
} fn_detector;

/* Padding before detection. SsdMobilenetv1 misses a face that touches the frame (a cropped
 * portrait, a profile picture, an ID photo): it was trained on faces with some context around
 * them. Detecting again on the photo centred in a larger square canvas finds them; boxes are
 * mapped back to the photo and clipped to it. */
typedef enum fn_detect_pad {
    FN_DETECT_PAD_OFF = 0,   /* the reference's behaviour */
    FN_DETECT_PAD_RETRY = 1, /* only when the first pass finds no face (default): results are the
                                reference's wherever it finds a face */
    FN_DETECT_PAD_SMALL = 2, /* retry as above, and near-square photos of at most 640 px are always
                                detected padded (measured in bench/bench_recall) */
} fn_detect_pad;

/* Tiled detection for small faces in large photos. The detector sees the whole photo at 512 (SSD)
 * or 416 px (tiny), so a 60 px face in a 6000 px group photo shrinks to a few pixels. With tiles
 * on, the detector also runs on overlapping 512 px tiles of the image it was given (on the fast
 * path, the photo decoded near 2048 px), and the faces only the tiles find are added; every
 * face of the whole-photo pass is kept as it is. Costs one detector pass per tile (bench/
 * bench_recall, "group"). Auto tiles only the photos where the whole-photo pass found a face
 * small at the detector's input or left a weak small candidate behind (measured on bench_recall's
 * group sets: most group photos of small faces, none of the samples as they are or enlarged);
 * where it does not tile, its faces are exactly off's. */
typedef enum fn_detect_tiles {
    FN_DETECT_TILES_OFF = 0, /* default */
    FN_DETECT_TILES_ON = 1,
    FN_DETECT_TILES_AUTO = 2, /* only the photos where the whole-photo pass says tiles pay */
} fn_detect_tiles;

/* The arithmetic of the networks' convolutions. BF16 rounds each layer's inputs and weights to
 * bfloat16 (8 bits of mantissa) and accumulates in FP32 on the AMX tiles of Intel Sapphire Rapids
 * and later, several times faster; results differ from FP32 within the parity tolerances of
 * docs/design.md decision 36 (only the networks within them run in BF16). Where AMX-BF16 is absent
 * (older Intel cores, AMD Zen 4) BF16 runs as FP32: fn_vision_precision_supported says so.
 * INT16 runs the SSD detector's pointwise layers and the recognition net's convolutions on
 * 16-bit integers (the weights' bytes exact, sums exact; docs/design.md decisions 55 and 57): the
 * same results on every CPU with AVX2 (Intel and AMD), within 0.0002 of FP32's descriptors; the
 * landmark net stays FP32. Without AVX2 it runs as FP32. */
typedef enum fn_precision {
    FN_PRECISION_FP32 = 0, /* default: the reference's arithmetic */
    FN_PRECISION_BF16 = 1,
    FN_PRECISION_INT16 = 2,
} fn_precision;

/* 1 when `p` runs as asked on this machine; else 0 and, when reason is not NULL, a static sentence
 * saying why and what runs instead (for the caller to log once). The first call for BF16 asks the
 * kernel for the AMX tile state. Any thread. */
int fn_vision_precision_supported(fn_precision p, const char **reason);

/* What `vision.precision = auto` (the configuration's default) runs on this CPU: INT16 where it
 * is the faster arithmetic (CPUs whose FP32 FMAs are at most 256 bits at a time: AVX2 without
 * AVX-512, AMD Zen 3 and Zen 4), else FP32 (Intel's AVX-512 cores, AMD Zen 5, CPUs without
 * AVX2); docs/design.md decision 59. Any thread. */
fn_precision fn_vision_precision_auto(void);

/* The precision a name gives: "fp32", "bf16", "int16", or "auto" (fn_vision_precision_auto).
 * 0, or FN_ERR_INVALID (and *out untouched) for any other name. Any thread. */
int fn_vision_precision_parse(const char *name, fn_precision *out);

/* The name of `p` ("fp32", "bf16", "int16"; "unknown" for a value outside the enum), a static
 * string. Any thread. */
const char *fn_vision_precision_name(fn_precision p);

typedef struct fn_detect_opts {
    fn_detector detector;
    float min_confidence;  /* reference defaults: 0.5 for SSD, 0.5 for tiny */
    int tiny_input_size;   /* multiple of 32; default 416 */
    int min_face_size;     /* faces whose box is smaller (shorter side, pixels of the full photo)
                              are dropped and counted in fn_faces.skipped_small; 0 keeps all */
    int landmarks;         /* 0: none, 1: FaceLandmark68Net, 2: the tiny landmark net */
    int descriptors;       /* compute 128-d descriptors (needs landmarks) */
    int thumb_size;        /* > 0: a JPEG face thumbnail of this many pixels square per face */
    fn_detect_pad pad;     /* padding before detection (see fn_detect_pad) */
    fn_detect_tiles tiles; /* tiled detection (see fn_detect_tiles) */
    fn_precision precision; /* FP32 (default here; the configuration's: auto), BF16 or INT16 */
} fn_detect_opts;

/* Fills opts with the reference's defaults: SSD, 0.5, 416, min_face_size 0, landmarks 1,
 * descriptors 1, thumb_size 0, precision FP32; and pad FN_DETECT_PAD_RETRY (which changes nothing
 * where the reference finds a face). */
void fn_detect_opts_default(fn_detect_opts *opts);

typedef struct fn_face {
    float x, y, width, height; /* box in the full oriented photo's pixel coordinates */
    float score;
    float landmarks[68][2];    /* x, y in the same coordinates (valid if opts.landmarks) */
    float descriptor[128];     /* valid if opts.descriptors */
    uint8_t *thumb_jpeg;       /* valid if opts.thumb_size > 0; owned by fn_faces */
    size_t thumb_len;
} fn_face;

typedef struct fn_faces {
    int width, height;     /* full oriented size of the photo */
    fn_face *faces;        /* owned by the fn_vision; valid until its next call */
    size_t n;
    size_t skipped_small;  /* faces dropped by min_face_size */
    fn_image_info info;
    double ms_decode, ms_detect, ms_landmarks, ms_descriptors; /* stage timings of this call */
} fn_faces;

typedef struct fn_vision fn_vision;

/* A worker's scratch for `models` (which must outlive it). Allocates its buffers up front. */
int fn_vision_new(const fn_models *models, fn_vision **out);
void fn_vision_free(fn_vision *v);

/* The fast path for a file: loads with shrink-on-load to what the detector needs, detects, and
 * computes landmarks and descriptors from crops at the photo's useful resolution (not from the
 * detector's downscaled input). Image errors as fn_image_load. *out is owned by v until its next
 * call. */
int fn_vision_detect_file(fn_vision *v, const char *path, const fn_detect_opts *opts,
                          fn_faces *out, char *err, size_t errlen);

/* The fast path in two steps, for a caller that overlaps decoding with another photo's networks
 * (the batch driver's `prepare` stage): fn_vision_decode_file is its decode (any thread, no
 * fn_vision needed; the pixels are the caller's, freed with fn_decoded_free), and
 * fn_vision_detect_decoded its networks, giving to the bit what fn_vision_detect_file gives (which
 * is the two in a row). *d stays the caller's and unchanged. */
typedef struct fn_decoded {
    fn_image img;       /* the photo oriented, at its useful resolution (shrunk on load) */
    fn_image_info info; /* the full-size facts */
    double ms_decode;   /* how long the decode took */
} fn_decoded;
int fn_vision_decode_file(const char *path, fn_decoded *d, char *err, size_t errlen);
int fn_vision_detect_decoded(fn_vision *v, const fn_decoded *d, const fn_detect_opts *opts,
                             fn_faces *out, char *err, size_t errlen);
void fn_decoded_free(fn_decoded *d); /* NULL or a zeroed one is a no-op; zeroes *d */

/* The same on pixels already in memory (the reference path: the reference's own resizing). */
int fn_vision_detect_image(fn_vision *v, const fn_image *img, const fn_detect_opts *opts,
                           fn_faces *out, char *err, size_t errlen);

/* Euclidean distance of two descriptors, as the reference computes it. */
float fn_descriptor_distance(const float a[128], const float b[128]);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
