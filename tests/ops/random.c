/* Test module of the random fills (u32, f32, bf16): exact, the reference computes the
 * kernel's own formula. Sizes 1, 3, 19, 130, 2881, and a counter offset that crosses 2^32
 * (the offset is u64).
 *
 * Case fields: t = elements, off = counter offset, f / f2 = min / max (f32, bf16). */
#include <stdio.h>

#include "ops.h"
#include "reference/reference.h"

static const struct tc_case u32_cases[] = {
    {"u32_fill_random_1", .t = 1, .flags = TC_QUICK},
    {"u32_fill_random_3", .t = 3, .off = 7, .flags = TC_QUICK},
    {"u32_fill_random_19", .t = 19, .flags = TC_QUICK},
    {"u32_fill_random_130", .t = 130, .off = 12345678901234567890ull},
    {"u32_fill_random_2881_offset_crosses_2p32", .t = 2881, .off = 0xFFFFFC00ull, .flags = TC_QUICK},
    {"u32_fill_random_1M", .t = 1u << 20, .off = 1ull << 40, .flags = TC_BENCH},
};

static const struct tc_case f32_cases[] = {
    {"f32_fill_random_1", .t = 1, .f = -1.0f, .f2 = 1.5f, .flags = TC_QUICK},
    {"f32_fill_random_19_upstream_range", .t = 19, .f = -1.0f, .f2 = 1.5f, .flags = TC_QUICK},
    {"f32_fill_random_130_positive_range", .t = 130, .f = 0.25f, .f2 = 0.75f},
    {"f32_fill_random_2881_wide_range", .t = 2881, .off = 0xFFFFFF00ull, .f = -1e30f, .f2 = 1e30f},
    {"f32_fill_random_1M", .t = 1u << 20, .off = 99, .f = -1.0f, .f2 = 1.0f, .flags = TC_BENCH},
};

static const struct tc_case bf16_cases[] = {
    {"bf16_fill_random_1", .t = 1, .f = -1.0f, .f2 = 1.0f, .flags = TC_QUICK},
    {"bf16_fill_random_3", .t = 3, .f = -1.0f, .f2 = 1.0f},
    {"bf16_fill_random_19", .t = 19, .f = -3.0f, .f2 = 0.5f, .flags = TC_QUICK},
    {"bf16_fill_random_2881_offset_crosses_2p32", .t = 2881, .off = 0xFFFFFF00ull, .f = -1.0f, .f2 = 1.0f},
    {"bf16_fill_random_1M", .t = 1u << 20, .f = -0.05f, .f2 = 0.05f, .flags = TC_BENCH},
};

static void make_u32(struct tc_problem* p, struct tc_rng* rng) { tc_add_buffer(p, "output", TC_OUT, TC_U32, p->c->t); }
static void make_f32(struct tc_problem* p, struct tc_rng* rng) { tc_add_buffer(p, "output", TC_OUT, TC_F32, p->c->t); }
static void make_bf16(struct tc_problem* p, struct tc_rng* rng) {
    tc_add_buffer(p, "output", TC_OUT, TC_BF16, p->c->t);
}

static void args_u32(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    a->u32_fill_random = (struct gptoss_u32_fill_random_args){d[0], p->c->t, p->rng_seed, p->rng_offset};
}
static void args_f32(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    a->f32_fill_random =
        (struct gptoss_f32_fill_random_args){d[0], p->c->t, p->rng_seed, p->rng_offset, p->c->f, p->c->f2};
}
static void args_bf16(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    a->bf16_fill_random =
        (struct gptoss_bf16_fill_random_args){d[0], p->c->t, p->rng_seed, p->rng_offset, p->c->f, p->c->f2};
}

/* The reference of the call, its output into an exact span. */
static void expect_u32(const struct tc_problem* p, struct tc_expect* ex) {
    void* out[1] = {tc_add_span(ex, 0, 0, p->c->t, true, 4, "all")->exact};
    union gptoss_kernel_args a;
    args_u32(p, out, &a);
    gptoss_ref_u32_fill_random(&a.u32_fill_random);
}
static void expect_f32(const struct tc_problem* p, struct tc_expect* ex) {
    void* out[1] = {tc_add_span(ex, 0, 0, p->c->t, true, 4, "all")->exact};
    union gptoss_kernel_args a;
    args_f32(p, out, &a);
    gptoss_ref_f32_fill_random(&a.f32_fill_random);
}
static void expect_bf16(const struct tc_problem* p, struct tc_expect* ex) {
    void* out[1] = {tc_add_span(ex, 0, 0, p->c->t, true, 2, "all")->exact};
    union gptoss_kernel_args a;
    args_bf16(p, out, &a);
    gptoss_ref_bf16_fill_random(&a.bf16_fill_random);
}

static double bytes_32(const struct tc_case* c) { return 4.0 * c->t; }
static double bytes_16(const struct tc_case* c) { return 2.0 * c->t; }
static void shape(const struct tc_case* c, char* buf, size_t size) { snprintf(buf, size, "n=%u", c->t); }

const struct tc_op tc_op_u32_fill_random = {
    gptoss_kernel_u32_fill_random, TC_CASES(u32_cases), .make = make_u32, .args = args_u32,
    .expect = expect_u32,          .bytes = bytes_32,   .shape = shape,
};
const struct tc_op tc_op_f32_fill_random = {
    gptoss_kernel_f32_fill_random, TC_CASES(f32_cases), .make = make_f32, .args = args_f32,
    .expect = expect_f32,          .bytes = bytes_32,   .shape = shape,
};
const struct tc_op tc_op_bf16_fill_random = {
    gptoss_kernel_bf16_fill_random, TC_CASES(bf16_cases), .make = make_bf16, .args = args_bf16,
    .expect = expect_bf16,          .bytes = bytes_16,    .shape = shape,
};
