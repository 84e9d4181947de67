/* models_cache.c: the process-wide model cache (see models_cache.h). A short list under one
 * mutex; entries are only added, and removed only by fn_models_cache_clear. */
#include "tasks/models_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/error.h"

typedef struct entry {
    char *dir;
    unsigned which;
    fn_models *m;
    struct entry *next;
} entry;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static entry *head;

int fn_models_cache_get(const char *dir, unsigned which, const fn_models **out, char *err,
                        size_t errlen)
{
    if (!dir) dir = "";
    *out = NULL;
    pthread_mutex_lock(&mu);
    for (entry *e = head; e; e = e->next) {
        /* Any loaded set that covers the request will do. */
        if ((e->which & which) == which && strcmp(e->dir, dir) == 0) {
            *out = e->m;
            pthread_mutex_unlock(&mu);
            return 0;
        }
    }
    fn_models *m = NULL;
    int rc = fn_models_load(*dir ? dir : NULL, which, &m, err, errlen);
    if (rc == 0) {
        entry *e = calloc(1, sizeof *e);
        if (e) e->dir = strdup(dir);
        if (!e || !e->dir) {
            if (e) free(e);
            fn_models_free(m);
            rc = FN_ERR_NOMEM;
        } else {
            e->which = which;
            e->m = m;
            e->next = head;
            head = e;
            *out = m;
        }
    }
    pthread_mutex_unlock(&mu);
    return rc;
}

void fn_models_cache_clear(void)
{
    pthread_mutex_lock(&mu);
    while (head) {
        entry *e = head;
        head = e->next;
        fn_models_free(e->m);
        free(e->dir);
        free(e);
    }
    pthread_mutex_unlock(&mu);
}
