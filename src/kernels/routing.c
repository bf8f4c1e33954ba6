/* Argument checks of the MoE routing kernels (metadata, scatter, gather + accumulate,
 * accumulate); src/kernels/run.c runs them before the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_check_expert_routing_metadata(gptoss_backend_t backend,
                                                        const struct gptoss_expert_routing_metadata_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->expert_ids, "expert_ids", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->expert_offsets, "expert_offsets", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->intra_expert_offsets, "intra_expert_offsets", 4));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_pairs, "num_pairs"));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_experts, "num_experts"));
    if (args->num_experts == UINT32_MAX) {
        return gptoss_fail(GPTOSS_UNSUPPORTED,
                           "num_experts %u: expert_offsets[num_experts + 1] exceeds 32-bit indexing",
                           args->num_experts);
    }
    GPTOSS_TRY(GPTOSS_SIZE1("expert_ids", 4, NULL, args->num_pairs));
    const uint64_t pairs_bytes = (uint64_t) args->num_pairs * 4, offsets_bytes = ((uint64_t) args->num_experts + 1) * 4;
    GPTOSS_TRY(gptoss_check_disjoint(args->expert_offsets, offsets_bytes, "expert_offsets", args->expert_ids,
                                     pairs_bytes, "expert_ids"));
    GPTOSS_TRY(gptoss_check_disjoint(args->intra_expert_offsets, pairs_bytes, "intra_expert_offsets", args->expert_ids,
                                     pairs_bytes, "expert_ids"));
    GPTOSS_TRY(gptoss_check_disjoint(args->intra_expert_offsets, pairs_bytes, "intra_expert_offsets",
                                     args->expert_offsets, offsets_bytes, "expert_offsets"));
    if (backend->host_memory) {
        GPTOSS_TRY(
            gptoss_check_ids_below(args->expert_ids, args->num_pairs, "expert_ids", args->num_experts, "num_experts"));
    }
    return gptoss_status_success;
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

enum gptoss_status gptoss_check_f32_scatter(gptoss_backend_t backend, const struct gptoss_f32_scatter_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->expert_ids, "expert_ids", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->expert_offsets, "expert_offsets", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->intra_expert_offsets, "intra_expert_offsets", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_channels, "num_channels"));
    uint64_t num_pairs = 0;
    GPTOSS_TRY(gptoss_check_routing(args->num_tokens, args->num_active_experts, args->num_experts, true, &num_pairs));
    uint64_t input_elements = 0, output_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &input_elements, args->num_tokens, args->num_channels));
    GPTOSS_TRY(GPTOSS_SIZE2("output", 4, &output_elements, num_pairs, args->num_channels));
    const uint64_t output_bytes = output_elements * 4, pairs_bytes = num_pairs * 4;
    GPTOSS_TRY(gptoss_check_disjoint(args->output, output_bytes, "output", args->input, input_elements * 4, "input"));
    GPTOSS_TRY(
        gptoss_check_disjoint(args->output, output_bytes, "output", args->expert_ids, pairs_bytes, "expert_ids"));
    GPTOSS_TRY(gptoss_check_disjoint(args->output, output_bytes, "output", args->expert_offsets,
                                     ((uint64_t) args->num_experts + 1) * 4, "expert_offsets"));
    GPTOSS_TRY(gptoss_check_disjoint(args->output, output_bytes, "output", args->intra_expert_offsets, pairs_bytes,
                                     "intra_expert_offsets"));
    if (backend->host_memory) {
        GPTOSS_TRY(check_routing_contents(args->expert_ids, args->expert_offsets, args->intra_expert_offsets, num_pairs,
                                          args->num_experts));
    }
    return gptoss_status_success;
}

enum gptoss_status gptoss_check_f32_gather_and_accumulate(gptoss_backend_t backend,
                                                          const struct gptoss_f32_gather_and_accumulate_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->expert_ids, "expert_ids", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->expert_scores, "expert_scores", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->expert_offsets, "expert_offsets", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->intra_expert_offsets, "intra_expert_offsets", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->residual, "residual", 4));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_channels, "num_channels"));
    uint64_t num_pairs = 0;
    GPTOSS_TRY(gptoss_check_routing(args->num_tokens, args->num_active_experts, args->num_experts, true, &num_pairs));
    uint64_t input_elements = 0, residual_elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &input_elements, num_pairs, args->num_channels));
    GPTOSS_TRY(GPTOSS_SIZE2("residual", 4, &residual_elements, args->num_tokens, args->num_channels));
    const uint64_t residual_bytes = residual_elements * 4, pairs_bytes = num_pairs * 4;
    GPTOSS_TRY(
        gptoss_check_disjoint(args->residual, residual_bytes, "residual", args->input, input_elements * 4, "input"));
    GPTOSS_TRY(
        gptoss_check_disjoint(args->residual, residual_bytes, "residual", args->expert_ids, pairs_bytes, "expert_ids"));
    GPTOSS_TRY(gptoss_check_disjoint(args->residual, residual_bytes, "residual", args->expert_scores, pairs_bytes,
                                     "expert_scores"));
    GPTOSS_TRY(gptoss_check_disjoint(args->residual, residual_bytes, "residual", args->expert_offsets,
                                     ((uint64_t) args->num_experts + 1) * 4, "expert_offsets"));
    GPTOSS_TRY(gptoss_check_disjoint(args->residual, residual_bytes, "residual", args->intra_expert_offsets,
                                     pairs_bytes, "intra_expert_offsets"));
    if (backend->host_memory) {
        GPTOSS_TRY(check_routing_contents(args->expert_ids, args->expert_offsets, args->intra_expert_offsets, num_pairs,
                                          args->num_experts));
    }
    return gptoss_status_success;
}

enum gptoss_status gptoss_check_f32_accumulate(gptoss_backend_t backend,
                                               const struct gptoss_f32_accumulate_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->expert_scores, "expert_scores", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->residual, "residual", 4));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_channels, "num_channels"));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_active_experts, "num_active_experts"));
    uint64_t input_elements = 0, residual_elements = 0;
    GPTOSS_TRY(
        GPTOSS_SIZE3("input", 4, &input_elements, args->num_active_experts, args->num_tokens, args->num_channels));
    GPTOSS_TRY(GPTOSS_SIZE2("residual", 4, &residual_elements, args->num_tokens, args->num_channels));
    const uint64_t residual_bytes = residual_elements * 4;
    GPTOSS_TRY(
        gptoss_check_disjoint(args->residual, residual_bytes, "residual", args->input, input_elements * 4, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(args->residual, residual_bytes, "residual", args->expert_scores,
                                     (uint64_t) args->num_tokens * args->num_active_experts * 4, "expert_scores"));
    return gptoss_status_success;
}
