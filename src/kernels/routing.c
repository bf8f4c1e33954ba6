/* Public MoE routing kernels (metadata, scatter, gather + accumulate, accumulate):
 * argument checks, then the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_expert_routing_metadata(gptoss_backend_t backend, const uint32_t* expert_ids,
                                                  uint32_t* expert_offsets, uint32_t* intra_expert_offsets,
                                                  uint32_t num_pairs, uint32_t num_experts) {
    gptoss_clear_error();
    GPTOSS_TRY(gptoss_check_backend(backend));
    GPTOSS_TRY(gptoss_check_pointer(expert_ids, "expert_ids", 4));
    GPTOSS_TRY(gptoss_check_pointer(expert_offsets, "expert_offsets", 4));
    GPTOSS_TRY(gptoss_check_pointer(intra_expert_offsets, "intra_expert_offsets", 4));
    GPTOSS_TRY(gptoss_check_nonzero(num_pairs, "num_pairs"));
    GPTOSS_TRY(gptoss_check_nonzero(num_experts, "num_experts"));
    if (num_experts == UINT32_MAX) {
        return gptoss_fail(GPTOSS_UNSUPPORTED, "num_experts %u: expert_offsets[num_experts + 1] exceeds 32-bit indexing",
                           num_experts);
    }
    GPTOSS_TRY(GPTOSS_SIZE1("expert_ids", 4, NULL, num_pairs));
    const uint64_t pairs_bytes = (uint64_t) num_pairs * 4, offsets_bytes = ((uint64_t) num_experts + 1) * 4;
    GPTOSS_TRY(gptoss_check_disjoint(expert_offsets, offsets_bytes, "expert_offsets", expert_ids, pairs_bytes,
                                     "expert_ids"));
    GPTOSS_TRY(gptoss_check_disjoint(intra_expert_offsets, pairs_bytes, "intra_expert_offsets", expert_ids,
                                     pairs_bytes, "expert_ids"));
    GPTOSS_TRY(gptoss_check_disjoint(intra_expert_offsets, pairs_bytes, "intra_expert_offsets", expert_offsets,
                                     offsets_bytes, "expert_offsets"));
    if (backend->host_memory) {
        GPTOSS_TRY(gptoss_check_ids_below(expert_ids, num_pairs, "expert_ids", num_experts, "num_experts"));
    }
    return backend->ops->expert_routing_metadata(backend, expert_ids, expert_offsets, intra_expert_offsets,
                                                 num_pairs, num_experts);
}

/* Host-side routing contents shared by scatter and gather: ids below num_experts,
 * offsets non-decreasing from 0 to num_pairs, every pair's row inside its expert. */
static enum gptoss_status check_routing_contents(const uint32_t* expert_ids, const uint32_t* expert_offsets,
                                                 const uint32_t* intra_expert_offsets, uint64_t num_pairs,
                                                 uint32_t num_experts) {
    GPTOSS_TRY(gptoss_check_ids_below(expert_ids, num_pairs, "expert_ids", num_experts, "num_experts"));
    GPTOSS_TRY(gptoss_check_expert_offsets(expert_offsets, num_experts, num_pairs,
                                           "num_tokens x num_active_experts ="));
    GPTOSS_TRY(gptoss_check_intra_offsets(expert_ids, expert_offsets, intra_expert_offsets, num_pairs));
    return gptoss_status_success;
}

enum gptoss_status gptoss_f32_scatter(gptoss_backend_t backend, const float* input, const uint32_t* expert_ids,
                                      const uint32_t* expert_offsets, const uint32_t* intra_expert_offsets,
                                      float* output, uint32_t num_channels, uint32_t num_tokens,
                                      uint32_t num_active_experts, uint32_t num_experts) {
    gptoss_clear_error();
    GPTOSS_TRY(gptoss_check_backend(backend));
    GPTOSS_TRY(gptoss_check_pointer(input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(expert_ids, "expert_ids", 4));
    GPTOSS_TRY(gptoss_check_pointer(expert_offsets, "expert_offsets", 4));
    GPTOSS_TRY(gptoss_check_pointer(intra_expert_offsets, "intra_expert_offsets", 4));
    GPTOSS_TRY(gptoss_check_pointer(output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(num_channels, "num_channels"));
    uint64_t num_pairs = 0;
    GPTOSS_TRY(gptoss_check_routing(num_tokens, num_active_experts, num_experts, true, &num_pairs));
    uint64_t input_elements = 0, output_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &input_elements, num_tokens, num_channels));
    GPTOSS_TRY(GPTOSS_SIZE2("output", 4, &output_elements, num_pairs, num_channels));
    const uint64_t output_bytes = output_elements * 4, pairs_bytes = num_pairs * 4;
    GPTOSS_TRY(gptoss_check_disjoint(output, output_bytes, "output", input, input_elements * 4, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(output, output_bytes, "output", expert_ids, pairs_bytes, "expert_ids"));
    GPTOSS_TRY(gptoss_check_disjoint(output, output_bytes, "output", expert_offsets,
                                     ((uint64_t) num_experts + 1) * 4, "expert_offsets"));
    GPTOSS_TRY(gptoss_check_disjoint(output, output_bytes, "output", intra_expert_offsets, pairs_bytes,
                                     "intra_expert_offsets"));
    if (backend->host_memory) {
        GPTOSS_TRY(check_routing_contents(expert_ids, expert_offsets, intra_expert_offsets, num_pairs, num_experts));
    }
    return backend->ops->f32_scatter(backend, input, expert_ids, expert_offsets, intra_expert_offsets, output,
                                     num_channels, num_tokens, num_active_experts, num_experts);
}

enum gptoss_status gptoss_f32_gather_and_accumulate(gptoss_backend_t backend, const float* input,
                                                    const uint32_t* expert_ids, const float* expert_scores,
                                                    const uint32_t* expert_offsets,
                                                    const uint32_t* intra_expert_offsets, float* residual,
                                                    uint32_t num_channels, uint32_t num_tokens,
                                                    uint32_t num_active_experts, uint32_t num_experts) {
    gptoss_clear_error();
    GPTOSS_TRY(gptoss_check_backend(backend));
    GPTOSS_TRY(gptoss_check_pointer(input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(expert_ids, "expert_ids", 4));
    GPTOSS_TRY(gptoss_check_pointer(expert_scores, "expert_scores", 4));
    GPTOSS_TRY(gptoss_check_pointer(expert_offsets, "expert_offsets", 4));
    GPTOSS_TRY(gptoss_check_pointer(intra_expert_offsets, "intra_expert_offsets", 4));
    GPTOSS_TRY(gptoss_check_pointer(residual, "residual", 4));
    GPTOSS_TRY(gptoss_check_nonzero(num_channels, "num_channels"));
    uint64_t num_pairs = 0;
    GPTOSS_TRY(gptoss_check_routing(num_tokens, num_active_experts, num_experts, true, &num_pairs));
    uint64_t input_elements = 0, residual_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &input_elements, num_pairs, num_channels));
    GPTOSS_TRY(GPTOSS_SIZE2("residual", 4, &residual_elements, num_tokens, num_channels));
    const uint64_t residual_bytes = residual_elements * 4, pairs_bytes = num_pairs * 4;
    GPTOSS_TRY(gptoss_check_disjoint(residual, residual_bytes, "residual", input, input_elements * 4, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(residual, residual_bytes, "residual", expert_ids, pairs_bytes, "expert_ids"));
    GPTOSS_TRY(gptoss_check_disjoint(residual, residual_bytes, "residual", expert_scores, pairs_bytes,
                                     "expert_scores"));
    GPTOSS_TRY(gptoss_check_disjoint(residual, residual_bytes, "residual", expert_offsets,
                                     ((uint64_t) num_experts + 1) * 4, "expert_offsets"));
    GPTOSS_TRY(gptoss_check_disjoint(residual, residual_bytes, "residual", intra_expert_offsets, pairs_bytes,
                                     "intra_expert_offsets"));
    if (backend->host_memory) {
        GPTOSS_TRY(check_routing_contents(expert_ids, expert_offsets, intra_expert_offsets, num_pairs, num_experts));
    }
    return backend->ops->f32_gather_and_accumulate(backend, input, expert_ids, expert_scores, expert_offsets,
                                                   intra_expert_offsets, residual, num_channels, num_tokens,
                                                   num_active_experts, num_experts);
}

enum gptoss_status gptoss_f32_accumulate(gptoss_backend_t backend, const float* input, const float* expert_scores,
                                         float* residual, uint32_t num_channels, uint32_t num_tokens,
                                         uint32_t num_active_experts) {
    gptoss_clear_error();
    GPTOSS_TRY(gptoss_check_backend(backend));
    GPTOSS_TRY(gptoss_check_pointer(input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(expert_scores, "expert_scores", 4));
    GPTOSS_TRY(gptoss_check_pointer(residual, "residual", 4));
    GPTOSS_TRY(gptoss_check_nonzero(num_channels, "num_channels"));
    GPTOSS_TRY(gptoss_check_nonzero(num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(num_active_experts, "num_active_experts"));
    uint64_t input_elements = 0, residual_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE3("input", 4, &input_elements, num_active_experts, num_tokens, num_channels));
    GPTOSS_TRY(GPTOSS_SIZE2("residual", 4, &residual_elements, num_tokens, num_channels));
    const uint64_t residual_bytes = residual_elements * 4;
    GPTOSS_TRY(gptoss_check_disjoint(residual, residual_bytes, "residual", input, input_elements * 4, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(residual, residual_bytes, "residual", expert_scores,
                                     (uint64_t) num_tokens * num_active_experts * 4, "expert_scores"));
    return backend->ops->f32_accumulate(backend, input, expert_scores, residual, num_channels, num_tokens,
                                        num_active_experts);
}
