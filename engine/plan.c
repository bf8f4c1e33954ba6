/* The forward plan and its executor (plan.h): the gpt-oss forward pass (KERNELS.md 7) as a
 * list of calls of the public kernels. */
#include <stdio.h>
#include <string.h>

#include <gptoss/error.h>

#include "plan.h"
#include "util.h"

/* ---- building ---------------------------------------------------------------------- */

/* Calls per layer at most: attention rmsnorm, sdpa, and per run of one row order (at most
 * GPTOSS_PLAN_KINDS) qkv, the attention output, rmsnorm + router + topk unfused (3) and the
 * expert-grouped MoE (5). Plus the embeddings, the final rmsnorm and the unembedding. */
uint32_t gptoss_plan_max_calls(uint32_t num_layers) { return (2 + 10 * GPTOSS_PLAN_KINDS) * num_layers + 2 + GPTOSS_PLAN_KINDS; }
/* and an attention call per run and layer */
uint32_t gptoss_plan_max_calls_runs(uint32_t num_layers, uint32_t max_runs) {
    return gptoss_plan_max_calls(num_layers) + max_runs * num_layers;
}

/* Appends a call of `kernel` for `layer` in row order `order_` and returns its arguments. */
#define APPEND_AT(plan, name, layer_, what_, order_, row0_)                                   \
    (&append((plan), gptoss_kernel_##name, (layer_), (what_), (order_), (row0_))->args.name)
#define APPEND_IN(plan, name, layer_, what_, seg_) APPEND_AT(plan, name, layer_, what_, (seg_).order, (seg_).start)
#define APPEND(plan, name, layer_, what_) APPEND_AT(plan, name, layer_, what_, gptoss_row_order_auto, 0)

static struct gptoss_plan_call* append(struct gptoss_plan* plan, enum gptoss_kernel kernel, uint32_t layer,
                                       const char* what, enum gptoss_row_order order, uint32_t row0) {
    struct gptoss_plan_call* c = &plan->calls[plan->num_calls++];
    memset(c, 0, sizeof(*c));
    c->kernel = kernel;
    c->order = order;
    c->row0 = row0;
    c->layer = layer;
    c->what = what;
    return c;
}

#define OUTSIDE UINT32_MAX

#define W(m, off) ((const gptoss_bf16*) ((m)->weights + (off)))

/* The plan's runs of one row order clipped to rows [r0, n); returns their number. */
static uint32_t clip(const struct gptoss_plan* plan, uint32_t r0, struct gptoss_plan_segment out[GPTOSS_PLAN_KINDS]) {
    uint32_t k = 0;
    for (uint32_t i = 0; i < plan->num_segments; i++) {
        const struct gptoss_plan_segment* g = &plan->segments[i];
        const uint32_t a = g->start > r0 ? g->start : r0, e = g->start + g->len;
        if (e > a) out[k++] = (struct gptoss_plan_segment){a, e - a, g->order};
    }
    return k;
}

/* Layer l's attention: its RMSNorm (unless the previous layer's fused call computed it),
 * QKV with RoPE and the K/V write of every row, then for the R rows that continue (the
 * last n - r0 = R) SDPA and the output projection added to the residual. The rows'
 * positions, sequences and the block tables of the layer's group are the step's buffers.
 * The qkv and output projections run once per run of one row order. */
static void build_attention(struct gptoss_plan* plan, const struct gptoss_plan_setup* setup, uint32_t l,
                            int norm_ready, uint32_t R) {
    const struct gptoss_model* m = setup->model;
    const struct gptoss_model_config* cfg = &m->config;
    const struct gptoss_forward_buffers* b = setup->buffers;
    const struct gptoss_layer_offsets* lw = &m->layers[l];
    const struct gptoss_kv_pool* kv = b->kv;
    const uint32_t n = plan->n, H = cfg->embedding_dim, D = cfg->head_dim, Hq = cfg->num_heads, Hkv = cfg->num_kv_heads;
    const uint32_t QKV = D * (Hq + 2 * Hkv);
    float* cache = gptoss_kv_layer(kv, l);
    const uint32_t* tables = b->tables[gptoss_kv_group(l)];
    struct gptoss_plan_segment seg[GPTOSS_PLAN_KINDS];
    if (!norm_ready) {
        *APPEND(plan, f32_bf16w_rmsnorm, l, "attention rmsnorm") = (struct gptoss_f32_bf16w_rmsnorm_args){
            b->residual, W(m, lw->attn_norm), b->norm, n, H, cfg->rmsnorm_epsilon};
    }
    for (uint32_t i = 0, k = clip(plan, 0, seg); i < k; i++) {
        const uint32_t a = seg[i].start;
        *APPEND_IN(plan, f32_bf16w_matmul_qkv_varlen, l, "qkv", seg[i]) =
            (struct gptoss_f32_bf16w_matmul_qkv_varlen_args){
                b->norm + (size_t) a * H, W(m, lw->qkv_weight), W(m, lw->qkv_bias), b->qkv + (size_t) a * QKV, cache,
                b->positions + a, b->seq_ids + a, tables, seg[i].len, H, Hq, Hkv, D, kv->head_stride, kv->block_size,
                setup->table_stride, setup->max_seqs, cfg->rope_theta, cfg->interpolation_scale, cfg->yarn_offset,
                cfg->yarn_scale, cfg->yarn_multiplier};
    }
    if (R == 0) return;
    const uint32_t r0 = n - R;
    const uint32_t window = gptoss_kv_group(l) == GPTOSS_KV_SLIDING ? cfg->attention_window : UINT32_MAX;
    /* rows [a, a + len): attention into b->attn's rows from a - r0 */
#define SDPA_CALL(a_, len_, order_)                                                                                \
    (*APPEND_AT(plan, f32_sdpa_varlen, l, "sdpa", (order_), (a_)) = (struct gptoss_f32_sdpa_varlen_args){         \
         b->qkv + (size_t) (a_) * QKV, cache, W(m, lw->sinks), b->attn + (size_t) ((a_) - r0) * Hq * D,           \
         b->positions + (a_), b->seq_ids + (a_), tables, window, kv->head_stride, kv->block_size,                  \
         setup->table_stride, (len_), setup->max_seqs, Hq, Hkv, D, 1.0f})
    if (!plan->kinds_set) {
        SDPA_CALL(r0, R, gptoss_row_order_auto);
    } else {
        /* by kind, whatever the matmuls' orders: drawn rows one call per region of them, in
         * order one (a drawn row alone never runs on tensor cores); prompt rows one call per
         * attention run, in order many */
        for (uint32_t kind = 0, start = 0; kind < GPTOSS_PLAN_KINDS; start += plan->kinds[kind++]) {
            const uint32_t lo = start > r0 ? start : r0, hi = start + plan->kinds[kind];
            if (hi <= lo) continue;
            if (kind % 2 == 1) {
                SDPA_CALL(lo, hi - lo, gptoss_row_order_one);
                continue;
            }
            for (uint32_t j = 0; j < plan->num_runs; j++) {
                const uint32_t a = plan->runs[2 * j], e = a + plan->runs[2 * j + 1];
                const uint32_t rl = a > lo ? a : lo, rh = e < hi ? e : hi;
                if (rh > rl) SDPA_CALL(rl, rh - rl, gptoss_row_order_many);
            }
        }
    }
#undef SDPA_CALL
    for (uint32_t i = 0, k = clip(plan, r0, seg); i < k; i++) {
        const uint32_t a = seg[i].start;
        *APPEND_IN(plan, f32_bf16w_matmul_add, l, "attention output", seg[i]) =
            (struct gptoss_f32_bf16w_matmul_add_args){b->attn + (size_t) (a - r0) * Hq * D, W(m, lw->out_weight),
                                                      W(m, lw->out_bias), b->residual + (size_t) a * H, seg[i].len,
                                                      Hq * D, H};
    }
}

/* Whether the MoE of a run computes in the expert-grouped kernels' arithmetic (a
 * batch-invariant plan's run of order many where setup->moe_dense_many). */
static int moe_grouped(const struct gptoss_plan* plan, const struct gptoss_plan_setup* setup,
                       const struct gptoss_plan_segment* g) {
    return plan->kinds_set && g->order == gptoss_row_order_many && setup->moe_dense_many;
}

/* Whether the MoE of a run takes the expert-grouped kernels: by moe_dense_min_rows, or in
 * a batch-invariant plan a run in their arithmetic of more than
 * GPTOSS_PLAN_MOE_PAIRS_MANY_MAX_ROWS rows (fewer take the per-pair kernels in row order
 * many: the same bits without the routing, scatter and gather calls). */
static int moe_dense(const struct gptoss_plan* plan, const struct gptoss_plan_setup* setup,
                     const struct gptoss_plan_segment* g) {
    if (!plan->kinds_set) return g->len >= setup->moe_dense_min_rows;
    return moe_grouped(plan, setup, g) && g->len > GPTOSS_PLAN_MOE_PAIRS_MANY_MAX_ROWS;
}

/* Layer l's MoE over its R rows (the last R of the batch), once per run of one row order
 * (each run's chain of calls before the next run's: the temporaries are shared): RMSNorm,
 * router and top-k, then the experts by the decode kernels (below moe_dense_min_rows rows)
 * or the expert-grouped ones, accumulated into the residual. The norm buffer's rows are
 * counted from the layer's first continuing row r0 = n - R. Returns 1 when the fused
 * accumulates also computed the next RMSNorm (layer l+1's attention norm, or the final
 * norm after the last layer) into the norm buffer, which needs every run on the decode
 * kernels. */
static int build_moe(struct gptoss_plan* plan, const struct gptoss_plan_setup* setup, uint32_t l, uint32_t R) {
    const struct gptoss_model* m = setup->model;
    const struct gptoss_model_config* cfg = &m->config;
    const struct gptoss_forward_buffers* b = setup->buffers;
    const struct gptoss_layer_offsets* lw = &m->layers[l];
    const uint32_t H = cfg->embedding_dim, E = cfg->num_experts, K = cfg->num_active_experts, I = cfg->mlp_dim;
    const uint32_t r0 = plan->n - R;
    const uint8_t* moe = m->weights + lw->moe;
    const struct gptoss_expert_layout* x = &m->expert;
    const size_t stride = x->per_expert;
    const gptoss_bf16* bias1 = (const gptoss_bf16*) (moe + x->mlp1_bias);
    const gptoss_bf16* bias2 = (const gptoss_bf16*) (moe + x->mlp2_bias);
    struct gptoss_plan_segment seg[GPTOSS_PLAN_KINDS];
    const uint32_t k = clip(plan, r0, seg);
    /* the fused accumulate + RMSNorm only where no run takes the expert-grouped calls (their
     * gather accumulates; the norm buffer is all or nothing, so the next layer then runs its
     * own RMSNorm for every row). Bit for bit the same either way: the fused kernel's sums and
     * norm are those of f32_accumulate (the gather's per-token order over the slots) and then
     * f32_bf16w_rmsnorm, so a per-pair run of order many (a few rows) and the same rows among
     * a grouped run give the same norms. */
    int any_dense = 0;
    for (uint32_t i = 0; i < k; i++) any_dense |= moe_dense(plan, setup, &seg[i]);
    const int fuse_norm = setup->fused_ops && !any_dense;
    const int last = l + 1 == cfg->num_blocks;
    const size_t gain = last ? m->final_norm : m->layers[l + 1 < cfg->num_blocks ? l + 1 : l].attn_norm;
    for (uint32_t i = 0; i < k; i++) {
        const uint32_t Rs = seg[i].len;
        float* residual = b->residual + (size_t) seg[i].start * H;
        float* norm = b->norm + (size_t) (seg[i].start - r0) * H;
        if (setup->fused_ops) {
            *APPEND_IN(plan, f32_bf16w_rmsnorm_matmul_topk, l, "mlp rmsnorm + router + topk", seg[i]) =
                (struct gptoss_f32_bf16w_rmsnorm_matmul_topk_args){
                    residual, W(m, lw->mlp_norm), norm, W(m, lw->gate_weight), W(m, lw->gate_bias), b->gate,
                    b->expert_ids, b->expert_scores, Rs, H, E, K, cfg->rmsnorm_epsilon};
        } else {
            *APPEND_IN(plan, f32_bf16w_rmsnorm, l, "mlp rmsnorm", seg[i]) = (struct gptoss_f32_bf16w_rmsnorm_args){
                residual, W(m, lw->mlp_norm), norm, Rs, H, cfg->rmsnorm_epsilon};
            *APPEND_IN(plan, f32_bf16w_matmul, l, "router", seg[i]) = (struct gptoss_f32_bf16w_matmul_args){
                norm, W(m, lw->gate_weight), W(m, lw->gate_bias), b->gate, Rs, H, E};
            *APPEND_IN(plan, f32_topk, l, "topk", seg[i]) = (struct gptoss_f32_topk_args){
                b->gate, b->expert_ids, b->expert_scores, Rs, E, K};
        }
        if (moe_dense(plan, setup, &seg[i])) {
            *APPEND_IN(plan, expert_routing_metadata, l, "expert routing", seg[i]) =
                (struct gptoss_expert_routing_metadata_args){b->expert_ids, b->expert_offsets, b->intra, Rs * K, E};
            *APPEND_IN(plan, f32_scatter, l, "scatter", seg[i]) = (struct gptoss_f32_scatter_args){
                norm, b->expert_ids, b->expert_offsets, b->intra, b->moe_input, H, Rs, K, E};
            *APPEND_IN(plan, f32_mf4w_moe_dense_matmul_swiglu, l, "moe dense swiglu", seg[i]) =
                (struct gptoss_f32_mf4w_moe_dense_matmul_swiglu_args){
                    b->expert_offsets, b->moe_input, moe + x->mlp1_blocks, moe + x->mlp1_scales, bias1, stride,
                    b->swiglu, Rs, K, E, H, I, cfg->swiglu_limit};
            *APPEND_IN(plan, f32_mf4w_moe_dense_matmul, l, "moe dense down", seg[i]) =
                (struct gptoss_f32_mf4w_moe_dense_matmul_args){b->expert_offsets, b->swiglu, moe + x->mlp2_blocks,
                                                                moe + x->mlp2_scales, bias2, stride, b->moe_output, Rs,
                                                                K, E, I, H};
            *APPEND_IN(plan, f32_gather_and_accumulate, l, "gather", seg[i]) =
                (struct gptoss_f32_gather_and_accumulate_args){b->moe_output, b->expert_ids, b->expert_scores,
                                                               b->expert_offsets, b->intra, residual, H, Rs, K, E};
            continue;
        }
        *APPEND_IN(plan, f32_mf4w_moe_matmul_swiglu, l, "moe swiglu", seg[i]) =
            (struct gptoss_f32_mf4w_moe_matmul_swiglu_args){norm, b->expert_ids, moe + x->mlp1_blocks,
                                                            moe + x->mlp1_scales, bias1, stride, b->swiglu, Rs, K, E, H,
                                                            I, cfg->swiglu_limit};
        *APPEND_IN(plan, f32_mf4w_moe_matmul, l, "moe down", seg[i]) = (struct gptoss_f32_mf4w_moe_matmul_args){
            b->swiglu, b->expert_ids, moe + x->mlp2_blocks, moe + x->mlp2_scales, bias2, stride, b->moe_output, Rs, K,
            E, I, H};
        if (!fuse_norm) {
            *APPEND_IN(plan, f32_accumulate, l, "moe accumulate", seg[i]) = (struct gptoss_f32_accumulate_args){
                b->moe_output, b->expert_scores, residual, H, Rs, K};
            continue;
        }
        /* and the next RMSNorm: layer l+1's attention norm over the same rows (r0 = 0), or
         * in the last layer the final norm over its R = o rows; either way into the norm
         * buffer's rows where the unfused call would write them */
        *APPEND_IN(plan, f32_accumulate_bf16w_rmsnorm, l,
                   last ? "moe accumulate + final rmsnorm" : "moe accumulate + next rmsnorm", seg[i]) =
            (struct gptoss_f32_accumulate_bf16w_rmsnorm_args){
                b->moe_output, b->expert_scores, residual, W(m, gain), norm, H, Rs, K, cfg->rmsnorm_epsilon};
    }
    return fuse_norm;
}

static void build(struct gptoss_plan* plan, const struct gptoss_plan_setup* setup) {
    const struct gptoss_model* m = setup->model;
    const struct gptoss_model_config* cfg = &m->config;
    const struct gptoss_forward_buffers* b = setup->buffers;
    const uint32_t H = cfg->embedding_dim, L = cfg->num_blocks, V = m->vocabulary_size;
    const uint32_t n = plan->n, o = plan->o;
    plan->num_calls = 0;
    plan->buffers = b;
    *APPEND(plan, bf16_f32_embeddings, OUTSIDE, "embeddings") = (struct gptoss_bf16_f32_embeddings_args){
        b->batch_tokens, W(m, m->embedding), b->residual, n, H, V};
    int norm_ready = 0; /* the norm buffer holds the next RMSNorm already (a fused call made it) */
    for (uint32_t l = 0; l < L; l++) {
        /* rows that continue: in the last layer only those that produce logits */
        const uint32_t R = (l + 1 == L) ? o : n;
        build_attention(plan, setup, l, norm_ready, R);
        norm_ready = R != 0 && build_moe(plan, setup, l, R);
    }
    if (o > 0) {
        if (!norm_ready) {
            *APPEND(plan, f32_bf16w_rmsnorm, OUTSIDE, "final rmsnorm") = (struct gptoss_f32_bf16w_rmsnorm_args){
                b->residual + (size_t) (n - o) * H, W(m, m->final_norm), b->norm, o, H, cfg->rmsnorm_epsilon};
        }
        /* one call; batch-invariant plans: every row in the drawn rows' order (the logits
         * feed no other row, so a prompt's last row may take their sums too: with drawn rows
         * in order one, a prompt's logits are those of auto, where the row is alone) */
        *APPEND_AT(plan, f32_bf16w_unembedding, OUTSIDE, "unembedding",
                   plan->kinds_set ? plan->drawn_order : gptoss_row_order_auto, n - o) =
            (struct gptoss_f32_bf16w_unembedding_args){b->norm, W(m, m->unembedding), b->logits, b->argmax, o, H, V};
    }
}

void gptoss_plan_build(struct gptoss_plan* plan, const struct gptoss_plan_setup* setup, uint32_t n, uint32_t o) {
    plan->n = n;
    plan->o = o;
    plan->kinds_set = 0;
    plan->num_runs = 0;
    memset(plan->kinds, 0, sizeof(plan->kinds));
    plan->num_segments = 1;
    plan->segments[0] = (struct gptoss_plan_segment){0, n, gptoss_row_order_auto};
    build(plan, setup);
}

void gptoss_plan_build_kinds(struct gptoss_plan* plan, const struct gptoss_plan_setup* setup,
                             const uint32_t kinds[GPTOSS_PLAN_KINDS], const uint32_t* runs, uint32_t num_runs) {
    plan->num_runs = num_runs <= plan->runs_capacity ? num_runs : plan->runs_capacity;
    if (plan->num_runs > 0) memcpy(plan->runs, runs, (size_t) 2 * plan->num_runs * sizeof(uint32_t));
    const enum gptoss_row_order drawn = setup->drawn_order == gptoss_row_order_many ? gptoss_row_order_many
                                                                                  : gptoss_row_order_one;
    const enum gptoss_row_order order[GPTOSS_PLAN_KINDS] = {gptoss_row_order_many, drawn, gptoss_row_order_many,
                                                            drawn};
    plan->drawn_order = drawn;
    uint32_t n = 0;
    plan->num_segments = 0;
    for (int i = 0; i < GPTOSS_PLAN_KINDS; i++) {
        plan->kinds[i] = kinds[i];
        if (kinds[i] == 0) continue;
        struct gptoss_plan_segment* last = plan->num_segments ? &plan->segments[plan->num_segments - 1] : NULL;
        if (last != NULL && last->order == order[i]) {
            last->len += kinds[i];
        } else {
            plan->segments[plan->num_segments++] = (struct gptoss_plan_segment){n, kinds[i], order[i]};
        }
        n += kinds[i];
    }
    plan->n = n;
    plan->o = kinds[2] + kinds[3];
    plan->kinds_set = 1;
    build(plan, setup);
}

/* ---- the executor -------------------------------------------------------------------- */

void gptoss_profile_begin(struct gptoss_profile* prof, gptoss_backend_t backend) {
    (void) gptoss_backend_synchronize(backend); /* earlier calls were synchronised: nothing pending */
    prof->t0 = gptoss_now_ns();
}

/* A failed call keeps its message (synchronize would clear it) and is not counted. */
enum gptoss_status gptoss_profile_end(struct gptoss_profile* prof, gptoss_backend_t backend, int entry,
                                      enum gptoss_status st) {
    if (st != gptoss_status_success) return st;
    st = gptoss_backend_synchronize(backend);
    prof->calls[entry][prof->phase] += 1;
    prof->ns[entry][prof->phase] += gptoss_now_ns() - prof->t0;
    return st;
}

enum gptoss_status gptoss_plan_call(gptoss_backend_t backend, struct gptoss_profile* prof, enum gptoss_kernel kernel,
                                    const void* args) {
    if (__builtin_expect(prof == NULL, 1)) return gptoss_kernel_run(backend, kernel, args);
    gptoss_profile_begin(prof, backend);
    return gptoss_profile_end(prof, backend, (int) kernel, gptoss_kernel_run(backend, kernel, args));
}

/* Re-raises the current message prefixed with what failed. */
static enum gptoss_status fail_call(const struct gptoss_plan_call* c, enum gptoss_status st) {
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
    if (c->layer == OUTSIDE) return gptoss_fail(st, "%s: %s", c->what, msg);
    return gptoss_fail(st, "layer %u %s: %s", c->layer, c->what, msg);
}

gptoss_plan_observer_fn gptoss_plan_observer;

/* The calls in order, each in its row order (set on the backend where it changes; the
 * backend's order before the run is set again after it). */
static enum gptoss_status run_calls(const struct gptoss_plan* plan, gptoss_backend_t backend,
                                    struct gptoss_profile* prof, gptoss_plan_observer_fn observer) {
    const enum gptoss_row_order before = gptoss_backend_get_row_order(backend);
    enum gptoss_row_order current = before;
    enum gptoss_status st = gptoss_status_success;
    for (uint32_t i = 0; i < plan->num_calls && st == gptoss_status_success; i++) {
        const struct gptoss_plan_call* c = &plan->calls[i];
        if (c->order != current) {
            st = gptoss_backend_set_row_order(backend, c->order);
            current = c->order;
        }
        if (st == gptoss_status_success) st = gptoss_plan_call(backend, prof, c->kernel, &c->args);
        if (st != gptoss_status_success) {
            st = fail_call(c, st);
            break;
        }
        if (__builtin_expect(observer != NULL, 0)) observer(backend, plan, c);
    }
    if (current != before) {
        gptoss_error_keep_begin(); /* a failure's message stays the one reported */
        (void) gptoss_backend_set_row_order(backend, before);
        gptoss_error_keep_end();
    }
    return st;
}

enum gptoss_status gptoss_plan_run(const struct gptoss_plan* plan, gptoss_backend_t backend,
                                   struct gptoss_profile* prof) {
    if (prof != NULL) {
        prof->phase = gptoss_plan_phase(plan->kinds_set, plan->kinds, plan->n, plan->o);
        prof->tokens[prof->phase] += plan->n;
        prof->batches[prof->phase] += 1;
    }
    return run_calls(plan, backend, prof, gptoss_plan_observer);
}

enum gptoss_status gptoss_plan_record(const struct gptoss_plan* plan, gptoss_backend_t backend, gptoss_graph_t graph) {
    enum gptoss_status st = gptoss_graph_begin(graph);
    if (st != gptoss_status_success) return st;
    st = run_calls(plan, backend, NULL, NULL);
    if (st != gptoss_status_success) {
        gptoss_error_keep_begin(); /* end the recording; the call's failure is the one reported */
        (void) gptoss_graph_end(graph);
        gptoss_error_keep_end();
        return st;
    }
    return gptoss_graph_end(graph);
}

/* ---- the profile table ---------------------------------------------------------------- */

static const char* const phase_names[2] = {"prefill", "decode"};
static const char* const other_names[gptoss_profile_num_entries - gptoss_kernel_count] = {
    "copy h2d (token ids)", "copy d2h (argmax)", "copy d2h (logits)", "copy d2h (sampled id)",
    "sampler_pick_host (host)", "copy h2d (token counts)"};

static const char* entry_name(int e) {
    return e < gptoss_kernel_count ? gptoss_kernel_get_name((enum gptoss_kernel) e) : other_names[e - gptoss_kernel_count];
}

/* One row: ms per token over the phase's forward rows, % of the phase's wall time. */
static void print_row(FILE* f, int ph, const char* name, const char* calls, uint64_t ns, uint64_t tokens,
                      uint64_t phase_ns) {
    const double ms = (double) ns * 1e-6;
    char per_token[32] = "-";
    if (tokens > 0) snprintf(per_token, sizeof(per_token), "%.4f", ms / (double) tokens);
    fprintf(f, "%-7s  %-34s %7s %11.3f %10s %7.1f\n", phase_names[ph], name, calls, ms, per_token,
            phase_ns > 0 ? 100.0 * (double) ns / (double) phase_ns : 0.0);
}

void gptoss_profile_print(const struct gptoss_profile* p, FILE* f) {
    fprintf(f, "profile: host wall time, backend synchronised around every call\n");
    fprintf(f, "%-7s  %-34s %7s %11s %10s %7s\n", "phase", "kernel", "calls", "total ms", "ms/token", "% phase");
    for (int ph = 0; ph < 2; ph++) {
        if (p->batches[ph] == 0 && p->phase_ns[ph] == 0) continue;
        int order[gptoss_profile_num_entries];
        int n = 0;
        uint64_t kernel_ns = 0;
        for (int e = 0; e < gptoss_profile_num_entries; e++) {
            if (p->calls[e][ph] == 0) continue;
            kernel_ns += p->ns[e][ph];
            int j = n++; /* insertion sort, most time first */
            for (; j > 0 && p->ns[order[j - 1]][ph] < p->ns[e][ph]; j--) order[j] = order[j - 1];
            order[j] = e;
        }
        char text[64];
        for (int i = 0; i < n; i++) {
            snprintf(text, sizeof(text), "%llu", (unsigned long long) p->calls[order[i]][ph]);
            print_row(f, ph, entry_name(order[i]), text, p->ns[order[i]][ph], p->tokens[ph], p->phase_ns[ph]);
        }
        /* host work outside the timed calls (below 0 only by clock granularity) */
        const uint64_t other = p->phase_ns[ph] > kernel_ns ? p->phase_ns[ph] - kernel_ns : 0;
        print_row(f, ph, "other (host)", "-", other, p->tokens[ph], p->phase_ns[ph]);
        snprintf(text, sizeof(text), "total (%llu tokens, %llu batches)", (unsigned long long) p->tokens[ph],
                 (unsigned long long) p->batches[ph]);
        print_row(f, ph, text, "-", p->phase_ns[ph], p->tokens[ph], p->phase_ns[ph]);
    }
}
