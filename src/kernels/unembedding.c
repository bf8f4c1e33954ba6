/* Argument checks of the unembedding (logits + argmax); src/kernels/run.c runs them
 * before the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_check_f32_bf16w_unembedding(gptoss_backend_t backend,
                                                      const struct gptoss_f32_bf16w_unembedding_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->weight, "weight", 2));
    GPTOSS_TRY(gptoss_check_pointer(args->logits, "logits", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->argmax, "argmax", 4));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_cols, "num_cols"));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_rows, "num_rows"));
    uint64_t input_elements = 0, weight_elements = 0, logits_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &input_elements, args->num_tokens, args->num_cols));
    GPTOSS_TRY(GPTOSS_SIZE2("weight", 2, &weight_elements, args->num_rows, args->num_cols));
    GPTOSS_TRY(GPTOSS_SIZE2("logits", 4, &logits_elements, args->num_tokens, args->num_rows));
    const uint64_t input_bytes = input_elements * 4, weight_bytes = weight_elements * 2;
    const uint64_t logits_bytes = logits_elements * 4, argmax_bytes = (uint64_t) args->num_tokens * 4;
    GPTOSS_TRY(gptoss_check_disjoint(args->logits, logits_bytes, "logits", args->input, input_bytes, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(args->logits, logits_bytes, "logits", args->weight, weight_bytes, "weight"));
    GPTOSS_TRY(gptoss_check_disjoint(args->argmax, argmax_bytes, "argmax", args->input, input_bytes, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(args->argmax, argmax_bytes, "argmax", args->weight, weight_bytes, "weight"));
    GPTOSS_TRY(gptoss_check_disjoint(args->argmax, argmax_bytes, "argmax", args->logits, logits_bytes, "logits"));
    return gptoss_status_success;
}
