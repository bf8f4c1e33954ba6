// region_ring_lab: the one-token dense GEMV streamed through a TMA ring (issue 14), a kernel
// lab (not part of the library or the tests).
//
// The decode step is the sum of its kernels (tools/ncu_decode.py, twenty-third sitting: 2,113
// us of kernels a token against the engine's 2,090 us a step on an H100), and its two dense
// GEMVs stream at 61-64 % of copy (qkv 15.4 us, attention output 12.9 us a call), where a
// chain of plain kernels that only read the same bytes reaches 86 % (bench/lab/step_floor,
// design A). The library's region kernel (src/cuda/matmul.cu, gemv_region_kernel) keeps 4
// slots of 2 rows a thread in registers (64 registers, 4 blocks an SM): its first batch goes
// out before the PDL wait, the second only after the first is summed, so a second round trip
// is exposed, and at most ~128 KB an SM is in flight.
//
// Here each block streams its contiguous run of weight rows through a ring of STAGES shared-
// memory stages of SB bytes, filled by one thread with cp.async.bulk (TMA, one instruction a
// stage, completion on an mbarrier); the first STAGES copies go out before griddepcontrol.wait
// and each stage is refilled as soon as the block has summed it. Each 16-byte chunk's dot
// product (from zero) goes to the same partial-sum array as the region kernel's, and the rows
// are summed the same way (lane-strided in column order, then the warp's butterfly), so every
// output is bit-equal to the library's (checked).
//
//   region_ring_lab [--iters N]
//
// Prints per shape (20b qkv 2880 -> 5120, attention output 4096 -> 2880 + residual) and
// variant (stages x stage bytes, blocks an SM): bit-equal or not, us a call (24 calls back to
// back, over kCopies copies of the weights in turn so that they come from memory, not from the
// 50 MB L2 of an H100) and GB/s; then chains of 24 layers (qkv then attention output, as the
// step, each layer on the next copy) captured in a CUDA graph with programmatic dependent
// launch: the library's pair, each variant's, and each variant's qkv or attention output alone
// beside the library's other.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <gptoss/kernels.h>

#include "cuda/matmul.cuh" /* gptoss_d_dot8, gptoss_d_warp_sum, gptoss_d_pdl_* (common.cuh) */

#include "lab_check.h"

namespace {

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return (uint32_t) __cvta_generic_to_shared(p); }

__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}

__device__ __forceinline__ void mbar_expect_tx(uint64_t* bar, uint32_t bytes) {
    asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1;\n}" ::"r"(smem_u32(bar)),
                 "r"(bytes)
                 : "memory");
}

__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
    asm volatile(
        "{\n.reg .pred p;\nWAIT_%=:\nmbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n@!p bra WAIT_%=;\n}" ::"r"(
            smem_u32(bar)),
        "r"(parity)
        : "memory");
}

/* one bulk copy global -> this block's shared memory, completing on bar */
__device__ __forceinline__ void bulk_g2s(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     smem_u32(dst)),
                 "l"(src), "r"(bytes), "r"(smem_u32(bar))
                 : "memory");
}

constexpr int kThreads = 256;
constexpr int kCopies = 3; /* of each shape's weights, read in turn */

template <int STAGES, int SB>
size_t ring_smem_bytes(uint32_t C, uint32_t RB) {
    return (size_t) STAGES * SB + 128 + (size_t) C * 4 + (size_t) RB * (C / 8) * 4 + (size_t) RB * 4 + 16;
}

/* Block b: weight rows [b RB, b RB + RB). Needs C % 8 == 0, C / 8 >= 256, SB % 4096 == 0. */
template <bool ADD, int STAGES, int SB>
__global__ void __launch_bounds__(kThreads) ring_kernel(const float* __restrict__ x, const uint16_t* __restrict__ w,
                                                        const uint16_t* __restrict__ bias, float* __restrict__ out,
                                                        uint32_t C, uint32_t R, uint32_t RB) {
    static_assert(SB % (16 * kThreads) == 0, "a stage is whole rounds of the block's chunks");
    extern __shared__ __align__(128) uint8_t sm[];
    const uint32_t tid = threadIdx.x, nchunks = C / 8;
    uint4* ring = (uint4*) sm;
    uint64_t* full = (uint64_t*) (sm + (size_t) STAGES * SB);
    float4* xlo = (float4*) (sm + (size_t) STAGES * SB + 128);
    float4* xhi = xlo + nchunks;
    float* part = (float*) (xhi + nchunks);
    float* sbias = part + (size_t) RB * nchunks;
    const uint32_t r0 = blockIdx.x * RB, rows = min(RB, R - r0);
    const uint8_t* src = (const uint8_t*) (w + (size_t) r0 * C);
    const uint32_t total = rows * C * 2, nst = (total + SB - 1) / SB;
    auto issue = [&](uint32_t k) {
        const uint32_t s = k % STAGES, bytes = min((uint32_t) SB, total - k * SB);
        mbar_expect_tx(&full[s], bytes);
        bulk_g2s(ring + (size_t) s * (SB / 16), src + (size_t) k * SB, bytes, &full[s]);
    };
    if (tid == 0) {
        for (int s = 0; s < STAGES; s++) mbar_init(&full[s], 1);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    gptoss_d_pdl_trigger();
    /* the weights are never written by a kernel: the ring fills before the wait */
    if (tid == 0) {
        for (uint32_t k = 0; k < (uint32_t) STAGES && k < nst; k++) issue(k);
    }
    if (bias != nullptr && tid < rows) sbias[tid] = gptoss_bf16_to_f32(bias[r0 + tid]);
    gptoss_d_pdl_wait();
    const float4* x4 = (const float4*) x;
    for (uint32_t c = tid; c < nchunks; c += kThreads) {
        xlo[c] = __ldg(x4 + 2 * c);
        xhi[c] = __ldg(x4 + 2 * c + 1);
    }
    __syncthreads();
    uint32_t g = tid, c = tid % nchunks; /* chunk g of the block's run: row g / nchunks, column chunk c */
    for (uint32_t k = 0; k < nst; k++) {
        const uint32_t s = k % STAGES;
        mbar_wait(&full[s], (k / STAGES) & 1u);
        const uint32_t base = k * (SB / 16), end = base + min((uint32_t) SB, total - k * SB) / 16;
        const uint4* st = ring + (size_t) s * (SB / 16);
        for (; g < end; g += kThreads) {
            part[g] = gptoss_d_dot8(st[g - base], xlo[c], xhi[c], 0.0f);
            c += kThreads;
            if (c >= nchunks) c -= nchunks;
        }
        __syncthreads(); /* every thread is done with stage s */
        if (tid == 0 && k + STAGES < nst) {
            asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
            issue(k + STAGES);
        }
    }
    /* the region kernel's sums of each row's partials */
    const uint32_t warp = tid >> 5, lane = tid & 31u;
    for (uint32_t u = warp; 2 * u < rows; u += kThreads / 32) {
        float sum[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float a = 0.0f;
            for (uint32_t cc = lane; cc < nchunks; cc += 32) a += part[(2 * u + r) * nchunks + cc];
            __syncwarp();
            sum[r] = gptoss_d_warp_sum(a);
        }
        if (lane == 0) {
            const uint32_t row = r0 + 2 * u;
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const float v = bias != nullptr ? sum[r] + sbias[2 * u + r] : sum[r];
                out[row + r] = ADD ? out[row + r] + v : v;
            }
        }
    }
}

struct Variant {
    const char* name;
    int stages, sb, bps;
    size_t (*smem)(uint32_t C, uint32_t RB);
    void* fn[2]; /* ADD false, true */
};

#define VARIANT(ST, SB, BPS) \
    {#ST " x " #SB " B, " #BPS "/SM", ST, SB, BPS, ring_smem_bytes<ST, SB>, {(void*) ring_kernel<false, ST, SB>, (void*) ring_kernel<true, ST, SB>}}
const Variant kVariants[] = {
    /* bytes in flight an SM: 64 KB, then 96 KB (four ways), then 128 KB (two); the region
     * kernel has up to 128 KB (4 slots x 2 rows x 16 bytes x 256 threads x 4 blocks) */
    VARIANT(4, 4096, 4),  VARIANT(6, 4096, 4),  VARIANT(4, 8192, 3), VARIANT(8, 4096, 3),
    VARIANT(3, 16384, 2), VARIANT(6, 8192, 2), VARIANT(4, 16384, 2), VARIANT(8, 8192, 2),
};
#undef VARIANT

cudaStream_t g_stream;
int g_sms;

/* rows a block (even) for a variant's blocks an SM */
uint32_t rows_per_block(const Variant& v, uint32_t R) {
    const uint32_t grid = (uint32_t) (v.bps * g_sms);
    uint32_t RB = (R + grid - 1) / grid;
    return RB + (RB & 1u);
}

bool prepare(const Variant& v, uint32_t C, uint32_t R, int* bps_out) {
    const uint32_t RB = rows_per_block(v, R);
    const size_t smem = v.smem(C, RB);
    int dev, max_smem;
    CK(cudaGetDevice(&dev));
    CK(cudaDeviceGetAttribute(&max_smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    if (smem > (size_t) max_smem) return false;
    for (int a = 0; a < 2; a++) {
        CK(cudaFuncSetAttribute(v.fn[a], cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem));
    }
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(bps_out, v.fn[0], kThreads, smem));
    return true;
}

void launch(const Variant& v, bool add, const float* x, const uint16_t* w, const uint16_t* b, float* out, uint32_t C,
            uint32_t R) {
    const uint32_t RB = rows_per_block(v, R);
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((R + RB - 1) / RB);
    cfg.blockDim = dim3(kThreads);
    cfg.dynamicSmemBytes = v.smem(C, RB);
    cfg.stream = g_stream;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    void* args[] = {(void*) &x, (void*) &w, (void*) &b, (void*) &out, (void*) &C, (void*) &R, (void*) &RB};
    CK(cudaLaunchKernelExC(&cfg, v.fn[add ? 1 : 0], args));
}

}  // namespace

int main(int argc, char** argv) {
    int iters = 10;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc) {
            iters = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: region_ring_lab [--iters N]\n");
            return 2;
        }
    }
    if (iters < 1) iters = 1;
    cudaDeviceProp pr;
    CK(cudaGetDeviceProperties(&pr, 0));
    g_sms = pr.multiProcessorCount;
    CK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
    gptoss_backend_t be;
    GK(gptoss_backend_create_cuda(0, g_stream, &be));
    printf("region_ring_lab: %s, %d SMs\n", pr.name, g_sms);

    struct Shape {
        const char* name;
        uint32_t C, R;
        bool add;
        uint16_t *w[kCopies], *b;
        float *x, *out_lib, *out_lab;
    };
    Shape shapes[] = {{"qkv 2880 -> 5120", 2880, 5120, false}, {"attn-out 4096 -> 2880 (+ residual)", 4096, 2880, true}};
    uint64_t seed = 7;
    for (Shape& sh : shapes) {
        for (int k = 0; k < kCopies; k++) GK(gptoss_backend_alloc(be, (size_t) sh.R * sh.C * 2, (void**) &sh.w[k]));
        GK(gptoss_backend_alloc(be, (size_t) sh.R * 2, (void**) &sh.b));
        GK(gptoss_backend_alloc(be, (size_t) sh.C * 4, (void**) &sh.x));
        GK(gptoss_backend_alloc(be, (size_t) sh.R * 4, (void**) &sh.out_lib));
        GK(gptoss_backend_alloc(be, (size_t) sh.R * 4, (void**) &sh.out_lab));
        for (int k = 0; k < kCopies; k++) {
            GK(gptoss_bf16_fill_random(be, (gptoss_bf16*) sh.w[k], (size_t) sh.R * sh.C, seed + (uint64_t) k, 0,
                                       -1.0f / sqrtf((float) sh.C), 1.0f / sqrtf((float) sh.C)));
        }
        seed += kCopies;
        GK(gptoss_bf16_fill_random(be, (gptoss_bf16*) sh.b, sh.R, seed++, 0, -0.05f, 0.05f));
        GK(gptoss_f32_fill_random(be, sh.x, sh.C, seed++, 0, -1.0f, 1.0f));
    }
    auto lib_call = [&](Shape& sh, float* out, int k) {
        const gptoss_bf16* w = (const gptoss_bf16*) sh.w[k % kCopies];
        if (sh.add) GK(gptoss_f32_bf16w_matmul_add(be, sh.x, w, (const gptoss_bf16*) sh.b, out, 1, sh.C, sh.R));
        else GK(gptoss_f32_bf16w_matmul(be, sh.x, w, (const gptoss_bf16*) sh.b, out, 1, sh.C, sh.R));
    };
    auto lab_call = [&](const Variant& v, Shape& sh, float* out, int k) {
        launch(v, sh.add, sh.x, sh.w[k % kCopies], sh.b, out, sh.C, sh.R);
    };
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    auto best_us = [&](int calls, auto&& body) {
        float best = 1e30f;
        for (int it = 0; it < iters; it++) {
            CK(cudaEventRecord(e0, g_stream));
            body();
            CK(cudaEventRecord(e1, g_stream));
            CK(cudaEventSynchronize(e1));
            float ms;
            CK(cudaEventElapsedTime(&ms, e0, e1));
            best = std::min(best, ms);
        }
        return best * 1e3 / calls;
    };
    int failures = 0;
    std::vector<int> usable(sizeof kVariants / sizeof kVariants[0], 1);
    for (Shape& sh : shapes) {
        const double bytes = (double) sh.R * sh.C * 2;
        std::vector<float> init(sh.R), ref(sh.R), got(sh.R);
        for (uint32_t i = 0; i < sh.R; i++) init[i] = 0.25f * (float) ((i * 2654435761u) % 1000) / 1000.0f - 0.1f;
        /* the library's bits (matmul_add: onto the same initial residual) */
        CK(cudaMemcpy(sh.out_lib, init.data(), sh.R * 4, cudaMemcpyHostToDevice));
        lib_call(sh, sh.out_lib, 0);
        GK(gptoss_backend_synchronize(be));
        CK(cudaMemcpy(ref.data(), sh.out_lib, sh.R * 4, cudaMemcpyDeviceToHost));
        printf("\n%s (%.1f MB of weights)\n", sh.name, bytes / 1e6);
        const double lib_us = best_us(24, [&] {
            for (int c = 0; c < 24; c++) lib_call(sh, sh.out_lab, c);
        });
        printf("  %-26s %8.2f us a call, %6.0f GB/s\n", "library (region kernel)", lib_us, bytes / (lib_us * 1e-6) / 1e9);
        for (size_t vi = 0; vi < sizeof kVariants / sizeof kVariants[0]; vi++) {
            const Variant& v = kVariants[vi];
            int bps = 0;
            if (!prepare(v, sh.C, sh.R, &bps)) {
                printf("  %-26s (does not fit)\n", v.name);
                usable[vi] = 0;
                continue;
            }
            CK(cudaMemcpy(sh.out_lab, init.data(), sh.R * 4, cudaMemcpyHostToDevice));
            lab_call(v, sh, sh.out_lab, 0);
            CK(cudaStreamSynchronize(g_stream));
            CK(cudaMemcpy(got.data(), sh.out_lab, sh.R * 4, cudaMemcpyDeviceToHost));
            size_t diff = 0;
            for (uint32_t i = 0; i < sh.R; i++) diff += memcmp(&got[i], &ref[i], 4) != 0;
            failures += diff != 0;
            const double us = best_us(24, [&] {
                for (int c = 0; c < 24; c++) lab_call(v, sh, sh.out_lab, c);
            });
            printf("  %-26s %8.2f us a call, %6.0f GB/s, %d blocks/SM resident, %s\n", v.name, us,
                   bytes / (us * 1e-6) / 1e9, bps, diff == 0 ? "bit-equal" : "NOT bit-equal");
            if (diff != 0) printf("    %zu of %u outputs differ\n", diff, sh.R);
        }
    }
    /* a chain of 24 layers as the step has them: qkv, then the attention output */
    printf("\nchain of 24 x (qkv, attention output) in a CUDA graph with PDL:\n");
    auto chain_us = [&](auto&& pair) {
        cudaGraph_t graph;
        cudaGraphExec_t exec;
        CK(cudaStreamBeginCapture(g_stream, cudaStreamCaptureModeThreadLocal));
        for (int l = 0; l < 24; l++) pair(l);
        CK(cudaStreamEndCapture(g_stream, &graph));
        CK(cudaGraphInstantiate(&exec, graph, 0));
        CK(cudaGraphLaunch(exec, g_stream));
        CK(cudaStreamSynchronize(g_stream));
        const double us = best_us(24, [&] { CK(cudaGraphLaunch(exec, g_stream)); });
        CK(cudaGraphExecDestroy(exec));
        CK(cudaGraphDestroy(graph));
        return us;
    };
    const double pair_bytes = (double) shapes[0].R * shapes[0].C * 2 + (double) shapes[1].R * shapes[1].C * 2;
    const double lib_pair = chain_us([&](int l) {
        lib_call(shapes[0], shapes[0].out_lab, l);
        lib_call(shapes[1], shapes[1].out_lab, l);
    });
    printf("  %-26s %8.2f us a layer, %6.0f GB/s\n", "library", lib_pair, pair_bytes / (lib_pair * 1e-6) / 1e9);
    for (size_t vi = 0; vi < sizeof kVariants / sizeof kVariants[0]; vi++) {
        if (!usable[vi]) continue;
        const Variant& v = kVariants[vi];
        int bps;
        (void) prepare(v, shapes[0].C, shapes[0].R, &bps);
        (void) prepare(v, shapes[1].C, shapes[1].R, &bps);
        /* the larger of the two shapes' shared memory is the attribute (set per shape above) */
        CK(cudaFuncSetAttribute(v.fn[0], cudaFuncAttributeMaxDynamicSharedMemorySize,
                                (int) v.smem(shapes[0].C, rows_per_block(v, shapes[0].R))));
        CK(cudaFuncSetAttribute(v.fn[1], cudaFuncAttributeMaxDynamicSharedMemorySize,
                                (int) v.smem(shapes[1].C, rows_per_block(v, shapes[1].R))));
        const double us = chain_us([&](int l) {
            lab_call(v, shapes[0], shapes[0].out_lab, l);
            lab_call(v, shapes[1], shapes[1].out_lab, l);
        });
        const double us_q = chain_us([&](int l) {
            lab_call(v, shapes[0], shapes[0].out_lab, l);
            lib_call(shapes[1], shapes[1].out_lab, l);
        });
        const double us_o = chain_us([&](int l) {
            lib_call(shapes[0], shapes[0].out_lab, l);
            lab_call(v, shapes[1], shapes[1].out_lab, l);
        });
        printf("  %-26s %8.2f us a layer, %6.0f GB/s; its qkv alone %.2f, its attention output alone %.2f\n", v.name,
               us, pair_bytes / (us * 1e-6) / 1e9, us_q, us_o);
    }
    for (Shape& sh : shapes) {
        for (int k = 0; k < kCopies; k++) GK(gptoss_backend_free(be, sh.w[k]));
        GK(gptoss_backend_free(be, sh.b));
        GK(gptoss_backend_free(be, sh.x));
        GK(gptoss_backend_free(be, sh.out_lib));
        GK(gptoss_backend_free(be, sh.out_lab));
    }
    gptoss_backend_release(be);
    printf("\nregion_ring_lab: %s\n", failures == 0 ? "every variant bit-equal to the library" : "SOME VARIANTS DIFFER");
    return failures == 0 ? 0 : 1;
}
