/* Argument checks of the unembedding (logits + argmax); src/kernels/run.c runs them
 * before the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_check_f32_bf16w_unembedding(gptoss_backend_t backend,
                                                      const struct gptoss_f32_bf16w_unembedding_args* a) {
    GPTOSS_TRY(gptoss_check_pointer(a->input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->weight, "weight", 2));
    GPTOSS_TRY(gptoss_check_pointer(a->logits, "logits", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->argmax, "argmax", 4));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_cols, "num_cols"));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_rows, "num_rows"));
    uint64_t input_elements = 0, weight_elements = 0, logits_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &input_elements, a->num_tokens, a->num_cols));
    GPTOSS_TRY(GPTOSS_SIZE2("weight", 2, &weight_elements, a->num_rows, a->num_cols));
    GPTOSS_TRY(GPTOSS_SIZE2("logits", 4, &logits_elements, a->num_tokens, a->num_rows));
    const uint64_t input_bytes = input_elements * 4, weight_bytes = weight_elements * 2;
    const uint64_t logits_bytes = logits_elements * 4, argmax_bytes = (uint64_t) a->num_tokens * 4;
    GPTOSS_TRY(gptoss_check_disjoint(a->logits, logits_bytes, "logits", a->input, input_bytes, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(a->logits, logits_bytes, "logits", a->weight, weight_bytes, "weight"));
    GPTOSS_TRY(gptoss_check_disjoint(a->argmax, argmax_bytes, "argmax", a->input, input_bytes, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(a->argmax, argmax_bytes, "argmax", a->weight, weight_bytes, "weight"));
    GPTOSS_TRY(gptoss_check_disjoint(a->argmax, argmax_bytes, "argmax", a->logits, logits_bytes, "logits"));
    return gptoss_status_success;
}
