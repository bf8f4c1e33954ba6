/* Reference: fused QKV projection + RoPE + KV-cache write, in double. */
#include "reference/reference.h"

#include <math.h>

#include "common/math.h"

void gptoss_ref_f32_bf16w_matmul_qkv(const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias,
                                     double* output, double* kv_cache, uint32_t num_tokens, uint32_t num_cols,
                                     uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim,
                                     uint32_t token_offset, uint32_t max_tokens, float rope_base,
                                     float interpolation_scale, float yarn_offset, float yarn_scale,
                                     float yarn_multiplier) {
    const uint32_t num_rows = head_dim * (num_q_heads + 2 * num_kv_heads);

    /* 1. the projection, all rows */
    gptoss_ref_f32_bf16w_matmul(input, weight, bias, output, num_tokens, num_cols, num_rows);

    for (uint32_t t = 0; t < num_tokens; t++) {
        const uint32_t pos = token_offset + t;
        double* row = output + (size_t) t * num_rows;

        /* 2. RoPE on the Q and K heads (they are adjacent in the row) */
        for (uint32_t h = 0; h < num_q_heads + num_kv_heads; h++) {
            gptoss_ref_rope_rotate_head(row + (size_t) h * head_dim, head_dim, pos, rope_base, interpolation_scale,
                             yarn_offset, yarn_scale, yarn_multiplier);
        }

        /* 3. rotated K and plain V into the cache slot of position pos */
        const double* k_heads = row + (size_t) num_q_heads * head_dim;
        const double* v_heads = k_heads + (size_t) num_kv_heads * head_dim;
        for (uint32_t h = 0; h < num_kv_heads; h++) {
            double* slot = kv_cache + ((size_t) h * max_tokens + pos) * 2 * head_dim;
            for (uint32_t d = 0; d < head_dim; d++) {
                slot[d] = k_heads[(size_t) h * head_dim + d];
                slot[head_dim + d] = v_heads[(size_t) h * head_dim + d];
            }
        }
    }
}
