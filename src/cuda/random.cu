/* Random fill (Squares32): value i depends only on (seed, offset + i). */
#include "cuda/common.cuh"

namespace {

__global__ void u32_fill_random_kernel(uint32_t* out, uint64_t n, uint64_t seed, uint64_t offset) {
    const uint64_t stride = (uint64_t) gridDim.x * blockDim.x;
    for (uint64_t i = (uint64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        out[i] = gptoss_squares32(offset + i, seed);
    }
}

__global__ void f32_fill_random_kernel(float* out, uint64_t n, uint64_t seed, uint64_t offset, float scale,
                                       float bias) {
    const uint64_t stride = (uint64_t) gridDim.x * blockDim.x;
    for (uint64_t i = (uint64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        out[i] = gptoss_random_f32(gptoss_squares32(offset + i, seed), scale, bias);
    }
}

__global__ void bf16_fill_random_kernel(uint16_t* out, uint64_t n, uint64_t seed, uint64_t offset, float scale,
                                        float bias) {
    const uint64_t stride = (uint64_t) gridDim.x * blockDim.x;
    for (uint64_t i = (uint64_t) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        out[i] = gptoss_f32_to_bf16(gptoss_random_f32(gptoss_squares32(offset + i, seed), scale, bias));
    }
}

unsigned fill_blocks(gptoss_backend_t backend, uint64_t n) {
    const uint64_t want = (n + 255) / 256;
    const uint64_t cap = (uint64_t) gptoss_cuda_num_sms(backend) * 16;
    return (unsigned) (want < cap ? (want == 0 ? 1 : want) : cap);
}

}  // namespace

extern "C" enum gptoss_status gptoss_cuda_u32_fill_random(gptoss_backend_t backend,
                                                          const struct gptoss_u32_fill_random_args* args) {
    u32_fill_random_kernel<<<fill_blocks(backend, args->num_elements), 256, 0, gptoss_cuda_stream(backend)>>>(
        args->output, args->num_elements, args->seed, args->offset);
    GPTOSS_CUDA_LAUNCHED("u32_fill_random");
    return gptoss_status_success;
}

extern "C" enum gptoss_status gptoss_cuda_f32_fill_random(gptoss_backend_t backend,
                                                          const struct gptoss_f32_fill_random_args* args) {
    const float scale = (args->max - args->min) * 0x1.0p-32f;
    const float bias = (args->min + args->max) * 0.5f;
    f32_fill_random_kernel<<<fill_blocks(backend, args->num_elements), 256, 0, gptoss_cuda_stream(backend)>>>(
        args->output, args->num_elements, args->seed, args->offset, scale, bias);
    GPTOSS_CUDA_LAUNCHED("f32_fill_random");
    return gptoss_status_success;
}

extern "C" enum gptoss_status gptoss_cuda_bf16_fill_random(gptoss_backend_t backend,
                                                           const struct gptoss_bf16_fill_random_args* args) {
    const float scale = (args->max - args->min) * 0x1.0p-32f;
    const float bias = (args->min + args->max) * 0.5f;
    bf16_fill_random_kernel<<<fill_blocks(backend, args->num_elements), 256, 0, gptoss_cuda_stream(backend)>>>(
        (uint16_t*) args->output, args->num_elements, args->seed, args->offset, scale, bias);
    GPTOSS_CUDA_LAUNCHED("bf16_fill_random");
    return gptoss_status_success;
}
