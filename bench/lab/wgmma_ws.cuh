/* The warp-specialised forms of the wgmma GEMMs (bench/lab only): a producer warpgroup copies
 * the stages (and, in the MoE, dequantises them) and arrives on mbarriers, the multiplying
 * warpgroups wait on them. Measured in the eleventh sitting on an H100 (docs/CUDA_NOTES.md):
 * the library's bits, the MoE level with moe_kernel, the dense slower than gemm_kernel; kept
 * for the labs' comparisons (wgmma_lab, wgmma_latency_lab), not for the library. */
#ifndef GPTOSS_BENCH_LAB_WGMMA_WS_CUH
#define GPTOSS_BENCH_LAB_WGMMA_WS_CUH

#include "cuda/wgmma.cuh"

namespace gptoss_wg {

/* mbarriers of the warp-specialised kernel (shared::cta): init by one thread before a
 * __syncthreads, arrive (release), wait on a phase's parity (acquire) */
static __device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
    GPTOSS_WGMMA_ASM("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
static __device__ __forceinline__ void mbar_arrive(uint32_t bar) {
    GPTOSS_WGMMA_ASM("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}" ::"r"(bar) : "memory");
}
static __device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    uint32_t done = 1;
    do {
        GPTOSS_WGMMA_ASM("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}"
                         : "=r"(done)
                         : "r"(bar), "r"(parity)
                         : "memory");
    } while (!done);
}

/* moe_ws_kernel<SWIGLU, BN, ST>: the MoE GEMM of moe_kernel (the same tiles of 64 rows of one
 * expert, the same products in the same order, so the same bits), warp-specialised: warpgroup
 * 0 produces, warpgroup 1 multiplies (m64 nBN k16, BN weight rows at once: the A tile is read
 * once per k-step for all BN columns, where moe_kernel's two warpgroups read it twice).
 * A ring slot holds a stage of 64 columns: the two activation planes (swizzled), the raw MXFP4
 * bytes of the BN weight rows, and their dequantised bf16 tile (128-byte swizzle). The
 * producer copies stage t (cp.async) into its slot once the multiplier released it (the
 * `empty` barrier), and L = ST - 2 stages behind, after its own copies of that stage landed,
 * dequantises it (each thread its own weight rows, so no barrier among the producers) and
 * arrives on the slot's `full` barrier; the multiplier waits on it, issues the stage's
 * wgmmas, and releases the previous stage's slot once those are done. No __syncthreads in
 * the loop. */
template <int BN>
struct MoeWsLayout {
    static constexpr uint32_t kA = NP * MBM * 128u; /* a stage's activation planes */
    static constexpr uint32_t kW = BN * 32u;        /* a stage's raw MXFP4 bytes */
    static constexpr uint32_t kB = BN * 128u;       /* its dequantised bf16 tile */
    static constexpr uint32_t kSlot = (kA + kW + kB + 1023u) / 1024u * 1024u;
};
template <int BN, int ST>
constexpr size_t moe_ws_smem_bytes() {
    return (size_t) ST * MoeWsLayout<BN>::kSlot + 1024 + 2 * ST * 8;
}

template <bool SWIGLU, int BN, int ST>
__global__ void __launch_bounds__(256, BN == 128 && ST == 3 ? 2 : 1)
    moe_ws_kernel(const uint32_t* __restrict__ offsets, const uint16_t* __restrict__ planes, size_t plane_size,
                  const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales,
                  const uint8_t* __restrict__ bias, size_t stride, float* __restrict__ out, uint32_t P, uint32_t E,
                  uint32_t K, uint32_t N, uint32_t out_width, float limit, uint32_t* error_word) {
    using L = MoeWsLayout<BN>;
    static_assert(ST >= 3, "the producer runs ST - 2 stages ahead of its dequantisation");
    constexpr uint32_t kAhead = ST - 2;
    uint32_t e, rb, re;
    if (!moe_row_tile<SWIGLU, MBM, BN>(offsets, P, E, blockIdx.x * BN, out, out_width, error_word, e, rb, re)) return;
    extern __shared__ uint8_t smem_raw[];
    const uint32_t raw = (uint32_t) __cvta_generic_to_shared(smem_raw);
    const uint32_t base = (raw + 1023u) & ~1023u;
    uint8_t* ring = smem_raw + (base - raw);
    const uint32_t bars = base + ST * L::kSlot; /* full[ST], then empty[ST] */
    const uint32_t tid = threadIdx.x, wg = tid >> 7, pt = tid & 127u;
    const uint32_t n0 = blockIdx.x * BN, nb = K / 32, ns = (K + 63) / 64;
    const uint32_t rows = re - rb, wrows = min((uint32_t) BN, N - n0);
    if (tid == 0)
        for (uint32_t i = 0; i < ST; i++) {
            mbar_init(bars + 8 * i, 128);        /* full: the 128 producers */
            mbar_init(bars + 8 * (ST + i), 128); /* empty: the 128 multipliers */
        }
    __syncthreads();

    if (wg == 0) {
        /* the producer */
        const uint8_t* wb = blocks + (size_t) e * stride;
        const uint8_t* ws = scales + (size_t) e * stride;
        for (uint32_t t = 0; t < ns + kAhead; t++) {
            if (t < ns) {
                const uint32_t slot = t % ST;
                mbar_wait(bars + 8 * (ST + slot), ((t / ST) & 1u) ^ 1u);
                uint8_t* st = ring + (size_t) slot * L::kSlot;
                const uint32_t k0 = t * 64u;
                for (uint32_t c = pt; c < NP * MBM * 8u; c += 128) {
                    const uint32_t row = c >> 3, ch = c & 7u, r = row % MBM, k = k0 + ch * 8u;
                    const bool in = r < rows && k < K;
                    gptoss_d_cp_async16_zfill(st + (size_t) row * 128u + ((ch ^ (row & 7u)) << 4),
                                              in ? planes + (size_t) (row / MBM) * plane_size + (size_t) (rb + r) * K + k
                                                 : planes,
                                              in ? 16u : 0u);
                }
                for (uint32_t r = pt; r < (uint32_t) BN; r += 128)
#pragma unroll
                    for (uint32_t j = 0; j < 2; j++) {
                        const uint32_t kb = 2 * t + j;
                        const bool in = r < wrows && kb < nb;
                        gptoss_d_cp_async16_zfill(st + L::kA + (j * BN + r) * 16u,
                                                  in ? wb + ((size_t) (n0 + r) * nb + kb) * 16 : wb, in ? 16u : 0u);
                    }
            }
            gptoss_d_cp_async_commit();
            if (t < kAhead) continue;
            /* stage u: this thread's copies landed; dequantise its rows, then arrive */
            const uint32_t u = t - kAhead, slot = u % ST;
            gptoss_d_cp_async_wait<kAhead>();
            uint8_t* st = ring + (size_t) slot * L::kSlot;
            uint8_t* bt = st + L::kA + L::kW;
            for (uint32_t r = pt; r < (uint32_t) BN; r += 128)
#pragma unroll
                for (uint32_t j = 0; j < 2; j++) {
                    const uint32_t kb = 2 * u + j;
                    const bool valid = r < wrows && kb < nb;
                    const MoeTcMult m = moe_tc_mult(valid ? ws[(size_t) (n0 + r) * nb + kb] : 0u, valid);
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
            mbar_arrive(bars + 8 * slot);
        }
        return;
    }

    /* the multiplier */
    const uint32_t warp = (tid >> 5) & 3u, lane = tid & 31u;
    float acc[BN / 2];
#pragma unroll
    for (int i = 0; i < BN / 2; i++) acc[i] = 0.0f;
    for (uint32_t s = 0; s < ns; s++) {
        const uint32_t slot = s % ST;
        mbar_wait(bars + 8 * slot, (s / ST) & 1u);
        fence_proxy_async();
        const uint32_t a0 = base + slot * L::kSlot;
        stage_mma<BN>(acc, a0, MBM * 128u, a0 + L::kA + L::kW); /* leaves stage s in flight */
        if (s > 0) mbar_arrive(bars + 8 * (ST + (s - 1) % ST));
    }
    wg_wait<0>();
    fence_regs<BN / 2>(acc);

    const uint8_t* wbias = bias + (size_t) e * stride;
    constexpr float kUnscale = 1.0f / (float) (1 << kMoeTcPrescale);
#pragma unroll
    for (int i = 0; i < BN / 8; i++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const uint32_t m = rb + warp * 16u + (lane >> 2) + 8u * h;
            const uint32_t n = n0 + 8u * i + 2u * (lane & 3u);
            if (m >= re) continue;
            const float v0 = acc[4 * i + 2 * h] * kUnscale, v1 = acc[4 * i + 2 * h + 1] * kUnscale;
            if (n + 1 < N) {
                /* both biases in one load (n is even, the rows' bias 4-byte aligned) */
                const uint32_t bw = __ldg((const unsigned int*) (wbias + 2 * (size_t) n));
                const float b0 = __uint_as_float(bw << 16), b1 = __uint_as_float(bw & 0xFFFF0000u);
                if (SWIGLU) {
                    out[(size_t) m * out_width + n / 2] = gptoss_swiglu(v0 + b0, v1 + b1, limit);
                } else {
                    out[(size_t) m * out_width + n] = v0 + b0;
                    out[(size_t) m * out_width + n + 1] = v1 + b1;
                }
            } else if (!SWIGLU && n < N) {
                out[(size_t) m * out_width + n] = v0 + wg_bias(wbias, n);
            }
        }
}

/* gemm_ws_kernel<BN, ST>: gemm_kernel's tiles (128 token rows x BN weight rows) and sums
 * (the same bits), warp-specialised as moe_ws_kernel: warpgroup 0 copies stage t into its
 * ring slot once both multiplying warpgroups released it, and ST - 2 stages later, after its
 * copies landed, arrives on the slot's `full` barrier; warpgroups 1 and 2 (64 token rows
 * each) wait on it, issue the stage's wgmmas and release the previous stage's slot. */
template <int BN>
__host__ __device__ constexpr uint32_t ws_stage_bytes() {
    return (uint32_t) (NP * 128 + BN) * 128u;
}
template <int BN, int ST>
constexpr size_t gemm_ws_smem_bytes() {
    return (size_t) ST * ws_stage_bytes<BN>() + 1024 + 2 * ST * 8;
}

template <int BN, int ST>
__global__ void __launch_bounds__(384, 1)
    gemm_ws_kernel(const uint16_t* __restrict__ planes, size_t plane_size, const uint16_t* __restrict__ W,
                   const uint16_t* __restrict__ bias, float* __restrict__ out, uint32_t M, uint32_t K, uint32_t N,
                   bool add) {
    static_assert(ST >= 3, "the producer runs ST - 2 stages ahead of its arrivals");
    constexpr uint32_t kAhead = ST - 2, kRows = 128, kA = kRows * 128u, kStage = ws_stage_bytes<BN>();
    extern __shared__ uint8_t smem_raw[];
    const uint32_t raw = (uint32_t) __cvta_generic_to_shared(smem_raw);
    const uint32_t base = (raw + 1023u) & ~1023u;
    uint8_t* ring = smem_raw + (base - raw);
    const uint32_t bars = base + ST * kStage; /* full[ST], then empty[ST] */
    const uint32_t tid = threadIdx.x, wg = tid >> 7, pt = tid & 127u;
    const uint32_t m0 = blockIdx.x * kRows, n0 = blockIdx.y * BN, nk = (K + BK - 1) / BK;
    if (tid == 0)
        for (uint32_t i = 0; i < ST; i++) {
            mbar_init(bars + 8 * i, 128);        /* full: the 128 producers */
            mbar_init(bars + 8 * (ST + i), 256); /* empty: the 256 multipliers */
        }
    __syncthreads();

    if (wg == 0) {
        for (uint32_t t = 0; t < nk + kAhead; t++) {
            if (t < nk) {
                const uint32_t slot = t % ST;
                mbar_wait(bars + 8 * (ST + slot), ((t / ST) & 1u) ^ 1u);
                copy_dense_stage<BN, kRows>(ring + (size_t) slot * kStage, planes, plane_size, W, m0, n0, M, K, N,
                                            t * BK, pt, 128);
            }
            gptoss_d_cp_async_commit();
            if (t < kAhead) continue;
            gptoss_d_cp_async_wait<kAhead>();
            fence_proxy_async();
            mbar_arrive(bars + 8 * ((t - kAhead) % ST));
        }
        return;
    }

    const uint32_t c = wg - 1, warp = (tid >> 5) & 3u, lane = tid & 31u;
    float acc[BN / 2];
#pragma unroll
    for (int i = 0; i < BN / 2; i++) acc[i] = 0.0f;
    for (uint32_t s = 0; s < nk; s++) {
        const uint32_t slot = s % ST;
        mbar_wait(bars + 8 * slot, (s / ST) & 1u);
        fence_proxy_async();
        const uint32_t st = base + slot * kStage;
        stage_mma<BN>(acc, st + c * 64u * 128u, kA, st + NP * kA);
        if (s > 0) mbar_arrive(bars + 8 * (ST + (s - 1) % ST));
    }
    wg_wait<0>();
    fence_regs<BN / 2>(acc);

#pragma unroll
    for (int i = 0; i < BN / 8; i++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const uint32_t m = m0 + c * 64u + warp * 16u + (lane >> 2) + 8u * h;
            const uint32_t n = n0 + 8u * i + 2u * (lane & 3u);
            if (m < M) {
                if (n < N) gptoss_d_store_result(out + (size_t) m * N + n, bias, n, acc[4 * i + 2 * h], add);
                if (n + 1 < N) gptoss_d_store_result(out + (size_t) m * N + n + 1, bias, n + 1, acc[4 * i + 2 * h + 1], add);
            }
        }
}

}  // namespace gptoss_wg

#endif
