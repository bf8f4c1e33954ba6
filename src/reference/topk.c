/* Reference: router top-k (descending, lowest index on ties) and softmax over the
 * selected logits, in double. */
#include "reference/reference.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/math.h"

/* Index of the largest not-yet-taken score; the lowest such index on ties (+0 == -0). */
static uint32_t pick_largest(const float* scores, const bool* taken, uint32_t num_experts) {
    uint32_t best = UINT32_MAX;
    for (uint32_t e = 0; e < num_experts; e++) {
        if (taken[e]) {
            continue;
        }
        if (best == UINT32_MAX || scores[e] > scores[best]) {
            best = e;
        }
    }
    return best;
}

void gptoss_ref_f32_topk(const float* scores, uint32_t* expert_ids, double* expert_scores, uint32_t num_tokens,
                         uint32_t num_experts, uint32_t num_active_experts) {
    bool* taken = malloc(num_experts * sizeof *taken);
    if (taken == NULL) {
        abort();
    }
    for (uint32_t t = 0; t < num_tokens; t++) {
        const float* row = scores + (size_t) t * num_experts;
        uint32_t* ids = expert_ids + (size_t) t * num_active_experts;
        double* out = expert_scores + (size_t) t * num_active_experts;

        for (uint32_t e = 0; e < num_experts; e++) {
            taken[e] = false;
        }
        for (uint32_t j = 0; j < num_active_experts; j++) {
            ids[j] = pick_largest(row, taken, num_experts);
            taken[ids[j]] = true;
        }

        /* softmax over the selected logits, relative to the largest (slot 0) */
        double sum = 0.0;
        for (uint32_t j = 0; j < num_active_experts; j++) {
            out[j] = exp((double) row[ids[j]] - (double) row[ids[0]]);
            sum += out[j];
        }
        for (uint32_t j = 0; j < num_active_experts; j++) {
            out[j] /= sum;
        }
    }
    free(taken);
}

void gptoss_ref_f32_bf16w_rmsnorm_matmul_topk(const float* input, const gptoss_bf16* norm_weight,
                                              const gptoss_bf16* router_weight, const gptoss_bf16* router_bias,
                                              double* output, double* scores, uint32_t* expert_ids,
                                              double* expert_scores, uint32_t num_tokens, uint32_t num_channels,
                                              uint32_t num_experts, uint32_t num_active_experts, float epsilon) {
    gptoss_ref_f32_bf16w_rmsnorm(input, norm_weight, output, num_tokens, num_channels, epsilon);
    float* rounded = malloc((size_t) num_tokens * num_experts * sizeof(float));
    if (rounded == NULL) abort(); /* test-only code: out of memory is fatal */
    for (uint32_t t = 0; t < num_tokens; t++) {
        const double* x = output + (size_t) t * num_channels;
        for (uint32_t e = 0; e < num_experts; e++) {
            const gptoss_bf16* w = router_weight + (size_t) e * num_channels;
            double acc = router_bias != NULL ? (double) gptoss_bf16_to_f32(router_bias[e].bits) : 0.0;
            for (uint32_t c = 0; c < num_channels; c++) acc += x[c] * (double) gptoss_bf16_to_f32(w[c].bits);
            scores[(size_t) t * num_experts + e] = acc;
            rounded[(size_t) t * num_experts + e] = (float) acc;
        }
    }
    gptoss_ref_f32_topk(rounded, expert_ids, expert_scores, num_tokens, num_experts, num_active_experts);
    free(rounded);
}
