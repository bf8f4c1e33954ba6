/* Reference: sampling softmax (temperature divides) and the inverse-CDF draw, in double. */
#include "reference/reference.h"

#include <math.h>

#include "common/math.h"

void gptoss_ref_f32_softmax(const struct gptoss_f32_softmax_args* args, double* prob, double* sum) {
    for (uint32_t t = 0; t < args->num_tokens; t++) {
        const float* row = args->logits + (size_t) t * args->num_channels;
        double* p = prob + (size_t) t * args->num_channels;
        const double m = (double) row[args->argmax[t]];
        double total = 0.0;
        for (uint32_t i = 0; i < args->num_channels; i++) {
            p[i] = exp(((double) row[i] - m) / (double) args->temperature);
            total += p[i];
        }
        sum[t] = total;
    }
}

void gptoss_ref_f32_sample(const struct gptoss_f32_sample_args* args, double* target_out) {
    const uint32_t word = gptoss_squares32(args->rng_offset, args->rng_seed);
    const double u = (double) (word & 0xFFFFFFu) * 0x1.0p-24;
    const double target = fmax(u * (double) args->sum[0], 0x1.0p-149);
    *target_out = target;

    /* smallest i whose inclusive prefix sum reaches the target */
    double prefix = 0.0;
    for (uint32_t i = 0; i < args->num_channels; i++) {
        prefix += (double) args->prob[i];
        if (prefix >= target) {
            *args->prediction = i;
            return;
        }
    }
    /* none (rounding): the last index with a non-zero probability; the last index if
     * every probability is zero */
    uint32_t last = args->num_channels - 1;
    for (uint32_t i = args->num_channels; i-- > 0;) {
        if (args->prob[i] > 0.0f) {
            last = i;
            break;
        }
    }
    *args->prediction = last;
}
