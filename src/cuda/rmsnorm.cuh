/* The RMSNorm of one row held in registers (256 threads, NV float4 each: thread i holds
 * float4s i, i + 256, ...), shared by the rmsnorm kernels (rmsnorm.cu) and the fused MoE
 * gate (topk.cu) so that both compute bit-identical values. */
#ifndef GPTOSS_CUDA_RMSNORM_CUH
#define GPTOSS_CUDA_RMSNORM_CUH

#include "cuda/common.cuh"

constexpr int kRmsVecThreads = 256;

/* The gain of this thread's float4s (zero beyond n4 = C / 4). */
template <int NV>
__device__ __forceinline__ void gptoss_d_rmsnorm_gain(const uint16_t* weight, uint32_t n4, uint2 wv[NV]) {
#pragma unroll
    for (int j = 0; j < NV; j++) {
        const uint32_t i = threadIdx.x + (uint32_t) j * kRmsVecThreads;
        wv[j] = i < n4 ? *(const uint2*) (weight + 4 * (size_t) i) : make_uint2(0, 0);
    }
}

/* r = 1 / sqrt(sum x^2 / C + eps) over the block's row (v zero beyond the row); valid in
 * every thread. scratch: 32 floats of shared memory. */
template <int NV>
__device__ __forceinline__ float gptoss_d_rmsnorm_scale(const float4 v[NV], uint32_t num_channels, float epsilon,
                                                        float* scratch) {
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < NV; j++) {
        ss = fmaf(v[j].x, v[j].x, ss);
        ss = fmaf(v[j].y, v[j].y, ss);
        ss = fmaf(v[j].z, v[j].z, ss);
        ss = fmaf(v[j].w, v[j].w, ss);
    }
    ss = gptoss_d_block_sum(ss, scratch);
    return 1.0f / sqrtf(ss / (float) num_channels + epsilon);
}

/* (x * r) * gain for one float4 */
__device__ __forceinline__ float4 gptoss_d_rmsnorm_apply(float4 v, float r, uint2 w) {
    float4 o;
    o.x = (v.x * r) * __uint_as_float(w.x << 16);
    o.y = (v.y * r) * __uint_as_float(w.x & 0xFFFF0000u);
    o.z = (v.z * r) * __uint_as_float(w.y << 16);
    o.w = (v.w * r) * __uint_as_float(w.y & 0xFFFF0000u);
    return o;
}

#endif /* GPTOSS_CUDA_RMSNORM_CUH */
