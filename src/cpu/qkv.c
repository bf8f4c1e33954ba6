/* CPU fused QKV projection: the shared bf16 GEMM core (matmul.c) writes every column of
 * output (Q, K, V), RoPE (rope.c) rotates the Q and K heads in place, then rotated K and
 * V are copied into the KV cache at positions token_offset + t (varlen: into the slot of
 * each row's sequence and position, through its block table). The GEMM dominates by far;
 * the two epilogue passes touch T x num_rows floats that are still in cache. */
#include <string.h>

#include "cpu/cpu.h"
#include "internal/error.h"

struct kv_write {
    const float* qkv;
    float* kv;
    size_t row_stride, D, q_heads, kv_heads;
    uint64_t head_stride; /* floats per kv head */
    uint32_t token_offset;
    /* varlen: per row position and sequence, the tables (positions NULL: slot = token_offset + t) */
    const uint32_t *positions, *seq_ids, *block_tables;
    uint32_t block_size, table_stride;
};

static void kv_write_rows(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct kv_write* k = context;
    const size_t D = k->D;
    for (size_t t = begin; t < end; t++) {
        const float* row = k->qkv + t * k->row_stride;
        uint64_t slot = (uint64_t) k->token_offset + t;
        if (k->positions != NULL) {
            const uint32_t pos = k->positions[t];
            const uint32_t* table = k->block_tables + (size_t) k->seq_ids[t] * k->table_stride;
            slot = (uint64_t) table[pos / k->block_size] * k->block_size + pos % k->block_size;
        }
        for (size_t h = 0; h < k->kv_heads; h++) {
            float* dst = k->kv + h * k->head_stride + slot * 2 * D;
            memcpy(dst, row + (k->q_heads + h) * D, D * sizeof(float));
            memcpy(dst + D, row + (k->q_heads + k->kv_heads + h) * D, D * sizeof(float));
        }
    }
}

/* The projection, the RoPE (positions NULL: token_offset + t) and the cache write. */
static enum gptoss_status qkv_run(gptoss_backend_t backend, const struct gptoss_f32_bf16w_matmul_args* matmul,
                                  const struct gptoss_f32_rope_args* rope, const struct kv_write* k) {
    GPTOSS_TRY(gptoss_cpu_f32_bf16w_matmul(backend, matmul));
    GPTOSS_TRY(gptoss_cpu_rope_rows(backend, rope, k->positions));
    const size_t work = 2 * k->kv_heads * k->D;
    const size_t grain = work >= 32768 ? 1 : 32768 / work;
    gptoss_cpu_parallelize(backend, kv_write_rows, (void*) k, matmul->num_tokens, grain);
    return gptoss_status_success;
}

enum gptoss_status gptoss_cpu_f32_bf16w_matmul_qkv(gptoss_backend_t backend,
                                                   const struct gptoss_f32_bf16w_matmul_qkv_args* args) {
    const size_t num_rows = (size_t) args->head_dim * ((size_t) args->num_q_heads + 2 * (size_t) args->num_kv_heads);
    const struct gptoss_f32_bf16w_matmul_args matmul = {
        args->input, args->weight, args->bias, args->output, args->num_tokens, args->num_cols, (uint32_t) num_rows,
    };
    const struct gptoss_f32_rope_args rope = {
        args->output,       args->rope_base,       args->interpolation_scale, args->yarn_offset,
        args->yarn_scale,   args->yarn_multiplier, args->num_tokens,          args->num_q_heads,
        args->num_kv_heads, args->head_dim,        args->token_offset,
    };
    const struct kv_write k = {
        .qkv = args->output,
        .kv = args->kv_cache,
        .row_stride = num_rows,
        .D = args->head_dim,
        .q_heads = args->num_q_heads,
        .kv_heads = args->num_kv_heads,
        .head_stride = (uint64_t) args->max_tokens * 2 * args->head_dim,
        .token_offset = args->token_offset,
    };
    return qkv_run(backend, &matmul, &rope, &k);
}

enum gptoss_status gptoss_cpu_f32_bf16w_matmul_qkv_varlen(gptoss_backend_t backend,
                                                          const struct gptoss_f32_bf16w_matmul_qkv_varlen_args* args) {
    const size_t num_rows = (size_t) args->head_dim * ((size_t) args->num_q_heads + 2 * (size_t) args->num_kv_heads);
    const struct gptoss_f32_bf16w_matmul_args matmul = {
        args->input, args->weight, args->bias, args->output, args->num_tokens, args->num_cols, (uint32_t) num_rows,
    };
    const struct gptoss_f32_rope_args rope = {
        args->output,       args->rope_base,       args->interpolation_scale, args->yarn_offset,
        args->yarn_scale,   args->yarn_multiplier, args->num_tokens,          args->num_q_heads,
        args->num_kv_heads, args->head_dim,        0,
    };
    const struct kv_write k = {
        .qkv = args->output,
        .kv = args->kv_cache,
        .row_stride = num_rows,
        .D = args->head_dim,
        .q_heads = args->num_q_heads,
        .kv_heads = args->num_kv_heads,
        .head_stride = args->kv_stride,
        .positions = args->positions,
        .seq_ids = args->seq_ids,
        .block_tables = args->block_tables,
        .block_size = args->block_size,
        .table_stride = args->table_stride,
    };
    return qkv_run(backend, &matmul, &rope, &k);
}
