/* ingest_opts.c: the ingest payload. Every key is optional except "paths"; defaults come from the
 * engine's configuration (ingest.detector, ingest.min_face_size, ingest.batch), so a UI can
 * enqueue {"paths": [...]} and get what the user configured. Unknown keys are refused: a typo in
 * "min_face_sise" must not silently run with the default. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "tasks/ingest.h"

static const char *const default_exts[] = {"jpg",  "jpeg", "png",  "webp", "heic",
                                           "heif", "tif",  "tiff", "gif"};

static int strings(json_t *v, const char *key, char ***out, size_t *n, int lower, char *err,
                   size_t errlen)
{
    if (!json_is_array(v)) {
        snprintf(err, errlen, "ingest payload: \"%s\" must be an array of strings", key);
        return FN_ERR_INVALID;
    }
    size_t k = json_array_size(v);
    char **a = calloc(k ? k : 1, sizeof *a);
    if (!a) return FN_ERR_NOMEM;
    for (size_t i = 0; i < k; i++) {
        const char *s = json_string_value(json_array_get(v, i));
        if (!s || !*s) {
            snprintf(err, errlen, "ingest payload: \"%s\"[%zu] must be a non-empty string", key, i);
            for (size_t j = 0; j < i; j++)
                free(a[j]);
            free(a);
            return FN_ERR_INVALID;
        }
        if (lower && s[0] == '.') s++;
        a[i] = strdup(s);
        if (!a[i]) {
            for (size_t j = 0; j < i; j++)
                free(a[j]);
            free(a);
            return FN_ERR_NOMEM;
        }
        if (lower)
            for (char *p = a[i]; *p; p++)
                *p = (char)tolower((unsigned char)*p);
    }
    *out = a;
    *n = k;
    return 0;
}

static int integer(json_t *v, const char *key, int lo, int hi, int *out, char *err, size_t errlen)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        snprintf(err, errlen, "ingest payload: \"%s\" must be an integer from %d to %d", key, lo,
                 hi);
        return FN_ERR_INVALID;
    }
    *out = (int)json_integer_value(v);
    return 0;
}

static int boolean(json_t *v, const char *key, int *out, char *err, size_t errlen)
{
    if (!json_is_boolean(v)) {
        snprintf(err, errlen, "ingest payload: \"%s\" must be true or false", key);
        return FN_ERR_INVALID;
    }
    *out = json_is_true(v);
    return 0;
}

static int detector(const char *s, fn_detector *d)
{
    if (s && strcmp(s, "ssd") == 0)
        *d = FN_DETECTOR_SSD;
    else if (s && strcmp(s, "tiny") == 0)
        *d = FN_DETECTOR_TINY;
    else
        return FN_ERR_INVALID;
    return 0;
}

int ingest_opts_parse(const char *payload, const fn_config *cfg, ingest_opts *o, char *err,
                      size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->recursive = 1;
    o->follow_symlinks = 0;
    o->min_face_size = cfg ? cfg->ingest_min_face_size : 40;
    o->batch = cfg && cfg->ingest_batch > 0 ? cfg->ingest_batch : 32;
    o->thumb_size = 112;
    o->detector = FN_DETECTOR_SSD;
    if (cfg && detector(cfg->detector, &o->detector) < 0) o->detector = FN_DETECTOR_SSD;

    json_error_t jerr;
    json_t *root = json_loads(payload && *payload ? payload : "{}", 0, &jerr);
    if (!root || !json_is_object(root)) {
        snprintf(err, errlen, "ingest payload is not a JSON object (%s)",
                 root ? "not an object" : jerr.text);
        json_decref(root);
        return FN_ERR_INVALID;
    }
    int rc = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "paths") == 0) {
            rc = strings(v, key, &o->paths, &o->n_paths, 0, err, errlen);
        } else if (strcmp(key, "recursive") == 0) {
            rc = boolean(v, key, &o->recursive, err, errlen);
        } else if (strcmp(key, "follow_symlinks") == 0) {
            rc = boolean(v, key, &o->follow_symlinks, err, errlen);
        } else if (strcmp(key, "extensions") == 0) {
            rc = strings(v, key, &o->exts, &o->n_exts, 1, err, errlen);
        } else if (strcmp(key, "min_face_size") == 0) {
            rc = integer(v, key, 0, 100000, &o->min_face_size, err, errlen);
        } else if (strcmp(key, "batch") == 0) {
            rc = integer(v, key, 1, 4096, &o->batch, err, errlen);
        } else if (strcmp(key, "thumb_size") == 0) {
            rc = integer(v, key, 0, 512, &o->thumb_size, err, errlen);
        } else if (strcmp(key, "detector") == 0) {
            if (detector(json_string_value(v), &o->detector) < 0) {
                snprintf(err, errlen, "ingest payload: \"detector\" must be \"ssd\" or \"tiny\"");
                rc = FN_ERR_INVALID;
            }
        } else if (strcmp(key, "retry_items") == 0) {
            rc = strings(v, key, &o->retry_items, &o->n_retry, 0, err, errlen);
            o->has_retry = rc == 0;
        } else {
            snprintf(err, errlen,
                     "ingest payload: unknown key \"%s\" (known: paths, recursive, extensions, "
                     "min_face_size, detector, batch, follow_symlinks, thumb_size, retry_items)",
                     key);
            rc = FN_ERR_INVALID;
        }
        if (rc < 0) break;
    }
    json_decref(root);
    if (rc == 0 && !o->n_paths && !o->has_retry) {
        snprintf(err, errlen, "ingest payload: \"paths\" must name at least one file or folder");
        rc = FN_ERR_INVALID;
    }
    if (rc == 0 && !o->exts) {
        size_t n = sizeof default_exts / sizeof default_exts[0];
        o->exts = calloc(n, sizeof *o->exts);
        if (!o->exts) rc = FN_ERR_NOMEM;
        for (size_t i = 0; rc == 0 && i < n; i++, o->n_exts++)
            if (!(o->exts[i] = strdup(default_exts[i]))) rc = FN_ERR_NOMEM;
    }
    if (rc < 0) ingest_opts_free(o);
    return rc;
}

static void free_strings(char **a, size_t n)
{
    for (size_t i = 0; a && i < n; i++)
        free(a[i]);
    free(a);
}

void ingest_opts_free(ingest_opts *o)
{
    if (!o) return;
    free_strings(o->paths, o->n_paths);
    free_strings(o->exts, o->n_exts);
    free_strings(o->retry_items, o->n_retry);
    memset(o, 0, sizeof *o);
}
