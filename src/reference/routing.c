/* Reference: MoE routing metadata, scatter (exact), gather-and-accumulate and the decode
 * accumulate (in double). */
#include "reference/reference.h"

#include "common/math.h"

void gptoss_ref_expert_routing_metadata(const struct gptoss_expert_routing_metadata_args* args) {
    /* count per expert, then an exclusive prefix sum */
    for (uint32_t e = 0; e <= args->num_experts; e++) {
        args->expert_offsets[e] = 0;
    }
    for (uint32_t p = 0; p < args->num_pairs; p++) {
        args->expert_offsets[args->expert_ids[p] + 1] += 1;
    }
    for (uint32_t e = 0; e < args->num_experts; e++) {
        args->expert_offsets[e + 1] += args->expert_offsets[e];
    }
    /* rank of each pair among its expert's pairs, in increasing p */
    for (uint32_t p = 0; p < args->num_pairs; p++) {
        uint32_t rank = 0;
        for (uint32_t q = 0; q < p; q++) {
            if (args->expert_ids[q] == args->expert_ids[p]) {
                rank++;
            }
        }
        args->intra_expert_offsets[p] = rank;
    }
}

void gptoss_ref_f32_scatter(const struct gptoss_f32_scatter_args* args) {
    for (uint32_t t = 0; t < args->num_tokens; t++) {
        for (uint32_t j = 0; j < args->num_active_experts; j++) {
            const size_t p = (size_t) t * args->num_active_experts + j;
            const size_t dst_row = (size_t) args->expert_offsets[args->expert_ids[p]] + args->intra_expert_offsets[p];
            for (uint32_t c = 0; c < args->num_channels; c++) {
                args->output[dst_row * args->num_channels + c] = args->input[(size_t) t * args->num_channels + c];
            }
        }
    }
}

void gptoss_ref_f32_gather_and_accumulate(const struct gptoss_f32_gather_and_accumulate_args* args, double* residual) {
    for (uint32_t t = 0; t < args->num_tokens; t++) {
        for (uint32_t c = 0; c < args->num_channels; c++) {
            double acc = (double) args->residual[(size_t) t * args->num_channels + c];
            for (uint32_t j = 0; j < args->num_active_experts; j++) {
                const size_t p = (size_t) t * args->num_active_experts + j;
                const size_t src_row =
                    (size_t) args->expert_offsets[args->expert_ids[p]] + args->intra_expert_offsets[p];
                acc += (double) args->input[src_row * args->num_channels + c] * (double) args->expert_scores[p];
            }
            residual[(size_t) t * args->num_channels + c] = acc;
        }
    }
}

void gptoss_ref_f32_accumulate(const struct gptoss_f32_accumulate_args* args, double* residual) {
    for (uint32_t t = 0; t < args->num_tokens; t++) {
        for (uint32_t c = 0; c < args->num_channels; c++) {
            double acc = (double) args->residual[(size_t) t * args->num_channels + c];
            for (uint32_t j = 0; j < args->num_active_experts; j++) {
                /* decode layout: input[j][t][c] */
                const size_t src = ((size_t) j * args->num_tokens + t) * args->num_channels + c;
                acc +=
                    (double) args->input[src] * (double) args->expert_scores[(size_t) t * args->num_active_experts + j];
            }
            residual[(size_t) t * args->num_channels + c] = acc;
        }
    }
}
