/* The kernel list: every kernel of include/gptoss/kernels.h, once, with its family (the
 * name its code has in src/kernels, src/cpu, src/cuda, src/reference and tests/ops) and
 * its parameters after `backend`, in the order of the public function.
 *
 * Higher-order X-macros: GPTOSS_KERNEL_LIST(KERNEL, FUSION) calls KERNEL(name, family)
 * for each kernel every backend implements (the 26 upstream ones, the sampler's penalties
 * and draw from logits, and the two varlen kernels of the batched engine) and FUSION(name,
 * family) for each fusion of them (a backend may implement it; otherwise the library runs
 * the kernels it fuses); GPTOSS_ARGS_<name>(ARG) calls ARG(type, parameter) for each
 * parameter of kernel <name>. From them come the kernel ids, the argument structs and the
 * generic entry (kernel-args.h), the public named functions, the argument checks and the
 * backends' entry tables (src/), and the test registry (tests/ops/).
 *
 * Adding a kernel: its entry here, its contract in kernels.h, its check in
 * src/kernels/<family>.c, its reference in src/reference/ (reference.h and <family>.c),
 * one entry per backend (src/cpu/<family>.c, src/cuda/<family>.cu) and its test module
 * tests/ops/<family>.c. */
#ifndef GPTOSS_KERNEL_LIST_H
#define GPTOSS_KERNEL_LIST_H

#define GPTOSS_KERNEL_LIST(KERNEL, FUSION)              \
    KERNEL(u32_fill_random, random)                     \
    KERNEL(f32_fill_random, random)                     \
    KERNEL(bf16_fill_random, random)                    \
    KERNEL(mf4_f32_convert, convert)                    \
    KERNEL(bf16_f32_embeddings, embeddings)             \
    KERNEL(f32_bf16w_rmsnorm, rmsnorm)                  \
    KERNEL(f32_bf16w_matmul, matmul)                    \
    KERNEL(f32_bf16w_matmul_add, matmul)                \
    KERNEL(f32_bf16w_dense_matmul_qkv, matmul)          \
    KERNEL(f32_bf16w_dense_matmul_attn_output, matmul)  \
    KERNEL(f32_bf16w_dense_matmul_mlp_gate, matmul)     \
    KERNEL(f32_bf16w_matmul_qkv, qkv)                   \
    KERNEL(f32_bf16w_matmul_qkv_varlen, qkv)            \
    KERNEL(f32_rope, rope)                              \
    KERNEL(f32_sdpa, sdpa)                              \
    KERNEL(f32_sdpa_varlen, sdpa)                       \
    KERNEL(f32_bf16w_unembedding, unembedding)          \
    KERNEL(f32_topk, topk)                              \
    KERNEL(expert_routing_metadata, routing)            \
    KERNEL(f32_scatter, routing)                        \
    KERNEL(f32_mf4w_moe_matmul_swiglu, moe)             \
    KERNEL(f32_mf4w_moe_matmul, moe)                    \
    KERNEL(f32_mf4w_moe_dense_matmul_swiglu, moe)       \
    KERNEL(f32_mf4w_moe_dense_matmul, moe)              \
    KERNEL(f32_gather_and_accumulate, routing)          \
    KERNEL(f32_accumulate, routing)                     \
    KERNEL(f32_softmax, sample)                         \
    KERNEL(f32_sample, sample)                          \
    KERNEL(f32_apply_penalties, sample)                 \
    KERNEL(f32_sample_logits, sample)                   \
    FUSION(f32_accumulate_bf16w_rmsnorm, rmsnorm)       \
    FUSION(f32_bf16w_rmsnorm_matmul_topk, topk)

#define GPTOSS_ARGS_u32_fill_random(ARG)  \
    ARG(uint32_t*, output)                \
    ARG(uint64_t, num_elements)           \
    ARG(uint64_t, seed)                   \
    ARG(uint64_t, offset)

#define GPTOSS_ARGS_f32_fill_random(ARG)  \
    ARG(float*, output)                   \
    ARG(uint64_t, num_elements)           \
    ARG(uint64_t, seed)                   \
    ARG(uint64_t, offset)                 \
    ARG(float, min)                       \
    ARG(float, max)

#define GPTOSS_ARGS_bf16_fill_random(ARG)  \
    ARG(gptoss_bf16*, output)              \
    ARG(uint64_t, num_elements)            \
    ARG(uint64_t, seed)                    \
    ARG(uint64_t, offset)                  \
    ARG(float, min)                        \
    ARG(float, max)

#define GPTOSS_ARGS_mf4_f32_convert(ARG)  \
    ARG(const uint8_t*, blocks)           \
    ARG(const uint8_t*, scales)           \
    ARG(float*, output)                   \
    ARG(uint64_t, num_elements)

#define GPTOSS_ARGS_bf16_f32_embeddings(ARG)  \
    ARG(const uint32_t*, token_ids)           \
    ARG(const gptoss_bf16*, weight)           \
    ARG(float*, output)                       \
    ARG(uint32_t, num_tokens)                 \
    ARG(uint32_t, num_channels)               \
    ARG(uint32_t, vocabulary_size)

#define GPTOSS_ARGS_f32_bf16w_rmsnorm(ARG)  \
    ARG(const float*, input)                \
    ARG(const gptoss_bf16*, weight)         \
    ARG(float*, output)                     \
    ARG(uint32_t, num_tokens)               \
    ARG(uint32_t, num_channels)             \
    ARG(float, epsilon)

#define GPTOSS_ARGS_f32_bf16w_matmul(ARG)  \
    ARG(const float*, input)               \
    ARG(const gptoss_bf16*, weight)        \
    ARG(const gptoss_bf16*, bias)          \
    ARG(float*, output)                    \
    ARG(uint32_t, num_tokens)              \
    ARG(uint32_t, num_cols)                \
    ARG(uint32_t, num_rows)

/* the other bf16-weight matmuls take the same parameters */
#define GPTOSS_ARGS_f32_bf16w_matmul_add GPTOSS_ARGS_f32_bf16w_matmul
#define GPTOSS_ARGS_f32_bf16w_dense_matmul_qkv GPTOSS_ARGS_f32_bf16w_matmul
#define GPTOSS_ARGS_f32_bf16w_dense_matmul_attn_output GPTOSS_ARGS_f32_bf16w_matmul
#define GPTOSS_ARGS_f32_bf16w_dense_matmul_mlp_gate GPTOSS_ARGS_f32_bf16w_matmul

#define GPTOSS_ARGS_f32_bf16w_matmul_qkv(ARG)  \
    ARG(const float*, input)                   \
    ARG(const gptoss_bf16*, weight)            \
    ARG(const gptoss_bf16*, bias)              \
    ARG(float*, output)                        \
    ARG(float*, kv_cache)                      \
    ARG(uint32_t, num_tokens)                  \
    ARG(uint32_t, num_cols)                    \
    ARG(uint32_t, num_q_heads)                 \
    ARG(uint32_t, num_kv_heads)                \
    ARG(uint32_t, head_dim)                    \
    ARG(uint32_t, token_offset)                \
    ARG(uint32_t, max_tokens)                  \
    ARG(float, rope_base)                      \
    ARG(float, interpolation_scale)            \
    ARG(float, yarn_offset)                    \
    ARG(float, yarn_scale)                     \
    ARG(float, yarn_multiplier)

/* the varlen variant: per-row positions and KV slots through block tables */
#define GPTOSS_ARGS_f32_bf16w_matmul_qkv_varlen(ARG)  \
    ARG(const float*, input)                          \
    ARG(const gptoss_bf16*, weight)                   \
    ARG(const gptoss_bf16*, bias)                     \
    ARG(float*, output)                               \
    ARG(float*, kv_cache)                             \
    ARG(const uint32_t*, positions)                   \
    ARG(const uint32_t*, seq_ids)                     \
    ARG(const uint32_t*, block_tables)                \
    ARG(uint32_t, num_tokens)                         \
    ARG(uint32_t, num_cols)                           \
    ARG(uint32_t, num_q_heads)                        \
    ARG(uint32_t, num_kv_heads)                       \
    ARG(uint32_t, head_dim)                           \
    ARG(uint64_t, kv_stride)                          \
    ARG(uint32_t, block_size)                         \
    ARG(uint32_t, table_stride)                       \
    ARG(uint32_t, num_seqs)                           \
    ARG(float, rope_base)                             \
    ARG(float, interpolation_scale)                   \
    ARG(float, yarn_offset)                           \
    ARG(float, yarn_scale)                            \
    ARG(float, yarn_multiplier)

#define GPTOSS_ARGS_f32_rope(ARG)    \
    ARG(float*, activations)         \
    ARG(float, rope_base)            \
    ARG(float, interpolation_scale)  \
    ARG(float, yarn_offset)          \
    ARG(float, yarn_scale)           \
    ARG(float, yarn_multiplier)      \
    ARG(uint32_t, num_tokens)        \
    ARG(uint32_t, num_q_heads)       \
    ARG(uint32_t, num_kv_heads)      \
    ARG(uint32_t, head_dim)          \
    ARG(uint32_t, token_offset)

#define GPTOSS_ARGS_f32_sdpa(ARG)   \
    ARG(const float*, q)            \
    ARG(const float*, kv)           \
    ARG(const gptoss_bf16*, sinks)  \
    ARG(float*, output)             \
    ARG(uint32_t, window)           \
    ARG(uint64_t, kv_stride)        \
    ARG(uint32_t, num_q_tokens)     \
    ARG(uint32_t, num_kv_tokens)    \
    ARG(uint32_t, num_q_heads)      \
    ARG(uint32_t, num_kv_heads)     \
    ARG(uint32_t, head_dim)         \
    ARG(float, scale)

#define GPTOSS_ARGS_f32_sdpa_varlen(ARG)  \
    ARG(const float*, q)                  \
    ARG(const float*, kv)                 \
    ARG(const gptoss_bf16*, sinks)        \
    ARG(float*, output)                   \
    ARG(const uint32_t*, positions)       \
    ARG(const uint32_t*, seq_ids)         \
    ARG(const uint32_t*, block_tables)    \
    ARG(uint32_t, window)                 \
    ARG(uint64_t, kv_stride)              \
    ARG(uint32_t, block_size)             \
    ARG(uint32_t, table_stride)           \
    ARG(uint32_t, num_q_tokens)           \
    ARG(uint32_t, num_seqs)               \
    ARG(uint32_t, num_q_heads)            \
    ARG(uint32_t, num_kv_heads)           \
    ARG(uint32_t, head_dim)               \
    ARG(float, scale)

#define GPTOSS_ARGS_f32_bf16w_unembedding(ARG)  \
    ARG(const float*, input)                    \
    ARG(const gptoss_bf16*, weight)             \
    ARG(float*, logits)                         \
    ARG(uint32_t*, argmax)                      \
    ARG(uint32_t, num_tokens)                   \
    ARG(uint32_t, num_cols)                     \
    ARG(uint32_t, num_rows)

#define GPTOSS_ARGS_f32_topk(ARG)      \
    ARG(const float*, scores)          \
    ARG(uint32_t*, expert_ids)         \
    ARG(float*, expert_scores)         \
    ARG(uint32_t, num_tokens)          \
    ARG(uint32_t, num_experts)         \
    ARG(uint32_t, num_active_experts)

#define GPTOSS_ARGS_expert_routing_metadata(ARG)  \
    ARG(const uint32_t*, expert_ids)              \
    ARG(uint32_t*, expert_offsets)                \
    ARG(uint32_t*, intra_expert_offsets)          \
    ARG(uint32_t, num_pairs)                      \
    ARG(uint32_t, num_experts)

#define GPTOSS_ARGS_f32_scatter(ARG)            \
    ARG(const float*, input)                    \
    ARG(const uint32_t*, expert_ids)            \
    ARG(const uint32_t*, expert_offsets)        \
    ARG(const uint32_t*, intra_expert_offsets)  \
    ARG(float*, output)                         \
    ARG(uint32_t, num_channels)                 \
    ARG(uint32_t, num_tokens)                   \
    ARG(uint32_t, num_active_experts)           \
    ARG(uint32_t, num_experts)

#define GPTOSS_ARGS_f32_mf4w_moe_matmul(ARG)  \
    ARG(const float*, input)                  \
    ARG(const uint32_t*, expert_ids)          \
    ARG(const uint8_t*, weight_blocks)        \
    ARG(const uint8_t*, weight_scales)        \
    ARG(const gptoss_bf16*, bias)             \
    ARG(size_t, expert_stride)                \
    ARG(float*, output)                       \
    ARG(uint32_t, num_tokens)                 \
    ARG(uint32_t, num_active_experts)         \
    ARG(uint32_t, num_experts)                \
    ARG(uint32_t, num_cols)                   \
    ARG(uint32_t, num_rows)

#define GPTOSS_ARGS_f32_mf4w_moe_dense_matmul(ARG)  \
    ARG(const uint32_t*, expert_offsets)            \
    ARG(const float*, input)                        \
    ARG(const uint8_t*, weight_blocks)              \
    ARG(const uint8_t*, weight_scales)              \
    ARG(const gptoss_bf16*, bias)                   \
    ARG(size_t, expert_stride)                      \
    ARG(float*, output)                             \
    ARG(uint32_t, num_tokens)                       \
    ARG(uint32_t, num_active_experts)               \
    ARG(uint32_t, num_experts)                      \
    ARG(uint32_t, num_cols)                         \
    ARG(uint32_t, num_rows)

/* the swiglu variants add the clamp limit last */
#define GPTOSS_ARGS_f32_mf4w_moe_matmul_swiglu(ARG) GPTOSS_ARGS_f32_mf4w_moe_matmul(ARG) ARG(float, swiglu_limit)
#define GPTOSS_ARGS_f32_mf4w_moe_dense_matmul_swiglu(ARG) \
    GPTOSS_ARGS_f32_mf4w_moe_dense_matmul(ARG) ARG(float, swiglu_limit)

#define GPTOSS_ARGS_f32_gather_and_accumulate(ARG)  \
    ARG(const float*, input)                        \
    ARG(const uint32_t*, expert_ids)                \
    ARG(const float*, expert_scores)                \
    ARG(const uint32_t*, expert_offsets)            \
    ARG(const uint32_t*, intra_expert_offsets)      \
    ARG(float*, residual)                           \
    ARG(uint32_t, num_channels)                     \
    ARG(uint32_t, num_tokens)                       \
    ARG(uint32_t, num_active_experts)               \
    ARG(uint32_t, num_experts)

#define GPTOSS_ARGS_f32_accumulate(ARG)  \
    ARG(const float*, input)             \
    ARG(const float*, expert_scores)     \
    ARG(float*, residual)                \
    ARG(uint32_t, num_channels)          \
    ARG(uint32_t, num_tokens)            \
    ARG(uint32_t, num_active_experts)

#define GPTOSS_ARGS_f32_softmax(ARG)  \
    ARG(const float*, logits)         \
    ARG(const uint32_t*, argmax)      \
    ARG(float*, prob)                 \
    ARG(float*, sum)                  \
    ARG(uint32_t, num_tokens)         \
    ARG(uint32_t, num_channels)       \
    ARG(float, temperature)

#define GPTOSS_ARGS_f32_sample(ARG)  \
    ARG(const float*, prob)          \
    ARG(const float*, sum)           \
    ARG(uint32_t*, prediction)       \
    ARG(uint32_t, num_channels)      \
    ARG(uint64_t, rng_seed)          \
    ARG(uint64_t, rng_offset)

#define GPTOSS_ARGS_f32_apply_penalties(ARG)  \
    ARG(const float*, logits)                 \
    ARG(const uint32_t*, counts)              \
    ARG(float*, output)                       \
    ARG(uint32_t, num_channels)               \
    ARG(float, presence_penalty)              \
    ARG(float, frequency_penalty)

#define GPTOSS_ARGS_f32_sample_logits(ARG)  \
    ARG(const float*, logits)               \
    ARG(uint32_t*, prediction)              \
    ARG(uint32_t, num_channels)             \
    ARG(float, temperature)                 \
    ARG(uint32_t, top_k)                    \
    ARG(float, top_p)                       \
    ARG(uint64_t, rng_seed)                 \
    ARG(uint64_t, rng_offset)

#define GPTOSS_ARGS_f32_accumulate_bf16w_rmsnorm(ARG)  \
    ARG(const float*, input)                           \
    ARG(const float*, expert_scores)                   \
    ARG(float*, residual)                              \
    ARG(const gptoss_bf16*, weight)                    \
    ARG(float*, output)                                \
    ARG(uint32_t, num_channels)                        \
    ARG(uint32_t, num_tokens)                          \
    ARG(uint32_t, num_active_experts)                  \
    ARG(float, epsilon)

#define GPTOSS_ARGS_f32_bf16w_rmsnorm_matmul_topk(ARG)  \
    ARG(const float*, input)                            \
    ARG(const gptoss_bf16*, norm_weight)                \
    ARG(float*, output)                                 \
    ARG(const gptoss_bf16*, router_weight)              \
    ARG(const gptoss_bf16*, router_bias)                \
    ARG(float*, scores)                                 \
    ARG(uint32_t*, expert_ids)                          \
    ARG(float*, expert_scores)                          \
    ARG(uint32_t, num_tokens)                           \
    ARG(uint32_t, num_channels)                         \
    ARG(uint32_t, num_experts)                          \
    ARG(uint32_t, num_active_experts)                   \
    ARG(float, epsilon)

#endif /* GPTOSS_KERNEL_LIST_H */
