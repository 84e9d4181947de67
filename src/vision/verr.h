/* verr.h: the one way vision code reports a failure (internal to src/vision).
 *
 * Every vision function that can fail takes (char *err, size_t errlen) and returns a negative
 * fn_err; fn_verr writes the message and hands the code back, so a failure is one statement:
 * `return fn_verr(err, errlen, FN_ERR_IO, "%s: %s", path, strerror(errno));`. */
#ifndef FN_VISION_VERR_H
#define FN_VISION_VERR_H

#include <stddef.h>

/* Formats the message into err (when err is not NULL and errlen > 0; vsnprintf truncates and
 * terminates it) and returns code unchanged. Thread-safe: touches nothing but err. */
int fn_verr(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
