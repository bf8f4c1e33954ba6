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

void gptoss_ref_f32_topk(const struct gptoss_f32_topk_args* args, double* expert_scores) {
    bool* taken = malloc(args->num_experts * sizeof *taken);
    if (taken == NULL) {
        abort();
    }
    for (uint32_t t = 0; t < args->num_tokens; t++) {
        const float* row = args->scores + (size_t) t * args->num_experts;
        uint32_t* ids = args->expert_ids + (size_t) t * args->num_active_experts;
        double* out = expert_scores + (size_t) t * args->num_active_experts;

        for (uint32_t e = 0; e < args->num_experts; e++) {
            taken[e] = false;
        }
        for (uint32_t j = 0; j < args->num_active_experts; j++) {
            ids[j] = pick_largest(row, taken, args->num_experts);
            taken[ids[j]] = true;
        }

        /* softmax over the selected logits, relative to the largest (slot 0) */
        double sum = 0.0;
        for (uint32_t j = 0; j < args->num_active_experts; j++) {
            out[j] = exp((double) row[ids[j]] - (double) row[ids[0]]);
            sum += out[j];
        }
        for (uint32_t j = 0; j < args->num_active_experts; j++) {
            out[j] /= sum;
        }
    }
    free(taken);
}

void gptoss_ref_f32_bf16w_rmsnorm_matmul_topk(const struct gptoss_f32_bf16w_rmsnorm_matmul_topk_args* args,
                                              double* output, double* scores, double* expert_scores) {
    const struct gptoss_f32_bf16w_rmsnorm_args rmsnorm = {
        args->input, args->norm_weight, args->output, args->num_tokens, args->num_channels, args->epsilon,
    };
    gptoss_ref_f32_bf16w_rmsnorm(&rmsnorm, output);
    float* rounded = malloc((size_t) args->num_tokens * args->num_experts * sizeof(float));
    if (rounded == NULL) abort(); /* test-only code: out of memory is fatal */
    for (uint32_t t = 0; t < args->num_tokens; t++) {
        const double* x = output + (size_t) t * args->num_channels;
        for (uint32_t e = 0; e < args->num_experts; e++) {
            const gptoss_bf16* w = args->router_weight + (size_t) e * args->num_channels;
            double acc = args->router_bias != NULL ? (double) gptoss_bf16_to_f32(args->router_bias[e].bits) : 0.0;
            for (uint32_t c = 0; c < args->num_channels; c++) acc += x[c] * (double) gptoss_bf16_to_f32(w[c].bits);
            scores[(size_t) t * args->num_experts + e] = acc;
            rounded[(size_t) t * args->num_experts + e] = (float) acc;
        }
    }
    const struct gptoss_f32_topk_args topk = {
        rounded, args->expert_ids, args->expert_scores, args->num_tokens, args->num_experts, args->num_active_experts,
    };
    gptoss_ref_f32_topk(&topk, expert_scores);
    free(rounded);
}
