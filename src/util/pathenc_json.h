/* pathenc_json.h: paths and messages in Jansson objects with the encoding of util/pathenc.h: a
 * field holds the text form, and "<field>_b64" the raw bytes in base64 only when the text form had
 * to escape something. Used by every JSON output that carries a path (the CLI, the engine's job
 * and error JSON, the ingest checkpoint). Any thread. */
#ifndef FN_UTIL_PATHENC_JSON_H
#define FN_UTIL_PATHENC_JSON_H

#include <jansson.h>

/* Sets o[field] to the text form of `path` (NULL: json null) and, when that is escaped,
 * o[field "_b64"] to its bytes in base64. 0, or -1 when out of memory. */
int fn_json_set_path(json_t *o, const char *field, const char *path);

/* A JSON string for text that may contain paths (an error message): invalid bytes escaped as in a
 * path, so it is always valid UTF-8. A new reference; NULL only when out of memory. */
json_t *fn_json_text(const char *s);

/* The bytes of path `field` of o: decoded from "<field>_b64" when present, else the string as it
 * is. malloc'd; NULL when the field is missing or not a string (or out of memory). */
char *fn_json_get_path(const json_t *o, const char *field);

#endif
