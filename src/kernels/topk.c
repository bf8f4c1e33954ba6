/* Argument checks of the router top-k + softmax and of the fused MoE gate: rmsnorm,
 * router matmul, top-k (src/kernels/run.c runs them before the backend entry), and the
 * gate as its three kernels, for a backend without the fused kernel. */
#include "kernels/check.h"

enum gptoss_status gptoss_check_f32_topk(gptoss_backend_t backend, const struct gptoss_f32_topk_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->scores, "scores", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->expert_ids, "expert_ids", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->expert_scores, "expert_scores", 4));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_experts, "num_experts"));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_active_experts, "num_active_experts"));
    if (args->num_active_experts > args->num_experts) {
        return gptoss_fail(GPTOSS_INVALID, "num_active_experts %u exceeds num_experts %u", args->num_active_experts,
                           args->num_experts);
    }
    uint64_t scores_elements = 0, routing_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("scores", 4, &scores_elements, args->num_tokens, args->num_experts));
    GPTOSS_TRY(GPTOSS_SIZE2("expert_ids", 4, &routing_elements, args->num_tokens, args->num_active_experts));
    const uint64_t scores_bytes = scores_elements * 4, routing_bytes = routing_elements * 4;
    GPTOSS_TRY(
        gptoss_check_disjoint(args->expert_ids, routing_bytes, "expert_ids", args->scores, scores_bytes, "scores"));
    GPTOSS_TRY(gptoss_check_disjoint(args->expert_scores, routing_bytes, "expert_scores", args->scores, scores_bytes,
                                     "scores"));
    GPTOSS_TRY(gptoss_check_disjoint(args->expert_scores, routing_bytes, "expert_scores", args->expert_ids,
                                     routing_bytes, "expert_ids"));
    return gptoss_status_success;
}

enum gptoss_status gptoss_check_f32_bf16w_rmsnorm_matmul_topk(
    gptoss_backend_t backend, const struct gptoss_f32_bf16w_rmsnorm_matmul_topk_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->norm_weight, "norm_weight", 2));
    GPTOSS_TRY(gptoss_check_pointer(args->output, "output", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->router_weight, "router_weight", 2));
    if (args->router_bias != NULL) GPTOSS_TRY(gptoss_check_pointer(args->router_bias, "router_bias", 2));
    GPTOSS_TRY(gptoss_check_pointer(args->scores, "scores", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->expert_ids, "expert_ids", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->expert_scores, "expert_scores", 4));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_channels, "num_channels"));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_experts, "num_experts"));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_active_experts, "num_active_experts"));
    if (args->num_active_experts > args->num_experts) {
        return gptoss_fail(GPTOSS_INVALID, "num_active_experts %u exceeds num_experts %u", args->num_active_experts,
                           args->num_experts);
    }
    GPTOSS_TRY(gptoss_check_finite(args->epsilon, "epsilon"));
    if (!(args->epsilon >= 0.0f)) return gptoss_fail(GPTOSS_INVALID, "epsilon %g is negative", (double) args->epsilon);
    uint64_t rows = 0, weight = 0, score_elements = 0, routing = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &rows, args->num_tokens, args->num_channels));
    GPTOSS_TRY(GPTOSS_SIZE2("router_weight", 2, &weight, args->num_experts, args->num_channels));
    GPTOSS_TRY(GPTOSS_SIZE2("scores", 4, &score_elements, args->num_tokens, args->num_experts));
    GPTOSS_TRY(GPTOSS_SIZE2("expert_ids", 4, &routing, args->num_tokens, args->num_active_experts));
    const struct {
        const void* p;
        uint64_t bytes;
        const char* name;
    } outs[] = {{args->output, rows * 4, "output"},
                {args->scores, score_elements * 4, "scores"},
                {args->expert_ids, routing * 4, "expert_ids"},
                {args->expert_scores, routing * 4, "expert_scores"}},
      ins[] = {{args->input, rows * 4, "input"},
               {args->norm_weight, (uint64_t) args->num_channels * 2, "norm_weight"},
               {args->router_weight, weight * 2, "router_weight"},
               {args->router_bias, args->router_bias != NULL ? (uint64_t) args->num_experts * 2 : 0, "router_bias"}};
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

enum gptoss_status gptoss_unfused_f32_bf16w_rmsnorm_matmul_topk(
    gptoss_backend_t backend, const struct gptoss_f32_bf16w_rmsnorm_matmul_topk_args* args) {
    const struct gptoss_f32_bf16w_rmsnorm_args rmsnorm = {
        args->input, args->norm_weight, args->output, args->num_tokens, args->num_channels, args->epsilon,
    };
    GPTOSS_TRY(backend->ops->f32_bf16w_rmsnorm(backend, &rmsnorm));
    const struct gptoss_f32_bf16w_matmul_args matmul = {
        args->output,     args->router_weight, args->router_bias, args->scores,
        args->num_tokens, args->num_channels,  args->num_experts,
    };
    GPTOSS_TRY(backend->ops->f32_bf16w_matmul(backend, &matmul));
    const struct gptoss_f32_topk_args topk = {
        args->scores,     args->expert_ids,  args->expert_scores,
        args->num_tokens, args->num_experts, args->num_active_experts,
    };
    return backend->ops->f32_topk(backend, &topk);
}
