/* params.c: a job type's payload schema: checking a payload and resolving it into the payload that
 * is stored (fn_jobtype_resolve).
 *
 * What must stay true: the resolved payload has every key of the schema, in schema order, and
 * nothing else, so it is the job's complete settings (resume, retry and another process's worker
 * run the same job) and two enqueues with the same effective settings store the same text (which
 * is how an identical queued job is found again). Every refusal names the key, what was given and
 * what is allowed. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "facenames/jobtype.h"

static const char *type_name(fn_param_type t)
{
    switch (t) {
    case FN_PARAM_BOOL:
        return "true or false";
    case FN_PARAM_INT:
        return "an integer";
    case FN_PARAM_REAL:
        return "a number";
    case FN_PARAM_STRING:
        return "a non-empty string";
    case FN_PARAM_STRINGS:
        return "an array of non-empty strings";
    }
    return "?";
}

static void choices_text(const fn_param *p, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; p->choices && p->choices[i] && used + 1 < len; i++) {
        int n = snprintf(buf + used, len - used, "%s\"%s\"", i ? ", " : "", p->choices[i]);
        if (n < 0) break;
        used += (size_t)n < len - used ? (size_t)n : len - used - 1;
    }
}

/* Checks one value against its parameter; 0 or FN_ERR_INVALID with a sentence. */
static int check_value(const char *type, const fn_param *p, json_t *v, char *err, size_t errlen)
{
    char allowed[256];
    switch (p->type) {
    case FN_PARAM_BOOL:
        if (json_is_boolean(v)) return 0;
        break;
    case FN_PARAM_INT:
        if (json_is_integer(v)) {
            double x = (double)json_integer_value(v);
            if (x >= p->min && x <= p->max) return 0;
            snprintf(err, errlen,
                     "%s payload: \"%s\" is %lld; it must be an integer from %.0f to %.0f", type,
                     p->key, (long long)json_integer_value(v), p->min, p->max);
            return FN_ERR_INVALID;
        }
        break;
    case FN_PARAM_REAL:
        if (json_is_number(v)) {
            double x = json_number_value(v);
            if (isfinite(x) && x >= p->min && x <= p->max) return 0;
            snprintf(err, errlen, "%s payload: \"%s\" is %g; it must be a number from %g to %g",
                     type, p->key, x, p->min, p->max);
            return FN_ERR_INVALID;
        }
        break;
    case FN_PARAM_STRING:
        if (json_is_string(v) && json_string_length(v) > 0) {
            if (!p->choices) return 0;
            for (size_t i = 0; p->choices[i]; i++)
                if (strcmp(p->choices[i], json_string_value(v)) == 0) return 0;
            choices_text(p, allowed, sizeof allowed);
            snprintf(err, errlen, "%s payload: \"%s\" is \"%s\"; it must be one of %s", type,
                     p->key, json_string_value(v), allowed);
            return FN_ERR_INVALID;
        }
        break;
    case FN_PARAM_STRINGS:
        if (json_is_array(v)) {
            size_t i;
            json_t *x;
            json_array_foreach(v, i, x)
            {
                if (!json_is_string(x) || json_string_length(x) == 0) {
                    snprintf(err, errlen, "%s payload: \"%s\"[%zu] must be a non-empty string",
                             type, p->key, i);
                    return FN_ERR_INVALID;
                }
            }
            if ((double)json_array_size(v) >= p->min) return 0;
            snprintf(err, errlen, "%s payload: \"%s\" must name at least %.0f %s", type, p->key,
                     p->min, p->help ? p->help : "value(s)");
            return FN_ERR_INVALID;
        }
        break;
    }
    if (p->type == FN_PARAM_STRING && p->choices) {
        choices_text(p, allowed, sizeof allowed);
        snprintf(err, errlen, "%s payload: \"%s\" must be one of %s", type, p->key, allowed);
    } else {
        snprintf(err, errlen, "%s payload: \"%s\" must be %s", type, p->key, type_name(p->type));
    }
    return FN_ERR_INVALID;
}

/* The default of a parameter the payload leaves out: the configuration's value, or dflt. NULL
 * (with err set) when the key is required or the default is unusable. */
static json_t *default_value(const char *type, const fn_param *p, const fn_config *cfg, char *err,
                             size_t errlen)
{
    if (p->config_key && cfg) {
        char text[1100];
        if (fn_config_get(cfg, p->config_key, text, sizeof text) != 0) {
            snprintf(err, errlen, "%s: no configuration key \"%s\" for \"%s\"", type, p->config_key,
                     p->key);
            return NULL;
        }
        switch (p->type) {
        case FN_PARAM_INT:
            return json_integer(strtoll(text, NULL, 10));
        case FN_PARAM_REAL:
            return json_real(strtod(text, NULL));
        case FN_PARAM_BOOL:
            return json_boolean(strcmp(text, "true") == 0 || strcmp(text, "1") == 0);
        default:
            return json_string(text);
        }
    }
    if (!p->dflt) {
        snprintf(err, errlen, "%s payload: \"%s\" is required (%s%s%s)", type, p->key,
                 type_name(p->type), p->help ? ": " : "", p->help ? p->help : "");
        return NULL;
    }
    json_error_t jerr;
    json_t *v = json_loads(p->dflt, JSON_DECODE_ANY, &jerr);
    if (!v) snprintf(err, errlen, "%s: the default of \"%s\" is not JSON", type, p->key);
    return v;
}

static void known_keys(const fn_jobtype *t, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < t->n_params && used + 1 < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", t->params[i].key);
        if (n < 0) break;
        used += (size_t)n < len - used ? (size_t)n : len - used - 1;
    }
}

int fn_jobtype_resolve(const fn_jobtype *t, const char *payload, const fn_config *cfg,
                       char **resolved, char *err, size_t errlen)
{
    *resolved = NULL;
    json_error_t jerr;
    json_t *in = json_loads(payload && *payload ? payload : "{}", 0, &jerr);
    if (!in || !json_is_object(in)) {
        snprintf(err, errlen, "%s payload is not a JSON object (%s)", t->type,
                 in ? "another JSON value" : jerr.text);
        json_decref(in);
        return FN_ERR_INVALID;
    }
    int code = 0;
    const char *key;
    json_t *v;
    json_object_foreach(in, key, v)
    {
        size_t i = 0;
        while (i < t->n_params && strcmp(t->params[i].key, key) != 0)
            i++;
        if (i == t->n_params) {
            char known[512];
            known_keys(t, known, sizeof known);
            snprintf(err, errlen, "%s payload: unknown key \"%s\" (known: %s)", t->type, key,
                     known);
            code = FN_ERR_INVALID;
            break;
        }
    }
    json_t *out = json_object();
    for (size_t i = 0; !code && i < t->n_params; i++) {
        const fn_param *p = &t->params[i];
        json_t *given = json_object_get(in, p->key);
        json_t *val = given ? json_incref(given) : default_value(t->type, p, cfg, err, errlen);
        if (!val) {
            code = FN_ERR_INVALID;
            break;
        }
        /* An integral REAL given as 1 is stored as 1.0, so the stored text does not depend on how
         * the caller wrote it. */
        if (p->type == FN_PARAM_REAL && json_is_integer(val)) {
            json_t *r = json_real((double)json_integer_value(val));
            json_decref(val);
            val = r;
        }
        if ((code = check_value(t->type, p, val, err, errlen)) == 0)
            json_object_set_new(out, p->key, val);
        else
            json_decref(val);
    }
    if (!code && !(*resolved = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        code = FN_ERR_NOMEM;
    json_decref(out);
    json_decref(in);
    return code;
}
