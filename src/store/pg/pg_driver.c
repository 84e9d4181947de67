/* pg_driver.c: the libpq driver behind pg_driver.h (the PostgreSQL half of sql.h).
 *
 * A statement keeps its bindings as libpq parameter arrays: numbers are sent as text (the server
 * inferred each parameter's type when it prepared the statement, and text converts to whatever it
 * chose, where a binary int8 sent to an int4 parameter would be refused), text as text, blobs as
 * binary (bytea's binary form is the bytes themselves). The first step runs the statement with
 * PQexecPrepared and keeps the whole result: SQLite lets the store step one statement while it
 * runs others on the same connection, which a streamed (single-row mode) result would forbid.
 * Columns are read from that result, converted as SQLite converts. */
#include "store/pg/pg_driver.h"

#include <errno.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"
#include "store/pg/pg_copy.h"
#include "store/sql.h"

/* PostgreSQL type oids (pg_type.dat; stable across versions). */
enum {
    OID_BOOL = 16,
    OID_BYTEA = 17,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_OID = 26,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
    OID_NUMERIC = 1700,
};

/* Types whose binary form the column readers decode: the numbers, bytea, and the text types
 * (whose binary form is their text). */
static int binary_readable(Oid t)
{
    switch (t) {
    case OID_BOOL:
    case OID_BYTEA:
    case OID_INT8:
    case OID_INT2:
    case OID_INT4:
    case OID_OID:
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC:
    case 18:   /* "char" */
    case 19:   /* name */
    case 25:   /* text */
    case 114:  /* json */
    case 705:  /* unknown */
    case 1042: /* bpchar */
    case 1043: /* varchar */
        return 1;
    default:
        return 0;
    }
}

/* One server-side prepared statement, by translated text. */
typedef struct cached {
    struct cached *next;
    char *text; /* translated */
    char name[24];
    int nparams;
    int binary_ok; /* every result column has a binary form the readers decode */
    int ncols;     /* result columns, and their type oids (for bulk reads) */
    uint32_t *col_oids;
} cached;

#define CACHE_BUCKETS 256

struct fn_pg_conn {
    PGconn *pg;
    char *url_desc; /* "server /tmp/x port 5432 database postgres", for messages */
    char *msg;
    char sqlstate[6];
    int64_t changes;
    int binary;
    unsigned next_name;
    cached *cache[CACHE_BUCKETS];
};

/* A column value decoded for the current row (text of a number, bytes of a hex bytea). */
typedef struct colbuf {
    int row; /* the row it was decoded for, -1 none */
    char *buf;
    size_t cap;
    int len;
} colbuf;

typedef struct param {
    const char *val; /* NULL: SQL NULL */
    int len;
    int format; /* 0 text, 1 binary */
    char *owned;
    char num[32];
} param;

struct fn_pg_stmt {
    fn_pg_conn *c;
    const cached *prep;
    param *params;
    const char **vals;
    int *lens, *fmts;
    int bind_err;
    PGresult *res;
    int row, nrows, ncols;
    int done; /* 0 before the first step, 1 rows pending, 2 done or failed */
    colbuf *cols;
};

/* The dispatch in sql.h's implementation passes these through unchanged. */
_Static_assert((int)FN_PG_OK == (int)FN_SQL_OK && (int)FN_PG_ROW == (int)FN_SQL_ROW &&
                   (int)FN_PG_DONE == (int)FN_SQL_DONE,
               "step results as sql.h's");
_Static_assert((int)FN_PG_INTEGER == (int)FN_SQL_INTEGER && (int)FN_PG_FLOAT == (int)FN_SQL_FLOAT &&
                   (int)FN_PG_TEXT == (int)FN_SQL_TEXT && (int)FN_PG_BLOB == (int)FN_SQL_BLOB &&
                   (int)FN_PG_NULL == (int)FN_SQL_NULL,
               "column types as sql.h's");
_Static_assert((int)FN_PG_STATIC == (int)FN_SQL_STATIC &&
                   (int)FN_PG_TRANSIENT == (int)FN_SQL_TRANSIENT,
               "lifetimes as sql.h's");

/* ---- messages and errors -------------------------------------------------------------------- */

static void set_msg(fn_pg_conn *c, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_msg(fn_pg_conn *c, const char *sqlstate, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *m = NULL;
    if (vasprintf(&m, fmt, ap) < 0) m = NULL;
    va_end(ap);
    free(c->msg);
    c->msg = m;
    snprintf(c->sqlstate, sizeof c->sqlstate, "%s", sqlstate ? sqlstate : "");
}

/* libpq messages end in a newline (some in several lines); the store adds its own context. */
static char *trimmed(const char *s)
{
    char *t = strdup(s ? s : "");
    if (!t) return NULL;
    size_t n = strlen(t);
    while (n && (t[n - 1] == '\n' || t[n - 1] == ' '))
        t[--n] = 0;
    for (char *p = t; *p; p++)
        if (*p == '\n') *p = ' ';
    return t;
}

static int lost(fn_pg_conn *c, const char *why)
{
    char *w = trimmed(why);
    set_msg(c, "08006",
            "lost the connection to the PostgreSQL %s: %s; check that the server is running and "
            "reachable, then open the library again",
            c->url_desc ? c->url_desc : "server", w ? w : "");
    free(w);
    return FN_ERR_IO;
}

static int map_sqlstate(const char *st)
{
    if (!st || !*st) return FN_ERR_DB;
    if (!strcmp(st, "40001") || !strcmp(st, "40P01") || !strcmp(st, "55P03")) return FN_ERR_BUSY;
    if (!strcmp(st, "53100")) return FN_ERR_FULL;
    if (!strcmp(st, "25006")) return FN_ERR_READONLY;
    if (!strcmp(st, "53200")) return FN_ERR_NOMEM;
    if (!strncmp(st, "08", 2)) return FN_ERR_IO;
    /* admin_shutdown, crash_shutdown, cannot_connect_now: the server is going or gone. */
    if (!strncmp(st, "57P0", 4)) return FN_ERR_IO;
    if (!strncmp(st, "XX001", 5) || !strncmp(st, "XX002", 5)) return FN_ERR_CORRUPT;
    return FN_ERR_DB;
}

/* The fn_err of a failed result (or of no result), with the message set. */
static int fail_res(fn_pg_conn *c, const PGresult *r)
{
    if (PQstatus(c->pg) == CONNECTION_BAD)
        return lost(c, r ? PQresultErrorMessage(r) : PQerrorMessage(c->pg));
    if (!r) {
        char *w = trimmed(PQerrorMessage(c->pg));
        set_msg(c, NULL, "%s", w && *w ? w : "out of memory");
        free(w);
        return FN_ERR_NOMEM;
    }
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    int code = map_sqlstate(st);
    char *w = trimmed(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
    if (!w || !*w) {
        free(w);
        w = trimmed(PQresultErrorMessage(r));
    }
    const char *detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
    if (code == FN_ERR_IO)
        set_msg(c, st,
                "the PostgreSQL %s: %s (SQLSTATE %s); check that the server is running and "
                "reachable, then open the library again",
                c->url_desc ? c->url_desc : "server", w ? w : "", st ? st : "");
    else if (detail)
        set_msg(c, st, "%s (%s) (SQLSTATE %s)", w ? w : "", detail, st ? st : "");
    else
        set_msg(c, st, "%s (SQLSTATE %s)", w ? w : "", st ? st : "");
    free(w);
    return code;
}

static void note_changes(fn_pg_conn *c, const PGresult *r)
{
    const char *cmd = PQcmdStatus((PGresult *)r);
    if (!strncmp(cmd, "INSERT", 6) || !strncmp(cmd, "UPDATE", 6) || !strncmp(cmd, "DELETE", 6) ||
        !strncmp(cmd, "MERGE", 5))
        c->changes = strtoll(PQcmdTuples((PGresult *)r), NULL, 10);
}

/* Server notices (such as "relation already exists, skipping") would go to stderr; a library
 * does not print. */
static void quiet(void *arg, const PGresult *r)
{
    (void)arg;
    (void)r;
}

/* ---- connections ------------------------------------------------------------------------------
 */

int fn_pg_connect(const char *url, fn_pg_conn **out)
{
    fn_pg_conn *c = calloc(1, sizeof *c);
    *out = c;
    if (!c) return FN_ERR_NOMEM;
    c->binary = 1;
    c->pg = PQconnectdb(url ? url : "");
    if (!c->pg) {
        set_msg(c, NULL, "out of memory connecting to PostgreSQL");
        return FN_ERR_NOMEM;
    }
    const char *host = PQhost(c->pg), *port = PQport(c->pg), *db = PQdb(c->pg);
    if (asprintf(&c->url_desc, "server %s port %s database %s", host && *host ? host : "(default)",
                 port && *port ? port : "(default)", db && *db ? db : "(default)") < 0)
        c->url_desc = NULL;
    if (PQstatus(c->pg) != CONNECTION_OK) {
        char *w = trimmed(PQerrorMessage(c->pg));
        set_msg(c, "08001",
                "cannot connect to the PostgreSQL %s: %s; check that the server is running, that "
                "this host may connect, and the address given (--library or db.url)",
                c->url_desc ? c->url_desc : "server", w ? w : "");
        free(w);
        return FN_ERR_IO;
    }
    PQsetNoticeReceiver(c->pg, quiet, NULL);
    return FN_OK;
}

void fn_pg_close(fn_pg_conn *c)
{
    if (!c) return;
    for (int b = 0; b < CACHE_BUCKETS; b++) {
        for (cached *e = c->cache[b], *n; e; e = n) {
            n = e->next;
            free(e->col_oids);
            free(e->text);
            free(e);
        }
    }
    if (c->pg) PQfinish(c->pg);
    free(c->url_desc);
    free(c->msg);
    free(c);
}

const char *fn_pg_errmsg(const fn_pg_conn *c)
{
    return c && c->msg ? c->msg : "";
}

void fn_pg_set_errmsg(fn_pg_conn *c, const char *msg)
{
    set_msg(c, NULL, "%s", msg ? msg : "");
}

const char *fn_pg_sqlstate(const fn_pg_conn *c)
{
    return c ? c->sqlstate : "";
}

void fn_pg_set_binary_results(fn_pg_conn *c, int binary)
{
    c->binary = binary != 0;
}

int64_t fn_pg_changes(fn_pg_conn *c)
{
    return c->changes;
}

int fn_pg_exec(fn_pg_conn *c, const char *sql)
{
    PGresult *r = PQexec(c->pg, sql);
    /* With several statements, PQexec returns the last result, or the first failure. */
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int code = FN_OK;
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK || s == PGRES_EMPTY_QUERY)
        note_changes(c, r);
    else
        code = fail_res(c, r);
    PQclear(r);
    return code;
}

/* ---- ?N -> $N ---------------------------------------------------------------------------------
 */

/* Copies `sql` rewriting SQLite parameters outside literals, identifiers and comments: `?NNN`
 * becomes `$NNN`, a bare `?` the next number after the largest so far (SQLite's rule). PostgreSQL
 * dollar-quoted strings ($tag$ ... $tag$) are copied as they are. */
/* Parameter numbers beyond this are clamped (SQLite's default limit is 32766). */
#define MAX_PARAMS 32766

static bool ident_char(char ch)
{
    return ch == '_' || ch == '$' || (ch >= '0' && ch <= '9') ||
           ((ch | 32) >= 'a' && (ch | 32) <= 'z') || (unsigned char)ch >= 0x80;
}

/* As fn_pg_translate; when `used` is not NULL it gets a calloc'd array of *nparams flags, 1 for
 * each parameter number that appears in the text (the caller frees it). When `vals` is not NULL,
 * each `?N` becomes the literal value vals[N-1] (NULL past nvals) instead of `$N`: for COPY,
 * which takes no parameters. */
static char *translate_with(const char *sql, int *nparams, unsigned char **used,
                            const int64_t *vals, int nvals)
{
    size_t n = strlen(sql);
    /* A bare `?` may grow to `$` and up to 10 digits, or to a literal
     * '-9223372036854775808'::bigint. */
    char *out = malloc(n * (vals ? 32 : 11) + 1), *o = out;
    if (!out) return NULL;
    int maxp = 0;
    /* Which numbers appear (sized for the largest possible; trimmed by the caller's use). */
    unsigned char *seen = used ? calloc(MAX_PARAMS, 1) : NULL;
    if (used && !seen) {
        free(out);
        return NULL;
    }
    const char *p = sql;
    while (*p) {
        if (*p == '\'' || *p == '"') {
            /* A string or quoted identifier; a doubled quote is an escaped one. E'..' strings
             * also take backslash escapes. */
            char q = *p;
            bool esc = q == '\'' && p > sql && (p[-1] == 'E' || p[-1] == 'e') &&
                       (p - 1 == sql || !(p[-2] == '_' || (p[-2] >= '0' && p[-2] <= '9') ||
                                          ((p[-2] | 32) >= 'a' && (p[-2] | 32) <= 'z')));
            *o++ = *p++;
            while (*p) {
                if (esc && *p == '\\' && p[1]) {
                    *o++ = *p++;
                    *o++ = *p++;
                    continue;
                }
                if (*p == q) {
                    if (p[1] == q) {
                        *o++ = *p++;
                        *o++ = *p++;
                        continue;
                    }
                    break;
                }
                *o++ = *p++;
            }
            if (*p) *o++ = *p++;
        } else if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                *o++ = *p++;
        } else if (p[0] == '/' && p[1] == '*') {
            *o++ = *p++;
            *o++ = *p++;
            while (*p && !(p[0] == '*' && p[1] == '/'))
                *o++ = *p++;
            if (*p) {
                *o++ = *p++;
                *o++ = *p++;
            }
        } else if (*p == '$' && !(p > sql && ident_char(p[-1])) &&
                   (p[1] == '$' || ((p[1] | 32) >= 'a' && (p[1] | 32) <= 'z') || p[1] == '_')) {
            /* $tag$ starts a dollar-quoted string only if the tag is closed by a `$`, and not
             * inside an identifier (PostgreSQL allows `$` after an identifier's first letter). */
            const char *t = p + 1;
            while (*t == '_' || ((*t | 32) >= 'a' && (*t | 32) <= 'z') || (*t >= '0' && *t <= '9'))
                t++;
            if (*t != '$') {
                *o++ = *p++;
                continue;
            }
            size_t tl = (size_t)(t - p) + 1;
            const char *end = NULL;
            for (const char *s = t + 1; *s; s++)
                if (*s == '$' && !strncmp(s, p, tl)) {
                    end = s;
                    break;
                }
            const char *stop = end ? end + tl : p + strlen(p);
            memcpy(o, p, (size_t)(stop - p));
            o += stop - p;
            p = stop;
        } else if (*p == '$' && p[1] >= '0' && p[1] <= '9' && !(p > sql && ident_char(p[-1]))) {
            /* Already PostgreSQL's form: count it. */
            *o++ = *p++;
            long v = 0;
            while (*p >= '0' && *p <= '9') {
                v = v * 10 + (*p - '0');
                if (v > MAX_PARAMS) v = MAX_PARAMS;
                *o++ = *p++;
            }
            if (v > maxp) maxp = (int)v;
            if (seen && v > 0) seen[v - 1] = 1;
        } else if (*p == '?') {
            p++;
            long v = 0;
            bool digits = false;
            while (*p >= '0' && *p <= '9') {
                v = v * 10 + (*p - '0');
                if (v > MAX_PARAMS) v = MAX_PARAMS;
                digits = true;
                p++;
            }
            if (!digits) v = maxp + 1;
            if (v > MAX_PARAMS) v = MAX_PARAMS;
            if (v > maxp) maxp = (int)v;
            if (seen && v > 0) seen[v - 1] = 1;
            if (!vals)
                o += sprintf(o, "$%ld", v);
            else if (v >= 1 && v <= nvals)
                o += sprintf(o, "'%lld'::bigint", (long long)vals[v - 1]);
            else
                o += sprintf(o, "NULL");
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    if (nparams) *nparams = maxp;
    if (used) *used = seen;
    return out;
}

static char *translate(const char *sql, int *nparams, unsigned char **used)
{
    return translate_with(sql, nparams, used, NULL, 0);
}

char *fn_pg_translate(const char *sql, int *nparams)
{
    return translate(sql, nparams, NULL);
}

/* ---- statements -------------------------------------------------------------------------------
 */

static unsigned hash_text(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

int fn_pg_prepare(fn_pg_conn *c, const char *sql, fn_pg_stmt **out)
{
    *out = NULL;
    int np = 0;
    unsigned char *used = NULL;
    char *text = translate(sql, &np, &used);
    if (!text) {
        set_msg(c, NULL, "out of memory preparing a statement");
        return FN_ERR_NOMEM;
    }
    unsigned b = hash_text(text) % CACHE_BUCKETS;
    cached *e = c->cache[b];
    while (e && strcmp(e->text, text))
        e = e->next;
    if (e) {
        free(text);
        free(used);
    } else {
        e = calloc(1, sizeof *e);
        if (!e) {
            free(text);
            free(used);
            set_msg(c, NULL, "out of memory preparing a statement");
            return FN_ERR_NOMEM;
        }
        e->text = text;
        e->nparams = np;
        snprintf(e->name, sizeof e->name, "fn%u", c->next_name++);
        /* A number the text skips (SQLite lets a statement use ?1 and ?3 only, and the store's
         * statements share numbering across variants) leaves the server nothing to infer its
         * type from: declare those as text, which accepts whatever is bound (and is unused). The
         * others are left for the server to infer. */
        Oid *types = np ? calloc((size_t)np, sizeof *types) : NULL;
        for (int k = 0; types && k < np; k++)
            types[k] = used[k] ? 0 : 25 /* text */;
        free(used);
        PGresult *r = np && !types ? NULL : PQprepare(c->pg, e->name, text, np, types);
        free(types);
        if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
            int code = fail_res(c, r);
            PQclear(r);
            free(e->text);
            free(e);
            return code;
        }
        PQclear(r);
        /* Which result types come back: binary results only when the readers know every one's
         * binary form (a timestamp's is microseconds since 2000, jsonb's has a version byte);
         * otherwise this statement's results come as text, which reads right for any type. */
        r = PQdescribePrepared(c->pg, e->name);
        if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
            int code = fail_res(c, r);
            PQclear(r);
            free(e->text);
            free(e);
            return code;
        }
        e->binary_ok = 1;
        e->ncols = PQnfields(r);
        e->col_oids = e->ncols ? calloc((size_t)e->ncols, sizeof *e->col_oids) : NULL;
        if (e->ncols && !e->col_oids) {
            PQclear(r);
            free(e->text);
            free(e);
            set_msg(c, NULL, "out of memory preparing a statement");
            return FN_ERR_NOMEM;
        }
        for (int k = 0; k < e->ncols; k++) {
            e->col_oids[k] = PQftype(r, k);
            if (!binary_readable(PQftype(r, k))) e->binary_ok = 0;
        }
        PQclear(r);
        e->next = c->cache[b];
        c->cache[b] = e;
    }
    fn_pg_stmt *st = calloc(1, sizeof *st);
    int n = e->nparams;
    if (st && n) {
        st->params = calloc((size_t)n, sizeof *st->params);
        st->vals = calloc((size_t)n, sizeof *st->vals);
        st->lens = calloc((size_t)n, sizeof *st->lens);
        st->fmts = calloc((size_t)n, sizeof *st->fmts);
    }
    if (!st || (n && (!st->params || !st->vals || !st->lens || !st->fmts))) {
        if (st) {
            free(st->params);
            free(st->vals);
            free(st->lens);
            free(st->fmts);
            free(st);
        }
        set_msg(c, NULL, "out of memory preparing a statement");
        return FN_ERR_NOMEM;
    }
    st->c = c;
    st->prep = e;
    *out = st;
    return FN_OK;
}

static void drop_result(fn_pg_stmt *st)
{
    PQclear(st->res);
    st->res = NULL;
    st->row = st->nrows = 0;
    for (int i = 0; i < st->ncols; i++)
        st->cols[i].row = -1;
}

void fn_pg_finalize(fn_pg_stmt *st)
{
    if (!st) return;
    drop_result(st);
    for (int i = 0; i < st->prep->nparams; i++)
        free(st->params[i].owned);
    for (int i = 0; i < st->ncols; i++)
        free(st->cols[i].buf);
    free(st->cols);
    free(st->params);
    free(st->vals);
    free(st->lens);
    free(st->fmts);
    free(st);
}

int fn_pg_bind_parameter_count(fn_pg_stmt *st)
{
    return st->prep->nparams;
}

static param *slot(fn_pg_stmt *st, int i)
{
    if (i < 1 || i > st->prep->nparams) return NULL;
    param *p = &st->params[i - 1];
    free(p->owned);
    p->owned = NULL;
    p->val = NULL;
    p->len = 0;
    p->format = 0;
    return p;
}

void fn_pg_bind_null(fn_pg_stmt *st, int i)
{
    slot(st, i);
}

void fn_pg_bind_int64(fn_pg_stmt *st, int i, int64_t v)
{
    param *p = slot(st, i);
    if (!p) return;
    p->len = snprintf(p->num, sizeof p->num, "%lld", (long long)v);
    p->val = p->num;
}

void fn_pg_bind_int(fn_pg_stmt *st, int i, int v)
{
    fn_pg_bind_int64(st, i, v);
}

void fn_pg_bind_double(fn_pg_stmt *st, int i, double v)
{
    param *p = slot(st, i);
    if (!p) return;
    if (isnan(v))
        p->len = snprintf(p->num, sizeof p->num, "NaN");
    else if (isinf(v))
        p->len = snprintf(p->num, sizeof p->num, v > 0 ? "Infinity" : "-Infinity");
    else
        p->len = snprintf(p->num, sizeof p->num, "%.17g", v);
    p->val = p->num;
}

void fn_pg_bind_text(fn_pg_stmt *st, int i, const char *text, int n, fn_pg_lifetime life)
{
    param *p = slot(st, i);
    if (!p || !text) return;
    /* Text parameters go as C strings: a length that stops short of the NUL needs a copy. */
    if (n < 0 && life == FN_PG_STATIC) {
        p->val = text;
        p->len = (int)strlen(text);
        return;
    }
    size_t len = n < 0 ? strlen(text) : strnlen(text, (size_t)n);
    p->owned = malloc(len + 1);
    if (!p->owned) {
        st->bind_err = FN_ERR_NOMEM;
        return;
    }
    memcpy(p->owned, text, len);
    p->owned[len] = 0;
    p->val = p->owned;
    p->len = (int)len;
}

void fn_pg_bind_blob(fn_pg_stmt *st, int i, const void *data, int n, fn_pg_lifetime life)
{
    param *p = slot(st, i);
    if (!p || !data) return;
    if (n < 0) n = 0;
    p->format = 1;
    p->len = n;
    if (life == FN_PG_STATIC || n == 0) {
        p->val = n ? data : "";
        return;
    }
    p->owned = malloc((size_t)n);
    if (!p->owned) {
        st->bind_err = FN_ERR_NOMEM;
        p->val = NULL;
        return;
    }
    memcpy(p->owned, data, (size_t)n);
    p->val = p->owned;
}

void fn_pg_clear_bindings(fn_pg_stmt *st)
{
    for (int i = 1; i <= st->prep->nparams; i++)
        slot(st, i);
    st->bind_err = 0;
}

void fn_pg_reset(fn_pg_stmt *st)
{
    drop_result(st);
    st->done = 0;
}

int fn_pg_step(fn_pg_stmt *st)
{
    fn_pg_conn *c = st->c;
    if (st->done == 1) {
        if (++st->row < st->nrows) return FN_PG_ROW;
        st->done = 2;
        return FN_PG_DONE;
    }
    fn_pg_reset(st);
    if (st->bind_err) {
        int code = st->bind_err;
        set_msg(c, NULL, "out of memory binding a parameter");
        st->done = 2;
        return code;
    }
    int n = st->prep->nparams;
    for (int i = 0; i < n; i++) {
        st->vals[i] = st->params[i].val;
        st->lens[i] = st->params[i].len;
        st->fmts[i] = st->params[i].format;
    }
    PGresult *r = PQexecPrepared(c->pg, st->prep->name, n, st->vals, st->lens, st->fmts,
                                 c->binary && st->prep->binary_ok);
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
        int code = fail_res(c, r);
        PQclear(r);
        st->done = 2;
        return code;
    }
    note_changes(c, r);
    int nc = PQnfields(r);
    if (nc > st->ncols) {
        colbuf *cb = realloc(st->cols, (size_t)nc * sizeof *cb);
        if (!cb) {
            PQclear(r);
            set_msg(c, NULL, "out of memory reading a result");
            st->done = 2;
            return FN_ERR_NOMEM;
        }
        memset(cb + st->ncols, 0, (size_t)(nc - st->ncols) * sizeof *cb);
        st->cols = cb;
        st->ncols = nc;
    }
    for (int i = 0; i < st->ncols; i++)
        st->cols[i].row = -1;
    st->res = r;
    st->nrows = PQntuples(r);
    st->row = 0;
    if (st->nrows == 0) {
        st->done = 2;
        return FN_PG_DONE;
    }
    st->done = 1;
    return FN_PG_ROW;
}

/* ---- columns ----------------------------------------------------------------------------------
 */

int fn_pg_column_count(fn_pg_stmt *st)
{
    return st->res ? PQnfields(st->res) : 0;
}

static bool have(fn_pg_stmt *st, int i)
{
    return st->res && st->done == 1 && i >= 0 && i < PQnfields(st->res);
}

static bool is_null(fn_pg_stmt *st, int i)
{
    return !have(st, i) || PQgetisnull(st->res, st->row, i);
}

static bool binfmt(fn_pg_stmt *st, int i)
{
    return PQfformat(st->res, i) == 1;
}

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int k = 0; k < n; k++)
        v = v << 8 | p[k];
    return v;
}

/* Binary numeric: int16 ndigits, int16 weight, uint16 sign, int16 dscale, then base-10000
 * digits. Sets *integral when it has no fraction and fits int64 (the value in *iv). */
static double numeric_bin(const unsigned char *p, int len, bool *integral, int64_t *iv)
{
    *integral = false;
    *iv = 0;
    if (len < 8) return 0;
    int nd = (int16_t)be(p, 2), weight = (int16_t)be(p + 2, 2);
    unsigned sign = (unsigned)be(p + 4, 2);
    int dscale = (int16_t)be(p + 6, 2);
    if (sign == 0xC000) return NAN;
    if (sign == 0xD000) return INFINITY;
    if (sign == 0xF000) return -INFINITY;
    if (len < 8 + 2 * nd) return 0;
    double d = 0;
    __int128 acc = 0;
    bool fits = dscale == 0;
    for (int k = 0; k < nd; k++) {
        int dig = (int)be(p + 8 + 2 * k, 2);
        d += dig * pow(10000.0, weight - k);
        if (weight - k < 0) {
            if (dig) fits = false;
            continue;
        }
        if (fits) {
            __int128 m = dig;
            for (int e = 0; e < weight - k && fits; e++) {
                m *= 10000;
                if (m > (__int128)INT64_MAX + 1) fits = false;
            }
            acc += m;
            if (acc > (__int128)INT64_MAX + 1) fits = false;
        }
    }
    if (sign == 0x4000) {
        d = -d;
        acc = -acc;
    }
    if (fits && acc >= INT64_MIN && acc <= INT64_MAX) {
        *integral = true;
        *iv = (int64_t)acc;
    }
    return d;
}

/* Whether a text numeric has no fraction digits (and so reads as an integer). */
static bool numeric_text_integral(const char *s)
{
    if (!strchr(s, '.') && !strchr(s, 'e') && !strchr(s, 'E') && !strchr(s, 'N') &&
        !strchr(s, 'I')) {
        errno = 0;
        (void)strtoll(s, NULL, 10);
        return errno != ERANGE;
    }
    return false;
}

int fn_pg_column_type(fn_pg_stmt *st, int i)
{
    if (is_null(st, i)) return FN_PG_NULL;
    switch (PQftype(st->res, i)) {
    case OID_BOOL:
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        return FN_PG_INTEGER;
    case OID_FLOAT4:
    case OID_FLOAT8:
        return FN_PG_FLOAT;
    case OID_BYTEA:
        return FN_PG_BLOB;
    case OID_NUMERIC: {
        const char *v = PQgetvalue(st->res, st->row, i);
        if (binfmt(st, i)) {
            bool integral;
            int64_t iv;
            numeric_bin((const unsigned char *)v, PQgetlength(st->res, st->row, i), &integral, &iv);
            return integral ? FN_PG_INTEGER : FN_PG_FLOAT;
        }
        return numeric_text_integral(v) ? FN_PG_INTEGER : FN_PG_FLOAT;
    }
    default:
        return FN_PG_TEXT;
    }
}

/* The raw bytes of a text-like value. */
static const char *raw(fn_pg_stmt *st, int i, int *len)
{
    *len = PQgetlength(st->res, st->row, i);
    return PQgetvalue(st->res, st->row, i);
}

/* SQLite's conversion of a double to an integer: truncation, saturating, NaN -> 0. */
static int64_t d2i(double d)
{
    if (isnan(d)) return 0;
    if (d >= 9223372036854775807.0) return INT64_MAX;
    if (d <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)d;
}

/* SQLite's conversion of text to an integer: the leading integer (or real) prefix, else 0. */
static int64_t text2i(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end == '.' || *end == 'e' || *end == 'E') return d2i(strtod(s, NULL));
    return v;
}

int64_t fn_pg_column_int64(fn_pg_stmt *st, int i)
{
    if (is_null(st, i)) return 0;
    int len;
    const char *v = raw(st, i, &len);
    Oid t = PQftype(st->res, i);
    bool bin = binfmt(st, i);
    switch (t) {
    case OID_BOOL:
        return bin ? (len && v[0] != 0) : v[0] == 't';
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        if (bin) {
            uint64_t u = be((const unsigned char *)v, len);
            if (t == OID_INT2) return (int16_t)u;
            if (t == OID_INT4) return (int32_t)u;
            if (t == OID_OID) return (uint32_t)u;
            return (int64_t)u;
        }
        return strtoll(v, NULL, 10);
    case OID_FLOAT4:
    case OID_FLOAT8:
    case OID_NUMERIC:
        if (t == OID_NUMERIC && fn_pg_column_type(st, i) == FN_PG_INTEGER) {
            if (!bin) return strtoll(v, NULL, 10);
            bool integral;
            int64_t iv;
            numeric_bin((const unsigned char *)v, len, &integral, &iv);
            return iv;
        }
        return d2i(fn_pg_column_double(st, i));
    case OID_BYTEA:
        return text2i(fn_pg_column_text(st, i));
    default:
        return text2i(v);
    }
}

int fn_pg_column_int(fn_pg_stmt *st, int i)
{
    /* SQLite keeps the low 32 bits. */
    return (int)(uint32_t)(uint64_t)fn_pg_column_int64(st, i);
}

double fn_pg_column_double(fn_pg_stmt *st, int i)
{
    if (is_null(st, i)) return 0;
    int len;
    const char *v = raw(st, i, &len);
    Oid t = PQftype(st->res, i);
    bool bin = binfmt(st, i);
    switch (t) {
    case OID_FLOAT8:
        if (bin) {
            uint64_t u = be((const unsigned char *)v, 8);
            double d;
            memcpy(&d, &u, sizeof d);
            return d;
        }
        return strtod(v, NULL);
    case OID_FLOAT4:
        if (bin) {
            uint32_t u = (uint32_t)be((const unsigned char *)v, 4);
            float f;
            memcpy(&f, &u, sizeof f);
            return f;
        }
        return strtod(v, NULL);
    case OID_NUMERIC:
        if (bin) {
            bool integral;
            int64_t iv;
            return numeric_bin((const unsigned char *)v, len, &integral, &iv);
        }
        return strtod(v, NULL);
    case OID_BOOL:
    case OID_INT2:
    case OID_INT4:
    case OID_INT8:
    case OID_OID:
        return (double)fn_pg_column_int64(st, i);
    case OID_BYTEA:
        return strtod(fn_pg_column_text(st, i), NULL);
    default:
        return strtod(v, NULL);
    }
}

static char *colbuf_reserve(colbuf *cb, size_t n)
{
    if (cb->cap < n) {
        char *b = realloc(cb->buf, n);
        if (!b) return NULL;
        cb->buf = b;
        cb->cap = n;
    }
    return cb->buf;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if ((ch | 32) >= 'a' && (ch | 32) <= 'f') return (ch | 32) - 'a' + 10;
    return -1;
}

/* Decodes column i of the current row into its buffer (text of a number, bytes of a text-format
 * bytea); NULL when it needs none (the raw value is the answer) or memory ran out. */
static colbuf *decoded(fn_pg_stmt *st, int i)
{
    colbuf *cb = &st->cols[i];
    if (cb->row == st->row) return cb;
    int type = fn_pg_column_type(st, i);
    Oid t = PQftype(st->res, i);
    if (type == FN_PG_INTEGER) {
        if (!colbuf_reserve(cb, 32)) return NULL;
        cb->len = snprintf(cb->buf, 32, "%lld", (long long)fn_pg_column_int64(st, i));
    } else if (type == FN_PG_FLOAT) {
        if (!colbuf_reserve(cb, 40)) return NULL;
        double d = fn_pg_column_double(st, i);
        if (isnan(d)) {
            cb->len = 0;
            cb->buf[0] = 0; /* SQLite stores NaN as NULL */
        } else if (isinf(d)) {
            cb->len = snprintf(cb->buf, 40, d > 0 ? "Inf" : "-Inf");
        } else {
            cb->len = snprintf(cb->buf, 40, "%.15g", d);
            if (!strpbrk(cb->buf, ".e")) cb->len += snprintf(cb->buf + cb->len, 4, ".0");
        }
    } else if (t == OID_BYTEA && !binfmt(st, i)) {
        int len;
        const char *v = raw(st, i, &len);
        if (len < 2 || v[0] != '\\' || v[1] != 'x') return NULL; /* escape format: not ours */
        int nb = (len - 2) / 2;
        if (!colbuf_reserve(cb, (size_t)nb + 1)) return NULL;
        for (int k = 0; k < nb; k++)
            cb->buf[k] = (char)(hexval(v[2 + 2 * k]) << 4 | hexval(v[3 + 2 * k]));
        cb->buf[nb] = 0;
        cb->len = nb;
    } else {
        return NULL;
    }
    cb->row = st->row;
    return cb;
}

const char *fn_pg_column_text(fn_pg_stmt *st, int i)
{
    if (is_null(st, i)) return NULL;
    colbuf *cb = decoded(st, i);
    if (cb) return cb->buf;
    int len;
    return raw(st, i, &len); /* libpq ends every value with a NUL, binary ones too */
}

const void *fn_pg_column_blob(fn_pg_stmt *st, int i)
{
    if (is_null(st, i)) return NULL;
    if (fn_pg_column_bytes(st, i) == 0) return NULL;
    colbuf *cb = decoded(st, i);
    if (cb) return cb->buf;
    int len;
    return raw(st, i, &len);
}

int fn_pg_column_bytes(fn_pg_stmt *st, int i)
{
    if (is_null(st, i)) return 0;
    colbuf *cb = decoded(st, i);
    if (cb) return cb->len;
    int len;
    raw(st, i, &len);
    return len;
}

/* ---- bulk reads: COPY (query) TO STDOUT (FORMAT binary) ------------------------------------- */

/* Reads what is left of a COPY OUT stream (when `ended` is 0: PQgetCopyData has not yet said -1)
 * and its final result, so the connection can take the next command; FN_OK when the server
 * finished the COPY without error. */
static int copy_drain(fn_pg_conn *c, int ended)
{
    char *buf = NULL;
    int n = -1;
    while (!ended && (n = PQgetCopyData(c->pg, &buf, 0)) > 0)
        PQfreemem(buf);
    int code = FN_OK;
    PGresult *r;
    while ((r = PQgetResult(c->pg))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && code == FN_OK) code = fail_res(c, r);
        PQclear(r);
    }
    if (n == -2 && code == FN_OK) code = lost(c, PQerrorMessage(c->pg));
    return code;
}

int fn_pg_copy_rows(fn_pg_conn *c, const char *sql, const int64_t *params, int nparams, int ncols,
                    fn_pg_copy_row_fn row, void *ctx)
{
    /* The statement prepared (and cached) as it is for stepping tells the column types, which
     * the binary COPY stream does not carry; it also checks the SQL once with the server's own
     * error message. */
    fn_pg_stmt *st = NULL;
    int code = fn_pg_prepare(c, sql, &st);
    if (code) return code;
    const cached *e = st->prep;
    fn_pg_finalize(st);
    if (e->ncols != ncols) {
        set_msg(c, NULL, "a bulk read expected %d columns and the query returns %d", ncols,
                e->ncols);
        return FN_ERR_STATE;
    }
    fn_pg_copy p;
    if ((code = fn_pg_copy_begin(&p, e->col_oids, ncols, row, ctx))) {
        set_msg(c, NULL, "%s", p.err);
        fn_pg_copy_free(&p);
        return code;
    }
    char *q = translate_with(sql, NULL, NULL, params, nparams);
    char *text = NULL;
    if (!q || asprintf(&text, "COPY (%s) TO STDOUT (FORMAT binary)", q) < 0) text = NULL;
    free(q);
    if (!text) {
        set_msg(c, NULL, "out of memory building a bulk read");
        fn_pg_copy_free(&p);
        return FN_ERR_NOMEM;
    }
    PGresult *r = PQexec(c->pg, text);
    free(text);
    if (!r || PQresultStatus(r) != PGRES_COPY_OUT) {
        code = fail_res(c, r);
        PQclear(r);
        fn_pg_copy_free(&p);
        return code;
    }
    PQclear(r);
    char *buf = NULL;
    int n;
    code = FN_OK;
    while ((n = PQgetCopyData(c->pg, &buf, 0)) > 0) {
        code = fn_pg_copy_feed(&p, buf, (size_t)n);
        PQfreemem(buf);
        if (code) break;
    }
    if (code) {
        /* The parser or the reader stopped: the rest of the stream is read and dropped. A reader's
         * error is its own (its message, if any, is where it put it); damage gets the parser's. */
        copy_drain(c, 0);
        if (!p.reader_stopped) set_msg(c, NULL, "%s", p.err);
        fn_pg_copy_free(&p);
        return code;
    }
    int end = copy_drain(c, 1);
    if (end == FN_OK && n == -1) {
        code = fn_pg_copy_end(&p);
        if (code) set_msg(c, NULL, "%s", p.err);
    } else {
        code = end != FN_OK ? end : lost(c, PQerrorMessage(c->pg));
    }
    fn_pg_copy_free(&p);
    return code;
}

/* ---- LISTEN / NOTIFY and the clock ------------------------------------------------------------
 */

int fn_pg_listen(fn_pg_conn *c, const char *channel)
{
    char *id = PQescapeIdentifier(c->pg, channel, strlen(channel));
    if (!id) return fail_res(c, NULL);
    char *sql = NULL;
    int code;
    if (asprintf(&sql, "LISTEN %s", id) < 0) {
        set_msg(c, NULL, "out of memory");
        code = FN_ERR_NOMEM;
    } else {
        code = fn_pg_exec(c, sql);
    }
    free(sql);
    PQfreemem(id);
    return code;
}

int fn_pg_notify(fn_pg_conn *c, const char *channel, const char *payload)
{
    const char *vals[2] = {channel, payload ? payload : ""};
    PGresult *r = PQexecParams(c->pg, "SELECT pg_notify($1, $2)", 2, NULL, vals, NULL, NULL, 0);
    int code = r && PQresultStatus(r) == PGRES_TUPLES_OK ? FN_OK : fail_res(c, r);
    PQclear(r);
    return code;
}

int fn_pg_socket(const fn_pg_conn *c)
{
    return PQsocket(c->pg);
}

int fn_pg_drain_notifications(fn_pg_conn *c, fn_pg_notify_cb cb, void *ctx)
{
    if (!PQconsumeInput(c->pg)) return lost(c, PQerrorMessage(c->pg));
    int n = 0;
    PGnotify *note;
    while ((note = PQnotifies(c->pg))) {
        if (cb) cb(ctx, note->relname, note->extra, note->be_pid);
        PQfreemem(note);
        n++;
    }
    return n;
}

int fn_pg_now_ns(fn_pg_conn *c, int64_t *ns)
{
    *ns = 0;
    /* Microseconds since the epoch, exact (no float on the way). */
    PGresult *r = PQexec(c->pg, "SELECT (extract(epoch FROM date_trunc('microseconds', "
                                "clock_timestamp())) * 1000000)::bigint");
    int code = FN_OK;
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        *ns = strtoll(PQgetvalue(r, 0, 0), NULL, 10) * 1000;
    else
        code = fail_res(c, r);
    PQclear(r);
    return code;
}
