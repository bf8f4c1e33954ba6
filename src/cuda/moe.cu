/* MXFP4 expert matmuls. Per expert e: blocks u8[rows][cols/32][16], scales u8[rows][cols/32]
 * (+14-biased: multiplier 2^(stored-141)), bias bf16[rows], all at byte offset
 * e*expert_stride. Decode kernels: one (token, slot) pair per blockIdx.y, its activation
 * row staged in shared memory, one warp per pair of weight rows (the glu/linear pair for
 * SwiGLU), 16-byte block loads, exact dequantisation (fp4 values as f16 = fp4 * 2^-14).
 * Prefill kernels: a tensor-core GEMM over expert-grouped rows (split-bf16 activations,
 * exactly dequantised weights; see moe_gemm_tc_kernel). */
#include <cuda_fp16.h>

#include "cuda/matmul.cuh"
#include "cuda/moe_tc.cuh"
#include "cuda/wgmma.cuh"

/* The labs' override of the MoE prefill GEMM's row tile (src/cuda/moe_tc.cuh; not API) */
int gptoss_cuda_lab_moe_tile = 0;

namespace {

constexpr int kMoeWarps = 8;
/* Units (pairs of weight rows) per warp: two for the up-projection + SwiGLU; one for the
 * down-projection, which has half the rows: twice the blocks fill the card better (the
 * up-projection gains nothing from one; measurements: docs/CUDA_NOTES.md). */
constexpr int kUnitsPerWarp = 2;
constexpr int kDownUnitsPerWarp = 1;
__host__ __device__ constexpr uint32_t units_per_block(bool swiglu) {
    return (uint32_t) kMoeWarps * (swiglu ? kUnitsPerWarp : kDownUnitsPerWarp);
}
constexpr int kXPad = 36; /* 32 floats of a block + 4 floats padding (bank-conflict free) */

__device__ __forceinline__ float nan_f() { return __uint_as_float(0x7FC00000u); }

__device__ __forceinline__ float bias_at(const uint8_t* bias_bytes, uint32_t r) {
    const uint32_t lo = bias_bytes[2 * (size_t) r], hi = bias_bytes[2 * (size_t) r + 1];
    return gptoss_bf16_to_f32((uint16_t) (lo | (hi << 8)));
}

/* Multiplier of a +14-biased scale byte: 2^(stored - 141), exact. */
__device__ __forceinline__ float mf4_multiplier(uint32_t stored) { return gptoss_exp2i((int) stored - 141); }

__device__ __forceinline__ float2 h2f(uint32_t bits) {
    __half2 h;
    memcpy(&h, &bits, 4);
    return __half22float2(h);
}

/* The 8 values of one u32 of an MXFP4 block, exactly, times 2^-14 (as f16 bit patterns
 * widened): a = e0, e4; b = e1, e5; c = e2, e6; d = e3, e7. */
struct Fp4x8 {
    float2 a, b, c, d;
};
__device__ __forceinline__ Fp4x8 fp4x8(uint32_t w) {
    return {h2f(((w << 9) & 0x0E000E00u) | ((w << 12) & 0x80008000u)),
            h2f(((w << 5) & 0x0E000E00u) | ((w << 8) & 0x80008000u)),
            h2f(((w << 1) & 0x0E000E00u) | ((w << 4) & 0x80008000u)), h2f(((w >> 3) & 0x0E000E00u) | (w & 0x80008000u))};
}

/* p + sum_e x[e] * v[e] in element order (one chain: the decode kernels' order). */
__device__ __forceinline__ float dot8_values(const Fp4x8& v, float4 xa, float4 xb, float p) {
    p = fmaf(xa.x, v.a.x, p);
    p = fmaf(xa.y, v.b.x, p);
    p = fmaf(xa.z, v.c.x, p);
    p = fmaf(xa.w, v.d.x, p);
    p = fmaf(xb.x, v.a.y, p);
    p = fmaf(xb.y, v.b.y, p);
    p = fmaf(xb.z, v.c.y, p);
    p = fmaf(xb.w, v.d.y, p);
    return p;
}

/* partial = sum_e x[e] * fp4[e] * 2^-14 over the 8 values of one u32 of an MXFP4 block. */
__device__ __forceinline__ float dot8_fp4(uint32_t w, float4 xa, float4 xb, float p) {
    return dot8_values(fp4x8(w), xa, xb, p);
}

/* x . block (32 values) * 2^-14 */
__device__ __forceinline__ float dot_block(uint4 q, const float* xb) {
    const float4* x4 = (const float4*) xb;
    float p = 0.0f;
    p = dot8_fp4(q.x, x4[0], x4[1], p);
    p = dot8_fp4(q.y, x4[2], x4[3], p);
    p = dot8_fp4(q.z, x4[4], x4[5], p);
    p = dot8_fp4(q.w, x4[6], x4[7], p);
    return p;
}

template <bool VEC>
__device__ __forceinline__ uint4 load_block(const uint8_t* p) {
    if constexpr (VEC) {
        return gptoss_d_ld_stream(p);
    } else {
    uint32_t v[4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        v[i] = (uint32_t) p[4 * i] | ((uint32_t) p[4 * i + 1] << 8) | ((uint32_t) p[4 * i + 2] << 16) |
               ((uint32_t) p[4 * i + 3] << 24);
    }
    return make_uint4(v[0], v[1], v[2], v[3]);
    }
}

/* SWIGLU: unit o = output o from weight rows 2o, 2o+1; out width num_out = num_rows.
 * plain: unit u = weight rows 2u, 2u+1 (the second may not exist); out width num_out. */
/* At most 64 registers (4 blocks of 8 warps per SM instead of 2 with the unconstrained
 * 82-90): more warps in flight hide the weight loads better than the registers save
 * (docs/CUDA_NOTES.md). */
template <bool SWIGLU, bool VEC, bool XVEC>
__global__ void __launch_bounds__(kMoeWarps * 32, 4) moe_gemv_kernel(
    const float* __restrict__ input, const uint32_t* __restrict__ ids, const uint8_t* __restrict__ blocks,
    const uint8_t* __restrict__ scales, const uint8_t* __restrict__ bias_bytes, size_t stride,
    float* __restrict__ out, uint32_t T, uint32_t k, uint32_t E, uint32_t C, uint32_t num_out, float limit,
    uint32_t* error_word) {
    extern __shared__ __align__(16) float xs[];
    gptoss_d_pdl_trigger();
    gptoss_d_pdl_wait();
    const uint32_t pair = blockIdx.y; /* j*T + t */
    const uint32_t j = pair / T, t = pair % T;
    const uint32_t e = ids[(size_t) t * k + j];
    float* orow = out + (size_t) pair * num_out;
    const uint32_t num_w_rows = SWIGLU ? 2 * num_out : num_out;
    const uint32_t num_units = SWIGLU ? num_out : (num_out + 1) / 2;
    constexpr uint32_t kUnitsPerBlock = units_per_block(SWIGLU);
    const uint32_t unit0 = blockIdx.x * kUnitsPerBlock;
    const uint32_t warp = threadIdx.x >> 5, lane = threadIdx.x & 31u;
    if (e >= E) {
        if (threadIdx.x == 0) gptoss_d_set_error(error_word, GPTOSS_CUDA_ERROR_EXPERT_ID);
        const uint32_t first = SWIGLU ? unit0 : 2 * unit0;
        const uint32_t last = min(first + (SWIGLU ? kUnitsPerBlock : 2 * kUnitsPerBlock), num_out);
        for (uint32_t o = first + threadIdx.x; o < last; o += blockDim.x) orow[o] = nan_f();
        return;
    }
    const float* x = SWIGLU ? input + (size_t) t * C : input + (size_t) pair * C;
    const uint32_t nb = C / 32;
    const uint8_t* wb = blocks + (size_t) e * stride;
    const uint8_t* wsc = scales + (size_t) e * stride;
    const uint8_t* wbias = bias_bytes + (size_t) e * stride;

    if (XVEC) {
        /* float4 loads, all issued before the stores (C % 32 == 0, x 16-byte aligned) */
        const float4* x4 = (const float4*) x;
        const uint32_t n4 = C / 4;
        for (uint32_t i0 = threadIdx.x; i0 < n4; i0 += 4 * blockDim.x) {
            float4 v[4];
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const uint32_t i = i0 + u * blockDim.x;
                if (i < n4) v[u] = __ldg(x4 + i);
            }
#pragma unroll
            for (int u = 0; u < 4; u++) {
                const uint32_t i = i0 + u * blockDim.x;
                if (i < n4) *(float4*) &xs[(i / 8) * kXPad + (i % 8) * 4] = v[u];
            }
        }
    } else {
        for (uint32_t i = threadIdx.x; i < C; i += blockDim.x) xs[(i / 32) * kXPad + (i % 32)] = x[i];
    }
    __syncthreads();

    for (uint32_t u = warp; u < (uint32_t) kUnitsPerBlock; u += kMoeWarps) {
        const uint32_t unit = unit0 + u;
        if (unit >= num_units) break;
        const uint32_t r0 = 2 * unit;
        const uint32_t r1 = min(r0 + 1, num_w_rows - 1);
        const uint8_t* b0 = wb + (size_t) r0 * nb * 16;
        const uint8_t* b1 = wb + (size_t) r1 * nb * 16;
        const uint8_t* s0 = wsc + (size_t) r0 * nb;
        const uint8_t* s1 = wsc + (size_t) r1 * nb;
        float acc0 = 0.0f, acc1 = 0.0f;
        /* two blocks per lane per iteration: 4 x 16-byte loads in flight */
        for (uint32_t b = lane; b < nb; b += 64) {
            const uint32_t b2 = b + 32;
            const bool has2 = b2 < nb;
            const uint4 q0 = load_block<VEC>(b0 + (size_t) b * 16);
            const uint4 q1 = load_block<VEC>(b1 + (size_t) b * 16);
            uint4 q2 = make_uint4(0, 0, 0, 0), q3 = make_uint4(0, 0, 0, 0);
            uint32_t sc2 = 0, sc3 = 0;
            if (has2) {
                q2 = load_block<VEC>(b0 + (size_t) b2 * 16);
                q3 = load_block<VEC>(b1 + (size_t) b2 * 16);
                sc2 = s0[b2];
                sc3 = s1[b2];
            }
            const uint32_t sc0 = s0[b], sc1 = s1[b];
            const float* xb = xs + b * kXPad;
            acc0 = fmaf(dot_block(q0, xb) * 0x1.0p14f, mf4_multiplier(sc0), acc0);
            acc1 = fmaf(dot_block(q1, xb) * 0x1.0p14f, mf4_multiplier(sc1), acc1);
            if (has2) {
                const float* xb2 = xs + b2 * kXPad;
                acc0 = fmaf(dot_block(q2, xb2) * 0x1.0p14f, mf4_multiplier(sc2), acc0);
                acc1 = fmaf(dot_block(q3, xb2) * 0x1.0p14f, mf4_multiplier(sc3), acc1);
            }
        }
        __syncwarp(); /* the warp is whole here (its units are the warp's); plain shuffles in the sums */
        acc0 = gptoss_d_warp_sum(acc0);
        acc1 = gptoss_d_warp_sum(acc1);
        if (lane == 0) {
            const float y0 = acc0 + bias_at(wbias, r0);
            const float y1 = acc1 + bias_at(wbias, r1);
            if (SWIGLU) {
                orow[unit] = gptoss_swiglu(y0, y1, limit);
            } else {
                orow[r0] = y0;
                if (r0 + 1 < num_out) orow[r0 + 1] = y1;
            }
        }
    }
}

/* A build-time switch for measuring the grouped decode kernel against the per-pair one (the
 * same sums either way) */
#ifndef GPTOSS_CUDA_MOE_GROUP
#define GPTOSS_CUDA_MOE_GROUP 1
#endif

/* The decode kernels' exact f32 sums for several pairs of one expert at once (decode steps
 * of many streams: 64 streams of 20b give ~8 pairs an expert). Block (x, y): units as
 * moe_gemv_kernel's blocks (twice as many a warp), y one tile of up to G pairs of one
 * expert: each warp loads a unit's weight blocks once and runs every pair of the tile
 * against them. Per pair and row the same operations in the same order as moe_gemv_kernel
 * (per lane: each block's 32-value chain, scaled and added to the lane's accumulator in the
 * same block order; then the same warp sum, bias and SwiGLU), so a pair's outputs are those
 * it gets alone, whatever shares its tile (tests/test_invariance.c compares calls of one
 * token with the same tokens in a block of 40).
 *
 * The tiles: every block counts the pairs of each expert (the ids staged in shared memory,
 * at most kGroupMaxPairs), walks the experts' tiles in order to find its (expert, tile),
 * and ranks that expert's pairs in pair order (q = j T + t). Pairs with an expert id >= E
 * belong to no tile: the blocks of y = 0 set the error and write NaN over their outputs,
 * as moe_gemv_kernel does. */
constexpr uint32_t kGroupMaxPairs = 2048, kGroupMaxExperts = 256;
constexpr int kGroupTile = 8;                     /* pairs a tile */
constexpr uint32_t kGroupMinPairsPerExpert = 6; /* on average, from which the tiles run */
constexpr int kGroupUnitsPerWarp = 4, kGroupDownUnitsPerWarp = 2;
/* weight rows a warp runs at once (2 or 4: one or two units; a build-time switch for measuring) */
#ifndef GPTOSS_CUDA_MOE_GROUP_ROWS
#define GPTOSS_CUDA_MOE_GROUP_ROWS 4
#endif
constexpr int kGroupRows = GPTOSS_CUDA_MOE_GROUP_ROWS;
static_assert(kGroupRows == 2 || kGroupRows == 4, "a warp runs one or two units at once");
static_assert(kGroupDownUnitsPerWarp % (kGroupRows / 2) == 0 && kGroupUnitsPerWarp % (kGroupRows / 2) == 0,
              "a warp's units are whole passes");
__host__ __device__ constexpr uint32_t group_units_per_block(bool swiglu) {
    return (uint32_t) kMoeWarps * (swiglu ? kGroupUnitsPerWarp : kGroupDownUnitsPerWarp);
}

template <bool SWIGLU, bool VEC, int G, int R>
__global__ void __launch_bounds__(kMoeWarps * 32, 2) moe_gemv_group_kernel(
    const float* __restrict__ input, const uint32_t* __restrict__ ids, const uint8_t* __restrict__ blocks,
    const uint8_t* __restrict__ scales, const uint8_t* __restrict__ bias_bytes, size_t stride,
    float* __restrict__ out, uint32_t T, uint32_t k, uint32_t E, uint32_t C, uint32_t num_out, float limit,
    uint32_t* error_word) {
    extern __shared__ __align__(16) float xs[]; /* [G][nb * kXPad] */
    __shared__ uint32_t sid[kGroupMaxPairs];    /* pair q's expert id */
    __shared__ uint32_t count[kGroupMaxExperts];
    __shared__ uint32_t member[G];
    __shared__ uint32_t member_row[G]; /* the member's input row (q % T: SwiGLU's inputs are per token) */
    __shared__ uint32_t sel[3]; /* expert, first rank, pairs */
    gptoss_d_pdl_trigger();
    gptoss_d_pdl_wait();
    const uint32_t P = T * k, nb = C / 32;
    const uint32_t warp = threadIdx.x >> 5, lane = threadIdx.x & 31u;
    constexpr uint32_t kUnitsPerBlock = group_units_per_block(SWIGLU);
    const uint32_t unit0 = blockIdx.x * kUnitsPerBlock;
    for (uint32_t e = threadIdx.x; e < E; e += blockDim.x) count[e] = 0;
    __syncthreads();
    for (uint32_t q = threadIdx.x; q < P; q += blockDim.x) {
        const uint32_t e = ids[(size_t) (q % T) * k + q / T];
        sid[q] = e;
        if (e < E) atomicAdd(&count[e], 1u);
    }
    __syncthreads();
    if (blockIdx.y == 0) { /* the pairs with a bad expert id: NaN over this block's outputs */
        const uint32_t first = SWIGLU ? unit0 : 2 * unit0;
        const uint32_t last = min(first + (SWIGLU ? kUnitsPerBlock : 2 * kUnitsPerBlock), num_out);
        for (uint32_t q = 0; q < P; q++) {
            if (sid[q] < E) continue;
            if (threadIdx.x == 0) gptoss_d_set_error(error_word, GPTOSS_CUDA_ERROR_EXPERT_ID);
            for (uint32_t o = first + threadIdx.x; o < last; o += blockDim.x) out[(size_t) q * num_out + o] = nan_f();
        }
    }
    if (threadIdx.x == 0) {
        uint32_t y = blockIdx.y, found = 0;
        for (uint32_t e = 0; e < E && !found; e++) {
            const uint32_t tiles = (count[e] + G - 1) / G;
            if (y < tiles) {
                sel[0] = e;
                sel[1] = y * G;
                sel[2] = min((uint32_t) G, count[e] - y * G);
                found = 1;
            } else {
                y -= tiles;
            }
        }
        if (!found) sel[2] = 0;
    }
    __syncthreads();
    const uint32_t e = sel[0], rank0 = sel[1], n = sel[2];
    if (n == 0) return; /* past the last tile */
    /* the expert's pairs of ranks rank0 .. rank0 + n - 1, in pair order (warp 0) */
    if (warp == 0) {
        uint32_t base = 0;
        for (uint32_t q0 = 0; q0 < P && base < rank0 + n; q0 += 32) {
            const uint32_t q = q0 + lane;
            const bool hit = q < P && sid[q] == e;
            const uint32_t mask = __ballot_sync(0xFFFFFFFFu, hit);
            const uint32_t r = base + __popc(mask & ((1u << lane) - 1u));
            if (hit && r >= rank0 && r < rank0 + n) {
                member[r - rank0] = q;
                member_row[r - rank0] = SWIGLU ? q % T : q;
            }
            base += __popc(mask);
        }
    }
    __syncthreads();
    /* the members' input rows, padded as moe_gemv_kernel stages them: with 16-byte aligned
     * rows, float4 loads over all members' rows, 8 a thread issued before their stores (a
     * load-then-store loop keeps one L2 round trip in flight: up to 8 rows x 2,880 floats a
     * block) */
    const uint32_t xfloats = nb * kXPad;
    const bool xvec = ((uintptr_t) input & 15u) == 0; /* C % 32 == 0: every row is then aligned */
    if (xvec) {
        /* float4 i of the tile is member g = i / n4, column c4 = i % n4; a thread's i advance
         * by the block's threads, so (g, c4) is carried and stepped (one compare) instead of divided
         * for each float4 (the divisions were ~17 % of the kernel's instructions) */
        constexpr uint32_t kThreads = kMoeWarps * 32; /* the launch's block */
        const uint32_t n4 = C / 4, total = n * n4;
        const uint32_t step_g = kThreads / n4, step_c = kThreads % n4;
        uint32_t g = threadIdx.x / n4, c4 = threadIdx.x % n4;
        constexpr int kInFlight = 8;
        for (uint32_t i0 = threadIdx.x; i0 < total; i0 += kInFlight * kThreads) {
            float4 v[kInFlight];
            uint32_t at[kInFlight];
#pragma unroll
            for (int u = 0; u < kInFlight; u++) {
                const uint32_t i = i0 + u * kThreads;
                at[u] = g * xfloats + (c4 / 8) * kXPad + (c4 % 8) * 4;
                if (i < total) v[u] = __ldg((const float4*) (input + (size_t) member_row[g] * C) + c4);
                c4 += step_c;
                g += step_g;
                if (c4 >= n4) {
                    c4 -= n4;
                    g++;
                }
            }
#pragma unroll
            for (int u = 0; u < kInFlight; u++) {
                if (i0 + u * kThreads < total) *(float4*) &xs[at[u]] = v[u];
            }
        }
    } else {
        for (uint32_t g = 0; g < n; g++) {
            const float* x = input + (size_t) member_row[g] * C;
            for (uint32_t i = threadIdx.x; i < C; i += blockDim.x) {
                xs[g * xfloats + (i / 32) * kXPad + (i % 32)] = __ldg(x + i);
            }
        }
    }
    __syncthreads();

    const uint32_t num_w_rows = SWIGLU ? 2 * num_out : num_out;
    const uint32_t num_units = SWIGLU ? num_out : (num_out + 1) / 2;
    const uint8_t* wb = blocks + (size_t) e * stride;
    const uint8_t* wsc = scales + (size_t) e * stride;
    const uint8_t* wbias = bias_bytes + (size_t) e * stride;
    /* a warp takes R / 2 units (R weight rows) at a time: each member's input block, read
     * from shared memory once, serves R rows (the shared-memory reads, one float a member
     * and weight value with one unit at a time, bounded the kernel) */
    constexpr uint32_t kPassUnits = (uint32_t) R / 2;
    for (uint32_t u = warp * kPassUnits; u < kUnitsPerBlock; u += kMoeWarps * kPassUnits) {
        if (unit0 + u >= num_units) break;
        const uint8_t* bp[R];
        const uint8_t* sp[R];
        uint32_t rows[R];
#pragma unroll
        for (int r = 0; r < R; r++) {
            /* unit unit0 + u + r / 2, row r % 2 of it; rows past the weights repeat the last
             * (computed, never stored) */
            rows[r] = min(2 * (unit0 + u) + (uint32_t) r, num_w_rows - 1);
            bp[r] = wb + (size_t) rows[r] * nb * 16;
            sp[r] = wsc + (size_t) rows[r] * nb;
        }
        float acc[R][G];
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int g = 0; g < G; g++) acc[r][g] = 0.0f;
        /* moe_gemv_kernel's walk: lane b takes blocks b, b + 32, b + 64, ... in that order;
         * per member and row each block's 32-value chain in element order (dot8_values),
         * then acc = fma(chain * 2^14, multiplier, acc) */
#pragma unroll 1
        for (uint32_t b = lane; b < nb; b += 32) {
            uint4 q[R];
            uint32_t sc[R];
#pragma unroll
            for (int r = 0; r < R; r++) {
                q[r] = load_block<VEC>(bp[r] + (size_t) b * 16);
                sc[r] = sp[r][b];
            }
            float p[R][G];
#pragma unroll
            for (int r = 0; r < R; r++)
#pragma unroll
                for (int g = 0; g < G; g++) p[r][g] = 0.0f;
#pragma unroll
            for (int i = 0; i < 4; i++) {
                Fp4x8 v[R];
#pragma unroll
                for (int r = 0; r < R; r++) v[r] = fp4x8(i == 0 ? q[r].x : i == 1 ? q[r].y : i == 2 ? q[r].z : q[r].w);
#pragma unroll
                for (int g = 0; g < G; g++) {
                    if ((uint32_t) g < n) {
                        const float4* x4 = (const float4*) (xs + g * xfloats + b * kXPad);
                        const float4 xa = x4[2 * i], xb = x4[2 * i + 1];
#pragma unroll
                        for (int r = 0; r < R; r++) p[r][g] = dot8_values(v[r], xa, xb, p[r][g]);
                    }
                }
            }
#pragma unroll
            for (int r = 0; r < R; r++) {
                const float m = mf4_multiplier(sc[r]);
#pragma unroll
                for (int g = 0; g < G; g++) acc[r][g] = fmaf(p[r][g] * 0x1.0p14f, m, acc[r][g]);
            }
        }
        __syncwarp();
#pragma unroll
        for (int g = 0; g < G; g++) {
            if ((uint32_t) g >= n) break;
            float* orow = out + (size_t) member[g] * num_out;
#pragma unroll
            for (int j = 0; j < (int) kPassUnits; j++) {
                const uint32_t unit = unit0 + u + (uint32_t) j;
                const float a0 = gptoss_d_warp_sum(acc[2 * j][g]), a1 = gptoss_d_warp_sum(acc[2 * j + 1][g]);
                if (lane == 0 && unit < num_units) {
                    const uint32_t r0 = 2 * unit;
                    const float y0 = a0 + bias_at(wbias, r0);
                    const float y1 = a1 + bias_at(wbias, min(r0 + 1, num_w_rows - 1));
                    if (SWIGLU) {
                        orow[unit] = gptoss_swiglu(y0, y1, limit);
                    } else {
                        orow[r0] = y0;
                        if (r0 + 1 < num_out) orow[r0 + 1] = y1;
                    }
                }
            }
        }
    }
}

/* Tensor-core GEMM over expert-grouped rows (prefill, and decode steps of many streams).
 * Block (x, y): weight-row tile x; y walks the experts' row tiles. out[m][n] = A[m] . W_e[n]
 * + b_e[n] (or SwiGLU of column pairs). Numerics as gemm_bf16_tc_kernel (matmul.cu): the
 * f32 activations are split exactly into NP bf16 parts; the weights are dequantised exactly
 * to bf16, pre-scaled by 2^10: w * 2^10 = fp4 * 2^(stored - 131) lies in [2^-132, 6 * 2^124]
 * for every scale byte, and with at most 2 significant bits it is a bf16 (subnormal below
 * 2^-126) without rounding. mma.sync accumulates the exact products in f32; the sum is
 * scaled back by 2^-10 (exact unless the result is subnormal), then the bias is added.
 * Each output is one accumulator over the k-steps of 16 columns in order, within a k-step
 * the planes from the last (smallest) to the first: the same sum whatever the tile, so the
 * two kernels below give the same bits (tests/test_invariance.c checks a pair alone
 * against its block on the card).
 *
 * The activations are split once, before the GEMM, into NP bf16 planes
 * (gptoss_cuda_split_bf16_planes): splitting them in every weight tile (45 per expert for
 * the 20b up-projection) was half of the kernel's ALU work. Weight tiles are MT_BN = 128
 * rows. */
constexpr int MT_BN = 128, MT_BK = 32, MT_LD = MT_BK + 8; /* LD: padded row, bf16 */

/* The outputs of weight rows n, n + 1 (n even) of row m from their accumulators. */
template <bool SWIGLU>
__device__ __forceinline__ void moe_tc_store(float* out, uint32_t out_width, uint32_t m, uint32_t n, uint32_t N,
                                             float a0, float a1, const uint8_t* wbias, float limit) {
    constexpr float kUnscale = 1.0f / (float) (1 << kMoeTcPrescale);
    const float v0 = a0 * kUnscale, v1 = a1 * kUnscale;
    if (SWIGLU) {
        if (n + 1 < N) out[(size_t) m * out_width + n / 2] = gptoss_swiglu(v0 + bias_at(wbias, n), v1 + bias_at(wbias, n + 1), limit);
    } else {
        if (n < N) out[(size_t) m * out_width + n] = v0 + bias_at(wbias, n);
        if (n + 1 < N) out[(size_t) m * out_width + n + 1] = v1 + bias_at(wbias, n + 1);
    }
}

/* Prefill (experts of 16 rows or more on average): 64 expert rows x 128 weight rows x 32
 * columns (one MXFP4 block) per tile, 256 threads as 2 x 4 warps (warp tile 32 x 32).
 * ldmatrix fragment loads, two shared-memory stages fed through registers (dequantisation
 * happens on the way in). Three blocks per SM (__launch_bounds__(256, 3), 40 KB of shared
 * memory each), faster than two; the dense GEMM's larger tiles spill at that cap, so it
 * keeps two (docs/CUDA_NOTES.md). */
constexpr int MT_BM = 64;

template <int NP>
constexpr size_t moe_tc_smem_bytes() {
    return (size_t) 2 * (NP * MT_BM + MT_BN) * MT_LD * sizeof(uint16_t);
}

template <bool SWIGLU, bool VEC, int NP>
__global__ void __launch_bounds__(256, 3) moe_gemm_tc_kernel(const uint32_t* __restrict__ offsets,
                                                             const uint16_t* __restrict__ planes,
                                                             const uint8_t* __restrict__ blocks,
                                                             const uint8_t* __restrict__ scales,
                                                             const uint8_t* __restrict__ bias_bytes, size_t stride,
                                                             float* __restrict__ out, uint32_t P, uint32_t E,
                                                             uint32_t K, uint32_t N /* weight rows */,
                                                             uint32_t out_width, float limit, uint32_t* error_word) {
    constexpr int WM = 2, WN = 4; /* warps along the rows (M) and the weight rows (N) */
    constexpr int MI = MT_BM / (16 * WM), WNT = MT_BN / WN, NJ = WNT / 16; /* m16 tiles, warp N tile, n16 pairs */
    constexpr int A_ITERS = (MT_BM * 8 + 255) / 256; /* 4-column chunks of a row tile per thread */
    extern __shared__ __align__(16) uint16_t mt_smem[];
    uint16_t* As = mt_smem;                           /* [2][NP][MT_BM][MT_LD] */
    uint16_t* Ws = mt_smem + 2 * NP * MT_BM * MT_LD;  /* [2][MT_BN][MT_LD] */
    const uint32_t tid = threadIdx.x, lane = tid & 31u, warp = tid >> 5;
    const uint32_t n0 = blockIdx.x * MT_BN;

    uint32_t e_found, row_begin, row_end;
    if (!moe_row_tile<SWIGLU, MT_BM>(offsets, P, E, n0, out, out_width, error_word, e_found, row_begin, row_end)) return;
    const uint8_t* wb = blocks + (size_t) e_found * stride;
    const uint8_t* wsc = scales + (size_t) e_found * stride;
    const uint8_t* wbias = bias_bytes + (size_t) e_found * stride;
    const uint32_t nb = K / 32;
    const uint32_t wm = warp % WM, wn = warp / WM;
    const uint32_t g = lane >> 2, tg = lane & 3u;

    float acc[MI][2 * NJ][4];
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
        for (int j = 0; j < 2 * NJ; j++)
#pragma unroll
            for (int q = 0; q < 4; q++) acc[i][j][q] = 0.0f;

    /* loader mapping: A A_ITERS x (row, 4 columns) of each plane (threads past the tile's
     * MT_BM x 8 chunks load nothing); W: row tid/2, bytes 8 (tid&1) .. +7 of the block */
    const size_t plane_size = gptoss_plane_stride((size_t) P * K);
    uint2 ap[A_ITERS][NP];
    uint32_t wq[2], wscale;
    const uint32_t w_row = tid >> 1, w_half = tid & 1u;
    auto gload = [&](uint32_t kb) {
#pragma unroll
        for (int i = 0; i < A_ITERS; i++) {
            const uint32_t idx = tid + 256u * i;
            const uint32_t row = idx >> 3, col = (idx & 7u) * 4;
            const uint32_t m = idx < MT_BM * 8u ? row_begin + row : row_end, k = kb * MT_BK + col;
#pragma unroll
            for (int p = 0; p < NP; p++) {
                ap[i][p] = m < row_end ? __ldg((const uint2*) (planes + (size_t) p * plane_size + (size_t) m * K + k))
                                       : make_uint2(0, 0);
            }
        }
        const uint32_t n = n0 + w_row;
        if (n < N) {
            const uint8_t* bp = wb + ((size_t) n * nb + kb) * 16 + w_half * 8;
            if (VEC) {
                const uint2 v = __ldg((const uint2*) bp);
                wq[0] = v.x;
                wq[1] = v.y;
            } else {
#pragma unroll
                for (int i = 0; i < 2; i++) {
                    wq[i] = (uint32_t) bp[4 * i] | ((uint32_t) bp[4 * i + 1] << 8) | ((uint32_t) bp[4 * i + 2] << 16) |
                            ((uint32_t) bp[4 * i + 3] << 24);
                }
            }
            wscale = wsc[(size_t) n * nb + kb];
        } else {
            wq[0] = wq[1] = 0;
            wscale = 131; /* multiplier 1; the values are zeros */
        }
    };
    auto sstore = [&](int stage) {
        uint16_t* as = As + (size_t) stage * NP * MT_BM * MT_LD;
        uint16_t* ws = Ws + (size_t) stage * MT_BN * MT_LD;
#pragma unroll
        for (int i = 0; i < A_ITERS; i++) {
            const uint32_t idx = tid + 256u * i;
            const uint32_t row = idx >> 3, col = (idx & 7u) * 4;
            if (idx >= MT_BM * 8u) break;
#pragma unroll
            for (int p = 0; p < NP; p++) *(uint2*) (as + ((size_t) p * MT_BM + row) * MT_LD + col) = ap[i][p];
        }
        /* w * 2^10 as bf16, exact: the ring kernel's integer dequantisation (the 16-entry f32
         * table it replaces cost shared-memory lookups with bank conflicts; the byte table was
         * ~2 % slower here) */
        const MoeTcMult mult = moe_tc_mult(wscale, true);
        uint32_t packed[8];
#pragma unroll
        for (int b = 0; b < 8; b++) packed[b] = moe_tc_dequant2(wq[b >> 2], (uint32_t) b & 3u, mult);
        uint4* dst = (uint4*) (ws + (size_t) w_row * MT_LD + w_half * 16);
        dst[0] = make_uint4(packed[0], packed[1], packed[2], packed[3]);
        dst[1] = make_uint4(packed[4], packed[5], packed[6], packed[7]);
    };

    gload(0);
    sstore(0);
    __syncthreads();
    for (uint32_t kb = 0; kb < nb; kb++) {
        const int st = (int) (kb & 1u);
        const bool more = kb + 1 < nb;
        if (more) gload(kb + 1);
        const uint16_t* as = As + (size_t) st * NP * MT_BM * MT_LD;
        const uint16_t* ws = Ws + (size_t) st * MT_BN * MT_LD;
#pragma unroll
        for (int kk = 0; kk < MT_BK; kk += 16) {
            uint32_t af[NP][MI][4];
#pragma unroll
            for (int p = 0; p < NP; p++)
#pragma unroll
                for (int mi = 0; mi < MI; mi++) {
                    gptoss_d_ldmatrix_x4(af[p][mi], as + ((size_t) p * MT_BM + wm * (MI * 16) + mi * 16 + (lane & 15u)) * MT_LD +
                                                        kk + (lane >> 4) * 8);
                }
#pragma unroll
            for (int nj = 0; nj < NJ; nj++) {
                uint32_t bf[4];
                gptoss_d_ldmatrix_x4(bf, ws + (size_t) (wn * WNT + nj * 16 + (lane & 7u) + ((lane >> 4) << 3)) * MT_LD +
                                             kk + ((lane >> 3) & 1u) * 8);
#pragma unroll
                for (int h = 0; h < 2; h++)
#pragma unroll
                    for (int mi = 0; mi < MI; mi++)
#pragma unroll
                        for (int p = NP - 1; p >= 0; p--)
                            gptoss_d_mma_bf16_16816(acc[mi][2 * nj + h], af[p][mi], bf[2 * h], bf[2 * h + 1]);
            }
        }
        if (more) sstore(st ^ 1);
        __syncthreads();
    }

#pragma unroll
    for (int mi = 0; mi < MI; mi++)
#pragma unroll
        for (int ni = 0; ni < 2 * NJ; ni++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const uint32_t m = row_begin + wm * (MI * 16) + mi * 16 + g + 8 * h;
                const uint32_t n = n0 + wn * WNT + ni * 8 + 2 * tg;
                if (m < row_end) moe_tc_store<SWIGLU>(out, out_width, m, n, N, acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1], wbias, limit);
            }
}

/* The ring kernel, tiles of BM expert rows x 128 weight rows. BM = 16 for decode steps of
 * many streams (experts of fewer than 12 rows on average: ~8 at 64 streams of 20b, ~2 of
 * 120b): 8 warps as 1 x 8 (warp tile 16 x 16), four blocks per SM; BM = 32 from 12 to 36
 * rows (8 warps as 1 x 8, warp tile 32 x 16, three blocks per SM). Its MMAs are few, so
 * its time is the latency of the weight bytes: moe_gemm_tc_kernel's two register-fed stages
 * keep ~8 KB a block in flight, and at 16-row tiles it read ~0.5 TB/s (docs/CUDA_NOTES.md).
 * BM = 64 for prefill (8 warps as 2 x 4, warp tile 32 x 32, two blocks per SM), in place of
 * moe_gemm_tc_kernel's register-fed stages of 32 columns. A cp.async ring of kStages (MoeRingShape)
 * stages, each kMoeRingSB MXFP4 blocks (64 columns) of the tile's 128 weight rows (raw bytes)
 * and of its activation rows (the bf16 planes), keeps kStages - 1 stages in flight per
 * block; the tile's scale bytes (128 rows x K/32, contiguous) are copied to shared memory
 * with the first stage; each warp dequantises its own weight rows straight into the B
 * fragments. Same fragments, same MMAs in the same order as moe_gemm_tc_kernel: the same
 * bits. Needs blocks, scales and the expert stride 16-byte aligned (cp.async);
 * launch_moe_gemm runs moe_gemm_tc_kernel otherwise. */
/* The 16-row tiles' ring stages, a build-time switch for measuring (3: 37.6 KB of shared memory
 * a block at 2,880 columns instead of 46.3, so 5 blocks an SM at <= 51 registers instead of 4:
 * docs/CUDA_NOTES.md, twenty-first sitting). The same copies and MMAs in the same order for
 * any count, so the same bits. */
#ifndef GPTOSS_CUDA_MOE_RING16_STAGES
#define GPTOSS_CUDA_MOE_RING16_STAGES 4
#endif
static_assert(GPTOSS_CUDA_MOE_RING16_STAGES == 3 || GPTOSS_CUDA_MOE_RING16_STAGES == 4, "3 or 4 stages");
template <int BM>
struct MoeRingShape;
template <>
struct MoeRingShape<16> { /* warps along the rows and the weight rows; stages; blocks an SM */
    static constexpr int WM = 1, WN = 8, kStages = GPTOSS_CUDA_MOE_RING16_STAGES, kMinBlocks = kStages == 3 ? 5 : 4;
};
template <>
struct MoeRingShape<32> { /* experts of 12 to 36 rows on average (120b prefill chunks of 512 tokens: ~16) */
    static constexpr int WM = 1, WN = 8, kStages = 4, kMinBlocks = 3;
};
template <>
struct MoeRingShape<64> {
    static constexpr int WM = 2, WN = 4, kStages = 4, kMinBlocks = 2;
};
constexpr int kMoeRingSB = 2;
constexpr int kMoeRingLdA = kMoeRingSB * 32 + 8; /* an activation row of a stage, bf16, padded (ldmatrix conflict-free) */
constexpr size_t kMoeRingWeightStage = (size_t) kMoeRingSB * MT_BN * 16;

template <int NP, int BM>
__host__ __device__ constexpr size_t moe_ring_bytes() {
    return (size_t) MoeRingShape<BM>::kStages * (kMoeRingWeightStage + (size_t) NP * BM * kMoeRingLdA * sizeof(uint16_t));
}

template <int NP, int BM>
size_t moe_ring_smem_bytes(uint32_t nb) {
    return moe_ring_bytes<NP, BM>() + ((size_t) MT_BN * nb + 15) / 16 * 16;
}

template <bool SWIGLU, int NP, int BM>
__global__ void __launch_bounds__(256, MoeRingShape<BM>::kMinBlocks) moe_gemm_ring_kernel(const uint32_t* __restrict__ offsets,
                                                               const uint16_t* __restrict__ planes,
                                                               const uint8_t* __restrict__ blocks,
                                                               const uint8_t* __restrict__ scales,
                                                               const uint8_t* __restrict__ bias_bytes, size_t stride,
                                                               float* __restrict__ out, uint32_t P, uint32_t E,
                                                               uint32_t K, uint32_t N /* weight rows */,
                                                               uint32_t out_width, float limit, uint32_t* error_word) {
    extern __shared__ __align__(16) uint8_t ring_smem[];
    uint8_t* Wr = ring_smem;                                                  /* [stages][SB][128][16] */
    constexpr int kMoeRingStages = MoeRingShape<BM>::kStages;
    uint16_t* Ar = (uint16_t*) (ring_smem + kMoeRingStages * kMoeRingWeightStage); /* [stages][NP][BM][LdA] */
    uint8_t* Ss = ring_smem + moe_ring_bytes<NP, BM>();                      /* [rows][nb] */
    constexpr int WM = MoeRingShape<BM>::WM, WN = MoeRingShape<BM>::WN;
    constexpr int MI = BM / (16 * WM), NT = MT_BN / (8 * WN); /* a warp's m16 tiles and n8 tiles */
    const uint32_t tid = threadIdx.x, lane = tid & 31u, warp = tid >> 5;
    const uint32_t n0 = blockIdx.x * MT_BN;

    uint32_t e_found, row_begin, row_end;
    if (!moe_row_tile<SWIGLU, BM>(offsets, P, E, n0, out, out_width, error_word, e_found, row_begin, row_end)) return;
    const uint8_t* wb = blocks + (size_t) e_found * stride;
    const uint8_t* wsc = scales + (size_t) e_found * stride;
    const uint8_t* wbias = bias_bytes + (size_t) e_found * stride;
    const uint32_t nb = K / 32, ns = (nb + kMoeRingSB - 1) / kMoeRingSB;
    const uint32_t rows = row_end - row_begin, wrows = min((uint32_t) MT_BN, N - n0);
    const size_t plane_size = gptoss_plane_stride((size_t) P * K);

    /* this thread's copies of every stage, fixed but for the stage's column offset: weight
     * chunk tid (block j = tid / 128 of the stage, weight row r = tid % 128; exactly one per
     * thread), activation chunks tid + 256 i (plane, row, 8 columns) */
    static_assert(kMoeRingSB * MT_BN == 256, "one weight chunk per thread and stage");
    constexpr uint32_t kChunks = kMoeRingSB * 4; /* 16-byte chunks (8 columns) of an activation row */
    constexpr int kAPer = (NP * BM * kChunks + 255) / 256;
    const uint32_t wj = tid / MT_BN, wr = tid % MT_BN;
    /* shared-space addresses once a block; a stage adds its slot's offset */
    const uint32_t smem_w = (uint32_t) __cvta_generic_to_shared(Wr), smem_a = (uint32_t) __cvta_generic_to_shared(Ar);
    const bool w_ok = wr < wrows;
    const uint8_t* w_src = wb + ((size_t) (n0 + wr) * nb + wj) * 16;
    const uint32_t w_dst = smem_w + (wj * MT_BN + wr) * 16;
    const uint16_t* a_src[kAPer];
    uint32_t a_dst[kAPer], a_col[kAPer];
    bool a_ok[kAPer];
#pragma unroll
    for (int i = 0; i < kAPer; i++) {
        const uint32_t c = tid + 256u * i;
        const uint32_t p = c / (BM * kChunks), r = c / kChunks % BM, ch = c % kChunks;
        a_ok[i] = c < NP * BM * kChunks && r < rows;
        a_col[i] = ch * 8;
        a_dst[i] = smem_a + ((p * BM + r) * kMoeRingLdA + ch * 8) * (uint32_t) sizeof(uint16_t);
        a_src[i] = planes + (a_ok[i] ? (size_t) p * plane_size + (size_t) (row_begin + r) * K + ch * 8 : 0);
    }
    constexpr uint32_t kAStage = NP * BM * kMoeRingLdA * (uint32_t) sizeof(uint16_t); /* bytes */
    /* stage s: blocks s*SB .. s*SB+SB-1 of the weight rows, the same columns of the
     * activation rows (blocks past nb and rows past the tile are not copied); one
     * cp.async group per stage, empty past the last */
    auto issue = [&](uint32_t s) {
        if (s < ns) {
            const uint32_t slot = s % kMoeRingStages;
            if (w_ok && s * kMoeRingSB + wj < nb) {
                gptoss_d_cp_async16_s(w_dst + slot * (uint32_t) kMoeRingWeightStage, w_src + s * (kMoeRingSB * 16));
            }
            const uint32_t col0 = s * kMoeRingSB * 32;
#pragma unroll
            for (int i = 0; i < kAPer; i++) {
                if (a_ok[i] && col0 + a_col[i] < K) gptoss_d_cp_async16_s(a_dst[i] + slot * kAStage, a_src[i] + col0);
            }
        }
        gptoss_d_cp_async_commit();
    };

    /* the scale bytes of the tile's weight rows (contiguous, 16-byte aligned start), with
     * the first stage's group */
    {
        const uint8_t* src = wsc + (size_t) n0 * nb;
        const uint32_t len = wrows * nb, full = len / 16;
        for (uint32_t c = tid; c < full; c += 256) gptoss_d_cp_async16(Ss + 16 * (size_t) c, src + 16 * (size_t) c);
        for (uint32_t b = full * 16 + tid; b < len; b += 256) Ss[b] = src[b];
    }
#pragma unroll
    for (int st = 0; st < kMoeRingStages - 1; st++) issue((uint32_t) st);
    /* activation rows past the tile's rows are zero in every stage (never copied) */
    for (uint32_t idx = tid; idx < kMoeRingStages * NP * BM * (kMoeRingLdA / 8); idx += 256) {
        if (idx / (kMoeRingLdA / 8) % BM >= rows) *(uint4*) (Ar + (size_t) idx * 8) = make_uint4(0, 0, 0, 0);
    }

    const uint32_t g = lane >> 2, tg = lane & 3u;
    const uint32_t wm = warp % WM, wn = warp / WM;
    const uint32_t wr0 = wn * 8 * NT + g; /* this thread's weight rows in the tile: wr0 + 8 h (n8 tile h) */
    const uint32_t ar0 = wm * 16 * MI;    /* the warp's first activation row in the tile */
    float acc[MI][NT][4];
#pragma unroll
    for (int mi = 0; mi < MI; mi++)
#pragma unroll
        for (int h = 0; h < NT; h++)
#pragma unroll
            for (int q = 0; q < 4; q++) acc[mi][h][q] = 0.0f;

    /* per block: this thread's scale rows (nullptr past the weights: multiplier 0, outputs not
     * stored), its weight rows' bytes and its ldmatrix row in stage slot 0 */
    const uint8_t* srow[NT];
#pragma unroll
    for (int h = 0; h < NT; h++) srow[h] = wr0 + 8 * h < wrows ? Ss + (size_t) (wr0 + 8 * h) * nb : nullptr;
    const uint8_t* wq0 = Wr + (size_t) wr0 * 16;
    const uint32_t a_ld = smem_a + ((ar0 + (lane & 15u)) * kMoeRingLdA + (lane >> 4) * 8) * (uint32_t) sizeof(uint16_t);

    for (uint32_t s = 0; s < ns; s++) {
        gptoss_d_cp_async_wait<kMoeRingStages - 2>(); /* this thread's copies of stage s landed */
        __syncthreads();                            /* everyone's; stage s - 1 consumed */
        issue(s + kMoeRingStages - 1);                 /* into stage s - 1's buffer */
        const uint32_t slot = s % kMoeRingStages;
        const uint8_t* w = wq0 + (size_t) slot * kMoeRingWeightStage;
        const uint32_t a = a_ld + slot * kAStage;
#pragma unroll
        for (int j = 0; j < kMoeRingSB; j++) {
            const uint32_t kb = s * kMoeRingSB + j;
            if (kb >= nb) break;
            /* B fragments of n8 tile h: bf[h][2 kk + 0] = columns 16 kk + 2 tg, +1 and
             * bf[h][2 kk + 1] = 16 kk + 8 + 2 tg, +1 of weight row wr0 + 8 h, i.e. byte tg
             * of each 32-bit word of the row's block (low nibble: the even column) */
            uint32_t bf[NT][4];
            MoeTcMult mult[NT];
#pragma unroll
            for (int h = 0; h < NT; h++) mult[h] = moe_tc_mult(srow[h] ? srow[h][kb] : 0u, srow[h] != nullptr);
#pragma unroll
            for (int h = 0; h < NT; h++) {
                const uint4 q = *(const uint4*) (w + ((size_t) j * MT_BN + 8 * h) * 16);
                const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
                for (int i = 0; i < 4; i++) bf[h][i] = moe_tc_dequant2(words[i], tg, mult[h]);
            }
#pragma unroll
            for (int kk = 0; kk < 2; kk++) {
                uint32_t af[NP][MI][4];
#pragma unroll
                for (int p = 0; p < NP; p++)
#pragma unroll
                    for (int mi = 0; mi < MI; mi++) {
                        gptoss_d_ldmatrix_x4_s(af[p][mi], a + ((p * BM + mi * 16) * kMoeRingLdA + j * 32 + kk * 16) *
                                                                  (uint32_t) sizeof(uint16_t));
                    }
#pragma unroll
                for (int h = 0; h < NT; h++)
#pragma unroll
                    for (int mi = 0; mi < MI; mi++)
#pragma unroll
                        for (int p = NP - 1; p >= 0; p--)
                            gptoss_d_mma_bf16_16816(acc[mi][h], af[p][mi], bf[h][2 * kk], bf[h][2 * kk + 1]);
            }
        }
    }
    gptoss_d_cp_async_wait<0>(); /* no copy outlives the block (the groups past ns are empty) */

#pragma unroll
    for (int mi = 0; mi < MI; mi++)
#pragma unroll
        for (int h = 0; h < NT; h++)
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                const uint32_t m = row_begin + ar0 + mi * 16 + g + 8 * hh;
                const uint32_t n = n0 + wn * 8 * NT + h * 8 + 2 * tg;
                if (m < row_end) {
                    moe_tc_store<SWIGLU>(out, out_width, m, n, N, acc[mi][h][2 * hh], acc[mi][h][2 * hh + 1], wbias, limit);
                }
            }
}

template <bool SWIGLU>
enum gptoss_status launch_moe_gemv(gptoss_backend_t backend, const float* input, const uint32_t* ids,
                                   const uint8_t* blocks, const uint8_t* scales, const gptoss_bf16* bias,
                                   size_t stride, float* output, uint32_t T, uint32_t k, uint32_t E, uint32_t C,
                                   uint32_t num_rows, float limit) {
    const uint64_t pairs = (uint64_t) T * k;
    if (pairs > GPTOSS_CUDA_MAX_GRID_YZ) {
        return gptoss_fail(gptoss_status_unsupported_argument,
                           "CUDA MoE decode kernels support at most %u (token, slot) pairs, got %llu",
                           GPTOSS_CUDA_MAX_GRID_YZ, (unsigned long long) pairs);
    }
    const uint32_t units = SWIGLU ? num_rows : (num_rows + 1) / 2;
    constexpr uint32_t kUnitsPerBlock = units_per_block(SWIGLU);
    const dim3 grid((units + kUnitsPerBlock - 1) / kUnitsPerBlock, (unsigned) pairs);
    const size_t smem = (size_t) (C / 32) * kXPad * sizeof(float);
    const bool vec = gptoss_aligned(blocks, 16) && stride % 16 == 0;
    /* six pairs an expert or more on average: the same sums with each expert's weights read
     * once per tile of up to 8 pairs (moe_gemv_group_kernel). Measured (H100, eighteenth
     * sitting): 64 tokens of 20b (8 pairs an expert), up + SwiGLU 929 -> 727 us; at 16 streams
     * (2 an expert, tiles of 4) the engine lost 8 % (1,212 -> 1,119 tok/s), so fewer pairs
     * an expert keep moe_gemv_kernel. */
    constexpr int G = kGroupTile;
    const size_t gsmem = (size_t) G * smem;
    if (GPTOSS_CUDA_MOE_GROUP && pairs >= (uint64_t) kGroupMinPairsPerExpert * E && pairs <= kGroupMaxPairs &&
        E <= kGroupMaxExperts && gsmem <= gptoss_cuda(backend)->max_shared_per_block - 16 * 1024) {
        constexpr int R = kGroupRows;
        auto gkernel = vec ? moe_gemv_group_kernel<SWIGLU, true, G, R> : moe_gemv_group_kernel<SWIGLU, false, G, R>;
        /* the device's limit, never lowered (another call's larger launch, a captured graph) */
        if (gsmem > 48 * 1024) {
            GPTOSS_CUDA_CHECK(cudaFuncSetAttribute(gkernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                   (int) (gptoss_cuda(backend)->max_shared_per_block - 16 * 1024)));
        }
        constexpr uint32_t kGroupUnits = group_units_per_block(SWIGLU);
        const dim3 ggrid((units + kGroupUnits - 1) / kGroupUnits, (unsigned) ((pairs + G - 1) / G + E));
        const cudaError_t err = gptoss_cuda_launch_pdl(backend, gkernel, ggrid, dim3(kMoeWarps * 32), gsmem, input, ids,
                                                       blocks, scales, (const uint8_t*) bias, stride, output, T, k, E,
                                                       C, num_rows, limit, gptoss_cuda_error_word(backend));
        if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of the MXFP4 MoE GEMV (grouped pairs)");
        return gptoss_status_success;
    }
    const bool xvec = gptoss_aligned(input, 16);
    auto kernel = vec ? (xvec ? moe_gemv_kernel<SWIGLU, true, true> : moe_gemv_kernel<SWIGLU, true, false>)
                      : (xvec ? moe_gemv_kernel<SWIGLU, false, true> : moe_gemv_kernel<SWIGLU, false, false>);
    if (smem > 48 * 1024) {
        if (smem > gptoss_cuda(backend)->max_shared_per_block) {
            return gptoss_fail(gptoss_status_unsupported_argument, "CUDA MoE decode: num_cols %u is too large", C);
        }
        GPTOSS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem));
    }
    const cudaError_t err = gptoss_cuda_launch_pdl(backend, kernel, grid, dim3(kMoeWarps * 32), smem, input, ids,
                                                   blocks, scales, (const uint8_t*) bias, stride, output, T, k, E, C,
                                                   num_rows, limit, gptoss_cuda_error_word(backend));
    if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of the MXFP4 MoE GEMV");
    return gptoss_status_success;
}

template <bool SWIGLU, bool VEC, int NP>
cudaError_t launch_moe_gemm_tc(gptoss_backend_t backend, dim3 grid, const uint32_t* offsets, const uint16_t* planes,
                               const uint8_t* blocks, const uint8_t* scales, const uint8_t* bias, size_t stride,
                               float* output, uint32_t P, uint32_t E, uint32_t K, uint32_t N, uint32_t out_width,
                               float limit, uint32_t* error_word) {
    constexpr size_t smem = moe_tc_smem_bytes<NP>();
    const cudaError_t err = cudaFuncSetAttribute(moe_gemm_tc_kernel<SWIGLU, VEC, NP>,
                                                 cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem);
    if (err != cudaSuccess) return err;
    moe_gemm_tc_kernel<SWIGLU, VEC, NP><<<grid, 256, smem, gptoss_cuda_stream(backend)>>>(
        offsets, planes, blocks, scales, bias, stride, output, P, E, K, N, out_width, limit, error_word);
    return cudaGetLastError();
}

/* The most shared memory the ring kernel may ask for (Hopper's opt-in limit per block is
 * 227 KB; at the 20b shapes four 16-row blocks take 46-56 KB each, two 64-row blocks ~100 KB):
 * beyond it (K > ~45,000 for 16 rows, ~27,000 for 64) moe_gemm_tc_kernel runs. */
constexpr size_t kMoeRingMaxSmem = 200 * 1024;

/* Tensor-core MoE GEMM with the weights as the MMA's A operand, for one row an expert: the
 * per-pair entries in row order many (PAIR, below; the grouped GEMM's 16-row tiles take it
 * only with GPTOSS_CUDA_MOE_TCV, where it measured slower than the ring kernel). A warp owns
 * 16 weight rows (the MMA's M) and the tile's 16 token rows (two n8 MMAs, B operand: the
 * activation planes), and walks K in MXFP4 blocks from a per-warp cp.async ring of
 * kTcvStages blocks (the 16 rows' scale bytes copied once beside it), each thread
 * dequantising byte t of each word of its two rows into its A fragment with the ring
 * kernel's exact bf16 dequantisation (moe_tc_dequant2); no block-wide barrier in the loop. A
 * block is 4 warps (64 weight rows), so even one token an expert (4 tiles of 20b's
 * up-projection: 360 blocks) spreads over the card. Each output is one accumulator over the
 * k-steps of 16 in order, within a k-step the planes from the last to the first, as every
 * MoE tensor-core kernel here (tests/test_invariance.c compares the per-pair entries in
 * order many with the dense entries on 40 and 19 tokens).
 * PAIR: the per-pair MoE kernels in row order many (one (token, slot) pair a blockIdx.y, as
 * moe_gemv_kernel: pair q = j T + t, expert ids[t k + j], input row t for the up-projection and
 * q for the down-projection, output row q), the pair's token the tile's one row: the block
 * splits its f32 input row into NP bf16 planes in shared memory (gptoss_d_split_bf16, the
 * values of the planes the grouped path splits) while its first weight blocks load, and every
 * B column reads that row (only column 0 is stored). So no routing offsets, scatter, split or
 * gather kernels run, and each output has the bits the expert-grouped kernels give it in any
 * tile. */
constexpr int kTcvWarps = 4, kTcvBN = 16 * kTcvWarps, kTcvBM = 16;
constexpr uint32_t kTcvStages = 12; /* blocks of a warp's 16 rows in flight (3 KB) */
/* shared memory of a warp: its ring, then its 16 rows' scales (16 nb bytes) */
__host__ __device__ constexpr size_t tcv_warp_bytes(uint32_t nb) { return (size_t) kTcvStages * 256 + (size_t) 16 * nb; }

template <bool SWIGLU, int NP, bool PAIR = false>
__global__ void __launch_bounds__(kTcvWarps * 32) moe_tcv_kernel(const uint32_t* __restrict__ offsets,
                                                                  const uint16_t* __restrict__ planes,
                                                                  size_t plane_size, const uint8_t* __restrict__ blocks,
                                                                  const uint8_t* __restrict__ scales,
                                                                  const uint8_t* __restrict__ bias_bytes, size_t stride,
                                                                  float* __restrict__ out, uint32_t P, uint32_t E,
                                                                  uint32_t K, uint32_t N /* weight rows */,
                                                                  uint32_t out_width, float limit, uint32_t* error_word,
                                                                  const float* __restrict__ xin = nullptr,
                                                                  const uint32_t* __restrict__ ids = nullptr,
                                                                  uint32_t T = 0, uint32_t kk = 0) {
    const uint32_t lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const uint32_t g = lane >> 2, t = lane & 3u;
    const uint32_t n0 = blockIdx.x * kTcvBN;
    uint32_t expert, row_begin, row_end, xrow = 0;
    if constexpr (PAIR) {
        const uint32_t q = blockIdx.y, j = q / T, tok = q % T;
        expert = ids[(size_t) tok * kk + j];
        row_begin = q;
        row_end = q + 1;
        xrow = SWIGLU ? tok : q;
        if (expert >= E) {
            if (threadIdx.x == 0) gptoss_d_set_error(error_word, GPTOSS_CUDA_ERROR_EXPERT_ID);
            const uint32_t c0 = SWIGLU ? n0 / 2 : n0, c1 = min(c0 + (SWIGLU ? kTcvBN / 2 : kTcvBN), out_width);
            for (uint32_t c = c0 + threadIdx.x; c < c1; c += blockDim.x) out[(size_t) q * out_width + c] = nan_f();
            return;
        }
    } else if (!moe_row_tile<SWIGLU, kTcvBM, kTcvBN>(offsets, P, E, n0, out, out_width, error_word, expert, row_begin,
                                                     row_end)) {
        return;
    }
    const uint32_t nb = K / 32;
    const uint32_t wr0 = n0 + warp * 16 + g, wr1 = wr0 + 8; /* this thread's weight rows (A rows g, g + 8) */
    const bool ok0 = wr0 < N, ok1 = wr1 < N;
    const uint8_t* wb = blocks + (size_t) expert * stride;
    const uint8_t* ws = scales + (size_t) expert * stride;
    /* B: token g of each n8 group (zero past the tile's rows) */
    const bool tv0 = row_begin + g < row_end, tv1 = row_begin + 8 + g < row_end;
    const bool two = row_end - row_begin > 8; /* the second n8 group has tokens (the whole block's choice) */
    const uint16_t* x0 = planes + (size_t) (tv0 ? row_begin + g : row_begin) * K + 2 * t;
    const uint16_t* x1 = planes + (size_t) (tv1 ? row_begin + 8 + g : row_begin) * K + 2 * t;

    /* this warp's ring: kTcvStages blocks of its 16 rows (16 B each), filled two blocks a
     * round by cp.async (lanes 0-15: block 2j, rows 0-15; lanes 16-31: block 2j + 1), one
     * commit group a round, kTcvStages / 2 - 1 rounds ahead; then the 16 rows' scale bytes */
    extern __shared__ __align__(16) uint8_t tcv_smem[];
    uint8_t* ring = tcv_smem + (size_t) warp * tcv_warp_bytes(nb);
    uint8_t* ss = ring + kTcvStages * 256;
    const uint32_t wrow0 = n0 + warp * 16;
    /* the scales: rows wrow0 .. wrow0 + 15 are one run of 16 nb bytes (16-byte aligned) */
    if (wrow0 + 16 <= N) {
        const uint8_t* src = ws + (size_t) wrow0 * nb;
        for (uint32_t c = lane; c < nb; c += 32) gptoss_d_cp_async16(ss + 16 * c, src + 16 * (size_t) c);
    } else {
        for (uint32_t i = lane; i < 16 * nb; i += 32) {
            const uint32_t r = wrow0 + i / nb;
            ss[i] = ws[(size_t) (r < N ? r : N - 1) * nb + i % nb];
        }
    }
    gptoss_d_cp_async_commit();
    const uint32_t crow = wrow0 + (lane & 15u) < N ? wrow0 + (lane & 15u) : N - 1; /* the row this lane copies */
    const uint8_t* csrc = wb + (size_t) crow * nb * 16;
    auto issue = [&](uint32_t j) {
        const uint32_t kb = 2 * j + (lane >> 4);
        if (kb < nb) gptoss_d_cp_async16(ring + ((kb % kTcvStages) * 16 + (lane & 15u)) * 16, csrc + (size_t) kb * 16);
        gptoss_d_cp_async_commit();
    };
    constexpr uint32_t kRounds = kTcvStages / 2;
    const uint32_t rounds = (nb + 1) / 2;
#pragma unroll
    for (uint32_t j = 0; j + 1 < kRounds; j++) issue(j);
    /* PAIR: the input row's planes, after the warps' rings (the weights load meanwhile) */
    const uint16_t* xs = (const uint16_t*) (tcv_smem + (size_t) kTcvWarps * tcv_warp_bytes(nb));
    if constexpr (PAIR) {
        uint16_t* xw = (uint16_t*) (tcv_smem + (size_t) kTcvWarps * tcv_warp_bytes(nb));
        const float* xr = xin + (size_t) xrow * K;
        for (uint32_t i = threadIdx.x; i < K; i += blockDim.x) {
            uint32_t parts[NP];
            gptoss_d_split_bf16<NP>(__ldg(xr + i), parts);
#pragma unroll
            for (int p = 0; p < NP; p++) xw[(size_t) p * K + i] = (uint16_t) parts[p];
        }
        __syncthreads();
    }

    float acc[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
    for (uint32_t j = 0; j < rounds; j++) {
        issue(j + kRounds - 1);
        gptoss_d_cp_async_wait<kRounds - 1>();
        __syncwarp(); /* round j and the scales, copied by every lane, are visible */
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const uint32_t kb = 2 * j + h;
            if (kb < nb) {
                const uint4 qa = *(const uint4*) (ring + ((kb % kTcvStages) * 16 + g) * 16);
                const uint4 qb = *(const uint4*) (ring + ((kb % kTcvStages) * 16 + g + 8) * 16);
                const MoeTcMult m0 = moe_tc_mult(ss[g * nb + kb], ok0), m1 = moe_tc_mult(ss[(g + 8) * nb + kb], ok1);
                const uint32_t w0[4] = {qa.x, qa.y, qa.z, qa.w};
                const uint32_t w1[4] = {qb.x, qb.y, qb.z, qb.w};
#pragma unroll
                for (int s = 0; s < 2; s++) {
                    const uint32_t a[4] = {moe_tc_dequant2(w0[2 * s], t, m0), moe_tc_dequant2(w1[2 * s], t, m1),
                                           moe_tc_dequant2(w0[2 * s + 1], t, m0), moe_tc_dequant2(w1[2 * s + 1], t, m1)};
                    const uint32_t k0 = kb * 32 + s * 16;
#pragma unroll
                    for (int p = NP - 1; p >= 0; p--) {
                        if constexpr (PAIR) { /* every column the pair's row */
                            const uint16_t* xp = xs + (size_t) p * K + k0 + 2 * t;
                            gptoss_d_mma_bf16_16816(acc[0], a, *(const uint32_t*) xp, *(const uint32_t*) (xp + 8));
                            continue;
                        }
                        const uint16_t* xp0 = x0 + (size_t) p * plane_size + k0;
                        const uint16_t* xp1 = x1 + (size_t) p * plane_size + k0;
                        const uint32_t c00 = tv0 ? __ldg((const uint32_t*) xp0) : 0u;
                        const uint32_t c01 = tv0 ? __ldg((const uint32_t*) (xp0 + 8)) : 0u;
                        const uint32_t c10 = two && tv1 ? __ldg((const uint32_t*) xp1) : 0u;
                        const uint32_t c11 = two && tv1 ? __ldg((const uint32_t*) (xp1 + 8)) : 0u;
                        gptoss_d_mma_bf16_16816(acc[0], a, c00, c01);
                        if (two) gptoss_d_mma_bf16_16816(acc[1], a, c10, c11);
                    }
                }
            }
        }
        __syncwarp(); /* every lane is done with round j's slots before they are refilled */
    }
    /* acc[grp] = (weight row wr0, tokens 2t, 2t + 1), (wr1, same tokens): the even rows' lanes
     * (g even) take the odd row's values from lane + 4 and store the pairs */
    const uint8_t* wbias = bias_bytes + (size_t) expert * stride;
#pragma unroll
    for (int grp = 0; grp < 2; grp++) {
        float o[4];
#pragma unroll
        for (int j = 0; j < 4; j++) o[j] = __shfl_xor_sync(0xFFFFFFFFu, acc[grp][j], 4);
        if ((g & 1u) == 0) {
#pragma unroll
            for (int c = 0; c < 2; c++) {
                const uint32_t m = row_begin + grp * 8 + 2 * t + c;
                if (m < row_end) {
                    moe_tc_store<SWIGLU>(out, out_width, m, wr0, N, acc[grp][c], o[c], wbias, limit);
                    moe_tc_store<SWIGLU>(out, out_width, m, wr1, N, acc[grp][2 + c], o[2 + c], wbias, limit);
                }
            }
        }
    }
}

/* The ring kernel's shared-memory limit on this device: kMoeRingMaxSmem or the device's
 * opt-in maximum, whichever is smaller. Set as the kernel's limit once per value, not per K:
 * a limit lowered by one call would make another thread's launch or a captured graph's
 * replay with a larger K fail. */
static size_t moe_ring_smem_cap(gptoss_backend_t backend) {
    const size_t dev = (size_t) gptoss_cuda(backend)->max_shared_per_block;
    return dev < kMoeRingMaxSmem ? dev : kMoeRingMaxSmem;
}

template <bool SWIGLU, int NP, int BM>
cudaError_t launch_moe_gemm_ring(gptoss_backend_t backend, dim3 grid, const uint32_t* offsets, const uint16_t* planes,
                                 const uint8_t* blocks, const uint8_t* scales, const uint8_t* bias, size_t stride,
                                 float* output, uint32_t P, uint32_t E, uint32_t K, uint32_t N, uint32_t out_width,
                                 float limit, uint32_t* error_word) {
    const size_t smem = moe_ring_smem_bytes<NP, BM>(K / 32);
    const cudaError_t err = cudaFuncSetAttribute(moe_gemm_ring_kernel<SWIGLU, NP, BM>,
                                                 cudaFuncAttributeMaxDynamicSharedMemorySize, (int) moe_ring_smem_cap(backend));
    if (err != cudaSuccess) return err;
    moe_gemm_ring_kernel<SWIGLU, NP, BM><<<grid, 256, smem, gptoss_cuda_stream(backend)>>>(
        offsets, planes, blocks, scales, bias, stride, output, P, E, K, N, out_width, limit, error_word);
    return cudaGetLastError();
}

/* The row tile by the experts' rows on average (P / E): the ring kernel with 16-row tiles
 * below kMoeSmallTileRows (a decode step of many streams: 64 streams of 20b give ~8 rows an
 * expert, where a 64-row tile would run 8 times the tensor-core work and dequantise the same
 * weights for it), 32-row tiles below kMoeMidTileRows (20b prefill chunks of ~128 tokens,
 * 120b's of 512: ~16 rows an expert), 64-row tiles above (the wgmma kernel where it runs).
 * The bounds are measured (bench/lab/wgmma_lab.cu --tiles, H100, docs/CUDA_NOTES.md twelfth
 * sitting): at 8 rows an expert the 16-row ring is fastest, at 16 the 32-row one (30 % below
 * the 64-row tiles), at 32 the 32-row one by 0-4 %, at 64 the wgmma kernel by 12-25 %.
 * The sums do not depend on the tile: each output is one row's dot product, summed over the
 * same k-steps and planes in the same order. */
#ifndef GPTOSS_CUDA_MOE_SMALL_TILE_ROWS /* build-time switches for measuring the choice (0: never) */
#define GPTOSS_CUDA_MOE_SMALL_TILE_ROWS 12
#endif
#ifndef GPTOSS_CUDA_MOE_MID_TILE_ROWS
#define GPTOSS_CUDA_MOE_MID_TILE_ROWS 36
#endif
constexpr uint64_t kMoeSmallTileRows = GPTOSS_CUDA_MOE_SMALL_TILE_ROWS;
constexpr uint64_t kMoeMidTileRows = GPTOSS_CUDA_MOE_MID_TILE_ROWS;
/* 64-row tiles through the ring kernel (1) or moe_gemm_tc_kernel (0): a build-time switch
 * for measuring the choice; the two give the same sums */
#ifndef GPTOSS_CUDA_MOE_RING64
#define GPTOSS_CUDA_MOE_RING64 1
#endif

/* 64-row tiles on Hopper's warpgroup MMA (gptoss_wg::moe_kernel, src/cuda/wgmma.cuh: 64 rows
 * x 128 weight rows a block, 3 stages, the MXFP4 blocks dequantised into a bf16 tile per
 * stage) where the device runs sm_90a code and the activations split in two planes; the
 * same sums as the ring kernel (each output one accumulator over the k-steps of 16 in order,
 * planes from the last). A build-time switch for measuring the choice (0: never). */
#ifndef GPTOSS_CUDA_MOE_WGMMA
#define GPTOSS_CUDA_MOE_WGMMA 1
#endif
constexpr int kMoeWgBN = 128, kMoeWgStages = 3;
static_assert(kMoeWgBN == MT_BN && gptoss_wg::MBM == MT_BM, "the wgmma kernel takes the ring kernel's grid");

/* From 12 rows an expert on (the 32- and 64-row tiles), where the wgmma kernel would run:
 * gptoss_wg::moe_rega_kernel (src/cuda/wgmma.cuh), the weights as the MMA's M, dequantised in
 * registers as its A operand, the expert's tokens (32 or 64 a block) as its N, 256 weight rows
 * a block; the same sums. Measured in bench/lab/wgmma_lab.cu (H100, twelfth sitting; us, up +
 * SwiGLU / down): 20b pp512 568 / 302 against moe_kernel's 680 / 354; 120b pp512 1,298 / 660
 * against the 32-row ring's 1,434 / 744. A build-time switch for measuring the choice (0:
 * never). */
#ifndef GPTOSS_CUDA_MOE_REGA
#define GPTOSS_CUDA_MOE_REGA 1
#endif
/* moe_tcv_kernel for the 16-row tiles of the grouped GEMM (1) or the ring kernel (0, the
 * default): the same sums. Measured (H100, eighteenth sitting, kernel bench
 * moe_dense_swiglu_20b_decode_x64): ring 250 us, moe_tcv_kernel 438 us (engine, 20b at 64
 * streams in order many: 4,827 vs 3,490 tok/s); the kernel serves the per-pair entries in
 * order many (launch_moe_pairs), where it replaced the grouped GEMM at one row an expert. */
#ifndef GPTOSS_CUDA_MOE_TCV
#define GPTOSS_CUDA_MOE_TCV 0
#endif
template <uint32_t TN>
struct MoeRegaConfig; /* stages of the ring by token tile */
template <>
struct MoeRegaConfig<32> {
    static constexpr int kStages = 4;
};
template <>
struct MoeRegaConfig<64> {
    static constexpr int kStages = 3;
};
constexpr int kMoeRegaSlices = 2; /* m64 slices a warpgroup: 256 weight rows a block */

template <bool SWIGLU, uint32_t TN>
cudaError_t launch_moe_rega(gptoss_backend_t backend, const uint32_t* offsets, const uint16_t* planes,
                            const uint8_t* blocks, const uint8_t* scales, const uint8_t* bias, size_t stride,
                            float* output, uint32_t P, uint32_t E, uint32_t K, uint32_t N, uint32_t out_width,
                            float limit, uint32_t* error_word) {
    constexpr int ST = MoeRegaConfig<TN>::kStages, MS = kMoeRegaSlices;
    auto kernel = gptoss_wg::moe_rega_kernel<SWIGLU, (int) TN, ST, MS>;
    const size_t smem = gptoss_wg::moe_rega_smem_bytes<(int) TN, ST, MS>(K);
    const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 (int) moe_ring_smem_cap(backend));
    if (err != cudaSuccess) return err;
    constexpr uint32_t BW = gptoss_wg::MoeRegaLayout<(int) TN, MS>::kBW;
    const dim3 grid((N + BW - 1) / BW, (P + TN - 1) / TN + E);
    kernel<<<grid, 256, smem, gptoss_cuda_stream(backend)>>>(offsets, planes, gptoss_plane_stride((size_t) P * K),
                                                             blocks, scales, bias, stride, output, P, E, K, N,
                                                             out_width, limit, error_word);
    return cudaGetLastError();
}

template <bool SWIGLU>
cudaError_t launch_moe_wgmma(gptoss_backend_t backend, dim3 grid, const uint32_t* offsets, const uint16_t* planes,
                             const uint8_t* blocks, const uint8_t* scales, const uint8_t* bias, size_t stride,
                             float* output, uint32_t P, uint32_t E, uint32_t K, uint32_t N, uint32_t out_width,
                             float limit, uint32_t* error_word) {
    auto kernel = gptoss_wg::moe_kernel<SWIGLU, kMoeWgBN, kMoeWgStages>;
    const size_t smem = gptoss_wg::moe_smem_bytes<kMoeWgBN, kMoeWgStages>(K);
    const cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                 (int) moe_ring_smem_cap(backend));
    if (err != cudaSuccess) return err;
    kernel<<<grid, 256, smem, gptoss_cuda_stream(backend)>>>(offsets, planes, gptoss_plane_stride((size_t) P * K),
                                                             blocks, scales, bias, stride, output, P, E, K, N,
                                                             out_width, limit, error_word);
    return cudaGetLastError();
}

template <bool SWIGLU>
enum gptoss_status launch_moe_gemm(gptoss_backend_t backend, const uint32_t* offsets, const float* input,
                                   const uint8_t* blocks, const uint8_t* scales, const gptoss_bf16* bias,
                                   size_t stride, float* output, uint32_t T, uint32_t k, uint32_t E, uint32_t C,
                                   uint32_t num_rows, float limit) {
    const uint64_t P = (uint64_t) T * k;
    const uint32_t N = SWIGLU ? 2 * num_rows : num_rows;
    const int np = C >= 256 ? 2 : 3;
    /* the ring kernel needs cp.async alignment (16 bytes) of the weights and its shared
     * memory; moe_gemm_tc_kernel gives the same sums */
    /* the row tile by the experts' rows on average (above); gptoss_cuda_lab_moe_tile
     * overrides it for the labs */
    const int lab = gptoss_cuda_lab_moe_tile;
    uint32_t tile = P < kMoeSmallTileRows * E ? 16 : P < kMoeMidTileRows * E ? 32 : 64;
    if (lab == 16 || lab == 32 || lab == 64 || lab == 65 || lab == 66) tile = lab >= 64 ? 64 : (uint32_t) lab;
    const bool small = tile < 64;
    const size_t nb = C / 32;
    const size_t ring_smem = tile == 16   ? (np == 2 ? moe_ring_smem_bytes<2, 16>(nb) : moe_ring_smem_bytes<3, 16>(nb))
                             : tile == 32 ? (np == 2 ? moe_ring_smem_bytes<2, 32>(nb) : moe_ring_smem_bytes<3, 32>(nb))
                                          : (np == 2 ? moe_ring_smem_bytes<2, 64>(nb) : moe_ring_smem_bytes<3, 64>(nb));
    const bool ring = (small || GPTOSS_CUDA_MOE_RING64) && gptoss_aligned(blocks, 16) && gptoss_aligned(scales, 16) &&
                      stride % 16 == 0 && ring_smem <= moe_ring_smem_cap(backend);
    const bool wgmma = GPTOSS_CUDA_MOE_WGMMA && ring && !small && lab != 64 && np == 2 && gptoss_cuda(backend)->wgmma &&
                       gptoss_wg::moe_smem_bytes<kMoeWgBN, kMoeWgStages>(C) <= moe_ring_smem_cap(backend);
    /* the register-fed form for the 32- and 64-row tiles (the lab's forced 16- and 32-row
     * rings and 64-row ring keep the ring kernel) */
    const size_t rega_smem =
        tile == 64 ? gptoss_wg::moe_rega_smem_bytes<64, MoeRegaConfig<64>::kStages, kMoeRegaSlices>(C)
                   : gptoss_wg::moe_rega_smem_bytes<32, MoeRegaConfig<32>::kStages, kMoeRegaSlices>(C);
    const bool rega = GPTOSS_CUDA_MOE_REGA && ring && tile >= 32 && (lab == 0 || lab == 65) && np == 2 &&
                      gptoss_cuda(backend)->wgmma && rega_smem <= moe_ring_smem_cap(backend);
    /* 16-row tiles on moe_tcv_kernel (GPTOSS_CUDA_MOE_TCV) unless the lab forces the ring's;
     * the same sums */
    const bool tcv = GPTOSS_CUDA_MOE_TCV && ring && tile == 16 && lab != 16 &&
                     kTcvWarps * tcv_warp_bytes((uint32_t) (C / 32)) <= 48 * 1024;
    const uint32_t bm = ring && small ? tile : MT_BM;
    const uint64_t y_tiles = (P + bm - 1) / bm + E;
    if (y_tiles > GPTOSS_CUDA_MAX_GRID_YZ) {
        return gptoss_fail(gptoss_status_unsupported_argument, "CUDA MoE prefill: too many row tiles (%llu)",
                           (unsigned long long) y_tiles);
    }
    const dim3 grid((N + MT_BN - 1) / MT_BN, (unsigned) y_tiles);
    /* 2 activation parts where the dropped 2^-16 |x w| per term fits the f32 tolerance
     * (K >= 256, as the dense GEMM); 3 parts otherwise */
    const bool vec = gptoss_aligned(blocks, 8) && stride % 8 == 0;
    const uint16_t* planes = nullptr;
    const enum gptoss_status st = gptoss_cuda_split_bf16_planes(backend, input, P * C, np, &planes);
    if (st != gptoss_status_success) return st;
    uint32_t* ew = gptoss_cuda_error_word(backend);
    const uint8_t* b8 = (const uint8_t*) bias;
    const uint32_t P32 = (uint32_t) P;
    cudaError_t err;
#define MOE_TC_ARGS backend, grid, offsets, planes, blocks, scales, b8, stride, output, P32, E, C, N, num_rows, limit, ew
    if (tcv) {
        const dim3 tgrid((N + kTcvBN - 1) / kTcvBN, (unsigned) ((P + kTcvBM - 1) / kTcvBM + E));
        const size_t ps = gptoss_plane_stride(P * C);
        const size_t tsmem = kTcvWarps * tcv_warp_bytes((uint32_t) (C / 32));
        cudaStream_t stream = gptoss_cuda_stream(backend);
        if (np == 2) {
            moe_tcv_kernel<SWIGLU, 2><<<tgrid, kTcvWarps * 32, tsmem, stream>>>(offsets, planes, ps, blocks, scales, b8, stride,
                                                                             output, P32, E, C, N, num_rows, limit, ew);
        } else {
            moe_tcv_kernel<SWIGLU, 3><<<tgrid, kTcvWarps * 32, tsmem, stream>>>(offsets, planes, ps, blocks, scales, b8, stride,
                                                                             output, P32, E, C, N, num_rows, limit, ew);
        }
        err = cudaGetLastError();
    } else if (rega) {
        err = tile == 64 ? launch_moe_rega<SWIGLU, 64>(backend, offsets, planes, blocks, scales, b8, stride, output,
                                                       P32, E, C, N, num_rows, limit, ew)
                         : launch_moe_rega<SWIGLU, 32>(backend, offsets, planes, blocks, scales, b8, stride, output,
                                                       P32, E, C, N, num_rows, limit, ew);
    } else if (wgmma) {
        err = launch_moe_wgmma<SWIGLU>(MOE_TC_ARGS);
    } else if (ring && bm == 16) {
        err = np == 2 ? launch_moe_gemm_ring<SWIGLU, 2, 16>(MOE_TC_ARGS) : launch_moe_gemm_ring<SWIGLU, 3, 16>(MOE_TC_ARGS);
    } else if (ring && bm == 32) {
        err = np == 2 ? launch_moe_gemm_ring<SWIGLU, 2, 32>(MOE_TC_ARGS) : launch_moe_gemm_ring<SWIGLU, 3, 32>(MOE_TC_ARGS);
    } else if (ring) {
        err = np == 2 ? launch_moe_gemm_ring<SWIGLU, 2, 64>(MOE_TC_ARGS) : launch_moe_gemm_ring<SWIGLU, 3, 64>(MOE_TC_ARGS);
    } else if (np == 2) {
        err = vec ? launch_moe_gemm_tc<SWIGLU, true, 2>(MOE_TC_ARGS) : launch_moe_gemm_tc<SWIGLU, false, 2>(MOE_TC_ARGS);
    } else {
        err = vec ? launch_moe_gemm_tc<SWIGLU, true, 3>(MOE_TC_ARGS) : launch_moe_gemm_tc<SWIGLU, false, 3>(MOE_TC_ARGS);
    }
#undef MOE_TC_ARGS
    gptoss_cuda_scratch_release(backend);
    if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of the MXFP4 MoE tensor-core GEMM");
    return gptoss_status_success;
}

/* The per-pair kernels in row order many (kernels.h): moe_tcv_kernel<PAIR>, the bits of the
 * expert-grouped kernels. It needs what the grouped path's 16-row kernel needs (16-byte
 * aligned blocks and scales, a stride of 16-byte multiples, K up to 18,432): without it the
 * call fails rather than sum in another order. */
template <bool SWIGLU>
enum gptoss_status launch_moe_pairs(gptoss_backend_t backend, const float* input, const uint32_t* ids,
                                    const uint8_t* blocks, const uint8_t* scales, const gptoss_bf16* bias,
                                    size_t stride, float* output, uint32_t T, uint32_t k, uint32_t E, uint32_t C,
                                    uint32_t num_rows, float limit) {
    const uint64_t pairs = (uint64_t) T * k;
    const uint32_t N = SWIGLU ? 2 * num_rows : num_rows;
    const int np = C >= 256 ? 2 : 3; /* the planes of launch_moe_gemm: 2 from 256 columns, else 3 */
    const size_t smem = kTcvWarps * tcv_warp_bytes(C / 32) + (size_t) np * C * sizeof(uint16_t);
    if (pairs > GPTOSS_CUDA_MAX_GRID_YZ) {
        return gptoss_fail(gptoss_status_unsupported_argument,
                           "CUDA MoE in row order many: at most %u (token, slot) pairs, got %llu",
                           GPTOSS_CUDA_MAX_GRID_YZ, (unsigned long long) pairs);
    }
    if (!gptoss_aligned(blocks, 16) || !gptoss_aligned(scales, 16) || stride % 16 != 0 ||
        smem > gptoss_cuda(backend)->max_shared_per_block || kTcvWarps * tcv_warp_bytes(C / 32) > 48 * 1024) {
        return gptoss_fail(gptoss_status_unsupported_argument,
                           "CUDA MoE in row order many: the per-pair kernels need 16-byte aligned weight blocks "
                           "and scales, an expert stride of a multiple of 16 bytes (%zu) and at most %zu bytes of "
                           "shared memory (num_cols %u needs %zu)",
                           stride, gptoss_cuda(backend)->max_shared_per_block, C, smem);
    }
    const dim3 grid((N + kTcvBN - 1) / kTcvBN, (unsigned) pairs);
    const uint8_t* b8 = (const uint8_t*) bias;
    uint32_t* ew = gptoss_cuda_error_word(backend);
    cudaStream_t stream = gptoss_cuda_stream(backend);
    auto kernel = np == 2 ? moe_tcv_kernel<SWIGLU, 2, true> : moe_tcv_kernel<SWIGLU, 3, true>;
    cudaError_t err = cudaSuccess;
    /* the device's limit, never lowered (a lower one would break another call's larger launch) */
    if (smem > 48 * 1024) {
        err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                   (int) gptoss_cuda(backend)->max_shared_per_block);
    }
    if (err == cudaSuccess) {
        kernel<<<grid, kTcvWarps * 32, smem, stream>>>(nullptr, nullptr, 0, blocks, scales, b8, stride, output,
                                                       (uint32_t) pairs, E, C, N, num_rows, limit, ew, input, ids, T, k);
        err = cudaGetLastError();
    }
    if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of the MXFP4 MoE pair kernel (row order many)");
    return gptoss_status_success;
}

}  // namespace

extern "C" enum gptoss_status gptoss_cuda_f32_mf4w_moe_matmul_swiglu(
    gptoss_backend_t backend, const struct gptoss_f32_mf4w_moe_matmul_swiglu_args* args) {
    if (backend->row_order == gptoss_row_order_many) {
        return launch_moe_pairs<true>(backend, args->input, args->expert_ids, args->weight_blocks, args->weight_scales,
                                      args->bias, args->expert_stride, args->output, args->num_tokens,
                                      args->num_active_experts, args->num_experts, args->num_cols, args->num_rows,
                                      args->swiglu_limit);
    }
    return launch_moe_gemv<true>(backend, args->input, args->expert_ids, args->weight_blocks, args->weight_scales,
                                 args->bias, args->expert_stride, args->output, args->num_tokens,
                                 args->num_active_experts, args->num_experts, args->num_cols, args->num_rows,
                                 args->swiglu_limit);
}

extern "C" enum gptoss_status gptoss_cuda_f32_mf4w_moe_matmul(gptoss_backend_t backend,
                                                              const struct gptoss_f32_mf4w_moe_matmul_args* args) {
    if (backend->row_order == gptoss_row_order_many) {
        return launch_moe_pairs<false>(backend, args->input, args->expert_ids, args->weight_blocks,
                                       args->weight_scales, args->bias, args->expert_stride, args->output,
                                       args->num_tokens, args->num_active_experts, args->num_experts, args->num_cols,
                                       args->num_rows, 0.0f);
    }
    return launch_moe_gemv<false>(backend, args->input, args->expert_ids, args->weight_blocks, args->weight_scales,
                                  args->bias, args->expert_stride, args->output, args->num_tokens,
                                  args->num_active_experts, args->num_experts, args->num_cols, args->num_rows, 0.0f);
}

extern "C" enum gptoss_status gptoss_cuda_f32_mf4w_moe_dense_matmul_swiglu(
    gptoss_backend_t backend, const struct gptoss_f32_mf4w_moe_dense_matmul_swiglu_args* args) {
    return launch_moe_gemm<true>(backend, args->expert_offsets, args->input, args->weight_blocks, args->weight_scales,
                                 args->bias, args->expert_stride, args->output, args->num_tokens,
                                 args->num_active_experts, args->num_experts, args->num_cols, args->num_rows,
                                 args->swiglu_limit);
}

extern "C" enum gptoss_status gptoss_cuda_f32_mf4w_moe_dense_matmul(
    gptoss_backend_t backend, const struct gptoss_f32_mf4w_moe_dense_matmul_args* args) {
    return launch_moe_gemm<false>(backend, args->expert_offsets, args->input, args->weight_blocks, args->weight_scales,
                                  args->bias, args->expert_stride, args->output, args->num_tokens,
                                  args->num_active_experts, args->num_experts, args->num_cols, args->num_rows, 0.0f);
}
