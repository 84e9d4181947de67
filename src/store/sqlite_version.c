/* sqlite_version.c: fn_version_sqlite (version.h). Here because the store is the only part that
 * may include sqlite3.h (tests/build/test_layering). */
#include <sqlite3.h>

#include "facenames/version.h"

const char *fn_version_sqlite(void)
{
    return sqlite3_libversion();
}
