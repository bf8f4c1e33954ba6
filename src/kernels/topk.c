/* Argument checks of the router top-k + softmax and of the fused MoE gate (rmsnorm, router
 * matmul, top-k; and that fusion unfused, for backends without it); src/kernels/run.c runs them
 * before the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_check_f32_topk(gptoss_backend_t backend, const struct gptoss_f32_topk_args* a) {
    GPTOSS_TRY(gptoss_check_pointer(a->scores, "scores", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->expert_ids, "expert_ids", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->expert_scores, "expert_scores", 4));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_experts, "num_experts"));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_active_experts, "num_active_experts"));
    if (a->num_active_experts > a->num_experts) {
        return gptoss_fail(GPTOSS_INVALID, "num_active_experts %u exceeds num_experts %u", a->num_active_experts,
                           a->num_experts);
    }
    uint64_t scores_elements = 0, routing_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("scores", 4, &scores_elements, a->num_tokens, a->num_experts));
    GPTOSS_TRY(GPTOSS_SIZE2("expert_ids", 4, &routing_elements, a->num_tokens, a->num_active_experts));
    const uint64_t scores_bytes = scores_elements * 4, routing_bytes = routing_elements * 4;
    GPTOSS_TRY(gptoss_check_disjoint(a->expert_ids, routing_bytes, "expert_ids", a->scores, scores_bytes, "scores"));
    GPTOSS_TRY(
        gptoss_check_disjoint(a->expert_scores, routing_bytes, "expert_scores", a->scores, scores_bytes, "scores"));
    GPTOSS_TRY(gptoss_check_disjoint(a->expert_scores, routing_bytes, "expert_scores", a->expert_ids, routing_bytes,
                                     "expert_ids"));
    return gptoss_status_success;
}

enum gptoss_status gptoss_check_f32_bf16w_rmsnorm_matmul_topk(
    gptoss_backend_t backend, const struct gptoss_f32_bf16w_rmsnorm_matmul_topk_args* a) {
    GPTOSS_TRY(gptoss_check_pointer(a->input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->norm_weight, "norm_weight", 2));
    GPTOSS_TRY(gptoss_check_pointer(a->output, "output", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->router_weight, "router_weight", 2));
    if (a->router_bias != NULL) GPTOSS_TRY(gptoss_check_pointer(a->router_bias, "router_bias", 2));
    GPTOSS_TRY(gptoss_check_pointer(a->scores, "scores", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->expert_ids, "expert_ids", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->expert_scores, "expert_scores", 4));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_channels, "num_channels"));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_experts, "num_experts"));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_active_experts, "num_active_experts"));
    if (a->num_active_experts > a->num_experts) {
        return gptoss_fail(GPTOSS_INVALID, "num_active_experts %u exceeds num_experts %u", a->num_active_experts,
                           a->num_experts);
    }
    GPTOSS_TRY(gptoss_check_finite(a->epsilon, "epsilon"));
    if (!(a->epsilon >= 0.0f)) return gptoss_fail(GPTOSS_INVALID, "epsilon %g is negative", (double) a->epsilon);
    uint64_t rows = 0, weight = 0, score_elements = 0, routing = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &rows, a->num_tokens, a->num_channels));
    GPTOSS_TRY(GPTOSS_SIZE2("router_weight", 2, &weight, a->num_experts, a->num_channels));
    GPTOSS_TRY(GPTOSS_SIZE2("scores", 4, &score_elements, a->num_tokens, a->num_experts));
    GPTOSS_TRY(GPTOSS_SIZE2("expert_ids", 4, &routing, a->num_tokens, a->num_active_experts));
    const struct {
        const void* p;
        uint64_t bytes;
        const char* name;
    } outs[] = {{a->output, rows * 4, "output"},
                {a->scores, score_elements * 4, "scores"},
                {a->expert_ids, routing * 4, "expert_ids"},
                {a->expert_scores, routing * 4, "expert_scores"}},
      ins[] = {{a->input, rows * 4, "input"},
               {a->norm_weight, (uint64_t) a->num_channels * 2, "norm_weight"},
               {a->router_weight, weight * 2, "router_weight"},
               {a->router_bias, a->router_bias != NULL ? (uint64_t) a->num_experts * 2 : 0, "router_bias"}};
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
    return gptoss_status_success;
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
