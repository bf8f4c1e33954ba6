/* Scalar helpers of the kernels, once for the CPU backend, the CUDA backend (host and
 * device code: nvcc compiles them as __host__ __device__), the reference and the tests:
 * exact bf16 widening, bf16 rounding, Squares32, FP4 decoding, exact powers of two, YaRN
 * RoPE frequencies, SwiGLU, the argmax order key. Header-only. The arithmetic here is the
 * numerics of the kernels: every backend must compute these exactly as written. */
#ifndef GPTOSS_COMMON_MATH_H
#define GPTOSS_COMMON_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define GPTOSS_HD static __host__ __device__ __forceinline__
#else
#define GPTOSS_HD static inline
#endif

GPTOSS_HD float gptoss_f32_from_bits(uint32_t bits) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(bits);
#else
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
#endif
}

GPTOSS_HD uint32_t gptoss_f32_to_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
#endif
}

/* Exact: bf16 is the upper half of an f32. */
GPTOSS_HD float gptoss_bf16_to_f32(uint16_t bits) { return gptoss_f32_from_bits((uint32_t) bits << 16); }

/* Round to nearest even; NaN stays a (quiet) NaN. */
GPTOSS_HD uint16_t gptoss_f32_to_bf16(float f) {
    uint32_t u = gptoss_f32_to_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t) ((u >> 16) | 0x0040u);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t) (u >> 16);
}

GPTOSS_HD uint64_t gptoss_rot32(uint64_t x) { return (x >> 32) | (x << 32); }

/* Widynski's Squares counter RNG, 4 rounds (KERNELS.md 1.9). */
GPTOSS_HD uint32_t gptoss_squares32(uint64_t offset, uint64_t seed) {
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
GPTOSS_HD float gptoss_random_f32(uint32_t word, float scale, float bias) {
    return fmaf((float) (int32_t) word, scale, bias);
}

/* FP4 (E2M1) values by nibble; bit 3 is the sign. (Host lookups; device code computes the
 * same values in gptoss_fp4_to_f32 rather than keep a table in device memory.) */
static const float gptoss_fp4_values[16] = {
    +0.0f, +0.5f, +1.0f, +1.5f, +2.0f, +3.0f, +4.0f, +6.0f,
    -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f,
};

/* FP4 (E2M1) value of a nibble, exactly. */
GPTOSS_HD float gptoss_fp4_to_f32(uint32_t nibble) {
#ifdef __CUDA_ARCH__
    const uint32_t m = nibble & 7u;
    /* |value| * 2 = 0,1,2,3,4,6,8,12 */
    const uint32_t twice = m < 4u ? m : ((m & 1u) ? 3u : 2u) << ((m >> 1) - 1u);
    const float v = (float) twice * 0.5f;
    return (nibble & 8u) ? -v : v;
#else
    return gptoss_fp4_values[nibble & 15u];
#endif
}

/* 2^e for -149 <= e <= 127, exactly (subnormals included). */
GPTOSS_HD float gptoss_exp2i(int e) {
    if (e >= -126) return gptoss_f32_from_bits((uint32_t) (e + 127) << 23);
    return gptoss_f32_from_bits(1u << (e + 149));
}

/* RoPE/YaRN inverse frequency of pair i (KERNELS.md 1.7), f32 arithmetic as upstream.
 * freq_scale = -logf(rope_base) / (float)(head_dim / 2). */
GPTOSS_HD float gptoss_rope_inv_freq(uint32_t i, float freq_scale, float interpolation_scale, float yarn_offset,
                                     float yarn_scale) {
    const float fi = (float) i;
    const float e = expf(fi * freq_scale);
    const float ip = e * interpolation_scale;
    float alpha = fmaf(fi, yarn_scale, yarn_offset);
    alpha = alpha < 0.0f ? 0.0f : (alpha > 1.0f ? 1.0f : alpha);
    return e + (ip - e) * alpha;
}

/* SwiGLU of KERNELS.md 1.8 (alpha 1.702, clamp above for glu, both sides for linear). */
GPTOSS_HD float gptoss_swiglu(float glu, float lin, float limit) {
    const float g = fminf(glu, limit); /* Metal min/clamp: fmin/fmax semantics */
    const float l = fminf(fmaxf(lin, -limit), limit);
    const float sw = g / (1.0f + expf(-1.702f * g));
    return fmaf(sw, l, sw);
}

/* Argmax order key of upstream (KERNELS.md 3.12): smaller key = larger float; +NaN sorts
 * above +inf, -NaN below -inf. */
GPTOSS_HD uint32_t gptoss_argmax_key(float value) {
    const uint32_t u = gptoss_f32_to_bits(value);
    return (u & 0x80000000u) ? u : (u ^ 0x7FFFFFFFu);
}

#endif /* GPTOSS_COMMON_MATH_H */
