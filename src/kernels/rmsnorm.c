/* Argument checks of the RMSNorm and of its fusion with the MoE accumulate
 * (src/kernels/run.c runs them before the backend entry), and that fusion as its two
 * kernels, for a backend without the fused kernel. */
#include "kernels/check.h"

enum gptoss_status gptoss_check_f32_bf16w_rmsnorm(gptoss_backend_t backend,
                                                  const struct gptoss_f32_bf16w_rmsnorm_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->weight, "weight", 2));
    GPTOSS_TRY(gptoss_check_pointer(args->output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_channels, "num_channels"));
    GPTOSS_TRY(gptoss_check_finite(args->epsilon, "epsilon"));
    if (!(args->epsilon >= 0.0f)) return gptoss_fail(GPTOSS_INVALID, "epsilon %g is negative", (double) args->epsilon);
    uint64_t elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &elements, args->num_tokens, args->num_channels));
    const uint64_t bytes = elements * 4;
    /* In place (output == input) is allowed; any other overlap is not. */
    if ((const void*) args->output != (const void*) args->input) {
        GPTOSS_TRY(gptoss_check_disjoint(args->output, bytes, "output", args->input, bytes, "input"));
    }
    GPTOSS_TRY(gptoss_check_disjoint(args->output, bytes, "output", args->weight, (uint64_t) args->num_channels * 2,
                                     "weight"));
    return gptoss_status_success;
}

enum gptoss_status gptoss_check_f32_accumulate_bf16w_rmsnorm(
    gptoss_backend_t backend, const struct gptoss_f32_accumulate_bf16w_rmsnorm_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->expert_scores, "expert_scores", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->residual, "residual", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->weight, "weight", 2));
    GPTOSS_TRY(gptoss_check_pointer(args->output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_channels, "num_channels"));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_active_experts, "num_active_experts"));
    GPTOSS_TRY(gptoss_check_finite(args->epsilon, "epsilon"));
    if (!(args->epsilon >= 0.0f)) return gptoss_fail(GPTOSS_INVALID, "epsilon %g is negative", (double) args->epsilon);
    uint64_t input_elements = 0, residual_elements = 0;
    GPTOSS_TRY(
        GPTOSS_SIZE3("input", 4, &input_elements, args->num_active_experts, args->num_tokens, args->num_channels));
    GPTOSS_TRY(GPTOSS_SIZE2("residual", 4, &residual_elements, args->num_tokens, args->num_channels));
    const uint64_t rows_bytes = residual_elements * 4, input_bytes = input_elements * 4;
    const uint64_t scores_bytes = (uint64_t) args->num_tokens * args->num_active_experts * 4,
                   weight_bytes = (uint64_t) args->num_channels * 2;
    GPTOSS_TRY(gptoss_check_disjoint(args->residual, rows_bytes, "residual", args->input, input_bytes, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(args->residual, rows_bytes, "residual", args->expert_scores, scores_bytes,
                                     "expert_scores"));
    GPTOSS_TRY(gptoss_check_disjoint(args->residual, rows_bytes, "residual", args->weight, weight_bytes, "weight"));
    GPTOSS_TRY(gptoss_check_disjoint(args->output, rows_bytes, "output", args->residual, rows_bytes, "residual"));
    GPTOSS_TRY(gptoss_check_disjoint(args->output, rows_bytes, "output", args->input, input_bytes, "input"));
    GPTOSS_TRY(
        gptoss_check_disjoint(args->output, rows_bytes, "output", args->expert_scores, scores_bytes, "expert_scores"));
    GPTOSS_TRY(gptoss_check_disjoint(args->output, rows_bytes, "output", args->weight, weight_bytes, "weight"));
    return gptoss_status_success;
}

enum gptoss_status gptoss_unfused_f32_accumulate_bf16w_rmsnorm(
    gptoss_backend_t backend, const struct gptoss_f32_accumulate_bf16w_rmsnorm_args* args) {
    const struct gptoss_f32_accumulate_args accumulate = {
        args->input,        args->expert_scores, args->residual,
        args->num_channels, args->num_tokens,    args->num_active_experts,
    };
    GPTOSS_TRY(backend->ops->f32_accumulate(backend, &accumulate));
    const struct gptoss_f32_bf16w_rmsnorm_args rmsnorm = {
        args->residual, args->weight, args->output, args->num_tokens, args->num_channels, args->epsilon,
    };
    return backend->ops->f32_bf16w_rmsnorm(backend, &rmsnorm);
}
