/* Public RMSNorm and its fusion with the MoE accumulate: argument checks, then the
 * backend entry. */
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

enum gptoss_status gptoss_f32_accumulate_bf16w_rmsnorm(gptoss_backend_t backend, const float* input,
                                                       const float* expert_scores, float* residual,
                                                       const gptoss_bf16* weight, float* output,
                                                       uint32_t num_channels, uint32_t num_tokens,
                                                       uint32_t num_active_experts, float epsilon) {
    gptoss_clear_error();
    GPTOSS_TRY(gptoss_check_backend(backend));
    GPTOSS_TRY(gptoss_check_pointer(input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(expert_scores, "expert_scores", 4));
    GPTOSS_TRY(gptoss_check_pointer(residual, "residual", 4));
    GPTOSS_TRY(gptoss_check_pointer(weight, "weight", 2));
    GPTOSS_TRY(gptoss_check_pointer(output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(num_channels, "num_channels"));
    GPTOSS_TRY(gptoss_check_nonzero(num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(num_active_experts, "num_active_experts"));
    GPTOSS_TRY(gptoss_check_finite(epsilon, "epsilon"));
    if (!(epsilon >= 0.0f)) return gptoss_fail(GPTOSS_INVALID, "epsilon %g is negative", (double) epsilon);
    uint64_t input_elements = 0, residual_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE3("input", 4, &input_elements, num_active_experts, num_tokens, num_channels));
    GPTOSS_TRY(GPTOSS_SIZE2("residual", 4, &residual_elements, num_tokens, num_channels));
    const uint64_t rows_bytes = residual_elements * 4, input_bytes = input_elements * 4;
    const uint64_t scores_bytes = (uint64_t) num_tokens * num_active_experts * 4, weight_bytes = (uint64_t) num_channels * 2;
    GPTOSS_TRY(gptoss_check_disjoint(residual, rows_bytes, "residual", input, input_bytes, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(residual, rows_bytes, "residual", expert_scores, scores_bytes, "expert_scores"));
    GPTOSS_TRY(gptoss_check_disjoint(residual, rows_bytes, "residual", weight, weight_bytes, "weight"));
    GPTOSS_TRY(gptoss_check_disjoint(output, rows_bytes, "output", residual, rows_bytes, "residual"));
    GPTOSS_TRY(gptoss_check_disjoint(output, rows_bytes, "output", input, input_bytes, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(output, rows_bytes, "output", expert_scores, scores_bytes, "expert_scores"));
    GPTOSS_TRY(gptoss_check_disjoint(output, rows_bytes, "output", weight, weight_bytes, "weight"));
    return backend->ops->f32_accumulate_bf16w_rmsnorm(backend, input, expert_scores, residual, weight, output,
                                                      num_channels, num_tokens, num_active_experts, epsilon);
}

enum gptoss_status gptoss_sequence_f32_accumulate_bf16w_rmsnorm(gptoss_backend_t backend, const float* input,
                                                                const float* expert_scores, float* residual,
                                                                const gptoss_bf16* weight, float* output,
                                                                uint32_t num_channels, uint32_t num_tokens,
                                                                uint32_t num_active_experts, float epsilon) {
    const enum gptoss_status st = backend->ops->f32_accumulate(backend, input, expert_scores, residual, num_channels,
                                                               num_tokens, num_active_experts);
    if (st != gptoss_status_success) return st;
    return backend->ops->f32_bf16w_rmsnorm(backend, residual, weight, output, num_tokens, num_channels, epsilon);
}
