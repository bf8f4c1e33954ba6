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

#include <gptoss/error.h>

#include "engine_internal.h"
#include "model.h"
#include "plan.h"
#include "util.h"

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
/* Plans a context keeps: the decode step, the full prefill chunk with and without logits,
 * and one more (a last, shorter chunk). */
#define GPTOSS_CONTEXT_PLANS 4

struct gptoss_context {
    atomic_uint_least64_t ref_count;
    struct gptoss_model* model;
    gptoss_backend_t backend;

    size_t max_tokens;        /* context length */
    uint32_t max_batch;       /* B */
    size_t num_tokens;
    size_t num_kv_tokens;
    size_t logits_pos;        /* position whose logits are in `logits`, or SIZE_MAX */

    uint32_t* tokens;         /* host [max_tokens] */
    struct gptoss_sampler_scratch scratch; /* host sampling */
    float* host_logits;       /* host sampling: [V] */

    struct gptoss_forward_buffers buf; /* backend buffers of the forward pass */
    float* prob;              /* [V]: softmax sampling's probabilities, kernels sampling's penalized logits */
    float* prob_sum;          /* [1] */
    uint32_t* sampled;        /* [1] */

    /* kernels sampling (params.sampling): the penalties' counts of the ids of
     * tokens[0, counted) on the backend ([V]) and their host copy; counts_stale: a counted
     * token was replaced (count them all again) */
    int sampling;             /* gptoss_sampling_host or gptoss_sampling_kernels */
    uint32_t* counts;
    uint32_t* host_counts;
    size_t counted;
    int counts_stale;

    struct gptoss_profile* prof; /* NULL unless params.profile */

    /* forward plans by shape (n, o), the least recently used one rebuilt for a new shape */
    struct gptoss_plan_setup setup;
    struct gptoss_plan plans[GPTOSS_CONTEXT_PLANS];
    uint64_t plan_used[GPTOSS_CONTEXT_PLANS];
    uint64_t plan_clock;

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

/* ---- profile (params.profile, engine.h; the table: engine/plan.c) ------------------- */

/* PROFILED(c, entry, call): the call's status; timed under `entry` when profiling. */
#define PROFILED(c, entry, call)                                                                 \
    (__builtin_expect((c)->prof == NULL, 1)                                                      \
         ? (call)                                                                                \
         : (gptoss_profile_begin((c)->prof, (c)->backend),                                      \
            gptoss_profile_end((c)->prof, (c)->backend, (entry), (call))))
/* KCALL of a profiled call. */
#define KCALL_PROF(c, what, entry, call) KCALL(what, PROFILED(c, entry, call))

/* Phase time: t = prof_start(c) ... prof_phase_add(c, t) around forward batches and samplings. */
static inline uint64_t prof_start(const struct gptoss_context* c) {
    return __builtin_expect(c->prof == NULL, 1) ? 0 : gptoss_now_ns();
}
static inline void prof_phase_add(struct gptoss_context* c, uint64_t t0) {
    if (__builtin_expect(c->prof == NULL, 1)) return;
    c->prof->phase_ns[c->prof->phase] += gptoss_now_ns() - t0;
}

enum gptoss_status gptoss_context_reset_profile(gptoss_context_t c) {
    gptoss_clear_error();
    if (c == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context is NULL");
    if (c->prof != NULL) memset(c->prof, 0, sizeof(*c->prof));
    return gptoss_status_success;
}

enum gptoss_status gptoss_context_print_profile(gptoss_context_t c, FILE* f) {
    gptoss_clear_error();
    if (c == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context is NULL");
    if (f == NULL) return gptoss_fail(gptoss_status_invalid_argument, "f is NULL");
    if (c->prof != NULL) gptoss_profile_print(c->prof, f);
    return gptoss_status_success;
}

/* ---- creation ------------------------------------------------------------------------ */

/* Frees everything; the statuses of the frees are dropped, so they keep the thread's
 * message (this runs after failures too). */
static void context_free(struct gptoss_context* c) {
    if (c == NULL) return;
    gptoss_error_keep_begin();
    gptoss_backend_t b = c->backend;
    const struct gptoss_forward_buffers* f = &c->buf;
    void* bufs[] = {f->kv,         f->batch_tokens, f->residual,   f->norm,   f->qkv,  f->attn,  f->gate,
                    f->expert_ids, f->expert_scores, f->expert_offsets, f->intra, f->moe_input, f->swiglu,
                    f->moe_output, f->logits,       f->argmax,     c->prob,   c->prob_sum, c->sampled,
                    c->counts};
    if (b != NULL) {
        for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
            if (bufs[i] != NULL) gptoss_backend_free(b, bufs[i]);
        }
    }
    free(c->tokens);
    free(c->host_logits);
    free(c->host_counts);
    gptoss_sampler_scratch_free(&c->scratch);
    free(c->prof);
    for (int i = 0; i < GPTOSS_CONTEXT_PLANS; i++) free(c->plans[i].calls);
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

/* Checks params (NULL = the defaults) against the model and fills in its defaults. */
static enum gptoss_status resolve_params(const struct gptoss_model* model, const struct gptoss_context_params* params,
                                         struct gptoss_context_params* p) {
    if (params != NULL) *p = *params;
    else gptoss_context_params_init(p);
    if (p->fused_ops != 0 && p->fused_ops != 1) {
        return gptoss_fail(gptoss_status_invalid_argument, "fused_ops %d is not 0 or 1", p->fused_ops);
    }
    if (p->graphs != 0 && p->graphs != 1) {
        return gptoss_fail(gptoss_status_invalid_argument, "graphs %d is not 0 or 1", p->graphs);
    }
    if (p->profile != 0 && p->profile != 1) {
        return gptoss_fail(gptoss_status_invalid_argument, "profile %d is not 0 or 1", p->profile);
    }
    if (p->sampling != gptoss_sampling_auto && p->sampling != gptoss_sampling_host &&
        p->sampling != gptoss_sampling_kernels) {
        return gptoss_fail(gptoss_status_invalid_argument, "sampling %d is not one of enum gptoss_sampling",
                           p->sampling);
    }
    if (p->backend == NULL) p->backend = model->backend;
    const int cpu = gptoss_backend_get_kind(p->backend) == gptoss_backend_kind_cpu;
    if (p->sampling == gptoss_sampling_auto) p->sampling = cpu ? gptoss_sampling_host : gptoss_sampling_kernels;
    if (p->backend != model->backend && (!cpu || gptoss_backend_get_kind(model->backend) != gptoss_backend_kind_cpu)) {
        return gptoss_fail(gptoss_status_invalid_argument, "backend %s cannot run a model on backend %s (only CPU "
                           "backends share memory)", gptoss_backend_get_name(p->backend),
                           gptoss_backend_get_name(model->backend));
    }
    const size_t model_max = model->config.context_length;
    if (p->context_length == 0) p->context_length = model_max;
    if (p->context_length > model_max) {
        return gptoss_fail(gptoss_status_invalid_argument, "context_length %zu exceeds the model's maximum %zu",
                           p->context_length, model_max);
    }
    if (p->context_length > UINT32_MAX) {
        return gptoss_fail(gptoss_status_unsupported_argument, "context_length %zu exceeds 2^32-1", p->context_length);
    }
    if (p->max_batch_tokens == 0) p->max_batch_tokens = cpu ? GPTOSS_DEFAULT_BATCH_CPU : GPTOSS_DEFAULT_BATCH_GPU;
    if (p->max_batch_tokens > p->context_length) p->max_batch_tokens = p->context_length;
    if (p->max_batch_tokens > 65536) {
        return gptoss_fail(gptoss_status_invalid_argument, "max_batch_tokens %zu exceeds 65536", p->max_batch_tokens);
    }
    if (p->moe_dense_min_rows == 0) p->moe_dense_min_rows = cpu ? GPTOSS_MOE_DENSE_MIN_ROWS_CPU : GPTOSS_MOE_DENSE_MIN_ROWS_CUDA;
    return gptoss_status_success;
}

/* The host buffers: tokens, logits, the sampler's scratch or the counts, the plans, the
 * profile. */
static enum gptoss_status alloc_host(struct gptoss_context* c, int profile) {
    const uint32_t V = c->model->vocabulary_size;
    c->tokens = calloc(c->max_tokens, sizeof(uint32_t));
    int failed = c->tokens == NULL;
    if (c->sampling == gptoss_sampling_host) {
        failed |= (c->host_logits = malloc((size_t) V * sizeof(float))) == NULL;
        failed |= gptoss_sampler_scratch_init(&c->scratch, V) != 0;
    } else {
        failed |= (c->host_counts = calloc(V, sizeof(uint32_t))) == NULL;
    }
    for (int i = 0; i < GPTOSS_CONTEXT_PLANS; i++) {
        c->plans[i].capacity = gptoss_plan_max_calls(c->model->config.num_blocks);
        c->plans[i].calls = calloc(c->plans[i].capacity, sizeof(struct gptoss_plan_call));
        failed |= c->plans[i].calls == NULL;
    }
    if (failed || (profile && (c->prof = calloc(1, sizeof(*c->prof))) == NULL)) {
        return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate the context's host buffers (%zu tokens)",
                           c->max_tokens);
    }
    return gptoss_status_success;
}

/* The backend buffers: the KV cache, the forward pass's, the device sampler's. */
static enum gptoss_status alloc_backend(struct gptoss_context* c) {
    const struct gptoss_model_config* cfg = &c->model->config;
    const size_t B = c->max_batch, H = cfg->embedding_dim, D = cfg->head_dim, Hq = cfg->num_heads,
                 Hkv = cfg->num_kv_heads, E = cfg->num_experts, K = cfg->num_active_experts, I = cfg->mlp_dim,
                 L = cfg->num_blocks, V = c->model->vocabulary_size;
    const size_t QKV = D * (Hq + 2 * Hkv);
    size_t kv_count;
    if (mul_ovf(L * Hkv, c->max_tokens, &kv_count) || mul_ovf(kv_count, 2 * D, &kv_count)) {
        return gptoss_fail(gptoss_status_insufficient_memory, "KV cache size overflows");
    }
    struct gptoss_forward_buffers* f = &c->buf;
    enum gptoss_status st;
#define ALLOC(owner, field, count, type)                                                                 \
    do {                                                                                                 \
        void* p_ = NULL;                                                                                 \
        if ((st = alloc_buffer(c, &p_, (count), sizeof(type), #field)) != gptoss_status_success) return st; \
        (owner)->field = p_;                                                                             \
    } while (0)
    ALLOC(f, kv, kv_count, float);
    ALLOC(f, batch_tokens, B, uint32_t);
    ALLOC(f, residual, B * H, float);
    ALLOC(f, norm, B * H, float);
    ALLOC(f, qkv, B * QKV, float);
    ALLOC(f, attn, B * Hq * D, float);
    ALLOC(f, gate, B * E, float);
    ALLOC(f, expert_ids, B * K, uint32_t);
    ALLOC(f, expert_scores, B * K, float);
    ALLOC(f, expert_offsets, E + 1, uint32_t);
    ALLOC(f, intra, B * K, uint32_t);
    ALLOC(f, moe_input, B * K * H, float);
    ALLOC(f, swiglu, B * K * I, float);
    ALLOC(f, moe_output, B * K * H, float);
    ALLOC(f, logits, V, float);
    ALLOC(f, argmax, 1, uint32_t);
    ALLOC(c, prob, V, float);
    ALLOC(c, prob_sum, 1, float);
    ALLOC(c, sampled, 1, uint32_t);
    if (c->sampling == gptoss_sampling_kernels) ALLOC(c, counts, V, uint32_t);
#undef ALLOC
    return gptoss_status_success;
}

enum gptoss_status gptoss_context_create_with_params(gptoss_model_t model, const struct gptoss_context_params* params,
                                                     gptoss_context_t* context_out) {
    gptoss_clear_error();
    if (model == NULL) return gptoss_fail(gptoss_status_invalid_argument, "model is NULL");
    if (context_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context_out is NULL");
    struct gptoss_context_params p;
    enum gptoss_status st = resolve_params(model, params, &p);
    if (st != gptoss_status_success) return st;

    struct gptoss_context* c = calloc(1, sizeof(*c));
    if (c == NULL) return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate the context");
    atomic_init(&c->ref_count, 1);
    gptoss_model_retain(model);
    c->model = model;
    c->backend = p.backend;
    c->max_tokens = p.context_length;
    c->max_batch = (uint32_t) p.max_batch_tokens;
    c->logits_pos = SIZE_MAX;
    c->sampling = p.sampling;
    c->counts_stale = 1; /* the backend's counts are not written yet */
    if ((st = alloc_host(c, p.profile)) != gptoss_status_success || (st = alloc_backend(c)) != gptoss_status_success) {
        context_free(c);
        return st;
    }
    c->setup = (struct gptoss_plan_setup){model, &c->buf, c->max_tokens, p.moe_dense_min_rows, p.fused_ops};
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
}

/* ---- forward pass ----------------------------------------------------------------- */

/* The plan of n tokens with o rows of logits at position s: a kept one, or one built now
 * in place of the least recently used. */
static struct gptoss_plan* plan_for(struct gptoss_context* c, uint32_t n, uint32_t o, size_t s) {
    int slot = 0;
    for (int i = 0; i < GPTOSS_CONTEXT_PLANS; i++) {
        if (c->plans[i].n == n && c->plans[i].o == o) {
            slot = i;
            goto found;
        }
        if (c->plan_used[i] < c->plan_used[slot]) slot = i;
    }
    gptoss_plan_build(&c->plans[slot], &c->setup, n, o);
found:
    c->plan_used[slot] = ++c->plan_clock;
    gptoss_plan_set_position(&c->plans[slot], s);
    return &c->plans[slot];
}

static enum gptoss_status copy_batch_tokens(struct gptoss_context* c, size_t s, uint32_t n) {
    KCALL_PROF(c, "copy of the batch's token ids", gptoss_profile_copy_tokens,
               gptoss_backend_copy(c->backend, c->buf.batch_tokens, c->tokens + s, (size_t) n * sizeof(uint32_t),
                                   gptoss_copy_host_to_backend));
    return gptoss_status_success;
}

/* One batch: tokens [s, s+n) (n <= B) with o in {0, 1} rows of logits (the last token):
 * copy their ids, run the plan. */
static enum gptoss_status forward_batch(struct gptoss_context* c, size_t s, uint32_t n, uint32_t o) {
    const enum gptoss_status st = copy_batch_tokens(c, s, n);
    if (st != gptoss_status_success) return st;
    return gptoss_plan_run(plan_for(c, n, o, s), c->backend, c->prof);
}

/* Records the decode step at position s (one token, logits) in graph slot. */
static enum gptoss_status record_decode_step(struct gptoss_context* c, int slot, size_t s) {
    c->graph_pos[slot] = SIZE_MAX;
    const enum gptoss_status st = gptoss_plan_record(plan_for(c, 1, 1, s), c->backend, c->graphs[slot]);
    if (st == gptoss_status_success) c->graph_pos[slot] = s;
    return st;
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
 * and argmax end up in c->buf.logits / argmax. The K/V of those positions are (re)written. */
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

/* Makes c->buf.logits / argmax hold the logits of the last token (num_tokens >= 1). */
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
    if (p < c->counted && c->tokens[p] != id) c->counts_stale = 1;
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
    st = PROFILED(context, gptoss_profile_copy_logits,
                  gptoss_backend_copy(context->backend, logits_out, context->buf.logits, (size_t) V * sizeof(float),
                                      gptoss_copy_backend_to_host));
    prof_phase_add(context, t0);
    if (st != gptoss_status_success) return fail_with_context(st, "copy of the logits");
    return gptoss_status_success;
}

/* Kernels sampling with penalties: one copy of the whole array of counts rather than this
 * many copies of one count (each a call into the backend). */
#define GPTOSS_COUNTS_FULL_COPY 32

/* Makes the counts (host and backend) those of the ids of tokens[0, num_tokens): one
 * 4-byte copy per token appended or dropped since the last time, or, after a replaced
 * token or many changes, all of them counted again and copied at once. */
static enum gptoss_status sync_counts(struct gptoss_context* c) {
    const uint32_t V = c->model->vocabulary_size;
    const size_t n = c->num_tokens;
    const size_t changes = c->counted > n ? c->counted - n : n - c->counted;
    if (c->counts_stale || changes > GPTOSS_COUNTS_FULL_COPY) {
        memset(c->host_counts, 0, (size_t) V * sizeof(uint32_t));
        for (size_t i = 0; i < n; i++) c->host_counts[c->tokens[i]]++;
        c->counted = n;
        c->counts_stale = 1; /* until the copy succeeds */
        KCALL_PROF(c, "copy of the token counts", gptoss_profile_copy_counts,
                   gptoss_backend_copy(c->backend, c->counts, c->host_counts, (size_t) V * sizeof(uint32_t),
                                       gptoss_copy_host_to_backend));
        c->counts_stale = 0;
        return gptoss_status_success;
    }
    while (c->counted != n) {
        const int append = c->counted < n;
        const uint32_t id = c->tokens[append ? c->counted : c->counted - 1];
        c->host_counts[id] = append ? c->host_counts[id] + 1 : c->host_counts[id] - 1;
        c->counted = append ? c->counted + 1 : c->counted - 1;
        c->counts_stale = 1; /* until the copy succeeds */
        KCALL_PROF(c, "copy of a token count", gptoss_profile_copy_counts,
                   gptoss_backend_copy(c->backend, &c->counts[id], &c->host_counts[id], sizeof(uint32_t),
                                       gptoss_copy_host_to_backend));
        c->counts_stale = 0;
    }
    return gptoss_status_success;
}

/* Temperature alone, host sampling: f32_softmax (into c->prob) and f32_sample on the
 * backend. */
static enum gptoss_status pick_with_softmax(struct gptoss_context* c, const struct gptoss_sampler* s) {
    const uint32_t V = c->model->vocabulary_size;
    const struct gptoss_f32_softmax_args softmax = {c->buf.logits, c->buf.argmax, c->prob, c->prob_sum, 1, V,
                                                     s->temperature};
    KCALL("softmax", gptoss_plan_call(c->backend, c->prof, gptoss_kernel_f32_softmax, &softmax));
    const struct gptoss_f32_sample_args sample = {c->prob, c->prob_sum, c->sampled, V,
                                                  s->seed + GPTOSS_SAMPLER_SEED_OFFSET, c->num_tokens};
    KCALL("sample", gptoss_plan_call(c->backend, c->prof, gptoss_kernel_f32_sample, &sample));
    return gptoss_status_success;
}

/* Kernels sampling: the penalties (into c->prob) and the draw on the backend. */
static enum gptoss_status pick_with_kernels(struct gptoss_context* c, const struct gptoss_sampler* s) {
    const uint32_t V = c->model->vocabulary_size;
    const float* logits = c->buf.logits;
    if (gptoss_sampler_has_penalties(s)) {
        const enum gptoss_status st = sync_counts(c);
        if (st != gptoss_status_success) return st;
        const struct gptoss_f32_apply_penalties_args penalties = {logits, c->counts, c->prob, V, s->presence_penalty,
                                                                  s->frequency_penalty};
        KCALL("penalties", gptoss_plan_call(c->backend, c->prof, gptoss_kernel_f32_apply_penalties, &penalties));
        logits = c->prob;
    }
    const struct gptoss_f32_sample_logits_args draw = {logits, c->sampled, V, s->temperature, s->top_k, s->top_p,
                                                       s->seed + GPTOSS_SAMPLER_SEED_OFFSET, c->num_tokens};
    KCALL("sample", gptoss_plan_call(c->backend, c->prof, gptoss_kernel_f32_sample_logits, &draw));
    return gptoss_status_success;
}

/* Picks the next token from the logits of the last token (already computed). */
static enum gptoss_status pick_token(struct gptoss_context* c, const struct gptoss_sampler* sampler, uint32_t* id_out) {
    const enum gptoss_sampler_mode mode = gptoss_sampler_get_mode(sampler, c->sampling);
    const uint32_t V = c->model->vocabulary_size;
    uint32_t id = UINT32_MAX;
    switch (mode) {
    case gptoss_sampler_mode_greedy:
        KCALL_PROF(c, "copy of the argmax", gptoss_profile_copy_argmax,
                   gptoss_backend_copy(c->backend, &id, c->buf.argmax, sizeof(uint32_t), gptoss_copy_backend_to_host));
        break;
    case gptoss_sampler_mode_softmax:
    case gptoss_sampler_mode_kernels: {
        const enum gptoss_status st =
            mode == gptoss_sampler_mode_kernels ? pick_with_kernels(c, sampler) : pick_with_softmax(c, sampler);
        if (st != gptoss_status_success) return st;
        KCALL_PROF(c, "copy of the sampled token", gptoss_profile_copy_sampled,
                   gptoss_backend_copy(c->backend, &id, c->sampled, sizeof(uint32_t), gptoss_copy_backend_to_host));
        break;
    }
    default:
        KCALL_PROF(c, "copy of the logits", gptoss_profile_copy_logits,
                   gptoss_backend_copy(c->backend, c->host_logits, c->buf.logits, (size_t) V * sizeof(float),
                                       gptoss_copy_backend_to_host));
        if (c->prof != NULL) gptoss_profile_begin(c->prof, c->backend);
        id = gptoss_sampler_pick_host(sampler, c->host_logits, c->tokens, c->num_tokens, c->num_tokens, &c->scratch);
        if (c->prof != NULL) gptoss_profile_end(c->prof, c->backend, gptoss_profile_host_sampler, gptoss_status_success);
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
