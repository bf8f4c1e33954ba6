/* RoPE/YaRN over qkv rows, shared by rope.cu and qkv.cu. */
#ifndef GPTOSS_CUDA_ROPE_CUH
#define GPTOSS_CUDA_ROPE_CUH

#include "cuda/common.cuh"

struct gptoss_rope_params {
    float freq_scale; /* -logf(rope_base) / (float)(head_dim / 2) */
    float interpolation_scale;
    float yarn_offset;
    float yarn_scale;
    float yarn_multiplier;
};

static inline gptoss_rope_params gptoss_make_rope_params(float rope_base, float interpolation_scale, float yarn_offset,
                                                         float yarn_scale, float yarn_multiplier, uint32_t head_dim) {
    gptoss_rope_params p;
    p.freq_scale = -logf(rope_base) / (float) (head_dim / 2);
    p.interpolation_scale = interpolation_scale;
    p.yarn_offset = yarn_offset;
    p.yarn_scale = yarn_scale;
    p.yarn_multiplier = yarn_multiplier;
    return p;
}

/* Rotates (x, y) of pair i at position pos. */
__device__ __forceinline__ void gptoss_d_rope_pair(float& x, float& y, uint32_t i, uint32_t pos,
                                                   const gptoss_rope_params& p) {
    const float f = gptoss_d_rope_inv_freq(i, p.freq_scale, p.interpolation_scale, p.yarn_offset, p.yarn_scale);
    const float phi = (float) pos * f;
    float s, c;
    sincosf(phi, &s, &c);
    c = c * p.yarn_multiplier;
    s = s * p.yarn_multiplier;
    const float nx = x * c - y * s;
    const float ny = x * s + y * c;
    x = nx;
    y = ny;
}

#endif
