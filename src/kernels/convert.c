/* Argument checks of the MXFP4 -> f32 conversion; src/kernels/run.c runs them before the
 * backend entry. The host bf16 conversions of kernels.h. */
#include "common/math.h"
#include "kernels/check.h"

gptoss_bf16 gptoss_bf16_from_f32(float value) { return (gptoss_bf16){gptoss_f32_to_bf16(value)}; }
float gptoss_bf16_to_float(gptoss_bf16 value) { return gptoss_bf16_to_f32(value.bits); }

enum gptoss_status gptoss_check_mf4_f32_convert(gptoss_backend_t backend,
                                                const struct gptoss_mf4_f32_convert_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->blocks, "blocks", 1));
    GPTOSS_TRY(gptoss_check_pointer(args->scales, "scales", 1));
    GPTOSS_TRY(gptoss_check_pointer(args->output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_elements, "num_elements"));
    GPTOSS_TRY(gptoss_check_multiple(args->num_elements, "num_elements", 32, "the MXFP4 block size"));
    GPTOSS_TRY(GPTOSS_SIZE1("output", 4, NULL, args->num_elements));
    const uint64_t output_bytes = args->num_elements * 4, block_bytes = args->num_elements / 2,
                   scale_bytes = args->num_elements / 32;
    GPTOSS_TRY(gptoss_check_disjoint(args->output, output_bytes, "output", args->blocks, block_bytes, "blocks"));
    GPTOSS_TRY(gptoss_check_disjoint(args->output, output_bytes, "output", args->scales, scale_bytes, "scales"));
    return gptoss_status_success;
}
