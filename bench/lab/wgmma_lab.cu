// wgmma_lab: the split-bf16 prefill GEMM on Hopper's warpgroup MMA (not part of the library
// or the tests; a first card run for issue 15).
//
// The library's prefill GEMMs (src/cuda/matmul.cu, gemm_bf16_tc_ring_kernel) run mma.sync
// m16n8k16: on an H100 the qkv GEMM of a 512-token prefill reaches ~102 f32-equivalent
// TFLOP/s (two bf16 planes: ~205 TFLOP/s of bf16 MMAs) with the tensor pipe active 44 % of
// the time. Hopper's dense bf16 peak is reached only through wgmma (a warpgroup of 128
// threads, operands read from shared memory through matrix descriptors). This lab builds
// the same GEMM on wgmma and answers:
//
//   1. Is it right? Every variant against a float64 reference (max |err| / sum |x w| over
//      checked rows; two planes drop up to 2^-16 of each activation: expect ~1e-6..1e-5),
//      and how many outputs differ in their bits from the library's GEMM (the same products
//      summed per k-step of 16 in the same plane order; whether wgmma adds them as mma.sync
//      does is the question).
//   2. How fast is it on the 20b prefill shapes (512 tokens: qkv 2880 -> 5120, attention
//      output 4096 -> 2880) against the library: us per call, f32-equivalent TFLOP/s.
//
//   wgmma_lab [--iters N] [--moe-only | --tiles]   (--moe-only: the MoE parts alone; --tiles:
//   the library's MoE GEMM with each row tile forced, 20b and 120b, 64 to 2,048 tokens)
//
// The kernel (gptoss_wg::gemm_kernel<BN, ST, WG>): a block of two warpgroups (WG) owns 128 token rows x BN weight
// rows of the output; each warpgroup 64 x BN (BN / 2 f32 accumulators a thread). Stages of
// 64 columns (one 128-byte row of bf16 per tile row) of both activation planes and the
// weights are copied by all 256 threads with cp.async into shared memory in the 128-byte
// swizzle that the descriptors name (16-byte chunk c of row r at c ^ (r % 8); tiles
// 1024-byte aligned), ST stages in a ring, ST - 2 of them in flight while one is multiplied
// and the previous one's MMAs drain (wgmma.wait_group 1). Per stage and k-step of 16: the
// low plane's wgmma, then the high plane's, into the same accumulators (the library's
// plane order). Requires K % 8 == 0 and 16-byte aligned rows.
//
// Part 2, the MoE GEMMs of a 512-token prefill (20b's 32 experts and 120b's 128): the
// library's kernel against the lab's (src/cuda/wgmma.cuh): moe_kernel's tile widths,
// warp-specialised (moe_ws_kernel), columns in two accumulator slices, and the operands'
// roles swapped (moe_swap_kernel: weights as M, tokens as N in steps of 16, so an expert's
// partial tile costs less). The slices and the swapped kernel were written in the eleventh
// sitting and have not run.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <gptoss/kernels.h>

#include "cuda/matmul.cuh" /* gptoss_d_split_bf16 */
#include "cuda/wgmma.cuh"  /* the kernels */
#include "wgmma_ws.cuh"     /* their warp-specialised forms */
#include "moe_lab.cuh"      /* the MoE kernel with switches: what bounds its stage */

#include "lab_check.h"

namespace {

using gptoss_wg::BM;
using gptoss_wg::MBM;
using gptoss_wg::NP;

/* planes[p][i] = part p of the split of x[i] (as the library's split_planes_kernel) */
__global__ void split_kernel(const float* __restrict__ x, uint16_t* __restrict__ planes, size_t n, size_t stride) {
    for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n; i += (size_t) gridDim.x * blockDim.x) {
        uint32_t p[NP];
        gptoss_d_split_bf16<NP>(x[i], p);
#pragma unroll
        for (int j = 0; j < NP; j++) planes[j * stride + i] = (uint16_t) p[j];
    }
}

cudaStream_t g_stream;

template <int BN, int ST, int WG = 2, int H = 1>
void run_wgmma(const uint16_t* planes, size_t stride, const uint16_t* w, const uint16_t* b, float* out, uint32_t M,
               uint32_t K, uint32_t N) {
    constexpr size_t smem = gptoss_wg::smem_bytes<BN, ST, WG>();
    CK(cudaFuncSetAttribute(gptoss_wg::gemm_kernel<BN, ST, WG, H>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                            (int) smem));
    const dim3 grid((M + 64 * WG - 1) / (64 * WG), (N + BN - 1) / BN);
    gptoss_wg::gemm_kernel<BN, ST, WG, H><<<grid, 128 * WG, smem, g_stream>>>(planes, stride, w, b, out, M, K, N, false);
    CK(cudaGetLastError());
}

template <int BN, int ST>
void run_wgmma_ws(const uint16_t* planes, size_t stride, const uint16_t* w, const uint16_t* b, float* out, uint32_t M,
                  uint32_t K, uint32_t N) {
    constexpr size_t smem = gptoss_wg::gemm_ws_smem_bytes<BN, ST>();
    CK(cudaFuncSetAttribute(gptoss_wg::gemm_ws_kernel<BN, ST>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                            (int) smem));
    const dim3 grid((M + 127) / 128, (N + BN - 1) / BN);
    gptoss_wg::gemm_ws_kernel<BN, ST><<<grid, 384, smem, g_stream>>>(planes, stride, w, b, out, M, K, N, false);
    CK(cudaGetLastError());
}

struct Variant {
    const char* name;
    void (*run)(const uint16_t*, size_t, const uint16_t*, const uint16_t*, float*, uint32_t, uint32_t, uint32_t);
};
const Variant kVariants[] = {
    {"wgmma 128x96, 5 stages", run_wgmma<96, 5>},   {"wgmma 128x128, 4 stages", run_wgmma<128, 4>},
    {"wgmma 128x160, 4 stages", run_wgmma<160, 4>}, {"wgmma 128x192, 4 stages", run_wgmma<192, 4>},
    {"wgmma 128x256, 3 stages", run_wgmma<256, 3>},
    /* one warpgroup a block, two blocks an SM: more blocks for outputs of few rows */
    {"wgmma 64x96, 3 stages", run_wgmma<96, 3, 1>},   {"wgmma 64x128, 3 stages", run_wgmma<128, 3, 1>},
    {"wgmma 64x160, 3 stages", run_wgmma<160, 3, 1>},
    /* warp-specialised (a producer and two multiplying warpgroups, mbarriers; gemm_ws_kernel) */
    {"ws 128x96, 5 stages", run_wgmma_ws<96, 5>},   {"ws 128x128, 4 stages", run_wgmma_ws<128, 4>},
    {"ws 128x160, 4 stages", run_wgmma_ws<160, 4>}, {"ws 128x192, 4 stages", run_wgmma_ws<192, 4>},
    /* each warpgroup's columns as two slices on their own accumulators, issued alternately */
    {"128x96 2 slices, 5 st", run_wgmma<96, 5, 2, 2>},   {"128x128 2 slices, 4 st", run_wgmma<128, 4, 2, 2>},
    {"128x160 2 slices, 4 st", run_wgmma<160, 4, 2, 2>}, {"128x192 2 slices, 4 st", run_wgmma<192, 4, 2, 2>},
};

template <bool SWIGLU, int BN, int ST, int H = 1>
void run_moe(const uint32_t* offsets, uint32_t tiles, const uint16_t* planes, size_t stride_p, const uint8_t* blocks,
             const uint8_t* scales, const uint8_t* bias, size_t stride, float* out, uint32_t P, uint32_t E, uint32_t K,
             uint32_t N, uint32_t out_width, float limit) {
    const size_t smem = gptoss_wg::moe_smem_bytes<BN, ST>(K);
    CK(cudaFuncSetAttribute(gptoss_wg::moe_kernel<SWIGLU, BN, ST, H>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem));
    gptoss_wg::moe_kernel<SWIGLU, BN, ST, H><<<dim3((N + BN - 1) / BN, tiles), 256, smem, g_stream>>>(
        offsets, planes, stride_p, blocks, scales, bias, stride, out, P, E, K, N, out_width, limit, nullptr);
    CK(cudaGetLastError());
}

template <bool SWIGLU, int BN, int ST>
void run_moe_ws(const uint32_t* offsets, uint32_t tiles, const uint16_t* planes, size_t stride_p, const uint8_t* blocks,
                const uint8_t* scales, const uint8_t* bias, size_t stride, float* out, uint32_t P, uint32_t E,
                uint32_t K, uint32_t N, uint32_t out_width, float limit) {
    const size_t smem = gptoss_wg::moe_ws_smem_bytes<BN, ST>();
    CK(cudaFuncSetAttribute(gptoss_wg::moe_ws_kernel<SWIGLU, BN, ST>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                            (int) smem));
    gptoss_wg::moe_ws_kernel<SWIGLU, BN, ST><<<dim3((N + BN - 1) / BN, tiles), 256, smem, g_stream>>>(
        offsets, planes, stride_p, blocks, scales, bias, stride, out, P, E, K, N, out_width, limit, nullptr);
    CK(cudaGetLastError());
}

template <bool SWIGLU, int TN, int ST>
void run_moe_swap(const uint32_t* offsets, uint32_t tiles, const uint16_t* planes, size_t stride_p,
                  const uint8_t* blocks, const uint8_t* scales, const uint8_t* bias, size_t stride, float* out,
                  uint32_t P, uint32_t E, uint32_t K, uint32_t N, uint32_t out_width, float limit) {
    const size_t smem = gptoss_wg::moe_swap_smem_bytes<TN, ST>(K);
    CK(cudaFuncSetAttribute(gptoss_wg::moe_swap_kernel<SWIGLU, TN, ST>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                            (int) smem));
    /* the most TN-row tiles P rows over E experts can need (blocks past the last return);
     * `tiles` counts 64-row ones */
    (void) tiles;
    const unsigned ytiles = (P + TN - 1) / TN + E;
    gptoss_wg::moe_swap_kernel<SWIGLU, TN, ST><<<dim3((N + 127) / 128, ytiles), 256, smem, g_stream>>>(
        offsets, planes, stride_p, blocks, scales, bias, stride, out, P, E, K, N, out_width, limit, nullptr);
    CK(cudaGetLastError());
}

template <bool SWIGLU, int TN, int ST, int MS = 1, int MODE = 0>
void run_moe_rega(const uint32_t* offsets, uint32_t tiles, const uint16_t* planes, size_t stride_p,
                  const uint8_t* blocks, const uint8_t* scales, const uint8_t* bias, size_t stride, float* out,
                  uint32_t P, uint32_t E, uint32_t K, uint32_t N, uint32_t out_width, float limit) {
    auto kernel = gptoss_wg::moe_rega_kernel<SWIGLU, TN, ST, MS, MODE>;
    const size_t smem = gptoss_wg::moe_rega_smem_bytes<TN, ST, MS>(K);
    CK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem));
    (void) tiles;
    const unsigned ytiles = (P + TN - 1) / TN + E;
    kernel<<<dim3((N + 128 * MS - 1) / (128 * MS), ytiles), 256, smem, g_stream>>>(
        offsets, planes, stride_p, blocks, scales, bias, stride, out, P, E, K, N, out_width, limit, nullptr);
    CK(cudaGetLastError());
}

struct MoeVariant {
    const char* name;
    void (*up)(const uint32_t*, uint32_t, const uint16_t*, size_t, const uint8_t*, const uint8_t*, const uint8_t*,
               size_t, float*, uint32_t, uint32_t, uint32_t, uint32_t, uint32_t, float);
    void (*down)(const uint32_t*, uint32_t, const uint16_t*, size_t, const uint8_t*, const uint8_t*, const uint8_t*,
                 size_t, float*, uint32_t, uint32_t, uint32_t, uint32_t, uint32_t, float);
    bool diag = false; /* a diagnostic: wrong sums by design, timed only */
};
template <bool SWIGLU, int BN, int ST, bool SYNC, int PF, int MODE>
void run_moe_lab(const uint32_t* offsets, uint32_t tiles, const uint16_t* planes, size_t stride_p,
                 const uint8_t* blocks, const uint8_t* scales, const uint8_t* bias, size_t stride, float* out,
                 uint32_t P, uint32_t E, uint32_t K, uint32_t N, uint32_t out_width, float limit) {
    auto kernel = gptoss_wg::moe_lab_kernel<SWIGLU, BN, ST, SYNC, PF, MODE>;
    const size_t smem = gptoss_wg::moe_lab_smem_bytes<BN, ST, SYNC>(K);
    CK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem));
    kernel<<<dim3((N + BN - 1) / BN, tiles), 256, smem, g_stream>>>(offsets, planes, stride_p, blocks, scales, bias,
                                                                    stride, out, P, E, K, N, out_width, limit, nullptr);
    CK(cudaGetLastError());
}
#define MOE_LAB(BN, ST, SYNC, PF, MODE) run_moe_lab<true, BN, ST, SYNC, PF, MODE>, run_moe_lab<false, BN, ST, SYNC, PF, MODE>

/* the ws and two-slice MoE variants of the eleventh sitting (no faster: docs/CUDA_NOTES.md)
 * are no longer run; run_moe_ws stays for them */
const MoeVariant kMoeVariants[] = {
    {"moe wgmma 64x128, 3 stages", run_moe<true, 128, 3>, run_moe<false, 128, 3>},
    /* bench/lab/moe_lab.cuh: the same kernel (moe_lab_kernel), then a deeper ring (sync: ST - 1
     * stages in flight), an L2 prefetch of the weight stream PF stages ahead, both */
    {"lab: library's, 3 st", MOE_LAB(128, 3, false, 0, 0)},
    {"lab: + L2 prefetch 8", MOE_LAB(128, 3, false, 8, 0)},
    {"lab: + L2 prefetch 16", MOE_LAB(128, 3, false, 16, 0)},
    {"lab: sync, 3 st", MOE_LAB(128, 3, true, 0, 0)},
    {"lab: sync, 4 st", MOE_LAB(128, 4, true, 0, 0)},
    {"lab: sync, 3 st, pf 8", MOE_LAB(128, 3, true, 8, 0)},
    {"lab: sync, 4 st, pf 8", MOE_LAB(128, 4, true, 8, 0)},
    {"lab: sync, 4 st, pf 16", MOE_LAB(128, 4, true, 16, 0)},
    /* diagnostics (wrong sums, timing only): the library's kernel without a part */
    {"diag: no dequant", MOE_LAB(128, 3, false, 0, 1), true},
    {"diag: no copies", MOE_LAB(128, 3, false, 0, 2), true},
    {"diag: no MMA", MOE_LAB(128, 3, false, 0, 4), true},
    {"diag: copies only", MOE_LAB(128, 3, false, 0, 5), true},
    {"diag: dequant only", MOE_LAB(128, 3, false, 0, 6), true},
    {"diag: MMA only", MOE_LAB(128, 3, false, 0, 3), true},
    {"diag: sync 4 st copies only", MOE_LAB(128, 4, true, 0, 5), true},
    /* the roles swapped, the weights dequantised in registers as wgmma's A (moe_rega_kernel) */
    {"rega 128w x 64t, 4 st", run_moe_rega<true, 64, 4>, run_moe_rega<false, 64, 4>},
    {"rega 128w x 64t, 3 st", run_moe_rega<true, 64, 3>, run_moe_rega<false, 64, 3>},
    {"rega 128w x 32t, 5 st", run_moe_rega<true, 32, 5>, run_moe_rega<false, 32, 5>},
    {"rega 128w x 16t, 6 st", run_moe_rega<true, 16, 6>, run_moe_rega<false, 16, 6>},
    {"rega 128w x 16t, 8 st", run_moe_rega<true, 16, 8>, run_moe_rega<false, 16, 8>},
    /* two m64 slices a warpgroup: 256 weight rows share a stage's token planes */
    {"rega 256w x 64t, 4 st", run_moe_rega<true, 64, 4, 2>, run_moe_rega<false, 64, 4, 2>},
    {"rega 256w x 64t, 3 st", run_moe_rega<true, 64, 3, 2>, run_moe_rega<false, 64, 3, 2>},
    {"rega 256w x 32t, 5 st", run_moe_rega<true, 32, 5, 2>, run_moe_rega<false, 32, 5, 2>},
    {"rega 256w x 32t, 4 st", run_moe_rega<true, 32, 4, 2>, run_moe_rega<false, 32, 4, 2>},
    {"rega 256w x 16t, 6 st", run_moe_rega<true, 16, 6, 2>, run_moe_rega<false, 16, 6, 2>},
    /* diagnostics of rega 256w x 64t, 3 st (wrong sums, timing only) */
    {"diag rega: no dequant", run_moe_rega<true, 64, 3, 2, 1>, run_moe_rega<false, 64, 3, 2, 1>, true},
    {"diag rega: no copies", run_moe_rega<true, 64, 3, 2, 2>, run_moe_rega<false, 64, 3, 2, 2>, true},
    {"diag rega: no MMA", run_moe_rega<true, 64, 3, 2, 4>, run_moe_rega<false, 64, 3, 2, 4>, true},
    {"diag rega: copies only", run_moe_rega<true, 64, 3, 2, 5>, run_moe_rega<false, 64, 3, 2, 5>, true},
    {"diag rega: dequant only", run_moe_rega<true, 64, 3, 2, 6>, run_moe_rega<false, 64, 3, 2, 6>, true},
    {"diag rega: MMA only", run_moe_rega<true, 64, 3, 2, 3>, run_moe_rega<false, 64, 3, 2, 3>, true},
    /* the roles swapped: 128 weight rows x up to 64 tokens of an expert (moe_swap_kernel) */
    {"moe swap 128w x 64t, 3 st", run_moe_swap<true, 64, 3>, run_moe_swap<false, 64, 3>},
    /* small token tiles, deep rings: the experts' weights streamed for few rows each (a decode
     * step of many streams: 64 streams of 20b give ~8 rows an expert) */
    {"moe swap 128w x 16t, 8 st", run_moe_swap<true, 16, 8>, run_moe_swap<false, 16, 8>},
    {"moe swap 128w x 32t, 5 st", run_moe_swap<true, 32, 5>, run_moe_swap<false, 32, 5>},
};

/* us per call: the best of `iters` rounds of `calls` calls back to back */
template <typename F>
double best_us(int iters, int calls, cudaEvent_t e0, cudaEvent_t e1, F&& call) {
    float best = 1e30f;
    for (int it = 0; it < iters; it++) {
        CK(cudaEventRecord(e0, g_stream));
        for (int c = 0; c < calls; c++) call();
        CK(cudaEventRecord(e1, g_stream));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        best = std::min(best, ms);
    }
    return best * 1e3 / calls;
}

/* outputs of `got` whose bits differ from `want`, and its NaNs */
void count_diff(const std::vector<float>& got, const std::vector<float>& want, size_t& diff, size_t& nan) {
    for (size_t i = 0; i < got.size(); i++) {
        diff += memcmp(&got[i], &want[i], 4) != 0;
        nan += std::isnan(got[i]);
    }
}

float bf16_to_f32_host(uint16_t b) {
    const uint32_t u = (uint32_t) b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

double fp4_host(uint32_t nib) {
    static const double v[8] = {0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0};
    return (nib & 8u) ? -v[nib & 7u] : v[nib & 7u];
}

/* The MoE GEMMs of a step of T tokens (4 of E experts a token, random routing; E = 32: 20b,
 * 128: 120b): up + SwiGLU (2880 -> 2 x 2880) and down (2880 -> 2880), library against the
 * lab. */
bool moe_part(gptoss_backend_t be, int iters, cudaEvent_t e0, cudaEvent_t e1, uint32_t T, uint32_t E, bool tiles_only) {
    const uint32_t k = 4, K = 2880, I = 2880;
    const char* model = E == 32 ? "20b" : "120b";
    const float limit = 7.0f;
    std::vector<uint32_t> counts(E, 0), offsets(E + 1, 0);
    uint64_t r = 0x9E3779B97F4A7C15ull;
    auto rnd = [&]() {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        return r;
    };
    for (uint32_t t = 0; t < T; t++) {
        uint32_t chosen[4];
        for (uint32_t j = 0; j < k; j++) {
            uint32_t x;
            bool dup;
            do {
                x = (uint32_t) (rnd() % E);
                dup = false;
                for (uint32_t q = 0; q < j; q++) dup |= chosen[q] == x;
            } while (dup);
            chosen[j] = x;
            counts[x]++;
        }
    }
    uint32_t tiles = 0;
    for (uint32_t e = 0; e < E; e++) {
        offsets[e + 1] = offsets[e] + counts[e];
        tiles += (counts[e] + MBM - 1) / MBM;
    }
    const uint32_t P = offsets[E];
    bool all_ok = true;
    for (int pass = 0; pass < 2; pass++) {
        const bool up = pass == 0;
        const uint32_t N = up ? 2 * I : I, out_width = up ? I : I, nb = K / 32;
        const size_t stride = ((size_t) N * K / 2 + 15) / 16 * 16;
        std::vector<uint8_t> hb((size_t) E * stride), hs((size_t) E * stride, 0), hbias((size_t) E * stride, 0);
        for (auto& v : hb) v = (uint8_t) rnd();
        for (uint32_t e = 0; e < E; e++) {
            for (size_t i = 0; i < (size_t) N * nb; i++) hs[e * stride + i] = (uint8_t) (137 + rnd() % 6);
            for (uint32_t n = 0; n < N; n++) {
                const float f = ((float) (rnd() % 2001) - 1000.0f) * 5e-5f;
                uint32_t u;
                memcpy(&u, &f, 4);
                hbias[e * stride + 2 * n] = (uint8_t) (u >> 16), hbias[e * stride + 2 * n + 1] = (uint8_t) (u >> 24);
            }
        }
        uint8_t *db, *ds, *dbias;
        uint32_t* doff;
        float *x, *out_lib, *out_lab;
        uint16_t* planes;
        const size_t pstride = ((size_t) P * K + 7) / 8 * 8;
        GK(gptoss_backend_alloc(be, hb.size(), (void**) &db));
        GK(gptoss_backend_alloc(be, hs.size(), (void**) &ds));
        GK(gptoss_backend_alloc(be, hbias.size(), (void**) &dbias));
        GK(gptoss_backend_alloc(be, (E + 1) * 4, (void**) &doff));
        GK(gptoss_backend_alloc(be, (size_t) P * K * 4, (void**) &x));
        GK(gptoss_backend_alloc(be, NP * pstride * 2, (void**) &planes));
        GK(gptoss_backend_alloc(be, (size_t) P * out_width * 4, (void**) &out_lib));
        GK(gptoss_backend_alloc(be, (size_t) P * out_width * 4, (void**) &out_lab));
        CK(cudaMemcpy(db, hb.data(), hb.size(), cudaMemcpyHostToDevice));
        CK(cudaMemcpy(ds, hs.data(), hs.size(), cudaMemcpyHostToDevice));
        CK(cudaMemcpy(dbias, hbias.data(), hbias.size(), cudaMemcpyHostToDevice));
        CK(cudaMemcpy(doff, offsets.data(), (E + 1) * 4, cudaMemcpyHostToDevice));
        GK(gptoss_f32_fill_random(be, x, (size_t) P * K, 77 + pass, 0, -1.0f, 1.0f));
        auto lib_to = [&](float* o) {
            if (up)
                GK(gptoss_f32_mf4w_moe_dense_matmul_swiglu(be, doff, x, db, ds, (const gptoss_bf16*) dbias, stride, o,
                                                            T, k, E, K, I, limit));
            else
                GK(gptoss_f32_mf4w_moe_dense_matmul(be, doff, x, db, ds, (const gptoss_bf16*) dbias, stride, o, T, k,
                                                     E, K, I));
        };
        auto lib = [&] { lib_to(out_lib); };
        lib();
        split_kernel<<<264, 256, 0, g_stream>>>(x, planes, (size_t) P * K, pstride);
        CK(cudaGetLastError());
        GK(gptoss_backend_synchronize(be));
        std::vector<float> hx((size_t) P * K), hlib((size_t) P * out_width), hlab(hlib.size());
        CK(cudaMemcpy(hx.data(), x, hx.size() * 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(hlib.data(), out_lib, hlib.size() * 4, cudaMemcpyDeviceToHost));
        /* float64 on every 97th row: |out - ref| / (sum |x w| over the output's weight rows + |ref|);
         * the references computed once */
        std::vector<double> refs, mags;
        for (uint32_t m = 0; m < P; m += 97) {
            uint32_t e = 0;
            while (offsets[e + 1] <= m) e++;
            std::vector<double> h(N), a(N);
            for (uint32_t n = 0; n < N; n++) {
                const uint8_t* wr = hb.data() + e * stride + (size_t) n * K / 2;
                const uint8_t* sc = hs.data() + e * stride + (size_t) n * nb;
                double sum = 0, mag = 0;
                for (uint32_t c = 0; c < K; c++) {
                    const uint8_t byte = wr[c / 2];
                    const double w = fp4_host(c & 1 ? byte >> 4 : byte & 15u) * ldexp(1.0, (int) sc[c / 32] - 141);
                    const double p = (double) hx[(size_t) m * K + c] * w;
                    sum += p;
                    mag += fabs(p);
                }
                const uint16_t bb = (uint16_t) (hbias[e * stride + 2 * n] | (hbias[e * stride + 2 * n + 1] << 8));
                h[n] = sum + bf16_to_f32_host(bb);
                a[n] = mag;
            }
            for (uint32_t c = 0; c < out_width; c++) {
                double ref, mag;
                if (up) {
                    const double L = limit, g = std::min(h[2 * c], L), l = std::max(-L, std::min(h[2 * c + 1], L));
                    ref = g / (1.0 + exp(-1.702 * g)) * (l + 1.0);
                    mag = (a[2 * c] + a[2 * c + 1]) * (fabs(l) + 2.0);
                } else {
                    ref = h[c];
                    mag = a[c];
                }
                refs.push_back(ref);
                mags.push_back(mag + fabs(ref) + 1e-30);
            }
        }
        auto err64 = [&](const std::vector<float>& o) {
            double worst = 0;
            size_t i = 0;
            for (uint32_t m = 0; m < P; m += 97)
                for (uint32_t c = 0; c < out_width; c++, i++) {
                    const double err = fabs((double) o[(size_t) m * out_width + c] - refs[i]) / mags[i];
                    worst = std::isnan(err) ? INFINITY : std::max(worst, err);
                }
            return worst;
        };
        auto time_it = [&](auto&& call) { return best_us(iters, 5, e0, e1, call); };
        const double flops = 2.0 * P * N * K;
        printf("\nMoE %s, %s, %u tokens (%u rows over %u experts, %u row tiles of 64)\n",
               up ? "up + SwiGLU 2880 -> 5760" : "down 2880 -> 2880", model, T, P, E, tiles);
        const double us_lib = time_it(lib);
        printf("  %-26s max err %.2e;      %8.1f us (split + GEMM), %6.1f TFLOP/s f32-equivalent\n", "library",
               err64(hlib), us_lib, flops / (us_lib * 1e-6) / 1e12);
        /* the library with each row tile forced (gptoss_cuda_lab_moe_tile): the same bits */
        for (const int tile : {16, 32, 64, 65, 66}) {
            gptoss_cuda_lab_moe_tile = tile;
            CK(cudaMemsetAsync(out_lab, 0xFF, (size_t) P * out_width * 4, g_stream));
            lib_to(out_lab);
            GK(gptoss_backend_synchronize(be));
            CK(cudaMemcpy(hlab.data(), out_lab, hlab.size() * 4, cudaMemcpyDeviceToHost));
            size_t diff = 0, nan = 0;
            count_diff(hlab, hlib, diff, nan);
            const bool ok = diff == 0 && nan == 0;
            all_ok &= ok;
            const double us = time_it(lib); /* lib() writes out_lib: the same bits */
            char name[64];
            snprintf(name, sizeof name, "library, %s",
                     tile == 66   ? "64-row wgmma"
                     : tile == 65 ? "64 rows (rule)"
                     : tile == 64 ? "64-row ring"
                     : tile == 32 ? "32-row ring"
                                  : "16-row ring");
            printf("  %-26s %s %zu of %zu outputs differ from the library's bits, %zu NaN; %8.1f us (split + GEMM), "
                   "%6.1f TFLOP/s f32-equivalent\n",
                   name, ok ? "ok  " : "FAIL", diff, hlab.size(), nan, us, flops / (us * 1e-6) / 1e12);
        }
        gptoss_cuda_lab_moe_tile = 0;
        for (const MoeVariant& v : kMoeVariants) {
            if (tiles_only) break;
            auto run = [&] {
                (up ? v.up : v.down)(doff, tiles, planes, pstride, db, ds, dbias, stride, out_lab, P, E, K, N,
                                     out_width, limit);
            };
            CK(cudaMemsetAsync(out_lab, 0xFF, (size_t) P * out_width * 4, g_stream));
            run();
            CK(cudaStreamSynchronize(g_stream));
            CK(cudaMemcpy(hlab.data(), out_lab, hlab.size() * 4, cudaMemcpyDeviceToHost));
            size_t diff = 0, nan = 0;
            count_diff(hlab, hlib, diff, nan);
            const double e = err64(hlab);
            const bool ok = nan == 0 && e < 1e-4;
            if (!v.diag) all_ok &= ok;
            const double us = time_it(run);
            const double us_split = time_it([&] {
                split_kernel<<<264, 256, 0, g_stream>>>(x, planes, (size_t) P * K, pstride);
                run();
            });
            printf("  %-26s %s max err %.2e, %zu of %zu outputs differ from the library's bits, %zu NaN; %8.1f us "
                   "(%.1f with the split), %6.1f TFLOP/s f32-equivalent\n",
                   v.name, v.diag ? "diag" : ok ? "ok  " : "FAIL", e, diff, hlab.size(), nan, us, us_split,
                   flops / (us * 1e-6) / 1e12);
        }
        GK(gptoss_backend_free(be, db));
        GK(gptoss_backend_free(be, ds));
        GK(gptoss_backend_free(be, dbias));
        GK(gptoss_backend_free(be, doff));
        GK(gptoss_backend_free(be, x));
        GK(gptoss_backend_free(be, planes));
        GK(gptoss_backend_free(be, out_lib));
        GK(gptoss_backend_free(be, out_lab));
    }
    return all_ok;
}

}  // namespace

int main(int argc, char** argv) {
    int iters = 10;
    bool moe_only = false, tiles = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--moe-only")) moe_only = true;
        else if (!strcmp(argv[i], "--tiles")) moe_only = tiles = true;
        else {
            fprintf(stderr, "usage: %s [--iters N] [--moe-only | --tiles]\n", argv[0]);
            return 2;
        }
    }
    cudaDeviceProp pr;
    CK(cudaGetDeviceProperties(&pr, 0));
    printf("wgmma_lab: %s, %d SMs, %zu bytes of shared memory a block at most\n", pr.name, pr.multiProcessorCount,
           (size_t) pr.sharedMemPerBlockOptin);
    CK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
    gptoss_backend_t be;
    GK(gptoss_backend_create_cuda(0, g_stream, &be));
    struct Shape {
        const char* name;
        uint32_t M, K, N;
    };
    /* the 20b prefill shapes, then edges: partial row and weight tiles, K not a multiple of 64 */
    const Shape shapes[] = {{"qkv, 512 tokens, 2880 -> 5120", 512, 2880, 5120},
                            {"attention output, 512 tokens, 4096 -> 2880", 512, 4096, 2880},
                            {"edges: 137 tokens, 2888 -> 200", 137, 2888, 200},
                            {"edges: 45 tokens, 72 -> 264", 45, 72, 264}};
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    uint64_t seed = 11;
    bool all_ok = true;
    for (const Shape& sh : shapes) {
        if (moe_only) break;
        const uint32_t M = sh.M, K = sh.K, N = sh.N;
        const size_t stride = ((size_t) M * K + 7) / 8 * 8;
        uint16_t *w, *b, *planes;
        float *x, *out_lib, *out_lab;
        GK(gptoss_backend_alloc(be, (size_t) N * K * 2, (void**) &w));
        GK(gptoss_backend_alloc(be, (size_t) N * 2, (void**) &b));
        GK(gptoss_backend_alloc(be, (size_t) M * K * 4, (void**) &x));
        GK(gptoss_backend_alloc(be, NP * stride * 2, (void**) &planes));
        GK(gptoss_backend_alloc(be, (size_t) M * N * 4, (void**) &out_lib));
        GK(gptoss_backend_alloc(be, (size_t) M * N * 4, (void**) &out_lab));
        GK(gptoss_bf16_fill_random(be, (gptoss_bf16*) w, (size_t) N * K, seed++, 0, -1.0f / sqrtf((float) K),
                                   1.0f / sqrtf((float) K)));
        GK(gptoss_bf16_fill_random(be, (gptoss_bf16*) b, N, seed++, 0, -0.05f, 0.05f));
        GK(gptoss_f32_fill_random(be, x, (size_t) M * K, seed++, 0, -1.0f, 1.0f));
        GK(gptoss_f32_bf16w_matmul(be, x, (const gptoss_bf16*) w, (const gptoss_bf16*) b, out_lib, M, K, N));
        split_kernel<<<264, 256, 0, g_stream>>>(x, planes, (size_t) M * K, stride);
        CK(cudaGetLastError());
        GK(gptoss_backend_synchronize(be));
        std::vector<uint16_t> hw((size_t) N * K), hb(N);
        std::vector<float> hx((size_t) M * K), hlib((size_t) M * N), hlab(hlib.size());
        CK(cudaMemcpy(hw.data(), w, hw.size() * 2, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(hb.data(), b, hb.size() * 2, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(hx.data(), x, hx.size() * 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(hlib.data(), out_lib, hlib.size() * 4, cudaMemcpyDeviceToHost));
        /* rows checked against float64: the first 40 and the last 24 (the last row tile) */
        std::vector<uint32_t> rows;
        for (uint32_t m = 0; m < M; m++)
            if (m < 40 || m + 24 >= M) rows.push_back(m);
        std::vector<double> ref(rows.size() * N), mag(rows.size() * N);
        for (size_t i = 0; i < rows.size(); i++)
            for (uint32_t n = 0; n < N; n++) {
                double s = bf16_to_f32_host(hb[n]), a = 0;
                for (uint32_t k = 0; k < K; k++) {
                    const double p = (double) hx[(size_t) rows[i] * K + k] * bf16_to_f32_host(hw[(size_t) n * K + k]);
                    s += p;
                    a += fabs(p);
                }
                ref[i * N + n] = s;
                mag[i * N + n] = a > 0 ? a : 1;
            }
        auto err64 = [&](const std::vector<float>& o) {
            double worst = 0;
            for (size_t i = 0; i < rows.size(); i++)
                for (uint32_t n = 0; n < N; n++) {
                    const double e = fabs((double) o[(size_t) rows[i] * N + n] - ref[i * N + n]) / mag[i * N + n];
                    worst = std::isnan(e) ? INFINITY : std::max(worst, e);
                }
            return worst;
        };
        const double flops = 2.0 * M * N * K;
        auto time_it = [&](auto&& call) { return best_us(iters, 10, e0, e1, call); };
        printf("\n%s\n", sh.name);
        const double us_lib = time_it([&] {
            GK(gptoss_f32_bf16w_matmul(be, x, (const gptoss_bf16*) w, (const gptoss_bf16*) b, out_lib, M, K, N));
        });
        printf("  %-26s max |err| / sum |x w| %.2e; %8.1f us (split + GEMM), %6.1f TFLOP/s f32-equivalent\n",
               "library", err64(hlib), us_lib, flops / (us_lib * 1e-6) / 1e12);
        for (const Variant& v : kVariants) {
            CK(cudaMemsetAsync(out_lab, 0xFF, (size_t) M * N * 4, g_stream)); /* NaN: unwritten outputs fail */
            v.run(planes, stride, w, b, out_lab, M, K, N);
            CK(cudaStreamSynchronize(g_stream));
            CK(cudaMemcpy(hlab.data(), out_lab, hlab.size() * 4, cudaMemcpyDeviceToHost));
            size_t diff = 0, nan = 0;
            count_diff(hlab, hlib, diff, nan);
            const double e = err64(hlab);
            const bool ok = nan == 0 && e < 1e-4; /* 2 planes: ~1e-5 at most (docs/CUDA_NOTES.md) */
            all_ok &= ok;
            const double us = time_it([&] { v.run(planes, stride, w, b, out_lab, M, K, N); });
            const double us_split = time_it([&] {
                split_kernel<<<264, 256, 0, g_stream>>>(x, planes, (size_t) M * K, stride);
                v.run(planes, stride, w, b, out_lab, M, K, N);
            });
            printf("  %-26s %s max |err| / sum |x w| %.2e, %zu of %zu outputs differ from the library's bits, %zu NaN;"
                   " %8.1f us (%.1f with the split), %6.1f TFLOP/s f32-equivalent (%.1f of bf16 MMAs)\n",
                   v.name, ok ? "ok  " : "FAIL", e, diff, hlab.size(), nan, us, us_split, flops / (us * 1e-6) / 1e12,
                   NP * flops / (us * 1e-6) / 1e12);
        }
        GK(gptoss_backend_free(be, w));
        GK(gptoss_backend_free(be, b));
        GK(gptoss_backend_free(be, x));
        GK(gptoss_backend_free(be, planes));
        GK(gptoss_backend_free(be, out_lib));
        GK(gptoss_backend_free(be, out_lab));
    }
    /* a 512-token prefill with 20b's 32 experts (~64 rows each) and 120b's 128 (~16 rows
     * each); a decode step of 64 streams of 20b (~8 rows an expert: the library's 16-row
     * tiles) */
    if (tiles) {
        /* the row tile against the experts' rows: 20b (32 experts) and 120b (128) from ~8 to
         * ~64 rows an expert */
        const uint32_t te[][2] = {{64, 32}, {128, 32}, {256, 32}, {512, 32}, {512, 128}, {1024, 128}, {2048, 128}};
        for (const auto& p : te) all_ok = moe_part(be, iters, e0, e1, p[0], p[1], true) && all_ok;
    } else {
        all_ok = moe_part(be, iters, e0, e1, 512, 32, false) && all_ok;
        all_ok = moe_part(be, iters, e0, e1, 512, 128, false) && all_ok;
        all_ok = moe_part(be, iters, e0, e1, 64, 32, false) && all_ok;
    }
    gptoss_backend_release(be);
    printf("\nwgmma_lab: %s\n", all_ok ? "every variant within 1e-4 of float64" : "FAIL");
    return all_ok ? 0 : 1;
}
