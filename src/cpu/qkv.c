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

enum gptoss_status gptoss_cpu_f32_bf16w_matmul_qkv(gptoss_backend_t backend,
                                                   const struct gptoss_f32_bf16w_matmul_qkv_args* args) {
    const size_t num_rows = (size_t) args->head_dim * ((size_t) args->num_q_heads + 2 * (size_t) args->num_kv_heads);
    const struct gptoss_f32_bf16w_matmul_args matmul = {
        args->input, args->weight, args->bias, args->output, args->num_tokens, args->num_cols, (uint32_t) num_rows,
    };
    enum gptoss_status status = gptoss_cpu_f32_bf16w_matmul(backend, &matmul);
    if (status != gptoss_status_success) return status;
    const struct gptoss_f32_rope_args rope = {
        args->output,       args->rope_base,       args->interpolation_scale, args->yarn_offset,
        args->yarn_scale,   args->yarn_multiplier, args->num_tokens,          args->num_q_heads,
        args->num_kv_heads, args->head_dim,        args->token_offset,
    };
    status = gptoss_cpu_f32_rope(backend, &rope);
    if (status != gptoss_status_success) return status;
    struct kv_write k = {
        .qkv = args->output,
        .kv = args->kv_cache,
        .row_stride = num_rows,
        .D = args->head_dim,
        .q_heads = args->num_q_heads,
        .kv_heads = args->num_kv_heads,
        .max_tokens = args->max_tokens,
        .token_offset = args->token_offset,
    };
    const size_t work = 2 * (size_t) args->num_kv_heads * args->head_dim;
    const size_t grain = work >= 32768 ? 1 : 32768 / work;
    gptoss_cpu_parallelize(backend, kv_write_rows, &k, args->num_tokens, grain);
    return gptoss_status_success;
}
