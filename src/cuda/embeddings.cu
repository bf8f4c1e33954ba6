/* Embeddings: out[t][c] = f32(weight[token_ids[t]][c]); an id >= vocabulary_size sets the
 * error word and writes a NaN row. */
#include "cuda/common.cuh"

namespace {

__global__ void embeddings_kernel(const uint32_t* token_ids, const uint16_t* weight, float* out, uint32_t num_tokens,
                                  uint32_t num_channels, uint32_t vocabulary_size, uint32_t* error_word) {
    gptoss_d_pdl_trigger();
    for (uint32_t t = blockIdx.x; t < num_tokens; t += gridDim.x) {
        const uint32_t id = token_ids[t];
        float* row = out + (size_t) t * num_channels;
        if (id >= vocabulary_size) {
            if (threadIdx.x == 0) gptoss_d_set_error(error_word, GPTOSS_CUDA_ERROR_TOKEN_ID);
            for (uint32_t c = threadIdx.x; c < num_channels; c += blockDim.x) row[c] = __uint_as_float(0x7FC00000u);
            continue;
        }
        const uint16_t* w = weight + (size_t) id * num_channels;
        for (uint32_t c = threadIdx.x; c < num_channels; c += blockDim.x) row[c] = gptoss_bf16_to_f32(w[c]);
    }
}

}  // namespace

extern "C" enum gptoss_status gptoss_cuda_bf16_f32_embeddings(gptoss_backend_t backend,
                                                              const struct gptoss_bf16_f32_embeddings_args* args) {
    const unsigned blocks = args->num_tokens < 65535u ? args->num_tokens : 65535u;
    embeddings_kernel<<<blocks, 256, 0, gptoss_cuda_stream(backend)>>>(
        args->token_ids, (const uint16_t*) args->weight, args->output, args->num_tokens, args->num_channels,
        args->vocabulary_size, gptoss_cuda_error_word(backend));
    GPTOSS_CUDA_LAUNCHED("bf16_f32_embeddings");
    return gptoss_status_success;
}
