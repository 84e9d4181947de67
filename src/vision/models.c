/* models.c: finds, loads and binds the face-api models a caller asks for.
 *
 * Each model is a `<name>-weights_manifest.json` plus its `.bin` in one directory; weights.c reads
 * and dequantizes them and the nets' bind functions (ssd.c, tiny.c, landmarks.c, recognition.c)
 * check every tensor's name and shape. What must stay true: a returned fn_models is complete for
 * the bits asked for and never changes afterwards (workers share it without locks); on any failure
 * nothing is returned and the message names the file and the install command. */
#include "vision/models.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "version/paths.h" /* FN_MODELS_REL_BIN/_LIB, FN_MODELS_SOURCE (generated) */
#include "vision/gemm_amx.h"
#include "vision/gemm_i16.h"
#include "vision/verr.h"

#define INSTALL_HINT "install the models with scripts/bootstrap (from the facenames source tree)"

/* The installed models' directory as seen from this code's own file: the program (when the
 * library is linked in statically, as the facenames program does) or libfacenames.so. Computed
 * once: where the code was loaded from does not change while it runs. "" when unknown. */
static char installed_dir[PATH_MAX];
static pthread_once_t installed_once = PTHREAD_ONCE_INIT;

static void find_installed_dir(void)
{
    char self[PATH_MAX] = "";
    const char *rel = FN_MODELS_REL_LIB;
    Dl_info info;
    struct link_map *map = NULL;
    /* A static function's address: always this file's own code, never an interposed symbol. */
    if (dladdr1((void *)&find_installed_dir, &info, (void **)&map, RTLD_DL_LINKMAP) && map &&
        map->l_name && map->l_name[0]) {
        /* A shared object: its path as the dynamic loader opened it. */
        if (!realpath(map->l_name, self)) self[0] = '\0';
    } else {
        /* The main program (its link map has no name): the kernel knows its file. */
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        self[n > 0 ? n : 0] = '\0';
        rel = FN_MODELS_REL_BIN;
    }
    if (rel[0] == '/') { /* bindir or libdir outside the prefix: the configured absolute path */
        snprintf(installed_dir, sizeof installed_dir, "%s", rel);
        return;
    }
    char *slash = strrchr(self, '/');
    if (!slash) return;
    *slash = '\0'; /* the directory holding this code */
    /* Each leading "../" of rel drops a component, so messages show /usr/share/..., not
     * /usr/bin/../share/... */
    while (strncmp(rel, "../", 3) == 0 && (slash = strrchr(self, '/')) && slash != self) {
        *slash = '\0';
        rel += 3;
    }
    if ((size_t)snprintf(installed_dir, sizeof installed_dir, "%s/%s", self, rel) >=
        sizeof installed_dir)
        installed_dir[0] = '\0';
}

/* Search order: $FACENAMES_MODELS; the installed <datadir>/facenames/models next to this code
 * (meson install, the Debian package, a tree unpacked anywhere); else the source tree's copy that
 * scripts/bootstrap fills, which is what an uninstalled build uses. The installed directory is
 * checked on every call (it is a stat), so a test or an install during the run is seen. */
const char *fn_models_default_dir(void)
{
    const char *env = getenv("FACENAMES_MODELS");
    if (env && *env) return env;
    pthread_once(&installed_once, find_installed_dir);
    struct stat st;
    if (installed_dir[0] && stat(installed_dir, &st) == 0 && S_ISDIR(st.st_mode))
        return installed_dir;
#ifdef FN_MODELS_SOURCE
    return FN_MODELS_SOURCE;
#else
    /* A packaged build has no source tree to fall back to: name where the models belong, so the
     * message says what is missing. */
    return installed_dir[0] ? installed_dir : FN_MODELS_INSTALLED;
#endif
}

/* Loads `<dir>/<file>-weights_manifest.json` into *w. */
static int load_one(const char *dir, const char *file, fn_weights **w, char *err, size_t errlen)
{
    size_t len = strlen(dir) + strlen(file) + sizeof "/-weights_manifest.json";
    char *path = malloc(len);
    if (!path) return fn_verr(err, errlen, FN_ERR_NOMEM, "out of memory");
    snprintf(path, len, "%s/%s-weights_manifest.json", dir, file);
    int rc = fn_weights_load(path, w, err, errlen);
    if (rc == FN_ERR_NOT_FOUND)
        rc = fn_verr(err, errlen, FN_ERR_MODEL, "%s: model file missing; %s", path, INSTALL_HINT);
    free(path);
    return rc;
}

int fn_models_load(const char *dir, unsigned which, fn_models **out, char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (!out) return fn_verr(err, errlen, FN_ERR_INVALID, "fn_models_load: invalid arguments");
    if (!dir || !*dir) dir = fn_models_default_dir();
    which &= FN_MODEL_ALL;
    if (!which) return fn_verr(err, errlen, FN_ERR_INVALID, "fn_models_load: no model requested");
    /* Before any network can run: OpenBLAS single-threaded (each worker runs its own GEMMs) and
     * libvips set up, even for callers that never load an image through us. */
    if (fn_vision_init() != 0)
        return fn_verr(err, errlen, FN_ERR_UNSUPPORTED, "libvips could not be initialised");

    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return fn_verr(err, errlen, FN_ERR_NOT_FOUND,
                       "%s: model directory not found (set FACENAMES_MODELS or %s)", dir,
                       INSTALL_HINT);

    fn_models *m = calloc(1, sizeof *m);
    if (!m || !(m->dir = strdup(dir))) {
        free(m);
        return fn_verr(err, errlen, FN_ERR_NOMEM, "out of memory");
    }
    m->which = which;
    int rc = 0;
    if (!rc && (which & FN_MODEL_SSD)) {
        rc = load_one(dir, "ssd_mobilenetv1_model", &m->w_ssd, err, errlen);
        if (!rc) rc = fn_ssd_bind(m->w_ssd, &m->ssd, err, errlen);
    }
    if (!rc && (which & FN_MODEL_TINY)) {
        rc = load_one(dir, "tiny_face_detector_model", &m->w_tiny, err, errlen);
        if (!rc) rc = fn_tiny_bind(m->w_tiny, &m->tiny, err, errlen);
    }
    if (!rc && (which & FN_MODEL_LANDMARKS)) {
        rc = load_one(dir, "face_landmark_68_model", &m->w_landmarks, err, errlen);
        if (!rc) rc = fn_landmark_bind(m->w_landmarks, 0, &m->landmarks, err, errlen);
    }
    if (!rc && (which & FN_MODEL_LANDMARKS_TINY)) {
        rc = load_one(dir, "face_landmark_68_tiny_model", &m->w_landmarks_tiny, err, errlen);
        if (!rc) rc = fn_landmark_bind(m->w_landmarks_tiny, 1, &m->landmarks_tiny, err, errlen);
    }
    if (!rc && (which & FN_MODEL_RECOGNITION)) {
        rc = load_one(dir, "face_recognition_model", &m->w_recognition, err, errlen);
        if (!rc) rc = fn_recog_bind(m->w_recognition, &m->recognition, err, errlen);
    }
    if (rc) {
        fn_models_free(m);
        /* A bind failure is a model problem whatever code the net returned. */
        return rc == FN_ERR_NOMEM ? rc : FN_ERR_MODEL;
    }
    *out = m;
    return 0;
}

static pthread_mutex_t amx_lock = PTHREAD_MUTEX_INITIALIZER;

int fn_models_amx_init(const fn_models *cm, unsigned which)
{
    which &= cm->which;
    if ((__atomic_load_n(&cm->amx_done, __ATOMIC_ACQUIRE) & which) == which) return 0;
    if (!fn_amx_available(NULL)) return 0;
    /* Logically const: the packs are a cache of the weights in another layout. */
    fn_models *m = (fn_models *)cm;
    int rc = 0;
    pthread_mutex_lock(&amx_lock);
    unsigned done = m->amx_done;
    if ((which & FN_MODEL_SSD) && !(done & FN_MODEL_SSD) && m->ssd) {
        if (fn_ssd_amx_init(m->ssd))
            rc = FN_ERR_NOMEM;
        else
            done |= FN_MODEL_SSD;
    }
    if ((which & FN_MODEL_TINY) && !(done & FN_MODEL_TINY) && m->tiny) {
        if (fn_tiny_amx_init(m->tiny))
            rc = FN_ERR_NOMEM;
        else
            done |= FN_MODEL_TINY;
    }
    if ((which & FN_MODEL_LANDMARKS) && !(done & FN_MODEL_LANDMARKS) && m->landmarks) {
        if (fn_landmark_amx_init(m->landmarks))
            rc = FN_ERR_NOMEM;
        else
            done |= FN_MODEL_LANDMARKS;
    }
    if ((which & FN_MODEL_LANDMARKS_TINY) && !(done & FN_MODEL_LANDMARKS_TINY) &&
        m->landmarks_tiny) {
        if (fn_landmark_amx_init(m->landmarks_tiny))
            rc = FN_ERR_NOMEM;
        else
            done |= FN_MODEL_LANDMARKS_TINY;
    }
    if ((which & FN_MODEL_RECOGNITION) && !(done & FN_MODEL_RECOGNITION) && m->recognition) {
        if (fn_recog_amx_init(m->recognition))
            rc = FN_ERR_NOMEM;
        else
            done |= FN_MODEL_RECOGNITION;
    }
    __atomic_store_n(&m->amx_done, done, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&amx_lock);
    return rc;
}

int fn_models_i16_init(const fn_models *cm)
{
    if (__atomic_load_n(&cm->i16_done, __ATOMIC_ACQUIRE) || !fn_i16_available(NULL)) return 0;
    fn_models *m = (fn_models *)cm; /* logically const, as for the BF16 packs */
    int rc = 0;
    pthread_mutex_lock(&amx_lock);
    if (!m->i16_done) {
        if ((m->ssd && fn_ssd_i16_init(m->ssd)) ||
            (m->recognition && fn_recog_i16_init(m->recognition)) ||
            (m->landmarks && fn_landmark_i16_init(m->landmarks)))
            rc = FN_ERR_NOMEM;
        else
            __atomic_store_n(&m->i16_done, 1u, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&amx_lock);
    return rc;
}

void fn_models_free(fn_models *m)
{
    if (!m) return;
    fn_ssd_free(m->ssd);
    fn_tiny_free(m->tiny);
    fn_landmark_free(m->landmarks);
    fn_landmark_free(m->landmarks_tiny);
    fn_recog_free(m->recognition);
    fn_weights_free(m->w_ssd);
    fn_weights_free(m->w_tiny);
    fn_weights_free(m->w_landmarks);
    fn_weights_free(m->w_landmarks_tiny);
    fn_weights_free(m->w_recognition);
    free(m->dir);
    free(m);
}
