/* weights.h: TFJS weight files (internal). A manifest (`<name>-weights_manifest.json`) lists
 * tensors (name, shape, dtype, optional uint8 quantization {scale, min}) stored back to back in the
 * `.bin` files of its paths. Loading dequantizes (value = q * scale + min) to float32 and checks
 * that the bytes the manifest promises are exactly the bytes the files hold. */
#ifndef FN_VISION_WEIGHTS_H
#define FN_VISION_WEIGHTS_H

#include <stddef.h>

typedef struct fn_tensor {
    char *name;
    int rank;
    int shape[4];
    size_t n; /* product of shape */
    float *d;
    /* Stored as uint8 (d[i] = (float)(q * qscale + qmin), q in 0..255): 1, and the two; else 0. */
    int q8;
    double qscale, qmin;
} fn_tensor;

typedef struct fn_weights {
    fn_tensor *t;
    size_t n;
    char *source; /* manifest path, for messages */
} fn_weights;

/* Loads the manifest at `manifest_path` and the .bin files it names (relative to its folder).
 * Returns 0, FN_ERR_NOT_FOUND or FN_ERR_MODEL with a message naming the file. */
int fn_weights_load(const char *manifest_path, fn_weights **out, char *err, size_t errlen);

/* Parses manifest text and binds it to `bin` bytes (the concatenation of its paths' files);
 * used by fn_weights_load and the fuzz target. */
int fn_weights_parse(const char *manifest, size_t manifest_len, const unsigned char *bin,
                     size_t bin_len, const char *origin, fn_weights **out, char *err,
                     size_t errlen);

void fn_weights_free(fn_weights *w);

/* The tensor `name` if present with exactly `rank` dims equal to `shape` (NULL shape: any), else
 * NULL with a message naming the tensor and both shapes. */
const fn_tensor *fn_weights_get(const fn_weights *w, const char *name, int rank, const int *shape,
                                char *err, size_t errlen);

#endif
