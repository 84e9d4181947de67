/* fuzz_weights: the TFJS manifest parser (fn_weights_parse) on arbitrary bytes.
 *
 * Input layout: manifest text, then one NUL byte, then the weight bytes it is bound to (no NUL:
 * everything is manifest and there are no weight bytes). The parser must return 0 or a negative
 * code, never crash, never read past either buffer, and never allocate more than the bytes
 * present justify. A success is checked for internal consistency. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vision/weights.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = size ? memchr(data, 0, size) : NULL;
    size_t mlen = nul ? (size_t)(nul - data) : size;
    const uint8_t *bin = nul ? nul + 1 : NULL;
    size_t blen = nul ? size - mlen - 1 : 0;
    fn_weights *w = NULL;
    char err[256];
    int rc = fn_weights_parse((const char *)data, mlen, bin, blen, "fuzz", &w, err, sizeof err);
    if (rc == 0) {
        size_t total = 0;
        for (size_t i = 0; i < w->n; i++) {
            total += w->t[i].n;
            if (w->t[i].rank < 0 || w->t[i].rank > 4) abort();
            (void)fn_weights_get(w, w->t[i].name, w->t[i].rank, w->t[i].shape, err, sizeof err);
        }
        if (total > blen) abort(); /* every element takes at least one stored byte */
        fn_weights_free(w);
    } else if (rc > 0 || w) {
        abort();
    }
    return 0;
}
