/* jpeg_decode.c: a JPEG in memory to RGB pixels with libjpeg itself (jpeg_decode.h).
 *
 * What must stay true: libjpeg's errors never exit the process (they jump back here), nothing is
 * printed, a declined decode frees everything it allocated, and a decode that met any warning is
 * declined (libjpeg fills what is missing of a truncated file with gray and goes on). */
#include "vision/jpeg_decode.h"

#include <stdlib.h>
#include <string.h>

#include "vision/jpeg_err.h"

int fn_jpeg_decode_rgb(const uint8_t *data, size_t len, int denom, fn_image *out)
{
    if (!out) return -1;
    memset(out, 0, sizeof *out);
    if (!data || len == 0 || len > (size_t)(unsigned long)-1 ||
        (denom != 1 && denom != 2 && denom != 4 && denom != 8))
        return -1;
    struct jpeg_decompress_struct ci;
    fn_jpeg_err err;
    /* Changed after the setjmp, so not an ordinary automatic variable (indeterminate after the
     * longjmp otherwise). */
    uint8_t *volatile rgb = NULL;
    ci.err = fn_jpeg_err_init(&err);
    if (setjmp(err.back)) {
        jpeg_destroy_decompress(&ci);
        free(rgb);
        return -1;
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, data, (unsigned long)len);
    if (jpeg_read_header(&ci, TRUE) != JPEG_HEADER_OK ||
        (ci.jpeg_color_space != JCS_YCbCr && ci.jpeg_color_space != JCS_GRAYSCALE &&
         ci.jpeg_color_space != JCS_RGB))
        fn_jpeg_error_exit((j_common_ptr)&ci);
    ci.out_color_space = JCS_RGB;
    ci.scale_num = 1;
    ci.scale_denom = (unsigned)denom;
    jpeg_start_decompress(&ci);
    const size_t stride = (size_t)ci.output_width * 3;
    if (ci.output_components != 3 || !(rgb = malloc(stride * ci.output_height)))
        fn_jpeg_error_exit((j_common_ptr)&ci);
    while (ci.output_scanline < ci.output_height) {
        JSAMPROW rows[8];
        const int n = ci.rec_outbuf_height < 8 ? ci.rec_outbuf_height : 8;
        for (int i = 0; i < n; i++) {
            const JDIMENSION y = ci.output_scanline + (JDIMENSION)i;
            rows[i] = rgb + stride * (y < ci.output_height ? y : ci.output_height - 1);
        }
        if (jpeg_read_scanlines(&ci, rows, (JDIMENSION)n) == 0)
            fn_jpeg_error_exit((j_common_ptr)&ci);
    }
    jpeg_finish_decompress(&ci);
    if (err.mgr.num_warnings) fn_jpeg_error_exit((j_common_ptr)&ci);
    /* libvips' size for a scaled decode: the image's size divided by denom, rounded down (libjpeg
     * rounds up; the extra column and row are dropped, as libvips does). */
    const JDIMENSION ow = ci.image_width / (JDIMENSION)denom ? ci.image_width / (JDIMENSION)denom
                                                             : 1,
                     oh = ci.image_height / (JDIMENSION)denom ? ci.image_height / (JDIMENSION)denom
                                                              : 1;
    if (ow < ci.output_width)
        for (JDIMENSION y = 1; y < oh; y++)
            memmove(rgb + (size_t)y * ow * 3, rgb + (size_t)y * stride, (size_t)ow * 3);
    out->width = (int)(ow < ci.output_width ? ow : ci.output_width);
    out->height = (int)(oh < ci.output_height ? oh : ci.output_height);
    out->rgb = rgb;
    jpeg_destroy_decompress(&ci);
    return 0;
}
