/* test_ingest_kill.c: SIGKILL at 20+ random moments, then recovery and resume, ends with exactly
 * the faces of an uninterrupted run: none lost, none duplicated.
 *
 * The ingest runs in a child process (this program re-executed with --child, so the child starts
 * clean: no libvips or thread state inherited through fork). The parent kills it after a random
 * delay within the length of an uninterrupted run, then starts the next child, which opens the
 * library (recovering the killed child's job from its checkpoint: its owner is gone) and runs what
 * is pending. Every other child also enqueues a new ingest of the same tree, the other way back
 * (rerunning `facenames ingest` after a crash). The tiny detector and batches of 2 keep it quick.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <sys/wait.h>

#include "helpers.h"

static char self[1024];

static int child_main(const char *lib, const char *photos, const char *mode)
{
    fn_engine *e = h_engine(lib);
    fn_job_info **jobs = NULL;
    size_t n = 0;
    if (fn_job_list(e, -1, 0, &jobs, &n) != 0) return 2;
    for (size_t i = 0; i < n; i++)
        fn_job_info_free(jobs[i]);
    free(jobs);
    if (n == 0 || strcmp(mode, "new") == 0) {
        char payload[1024];
        snprintf(payload, sizeof payload,
                 "{\"paths\": [\"%s\"], \"detector\": \"tiny\", \"batch\": 2}", photos);
        fn_job_id id;
        if (fn_enqueue(e, "ingest", payload, FN_PRIO_NORMAL, &id) != 0) return 2;
    }
    int rc = fn_engine_run_pending(e, 0, NULL);
    fn_engine_close(e);
    return rc == 0 ? 0 : 3;
}

static pid_t spawn(const char *lib, const char *photos, const char *mode)
{
    /* On PostgreSQL the child gets the database's URL (made here, in the test's process). */
    const char *addr = h_addr(lib);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *args[] = {self, "--child", (char *)addr, (char *)photos, (char *)mode, NULL};
        execv(self, args);
        _exit(127);
    }
    return pid;
}

static int wait_child(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) abort();
    return st;
}

/* Waits up to `us` microseconds for the child; returns 1 and *st if it exited. */
static int wait_for(pid_t pid, useconds_t us, int *st)
{
    uint64_t end = h_now_ns() + (uint64_t)us * 1000;
    for (;;) {
        pid_t r = waitpid(pid, st, WNOHANG);
        if (r == pid) return 1;
        if (h_now_ns() >= end) return 0;
        usleep(2000);
    }
}

/* Checks that lib holds exactly the reference faces and that no job is left unfinished. */
static void verify(const char *lib, const char *sorted_ref, size_t n_ref, int photos)
{
    fn_engine *e = h_engine(lib);
    fn_job_info **jobs = NULL;
    size_t nj = 0;
    assert_int_equal(fn_job_list(e, -1, 0, &jobs, &nj), 0);
    for (size_t i = 0; i < nj; i++) {
        assert_int_equal(jobs[i]->state, FN_JOB_COMPLETED);
        fn_job_info_free(jobs[i]);
    }
    free(jobs);
    fn_engine_close(e);
    size_t n;
    char *faces = h_faces(lib, &n);
    char *sorted = h_sorted(faces);
    assert_int_equal(n, n_ref);
    assert_string_equal(sorted, sorted_ref);
    fn_store *s = h_store(lib);
    fn_library_counts c;
    assert_int_equal(fn_library_count(s, &c), 0);
    assert_int_equal(c.photos, photos);
    fn_store_close(s);
    free(faces);
    free(sorted);
}

static void test_kill_and_resume(void **state)
{
    (void)state;
    H_PG_ENGINE_OR_SKIP();
    char *base = h_tmpdir("kill");
    char photos[512], ref[512];
    snprintf(photos, sizeof photos, "%s/photos", base);
    snprintf(ref, sizeof ref, "%s/ref", base);
    h_mkdir("%s%s", photos, "");
    h_mkdir("%s/%s", photos, "sub");
    h_sample(1, photos, "sample1.jpg");
    h_sample(2, photos, "sample2.jpg");
    h_sample(3, photos, "sample3.jpg");
    char sub[600];
    snprintf(sub, sizeof sub, "%s/sub", photos);
    h_sample(5, sub, "a.jpg");
    const int n_photos = 4;

    /* the uninterrupted run */
    uint64_t t0 = h_now_ns();
    int st = wait_child(spawn(ref, photos, "new"));
    uint64_t full_ns = h_now_ns() - t0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    size_t n_ref;
    char *faces_ref = h_faces(ref, &n_ref);
    char *sorted_ref = h_sorted(faces_ref);
    assert_true(n_ref > 0);

    /* Rounds: a fresh library, killed at random moments until a child gets to finish (the
     * recovery + resume), then compared with the reference. */
    srand(20261128);
    int kills = 0, rounds = 0, attempts = 0;
    while (kills < 20 && attempts < 200) {
        char lib[600];
        snprintf(lib, sizeof lib, "%s/lib%d", base, ++rounds);
        for (;;) {
            const char *mode = ++attempts % 3 == 0 ? "new" : "resume";
            pid_t pid = spawn(lib, photos, mode);
            if (kills >= 20) { /* enough: let this one finish the round */
                st = wait_child(pid);
                assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
                break;
            }
            useconds_t delay = (useconds_t)((double)rand() / RAND_MAX * (double)full_ns / 1000.0);
            if (wait_for(pid, delay, &st)) {
                assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
                break;
            }
            kill(pid, SIGKILL);
            st = wait_child(pid);
            if (WIFSIGNALED(st)) {
                kills++;
            } else {
                assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
                break;
            }
        }
        verify(lib, sorted_ref, n_ref, n_photos);
    }
    fprintf(stderr, "uninterrupted run %.2f s; %d kills over %d rounds (%d runs), all equal\n",
            full_ns / 1e9, kills, rounds, attempts);
    assert_true(kills >= 20);
    free(faces_ref);
    free(sorted_ref);
    h_rmrf(base);
    free(base);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--child") == 0) return child_main(argv[2], argv[3], argv[4]);
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 1;
    self[n] = 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_and_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
