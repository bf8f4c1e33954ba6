/* The op catalogue (see catalogue.h): the case table, input generation, launch, and the
 * byte / flop counts used by the harness's --table mode and by bench/bench.c. */
#include "catalogue.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include "common/math.h"
#include "reference/reference.h"

#define Q TC_QUICK
#define B TC_BENCH

/* gpt-oss shapes (KERNELS.md 7.1): H = 2880, 64 Q + 8 KV heads of 64 (qkv 5120), attention
 * output 4096 -> 2880, router 2880 -> 32 (20b) / 128 (120b), MoE 4 active, I = 2880,
 * vocabulary 200014 (model file) / 201088 (checkpoint), window 128 or full (UINT32_MAX),
 * RoPE theta 150000 with YaRN. Prefill = 512 tokens unless a comment says why not. */
#define FULL UINT32_MAX
#define THETA 150000.0f

const struct tc_case tc_catalogue[] = {
    /* ---- random fill: exact; sizes 1, 3, 19, 130, 2881, and a counter offset that
     * crosses 2^32 (the offset is u64) ---- */
    {"u32_fill_random_1", TK_U32_FILL_RANDOM, .t = 1, .flags = Q},
    {"u32_fill_random_3", TK_U32_FILL_RANDOM, .t = 3, .off = 7, .flags = Q},
    {"u32_fill_random_19", TK_U32_FILL_RANDOM, .t = 19, .flags = Q},
    {"u32_fill_random_130", TK_U32_FILL_RANDOM, .t = 130, .off = 12345678901234567890ull},
    {"u32_fill_random_2881_offset_crosses_2p32", TK_U32_FILL_RANDOM, .t = 2881, .off = 0xFFFFFC00ull, .flags = Q},
    {"u32_fill_random_1M", TK_U32_FILL_RANDOM, .t = 1u << 20, .off = 1ull << 40},
    {"f32_fill_random_1", TK_F32_FILL_RANDOM, .t = 1, .f = -1.0f, .f2 = 1.5f, .flags = Q},
    {"f32_fill_random_19_upstream_range", TK_F32_FILL_RANDOM, .t = 19, .f = -1.0f, .f2 = 1.5f, .flags = Q},
    {"f32_fill_random_130_positive_range", TK_F32_FILL_RANDOM, .t = 130, .f = 0.25f, .f2 = 0.75f},
    {"f32_fill_random_2881_wide_range", TK_F32_FILL_RANDOM, .t = 2881, .off = 0xFFFFFF00ull, .f = -1e30f, .f2 = 1e30f},
    {"f32_fill_random_1M", TK_F32_FILL_RANDOM, .t = 1u << 20, .off = 99, .f = -1.0f, .f2 = 1.0f},
    {"bf16_fill_random_1", TK_BF16_FILL_RANDOM, .t = 1, .f = -1.0f, .f2 = 1.0f, .flags = Q},
    {"bf16_fill_random_3", TK_BF16_FILL_RANDOM, .t = 3, .f = -1.0f, .f2 = 1.0f},
    {"bf16_fill_random_19", TK_BF16_FILL_RANDOM, .t = 19, .f = -3.0f, .f2 = 0.5f, .flags = Q},
    {"bf16_fill_random_2881_offset_crosses_2p32", TK_BF16_FILL_RANDOM, .t = 2881, .off = 0xFFFFFF00ull, .f = -1.0f, .f2 = 1.0f},
    {"bf16_fill_random_1M", TK_BF16_FILL_RANDOM, .t = 1u << 20, .f = -0.05f, .f2 = 0.05f},

    /* ---- mf4 convert: exact; raw scales 123..128 except the all-scales case ---- */
    {"mf4_convert_1block", TK_MF4_F32_CONVERT, .t = 32, .flags = Q},
    {"mf4_convert_3blocks", TK_MF4_F32_CONVERT, .t = 3 * 32, .flags = Q},
    {"mf4_convert_19blocks", TK_MF4_F32_CONVERT, .t = 19 * 32},
    {"mf4_convert_130blocks", TK_MF4_F32_CONVERT, .t = 130 * 32},
    {"mf4_convert_2881blocks", TK_MF4_F32_CONVERT, .t = 2881 * 32},
    {"mf4_convert_20b_expert_mlp1", TK_MF4_F32_CONVERT, .t = 5760 * 2880},
    {"mf4_convert_all_scales_0_255_inf_nan", TK_MF4_F32_CONVERT, .t = 256 * 32 * 4, .flags = Q | TC_ALL_SCALES},

    /* ---- embeddings: exact ---- */
    {"embeddings_1tok_1ch_vocab1", TK_EMBEDDINGS, .t = 1, .c = 1, .r = 1, .flags = Q},
    {"embeddings_odd_3tok_19ch_vocab130", TK_EMBEDDINGS, .t = 3, .c = 19, .r = 130, .flags = Q},
    {"embeddings_seed_vocab1024_dim256_16tok", TK_EMBEDDINGS, .t = 16, .c = 256, .r = 1024, .flags = Q},
    {"embeddings_odd_130tok_2881ch_vocab19", TK_EMBEDDINGS, .t = 130, .c = 2881, .r = 19},
    {"embeddings_20b_decode_1tok_vocab200014", TK_EMBEDDINGS, .t = 1, .c = 2880, .r = 200014},
    {"embeddings_20b_prefill512_vocab201088", TK_EMBEDDINGS, .t = 512, .c = 2880, .r = 201088},

    /* ---- rmsnorm ---- */
    {"rmsnorm_1tok_1ch", TK_RMSNORM, .t = 1, .c = 1, .f = 1e-5f, .flags = Q},
    {"rmsnorm_odd_3tok_19ch", TK_RMSNORM, .t = 3, .c = 19, .f = 1e-5f, .flags = Q},
    {"rmsnorm_odd_19tok_130ch", TK_RMSNORM, .t = 19, .c = 130, .f = 1e-5f},
    {"rmsnorm_odd_3tok_2881ch", TK_RMSNORM, .t = 3, .c = 2881, .f = 1e-5f, .flags = Q},
    {"rmsnorm_seed_4x4096", TK_RMSNORM, .t = 4, .c = 4096, .f = 1e-5f, .flags = Q},
    {"rmsnorm_epsilon0_2x2880", TK_RMSNORM, .t = 2, .c = 2880, .f = 0.0f},
    {"rmsnorm_inplace_3x2880", TK_RMSNORM, .t = 3, .c = 2880, .f = 1e-5f, .flags = Q | TC_INPLACE},
    {"rmsnorm_20b_decode_1x2880", TK_RMSNORM, .t = 1, .c = 2880, .f = 1e-5f},
    /* CUDA register-resident rows: 1, 2 float4 per thread; 8192 takes the looping kernel */
    {"rmsnorm_vec1_2x1000", TK_RMSNORM, .t = 2, .c = 1000, .f = 1e-5f},
    {"rmsnorm_vec2_inplace_3x2000", TK_RMSNORM, .t = 3, .c = 2000, .f = 1e-5f, .flags = TC_INPLACE},
    {"rmsnorm_wide_2x8192", TK_RMSNORM, .t = 2, .c = 8192, .f = 1e-5f},
    {"rmsnorm_20b_prefill_512x2880", TK_RMSNORM, .t = 512, .c = 2880, .f = 1e-5f},

    /* ---- bf16 matmul (decode kernel; any size) ---- */
    {"matmul_1tok_1x1", TK_MATMUL, .t = 1, .c = 1, .r = 1, .flags = Q},
    {"matmul_odd_cols_3", TK_MATMUL, .t = 2, .c = 3, .r = 5, .flags = Q},
    {"matmul_odd_cols_19", TK_MATMUL, .t = 1, .c = 19, .r = 19, .flags = Q},
    {"matmul_odd_cols_130", TK_MATMUL, .t = 3, .c = 130, .r = 7},
    {"matmul_odd_cols_2881", TK_MATMUL, .t = 3, .c = 2881, .r = 19, .flags = Q},
    {"matmul_odd_rows_2881", TK_MATMUL, .t = 2, .c = 64, .r = 2881},
    {"matmul_odd_tokens_19", TK_MATMUL, .t = 19, .c = 130, .r = 130, .flags = Q},
    {"matmul_no_bias", TK_MATMUL, .t = 3, .c = 256, .r = 19, .flags = Q | TC_NO_BIAS},
    {"matmul_seed_batch2_rows128_cols1024", TK_MATMUL, .t = 2, .c = 128, .r = 1024, .flags = Q},
    {"matmul_20b_qkv_decode_2880x5120", TK_MATMUL, .t = 1, .c = 2880, .r = 5120},
    {"matmul_20b_router_decode_2880x32", TK_MATMUL, .t = 1, .c = 2880, .r = 32, .flags = B},
    {"matmul_120b_router_decode_2880x128", TK_MATMUL, .t = 1, .c = 2880, .r = 128, .flags = B},
    {"matmul_20b_router_batch63_2880x32", TK_MATMUL, .t = 63, .c = 2880, .r = 32},
    {"matmul_20b_router_prefill512_2880x32", TK_MATMUL, .t = 512, .c = 2880, .r = 32},
    {"matmul_120b_router_prefill512_2880x128", TK_MATMUL, .t = 512, .c = 2880, .r = 128},

    {"matmul_add_1tok_1x1", TK_MATMUL_ADD, .t = 1, .c = 1, .r = 1, .flags = Q},
    {"matmul_add_odd_3tok_2881x19", TK_MATMUL_ADD, .t = 3, .c = 2881, .r = 19, .flags = Q},
    {"matmul_add_odd_19tok_130x130", TK_MATMUL_ADD, .t = 19, .c = 130, .r = 130},
    {"matmul_add_no_bias", TK_MATMUL_ADD, .t = 2, .c = 64, .r = 3, .flags = Q | TC_NO_BIAS},
    {"matmul_add_seed_batch2_rows128_cols1024", TK_MATMUL_ADD, .t = 2, .c = 128, .r = 1024},
    {"matmul_add_20b_attn_out_decode_4096x2880", TK_MATMUL_ADD, .t = 1, .c = 4096, .r = 2880, .flags = B},
    {"matmul_add_few_rows_1tok_1024x200", TK_MATMUL_ADD, .t = 1, .c = 1024, .r = 200}, /* CUDA split-K GEMV */
    /* 512 x 4096 x 2880: the reference checks 16 random tokens (first and last included). */
    {"matmul_add_20b_attn_out_prefill512_4096x2880", TK_MATMUL_ADD, .t = 512, .c = 4096, .r = 2880, .check = 16},

    /* ---- dense (prefill) bf16 matmuls: the same functions, other tilings ---- */
    {"dense_qkv_1tok_1x1", TK_DENSE_MATMUL_QKV, .t = 1, .c = 1, .r = 1, .flags = Q},
    {"dense_qkv_odd_19tok_2881x130", TK_DENSE_MATMUL_QKV, .t = 19, .c = 2881, .r = 130, .flags = Q},
    {"dense_qkv_odd_130tok_19x3", TK_DENSE_MATMUL_QKV, .t = 130, .c = 19, .r = 3},
    {"dense_qkv_20b_decode_2880x5120", TK_DENSE_MATMUL_QKV, .t = 1, .c = 2880, .r = 5120},
    /* 512 x 2880 x 5120: 16 random tokens checked against the reference. */
    {"dense_qkv_20b_prefill512_2880x5120", TK_DENSE_MATMUL_QKV, .t = 512, .c = 2880, .r = 5120, .check = 16, .flags = B},
    /* Benchmark only: the 2,048-token prefill. */
    {"dense_qkv_20b_prefill2048_2880x5120", TK_DENSE_MATMUL_QKV, .t = 2048, .c = 2880, .r = 5120, .flags = B | TC_BENCH_ONLY},
    {"dense_attn_out_1tok_1x1", TK_DENSE_MATMUL_ATTN_OUTPUT, .t = 1, .c = 1, .r = 1, .flags = Q},
    {"dense_attn_out_odd_3tok_130x2881", TK_DENSE_MATMUL_ATTN_OUTPUT, .t = 3, .c = 130, .r = 2881, .flags = Q},
    {"dense_attn_out_odd_65tok_19x19", TK_DENSE_MATMUL_ATTN_OUTPUT, .t = 65, .c = 19, .r = 19},
    {"dense_attn_out_20b_decode_4096x2880", TK_DENSE_MATMUL_ATTN_OUTPUT, .t = 1, .c = 4096, .r = 2880},
    {"dense_attn_out_20b_prefill512_4096x2880", TK_DENSE_MATMUL_ATTN_OUTPUT, .t = 512, .c = 4096, .r = 2880, .check = 16},
    {"dense_mlp_gate_1tok_1x1", TK_DENSE_MATMUL_MLP_GATE, .t = 1, .c = 1, .r = 1, .flags = Q},
    {"dense_mlp_gate_odd_19tok_2881x3", TK_DENSE_MATMUL_MLP_GATE, .t = 19, .c = 2881, .r = 3, .flags = Q},
    {"dense_mlp_gate_no_bias_odd_130x19", TK_DENSE_MATMUL_MLP_GATE, .t = 3, .c = 130, .r = 19, .flags = TC_NO_BIAS},
    {"dense_mlp_gate_20b_decode_2880x32", TK_DENSE_MATMUL_MLP_GATE, .t = 1, .c = 2880, .r = 32},
    {"dense_mlp_gate_20b_prefill512_2880x32", TK_DENSE_MATMUL_MLP_GATE, .t = 512, .c = 2880, .r = 32},
    {"dense_mlp_gate_120b_prefill512_2880x128", TK_DENSE_MATMUL_MLP_GATE, .t = 512, .c = 2880, .r = 128},

    /* ---- fused QKV + RoPE + KV-cache write ---- */
    {"qkv_1tok_pos0_1q1kv_hd2_cols1", TK_MATMUL_QKV, .t = 1, .c = 1, .hq = 1, .hkv = 1, .d = 2, .off = 0, .maxt = 1, .f = THETA, .flags = Q},
    {"qkv_odd_3tok_cols19_hd2_3q1kv", TK_MATMUL_QKV, .t = 3, .c = 19, .hq = 3, .hkv = 1, .d = 2, .off = 5, .maxt = 19, .f = THETA, .flags = Q},
    {"qkv_gqa4_hd32_cols130", TK_MATMUL_QKV, .t = 3, .c = 130, .hq = 8, .hkv = 2, .d = 32, .off = 17, .maxt = 130, .f = THETA, .flags = Q},
    {"qkv_hd128_gqa4_cols2881", TK_MATMUL_QKV, .t = 2, .c = 2881, .hq = 4, .hkv = 1, .d = 128, .off = 100, .maxt = 200, .f = THETA},
    {"qkv_yarn_neutral_base50000", TK_MATMUL_QKV, .t = 2, .c = 128, .hq = 8, .hkv = 1, .d = 64, .off = 7, .maxt = 16, .f = 50000.0f, .flags = Q | TC_YARN_NEUTRAL},
    {"qkv_no_bias", TK_MATMUL_QKV, .t = 2, .c = 64, .hq = 2, .hkv = 1, .d = 64, .off = 3, .maxt = 8, .f = THETA, .flags = TC_NO_BIAS},
    {"qkv_pos_131070_context_end", TK_MATMUL_QKV, .t = 2, .c = 64, .hq = 1, .hkv = 1, .d = 64, .off = 131070, .maxt = 131072, .f = THETA},
    {"qkv_20b_decode_pos4096", TK_MATMUL_QKV, .t = 1, .c = 2880, .hq = 64, .hkv = 8, .d = 64, .off = 4096, .maxt = 8192, .f = THETA, .flags = B},
    {"qkv_20b_prefill512_pos0", TK_MATMUL_QKV, .t = 512, .c = 2880, .hq = 64, .hkv = 8, .d = 64, .off = 0, .maxt = 512, .f = THETA, .check = 16, .flags = B},
    {"qkv_20b_prefill512_pos3584", TK_MATMUL_QKV, .t = 512, .c = 2880, .hq = 64, .hkv = 8, .d = 64, .off = 3584, .maxt = 4608, .f = THETA, .check = 8},

    /* ---- RoPE (in place, no KV write) ---- */
    {"rope_1tok_pos0_hd2", TK_ROPE, .t = 1, .hq = 1, .hkv = 1, .d = 2, .off = 0, .f = THETA, .flags = Q},
    {"rope_odd_3tok_3q1kv_hd2", TK_ROPE, .t = 3, .hq = 3, .hkv = 1, .d = 2, .off = 19, .f = THETA, .flags = Q},
    {"rope_gqa4_hd32", TK_ROPE, .t = 19, .hq = 8, .hkv = 2, .d = 32, .off = 130, .f = THETA, .flags = Q},
    {"rope_hd128", TK_ROPE, .t = 3, .hq = 4, .hkv = 1, .d = 128, .off = 2881, .f = THETA},
    {"rope_upstream_test_yarn_neutral_base50000_pos7", TK_ROPE, .t = 2, .hq = 6, .hkv = 1, .d = 64, .off = 7, .f = 50000.0f, .flags = Q | TC_YARN_NEUTRAL},
    {"rope_pos_131071", TK_ROPE, .t = 1, .hq = 64, .hkv = 8, .d = 64, .off = 131071, .f = THETA},
    {"rope_20b_decode_pos4096", TK_ROPE, .t = 1, .hq = 64, .hkv = 8, .d = 64, .off = 4096, .f = THETA},
    {"rope_20b_prefill512_pos0", TK_ROPE, .t = 512, .hq = 64, .hkv = 8, .d = 64, .off = 0, .f = THETA},

    /* ---- SDPA with sinks; scale 1/sqrt(head_dim) unless named ---- */
    /* The seed README's example (8 kv heads x 8, head_dim 64, 3 history + 2 query tokens,
     * window 5, sinks -1e4) compared with a float64 port of the README's own sdpa()
     * formula at assert_close(atol=rtol=1e-3), 1000 fresh draws: see harness.c. */
    {"sdpa_seed_readme_example_x1000", TK_SDPA, .t = 2, .off = 3, .hq = 64, .hkv = 8, .d = 64, .window = 5, .maxt = 5, .f = 0.125f, .flags = Q | TC_SEED_README},
    {"sdpa_seed_readme_shape", TK_SDPA, .t = 2, .off = 3, .hq = 64, .hkv = 8, .d = 64, .window = 5, .maxt = 5, .f = 0.125f, .flags = Q},
    {"sdpa_1tok_no_history", TK_SDPA, .t = 1, .off = 0, .hq = 1, .hkv = 1, .d = 4, .window = FULL, .f = 0.5f, .flags = Q},
    {"sdpa_window1_self_only", TK_SDPA, .t = 3, .off = 19, .hq = 8, .hkv = 1, .d = 64, .window = 1, .f = 0.125f, .flags = Q},
    {"sdpa_odd_3q_19hist_window3_mqa7", TK_SDPA, .t = 3, .off = 19, .hq = 7, .hkv = 1, .d = 4, .window = 3, .f = 0.5f, .flags = Q},
    {"sdpa_gqa4_hd32_130hist", TK_SDPA, .t = 3, .off = 130, .hq = 8, .hkv = 2, .d = 32, .window = FULL, .f = 0.17677669f, .flags = Q},
    {"sdpa_hd128_gqa4_window19", TK_SDPA, .t = 5, .off = 130, .hq = 16, .hkv = 4, .d = 128, .window = 19, .f = 0.088388347f},
    {"sdpa_no_sinks", TK_SDPA, .t = 2, .off = 19, .hq = 8, .hkv = 1, .d = 64, .window = FULL, .f = 0.125f, .flags = Q | TC_NO_BIAS},
    {"sdpa_scale1_upstream_convention", TK_SDPA, .t = 2, .off = 130, .hq = 16, .hkv = 2, .d = 64, .window = 128, .f = 1.0f},
    {"sdpa_20b_decode_4096_window128", TK_SDPA, .t = 1, .off = 4096, .hq = 64, .hkv = 8, .d = 64, .window = 128, .maxt = 8192, .f = 0.125f, .flags = B},
    {"sdpa_20b_decode_4096_full", TK_SDPA, .t = 1, .off = 4096, .hq = 64, .hkv = 8, .d = 64, .window = FULL, .maxt = 8192, .f = 0.125f, .flags = B},
    /* Benchmark only: one query over 32,768 cached tokens (134 MB of K/V per layer). */
    {"sdpa_decode_32768_full", TK_SDPA, .t = 1, .off = 32768, .hq = 64, .hkv = 8, .d = 64, .window = FULL, .maxt = 32769, .f = 0.125f, .flags = B | TC_BENCH_ONLY},
    {"sdpa_20b_prefill512_after3584_window128", TK_SDPA, .t = 512, .off = 3584, .hq = 64, .hkv = 8, .d = 64, .window = 128, .f = 0.125f, .check = 32},
    /* Full attention over 512 new tokens after 3584 cached ones is ~17 G MACs per backend;
     * the full-window prefill runs from position 0 instead (keys 1..512). */
    {"sdpa_20b_prefill512_full_from0", TK_SDPA, .t = 512, .off = 0, .hq = 64, .hkv = 8, .d = 64, .window = FULL, .f = 0.125f, .check = 32},

    /* ---- unembedding (logits + argmax) ---- */
    {"unembedding_1tok_1x1", TK_UNEMBEDDING, .t = 1, .c = 1, .r = 1, .flags = Q},
    {"unembedding_odd_3tok_19x2881", TK_UNEMBEDDING, .t = 3, .c = 19, .r = 2881, .flags = Q},
    {"unembedding_odd_cols_2881_rows130", TK_UNEMBEDDING, .t = 2, .c = 2881, .r = 130, .flags = Q},
    {"unembedding_ties_lowest_index", TK_UNEMBEDDING, .t = 19, .c = 8, .r = 130, .flags = Q | TC_TIES},
    /* 64 and 130 tokens reach the CUDA tensor-core (split-bf16) GEMM path; 8 random tokens checked. */
    {"unembedding_prefill64_2880x4099", TK_UNEMBEDDING, .t = 64, .c = 2880, .r = 4099, .check = 8},
    {"unembedding_prefill130_odd_cols_19x2881", TK_UNEMBEDDING, .t = 130, .c = 19, .r = 2881, .check = 8},
    {"unembedding_20b_decode_2880x200014", TK_UNEMBEDDING, .t = 1, .c = 2880, .r = 200014, .flags = B},
    {"unembedding_decode_2880x201088_checkpoint_vocab", TK_UNEMBEDDING, .t = 1, .c = 2880, .r = 201088, .flags = B | TC_BENCH_ONLY},
    /* 512 tokens x 200014 rows would be 295 G MACs per backend (the engine unembeds only
     * the tokens it samples): 4 tokens, 1 random token checked against the reference. */
    {"unembedding_prefill4_2880x201088", TK_UNEMBEDDING, .t = 4, .c = 2880, .r = 201088, .check = 1},

    /* ---- router top-k ---- */
    {"topk_1of1", TK_TOPK, .t = 1, .e = 1, .k = 1, .flags = Q},
    {"topk_3of7", TK_TOPK, .t = 19, .e = 7, .k = 3, .flags = Q},
    {"topk_19of19_all", TK_TOPK, .t = 3, .e = 19, .k = 19, .flags = Q},
    {"topk_ties_pm0_lowest_index_4of32", TK_TOPK, .t = 130, .e = 32, .k = 4, .flags = Q | TC_TIES},
    {"topk_odd_4of130", TK_TOPK, .t = 3, .e = 130, .k = 4},
    {"topk_ties_pm0_lowest_index_5of130", TK_TOPK, .t = 19, .e = 130, .k = 5, .flags = TC_TIES},
    {"topk_many_experts_5of300", TK_TOPK, .t = 3, .e = 300, .k = 5}, /* CUDA: the block-per-token kernel */
    {"topk_20b_decode_4of32", TK_TOPK, .t = 1, .e = 32, .k = 4},
    {"topk_120b_decode_4of128", TK_TOPK, .t = 1, .e = 128, .k = 4},
    {"topk_20b_prefill512_4of32", TK_TOPK, .t = 512, .e = 32, .k = 4},
    {"topk_120b_prefill512_4of128", TK_TOPK, .t = 512, .e = 128, .k = 4},

    /* ---- routing metadata / scatter / gather / accumulate: routing from reference topk ---- */
    {"routing_1pair_1expert", TK_ROUTING_METADATA, .t = 1, .e = 1, .k = 1, .flags = Q},
    {"routing_3of7_19tok", TK_ROUTING_METADATA, .t = 19, .e = 7, .k = 3, .flags = Q},
    {"routing_20b_decode_4of32", TK_ROUTING_METADATA, .t = 1, .e = 32, .k = 4},
    {"routing_20b_prefill512_4of32", TK_ROUTING_METADATA, .t = 512, .e = 32, .k = 4},
    {"routing_120b_prefill512_4of128", TK_ROUTING_METADATA, .t = 512, .e = 128, .k = 4},
    {"scatter_1tok_1ch_1of1", TK_SCATTER, .t = 1, .c = 1, .e = 1, .k = 1, .flags = Q},
    {"scatter_3of7_19tok_130ch", TK_SCATTER, .t = 19, .c = 130, .e = 7, .k = 3, .flags = Q},
    {"scatter_odd_3tok_2881ch_4of32", TK_SCATTER, .t = 3, .c = 2881, .e = 32, .k = 4},
    {"scatter_20b_decode_4of32_2880", TK_SCATTER, .t = 1, .c = 2880, .e = 32, .k = 4},
    {"scatter_20b_prefill512_4of32_2880", TK_SCATTER, .t = 512, .c = 2880, .e = 32, .k = 4},
    {"scatter_120b_prefill512_4of128_2880", TK_SCATTER, .t = 512, .c = 2880, .e = 128, .k = 4},
    {"gather_acc_1tok_1ch_1of1", TK_GATHER_AND_ACCUMULATE, .t = 1, .c = 1, .e = 1, .k = 1, .flags = Q},
    {"gather_acc_3of7_19tok_130ch", TK_GATHER_AND_ACCUMULATE, .t = 19, .c = 130, .e = 7, .k = 3, .flags = Q},
    {"gather_acc_odd_3tok_2881ch", TK_GATHER_AND_ACCUMULATE, .t = 3, .c = 2881, .e = 32, .k = 4},
    {"gather_acc_20b_decode_4of32_2880", TK_GATHER_AND_ACCUMULATE, .t = 1, .c = 2880, .e = 32, .k = 4},
    {"gather_acc_20b_prefill512_4of32_2880", TK_GATHER_AND_ACCUMULATE, .t = 512, .c = 2880, .e = 32, .k = 4},
    {"gather_acc_120b_prefill512_4of128_2880", TK_GATHER_AND_ACCUMULATE, .t = 512, .c = 2880, .e = 128, .k = 4},
    {"accumulate_1tok_1ch_1of1", TK_ACCUMULATE, .t = 1, .c = 1, .k = 1, .flags = Q},
    {"accumulate_3of7_odd_19tok_2881ch", TK_ACCUMULATE, .t = 19, .c = 2881, .e = 7, .k = 3, .flags = Q},
    {"accumulate_20b_decode_4of32_2880", TK_ACCUMULATE, .t = 1, .c = 2880, .e = 32, .k = 4},
    {"accumulate_batch3_4of32_2880", TK_ACCUMULATE, .t = 3, .c = 2880, .e = 32, .k = 4},
    {"accumulate_prefill512_4of128_2880", TK_ACCUMULATE, .t = 512, .c = 2880, .e = 128, .k = 4},
    /* the fusion with the next RMSNorm (CUDA: one kernel for C % 4 == 0 up to 4096 channels,
     * the two kernels otherwise) */
    {"accumulate_rmsnorm_1tok_1ch_1of1", TK_ACCUMULATE_RMSNORM, .t = 1, .c = 1, .k = 1, .f = 1e-5f, .flags = Q},
    {"accumulate_rmsnorm_odd_3of7_19tok_2881ch", TK_ACCUMULATE_RMSNORM, .t = 19, .c = 2881, .e = 7, .k = 3,
     .f = 1e-5f, .flags = Q},
    {"accumulate_rmsnorm_vec1_2of5_3tok_1000ch", TK_ACCUMULATE_RMSNORM, .t = 3, .c = 1000, .e = 5, .k = 2,
     .f = 1e-5f, .flags = Q},
    {"accumulate_rmsnorm_20b_decode_4of32_2880", TK_ACCUMULATE_RMSNORM, .t = 1, .c = 2880, .e = 32, .k = 4,
     .f = 1e-5f},
    {"accumulate_rmsnorm_120b_batch3_4of128_2880", TK_ACCUMULATE_RMSNORM, .t = 3, .c = 2880, .e = 128, .k = 4,
     .f = 1e-5f},
    {"accumulate_rmsnorm_vec4_epsilon0_2x4096", TK_ACCUMULATE_RMSNORM, .t = 2, .c = 4096, .e = 32, .k = 4,
     .f = 0.0f},
    {"accumulate_rmsnorm_wide_2x8192", TK_ACCUMULATE_RMSNORM, .t = 2, .c = 8192, .e = 32, .k = 4, .f = 1e-5f},
    /* the fused MoE gate (CUDA: one kernel for one token, C % 8 == 0 up to 4096 channels,
     * <= 256 experts; the three kernels otherwise) */
    {"gate_1tok_8ch_1of1", TK_RMSNORM_MATMUL_TOPK, .t = 1, .c = 8, .e = 1, .k = 1, .f = 1e-5f, .flags = Q},
    {"gate_odd_3tok_19ch_3of7", TK_RMSNORM_MATMUL_TOPK, .t = 3, .c = 19, .e = 7, .k = 3, .f = 1e-5f, .flags = Q},
    {"gate_no_bias_5of200_1000ch", TK_RMSNORM_MATMUL_TOPK, .t = 1, .c = 1000, .e = 200, .k = 5, .f = 1e-5f,
     .flags = Q | TC_NO_BIAS},
    {"gate_20b_decode_4of32_2880", TK_RMSNORM_MATMUL_TOPK, .t = 1, .c = 2880, .e = 32, .k = 4, .f = 1e-5f},
    {"gate_120b_decode_4of128_2880", TK_RMSNORM_MATMUL_TOPK, .t = 1, .c = 2880, .e = 128, .k = 4, .f = 1e-5f},
    {"gate_vec4_epsilon0_4of32_4096", TK_RMSNORM_MATMUL_TOPK, .t = 1, .c = 4096, .e = 32, .k = 4, .f = 0.0f},
    {"gate_wide_4of32_8192", TK_RMSNORM_MATMUL_TOPK, .t = 1, .c = 8192, .e = 32, .k = 4, .f = 1e-5f},
    {"gate_20b_batch3_4of32_2880", TK_RMSNORM_MATMUL_TOPK, .t = 3, .c = 2880, .e = 32, .k = 4, .f = 1e-5f},
    {"gate_20b_prefill64_4of32_2880", TK_RMSNORM_MATMUL_TOPK, .t = 64, .c = 2880, .e = 32, .k = 4, .f = 1e-5f},

    /* ---- MoE MXFP4 matmuls (swiglu limit 7 unless named) ---- */
    {"moe_swiglu_1of1_cols32_rows1", TK_MOE_MATMUL_SWIGLU, .t = 1, .c = 32, .r = 1, .e = 1, .k = 1, .f = 7.0f, .flags = Q},
    {"moe_swiglu_3of7_19tok_cols64_rows19", TK_MOE_MATMUL_SWIGLU, .t = 19, .c = 64, .r = 19, .e = 7, .k = 3, .f = 7.0f, .flags = Q},
    {"moe_swiglu_limit1_3of7_cols96_rows3", TK_MOE_MATMUL_SWIGLU, .t = 3, .c = 96, .r = 3, .e = 7, .k = 3, .f = 1.0f, .flags = Q},
    {"moe_swiglu_odd_cols_2880_rows130_3tok", TK_MOE_MATMUL_SWIGLU, .t = 3, .c = 2880, .r = 130, .e = 32, .k = 4, .f = 7.0f},
    {"moe_swiglu_20b_decode_4of32_2880", TK_MOE_MATMUL_SWIGLU, .t = 1, .c = 2880, .r = 2880, .e = 32, .k = 4, .f = 7.0f, .flags = B},
    {"moe_swiglu_120b_decode_4of128_2880", TK_MOE_MATMUL_SWIGLU, .t = 1, .c = 2880, .r = 2880, .e = 128, .k = 4, .f = 7.0f, .flags = B},
    {"moe_matmul_1of1_cols32_rows1", TK_MOE_MATMUL, .t = 1, .c = 32, .r = 1, .e = 1, .k = 1, .flags = Q},
    {"moe_matmul_3of7_19tok_cols64_rows19", TK_MOE_MATMUL, .t = 19, .c = 64, .r = 19, .e = 7, .k = 3, .flags = Q},
    {"moe_swiglu_tiny_scales_2of3_cols2880", TK_MOE_MATMUL_SWIGLU, .t = 2, .c = 2880, .r = 130, .e = 3, .k = 2, .f = 7.0f, .flags = TC_TINY_SCALES},
    {"moe_matmul_tiny_scales_2of3_cols2880", TK_MOE_MATMUL, .t = 2, .c = 2880, .r = 131, .e = 3, .k = 2, .flags = TC_TINY_SCALES},
    {"moe_matmul_odd_rows_2881_3tok", TK_MOE_MATMUL, .t = 3, .c = 2880, .r = 2881, .e = 32, .k = 4},
    {"moe_matmul_20b_decode_4of32_2880", TK_MOE_MATMUL, .t = 1, .c = 2880, .r = 2880, .e = 32, .k = 4, .flags = B},
    {"moe_matmul_120b_decode_4of128_2880", TK_MOE_MATMUL, .t = 1, .c = 2880, .r = 2880, .e = 128, .k = 4, .flags = B},
    {"moe_dense_swiglu_1pair", TK_MOE_DENSE_MATMUL_SWIGLU, .t = 1, .c = 32, .r = 1, .e = 1, .k = 1, .f = 7.0f, .flags = Q},
    {"moe_dense_swiglu_3of7_19tok_cols64_rows19", TK_MOE_DENSE_MATMUL_SWIGLU, .t = 19, .c = 64, .r = 19, .e = 7, .k = 3, .f = 7.0f, .flags = Q},
    /* Prefill MoE at 512 tokens is 51 G MACs per backend (2048 expert rows x 2880 x 8640,
     * minutes on the scalar backend): 16 tokens (64 expert rows, ~2 per expert) for 20b and
     * 8 tokens (32 rows over 128 experts: most experts have 0 or 1 row) for 120b; 6 / 4
     * random rows checked against the reference, the rest scanned for NaN. */
    {"moe_dense_swiglu_20b_prefill16_4of32_2880", TK_MOE_DENSE_MATMUL_SWIGLU, .t = 16, .c = 2880, .r = 2880, .e = 32, .k = 4, .f = 7.0f, .check = 6},
    {"moe_dense_swiglu_120b_prefill8_4of128_2880", TK_MOE_DENSE_MATMUL_SWIGLU, .t = 8, .c = 2880, .r = 2880, .e = 128, .k = 4, .f = 7.0f, .check = 4},
    /* denser expert tiles (64 tokens x 2 of 4 experts: ~32 rows per expert), as in a
     * 512-token prefill chunk of 20b; 8 random rows checked */
    {"moe_dense_swiglu_64tok_2of4_2880", TK_MOE_DENSE_MATMUL_SWIGLU, .t = 64, .c = 2880, .r = 2880, .e = 4, .k = 2, .f = 7.0f, .check = 8},
    {"moe_dense_swiglu_20b_prefill512_4of32_2880", TK_MOE_DENSE_MATMUL_SWIGLU, .t = 512, .c = 2880, .r = 2880, .e = 32, .k = 4, .f = 7.0f, .flags = B | TC_BENCH_ONLY},
    /* subnormal weights (scale bytes 0..9) against activations near 2^118: the tensor-core
     * path's exact bf16 dequantisation (2 parts at 2880 columns, 3 parts at 64) */
    {"moe_dense_swiglu_tiny_scales_2of3_cols2880", TK_MOE_DENSE_MATMUL_SWIGLU, .t = 9, .c = 2880, .r = 130, .e = 3, .k = 2, .f = 7.0f, .flags = TC_TINY_SCALES},
    {"moe_dense_swiglu_tiny_scales_2of3_cols64", TK_MOE_DENSE_MATMUL_SWIGLU, .t = 9, .c = 64, .r = 19, .e = 3, .k = 2, .f = 7.0f, .flags = Q | TC_TINY_SCALES},
    {"moe_dense_matmul_1pair", TK_MOE_DENSE_MATMUL, .t = 1, .c = 32, .r = 1, .e = 1, .k = 1, .flags = Q},
    {"moe_dense_matmul_3of7_19tok_cols64_rows19", TK_MOE_DENSE_MATMUL, .t = 19, .c = 64, .r = 19, .e = 7, .k = 3, .flags = Q},
    {"moe_dense_matmul_20b_prefill16_4of32_2880", TK_MOE_DENSE_MATMUL, .t = 16, .c = 2880, .r = 2880, .e = 32, .k = 4, .check = 6},
    {"moe_dense_matmul_64tok_2of4_2880_rows2881", TK_MOE_DENSE_MATMUL, .t = 64, .c = 2880, .r = 2881, .e = 4, .k = 2, .check = 8},
    {"moe_dense_matmul_20b_prefill512_4of32_2880", TK_MOE_DENSE_MATMUL, .t = 512, .c = 2880, .r = 2880, .e = 32, .k = 4, .flags = B | TC_BENCH_ONLY},
    {"moe_dense_matmul_tiny_scales_2of3_cols2880", TK_MOE_DENSE_MATMUL, .t = 9, .c = 2880, .r = 131, .e = 3, .k = 2, .flags = TC_TINY_SCALES},
    {"moe_dense_matmul_120b_prefill8_4of128_2880", TK_MOE_DENSE_MATMUL, .t = 8, .c = 2880, .r = 2880, .e = 128, .k = 4, .check = 4},

    /* ---- sampling ---- */
    {"softmax_1x1", TK_SOFTMAX, .t = 1, .c = 1, .f = 1.0f, .flags = Q},
    {"softmax_odd_3tok_19ch_temp0.7", TK_SOFTMAX, .t = 3, .c = 19, .f = 0.7f, .flags = Q},
    {"softmax_odd_2tok_2881ch_temp0.25", TK_SOFTMAX, .t = 2, .c = 2881, .f = 0.25f, .flags = Q},
    {"softmax_130ch_temp4", TK_SOFTMAX, .t = 2, .c = 130, .f = 4.0f},
    {"softmax_decode_vocab200014_temp1", TK_SOFTMAX, .t = 1, .c = 200014, .f = 1.0f},
    {"softmax_2tok_vocab201088_temp0.7", TK_SOFTMAX, .t = 2, .c = 201088, .f = 0.7f},
    {"sample_1ch", TK_SAMPLE, .t = 8, .c = 1, .flags = Q},
    {"sample_3ch", TK_SAMPLE, .t = 64, .c = 3, .flags = Q},
    {"sample_odd_19ch", TK_SAMPLE, .t = 64, .c = 19, .flags = Q},
    {"sample_sparse_half_zero_2881ch", TK_SAMPLE, .t = 64, .c = 2881, .flags = Q | TC_SPARSE},
    {"sample_vocab200014_64draws", TK_SAMPLE, .t = 64, .c = 200014},
};

const size_t tc_catalogue_size = sizeof(tc_catalogue) / sizeof(tc_catalogue[0]);

const char* tc_kernel_name(enum tc_kernel kernel) {
    static const char* const names[TK_COUNT] = {
        "u32_fill_random", "f32_fill_random", "bf16_fill_random", "mf4_f32_convert", "bf16_f32_embeddings",
        "f32_bf16w_rmsnorm", "f32_bf16w_matmul", "f32_bf16w_matmul_add", "f32_bf16w_dense_matmul_qkv",
        "f32_bf16w_dense_matmul_attn_output", "f32_bf16w_dense_matmul_mlp_gate", "f32_bf16w_matmul_qkv",
        "f32_rope", "f32_sdpa", "f32_bf16w_unembedding", "f32_topk", "expert_routing_metadata", "f32_scatter",
        "f32_mf4w_moe_matmul_swiglu", "f32_mf4w_moe_matmul", "f32_mf4w_moe_dense_matmul_swiglu",
        "f32_mf4w_moe_dense_matmul", "f32_gather_and_accumulate", "f32_accumulate", "f32_softmax", "f32_sample",
        "f32_accumulate_bf16w_rmsnorm", "f32_bf16w_rmsnorm_matmul_topk",
    };
    return (unsigned) kernel < TK_COUNT ? names[kernel] : "?";
}

/* ------------------------------------------------------------------------------------
 * RNG
 * ---------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t* x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void tc_rng_seed(struct tc_rng* rng, uint64_t seed) {
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t tc_rng_u64(struct tc_rng* rng) {
    uint64_t* s = rng->s;
    const uint64_t result = rotl64(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

double tc_rng_uniform(struct tc_rng* rng) { return (double) (tc_rng_u64(rng) >> 11) * 0x1.0p-53; }

double tc_rng_normal(struct tc_rng* rng) {
    double u1 = tc_rng_uniform(rng), u2 = tc_rng_uniform(rng);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint64_t tc_hash_string(const char* s) {
    uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t) *s) * 0x100000001B3ull;
    return h;
}

float tc_f32_from_bits(uint32_t bits) { return gptoss_f32_from_bits(bits); }

/* f32 uniform in [lo, hi): 24 random bits per value */
static void fill_f32(struct tc_rng* rng, float* x, size_t n, float lo, float hi) {
    const float scale = (hi - lo) * 0x1.0p-24f;
    size_t i = 0;
    for (; i + 1 < n; i += 2) {
        const uint64_t u = tc_rng_u64(rng);
        x[i] = lo + (float) (u & 0xFFFFFF) * scale;
        x[i + 1] = lo + (float) ((u >> 32) & 0xFFFFFF) * scale;
    }
    if (i < n) x[i] = lo + (float) (tc_rng_u64(rng) & 0xFFFFFF) * scale;
}

/* bf16 uniform in [lo, hi): 16 random bits per value (4 per draw), rounded to nearest
 * even; written as two simple loops so that the 576 M-element unembedding fills fast */
static void fill_bf16(struct tc_rng* rng, gptoss_bf16* w, size_t n, float lo, float hi) {
    const float scale = (hi - lo) * 0x1.0p-16f;
    uint16_t* u = (uint16_t*) w;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint64_t r = tc_rng_u64(rng);
        memcpy(u + i, &r, 8);
    }
    for (; i < n; i++) u[i] = (uint16_t) tc_rng_u64(rng);
    for (i = 0; i < n; i++) {
        const float v = lo + ((float) u[i] + 0.5f) * scale; /* finite: no NaN case needed */
        uint32_t b;
        memcpy(&b, &v, 4);
        u[i] = (uint16_t) ((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
    }
}

static void fill_bytes(struct tc_rng* rng, uint8_t* p, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint64_t u = tc_rng_u64(rng);
        memcpy(p + i, &u, 8);
    }
    if (i < n) {
        const uint64_t u = tc_rng_u64(rng);
        memcpy(p + i, &u, n - i);
    }
}

/* ------------------------------------------------------------------------------------
 * Problems
 * ---------------------------------------------------------------------------------- */

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

static void* add_buffer(struct tc_problem* p, const char* name, enum tc_role role, enum tc_elem elem, size_t count) {
    static const size_t elem_size[] = {4, 4, 2, 1};
    struct tc_buffer* b = &p->b[p->n++];
    b->name = name;
    b->role = role;
    b->elem = elem;
    b->size = count * elem_size[elem];
    if (b->size == 0) b->size = 4;
    b->host = malloc(b->size);
    return b->host;
}

void tc_problem_destroy(struct tc_problem* p) {
    for (int i = 0; i < p->n; i++) free(p->b[i].host);
    p->n = 0;
}

int tc_buffer_index(const struct tc_problem* p, const char* name) {
    for (int i = 0; i < p->n; i++) {
        if (strcmp(p->b[i].name, name) == 0) return i;
    }
    return -1;
}

/* Routing of T tokens onto k of E experts: reference topk of random logits. */
static void make_routing(struct tc_rng* rng, uint32_t T, uint32_t E, uint32_t k, uint32_t* ids, float* scores) {
    float* logits = malloc((size_t) T * E * sizeof *logits);
    double* s = malloc((size_t) T * k * sizeof *s);
    uint32_t* tmp_ids = ids != NULL ? ids : malloc((size_t) T * k * sizeof *tmp_ids);
    fill_f32(rng, logits, (size_t) T * E, -4.0f, 4.0f);
    gptoss_ref_f32_topk(&(struct gptoss_f32_topk_args){logits, tmp_ids, NULL, T, E, k}, s);
    if (scores != NULL) {
        for (size_t i = 0; i < (size_t) T * k; i++) scores[i] = (float) s[i];
    }
    if (ids == NULL) free(tmp_ids);
    free(logits);
    free(s);
}

/* MXFP4 experts: per expert blocks u8[rows][cols/32][16] (random bytes), scales
 * u8[rows][cols/32] stored +14-biased in 137..142 (raw 2^-4 .. 2^1), bias bf16[rows]
 * ~U[-1,1], interleaved with one byte stride as in the model file. tiny_scales: stored
 * 0..9 (multipliers 2^-141 .. 2^-132: every weight an f32 subnormal), bias ~U[-2^-12, 2^-12]. */
static void make_experts(struct tc_problem* p, struct tc_rng* rng, uint32_t E, uint32_t rows, uint32_t cols,
                         int tiny_scales) {
    const size_t nblocks = (size_t) rows * (cols / 32);
    p->scales_off = nblocks * 16;
    p->bias_off = align_up(p->scales_off + nblocks, 16);
    p->expert_stride = align_up(p->bias_off + (size_t) rows * 2, 64);
    uint8_t* base = add_buffer(p, "experts", TC_IN, TC_U8, (size_t) E * p->expert_stride);
    if (base == NULL) return;
    memset(base, 0, (size_t) E * p->expert_stride);
    for (uint32_t e = 0; e < E; e++) {
        uint8_t* x = base + (size_t) e * p->expert_stride;
        fill_bytes(rng, x, nblocks * 16);
        for (size_t i = 0; i < nblocks; i++) {
            x[p->scales_off + i] = tiny_scales ? (uint8_t) (tc_rng_u64(rng) % 10)
                                               : (uint8_t) (14 + 127 - 4 + tc_rng_u64(rng) % 6);
        }
        const float b = tiny_scales ? 0x1.0p-12f : 1.0f;
        fill_bf16(rng, (gptoss_bf16*) (x + p->bias_off), rows, -b, b);
    }
}

/* Expert-grouped routing for the dense MoE kernels: offsets of the reference routing. */
static void make_offsets(struct tc_rng* rng, uint32_t T, uint32_t E, uint32_t k, uint32_t* offsets) {
    uint32_t* ids = malloc((size_t) T * k * sizeof *ids);
    uint32_t* intra = malloc((size_t) T * k * sizeof *intra);
    make_routing(rng, T, E, k, ids, NULL);
    gptoss_ref_expert_routing_metadata(&(struct gptoss_expert_routing_metadata_args){ids, offsets, intra, T * k, E});
    free(ids);
    free(intra);
}

static float weight_amplitude(uint32_t cols) { return cols >= 64 ? 1.0f / sqrtf((float) cols) * 2.0f : 1.0f; }

int tc_problem_create(struct tc_problem* p, const struct tc_case* c, uint64_t seed) {
    memset(p, 0, sizeof *p);
    p->c = c;
    struct tc_rng rng;
    tc_rng_seed(&rng, seed);
    const uint32_t T = c->t, C = c->c, R = c->r;
    p->rng_seed = tc_rng_u64(&rng);
    p->rng_offset = c->off;
    if (c->flags & TC_YARN_NEUTRAL) {
        p->rope[0] = c->f;
        p->rope[1] = 1.0f;
        p->rope[2] = 0.0f;
        p->rope[3] = 0.0f;
        p->rope[4] = 1.0f;
    } else {
        p->rope[0] = c->f;
        p->rope[1] = 0.03125f;
        p->rope[2] = tc_f32_from_bits(TC_YARN_OFFSET_BITS);
        p->rope[3] = tc_f32_from_bits(TC_YARN_SCALE_BITS);
        p->rope[4] = tc_f32_from_bits(TC_YARN_MULT_BITS);
    }

    switch (c->kernel) {
        case TK_U32_FILL_RANDOM: add_buffer(p, "output", TC_OUT, TC_U32, T); break;
        case TK_F32_FILL_RANDOM: add_buffer(p, "output", TC_OUT, TC_F32, T); break;
        case TK_BF16_FILL_RANDOM: add_buffer(p, "output", TC_OUT, TC_BF16, T); break;
        case TK_MF4_F32_CONVERT: {
            uint8_t* blocks = add_buffer(p, "blocks", TC_IN, TC_U8, T / 2);
            uint8_t* scales = add_buffer(p, "scales", TC_IN, TC_U8, T / 32);
            add_buffer(p, "output", TC_OUT, TC_F32, T);
            if (!blocks || !scales) break;
            fill_bytes(&rng, blocks, T / 2);
            for (uint32_t b = 0; b < T / 32; b++) {
                scales[b] = (c->flags & TC_ALL_SCALES) ? (uint8_t) b : (uint8_t) (127 - 4 + tc_rng_u64(&rng) % 6);
            }
            break;
        }
        case TK_EMBEDDINGS: {
            uint32_t* ids = add_buffer(p, "token_ids", TC_IN, TC_U32, T);
            gptoss_bf16* w = add_buffer(p, "weight", TC_IN, TC_BF16, (size_t) R * C);
            add_buffer(p, "output", TC_OUT, TC_F32, (size_t) T * C);
            if (!ids || !w) break;
            for (uint32_t t = 0; t < T; t++) ids[t] = (uint32_t) (tc_rng_u64(&rng) % R);
            ids[0] = R - 1; /* the last row and row 0 always */
            if (T > 1) ids[1] = 0;
            fill_bf16(&rng, w, (size_t) R * C, -1.0f, 1.0f);
            break;
        }
        case TK_RMSNORM: {
            float* x = add_buffer(p, "input", (c->flags & TC_INPLACE) ? TC_INOUT : TC_IN, TC_F32, (size_t) T * C);
            gptoss_bf16* w = add_buffer(p, "weight", TC_IN, TC_BF16, C);
            if (!(c->flags & TC_INPLACE)) add_buffer(p, "output", TC_OUT, TC_F32, (size_t) T * C);
            if (!x || !w) break;
            fill_f32(&rng, x, (size_t) T * C, -2.0f, 2.0f);
            fill_bf16(&rng, w, C, -1.0f, 1.0f);
            break;
        }
        case TK_MATMUL:
        case TK_MATMUL_ADD:
        case TK_DENSE_MATMUL_QKV:
        case TK_DENSE_MATMUL_ATTN_OUTPUT:
        case TK_DENSE_MATMUL_MLP_GATE:
        case TK_UNEMBEDDING: {
            const int add = c->kernel == TK_MATMUL_ADD || c->kernel == TK_DENSE_MATMUL_ATTN_OUTPUT;
            float* x = add_buffer(p, "input", TC_IN, TC_F32, (size_t) T * C);
            gptoss_bf16* w = add_buffer(p, "weight", TC_IN, TC_BF16, (size_t) R * C);
            gptoss_bf16* b = NULL;
            float* y;
            if (c->kernel == TK_UNEMBEDDING) {
                y = add_buffer(p, "logits", TC_OUT, TC_F32, (size_t) T * R);
                add_buffer(p, "argmax", TC_OUT, TC_U32, T);
            } else {
                b = add_buffer(p, "bias", TC_IN, TC_BF16, R);
                y = add_buffer(p, "output", add ? TC_INOUT : TC_OUT, TC_F32, (size_t) T * R);
            }
            if (!x || !w || !y) break;
            if (c->flags & TC_TIES) {
                /* small integers: every backend computes the logits exactly, so ties at the
                 * maximum are real ties and argmax must be the lowest index */
                for (size_t i = 0; i < (size_t) T * C; i++) x[i] = (float) ((int) (tc_rng_u64(&rng) % 3) - 1);
                for (size_t i = 0; i < (size_t) R * C; i++) {
                    w[i].bits = gptoss_f32_to_bf16((float) ((int) (tc_rng_u64(&rng) % 3) - 1));
                }
            } else {
                fill_f32(&rng, x, (size_t) T * C, -1.0f, 1.0f);
                const float a = weight_amplitude(C);
                fill_bf16(&rng, w, (size_t) R * C, -a, a);
            }
            if (b) fill_bf16(&rng, b, R, -0.5f, 0.5f);
            if (add) fill_f32(&rng, y, (size_t) T * R, -1.0f, 1.0f);
            break;
        }
        case TK_MATMUL_QKV: {
            const size_t rows = (size_t) c->d * (c->hq + 2 * c->hkv);
            float* x = add_buffer(p, "input", TC_IN, TC_F32, (size_t) T * C);
            gptoss_bf16* w = add_buffer(p, "weight", TC_IN, TC_BF16, rows * C);
            gptoss_bf16* b = add_buffer(p, "bias", TC_IN, TC_BF16, rows);
            add_buffer(p, "output", TC_OUT, TC_F32, (size_t) T * rows);
            /* the cache starts poisoned; untouched slots must keep their poison */
            uint32_t* kv = add_buffer(p, "kv_cache", TC_INOUT, TC_F32, (size_t) c->hkv * c->maxt * 2 * c->d);
            if (!x || !w || !b || !kv) break;
            for (size_t i = 0; i < (size_t) c->hkv * c->maxt * 2 * c->d; i++) kv[i] = TC_KV_POISON;
            fill_f32(&rng, x, (size_t) T * C, -1.0f, 1.0f);
            const float a = weight_amplitude(C);
            fill_bf16(&rng, w, rows * C, -a, a);
            fill_bf16(&rng, b, rows, -0.5f, 0.5f);
            break;
        }
        case TK_ROPE: {
            const size_t rows = (size_t) c->d * (c->hq + 2 * c->hkv);
            float* x = add_buffer(p, "activations", TC_INOUT, TC_F32, (size_t) T * rows);
            if (x) fill_f32(&rng, x, (size_t) T * rows, -1.0f, 1.0f);
            break;
        }
        case TK_SDPA: {
            const uint32_t cap = c->maxt != 0 ? c->maxt : (uint32_t) c->off + T;
            const size_t qkv_dim = (size_t) c->d * (c->hq + 2 * c->hkv);
            p->kv_stride = (uint64_t) 2 * c->d * cap;
            float* q = add_buffer(p, "q", TC_IN, TC_F32, (size_t) T * qkv_dim);
            float* kv = add_buffer(p, "kv", TC_IN, TC_F32, (size_t) c->hkv * p->kv_stride);
            gptoss_bf16* s = add_buffer(p, "sinks", TC_IN, TC_BF16, c->hq);
            add_buffer(p, "output", TC_OUT, TC_F32, (size_t) T * c->hq * c->d);
            if (!q || !kv || !s) break;
            fill_f32(&rng, q, (size_t) T * qkv_dim, -2.0f, 2.0f);
            fill_f32(&rng, kv, (size_t) c->hkv * p->kv_stride, -1.0f, 1.0f);
            fill_bf16(&rng, s, c->hq, -2.0f, 2.0f);
            break;
        }
        case TK_TOPK: {
            float* s = add_buffer(p, "scores", TC_IN, TC_F32, (size_t) T * c->e);
            add_buffer(p, "expert_ids", TC_OUT, TC_U32, (size_t) T * c->k);
            add_buffer(p, "expert_scores", TC_OUT, TC_F32, (size_t) T * c->k);
            if (!s) break;
            if (c->flags & TC_TIES) {
                for (size_t i = 0; i < (size_t) T * c->e; i++) {
                    const int v = (int) (tc_rng_u64(&rng) % 7) - 3;
                    s[i] = v == 0 ? ((tc_rng_u64(&rng) & 1) ? -0.0f : 0.0f) : (float) v * 0.5f;
                }
            } else {
                fill_f32(&rng, s, (size_t) T * c->e, -4.0f, 4.0f);
            }
            break;
        }
        case TK_ROUTING_METADATA: {
            uint32_t* ids = add_buffer(p, "expert_ids", TC_IN, TC_U32, (size_t) T * c->k);
            add_buffer(p, "expert_offsets", TC_OUT, TC_U32, (size_t) c->e + 1);
            add_buffer(p, "intra_expert_offsets", TC_OUT, TC_U32, (size_t) T * c->k);
            if (ids) make_routing(&rng, T, c->e, c->k, ids, NULL);
            break;
        }
        case TK_SCATTER:
        case TK_GATHER_AND_ACCUMULATE: {
            const size_t P = (size_t) T * c->k;
            const int scatter = c->kernel == TK_SCATTER;
            float* x = add_buffer(p, "input", TC_IN, TC_F32, (scatter ? T : P) * (size_t) C);
            uint32_t* ids = add_buffer(p, "expert_ids", TC_IN, TC_U32, P);
            float* scores = scatter ? NULL : add_buffer(p, "expert_scores", TC_IN, TC_F32, P);
            uint32_t* offsets = add_buffer(p, "expert_offsets", TC_IN, TC_U32, (size_t) c->e + 1);
            uint32_t* intra = add_buffer(p, "intra_expert_offsets", TC_IN, TC_U32, P);
            float* y = add_buffer(p, scatter ? "output" : "residual", scatter ? TC_OUT : TC_INOUT, TC_F32,
                                  (scatter ? P : T) * (size_t) C);
            if (!x || !ids || !offsets || !intra || !y || (!scatter && !scores)) break;
            fill_f32(&rng, x, (scatter ? T : P) * (size_t) C, -1.0f, 1.0f);
            make_routing(&rng, T, c->e, c->k, ids, scores);
            gptoss_ref_expert_routing_metadata(
                &(struct gptoss_expert_routing_metadata_args){ids, offsets, intra, (uint32_t) P, c->e});
            if (!scatter) fill_f32(&rng, y, (size_t) T * C, -1.0f, 1.0f);
            break;
        }
        case TK_RMSNORM_MATMUL_TOPK: {
            float* x = add_buffer(p, "input", TC_IN, TC_F32, (size_t) T * C);
            gptoss_bf16* nw = add_buffer(p, "norm_weight", TC_IN, TC_BF16, C);
            add_buffer(p, "output", TC_OUT, TC_F32, (size_t) T * C);
            gptoss_bf16* rw = add_buffer(p, "router_weight", TC_IN, TC_BF16, (size_t) c->e * C);
            gptoss_bf16* rb = add_buffer(p, "router_bias", TC_IN, TC_BF16, c->e);
            add_buffer(p, "scores", TC_OUT, TC_F32, (size_t) T * c->e);
            add_buffer(p, "expert_ids", TC_OUT, TC_U32, (size_t) T * c->k);
            add_buffer(p, "expert_scores", TC_OUT, TC_F32, (size_t) T * c->k);
            if (!x || !nw || !rw || !rb) break;
            fill_f32(&rng, x, (size_t) T * C, -2.0f, 2.0f);
            fill_bf16(&rng, nw, C, -1.0f, 1.0f);
            fill_bf16(&rng, rw, (size_t) c->e * C, -1.0f / sqrtf((float) C), 1.0f / sqrtf((float) C));
            fill_bf16(&rng, rb, c->e, -0.5f, 0.5f);
            break;
        }
        case TK_ACCUMULATE:
        case TK_ACCUMULATE_RMSNORM: {
            const size_t P = (size_t) T * c->k;
            float* x = add_buffer(p, "input", TC_IN, TC_F32, P * C);
            float* scores = add_buffer(p, "expert_scores", TC_IN, TC_F32, P);
            float* y = add_buffer(p, "residual", TC_INOUT, TC_F32, (size_t) T * C);
            gptoss_bf16* w = NULL;
            if (c->kernel == TK_ACCUMULATE_RMSNORM) {
                w = add_buffer(p, "weight", TC_IN, TC_BF16, C);
                add_buffer(p, "output", TC_OUT, TC_F32, (size_t) T * C);
            }
            if (!x || !scores || !y || (c->kernel == TK_ACCUMULATE_RMSNORM && !w)) break;
            fill_f32(&rng, x, P * C, -1.0f, 1.0f);
            make_routing(&rng, T, c->e != 0 ? c->e : c->k, c->k, NULL, scores);
            fill_f32(&rng, y, (size_t) T * C, -1.0f, 1.0f);
            if (w != NULL) fill_bf16(&rng, w, C, -1.0f, 1.0f);
            break;
        }
        case TK_MOE_MATMUL_SWIGLU:
        case TK_MOE_MATMUL: {
            const int swiglu = c->kernel == TK_MOE_MATMUL_SWIGLU;
            const size_t in_rows = swiglu ? T : (size_t) c->k * T;
            float* x = add_buffer(p, "input", TC_IN, TC_F32, in_rows * C);
            uint32_t* ids = add_buffer(p, "expert_ids", TC_IN, TC_U32, (size_t) T * c->k);
            make_experts(p, &rng, c->e, swiglu ? 2 * R : R, C, (c->flags & TC_TINY_SCALES) != 0);
            add_buffer(p, "output", TC_OUT, TC_F32, (size_t) c->k * T * R);
            if (!x || !ids || !p->b[2].host) break;
            /* activations scaled so that the pre-activations are O(1..10): both sides of
             * the SwiGLU clamp are hit (tiny scales: near 2^118, so that products with the
             * subnormal weights are O(2^-20 .. 2^-11) and per-block partials stay finite) */
            const float a = (c->flags & TC_TINY_SCALES) ? 0x1.0p118f : 4.0f / sqrtf((float) C);
            fill_f32(&rng, x, in_rows * C, -a, a);
            make_routing(&rng, T, c->e, c->k, ids, NULL);
            break;
        }
        case TK_MOE_DENSE_MATMUL_SWIGLU:
        case TK_MOE_DENSE_MATMUL: {
            const int swiglu = c->kernel == TK_MOE_DENSE_MATMUL_SWIGLU;
            const size_t P = (size_t) T * c->k;
            uint32_t* offsets = add_buffer(p, "expert_offsets", TC_IN, TC_U32, (size_t) c->e + 1);
            float* x = add_buffer(p, "input", TC_IN, TC_F32, P * C);
            make_experts(p, &rng, c->e, swiglu ? 2 * R : R, C, (c->flags & TC_TINY_SCALES) != 0);
            add_buffer(p, "output", TC_OUT, TC_F32, P * R);
            if (!x || !offsets || !p->b[2].host) break;
            const float a = (c->flags & TC_TINY_SCALES) ? 0x1.0p118f : 4.0f / sqrtf((float) C);
            fill_f32(&rng, x, P * C, -a, a);
            make_offsets(&rng, T, c->e, c->k, offsets);
            break;
        }
        case TK_SOFTMAX: {
            float* l = add_buffer(p, "logits", TC_IN, TC_F32, (size_t) T * C);
            uint32_t* am = add_buffer(p, "argmax", TC_IN, TC_U32, T);
            add_buffer(p, "prob", TC_OUT, TC_F32, (size_t) T * C);
            add_buffer(p, "sum", TC_OUT, TC_F32, T);
            if (!l || !am) break;
            fill_f32(&rng, l, (size_t) T * C, -10.0f, 10.0f);
            for (uint32_t t = 0; t < T; t++) {
                const float* row = l + (size_t) t * C;
                uint32_t best = 0;
                for (uint32_t i = 1; i < C; i++) best = row[i] > row[best] ? i : best;
                am[t] = best;
            }
            break;
        }
        case TK_SAMPLE: {
            float* prob = add_buffer(p, "prob", TC_IN, TC_F32, C);
            float* sum = add_buffer(p, "sum", TC_IN, TC_F32, 1);
            add_buffer(p, "prediction", TC_OUT, TC_U32, 1);
            if (!prob || !sum) break;
            double total = 0.0;
            for (uint32_t i = 0; i < C; i++) {
                prob[i] = expf((float) (-20.0 * tc_rng_uniform(&rng)));
                if ((c->flags & TC_SPARSE) && (tc_rng_u64(&rng) & 1)) prob[i] = 0.0f;
                total += prob[i];
            }
            if (total == 0.0) {
                prob[0] = 1.0f;
                total = 1.0;
            }
            sum[0] = (float) total;
            p->rng_offset = tc_rng_u64(&rng) >> 40;
            break;
        }
        case TK_COUNT: break;
    }
    for (int i = 0; i < p->n; i++) {
        if (p->b[i].host == NULL) {
            tc_problem_destroy(p);
            return -1;
        }
    }
    return 0;
}

enum gptoss_status tc_launch(gptoss_backend_t be, const struct tc_problem* p, void* const d[]) {
    const struct tc_case* c = p->c;
    const int nob = (c->flags & TC_NO_BIAS) != 0;
    const float* r = p->rope;
    switch (c->kernel) {
        case TK_U32_FILL_RANDOM: return gptoss_u32_fill_random(be, d[0], c->t, p->rng_seed, p->rng_offset);
        case TK_F32_FILL_RANDOM: return gptoss_f32_fill_random(be, d[0], c->t, p->rng_seed, p->rng_offset, c->f, c->f2);
        case TK_BF16_FILL_RANDOM:
            return gptoss_bf16_fill_random(be, d[0], c->t, p->rng_seed, p->rng_offset, c->f, c->f2);
        case TK_MF4_F32_CONVERT: return gptoss_mf4_f32_convert(be, d[0], d[1], d[2], c->t);
        case TK_EMBEDDINGS: return gptoss_bf16_f32_embeddings(be, d[0], d[1], d[2], c->t, c->c, c->r);
        case TK_RMSNORM:
            return gptoss_f32_bf16w_rmsnorm(be, d[0], d[1], (c->flags & TC_INPLACE) ? d[0] : d[2], c->t, c->c, c->f);
        case TK_MATMUL: return gptoss_f32_bf16w_matmul(be, d[0], d[1], nob ? NULL : d[2], d[3], c->t, c->c, c->r);
        case TK_MATMUL_ADD:
            return gptoss_f32_bf16w_matmul_add(be, d[0], d[1], nob ? NULL : d[2], d[3], c->t, c->c, c->r);
        case TK_DENSE_MATMUL_QKV:
            return gptoss_f32_bf16w_dense_matmul_qkv(be, d[0], d[1], nob ? NULL : d[2], d[3], c->t, c->c, c->r);
        case TK_DENSE_MATMUL_ATTN_OUTPUT:
            return gptoss_f32_bf16w_dense_matmul_attn_output(be, d[0], d[1], nob ? NULL : d[2], d[3], c->t, c->c, c->r);
        case TK_DENSE_MATMUL_MLP_GATE:
            return gptoss_f32_bf16w_dense_matmul_mlp_gate(be, d[0], d[1], nob ? NULL : d[2], d[3], c->t, c->c, c->r);
        case TK_MATMUL_QKV:
            return gptoss_f32_bf16w_matmul_qkv(be, d[0], d[1], nob ? NULL : d[2], d[3], d[4], c->t, c->c, c->hq, c->hkv,
                                               c->d, (uint32_t) c->off, c->maxt, r[0], r[1], r[2], r[3], r[4]);
        case TK_ROPE:
            return gptoss_f32_rope(be, d[0], r[0], r[1], r[2], r[3], r[4], c->t, c->hq, c->hkv, c->d, (uint32_t) c->off);
        case TK_SDPA:
            return gptoss_f32_sdpa(be, d[0], d[1], nob ? NULL : d[2], d[3], c->window, p->kv_stride, c->t,
                                   (uint32_t) c->off, c->hq, c->hkv, c->d, c->f);
        case TK_UNEMBEDDING: return gptoss_f32_bf16w_unembedding(be, d[0], d[1], d[2], d[3], c->t, c->c, c->r);
        case TK_TOPK: return gptoss_f32_topk(be, d[0], d[1], d[2], c->t, c->e, c->k);
        case TK_ROUTING_METADATA: return gptoss_expert_routing_metadata(be, d[0], d[1], d[2], c->t * c->k, c->e);
        case TK_SCATTER: return gptoss_f32_scatter(be, d[0], d[1], d[2], d[3], d[4], c->c, c->t, c->k, c->e);
        case TK_GATHER_AND_ACCUMULATE:
            return gptoss_f32_gather_and_accumulate(be, d[0], d[1], d[2], d[3], d[4], d[5], c->c, c->t, c->k, c->e);
        case TK_ACCUMULATE: return gptoss_f32_accumulate(be, d[0], d[1], d[2], c->c, c->t, c->k);
        case TK_ACCUMULATE_RMSNORM:
            return gptoss_f32_accumulate_bf16w_rmsnorm(be, d[0], d[1], d[2], d[3], d[4], c->c, c->t, c->k, c->f);
        case TK_RMSNORM_MATMUL_TOPK:
            return gptoss_f32_bf16w_rmsnorm_matmul_topk(be, d[0], d[1], d[2], d[3], nob ? NULL : d[4], d[5], d[6], d[7],
                                                        c->t, c->c, c->e, c->k, c->f);
        case TK_MOE_MATMUL_SWIGLU:
        case TK_MOE_MATMUL: {
            uint8_t* x = d[2];
            if (c->kernel == TK_MOE_MATMUL_SWIGLU) {
                return gptoss_f32_mf4w_moe_matmul_swiglu(be, d[0], d[1], x, x + p->scales_off,
                                                         (const gptoss_bf16*) (x + p->bias_off), p->expert_stride, d[3],
                                                         c->t, c->k, c->e, c->c, c->r, c->f);
            }
            return gptoss_f32_mf4w_moe_matmul(be, d[0], d[1], x, x + p->scales_off, (const gptoss_bf16*) (x + p->bias_off),
                                              p->expert_stride, d[3], c->t, c->k, c->e, c->c, c->r);
        }
        case TK_MOE_DENSE_MATMUL_SWIGLU:
        case TK_MOE_DENSE_MATMUL: {
            uint8_t* x = d[2];
            if (c->kernel == TK_MOE_DENSE_MATMUL_SWIGLU) {
                return gptoss_f32_mf4w_moe_dense_matmul_swiglu(be, d[0], d[1], x, x + p->scales_off,
                                                               (const gptoss_bf16*) (x + p->bias_off), p->expert_stride,
                                                               d[3], c->t, c->k, c->e, c->c, c->r, c->f);
            }
            return gptoss_f32_mf4w_moe_dense_matmul(be, d[0], d[1], x, x + p->scales_off,
                                                    (const gptoss_bf16*) (x + p->bias_off), p->expert_stride, d[3], c->t,
                                                    c->k, c->e, c->c, c->r);
        }
        case TK_SOFTMAX: return gptoss_f32_softmax(be, d[0], d[1], d[2], d[3], c->t, c->c, c->f);
        case TK_SAMPLE: return gptoss_f32_sample(be, d[0], d[1], d[2], c->c, p->rng_seed, p->rng_offset);
        case TK_COUNT: break;
    }
    return gptoss_status_invalid_argument;
}

/* Number of distinct experts a batch of T tokens x k touches at most. */
static double experts_touched(const struct tc_case* c) {
    const double pairs = (double) c->t * c->k;
    return pairs < c->e ? pairs : c->e;
}

/* Keys read per kv head by an SDPA call: the union of the query windows. */
static double sdpa_keys(const struct tc_case* c) {
    const double total = (double) c->off + c->t;
    const double span = (double) c->window + c->t - 1;
    return span < total ? span : total;
}

/* Sum over queries of the keys each query attends (for FLOPs). */
static double sdpa_pairs(const struct tc_case* c) {
    double s = 0;
    for (uint32_t i = 0; i < c->t; i++) {
        const double pos = (double) c->off + i;
        const double n = pos + 1 < (double) c->window ? pos + 1 : (double) c->window;
        s += n;
    }
    return s;
}

/* Bytes moved by one call: weights read once, activations read and written once. */
double tc_bytes(const struct tc_case* c) {
    const double T = c->t, C = c->c, R = c->r, E = c->e, k = c->k, P = T * k;
    switch (c->kernel) {
        case TK_U32_FILL_RANDOM:
        case TK_F32_FILL_RANDOM: return 4 * T;
        case TK_BF16_FILL_RANDOM: return 2 * T;
        case TK_MF4_F32_CONVERT: return T / 2 + T / 32 + 4 * T;
        case TK_EMBEDDINGS: return 4 * T + 2 * T * C + 4 * T * C; /* ids, rows read, output */
        case TK_RMSNORM: return 4 * T * C + 2 * C + 4 * T * C;
        case TK_MATMUL:
        case TK_DENSE_MATMUL_QKV:
        case TK_DENSE_MATMUL_MLP_GATE: return 4 * T * C + 2 * R * C + 2 * R + 4 * T * R;
        case TK_MATMUL_ADD:
        case TK_DENSE_MATMUL_ATTN_OUTPUT: return 4 * T * C + 2 * R * C + 2 * R + 8 * T * R; /* output read + written */
        case TK_MATMUL_QKV: {
            const double rows = (double) c->d * (c->hq + 2 * c->hkv);
            return 4 * T * C + 2 * rows * C + 2 * rows + 4 * T * rows + 4 * T * c->hkv * 2 * c->d;
        }
        case TK_ROPE: return 2 * 4 * T * (double) (c->hq + c->hkv) * c->d; /* Q and K read + written */
        case TK_SDPA:
            return 4 * T * c->hq * c->d + 4 * (double) c->hkv * sdpa_keys(c) * 2 * c->d + 2 * (double) c->hq +
                   4 * T * c->hq * c->d;
        case TK_UNEMBEDDING: return 4 * T * C + 2 * R * C + 4 * T * R + 4 * T;
        case TK_TOPK: return 4 * T * E + 8 * P;
        case TK_ROUTING_METADATA: return 4 * P + 4 * (E + 1) + 4 * P;
        case TK_SCATTER: return 4 * T * C + 12 * P + 4 * (E + 1) + 4 * P * C;
        case TK_GATHER_AND_ACCUMULATE: return 4 * P * C + 16 * P + 4 * (E + 1) + 8 * T * C;
        case TK_ACCUMULATE: return 4 * P * C + 4 * P + 8 * T * C;
        case TK_ACCUMULATE_RMSNORM: return 4 * P * C + 4 * P + 8 * T * C + 2 * C + 4 * T * C;
        case TK_RMSNORM_MATMUL_TOPK: return 8 * T * C + 2 * C + 2 * E * C + 2 * E + 4 * T * E + 8 * P;
        case TK_MOE_MATMUL_SWIGLU:
        case TK_MOE_DENSE_MATMUL_SWIGLU: {
            const double rows = 2 * R, per_expert = rows * (C / 32) * 17 + 2 * rows;
            const double in_rows = c->kernel == TK_MOE_MATMUL_SWIGLU ? T : P;
            return experts_touched(c) * per_expert + 4 * in_rows * C + 4 * P * R + 4 * P;
        }
        case TK_MOE_MATMUL:
        case TK_MOE_DENSE_MATMUL: {
            const double per_expert = R * (C / 32) * 17 + 2 * R;
            return experts_touched(c) * per_expert + 4 * P * C + 4 * P * R + 4 * P;
        }
        case TK_SOFTMAX: return 4 * T * C + 4 * T + 4 * T * C + 4 * T;
        case TK_SAMPLE: return 4 * C + 8; /* one pass over the probabilities per draw */
        case TK_COUNT: break;
    }
    return 0;
}

double tc_flops(const struct tc_case* c) {
    const double T = c->t, C = c->c, R = c->r, k = c->k;
    switch (c->kernel) {
        case TK_RMSNORM: return 4 * T * C;
        case TK_ACCUMULATE_RMSNORM: return 2 * T * C * k + 4 * T * C;
        case TK_RMSNORM_MATMUL_TOPK: return 4 * T * C + 2 * T * C * (double) c->e;
        case TK_MATMUL:
        case TK_MATMUL_ADD:
        case TK_DENSE_MATMUL_QKV:
        case TK_DENSE_MATMUL_ATTN_OUTPUT:
        case TK_DENSE_MATMUL_MLP_GATE:
        case TK_UNEMBEDDING: return 2 * T * C * R;
        case TK_MATMUL_QKV: return 2 * T * C * (double) c->d * (c->hq + 2 * c->hkv);
        case TK_SDPA: return 4 * sdpa_pairs(c) * c->hq * c->d;
        case TK_MOE_MATMUL_SWIGLU:
        case TK_MOE_DENSE_MATMUL_SWIGLU: return 2 * T * k * C * 2 * R;
        case TK_MOE_MATMUL:
        case TK_MOE_DENSE_MATMUL: return 2 * T * k * C * R;
        default: return 0;
    }
}

void tc_shape_string(const struct tc_case* c, char* buf, size_t size) {
    switch (c->kernel) {
        case TK_U32_FILL_RANDOM:
        case TK_F32_FILL_RANDOM:
        case TK_BF16_FILL_RANDOM:
        case TK_MF4_F32_CONVERT: snprintf(buf, size, "n=%u", c->t); break;
        case TK_MATMUL_QKV:
        case TK_ROPE:
            snprintf(buf, size, "T=%u C=%u H=%u/%u D=%u pos=%llu", c->t, c->c, c->hq, c->hkv, c->d,
                     (unsigned long long) c->off);
            break;
        case TK_SDPA:
            if (c->window == UINT32_MAX) {
                snprintf(buf, size, "Tq=%u N0=%llu H=%u/%u D=%u full", c->t, (unsigned long long) c->off, c->hq, c->hkv,
                         c->d);
            } else {
                snprintf(buf, size, "Tq=%u N0=%llu H=%u/%u D=%u w=%u", c->t, (unsigned long long) c->off, c->hq,
                         c->hkv, c->d, c->window);
            }
            break;
        case TK_TOPK:
        case TK_ROUTING_METADATA: snprintf(buf, size, "T=%u %u of %u", c->t, c->k, c->e); break;
        case TK_SCATTER:
        case TK_GATHER_AND_ACCUMULATE:
        case TK_ACCUMULATE:
        case TK_ACCUMULATE_RMSNORM:
        case TK_RMSNORM_MATMUL_TOPK: snprintf(buf, size, "T=%u C=%u %u of %u", c->t, c->c, c->k, c->e); break;
        case TK_MOE_MATMUL_SWIGLU:
        case TK_MOE_MATMUL:
        case TK_MOE_DENSE_MATMUL_SWIGLU:
        case TK_MOE_DENSE_MATMUL:
            snprintf(buf, size, "T=%u C=%u R=%u %u of %u", c->t, c->c, c->r, c->k, c->e);
            break;
        case TK_SOFTMAX: snprintf(buf, size, "T=%u V=%u", c->t, c->c); break;
        case TK_SAMPLE: snprintf(buf, size, "V=%u draws=%u", c->c, c->t); break;
        default: snprintf(buf, size, "T=%u C=%u R=%u", c->t, c->c, c->r); break;
    }
}
