/* CPU fused QKV projection: the shared bf16 GEMM core (matmul.c) writes every column of
 * output (Q, K, V), RoPE (rope.c) rotates the Q and K heads in place, then rotated K and
 * V are copied into the KV cache at positions token_offset + t. The GEMM dominates by far;
 * the two epilogue passes touch T x num_rows floats that are still in cache. */
#include <string.h>

#include "cpu/cpu.h"

struct kv_write {
    const float* qkv;
    float* kv;
    size_t row_stride, D, q_heads, kv_heads, max_tokens;
    uint32_t token_offset;
};

static void kv_write_rows(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct kv_write* k = context;
    const size_t D = k->D;
    for (size_t t = begin; t < end; t++) {
        const float* row = k->qkv + t * k->row_stride;
        const size_t pos = (size_t) k->token_offset + t;
        for (size_t h = 0; h < k->kv_heads; h++) {
            float* dst = k->kv + (h * k->max_tokens + pos) * 2 * D;
            memcpy(dst, row + (k->q_heads + h) * D, D * sizeof(float));
            memcpy(dst + D, row + (k->q_heads + k->kv_heads + h) * D, D * sizeof(float));
        }
    }
}

enum gptoss_status gptoss_cpu_f32_bf16w_matmul_qkv(gptoss_backend_t backend, const float* input,
                                                   const gptoss_bf16* weight, const gptoss_bf16* bias,
                                                   float* output, float* kv_cache, uint32_t num_tokens,
                                                   uint32_t num_cols, uint32_t num_q_heads, uint32_t num_kv_heads,
                                                   uint32_t head_dim, uint32_t token_offset, uint32_t max_tokens,
                                                   float rope_base, float interpolation_scale, float yarn_offset,
                                                   float yarn_scale, float yarn_multiplier) {
    const size_t num_rows = (size_t) head_dim * ((size_t) num_q_heads + 2 * (size_t) num_kv_heads);
    enum gptoss_status status = gptoss_cpu_f32_bf16w_matmul(backend, input, weight, bias, output, num_tokens,
                                                            num_cols, (uint32_t) num_rows);
    if (status != gptoss_status_success) return status;
    status = gptoss_cpu_f32_rope(backend, output, rope_base, interpolation_scale, yarn_offset, yarn_scale,
                                 yarn_multiplier, num_tokens, num_q_heads, num_kv_heads, head_dim, token_offset);
    if (status != gptoss_status_success) return status;
    struct kv_write k = {
        .qkv = output,
        .kv = kv_cache,
        .row_stride = num_rows,
        .D = head_dim,
        .q_heads = num_q_heads,
        .kv_heads = num_kv_heads,
        .max_tokens = max_tokens,
        .token_offset = token_offset,
    };
    const size_t work = 2 * (size_t) num_kv_heads * head_dim;
    const size_t grain = work >= 32768 ? 1 : 32768 / work;
    gptoss_cpu_parallelize(backend, kv_write_rows, &k, num_tokens, grain);
    return gptoss_status_success;
}
