/* xmp_regions.c: MWG face regions (mwg-rs:Regions) read from and merged into XMP packets with
 * exempi. See xmp_regions.h for the coordinates.
 *
 * The paths below are exempi's: "Regions/mwg-rs:RegionList[i]/mwg-rs:Area/stArea:x" under the
 * mwg-rs schema, 1-based array indexes. The prefixes are registered once (fn_xmp_init) and the
 * toolkit then resolves them in paths; the prefix the toolkit really gave is used, in case another
 * one was registered first for the same namespace. */
#include "tasks/xmp_regions.h"

#include <exempi/xmp.h>
#include <expat.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"

#define NS_RS   "http://www.metadataworkinggroup.com/schemas/regions/"
#define NS_AREA "http://ns.adobe.com/xmp/sType/Area#"
#define NS_DIM  "http://ns.adobe.com/xap/1.0/sType/Dimensions#"

/* Regions beyond this many in one packet are ignored (a hostile packet cannot make us loop). */
enum { MAX_REGIONS = 4096 };

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_ok;
static char p_rs[32] = "mwg-rs", p_area[32] = "stArea", p_dim[32] = "stDim";

static void reg(const char *uri, const char *want, char *got, size_t cap)
{
    XmpStringPtr s = xmp_string_new();
    if (xmp_register_namespace(uri, want, s)) {
        const char *c = xmp_string_cstr(s);
        size_t n = strlen(c);
        /* the toolkit returns the prefix with its colon */
        if (n && c[n - 1] == ':') n--;
        if (n && n < cap) {
            memcpy(got, c, n);
            got[n] = 0;
        }
    }
    xmp_string_free(s);
}

static void init_once(void)
{
    if (!xmp_init()) return;
    reg(NS_RS, "mwg-rs", p_rs, sizeof p_rs);
    reg(NS_AREA, "stArea", p_area, sizeof p_area);
    reg(NS_DIM, "stDim", p_dim, sizeof p_dim);
    init_ok = 1;
}

int fn_xmp_init(void)
{
    pthread_once(&once, init_once);
    return init_ok ? 0 : FN_ERR_UNSUPPORTED;
}

double fn_rect_iou(double ax, double ay, double aw, double ah, double bx, double by, double bw,
                   double bh)
{
    double x0 = fmax(ax, bx), y0 = fmax(ay, by);
    double x1 = fmin(ax + aw, bx + bw), y1 = fmin(ay + ah, by + bh);
    if (!(x1 > x0 && y1 > y0)) return 0;
    double inter = (x1 - x0) * (y1 - y0);
    double uni = aw * ah + bw * bh - inter;
    return uni > 0 ? inter / uni : 0;
}

void fn_xmp_regions_free(fn_xmp_region *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++)
        free(r[i].name);
    free(r);
}

/* Reads text property `path` (under mwg-rs) into a malloc'ed string, or NULL. */
static char *get_text(XmpPtr x, const char *path)
{
    XmpStringPtr s = xmp_string_new();
    char *r = NULL;
    uint32_t bits = 0;
    if (s && xmp_get_property(x, NS_RS, path, s, &bits) && !XMP_IS_PROP_STRUCT(bits) &&
        !XMP_IS_PROP_ARRAY(bits))
        r = strdup(xmp_string_cstr(s));
    xmp_string_free(s);
    return r;
}

static int get_real(XmpPtr x, const char *path, double *v)
{
    char *t = get_text(x, path);
    if (!t) return -1;
    char *end;
    *v = strtod(t, &end);
    int ok = end != t && isfinite(*v);
    free(t);
    return ok ? 0 : -1;
}

/* The option bits of property `path` (under mwg-rs) when it exists: 1, else 0. The caller has
 * made sure every level above it is a struct or an array: asking a path through a simple value
 * makes the toolkit throw, and exempi prints every exception on stderr. */
static int bits_of(XmpPtr x, const char *path, uint32_t *bits)
{
    XmpStringPtr s = xmp_string_new();
    *bits = 0;
    int ok = s && xmp_get_property(x, NS_RS, path, s, bits);
    xmp_string_free(s);
    return ok;
}

/* The shape MWG gives the regions: Regions a struct, its RegionList an array (*n its items),
 * AppliedToDimensions a struct. 0 when it is so or absent; -1 when something else is there. */
static int regions_shape(XmpPtr x, int *n)
{
    uint32_t bits;
    char p[96];
    *n = 0;
    if (!bits_of(x, "Regions", &bits)) return 0;
    if (!XMP_IS_PROP_STRUCT(bits)) return -1;
    snprintf(p, sizeof p, "Regions/%s:AppliedToDimensions", p_rs);
    if (bits_of(x, p, &bits) && !XMP_IS_PROP_STRUCT(bits)) return -1;
    snprintf(p, sizeof p, "Regions/%s:RegionList", p_rs);
    if (!bits_of(x, p, &bits)) return 0;
    if (!XMP_IS_PROP_ARRAY(bits)) return -1;
    for (int i = 1; i <= MAX_REGIONS; i++) {
        snprintf(p, sizeof p, "Regions/%s:RegionList[%d]", p_rs, i);
        if (!bits_of(x, p, &bits)) break;
        *n = i;
    }
    return 0;
}

/* Region i (1-based) of the list, when it is a named face with a usable area: 1; else 0. */
static int region_at(XmpPtr x, int i, fn_xmp_region *r)
{
    char base[96], p[192];
    uint32_t bits;
    snprintf(base, sizeof base, "Regions/%s:RegionList[%d]", p_rs, i);
    /* an item that is not a struct (a plain text item) has no fields to ask for */
    if (!bits_of(x, base, &bits) || !XMP_IS_PROP_STRUCT(bits)) return 0;
    snprintf(p, sizeof p, "%s/%s:Area", base, p_rs);
    if (!bits_of(x, p, &bits) || !XMP_IS_PROP_STRUCT(bits)) return 0;
    snprintf(p, sizeof p, "%s/%s:Type", base, p_rs);
    char *type = get_text(x, p);
    int face = type && strcmp(type, "Face") == 0;
    free(type);
    if (!face) return 0;
    snprintf(p, sizeof p, "%s/%s:Name", base, p_rs);
    char *name = get_text(x, p);
    if (!name || !*name) {
        free(name);
        return 0;
    }
    double cx, cy, w, h;
    const char *f[4] = {"x", "y", "w", "h"};
    double *v[4] = {&cx, &cy, &w, &h};
    for (int k = 0; k < 4; k++) {
        snprintf(p, sizeof p, "%s/%s:Area/%s:%s", base, p_rs, p_area, f[k]);
        if (get_real(x, p, v[k]) < 0) {
            free(name);
            return 0;
        }
    }
    snprintf(p, sizeof p, "%s/%s:Area/%s:unit", base, p_rs, p_area);
    char *unit = get_text(x, p);
    int normalised = !unit || strcmp(unit, "normalized") == 0;
    free(unit);
    /* A point (w = h = 0) or an area outside the photo is not a face we can place. */
    if (!normalised || !(w > 0 && h > 0 && w <= 1.0001 && h <= 1.0001) || cx < 0 || cy < 0 ||
        cx > 1 || cy > 1) {
        free(name);
        return 0;
    }
    r->name = name;
    r->x = fmax(0, cx - w / 2);
    r->y = fmax(0, cy - h / 2);
    r->w = fmin(w, 1 - r->x);
    r->h = fmin(h, 1 - r->y);
    return 1;
}

/* A DOCTYPE has no business in XMP (entity tricks): stop at once, like the toolkit does. */
static void XMLCALL no_doctype(void *user, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal;
    XML_StopParser((XML_Parser)user, XML_FALSE);
}

/* Whether the packet is well-formed XML, checked with expat before exempi sees it: exempi prints
 * each parse error of the toolkit on stderr, and a library must not print. */
static int well_formed(const char *packet, size_t len, char *err, size_t errlen)
{
    /* with namespaces: a prefix nobody declared is an error too */
    XML_Parser p = XML_ParserCreateNS(NULL, (XML_Char)0x01);
    if (!p) {
        snprintf(err, errlen, "out of memory parsing XMP");
        return 0;
    }
    XML_SetUserData(p, p);
    XML_SetStartDoctypeDeclHandler(p, no_doctype);
    int ok = XML_Parse(p, packet, (int)len, XML_TRUE) == XML_STATUS_OK;
    if (!ok) {
        enum XML_Error e = XML_GetErrorCode(p);
        snprintf(err, errlen, "malformed XMP: %s at line %lu",
                 e == XML_ERROR_ABORTED ? "a DOCTYPE" : XML_ErrorString(e),
                 (unsigned long)XML_GetCurrentLineNumber(p));
    }
    XML_ParserFree(p);
    return ok;
}

static XmpPtr parse(const char *packet, size_t len, char *err, size_t errlen)
{
    if (fn_xmp_init() < 0) {
        snprintf(err, errlen, "the XMP toolkit (exempi) could not be initialised");
        return NULL;
    }
    /* Some writers end an embedded packet with NULs; any other NUL means it is not text. */
    while (packet && len && packet[len - 1] == 0)
        len--;
    if (!packet || !len || memchr(packet, 0, len) || len > (size_t)INT32_MAX) {
        snprintf(err, errlen, "not an XMP packet (%s)", !len ? "empty" : "binary data");
        return NULL;
    }
    if (!well_formed(packet, len, err, errlen)) return NULL;
    XmpPtr x = xmp_new(packet, len);
    if (!x) snprintf(err, errlen, "malformed XMP (exempi error %d)", xmp_get_error());
    return x;
}

int fn_xmp_regions_read(const char *packet, size_t len, fn_xmp_region **out, size_t *n, char *err,
                        size_t errlen)
{
    *out = NULL;
    *n = 0;
    XmpPtr x = parse(packet, len, err, errlen);
    if (!x) return FN_ERR_CORRUPT;
    size_t cap = 0;
    int rc = 0, count;
    if (regions_shape(x, &count) < 0) {
        /* not MWG's shape: no region we can read, and not an error of the packet */
        count = 0;
    }
    for (int i = 1; i <= count; i++) {
        fn_xmp_region r;
        if (!region_at(x, i, &r)) continue;
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            fn_xmp_region *g = realloc(*out, nc * sizeof *g);
            if (!g) {
                free(r.name);
                rc = FN_ERR_NOMEM;
                snprintf(err, errlen, "out of memory reading XMP regions");
                break;
            }
            *out = g;
            cap = nc;
        }
        (*out)[(*n)++] = r;
    }
    xmp_free(x);
    if (rc < 0) {
        fn_xmp_regions_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

static int set(XmpPtr x, const char *path, const char *value, uint32_t opts)
{
    return xmp_set_property(x, NS_RS, path, value, opts) ? 0 : -1;
}

static int set_real(XmpPtr x, const char *path, double v)
{
    char t[32];
    snprintf(t, sizeof t, "%.6f", v);
    return set(x, path, t, 0);
}

int fn_xmp_regions_merge(const char *existing, size_t len, const fn_xmp_region *ours, size_t n,
                         int width, int height, char **out, size_t *outlen, char *err,
                         size_t errlen)
{
    *out = NULL;
    *outlen = 0;
    XmpPtr x;
    if (existing && len) {
        if (!(x = parse(existing, len, err, errlen))) return FN_ERR_CORRUPT;
    } else {
        if (fn_xmp_init() < 0 || !(x = xmp_new_empty())) {
            snprintf(err, errlen, "the XMP toolkit (exempi) could not make a packet");
            return FN_ERR_NOMEM;
        }
    }
    int rc = 0;
    char p[192], base[96];
    int count = 0;
    if (regions_shape(x, &count) < 0) {
        /* another tool's mwg-rs:Regions in a shape MWG does not define: leave it to a person */
        snprintf(err, errlen, "its mwg-rs:Regions is not in the Metadata Working Group's shape");
        xmp_free(x);
        return FN_ERR_CORRUPT;
    }
    /* Face regions of ours that are already there (an earlier export, or the same face drawn by
     * another tool) are replaced; walk backwards so deleting one does not shift the rest. */
    for (int i = count; i >= 1; i--) {
        fn_xmp_region r;
        if (!region_at(x, i, &r)) continue;
        int overlaps = 0;
        for (size_t k = 0; k < n && !overlaps; k++)
            overlaps =
                fn_rect_iou(r.x, r.y, r.w, r.h, ours[k].x, ours[k].y, ours[k].w, ours[k].h) >= 0.5;
        free(r.name);
        if (overlaps) {
            snprintf(p, sizeof p, "Regions/%s:RegionList[%d]", p_rs, i);
            xmp_delete_property(x, NS_RS, p);
        }
    }
    char w[16], h[16];
    snprintf(w, sizeof w, "%d", width);
    snprintf(h, sizeof h, "%d", height);
    snprintf(p, sizeof p, "Regions/%s:AppliedToDimensions/%s:w", p_rs, p_dim);
    if (set(x, p, w, 0) < 0) rc = -1;
    snprintf(p, sizeof p, "Regions/%s:AppliedToDimensions/%s:h", p_rs, p_dim);
    if (!rc && set(x, p, h, 0) < 0) rc = -1;
    snprintf(p, sizeof p, "Regions/%s:AppliedToDimensions/%s:unit", p_rs, p_dim);
    if (!rc && set(x, p, "pixel", 0) < 0) rc = -1;
    snprintf(p, sizeof p, "Regions/%s:RegionList", p_rs);
    for (size_t k = 0; !rc && k < n; k++) {
        if (!xmp_append_array_item(x, NS_RS, p, XMP_PROP_VALUE_IS_ARRAY, NULL,
                                   XMP_PROP_VALUE_IS_STRUCT)) {
            rc = -1;
            break;
        }
        /* the item just appended is the last one */
        snprintf(base, sizeof base, "Regions/%s:RegionList[last()]", p_rs);
        const fn_xmp_region *r = &ours[k];
        char q[192];
        snprintf(q, sizeof q, "%s/%s:Name", base, p_rs);
        if (set(x, q, r->name, 0) < 0) rc = -1;
        snprintf(q, sizeof q, "%s/%s:Type", base, p_rs);
        if (!rc && set(x, q, "Face", 0) < 0) rc = -1;
        const char *f[4] = {"x", "y", "w", "h"};
        double v[4] = {r->x + r->w / 2, r->y + r->h / 2, r->w, r->h};
        for (int j = 0; !rc && j < 4; j++) {
            snprintf(q, sizeof q, "%s/%s:Area/%s:%s", base, p_rs, p_area, f[j]);
            if (set_real(x, q, v[j]) < 0) rc = -1;
        }
        snprintf(q, sizeof q, "%s/%s:Area/%s:unit", base, p_rs, p_area);
        if (!rc && set(x, q, "normalized", 0) < 0) rc = -1;
    }
    XmpStringPtr s = rc ? NULL : xmp_string_new();
    if (!rc && (!s || !xmp_serialize(x, s, XMP_SERIAL_OMITPACKETWRAPPER, 0))) rc = -1;
    if (!rc) {
        const char *c = xmp_string_cstr(s);
        size_t l = strlen(c);
        /* The toolkit writes some odd inputs back as malformed XML (a namespace name holding a
         * quote comes out unescaped; a control character XML cannot hold): such a result is
         * refused rather than written over a sidecar. A new packet holding only our regions with
         * plain ASCII names needs no second look (the check costs a sixth of an export's CPU). */
        int plain = !(existing && len);
        for (size_t k = 0; plain && k < n; k++)
            for (const unsigned char *q = (const unsigned char *)ours[k].name; *q && plain; q++)
                plain = *q >= 0x20 && *q < 0x7f; /* plain ASCII; anything else is checked */
        char why[128];
        if (!plain && !well_formed(c, l, why, sizeof why)) {
            snprintf(err, errlen, "the XMP toolkit would write it back malformed (%s)", why);
            rc = FN_ERR_CORRUPT;
        }
    }
    if (!rc) {
        const char *c = xmp_string_cstr(s);
        size_t l = strlen(c);
        /* a sidecar is a whole document: the XML declaration makes other readers happy */
        static const char decl[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
        *out = malloc(sizeof decl + l);
        if (*out) {
            memcpy(*out, decl, sizeof decl - 1);
            memcpy(*out + sizeof decl - 1, c, l + 1);
            *outlen = sizeof decl - 1 + l;
        } else {
            rc = FN_ERR_NOMEM;
        }
    }
    if (rc == -1) {
        snprintf(err, errlen, "the XMP toolkit refused the regions (exempi error %d)",
                 xmp_get_error());
        rc = FN_ERR_CORRUPT;
    } else if (rc == FN_ERR_NOMEM) {
        snprintf(err, errlen, "out of memory writing XMP");
    }
    if (s) xmp_string_free(s);
    xmp_free(x);
    return rc;
}
