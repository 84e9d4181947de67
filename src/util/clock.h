/* clock.h: the two clocks the library uses. Monotonic nanoseconds measure durations; wall-clock
 * milliseconds since the epoch are what the database stores and ISO-8601 shows. */
#ifndef FN_UTIL_CLOCK_H
#define FN_UTIL_CLOCK_H

#include <stddef.h>
#include <stdint.h>

uint64_t fn_mono_ns(void);
int64_t fn_wall_ms(void);

/* Writes `ms` (epoch milliseconds, UTC) as "2026-11-28T20:01:14.123Z" into buf (>= 25 bytes).
 * ms < 0 writes an empty string (a time not reached yet). Returns buf. */
char *fn_iso8601(int64_t ms, char *buf, size_t len);

#endif
