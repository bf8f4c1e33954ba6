/* Contexts: token history, KV cache and the gpt-oss forward pass (KERNELS.md 7), built
 * only from the public kernels of <gptoss/kernels.h>.
 *
 * State: tokens[0, num_tokens) are the context; K/V of positions [0, num_kv_tokens) are in
 * the cache and belong to tokens[0, num_kv_tokens). num_kv_tokens may exceed num_tokens
 * after a reset (the cached prefix is reused when the same ids are appended again). After
 * sampling, the sampled token is pending (num_kv_tokens = num_tokens - 1) and its K/V are
 * computed by the next forward pass: there is no KV hole (upstream counts it as cached).
 *
 * Every buffer is allocated at creation; a decode step allocates nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gptoss/error.h>

#include "engine_internal.h"
#include "model.h"

/* The MoE of a group of rows goes through the prefill (expert-grouped) kernels from this
 * many rows on; fewer rows use the decode kernels (params.moe_dense_min_rows overrides it).
 * CPU: the decode kernels group the pairs by expert themselves, which pays up to a few
 * hundred rows (docs/RESULTS.md); CUDA: the tensor-core GEMMs pay from a few rows per
 * expert. */
#define GPTOSS_MOE_DENSE_MIN_ROWS_CPU 256u
/* Default prefill chunk (max_batch_tokens 0). GPU: 512 tokens give the MoE GEMMs ~64 rows
 * per expert on gpt-oss-20b (4 of 32 experts), filling the tensor-core tiles that 128-token
 * chunks (~16 rows) run a quarter full. CPU: the GEMMs reach their rate from 128 tokens on. */
#define GPTOSS_DEFAULT_BATCH_CPU 128u
#define GPTOSS_DEFAULT_BATCH_GPU 512u
#define GPTOSS_MOE_DENSE_MIN_ROWS_CUDA 16u

struct gptoss_context {
    atomic_uint_least64_t ref_count;
    struct gptoss_model* model;
    gptoss_backend_t backend;

    size_t max_tokens;        /* context length */
    uint32_t max_batch;       /* B */
    size_t num_tokens;
    size_t num_kv_tokens;
    size_t logits_pos;        /* position whose logits are in `logits`, or SIZE_MAX */
    uint32_t moe_dense_min_rows;
    /* the fused kernels (bit-identical to the calls they replace): the MoE gate
     * (gptoss_f32_bf16w_rmsnorm_matmul_topk) and, on the decode path, the MoE accumulate with
     * the RMSNorm after it (gptoss_f32_accumulate_bf16w_rmsnorm); params.fused_ops */
    int fused_ops;

    uint32_t* tokens;         /* host [max_tokens] */
    struct gptoss_sampler_scratch scratch; /* host */
    float* host_logits;       /* host [V] */

    /* backend buffers */
    float* kv;                /* [L][Hkv][max_tokens][2][D] */
    uint32_t* batch_tokens;   /* [B] */
    float* residual;          /* [B][H] */
    float* norm;              /* [B][H] */
    float* qkv;               /* [B][QKV] */
    float* attn;              /* [B][Hq*D] */
    float* gate;              /* [B][E] */
    uint32_t* expert_ids;     /* [B][k] */
    float* expert_scores;     /* [B][k] */
    uint32_t* expert_offsets; /* [E+1] */
    uint32_t* intra;          /* [B][k] */
    float* moe_input;         /* [B*k][H] (prefill scatter output) */
    float* swiglu;            /* [B*k][I] */
    float* moe_output;        /* [B*k][H] */
    float* logits;            /* [V] */
    uint32_t* argmax;         /* [1] */
    float* prob;              /* [V] */
    float* prob_sum;          /* [1] */
    uint32_t* sampled;        /* [1] */

    struct gptoss_profile* prof; /* NULL unless params.profile */

    /* CUDA decode steps as recorded graphs (see decode_step_graph); NULL when the backend
     * cannot record, without params.graphs, or while profiling */
    gptoss_graph_t graphs[2]; /* slot = position % 2 */
    size_t graph_pos[2];      /* position recorded in each slot, or SIZE_MAX */
};

/* Re-raises the current message with a prefix. */
static enum gptoss_status fail_with_context(enum gptoss_status st, const char* what) {
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
    return gptoss_fail(st, "%s: %s", what, msg);
}

#define KCALL(what, call)                                                   \
    do {                                                                    \
        const enum gptoss_status st_ = (call);                              \
        if (st_ != gptoss_status_success) return fail_with_context(st_, what); \
    } while (0)

/* ---- profile (params.profile, engine.h) --------------------------------------------- */

#define PROF_MAX_ENTRIES 48
enum { PROF_PREFILL = 0, PROF_DECODE = 1 };
static const char* const prof_phase_name[2] = {"prefill", "decode"};

struct prof_entry {
    const char* name;
    uint64_t calls[2];
    uint64_t ns[2];
};

struct gptoss_profile {
    int phase;            /* of the last forward batch */
    uint64_t t0;          /* start of the call being timed */
    uint64_t phase_ns[2]; /* wall time of the forward batches and samplings */
    uint64_t tokens[2];   /* rows of the forward batches */
    uint64_t batches[2];
    uint32_t num_entries;
    struct prof_entry entries[PROF_MAX_ENTRIES];
};

static uint64_t prof_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * UINT64_C(1000000000) + (uint64_t) ts.tv_nsec;
}

/* Before a profiled call: let earlier work finish, start the clock. */
static void prof_begin(struct gptoss_context* c) {
    (void) gptoss_backend_synchronize(c->backend); /* earlier calls were synchronised: nothing pending */
    c->prof->t0 = prof_now_ns();
}

/* Adds the time since prof_begin to `name` in the current phase. */
static void prof_record(struct gptoss_context* c, const char* name) {
    struct gptoss_profile* p = c->prof;
    const uint64_t dt = prof_now_ns() - p->t0;
    struct prof_entry* e = NULL;
    for (uint32_t i = 0; i < p->num_entries; i++) {
        if (p->entries[i].name == name || strcmp(p->entries[i].name, name) == 0) {
            e = &p->entries[i];
            break;
        }
    }
    if (e == NULL) {
        if (p->num_entries == PROF_MAX_ENTRIES) return;
        e = &p->entries[p->num_entries++];
        e->name = name;
    }
    e->calls[p->phase] += 1;
    e->ns[p->phase] += dt;
}

/* After a profiled call that returned st: wait for it (an asynchronous error of the call is
 * reported here, so by the call that caused it), stop the clock. A failed call keeps its
 * message (synchronize would clear it) and is not counted. */
static enum gptoss_status prof_end(struct gptoss_context* c, const char* name, enum gptoss_status st) {
    if (st != gptoss_status_success) return st;
    st = gptoss_backend_synchronize(c->backend);
    prof_record(c, name);
    return st;
}

/* PROFILED(c, "kernel", gptoss_kernel(...)): the call's status; timed when profiling. */
#define PROFILED(c, name, call)                                                                  \
    (__builtin_expect((c)->prof == NULL, 1) ? (call)                                              \
                                            : (prof_begin(c), prof_end((c), (name), (call))))
/* KCALL of a profiled call. */
#define KCALL_PROF(c, what, name, call) KCALL(what, PROFILED(c, name, call))

/* Phase time: t = prof_start(c) ... prof_phase_add(c, t) around forward batches and samplings. */
static inline uint64_t prof_start(const struct gptoss_context* c) {
    return __builtin_expect(c->prof == NULL, 1) ? 0 : prof_now_ns();
}
static inline void prof_phase_add(struct gptoss_context* c, uint64_t t0) {
    if (__builtin_expect(c->prof == NULL, 1)) return;
    c->prof->phase_ns[c->prof->phase] += prof_now_ns() - t0;
}

enum gptoss_status gptoss_context_reset_profile(gptoss_context_t c) {
    gptoss_clear_error();
    if (c == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context is NULL");
    if (c->prof != NULL) memset(c->prof, 0, sizeof(*c->prof));
    return gptoss_status_success;
}

/* One row: ms per token over the phase's forward rows, % of the phase's wall time. */
static void prof_row(FILE* f, int ph, const char* name, const char* calls, uint64_t ns, uint64_t tokens,
                     uint64_t phase_ns) {
    const double ms = (double) ns * 1e-6;
    char per_token[32] = "-";
    if (tokens > 0) snprintf(per_token, sizeof(per_token), "%.4f", ms / (double) tokens);
    fprintf(f, "%-7s  %-34s %7s %11.3f %10s %7.1f\n", prof_phase_name[ph], name, calls, ms, per_token,
            phase_ns > 0 ? 100.0 * (double) ns / (double) phase_ns : 0.0);
}

enum gptoss_status gptoss_context_print_profile(gptoss_context_t c, FILE* f) {
    gptoss_clear_error();
    if (c == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context is NULL");
    if (f == NULL) return gptoss_fail(gptoss_status_invalid_argument, "f is NULL");
    if (c->prof == NULL) return gptoss_status_success;
    const struct gptoss_profile* p = c->prof;
    fprintf(f, "profile: host wall time, backend synchronised around every call\n");
    fprintf(f, "%-7s  %-34s %7s %11s %10s %7s\n", "phase", "kernel", "calls", "total ms", "ms/token", "% phase");
    for (int ph = 0; ph < 2; ph++) {
        if (p->batches[ph] == 0 && p->phase_ns[ph] == 0) continue;
        const struct prof_entry* order[PROF_MAX_ENTRIES];
        uint32_t n = 0;
        uint64_t kernel_ns = 0;
        for (uint32_t i = 0; i < p->num_entries; i++) {
            const struct prof_entry* e = &p->entries[i];
            if (e->calls[ph] == 0) continue;
            kernel_ns += e->ns[ph];
            uint32_t j = n++; /* insertion sort, most time first */
            for (; j > 0 && order[j - 1]->ns[ph] < e->ns[ph]; j--) order[j] = order[j - 1];
            order[j] = e;
        }
        char text[64];
        for (uint32_t i = 0; i < n; i++) {
            snprintf(text, sizeof(text), "%llu", (unsigned long long) order[i]->calls[ph]);
            prof_row(f, ph, order[i]->name, text, order[i]->ns[ph], p->tokens[ph], p->phase_ns[ph]);
        }
        /* host work outside the timed calls (below 0 only by clock granularity) */
        const uint64_t other = p->phase_ns[ph] > kernel_ns ? p->phase_ns[ph] - kernel_ns : 0;
        prof_row(f, ph, "other (host)", "-", other, p->tokens[ph], p->phase_ns[ph]);
        snprintf(text, sizeof(text), "total (%llu tokens, %llu batches)", (unsigned long long) p->tokens[ph],
                 (unsigned long long) p->batches[ph]);
        prof_row(f, ph, text, "-", p->phase_ns[ph], p->tokens[ph], p->phase_ns[ph]);
    }
    return gptoss_status_success;
}

/* ---- creation ------------------------------------------------------------------------ */

/* Frees everything; the statuses of the frees are dropped, so they keep the thread's
 * message (this runs after failures too). */
static void context_free(struct gptoss_context* c) {
    if (c == NULL) return;
    gptoss_error_keep_begin();
    gptoss_backend_t b = c->backend;
    void* bufs[] = {c->kv,         c->batch_tokens, c->residual,   c->norm,    c->qkv,     c->attn,
                    c->gate,       c->expert_ids,   c->expert_scores, c->expert_offsets, c->intra,
                    c->moe_input,  c->swiglu,       c->moe_output, c->logits,  c->argmax,  c->prob,
                    c->prob_sum,   c->sampled};
    if (b != NULL) {
        for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
            if (bufs[i] != NULL) gptoss_backend_free(b, bufs[i]);
        }
    }
    free(c->tokens);
    free(c->host_logits);
    gptoss_sampler_scratch_free(&c->scratch);
    free(c->prof);
    for (int i = 0; i < 2; i++) gptoss_graph_release(c->graphs[i]);
    if (c->model != NULL) gptoss_model_release(c->model);
    free(c);
    gptoss_error_keep_end();
}

static int mul_ovf(size_t a, size_t b, size_t* out) { return __builtin_mul_overflow(a, b, out); }

static enum gptoss_status alloc_buffer(struct gptoss_context* c, void** ptr, size_t count, size_t elem,
                                       const char* name) {
    size_t bytes;
    if (mul_ovf(count, elem, &bytes)) {
        return gptoss_fail(gptoss_status_insufficient_memory, "context buffer %s: size overflows", name);
    }
    if (bytes == 0) bytes = 64;
    enum gptoss_status st = gptoss_backend_alloc(c->backend, bytes, ptr);
    if (st != gptoss_status_success) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
        return gptoss_fail(st, "cannot allocate the context's %s (%zu bytes) on %s: %s", name, bytes,
                           gptoss_backend_get_name(c->backend), msg);
    }
    return gptoss_status_success;
}

void gptoss_context_params_init(struct gptoss_context_params* params) {
    if (params == NULL) return;
    memset(params, 0, sizeof(*params));
    params->fused_ops = 1;
    params->graphs = 1;
}

enum gptoss_status gptoss_context_create(gptoss_model_t model, size_t context_length, size_t max_batch_tokens,
                                         gptoss_context_t* context_out) {
    struct gptoss_context_params params;
    gptoss_context_params_init(&params);
    params.context_length = context_length;
    params.max_batch_tokens = max_batch_tokens;
    return gptoss_context_create_with_params(model, &params, context_out);
}

enum gptoss_status gptoss_context_create_with_params(gptoss_model_t model, const struct gptoss_context_params* params,
                                                     gptoss_context_t* context_out) {
    gptoss_clear_error();
    if (model == NULL) return gptoss_fail(gptoss_status_invalid_argument, "model is NULL");
    if (context_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context_out is NULL");
    struct gptoss_context_params p;
    if (params != NULL) p = *params;
    else gptoss_context_params_init(&p);
    if (p.fused_ops != 0 && p.fused_ops != 1) return gptoss_fail(gptoss_status_invalid_argument, "fused_ops %d is not 0 or 1", p.fused_ops);
    if (p.graphs != 0 && p.graphs != 1) return gptoss_fail(gptoss_status_invalid_argument, "graphs %d is not 0 or 1", p.graphs);
    if (p.profile != 0 && p.profile != 1) return gptoss_fail(gptoss_status_invalid_argument, "profile %d is not 0 or 1", p.profile);
    gptoss_backend_t backend = p.backend != NULL ? p.backend : model->backend;
    if (backend != model->backend && (gptoss_backend_get_kind(backend) != gptoss_backend_kind_cpu ||
                                      gptoss_backend_get_kind(model->backend) != gptoss_backend_kind_cpu)) {
        return gptoss_fail(gptoss_status_invalid_argument, "backend %s cannot run a model on backend %s (only CPU "
                           "backends share memory)", gptoss_backend_get_name(backend),
                           gptoss_backend_get_name(model->backend));
    }
    const int cpu = gptoss_backend_get_kind(backend) == gptoss_backend_kind_cpu;
    const struct gptoss_model_config* cfg = &model->config;
    const size_t model_max = cfg->context_length;
    size_t context_length = p.context_length != 0 ? p.context_length : model_max;
    if (context_length > model_max) {
        return gptoss_fail(gptoss_status_invalid_argument, "context_length %zu exceeds the model's maximum %zu",
                           context_length, model_max);
    }
    if (context_length > UINT32_MAX) {
        return gptoss_fail(gptoss_status_unsupported_argument, "context_length %zu exceeds 2^32-1", context_length);
    }
    size_t max_batch_tokens = p.max_batch_tokens;
    if (max_batch_tokens == 0) max_batch_tokens = cpu ? GPTOSS_DEFAULT_BATCH_CPU : GPTOSS_DEFAULT_BATCH_GPU;
    if (max_batch_tokens > context_length) max_batch_tokens = context_length;
    if (max_batch_tokens > 65536) {
        return gptoss_fail(gptoss_status_invalid_argument, "max_batch_tokens %zu exceeds 65536", max_batch_tokens);
    }

    struct gptoss_context* c = calloc(1, sizeof(*c));
    if (c == NULL) return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate the context");
    atomic_init(&c->ref_count, 1);
    gptoss_model_retain(model);
    c->model = model;
    c->backend = backend;
    c->max_tokens = context_length;
    c->max_batch = (uint32_t) max_batch_tokens;
    c->logits_pos = SIZE_MAX;
    c->moe_dense_min_rows = p.moe_dense_min_rows != 0 ? p.moe_dense_min_rows
                            : cpu                     ? GPTOSS_MOE_DENSE_MIN_ROWS_CPU
                                                      : GPTOSS_MOE_DENSE_MIN_ROWS_CUDA;
    c->fused_ops = p.fused_ops;
    const int profile = p.profile;

    const size_t B = max_batch_tokens, H = cfg->embedding_dim, D = cfg->head_dim, Hq = cfg->num_heads,
                 Hkv = cfg->num_kv_heads, E = cfg->num_experts, K = cfg->num_active_experts, I = cfg->mlp_dim,
                 L = cfg->num_blocks, V = model->vocabulary_size;
    const size_t QKV = D * (Hq + 2 * Hkv);
    enum gptoss_status st;

    c->tokens = calloc(context_length, sizeof(uint32_t));
    c->host_logits = malloc(V * sizeof(float));
    const int scratch_failed = gptoss_sampler_scratch_init(&c->scratch, (uint32_t) V) != 0;
    if (c->tokens == NULL || c->host_logits == NULL || scratch_failed ||
        (profile && (c->prof = calloc(1, sizeof(*c->prof))) == NULL)) {
        st = gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate the context's host buffers (%zu tokens)",
                         context_length);
        goto fail;
    }

    size_t kv_count;
    if (mul_ovf(L * Hkv, context_length, &kv_count) || mul_ovf(kv_count, 2 * D, &kv_count)) {
        st = gptoss_fail(gptoss_status_insufficient_memory, "KV cache size overflows");
        goto fail;
    }
#define ALLOC(field, count, type)                                                                      \
    do {                                                                                               \
        void* p_ = NULL;                                                                               \
        st = alloc_buffer(c, &p_, (count), sizeof(type), #field);                                      \
        if (st != gptoss_status_success) goto fail;                                                    \
        c->field = p_;                                                                                 \
    } while (0)
    ALLOC(kv, kv_count, float);
    ALLOC(batch_tokens, B, uint32_t);
    ALLOC(residual, B * H, float);
    ALLOC(norm, B * H, float);
    ALLOC(qkv, B * QKV, float);
    ALLOC(attn, B * Hq * D, float);
    ALLOC(gate, B * E, float);
    ALLOC(expert_ids, B * K, uint32_t);
    ALLOC(expert_scores, B * K, float);
    ALLOC(expert_offsets, E + 1, uint32_t);
    ALLOC(intra, B * K, uint32_t);
    ALLOC(moe_input, B * K * H, float);
    ALLOC(swiglu, B * K * I, float);
    ALLOC(moe_output, B * K * H, float);
    ALLOC(logits, V, float);
    ALLOC(argmax, 1, uint32_t);
    ALLOC(prob, V, float);
    ALLOC(prob_sum, 1, float);
    ALLOC(sampled, 1, uint32_t);
#undef ALLOC
    c->graph_pos[0] = c->graph_pos[1] = SIZE_MAX;
    if (p.graphs && c->prof == NULL) {
        for (int i = 0; i < 2; i++) {
            if (gptoss_graph_create(c->backend, &c->graphs[i]) != gptoss_status_success) {
                for (int j = 0; j < i; j++) gptoss_graph_release(c->graphs[j]);
                c->graphs[0] = c->graphs[1] = NULL;
                gptoss_clear_error(); /* CPU backends: no graphs, kernels run directly */
                break;
            }
        }
    }
    *context_out = c;
    return gptoss_status_success;
fail:
    context_free(c);
    return st;
}

/* ---- forward pass ------------------------------------------------------------------- */

#define WPTR(type, off) ((const type*) (m->weights + (off)))

/* The kernels of one batch: tokens [s, s+n) (n <= B), whose ids are already in
 * c->batch_tokens; o in {0, 1} rows of logits (the last token). */
static enum gptoss_status forward_kernels(struct gptoss_context* c, size_t s, uint32_t n, uint32_t o) {
    const struct gptoss_model* m = c->model;
    const struct gptoss_model_config* cfg = &m->config;
    gptoss_backend_t b = c->backend;
    const uint32_t H = cfg->embedding_dim, D = cfg->head_dim, Hq = cfg->num_heads, Hkv = cfg->num_kv_heads,
                   E = cfg->num_experts, K = cfg->num_active_experts, I = cfg->mlp_dim, L = cfg->num_blocks,
                   V = m->vocabulary_size;
    const size_t QKV = (size_t) D * (Hq + 2 * Hkv);
    const size_t T = c->max_tokens;
    const size_t kv_layer = (size_t) Hkv * T * 2 * D;
    char what[96];
    if (c->prof != NULL) {
        c->prof->phase = n > 1 ? PROF_PREFILL : PROF_DECODE;
        c->prof->tokens[c->prof->phase] += n;
        c->prof->batches[c->prof->phase] += 1;
    }

    KCALL_PROF(c, "embeddings", "bf16_f32_embeddings",
               gptoss_bf16_f32_embeddings(b, c->batch_tokens, WPTR(gptoss_bf16, m->embedding), c->residual, n, H, V));
    /* c->norm already holds this layer's attention RMSNorm / the final one: the previous
     * MoE accumulate computed it (fused_ops) */
    int norm_ready = 0, final_ready = 0;
    for (uint32_t l = 0; l < L; l++) {
        const struct gptoss_layer_offsets* lw = &m->layers[l];
        float* kv = c->kv + (size_t) l * kv_layer;
        if (!norm_ready) {
            snprintf(what, sizeof(what), "layer %u attention rmsnorm", l);
            KCALL_PROF(c, what, "f32_bf16w_rmsnorm",
                       gptoss_f32_bf16w_rmsnorm(b, c->residual, WPTR(gptoss_bf16, lw->attn_norm), c->norm, n, H,
                                                cfg->rmsnorm_epsilon));
        }
        norm_ready = 0;
        snprintf(what, sizeof(what), "layer %u qkv", l);
        KCALL_PROF(c, what, "f32_bf16w_matmul_qkv",
                   gptoss_f32_bf16w_matmul_qkv(b, c->norm, WPTR(gptoss_bf16, lw->qkv_weight),
                                               WPTR(gptoss_bf16, lw->qkv_bias), c->qkv, kv, n, H, Hq, Hkv, D,
                                               (uint32_t) s, (uint32_t) T, cfg->rope_theta, cfg->interpolation_scale,
                                               cfg->yarn_offset, cfg->yarn_scale, cfg->yarn_multiplier));
        /* rows that continue: in the last layer only those that produce logits */
        const uint32_t R = (l + 1 == L) ? o : n;
        if (R == 0) continue;
        const uint32_t r0 = n - R;
        float* residual = c->residual + (size_t) r0 * H;
        const uint32_t window = (l % 2 == 0) ? cfg->attention_window : UINT32_MAX;
        snprintf(what, sizeof(what), "layer %u sdpa", l);
        KCALL_PROF(c, what, "f32_sdpa",
                   gptoss_f32_sdpa(b, c->qkv + (size_t) r0 * QKV, kv, WPTR(gptoss_bf16, lw->sinks), c->attn, window,
                                   (uint64_t) 2 * T * D, R, (uint32_t) (s + r0), Hq, Hkv, D, 1.0f));
        snprintf(what, sizeof(what), "layer %u attention output", l);
        KCALL_PROF(c, what, "f32_bf16w_matmul_add",
                   gptoss_f32_bf16w_matmul_add(b, c->attn, WPTR(gptoss_bf16, lw->out_weight),
                                               WPTR(gptoss_bf16, lw->out_bias), residual, R, Hq * D, H));
        if (c->fused_ops) {
            snprintf(what, sizeof(what), "layer %u mlp rmsnorm + router + topk", l);
            KCALL_PROF(c, what, "f32_bf16w_rmsnorm_matmul_topk",
                       gptoss_f32_bf16w_rmsnorm_matmul_topk(b, residual, WPTR(gptoss_bf16, lw->mlp_norm), c->norm,
                                                            WPTR(gptoss_bf16, lw->gate_weight),
                                                            WPTR(gptoss_bf16, lw->gate_bias), c->gate, c->expert_ids,
                                                            c->expert_scores, R, H, E, K, cfg->rmsnorm_epsilon));
        } else {
            snprintf(what, sizeof(what), "layer %u mlp rmsnorm", l);
            KCALL_PROF(c, what, "f32_bf16w_rmsnorm",
                       gptoss_f32_bf16w_rmsnorm(b, residual, WPTR(gptoss_bf16, lw->mlp_norm), c->norm, R, H,
                                                cfg->rmsnorm_epsilon));
            snprintf(what, sizeof(what), "layer %u router", l);
            KCALL_PROF(c, what, "f32_bf16w_matmul",
                       gptoss_f32_bf16w_matmul(b, c->norm, WPTR(gptoss_bf16, lw->gate_weight),
                                               WPTR(gptoss_bf16, lw->gate_bias), c->gate, R, H, E));
            snprintf(what, sizeof(what), "layer %u topk", l);
            KCALL_PROF(c, what, "f32_topk", gptoss_f32_topk(b, c->gate, c->expert_ids, c->expert_scores, R, E, K));
        }

        const uint8_t* moe = m->weights + lw->moe;
        const struct gptoss_expert_layout* x = &m->expert;
        const size_t stride = x->per_expert;
        if (R < c->moe_dense_min_rows) {
            snprintf(what, sizeof(what), "layer %u moe swiglu", l);
            KCALL_PROF(c, what, "f32_mf4w_moe_matmul_swiglu",
                       gptoss_f32_mf4w_moe_matmul_swiglu(b, c->norm, c->expert_ids, moe + x->mlp1_blocks,
                                                         moe + x->mlp1_scales,
                                                         (const gptoss_bf16*) (moe + x->mlp1_bias), stride, c->swiglu,
                                                         R, K, E, H, I, cfg->swiglu_limit));
            snprintf(what, sizeof(what), "layer %u moe down", l);
            KCALL_PROF(c, what, "f32_mf4w_moe_matmul",
                       gptoss_f32_mf4w_moe_matmul(b, c->swiglu, c->expert_ids, moe + x->mlp2_blocks,
                                                  moe + x->mlp2_scales, (const gptoss_bf16*) (moe + x->mlp2_bias),
                                                  stride, c->moe_output, R, K, E, I, H));
            if (c->fused_ops) {
                /* and the next RMSNorm: layer l+1's attention norm over the same R = n rows,
                 * or in the last layer the final norm over its R = o rows; either way into
                 * c->norm rows 0..R-1, where the unfused call would write it */
                const int last = l + 1 == L;
                const size_t gain = last ? m->final_norm : m->layers[l + 1].attn_norm;
                snprintf(what, sizeof(what), "layer %u moe accumulate + %s rmsnorm", l, last ? "final" : "next");
                KCALL_PROF(c, what, "f32_accumulate_bf16w_rmsnorm",
                           gptoss_f32_accumulate_bf16w_rmsnorm(b, c->moe_output, c->expert_scores, residual,
                                                               WPTR(gptoss_bf16, gain), c->norm, H, R, K,
                                                               cfg->rmsnorm_epsilon));
                if (last) final_ready = 1;
                else norm_ready = 1;
            } else {
                snprintf(what, sizeof(what), "layer %u moe accumulate", l);
                KCALL_PROF(c, what, "f32_accumulate",
                           gptoss_f32_accumulate(b, c->moe_output, c->expert_scores, residual, H, R, K));
            }
        } else {
            snprintf(what, sizeof(what), "layer %u expert routing", l);
            KCALL_PROF(c, what, "expert_routing_metadata",
                       gptoss_expert_routing_metadata(b, c->expert_ids, c->expert_offsets, c->intra, R * K, E));
            snprintf(what, sizeof(what), "layer %u scatter", l);
            KCALL_PROF(c, what, "f32_scatter",
                       gptoss_f32_scatter(b, c->norm, c->expert_ids, c->expert_offsets, c->intra, c->moe_input, H, R,
                                          K, E));
            snprintf(what, sizeof(what), "layer %u moe dense swiglu", l);
            KCALL_PROF(c, what, "f32_mf4w_moe_dense_matmul_swiglu",
                       gptoss_f32_mf4w_moe_dense_matmul_swiglu(b, c->expert_offsets, c->moe_input, moe + x->mlp1_blocks,
                                                               moe + x->mlp1_scales,
                                                               (const gptoss_bf16*) (moe + x->mlp1_bias), stride,
                                                               c->swiglu, R, K, E, H, I, cfg->swiglu_limit));
            snprintf(what, sizeof(what), "layer %u moe dense down", l);
            KCALL_PROF(c, what, "f32_mf4w_moe_dense_matmul",
                       gptoss_f32_mf4w_moe_dense_matmul(b, c->expert_offsets, c->swiglu, moe + x->mlp2_blocks,
                                                        moe + x->mlp2_scales, (const gptoss_bf16*) (moe + x->mlp2_bias),
                                                        stride, c->moe_output, R, K, E, I, H));
            snprintf(what, sizeof(what), "layer %u gather", l);
            KCALL_PROF(c, what, "f32_gather_and_accumulate",
                       gptoss_f32_gather_and_accumulate(b, c->moe_output, c->expert_ids, c->expert_scores,
                                                        c->expert_offsets, c->intra, residual, H, R, K, E));
        }
    }
    if (o > 0) {
        if (!final_ready) {
            KCALL_PROF(c, "final rmsnorm", "f32_bf16w_rmsnorm",
                       gptoss_f32_bf16w_rmsnorm(b, c->residual + (size_t) (n - o) * H,
                                                WPTR(gptoss_bf16, m->final_norm), c->norm, o, H,
                                                cfg->rmsnorm_epsilon));
        }
        KCALL_PROF(c, "unembedding", "f32_bf16w_unembedding",
                   gptoss_f32_bf16w_unembedding(b, c->norm, WPTR(gptoss_bf16, m->unembedding), c->logits, c->argmax,
                                                o, H, V));
    }
    return gptoss_status_success;
}

static enum gptoss_status copy_batch_tokens(struct gptoss_context* c, size_t s, uint32_t n) {
    KCALL_PROF(c, "copy of the batch's token ids", "copy h2d (token ids)",
               gptoss_backend_copy(c->backend, c->batch_tokens, c->tokens + s, (size_t) n * sizeof(uint32_t),
                                   gptoss_copy_host_to_backend));
    return gptoss_status_success;
}

/* One batch: copy its token ids, then the kernels. */
static enum gptoss_status forward_batch(struct gptoss_context* c, size_t s, uint32_t n, uint32_t o) {
    const enum gptoss_status st = copy_batch_tokens(c, s, n);
    if (st != gptoss_status_success) return st;
    return forward_kernels(c, s, n, o);
}

/* Records the kernels of the decode step at position s (one token, logits) in graph slot. */
static enum gptoss_status record_decode_step(struct gptoss_context* c, int slot, size_t s) {
    c->graph_pos[slot] = SIZE_MAX;
    enum gptoss_status st = gptoss_graph_begin(c->graphs[slot]);
    if (st != gptoss_status_success) return st;
    st = forward_kernels(c, s, 1, 1);
    if (st != gptoss_status_success) {
        gptoss_error_keep_begin(); /* end the recording; the kernels' failure is the one reported */
        (void) gptoss_graph_end(c->graphs[slot]);
        gptoss_error_keep_end();
        return st;
    }
    st = gptoss_graph_end(c->graphs[slot]);
    if (st != gptoss_status_success) return st;
    c->graph_pos[slot] = s;
    return gptoss_status_success;
}

/* The decode step at position s as one graph launch (CUDA). The kernels' arguments depend
 * on the position only (the token id is copied in before the launch), so while the GPU
 * runs step s the host records step s+1 into the other slot: the recording and the graph
 * update are off the critical path, and the GPU runs the ~300 kernels of a step
 * back to back. Falls back to direct launches if recording fails. */
static enum gptoss_status decode_step_graph(struct gptoss_context* c, size_t s) {
    const int slot = (int) (s & 1);
    if (c->graph_pos[slot] != s && record_decode_step(c, slot, s) != gptoss_status_success) {
        gptoss_clear_error();
        return forward_batch(c, s, 1, 1);
    }
    enum gptoss_status st = copy_batch_tokens(c, s, 1);
    if (st != gptoss_status_success) return st;
    st = gptoss_graph_launch(c->graphs[slot]);
    if (st != gptoss_status_success) return st;
    if (s + 1 < c->max_tokens && record_decode_step(c, slot ^ 1, s + 1) != gptoss_status_success) {
        gptoss_clear_error(); /* recorded again (or run directly) when needed */
    }
    return gptoss_status_success;
}

/* Runs tokens [first, first+count) in batches of B; with `logits`, the last token's logits
 * and argmax end up in c->logits / c->argmax. The K/V of those positions are (re)written. */
static enum gptoss_status process_tokens(struct gptoss_context* c, size_t first, size_t count, int logits) {
    enum gptoss_status st;
    for (size_t s = first; s < first + count;) {
        const size_t left = first + count - s;
        const uint32_t n = left < c->max_batch ? (uint32_t) left : c->max_batch;
        const uint32_t o = (logits && s + n == first + count) ? 1 : 0;
        const uint64_t t0 = prof_start(c);
        st = (n == 1 && o == 1 && c->graphs[0] != NULL) ? decode_step_graph(c, s) : forward_batch(c, s, n, o);
        prof_phase_add(c, t0);
        if (st != gptoss_status_success) {
            /* positions from s on may hold partial K/V */
            if (c->num_kv_tokens > s) c->num_kv_tokens = s;
            c->logits_pos = SIZE_MAX;
            return st;
        }
        s += n;
        if (c->num_kv_tokens < s) c->num_kv_tokens = s;
    }
    /* CUDA reports asynchronous errors here; CPU has nothing pending */
    const uint64_t t0 = prof_start(c); /* in the phase of the last batch */
    st = gptoss_backend_synchronize(c->backend);
    prof_phase_add(c, t0);
    if (st != gptoss_status_success) {
        if (c->num_kv_tokens > first) c->num_kv_tokens = first;
        c->logits_pos = SIZE_MAX;
        return fail_with_context(st, "forward pass");
    }
    if (logits) c->logits_pos = first + count - 1;
    return gptoss_status_success;
}

/* Makes c->logits / c->argmax hold the logits of the last token (num_tokens >= 1). */
static enum gptoss_status ensure_logits(struct gptoss_context* c) {
    if (c->num_kv_tokens < c->num_tokens) {
        return process_tokens(c, c->num_kv_tokens, c->num_tokens - c->num_kv_tokens, 1);
    }
    if (c->logits_pos == c->num_tokens - 1) return gptoss_status_success;
    /* cached without logits (process() or a reused prefix): run the last token again */
    return process_tokens(c, c->num_tokens - 1, 1, 1);
}

/* ---- token bookkeeping -------------------------------------------------------------- */

/* Appends one id (checked by the caller); applies the KV reuse rule (KERNELS.md 8). */
static void push_token(struct gptoss_context* c, uint32_t id) {
    const size_t p = c->num_tokens;
    if (c->num_kv_tokens > p && c->tokens[p] != id) {
        c->num_kv_tokens = p; /* the cache past p belongs to other tokens */
        if (c->logits_pos != SIZE_MAX && c->logits_pos >= p) c->logits_pos = SIZE_MAX;
    }
    if (c->num_kv_tokens <= p && c->logits_pos != SIZE_MAX && c->logits_pos >= p) c->logits_pos = SIZE_MAX;
    c->tokens[p] = id;
    c->num_tokens = p + 1;
}

enum gptoss_status gptoss_context_get_num_tokens(gptoss_context_t context, size_t* num_tokens_out) {
    gptoss_clear_error();
    if (context == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context is NULL");
    if (num_tokens_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "num_tokens_out is NULL");
    *num_tokens_out = context->num_tokens;
    return gptoss_status_success;
}

enum gptoss_status gptoss_context_get_max_tokens(gptoss_context_t context, size_t* max_tokens_out) {
    gptoss_clear_error();
    if (context == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context is NULL");
    if (max_tokens_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "max_tokens_out is NULL");
    *max_tokens_out = context->max_tokens;
    return gptoss_status_success;
}

enum gptoss_status gptoss_context_get_max_batch_tokens(gptoss_context_t context, size_t* max_batch_tokens_out) {
    gptoss_clear_error();
    if (context == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context is NULL");
    if (max_batch_tokens_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "max_batch_tokens_out is NULL");
    *max_batch_tokens_out = context->max_batch;
    return gptoss_status_success;
}

enum gptoss_status gptoss_context_get_tokens(gptoss_context_t context, uint32_t* tokens_out, size_t max_tokens,
                                             size_t* num_tokens_out) {
    gptoss_clear_error();
    if (context == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context is NULL");
    if (num_tokens_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "num_tokens_out is NULL");
    if (tokens_out == NULL && max_tokens != 0) return gptoss_fail(gptoss_status_invalid_argument, "tokens_out is NULL");
    if (max_tokens < context->num_tokens) {
        *num_tokens_out = context->num_tokens;
        return gptoss_fail(gptoss_status_insufficient_memory, "%zu tokens do not fit in a buffer of %zu",
                           context->num_tokens, max_tokens);
    }
    if (context->num_tokens != 0) memcpy(tokens_out, context->tokens, context->num_tokens * sizeof(uint32_t));
    *num_tokens_out = context->num_tokens;
    return gptoss_status_success;
}

enum gptoss_status gptoss_context_append_tokens(gptoss_context_t context, size_t num_tokens, const uint32_t* tokens) {
    gptoss_clear_error();
    if (context == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context is NULL");
    if (tokens == NULL && num_tokens != 0) return gptoss_fail(gptoss_status_invalid_argument, "tokens is NULL");
    const uint32_t V = context->model->vocabulary_size;
    for (size_t i = 0; i < num_tokens; i++) {
        if (tokens[i] >= V) {
            return gptoss_fail(gptoss_status_invalid_argument, "token %zu has id %u, not below the vocabulary size %u",
                               i, tokens[i], V);
        }
    }
    for (size_t i = 0; i < num_tokens; i++) {
        if (context->num_tokens >= context->max_tokens) {
            return gptoss_fail(gptoss_status_context_overflow,
                               "context is full (%zu tokens): %zu of %zu tokens appended", context->max_tokens, i,
                               num_tokens);
        }
        push_token(context, tokens[i]);
    }
    return gptoss_status_success;
}

enum gptoss_status gptoss_context_append_chars(gptoss_context_t context, const char* text, size_t text_length,
                                               size_t* num_tokens_out) {
    gptoss_clear_error();
    if (context == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context is NULL");
    if (text == NULL && text_length != 0) return gptoss_fail(gptoss_status_invalid_argument, "text is NULL");
    if (text_length == 0) {
        if (num_tokens_out != NULL) *num_tokens_out = 0;
        return gptoss_status_success;
    }
    /* every token covers at least one byte */
    uint32_t* ids = malloc(text_length * sizeof(uint32_t));
    if (ids == NULL) return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate %zu token ids", text_length);
    size_t n = 0;
    enum gptoss_status st = gptoss_tokenizer_encode(context->model->tokenizer, text, text_length, ids, text_length, &n);
    if (st != gptoss_status_success) {
        free(ids);
        return st;
    }
    const size_t before = context->num_tokens;
    st = gptoss_context_append_tokens(context, n, ids);
    free(ids);
    if (st == gptoss_status_success || st == gptoss_status_context_overflow) {
        if (num_tokens_out != NULL) *num_tokens_out = context->num_tokens - before;
    }
    return st;
}

enum gptoss_status gptoss_context_reset(gptoss_context_t context) {
    gptoss_clear_error();
    if (context == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context is NULL");
    context->num_tokens = 0;
    return gptoss_status_success;
}

enum gptoss_status gptoss_context_get_num_kv_tokens(gptoss_context_t context, size_t* num_kv_tokens_out) {
    gptoss_clear_error();
    if (context == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context is NULL");
    if (num_kv_tokens_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "num_kv_tokens_out is NULL");
    *num_kv_tokens_out = context->num_kv_tokens;
    return gptoss_status_success;
}

enum gptoss_status gptoss_context_process(gptoss_context_t context) {
    gptoss_clear_error();
    if (context == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context is NULL");
    if (context->num_kv_tokens >= context->num_tokens) return gptoss_status_success;
    return process_tokens(context, context->num_kv_tokens, context->num_tokens - context->num_kv_tokens, 0);
}

enum gptoss_status gptoss_context_get_logits(gptoss_context_t context, float* logits_out, size_t capacity) {
    gptoss_clear_error();
    if (context == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context is NULL");
    if (logits_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "logits_out is NULL");
    const uint32_t V = context->model->vocabulary_size;
    if (capacity < V) {
        return gptoss_fail(gptoss_status_invalid_argument, "capacity %zu is below the vocabulary size %u", capacity, V);
    }
    if (context->num_tokens == 0) return gptoss_fail(gptoss_status_invalid_state, "the context has no tokens");
    enum gptoss_status st = ensure_logits(context);
    if (st != gptoss_status_success) return st;
    const uint64_t t0 = prof_start(context);
    st = PROFILED(context, "copy d2h (logits)",
                  gptoss_backend_copy(context->backend, logits_out, context->logits, (size_t) V * sizeof(float),
                                      gptoss_copy_backend_to_host));
    prof_phase_add(context, t0);
    if (st != gptoss_status_success) return fail_with_context(st, "copy of the logits");
    return gptoss_status_success;
}

/* Picks the next token from the logits of the last token (already computed). */
static enum gptoss_status pick_token(struct gptoss_context* c, const struct gptoss_sampler* sampler, uint32_t* id_out) {
    const enum gptoss_sampler_mode mode = gptoss_sampler_get_mode(sampler);
    const uint32_t V = c->model->vocabulary_size;
    uint32_t id = UINT32_MAX;
    switch (mode) {
    case gptoss_sampler_mode_greedy:
        KCALL_PROF(c, "copy of the argmax", "copy d2h (argmax)",
                   gptoss_backend_copy(c->backend, &id, c->argmax, sizeof(uint32_t), gptoss_copy_backend_to_host));
        break;
    case gptoss_sampler_mode_device:
        KCALL_PROF(c, "softmax", "f32_softmax",
                   gptoss_f32_softmax(c->backend, c->logits, c->argmax, c->prob, c->prob_sum, 1, V,
                                      sampler->temperature));
        KCALL_PROF(c, "sample", "f32_sample",
                   gptoss_f32_sample(c->backend, c->prob, c->prob_sum, c->sampled, V,
                                     sampler->seed + GPTOSS_SAMPLER_SEED_OFFSET, c->num_tokens));
        KCALL_PROF(c, "copy of the sampled token", "copy d2h (sampled id)",
                   gptoss_backend_copy(c->backend, &id, c->sampled, sizeof(uint32_t), gptoss_copy_backend_to_host));
        break;
    default:
        KCALL_PROF(c, "copy of the logits", "copy d2h (logits)",
                   gptoss_backend_copy(c->backend, c->host_logits, c->logits, (size_t) V * sizeof(float),
                                       gptoss_copy_backend_to_host));
        if (c->prof != NULL) prof_begin(c);
        id = gptoss_sampler_pick_host(sampler, c->host_logits, c->tokens, c->num_tokens, c->num_tokens, &c->scratch);
        if (c->prof != NULL) prof_record(c, "sampler_pick_host (host)");
        break;
    }
    if (id >= V) {
        return gptoss_fail(gptoss_status_invalid_state, "sampling produced token id %u (vocabulary size %u): "
                           "non-finite logits?", id, V);
    }
    *id_out = id;
    return gptoss_status_success;
}

enum gptoss_status gptoss_context_sample(gptoss_context_t context, gptoss_sampler_t sampler, size_t max_tokens,
                                         uint32_t* tokens_out, size_t* num_tokens_out) {
    gptoss_clear_error();
    if (context == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context is NULL");
    if (tokens_out == NULL && max_tokens != 0) return gptoss_fail(gptoss_status_invalid_argument, "tokens_out is NULL");
    if (num_tokens_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "num_tokens_out is NULL");
    if (context->num_tokens == 0) {
        return gptoss_fail(gptoss_status_invalid_state, "the context has no tokens to continue from");
    }
    size_t produced = 0;
    enum gptoss_status st = gptoss_status_success;
    while (produced < max_tokens) {
        if (context->num_tokens >= context->max_tokens) {
            st = gptoss_fail(gptoss_status_context_overflow, "context is full (%zu tokens) after %zu sampled tokens",
                             context->max_tokens, produced);
            break;
        }
        st = ensure_logits(context);
        if (st != gptoss_status_success) break;
        uint32_t id = 0;
        const uint64_t t0 = prof_start(context); /* in the phase of the forward pass before */
        st = pick_token(context, sampler, &id);
        prof_phase_add(context, t0);
        if (st != gptoss_status_success) break;
        push_token(context, id); /* pending: its K/V are computed by the next forward pass */
        tokens_out[produced++] = id;
    }
    *num_tokens_out = produced;
    /* "stops early on context_overflow": the tokens sampled so far are reported */
    if (st == gptoss_status_context_overflow && produced > 0) {
        return gptoss_status_success;
    }
    return st;
}

enum gptoss_status gptoss_context_retain(gptoss_context_t context) {
    gptoss_clear_error();
    if (context == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context is NULL");
    atomic_fetch_add_explicit(&context->ref_count, 1, memory_order_relaxed);
    return gptoss_status_success;
}

enum gptoss_status gptoss_context_release(gptoss_context_t context) {
    if (context == NULL) return gptoss_status_success;
    if (atomic_fetch_sub_explicit(&context->ref_count, 1, memory_order_acq_rel) == 1) context_free(context);
    return gptoss_status_success;
}
