/* MXFP4 expert matmuls. Per expert e: blocks u8[rows][cols/32][16], scales u8[rows][cols/32]
 * (+14-biased: multiplier 2^(stored-141)), bias bf16[rows], all at byte offset
 * e*expert_stride. Decode kernels: one (token, slot) pair per blockIdx.y, its activation
 * row staged in shared memory, one warp per pair of weight rows (the glu/linear pair for
 * SwiGLU), 16-byte block loads, exact dequantisation (fp4 values as f16 = fp4 * 2^-14).
 * Prefill kernels: a 64x64 tiled f32 SIMT GEMM over expert-grouped rows. */
#include <cuda_fp16.h>

#include "cuda/matmul.cuh"

namespace {

constexpr int kMoeWarps = 8;
constexpr int kUnitsPerWarp = 2;
constexpr int kUnitsPerBlock = kMoeWarps * kUnitsPerWarp;
constexpr int kXPad = 36; /* 32 floats of a block + 4 floats padding (bank-conflict free) */

__device__ __forceinline__ float nan_f() { return __uint_as_float(0x7FC00000u); }

__device__ __forceinline__ float bias_at(const uint8_t* bias_bytes, uint32_t r) {
    const uint32_t lo = bias_bytes[2 * (size_t) r], hi = bias_bytes[2 * (size_t) r + 1];
    return gptoss_d_bf16_to_f32((uint16_t) (lo | (hi << 8)));
}

/* Multiplier of a +14-biased scale byte: 2^(stored - 141), exact. */
__device__ __forceinline__ float mf4_multiplier(uint32_t stored) { return gptoss_d_exp2i((int) stored - 141); }

__device__ __forceinline__ float2 h2f(uint32_t bits) {
    __half2 h;
    memcpy(&h, &bits, 4);
    return __half22float2(h);
}

/* partial = sum_e x[e] * fp4[e] * 2^-14 over the 8 values of one u32 of an MXFP4 block. */
__device__ __forceinline__ float dot8_fp4(uint32_t w, float4 xa, float4 xb, float p) {
    const float2 a = h2f(((w << 9) & 0x0E000E00u) | ((w << 12) & 0x80008000u)); /* e0, e4 */
    const float2 b = h2f(((w << 5) & 0x0E000E00u) | ((w << 8) & 0x80008000u)); /* e1, e5 */
    const float2 c = h2f(((w << 1) & 0x0E000E00u) | ((w << 4) & 0x80008000u)); /* e2, e6 */
    const float2 d = h2f(((w >> 3) & 0x0E000E00u) | (w & 0x80008000u));        /* e3, e7 */
    p = fmaf(xa.x, a.x, p);
    p = fmaf(xa.y, b.x, p);
    p = fmaf(xa.z, c.x, p);
    p = fmaf(xa.w, d.x, p);
    p = fmaf(xb.x, a.y, p);
    p = fmaf(xb.y, b.y, p);
    p = fmaf(xb.z, c.y, p);
    p = fmaf(xb.w, d.y, p);
    return p;
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
template <bool SWIGLU, bool VEC>
__global__ void __launch_bounds__(kMoeWarps * 32) moe_gemv_kernel(
    const float* __restrict__ input, const uint32_t* __restrict__ ids, const uint8_t* __restrict__ blocks,
    const uint8_t* __restrict__ scales, const uint8_t* __restrict__ bias_bytes, size_t stride,
    float* __restrict__ out, uint32_t T, uint32_t k, uint32_t E, uint32_t C, uint32_t num_out, float limit,
    uint32_t* error_word) {
    extern __shared__ __align__(16) float xs[];
    const uint32_t pair = blockIdx.y; /* j*T + t */
    const uint32_t j = pair / T, t = pair % T;
    const uint32_t e = ids[(size_t) t * k + j];
    float* orow = out + (size_t) pair * num_out;
    const uint32_t num_w_rows = SWIGLU ? 2 * num_out : num_out;
    const uint32_t num_units = SWIGLU ? num_out : (num_out + 1) / 2;
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
    for (uint32_t i = threadIdx.x; i < C; i += blockDim.x) xs[(i / 32) * kXPad + (i % 32)] = x[i];
    __syncthreads();

    const uint8_t* wb = blocks + (size_t) e * stride;
    const uint8_t* wsc = scales + (size_t) e * stride;
    const uint8_t* wbias = bias_bytes + (size_t) e * stride;

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
        acc0 = gptoss_d_warp_sum(acc0);
        acc1 = gptoss_d_warp_sum(acc1);
        if (lane == 0) {
            const float y0 = acc0 + bias_at(wbias, r0);
            const float y1 = acc1 + bias_at(wbias, r1);
            if (SWIGLU) {
                orow[unit] = gptoss_d_swiglu(y0, y1, limit);
            } else {
                orow[r0] = y0;
                if (r0 + 1 < num_out) orow[r0 + 1] = y1;
            }
        }
    }
}

/* Prefill: tiled GEMM over expert-grouped rows. Block (x, y): weight-row tile x; y walks
 * the experts' row tiles. out[m][n] = A[m] . W_e[n] + b_e[n] (or SwiGLU of column pairs). */
constexpr int BM = 64, BN = 64, BK = 32;

template <bool SWIGLU>
__global__ void __launch_bounds__(256) moe_gemm_kernel(const uint32_t* __restrict__ offsets,
                                                       const float* __restrict__ A,
                                                       const uint8_t* __restrict__ blocks,
                                                       const uint8_t* __restrict__ scales,
                                                       const uint8_t* __restrict__ bias_bytes, size_t stride,
                                                       float* __restrict__ out, uint32_t P, uint32_t E, uint32_t K,
                                                       uint32_t N /* weight rows */, uint32_t out_width,
                                                       float limit, uint32_t* error_word) {
    __shared__ __align__(16) float As[BK][BM + 4];
    __shared__ __align__(16) float Bs[BK][BN + 4];
    const uint32_t tid = threadIdx.x;
    const uint32_t n0 = blockIdx.x * BN;

    /* find (expert, row tile) of this block; validate the offsets on the way */
    uint32_t y = blockIdx.y;
    uint32_t e_found = 0xFFFFFFFFu, row_begin = 0, row_end = 0;
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
        if (tid == 0 && blockIdx.x == 0 && blockIdx.y == 0) gptoss_d_set_error(error_word, GPTOSS_CUDA_ERROR_ROUTING_OFFSET);
        /* NaN rows: block y covers rows [y*BM, y*BM+BM) of the output columns of tile x */
        const uint32_t m_begin = blockIdx.y * BM;
        const uint32_t c_begin = SWIGLU ? n0 / 2 : n0, c_end = min(c_begin + (SWIGLU ? BN / 2 : BN), out_width);
        for (uint32_t idx = tid; idx < BM * BN; idx += blockDim.x) {
            const uint32_t m = m_begin + idx / BN, c = c_begin + idx % BN;
            if (m < P && c < c_end) out[(size_t) m * out_width + c] = nan_f();
        }
        return;
    }
    if (e_found == 0xFFFFFFFFu) return;

    const uint8_t* wb = blocks + (size_t) e_found * stride;
    const uint8_t* wsc = scales + (size_t) e_found * stride;
    const uint8_t* wbias = bias_bytes + (size_t) e_found * stride;
    const uint32_t nb = K / 32;
    const uint32_t tx = tid % 16, ty = tid / 16;
    const uint32_t lr = tid / 4, lc = (tid % 4) * 8;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;

    for (uint32_t kb = 0; kb < nb; kb++) {
        const uint32_t k0 = kb * BK;
        const uint32_t am = row_begin + lr, bn = n0 + lr;
#pragma unroll
        for (int q = 0; q < 8; q++) As[lc + q][lr] = am < row_end ? A[(size_t) am * K + k0 + lc + q] : 0.0f;
        if (bn < N) {
            const uint8_t* bp = wb + ((size_t) bn * nb + kb) * 16 + lc / 2;
            const float mult = mf4_multiplier(wsc[(size_t) bn * nb + kb]);
#pragma unroll
            for (int q = 0; q < 4; q++) {
                const uint32_t byte = bp[q];
                Bs[lc + 2 * q][lr] = gptoss_d_fp4(byte & 15u) * mult;
                Bs[lc + 2 * q + 1][lr] = gptoss_d_fp4(byte >> 4) * mult;
            }
        } else {
#pragma unroll
            for (int q = 0; q < 8; q++) Bs[lc + q][lr] = 0.0f;
        }
        __syncthreads();
#pragma unroll 8
        for (int kk = 0; kk < BK; kk++) {
            const float4 a = *(const float4*) &As[kk][ty * 4];
            const float4 b = *(const float4*) &Bs[kk][tx * 4];
            const float ar[4] = {a.x, a.y, a.z, a.w};
            const float br[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const uint32_t m = row_begin + ty * 4 + i;
        if (m >= row_end) continue;
        if (SWIGLU) {
#pragma unroll
            for (int jj = 0; jj < 2; jj++) {
                const uint32_t n = n0 + tx * 4 + 2 * jj;
                if (n + 1 < N && n / 2 < out_width) {
                    const float g = acc[i][2 * jj] + bias_at(wbias, n);
                    const float l = acc[i][2 * jj + 1] + bias_at(wbias, n + 1);
                    out[(size_t) m * out_width + n / 2] = gptoss_d_swiglu(g, l, limit);
                }
            }
        } else {
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const uint32_t n = n0 + tx * 4 + j;
                if (n < N) out[(size_t) m * out_width + n] = acc[i][j] + bias_at(wbias, n);
            }
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
    const dim3 grid((units + kUnitsPerBlock - 1) / kUnitsPerBlock, (unsigned) pairs);
    const size_t smem = (size_t) (C / 32) * kXPad * sizeof(float);
    const bool vec = gptoss_aligned(blocks, 16) && stride % 16 == 0;
    auto kernel = vec ? moe_gemv_kernel<SWIGLU, true> : moe_gemv_kernel<SWIGLU, false>;
    if (smem > 48 * 1024) {
        if (smem > gptoss_cuda(backend)->max_shared_per_block) {
            return gptoss_fail(gptoss_status_unsupported_argument, "CUDA MoE decode: num_cols %u is too large", C);
        }
        GPTOSS_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem));
    }
    kernel<<<grid, kMoeWarps * 32, smem, gptoss_cuda_stream(backend)>>>(
        input, ids, blocks, scales, (const uint8_t*) bias, stride, output, T, k, E, C, num_rows, limit,
        gptoss_cuda_error_word(backend));
    GPTOSS_CUDA_LAUNCHED("MXFP4 MoE GEMV");
    return gptoss_status_success;
}

template <bool SWIGLU>
enum gptoss_status launch_moe_gemm(gptoss_backend_t backend, const uint32_t* offsets, const float* input,
                                   const uint8_t* blocks, const uint8_t* scales, const gptoss_bf16* bias,
                                   size_t stride, float* output, uint32_t T, uint32_t k, uint32_t E, uint32_t C,
                                   uint32_t num_rows, float limit) {
    const uint64_t P = (uint64_t) T * k;
    const uint32_t N = SWIGLU ? 2 * num_rows : num_rows;
    uint64_t y_tiles = (P + BM - 1) / BM + E;
    if (y_tiles > GPTOSS_CUDA_MAX_GRID_YZ) {
        return gptoss_fail(gptoss_status_unsupported_argument, "CUDA MoE prefill: too many row tiles (%llu)",
                           (unsigned long long) y_tiles);
    }
    const dim3 grid((N + BN - 1) / BN, (unsigned) y_tiles);
    moe_gemm_kernel<SWIGLU><<<grid, 256, 0, gptoss_cuda_stream(backend)>>>(
        offsets, input, blocks, scales, (const uint8_t*) bias, stride, output, (uint32_t) P, E, C, N, num_rows, limit,
        gptoss_cuda_error_word(backend));
    GPTOSS_CUDA_LAUNCHED("MXFP4 MoE GEMM");
    return gptoss_status_success;
}

}  // namespace

extern "C" enum gptoss_status gptoss_cuda_f32_mf4w_moe_matmul_swiglu(
    gptoss_backend_t backend, const float* input, const uint32_t* expert_ids, const uint8_t* weight_blocks,
    const uint8_t* weight_scales, const gptoss_bf16* bias, size_t expert_stride, float* output, uint32_t num_tokens,
    uint32_t num_active_experts, uint32_t num_experts, uint32_t num_cols, uint32_t num_rows, float swiglu_limit) {
    return launch_moe_gemv<true>(backend, input, expert_ids, weight_blocks, weight_scales, bias, expert_stride, output,
                                 num_tokens, num_active_experts, num_experts, num_cols, num_rows, swiglu_limit);
}

extern "C" enum gptoss_status gptoss_cuda_f32_mf4w_moe_matmul(gptoss_backend_t backend, const float* input,
                                                              const uint32_t* expert_ids, const uint8_t* weight_blocks,
                                                              const uint8_t* weight_scales, const gptoss_bf16* bias,
                                                              size_t expert_stride, float* output,
                                                              uint32_t num_tokens, uint32_t num_active_experts,
                                                              uint32_t num_experts, uint32_t num_cols,
                                                              uint32_t num_rows) {
    return launch_moe_gemv<false>(backend, input, expert_ids, weight_blocks, weight_scales, bias, expert_stride,
                                  output, num_tokens, num_active_experts, num_experts, num_cols, num_rows, 0.0f);
}

extern "C" enum gptoss_status gptoss_cuda_f32_mf4w_moe_dense_matmul_swiglu(
    gptoss_backend_t backend, const uint32_t* expert_offsets, const float* input, const uint8_t* weight_blocks,
    const uint8_t* weight_scales, const gptoss_bf16* bias, size_t expert_stride, float* output, uint32_t num_tokens,
    uint32_t num_active_experts, uint32_t num_experts, uint32_t num_cols, uint32_t num_rows, float swiglu_limit) {
    return launch_moe_gemm<true>(backend, expert_offsets, input, weight_blocks, weight_scales, bias, expert_stride,
                                 output, num_tokens, num_active_experts, num_experts, num_cols, num_rows,
                                 swiglu_limit);
}

extern "C" enum gptoss_status gptoss_cuda_f32_mf4w_moe_dense_matmul(
    gptoss_backend_t backend, const uint32_t* expert_offsets, const float* input, const uint8_t* weight_blocks,
    const uint8_t* weight_scales, const gptoss_bf16* bias, size_t expert_stride, float* output, uint32_t num_tokens,
    uint32_t num_active_experts, uint32_t num_experts, uint32_t num_cols, uint32_t num_rows) {
    return launch_moe_gemm<false>(backend, expert_offsets, input, weight_blocks, weight_scales, bias, expert_stride,
                                  output, num_tokens, num_active_experts, num_experts, num_cols, num_rows, 0.0f);
}
