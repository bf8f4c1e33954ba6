/* Test module of the MXFP4 -> f32 conversion: exact (fp4 * 2^(s-127) via ldexp in the
 * reference); raw scales 123..128 except the all-scales case (0..255: inf and NaN).
 *
 * Case fields: t = elements (a multiple of 32). */
#include <stdio.h>

#include "ops.h"
#include "reference/reference.h"

static const struct tc_case cases[] = {
    {"mf4_convert_1block", .t = 32, .flags = TC_QUICK},
    {"mf4_convert_3blocks", .t = 3 * 32, .flags = TC_QUICK},
    {"mf4_convert_19blocks", .t = 19 * 32},
    {"mf4_convert_130blocks", .t = 130 * 32},
    {"mf4_convert_2881blocks", .t = 2881 * 32},
    {"mf4_convert_20b_expert_mlp1", .t = 5760 * 2880, .flags = TC_BENCH},
    {"mf4_convert_all_scales_0_255_inf_nan", .t = 256 * 32 * 4, .flags = TC_QUICK | TC_ALL_SCALES},
};

static void make(struct tc_problem* p, struct tc_rng* rng) {
    const uint32_t T = p->c->t;
    uint8_t* blocks = tc_add_buffer(p, "blocks", TC_IN, TC_U8, T / 2);
    uint8_t* scales = tc_add_buffer(p, "scales", TC_IN, TC_U8, T / 32);
    tc_add_buffer(p, "output", TC_OUT, TC_F32, T);
    p->b[2].nan_ok = true; /* scale 255 (E8M0 NaN) gives NaN */
    if (!blocks || !scales) return;
    tc_fill_bytes(rng, blocks, T / 2);
    for (uint32_t b = 0; b < T / 32; b++) {
        scales[b] = (p->c->flags & TC_ALL_SCALES) ? (uint8_t) b : (uint8_t) (127 - 4 + tc_rng_u64(rng) % 6);
    }
}

static void args(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    a->mf4_f32_convert = (struct gptoss_mf4_f32_convert_args){d[0], d[1], d[2], p->c->t};
}

static void expect(const struct tc_problem* p, struct tc_expect* ex) {
    void* host[3] = {p->b[0].host, p->b[1].host, tc_add_span(ex, 2, 0, p->c->t, true, 4, "all")->exact};
    union gptoss_kernel_args a;
    args(p, host, &a);
    gptoss_ref_mf4_f32_convert(&a.mf4_f32_convert);
}

static double bytes(const struct tc_case* c) { return c->t / 2.0 + c->t / 32.0 + 4.0 * c->t; }
static void shape(const struct tc_case* c, char* buf, size_t size) { snprintf(buf, size, "n=%u", c->t); }

const struct tc_op tc_op_mf4_f32_convert = {
    gptoss_kernel_mf4_f32_convert,
    TC_CASES(cases),
    .make = make,
    .args = args,
    .expect = expect,
    .bytes = bytes,
    .shape = shape,
};
