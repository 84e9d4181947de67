/* cmd_detect.c: `facenames detect`: faces, landmarks and descriptors of image files, without a
 * library or the job engine.
 *
 *   facenames detect [--detector ssd|tiny] [--min-confidence F] [--min-face-size PX] [--json]
 *                    [--annotate DIR] [--models DIR] IMAGE...
 *
 * With --json, one JSON object per image per line on stdout, in the oriented photo's pixel
 * coordinates; an image that cannot be read gives {"image", "error": {"code", "message"}} and the
 * command goes on. Without --json, a readable block per image. --annotate writes a copy of each
 * photo with boxes and landmarks drawn into DIR. Exit: 0 when every image was read, 4 when some
 * were not (the others were still processed), 1 when the models cannot be loaded, 2 for a bad
 * command line. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/cli_util.h"
#include "cli/commands.h"
#include "facenames/vision.h"
#include "util/pathenc.h"
#include "util/pathenc_json.h"

static const char USAGE[] =
    "usage: facenames detect [OPTIONS] IMAGE...\n"
    "\n"
    "Finds the faces in image files (JPEG, PNG, WebP, HEIC/HEIF, TIFF, GIF) with their 68\n"
    "landmarks and 128-number descriptors. Needs no library.\n"
    "\n"
    "Options:\n"
    "  --detector ssd|tiny    SsdMobilenetv1 (default, more accurate) or TinyFaceDetector "
    "(faster)\n"
    "  --min-confidence F     drop detections scoring below F, 0..1 (default 0.5)\n"
    "  --min-face-size PX     drop faces whose box is smaller than PX pixels (default 0: keep "
    "all)\n"
    "  --precision auto|fp32|bf16|int16\n"
    "                         the networks' arithmetic (default: the vision.precision key,\n"
    "                         auto: int16 where it is the faster, on AVX2 CPUs without\n"
    "                         full-width AVX-512, else fp32); bf16 uses AMX tiles where the\n"
    "                         CPU has them, int16 16-bit integers where the CPU has AVX2;\n"
    "                         else each runs as fp32\n"
    "  --json                 one JSON object per image per line\n"
    "  --annotate DIR         write a copy of each image with boxes and landmarks drawn to DIR\n"
    "  --models DIR           model directory (default: $FACENAMES_MODELS, else the installed\n"
    "                         models, else the source tree's; see facenames --version)\n"
    "\n"
    "Coordinates are pixels of the photo as a person sees it (EXIF orientation applied).\n"
    "Exit codes: 0 every image read, 4 some images could not be read (reported, others done),\n"
    "1 the models could not be loaded, 2 bad command line.\n";

/* A JSON real, or null for a value JSON cannot carry (it never should happen). */
static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static void print_json_line(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(7) | JSON_PRESERVE_ORDER);
    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
        free(s);
    }
    fflush(stdout);
}

static void print_faces_json(const char *path, const fn_faces *f)
{
    json_t *o = json_object(), *faces = json_array();
    fn_json_set_path(o, "image", path);
    json_object_set_new(o, "width", json_integer(f->width));
    json_object_set_new(o, "height", json_integer(f->height));
    for (size_t i = 0; i < f->n; i++) {
        const fn_face *fc = &f->faces[i];
        json_t *face = json_object(), *box = json_object(), *lm = json_array(),
               *desc = json_array();
        json_object_set_new(box, "x", num(fc->x));
        json_object_set_new(box, "y", num(fc->y));
        json_object_set_new(box, "width", num(fc->width));
        json_object_set_new(box, "height", num(fc->height));
        json_object_set_new(face, "box", box);
        json_object_set_new(face, "score", num(fc->score));
        for (int k = 0; k < 68; k++) {
            json_t *pt = json_array();
            json_array_append_new(pt, num(fc->landmarks[k][0]));
            json_array_append_new(pt, num(fc->landmarks[k][1]));
            json_array_append_new(lm, pt);
        }
        json_object_set_new(face, "landmarks", lm);
        for (int k = 0; k < 128; k++)
            json_array_append_new(desc, num(fc->descriptor[k]));
        json_object_set_new(face, "descriptor", desc);
        json_array_append_new(faces, face);
    }
    json_object_set_new(o, "faces", faces);
    print_json_line(o);
    json_decref(o);
}

static void print_error_json(const char *path, int rc, const char *msg)
{
    json_t *o = json_object(), *e = json_object();
    fn_json_set_path(o, "image", path);
    json_object_set_new(e, "code", json_string(fn_errname(rc)));
    json_object_set_new(e, "message", fn_json_text(msg[0] ? msg : fn_strerror(rc)));
    json_object_set_new(o, "error", e);
    print_json_line(o);
    json_decref(o);
}

static void print_faces_text(const char *path, const fn_faces *f)
{
    printf("%s: %d x %d, %zu face%s", fn_term_str(path), f->width, f->height, f->n,
           f->n == 1 ? "" : "s");
    if (f->skipped_small) printf(" (%zu smaller than --min-face-size dropped)", f->skipped_small);
    printf("  [decode %.0f ms, detect %.0f ms, landmarks %.0f ms, descriptors %.0f ms]\n",
           f->ms_decode, f->ms_detect, f->ms_landmarks, f->ms_descriptors);
    if (f->n) printf("  %4s %8s %8s %8s %8s %6s\n", "face", "x", "y", "width", "height", "score");
    for (size_t i = 0; i < f->n; i++) {
        const fn_face *fc = &f->faces[i];
        printf("  %4zu %8.1f %8.1f %8.1f %8.1f %6.3f\n", i + 1, fc->x, fc->y, fc->width, fc->height,
               fc->score);
    }
    fflush(stdout);
}

/* ---- --annotate -------------------------------------------------------------------------------
 */

static void fill_rect(fn_image *im, int x0, int y0, int x1, int y1, const uint8_t c[3])
{
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > im->width) x1 = im->width;
    if (y1 > im->height) y1 = im->height;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            memcpy(im->rgb + ((size_t)y * im->width + x) * 3, c, 3);
}

static void draw_faces(fn_image *im, const fn_faces *f)
{
    static const uint8_t box_c[3] = {40, 230, 40}, pt_c[3] = {255, 40, 40};
    /* Line width grows with the photo so boxes stay visible on a 24-megapixel image. */
    int shorter = im->width < im->height ? im->width : im->height;
    int t = shorter / 400 > 2 ? shorter / 400 : 2, r = t > 2 ? t / 2 + 1 : 1;
    double sx = (double)im->width / f->width, sy = (double)im->height / f->height;
    for (size_t i = 0; i < f->n; i++) {
        const fn_face *fc = &f->faces[i];
        int x0 = (int)lround(fc->x * sx), y0 = (int)lround(fc->y * sy);
        int x1 = (int)lround((fc->x + fc->width) * sx), y1 = (int)lround((fc->y + fc->height) * sy);
        fill_rect(im, x0, y0, x1, y0 + t, box_c);
        fill_rect(im, x0, y1 - t, x1, y1, box_c);
        fill_rect(im, x0, y0, x0 + t, y1, box_c);
        fill_rect(im, x1 - t, y0, x1, y1, box_c);
        for (int k = 0; k < 68; k++) {
            int px = (int)lround(fc->landmarks[k][0] * sx),
                py = (int)lround(fc->landmarks[k][1] * sy);
            fill_rect(im, px - r, py - r, px + r + 1, py + r + 1, pt_c);
        }
    }
}

/* DIR/<file name>, keeping .png as PNG and writing everything else as JPEG. The k-th image of
 * this run (k > 0) whose name was already used gets "-k" before its extension, so a/x.jpg and
 * b/x.jpg do not overwrite each other. */
static void annotated_path(const char *dir, const char *path, int k, char *out, size_t len)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    int keep =
        dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
    int stem = dot ? (int)(dot - base) : (int)strlen(base);
    char suffix[16] = "";
    if (k > 0) snprintf(suffix, sizeof suffix, "-%d", k);
    snprintf(out, len, "%s/%.*s%s%s", dir, stem, base, suffix, keep ? dot : ".jpg");
}

/* How many earlier images of this run have the same file name as images[i]. */
static int same_name_before(char **images, int i)
{
    const char *b = strrchr(images[i], '/');
    b = b ? b + 1 : images[i];
    int k = 0;
    for (int j = 0; j < i; j++) {
        const char *c = strrchr(images[j], '/');
        if (!strcmp(c ? c + 1 : images[j], b)) k++;
    }
    return k;
}

static int annotate(cli_ctx *ctx, const char *dir, const char *path, int k, const fn_faces *f)
{
    fn_image im;
    char err[1024], out[4096];
    int rc = fn_image_load(path, NULL, &im, NULL, err, sizeof err);
    if (rc == 0) {
        draw_faces(&im, f);
        annotated_path(dir, path, k, out, sizeof out);
        rc = fn_image_save(&im, out, err, sizeof err);
        fn_image_free(&im);
    }
    if (rc) fprintf(stderr, "%s detect: --annotate: %s\n", ctx->prog, fn_term_str(err));
    return rc;
}

/* ---- the command ------------------------------------------------------------------------------
 */

/* The work once the command line is parsed. Returns the exit code. */
static int run_detect(cli_ctx *ctx, char **images, int nimages, const char *detector,
                      const char *conf_s, const char *size_s, const char *annotate_dir,
                      const char *models_dir, const char *precision, int json)
{
    if (nimages == 0) return cli_usage_error(ctx, "detect", "no image given");

    fn_detect_opts opts;
    fn_detect_opts_default(&opts);
    unsigned which = FN_MODEL_LANDMARKS | FN_MODEL_RECOGNITION;
    if (!strcmp(detector, "ssd")) {
        opts.detector = FN_DETECTOR_SSD;
        which |= FN_MODEL_SSD;
    } else if (!strcmp(detector, "tiny")) {
        opts.detector = FN_DETECTOR_TINY;
        which |= FN_MODEL_TINY;
    } else {
        return cli_usage_error(ctx, "detect", "--detector must be 'ssd' or 'tiny', not '%s'",
                               detector);
    }
    if (conf_s) {
        char *end;
        errno = 0;
        double c = strtod(conf_s, &end);
        if (errno || end == conf_s || *end || !(c >= 0 && c <= 1))
            return cli_usage_error(ctx, "detect", "--min-confidence must be a number in 0..1");
        opts.min_confidence = (float)c;
    }
    if (size_s) {
        long long px;
        if (cli_parse_ll(size_s, 0, 1000000, &px) != 0)
            return cli_usage_error(ctx, "detect", "--min-face-size must be a whole number >= 0");
        opts.min_face_size = (int)px;
    }
    if (!precision) precision = ctx->cfg.vision_precision;
    if (fn_vision_precision_parse(precision, &opts.precision) != 0)
        return cli_usage_error(ctx, "detect",
                               "--precision must be 'auto', 'fp32', 'bf16' or 'int16', not '%s'",
                               precision);
    const char *why = NULL;
    if (!fn_vision_precision_supported(opts.precision, &why))
        fprintf(stderr, "%s detect: note: %s\n", ctx->prog, why);
    if (annotate_dir) {
        struct stat st;
        if (mkdir(annotate_dir, 0777) != 0 && errno != EEXIST)
            return cli_error(ctx, "--annotate %s: %s", annotate_dir, strerror(errno));
        if (stat(annotate_dir, &st) != 0 || !S_ISDIR(st.st_mode))
            return cli_error(ctx, "--annotate %s: not a directory", annotate_dir);
    }

    char err[1024];
    fn_models *models = NULL;
    int rc = fn_models_load(models_dir, which, &models, err, sizeof err);
    if (rc) return cli_error(ctx, "%s", err);
    fn_vision *vis = NULL;
    rc = fn_vision_new(models, &vis);
    if (rc) {
        fn_models_free(models);
        return cli_error(ctx, "cannot set up the face networks: %s", fn_strerror(rc));
    }

    int failed = 0;
    for (int i = 0; i < nimages; i++) {
        fn_faces faces;
        err[0] = '\0';
        rc = fn_vision_detect_file(vis, images[i], &opts, &faces, err, sizeof err);
        if (rc) {
            failed++;
            if (json)
                print_error_json(images[i], rc, err);
            else
                fprintf(stderr, "%s detect: %s\n", ctx->prog,
                        fn_term_str(err[0] ? err : fn_strerror(rc)));
            continue;
        }
        if (json)
            print_faces_json(images[i], &faces);
        else
            print_faces_text(images[i], &faces);
        if (annotate_dir &&
            annotate(ctx, annotate_dir, images[i], same_name_before(images, i), &faces) != 0)
            failed++;
    }
    fn_vision_free(vis);
    fn_models_free(models);
    return failed ? CLI_EXIT_ITEMS : CLI_EXIT_OK;
}

int cmd_detect(cli_ctx *ctx, int argc, char **argv)
{
    const char *detector = "ssd", *conf_s = NULL, *size_s = NULL, *annotate_dir = NULL,
               *models_dir = NULL, *precision = NULL, *v;
    int json = 0, nimages = 0, r, only_images = 0;
    /* Options may come before or after the images; "--" ends them. Images keep their order. */
    char **images = calloc((size_t)argc + 1, sizeof *images);
    if (!images) return cli_error(ctx, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_images || a[0] != '-' || !a[1]) {
            images[nimages++] = argv[i];
            continue;
        }
        if (!strcmp(a, "--")) {
            only_images = 1;
            continue;
        }
        if (cli_is_help(a)) {
            free(images);
            fputs(USAGE, stdout);
            return CLI_EXIT_OK;
        }
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        if ((r = cli_opt_value(ctx, "detect", argv, argc, &i, "--detector", &v)) != 0)
            detector = v;
        else if ((r = cli_opt_value(ctx, "detect", argv, argc, &i, "--min-confidence", &v)))
            conf_s = v;
        else if ((r = cli_opt_value(ctx, "detect", argv, argc, &i, "--min-face-size", &v)))
            size_s = v;
        else if ((r = cli_opt_value(ctx, "detect", argv, argc, &i, "--annotate", &v)))
            annotate_dir = v;
        else if ((r = cli_opt_value(ctx, "detect", argv, argc, &i, "--models", &v)))
            models_dir = v;
        else if ((r = cli_opt_value(ctx, "detect", argv, argc, &i, "--precision", &v)))
            precision = v;
        else {
            cli_usage_error(ctx, "detect", "unknown option '%s'", a);
            r = -1;
        }
        if (r < 0) {
            free(images);
            return CLI_EXIT_USAGE;
        }
    }
    int rc = run_detect(ctx, images, nimages, detector, conf_s, size_s, annotate_dir, models_dir,
                        precision, json);
    free(images);
    return rc;
}
