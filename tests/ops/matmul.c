/* Test module of the bf16-weight matrix products: matmul, matmul_add and the three
 * "dense" (prefill) names, which compute the same two functions with other tilings.
 *
 * Tolerance: tc_matmul_tol, 8 sqrt(K) eps sum|x w| + 4 eps (|b| + |old|) + 2 eps |ref|
 * (the reduction; the bias add, residual add and final store round once each).
 * TC_TIES inputs (small integers, exact products and sums on every backend) are shared
 * with the unembedding module (tc_fill_matmul).
 *
 * Case fields: t = tokens, c = num_cols (K), r = num_rows (N); TC_NO_BIAS: bias NULL. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ops.h"
#include "reference/reference.h"

static const struct tc_case f32_bf16w_matmul_cases[] = {
    {"matmul_1tok_1x1", .t = 1, .c = 1, .r = 1, .flags = TC_QUICK},
    {"matmul_odd_cols_3", .t = 2, .c = 3, .r = 5, .flags = TC_QUICK},
    {"matmul_odd_cols_19", .t = 1, .c = 19, .r = 19, .flags = TC_QUICK},
    {"matmul_odd_cols_130", .t = 3, .c = 130, .r = 7},
    {"matmul_odd_cols_2881", .t = 3, .c = 2881, .r = 19, .flags = TC_QUICK},
    {"matmul_odd_rows_2881", .t = 2, .c = 64, .r = 2881},
    {"matmul_odd_tokens_19", .t = 19, .c = 130, .r = 130, .flags = TC_QUICK},
    {"matmul_no_bias", .t = 3, .c = 256, .r = 19, .flags = TC_QUICK | TC_NO_BIAS},
    {"matmul_seed_batch2_rows128_cols1024", .t = 2, .c = 128, .r = 1024, .flags = TC_QUICK},
    {"matmul_20b_qkv_decode_2880x5120", .t = 1, .c = 2880, .r = 5120},
    /* one token, C % 8 == 0, even R: the CUDA region GEMV; R not a multiple of its rows per
     * block (a short last block), no bias, one 16-byte chunk per row */
    {"matmul_1tok_region_tail_no_bias_262x8", .t = 1, .c = 8, .r = 262, .flags = TC_QUICK | TC_NO_BIAS},
    {"matmul_1tok_region_tail_2882x1032", .t = 1, .c = 1032, .r = 2882},
    {"matmul_20b_router_decode_2880x32", .t = 1, .c = 2880, .r = 32, .flags = TC_BENCH},
    {"matmul_120b_router_decode_2880x128", .t = 1, .c = 2880, .r = 128, .flags = TC_BENCH},
    {"matmul_20b_router_batch63_2880x32", .t = 63, .c = 2880, .r = 32},
    {"matmul_20b_router_prefill512_2880x32", .t = 512, .c = 2880, .r = 32},
    {"matmul_120b_router_prefill512_2880x128", .t = 512, .c = 2880, .r = 128},
    /* 32 to 127 tokens, K % 8 == 0 and K >= 256: CUDA's ring GEMM (64-token tiles: rows past
     * T; 32-row weight tiles below one 64-row tile per SM, else 64: 8,449 rows at 33 tokens
     * give 133; K not a multiple of its 64-column stages nor of 32) */
    {"matmul_tc_ring_40tok_2880x300", .t = 40, .c = 2880, .r = 300, .flags = TC_QUICK},
    {"matmul_tc_ring_64tok_2888x300", .t = 64, .c = 2888, .r = 300},
    {"matmul_tc_ring_bn64_33tok_264x8449", .t = 33, .c = 264, .r = 8449},
    /* Hopper's 64-token wgmma tiles at their widest (128 rows: enough row tiles for the SMs),
     * a partial last tile of rows */
    {"matmul_tc_wgmma_bn128_48tok_320x11272", .t = 48, .c = 320, .r = 11272},
    /* 128 tokens and more: the ring GEMM's 64 x 128 tiles (rows past T, a partial weight tile,
     * K not a multiple of its 64-column stages nor of 32) */
    {"matmul_tc_ring_bn128_137tok_264x133", .t = 137, .c = 264, .r = 133, .flags = TC_QUICK},
    {"matmul_tc_ring_bn128_200tok_2888x300", .t = 200, .c = 2888, .r = 300},
    /* CUDA benchmark rows: the qkv projection over small batches and a 1024-token prefill */
    {"matmul_20b_qkv_batch4_2880x5120", .t = 4, .c = 2880, .r = 5120, .flags = TC_BENCH_CUDA | TC_BENCH_ONLY},
    {"matmul_20b_qkv_batch8_2880x5120", .t = 8, .c = 2880, .r = 5120, .flags = TC_BENCH_CUDA | TC_BENCH_ONLY},
    {"matmul_20b_qkv_batch64_2880x5120", .t = 64, .c = 2880, .r = 5120, .flags = TC_BENCH_CUDA | TC_BENCH_ONLY},
    {"matmul_20b_qkv_batch128_2880x5120", .t = 128, .c = 2880, .r = 5120, .flags = TC_BENCH_CUDA | TC_BENCH_ONLY},
    {"matmul_20b_qkv_prefill1024_2880x5120", .t = 1024, .c = 2880, .r = 5120, .flags = TC_BENCH_CUDA | TC_BENCH_ONLY},
};

static const struct tc_case f32_bf16w_matmul_add_cases[] = {
    {"matmul_add_1tok_1x1", .t = 1, .c = 1, .r = 1, .flags = TC_QUICK},
    {"matmul_add_odd_3tok_2881x19", .t = 3, .c = 2881, .r = 19, .flags = TC_QUICK},
    {"matmul_add_odd_19tok_130x130", .t = 19, .c = 130, .r = 130},
    {"matmul_add_no_bias", .t = 2, .c = 64, .r = 3, .flags = TC_QUICK | TC_NO_BIAS},
    {"matmul_add_seed_batch2_rows128_cols1024", .t = 2, .c = 128, .r = 1024},
    {"matmul_add_20b_attn_out_decode_4096x2880", .t = 1, .c = 4096, .r = 2880, .flags = TC_BENCH},
    {"matmul_add_20b_attn_out_batch64_4096x2880", .t = 64, .c = 4096, .r = 2880,
     .flags = TC_BENCH_CUDA | TC_BENCH_ONLY},
    {"matmul_add_1tok_region_tail_2882x1032", .t = 1, .c = 1032, .r = 2882, .flags = TC_QUICK},
    {"matmul_add_few_rows_1tok_1024x200", .t = 1, .c = 1024, .r = 200},
    /* CUDA's ring GEMM over two token tiles (97 tokens), residual add */
    {"matmul_add_tc_ring_97tok_4096x130", .t = 97, .c = 4096, .r = 130},
    /* CUDA split-K GEMV */
    /* 512 x 4096 x 2880: the reference checks 16 random tokens (first and last included). */
    {"matmul_add_20b_attn_out_prefill512_4096x2880", .t = 512, .c = 4096, .r = 2880, .check = 16,
     .flags = TC_BENCH_CUDA},
};

static const struct tc_case f32_bf16w_dense_matmul_qkv_cases[] = {
    {"dense_qkv_1tok_1x1", .t = 1, .c = 1, .r = 1, .flags = TC_QUICK},
    {"dense_qkv_odd_19tok_2881x130", .t = 19, .c = 2881, .r = 130, .flags = TC_QUICK},
    {"dense_qkv_odd_130tok_19x3", .t = 130, .c = 19, .r = 3},
    {"dense_qkv_20b_decode_2880x5120", .t = 1, .c = 2880, .r = 5120},
    /* 512 x 2880 x 5120: 16 random tokens checked against the reference. */
    {"dense_qkv_20b_prefill512_2880x5120", .t = 512, .c = 2880, .r = 5120, .check = 16, .flags = TC_BENCH},
    /* Benchmark only: the 2,048-token prefill. */
    {"dense_qkv_20b_prefill2048_2880x5120", .t = 2048, .c = 2880, .r = 5120, .flags = TC_BENCH | TC_BENCH_ONLY},
};

static const struct tc_case f32_bf16w_dense_matmul_attn_output_cases[] = {
    {"dense_attn_out_1tok_1x1", .t = 1, .c = 1, .r = 1, .flags = TC_QUICK},
    {"dense_attn_out_odd_3tok_130x2881", .t = 3, .c = 130, .r = 2881, .flags = TC_QUICK},
    {"dense_attn_out_odd_65tok_19x19", .t = 65, .c = 19, .r = 19},
    {"dense_attn_out_20b_decode_4096x2880", .t = 1, .c = 4096, .r = 2880},
    {"dense_attn_out_20b_prefill512_4096x2880", .t = 512, .c = 4096, .r = 2880, .check = 16, .flags = TC_BENCH},
};

static const struct tc_case f32_bf16w_dense_matmul_mlp_gate_cases[] = {
    {"dense_mlp_gate_1tok_1x1", .t = 1, .c = 1, .r = 1, .flags = TC_QUICK},
    {"dense_mlp_gate_odd_19tok_2881x3", .t = 19, .c = 2881, .r = 3, .flags = TC_QUICK},
    {"dense_mlp_gate_no_bias_odd_130x19", .t = 3, .c = 130, .r = 19, .flags = TC_NO_BIAS},
    {"dense_mlp_gate_20b_decode_2880x32", .t = 1, .c = 2880, .r = 32},
    {"dense_mlp_gate_20b_prefill512_2880x32", .t = 512, .c = 2880, .r = 32, .flags = TC_BENCH},
    {"dense_mlp_gate_120b_prefill512_2880x128", .t = 512, .c = 2880, .r = 128},
};

void tc_fill_matmul(struct tc_problem* p, struct tc_rng* rng, float* x, gptoss_bf16* w) {
    const struct tc_case* c = p->c;
    const size_t xn = (size_t) c->t * c->c, wn = (size_t) c->r * c->c;
    if (c->flags & TC_TIES) {
        /* small integers: every backend computes the outputs exactly, so ties at the
         * maximum are real ties (the unembedding's argmax must be the lowest index) */
        for (size_t i = 0; i < xn; i++) x[i] = (float) ((int) (tc_rng_u64(rng) % 3) - 1);
        for (size_t i = 0; i < wn; i++) w[i].bits = gptoss_f32_to_bf16((float) ((int) (tc_rng_u64(rng) % 3) - 1));
    } else {
        tc_fill_f32(rng, x, xn, -1.0f, 1.0f);
        const float a = tc_weight_amplitude(c->c);
        tc_fill_bf16(rng, w, wn, -a, a);
    }
}

/* matmul_add and dense attn_output read and write their output */
static bool accumulates(const struct tc_problem* p) {
    return p->op->kernel == gptoss_kernel_f32_bf16w_matmul_add ||
           p->op->kernel == gptoss_kernel_f32_bf16w_dense_matmul_attn_output;
}

static void make(struct tc_problem* p, struct tc_rng* rng) {
    const struct tc_case* c = p->c;
    const bool add = accumulates(p);
    float* x = tc_add_buffer(p, "input", TC_IN, TC_F32, (size_t) c->t * c->c);
    gptoss_bf16* w = tc_add_buffer(p, "weight", TC_IN, TC_BF16, (size_t) c->r * c->c);
    gptoss_bf16* b = tc_add_buffer(p, "bias", TC_IN, TC_BF16, c->r);
    float* y = tc_add_buffer(p, "output", add ? TC_INOUT : TC_OUT, TC_F32, (size_t) c->t * c->r);
    if (!x || !w || !b || !y) return;
    tc_fill_matmul(p, rng, x, w);
    tc_fill_bf16(rng, b, c->r, -0.5f, 0.5f);
    if (add) tc_fill_f32(rng, y, (size_t) c->t * c->r, -1.0f, 1.0f);
}

#define MATMUL_ARGS(name)                                                                               \
    static void args_##name(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) { \
        const struct tc_case* c = p->c;                                                                 \
        a->name = (struct gptoss_##name##_args){                                                        \
            d[0], d[1], (c->flags & TC_NO_BIAS) ? NULL : d[2], d[3], c->t, c->c, c->r,                  \
        };                                                                                              \
    }
MATMUL_ARGS(f32_bf16w_matmul)
MATMUL_ARGS(f32_bf16w_matmul_add)
MATMUL_ARGS(f32_bf16w_dense_matmul_qkv)
MATMUL_ARGS(f32_bf16w_dense_matmul_attn_output)
MATMUL_ARGS(f32_bf16w_dense_matmul_mlp_gate)

/* Per checked token: the reference (matmul or matmul_add, which the dense names compute
 * too) and the tolerance of each output. */
static void expect(const struct tc_problem* p, struct tc_expect* ex) {
    const struct tc_case* c = p->c;
    const uint32_t C = c->c, R = c->r;
    const float* x = p->b[0].host;
    const gptoss_bf16* w = p->b[1].host;
    const gptoss_bf16* b = (c->flags & TC_NO_BIAS) ? NULL : p->b[2].host;
    float* old = accumulates(p) ? p->b[3].host : NULL;
    double* sabs = tc_xmalloc(R * sizeof *sabs);
    tc_pick_tokens(ex, c->t, c->check, p->seed);
    for (uint32_t i = 0; i < ex->ntokens; i++) {
        const uint32_t t = ex->tokens[i];
        struct tc_span* s = tc_add_span(ex, 3, (size_t) t * R, R, false, 4, "token %u", t);
        const float* xt = x + (size_t) t * C;
        if (old != NULL) {
            gptoss_ref_f32_bf16w_matmul_add(
                &(struct gptoss_f32_bf16w_matmul_add_args){xt, w, b, old + (size_t) t * R, 1, C, R}, s->ref);
        } else {
            gptoss_ref_f32_bf16w_matmul(&(struct gptoss_f32_bf16w_matmul_args){xt, w, b, NULL, 1, C, R}, s->ref);
        }
        tc_abs_dot_rows(xt, w, R, C, sabs);
        for (uint32_t r = 0; r < R; r++) {
            s->tol[r] = tc_matmul_tol(C, sabs[r], b ? fabs(tc_bf16d(b[r])) : 0.0,
                                      old ? fabs(old[(size_t) t * R + r]) : 0.0, s->ref[r]);
        }
    }
    free(sabs);
}

static double bytes(const struct tc_case* c) {
    const double T = c->t, C = c->c, R = c->r;
    return 4 * T * C + 2 * R * C + 2 * R + 4 * T * R;
}
/* the output read and written */
static double bytes_add(const struct tc_case* c) { return bytes(c) + 4.0 * c->t * c->r; }
static double flops(const struct tc_case* c) { return 2.0 * c->t * c->c * c->r; }

#define MATMUL_OP(name, bytes_fn)                                                             \
    const struct tc_op tc_op_##name = {                                                       \
        gptoss_kernel_##name, TC_CASES(name##_cases), .make = make,   .args = args_##name,    \
        .expect = expect,     .bytes = bytes_fn,      .flops = flops, .shape = tc_shape_rows, \
    };
MATMUL_OP(f32_bf16w_matmul, bytes)
MATMUL_OP(f32_bf16w_matmul_add, bytes_add)
MATMUL_OP(f32_bf16w_dense_matmul_qkv, bytes)
MATMUL_OP(f32_bf16w_dense_matmul_attn_output, bytes_add)
MATMUL_OP(f32_bf16w_dense_matmul_mlp_gate, bytes)
