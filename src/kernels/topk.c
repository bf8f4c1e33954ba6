/* Public router top-k + softmax: argument checks, then the backend entry. */
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
