/* The float64 oracle: one plain, scalar function per kernel, written for reading, used by
 * the tests and the benchmarks (never by libgptoss).
 *
 * Conventions: the kernel's arguments struct (kernel-args.h; no backend, no checks:
 * arguments are assumed valid); every floating-point OUTPUT is double (computed in double
 * from the f32/bf16 inputs, no intermediate rounding to f32) and goes to the double
 * buffers after `args`; for an in/out buffer the kernel's buffer in `args` holds the old
 * value (read only). Integer outputs and the exact kernels (random fill, mf4 convert,
 * embeddings, routing, scatter) write the kernel's own output type where `args` points. */
#ifndef GPTOSS_REFERENCE_H
#define GPTOSS_REFERENCE_H

#include <stddef.h>
#include <stdint.h>

#include <gptoss/kernel-args.h>

/* Exact kernels: the kernel's own output type, written where `args` points. */
void gptoss_ref_u32_fill_random(const struct gptoss_u32_fill_random_args* args);
/* exact: the kernel's f32 formula (one fmaf) */
void gptoss_ref_f32_fill_random(const struct gptoss_f32_fill_random_args* args);
void gptoss_ref_bf16_fill_random(const struct gptoss_bf16_fill_random_args* args);
/* exact: fp4 * 2^(s-127) via ldexp */
void gptoss_ref_mf4_f32_convert(const struct gptoss_mf4_f32_convert_args* args);
void gptoss_ref_bf16_f32_embeddings(const struct gptoss_bf16_f32_embeddings_args* args);

void gptoss_ref_f32_bf16w_rmsnorm(const struct gptoss_f32_bf16w_rmsnorm_args* args, double* output);
/* residual = old residual + sum_j input[j][t] * scores[t][j] (as gptoss_ref_f32_accumulate),
 * output = RMSNorm of that residual, all in double (the residual is not rounded to f32
 * before the norm). */
void gptoss_ref_f32_accumulate_bf16w_rmsnorm(const struct gptoss_f32_accumulate_bf16w_rmsnorm_args* args,
                                             double* residual, double* output);

/* out = x W^T + b; bias may be NULL (also the reference of the "dense" matmul_qkv and
 * mlp_gate kernels, which compute the same function) */
void gptoss_ref_f32_bf16w_matmul(const struct gptoss_f32_bf16w_matmul_args* args, double* output);
/* out = old + (x W^T + b) (also of the dense attn_output kernel) */
void gptoss_ref_f32_bf16w_matmul_add(const struct gptoss_f32_bf16w_matmul_add_args* args, double* output);

/* output double[T][rows] (rotated Q, rotated K, V); kv_cache double[Hkv][max_tokens][2][D]:
 * only the slots of positions token_offset..+T-1 are written (the caller compares those
 * and checks the rest of the kernel's cache is untouched). RoPE angles in double. */
void gptoss_ref_f32_bf16w_matmul_qkv(const struct gptoss_f32_bf16w_matmul_qkv_args* args, double* output,
                                     double* kv_cache);
/* output double[T][rows] as gptoss_ref_f32_bf16w_matmul_qkv with row t at positions[t];
 * kv_cache double[Hkv][kv_stride]: only the slots the rows write are set. */
void gptoss_ref_f32_bf16w_matmul_qkv_varlen(const struct gptoss_f32_bf16w_matmul_qkv_varlen_args* args,
                                            double* output, double* kv_cache);
void gptoss_ref_f32_rope(const struct gptoss_f32_rope_args* args, double* activations);
/* Rotates the head_dim/2 adjacent pairs of one head (double[head_dim]) at position pos,
 * in place, angles in double (shared by the rope and qkv references). */
void gptoss_ref_rope_rotate_head(double* head, uint32_t head_dim, uint32_t pos, float rope_base,
                                 float interpolation_scale, float yarn_offset, float yarn_scale,
                                 float yarn_multiplier);
/* output double[num_q_tokens][num_q_heads*head_dim] */
void gptoss_ref_f32_sdpa(const struct gptoss_f32_sdpa_args* args, double* output);
/* output double[num_q_tokens][num_q_heads*head_dim]: each row's keys gathered through its
 * block table into a contiguous cache, then gptoss_ref_f32_sdpa of that one query */
void gptoss_ref_f32_sdpa_varlen(const struct gptoss_f32_sdpa_varlen_args* args, double* output);
/* argmax over the double logits (lowest index on ties), written to args->argmax */
void gptoss_ref_f32_bf16w_unembedding(const struct gptoss_f32_bf16w_unembedding_args* args, double* logits);

/* The fused MoE gate: output = RMSNorm(input) in double, scores = output . W^T + b in
 * double, then gptoss_ref_f32_topk of the scores rounded to f32 (ids to args->expert_ids).
 * router_bias may be NULL. */
void gptoss_ref_f32_bf16w_rmsnorm_matmul_topk(const struct gptoss_f32_bf16w_rmsnorm_matmul_topk_args* args,
                                              double* output, double* scores, double* expert_scores);
/* ids to args->expert_ids */
void gptoss_ref_f32_topk(const struct gptoss_f32_topk_args* args, double* expert_scores);
void gptoss_ref_expert_routing_metadata(const struct gptoss_expert_routing_metadata_args* args);
void gptoss_ref_f32_scatter(const struct gptoss_f32_scatter_args* args);
/* MXFP4 scales here are the +14-biased model-file scales, as in the kernels. SwiGLU in double. */
void gptoss_ref_f32_mf4w_moe_matmul_swiglu(const struct gptoss_f32_mf4w_moe_matmul_swiglu_args* args, double* output);
void gptoss_ref_f32_mf4w_moe_matmul(const struct gptoss_f32_mf4w_moe_matmul_args* args, double* output);
void gptoss_ref_f32_mf4w_moe_dense_matmul_swiglu(const struct gptoss_f32_mf4w_moe_dense_matmul_swiglu_args* args,
                                                 double* output);
void gptoss_ref_f32_mf4w_moe_dense_matmul(const struct gptoss_f32_mf4w_moe_dense_matmul_args* args, double* output);
void gptoss_ref_f32_gather_and_accumulate(const struct gptoss_f32_gather_and_accumulate_args* args, double* residual);
void gptoss_ref_f32_accumulate(const struct gptoss_f32_accumulate_args* args, double* residual);
void gptoss_ref_f32_softmax(const struct gptoss_f32_softmax_args* args, double* prob, double* sum);
/* The draw u (double, as in the kernel) and the double prefix sums decide the index
 * (written to args->prediction); also returns the target (u * sum) for the harness's
 * boundary check. */
void gptoss_ref_f32_sample(const struct gptoss_f32_sample_args* args, double* target_out);
/* out = logits - (presence + frequency * count) in double where count != 0, else logits */
void gptoss_ref_f32_apply_penalties(const struct gptoss_f32_apply_penalties_args* args, double* output);
/* The draw from logits, literally and in double (the engine's host sampler): the
 * candidates in their order (order u32[num_channels], the first *n_out: after top-k),
 * p_i = exp(z_i) (prob), the prefix sums C_1..C_n added left to right (prefix), K
 * (*keep_out: top_p C_n, in double), u (*u_out, in [0, 1)) and the token these double sums
 * give (args->prediction). Greedy cases (all NaN, temperature 0, a maximum that is not
 * finite): *n_out = 0 and the token. */
void gptoss_ref_f32_sample_logits(const struct gptoss_f32_sample_logits_args* args, uint32_t* order, double* prob,
                                  double* prefix, uint32_t* n_out, uint32_t* keep_out, double* u_out);

#endif
