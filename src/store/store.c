/* store.c: the backend-neutral half of a connection to a library's database: its messages (which
 * library, what we were doing, what to do), its write transactions with the process-wide write
 * lock and the fault injection, and the opening and closing around the driver.
 *
 * The database itself is the driver's (store_sqlite.c for SQLite; store_impl.h says how they
 * split). What must stay true here: every failure that leaves the store carries a sentence naming
 * the database and what to do; a write transaction never stays open after a failed COMMIT; a
 * connection is used by one thread at a time (callers guarantee it). */
#include "store/store_sql.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "facenames/error.h"
#include "store/sql.h"
#include "store/store_impl.h"
#include "store/store_pg.h"
#include "util/libaddr.h"

/* Fault injection (beanstalkd's falloc idea): read on every write transaction. */
static atomic_int fault_code;

void fn_store_fault_inject(int code)
{
    atomic_store(&fault_code, code);
}

/* The advice that goes with each kind of failure: the user reads this, not the SQLite code. */
static const char *advice(int code)
{
    switch (code) {
    case FN_ERR_BUSY:
        return "the database is locked by another process or thread for longer than the busy "
               "timeout; close the other facenames program using this library or raise "
               "db.busy_timeout_ms, then retry";
    case FN_ERR_FULL:
        return "the disk or the database is full; free some disk space, then retry (work "
               "committed so far is kept)";
    case FN_ERR_CORRUPT:
        return "the database file is damaged or is not a facenames database; restore it from a "
               "backup or move it away to start a new library";
    case FN_ERR_UNREADABLE:
        return "the database cannot be opened; check that the library directory exists and is "
               "writable";
    case FN_ERR_IO:
        return "a read or write of the database failed; check the disk";
    case FN_ERR_READONLY:
        return "the library is read-only (its folder or database file cannot be written); "
               "commands that only read work, this one needs write access to the library";
    case FN_ERR_FOREIGN:
        return "this file is another program's database, not a facenames library, and was left "
               "untouched; choose another library folder (--library DIR)";
    case FN_ERR_VERSION:
        return "use a newer facenames with this library";
    default:
        return NULL;
    }
}

/* `detail` says what happened (the database's message, or ours); the advice says what to do. Only
 * a message that came from the database is labelled as such, with the database's name. */
int fn_store_msg(fn_store *s, int code, const char *what, const char *detail, int from_backend)
{
    const char *db = s->backend == FN_SQL_POSTGRES ? "PostgreSQL" : "SQLite";
    const char *adv = advice(code);
    if (!detail) detail = fn_strerror(code);
    if (adv)
        snprintf(s->msg, sizeof s->msg, "%s: %s: %s (%s%s%s)", s->path, what ? what : "database",
                 adv, from_backend ? db : "", from_backend ? ": " : "", detail);
    else
        snprintf(s->msg, sizeof s->msg, "%s: %s: %s%s%s", s->path, what ? what : "database",
                 from_backend ? db : "", from_backend ? " says: " : "", detail);
    return code;
}

static int set_msg(fn_store *s, int code, const char *what, const char *detail)
{
    return fn_store_msg(s, code, what, detail, 0);
}

/* `rc` is a failed step's (or exec's, prepare's) fn_err; anything else (FN_SQL_ROW where none was
 * expected, FN_OK) is a plain database failure. */
int fn_store_fail(fn_store *s, int rc, const char *what)
{
    int code = rc < 0 ? rc : FN_ERR_DB;
    return fn_store_msg(s, code, what,
                        s->backend == FN_SQL_POSTGRES ? fn_pgs_errmsg(s) : fn_lite_errmsg(s), 1);
}

static int open_store(const char *path, int busy_timeout_ms, int readonly, fn_store **out,
                      char *err, size_t errlen)
{
    *out = NULL;
    /* A postgresql:// address is a library on a server; messages show it without its password. */
    const int pg = fn_libaddr_is_url(path);
    char shown[4096];
    fn_libaddr_display(path, shown, sizeof shown);
    fn_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(shown))) {
        free(s);
        if (err && errlen) snprintf(err, errlen, "%s: out of memory", shown);
        return FN_ERR_NOMEM;
    }
    s->backend = pg ? FN_SQL_POSTGRES : FN_SQL_SQLITE;
    s->tx.store = s;
    s->readonly = readonly;
    s->busy_ms = busy_timeout_ms > 0 ? busy_timeout_ms : 0;
    int code = pg ? fn_pgs_open(s, path) : fn_lite_open(s);
    if (code) {
        if (err && errlen) snprintf(err, errlen, "%s", s->msg);
        fn_store_close(s);
        return code;
    }
    *out = s;
    return FN_OK;
}

int fn_store_open(const char *path, int busy_timeout_ms, fn_store **out, char *err, size_t errlen)
{
    return open_store(path, busy_timeout_ms, 0, out, err, errlen);
}

int fn_store_open_readonly(const char *path, int busy_timeout_ms, fn_store **out, char *err,
                           size_t errlen)
{
    return open_store(path, busy_timeout_ms, 1, out, err, errlen);
}

int fn_store_readonly(const fn_store *s)
{
    return s->readonly;
}

void fn_store_close(fn_store *s)
{
    if (!s) return;
    if (s->tx.open) fn_store_rollback(&s->tx);
    if (s->backend == FN_SQL_POSTGRES)
        fn_pgs_close(s);
    else
        fn_lite_close(s);
    free(s->path);
    free(s);
}

const char *fn_store_errmsg(const fn_store *s)
{
    return s ? s->msg : "no database";
}

const char *fn_store_path(const fn_store *s)
{
    return s ? s->path : "";
}

void fn_store_set_msg(fn_store *s, int code, const char *what, const char *detail)
{
    set_msg(s, code, what, detail);
}

void fn_store_set_write_lock(fn_store *s, pthread_mutex_t *mu)
{
    s->wlock = mu;
}

/* WAL checkpoints are SQLite's; a PostgreSQL server runs its own. */
void fn_store_set_autocheckpoint(fn_store *s, int pages)
{
    if (s->backend == FN_SQL_POSTGRES) return;
    fn_lite_set_autocheckpoint(s, pages);
}

int fn_store_wal_checkpoint(fn_store *s, int *wal_pages)
{
    if (s->backend == FN_SQL_POSTGRES) {
        if (wal_pages) *wal_pages = 0;
        return FN_OK;
    }
    return fn_lite_wal_checkpoint(s, wal_pages);
}

static int exec(fn_store *s, const char *sql, const char *what)
{
    int code = fn_sql_exec(s, sql);
    return code ? fn_store_fail(s, code, what) : FN_OK;
}

static int begin(fn_store *s, fn_store_tx **tx, int library_lock);

int fn_store_begin(fn_store *s, fn_store_tx **tx)
{
    return begin(s, tx, 1);
}

int fn_store_begin_rows(fn_store *s, fn_store_tx **tx)
{
    return begin(s, tx, 0);
}

int fn_store_listen(fn_store *s, const char *channel)
{
    if (s->backend != FN_SQL_POSTGRES)
        return set_msg(s, FN_ERR_UNSUPPORTED, "listening for changes",
                       "SQLite has no notifications; poll instead");
    return fn_pgs_listen(s, channel);
}

int fn_store_socket(fn_store *s)
{
    return s->backend == FN_SQL_POSTGRES ? fn_pgs_socket(s) : -1;
}

int fn_store_drain_notifications(fn_store *s, fn_store_notify_cb cb, void *arg)
{
    return s->backend == FN_SQL_POSTGRES ? fn_pgs_drain(s, cb, arg) : 0;
}

/* library_lock 0 (fn_store_begin_rows): on PostgreSQL neither the library's advisory lock nor the
 * process's write lock, since rows are locked one by one and writers of different rows proceed at
 * once; on SQLite a write transaction is the database's one writer whatever the caller asked. */
static int begin(fn_store *s, fn_store_tx **tx, int library_lock)
{
    *tx = NULL;
    if (s->tx.open)
        return set_msg(s, FN_ERR_STATE, "beginning a transaction",
                       "a transaction is already open on this connection");
    if (s->readonly)
        return set_msg(s, FN_ERR_READONLY, "beginning a write transaction",
                       "the database was opened read-only");
    int fault = atomic_load(&fault_code);
    if (fault == FN_ERR_BUSY)
        return set_msg(s, FN_ERR_BUSY, "beginning a write transaction",
                       "database is locked (injected fault)");
    const int wlock = s->wlock && (library_lock || s->backend != FN_SQL_POSTGRES);
    if (wlock) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += s->busy_ms / 1000;
        until.tv_nsec += (long)(s->busy_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        if (pthread_mutex_timedlock(s->wlock, &until) != 0)
            return set_msg(s, FN_ERR_BUSY, "beginning a write transaction",
                           "another thread of this process kept the library's write lock for "
                           "longer than the busy timeout");
    }
    int code = s->backend == FN_SQL_POSTGRES
                   ? fn_pgs_begin(s, library_lock)
                   : exec(s, "BEGIN IMMEDIATE", "beginning a write transaction");
    if (code) {
        if (wlock) pthread_mutex_unlock(s->wlock);
        return code;
    }
    s->tx.open = 1;
    s->tx.wlocked = wlock;
    *tx = &s->tx;
    return FN_OK;
}

int fn_store_commit(fn_store_tx *tx)
{
    fn_store *s = tx->store;
    int fault = atomic_load(&fault_code);
    if (fault == FN_ERR_FULL) {
        fn_store_rollback(tx);
        return set_msg(s, FN_ERR_FULL, "committing a transaction",
                       "database or disk is full (injected fault)");
    }
    int rc = fn_sql_exec(s, "COMMIT");
    if (rc != FN_OK) {
        int code = fn_store_fail(s, rc, "committing a transaction");
        /* A failed COMMIT may leave the transaction open (a busy database); never leave it so. */
        if (s->backend == FN_SQL_POSTGRES || fn_lite_in_transaction(s)) fn_sql_exec(s, "ROLLBACK");
        s->tx.open = 0;
        if (s->tx.wlocked) pthread_mutex_unlock(s->wlock);
        s->tx.wlocked = 0;
        return code;
    }
    s->tx.open = 0;
    if (s->tx.wlocked) pthread_mutex_unlock(s->wlock);
    s->tx.wlocked = 0;
    return FN_OK;
}

void fn_store_rollback(fn_store_tx *tx)
{
    if (!tx) return;
    fn_store *s = tx->store;
    if (s->backend == FN_SQL_POSTGRES ? s->tx.open : fn_lite_in_transaction(s))
        fn_sql_exec(s, "ROLLBACK");
    if (s->tx.open && s->tx.wlocked) pthread_mutex_unlock(s->wlock);
    s->tx.open = 0;
    s->tx.wlocked = 0;
}

fn_store *fn_store_tx_store(fn_store_tx *tx)
{
    return tx->store;
}
