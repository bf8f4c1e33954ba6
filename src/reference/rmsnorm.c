/* Reference: RMSNorm with a bf16 gain, in double; and its fusion with the MoE accumulate. */
#include "reference/reference.h"

#include <math.h>

#include "common/math.h"

void gptoss_ref_f32_bf16w_rmsnorm(const float* input, const gptoss_bf16* weight, double* output,
                                  uint32_t num_tokens, uint32_t num_channels, float epsilon) {
    for (uint32_t t = 0; t < num_tokens; t++) {
        const float* x = input + (size_t) t * num_channels;
        double* out = output + (size_t) t * num_channels;

        double sum_squares = 0.0;
        for (uint32_t c = 0; c < num_channels; c++) {
            sum_squares += (double) x[c] * (double) x[c];
        }
        const double r = 1.0 / sqrt(sum_squares / (double) num_channels + (double) epsilon);

        for (uint32_t c = 0; c < num_channels; c++) {
            out[c] = (double) x[c] * r * (double) gptoss_bf16_to_f32(weight[c].bits);
        }
    }
}

void gptoss_ref_f32_accumulate_bf16w_rmsnorm(const float* input, const float* expert_scores,
                                             const float* residual_old, const gptoss_bf16* weight, double* residual,
                                             double* output, uint32_t num_channels, uint32_t num_tokens,
                                             uint32_t num_active_experts, float epsilon) {
    gptoss_ref_f32_accumulate(input, expert_scores, residual_old, residual, num_channels, num_tokens,
                              num_active_experts);
    for (uint32_t t = 0; t < num_tokens; t++) {
        const double* x = residual + (size_t) t * num_channels;
        double* out = output + (size_t) t * num_channels;
        double sum_squares = 0.0;
        for (uint32_t c = 0; c < num_channels; c++) sum_squares += x[c] * x[c];
        const double r = 1.0 / sqrt(sum_squares / (double) num_channels + (double) epsilon);
        for (uint32_t c = 0; c < num_channels; c++) {
            out[c] = x[c] * r * (double) gptoss_bf16_to_f32(weight[c].bits);
        }
    }
}
