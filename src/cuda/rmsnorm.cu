/* RMSNorm: out = (x * r) * w, r = 1 / sqrt(sum x^2 / C + eps), and its fusion with the
 * MoE accumulate (gptoss_f32_accumulate_bf16w_rmsnorm). One block per token;
 * the sum pass completes (barrier) before the write pass, so in-place is safe. Rows of up
 * to 4096 aligned channels stay in registers (rmsnorm_vec_kernel); others loop twice. */
#include "cuda/rmsnorm.cuh"

namespace {

__global__ void __launch_bounds__(1024) rmsnorm_kernel(const float* input, const uint16_t* weight, float* output,
                                                      uint32_t num_tokens, uint32_t num_channels, float epsilon) {
    __shared__ float scratch[32];
    gptoss_d_pdl_trigger();
    for (uint32_t t = blockIdx.x; t < num_tokens; t += gridDim.x) {
        const float* x = input + (size_t) t * num_channels;
        float* y = output + (size_t) t * num_channels;
        float ss = 0.0f;
        for (uint32_t c = threadIdx.x; c < num_channels; c += blockDim.x) ss = fmaf(x[c], x[c], ss);
        ss = gptoss_d_block_sum(ss, scratch);
        const float r = 1.0f / sqrtf(ss / (float) num_channels + epsilon);
        __syncthreads(); /* every thread has read x before anyone overwrites it (in place) */
        for (uint32_t c = threadIdx.x; c < num_channels; c += blockDim.x) {
            y[c] = (x[c] * r) * gptoss_bf16_to_f32(weight[c]);
        }
        __syncthreads();
    }
}

/* Vector path: C % 4 == 0, 16-byte aligned, C <= 4 * 256 * NV. Each of the 256 threads
 * keeps its NV float4 of the row in registers between the two passes (one read of x, all
 * loads issued at once). In place is safe: the writes come after the block reduction.
 * ACC (gptoss_f32_accumulate_bf16w_rmsnorm): x is the residual row, first updated as
 * accumulate_kernel does (acc = x; acc = fmaf(moe[j][t], score[t][j], acc) for j = 0..k-1,
 * per element, the same operations in the same order) and stored back; the norm then runs
 * on the updated values exactly as without ACC, so both outputs are bit-identical to the
 * two kernels. */
constexpr int kVecThreads = kRmsVecThreads;
constexpr int kAccUnroll = 4; /* experts whose rows are loaded together (gpt-oss: k = 4) */

template <int NV, bool ACC>
__global__ void __launch_bounds__(kVecThreads) rmsnorm_vec_kernel(const float* input, const uint16_t* weight,
                                                                 float* output, uint32_t num_tokens,
                                                                 uint32_t num_channels, float epsilon,
                                                                 float* residual, const float* moe,
                                                                 const float* scores, uint32_t k) {
    __shared__ float scratch[32];
    gptoss_d_pdl_trigger();
    const uint32_t n4 = num_channels / 4;
    /* the weight row is the same for every token and no kernel writes it: load it before
     * waiting for the kernel that produces x (PDL) */
    uint2 wv[NV];
    gptoss_d_rmsnorm_gain<NV>(weight, n4, wv);
    gptoss_d_pdl_wait();
    const size_t total = (size_t) num_tokens * num_channels;
    for (uint32_t t = blockIdx.x; t < num_tokens; t += gridDim.x) {
        const float4* x = (const float4*) ((ACC ? residual : input) + (size_t) t * num_channels);
        float4* y = (float4*) (output + (size_t) t * num_channels);
        float4 v[NV];
#pragma unroll
        for (int j = 0; j < NV; j++) {
            const uint32_t i = threadIdx.x + (uint32_t) j * kVecThreads;
            v[j] = i < n4 ? x[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
        if (ACC) {
            /* all loads first (up to kAccUnroll experts at a time: one round trip, not k x NV),
             * then the fma chains in slot order, then the stores */
            const float* mt = moe + (size_t) t * num_channels;
            for (uint32_t e0 = 0; e0 < k; e0 += kAccUnroll) {
                float4 m[kAccUnroll][NV];
                float sc[kAccUnroll];
#pragma unroll
                for (int u = 0; u < kAccUnroll; u++) {
                    const uint32_t e = e0 + (uint32_t) u;
                    sc[u] = e < k ? __ldg(scores + (size_t) t * k + e) : 0.0f;
#pragma unroll
                    for (int j = 0; j < NV; j++) {
                        const uint32_t i = threadIdx.x + (uint32_t) j * kVecThreads;
                        m[u][j] = e < k && i < n4 ? __ldg((const float4*) (mt + (size_t) e * total) + i)
                                                  : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                    }
                }
#pragma unroll
                for (int u = 0; u < kAccUnroll; u++) {
                    if (e0 + (uint32_t) u >= k) break;
#pragma unroll
                    for (int j = 0; j < NV; j++) {
                        v[j].x = fmaf(m[u][j].x, sc[u], v[j].x);
                        v[j].y = fmaf(m[u][j].y, sc[u], v[j].y);
                        v[j].z = fmaf(m[u][j].z, sc[u], v[j].z);
                        v[j].w = fmaf(m[u][j].w, sc[u], v[j].w);
                    }
                }
            }
            float4* res = (float4*) (residual + (size_t) t * num_channels);
#pragma unroll
            for (int j = 0; j < NV; j++) {
                const uint32_t i = threadIdx.x + (uint32_t) j * kVecThreads;
                if (i < n4) res[i] = v[j];
            }
        }
        const float r = gptoss_d_rmsnorm_scale<NV>(v, num_channels, epsilon, scratch);
#pragma unroll
        for (int j = 0; j < NV; j++) {
            const uint32_t i = threadIdx.x + (uint32_t) j * kVecThreads;
            if (i < n4) y[i] = gptoss_d_rmsnorm_apply(v[j], r, wv[j]);
        }
    }
}

template <bool ACC>
cudaError_t launch_vec(gptoss_backend_t backend, uint32_t nv, const float* input, const uint16_t* weight,
                       float* output, uint32_t num_tokens, uint32_t num_channels, float epsilon, float* residual,
                       const float* moe, const float* scores, uint32_t k) {
    const unsigned blocks = num_tokens < 65535u ? num_tokens : 65535u;
    auto kernel = nv == 1 ? rmsnorm_vec_kernel<1, ACC> : nv == 2 ? rmsnorm_vec_kernel<2, ACC>
                              : nv == 3 ? rmsnorm_vec_kernel<3, ACC> : rmsnorm_vec_kernel<4, ACC>;
    return gptoss_cuda_launch_pdl(backend, kernel, dim3(blocks), dim3(kVecThreads), 0, input, weight, output,
                                  num_tokens, num_channels, epsilon, residual, moe, scores, k);
}

}  // namespace

extern "C" enum gptoss_status gptoss_cuda_f32_bf16w_rmsnorm(gptoss_backend_t backend,
                                                            const struct gptoss_f32_bf16w_rmsnorm_args* args) {
    const uint32_t nv = (args->num_channels / 4 + kVecThreads - 1) / kVecThreads;
    if (args->num_channels % 4 == 0 && nv <= 4 && gptoss_aligned(args->input, 16) && gptoss_aligned(args->output, 16) &&
        gptoss_aligned(args->weight, 8)) {
        const cudaError_t err =
            launch_vec<false>(backend, nv, args->input, (const uint16_t*) args->weight, args->output, args->num_tokens,
                              args->num_channels, args->epsilon, nullptr, nullptr, nullptr, 0);
        if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of f32_bf16w_rmsnorm");
        return gptoss_status_success;
    }
    unsigned threads = 1024;
    while (threads > 32 && threads / 2 >= args->num_channels) threads /= 2;
    const unsigned blocks = args->num_tokens < 65535u ? args->num_tokens : 65535u;
    rmsnorm_kernel<<<blocks, threads, 0, gptoss_cuda_stream(backend)>>>(
        args->input, (const uint16_t*) args->weight, args->output, args->num_tokens, args->num_channels, args->epsilon);
    GPTOSS_CUDA_LAUNCHED("f32_bf16w_rmsnorm");
    return gptoss_status_success;
}

/* The fused kernel holds a row in registers: C % 4 == 0, up to 4096 channels, 16-byte aligned
 * rows (the other shapes run as the two kernels, src/kernels). */
extern "C" bool gptoss_cuda_supports_f32_accumulate_bf16w_rmsnorm(
    gptoss_backend_t backend, const struct gptoss_f32_accumulate_bf16w_rmsnorm_args* args) {
    const uint32_t nv = (args->num_channels / 4 + kVecThreads - 1) / kVecThreads;
    return args->num_channels % 4 == 0 && nv <= 4 && gptoss_aligned(args->input, 16) &&
           gptoss_aligned(args->residual, 16) && gptoss_aligned(args->output, 16) && gptoss_aligned(args->weight, 8);
}

extern "C" enum gptoss_status gptoss_cuda_f32_accumulate_bf16w_rmsnorm(
    gptoss_backend_t backend, const struct gptoss_f32_accumulate_bf16w_rmsnorm_args* args) {
    const uint32_t nv = (args->num_channels / 4 + kVecThreads - 1) / kVecThreads;
    const cudaError_t err = launch_vec<true>(backend, nv, args->residual, (const uint16_t*) args->weight, args->output,
                                             args->num_tokens, args->num_channels, args->epsilon, args->residual,
                                             args->input, args->expert_scores, args->num_active_experts);
    if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of f32_accumulate_bf16w_rmsnorm");
    return gptoss_status_success;
}
