/* Scalar helpers shared by the reference and the CPU backend (and mirrored in
 * src/cuda/common.cuh): exact bf16 widening, bf16 rounding, Squares32, FP4 decoding,
 * YaRN RoPE frequencies, SwiGLU. Plain C, header-only. */
#ifndef GPTOSS_COMMON_MATH_H
#define GPTOSS_COMMON_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float gptoss_f32_from_bits(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint32_t gptoss_f32_to_bits(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

/* Exact: bf16 is the upper half of an f32. */
static inline float gptoss_bf16_to_f32(uint16_t bits) { return gptoss_f32_from_bits((uint32_t) bits << 16); }

/* Round to nearest even; NaN stays a (quiet) NaN. */
static inline uint16_t gptoss_f32_to_bf16(float f) {
    uint32_t u = gptoss_f32_to_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t) ((u >> 16) | 0x0040u);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t) (u >> 16);
}

static inline uint64_t gptoss_rot32(uint64_t x) { return (x >> 32) | (x << 32); }

/* Widynski's Squares counter RNG, 4 rounds (KERNELS.md 1.9). */
static inline uint32_t gptoss_squares32(uint64_t offset, uint64_t seed) {
    const uint64_t y = offset * seed;
    const uint64_t z = y + seed;
    uint64_t x = y * y + y;
    x = gptoss_rot32(x);
    x = x * x + z;
    x = gptoss_rot32(x);
    x = x * x + y;
    x = gptoss_rot32(x);
    x = x * x + z;
    return (uint32_t) (x >> 32);
}

/* Random f32 in [min, max] from a Squares32 word (KERNELS.md 3.2). scale = (max-min)*2^-32,
 * bias = (min+max)*0.5, both computed in f32 by the caller. */
static inline float gptoss_random_f32(uint32_t word, float scale, float bias) {
    return fmaf((float) (int32_t) word, scale, bias);
}

/* FP4 (E2M1) values by nibble; bit 3 is the sign. */
static const float gptoss_fp4_values[16] = {
    +0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
    -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f,
};

/* RoPE/YaRN inverse frequency of pair i (KERNELS.md 1.7), f32 arithmetic as upstream.
 * freq_scale = -logf(rope_base) / (float)(head_dim / 2). */
static inline float gptoss_rope_inv_freq(uint32_t i, float freq_scale, float interpolation_scale,
                                         float yarn_offset, float yarn_scale) {
    const float fi = (float) i;
    const float e = expf(fi * freq_scale);
    const float ip = e * interpolation_scale;
    float alpha = fmaf(fi, yarn_scale, yarn_offset);
    alpha = alpha < 0.0f ? 0.0f : (alpha > 1.0f ? 1.0f : alpha);
    return e + (ip - e) * alpha;
}

/* SwiGLU of KERNELS.md 1.8 (alpha 1.702, clamp above for glu, both sides for linear). */
static inline float gptoss_swiglu(float glu, float lin, float limit) {
    const float g = fminf(glu, limit); /* Metal min/clamp: fmin/fmax semantics */
    const float l = fminf(fmaxf(lin, -limit), limit);
    const float sw = g / (1.0f + expf(-1.702f * g));
    return fmaf(sw, l, sw);
}

/* Argmax order key of upstream (KERNELS.md 3.12): smaller key = larger float; +NaN sorts
 * above +inf, -NaN below -inf. */
static inline uint32_t gptoss_argmax_key(float value) {
    const uint32_t u = gptoss_f32_to_bits(value);
    return (u & 0x80000000u) ? u : (u ^ 0x7FFFFFFFu);
}

#endif /* GPTOSS_COMMON_MATH_H */
