/* walk.c: the stable, streaming photo enumeration (see walk.h for the order and the items).
 *
 * A stack of directory levels; each level holds its directory's names, read in one go and sorted
 * (readdir order is not stable across runs, so it cannot be the order), and an index into them.
 * Directories are closed as soon as they are read, so depth never costs file descriptors.
 * Loops (a followed link back to an ancestor, or a bind mount) are caught by comparing the
 * (device, inode) of a directory about to be entered with every directory on the stack. */
#include "tasks/walk.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "facenames/error.h"

typedef struct ent {
    const char *name;
    unsigned char type;
} ent;

typedef struct level {
    char *dir;      /* absolute path of the directory (normalised unless count_only) */
    size_t rel_len; /* length of the relative path of this directory in w->rel */
    char *arena;    /* the names, NUL-terminated, back to back */
    ent *ents;
    size_t n, i;
    dev_t dev;
    ino_t ino;
} level;

struct fn_walk {
    fn_walk_opts opts;
    char **exts;
    char **roots;
    size_t n_roots, root_i;
    level *stack;
    size_t depth, cap;
    char *rel;
    size_t rel_cap;
    char *path;
    size_t path_cap;
    char msg[PATH_MAX + 256];
    int seeking;
    size_t seek_root;
    char *seek_rel;
    /* A directory whose own item was just returned and that must be entered next. */
    char *pending_dir;
    size_t pending_rel_len;
    fn_walk_stats st;
};

int fn_walk_cmp_rel(const char *a, const char *b)
{
    /* '/' sorts before every other byte, so "a/b" < "a.jpg" as in a depth-first walk of "a". */
    for (;; a++, b++) {
        unsigned char ca = (unsigned char)*a, cb = (unsigned char)*b;
        if (ca == cb) {
            if (!ca) return 0;
            continue;
        }
        if (!ca) return -1;
        if (!cb) return 1;
        if (ca == '/') return -1;
        if (cb == '/') return 1;
        return ca < cb ? -1 : 1;
    }
}

int fn_walk_has_ext(const char *name, const char *const *exts, size_t n_exts)
{
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name || !dot[1]) return 0;
    for (size_t i = 0; i < n_exts; i++)
        if (strcasecmp(dot + 1, exts[i]) == 0) return 1;
    return 0;
}

static int grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    char *p = realloc(*buf, n);
    if (!p) return FN_ERR_NOMEM;
    *buf = p;
    *cap = n;
    return 0;
}

int fn_walk_open(const char *const *roots, size_t n, const fn_walk_opts *opts, fn_walk **out)
{
    *out = NULL;
    fn_walk *w = calloc(1, sizeof *w);
    if (!w) return FN_ERR_NOMEM;
    w->opts = *opts;
    w->roots = calloc(n ? n : 1, sizeof *w->roots);
    w->exts = calloc(opts->n_exts ? opts->n_exts : 1, sizeof *w->exts);
    if (!w->roots || !w->exts) goto nomem;
    w->n_roots = n;
    for (size_t i = 0; i < n; i++)
        if (!(w->roots[i] = strdup(roots[i]))) goto nomem;
    for (size_t i = 0; i < opts->n_exts; i++)
        if (!(w->exts[i] = strdup(opts->exts[i]))) goto nomem;
    w->opts.exts = (const char *const *)w->exts;
    if (grow(&w->rel, &w->rel_cap, 256) < 0 || grow(&w->path, &w->path_cap, 256) < 0) goto nomem;
    w->rel[0] = 0;
    *out = w;
    return 0;
nomem:
    fn_walk_free(w);
    return FN_ERR_NOMEM;
}

static void level_free(level *l)
{
    free(l->dir);
    free(l->arena);
    free(l->ents);
}

void fn_walk_free(fn_walk *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->depth; i++)
        level_free(&w->stack[i]);
    free(w->stack);
    for (size_t i = 0; w->roots && i < w->n_roots; i++)
        free(w->roots[i]);
    free(w->roots);
    for (size_t i = 0; w->exts && i < w->opts.n_exts; i++)
        free(w->exts[i]);
    free(w->exts);
    free(w->rel);
    free(w->path);
    free(w->seek_rel);
    free(w->pending_dir);
    free(w);
}

void fn_walk_seek(fn_walk *w, size_t root, const char *rel)
{
    free(w->seek_rel);
    w->seek_rel = strdup(rel ? rel : "");
    w->seeking = w->seek_rel != NULL;
    w->seek_root = root;
}

const fn_walk_stats *fn_walk_stats_of(const fn_walk *w)
{
    return &w->st;
}

static int cmp_ent(const void *a, const void *b)
{
    return strcmp(((const ent *)a)->name, ((const ent *)b)->name);
}

static int errno_to_fn(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
        return FN_ERR_NOT_FOUND;
    case EACCES:
    case EPERM:
        return FN_ERR_UNREADABLE;
    case ENOMEM:
        return FN_ERR_NOMEM;
    default:
        return FN_ERR_IO;
    }
}

static int problem(fn_walk *w, fn_walk_item *it, size_t root, const char *path, int err,
                   const char *code, const char *fmt, const char *detail)
{
    it->root = root;
    it->rel = w->rel;
    it->path = path;
    it->err = err;
    it->code = code ? code : fn_errname(err);
    snprintf(w->msg, sizeof w->msg, fmt, path, detail ? detail : "");
    it->msg = w->msg;
    it->size = it->mtime_ns = -1;
    w->st.items++;
    return 1;
}

/* Makes w->path the path an item about a folder shows (the link's own path for a followed link). */
static int set_shown(fn_walk *w, const char *shown)
{
    if (shown == w->path) return 0;
    size_t n = strlen(shown) + 1;
    char *copy = malloc(n);
    if (!copy) return FN_ERR_NOMEM;
    memcpy(copy, shown, n);
    int rc = grow(&w->path, &w->path_cap, n);
    if (rc == 0) memcpy(w->path, copy, n);
    free(copy);
    return rc;
}

/* Enters directory `dir` (whose relative path is w->rel[0..rel_len)). Returns 0 when entered or
 * skipped, 1 when *it holds a problem item (unreadable, loop), or a negative fn_err. */
static int push_dir(fn_walk *w, const char *dir, const char *shown, size_t rel_len, size_t root,
                    fn_walk_item *it)
{
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        w->st.dir_errors++;
        w->rel[rel_len] = 0;
        if (set_shown(w, shown) < 0) return FN_ERR_NOMEM;
        return problem(w, it, root, w->path, errno_to_fn(e), NULL,
                       "%s: cannot read this folder (%s); its photos were not ingested",
                       strerror(e));
    }
    struct stat sb;
    if (fstat(dirfd(d), &sb) == 0) {
        for (size_t i = 0; i < w->depth; i++) {
            if (w->stack[i].dev == sb.st_dev && w->stack[i].ino == sb.st_ino) {
                closedir(d);
                w->rel[rel_len] = 0;
                if (set_shown(w, shown) < 0) return FN_ERR_NOMEM;
                return problem(w, it, root, w->path, FN_ERR_INVALID, "symlink_loop",
                               "%s: leads back to a folder being walked (a symbolic link loop); "
                               "not entered%s",
                               NULL);
            }
        }
    }
    if (w->depth == w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 16;
        level *ns = realloc(w->stack, nc * sizeof *ns);
        if (!ns) {
            closedir(d);
            return FN_ERR_NOMEM;
        }
        w->stack = ns;
        w->cap = nc;
    }
    level l = {0};
    l.dev = sb.st_dev;
    l.ino = sb.st_ino;
    l.rel_len = rel_len;
    l.dir = strdup(dir);
    size_t used = 0, cap = 0, n = 0;
    size_t *offs = NULL, offs_cap = 0;
    unsigned char *types = NULL;
    int rc = l.dir ? 0 : FN_ERR_NOMEM;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2])))
            continue;
        size_t len = strlen(de->d_name) + 1;
        if (grow(&l.arena, &cap, used + len) < 0) {
            rc = FN_ERR_NOMEM;
            break;
        }
        if (n == offs_cap) {
            offs_cap = offs_cap ? offs_cap * 2 : 64;
            size_t *no = realloc(offs, offs_cap * sizeof *no);
            unsigned char *nt = realloc(types, offs_cap);
            if (no) offs = no;
            if (nt) types = nt;
            if (!no || !nt) {
                rc = FN_ERR_NOMEM;
                break;
            }
        }
        memcpy(l.arena + used, de->d_name, len);
        offs[n] = used;
        types[n] = de->d_type;
        n++;
        used += len;
    }
    closedir(d);
    if (rc == 0 && n) {
        l.ents = malloc(n * sizeof *l.ents);
        if (!l.ents) rc = FN_ERR_NOMEM;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            l.ents[i].name = l.arena + offs[i];
            l.ents[i].type = types[i];
        }
        if (rc == 0 && !w->opts.count_only) qsort(l.ents, n, sizeof *l.ents, cmp_ent);
    }
    free(offs);
    free(types);
    if (rc < 0) {
        level_free(&l);
        return rc;
    }
    l.n = n;
    w->stack[w->depth++] = l;
    w->st.dirs++;
    return 0;
}

static void pop(fn_walk *w)
{
    level_free(&w->stack[--w->depth]);
}

/* Sets w->rel to the child `name` of the top level; returns its length or a negative error. */
static long set_rel(fn_walk *w, const level *l, const char *name)
{
    size_t nl = strlen(name);
    size_t len = l->rel_len + (l->rel_len ? 1 : 0) + nl;
    if (grow(&w->rel, &w->rel_cap, len + 2) < 0) return FN_ERR_NOMEM;
    size_t at = l->rel_len;
    if (at) w->rel[at++] = '/';
    memcpy(w->rel + at, name, nl + 1);
    return (long)len;
}

static int set_path(fn_walk *w, const char *dir, const char *name)
{
    size_t dl = strlen(dir), nl = strlen(name);
    if (grow(&w->path, &w->path_cap, dl + nl + 2) < 0) return FN_ERR_NOMEM;
    memcpy(w->path, dir, dl);
    size_t at = dl;
    if (!at || w->path[at - 1] != '/') w->path[at++] = '/';
    memcpy(w->path + at, name, nl + 1);
    return 0;
}

/* While seeking: whether the entry at w->rel lies wholly before the seek position (skip it), is
 * a directory on the way to it (enter without returning it), or is past it (seek over). */
enum { SEEK_PAST, SEEK_SKIP, SEEK_ENTER };
static int seek_check(fn_walk *w, size_t root, int is_dir)
{
    if (!w->seeking) return SEEK_PAST;
    if (root < w->seek_root) return SEEK_SKIP;
    if (root > w->seek_root) {
        w->seeking = 0;
        return SEEK_PAST;
    }
    int c = fn_walk_cmp_rel(w->rel, w->seek_rel);
    if (c > 0) {
        w->seeking = 0;
        return SEEK_PAST;
    }
    /* The position is the folder's own item: its contents come after it. */
    if (is_dir && c == 0) return SEEK_ENTER;
    if (is_dir && c < 0) {
        size_t len = strlen(w->rel);
        if (len == 0 || (strncmp(w->seek_rel, w->rel, len) == 0 && w->seek_rel[len] == '/'))
            return SEEK_ENTER;
    }
    return SEEK_SKIP;
}

static int file_item(fn_walk *w, fn_walk_item *it, size_t root, const char *path,
                     const struct stat *sb)
{
    it->root = root;
    it->rel = w->rel;
    it->path = path;
    it->err = 0;
    it->code = NULL;
    it->msg = NULL;
    it->size = sb ? (int64_t)sb->st_size : -1;
    it->mtime_ns = sb ? (int64_t)sb->st_mtim.tv_sec * 1000000000LL + sb->st_mtim.tv_nsec : -1;
    w->st.items++;
    return 1;
}

static int next_root(fn_walk *w, fn_walk_item *it)
{
    size_t r = w->root_i++;
    w->rel[0] = 0;
    const char *root = w->roots[r];
    char *canon = realpath(root, NULL);
    if (!canon) {
        int e = errno;
        if (seek_check(w, r, 0) != SEEK_PAST) return 0;
        if (grow(&w->path, &w->path_cap, strlen(root) + 1) < 0) return FN_ERR_NOMEM;
        strcpy(w->path, root);
        return problem(w, it, r, w->path, errno_to_fn(e), NULL, "%s: cannot open (%s)",
                       strerror(e));
    }
    struct stat sb;
    int rc = 0;
    if (stat(canon, &sb) != 0) {
        int e = errno;
        if (seek_check(w, r, 0) == SEEK_PAST) {
            if (grow(&w->path, &w->path_cap, strlen(canon) + 1) < 0) {
                rc = FN_ERR_NOMEM;
            } else {
                strcpy(w->path, canon);
                rc = problem(w, it, r, w->path, errno_to_fn(e), NULL, "%s: cannot open (%s)",
                             strerror(e));
            }
        }
    } else if (S_ISDIR(sb.st_mode)) {
        int s = seek_check(w, r, 1);
        if (s != SEEK_SKIP) rc = push_dir(w, canon, canon, 0, r, it);
    } else if (seek_check(w, r, 0) == SEEK_PAST) {
        if (grow(&w->path, &w->path_cap, strlen(canon) + 1) < 0) {
            rc = FN_ERR_NOMEM;
        } else {
            strcpy(w->path, canon);
            /* A file named on the command line is tried whatever its extension. */
            if (S_ISREG(sb.st_mode))
                rc = file_item(w, it, r, w->path, &sb);
            else
                rc = problem(w, it, r, w->path, FN_ERR_NOT_FILE, NULL, "%s: not a regular file%s",
                             NULL);
        }
    }
    free(canon);
    return rc;
}

int fn_walk_next(fn_walk *w, fn_walk_item *it)
{
    int rc;
    for (;;) {
        if (w->pending_dir) {
            char *dir = w->pending_dir;
            w->pending_dir = NULL;
            rc = push_dir(w, dir, dir, w->pending_rel_len, w->root_i - 1, it);
            free(dir);
            if (rc != 0) return rc;
            continue;
        }
        if (w->depth == 0) {
            if (w->root_i >= w->n_roots) return 0;
            if ((rc = next_root(w, it)) != 0) return rc;
            continue;
        }
        level *l = &w->stack[w->depth - 1];
        if (l->i >= l->n) {
            pop(w);
            continue;
        }
        const ent *e = &l->ents[l->i++];
        size_t root = w->root_i - 1;
        long rel_len = set_rel(w, l, e->name);
        if (rel_len < 0) return (int)rel_len;
        if ((rc = set_path(w, l->dir, e->name)) < 0) return rc;
        int has_ext = fn_walk_has_ext(e->name, w->opts.exts, w->opts.n_exts);
        unsigned char type = e->type;
        struct stat sb;
        int have_sb = 0;
        if (type == DT_UNKNOWN) {
            if (lstat(w->path, &sb) != 0) continue; /* gone since readdir: nothing to report */
            have_sb = 1;
            type = S_ISDIR(sb.st_mode)   ? DT_DIR
                   : S_ISREG(sb.st_mode) ? DT_REG
                   : S_ISLNK(sb.st_mode) ? DT_LNK
                                         : DT_FIFO;
        }
        char *target_dir = NULL; /* a directory reached through a followed link */
        if (type == DT_LNK) {
            if (!w->opts.follow_symlinks) {
                w->st.symlinks_skipped++;
                continue;
            }
            if (stat(w->path, &sb) != 0) {
                int err = errno;
                if (seek_check(w, root, 0) != SEEK_PAST) continue;
                if (err == ELOOP)
                    return problem(w, it, root, w->path, FN_ERR_INVALID, "symlink_loop",
                                   "%s: symbolic link loop%s", NULL);
                if (has_ext)
                    return problem(w, it, root, w->path, FN_ERR_NOT_FOUND, NULL,
                                   "%s: broken symbolic link (%s)", strerror(err));
                continue;
            }
            have_sb = 1;
            if (S_ISDIR(sb.st_mode)) {
                type = DT_DIR;
                if (!w->opts.count_only) {
                    target_dir = realpath(w->path, NULL);
                    if (!target_dir) continue; /* vanished between stat and realpath */
                }
            } else if (S_ISREG(sb.st_mode)) {
                type = DT_REG;
                if (has_ext && !w->opts.count_only) {
                    char *real = realpath(w->path, NULL);
                    if (!real) continue;
                    int g = grow(&w->path, &w->path_cap, strlen(real) + 1);
                    if (g == 0) strcpy(w->path, real);
                    free(real);
                    if (g < 0) return g;
                }
            } else {
                type = DT_FIFO;
            }
        }
        if (type == DT_DIR) {
            int s = seek_check(w, root, 1);
            if (s == SEEK_SKIP) {
                free(target_dir);
                continue;
            }
            const char *dir = target_dir ? target_dir : w->path;
            if (s == SEEK_PAST && has_ext) {
                /* Report the directory named like a photo, then enter it on the next call. */
                if (w->opts.recursive) {
                    w->pending_dir = strdup(dir);
                    w->pending_rel_len = (size_t)rel_len;
                    if (!w->pending_dir) {
                        free(target_dir);
                        return FN_ERR_NOMEM;
                    }
                }
                if (target_dir) {
                    int g = grow(&w->path, &w->path_cap, strlen(target_dir) + 1);
                    if (g == 0) strcpy(w->path, target_dir);
                    free(target_dir);
                    if (g < 0) return g;
                }
                return problem(w, it, root, w->path, FN_ERR_NOT_FILE, NULL,
                               "%s: is a folder, not a photo%s", NULL);
            }
            if (w->opts.recursive || s == SEEK_ENTER) {
                rc = push_dir(w, dir, w->path, (size_t)rel_len, root, it);
                free(target_dir);
                if (rc != 0) return rc;
            } else {
                free(target_dir);
            }
            continue;
        }
        if (!has_ext) {
            if (type == DT_REG || type == DT_FIFO || type == DT_CHR || type == DT_BLK ||
                type == DT_SOCK)
                w->st.non_images++;
            continue;
        }
        if (seek_check(w, root, 0) != SEEK_PAST) continue;
        if (type != DT_REG)
            return problem(w, it, root, w->path, FN_ERR_NOT_FILE, NULL, "%s: not a regular file%s",
                           NULL);
        return file_item(w, it, root, w->path, have_sb ? &sb : NULL);
    }
}
