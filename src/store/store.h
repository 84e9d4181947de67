/* store.h: the SQLite store (internal), as the engine and the tasks see it. The only place SQL
 * lives is src/store (docs/design.md decision 9), so this header names no SQLite type: the engine
 * and the tasks hold opaque handles and call functions, and a store on another database could
 * implement the same interface. The SQL half (sql.h's statements, messages from a failed
 * statement, migrations) is store_sql.h, for files in src/store only; SQLite itself is behind the
 * driver, store_sqlite.c.
 *
 * One database per library, `<library>/library.db`, in WAL mode with synchronous=NORMAL, foreign
 * keys on, and a busy timeout. Each part of the schema is a *component* ("jobs", "library", ...)
 * with its own ordered list of migrations; `schema_versions(component, version)` records how far
 * each has been applied, so parts evolve independently. A database whose version of a component is
 * newer than this build knows is refused with FN_ERR_VERSION. Our databases carry our PRAGMA
 * application_id; other programs' SQLite files are refused untouched (FN_ERR_FOREIGN).
 *
 * Threading: an fn_store is one SQLite connection; use it from one thread at a time. Each engine
 * worker and each reader opens its own. SQLite errors map to fn_err: SQLITE_BUSY/LOCKED ->
 * FN_ERR_BUSY, SQLITE_FULL -> FN_ERR_FULL, SQLITE_CORRUPT/NOTADB -> FN_ERR_CORRUPT, others ->
 * FN_ERR_DB, with the message (which file, which statement, what to do) in fn_store_errmsg(). */
#ifndef FN_STORE_STORE_H
#define FN_STORE_STORE_H

#include <pthread.h>
#include <stddef.h>

typedef struct fn_store fn_store;
typedef struct fn_store_tx fn_store_tx; /* an open write transaction on a store */

/* Opens (creating if needed) the database at `path`. A new database is marked as ours (PRAGMA
 * application_id); one of ours made before the mark is adopted (marked). Any other non-empty
 * SQLite file is refused with FN_ERR_FOREIGN before anything is written to it (not even the WAL
 * switch). */
int fn_store_open(const char *path, int busy_timeout_ms, fn_store **out, char *err, size_t errlen);

/* Opens an existing database for reading only, for a library that cannot be written (or must not
 * be, like a reading command's): never creates, migrates or marks anything. When SQLite cannot
 * open it read-only in place (a WAL database with no -shm file in a folder that cannot be
 * written) it is opened as immutable. Foreign files are refused as by fn_store_open. Every write
 * (fn_store_begin) then fails with FN_ERR_READONLY. */
int fn_store_open_readonly(const char *path, int busy_timeout_ms, fn_store **out, char *err,
                           size_t errlen);
/* 1 when `s` was opened with fn_store_open_readonly. */
int fn_store_readonly(const fn_store *s);
void fn_store_close(fn_store *s);
const char *fn_store_errmsg(const fn_store *s);
const char *fn_store_path(const fn_store *s);

/* Records a message for `code` (an fn_err) without a SQLite error behind it. (Added by the engine
 * part.) */
void fn_store_set_msg(fn_store *s, int code, const char *what, const char *detail);

/* BEGIN IMMEDIATE ... COMMIT. The tx handle lives until commit/rollback. */
int fn_store_begin(fn_store *s, fn_store_tx **tx);
int fn_store_commit(fn_store_tx *tx);
/* A write transaction for callers whose SQL locks the rows it reads and then writes (added for
 * the job engine on PostgreSQL, issue 14: claims by FOR UPDATE SKIP LOCKED, ends and heartbeats
 * fenced by owner). On PostgreSQL it is a plain BEGIN without the library's advisory lock or the
 * process's write lock, so claims of different jobs by different workers and hosts do not
 * serialize; on SQLite it is fn_store_begin (one writer at a time there anyway). Commit and roll
 * back as usual. */
int fn_store_begin_rows(fn_store *s, fn_store_tx **tx);
void fn_store_rollback(fn_store_tx *tx);
fn_store *fn_store_tx_store(fn_store_tx *tx);

/* A write lock shared by several connections of one process (added by the engine part): their
 * write transactions then queue on a mutex (waiting at most the busy timeout, then FN_ERR_BUSY)
 * instead of in SQLite's busy handler, which sleeps whole milliseconds. fn_store_begin takes it;
 * commit and rollback release it. NULL (the default) for none. */
void fn_store_set_write_lock(fn_store *s, pthread_mutex_t *mu);

/* WAL checkpoints (added by the engine part). A checkpoint fsyncs; with synchronous=NORMAL it is
 * the only fsync, and SQLite runs it inside whichever COMMIT crosses wal_autocheckpoint pages. The
 * engine raises that threshold on its connections and checkpoints PASSIVEly (never waiting for
 * anyone) from its monitor thread, so a batch commit does not pay for it. *wal_pages (may be
 * NULL) gets the WAL's size in pages. */
void fn_store_set_autocheckpoint(fn_store *s, int pages);
int fn_store_wal_checkpoint(fn_store *s, int *wal_pages);

/* Test hook (beanstalkd's falloc idea): while set to FN_ERR_FULL every fn_store_commit rolls back
 * and fails as if the disk were full; while set to FN_ERR_BUSY every fn_store_begin fails as if the
 * database were locked. 0 clears it. Process-wide; any thread. */
void fn_store_fault_inject(int fn_err_code_or_0);

#endif
