/* Argument checks of the embeddings lookup; src/kernels/run.c runs them before the
 * backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_check_bf16_f32_embeddings(gptoss_backend_t backend,
                                                    const struct gptoss_bf16_f32_embeddings_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->token_ids, "token_ids", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->weight, "weight", 2));
    GPTOSS_TRY(gptoss_check_pointer(args->output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_channels, "num_channels"));
    GPTOSS_TRY(gptoss_check_nonzero(args->vocabulary_size, "vocabulary_size"));
    uint64_t output_elements = 0, weight_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("output", 4, &output_elements, args->num_tokens, args->num_channels));
    GPTOSS_TRY(GPTOSS_SIZE2("weight", 2, &weight_elements, args->vocabulary_size, args->num_channels));
    const uint64_t output_bytes = output_elements * 4;
    GPTOSS_TRY(gptoss_check_disjoint(args->output, output_bytes, "output", args->token_ids,
                                     (uint64_t) args->num_tokens * 4, "token_ids"));
    GPTOSS_TRY(
        gptoss_check_disjoint(args->output, output_bytes, "output", args->weight, weight_elements * 2, "weight"));
    if (backend->host_memory) {
        GPTOSS_TRY(gptoss_check_ids_below(args->token_ids, args->num_tokens, "token_ids", args->vocabulary_size,
                                          "vocabulary_size"));
    }
    return gptoss_status_success;
}
