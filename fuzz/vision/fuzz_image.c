/* fuzz_image: the photo loader (fn_image_load_buffer) on arbitrary bytes: libvips' sniffing and
 * decoders, our format allow-list, the header-first pixel limit and the error classification;
 * and, differentially, the JPEG fast path (libjpeg itself, image.c): a JPEG it decodes must
 * decode through libvips' loader too, to the same pixels.
 *
 * The limits are small (1 megapixel, 256 px output) so each input is fast. A success must return
 * a consistent RGB image; a failure must return one of the image error codes and no pixels. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "facenames/vision.h"
#include "vision/image_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fn_image img;
    fn_image_info info;
    char err[512];
    fn_load_opts opts = {.max_side = 256, .max_pixels = 1000000};
    int rc = fn_image_load_buffer(data, size, "fuzz", &opts, &img, &info, err, sizeof err);
    if (rc == 0) {
        if (!img.rgb || img.width <= 0 || img.height <= 0 || img.width > 256 || img.height > 256)
            abort();
        volatile uint8_t sum = 0; /* touch every byte: ASan checks the buffer's extent */
        for (size_t i = 0; i < (size_t)img.width * img.height * 3; i++)
            sum += img.rgb[i];
        (void)sum;
        if ((uint64_t)info.width * (uint64_t)info.height > opts.max_pixels) abort();
        if (!strcmp(info.format, "jpeg")) {
            fn_image v;
            fn_image_set_jpeg_direct(0);
            rc = fn_image_load_buffer(data, size, "fuzz", &opts, &v, NULL, err, sizeof err);
            fn_image_set_jpeg_direct(1);
            if (rc != 0 || v.width != img.width || v.height != img.height ||
                memcmp(v.rgb, img.rgb, (size_t)img.width * img.height * 3) != 0)
                abort();
            fn_image_free(&v);
        }
        fn_image_free(&img);
    } else {
        switch (rc) {
        case FN_ERR_UNSUPPORTED:
        case FN_ERR_TRUNCATED:
        case FN_ERR_CORRUPT:
        case FN_ERR_TOO_LARGE:
        case FN_ERR_NO_IMAGE:
        case FN_ERR_NOMEM:
            break;
        default:
            abort();
        }
        if (img.rgb) abort();
    }
    return 0;
}
