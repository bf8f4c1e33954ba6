/* The forward plan (engine/plan.c) on a random tiny model (4 layers), white-box:
 *   - the calls of a decode step, fused and unfused, in order, with their layers;
 *   - every shape (n = 1..B tokens, o = 0 or 1 rows of logits, fused or not, both MoE
 *     paths) stays within gptoss_plan_max_calls, has one qkv per layer and, where rows
 *     continue, one sdpa; the last layer without logits stops after its qkv;
 *   - the varlen calls read the step's buffers: qkv every row, sdpa the last R rows
 *     (positions and sequences from row n - R on), the block tables of the layer's group
 *     (sliding window on the even layers), the cache of the layer's slot;
 *   - batch-invariant plans (gptoss_plan_build_kinds): each call over rows of one kind in
 *     that kind's row order, the MoE path and the attention runs by kind (test_kinds);
 *   - a failing call is named in the message ("layer 2 sdpa: ...") and stops the run.
 * The plan's numerics are checked end to end (forward_ref.py, bit-identical dumps). */
#include <gptoss/offline.h>

#include "model.h"
#include "plan.h"
#include "test_util.h"

/* The builder only offsets the buffers (by less than a MB here), never dereferences them:
 * every buffer is this arena; the KV pool is a header whose memory is the arena too. */
static float g_arena[1 << 18];
static uint32_t g_rows[3 * 64], g_tables[2][64];
static struct gptoss_kv_pool g_pool;
static struct gptoss_forward_buffers g_buffers;

static void init_buffers(const struct gptoss_model* m) {
    const struct gptoss_model_config* cfg = &m->config;
    g_pool = (struct gptoss_kv_pool){.memory = g_arena, .block_size = GPTOSS_KV_BLOCK_SIZE, .num_blocks = 8,
                                     .num_layers = cfg->num_blocks, .layer_slots = (cfg->num_blocks + 1) / 2,
                                     .num_kv_heads = cfg->num_kv_heads, .head_dim = cfg->head_dim,
                                     .window = cfg->attention_window,
                                     .head_stride = (uint64_t) 8 * GPTOSS_KV_BLOCK_SIZE * 2 * cfg->head_dim};
    g_buffers = (struct gptoss_forward_buffers){&g_pool,  g_rows,  g_rows + 64, g_rows + 128, {g_tables[0], g_tables[1]},
                                                g_arena,  g_arena, g_arena,     g_arena,      g_arena,
                                                (uint32_t*) g_arena, g_arena, (uint32_t*) g_arena, (uint32_t*) g_arena,
                                                g_arena,  g_arena, g_arena,     g_arena,      (uint32_t*) g_arena};
}

static void setup_for(struct gptoss_plan_setup* s, const struct gptoss_model* m, int fused, uint32_t dense_rows) {
    *s = (struct gptoss_plan_setup){m, &g_buffers, 4, 64, dense_rows, fused};
}

static int count(const struct gptoss_plan* p, enum gptoss_kernel k) {
    int n = 0;
    for (uint32_t i = 0; i < p->num_calls; i++) n += p->calls[i].kernel == k;
    return n;
}

static void test_decode_calls(const struct gptoss_model* m, struct gptoss_plan* plan) {
    struct gptoss_plan_setup s;
    /* fused: embeddings, attention rmsnorm of layer 0, then per layer qkv, sdpa, out, gate,
     * swiglu, down, accumulate + the next (or the final) rmsnorm; then the unembedding */
    static const enum gptoss_kernel layer_fused[] = {
        gptoss_kernel_f32_bf16w_matmul_qkv_varlen,   gptoss_kernel_f32_sdpa_varlen,
        gptoss_kernel_f32_bf16w_matmul_add,          gptoss_kernel_f32_bf16w_rmsnorm_matmul_topk,
        gptoss_kernel_f32_mf4w_moe_matmul_swiglu,    gptoss_kernel_f32_mf4w_moe_matmul,
        gptoss_kernel_f32_accumulate_bf16w_rmsnorm};
    setup_for(&s, m, 1, 256);
    gptoss_plan_build(plan, &s, 1, 1);
    const uint32_t L = m->config.num_blocks;
    int ok = plan->num_calls == 2 + 7 * L + 1 && plan->calls[0].kernel == gptoss_kernel_bf16_f32_embeddings &&
             plan->calls[1].kernel == gptoss_kernel_f32_bf16w_rmsnorm && plan->calls[1].layer == 0 &&
             plan->calls[plan->num_calls - 1].kernel == gptoss_kernel_f32_bf16w_unembedding;
    for (uint32_t l = 0; ok && l < L; l++) {
        for (uint32_t j = 0; j < 7; j++) {
            const struct gptoss_plan_call* c = &plan->calls[2 + 7 * l + j];
            ok = ok && c->kernel == layer_fused[j] && c->layer == l;
        }
    }
    CHECK(ok, "fused decode plan: %u calls", plan->num_calls);
    /* unfused: per layer attention rmsnorm, qkv, sdpa, out, rmsnorm, router, topk, swiglu,
     * down, accumulate; then the final rmsnorm and the unembedding */
    setup_for(&s, m, 0, 256);
    gptoss_plan_build(plan, &s, 1, 1);
    CHECK(plan->num_calls == 1 + 10 * L + 2 && count(plan, gptoss_kernel_f32_bf16w_rmsnorm) == (int) (2 * L + 1) &&
              count(plan, gptoss_kernel_f32_topk) == (int) L && count(plan, gptoss_kernel_f32_accumulate) == (int) L,
          "unfused decode plan: %u calls", plan->num_calls);
    /* the expert-grouped path from 1 row on */
    setup_for(&s, m, 1, 1);
    gptoss_plan_build(plan, &s, 1, 1);
    CHECK(count(plan, gptoss_kernel_f32_gather_and_accumulate) == (int) L &&
              count(plan, gptoss_kernel_f32_accumulate_bf16w_rmsnorm) == 0 &&
              count(plan, gptoss_kernel_f32_bf16w_rmsnorm) == (int) L + 1,
          "decode plan with the expert-grouped MoE");
}

static void test_all_shapes(const struct gptoss_model* m, struct gptoss_plan* plan) {
    const uint32_t L = m->config.num_blocks, B = 40;
    int bad = 0;
    for (int fused = 0; fused <= 1; fused++) {
        for (uint32_t dense = 1; dense <= 64; dense *= 4) {
            struct gptoss_plan_setup s;
            setup_for(&s, m, fused, dense);
            for (uint32_t n = 1; n <= B; n++) {
                for (uint32_t o = 0; o <= 1; o++) {
                    gptoss_plan_build(plan, &s, n, o);
                    const int sdpa = count(plan, gptoss_kernel_f32_sdpa_varlen);
                    const int unemb = count(plan, gptoss_kernel_f32_bf16w_unembedding);
                    const int ok = plan->num_calls <= plan->capacity &&
                                   count(plan, gptoss_kernel_f32_bf16w_matmul_qkv_varlen) == (int) L &&
                                   sdpa == (int) (o ? L : L - 1) && unemb == (int) o &&
                                   (o || plan->calls[plan->num_calls - 1].kernel ==
                                             gptoss_kernel_f32_bf16w_matmul_qkv_varlen);
                    if (!ok && bad++ < 5) {
                        CHECK(0, "fused %d dense %u n %u o %u: %u calls, %d sdpa, %d unembedding", fused, dense, n, o,
                              plan->num_calls, sdpa, unemb);
                    }
                }
            }
        }
    }
    CHECK(bad == 0, "%d shapes wrong", bad);
}

static void test_step_buffers(const struct gptoss_model* m, struct gptoss_plan* plan) {
    struct gptoss_plan_setup s;
    setup_for(&s, m, 1, 256);
    gptoss_plan_build(plan, &s, 7, 2);
    const uint32_t L = m->config.num_blocks;
    int ok = 1, seen = 0;
    for (uint32_t i = 0; i < plan->num_calls; i++) {
        const struct gptoss_plan_call* c = &plan->calls[i];
        const uint32_t g = c->layer % 2; /* even layers: the sliding window group */
        const float* cache = g_arena + (size_t) (c->layer / 2) * g_pool.num_kv_heads * g_pool.head_stride;
        if (c->kernel == gptoss_kernel_f32_bf16w_matmul_qkv_varlen) {
            const struct gptoss_f32_bf16w_matmul_qkv_varlen_args* a = &c->args.f32_bf16w_matmul_qkv_varlen;
            ok = ok && a->num_tokens == 7 && a->positions == g_rows + 64 && a->seq_ids == g_rows + 128 &&
                 a->block_tables == g_tables[g] && a->kv_cache == cache && a->kv_stride == g_pool.head_stride &&
                 a->table_stride == 64 && a->num_seqs == 4 && a->block_size == GPTOSS_KV_BLOCK_SIZE;
        }
        if (c->kernel == gptoss_kernel_f32_sdpa_varlen) {
            /* all 7 rows in the first layers, the 2 logits rows (the last ones) in the last */
            const struct gptoss_f32_sdpa_varlen_args* a = &c->args.f32_sdpa_varlen;
            const uint32_t R = c->layer + 1 == L ? 2u : 7u;
            ok = ok && a->num_q_tokens == R && a->positions == g_rows + 64 + (7 - R) &&
                 a->seq_ids == g_rows + 128 + (7 - R) && a->block_tables == g_tables[g] && a->kv == cache &&
                 a->window == (g == 0 ? m->config.attention_window : UINT32_MAX);
            seen++;
        }
    }
    CHECK(ok && seen == (int) L, "the varlen calls read the step's rows, tables and caches");
}

/* The rows a call covers (its first row is c->row0), 0 for calls over no rows of their own
 * order (embeddings, norms outside the runs). */
static uint32_t call_rows(const struct gptoss_plan_call* c) {
    switch (c->kernel) {
        case gptoss_kernel_f32_bf16w_matmul_qkv_varlen: return c->args.f32_bf16w_matmul_qkv_varlen.num_tokens;
        case gptoss_kernel_f32_bf16w_matmul_add: return c->args.f32_bf16w_matmul_add.num_tokens;
        case gptoss_kernel_f32_sdpa_varlen: return c->args.f32_sdpa_varlen.num_q_tokens;
        case gptoss_kernel_f32_accumulate: return c->args.f32_accumulate.num_tokens;
        case gptoss_kernel_f32_accumulate_bf16w_rmsnorm: return c->args.f32_accumulate_bf16w_rmsnorm.num_tokens;
        case gptoss_kernel_f32_bf16w_rmsnorm_matmul_topk: return c->args.f32_bf16w_rmsnorm_matmul_topk.num_tokens;
        case gptoss_kernel_f32_mf4w_moe_matmul_swiglu: return c->args.f32_mf4w_moe_matmul_swiglu.num_tokens;
        case gptoss_kernel_f32_mf4w_moe_dense_matmul_swiglu: return c->args.f32_mf4w_moe_dense_matmul_swiglu.num_tokens;
        default: return 0;
    }
}

/* Batch-invariant plans (gptoss_plan_build_kinds), every layout of up to 3 rows per kind,
 * with the drawn rows in order one and in order many (batch_invariant many):
 * every qkv, attention-output, gate and MoE call covers rows of its own order only (prompt
 * rows many, drawn rows one, or many but for attention), each layer's qkv calls cover the n
 * rows once, the MoE of order-many runs is expert-grouped (moe_dense_many) and of order-one
 * runs per token, the attention of prompt rows is one call per run (runs: the first kind's
 * rows in runs of 2, each prompt row with logits alone) and of drawn rows in order one, the
 * unembedding one call over the o rows in the drawn rows' order. */
static void test_kinds(const struct gptoss_model* m, struct gptoss_plan* plan) {
    const uint32_t L = m->config.num_blocks;
    struct gptoss_plan_setup s;
    setup_for(&s, m, 1, 1); /* moe_dense_min_rows 1: ignored by these plans */
    s.moe_dense_many = 1;
    int bad = 0, plans = 0, dense_calls = 0, pair_many_calls = 0, fused_many_layers = 0;
    /* drawn rows in order one, then (batch_invariant many) in order many but for attention */
    for (uint32_t k = 0; k < 2 * 4 * 4 * 4 * 4; k++) {
        const int drawn_many = k >= 256;
        s.drawn_order = drawn_many ? gptoss_row_order_many : gptoss_row_order_one;
        const uint32_t kinds[4] = {k % 4, k / 4 % 4, k / 16 % 4, k / 64 % 4};
        const uint32_t n = kinds[0] + kinds[1] + kinds[2] + kinds[3];
        if (n == 0) continue;
        uint32_t runs[16], nr = 0;
        for (uint32_t r = 0; r < kinds[0]; r += 2) {
            runs[2 * nr] = r;
            runs[2 * nr + 1] = kinds[0] - r < 2 ? kinds[0] - r : 2;
            nr++;
        }
        for (uint32_t r = 0; r < kinds[2]; r++, nr++) {
            runs[2 * nr] = kinds[0] + kinds[1] + r;
            runs[2 * nr + 1] = 1;
        }
        int many[12];
        for (uint32_t r = 0; r < n; r++) {
            many[r] = r < kinds[0] || (r >= kinds[0] + kinds[1] && r < kinds[0] + kinds[1] + kinds[2]);
        }
        gptoss_plan_build_kinds(plan, &s, kinds, runs, nr);
        plans++;
        uint32_t qkv_rows[8] = {0}, many_sdpa = 0, unemb = 0;
        int layer_moe[8] = {0}, layer_dense[8] = {0}, layer_fused[8] = {0}, layer_fused_many[8] = {0};
        int ok = plan->n == n && plan->o == kinds[2] + kinds[3] && plan->num_calls <= plan->capacity;
        for (uint32_t i = 0; i < plan->num_calls && ok; i++) {
            const struct gptoss_plan_call* c = &plan->calls[i];
            const uint32_t rows = call_rows(c);
            if (c->kernel == gptoss_kernel_f32_bf16w_unembedding) {
                unemb++;
                ok = c->order == s.drawn_order && c->args.f32_bf16w_unembedding.num_tokens == plan->o;
                continue;
            }
            const int sdpa = c->kernel == gptoss_kernel_f32_sdpa_varlen;
            if (rows == 0) continue;
            if (c->kernel == gptoss_kernel_f32_bf16w_matmul_qkv_varlen) qkv_rows[c->layer] += rows;
            if (c->kernel == gptoss_kernel_f32_sdpa_varlen && c->order == gptoss_row_order_many) {
                /* exactly one run (or its part in the last layer's logits rows) */
                int run = 0;
                for (uint32_t j = 0; j < nr; j++) {
                    run |= c->row0 >= runs[2 * j] && c->row0 + rows <= runs[2 * j] + runs[2 * j + 1];
                }
                ok = ok && run;
                many_sdpa++;
            }
            /* the order of each row's call: prompt rows many; drawn rows one (attention always,
             * the rest unless drawn_many) */
            for (uint32_t r = c->row0; r < c->row0 + rows && ok; r++) {
                const int want_many = many[r] || (drawn_many && !sdpa);
                ok = r < n && want_many == (c->order == gptoss_row_order_many);
                if (sdpa) ok = ok && many[r] == (c->order == gptoss_row_order_many);
            }
            /* the MoE of an order-many run: per pair (in order many) up to a few rows, else grouped */
            if (c->kernel == gptoss_kernel_f32_mf4w_moe_dense_matmul_swiglu) {
                ok = ok && c->order == gptoss_row_order_many && rows > GPTOSS_PLAN_MOE_PAIRS_MANY_MAX_ROWS;
                dense_calls++;
            }
            if (c->kernel == gptoss_kernel_f32_mf4w_moe_matmul_swiglu) {
                ok = ok && (c->order == gptoss_row_order_one || rows <= GPTOSS_PLAN_MOE_PAIRS_MANY_MAX_ROWS);
                pair_many_calls += c->order == gptoss_row_order_many;
            }
            /* the fused accumulate + RMSNorm exactly in the layers with MoE calls but no grouped one */
            if (c->layer < 8) {
                layer_dense[c->layer] |= c->kernel == gptoss_kernel_f32_mf4w_moe_dense_matmul_swiglu;
                layer_moe[c->layer] |= c->kernel == gptoss_kernel_f32_mf4w_moe_dense_matmul_swiglu ||
                                       c->kernel == gptoss_kernel_f32_mf4w_moe_matmul_swiglu;
                layer_fused[c->layer] |= c->kernel == gptoss_kernel_f32_accumulate_bf16w_rmsnorm;
                layer_fused_many[c->layer] |= c->kernel == gptoss_kernel_f32_accumulate_bf16w_rmsnorm &&
                                              c->order == gptoss_row_order_many;
            }
        }
        for (uint32_t l = 0; l < L && l < 8; l++) {
            ok = ok && layer_fused[l] == (layer_moe[l] && !layer_dense[l]);
            fused_many_layers += layer_fused_many[l];
        }
        for (uint32_t l = 0; l < L && l < 8; l++) ok = ok && qkv_rows[l] == n;
        ok = ok && unemb == (plan->o > 0) && (kinds[0] + kinds[2] == 0 || many_sdpa > 0);
        if (!ok && bad++ < 5) {
            CHECK(0, "kinds %u %u %u %u, drawn order %s: a call over rows of another order", kinds[0], kinds[1],
                  kinds[2], kinds[3], drawn_many ? "many" : "one");
        }
    }
    CHECK(bad == 0 && plans == 2 * 255, "batch-invariant plans: %d of %d wrong", bad, plans);
    /* both MoE forms of order many occur (runs of up to 3 + 3 rows a kind pair) */
    CHECK(dense_calls > 0 && pair_many_calls > 0, "order-many MoE: %d grouped calls, %d per-pair calls", dense_calls,
          pair_many_calls);
    /* and layers whose order-many runs are all per pair fuse the accumulate + RMSNorm */
    CHECK(fused_many_layers > 0, "order-many MoE on per-pair calls: %d fused layers", fused_many_layers);
}

static void test_failure(struct gptoss_model* m, struct gptoss_plan* plan, gptoss_backend_t backend) {
    /* the bad call is refused by its check before anything runs; it runs alone */
    struct gptoss_plan_setup s;
    setup_for(&s, m, 1, 256);
    gptoss_plan_build(plan, &s, 1, 1);
    uint32_t i = 0;
    while (i < plan->num_calls && !(plan->calls[i].kernel == gptoss_kernel_f32_sdpa_varlen && plan->calls[i].layer == 2)) i++;
    CHECK(i < plan->num_calls, "layer 2 has an sdpa");
    if (i == plan->num_calls) return;
    struct gptoss_plan one = {plan->n, plan->o, 1, 1, &plan->calls[i]};
    plan->calls[i].args.f32_sdpa_varlen.num_kv_heads = 3; /* not a divisor of the 8 q heads */
    const enum gptoss_status st = gptoss_plan_run(&one, backend, NULL);
    CHECK(st == gptoss_status_invalid_argument && strncmp(gptoss_last_error(), "layer 2 sdpa: ", 14) == 0,
          "failure named: %s (%s)", gptoss_status_to_string(st), gptoss_last_error());
}

int main(void) {
    gptoss_backend_t backend = NULL;
    gptoss_model_t model = NULL;
    if (gptoss_backend_create_cpu(1, &backend) != gptoss_status_success ||
        gptoss_model_create_random("tiny", 0, 3, backend, &model) != gptoss_status_success) {
        fprintf(stderr, "test_plan: %s\n", gptoss_last_error());
        return 1;
    }
    static uint32_t runs[2 * 16];
    struct gptoss_plan plan = {0, 0, 0, gptoss_plan_max_calls_runs(model->config.num_blocks, 16), NULL};
    plan.calls = calloc(plan.capacity, sizeof(struct gptoss_plan_call));
    if (plan.calls == NULL) return 1;
    plan.runs = runs;
    plan.runs_capacity = 16;
    init_buffers(model);
    test_decode_calls(model, &plan);
    test_all_shapes(model, &plan);
    test_step_buffers(model, &plan);
    test_kinds(model, &plan);
    test_failure(model, &plan, backend);
    free(plan.calls);
    gptoss_model_release(model);
    gptoss_backend_release(backend);
    return finish();
}
