/* Public router top-k + softmax, and the fused MoE gate (rmsnorm, router matmul, top-k):
 * argument checks, then the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_f32_topk(gptoss_backend_t backend, const float* scores, uint32_t* expert_ids,
                                   float* expert_scores, uint32_t num_tokens, uint32_t num_experts,
                                   uint32_t num_active_experts) {
    gptoss_clear_error();
    GPTOSS_TRY(gptoss_check_backend(backend));
    GPTOSS_TRY(gptoss_check_pointer(scores, "scores", 4));
    GPTOSS_TRY(gptoss_check_pointer(expert_ids, "expert_ids", 4));
    GPTOSS_TRY(gptoss_check_pointer(expert_scores, "expert_scores", 4));
    GPTOSS_TRY(gptoss_check_nonzero(num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(num_experts, "num_experts"));
    GPTOSS_TRY(gptoss_check_nonzero(num_active_experts, "num_active_experts"));
    if (num_active_experts > num_experts) {
        return gptoss_fail(GPTOSS_INVALID, "num_active_experts %u exceeds num_experts %u", num_active_experts,
                           num_experts);
    }
    uint64_t scores_elements = 0, routing_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("scores", 4, &scores_elements, num_tokens, num_experts));
    GPTOSS_TRY(GPTOSS_SIZE2("expert_ids", 4, &routing_elements, num_tokens, num_active_experts));
    const uint64_t scores_bytes = scores_elements * 4, routing_bytes = routing_elements * 4;
    GPTOSS_TRY(gptoss_check_disjoint(expert_ids, routing_bytes, "expert_ids", scores, scores_bytes, "scores"));
    GPTOSS_TRY(gptoss_check_disjoint(expert_scores, routing_bytes, "expert_scores", scores, scores_bytes, "scores"));
    GPTOSS_TRY(gptoss_check_disjoint(expert_scores, routing_bytes, "expert_scores", expert_ids, routing_bytes,
                                     "expert_ids"));
    return backend->ops->f32_topk(backend, scores, expert_ids, expert_scores, num_tokens, num_experts,
                                  num_active_experts);
}

enum gptoss_status gptoss_f32_bf16w_rmsnorm_matmul_topk(gptoss_backend_t backend, const float* input,
                                                        const gptoss_bf16* norm_weight, float* output,
                                                        const gptoss_bf16* router_weight,
                                                        const gptoss_bf16* router_bias, float* scores,
                                                        uint32_t* expert_ids, float* expert_scores,
                                                        uint32_t num_tokens, uint32_t num_channels,
                                                        uint32_t num_experts, uint32_t num_active_experts,
                                                        float epsilon) {
    gptoss_clear_error();
    GPTOSS_TRY(gptoss_check_backend(backend));
    GPTOSS_TRY(gptoss_check_pointer(input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(norm_weight, "norm_weight", 2));
    GPTOSS_TRY(gptoss_check_pointer(output, "output", 4));
    GPTOSS_TRY(gptoss_check_pointer(router_weight, "router_weight", 2));
    if (router_bias != NULL) GPTOSS_TRY(gptoss_check_pointer(router_bias, "router_bias", 2));
    GPTOSS_TRY(gptoss_check_pointer(scores, "scores", 4));
    GPTOSS_TRY(gptoss_check_pointer(expert_ids, "expert_ids", 4));
    GPTOSS_TRY(gptoss_check_pointer(expert_scores, "expert_scores", 4));
    GPTOSS_TRY(gptoss_check_nonzero(num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(num_channels, "num_channels"));
    GPTOSS_TRY(gptoss_check_nonzero(num_experts, "num_experts"));
    GPTOSS_TRY(gptoss_check_nonzero(num_active_experts, "num_active_experts"));
    if (num_active_experts > num_experts) {
        return gptoss_fail(GPTOSS_INVALID, "num_active_experts %u exceeds num_experts %u", num_active_experts,
                           num_experts);
    }
    GPTOSS_TRY(gptoss_check_finite(epsilon, "epsilon"));
    if (!(epsilon >= 0.0f)) return gptoss_fail(GPTOSS_INVALID, "epsilon %g is negative", (double) epsilon);
    uint64_t rows = 0, weight = 0, score_elements = 0, routing = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &rows, num_tokens, num_channels));
    GPTOSS_TRY(GPTOSS_SIZE2("router_weight", 2, &weight, num_experts, num_channels));
    GPTOSS_TRY(GPTOSS_SIZE2("scores", 4, &score_elements, num_tokens, num_experts));
    GPTOSS_TRY(GPTOSS_SIZE2("expert_ids", 4, &routing, num_tokens, num_active_experts));
    const struct {
        const void* p;
        uint64_t bytes;
        const char* name;
    } outs[] = {{output, rows * 4, "output"},
                {scores, score_elements * 4, "scores"},
                {expert_ids, routing * 4, "expert_ids"},
                {expert_scores, routing * 4, "expert_scores"}},
      ins[] = {{input, rows * 4, "input"},
               {norm_weight, (uint64_t) num_channels * 2, "norm_weight"},
               {router_weight, weight * 2, "router_weight"},
               {router_bias, router_bias != NULL ? (uint64_t) num_experts * 2 : 0, "router_bias"}};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
        for (size_t j = 0; j < i; j++) {
            GPTOSS_TRY(gptoss_check_disjoint(outs[i].p, outs[i].bytes, outs[i].name, outs[j].p, outs[j].bytes,
                                             outs[j].name));
        }
        for (size_t j = 0; j < sizeof ins / sizeof ins[0]; j++) {
            if (ins[j].p == NULL) continue;
            GPTOSS_TRY(gptoss_check_disjoint(outs[i].p, outs[i].bytes, outs[i].name, ins[j].p, ins[j].bytes,
                                             ins[j].name));
        }
    }
    return backend->ops->f32_bf16w_rmsnorm_matmul_topk(backend, input, norm_weight, output, router_weight,
                                                       router_bias, scores, expert_ids, expert_scores, num_tokens,
                                                       num_channels, num_experts, num_active_experts, epsilon);
}

enum gptoss_status gptoss_sequence_f32_bf16w_rmsnorm_matmul_topk(gptoss_backend_t backend, const float* input,
                                                                 const gptoss_bf16* norm_weight, float* output,
                                                                 const gptoss_bf16* router_weight,
                                                                 const gptoss_bf16* router_bias, float* scores,
                                                                 uint32_t* expert_ids, float* expert_scores,
                                                                 uint32_t num_tokens, uint32_t num_channels,
                                                                 uint32_t num_experts, uint32_t num_active_experts,
                                                                 float epsilon) {
    const struct gptoss_backend_ops* ops = backend->ops;
    enum gptoss_status st = ops->f32_bf16w_rmsnorm(backend, input, norm_weight, output, num_tokens, num_channels,
                                                   epsilon);
    if (st == gptoss_status_success) {
        st = ops->f32_bf16w_matmul(backend, output, router_weight, router_bias, scores, num_tokens, num_channels,
                                   num_experts);
    }
    if (st == gptoss_status_success) {
        st = ops->f32_topk(backend, scores, expert_ids, expert_scores, num_tokens, num_experts, num_active_experts);
    }
    return st;
}
