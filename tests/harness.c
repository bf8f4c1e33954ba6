/* The test harness: every case of the op catalogue (tests/catalogue.c) on every backend
 * (CPU scalar / avx2 / avx512 with 2 threads, CUDA device 0), compared with the float64
 * reference (src/reference/).
 *
 *   harness [--table] [--filter SUBSTR] [--quick] [--seed N] [--threads N]
 *           [--backend scalar|avx2|avx512|cuda] [--sdpa-draws N] [--list]
 *
 * Seed: --seed, else GPTOSS_TEST_SEED, else the time. It is printed first and in every
 * failure line; every case draws its inputs from (seed, case name), so
 * `GPTOSS_TEST_SEED=S harness --filter NAME` replays one failure.
 *
 * Per call: every buffer is allocated with gptoss_backend_alloc plus GUARD bytes holding a
 * pattern; outputs start as 0xFF bytes (NaN for floats, 0xFFFFFFFF for integers); after
 * the call the outputs come back (gptoss_backend_copy + synchronize), guards must be
 * intact, inputs unchanged (inputs up to 64 MB are compared in full), then the values are
 * compared with the reference:
 *
 *   |out - ref| <= tol(element), a NaN or inf only where the reference has one.
 *
 * TOLERANCE MODEL (eps = 2^-23, the f32 machine epsilon). Reductions of K terms in f32,
 * in any order (sequential, blocked, tree): error <= 8 sqrt(K) eps sum|terms|. sqrt(K) is
 * the statistical growth of K independent roundings (each <= eps/2 of a partial sum
 * bounded by sum|terms|); the factor 8 covers the ~sqrt(3)x spread and the tail of max
 * over millions of outputs. (The deterministic worst case K eps/2 sum|terms| is only
 * reached by adversarial data.) sum|terms| comes from the reference itself, run a second
 * time on |inputs| (|x|, |w|, |V|, ...), so the bound scales with each output's
 * magnitude instead of using one atol for every shape:
 *   matmul family, unembedding, qkv pre-RoPE, moe:
 *       tol = 8 sqrt(K) eps sum|x w| + 4 eps (|b| + |old|) + 2 eps |ref|
 *       (bias add, residual add and the final store round once each)
 *   rmsnorm: relative, tol = (4 sqrt(C) + 4) eps |ref| (sum of C squares -> 8 sqrt(C) eps
 *       relative, halved by the rsqrt, plus the two products)
 *   rope / qkv RoPE: the angle pos * inv_freq is formed in f32 (KERNELS.md 1.7) while the
 *       reference uses double: angle error <= pos * e_i * (|i ln(base)/(D/2)| + 8) eps
 *       with e_i the extrapolation frequency (expf argument rounding, freq_scale rounding,
 *       the YaRN mix, the product); tol = m (|x|+|y|) (angle_err + 4 eps) + m (tol_x +
 *       tol_y) with m the YaRN multiplier and tol_x/y the pre-RoPE tolerances. V exact.
 *   sdpa: logit error ds = (8 sqrt(D) + 2) eps A with A = |scale| max|q| max|k| (Cauchy-
 *       Schwarz bound of every logit); exp (fast exp allowed) relative (2A + 4) 2 eps;
 *       weights p relative 2 ds + that; output tol = sum_t p_t |V_t| (2 rel_p +
 *       8 sqrt(N+1) eps), sum p|V| from the reference with |V|.
 *   moe swiglu: tol_g, tol_l as matmul; tol = 1.1 |l_c + 1| tol_g + |sw| tol_l +
 *       (|1.702 g_c| + 8) eps |ref| (1.1 = max slope of g sigma(1.702 g); the exp argument
 *       rounding).
 *   gather_and_accumulate / accumulate: k fma roundings: tol = (k + 1) eps (|old| +
 *       sum_j |y_j s_j|).
 *   topk scores: relative ((v_0 - v_{k-1}) + k + 8) eps (the subtraction, expf, the sum
 *       of k terms, the reciprocal and the product).
 *   softmax: prob relative (2 |a| + 4) eps with a = (l - m)/T (subtraction and division
 *       round the exp argument); sum: 8 sqrt(V) eps sum + sum_i prob_i * that.
 *   sample: index i is accepted when prob[i] > 0 and the reference target lies in
 *       [cdf(i-1) - tol, cdf(i) + tol], tol = 8 sqrt(V) eps sum + eps target (the
 *       kernel's prefix sums are f32).
 * Exact (bitwise, any NaN equals any NaN): the three random fills, mf4 convert,
 * embeddings, routing metadata, scatter, V heads of rope, topk expert ids (the selection
 * compares input values only; ties are defined as lowest index, and the TC_TIES cases
 * check exactly that, so no tie position is skipped). unembedding argmax: must be
 * the argmax of the kernel's own logits (lowest index on ties, exact) and, against the
 * reference, ref[argmax] >= max(ref) - (tol[argmax] + tol[ref argmax]).
 * matmul_qkv: KV slots of other positions must keep the poison bit pattern.
 *
 * Summary: one line per (case, backend): PASS/FAIL name backend max_err time; then
 * "N passed, N failed, N skipped" and the skipped cases by name. Exit status 1 on any
 * failure. */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gptoss/kernels.h>

#include "catalogue.h"
#include "common/math.h"
#include "reference/reference.h"

#define EPS32 1.1920928955078125e-07 /* 2^-23 */
#define GUARD 256                    /* bytes after every buffer */
#define TINY 1e-30                   /* absolute floor: only for exact zeros */
#define FULL_INPUT_CHECK_BYTES (64u << 20)

static uint64_t g_seed;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

static void* xmalloc(size_t n) {
    void* p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "harness: out of memory (%zu bytes)\n", n);
        exit(2);
    }
    return p;
}

static uint8_t guard_byte(size_t i) { return (uint8_t) (0xA5u + 7u * (unsigned) i); }

/* ------------------------------------------------------------------------------------
 * Expectations: spans of an output buffer with reference values and tolerances (or
 * exact values), plus kernel-specific extra checks.
 * ---------------------------------------------------------------------------------- */

struct span {
    int buf;
    size_t start, n;
    double* ref;  /* n values (tolerance spans) */
    double* tol;  /* n values */
    void* exact;  /* n elements of the buffer's type (exact spans) */
    char label[48];
};

struct expect {
    struct span** spans; /* each span allocated on its own: pointers stay valid */
    size_t nspans, cap;
    uint32_t* tokens; /* tokens (rows) compared with the reference */
    uint32_t ntokens;
    /* unembedding: per checked token, the reference max and its tolerance */
    /* sdpa/sample etc. keep nothing else */
};

static struct span* add_span(struct expect* ex, int buf, size_t start, size_t n, bool exact, size_t elem_size,
                             const char* fmt, ...) __attribute__((format(printf, 7, 8)));

#include <stdarg.h>
static struct span* add_span(struct expect* ex, int buf, size_t start, size_t n, bool exact, size_t elem_size,
                             const char* fmt, ...) {
    if (ex->nspans == ex->cap) {
        ex->cap = ex->cap ? 2 * ex->cap : 16;
        ex->spans = realloc(ex->spans, ex->cap * sizeof *ex->spans);
        if (ex->spans == NULL) exit(2);
    }
    struct span* s = calloc(1, sizeof *s);
    if (s == NULL) exit(2);
    ex->spans[ex->nspans++] = s;
    s->buf = buf;
    s->start = start;
    s->n = n;
    if (exact) {
        s->exact = xmalloc(n * elem_size);
    } else {
        s->ref = xmalloc(n * sizeof(double));
        s->tol = xmalloc(n * sizeof(double));
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->label, sizeof s->label, fmt, ap);
    va_end(ap);
    return s;
}

static void expect_free(struct expect* ex) {
    for (size_t i = 0; i < ex->nspans; i++) {
        free(ex->spans[i]->ref);
        free(ex->spans[i]->tol);
        free(ex->spans[i]->exact);
        free(ex->spans[i]);
    }
    free(ex->spans);
    free(ex->tokens);
    memset(ex, 0, sizeof *ex);
}

/* The tokens (rows) to compare: all, or `check` of them: the first, the last and random
 * others, ascending. */
static void pick_tokens(struct expect* ex, uint32_t total, uint32_t check, uint64_t seed) {
    uint32_t n = (check == 0 || check >= total) ? total : check;
    ex->tokens = xmalloc(n * sizeof *ex->tokens);
    ex->ntokens = n;
    if (n == total) {
        for (uint32_t i = 0; i < n; i++) ex->tokens[i] = i;
        return;
    }
    bool* taken = calloc(total, 1);
    struct tc_rng rng;
    tc_rng_seed(&rng, seed ^ 0x70C3E45ull);
    uint32_t m = 0;
    taken[0] = true;
    ex->tokens[m++] = 0;
    if (n > 1) {
        taken[total - 1] = true;
        ex->tokens[m++] = total - 1;
    }
    while (m < n) {
        const uint32_t t = (uint32_t) (tc_rng_u64(&rng) % total);
        if (!taken[t]) {
            taken[t] = true;
            ex->tokens[m++] = t;
        }
    }
    m = 0;
    for (uint32_t t = 0; t < total; t++) {
        if (taken[t]) ex->tokens[m++] = t;
    }
    free(taken);
}

static double bf16d(gptoss_bf16 v) { return (double) gptoss_bf16_to_f32(v.bits); }

static float* abs_f32(const float* x, size_t n) {
    float* a = xmalloc(n * sizeof *a);
    for (size_t i = 0; i < n; i++) a[i] = fabsf(x[i]);
    return a;
}

/* For rows of one MXFP4 expert (blocks u8[rows][cols/32][16], +14-biased scales, bias
 * bf16): pre[r] = x . W[r] + b[r] and sabs[r] = |x| . |W[r]| + |b[r]|, in double. Used for
 * the tolerance model only (the oracle value comes from the reference); one ldexp per
 * block instead of one per element keeps the 120b shapes fast. */
static void mxfp4_row_dots(const struct tc_problem* p, uint32_t e, uint32_t rows, uint32_t cols, const float* x,
                           double* pre, double* sabs) {
    const uint8_t* base = (const uint8_t*) p->b[2].host + (size_t) e * p->expert_stride;
    const uint8_t* scales = base + p->scales_off;
    const gptoss_bf16* bias = (const gptoss_bf16*) (base + p->bias_off);
    const uint32_t nb = cols / 32;
    for (uint32_t r = 0; r < rows; r++) {
        double acc = 0.0, acc_abs = 0.0;
        for (uint32_t b = 0; b < nb; b++) {
            const double m = ldexp(1.0, (int) scales[(size_t) r * nb + b] - 14 - 127);
            const uint8_t* q = base + ((size_t) r * nb + b) * 16;
            double s = 0.0, sa = 0.0;
            for (uint32_t j = 0; j < 32; j++) {
                const float w = gptoss_fp4_values[(j & 1) ? (q[j / 2] >> 4) : (q[j / 2] & 15)];
                const double xv = x[b * 32 + j];
                s += xv * w;
                sa += fabs(xv) * fabsf(w);
            }
            acc += s * m;
            acc_abs += sa * m;
        }
        const double bv = bf16d(bias[r]);
        pre[r] = acc + bv;
        sabs[r] = acc_abs + fabs(bv);
    }
}

/* out[r] = sum_c |x[c]| |w[r][c]| in double (the sum|terms| of the tolerance model; the
 * same as the reference matmul of |x| and |w|, without a |w| copy of 1 GB weights) */
static void abs_dot_rows(const float* x, const gptoss_bf16* w, uint32_t R, uint32_t C, double* out) {
    double* xa = xmalloc(C * sizeof *xa);
    for (uint32_t c = 0; c < C; c++) xa[c] = fabs((double) x[c]);
    for (uint32_t r = 0; r < R; r++) {
        const gptoss_bf16* row = w + (size_t) r * C;
        double acc = 0.0;
        for (uint32_t c = 0; c < C; c++) acc += xa[c] * (double) gptoss_bf16_to_f32(row[c].bits & 0x7FFF);
        out[r] = acc;
    }
    free(xa);
}

/* matmul tolerance of one output (see the model at the top) */
static double matmul_tol(double K, double sum_abs, double bias_abs, double old_abs, double ref) {
    return 8.0 * sqrt(K) * EPS32 * sum_abs + 4.0 * EPS32 * (bias_abs + old_abs) + 2.0 * EPS32 * fabs(ref) + TINY;
}

/* RoPE angle error of pair i at position pos (see the model at the top) */
static double rope_angle_err(uint32_t i, uint32_t head_dim, uint32_t pos, float base) {
    const double arg = (double) i * log((double) base) / (double) (head_dim / 2);
    const double e = exp(-arg);
    return (double) pos * e * (arg + 8.0) * EPS32 + 4.0 * EPS32;
}

/* ---- per-kernel expectations ---- */

static void prep_exact_fill(const struct tc_problem* p, struct expect* ex) {
    const struct tc_case* c = p->c;
    switch (c->kernel) {
        case TK_U32_FILL_RANDOM: {
            struct span* s = add_span(ex, 0, 0, c->t, true, 4, "all");
            gptoss_ref_u32_fill_random(
                &(struct gptoss_u32_fill_random_args){s->exact, c->t, p->rng_seed, p->rng_offset});
            break;
        }
        case TK_F32_FILL_RANDOM: {
            struct span* s = add_span(ex, 0, 0, c->t, true, 4, "all");
            gptoss_ref_f32_fill_random(
                &(struct gptoss_f32_fill_random_args){s->exact, c->t, p->rng_seed, p->rng_offset, c->f, c->f2});
            break;
        }
        default: {
            struct span* s = add_span(ex, 0, 0, c->t, true, 2, "all");
            gptoss_ref_bf16_fill_random(
                &(struct gptoss_bf16_fill_random_args){s->exact, c->t, p->rng_seed, p->rng_offset, c->f, c->f2});
            break;
        }
    }
}

static void prep_matmul(const struct tc_problem* p, struct expect* ex) {
    const struct tc_case* c = p->c;
    const uint32_t C = c->c, R = c->r;
    const bool unemb = c->kernel == TK_UNEMBEDDING;
    const bool add = c->kernel == TK_MATMUL_ADD || c->kernel == TK_DENSE_MATMUL_ATTN_OUTPUT;
    const float* x = p->b[0].host;
    const gptoss_bf16* w = p->b[1].host;
    const gptoss_bf16* b = (unemb || (c->flags & TC_NO_BIAS)) ? NULL : p->b[2].host;
    const int out = unemb ? 2 : 3;
    const float* old = add ? p->b[3].host : NULL;
    double* sabs = xmalloc(R * sizeof *sabs);
    uint32_t* am = xmalloc(sizeof *am);
    for (uint32_t i = 0; i < ex->ntokens; i++) {
        const uint32_t t = ex->tokens[i];
        struct span* s = add_span(ex, out, (size_t) t * R, R, false, 4, "token %u", t);
        const float* xt = x + (size_t) t * C;
        if (unemb) {
            gptoss_ref_f32_bf16w_unembedding(&(struct gptoss_f32_bf16w_unembedding_args){xt, w, NULL, am, 1, C, R},
                                             s->ref);
        } else if (add) {
            gptoss_ref_f32_bf16w_matmul_add(
                &(struct gptoss_f32_bf16w_matmul_add_args){xt, w, b, (float*) old + (size_t) t * R, 1, C, R}, s->ref);
        } else {
            gptoss_ref_f32_bf16w_matmul(&(struct gptoss_f32_bf16w_matmul_args){xt, w, b, NULL, 1, C, R}, s->ref);
        }
        abs_dot_rows(xt, w, R, C, sabs);
        for (uint32_t r = 0; r < R; r++) {
            s->tol[r] = matmul_tol(C, sabs[r], b ? fabs(bf16d(b[r])) : 0.0, old ? fabs(old[(size_t) t * R + r]) : 0.0,
                                   s->ref[r]);
        }
    }
    free(am);
    free(sabs);
}

static void prep_rmsnorm(const struct tc_problem* p, struct expect* ex) {
    const struct tc_case* c = p->c;
    const uint32_t C = c->c;
    const int out = (c->flags & TC_INPLACE) ? 0 : 2;
    for (uint32_t i = 0; i < ex->ntokens; i++) {
        const uint32_t t = ex->tokens[i];
        struct span* s = add_span(ex, out, (size_t) t * C, C, false, 4, "token %u", t);
        gptoss_ref_f32_bf16w_rmsnorm(
            &(struct gptoss_f32_bf16w_rmsnorm_args){(const float*) p->b[0].host + (size_t) t * C, p->b[1].host, NULL, 1,
                                                    C, c->f},
            s->ref);
        for (uint32_t j = 0; j < C; j++) s->tol[j] = (4.0 * sqrt((double) C) + 4.0) * EPS32 * fabs(s->ref[j]) + TINY;
    }
}

/* Pre-RoPE tolerance -> post-RoPE tolerance for the Q and K heads of one qkv row. */
static void rope_tolerance(const struct tc_problem* p, const double* pre, const double* pre_tol, double* tol,
                           uint32_t pos) {
    const struct tc_case* c = p->c;
    const double m = fabs((double) p->rope[4]);
    for (uint32_t h = 0; h < c->hq + c->hkv; h++) {
        for (uint32_t i = 0; i < c->d / 2; i++) {
            const size_t j = (size_t) h * c->d + 2 * i;
            const double a = rope_angle_err(i, c->d, pos, p->rope[0]);
            const double t = m * (fabs(pre[j]) + fabs(pre[j + 1])) * (a + 4.0 * EPS32) +
                             m * (pre_tol[j] + pre_tol[j + 1]) + TINY;
            tol[j] = t;
            tol[j + 1] = t;
        }
    }
}

static void prep_qkv(const struct tc_problem* p, struct expect* ex) {
    const struct tc_case* c = p->c;
    const uint32_t C = c->c, D = c->d;
    const size_t rows = (size_t) D * (c->hq + 2 * c->hkv);
    const float* x = p->b[0].host;
    const gptoss_bf16* w = p->b[1].host;
    const gptoss_bf16* b = (c->flags & TC_NO_BIAS) ? NULL : p->b[2].host;
    double* pre = xmalloc(rows * sizeof *pre);
    double* sabs = xmalloc(rows * sizeof *sabs);
    double* pre_tol = xmalloc(rows * sizeof *pre_tol);
    double* kv = xmalloc((size_t) c->hkv * c->maxt * 2 * D * sizeof *kv);
    for (uint32_t i = 0; i < ex->ntokens; i++) {
        const uint32_t t = ex->tokens[i];
        const uint32_t pos = (uint32_t) c->off + t;
        const float* xt = x + (size_t) t * C;
        struct span* s = add_span(ex, 3, (size_t) t * rows, rows, false, 4, "token %u", t);
        gptoss_ref_f32_bf16w_matmul_qkv(
            &(struct gptoss_f32_bf16w_matmul_qkv_args){xt, w, b, NULL, NULL, 1, C, c->hq, c->hkv, D, pos, c->maxt,
                                                       p->rope[0], p->rope[1], p->rope[2], p->rope[3], p->rope[4]},
            s->ref, kv);
        gptoss_ref_f32_bf16w_matmul(&(struct gptoss_f32_bf16w_matmul_args){xt, w, b, NULL, 1, C, (uint32_t) rows}, pre);
        abs_dot_rows(xt, w, (uint32_t) rows, C, sabs);
        for (size_t r = 0; r < rows; r++) pre_tol[r] = matmul_tol(C, sabs[r], b ? fabs(bf16d(b[r])) : 0.0, 0.0, pre[r]);
        memcpy(s->tol, pre_tol, rows * sizeof *pre_tol); /* V heads keep the matmul tolerance */
        rope_tolerance(p, pre, pre_tol, s->tol, pos);
        for (uint32_t h = 0; h < c->hkv; h++) {
            const size_t slot = ((size_t) h * c->maxt + pos) * 2 * D;
            struct span* k = add_span(ex, 4, slot, 2 * D, false, 4, "token %u kv head %u", t, h);
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

static void prep_rope(const struct tc_problem* p, struct expect* ex) {
    const struct tc_case* c = p->c;
    const size_t rows = (size_t) c->d * (c->hq + 2 * c->hkv);
    const float* x = p->b[0].host;
    double* pre = xmalloc(rows * sizeof *pre);
    double* zero = calloc(rows, sizeof *zero);
    for (uint32_t i = 0; i < ex->ntokens; i++) {
        const uint32_t t = ex->tokens[i];
        const uint32_t pos = (uint32_t) c->off + t;
        const float* xt = x + (size_t) t * rows;
        struct span* s = add_span(ex, 0, (size_t) t * rows, rows, false, 4, "token %u", t);
        gptoss_ref_f32_rope(&(struct gptoss_f32_rope_args){(float*) xt, p->rope[0], p->rope[1], p->rope[2], p->rope[3],
                                                           p->rope[4], 1, c->hq, c->hkv, c->d, pos},
                            s->ref);
        for (size_t r = 0; r < rows; r++) {
            pre[r] = xt[r];
            s->tol[r] = 0.0; /* V heads: exact */
        }
        rope_tolerance(p, pre, zero, s->tol, pos);
    }
    free(pre);
    free(zero);
}

static void prep_sdpa(const struct tc_problem* p, struct expect* ex) {
    const struct tc_case* c = p->c;
    const uint32_t D = c->d;
    const size_t qkv_dim = (size_t) D * (c->hq + 2 * c->hkv);
    const float* q = p->b[0].host;
    const float* kv = p->b[1].host;
    const gptoss_bf16* sinks = (c->flags & TC_NO_BIAS) ? NULL : p->b[2].host;
    const size_t kv_n = (size_t) c->hkv * p->kv_stride;
    const uint64_t total = c->off + c->t;
    /* |V| copy and max |k| over the positions in use */
    float* kv_abs = xmalloc(kv_n * sizeof *kv_abs);
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
    double* pv = xmalloc(out_row * sizeof *pv);
    for (uint32_t i = 0; i < ex->ntokens; i++) {
        const uint32_t t = ex->tokens[i];
        const float* qt = q + (size_t) t * qkv_dim;
        struct span* s = add_span(ex, 3, (size_t) t * out_row, out_row, false, 4, "query %u", t);
        gptoss_ref_f32_sdpa(&(struct gptoss_f32_sdpa_args){qt, kv, sinks, NULL, c->window, p->kv_stride, 1,
                                                           (uint32_t) c->off + t, c->hq, c->hkv, D, c->f},
                            s->ref);
        gptoss_ref_f32_sdpa(&(struct gptoss_f32_sdpa_args){qt, kv_abs, sinks, NULL, c->window, p->kv_stride, 1,
                                                           (uint32_t) c->off + t, c->hq, c->hkv, D, c->f},
                            pv);
        const uint64_t pos = c->off + t;
        const uint64_t nkeys = (c->window == UINT32_MAX || pos + 1 <= c->window) ? pos + 1 : c->window;
        for (uint32_t hq = 0; hq < c->hq; hq++) {
            double qn = 0.0;
            for (uint32_t d = 0; d < D; d++) qn += (double) qt[hq * D + d] * qt[hq * D + d];
            const double A = fabs((double) c->f) * sqrt(qn) * kmax;
            const double ds = (8.0 * sqrt((double) D) + 2.0) * EPS32 * A;
            const double rel_p = 2.0 * ds + 2.0 * (2.0 * A + 4.0) * EPS32;
            const double rel = 2.0 * rel_p + 8.0 * sqrt((double) nkeys + 1.0) * EPS32;
            for (uint32_t d = 0; d < D; d++) s->tol[hq * D + d] = pv[hq * D + d] * rel + 2.0 * EPS32 * fabs(s->ref[hq * D + d]) + TINY;
        }
    }
    free(pv);
    free(kv_abs);
}

static void prep_topk(const struct tc_problem* p, struct expect* ex) {
    const struct tc_case* c = p->c;
    const size_t n = (size_t) c->t * c->k;
    struct span* ids = add_span(ex, 1, 0, n, true, 4, "expert ids");
    struct span* sc = add_span(ex, 2, 0, n, false, 4, "expert scores");
    const float* scores = p->b[0].host;
    gptoss_ref_f32_topk(&(struct gptoss_f32_topk_args){scores, ids->exact, NULL, c->t, c->e, c->k}, sc->ref);
    const uint32_t* id = ids->exact;
    for (uint32_t t = 0; t < c->t; t++) {
        const float* row = scores + (size_t) t * c->e;
        const double spread = (double) row[id[t * c->k]] - (double) row[id[t * c->k + c->k - 1]];
        for (uint32_t j = 0; j < c->k; j++) {
            const size_t i = (size_t) t * c->k + j;
            sc->tol[i] = (spread + c->k + 8.0) * EPS32 * fabs(sc->ref[i]) + TINY;
        }
    }
}

static void prep_routing(const struct tc_problem* p, struct expect* ex) {
    const struct tc_case* c = p->c;
    const size_t P = (size_t) c->t * c->k;
    struct span* off = add_span(ex, 1, 0, (size_t) c->e + 1, true, 4, "expert_offsets");
    struct span* intra = add_span(ex, 2, 0, P, true, 4, "intra_expert_offsets");
    gptoss_ref_expert_routing_metadata(
        &(struct gptoss_expert_routing_metadata_args){p->b[0].host, off->exact, intra->exact, (uint32_t) P, c->e});
}

static void prep_scatter(const struct tc_problem* p, struct expect* ex) {
    const struct tc_case* c = p->c;
    const size_t P = (size_t) c->t * c->k;
    struct span* s = add_span(ex, 4, 0, P * c->c, true, 4, "all rows");
    gptoss_ref_f32_scatter(&(struct gptoss_f32_scatter_args){p->b[0].host, p->b[1].host, p->b[2].host, p->b[3].host,
                                                             s->exact, c->c, c->t, c->k, c->e});
}

static void prep_accumulate(const struct tc_problem* p, struct expect* ex) {
    const struct tc_case* c = p->c;
    const size_t TC = (size_t) c->t * c->c, P = (size_t) c->t * c->k;
    const bool gather = c->kernel == TK_GATHER_AND_ACCUMULATE;
    const int res = gather ? 5 : 2;
    struct span* s = add_span(ex, res, 0, TC, false, 4, "all tokens");
    double* sabs = xmalloc(TC * sizeof *sabs);
    float* in_abs = abs_f32(p->b[0].host, P * c->c);
    float* sc_abs = abs_f32(p->b[gather ? 2 : 1].host, P);
    float* old_abs = abs_f32(p->b[res].host, TC);
    if (gather) {
        gptoss_ref_f32_gather_and_accumulate(
            &(struct gptoss_f32_gather_and_accumulate_args){p->b[0].host, p->b[1].host, p->b[2].host, p->b[3].host,
                                                            p->b[4].host, p->b[5].host, c->c, c->t, c->k, c->e},
            s->ref);
        gptoss_ref_f32_gather_and_accumulate(
            &(struct gptoss_f32_gather_and_accumulate_args){in_abs, p->b[1].host, sc_abs, p->b[3].host, p->b[4].host,
                                                            old_abs, c->c, c->t, c->k, c->e},
            sabs);
    } else {
        gptoss_ref_f32_accumulate(
            &(struct gptoss_f32_accumulate_args){p->b[0].host, p->b[1].host, p->b[2].host, c->c, c->t, c->k}, s->ref);
        gptoss_ref_f32_accumulate(&(struct gptoss_f32_accumulate_args){in_abs, sc_abs, old_abs, c->c, c->t, c->k},
                                  sabs);
    }
    for (size_t i = 0; i < TC; i++) s->tol[i] = (c->k + 1.0) * EPS32 * sabs[i] + TINY;
    free(sabs);
    free(in_abs);
    free(sc_abs);
    free(old_abs);
}

/* The fusion: residual as prep_accumulate; output = RMSNorm of the updated residual, whose
 * tolerance is the RMSNorm one plus the residual's error carried through to first order:
 * |r w_j| tol_j directly and |out_j| * dr/r through the scale, with
 * |dr/r| <= sum_i |res_i| tol_i / (sum_i res_i^2 + C eps). */
static void prep_accumulate_rmsnorm(const struct tc_problem* p, struct expect* ex) {
    const struct tc_case* c = p->c;
    const size_t C = c->c, TC = (size_t) c->t * C, P = (size_t) c->t * c->k;
    struct span* res = add_span(ex, 2, 0, TC, false, 4, "residual");
    struct span* out = add_span(ex, 4, 0, TC, false, 4, "output");
    double* sabs = xmalloc(TC * sizeof *sabs);
    float* in_abs = abs_f32(p->b[0].host, P * C);
    float* sc_abs = abs_f32(p->b[1].host, P);
    float* old_abs = abs_f32(p->b[2].host, TC);
    const gptoss_bf16* w = p->b[3].host;
    gptoss_ref_f32_accumulate_bf16w_rmsnorm(
        &(struct gptoss_f32_accumulate_bf16w_rmsnorm_args){p->b[0].host, p->b[1].host, p->b[2].host, w, NULL, c->c,
                                                           c->t, c->k, c->f},
        res->ref, out->ref);
    gptoss_ref_f32_accumulate(&(struct gptoss_f32_accumulate_args){in_abs, sc_abs, old_abs, c->c, c->t, c->k}, sabs);
    for (size_t i = 0; i < TC; i++) res->tol[i] = (c->k + 1.0) * EPS32 * sabs[i] + TINY;
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
            out->tol[i] = (4.0 * sqrt((double) C) + 4.0) * EPS32 * o + fabs(r * bf16d(w[j])) * tol[j] + o * dr + TINY;
        }
    }
    free(sabs);
    free(in_abs);
    free(sc_abs);
    free(old_abs);
}

/* The fused MoE gate. output: the RMSNorm tolerance. scores: the matmul tolerance over the
 * normalised row plus its error carried through the weights (sum_c |w_rc| tol_c). Top-k:
 * the selection depends on the computed scores, so a token is compared (ids exactly,
 * expert scores with prep_topk's tolerance plus the softmax of the score error) only where
 * the reference's top k+1 scores are separated by more than two score tolerances (no
 * error within the tolerances can reorder them); other
 * tokens (near ties, rare with random inputs) are only scanned for NaN and guard damage,
 * and the case says how many there were. */
static void prep_rmsnorm_matmul_topk(const struct tc_problem* p, struct expect* ex) {
    const struct tc_case* c = p->c;
    const uint32_t T = c->t, C = c->c, E = c->e, k = c->k;
    const bool nob = (c->flags & TC_NO_BIAS) != 0;
    const gptoss_bf16* rw = p->b[3].host;
    const gptoss_bf16* rb = nob ? NULL : p->b[4].host;
    double* out = xmalloc((size_t) T * C * sizeof *out);
    double* sc = xmalloc((size_t) T * E * sizeof *sc);
    uint32_t* ids = xmalloc((size_t) T * k * sizeof *ids);
    double* es = xmalloc((size_t) T * k * sizeof *es);
    gptoss_ref_f32_bf16w_rmsnorm_matmul_topk(
        &(struct gptoss_f32_bf16w_rmsnorm_matmul_topk_args){p->b[0].host, p->b[1].host, NULL, rw, rb, NULL, ids, NULL,
                                                            T, C, E, k, c->f},
        out, sc, es);
    double* otol = xmalloc((size_t) C * sizeof *otol);
    double* stol = xmalloc((size_t) E * sizeof *stol);
    uint32_t near_ties = 0;
    for (uint32_t i = 0; i < ex->ntokens; i++) {
        const uint32_t t = ex->tokens[i];
        struct span* so = add_span(ex, 2, (size_t) t * C, C, false, 4, "output token %u", t);
        for (uint32_t j = 0; j < C; j++) {
            so->ref[j] = out[(size_t) t * C + j];
            otol[j] = (4.0 * sqrt((double) C) + 4.0) * EPS32 * fabs(so->ref[j]) + TINY;
            so->tol[j] = otol[j];
        }
        struct span* ss = add_span(ex, 5, (size_t) t * E, E, false, 4, "scores token %u", t);
        for (uint32_t e = 0; e < E; e++) {
            const gptoss_bf16* w = rw + (size_t) e * C;
            double sum_abs = 0.0, carried = 0.0;
            for (uint32_t j = 0; j < C; j++) {
                const double wa = fabs(bf16d(w[j]));
                sum_abs += fabs(out[(size_t) t * C + j]) * wa;
                carried += wa * otol[j];
            }
            ss->ref[e] = sc[(size_t) t * E + e];
            stol[e] = matmul_tol(C, sum_abs, rb != NULL ? fabs(bf16d(rb[e])) : 0.0, 0.0, ss->ref[e]) + carried;
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
        struct span* si = add_span(ex, 6, (size_t) t * k, k, true, 4, "expert ids token %u", t);
        struct span* se = add_span(ex, 7, (size_t) t * k, k, false, 4, "expert scores token %u", t);
        memcpy(si->exact, id, k * sizeof *id);
        const double spread = row[id[0]] - row[id[k - 1]];
        for (uint32_t j = 0; j < k; j++) {
            se->ref[j] = es[(size_t) t * k + j];
            se->tol[j] = (spread + k + 8.0) * EPS32 * fabs(se->ref[j]) + 2.0 * tmax * fabs(se->ref[j]) + TINY;
        }
    }
    if (near_ties > 0) printf("note %s: %u token(s) with near-tied router scores: top-k not compared\n", c->name, near_ties);
    free(out);
    free(sc);
    free(ids);
    free(es);
    free(otol);
    free(stol);
}

/* SwiGLU output tolerance from the pre-activations and their tolerances. */
static double swiglu_tol(double g, double l, double tol_g, double tol_l, double limit, double ref) {
    const double gc = fmin(g, limit);
    const double lc = fmin(fmax(l, -limit), limit);
    const double sw = gc / (1.0 + exp(-1.702 * gc));
    return 1.1 * fabs(lc + 1.0) * tol_g + fabs(sw) * tol_l + (fabs(1.702 * gc) + 8.0) * EPS32 * fabs(ref) + TINY;
}

static void prep_moe(const struct tc_problem* p, struct expect* ex) {
    const struct tc_case* c = p->c;
    const uint32_t C = c->c, R = c->r, k = c->k, T = c->t;
    const bool swiglu = c->kernel == TK_MOE_MATMUL_SWIGLU || c->kernel == TK_MOE_DENSE_MATMUL_SWIGLU;
    const bool dense = c->kernel == TK_MOE_DENSE_MATMUL_SWIGLU || c->kernel == TK_MOE_DENSE_MATMUL;
    const uint32_t wrows = swiglu ? 2 * R : R;
    const uint8_t* x8 = p->b[2].host;
    const uint8_t* blocks = x8;
    const uint8_t* scales = x8 + p->scales_off;
    const gptoss_bf16* bias = (const gptoss_bf16*) (x8 + p->bias_off);
    const uint32_t rows_per_item = dense ? 1 : k; /* decode: a token has k slot rows */
    float* in = xmalloc((size_t) rows_per_item * C * sizeof *in);
    double* pre = xmalloc((size_t) rows_per_item * wrows * sizeof *pre);
    double* sabs = xmalloc((size_t) rows_per_item * wrows * sizeof *sabs);
    double* ref = xmalloc((size_t) rows_per_item * R * sizeof *ref);
    uint32_t* off1 = xmalloc(((size_t) c->e + 1) * sizeof *off1);
    const double limit = c->f;
    for (uint32_t i = 0; i < ex->ntokens; i++) {
        const uint32_t t = ex->tokens[i];
        if (dense) {
            /* row t of the expert-grouped input: a one-row problem for its expert */
            const uint32_t* offsets = p->b[0].host;
            uint32_t e = 0;
            while (!(offsets[e] <= t && t < offsets[e + 1])) e++;
            for (uint32_t j = 0; j <= c->e; j++) off1[j] = j > e ? 1 : 0;
            memcpy(in, (const float*) p->b[1].host + (size_t) t * C, C * sizeof *in);
            if (swiglu) {
                gptoss_ref_f32_mf4w_moe_dense_matmul_swiglu(
                    &(struct gptoss_f32_mf4w_moe_dense_matmul_swiglu_args){
                        off1, in, blocks, scales, bias, p->expert_stride, NULL, 1, 1, c->e, C, R, c->f},
                    ref);
            } else {
                gptoss_ref_f32_mf4w_moe_dense_matmul(
                    &(struct gptoss_f32_mf4w_moe_dense_matmul_args){off1, in, blocks, scales, bias, p->expert_stride,
                                                                    NULL, 1, 1, c->e, C, R},
                    ref);
            }
            mxfp4_row_dots(p, e, wrows, C, in, pre, sabs);
        } else {
            const uint32_t* ids = (const uint32_t*) p->b[1].host + (size_t) t * k;
            const float* x = p->b[0].host;
            for (uint32_t j = 0; j < k; j++) {
                /* swiglu: every slot reads x[t]; down: slot j reads input[j][t] */
                const float* src = swiglu ? x + (size_t) t * C : x + ((size_t) j * T + t) * C;
                memcpy(in + (size_t) j * C, src, C * sizeof *in);
            }
            if (swiglu) {
                gptoss_ref_f32_mf4w_moe_matmul_swiglu(
                    &(struct gptoss_f32_mf4w_moe_matmul_swiglu_args){in, ids, blocks, scales, bias, p->expert_stride,
                                                                     NULL, 1, k, c->e, C, R, c->f},
                    ref);
            } else {
                gptoss_ref_f32_mf4w_moe_matmul(
                    &(struct gptoss_f32_mf4w_moe_matmul_args){in, ids, blocks, scales, bias, p->expert_stride, NULL, 1,
                                                              k, c->e, C, R},
                    ref);
            }
            for (uint32_t j = 0; j < k; j++) {
                mxfp4_row_dots(p, ids[j], wrows, C, in + (size_t) j * C, pre + (size_t) j * wrows,
                               sabs + (size_t) j * wrows);
            }
        }
        for (uint32_t j = 0; j < rows_per_item; j++) {
            const size_t start = dense ? (size_t) t * R : ((size_t) j * T + t) * R;
            struct span* s = dense ? add_span(ex, 3, start, R, false, 4, "row %u", t)
                                   : add_span(ex, 3, start, R, false, 4, "token %u slot %u", t, j);
            const double* pj = pre + (size_t) j * wrows;
            const double* sj = sabs + (size_t) j * wrows;
            for (uint32_t r = 0; r < R; r++) {
                const double v = ref[(size_t) j * R + r];
                s->ref[r] = v;
                if (swiglu) {
                    const double g = pj[2 * r], l = pj[2 * r + 1];
                    const double tg = matmul_tol(C, sj[2 * r], 0, 0, g), tl = matmul_tol(C, sj[2 * r + 1], 0, 0, l);
                    s->tol[r] = swiglu_tol(g, l, tg, tl, limit, v);
                } else {
                    s->tol[r] = matmul_tol(C, sj[r], 0, 0, v);
                }
            }
        }
    }
    free(in);
    free(pre);
    free(sabs);
    free(ref);
    free(off1);
}

static void prep_softmax(const struct tc_problem* p, struct expect* ex) {
    const struct tc_case* c = p->c;
    const size_t n = (size_t) c->t * c->c;
    struct span* prob = add_span(ex, 2, 0, n, false, 4, "prob");
    struct span* sum = add_span(ex, 3, 0, c->t, false, 4, "sum");
    const float* l = p->b[0].host;
    const uint32_t* am = p->b[1].host;
    gptoss_ref_f32_softmax(&(struct gptoss_f32_softmax_args){l, am, NULL, NULL, c->t, c->c, c->f}, prob->ref, sum->ref);
    for (uint32_t t = 0; t < c->t; t++) {
        const double m = l[(size_t) t * c->c + am[t]];
        double acc = 0.0;
        for (uint32_t i = 0; i < c->c; i++) {
            const size_t j = (size_t) t * c->c + i;
            const double a = fabs(((double) l[j] - m) / (double) c->f);
            const double rel = (2.0 * a + 4.0) * EPS32;
            prob->tol[j] = rel * prob->ref[j] + TINY;
            acc += prob->ref[j] * rel;
        }
        sum->tol[t] = 8.0 * sqrt((double) c->c) * EPS32 * sum->ref[t] + acc + TINY;
    }
}

/* Builds the expectations of a case (reference computed once, shared by all backends). */
static void prepare(const struct tc_problem* p, struct expect* ex, uint64_t case_seed) {
    const struct tc_case* c = p->c;
    switch (c->kernel) {
        case TK_U32_FILL_RANDOM:
        case TK_F32_FILL_RANDOM:
        case TK_BF16_FILL_RANDOM: prep_exact_fill(p, ex); break;
        case TK_MF4_F32_CONVERT: {
            struct span* s = add_span(ex, 2, 0, c->t, true, 4, "all");
            gptoss_ref_mf4_f32_convert(
                &(struct gptoss_mf4_f32_convert_args){p->b[0].host, p->b[1].host, s->exact, c->t});
            break;
        }
        case TK_EMBEDDINGS: {
            struct span* s = add_span(ex, 2, 0, (size_t) c->t * c->c, true, 4, "all");
            gptoss_ref_bf16_f32_embeddings(
                &(struct gptoss_bf16_f32_embeddings_args){p->b[0].host, p->b[1].host, s->exact, c->t, c->c, c->r});
            break;
        }
        case TK_RMSNORM:
            pick_tokens(ex, c->t, c->check, case_seed);
            prep_rmsnorm(p, ex);
            break;
        case TK_MATMUL:
        case TK_MATMUL_ADD:
        case TK_DENSE_MATMUL_QKV:
        case TK_DENSE_MATMUL_ATTN_OUTPUT:
        case TK_DENSE_MATMUL_MLP_GATE:
        case TK_UNEMBEDDING:
            pick_tokens(ex, c->t, c->check, case_seed);
            prep_matmul(p, ex);
            break;
        case TK_MATMUL_QKV:
            pick_tokens(ex, c->t, c->check, case_seed);
            prep_qkv(p, ex);
            break;
        case TK_ROPE:
            pick_tokens(ex, c->t, c->check, case_seed);
            prep_rope(p, ex);
            break;
        case TK_SDPA:
            pick_tokens(ex, c->t, c->check, case_seed);
            prep_sdpa(p, ex);
            break;
        case TK_TOPK: prep_topk(p, ex); break;
        case TK_ROUTING_METADATA: prep_routing(p, ex); break;
        case TK_SCATTER: prep_scatter(p, ex); break;
        case TK_GATHER_AND_ACCUMULATE:
        case TK_ACCUMULATE: prep_accumulate(p, ex); break;
        case TK_ACCUMULATE_RMSNORM: prep_accumulate_rmsnorm(p, ex); break;
        case TK_RMSNORM_MATMUL_TOPK:
            pick_tokens(ex, c->t, c->check, case_seed);
            prep_rmsnorm_matmul_topk(p, ex);
            break;
        case TK_MOE_MATMUL_SWIGLU:
        case TK_MOE_MATMUL:
            pick_tokens(ex, c->t, c->check, case_seed);
            prep_moe(p, ex);
            break;
        case TK_MOE_DENSE_MATMUL_SWIGLU:
        case TK_MOE_DENSE_MATMUL:
            pick_tokens(ex, c->t * c->k, c->check, case_seed);
            prep_moe(p, ex);
            break;
        case TK_SOFTMAX: prep_softmax(p, ex); break;
        case TK_SAMPLE: break; /* checked per draw */
        case TK_COUNT: break;
    }
}

/* ------------------------------------------------------------------------------------
 * Running one case on one backend
 * ---------------------------------------------------------------------------------- */

struct result {
    bool fail;
    char msg[512];
    double max_err;   /* max |out - ref| over tolerance spans */
    double max_ratio; /* max |out - ref| / tol */
    double time_s;    /* one call (per draw for sample), including synchronize */
};

static void failf(struct result* res, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(struct result* res, const char* fmt, ...) {
    if (res->fail) return; /* keep the first failure */
    res->fail = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->msg, sizeof res->msg, fmt, ap);
    va_end(ap);
}

static size_t elem_size(enum tc_elem e) { return e == TC_BF16 ? 2 : (e == TC_U8 ? 1 : 4); }

static bool is_nan_f32(const void* p, size_t i) {
    uint32_t u;
    memcpy(&u, (const uint8_t*) p + 4 * i, 4);
    return (u & 0x7FFFFFFFu) > 0x7F800000u;
}

static void compare_span(const struct tc_problem* p, const struct span* s, void* const outs[], struct result* res,
                         bool* covered_any) {
    const struct tc_buffer* b = &p->b[s->buf];
    const uint8_t* out = outs[s->buf];
    covered_any[s->buf] = true;
    size_t nbad = 0, first = 0;
    double first_got = 0, first_want = 0, first_tol = 0;
    if (s->exact != NULL) {
        const size_t es = elem_size(b->elem);
        for (size_t i = 0; i < s->n; i++) {
            const uint8_t* o = out + (s->start + i) * es;
            const uint8_t* e = (const uint8_t*) s->exact + i * es;
            bool ok = memcmp(o, e, es) == 0;
            if (!ok && b->elem == TC_F32) ok = is_nan_f32(o, 0) && is_nan_f32(e, 0);
            if (!ok && b->elem == TC_BF16) {
                uint16_t uo, ue;
                memcpy(&uo, o, 2);
                memcpy(&ue, e, 2);
                ok = (uo & 0x7FFF) > 0x7F80 && (ue & 0x7FFF) > 0x7F80;
            }
            if (!ok && nbad++ == 0) first = i;
        }
        if (nbad) {
            const size_t es2 = elem_size(b->elem);
            uint32_t go = 0, we = 0;
            memcpy(&go, out + (s->start + first) * es2, es2);
            memcpy(&we, (const uint8_t*) s->exact + first * es2, es2);
            failf(res, "%s[%zu] (%s +%zu): got 0x%08" PRIx32 " want 0x%08" PRIx32 " (exact; %zu of %zu differ)", b->name,
                  s->start + first, s->label, first, go, we, nbad, s->n);
        }
        return;
    }
    const float* of = (const float*) out;
    for (size_t i = 0; i < s->n; i++) {
        const double o = of[s->start + i], r = s->ref[i], t = s->tol[i];
        bool ok;
        if (isnan(r)) {
            ok = isnan(o);
        } else if (isinf(r)) {
            ok = o == r;
        } else if (!isfinite(o)) {
            ok = false;
        } else {
            const double err = fabs(o - r);
            ok = err <= t;
            if (err > res->max_err) res->max_err = err;
            if (t > 0 && err / t > res->max_ratio) res->max_ratio = err / t;
        }
        if (!ok && nbad++ == 0) {
            first = i;
            first_got = o;
            first_want = r;
            first_tol = t;
        }
    }
    if (nbad) {
        failf(res, "%s[%zu] (%s +%zu): got %.9g want %.9g err %.3g > tol %.3g (%zu of %zu outside)", b->name,
              s->start + first, s->label, first, first_got, first_want, fabs(first_got - first_want), first_tol, nbad,
              s->n);
    }
}

/* Kernel-specific checks that are not a span comparison. */
static void custom_checks(const struct tc_problem* p, const struct expect* ex, void* const outs[], struct result* res) {
    const struct tc_case* c = p->c;
    if (c->kernel == TK_UNEMBEDDING) {
        const float* logits = outs[2];
        const uint32_t* am = outs[3];
        for (uint32_t t = 0; t < c->t; t++) {
            const float* row = logits + (size_t) t * c->r;
            uint32_t best = 0;
            for (uint32_t v = 1; v < c->r; v++) {
                if (gptoss_argmax_key(row[v]) < gptoss_argmax_key(row[best])) best = v;
            }
            if (am[t] != best) {
                failf(res, "argmax[%u] = %u but the largest of its own logits is at %u (lowest index on ties)", t, am[t],
                      best);
                return;
            }
        }
        for (size_t i = 0; i < ex->nspans; i++) {
            const struct span* s = ex->spans[i];
            const uint32_t t = (uint32_t) (s->start / c->r);
            uint32_t rb = 0;
            for (uint32_t v = 1; v < c->r; v++) rb = s->ref[v] > s->ref[rb] ? v : rb;
            const uint32_t a = am[t];
            if (a >= c->r || s->ref[a] < s->ref[rb] - (s->tol[a] + s->tol[rb])) {
                failf(res, "argmax[%u] = %u (ref logit %.9g) but the reference max is %.9g at %u", t, a,
                      a < c->r ? s->ref[a] : NAN, s->ref[rb], rb);
                return;
            }
        }
    }
    if (c->kernel == TK_MATMUL_QKV) {
        /* slots of other positions keep the poison; written slots of unchecked tokens are
         * not NaN */
        const uint32_t* kv = outs[4];
        const size_t slot = 2 * (size_t) c->d;
        for (uint32_t h = 0; h < c->hkv; h++) {
            for (uint32_t pos = 0; pos < c->maxt; pos++) {
                const uint32_t* s = kv + ((size_t) h * c->maxt + pos) * slot;
                const bool written = pos >= c->off && pos < c->off + c->t;
                for (size_t j = 0; j < slot; j++) {
                    if (!written && s[j] != TC_KV_POISON) {
                        failf(res, "kv_cache head %u position %u [%zu] was overwritten (0x%08" PRIx32 ") outside "
                              "positions %" PRIu64 "..%" PRIu64, h, pos, j, s[j], c->off, c->off + c->t - 1);
                        return;
                    }
                    if (written && (s[j] & 0x7FFFFFFFu) > 0x7F800000u) {
                        failf(res, "kv_cache head %u position %u [%zu] is NaN (not written)", h, pos, j);
                        return;
                    }
                }
            }
        }
    }
}

/* Allocation of one buffer on the backend. */
struct dev_buffer {
    void* ptr;
    size_t size;
};

static const char* status_str(enum gptoss_status s) { return gptoss_status_to_string(s); }

/* Uploads all buffers: inputs / old values, 0xFF for outputs, guard pattern after each. */
static bool upload(gptoss_backend_t be, const struct tc_problem* p, struct dev_buffer* dev, struct result* res) {
    for (int i = 0; i < p->n; i++) {
        const struct tc_buffer* b = &p->b[i];
        dev[i].size = b->size;
        enum gptoss_status st = gptoss_backend_alloc(be, b->size + GUARD, &dev[i].ptr);
        if (st != gptoss_status_success) {
            dev[i].ptr = NULL;
            failf(res, "gptoss_backend_alloc(%zu) for %s: %s (%s)", b->size + GUARD, b->name, status_str(st),
                  gptoss_last_error());
            return false;
        }
        uint8_t guard[GUARD];
        for (size_t g = 0; g < GUARD; g++) guard[g] = guard_byte(g);
        if (b->role == TC_OUT) {
            uint8_t* stage = xmalloc(b->size);
            memset(stage, 0xFF, b->size);
            st = gptoss_backend_copy(be, dev[i].ptr, stage, b->size, gptoss_copy_host_to_backend);
            if (st == gptoss_status_success) st = gptoss_backend_synchronize(be);
            free(stage);
        } else {
            st = gptoss_backend_copy(be, dev[i].ptr, b->host, b->size, gptoss_copy_host_to_backend);
        }
        if (st == gptoss_status_success) {
            st = gptoss_backend_copy(be, (uint8_t*) dev[i].ptr + b->size, guard, GUARD, gptoss_copy_host_to_backend);
        }
        if (st == gptoss_status_success) st = gptoss_backend_synchronize(be);
        if (st != gptoss_status_success) {
            failf(res, "upload of %s: %s (%s)", b->name, status_str(st), gptoss_last_error());
            return false;
        }
    }
    return gptoss_backend_synchronize(be) == gptoss_status_success;
}

/* Downloads outputs (and guards) into outs[i] (NULL for inputs); checks guards and
 * unchanged inputs. */
static void download(gptoss_backend_t be, const struct tc_problem* p, struct dev_buffer* dev, void* outs[],
                     struct result* res) {
    for (int i = 0; i < p->n; i++) {
        const struct tc_buffer* b = &p->b[i];
        const bool full = b->role != TC_IN || b->size <= FULL_INPUT_CHECK_BYTES;
        uint8_t* h = xmalloc(b->size + GUARD);
        enum gptoss_status st;
        if (full) {
            st = gptoss_backend_copy(be, h, dev[i].ptr, b->size + GUARD, gptoss_copy_backend_to_host);
        } else {
            st = gptoss_backend_copy(be, h + b->size, (uint8_t*) dev[i].ptr + b->size, GUARD,
                                     gptoss_copy_backend_to_host);
        }
        if (st == gptoss_status_success) st = gptoss_backend_synchronize(be);
        if (st != gptoss_status_success) {
            failf(res, "download of %s: %s (%s)", b->name, status_str(st), gptoss_last_error());
            free(h);
            outs[i] = NULL;
            continue;
        }
        for (size_t g = 0; g < GUARD; g++) {
            if (h[b->size + g] != guard_byte(g)) {
                failf(res, "guard byte %zu after %s (%zu bytes) overwritten: 0x%02x", g, b->name, b->size,
                      h[b->size + g]);
                break;
            }
        }
        if (b->role == TC_IN) {
            if (full && memcmp(h, b->host, b->size) != 0) failf(res, "input %s was modified", b->name);
            free(h);
            outs[i] = NULL;
        } else {
            outs[i] = h;
        }
    }
}

static void release(gptoss_backend_t be, const struct tc_problem* p, struct dev_buffer* dev, void* outs[]) {
    for (int i = 0; i < p->n; i++) {
        if (dev[i].ptr) gptoss_backend_free(be, dev[i].ptr);
        dev[i].ptr = NULL;
        free(outs[i]);
        outs[i] = NULL;
    }
}

/* The sample kernel: `t` draws at successive rng offsets; draw 0 twice (determinism). */
static void run_sample(gptoss_backend_t be, const struct tc_problem* p0, struct dev_buffer* dev, struct result* res) {
    struct tc_problem p = *p0;
    const struct tc_case* c = p.c;
    const float* prob = p.b[0].host;
    const float* sum = p.b[1].host;
    double* cdf = xmalloc(((size_t) c->c + 1) * sizeof *cdf);
    cdf[0] = 0.0;
    for (uint32_t i = 0; i < c->c; i++) cdf[i + 1] = cdf[i] + prob[i];
    double total_time = 0;
    uint32_t first_draw = UINT32_MAX;
    for (uint32_t d = 0; d <= c->t && !res->fail; d++) {
        p.rng_offset = p0->rng_offset + (d == c->t ? 0 : d);
        void* dd[TC_MAX_BUFFERS];
        for (int i = 0; i < p.n; i++) dd[i] = dev[i].ptr;
        const uint32_t ff = 0xFFFFFFFFu;
        gptoss_backend_copy(be, dev[2].ptr, &ff, 4, gptoss_copy_host_to_backend);
        gptoss_backend_synchronize(be);
        const double t0 = now_s();
        enum gptoss_status st = tc_launch(be, &p, dd);
        if (st == gptoss_status_success) st = gptoss_backend_synchronize(be);
        total_time += now_s() - t0;
        if (st != gptoss_status_success) {
            failf(res, "draw %u: %s (%s)", d, status_str(st), gptoss_last_error());
            break;
        }
        uint32_t pred = 0;
        gptoss_backend_copy(be, &pred, dev[2].ptr, 4, gptoss_copy_backend_to_host);
        gptoss_backend_synchronize(be);
        if (d == c->t) {
            if (pred != first_draw) failf(res, "same seed and offset drew %u then %u", first_draw, pred);
            break;
        }
        if (d == 0) first_draw = pred;
        uint32_t ref_pred;
        double target;
        gptoss_ref_f32_sample(&(struct gptoss_f32_sample_args){prob, sum, &ref_pred, c->c, p.rng_seed, p.rng_offset},
                              &target);
        const double tol = 8.0 * sqrt((double) c->c) * EPS32 * sum[0] + EPS32 * target;
        if (pred >= c->c) {
            failf(res, "draw %u (offset %" PRIu64 "): prediction %u out of range", d, p.rng_offset, pred);
        } else if (!(prob[pred] > 0.0f) || target < cdf[pred] - tol || target > cdf[pred + 1] + tol) {
            failf(res,
                  "draw %u (offset %" PRIu64 "): prediction %u (prob %g, cdf [%.9g, %.9g]) does not hold target %.9g "
                  "(reference %u, tol %.3g)",
                  d, p.rng_offset, pred, prob[pred], cdf[pred], cdf[pred + 1], target, ref_pred, tol);
        }
    }
    res->time_s = total_time / (c->t + 1);
    free(cdf);
}

static void run_case(gptoss_backend_t be, const struct tc_problem* p, const struct expect* ex, struct result* res) {
    struct dev_buffer dev[TC_MAX_BUFFERS] = {{0}};
    void* outs[TC_MAX_BUFFERS] = {0};
    if (!upload(be, p, dev, res)) {
        failf(res, "upload failed: %s", gptoss_last_error());
        release(be, p, dev, outs);
        return;
    }
    if (p->c->kernel == TK_SAMPLE) {
        run_sample(be, p, dev, res);
        download(be, p, dev, outs, res);
        release(be, p, dev, outs);
        return;
    }
    void* dd[TC_MAX_BUFFERS];
    for (int i = 0; i < p->n; i++) dd[i] = dev[i].ptr;
    const double t0 = now_s();
    enum gptoss_status st = tc_launch(be, p, dd);
    if (st == gptoss_status_success) st = gptoss_backend_synchronize(be);
    res->time_s = now_s() - t0;
    if (st != gptoss_status_success) {
        failf(res, "%s returned %s: %s", tc_kernel_name(p->c->kernel), status_str(st), gptoss_last_error());
        release(be, p, dev, outs);
        return;
    }
    download(be, p, dev, outs, res);
    bool covered[TC_MAX_BUFFERS] = {false};
    for (size_t i = 0; i < ex->nspans; i++) {
        if (outs[ex->spans[i]->buf] != NULL) compare_span(p, ex->spans[i], outs, res, covered);
    }
    /* a case that compares nothing cannot fail: that is a defect of the case */
    if (ex->nspans == 0 && p->c->kernel != TK_SAMPLE) failf(res, "nothing was compared with the reference");
    /* outputs outside the compared spans: no NaN (the 0xFF poison) may be left */
    for (int i = 0; i < p->n; i++) {
        const struct tc_buffer* b = &p->b[i];
        if (outs[i] == NULL || b->elem != TC_F32 || (p->c->kernel == TK_MATMUL_QKV && i == 4)) continue;
        if (p->c->kernel == TK_MF4_F32_CONVERT) continue; /* NaN is a valid value there */
        const size_t n = b->size / 4;
        for (size_t j = 0; j < n; j++) {
            if (is_nan_f32(outs[i], j)) {
                failf(res, "%s[%zu] is NaN (not written?)", b->name, j);
                break;
            }
        }
    }
    for (int i = 0; i < p->n; i++) {
        const struct tc_buffer* b = &p->b[i];
        if (outs[i] != NULL && b->elem == TC_U32 && b->role == TC_OUT) {
            const uint32_t* u = outs[i];
            for (size_t j = 0; j < b->size / 4; j++) {
                if (u[j] == 0xFFFFFFFFu) {
                    failf(res, "%s[%zu] still holds the 0xFFFFFFFF poison (not written?)", b->name, j);
                    break;
                }
            }
        }
    }
    if (!res->fail) custom_checks(p, ex, outs, res);
    release(be, p, dev, outs);
}

/* ------------------------------------------------------------------------------------
 * The seed README's SDPA example, 1000 fresh draws
 * ---------------------------------------------------------------------------------- */

/* The README's torch sdpa() in double: Q[n][H][m][d] (rows of absent queries zero),
 * K/V[n][H][d], S[H*m], causal mask, optional sliding window, softmax over [QK | S],
 * sink column dropped. out[n][H*m*d]. */
static void readme_sdpa(const double* Q, const double* K, const double* V, const double* S, double sm_scale,
                        uint32_t sliding_window, uint32_t n, uint32_t H, uint32_t m, uint32_t d, double* out) {
    double* w = xmalloc(((size_t) n + 1) * sizeof *w);
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
                        if (k > q) v = -INFINITY;                                       /* triu(diagonal=1) */
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

static void run_seed_readme(gptoss_backend_t be, const struct tc_problem* p, uint32_t draws, uint64_t case_seed,
                            struct result* res, uint32_t* passed_out) {
    const uint32_t head_dim = 64, kv_heads = 8, qmul = 8, num_q_heads = kv_heads * qmul;
    const uint32_t history = 3, nq = 2, total = history + nq, max_tokens = total;
    const size_t qkv_dim = (size_t) head_dim * (num_q_heads + 2 * kv_heads);
    const size_t token_stride = 2 * head_dim, kv_stride = token_stride * max_tokens;
    const size_t q_n = nq * qkv_dim, kv_n = kv_heads * kv_stride, out_n = (size_t) nq * num_q_heads * head_dim;
    float* qbuf = xmalloc(q_n * 4);
    float* kvbuf = xmalloc(kv_n * 4);
    float* out = xmalloc(out_n * 4);
    gptoss_bf16 sinks[64];
    double* Q = xmalloc((size_t) total * num_q_heads * head_dim * sizeof *Q);
    double* K = xmalloc((size_t) total * kv_heads * head_dim * sizeof *K);
    double* V = xmalloc((size_t) total * kv_heads * head_dim * sizeof *V);
    double* ref = xmalloc((size_t) total * num_q_heads * head_dim * sizeof *ref);
    double S[64];
    for (uint32_t h = 0; h < num_q_heads; h++) {
        sinks[h].bits = gptoss_f32_to_bf16(-1e4f); /* torch.full(-1e4, bfloat16) = -9984 */
        S[h] = bf16d(sinks[h]);
    }
    void *dq = NULL, *dkv = NULL, *ds = NULL, *dout = NULL;
    if (gptoss_backend_alloc(be, q_n * 4, &dq) || gptoss_backend_alloc(be, kv_n * 4, &dkv) ||
        gptoss_backend_alloc(be, sizeof sinks, &ds) || gptoss_backend_alloc(be, out_n * 4, &dout)) {
        failf(res, "alloc failed: %s", gptoss_last_error());
        goto done;
    }
    gptoss_backend_copy(be, ds, sinks, sizeof sinks, gptoss_copy_host_to_backend);
    struct tc_rng rng;
    tc_rng_seed(&rng, case_seed);
    uint32_t passed = 0;
    double t_sum = 0;
    for (uint32_t it = 0; it < draws; it++) {
        /* torch.randn: Q_chunk[2][64][64], K_all/V_all[8][5][64] */
        memset(Q, 0, (size_t) total * num_q_heads * head_dim * sizeof *Q);
        memset(qbuf, 0, q_n * 4);
        memset(kvbuf, 0, kv_n * 4);
        for (uint32_t t = 0; t < nq; t++) {
            for (size_t j = 0; j < (size_t) num_q_heads * head_dim; j++) {
                const float v = (float) tc_rng_normal(&rng);
                qbuf[t * qkv_dim + j] = v;
                Q[(size_t) (history + t) * num_q_heads * head_dim + j] = v; /* Q_total[abs_idx] */
            }
        }
        for (uint32_t h = 0; h < kv_heads; h++) {
            for (uint32_t t = 0; t < total; t++) {
                for (uint32_t e = 0; e < head_dim; e++) {
                    const float kval = (float) tc_rng_normal(&rng), vval = (float) tc_rng_normal(&rng);
                    kvbuf[h * kv_stride + t * token_stride + e] = kval;
                    kvbuf[h * kv_stride + t * token_stride + head_dim + e] = vval;
                    K[((size_t) t * kv_heads + h) * head_dim + e] = kval;
                    V[((size_t) t * kv_heads + h) * head_dim + e] = vval;
                    if (t >= history) { /* the q buffer rows also carry the new tokens' K and V */
                        qbuf[(t - history) * qkv_dim + (size_t) num_q_heads * head_dim + h * head_dim + e] = kval;
                        qbuf[(t - history) * qkv_dim + (size_t) (num_q_heads + kv_heads) * head_dim + h * head_dim + e] =
                            vval;
                    }
                }
            }
        }
        for (size_t j = 0; j < out_n; j++) out[j] = NAN;
        gptoss_backend_copy(be, dq, qbuf, q_n * 4, gptoss_copy_host_to_backend);
        gptoss_backend_copy(be, dkv, kvbuf, kv_n * 4, gptoss_copy_host_to_backend);
        gptoss_backend_copy(be, dout, out, out_n * 4, gptoss_copy_host_to_backend);
        gptoss_backend_synchronize(be);
        const double t0 = now_s();
        enum gptoss_status st = gptoss_f32_sdpa(be, dq, dkv, ds, dout, /*window=*/total, kv_stride, nq, history,
                                                num_q_heads, kv_heads, head_dim, 1.0f / sqrtf((float) head_dim));
        if (st == gptoss_status_success) st = gptoss_backend_synchronize(be);
        t_sum += now_s() - t0;
        if (st != gptoss_status_success) {
            failf(res, "draw %u: f32_sdpa returned %s: %s", it, status_str(st), gptoss_last_error());
            break;
        }
        gptoss_backend_copy(be, out, dout, out_n * 4, gptoss_copy_backend_to_host);
        gptoss_backend_synchronize(be);
        readme_sdpa(Q, K, V, S, pow(head_dim, -0.5), 0, total, kv_heads, qmul, head_dim, ref);
        /* output_ref[num_kv_tokens:total] vs the kernel, assert_close(atol=1e-3, rtol=1e-3) */
        size_t bad = 0, first = 0;
        for (size_t j = 0; j < out_n; j++) {
            const double r = ref[(size_t) history * num_q_heads * head_dim + j];
            const double err = fabs((double) out[j] - r);
            if (!(err <= 1e-3 + 1e-3 * fabs(r))) {
                if (bad++ == 0) first = j;
            }
            if (err > res->max_err) res->max_err = err;
        }
        if (bad == 0) {
            passed++;
        } else {
            failf(res, "draw %u: %zu of %zu elements outside atol=rtol=1e-3, first [%zu] got %.9g want %.9g", it, bad,
                  out_n, first, out[first], ref[(size_t) history * num_q_heads * head_dim + first]);
        }
    }
    res->time_s = t_sum / draws;
    res->max_ratio = res->max_err / 1e-3;
    *passed_out = passed;
done:
    gptoss_backend_free(be, dq);
    gptoss_backend_free(be, dkv);
    gptoss_backend_free(be, ds);
    gptoss_backend_free(be, dout);
    free(qbuf);
    free(kvbuf);
    free(out);
    free(Q);
    free(K);
    free(V);
    free(ref);
    (void) p;
}

/* ------------------------------------------------------------------------------------
 * Main
 * ---------------------------------------------------------------------------------- */

struct backend_slot {
    const char* label; /* scalar, avx2, avx512, cuda */
    gptoss_backend_t be;
    char name[160];
    char skip_reason[256]; /* non-empty: not available */
    char* skipped_list;    /* names of the cases skipped on it */
    size_t skipped_len, skipped_cap;
    uint32_t nskipped;
};

static void note_skip(struct backend_slot* s, const char* name) {
    const size_t need = strlen(name) + 2;
    if (s->skipped_len + need + 1 > s->skipped_cap) {
        s->skipped_cap = (s->skipped_cap + need) * 2 + 256;
        s->skipped_list = realloc(s->skipped_list, s->skipped_cap);
        if (s->skipped_list == NULL) exit(2);
    }
    memcpy(s->skipped_list + s->skipped_len, name, need - 2);
    s->skipped_len += need - 2;
    s->skipped_list[s->skipped_len++] = ' ';
    s->skipped_list[s->skipped_len] = '\0';
    s->nskipped++;
}

struct table_row {
    const struct tc_case* c;
    const char* backend;
    struct result r;
};

static void usage(void) {
    fprintf(stderr,
            "usage: harness [--table] [--filter SUBSTR] [--quick] [--seed N] [--threads N]\n"
            "               [--backend scalar|avx2|avx512|cuda] [--sdpa-draws N] [--list]\n");
}

int main(int argc, char** argv) {
    bool table = false, quick = false, list = false;
    const char* filter = NULL;
    const char* only_backend = NULL;
    uint32_t threads = 2, sdpa_draws = 1000;
    bool have_seed = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--table") == 0) {
            table = true;
        } else if (strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (strcmp(argv[i], "--list") == 0) {
            list = true;
        } else if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc) {
            filter = argv[++i];
        } else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
            only_backend = argv[++i];
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            g_seed = strtoull(argv[++i], NULL, 0);
            have_seed = true;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = (uint32_t) strtoul(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--sdpa-draws") == 0 && i + 1 < argc) {
            sdpa_draws = (uint32_t) strtoul(argv[++i], NULL, 0);
        } else {
            usage();
            return 2;
        }
    }
    if (!have_seed) {
        const char* env = getenv("GPTOSS_TEST_SEED");
        if (env != NULL && *env != '\0') {
            g_seed = strtoull(env, NULL, 0);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            g_seed = (uint64_t) ts.tv_sec * 1000003u ^ (uint64_t) ts.tv_nsec;
        }
    }
    if (list) {
        for (size_t i = 0; i < tc_catalogue_size; i++) {
            const struct tc_case* c = &tc_catalogue[i];
            if (quick && !(c->flags & TC_QUICK)) continue;
            if (filter && !strstr(c->name, filter)) continue;
            char shape[96];
            tc_shape_string(c, shape, sizeof shape);
            printf("%-52s %-34s %s\n", c->name, tc_kernel_name(c->kernel), shape);
        }
        return 0;
    }
    printf("seed %" PRIu64 " (replay: GPTOSS_TEST_SEED=%" PRIu64 ")\n", g_seed, g_seed);
    fflush(stdout);

    struct backend_slot slots[4] = {{.label = "scalar"}, {.label = "avx2"}, {.label = "avx512"}, {.label = "cuda"}};
    const enum gptoss_cpu_isa isas[3] = {gptoss_cpu_isa_scalar, gptoss_cpu_isa_avx2, gptoss_cpu_isa_avx512};
    for (int i = 0; i < 4; i++) {
        struct backend_slot* s = &slots[i];
        if (only_backend && strcmp(only_backend, s->label) != 0) {
            snprintf(s->skip_reason, sizeof s->skip_reason, "not selected (--backend %s)", only_backend);
            continue;
        }
        enum gptoss_status st = i < 3 ? gptoss_backend_create_cpu_isa(threads, isas[i], &s->be)
                                       : gptoss_backend_create_cuda(0, NULL, &s->be);
        if (st != gptoss_status_success) {
            s->be = NULL;
            snprintf(s->skip_reason, sizeof s->skip_reason, "%s: %s", status_str(st), gptoss_last_error());
            snprintf(s->name, sizeof s->name, "%s", i < 3 ? (i == 0 ? "cpu-scalar" : i == 1 ? "cpu-avx2" : "cpu-avx512") : "cuda:0");
            printf("backend %s: unavailable (%s); its cases are SKIPPED\n", s->label, s->skip_reason);
        } else {
            snprintf(s->name, sizeof s->name, "%s", gptoss_backend_get_name(s->be));
            printf("backend %s: %s\n", s->label, s->name);
        }
    }
    fflush(stdout);

    uint32_t npass = 0, nfail = 0, nskip = 0;
    struct table_row* rows = NULL;
    size_t nrows = 0;
    const double t_start = now_s();
    for (size_t ci = 0; ci < tc_catalogue_size; ci++) {
        const struct tc_case* c = &tc_catalogue[ci];
        if (quick && !(c->flags & TC_QUICK)) continue;
        if (filter && !strstr(c->name, filter)) continue;
        if (c->flags & TC_BENCH_ONLY) continue;
        const uint64_t case_seed = g_seed ^ tc_hash_string(c->name);
        bool any = false;
        for (int i = 0; i < 4; i++) any |= slots[i].be != NULL;
        if (!any) {
            for (int i = 0; i < 4; i++) {
                note_skip(&slots[i], c->name);
                nskip++;
            }
            continue;
        }
        struct tc_problem p;
        struct expect ex = {0};
        const double t_prep = now_s();
        const bool seed_check = (c->flags & TC_SEED_README) != 0;
        if (!seed_check) {
            if (tc_problem_create(&p, c, case_seed) != 0) {
                printf("FAIL %s (all backends) seed=%" PRIu64 ": out of host memory building the inputs\n", c->name, g_seed);
                nfail++;
                continue;
            }
            prepare(&p, &ex, case_seed);
        }
        const double prep_s = now_s() - t_prep;
        for (int i = 0; i < 4; i++) {
            struct backend_slot* s = &slots[i];
            if (s->be == NULL) {
                note_skip(s, c->name);
                nskip++;
                continue;
            }
            struct result res = {0};
            uint32_t seed_passed = 0;
            if (seed_check) {
                run_seed_readme(s->be, NULL, sdpa_draws, case_seed, &res, &seed_passed);
                printf("     %s %s: %u/%u draws pass the seed's assert_close(atol=1e-3, rtol=1e-3)\n", c->name, s->label,
                       seed_passed, sdpa_draws);
                if (seed_passed != sdpa_draws) failf(&res, "only %u of %u draws pass", seed_passed, sdpa_draws);
            } else {
                run_case(s->be, &p, &ex, &res);
            }
            if (res.fail) {
                nfail++;
                printf("FAIL %s %s seed=%" PRIu64 ": %s\n", c->name, s->label, g_seed, res.msg);
            } else {
                npass++;
                if (!table) {
                    printf("PASS %s %s max_err=%.3g (%.0f%% of tol) %.3f ms\n", c->name, s->label, res.max_err,
                           100.0 * res.max_ratio, 1e3 * res.time_s);
                }
            }
            fflush(stdout);
            rows = realloc(rows, (nrows + 1) * sizeof *rows);
            rows[nrows++] = (struct table_row){c, s->label, res};
        }
        if (!seed_check) {
            expect_free(&ex);
            tc_problem_destroy(&p);
        }
        if (getenv("GPTOSS_HARNESS_VERBOSE")) fprintf(stderr, "  (%s: inputs+reference %.2f s)\n", c->name, prep_s);
    }

    if (table) {
        printf("\n%-34s %-7s %-36s %10s %5s %11s %8s\n", "op", "backend", "shape", "max_err", "pass", "time_ms", "GB/s");
        for (size_t i = 0; i < nrows; i++) {
            const struct table_row* r = &rows[i];
            char shape[96];
            tc_shape_string(r->c, shape, sizeof shape);
            const double gbs = r->r.time_s > 0 ? tc_bytes(r->c) / r->r.time_s * 1e-9 : 0;
            printf("%-34s %-7s %-36s %10.3g %5s %11.4f %8.2f   %s\n", tc_kernel_name(r->c->kernel), r->backend, shape,
                   r->r.max_err, r->r.fail ? "FAIL" : "ok", 1e3 * r->r.time_s, gbs, r->c->name);
        }
    }
    printf("\n(total %.1f s)\n", now_s() - t_start);
    printf("%u passed, %u failed, %u skipped\n", npass, nfail, nskip);
    for (int i = 0; i < 4; i++) {
        if (slots[i].nskipped) {
            printf("skipped on %s (%s): %s\n", slots[i].label, slots[i].skip_reason, slots[i].skipped_list);
        }
        free(slots[i].skipped_list);
        gptoss_backend_release(slots[i].be);
    }
    free(rows);
    return nfail ? 1 : 0;
}
