/* Argument checks of the in-place RoPE; src/kernels/run.c runs them before the backend
 * entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_check_f32_rope(gptoss_backend_t backend, const struct gptoss_f32_rope_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->activations, "activations", 4));
    GPTOSS_TRY(gptoss_check_rope_params(args->rope_base, args->interpolation_scale, args->yarn_offset, args->yarn_scale,
                                        args->yarn_multiplier));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_tokens, "num_tokens"));
    uint64_t qkv_dim = 0;
    GPTOSS_TRY(gptoss_check_heads(args->num_q_heads, args->num_kv_heads, args->head_dim, 2, &qkv_dim));
    /* Positions token_offset .. token_offset + num_tokens - 1 are 32-bit in the backends. */
    if ((uint64_t) args->token_offset + args->num_tokens - 1 > UINT32_MAX) {
        return gptoss_fail(GPTOSS_UNSUPPORTED, "token_offset %u + num_tokens %u exceeds the 32-bit position range",
                           args->token_offset, args->num_tokens);
    }
    GPTOSS_TRY(GPTOSS_SIZE2("activations", 4, NULL, args->num_tokens, qkv_dim));
    return gptoss_status_success;
}
