/* Test module of the unembedding (logits + argmax).
 *
 * logits: the matmul tolerance (tc_matmul_tol, no bias). argmax: must be the argmax of
 * the kernel's own logits (lowest index on ties, exact: the TC_TIES case has real ties)
 * and, against the reference, ref[argmax] >= max(ref) - (tol[argmax] + tol[ref argmax]).
 *
 * Case fields: t = tokens, c = num_cols, r = vocabulary rows. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "ops.h"
#include "reference/reference.h"

static const struct tc_case cases[] = {
    {"unembedding_1tok_1x1", .t = 1, .c = 1, .r = 1, .flags = TC_QUICK},
    {"unembedding_odd_3tok_19x2881", .t = 3, .c = 19, .r = 2881, .flags = TC_QUICK},
    {"unembedding_odd_cols_2881_rows130", .t = 2, .c = 2881, .r = 130, .flags = TC_QUICK},
    {"unembedding_ties_lowest_index", .t = 19, .c = 8, .r = 130, .flags = TC_QUICK | TC_TIES},
    /* 64 and 130 tokens reach the CUDA tensor-core (split-bf16) GEMM path; 8 random tokens checked. */
    {"unembedding_prefill64_2880x4099", .t = 64, .c = 2880, .r = 4099, .check = 8},
    {"unembedding_prefill130_odd_cols_19x2881", .t = 130, .c = 19, .r = 2881, .check = 8},
    {"unembedding_20b_decode_2880x200014", .t = 1, .c = 2880, .r = 200014, .flags = TC_BENCH},
    {"unembedding_decode_2880x201088_checkpoint_vocab", .t = 1, .c = 2880, .r = 201088,
     .flags = TC_BENCH | TC_BENCH_ONLY},
    {"unembedding_prefill32_2880x201088", .t = 32, .c = 2880, .r = 201088, .flags = TC_BENCH_CUDA | TC_BENCH_ONLY},
    {"unembedding_batch64_2880x201088", .t = 64, .c = 2880, .r = 201088, .flags = TC_BENCH_CUDA | TC_BENCH_ONLY},
    /* 512 tokens x 200014 rows would be 295 G MACs per backend (the engine unembeds only
     * the tokens it samples): 4 tokens, 1 random token checked against the reference. */
    {"unembedding_prefill4_2880x201088", .t = 4, .c = 2880, .r = 201088, .check = 1},
};

static void make(struct tc_problem* p, struct tc_rng* rng) {
    const struct tc_case* c = p->c;
    float* x = tc_add_buffer(p, "input", TC_IN, TC_F32, (size_t) c->t * c->c);
    gptoss_bf16* w = tc_add_buffer(p, "weight", TC_IN, TC_BF16, (size_t) c->r * c->c);
    tc_add_buffer(p, "logits", TC_OUT, TC_F32, (size_t) c->t * c->r);
    tc_add_buffer(p, "argmax", TC_OUT, TC_U32, c->t);
    if (x && w) tc_fill_matmul(p, rng, x, w);
}

static void args(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    a->f32_bf16w_unembedding =
        (struct gptoss_f32_bf16w_unembedding_args){d[0], d[1], d[2], d[3], p->c->t, p->c->c, p->c->r};
}

static void expect(const struct tc_problem* p, struct tc_expect* ex) {
    const struct tc_case* c = p->c;
    const uint32_t C = c->c, R = c->r;
    const float* x = p->b[0].host;
    const gptoss_bf16* w = p->b[1].host;
    double* sabs = tc_xmalloc(R * sizeof *sabs);
    uint32_t argmax = 0;
    tc_pick_tokens(ex, c->t, c->check, p->seed);
    for (uint32_t i = 0; i < ex->ntokens; i++) {
        const uint32_t t = ex->tokens[i];
        struct tc_span* s = tc_add_span(ex, 2, (size_t) t * R, R, false, 4, "token %u", t);
        const float* xt = x + (size_t) t * C;
        gptoss_ref_f32_bf16w_unembedding(&(struct gptoss_f32_bf16w_unembedding_args){xt, w, NULL, &argmax, 1, C, R},
                                         s->ref);
        tc_abs_dot_rows(xt, w, R, C, sabs);
        for (uint32_t r = 0; r < R; r++) s->tol[r] = tc_matmul_tol(C, sabs[r], 0.0, 0.0, s->ref[r]);
    }
    free(sabs);
}

static void verify(struct tc_problem* p, const struct tc_expect* ex, void* const outs[], struct tc_result* res) {
    const struct tc_case* c = p->c;
    const float* logits = outs[2];
    const uint32_t* am = outs[3];
    for (uint32_t t = 0; t < c->t; t++) {
        const float* row = logits + (size_t) t * c->r;
        uint32_t best = 0;
        for (uint32_t v = 1; v < c->r; v++) {
            if (gptoss_argmax_key(row[v]) < gptoss_argmax_key(row[best])) best = v;
        }
        if (am[t] != best) {
            tc_failf(res, "argmax[%u] = %u but the largest of its own logits is at %u (lowest index on ties)", t, am[t],
                     best);
            return;
        }
    }
    for (size_t i = 0; i < ex->nspans; i++) {
        const struct tc_span* s = ex->spans[i];
        const uint32_t t = (uint32_t) (s->start / c->r);
        uint32_t rb = 0;
        for (uint32_t v = 1; v < c->r; v++) rb = s->ref[v] > s->ref[rb] ? v : rb;
        const uint32_t a = am[t];
        if (a >= c->r || s->ref[a] < s->ref[rb] - (s->tol[a] + s->tol[rb])) {
            tc_failf(res, "argmax[%u] = %u (ref logit %.9g) but the reference max is %.9g at %u", t, a,
                     a < c->r ? s->ref[a] : NAN, s->ref[rb], rb);
            return;
        }
    }
}

static double bytes(const struct tc_case* c) {
    const double T = c->t, C = c->c, R = c->r;
    return 4 * T * C + 2 * R * C + 4 * T * R + 4 * T;
}
static double flops(const struct tc_case* c) { return 2.0 * c->t * c->c * c->r; }

const struct tc_op tc_op_f32_bf16w_unembedding = {
    gptoss_kernel_f32_bf16w_unembedding,
    TC_CASES(cases),
    .make = make,
    .args = args,
    .expect = expect,
    .verify = verify,
    .bytes = bytes,
    .flops = flops,
    .shape = tc_shape_rows,
};
