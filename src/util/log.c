/* log.c: the process-wide log handler. The handler and its level are read without a lock on every
 * call, so they are atomics; installing a handler while other threads log is allowed. */
#include "util/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

static _Atomic(fn_log_fn) handler;
static _Atomic(void *) handler_user;
static atomic_int min_level = FN_LOG_ERROR + 1;

void fn_log_set_handler(fn_log_fn fn, void *user, fn_log_level level)
{
    atomic_store(&handler_user, user);
    atomic_store(&handler, fn);
    atomic_store(&min_level, fn ? (int)level : FN_LOG_ERROR + 1);
}

int fn_log_enabled(fn_log_level level)
{
    return (int)level >= atomic_load_explicit(&min_level, memory_order_relaxed);
}

void fn_log_emit(fn_log_level level, const char *fmt, ...)
{
    fn_log_fn fn = atomic_load(&handler);
    if (!fn) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fn(level, buf, atomic_load(&handler_user));
}
