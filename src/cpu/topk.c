/* CPU backend: router top-k + softmax (kernels.h gptoss_f32_topk, KERNELS.md 3.13).
 *
 * Selection is repeated arg-max over the not-yet-taken experts: start from the lowest
 * untaken index and replace it only by a strictly larger value, so ties go to the lowest
 * expert index (== comparison: +0 and -0 tie) and the picked experts are distinct (the
 * same rule as the float64 reference, NaN logits included).
 *
 * Softmax over the picks: e_j = expf(v_j - v_0), sum pairwise ((e0+e1)+(e2+e3) for k = 4,
 * as upstream), score_j = e_j * (1 / sum). Scalar; one token per item. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "internal/error.h"

struct topk_context {
    const float* scores;
    uint32_t* expert_ids;
    float* expert_scores;
    uint32_t num_experts;
    uint32_t k;
    uint8_t* taken; /* num_experts flags per thread */
};

static float pairwise_sum(const float* x, uint32_t n) {
    if (n == 1) return x[0];
    const uint32_t h = n / 2;
    return pairwise_sum(x, h) + pairwise_sum(x + h, n - h);
}

static void topk_task(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct topk_context* ctx = context;
    const uint32_t E = ctx->num_experts, k = ctx->k;
    uint8_t* taken = ctx->taken + (size_t) thread_index * E;
    for (size_t t = begin; t < end; t++) {
        const float* v = ctx->scores + t * E;
        uint32_t* ids = ctx->expert_ids + t * k;
        float* sc = ctx->expert_scores + t * k;
        memset(taken, 0, E);
        for (uint32_t j = 0; j < k; j++) {
            uint32_t best = UINT32_MAX;
            for (uint32_t e = 0; e < E; e++) {
                if (taken[e]) continue;
                if (best == UINT32_MAX || v[e] > v[best]) best = e;
            }
            ids[j] = best;
            taken[best] = 1;
        }
        const float v0 = v[ids[0]];
        for (uint32_t j = 0; j < k; j++) sc[j] = expf(v[ids[j]] - v0);
        const float r = 1.0f / pairwise_sum(sc, k);
        for (uint32_t j = 0; j < k; j++) sc[j] = sc[j] * r;
    }
}

enum gptoss_status gptoss_cpu_f32_topk(gptoss_backend_t backend, const struct gptoss_f32_topk_args* args) {
    const uint32_t threads = gptoss_threadpool_num_threads(gptoss_cpu(backend)->pool);
    void* taken = NULL;
    GPTOSS_TRY(gptoss_cpu_scratch_acquire(backend, (size_t) threads * args->num_experts, &taken));
    struct topk_context ctx = {
        .scores = args->scores,
        .expert_ids = args->expert_ids,
        .expert_scores = args->expert_scores,
        .num_experts = args->num_experts,
        .k = args->num_active_experts,
        .taken = taken,
    };
    const size_t work = (size_t) args->num_experts * args->num_active_experts;
    gptoss_cpu_parallelize(backend, topk_task, &ctx, args->num_tokens, work >= 4096 ? 1 : 4096 / work);
    gptoss_cpu_scratch_release(backend);
    return gptoss_status_success;
}
