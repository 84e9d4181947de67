/* test_format.c: the CLI's output helpers: numbers, durations, sizes, aligned tables, exit codes,
 * argument parsing, and the progress line built from a job's progress JSON (which pair is the
 * main one, which counters are shown, how a narrow terminal is respected). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"

static void test_numbers(void **state)
{
    (void)state;
    char b[64];
    assert_string_equal(fn_fmt_count(0, b, sizeof b), "0");
    assert_string_equal(fn_fmt_count(999, b, sizeof b), "999");
    assert_string_equal(fn_fmt_count(1000, b, sizeof b), "1,000");
    assert_string_equal(fn_fmt_count(1234567, b, sizeof b), "1,234,567");
    assert_string_equal(fn_fmt_count(-45678, b, sizeof b), "-45,678");
    assert_string_equal(fn_fmt_count(INT64_MIN, b, sizeof b), "-9,223,372,036,854,775,808");
    assert_string_equal(fn_fmt_duration(0, b, sizeof b), "0:00");
    assert_string_equal(fn_fmt_duration(65, b, sizeof b), "1:05");
    assert_string_equal(fn_fmt_duration(3723, b, sizeof b), "1:02:03");
    assert_string_equal(fn_fmt_duration(90061, b, sizeof b), "1d 01:01:01");
    assert_string_equal(fn_fmt_duration(-1, b, sizeof b), "-");
    assert_string_equal(cli_fmt_elapsed(0.237, b, sizeof b), "0.24 s");
    assert_string_equal(cli_fmt_elapsed(12.54, b, sizeof b), "12.5 s");
    assert_string_equal(cli_fmt_elapsed(125, b, sizeof b), "2:05");
    assert_string_equal(fn_fmt_bytes(512, b, sizeof b), "512 B");
    assert_string_equal(fn_fmt_bytes(2069706, b, sizeof b), "2.1 MB");
    assert_string_equal(fn_fmt_bytes(3400000000LL, b, sizeof b), "3.4 GB");
    assert_string_equal(cli_fmt_time(-1, b, sizeof b), "-");
    assert_string_equal(cli_fmt_iso(-1, b, sizeof b), "-");
    assert_string_equal(cli_fmt_iso(0, b, sizeof b), "1970-01-01T00:00:00.000Z");
    /* a tiny buffer is cut, never overrun */
    char tiny[4];
    fn_fmt_count(1234567, tiny, sizeof tiny);
    assert_int_equal(strlen(tiny), 3);
}

static void test_parse(void **state)
{
    (void)state;
    long long v;
    assert_int_equal(cli_parse_ll("42", 1, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(cli_parse_ll("0", 1, 100, &v), -1);
    assert_int_equal(cli_parse_ll("101", 1, 100, &v), -1);
    assert_int_equal(cli_parse_ll("4x", 1, 100, &v), -1);
    assert_int_equal(cli_parse_ll("", 1, 100, &v), -1);
    assert_int_equal(cli_parse_ll("99999999999999999999", 1, INT64_MAX, &v), -1);
    assert_true(cli_is_help("-h") && cli_is_help("--help") && !cli_is_help("--helpme"));
    assert_string_equal(cli_error_message("/a/b.jpg", "/a/b.jpg: truncated"), "truncated");
    assert_string_equal(cli_error_message("/a/b.jpg", "other: x"), "other: x");
    assert_string_equal(cli_error_message("", "x"), "x");
    assert_string_equal(cli_error_message("a", NULL), "");
}

static void test_table(void **state)
{
    (void)state;
    static const char *const hdr[] = {"ID", "NAME", "N"};
    static const int right[] = {1, 0, 1};
    cli_table *t = cli_table_new(3, hdr, right);
    cli_table_add(t, (const char *[]){"7", "héllo", "1,000"});
    cli_table_add(t, (const char *[]){"12", "x", "5"});
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cli_table_print(t, f);
    fclose(f);
    cli_table_free(t);
    /* right-aligned numbers, widths by characters not bytes, no trailing blanks */
    assert_string_equal(buf, "ID  NAME       N\n"
                             " 7  héllo  1,000\n"
                             "12  x          5\n");
    free(buf);
    cli_table_free(NULL);
}

static void test_exit_codes(void **state)
{
    (void)state;
    fn_job_info j;
    memset(&j, 0, sizeof j);
    j.state = FN_JOB_COMPLETED;
    assert_int_equal(cli_job_exit_code(&j), CLI_EXIT_OK);
    j.n_errors = 2;
    assert_int_equal(cli_job_exit_code(&j), CLI_EXIT_ITEMS);
    j.state = FN_JOB_CANCELLED;
    assert_int_equal(cli_job_exit_code(&j), CLI_EXIT_CANCELLED);
    j.state = FN_JOB_FAILED;
    assert_int_equal(cli_job_exit_code(&j), CLI_EXIT_FAILURE);
    j.state = FN_JOB_RUNNING;
    assert_int_equal(cli_job_exit_code(&j), CLI_EXIT_FAILURE);
}

static void test_progress_line(void **state)
{
    (void)state;
    char line[1024];
    cli_progress *p = cli_progress_new(12, "ingest", "photos", 0, -1);
    cli_progress_describe(p, line, sizeof line);
    assert_string_equal(line, "queued, waiting for a worker");
    cli_progress_state(p, FN_JOB_RUNNING);
    cli_progress_update(p, "{\"counters\": {\"files_total\": 5000, \"files_done\": 1234, "
                           "\"faces_found\": 2345, \"no_face_images\": 0, \"errors\": 3, "
                           "\"bytes_read\": 2069706}, \"histograms\": {}}");
    cli_progress_describe(p, line, sizeof line);
    /* the main pair first; zero counters left out; bytes as a size; errors last */
    assert_non_null(strstr(line, "1,234/5,000 files, 2,345 faces, 2.1 MB read, "));
    assert_null(strstr(line, "no face"));
    assert_non_null(strstr(line, "errors 3"));
    assert_true(strcmp(line + strlen(line) - 8, "errors 3") == 0);
    cli_progress_free(p);

    /* no files pair: the first X_done with an X_total; errors counted from events */
    p = cli_progress_new(3, "clustering", NULL, 0, -1);
    cli_progress_state(p, FN_JOB_RUNNING);
    cli_progress_update(p, "{\"counters\": {\"widgets_done\": 4, \"faces_done\": 10, "
                           "\"faces_total\": 40, \"clusters_created\": 2}}");
    cli_progress_error_seen(p);
    cli_progress_describe(p, line, sizeof line);
    assert_non_null(strstr(line, "10/40 faces, 4 widgets done, 2 clusters created, "));
    assert_non_null(strstr(line, "errors 1"));
    cli_progress_free(p);

    /* only a count, no total: no bar, no ETA */
    p = cli_progress_new(4, "repair", NULL, 0, -1);
    cli_progress_update(p, "{\"counters\": {\"rows_done\": 77}}");
    cli_progress_describe(p, line, sizeof line);
    assert_non_null(strstr(line, "77 rows"));
    assert_null(strstr(line, "ETA"));
    cli_progress_free(p);

    /* garbage JSON is ignored, never fatal */
    p = cli_progress_new(5, "x", NULL, 0, -1);
    cli_progress_update(p, "{not json");
    cli_progress_update(p, "{\"counters\": 5}");
    cli_progress_update(p, NULL);
    cli_progress_describe(p, line, sizeof line);
    assert_string_equal(line, "queued, waiting for a worker");
    cli_progress_free(p);
    cli_progress_free(NULL);
}

/* On a terminal the line never exceeds the width (80 columns when stderr is not a terminal):
 * extra counters are dropped, the pair, rate, ETA and errors stay. */
static void test_progress_width(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    FILE *saved = stderr;
    setenv("COLUMNS", "80", 1);
    stderr = f;
    cli_progress *p = cli_progress_new(12, "ingest", "photos", 1, -1);
    cli_progress_state(p, FN_JOB_RUNNING);
    cli_progress_update(p, "{\"counters\": {\"files_total\": 5000, \"files_done\": 1234, "
                           "\"faces_found\": 2345, \"a_very_long_counter_name_one\": 1, "
                           "\"another_very_long_counter_name\": 2, \"errors\": 3}}");
    cli_progress_tick(p, 1);
    cli_progress_clear(p);
    cli_progress_free(p);
    stderr = saved;
    fclose(f);
    /* "\r<line>\033[K" then the clearing "\r\033[K" */
    assert_true(buf[0] == '\r');
    char *end = strstr(buf, "\033[K");
    assert_non_null(end);
    size_t width = (size_t)(end - buf - 1);
    assert_true(width <= 79);
    *end = '\0';
    assert_non_null(strstr(buf, "ingest #12  [==>       ] 1,234/5,000 files  2,345 faces"));
    assert_non_null(strstr(buf, "errors 3"));
    assert_null(strstr(buf, "a very long counter name one"));
    free(buf);
}

/* A narrow terminal (COLUMNS=40): the line is cut between parts, never inside one ("err"). */
static void test_progress_narrow(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    FILE *saved = stderr;
    setenv("COLUMNS", "40", 1);
    stderr = f;
    cli_progress *p = cli_progress_new(12, "ingest", "photos", 1, -1);
    cli_progress_state(p, FN_JOB_RUNNING);
    cli_progress_update(p, "{\"counters\": {\"files_total\": 5000, \"files_done\": 1234, "
                           "\"faces_found\": 2345, \"errors\": 3}}");
    cli_progress_tick(p, 1);
    cli_progress_free(p);
    stderr = saved;
    fclose(f);
    setenv("COLUMNS", "80", 1);
    assert_true(buf[0] == '\r');
    char *end = strstr(buf, "\033[K");
    assert_non_null(end);
    *end = '\0';
    const char *line = buf + 1;
    assert_true(strlen(line) <= 39);
    /* whatever was kept ends with a whole part: the full line's text up to a part boundary */
    /* the bar does not fit with the counts: it goes first */
    static const char full[] = "ingest #12  1,234/5,000 files  ";
    size_t n = strlen(line);
    assert_true(n > 0 && line[n - 1] != ' ');
    assert_memory_equal(line, full, n < sizeof full - 1 ? n : sizeof full - 1);
    assert_true(n >= sizeof full - 1 || full[n] == ' ');
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers),         cmocka_unit_test(test_parse),
        cmocka_unit_test(test_table),           cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_progress_line),   cmocka_unit_test(test_progress_width),
        cmocka_unit_test(test_progress_narrow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
