/* joblog.c: the lifecycle log file (log.path, default <library>/jobs.log; "-" for none).
 *
 * The lines are stored in the job_log table by the transaction that makes the change; the file is
 * a convenience copy for people and log shippers. To keep a syscall off every job's path, lines
 * are buffered and written by whole lines with write() on an O_APPEND descriptor (so lines from
 * several processes never interleave) when 16 KB are pending, on every monitor tick (200 ms) and
 * at close. A crash can lose the last 200 ms of the file, never of the table. A failed write is
 * logged, never fatal. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jobs/internal.h"
#include "util/clock.h"
#include "util/log.h"

#define FLUSH_AT 16384

void fn_joblog_prefix(char *buf, size_t len, int64_t now, fn_job_id id, const char *type)
{
    char iso[32];
    fn_iso8601(now, iso, sizeof iso);
    snprintf(buf, len, "%s job %lld %s ", iso, (long long)id, type && *type ? type : "-");
}

static void write_all(fn_engine *e, const char *text, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(e->log_fd, text + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            FN_LOG(FN_LOG_WARN, "%s: cannot write the job log: %s", e->log_path, strerror(errno));
            return;
        }
        off += (size_t)w;
    }
}

static void flush_locked(fn_engine *e)
{
    if (e->log_len) write_all(e, e->log_buf, e->log_len);
    e->log_len = 0;
}

void fn_joblog_flush(fn_engine *e)
{
    if (e->log_fd < 0) return;
    pthread_mutex_lock(&e->log_mu);
    flush_locked(e);
    pthread_mutex_unlock(&e->log_mu);
}

void fn_joblog_file_many(fn_engine *e, const char *text, size_t len)
{
    if (e->log_fd < 0 || len == 0) return;
    pthread_mutex_lock(&e->log_mu);
    if (e->log_len + len > e->log_cap) {
        flush_locked(e);
        if (len > FLUSH_AT) {
            write_all(e, text, len);
            pthread_mutex_unlock(&e->log_mu);
            return;
        }
        if (!e->log_buf) {
            e->log_buf = malloc(2 * FLUSH_AT);
            e->log_cap = e->log_buf ? 2 * FLUSH_AT : 0;
        }
        if (!e->log_buf) {
            write_all(e, text, len);
            pthread_mutex_unlock(&e->log_mu);
            return;
        }
    }
    memcpy(e->log_buf + e->log_len, text, len);
    e->log_len += len;
    if (e->log_len >= FLUSH_AT) flush_locked(e);
    pthread_mutex_unlock(&e->log_mu);
}

void fn_joblog_file(fn_engine *e, fn_job_id id, const char *type, const char *line)
{
    if (e->log_fd < 0) return;
    char buf[1200];
    fn_joblog_prefix(buf, sizeof buf, fn_wall_ms(), id, type);
    size_t l = strlen(buf);
    snprintf(buf + l, sizeof buf - l, "%s\n", line);
    fn_joblog_file_many(e, buf, strlen(buf));
}
