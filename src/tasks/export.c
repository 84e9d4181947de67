/* export.c: the "export" job type: the library's people, faces and photos in formats other tools
 * read (docs/export.md).
 *
 * - json: one versioned file, DIR/facenames-export.json (the JSON Schema is in docs/export.md);
 * - csv: one row per face, DIR/facenames-export.csv;
 * - xmp: a sidecar PHOTO.EXT.xmp per photo with named faces, next to the photo or under DIR at
 *   the photo's path below its root; an existing sidecar is merged (xmp_regions.h), never
 *   clobbered, and photos themselves are never written.
 *
 * Items are photos in id order; the source reads each photo with its faces on the job's thread
 * (the read connection), the worker slots format it (json, csv) or merge and write its sidecar
 * (xmp), and the batch's write appends the formatted text to the output in source order.
 *
 * Resume: the file is written as DIR/NAME.part and renamed when complete. The cursor holds the
 * last photo id and the byte length of the part file that the commit covers; resuming truncates
 * the part file to that length, so text appended by a batch that did not commit is dropped. The
 * file is flushed to disk before each commit, so the length is never ahead of the data. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "facenames/error.h"
#include "store/library/library_interop.h"
#include "store/library/library_store.h"
#include "tasks/interop.h"
#include "tasks/xmp_regions.h"

enum {
    C_ITEMS_TOTAL, /* the photos, and the end of the file (json, csv): the progress pair */
    C_ITEMS_DONE,
    C_PHOTOS_EXPORTED,
    C_FACES_EXPORTED,
    C_SIDECARS_WRITTEN,
    C_ERRORS,
    C_COUNT
};

static const char *const counters[C_COUNT] = {
    [C_ITEMS_TOTAL] = "items_total",           [C_ITEMS_DONE] = "items_done",
    [C_PHOTOS_EXPORTED] = "photos_exported",   [C_FACES_EXPORTED] = "faces_exported",
    [C_SIDECARS_WRITTEN] = "sidecars_written", [C_ERRORS] = "errors",
};

static const char *const formats[] = {"json", "xmp", "csv", NULL};

static const fn_param params[] = {
    {"format", FN_PARAM_STRING, NULL, NULL, 0, 0, formats, "json, xmp or csv"},
    /* "-": next to each photo (xmp only) */
    {"to", FN_PARAM_STRING, NULL, "\"-\"", 0, 0, NULL, "an absolute folder, or - (xmp)"},
    {"with_descriptors", FN_PARAM_BOOL, NULL, "false", 0, 0, NULL, NULL},
    {"batch", FN_PARAM_INT, NULL, "256", 1, 100000, NULL, "photos per commit"},
};

enum { F_JSON, F_XMP, F_CSV };

typedef struct export_job {
    int format;
    int vectors;
    const char *to; /* NULL: next to each photo */
    fn_store *s;
    fn_xp_reader *reader;
    fn_roots roots;
    int64_t last_id;
    int done; /* the tail item was handed over */
    char *part, *final;
    int fd;
    int64_t offset; /* bytes of the part file the last commit covers */
    int64_t head;   /* bytes of the header (json: a photo after it needs no comma) */
    int body;       /* a photo has been written after the header */
} export_job;

typedef struct export_item {
    fn_xp_photo photo;
    int tail;
    fn_buf text;
} export_item;

/* ---- formatting -------------------------------------------------------------------------------
 */

static void json_photo(export_job *st, const fn_xp_photo *p, fn_buf *b)
{
    const char *rel = NULL;
    int root = fn_roots_find(&st->roots, p->path, &rel);
    fn_buf_str(b, "    {");
    if (root >= 0) {
        fn_buf_printf(b, "\"root\": %d, ", root);
        fn_buf_json_path(b, "path", rel);
    } else {
        fn_buf_str(b, "\"root\": null, ");
        fn_buf_json_path(b, "path", p->path);
    }
    fn_buf_printf(b,
                  ", \"hash\": \"%016llx\", \"size\": %lld, \"width\": %d, \"height\": %d,"
                  " \"format\": ",
                  (unsigned long long)p->hash, (long long)p->size, p->width, p->height);
    fn_buf_json_string(b, p->format);
    fn_buf_str(b, ", \"taken_at\": ");
    if (p->taken_at >= 0)
        fn_buf_printf(b, "%lld", (long long)p->taken_at);
    else
        fn_buf_str(b, "null");
    fn_buf_printf(b, ", \"status\": \"%s\", \"missing\": %s, \"models\": ", p->status,
                  p->missing_at ? "true" : "false");
    if (p->models[0] && st->vectors)
        fn_buf_printf(b, "\"%s\"", p->models);
    else
        fn_buf_str(b, "null");
    /* boxes and scores with %.9g: the same float when read back */
    fn_buf_str(b, ", \"faces\": [");
    for (size_t i = 0; i < p->n_faces; i++) {
        const fn_xp_face *f = &p->faces[i];
        fn_buf_printf(
            b,
            "%s\n      {\"box\": {\"x\": %.9g, \"y\": %.9g, \"width\": %.9g, \"height\":"
            " %.9g}, \"score\": %.9g, \"origin\": \"%s\", \"state\": \"%s\", \"person\": ",
            i ? "," : "", f->x, f->y, f->width, f->height, f->score,
            f->origin_user ? "user" : "auto", fn_xp_state_name(f->state));
        if (f->person)
            fn_buf_json_string(b, f->person);
        else
            fn_buf_str(b, "null");
        fn_buf_printf(b, ", \"rejected\": %s", f->rejected ? f->rejected : "[]");
        /* vectors as base64 of little-endian float32: exact, compact, and cheap both ways */
        if (f->has_landmarks) fn_buf_f32(b, ", \"landmarks\": ", &f->landmarks[0][0], 68 * 2);
        if (st->vectors && f->has_descriptor)
            fn_buf_f32(b, ", \"descriptor\": ", f->descriptor, 128);
        fn_buf_str(b, "}");
    }
    fn_buf_str(b, p->n_faces ? "\n    ]}" : "]}");
}

/* One CSV field, quoted when it must be (RFC 4180). */
static void csv_field(fn_buf *b, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fn_buf_str(b, s);
        return;
    }
    fn_buf_str(b, "\"");
    for (const char *p = s; *p; p++) {
        if (*p == '"') fn_buf_str(b, "\"");
        fn_buf_add(b, p, 1);
    }
    fn_buf_str(b, "\"");
}

static const char csv_header[] =
    "photo,photo_width,photo_height,face_id,x,y,width,height,score,person,state,origin\n";

static void csv_photo(const fn_xp_photo *p, fn_buf *b)
{
    for (size_t i = 0; i < p->n_faces; i++) {
        const fn_xp_face *f = &p->faces[i];
        csv_field(b, p->path);
        fn_buf_printf(b, ",%d,%d,%lld,%.3f,%.3f,%.3f,%.3f,%.5f,", p->width, p->height,
                      (long long)f->id, f->x, f->y, f->width, f->height, f->score);
        csv_field(b, f->person ? f->person : "");
        fn_buf_printf(b, ",%s,%s\n", fn_xp_state_name(f->state), f->origin_user ? "user" : "auto");
    }
}

/* ---- xmp sidecars -----------------------------------------------------------------------------
 */

static int mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc != 0 && errno != EEXIST) return -1;
    }
    return 0;
}

static int read_all(const char *path, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? 0 : -1;
    fn_buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < (64u << 20))
        fn_buf_add(&b, chunk, n);
    int bad = ferror(f) || b.oom;
    fclose(f);
    if (bad) {
        fn_buf_free(&b);
        return -1;
    }
    *out = b.s;
    *len = b.len;
    return 0;
}

static void xmp_photo(fn_batch *b, export_job *st, fn_item *it, export_item *x)
{
    const fn_xp_photo *p = &x->photo;
    char *side;
    if (!st->to) {
        if (asprintf(&side, "%s.xmp", p->path) < 0) side = NULL;
    } else {
        const char *rel = NULL;
        if (fn_roots_find(&st->roots, p->path, &rel) < 0) rel = p->path + 1;
        if (asprintf(&side, "%s/%s.xmp", st->to, rel) < 0) side = NULL;
    }
    if (!side) {
        fn_item_fail(it, FN_ERR_NOMEM, NULL, "%s: out of memory", p->path);
        return;
    }
    fn_xmp_region *regs = calloc(p->n_faces ? p->n_faces : 1, sizeof *regs);
    size_t n = 0;
    for (size_t i = 0; regs && i < p->n_faces; i++) {
        const fn_xp_face *f = &p->faces[i];
        if (!f->person || f->state == 2 || p->width <= 0 || p->height <= 0) continue;
        regs[n].name = f->person; /* borrowed */
        regs[n].x = f->x / p->width;
        regs[n].y = f->y / p->height;
        regs[n].w = f->width / p->width;
        regs[n].h = f->height / p->height;
        n++;
    }
    char *old = NULL, *out = NULL, *tmp = NULL;
    size_t old_len = 0, out_len = 0;
    char err[256] = "";
    int rc = regs ? 0 : FN_ERR_NOMEM;
    if (!rc && (st->to ? mkdirs(side) : 0) < 0) {
        rc = FN_ERR_IO;
        snprintf(err, sizeof err, "cannot make its folder: %s", strerror(errno));
    }
    if (!rc && read_all(side, &old, &old_len) < 0) {
        rc = FN_ERR_UNREADABLE;
        snprintf(err, sizeof err, "cannot read the existing sidecar: %s", strerror(errno));
    }
    if (!rc)
        rc = fn_xmp_regions_merge(old, old_len, regs, n, p->width, p->height, &out, &out_len, err,
                                  sizeof err);
    if (!rc && asprintf(&tmp, "%s.fn-tmp", side) < 0) {
        tmp = NULL;
        rc = FN_ERR_NOMEM;
    }
    if (!rc) {
        /* write then rename: a reader never sees half a sidecar, and a crash leaves the old one */
        FILE *f = fopen(tmp, "wb");
        int ok = f && fwrite(out, 1, out_len, f) == out_len;
        if (f && fclose(f) != 0) ok = 0;
        if (!ok || rename(tmp, side) != 0) {
            rc = FN_ERR_IO;
            snprintf(err, sizeof err, "cannot write it: %s", strerror(errno));
            unlink(tmp);
        }
    }
    if (rc) {
        /* the sidecar that could not be read or written names the failure; an existing sidecar
         * that is not XMP is left alone */
        fn_item_fail(it, rc, rc == FN_ERR_CORRUPT ? "bad_xmp" : NULL, "%s: %s", side,
                     err[0] ? err : fn_strerror(rc));
    } else {
        fn_batch_add(b, C_SIDECARS_WRITTEN, 1);
        fn_batch_add(b, C_PHOTOS_EXPORTED, 1);
        fn_batch_add(b, C_FACES_EXPORTED, (int64_t)n);
    }
    free(regs);
    free(old);
    free(out);
    free(tmp);
    free(side);
}

/* ---- the type ---------------------------------------------------------------------------------
 */

static int export_next_source(fn_batch *b, fn_item *it)
{
    export_job *st = fn_batch_state(b);
    export_item *x = it->data;
    if (st->done) return FN_SOURCE_END;
    unsigned what = FN_XP_FACES;
    /* export writes nothing to the library: one snapshot for the whole run, a consistent one */
    int rc = fn_xp_reader_hold(st->reader, 1);
    if (rc < 0) {
        fn_batch_fail(b, "export: %s", fn_store_errmsg(st->s));
        return rc;
    }
    if (st->format == F_JSON) what |= FN_XP_VECTORS;
    if (st->format == F_XMP) what |= FN_XP_NAMED_ONLY;
    rc = fn_xp_photo_after(st->reader, st->last_id, what, &x->photo);
    if (rc == FN_ERR_NOT_FOUND) {
        st->done = 1;
        if (st->format == F_XMP) return FN_SOURCE_END;
        /* the tail: the persons and the end of the document (json), or nothing (csv); then the
         * part file is complete and renamed */
        x->tail = 1;
        it->keep = 1;
        if ((rc = fn_item_set_ref(it, "(end of export)")) < 0) return rc;
        if (st->format == F_JSON) {
            char *persons = fn_xp_persons_json(st->s);
            if (!persons) {
                fn_batch_fail(b, "export: reading the persons: %s", fn_store_errmsg(st->s));
                return FN_ERR_DB;
            }
            fn_buf_printf(&x->text, "\n  ],\n  \"persons\": %s\n}\n", persons);
            free(persons);
        }
        return x->text.oom ? FN_ERR_NOMEM : FN_SOURCE_ITEM;
    }
    if (rc < 0) {
        fn_batch_fail(b, "export: reading photos: %s", fn_store_errmsg(st->s));
        return rc;
    }
    st->last_id = x->photo.id;
    if ((rc = fn_item_set_ref(it, x->photo.path)) < 0) return rc;
    /* xmp: a photo without named faces gets no sidecar; a missing photo has nowhere to put one
     * next to it */
    if (st->format == F_XMP && (!x->photo.n_faces || (x->photo.missing_at && !st->to)))
        return FN_SOURCE_ITEM;
    it->work = 1;
    it->keep = 1;
    return FN_SOURCE_ITEM;
}

static int export_next(fn_batch *b, fn_item *it)
{
    return fn_interop_hook("export", it, export_next_source(b, it));
}

static void export_process(fn_batch *b, void *slot, fn_item *it)
{
    (void)slot;
    export_job *st = fn_batch_state(b);
    export_item *x = it->data;
    if (st->format == F_XMP) {
        xmp_photo(b, st, it, x);
        return;
    }
    if (st->format == F_JSON) {
        /* photos after the first are preceded by a comma: the first item of the file is the one
         * with the smallest id, which the header's position tells (offset 0 of the body) */
        json_photo(st, &x->photo, &x->text);
    } else {
        csv_photo(&x->photo, &x->text);
    }
    fn_batch_add(b, C_PHOTOS_EXPORTED, 1);
    fn_batch_add(b, C_FACES_EXPORTED, (int64_t)x->photo.n_faces);
    if (x->text.oom) fn_item_fail(it, FN_ERR_NOMEM, NULL, "%s: out of memory", x->photo.path);
}

/* The bytes the batch's items add to the part file, in source order. */
static void batch_bytes(fn_batch *b, int64_t start, int64_t *end, int *first_done)
{
    export_job *st = fn_batch_state(b);
    fn_item *const *items;
    size_t n = fn_batch_items(b, &items);
    int64_t off = start;
    for (size_t i = 0; i < n; i++) {
        export_item *x = items[i]->data;
        if (items[i]->err || !x->text.len) continue;
        /* json photos are separated by commas: every photo but the file's first */
        if (st->format == F_JSON && !x->tail) off += *first_done ? 2 : 1;
        if (st->format == F_JSON && !x->tail) *first_done = 1;
        off += (int64_t)x->text.len;
    }
    *end = off;
}

static char *export_cursor(fn_batch *b)
{
    export_job *st = fn_batch_state(b);
    int64_t end = st->offset;
    int first_done = st->body;
    if (st->fd >= 0) batch_bytes(b, st->offset, &end, &first_done);
    json_t *j = json_pack("{s:I, s:I, s:I}", "last_id", (json_int_t)st->last_id, "offset",
                          (json_int_t)end, "head", (json_int_t)st->head);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return s;
}

static int write_fully(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int export_write(fn_batch *b, fn_store_tx *tx, fn_item *const *items, size_t n)
{
    (void)tx;
    export_job *st = fn_batch_state(b);
    if (st->fd < 0) return 0;
    int first_done = st->body;
    int tail = 0;
    for (size_t i = 0; i < n; i++) {
        export_item *x = items[i]->data;
        tail |= x->tail;
        if (items[i]->err || !x->text.len) continue;
        int rc = 0;
        if (st->format == F_JSON && !x->tail) {
            rc = write_fully(st->fd, first_done ? ",\n" : "\n", first_done ? 2 : 1);
            first_done = 1;
        }
        if (!rc) rc = write_fully(st->fd, x->text.s, x->text.len);
        if (rc < 0) {
            fn_batch_fail(b, "export: writing %s: %s", st->part, strerror(errno));
            return FN_ERR_IO;
        }
    }
    /* the commit records how far the file goes: it must be on disk first */
    if (fdatasync(st->fd) != 0) {
        fn_batch_fail(b, "export: writing %s: %s", st->part, strerror(errno));
        return FN_ERR_IO;
    }
    off_t end = lseek(st->fd, 0, SEEK_END);
    st->offset = (int64_t)end;
    st->body = first_done;
    if (tail) {
        close(st->fd);
        st->fd = -1;
        if (rename(st->part, st->final) != 0) {
            fn_batch_fail(b, "export: renaming %s to %s: %s", st->part, st->final, strerror(errno));
            return FN_ERR_IO;
        }
    }
    return 0;
}

static const char json_head_fmt[] =
    "{\n  \"format\": \"facenames-export\",\n  \"version\": 1,\n  \"exported_at\": \"%s\",\n"
    "  \"roots\": %s,\n  \"photos\": [";

static int open_output(fn_batch *b, export_job *st)
{
    const char *name = st->format == F_JSON ? "facenames-export.json" : "facenames-export.csv";
    if (asprintf(&st->final, "%s/%s", st->to, name) < 0 ||
        asprintf(&st->part, "%s/%s.part", st->to, name) < 0)
        return FN_ERR_NOMEM;
    const char *ck = fn_batch_checkpoint(b);
    json_error_t jerr;
    json_t *c = ck ? json_loads(ck, 0, &jerr) : NULL;
    json_t *off = json_object_get(c, "offset"), *last = json_object_get(c, "last_id");
    st->head = json_integer_value(json_object_get(c, "head"));
    if (json_is_integer(off) && json_is_integer(last)) {
        st->fd = open(st->part, O_WRONLY);
        struct stat sb;
        if (st->fd >= 0 && fstat(st->fd, &sb) == 0 && sb.st_size >= json_integer_value(off) &&
            ftruncate(st->fd, (off_t)json_integer_value(off)) == 0) {
            st->offset = json_integer_value(off);
            st->last_id = json_integer_value(last);
            st->body = st->offset > st->head;
            lseek(st->fd, 0, SEEK_END);
            json_decref(c);
            return 0;
        }
        /* the part file is gone or shorter than committed: start it again */
        if (st->fd >= 0) close(st->fd);
        st->last_id = 0;
    }
    json_decref(c);
    st->fd = open(st->part, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (st->fd < 0) {
        fn_batch_fail(b, "export: cannot write %s: %s", st->part, strerror(errno));
        return FN_ERR_IO;
    }
    fn_buf h = {0};
    if (st->format == F_CSV) {
        fn_buf_str(&h, csv_header);
    } else {
        json_t *roots = json_array();
        for (size_t i = 0; i < st->roots.n; i++)
            json_array_append_new(roots, json_string(st->roots.dir[i]));
        char *rs = json_dumps(roots, JSON_COMPACT);
        json_decref(roots);
        char when[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        fn_buf_printf(&h, json_head_fmt, when, rs ? rs : "[]");
        free(rs);
    }
    int rc = h.oom || write_fully(st->fd, h.s, h.len) < 0 ? FN_ERR_IO : 0;
    st->offset = st->head = (int64_t)h.len;
    st->body = 0;
    fn_buf_free(&h);
    if (rc) fn_batch_fail(b, "export: writing %s: %s", st->part, strerror(errno));
    return rc;
}

static int export_open(fn_batch *b)
{
    export_job *st = fn_batch_state(b);
    st->fd = -1;
    const char *fmt = fn_batch_string(b, "format");
    st->format = strcmp(fmt, "xmp") == 0 ? F_XMP : strcmp(fmt, "csv") == 0 ? F_CSV : F_JSON;
    st->vectors = fn_batch_bool(b, "with_descriptors");
    const char *to = fn_batch_string(b, "to");
    st->to = strcmp(to, "-") == 0 ? NULL : to;
    if (st->to && st->to[0] != '/') {
        fn_batch_fail(b, "export: \"to\" must be an absolute folder, not %s", st->to);
        return FN_ERR_INVALID;
    }
    if (!st->to && st->format != F_XMP) {
        fn_batch_fail(b, "export: the %s format needs a folder to write to (\"to\")", fmt);
        return FN_ERR_INVALID;
    }
    if (st->format == F_XMP && fn_xmp_init() < 0) {
        fn_batch_fail(b, "export: the XMP toolkit (exempi) could not be initialised");
        return FN_ERR_UNSUPPORTED;
    }
    if (!(st->s = fn_batch_reader(b))) {
        fn_batch_fail(b, "export: %s", fn_engine_errmsg(fn_job_engine(fn_batch_ctx(b))));
        return FN_ERR_DB;
    }
    int rc;
    if ((rc = fn_library_migrate(st->s)) < 0 || (rc = fn_xp_reader_new(st->s, &st->reader)) < 0 ||
        (rc = fn_roots_load(st->s, NULL, 0, &st->roots)) < 0) {
        fn_batch_fail(b, "export: %s", fn_store_errmsg(st->s));
        return rc;
    }
    fn_batch_set(b, C_ITEMS_TOTAL, fn_xp_count_photos(st->s, NULL) + (st->format != F_XMP));
    if (st->format == F_XMP) {
        const char *ck = fn_batch_checkpoint(b);
        json_error_t jerr;
        json_t *c = ck ? json_loads(ck, 0, &jerr) : NULL;
        st->last_id = json_integer_value(json_object_get(c, "last_id"));
        json_decref(c);
        return 0;
    }
    return open_output(b, st);
}

static void export_close(fn_batch *b)
{
    export_job *st = fn_batch_state(b);
    if (st->fd >= 0) close(st->fd);
    fn_xp_reader_free(st->reader);
    fn_roots_free(&st->roots);
    free(st->part);
    free(st->final);
}

static void export_item_clear(fn_batch *b, fn_item *it)
{
    (void)b;
    export_item *x = it->data;
    fn_xp_photo_clear(&x->photo);
    fn_buf_free(&x->text);
}

static fn_resolution export_resolution(const char *code)
{
    /* a sidecar folder made writable, a disk with room again: worth retrying; a sidecar that is
     * not XMP stays as it is until a person looks at it */
    return strcmp(code, "bad_xmp") == 0 ? FN_RES_SKIP : FN_RES_RETRY;
}

/* What `facenames export` prints at the end. */
static char *export_summary(const fn_job_info *job, void *user)
{
    (void)user;
    json_error_t jerr;
    json_t *pl = json_loads(job->payload ? job->payload : "{}", 0, &jerr);
    json_t *pr = json_loads(job->progress ? job->progress : "{}", 0, &jerr);
    json_t *c = json_object_get(pr, "counters");
    const char *fmt = json_string_value(json_object_get(pl, "format"));
    const char *to = json_string_value(json_object_get(pl, "to"));
    long long photos = json_integer_value(json_object_get(c, "photos_exported"));
    long long faces = json_integer_value(json_object_get(c, "faces_exported"));
    long long side = json_integer_value(json_object_get(c, "sidecars_written"));
    long long errs = json_integer_value(json_object_get(c, "errors"));
    char *s = NULL;
    int n;
    if (fmt && strcmp(fmt, "xmp") == 0)
        n = asprintf(&s,
                     "export %lld: %lld photos with named faces, %lld XMP sidecars written "
                     "(%s) with %lld named faces, %lld errors\n",
                     (long long)job->id, photos, side,
                     to && strcmp(to, "-") != 0 ? to : "next to the photos", faces, errs);
    else
        n = asprintf(&s,
                     "export %lld: %lld photos, %lld faces written to %s/facenames-export.%s, "
                     "%lld errors\n",
                     (long long)job->id, photos, faces, to ? to : "?", fmt ? fmt : "json", errs);
    if (n < 0) s = NULL;
    json_decref(pl);
    json_decref(pr);
    return s;
}

const fn_jobtype fn_export_type = {
    .type = "export",
    .params = params,
    .n_params = sizeof params / sizeof params[0],
    .counters = counters,
    .n_counters = C_COUNT,
    .done_counter = C_ITEMS_DONE,
    .total_counter = C_ITEMS_TOTAL,
    .errors_counter = C_ERRORS,
    .item_ref = "the photo's absolute path",
    .rate_unit = "photos",
    .batch_param = "batch",
    .flush_items = 4096,
    .flush_ms = 1000,
    .mem_mb = 64,
    .job_size = sizeof(export_job),
    .item_size = sizeof(export_item),
    .open = export_open,
    .close = export_close,
    .next = export_next,
    .process = export_process,
    .write = export_write,
    .cursor = export_cursor,
    .item_clear = export_item_clear,
    .resolution = export_resolution,
    .summary = export_summary,
};
