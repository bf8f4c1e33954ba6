/* Public in-place RoPE: argument checks, then the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_f32_rope(gptoss_backend_t backend, float* activations, float rope_base,
                                   float interpolation_scale, float yarn_offset, float yarn_scale,
                                   float yarn_multiplier, uint32_t num_tokens, uint32_t num_q_heads,
                                   uint32_t num_kv_heads, uint32_t head_dim, uint32_t token_offset) {
    gptoss_clear_error();
    GPTOSS_TRY(gptoss_check_backend(backend));
    GPTOSS_TRY(gptoss_check_pointer(activations, "activations", 4));
    GPTOSS_TRY(gptoss_check_rope_params(rope_base, interpolation_scale, yarn_offset, yarn_scale, yarn_multiplier));
    GPTOSS_TRY(gptoss_check_nonzero(num_tokens, "num_tokens"));
    uint64_t qkv_dim = 0;
    GPTOSS_TRY(gptoss_check_heads(num_q_heads, num_kv_heads, head_dim, 2, &qkv_dim));
    /* Positions token_offset .. token_offset + num_tokens - 1 are 32-bit in the backends. */
    if ((uint64_t) token_offset + num_tokens - 1 > UINT32_MAX) {
        return gptoss_fail(GPTOSS_UNSUPPORTED, "token_offset %u + num_tokens %u exceeds the 32-bit position range",
                           token_offset, num_tokens);
    }
    GPTOSS_TRY(GPTOSS_SIZE2("activations", 4, NULL, num_tokens, qkv_dim));
    return backend->ops->f32_rope(backend, activations, rope_base, interpolation_scale, yarn_offset, yarn_scale,
                                  yarn_multiplier, num_tokens, num_q_heads, num_kv_heads, head_dim, token_offset);
}
