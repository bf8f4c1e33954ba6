/* Batches: many sequences over one paged KV cache, run together in forward steps
 * (engine.h), built only from the public kernels of <gptoss/kernels.h>.
 *
 * A step: choose its rows (the one token of every decoding sequence, then prompt chunks
 * first come, first served, up to max_batch_tokens rows), order them with the rows that
 * produce logits last (one per sequence that needs them: its last token), prepare the
 * blocks the rows write (kv.c), copy the rows' token ids, positions and sequences and the
 * changed block table entries to the backend, run the plan of (rows, logits rows), then
 * draw each generating sequence's token with its sampler. A sequence's numbers depend only
 * on its own tokens: the kernels compute each row on its own (see engine.h, numerics).
 *
 * State of a sequence: tokens[0, num_tokens); the K/V of positions [0, kv.kv_tokens) are
 * in its blocks. A drawn token is pending (kv_tokens = num_tokens - 1) until the next step
 * computes it. Every buffer is allocated at creation; a decode step allocates nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gptoss/error.h>

#include "batch.h"
#include "engine_internal.h"
#include "model.h"
#include "plan.h"
#include "util.h"

/* Defaults of the options (gptoss_context_params). Prefill chunk: GPU 512 tokens give the
 * MoE GEMMs ~64 rows per expert on gpt-oss-20b (4 of 32 experts), filling the tensor-core
 * tiles that 128-token chunks (~16 rows) run a quarter full; CPU: the GEMMs reach their rate
 * from 128 tokens on. MoE paths: the CPU runs the per-token (decode) kernels for any number
 * of rows (they group the pairs by expert themselves and sum each row in one order for any
 * batch: the results do not depend on the step); CUDA the tensor-core GEMMs once the experts
 * hold 4 rows each on average (rows x active experts >= 4 x experts: 32 rows of 20b, 128 of
 * 120b), the per-pair kernels below (on an H200, 20b: 16 streams, 2 rows per expert, 1,177
 * tok/s per pair vs 924 with the GEMMs; 32 streams 1,211 vs 1,299; 64 streams GEMMs 2,355 -
 * 2,585, per-pair 1,795; 120b, 16 streams: 805 vs 381; docs/CUDA_NOTES.md). */
#define DEFAULT_BATCH_CPU 128u
#define DEFAULT_BATCH_GPU 512u
#define MOE_DENSE_MIN_ROWS_CPU UINT32_MAX
#define MOE_DENSE_MIN_PAIRS_PER_EXPERT_CUDA 4u
/* Plans kept (by shape) and decode steps kept as recorded graphs (by number of rows). */
#define NUM_PLANS 8
#define PLAN_RUNS 16 /* attention runs a plan has room for at first (batch_invariant) */
#define NUM_GRAPHS 4

struct graph_slot {
    gptoss_graph_t graph;
    uint32_t n;    /* decode rows recorded (0: none) */
    int recorded;  /* 0: the shape ran once directly (sizing the scratch), not yet recorded */
    uint64_t used;
};

struct gptoss_batch {
    atomic_uint_least64_t ref_count;
    struct gptoss_model* model;
    gptoss_backend_t backend;
    struct gptoss_context_params params; /* resolved */
    uint32_t B, S, table_stride;

    struct gptoss_kv_pool kv;
    struct gptoss_sequence** slots; /* [S]: the live sequences by slot */
    uint32_t num_live;
    uint64_t created;   /* sequences created (their order) */
    uint64_t steps;     /* steps run (the logits rows' generation) */

    /* host staging of a step */
    uint32_t* rows;     /* [3][B]: token ids, positions, seq ids (one copy to the backend) */
    struct gptoss_sequence** members; /* [S]: the sequences of the step */
    uint32_t* chunk;    /* [S]: rows of each member */
    uint32_t* draws;    /* [S]: the argmax of the last step's logits rows, when argmax_valid */
    uint32_t* sampled_host; /* [S]: the backend draws' tokens, by logits row */
    uint32_t argmax_rows;
    int argmax_valid;
    float* host_logits; /* host sampling: [V] */
    struct gptoss_sampler_scratch scratch; /* host sampling */
    uint32_t* host_counts; /* kernels sampling: [S][V], the counts of each slot's sequence */

    struct gptoss_forward_buffers buf; /* backend buffers of the forward pass */
    uint32_t* dev_rows; /* [3][B] (buf.batch_tokens, positions, seq_ids point into it) */
    float* prob;        /* [V]: softmax sampling's probabilities, kernels sampling's penalized logits */
    float* prob_sum;    /* [1] */
    uint32_t* sampled;  /* [S] */
    uint32_t* counts;   /* kernels sampling: [S][V], the backend's copy of host_counts */

    struct gptoss_profile* prof; /* NULL unless params.profile */
    struct gptoss_plan_setup setup;
    uint32_t kinds[GPTOSS_PLAN_KINDS]; /* the step's rows by kind (lay_out; batch_invariant) */
    uint32_t* runs;                    /* and its prompt rows' attention runs, [2 num_runs] */
    uint32_t num_runs;
    struct gptoss_plan plans[NUM_PLANS];
    uint64_t plan_used[NUM_PLANS];
    uint64_t clock;
    struct graph_slot graphs[NUM_GRAPHS]; /* CUDA decode steps; graph NULL without graphs */
};

/* Re-raises the current message with a prefix. */
static enum gptoss_status fail_with_context(enum gptoss_status st, const char* what) {
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
    return gptoss_fail(st, "%s: %s", what, msg);
}

#define KCALL(what, call)                                                      \
    do {                                                                       \
        const enum gptoss_status st_ = (call);                                 \
        if (st_ != gptoss_status_success) return fail_with_context(st_, what); \
    } while (0)

/* ---- profile (params.profile, engine.h; the table: engine/plan.c) ------------------- */

/* PROFILED(b, entry, call): the call's status; timed under `entry` when profiling. */
#define PROFILED(b, entry, call)                                                                 \
    (__builtin_expect((b)->prof == NULL, 1)                                                      \
         ? (call)                                                                                \
         : (gptoss_profile_begin((b)->prof, (b)->backend),                                      \
            gptoss_profile_end((b)->prof, (b)->backend, (entry), (call))))
#define KCALL_PROF(b, what, entry, call) KCALL(what, PROFILED(b, entry, call))

static inline uint64_t prof_start(const struct gptoss_batch* b) {
    return __builtin_expect(b->prof == NULL, 1) ? 0 : gptoss_now_ns();
}
static inline void prof_phase_add(struct gptoss_batch* b, uint64_t t0) {
    if (__builtin_expect(b->prof == NULL, 1)) return;
    b->prof->phase_ns[b->prof->phase] += gptoss_now_ns() - t0;
}

enum gptoss_status gptoss_batch_reset_profile(gptoss_batch_t b) {
    gptoss_clear_error();
    if (b == NULL) return gptoss_fail(gptoss_status_invalid_argument, "batch is NULL");
    if (b->prof != NULL) memset(b->prof, 0, sizeof(*b->prof));
    return gptoss_status_success;
}

enum gptoss_status gptoss_batch_print_profile(gptoss_batch_t b, FILE* f) {
    gptoss_clear_error();
    if (b == NULL) return gptoss_fail(gptoss_status_invalid_argument, "batch is NULL");
    if (f == NULL) return gptoss_fail(gptoss_status_invalid_argument, "f is NULL");
    if (b->prof != NULL) gptoss_profile_print(b->prof, f);
    return gptoss_status_success;
}

/* ---- creation ------------------------------------------------------------------------ */

static void batch_free(struct gptoss_batch* b) {
    if (b == NULL) return;
    gptoss_error_keep_begin();
    const struct gptoss_forward_buffers* f = &b->buf;
    void* bufs[] = {b->dev_rows, f->tables[0],  f->tables[1], f->residual, f->norm,      f->qkv,
                    f->attn,     f->gate,       f->expert_ids, f->expert_scores, f->expert_offsets, f->intra,
                    f->moe_input, f->swiglu,    f->moe_output, f->logits, f->argmax,    b->prob,
                    b->prob_sum, b->sampled,    b->counts};
    if (b->backend != NULL) {
        for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) {
            if (bufs[i] != NULL) gptoss_backend_free(b->backend, bufs[i]);
        }
    }
    gptoss_kv_pool_free(&b->kv);
    free(b->slots);
    free(b->rows);
    free(b->members);
    free(b->chunk);
    free(b->draws);
    free(b->sampled_host);
    free(b->host_logits);
    free(b->host_counts);
    gptoss_sampler_scratch_free(&b->scratch);
    free(b->prof);
    for (int i = 0; i < NUM_PLANS; i++) {
        free(b->plans[i].calls);
        free(b->plans[i].runs);
    }
    free(b->runs);
    for (int i = 0; i < NUM_GRAPHS; i++) gptoss_graph_release(b->graphs[i].graph);
    if (b->model != NULL) gptoss_model_release(b->model);
    free(b);
    gptoss_error_keep_end();
}

void gptoss_context_params_init(struct gptoss_context_params* params) {
    if (params == NULL) return;
    memset(params, 0, sizeof(*params));
    params->fused_ops = 1;
    params->graphs = 1;
    params->batch_invariant = gptoss_batch_invariant_on;
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
    if (p->batch_invariant != gptoss_batch_invariant_off && p->batch_invariant != gptoss_batch_invariant_on &&
        p->batch_invariant != gptoss_batch_invariant_many) {
        return gptoss_fail(gptoss_status_invalid_argument, "batch_invariant %d is not 0 (off), 1 (on) or 2 (many)",
                           p->batch_invariant);
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
    if (p->max_sequences == 0) p->max_sequences = 1;
    if (p->max_batch_tokens == 0) p->max_batch_tokens = cpu ? DEFAULT_BATCH_CPU : DEFAULT_BATCH_GPU;
    /* more rows than one sequence can use only serve many (at least a row each) */
    const size_t rows_used = p->context_length > p->max_sequences ? p->context_length : p->max_sequences;
    if (p->max_batch_tokens > rows_used) p->max_batch_tokens = rows_used;
    if (params == NULL || params->max_batch_tokens == 0) {
        if (p->max_batch_tokens < p->max_sequences) p->max_batch_tokens = p->max_sequences;
    }
    if (p->max_batch_tokens > 65536) {
        return gptoss_fail(gptoss_status_invalid_argument, "max_batch_tokens %zu exceeds 65536", p->max_batch_tokens);
    }
    const struct gptoss_model_config* cfg = &model->config;
    if (p->moe_dense_min_rows == 0) {
        p->moe_dense_min_rows = cpu ? MOE_DENSE_MIN_ROWS_CPU
                                    : (MOE_DENSE_MIN_PAIRS_PER_EXPERT_CUDA * cfg->num_experts + cfg->num_active_experts - 1) /
                                          cfg->num_active_experts;
    }
    if (p->max_sequences > p->max_batch_tokens) {
        return gptoss_fail(gptoss_status_invalid_argument,
                           "max_sequences %u exceeds max_batch_tokens %zu (each decoding sequence takes a row of a step)",
                           p->max_sequences, p->max_batch_tokens);
    }
    const uint64_t block_bytes = gptoss_kv_block_bytes(cfg->num_blocks, cfg->num_kv_heads, cfg->head_dim);
    const uint64_t per_seq = gptoss_kv_seq_blocks(cfg->attention_window, p->context_length, p->max_batch_tokens);
    if (p->kv_budget == 0) {
        p->kv_budget = (size_t) (per_seq * p->max_sequences * block_bytes);
    } else if (p->kv_budget / block_bytes == 0) {
        return gptoss_fail(gptoss_status_invalid_argument,
                           "kv_budget %zu bytes is below one KV block (%llu bytes: %u positions of every layer)",
                           p->kv_budget, (unsigned long long) block_bytes, GPTOSS_KV_BLOCK_SIZE);
    }
    if (p->kv_budget / block_bytes > UINT32_MAX - 1) {
        return gptoss_fail(gptoss_status_unsupported_argument, "kv_budget %zu bytes exceeds 2^32-2 KV blocks",
                           p->kv_budget);
    }
    return gptoss_status_success;
}

static int mul_ovf(size_t a, size_t b, size_t* out) { return __builtin_mul_overflow(a, b, out); }

static enum gptoss_status alloc_buffer(struct gptoss_batch* b, void** ptr, size_t count, size_t elem,
                                       const char* name) {
    size_t bytes;
    if (mul_ovf(count, elem, &bytes)) {
        return gptoss_fail(gptoss_status_insufficient_memory, "batch buffer %s: size overflows", name);
    }
    if (bytes == 0) bytes = 64;
    enum gptoss_status st = gptoss_backend_alloc(b->backend, bytes, ptr);
    if (st != gptoss_status_success) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
        return gptoss_fail(st, "cannot allocate the %s (%zu bytes) on %s: %s", name, bytes,
                           gptoss_backend_get_name(b->backend), msg);
    }
    return gptoss_status_success;
}

/* The host buffers: staging, logits and the sampler's scratch or the counts, the plans,
 * the profile. */
/* Room in plan for the calls of a model of num_layers layers and `runs` attention runs
 * (its arrays allocated or grown; kept as they were on failure): 0, or -1 out of memory. */
static int plan_reserve(struct gptoss_plan* plan, uint32_t num_layers, uint32_t runs) {
    const uint32_t capacity = gptoss_plan_max_calls_runs(num_layers, runs);
    struct gptoss_plan_call* calls = realloc(plan->calls, (size_t) capacity * sizeof(*calls));
    if (calls == NULL) return -1;
    plan->calls = calls;
    uint32_t* r = realloc(plan->runs, (size_t) 2 * runs * sizeof(*r));
    if (r == NULL) return -1;
    plan->runs = r;
    plan->capacity = capacity;
    plan->runs_capacity = runs;
    return 0;
}

static enum gptoss_status alloc_host(struct gptoss_batch* b) {
    const uint32_t V = b->model->vocabulary_size;
    b->slots = calloc(b->S, sizeof(*b->slots));
    b->rows = calloc((size_t) 3 * b->B, sizeof(uint32_t));
    b->members = calloc(b->S, sizeof(*b->members));
    b->chunk = calloc(b->S, sizeof(uint32_t));
    b->draws = calloc(b->S, sizeof(uint32_t));
    b->sampled_host = calloc(b->S, sizeof(uint32_t));
    int failed = b->sampled_host == NULL;
    if (b->params.sampling == gptoss_sampling_host) {
        failed |= (b->host_logits = malloc((size_t) V * sizeof(float))) == NULL;
        failed |= gptoss_sampler_scratch_init(&b->scratch, V) != 0;
    } else {
        failed |= (b->host_counts = calloc((size_t) b->S * V, sizeof(uint32_t))) == NULL;
    }
    /* attention runs of prompt rows: at most two per member (batch_invariant, lay_out); a
     * plan has room for PLAN_RUNS of them and grows when a step has more (plan_for) */
    failed |= (b->runs = calloc((size_t) 4 * b->S, sizeof(uint32_t))) == NULL;
    const uint32_t runs = 2 * b->S < PLAN_RUNS ? 2 * b->S : PLAN_RUNS;
    for (int i = 0; i < NUM_PLANS; i++) failed |= plan_reserve(&b->plans[i], b->model->config.num_blocks, runs) != 0;
    if (b->slots == NULL || b->rows == NULL || b->members == NULL || b->chunk == NULL || b->draws == NULL || failed || (b->params.profile && (b->prof = calloc(1, sizeof(*b->prof))) == NULL)) {
        return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate the batch's host buffers");
    }
    return gptoss_status_success;
}

/* The backend buffers: the forward pass's (B rows, S logits rows), the device sampler's,
 * the step's rows and tables. */
static enum gptoss_status alloc_backend(struct gptoss_batch* b) {
    const struct gptoss_model_config* cfg = &b->model->config;
    const size_t B = b->B, S = b->S, H = cfg->embedding_dim, D = cfg->head_dim, Hq = cfg->num_heads,
                 Hkv = cfg->num_kv_heads, E = cfg->num_experts, K = cfg->num_active_experts, I = cfg->mlp_dim,
                 V = b->model->vocabulary_size;
    const size_t QKV = D * (Hq + 2 * Hkv);
    struct gptoss_forward_buffers* f = &b->buf;
    enum gptoss_status st;
#define ALLOC(owner, field, count, type, what)                                                            \
    do {                                                                                                  \
        void* p_ = NULL;                                                                                  \
        if ((st = alloc_buffer(b, &p_, (count), sizeof(type), what)) != gptoss_status_success) return st; \
        (owner)->field = p_;                                                                              \
    } while (0)
    ALLOC(b, dev_rows, 3 * B, uint32_t, "step's rows");
    ALLOC(f, tables[0], S * b->table_stride, uint32_t, "block tables");
    ALLOC(f, tables[1], S * b->table_stride, uint32_t, "block tables");
    ALLOC(f, residual, B * H, float, "residual stream");
    ALLOC(f, norm, B * H, float, "norm buffer");
    ALLOC(f, qkv, B * QKV, float, "qkv buffer");
    ALLOC(f, attn, B * Hq * D, float, "attention buffer");
    ALLOC(f, gate, B * E, float, "router scores");
    ALLOC(f, expert_ids, B * K, uint32_t, "expert ids");
    ALLOC(f, expert_scores, B * K, float, "expert scores");
    ALLOC(f, expert_offsets, E + 1, uint32_t, "expert offsets");
    ALLOC(f, intra, B * K, uint32_t, "intra-expert offsets");
    ALLOC(f, moe_input, B * K * H, float, "MoE input");
    ALLOC(f, swiglu, B * K * I, float, "MoE activations");
    ALLOC(f, moe_output, B * K * H, float, "MoE output");
    ALLOC(f, logits, S * V, float, "logits");
    ALLOC(f, argmax, S, uint32_t, "argmax");
    ALLOC(b, prob, V, float, "sampler's probabilities");
    ALLOC(b, prob_sum, 1, float, "sampler's sum");
    ALLOC(b, sampled, S, uint32_t, "sampled tokens");
    if (b->params.sampling == gptoss_sampling_kernels) ALLOC(b, counts, S * V, uint32_t, "token counts");
#undef ALLOC
    f->kv = &b->kv;
    f->batch_tokens = b->dev_rows;
    f->positions = b->dev_rows + B;
    f->seq_ids = b->dev_rows + 2 * B;
    return gptoss_status_success;
}

enum gptoss_status gptoss_batch_create(gptoss_model_t model, const struct gptoss_context_params* params,
                                       gptoss_batch_t* batch_out) {
    gptoss_clear_error();
    if (model == NULL) return gptoss_fail(gptoss_status_invalid_argument, "model is NULL");
    if (batch_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "batch_out is NULL");
    struct gptoss_context_params p;
    enum gptoss_status st = resolve_params(model, params, &p);
    if (st != gptoss_status_success) return st;

    struct gptoss_batch* b = calloc(1, sizeof(*b));
    if (b == NULL) return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate the batch");
    atomic_init(&b->ref_count, 1);
    gptoss_model_retain(model);
    b->model = model;
    b->backend = p.backend;
    b->params = p;
    b->B = (uint32_t) p.max_batch_tokens;
    b->S = p.max_sequences;
    b->table_stride = (uint32_t) ((p.context_length + GPTOSS_KV_BLOCK_SIZE - 1) / GPTOSS_KV_BLOCK_SIZE);
    const struct gptoss_model_config* cfg = &model->config;
    const uint64_t num_blocks = p.kv_budget / gptoss_kv_block_bytes(cfg->num_blocks, cfg->num_kv_heads, cfg->head_dim);
    if ((st = alloc_host(b)) != gptoss_status_success ||
        (st = gptoss_kv_pool_init(&b->kv, b->backend, cfg->num_blocks, cfg->num_kv_heads, cfg->head_dim,
                                  cfg->attention_window, (uint32_t) num_blocks)) != gptoss_status_success ||
        (st = alloc_backend(b)) != gptoss_status_success) {
        batch_free(b);
        return st;
    }
    b->setup = (struct gptoss_plan_setup){model, &b->buf, b->S, b->table_stride, p.moe_dense_min_rows, p.fused_ops,
                                          gptoss_backend_get_kind(b->backend) != gptoss_backend_kind_cpu,
                                          p.batch_invariant == gptoss_batch_invariant_many ? gptoss_row_order_many
                                                                                            : gptoss_row_order_one};
    if (p.graphs && b->prof == NULL) {
        for (int i = 0; i < NUM_GRAPHS; i++) {
            if (gptoss_graph_create(b->backend, &b->graphs[i].graph) != gptoss_status_success) {
                for (int j = 0; j < i; j++) {
                    gptoss_graph_release(b->graphs[j].graph);
                    b->graphs[j].graph = NULL;
                }
                gptoss_clear_error(); /* CPU backends: no graphs, kernels run directly */
                break;
            }
        }
    }
    *batch_out = b;
    return gptoss_status_success;
}

const struct gptoss_context_params* gptoss_batch_params(const struct gptoss_batch* batch) { return &batch->params; }

enum gptoss_status gptoss_batch_get_info(gptoss_batch_t b, struct gptoss_batch_info* info_out) {
    gptoss_clear_error();
    if (b == NULL) return gptoss_fail(gptoss_status_invalid_argument, "batch is NULL");
    if (info_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "info_out is NULL");
    const struct gptoss_model_config* cfg = &b->model->config;
    uint32_t free_blocks = 0, cached = 0;
    gptoss_kv_pool_counts(&b->kv, &free_blocks, &cached);
    *info_out = (struct gptoss_batch_info){
        .context_length = b->params.context_length,
        .max_batch_tokens = b->B,
        .max_sequences = b->S,
        .num_sequences = b->num_live,
        .block_size = b->kv.block_size,
        .block_bytes = (size_t) gptoss_kv_block_bytes(cfg->num_blocks, cfg->num_kv_heads, cfg->head_dim),
        .num_blocks = b->kv.num_blocks,
        .reserved_blocks = (size_t) b->kv.reserved,
        .free_blocks = free_blocks,
        .cached_blocks = cached,
    };
    return gptoss_status_success;
}

enum gptoss_status gptoss_batch_get_sequence_blocks(gptoss_batch_t b, size_t max_tokens, size_t* blocks_out) {
    gptoss_clear_error();
    if (b == NULL) return gptoss_fail(gptoss_status_invalid_argument, "batch is NULL");
    if (blocks_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "blocks_out is NULL");
    if (max_tokens == 0) max_tokens = b->params.context_length;
    *blocks_out = gptoss_kv_seq_blocks(b->kv.window, max_tokens, b->B);
    return gptoss_status_success;
}

enum gptoss_status gptoss_batch_retain(gptoss_batch_t b) {
    gptoss_clear_error();
    if (b == NULL) return gptoss_fail(gptoss_status_invalid_argument, "batch is NULL");
    atomic_fetch_add_explicit(&b->ref_count, 1, memory_order_relaxed);
    return gptoss_status_success;
}

enum gptoss_status gptoss_batch_release(gptoss_batch_t b) {
    if (b == NULL) return gptoss_status_success;
    if (atomic_fetch_sub_explicit(&b->ref_count, 1, memory_order_acq_rel) == 1) batch_free(b);
    return gptoss_status_success;
}

/* ---- sequences --------------------------------------------------------------------- */

enum gptoss_status gptoss_batch_sequence_create(struct gptoss_batch* b, size_t max_tokens,
                                                struct gptoss_sequence** sequence_out) {
    if (max_tokens == 0) max_tokens = b->params.context_length;
    if (max_tokens > b->params.context_length) {
        return gptoss_fail(gptoss_status_invalid_argument, "max_tokens %zu exceeds the batch's context_length %zu",
                           max_tokens, b->params.context_length);
    }
    if (b->num_live == b->S) {
        return gptoss_fail(gptoss_status_insufficient_resources, "the batch holds its maximum of %u sequences", b->S);
    }
    struct gptoss_sequence* s = calloc(1, sizeof(*s));
    if (s == NULL || (s->tokens = malloc(max_tokens * sizeof(uint32_t))) == NULL ||
        (s->drawn = calloc(max_tokens, 1)) == NULL) {
        if (s != NULL) free(s->tokens);
        free(s);
        return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate a sequence of %zu tokens", max_tokens);
    }
    const enum gptoss_status st = gptoss_kv_seq_init(&b->kv, &s->kv, max_tokens, b->B);
    if (st != gptoss_status_success) {
        free(s->tokens);
        free(s->drawn);
        free(s);
        return st;
    }
    atomic_init(&s->ref_count, 1);
    uint32_t slot = 0;
    while (b->slots[slot] != NULL) slot++;
    b->slots[slot] = s;
    b->num_live++;
    s->slot = slot;
    s->batch = b;
    s->order = ++b->created;
    s->max_tokens = max_tokens;
    s->counts_stale = 1; /* its slot's counts are another sequence's */
    gptoss_batch_retain(b);
    *sequence_out = s;
    return gptoss_status_success;
}

static void sequence_free(struct gptoss_sequence* s) {
    struct gptoss_batch* b = s->batch;
    gptoss_error_keep_begin();
    gptoss_kv_seq_release(&b->kv, &s->kv, s->tokens);
    b->slots[s->slot] = NULL;
    b->num_live--;
    gptoss_sampler_release(s->sampler);
    free(s->tokens);
    free(s->drawn);
    free(s);
    gptoss_batch_release(b);
    gptoss_error_keep_end();
}

void gptoss_batch_sequence_reset(struct gptoss_sequence* s) {
    gptoss_kv_seq_clear(&s->batch->kv, &s->kv, s->tokens);
    s->num_tokens = 0;
    s->looked_up = 0;
    s->logits_step = 0;
}

enum gptoss_status gptoss_batch_sequence_lookup(struct gptoss_sequence* s) {
    if (s->looked_up || s->num_tokens == 0) return gptoss_status_success;
    s->looked_up = 1;
    return gptoss_kv_seq_lookup(&s->batch->kv, &s->kv, s->tokens, s->num_tokens);
}

/* ---- the step ------------------------------------------------------------------------ */

/* The plan of n rows with o rows of logits: a kept one, or one built now in place of the
 * least recently used. */
static struct gptoss_plan* plan_for(struct gptoss_batch* b, uint32_t n, uint32_t o) {
    const int by_kind = b->params.batch_invariant != gptoss_batch_invariant_off;
    int slot = 0;
    for (int i = 0; i < NUM_PLANS; i++) {
        const struct gptoss_plan* p = &b->plans[i];
        if (p->n == n && p->o == o && p->kinds_set == by_kind &&
            (!by_kind || (memcmp(p->kinds, b->kinds, sizeof(b->kinds)) == 0 && p->num_runs == b->num_runs &&
                          memcmp(p->runs, b->runs, (size_t) 2 * b->num_runs * sizeof(uint32_t)) == 0))) {
            slot = i;
            goto found;
        }
        if (b->plan_used[i] < b->plan_used[slot]) slot = i;
    }
    if (by_kind) {
        struct gptoss_plan* p = &b->plans[slot];
        /* room for this step's runs (at most 2 S) */
        if (b->num_runs > p->runs_capacity && plan_reserve(p, b->model->config.num_blocks, b->num_runs) != 0) {
            p->n = 0; /* no plan there */
            gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate a plan of %u attention runs", b->num_runs);
            return NULL;
        }
        gptoss_plan_build_kinds(p, &b->setup, b->kinds, b->runs, b->num_runs);
    } else {
        gptoss_plan_build(&b->plans[slot], &b->setup, n, o);
    }
found:
    b->plan_used[slot] = ++b->clock;
    return &b->plans[slot];
}

/* The step's rows and changed table entries to the backend. */
static enum gptoss_status upload(struct gptoss_batch* b, uint32_t num_members) {
    KCALL_PROF(b, "copy of the step's rows", gptoss_profile_copy_tokens,
               gptoss_backend_copy(b->backend, b->dev_rows, b->rows, (size_t) 3 * b->B * sizeof(uint32_t),
                                   gptoss_copy_host_to_backend));
    for (uint32_t m = 0; m < num_members; m++) {
        struct gptoss_kv_seq* kv = &b->members[m]->kv;
        for (int g = 0; g < GPTOSS_KV_GROUPS; g++) {
            if (kv->dirty_lo[g] >= kv->dirty_hi[g]) continue;
            uint32_t* dst = b->buf.tables[g] + (size_t) b->members[m]->slot * b->table_stride + kv->dirty_lo[g];
            KCALL_PROF(b, "copy of a block table", gptoss_profile_copy_tokens,
                       gptoss_backend_copy(b->backend, dst, kv->table[g] + kv->dirty_lo[g],
                                           (size_t) (kv->dirty_hi[g] - kv->dirty_lo[g]) * sizeof(uint32_t),
                                           gptoss_copy_host_to_backend));
            kv->dirty_lo[g] = kv->dirty_hi[g] = 0;
        }
    }
    return gptoss_status_success;
}

/* Runs the plan of (n, o): a decode step (n == o) on a backend that records graphs as its
 * graph (recorded the second time the shape runs: the first sizes the scratch); anything
 * else directly. */
static enum gptoss_status run_plan(struct gptoss_batch* b, uint32_t n, uint32_t o) {
    struct gptoss_plan* plan = plan_for(b, n, o);
    if (plan == NULL) return gptoss_status_insufficient_memory; /* the message is set */
    /* graphs keyed by n: decode steps only (batch-invariant: every row a drawn token) */
    const int decode = n == o && (b->params.batch_invariant == gptoss_batch_invariant_off || b->kinds[3] == n);
    if (!decode || b->graphs[0].graph == NULL) return gptoss_plan_run(plan, b->backend, b->prof);
    struct graph_slot* g = NULL;
    for (int i = 0; i < NUM_GRAPHS; i++) {
        if (b->graphs[i].n == n) g = &b->graphs[i];
    }
    if (g == NULL) { /* first time: run directly, keep the shape in the least recently used slot */
        g = &b->graphs[0];
        for (int i = 1; i < NUM_GRAPHS; i++) {
            if (b->graphs[i].used < g->used) g = &b->graphs[i];
        }
        g->n = n;
        g->recorded = 0;
        g->used = ++b->clock;
        return gptoss_plan_run(plan, b->backend, NULL);
    }
    g->used = ++b->clock;
    if (!g->recorded) {
        if (gptoss_plan_record(plan, b->backend, g->graph) != gptoss_status_success) {
            gptoss_clear_error(); /* run it directly this time; recorded again next time */
            return gptoss_plan_run(plan, b->backend, NULL);
        }
        g->recorded = 1;
    }
    return gptoss_graph_launch(g->graph);
}

/* Kernels sampling with penalties: one copy of a whole row of counts rather than this many
 * copies of one count (each a call into the backend). */
#define COUNTS_FULL_COPY 32

/* Makes the counts of s's slot (host and backend) those of the ids of tokens[0,
 * num_tokens): one 4-byte copy per token appended or dropped since the last time, or,
 * after a replaced token or many changes, all of them counted again and copied at once. */
static enum gptoss_status sync_counts(struct gptoss_batch* b, struct gptoss_sequence* s) {
    const uint32_t V = b->model->vocabulary_size;
    uint32_t* host = b->host_counts + (size_t) s->slot * V;
    uint32_t* dev = b->counts + (size_t) s->slot * V;
    const size_t n = s->num_tokens;
    const size_t changes = s->counted > n ? s->counted - n : n - s->counted;
    if (s->counts_stale || changes > COUNTS_FULL_COPY) {
        memset(host, 0, (size_t) V * sizeof(uint32_t));
        for (size_t i = 0; i < n; i++) host[s->tokens[i]]++;
        s->counted = n;
        s->counts_stale = 1; /* until the copy succeeds */
        KCALL_PROF(b, "copy of the token counts", gptoss_profile_copy_counts,
                   gptoss_backend_copy(b->backend, dev, host, (size_t) V * sizeof(uint32_t),
                                       gptoss_copy_host_to_backend));
        s->counts_stale = 0;
        return gptoss_status_success;
    }
    while (s->counted != n) {
        const int append = s->counted < n;
        const uint32_t id = s->tokens[append ? s->counted : s->counted - 1];
        host[id] = append ? host[id] + 1 : host[id] - 1;
        s->counted = append ? s->counted + 1 : s->counted - 1;
        s->counts_stale = 1; /* until the copy succeeds */
        KCALL_PROF(b, "copy of a token count", gptoss_profile_copy_counts,
                   gptoss_backend_copy(b->backend, &dev[id], &host[id], sizeof(uint32_t), gptoss_copy_host_to_backend));
        s->counts_stale = 0;
    }
    return gptoss_status_success;
}

/* Whether a draw of this mode runs on the backend (its token lands in b->sampled[j]). */
static int on_backend(enum gptoss_sampler_mode mode) {
    return mode == gptoss_sampler_mode_softmax || mode == gptoss_sampler_mode_kernels;
}

/* Launches the backend draw of sequence s from its logits row j, with its own sampler and
 * seed: the token lands in b->sampled[j]. (b->prob serves one draw after the other: the
 * backend runs its calls in order.) */
static enum gptoss_status launch_draw(struct gptoss_batch* b, struct gptoss_sequence* s, uint32_t j,
                                      enum gptoss_sampler_mode mode) {
    const struct gptoss_sampler* sampler = s->sampler;
    const uint32_t V = b->model->vocabulary_size;
    const float* row = b->buf.logits + (size_t) j * V;
    const uint64_t seed = sampler->seed + GPTOSS_SAMPLER_SEED_OFFSET, rng_offset = s->num_tokens;
    if (mode == gptoss_sampler_mode_softmax) {
        const struct gptoss_f32_softmax_args softmax = {row, b->buf.argmax + j, b->prob, b->prob_sum, 1, V,
                                                         sampler->temperature};
        KCALL("softmax", gptoss_plan_call(b->backend, b->prof, gptoss_kernel_f32_softmax, &softmax));
        const struct gptoss_f32_sample_args sample = {b->prob, b->prob_sum, b->sampled + j, V, seed, rng_offset};
        KCALL("sample", gptoss_plan_call(b->backend, b->prof, gptoss_kernel_f32_sample, &sample));
        return gptoss_status_success;
    }
    if (gptoss_sampler_has_penalties(sampler)) {
        GPTOSS_TRY(sync_counts(b, s));
        const struct gptoss_f32_apply_penalties_args penalties = {
            row, b->counts + (size_t) s->slot * V, b->prob, V, sampler->presence_penalty, sampler->frequency_penalty};
        KCALL("penalties", gptoss_plan_call(b->backend, b->prof, gptoss_kernel_f32_apply_penalties, &penalties));
        row = b->prob;
    }
    const struct gptoss_f32_sample_logits_args sample = {
        row, b->sampled + j, V, sampler->temperature, sampler->top_k, sampler->top_p, seed, rng_offset};
    KCALL("sample", gptoss_plan_call(b->backend, b->prof, gptoss_kernel_f32_sample_logits, &sample));
    return gptoss_status_success;
}

/* A NaN in a logits row fails its draw, whatever the mode: the kernels and the host sampler
 * would rank it below everything (or, for greedy, above: the unembedding's argmax puts +NaN
 * first) and draw a token as if nothing were wrong. row: the row on the host. */
static enum gptoss_status check_logits(const float* row, uint32_t V) {
    uint32_t nan = 0;
    for (uint32_t i = 0; i < V; i++) nan |= row[i] != row[i]; /* vectorizes: no early exit */
    if (!nan) return gptoss_status_success;
    uint32_t first = 0;
    while (row[first] == row[first]) first++;
    return gptoss_fail(gptoss_status_invalid_state,
                       "the logits hold NaN (first at token id %u): the forward pass of this sequence produced NaN; "
                       "no token can be drawn from them", first);
}

/* The token of sequence s from its logits row j once the backend draws are on the host
 * (b->sampled_host): greedy the step's argmax (all rows copied at the first), a backend
 * draw its copied token, a host draw from its row copied now. */
static enum gptoss_status take_draw(struct gptoss_batch* b, struct gptoss_sequence* s, uint32_t j,
                                    enum gptoss_sampler_mode mode, uint32_t* id_out) {
    const uint32_t V = b->model->vocabulary_size;
    uint32_t id = UINT32_MAX;
    if (mode == gptoss_sampler_mode_greedy) {
        if (!b->argmax_valid) {
            KCALL_PROF(b, "copy of the argmax", gptoss_profile_copy_argmax,
                       gptoss_backend_copy(b->backend, b->draws, b->buf.argmax, b->argmax_rows * sizeof(uint32_t),
                                           gptoss_copy_backend_to_host));
            b->argmax_valid = 1;
        }
        id = b->draws[j];
    } else if (on_backend(mode)) {
        id = b->sampled_host[j];
    } else {
        KCALL_PROF(b, "copy of the logits", gptoss_profile_copy_logits,
                   gptoss_backend_copy(b->backend, b->host_logits, b->buf.logits + (size_t) j * V,
                                       (size_t) V * sizeof(float), gptoss_copy_backend_to_host));
        GPTOSS_TRY(check_logits(b->host_logits, V)); /* the copy: every backend */
        GPTOSS_TRY(gptoss_sampler_check_vocabulary(s->sampler, V)); /* (the bias may have changed since) */
        if (b->prof != NULL) gptoss_profile_begin(b->prof, b->backend);
        id = gptoss_sampler_pick_host(s->sampler, b->host_logits, s->tokens, s->num_tokens, s->num_tokens, &b->scratch);
        if (b->prof != NULL) gptoss_profile_end(b->prof, b->backend, gptoss_profile_host_sampler, gptoss_status_success);
    }
    if (id >= V) {
        return gptoss_fail(gptoss_status_invalid_state, "sampling produced token id %u (vocabulary size %u): "
                           "non-finite logits?", id, V);
    }
    *id_out = id;
    return gptoss_status_success;
}

/* Does the sequence need the logits of its last token from this step? */
static int wants_output(const struct gptoss_sequence* s) {
    return s->want_logits || (s->draws_left > 0 && s->num_tokens < s->max_tokens);
}

/* Chooses the step's members and their rows (members[], chunk[]); returns the number of
 * members, *num_rows and *num_logits. */
static enum gptoss_status choose(struct gptoss_batch* b, uint32_t* num_members, uint32_t* num_rows,
                                 uint32_t* num_logits) {
    uint32_t members = 0, rows = 0, logits = 0;
    /* two passes: sequences with one token to compute (decoding) first, then the others
     * (prompts) by creation order */
    for (int pass = 0; pass < 2; pass++) {
        for (;;) {
            struct gptoss_sequence* next = NULL;
            for (uint32_t i = 0; i < b->S; i++) {
                struct gptoss_sequence* s = b->slots[i];
                if (s == NULL || s->num_tokens == 0) continue;
                int taken = 0;
                for (uint32_t m = 0; m < members && !taken; m++) taken = b->members[m] == s;
                if (taken) continue;
                GPTOSS_TRY(gptoss_batch_sequence_lookup(s));
                size_t pending = s->num_tokens - s->kv.kv_tokens;
                if (pending == 0 && wants_output(s) &&
                    !(s->logits_step == b->steps && s->logits_pos == s->num_tokens - 1 && !s->drew)) {
                    pending = 1; /* its logits are not at hand: the last token runs again */
                }
                if (pending == 0 || (pass == 0) != (pending == 1)) continue;
                if (next == NULL || s->order < next->order) next = s;
            }
            if (next == NULL || rows == b->B) break;
            size_t pending = next->num_tokens - next->kv.kv_tokens;
            if (pending == 0) pending = 1;
            const uint32_t n = pending < b->B - rows ? (uint32_t) pending : b->B - rows;
            b->members[members] = next;
            b->chunk[members] = n;
            members++;
            rows += n;
            logits += wants_output(next) && n == pending;
        }
    }
    *num_members = members;
    *num_rows = rows;
    *num_logits = logits;
    return gptoss_status_success;
}

/* The kind of row i of member m's chunk (plan.h, GPTOSS_PLAN_KINDS): prompt or drawn token,
 * without or with logits. */
static int row_kind(const struct gptoss_sequence* s, size_t first, size_t n, size_t i, int logits) {
    return (logits && i + 1 == n ? 2 : 0) + (s->drawn[first + i] != 0);
}

/* The rows of the step in b->rows: the rows without logits first, then one row per member
 * with logits (in member order); logits_row of those members set. Batch-invariant steps
 * order the rows by kind (b->kinds: prompt rows, drawn rows without logits, then the same
 * with logits), each kind in member order. */
static void lay_out(struct gptoss_batch* b, uint32_t num_members, uint32_t num_rows, uint32_t num_logits) {
    uint32_t* tok = b->rows;
    uint32_t* pos = b->rows + b->B;
    uint32_t* sid = b->rows + 2 * b->B;
    const int by_kind = b->params.batch_invariant != gptoss_batch_invariant_off;
    uint32_t next[GPTOSS_PLAN_KINDS] = {0, 0, 0, 0}; /* the next row of each kind */
    memset(b->kinds, 0, sizeof(b->kinds));
    if (by_kind) {
        for (uint32_t m = 0; m < num_members; m++) {
            const struct gptoss_sequence* s = b->members[m];
            const size_t first = s->kv.kv_tokens, n = b->chunk[m];
            const int logits = wants_output(s) && first + n == s->num_tokens;
            for (size_t i = 0; i < n; i++) b->kinds[row_kind(s, first, n, i, logits)]++;
        }
        for (int k = 1; k < GPTOSS_PLAN_KINDS; k++) next[k] = next[k - 1] + b->kinds[k - 1];
    } else {
        next[2] = next[3] = num_rows - num_logits;
    }
    const uint32_t first_logits = num_rows - num_logits;
    b->num_runs = 0;
    for (uint32_t m = 0; m < num_members; m++) {
        struct gptoss_sequence* s = b->members[m];
        const size_t first = s->kv.kv_tokens, n = b->chunk[m];
        const int logits = wants_output(s) && first + n == s->num_tokens;
        for (size_t i = 0; i < n; i++) {
            const int k = by_kind ? row_kind(s, first, n, i, logits) : (logits && i + 1 == n ? 2 : 0);
            const uint32_t at = next[k]++;
            if (by_kind && (k == 0 || k == 2)) {
                /* a prompt row: extends the member's run of kind 0 (its rows are consecutive
                 * positions and consecutive rows), or starts one */
                uint32_t* last = b->num_runs > 0 ? &b->runs[2 * (b->num_runs - 1)] : NULL;
                if (k == 0 && i > 0 && last != NULL && last[0] + last[1] == at && row_kind(s, first, n, i - 1, logits) == 0) {
                    last[1]++;
                } else {
                    b->runs[2 * b->num_runs] = at;
                    b->runs[2 * b->num_runs + 1] = 1;
                    b->num_runs++;
                }
            }
            tok[at] = s->tokens[first + i];
            pos[at] = (uint32_t) (first + i);
            sid[at] = s->slot;
            if (logits && i + 1 == n) s->logits_row = at - first_logits;
        }
        s->logits_step = 0;
        s->drew = 0;
    }
}

/* The members of a failed step: their K/V from the step's first positions on are lost,
 * their requests end; listed with UINT32_MAX. */
static void fail_members(struct gptoss_batch* b, const size_t* first, uint32_t num_members,
                         struct gptoss_batch_token* out, size_t capacity, size_t* num_out) {
    for (uint32_t m = 0; m < num_members; m++) {
        struct gptoss_sequence* s = b->members[m];
        gptoss_kv_seq_truncate(&s->kv, first[m]);
        s->draws_left = 0;
        s->want_logits = 0;
        if (*num_out < capacity) out[(*num_out)++] = (struct gptoss_batch_token){s, UINT32_MAX};
    }
}

/* Does the sequence hold the logits of its last token, from the last step? */
static int logits_current(const struct gptoss_batch* b, const struct gptoss_sequence* s) {
    return s->logits_step == b->steps && s->logits_step != 0 && s->logits_pos + 1 == s->num_tokens && !s->drew;
}

/* Keeps the first failure's status and message. */
static void note_error(enum gptoss_status st, enum gptoss_status* first, char* message, size_t size) {
    if (st == gptoss_status_success || *first != gptoss_status_success) return;
    *first = st;
    snprintf(message, size, "%s", gptoss_last_error());
}

/* Draws the next token of each of the n sequences from its logits row (logits_row), each
 * with its own sampler and seed: the backend draws are launched first and their tokens
 * copied back at once (one copy, not one per sequence); the greedy ones read the step's
 * argmaxes (one copy). A drawn token is appended (computed by the next step) and listed in
 * out; a failed draw lists UINT32_MAX and ends the sequence's draws. Returns the first
 * failure (its message kept). */
static enum gptoss_status draw_all(struct gptoss_batch* b, struct gptoss_sequence** list, uint32_t n,
                                   struct gptoss_batch_token* out, size_t capacity, size_t* num_out) {
    enum gptoss_status first_error = gptoss_status_success;
    char message[512] = "";
    enum gptoss_sampler_mode mode[n];
    int failed[n];
    uint32_t rows = 0;
    /* On the CPU the logits rows are on the host and each draw checks its row for NaN first;
     * on CUDA only the host draws do (their row is copied): the greedy and kernel draws
     * there would need a reduction on the device (not done). */
    const int host_rows = gptoss_backend_get_kind(b->backend) == gptoss_backend_kind_cpu;
    for (uint32_t i = 0; i < n; i++) {
        mode[i] = gptoss_sampler_get_mode(list[i]->sampler, b->params.sampling);
        failed[i] = 0;
        if (host_rows && mode[i] != gptoss_sampler_mode_host) { /* (host draws check their copy) */
            const enum gptoss_status st =
                check_logits(b->buf.logits + (size_t) list[i]->logits_row * b->model->vocabulary_size,
                             b->model->vocabulary_size);
            note_error(st, &first_error, message, sizeof(message));
            failed[i] = st != gptoss_status_success;
        }
        if (failed[i] || !on_backend(mode[i])) continue;
        const enum gptoss_status st = launch_draw(b, list[i], list[i]->logits_row, mode[i]);
        note_error(st, &first_error, message, sizeof(message));
        failed[i] = st != gptoss_status_success;
        if (!failed[i] && list[i]->logits_row + 1 > rows) rows = list[i]->logits_row + 1;
    }
    if (rows > 0) {
        const enum gptoss_status st = PROFILED(b, gptoss_profile_copy_sampled,
                                               gptoss_backend_copy(b->backend, b->sampled_host, b->sampled,
                                                                   rows * sizeof(uint32_t), gptoss_copy_backend_to_host));
        if (st != gptoss_status_success) {
            note_error(fail_with_context(st, "copy of the sampled tokens"), &first_error, message, sizeof(message));
            for (uint32_t i = 0; i < n; i++) failed[i] |= on_backend(mode[i]);
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        struct gptoss_sequence* s = list[i];
        uint32_t id = UINT32_MAX;
        if (!failed[i]) {
            const enum gptoss_status st = take_draw(b, s, s->logits_row, mode[i], &id);
            note_error(st, &first_error, message, sizeof(message));
            failed[i] = st != gptoss_status_success;
        }
        if (failed[i]) {
            s->draws_left = 0;
        } else {
            s->drawn[s->num_tokens] = 1;
            s->tokens[s->num_tokens++] = id; /* pending: computed by the next step */
            s->draws_left--;
            s->drew = 1;
        }
        if (*num_out < capacity) out[(*num_out)++] = (struct gptoss_batch_token){s, failed[i] ? UINT32_MAX : id};
    }
    if (first_error != gptoss_status_success) return gptoss_fail(first_error, "%s", message);
    return gptoss_status_success;
}

/* A step of draws only: the generating sequences that hold the logits of their last token
 * already (gptoss_context_get_logits, then sample) draw from them. Returns whether any did. */
static int draw_ready(struct gptoss_batch* b, struct gptoss_batch_token* out, size_t capacity, size_t* num_out,
                      enum gptoss_status* st) {
    struct gptoss_sequence* list[b->S];
    uint32_t n = 0;
    for (uint32_t i = 0; i < b->S; i++) {
        struct gptoss_sequence* s = b->slots[i];
        if (s == NULL || s->draws_left == 0 || s->num_tokens >= s->max_tokens || !logits_current(b, s)) continue;
        list[n++] = s;
    }
    *st = n > 0 ? draw_all(b, list, n, out, capacity, num_out) : gptoss_status_success;
    return n > 0;
}

static enum gptoss_status step(struct gptoss_batch* b, struct gptoss_batch_token* out, size_t capacity,
                               size_t* num_out) {
    *num_out = 0;
    enum gptoss_status st;
    if (draw_ready(b, out, capacity, num_out, &st)) return st;
    uint32_t num_members = 0, n = 0, o = 0;
    GPTOSS_TRY(choose(b, &num_members, &n, &o));
    if (num_members == 0) return gptoss_status_success;
    size_t first[num_members];
    uint32_t prepared = 0;
    for (; prepared < num_members && st == gptoss_status_success; prepared++) {
        struct gptoss_sequence* s = b->members[prepared];
        if (s->kv.kv_tokens == s->num_tokens) gptoss_kv_seq_truncate(&s->kv, s->num_tokens - 1); /* runs again */
        first[prepared] = s->kv.kv_tokens;
        st = gptoss_kv_seq_prepare(&b->kv, &s->kv, first[prepared], b->chunk[prepared]);
    }
    if (st != gptoss_status_success) {
        st = fail_with_context(st, "KV cache");
        fail_members(b, first, prepared, out, capacity, num_out);
        return st;
    }
    lay_out(b, num_members, n, o);
    b->steps++;
    const uint64_t t0 = prof_start(b);
    if (b->prof != NULL) {
        b->prof->phase = gptoss_plan_phase(b->params.batch_invariant != gptoss_batch_invariant_off, b->kinds, n, o);
    }
    st = upload(b, num_members);
    if (st == gptoss_status_success) st = run_plan(b, n, o);
    /* CUDA reports asynchronous errors here; CPU has nothing pending */
    if (st == gptoss_status_success) {
        st = gptoss_backend_synchronize(b->backend);
        if (st != gptoss_status_success) st = fail_with_context(st, "forward pass");
    }
    prof_phase_add(b, t0);
    if (st != gptoss_status_success) {
        fail_members(b, first, num_members, out, capacity, num_out);
        return st;
    }
    /* the step's K/V are in; then the draws */
    const uint64_t t1 = prof_start(b);
    b->argmax_rows = o;
    b->argmax_valid = 0;
    struct gptoss_sequence* drawing[num_members];
    uint32_t num_drawing = 0;
    for (uint32_t m = 0; m < num_members; m++) {
        struct gptoss_sequence* s = b->members[m];
        gptoss_kv_seq_commit(&b->kv, &s->kv, s->tokens, first[m] + b->chunk[m]);
        if (!(wants_output(s) && first[m] + b->chunk[m] == s->num_tokens)) continue;
        s->logits_step = b->steps;
        s->logits_pos = s->num_tokens - 1;
        s->want_logits = 0;
        if (s->draws_left > 0 && s->num_tokens < s->max_tokens) drawing[num_drawing++] = s;
    }
    st = num_drawing > 0 ? draw_all(b, drawing, num_drawing, out, capacity, num_out) : gptoss_status_success;
    prof_phase_add(b, t1);
    return st;
}

enum gptoss_status gptoss_batch_step(gptoss_batch_t b, struct gptoss_batch_token* tokens_out, size_t capacity,
                                     size_t* num_tokens_out) {
    gptoss_clear_error();
    if (b == NULL) return gptoss_fail(gptoss_status_invalid_argument, "batch is NULL");
    if (num_tokens_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "num_tokens_out is NULL");
    if (tokens_out == NULL && capacity != 0) return gptoss_fail(gptoss_status_invalid_argument, "tokens_out is NULL");
    if (capacity < b->S) {
        return gptoss_fail(gptoss_status_invalid_argument, "capacity %zu is below max_sequences %u", capacity, b->S);
    }
    return step(b, tokens_out, capacity, num_tokens_out);
}

enum gptoss_status gptoss_batch_lab_replay(struct gptoss_batch* b, uint32_t n, uint32_t times) {
    gptoss_clear_error();
    if (b == NULL) return gptoss_fail(gptoss_status_invalid_argument, "batch is NULL");
    const struct graph_slot* g = NULL;
    for (int i = 0; i < NUM_GRAPHS; i++) {
        if (b->graphs[i].graph != NULL && b->graphs[i].recorded && b->graphs[i].n == n) g = &b->graphs[i];
    }
    if (g == NULL) {
        return gptoss_fail(gptoss_status_invalid_state, "no decode graph is recorded for steps of %u row(s)", n);
    }
    for (uint32_t t = 0; t < times; t++) GPTOSS_TRY(gptoss_graph_launch(g->graph));
    return gptoss_backend_synchronize(b->backend);
}

enum gptoss_status gptoss_batch_compute(struct gptoss_batch* b, struct gptoss_sequence* s, int want_logits) {
    struct gptoss_batch_token out[b->S];
    size_t n = 0;
    s->want_logits = want_logits;
    for (;;) {
        GPTOSS_TRY(gptoss_batch_sequence_lookup(s));
        const int done = s->kv.kv_tokens == s->num_tokens &&
                         (!want_logits || (s->logits_step == b->steps && s->logits_pos == s->num_tokens - 1));
        if (done) break;
        const enum gptoss_status st = step(b, out, b->S, &n);
        if (st != gptoss_status_success) {
            s->want_logits = 0;
            return st;
        }
    }
    s->want_logits = 0;
    return gptoss_status_success;
}

enum gptoss_status gptoss_batch_copy_logits(struct gptoss_batch* b, const struct gptoss_sequence* s,
                                            float* logits_out) {
    const uint32_t V = b->model->vocabulary_size;
    const uint64_t t0 = prof_start(b);
    const enum gptoss_status st =
        PROFILED(b, gptoss_profile_copy_logits,
                 gptoss_backend_copy(b->backend, logits_out, b->buf.logits + (size_t) s->logits_row * V,
                                     (size_t) V * sizeof(float), gptoss_copy_backend_to_host));
    prof_phase_add(b, t0);
    if (st != gptoss_status_success) return fail_with_context(st, "copy of the logits");
    return gptoss_status_success;
}

/* ---- the sequence API ----------------------------------------------------------------- */

#define CHECK_SEQ(s)                                                                      \
    do {                                                                                  \
        gptoss_clear_error();                                                             \
        if ((s) == NULL) return gptoss_fail(gptoss_status_invalid_argument, "sequence is NULL"); \
    } while (0)

enum gptoss_status gptoss_sequence_create(gptoss_batch_t b, size_t max_tokens, gptoss_sequence_t* sequence_out) {
    gptoss_clear_error();
    if (b == NULL) return gptoss_fail(gptoss_status_invalid_argument, "batch is NULL");
    if (sequence_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "sequence_out is NULL");
    return gptoss_batch_sequence_create(b, max_tokens, sequence_out);
}

enum gptoss_status gptoss_sequence_append_tokens(gptoss_sequence_t s, size_t num_tokens, const uint32_t* tokens) {
    CHECK_SEQ(s);
    if (tokens == NULL && num_tokens != 0) return gptoss_fail(gptoss_status_invalid_argument, "tokens is NULL");
    const uint32_t V = s->batch->model->vocabulary_size;
    for (size_t i = 0; i < num_tokens; i++) {
        if (tokens[i] >= V) {
            return gptoss_fail(gptoss_status_invalid_argument, "token %zu has id %u, not below the vocabulary size %u",
                               i, tokens[i], V);
        }
    }
    if (num_tokens > s->max_tokens - s->num_tokens) {
        return gptoss_fail(gptoss_status_context_overflow, "%zu tokens do not fit: the sequence holds %zu of %zu",
                           num_tokens, s->num_tokens, s->max_tokens);
    }
    for (size_t i = 0; i < num_tokens && s->num_tokens + i < s->counted; i++) {
        if (s->tokens[s->num_tokens + i] != tokens[i]) s->counts_stale = 1; /* a counted token replaced */
    }
    if (num_tokens != 0) {
        memcpy(s->tokens + s->num_tokens, tokens, num_tokens * sizeof(uint32_t));
        memset(s->drawn + s->num_tokens, 0, num_tokens);
    }
    s->num_tokens += num_tokens;
    return gptoss_status_success;
}

enum gptoss_status gptoss_sequence_get_num_tokens(gptoss_sequence_t s, size_t* num_tokens_out) {
    CHECK_SEQ(s);
    if (num_tokens_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "num_tokens_out is NULL");
    *num_tokens_out = s->num_tokens;
    return gptoss_status_success;
}

enum gptoss_status gptoss_sequence_get_tokens(gptoss_sequence_t s, uint32_t* tokens_out, size_t max_tokens,
                                              size_t* num_tokens_out) {
    CHECK_SEQ(s);
    if (num_tokens_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "num_tokens_out is NULL");
    if (tokens_out == NULL && max_tokens != 0) return gptoss_fail(gptoss_status_invalid_argument, "tokens_out is NULL");
    if (max_tokens < s->num_tokens) {
        *num_tokens_out = s->num_tokens;
        return gptoss_fail(gptoss_status_insufficient_memory, "%zu tokens do not fit in a buffer of %zu",
                           s->num_tokens, max_tokens);
    }
    if (s->num_tokens != 0) memcpy(tokens_out, s->tokens, s->num_tokens * sizeof(uint32_t));
    *num_tokens_out = s->num_tokens;
    return gptoss_status_success;
}

enum gptoss_status gptoss_sequence_get_num_kv_tokens(gptoss_sequence_t s, size_t* num_kv_tokens_out) {
    CHECK_SEQ(s);
    if (num_kv_tokens_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "num_kv_tokens_out is NULL");
    GPTOSS_TRY(gptoss_batch_sequence_lookup(s));
    *num_kv_tokens_out = s->kv.kv_tokens;
    return gptoss_status_success;
}

enum gptoss_status gptoss_sequence_generate(gptoss_sequence_t s, gptoss_sampler_t sampler, size_t max_new_tokens) {
    CHECK_SEQ(s);
    GPTOSS_TRY(gptoss_sampler_check_vocabulary(sampler, s->batch->model->vocabulary_size));
    if (sampler != NULL) gptoss_sampler_retain(sampler);
    gptoss_sampler_release(s->sampler);
    s->sampler = sampler;
    s->draws_left = max_new_tokens;
    return gptoss_status_success;
}

enum gptoss_status gptoss_sequence_get_logits(gptoss_sequence_t s, float* logits_out, size_t capacity) {
    CHECK_SEQ(s);
    if (logits_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "logits_out is NULL");
    const uint32_t V = s->batch->model->vocabulary_size;
    if (capacity < V) {
        return gptoss_fail(gptoss_status_invalid_argument, "capacity %zu is below the vocabulary size %u", capacity, V);
    }
    if (!(s->drew && s->logits_step == s->batch->steps)) {
        return gptoss_fail(gptoss_status_invalid_state, "the last step drew no token for this sequence");
    }
    return gptoss_batch_copy_logits(s->batch, s, logits_out);
}

enum gptoss_status gptoss_sequence_retain(gptoss_sequence_t s) {
    CHECK_SEQ(s);
    atomic_fetch_add_explicit(&s->ref_count, 1, memory_order_relaxed);
    return gptoss_status_success;
}

enum gptoss_status gptoss_sequence_release(gptoss_sequence_t s) {
    if (s == NULL) return gptoss_status_success;
    if (atomic_fetch_sub_explicit(&s->ref_count, 1, memory_order_acq_rel) == 1) sequence_free(s);
    return gptoss_status_success;
}
