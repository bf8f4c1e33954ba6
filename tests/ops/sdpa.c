/* Test module of the scaled dot-product attention (sinks, sliding window, GQA).
 *
 * Tolerance: logit error ds = (8 sqrt(D) + 2) eps A with A = |scale| max|q| max|k| (the
 * Cauchy-Schwarz bound of every logit); exp (fast exp allowed) relative (2A + 4) 2 eps;
 * weights p relative 2 ds + that; output tol = sum_t p_t |V_t| (2 rel_p + 8 sqrt(N+1)
 * eps), sum p|V| from the reference run on |V|.
 *
 * The seed README's example (TC_SEED_README: 8 kv heads x 8, head_dim 64, 3 history + 2
 * query tokens, window 5, sinks -1e4) is compared with a float64 port of the README's own
 * sdpa() formula at its assert_close(atol=rtol=1e-3), on fresh torch.randn-like draws.
 *
 * Case fields: t = query tokens, off = num_kv_tokens, hq / hkv / d heads, window, maxt =
 * cache capacity in tokens (0: off + t), f = scale; TC_NO_BIAS: no sinks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gptoss/kernels.h>

#include "ops.h"
#include "reference/reference.h"

static const struct tc_case cases[] = {
    /* the seed README's example, 1000 fresh draws (see the top) */
    {"sdpa_seed_readme_example_x1000", .t = 2, .off = 3, .hq = 64, .hkv = 8, .d = 64, .window = 5, .maxt = 5,
     .f = 0.125f, .flags = TC_QUICK | TC_SEED_README, .draws = 1000},
    {"sdpa_seed_readme_shape", .t = 2, .off = 3, .hq = 64, .hkv = 8, .d = 64, .window = 5, .maxt = 5, .f = 0.125f,
     .flags = TC_QUICK},
    {"sdpa_1tok_no_history", .t = 1, .off = 0, .hq = 1, .hkv = 1, .d = 4, .window = TC_FULL, .f = 0.5f,
     .flags = TC_QUICK},
    {"sdpa_window1_self_only", .t = 3, .off = 19, .hq = 8, .hkv = 1, .d = 64, .window = 1, .f = 0.125f,
     .flags = TC_QUICK},
    {"sdpa_odd_3q_19hist_window3_mqa7", .t = 3, .off = 19, .hq = 7, .hkv = 1, .d = 4, .window = 3, .f = 0.5f,
     .flags = TC_QUICK},
    {"sdpa_gqa4_hd32_130hist", .t = 3, .off = 130, .hq = 8, .hkv = 2, .d = 32, .window = TC_FULL, .f = 0.17677669f,
     .flags = TC_QUICK},
    {"sdpa_hd128_gqa4_window19", .t = 5, .off = 130, .hq = 16, .hkv = 4, .d = 128, .window = 19, .f = 0.088388347f},
    {"sdpa_no_sinks", .t = 2, .off = 19, .hq = 8, .hkv = 1, .d = 64, .window = TC_FULL, .f = 0.125f,
     .flags = TC_QUICK | TC_NO_BIAS},
    {"sdpa_scale1_upstream_convention", .t = 2, .off = 130, .hq = 16, .hkv = 2, .d = 64, .window = 128, .f = 1.0f},
    {"sdpa_20b_decode_4096_window128", .t = 1, .off = 4096, .hq = 64, .hkv = 8, .d = 64, .window = 128, .maxt = 8192,
     .f = 0.125f, .flags = TC_BENCH},
    {"sdpa_20b_decode_4096_full", .t = 1, .off = 4096, .hq = 64, .hkv = 8, .d = 64, .window = TC_FULL, .maxt = 8192,
     .f = 0.125f, .flags = TC_BENCH},
    /* Benchmark only: one query over 32,768 cached tokens (134 MB of K/V per layer). */
    {"sdpa_decode_32768_full", .t = 1, .off = 32768, .hq = 64, .hkv = 8, .d = 64, .window = TC_FULL, .maxt = 32769,
     .f = 0.125f, .flags = TC_BENCH | TC_BENCH_ONLY},
    {"sdpa_decode_32768_window128", .t = 1, .off = 32768, .hq = 64, .hkv = 8, .d = 64, .window = 128, .maxt = 32769,
     .f = 0.125f, .flags = TC_BENCH_CUDA | TC_BENCH_ONLY},
    /* CUDA's tensor-core prefill (calls of 32 rows or more, head_dim 64): groups of 16 W / GP
     * rows (W = 4 or 8 warps a block: GPTOSS_SDPA_TC_WARPS; GP = Q heads per KV head rounded
     * up to a power of two), the last one short; one Q head per KV head (64- or 128-row
     * groups), 2, 4, 5 (padded to 8) and 8; windows of 1, 19, 100, 128 and full; keys from 0
     * (3 tiles) to 4,064. Full groups of either W for every GP: the 140-token cases (GP 1
     * and 2), 64 tokens of GP 4, 45 of GP 5 and 100 of GP 8 (and the 512-token cases). */
    {"sdpa_tc_prefill_37tok_after130_20b_heads_full", .t = 37, .off = 130, .hq = 64, .hkv = 8, .d = 64,
     .window = TC_FULL, .f = 0.125f, .flags = TC_QUICK},
    {"sdpa_tc_prefill_100tok_after200_20b_heads_window128", .t = 100, .off = 200, .hq = 64, .hkv = 8, .d = 64,
     .window = 128, .f = 0.125f},
    {"sdpa_tc_prefill_70tok_after3_gqa1_no_sinks", .t = 70, .off = 3, .hq = 2, .hkv = 2, .d = 64, .window = TC_FULL,
     .f = 0.125f, .flags = TC_NO_BIAS},
    {"sdpa_tc_prefill_45tok_after64_gqa5_window19_scale1", .t = 45, .off = 64, .hq = 10, .hkv = 2, .d = 64,
     .window = 19, .f = 1.0f},
    {"sdpa_tc_prefill_33tok_after19_gqa2_window1", .t = 33, .off = 19, .hq = 4, .hkv = 2, .d = 64, .window = 1,
     .f = 0.125f},
    {"sdpa_tc_prefill_64tok_after4000_gqa4_full", .t = 64, .off = 4000, .hq = 8, .hkv = 2, .d = 64, .window = TC_FULL,
     .f = 0.125f},
    {"sdpa_tc_prefill_140tok_after60_gqa1_window100", .t = 140, .off = 60, .hq = 2, .hkv = 2, .d = 64, .window = 100,
     .f = 0.125f},
    {"sdpa_tc_prefill_140tok_after1000_gqa2_full", .t = 140, .off = 1000, .hq = 4, .hkv = 2, .d = 64,
     .window = TC_FULL, .f = 0.125f},
    /* CUDA walks a group's keys in chunks of 2,048 (absolute multiples): rows whose keys lie
     * in one chunk are normalised by its block, rows across chunks merged from one partial a
     * chunk. Windows of 40 across the boundary at 2,048 (rows of 1 and 2 chunks in the same
     * groups); full attention over 3 and 4 chunks. */
    {"sdpa_tc_prefill_50tok_after2020_gqa8_window40", .t = 50, .off = 2020, .hq = 16, .hkv = 2, .d = 64,
     .window = 40, .f = 0.125f},
    {"sdpa_tc_prefill_40tok_after6130_gqa8_full", .t = 40, .off = 6130, .hq = 8, .hkv = 1, .d = 64,
     .window = TC_FULL, .f = 0.125f},
    /* The longest context (131,072 positions): every row attends ~131,000 keys, ~2,000 K/V
     * tiles: the tensor-core prefill (32 rows of one KV head) and the flash-decoding chunks
     * (1 row), each against the float64 reference. Positive V: the output is about
     * sum p |V|, so its tolerance (~5e-4 of the output here) catches a sum that drifts with the
     * number of keys (the tensor cores' accumulation truncates, as far as we can tell: chained
     * over 2,000 tiles it made the output ~1e-3 small, docs/CUDA_NOTES.md); random-sign V
     * as well. */
    {"sdpa_tc_prefill_32tok_after131000_gqa8_full_positive_v", .t = 32, .off = 131000, .hq = 8, .hkv = 1, .d = 64,
     .window = TC_FULL, .f = 0.125f, .flags = TC_POSITIVE_V},
    {"sdpa_tc_prefill_32tok_after131000_gqa8_full", .t = 32, .off = 131000, .hq = 8, .hkv = 1, .d = 64,
     .window = TC_FULL, .f = 0.125f},
    {"sdpa_decode_1tok_after131000_gqa8_full_positive_v", .t = 1, .off = 131000, .hq = 8, .hkv = 1, .d = 64,
     .window = TC_FULL, .f = 0.125f, .flags = TC_POSITIVE_V},
    /* Past 2^20 keys CUDA's decode chunks double to 512 keys (8 tiles: the slots of the
     * second 256 are looked up mid-chunk) and a row has over 2,048 chunks for the merge
     * kernel; 537 MB of K/V. */
    {"sdpa_decode_1tok_after1048700_gqa8_full_positive_v", .t = 1, .off = 1048700, .hq = 8, .hkv = 1, .d = 64,
     .window = TC_FULL, .f = 0.125f, .flags = TC_POSITIVE_V},
    {"sdpa_tc_prefill_64tok_after8000_gqa8_window4096_positive_v", .t = 64, .off = 8000, .hq = 16, .hkv = 2, .d = 64,
     .window = 4096, .f = 0.125f, .flags = TC_POSITIVE_V},
    {"sdpa_20b_prefill512_after3584_window128", .t = 512, .off = 3584, .hq = 64, .hkv = 8, .d = 64, .window = 128,
     .f = 0.125f, .check = 32},
    /* Full attention over 512 new tokens after 3584 cached ones is ~17 G MACs per backend;
     * the full-window prefill runs from position 0 instead (keys 1..512). */
    {"sdpa_20b_prefill512_full_from0", .t = 512, .off = 0, .hq = 64, .hkv = 8, .d = 64, .window = TC_FULL, .f = 0.125f,
     .check = 32, .flags = TC_BENCH_CUDA},
    /* Benchmark only (CUDA): a 512-token prefill chunk after 32,256 cached tokens (every row
     * attends ~32k keys, 134 MB of K/V per layer: the engine's pp512 at depth 32,768). */
    {"sdpa_20b_prefill512_after32256_full", .t = 512, .off = 32256, .hq = 64, .hkv = 8, .d = 64, .window = TC_FULL,
     .maxt = 32768, .f = 0.125f, .flags = TC_BENCH_CUDA | TC_BENCH_ONLY},
};

static void make(struct tc_problem* p, struct tc_rng* rng) {
    const struct tc_case* c = p->c;
    const uint32_t cap = c->maxt != 0 ? c->maxt : (uint32_t) c->off + c->t;
    const size_t qkv_dim = (size_t) c->d * (c->hq + 2 * c->hkv);
    p->kv_stride = (uint64_t) 2 * c->d * cap;
    float* q = tc_add_buffer(p, "q", TC_IN, TC_F32, (size_t) c->t * qkv_dim);
    float* kv = tc_add_buffer(p, "kv", TC_IN, TC_F32, (size_t) c->hkv * p->kv_stride);
    gptoss_bf16* s = tc_add_buffer(p, "sinks", TC_IN, TC_BF16, c->hq);
    tc_add_buffer(p, "output", TC_OUT, TC_F32, (size_t) c->t * c->hq * c->d);
    if (!q || !kv || !s) return;
    tc_fill_f32(rng, q, (size_t) c->t * qkv_dim, -2.0f, 2.0f);
    tc_fill_f32(rng, kv, (size_t) c->hkv * p->kv_stride, -1.0f, 1.0f);
    if (c->flags & TC_POSITIVE_V) { /* V of every slot: [-1, 1] -> [0.5, 1] */
        for (size_t slot = 0; slot < (size_t) c->hkv * cap; slot++) {
            float* v = kv + slot * 2 * c->d + c->d;
            for (uint32_t d = 0; d < c->d; d++) v[d] = 0.75f + 0.25f * v[d];
        }
    }
    tc_fill_bf16(rng, s, c->hq, -2.0f, 2.0f);
    if (c->flags & TC_SEED_README) { /* torch.full(-1e4, bfloat16) = -9984 */
        for (uint32_t h = 0; h < c->hq; h++) s[h].bits = gptoss_f32_to_bf16(-1e4f);
    }
}

static void args(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    const struct tc_case* c = p->c;
    a->f32_sdpa = (struct gptoss_f32_sdpa_args){
        d[0],
        d[1],
        (c->flags & TC_NO_BIAS) ? NULL : d[2],
        d[3],
        c->window,
        p->kv_stride,
        c->t,
        (uint32_t) c->off,
        c->hq,
        c->hkv,
        c->d,
        c->f,
    };
}

/* The tolerances of the query at position pos (see the top): qt its q row, kmax the largest
 * |K| of its keys, pv the reference output on |V| (sum_t p_t |V_t|), s->ref the reference. */
static void sdpa_tolerance(const struct tc_case* c, const float* qt, double kmax, const double* pv, uint64_t pos,
                           struct tc_span* s) {
    const uint32_t D = c->d;
    const uint64_t nkeys = (c->window == UINT32_MAX || pos + 1 <= c->window) ? pos + 1 : c->window;
    for (uint32_t hq = 0; hq < c->hq; hq++) {
        double qn = 0.0;
        for (uint32_t d = 0; d < D; d++) qn += (double) qt[hq * D + d] * qt[hq * D + d];
        const double A = fabs((double) c->f) * sqrt(qn) * kmax;
        const double ds = (8.0 * sqrt((double) D) + 2.0) * TC_EPS32 * A;
        const double rel_p = 2.0 * ds + 2.0 * (2.0 * A + 4.0) * TC_EPS32;
        const double rel = 2.0 * rel_p + 8.0 * sqrt((double) nkeys + 1.0) * TC_EPS32;
        for (uint32_t d = 0; d < D; d++) {
            s->tol[hq * D + d] = pv[hq * D + d] * rel + 2.0 * TC_EPS32 * fabs(s->ref[hq * D + d]) + TC_TINY;
        }
    }
}

static void expect(const struct tc_problem* p, struct tc_expect* ex) {
    const struct tc_case* c = p->c;
    if (c->flags & TC_SEED_README) return; /* verify compares every draw */
    const uint32_t D = c->d;
    const size_t qkv_dim = (size_t) D * (c->hq + 2 * c->hkv);
    const float* q = p->b[0].host;
    const float* kv = p->b[1].host;
    const gptoss_bf16* sinks = (c->flags & TC_NO_BIAS) ? NULL : p->b[2].host;
    const size_t kv_n = (size_t) c->hkv * p->kv_stride;
    const uint64_t total = c->off + c->t;
    /* |V| copy and max |k| over the positions in use */
    float* kv_abs = tc_xmalloc(kv_n * sizeof *kv_abs);
    memcpy(kv_abs, kv, kv_n * sizeof *kv_abs);
    double kmax = 0.0;
    for (uint32_t h = 0; h < c->hkv; h++) {
        for (uint64_t t = 0; t < total; t++) {
            float* slot = kv_abs + h * p->kv_stride + t * 2 * D;
            double n2 = 0.0;
            for (uint32_t d = 0; d < D; d++) {
                n2 += (double) slot[d] * slot[d];
                slot[D + d] = fabsf(slot[D + d]);
            }
            kmax = fmax(kmax, sqrt(n2));
        }
    }
    const size_t out_row = (size_t) c->hq * D;
    double* pv = tc_xmalloc(out_row * sizeof *pv);
    tc_pick_tokens(ex, c->t, c->check, p->seed);
    for (uint32_t i = 0; i < ex->ntokens; i++) {
        const uint32_t t = ex->tokens[i];
        const float* qt = q + (size_t) t * qkv_dim;
        struct tc_span* s = tc_add_span(ex, 3, (size_t) t * out_row, out_row, false, 4, "query %u", t);
        const uint32_t n0 = (uint32_t) c->off + t;
        gptoss_ref_f32_sdpa(
            &(struct gptoss_f32_sdpa_args){qt, kv, sinks, NULL, c->window, p->kv_stride, 1, n0, c->hq, c->hkv, D, c->f},
            s->ref);
        gptoss_ref_f32_sdpa(&(struct gptoss_f32_sdpa_args){qt, kv_abs, sinks, NULL, c->window, p->kv_stride, 1, n0,
                                                           c->hq, c->hkv, D, c->f},
                            pv);
        sdpa_tolerance(c, qt, kmax, pv, c->off + t, s);
    }
    free(pv);
    free(kv_abs);
}

/* ---- the seed README's example ---- */

/* Draw d: torch.randn Q_chunk[2][64][64] (the Q part of the q rows) and K_all/V_all
 * [8][5][64] (the cache; the q rows also carry the new tokens' K and V). */
static void draw(struct tc_problem* p, uint32_t d) {
    const struct tc_case* c = p->c;
    if (!(c->flags & TC_SEED_README)) return;
    const uint32_t D = c->d, H = c->hkv, history = (uint32_t) c->off, total = history + c->t;
    const size_t qkv_dim = (size_t) D * (c->hq + 2 * H);
    float* q = p->b[0].host;
    float* kv = p->b[1].host;
    struct tc_rng rng;
    tc_rng_seed(&rng, p->seed + d);
    memset(q, 0, p->b[0].size);
    memset(kv, 0, p->b[1].size);
    for (uint32_t t = 0; t < c->t; t++) {
        for (size_t j = 0; j < (size_t) c->hq * D; j++) q[t * qkv_dim + j] = (float) tc_rng_normal(&rng);
    }
    for (uint32_t h = 0; h < H; h++) {
        for (uint32_t t = 0; t < total; t++) {
            for (uint32_t e = 0; e < D; e++) {
                const float kval = (float) tc_rng_normal(&rng), vval = (float) tc_rng_normal(&rng);
                kv[h * p->kv_stride + t * 2 * D + e] = kval;
                kv[h * p->kv_stride + t * 2 * D + D + e] = vval;
                if (t >= history) {
                    q[(t - history) * qkv_dim + (size_t) c->hq * D + h * D + e] = kval;
                    q[(t - history) * qkv_dim + (size_t) (c->hq + H) * D + h * D + e] = vval;
                }
            }
        }
    }
}

/* The README's torch sdpa() in double: Q[n][H][m][d] (rows of absent queries zero),
 * K/V[n][H][d], S[H*m], causal mask, optional sliding window, softmax over [QK | S],
 * sink column dropped. out[n][H*m*d]. */
static void readme_sdpa(const double* Q, const double* K, const double* V, const double* S, double sm_scale,
                        uint32_t sliding_window, uint32_t n, uint32_t H, uint32_t m, uint32_t d, double* out) {
    double* w = tc_xmalloc(((size_t) n + 1) * sizeof *w);
    for (uint32_t q = 0; q < n; q++) {
        for (uint32_t h = 0; h < H; h++) {
            for (uint32_t j = 0; j < m; j++) {
                const double* qv = Q + (((size_t) q * H + h) * m + j) * d;
                double mx = -INFINITY;
                for (uint32_t k = 0; k <= n; k++) {
                    double v;
                    if (k == n) {
                        v = S[h * m + j];
                    } else {
                        double dot = 0.0;
                        for (uint32_t e = 0; e < d; e++) dot += qv[e] * K[((size_t) k * H + h) * d + e];
                        v = dot * sm_scale;
                        if (k > q) v = -INFINITY; /* triu(diagonal=1) */
                        if (sliding_window > 0 && (int64_t) k <= (int64_t) q - sliding_window) v = -INFINITY;
                    }
                    w[k] = v;
                    mx = fmax(mx, v);
                }
                double den = 0.0;
                for (uint32_t k = 0; k <= n; k++) {
                    w[k] = exp(w[k] - mx);
                    den += w[k];
                }
                double* o = out + (size_t) q * H * m * d + ((size_t) h * m + j) * d;
                for (uint32_t e = 0; e < d; e++) {
                    double acc = 0.0;
                    for (uint32_t k = 0; k < n; k++) acc += w[k] / den * V[((size_t) k * H + h) * d + e];
                    o[e] = acc;
                }
            }
        }
    }
    free(w);
}

/* output_ref[num_kv_tokens:total] vs the kernel, assert_close(atol=1e-3, rtol=1e-3) */
static void verify(struct tc_problem* p, const struct tc_expect* ex, void* const outs[], struct tc_result* res) {
    const struct tc_case* c = p->c;
    if (!(c->flags & TC_SEED_README)) return;
    const uint32_t D = c->d, H = c->hkv, m = c->hq / c->hkv, history = (uint32_t) c->off, total = history + c->t;
    const size_t qkv_dim = (size_t) D * (c->hq + 2 * H), row = (size_t) c->hq * D, out_n = c->t * row;
    const float* q = p->b[0].host;
    const float* kv = p->b[1].host;
    const gptoss_bf16* sinks = p->b[2].host;
    const float* out = outs[3];
    double* Q = calloc((size_t) total * row, sizeof *Q);
    double* K = tc_xmalloc((size_t) total * H * D * sizeof *K);
    double* V = tc_xmalloc((size_t) total * H * D * sizeof *V);
    double* ref = tc_xmalloc((size_t) total * row * sizeof *ref);
    double S[256];
    for (uint32_t h = 0; h < c->hq; h++) S[h] = tc_bf16d(sinks[h]);
    for (uint32_t t = 0; t < c->t; t++) {
        for (size_t j = 0; j < row; j++)
            Q[(size_t) (history + t) * row + j] = q[t * qkv_dim + j]; /* Q_total[abs_idx] */
    }
    for (uint32_t h = 0; h < H; h++) {
        for (uint32_t t = 0; t < total; t++) {
            for (uint32_t e = 0; e < D; e++) {
                K[((size_t) t * H + h) * D + e] = kv[h * p->kv_stride + t * 2 * D + e];
                V[((size_t) t * H + h) * D + e] = kv[h * p->kv_stride + t * 2 * D + D + e];
            }
        }
    }
    readme_sdpa(Q, K, V, S, pow(D, -0.5), 0, total, H, m, D, ref);
    size_t bad = 0, first = 0;
    for (size_t j = 0; j < out_n; j++) {
        const double r = ref[(size_t) history * row + j];
        const double err = fabs((double) out[j] - r), tol = 1e-3 + 1e-3 * fabs(r);
        if (!(err <= tol) && bad++ == 0) first = j;
        tc_note_error(res, err, tol);
    }
    if (bad != 0) {
        tc_failf(res, "draw %u: %zu of %zu elements outside atol=rtol=1e-3, first [%zu] got %.9g want %.9g", p->draw,
                 bad, out_n, first, out[first], ref[(size_t) history * row + first]);
    }
    free(Q);
    free(K);
    free(V);
    free(ref);
}

/* Keys read per kv head by a call: the union of the query windows. */
static double keys_read(const struct tc_case* c) {
    const double total = (double) c->off + c->t;
    const double span = (double) c->window + c->t - 1;
    return span < total ? span : total;
}

/* Sum over queries of the keys each query attends (for FLOPs). */
static double pairs(const struct tc_case* c) {
    double s = 0;
    for (uint32_t i = 0; i < c->t; i++) {
        const double pos = (double) c->off + i;
        s += pos + 1 < (double) c->window ? pos + 1 : (double) c->window;
    }
    return s;
}

static double bytes(const struct tc_case* c) {
    const double T = c->t;
    return 4 * T * c->hq * c->d + 4 * (double) c->hkv * keys_read(c) * 2 * c->d + 2 * (double) c->hq +
           4 * T * c->hq * c->d;
}
static double flops(const struct tc_case* c) { return 4 * pairs(c) * c->hq * c->d; }

static void shape(const struct tc_case* c, char* buf, size_t size) {
    if (c->window == UINT32_MAX) {
        snprintf(buf, size, "Tq=%u N0=%llu H=%u/%u D=%u full", c->t, (unsigned long long) c->off, c->hq, c->hkv, c->d);
    } else {
        snprintf(buf, size, "Tq=%u N0=%llu H=%u/%u D=%u w=%u", c->t, (unsigned long long) c->off, c->hq, c->hkv, c->d,
                 c->window);
    }
}

const struct tc_op tc_op_f32_sdpa = {
    gptoss_kernel_f32_sdpa, TC_CASES(cases), .make = make,   .args = args,   .expect = expect,
    .verify = verify,       .draw = draw,    .bytes = bytes, .flops = flops, .shape = shape,
};

/* ==================================================================================== */
/* f32_sdpa_varlen: query rows of several sequences over a paged cache                  */
/* ==================================================================================== */

/* Case fields: t = query rows, k = sequences, r = block_size, off = the largest history
 * (tokens before a sequence's first query row; sequence 0 has exactly off, the others a
 * random number up to it), maxt = positions a block table can address (table_stride =
 * maxt / block_size, rounded up), c = leading blocks every sequence shares with sequence 0
 * (a common prefix), hq / hkv / d heads, window, f = scale; TC_NO_BIAS: no sinks; e = what
 * else the case checks (enum varlen_kind below).
 *
 * Inputs: the rows of a sequence are consecutive positions (a prefill chunk, or one decode
 * token), the rows of all sequences shuffled; the blocks of all sequences are a random
 * permutation of the cache's, with spare blocks; table entries a call must not read (past a
 * sequence's last position, or wholly before the window of its first row) are 0xFFFFFFFF,
 * so that a kernel reading them fails its range check (CPU) or writes NaN (CUDA). Expected:
 * each row by the float64 reference of that one row (its keys gathered through its table),
 * with the tolerance of f32_sdpa at the row's position. */
/* What a varlen case checks besides each row against the reference. */
enum varlen_kind {
    VARLEN_PLAIN = 0,
    /* batch invariance, in 3 draws: all rows with the table of the case (maxt positions);
     * row j = t / 3 alone; rows j .. t-1; the last two with a table as narrow as the
     * sequences' blocks (another table_stride, another capacity). Every row a draw writes
     * must equal its bits of the first draw. */
    VARLEN_INVARIANCE,
    /* faults (TC_FAULT): one row's sequence >= num_seqs; one row's position past the table;
     * a table entry NONE inside the window of a row of sequence 0 (every row whose window
     * covers that block is bad). Host backends refuse the call (argument check naming the
     * entry, outputs untouched); CUDA writes NaN to the bad rows, the other rows as usual,
     * and its synchronize reports GPTOSS_CUDA_ERROR_KV_ROW. */
    VARLEN_BAD_SEQ,
    VARLEN_BAD_POSITION,
    VARLEN_NONE_ENTRY,
};

static const struct tc_case varlen_cases[] = {
    {"sdpa_varlen_1row_1seq_bs1", .t = 1, .k = 1, .r = 1, .off = 0, .maxt = 4, .hq = 1, .hkv = 1, .d = 4,
     .window = TC_FULL, .f = 0.5f, .flags = TC_QUICK},
    {"sdpa_varlen_odd_7rows_3seqs_bs3_window5_mqa7", .t = 7, .k = 3, .r = 3, .off = 19, .maxt = 40, .hq = 7, .hkv = 1,
     .d = 4, .window = 5, .f = 0.5f, .flags = TC_QUICK},
    {"sdpa_varlen_decode_5seqs_bs16_shared_prefix", .t = 5, .k = 5, .r = 16, .off = 70, .maxt = 128, .c = 3, .hq = 8,
     .hkv = 2, .d = 32, .window = TC_FULL, .f = 0.17677669f, .flags = TC_QUICK},
    {"sdpa_varlen_mixed_prefill_decode_bs16_window16", .t = 40, .k = 4, .r = 16, .off = 50, .maxt = 128, .hq = 8,
     .hkv = 2, .d = 16, .window = 16, .f = 0.25f, .flags = TC_QUICK},
    {"sdpa_varlen_bs7_window1_no_sinks", .t = 9, .k = 2, .r = 7, .off = 30, .maxt = 64, .hq = 4, .hkv = 4, .d = 12,
     .window = 1, .f = 0.3f, .flags = TC_QUICK | TC_NO_BIAS},
    {"sdpa_varlen_more_seqs_than_rows", .t = 2, .k = 6, .r = 4, .off = 9, .maxt = 20, .hq = 2, .hkv = 1, .d = 8,
     .window = TC_FULL, .f = 0.35f, .flags = TC_QUICK},
    {"sdpa_varlen_hd128_gqa4_window19", .t = 12, .k = 3, .r = 32, .off = 130, .maxt = 256, .hq = 16, .hkv = 4, .d = 128,
     .window = 19, .f = 0.088388347f},
    /* gpt-oss-20b: 64 Q heads, 8 KV heads, head_dim 64, window 128 on the even layers */
    {"sdpa_varlen_20b_decode_8seqs_window128", .t = 8, .k = 8, .r = 16, .off = 1000, .maxt = 2048, .hq = 64, .hkv = 8,
     .d = 64, .window = 128, .f = 0.125f, .flags = TC_BENCH},
    {"sdpa_varlen_20b_decode_8seqs_full", .t = 8, .k = 8, .r = 16, .off = 1000, .maxt = 2048, .c = 8, .hq = 64,
     .hkv = 8, .d = 64, .window = TC_FULL, .f = 0.125f, .flags = TC_BENCH},
    {"sdpa_varlen_20b_prefill200_and_7_decodes_window128", .t = 207, .k = 8, .r = 16, .off = 300, .maxt = 1024,
     .hq = 64, .hkv = 8, .d = 64, .window = 128, .f = 0.125f, .check = 24},
    /* The engine's geometry: tables addressing 131,072 positions (table_stride 8192) with
     * short rows. CUDA: a row's chunks follow its own length, not the capacity (512 partial
     * slots a row are reserved, the merge kernel runs and leaves these rows, merged by their
     * last task or in place, alone). */
    {"sdpa_varlen_20b_capacity_131072_short_rows", .t = 12, .k = 4, .r = 16, .off = 700, .maxt = 131072, .hq = 64,
     .hkv = 8, .d = 64, .window = TC_FULL, .f = 0.125f},
    {"sdpa_varlen_20b_capacity_131072_window128", .t = 9, .k = 3, .r = 16, .off = 700, .maxt = 131072, .hq = 64,
     .hkv = 8, .d = 64, .window = 128, .f = 0.125f},
    /* rows of up to 2,500 keys: up to 40 one-tile chunks (CUDA: the merge kernel, > 16) */
    {"sdpa_varlen_unfused_merge_window2500_bs16", .t = 7, .k = 3, .r = 16, .off = 2700, .maxt = 4096, .hq = 8,
     .hkv = 1, .d = 64, .window = 2500, .f = 0.125f},
    /* long rows: 128-key chunks (8,193 .. 16,384 keys), 256-key chunks (more) */
    {"sdpa_varlen_rows_of_12000_keys_bs32", .t = 3, .k = 1, .r = 32, .off = 12000, .maxt = 16384, .hq = 8, .hkv = 1,
     .d = 64, .window = TC_FULL, .f = 0.125f},
    {"sdpa_varlen_rows_of_20000_keys_bs16_2seqs", .t = 4, .k = 2, .r = 16, .off = 20000, .maxt = 32768, .hq = 8,
     .hkv = 2, .d = 64, .window = TC_FULL, .f = 0.125f},
    /* batch invariance (VARLEN_INVARIANCE): rows of 1 .. 47 one-tile chunks (in place, the
     * last task's merge, the merge kernel); a window of 128 */
    {"sdpa_varlen_20b_invariance_1_vs_12_rows", .t = 12, .k = 4, .r = 16, .off = 3000, .maxt = 131072, .hq = 64,
     .hkv = 8, .d = 64, .window = TC_FULL, .f = 0.125f, .e = VARLEN_INVARIANCE, .draws = 3},
    {"sdpa_varlen_invariance_window128_1_vs_10_rows", .t = 10, .k = 3, .r = 16, .off = 900, .maxt = 8192, .hq = 8,
     .hkv = 2, .d = 64, .window = 128, .f = 0.125f, .e = VARLEN_INVARIANCE, .draws = 3},
    {"sdpa_varlen_invariance_generic_d16_1_vs_9_rows", .t = 9, .k = 3, .r = 8, .off = 300, .maxt = 1024, .hq = 4,
     .hkv = 1, .d = 16, .window = TC_FULL, .f = 0.25f, .e = VARLEN_INVARIANCE, .draws = 3},
    /* CPU AVX-512 (head_dim % 16 == 0): 16-key blocks aligned to positions that are not one
     * cache block (block_size 5: copied; 24: every other block spans two); heads in groups of
     * 8 with a partial last group (G = 12); no sinks */
    {"sdpa_varlen_invariance_hd64_bs5_gqa8_1_vs_9_rows", .t = 9, .k = 3, .r = 5, .off = 90, .maxt = 256, .hq = 16,
     .hkv = 2, .d = 64, .window = TC_FULL, .f = 0.125f, .e = VARLEN_INVARIANCE, .draws = 3},
    {"sdpa_varlen_hd32_mqa12_bs24_window40_no_sinks", .t = 6, .k = 2, .r = 24, .off = 100, .maxt = 256, .hq = 12,
     .hkv = 1, .d = 32, .window = 40, .f = 0.2f, .flags = TC_NO_BIAS},
    /* rows in sequence order (TC_IN_ORDER: a batch step's layout): on CUDA the groups of one
     * sequence run on the tensor-core prefill, the rest (decode rows, groups across two
     * sequences) on the chunk kernel. The fault cases' 128 rows over 3 sequences give
     * sequence 0 (the fault's) a whole group of 16 tokens at its start for any seed in
     * practice (a block of 8 warps; 8 tokens with 4), so its rows that read the bad entry run
     * on the tensor cores. */
    {"sdpa_varlen_in_order_20b_prefill200_and_7_decodes_window128", .t = 207, .k = 8, .r = 16, .off = 300,
     .maxt = 1024, .hq = 64, .hkv = 8, .d = 64, .window = 128, .f = 0.125f, .check = 24, .flags = TC_IN_ORDER},
    {"sdpa_varlen_in_order_20b_3seqs_150rows_full", .t = 150, .k = 3, .r = 16, .off = 500, .maxt = 2048, .hq = 64,
     .hkv = 8, .d = 64, .window = TC_FULL, .f = 0.125f, .check = 24, .flags = TC_IN_ORDER},
    {"sdpa_varlen_in_order_gqa2_bs5_90rows_full", .t = 90, .k = 2, .r = 5, .off = 90, .maxt = 512, .hq = 4, .hkv = 2,
     .d = 64, .window = TC_FULL, .f = 0.125f, .flags = TC_IN_ORDER},
    {"sdpa_varlen_in_order_fault_none_entry_window48", .t = 128, .k = 3, .r = 16, .off = 600, .maxt = 1024, .hq = 8,
     .hkv = 1, .d = 64, .window = 48, .f = 0.125f, .e = VARLEN_NONE_ENTRY, .flags = TC_FAULT | TC_IN_ORDER},
    {"sdpa_varlen_in_order_fault_none_entry_full", .t = 128, .k = 3, .r = 16, .off = 600, .maxt = 1024, .hq = 8,
     .hkv = 1, .d = 64, .window = TC_FULL, .f = 0.125f, .e = VARLEN_NONE_ENTRY, .flags = TC_FAULT | TC_IN_ORDER},
    /* rows across the tensor-core prefill's chunks of 2,048 keys (merged partials), in a
     * varlen call; the fault's entry in the first chunk of rows that span two */
    {"sdpa_varlen_in_order_2seqs_96rows_after4100_full", .t = 96, .k = 2, .r = 16, .off = 4100, .maxt = 8192,
     .hq = 8, .hkv = 1, .d = 64, .window = TC_FULL, .f = 0.125f, .flags = TC_IN_ORDER},
    {"sdpa_varlen_in_order_fault_none_entry_full_2chunks", .t = 128, .k = 3, .r = 16, .off = 2300, .maxt = 4096,
     .hq = 8, .hkv = 1, .d = 64, .window = TC_FULL, .f = 0.125f, .e = VARLEN_NONE_ENTRY,
     .flags = TC_FAULT | TC_IN_ORDER},
    {"sdpa_varlen_in_order_fault_seq_id", .t = 64, .k = 3, .r = 16, .off = 300, .maxt = 1024, .hq = 8, .hkv = 1,
     .d = 64, .window = TC_FULL, .f = 0.125f, .e = VARLEN_BAD_SEQ, .flags = TC_FAULT | TC_IN_ORDER},
    /* out-of-range rows (TC_FAULT); the bad rows of the NONE cases have 1 chunk (window 48),
     * 10 (fused merge) and 32 (merge kernel) on CUDA; the generic kernel (head_dim 16) */
    {"sdpa_varlen_fault_seq_id_past_num_seqs", .t = 8, .k = 3, .r = 16, .off = 300, .maxt = 1024, .hq = 8, .hkv = 1,
     .d = 64, .window = TC_FULL, .f = 0.125f, .e = VARLEN_BAD_SEQ, .flags = TC_FAULT},
    {"sdpa_varlen_fault_position_past_table", .t = 8, .k = 3, .r = 16, .off = 300, .maxt = 1024, .hq = 8, .hkv = 1,
     .d = 64, .window = TC_FULL, .f = 0.125f, .e = VARLEN_BAD_POSITION, .flags = TC_FAULT},
    {"sdpa_varlen_fault_none_entry_window48_1chunk", .t = 8, .k = 3, .r = 16, .off = 600, .maxt = 1024, .hq = 8,
     .hkv = 1, .d = 64, .window = 48, .f = 0.125f, .e = VARLEN_NONE_ENTRY, .flags = TC_FAULT},
    {"sdpa_varlen_fault_none_entry_10_chunks", .t = 8, .k = 3, .r = 16, .off = 600, .maxt = 1024, .hq = 8, .hkv = 1,
     .d = 64, .window = TC_FULL, .f = 0.125f, .e = VARLEN_NONE_ENTRY, .flags = TC_FAULT},
    {"sdpa_varlen_fault_none_entry_32_chunks", .t = 8, .k = 3, .r = 16, .off = 2000, .maxt = 4096, .hq = 8, .hkv = 1,
     .d = 64, .window = TC_FULL, .f = 0.125f, .e = VARLEN_NONE_ENTRY, .flags = TC_FAULT},
    {"sdpa_varlen_fault_seq_id_generic_d16", .t = 8, .k = 3, .r = 8, .off = 100, .maxt = 512, .hq = 4, .hkv = 1,
     .d = 16, .window = TC_FULL, .f = 0.25f, .e = VARLEN_BAD_SEQ, .flags = TC_FAULT},
    /* Benchmark only: one decoding sequence of the engine (table of 131,072 positions) */
    {"sdpa_varlen_20b_decode_1seq_4096_full", .t = 1, .k = 1, .r = 16, .off = 4096, .maxt = 131072, .hq = 64,
     .hkv = 8, .d = 64, .window = TC_FULL, .f = 0.125f, .flags = TC_BENCH | TC_BENCH_ONLY},
    {"sdpa_varlen_20b_decode_1seq_32768_full", .t = 1, .k = 1, .r = 16, .off = 32768, .maxt = 131072, .hq = 64,
     .hkv = 8, .d = 64, .window = TC_FULL, .f = 0.125f, .flags = TC_BENCH | TC_BENCH_ONLY},
    /* Benchmark only (CUDA): the engine's pp512 at depth 32,768 (one sequence, a table of
     * 131,072 positions): the tensor-core prefill */
    {"sdpa_varlen_20b_prefill512_after32256_full", .t = 512, .k = 1, .r = 16, .off = 32256, .maxt = 131072,
     .hq = 64, .hkv = 8, .d = 64, .window = TC_FULL, .f = 0.125f, .flags = TC_BENCH_CUDA | TC_BENCH_ONLY | TC_IN_ORDER},
    /* Benchmark only: 64 decoding sequences of 2048 tokens (full attention, 550 MB of K/V) */
    {"sdpa_varlen_20b_decode_64seqs_2048_full", .t = 64, .k = 64, .r = 16, .off = 2047, .maxt = 2048, .hq = 64,
     .hkv = 8, .d = 64, .window = TC_FULL, .f = 0.125f, .flags = TC_BENCH_CUDA | TC_BENCH_ONLY},
};

/* The problem's sequences, rows and tables (memory[0]: the narrow table's stride). */
static uint32_t varlen_table_stride(const struct tc_case* c) { return (c->maxt + c->r - 1) / c->r; }

/* Keys max(0, P + 1 - window) .. P of a row at position P: the first one. */
static uint64_t varlen_first_key(const struct tc_case* c, uint64_t P) {
    return (c->window != TC_FULL && P + 1 > c->window) ? P + 1 - c->window : 0;
}

/* Whether row i is in range: its sequence, its position and every table entry its window
 * reads (the rule of the host check, kernels.h). */
static bool varlen_row_ok(const struct tc_problem* p, uint32_t i) {
    const struct tc_case* c = p->c;
    const uint32_t* pos = p->b[4].host;
    const uint32_t* ids = p->b[5].host;
    const uint32_t* tab = p->b[6].host;
    const uint32_t TS = varlen_table_stride(c);
    const uint64_t num_blocks = p->kv_stride / (2 * (uint64_t) c->d * c->r);
    if (ids[i] >= c->k || pos[i] / c->r >= TS) return false;
    for (uint64_t b = varlen_first_key(c, pos[i]) / c->r; b <= pos[i] / c->r; b++) {
        if (tab[(size_t) ids[i] * TS + b] >= num_blocks) return false;
    }
    return true;
}

/* The fault of a TC_FAULT case, into the made rows and tables (see enum varlen_kind), at
 * the first row of sequence 0 in the (shuffled) row order: every row of sequence 0 has at
 * least off keys before it. */
static void varlen_fault(const struct tc_case* c, uint32_t* pos, uint32_t* ids, uint32_t* tab) {
    uint32_t r = 0;
    while (ids[r] != 0) r++; /* every sequence has a row (t >= k) */
    if (c->e == VARLEN_BAD_SEQ) {
        ids[r] = c->k + 3;
    } else if (c->e == VARLEN_BAD_POSITION) {
        pos[r] = varlen_table_stride(c) * c->r + 5;
    } else if (c->e == VARLEN_NONE_ENTRY) {
        const uint64_t mid = (varlen_first_key(c, pos[r]) + pos[r]) / 2;
        tab[mid / c->r] = UINT32_MAX; /* sequence 0's table row */
    }
}

static void varlen_make(struct tc_problem* p, struct tc_rng* rng) {
    const struct tc_case* c = p->c;
    const uint32_t S = c->k, bs = c->r, TS = varlen_table_stride(c), T = c->t, D = c->d;
    /* rows per sequence (each sequence with at least one row while there are rows) and
     * histories */
    uint32_t* rows = calloc(S, sizeof *rows);
    uint32_t* hist = calloc(S, sizeof *hist);
    uint32_t* nblk = calloc(S, sizeof *nblk);
    uint32_t* table = malloc((size_t) S * TS * sizeof *table);
    if (!rows || !hist || !nblk || !table) goto out;
    for (uint32_t i = 0; i < T; i++) rows[i < S ? i : (uint32_t) (tc_rng_u64(rng) % S)]++;
    uint32_t num_blocks = 3; /* spares */
    for (uint32_t s = 0; s < S; s++) {
        const uint32_t most = c->maxt - rows[s];
        hist[s] = s == 0 ? (uint32_t) c->off : (uint32_t) (tc_rng_u64(rng) % (c->off + 1));
        if (hist[s] > most) hist[s] = most;
        nblk[s] = (hist[s] + rows[s] + bs - 1) / bs;
        num_blocks += nblk[s];
    }
    /* a random permutation of the physical blocks; sequence s > 0 shares its first
     * min(c->c, ...) blocks with sequence 0 (all full, before both sequences' rows) */
    uint32_t* perm = malloc(num_blocks * sizeof *perm);
    if (!perm) goto out;
    for (uint32_t i = 0; i < num_blocks; i++) perm[i] = i;
    for (uint32_t i = num_blocks - 1; i > 0; i--) {
        const uint32_t j = (uint32_t) (tc_rng_u64(rng) % (i + 1)), v = perm[i];
        perm[i] = perm[j];
        perm[j] = v;
    }
    uint32_t next = 0;
    for (size_t i = 0; i < (size_t) S * TS; i++) table[i] = UINT32_MAX;
    for (uint32_t s = 0; s < S; s++) {
        uint32_t shared = s == 0 ? 0 : c->c;
        if (shared > hist[s] / bs) shared = hist[s] / bs;
        if (shared > hist[0] / bs) shared = hist[0] / bs;
        for (uint32_t b = 0; b < nblk[s]; b++) table[(size_t) s * TS + b] = b < shared ? table[b] : perm[next++];
    }
    for (uint32_t s = 0; s < S; s++) {
        /* blocks wholly before the window of the sequence's first row are never read */
        if (c->window != TC_FULL && hist[s] + 1 > c->window) {
            const uint32_t lo = hist[s] + 1 - c->window;
            for (uint32_t b = 0; (b + 1) * bs <= lo; b++) table[(size_t) s * TS + b] = UINT32_MAX;
        }
    }
    free(perm);
    uint32_t narrow = 1; /* VARLEN_INVARIANCE: the narrow table's stride (the most blocks of a sequence) */
    for (uint32_t s = 0; s < S; s++) narrow = nblk[s] > narrow ? nblk[s] : narrow;
    p->memory[0] = narrow;
    const size_t qkv_dim = (size_t) D * (c->hq + 2 * c->hkv);
    p->kv_stride = (uint64_t) num_blocks * bs * 2 * D;
    float* q = tc_add_buffer(p, "q", TC_IN, TC_F32, (size_t) T * qkv_dim);
    float* kv = tc_add_buffer(p, "kv", TC_IN, TC_F32, (size_t) c->hkv * p->kv_stride);
    gptoss_bf16* sk = tc_add_buffer(p, "sinks", TC_IN, TC_BF16, c->hq);
    tc_add_buffer(p, "output", TC_OUT, TC_F32, (size_t) T * c->hq * D);
    uint32_t* pos = tc_add_buffer(p, "positions", TC_IN, TC_U32, T);
    uint32_t* ids = tc_add_buffer(p, "seq_ids", TC_IN, TC_U32, T);
    uint32_t* tab = tc_add_buffer(p, "block_tables", TC_IN, TC_U32, (size_t) S * TS);
    if (!q || !kv || !sk || !pos || !ids || !tab) goto out;
    if (c->e != VARLEN_PLAIN) p->b[3].nan_ok = true; /* rows a draw leaves unwritten, NaN rows: verify */
    if (c->e == VARLEN_INVARIANCE) {
        uint32_t* tab2 = tc_add_buffer(p, "block_tables_narrow", TC_IN, TC_U32, (size_t) S * narrow);
        if (!tab2) goto out;
        for (uint32_t s = 0; s < S; s++) memcpy(tab2 + (size_t) s * narrow, table + (size_t) s * TS, narrow * 4);
    }
    tc_fill_f32(rng, q, (size_t) T * qkv_dim, -2.0f, 2.0f);
    tc_fill_f32(rng, kv, (size_t) c->hkv * p->kv_stride, -1.0f, 1.0f);
    tc_fill_bf16(rng, sk, c->hq, -2.0f, 2.0f);
    memcpy(tab, table, (size_t) S * TS * sizeof *table);
    uint32_t i = 0;
    for (uint32_t s = 0; s < S; s++) {
        for (uint32_t j = 0; j < rows[s]; j++, i++) {
            ids[i] = s;
            pos[i] = hist[s] + j;
        }
    }
    for (uint32_t a = T - 1; a > 0 && !(c->flags & TC_IN_ORDER); a--) { /* shuffle the rows */
        const uint32_t b = (uint32_t) (tc_rng_u64(rng) % (a + 1));
        const uint32_t ps = pos[a], is = ids[a];
        pos[a] = pos[b];
        ids[a] = ids[b];
        pos[b] = ps;
        ids[b] = is;
    }
    if (c->flags & TC_FAULT) varlen_fault(c, pos, ids, tab);
out:
    free(rows);
    free(hist);
    free(nblk);
    free(table);
}

/* The rows of draw d of a VARLEN_INVARIANCE case: [*first, *first + *rows). */
static void varlen_draw_rows(const struct tc_case* c, uint32_t d, uint32_t* first, uint32_t* rows) {
    const uint32_t j = c->t / 3;
    *first = d == 0 ? 0 : j;
    *rows = d == 0 ? c->t : (d == 1 ? 1 : c->t - j);
}

static void varlen_args(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    const struct tc_case* c = p->c;
    uint32_t first = 0, rows = c->t, table_stride = varlen_table_stride(c);
    const uint32_t* tables = d[6];
    if (c->e == VARLEN_INVARIANCE) {
        varlen_draw_rows(c, p->draw, &first, &rows);
        if (p->draw > 0) {
            table_stride = (uint32_t) p->memory[0];
            tables = d[7];
        }
    }
    const size_t qkv_dim = (size_t) c->d * (c->hq + 2 * c->hkv), out_row = (size_t) c->hq * c->d;
    a->f32_sdpa_varlen = (struct gptoss_f32_sdpa_varlen_args){
        (const float*) d[0] + first * qkv_dim,
        d[1],
        (c->flags & TC_NO_BIAS) ? NULL : d[2],
        (float*) d[3] + first * out_row,
        (const uint32_t*) d[4] + first,
        (const uint32_t*) d[5] + first,
        tables,
        c->window,
        p->kv_stride,
        c->r,
        table_stride,
        rows,
        c->k,
        c->hq,
        c->hkv,
        c->d,
        c->f,
    };
}

static void varlen_expect(const struct tc_problem* p, struct tc_expect* ex) {
    const struct tc_case* c = p->c;
    const uint32_t D = c->d, bs = c->r, TS = varlen_table_stride(c);
    const size_t qkv_dim = (size_t) D * (c->hq + 2 * c->hkv), out_row = (size_t) c->hq * D;
    const float* q = p->b[0].host;
    const float* kv = p->b[1].host;
    const gptoss_bf16* sinks = (c->flags & TC_NO_BIAS) ? NULL : p->b[2].host;
    const uint32_t* pos = p->b[4].host;
    const uint32_t* ids = p->b[5].host;
    const uint32_t* tab = p->b[6].host;
    const size_t kv_n = (size_t) c->hkv * p->kv_stride;
    float* kv_abs = tc_xmalloc(kv_n * sizeof *kv_abs); /* |V|, K unchanged */
    for (size_t j = 0; j < kv_n; j++) kv_abs[j] = (j / D) % 2 ? fabsf(kv[j]) : kv[j];
    double* pv = tc_xmalloc(out_row * sizeof *pv);
    tc_pick_tokens(ex, c->t, c->check, p->seed);
    for (uint32_t n = 0; n < ex->ntokens; n++) {
        const uint32_t i = ex->tokens[n];
        /* invariance: the row every draw writes; faults: the rows that must still be right */
        if (c->e == VARLEN_INVARIANCE && i != c->t / 3) continue;
        if (!varlen_row_ok(p, i)) continue;
        struct tc_span* s = tc_add_span(ex, 3, (size_t) i * out_row, out_row, false, 4, "row %u (sequence %u, "
                                        "position %u)", i, ids[i], pos[i]);
        struct gptoss_f32_sdpa_varlen_args one = {q + i * qkv_dim, kv, sinks, NULL, pos + i, ids + i, tab, c->window,
                                                  p->kv_stride, bs, TS, 1, c->k, c->hq, c->hkv, D, c->f};
        gptoss_ref_f32_sdpa_varlen(&one, s->ref);
        one.kv = kv_abs;
        gptoss_ref_f32_sdpa_varlen(&one, pv);
        /* max |K| over the row's keys, all kv heads */
        const uint64_t P = pos[i], first = varlen_first_key(c, P);
        double kmax = 0.0;
        for (uint64_t t = first; t <= P; t++) {
            const uint64_t slot = (uint64_t) tab[(size_t) ids[i] * TS + t / bs] * bs + t % bs;
            for (uint32_t h = 0; h < c->hkv; h++) {
                const float* k = kv + h * p->kv_stride + slot * 2 * D;
                double n2 = 0.0;
                for (uint32_t d = 0; d < D; d++) n2 += (double) k[d] * k[d];
                kmax = fmax(kmax, sqrt(n2));
            }
        }
        sdpa_tolerance(c, q + i * qkv_dim, kmax, pv, P, s);
    }
    free(pv);
    free(kv_abs);
}

/* VARLEN_INVARIANCE: the outputs of a case's first draw (the harness runs one case at a
 * time, its draws in order). */
static float* g_first_draw;

/* Every row draw d wrote, bit for bit against the first draw. */
static void varlen_verify_invariance(struct tc_problem* p, const float* out, struct tc_result* res) {
    const struct tc_case* c = p->c;
    const size_t row = (size_t) c->hq * c->d, n = (size_t) c->t * row;
    uint32_t first, rows;
    varlen_draw_rows(c, p->draw, &first, &rows);
    if (p->draw == 0) {
        for (size_t j = 0; j < n; j++) {
            if (isnan(out[j])) {
                tc_failf(res, "output[%zu] (row %zu) is NaN (not written?)", j, j / row);
                return;
            }
        }
        free(g_first_draw);
        g_first_draw = tc_xmalloc(n * sizeof *g_first_draw);
        memcpy(g_first_draw, out, n * sizeof *g_first_draw);
        return;
    }
    if (g_first_draw == NULL) {
        tc_failf(res, "draw %u without the first draw's outputs", p->draw);
        return;
    }
    for (size_t j = first * row; j < (first + rows) * row; j++) {
        uint32_t got, want;
        memcpy(&got, out + j, 4);
        memcpy(&want, g_first_draw + j, 4);
        if (got != want) {
            tc_failf(res,
                     "batch invariance: row %zu computed with %u row(s) from row %u and table_stride %llu differs from "
                     "the call of all %u rows (table_stride %u): output[%zu] = 0x%08x, was 0x%08x",
                     j / row, rows, first, (unsigned long long) p->memory[0], c->t, varlen_table_stride(c), j, got,
                     want);
            break;
        }
    }
    if (p->draw + 1 == tc_num_draws(c)) {
        free(g_first_draw);
        g_first_draw = NULL;
    }
}

/* TC_FAULT: the status, the message naming the fault, and (reported by the synchronize:
 * the call ran) NaN in every bad row; the good rows were compared with the reference. */
static void varlen_verify_fault(struct tc_problem* p, const float* out, struct tc_result* res) {
    const struct tc_case* c = p->c;
    const char* host = c->e == VARLEN_BAD_SEQ ? "seq_ids[" : (c->e == VARLEN_BAD_POSITION ? "positions[" : "block_tables[");
    const char* device = "a varlen row with seq_ids >= num_seqs, a position past the block table or a block >= num_blocks";
    if (p->fault.status != gptoss_status_invalid_argument) {
        tc_failf(res, "an out-of-range row gave %s (%s), not invalid_argument",
                 gptoss_status_to_string((enum gptoss_status) p->fault.status), p->fault.message);
        return;
    }
    const char* want = p->fault.at_sync ? device : host;
    if (strstr(p->fault.message, want) == NULL) {
        tc_failf(res, "the %s message does not name the fault (\"%s\"): %s",
                 p->fault.at_sync ? "synchronize" : "call's", want, p->fault.message);
        return;
    }
    if (!p->fault.at_sync) return; /* refused by the call: the harness checked nothing was written */
    const size_t row = (size_t) c->hq * c->d;
    uint32_t bad = 0;
    for (uint32_t i = 0; i < c->t; i++) {
        if (varlen_row_ok(p, i)) continue;
        bad++;
        for (size_t j = i * row; j < (i + 1) * row; j++) {
            if (!isnan(out[j])) {
                tc_failf(res, "row %u is out of range but output[%zu] = %.9g, not NaN", i, j, out[j]);
                return;
            }
        }
    }
    if (bad == 0) tc_failf(res, "the case has no out-of-range row (a defect of the case)");
}

static void varlen_verify(struct tc_problem* p, const struct tc_expect* ex, void* const outs[], struct tc_result* res) {
    if (p->c->e == VARLEN_INVARIANCE) varlen_verify_invariance(p, outs[3], res);
    if (p->c->flags & TC_FAULT) varlen_verify_fault(p, outs[3], res);
}

/* Keys read per kv head: the windows of the rows, per sequence (the rows of one sequence
 * are consecutive: their windows overlap), approximated by rows x window plus the history. */
static double varlen_bytes(const struct tc_case* c) {
    const double keys_per_seq = c->window == TC_FULL ? (double) c->off + (double) c->t / c->k
                                                     : fmin((double) c->window + (double) c->t / c->k, c->off + 1.0);
    const double T = c->t;
    return 8 * T * c->hq * c->d + 4 * (double) c->hkv * keys_per_seq * c->k * 2 * c->d + 2 * (double) c->hq + 8 * T;
}
static double varlen_flops(const struct tc_case* c) {
    const double keys = c->window == TC_FULL ? (double) c->off : fmin((double) c->window, (double) c->off + 1);
    return 4 * (double) c->t * keys * c->hq * c->d;
}

static void varlen_shape(const struct tc_case* c, char* buf, size_t size) {
    char w[16] = "full";
    if (c->window != TC_FULL) snprintf(w, sizeof w, "w=%u", c->window);
    snprintf(buf, size, "T=%u S=%u N0<=%llu bs=%u H=%u/%u D=%u %s", c->t, c->k, (unsigned long long) c->off, c->r,
             c->hq, c->hkv, c->d, w);
}

/* Row order many fixes a row's bits for calls whose rows are one sequence's consecutive
 * positions (kernels.h: the engine's attention runs of prompt rows); the batch-invariance
 * cases compare a row alone with calls of shuffled rows of several sequences, which that
 * order does not cover (CUDA runs rows whose tensor-core group mixes sequences on the
 * decode kernels). test_invariance checks order many on one sequence's calls. */
static const char* varlen_skip(const struct tc_case* c, enum gptoss_row_order order) {
    if (order == gptoss_row_order_many && c->e == VARLEN_INVARIANCE && !(c->flags & TC_IN_ORDER)) {
        return "row order many: bitwise invariance holds for calls of one sequence's consecutive positions, and "
               "this case mixes shuffled rows of several sequences";
    }
    return NULL;
}

const struct tc_op tc_op_f32_sdpa_varlen = {
    gptoss_kernel_f32_sdpa_varlen,
    TC_CASES(varlen_cases),
    .make = varlen_make,
    .args = varlen_args,
    .expect = varlen_expect,
    .verify = varlen_verify,
    .bytes = varlen_bytes,
    .flops = varlen_flops,
    .shape = varlen_shape,
    .skip = varlen_skip,
};
