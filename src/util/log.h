/* log.h: the library's one logging macro. FN_LOG(FN_LOG_WARN, "fmt", ...) formats only when a
 * handler wants that level, so debug lines cost a load and a compare when nobody listens. */
#ifndef FN_UTIL_LOG_H
#define FN_UTIL_LOG_H

#include "facenames/log.h"

int fn_log_enabled(fn_log_level level);
void fn_log_emit(fn_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define FN_LOG(level, ...)                                                                         \
    do {                                                                                           \
        if (fn_log_enabled(level)) fn_log_emit(level, __VA_ARGS__);                                \
    } while (0)

#endif
