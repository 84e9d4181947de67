/* facenames: where the library's diagnostic messages go.
 *
 * The library never prints. It hands each message to the handler installed here; with no handler
 * installed, messages are dropped. */
#ifndef FACENAMES_LOG_H
#define FACENAMES_LOG_H

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API; the rest is hidden */

typedef enum fn_log_level {
    FN_LOG_DEBUG = 0,
    FN_LOG_INFO = 1,
    FN_LOG_WARN = 2,
    FN_LOG_ERROR = 3,
} fn_log_level;

/* Receives one message. `msg` lives only for the call. Runs on whichever thread logged, possibly
 * several at once: the handler must be thread-safe. */
typedef void (*fn_log_fn)(fn_log_level level, const char *msg, void *user);

/* Installs `fn` (NULL to drop messages) for messages at `min_level` and above. Process-wide; call it
 * before starting engines. */
void fn_log_set_handler(fn_log_fn fn, void *user, fn_log_level min_level);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
