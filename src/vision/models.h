/* models.h: what a loaded fn_models holds (internal to src/vision).
 *
 * models.c fills it (fn_models_load) and pipeline.c reads it. After fn_models_load returns it is
 * immutable: every worker thread reads the same weights and bound networks without locks. A model
 * that was not asked for (its bit missing from `which`) has NULL weights and a NULL net; code that
 * needs a model must check its net pointer and report FN_ERR_MODEL when it is NULL. */
#ifndef FN_VISION_MODELS_H
#define FN_VISION_MODELS_H

#include "facenames/vision.h"
#include "vision/nets.h"
#include "vision/weights.h"

struct fn_models {
    unsigned which; /* fn_model_kind bits that were loaded */
    char *dir;      /* the directory they came from (for messages) */

    /* The dequantized weights, one set per model file; the nets below point into them. */
    fn_weights *w_ssd;
    fn_weights *w_tiny;
    fn_weights *w_landmarks;
    fn_weights *w_landmarks_tiny;
    fn_weights *w_recognition;

    /* The bound networks (NULL when not loaded). */
    fn_ssd_net *ssd;
    fn_tiny_net *tiny;
    fn_landmark_net *landmarks;      /* FaceLandmark68Net */
    fn_landmark_net *landmarks_tiny; /* FaceLandmark68TinyNet */
    fn_recog_net *recognition;

    /* fn_model_kind bits whose nets have their BF16 tile packs (fn_models_amx_init), read with
     * acquire; packs are made under models.c's lock and never freed before fn_models_free. */
    unsigned amx_done;
    /* The same for the int16 packs (fn_models_i16_init). */
    unsigned i16_done;
};

/* The networks that run in BF16 under FN_PRECISION_BF16: those whose results stay within the
 * parity tolerances (decision 36, test vision/precision_parity) and that run faster for it; the
 * others keep FP32 (they have no BF16 packs, so the kernels run them in FP32 even with the thread's
 * BF16 on). The tiny detector is left out: its layers are 16-32 channels deep and bound by memory,
 * and it ran no faster (0.97x, bench_vision interleaved). One set for every caller, so no BF16
 * thread reads a pack another is making. */
#define FN_MODELS_BF16                                                                             \
    (FN_MODEL_SSD | FN_MODEL_LANDMARKS | FN_MODEL_LANDMARKS_TINY | FN_MODEL_RECOGNITION)

/* Makes the BF16 tile packs (vision.precision = bf16) of the loaded nets among `which`, once per
 * net, under a lock: the only change a shared fn_models sees after fn_models_load, made before any
 * thread runs those nets with BF16 on, and invisible to threads running them in FP32 (they never
 * read the packs' pointers). Returns 0 (also without AMX: then nothing is made) or FN_ERR_NOMEM.
 * Any thread. */
int fn_models_amx_init(const fn_models *m, unsigned which);

/* The same for the int16 packs (vision.precision = int16): only SSD has them (the detector is
 * most of ingest's time; the landmark and recognition nets keep FP32, so descriptors move only
 * where a box does). Returns 0 (also without AVX2: nothing is made) or FN_ERR_NOMEM. Any thread. */
int fn_models_i16_init(const fn_models *m);

#endif
