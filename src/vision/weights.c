/* weights.c: TFJS weight manifests and their .bin files, dequantized to float32.
 *
 * A manifest is a JSON array of groups {paths: [file...], weights: [{name, shape, dtype,
 * quantization?}]}. The tensors of all groups are stored back to back, in manifest order, in the
 * concatenation of all groups' files. Stored element sizes: float32 and int32 take 4 bytes; a
 * quantized tensor takes 1 (uint8) or 2 (uint16, float16) bytes per element, and uint8/uint16
 * values mean q * scale + min. Everything becomes float32 (int32 tensors are shape constants).
 *
 * What must stay true: the manifest is outside data (the fuzz target feeds it garbage), so every
 * field is type-checked, every size is bounded by the bytes actually present before anything is
 * allocated from it, and the bytes the manifest promises must equal the bytes the files hold
 * exactly; a mismatch means a wrong or damaged install, and the message says how to reinstall. */
#include "vision/weights.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "facenames/error.h"
#include "vision/verr.h"

#define INSTALL_HINT "install the models with scripts/bootstrap (from the facenames source tree)"

/* The largest manifest we read: the real ones are under 100 KB. */
#define MAX_MANIFEST_BYTES (16u << 20)
/* The largest weight file set we accept (the real ones are under 7 MB). */
#define MAX_BIN_BYTES (1u << 30)

enum stored { ST_F32, ST_I32, ST_U8, ST_U16, ST_F16 };

/* One tensor entry after validation (pass 1), before its floats are filled (pass 2). */
typedef struct entry {
    const char *name;
    int rank;
    int shape[4];
    size_t n;
    enum stored st;
    double scale, min;
} entry;

static size_t stored_size(enum stored st)
{
    switch (st) {
    case ST_F32:
    case ST_I32:
        return 4;
    case ST_U16:
    case ST_F16:
        return 2;
    case ST_U8:
    default:
        return 1;
    }
}

/* IEEE half to float, without relying on compiler _Float16 support. */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) {
                mant <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Validates one weights[] entry into *e. `offset` is the running byte offset; fails before it
 * could pass bin_len so nothing is sized from an unchecked number. */
static int parse_entry(json_t *jw, size_t idx, const char *origin, size_t *offset, size_t bin_len,
                       entry *e, char *err, size_t errlen)
{
    if (!json_is_object(jw))
        return fn_verr(err, errlen, FN_ERR_MODEL, "%s: weight entry %zu is not an object; %s",
                       origin, idx, INSTALL_HINT);
    json_t *jn = json_object_get(jw, "name"), *js = json_object_get(jw, "shape"),
           *jd = json_object_get(jw, "dtype"), *jq = json_object_get(jw, "quantization");
    if (!json_is_string(jn) || json_string_length(jn) == 0)
        return fn_verr(err, errlen, FN_ERR_MODEL, "%s: weight entry %zu has no name; %s", origin,
                       idx, INSTALL_HINT);
    e->name = json_string_value(jn);
    if (!json_is_array(js) || json_array_size(js) > 4)
        return fn_verr(err, errlen, FN_ERR_MODEL,
                       "%s: tensor '%s' has no shape or more than 4 dimensions; %s", origin,
                       e->name, INSTALL_HINT);
    e->rank = (int)json_array_size(js);
    e->n = 1;
    for (int i = 0; i < 4; i++)
        e->shape[i] = 0;
    for (int i = 0; i < e->rank; i++) {
        json_t *jdim = json_array_get(js, (size_t)i);
        json_int_t v = json_is_integer(jdim) ? json_integer_value(jdim) : -1;
        /* Each element takes at least one stored byte, so no dimension can exceed bin_len. */
        if (v < 0 || (uint64_t)v > bin_len || v > INT32_MAX)
            return fn_verr(err, errlen, FN_ERR_MODEL,
                           "%s: tensor '%s' has an invalid dimension %d in its shape; %s", origin,
                           e->name, i, INSTALL_HINT);
        e->shape[i] = (int)v;
        if (v != 0 && e->n > bin_len / (size_t)v)
            e->n = bin_len + 1; /* saturate: the size check below reports it */
        else
            e->n *= (size_t)v;
    }
    const char *dtype = json_is_string(jd) ? json_string_value(jd) : "";
    if (strcmp(dtype, "float32") && strcmp(dtype, "int32"))
        return fn_verr(err, errlen, FN_ERR_MODEL,
                       "%s: tensor '%s' has unsupported dtype '%s' (float32 or int32 expected); %s",
                       origin, e->name, dtype, INSTALL_HINT);
    e->st = strcmp(dtype, "int32") ? ST_F32 : ST_I32;
    e->scale = 1;
    e->min = 0;
    if (jq && !json_is_null(jq)) {
        json_t *jqd = json_object_get(jq, "dtype");
        const char *qd = json_is_string(jqd) ? json_string_value(jqd) : "";
        if (!strcmp(qd, "uint8") || !strcmp(qd, "uint16")) {
            json_t *jsc = json_object_get(jq, "scale"), *jmin = json_object_get(jq, "min");
            if (!json_is_number(jsc) || !json_is_number(jmin))
                return fn_verr(err, errlen, FN_ERR_MODEL,
                               "%s: tensor '%s' is quantized without a numeric scale and min; %s",
                               origin, e->name, INSTALL_HINT);
            e->scale = json_number_value(jsc);
            e->min = json_number_value(jmin);
            e->st = qd[4] == '8' ? ST_U8 : ST_U16;
        } else if (!strcmp(qd, "float16")) {
            e->st = ST_F16;
        } else {
            return fn_verr(err, errlen, FN_ERR_MODEL,
                           "%s: tensor '%s' has unsupported quantization dtype '%s'; %s", origin,
                           e->name, qd, INSTALL_HINT);
        }
    }
    size_t bytes = e->n > bin_len ? bin_len + 1 : e->n * stored_size(e->st);
    if (bytes > bin_len - *offset)
        return fn_verr(err, errlen, FN_ERR_MODEL,
                       "%s: the weight files end inside tensor '%s' (it needs %zu bytes at offset "
                       "%zu, only %zu bytes in total); %s",
                       origin, e->name, e->n * stored_size(e->st), *offset, bin_len, INSTALL_HINT);
    *offset += bytes;
    return 0;
}

static void fill(const entry *e, const unsigned char *p, float *d)
{
    for (size_t i = 0; i < e->n; i++) {
        switch (e->st) {
        case ST_F32:
            memcpy(&d[i], p + 4 * i, 4);
            break;
        case ST_I32: {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            d[i] = (float)v;
            break;
        }
        case ST_U8:
            d[i] = (float)(p[i] * e->scale + e->min);
            break;
        case ST_U16: {
            uint16_t q;
            memcpy(&q, p + 2 * i, 2);
            d[i] = (float)(q * e->scale + e->min);
            break;
        }
        case ST_F16: {
            uint16_t q;
            memcpy(&q, p + 2 * i, 2);
            d[i] = half_to_float(q);
            break;
        }
        }
    }
}

/* Binds a parsed manifest to its bytes. Two passes: validate and size everything, then allocate
 * once and dequantize. */
static int bind_json(json_t *root, const unsigned char *bin, size_t bin_len, const char *origin,
                     fn_weights **out, char *err, size_t errlen)
{
    if (!json_is_array(root) || json_array_size(root) == 0)
        return fn_verr(err, errlen, FN_ERR_MODEL,
                       "%s: not a weights manifest (expected a non-empty JSON array of groups); %s",
                       origin, INSTALL_HINT);
    size_t count = 0;
    for (size_t g = 0; g < json_array_size(root); g++) {
        json_t *grp = json_array_get(root, g), *jw = json_object_get(grp, "weights");
        if (!json_is_object(grp) || !json_is_array(jw))
            return fn_verr(err, errlen, FN_ERR_MODEL, "%s: group %zu has no 'weights' array; %s",
                           origin, g, INSTALL_HINT);
        count += json_array_size(jw);
    }
    if (count == 0)
        return fn_verr(err, errlen, FN_ERR_MODEL, "%s: the manifest lists no tensors; %s", origin,
                       INSTALL_HINT);

    entry *ents = calloc(count, sizeof *ents);
    if (!ents) return fn_verr(err, errlen, FN_ERR_NOMEM, "%s: out of memory", origin);
    size_t offset = 0, k = 0, floats = 0;
    int rc = 0;
    for (size_t g = 0; g < json_array_size(root) && rc == 0; g++) {
        json_t *jw = json_object_get(json_array_get(root, g), "weights");
        for (size_t i = 0; i < json_array_size(jw) && rc == 0; i++, k++) {
            rc = parse_entry(json_array_get(jw, i), k, origin, &offset, bin_len, &ents[k], err,
                             errlen);
            floats += ents[k].n;
        }
    }
    if (rc == 0 && offset != bin_len)
        rc =
            fn_verr(err, errlen, FN_ERR_MODEL,
                    "%s: the manifest describes %zu bytes of weights but the weight files hold %zu "
                    "bytes; %s",
                    origin, offset, bin_len, INSTALL_HINT);
    if (rc) {
        free(ents);
        return rc;
    }

    fn_weights *w = calloc(1, sizeof *w);
    float *all = malloc((floats ? floats : 1) * sizeof(float));
    if (w) {
        w->t = calloc(count, sizeof *w->t);
        w->source = strdup(origin);
    }
    if (!w || !all || !w->t || !w->source) {
        free(all);
        fn_weights_free(w);
        free(ents);
        return fn_verr(err, errlen, FN_ERR_NOMEM, "%s: out of memory", origin);
    }
    w->n = count;
    offset = 0;
    size_t at = 0;
    for (k = 0; k < count; k++) {
        fn_tensor *t = &w->t[k];
        t->name = strdup(ents[k].name);
        if (!t->name) {
            /* The first tensor owns the block, so it must survive a partial failure. */
            if (k == 0) free(all);
            fn_weights_free(w);
            free(ents);
            return fn_verr(err, errlen, FN_ERR_NOMEM, "%s: out of memory", origin);
        }
        t->rank = ents[k].rank;
        memcpy(t->shape, ents[k].shape, sizeof t->shape);
        t->n = ents[k].n;
        t->d = all + at;
        t->q8 = ents[k].st == ST_U8;
        t->qscale = ents[k].scale;
        t->qmin = ents[k].min;
        fill(&ents[k], bin + offset, t->d);
        offset += ents[k].n * stored_size(ents[k].st);
        at += ents[k].n;
    }
    free(ents);
    *out = w;
    return 0;
}

int fn_weights_parse(const char *manifest, size_t manifest_len, const unsigned char *bin,
                     size_t bin_len, const char *origin, fn_weights **out, char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (!origin) origin = "weights manifest";
    if (!manifest || !out || (!bin && bin_len))
        return fn_verr(err, errlen, FN_ERR_INVALID, "%s: invalid arguments", origin);
    json_error_t je;
    json_t *root = json_loadb(manifest, manifest_len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return fn_verr(err, errlen, FN_ERR_MODEL, "%s: invalid JSON at line %d: %s; %s", origin,
                       je.line, je.text, INSTALL_HINT);
    int rc = bind_json(root, bin, bin_len, origin, out, err, errlen);
    json_decref(root);
    return rc;
}

/* Reads a whole regular file into a malloc'd buffer (at most `max` bytes). */
static int read_file(const char *path, size_t max, unsigned char **data, size_t *len, char *err,
                     size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return fn_verr(err, errlen, e == ENOENT ? FN_ERR_NOT_FOUND : FN_ERR_MODEL,
                       "%s: cannot open: %s; %s", path, strerror(e), INSTALL_HINT);
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return fn_verr(err, errlen, FN_ERR_MODEL, "%s: not a regular file; %s", path, INSTALL_HINT);
    }
    if ((uint64_t)st.st_size > max) {
        fclose(f);
        return fn_verr(err, errlen, FN_ERR_MODEL, "%s: too large (%lld bytes); %s", path,
                       (long long)st.st_size, INSTALL_HINT);
    }
    size_t n = (size_t)st.st_size;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        return fn_verr(err, errlen, FN_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = n ? fread(buf, 1, n, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (got != n || bad) {
        free(buf);
        return fn_verr(err, errlen, FN_ERR_MODEL, "%s: read error; %s", path, INSTALL_HINT);
    }
    *data = buf;
    *len = n;
    return 0;
}

int fn_weights_load(const char *manifest_path, fn_weights **out, char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (!manifest_path || !out) return fn_verr(err, errlen, FN_ERR_INVALID, "invalid arguments");
    unsigned char *text = NULL, *bin = NULL;
    size_t text_len = 0, bin_len = 0;
    int rc = read_file(manifest_path, MAX_MANIFEST_BYTES, &text, &text_len, err, errlen);
    if (rc) return rc;
    json_error_t je;
    json_t *root = json_loadb((const char *)text, text_len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!root)
        return fn_verr(err, errlen, FN_ERR_MODEL, "%s: invalid JSON at line %d: %s; %s",
                       manifest_path, je.line, je.text, INSTALL_HINT);

    /* The folder the .bin paths are relative to. */
    const char *slash = strrchr(manifest_path, '/');
    size_t dirlen = slash ? (size_t)(slash - manifest_path + 1) : 0;
    for (size_t g = 0; rc == 0 && g < json_array_size(root); g++) {
        json_t *paths = json_object_get(json_array_get(root, g), "paths");
        if (!json_is_array(paths)) {
            rc = fn_verr(err, errlen, FN_ERR_MODEL, "%s: group %zu has no 'paths' array; %s",
                         manifest_path, g, INSTALL_HINT);
            break;
        }
        for (size_t i = 0; rc == 0 && i < json_array_size(paths); i++) {
            const char *p = json_string_value(json_array_get(paths, i));
            if (!p || !*p || strstr(p, "..") || p[0] == '/') {
                rc = fn_verr(err, errlen, FN_ERR_MODEL,
                             "%s: invalid weight file path in group %zu; %s", manifest_path, g,
                             INSTALL_HINT);
                break;
            }
            size_t plen = dirlen + strlen(p) + 1;
            char *full = malloc(plen);
            if (!full) {
                rc = fn_verr(err, errlen, FN_ERR_NOMEM, "out of memory");
                break;
            }
            snprintf(full, plen, "%.*s%s", (int)dirlen, manifest_path, p);
            unsigned char *part = NULL;
            size_t part_len = 0;
            rc = read_file(full, MAX_BIN_BYTES - bin_len, &part, &part_len, err, errlen);
            free(full);
            if (rc) break;
            unsigned char *grown = realloc(bin, bin_len + part_len + 1);
            if (!grown) {
                free(part);
                rc = fn_verr(err, errlen, FN_ERR_NOMEM, "out of memory");
                break;
            }
            bin = grown;
            memcpy(bin + bin_len, part, part_len);
            bin_len += part_len;
            free(part);
        }
    }
    if (rc == 0) rc = bind_json(root, bin, bin_len, manifest_path, out, err, errlen);
    if (rc == FN_ERR_NOT_FOUND) rc = FN_ERR_MODEL; /* a missing .bin is a broken install */
    json_decref(root);
    free(bin);
    return rc;
}

void fn_weights_free(fn_weights *w)
{
    if (!w) return;
    if (w->t) {
        /* All tensors share one block, owned through the first tensor's pointer. */
        if (w->n && w->t[0].name) free(w->t[0].d);
        for (size_t i = 0; i < w->n; i++)
            free(w->t[i].name);
        free(w->t);
    }
    free(w->source);
    free(w);
}

static void shape_str(char *buf, size_t len, int rank, const int *shape)
{
    size_t at = 0;
    at += (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < rank && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%d", i ? ", " : "", shape[i]);
    if (at < len) snprintf(buf + at, len - at, "]");
}

const fn_tensor *fn_weights_get(const fn_weights *w, const char *name, int rank, const int *shape,
                                char *err, size_t errlen)
{
    if (!w || !name) {
        fn_verr(err, errlen, FN_ERR_INVALID, "invalid arguments");
        return NULL;
    }
    for (size_t i = 0; i < w->n; i++) {
        const fn_tensor *t = &w->t[i];
        if (strcmp(t->name, name)) continue;
        if (!shape) return t;
        int ok = t->rank == rank;
        for (int k = 0; ok && k < rank; k++)
            ok = t->shape[k] == shape[k];
        if (ok) return t;
        char have[64], want[64];
        shape_str(have, sizeof have, t->rank, t->shape);
        shape_str(want, sizeof want, rank, shape);
        fn_verr(err, errlen, FN_ERR_MODEL, "%s: tensor '%s' has shape %s, expected %s; %s",
                w->source, name, have, want, INSTALL_HINT);
        return NULL;
    }
    fn_verr(err, errlen, FN_ERR_MODEL, "%s: tensor '%s' is missing; %s", w->source, name,
            INSTALL_HINT);
    return NULL;
}
