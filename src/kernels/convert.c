/* Argument checks of the MXFP4 -> f32 conversion; src/kernels/run.c runs them
 * before the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_check_mf4_f32_convert(gptoss_backend_t backend, const struct gptoss_mf4_f32_convert_args* a) {
    GPTOSS_TRY(gptoss_check_pointer(a->blocks, "blocks", 1));
    GPTOSS_TRY(gptoss_check_pointer(a->scales, "scales", 1));
    GPTOSS_TRY(gptoss_check_pointer(a->output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_elements, "num_elements"));
    GPTOSS_TRY(gptoss_check_multiple(a->num_elements, "num_elements", 32, "the MXFP4 block size"));
    GPTOSS_TRY(GPTOSS_SIZE1("output", 4, NULL, a->num_elements));
    const uint64_t output_bytes = a->num_elements * 4, block_bytes = a->num_elements / 2,
                   scale_bytes = a->num_elements / 32;
    GPTOSS_TRY(gptoss_check_disjoint(a->output, output_bytes, "output", a->blocks, block_bytes, "blocks"));
    GPTOSS_TRY(gptoss_check_disjoint(a->output, output_bytes, "output", a->scales, scale_bytes, "scales"));
    return gptoss_status_success;
}
