/* test_identity.c: a photo is its content plus its path relative to its root (issue 14), end to
 * end in engine inline mode, on both backends (suites tasks and tasks-pg).
 *
 *   - copy: a tree copied to a folder no root maps is a new root; its files are recognised by
 *     content as the photos already known at the same relative paths (no second photo, no face
 *     detected again), each recorded as another location of its photo; a rerun over the copy
 *     reads no file again;
 *   - moved: when the known file is gone from this host's mount of its root, the photo follows
 *     the file to the new root (relinked) instead of gaining a location; a host that does not
 *     mount the photo's root cannot tell and records copies, until the host that does sees the
 *     known files gone and moves the photos;
 *   - one run: a tree and its copy in one job's payload, in one batch, still give each photo once;
 *   - duplicates inside one root (the same bytes under two names) stay two photos, each with its
 *     faces: a relative path is part of the identity;
 *   - retry on another host: an item failed on host-a (its absolute path under host-a's mount) is
 *     retried by host-b, which mounts the root elsewhere and cannot see host-a's mount: the item is
 *     read through host-b's mount and stored on the photo's one row.
 * Expected face counts come from the first ingest of the same bytes, never from constants. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "helpers.h"

static char *base;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

/* An engine on `lib` acting as host `host` (worker.host), inline mode. */
static fn_engine *host_engine(const char *lib, const char *host)
{
    H_PG_ENGINE_OR_SKIP();
    fn_config cfg;
    fn_config_defaults(&cfg);
    snprintf(cfg.log_path, sizeof cfg.log_path, "-");
    snprintf(cfg.worker_host, sizeof cfg.worker_host, "%s", host);
    fn_engine *e = NULL;
    if (fn_engine_open(h_addr(lib), &cfg, &e) != 0 || fn_tasks_register_all(e) != 0 ||
        fn_engine_start(e, 0) != 0) {
        fprintf(stderr, "engine: %s\n", fn_engine_errmsg(e));
        abort();
    }
    return e;
}

/* Ingests `paths` (a JSON array's inside) with the tiny detector; returns the finished job. */
static fn_job_info *ingest(fn_engine *e, const char *paths, fn_job_id *id)
{
    char payload[2048];
    snprintf(payload, sizeof payload, "{\"paths\": [%s], \"detector\": \"tiny\", \"batch\": 16}",
             paths);
    fn_job_info *j = h_run(e, payload, id);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    return j;
}

/* A folder <base>/<name> holding samples 1 and 2 and sub/sample3. */
static void tree(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", base, name);
    h_mkdir("%s%s", out, "");
    h_mkdir("%s/%s", out, "sub");
    h_sample(1, out, "one.jpg");
    h_sample(2, out, "two.jpg");
    char sub[700];
    snprintf(sub, sizeof sub, "%s/sub", out);
    h_sample(3, sub, "three.jpg");
}

static int64_t q(const char *lib, const char *fmt, const char *arg)
{
    h_db d;
    h_db_open(&d, h_addr(lib));
    int64_t v = h_db_int(&d, fmt, arg);
    h_db_close(&d);
    return v;
}

/* ---- a copy under a root nobody mapped --------------------------------------------------------
 */

static void test_copy_is_recognised(void **state)
{
    (void)state;
    char lib[600], a[600], b[600], paths[1400];
    snprintf(lib, sizeof lib, "%s/lib-copy", base);
    tree(a, sizeof a, "copy-a");
    fn_engine *e = host_engine(lib, "host-a");
    snprintf(paths, sizeof paths, "\"%s\"", a);
    fn_job_info *j = ingest(e, paths, NULL);
    int64_t faces = h_counter(j, "faces_found");
    assert_true(faces > 0);
    fn_job_info_free(j);
    size_t n_faces;
    char *before = h_faces(lib, &n_faces);

    /* The user copies the tree elsewhere (or another host mounted the share without a mapping):
     * the known files stay where they were. */
    snprintf(b, sizeof b, "%s/copy-b", base);
    assert_int_equal(sh("cp -rp '%s' '%s'", a, b), 0);
    snprintf(paths, sizeof paths, "\"%s\"", b);
    j = ingest(e, paths, NULL);
    assert_int_equal(h_counter(j, "faces_found"), 0);
    assert_int_equal(h_counter(j, "errors"), 0);
    assert_int_equal(h_counter(j, "files_done"), 3);
    assert_int_equal(h_counter(j, "recognised_by_content"), 3);
    fn_job_info_free(j);
    assert_int_equal(q(lib, "SELECT count(*) FROM photos%s", ""), 3);
    assert_int_equal(q(lib, "SELECT count(*) FROM roots%s", ""), 2);
    /* the photos keep their first location; the copies are recorded beside them */
    char like[700];
    snprintf(like, sizeof like, "%s/%%", a);
    assert_int_equal(q(lib, "SELECT count(*) FROM photos WHERE path LIKE '%s'", like), 3);
    snprintf(like, sizeof like, "%s/%%", b);
    assert_int_equal(q(lib,
                       "SELECT count(*) FROM photo_copies c JOIN photos p ON p.id = c.photo_id"
                       " WHERE c.rel = p.rel AND c.root <> p.root AND c.path LIKE '%s'",
                       like),
                     3);
    size_t n_after;
    char *after = h_faces(lib, &n_after);
    assert_int_equal(n_after, n_faces);
    assert_string_equal(after, before);
    free(after);
    /* a copy's path names its photo, and the photo lists its copy */
    fn_store *s = h_store(lib);
    fn_library_reader *r;
    assert_int_equal(fn_library_reader_new(s, &r), 0);
    char path[700];
    snprintf(path, sizeof path, "%s/sub/three.jpg", b);
    fn_photo_row row;
    assert_int_equal(fn_library_photo_by_path(r, path, &row), FN_ERR_NOT_FOUND);
    assert_int_equal(fn_library_photo_by_copy(r, path, &row), 0);
    char **copies;
    size_t n_copies;
    assert_int_equal(fn_library_photo_copies(s, row.id, &copies, &n_copies), 0);
    assert_int_equal(n_copies, 1);
    assert_string_equal(copies[0], path);
    snprintf(path, sizeof path, "%s/sub/three.jpg", a);
    assert_string_equal(row.path, path);
    free(copies[0]);
    free(copies);
    fn_photo_row_clear(&row);
    fn_library_reader_free(r);
    fn_store_close(s);

    /* a rerun over the copy is the unchanged fast path: nothing read, nothing new */
    j = ingest(e, paths, NULL);
    assert_int_equal(h_counter(j, "skipped_unchanged"), 3);
    assert_int_equal(h_counter(j, "bytes_read"), 0);
    assert_int_equal(h_counter(j, "faces_found"), 0);
    fn_job_info_free(j);

    /* a copy edited afterwards is a photo of its own */
    char edited[700];
    snprintf(edited, sizeof edited, "%s/two.jpg", b);
    h_sample(4, b, "two.jpg");
    j = ingest(e, paths, NULL);
    assert_int_equal(h_counter(j, "files_done"), 3);
    assert_true(h_counter(j, "faces_found") > 0);
    fn_job_info_free(j);
    assert_int_equal(q(lib, "SELECT count(*) FROM photos%s", ""), 4);
    assert_int_equal(q(lib, "SELECT count(*) FROM photo_copies%s", ""), 2);
    assert_int_equal(q(lib, "SELECT count(*) FROM photos WHERE path = '%s'", edited), 1);
    fn_engine_close(e);
    free(before);
}

/* ---- the known file is gone: the photo moves -------------------------------------------------
 */

static void test_moved_tree_relinks(void **state)
{
    (void)state;
    char lib[600], a[600], c[600], paths[1400];
    snprintf(lib, sizeof lib, "%s/lib-moved", base);
    tree(a, sizeof a, "moved-a");
    fn_engine *e = host_engine(lib, "host-a");
    snprintf(paths, sizeof paths, "\"%s\"", a);
    fn_job_info *j = ingest(e, paths, NULL);
    fn_job_info_free(j);
    size_t n_faces;
    char *before = h_faces(lib, &n_faces);

    snprintf(c, sizeof c, "%s/moved-c", base);
    assert_int_equal(rename(a, c), 0);
    snprintf(paths, sizeof paths, "\"%s\"", c);
    j = ingest(e, paths, NULL);
    assert_int_equal(h_counter(j, "faces_found"), 0);
    assert_int_equal(h_counter(j, "recognised_by_content"), 3);
    fn_job_info_free(j);
    assert_int_equal(q(lib, "SELECT count(*) FROM photos%s", ""), 3);
    char like[700];
    snprintf(like, sizeof like, "%s/%%", c);
    assert_int_equal(q(lib, "SELECT count(*) FROM photos WHERE path LIKE '%s'", like), 3);
    assert_int_equal(q(lib,
                       "SELECT count(*) FROM photos p JOIN root_paths r ON r.root = p.root"
                       " WHERE r.path = '%s'",
                       c),
                     3);
    assert_int_equal(q(lib, "SELECT count(*) FROM photo_copies%s", ""), 0);
    size_t n_after;
    char *after = h_faces(lib, &n_after);
    assert_string_equal(after, before);
    free(after);
    free(before);

    /* and it is the fast path from then on */
    j = ingest(e, paths, NULL);
    assert_int_equal(h_counter(j, "skipped_unchanged"), 3);
    assert_int_equal(h_counter(j, "bytes_read"), 0);
    fn_job_info_free(j);
    fn_engine_close(e);
}

/* A host that does not mount the photos' root cannot tell a move from a copy: it records copies.
 * The host that mounts the root, and finds the known files gone, then moves the photos there. */
static void test_other_host_cannot_tell(void **state)
{
    (void)state;
    char lib[600], a[600], c[600], paths[1400], like[700];
    snprintf(lib, sizeof lib, "%s/lib-tell", base);
    tree(a, sizeof a, "tell-a");
    fn_engine *e = host_engine(lib, "host-a");
    snprintf(paths, sizeof paths, "\"%s\"", a);
    fn_job_info *j = ingest(e, paths, NULL);
    fn_job_info_free(j);
    fn_engine_close(e);
    char *before = h_faces(lib, NULL);

    snprintf(c, sizeof c, "%s/tell-c", base);
    assert_int_equal(rename(a, c), 0);
    e = host_engine(lib, "host-b");
    snprintf(paths, sizeof paths, "\"%s\"", c);
    j = ingest(e, paths, NULL);
    assert_int_equal(h_counter(j, "faces_found"), 0);
    assert_int_equal(h_counter(j, "recognised_by_content"), 3);
    fn_job_info_free(j);
    fn_engine_close(e);
    snprintf(like, sizeof like, "%s/%%", a);
    assert_int_equal(q(lib, "SELECT count(*) FROM photos WHERE path LIKE '%s'", like), 3);
    assert_int_equal(q(lib, "SELECT count(*) FROM photo_copies%s", ""), 3);

    e = host_engine(lib, "host-a");
    j = ingest(e, paths, NULL);
    assert_int_equal(h_counter(j, "faces_found"), 0);
    assert_int_equal(h_counter(j, "recognised_by_content"), 3);
    fn_job_info_free(j);
    fn_engine_close(e);
    snprintf(like, sizeof like, "%s/%%", c);
    assert_int_equal(q(lib, "SELECT count(*) FROM photos WHERE path LIKE '%s'", like), 3);
    assert_int_equal(q(lib, "SELECT count(*) FROM photo_copies%s", ""), 0);
    assert_int_equal(q(lib, "SELECT count(*) FROM photos%s", ""), 3);
    char *after = h_faces(lib, NULL);
    assert_string_equal(after, before);
    free(after);
    free(before);
}

/* A copy of the folder above the root (another host mounted the share one level up): the
 * relative paths differ by a leading folder, and one still ends the other. */
static void test_copy_of_the_parent(void **state)
{
    (void)state;
    char lib[600], parent[600], a[700], b[600], paths[1400];
    snprintf(lib, sizeof lib, "%s/lib-parent", base);
    snprintf(parent, sizeof parent, "%s/parent", base);
    h_mkdir("%s%s", parent, "");
    snprintf(a, sizeof a, "%s/photos", parent);
    h_mkdir("%s%s", a, "");
    h_sample(1, a, "one.jpg");
    h_sample(2, a, "two.jpg");
    fn_engine *e = host_engine(lib, "host-a");
    snprintf(paths, sizeof paths, "\"%s\"", a);
    fn_job_info *j = ingest(e, paths, NULL);
    fn_job_info_free(j);
    snprintf(b, sizeof b, "%s/parent-copy", base);
    assert_int_equal(sh("cp -rp '%s' '%s'", parent, b), 0);
    snprintf(paths, sizeof paths, "\"%s\"", b);
    j = ingest(e, paths, NULL);
    assert_int_equal(h_counter(j, "recognised_by_content"), 2);
    assert_int_equal(h_counter(j, "faces_found"), 0);
    fn_job_info_free(j);
    fn_engine_close(e);
    assert_int_equal(q(lib, "SELECT count(*) FROM photos%s", ""), 2);
    assert_int_equal(q(lib, "SELECT count(*) FROM photo_copies WHERE rel LIKE '%s'", "photos/%"),
                     2);
}

/* ---- one run: a tree and its copy together ---------------------------------------------------
 */

static void test_copy_in_the_same_run(void **state)
{
    (void)state;
    char lib[600], a[600], b[600], paths[1400];
    snprintf(lib, sizeof lib, "%s/lib-onerun", base);
    tree(a, sizeof a, "onerun-a");
    snprintf(b, sizeof b, "%s/onerun-b", base);
    assert_int_equal(sh("cp -rp '%s' '%s'", a, b), 0);
    fn_engine *e = host_engine(lib, "host-a");
    snprintf(paths, sizeof paths, "\"%s\", \"%s\"", a, b);
    fn_job_info *j = ingest(e, paths, NULL);
    assert_int_equal(h_counter(j, "files_done"), 6);
    assert_int_equal(h_counter(j, "errors"), 0);
    fn_job_info_free(j);
    fn_engine_close(e);
    assert_int_equal(q(lib, "SELECT count(*) FROM photos%s", ""), 3);
    assert_int_equal(q(lib, "SELECT count(*) FROM photo_copies%s", ""), 3);
    char like[700];
    snprintf(like, sizeof like, "%s/%%", a);
    assert_int_equal(q(lib, "SELECT count(*) FROM photos WHERE path LIKE '%s'", like), 3);

    /* the same faces as the tree alone */
    char lib2[600];
    snprintf(lib2, sizeof lib2, "%s/lib-onerun-ref", base);
    e = host_engine(lib2, "host-a");
    snprintf(paths, sizeof paths, "\"%s\"", a);
    j = ingest(e, paths, NULL);
    fn_job_info_free(j);
    fn_engine_close(e);
    char *got = h_faces(lib, NULL), *want = h_faces(lib2, NULL);
    assert_string_equal(got, want);
    free(got);
    free(want);
}

/* ---- duplicates inside one root --------------------------------------------------------------
 */

static void test_duplicates_in_one_root(void **state)
{
    (void)state;
    char lib[600], d[600], sub[700], paths[1400];
    snprintf(lib, sizeof lib, "%s/lib-dup", base);
    snprintf(d, sizeof d, "%s/dup", base);
    h_mkdir("%s%s", d, "");
    h_mkdir("%s/%s", d, "album");
    snprintf(sub, sizeof sub, "%s/album", d);
    h_sample(1, d, "a.jpg");
    h_sample(1, sub, "b.jpg");
    fn_engine *e = host_engine(lib, "host-a");
    snprintf(paths, sizeof paths, "\"%s\"", d);
    fn_job_info *j = ingest(e, paths, NULL);
    int64_t faces = h_counter(j, "faces_found");
    fn_job_info_free(j);
    /* the same bytes again, alone, in a third place of the same root, in a later run */
    h_sample(1, d, "c.jpg");
    j = ingest(e, paths, NULL);
    int64_t faces_c = h_counter(j, "faces_found");
    fn_job_info_free(j);
    fn_engine_close(e);
    assert_true(faces_c > 0);
    assert_int_equal(faces, 2 * faces_c);
    assert_int_equal(q(lib, "SELECT count(*) FROM photos%s", ""), 3);
    assert_int_equal(q(lib, "SELECT count(*) FROM photo_copies%s", ""), 0);
    assert_int_equal(q(lib, "SELECT count(DISTINCT hash) FROM photos%s", ""), 1);
}

/* ---- retry on another host -------------------------------------------------------------------
 */

static void test_retry_on_another_host(void **state)
{
    (void)state;
    char lib[600], ma[600], mb[600], moved[600], photo[800], payload[1400];
    snprintf(lib, sizeof lib, "%s/lib-retry", base);
    /* host-a's mount of the share is a folder (the walk reads real paths, so a symlink would
     * stand for its target); host-b's is a symlink made later, to where host-a's is not */
    snprintf(ma, sizeof ma, "%s/mnt-a", base);
    snprintf(mb, sizeof mb, "%s/mnt-b", base);
    snprintf(moved, sizeof moved, "%s/share-on-b", base);
    h_mkdir("%s%s", ma, "");
    h_sample(1, ma, "good.jpg");
    h_sample(2, ma, "later.jpg");
    /* later.jpg is half written when host-a reads it */
    snprintf(photo, sizeof photo, "%s/later.jpg", ma);
    FILE *f = fopen(photo, "rb");
    assert_non_null(f);
    static unsigned char bytes[1 << 23];
    size_t len = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    assert_true(len > 1000 && len < sizeof bytes);
    f = fopen(photo, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len / 2, f), len / 2);
    fclose(f);

    /* one root, mounted at mnt-a by host-a and at mnt-b by host-b */
    fn_engine *e = host_engine(lib, "host-a");
    fn_store_close(h_store(lib)); /* the library's tables, before its first job makes them */
    h_db d;
    h_db_open(&d, h_addr(lib));
    h_db_exec(&d, "INSERT INTO roots (name) VALUES ('share')");
    h_db_exec(&d,
              "INSERT INTO root_paths (root, host, path) SELECT id, 'host-a', '%s' FROM roots;"
              "INSERT INTO root_paths (root, host, path) SELECT id, 'host-b', '%s' FROM roots",
              ma, mb);
    h_db_close(&d);
    fn_job_id failed;
    snprintf(payload, sizeof payload, "\"%s\"", ma);
    fn_job_info *j = ingest(e, payload, &failed);
    assert_int_equal(h_counter(j, "errors"), 1);
    fn_job_info_free(j);
    fn_engine_close(e);
    char item[800];
    snprintf(item, sizeof item, "%s/later.jpg", ma);
    assert_int_equal(q(lib, "SELECT count(*) FROM job_errors WHERE item = '%s'", item), 1);

    /* the file is complete now; host-b retries, and host-a's mount is not there for it */
    f = fopen(photo, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    fclose(f);
    assert_int_equal(rename(ma, moved), 0);
    assert_int_equal(symlink(moved, mb), 0);
    e = host_engine(lib, "host-b");
    fn_job_id retry;
    assert_int_equal(fn_job_retry(e, failed, NULL, &retry), 0);
    assert_int_equal(fn_engine_run_pending(e, 0, NULL), 0);
    assert_int_equal(fn_job_inspect(e, retry, &j), 0);
    assert_int_equal(j->state, FN_JOB_COMPLETED);
    assert_int_equal(h_counter(j, "errors"), 0);
    assert_int_equal(h_counter(j, "files_total"), 1);
    int64_t faces = h_counter(j, "faces_found");
    fn_job_info_free(j);
    fn_engine_close(e);
    assert_true(faces > 0);
    /* one row for the photo, under the path it was first stored under, now with its faces */
    assert_int_equal(q(lib, "SELECT count(*) FROM photos WHERE rel = '%s'", "later.jpg"), 1);
    assert_int_equal(
        q(lib, "SELECT count(*) FROM photos WHERE path = '%s' AND status <> 'error'", item), 1);
    assert_int_equal(q(lib,
                       "SELECT count(*) FROM faces f JOIN photos p ON p.id = f.photo_id"
                       " WHERE p.rel = '%s'",
                       "later.jpg"),
                     faces);
    assert_int_equal(q(lib, "SELECT count(*) FROM photos%s", ""), 2);
}

static int setup(void **state)
{
    (void)state;
    base = h_tmpdir("identity");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    h_rmrf(base);
    free(base);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_is_recognised),
        cmocka_unit_test(test_moved_tree_relinks),
        cmocka_unit_test(test_copy_in_the_same_run),
        cmocka_unit_test(test_duplicates_in_one_root),
        cmocka_unit_test(test_other_host_cannot_tell),
        cmocka_unit_test(test_copy_of_the_parent),
        cmocka_unit_test(test_retry_on_another_host),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
