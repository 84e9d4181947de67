/* config.c: the configuration keys, their defaults and checks, the `key = value` file parser and
 * the FACENAMES_* environment overrides.
 *
 * Every key lives in one table (keys[] below): its name, where it sits in struct fn_config, its
 * kind and its allowed range. Setting, parsing, the environment, formatting and the error messages
 * all walk that table, so a key added there is documented by every message at once. What must stay
 * true: a failed set/parse/env call leaves *cfg untouched (work happens on a copy), and no input,
 * however malformed (the fuzz target feeds arbitrary bytes), reads outside `text[0..len)`. */
#include "facenames/config.h"

#include "facenames/error.h"
#include "util/libaddr.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum key_kind { KEY_INT, KEY_DOUBLE, KEY_SIZE, KEY_STR, KEY_ENUM, KEY_BOOL };

struct key {
    const char *name;
    enum key_kind kind;
    size_t off;               /* offset in struct fn_config */
    size_t size;              /* KEY_STR / KEY_ENUM: buffer size */
    long long min, max;       /* KEY_INT / KEY_SIZE */
    double dmin, dmax;        /* KEY_DOUBLE: dmin < value <= dmax */
    const char *const *words; /* KEY_ENUM: allowed words, NULL-terminated */
    const char *special;      /* KEY_INT: a word accepted besides numbers ("auto"), or NULL */
};

static const char *const detectors[] = {"ssd", "tiny", NULL};
static const char *const tile_modes[] = {"off", "on", "auto", NULL};
static const char *const precisions[] = {"auto", "fp32", "bf16", "int16", NULL};
static const char *const prefetch_modes[] = {"auto", "on", "off", NULL};

#define OFF(field) offsetof(fn_config, field)
#define SZ(field)  sizeof(((fn_config *)0)->field)

static const struct key keys[] = {
    {"workers.cpu_max", KEY_INT, OFF(workers_cpu_max), 0, 1, 4096, 0, 0, NULL, "auto"},
    {"workers.gpu_max", KEY_INT, OFF(workers_gpu_max), 0, 0, 64, 0, 0, NULL, NULL},
    {"workers.mem_max_mb", KEY_INT, OFF(workers_mem_max_mb), 0, 0, INT_MAX, 0, 0, NULL, NULL},
    {"workers.prefetch", KEY_ENUM, OFF(workers_prefetch), SZ(workers_prefetch), 0, 0, 0, 0,
     prefetch_modes, NULL},
    {"events.progress_hz", KEY_DOUBLE, OFF(events_progress_hz), 0, 0, 0, 0.0, 1000.0, NULL, NULL},
    {"events.queue_max", KEY_SIZE, OFF(events_queue_max), 0, 16, 16777216, 0, 0, NULL, NULL},
    {"jobs.heartbeat_ms", KEY_INT, OFF(jobs_heartbeat_ms), 0, 10, 3600000, 0, 0, NULL, NULL},
    {"jobs.owner_timeout_ms", KEY_INT, OFF(jobs_owner_timeout_ms), 0, 100, 86400000, 0, 0, NULL,
     NULL},
    {"jobs.aging_ms", KEY_INT, OFF(jobs_aging_ms), 0, 1, INT_MAX, 0, 0, NULL, NULL},
    {"db.busy_timeout_ms", KEY_INT, OFF(db_busy_timeout_ms), 0, 0, INT_MAX, 0, 0, NULL, NULL},
    {"db.url", KEY_STR, OFF(db_url), SZ(db_url), 0, 0, 0, 0, NULL, NULL},
    {"worker.host", KEY_STR, OFF(worker_host), SZ(worker_host), 0, 0, 0, 0, NULL, NULL},
    {"log.path", KEY_STR, OFF(log_path), SZ(log_path), 0, 0, 0, 0, NULL, NULL},
    {"models.dir", KEY_STR, OFF(models_dir), SZ(models_dir), 0, 0, 0, 0, NULL, NULL},
    {"ingest.detector", KEY_ENUM, OFF(detector), SZ(detector), 0, 0, 0, 0, detectors, NULL},
    {"ingest.detect_tiles", KEY_ENUM, OFF(detect_tiles), SZ(detect_tiles), 0, 0, 0, 0, tile_modes,
     NULL},
    {"ingest.min_face_size", KEY_INT, OFF(ingest_min_face_size), 0, 1, 100000, 0, 0, NULL, NULL},
    {"ingest.batch", KEY_INT, OFF(ingest_batch), 0, 1, 4096, 0, 0, NULL, NULL},
    {"ingest.shard_photos", KEY_INT, OFF(ingest_shard_photos), 0, 0, INT_MAX, 0, 0, NULL, NULL},
    {"vision.precision", KEY_ENUM, OFF(vision_precision), SZ(vision_precision), 0, 0, 0, 0,
     precisions, NULL},
    {"cluster.threshold", KEY_DOUBLE, OFF(cluster_threshold), 0, 0, 0, 0.0, 2.0, NULL, NULL},
    {"cluster.link", KEY_DOUBLE, OFF(cluster_link), 0, 0, 0, 0.0, 2.0, NULL, NULL},
    {"cluster.min_faces", KEY_INT, OFF(cluster_min_faces), 0, 1, 1000000, 0, 0, NULL, NULL},
    {"cluster.weak_size", KEY_INT, OFF(cluster_weak_size), 0, 0, 100000, 0, 0, NULL, NULL},
    {"cluster.weak_score", KEY_DOUBLE, OFF(cluster_weak_score), 0, 0, 0, 0.0, 1.0, NULL, NULL},
    {"predict.k", KEY_INT, OFF(predict_k), 0, 1, 64, 0, 0, NULL, NULL},
    {"predict.threshold", KEY_DOUBLE, OFF(predict_threshold), 0, 0, 0, 0.0, 1.0, NULL, NULL},
    {"predict.auto_accept", KEY_BOOL, OFF(predict_auto_accept), 0, 0, 0, 0, 0, NULL, NULL},
};

#define N_KEYS (sizeof keys / sizeof keys[0])

static int online_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) return 1;
    if (n > 4096) return 4096;
    return (int)n;
}

void fn_config_defaults(fn_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->workers_cpu_max = online_cores();
    cfg->workers_gpu_max = 1;
    cfg->workers_mem_max_mb = 0;
    snprintf(cfg->workers_prefetch, sizeof cfg->workers_prefetch, "auto");
    cfg->events_progress_hz = 20.0;
    cfg->events_queue_max = 4096;
    cfg->jobs_heartbeat_ms = 1000;
    cfg->jobs_owner_timeout_ms = 10000;
    cfg->jobs_aging_ms = 30000;
    cfg->db_busy_timeout_ms = 5000;
    cfg->log_path[0] = '\0';
    cfg->models_dir[0] = '\0';
    snprintf(cfg->detector, sizeof cfg->detector, "ssd");
    snprintf(cfg->detect_tiles, sizeof cfg->detect_tiles, "off");
    snprintf(cfg->vision_precision, sizeof cfg->vision_precision, "auto");
    cfg->ingest_min_face_size = 40;
    cfg->ingest_batch = 32;
    cfg->ingest_shard_photos = 1000;
    cfg->cluster_threshold = 0.5;
    cfg->cluster_link = 0.45;
    cfg->cluster_min_faces = 2;
    cfg->cluster_weak_size = 48;
    cfg->cluster_weak_score = 0.5;
    cfg->predict_k = 10;
    cfg->predict_threshold = 0.4;
    cfg->predict_auto_accept = 0;
}

fn_config *fn_config_new(void)
{
    fn_config *cfg = malloc(sizeof *cfg);
    if (cfg) fn_config_defaults(cfg);
    return cfg;
}

void fn_config_free(fn_config *cfg)
{
    free(cfg);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Copies `s` into out for quoting in a message: at most ~48 characters, control bytes as '?', so a
 * binary value cannot garble a terminal. */
static const char *shown(const char *s, char *out, size_t outlen)
{
    size_t j = 0, i = 0;
    for (; s[i] && j + 4 < outlen && i < 48; i++)
        out[j++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (s[i] && j + 4 < outlen) {
        memcpy(out + j, "...", 3);
        j += 3;
    }
    out[j] = '\0';
    return out;
}

static const struct key *find_key(const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].name, name) == 0) return &keys[i];
    return NULL;
}

/* Levenshtein distance capped for short strings; used only for "did you mean". */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    size_t prev[64], cur[64];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb];
}

static void unknown_key_err(const char *name, char *err, size_t errlen)
{
    char buf[64];
    const char *best = NULL;
    size_t best_d = 4;
    for (size_t i = 0; i < N_KEYS; i++) {
        size_t d = edit_distance(name, keys[i].name);
        /* "cpu_max" for "workers.cpu_max": a missing section is a likely slip too */
        const char *dot = strchr(keys[i].name, '.');
        if (dot && strcmp(dot + 1, name) == 0) d = 1;
        if (d < best_d) {
            best_d = d;
            best = keys[i].name;
        }
    }
    if (best)
        set_err(err, errlen, "unknown configuration key \"%s\"; did you mean \"%s\"?",
                shown(name, buf, sizeof buf), best);
    else {
        /* the list comes from the table, so a new key is named here without another edit */
        char known[1024];
        size_t off = 0;
        for (size_t i = 0; i < N_KEYS && off < sizeof known; i++) {
            int w = snprintf(known + off, sizeof known - off, "%s%s", i ? ", " : "", keys[i].name);
            if (w < 0) break;
            off += (size_t)w;
        }
        set_err(err, errlen, "unknown configuration key \"%s\"; known keys: %s",
                shown(name, buf, sizeof buf), known);
    }
}

/* Parses a whole decimal number, surrounding blanks allowed, nothing else. */
static int parse_ll(const char *s, long long *out)
{
    while (*s == ' ' || *s == '\t')
        s++;
    if (!isdigit((unsigned char)*s) && !((*s == '-' || *s == '+') && isdigit((unsigned char)s[1])))
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE) return -2;
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end) return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s || !(isdigit((unsigned char)*s) || *s == '.' || *s == '-' || *s == '+')) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s) return -1;
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end || errno == ERANGE || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

static int set_key(fn_config *cfg, const struct key *k, const char *value, char *err, size_t errlen)
{
    char buf[64];
    char *field = (char *)cfg + k->off;
    switch (k->kind) {
    case KEY_INT:
    case KEY_SIZE: {
        long long v;
        if (k->special && strcmp(value, k->special) == 0) {
            v = online_cores(); /* the only special word is workers.cpu_max's "auto" */
        } else {
            int rc = parse_ll(value, &v);
            if (rc < 0 || v < k->min || v > k->max) {
                set_err(err, errlen,
                        "%s: \"%s\" is %s; allowed: a whole number from %lld to %lld%s%s%s",
                        k->name, shown(value, buf, sizeof buf),
                        rc == -1 ? "not a whole number" : "out of range", k->min, k->max,
                        k->special ? " or \"" : "", k->special ? k->special : "",
                        k->special ? "\"" : "");
                return FN_ERR_CONFIG;
            }
        }
        if (k->kind == KEY_INT)
            *(int *)field = (int)v;
        else
            *(size_t *)field = (size_t)v;
        return 0;
    }
    case KEY_DOUBLE: {
        double v;
        if (parse_double(value, &v) < 0 || !(v > k->dmin) || v > k->dmax) {
            set_err(err, errlen,
                    "%s: \"%s\" is not allowed; allowed: a number above %g and at most %g", k->name,
                    shown(value, buf, sizeof buf), k->dmin, k->dmax);
            return FN_ERR_CONFIG;
        }
        *(double *)field = v;
        return 0;
    }
    case KEY_STR: {
        size_t n = strlen(value);
        if (n >= k->size) {
            set_err(err, errlen, "%s: the value is %zu bytes long; allowed: at most %zu", k->name,
                    n, k->size - 1);
            return FN_ERR_CONFIG;
        }
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)value[i] < 0x20 && value[i] != '\t') {
                set_err(err, errlen,
                        "%s: the value holds a control character (line break?); "
                        "allowed: a path on one line",
                        k->name);
                return FN_ERR_CONFIG;
            }
        }
        if (field == (void *)cfg->db_url && n && !fn_libaddr_is_url(value)) {
            set_err(err, errlen,
                    "%s: \"%s\" is not allowed; allowed: a postgresql:// or postgres:// address, "
                    "or \"\" for none (a library folder is given with --library DIR)",
                    k->name, shown(value, buf, sizeof buf));
            return FN_ERR_CONFIG;
        }
        memcpy(field, value, n + 1);
        return 0;
    }
    case KEY_BOOL:
        /* the words people write in configuration files for yes and no */
        if (strcmp(value, "true") == 0 || strcmp(value, "on") == 0 || strcmp(value, "yes") == 0 ||
            strcmp(value, "1") == 0) {
            *(int *)field = 1;
            return 0;
        }
        if (strcmp(value, "false") == 0 || strcmp(value, "off") == 0 || strcmp(value, "no") == 0 ||
            strcmp(value, "0") == 0) {
            *(int *)field = 0;
            return 0;
        }
        set_err(err, errlen, "%s: \"%s\" is not allowed; allowed: true or false (on/off, yes/no)",
                k->name, shown(value, buf, sizeof buf));
        return FN_ERR_CONFIG;
    case KEY_ENUM:
        for (const char *const *w = k->words; *w; w++) {
            if (strcmp(*w, value) == 0) {
                snprintf(field, k->size, "%s", *w);
                return 0;
            }
        }
        {
            char allowed[128] = "";
            for (const char *const *w = k->words; *w; w++) {
                size_t len = strlen(allowed);
                snprintf(allowed + len, sizeof allowed - len, "%s\"%s\"",
                         w == k->words ? "" : (w[1] ? ", " : " or "), *w);
            }
            set_err(err, errlen, "%s: \"%s\" is not allowed; allowed: %s", k->name,
                    shown(value, buf, sizeof buf), allowed);
        }
        return FN_ERR_CONFIG;
    }
    return FN_ERR_CONFIG;
}

int fn_config_set(fn_config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
    if (!cfg || !key || !value) {
        set_err(err, errlen, "missing configuration key or value");
        return FN_ERR_INVALID;
    }
    const struct key *k = find_key(key);
    if (!k) {
        unknown_key_err(key, err, errlen);
        return FN_ERR_CONFIG;
    }
    fn_config tmp = *cfg;
    int rc = set_key(&tmp, k, value, err, errlen);
    if (rc == 0) *cfg = tmp;
    return rc;
}

int fn_config_validate(const fn_config *cfg, char *err, size_t errlen)
{
    if (cfg->jobs_owner_timeout_ms < 2 * (long long)cfg->jobs_heartbeat_ms) {
        set_err(err, errlen,
                "jobs.owner_timeout_ms (%d) must be at least twice jobs.heartbeat_ms (%d), or a "
                "live process would be taken for gone",
                cfg->jobs_owner_timeout_ms, cfg->jobs_heartbeat_ms);
        return FN_ERR_CONFIG;
    }
    return 0;
}

/* ---- The file format --------------------------------------------------------------------------
 *
 * Lines of `key = value`. Blank lines and lines starting with `#` are ignored; an unquoted value
 * ends at a `#` preceded by a blank (so `a#b` keeps its `#`); a value in double quotes may hold
 * anything, with \" and \\ as escapes. Blanks around keys and values are dropped. */

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Parses one line [p, end) into key and value buffers. Returns 0, 1 for an empty/comment line, or
 * -1 with a message in err. */
static int parse_line(const char *p, const char *end, char *key, size_t keylen, char *val,
                      size_t vallen, char *err, size_t errlen)
{
    while (p < end && is_blank(*p))
        p++;
    if (p == end || *p == '#') return 1;

    const char *k0 = p;
    while (p < end && *p != '=' && !is_blank(*p))
        p++;
    const char *k1 = p;
    while (p < end && is_blank(*p))
        p++;
    if (p == end || *p != '=' || k1 == k0) {
        set_err(err, errlen, "expected `key = value`");
        return -1;
    }
    if ((size_t)(k1 - k0) >= keylen) {
        set_err(err, errlen, "key too long");
        return -1;
    }
    for (const char *q = k0; q < k1; q++) {
        if (!(isalnum((unsigned char)*q) || *q == '.' || *q == '_' || *q == '-')) {
            set_err(err, errlen, "a key holds only letters, digits, '.', '_' and '-'");
            return -1;
        }
    }
    memcpy(key, k0, (size_t)(k1 - k0));
    key[k1 - k0] = '\0';
    p++; /* '=' */
    while (p < end && is_blank(*p))
        p++;

    size_t n = 0;
    if (p < end && *p == '"') {
        p++;
        for (;;) {
            if (p == end) {
                set_err(err, errlen, "unterminated quoted value (missing closing \")");
                return -1;
            }
            char c = *p++;
            if (c == '"') break;
            if (c == '\\') {
                if (p == end || (*p != '"' && *p != '\\')) {
                    set_err(err, errlen, "in a quoted value only \\\" and \\\\ are escapes");
                    return -1;
                }
                c = *p++;
            }
            if (n + 1 >= vallen) {
                set_err(err, errlen, "value too long");
                return -1;
            }
            val[n++] = c;
        }
        while (p < end && is_blank(*p))
            p++;
        if (p < end && *p != '#') {
            set_err(err, errlen, "unexpected text after the closing quote");
            return -1;
        }
    } else {
        const char *v0 = p;
        while (p < end && !(*p == '#' && p > v0 && is_blank(p[-1])))
            p++;
        const char *v1 = p;
        while (v1 > v0 && is_blank(v1[-1]))
            v1--;
        if ((size_t)(v1 - v0) >= vallen) {
            set_err(err, errlen, "value too long");
            return -1;
        }
        n = (size_t)(v1 - v0);
        memcpy(val, v0, n);
    }
    val[n] = '\0';
    return 0;
}

int fn_config_parse(fn_config *cfg, const char *text, size_t len, const char *origin, char *err,
                    size_t errlen)
{
    if (!cfg || (!text && len)) {
        set_err(err, errlen, "missing configuration text");
        return FN_ERR_INVALID;
    }
    if (!origin) origin = "configuration";
    fn_config tmp = *cfg;
    char key[128], val[2048], why[512];
    const char *p = text, *end = text + len;
    /* a UTF-8 byte order mark, as some editors write, is not part of the first key */
    if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) p += 3;
    for (size_t line = 1; p < end; line++) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        if (memchr(p, '\0', (size_t)(eol - p))) {
            set_err(err, errlen, "%s:%zu: the line holds a NUL byte (is this a text file?)", origin,
                    line);
            return FN_ERR_CONFIG;
        }
        int r = parse_line(p, eol, key, sizeof key, val, sizeof val, why, sizeof why);
        if (r < 0) {
            set_err(err, errlen, "%s:%zu: %s", origin, line, why);
            return FN_ERR_CONFIG;
        }
        if (r == 0 && fn_config_set(&tmp, key, val, why, sizeof why) < 0) {
            set_err(err, errlen, "%s:%zu: %s", origin, line, why);
            return FN_ERR_CONFIG;
        }
        p = eol < end ? eol + 1 : end;
    }
    *cfg = tmp;
    return 0;
}

int fn_config_load_file(fn_config *cfg, const char *path, char *err, size_t errlen)
{
    if (!cfg || !path) {
        set_err(err, errlen, "missing configuration file name");
        return FN_ERR_INVALID;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        set_err(err, errlen, "%s: %s", path, strerror(e));
        return e == ENOENT || e == ENOTDIR ? FN_ERR_NOT_FOUND
               : e == EACCES               ? FN_ERR_UNREADABLE
                                           : FN_ERR_IO;
    }
    /* a configuration file is small; refuse anything absurd instead of reading it all */
    const size_t max = 1 << 20;
    char *buf = malloc(max + 1);
    if (!buf) {
        fclose(f);
        set_err(err, errlen, "%s: out of memory", path);
        return FN_ERR_NOMEM;
    }
    size_t n = fread(buf, 1, max + 1, f);
    int rd_err = ferror(f);
    fclose(f);
    int rc;
    if (rd_err) {
        set_err(err, errlen, "%s: read error (is it a directory?)", path);
        rc = FN_ERR_IO;
    } else if (n > max) {
        set_err(err, errlen, "%s: larger than 1 MiB; not a configuration file", path);
        rc = FN_ERR_TOO_LARGE;
    } else {
        rc = fn_config_parse(cfg, buf, n, path, err, errlen);
    }
    free(buf);
    return rc;
}

/* FACENAMES_ + the key in upper case with '.' and '-' as '_'. */
static void env_name(const char *key, char *out, size_t outlen)
{
    size_t j = (size_t)snprintf(out, outlen, "FACENAMES_");
    for (const char *c = key; *c && j + 1 < outlen; c++)
        out[j++] = *c == '.' || *c == '-' ? '_' : (char)toupper((unsigned char)*c);
    out[j] = '\0';
}

int fn_config_env_name(const char *key, char *out, size_t outlen)
{
    if (!find_key(key)) return FN_ERR_NOT_FOUND;
    env_name(key, out, outlen);
    return 0;
}

int fn_config_apply_env(fn_config *cfg, char *err, size_t errlen)
{
    fn_config tmp = *cfg;
    for (size_t i = 0; i < N_KEYS; i++) {
        char name[96], why[512];
        env_name(keys[i].name, name, sizeof name);
        const char *v = getenv(name);
        if (!v || !*v) continue; /* an empty variable counts as unset */
        if (set_key(&tmp, &keys[i], v, why, sizeof why) < 0) {
            set_err(err, errlen, "environment variable %s: %s", name, why);
            return FN_ERR_CONFIG;
        }
    }
    *cfg = tmp;
    return 0;
}

/* Appends `s` to the growing buffer, in double quotes with escapes when `quote` is set. Returns 0
 * or -1 when out of memory. */
static int append(char **buf, size_t *len, size_t *cap, const char *s, int quote)
{
    size_t want = *len + 2 * strlen(s) + 4;
    if (want > *cap) {
        size_t ncap = want * 2;
        char *nb = realloc(*buf, ncap);
        if (!nb) return -1;
        *buf = nb;
        *cap = ncap;
    }
    char *o = *buf + *len;
    if (quote) *o++ = '"';
    for (const char *c = s; *c; c++) {
        if (quote && (*c == '"' || *c == '\\')) *o++ = '\\';
        *o++ = *c;
    }
    if (quote) *o++ = '"';
    *o = '\0';
    *len = (size_t)(o - *buf);
    return 0;
}

/* Whether the parser would read `s` back differently unless it is quoted. */
static int needs_quotes(const char *s)
{
    if (*s == '\0' || is_blank(*s) || *s == '"' || is_blank(s[strlen(s) - 1])) return 1;
    for (const char *c = s; *c; c++)
        if (*c == '#' || *c == '\\') return 1;
    return 0;
}

/* One key's value as text (the number, or the string unquoted). */
static int value_text(const fn_config *cfg, const struct key *k, char *out, size_t outlen)
{
    const char *field = (const char *)cfg + k->off;
    int n = 0;
    switch (k->kind) {
    case KEY_INT:
        n = snprintf(out, outlen, "%d", *(const int *)field);
        break;
    case KEY_SIZE:
        n = snprintf(out, outlen, "%zu", *(const size_t *)field);
        break;
    case KEY_DOUBLE:
        n = snprintf(out, outlen, "%.15g", *(const double *)field);
        break;
    case KEY_STR:
    case KEY_ENUM:
        n = snprintf(out, outlen, "%.*s", (int)strnlen(field, k->size), field);
        break;
    case KEY_BOOL:
        n = snprintf(out, outlen, "%s", *(const int *)field ? "true" : "false");
        break;
    }
    return n < 0 || (size_t)n >= outlen ? FN_ERR_INVALID : 0;
}

int fn_config_get(const fn_config *cfg, const char *key, char *out, size_t outlen)
{
    const struct key *k = key ? find_key(key) : NULL;
    if (!k) return FN_ERR_NOT_FOUND;
    return value_text(cfg, k, out, outlen);
}

char *fn_config_format(const fn_config *cfg)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    buf[0] = '\0';
    int bad = 0;
    char value[1100];
    for (size_t i = 0; i < N_KEYS && !bad; i++) {
        const struct key *k = &keys[i];
        bad |= append(&buf, &len, &cap, k->name, 0);
        bad |= append(&buf, &len, &cap, " = ", 0);
        bad |= value_text(cfg, k, value, sizeof value) != 0;
        if (!bad)
            bad |= append(&buf, &len, &cap, value,
                          (k->kind == KEY_STR || k->kind == KEY_ENUM) && needs_quotes(value));
        bad |= append(&buf, &len, &cap, "\n", 0);
    }
    if (bad) {
        free(buf);
        return NULL;
    }
    return buf;
}
