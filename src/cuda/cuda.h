/* CUDA backend: the backend object and one entry point per kernel (implemented in the
 * family files: random.cu, convert.cu, embeddings.cu, rmsnorm.cu, matmul.cu, qkv.cu,
 * rope.cu, unembedding.cu, sdpa.cu, topk.cu, routing.cu, moe.cu, sample.cu).
 * C-compatible: no CUDA types. Arguments were checked by src/kernels/ (except the contents
 * of device buffers: token ids, expert ids, routing offsets are checked by the kernels,
 * which set the backend's device error word; gptoss_backend_synchronize reports it).
 * Every entry enqueues its work on the backend's stream and returns at once. */
#ifndef GPTOSS_CUDA_CUDA_H
#define GPTOSS_CUDA_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "internal/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bits of the device error word. */
#define GPTOSS_CUDA_ERROR_TOKEN_ID 1u
#define GPTOSS_CUDA_ERROR_EXPERT_ID 2u
#define GPTOSS_CUDA_ERROR_ROUTING_OFFSET 4u
#define GPTOSS_CUDA_ERROR_ARGMAX 8u

struct gptoss_cuda_backend {
    struct gptoss_backend base; /* first: a gptoss_backend_t points here */
    void* stream;               /* cudaStream_t, owned by the caller (NULL = legacy default stream) */
    int device;
    int num_sms;
    size_t max_shared_per_block; /* opt-in maximum, bytes */
    int pdl;                     /* programmatic dependent launch (sm_90+, $GPTOSS_CUDA_PDL != 0) */
    uint32_t* error_word;        /* device u32, set by kernels (bits above), reset by synchronize */
    void* mem_pool;              /* cudaMemPool_t the scratch and counter buffers come from */
    /* Scratch for kernels that need a temporary (SDPA partials, routing counts): one
     * buffer, grown on demand; outgrown buffers stay allocated until release because a
     * recorded graph may still point at them. Guarded by scratch_lock (held from the
     * acquire until the launch that uses it is enqueued). */
    void* scratch_lock;          /* pthread_mutex_t */
    void* scratch;
    size_t scratch_size;
    void* counters;              /* u32 counters, zero between kernels (kernels reset them) */
    size_t counters_size;
    void* retired[64];
    uint32_t num_retired;
};

static inline struct gptoss_cuda_backend* gptoss_cuda(gptoss_backend_t backend) {
    return (struct gptoss_cuda_backend*) backend;
}

enum gptoss_status gptoss_cuda_backend_create(int device, void* stream, gptoss_backend_t* backend_out);

/* graph.cu: the gptoss_graph_* entries (public checks done in src/backend.c) */
enum gptoss_status gptoss_cuda_graph_create(gptoss_backend_t backend, gptoss_graph_t* graph_out);
enum gptoss_status gptoss_cuda_graph_begin(gptoss_graph_t graph);
enum gptoss_status gptoss_cuda_graph_end(gptoss_graph_t graph);
enum gptoss_status gptoss_cuda_graph_launch(gptoss_graph_t graph);
enum gptoss_status gptoss_cuda_graph_release(gptoss_graph_t graph);

enum gptoss_status gptoss_cuda_u32_fill_random(gptoss_backend_t backend, uint32_t* output, uint64_t num_elements, uint64_t seed, uint64_t offset);
enum gptoss_status gptoss_cuda_f32_fill_random(gptoss_backend_t backend, float* output, uint64_t num_elements, uint64_t seed, uint64_t offset, float min, float max);
enum gptoss_status gptoss_cuda_bf16_fill_random(gptoss_backend_t backend, gptoss_bf16* output, uint64_t num_elements, uint64_t seed, uint64_t offset, float min, float max);
enum gptoss_status gptoss_cuda_mf4_f32_convert(gptoss_backend_t backend, const uint8_t* blocks, const uint8_t* scales, float* output, uint64_t num_elements);
enum gptoss_status gptoss_cuda_bf16_f32_embeddings(gptoss_backend_t backend, const uint32_t* token_ids, const gptoss_bf16* weight, float* output, uint32_t num_tokens, uint32_t num_channels, uint32_t vocabulary_size);
enum gptoss_status gptoss_cuda_f32_accumulate_bf16w_rmsnorm(gptoss_backend_t backend, const float* input, const float* expert_scores, float* residual, const gptoss_bf16* weight, float* output, uint32_t num_channels, uint32_t num_tokens, uint32_t num_active_experts, float epsilon);
enum gptoss_status gptoss_cuda_f32_bf16w_rmsnorm(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, float* output, uint32_t num_tokens, uint32_t num_channels, float epsilon);
enum gptoss_status gptoss_cuda_f32_bf16w_matmul(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, float* output, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);
enum gptoss_status gptoss_cuda_f32_bf16w_matmul_add(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, float* output, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);
enum gptoss_status gptoss_cuda_f32_bf16w_dense_matmul_qkv(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, float* output, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);
enum gptoss_status gptoss_cuda_f32_bf16w_dense_matmul_attn_output(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, float* output, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);
enum gptoss_status gptoss_cuda_f32_bf16w_dense_matmul_mlp_gate(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, float* output, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);
enum gptoss_status gptoss_cuda_f32_bf16w_matmul_qkv(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, float* output, float* kv_cache, uint32_t num_tokens, uint32_t num_cols, uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim, uint32_t token_offset, uint32_t max_tokens, float rope_base, float interpolation_scale, float yarn_offset, float yarn_scale, float yarn_multiplier);
enum gptoss_status gptoss_cuda_f32_rope(gptoss_backend_t backend, float* activations, float rope_base, float interpolation_scale, float yarn_offset, float yarn_scale, float yarn_multiplier, uint32_t num_tokens, uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim, uint32_t token_offset);
enum gptoss_status gptoss_cuda_f32_sdpa(gptoss_backend_t backend, const float* q, const float* kv, const gptoss_bf16* sinks, float* output, uint32_t window, uint64_t kv_stride, uint32_t num_q_tokens, uint32_t num_kv_tokens, uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim, float scale);
enum gptoss_status gptoss_cuda_f32_bf16w_unembedding(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, float* logits, uint32_t* argmax, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);
enum gptoss_status gptoss_cuda_f32_bf16w_rmsnorm_matmul_topk(gptoss_backend_t backend, const float* input, const gptoss_bf16* norm_weight, float* output, const gptoss_bf16* router_weight, const gptoss_bf16* router_bias, float* scores, uint32_t* expert_ids, float* expert_scores, uint32_t num_tokens, uint32_t num_channels, uint32_t num_experts, uint32_t num_active_experts, float epsilon);
enum gptoss_status gptoss_cuda_f32_topk(gptoss_backend_t backend, const float* scores, uint32_t* expert_ids, float* expert_scores, uint32_t num_tokens, uint32_t num_experts, uint32_t num_active_experts);
enum gptoss_status gptoss_cuda_expert_routing_metadata(gptoss_backend_t backend, const uint32_t* expert_ids, uint32_t* expert_offsets, uint32_t* intra_expert_offsets, uint32_t num_pairs, uint32_t num_experts);
enum gptoss_status gptoss_cuda_f32_scatter(gptoss_backend_t backend, const float* input, const uint32_t* expert_ids, const uint32_t* expert_offsets, const uint32_t* intra_expert_offsets, float* output, uint32_t num_channels, uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts);
enum gptoss_status gptoss_cuda_f32_mf4w_moe_matmul_swiglu(gptoss_backend_t backend, const float* input, const uint32_t* expert_ids, const uint8_t* weight_blocks, const uint8_t* weight_scales, const gptoss_bf16* bias, size_t expert_stride, float* output, uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts, uint32_t num_cols, uint32_t num_rows, float swiglu_limit);
enum gptoss_status gptoss_cuda_f32_mf4w_moe_matmul(gptoss_backend_t backend, const float* input, const uint32_t* expert_ids, const uint8_t* weight_blocks, const uint8_t* weight_scales, const gptoss_bf16* bias, size_t expert_stride, float* output, uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts, uint32_t num_cols, uint32_t num_rows);
enum gptoss_status gptoss_cuda_f32_mf4w_moe_dense_matmul_swiglu(gptoss_backend_t backend, const uint32_t* expert_offsets, const float* input, const uint8_t* weight_blocks, const uint8_t* weight_scales, const gptoss_bf16* bias, size_t expert_stride, float* output, uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts, uint32_t num_cols, uint32_t num_rows, float swiglu_limit);
enum gptoss_status gptoss_cuda_f32_mf4w_moe_dense_matmul(gptoss_backend_t backend, const uint32_t* expert_offsets, const float* input, const uint8_t* weight_blocks, const uint8_t* weight_scales, const gptoss_bf16* bias, size_t expert_stride, float* output, uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts, uint32_t num_cols, uint32_t num_rows);
enum gptoss_status gptoss_cuda_f32_gather_and_accumulate(gptoss_backend_t backend, const float* input, const uint32_t* expert_ids, const float* expert_scores, const uint32_t* expert_offsets, const uint32_t* intra_expert_offsets, float* residual, uint32_t num_channels, uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts);
enum gptoss_status gptoss_cuda_f32_accumulate(gptoss_backend_t backend, const float* input, const float* expert_scores, float* residual, uint32_t num_channels, uint32_t num_tokens, uint32_t num_active_experts);
enum gptoss_status gptoss_cuda_f32_softmax(gptoss_backend_t backend, const float* logits, const uint32_t* argmax, float* prob, float* sum, uint32_t num_tokens, uint32_t num_channels, float temperature);
enum gptoss_status gptoss_cuda_f32_sample(gptoss_backend_t backend, const float* prob, const float* sum, uint32_t* prediction, uint32_t num_channels, uint64_t rng_seed, uint64_t rng_offset);

#ifdef __cplusplus
}
#endif

#endif /* GPTOSS_CUDA_CUDA_H */
