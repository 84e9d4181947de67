/* version.c: the version, the source revision, the run-time versions of libvips and OpenBLAS, and
 * the model files pinned at build time (version.h). SQLite's version is answered by the store
 * (src/store/sqlite_version.c), the only part that may include sqlite3.h.
 *
 * revision.h comes from meson's vcs_tag (scripts/revision) and models_pinned.h from
 * models/SHA256SUMS, both generated in the build directory. */
#include <cblas.h>
#include <stddef.h>
#include <vips/vips.h>

#include "facenames/version.h"
#include "version/models_pinned.h"
#include "version/revision.h"

#ifndef FN_VERSION
#define FN_VERSION "unknown"
#endif

const char *fn_version(void)
{
    return FN_VERSION;
}

const char *fn_version_revision(void)
{
    return FN_REVISION[0] ? FN_REVISION : "unknown";
}

const char *fn_version_vips(void)
{
    /* The string compiled into the libvips in use; needs no vips_init. */
    return vips_version_string();
}

const char *fn_version_openblas(void)
{
    const char *s = openblas_get_config();
    return s && *s ? s : "unknown";
}

const char *fn_models_pinned(size_t i, const char **sha256)
{
    static const struct {
        const char *name, *sha256;
    } pinned[] = {FN_MODELS_PINNED};
    if (i >= sizeof pinned / sizeof pinned[0]) return NULL;
    if (sha256) *sha256 = pinned[i].sha256;
    return pinned[i].name;
}
