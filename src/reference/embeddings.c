/* Reference: bf16 embedding lookup (exact). */
#include "reference/reference.h"

#include "common/math.h"

void gptoss_ref_bf16_f32_embeddings(const struct gptoss_bf16_f32_embeddings_args* args) {
    for (uint32_t t = 0; t < args->num_tokens; t++) {
        const gptoss_bf16* row = args->weight + (size_t) args->token_ids[t] * args->num_channels;
        float* out = args->output + (size_t) t * args->num_channels;
        for (uint32_t c = 0; c < args->num_channels; c++) {
            out[c] = gptoss_bf16_to_f32(row[c].bits);
        }
    }
}
