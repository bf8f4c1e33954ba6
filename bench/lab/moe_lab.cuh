/* What bounds a k-stage of the wgmma MoE GEMM (gptoss_wg::moe_kernel), and a ring that keeps
 * more of it in flight: lab only (bench/lab/wgmma_lab.cu), written in the twelfth sitting.
 *
 * The eleventh sitting's numbers (H100): the 20b pp512 up-projection takes 734 us for 2,070
 * blocks of 45 stages at two blocks an SM, i.e. ~2.1 us a block-stage, while a stage's
 * tensor work is ~0.26 us (two warpgroups of m64n64k16 x 8) and its copies are 20 KB (16 KB of
 * activation planes from L2, 4 KB of MXFP4 bytes mostly from HBM). The library's ring
 * (ST = 3) keeps ST - 2 = one stage in flight, because stage s - 1's MMAs may still read
 * their slot and the other dequantised tile while stage s is prepared. Hypothesis: a stage
 * waits for the HBM latency of its weight bytes.
 *
 * moe_lab_kernel<SWIGLU, BN, ST, SYNC, PF, MODE> is moe_kernel with three switches:
 *   SYNC  each stage's MMAs are waited for at the end of the stage (wgmma.wait_group 0), so
 *         that at the next stage's barrier no slot is read any more: ST - 1 stages in flight
 *         instead of ST - 2, and one dequantised tile instead of two (16 KB less: ST = 4 fits
 *         two blocks an SM). The other block on the SM covers the MMAs' tail.
 *   PF    when > 0, every fourth stage each of the block's weight rows asks L2 for its MXFP4
 *         bytes of the stages PF .. PF + 3 ahead (cp.async.bulk.prefetch.L2, 128 bytes a row),
 *         so that the ring's copies of them hit L2.
 *   MODE  diagnostics (wrong results, timing only): bit 0 no dequantisation, bit 1 no copies
 *         after the prologue, bit 2 no MMAs.
 * SYNC = false, PF = 0, MODE = 0 is the library's kernel. The products and their order per
 * output are the library's in every timed-for-real variant (MODE = 0): the lab checks bits.
 *
 * Also here: moe_swap_kernel (below), the MoE GEMM with the weights as wgmma's M; its form
 * with the weights dequantised in registers, moe_rega_kernel, went into the library
 * (src/cuda/wgmma.cuh; its MODE switch is for the labs). */
#ifndef GPTOSS_BENCH_LAB_MOE_LAB_CUH
#define GPTOSS_BENCH_LAB_MOE_LAB_CUH

#include "cuda/wgmma.cuh"

namespace gptoss_wg {

template <int BN, int ST, bool SYNC>
inline size_t moe_lab_smem_bytes(uint32_t K) {
    return (size_t) ST * MoeLayout<BN>::kRaw + (SYNC ? 1 : 2) * MoeLayout<BN>::kB + (size_t) BN * (K / 32) + 1024;
}

static __device__ __forceinline__ void prefetch_l2_bulk(const void* p, uint32_t bytes) {
    GPTOSS_WGMMA_ASM("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
}

template <bool SWIGLU, int BN, int ST, bool SYNC, int PF, int MODE>
__global__ void __launch_bounds__(256, BN == 128 ? 2 : 1)
    moe_lab_kernel(const uint32_t* __restrict__ offsets, const uint16_t* __restrict__ planes, size_t plane_size,
                   const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales,
                   const uint8_t* __restrict__ bias, size_t stride, float* __restrict__ out, uint32_t P, uint32_t E,
                   uint32_t K, uint32_t N, uint32_t out_width, float limit, uint32_t* error_word) {
    using L = MoeLayout<BN>;
    static_assert(ST >= 3, "a ring of three stages at least");
    constexpr uint32_t kAhead = SYNC ? ST - 1 : ST - 2; /* stages in flight */
    uint32_t e, rb, re;
    if (!moe_row_tile<SWIGLU, MBM, BN>(offsets, P, E, blockIdx.x * BN, out, out_width, error_word, e, rb, re)) return;
    extern __shared__ uint8_t smem_raw[];
    const uint32_t raw = (uint32_t) __cvta_generic_to_shared(smem_raw);
    const uint32_t base = (raw + 1023u) & ~1023u;
    uint8_t* ring = smem_raw + (base - raw);
    uint8_t* btiles = ring + ST * L::kRaw;
    uint8_t* Ss = btiles + (SYNC ? 1 : 2) * L::kB;
    const uint32_t tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3u, lane = tid & 31u;
    const uint32_t n0 = blockIdx.x * BN, nb = K / 32, ns = (K + 63) / 64;
    const uint32_t rows = re - rb, wrows = min((uint32_t) BN, N - n0);
    const uint8_t* wb = blocks + (size_t) e * stride;
    const uint8_t* wbias = bias + (size_t) e * stride;
    {
        const uint8_t* src = scales + (size_t) e * stride + (size_t) n0 * nb;
        for (uint32_t i = tid; i < wrows * nb; i += 256) Ss[i] = src[i];
    }

    auto issue = [&](uint32_t s) {
        if (s < ns && !((MODE & 2) && s >= kAhead)) {
            uint8_t* st = ring + (size_t) (s % ST) * L::kRaw;
            const uint32_t k0 = s * 64u;
            for (uint32_t c = tid; c < NP * MBM * 8u; c += 256) {
                const uint32_t row = c >> 3, ch = c & 7u, r = row % MBM, k = k0 + ch * 8u;
                const bool in = r < rows && k < K;
                gptoss_d_cp_async16_zfill(st + (size_t) row * 128u + ((ch ^ (row & 7u)) << 4),
                                          in ? planes + (size_t) (row / MBM) * plane_size + (size_t) (rb + r) * K + k
                                             : planes,
                                          in ? 16u : 0u);
            }
            for (uint32_t c = tid; c < BN * 2u; c += 256) {
                const uint32_t r = c % BN, j = c / BN, kb = 2 * s + j;
                const bool in = r < wrows && kb < nb;
                gptoss_d_cp_async16_zfill(st + L::kA + (j * BN + r) * 16u,
                                          in ? wb + ((size_t) (n0 + r) * nb + kb) * 16 : wb, in ? 16u : 0u);
            }
        }
        gptoss_d_cp_async_commit();
    };

    float acc[BN / 4];
#pragma unroll
    for (int i = 0; i < BN / 4; i++) acc[i] = 0.0f;
#pragma unroll
    for (int s = 0; s < (int) kAhead; s++) issue((uint32_t) s);
    for (uint32_t s = 0; s < ns; s++) {
        gptoss_d_cp_async_wait<kAhead - 1>();
        __syncthreads(); /* stage s landed everywhere; the slot issue() refills is read by nobody */
        issue(s + kAhead);
        if (PF > 0 && (s & 3u) == 0 && tid < wrows) {
            const uint32_t off = 32u * (s + PF), row_bytes = nb * 16u; /* stage s's bytes of a row: 32 from 32 s */
            if (off < row_bytes) prefetch_l2_bulk(wb + (size_t) (n0 + tid) * row_bytes + off, min(128u, row_bytes - off));
        }
        const uint8_t* st = ring + (size_t) (s % ST) * L::kRaw;
        uint8_t* bt = btiles + (SYNC ? 0 : (size_t) (s & 1u) * L::kB);
        if (!(MODE & 1))
            for (uint32_t c = tid; c < BN * 2u; c += 256) {
                const uint32_t r = c % BN, j = c / BN, kb = 2 * s + j;
                const bool valid = r < wrows && kb < nb;
                const MoeTcMult m = moe_tc_mult(valid ? Ss[(size_t) r * nb + kb] : 0u, valid);
                const uint4 q = *(const uint4*) (st + L::kA + (j * BN + r) * 16u);
                const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
                for (uint32_t w = 0; w < 4; w++) {
                    const uint32_t chunk = 4 * j + w;
                    *(uint4*) (bt + (size_t) r * 128u + ((chunk ^ (r & 7u)) << 4)) =
                        make_uint4(moe_tc_dequant2(words[w], 0, m), moe_tc_dequant2(words[w], 1, m),
                                   moe_tc_dequant2(words[w], 2, m), moe_tc_dequant2(words[w], 3, m));
                }
            }
        fence_proxy_async();
        __syncthreads();
        if (!(MODE & 4)) {
            const uint32_t a0 = base + (s % ST) * L::kRaw;
            const uint32_t b0 = base + ST * L::kRaw + (SYNC ? 0u : (s & 1u) * L::kB) + wg * (BN / 2) * 128u;
            stage_mma<BN / 2>(acc, a0, MBM * 128u, b0);
            if (SYNC) wg_wait<0>();
        }
    }
    wg_wait<0>();
    gptoss_d_cp_async_wait<0>();
    fence_regs<BN / 4>(acc);

    constexpr float kUnscale = 1.0f / (float) (1 << kMoeTcPrescale);
#pragma unroll
    for (int i = 0; i < BN / 16; i++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const uint32_t m = rb + warp * 16u + (lane >> 2) + 8u * h;
            const uint32_t n = n0 + wg * (BN / 2) + 8u * i + 2u * (lane & 3u);
            if (m >= re) continue;
            const float v0 = acc[4 * i + 2 * h] * kUnscale, v1 = acc[4 * i + 2 * h + 1] * kUnscale;
            if (SWIGLU) {
                if (n + 1 < N)
                    out[(size_t) m * out_width + n / 2] =
                        gptoss_swiglu(v0 + wg_bias(wbias, n), v1 + wg_bias(wbias, n + 1), limit);
            } else {
                if (n < N) out[(size_t) m * out_width + n] = v0 + wg_bias(wbias, n);
                if (n + 1 < N) out[(size_t) m * out_width + n + 1] = v1 + wg_bias(wbias, n + 1);
            }
        }
}

/* moe_swap_kernel<SWIGLU, TN, ST>: the MoE GEMM with the operands' roles swapped (written in
 * the eleventh sitting, measured in the twelfth on an H100: the library's bits, but no faster
 * than moe_kernel at 20b's ~64 rows an expert (705 vs 676 us, up-projection pp512), slower with
 * 128-token tiles (887 us; the engine's 20b pp512 13,220 vs 15,230 tok/s, 120b 2,946 vs 4,309),
 * and slower than the library's 16-row ring at 64 streams (16 tokens, 8 stages: 365 vs 255 us)). The expert's weight rows are wgmma's M (a
 * block: 128 weight rows, 64 a warpgroup) and its tokens the N: a block takes up to TN (16,
 * 32, 64 or 128) of one expert's rows and multiplies them as N = 16, 32, 64 or 128 (the
 * least that holds them), so an expert's last, partial tile costs at most twice its rows
 * instead of a 64-row
 * tile (at 20b pp512 the experts hold ~64 rows: moe_kernel's 46 tiles do 2,944 rows of work
 * for 2,048; at 120b pp512, ~16 rows an expert, 8,192 for 2,048). The products and their
 * order per output are moe_kernel's (per k-step of 16, the planes from the last to the
 * first); that the tensor cores sum them into the same bits with the roles swapped is what
 * the lab checks (mma.sync did: bench/lab/tc_gemv_lab.cu). A stage: the token planes (TN
 * rows of 128 bytes each) and the raw MXFP4 bytes of the 128 weight rows in a cp.async ring;
 * the block dequantises the weights into one of two bf16 tiles (the A operand); outputs
 * are stored per token row (SwiGLU pairs, adjacent weight rows, meet by a shuffle). */
template <int TN>
struct MoeSwapLayout {
    static constexpr uint32_t kBW = 128;                    /* weight rows a block */
    static constexpr uint32_t kP = NP * TN * 128u;          /* a stage's token planes */
    static constexpr uint32_t kW = kBW * 32u;               /* a stage's raw MXFP4 bytes */
    static constexpr uint32_t kRaw = (kP + kW + 1023u) / 1024u * 1024u;
    static constexpr uint32_t kA = kBW * 128u;              /* a dequantised weight tile */
};
template <int TN, int ST>
inline size_t moe_swap_smem_bytes(uint32_t K) {
    using L = MoeSwapLayout<TN>;
    return (size_t) ST * L::kRaw + 2 * L::kA + (size_t) L::kBW * (K / 32) + 1024;
}

/* one stage's MMAs with the weights as A (64 rows) and the tokens as B (N rows a plane,
 * plane_bytes apart), the planes from the last to the first per k-step */
template <int N>
static __device__ __forceinline__ void stage_mma_swap(float* acc, uint32_t a, uint32_t b, uint32_t plane_bytes) {
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < BK / 16; kk++)
#pragma unroll
        for (int p = NP - 1; p >= 0; p--) Wgmma<N>::mma(acc, desc_sw128(a + kk * 32), desc_sw128(b + p * plane_bytes + kk * 32));
    wg_commit();
    wg_wait<1>();
}

template <bool SWIGLU, int TN, int ST>
__global__ void __launch_bounds__(256, TN <= 64 ? 2 : 1)
    moe_swap_kernel(const uint32_t* __restrict__ offsets, const uint16_t* __restrict__ planes, size_t plane_size,
                    const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales,
                    const uint8_t* __restrict__ bias, size_t stride, float* __restrict__ out, uint32_t P, uint32_t E,
                    uint32_t K, uint32_t N, uint32_t out_width, float limit, uint32_t* error_word) {
    using L = MoeSwapLayout<TN>;
    constexpr uint32_t BW = L::kBW;
    static_assert(ST >= 3, "the ring keeps ST - 2 stages in flight");
    static_assert(TN == 16 || TN == 32 || TN == 64 || TN == 128, "token tiles of 16 .. 128");
    uint32_t e, rb, re;
    if (!moe_row_tile<SWIGLU, TN, BW>(offsets, P, E, blockIdx.x * BW, out, out_width, error_word, e, rb, re)) return;
    extern __shared__ uint8_t smem_raw[];
    const uint32_t raw = (uint32_t) __cvta_generic_to_shared(smem_raw);
    const uint32_t base = (raw + 1023u) & ~1023u;
    uint8_t* ring = smem_raw + (base - raw);
    uint8_t* wtiles = ring + ST * L::kRaw;
    uint8_t* Ss = wtiles + 2 * L::kA;
    const uint32_t tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3u, lane = tid & 31u;
    const uint32_t n0 = blockIdx.x * BW, nb = K / 32, ns = (K + 63) / 64;
    const uint32_t rows = re - rb, wrows = min(BW, N - n0);
    /* the N of the block's MMAs: 16, 32, 64 or 128 tokens (0 .. 3) */
    const uint32_t nsel = rows <= 16 ? 0 : rows <= 32 ? 1 : rows <= 64 ? 2 : 3;
    const uint8_t* wb = blocks + (size_t) e * stride;
    const uint8_t* wbias = bias + (size_t) e * stride;
    {
        const uint8_t* src = scales + (size_t) e * stride + (size_t) n0 * nb;
        for (uint32_t i = tid; i < wrows * nb; i += 256) Ss[i] = src[i];
    }

    auto issue = [&](uint32_t s) {
        if (s < ns) {
            uint8_t* st = ring + (size_t) (s % ST) * L::kRaw;
            const uint32_t k0 = s * 64u;
            for (uint32_t c = tid; c < NP * TN * 8u; c += 256) {
                const uint32_t row = c >> 3, ch = c & 7u, r = row % TN, k = k0 + ch * 8u;
                const bool in = r < rows && k < K;
                gptoss_d_cp_async16_zfill(st + (size_t) row * 128u + ((ch ^ (row & 7u)) << 4),
                                          in ? planes + (size_t) (row / TN) * plane_size + (size_t) (rb + r) * K + k
                                             : planes,
                                          in ? 16u : 0u);
            }
            for (uint32_t c = tid; c < BW * 2u; c += 256) {
                const uint32_t r = c % BW, j = c / BW, kb = 2 * s + j;
                const bool in = r < wrows && kb < nb;
                gptoss_d_cp_async16_zfill(st + L::kP + (j * BW + r) * 16u,
                                          in ? wb + ((size_t) (n0 + r) * nb + kb) * 16 : wb, in ? 16u : 0u);
            }
        }
        gptoss_d_cp_async_commit();
    };

    float acc[TN / 2];
#pragma unroll
    for (int i = 0; i < TN / 2; i++) acc[i] = 0.0f;
#pragma unroll
    for (int s = 0; s < ST - 2; s++) issue((uint32_t) s);
    for (uint32_t s = 0; s < ns; s++) {
        gptoss_d_cp_async_wait<ST - 3>();
        __syncthreads(); /* stage s landed everywhere; stage s - 2's MMAs are done */
        issue(s + ST - 2);
        const uint8_t* st = ring + (size_t) (s % ST) * L::kRaw;
        uint8_t* wt = wtiles + (size_t) (s & 1u) * L::kA;
        for (uint32_t c = tid; c < BW * 2u; c += 256) {
            const uint32_t r = c % BW, j = c / BW, kb = 2 * s + j;
            const bool valid = r < wrows && kb < nb;
            const MoeTcMult m = moe_tc_mult(valid ? Ss[(size_t) r * nb + kb] : 0u, valid);
            const uint4 q = *(const uint4*) (st + L::kP + (j * BW + r) * 16u);
            const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
            for (uint32_t w = 0; w < 4; w++) {
                const uint32_t chunk = 4 * j + w;
                *(uint4*) (wt + (size_t) r * 128u + ((chunk ^ (r & 7u)) << 4)) =
                    make_uint4(moe_tc_dequant2(words[w], 0, m), moe_tc_dequant2(words[w], 1, m),
                               moe_tc_dequant2(words[w], 2, m), moe_tc_dequant2(words[w], 3, m));
            }
        }
        fence_proxy_async();
        __syncthreads();
        const uint32_t a0 = base + ST * L::kRaw + (s & 1u) * L::kA + wg * 64u * 128u;
        const uint32_t b0 = base + (s % ST) * L::kRaw;
        /* nsel <= log2(TN / 16): the N above TN are never taken (clamped to instantiate) */
        if (nsel == 3) stage_mma_swap<TN < 128 ? TN : 128>(acc, a0, b0, TN * 128u);
        else if (nsel == 2) stage_mma_swap<TN < 64 ? TN : 64>(acc, a0, b0, TN * 128u);
        else if (nsel == 1) stage_mma_swap<TN < 32 ? TN : 32>(acc, a0, b0, TN * 128u);
        else stage_mma_swap<16>(acc, a0, b0, TN * 128u);
    }
    wg_wait<0>();
    gptoss_d_cp_async_wait<0>();
    fence_regs<TN / 2>(acc);

    /* acc[4 i + 2 h + j]: weight row wg 64 + warp 16 + lane / 4 + 8 h, token 8 i + 2 (lane % 4) + j */
    constexpr float kUnscale = 1.0f / (float) (1 << kMoeTcPrescale);
    const uint32_t ntok = 16u << nsel;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const uint32_t wrow = n0 + wg * 64u + warp * 16u + (lane >> 2) + 8u * h;
        const float b0 = wrow < N ? wg_bias(wbias, wrow) : 0.0f;
        const float b1 = SWIGLU && wrow + 1 < N ? wg_bias(wbias, wrow + 1) : 0.0f;
#pragma unroll
        for (int i = 0; i < TN / 8; i++) {
            if (8u * i >= ntok) break;
#pragma unroll
            for (int j = 0; j < 2; j++) {
                const uint32_t t = 8u * i + 2u * (lane & 3u) + j;
                const float v = acc[4 * i + 2 * h + j] * kUnscale;
                if (SWIGLU) {
                    /* the odd weight row (the linear half) is the lane 4 above */
                    const float odd = __shfl_xor_sync(0xFFFFFFFFu, v, 4);
                    if (((lane >> 2) & 1u) == 0 && t < rows && wrow + 1 < N)
                        out[(size_t) (rb + t) * out_width + wrow / 2] = gptoss_swiglu(v + b0, odd + b1, limit);
                } else if (t < rows && wrow < N) {
                    out[(size_t) (rb + t) * out_width + wrow] = v + b0;
                }
            }
        }
    }
}

}  // namespace gptoss_wg

#endif
