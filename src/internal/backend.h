/* Internal: the backend object and its table of kernel entry points.
 *
 * src/kernels/ checks every argument once and then calls backend->ops-><kernel>; a
 * backend may therefore assume valid arguments (sizes >= 1, products fit in 64 bits,
 * divisibility, ranges; on host-memory backends also token/expert ids and routing
 * offsets). Kernel entries have the public signatures. */
#ifndef GPTOSS_INTERNAL_BACKEND_H
#define GPTOSS_INTERNAL_BACKEND_H

#include <stdbool.h>
#include <gptoss/kernels.h>

struct gptoss_backend_ops {
    enum gptoss_status (*release)(gptoss_backend_t backend);
    enum gptoss_status (*alloc)(gptoss_backend_t backend, size_t size, void** ptr_out);
    enum gptoss_status (*free)(gptoss_backend_t backend, void* ptr);
    enum gptoss_status (*copy)(gptoss_backend_t backend, void* dst, const void* src, size_t size,
                               enum gptoss_copy_kind kind);
    enum gptoss_status (*synchronize)(gptoss_backend_t backend);

    enum gptoss_status (*u32_fill_random)(gptoss_backend_t backend, uint32_t* output, uint64_t num_elements, uint64_t seed, uint64_t offset);
    enum gptoss_status (*f32_fill_random)(gptoss_backend_t backend, float* output, uint64_t num_elements, uint64_t seed, uint64_t offset, float min, float max);
    enum gptoss_status (*bf16_fill_random)(gptoss_backend_t backend, gptoss_bf16* output, uint64_t num_elements, uint64_t seed, uint64_t offset, float min, float max);
    enum gptoss_status (*mf4_f32_convert)(gptoss_backend_t backend, const uint8_t* blocks, const uint8_t* scales, float* output, uint64_t num_elements);
    enum gptoss_status (*bf16_f32_embeddings)(gptoss_backend_t backend, const uint32_t* token_ids, const gptoss_bf16* weight, float* output, uint32_t num_tokens, uint32_t num_channels, uint32_t vocabulary_size);
    enum gptoss_status (*f32_bf16w_rmsnorm)(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, float* output, uint32_t num_tokens, uint32_t num_channels, float epsilon);
    enum gptoss_status (*f32_bf16w_matmul)(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, float* output, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);
    enum gptoss_status (*f32_bf16w_matmul_add)(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, float* output, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);
    enum gptoss_status (*f32_bf16w_dense_matmul_qkv)(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, float* output, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);
    enum gptoss_status (*f32_bf16w_dense_matmul_attn_output)(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, float* output, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);
    enum gptoss_status (*f32_bf16w_dense_matmul_mlp_gate)(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, float* output, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);
    enum gptoss_status (*f32_bf16w_matmul_qkv)(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, float* output, float* kv_cache, uint32_t num_tokens, uint32_t num_cols, uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim, uint32_t token_offset, uint32_t max_tokens, float rope_base, float interpolation_scale, float yarn_offset, float yarn_scale, float yarn_multiplier);
    enum gptoss_status (*f32_rope)(gptoss_backend_t backend, float* activations, float rope_base, float interpolation_scale, float yarn_offset, float yarn_scale, float yarn_multiplier, uint32_t num_tokens, uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim, uint32_t token_offset);
    enum gptoss_status (*f32_sdpa)(gptoss_backend_t backend, const float* q, const float* kv, const gptoss_bf16* sinks, float* output, uint32_t window, uint64_t kv_stride, uint32_t num_q_tokens, uint32_t num_kv_tokens, uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim, float scale);
    enum gptoss_status (*f32_bf16w_unembedding)(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, float* logits, uint32_t* argmax, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);
    enum gptoss_status (*f32_topk)(gptoss_backend_t backend, const float* scores, uint32_t* expert_ids, float* expert_scores, uint32_t num_tokens, uint32_t num_experts, uint32_t num_active_experts);
    enum gptoss_status (*expert_routing_metadata)(gptoss_backend_t backend, const uint32_t* expert_ids, uint32_t* expert_offsets, uint32_t* intra_expert_offsets, uint32_t num_pairs, uint32_t num_experts);
    enum gptoss_status (*f32_scatter)(gptoss_backend_t backend, const float* input, const uint32_t* expert_ids, const uint32_t* expert_offsets, const uint32_t* intra_expert_offsets, float* output, uint32_t num_channels, uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts);
    enum gptoss_status (*f32_mf4w_moe_matmul_swiglu)(gptoss_backend_t backend, const float* input, const uint32_t* expert_ids, const uint8_t* weight_blocks, const uint8_t* weight_scales, const gptoss_bf16* bias, size_t expert_stride, float* output, uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts, uint32_t num_cols, uint32_t num_rows, float swiglu_limit);
    enum gptoss_status (*f32_mf4w_moe_matmul)(gptoss_backend_t backend, const float* input, const uint32_t* expert_ids, const uint8_t* weight_blocks, const uint8_t* weight_scales, const gptoss_bf16* bias, size_t expert_stride, float* output, uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts, uint32_t num_cols, uint32_t num_rows);
    enum gptoss_status (*f32_mf4w_moe_dense_matmul_swiglu)(gptoss_backend_t backend, const uint32_t* expert_offsets, const float* input, const uint8_t* weight_blocks, const uint8_t* weight_scales, const gptoss_bf16* bias, size_t expert_stride, float* output, uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts, uint32_t num_cols, uint32_t num_rows, float swiglu_limit);
    enum gptoss_status (*f32_mf4w_moe_dense_matmul)(gptoss_backend_t backend, const uint32_t* expert_offsets, const float* input, const uint8_t* weight_blocks, const uint8_t* weight_scales, const gptoss_bf16* bias, size_t expert_stride, float* output, uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts, uint32_t num_cols, uint32_t num_rows);
    enum gptoss_status (*f32_gather_and_accumulate)(gptoss_backend_t backend, const float* input, const uint32_t* expert_ids, const float* expert_scores, const uint32_t* expert_offsets, const uint32_t* intra_expert_offsets, float* residual, uint32_t num_channels, uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts);
    enum gptoss_status (*f32_accumulate)(gptoss_backend_t backend, const float* input, const float* expert_scores, float* residual, uint32_t num_channels, uint32_t num_tokens, uint32_t num_active_experts);
    enum gptoss_status (*f32_softmax)(gptoss_backend_t backend, const float* logits, const uint32_t* argmax, float* prob, float* sum, uint32_t num_tokens, uint32_t num_channels, float temperature);
    enum gptoss_status (*f32_sample)(gptoss_backend_t backend, const float* prob, const float* sum, uint32_t* prediction, uint32_t num_channels, uint64_t rng_seed, uint64_t rng_offset);
    /* fusions of the ops above (not upstream ops) */
    enum gptoss_status (*f32_accumulate_bf16w_rmsnorm)(gptoss_backend_t backend, const float* input, const float* expert_scores, float* residual, const gptoss_bf16* weight, float* output, uint32_t num_channels, uint32_t num_tokens, uint32_t num_active_experts, float epsilon);
    enum gptoss_status (*f32_bf16w_rmsnorm_matmul_topk)(gptoss_backend_t backend, const float* input, const gptoss_bf16* norm_weight, float* output, const gptoss_bf16* router_weight, const gptoss_bf16* router_bias, float* scores, uint32_t* expert_ids, float* expert_scores, uint32_t num_tokens, uint32_t num_channels, uint32_t num_experts, uint32_t num_active_experts, float epsilon);
};

/* The fusions as their parts in sequence through backend->ops (src/kernels/rmsnorm.c,
 * topk.c): the CPU backend's implementation (bit-identical by construction) and the CUDA
 * backend's fallback where its fused kernel does not apply. Arguments already checked. */
#ifdef __cplusplus
extern "C" {
#endif
enum gptoss_status gptoss_sequence_f32_accumulate_bf16w_rmsnorm(gptoss_backend_t backend, const float* input, const float* expert_scores, float* residual, const gptoss_bf16* weight, float* output, uint32_t num_channels, uint32_t num_tokens, uint32_t num_active_experts, float epsilon);
enum gptoss_status gptoss_sequence_f32_bf16w_rmsnorm_matmul_topk(gptoss_backend_t backend, const float* input, const gptoss_bf16* norm_weight, float* output, const gptoss_bf16* router_weight, const gptoss_bf16* router_bias, float* scores, uint32_t* expert_ids, float* expert_scores, uint32_t num_tokens, uint32_t num_channels, uint32_t num_experts, uint32_t num_active_experts, float epsilon);
#ifdef __cplusplus
}
#endif

struct gptoss_backend {
    const struct gptoss_backend_ops* ops;
    enum gptoss_backend_kind kind;
    /* true when kernel pointers are host-readable: src/kernels then also checks the
     * contents of id and offset buffers before the call. */
    bool host_memory;
    char name[128];
};

#endif /* GPTOSS_INTERNAL_BACKEND_H */
