/* predict.h: the "predict" job type (internal to tasks): a suggested person for every face that
 * has none, by the vote of src/cluster/predict.h over the library's confirmed faces.
 *
 * An item is one face (its reference: the face id in decimal), taken in (photo, face) order so
 * the faces of one photo meet in the same pass and the one-person-per-photo rule can keep the
 * more confident. The model is built once per run from the faces confirmed when it starts. */
#ifndef FN_TASKS_PREDICT_H
#define FN_TASKS_PREDICT_H

#include "facenames/jobtype.h"

/* The type, registered by fn_tasks_register_all. */
extern const fn_jobtype fn_predict_type;

/* Test hook: when set, called on the job's thread after each face is handed to the driver (so a
 * test can cancel at an exact point). Process-wide; NULL in production. */
typedef void (*predict_hook_fn)(int64_t face, void *arg);
extern predict_hook_fn fn_predict_test_hook;
extern void *fn_predict_test_hook_arg;

#endif
