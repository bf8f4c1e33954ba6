/* Reference: RoPE with YaRN (KERNELS.md 1.7): the angle as the spec forms it in f32, its
 * cos and sin and the rotation in double. */
#include "reference/reference.h"

#include <math.h>

#include "common/math.h"

/* The angle of pair i at position pos, every step the spec's f32 operation: freq_scale =
 * -logf(rope_base) / (float)(head_dim / 2) (logf and exp correctly rounded: the double
 * result rounded once), the YaRN mix with one fma, then (float) pos * invf rounded to f32.
 * That rounding is part of the model's definition, not an error to tolerate: at position
 * 131,071 an ulp of the angle is 0.008 rad, so a reference angle in double would differ
 * from every correct engine by up to 0.004 rad and hide an engine whose invf is an ulp off
 * (which moves the angle by pos ulps). */
static double rope_angle(uint32_t i, uint32_t head_dim, uint32_t pos, float rope_base, float interpolation_scale,
                         float yarn_offset, float yarn_scale) {
    const float freq_scale = -(float) log((double) rope_base) / (float) (head_dim / 2);
    const float fi = (float) i;
    const float e = (float) exp((double) (fi * freq_scale));
    const float ip = e * interpolation_scale;
    float alpha = fmaf(fi, yarn_scale, yarn_offset);
    alpha = alpha < 0.0f ? 0.0f : (alpha > 1.0f ? 1.0f : alpha);
    const float invf = e + (ip - e) * alpha;
    return (double) ((float) pos * invf);
}

void gptoss_ref_rope_rotate_head(double* head, uint32_t head_dim, uint32_t pos, float rope_base,
                             float interpolation_scale, float yarn_offset, float yarn_scale, float yarn_multiplier) {
    for (uint32_t i = 0; i < head_dim / 2; i++) {
        const double phi = rope_angle(i, head_dim, pos, rope_base, interpolation_scale, yarn_offset, yarn_scale);
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
