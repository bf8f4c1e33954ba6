/* Argument checks of the fused QKV projection + RoPE + KV-cache write; src/kernels/run.c runs them
 * before the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_check_f32_bf16w_matmul_qkv(gptoss_backend_t backend,
                                                     const struct gptoss_f32_bf16w_matmul_qkv_args* a) {
    GPTOSS_TRY(gptoss_check_pointer(a->input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->weight, "weight", 2));
    GPTOSS_TRY(gptoss_check_optional_pointer(a->bias, "bias", 2));
    GPTOSS_TRY(gptoss_check_pointer(a->output, "output", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->kv_cache, "kv_cache", 4));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_cols, "num_cols"));
    uint64_t num_rows = 0;
    GPTOSS_TRY(gptoss_check_heads(a->num_q_heads, a->num_kv_heads, a->head_dim, 2, &num_rows));
    GPTOSS_TRY(gptoss_check_nonzero(a->max_tokens, "max_tokens"));
    if ((uint64_t) a->token_offset + a->num_tokens > a->max_tokens) {
        return gptoss_fail(GPTOSS_INVALID, "token_offset %u + num_tokens %u exceeds max_tokens %u", a->token_offset,
                           a->num_tokens, a->max_tokens);
    }
    GPTOSS_TRY(gptoss_check_rope_params(a->rope_base, a->interpolation_scale, a->yarn_offset, a->yarn_scale,
                                        a->yarn_multiplier));
    uint64_t input_elements = 0, weight_elements = 0, output_elements = 0, cache_elements = 0;
    const uint64_t cache_row = 2 * (uint64_t) a->head_dim;
    GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &input_elements, a->num_tokens, a->num_cols));
    GPTOSS_TRY(GPTOSS_SIZE2("weight", 2, &weight_elements, num_rows, a->num_cols));
    GPTOSS_TRY(GPTOSS_SIZE2("output", 4, &output_elements, a->num_tokens, num_rows));
    GPTOSS_TRY(GPTOSS_SIZE3("kv_cache", 4, &cache_elements, a->num_kv_heads, a->max_tokens, cache_row));
    const uint64_t output_bytes = output_elements * 4, cache_bytes = cache_elements * 4;
    const uint64_t input_bytes = input_elements * 4, weight_bytes = weight_elements * 2, bias_bytes = num_rows * 2;
    GPTOSS_TRY(gptoss_check_disjoint(a->output, output_bytes, "output", a->input, input_bytes, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(a->output, output_bytes, "output", a->weight, weight_bytes, "weight"));
    GPTOSS_TRY(gptoss_check_disjoint(a->output, output_bytes, "output", a->bias, bias_bytes, "bias"));
    GPTOSS_TRY(gptoss_check_disjoint(a->kv_cache, cache_bytes, "kv_cache", a->input, input_bytes, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(a->kv_cache, cache_bytes, "kv_cache", a->weight, weight_bytes, "weight"));
    GPTOSS_TRY(gptoss_check_disjoint(a->kv_cache, cache_bytes, "kv_cache", a->bias, bias_bytes, "bias"));
    GPTOSS_TRY(gptoss_check_disjoint(a->kv_cache, cache_bytes, "kv_cache", a->output, output_bytes, "output"));
    return gptoss_status_success;
}
