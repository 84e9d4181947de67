/* fmt.c: numbers, durations and sizes as people read them (shared by the CLI and the job types'
 * summaries). */
#include "util/fmt.h"

#include <stdio.h>
#include <string.h>

char *fn_fmt_count(int64_t v, char *buf, size_t len)
{
    char digits[32];
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    snprintf(digits, sizeof digits, "%llu", (unsigned long long)u);
    char out[48];
    size_t n = strlen(digits), j = 0;
    if (v < 0) out[j++] = '-';
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0) out[j++] = ',';
        out[j++] = digits[i];
    }
    out[j] = '\0';
    snprintf(buf, len, "%s", out);
    return buf;
}

char *fn_fmt_duration(double seconds, char *buf, size_t len)
{
    if (!(seconds >= 0) || seconds > 1e9) {
        snprintf(buf, len, "-");
        return buf;
    }
    long long s = (long long)(seconds + 0.5);
    long long d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60, sec = s % 60;
    if (d > 0)
        snprintf(buf, len, "%lldd %02lld:%02lld:%02lld", d, h, m, sec);
    else if (h > 0)
        snprintf(buf, len, "%lld:%02lld:%02lld", h, m, sec);
    else
        snprintf(buf, len, "%lld:%02lld", m, sec);
    return buf;
}

char *fn_fmt_bytes(int64_t v, char *buf, size_t len)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
    double x = (double)v;
    int u = 0;
    while ((x >= 1000 || x <= -1000) && u < 5) {
        x /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%lld B", (long long)v);
    else
        snprintf(buf, len, "%.1f %s", x, units[u]);
    return buf;
}
