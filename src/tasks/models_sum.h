/* models_sum.h: the checksum of the model files that compute a face's landmarks and descriptor
 * (internal to tasks). Ingest records it with each photo it processes; repair recomputes the faces
 * of photos recorded with another checksum (new weights installed), so every descriptor in a
 * library is comparable with every other. The detector is left out on purpose: it decides where
 * the boxes are, not what the descriptors mean, and an ingest may pick ssd or tiny. */
#ifndef FN_TASKS_MODELS_SUM_H
#define FN_TASKS_MODELS_SUM_H

#include <stddef.h>

/* 16 lower-case hex digits of a 64-bit content hash over face_landmark_68_model and
 * face_recognition_model (manifest and weights) in `dir` (NULL or "": the default search), into
 * out[17]. 0, or a negative fn_err when a file cannot be read (out is then ""). Any thread. */
int fn_models_sum(const char *dir, char out[17]);

#endif
