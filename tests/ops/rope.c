/* Test module of the in-place RoPE (and the RoPE tolerance the qkv module shares).
 *
 * Tolerance: the reference forms each angle as the spec does, in f32 (reference/rope.c),
 * so what is left is the engine's cos and sin of that angle times the multiplier (CUDA's
 * sincosf: 2 ulp; with the product's rounding <= 3 m 2^-24 each) and the rotation
 * (x c - y s: two products and a difference, <= 2 m (|x| + |y|) 2^-24): in all
 * tol = m (|x| + |y|) 4 TC_EPS32 (8 x 2^-24) + m (tol_x + tol_y), with m the YaRN
 * multiplier and tol_x / tol_y the errors of the pair before the rotation (0 here, the
 * matmul tolerance in qkv), at every position: an inverse frequency an ulp off moves the
 * angle by pos ulps (0.008 rad at 131,071), which rope_pos_131071 sees. V heads: exact.
 *
 * Case fields: t = tokens, hq / hkv / d heads, off = token_offset, f = rope_base;
 * TC_YARN_NEUTRAL: plain RoPE (interp 1, offset 0, scale 0, mult 1), else gpt-oss's YaRN. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "reference/reference.h"

static const struct tc_case cases[] = {
    {"rope_1tok_pos0_hd2", .t = 1, .hq = 1, .hkv = 1, .d = 2, .off = 0, .f = TC_THETA, .flags = TC_QUICK},
    {"rope_odd_3tok_3q1kv_hd2", .t = 3, .hq = 3, .hkv = 1, .d = 2, .off = 19, .f = TC_THETA, .flags = TC_QUICK},
    {"rope_gqa4_hd32", .t = 19, .hq = 8, .hkv = 2, .d = 32, .off = 130, .f = TC_THETA, .flags = TC_QUICK},
    {"rope_hd128", .t = 3, .hq = 4, .hkv = 1, .d = 128, .off = 2881, .f = TC_THETA},
    {"rope_upstream_test_yarn_neutral_base50000_pos7", .t = 2, .hq = 6, .hkv = 1, .d = 64, .off = 7, .f = 50000.0f,
     .flags = TC_QUICK | TC_YARN_NEUTRAL},
    {"rope_pos_131071", .t = 1, .hq = 64, .hkv = 8, .d = 64, .off = 131071, .f = TC_THETA},
    {"rope_20b_decode_pos4096", .t = 1, .hq = 64, .hkv = 8, .d = 64, .off = 4096, .f = TC_THETA, .flags = TC_BENCH},
    {"rope_20b_prefill512_pos0", .t = 512, .hq = 64, .hkv = 8, .d = 64, .off = 0, .f = TC_THETA},
};

void tc_rope_tolerance(const struct tc_problem* p, const double* pre, const double* pre_tol, double* tol,
                       uint32_t pos) {
    const struct tc_case* c = p->c;
    const double m = fabs((double) p->rope[4]);
    for (uint32_t h = 0; h < c->hq + c->hkv; h++) {
        for (uint32_t i = 0; i < c->d / 2; i++) {
            const size_t j = (size_t) h * c->d + 2 * i;
            const double t = m * (fabs(pre[j]) + fabs(pre[j + 1])) * 4.0 * TC_EPS32 +
                             m * (pre_tol[j] + pre_tol[j + 1]) + TC_TINY;
            tol[j] = t;
            tol[j + 1] = t;
        }
    }
}

static void make(struct tc_problem* p, struct tc_rng* rng) {
    const struct tc_case* c = p->c;
    const size_t n = (size_t) c->t * c->d * (c->hq + 2 * c->hkv);
    float* x = tc_add_buffer(p, "activations", TC_INOUT, TC_F32, n);
    if (x) tc_fill_f32(rng, x, n, -1.0f, 1.0f);
}

static void args(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    const struct tc_case* c = p->c;
    const float* r = p->rope;
    a->f32_rope = (struct gptoss_f32_rope_args){
        d[0], r[0], r[1], r[2], r[3], r[4], c->t, c->hq, c->hkv, c->d, (uint32_t) c->off,
    };
}

static void expect(const struct tc_problem* p, struct tc_expect* ex) {
    const struct tc_case* c = p->c;
    const size_t rows = (size_t) c->d * (c->hq + 2 * c->hkv);
    float* x = p->b[0].host;
    double* pre = tc_xmalloc(rows * sizeof *pre);
    double* zero = calloc(rows, sizeof *zero);
    const float* r = p->rope;
    tc_pick_tokens(ex, c->t, c->check, p->seed);
    for (uint32_t i = 0; i < ex->ntokens; i++) {
        const uint32_t t = ex->tokens[i];
        const uint32_t pos = (uint32_t) c->off + t;
        float* xt = x + (size_t) t * rows;
        struct tc_span* s = tc_add_span(ex, 0, (size_t) t * rows, rows, false, 4, "token %u", t);
        gptoss_ref_f32_rope(
            &(struct gptoss_f32_rope_args){xt, r[0], r[1], r[2], r[3], r[4], 1, c->hq, c->hkv, c->d, pos}, s->ref);
        for (size_t j = 0; j < rows; j++) {
            pre[j] = xt[j];
            s->tol[j] = 0.0; /* V heads: exact */
        }
        tc_rope_tolerance(p, pre, zero, s->tol, pos);
    }
    free(pre);
    free(zero);
}

/* Q and K read + written */
static double bytes(const struct tc_case* c) { return 2 * 4.0 * c->t * (double) (c->hq + c->hkv) * c->d; }

void tc_shape_heads(const struct tc_case* c, char* buf, size_t size) {
    snprintf(buf, size, "T=%u C=%u H=%u/%u D=%u pos=%llu", c->t, c->c, c->hq, c->hkv, c->d,
             (unsigned long long) c->off);
}

const struct tc_op tc_op_f32_rope = {
    gptoss_kernel_f32_rope, TC_CASES(cases),         .make = make, .args = args, .expect = expect,
    .bytes = bytes,         .shape = tc_shape_heads,
};
