/* Public fused QKV projection + RoPE + KV-cache write: argument checks, then the backend
 * entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_f32_bf16w_matmul_qkv(gptoss_backend_t backend, const float* input,
                                               const gptoss_bf16* weight, const gptoss_bf16* bias, float* output,
                                               float* kv_cache, uint32_t num_tokens, uint32_t num_cols,
                                               uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim,
                                               uint32_t token_offset, uint32_t max_tokens, float rope_base,
                                               float interpolation_scale, float yarn_offset, float yarn_scale,
                                               float yarn_multiplier) {
    gptoss_clear_error();
    GPTOSS_TRY(gptoss_check_backend(backend));
    GPTOSS_TRY(gptoss_check_pointer(input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(weight, "weight", 2));
    GPTOSS_TRY(gptoss_check_optional_pointer(bias, "bias", 2));
    GPTOSS_TRY(gptoss_check_pointer(output, "output", 4));
    GPTOSS_TRY(gptoss_check_pointer(kv_cache, "kv_cache", 4));
    GPTOSS_TRY(gptoss_check_nonzero(num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(num_cols, "num_cols"));
    uint64_t num_rows = 0;
    GPTOSS_TRY(gptoss_check_heads(num_q_heads, num_kv_heads, head_dim, 2, &num_rows));
    GPTOSS_TRY(gptoss_check_nonzero(max_tokens, "max_tokens"));
    if ((uint64_t) token_offset + num_tokens > max_tokens) {
        return gptoss_fail(GPTOSS_INVALID, "token_offset %u + num_tokens %u exceeds max_tokens %u", token_offset,
                           num_tokens, max_tokens);
    }
    GPTOSS_TRY(gptoss_check_rope_params(rope_base, interpolation_scale, yarn_offset, yarn_scale, yarn_multiplier));
    uint64_t input_elements = 0, weight_elements = 0, output_elements = 0, cache_elements = 0;
    const uint64_t cache_row = 2 * (uint64_t) head_dim;
    GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &input_elements, num_tokens, num_cols));
    GPTOSS_TRY(GPTOSS_SIZE2("weight", 2, &weight_elements, num_rows, num_cols));
    GPTOSS_TRY(GPTOSS_SIZE2("output", 4, &output_elements, num_tokens, num_rows));
    GPTOSS_TRY(GPTOSS_SIZE3("kv_cache", 4, &cache_elements, num_kv_heads, max_tokens, cache_row));
    const uint64_t output_bytes = output_elements * 4, cache_bytes = cache_elements * 4;
    const uint64_t input_bytes = input_elements * 4, weight_bytes = weight_elements * 2, bias_bytes = num_rows * 2;
    GPTOSS_TRY(gptoss_check_disjoint(output, output_bytes, "output", input, input_bytes, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(output, output_bytes, "output", weight, weight_bytes, "weight"));
    GPTOSS_TRY(gptoss_check_disjoint(output, output_bytes, "output", bias, bias_bytes, "bias"));
    GPTOSS_TRY(gptoss_check_disjoint(kv_cache, cache_bytes, "kv_cache", input, input_bytes, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(kv_cache, cache_bytes, "kv_cache", weight, weight_bytes, "weight"));
    GPTOSS_TRY(gptoss_check_disjoint(kv_cache, cache_bytes, "kv_cache", bias, bias_bytes, "bias"));
    GPTOSS_TRY(gptoss_check_disjoint(kv_cache, cache_bytes, "kv_cache", output, output_bytes, "output"));
    return backend->ops->f32_bf16w_matmul_qkv(backend, input, weight, bias, output, kv_cache, num_tokens, num_cols,
                                              num_q_heads, num_kv_heads, head_dim, token_offset, max_tokens,
                                              rope_base, interpolation_scale, yarn_offset, yarn_scale,
                                              yarn_multiplier);
}
