/* facenames: the one error enum shared by every part of the library.
 *
 * 0 is success and every error is negative, so `if (rc < 0)` is the whole check. The code says what
 * kind of failure it was; the detail (which file, which job, what to do) stays on the handle that
 * failed and is read with that handle's *_errmsg() function. */
#ifndef FACENAMES_ERROR_H
#define FACENAMES_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default) /* the public API; the rest is hidden */

typedef enum fn_err {
    FN_OK = 0,
    FN_ERR_NOMEM = -1,       /* out of memory */
    FN_ERR_INVALID = -2,     /* bad argument or malformed input */
    FN_ERR_NOT_FOUND = -3,   /* no such file, job, photo ... */
    FN_ERR_IO = -4,          /* read/write failure not covered by a more precise code */
    FN_ERR_DB = -5,          /* database failure not covered by a more precise code */
    FN_ERR_BUSY = -6,        /* database locked by another process for too long */
    FN_ERR_FULL = -7,        /* disk or database full */
    FN_ERR_CORRUPT = -8,     /* damaged database, file or data */
    FN_ERR_STATE = -9,       /* operation not allowed in the object's current state */
    FN_ERR_CANCELLED = -10,  /* stopped by a cancellation request */
    FN_ERR_CONFIG = -11,     /* bad configuration value */
    FN_ERR_UNSUPPORTED = -12,/* format or feature not supported */
    FN_ERR_TOO_LARGE = -13,  /* over a size or pixel limit */
    FN_ERR_TRUNCATED = -14,  /* data ends early */
    FN_ERR_NO_IMAGE = -15,   /* file holds no image data */
    FN_ERR_UNREADABLE = -16, /* exists but cannot be read (permissions) */
    FN_ERR_MODEL = -17,      /* model files missing or wrong */
    FN_ERR_VERSION = -18,    /* database written by a newer facenames */
    FN_ERR_NOT_FILE = -19,   /* a directory or special file where a regular file was expected */
    FN_ERR_YIELDED = -20,    /* a running job gave its worker back to a higher-priority job */
    FN_ERR_FOREIGN = -21,    /* the library's database file belongs to another program */
    FN_ERR_READONLY = -22,   /* the library cannot be written (permissions, read-only mount) */
    FN_ERR_EXISTS = -23,     /* a person, file ... of that name already exists */
    FN_ERR_CONFLICT = -24,   /* a later change stands in the way (undo the later one first) */
} fn_err;

/* A sentence describing `code` ("no such file", ...). Static storage; never NULL. Any thread. */
const char *fn_strerror(int code);

/* A stable lower-case identifier for `code` ("not_found", "truncated", ...), as written in JSON,
 * job errors and logs. Static storage; never NULL. Any thread. */
const char *fn_errname(int code);

/* The code whose fn_errname() is `name`, or FN_ERR_INVALID if none is. Any thread. */
int fn_err_from_name(const char *name);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
