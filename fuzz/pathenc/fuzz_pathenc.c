/* fuzz_pathenc.c: fuzz target for the path decoder and encoders (util/pathenc.h).
 *
 * The input, cut at its first NUL, is taken both as an argument to decode (fn_path_unescape, as
 * `--item REF` and `photos show PATH` decode theirs) and as a file name to encode. Besides "does
 * not crash", it checks: decoding never grows the text; the text form is valid UTF-8 and, when
 * escaped, decodes back to the bytes; the terminal form is valid UTF-8 without control
 * characters; base64 round-trips. Built as a libFuzzer binary with -Dlibfuzzer=true (clang), and
 * always as a replay driver (fuzz/replay.c) over the seed corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/pathenc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    size_t n = strlen(s);

    size_t m;
    char *dec = fn_path_unescape(s, &m);
    if (!dec || m > n || strlen(dec) != m) abort(); /* \x00 is never decoded */
    free(dec);

    int esc = -1;
    char *t = fn_path_text(s, &esc);
    if (!t || !fn_utf8_valid(t, strlen(t)) || esc != !fn_utf8_valid(s, n)) abort();
    if (esc) {
        char *back = fn_path_unescape(t, &m);
        if (!back || m != n || memcmp(back, s, n) != 0) abort();
        free(back);
    } else if (strcmp(t, s) != 0) {
        abort();
    }
    free(t);

    char *term = fn_term_text(s);
    if (!term || !fn_utf8_valid(term, strlen(term))) abort();
    for (const unsigned char *u = (const unsigned char *)term; *u; u++)
        if (*u < 0x20 || *u == 0x7F || (u[0] == 0xC2 && u[1] >= 0x80 && u[1] <= 0x9F)) abort();
    free(term);

    char *b64 = fn_base64_encode(data, size);
    char *raw = b64 ? fn_base64_decode(b64, &m) : NULL;
    if (!raw || m != size || memcmp(raw, data, size) != 0) abort();
    free(raw);
    free(b64);
    /* and the decoder on arbitrary text: no crash, NULL or a terminated result */
    free(fn_base64_decode(s, &m));
    free(s);
    return 0;
}
