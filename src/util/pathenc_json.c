/* pathenc_json.c: the path encoding of util/pathenc.h applied to Jansson objects (see
 * pathenc_json.h). Kept apart from pathenc.c so that one builds without Jansson. */
#include "util/pathenc_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/pathenc.h"

int fn_json_set_path(json_t *o, const char *field, const char *path)
{
    char key[128];
    snprintf(key, sizeof key, "%s_b64", field);
    if (!path) {
        json_object_del(o, key);
        return json_object_set_new(o, field, json_null());
    }
    int escaped = 0;
    char *text = fn_path_text(path, &escaped);
    if (!text) return -1;
    int rc = json_object_set_new(o, field, json_string(text));
    free(text);
    if (rc == 0 && escaped) {
        char *b64 = fn_base64_encode(path, strlen(path));
        rc = b64 ? json_object_set_new(o, key, json_string(b64)) : -1;
        free(b64);
    } else {
        json_object_del(o, key);
    }
    return rc;
}

json_t *fn_json_text(const char *s)
{
    char *text = fn_path_text(s, NULL);
    json_t *j = text ? json_string(text) : NULL;
    free(text);
    return j;
}

char *fn_json_get_path(const json_t *o, const char *field)
{
    char key[128];
    snprintf(key, sizeof key, "%s_b64", field);
    const char *b64 = json_string_value(json_object_get(o, key));
    if (b64) {
        size_t n;
        char *bytes = fn_base64_decode(b64, &n);
        /* a path has no NUL byte; a _b64 that decodes to one is not ours */
        if (bytes && strlen(bytes) == n) return bytes;
        free(bytes);
    }
    const char *s = json_string_value(json_object_get(o, field));
    return s ? strdup(s) : NULL;
}
