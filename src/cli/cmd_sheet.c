/* cmd_sheet.c: `facenames people sheet OUT.html|OUT.png`: a contact sheet of face thumbnails, one
 * group per person and then one per cluster of faces without a person, biggest first, at most
 * `--max` faces a group with "+N more", so a person sees the groups at a glance before naming.
 *
 * The HTML page is self-contained (thumbnails inlined as data: URIs); the PNG is drawn with
 * libvips (each thumbnail fitted into a square, a label above each group). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vips/vips.h>

#include "cli/commands.h"
#include "facenames/error.h"
#include "facenames/people.h"

#define CELL 96 /* a thumbnail's square in the PNG, pixels */

typedef struct group {
    char label[320];
    int64_t total;
    fn_face_query q;
} group;

/* The groups: persons, then clusters (faces without a person), each biggest first. */
static int groups_get(fn_library *lib, group **out, size_t *n)
{
    fn_person *p = NULL;
    fn_cluster *c = NULL;
    size_t np = 0, nc = 0;
    int rc = fn_people_list(lib, &p, &np);
    if (rc == 0) rc = fn_clusters_list(lib, 0, &c, &nc);
    *out = calloc(np + nc + 1, sizeof **out);
    if (rc == 0 && !*out) rc = FN_ERR_NOMEM;
    *n = 0;
    for (size_t i = 0; rc == 0 && i < np; i++) {
        if (p[i].faces == 0) continue;
        group *g = &(*out)[(*n)++];
        snprintf(g->label, sizeof g->label, "%s (person %lld): %lld %s", p[i].name,
                 (long long)p[i].id, (long long)p[i].faces, p[i].faces == 1 ? "face" : "faces");
        g->total = p[i].faces;
        g->q = (fn_face_query){.person_id = p[i].id, .state = -1};
    }
    for (size_t i = 0; rc == 0 && i < nc; i++) {
        group *g = &(*out)[(*n)++];
        snprintf(g->label, sizeof g->label, "cluster %lld: %lld %s without a person",
                 (long long)c[i].id, (long long)c[i].faces, c[i].faces == 1 ? "face" : "faces");
        g->total = c[i].faces;
        g->q = (fn_face_query){.person_id = -1, .cluster_id = c[i].id, .state = FN_FACE_AUTO};
    }
    fn_persons_free(p, np);
    fn_library_free(c);
    return rc;
}

static void html_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '"')
            fputs("&quot;", f);
        else
            fputc(*s, f);
    }
}

static void base64(FILE *f, const uint8_t *b, size_t n)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16;
        if (i + 1 < n) v |= (uint32_t)b[i + 1] << 8;
        if (i + 2 < n) v |= b[i + 2];
        fputc(t[(v >> 18) & 63], f);
        fputc(t[(v >> 12) & 63], f);
        fputc(i + 1 < n ? t[(v >> 6) & 63] : '=', f);
        fputc(i + 2 < n ? t[v & 63] : '=', f);
    }
}

static int sheet_html(cli_ctx *ctx, fn_library *lib, const char *out, group *g, size_t ng,
                      long long max)
{
    FILE *f = fopen(out, "w");
    if (!f) return cli_error(ctx, "cannot write %s: %s", out, strerror(errno));
    fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>facenames: people</title>\n"
          "<style>body{font-family:sans-serif;margin:1em}h2{font-size:1em;margin:1em 0 .3em}"
          "img{width:96px;height:96px;object-fit:cover;margin:2px;border-radius:4px}"
          ".more{display:inline-block;vertical-align:top;padding:38px 8px;color:#555}"
          "</style></head><body>\n<h1>People and clusters</h1>\n",
          f);
    if (ng == 0) fputs("<p>No persons and no clusters yet.</p>\n", f);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ng; i++) {
        fputs("<section><h2>", f);
        html_escape(f, g[i].label);
        fputs("</h2>\n", f);
        g[i].q.limit = (size_t)max;
        fn_library_face *faces = NULL;
        size_t n = 0;
        if ((rc = fn_faces_query(lib, &g[i].q, &faces, &n)) < 0) break;
        for (size_t k = 0; k < n; k++) {
            uint8_t *jpeg = NULL;
            size_t len = 0;
            fprintf(f, "<img title=\"face %lld\" alt=\"face %lld\" src=\"data:image/jpeg;base64,",
                    (long long)faces[k].id, (long long)faces[k].id);
            if (fn_face_thumbnail(lib, faces[k].id, &jpeg, &len) == 0) base64(f, jpeg, len);
            fputs("\">", f);
            fn_library_free(jpeg);
        }
        if (g[i].total > (int64_t)n)
            fprintf(f, "<span class=\"more\">+%lld more</span>",
                    (long long)(g[i].total - (int64_t)n));
        fputs("\n</section>\n", f);
        fn_library_free(faces);
    }
    fputs("</body></html>\n", f);
    if (fclose(f) != 0 && rc == 0)
        return cli_error(ctx, "cannot write %s: %s", out, strerror(errno));
    if (rc < 0) return cli_people_error(ctx, lib, rc);
    printf("wrote %s: %zu groups\n", out, ng);
    return CLI_EXIT_OK;
}

/* A CELL x CELL square of the thumbnail (a grey square when it cannot be decoded). */
static VipsImage *cell(fn_library *lib, int64_t face)
{
    uint8_t *jpeg = NULL;
    size_t len = 0;
    VipsImage *im = NULL;
    if (fn_face_thumbnail(lib, face, &jpeg, &len) == 0) {
        if (vips_thumbnail_buffer(jpeg, len, &im, CELL, "height", CELL, "crop",
                                  VIPS_INTERESTING_CENTRE, NULL) != 0) {
            im = NULL;
            vips_error_clear();
        }
    }
    fn_library_free(jpeg);
    if (im && vips_image_get_bands(im) != 3) {
        VipsImage *c3 = NULL;
        if (vips_colourspace(im, &c3, VIPS_INTERPRETATION_sRGB, NULL) == 0) {
            g_object_unref(im);
            im = c3;
        } else {
            vips_error_clear();
        }
    }
    if (!im) {
        VipsImage *b = NULL;
        if (vips_black(&b, CELL, CELL, "bands", 3, NULL) == 0) {
            if (vips_linear1(b, &im, 1.0, 200.0, NULL) != 0) im = NULL;
            g_object_unref(b);
        }
    }
    if (im) {
        VipsImage *u = NULL;
        if (vips_cast_uchar(im, &u, NULL) == 0) {
            g_object_unref(im);
            im = u;
        }
    }
    return im;
}

/* Black text on white, 3 bands. */
static VipsImage *label(const char *text)
{
    VipsImage *t = NULL, *inv = NULL, *rgb = NULL;
    char *esc = g_markup_escape_text(text, -1);
    int rc = vips_text(&t, esc, "dpi", 96, NULL);
    g_free(esc);
    if (rc != 0) return NULL;
    rc = vips_invert(t, &inv, NULL);
    g_object_unref(t);
    if (rc != 0) return NULL;
    VipsImage *bands[3] = {inv, inv, inv};
    rc = vips_bandjoin(bands, &rgb, 3, NULL);
    g_object_unref(inv);
    if (rc != 0) return NULL;
    VipsImage *u = NULL;
    rc = vips_cast_uchar(rgb, &u, NULL);
    g_object_unref(rgb);
    return rc == 0 ? u : NULL;
}

/* Joins a and b (either may be NULL) left to right or top to bottom, left/top aligned on white;
 * takes both. NULL on error. */
static VipsImage *join(VipsImage *a, VipsImage *b, VipsDirection dir, int shim)
{
    if (!a) return b;
    if (!b) return a;
    VipsImage *out = NULL;
    VipsArrayDouble *bg = vips_array_double_newv(1, 255.0);
    if (vips_join(a, b, &out, dir, "expand", TRUE, "shim", shim, "background", bg, NULL) != 0)
        out = NULL;
    vips_area_unref(VIPS_AREA(bg));
    g_object_unref(a);
    g_object_unref(b);
    return out;
}

static int sheet_png(cli_ctx *ctx, fn_library *lib, const char *out, group *g, size_t ng,
                     long long max)
{
    if (VIPS_INIT("facenames") != 0) return cli_error(ctx, "libvips: %s", vips_error_buffer());
    /* each group: its label above a row of cells (and "+N more"); groups top to bottom. Joined
     * pairwise, since vips_arrayjoin would give every cell the size of the largest. */
    VipsImage *sheet = ng == 0 ? label("No persons and no clusters yet.") : NULL;
    int rc = 0;
    const char *err = ng == 0 && !sheet ? "drawing a label" : NULL;
    for (size_t i = 0; rc == 0 && !err && i < ng; i++) {
        g[i].q.limit = (size_t)max;
        fn_library_face *faces = NULL;
        size_t n = 0;
        if ((rc = fn_faces_query(lib, &g[i].q, &faces, &n)) < 0) break;
        VipsImage *row = NULL;
        for (size_t k = 0; !err && k < n; k++) {
            VipsImage *c = cell(lib, faces[k].id);
            if (c && !(row = join(row, c, VIPS_DIRECTION_HORIZONTAL, 4)))
                err = "joining thumbnails";
        }
        fn_library_free(faces);
        if (!err && g[i].total > (int64_t)n) {
            char more[64];
            snprintf(more, sizeof more, "  +%lld more", (long long)(g[i].total - (int64_t)n));
            VipsImage *m = label(more);
            if (m && !(row = join(row, m, VIPS_DIRECTION_HORIZONTAL, 4)))
                err = "joining thumbnails";
        }
        VipsImage *l = err ? NULL : label(g[i].label);
        if (!err && !l) err = "drawing a label";
        VipsImage *block = err ? NULL : join(l, row, VIPS_DIRECTION_VERTICAL, 4);
        if (!err && !block) err = "joining a group";
        if (err && row) g_object_unref(row);
        if (!err && !(sheet = join(sheet, block, VIPS_DIRECTION_VERTICAL, 16)))
            err = "joining groups";
    }
    if (sheet && rc == 0 && !err) {
        VipsImage *framed = NULL;
        VipsArrayDouble *bg = vips_array_double_newv(1, 255.0);
        if (vips_embed(sheet, &framed, 12, 12, vips_image_get_width(sheet) + 24,
                       vips_image_get_height(sheet) + 24, "extend", VIPS_EXTEND_BACKGROUND,
                       "background", bg, NULL) != 0 ||
            vips_pngsave(framed, out, NULL) != 0)
            err = "writing the PNG";
        vips_area_unref(VIPS_AREA(bg));
        if (framed) g_object_unref(framed);
    }
    if (sheet) g_object_unref(sheet);
    if (rc < 0) return cli_people_error(ctx, lib, rc);
    if (err) {
        int r = cli_error(ctx, "%s %s: %s", err, out, vips_error_buffer());
        vips_error_clear();
        return r;
    }
    printf("wrote %s: %zu groups\n", out, ng);
    return CLI_EXIT_OK;
}

int cli_people_sheet(cli_ctx *ctx, fn_library *lib, const char *out, long long max);
int cli_people_sheet(cli_ctx *ctx, fn_library *lib, const char *out, long long max)
{
    size_t len = strlen(out);
    int png = len > 4 && strcasecmp(out + len - 4, ".png") == 0;
    int html = (len > 5 && strcasecmp(out + len - 5, ".html") == 0) ||
               (len > 4 && strcasecmp(out + len - 4, ".htm") == 0);
    if (!png && !html)
        return cli_usage_error(ctx, "people sheet", "%s: the sheet is OUT.html or OUT.png", out);
    group *g = NULL;
    size_t ng = 0;
    int rc = groups_get(lib, &g, &ng);
    if (rc < 0) {
        free(g);
        return cli_people_error(ctx, lib, rc);
    }
    int ret = png ? sheet_png(ctx, lib, out, g, ng, max) : sheet_html(ctx, lib, out, g, ng, max);
    free(g);
    return ret;
}
