/* MoE routing: expert_routing_metadata (deterministic ranks in increasing pair index),
 * scatter, gather_and_accumulate, accumulate. Expert ids and routing offsets are device
 * contents: out-of-range values set the error word (rows written as NaN where the
 * destination is known, skipped otherwise). */
#include "cuda/common.cuh"

namespace {

constexpr uint32_t kRoutingWarps = 32;

/* One block of 1024 threads. cnt: global scratch u32[(kRoutingWarps + 1) * E]. */
__global__ void __launch_bounds__(1024) routing_metadata_kernel(const uint32_t* ids, uint32_t* offsets,
                                                               uint32_t* intra, uint32_t P, uint32_t E,
                                                               uint32_t* cnt, uint32_t* error_word) {
    const uint32_t tid = threadIdx.x, lane = tid & 31u, warp = tid >> 5;
    const uint32_t seg = (P + kRoutingWarps - 1) / kRoutingWarps;
    const uint32_t begin = min(warp * seg, P), end = min(begin + seg, P);
    for (uint32_t i = tid; i < (kRoutingWarps + 1) * E; i += blockDim.x) cnt[i] = 0;
    __syncthreads();
    uint32_t* my = cnt + (size_t) warp * E;
    bool bad = false;
    for (uint32_t p = begin + lane; p < end; p += 32) {
        const uint32_t e = ids[p];
        if (e < E) {
            atomicAdd(&my[e], 1u);
        } else {
            bad = true;
        }
    }
    if (bad) gptoss_d_set_error(error_word, GPTOSS_CUDA_ERROR_EXPERT_ID);
    __syncthreads();
    uint32_t* totals = cnt + (size_t) kRoutingWarps * E;
    for (uint32_t e = tid; e < E; e += blockDim.x) {
        uint32_t base = 0;
        for (uint32_t w = 0; w < kRoutingWarps; w++) {
            const uint32_t c = cnt[(size_t) w * E + e];
            cnt[(size_t) w * E + e] = base;
            base += c;
        }
        totals[e] = base;
    }
    __syncthreads();
    if (tid == 0) {
        uint32_t running = 0;
        for (uint32_t e = 0; e < E; e++) {
            const uint32_t c = totals[e];
            totals[e] = running;
            offsets[e] = running;
            running += c;
        }
        offsets[E] = running;
    }
    __syncthreads();
    const unsigned lt_mask = (1u << lane) - 1u;
    for (uint32_t p0 = begin; p0 < end; p0 += 32) {
        const uint32_t p = p0 + lane;
        const bool in = p < end;
        const uint32_t e = in ? ids[p] : 0xFFFFFFFFu;
        const unsigned mask = __match_any_sync(0xFFFFFFFFu, e);
        const uint32_t rank = __popc(mask & lt_mask);
        if (in) intra[p] = e < E ? my[e] + rank : 0u;
        __syncwarp();
        if (in && e < E && lane == (uint32_t) (__ffs(mask) - 1)) my[e] += __popc(mask);
        __syncwarp();
    }
}

__global__ void scatter_kernel(const float* input, const uint32_t* ids, const uint32_t* offsets, const uint32_t* intra,
                               float* output, uint32_t C, uint32_t T, uint32_t k, uint32_t E, uint32_t* error_word) {
    const uint32_t P = T * k;
    for (uint32_t p = blockIdx.x; p < P; p += gridDim.x) {
        const uint32_t e = ids[p];
        if (e >= E) {
            if (threadIdx.x == 0) gptoss_d_set_error(error_word, GPTOSS_CUDA_ERROR_EXPERT_ID);
            continue;
        }
        const uint32_t row = offsets[e] + intra[p];
        if (row >= P || offsets[e] > P) {
            if (threadIdx.x == 0) gptoss_d_set_error(error_word, GPTOSS_CUDA_ERROR_ROUTING_OFFSET);
            continue;
        }
        const float* src = input + (size_t) (p / k) * C;
        float* dst = output + (size_t) row * C;
        for (uint32_t c = threadIdx.x; c < C; c += blockDim.x) dst[c] = src[c];
    }
}

__global__ void gather_accumulate_kernel(const float* input, const uint32_t* ids, const float* scores,
                                         const uint32_t* offsets, const uint32_t* intra, float* residual, uint32_t C,
                                         uint32_t T, uint32_t k, uint32_t E, uint32_t* error_word) {
    const uint32_t P = T * k;
    for (uint32_t t = blockIdx.x; t < T; t += gridDim.x) {
        /* validate the rows of this token */
        uint32_t bad = 0;
        for (uint32_t j = 0; j < k; j++) {
            const uint32_t e = ids[(size_t) t * k + j];
            if (e >= E) {
                bad |= GPTOSS_CUDA_ERROR_EXPERT_ID;
            } else {
                const uint32_t off = offsets[e];
                const uint32_t row = off + intra[(size_t) t * k + j];
                if (off > P || row >= P) bad |= GPTOSS_CUDA_ERROR_ROUTING_OFFSET;
            }
        }
        float* res = residual + (size_t) t * C;
        if (bad != 0) {
            if (threadIdx.x == 0) gptoss_d_set_error(error_word, bad);
            for (uint32_t c = threadIdx.x; c < C; c += blockDim.x) res[c] = __uint_as_float(0x7FC00000u);
            continue;
        }
        for (uint32_t c = threadIdx.x; c < C; c += blockDim.x) {
            float acc = res[c];
            for (uint32_t j = 0; j < k; j++) {
                const size_t pj = (size_t) t * k + j;
                const uint32_t row = offsets[ids[pj]] + intra[pj];
                acc = fmaf(input[(size_t) row * C + c], scores[pj], acc);
            }
            res[c] = acc;
        }
    }
}

__global__ void accumulate_kernel(const float* input, const float* scores, float* residual, uint32_t C, uint32_t T,
                                  uint32_t k) {
    gptoss_d_pdl_trigger();
    gptoss_d_pdl_wait();
    const uint64_t total = (uint64_t) T * C;
    const uint64_t stride = (uint64_t) gridDim.x * blockDim.x;
    for (uint64_t idx = (uint64_t) blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const uint32_t t = (uint32_t) (idx / C);
        float acc = residual[idx];
        for (uint32_t j = 0; j < k; j++) acc = fmaf(input[(size_t) j * total + idx], scores[(size_t) t * k + j], acc);
        residual[idx] = acc;
    }
}

unsigned channel_threads(uint32_t C) {
    unsigned threads = 32;
    while (threads < 256 && threads < C) threads *= 2;
    return threads;
}

}  // namespace

extern "C" enum gptoss_status gptoss_cuda_expert_routing_metadata(
    gptoss_backend_t backend, const struct gptoss_expert_routing_metadata_args* args) {
    void* scratch = nullptr;
    enum gptoss_status status = gptoss_cuda_scratch_acquire(
        backend, (size_t) (kRoutingWarps + 1) * args->num_experts * sizeof(uint32_t), &scratch, 0, nullptr);
    if (status != gptoss_status_success) return status;
    routing_metadata_kernel<<<1, 1024, 0, gptoss_cuda_stream(backend)>>>(
        args->expert_ids, args->expert_offsets, args->intra_expert_offsets, args->num_pairs, args->num_experts,
        (uint32_t*) scratch, gptoss_cuda_error_word(backend));
    const cudaError_t err = cudaGetLastError();
    gptoss_cuda_scratch_release(backend);
    if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of expert_routing_metadata");
    return gptoss_status_success;
}

extern "C" enum gptoss_status gptoss_cuda_f32_scatter(gptoss_backend_t backend,
                                                      const struct gptoss_f32_scatter_args* args) {
    const uint64_t P = (uint64_t) args->num_tokens * args->num_active_experts;
    const unsigned blocks = (unsigned) (P < 65535u ? P : 65535u);
    scatter_kernel<<<blocks, channel_threads(args->num_channels), 0, gptoss_cuda_stream(backend)>>>(
        args->input, args->expert_ids, args->expert_offsets, args->intra_expert_offsets, args->output,
        args->num_channels, args->num_tokens, args->num_active_experts, args->num_experts,
        gptoss_cuda_error_word(backend));
    GPTOSS_CUDA_LAUNCHED("f32_scatter");
    return gptoss_status_success;
}

extern "C" enum gptoss_status gptoss_cuda_f32_gather_and_accumulate(
    gptoss_backend_t backend, const struct gptoss_f32_gather_and_accumulate_args* args) {
    const unsigned blocks = args->num_tokens < 65535u ? args->num_tokens : 65535u;
    gather_accumulate_kernel<<<blocks, channel_threads(args->num_channels), 0, gptoss_cuda_stream(backend)>>>(
        args->input, args->expert_ids, args->expert_scores, args->expert_offsets, args->intra_expert_offsets,
        args->residual, args->num_channels, args->num_tokens, args->num_active_experts, args->num_experts,
        gptoss_cuda_error_word(backend));
    GPTOSS_CUDA_LAUNCHED("f32_gather_and_accumulate");
    return gptoss_status_success;
}

extern "C" enum gptoss_status gptoss_cuda_f32_accumulate(gptoss_backend_t backend,
                                                         const struct gptoss_f32_accumulate_args* args) {
    const uint64_t total = (uint64_t) args->num_tokens * args->num_channels;
    uint64_t blocks = (total + 255) / 256;
    const uint64_t cap = (uint64_t) gptoss_cuda_num_sms(backend) * 16;
    if (blocks > cap) blocks = cap;
    const cudaError_t err = gptoss_cuda_launch_pdl(backend, accumulate_kernel, dim3((unsigned) blocks), dim3(256), 0,
                                                   args->input, args->expert_scores, args->residual, args->num_channels,
                                                   args->num_tokens, args->num_active_experts);
    if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of f32_accumulate");
    return gptoss_status_success;
}
