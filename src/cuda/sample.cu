/* Sampling: softmax with temperature (divides) and the inverse-CDF draw. */
#include "cuda/common.cuh"

namespace {

__global__ void __launch_bounds__(1024) softmax_kernel(const float* logits, const uint32_t* argmax, float* prob,
                                                      float* sum, uint32_t num_tokens, uint32_t C, float temperature,
                                                      uint32_t* error_word) {
    __shared__ float scratch[32];
    for (uint32_t t = blockIdx.x; t < num_tokens; t += gridDim.x) {
        const float* row = logits + (size_t) t * C;
        float* p = prob + (size_t) t * C;
        const uint32_t a = argmax[t];
        if (a >= C) {
            if (threadIdx.x == 0) {
                gptoss_d_set_error(error_word, GPTOSS_CUDA_ERROR_ARGMAX);
                sum[t] = __uint_as_float(0x7FC00000u);
            }
            for (uint32_t i = threadIdx.x; i < C; i += blockDim.x) p[i] = __uint_as_float(0x7FC00000u);
            continue;
        }
        const float m = row[a];
        float local = 0.0f;
        for (uint32_t i = threadIdx.x; i < C; i += blockDim.x) {
            const float v = expf((row[i] - m) / temperature);
            p[i] = v;
            local += v;
        }
        local = gptoss_d_block_sum(local, scratch);
        if (threadIdx.x == 0) sum[t] = local;
        __syncthreads();
    }
}

/* One block of 1024 threads; chunks of 4096 values, 4 consecutive per thread. */
__global__ void __launch_bounds__(1024) sample_kernel(const float* prob, const float* sum, uint32_t* prediction,
                                                     uint32_t C, uint64_t seed, uint64_t offset) {
    __shared__ float warp_tot[32];
    __shared__ uint32_t found_s;
    __shared__ int last_pos_s;
    const uint32_t tid = threadIdx.x, lane = tid & 31u, warp = tid >> 5;
    const uint32_t word = gptoss_squares32(offset, seed);
    const float u = (float) (word & 0xFFFFFFu) * 0x1.0p-24f;
    const float target = fmaxf(u * sum[0], 0x1.0p-149f);
    if (tid == 0) {
        found_s = 0xFFFFFFFFu;
        last_pos_s = -1;
    }
    __syncthreads();
    float carry = 0.0f;
    for (uint32_t base = 0; base < C; base += 4096) {
        const uint32_t i0 = base + tid * 4;
        float v[4];
#pragma unroll
        for (int j = 0; j < 4; j++) v[j] = i0 + j < C ? prob[i0 + j] : 0.0f;
        float a[4];
        a[0] = v[0];
        a[1] = a[0] + v[1];
        a[2] = a[1] + v[2];
        a[3] = a[2] + v[3];
        int last = -1;
#pragma unroll
        for (int j = 0; j < 4; j++)
            if (v[j] > 0.0f) last = (int) (i0 + j);
        /* inclusive warp scan of the thread totals */
        float incl = a[3];
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const float n = __shfl_up_sync(0xFFFFFFFFu, incl, o);
            if (lane >= (uint32_t) o) incl += n;
        }
        if (lane == 31) warp_tot[warp] = incl;
        __syncthreads();
        if (warp == 0) {
            float w = warp_tot[lane];
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                const float n = __shfl_up_sync(0xFFFFFFFFu, w, o);
                if (lane >= (uint32_t) o) w += n;
            }
            warp_tot[lane] = w; /* inclusive over warps */
        }
        __syncthreads();
        const float warp_base = warp > 0 ? warp_tot[warp - 1] : 0.0f;
        const float excl = warp_base + (incl - a[3]);
        const float total = warp_tot[31];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            if (i0 + j < C && carry + (excl + a[j]) >= target) {
                atomicMin(&found_s, i0 + j);
                break;
            }
        }
        if (last >= 0) atomicMax(&last_pos_s, last);
        __syncthreads();
        if (found_s != 0xFFFFFFFFu) break;
        carry += total;
        __syncthreads(); /* warp_tot reused */
    }
    if (tid == 0) {
        uint32_t r = found_s;
        if (r == 0xFFFFFFFFu) r = last_pos_s >= 0 ? (uint32_t) last_pos_s : C - 1;
        *prediction = r;
    }
}

}  // namespace

extern "C" enum gptoss_status gptoss_cuda_f32_softmax(gptoss_backend_t backend,
                                                      const struct gptoss_f32_softmax_args* args) {
    unsigned threads = 1024;
    while (threads > 32 && threads / 2 >= args->num_channels) threads /= 2;
    const unsigned blocks = args->num_tokens < 65535u ? args->num_tokens : 65535u;
    softmax_kernel<<<blocks, threads, 0, gptoss_cuda_stream(backend)>>>(
        args->logits, args->argmax, args->prob, args->sum, args->num_tokens, args->num_channels, args->temperature,
        gptoss_cuda_error_word(backend));
    GPTOSS_CUDA_LAUNCHED("f32_softmax");
    return gptoss_status_success;
}

extern "C" enum gptoss_status gptoss_cuda_f32_sample(gptoss_backend_t backend,
                                                     const struct gptoss_f32_sample_args* args) {
    sample_kernel<<<1, 1024, 0, gptoss_cuda_stream(backend)>>>(args->prob, args->sum, args->prediction,
                                                               args->num_channels, args->rng_seed, args->rng_offset);
    GPTOSS_CUDA_LAUNCHED("f32_sample");
    return gptoss_status_success;
}
