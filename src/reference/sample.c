/* Reference: sampling softmax (temperature divides), the inverse-CDF draw, the penalties
 * and the draw from logits, in double. */
#include "reference/reference.h"

#include <math.h>
#include <stdlib.h>

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

void gptoss_ref_f32_apply_penalties(const struct gptoss_f32_apply_penalties_args* args, double* output) {
    for (uint32_t i = 0; i < args->num_channels; i++) {
        const double count = (double) args->counts[i];
        output[i] = (double) args->logits[i];
        if (count != 0.0) {
            output[i] -= (double) args->presence_penalty + (double) args->frequency_penalty * count;
        }
    }
}

/* Draw order: larger logit first, ties (-0 == +0 included) by lower index, NaN last. */
static const float* g_order_logits; /* qsort's comparator has no context argument */

static int draw_order(const void* a, const void* b) {
    const uint32_t i = *(const uint32_t*) a, j = *(const uint32_t*) b;
    const float x = g_order_logits[i], y = g_order_logits[j];
    if (isnan(x) != isnan(y)) return isnan(x) ? 1 : -1;
    if (!isnan(x) && x != y) return x > y ? -1 : 1;
    return i < j ? -1 : (i > j ? 1 : 0);
}

void gptoss_ref_f32_sample_logits(const struct gptoss_f32_sample_logits_args* args, uint32_t* order, double* prob,
                                  double* prefix, uint32_t* n_out, uint32_t* keep_out, double* u_out) {
    const uint32_t V = args->num_channels;
    const float* logits = args->logits;
    for (uint32_t i = 0; i < V; i++) order[i] = i;
    g_order_logits = logits;
    qsort(order, V, sizeof *order, draw_order);
    const uint32_t first = order[0];
    const double m = (double) logits[first];
    const uint32_t word = gptoss_squares32(args->rng_offset, args->rng_seed);
    *u_out = (double) (word & 0xFFFFFFu) * 0x1.0p-24;
    *n_out = 0;
    *keep_out = 0;
    if (isnan(m)) {
        *args->prediction = 0;
        return;
    }
    if (args->temperature == 0.0f || !isfinite(m)) {
        *args->prediction = first;
        return;
    }
    const double inv_t = 1.0 / (double) args->temperature;
    const int sorted = args->top_k != 0 || args->top_p < 1.0f;
    uint32_t n = 0;
    for (uint32_t r = 0; r < V; r++) { /* candidates in draw order or by index */
        const uint32_t i = sorted ? order[r] : r;
        if (((double) logits[i] - m) * inv_t > -745.0) order[n++] = i;
    }
    if (args->top_k != 0 && args->top_k < n) n = args->top_k;
    double total = 0.0;
    for (uint32_t k = 0; k < n; k++) {
        prob[k] = exp(((double) logits[order[k]] - m) * inv_t);
        total += prob[k];
        prefix[k] = total;
    }
    uint32_t keep = n;
    if (args->top_p < 1.0f) {
        for (keep = 1; keep < n && !(prefix[keep - 1] >= (double) args->top_p * total); keep++) {
        }
    }
    const double target = *u_out * prefix[keep - 1];
    uint32_t pick = keep - 1;
    for (uint32_t k = 0; k < keep; k++) {
        if (prefix[k] > target) {
            pick = k;
            break;
        }
    }
    *n_out = n;
    *keep_out = keep;
    *args->prediction = order[pick];
}
