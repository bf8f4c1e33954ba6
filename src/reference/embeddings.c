/* Reference: bf16 embedding lookup (exact). */
#include "reference/reference.h"

#include "common/math.h"

void gptoss_ref_bf16_f32_embeddings(const uint32_t* token_ids, const gptoss_bf16* weight, float* output,
                                    uint32_t num_tokens, uint32_t num_channels, uint32_t vocabulary_size) {
    for (uint32_t t = 0; t < num_tokens; t++) {
        const gptoss_bf16* row = weight + (size_t) token_ids[t] * num_channels;
        float* out = output + (size_t) t * num_channels;
        for (uint32_t c = 0; c < num_channels; c++) {
            out[c] = gptoss_bf16_to_f32(row[c].bits);
        }
    }
}
