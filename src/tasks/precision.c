/* precision.c: the vision.precision setting as the face jobs take it (precision.h). */
#include "tasks/precision.h"

#include <string.h>

#include "facenames/error.h"
#include "util/log.h"

const char *const fn_task_precisions[] = {"auto", "fp32", "bf16", "int16", NULL};

int fn_task_precision(const char *job, const char *name, fn_detect_opts *det)
{
    if (fn_vision_precision_parse(name, &det->precision) != 0) return FN_ERR_INVALID;
    const char *why = NULL;
    if (!fn_vision_precision_supported(det->precision, &why))
        FN_LOG(FN_LOG_INFO, "%s: vision.precision = %s: %s", job, name, why);
    else if (!strcmp(name, "auto"))
        FN_LOG(FN_LOG_INFO, "%s: vision.precision = auto: %s on this CPU", job,
               fn_vision_precision_name(det->precision));
    return 0;
}
