/* bf16-weight matrix product shared by matmul.cu, qkv.cu and unembedding.cu. */
#ifndef GPTOSS_CUDA_MATMUL_CUH
#define GPTOSS_CUDA_MATMUL_CUH

#include "cuda/common.cuh"

/* out[t][r] = (add ? out[t][r] : 0) + (sum_c x[t][c] * w[r][c] + b[r]); bias may be NULL.
 * Picks the decode (GEMV) kernels for small T, the tiled GEMM otherwise. */
enum gptoss_status gptoss_cuda_bf16w_matmul_launch(gptoss_backend_t backend, const float* input,
                                                   const gptoss_bf16* weight, const gptoss_bf16* bias,
                                                   float* output, uint32_t num_tokens, uint32_t num_cols,
                                                   uint32_t num_rows, bool add);

/* Streaming 16-byte load (read once: do not allocate in L1). */
__device__ __forceinline__ uint4 gptoss_d_ld_stream(const void* ptr) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(ptr));
    return v;
}

#endif
