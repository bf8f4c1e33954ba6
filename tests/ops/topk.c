/* Test module of the router top-k + softmax and of the fused MoE gate (rmsnorm, router
 * matmul, top-k).
 *
 * topk: expert ids exact (the selection compares input values only; ties are defined as
 * lowest index, and the TC_TIES cases check exactly that, so no tie position is
 * skipped); expert scores relative ((v_0 - v_{k-1}) + k + 8) eps (the subtraction, expf,
 * the sum of k terms, the reciprocal and the product). Case fields: t = tokens, e =
 * experts, k = active.
 *
 * The gate: output, the RMSNorm tolerance; scores, the matmul tolerance over the
 * normalised row plus its error carried through the weights (sum_c |w_rc| tol_c). Top-k:
 * the selection depends on the computed scores, so a token is compared (ids exactly,
 * expert scores with the topk tolerance plus the softmax of the score error) only where
 * the reference's top k+1 scores are separated by more than two score tolerances (no error
 * within the tolerances can reorder them); other tokens (near ties, rare with random
 * inputs) are only scanned for NaN and guard damage, and the case says how many there
 * were. Case fields: t = tokens, c = channels, e = experts (router rows), k, f = epsilon;
 * TC_NO_BIAS: router_bias NULL. CUDA runs one kernel for one token, C % 8 == 0 up to 4096
 * channels, <= 256 experts; the three kernels otherwise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "reference/reference.h"

static const struct tc_case topk_cases[] = {
    {"topk_1of1", .t = 1, .e = 1, .k = 1, .flags = TC_QUICK},
    {"topk_3of7", .t = 19, .e = 7, .k = 3, .flags = TC_QUICK},
    {"topk_19of19_all", .t = 3, .e = 19, .k = 19, .flags = TC_QUICK},
    {"topk_ties_pm0_lowest_index_4of32", .t = 130, .e = 32, .k = 4, .flags = TC_QUICK | TC_TIES},
    {"topk_odd_4of130", .t = 3, .e = 130, .k = 4},
    {"topk_ties_pm0_lowest_index_5of130", .t = 19, .e = 130, .k = 5, .flags = TC_TIES},
    {"topk_many_experts_5of300", .t = 3, .e = 300, .k = 5},
    /* CUDA: the block-per-token kernel */
    {"topk_20b_decode_4of32", .t = 1, .e = 32, .k = 4, .flags = TC_BENCH},
    {"topk_120b_decode_4of128", .t = 1, .e = 128, .k = 4},
    {"topk_20b_prefill512_4of32", .t = 512, .e = 32, .k = 4},
    {"topk_120b_prefill512_4of128", .t = 512, .e = 128, .k = 4},
};

static const struct tc_case gate_cases[] = {
    {"gate_1tok_8ch_1of1", .t = 1, .c = 8, .e = 1, .k = 1, .f = 1e-5f, .flags = TC_QUICK},
    {"gate_odd_3tok_19ch_3of7", .t = 3, .c = 19, .e = 7, .k = 3, .f = 1e-5f, .flags = TC_QUICK},
    {"gate_no_bias_5of200_1000ch", .t = 1, .c = 1000, .e = 200, .k = 5, .f = 1e-5f, .flags = TC_QUICK | TC_NO_BIAS},
    {"gate_20b_decode_4of32_2880", .t = 1, .c = 2880, .e = 32, .k = 4, .f = 1e-5f, .flags = TC_BENCH},
    {"gate_120b_decode_4of128_2880", .t = 1, .c = 2880, .e = 128, .k = 4, .f = 1e-5f},
    {"gate_vec4_epsilon0_4of32_4096", .t = 1, .c = 4096, .e = 32, .k = 4, .f = 0.0f},
    {"gate_wide_4of32_8192", .t = 1, .c = 8192, .e = 32, .k = 4, .f = 1e-5f},
    {"gate_20b_batch3_4of32_2880", .t = 3, .c = 2880, .e = 32, .k = 4, .f = 1e-5f},
    {"gate_20b_prefill64_4of32_2880", .t = 64, .c = 2880, .e = 32, .k = 4, .f = 1e-5f},
};

static void make_topk(struct tc_problem* p, struct tc_rng* rng) {
    const struct tc_case* c = p->c;
    const size_t n = (size_t) c->t * c->e;
    float* s = tc_add_buffer(p, "scores", TC_IN, TC_F32, n);
    tc_add_buffer(p, "expert_ids", TC_OUT, TC_U32, (size_t) c->t * c->k);
    tc_add_buffer(p, "expert_scores", TC_OUT, TC_F32, (size_t) c->t * c->k);
    if (!s) return;
    if (c->flags & TC_TIES) {
        for (size_t i = 0; i < n; i++) {
            const int v = (int) (tc_rng_u64(rng) % 7) - 3;
            s[i] = v == 0 ? ((tc_rng_u64(rng) & 1) ? -0.0f : 0.0f) : (float) v * 0.5f;
        }
    } else {
        tc_fill_f32(rng, s, n, -4.0f, 4.0f);
    }
}

static void args_topk(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    a->f32_topk = (struct gptoss_f32_topk_args){d[0], d[1], d[2], p->c->t, p->c->e, p->c->k};
}

/* relative tolerance of the k expert scores of a token whose selected logits span `spread` */
static double topk_rel_tol(double spread, uint32_t k) { return (spread + k + 8.0) * TC_EPS32; }

static void expect_topk(const struct tc_problem* p, struct tc_expect* ex) {
    const struct tc_case* c = p->c;
    const size_t n = (size_t) c->t * c->k;
    struct tc_span* ids = tc_add_span(ex, 1, 0, n, true, 4, "expert ids");
    struct tc_span* sc = tc_add_span(ex, 2, 0, n, false, 4, "expert scores");
    const float* scores = p->b[0].host;
    gptoss_ref_f32_topk(&(struct gptoss_f32_topk_args){scores, ids->exact, NULL, c->t, c->e, c->k}, sc->ref);
    const uint32_t* id = ids->exact;
    for (uint32_t t = 0; t < c->t; t++) {
        const float* row = scores + (size_t) t * c->e;
        const double spread = (double) row[id[t * c->k]] - (double) row[id[t * c->k + c->k - 1]];
        for (uint32_t j = 0; j < c->k; j++) {
            const size_t i = (size_t) t * c->k + j;
            sc->tol[i] = topk_rel_tol(spread, c->k) * fabs(sc->ref[i]) + TC_TINY;
        }
    }
}

static double bytes_topk(const struct tc_case* c) { return 4.0 * c->t * c->e + 8.0 * c->t * c->k; }

const struct tc_op tc_op_f32_topk = {
    gptoss_kernel_f32_topk, TC_CASES(topk_cases), .make = make_topk,       .args = args_topk,
    .expect = expect_topk,  .bytes = bytes_topk,  .shape = tc_shape_pairs,
};

/* ---- the fused gate ---- */

static void make_gate(struct tc_problem* p, struct tc_rng* rng) {
    const struct tc_case* c = p->c;
    const uint32_t T = c->t, C = c->c;
    float* x = tc_add_buffer(p, "input", TC_IN, TC_F32, (size_t) T * C);
    gptoss_bf16* nw = tc_add_buffer(p, "norm_weight", TC_IN, TC_BF16, C);
    tc_add_buffer(p, "output", TC_OUT, TC_F32, (size_t) T * C);
    gptoss_bf16* rw = tc_add_buffer(p, "router_weight", TC_IN, TC_BF16, (size_t) c->e * C);
    gptoss_bf16* rb = tc_add_buffer(p, "router_bias", TC_IN, TC_BF16, c->e);
    tc_add_buffer(p, "scores", TC_OUT, TC_F32, (size_t) T * c->e);
    tc_add_buffer(p, "expert_ids", TC_OUT, TC_U32, (size_t) T * c->k);
    tc_add_buffer(p, "expert_scores", TC_OUT, TC_F32, (size_t) T * c->k);
    if (!x || !nw || !rw || !rb) return;
    tc_fill_f32(rng, x, (size_t) T * C, -2.0f, 2.0f);
    tc_fill_bf16(rng, nw, C, -1.0f, 1.0f);
    tc_fill_bf16(rng, rw, (size_t) c->e * C, -1.0f / sqrtf((float) C), 1.0f / sqrtf((float) C));
    tc_fill_bf16(rng, rb, c->e, -0.5f, 0.5f);
}

static void args_gate(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    const struct tc_case* c = p->c;
    a->f32_bf16w_rmsnorm_matmul_topk = (struct gptoss_f32_bf16w_rmsnorm_matmul_topk_args){
        d[0], d[1], d[2], d[3], (c->flags & TC_NO_BIAS) ? NULL : d[4], d[5], d[6], d[7], c->t, c->c, c->e, c->k, c->f,
    };
}

static void expect_gate(const struct tc_problem* p, struct tc_expect* ex) {
    const struct tc_case* c = p->c;
    const uint32_t T = c->t, C = c->c, E = c->e, k = c->k;
    const gptoss_bf16* rw = p->b[3].host;
    const gptoss_bf16* rb = (c->flags & TC_NO_BIAS) ? NULL : p->b[4].host;
    double* out = tc_xmalloc((size_t) T * C * sizeof *out);
    double* sc = tc_xmalloc((size_t) T * E * sizeof *sc);
    uint32_t* ids = tc_xmalloc((size_t) T * k * sizeof *ids);
    double* es = tc_xmalloc((size_t) T * k * sizeof *es);
    gptoss_ref_f32_bf16w_rmsnorm_matmul_topk(
        &(struct gptoss_f32_bf16w_rmsnorm_matmul_topk_args){p->b[0].host, p->b[1].host, NULL, rw, rb, NULL, ids, NULL,
                                                            T, C, E, k, c->f},
        out, sc, es);
    double* otol = tc_xmalloc((size_t) C * sizeof *otol);
    double* stol = tc_xmalloc((size_t) E * sizeof *stol);
    uint32_t near_ties = 0;
    tc_pick_tokens(ex, T, c->check, p->seed);
    for (uint32_t i = 0; i < ex->ntokens; i++) {
        const uint32_t t = ex->tokens[i];
        struct tc_span* so = tc_add_span(ex, 2, (size_t) t * C, C, false, 4, "output token %u", t);
        for (uint32_t j = 0; j < C; j++) {
            so->ref[j] = out[(size_t) t * C + j];
            otol[j] = tc_rmsnorm_tol(C, so->ref[j]);
            so->tol[j] = otol[j];
        }
        struct tc_span* ss = tc_add_span(ex, 5, (size_t) t * E, E, false, 4, "scores token %u", t);
        for (uint32_t e = 0; e < E; e++) {
            const gptoss_bf16* w = rw + (size_t) e * C;
            double sum_abs = 0.0, carried = 0.0;
            for (uint32_t j = 0; j < C; j++) {
                const double wa = fabs(tc_bf16d(w[j]));
                sum_abs += fabs(out[(size_t) t * C + j]) * wa;
                carried += wa * otol[j];
            }
            ss->ref[e] = sc[(size_t) t * E + e];
            stol[e] = tc_matmul_tol(C, sum_abs, rb != NULL ? fabs(tc_bf16d(rb[e])) : 0.0, 0.0, ss->ref[e]) + carried;
            ss->tol[e] = stol[e];
        }
        /* separation of the top k+1 reference scores (ranks from the reference ids) */
        const double* row = sc + (size_t) t * E;
        const uint32_t* id = ids + (size_t) t * k;
        double tmax = 0.0, gap = INFINITY;
        for (uint32_t j = 0; j < k; j++) tmax = fmax(tmax, stol[id[j]]);
        for (uint32_t j = 0; j + 1 < k; j++) gap = fmin(gap, row[id[j]] - row[id[j + 1]]);
        for (uint32_t e = 0; e < E; e++) { /* the best unselected score */
            bool selected = false;
            for (uint32_t j = 0; j < k; j++) selected |= id[j] == e;
            if (!selected) {
                gap = fmin(gap, row[id[k - 1]] - row[e]);
                tmax = fmax(tmax, stol[e]);
            }
        }
        if (!(gap > 2.0 * tmax)) {
            near_ties++;
            continue;
        }
        struct tc_span* si = tc_add_span(ex, 6, (size_t) t * k, k, true, 4, "expert ids token %u", t);
        struct tc_span* se = tc_add_span(ex, 7, (size_t) t * k, k, false, 4, "expert scores token %u", t);
        memcpy(si->exact, id, k * sizeof *id);
        const double spread = row[id[0]] - row[id[k - 1]];
        for (uint32_t j = 0; j < k; j++) {
            se->ref[j] = es[(size_t) t * k + j];
            se->tol[j] = topk_rel_tol(spread, k) * fabs(se->ref[j]) + 2.0 * tmax * fabs(se->ref[j]) + TC_TINY;
        }
    }
    if (near_ties > 0)
        printf("note %s: %u token(s) with near-tied router scores: top-k not compared\n", c->name, near_ties);
    free(out);
    free(sc);
    free(ids);
    free(es);
    free(otol);
    free(stol);
}

static enum gptoss_status unfused_gate(gptoss_backend_t b, const union gptoss_kernel_args* args) {
    const struct gptoss_f32_bf16w_rmsnorm_matmul_topk_args* a = &args->f32_bf16w_rmsnorm_matmul_topk;
    enum gptoss_status st =
        gptoss_f32_bf16w_rmsnorm(b, a->input, a->norm_weight, a->output, a->num_tokens, a->num_channels, a->epsilon);
    if (st == gptoss_status_success) {
        st = gptoss_f32_bf16w_matmul(b, a->output, a->router_weight, a->router_bias, a->scores, a->num_tokens,
                                     a->num_channels, a->num_experts);
    }
    if (st == gptoss_status_success) {
        st = gptoss_f32_topk(b, a->scores, a->expert_ids, a->expert_scores, a->num_tokens, a->num_experts,
                             a->num_active_experts);
    }
    return st;
}

static double bytes_gate(const struct tc_case* c) {
    const double T = c->t, C = c->c, E = c->e;
    return 8 * T * C + 2 * C + 2 * E * C + 2 * E + 4 * T * E + 8 * T * c->k;
}
static double flops_gate(const struct tc_case* c) { return 4.0 * c->t * c->c + 2.0 * c->t * c->c * (double) c->e; }

const struct tc_op tc_op_f32_bf16w_rmsnorm_matmul_topk = {
    gptoss_kernel_f32_bf16w_rmsnorm_matmul_topk,
    TC_CASES(gate_cases),
    .make = make_gate,
    .args = args_gate,
    .expect = expect_gate,
    .bytes = bytes_gate,
    .flops = flops_gate,
    .shape = tc_shape_routing,
    .unfused = unfused_gate,
};
