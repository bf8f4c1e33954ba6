/* Test module of the sampling kernels: softmax and sample.
 *
 * softmax: prob relative (2 |a| + 4) eps with a = (l - m) / T (the subtraction and the
 * division round the exp argument); sum: 8 sqrt(V) eps sum + sum_i prob_i * that. Case
 * fields: t = tokens, c = vocabulary, f = temperature.
 *
 * sample: each draw (rng offsets off, off + 1, ...; the last draw repeats the first, which
 * must give the same index) is accepted when prob[i] > 0 and the reference's target lies
 * in [cdf(i-1) - tol, cdf(i) + tol], tol = 8 sqrt(V) eps sum + eps target (the kernel's
 * prefix sums are f32). Case fields: c = channels, draws; TC_SPARSE: half of the
 * probabilities are exactly 0. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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
