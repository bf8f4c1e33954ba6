/* The float64 oracle: one plain, scalar function per kernel, written for reading, used by
 * the test harness and the benchmark checks (never by libgptoss).
 *
 * Conventions: same inputs as the public kernel (no backend, no checks: arguments are
 * assumed valid); every floating-point OUTPUT is double (computed in double from the
 * f32/bf16 inputs, no intermediate rounding to f32), integer outputs as in the kernel.
 * In/out buffers of the kernel are split into a const float* old value and a double*
 * result. Exact kernels (random fill, mf4 convert, embeddings, routing, scatter) write
 * the kernel's own output type. */
#ifndef GPTOSS_REFERENCE_H
#define GPTOSS_REFERENCE_H

#include <stddef.h>
#include <stdint.h>

#include <gptoss/kernels.h>

void gptoss_ref_u32_fill_random(uint32_t* output, uint64_t num_elements, uint64_t seed, uint64_t offset);
/* exact: the kernel's f32 formula (one fmaf) */
void gptoss_ref_f32_fill_random(float* output, uint64_t num_elements, uint64_t seed, uint64_t offset, float min,
                                float max);
void gptoss_ref_bf16_fill_random(gptoss_bf16* output, uint64_t num_elements, uint64_t seed, uint64_t offset,
                                 float min, float max);
/* exact: fp4 * 2^(s-127) via ldexp */
void gptoss_ref_mf4_f32_convert(const uint8_t* blocks, const uint8_t* scales, float* output, uint64_t num_elements);
void gptoss_ref_bf16_f32_embeddings(const uint32_t* token_ids, const gptoss_bf16* weight, float* output,
                                    uint32_t num_tokens, uint32_t num_channels, uint32_t vocabulary_size);

void gptoss_ref_f32_bf16w_rmsnorm(const float* input, const gptoss_bf16* weight, double* output,
                                  uint32_t num_tokens, uint32_t num_channels, float epsilon);
/* residual = residual_old + sum_j input[j][t] * scores[t][j] (as gptoss_ref_f32_accumulate),
 * output = RMSNorm of that residual, all in double (the residual is not rounded to f32
 * before the norm). */
void gptoss_ref_f32_accumulate_bf16w_rmsnorm(const float* input, const float* expert_scores,
                                             const float* residual_old, const gptoss_bf16* weight, double* residual,
                                             double* output, uint32_t num_channels, uint32_t num_tokens,
                                             uint32_t num_active_experts, float epsilon);

/* out = x W^T + b; bias may be NULL. */
void gptoss_ref_f32_bf16w_matmul(const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias,
                                 double* output, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);
/* out = old + (x W^T + b) */
void gptoss_ref_f32_bf16w_matmul_add(const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias,
                                     const float* output_old, double* output, uint32_t num_tokens,
                                     uint32_t num_cols, uint32_t num_rows);

/* output double[T][rows] (rotated Q, rotated K, V); kv_cache double[Hkv][max_tokens][2][D]:
 * only the slots of positions token_offset..+T-1 are written (the caller compares those
 * and checks the rest of the kernel's cache is untouched). RoPE angles in double. */
void gptoss_ref_f32_bf16w_matmul_qkv(const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias,
                                     double* output, double* kv_cache, uint32_t num_tokens, uint32_t num_cols,
                                     uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim,
                                     uint32_t token_offset, uint32_t max_tokens, float rope_base,
                                     float interpolation_scale, float yarn_offset, float yarn_scale,
                                     float yarn_multiplier);
void gptoss_ref_f32_rope(const float* activations_old, double* activations, float rope_base,
                         float interpolation_scale, float yarn_offset, float yarn_scale, float yarn_multiplier,
                         uint32_t num_tokens, uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim,
                         uint32_t token_offset);
/* Rotates the head_dim/2 adjacent pairs of one head (double[head_dim]) at position pos,
 * in place, angles in double (shared by the rope and qkv references). */
void gptoss_ref_rope_rotate_head(double* head, uint32_t head_dim, uint32_t pos, float rope_base,
                                 float interpolation_scale, float yarn_offset, float yarn_scale,
                                 float yarn_multiplier);
/* output double[num_q_tokens][num_q_heads*head_dim] */
void gptoss_ref_f32_sdpa(const float* q, const float* kv, const gptoss_bf16* sinks, double* output,
                         uint32_t window, uint64_t kv_stride, uint32_t num_q_tokens, uint32_t num_kv_tokens,
                         uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim, float scale);
/* argmax over the double logits (lowest index on ties) */
void gptoss_ref_f32_bf16w_unembedding(const float* input, const gptoss_bf16* weight, double* logits,
                                      uint32_t* argmax, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);

/* The fused MoE gate: output = RMSNorm(input) in double, scores = output . W^T + b in
 * double, then gptoss_ref_f32_topk of the scores rounded to f32. router_bias may be NULL. */
void gptoss_ref_f32_bf16w_rmsnorm_matmul_topk(const float* input, const gptoss_bf16* norm_weight,
                                              const gptoss_bf16* router_weight, const gptoss_bf16* router_bias,
                                              double* output, double* scores, uint32_t* expert_ids,
                                              double* expert_scores, uint32_t num_tokens, uint32_t num_channels,
                                              uint32_t num_experts, uint32_t num_active_experts, float epsilon);
void gptoss_ref_f32_topk(const float* scores, uint32_t* expert_ids, double* expert_scores, uint32_t num_tokens,
                         uint32_t num_experts, uint32_t num_active_experts);
void gptoss_ref_expert_routing_metadata(const uint32_t* expert_ids, uint32_t* expert_offsets,
                                        uint32_t* intra_expert_offsets, uint32_t num_pairs, uint32_t num_experts);
void gptoss_ref_f32_scatter(const float* input, const uint32_t* expert_ids, const uint32_t* expert_offsets,
                            const uint32_t* intra_expert_offsets, float* output, uint32_t num_channels,
                            uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts);
/* MXFP4 scales here are the +14-biased model-file scales, as in the kernels. SwiGLU in double. */
void gptoss_ref_f32_mf4w_moe_matmul_swiglu(const float* input, const uint32_t* expert_ids,
                                           const uint8_t* weight_blocks, const uint8_t* weight_scales,
                                           const gptoss_bf16* bias, size_t expert_stride, double* output,
                                           uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts,
                                           uint32_t num_cols, uint32_t num_rows, float swiglu_limit);
void gptoss_ref_f32_mf4w_moe_matmul(const float* input, const uint32_t* expert_ids, const uint8_t* weight_blocks,
                                    const uint8_t* weight_scales, const gptoss_bf16* bias, size_t expert_stride,
                                    double* output, uint32_t num_tokens, uint32_t num_active_experts,
                                    uint32_t num_experts, uint32_t num_cols, uint32_t num_rows);
void gptoss_ref_f32_mf4w_moe_dense_matmul_swiglu(const uint32_t* expert_offsets, const float* input,
                                                 const uint8_t* weight_blocks, const uint8_t* weight_scales,
                                                 const gptoss_bf16* bias, size_t expert_stride, double* output,
                                                 uint32_t num_tokens, uint32_t num_active_experts,
                                                 uint32_t num_experts, uint32_t num_cols, uint32_t num_rows,
                                                 float swiglu_limit);
void gptoss_ref_f32_mf4w_moe_dense_matmul(const uint32_t* expert_offsets, const float* input,
                                          const uint8_t* weight_blocks, const uint8_t* weight_scales,
                                          const gptoss_bf16* bias, size_t expert_stride, double* output,
                                          uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts,
                                          uint32_t num_cols, uint32_t num_rows);
void gptoss_ref_f32_gather_and_accumulate(const float* input, const uint32_t* expert_ids,
                                          const float* expert_scores, const uint32_t* expert_offsets,
                                          const uint32_t* intra_expert_offsets, const float* residual_old,
                                          double* residual, uint32_t num_channels, uint32_t num_tokens,
                                          uint32_t num_active_experts, uint32_t num_experts);
void gptoss_ref_f32_accumulate(const float* input, const float* expert_scores, const float* residual_old,
                               double* residual, uint32_t num_channels, uint32_t num_tokens,
                               uint32_t num_active_experts);
void gptoss_ref_f32_softmax(const float* logits, const uint32_t* argmax, double* prob, double* sum,
                            uint32_t num_tokens, uint32_t num_channels, float temperature);
/* The draw u (double, as in the kernel) and the double prefix sums decide the index;
 * also returns the target (u * sum) for the harness's boundary check. */
void gptoss_ref_f32_sample(const float* prob, const float* sum, uint32_t* prediction, uint32_t num_channels,
                           uint64_t rng_seed, uint64_t rng_offset, double* target_out);

#endif
