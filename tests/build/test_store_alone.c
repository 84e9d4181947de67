/* test_store_alone.c: the store part links and works without the engine.
 *
 * Dependencies point one way (jobs -> store -> util). This program links every object of fn_store
 * (link_whole) with fn_util and nothing else, so if any store file calls into src/jobs again (as
 * jobs_store.c once called fn_job_info_free to free what it built), this program no longer links
 * and the build fails. It then reads a job back through the job registry and frees it with the
 * store's own fn_js_info_free, errors included (ASan's leak check sees anything left behind). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "facenames/error.h"
#include "facenames/jobs.h"
#include "store/jobs_store.h"
#include "store/store.h"

static void test_job_round_trip(void **state)
{
    (void)state;
    char dir[] = "/tmp/fn_store_alone_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64], err[256];
    assert_true((size_t)snprintf(path, sizeof path, "%s/library.db", dir) < sizeof path);
    fn_store *s = NULL;
    assert_int_equal(fn_store_open(path, 5000, &s, err, sizeof err), 0);
    assert_int_equal(fn_js_migrate(s), 0);

    fn_js_new nj = {.type = "alone", .payload = "{\"n\":1}", .priority = FN_PRIO_NORMAL};
    int64_t id = 0;
    assert_int_equal(fn_js_insert(s, &nj, 1000, &id), 0);
    assert_true(id > 0);
    assert_int_equal(fn_js_add_error(s, id, "item-1", "corrupt", "bad bytes", FN_RES_SKIP), 0);

    fn_job_info *j = NULL;
    assert_int_equal(fn_js_get(s, id, 1, &j), 0);
    assert_non_null(j);
    assert_int_equal(j->id, id);
    assert_string_equal(j->type, "alone");
    assert_string_equal(j->payload, "{\"n\":1}");
    assert_int_equal(j->state, FN_JOB_QUEUED);
    assert_int_equal(j->n_errors, 1);
    assert_string_equal(j->errors[0].item, "item-1");
    assert_string_equal(j->errors[0].code, "corrupt");
    fn_js_info_free(j);
    fn_js_info_free(NULL);

    fn_job_info **list = NULL;
    size_t n = 0;
    assert_int_equal(fn_js_list(s, -1, 0, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0]->id, id);
    for (size_t i = 0; i < n; i++)
        fn_js_info_free(list[i]);
    free(list);

    assert_int_equal(fn_js_get(s, id + 1, 0, &j), FN_ERR_NOT_FOUND);
    assert_null(j);

    fn_store_close(s);
    char cmd[96];
    assert_true((size_t)snprintf(cmd, sizeof cmd, "rm -rf %s", dir) < sizeof cmd);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
