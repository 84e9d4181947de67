/* libaddr.c: folder or PostgreSQL address (see libaddr.h). */
#include "util/libaddr.h"

#include <stdio.h>
#include <string.h>

#include "facenames/error.h"

static size_t scheme_len(const char *s)
{
    if (!s) return 0;
    if (strncmp(s, "postgresql://", 13) == 0) return 13;
    if (strncmp(s, "postgres://", 11) == 0) return 11;
    return 0;
}

int fn_libaddr_is_url(const char *library)
{
    return scheme_len(library) > 0;
}

int fn_libaddr_db(const char *library, char *out, size_t n)
{
    int w = fn_libaddr_is_url(library) ? snprintf(out, n, "%s", library)
                                       : snprintf(out, n, "%s/library.db", library);
    return w < 0 || (size_t)w >= n ? FN_ERR_INVALID : FN_OK;
}

void fn_libaddr_display(const char *library, char *out, size_t n)
{
    if (!n) return;
    size_t sl = scheme_len(library);
    if (!sl) {
        snprintf(out, n, "%s", library ? library : "");
        return;
    }
    /* userinfo is everything before the first '@' of the authority (which ends at '/', '?' or
     * '#'); its password is what follows the first ':' in it. */
    const char *auth = library + sl;
    size_t alen = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', alen);
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (!colon) {
        snprintf(out, n, "%s", library);
        return;
    }
    snprintf(out, n, "%.*s:***%s", (int)(colon - library), library, at);
}

void fn_libaddr_redact(const char *library, char *msg, size_t n)
{
    char shown[4096];
    if (!fn_libaddr_is_url(library) || !n) return;
    fn_libaddr_display(library, shown, sizeof shown);
    size_t ll = strlen(library), sl = strlen(shown);
    if (strcmp(shown, library) == 0 || ll >= sizeof shown) return;
    /* the display form is shorter than the address, so the text only shrinks */
    for (char *p = strstr(msg, library); p; p = strstr(p + sl, library)) {
        memmove(p + sl, p + ll, strlen(p + ll) + 1);
        memcpy(p, shown, sl);
    }
}
