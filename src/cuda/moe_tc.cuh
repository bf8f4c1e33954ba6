/* Device helpers of the tensor-core MoE GEMMs (moe.cu, wgmma.cuh, the kernel labs): the exact
 * bf16 dequantisation of MXFP4 weights (pre-scaled by 2^kMoeTcPrescale, see
 * moe_gemm_tc_kernel) and the walk from a block to its (expert, row tile). */
#ifndef GPTOSS_CUDA_MOE_TC_CUH
#define GPTOSS_CUDA_MOE_TC_CUH

#include <stdint.h>

#include "cuda/common.cuh"

/* A lab hook, not API (bench/lab/wgmma_lab.cu): the row tile of the MoE prefill GEMM, 0 for
 * the library's rule; 16, 32 or 64 force the ring kernel with that tile, 65 the 64-row tile
 * the rule would run (the register-fed wgmma kernel where it runs), 66 the 64-row wgmma
 * kernel with the bf16 tile in shared memory. The sums are the same for every tile:
 * each output is one row's dot product over the same k-steps and planes in the same order. */
extern "C" int gptoss_cuda_lab_moe_tile;

/* The bf16 weights of the tensor-core MoE GEMMs are w x 2^kMoeTcPrescale (exact); the
 * epilogue multiplies the sums by 2^-kMoeTcPrescale. */
constexpr int kMoeTcPrescale = 10;

/* The exact bf16 dequantisation of both MoE tensor-core kernels, in integer ops. A byte of an MXFP4 block holds two fp4 values (low nibble: the even
 * column). An E2M1 nibble's three magnitude bits placed at bits 6..8 of a bf16 (the exponent's
 * two low bits and the mantissa's top bit) and its sign at bit 15 make the bf16 fp4 x 2^-126
 * (subnormal for 0 and 0.5, exactly); moe_fp4x2_tiny does both nibbles of byte k of a word
 * (even column in the low half) with two multiplies whose shifted copies do not overlap. The
 * block's multiplier 2^(stored - 131) (the weight x 2^kMoeTcPrescale) is then 2^(stored - 5)
 * on that: two bf16 factors (2^127 x 2^(stored - 132) from stored byte 133 on);
 * each mul.rn.bf16x2 is exact (fp4 x 2^k with k >= -132 is a bf16), so the result has the
 * bits of the f32 product truncated to bf16 (fp4 x multiplier in f32, the kernels' earlier
 * form). The tables this replaces, a 256-entry byte table in the 16-row kernel and a 16-entry
 * f32 table in the 64-row one, made them wait on shared-memory bank conflicts
 * (docs/CUDA_NOTES.md). */
static __device__ __forceinline__ uint32_t moe_fp4x2_tiny(uint32_t word, uint32_t k) {
    const uint32_t b = __byte_perm(word, 0u, 0x4440u | k); /* byte k, zero-extended */
    const uint32_t em = b * 0x40040u;                      /* b << 6 | b << 18: magnitudes at 6..8, 22..24 */
    const uint32_t sg = b * 0x1001000u;                    /* b << 12 | b << 24: signs at 15, 31 */
    return (em & 0x01C001C0u) | (sg & 0x80008000u);
}
/* The multipliers of a stored scale byte (0 for rows past the weights): lo x hi = 2^(stored - 5)
 * as bf16 bits in both halves (hi = 1.0 up to stored byte 132; the model's bytes lie around
 * 127 + 14, so both factors are always applied); f32 = 2^(stored - 131) for the path without a
 * bf16x2 multiply. */
struct MoeTcMult {
    uint32_t lo, hi;
    float f32;
};
static __device__ __forceinline__ MoeTcMult moe_tc_mult(uint32_t stored, bool valid) {
    static_assert(kMoeTcPrescale == 10, "the multiplier is 2^(stored - 131)");
    const int e = (int) stored - 5; /* -5 .. 250 */
    const int a = e < 127 ? e : 127, b = e - a;
    MoeTcMult m;
    m.lo = valid ? ((uint32_t) (a + 127) << 7) * 0x10001u : 0u;
    m.hi = ((uint32_t) (b + 127) << 7) * 0x10001u;
    m.f32 = valid ? gptoss_exp2i((int) stored - 131) : 0.0f;
    return m;
}
/* byte k of word, dequantised */
static __device__ __forceinline__ uint32_t moe_tc_dequant2(uint32_t word, uint32_t k, const MoeTcMult& m) {
    const uint32_t v = moe_fp4x2_tiny(word, k);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    uint32_t d;
    /* a * b per bf16 half, rounded to nearest (exact here); bf16 keeps subnormals */
    asm("mul.rn.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(v), "r"(m.lo));
    asm("mul.rn.bf16x2 %0, %1, %2;" : "=r"(d) : "r"(d), "r"(m.hi));
    return d;
#else
    /* no bf16x2 multiply before sm_90: each half in f32 (fp4 x 2^-126 x 2^126 = fp4, then the
     * multiplier; exact), truncated back */
    const float u = 8.507059173023462e37f; /* 2^126 */
    return (__float_as_uint(__uint_as_float(v << 16) * u * m.f32) >> 16) |
           (__float_as_uint(__uint_as_float(v & 0xFFFF0000u) * u * m.f32) & 0xFFFF0000u);
#endif
}

/* The (expert, row tile) of block (blockIdx.x, blockIdx.y) with BM-row tiles: y walks the
 * experts' tiles in order. Validates the offsets on the way: when they are not a valid
 * partition of the P rows it sets the error, writes NaN over the block's part of the
 * output and returns false; also false past the last tile (grids are sized for the most
 * tiles P rows can need). BN: the weight rows of a block (the output columns it NaNs). */
template <bool SWIGLU, int BM, int BN = 128>
static __device__ bool moe_row_tile(const uint32_t* __restrict__ offsets, uint32_t P, uint32_t E, uint32_t n0, float* out,
                             uint32_t out_width, uint32_t* error_word, uint32_t& expert, uint32_t& row_begin,
                             uint32_t& row_end) {
    uint32_t y = blockIdx.y;
    uint32_t e_found = 0xFFFFFFFFu;
    row_begin = row_end = 0;
    bool bad = offsets[0] != 0 || offsets[E] != P;
    for (uint32_t e = 0; e < E; e++) {
        const uint32_t a = offsets[e], b = offsets[e + 1];
        if (b < a || b > P) {
            bad = true;
            break;
        }
        const uint32_t tiles = (b - a + BM - 1) / BM;
        if (e_found == 0xFFFFFFFFu) {
            if (y < tiles) {
                e_found = e;
                row_begin = a + y * BM;
                row_end = min(row_begin + BM, b);
            } else {
                y -= tiles;
            }
        }
    }
    if (bad) {
        if (threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.y == 0) {
            gptoss_d_set_error(error_word, GPTOSS_CUDA_ERROR_ROUTING_OFFSET);
        }
        /* NaN rows: block y covers rows [y*BM, y*BM+BM) of the output columns of tile x */
        const uint32_t m_begin = blockIdx.y * BM;
        const uint32_t c_begin = SWIGLU ? n0 / 2 : n0, c_end = min(c_begin + (SWIGLU ? BN / 2 : BN), out_width);
        for (uint32_t idx = threadIdx.x; idx < BM * BN; idx += blockDim.x) {
            const uint32_t m = m_begin + idx / BN, c = c_begin + idx % BN;
            if (m < P && c < c_end) out[(size_t) m * out_width + c] = __uint_as_float(0x7FC00000u);
        }
        return false;
    }
    expert = e_found;
    return e_found != 0xFFFFFFFFu;
}

#endif
