/* fmt.h: numbers, durations and sizes as people read them. Each writes into buf (at most len
 * bytes, always terminated) and returns buf. Any thread. */
#ifndef FN_UTIL_FMT_H
#define FN_UTIL_FMT_H

#include <stddef.h>
#include <stdint.h>

/* 1234567 -> "1,234,567". */
char *fn_fmt_count(int64_t v, char *buf, size_t len);
/* Seconds as "m:ss", "h:mm:ss" or "Nd hh:mm:ss"; "-" when unknown (negative). */
char *fn_fmt_duration(double seconds, char *buf, size_t len);
/* Bytes as "512 B", "1.5 MB" (powers of 1000). */
char *fn_fmt_bytes(int64_t v, char *buf, size_t len);

#endif
