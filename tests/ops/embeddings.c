/* Test module of the embeddings lookup: exact (rows widened from bf16). The last row and
 * row 0 are always looked up.
 *
 * Case fields: t = tokens, c = channels, r = vocabulary. */
#include <stdio.h>

#include "ops.h"
#include "reference/reference.h"

static const struct tc_case cases[] = {
    {"embeddings_1tok_1ch_vocab1", .t = 1, .c = 1, .r = 1, .flags = TC_QUICK},
    {"embeddings_odd_3tok_19ch_vocab130", .t = 3, .c = 19, .r = 130, .flags = TC_QUICK},
    {"embeddings_seed_vocab1024_dim256_16tok", .t = 16, .c = 256, .r = 1024, .flags = TC_QUICK},
    {"embeddings_odd_130tok_2881ch_vocab19", .t = 130, .c = 2881, .r = 19},
    {"embeddings_20b_decode_1tok_vocab200014", .t = 1, .c = 2880, .r = 200014, .flags = TC_BENCH},
    {"embeddings_20b_prefill512_vocab201088", .t = 512, .c = 2880, .r = 201088},
};

static void make(struct tc_problem* p, struct tc_rng* rng) {
    const uint32_t T = p->c->t, C = p->c->c, R = p->c->r;
    uint32_t* ids = tc_add_buffer(p, "token_ids", TC_IN, TC_U32, T);
    gptoss_bf16* w = tc_add_buffer(p, "weight", TC_IN, TC_BF16, (size_t) R * C);
    tc_add_buffer(p, "output", TC_OUT, TC_F32, (size_t) T * C);
    if (!ids || !w) return;
    for (uint32_t t = 0; t < T; t++) ids[t] = (uint32_t) (tc_rng_u64(rng) % R);
    ids[0] = R - 1;
    if (T > 1) ids[1] = 0;
    tc_fill_bf16(rng, w, (size_t) R * C, -1.0f, 1.0f);
}

static void args(const struct tc_problem* p, void* const d[], union gptoss_kernel_args* a) {
    a->bf16_f32_embeddings = (struct gptoss_bf16_f32_embeddings_args){d[0], d[1], d[2], p->c->t, p->c->c, p->c->r};
}

static void expect(const struct tc_problem* p, struct tc_expect* ex) {
    const size_t n = (size_t) p->c->t * p->c->c;
    void* host[3] = {p->b[0].host, p->b[1].host, tc_add_span(ex, 2, 0, n, true, 4, "all")->exact};
    union gptoss_kernel_args a;
    args(p, host, &a);
    gptoss_ref_bf16_f32_embeddings(&a.bf16_f32_embeddings);
}

/* ids, rows read, output */
static double bytes(const struct tc_case* c) { return 4.0 * c->t + 2.0 * c->t * c->c + 4.0 * c->t * c->c; }

const struct tc_op tc_op_bf16_f32_embeddings = {
    gptoss_kernel_bf16_f32_embeddings,
    TC_CASES(cases),
    .make = make,
    .args = args,
    .expect = expect,
    .bytes = bytes,
    .shape = tc_shape_rows,
};
