/* fuzz_config.c: fuzz target for the configuration file parser (fn_config_parse).
 *
 * Besides "does not crash", it checks two properties on every input: an error message is always a
 * terminated string inside its buffer, and whatever parses formats back (fn_config_format) to text
 * that parses to the same values. Built as a libFuzzer binary with -Dlibfuzzer=true (clang), and
 * always as a replay driver (fuzz/replay.c) that runs saved inputs, e.g. the seed corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/config.h"
#include "util/config_equal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fn_config cfg;
    fn_config_defaults(&cfg);
    char err[256];
    memset(err, 'x', sizeof err);
    int rc = fn_config_parse(&cfg, (const char *)data, size, "fuzz", err, sizeof err);
    if (rc < 0) {
        if (!memchr(err, '\0', sizeof err)) abort(); /* message must be terminated */
        return 0;
    }
    char *text = fn_config_format(&cfg);
    if (!text) abort();
    fn_config back;
    fn_config_defaults(&back);
    back.workers_cpu_max = cfg.workers_cpu_max == 1 ? 2 : 1; /* make a no-op parse visible */
    if (fn_config_parse(&back, text, strlen(text), "formatted", err, sizeof err) < 0 ||
        !fn_config_equal(&back, &cfg)) {
        fprintf(stderr, "round trip failed: %s\n%s", err, text);
        abort();
    }
    free(text);
    return 0;
}
