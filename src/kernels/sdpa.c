/* Argument checks of the scaled dot-product attention; src/kernels/run.c runs them before
 * the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_check_f32_sdpa(gptoss_backend_t backend, const struct gptoss_f32_sdpa_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->q, "q", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->kv, "kv", 4));
    GPTOSS_TRY(gptoss_check_optional_pointer(args->sinks, "sinks", 2));
    GPTOSS_TRY(gptoss_check_pointer(args->output, "output", 4));
    if (args->window == 0) {
        return gptoss_fail(GPTOSS_INVALID, "window 0 must be at least 1 (UINT32_MAX = full causal attention)");
    }
    GPTOSS_TRY(gptoss_check_nonzero(args->num_q_tokens, "num_q_tokens"));
    /* num_kv_tokens (tokens already in the cache before the queries) may be 0. */
    uint64_t qkv_dim = 0;
    GPTOSS_TRY(gptoss_check_heads(args->num_q_heads, args->num_kv_heads, args->head_dim, 4, &qkv_dim));
    GPTOSS_TRY(gptoss_check_finite(args->scale, "scale"));
    const uint64_t num_positions = (uint64_t) args->num_kv_tokens + args->num_q_tokens;
    if (num_positions > UINT32_MAX) {
        return gptoss_fail(GPTOSS_UNSUPPORTED, "num_kv_tokens %u + num_q_tokens %u exceeds UINT32_MAX positions",
                           args->num_kv_tokens, args->num_q_tokens);
    }
    uint64_t head_span = 0; /* floats of one kv head that are read: 2 * head_dim * num_positions */
    if (!gptoss_mul_u64(2 * (uint64_t) args->head_dim, num_positions, &head_span) || args->kv_stride < head_span) {
        return gptoss_fail(
            GPTOSS_INVALID, "kv_stride %llu is below 2 x head_dim %u x (num_kv_tokens %u + num_q_tokens %u)",
            (unsigned long long) args->kv_stride, args->head_dim, args->num_kv_tokens, args->num_q_tokens);
    }
    /* kv extent: (num_kv_heads - 1) * kv_stride + head_span floats. */
    uint64_t kv_elements = 0;
    if (!gptoss_mul_u64((uint64_t) args->num_kv_heads - 1, args->kv_stride, &kv_elements) ||
        !gptoss_add_u64(kv_elements, head_span, &kv_elements) || kv_elements > (uint64_t) SIZE_MAX / 4) {
        return gptoss_fail(GPTOSS_INVALID,
                           "kv size (num_kv_heads %u - 1) x kv_stride %llu + %llu floats overflows size_t",
                           args->num_kv_heads, (unsigned long long) args->kv_stride, (unsigned long long) head_span);
    }
    const uint64_t q_row_floats = (uint64_t) args->num_q_heads * args->head_dim; /* <= qkv_dim */
    uint64_t q_elements = 0, output_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("q", 4, &q_elements, args->num_q_tokens, qkv_dim));
    GPTOSS_TRY(GPTOSS_SIZE2("output", 4, &output_elements, args->num_q_tokens, q_row_floats));
    const uint64_t output_bytes = output_elements * 4;
    GPTOSS_TRY(gptoss_check_disjoint(args->output, output_bytes, "output", args->q, q_elements * 4, "q"));
    GPTOSS_TRY(gptoss_check_disjoint(args->output, output_bytes, "output", args->kv, kv_elements * 4, "kv"));
    GPTOSS_TRY(gptoss_check_disjoint(args->output, output_bytes, "output", args->sinks,
                                     (uint64_t) args->num_q_heads * 2, "sinks"));
    return gptoss_status_success;
}

enum gptoss_status gptoss_check_f32_sdpa_varlen(gptoss_backend_t backend,
                                                const struct gptoss_f32_sdpa_varlen_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->q, "q", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->kv, "kv", 4));
    GPTOSS_TRY(gptoss_check_optional_pointer(args->sinks, "sinks", 2));
    GPTOSS_TRY(gptoss_check_pointer(args->output, "output", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->positions, "positions", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->seq_ids, "seq_ids", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->block_tables, "block_tables", 4));
    if (args->window == 0) {
        return gptoss_fail(GPTOSS_INVALID, "window 0 must be at least 1 (UINT32_MAX = full causal attention)");
    }
    GPTOSS_TRY(gptoss_check_nonzero(args->num_q_tokens, "num_q_tokens"));
    uint64_t qkv_dim = 0, num_blocks = 0, cache_bytes = 0, tables_bytes = 0;
    GPTOSS_TRY(gptoss_check_heads(args->num_q_heads, args->num_kv_heads, args->head_dim, 4, &qkv_dim));
    GPTOSS_TRY(gptoss_check_paged_kv(args->num_kv_heads, args->head_dim, args->kv_stride, args->block_size,
                                     args->table_stride, args->num_seqs, &num_blocks, &cache_bytes, &tables_bytes));
    GPTOSS_TRY(gptoss_check_finite(args->scale, "scale"));
    const uint64_t q_row_floats = (uint64_t) args->num_q_heads * args->head_dim; /* <= qkv_dim */
    uint64_t q_elements = 0, output_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("q", 4, &q_elements, args->num_q_tokens, qkv_dim));
    GPTOSS_TRY(GPTOSS_SIZE2("output", 4, &output_elements, args->num_q_tokens, q_row_floats));
    const uint64_t output_bytes = output_elements * 4, rows_bytes = (uint64_t) args->num_q_tokens * 4;
    const struct {
        const void* p;
        uint64_t bytes;
        const char* name;
    } in[] = {{args->q, q_elements * 4, "q"},               {args->kv, cache_bytes, "kv"},
              {args->sinks, (uint64_t) args->num_q_heads * 2, "sinks"},
              {args->positions, rows_bytes, "positions"},   {args->seq_ids, rows_bytes, "seq_ids"},
              {args->block_tables, tables_bytes, "block_tables"}};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        GPTOSS_TRY(gptoss_check_disjoint(args->output, output_bytes, "output", in[i].p, in[i].bytes, in[i].name));
    }
    if (backend->host_memory) {
        GPTOSS_TRY(gptoss_check_paged_rows(args->positions, args->seq_ids, args->block_tables, args->num_q_tokens,
                                           args->num_seqs, args->block_size, args->table_stride, num_blocks,
                                           args->window));
    }
    return gptoss_status_success;
}
