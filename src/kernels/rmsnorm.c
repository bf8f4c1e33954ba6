/* Public RMSNorm: argument checks, then the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_f32_bf16w_rmsnorm(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight,
                                            float* output, uint32_t num_tokens, uint32_t num_channels,
                                            float epsilon) {
    gptoss_clear_error();
    GPTOSS_TRY(gptoss_check_backend(backend));
    GPTOSS_TRY(gptoss_check_pointer(input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(weight, "weight", 2));
    GPTOSS_TRY(gptoss_check_pointer(output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(num_channels, "num_channels"));
    GPTOSS_TRY(gptoss_check_finite(epsilon, "epsilon"));
    if (!(epsilon >= 0.0f)) return gptoss_fail(GPTOSS_INVALID, "epsilon %g is negative", (double) epsilon);
    uint64_t elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &elements, num_tokens, num_channels));
    const uint64_t bytes = elements * 4;
    /* In place (output == input) is allowed; any other overlap is not. */
    if ((const void*) output != (const void*) input) {
        GPTOSS_TRY(gptoss_check_disjoint(output, bytes, "output", input, bytes, "input"));
    }
    GPTOSS_TRY(gptoss_check_disjoint(output, bytes, "output", weight, (uint64_t) num_channels * 2, "weight"));
    return backend->ops->f32_bf16w_rmsnorm(backend, input, weight, output, num_tokens, num_channels, epsilon);
}
