/* Fused QKV projection: y = x W^T + b (GEMV/GEMM of matmul.cu), then one kernel rotates
 * the Q and K heads in place and writes rotated K and V into the KV cache. One token with
 * aligned operands: a single GEMV kernel does all of it in its epilogue (matmul.cu). */
#include "cuda/matmul.cuh"
#include "cuda/rope.cuh"

namespace {

__global__ void qkv_rope_cache_kernel(float* out, float* kv_cache, gptoss_rope_params p, uint32_t num_tokens,
                                      uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim,
                                      uint32_t token_offset, uint32_t max_tokens) {
    gptoss_d_pdl_trigger();
    gptoss_d_pdl_wait();
    const uint32_t num_rows = head_dim * (num_q_heads + 2 * num_kv_heads);
    const uint64_t pairs_per_token = num_rows / 2;
    const uint64_t total = pairs_per_token * num_tokens;
    const uint64_t stride = (uint64_t) gridDim.x * blockDim.x;
    for (uint64_t idx = (uint64_t) blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const uint32_t t = (uint32_t) (idx / pairs_per_token);
        const uint32_t pr = (uint32_t) (idx % pairs_per_token);
        const uint32_t pos = token_offset + t;
        float* v = out + (size_t) t * num_rows + 2 * (size_t) pr;
        gptoss_d_qkv_rope_store(v[0], v[1], v, pr, pos, p, kv_cache, num_q_heads, num_kv_heads, head_dim, max_tokens);
    }
}

}  // namespace

extern "C" enum gptoss_status gptoss_cuda_f32_bf16w_matmul_qkv(gptoss_backend_t backend,
                                                               const struct gptoss_f32_bf16w_matmul_qkv_args* args) {
    const uint32_t num_rows = args->head_dim * (args->num_q_heads + 2 * args->num_kv_heads);
    if (args->num_tokens == 1) {
        gptoss_qkv_rope rope;
        rope.kv_cache = args->kv_cache;
        rope.p = gptoss_make_rope_params(args->rope_base, args->interpolation_scale, args->yarn_offset,
                                         args->yarn_scale, args->yarn_multiplier, args->head_dim);
        rope.num_q_heads = args->num_q_heads;
        rope.num_kv_heads = args->num_kv_heads;
        rope.head_dim = args->head_dim;
        rope.pos = args->token_offset;
        rope.max_tokens = args->max_tokens;
        enum gptoss_status status;
        if (gptoss_cuda_qkv_rope_gemv(backend, args->input, args->weight, args->bias, args->output, args->num_cols,
                                      num_rows, rope, &status)) {
            return status;
        }
    }
    enum gptoss_status status =
        gptoss_cuda_bf16w_matmul_launch(backend, args->input, args->weight, args->bias, args->output, args->num_tokens,
                                        args->num_cols, num_rows, false);
    if (status != gptoss_status_success) return status;
    const gptoss_rope_params p = gptoss_make_rope_params(args->rope_base, args->interpolation_scale, args->yarn_offset,
                                                         args->yarn_scale, args->yarn_multiplier, args->head_dim);
    const uint64_t total = (uint64_t) args->num_tokens * (num_rows / 2);
    uint64_t blocks = (total + 255) / 256;
    const uint64_t cap = (uint64_t) gptoss_cuda_num_sms(backend) * 32;
    if (blocks > cap) blocks = cap;
    const cudaError_t err = gptoss_cuda_launch_pdl(
        backend, qkv_rope_cache_kernel, dim3((unsigned) blocks), dim3(256), 0, args->output, args->kv_cache, p,
        args->num_tokens, args->num_q_heads, args->num_kv_heads, args->head_dim, args->token_offset, args->max_tokens);
    if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of f32_bf16w_matmul_qkv (rope + cache)");
    return gptoss_status_success;
}
