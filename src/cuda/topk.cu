/* Router top-k, and the fused MoE gate (rmsnorm + router matmul + top-k, one kernel per
 * token; see moe_gate_kernel). Top-k: rank of expert e = number of experts with a larger score, or an equal
 * score (+0 == -0) and a lower index; ranks < k are selected (descending, lowest index on
 * ties, as repeated arg-max). Softmax over the selected logits relative to the largest:
 * e_j = expf(v_j - v_0), score_j = e_j * (1 / sum). Up to 256 experts: one warp per token
 * (topk_warp_kernel); more: one block per token. */
#include "cuda/matmul.cuh"
#include "cuda/rmsnorm.cuh"
#include "cuda/topk.cuh"

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

/* One warp per token for num_experts <= 32 * NV (gptoss_d_topk_warp). */
template <int NV>
__global__ void __launch_bounds__(128) topk_warp_kernel(const float* scores, uint32_t* expert_ids,
                                                        float* expert_scores, uint32_t num_tokens,
                                                        uint32_t num_experts, uint32_t k) {
    gptoss_d_pdl_trigger();
    gptoss_d_pdl_wait();
    const uint32_t warps = gridDim.x * (blockDim.x >> 5);
    for (uint32_t t = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); t < num_tokens; t += warps) {
        gptoss_d_topk_warp<NV>(scores + (size_t) t * num_experts, num_experts, k, expert_ids + (size_t) t * k,
                               expert_scores + (size_t) t * k);
    }
}

/* The fused MoE gate for one token (gptoss_f32_bf16w_rmsnorm_matmul_topk): one 256-thread
 * block per router row, each doing exactly what the three kernels do, in the same
 * per-thread layouts, so that every value is bit-identical to them:
 *   the RMSNorm of the token as rmsnorm_vec_kernel (thread i holds float4s i + 256 j),
 *   into shared memory; block 0 also writes it out (the MoE kernels read it);
 *   its row's dot product as gemv_bf16_splitk_kernel (chunk order, block reduction, bias);
 *   the last block to finish (a self-resetting counter) runs the top-k of
 *   topk_warp_kernel on the scores, read back from L2.
 * Weights (norm gain, the row's first chunks) are loaded before the PDL wait. */
template <int NV, int TNV>
__global__ void __launch_bounds__(kRmsVecThreads) moe_gate_kernel(const float* __restrict__ input,
                                                                  const uint16_t* __restrict__ norm_weight,
                                                                  float* __restrict__ output,
                                                                  const uint16_t* __restrict__ router_weight,
                                                                  const uint16_t* __restrict__ router_bias,
                                                                  float* scores, uint32_t* expert_ids,
                                                                  float* expert_scores, uint32_t num_channels,
                                                                  uint32_t k, float epsilon, uint32_t* counter) {
    extern __shared__ float4 xs[]; /* the normalised row, num_channels floats */
    __shared__ float red[32];
    __shared__ uint32_t ticket;
    gptoss_d_pdl_trigger();
    const uint32_t n4 = num_channels / 4, nchunks = num_channels / 8, row = blockIdx.x;
    uint2 wv[NV];
    gptoss_d_rmsnorm_gain<NV>(norm_weight, n4, wv);
    const uint4* wr = (const uint4*) (router_weight + (size_t) row * num_channels);
    uint4 w0, w1;
    gptoss_d_splitk_first(wr, nchunks, w0, w1);
    gptoss_d_pdl_wait();

    const float4* x = (const float4*) input;
    float4 v[NV];
#pragma unroll
    for (int j = 0; j < NV; j++) {
        const uint32_t i = threadIdx.x + (uint32_t) j * kRmsVecThreads;
        v[j] = i < n4 ? x[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
    const float r = gptoss_d_rmsnorm_scale<NV>(v, num_channels, epsilon, red);
#pragma unroll
    for (int j = 0; j < NV; j++) {
        const uint32_t i = threadIdx.x + (uint32_t) j * kRmsVecThreads;
        if (i < n4) {
            const float4 o = gptoss_d_rmsnorm_apply(v[j], r, wv[j]);
            xs[i] = o;
            if (row == 0) ((float4*) output)[i] = o;
        }
    }
    __syncthreads();

    const float acc = gptoss_d_splitk_dot<true>(wr, xs, nchunks, w0, w1);
    const float s = gptoss_d_block_sum(acc, red);
    if (threadIdx.x == 0) {
        gptoss_d_store_result(scores + row, router_bias, row, s, false);
        __threadfence(); /* the score is visible before the block is counted */
        ticket = atomicAdd(counter, 1u);
    }
    __syncthreads();
    if (ticket != gridDim.x - 1) return;

    /* last block: every row's score is in memory */
    __threadfence();
    float* srow = (float*) xs;
    for (uint32_t e = threadIdx.x; e < gridDim.x; e += blockDim.x) srow[e] = __ldcg(scores + e);
    __syncthreads();
    if (threadIdx.x < 32) gptoss_d_topk_warp<TNV>(srow, gridDim.x, k, expert_ids, expert_scores);
    if (threadIdx.x == 0) *counter = 0; /* for the next call (and graph replays) */
}

template <int NV>
cudaError_t launch_moe_gate(gptoss_backend_t backend, uint32_t E, const float* input, const uint16_t* norm_weight,
                            float* output, const uint16_t* router_weight, const uint16_t* router_bias, float* scores,
                            uint32_t* expert_ids, float* expert_scores, uint32_t C, uint32_t k, float epsilon,
                            uint32_t* counter) {
    auto kernel = E <= 32 ? moe_gate_kernel<NV, 1> : E <= 128 ? moe_gate_kernel<NV, 4> : moe_gate_kernel<NV, 8>;
    return gptoss_cuda_launch_pdl(backend, kernel, dim3(E), dim3(kRmsVecThreads), (size_t) C * sizeof(float), input,
                                  norm_weight, output, router_weight, router_bias, scores, expert_ids, expert_scores,
                                  C, k, epsilon, counter);
}

}  // namespace

/* The fused gate is one kernel for one token: C % 8 == 0 up to 4096 channels, at most 256
 * experts, 16-byte aligned rows (the other shapes run as the three kernels, src/kernels,
 * whose router matmul sums a token alone as this kernel does). Not in row order many, whose
 * router sums are those of many tokens. */
extern "C" bool gptoss_cuda_supports_f32_bf16w_rmsnorm_matmul_topk(
    gptoss_backend_t backend, const struct gptoss_f32_bf16w_rmsnorm_matmul_topk_args* args) {
    const uint32_t nv = (args->num_channels / 4 + kRmsVecThreads - 1) / kRmsVecThreads;
    return args->num_tokens == 1 && backend->row_order != gptoss_row_order_many && args->num_channels % 8 == 0 && nv <= 4 && args->num_experts <= 256 &&
           gptoss_aligned(args->input, 16) && gptoss_aligned(args->output, 16) &&
           gptoss_aligned(args->router_weight, 16) && gptoss_aligned(args->norm_weight, 8);
}

extern "C" enum gptoss_status gptoss_cuda_f32_bf16w_rmsnorm_matmul_topk(
    gptoss_backend_t backend, const struct gptoss_f32_bf16w_rmsnorm_matmul_topk_args* args) {
    const uint32_t nv = (args->num_channels / 4 + kRmsVecThreads - 1) / kRmsVecThreads;
    uint32_t* counter = nullptr;
    enum gptoss_status st = gptoss_cuda_scratch_acquire(backend, 0, nullptr, 1, &counter);
    if (st != gptoss_status_success) return st;
    const float* x = args->input;
    const uint16_t* nw = (const uint16_t*) args->norm_weight;
    const uint16_t* rw = (const uint16_t*) args->router_weight;
    const uint16_t* rb = (const uint16_t*) args->router_bias;
    float *out = args->output, *scores = args->scores, *es = args->expert_scores;
    uint32_t* ids = args->expert_ids;
    const uint32_t C = args->num_channels, E = args->num_experts, k = args->num_active_experts;
    const float eps = args->epsilon;
    const cudaError_t err =
        nv == 1   ? launch_moe_gate<1>(backend, E, x, nw, out, rw, rb, scores, ids, es, C, k, eps, counter)
        : nv == 2 ? launch_moe_gate<2>(backend, E, x, nw, out, rw, rb, scores, ids, es, C, k, eps, counter)
        : nv == 3 ? launch_moe_gate<3>(backend, E, x, nw, out, rw, rb, scores, ids, es, C, k, eps, counter)
                  : launch_moe_gate<4>(backend, E, x, nw, out, rw, rb, scores, ids, es, C, k, eps, counter);
    gptoss_cuda_scratch_release(backend);
    if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of f32_bf16w_rmsnorm_matmul_topk");
    return gptoss_status_success;
}

extern "C" enum gptoss_status gptoss_cuda_f32_topk(gptoss_backend_t backend, const struct gptoss_f32_topk_args* args) {
    if (args->num_experts <= 256) {
        const uint64_t want = ((uint64_t) args->num_tokens + 3) / 4;
        const unsigned blocks = (unsigned) (want < 65535u ? want : 65535u);
        auto kernel = args->num_experts <= 32    ? topk_warp_kernel<1>
                      : args->num_experts <= 128 ? topk_warp_kernel<4>
                                                 : topk_warp_kernel<8>;
        const cudaError_t err =
            gptoss_cuda_launch_pdl(backend, kernel, dim3(blocks), dim3(128), 0, args->scores, args->expert_ids,
                                   args->expert_scores, args->num_tokens, args->num_experts, args->num_active_experts);
        if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of f32_topk");
        return gptoss_status_success;
    }
    unsigned threads = 32;
    while (threads < 256 && threads < args->num_experts) threads *= 2;
    const unsigned blocks = args->num_tokens < 65535u ? args->num_tokens : 65535u;
    topk_kernel<<<blocks, threads, 0, gptoss_cuda_stream(backend)>>>(args->scores, args->expert_ids,
                                                                     args->expert_scores, args->num_tokens,
                                                                     args->num_experts, args->num_active_experts);
    GPTOSS_CUDA_LAUNCHED("f32_topk");
    return gptoss_status_success;
}
