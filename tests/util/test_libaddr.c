/* test_libaddr.c: a library is a folder or a PostgreSQL address (util/libaddr.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "facenames/error.h"
#include "util/libaddr.h"

static void test_kinds(void **state)
{
    (void)state;
    assert_true(fn_libaddr_is_url("postgresql://h/db"));
    assert_true(fn_libaddr_is_url("postgres://h/db"));
    assert_false(fn_libaddr_is_url("/home/me/faces"));
    assert_false(fn_libaddr_is_url("postgresql:/h")); /* one slash: a relative folder name */
    assert_false(fn_libaddr_is_url("./postgresql://x"));
    assert_false(fn_libaddr_is_url(""));
    assert_false(fn_libaddr_is_url(NULL));
}

static void test_db_address(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(fn_libaddr_db("/lib", out, sizeof out), FN_OK);
    assert_string_equal(out, "/lib/library.db");
    assert_int_equal(fn_libaddr_db("postgresql://u@h:5433/faces", out, sizeof out), FN_OK);
    assert_string_equal(out, "postgresql://u@h:5433/faces");
    char tiny[8];
    assert_int_equal(fn_libaddr_db("/lib", tiny, sizeof tiny), FN_ERR_INVALID);
}

static void test_display_hides_password(void **state)
{
    (void)state;
    char out[128];
    fn_libaddr_display("postgresql://ann:s3cr@t@db.home:5432/faces?sslmode=require", out,
                       sizeof out);
    /* an '@' in a password must be written %40; a raw one ends the userinfo, and nothing of the
     * part before it is shown */
    assert_null(strstr(out, "s3cr"));
    assert_string_equal(out, "postgresql://ann:***@t@db.home:5432/faces?sslmode=require");
    fn_libaddr_display("postgres://ann:pw@h/db", out, sizeof out);
    assert_string_equal(out, "postgres://ann:***@h/db");
    fn_libaddr_display("postgresql://ann@h/db", out, sizeof out);
    assert_string_equal(out, "postgresql://ann@h/db");
    fn_libaddr_display("postgresql://h:5432/db", out, sizeof out); /* a port is no password */
    assert_string_equal(out, "postgresql://h:5432/db");
    fn_libaddr_display("postgresql:///db?host=/run/pg", out, sizeof out);
    assert_string_equal(out, "postgresql:///db?host=/run/pg");
    fn_libaddr_display("/a/b:c@d", out, sizeof out);
    assert_string_equal(out, "/a/b:c@d");
    char small[12];
    fn_libaddr_display("postgres://ann:pw@h/db", small, sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_null(strstr(small, "pw"));
}

static void test_redact(void **state)
{
    (void)state;
    char msg[256] = "library postgresql://ann:pw@h/db: opening postgresql://ann:pw@h/db failed";
    fn_libaddr_redact("postgresql://ann:pw@h/db", msg, sizeof msg);
    assert_string_equal(msg, "library postgresql://ann:***@h/db: opening postgresql://ann:***@h/db "
                             "failed");
    char plain[64] = "library /a/b: locked";
    fn_libaddr_redact("/a/b", plain, sizeof plain);
    assert_string_equal(plain, "library /a/b: locked");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_db_address),
        cmocka_unit_test(test_display_hides_password),
        cmocka_unit_test(test_redact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
