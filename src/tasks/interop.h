/* interop.h: what the repair, export and import job types share (internal to tasks): the
 * library's roots, a growable text buffer for the formats they write, and the types themselves.
 *
 * The roots of a library are the paths its ingest jobs were given (a file's folder for a file):
 * repair looks for moved photos under them, export writes photo paths relative to them. */
#ifndef FN_TASKS_INTEROP_H
#define FN_TASKS_INTEROP_H

#include <stddef.h>
#include <stdint.h>

#include "facenames/jobtype.h"
#include "store/store.h"

typedef struct fn_roots {
    char **dir; /* absolute, without a trailing slash */
    size_t n;
} fn_roots;

/* The roots of the library on `s` (distinct, ordered), or `given` when it has any. */
int fn_roots_load(fn_store *s, const char *const *given, size_t n_given, fn_roots *out);
void fn_roots_free(fn_roots *r);
/* The root `path` is under (the longest), and *rel the rest of it (points into path); -1 when
 * under none. */
int fn_roots_find(const fn_roots *r, const char *path, const char **rel);

/* A growable text buffer. Appending never fails loudly: a failed allocation sets `oom`. */
typedef struct fn_buf {
    char *s;
    size_t len, cap;
    int oom;
} fn_buf;
void fn_buf_add(fn_buf *b, const char *s, size_t n);
void fn_buf_str(fn_buf *b, const char *s);
void fn_buf_printf(fn_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string of UTF-8 text s (escaped). */
void fn_buf_json_string(fn_buf *b, const char *s);
/* "field": <path> and, when the path is not UTF-8, "field_b64": <its bytes> (util/pathenc.h). */
void fn_buf_json_path(fn_buf *b, const char *field, const char *path);
/* `prefix` then a JSON string: base64 of v[0..n) as little-endian float32 (the export's vectors).
 */
void fn_buf_f32(fn_buf *b, const char *prefix, const float *v, size_t n);
/* Reads such a string back into v[0..n): 0, or -1 when it is not n floats in base64. */
int fn_f32_from_base64(const char *text, float *v, size_t n);
void fn_buf_free(fn_buf *b);

/* Test hook (as ingest's): when set, called on the job's thread after each item the source of
 * repair, export or import hands over (with the job type and the item's reference), so a test can
 * cancel at an exact point. Process-wide; NULL in production. */
typedef void (*fn_interop_hook_fn)(const char *type, const char *ref, void *arg);
extern fn_interop_hook_fn fn_interop_test_hook;
extern void *fn_interop_test_hook_arg;
/* Calls the hook when one is set; returns rc. */
int fn_interop_hook(const char *type, const fn_item *it, int rc);

/* The types, registered by fn_tasks_register_all. */
extern const fn_jobtype fn_repair_type;
extern const fn_jobtype fn_export_type;
extern const fn_jobtype fn_import_type;

#endif
