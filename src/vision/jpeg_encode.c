/* jpeg_encode.c: RGB pixels to a JPEG in memory (jpeg_encode.h).
 *
 * What must stay true: libjpeg's errors never exit the process (error_exit jumps back here), and
 * a failed encode frees what libjpeg allocated, the output buffer included. */
#include "vision/jpeg_encode.h"

#include <stdlib.h>

#include "vision/jpeg_err.h"

/* The output: a buffer of ours that doubles when full (libjpeg's own jpeg_mem_dest does not hand
 * back its buffer after an error once it has grown it). */
typedef struct memdst {
    struct jpeg_destination_mgr pub;
    unsigned char *buf;
    size_t cap;
} memdst;

static void dst_init(j_compress_ptr ci)
{
    memdst *d = (memdst *)ci->dest;
    d->pub.next_output_byte = d->buf;
    d->pub.free_in_buffer = d->cap;
}

static boolean dst_grow(j_compress_ptr ci)
{
    memdst *d = (memdst *)ci->dest;
    unsigned char *nb = realloc(d->buf, d->cap * 2);
    if (!nb) fn_jpeg_error_exit((j_common_ptr)ci);
    d->buf = nb;
    d->pub.next_output_byte = nb + d->cap; /* (the whole old buffer is full) */
    d->pub.free_in_buffer = d->cap;
    d->cap *= 2;
    return TRUE;
}

static void dst_term(j_compress_ptr ci)
{
    (void)ci;
}

int fn_jpeg_encode_rgb(const uint8_t *rgb, int w, int h, int quality, uint8_t **out, size_t *len)
{
    if (!out || !len) return -1;
    *out = NULL;
    *len = 0;
    if (!rgb || w < 1 || h < 1 || w > JPEG_MAX_DIMENSION || h > JPEG_MAX_DIMENSION || quality < 1 ||
        quality > 100)
        return -1;
    /* On the heap: what changes after the setjmp must not be an automatic variable of this frame
     * (its value would be indeterminate after the longjmp). */
    memdst *d = calloc(1, sizeof *d);
    if (!d) return -1;
    d->cap = 16384; /* a 112 px thumbnail takes about 9 KB */
    if (!(d->buf = malloc(d->cap))) {
        free(d);
        return -1;
    }
    d->pub.init_destination = dst_init;
    d->pub.empty_output_buffer = dst_grow;
    d->pub.term_destination = dst_term;
    struct jpeg_compress_struct ci;
    fn_jpeg_err err;
    ci.err = fn_jpeg_err_init(&err);
    if (setjmp(err.back)) {
        jpeg_destroy_compress(&ci);
        free(d->buf);
        free(d);
        return -1;
    }
    jpeg_create_compress(&ci);
    ci.dest = &d->pub;
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)ci.next_scanline * (size_t)w * 3);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    *len = d->cap - d->pub.free_in_buffer;
    *out = d->buf;
    jpeg_destroy_compress(&ci);
    free(d);
    return 0;
}
