/* test_ingest_shards.c: an ingest split into shards (ingest.shard_photos) against the same tree
 * ingested whole: exactly the same faces, every photo once; a tree at the threshold is not split;
 * a photo added to the tree after the split lands in exactly one shard (the ranges are walk
 * positions, not counts); cancel of the whole job in the middle of a shard, then its resume, redo
 * nothing and lose nothing. Inline mode; both backends (suite tasks-pg). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers.h"
#include "tasks/ingest.h"

static char *base;

/* The tree, in walk order: a/s1 a/s2 | b/c/s4 b/c/s5 | b/s3 d/s6 (ranges of 2). */
static void make_tree(const char *photos)
{
    h_mkdir("%s%s", photos, "");
    h_mkdir("%s%s", photos, "/a");
    h_mkdir("%s%s", photos, "/b");
    h_mkdir("%s%s", photos, "/b/c");
    h_mkdir("%s%s", photos, "/d");
    char dir[600];
    snprintf(dir, sizeof dir, "%s/a", photos);
    h_sample(1, dir, "s1.jpg");
    h_sample(2, dir, "s2.jpg");
    snprintf(dir, sizeof dir, "%s/b", photos);
    h_sample(3, dir, "s3.jpg");
    snprintf(dir, sizeof dir, "%s/b/c", photos);
    h_sample(4, dir, "s4.jpg");
    h_sample(5, dir, "s5.jpg");
    snprintf(dir, sizeof dir, "%s/d", photos);
    h_sample(6, dir, "s6.jpg");
}

static fn_engine *engine(const char *lib, int shard_photos)
{
    fn_config cfg;
    fn_config_defaults(&cfg);
    cfg.ingest_shard_photos = shard_photos;
    snprintf(cfg.log_path, sizeof cfg.log_path, "-");
    fn_engine *e = NULL;
    assert_int_equal(fn_engine_open(h_engine_addr(lib), &cfg, &e), 0);
    assert_int_equal(fn_tasks_register_all(e), 0);
    assert_int_equal(fn_engine_start(e, 0), 0);
    return e;
}

static void payload_of(char *out, size_t len, const char *photos)
{
    snprintf(out, len, "{\"paths\": [\"%s\"], \"detector\": \"tiny\", \"batch\": 1}", photos);
}

/* The faces of `photos` ingested whole into a library of its own (computed, not hard-coded). */
static char *whole_run_faces(const char *tag, const char *photos, size_t *n)
{
    char lib[600], payload[1024];
    snprintf(lib, sizeof lib, "%s/whole-%s", base, tag);
    fn_engine *e = engine(lib, 0);
    payload_of(payload, sizeof payload, photos);
    fn_job_info *j = h_run(e, payload, NULL);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(j->shards, 0);
    fn_job_info_free(j);
    fn_engine_close(e);
    char *faces = h_faces(lib, n);
    char *sorted = h_sorted(faces);
    free(faces);
    return sorted;
}

static int64_t photos_in(const char *lib)
{
    fn_store *s = h_store(lib);
    fn_library_counts cnt;
    assert_int_equal(fn_library_count(s, &cnt), 0);
    fn_store_close(s);
    return cnt.photos;
}

static void assert_same_faces(const char *lib, const char *want, size_t want_n)
{
    size_t n = 0;
    char *faces = h_faces(lib, &n);
    char *sorted = h_sorted(faces);
    assert_int_equal(n, want_n);
    assert_string_equal(sorted, want);
    free(faces);
    free(sorted);
}

static void test_sharded_same_faces(void **state)
{
    (void)state;
    char photos[600], lib[600], payload[1024];
    snprintf(photos, sizeof photos, "%s/p1", base);
    snprintf(lib, sizeof lib, "%s/lib1", base);
    make_tree(photos);
    size_t want_n = 0;
    char *want = whole_run_faces("1", photos, &want_n);
    assert_true(want_n > 0);

    fn_engine *e = engine(lib, 2);
    payload_of(payload, sizeof payload, photos);
    fn_job_id id;
    fn_job_info *j = h_run(e, payload, &id);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(j->shards, 3);
    assert_int_equal(h_counter(j, "files_total"), 6);
    assert_int_equal(h_counter(j, "files_done"), 6);
    assert_int_equal(h_counter(j, "faces_found"), (int64_t)want_n);
    assert_int_equal(h_counter(j, "errors"), 0);
    fn_job_info_free(j);
    /* The shards are listed after the job, each with its range's two photos. */
    fn_job_info **all = NULL;
    size_t n_all = 0;
    assert_int_equal(fn_job_list(e, -1, 0, &all, &n_all), 0);
    int shards = 0;
    for (size_t i = 0; i < n_all; i++) {
        if (all[i]->shard_of == id) {
            shards++;
            assert_int_equal(all[i]->state, FN_JOB_COMPLETED);
            assert_int_equal(h_counter(all[i], "files_done"), 2);
        }
        fn_job_info_free(all[i]);
    }
    free(all);
    assert_int_equal(shards, 3);
    fn_engine_close(e);
    assert_int_equal(photos_in(lib), 6);
    assert_same_faces(lib, want, want_n);
    free(want);
}

static void test_small_tree_not_split(void **state)
{
    (void)state;
    char photos[600], lib[600], payload[1024];
    snprintf(photos, sizeof photos, "%s/p2", base);
    snprintf(lib, sizeof lib, "%s/lib2", base);
    make_tree(photos);
    fn_engine *e = engine(lib, 6);
    payload_of(payload, sizeof payload, photos);
    fn_job_info *j = h_run(e, payload, NULL);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(j->shards, 0);
    assert_int_equal(h_counter(j, "files_done"), 6);
    fn_job_info_free(j);
    fn_engine_close(e);
    assert_int_equal(photos_in(lib), 6);
}

/* Split first, then a photo appears in the middle range's walk positions (b/a0.jpg sorts before
 * b/c/): it is ingested once, by the shard whose range holds its position, and nothing shifts
 * into another shard. */
static void test_photo_added_after_split(void **state)
{
    (void)state;
    char photos[600], lib[600], payload[1024], dir[700];
    snprintf(photos, sizeof photos, "%s/p3", base);
    snprintf(lib, sizeof lib, "%s/lib3", base);
    make_tree(photos);
    fn_engine *e = engine(lib, 2);
    payload_of(payload, sizeof payload, photos);
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "ingest", payload, FN_PRIO_NORMAL, &id), 0);
    assert_int_equal(fn_engine_run_pending(e, 1, NULL), 0); /* the split only */
    snprintf(dir, sizeof dir, "%s/b", photos);
    h_sample(1, dir, "a0.jpg");
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(e, id, &j), 0);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(j->shards, 3);
    assert_int_equal(h_counter(j, "files_done"), 7);
    assert_int_equal(h_counter(j, "files_total"), 7); /* raised to what was done */
    fn_job_info_free(j);
    fn_job_info **all = NULL;
    size_t n_all = 0;
    assert_int_equal(fn_job_list(e, -1, 0, &all, &n_all), 0);
    int64_t done[3] = {0, 0, 0};
    int k = 0;
    for (size_t i = n_all; i-- > 0;) { /* oldest first */
        if (all[i]->shard_of == id && k < 3) done[k++] = h_counter(all[i], "files_done");
        fn_job_info_free(all[i]);
    }
    free(all);
    assert_int_equal(done[0], 2);
    assert_int_equal(done[1], 3); /* b/a0 b/c/s4 b/c/s5 */
    assert_int_equal(done[2], 2);
    fn_engine_close(e);
    assert_int_equal(photos_in(lib), 7);
}

typedef struct cancel_at {
    fn_engine *e;
    fn_job_id id;
    int at, seen;
} cancel_at;

static void cancel_hook(const char *path, void *arg)
{
    (void)path;
    cancel_at *c = arg;
    if (++c->seen == c->at) assert_int_equal(fn_job_cancel(c->e, c->id), 0);
}

/* Cancel of the whole job when the second shard has considered its first photo: that shard stops
 * after its batch (of 1), the third is cancelled while queued, the job ends cancelled with three
 * photos done; the resume goes on in both and the library ends exactly as a whole run. */
static void test_cancel_then_resume(void **state)
{
    (void)state;
    char photos[600], lib[600], payload[1024];
    snprintf(photos, sizeof photos, "%s/p4", base);
    snprintf(lib, sizeof lib, "%s/lib4", base);
    make_tree(photos);
    size_t want_n = 0;
    char *want = whole_run_faces("4", photos, &want_n);
    fn_engine *e = engine(lib, 2);
    payload_of(payload, sizeof payload, photos);
    fn_job_id id;
    assert_int_equal(fn_enqueue(e, "ingest", payload, FN_PRIO_NORMAL, &id), 0);
    cancel_at c = {.e = e, .id = id, .at = 3};
    fn_ingest_test_hook = cancel_hook;
    fn_ingest_test_hook_arg = &c;
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    fn_ingest_test_hook = NULL;
    fn_job_info *j;
    assert_int_equal(fn_job_inspect(e, id, &j), 0);
    assert_int_equal(j->state, FN_JOB_CANCELLED);
    assert_int_equal(h_counter(j, "files_done"), 3);
    fn_job_info_free(j);
    assert_int_equal(photos_in(lib), 3);
    fn_job_id id2;
    assert_int_equal(fn_job_resume(e, id, &id2), 0);
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    assert_int_equal(fn_job_inspect(e, id2, &j), 0);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(j->shards, 2);
    assert_int_equal(h_counter(j, "files_done"), 6);
    fn_job_info_free(j);
    fn_engine_close(e);
    assert_int_equal(photos_in(lib), 6);
    assert_same_faces(lib, want, want_n);
    free(want);
}

static int group_setup(void **state)
{
    (void)state;
    base = h_tmpdir("ingest-shards");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    h_rmrf(base);
    free(base);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sharded_same_faces),
        cmocka_unit_test(test_small_tree_not_split),
        cmocka_unit_test(test_photo_added_after_split),
        cmocka_unit_test(test_cancel_then_resume),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
