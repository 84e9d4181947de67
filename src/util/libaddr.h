/* libaddr.h: where a library lives. A library is a folder (the default: SQLite in
 * <folder>/library.db, with facenames.conf and jobs.log beside it) or a PostgreSQL server's
 * database, named by a postgresql:// (or postgres://) address, as --library or db.url gives it.
 * Everything that turns a library into a database address goes through here, so the two kinds
 * stay one decision.
 *
 * Threading: pure functions of their arguments; any thread. */
#ifndef FN_UTIL_LIBADDR_H
#define FN_UTIL_LIBADDR_H

#include <stddef.h>

/* 1 when `library` is a PostgreSQL address rather than a folder. */
int fn_libaddr_is_url(const char *library);

/* The database address of `library`: "<folder>/library.db", or the address itself. FN_OK, or
 * FN_ERR_INVALID when it does not fit in `n` bytes. */
int fn_libaddr_db(const char *library, char *out, size_t n);

/* `library` for messages and logs: an address's password (postgresql://user:SECRET@host/db) is
 * replaced by "***"; a folder is unchanged. Always NUL-terminates (truncating). */
void fn_libaddr_display(const char *library, char *out, size_t n);

/* Replaces, in the NUL-terminated text `msg` (of capacity n), every copy of `library` by its
 * display form, so a message that quoted the address does not show its password. */
void fn_libaddr_redact(const char *library, char *msg, size_t n);

#endif
