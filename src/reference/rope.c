/* Reference: RoPE with YaRN (KERNELS.md 1.7), angles and rotation in double. */
#include "reference/reference.h"

#include <math.h>

#include "common/math.h"

/* Inverse frequency of pair i, the f32 formula of kernels.h evaluated in double. */
static double rope_inv_freq(uint32_t i, uint32_t head_dim, float rope_base, float interpolation_scale,
                            float yarn_offset, float yarn_scale) {
    const double e = exp((double) i * (-log((double) rope_base) / (double) (head_dim / 2)));
    const double ip = e * (double) interpolation_scale;
    double alpha = (double) i * (double) yarn_scale + (double) yarn_offset;
    alpha = alpha < 0.0 ? 0.0 : (alpha > 1.0 ? 1.0 : alpha);
    return e + (ip - e) * alpha;
}

void gptoss_ref_rope_rotate_head(double* head, uint32_t head_dim, uint32_t pos, float rope_base,
                             float interpolation_scale, float yarn_offset, float yarn_scale, float yarn_multiplier) {
    for (uint32_t i = 0; i < head_dim / 2; i++) {
        const double f = rope_inv_freq(i, head_dim, rope_base, interpolation_scale, yarn_offset, yarn_scale);
        const double phi = (double) pos * f;
        const double c = cos(phi) * (double) yarn_multiplier;
        const double s = sin(phi) * (double) yarn_multiplier;
        const double x = head[2 * i];
        const double y = head[2 * i + 1];
        head[2 * i] = x * c - y * s;
        head[2 * i + 1] = x * s + y * c;
    }
}

void gptoss_ref_f32_rope(const struct gptoss_f32_rope_args* args, double* activations) {
    const size_t row_size = (size_t) args->head_dim * (args->num_q_heads + 2 * (size_t) args->num_kv_heads);
    for (uint32_t t = 0; t < args->num_tokens; t++) {
        const float* in = args->activations + t * row_size;
        double* out = activations + t * row_size;
        for (size_t j = 0; j < row_size; j++) {
            out[j] = (double) in[j];
        }
        /* Q heads then K heads; V heads stay as they are */
        for (uint32_t h = 0; h < args->num_q_heads + args->num_kv_heads; h++) {
            gptoss_ref_rope_rotate_head(out + (size_t) h * args->head_dim, args->head_dim, args->token_offset + t,
                                        args->rope_base, args->interpolation_scale, args->yarn_offset, args->yarn_scale,
                                        args->yarn_multiplier);
        }
    }
}
