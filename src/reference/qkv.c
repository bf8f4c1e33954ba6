/* Reference: fused QKV projection + RoPE + KV-cache write, in double. */
#include "reference/reference.h"

#include <math.h>

#include "common/math.h"

void gptoss_ref_f32_bf16w_matmul_qkv(const struct gptoss_f32_bf16w_matmul_qkv_args* args, double* output,
                                     double* kv_cache) {
    const uint32_t num_rows = args->head_dim * (args->num_q_heads + 2 * args->num_kv_heads);

    /* 1. the projection, all rows */
    const struct gptoss_f32_bf16w_matmul_args projection = {
        args->input, args->weight, args->bias, args->output, args->num_tokens, args->num_cols, num_rows,
    };
    gptoss_ref_f32_bf16w_matmul(&projection, output);

    for (uint32_t t = 0; t < args->num_tokens; t++) {
        const uint32_t pos = args->token_offset + t;
        double* row = output + (size_t) t * num_rows;

        /* 2. RoPE on the Q and K heads (they are adjacent in the row) */
        for (uint32_t h = 0; h < args->num_q_heads + args->num_kv_heads; h++) {
            gptoss_ref_rope_rotate_head(row + (size_t) h * args->head_dim, args->head_dim, pos, args->rope_base,
                                        args->interpolation_scale, args->yarn_offset, args->yarn_scale,
                                        args->yarn_multiplier);
        }

        /* 3. rotated K and plain V into the cache slot of position pos */
        const double* k_heads = row + (size_t) args->num_q_heads * args->head_dim;
        const double* v_heads = k_heads + (size_t) args->num_kv_heads * args->head_dim;
        for (uint32_t h = 0; h < args->num_kv_heads; h++) {
            double* slot = kv_cache + ((size_t) h * args->max_tokens + pos) * 2 * args->head_dim;
            for (uint32_t d = 0; d < args->head_dim; d++) {
                slot[d] = k_heads[(size_t) h * args->head_dim + d];
                slot[args->head_dim + d] = v_heads[(size_t) h * args->head_dim + d];
            }
        }
    }
}

void gptoss_ref_f32_bf16w_matmul_qkv_varlen(const struct gptoss_f32_bf16w_matmul_qkv_varlen_args* args,
                                            double* output, double* kv_cache) {
    const uint32_t D = args->head_dim, num_rows = D * (args->num_q_heads + 2 * args->num_kv_heads);
    const struct gptoss_f32_bf16w_matmul_args projection = {
        args->input, args->weight, args->bias, args->output, args->num_tokens, args->num_cols, num_rows,
    };
    gptoss_ref_f32_bf16w_matmul(&projection, output);
    for (uint32_t t = 0; t < args->num_tokens; t++) {
        const uint32_t pos = args->positions[t];
        double* row = output + (size_t) t * num_rows;
        for (uint32_t h = 0; h < args->num_q_heads + args->num_kv_heads; h++) {
            gptoss_ref_rope_rotate_head(row + (size_t) h * D, D, pos, args->rope_base, args->interpolation_scale,
                                        args->yarn_offset, args->yarn_scale, args->yarn_multiplier);
        }
        const uint32_t* table = args->block_tables + (size_t) args->seq_ids[t] * args->table_stride;
        const uint64_t slot = (uint64_t) table[pos / args->block_size] * args->block_size + pos % args->block_size;
        const double* k_heads = row + (size_t) args->num_q_heads * D;
        const double* v_heads = k_heads + (size_t) args->num_kv_heads * D;
        for (uint32_t h = 0; h < args->num_kv_heads; h++) {
            double* dst = kv_cache + h * args->kv_stride + slot * 2 * D;
            for (uint32_t d = 0; d < D; d++) {
                dst[d] = k_heads[(size_t) h * D + d];
                dst[D + d] = v_heads[(size_t) h * D + d];
            }
        }
    }
}
