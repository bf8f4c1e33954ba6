/* Reference: MoE routing metadata, scatter (exact), gather-and-accumulate and the decode
 * accumulate (in double). */
#include "reference/reference.h"

#include "common/math.h"

void gptoss_ref_expert_routing_metadata(const uint32_t* expert_ids, uint32_t* expert_offsets,
                                        uint32_t* intra_expert_offsets, uint32_t num_pairs, uint32_t num_experts) {
    /* count per expert, then an exclusive prefix sum */
    for (uint32_t e = 0; e <= num_experts; e++) {
        expert_offsets[e] = 0;
    }
    for (uint32_t p = 0; p < num_pairs; p++) {
        expert_offsets[expert_ids[p] + 1] += 1;
    }
    for (uint32_t e = 0; e < num_experts; e++) {
        expert_offsets[e + 1] += expert_offsets[e];
    }
    /* rank of each pair among its expert's pairs, in increasing p */
    for (uint32_t p = 0; p < num_pairs; p++) {
        uint32_t rank = 0;
        for (uint32_t q = 0; q < p; q++) {
            if (expert_ids[q] == expert_ids[p]) {
                rank++;
            }
        }
        intra_expert_offsets[p] = rank;
    }
}

void gptoss_ref_f32_scatter(const float* input, const uint32_t* expert_ids, const uint32_t* expert_offsets,
                            const uint32_t* intra_expert_offsets, float* output, uint32_t num_channels,
                            uint32_t num_tokens, uint32_t num_active_experts, uint32_t num_experts) {
    for (uint32_t t = 0; t < num_tokens; t++) {
        for (uint32_t j = 0; j < num_active_experts; j++) {
            const size_t p = (size_t) t * num_active_experts + j;
            const size_t dst_row = (size_t) expert_offsets[expert_ids[p]] + intra_expert_offsets[p];
            for (uint32_t c = 0; c < num_channels; c++) {
                output[dst_row * num_channels + c] = input[(size_t) t * num_channels + c];
            }
        }
    }
}

void gptoss_ref_f32_gather_and_accumulate(const float* input, const uint32_t* expert_ids,
                                          const float* expert_scores, const uint32_t* expert_offsets,
                                          const uint32_t* intra_expert_offsets, const float* residual_old,
                                          double* residual, uint32_t num_channels, uint32_t num_tokens,
                                          uint32_t num_active_experts, uint32_t num_experts) {
    for (uint32_t t = 0; t < num_tokens; t++) {
        for (uint32_t c = 0; c < num_channels; c++) {
            double acc = (double) residual_old[(size_t) t * num_channels + c];
            for (uint32_t j = 0; j < num_active_experts; j++) {
                const size_t p = (size_t) t * num_active_experts + j;
                const size_t src_row = (size_t) expert_offsets[expert_ids[p]] + intra_expert_offsets[p];
                acc += (double) input[src_row * num_channels + c] * (double) expert_scores[p];
            }
            residual[(size_t) t * num_channels + c] = acc;
        }
    }
}

void gptoss_ref_f32_accumulate(const float* input, const float* expert_scores, const float* residual_old,
                               double* residual, uint32_t num_channels, uint32_t num_tokens,
                               uint32_t num_active_experts) {
    for (uint32_t t = 0; t < num_tokens; t++) {
        for (uint32_t c = 0; c < num_channels; c++) {
            double acc = (double) residual_old[(size_t) t * num_channels + c];
            for (uint32_t j = 0; j < num_active_experts; j++) {
                /* decode layout: input[j][t][c] */
                const size_t src = ((size_t) j * num_tokens + t) * num_channels + c;
                acc += (double) input[src] * (double) expert_scores[(size_t) t * num_active_experts + j];
            }
            residual[(size_t) t * num_channels + c] = acc;
        }
    }
}
