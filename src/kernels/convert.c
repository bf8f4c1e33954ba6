/* Public MXFP4 -> f32 conversion: argument checks, then the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_mf4_f32_convert(gptoss_backend_t backend, const uint8_t* blocks, const uint8_t* scales,
                                          float* output, uint64_t num_elements) {
    gptoss_clear_error();
    GPTOSS_TRY(gptoss_check_backend(backend));
    GPTOSS_TRY(gptoss_check_pointer(blocks, "blocks", 1));
    GPTOSS_TRY(gptoss_check_pointer(scales, "scales", 1));
    GPTOSS_TRY(gptoss_check_pointer(output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(num_elements, "num_elements"));
    GPTOSS_TRY(gptoss_check_multiple(num_elements, "num_elements", 32, "the MXFP4 block size"));
    GPTOSS_TRY(GPTOSS_SIZE1("output", 4, NULL, num_elements));
    const uint64_t output_bytes = num_elements * 4, block_bytes = num_elements / 2, scale_bytes = num_elements / 32;
    GPTOSS_TRY(gptoss_check_disjoint(output, output_bytes, "output", blocks, block_bytes, "blocks"));
    GPTOSS_TRY(gptoss_check_disjoint(output, output_bytes, "output", scales, scale_bytes, "scales"));
    return backend->ops->mf4_f32_convert(backend, blocks, scales, output, num_elements);
}
