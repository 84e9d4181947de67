/* walk.h: the stable, streaming enumeration of the photos under a list of roots (internal to
 * tasks).
 *
 * Order: the roots in the order given; under a directory root, depth-first with each directory's
 * entries sorted bytewise by name, a directory's own item (if it has one) before its contents.
 * That order is the component-wise order of paths relative to the root, so a position in it can be
 * named by (root index, relative path) and found again after the tree changed: that is what the
 * ingest checkpoint stores, and fn_walk_seek() skips whole subtrees that lie before it.
 *
 * Memory: one directory's names at a time per level of depth (never the whole tree).
 *
 * Items: regular files whose extension is in the list (and, following symlinks, links to them).
 * Entries that look like photos but cannot be one (a directory named x.jpg, a broken link, a
 * fifo) and symlink loops are items too, with a problem code, so the job can report them.
 * Everything else is counted and skipped quietly. */
#ifndef FN_TASKS_WALK_H
#define FN_TASKS_WALK_H

#include <stddef.h>
#include <stdint.h>

typedef struct fn_walk fn_walk;

typedef struct fn_walk_opts {
    int recursive;
    int follow_symlinks;
    const char *const *exts; /* lower-case extensions without the dot */
    size_t n_exts;
    int count_only; /* items are counted, names not sorted and paths not built */
} fn_walk_opts;

typedef struct fn_walk_item {
    size_t root;            /* index of the root it came from */
    const char *rel;        /* path relative to the root ("" for a root that is a file) */
    const char *path;       /* absolute, normalised path (realpath of the root + rel; for a link
                               followed to a file, the file's realpath) */
    int err;                /* 0 for a photo to process, else the fn_err of the problem */
    const char *code;       /* problem code: fn_errname(err) or "symlink_loop" */
    const char *msg;        /* problem sentence */
    int64_t size, mtime_ns; /* from stat when the walker stat'ed it (else -1) */
} fn_walk_item;

typedef struct fn_walk_stats {
    int64_t items;            /* items returned */
    int64_t non_images;       /* regular files whose extension is not in the list */
    int64_t symlinks_skipped; /* links not followed (follow_symlinks off) */
    int64_t dirs;             /* directories read */
    int64_t dir_errors;       /* directories that could not be read (reported as items) */
} fn_walk_stats;

/* Starts a walk over `n` roots (copied). Roots that do not exist are reported as items. */
int fn_walk_open(const char *const *roots, size_t n, const fn_walk_opts *opts, fn_walk **out);
void fn_walk_free(fn_walk *w);

/* Skips everything up to and including position (root, rel): subtrees wholly before it are not
 * read. Call before the first fn_walk_next. */
void fn_walk_seek(fn_walk *w, size_t root, const char *rel);

/* The next item: 1 and *item filled (valid until the next call), 0 at the end, or a negative
 * fn_err (out of memory). */
int fn_walk_next(fn_walk *w, fn_walk_item *item);

const fn_walk_stats *fn_walk_stats_of(const fn_walk *w);

/* Compares two relative paths in walk order (component-wise, bytewise). */
int fn_walk_cmp_rel(const char *a, const char *b);

/* Whether `name`'s extension (after the last dot) is in exts, case-insensitively. */
int fn_walk_has_ext(const char *name, const char *const *exts, size_t n_exts);

#endif
