/* pg_fixture.c: see pg_fixture.h. The cluster is started by scripts/pg-tmp (FN_PG_TMP is its path,
 * set by the build) and stopped by an atexit handler, so a failing test still removes it; a test
 * killed outright (its timeout) is noticed by pg-tmp's --watch, which removes it then. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg_fixture.h"

static char *cluster_url;
static int db_seq;

static void stop_cluster(void)
{
    if (!cluster_url) return;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' stop '%s'", FN_PG_TMP, cluster_url);
    if (system(cmd) != 0) fprintf(stderr, "pg_fixture: could not stop %s\n", cluster_url);
    free(cluster_url);
    cluster_url = NULL;
}

const char *fn_pg_fixture_start(void)
{
    const char *off = getenv("FN_TEST_PG");
    if (off && strcmp(off, "0") == 0) return NULL;
    if (cluster_url) return cluster_url;
    char cmd[1024];
    /* --watch: if this program dies without its atexit handler (a timeout's SIGKILL), pg-tmp
     * still stops the server. */
    snprintf(cmd, sizeof cmd, "'%s' start --watch %ld", FN_PG_TMP, (long)getpid());
    FILE *p = popen(cmd, "r");
    char line[1024] = "";
    if (!p || !fgets(line, sizeof line, p)) line[0] = 0;
    int rc = p ? pclose(p) : -1;
    line[strcspn(line, "\n")] = 0;
    if (rc != 0 || strncmp(line, "postgresql://", 13) != 0) {
        fprintf(stderr, "pg_fixture: scripts/pg-tmp start failed (set FN_TEST_PG=0 to skip the "
                        "PostgreSQL tests)\n");
        exit(1);
    }
    cluster_url = strdup(line);
    atexit(stop_cluster);
    return cluster_url;
}

fn_pg_conn *fn_pg_fixture_connect(const char *url)
{
    fn_pg_conn *c = NULL;
    int rc = fn_pg_connect(url, &c);
    if (rc) fprintf(stderr, "pg_fixture: %s\n", fn_pg_errmsg(c));
    assert_int_equal(rc, 0);
    return c;
}

char *fn_pg_fixture_db(void)
{
    const char *base = fn_pg_fixture_start();
    if (!base) return NULL;
    char name[64];
    snprintf(name, sizeof name, "t%d", ++db_seq);
    fn_pg_conn *c = fn_pg_fixture_connect(base);
    char sql[128];
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    int rc = fn_pg_exec(c, sql);
    if (rc) fprintf(stderr, "pg_fixture: %s\n", fn_pg_errmsg(c));
    assert_int_equal(rc, 0);
    fn_pg_close(c);
    /* base is postgresql:///postgres?host=...: swap the database name. */
    const char *q = strchr(base, '?');
    char *url = NULL;
    assert_true(asprintf(&url, "postgresql:///%s%s", name, q ? q : "") > 0);
    return url;
}
