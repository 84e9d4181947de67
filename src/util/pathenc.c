/* pathenc.c: the one encoding of file names (bytes) as text, for JSON and for terminals, and its
 * decoder (see pathenc.h and docs/design.md decision 13). Pure functions; no dependency but libc,
 * so the fuzz target builds it alone. */
#include "util/pathenc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid UTF-8 sequence starting at s[0] (at most n bytes available), or 0 when the
 * byte there starts no valid sequence. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t min, cp;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        min = 0x80;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        min = 0x800;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        min = 0x10000;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

int fn_utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq(u + i, len - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

static const char HEX[] = "0123456789ABCDEF";

static char *put_hex(char *o, unsigned char b)
{
    *o++ = '\\';
    *o++ = 'x';
    *o++ = HEX[b >> 4];
    *o++ = HEX[b & 15];
    return o;
}

char *fn_path_text(const char *path, int *escaped)
{
    if (!path) path = "";
    size_t n = strlen(path);
    if (escaped) *escaped = 0;
    if (fn_utf8_valid(path, n)) return strdup(path);
    if (escaped) *escaped = 1;
    /* at most 4 output bytes per input byte */
    char *out = malloc(4 * n + 1), *o = out;
    if (!out) return NULL;
    const unsigned char *u = (const unsigned char *)path;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(u + i, n - i);
        if (!k) {
            o = put_hex(o, u[i++]);
        } else if (u[i] == '\\') {
            *o++ = '\\';
            *o++ = '\\';
            i++;
        } else {
            memcpy(o, u + i, k);
            o += k;
            i += k;
        }
    }
    *o = '\0';
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The byte an escape at t[0] == '\\' stands for and its length in *k, or -1 when t starts no
 * escape the decoder knows. */
static int escape_at(const char *t, size_t *k)
{
    if (t[1] == '\\' || t[1] == 'n' || t[1] == 't' || t[1] == 'r') {
        *k = 2;
        return t[1] == 'n' ? '\n' : t[1] == 't' ? '\t' : t[1] == 'r' ? '\r' : '\\';
    }
    if (t[1] == 'x') {
        int h = hexval(t[2]), l = h >= 0 ? hexval(t[3]) : -1;
        if (h >= 0 && l >= 0 && (h | l)) {
            *k = 4;
            return h << 4 | l;
        }
    }
    return -1;
}

int fn_path_has_escape(const char *text)
{
    size_t k;
    for (const char *p = text ? strchr(text, '\\') : NULL; p; p = strchr(p + 1, '\\'))
        if (escape_at(p, &k) >= 0) return 1;
    return 0;
}

char *fn_path_unescape(const char *text, size_t *len)
{
    if (!text) text = "";
    size_t n = strlen(text);
    char *out = malloc(n + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n;) {
        size_t k;
        int b = text[i] == '\\' ? escape_at(text + i, &k) : -1;
        if (b >= 0) {
            *o++ = (char)b;
            i += k;
        } else {
            *o++ = text[i++];
        }
    }
    *o = '\0';
    if (len) *len = (size_t)(o - out);
    return out;
}

char *fn_term_text(const char *s)
{
    if (!s) s = "";
    size_t n = strlen(s);
    char *out = malloc(4 * n + 1), *o = out;
    if (!out) return NULL;
    const unsigned char *u = (const unsigned char *)s;
    /* text that is not UTF-8 is shown in its escaped form, backslashes doubled, so that what a
     * person copies from the terminal decodes to the same bytes (fn_path_unescape) */
    int escaping = !fn_utf8_valid(s, n);
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(u + i, n - i);
        unsigned c = u[i];
        if (escaping && c == '\\') {
            *o++ = '\\';
            *o++ = '\\';
            i++;
        } else if (k == 1 && (c < 0x20 || c == 0x7F)) {
            /* a control character would act on the terminal: show it */
            if (c == '\n' || c == '\t' || c == '\r') {
                *o++ = '\\';
                *o++ = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
            } else {
                o = put_hex(o, (unsigned char)c);
            }
            i++;
        } else if (k == 2 && c == 0xC2 && u[i + 1] < 0xA0) {
            /* U+0080..U+009F: C1 controls (CSI, OSC...) that some terminals obey */
            o = put_hex(o, u[i]);
            o = put_hex(o, u[i + 1]);
            i += 2;
        } else if (!k) {
            o = put_hex(o, u[i++]);
        } else {
            memcpy(o, u + i, k);
            o += k;
            i += k;
        }
    }
    *o = '\0';
    return out;
}

const char *fn_term_str(const char *s)
{
    static _Thread_local char *ring[8];
    static _Thread_local unsigned next;
    unsigned slot = next++ % 8;
    free(ring[slot]);
    ring[slot] = fn_term_text(s);
    return ring[slot] ? ring[slot] : "?";
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *fn_base64_encode(const void *data, size_t len)
{
    const unsigned char *d = data;
    char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16;
        if (i + 1 < len) v |= (uint32_t)d[i + 1] << 8;
        if (i + 2 < len) v |= d[i + 2];
        *o++ = B64[v >> 18 & 63];
        *o++ = B64[v >> 12 & 63];
        *o++ = i + 1 < len ? B64[v >> 6 & 63] : '=';
        *o++ = i + 2 < len ? B64[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static int b64val(char c)
{
    const char *p = c ? strchr(B64, c) : NULL;
    return p ? (int)(p - B64) : -1;
}

char *fn_base64_decode(const char *text, size_t *len)
{
    size_t n = strlen(text);
    while (n > 0 && text[n - 1] == '=')
        n--;
    if (n % 4 == 1 || strlen(text) - n > 2) return NULL;
    char *out = malloc(n / 4 * 3 + 3 + 1), *o = out;
    if (!out) return NULL;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val(text[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *o++ = (char)(acc >> bits & 0xFF);
        }
    }
    *o = '\0';
    if (len) *len = (size_t)(o - out);
    return out;
}
