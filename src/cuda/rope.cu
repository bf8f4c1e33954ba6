/* In-place RoPE over the Q and K heads of qkv rows (no KV-cache write). */
#include "cuda/rope.cuh"

namespace {

__global__ void rope_kernel(float* act, gptoss_rope_params p, uint32_t num_tokens, uint32_t num_rotated_heads,
                            uint32_t row_stride, uint32_t half_dim, uint32_t token_offset) {
    const uint64_t pairs_per_token = (uint64_t) num_rotated_heads * half_dim;
    const uint64_t total = pairs_per_token * num_tokens;
    const uint64_t stride = (uint64_t) gridDim.x * blockDim.x;
    for (uint64_t idx = (uint64_t) blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const uint32_t t = (uint32_t) (idx / pairs_per_token);
        const uint32_t q = (uint32_t) (idx % pairs_per_token); /* pair within the row */
        const uint32_t i = q % half_dim;
        float* v = act + (size_t) t * row_stride + 2 * (size_t) q;
        float x = v[0], y = v[1];
        gptoss_d_rope_pair(x, y, i, token_offset + t, p);
        v[0] = x;
        v[1] = y;
    }
}

}  // namespace

extern "C" enum gptoss_status gptoss_cuda_f32_rope(gptoss_backend_t backend, const struct gptoss_f32_rope_args* args) {
    const gptoss_rope_params p = gptoss_make_rope_params(args->rope_base, args->interpolation_scale, args->yarn_offset,
                                                         args->yarn_scale, args->yarn_multiplier, args->head_dim);
    const uint64_t total =
        (uint64_t) args->num_tokens * (args->num_q_heads + args->num_kv_heads) * (args->head_dim / 2);
    uint64_t blocks = (total + 255) / 256;
    const uint64_t cap = (uint64_t) gptoss_cuda_num_sms(backend) * 32;
    if (blocks > cap) blocks = cap;
    rope_kernel<<<(unsigned) blocks, 256, 0, gptoss_cuda_stream(backend)>>>(
        args->activations, p, args->num_tokens, args->num_q_heads + args->num_kv_heads,
        args->head_dim * (args->num_q_heads + 2 * args->num_kv_heads), args->head_dim / 2, args->token_offset);
    GPTOSS_CUDA_LAUNCHED("f32_rope");
    return gptoss_status_success;
}
