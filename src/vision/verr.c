/* verr.c: fn_verr, the message-and-code helper every vision file reports failures with (verr.h).
 * What must stay true: it writes only into err, within errlen, always terminated. */
#include "vision/verr.h"

#include <stdarg.h>
#include <stdio.h>

int fn_verr(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}
