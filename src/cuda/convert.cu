/* MXFP4 -> f32 with RAW E8M0 scales: out = fp4 * 2^(s-127) exactly; overflow -> +-inf,
 * s = 255 -> NaN. */
#include "cuda/common.cuh"

namespace {

__global__ void mf4_f32_convert_kernel(const uint8_t* blocks, const uint8_t* scales, float* out,
                                       uint64_t num_elements) {
    /* one thread per byte (2 values) */
    const uint64_t num_bytes = num_elements / 2;
    const uint64_t stride = (uint64_t) gridDim.x * blockDim.x;
    for (uint64_t i = (uint64_t) blockIdx.x * blockDim.x + threadIdx.x; i < num_bytes; i += stride) {
        const uint32_t byte = blocks[i];
        const uint32_t s = scales[i / 16];
        float lo, hi;
        if (s == 255) {
            lo = hi = __uint_as_float(0x7FC00000u);
        } else {
            /* 2^(s-127) for s in [0, 254] is representable (2^-127 is subnormal) */
            const float m = gptoss_exp2i((int) s - 127);
            lo = gptoss_fp4_to_f32(byte & 15u) * m;
            hi = gptoss_fp4_to_f32(byte >> 4) * m;
        }
        out[2 * i] = lo;
        out[2 * i + 1] = hi;
    }
}

}  // namespace

extern "C" enum gptoss_status gptoss_cuda_mf4_f32_convert(gptoss_backend_t backend,
                                                          const struct gptoss_mf4_f32_convert_args* args) {
    const uint64_t bytes = args->num_elements / 2;
    uint64_t nb = (bytes + 255) / 256;
    const uint64_t cap = (uint64_t) gptoss_cuda_num_sms(backend) * 16;
    if (nb > cap) nb = cap;
    if (nb == 0) nb = 1;
    mf4_f32_convert_kernel<<<(unsigned) nb, 256, 0, gptoss_cuda_stream(backend)>>>(args->blocks, args->scales,
                                                                                   args->output, args->num_elements);
    GPTOSS_CUDA_LAUNCHED("mf4_f32_convert");
    return gptoss_status_success;
}
