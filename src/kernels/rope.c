/* Argument checks of the in-place RoPE; src/kernels/run.c runs them
 * before the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_check_f32_rope(gptoss_backend_t backend, const struct gptoss_f32_rope_args* a) {
    GPTOSS_TRY(gptoss_check_pointer(a->activations, "activations", 4));
    GPTOSS_TRY(gptoss_check_rope_params(a->rope_base, a->interpolation_scale, a->yarn_offset, a->yarn_scale,
                                        a->yarn_multiplier));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_tokens, "num_tokens"));
    uint64_t qkv_dim = 0;
    GPTOSS_TRY(gptoss_check_heads(a->num_q_heads, a->num_kv_heads, a->head_dim, 2, &qkv_dim));
    /* Positions token_offset .. token_offset + num_tokens - 1 are 32-bit in the backends. */
    if ((uint64_t) a->token_offset + a->num_tokens - 1 > UINT32_MAX) {
        return gptoss_fail(GPTOSS_UNSUPPORTED, "token_offset %u + num_tokens %u exceeds the 32-bit position range",
                           a->token_offset, a->num_tokens);
    }
    GPTOSS_TRY(GPTOSS_SIZE2("activations", 4, NULL, a->num_tokens, qkv_dim));
    return gptoss_status_success;
}
