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

/* ==================================================================================== */
/* f32_bf16w_matmul_qkv_varlen: rows of several sequences into a paged cache            */
/* ==================================================================================== */

/* Case fields: t = rows, k = sequences, r = block_size, maxt = positions a table addresses
 * (table_stride = maxt / block_size rounded up), off = the largest history (positions
 * before a sequence's first row), c = num_cols, hq / hkv / d heads, f = rope_base;
 * TC_YARN_NEUTRAL, TC_NO_BIAS as above. The rows of a sequence are consecutive positions,
 * all rows shuffled; the sequences' blocks a random permutation of the cache's (no block
 * shared: every row writes its own slot), table entries past a sequence's rows 0xFFFFFFFF.
 * Expected: each row as gptoss_f32_bf16w_matmul_qkv at the row's position (same
 * tolerances), its K and V in the slot of (sequence, position); every other slot keeps the
 * poison. */
static const struct tc_case varlen_cases[] = {
    {"qkv_varlen_1row_bs1_cols1_hd2", .t = 1, .k = 1, .r = 1, .maxt = 3, .off = 2, .c = 1, .hq = 1, .hkv = 1, .d = 2,
     .f = TC_THETA, .flags = TC_QUICK},
    {"qkv_varlen_odd_7rows_3seqs_bs3_cols19", .t = 7, .k = 3, .r = 3, .maxt = 40, .off = 19, .c = 19, .hq = 3, .hkv = 1,
     .d = 2, .f = TC_THETA, .flags = TC_QUICK},
    {"qkv_varlen_gqa4_hd32_5seqs_bs16", .t = 9, .k = 5, .r = 16, .maxt = 200, .off = 130, .c = 130, .hq = 8, .hkv = 2,
     .d = 32, .f = TC_THETA, .flags = TC_QUICK},
    {"qkv_varlen_yarn_neutral_no_bias", .t = 4, .k = 2, .r = 5, .maxt = 30, .off = 11, .c = 64, .hq = 2, .hkv = 1,
     .d = 64, .f = 50000.0f, .flags = TC_QUICK | TC_YARN_NEUTRAL | TC_NO_BIAS},
    /* one row, vector shapes: the CUDA region GEMV with the RoPE epilogue through the table */
    {"qkv_varlen_1row_region_hd32_3q1kv_cols136", .t = 1, .k = 3, .r = 8, .maxt = 64, .off = 40, .c = 136, .hq = 3,
     .hkv = 1, .d = 32, .f = TC_THETA, .flags = TC_QUICK | TC_NO_BIAS},
    {"qkv_varlen_20b_decode_8seqs", .t = 8, .k = 8, .r = 16, .maxt = 4096, .off = 4000, .c = 2880, .hq = 64, .hkv = 8,
     .d = 64, .f = TC_THETA, .flags = TC_BENCH},
    {"qkv_varlen_20b_decode_1seq", .t = 1, .k = 1, .r = 16, .maxt = 8192, .off = 4096, .c = 2880, .hq = 64, .hkv = 8,
     .d = 64, .f = TC_THETA, .flags = TC_BENCH},
    {"qkv_varlen_20b_prefill200_and_7_decodes", .t = 207, .k = 8, .r = 16, .maxt = 1024, .off = 300, .c = 2880,
     .hq = 64, .hkv = 8, .d = 64, .f = TC_THETA, .check = 12},
};

static uint32_t varlen_table_stride(const struct tc_case* c) { return (c->maxt + c->r - 1) / c->r; }
static uint32_t varlen_num_blocks(const struct tc_case* c) { return c->k * varlen_table_stride(c) + 2; }

static void varlen_make(struct tc_problem* p, struct tc_rng* rng) {
    const struct tc_case* c = p->c;
    const uint32_t S = c->k, bs = c->r, TS = varlen_table_stride(c), T = c->t, NB = varlen_num_blocks(c);
    const size_t rows = (size_t) c->d * (c->hq + 2 * c->hkv);
    p->kv_stride = (uint64_t) NB * bs * 2 * c->d;
    const size_t cache = (size_t) c->hkv * p->kv_stride;
    float* x = tc_add_buffer(p, "input", TC_IN, TC_F32, (size_t) T * c->c);
    gptoss_bf16* w = tc_add_buffer(p, "weight", TC_IN, TC_BF16, rows * c->c);
    gptoss_bf16* b = tc_add_buffer(p, "bias", TC_IN, TC_BF16, rows);
    tc_add_buffer(p, "output", TC_OUT, TC_F32, (size_t) T * rows);
    uint32_t* kv = tc_add_buffer(p, "kv_cache", TC_INOUT, TC_F32, cache);
    p->b[4].nan_ok = true; /* the poison; verify checks every slot */
    uint32_t* pos = tc_add_buffer(p, "positions", TC_IN, TC_U32, T);
    uint32_t* ids = tc_add_buffer(p, "seq_ids", TC_IN, TC_U32, T);
    uint32_t* tab = tc_add_buffer(p, "block_tables", TC_IN, TC_U32, (size_t) S * TS);
    uint32_t* perm = malloc(NB * sizeof *perm);
    if (!x || !w || !b || !kv || !pos || !ids || !tab || !perm) {
        free(perm);
        return;
    }
    for (size_t i = 0; i < cache; i++) kv[i] = KV_POISON;
    tc_fill_f32(rng, x, (size_t) T * c->c, -1.0f, 1.0f);
    const float a = tc_weight_amplitude(c->c);
    tc_fill_bf16(rng, w, rows * c->c, -a, a);
    tc_fill_bf16(rng, b, rows, -0.5f, 0.5f);
    for (uint32_t i = 0; i < NB; i++) perm[i] = i;
    for (uint32_t i = NB - 1; i > 0; i--) {
        const uint32_t j = (uint32_t) (tc_rng_u64(rng) % (i + 1)), v = perm[i];
        perm[i] = perm[j];
        perm[j] = v;
    }
    /* rows per sequence (at least one each while there are rows), then their positions */
    uint32_t* count = calloc(S, sizeof *count);
    if (count == NULL) {
        free(perm);
        return;
    }
    for (uint32_t t = 0; t < T; t++) count[t < S ? t : (uint32_t) (tc_rng_u64(rng) % S)]++;
    uint32_t i = 0, next = 0;
    for (uint32_t s = 0; s < S; s++) {
        uint32_t hist = s == 0 ? (uint32_t) c->off : (uint32_t) (tc_rng_u64(rng) % (c->off + 1));
        if (hist + count[s] > c->maxt) hist = c->maxt - count[s];
        for (uint32_t j = 0; j < count[s]; j++, i++) {
            ids[i] = s;
            pos[i] = hist + j;
        }
        for (uint32_t e = 0; e < TS; e++) {
            tab[(size_t) s * TS + e] = e * bs < hist + count[s] ? perm[next++] : UINT32_MAX;
        }
    }
    free(count);
    free(perm);
    for (uint32_t a2 = T - 1; a2 > 0; a2--) {
        const uint32_t b2 = (uint32_t) (tc_rng_u64(rng) % (a2 + 1));
        const uint32_t ps = pos[a2], is = ids[a2];
        pos[a2] = pos[b2];
        ids[a2] = ids[b2];
        pos[b2] = ps;
        ids[b2] = is;
    }
}

static void varlen_args(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    const struct tc_case* c = p->c;
    const float* r = p->rope;
    a->f32_bf16w_matmul_qkv_varlen = (struct gptoss_f32_bf16w_matmul_qkv_varlen_args){
        d[0], d[1], (c->flags & TC_NO_BIAS) ? NULL : d[2], d[3], d[4], d[5], d[6], d[7], c->t, c->c, c->hq, c->hkv,
        c->d, p->kv_stride, c->r, varlen_table_stride(c), c->k, r[0], r[1], r[2], r[3], r[4],
    };
}

/* Slot of row t. */
static uint64_t varlen_slot(const struct tc_problem* p, uint32_t t) {
    const struct tc_case* c = p->c;
    const uint32_t* pos = p->b[5].host;
    const uint32_t* ids = p->b[6].host;
    const uint32_t* tab = p->b[7].host;
    return (uint64_t) tab[(size_t) ids[t] * varlen_table_stride(c) + pos[t] / c->r] * c->r + pos[t] % c->r;
}

static void varlen_expect(const struct tc_problem* p, struct tc_expect* ex) {
    const struct tc_case* c = p->c;
    const uint32_t C = c->c, D = c->d;
    const size_t rows = (size_t) D * (c->hq + 2 * c->hkv);
    const float* x = p->b[0].host;
    const gptoss_bf16* w = p->b[1].host;
    const gptoss_bf16* b = (c->flags & TC_NO_BIAS) ? NULL : p->b[2].host;
    const uint32_t* pos = p->b[5].host;
    const uint32_t* ids = p->b[6].host;
    const float* r = p->rope;
    double* pre = tc_xmalloc(rows * sizeof *pre);
    double* sabs = tc_xmalloc(rows * sizeof *sabs);
    double* pre_tol = tc_xmalloc(rows * sizeof *pre_tol);
    double* kv = tc_xmalloc((size_t) c->hkv * p->kv_stride * sizeof *kv);
    tc_pick_tokens(ex, c->t, c->check, p->seed);
    for (uint32_t i = 0; i < ex->ntokens; i++) {
        const uint32_t t = ex->tokens[i];
        const float* xt = x + (size_t) t * C;
        const uint64_t slot = varlen_slot(p, t);
        struct tc_span* s = tc_add_span(ex, 3, (size_t) t * rows, rows, false, 4, "row %u (position %u)", t, pos[t]);
        gptoss_ref_f32_bf16w_matmul_qkv_varlen(
            &(struct gptoss_f32_bf16w_matmul_qkv_varlen_args){
                xt, w, b, NULL, NULL, pos + t, ids + t, p->b[7].host, 1, C, c->hq, c->hkv, D, p->kv_stride, c->r,
                varlen_table_stride(c), c->k, r[0], r[1], r[2], r[3], r[4]},
            s->ref, kv);
        gptoss_ref_f32_bf16w_matmul(&(struct gptoss_f32_bf16w_matmul_args){xt, w, b, NULL, 1, C, (uint32_t) rows}, pre);
        tc_abs_dot_rows(xt, w, (uint32_t) rows, C, sabs);
        for (size_t j = 0; j < rows; j++) {
            pre_tol[j] = tc_matmul_tol(C, sabs[j], b ? fabs(tc_bf16d(b[j])) : 0.0, 0.0, pre[j]);
        }
        memcpy(s->tol, pre_tol, rows * sizeof *pre_tol); /* V heads keep the matmul tolerance */
        tc_rope_tolerance(p, pre, pre_tol, s->tol, pos[t]);
        for (uint32_t h = 0; h < c->hkv; h++) {
            const size_t at = h * p->kv_stride + slot * 2 * D;
            struct tc_span* k = tc_add_span(ex, 4, at, 2 * D, false, 4, "row %u kv head %u", t, h);
            memcpy(k->ref, kv + at, 2 * D * sizeof(double));
            memcpy(k->tol, s->tol + (size_t) (c->hq + h) * D, D * sizeof(double));
            memcpy(k->tol + D, s->tol + (size_t) (c->hq + c->hkv + h) * D, D * sizeof(double));
        }
    }
    free(pre);
    free(sabs);
    free(pre_tol);
    free(kv);
}

/* Slots no row writes keep the poison; the written slots of unchecked rows are not NaN. */
static void varlen_verify(struct tc_problem* p, const struct tc_expect* ex, void* const outs[], struct tc_result* res) {
    const struct tc_case* c = p->c;
    const uint32_t* kv = outs[4];
    const size_t slot_floats = 2 * (size_t) c->d, slots = p->kv_stride / slot_floats;
    unsigned char* written = calloc(slots, 1);
    if (written == NULL) {
        tc_failf(res, "out of host memory");
        return;
    }
    for (uint32_t t = 0; t < c->t; t++) written[varlen_slot(p, t)] = 1;
    for (uint32_t h = 0; h < c->hkv && !res->fail; h++) {
        for (size_t sl = 0; sl < slots && !res->fail; sl++) {
            const uint32_t* s = kv + h * p->kv_stride + sl * slot_floats;
            for (size_t j = 0; j < slot_floats; j++) {
                if (!written[sl] && s[j] != KV_POISON) {
                    tc_failf(res, "kv_cache head %u slot %zu [%zu] was overwritten (0x%08" PRIx32 "); no row writes it",
                             h, sl, j, s[j]);
                    break;
                }
                if (written[sl] && (s[j] & 0x7FFFFFFFu) > 0x7F800000u) {
                    tc_failf(res, "kv_cache head %u slot %zu [%zu] is NaN (not written)", h, sl, j);
                    break;
                }
            }
        }
    }
    free(written);
}

static double varlen_bytes(const struct tc_case* c) { return bytes(c) + 8.0 * c->t; }

const struct tc_op tc_op_f32_bf16w_matmul_qkv_varlen = {
    gptoss_kernel_f32_bf16w_matmul_qkv_varlen,
    TC_CASES(varlen_cases),
    .make = varlen_make,
    .args = varlen_args,
    .expect = varlen_expect,
    .verify = varlen_verify,
    .bytes = varlen_bytes,
    .flops = flops,
    .shape = tc_shape_heads,
};
