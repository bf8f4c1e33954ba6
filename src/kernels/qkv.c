/* Argument checks of the fused QKV projection + RoPE + KV-cache write; src/kernels/run.c
 * runs them before the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_check_f32_bf16w_matmul_qkv(gptoss_backend_t backend,
                                                     const struct gptoss_f32_bf16w_matmul_qkv_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->weight, "weight", 2));
    GPTOSS_TRY(gptoss_check_optional_pointer(args->bias, "bias", 2));
    GPTOSS_TRY(gptoss_check_pointer(args->output, "output", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->kv_cache, "kv_cache", 4));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_cols, "num_cols"));
    uint64_t num_rows = 0;
    GPTOSS_TRY(gptoss_check_heads(args->num_q_heads, args->num_kv_heads, args->head_dim, 2, &num_rows));
    GPTOSS_TRY(gptoss_check_nonzero(args->max_tokens, "max_tokens"));
    if ((uint64_t) args->token_offset + args->num_tokens > args->max_tokens) {
        return gptoss_fail(GPTOSS_INVALID, "token_offset %u + num_tokens %u exceeds max_tokens %u", args->token_offset,
                           args->num_tokens, args->max_tokens);
    }
    GPTOSS_TRY(gptoss_check_rope_params(args->rope_base, args->interpolation_scale, args->yarn_offset, args->yarn_scale,
                                        args->yarn_multiplier));
    uint64_t input_elements = 0, weight_elements = 0, output_elements = 0, cache_elements = 0;
    const uint64_t cache_row = 2 * (uint64_t) args->head_dim;
    GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &input_elements, args->num_tokens, args->num_cols));
    GPTOSS_TRY(GPTOSS_SIZE2("weight", 2, &weight_elements, num_rows, args->num_cols));
    GPTOSS_TRY(GPTOSS_SIZE2("output", 4, &output_elements, args->num_tokens, num_rows));
    GPTOSS_TRY(GPTOSS_SIZE3("kv_cache", 4, &cache_elements, args->num_kv_heads, args->max_tokens, cache_row));
    const uint64_t output_bytes = output_elements * 4, cache_bytes = cache_elements * 4;
    const uint64_t input_bytes = input_elements * 4, weight_bytes = weight_elements * 2, bias_bytes = num_rows * 2;
    GPTOSS_TRY(gptoss_check_disjoint(args->output, output_bytes, "output", args->input, input_bytes, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(args->output, output_bytes, "output", args->weight, weight_bytes, "weight"));
    GPTOSS_TRY(gptoss_check_disjoint(args->output, output_bytes, "output", args->bias, bias_bytes, "bias"));
    GPTOSS_TRY(gptoss_check_disjoint(args->kv_cache, cache_bytes, "kv_cache", args->input, input_bytes, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(args->kv_cache, cache_bytes, "kv_cache", args->weight, weight_bytes, "weight"));
    GPTOSS_TRY(gptoss_check_disjoint(args->kv_cache, cache_bytes, "kv_cache", args->bias, bias_bytes, "bias"));
    GPTOSS_TRY(gptoss_check_disjoint(args->kv_cache, cache_bytes, "kv_cache", args->output, output_bytes, "output"));
    return gptoss_status_success;
}

enum gptoss_status gptoss_check_f32_bf16w_matmul_qkv_varlen(gptoss_backend_t backend,
                                                            const struct gptoss_f32_bf16w_matmul_qkv_varlen_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->weight, "weight", 2));
    GPTOSS_TRY(gptoss_check_optional_pointer(args->bias, "bias", 2));
    GPTOSS_TRY(gptoss_check_pointer(args->output, "output", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->kv_cache, "kv_cache", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->positions, "positions", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->seq_ids, "seq_ids", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->block_tables, "block_tables", 4));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_cols, "num_cols"));
    uint64_t num_rows = 0, num_blocks = 0, cache_bytes = 0, tables_bytes = 0;
    GPTOSS_TRY(gptoss_check_heads(args->num_q_heads, args->num_kv_heads, args->head_dim, 2, &num_rows));
    GPTOSS_TRY(gptoss_check_paged_kv(args->num_kv_heads, args->head_dim, args->kv_stride, args->block_size,
                                     args->table_stride, args->num_seqs, &num_blocks, &cache_bytes, &tables_bytes));
    GPTOSS_TRY(gptoss_check_rope_params(args->rope_base, args->interpolation_scale, args->yarn_offset, args->yarn_scale,
                                        args->yarn_multiplier));
    uint64_t input_elements = 0, weight_elements = 0, output_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &input_elements, args->num_tokens, args->num_cols));
    GPTOSS_TRY(GPTOSS_SIZE2("weight", 2, &weight_elements, num_rows, args->num_cols));
    GPTOSS_TRY(GPTOSS_SIZE2("output", 4, &output_elements, args->num_tokens, num_rows));
    const uint64_t output_bytes = output_elements * 4, rows_bytes = (uint64_t) args->num_tokens * 4;
    const uint64_t input_bytes = input_elements * 4, weight_bytes = weight_elements * 2, bias_bytes = num_rows * 2;
    const struct {
        const void* p;
        uint64_t bytes;
        const char* name;
    } in[] = {{args->input, input_bytes, "input"},          {args->weight, weight_bytes, "weight"},
              {args->bias, bias_bytes, "bias"},             {args->positions, rows_bytes, "positions"},
              {args->seq_ids, rows_bytes, "seq_ids"},       {args->block_tables, tables_bytes, "block_tables"}};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        GPTOSS_TRY(gptoss_check_disjoint(args->output, output_bytes, "output", in[i].p, in[i].bytes, in[i].name));
        GPTOSS_TRY(gptoss_check_disjoint(args->kv_cache, cache_bytes, "kv_cache", in[i].p, in[i].bytes, in[i].name));
    }
    GPTOSS_TRY(gptoss_check_disjoint(args->kv_cache, cache_bytes, "kv_cache", args->output, output_bytes, "output"));
    if (backend->host_memory) {
        GPTOSS_TRY(gptoss_check_paged_rows(args->positions, args->seq_ids, args->block_tables, args->num_tokens,
                                           args->num_seqs, args->block_size, args->table_stride, num_blocks, 0));
    }
    return gptoss_status_success;
}
