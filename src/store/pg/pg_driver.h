/* pg_driver.h: the PostgreSQL half of the store's SQL layer (sql.h), on libpq; for src/store only.
 *
 * It offers exactly the operations of sql.h on an opaque connection (fn_pg_conn) and statement
 * (fn_pg_stmt), with the same meaning, so sql.h's implementation can dispatch to it: numbered
 * parameters `?N` (and bare `?`, numbered as SQLite numbers them) are rewritten to `$N` outside
 * string literals, quoted identifiers and comments; step/column/reset behave as SQLite's (a
 * statement's rows are fetched when it is first stepped, then read one by one); reading a column
 * converts as SQLite does. Errors are fn_errs, with the server's message kept on the connection
 * (fn_pg_errmsg). The values of enum results and column types are sql.h's (FN_SQL_ROW,
 * FN_SQL_DONE, FN_SQL_INTEGER ... FN_SQL_NULL), restated here as the same numbers so this header
 * stands alone.
 *
 * Prepared statements are cached on the server per connection, keyed by the translated SQL text:
 * preparing the same text again (a new fn_pg_stmt, or after a finalize) reuses the server-side
 * statement without a round trip. Finalize frees the client handle only; the server statements
 * live until fn_pg_close.
 *
 * Beyond sql.h: LISTEN/NOTIFY (cross-host events), the connection's socket (to poll for
 * notifications), and the database's clock.
 *
 * Threading: a connection and its statements are used by one thread at a time (libpq's rule).
 * Different connections are independent. Nothing here prints (server notices are dropped) or
 * exits. */
#ifndef FN_STORE_PG_DRIVER_H
#define FN_STORE_PG_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#include "store/pg/pg_copy.h"

typedef struct fn_pg_conn fn_pg_conn;
typedef struct fn_pg_stmt fn_pg_stmt;

/* Same values as sql.h's enums (pg_driver.c asserts it at compile time). */
enum { FN_PG_OK = 0, FN_PG_ROW = 100, FN_PG_DONE = 101 };
enum { FN_PG_INTEGER = 1, FN_PG_FLOAT = 2, FN_PG_TEXT = 3, FN_PG_BLOB = 4, FN_PG_NULL = 5 };
typedef enum fn_pg_lifetime { FN_PG_STATIC = 0, FN_PG_TRANSIENT = 1 } fn_pg_lifetime;

/* Connects to `url` (a libpq connection string or postgresql:// URI). Like sqlite3_open, *out is
 * a connection even on failure (so fn_pg_errmsg can say why; close it), and NULL only when memory
 * ran out. FN_OK, FN_ERR_IO (server unreachable or refusing: the message names the server and
 * what to do), FN_ERR_NOMEM. The caller owns *out. */
int fn_pg_connect(const char *url, fn_pg_conn **out);
/* Closes the connection and frees its statement cache. Statements of `c` must be finalized
 * first. NULL is a no-op. */
void fn_pg_close(fn_pg_conn *c);
/* The last error's message ("" when none); owned by `c`, valid until the next call on it. */
const char *fn_pg_errmsg(const fn_pg_conn *c);
/* Replaces the connection's message (for callers that detect an error of their own, such as a
 * schema too new; the SQLSTATE is cleared). */
void fn_pg_set_errmsg(fn_pg_conn *c, const char *msg);
/* The last error's SQLSTATE ("" when none, or the error came from the client side). */
const char *fn_pg_sqlstate(const fn_pg_conn *c);

/* Runs `sql` (one or more statements separated by ';', no parameters, rows discarded). FN_OK or
 * an fn_err with the message set. */
int fn_pg_exec(fn_pg_conn *c, const char *sql);

/* A statement for `sql` (one statement; `?N` parameters; a number the text skips is declared
 * text to the server, which could not infer its type, and its binding is unused). FN_OK or an
 * fn_err (message set; a
 * failed prepare inside a transaction aborts that transaction, as any PostgreSQL error does);
 * *out is NULL on error. The caller owns *out and finalizes it before closing `c`. */
int fn_pg_prepare(fn_pg_conn *c, const char *sql, fn_pg_stmt **out);
void fn_pg_finalize(fn_pg_stmt *st); /* NULL is a no-op */
/* The text `sql` as sent to PostgreSQL (`?N` -> `$N`), in a new string the caller frees, with
 * the number of parameters in *nparams; NULL when memory ran out. For tests and tools. */
char *fn_pg_translate(const char *sql, int *nparams);

/* Parameters are numbered from 1; an index out of range is ignored; an unbound parameter is
 * NULL. STATIC: the caller keeps text/blob bytes alive and unchanged until the statement is reset
 * or the parameter re-bound; TRANSIENT: copied now. A bind that runs out of memory makes the next
 * step fail with FN_ERR_NOMEM. Text is UTF-8 without NUL bytes (PostgreSQL's text type refuses
 * them); n < 0 means up to the NUL; a NULL pointer binds NULL. A blob with a NULL pointer binds
 * NULL, n == 0 with a pointer an empty blob. */
void fn_pg_bind_int(fn_pg_stmt *st, int i, int v);
void fn_pg_bind_int64(fn_pg_stmt *st, int i, int64_t v);
void fn_pg_bind_double(fn_pg_stmt *st, int i, double v);
void fn_pg_bind_text(fn_pg_stmt *st, int i, const char *text, int n, fn_pg_lifetime life);
void fn_pg_bind_blob(fn_pg_stmt *st, int i, const void *data, int n, fn_pg_lifetime life);
void fn_pg_bind_null(fn_pg_stmt *st, int i);
int fn_pg_bind_parameter_count(fn_pg_stmt *st);

/* FN_PG_ROW (a row is ready), FN_PG_DONE, or a negative fn_err (message on the connection). The
 * first step runs the statement and fetches all its rows; a step after DONE or an error runs it
 * again (as SQLite's automatic reset does). */
int fn_pg_step(fn_pg_stmt *st);
/* Back to before the first step; bindings are kept. */
void fn_pg_reset(fn_pg_stmt *st);
void fn_pg_clear_bindings(fn_pg_stmt *st);

/* Columns are numbered from 0; valid after a step returned FN_PG_ROW, until the next step, reset
 * or finalize (returned pointers too). Conversions follow SQLite: NULL reads as 0, 0.0, a NULL
 * text and a NULL blob of 0 bytes; a number read as text gives its digits (a real as SQLite
 * prints it, "%.15g" with a ".0" when integral); text read as a number takes its leading numeric
 * prefix (0 when none); an empty blob reads as NULL from fn_pg_column_blob. Column types come
 * from the result's PostgreSQL types: integer types and boolean are INTEGER, float types FLOAT,
 * numeric INTEGER when it has no fraction digits and fits 64 bits (else FLOAT), bytea BLOB,
 * everything else TEXT. */
int fn_pg_column_count(fn_pg_stmt *st);
int fn_pg_column_type(fn_pg_stmt *st, int i);
int fn_pg_column_int(fn_pg_stmt *st, int i);
int64_t fn_pg_column_int64(fn_pg_stmt *st, int i);
double fn_pg_column_double(fn_pg_stmt *st, int i);
const char *fn_pg_column_text(fn_pg_stmt *st, int i);
const void *fn_pg_column_blob(fn_pg_stmt *st, int i);
int fn_pg_column_bytes(fn_pg_stmt *st, int i);

/* Rows changed by the connection's last INSERT/UPDATE/DELETE (through fn_pg_step or
 * fn_pg_exec); other statements leave it as it was. */
int64_t fn_pg_changes(fn_pg_conn *c);

/* Results come back in binary format (the default: no text parsing, bytea without hex) or text;
 * for measuring, the two must read the same. Affects statements stepped afterwards. */
void fn_pg_set_binary_results(fn_pg_conn *c, int binary);

/* ---- bulk reads --------------------------------------------------------------------------------
 */

/* Runs `sql` (one SELECT; `?N` parameters, all integers: params[0..nparams), a number past
 * nparams reads as NULL) as COPY (...) TO STDOUT (FORMAT binary) and calls `row` once per row, in
 * the query's order, with `ncols` values decoded by pg_copy.c (the column types are the ones the
 * server describes for `sql`, prepared and cached as fn_pg_prepare does). One round trip for the
 * whole result, which streams: memory stays one row, not the whole result as fn_pg_step's. FN_OK;
 * FN_ERR_STATE (the query has another number of columns); FN_ERR_UNSUPPORTED (a column type the
 * parser does not decode: numeric, timestamps ...); FN_ERR_CORRUPT or FN_ERR_TRUNCATED (the stream
 * did not parse); a server error's fn_err; or the callback's fn_err (the rest of the stream is
 * then read and dropped). The message is on the connection, except for the callback's own
 * errors. Works inside a transaction (it sees the transaction's snapshot). */
int fn_pg_copy_rows(fn_pg_conn *c, const char *sql, const int64_t *params, int nparams, int ncols,
                    fn_pg_copy_row_fn row, void *ctx);

/* ---- LISTEN / NOTIFY and the clock ---------------------------------------------------------- */

/* LISTEN on `channel` (any text; quoted as an identifier). FN_OK or an fn_err. */
int fn_pg_listen(fn_pg_conn *c, const char *channel);
/* NOTIFY `channel` with `payload` (NULL: empty; at most 7999 bytes). Inside a transaction it is
 * delivered at commit. FN_OK or an fn_err. */
int fn_pg_notify(fn_pg_conn *c, const char *channel, const char *payload);
/* The connection's socket, to wait on (poll for POLLIN) before fn_pg_drain_notifications; -1 when
 * the connection is down. */
int fn_pg_socket(const fn_pg_conn *c);
/* Reads what the server has sent without blocking and calls `cb` once per notification received,
 * in order (channel and payload are valid during the call). Returns the number delivered (>= 0)
 * or an fn_err (FN_ERR_IO: connection lost). */
typedef void (*fn_pg_notify_cb)(void *ctx, const char *channel, const char *payload, int pid);
int fn_pg_drain_notifications(fn_pg_conn *c, fn_pg_notify_cb cb, void *ctx);

/* The database server's clock (clock_timestamp(): the time of the call, not of the transaction's
 * start) in ns since the epoch, microsecond resolution. FN_OK or an fn_err. */
int fn_pg_now_ns(fn_pg_conn *c, int64_t *ns);

#endif
