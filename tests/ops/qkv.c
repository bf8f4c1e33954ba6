/* Test module of the fused QKV projection + RoPE + KV-cache write.
 *
 * Tolerance: before RoPE the matmul one (tc_matmul_tol); the Q and K heads then the RoPE
 * one (tests/ops/rope.c, with those pre-RoPE tolerances); V heads keep the matmul one. The
 * cache starts poisoned (TC_KV_POISON): the slots of other positions must keep the
 * poison, the written ones are compared with the reference's K and V.
 *
 * Case fields: t = tokens, c = num_cols, hq / hkv / d heads, off = token_offset, maxt =
 * max_tokens, f = rope_base; TC_YARN_NEUTRAL as rope; TC_NO_BIAS: bias NULL. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "reference/reference.h"

/* Bit pattern of the KV-cache slots the kernel must not touch (a quiet NaN). */
#define KV_POISON 0x7FC0DEADu

static const struct tc_case cases[] = {
    {"qkv_1tok_pos0_1q1kv_hd2_cols1", .t = 1, .c = 1, .hq = 1, .hkv = 1, .d = 2, .off = 0, .maxt = 1, .f = TC_THETA,
     .flags = TC_QUICK},
    {"qkv_odd_3tok_cols19_hd2_3q1kv", .t = 3, .c = 19, .hq = 3, .hkv = 1, .d = 2, .off = 5, .maxt = 19, .f = TC_THETA,
     .flags = TC_QUICK},
    {"qkv_gqa4_hd32_cols130", .t = 3, .c = 130, .hq = 8, .hkv = 2, .d = 32, .off = 17, .maxt = 130, .f = TC_THETA,
     .flags = TC_QUICK},
    {"qkv_hd128_gqa4_cols2881", .t = 2, .c = 2881, .hq = 4, .hkv = 1, .d = 128, .off = 100, .maxt = 200, .f = TC_THETA},
    {"qkv_yarn_neutral_base50000", .t = 2, .c = 128, .hq = 8, .hkv = 1, .d = 64, .off = 7, .maxt = 16, .f = 50000.0f,
     .flags = TC_QUICK | TC_YARN_NEUTRAL},
    {"qkv_no_bias", .t = 2, .c = 64, .hq = 2, .hkv = 1, .d = 64, .off = 3, .maxt = 8, .f = TC_THETA,
     .flags = TC_NO_BIAS},
    /* one token, vector shapes: the CUDA region GEMV with the RoPE epilogue (no bias; rows
     * 160 = 80 row pairs over blocks of 2 rows) */
    {"qkv_1tok_region_no_bias_hd32_3q1kv_cols136", .t = 1, .c = 136, .hq = 3, .hkv = 1, .d = 32, .off = 9, .maxt = 16,
     .f = TC_THETA, .flags = TC_QUICK | TC_NO_BIAS},
    {"qkv_pos_131070_context_end", .t = 2, .c = 64, .hq = 1, .hkv = 1, .d = 64, .off = 131070, .maxt = 131072,
     .f = TC_THETA},
    {"qkv_20b_decode_pos4096", .t = 1, .c = 2880, .hq = 64, .hkv = 8, .d = 64, .off = 4096, .maxt = 8192, .f = TC_THETA,
     .flags = TC_BENCH},
    {"qkv_20b_prefill512_pos0", .t = 512, .c = 2880, .hq = 64, .hkv = 8, .d = 64, .off = 0, .maxt = 512, .f = TC_THETA,
     .check = 16, .flags = TC_BENCH},
    {"qkv_20b_prefill512_pos3584", .t = 512, .c = 2880, .hq = 64, .hkv = 8, .d = 64, .off = 3584, .maxt = 4608,
     .f = TC_THETA, .check = 8},
};

static void make(struct tc_problem* p, struct tc_rng* rng) {
    const struct tc_case* c = p->c;
    const size_t rows = (size_t) c->d * (c->hq + 2 * c->hkv);
    const size_t cache = (size_t) c->hkv * c->maxt * 2 * c->d;
    float* x = tc_add_buffer(p, "input", TC_IN, TC_F32, (size_t) c->t * c->c);
    gptoss_bf16* w = tc_add_buffer(p, "weight", TC_IN, TC_BF16, rows * c->c);
    gptoss_bf16* b = tc_add_buffer(p, "bias", TC_IN, TC_BF16, rows);
    tc_add_buffer(p, "output", TC_OUT, TC_F32, (size_t) c->t * rows);
    uint32_t* kv = tc_add_buffer(p, "kv_cache", TC_INOUT, TC_F32, cache);
    p->b[4].nan_ok = true; /* the poison; verify checks every slot */
    if (!x || !w || !b || !kv) return;
    for (size_t i = 0; i < cache; i++) kv[i] = KV_POISON;
    tc_fill_f32(rng, x, (size_t) c->t * c->c, -1.0f, 1.0f);
    const float a = tc_weight_amplitude(c->c);
    tc_fill_bf16(rng, w, rows * c->c, -a, a);
    tc_fill_bf16(rng, b, rows, -0.5f, 0.5f);
}

static void args(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    const struct tc_case* c = p->c;
    const float* r = p->rope;
    a->f32_bf16w_matmul_qkv = (struct gptoss_f32_bf16w_matmul_qkv_args){
        d[0],
        d[1],
        (c->flags & TC_NO_BIAS) ? NULL : d[2],
        d[3],
        d[4],
        c->t,
        c->c,
        c->hq,
        c->hkv,
        c->d,
        (uint32_t) c->off,
        c->maxt,
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
    };
}

static void expect(const struct tc_problem* p, struct tc_expect* ex) {
    const struct tc_case* c = p->c;
    const uint32_t C = c->c, D = c->d;
    const size_t rows = (size_t) D * (c->hq + 2 * c->hkv);
    const float* x = p->b[0].host;
    const gptoss_bf16* w = p->b[1].host;
    const gptoss_bf16* b = (c->flags & TC_NO_BIAS) ? NULL : p->b[2].host;
    const float* r = p->rope;
    double* pre = tc_xmalloc(rows * sizeof *pre);
    double* sabs = tc_xmalloc(rows * sizeof *sabs);
    double* pre_tol = tc_xmalloc(rows * sizeof *pre_tol);
    double* kv = tc_xmalloc((size_t) c->hkv * c->maxt * 2 * D * sizeof *kv);
    tc_pick_tokens(ex, c->t, c->check, p->seed);
    for (uint32_t i = 0; i < ex->ntokens; i++) {
        const uint32_t t = ex->tokens[i];
        const uint32_t pos = (uint32_t) c->off + t;
        const float* xt = x + (size_t) t * C;
        struct tc_span* s = tc_add_span(ex, 3, (size_t) t * rows, rows, false, 4, "token %u", t);
        gptoss_ref_f32_bf16w_matmul_qkv(
            &(struct gptoss_f32_bf16w_matmul_qkv_args){xt, w, b, NULL, NULL, 1, C, c->hq, c->hkv, D, pos, c->maxt, r[0],
                                                       r[1], r[2], r[3], r[4]},
            s->ref, kv);
        gptoss_ref_f32_bf16w_matmul(&(struct gptoss_f32_bf16w_matmul_args){xt, w, b, NULL, 1, C, (uint32_t) rows}, pre);
        tc_abs_dot_rows(xt, w, (uint32_t) rows, C, sabs);
        for (size_t j = 0; j < rows; j++) {
            pre_tol[j] = tc_matmul_tol(C, sabs[j], b ? fabs(tc_bf16d(b[j])) : 0.0, 0.0, pre[j]);
        }
        memcpy(s->tol, pre_tol, rows * sizeof *pre_tol); /* V heads keep the matmul tolerance */
        tc_rope_tolerance(p, pre, pre_tol, s->tol, pos);
        for (uint32_t h = 0; h < c->hkv; h++) {
            const size_t slot = ((size_t) h * c->maxt + pos) * 2 * D;
            struct tc_span* k = tc_add_span(ex, 4, slot, 2 * D, false, 4, "token %u kv head %u", t, h);
            memcpy(k->ref, kv + slot, 2 * D * sizeof(double));
            memcpy(k->tol, s->tol + (size_t) (c->hq + h) * D, D * sizeof(double));
            memcpy(k->tol + D, s->tol + (size_t) (c->hq + c->hkv + h) * D, D * sizeof(double));
        }
    }
    free(pre);
    free(sabs);
    free(pre_tol);
    free(kv);
}

/* Slots of other positions keep the poison; written slots of unchecked tokens are not NaN. */
static void verify(struct tc_problem* p, const struct tc_expect* ex, void* const outs[], struct tc_result* res) {
    const struct tc_case* c = p->c;
    const uint32_t* kv = outs[4];
    const size_t slot = 2 * (size_t) c->d;
    for (uint32_t h = 0; h < c->hkv; h++) {
        for (uint32_t pos = 0; pos < c->maxt; pos++) {
            const uint32_t* s = kv + ((size_t) h * c->maxt + pos) * slot;
            const bool written = pos >= c->off && pos < c->off + c->t;
            for (size_t j = 0; j < slot; j++) {
                if (!written && s[j] != KV_POISON) {
                    tc_failf(res,
                             "kv_cache head %u position %u [%zu] was overwritten (0x%08" PRIx32
                             ") outside positions %" PRIu64 "..%" PRIu64,
                             h, pos, j, s[j], c->off, c->off + c->t - 1);
                    return;
                }
                if (written && (s[j] & 0x7FFFFFFFu) > 0x7F800000u) {
                    tc_failf(res, "kv_cache head %u position %u [%zu] is NaN (not written)", h, pos, j);
                    return;
                }
            }
        }
    }
}

static double bytes(const struct tc_case* c) {
    const double T = c->t, C = c->c, rows = (double) c->d * (c->hq + 2 * c->hkv);
    return 4 * T * C + 2 * rows * C + 2 * rows + 4 * T * rows + 4 * T * c->hkv * 2 * c->d;
}
static double flops(const struct tc_case* c) { return 2.0 * c->t * c->c * (double) c->d * (c->hq + 2 * c->hkv); }

const struct tc_op tc_op_f32_bf16w_matmul_qkv = {
    gptoss_kernel_f32_bf16w_matmul_qkv,
    TC_CASES(cases),
    .make = make,
    .args = args,
    .expect = expect,
    .verify = verify,
    .bytes = bytes,
    .flops = flops,
    .shape = tc_shape_heads,
};
