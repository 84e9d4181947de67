/* import.c: the "import" job type: names from elsewhere into this library (docs/export.md).
 *
 * - A json export of another library (export.c): its photos are matched by content hash first,
 *   then by path; a photo this library does not have is added with its faces; people are matched
 *   by name (created when missing); each exported face is matched to a face here by overlap and
 *   its decision (person and state, rejected persons) applied.
 * - XMP face regions (mwg-rs) from other tools: for each photo of the library under the folder
 *   (or the one photo named), its sidecars (PHOTO.EXT.xmp, PHOTO.xmp) and the packet embedded in
 *   the photo (libvips "xmp-data"); each named region confirms the face it overlaps most, or
 *   becomes a face a person drew (origin user) when no detected face is there.
 *
 * A decision is never overwritten: a face here that is confirmed as someone else, ignored, or
 * drawn by a person keeps what it has, and the photo's item error (code "conflict") names both.
 * What does not conflict in the same photo is still applied. Every change of a face's person or
 * state is recorded in one audit entry per batch (actor "job:<id>", action "import"), with the
 * faces' before and after in audit_faces, in the batch's transaction.
 *
 * The plan for each photo (which face gets what) is made without the database: on the job's
 * thread from the rows the source read (json), or on a worker slot after reading the XMP (xmp);
 * the batch's write applies the plans. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <vips/vips.h>

#include "facenames/error.h"
#include "facenames/vision.h"
#include "store/library/library_interop.h"
#include "store/library/library_store.h"
#include "tasks/interop.h"
#include "tasks/xmp_regions.h"
#include "util/pathenc_json.h"

enum {
    C_ITEMS_TOTAL,
    C_ITEMS_DONE,
    C_PHOTOS_MATCHED,
    C_PHOTOS_ADDED,
    C_FACES_CONFIRMED,
    C_FACES_ADDED,
    C_PERSONS_CREATED,
    C_CONFLICTS,
    C_ERRORS,
    C_COUNT
};

static const char *const counters[C_COUNT] = {
    [C_ITEMS_TOTAL] = "items_total",
    [C_ITEMS_DONE] = "items_done",
    [C_PHOTOS_MATCHED] = "photos_matched",
    [C_PHOTOS_ADDED] = "photos_added",
    [C_FACES_CONFIRMED] = "faces_confirmed",
    [C_FACES_ADDED] = "faces_added",
    [C_PERSONS_CREATED] = "persons_created",
    [C_CONFLICTS] = "conflicts",
    [C_ERRORS] = "errors",
};

static const fn_param params[] = {
    {"path", FN_PARAM_STRING, NULL, NULL, 0, 0, NULL, "a json export, a folder or a photo"},
    {"batch", FN_PARAM_INT, NULL, "64", 1, 100000, NULL, "photos per commit"},
};

/* Region-to-face overlap: other tools draw looser boxes than the detector (digiKam's take in the
 * hair, Lightroom's the chin), so an intersection over union of 0.3 is a match. An export of this
 * library has the very same boxes, so 0.5 there. */
#define IOU_XMP  0.3
#define IOU_JSON 0.5

typedef enum { A_DECIDE, A_ADD, A_REJECT } act_kind;

typedef struct act {
    act_kind kind;
    int64_t face_id; /* A_DECIDE, A_REJECT: the face here (0: the face added by the act before) */
    char *person;    /* borrowed from the plan's source; NULL: none */
    int state;
    fn_xp_face add; /* A_ADD: the new face (person set at write) */
    int64_t person_before, cluster_before;
    int state_before;
} act;

typedef struct import_item {
    /* the photo here (id 0: to be added, then `add` is it) */
    fn_xp_photo here;
    int exists;
    fn_xp_photo add;
    json_t *src; /* json: the export's photo (borrowed) */
    fn_xmp_region *regs;
    size_t n_regs;
    act *acts;
    size_t n_acts, cap_acts;
    int tail; /* json: the persons list */
    char *conflict_msg;
    int conflicts;
} import_item;

typedef struct import_job {
    int json;
    json_t *doc;    /* json: the export */
    json_t *photos; /* its "photos" array */
    json_t *roots;  /* its "roots" */
    size_t next;    /* json: next photo index */
    int tail_done;
    const char *prefix; /* xmp: the folder or photo */
    char *photo;        /* xmp: the photo a sidecar named (prefix points here) */
    size_t prefix_len;
    int single; /* xmp: one photo */
    fn_store *s;
    fn_xp_reader *reader;
    fn_library_reader *lreader; /* photos by path */
    int64_t last_id;
    /* persons by name, found or created by this run (an open-addressing table): an import of
     * 100k faces names the same few hundred persons over and over */
    struct named {
        char *name;
        int64_t id;
    } * names;
    size_t n_names, cap_names;
} import_job;

/* ---- the plan ---------------------------------------------------------------------------------
 */

static act *new_act(import_item *x)
{
    if (x->n_acts == x->cap_acts) {
        size_t nc = x->cap_acts ? x->cap_acts * 2 : 8;
        act *g = realloc(x->acts, nc * sizeof *g);
        if (!g) return NULL;
        x->acts = g;
        x->cap_acts = nc;
    }
    act *a = &x->acts[x->n_acts++];
    memset(a, 0, sizeof *a);
    return a;
}

/* How a face stands, for a conflict's message: "confirmed as Ann", "ignored", "unnamed". */
static void describe(char *buf, size_t n, int state, int origin_user, const char *person)
{
    if (state == 2)
        snprintf(buf, n, "ignored");
    else if (person)
        snprintf(buf, n, "%s %s",
                 state == 1    ? "confirmed as"
                 : origin_user ? "drawn as"
                               : "named",
                 person);
    else
        snprintf(buf, n, "%s", origin_user ? "drawn without a name" : "unnamed");
}

/* The face here that box (x, y, w, h) overlaps most (IoU >= min), not already taken; -1. */
static int best_face(const fn_xp_photo *p, const char *taken, double bx, double by, double bw,
                     double bh, double min)
{
    int best = -1;
    double bi = min;
    for (size_t i = 0; i < p->n_faces; i++) {
        if (taken[i]) continue;
        const fn_xp_face *f = &p->faces[i];
        double iou = fn_rect_iou(f->x, f->y, f->width, f->height, bx, by, bw, bh);
        if (iou >= bi) {
            bi = iou;
            best = (int)i;
        }
    }
    return best;
}

/* Decide face f (here) as `person` with `state`, unless that overwrites a decision. */
static int decide(import_item *x, const fn_xp_face *f, const char *person, int state)
{
    int decided = f->state != 0 || f->origin_user;
    int same_person =
        (!person && !f->person) || (person && f->person && !strcmp(person, f->person));
    if (decided) {
        if (f->state == state && same_person) return 0; /* already so */
        if (f->state == 2 && state == 2) return 0;
        if (state == 0 && !person) return 0; /* the import has nothing to say about it */
        x->conflicts++;
        if (!x->conflict_msg) {
            char here[300], there[300];
            describe(here, sizeof here, f->state, f->origin_user, f->person);
            describe(there, sizeof there, state, 0, person);
            if (asprintf(&x->conflict_msg,
                         "the face at (%.0f, %.0f) is %s here and %s in the import", (double)f->x,
                         (double)f->y, here, there) < 0)
                x->conflict_msg = NULL;
        }
        return 0;
    }
    if (state == 0 && (f->person || !person)) return 0; /* a job's guess never replaces another */
    if (same_person && f->state == state) return 0;
    act *a = new_act(x);
    if (!a) return FN_ERR_NOMEM;
    a->kind = A_DECIDE;
    a->face_id = f->id;
    a->person = (char *)person;
    a->state = state;
    a->person_before = f->person_id;
    a->state_before = f->state;
    a->cluster_before = f->cluster_id;
    return 0;
}

static int plan_regions(import_item *x)
{
    fn_xp_photo *p = &x->here;
    char *taken = calloc(p->n_faces + 1, 1);
    if (!taken) return FN_ERR_NOMEM;
    int rc = 0;
    for (size_t r = 0; !rc && r < x->n_regs; r++) {
        const fn_xmp_region *g = &x->regs[r];
        double bx = g->x * p->width, by = g->y * p->height;
        double bw = g->w * p->width, bh = g->h * p->height;
        int k = best_face(p, taken, bx, by, bw, bh, IOU_XMP);
        if (k >= 0) {
            taken[k] = 1;
            if (p->faces[k].state == 2 && !p->faces[k].person) continue; /* not a face, it says */
            rc = decide(x, &p->faces[k], g->name, 1);
            continue;
        }
        act *a = new_act(x);
        if (!a) {
            rc = FN_ERR_NOMEM;
            break;
        }
        a->kind = A_ADD;
        a->person = g->name;
        a->state = 1;
        a->add.x = (float)bx;
        a->add.y = (float)by;
        a->add.width = (float)bw;
        a->add.height = (float)bh;
        a->add.origin_user = 1;
        a->add.state = 1;
    }
    free(taken);
    return rc;
}

/* An exported face as a row (vectors included when present). */
static void face_of_json(json_t *jf, fn_xp_face *f)
{
    memset(f, 0, sizeof *f);
    json_t *box = json_object_get(jf, "box");
    f->x = (float)json_number_value(json_object_get(box, "x"));
    f->y = (float)json_number_value(json_object_get(box, "y"));
    f->width = (float)json_number_value(json_object_get(box, "width"));
    f->height = (float)json_number_value(json_object_get(box, "height"));
    f->score = (float)json_number_value(json_object_get(jf, "score"));
    const char *o = json_string_value(json_object_get(jf, "origin"));
    f->origin_user = o && strcmp(o, "user") == 0;
    int st = fn_xp_state_parse(json_string_value(json_object_get(jf, "state")));
    f->state = st < 0 ? 0 : st;
    /* base64 of little-endian float32 (export.c); anything else is left out */
    f->has_landmarks = fn_f32_from_base64(json_string_value(json_object_get(jf, "landmarks")),
                                          &f->landmarks[0][0], 68 * 2) == 0;
    f->has_descriptor = fn_f32_from_base64(json_string_value(json_object_get(jf, "descriptor")),
                                           f->descriptor, 128) == 0;
}

static int valid_box(const fn_xp_face *f)
{
    return f->width > 0 && f->height > 0 && f->x > -1e6 && f->y > -1e6 && f->width < 1e6 &&
           f->height < 1e6;
}

static int add_rejects(import_item *x, json_t *jf, int64_t face_id)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(jf, "rejected"), i, r)
    {
        if (!json_is_string(r) || !*json_string_value(r)) continue;
        act *a = new_act(x);
        if (!a) return FN_ERR_NOMEM;
        a->kind = A_REJECT;
        a->face_id = face_id;
        a->person = (char *)json_string_value(r);
    }
    return 0;
}

static int plan_json(import_item *x)
{
    json_t *faces = json_object_get(x->src, "faces");
    size_t i;
    json_t *jf;
    int rc = 0;
    char *taken = x->exists ? calloc(x->here.n_faces + 1, 1) : NULL;
    if (x->exists && !taken) return FN_ERR_NOMEM;
    json_array_foreach(faces, i, jf)
    {
        if (rc) break;
        fn_xp_face f;
        face_of_json(jf, &f);
        if (!valid_box(&f)) continue;
        const char *person = json_string_value(json_object_get(jf, "person"));
        if (person && !*person) person = NULL;
        if (x->exists) {
            int k = best_face(&x->here, taken, f.x, f.y, f.width, f.height, IOU_JSON);
            if (k >= 0) {
                taken[k] = 1;
                if ((rc = decide(x, &x->here.faces[k], person, f.state)) == 0)
                    rc = add_rejects(x, jf, x->here.faces[k].id);
                continue;
            }
            /* the detector here did not find it: a decided face comes over as one a person drew
             * (ingest replaces only detected faces, so it stays); an undecided one is left */
            if (!f.origin_user && f.state == 0) continue;
            f.origin_user = 1;
        }
        act *a = new_act(x);
        if (!a) {
            rc = FN_ERR_NOMEM;
            break;
        }
        a->kind = A_ADD;
        a->person = (char *)person;
        a->state = f.state;
        a->add = f;
        rc = add_rejects(x, jf, 0);
    }
    free(taken);
    return rc;
}

/* ---- the source -------------------------------------------------------------------------------
 */

static int64_t parse_hash(const char *h)
{
    if (!h) return 0;
    char *end;
    unsigned long long v = strtoull(h, &end, 16);
    return *end || end == h ? 0 : (int64_t)v;
}

/* The absolute path an exported photo had: its root joined with its relative path. */
static char *json_photo_path(import_job *st, json_t *jp)
{
    char *rel = fn_json_get_path(jp, "path");
    if (!rel) return NULL;
    json_t *root = json_object_get(jp, "root");
    const char *r =
        json_is_integer(root)
            ? json_string_value(json_array_get(st->roots, (size_t)json_integer_value(root)))
            : NULL;
    if (!r) {
        if (rel[0] == '/') return rel;
        free(rel);
        return NULL;
    }
    char *abs;
    if (asprintf(&abs, "%s/%s", r, rel) < 0) abs = NULL;
    free(rel);
    return abs;
}

/* Reads the photo here (id) with its faces into x->here. */
static int load_here(import_job *st, int64_t id, import_item *x)
{
    /* fn_xp_photo_after(id - 1) is the photo with this id when it exists */
    int rc = fn_xp_photo_after(st->reader, id - 1, FN_XP_FACES, &x->here);
    if (rc == 0 && x->here.id != id) {
        fn_xp_photo_clear(&x->here);
        rc = FN_ERR_NOT_FOUND;
    }
    x->exists = rc == 0;
    return rc == FN_ERR_NOT_FOUND ? 0 : rc;
}

static int64_t lookup_photo(import_job *st, int64_t size, uint64_t hash, const char *path)
{
    int64_t id = 0;
    char *p = NULL;
    if (hash && fn_xp_photo_same_content(st->reader, size, hash, 0, NULL, NULL, &id, &p) == 0) {
        free(p);
        return id;
    }
    fn_photo_row row;
    if (path && fn_library_photo_by_path(st->lreader, path, &row) == 0) {
        id = row.id;
        fn_photo_row_clear(&row);
    }
    return id;
}

static int json_next(fn_batch *b, import_job *st, fn_item *it, import_item *x)
{
    if (st->next >= json_array_size(st->photos)) {
        if (st->tail_done) return FN_SOURCE_END;
        st->tail_done = 1;
        x->tail = 1;
        it->keep = 1;
        return fn_item_set_ref(it, "(persons)") < 0 ? FN_ERR_NOMEM : FN_SOURCE_ITEM;
    }
    size_t idx = st->next++;
    json_t *jp = json_array_get(st->photos, idx);
    x->src = jp;
    char *path = json_is_object(jp) ? json_photo_path(st, jp) : NULL;
    char ref[64];
    snprintf(ref, sizeof ref, "photos[%zu]", idx);
    int rc = fn_item_set_ref(it, path ? path : ref);
    if (rc < 0) {
        free(path);
        return rc;
    }
    if (!path) {
        free(path);
        rc =
            fn_item_fail(it, FN_ERR_CORRUPT, "bad_entry", "%s: a photo without a usable path", ref);
        return rc < 0 ? rc : FN_SOURCE_ITEM;
    }
    int64_t size = json_integer_value(json_object_get(jp, "size"));
    uint64_t hash = (uint64_t)parse_hash(json_string_value(json_object_get(jp, "hash")));
    int64_t id = lookup_photo(st, size, hash, path);
    if (id && (rc = load_here(st, id, x)) < 0) {
        free(path);
        fn_batch_fail(b, "import: reading a photo: %s", fn_store_errmsg(st->s));
        return rc;
    }
    if (!x->exists) {
        fn_xp_photo *a = &x->add;
        a->path = path;
        path = NULL;
        a->size = size;
        a->hash = hash;
        a->width = (int)json_integer_value(json_object_get(jp, "width"));
        a->height = (int)json_integer_value(json_object_get(jp, "height"));
        json_t *t = json_object_get(jp, "taken_at");
        a->taken_at = json_is_integer(t) ? json_integer_value(t) : -1;
        const char *fmt = json_string_value(json_object_get(jp, "format"));
        const char *status = json_string_value(json_object_get(jp, "status"));
        snprintf(a->format, sizeof a->format, "%s", fmt ? fmt : "");
        if (!status ||
            (strcmp(status, "ok") && strcmp(status, "no_faces") && strcmp(status, "error")))
            status = json_array_size(json_object_get(jp, "faces")) ? "ok" : "no_faces";
        snprintf(a->status, sizeof a->status, "%s", status);
        const char *m = json_string_value(json_object_get(jp, "models"));
        if (m && strlen(m) == 16) snprintf(a->models, sizeof a->models, "%s", m);
        /* mtime 0: the next ingest of the file compares its content hash and only touches it */
        a->mtime_ns = 0;
    }
    free(path);
    if ((rc = plan_json(x)) < 0) return rc;
    if (x->conflicts) {
        fn_batch_add(b, C_CONFLICTS, x->conflicts);
        rc = fn_item_fail(it, FN_ERR_CONFLICT, "conflict", "%s: %s%s", it->ref,
                          x->conflict_msg ? x->conflict_msg : "a decision differs",
                          x->conflicts > 1 ? " (and more faces)" : "");
        if (rc < 0) return rc;
    }
    it->keep = 1;
    return FN_SOURCE_ITEM;
}

static int xmp_next(fn_batch *b, import_job *st, fn_item *it, import_item *x)
{
    for (;;) {
        fn_xp_photo p;
        int rc = fn_xp_photo_after(st->reader, st->last_id, FN_XP_FACES, &p);
        if (rc == FN_ERR_NOT_FOUND) return FN_SOURCE_END;
        if (rc < 0) {
            fn_batch_fail(b, "import: reading photos: %s", fn_store_errmsg(st->s));
            return rc;
        }
        st->last_id = p.id;
        int under = st->single ? strcmp(p.path, st->prefix) == 0
                               : strncmp(p.path, st->prefix, st->prefix_len) == 0 &&
                                     p.path[st->prefix_len] == '/';
        if (!under || p.missing_at) {
            fn_xp_photo_clear(&p);
            continue;
        }
        x->here = p;
        x->exists = 1;
        if ((rc = fn_item_set_ref(it, p.path)) < 0) return rc;
        it->work = 1;
        it->keep = 1;
        return FN_SOURCE_ITEM;
    }
}

static int import_next_source(fn_batch *b, fn_item *it)
{
    import_job *st = fn_batch_state(b);
    import_item *x = it->data;
    int rc = fn_xp_reader_hold(st->reader, 1);
    if (rc < 0) {
        fn_batch_fail(b, "import: %s", fn_store_errmsg(st->s));
        return rc;
    }
    return st->json ? json_next(b, st, it, x) : xmp_next(b, st, it, x);
}

static int import_next(fn_batch *b, fn_item *it)
{
    return fn_interop_hook("import", it, import_next_source(b, it));
}

/* ---- the work on a slot (xmp) -----------------------------------------------------------------
 */

static int read_file(const char *path, char **out, size_t *len, size_t cap)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fn_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < cap)
        fn_buf_add(&b, chunk, n);
    fclose(f);
    if (b.oom) {
        fn_buf_free(&b);
        return -1;
    }
    *out = b.s ? b.s : calloc(1, 1);
    *len = b.len;
    return 0;
}

/* Adds the regions of one packet to x (a region already there by name and place is not added
 * twice: a sidecar and the embedded packet often say the same). */
static int take_regions(fn_item *it, import_item *x, const char *what, const char *packet,
                        size_t len)
{
    fn_xmp_region *r = NULL;
    size_t n = 0;
    char err[256];
    int rc = fn_xmp_regions_read(packet, len, &r, &n, err, sizeof err);
    if (rc < 0) {
        if (!it->err)
            fn_item_fail(it, rc, rc == FN_ERR_CORRUPT ? "bad_xmp" : NULL, "%s: %s", what, err);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        int dup = 0;
        for (size_t k = 0; k < x->n_regs && !dup; k++)
            dup = !strcmp(x->regs[k].name, r[i].name) &&
                  fn_rect_iou(x->regs[k].x, x->regs[k].y, x->regs[k].w, x->regs[k].h, r[i].x,
                              r[i].y, r[i].w, r[i].h) >= 0.5;
        fn_xmp_region *g = dup ? NULL : realloc(x->regs, (x->n_regs + 1) * sizeof *g);
        if (!g) {
            free(r[i].name);
            continue;
        }
        x->regs = g;
        x->regs[x->n_regs++] = r[i];
    }
    free(r);
    return 0;
}

static void import_process(fn_batch *b, void *slot, fn_item *it)
{
    (void)slot;
    import_item *x = it->data;
    const char *path = x->here.path;
    /* sidecars: darktable's and digiKam's PHOTO.EXT.xmp, then Lightroom's and exiftool's
     * PHOTO.xmp */
    char *side[2] = {NULL, NULL};
    if (asprintf(&side[0], "%s.xmp", path) < 0) side[0] = NULL;
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (dot && dot > slash && asprintf(&side[1], "%.*s.xmp", (int)(dot - path), path) < 0)
        side[1] = NULL;
    for (int k = 0; k < 2; k++) {
        char *text;
        size_t len;
        if (side[k] && read_file(side[k], &text, &len, 16u << 20) == 0) {
            take_regions(it, x, side[k], text, len);
            free(text);
        }
        free(side[k]);
    }
    /* the packet inside the photo: reading the header is enough, no pixel is decoded */
    if (fn_vision_init() == 0) {
        VipsImage *im = vips_image_new_from_file(path, "access", VIPS_ACCESS_SEQUENTIAL, NULL);
        if (im) {
            const void *data;
            size_t len;
            if (vips_image_get_typeof(im, "xmp-data") &&
                vips_image_get_blob(im, "xmp-data", &data, &len) == 0 && len)
                take_regions(it, x, path, data, len);
            g_object_unref(im);
        } else {
            vips_error_clear();
        }
    }
    if (plan_regions(x) < 0) {
        fn_item_fail(it, FN_ERR_NOMEM, NULL, "%s: out of memory", path);
        return;
    }
    if (x->conflicts) {
        fn_batch_add(b, C_CONFLICTS, x->conflicts);
        if (!it->err)
            fn_item_fail(it, FN_ERR_CONFLICT, "conflict", "%s: %s%s", path,
                         x->conflict_msg ? x->conflict_msg : "a decision differs",
                         x->conflicts > 1 ? " (and more faces)" : "");
    }
}

/* ---- the rows ---------------------------------------------------------------------------------
 */

typedef struct audit_ctx {
    int64_t id;
    fn_job_id job;
} audit_ctx;

static size_t name_slot(const import_job *st, const char *name)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    size_t i = (size_t)h & (st->cap_names - 1);
    while (st->names[i].name && strcmp(st->names[i].name, name) != 0)
        i = (i + 1) & (st->cap_names - 1);
    return i;
}

static int remember(import_job *st, const char *name, int64_t id)
{
    if (2 * (st->n_names + 1) > st->cap_names) {
        size_t old_cap = st->cap_names;
        struct named *old = st->names;
        st->cap_names = old_cap ? old_cap * 2 : 256;
        if (!(st->names = calloc(st->cap_names, sizeof *st->names))) {
            st->names = old;
            st->cap_names = old_cap;
            return FN_ERR_NOMEM;
        }
        for (size_t i = 0; i < old_cap; i++)
            if (old[i].name) st->names[name_slot(st, old[i].name)] = old[i];
        free(old);
    }
    char *copy = strdup(name);
    if (!copy) return FN_ERR_NOMEM;
    size_t i = name_slot(st, name);
    st->names[i].name = copy;
    st->names[i].id = id;
    st->n_names++;
    return 0;
}

/* The person named `name`, found or created (counted); 0 for no name. A person created by a batch
 * that then fails is remembered wrongly, but a failed batch fails the job, and a resume starts
 * with an empty table. */
static int person_id(fn_batch *b, fn_store_tx *tx, const char *name, int64_t *id)
{
    import_job *st = fn_batch_state(b);
    *id = 0;
    if (!name) return 0;
    if (st->cap_names) {
        size_t i = name_slot(st, name);
        if (st->names[i].name) {
            *id = st->names[i].id;
            return 0;
        }
    }
    int rc = fn_xp_person(tx, name, 0, id);
    if (rc == FN_ERR_NOT_FOUND) {
        rc = fn_xp_person(tx, name, 1, id);
        if (rc == 0) fn_batch_add(b, C_PERSONS_CREATED, 1);
    }
    return rc == 0 ? remember(st, name, *id) : rc;
}

static int audit(fn_store_tx *tx, audit_ctx *a, const char *source)
{
    if (a->id) return 0;
    char actor[48];
    snprintf(actor, sizeof actor, "job:%lld", (long long)a->job);
    json_t *d = json_object();
    fn_json_set_path(d, "source", source);
    char *detail = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    int rc = fn_xp_audit(tx, actor, "import", detail, a->job, &a->id);
    free(detail);
    return rc;
}

static int apply(fn_batch *b, fn_store_tx *tx, import_item *x, audit_ctx *au, const char *source)
{
    int64_t photo = x->here.id;
    int rc = 0;
    if (!x->exists) {
        /* another item of this batch may have added it already (the same photo twice) */
        int64_t id = 0;
        rc = fn_xp_find_photo(tx, x->add.size, x->add.hash, x->add.path, &id);
        if (rc == FN_ERR_NOT_FOUND) {
            rc = fn_xp_insert_photo(tx, &x->add, fn_job_id_of(fn_batch_ctx(b)), &id);
            if (rc == 0) fn_batch_add(b, C_PHOTOS_ADDED, 1);
        } else if (rc == 0) {
            return 0; /* already added by this batch: its faces came with it */
        }
        if (rc < 0) return rc;
        photo = id;
    } else if (x->src || x->n_regs) {
        fn_batch_add(b, C_PHOTOS_MATCHED, 1); /* (a photo without XMP matched nothing) */
    }
    int64_t last_added = 0;
    for (size_t i = 0; !rc && i < x->n_acts; i++) {
        act *a = &x->acts[i];
        int64_t pid = 0;
        if (a->kind != A_REJECT || a->person) rc = person_id(b, tx, a->person, &pid);
        if (rc) break;
        if (a->kind == A_REJECT) {
            int64_t face = a->face_id ? a->face_id : last_added;
            if (face && pid) rc = fn_xp_cannot_link(tx, face, pid);
            continue;
        }
        if (a->kind == A_ADD) {
            a->add.person_id = pid;
            a->add.state = a->state;
            if ((rc = fn_xp_insert_face(tx, photo, &a->add, &last_added)) < 0) break;
            fn_batch_add(b, C_FACES_ADDED, 1);
            if (a->state == 1) fn_batch_add(b, C_FACES_CONFIRMED, 1);
            /* a face that arrives with a decision is audited like one decided here */
            if (!pid && a->state == 0) continue;
            if ((rc = audit(tx, au, source)) < 0) break;
            rc = fn_xp_audit_face(tx, au->id, last_added, 0, pid, 0, a->state, 0, 0);
            continue;
        }
        if ((rc = audit(tx, au, source)) < 0) break;
        if ((rc = fn_xp_face_decide(tx, a->face_id, pid, a->state)) < 0) break;
        if (a->state == 1) fn_batch_add(b, C_FACES_CONFIRMED, 1);
        rc = fn_xp_audit_face(tx, au->id, a->face_id, a->person_before, pid, a->state_before,
                              a->state, a->cluster_before, a->cluster_before);
    }
    return rc;
}

static int import_write(fn_batch *b, fn_store_tx *tx, fn_item *const *items, size_t n)
{
    import_job *st = fn_batch_state(b);
    fn_xp_reader_hold(st->reader, 0); /* the next lookups must see this commit */
    audit_ctx au = {0, fn_job_id_of(fn_batch_ctx(b))};
    const char *source = fn_batch_string(b, "path");
    for (size_t i = 0; i < n; i++) {
        import_item *x = items[i]->data;
        int rc = 0;
        if (x->tail) {
            /* the persons of the export, those without faces too */
            size_t k;
            json_t *p;
            json_array_foreach(json_object_get(st->doc, "persons"), k, p)
            {
                const char *name = json_string_value(json_object_get(p, "name"));
                int64_t id;
                if (name && *name && (rc = person_id(b, tx, name, &id)) < 0) break;
            }
        } else if (x->exists || x->add.path) {
            /* a photo whose XMP was not readable has no plan, only its error */
            rc = apply(b, tx, x, &au, source);
        }
        if (rc < 0) {
            fn_batch_fail(b, "import: %s: %s", items[i]->ref ? items[i]->ref : "",
                          fn_store_errmsg(fn_store_tx_store(tx)));
            return rc;
        }
    }
    return 0;
}

/* ---- opening ----------------------------------------------------------------------------------
 */

static int open_json(fn_batch *b, import_job *st, const char *path)
{
    json_error_t jerr;
    /* read whole, then parsed from memory: json_load_file reads a character at a time */
    char *text = NULL;
    size_t len = 0;
    if (read_file(path, &text, &len, (size_t)1 << 32) < 0) {
        fn_batch_fail(b, "import: %s: cannot read it", path);
        return FN_ERR_UNREADABLE;
    }
    st->doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    free(text);
    if (!st->doc) {
        fn_batch_fail(b, "import: %s: not a json export (line %d: %s)", path, jerr.line, jerr.text);
        return FN_ERR_CORRUPT;
    }
    const char *fmt = json_string_value(json_object_get(st->doc, "format"));
    json_t *ver = json_object_get(st->doc, "version");
    if (!fmt || strcmp(fmt, "facenames-export") != 0 || !json_is_integer(ver)) {
        fn_batch_fail(b,
                      "import: %s: not a facenames export (no \"format\": "
                      "\"facenames-export\" and \"version\")",
                      path);
        return FN_ERR_CORRUPT;
    }
    if (json_integer_value(ver) != 1) {
        fn_batch_fail(b, "import: %s: export version %lld; this facenames reads version 1", path,
                      (long long)json_integer_value(ver));
        return FN_ERR_VERSION;
    }
    st->photos = json_object_get(st->doc, "photos");
    st->roots = json_object_get(st->doc, "roots");
    if (!json_is_array(st->photos)) {
        fn_batch_fail(b, "import: %s: \"photos\" is not an array", path);
        return FN_ERR_CORRUPT;
    }
    fn_batch_set(b, C_ITEMS_TOTAL, (int64_t)json_array_size(st->photos) + 1);
    /* the driver's count of source items handled is the index of the next photo */
    st->next = (size_t)fn_batch_next_index(b);
    if (st->next > json_array_size(st->photos)) {
        st->next = json_array_size(st->photos);
        st->tail_done = 1;
    }
    return 0;
}

static int import_open(fn_batch *b)
{
    import_job *st = fn_batch_state(b);
    const char *path = fn_batch_string(b, "path");
    if (!(st->s = fn_batch_reader(b))) {
        fn_batch_fail(b, "import: %s", fn_engine_errmsg(fn_job_engine(fn_batch_ctx(b))));
        return FN_ERR_DB;
    }
    int rc;
    if ((rc = fn_library_migrate(st->s)) < 0 || (rc = fn_xp_reader_new(st->s, &st->reader)) < 0 ||
        (rc = fn_library_reader_new(st->s, &st->lreader)) < 0) {
        fn_batch_fail(b, "import: %s", fn_store_errmsg(st->s));
        return rc;
    }
    struct stat sb;
    if (path[0] != '/' || stat(path, &sb) != 0) {
        fn_batch_fail(b, "import: %s: no such file or folder (give an absolute path)", path);
        return FN_ERR_NOT_FOUND;
    }
    size_t len = strlen(path);
    if (S_ISREG(sb.st_mode) && len > 5 && strcasecmp(path + len - 5, ".json") == 0) {
        st->json = 1;
        return open_json(b, st, path);
    }
    if (fn_xmp_init() < 0) {
        fn_batch_fail(b, "import: the XMP toolkit (exempi) could not be initialised");
        return FN_ERR_UNSUPPORTED;
    }
    st->prefix = path;
    st->prefix_len = len;
    while (st->prefix_len > 1 && path[st->prefix_len - 1] == '/')
        st->prefix_len--;
    st->single = !S_ISDIR(sb.st_mode);
    /* a sidecar named for its photo (PHOTO.EXT.xmp): the photo is what is imported */
    if (st->single && len > 4 && strcasecmp(path + len - 4, ".xmp") == 0) {
        if (!(st->photo = strndup(path, len - 4))) return FN_ERR_NOMEM;
        st->prefix = st->photo;
        st->prefix_len = len - 4;
    }
    if (st->single) {
        fn_batch_set(b, C_ITEMS_TOTAL, 1);
    } else {
        char *pre;
        if (asprintf(&pre, "%.*s/", (int)st->prefix_len, path) < 0) return FN_ERR_NOMEM;
        fn_batch_set(b, C_ITEMS_TOTAL, fn_xp_count_photos(st->s, pre));
        free(pre);
    }
    const char *ck = fn_batch_checkpoint(b);
    json_error_t jerr;
    json_t *c = ck ? json_loads(ck, 0, &jerr) : NULL;
    st->last_id = json_integer_value(json_object_get(c, "last_id"));
    json_decref(c);
    return 0;
}

static char *import_cursor(fn_batch *b)
{
    import_job *st = fn_batch_state(b);
    if (st->json) return NULL; /* next_index is the photo index */
    char *s;
    if (asprintf(&s, "{\"last_id\":%lld}", (long long)st->last_id) < 0) return NULL;
    return s;
}

static void import_close(fn_batch *b)
{
    import_job *st = fn_batch_state(b);
    json_decref(st->doc);
    fn_xp_reader_free(st->reader);
    fn_library_reader_free(st->lreader);
    free(st->photo);
    for (size_t i = 0; i < st->cap_names; i++)
        free(st->names[i].name);
    free(st->names);
}

static void import_item_clear(fn_batch *b, fn_item *it)
{
    (void)b;
    import_item *x = it->data;
    fn_xp_photo_clear(&x->here);
    fn_xp_photo_clear(&x->add);
    fn_xmp_regions_free(x->regs, x->n_regs);
    free(x->acts);
    free(x->conflict_msg);
}

static fn_resolution import_resolution(const char *code)
{
    /* a conflict or a malformed packet needs a person, not another run */
    (void)code;
    return FN_RES_SKIP;
}

static char *import_summary(const fn_job_info *job, void *user)
{
    (void)user;
    json_error_t jerr;
    json_t *pr = json_loads(job->progress ? job->progress : "{}", 0, &jerr);
    json_t *c = json_object_get(pr, "counters");
#define C(name) json_integer_value(json_object_get(c, name))
    char *s;
    if (asprintf(&s,
                 "import %lld: %lld photos matched, %lld added; %lld faces confirmed, %lld added; "
                 "%lld persons created; %lld conflicts, %lld errors%s\n",
                 (long long)job->id, C("photos_matched"), C("photos_added"), C("faces_confirmed"),
                 C("faces_added"), C("persons_created"), C("conflicts"), C("errors"),
                 C("errors") ? " (facenames jobs errors ID lists them)" : "") < 0)
        s = NULL;
#undef C
    json_decref(pr);
    return s;
}

const fn_jobtype fn_import_type = {
    .type = "import",
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .counters = counters,
    .n_counters = C_COUNT,
    .done_counter = C_ITEMS_DONE,
    .total_counter = C_ITEMS_TOTAL,
    .errors_counter = C_ERRORS,
    .item_ref = "the photo's path",
    .rate_unit = "photos",
    .batch_param = "batch",
    .flush_items = 4096,
    .flush_ms = 1000,
    .mem_mb = 256,
    .job_size = sizeof(import_job),
    .item_size = sizeof(import_item),
    .open = import_open,
    .close = import_close,
    .next = import_next,
    .process = import_process,
    .write = import_write,
    .cursor = import_cursor,
    .item_clear = import_item_clear,
    .resolution = import_resolution,
    .summary = import_summary,
};
