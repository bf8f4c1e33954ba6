/* Unembedding: logits = x W^T (GEMV/GEMM of matmul.cu), then argmax per token over the
 * stored logits (order key of upstream, lowest index on ties; deterministic): 4096-entry
 * slices per block, combined through a per-token slot. */
#include "cuda/matmul.cuh"

namespace {

/* Argmax over many blocks per token (one block per 200k-entry vocabulary row leaves the
 * card idle; docs/CUDA_NOTES.md): each block reduces a 4096-entry slice to its smallest (key << 32 | index), folds
 * it into the token's slot with atomicMax on the complement (the slots start at zero), and
 * the last block of the token (counted) writes the result and zeroes slot and counter
 * again. min over (key, index) is order-independent, so the result does not depend on
 * the order in which blocks finish. */
constexpr int kArgmaxThreads = 256;
constexpr uint32_t kArgmaxSlice = 4096;

__global__ void __launch_bounds__(kArgmaxThreads) argmax_sliced_kernel(const float* logits, uint32_t* argmax,
                                                                      uint32_t num_tokens, uint32_t num_rows,
                                                                      unsigned long long* slots,
                                                                      uint32_t* counters) {
    __shared__ unsigned long long best_s[kArgmaxThreads / 32];
    gptoss_d_pdl_trigger();
    gptoss_d_pdl_wait();
    for (uint32_t t = blockIdx.y; t < num_tokens; t += gridDim.y) {
        const float* row = logits + (size_t) t * num_rows;
        const uint32_t base = blockIdx.x * kArgmaxSlice;
        const uint32_t end = min(base + kArgmaxSlice, num_rows);
        unsigned long long best = ~0ull;
#pragma unroll
        for (uint32_t j = 0; j < kArgmaxSlice / kArgmaxThreads; j++) {
            const uint32_t v = base + threadIdx.x + j * kArgmaxThreads;
            if (v < end) {
                const unsigned long long key = ((unsigned long long) gptoss_argmax_key(row[v]) << 32) | v;
                best = key < best ? key : best;
            }
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const unsigned long long other = __shfl_xor_sync(0xFFFFFFFFu, best, o);
            best = other < best ? other : best;
        }
        if ((threadIdx.x & 31) == 0) best_s[threadIdx.x >> 5] = best;
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int w = 1; w < kArgmaxThreads / 32; w++) best = best_s[w] < best ? best_s[w] : best;
            atomicMax(slots + t, ~best);
            __threadfence();
            if (atomicAdd(counters + t, 1u) == gridDim.x - 1) {
                __threadfence();
                const unsigned long long v = atomicExch(slots + t, 0ull);
                argmax[t] = (uint32_t) ~v;
                counters[t] = 0;
            }
        }
        __syncthreads(); /* best_s is reused by the next token */
    }
}

}  // namespace

extern "C" enum gptoss_status gptoss_cuda_f32_bf16w_unembedding(gptoss_backend_t backend,
                                                                const struct gptoss_f32_bf16w_unembedding_args* args) {
    enum gptoss_status status =
        gptoss_cuda_bf16w_matmul_launch(backend, args->input, args->weight, nullptr, args->logits, args->num_tokens,
                                        args->num_cols, args->num_rows, false);
    if (status != gptoss_status_success) return status;
    uint32_t* counters = nullptr;
    /* per token: a u64 slot (2 counters) and a block counter */
    status = gptoss_cuda_scratch_acquire(backend, 0, nullptr, (size_t) args->num_tokens * 3, &counters);
    if (status != gptoss_status_success) return status;
    const dim3 grid((args->num_rows + kArgmaxSlice - 1) / kArgmaxSlice,
                    args->num_tokens < GPTOSS_CUDA_MAX_GRID_YZ ? args->num_tokens : GPTOSS_CUDA_MAX_GRID_YZ);
    const cudaError_t err = gptoss_cuda_launch_pdl(
        backend, argmax_sliced_kernel, grid, dim3(kArgmaxThreads), 0, args->logits, args->argmax, args->num_tokens,
        args->num_rows, (unsigned long long*) counters, counters + (size_t) args->num_tokens * 2);
    gptoss_cuda_scratch_release(backend);
    if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of f32_bf16w_unembedding (argmax)");
    return gptoss_status_success;
}
