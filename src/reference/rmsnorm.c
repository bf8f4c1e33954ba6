/* Reference: RMSNorm with a bf16 gain, in double; and its fusion with the MoE accumulate. */
#include "reference/reference.h"

#include <math.h>

#include "common/math.h"

void gptoss_ref_f32_bf16w_rmsnorm(const struct gptoss_f32_bf16w_rmsnorm_args* args, double* output) {
    for (uint32_t t = 0; t < args->num_tokens; t++) {
        const float* x = args->input + (size_t) t * args->num_channels;
        double* out = output + (size_t) t * args->num_channels;

        double sum_squares = 0.0;
        for (uint32_t c = 0; c < args->num_channels; c++) {
            sum_squares += (double) x[c] * (double) x[c];
        }
        const double r = 1.0 / sqrt(sum_squares / (double) args->num_channels + (double) args->epsilon);

        for (uint32_t c = 0; c < args->num_channels; c++) {
            out[c] = (double) x[c] * r * (double) gptoss_bf16_to_f32(args->weight[c].bits);
        }
    }
}

void gptoss_ref_f32_accumulate_bf16w_rmsnorm(const struct gptoss_f32_accumulate_bf16w_rmsnorm_args* args,
                                             double* residual, double* output) {
    const struct gptoss_f32_accumulate_args accumulate = {
        args->input,        args->expert_scores, args->residual,
        args->num_channels, args->num_tokens,    args->num_active_experts,
    };
    gptoss_ref_f32_accumulate(&accumulate, residual);
    for (uint32_t t = 0; t < args->num_tokens; t++) {
        const double* x = residual + (size_t) t * args->num_channels;
        double* out = output + (size_t) t * args->num_channels;
        double sum_squares = 0.0;
        for (uint32_t c = 0; c < args->num_channels; c++) sum_squares += x[c] * x[c];
        const double r = 1.0 / sqrt(sum_squares / (double) args->num_channels + (double) args->epsilon);
        for (uint32_t c = 0; c < args->num_channels; c++) {
            out[c] = x[c] * r * (double) gptoss_bf16_to_f32(args->weight[c].bits);
        }
    }
}
