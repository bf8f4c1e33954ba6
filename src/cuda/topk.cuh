/* Router top-k of one row by one warp (num_experts <= 32 * NV), shared by topk.cu's
 * kernels: lane holds experts lane + 32 i in registers, ranks are counted over warp
 * shuffles (rank = number of experts with a larger score, or an equal score (+0 == -0) and
 * a lower index; ranks < k are selected), the softmax of the k selected logits relative to
 * the largest is a warp reduction (sum in tree order). Writes ids[0..k) and out[0..k). */
#ifndef GPTOSS_CUDA_TOPK_CUH
#define GPTOSS_CUDA_TOPK_CUH

#include "cuda/common.cuh"

template <int NV>
__device__ __forceinline__ void gptoss_d_topk_warp(const float* row, uint32_t num_experts, uint32_t k, uint32_t* ids,
                                                   float* out) {
    __syncwarp(); /* callers run it with whole warps: the compiler then emits plain shuffles, no collective fallback */
    const uint32_t lane = threadIdx.x & 31u;
    float v[NV];
    uint32_t rank[NV];
#pragma unroll
    for (int i = 0; i < NV; i++) {
        const uint32_t e = lane + 32u * i;
        v[i] = e < num_experts ? row[e] : 0.0f;
        rank[i] = 0;
    }
#pragma unroll
    for (int oi = 0; oi < NV; oi++) {
        for (uint32_t ol = 0; ol < 32; ol++) {
            const uint32_t o = 32u * oi + ol;
            if (o >= num_experts) break; /* warp-uniform */
            const float w = __shfl_sync(0xFFFFFFFFu, v[oi], ol);
#pragma unroll
            for (int i = 0; i < NV; i++) {
                const uint32_t e = lane + 32u * i;
                rank[i] += (w > v[i] || (w == v[i] && o < e)) ? 1u : 0u;
            }
        }
    }
    /* the logit of rank 0 */
    float top = 0.0f;
    bool has_top = false;
#pragma unroll
    for (int i = 0; i < NV; i++) {
        if (lane + 32u * i < num_experts && rank[i] == 0) {
            top = v[i];
            has_top = true;
        }
    }
    const uint32_t src = __ffs(__ballot_sync(0xFFFFFFFFu, has_top)) - 1;
    const float v0 = __shfl_sync(0xFFFFFFFFu, top, src);
    float ex[NV];
    float part = 0.0f;
#pragma unroll
    for (int i = 0; i < NV; i++) {
        const bool sel = lane + 32u * i < num_experts && rank[i] < k;
        ex[i] = sel ? expf(v[i] - v0) : 0.0f;
        part += ex[i];
    }
    const float r = 1.0f / gptoss_d_warp_sum(part);
#pragma unroll
    for (int i = 0; i < NV; i++) {
        const uint32_t e = lane + 32u * i;
        if (e < num_experts && rank[i] < k) {
            ids[rank[i]] = e;
            out[rank[i]] = ex[i] * r;
        }
    }
}

#endif /* GPTOSS_CUDA_TOPK_CUH */
