/* Scalar helpers of the kernels, once for the CPU backend, the CUDA backend (host and
 * device code: nvcc compiles them as __host__ __device__), the reference and the tests:
 * exact bf16 widening, bf16 rounding, Squares32, FP4 decoding, exact powers of two, YaRN
 * RoPE frequencies, SwiGLU, the argmax order key, the sampler's order key, masses and
 * thresholds (128-bit integers). Header-only. The arithmetic here is the
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
 * freq_scale = -logf(rope_base) / (float)(head_dim / 2). The exponential is the correctly
 * rounded f32 (exp in double, rounded once), the same bits on every backend: the angle is
 * pos * invf, so an ulp of invf moves it by pos ulps (~8e-3 rad at 131,000 positions), and
 * CUDA's expf (2 ulp) against glibc's (correctly rounded) made the backends' logits differ
 * by ~1e-4 at that depth (docs/CUDA_NOTES.md, tenth sitting). */
GPTOSS_HD float gptoss_rope_inv_freq(uint32_t i, float freq_scale, float interpolation_scale, float yarn_offset,
                                     float yarn_scale) {
    const float fi = (float) i;
    const float e = (float) exp((double) (fi * freq_scale));
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

/* ---- the sampler (kernels.h gptoss_f32_sample_logits) ----------------------------------
 * Draw order as an integer: ascending key = descending logit; -0 and +0 equal; every NaN
 * last (UINT32_MAX). (Not the argmax key above: that one orders NaNs by sign and -0 after
 * +0, as upstream's argmax.) */
GPTOSS_HD uint32_t gptoss_sample_key(float value) {
    const uint32_t bits = gptoss_f32_to_bits(value), magnitude = bits & 0x7FFFFFFFu;
    if (magnitude > 0x7F800000u) return UINT32_MAX;
    return bits > 0x80000000u ? bits : 0x7FFFFFFFu - magnitude;
}

/* Masses are 128-bit integers: exp(z) in units of 2^-94 (a mass is at most 2^94, a sum of
 * 2^32 of them below 2^126), summed exactly and so in any order. */
typedef unsigned __int128 gptoss_u128;

#define GPTOSS_SAMPLE_NEVER (-745.0) /* z <= this: not a candidate (exp(z) is 0 in double) */

/* z = ((double) logit - m) * inv_t, inv_t = 1 / (double) temperature: two roundings */
GPTOSS_HD double gptoss_sample_z(float logit, double m, double inv_t) { return ((double) logit - m) * inv_t; }

/* floor(exp(z) * 2^94) for z <= 0 (exp: libm on the host, CUDA's exp on the device). */
GPTOSS_HD gptoss_u128 gptoss_sample_mass(double z) {
    const double x = exp(z) * 0x1p94;         /* exact scaling */
    const double hi = floor(x * 0x1p-64);     /* < 2^30 + 1 */
    const double lo = x - hi * 0x1p64;        /* exact: the bits of x below 2^64 */
    return ((gptoss_u128) (uint64_t) hi << 64) | (uint64_t) lo; /* (uint64_t) truncates */
}

/* floor(a * m / 2^s) (round_up: ceil) for a < 2^126, m < 2^24, s >= 24: the product in
 * three 64-bit limbs, then shifted. */
GPTOSS_HD gptoss_u128 gptoss_u128_mul_shift(gptoss_u128 a, uint32_t m, uint32_t s, int round_up) {
    const gptoss_u128 lo = (gptoss_u128) (uint64_t) a * m, hi = (gptoss_u128) (uint64_t) (a >> 64) * m;
    const gptoss_u128 mid = hi + (lo >> 64);
    const uint64_t p0 = (uint64_t) lo, p1 = (uint64_t) mid, p2 = (uint64_t) (mid >> 64);
    gptoss_u128 q;
    int rest; /* a nonzero remainder */
    if (s >= 192) {
        q = 0;
        rest = (p0 | p1 | p2) != 0;
    } else if (s >= 128) {
        q = p2 >> (s - 128);
        rest = p0 != 0 || p1 != 0 || (s > 128 && (p2 << (192 - s)) != 0);
    } else if (s >= 64) {
        const gptoss_u128 top = ((gptoss_u128) p2 << 64) | p1;
        q = top >> (s - 64);
        rest = p0 != 0 || (s > 64 && (p1 << (128 - s)) != 0);
    } else { /* s in [24, 64): the result keeps all three limbs' bits above s (< 2^126) */
        q = (((gptoss_u128) p2 << 64 | p1) << (64 - s)) | (p0 >> s);
        rest = (p0 << (64 - s)) != 0;
    }
    return q + (gptoss_u128) (round_up && rest);
}

/* Top-p: the least integer >= top_p * total, top_p in (0, 1) exactly (M 2^-s, M < 2^24). */
GPTOSS_HD gptoss_u128 gptoss_sample_top_p_threshold(gptoss_u128 total, float top_p) {
    const uint32_t bits = gptoss_f32_to_bits(top_p), e = bits >> 23, mantissa = bits & 0x7FFFFFu;
    const uint32_t m = e != 0 ? mantissa | 0x800000u : mantissa, s = e != 0 ? 150u - e : 149u;
    return gptoss_u128_mul_shift(total, m, s, 1);
}

/* The draw: the first candidate whose prefix mass C_i satisfies 2^24 C_i > u C_K (u the
 * 24-bit word) is the first with C_i >= this. */
GPTOSS_HD gptoss_u128 gptoss_sample_draw_threshold(gptoss_u128 total, uint32_t u24) {
    return gptoss_u128_mul_shift(total, u24, 24, 0) + 1;
}

#endif /* GPTOSS_COMMON_MATH_H */
