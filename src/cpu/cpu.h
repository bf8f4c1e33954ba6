/* CPU backend: the backend object and one entry point per kernel (implemented in the
 * family files: random.c, convert.c, embeddings.c, rmsnorm.c, matmul.c, qkv.c, rope.c,
 * unembedding.c, sdpa.c, topk.c, routing.c, moe.c, sample.c). Arguments were checked by
 * src/kernels/. Every entry runs to completion on the backend's thread pool. */
#ifndef GPTOSS_CPU_CPU_H
#define GPTOSS_CPU_CPU_H

#include <pthread.h>

#include "cpu/threadpool.h"
#include "internal/backend.h"

struct gptoss_cpu_backend {
    struct gptoss_backend base; /* first: a gptoss_backend_t points here */
    struct gptoss_threadpool* pool;
    enum gptoss_cpu_isa isa;    /* resolved: never auto */
    pthread_mutex_t lock;       /* one kernel at a time per backend */
};

static inline struct gptoss_cpu_backend* gptoss_cpu(gptoss_backend_t backend) {
    return (struct gptoss_cpu_backend*) backend;
}

/* Best ISA of this processor and build, and whether a given one is runnable. */
enum gptoss_cpu_isa gptoss_cpu_detect_isa(void);
int gptoss_cpu_isa_available(enum gptoss_cpu_isa isa);

enum gptoss_status gptoss_cpu_backend_create(uint32_t num_threads, enum gptoss_cpu_isa isa,
                                             gptoss_backend_t* backend_out);

/* Runs fn over [0, range) on the backend's pool (see gptoss_threadpool_parallelize). */
void gptoss_cpu_parallelize(gptoss_backend_t backend, gptoss_parallel_fn fn, void* context, size_t range,
                            size_t grain);

enum gptoss_status gptoss_cpu_u32_fill_random(gptoss_backend_t backend, uint32_t* output, uint64_t num_elements, uint64_t seed, uint64_t offset);
enum gptoss_status gptoss_cpu_f32_fill_random(gptoss_backend_t backend, float* output, uint64_t num_elements, uint64_t seed, uint64_t offset, float min, float max);
enum gptoss_status gptoss_cpu_bf16_fill_random(gptoss_backend_t backend, gptoss_bf16* output, uint64_t num_elements, uint64_t seed, uint64_t offset, float min, float max);
enum gptoss_status gptoss_cpu_mf4_f32_convert(gptoss_backend_t backend, const uint8_t* blocks, const uint8_t* scales, float* output, uint64_t num_elements);
enum gptoss_status gptoss_cpu_bf16_f32_embeddings(gptoss_backend_t backend, const uint32_t* token_ids, const gptoss_bf16* weight, float* output, uint32_t num_tokens, uint32_t num_channels, uint32_t vocabulary_size);
enum gptoss_status gptoss_cpu_f32_bf16w_rmsnorm(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, float* output, uint32_t num_tokens, uint32_t num_channels, float epsilon);
enum gptoss_status gptoss_cpu_f32_bf16w_matmul(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, float* output, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);
enum gptoss_status gptoss_cpu_f32_bf16w_matmul_add(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, float* output, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);
enum gptoss_status gptoss_cpu_f32_bf16w_dense_matmul_qkv(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, float* output, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);
enum gptoss_status gptoss_cpu_f32_bf16w_dense_matmul_attn_output(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, float* output, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);
enum gptoss_status gptoss_cpu_f32_bf16w_dense_matmul_mlp_gate(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, float* output, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);
enum gptoss_status gptoss_cpu_f32_bf16w_matmul_qkv(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, float* output, float* kv_cache, uint32_t num_tokens, uint32_t num_cols, uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim, uint32_t token_offset, uint32_t max_tokens, float rope_base, float interpolation_scale, float yarn_offset, float yarn_scale, float yarn_multiplier);
enum gptoss_status gptoss_cpu_f32_rope(gptoss_backend_t backend, float* activations, float rope_base, float interpolation_scale, float yarn_offset, float yarn_scale, float yarn_multiplier, uint32_t num_tokens, uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim, uint32_t token_offset);
enum gptoss_status gptoss_cpu_f32_sdpa(gptoss_backend_t backend, const float* q, const float* kv, const gptoss_bf16* sinks, float* output, uint32_t window, uint64_t kv_stride, uint32_t num_q_tokens, uint32_t num_kv_tokens, uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim, float scale);
enum gptoss_status gptoss_cpu_f32_bf16w_unembedding(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, float* logits, uint32_t* argmax, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);
enum gptoss_status gptoss_cpu_f32_topk(gptoss_backend_t backend, const float* scores, uint32_t* expert_ids, float* expert_scores, uint32_t num_tokens, uint32_t num_experts, uint32_t num_active_experts);
enum gptoss_status gptoss_cpu_expert_routing_metadata(gptoss_backend_t backend, const uint32_t* expert_ids, uint32_t* expert_offsets, uint32_t* intra_expert_offsets, uint32_t num_pairs, uint32_t num_experts);
enum gptoss_status gptoss_cpu_f32_scatter(gptoss_backend_t backend, const float* input, const uint32_t* expert_ids, const uint32_t* expert_offsets, const uint32_t* intra_expert_offsets, float* output, uint32_t num_channels, uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts);
enum gptoss_status gptoss_cpu_f32_mf4w_moe_matmul_swiglu(gptoss_backend_t backend, const float* input, const uint32_t* expert_ids, const uint8_t* weight_blocks, const uint8_t* weight_scales, const gptoss_bf16* bias, size_t expert_stride, float* output, uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts, uint32_t num_cols, uint32_t num_rows, float swiglu_limit);
enum gptoss_status gptoss_cpu_f32_mf4w_moe_matmul(gptoss_backend_t backend, const float* input, const uint32_t* expert_ids, const uint8_t* weight_blocks, const uint8_t* weight_scales, const gptoss_bf16* bias, size_t expert_stride, float* output, uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts, uint32_t num_cols, uint32_t num_rows);
enum gptoss_status gptoss_cpu_f32_mf4w_moe_dense_matmul_swiglu(gptoss_backend_t backend, const uint32_t* expert_offsets, const float* input, const uint8_t* weight_blocks, const uint8_t* weight_scales, const gptoss_bf16* bias, size_t expert_stride, float* output, uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts, uint32_t num_cols, uint32_t num_rows, float swiglu_limit);
enum gptoss_status gptoss_cpu_f32_mf4w_moe_dense_matmul(gptoss_backend_t backend, const uint32_t* expert_offsets, const float* input, const uint8_t* weight_blocks, const uint8_t* weight_scales, const gptoss_bf16* bias, size_t expert_stride, float* output, uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts, uint32_t num_cols, uint32_t num_rows);
enum gptoss_status gptoss_cpu_f32_gather_and_accumulate(gptoss_backend_t backend, const float* input, const uint32_t* expert_ids, const float* expert_scores, const uint32_t* expert_offsets, const uint32_t* intra_expert_offsets, float* residual, uint32_t num_channels, uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts);
enum gptoss_status gptoss_cpu_f32_accumulate(gptoss_backend_t backend, const float* input, const float* expert_scores, float* residual, uint32_t num_channels, uint32_t num_tokens, uint32_t num_active_experts);
enum gptoss_status gptoss_cpu_f32_softmax(gptoss_backend_t backend, const float* logits, const uint32_t* argmax, float* prob, float* sum, uint32_t num_tokens, uint32_t num_channels, float temperature);
enum gptoss_status gptoss_cpu_f32_sample(gptoss_backend_t backend, const float* prob, const float* sum, uint32_t* prediction, uint32_t num_channels, uint64_t rng_seed, uint64_t rng_offset);

#endif
