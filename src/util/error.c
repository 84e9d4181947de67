/* error.c: names and sentences for the fn_err codes. The names are part of the on-disk and JSON
 * format (job errors store them), so they never change once released. */
#include "facenames/error.h"

#include <string.h>

struct err_desc {
    int code;
    const char *name;
    const char *text;
};

static const struct err_desc errs[] = {
    {FN_OK, "ok", "success"},
    {FN_ERR_NOMEM, "nomem", "out of memory"},
    {FN_ERR_INVALID, "invalid", "invalid argument or malformed input"},
    {FN_ERR_NOT_FOUND, "not_found", "not found"},
    {FN_ERR_IO, "io", "input/output error"},
    {FN_ERR_DB, "db", "database error"},
    {FN_ERR_BUSY, "busy", "database is locked by another process"},
    {FN_ERR_FULL, "full", "disk or database is full"},
    {FN_ERR_CORRUPT, "corrupt", "corrupt or damaged data"},
    {FN_ERR_STATE, "state", "not allowed in the current state"},
    {FN_ERR_CANCELLED, "cancelled", "cancelled"},
    {FN_ERR_CONFIG, "config", "bad configuration value"},
    {FN_ERR_UNSUPPORTED, "unsupported", "unsupported format or feature"},
    {FN_ERR_TOO_LARGE, "too_large", "too large"},
    {FN_ERR_TRUNCATED, "truncated", "data is truncated"},
    {FN_ERR_NO_IMAGE, "no_image", "no image data"},
    {FN_ERR_UNREADABLE, "unreadable", "permission denied or unreadable"},
    {FN_ERR_MODEL, "model", "model files missing or invalid"},
    {FN_ERR_VERSION, "version", "database was written by a newer facenames"},
    {FN_ERR_NOT_FILE, "not_file", "not a regular file"},
    {FN_ERR_YIELDED, "yielded", "yielded to a higher-priority job"},
    {FN_ERR_FOREIGN, "foreign", "the database belongs to another program"},
    {FN_ERR_READONLY, "readonly", "the library is read-only"},
    {FN_ERR_EXISTS, "exists", "already exists"},
    {FN_ERR_CONFLICT, "conflict", "a later change stands in the way"},
};

static const struct err_desc *find(int code)
{
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
        if (errs[i].code == code) return &errs[i];
    return NULL;
}

const char *fn_strerror(int code)
{
    const struct err_desc *d = find(code);
    return d ? d->text : "unknown error";
}

const char *fn_errname(int code)
{
    const struct err_desc *d = find(code);
    return d ? d->name : "unknown";
}

int fn_err_from_name(const char *name)
{
    if (!name) return FN_ERR_INVALID;
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
        if (strcmp(errs[i].name, name) == 0) return errs[i].code;
    return FN_ERR_INVALID;
}
