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
 * output are the library's in every timed-for-real variant (MODE = 0): the lab checks bits. */
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

}  // namespace gptoss_wg

#endif
