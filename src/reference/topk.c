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
