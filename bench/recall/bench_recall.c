/* bench_recall: how many faces the detector finds in tight portrait crops, the reference's way and
 * ours with padding before detection; bench/bench_recall runs it beside the reference (face-api.js,
 * bench/recall/reference_recall.mjs) on the same crops. Prints `name value unit` lines.
 *
 * Usage:
 *   bench_recall make ROOT DIR        crops from the samples into DIR (PPM) + DIR/manifest.json
 *   bench_recall run DIR [REF.json]   detects on every crop: off (the reference's algorithm), the
 *                                     padding tunings (retry when nothing is found, and always
 *                                     padded), and scores REF.json (the reference's boxes) the same
 *                                     way
 *
 * The crops are made from the project's own material: every SsdMobilenetv1 face of the reference
 * goldens (tests/fixtures/vision/goldens.json, the six samples and the portrait) cut from the full
 * photo (libvips pixels, as the goldens were made) exactly to its box, resized so the longer side
 * is 96, 150 or 300 px; the box scaled by 0.9 and 1.15 about its centre; and shifted by 15 % of its
 * size left, right, up and down (150 px). Negatives: squares of the samples (150 and 300 px of the
 * photo) that touch no face found by either reference detector (boxes grown by half), resized to
 * 150 px, so "no new false faces" is measured on the same kind of small near-square image.
 *
 * A face counts as found when a detection has IoU >= 0.4 with its box (mapped into the crop and
 * clipped to it); every other detection is a false face. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <vips/vips.h>

#include "facenames/vision.h"
#include "vision/nets.h"

#define MATCH_IOU 0.4

typedef struct box {
    double x, y, w, h;
} box;

static double iou(box a, box b)
{
    double x0 = fmax(a.x, b.x), y0 = fmax(a.y, b.y);
    double x1 = fmin(a.x + a.w, b.x + b.w), y1 = fmin(a.y + a.h, b.y + b.h);
    if (x1 <= x0 || y1 <= y0) return 0;
    double i = (x1 - x0) * (y1 - y0);
    return i / (a.w * a.h + b.w * b.h - i);
}

static box clip(box b, double w, double h)
{
    double x0 = fmax(b.x, 0), y0 = fmax(b.y, 0);
    double x1 = fmin(b.x + b.w, w), y1 = fmin(b.y + b.h, h);
    return (box){x0, y0, fmax(x1 - x0, 0), fmax(y1 - y0, 0)};
}

static box box_of(json_t *face)
{
    json_t *b = json_object_get(face, "box");
    return (box){json_number_value(json_object_get(b, "x")),
                 json_number_value(json_object_get(b, "y")),
                 json_number_value(json_object_get(b, "width")),
                 json_number_value(json_object_get(b, "height"))};
}

static int write_ppm(const char *path, const fn_image *img)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fprintf(f, "P6\n%d %d\n255\n", img->width, img->height);
    size_t n = (size_t)img->width * img->height * 3;
    int rc = fwrite(img->rgb, 1, n, f) == n ? 0 : -1;
    return fclose(f) || rc ? -1 : 0;
}

static int read_ppm(const char *path, fn_image *img)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int w, h, mx;
    if (fscanf(f, "P6 %d %d %d", &w, &h, &mx) != 3 || mx != 255 || fgetc(f) == EOF) {
        fclose(f);
        return -1;
    }
    img->width = w, img->height = h;
    img->rgb = malloc((size_t)w * h * 3);
    size_t n = (size_t)w * h * 3;
    int rc = fread(img->rgb, 1, n, f) == n ? 0 : -1;
    fclose(f);
    return rc;
}

/* The region r of img (clipped to it) resized so its longer side is `side`; *scale and the
 * clipped region tell where a box of img lands in the crop. */
static int crop_resize(const fn_image *img, box r, int side, fn_image *out, box *clipped,
                       double *scale)
{
    r = clip(r, img->width, img->height);
    int x = (int)floor(r.x), y = (int)floor(r.y);
    int w = (int)ceil(r.x + r.w) - x, h = (int)ceil(r.y + r.h) - y;
    if (x + w > img->width) w = img->width - x;
    if (y + h > img->height) h = img->height - y;
    if (w < 8 || h < 8) return -1;
    VipsImage *base = vips_image_new_from_memory(img->rgb, (size_t)img->width * img->height * 3,
                                                 img->width, img->height, 3, VIPS_FORMAT_UCHAR);
    VipsImage *c = NULL, *s = NULL;
    double f = (double)side / (w > h ? w : h);
    int rc = -1;
    size_t len;
    if (!vips_crop(base, &c, x, y, w, h, NULL) && !vips_resize(c, &s, f, NULL)) {
        out->width = vips_image_get_width(s), out->height = vips_image_get_height(s);
        out->rgb = vips_image_write_to_memory(s, &len);
        rc = out->rgb ? 0 : -1;
    }
    if (s) g_object_unref(s);
    if (c) g_object_unref(c);
    g_object_unref(base);
    *clipped = (box){x, y, w, h};
    *scale = f;
    return rc;
}

static int make(const char *root, const char *dir)
{
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/tests/fixtures/vision/goldens.json", root);
    json_error_t je;
    json_t *g = json_load_file(path, 0, &je);
    if (!g) {
        fprintf(stderr, "bench_recall: %s: %s\n", path, je.text);
        return 1;
    }
    mkdir(dir, 0755);
    json_t *manifest = json_array();
    size_t idx;
    json_t *im;
    int npos = 0, nneg = 0;
    json_array_foreach(json_object_get(g, "images"), idx, im)
    {
        snprintf(path, sizeof path, "%s/%s", root, json_string_value(json_object_get(im, "path")));
        fn_image img;
        if (fn_image_load(path, NULL, &img, NULL, err, sizeof err)) {
            fprintf(stderr, "bench_recall: %s\n", err);
            return 1;
        }
        json_t *faces = json_object_get(im, "faces_ssd");
        /* positives: every face, exact, scaled and shifted */
        static const struct {
            double scale, dx, dy;
            int side;
            const char *kind;
        } var[] = {
            {1.0, 0, 0, 150, "tight150"},   {1.0, 0, 0, 96, "tight96"},
            {1.0, 0, 0, 300, "tight300"},   {0.9, 0, 0, 150, "scale0.9"},
            {1.15, 0, 0, 150, "scale1.15"}, {1.0, -0.15, 0, 150, "shift"},
            {1.0, 0.15, 0, 150, "shift"},   {1.0, 0, -0.15, 150, "shift"},
            {1.0, 0, 0.15, 150, "shift"},
        };
        size_t fi;
        json_t *face;
        json_array_foreach(faces, fi, face)
        {
            box b = box_of(face);
            for (size_t k = 0; k < sizeof var / sizeof var[0]; k++) {
                double w = b.w * var[k].scale, h = b.h * var[k].scale;
                box r = {b.x + b.w / 2 - w / 2 + var[k].dx * b.w,
                         b.y + b.h / 2 - h / 2 + var[k].dy * b.h, w, h};
                fn_image c;
                box cl;
                double f;
                if (crop_resize(&img, r, var[k].side, &c, &cl, &f)) continue;
                box e = clip((box){(b.x - cl.x) * f, (b.y - cl.y) * f, b.w * f, b.h * f}, c.width,
                             c.height);
                snprintf(path, sizeof path, "%s/p%03d.ppm", dir, npos);
                if (write_ppm(path, &c)) return 1;
                json_array_append_new(manifest, json_pack("{s:s, s:s, s:i, s:i, s:[f,f,f,f]}",
                                                          "file", path + strlen(dir) + 1, "kind",
                                                          var[k].kind, "width", c.width, "height",
                                                          c.height, "face", e.x, e.y, e.w, e.h));
                fn_image_free(&c);
                npos++;
            }
        }
        /* negatives: squares far from every face either reference detector found */
        if (strncmp(json_string_value(json_object_get(im, "file")), "sample", 6) == 0) {
            box avoid[64];
            int na = 0;
            const char *lists[] = {"faces_ssd", "faces_tiny", "near_threshold_ssd",
                                   "near_threshold_tiny"};
            for (int l = 0; l < 4; l++) {
                json_array_foreach(json_object_get(im, lists[l]), fi, face)
                {
                    box b = box_of(face);
                    if (na < 64)
                        avoid[na++] = (box){b.x - b.w / 2, b.y - b.h / 2, 2 * b.w, 2 * b.h};
                }
            }
            static const int sides[] = {150, 300};
            for (int si = 0; si < 2; si++) {
                int s = sides[si], taken = 0;
                for (int y = 0; y + s <= img.height && taken < 8; y += s)
                    for (int x = (y / s % 2) * s / 2; x + s <= img.width && taken < 8; x += 2 * s) {
                        box r = {x, y, s, s};
                        int ok = 1;
                        for (int a = 0; a < na && ok; a++)
                            ok = iou(r, avoid[a]) == 0;
                        if (!ok) continue;
                        fn_image c;
                        box cl;
                        double f;
                        if (crop_resize(&img, r, 150, &c, &cl, &f)) continue;
                        snprintf(path, sizeof path, "%s/n%03d.ppm", dir, nneg);
                        if (write_ppm(path, &c)) return 1;
                        json_array_append_new(
                            manifest, json_pack("{s:s, s:s, s:i, s:i, s:n}", "file",
                                                path + strlen(dir) + 1, "kind", "negative", "width",
                                                c.width, "height", c.height, "face"));
                        fn_image_free(&c);
                        nneg++, taken++;
                    }
            }
        }
        fn_image_free(&img);
    }
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    if (json_dump_file(manifest, path, JSON_INDENT(1))) return 1;
    printf("crops_faces %d crops\ncrops_negatives %d crops\n", npos, nneg);
    json_decref(manifest);
    json_decref(g);
    return 0;
}

/* Found / false counts of one way of detecting over every crop. */
typedef struct score {
    int found, faces, false_pos, false_neg_img, tight150, tight150_found;
} score;

static void add(score *s, json_t *entry, const box *dets, size_t n)
{
    json_t *face = json_object_get(entry, "face");
    int matched = 0;
    box e = {0, 0, 0, 0};
    if (json_is_array(face))
        e = (box){
            json_number_value(json_array_get(face, 0)), json_number_value(json_array_get(face, 1)),
            json_number_value(json_array_get(face, 2)), json_number_value(json_array_get(face, 3))};
    int w = (int)json_integer_value(json_object_get(entry, "width"));
    int h = (int)json_integer_value(json_object_get(entry, "height"));
    for (size_t i = 0; i < n; i++) {
        box d = clip(dets[i], w, h);
        if (json_is_array(face) && !matched && iou(d, e) >= MATCH_IOU)
            matched = 1;
        else
            s->false_pos++;
    }
    if (json_is_array(face)) {
        s->faces++;
        s->found += matched;
        if (!strcmp(json_string_value(json_object_get(entry, "kind")), "tight150")) {
            s->tight150++;
            s->tight150_found += matched;
        }
    } else if (n) {
        s->false_neg_img++;
    }
}

static void print_score(const char *name, const score *s)
{
    printf("%s_found %d/%d faces\n", name, s->found, s->faces);
    printf("%s_recall %.3f ratio\n", name, s->faces ? (double)s->found / s->faces : 0);
    printf("%s_tight150_found %d/%d faces\n", name, s->tight150_found, s->tight150);
    printf("%s_false_faces %d faces\n", name, s->false_pos);
    printf("%s_negatives_with_a_face %d crops\n", name, s->false_neg_img);
}

static int run(const char *dir, const char *ref)
{
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    json_error_t je;
    json_t *man = json_load_file(path, 0, &je);
    if (!man) {
        fprintf(stderr, "bench_recall: %s: %s\n", path, je.text);
        return 1;
    }
    fn_models *m;
    if (fn_models_load(NULL, FN_MODEL_SSD, &m, err, sizeof err)) {
        fprintf(stderr, "bench_recall: %s\n", err);
        return 1;
    }
    fn_vision *v;
    if (fn_vision_new(m, &v)) return 1;
    fn_detect_opts o;
    fn_detect_opts_default(&o);
    o.landmarks = 0, o.descriptors = 0;

    const size_t n = json_array_size(man);
    fn_image *imgs = calloc(n, sizeof *imgs);
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir,
                 json_string_value(json_object_get(json_array_get(man, i), "file")));
        if (read_ppm(path, &imgs[i])) {
            fprintf(stderr, "bench_recall: cannot read %s\n", path);
            return 1;
        }
    }
    /* The plain pass once: "off" is the reference's algorithm, and the retry tunings reuse it. */
    box(*plain)[8] = calloc(n, sizeof *plain);
    size_t *nplain = calloc(n, sizeof *nplain);
    score off = {0};
    o.pad = FN_DETECT_PAD_OFF;
    for (size_t i = 0; i < n; i++) {
        fn_faces f;
        if (fn_vision_detect_image(v, &imgs[i], &o, &f, err, sizeof err)) return 1;
        for (size_t k = 0; k < f.n && k < 8; k++)
            plain[i][k] = (box){f.faces[k].x, f.faces[k].y, f.faces[k].width, f.faces[k].height};
        nplain[i] = f.n < 8 ? f.n : 8;
        add(&off, json_array_get(man, i), plain[i], nplain[i]);
    }
    print_score("off", &off);

    /* Each tuning: the padded pass on every crop (FN_DETECT_PAD_SMALL pads every crop, all being
     * near-square and small), scored as "always padded" and as "retry" (plain unless it found
     * nothing). Without BENCH_RECALL_SWEEP only the first entry, the defaults; with it, "all"
     * or the entries it names (e.g. "pad25_black,pad40_grey"). */
    static const struct {
        float frac;
        int fill;
        const char *name;
    } tune[] = {
        {0.6f, FN_PAD_FILL_GREY, "pad60_grey"},     {0.25f, FN_PAD_FILL_MIRROR, "pad25_mirror"},
        {0.25f, FN_PAD_FILL_BLACK, "pad25_black"},  {0.25f, FN_PAD_FILL_EDGE, "pad25_edge"},
        {0.25f, FN_PAD_FILL_GREY, "pad25_grey"},    {0.15f, FN_PAD_FILL_MIRROR, "pad15_mirror"},
        {0.4f, FN_PAD_FILL_MIRROR, "pad40_mirror"}, {0.15f, FN_PAD_FILL_BLACK, "pad15_black"},
        {0.4f, FN_PAD_FILL_BLACK, "pad40_black"},   {0.4f, FN_PAD_FILL_GREY, "pad40_grey"},
        {0.6f, FN_PAD_FILL_BLACK, "pad60_black"},   {0.8f, FN_PAD_FILL_GREY, "pad80_grey"},
        {1.0f, FN_PAD_FILL_GREY, "pad100_grey"},    {0.6f, FN_PAD_FILL_EDGE, "pad60_edge"},
    };
    const char *sweep = getenv("BENCH_RECALL_SWEEP");
    const int ntune = sweep ? (int)(sizeof tune / sizeof tune[0]) : 1;
    for (int t = 0; t < ntune; t++) {
        if (sweep && strcmp(sweep, "all") && !strstr(sweep, tune[t].name)) continue;
        fn_vision_set_pad_tuning(tune[t].frac, tune[t].fill);
        o.pad = FN_DETECT_PAD_SMALL;
        score always = {0}, retry = {0};
        for (size_t i = 0; i < n; i++) {
            fn_faces f;
            if (fn_vision_detect_image(v, &imgs[i], &o, &f, err, sizeof err)) return 1;
            box d[8];
            size_t nd = f.n < 8 ? f.n : 8;
            for (size_t k = 0; k < nd; k++)
                d[k] = (box){f.faces[k].x, f.faces[k].y, f.faces[k].width, f.faces[k].height};
            add(&always, json_array_get(man, i), d, nd);
            if (nplain[i])
                add(&retry, json_array_get(man, i), plain[i], nplain[i]);
            else
                add(&retry, json_array_get(man, i), d, nd);
        }
        char name[64];
        snprintf(name, sizeof name, "retry_%s", tune[t].name);
        print_score(name, &retry);
        snprintf(name, sizeof name, "always_%s", tune[t].name);
        print_score(name, &always);
    }

    if (ref) {
        json_t *r = json_load_file(ref, 0, &je);
        if (!r) {
            fprintf(stderr, "bench_recall: %s: %s\n", ref, je.text);
            return 1;
        }
        score rs = {0};
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(man, i);
            json_t *dl = json_object_get(r, json_string_value(json_object_get(e, "file")));
            box d[8];
            size_t nd = 0, k;
            json_t *b;
            json_array_foreach(dl, k, b)
            {
                if (nd < 8)
                    d[nd++] = (box){json_number_value(json_array_get(b, 0)),
                                    json_number_value(json_array_get(b, 1)),
                                    json_number_value(json_array_get(b, 2)),
                                    json_number_value(json_array_get(b, 3))};
            }
            add(&rs, e, d, nd);
        }
        print_score("reference", &rs);
        json_decref(r);
    }
    for (size_t i = 0; i < n; i++)
        fn_image_free(&imgs[i]);
    free(imgs), free(plain), free(nplain);
    fn_vision_free(v);
    fn_models_free(m);
    json_decref(man);
    return 0;
}

/* ---- Small faces in large photos ------------------------------------------------------------
 *
 * Group photos made from the samples: sample i enlarged 2.5x (about 4800 px wide; its own faces
 * become large ones) with GROUP_PASTE faces of the other samples pasted small into it, each cut
 * with some context (its box grown 1.6x) and resized so the face is 50-120 px wide, on a grid of
 * cells that touch none of the large faces. Saved as JPEG (q 90), so the fast path decodes them
 * shrunk as ingest does (by 2, to 2400 px; decision 27). */
#define GROUP_PHOTOS 12
#define GROUP_PASTE  12
#define GROUP_SCALE  2.5

/* The set's shape, changed through the environment to measure the auto rule on other sets:
 * BENCH_GROUP_SCALE (the samples' enlargement), BENCH_GROUP_PASTE (faces pasted per photo; 0
 * gives the enlarged samples alone), BENCH_GROUP_FACE (smallest pasted face width; the largest
 * is 70 px more). */
static double env_num(const char *name, double dflt)
{
    const char *s = getenv(name);
    return s && *s ? atof(s) : dflt;
}

static int group_make(const char *root, const char *dir)
{
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/tests/fixtures/vision/goldens.json", root);
    json_error_t je;
    json_t *g = json_load_file(path, 0, &je);
    if (!g) return 1;
    mkdir(dir, 0755);
    json_t *images = json_object_get(g, "images"), *manifest = json_array();
    fn_image src[8];
    int nsrc = 0;
    box faces[64];
    int face_img[64], nfaces = 0;
    for (size_t i = 0; i < json_array_size(images) && nsrc < 6; i++) {
        json_t *im = json_array_get(images, i);
        if (strncmp(json_string_value(json_object_get(im, "file")), "sample", 6)) continue;
        snprintf(path, sizeof path, "%s/%s", root, json_string_value(json_object_get(im, "path")));
        if (fn_image_load(path, NULL, &src[nsrc], NULL, err, sizeof err)) return 1;
        json_t *fl = json_object_get(im, "faces_ssd");
        for (size_t k = 0; k < json_array_size(fl) && nfaces < 64; k++) {
            faces[nfaces] = box_of(json_array_get(fl, k));
            face_img[nfaces++] = nsrc;
        }
        nsrc++;
    }
    int next_face = 0;
    const double gscale = env_num("BENCH_GROUP_SCALE", GROUP_SCALE);
    const int gpaste = (int)env_num("BENCH_GROUP_PASTE", GROUP_PASTE);
    const double gface = env_num("BENCH_GROUP_FACE", 50);
    for (int p = 0; p < GROUP_PHOTOS; p++) {
        const int bi = p % nsrc;
        fn_image *b = &src[bi];
        VipsImage *base = vips_image_new_from_memory(b->rgb, (size_t)b->width * b->height * 3,
                                                     b->width, b->height, 3, VIPS_FORMAT_UCHAR);
        VipsImage *canvas = NULL;
        if (vips_resize(base, &canvas, gscale, NULL)) return 1;
        g_object_unref(base);
        const int W = vips_image_get_width(canvas), H = vips_image_get_height(canvas);
        json_t *fl = json_array();
        box big[16];
        int nbig = 0;
        for (int f = 0; f < nfaces; f++)
            if (face_img[f] == bi && nbig < 16) {
                box q = faces[f];
                big[nbig++] = (box){q.x * gscale, q.y * gscale, q.w * gscale, q.h * gscale};
                json_array_append_new(fl, json_pack("[f,f,f,f,i]", big[nbig - 1].x, big[nbig - 1].y,
                                                    big[nbig - 1].w, big[nbig - 1].h, 0));
            }
        /* cells of a 6 x 4 grid, in an order that spreads the pasted faces */
        int pasted = 0;
        for (int c = 0; c < 24 && pasted < gpaste; c++) {
            const int cell = (c * 7 + p) % 24, cx = cell % 6, cy = cell / 6;
            box cb = {cx * W / 6.0, cy * H / 4.0, W / 6.0, H / 4.0};
            int ok = 1;
            for (int k = 0; k < nbig && ok; k++) {
                box grown = {big[k].x - big[k].w, big[k].y - big[k].h, 3 * big[k].w, 3 * big[k].h};
                ok = iou(cb, grown) == 0;
            }
            if (!ok) continue;
            int f = next_face++ % nfaces;
            if (face_img[f] == bi) f = next_face++ % nfaces;
            const box q = faces[f];
            const double want = gface + (pasted * 37 % 71); /* face width 50..120 px */
            box r = {q.x + q.w / 2 - q.w * 0.8, q.y + q.h / 2 - q.h * 0.8, q.w * 1.6, q.h * 1.6};
            fn_image piece;
            box cl;
            double sc;
            const int side = (int)lround(want / q.w * fmax(r.w, r.h));
            if (crop_resize(&src[face_img[f]], r, side, &piece, &cl, &sc)) continue;
            const int px = (int)(cb.x + (cb.w - piece.width) / 2),
                      py = (int)(cb.y + (cb.h - piece.height) / 2);
            VipsImage *pi =
                vips_image_new_from_memory(piece.rgb, (size_t)piece.width * piece.height * 3,
                                           piece.width, piece.height, 3, VIPS_FORMAT_UCHAR);
            VipsImage *out = NULL;
            if (vips_insert(canvas, pi, &out, px, py, NULL)) return 1;
            g_object_unref(pi);
            g_object_unref(canvas);
            canvas = out;
            /* write_to_memory below needs the piece's pixels: copy now */
            VipsImage *mem = vips_image_copy_memory(canvas);
            g_object_unref(canvas);
            canvas = mem;
            fn_image_free(&piece);
            json_array_append_new(fl, json_pack("[f,f,f,f,i]", px + (q.x - cl.x) * sc,
                                                py + (q.y - cl.y) * sc, q.w * sc, q.h * sc, 1));
            pasted++;
        }
        snprintf(path, sizeof path, "%s/g%02d.jpg", dir, p);
        if (vips_jpegsave(canvas, path, "Q", 90, NULL)) return 1;
        g_object_unref(canvas);
        json_array_append_new(manifest,
                              json_pack("{s:s, s:i, s:i, s:o}", "file", path + strlen(dir) + 1,
                                        "width", W, "height", H, "faces", fl));
    }
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    if (json_dump_file(manifest, path, JSON_INDENT(1))) return 1;
    printf("group_photos %d photos\n", GROUP_PHOTOS);
    for (int i = 0; i < nsrc; i++)
        fn_image_free(&src[i]);
    json_decref(manifest);
    json_decref(g);
    return 0;
}

static double thread_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

/* Each way (tiles off, on, auto) over the whole set, BENCH_GROUP_REPEAT rounds (default 1) taken
 * in turn (off on auto off on auto ...) so that the machine's load falls on all of them alike;
 * the recall lines come from the first round (detection is deterministic), the CPU line gives
 * every round's figure. */
static int group_run(const char *dir)
{
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    json_error_t je;
    json_t *man = json_load_file(path, 0, &je);
    if (!man) return 1;
    fn_models *m;
    if (fn_models_load(NULL, FN_MODEL_SSD, &m, err, sizeof err)) return 1;
    fn_vision *v;
    if (fn_vision_new(m, &v)) return 1;
    static const fn_detect_tiles modes[] = {FN_DETECT_TILES_OFF, FN_DETECT_TILES_ON,
                                            FN_DETECT_TILES_AUTO};
    static const char *const names[] = {"group_default", "group_tiled", "group_auto"};
    enum { NMODES = 3, MAXREP = 16 };
    int repeat = (int)env_num("BENCH_GROUP_REPEAT", 1);
    if (repeat < 1) repeat = 1;
    if (repeat > MAXREP) repeat = MAXREP;
    double cpu[NMODES][MAXREP];
    const char *ways = getenv("BENCH_GROUP_WAYS"); /* e.g. "off,auto": only those */
    static const char *const way_names[] = {"off", "on", "auto"};
    for (int r = 0; r < repeat; r++)
        for (int mode = 0; mode < NMODES; mode++) {
            cpu[mode][r] = -1;
            if (ways && *ways && !strstr(ways, way_names[mode])) continue;
            fn_detect_opts o;
            fn_detect_opts_default(&o);
            o.landmarks = 0, o.descriptors = 0;
            o.tiles = modes[mode];
            int small = 0, small_found = 0, large = 0, large_found = 0, false_faces = 0;
            double ms = 0;
            for (size_t i = 0; i < json_array_size(man); i++) {
                json_t *e = json_array_get(man, i), *fl = json_object_get(e, "faces");
                snprintf(path, sizeof path, "%s/%s", dir,
                         json_string_value(json_object_get(e, "file")));
                fn_faces f;
                double t0 = thread_ms();
                if (fn_vision_detect_file(v, path, &o, &f, err, sizeof err)) return 1;
                ms += thread_ms() - t0;
                int used[256] = {0};
                for (size_t k = 0; k < json_array_size(fl); k++) {
                    json_t *q = json_array_get(fl, k);
                    box want = {json_number_value(json_array_get(q, 0)),
                                json_number_value(json_array_get(q, 1)),
                                json_number_value(json_array_get(q, 2)),
                                json_number_value(json_array_get(q, 3))};
                    const int is_small = (int)json_integer_value(json_array_get(q, 4));
                    int hit = 0;
                    for (size_t j = 0; j < f.n && j < 256 && !hit; j++) {
                        box d = {f.faces[j].x, f.faces[j].y, f.faces[j].width, f.faces[j].height};
                        if (!used[j] && iou(d, want) >= MATCH_IOU) used[j] = hit = 1;
                    }
                    if (is_small)
                        small++, small_found += hit;
                    else
                        large++, large_found += hit;
                }
                for (size_t j = 0; j < f.n && j < 256; j++)
                    false_faces += !used[j];
            }
            cpu[mode][r] = ms / json_array_size(man);
            if (r) continue;
            const char *name = names[mode];
            printf("%s_small_found %d/%d faces\n", name, small_found, small);
            printf("%s_small_recall %.3f ratio\n", name, small ? (double)small_found / small : 0);
            printf("%s_large_found %d/%d faces\n", name, large_found, large);
            printf("%s_false_faces %d faces\n", name, false_faces);
        }
    for (int mode = 0; mode < NMODES; mode++) {
        if (cpu[mode][0] < 0) continue;
        printf("%s_cpu_ms", names[mode]);
        for (int r = 0; r < repeat; r++)
            printf("%s%.1f", r ? "," : " ", cpu[mode][r]);
        printf(" ms/photo\n");
    }
    fn_vision_free(v);
    fn_models_free(m);
    json_decref(man);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (fn_vision_init()) return 1;
    if (argc == 4 && !strcmp(argv[1], "make")) return make(argv[2], argv[3]);
    if (argc == 4 && !strcmp(argv[1], "group")) return group_make(argv[2], argv[3]);
    if (argc == 3 && !strcmp(argv[1], "rungroup")) return group_run(argv[2]);
    if ((argc == 3 || argc == 4) && !strcmp(argv[1], "run"))
        return run(argv[2], argc == 4 ? argv[3] : NULL);
    fprintf(stderr, "usage: bench_recall make ROOT DIR | run DIR [REF.json] | group ROOT DIR | "
                    "rungroup DIR\n");
    return 2;
}
