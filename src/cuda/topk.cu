/* Router top-k: rank of expert e = number of experts with a larger score, or an equal
 * score (+0 == -0) and a lower index; ranks < k are selected (descending, lowest index on
 * ties, as repeated arg-max). Softmax over the selected logits relative to the largest:
 * e_j = expf(v_j - v_0), score_j = e_j * (1 / sum). One block per token. */
#include "cuda/common.cuh"

namespace {

__global__ void topk_kernel(const float* scores, uint32_t* expert_ids, float* expert_scores, uint32_t num_tokens,
                            uint32_t num_experts, uint32_t k) {
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

}  // namespace

extern "C" enum gptoss_status gptoss_cuda_f32_topk(gptoss_backend_t backend, const float* scores,
                                                   uint32_t* expert_ids, float* expert_scores, uint32_t num_tokens,
                                                   uint32_t num_experts, uint32_t num_active_experts) {
    unsigned threads = 32;
    while (threads < 256 && threads < num_experts) threads *= 2;
    const unsigned blocks = num_tokens < 65535u ? num_tokens : 65535u;
    topk_kernel<<<blocks, threads, 0, gptoss_cuda_stream(backend)>>>(scores, expert_ids, expert_scores, num_tokens,
                                                                     num_experts, num_active_experts);
    GPTOSS_CUDA_LAUNCHED("f32_topk");
    return gptoss_status_success;
}
