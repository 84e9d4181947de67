/* pathenc.h: file names are bytes (docs/design.md decision 13). These helpers turn a path, or a
 * message that may contain one, into text that is valid UTF-8 for JSON, into text that is safe on
 * a terminal, and back. One encoding everywhere (docs/cli.md, "Paths in JSON"):
 *
 *   - a path that is valid UTF-8 is written as it is;
 *   - a path that is not is written with every byte of an invalid sequence as \xHH (upper-case
 *     hex) and every literal backslash as \\; JSON then also carries "<field>_b64", the raw bytes
 *     in base64, so a reader never has to guess;
 *   - an argument naming a path is tried first as given (an exact match wins), then with its \xHH
 *     and \\ escapes decoded.
 *
 * Everything returned is malloc'd (NULL when out of memory) unless said otherwise; the caller
 * frees it. No global state except fn_term_str's per-thread ring. Any thread. */
#ifndef FN_UTIL_PATHENC_H
#define FN_UTIL_PATHENC_H

#include <stddef.h>

/* Whether s[0..len) is valid UTF-8 (RFC 3629: no overlong forms, no surrogates, <= U+10FFFF). */
int fn_utf8_valid(const char *s, size_t len);

/* The text form of `path` (NUL-terminated): a copy when it is valid UTF-8 (*escaped = 0), else
 * the escaped form described above (*escaped = 1). `escaped` may be NULL. Also the form for
 * messages that may contain paths: the result is always valid UTF-8. */
char *fn_path_text(const char *path, int *escaped);

/* Decodes an escaped form: \xHH (either case, HH not 00) becomes the byte, \\ a backslash, and
 * \n, \t, \r (as fn_term_text shows them) those characters; any other backslash stays as it is.
 * *len (may be NULL) gets the length of the result, which is NUL-terminated. */
char *fn_path_unescape(const char *text, size_t *len);

/* Whether `text` contains an escape fn_path_unescape would decode. */
int fn_path_has_escape(const char *text);

/* `s` for a terminal: C0 controls and DEL as \n, \t, \r or \xHH, C1 controls (U+0080..U+009F) as
 * the \xHH of their two bytes, bytes of invalid UTF-8 as \xHH and then (as in the text form)
 * backslashes as \\; the rest as it is. So fn_term_text of a path and of its text form print the
 * same, and fn_path_unescape of what is printed gives the bytes back. NULL -> "". */
char *fn_term_text(const char *s);

/* fn_term_text into a per-thread ring of 8 buffers, for printf arguments: the pointer stays valid
 * until the same thread's 8th next call. Never NULL ("?" when out of memory). The ring lives as
 * long as the thread (the last 8 strings stay allocated): for the main thread; a short-lived
 * thread should call fn_term_text and free. */
const char *fn_term_str(const char *s);

/* Standard base64 (RFC 4648, with padding) of data[0..len). */
char *fn_base64_encode(const void *data, size_t len);

/* Decodes standard base64 (padding optional, no whitespace). Returns the bytes, NUL-terminated,
 * length in *len; NULL when `text` is not base64 (or out of memory). */
char *fn_base64_decode(const char *text, size_t *len);

#endif
