/* Router top-k: rank of expert e = number of experts with a larger score, or an equal
 * score (+0 == -0) and a lower index; ranks < k are selected (descending, lowest index on
 * ties, as repeated arg-max). Softmax over the selected logits relative to the largest:
 * e_j = expf(v_j - v_0), score_j = e_j * (1 / sum). Up to 256 experts: one warp per token
 * (topk_warp_kernel); more: one block per token. */
#include "cuda/common.cuh"

namespace {

__global__ void topk_kernel(const float* scores, uint32_t* expert_ids, float* expert_scores, uint32_t num_tokens,
                            uint32_t num_experts, uint32_t k) {
    gptoss_d_pdl_trigger();
    for (uint32_t t = blockIdx.x; t < num_tokens; t += gridDim.x) {
        const float* row = scores + (size_t) t * num_experts;
        uint32_t* ids = expert_ids + (size_t) t * k;
        float* out = expert_scores + (size_t) t * k;
        for (uint32_t e = threadIdx.x; e < num_experts; e += blockDim.x) {
            const float v = row[e];
            uint32_t rank = 0;
            for (uint32_t o = 0; o < num_experts && rank < k; o++) {
                const float w = row[o];
                rank += (w > v || (w == v && o < e)) ? 1u : 0u;
            }
            if (rank < k) {
                ids[rank] = e;
                out[rank] = v; /* raw logit for now */
            }
        }
        __syncthreads(); /* global writes of this block are visible to thread 0 */
        if (threadIdx.x == 0) {
            const float v0 = out[0];
            float sum = 0.0f;
            for (uint32_t j = 0; j < k; j++) {
                const float ej = expf(out[j] - v0);
                out[j] = ej;
                sum += ej;
            }
            const float r = 1.0f / sum;
            for (uint32_t j = 0; j < k; j++) out[j] = out[j] * r;
        }
        __syncthreads();
    }
}

/* One warp per token for num_experts <= 32 * NV: lane holds experts lane + 32 i in
 * registers, ranks are counted over warp shuffles, the softmax of the k selected logits
 * is a warp reduction (sum in tree order). Same selection rule as topk_kernel. */
template <int NV>
__global__ void __launch_bounds__(128) topk_warp_kernel(const float* scores, uint32_t* expert_ids,
                                                        float* expert_scores, uint32_t num_tokens,
                                                        uint32_t num_experts, uint32_t k) {
    gptoss_d_pdl_trigger();
    gptoss_d_pdl_wait();
    const uint32_t lane = threadIdx.x & 31u;
    const uint32_t warps = gridDim.x * (blockDim.x >> 5);
    for (uint32_t t = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); t < num_tokens; t += warps) {
        const float* row = scores + (size_t) t * num_experts;
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
                expert_ids[(size_t) t * k + rank[i]] = e;
                expert_scores[(size_t) t * k + rank[i]] = ex[i] * r;
            }
        }
    }
}

}  // namespace

extern "C" enum gptoss_status gptoss_cuda_f32_topk(gptoss_backend_t backend, const float* scores,
                                                   uint32_t* expert_ids, float* expert_scores, uint32_t num_tokens,
                                                   uint32_t num_experts, uint32_t num_active_experts) {
    if (num_experts <= 256) {
        const uint64_t want = ((uint64_t) num_tokens + 3) / 4;
        const unsigned blocks = (unsigned) (want < 65535u ? want : 65535u);
        auto kernel = num_experts <= 32 ? topk_warp_kernel<1> : num_experts <= 128 ? topk_warp_kernel<4>
                                                                                    : topk_warp_kernel<8>;
        const cudaError_t err = gptoss_cuda_launch_pdl(backend, kernel, dim3(blocks), dim3(128), 0, scores, expert_ids,
                                                       expert_scores, num_tokens, num_experts, num_active_experts);
        if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of f32_topk");
        return gptoss_status_success;
    }
    unsigned threads = 32;
    while (threads < 256 && threads < num_experts) threads *= 2;
    const unsigned blocks = num_tokens < 65535u ? num_tokens : 65535u;
    topk_kernel<<<blocks, threads, 0, gptoss_cuda_stream(backend)>>>(scores, expert_ids, expert_scores, num_tokens,
                                                                     num_experts, num_active_experts);
    GPTOSS_CUDA_LAUNCHED("f32_topk");
    return gptoss_status_success;
}
