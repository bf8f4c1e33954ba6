/* Test module of the RMSNorm and of its fusion with the MoE accumulate.
 *
 * rmsnorm: relative tolerance (4 sqrt(C) + 4) eps |ref| (tc_rmsnorm_tol). Case fields:
 * t x c, f = epsilon; TC_INPLACE: output == input.
 *
 * accumulate_rmsnorm: the residual as the accumulate module (tests/ops/routing.c); the
 * output is the RMSNorm of the updated residual, whose tolerance is the RMSNorm one plus
 * the residual's error carried through to first order: |r w_j| tol_j directly and
 * |out_j| * dr/r through the scale, with |dr/r| <= sum_i |res_i| tol_i / (sum_i res_i^2 +
 * C eps). Case fields: t, c, e, k as accumulate; f = epsilon. CUDA runs one kernel for
 * C % 4 == 0 up to 4096 channels, the two kernels otherwise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ops.h"
#include "reference/reference.h"

static const struct tc_case rmsnorm_cases[] = {
    {"rmsnorm_1tok_1ch", .t = 1, .c = 1, .f = 1e-5f, .flags = TC_QUICK},
    {"rmsnorm_odd_3tok_19ch", .t = 3, .c = 19, .f = 1e-5f, .flags = TC_QUICK},
    {"rmsnorm_odd_19tok_130ch", .t = 19, .c = 130, .f = 1e-5f},
    {"rmsnorm_odd_3tok_2881ch", .t = 3, .c = 2881, .f = 1e-5f, .flags = TC_QUICK},
    {"rmsnorm_seed_4x4096", .t = 4, .c = 4096, .f = 1e-5f, .flags = TC_QUICK},
    {"rmsnorm_epsilon0_2x2880", .t = 2, .c = 2880, .f = 0.0f},
    {"rmsnorm_inplace_3x2880", .t = 3, .c = 2880, .f = 1e-5f, .flags = TC_QUICK | TC_INPLACE},
    {"rmsnorm_20b_decode_1x2880", .t = 1, .c = 2880, .f = 1e-5f, .flags = TC_BENCH},
    /* CUDA register-resident rows: 1, 2 float4 per thread; 8192 takes the looping kernel */
    {"rmsnorm_vec1_2x1000", .t = 2, .c = 1000, .f = 1e-5f},
    {"rmsnorm_vec2_inplace_3x2000", .t = 3, .c = 2000, .f = 1e-5f, .flags = TC_INPLACE},
    {"rmsnorm_wide_2x8192", .t = 2, .c = 8192, .f = 1e-5f},
    {"rmsnorm_20b_prefill_512x2880", .t = 512, .c = 2880, .f = 1e-5f},
};

static const struct tc_case fused_cases[] = {
    {"accumulate_rmsnorm_1tok_1ch_1of1", .t = 1, .c = 1, .k = 1, .f = 1e-5f, .flags = TC_QUICK},
    {"accumulate_rmsnorm_odd_3of7_19tok_2881ch", .t = 19, .c = 2881, .e = 7, .k = 3, .f = 1e-5f, .flags = TC_QUICK},
    {"accumulate_rmsnorm_vec1_2of5_3tok_1000ch", .t = 3, .c = 1000, .e = 5, .k = 2, .f = 1e-5f, .flags = TC_QUICK},
    {"accumulate_rmsnorm_20b_decode_4of32_2880", .t = 1, .c = 2880, .e = 32, .k = 4, .f = 1e-5f, .flags = TC_BENCH},
    {"accumulate_rmsnorm_120b_batch3_4of128_2880", .t = 3, .c = 2880, .e = 128, .k = 4, .f = 1e-5f},
    {"accumulate_rmsnorm_vec4_epsilon0_2x4096", .t = 2, .c = 4096, .e = 32, .k = 4, .f = 0.0f},
    {"accumulate_rmsnorm_wide_2x8192", .t = 2, .c = 8192, .e = 32, .k = 4, .f = 1e-5f},
};

static void make_rmsnorm(struct tc_problem* p, struct tc_rng* rng) {
    const struct tc_case* c = p->c;
    const bool inplace = (c->flags & TC_INPLACE) != 0;
    float* x = tc_add_buffer(p, "input", inplace ? TC_INOUT : TC_IN, TC_F32, (size_t) c->t * c->c);
    gptoss_bf16* w = tc_add_buffer(p, "weight", TC_IN, TC_BF16, c->c);
    if (!inplace) tc_add_buffer(p, "output", TC_OUT, TC_F32, (size_t) c->t * c->c);
    if (!x || !w) return;
    tc_fill_f32(rng, x, (size_t) c->t * c->c, -2.0f, 2.0f);
    tc_fill_bf16(rng, w, c->c, -1.0f, 1.0f);
}

static void args_rmsnorm(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    const struct tc_case* c = p->c;
    float* output = (c->flags & TC_INPLACE) ? d[0] : d[2];
    a->f32_bf16w_rmsnorm = (struct gptoss_f32_bf16w_rmsnorm_args){d[0], d[1], output, c->t, c->c, c->f};
}

static void expect_rmsnorm(const struct tc_problem* p, struct tc_expect* ex) {
    const struct tc_case* c = p->c;
    const uint32_t C = c->c;
    const int out = (c->flags & TC_INPLACE) ? 0 : 2;
    tc_pick_tokens(ex, c->t, c->check, p->seed);
    for (uint32_t i = 0; i < ex->ntokens; i++) {
        const uint32_t t = ex->tokens[i];
        struct tc_span* s = tc_add_span(ex, out, (size_t) t * C, C, false, 4, "token %u", t);
        const float* x = (const float*) p->b[0].host + (size_t) t * C;
        gptoss_ref_f32_bf16w_rmsnorm(&(struct gptoss_f32_bf16w_rmsnorm_args){x, p->b[1].host, NULL, 1, C, c->f},
                                     s->ref);
        for (uint32_t j = 0; j < C; j++) s->tol[j] = tc_rmsnorm_tol(C, s->ref[j]);
    }
}

static double bytes_rmsnorm(const struct tc_case* c) { return 4.0 * c->t * c->c + 2.0 * c->c + 4.0 * c->t * c->c; }
static double flops_rmsnorm(const struct tc_case* c) { return 4.0 * c->t * c->c; }

const struct tc_op tc_op_f32_bf16w_rmsnorm = {
    gptoss_kernel_f32_bf16w_rmsnorm, TC_CASES(rmsnorm_cases), .make = make_rmsnorm,   .args = args_rmsnorm,
    .expect = expect_rmsnorm,        .bytes = bytes_rmsnorm,  .flops = flops_rmsnorm, .shape = tc_shape_rows,
};

/* ---- the fusion ---- */

static void make_fused(struct tc_problem* p, struct tc_rng* rng) {
    tc_make_accumulate(p, rng);
    gptoss_bf16* w = tc_add_buffer(p, "weight", TC_IN, TC_BF16, p->c->c);
    tc_add_buffer(p, "output", TC_OUT, TC_F32, (size_t) p->c->t * p->c->c);
    if (w != NULL) tc_fill_bf16(rng, w, p->c->c, -1.0f, 1.0f);
}

static void args_fused(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    const struct tc_case* c = p->c;
    a->f32_accumulate_bf16w_rmsnorm =
        (struct gptoss_f32_accumulate_bf16w_rmsnorm_args){d[0], d[1], d[2], d[3], d[4], c->c, c->t, c->k, c->f};
}

static void expect_fused(const struct tc_problem* p, struct tc_expect* ex) {
    const struct tc_case* c = p->c;
    const size_t C = c->c, TC = (size_t) c->t * C;
    struct tc_span* res = tc_add_span(ex, 2, 0, TC, false, 4, "residual");
    struct tc_span* out = tc_add_span(ex, 4, 0, TC, false, 4, "output");
    void* host[5] = {p->b[0].host, p->b[1].host, p->b[2].host, p->b[3].host, NULL};
    union gptoss_kernel_args a;
    args_fused(p, host, &a);
    gptoss_ref_f32_accumulate_bf16w_rmsnorm(&a.f32_accumulate_bf16w_rmsnorm, res->ref, out->ref);
    tc_accumulate_tol(p, res->tol);
    const gptoss_bf16* w = p->b[3].host;
    for (uint32_t t = 0; t < c->t; t++) {
        const double* x = res->ref + (size_t) t * C;
        const double* tol = res->tol + (size_t) t * C;
        double ss = 0.0, carried = 0.0;
        for (size_t j = 0; j < C; j++) {
            ss += x[j] * x[j];
            carried += fabs(x[j]) * tol[j];
        }
        const double r = 1.0 / sqrt(ss / (double) C + (double) c->f);
        const double dr = carried / (ss + (double) C * (double) c->f);
        for (size_t j = 0; j < C; j++) {
            const size_t i = (size_t) t * C + j;
            const double o = fabs(out->ref[i]);
            out->tol[i] = tc_rmsnorm_tol(C, o) + fabs(r * tc_bf16d(w[j])) * tol[j] + o * dr;
        }
    }
}

static enum gptoss_status unfused(gptoss_backend_t b, const union gptoss_kernel_args* args) {
    const struct gptoss_f32_accumulate_bf16w_rmsnorm_args* a = &args->f32_accumulate_bf16w_rmsnorm;
    const enum gptoss_status st = gptoss_f32_accumulate(b, a->input, a->expert_scores, a->residual, a->num_channels,
                                                        a->num_tokens, a->num_active_experts);
    if (st != gptoss_status_success) return st;
    return gptoss_f32_bf16w_rmsnorm(b, a->residual, a->weight, a->output, a->num_tokens, a->num_channels, a->epsilon);
}

static double bytes_fused(const struct tc_case* c) {
    const double T = c->t, C = c->c, P = T * c->k;
    return 4 * P * C + 4 * P + 8 * T * C + 2 * C + 4 * T * C;
}
static double flops_fused(const struct tc_case* c) { return 2.0 * c->t * c->c * c->k + 4.0 * c->t * c->c; }

const struct tc_op tc_op_f32_accumulate_bf16w_rmsnorm = {
    gptoss_kernel_f32_accumulate_bf16w_rmsnorm,
    TC_CASES(fused_cases),
    .make = make_fused,
    .args = args_fused,
    .expect = expect_fused,
    .bytes = bytes_fused,
    .flops = flops_fused,
    .shape = tc_shape_routing,
    .unfused = unfused,
};
