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
    {"sdpa_20b_prefill512_after3584_window128", .t = 512, .off = 3584, .hq = 64, .hkv = 8, .d = 64, .window = 128,
     .f = 0.125f, .check = 32},
    /* Full attention over 512 new tokens after 3584 cached ones is ~17 G MACs per backend;
     * the full-window prefill runs from position 0 instead (keys 1..512). */
    {"sdpa_20b_prefill512_full_from0", .t = 512, .off = 0, .hq = 64, .hkv = 8, .d = 64, .window = TC_FULL, .f = 0.125f,
     .check = 32, .flags = TC_BENCH_CUDA},
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
        const uint64_t pos = c->off + t;
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
