// wgmma_latency_lab: what bounds a k-stage of the wgmma prefill GEMMs (issue 15; not part of
// the library or the tests).
//
// The eleventh sitting measured (H100, bench/lab/wgmma_lab.cu) that a k-stage of 64 columns
// takes ~1.5 us in a lone block of gptoss_wg::gemm_kernel (137 tokens x 2,888 -> 200: six
// blocks, 46 stages, 68 us) and ~2.1 us at the qkv pp512 shape (one wave of 128 blocks), where
// the stage's tensor work is ~0.7 us; warp-specialising the loads did not help. This lab
// separates the parts of a stage:
//
//   1. MMA chains alone (operands resident in shared memory, no loads, no barriers): one
//      warpgroup issues a stage's 8 wgmmas (4 k-steps x 2 planes) m64nBNk16, commits and
//      waits for all but WAIT groups, over many stages; clock64 cycles per stage against
//      the tensor pipe's 4 BN cycles (2,048 bf16 multiply-adds a cycle an SM). H = 2 splits
//      the stage's columns into two halves on separate accumulators, issued alternately (the
//      same products added to each output in the same order: the same bits in a GEMM), so
//      consecutive wgmmas do not depend on each other. With 1 and 2 warpgroups an SM.
//   2. The library's kernel (gemm_kernel<BN, ST>) and the warp-specialised one
//      (gemm_ws_kernel) over K = 16,384 (256 stages) in one block and in one block per SM:
//      us per stage against ST (stages of loads in flight).
//   3. The same ring of cp.async copies and barriers with no MMAs (loads_kernel): us per
//      stage, the load side's share.
//
//   wgmma_latency_lab
//
// Built for sm_90a only (bench/CMakeLists.txt), like wgmma_lab.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "cuda/matmul.cuh" /* gptoss_d_cp_async16_zfill */
#include "cuda/wgmma.cuh"  /* Wgmma, desc_sw128, the kernels */
#include "wgmma_ws.cuh"     /* gemm_ws_kernel */

#include "lab_check.h"

namespace {

using gptoss_wg::BK;
using gptoss_wg::desc_sw128;
using gptoss_wg::NP;

/* Part 1: `stages` stages of 8 x H wgmmas m64n(BN/H)k16 on resident operands. A: the two
 * planes (64 rows of 128 bytes each, 8 KB apart); B: BN rows. */
template <int BN, int H, int WAIT>
__global__ void __launch_bounds__(256) chain_kernel(int stages, long long* cycles, float* sink) {
    constexpr int NH = BN / H;
    extern __shared__ uint8_t smem_raw[];
    const uint32_t raw = (uint32_t) __cvta_generic_to_shared(smem_raw);
    const uint32_t base = (raw + 1023u) & ~1023u;
    uint8_t* p = smem_raw + (base - raw);
    const uint32_t bytes = NP * 64 * 128 + BN * 128;
    for (uint32_t i = threadIdx.x; i < bytes / 4; i += blockDim.x) ((uint32_t*) p)[i] = 0x3C003C00u; /* bf16 2^-7 */
    gptoss_wg::fence_proxy_async();
    __syncthreads();
    const uint32_t a = base, b = base + NP * 64 * 128;
    float acc[H][NH / 2];
#pragma unroll
    for (int h = 0; h < H; h++)
#pragma unroll
        for (int i = 0; i < NH / 2; i++) acc[h][i] = 0.0f;
    const long long t0 = clock64();
    for (int s = 0; s < stages; s++) {
        gptoss_wg::wg_fence();
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
#pragma unroll
            for (int pl = NP - 1; pl >= 0; pl--)
#pragma unroll
                for (int h = 0; h < H; h++)
                    gptoss_wg::Wgmma<NH>::mma(acc[h], desc_sw128(a + pl * 64 * 128 + kk * 32),
                                              desc_sw128(b + h * NH * 128 + kk * 32));
        gptoss_wg::wg_commit();
        gptoss_wg::wg_wait<WAIT>();
    }
    gptoss_wg::wg_wait<0>();
    const long long t1 = clock64();
    float s = 0.0f;
#pragma unroll
    for (int h = 0; h < H; h++) {
        gptoss_wg::fence_regs<NH / 2>(acc[h]);
#pragma unroll
        for (int i = 0; i < NH / 2; i++) s += acc[h][i];
    }
    if (threadIdx.x % 128 == 0) cycles[blockIdx.x * 2 + threadIdx.x / 128] = t1 - t0;
    if (s == 1234.5f) sink[0] = s;
}

/* Part 3: gemm_kernel's ring of copies (the same chunks, swizzle, waits and barriers) with
 * no MMAs */
template <int BN, int ST>
__global__ void __launch_bounds__(256, 1) loads_kernel(const uint16_t* __restrict__ planes, size_t plane_size,
                                                      const uint16_t* __restrict__ W, uint32_t M, uint32_t K,
                                                      uint32_t N, float* sink) {
    constexpr uint32_t kRows = 128, kStage = gptoss_wg::stage_bytes<BN, 2>();
    extern __shared__ uint8_t smem_raw[];
    const uint32_t raw = (uint32_t) __cvta_generic_to_shared(smem_raw);
    const uint32_t base = (raw + 1023u) & ~1023u;
    uint8_t* ring = smem_raw + (base - raw);
    const uint32_t tid = threadIdx.x, m0 = blockIdx.x * kRows, n0 = blockIdx.y * BN, nk = (K + BK - 1) / BK;
    auto issue = [&](uint32_t s) {
        if (s < nk)
            gptoss_wg::copy_dense_stage<BN, kRows>(ring + (size_t) (s % ST) * kStage, planes, plane_size, W, m0, n0,
                                                   M, K, N, s * BK, tid, 256);
        gptoss_d_cp_async_commit();
    };
    uint32_t x = 0;
#pragma unroll
    for (int s = 0; s < ST - 2; s++) issue((uint32_t) s);
    for (uint32_t s = 0; s < nk; s++) {
        gptoss_d_cp_async_wait<ST - 3>();
        __syncthreads();
        issue(s + ST - 2);
        x ^= *(const uint32_t*) (ring + (size_t) (s % ST) * kStage + tid * 16u);
    }
    gptoss_d_cp_async_wait<0>();
    if (x == 0x9E3779B9u) sink[0] = (float) x;
}

cudaStream_t g_stream;
cudaEvent_t g_e0, g_e1;

template <typename F>
float time_us(F&& launch, int reps = 5) {
    float best = 1e30f;
    launch();
    for (int r = 0; r < reps; r++) {
        CK(cudaEventRecord(g_e0, g_stream));
        launch();
        CK(cudaEventRecord(g_e1, g_stream));
        CK(cudaEventSynchronize(g_e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, g_e0, g_e1));
        best = std::min(best, ms);
    }
    return best * 1e3f;
}

long long* g_cycles;
float* g_sink;
int g_sms;

template <int BN, int H, int WAIT>
void chain_row() {
    constexpr int stages = 512;
    const size_t smem = NP * 64 * 128 + BN * 128 + 1024;
    CK(cudaFuncSetAttribute(chain_kernel<BN, H, WAIT>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem));
    printf("  m64n%-3d x %d halves, wait_group %d:", BN / H, H, WAIT);
    for (int wgs : {1, 2}) {
        for (int blocks : {1, g_sms}) {
            CK(cudaMemset(g_cycles, 0, sizeof(long long) * 2 * g_sms));
            const float us = time_us([&] {
                chain_kernel<BN, H, WAIT><<<blocks, 128 * wgs, smem, g_stream>>>(stages, g_cycles, g_sink);
                CK(cudaGetLastError());
            });
            long long cyc;
            CK(cudaMemcpy(&cyc, g_cycles, sizeof cyc, cudaMemcpyDeviceToHost));
            const double macs = (double) blocks * wgs * stages * 8 * 64.0 * BN * 16;
            printf("  %d wg x %3d blk %6.0f cyc/stage (ideal %4d) %5.1f TF", wgs, blocks, (double) cyc / stages,
                   4 * BN * wgs, 2 * macs / (us * 1e-6) / 1e12);
        }
    }
    printf("\n");
}

uint16_t* g_planes;
uint16_t* g_w;
float* g_out;

template <int BN, int ST>
void gemm_row(uint32_t K) {
    const uint32_t stages = K / BK;
    const size_t smem = gptoss_wg::smem_bytes<BN, ST>(), smem_ws = gptoss_wg::gemm_ws_smem_bytes<BN, ST>();
    CK(cudaFuncSetAttribute(gptoss_wg::gemm_kernel<BN, ST>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem));
    CK(cudaFuncSetAttribute(gptoss_wg::gemm_ws_kernel<BN, ST>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                            (int) smem_ws));
    CK(cudaFuncSetAttribute(loads_kernel<BN, ST>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem));
    printf("  128x%-3d %d stages:", BN, ST);
    for (int blocks : {1, g_sms}) {
        const uint32_t M = 128, N = BN * blocks;
        const size_t ps = (size_t) M * K;
        const float us = time_us([&] {
            gptoss_wg::gemm_kernel<BN, ST><<<dim3(1, blocks), 256, smem, g_stream>>>(g_planes, ps, g_w, nullptr, g_out,
                                                                                  M, K, N, false);
            CK(cudaGetLastError());
        });
        const float us_ws = time_us([&] {
            gptoss_wg::gemm_ws_kernel<BN, ST><<<dim3(1, blocks), 384, smem_ws, g_stream>>>(g_planes, ps, g_w, nullptr,
                                                                                        g_out, M, K, N, false);
            CK(cudaGetLastError());
        });
        const float us_ld = time_us([&] {
            loads_kernel<BN, ST><<<dim3(1, blocks), 256, smem, g_stream>>>(g_planes, ps, g_w, M, K, N, g_sink);
            CK(cudaGetLastError());
        });
        printf("  %3d blk: gemm %5.2f us/stage, ws %5.2f, loads only %5.2f", blocks, us / stages, us_ws / stages,
               us_ld / stages);
    }
    printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1) {
        fprintf(stderr, "usage: %s\n", argv[0]);
        return 2;
    }
    cudaDeviceProp pr;
    CK(cudaGetDeviceProperties(&pr, 0));
    int clk_khz = 0;
    CK(cudaDeviceGetAttribute(&clk_khz, cudaDevAttrClockRate, 0));
    g_sms = pr.multiProcessorCount;
    printf("wgmma_latency_lab: %s, %d SMs, SM clock %.0f MHz (the attribute; the running clock may differ)\n",
           pr.name, g_sms, clk_khz / 1e3);
    CK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
    CK(cudaEventCreate(&g_e0));
    CK(cudaEventCreate(&g_e1));
    CK(cudaMalloc(&g_cycles, sizeof(long long) * 2 * g_sms));
    CK(cudaMalloc(&g_sink, 64));

    printf("1. MMA chains on resident operands, 512 stages of 8 wgmmas (k-steps x planes): cycles a stage of\n"
           "   block 0's first warpgroup, ideal = the tensor pipe's, bf16 TFLOP/s over all blocks\n");
    chain_row<64, 1, 1>();
    chain_row<128, 1, 1>();
    chain_row<128, 1, 0>();
    chain_row<128, 2, 1>();
    chain_row<192, 1, 1>();
    chain_row<192, 2, 1>();
    chain_row<256, 1, 1>();
    chain_row<256, 2, 1>();

    const uint32_t K = 16384;
    const size_t planes_bytes = (size_t) NP * 128 * K * 2, w_bytes = (size_t) 256 * g_sms * K * 2;
    CK(cudaMalloc(&g_planes, planes_bytes));
    CK(cudaMalloc(&g_w, w_bytes));
    CK(cudaMalloc(&g_out, (size_t) 128 * 256 * g_sms * 4));
    CK(cudaMemset(g_planes, 0x3C, planes_bytes));
    CK(cudaMemset(g_w, 0x3C, w_bytes));
    printf("2-3. the library's gemm_kernel, gemm_ws_kernel and the copies alone, 128 tokens x BN rows a block,\n"
           "   K = %u (%u stages), 1 block and one block an SM\n",
           K, K / BK);
    gemm_row<96, 3>(K);
    gemm_row<96, 5>(K);
    gemm_row<160, 3>(K);
    gemm_row<160, 4>(K);
    gemm_row<192, 4>(K);
    printf("wgmma_latency_lab: done\n");
    return 0;
}
