/* Public unembedding (logits + argmax): argument checks, then the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_f32_bf16w_unembedding(gptoss_backend_t backend, const float* input,
                                                const gptoss_bf16* weight, float* logits, uint32_t* argmax,
                                                uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows) {
    gptoss_clear_error();
    GPTOSS_TRY(gptoss_check_backend(backend));
    GPTOSS_TRY(gptoss_check_pointer(input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(weight, "weight", 2));
    GPTOSS_TRY(gptoss_check_pointer(logits, "logits", 4));
    GPTOSS_TRY(gptoss_check_pointer(argmax, "argmax", 4));
    GPTOSS_TRY(gptoss_check_nonzero(num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(num_cols, "num_cols"));
    GPTOSS_TRY(gptoss_check_nonzero(num_rows, "num_rows"));
    uint64_t input_elements = 0, weight_elements = 0, logits_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &input_elements, num_tokens, num_cols));
    GPTOSS_TRY(GPTOSS_SIZE2("weight", 2, &weight_elements, num_rows, num_cols));
    GPTOSS_TRY(GPTOSS_SIZE2("logits", 4, &logits_elements, num_tokens, num_rows));
    const uint64_t input_bytes = input_elements * 4, weight_bytes = weight_elements * 2;
    const uint64_t logits_bytes = logits_elements * 4, argmax_bytes = (uint64_t) num_tokens * 4;
    GPTOSS_TRY(gptoss_check_disjoint(logits, logits_bytes, "logits", input, input_bytes, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(logits, logits_bytes, "logits", weight, weight_bytes, "weight"));
    GPTOSS_TRY(gptoss_check_disjoint(argmax, argmax_bytes, "argmax", input, input_bytes, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(argmax, argmax_bytes, "argmax", weight, weight_bytes, "weight"));
    GPTOSS_TRY(gptoss_check_disjoint(argmax, argmax_bytes, "argmax", logits, logits_bytes, "logits"));
    return backend->ops->f32_bf16w_unembedding(backend, input, weight, logits, argmax, num_tokens, num_cols,
                                               num_rows);
}
