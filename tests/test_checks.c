/* Argument checks of the public kernel functions (src/kernels/).
 *
 * Every case calls one kernel on the CPU backend with valid defaults and exactly one bad
 * argument, and asserts: the expected status, a message naming the argument, and that
 * nothing in the test arena changed (all outputs are pre-filled with a sentinel pattern;
 * the whole arena is compared byte for byte). "*_valid" cases make sure the checks accept
 * the defaults (and documented edge values such as a NULL bias or rmsnorm in place).
 *
 * Output: one line per case, then "N passed, N failed, 0 skipped". */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gptoss/kernel-args.h>
#include <gptoss/kernels.h>

#define INV gptoss_status_invalid_argument
#define UNS gptoss_status_unsupported_argument
#define OK gptoss_status_success

/* All buffers the cases use; compared as a whole after every failing call. */
static struct arena {
    _Alignas(64) float x[4096];      /* f32 inputs */
    _Alignas(64) float z[64];        /* f32 small inputs (expert scores) */
    _Alignas(64) float kv[4096];     /* KV cache (input of sdpa) */
    _Alignas(64) float y[4096];      /* f32 output, sentinel */
    _Alignas(64) float y2[64];       /* second f32 output, sentinel */
    _Alignas(64) float kvout[4096];  /* KV cache written by qkv, sentinel */
    _Alignas(64) float fsum[16];     /* *sum of f32_sample */
    _Alignas(64) gptoss_bf16 w[8192];   /* bf16 weights */
    _Alignas(64) gptoss_bf16 bias[512]; /* bf16 bias / sinks */
    _Alignas(64) gptoss_bf16 wout[512]; /* bf16 output, sentinel */
    _Alignas(64) uint32_t tok[16];      /* token ids */
    _Alignas(64) uint32_t ids[64];      /* expert ids */
    _Alignas(64) uint32_t offsets[64];  /* expert offsets */
    _Alignas(64) uint32_t intra[64];    /* intra-expert offsets */
    _Alignas(64) uint32_t argm[64];     /* argmax input of softmax */
    _Alignas(64) uint32_t uout[64];     /* u32 output, sentinel */
    _Alignas(64) uint32_t uout2[64];    /* second u32 output, sentinel */
    _Alignas(64) uint8_t blocks[64];    /* MXFP4 blocks of mf4_f32_convert */
    _Alignas(64) uint8_t scales[64];
    _Alignas(64) uint8_t moe[8 * 576];  /* 8 experts x (512 B blocks + 32 B scales + 32 B bias) */
    _Alignas(64) uint32_t pos[16];      /* varlen: positions of the rows */
    _Alignas(64) uint32_t seqs[16];     /* varlen: sequences of the rows */
    _Alignas(64) uint32_t tables[16];   /* varlen: block tables [2][4] */
} A;
static unsigned char g_shadow[sizeof(struct arena)];
static gptoss_backend_t B;
static int g_passed, g_failed;

#define MOE_STRIDE 576
#define MIS(p, n) ((void*) ((char*) (p) + (n)))

static void reset_arena(void) {
    memset(&A, 0xA5, sizeof A); /* sentinel everywhere; inputs overwritten below */
    for (int i = 0; i < 4096; i++) A.x[i] = 0.25f + (float) (i % 7) * 0.125f;
    for (int i = 0; i < 64; i++) A.z[i] = 0.5f;
    for (int i = 0; i < 4096; i++) A.kv[i] = 0.125f * (float) (i % 5) - 0.25f;
    float total = 0.0f;
    for (int i = 0; i < 16; i++) total += A.x[i];
    A.fsum[0] = total;
    for (int i = 0; i < 8192; i++) A.w[i].bits = (uint16_t) (0x3E80 + (i % 3)); /* ~0.25 */
    for (int i = 0; i < 512; i++) A.bias[i].bits = 0x3C00;                     /* 2^-7 */
    A.tok[0] = 3;
    A.tok[1] = 15;
    /* routing of 2 tokens x 2 slots over 8 experts: pairs -> experts {1, 3, 3, 0} */
    static const uint32_t ids[4] = {1, 3, 3, 0};
    static const uint32_t offsets[9] = {0, 1, 2, 2, 4, 4, 4, 4, 4};
    static const uint32_t intra[4] = {0, 0, 1, 0};
    memcpy(A.ids, ids, sizeof ids);
    memcpy(A.offsets, offsets, sizeof offsets);
    memcpy(A.intra, intra, sizeof intra);
    A.argm[0] = 2;
    A.argm[1] = 5;
    /* varlen: rows (sequence 0, position 3) and (sequence 1, position 5), blocks of 4 slots */
    static const uint32_t pos[2] = {3, 5}, seqs[2] = {0, 1}, tables[8] = {2, 5, 7, 1, 4, 0, 3, 6};
    memcpy(A.pos, pos, sizeof pos);
    memcpy(A.seqs, seqs, sizeof seqs);
    memcpy(A.tables, tables, sizeof tables);
    memset(A.blocks, 0x21, sizeof A.blocks);
    memset(A.scales, 127, sizeof A.scales);
    for (int e = 0; e < 8; e++) {
        uint8_t* base = A.moe + e * MOE_STRIDE;
        memset(base, 0x21, 512);
        memset(base + 512, 130, 32);
        for (int r = 0; r < 16; r++) memcpy(base + 544 + 2 * r, &A.bias[0], 2);
    }
}

static void run_case(const char* name, enum gptoss_status got, enum gptoss_status want, const char* arg) {
    const char* message = gptoss_last_error();
    char why[512] = "";
    if (got != want) {
        snprintf(why, sizeof why, "status %s, expected %s (message: \"%s\")", gptoss_status_to_string(got),
                 gptoss_status_to_string(want), message);
    } else if (want != OK) {
        if (arg != NULL && strstr(message, arg) == NULL) {
            snprintf(why, sizeof why, "message \"%s\" does not name \"%s\"", message, arg);
        } else if (memcmp(&A, g_shadow, sizeof A) != 0) {
            snprintf(why, sizeof why, "buffers were modified by a rejected call");
        }
    }
    if (why[0] == '\0') {
        g_passed++;
        printf("PASS %s%s%s\n", name, want != OK ? ": " : "", want != OK ? message : "");
    } else {
        g_failed++;
        printf("FAIL %s: %s\n", name, why);
    }
}

/* T(kind, name, expected status, argument name, mutations...): fresh arena, default
 * arguments `a` of the kind, the mutations, snapshot, call, verdict. */
#define T(kind, name, want, arg, ...)                                  \
    do {                                                               \
        reset_arena();                                                 \
        struct kind##_args a = kind##_defaults();                      \
        __VA_ARGS__;                                                   \
        memcpy(g_shadow, &A, sizeof A);                                \
        enum gptoss_status got_ = call_##kind(&a);                     \
        run_case(name, got_, want, arg);                               \
    } while (0)

/* ---------------------------------------------------------------- argument sets */

struct fill_args { gptoss_backend_t b; void* out; uint64_t n, seed, offset; float min, max; int type; };
static struct fill_args fill_defaults(void) {
    return (struct fill_args){B, NULL, 16, 1, 0, -1.0f, 1.0f, 0};
}
static enum gptoss_status call_fill(struct fill_args* a) {
    switch (a->type) {
        case 0: return gptoss_u32_fill_random(a->b, a->out, a->n, a->seed, a->offset);
        case 1: return gptoss_f32_fill_random(a->b, a->out, a->n, a->seed, a->offset, a->min, a->max);
        default: return gptoss_bf16_fill_random(a->b, a->out, a->n, a->seed, a->offset, a->min, a->max);
    }
}

struct convert_args { gptoss_backend_t b; const uint8_t* blocks; const uint8_t* scales; float* out; uint64_t n; };
static struct convert_args convert_defaults(void) { return (struct convert_args){B, A.blocks, A.scales, A.y, 64}; }
static enum gptoss_status call_convert(struct convert_args* a) {
    return gptoss_mf4_f32_convert(a->b, a->blocks, a->scales, a->out, a->n);
}

struct emb_args { gptoss_backend_t b; const uint32_t* ids; const gptoss_bf16* w; float* out; uint32_t t, c, v; };
static struct emb_args emb_defaults(void) { return (struct emb_args){B, A.tok, A.w, A.y, 2, 64, 16}; }
static enum gptoss_status call_emb(struct emb_args* a) {
    return gptoss_bf16_f32_embeddings(a->b, a->ids, a->w, a->out, a->t, a->c, a->v);
}

struct rms_args { gptoss_backend_t b; const float* in; const gptoss_bf16* w; float* out; uint32_t t, c; float eps; };
static struct rms_args rms_defaults(void) { return (struct rms_args){B, A.x, A.w, A.y, 2, 64, 1e-5f}; }
static enum gptoss_status call_rms(struct rms_args* a) {
    return gptoss_f32_bf16w_rmsnorm(a->b, a->in, a->w, a->out, a->t, a->c, a->eps);
}

struct mm_args {
    gptoss_backend_t b; const float* in; const gptoss_bf16* w; const gptoss_bf16* bias; float* out;
    uint32_t t, c, r; int which;
};
static struct mm_args mm_defaults(void) { return (struct mm_args){B, A.x, A.w, A.bias, A.y, 2, 64, 8, 0}; }
static enum gptoss_status call_mm(struct mm_args* a) {
    switch (a->which) {
        case 0: return gptoss_f32_bf16w_matmul(a->b, a->in, a->w, a->bias, a->out, a->t, a->c, a->r);
        case 1: return gptoss_f32_bf16w_matmul_add(a->b, a->in, a->w, a->bias, a->out, a->t, a->c, a->r);
        case 2: return gptoss_f32_bf16w_dense_matmul_qkv(a->b, a->in, a->w, a->bias, a->out, a->t, a->c, a->r);
        case 3: return gptoss_f32_bf16w_dense_matmul_attn_output(a->b, a->in, a->w, a->bias, a->out, a->t, a->c, a->r);
        default: return gptoss_f32_bf16w_dense_matmul_mlp_gate(a->b, a->in, a->w, a->bias, a->out, a->t, a->c, a->r);
    }
}

struct qkv_args {
    gptoss_backend_t b; const float* in; const gptoss_bf16* w; const gptoss_bf16* bias; float* out; float* kv;
    uint32_t t, c, hq, hkv, d, offset, max; float base, interp, yoff, yscale, ymul;
};
static struct qkv_args qkv_defaults(void) {
    return (struct qkv_args){B, A.x, A.w, A.bias, A.y, A.kvout, 2, 64, 4, 2, 8, 1, 8, 10000.0f, 1.0f, 0.0f, 1.0f, 1.0f};
}
static enum gptoss_status call_qkv(struct qkv_args* a) {
    return gptoss_f32_bf16w_matmul_qkv(a->b, a->in, a->w, a->bias, a->out, a->kv, a->t, a->c, a->hq, a->hkv, a->d,
                                       a->offset, a->max, a->base, a->interp, a->yoff, a->yscale, a->ymul);
}

struct rope_args {
    gptoss_backend_t b; float* act; float base, interp, yoff, yscale, ymul; uint32_t t, hq, hkv, d, offset;
};
static struct rope_args rope_defaults(void) {
    return (struct rope_args){B, A.y, 10000.0f, 1.0f, 0.0f, 1.0f, 1.0f, 2, 4, 2, 8, 3};
}
static enum gptoss_status call_rope(struct rope_args* a) {
    return gptoss_f32_rope(a->b, a->act, a->base, a->interp, a->yoff, a->yscale, a->ymul, a->t, a->hq, a->hkv, a->d,
                           a->offset);
}

struct sdpa_args {
    gptoss_backend_t b; const float* q; const float* kv; const gptoss_bf16* sinks; float* out; uint32_t window;
    uint64_t kv_stride; uint32_t tq, tkv, hq, hkv, d; float scale;
};
static struct sdpa_args sdpa_defaults(void) {
    return (struct sdpa_args){B, A.x, A.kv, A.bias, A.y, UINT32_MAX, 128, 2, 3, 4, 2, 8, 0.35f};
}
static enum gptoss_status call_sdpa(struct sdpa_args* a) {
    return gptoss_f32_sdpa(a->b, a->q, a->kv, a->sinks, a->out, a->window, a->kv_stride, a->tq, a->tkv, a->hq,
                           a->hkv, a->d, a->scale);
}

/* varlen: 2 kv heads x kv_stride 1024 floats = 16 blocks of 4 slots of 2 x 8 floats */
struct qkvv_args {
    gptoss_backend_t b; const float* in; const gptoss_bf16* w; const gptoss_bf16* bias; float* out; float* kv;
    const uint32_t *pos, *seqs, *tables; uint32_t t, c, hq, hkv, d; uint64_t kv_stride; uint32_t bs, ts, ns;
    float base, interp, yoff, yscale, ymul;
};
static struct qkvv_args qkvv_defaults(void) {
    return (struct qkvv_args){B, A.x, A.w, A.bias, A.y, A.kvout, A.pos, A.seqs, A.tables, 2, 64, 4, 2, 8, 1024, 4, 4,
                              2, 10000.0f, 1.0f, 0.0f, 1.0f, 1.0f};
}
static enum gptoss_status call_qkvv(struct qkvv_args* a) {
    return gptoss_f32_bf16w_matmul_qkv_varlen(a->b, a->in, a->w, a->bias, a->out, a->kv, a->pos, a->seqs, a->tables,
                                              a->t, a->c, a->hq, a->hkv, a->d, a->kv_stride, a->bs, a->ts, a->ns,
                                              a->base, a->interp, a->yoff, a->yscale, a->ymul);
}

struct sdpav_args {
    gptoss_backend_t b; const float* q; const float* kv; const gptoss_bf16* sinks; float* out;
    const uint32_t *pos, *seqs, *tables; uint32_t window; uint64_t kv_stride; uint32_t bs, ts, tq, ns, hq, hkv, d;
    float scale;
};
static struct sdpav_args sdpav_defaults(void) {
    return (struct sdpav_args){B, A.x, A.kv, A.bias, A.y, A.pos, A.seqs, A.tables, UINT32_MAX, 1024, 4, 4, 2, 2, 4, 2,
                               8, 0.35f};
}
static enum gptoss_status call_sdpav(struct sdpav_args* a) {
    return gptoss_f32_sdpa_varlen(a->b, a->q, a->kv, a->sinks, a->out, a->pos, a->seqs, a->tables, a->window,
                                  a->kv_stride, a->bs, a->ts, a->tq, a->ns, a->hq, a->hkv, a->d, a->scale);
}

struct unemb_args { gptoss_backend_t b; const float* in; const gptoss_bf16* w; float* logits; uint32_t* argmax; uint32_t t, c, r; };
static struct unemb_args unemb_defaults(void) { return (struct unemb_args){B, A.x, A.w, A.y, A.uout, 2, 64, 16}; }
static enum gptoss_status call_unemb(struct unemb_args* a) {
    return gptoss_f32_bf16w_unembedding(a->b, a->in, a->w, a->logits, a->argmax, a->t, a->c, a->r);
}

struct topk_args { gptoss_backend_t b; const float* scores; uint32_t* ids; float* out_scores; uint32_t t, e, k; };
static struct topk_args topk_defaults(void) { return (struct topk_args){B, A.x, A.uout, A.y, 2, 8, 2}; }
static enum gptoss_status call_topk(struct topk_args* a) {
    return gptoss_f32_topk(a->b, a->scores, a->ids, a->out_scores, a->t, a->e, a->k);
}

struct meta_args { gptoss_backend_t b; const uint32_t* ids; uint32_t* offsets; uint32_t* intra; uint32_t p, e; };
static struct meta_args meta_defaults(void) { return (struct meta_args){B, A.ids, A.uout, A.uout2, 4, 8}; }
static enum gptoss_status call_meta(struct meta_args* a) {
    return gptoss_expert_routing_metadata(a->b, a->ids, a->offsets, a->intra, a->p, a->e);
}

struct scatter_args {
    gptoss_backend_t b; const float* in; const uint32_t* ids; const uint32_t* offsets; const uint32_t* intra;
    float* out; uint32_t c, t, k, e;
};
static struct scatter_args scatter_defaults(void) {
    return (struct scatter_args){B, A.x, A.ids, A.offsets, A.intra, A.y, 64, 2, 2, 8};
}
static enum gptoss_status call_scatter(struct scatter_args* a) {
    return gptoss_f32_scatter(a->b, a->in, a->ids, a->offsets, a->intra, a->out, a->c, a->t, a->k, a->e);
}

struct gather_args {
    gptoss_backend_t b; const float* in; const uint32_t* ids; const float* scores; const uint32_t* offsets;
    const uint32_t* intra; float* res; uint32_t c, t, k, e;
};
static struct gather_args gather_defaults(void) {
    return (struct gather_args){B, A.x, A.ids, A.z, A.offsets, A.intra, A.y, 64, 2, 2, 8};
}
static enum gptoss_status call_gather(struct gather_args* a) {
    return gptoss_f32_gather_and_accumulate(a->b, a->in, a->ids, a->scores, a->offsets, a->intra, a->res, a->c,
                                            a->t, a->k, a->e);
}

struct acc_args { gptoss_backend_t b; const float* in; const float* scores; float* res; uint32_t c, t, k; };
static struct acc_args acc_defaults(void) { return (struct acc_args){B, A.x, A.z, A.y, 64, 2, 2}; }
static enum gptoss_status call_acc(struct acc_args* a) {
    return gptoss_f32_accumulate(a->b, a->in, a->scores, a->res, a->c, a->t, a->k);
}

struct accrms_args {
    gptoss_backend_t b; const float* in; const float* scores; float* res; const gptoss_bf16* w; float* out;
    uint32_t c, t, k; float eps;
};
static struct accrms_args accrms_defaults(void) {
    return (struct accrms_args){B, A.x, A.z, A.y, A.w, A.kvout, 64, 2, 2, 1e-5f};
}
static enum gptoss_status call_accrms(struct accrms_args* a) {
    return gptoss_f32_accumulate_bf16w_rmsnorm(a->b, a->in, a->scores, a->res, a->w, a->out, a->c, a->t, a->k,
                                               a->eps);
}

/* the fused MoE gate: 2 tokens x 64 channels, 8 experts, 2 active */
struct gate_args {
    gptoss_backend_t b; const float* in; const gptoss_bf16* nw; float* out; const gptoss_bf16* rw;
    const gptoss_bf16* rb; float* scores; uint32_t* ids; float* es; uint32_t t, c, e, k; float eps;
};
static struct gate_args gate_defaults(void) {
    return (struct gate_args){B, A.x, A.w, A.y, A.w + 64, A.bias, A.kvout, A.uout, A.y2, 2, 64, 8, 2, 1e-5f};
}
static enum gptoss_status call_gate(struct gate_args* a) {
    return gptoss_f32_bf16w_rmsnorm_matmul_topk(a->b, a->in, a->nw, a->out, a->rw, a->rb, a->scores, a->ids, a->es,
                                                a->t, a->c, a->e, a->k, a->eps);
}

/* which: 0 decode swiglu, 1 decode, 2 dense swiglu, 3 dense. routing = ids (decode) or
 * offsets (dense). */
struct moe_args {
    gptoss_backend_t b; const float* in; const uint32_t* routing; const uint8_t* wb; const uint8_t* ws;
    const gptoss_bf16* bias; size_t stride; float* out; uint32_t t, k, e, c, r; float limit; int which;
};
static struct moe_args moe_defaults(void) {
    return (struct moe_args){B, A.x, A.ids, A.moe, A.moe + 512, (const gptoss_bf16*) (A.moe + 544), MOE_STRIDE,
                             A.y, 2, 2, 8, 64, 8, 7.0f, 0};
}
static enum gptoss_status call_moe(struct moe_args* a) {
    switch (a->which) {
        case 0: return gptoss_f32_mf4w_moe_matmul_swiglu(a->b, a->in, a->routing, a->wb, a->ws, a->bias, a->stride,
                                                          a->out, a->t, a->k, a->e, a->c, a->r, a->limit);
        case 1: return gptoss_f32_mf4w_moe_matmul(a->b, a->in, a->routing, a->wb, a->ws, a->bias, a->stride, a->out,
                                                  a->t, a->k, a->e, a->c, a->r);
        case 2: return gptoss_f32_mf4w_moe_dense_matmul_swiglu(a->b, a->routing, a->in, a->wb, a->ws, a->bias,
                                                                a->stride, a->out, a->t, a->k, a->e, a->c, a->r,
                                                                a->limit);
        default: return gptoss_f32_mf4w_moe_dense_matmul(a->b, a->routing, a->in, a->wb, a->ws, a->bias, a->stride,
                                                         a->out, a->t, a->k, a->e, a->c, a->r);
    }
}
#define DENSE(w) a.which = (w); a.routing = A.offsets

struct softmax_args {
    gptoss_backend_t b; const float* logits; const uint32_t* argmax; float* prob; float* sum; uint32_t t, v; float temp;
};
static struct softmax_args softmax_defaults(void) {
    return (struct softmax_args){B, A.x, A.argm, A.y, A.y2, 2, 16, 0.7f};
}
static enum gptoss_status call_softmax(struct softmax_args* a) {
    return gptoss_f32_softmax(a->b, a->logits, a->argmax, a->prob, a->sum, a->t, a->v, a->temp);
}

struct sample_args { gptoss_backend_t b; const float* prob; const float* sum; uint32_t* pred; uint32_t v; uint64_t seed, offset; };
static struct sample_args sample_defaults(void) { return (struct sample_args){B, A.x, A.fsum, A.uout, 16, 5, 9}; }
static enum gptoss_status call_sample(struct sample_args* a) {
    return gptoss_f32_sample(a->b, a->prob, a->sum, a->pred, a->v, a->seed, a->offset);
}

struct penalties_args {
    gptoss_backend_t b; const float* logits; const uint32_t* counts; float* out; uint32_t v; float presence, frequency;
};
static struct penalties_args penalties_defaults(void) {
    return (struct penalties_args){B, A.x, A.tok, A.y, 16, 0.5f, 0.25f};
}
static enum gptoss_status call_penalties(struct penalties_args* a) {
    return gptoss_f32_apply_penalties(a->b, a->logits, a->counts, a->out, a->v, a->presence, a->frequency);
}

struct sample_logits_args {
    gptoss_backend_t b; const float* logits; uint32_t* pred; uint32_t v; float temp; uint32_t k; float p;
    uint64_t seed, offset;
};
static struct sample_logits_args sample_logits_defaults(void) {
    return (struct sample_logits_args){B, A.x, A.uout, 16, 0.7f, 4, 0.9f, 5, 9};
}
static enum gptoss_status call_sample_logits(struct sample_logits_args* a) {
    return gptoss_f32_sample_logits(a->b, a->logits, a->pred, a->v, a->temp, a->k, a->p, a->seed, a->offset);
}

/* ---------------------------------------------------------------- cases */

static void fill_cases(void) {
    static const char* const names[3] = {"u32_fill_random", "f32_fill_random", "bf16_fill_random"};
    static const int align[3] = {4, 4, 2};
    char n[128];
    for (int type = 0; type < 3; type++) {
#define NAME(s) (snprintf(n, sizeof n, "%s_%s", names[type], s), n)
#define SETUP a.type = type; a.out = type == 0 ? (void*) A.uout : type == 1 ? (void*) A.y : (void*) A.wout
        T(fill, NAME("valid"), OK, NULL, SETUP);
        T(fill, NAME("backend_null"), INV, "backend", SETUP; a.b = NULL);
        T(fill, NAME("output_null"), INV, "output", SETUP; a.out = NULL);
        T(fill, NAME("output_misaligned"), INV, "output", SETUP; a.out = MIS(a.out, align[type] - 1));
        T(fill, NAME("num_elements_zero"), INV, "num_elements", SETUP; a.n = 0);
        T(fill, NAME("num_elements_size_overflow"), INV, "num_elements", SETUP; a.n = UINT64_MAX);
        if (type == 0) continue;
        T(fill, NAME("min_nan"), INV, "min", SETUP; a.min = NAN);
        T(fill, NAME("min_minus_inf"), INV, "min", SETUP; a.min = -INFINITY);
        T(fill, NAME("max_inf"), INV, "max", SETUP; a.max = INFINITY);
        T(fill, NAME("min_equal_max"), INV, "min", SETUP; a.min = 1.0f);
        T(fill, NAME("min_above_max"), INV, "min", SETUP; a.min = 2.0f);
        T(fill, NAME("range_overflows_f32"), INV, "max", SETUP; a.min = -3e38f; a.max = 3e38f);
#undef SETUP
#undef NAME
    }
}

static void convert_cases(void) {
    T(convert, "mf4_f32_convert_valid", OK, NULL, );
    T(convert, "mf4_f32_convert_backend_null", INV, "backend", a.b = NULL);
    T(convert, "mf4_f32_convert_blocks_null", INV, "blocks", a.blocks = NULL);
    T(convert, "mf4_f32_convert_scales_null", INV, "scales", a.scales = NULL);
    T(convert, "mf4_f32_convert_output_null", INV, "output", a.out = NULL);
    T(convert, "mf4_f32_convert_output_misaligned", INV, "output", a.out = MIS(A.y, 2));
    T(convert, "mf4_f32_convert_num_elements_zero", INV, "num_elements", a.n = 0);
    T(convert, "mf4_f32_convert_num_elements_not_multiple_of_32", INV, "num_elements", a.n = 48);
    T(convert, "mf4_f32_convert_num_elements_size_overflow", INV, "num_elements", a.n = UINT64_MAX - 31);
    T(convert, "mf4_f32_convert_output_overlaps_blocks", INV, "output", a.out = (float*) (void*) A.blocks);
}

static void embeddings_cases(void) {
    T(emb, "embeddings_valid", OK, NULL, );
    T(emb, "embeddings_backend_null", INV, "backend", a.b = NULL);
    T(emb, "embeddings_token_ids_null", INV, "token_ids", a.ids = NULL);
    T(emb, "embeddings_weight_null", INV, "weight", a.w = NULL);
    T(emb, "embeddings_output_null", INV, "output", a.out = NULL);
    T(emb, "embeddings_token_ids_misaligned", INV, "token_ids", a.ids = MIS(A.tok, 2));
    T(emb, "embeddings_weight_misaligned", INV, "weight", a.w = MIS(A.w, 1));
    T(emb, "embeddings_output_misaligned", INV, "output", a.out = MIS(A.y, 1));
    T(emb, "embeddings_num_tokens_zero", INV, "num_tokens", a.t = 0);
    T(emb, "embeddings_num_channels_zero", INV, "num_channels", a.c = 0);
    T(emb, "embeddings_vocabulary_size_zero", INV, "vocabulary_size", a.v = 0);
    T(emb, "embeddings_output_size_overflow", INV, "num_tokens", a.t = UINT32_MAX; a.c = UINT32_MAX);
    T(emb, "embeddings_output_overlaps_weight", INV, "output", a.out = (float*) (void*) A.w);
    T(emb, "embeddings_token_id_not_below_vocabulary_size", INV, "token_ids[1]", A.tok[1] = 16);
    T(emb, "embeddings_token_id_huge", INV, "vocabulary_size", A.tok[0] = 200020);
}

static void rmsnorm_cases(void) {
    T(rms, "rmsnorm_valid", OK, NULL, );
    T(rms, "rmsnorm_in_place_valid", OK, NULL, a.out = A.x);
    T(rms, "rmsnorm_zero_epsilon_valid", OK, NULL, a.eps = 0.0f);
    T(rms, "rmsnorm_backend_null", INV, "backend", a.b = NULL);
    T(rms, "rmsnorm_input_null", INV, "input", a.in = NULL);
    T(rms, "rmsnorm_weight_null", INV, "weight", a.w = NULL);
    T(rms, "rmsnorm_output_null", INV, "output", a.out = NULL);
    T(rms, "rmsnorm_input_misaligned", INV, "input", a.in = MIS(A.x, 2));
    T(rms, "rmsnorm_weight_misaligned", INV, "weight", a.w = MIS(A.w, 1));
    T(rms, "rmsnorm_output_misaligned", INV, "output", a.out = MIS(A.y, 3));
    T(rms, "rmsnorm_num_tokens_zero", INV, "num_tokens", a.t = 0);
    T(rms, "rmsnorm_num_channels_zero", INV, "num_channels", a.c = 0);
    T(rms, "rmsnorm_epsilon_negative", INV, "epsilon", a.eps = -1e-5f);
    T(rms, "rmsnorm_epsilon_nan", INV, "epsilon", a.eps = NAN);
    T(rms, "rmsnorm_epsilon_inf", INV, "epsilon", a.eps = INFINITY);
    T(rms, "rmsnorm_size_overflow", INV, "num_tokens", a.t = UINT32_MAX; a.c = UINT32_MAX);
    T(rms, "rmsnorm_output_partially_overlaps_input", INV, "output", a.out = A.x + 1);
    T(rms, "rmsnorm_output_overlaps_weight", INV, "output", a.out = (float*) (void*) A.w);
}

static void matmul_cases(void) {
    static const char* const names[5] = {"matmul", "matmul_add", "dense_matmul_qkv", "dense_matmul_attn_output",
                                         "dense_matmul_mlp_gate"};
    char n[128];
    for (int which = 0; which < 5; which++) {
#define NAME(s) (snprintf(n, sizeof n, "%s_%s", names[which], s), n)
        T(mm, NAME("valid"), OK, NULL, a.which = which);
        T(mm, NAME("bias_null_valid"), OK, NULL, a.which = which; a.bias = NULL);
        T(mm, NAME("backend_null"), INV, "backend", a.which = which; a.b = NULL);
        T(mm, NAME("input_null"), INV, "input", a.which = which; a.in = NULL);
        T(mm, NAME("weight_null"), INV, "weight", a.which = which; a.w = NULL);
        T(mm, NAME("output_null"), INV, "output", a.which = which; a.out = NULL);
        T(mm, NAME("input_misaligned"), INV, "input", a.which = which; a.in = MIS(A.x, 2));
        T(mm, NAME("weight_misaligned"), INV, "weight", a.which = which; a.w = MIS(A.w, 1));
        T(mm, NAME("bias_misaligned"), INV, "bias", a.which = which; a.bias = MIS(A.bias, 1));
        T(mm, NAME("output_misaligned"), INV, "output", a.which = which; a.out = MIS(A.y, 2));
        T(mm, NAME("num_tokens_zero"), INV, "num_tokens", a.which = which; a.t = 0);
        T(mm, NAME("num_cols_zero"), INV, "num_cols", a.which = which; a.c = 0);
        T(mm, NAME("num_rows_zero"), INV, "num_rows", a.which = which; a.r = 0);
        T(mm, NAME("input_size_overflow"), INV, "num_cols", a.which = which; a.t = UINT32_MAX; a.c = UINT32_MAX);
        T(mm, NAME("output_overlaps_input"), INV, "overlaps input", a.which = which; a.out = A.x + 100);
        T(mm, NAME("output_overlaps_weight"), INV, "overlaps weight", a.which = which; a.out = (float*) (void*) A.w);
        T(mm, NAME("output_overlaps_bias"), INV, "overlaps bias", a.which = which; a.out = (float*) (void*) A.bias);
#undef NAME
    }
}

static void qkv_cases(void) {
    T(qkv, "matmul_qkv_valid", OK, NULL, );
    T(qkv, "matmul_qkv_bias_null_valid", OK, NULL, a.bias = NULL);
    T(qkv, "matmul_qkv_last_position_valid", OK, NULL, a.offset = 6);
    T(qkv, "matmul_qkv_backend_null", INV, "backend", a.b = NULL);
    T(qkv, "matmul_qkv_input_null", INV, "input", a.in = NULL);
    T(qkv, "matmul_qkv_weight_null", INV, "weight", a.w = NULL);
    T(qkv, "matmul_qkv_output_null", INV, "output", a.out = NULL);
    T(qkv, "matmul_qkv_kv_cache_null", INV, "kv_cache", a.kv = NULL);
    T(qkv, "matmul_qkv_input_misaligned", INV, "input", a.in = MIS(A.x, 2));
    T(qkv, "matmul_qkv_weight_misaligned", INV, "weight", a.w = MIS(A.w, 1));
    T(qkv, "matmul_qkv_bias_misaligned", INV, "bias", a.bias = MIS(A.bias, 1));
    T(qkv, "matmul_qkv_output_misaligned", INV, "output", a.out = MIS(A.y, 2));
    T(qkv, "matmul_qkv_kv_cache_misaligned", INV, "kv_cache", a.kv = MIS(A.kvout, 2));
    T(qkv, "matmul_qkv_num_tokens_zero", INV, "num_tokens", a.t = 0);
    T(qkv, "matmul_qkv_num_cols_zero", INV, "num_cols", a.c = 0);
    T(qkv, "matmul_qkv_num_q_heads_zero", INV, "num_q_heads", a.hq = 0);
    T(qkv, "matmul_qkv_num_kv_heads_zero", INV, "num_kv_heads", a.hkv = 0);
    T(qkv, "matmul_qkv_head_dim_zero", INV, "head_dim", a.d = 0);
    T(qkv, "matmul_qkv_max_tokens_zero", INV, "max_tokens", a.max = 0);
    T(qkv, "matmul_qkv_num_q_heads_not_multiple_of_kv_heads", INV, "num_q_heads", a.hq = 63; a.hkv = 8);
    T(qkv, "matmul_qkv_head_dim_odd", INV, "head_dim", a.d = 7);
    T(qkv, "matmul_qkv_token_offset_past_max_tokens", INV, "token_offset", a.offset = 7);
    T(qkv, "matmul_qkv_token_offset_sum_overflows_u32", INV, "max_tokens", a.offset = UINT32_MAX; a.max = UINT32_MAX);
    T(qkv, "matmul_qkv_rope_base_zero", INV, "rope_base", a.base = 0.0f);
    T(qkv, "matmul_qkv_rope_base_negative", INV, "rope_base", a.base = -1.0f);
    T(qkv, "matmul_qkv_rope_base_nan", INV, "rope_base", a.base = NAN);
    T(qkv, "matmul_qkv_interpolation_scale_nan", INV, "interpolation_scale", a.interp = NAN);
    T(qkv, "matmul_qkv_yarn_offset_inf", INV, "yarn_offset", a.yoff = INFINITY);
    T(qkv, "matmul_qkv_yarn_scale_nan", INV, "yarn_scale", a.yscale = NAN);
    T(qkv, "matmul_qkv_yarn_multiplier_inf", INV, "yarn_multiplier", a.ymul = -INFINITY);
    T(qkv, "matmul_qkv_qkv_dim_exceeds_u32", UNS, "head_dim", a.d = 1u << 31; a.hq = 1; a.hkv = 1);
    T(qkv, "matmul_qkv_qkv_dim_overflows_u64", INV, "head_dim", a.d = UINT32_MAX - 1; a.hq = UINT32_MAX; a.hkv = UINT32_MAX);
    T(qkv, "matmul_qkv_input_size_overflow", INV, "num_cols", a.t = UINT32_MAX; a.c = UINT32_MAX; a.max = UINT32_MAX; a.offset = 0);
    T(qkv, "matmul_qkv_output_overlaps_input", INV, "overlaps input", a.out = A.x + 64);
    T(qkv, "matmul_qkv_output_overlaps_weight", INV, "overlaps weight", a.out = (float*) (void*) A.w);
    T(qkv, "matmul_qkv_kv_cache_overlaps_output", INV, "kv_cache overlaps output", a.kv = A.y + 100);
    T(qkv, "matmul_qkv_kv_cache_overlaps_input", INV, "kv_cache overlaps input", a.kv = A.x);
}

static void rope_cases(void) {
    T(rope, "rope_valid", OK, NULL, );
    T(rope, "rope_token_offset_zero_valid", OK, NULL, a.offset = 0);
    T(rope, "rope_backend_null", INV, "backend", a.b = NULL);
    T(rope, "rope_activations_null", INV, "activations", a.act = NULL);
    T(rope, "rope_activations_misaligned", INV, "activations", a.act = MIS(A.y, 2));
    T(rope, "rope_num_tokens_zero", INV, "num_tokens", a.t = 0);
    T(rope, "rope_num_q_heads_zero", INV, "num_q_heads", a.hq = 0);
    T(rope, "rope_num_kv_heads_zero", INV, "num_kv_heads", a.hkv = 0);
    T(rope, "rope_head_dim_zero", INV, "head_dim", a.d = 0);
    T(rope, "rope_num_q_heads_not_multiple_of_kv_heads", INV, "num_q_heads", a.hq = 5);
    T(rope, "rope_head_dim_odd", INV, "head_dim", a.d = 9);
    T(rope, "rope_rope_base_zero", INV, "rope_base", a.base = 0.0f);
    T(rope, "rope_rope_base_inf", INV, "rope_base", a.base = INFINITY);
    T(rope, "rope_interpolation_scale_inf", INV, "interpolation_scale", a.interp = INFINITY);
    T(rope, "rope_yarn_offset_nan", INV, "yarn_offset", a.yoff = NAN);
    T(rope, "rope_yarn_scale_inf", INV, "yarn_scale", a.yscale = INFINITY);
    T(rope, "rope_yarn_multiplier_nan", INV, "yarn_multiplier", a.ymul = NAN);
    T(rope, "rope_positions_exceed_u32", UNS, "token_offset", a.offset = UINT32_MAX);
    T(rope, "rope_qkv_dim_exceeds_u32", UNS, "head_dim", a.d = 1u << 31; a.hq = 1; a.hkv = 1);
    T(rope, "rope_activations_size_overflow", INV, "num_tokens", a.offset = 0; a.t = UINT32_MAX; a.d = 1u << 20; a.hq = 2046; a.hkv = 1023);
}

static void sdpa_cases(void) {
    T(sdpa, "sdpa_valid", OK, NULL, );
    T(sdpa, "sdpa_sinks_null_valid", OK, NULL, a.sinks = NULL);
    T(sdpa, "sdpa_num_kv_tokens_zero_valid", OK, NULL, a.tkv = 0);
    T(sdpa, "sdpa_window_one_valid", OK, NULL, a.window = 1);
    T(sdpa, "sdpa_kv_stride_minimal_valid", OK, NULL, a.kv_stride = 80);
    T(sdpa, "sdpa_gqa_ratio_3_valid", OK, NULL, a.hq = 6);
    T(sdpa, "sdpa_backend_null", INV, "backend", a.b = NULL);
    T(sdpa, "sdpa_q_null", INV, "q", a.q = NULL);
    T(sdpa, "sdpa_kv_null", INV, "kv", a.kv = NULL);
    T(sdpa, "sdpa_output_null", INV, "output", a.out = NULL);
    T(sdpa, "sdpa_q_misaligned", INV, "q", a.q = MIS(A.x, 2));
    T(sdpa, "sdpa_kv_misaligned", INV, "kv", a.kv = MIS(A.kv, 2));
    T(sdpa, "sdpa_sinks_misaligned", INV, "sinks", a.sinks = MIS(A.bias, 1));
    T(sdpa, "sdpa_output_misaligned", INV, "output", a.out = MIS(A.y, 2));
    T(sdpa, "sdpa_window_zero", INV, "window", a.window = 0);
    T(sdpa, "sdpa_num_q_tokens_zero", INV, "num_q_tokens", a.tq = 0);
    T(sdpa, "sdpa_num_q_heads_zero", INV, "num_q_heads", a.hq = 0);
    T(sdpa, "sdpa_num_kv_heads_zero", INV, "num_kv_heads", a.hkv = 0);
    T(sdpa, "sdpa_head_dim_zero", INV, "head_dim", a.d = 0);
    T(sdpa, "sdpa_num_q_heads_not_multiple_of_kv_heads", INV, "num_q_heads", a.hq = 63; a.hkv = 8);
    T(sdpa, "sdpa_head_dim_not_multiple_of_4", INV, "head_dim", a.d = 6);
    T(sdpa, "sdpa_scale_nan", INV, "scale", a.scale = NAN);
    T(sdpa, "sdpa_scale_inf", INV, "scale", a.scale = INFINITY);
    T(sdpa, "sdpa_kv_stride_too_small", INV, "kv_stride", a.kv_stride = 79);
    T(sdpa, "sdpa_kv_stride_zero", INV, "kv_stride", a.kv_stride = 0);
    T(sdpa, "sdpa_kv_size_overflow", INV, "kv_stride", a.kv_stride = UINT64_MAX);
    T(sdpa, "sdpa_positions_exceed_u32", UNS, "num_kv_tokens", a.tkv = UINT32_MAX);
    T(sdpa, "sdpa_qkv_dim_exceeds_u32", UNS, "head_dim", a.d = 1u << 31; a.hq = 1; a.hkv = 1);
    T(sdpa, "sdpa_output_overlaps_q", INV, "overlaps q", a.out = A.x + 8);
    T(sdpa, "sdpa_output_overlaps_kv", INV, "overlaps kv", a.out = A.kv + 150);
    T(sdpa, "sdpa_output_overlaps_sinks", INV, "overlaps sinks", a.out = (float*) (void*) A.bias);
}

static void varlen_cases(void) {
    T(qkvv, "matmul_qkv_varlen_valid", OK, NULL, );
    T(qkvv, "matmul_qkv_varlen_bias_null_valid", OK, NULL, a.bias = NULL);
    T(qkvv, "matmul_qkv_varlen_last_position_valid", OK, NULL, A.pos[1] = 15);
    T(qkvv, "matmul_qkv_varlen_backend_null", INV, "backend", a.b = NULL);
    T(qkvv, "matmul_qkv_varlen_positions_null", INV, "positions", a.pos = NULL);
    T(qkvv, "matmul_qkv_varlen_seq_ids_null", INV, "seq_ids", a.seqs = NULL);
    T(qkvv, "matmul_qkv_varlen_block_tables_null", INV, "block_tables", a.tables = NULL);
    T(qkvv, "matmul_qkv_varlen_positions_misaligned", INV, "positions", a.pos = MIS(A.pos, 2));
    T(qkvv, "matmul_qkv_varlen_block_size_zero", INV, "block_size", a.bs = 0);
    T(qkvv, "matmul_qkv_varlen_table_stride_zero", INV, "table_stride", a.ts = 0);
    T(qkvv, "matmul_qkv_varlen_num_seqs_zero", INV, "num_seqs", a.ns = 0);
    T(qkvv, "matmul_qkv_varlen_kv_stride_not_whole_blocks", INV, "kv_stride", a.kv_stride = 1000);
    T(qkvv, "matmul_qkv_varlen_kv_stride_zero", INV, "kv_stride", a.kv_stride = 0);
    T(qkvv, "matmul_qkv_varlen_positions_exceed_u32", UNS, "table_stride", a.ts = 1u << 31; a.bs = 4;
      a.kv_stride = 64);
    T(qkvv, "matmul_qkv_varlen_seq_id_past_num_seqs", INV, "seq_ids[1] = 2", A.seqs[1] = 2);
    T(qkvv, "matmul_qkv_varlen_position_past_table", INV, "positions[0] = 16", A.pos[0] = 16);
    T(qkvv, "matmul_qkv_varlen_block_past_cache", INV, "block_tables[0][0] = 16", A.tables[0] = 16);
    T(qkvv, "matmul_qkv_varlen_head_dim_odd", INV, "head_dim", a.d = 7; a.kv_stride = 7 * 8 * 16);
    T(qkvv, "matmul_qkv_varlen_rope_base_nan", INV, "rope_base", a.base = NAN);
    T(qkvv, "matmul_qkv_varlen_output_overlaps_positions", INV, "overlaps positions", a.out = (float*) (void*) A.pos);
    T(qkvv, "matmul_qkv_varlen_kv_cache_overlaps_block_tables", INV, "overlaps block_tables",
      a.kv = (float*) (void*) A.tables; a.kv_stride = 64; a.hkv = 1; a.hq = 2; a.bs = 4);
    T(qkvv, "matmul_qkv_varlen_kv_cache_overlaps_output", INV, "overlaps output", a.kv = A.y + 16);

    T(sdpav, "sdpa_varlen_valid", OK, NULL, );
    T(sdpav, "sdpa_varlen_sinks_null_valid", OK, NULL, a.sinks = NULL);
    T(sdpav, "sdpa_varlen_window_one_valid", OK, NULL, a.window = 1);
    /* keys 0..3 of row 1 are outside a window of 2: their table entry is not read */
    T(sdpav, "sdpa_varlen_unread_entry_ignored_valid", OK, NULL, a.window = 2; A.tables[4] = UINT32_MAX);
    T(sdpav, "sdpa_varlen_read_entry_checked", INV, "block_tables[1][0]", a.window = 3; A.tables[4] = UINT32_MAX);
    T(sdpav, "sdpa_varlen_backend_null", INV, "backend", a.b = NULL);
    T(sdpav, "sdpa_varlen_q_null", INV, "q", a.q = NULL);
    T(sdpav, "sdpa_varlen_positions_null", INV, "positions", a.pos = NULL);
    T(sdpav, "sdpa_varlen_seq_ids_null", INV, "seq_ids", a.seqs = NULL);
    T(sdpav, "sdpa_varlen_block_tables_null", INV, "block_tables", a.tables = NULL);
    T(sdpav, "sdpa_varlen_block_tables_misaligned", INV, "block_tables", a.tables = MIS(A.tables, 1));
    T(sdpav, "sdpa_varlen_window_zero", INV, "window", a.window = 0);
    T(sdpav, "sdpa_varlen_num_q_tokens_zero", INV, "num_q_tokens", a.tq = 0);
    T(sdpav, "sdpa_varlen_num_seqs_zero", INV, "num_seqs", a.ns = 0);
    T(sdpav, "sdpa_varlen_block_size_zero", INV, "block_size", a.bs = 0);
    T(sdpav, "sdpa_varlen_head_dim_not_multiple_of_4", INV, "head_dim", a.d = 6; a.kv_stride = 6 * 8 * 16);
    T(sdpav, "sdpa_varlen_kv_stride_not_whole_blocks", INV, "kv_stride", a.kv_stride = 1000);
    T(sdpav, "sdpa_varlen_kv_size_overflow", INV, "kv_cache", a.kv_stride = UINT64_MAX / 64 * 64);
    T(sdpav, "sdpa_varlen_scale_nan", INV, "scale", a.scale = NAN);
    T(sdpav, "sdpa_varlen_seq_id_past_num_seqs", INV, "seq_ids[0] = 5", A.seqs[0] = 5);
    T(sdpav, "sdpa_varlen_position_past_table", INV, "positions[1] = 20", A.pos[1] = 20);
    T(sdpav, "sdpa_varlen_block_past_cache", INV, "block_tables[1][1] = 99", A.tables[5] = 99);
    T(sdpav, "sdpa_varlen_output_overlaps_kv", INV, "overlaps kv", a.out = A.kv + 100);
    T(sdpav, "sdpa_varlen_output_overlaps_seq_ids", INV, "overlaps seq_ids", a.out = (float*) (void*) A.seqs);
}

static void unembedding_cases(void) {
    T(unemb, "unembedding_valid", OK, NULL, );
    T(unemb, "unembedding_backend_null", INV, "backend", a.b = NULL);
    T(unemb, "unembedding_input_null", INV, "input", a.in = NULL);
    T(unemb, "unembedding_weight_null", INV, "weight", a.w = NULL);
    T(unemb, "unembedding_logits_null", INV, "logits", a.logits = NULL);
    T(unemb, "unembedding_argmax_null", INV, "argmax", a.argmax = NULL);
    T(unemb, "unembedding_input_misaligned", INV, "input", a.in = MIS(A.x, 2));
    T(unemb, "unembedding_weight_misaligned", INV, "weight", a.w = MIS(A.w, 1));
    T(unemb, "unembedding_logits_misaligned", INV, "logits", a.logits = MIS(A.y, 2));
    T(unemb, "unembedding_argmax_misaligned", INV, "argmax", a.argmax = MIS(A.uout, 2));
    T(unemb, "unembedding_num_tokens_zero", INV, "num_tokens", a.t = 0);
    T(unemb, "unembedding_num_cols_zero", INV, "num_cols", a.c = 0);
    T(unemb, "unembedding_num_rows_zero", INV, "num_rows", a.r = 0);
    T(unemb, "unembedding_weight_size_overflow", INV, "num_rows", a.r = UINT32_MAX; a.c = UINT32_MAX);
    T(unemb, "unembedding_logits_overlap_input", INV, "logits overlaps input", a.logits = A.x + 3);
    T(unemb, "unembedding_argmax_overlaps_logits", INV, "argmax overlaps logits", a.argmax = (uint32_t*) (void*) (A.y + 5));
}

static void topk_cases(void) {
    T(topk, "topk_valid", OK, NULL, );
    T(topk, "topk_all_experts_active_valid", OK, NULL, a.k = 8);
    T(topk, "topk_backend_null", INV, "backend", a.b = NULL);
    T(topk, "topk_scores_null", INV, "scores", a.scores = NULL);
    T(topk, "topk_expert_ids_null", INV, "expert_ids", a.ids = NULL);
    T(topk, "topk_expert_scores_null", INV, "expert_scores", a.out_scores = NULL);
    T(topk, "topk_scores_misaligned", INV, "scores", a.scores = MIS(A.x, 2));
    T(topk, "topk_expert_ids_misaligned", INV, "expert_ids", a.ids = MIS(A.uout, 2));
    T(topk, "topk_expert_scores_misaligned", INV, "expert_scores", a.out_scores = MIS(A.y, 2));
    T(topk, "topk_num_tokens_zero", INV, "num_tokens", a.t = 0);
    T(topk, "topk_num_experts_zero", INV, "num_experts", a.e = 0);
    T(topk, "topk_num_active_experts_zero", INV, "num_active_experts", a.k = 0);
    T(topk, "topk_num_active_experts_above_num_experts", INV, "num_active_experts", a.k = 9);
    T(topk, "topk_scores_size_overflow", INV, "num_experts", a.t = UINT32_MAX; a.e = UINT32_MAX);
    T(topk, "topk_expert_scores_overlap_scores", INV, "expert_scores overlaps scores", a.out_scores = A.x + 1);
    T(topk, "topk_expert_scores_overlap_expert_ids", INV, "expert_scores overlaps expert_ids", a.out_scores = (float*) (void*) A.uout);
}

static void routing_cases(void) {
    T(meta, "routing_metadata_valid", OK, NULL, );
    T(meta, "routing_metadata_backend_null", INV, "backend", a.b = NULL);
    T(meta, "routing_metadata_expert_ids_null", INV, "expert_ids", a.ids = NULL);
    T(meta, "routing_metadata_expert_offsets_null", INV, "expert_offsets", a.offsets = NULL);
    T(meta, "routing_metadata_intra_expert_offsets_null", INV, "intra_expert_offsets", a.intra = NULL);
    T(meta, "routing_metadata_expert_ids_misaligned", INV, "expert_ids", a.ids = MIS(A.ids, 2));
    T(meta, "routing_metadata_expert_offsets_misaligned", INV, "expert_offsets", a.offsets = MIS(A.uout, 1));
    T(meta, "routing_metadata_intra_expert_offsets_misaligned", INV, "intra_expert_offsets", a.intra = MIS(A.uout2, 3));
    T(meta, "routing_metadata_num_pairs_zero", INV, "num_pairs", a.p = 0);
    T(meta, "routing_metadata_num_experts_zero", INV, "num_experts", a.e = 0);
    T(meta, "routing_metadata_num_experts_u32_max", UNS, "num_experts", a.e = UINT32_MAX);
    T(meta, "routing_metadata_expert_id_not_below_num_experts", INV, "expert_ids[2]", A.ids[2] = 8);
    T(meta, "routing_metadata_expert_offsets_overlap_expert_ids", INV, "expert_offsets overlaps expert_ids", a.offsets = A.ids + 2);
    T(meta, "routing_metadata_intra_overlaps_expert_offsets", INV, "intra_expert_offsets overlaps expert_offsets", a.intra = A.uout + 8);

    T(scatter, "scatter_valid", OK, NULL, );
    T(scatter, "scatter_backend_null", INV, "backend", a.b = NULL);
    T(scatter, "scatter_input_null", INV, "input", a.in = NULL);
    T(scatter, "scatter_expert_ids_null", INV, "expert_ids", a.ids = NULL);
    T(scatter, "scatter_expert_offsets_null", INV, "expert_offsets", a.offsets = NULL);
    T(scatter, "scatter_intra_expert_offsets_null", INV, "intra_expert_offsets", a.intra = NULL);
    T(scatter, "scatter_output_null", INV, "output", a.out = NULL);
    T(scatter, "scatter_input_misaligned", INV, "input", a.in = MIS(A.x, 2));
    T(scatter, "scatter_expert_ids_misaligned", INV, "expert_ids", a.ids = MIS(A.ids, 2));
    T(scatter, "scatter_expert_offsets_misaligned", INV, "expert_offsets", a.offsets = MIS(A.offsets, 2));
    T(scatter, "scatter_intra_expert_offsets_misaligned", INV, "intra_expert_offsets", a.intra = MIS(A.intra, 2));
    T(scatter, "scatter_output_misaligned", INV, "output", a.out = MIS(A.y, 2));
    T(scatter, "scatter_num_channels_zero", INV, "num_channels", a.c = 0);
    T(scatter, "scatter_num_tokens_zero", INV, "num_tokens", a.t = 0);
    T(scatter, "scatter_num_active_experts_zero", INV, "num_active_experts", a.k = 0);
    T(scatter, "scatter_num_experts_zero", INV, "num_experts", a.e = 0);
    T(scatter, "scatter_num_active_experts_above_num_experts", INV, "num_active_experts", a.k = 9);
    T(scatter, "scatter_num_pairs_exceed_u32", INV, "num_tokens", a.t = 1u << 31; a.k = 2);
    T(scatter, "scatter_num_experts_u32_max", UNS, "num_experts", a.e = UINT32_MAX);
    T(scatter, "scatter_output_size_overflow", INV, "num_channels", a.c = UINT32_MAX; a.t = 1u << 30; a.k = 2);
    T(scatter, "scatter_output_overlaps_input", INV, "output overlaps input", a.out = A.x + 1);
    T(scatter, "scatter_output_overlaps_intra", INV, "output overlaps intra_expert_offsets", a.out = (float*) (void*) A.intra);
    T(scatter, "scatter_expert_id_not_below_num_experts", INV, "expert_ids[1]", A.ids[1] = 40);
    T(scatter, "scatter_expert_offsets_not_starting_at_0", INV, "expert_offsets[0]", A.offsets[0] = 1);
    T(scatter, "scatter_expert_offsets_decreasing", INV, "expert_offsets[2]", A.offsets[2] = 0);
    T(scatter, "scatter_expert_offsets_not_ending_at_num_pairs", INV, "expert_offsets[8]", A.offsets[8] = 5);
    T(scatter, "scatter_intra_expert_offset_out_of_range", INV, "intra_expert_offsets[2]", A.intra[2] = 2);
    T(scatter, "scatter_intra_expert_offset_huge", INV, "intra_expert_offsets[0]", A.intra[0] = UINT32_MAX);

    T(gather, "gather_valid", OK, NULL, );
    T(gather, "gather_backend_null", INV, "backend", a.b = NULL);
    T(gather, "gather_input_null", INV, "input", a.in = NULL);
    T(gather, "gather_expert_ids_null", INV, "expert_ids", a.ids = NULL);
    T(gather, "gather_expert_scores_null", INV, "expert_scores", a.scores = NULL);
    T(gather, "gather_expert_offsets_null", INV, "expert_offsets", a.offsets = NULL);
    T(gather, "gather_intra_expert_offsets_null", INV, "intra_expert_offsets", a.intra = NULL);
    T(gather, "gather_residual_null", INV, "residual", a.res = NULL);
    T(gather, "gather_input_misaligned", INV, "input", a.in = MIS(A.x, 2));
    T(gather, "gather_expert_ids_misaligned", INV, "expert_ids", a.ids = MIS(A.ids, 2));
    T(gather, "gather_expert_scores_misaligned", INV, "expert_scores", a.scores = MIS(A.z, 2));
    T(gather, "gather_expert_offsets_misaligned", INV, "expert_offsets", a.offsets = MIS(A.offsets, 2));
    T(gather, "gather_intra_expert_offsets_misaligned", INV, "intra_expert_offsets", a.intra = MIS(A.intra, 2));
    T(gather, "gather_residual_misaligned", INV, "residual", a.res = MIS(A.y, 2));
    T(gather, "gather_num_channels_zero", INV, "num_channels", a.c = 0);
    T(gather, "gather_num_tokens_zero", INV, "num_tokens", a.t = 0);
    T(gather, "gather_num_active_experts_zero", INV, "num_active_experts", a.k = 0);
    T(gather, "gather_num_experts_zero", INV, "num_experts", a.e = 0);
    T(gather, "gather_num_active_experts_above_num_experts", INV, "num_active_experts", a.k = 9);
    T(gather, "gather_num_pairs_exceed_u32", INV, "num_tokens", a.t = 1u << 31; a.k = 4);
    T(gather, "gather_num_experts_u32_max", UNS, "num_experts", a.e = UINT32_MAX);
    T(gather, "gather_residual_overlaps_input", INV, "residual overlaps input", a.res = A.x + 200);
    T(gather, "gather_residual_overlaps_expert_scores", INV, "residual overlaps expert_scores", a.res = A.z);
    T(gather, "gather_expert_id_not_below_num_experts", INV, "expert_ids[3]", A.ids[3] = 8);
    T(gather, "gather_expert_offsets_not_starting_at_0", INV, "expert_offsets[0]", A.offsets[0] = 2);
    T(gather, "gather_expert_offsets_decreasing", INV, "expert_offsets[4]", A.offsets[4] = 1);
    T(gather, "gather_expert_offsets_not_ending_at_num_pairs", INV, "expert_offsets[8]", for (int i = 4; i < 9; i++) A.offsets[i] = 3);
    T(gather, "gather_intra_expert_offset_out_of_range", INV, "intra_expert_offsets[0]", A.intra[0] = 1);

    T(acc, "accumulate_valid", OK, NULL, );

    T(gate, "gate_valid", OK, NULL, );
    T(gate, "gate_no_bias_valid", OK, NULL, a.rb = NULL);
    T(gate, "gate_all_experts_valid", OK, NULL, a.k = 8);
    T(gate, "gate_backend_null", INV, "backend", a.b = NULL);
    T(gate, "gate_input_null", INV, "input", a.in = NULL);
    T(gate, "gate_norm_weight_null", INV, "norm_weight", a.nw = NULL);
    T(gate, "gate_output_null", INV, "output", a.out = NULL);
    T(gate, "gate_router_weight_null", INV, "router_weight", a.rw = NULL);
    T(gate, "gate_scores_null", INV, "scores", a.scores = NULL);
    T(gate, "gate_expert_ids_null", INV, "expert_ids", a.ids = NULL);
    T(gate, "gate_expert_scores_null", INV, "expert_scores", a.es = NULL);
    T(gate, "gate_input_misaligned", INV, "input", a.in = MIS(A.x, 2));
    T(gate, "gate_router_bias_misaligned", INV, "router_bias", a.rb = MIS(A.bias, 1));
    T(gate, "gate_expert_ids_misaligned", INV, "expert_ids", a.ids = MIS(A.uout, 2));
    T(gate, "gate_num_tokens_zero", INV, "num_tokens", a.t = 0);
    T(gate, "gate_num_channels_zero", INV, "num_channels", a.c = 0);
    T(gate, "gate_num_experts_zero", INV, "num_experts", a.e = 0);
    T(gate, "gate_num_active_experts_zero", INV, "num_active_experts", a.k = 0);
    T(gate, "gate_num_active_experts_above_num_experts", INV, "num_active_experts 9 exceeds num_experts 8", a.k = 9);
    T(gate, "gate_epsilon_negative", INV, "epsilon", a.eps = -1.0f);
    T(gate, "gate_epsilon_nan", INV, "epsilon", a.eps = NAN);
    T(gate, "gate_router_weight_size_overflow", INV, "router_weight", a.e = UINT32_MAX; a.k = 1; a.c = UINT32_MAX);
    T(gate, "gate_output_is_input", INV, "output overlaps input", a.out = A.x);
    T(gate, "gate_output_overlaps_norm_weight", INV, "output overlaps norm_weight", a.out = (float*) (void*) (A.w + 32));
    T(gate, "gate_scores_overlap_output", INV, "scores overlaps output", a.scores = A.y + 100);
    T(gate, "gate_scores_overlap_router_weight", INV, "scores overlaps router_weight", a.scores = (float*) (void*) (A.w + 64));
    T(gate, "gate_expert_ids_overlap_scores", INV, "expert_ids overlaps scores", a.ids = (uint32_t*) (void*) (A.kvout + 8));
    T(gate, "gate_expert_scores_overlap_expert_ids", INV, "expert_scores overlaps expert_ids", a.es = (float*) (void*) (A.uout + 1));
    T(gate, "gate_expert_scores_overlap_router_bias", INV, "expert_scores overlaps router_bias", a.es = (float*) (void*) A.bias);

    T(accrms, "accumulate_rmsnorm_valid", OK, NULL, );
    T(accrms, "accumulate_rmsnorm_zero_epsilon_valid", OK, NULL, a.eps = 0.0f);
    T(accrms, "accumulate_rmsnorm_backend_null", INV, "backend", a.b = NULL);
    T(accrms, "accumulate_rmsnorm_input_null", INV, "input", a.in = NULL);
    T(accrms, "accumulate_rmsnorm_expert_scores_null", INV, "expert_scores", a.scores = NULL);
    T(accrms, "accumulate_rmsnorm_residual_null", INV, "residual", a.res = NULL);
    T(accrms, "accumulate_rmsnorm_weight_null", INV, "weight", a.w = NULL);
    T(accrms, "accumulate_rmsnorm_output_null", INV, "output", a.out = NULL);
    T(accrms, "accumulate_rmsnorm_input_misaligned", INV, "input", a.in = MIS(A.x, 2));
    T(accrms, "accumulate_rmsnorm_expert_scores_misaligned", INV, "expert_scores", a.scores = MIS(A.z, 2));
    T(accrms, "accumulate_rmsnorm_residual_misaligned", INV, "residual", a.res = MIS(A.y, 2));
    T(accrms, "accumulate_rmsnorm_weight_misaligned", INV, "weight", a.w = MIS(A.w, 1));
    T(accrms, "accumulate_rmsnorm_output_misaligned", INV, "output", a.out = MIS(A.kvout, 3));
    T(accrms, "accumulate_rmsnorm_num_channels_zero", INV, "num_channels", a.c = 0);
    T(accrms, "accumulate_rmsnorm_num_tokens_zero", INV, "num_tokens", a.t = 0);
    T(accrms, "accumulate_rmsnorm_num_active_experts_zero", INV, "num_active_experts", a.k = 0);
    T(accrms, "accumulate_rmsnorm_epsilon_negative", INV, "epsilon", a.eps = -1e-5f);
    T(accrms, "accumulate_rmsnorm_epsilon_nan", INV, "epsilon", a.eps = NAN);
    T(accrms, "accumulate_rmsnorm_epsilon_inf", INV, "epsilon", a.eps = INFINITY);
    T(accrms, "accumulate_rmsnorm_input_size_overflow", INV, "num_active_experts", a.c = UINT32_MAX; a.t = UINT32_MAX; a.k = UINT32_MAX);
    T(accrms, "accumulate_rmsnorm_residual_overlaps_input", INV, "residual overlaps input", a.res = A.x + 255);
    T(accrms, "accumulate_rmsnorm_residual_overlaps_expert_scores", INV, "residual overlaps expert_scores", a.res = A.z + 3);
    T(accrms, "accumulate_rmsnorm_residual_overlaps_weight", INV, "residual overlaps weight", a.res = (float*) (void*) A.w);
    T(accrms, "accumulate_rmsnorm_output_is_residual", INV, "output overlaps residual", a.out = A.y);
    T(accrms, "accumulate_rmsnorm_output_overlaps_residual", INV, "output overlaps residual", a.out = A.y + 127);
    T(accrms, "accumulate_rmsnorm_output_overlaps_input", INV, "output overlaps input", a.out = A.x + 100);
    T(accrms, "accumulate_rmsnorm_output_overlaps_expert_scores", INV, "output overlaps expert_scores", a.out = A.z + 2);
    T(accrms, "accumulate_rmsnorm_output_overlaps_weight", INV, "output overlaps weight", a.out = (float*) (void*) (A.w + 32));
    T(acc, "accumulate_backend_null", INV, "backend", a.b = NULL);
    T(acc, "accumulate_input_null", INV, "input", a.in = NULL);
    T(acc, "accumulate_expert_scores_null", INV, "expert_scores", a.scores = NULL);
    T(acc, "accumulate_residual_null", INV, "residual", a.res = NULL);
    T(acc, "accumulate_input_misaligned", INV, "input", a.in = MIS(A.x, 2));
    T(acc, "accumulate_expert_scores_misaligned", INV, "expert_scores", a.scores = MIS(A.z, 2));
    T(acc, "accumulate_residual_misaligned", INV, "residual", a.res = MIS(A.y, 2));
    T(acc, "accumulate_num_channels_zero", INV, "num_channels", a.c = 0);
    T(acc, "accumulate_num_tokens_zero", INV, "num_tokens", a.t = 0);
    T(acc, "accumulate_num_active_experts_zero", INV, "num_active_experts", a.k = 0);
    T(acc, "accumulate_input_size_overflow", INV, "num_active_experts", a.c = UINT32_MAX; a.t = UINT32_MAX; a.k = UINT32_MAX);
    T(acc, "accumulate_residual_overlaps_input", INV, "residual overlaps input", a.res = A.x + 255);
    T(acc, "accumulate_residual_overlaps_expert_scores", INV, "residual overlaps expert_scores", a.res = A.z + 3);
}

static void moe_cases(void) {
    static const char* const names[4] = {"moe_matmul_swiglu", "moe_matmul", "moe_dense_matmul_swiglu",
                                         "moe_dense_matmul"};
    char n[128];
    for (int which = 0; which < 4; which++) {
        const int dense = which >= 2, swiglu = which % 2 == 0;
        const char* routing = dense ? "expert_offsets" : "expert_ids";
#define NAME(s) (snprintf(n, sizeof n, "%s_%s", names[which], s), n)
#define SETUP a.which = which; if (dense) a.routing = A.offsets
        T(moe, NAME("valid"), OK, NULL, SETUP);
        T(moe, NAME("single_expert_odd_stride_valid"), OK, NULL, SETUP; a.e = 1; a.k = 1; a.stride = 3;
          if (dense) { A.offsets[0] = 0; A.offsets[1] = 2; } else { A.ids[0] = A.ids[1] = 0; });
        T(moe, NAME("backend_null"), INV, "backend", SETUP; a.b = NULL);
        T(moe, NAME("input_null"), INV, "input", SETUP; a.in = NULL);
        T(moe, NAME("routing_null"), INV, routing, SETUP; a.routing = NULL);
        T(moe, NAME("weight_blocks_null"), INV, "weight_blocks", SETUP; a.wb = NULL);
        T(moe, NAME("weight_scales_null"), INV, "weight_scales", SETUP; a.ws = NULL);
        T(moe, NAME("bias_null"), INV, "bias", SETUP; a.bias = NULL);
        T(moe, NAME("output_null"), INV, "output", SETUP; a.out = NULL);
        T(moe, NAME("input_misaligned"), INV, "input", SETUP; a.in = MIS(A.x, 2));
        T(moe, NAME("routing_misaligned"), INV, routing, SETUP; a.routing = MIS(a.routing, 2));
        T(moe, NAME("bias_misaligned"), INV, "bias", SETUP; a.bias = MIS(a.bias, 1));
        T(moe, NAME("output_misaligned"), INV, "output", SETUP; a.out = MIS(A.y, 2));
        T(moe, NAME("num_tokens_zero"), INV, "num_tokens", SETUP; a.t = 0);
        T(moe, NAME("num_active_experts_zero"), INV, "num_active_experts", SETUP; a.k = 0);
        T(moe, NAME("num_experts_zero"), INV, "num_experts", SETUP; a.e = 0);
        T(moe, NAME("num_cols_zero"), INV, "num_cols", SETUP; a.c = 0);
        T(moe, NAME("num_rows_zero"), INV, "num_rows", SETUP; a.r = 0);
        T(moe, NAME("num_active_experts_above_num_experts"), INV, "num_active_experts", SETUP; a.k = 9);
        T(moe, NAME("num_cols_not_multiple_of_32"), INV, "num_cols", SETUP; a.c = 48);
        T(moe, NAME("expert_stride_odd"), INV, "expert_stride", SETUP; a.stride = MOE_STRIDE + 1);
        T(moe, NAME("weight_extent_overflow"), INV, "expert_stride", SETUP; a.stride = SIZE_MAX / 4 * 2);
        T(moe, NAME("output_overlaps_input"), INV, "output overlaps input", SETUP; a.out = A.x + 50);
        T(moe, NAME("output_overlaps_weight_blocks"), INV, "output overlaps weight_blocks", SETUP;
          a.out = (float*) (void*) (A.moe + 7 * MOE_STRIDE + 64));
        T(moe, NAME("output_overlaps_routing"), INV, "output overlaps", SETUP;
          a.out = (float*) (void*) (dense ? A.offsets : A.ids));
        T(moe, NAME("output_size_overflow"), INV, "num_rows", SETUP; a.r = (1u << 31) - 1; a.t = (1u << 29) - 1;
          a.k = 8);
        if (swiglu) {
            T(moe, NAME("swiglu_limit_zero"), INV, "swiglu_limit", SETUP; a.limit = 0.0f);
            T(moe, NAME("swiglu_limit_negative"), INV, "swiglu_limit", SETUP; a.limit = -7.0f);
            T(moe, NAME("swiglu_limit_nan"), INV, "swiglu_limit", SETUP; a.limit = NAN);
            T(moe, NAME("swiglu_limit_inf"), INV, "swiglu_limit", SETUP; a.limit = INFINITY);
            T(moe, NAME("weight_rows_exceed_u32"), UNS, "num_rows", SETUP; a.r = 1u << 31);
        }
        if (dense) {
            T(moe, NAME("num_pairs_exceed_u32"), INV, "num_tokens", SETUP; a.t = 1u << 31);
            T(moe, NAME("num_experts_u32_max"), UNS, "num_experts", SETUP; a.e = UINT32_MAX);
            T(moe, NAME("expert_offsets_not_starting_at_0"), INV, "expert_offsets[0]", SETUP; A.offsets[0] = 1);
            T(moe, NAME("expert_offsets_decreasing"), INV, "expert_offsets[3]", SETUP; A.offsets[3] = 1);
            T(moe, NAME("expert_offsets_not_ending_at_num_pairs"), INV, "expert_offsets[8]", SETUP; A.offsets[8] = 7);
        } else {
            T(moe, NAME("expert_id_not_below_num_experts"), INV, "expert_ids[3]", SETUP; A.ids[3] = 40);
        }
#undef SETUP
#undef NAME
    }
}

static void sample_cases(void) {
    T(softmax, "softmax_valid", OK, NULL, );
    T(softmax, "softmax_backend_null", INV, "backend", a.b = NULL);
    T(softmax, "softmax_logits_null", INV, "logits", a.logits = NULL);
    T(softmax, "softmax_argmax_null", INV, "argmax", a.argmax = NULL);
    T(softmax, "softmax_prob_null", INV, "prob", a.prob = NULL);
    T(softmax, "softmax_sum_null", INV, "sum", a.sum = NULL);
    T(softmax, "softmax_logits_misaligned", INV, "logits", a.logits = MIS(A.x, 2));
    T(softmax, "softmax_argmax_misaligned", INV, "argmax", a.argmax = MIS(A.argm, 2));
    T(softmax, "softmax_prob_misaligned", INV, "prob", a.prob = MIS(A.y, 2));
    T(softmax, "softmax_sum_misaligned", INV, "sum", a.sum = MIS(A.y2, 2));
    T(softmax, "softmax_num_tokens_zero", INV, "num_tokens", a.t = 0);
    T(softmax, "softmax_num_channels_zero", INV, "num_channels", a.v = 0);
    T(softmax, "softmax_temperature_zero", INV, "temperature", a.temp = 0.0f);
    T(softmax, "softmax_temperature_negative", INV, "temperature", a.temp = -1.0f);
    T(softmax, "softmax_temperature_nan", INV, "temperature", a.temp = NAN);
    T(softmax, "softmax_temperature_inf", INV, "temperature", a.temp = INFINITY);
    T(softmax, "softmax_size_overflow", INV, "num_channels", a.t = UINT32_MAX; a.v = UINT32_MAX);
    T(softmax, "softmax_prob_overlaps_logits", INV, "prob overlaps logits", a.prob = A.x);
    T(softmax, "softmax_sum_overlaps_prob", INV, "sum overlaps prob", a.sum = A.y + 31);
    T(softmax, "softmax_argmax_not_below_num_channels", INV, "argmax[1]", A.argm[1] = 16);

    T(sample, "sample_valid", OK, NULL, );
    T(sample, "sample_backend_null", INV, "backend", a.b = NULL);
    T(sample, "sample_prob_null", INV, "prob", a.prob = NULL);
    T(sample, "sample_sum_null", INV, "sum", a.sum = NULL);
    T(sample, "sample_prediction_null", INV, "prediction", a.pred = NULL);
    T(sample, "sample_prob_misaligned", INV, "prob", a.prob = MIS(A.x, 2));
    T(sample, "sample_sum_misaligned", INV, "sum", a.sum = MIS(A.fsum, 2));
    T(sample, "sample_prediction_misaligned", INV, "prediction", a.pred = MIS(A.uout, 2));
    T(sample, "sample_num_channels_zero", INV, "num_channels", a.v = 0);
    T(sample, "sample_prediction_overlaps_prob", INV, "prediction overlaps prob", a.pred = (uint32_t*) (void*) (A.x + 15));
    T(sample, "sample_sum_zero", INV, "sum", A.fsum[0] = 0.0f);
    T(sample, "sample_sum_negative", INV, "sum", A.fsum[0] = -1.0f);
    T(sample, "sample_sum_nan", INV, "sum", A.fsum[0] = NAN);
    T(sample, "sample_sum_inf", INV, "sum", A.fsum[0] = INFINITY);

    T(penalties, "penalties_valid", OK, NULL, );
    T(penalties, "penalties_in_place_valid", OK, NULL, a.out = A.y; a.logits = A.y);
    T(penalties, "penalties_backend_null", INV, "backend", a.b = NULL);
    T(penalties, "penalties_logits_null", INV, "logits", a.logits = NULL);
    T(penalties, "penalties_counts_null", INV, "counts", a.counts = NULL);
    T(penalties, "penalties_output_null", INV, "output", a.out = NULL);
    T(penalties, "penalties_logits_misaligned", INV, "logits", a.logits = MIS(A.x, 2));
    T(penalties, "penalties_counts_misaligned", INV, "counts", a.counts = MIS(A.tok, 2));
    T(penalties, "penalties_output_misaligned", INV, "output", a.out = MIS(A.y, 2));
    T(penalties, "penalties_num_channels_zero", INV, "num_channels", a.v = 0);
    T(penalties, "penalties_presence_nan", INV, "presence_penalty", a.presence = NAN);
    T(penalties, "penalties_presence_inf", INV, "presence_penalty", a.presence = -INFINITY);
    T(penalties, "penalties_frequency_nan", INV, "frequency_penalty", a.frequency = NAN);
    T(penalties, "penalties_frequency_inf", INV, "frequency_penalty", a.frequency = INFINITY);
    T(penalties, "penalties_output_overlaps_logits", INV, "output overlaps logits", a.out = A.x + 1);
    T(penalties, "penalties_output_overlaps_counts", INV, "output overlaps counts", a.out = (float*) (void*) (A.tok + 8));

    T(sample_logits, "sample_logits_valid", OK, NULL, );
    T(sample_logits, "sample_logits_greedy_no_topk_topp1_valid", OK, NULL, a.temp = 0.0f; a.k = 0; a.p = 1.0f);
    T(sample_logits, "sample_logits_backend_null", INV, "backend", a.b = NULL);
    T(sample_logits, "sample_logits_logits_null", INV, "logits", a.logits = NULL);
    T(sample_logits, "sample_logits_prediction_null", INV, "prediction", a.pred = NULL);
    T(sample_logits, "sample_logits_logits_misaligned", INV, "logits", a.logits = MIS(A.x, 2));
    T(sample_logits, "sample_logits_prediction_misaligned", INV, "prediction", a.pred = MIS(A.uout, 2));
    T(sample_logits, "sample_logits_num_channels_zero", INV, "num_channels", a.v = 0);
    T(sample_logits, "sample_logits_temperature_negative", INV, "temperature", a.temp = -0.5f);
    T(sample_logits, "sample_logits_temperature_nan", INV, "temperature", a.temp = NAN);
    T(sample_logits, "sample_logits_temperature_inf", INV, "temperature", a.temp = INFINITY);
    T(sample_logits, "sample_logits_top_p_zero", INV, "top_p", a.p = 0.0f);
    T(sample_logits, "sample_logits_top_p_above_1", INV, "top_p", a.p = 1.5f);
    T(sample_logits, "sample_logits_top_p_nan", INV, "top_p", a.p = NAN);
    T(sample_logits, "sample_logits_prediction_overlaps_logits", INV, "prediction overlaps logits",
      a.pred = (uint32_t*) (void*) (A.x + 15));
}

/* The generic entry (kernel-args.h): its own checks, the kernel checks with the same
 * status and message as the named function, and the kernel names. */
static void generic_cases(void) {
    reset_arena();
    const struct gptoss_f32_bf16w_rmsnorm_args rms = {A.x, A.w, A.y, 2, 64, 1e-5f};
    memcpy(g_shadow, &A, sizeof A);
    run_case("kernel_run_bad_id", gptoss_kernel_run(B, gptoss_kernel_count, &rms), INV, "kernel");
    run_case("kernel_run_negative_id", gptoss_kernel_run(B, (enum gptoss_kernel) - 1, &rms), INV, "kernel");
    run_case("kernel_run_args_null", gptoss_kernel_run(B, gptoss_kernel_f32_bf16w_rmsnorm, NULL), INV, "args");
    run_case("kernel_run_backend_null", gptoss_kernel_run(NULL, gptoss_kernel_f32_bf16w_rmsnorm, &rms), INV, "backend");
    struct gptoss_f32_bf16w_rmsnorm_args bad = rms;
    bad.num_channels = 0;
    char named[512];
    gptoss_f32_bf16w_rmsnorm(B, bad.input, bad.weight, bad.output, bad.num_tokens, bad.num_channels, bad.epsilon);
    snprintf(named, sizeof named, "%s", gptoss_last_error());
    const enum gptoss_status st = gptoss_kernel_run(B, gptoss_kernel_f32_bf16w_rmsnorm, &bad);
    run_case("kernel_run_checks_as_named", st, INV, named);
    run_case("kernel_run_valid", gptoss_kernel_run(B, gptoss_kernel_f32_bf16w_rmsnorm, &rms), OK, NULL);

    /* gptoss_backend_get_memory_info: NULL arguments named, outputs untouched; the CPU
     * backend's numbers: this process's resident memory (> 0: the arena) below the
     * machine's */
    uint64_t used = 7, total = 9;
    memcpy(g_shadow, &A, sizeof A);
    run_case("memory_info_backend_null", gptoss_backend_get_memory_info(NULL, &used, &total), INV, "backend");
    run_case("memory_info_used_null", gptoss_backend_get_memory_info(B, NULL, &total), INV, "used_bytes_out");
    run_case("memory_info_total_null", gptoss_backend_get_memory_info(B, &used, NULL), INV, "total_bytes_out");
    const int untouched = used == 7 && total == 9;
    run_case("memory_info_valid", gptoss_backend_get_memory_info(B, &used, &total), OK, NULL);
    if (untouched && used > 0 && used < total) {
        g_passed++;
        printf("PASS memory_info_values: %llu of %llu bytes\n", (unsigned long long) used, (unsigned long long) total);
    } else {
        g_failed++;
        printf("FAIL memory_info_values: used %llu, total %llu (a rejected call wrote them: %d)\n",
               (unsigned long long) used, (unsigned long long) total, !untouched);
    }

    /* gptoss_backend_set_row_order: a bad order or backend named, the order kept */
    run_case("row_order_backend_null", gptoss_backend_set_row_order(NULL, gptoss_row_order_one), INV, "backend");
    run_case("row_order_bad", gptoss_backend_set_row_order(B, (enum gptoss_row_order) 3), INV, "row order 3");
    run_case("row_order_negative", gptoss_backend_set_row_order(B, (enum gptoss_row_order) - 1), INV, "row order -1");
    run_case("row_order_many", gptoss_backend_set_row_order(B, gptoss_row_order_many), OK, NULL);
    const int order_kept = gptoss_backend_get_row_order(B) == gptoss_row_order_many &&
                           gptoss_backend_set_row_order(B, (enum gptoss_row_order) 7) != gptoss_status_success &&
                           gptoss_backend_get_row_order(B) == gptoss_row_order_many &&
                           gptoss_backend_get_row_order(NULL) == gptoss_row_order_auto;
    run_case("row_order_auto", gptoss_backend_set_row_order(B, gptoss_row_order_auto), OK, NULL);
    g_passed += order_kept;
    g_failed += !order_kept;
    printf("%s row_order_kept: a refused order leaves the backend's as it was\n", order_kept ? "PASS" : "FAIL");

    int names_ok = gptoss_kernel_get_name(gptoss_kernel_count) == NULL &&
                   gptoss_kernel_get_family((enum gptoss_kernel) - 1) == NULL && gptoss_kernel_count == 32;
    for (int k = 0; k < gptoss_kernel_count && names_ok; k++) {
        const char* name = gptoss_kernel_get_name((enum gptoss_kernel) k);
        names_ok = name != NULL && gptoss_kernel_get_family((enum gptoss_kernel) k) != NULL;
        for (int j = 0; j < k && names_ok; j++)
            names_ok = strcmp(name, gptoss_kernel_get_name((enum gptoss_kernel) j)) != 0;
    }
    names_ok = names_ok && strcmp(gptoss_kernel_get_name(gptoss_kernel_f32_sdpa), "f32_sdpa") == 0 &&
               strcmp(gptoss_kernel_get_family(gptoss_kernel_f32_bf16w_dense_matmul_qkv), "matmul") == 0;
    if (names_ok) {
        g_passed++;
        printf("PASS kernel_names: %d kernels, distinct names and families\n", (int) gptoss_kernel_count);
    } else {
        g_failed++;
        printf("FAIL kernel_names\n");
    }
}

int main(void) {
    enum gptoss_status status = gptoss_backend_create_cpu(1, &B);
    if (status != gptoss_status_success) {
        printf("FAIL backend_create_cpu: %s (%s)\n", gptoss_status_to_string(status), gptoss_last_error());
        printf("0 passed, 1 failed, 0 skipped\n");
        return 1;
    }
    fill_cases();
    convert_cases();
    embeddings_cases();
    rmsnorm_cases();
    matmul_cases();
    qkv_cases();
    rope_cases();
    sdpa_cases();
    varlen_cases();
    unembedding_cases();
    topk_cases();
    routing_cases();
    moe_cases();
    sample_cases();
    generic_cases();
    gptoss_backend_release(B);
    printf("%d passed, %d failed, 0 skipped\n", g_passed, g_failed);
    return g_failed == 0 ? 0 : 1;
}
