/* RMSNorm: out = (x * r) * w, r = 1 / sqrt(sum x^2 / C + eps). One block per token;
 * the sum pass completes (barrier) before the write pass, so in-place is safe. */
#include "cuda/common.cuh"

namespace {

__global__ void __launch_bounds__(1024) rmsnorm_kernel(const float* input, const uint16_t* weight, float* output,
                                                      uint32_t num_tokens, uint32_t num_channels, float epsilon) {
    __shared__ float scratch[32];
    for (uint32_t t = blockIdx.x; t < num_tokens; t += gridDim.x) {
        const float* x = input + (size_t) t * num_channels;
        float* y = output + (size_t) t * num_channels;
        float ss = 0.0f;
        for (uint32_t c = threadIdx.x; c < num_channels; c += blockDim.x) ss = fmaf(x[c], x[c], ss);
        ss = gptoss_d_block_sum(ss, scratch);
        const float r = 1.0f / sqrtf(ss / (float) num_channels + epsilon);
        __syncthreads(); /* every thread has read x before anyone overwrites it (in place) */
        for (uint32_t c = threadIdx.x; c < num_channels; c += blockDim.x) {
            y[c] = (x[c] * r) * gptoss_d_bf16_to_f32(weight[c]);
        }
        __syncthreads();
    }
}

}  // namespace

extern "C" enum gptoss_status gptoss_cuda_f32_bf16w_rmsnorm(gptoss_backend_t backend, const float* input,
                                                            const gptoss_bf16* weight, float* output,
                                                            uint32_t num_tokens, uint32_t num_channels,
                                                            float epsilon) {
    unsigned threads = 1024;
    while (threads > 32 && threads / 2 >= num_channels) threads /= 2;
    const unsigned blocks = num_tokens < 65535u ? num_tokens : 65535u;
    rmsnorm_kernel<<<blocks, threads, 0, gptoss_cuda_stream(backend)>>>(input, (const uint16_t*) weight, output,
                                                                        num_tokens, num_channels, epsilon);
    GPTOSS_CUDA_LAUNCHED("f32_bf16w_rmsnorm");
    return gptoss_status_success;
}
