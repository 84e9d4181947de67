/* jpeg_err.h: libjpeg's error manager as facenames uses it (internal; jpeg_encode.c and
 * jpeg_decode.c): an error jumps back to the caller's setjmp instead of exiting the process, and
 * nothing is ever printed (warnings are only counted, in mgr.num_warnings). */
#ifndef FN_VISION_JPEG_ERR_H
#define FN_VISION_JPEG_ERR_H

#include <setjmp.h>
#include <stdio.h> /* (jpeglib.h needs FILE) */

#include <jpeglib.h>

typedef struct fn_jpeg_err {
    struct jpeg_error_mgr mgr;
    jmp_buf back;
} fn_jpeg_err;

static inline void fn_jpeg_error_exit(j_common_ptr ci)
{
    longjmp(((fn_jpeg_err *)ci->err)->back, 1);
}

static inline void fn_jpeg_output_message(j_common_ptr ci)
{
    (void)ci; /* the library never prints */
}

/* Sets err up as ci's error manager (before jpeg_create_*); the caller then sets err->back with
 * setjmp. */
static inline struct jpeg_error_mgr *fn_jpeg_err_init(fn_jpeg_err *err)
{
    struct jpeg_error_mgr *m = jpeg_std_error(&err->mgr);
    m->error_exit = fn_jpeg_error_exit;
    m->output_message = fn_jpeg_output_message;
    return m;
}

#endif
