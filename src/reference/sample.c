/* Reference: sampling softmax (temperature divides) and the inverse-CDF draw, in double. */
#include "reference/reference.h"

#include <math.h>

#include "common/math.h"

void gptoss_ref_f32_softmax(const float* logits, const uint32_t* argmax, double* prob, double* sum,
                            uint32_t num_tokens, uint32_t num_channels, float temperature) {
    for (uint32_t t = 0; t < num_tokens; t++) {
        const float* row = logits + (size_t) t * num_channels;
        double* p = prob + (size_t) t * num_channels;
        const double m = (double) row[argmax[t]];
        double total = 0.0;
        for (uint32_t i = 0; i < num_channels; i++) {
            p[i] = exp(((double) row[i] - m) / (double) temperature);
            total += p[i];
        }
        sum[t] = total;
    }
}

void gptoss_ref_f32_sample(const float* prob, const float* sum, uint32_t* prediction, uint32_t num_channels,
                           uint64_t rng_seed, uint64_t rng_offset, double* target_out) {
    const uint32_t word = gptoss_squares32(rng_offset, rng_seed);
    const double u = (double) (word & 0xFFFFFFu) * 0x1.0p-24;
    const double target = fmax(u * (double) sum[0], 0x1.0p-149);
    *target_out = target;

    /* smallest i whose inclusive prefix sum reaches the target */
    double prefix = 0.0;
    for (uint32_t i = 0; i < num_channels; i++) {
        prefix += (double) prob[i];
        if (prefix >= target) {
            *prediction = i;
            return;
        }
    }
    /* none (rounding): the last index with a non-zero probability; the last index if
     * every probability is zero */
    uint32_t last = num_channels - 1;
    for (uint32_t i = num_channels; i-- > 0;) {
        if (prob[i] > 0.0f) {
            last = i;
            break;
        }
    }
    *prediction = last;
}
