/* Public embeddings lookup: argument checks, then the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_bf16_f32_embeddings(gptoss_backend_t backend, const uint32_t* token_ids,
                                              const gptoss_bf16* weight, float* output, uint32_t num_tokens,
                                              uint32_t num_channels, uint32_t vocabulary_size) {
    gptoss_clear_error();
    GPTOSS_TRY(gptoss_check_backend(backend));
    GPTOSS_TRY(gptoss_check_pointer(token_ids, "token_ids", 4));
    GPTOSS_TRY(gptoss_check_pointer(weight, "weight", 2));
    GPTOSS_TRY(gptoss_check_pointer(output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(num_channels, "num_channels"));
    GPTOSS_TRY(gptoss_check_nonzero(vocabulary_size, "vocabulary_size"));
    uint64_t output_elements = 0, weight_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("output", 4, &output_elements, num_tokens, num_channels));
    GPTOSS_TRY(GPTOSS_SIZE2("weight", 2, &weight_elements, vocabulary_size, num_channels));
    const uint64_t output_bytes = output_elements * 4;
    GPTOSS_TRY(gptoss_check_disjoint(output, output_bytes, "output", token_ids, (uint64_t) num_tokens * 4, "token_ids"));
    GPTOSS_TRY(gptoss_check_disjoint(output, output_bytes, "output", weight, weight_elements * 2, "weight"));
    if (backend->host_memory) {
        GPTOSS_TRY(gptoss_check_ids_below(token_ids, num_tokens, "token_ids", vocabulary_size, "vocabulary_size"));
    }
    return backend->ops->bf16_f32_embeddings(backend, token_ids, weight, output, num_tokens, num_channels,
                                             vocabulary_size);
}
