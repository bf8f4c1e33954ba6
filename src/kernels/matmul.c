/* Argument checks of the bf16-weight matrix products (decode and "dense" names; all five
 * share one check); src/kernels/run.c runs them before the backend entry. */
#include "kernels/check.h"

static enum gptoss_status check_matmul(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight,
                                       const gptoss_bf16* bias, const float* output, uint32_t num_tokens,
                                       uint32_t num_cols, uint32_t num_rows) {
    GPTOSS_TRY(gptoss_check_pointer(input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(weight, "weight", 2));
    GPTOSS_TRY(gptoss_check_optional_pointer(bias, "bias", 2));
    GPTOSS_TRY(gptoss_check_pointer(output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(num_cols, "num_cols"));
    GPTOSS_TRY(gptoss_check_nonzero(num_rows, "num_rows"));
    uint64_t input_elements = 0, weight_elements = 0, output_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &input_elements, num_tokens, num_cols));
    GPTOSS_TRY(GPTOSS_SIZE2("weight", 2, &weight_elements, num_rows, num_cols));
    GPTOSS_TRY(GPTOSS_SIZE2("output", 4, &output_elements, num_tokens, num_rows));
    const uint64_t output_bytes = output_elements * 4;
    GPTOSS_TRY(gptoss_check_disjoint(output, output_bytes, "output", input, input_elements * 4, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(output, output_bytes, "output", weight, weight_elements * 2, "weight"));
    GPTOSS_TRY(gptoss_check_disjoint(output, output_bytes, "output", bias, (uint64_t) num_rows * 2, "bias"));
    return gptoss_status_success;
}

enum gptoss_status gptoss_check_f32_bf16w_matmul(gptoss_backend_t backend,
                                                 const struct gptoss_f32_bf16w_matmul_args* args) {
    return check_matmul(backend, args->input, args->weight, args->bias, args->output, args->num_tokens, args->num_cols,
                        args->num_rows);
}

enum gptoss_status gptoss_check_f32_bf16w_matmul_add(gptoss_backend_t backend,
                                                     const struct gptoss_f32_bf16w_matmul_add_args* args) {
    return check_matmul(backend, args->input, args->weight, args->bias, args->output, args->num_tokens, args->num_cols,
                        args->num_rows);
}

enum gptoss_status gptoss_check_f32_bf16w_dense_matmul_qkv(gptoss_backend_t backend,
                                                           const struct gptoss_f32_bf16w_dense_matmul_qkv_args* args) {
    return check_matmul(backend, args->input, args->weight, args->bias, args->output, args->num_tokens, args->num_cols,
                        args->num_rows);
}

enum gptoss_status gptoss_check_f32_bf16w_dense_matmul_attn_output(
    gptoss_backend_t backend, const struct gptoss_f32_bf16w_dense_matmul_attn_output_args* args) {
    return check_matmul(backend, args->input, args->weight, args->bias, args->output, args->num_tokens, args->num_cols,
                        args->num_rows);
}

enum gptoss_status gptoss_check_f32_bf16w_dense_matmul_mlp_gate(
    gptoss_backend_t backend, const struct gptoss_f32_bf16w_dense_matmul_mlp_gate_args* args) {
    return check_matmul(backend, args->input, args->weight, args->bias, args->output, args->num_tokens, args->num_cols,
                        args->num_rows);
}
