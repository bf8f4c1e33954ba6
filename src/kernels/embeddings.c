/* Argument checks of the embeddings lookup; src/kernels/run.c runs them
 * before the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_check_bf16_f32_embeddings(gptoss_backend_t backend,
                                                    const struct gptoss_bf16_f32_embeddings_args* a) {
    GPTOSS_TRY(gptoss_check_pointer(a->token_ids, "token_ids", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->weight, "weight", 2));
    GPTOSS_TRY(gptoss_check_pointer(a->output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_channels, "num_channels"));
    GPTOSS_TRY(gptoss_check_nonzero(a->vocabulary_size, "vocabulary_size"));
    uint64_t output_elements = 0, weight_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("output", 4, &output_elements, a->num_tokens, a->num_channels));
    GPTOSS_TRY(GPTOSS_SIZE2("weight", 2, &weight_elements, a->vocabulary_size, a->num_channels));
    const uint64_t output_bytes = output_elements * 4;
    GPTOSS_TRY(gptoss_check_disjoint(a->output, output_bytes, "output", a->token_ids, (uint64_t) a->num_tokens * 4,
                                     "token_ids"));
    GPTOSS_TRY(gptoss_check_disjoint(a->output, output_bytes, "output", a->weight, weight_elements * 2, "weight"));
    if (backend->host_memory) {
        GPTOSS_TRY(
            gptoss_check_ids_below(a->token_ids, a->num_tokens, "token_ids", a->vocabulary_size, "vocabulary_size"));
    }
    return gptoss_status_success;
}
