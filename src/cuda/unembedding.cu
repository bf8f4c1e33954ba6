/* Unembedding: logits = x W^T (GEMV/GEMM of matmul.cu), then argmax per token over the
 * stored logits (order key of upstream, lowest index on ties; deterministic). */
#include "cuda/matmul.cuh"

namespace {

__global__ void __launch_bounds__(1024) argmax_kernel(const float* logits, uint32_t* argmax, uint32_t num_tokens,
                                                     uint32_t num_rows) {
    __shared__ unsigned long long best_s[32];
    for (uint32_t t = blockIdx.x; t < num_tokens; t += gridDim.x) {
        const float* row = logits + (size_t) t * num_rows;
        unsigned long long best = ~0ull;
        for (uint32_t v = threadIdx.x; v < num_rows; v += blockDim.x) {
            const unsigned long long key = ((unsigned long long) gptoss_d_argmax_key(row[v]) << 32) | v;
            best = key < best ? key : best;
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const unsigned long long other = __shfl_xor_sync(0xFFFFFFFFu, best, o);
            best = other < best ? other : best;
        }
        if ((threadIdx.x & 31) == 0) best_s[threadIdx.x >> 5] = best;
        __syncthreads();
        if (threadIdx.x < 32) {
            best = threadIdx.x < (blockDim.x >> 5) ? best_s[threadIdx.x] : ~0ull;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) {
                const unsigned long long other = __shfl_xor_sync(0xFFFFFFFFu, best, o);
                best = other < best ? other : best;
            }
            if (threadIdx.x == 0) argmax[t] = (uint32_t) best;
        }
        __syncthreads();
    }
}

}  // namespace

extern "C" enum gptoss_status gptoss_cuda_f32_bf16w_unembedding(gptoss_backend_t backend, const float* input,
                                                                const gptoss_bf16* weight, float* logits,
                                                                uint32_t* argmax, uint32_t num_tokens,
                                                                uint32_t num_cols, uint32_t num_rows) {
    enum gptoss_status status = gptoss_cuda_bf16w_matmul_launch(backend, input, weight, nullptr, logits, num_tokens,
                                                                num_cols, num_rows, false);
    if (status != gptoss_status_success) return status;
    const unsigned blocks = num_tokens < 65535u ? num_tokens : 65535u;
    argmax_kernel<<<blocks, 1024, 0, gptoss_cuda_stream(backend)>>>(logits, argmax, num_tokens, num_rows);
    GPTOSS_CUDA_LAUNCHED("f32_bf16w_unembedding (argmax)");
    return gptoss_status_success;
}
