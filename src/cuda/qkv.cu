/* Fused QKV projection: y = x W^T + b (GEMV/GEMM of matmul.cu), then one kernel rotates
 * the Q and K heads in place and writes rotated K and V into the KV cache. One token with
 * aligned operands: a single GEMV kernel does all of it in its epilogue (matmul.cu). The
 * varlen kernel is the same with each row's position and cache slot read from device
 * arrays (gptoss_kv_dest, rope.cuh). */
#include "cuda/matmul.cuh"
#include "cuda/rope.cuh"

namespace {

__global__ void qkv_rope_cache_kernel(float* out, gptoss_kv_dest kv, gptoss_rope_params p, uint32_t num_tokens,
                                      uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim,
                                      uint32_t token_offset) {
    gptoss_d_pdl_trigger();
    gptoss_d_pdl_wait();
    const uint32_t num_rows = head_dim * (num_q_heads + 2 * num_kv_heads);
    const uint64_t pairs_per_token = num_rows / 2;
    const uint64_t total = pairs_per_token * num_tokens;
    const uint64_t stride = (uint64_t) gridDim.x * blockDim.x;
    for (uint64_t idx = (uint64_t) blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const uint32_t t = (uint32_t) (idx / pairs_per_token);
        const uint32_t pr = (uint32_t) (idx % pairs_per_token);
        float* v = out + (size_t) t * num_rows + 2 * (size_t) pr;
        gptoss_d_qkv_rope_row(v[0], v[1], v, pr, t, token_offset + t, p, kv, num_q_heads, num_kv_heads, head_dim);
    }
}

/* The projection of num_tokens rows, then RoPE and the cache write of each row into kv. */
enum gptoss_status qkv_run(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight,
                           const gptoss_bf16* bias, float* output, const gptoss_kv_dest& kv, uint32_t num_tokens,
                           uint32_t num_cols, uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim,
                           uint32_t token_offset, const gptoss_rope_params& p) {
    const uint32_t num_rows = head_dim * (num_q_heads + 2 * num_kv_heads);
    const enum gptoss_row_order order = backend->row_order;
    if (num_tokens == 1 && order != gptoss_row_order_many) {
        gptoss_qkv_rope rope;
        rope.kv = kv;
        rope.p = p;
        rope.num_q_heads = num_q_heads;
        rope.num_kv_heads = num_kv_heads;
        rope.head_dim = head_dim;
        rope.pos = token_offset;
        enum gptoss_status status;
        if (gptoss_cuda_qkv_rope_gemv(backend, input, weight, bias, output, num_cols, num_rows, rope, &status)) {
            return status;
        }
    }
    enum gptoss_status status;
    /* row order one: each token's sums as the one-token call above computes them */
    if (!(num_tokens > 1 && order == gptoss_row_order_one &&
          gptoss_cuda_qkv_gemv_one(backend, input, weight, bias, output, num_tokens, num_cols, num_rows, &status))) {
        status = gptoss_cuda_bf16w_matmul_launch(backend, input, weight, bias, output, num_tokens, num_cols, num_rows,
                                                 false);
    }
    if (status != gptoss_status_success) return status;
    const uint64_t total = (uint64_t) num_tokens * (num_rows / 2);
    uint64_t blocks = (total + 255) / 256;
    const uint64_t cap = (uint64_t) gptoss_cuda_num_sms(backend) * 32;
    if (blocks > cap) blocks = cap;
    const cudaError_t err =
        gptoss_cuda_launch_pdl(backend, qkv_rope_cache_kernel, dim3((unsigned) blocks), dim3(256), 0, output, kv, p,
                               num_tokens, num_q_heads, num_kv_heads, head_dim, token_offset);
    if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of the qkv rope + cache kernel");
    return gptoss_status_success;
}

}  // namespace

extern "C" enum gptoss_status gptoss_cuda_f32_bf16w_matmul_qkv(gptoss_backend_t backend,
                                                               const struct gptoss_f32_bf16w_matmul_qkv_args* args) {
    gptoss_kv_dest kv = {};
    kv.kv_cache = args->kv_cache;
    kv.head_stride = (uint64_t) args->max_tokens * 2 * args->head_dim;
    const gptoss_rope_params p = gptoss_make_rope_params(args->rope_base, args->interpolation_scale, args->yarn_offset,
                                                         args->yarn_scale, args->yarn_multiplier, args->head_dim);
    return qkv_run(backend, args->input, args->weight, args->bias, args->output, kv, args->num_tokens, args->num_cols,
                   args->num_q_heads, args->num_kv_heads, args->head_dim, args->token_offset, p);
}

extern "C" enum gptoss_status gptoss_cuda_f32_bf16w_matmul_qkv_varlen(
    gptoss_backend_t backend, const struct gptoss_f32_bf16w_matmul_qkv_varlen_args* args) {
    gptoss_kv_dest kv = {};
    kv.kv_cache = args->kv_cache;
    kv.head_stride = args->kv_stride;
    kv.positions = args->positions;
    kv.seq_ids = args->seq_ids;
    kv.block_tables = args->block_tables;
    kv.block_size = args->block_size;
    kv.table_stride = args->table_stride;
    kv.num_seqs = args->num_seqs;
    kv.num_blocks = args->kv_stride / (2 * (uint64_t) args->head_dim * args->block_size);
    kv.error_word = gptoss_cuda_error_word(backend);
    const gptoss_rope_params p = gptoss_make_rope_params(args->rope_base, args->interpolation_scale, args->yarn_offset,
                                                         args->yarn_scale, args->yarn_multiplier, args->head_dim);
    return qkv_run(backend, args->input, args->weight, args->bias, args->output, kv, args->num_tokens, args->num_cols,
                   args->num_q_heads, args->num_kv_heads, args->head_dim, 0, p);
}
