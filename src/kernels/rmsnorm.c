/* Argument checks of the RMSNorm and of its fusion with the MoE accumulate (and that fusion
 * unfused, for backends without it); src/kernels/run.c runs them
 * before the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_check_f32_bf16w_rmsnorm(gptoss_backend_t backend,
                                                  const struct gptoss_f32_bf16w_rmsnorm_args* a) {
    GPTOSS_TRY(gptoss_check_pointer(a->input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->weight, "weight", 2));
    GPTOSS_TRY(gptoss_check_pointer(a->output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_channels, "num_channels"));
    GPTOSS_TRY(gptoss_check_finite(a->epsilon, "epsilon"));
    if (!(a->epsilon >= 0.0f)) return gptoss_fail(GPTOSS_INVALID, "epsilon %g is negative", (double) a->epsilon);
    uint64_t elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &elements, a->num_tokens, a->num_channels));
    const uint64_t bytes = elements * 4;
    /* In place (output == input) is allowed; any other overlap is not. */
    if ((const void*) a->output != (const void*) a->input) {
        GPTOSS_TRY(gptoss_check_disjoint(a->output, bytes, "output", a->input, bytes, "input"));
    }
    GPTOSS_TRY(gptoss_check_disjoint(a->output, bytes, "output", a->weight, (uint64_t) a->num_channels * 2, "weight"));
    return gptoss_status_success;
}

enum gptoss_status gptoss_check_f32_accumulate_bf16w_rmsnorm(gptoss_backend_t backend,
                                                             const struct gptoss_f32_accumulate_bf16w_rmsnorm_args* a) {
    GPTOSS_TRY(gptoss_check_pointer(a->input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->expert_scores, "expert_scores", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->residual, "residual", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->weight, "weight", 2));
    GPTOSS_TRY(gptoss_check_pointer(a->output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_channels, "num_channels"));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_active_experts, "num_active_experts"));
    GPTOSS_TRY(gptoss_check_finite(a->epsilon, "epsilon"));
    if (!(a->epsilon >= 0.0f)) return gptoss_fail(GPTOSS_INVALID, "epsilon %g is negative", (double) a->epsilon);
    uint64_t input_elements = 0, residual_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE3("input", 4, &input_elements, a->num_active_experts, a->num_tokens, a->num_channels));
    GPTOSS_TRY(GPTOSS_SIZE2("residual", 4, &residual_elements, a->num_tokens, a->num_channels));
    const uint64_t rows_bytes = residual_elements * 4, input_bytes = input_elements * 4;
    const uint64_t scores_bytes = (uint64_t) a->num_tokens * a->num_active_experts * 4,
                   weight_bytes = (uint64_t) a->num_channels * 2;
    GPTOSS_TRY(gptoss_check_disjoint(a->residual, rows_bytes, "residual", a->input, input_bytes, "input"));
    GPTOSS_TRY(
        gptoss_check_disjoint(a->residual, rows_bytes, "residual", a->expert_scores, scores_bytes, "expert_scores"));
    GPTOSS_TRY(gptoss_check_disjoint(a->residual, rows_bytes, "residual", a->weight, weight_bytes, "weight"));
    GPTOSS_TRY(gptoss_check_disjoint(a->output, rows_bytes, "output", a->residual, rows_bytes, "residual"));
    GPTOSS_TRY(gptoss_check_disjoint(a->output, rows_bytes, "output", a->input, input_bytes, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(a->output, rows_bytes, "output", a->expert_scores, scores_bytes, "expert_scores"));
    GPTOSS_TRY(gptoss_check_disjoint(a->output, rows_bytes, "output", a->weight, weight_bytes, "weight"));
    return gptoss_status_success;
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
