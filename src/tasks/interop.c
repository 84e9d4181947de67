/* interop.c: the library's roots and the text buffer the repair, export and import types share
 * (interop.h). */
#include "tasks/interop.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "facenames/error.h"
#include "store/library/library_interop.h"
#include "util/pathenc.h"
#include "util/pathenc_json.h"

fn_interop_hook_fn fn_interop_test_hook;
void *fn_interop_test_hook_arg;

int fn_interop_hook(const char *type, const fn_item *it, int rc)
{
    if (fn_interop_test_hook && rc == FN_SOURCE_ITEM)
        fn_interop_test_hook(type, it->ref ? it->ref : "", fn_interop_test_hook_arg);
    return rc;
}

void fn_roots_free(fn_roots *r)
{
    for (size_t i = 0; r->dir && i < r->n; i++)
        free(r->dir[i]);
    free(r->dir);
    r->dir = NULL;
    r->n = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int fn_roots_load(fn_store *s, const char *const *given, size_t n_given, fn_roots *out)
{
    memset(out, 0, sizeof *out);
    char **paths = NULL;
    size_t n = 0;
    int rc = 0;
    if (n_given) {
        if (!(paths = calloc(n_given, sizeof *paths))) return FN_ERR_NOMEM;
        for (; n < n_given; n++)
            if (!(paths[n] = strdup(given[n]))) rc = FN_ERR_NOMEM;
    } else {
        rc = fn_xp_ingest_paths(s, &paths, &n);
    }
    for (size_t i = 0; !rc && i < n; i++) {
        /* A file given to ingest: its folder is the root. */
        struct stat sb;
        char *p = paths[i];
        size_t len = strlen(p);
        if (stat(p, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
            char *slash = strrchr(p, '/');
            if (slash) len = (size_t)(slash - p);
        }
        while (len > 1 && p[len - 1] == '/')
            len--;
        p[len] = 0;
    }
    if (!rc && n) qsort(paths, n, sizeof *paths, cmp_str);
    size_t k = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        if (k && strcmp(paths[k - 1], paths[i]) == 0) {
            free(paths[i]);
            continue;
        }
        paths[k++] = paths[i];
    }
    if (rc) {
        for (size_t i = 0; i < n; i++)
            free(paths[i]);
        free(paths);
        return rc;
    }
    out->dir = paths;
    out->n = k;
    return 0;
}

int fn_roots_find(const fn_roots *r, const char *path, const char **rel)
{
    int best = -1;
    size_t best_len = 0;
    for (size_t i = 0; i < r->n; i++) {
        size_t l = strlen(r->dir[i]);
        if (strncmp(path, r->dir[i], l) == 0 && (path[l] == '/' || (l == 1 && path[0] == '/')) &&
            l >= best_len) {
            best = (int)i;
            best_len = l;
        }
    }
    if (best >= 0) *rel = path + best_len + (best_len == 1 ? 0 : 1);
    return best;
}

void fn_buf_add(fn_buf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1)
            nc *= 2;
        char *g = realloc(b->s, nc);
        if (!g) {
            b->oom = 1;
            return;
        }
        b->s = g;
        b->cap = nc;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void fn_buf_str(fn_buf *b, const char *s)
{
    fn_buf_add(b, s, strlen(s));
}

void fn_buf_printf(fn_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        fn_buf_add(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    fn_buf_add(b, big, (size_t)n);
    free(big);
}

void fn_buf_json_string(fn_buf *b, const char *s)
{
    json_t *j = json_string(s ? s : "");
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    if (t)
        fn_buf_str(b, t);
    else
        b->oom = 1;
    free(t);
    json_decref(j);
}

void fn_buf_json_path(fn_buf *b, const char *field, const char *path)
{
    json_t *o = json_object();
    char *t = NULL;
    if (o && fn_json_set_path(o, field, path) == 0)
        t = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    size_t n = t ? strlen(t) : 0;
    if (n < 2) {
        b->oom = 1;
        free(t);
        return;
    }
    fn_buf_add(b, t + 1, n - 2); /* the members, without the braces */
    free(t);
}

/* Little-endian whatever the machine is (the format says so). */
static void f32_le(const float *v, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++)
            out[4 * i + (size_t)k] = (uint8_t)(u >> (8 * k));
    }
}

void fn_buf_f32(fn_buf *b, const char *prefix, const float *v, size_t n)
{
    uint8_t raw[4 * 256];
    if (n > 256) {
        b->oom = 1;
        return;
    }
    f32_le(v, n, raw);
    char *t = fn_base64_encode(raw, 4 * n);
    if (!t) {
        b->oom = 1;
        return;
    }
    fn_buf_str(b, prefix);
    fn_buf_str(b, "\"");
    fn_buf_str(b, t);
    fn_buf_str(b, "\"");
    free(t);
}

/* The value of each byte as a base64 digit, 64 for '=' and 255 for anything else: a table,
 * because an import of 100k faces decodes 128 MB of these (util's fn_base64_decode searches the
 * alphabet per character and allocates). */
static const uint8_t b64_table[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 62,  255, 255, 255, 63,  52,  53,  54,  55,  56,  57,  58,  59,  60,
    61,  255, 255, 255, 64,  255, 255, 255, 0,   1,   2,   3,   4,   5,   6,   7,   8,   9,   10,
    11,  12,  13,  14,  15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25,  255, 255, 255, 255,
    255, 255, 26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,  41,  42,
    43,  44,  45,  46,  47,  48,  49,  50,  51,  255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255,
};

int fn_f32_from_base64(const char *text, float *v, size_t n)
{
    if (!text || n > 256) return -1;
    size_t bytes = 4 * n, len = strlen(text);
    /* standard base64 with padding: exactly this many characters */
    if (len != (bytes + 2) / 3 * 4) return -1;
    const uint8_t *t = b64_table;
    uint8_t raw[4 * 256 + 3];
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        uint8_t a = t[(unsigned char)text[i]], b = t[(unsigned char)text[i + 1]];
        uint8_t c = t[(unsigned char)text[i + 2]], d = t[(unsigned char)text[i + 3]];
        int last = i + 4 == len;
        if (a > 63 || b > 63 || c == 255 || d == 255 || (!last && (c > 63 || d > 63)) ||
            (c == 64 && d != 64))
            return -1;
        raw[o++] = (uint8_t)(a << 2 | b >> 4);
        if (c < 64) raw[o++] = (uint8_t)(b << 4 | c >> 2);
        if (d < 64) raw[o++] = (uint8_t)(c << 6 | d);
    }
    if (o != bytes) return -1;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = 0;
        for (int k = 0; k < 4; k++)
            u |= (uint32_t)raw[4 * i + (size_t)k] << (8 * k);
        memcpy(&v[i], &u, 4);
    }
    return 0;
}

void fn_buf_free(fn_buf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}
