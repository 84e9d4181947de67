/* test_headers.c: every public header compiles alone and together with all the others, as C11
 * with the project's warnings, so an application may include any set of them (two headers once
 * both declared a struct fn_face). Compiling this file is the test; running it checks that the
 * headers' enums and handles are usable from one translation unit. */
#include "facenames/config.h"
#include "facenames/error.h"
#include "facenames/jobs.h"
#include "facenames/jobtype.h"
#include "facenames/log.h"
#include "facenames/people.h"
#include "facenames/tasks.h"
#include "facenames/version.h"
#include "facenames/vision.h"

int main(void)
{
    fn_library_face lf = {0};
    fn_face vf = {0};
    return (int)lf.id + (int)vf.score + (FN_OK == 0 ? 0 : 1);
}
