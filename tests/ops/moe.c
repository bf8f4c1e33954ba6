/* Test module of the MXFP4 mixture-of-experts matrix products: decode up-projection +
 * SwiGLU, decode down-projection, and the two expert-grouped (dense, prefill) ones. SwiGLU
 * limit 7 unless a case is named otherwise.
 *
 * Tolerance: each pre-activation as a matmul (tc_matmul_tol over |x| . |W| + |b| of the
 * dequantised expert row); SwiGLU: tol = 1.1 |l_c + 1| tol_g + |sw| tol_l +
 * (|1.702 g_c| + 8) eps |ref| (1.1 = max slope of g sigma(1.702 g); the exp argument
 * rounding).
 *
 * Case fields: t = tokens (dense: P = t * k rows), c = num_cols, r = num_rows (I for
 * SwiGLU: the expert has 2r rows), e = experts, k = active, f = SwiGLU limit;
 * TC_TINY_SCALES: subnormal weights against activations near 2^118. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "reference/reference.h"

static const struct tc_case swiglu_cases[] = {
    {"moe_swiglu_1of1_cols32_rows1", .t = 1, .c = 32, .r = 1, .e = 1, .k = 1, .f = 7.0f, .flags = TC_QUICK},
    {"moe_swiglu_3of7_19tok_cols64_rows19", .t = 19, .c = 64, .r = 19, .e = 7, .k = 3, .f = 7.0f, .flags = TC_QUICK},
    {"moe_swiglu_limit1_3of7_cols96_rows3", .t = 3, .c = 96, .r = 3, .e = 7, .k = 3, .f = 1.0f, .flags = TC_QUICK},
    {"moe_swiglu_odd_cols_2880_rows130_3tok", .t = 3, .c = 2880, .r = 130, .e = 32, .k = 4, .f = 7.0f},
    {"moe_swiglu_20b_decode_4of32_2880", .t = 1, .c = 2880, .r = 2880, .e = 32, .k = 4, .f = 7.0f, .flags = TC_BENCH},
    {"moe_swiglu_120b_decode_4of128_2880", .t = 1, .c = 2880, .r = 2880, .e = 128, .k = 4, .f = 7.0f,
     .flags = TC_BENCH},
    /* a 64- and a 128-token prefill chunk of 20b through the decode kernels (the CPU engine's
     * path below its dense-rows threshold): ~8 / 16 tokens per expert; 8 random tokens
     * checked */
    {"moe_swiglu_20b_prefill64_4of32_2880", .t = 64, .c = 2880, .r = 2880, .e = 32, .k = 4, .f = 7.0f, .check = 8,
     .flags = TC_BENCH},
    {"moe_swiglu_20b_prefill128_4of32_2880", .t = 128, .c = 2880, .r = 2880, .e = 32, .k = 4, .f = 7.0f, .check = 8,
     .flags = TC_BENCH | TC_BENCH_ONLY},
    {"moe_swiglu_20b_batch4_4of32_2880", .t = 4, .c = 2880, .r = 2880, .e = 32, .k = 4, .f = 7.0f,
     .flags = TC_BENCH_CUDA | TC_BENCH_ONLY},
    {"moe_swiglu_tiny_scales_2of3_cols2880", .t = 2, .c = 2880, .r = 130, .e = 3, .k = 2, .f = 7.0f,
     .flags = TC_TINY_SCALES},
    /* a decode step of 16 streams of 20b (CUDA: the expert-grouped kernel, ~2 pairs an
     * expert), and of 8 streams with one expert id past the experts (TC_FAULT: refused by the
     * call where the host sees the ids, NaN in that pair's outputs and the error at the
     * synchronize on CUDA; the other tokens checked) */
    {"moe_swiglu_20b_batch16_4of32_2880", .t = 16, .c = 2880, .r = 2880, .e = 32, .k = 4, .f = 7.0f, .check = 6,
     .flags = TC_BENCH},
    {"moe_swiglu_fault_expert_id_8tok_4of32_cols64", .t = 8, .c = 64, .r = 40, .e = 32, .k = 4, .f = 7.0f,
     .flags = TC_FAULT | TC_QUICK},
    {"moe_swiglu_fault_expert_id_3tok_4of32_cols64", .t = 3, .c = 64, .r = 40, .e = 32, .k = 4, .f = 7.0f,
     .flags = TC_FAULT | TC_QUICK},
    /* CUDA: from six pairs an expert on average the pairs of an expert run together
     * (moe_gemv_group_kernel, tiles of 8 pairs): a bad id among them, tiny scales */
    {"moe_swiglu_fault_expert_id_64tok_4of32_cols64", .t = 64, .c = 64, .r = 40, .e = 32, .k = 4, .f = 7.0f,
     .flags = TC_FAULT},
    {"moe_swiglu_tiny_scales_12tok_2of3_cols2880", .t = 12, .c = 2880, .r = 130, .e = 3, .k = 2, .f = 7.0f,
     .flags = TC_TINY_SCALES},
};

static const struct tc_case down_cases[] = {
    {"moe_matmul_1of1_cols32_rows1", .t = 1, .c = 32, .r = 1, .e = 1, .k = 1, .flags = TC_QUICK},
    {"moe_matmul_3of7_19tok_cols64_rows19", .t = 19, .c = 64, .r = 19, .e = 7, .k = 3, .flags = TC_QUICK},
    {"moe_matmul_tiny_scales_2of3_cols2880", .t = 2, .c = 2880, .r = 131, .e = 3, .k = 2, .flags = TC_TINY_SCALES},
    {"moe_matmul_odd_rows_2881_3tok", .t = 3, .c = 2880, .r = 2881, .e = 32, .k = 4},
    {"moe_matmul_20b_decode_4of32_2880", .t = 1, .c = 2880, .r = 2880, .e = 32, .k = 4, .flags = TC_BENCH},
    {"moe_matmul_120b_decode_4of128_2880", .t = 1, .c = 2880, .r = 2880, .e = 128, .k = 4, .flags = TC_BENCH},
    {"moe_matmul_20b_prefill64_4of32_2880", .t = 64, .c = 2880, .r = 2880, .e = 32, .k = 4, .check = 8,
     .flags = TC_BENCH},
    {"moe_matmul_20b_prefill128_4of32_2880", .t = 128, .c = 2880, .r = 2880, .e = 32, .k = 4, .check = 8,
     .flags = TC_BENCH | TC_BENCH_ONLY},
    {"moe_matmul_20b_batch16_4of32_2880", .t = 16, .c = 2880, .r = 2880, .e = 32, .k = 4, .check = 6,
     .flags = TC_BENCH},
    {"moe_matmul_fault_expert_id_8tok_4of32_cols64", .t = 8, .c = 64, .r = 41, .e = 32, .k = 4,
     .flags = TC_FAULT | TC_QUICK},
    /* CUDA's grouped pairs (above): a bad id, odd rows */
    {"moe_matmul_fault_expert_id_64tok_4of32_cols64", .t = 64, .c = 64, .r = 41, .e = 32, .k = 4, .flags = TC_FAULT},
    {"moe_matmul_odd_rows_2881_13tok_4of8", .t = 13, .c = 2880, .r = 2881, .e = 8, .k = 4, .check = 5},
};

static const struct tc_case dense_swiglu_cases[] = {
    {"moe_dense_swiglu_1pair", .t = 1, .c = 32, .r = 1, .e = 1, .k = 1, .f = 7.0f, .flags = TC_QUICK},
    {"moe_dense_swiglu_3of7_19tok_cols64_rows19", .t = 19, .c = 64, .r = 19, .e = 7, .k = 3, .f = 7.0f,
     .flags = TC_QUICK},
    /* Prefill MoE at 512 tokens is 51 G MACs per backend (2048 expert rows x 2880 x 8640,
     * minutes on the scalar backend): 16 tokens (64 expert rows, ~2 per expert) for 20b and
     * 8 tokens (32 rows over 128 experts: most experts have 0 or 1 row) for 120b; 6 / 4
     * random rows checked against the reference, the rest scanned for NaN. */
    {"moe_dense_swiglu_20b_prefill16_4of32_2880", .t = 16, .c = 2880, .r = 2880, .e = 32, .k = 4, .f = 7.0f,
     .check = 6, .flags = TC_BENCH},
    /* one token of 20b in the grouped form (row order many: a stream decoding alone) */
    {"moe_dense_swiglu_20b_decode_1tok_4of32_2880", .t = 1, .c = 2880, .r = 2880, .e = 32, .k = 4, .f = 7.0f,
     .flags = TC_BENCH},
    /* a 64-stream decode step of 20b (256 pairs over 32 experts, ~8 rows each) */
    {"moe_dense_swiglu_20b_decode_x64_4of32_2880", .t = 64, .c = 2880, .r = 2880, .e = 32, .k = 4, .f = 7.0f,
     .flags = TC_BENCH | TC_BENCH_ONLY},
    /* CUDA's 16-row tiles (fewer than 12 rows per expert on average) with an expert of more
     * than one tile (33 rows over 3 experts, skewed: 31, 1, 1) */
    {"moe_dense_swiglu_16row_tiles_33tok_1of3_skewed_cols64", .t = 33, .c = 64, .r = 19, .e = 3, .k = 1, .f = 7.0f,
     .flags = TC_QUICK | TC_SKEWED},
    /* CUDA's 32-row tiles (12 to 36 rows per expert on average): 31 rows over 2 experts; an
     * expert of three tiles (69 rows over 3, skewed: 67, 1, 1) */
    {"moe_dense_swiglu_32row_tiles_31tok_1of2_cols64", .t = 31, .c = 64, .r = 19, .e = 2, .k = 1, .f = 7.0f,
     .flags = TC_QUICK},
    {"moe_dense_swiglu_32row_tiles_69tok_1of3_skewed_cols2880_rows37", .t = 69, .c = 2880, .r = 37, .e = 3, .k = 1,
     .f = 7.0f, .flags = TC_QUICK | TC_SKEWED},
    /* CUDA's 16-row kernel streams 2 blocks (64 columns) a stage: an odd block count leaves
     * the last stage half full (91 blocks, 2 activation parts; 3 blocks, 3 parts); the last
     * weight tile partial (38 and 74 weight rows) */
    {"moe_dense_swiglu_16row_tiles_odd_blocks_5tok_2of3_cols2912_rows19", .t = 5, .c = 2912, .r = 19, .e = 3,
     .k = 2, .f = 7.0f},
    {"moe_dense_swiglu_16row_tiles_odd_blocks_7tok_3of5_cols96_rows37", .t = 7, .c = 96, .r = 37, .e = 5, .k = 3,
     .f = 7.0f, .flags = TC_QUICK},
    /* CUDA's 32-row ring tiles with an odd block count (91 blocks, 2 activation parts; 3
     * blocks, 3 parts), partial row tiles and a partial weight tile */
    {"moe_dense_swiglu_32row_tiles_odd_blocks_45tok_1of2_cols2912_rows19", .t = 45, .c = 2912, .r = 19, .e = 2,
     .k = 1, .f = 7.0f},
    {"moe_dense_swiglu_32row_tiles_odd_blocks_45tok_1of2_cols96_rows37", .t = 45, .c = 96, .r = 37, .e = 2, .k = 1,
     .f = 7.0f, .flags = TC_QUICK},
    /* CUDA's 64-row tiles (36 rows per expert or more; the wgmma kernel on Hopper, the ring
     * elsewhere) with an odd block count (the last stage half full: 91 blocks, 2 activation
     * parts; 3 blocks, 3 parts), partial row tiles (~40 rows per expert) and a partial
     * weight tile */
    {"moe_dense_swiglu_64row_tiles_odd_blocks_80tok_1of2_cols2912_rows19", .t = 80, .c = 2912, .r = 19, .e = 2,
     .k = 1, .f = 7.0f},
    {"moe_dense_swiglu_64row_tiles_odd_blocks_80tok_1of2_cols96_rows37", .t = 80, .c = 96, .r = 37, .e = 2, .k = 1,
     .f = 7.0f, .flags = TC_QUICK},
    /* experts 8- but not 16-byte aligned: CUDA's register-fed 64-row kernel (no cp.async) */
    {"moe_dense_swiglu_stride8_64row_tiles_64tok_2of4_cols2880_rows37", .t = 64, .c = 2880, .r = 37, .e = 4, .k = 2,
     .f = 7.0f, .flags = TC_STRIDE8},
    /* CUDA's 64-row tiles with tiny scales (subnormal bf16 weights) */
    {"moe_dense_swiglu_64row_tiles_tiny_scales_260tok_2of3_cols2880", .t = 260, .c = 2880, .r = 34, .e = 3,
     .k = 2, .f = 7.0f, .flags = TC_TINY_SCALES},
    {"moe_dense_swiglu_120b_prefill8_4of128_2880", .t = 8, .c = 2880, .r = 2880, .e = 128, .k = 4, .f = 7.0f,
     .check = 4},
    /* denser expert tiles (64 tokens x 2 of 4 experts: ~32 rows per expert; CUDA's 32-row tiles), as in a
     * 512-token prefill chunk of 20b; 8 random rows checked */
    {"moe_dense_swiglu_64tok_2of4_2880", .t = 64, .c = 2880, .r = 2880, .e = 4, .k = 2, .f = 7.0f, .check = 8},
    /* the 20b expert layout at full width (2 x 2880 weight rows: CUDA's 256-row blocks, the last
     * one half full) over a prefill step's rows: ~20 rows an expert (CUDA's 32-row tiles, experts
     * of one and two tiles) and ~40 (64-row tiles); short rows (352 columns, 11 blocks: a half
     * stage last) keep the CPU backends quick; 64 random rows checked */
    {"moe_dense_swiglu_20b_width_160tok_4of32_cols352", .t = 160, .c = 352, .r = 2880, .e = 32, .k = 4, .f = 7.0f,
     .check = 64},
    {"moe_dense_swiglu_20b_width_320tok_4of32_cols352", .t = 320, .c = 352, .r = 2880, .e = 32, .k = 4, .f = 7.0f,
     .check = 64},
    {"moe_dense_swiglu_20b_prefill512_4of32_2880", .t = 512, .c = 2880, .r = 2880, .e = 32, .k = 4, .f = 7.0f,
     .flags = TC_BENCH | TC_BENCH_ONLY},
    /* a 512-token prefill chunk of 120b (~16 rows an expert: CUDA's 32-row tiles) */
    {"moe_dense_swiglu_120b_prefill512_4of128_2880", .t = 512, .c = 2880, .r = 2880, .e = 128, .k = 4, .f = 7.0f,
     .flags = TC_BENCH_CUDA | TC_BENCH_ONLY},
    /* subnormal weights on CUDA's 32-row tiles (~24 rows an expert) */
    {"moe_dense_swiglu_32row_tiles_tiny_scales_60tok_2of5_cols2880", .t = 60, .c = 2880, .r = 34, .e = 5, .k = 2,
     .f = 7.0f, .flags = TC_TINY_SCALES},
    /* subnormal weights (scale bytes 0..9) against activations near 2^118: the tensor-core
     * path's exact bf16 dequantisation (2 parts at 2880 columns, 3 parts at 64) */
    {"moe_dense_swiglu_tiny_scales_2of3_cols2880", .t = 9, .c = 2880, .r = 130, .e = 3, .k = 2, .f = 7.0f,
     .flags = TC_TINY_SCALES},
    {"moe_dense_swiglu_tiny_scales_2of3_cols64", .t = 9, .c = 64, .r = 19, .e = 3, .k = 2, .f = 7.0f,
     .flags = TC_QUICK | TC_TINY_SCALES},
};

static const struct tc_case dense_down_cases[] = {
    {"moe_dense_matmul_1pair", .t = 1, .c = 32, .r = 1, .e = 1, .k = 1, .flags = TC_QUICK},
    {"moe_dense_matmul_3of7_19tok_cols64_rows19", .t = 19, .c = 64, .r = 19, .e = 7, .k = 3, .flags = TC_QUICK},
    {"moe_dense_matmul_20b_prefill16_4of32_2880", .t = 16, .c = 2880, .r = 2880, .e = 32, .k = 4, .check = 6,
     .flags = TC_BENCH},
    {"moe_dense_matmul_20b_decode_1tok_4of32_2880", .t = 1, .c = 2880, .r = 2880, .e = 32, .k = 4, .flags = TC_BENCH},
    {"moe_dense_matmul_20b_decode_x64_4of32_2880", .t = 64, .c = 2880, .r = 2880, .e = 32, .k = 4,
     .flags = TC_BENCH | TC_BENCH_ONLY},
    {"moe_dense_matmul_16row_tiles_33tok_1of3_skewed_cols2880_rows131", .t = 33, .c = 2880, .r = 131, .e = 3,
     .k = 1, .flags = TC_SKEWED},
    {"moe_dense_matmul_32row_tiles_31tok_1of2_cols2880_rows131", .t = 31, .c = 2880, .r = 131, .e = 2, .k = 1},
    {"moe_dense_matmul_32row_tiles_odd_blocks_50tok_1of2_cols2912_rows133", .t = 50, .c = 2912, .r = 133, .e = 2,
     .k = 1},
    {"moe_dense_matmul_32row_tiles_69tok_1of3_skewed_cols96_rows133", .t = 69, .c = 96, .r = 133, .e = 3, .k = 1,
     .flags = TC_QUICK | TC_SKEWED},
    {"moe_dense_matmul_16row_tiles_odd_blocks_6tok_2of3_cols96_rows133", .t = 6, .c = 96, .r = 133, .e = 3, .k = 2,
     .flags = TC_QUICK},
    {"moe_dense_matmul_64row_tiles_odd_blocks_80tok_1of2_cols2912_rows133", .t = 80, .c = 2912, .r = 133, .e = 2,
     .k = 1},
    {"moe_dense_matmul_stride8_64row_tiles_70tok_1of2_cols96_rows133", .t = 70, .c = 96, .r = 133, .e = 2, .k = 1,
     .flags = TC_STRIDE8 | TC_QUICK},
    {"moe_dense_matmul_64row_tiles_tiny_scales_260tok_2of3_cols64", .t = 260, .c = 64, .r = 19, .e = 3, .k = 2,
     .flags = TC_TINY_SCALES},
    {"moe_dense_matmul_64tok_2of4_2880_rows2881", .t = 64, .c = 2880, .r = 2881, .e = 4, .k = 2, .check = 8},
    /* the 20b down projection's full width (2880 rows: 11 full 256-row blocks and a quarter) */
    {"moe_dense_matmul_20b_width_160tok_4of32_cols352", .t = 160, .c = 352, .r = 2880, .e = 32, .k = 4, .check = 64},
    {"moe_dense_matmul_20b_width_320tok_4of32_cols352", .t = 320, .c = 352, .r = 2880, .e = 32, .k = 4, .check = 64},
    {"moe_dense_matmul_20b_prefill512_4of32_2880", .t = 512, .c = 2880, .r = 2880, .e = 32, .k = 4,
     .flags = TC_BENCH | TC_BENCH_ONLY},
    {"moe_dense_matmul_120b_prefill512_4of128_2880", .t = 512, .c = 2880, .r = 2880, .e = 128, .k = 4,
     .flags = TC_BENCH_CUDA | TC_BENCH_ONLY},
    {"moe_dense_matmul_tiny_scales_2of3_cols2880", .t = 9, .c = 2880, .r = 131, .e = 3, .k = 2,
     .flags = TC_TINY_SCALES},
    {"moe_dense_matmul_120b_prefill8_4of128_2880", .t = 8, .c = 2880, .r = 2880, .e = 128, .k = 4, .check = 4},
};

static bool has_swiglu(const struct tc_problem* p) {
    return p->op->kernel == gptoss_kernel_f32_mf4w_moe_matmul_swiglu ||
           p->op->kernel == gptoss_kernel_f32_mf4w_moe_dense_matmul_swiglu;
}
static bool is_dense(const struct tc_problem* p) {
    return p->op->kernel == gptoss_kernel_f32_mf4w_moe_dense_matmul_swiglu ||
           p->op->kernel == gptoss_kernel_f32_mf4w_moe_dense_matmul;
}

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

/* The token whose slot 0 a TC_FAULT case routes past the experts. */
static uint32_t fault_token(const struct tc_case* c) { return c->t / 2; }

/* MXFP4 experts: per expert blocks u8[rows][cols/32][16] (random bytes), scales
 * u8[rows][cols/32] stored +14-biased in 137..142 (raw 2^-4 .. 2^1), bias bf16[rows]
 * ~U[-1,1], interleaved with one byte stride as in the model file. tiny_scales: stored
 * 0..9 (multipliers 2^-141 .. 2^-132: every weight an f32 subnormal), bias ~U[-2^-12, 2^-12]. */
static void make_experts(struct tc_problem* p, struct tc_rng* rng, uint32_t E, uint32_t rows, uint32_t cols,
                         bool tiny_scales, bool stride8) {
    const size_t nblocks = (size_t) rows * (cols / 32);
    p->scales_off = nblocks * 16;
    p->bias_off = align_up(p->scales_off + nblocks, 16);
    p->expert_stride = align_up(p->bias_off + (size_t) rows * 2, 64) + (stride8 ? 8 : 0);
    uint8_t* base = tc_add_buffer(p, "experts", TC_IN, TC_U8, (size_t) E * p->expert_stride);
    if (base == NULL) return;
    memset(base, 0, (size_t) E * p->expert_stride);
    for (uint32_t e = 0; e < E; e++) {
        uint8_t* x = base + (size_t) e * p->expert_stride;
        tc_fill_bytes(rng, x, nblocks * 16);
        for (size_t i = 0; i < nblocks; i++) {
            x[p->scales_off + i] =
                tiny_scales ? (uint8_t) (tc_rng_u64(rng) % 10) : (uint8_t) (14 + 127 - 4 + tc_rng_u64(rng) % 6);
        }
        const float b = tiny_scales ? 0x1.0p-12f : 1.0f;
        tc_fill_bf16(rng, (gptoss_bf16*) (x + p->bias_off), rows, -b, b);
    }
}

static void make(struct tc_problem* p, struct tc_rng* rng) {
    const struct tc_case* c = p->c;
    const bool swiglu = has_swiglu(p), dense = is_dense(p), tiny = (c->flags & TC_TINY_SCALES) != 0;
    const size_t P = (size_t) c->t * c->k;
    /* rows of the input: decode up-projection x[T], down-projection x[k][T], dense x[P] */
    const size_t in_rows = dense ? P : swiglu ? c->t : P;
    uint32_t* offsets = dense ? tc_add_buffer(p, "expert_offsets", TC_IN, TC_U32, (size_t) c->e + 1) : NULL;
    float* x = tc_add_buffer(p, "input", TC_IN, TC_F32, in_rows * c->c);
    uint32_t* ids = dense ? NULL : tc_add_buffer(p, "expert_ids", TC_IN, TC_U32, P);
    make_experts(p, rng, c->e, swiglu ? 2 * c->r : c->r, c->c, tiny, (c->flags & TC_STRIDE8) != 0);
    tc_add_buffer(p, "output", TC_OUT, TC_F32, P * c->r);
    /* TC_FAULT: the bad pair's NaN are expected where the call runs (verify checks where) */
    if (c->flags & TC_FAULT) p->b[3].nan_ok = true;
    if (!x || (dense ? !offsets : !ids) || !p->b[2].host) return;
    /* activations scaled so that the pre-activations are O(1..10): both sides of the
     * SwiGLU clamp are hit (tiny scales: near 2^118, so that products with the subnormal
     * weights are O(2^-20 .. 2^-11) and per-block partials stay finite) */
    const float a = tiny ? 0x1.0p118f : 4.0f / sqrtf((float) c->c);
    tc_fill_f32(rng, x, in_rows * c->c, -a, a);
    if (dense && (c->flags & TC_SKEWED)) {
        offsets[0] = 0;
        for (uint32_t e = 1; e <= c->e; e++) offsets[e] = (uint32_t) P - (c->e - e);
    } else if (dense) {
        tc_make_offsets(rng, c->t, c->e, c->k, offsets);
    } else {
        tc_make_routing(rng, c->t, c->e, c->k, ids, NULL);
        if (c->flags & TC_FAULT) ids[(size_t) fault_token(c) * c->k] = c->e + 5; /* slot 0 of that token */
    }
}

/* TC_FAULT: the status, the message naming the bad id, and (reported by the synchronize:
 * the call ran) NaN in every output of the bad pair (token fault_token, slot 0) and in no
 * other output (the generic check lets NaN through for these cases); the sampled tokens
 * were compared with the reference. */
static void verify(struct tc_problem* p, const struct tc_expect* ex, void* const outs[], struct tc_result* res) {
    (void) ex;
    const struct tc_case* c = p->c;
    if (!(c->flags & TC_FAULT)) return;
    if (p->fault.status != gptoss_status_invalid_argument) {
        tc_failf(res, "an expert id past the experts gave %s (%s), not invalid_argument",
                 gptoss_status_to_string((enum gptoss_status) p->fault.status), p->fault.message);
        return;
    }
    char host[64];
    snprintf(host, sizeof host, "expert_ids[%u]", fault_token(c) * c->k);
    const char* want = p->fault.at_sync ? "an expert id >= num_experts" : host;
    if (strstr(p->fault.message, want) == NULL) {
        tc_failf(res, "the %s message does not name the fault (\"%s\"): %s",
                 p->fault.at_sync ? "synchronize" : "call's", want, p->fault.message);
        return;
    }
    if (!p->fault.at_sync) return; /* refused by the call: the harness checked nothing was written */
    const float* out = outs[3];
    const size_t start = (size_t) fault_token(c) * c->r; /* pair 0 T + fault_token */
    const size_t total = (size_t) c->t * c->k * c->r;
    for (size_t j = 0; j < total; j++) {
        const bool bad = j >= start && j < start + c->r;
        if (bad && !isnan(out[j])) {
            tc_failf(res, "the bad pair's output[%zu] = %.9g, not NaN", j, out[j]);
            return;
        }
        if (!bad && isnan(out[j])) {
            tc_failf(res, "output[%zu], outside the bad pair, is NaN (not written?)", j);
            return;
        }
    }
}

/* buffers: decode input 0, expert_ids 1; dense expert_offsets 0, input 1; experts 2, output 3 */
#define EXPERTS(p, d)                                                   \
    (const uint8_t*) (d)[2], (const uint8_t*) (d)[2] + (p)->scales_off, \
        (const gptoss_bf16*) ((const uint8_t*) (d)[2] + (p)->bias_off), (p)->expert_stride

static void args_swiglu(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    const struct tc_case* c = p->c;
    a->f32_mf4w_moe_matmul_swiglu = (struct gptoss_f32_mf4w_moe_matmul_swiglu_args){
        d[0], d[1], EXPERTS(p, d), d[3], c->t, c->k, c->e, c->c, c->r, c->f,
    };
}
static void args_down(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    const struct tc_case* c = p->c;
    a->f32_mf4w_moe_matmul = (struct gptoss_f32_mf4w_moe_matmul_args){
        d[0], d[1], EXPERTS(p, d), d[3], c->t, c->k, c->e, c->c, c->r,
    };
}
static void args_dense_swiglu(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    const struct tc_case* c = p->c;
    a->f32_mf4w_moe_dense_matmul_swiglu = (struct gptoss_f32_mf4w_moe_dense_matmul_swiglu_args){
        d[0], d[1], EXPERTS(p, d), d[3], c->t, c->k, c->e, c->c, c->r, c->f,
    };
}
static void args_dense_down(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    const struct tc_case* c = p->c;
    a->f32_mf4w_moe_dense_matmul = (struct gptoss_f32_mf4w_moe_dense_matmul_args){
        d[0], d[1], EXPERTS(p, d), d[3], c->t, c->k, c->e, c->c, c->r,
    };
}

/* For rows of one MXFP4 expert: pre[r] = x . W[r] + b[r] and sabs[r] = |x| . |W[r]| + |b[r]|,
 * in double. Used for the tolerance only (the oracle value comes from the reference); one
 * ldexp per block instead of one per element keeps the 120b shapes fast. */
static void mxfp4_row_dots(const struct tc_problem* p, uint32_t e, uint32_t rows, uint32_t cols, const float* x,
                           double* pre, double* sabs) {
    const uint8_t* base = (const uint8_t*) p->b[2].host + (size_t) e * p->expert_stride;
    const uint8_t* scales = base + p->scales_off;
    const gptoss_bf16* bias = (const gptoss_bf16*) (base + p->bias_off);
    const uint32_t nb = cols / 32;
    for (uint32_t r = 0; r < rows; r++) {
        double acc = 0.0, acc_abs = 0.0;
        for (uint32_t b = 0; b < nb; b++) {
            const double m = ldexp(1.0, (int) scales[(size_t) r * nb + b] - 14 - 127);
            const uint8_t* q = base + ((size_t) r * nb + b) * 16;
            double s = 0.0, sa = 0.0;
            for (uint32_t j = 0; j < 32; j++) {
                const float w = gptoss_fp4_values[(j & 1) ? (q[j / 2] >> 4) : (q[j / 2] & 15)];
                const double xv = x[b * 32 + j];
                s += xv * w;
                sa += fabs(xv) * fabsf(w);
            }
            acc += s * m;
            acc_abs += sa * m;
        }
        const double bv = tc_bf16d(bias[r]);
        pre[r] = acc + bv;
        sabs[r] = acc_abs + fabs(bv);
    }
}

/* SwiGLU output tolerance from the pre-activations and their tolerances. */
static double swiglu_tol(double g, double l, double tol_g, double tol_l, double limit, double ref) {
    const double gc = fmin(g, limit);
    const double lc = fmin(fmax(l, -limit), limit);
    const double sw = gc / (1.0 + exp(-1.702 * gc));
    return 1.1 * fabs(lc + 1.0) * tol_g + fabs(sw) * tol_l + (fabs(1.702 * gc) + 8.0) * TC_EPS32 * fabs(ref) + TC_TINY;
}

static void expect(const struct tc_problem* p, struct tc_expect* ex) {
    const struct tc_case* c = p->c;
    const uint32_t C = c->c, R = c->r, k = c->k, T = c->t;
    const bool swiglu = has_swiglu(p), dense = is_dense(p);
    const uint32_t wrows = swiglu ? 2 * R : R;
    const uint8_t* x8 = p->b[2].host;
    const uint8_t* blocks = x8;
    const uint8_t* scales = x8 + p->scales_off;
    const gptoss_bf16* bias = (const gptoss_bf16*) (x8 + p->bias_off);
    const uint32_t rows_per_item = dense ? 1 : k; /* decode: a token has k slot rows */
    float* in = tc_xmalloc((size_t) rows_per_item * C * sizeof *in);
    double* pre = tc_xmalloc((size_t) rows_per_item * wrows * sizeof *pre);
    double* sabs = tc_xmalloc((size_t) rows_per_item * wrows * sizeof *sabs);
    double* ref = tc_xmalloc((size_t) rows_per_item * R * sizeof *ref);
    uint32_t* off1 = tc_xmalloc(((size_t) c->e + 1) * sizeof *off1);
    tc_pick_tokens(ex, dense ? T * k : T, c->check, p->seed);
    for (uint32_t i = 0; i < ex->ntokens; i++) {
        const uint32_t t = ex->tokens[i];
        if ((c->flags & TC_FAULT) && t == fault_token(c)) continue; /* verify judges it */
        if (dense) {
            /* row t of the expert-grouped input: a one-row problem for its expert */
            const uint32_t* offsets = p->b[0].host;
            uint32_t e = 0;
            while (!(offsets[e] <= t && t < offsets[e + 1])) e++;
            for (uint32_t j = 0; j <= c->e; j++) off1[j] = j > e ? 1 : 0;
            memcpy(in, (const float*) p->b[1].host + (size_t) t * C, C * sizeof *in);
            if (swiglu) {
                gptoss_ref_f32_mf4w_moe_dense_matmul_swiglu(
                    &(struct gptoss_f32_mf4w_moe_dense_matmul_swiglu_args){
                        off1, in, blocks, scales, bias, p->expert_stride, NULL, 1, 1, c->e, C, R, c->f},
                    ref);
            } else {
                gptoss_ref_f32_mf4w_moe_dense_matmul(
                    &(struct gptoss_f32_mf4w_moe_dense_matmul_args){off1, in, blocks, scales, bias, p->expert_stride,
                                                                    NULL, 1, 1, c->e, C, R},
                    ref);
            }
            mxfp4_row_dots(p, e, wrows, C, in, pre, sabs);
        } else {
            const uint32_t* ids = (const uint32_t*) p->b[1].host + (size_t) t * k;
            const float* x = p->b[0].host;
            for (uint32_t j = 0; j < k; j++) {
                /* swiglu: every slot reads x[t]; down: slot j reads input[j][t] */
                const float* src = swiglu ? x + (size_t) t * C : x + ((size_t) j * T + t) * C;
                memcpy(in + (size_t) j * C, src, C * sizeof *in);
            }
            if (swiglu) {
                gptoss_ref_f32_mf4w_moe_matmul_swiglu(
                    &(struct gptoss_f32_mf4w_moe_matmul_swiglu_args){in, ids, blocks, scales, bias, p->expert_stride,
                                                                     NULL, 1, k, c->e, C, R, c->f},
                    ref);
            } else {
                gptoss_ref_f32_mf4w_moe_matmul(
                    &(struct gptoss_f32_mf4w_moe_matmul_args){in, ids, blocks, scales, bias, p->expert_stride, NULL, 1,
                                                              k, c->e, C, R},
                    ref);
            }
            for (uint32_t j = 0; j < k; j++) {
                mxfp4_row_dots(p, ids[j], wrows, C, in + (size_t) j * C, pre + (size_t) j * wrows,
                               sabs + (size_t) j * wrows);
            }
        }
        for (uint32_t j = 0; j < rows_per_item; j++) {
            const size_t start = dense ? (size_t) t * R : ((size_t) j * T + t) * R;
            struct tc_span* s = dense ? tc_add_span(ex, 3, start, R, false, 4, "row %u", t)
                                      : tc_add_span(ex, 3, start, R, false, 4, "token %u slot %u", t, j);
            const double* pj = pre + (size_t) j * wrows;
            const double* sj = sabs + (size_t) j * wrows;
            for (uint32_t r = 0; r < R; r++) {
                const double v = ref[(size_t) j * R + r];
                s->ref[r] = v;
                if (swiglu) {
                    const double g = pj[2 * r], l = pj[2 * r + 1];
                    const double tg = tc_matmul_tol(C, sj[2 * r], 0, 0, g),
                                 tl = tc_matmul_tol(C, sj[2 * r + 1], 0, 0, l);
                    s->tol[r] = swiglu_tol(g, l, tg, tl, c->f, v);
                } else {
                    s->tol[r] = tc_matmul_tol(C, sj[r], 0, 0, v);
                }
            }
        }
    }
    free(in);
    free(pre);
    free(sabs);
    free(ref);
    free(off1);
}

/* Number of distinct experts a batch of T tokens x k touches at most. */
static double experts_touched(const struct tc_case* c) {
    const double pairs = (double) c->t * c->k;
    return pairs < c->e ? pairs : c->e;
}

static double bytes_swiglu(const struct tc_case* c, double in_rows) {
    const double C = c->c, R = c->r, P = (double) c->t * c->k, rows = 2 * R;
    return experts_touched(c) * (rows * (C / 32) * 17 + 2 * rows) + 4 * in_rows * C + 4 * P * R + 4 * P;
}
static double bytes_up(const struct tc_case* c) { return bytes_swiglu(c, c->t); }
static double bytes_dense_up(const struct tc_case* c) { return bytes_swiglu(c, (double) c->t * c->k); }
static double bytes_down(const struct tc_case* c) {
    const double C = c->c, R = c->r, P = (double) c->t * c->k;
    return experts_touched(c) * (R * (C / 32) * 17 + 2 * R) + 4 * P * C + 4 * P * R + 4 * P;
}
static double flops_up(const struct tc_case* c) { return 2.0 * c->t * c->k * c->c * 2.0 * c->r; }
static double flops_down(const struct tc_case* c) { return 2.0 * c->t * c->k * c->c * c->r; }
static void shape(const struct tc_case* c, char* buf, size_t size) {
    snprintf(buf, size, "T=%u C=%u R=%u %u of %u", c->t, c->c, c->r, c->k, c->e);
}

const struct tc_op tc_op_f32_mf4w_moe_matmul_swiglu = {
    gptoss_kernel_f32_mf4w_moe_matmul_swiglu,
    TC_CASES(swiglu_cases),
    .make = make,
    .args = args_swiglu,
    .expect = expect,
    .verify = verify,
    .bytes = bytes_up,
    .flops = flops_up,
    .shape = shape,
};
const struct tc_op tc_op_f32_mf4w_moe_matmul = {
    gptoss_kernel_f32_mf4w_moe_matmul,
    TC_CASES(down_cases),
    .make = make,
    .args = args_down,
    .expect = expect,
    .verify = verify,
    .bytes = bytes_down,
    .flops = flops_down,
    .shape = shape,
};
const struct tc_op tc_op_f32_mf4w_moe_dense_matmul_swiglu = {
    gptoss_kernel_f32_mf4w_moe_dense_matmul_swiglu,
    TC_CASES(dense_swiglu_cases),
    .make = make,
    .args = args_dense_swiglu,
    .expect = expect,
    .bytes = bytes_dense_up,
    .flops = flops_up,
    .shape = shape,
};
const struct tc_op tc_op_f32_mf4w_moe_dense_matmul = {
    gptoss_kernel_f32_mf4w_moe_dense_matmul,
    TC_CASES(dense_down_cases),
    .make = make,
    .args = args_dense_down,
    .expect = expect,
    .bytes = bytes_down,
    .flops = flops_down,
    .shape = shape,
};
