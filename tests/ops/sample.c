/* Test module of the sampling kernels: softmax, sample, apply_penalties, sample_logits.
 *
 * softmax: prob relative (2 |a| + 4) eps with a = (l - m) / T (the subtraction and the
 * division round the exp argument); sum: 8 sqrt(V) eps sum + sum_i prob_i * that. Case
 * fields: t = tokens, c = vocabulary, f = temperature.
 *
 * sample: each draw (rng offsets off, off + 1, ...; the last draw repeats the first, which
 * must give the same index) is accepted when prob[i] > 0 and the reference's target lies
 * in [cdf(i-1) - tol, cdf(i) + tol], tol = 8 sqrt(V) eps sum + eps target (the kernel's
 * prefix sums are f32). Case fields: c = channels, draws; TC_SPARSE: half of the
 * probabilities are exactly 0.
 *
 * apply_penalties: where count != 0, eps (|f c| + |p + f c| + |ref|) (the product, the sum
 * and the difference round once each: eps/2 of each, doubled); elsewhere exact (tolerance
 * 1e-30: the logit itself; inf and NaN must stay). Counts from t context tokens drawn with
 * a skew (u^3: low ids repeat). Case fields: c = vocabulary, t = context tokens, f =
 * presence, f2 = frequency; TC_INPLACE: output == logits; TC_SPARSE: -inf and NaN logits.
 *
 * sample_logits: each draw (rng offsets as sample's, the last repeats the first) against
 * the reference's literal double sampler: a greedy case (all NaN, temperature 0, a
 * maximum that is not finite) must give the reference's index; otherwise the token must be
 * a kept candidate at a position i whose prefix sums fit the draw within tol = (n + 8)
 * 2^-52 C_n + (n + 1) 2^-90 (n candidates; the reference's left-to-right double sums are
 * within n 2^-53 C_n of the exact ones, the kernel's exp within an ulp of libm's and its
 * masses truncated to 2^-94): C_i + tol > u C_K' and C_(i-1) - tol <= u C_K'' for K', K''
 * in the range top-p's K can take with C off by tol, i <= K''. Exact ties put the right
 * member of a tie group at stake: each one shifts C by a whole probability. Case fields:
 * c = vocabulary, f = temperature, f2 = top_p, k = top_k, r = the logits (below),
 * draws; TC_TIES: small integers (-0 and +0 among them); TC_SPARSE: a quarter -inf and
 * 1/16 NaN. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "reference/reference.h"

static const struct tc_case softmax_cases[] = {
    {"softmax_1x1", .t = 1, .c = 1, .f = 1.0f, .flags = TC_QUICK},
    {"softmax_odd_3tok_19ch_temp0.7", .t = 3, .c = 19, .f = 0.7f, .flags = TC_QUICK},
    {"softmax_odd_2tok_2881ch_temp0.25", .t = 2, .c = 2881, .f = 0.25f, .flags = TC_QUICK},
    {"softmax_130ch_temp4", .t = 2, .c = 130, .f = 4.0f},
    {"softmax_decode_vocab200014_temp1", .t = 1, .c = 200014, .f = 1.0f, .flags = TC_BENCH},
    {"softmax_2tok_vocab201088_temp0.7", .t = 2, .c = 201088, .f = 0.7f},
};

static const struct tc_case sample_cases[] = {
    {"sample_1ch", .c = 1, .draws = 9, .flags = TC_QUICK},
    {"sample_3ch", .c = 3, .draws = 65, .flags = TC_QUICK},
    {"sample_odd_19ch", .c = 19, .draws = 65, .flags = TC_QUICK},
    {"sample_sparse_half_zero_2881ch", .c = 2881, .draws = 65, .flags = TC_QUICK | TC_SPARSE},
    {"sample_vocab200014_64draws", .c = 200014, .draws = 65, .flags = TC_BENCH},
};

/* ---- softmax ---- */

static void make_softmax(struct tc_problem* p, struct tc_rng* rng) {
    const struct tc_case* c = p->c;
    float* l = tc_add_buffer(p, "logits", TC_IN, TC_F32, (size_t) c->t * c->c);
    uint32_t* am = tc_add_buffer(p, "argmax", TC_IN, TC_U32, c->t);
    tc_add_buffer(p, "prob", TC_OUT, TC_F32, (size_t) c->t * c->c);
    tc_add_buffer(p, "sum", TC_OUT, TC_F32, c->t);
    if (!l || !am) return;
    tc_fill_f32(rng, l, (size_t) c->t * c->c, -10.0f, 10.0f);
    for (uint32_t t = 0; t < c->t; t++) {
        const float* row = l + (size_t) t * c->c;
        uint32_t best = 0;
        for (uint32_t i = 1; i < c->c; i++) best = row[i] > row[best] ? i : best;
        am[t] = best;
    }
}

static void args_softmax(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    a->f32_softmax = (struct gptoss_f32_softmax_args){d[0], d[1], d[2], d[3], p->c->t, p->c->c, p->c->f};
}

static void expect_softmax(const struct tc_problem* p, struct tc_expect* ex) {
    const struct tc_case* c = p->c;
    struct tc_span* prob = tc_add_span(ex, 2, 0, (size_t) c->t * c->c, false, 4, "prob");
    struct tc_span* sum = tc_add_span(ex, 3, 0, c->t, false, 4, "sum");
    const float* l = p->b[0].host;
    const uint32_t* am = p->b[1].host;
    gptoss_ref_f32_softmax(&(struct gptoss_f32_softmax_args){l, am, NULL, NULL, c->t, c->c, c->f}, prob->ref, sum->ref);
    for (uint32_t t = 0; t < c->t; t++) {
        const double m = l[(size_t) t * c->c + am[t]];
        double acc = 0.0;
        for (uint32_t i = 0; i < c->c; i++) {
            const size_t j = (size_t) t * c->c + i;
            const double a = fabs(((double) l[j] - m) / (double) c->f);
            const double rel = (2.0 * a + 4.0) * TC_EPS32;
            prob->tol[j] = rel * prob->ref[j] + TC_TINY;
            acc += prob->ref[j] * rel;
        }
        sum->tol[t] = 8.0 * sqrt((double) c->c) * TC_EPS32 * sum->ref[t] + acc + TC_TINY;
    }
}

static double bytes_softmax(const struct tc_case* c) {
    const double T = c->t, C = c->c;
    return 4 * T * C + 4 * T + 4 * T * C + 4 * T;
}
static void shape_softmax(const struct tc_case* c, char* buf, size_t size) {
    snprintf(buf, size, "T=%u V=%u", c->t, c->c);
}

const struct tc_op tc_op_f32_softmax = {
    gptoss_kernel_f32_softmax, TC_CASES(softmax_cases), .make = make_softmax,   .args = args_softmax,
    .expect = expect_softmax,  .bytes = bytes_softmax,  .shape = shape_softmax,
};

/* ---- sample ---- */

static void make_sample(struct tc_problem* p, struct tc_rng* rng) {
    const struct tc_case* c = p->c;
    float* prob = tc_add_buffer(p, "prob", TC_IN, TC_F32, c->c);
    float* sum = tc_add_buffer(p, "sum", TC_IN, TC_F32, 1);
    tc_add_buffer(p, "prediction", TC_OUT, TC_U32, 1);
    if (!prob || !sum) return;
    double total = 0.0;
    for (uint32_t i = 0; i < c->c; i++) {
        prob[i] = expf((float) (-20.0 * tc_rng_uniform(rng)));
        if ((c->flags & TC_SPARSE) && (tc_rng_u64(rng) & 1)) prob[i] = 0.0f;
        total += prob[i];
    }
    if (total == 0.0) {
        prob[0] = 1.0f;
        total = 1.0;
    }
    sum[0] = (float) total;
    p->memory[0] = tc_rng_u64(rng) >> 40; /* the rng offset of draw 0 */
    p->rng_offset = p->memory[0];
}

/* rng offset of draw d; the last draw repeats draw 0 */
static void draw_sample(struct tc_problem* p, uint32_t d) {
    p->rng_offset = p->memory[0] + (d + 1 == tc_num_draws(p->c) ? 0 : d);
}

static void args_sample(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    a->f32_sample = (struct gptoss_f32_sample_args){d[0], d[1], d[2], p->c->c, p->rng_seed, p->rng_offset};
}

static void verify_sample(struct tc_problem* p, const struct tc_expect* ex, void* const outs[], struct tc_result* res) {
    const struct tc_case* c = p->c;
    const uint32_t pred = *(const uint32_t*) outs[2];
    if (p->draw + 1 == tc_num_draws(c) && p->draw > 0) {
        if (pred != (uint32_t) p->memory[1]) {
            tc_failf(res, "same seed and offset drew %u then %u", (uint32_t) p->memory[1], pred);
        }
        return;
    }
    if (p->draw == 0) p->memory[1] = pred;
    const float* prob = p->b[0].host;
    const float* sum = p->b[1].host;
    uint32_t ref_pred;
    double target;
    gptoss_ref_f32_sample(&(struct gptoss_f32_sample_args){prob, sum, &ref_pred, c->c, p->rng_seed, p->rng_offset},
                          &target);
    const double tol = 8.0 * sqrt((double) c->c) * TC_EPS32 * sum[0] + TC_EPS32 * target;
    if (pred >= c->c) {
        tc_failf(res, "draw %u (offset %" PRIu64 "): prediction %u out of range", p->draw, p->rng_offset, pred);
        return;
    }
    double below = 0.0; /* cdf(pred - 1) */
    for (uint32_t i = 0; i < pred; i++) below += prob[i];
    const double upto = below + prob[pred];
    if (!(prob[pred] > 0.0f) || target < below - tol || target > upto + tol) {
        tc_failf(res,
                 "draw %u (offset %" PRIu64
                 "): prediction %u (prob %g, cdf [%.9g, %.9g]) does not hold target %.9g "
                 "(reference %u, tol %.3g)",
                 p->draw, p->rng_offset, pred, prob[pred], below, upto, target, ref_pred, tol);
    }
}

/* one pass over the probabilities per draw */
static double bytes_sample(const struct tc_case* c) { return 4.0 * c->c + 8; }
static void shape_sample(const struct tc_case* c, char* buf, size_t size) {
    snprintf(buf, size, "V=%u draws=%u", c->c, c->draws);
}

const struct tc_op tc_op_f32_sample = {
    gptoss_kernel_f32_sample, TC_CASES(sample_cases), .make = make_sample,   .args = args_sample,
    .verify = verify_sample,  .draw = draw_sample,    .bytes = bytes_sample, .shape = shape_sample,
};

/* ---- apply_penalties ---- */

static const struct tc_case penalties_cases[] = {
    {"penalties_1ch", .c = 1, .t = 3, .f = 0.5f, .f2 = 0.25f, .flags = TC_QUICK},
    {"penalties_odd_19ch_inf_nan", .c = 19, .t = 40, .f = 1.5f, .f2 = 0.3f, .flags = TC_QUICK | TC_SPARSE},
    {"penalties_inplace_2881ch", .c = 2881, .t = 500, .f = 0.7f, .f2 = -0.2f, .flags = TC_QUICK | TC_INPLACE},
    {"penalties_presence_only_2881ch", .c = 2881, .t = 500, .f = 2.0f, .f2 = 0.0f},
    {"penalties_large_counts_130ch", .c = 130, .t = 100000, .f = -0.5f, .f2 = 1e-3f},
    {"penalties_vocab201088_ctx4096", .c = 201088, .t = 4096, .f = 0.5f, .f2 = 0.5f, .flags = TC_BENCH},
    {"penalties_inplace_vocab201088_ctx131072", .c = 201088, .t = 131072, .f = 0.1f, .f2 = 0.2f,
     .flags = TC_INPLACE | TC_SPARSE},
};

/* Logits: ~N(0, 2.5) with 8 of them raised by 8 (a model's few likely tokens); TC_TIES:
 * integers in [-3, 3] / 2 (zeros of both signs); TC_SPARSE: a quarter -inf, 1/16 NaN. */
static void fill_logits(struct tc_rng* rng, float* l, uint32_t V, uint32_t flags) {
    for (uint32_t i = 0; i < V; i++) {
        if (flags & TC_TIES) {
            const int v = (int) (tc_rng_u64(rng) % 7) - 3;
            l[i] = v == 0 && (tc_rng_u64(rng) & 1) ? -0.0f : 0.5f * (float) v;
        } else {
            l[i] = (float) (2.5 * tc_rng_normal(rng));
        }
    }
    if (!(flags & TC_TIES)) {
        for (int j = 0; j < 8; j++) l[tc_rng_u64(rng) % V] += 8.0f;
    }
    if (flags & TC_SPARSE) {
        for (uint32_t i = 0; i < V; i++) {
            const uint64_t r = tc_rng_u64(rng) % 16;
            if (r < 4) l[i] = -INFINITY;
            if (r == 4) l[i] = NAN;
        }
    }
}

static void make_penalties(struct tc_problem* p, struct tc_rng* rng) {
    const struct tc_case* c = p->c;
    const bool inplace = (c->flags & TC_INPLACE) != 0;
    float* l = tc_add_buffer(p, "logits", inplace ? TC_INOUT : TC_IN, TC_F32, c->c);
    uint32_t* counts = tc_add_buffer(p, "counts", TC_IN, TC_U32, c->c);
    if (!inplace) tc_add_buffer(p, "output", TC_OUT, TC_F32, c->c);
    p->b[inplace ? 0 : 2].nan_ok = (c->flags & TC_SPARSE) != 0;
    if (!l || !counts) return;
    fill_logits(rng, l, c->c, c->flags);
    memset(counts, 0, (size_t) c->c * sizeof *counts);
    for (uint32_t j = 0; j < c->t; j++) {
        const double u = tc_rng_uniform(rng);
        counts[(uint32_t) (u * u * u * c->c)]++;
    }
}

static void args_penalties(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    const struct tc_case* c = p->c;
    float* output = (c->flags & TC_INPLACE) ? d[0] : d[2];
    a->f32_apply_penalties = (struct gptoss_f32_apply_penalties_args){d[0], d[1], output, c->c, c->f, c->f2};
}

static void expect_penalties(const struct tc_problem* p, struct tc_expect* ex) {
    const struct tc_case* c = p->c;
    struct tc_span* s = tc_add_span(ex, (c->flags & TC_INPLACE) ? 0 : 2, 0, c->c, false, 4, "output");
    const uint32_t* counts = p->b[1].host;
    gptoss_ref_f32_apply_penalties(
        &(struct gptoss_f32_apply_penalties_args){p->b[0].host, counts, NULL, c->c, c->f, c->f2}, s->ref);
    for (uint32_t i = 0; i < c->c; i++) {
        const double fc = (double) c->f2 * counts[i];
        s->tol[i] = counts[i] != 0 ? TC_EPS32 * (fabs(fc) + fabs(c->f + fc) + fabs(s->ref[i])) + TC_TINY : TC_TINY;
    }
}

static double bytes_penalties(const struct tc_case* c) { return 12.0 * c->c; }
static void shape_penalties(const struct tc_case* c, char* buf, size_t size) {
    snprintf(buf, size, "V=%u ctx=%u%s", c->c, c->t, (c->flags & TC_INPLACE) ? " in place" : "");
}

const struct tc_op tc_op_f32_apply_penalties = {
    gptoss_kernel_f32_apply_penalties, TC_CASES(penalties_cases), .make = make_penalties,
    .args = args_penalties,            .expect = expect_penalties,  .bytes = bytes_penalties,
    .shape = shape_penalties,
};

/* ---- sample_logits ---- */

enum { LOGITS_MODEL = 0, LOGITS_FLAT, LOGITS_ALL_NAN, LOGITS_PLUS_INF, LOGITS_MINUS_INF_NAN };

static const struct tc_case sample_logits_cases[] = {
    {"sample_logits_1ch", .c = 1, .f = 1.0f, .f2 = 1.0f, .draws = 5, .flags = TC_QUICK},
    {"sample_logits_2ch_topp0.5", .c = 2, .f = 1.0f, .f2 = 0.5f, .draws = 33, .flags = TC_QUICK},
    {"sample_logits_odd_19ch_temp0.7", .c = 19, .f = 0.7f, .f2 = 1.0f, .draws = 65, .flags = TC_QUICK},
    {"sample_logits_odd_19ch_topk3", .c = 19, .f = 1.0f, .f2 = 1.0f, .k = 3, .draws = 65, .flags = TC_QUICK},
    {"sample_logits_ties_2881ch_topp0.9", .c = 2881, .f = 1.0f, .f2 = 0.9f, .draws = 65, .flags = TC_QUICK | TC_TIES},
    {"sample_logits_ties_2881ch_topk50_topp0.5", .c = 2881, .f = 0.8f, .f2 = 0.5f, .k = 50, .draws = 65,
     .flags = TC_QUICK | TC_TIES},
    {"sample_logits_ties_2881ch_by_index", .c = 2881, .f = 2.0f, .f2 = 1.0f, .draws = 65, .flags = TC_TIES},
    {"sample_logits_inf_nan_2881ch_topp0.95", .c = 2881, .f = 1.5f, .f2 = 0.95f, .draws = 65,
     .flags = TC_QUICK | TC_SPARSE},
    {"sample_logits_inf_nan_2881ch_by_index", .c = 2881, .f = 1.0f, .f2 = 1.0f, .draws = 65, .flags = TC_SPARSE},
    {"sample_logits_topk_above_candidates_130ch", .c = 130, .f = 1.0f, .f2 = 0.9f, .k = 1000, .draws = 33,
     .flags = TC_SPARSE},
    {"sample_logits_idbits_1025ch_topk700_topp0.8", .c = 1025, .f = 1.0f, .f2 = 0.8f, .k = 700, .draws = 33},
    {"sample_logits_1024ch_by_index", .c = 1024, .f = 1.0f, .f2 = 1.0f, .draws = 33},
    {"sample_logits_temp0_argmax_2881ch", .c = 2881, .f = 0.0f, .f2 = 0.9f, .k = 40, .draws = 3,
     .flags = TC_QUICK | TC_TIES},
    {"sample_logits_temp0.01_few_candidates_2881ch", .c = 2881, .f = 0.01f, .f2 = 0.9f, .draws = 33},
    {"sample_logits_topp_tiny_2881ch", .c = 2881, .f = 1.0f, .f2 = 1e-6f, .draws = 9},
    {"sample_logits_all_nan_19ch", .c = 19, .f = 1.0f, .f2 = 0.9f, .r = LOGITS_ALL_NAN, .draws = 3,
     .flags = TC_QUICK},
    {"sample_logits_plus_inf_19ch", .c = 19, .f = 1.0f, .f2 = 0.9f, .r = LOGITS_PLUS_INF, .draws = 3,
     .flags = TC_QUICK},
    {"sample_logits_only_minus_inf_nan_19ch", .c = 19, .f = 1.0f, .f2 = 1.0f, .r = LOGITS_MINUS_INF_NAN,
     .draws = 3, .flags = TC_QUICK},
    {"sample_logits_vocab201088_topp0.9", .c = 201088, .f = 1.0f, .f2 = 0.9f, .draws = 17, .flags = TC_BENCH},
    {"sample_logits_vocab201088_topk50_temp0.7", .c = 201088, .f = 0.7f, .f2 = 1.0f, .k = 50, .draws = 17,
     .flags = TC_BENCH},
    {"sample_logits_vocab201088_temp1", .c = 201088, .f = 1.0f, .f2 = 1.0f, .draws = 17, .flags = TC_BENCH},
    {"sample_logits_flat_vocab201088_topp0.9", .c = 201088, .f = 1.0f, .f2 = 0.9f, .r = LOGITS_FLAT, .draws = 9},
    {"sample_logits_ties_vocab201088_topk1000_topp0.9", .c = 201088, .f = 1.0f, .f2 = 0.9f, .k = 1000, .draws = 9,
     .flags = TC_TIES | TC_SPARSE},
};

static void make_sample_logits(struct tc_problem* p, struct tc_rng* rng) {
    const struct tc_case* c = p->c;
    float* l = tc_add_buffer(p, "logits", TC_IN, TC_F32, c->c);
    tc_add_buffer(p, "prediction", TC_OUT, TC_U32, 1);
    if (!l) return;
    switch (c->r) {
    case LOGITS_FLAT:
        tc_fill_f32(rng, l, c->c, -0.5f, 0.5f);
        break;
    case LOGITS_ALL_NAN:
        for (uint32_t i = 0; i < c->c; i++) l[i] = NAN;
        break;
    case LOGITS_PLUS_INF:
        fill_logits(rng, l, c->c, TC_SPARSE);
        l[c->c / 3] = INFINITY;
        l[2 * c->c / 3] = INFINITY; /* the first of the two wins */
        break;
    case LOGITS_MINUS_INF_NAN:
        for (uint32_t i = 0; i < c->c; i++) l[i] = (tc_rng_u64(rng) & 1) ? -INFINITY : NAN;
        l[0] = NAN;
        break;
    default:
        fill_logits(rng, l, c->c, c->flags);
    }
    p->memory[0] = tc_rng_u64(rng) >> 40; /* the rng offset of draw 0 */
    p->rng_offset = p->memory[0];
}

static void args_sample_logits(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    const struct tc_case* c = p->c;
    a->f32_sample_logits =
        (struct gptoss_f32_sample_logits_args){d[0], d[1], c->c, c->f, c->k, c->f2, p->rng_seed, p->rng_offset};
}

/* first k (1-based) with prefix[k - 1] >= x, n when none */
static uint32_t first_reaching(const double* prefix, uint32_t n, double x) {
    uint32_t k = 1;
    while (k < n && !(prefix[k - 1] >= x)) k++;
    return k;
}

static void verify_sample_logits(struct tc_problem* p, const struct tc_expect* ex, void* const outs[],
                                 struct tc_result* res) {
    const struct tc_case* c = p->c;
    const uint32_t pred = *(const uint32_t*) outs[1];
    if (p->draw + 1 == tc_num_draws(c) && p->draw > 0) {
        if (pred != (uint32_t) p->memory[1]) {
            tc_failf(res, "same seed and offset drew %u then %u", (uint32_t) p->memory[1], pred);
        }
        return;
    }
    if (p->draw == 0) p->memory[1] = pred;
    uint32_t* order = tc_xmalloc((size_t) c->c * sizeof *order);
    double* prob = tc_xmalloc((size_t) c->c * sizeof *prob);
    double* prefix = tc_xmalloc((size_t) c->c * sizeof *prefix);
    uint32_t ref_pred, n, keep;
    double u;
    gptoss_ref_f32_sample_logits(&(struct gptoss_f32_sample_logits_args){p->b[0].host, &ref_pred, c->c, c->f, c->k,
                                                                         c->f2, p->rng_seed, p->rng_offset},
                                 order, prob, prefix, &n, &keep, &u);
    if (n == 0) {
        if (pred != ref_pred) tc_failf(res, "draw %u: greedy case gave %u, want %u", p->draw, pred, ref_pred);
    } else {
        uint32_t pos = 0;
        while (pos < n && order[pos] != pred) pos++;
        const double total = prefix[n - 1];
        const double tol = (n + 8.0) * 0x1p-52 * total + (n + 1.0) * 0x1p-90;
        uint32_t k_lo = n, k_hi = n;
        if (c->f2 < 1.0f) {
            k_lo = first_reaching(prefix, n, (double) c->f2 * total - tol);
            k_hi = first_reaching(prefix, n, (double) c->f2 * total + tol);
        }
        const double x_lo = u * prefix[k_lo - 1] - tol, x_hi = u * prefix[k_hi - 1] + tol;
        if (pos == n) {
            tc_failf(res, "draw %u (offset %" PRIu64 "): token %u is not among the %u candidates (reference %u)",
                     p->draw, p->rng_offset, pred, n, ref_pred);
        } else if (pos + 1 > k_hi || !(prefix[pos] + tol > x_lo) || (pos > 0 && !(prefix[pos - 1] - tol <= x_hi))) {
            tc_failf(res,
                     "draw %u (offset %" PRIu64
                     "): token %u at position %u (C %.17g, before %.17g) does not hold the target in [%.17g, "
                     "%.17g] (K in [%u, %u] of %u, u %.9g, reference %u, tol %.3g)",
                     p->draw, p->rng_offset, pred, pos, prefix[pos], pos > 0 ? prefix[pos - 1] : 0.0, x_lo, x_hi,
                     k_lo, k_hi, n, u, ref_pred, tol);
        }
    }
    free(order);
    free(prob);
    free(prefix);
}

/* one pass over the logits per draw */
static double bytes_sample_logits(const struct tc_case* c) { return 4.0 * c->c + 4; }
static void shape_sample_logits(const struct tc_case* c, char* buf, size_t size) {
    snprintf(buf, size, "V=%u T=%g k=%u p=%g draws=%u", c->c, c->f, c->k, c->f2, c->draws);
}

const struct tc_op tc_op_f32_sample_logits = {
    gptoss_kernel_f32_sample_logits, TC_CASES(sample_logits_cases), .make = make_sample_logits,
    .args = args_sample_logits,      .verify = verify_sample_logits,  .draw = draw_sample,
    .bytes = bytes_sample_logits,    .shape = shape_sample_logits,
};
