// gemv_one_lab: the order-one GEMV of many tokens, a kernel lab (not part of the library or
// the tests).
//
// In the default batch-invariant mode (`on`) a decode step of S streams runs its qkv,
// attention output and unembedding in row order one: every token's sums as the one-token
// region kernel makes them (src/cuda/matmul.cu: gemv_bf16_vec_kernel<8, 2, ..., REGION_ORDER,
// TILES_X>; per row and token, lane l adds the 8-term dot products of chunks l, l + 32, ...
// in order, then the warp's butterfly). At 64 streams of 20b these are a third of the step
// (H100: unembedding 5.7 ms a call, ~12 TFLOP/s f32 of a ~60 peak), and the twenty-second
// sitting found that fewer instructions (4 rows a warp, weights widened once) did not make
// the kernel faster. This lab times other shapes of the same sums, each checked bit-equal to
// the library's call:
//
//   - TT tokens a tile, RPW rows a warp (the activations of a chunk serve RPW rows, the
//     weights of a chunk TT tokens);
//   - activations read from global memory (through L1) or staged once a block in shared
//     memory (two planes of 16 bytes a chunk: conflict-free reads);
//   - global variants also with the largest L1 carveout (the engine's MoE kernels leave the
//     SM with a large shared-memory carveout);
//   - the weights widened once a chunk (behind an opaque move: left to the compiler the
//     widening is repeated for every token) and the next chunk's weights loaded before the
//     current one is used.
//
//   gemv_one_lab [--iters N] [--tokens T]
//
// Its first run (twenty-third sitting, H100; docs/CUDA_NOTES.md) made the 8 x 4 shared-memory
// variant the library's kernel for C <= 3,200 (gemv_one_staged_kernel): the "library" row
// is that kernel since, for the qkv and the unembedding.
//
// Prints per shape (gpt-oss-20b: qkv, attention output, unembedding) and variant: bit-equal
// to the library or not, us per call (best of N rounds of 8 calls), GB/s of weights and
// TFLOP/s.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <gptoss/kernels.h>

#include "cuda/matmul.cuh" /* gptoss_d_ld_stream, gptoss_d_warp_sum (common.cuh) */

#include "lab_check.h"

namespace {

constexpr int kWarps = 8;

__device__ __forceinline__ float opaque_f32(uint32_t bits) {
    float f;
    asm volatile("mov.b32 %0, %1;" : "=f"(f) : "r"(bits));
    return f;
}

__device__ __forceinline__ void widen(uint4 w, float (&f)[8]) {
    f[0] = opaque_f32(w.x << 16);
    f[1] = opaque_f32(w.x & 0xFFFF0000u);
    f[2] = opaque_f32(w.y << 16);
    f[3] = opaque_f32(w.y & 0xFFFF0000u);
    f[4] = opaque_f32(w.z << 16);
    f[5] = opaque_f32(w.z & 0xFFFF0000u);
    f[6] = opaque_f32(w.w << 16);
    f[7] = opaque_f32(w.w & 0xFFFF0000u);
}

/* gptoss_d_dot8 on widened weights, from acc (from 0: the region kernel's chunk sum) */
__device__ __forceinline__ float dot8w(const float (&w)[8], float4 a, float4 b, float acc) {
    acc = fmaf(a.x, w[0], acc);
    acc = fmaf(a.y, w[1], acc);
    acc = fmaf(a.z, w[2], acc);
    acc = fmaf(a.w, w[3], acc);
    acc = fmaf(b.x, w[4], acc);
    acc = fmaf(b.y, w[5], acc);
    acc = fmaf(b.z, w[6], acc);
    acc = fmaf(b.w, w[7], acc);
    return acc;
}

/* Block (tile x, row block y): kWarps warps of RPW rows, TT tokens. XS: the tile's
 * activations in shared memory, [TT][2][nchunks] float4. */
template <int TT, int RPW, bool XS>
__global__ void __launch_bounds__(kWarps * 32) one_kernel(const float* __restrict__ x, const uint16_t* __restrict__ w,
                                                          const uint16_t* __restrict__ bias, float* __restrict__ out,
                                                          uint32_t T, uint32_t C, uint32_t R, bool region) {
    extern __shared__ float4 xs[];
    const uint32_t lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const uint32_t t0 = blockIdx.x * TT, nt = min((uint32_t) TT, T - t0), nchunks = C / 8;
    const uint32_t row0 = (blockIdx.y * kWarps + warp) * RPW;
    if constexpr (XS) {
        for (uint32_t t = 0; t < nt; t++) {
            const float4* xp = (const float4*) (x + (size_t) (t0 + t) * C);
            for (uint32_t c = threadIdx.x; c < nchunks; c += blockDim.x) {
                xs[(2 * t) * nchunks + c] = __ldg(xp + 2 * c);
                xs[(2 * t + 1) * nchunks + c] = __ldg(xp + 2 * c + 1);
            }
        }
        __syncthreads();
    }
    if (row0 >= R) return;
    const uint4* wrow[RPW];
#pragma unroll
    for (int rr = 0; rr < RPW; rr++) wrow[rr] = (const uint4*) (w + (size_t) min(row0 + rr, R - 1) * C);
    const float4* xrow[TT];
#pragma unroll
    for (int t = 0; t < TT; t++) xrow[t] = (const float4*) (x + (size_t) (t0 + min((uint32_t) t, nt - 1)) * C);
    float acc[RPW][TT];
#pragma unroll
    for (int rr = 0; rr < RPW; rr++)
#pragma unroll
        for (int t = 0; t < TT; t++) acc[rr][t] = 0.0f;
    uint4 next[RPW];
#pragma unroll
    for (int rr = 0; rr < RPW; rr++) next[rr] = lane < nchunks ? gptoss_d_ld_stream(wrow[rr] + lane) : make_uint4(0, 0, 0, 0);
    for (uint32_t c = lane; c < nchunks; c += 32) {
        float wf[RPW][8];
#pragma unroll
        for (int rr = 0; rr < RPW; rr++) widen(next[rr], wf[rr]);
        if (c + 32 < nchunks) {
#pragma unroll
            for (int rr = 0; rr < RPW; rr++) next[rr] = gptoss_d_ld_stream(wrow[rr] + c + 32);
        }
#pragma unroll
        for (int t = 0; t < TT; t++) {
            if ((uint32_t) t < nt) {
                float4 a, b;
                if constexpr (XS) {
                    a = xs[(2 * t) * nchunks + c];
                    b = xs[(2 * t + 1) * nchunks + c];
                } else {
                    a = __ldg(xrow[t] + 2 * c);
                    b = __ldg(xrow[t] + 2 * c + 1);
                }
#pragma unroll
                for (int rr = 0; rr < RPW; rr++) {
                    acc[rr][t] = region ? acc[rr][t] + dot8w(wf[rr], a, b, 0.0f) : dot8w(wf[rr], a, b, acc[rr][t]);
                }
            }
        }
    }
    __syncwarp();
#pragma unroll
    for (int rr = 0; rr < RPW; rr++) {
#pragma unroll
        for (int t = 0; t < TT; t++) {
            const float v = gptoss_d_warp_sum(acc[rr][t]);
            const uint32_t r = row0 + rr;
            if (lane == (uint32_t) ((rr * TT + t) & 31) && (uint32_t) t < nt && r < R) {
                out[(size_t) (t0 + t) * R + r] = bias != nullptr ? v + gptoss_bf16_to_f32(bias[r]) : v;
            }
        }
    }
}

struct Variant {
    const char* name;
    int tt, rpw;
    bool xs, max_l1;
    /* the kernel's attributes for this variant; false where its shared memory does not fit */
    bool (*prepare)(uint32_t C, bool max_l1);
    void (*launch)(const float*, const uint16_t*, const uint16_t*, float*, uint32_t, uint32_t, uint32_t, bool,
                   cudaStream_t);
};

template <int TT, bool XS>
size_t smem_bytes(uint32_t C) {
    return XS ? (size_t) TT * 2 * (C / 8) * 16 : 0;
}

template <int TT, int RPW, bool XS>
bool prepare(uint32_t C, bool max_l1) {
    int dev = 0, max_smem = 0;
    CK(cudaGetDevice(&dev));
    CK(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    const size_t smem = smem_bytes<TT, XS>(C);
    if (smem > (size_t) max_smem) return false;
    auto k = one_kernel<TT, RPW, XS>;
    CK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem));
    CK(cudaFuncSetAttribute(k, cudaFuncAttributePreferredSharedMemoryCarveout,
                            max_l1 ? (int) cudaSharedmemCarveoutMaxL1 : (int) cudaSharedmemCarveoutDefault));
    return true;
}

template <int TT, int RPW, bool XS>
void launch(const float* x, const uint16_t* w, const uint16_t* b, float* out, uint32_t T, uint32_t C, uint32_t R,
            bool region, cudaStream_t stream) {
    const uint32_t row_blocks = ((R + RPW - 1) / RPW + kWarps - 1) / kWarps;
    one_kernel<TT, RPW, XS><<<dim3((T + TT - 1) / TT, row_blocks), kWarps * 32, smem_bytes<TT, XS>(C), stream>>>(
        x, w, b, out, T, C, R, region);
    CK(cudaGetLastError());
}

#define VARIANT(name, TT, RPW, XS, L1) {name, TT, RPW, XS, L1, prepare<TT, RPW, XS>, launch<TT, RPW, XS>}
const Variant kVariants[] = {
    VARIANT("tile 8 tok x 2 rows, x global", 8, 2, false, false),
    VARIANT("tile 8 x 2, x global, max L1", 8, 2, false, true),
    VARIANT("tile 8 x 4, x global", 8, 4, false, false),
    VARIANT("tile 8 x 4, x global, max L1", 8, 4, false, true),
    VARIANT("tile 16 x 2, x global, max L1", 16, 2, false, true),
    VARIANT("tile 8 x 2, x in smem", 8, 2, true, false),
    VARIANT("tile 8 x 4, x in smem", 8, 4, true, false),
    VARIANT("tile 16 x 2, x in smem", 16, 2, true, false),
    VARIANT("tile 16 x 4, x in smem", 16, 4, true, false),
};
#undef VARIANT

}  // namespace

int main(int argc, char** argv) {
    int iters = 5;
    uint32_t T = 64;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc) {
            iters = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--tokens") == 0 && i + 1 < argc) {
            T = (uint32_t) atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: gemv_one_lab [--iters N] [--tokens T]\n");
            return 2;
        }
    }
    if (iters < 1 || T < 9 || T > 1024) {
        fprintf(stderr, "gemv_one_lab: --iters >= 1, --tokens in 9..1024 (the library's order-one tiles)\n");
        return 2;
    }
    cudaDeviceProp pr;
    CK(cudaGetDeviceProperties(&pr, 0));
    printf("gemv_one_lab: %s, %d SMs, %u tokens\n", pr.name, pr.multiProcessorCount, T);
    cudaStream_t stream;
    CK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    gptoss_backend_t be;
    GK(gptoss_backend_create_cuda(0, stream, &be));
    GK(gptoss_backend_set_row_order(be, gptoss_row_order_one));
    /* region: the library's order for the shape (the region kernel's where it applies to one
     * token: not at the unembedding's 201,088 rows, whose one-token call is the vector
     * kernel's single chain) */
    struct Shape {
        const char* name;
        uint32_t C, R;
        bool bias, region;
    };
    const Shape shapes[] = {{"qkv 2880 -> 5120", 2880, 5120, true, true},
                            {"attn-out 4096 -> 2880", 4096, 2880, true, true},
                            {"unembedding 2880 -> 201088", 2880, 201088, false, false}};
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    uint64_t seed = 1;
    int failures = 0;
    for (const Shape& sh : shapes) {
        const uint32_t C = sh.C, R = sh.R;
        uint16_t *w, *b = nullptr;
        float *x, *out_lib, *out_lab;
        GK(gptoss_backend_alloc(be, (size_t) R * C * 2, (void**) &w));
        if (sh.bias) GK(gptoss_backend_alloc(be, (size_t) R * 2, (void**) &b));
        GK(gptoss_backend_alloc(be, (size_t) T * C * 4, (void**) &x));
        GK(gptoss_backend_alloc(be, (size_t) T * R * 4, (void**) &out_lib));
        GK(gptoss_backend_alloc(be, (size_t) T * R * 4, (void**) &out_lab));
        GK(gptoss_bf16_fill_random(be, (gptoss_bf16*) w, (size_t) R * C, seed++, 0, -1.0f / sqrtf((float) C),
                                   1.0f / sqrtf((float) C)));
        if (b != nullptr) GK(gptoss_bf16_fill_random(be, (gptoss_bf16*) b, R, seed++, 0, -0.05f, 0.05f));
        GK(gptoss_f32_fill_random(be, x, (size_t) T * C, seed++, 0, -1.0f, 1.0f));
        GK(gptoss_f32_bf16w_matmul(be, x, (const gptoss_bf16*) w, (const gptoss_bf16*) b, out_lib, T, C, R));
        GK(gptoss_backend_synchronize(be));
        std::vector<float> hlib((size_t) T * R), hlab(hlib.size());
        CK(cudaMemcpy(hlib.data(), out_lib, hlib.size() * 4, cudaMemcpyDeviceToHost));
        const double bytes = (double) R * C * 2, flops = 2.0 * T * R * C;
        printf("\n%s (%.1f MB of weights, %.1f GFLOP a call)\n", sh.name, bytes / 1e6, flops / 1e9);
        auto time_it = [&](const char* name, auto&& call) {
            float best = 1e30f;
            for (int it = 0; it < iters; it++) {
                CK(cudaEventRecord(e0, stream));
                for (int c = 0; c < 8; c++) call();
                CK(cudaEventRecord(e1, stream));
                CK(cudaEventSynchronize(e1));
                float ms;
                CK(cudaEventElapsedTime(&ms, e0, e1));
                best = std::min(best, ms);
            }
            const double us = best * 1e3 / 8;
            printf("  %-34s %9.1f us, %6.0f GB/s of weights, %5.1f TFLOP/s", name, us, bytes / (us * 1e-6) / 1e9,
                   flops / (us * 1e-6) / 1e12);
        };
        time_it("library (row order one)", [&] {
            GK(gptoss_f32_bf16w_matmul(be, x, (const gptoss_bf16*) w, (const gptoss_bf16*) b, out_lab, T, C, R));
        });
        printf("\n");
        for (const Variant& v : kVariants) {
            CK(cudaMemset(out_lab, 0xFF, (size_t) T * R * 4)); /* NaN: unwritten outputs differ */
            if (!v.prepare(C, v.max_l1)) {
                printf("  %-34s (does not fit: %zu bytes of shared memory)\n", v.name,
                       (size_t) v.tt * 2 * (C / 8) * 16);
                continue;
            }
            v.launch(x, w, b, out_lab, T, C, R, sh.region, stream);
            CK(cudaStreamSynchronize(stream));
            CK(cudaMemcpy(hlab.data(), out_lab, hlab.size() * 4, cudaMemcpyDeviceToHost));
            size_t diff = 0;
            for (size_t i = 0; i < hlab.size(); i++) diff += memcmp(&hlab[i], &hlib[i], 4) != 0;
            failures += diff != 0;
            time_it(v.name, [&] { v.launch(x, w, b, out_lab, T, C, R, sh.region, stream); });
            printf("  %s\n", diff == 0 ? "bit-equal" : "NOT bit-equal");
            if (diff != 0) printf("    %zu of %zu outputs differ from the library's\n", diff, hlab.size());
        }
        GK(gptoss_backend_free(be, w));
        if (b != nullptr) GK(gptoss_backend_free(be, b));
        GK(gptoss_backend_free(be, x));
        GK(gptoss_backend_free(be, out_lib));
        GK(gptoss_backend_free(be, out_lab));
    }
    gptoss_backend_release(be);
    printf("\ngemv_one_lab: %s\n", failures == 0 ? "every variant bit-equal to the library" : "SOME VARIANTS DIFFER");
    return failures == 0 ? 0 : 1;
}
