/* Test module of the MoE routing kernels: expert_routing_metadata, scatter,
 * gather_and_accumulate, accumulate (routing data from the reference topk of random
 * logits; the accumulate inputs and tolerance are shared with the fused
 * accumulate + rmsnorm, tests/ops/rmsnorm.c).
 *
 * routing metadata and scatter: exact. gather_and_accumulate / accumulate: k fma
 * roundings, tol = (k + 1) eps (|old| + sum_j |y_j s_j|), the sum from the reference run on
 * |inputs|.
 *
 * Case fields: t = tokens (pairs = t * k), c = channels, e = experts, k = active. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ops.h"
#include "reference/reference.h"

static const struct tc_case metadata_cases[] = {
    {"routing_1pair_1expert", .t = 1, .e = 1, .k = 1, .flags = TC_QUICK},
    {"routing_3of7_19tok", .t = 19, .e = 7, .k = 3, .flags = TC_QUICK},
    {"routing_20b_decode_4of32", .t = 1, .e = 32, .k = 4},
    {"routing_20b_prefill512_4of32", .t = 512, .e = 32, .k = 4, .flags = TC_BENCH},
    {"routing_120b_prefill512_4of128", .t = 512, .e = 128, .k = 4},
};

static const struct tc_case scatter_cases[] = {
    {"scatter_1tok_1ch_1of1", .t = 1, .c = 1, .e = 1, .k = 1, .flags = TC_QUICK},
    {"scatter_3of7_19tok_130ch", .t = 19, .c = 130, .e = 7, .k = 3, .flags = TC_QUICK},
    {"scatter_odd_3tok_2881ch_4of32", .t = 3, .c = 2881, .e = 32, .k = 4},
    {"scatter_20b_decode_4of32_2880", .t = 1, .c = 2880, .e = 32, .k = 4},
    {"scatter_20b_prefill512_4of32_2880", .t = 512, .c = 2880, .e = 32, .k = 4, .flags = TC_BENCH},
    {"scatter_120b_prefill512_4of128_2880", .t = 512, .c = 2880, .e = 128, .k = 4},
};

static const struct tc_case gather_cases[] = {
    {"gather_acc_1tok_1ch_1of1", .t = 1, .c = 1, .e = 1, .k = 1, .flags = TC_QUICK},
    {"gather_acc_3of7_19tok_130ch", .t = 19, .c = 130, .e = 7, .k = 3, .flags = TC_QUICK},
    {"gather_acc_odd_3tok_2881ch", .t = 3, .c = 2881, .e = 32, .k = 4},
    {"gather_acc_20b_decode_4of32_2880", .t = 1, .c = 2880, .e = 32, .k = 4},
    {"gather_acc_20b_prefill512_4of32_2880", .t = 512, .c = 2880, .e = 32, .k = 4, .flags = TC_BENCH},
    {"gather_acc_120b_prefill512_4of128_2880", .t = 512, .c = 2880, .e = 128, .k = 4},
};

static const struct tc_case accumulate_cases[] = {
    {"accumulate_1tok_1ch_1of1", .t = 1, .c = 1, .k = 1, .flags = TC_QUICK},
    {"accumulate_3of7_odd_19tok_2881ch", .t = 19, .c = 2881, .e = 7, .k = 3, .flags = TC_QUICK},
    {"accumulate_20b_decode_4of32_2880", .t = 1, .c = 2880, .e = 32, .k = 4, .flags = TC_BENCH},
    {"accumulate_batch3_4of32_2880", .t = 3, .c = 2880, .e = 32, .k = 4},
    {"accumulate_prefill512_4of128_2880", .t = 512, .c = 2880, .e = 128, .k = 4},
};

void tc_shape_pairs(const struct tc_case* c, char* buf, size_t size) {
    snprintf(buf, size, "T=%u %u of %u", c->t, c->k, c->e);
}

void tc_shape_routing(const struct tc_case* c, char* buf, size_t size) {
    snprintf(buf, size, "T=%u C=%u %u of %u", c->t, c->c, c->k, c->e);
}

/* ---- routing metadata ---- */

static void make_metadata(struct tc_problem* p, struct tc_rng* rng) {
    const struct tc_case* c = p->c;
    uint32_t* ids = tc_add_buffer(p, "expert_ids", TC_IN, TC_U32, (size_t) c->t * c->k);
    tc_add_buffer(p, "expert_offsets", TC_OUT, TC_U32, (size_t) c->e + 1);
    tc_add_buffer(p, "intra_expert_offsets", TC_OUT, TC_U32, (size_t) c->t * c->k);
    if (ids) tc_make_routing(rng, c->t, c->e, c->k, ids, NULL);
}

static void args_metadata(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    a->expert_routing_metadata =
        (struct gptoss_expert_routing_metadata_args){d[0], d[1], d[2], p->c->t * p->c->k, p->c->e};
}

static void expect_metadata(const struct tc_problem* p, struct tc_expect* ex) {
    const size_t P = (size_t) p->c->t * p->c->k;
    void* host[3] = {p->b[0].host, tc_add_span(ex, 1, 0, (size_t) p->c->e + 1, true, 4, "expert_offsets")->exact,
                     tc_add_span(ex, 2, 0, P, true, 4, "intra_expert_offsets")->exact};
    union gptoss_kernel_args a;
    args_metadata(p, host, &a);
    gptoss_ref_expert_routing_metadata(&a.expert_routing_metadata);
}

static double bytes_metadata(const struct tc_case* c) {
    const double P = (double) c->t * c->k;
    return 4 * P + 4 * ((double) c->e + 1) + 4 * P;
}

const struct tc_op tc_op_expert_routing_metadata = {
    gptoss_kernel_expert_routing_metadata,
    TC_CASES(metadata_cases),
    .make = make_metadata,
    .args = args_metadata,
    .expect = expect_metadata,
    .bytes = bytes_metadata,
    .shape = tc_shape_pairs,
};

/* ---- scatter and gather_and_accumulate ---- */

static bool is_scatter(const struct tc_problem* p) { return p->op->kernel == gptoss_kernel_f32_scatter; }

static void make_grouped(struct tc_problem* p, struct tc_rng* rng) {
    const struct tc_case* c = p->c;
    const size_t P = (size_t) c->t * c->k, C = c->c;
    const bool scatter = is_scatter(p);
    float* x = tc_add_buffer(p, "input", TC_IN, TC_F32, (scatter ? c->t : P) * C);
    uint32_t* ids = tc_add_buffer(p, "expert_ids", TC_IN, TC_U32, P);
    float* scores = scatter ? NULL : tc_add_buffer(p, "expert_scores", TC_IN, TC_F32, P);
    uint32_t* offsets = tc_add_buffer(p, "expert_offsets", TC_IN, TC_U32, (size_t) c->e + 1);
    uint32_t* intra = tc_add_buffer(p, "intra_expert_offsets", TC_IN, TC_U32, P);
    float* y = tc_add_buffer(p, scatter ? "output" : "residual", scatter ? TC_OUT : TC_INOUT, TC_F32,
                             (scatter ? P : c->t) * C);
    if (!x || !ids || !offsets || !intra || !y || (!scatter && !scores)) return;
    tc_fill_f32(rng, x, (scatter ? c->t : P) * C, -1.0f, 1.0f);
    tc_make_routing(rng, c->t, c->e, c->k, ids, scores);
    gptoss_ref_expert_routing_metadata(
        &(struct gptoss_expert_routing_metadata_args){ids, offsets, intra, (uint32_t) P, c->e});
    if (!scatter) tc_fill_f32(rng, y, (size_t) c->t * C, -1.0f, 1.0f);
}

static void args_scatter(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    const struct tc_case* c = p->c;
    a->f32_scatter = (struct gptoss_f32_scatter_args){d[0], d[1], d[2], d[3], d[4], c->c, c->t, c->k, c->e};
}

static void expect_scatter(const struct tc_problem* p, struct tc_expect* ex) {
    const size_t n = (size_t) p->c->t * p->c->k * p->c->c;
    void* host[5] = {p->b[0].host, p->b[1].host, p->b[2].host, p->b[3].host,
                     tc_add_span(ex, 4, 0, n, true, 4, "all rows")->exact};
    union gptoss_kernel_args a;
    args_scatter(p, host, &a);
    gptoss_ref_f32_scatter(&a.f32_scatter);
}

static double bytes_scatter(const struct tc_case* c) {
    const double T = c->t, C = c->c, P = T * c->k;
    return 4 * T * C + 12 * P + 4 * ((double) c->e + 1) + 4 * P * C;
}

const struct tc_op tc_op_f32_scatter = {
    gptoss_kernel_f32_scatter, TC_CASES(scatter_cases), .make = make_grouped,      .args = args_scatter,
    .expect = expect_scatter,  .bytes = bytes_scatter,  .shape = tc_shape_routing,
};

static void args_gather(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    const struct tc_case* c = p->c;
    a->f32_gather_and_accumulate =
        (struct gptoss_f32_gather_and_accumulate_args){d[0], d[1], d[2], d[3], d[4], d[5], c->c, c->t, c->k, c->e};
}

static void expect_gather(const struct tc_problem* p, struct tc_expect* ex) {
    const struct tc_case* c = p->c;
    const size_t TC = (size_t) c->t * c->c, P = (size_t) c->t * c->k;
    struct tc_span* s = tc_add_span(ex, 5, 0, TC, false, 4, "all tokens");
    void* host[6];
    for (int i = 0; i < 6; i++) host[i] = p->b[i].host;
    union gptoss_kernel_args a;
    args_gather(p, host, &a);
    gptoss_ref_f32_gather_and_accumulate(&a.f32_gather_and_accumulate, s->ref);
    /* the same on |input|, |scores|, |old| */
    host[0] = tc_abs_f32(p->b[0].host, P * c->c);
    host[2] = tc_abs_f32(p->b[2].host, P);
    host[5] = tc_abs_f32(p->b[5].host, TC);
    args_gather(p, host, &a);
    gptoss_ref_f32_gather_and_accumulate(&a.f32_gather_and_accumulate, s->tol);
    for (size_t i = 0; i < TC; i++) s->tol[i] = (c->k + 1.0) * TC_EPS32 * s->tol[i] + TC_TINY;
    free(host[0]);
    free(host[2]);
    free(host[5]);
}

static double bytes_gather(const struct tc_case* c) {
    const double T = c->t, C = c->c, P = T * c->k;
    return 4 * P * C + 16 * P + 4 * ((double) c->e + 1) + 8 * T * C;
}

const struct tc_op tc_op_f32_gather_and_accumulate = {
    gptoss_kernel_f32_gather_and_accumulate,
    TC_CASES(gather_cases),
    .make = make_grouped,
    .args = args_gather,
    .expect = expect_gather,
    .bytes = bytes_gather,
    .shape = tc_shape_routing,
};

/* ---- accumulate ---- */

void tc_make_accumulate(struct tc_problem* p, struct tc_rng* rng) {
    const struct tc_case* c = p->c;
    const size_t P = (size_t) c->t * c->k, C = c->c;
    float* x = tc_add_buffer(p, "input", TC_IN, TC_F32, P * C);
    float* scores = tc_add_buffer(p, "expert_scores", TC_IN, TC_F32, P);
    float* y = tc_add_buffer(p, "residual", TC_INOUT, TC_F32, (size_t) c->t * C);
    if (!x || !scores || !y) return;
    tc_fill_f32(rng, x, P * C, -1.0f, 1.0f);
    tc_make_routing(rng, c->t, c->e != 0 ? c->e : c->k, c->k, NULL, scores);
    tc_fill_f32(rng, y, (size_t) c->t * C, -1.0f, 1.0f);
}

void tc_accumulate_tol(const struct tc_problem* p, double* tol) {
    const struct tc_case* c = p->c;
    const size_t TC = (size_t) c->t * c->c, P = (size_t) c->t * c->k;
    float* in_abs = tc_abs_f32(p->b[0].host, P * c->c);
    float* sc_abs = tc_abs_f32(p->b[1].host, P);
    float* old_abs = tc_abs_f32(p->b[2].host, TC);
    gptoss_ref_f32_accumulate(&(struct gptoss_f32_accumulate_args){in_abs, sc_abs, old_abs, c->c, c->t, c->k}, tol);
    for (size_t i = 0; i < TC; i++) tol[i] = (c->k + 1.0) * TC_EPS32 * tol[i] + TC_TINY;
    free(in_abs);
    free(sc_abs);
    free(old_abs);
}

static void args_accumulate(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    a->f32_accumulate = (struct gptoss_f32_accumulate_args){d[0], d[1], d[2], p->c->c, p->c->t, p->c->k};
}

static void expect_accumulate(const struct tc_problem* p, struct tc_expect* ex) {
    struct tc_span* s = tc_add_span(ex, 2, 0, (size_t) p->c->t * p->c->c, false, 4, "all tokens");
    void* host[3] = {p->b[0].host, p->b[1].host, p->b[2].host};
    union gptoss_kernel_args a;
    args_accumulate(p, host, &a);
    gptoss_ref_f32_accumulate(&a.f32_accumulate, s->ref);
    tc_accumulate_tol(p, s->tol);
}

static double bytes_accumulate(const struct tc_case* c) {
    const double T = c->t, C = c->c, P = T * c->k;
    return 4 * P * C + 4 * P + 8 * T * C;
}

const struct tc_op tc_op_f32_accumulate = {
    gptoss_kernel_f32_accumulate, TC_CASES(accumulate_cases), .make = tc_make_accumulate, .args = args_accumulate,
    .expect = expect_accumulate,  .bytes = bytes_accumulate,  .shape = tc_shape_routing,
};
