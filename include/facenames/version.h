/* facenames: what this build of libfacenames is, what it runs on, and which model files it uses.
 *
 * `facenames --version` prints these; an application (the app's About box, a bug report) can too.
 * Every function may be called from any thread at any time, before or without opening an engine.
 * Returned strings are static: never freed, valid for the life of the process. */
#ifndef FACENAMES_VERSION_H
#define FACENAMES_VERSION_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API; the rest is hidden */

/* The library's version, "MAJOR.MINOR.PATCH" (the project's and the Debian package's). */
const char *fn_version(void);

/* The source revision built: `git describe --always --dirty` of the tree, the REVISION file of an
 * exported tree (scripts/package writes one), else "unknown". */
const char *fn_version_revision(void);

/* The versions of the libraries in use at run time (not the headers built against):
 * SQLite ("3.40.1"), libvips ("8.14.1"), OpenBLAS (its configuration string, e.g.
 * "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64"). */
const char *fn_version_sqlite(void);
const char *fn_version_vips(void);
const char *fn_version_openblas(void);

/* The model files this build pins (models/SHA256SUMS at build time), in that file's order: the
 * i-th file's name (e.g. "ssd_mobilenetv1_model.bin"), with its SHA-256 as 64 lower-case hex digits
 * in *sha256 when sha256 is not NULL. Returns NULL when i is past the last one. */
const char *fn_models_pinned(size_t i, const char **sha256);

/* The SHA-256 of the file at `path`, as 64 lower-case hex digits and a NUL in hex[65]. Returns 0,
 * FN_ERR_NOT_FOUND, FN_ERR_INVALID or FN_ERR_IO (hex is then ""). Reads the whole file on the
 * caller's thread. */
int fn_sha256_file(const char *path, char hex[65]);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
