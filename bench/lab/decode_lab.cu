// decode_lab: a kernel lab for the batch-1 decode GEMVs (dense bf16 and MXFP4 MoE).
//
// Not part of the library or the tests. It builds a chain of L gpt-oss-20b decode layers
// (qkv GEMV, attention-output GEMV + residual, the fused MoE gate, MoE up + SwiGLU, MoE
// down, the fused accumulate + RMSNorm) on real-sized random weights, captures it into one
// CUDA graph with programmatic dependent launch, and times it with the library's kernels
// and with lab variants of the GEMVs in their place. Each variant is first checked against a
// float64 host reference on layer 0 (error bound: 2 * C * 2^-24 * sum |x w| per output).
// The SDPA is left out (the attention output reads the Q part of the qkv row).
//
//   decode_lab [--layers L] [--iters N]
//
// The question it answers: how close does a chain of separate kernels get to the copy
// bandwidth when each kernel issues all (or most) of its weight loads before
// griddepcontrol.wait, with its work split so that the whole op fits in one wave?
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <gptoss/kernels.h>

#include "lab_check.h"

namespace {

// gpt-oss-20b shapes
constexpr uint32_t H = 2880, QKV = 5120, ATT = 4096, E = 32, K = 4, I = 2880;
constexpr uint32_t NB = H / 32; // MXFP4 blocks per row (both projections have 2880 columns)

// ------------------------------------------------------------------------------ device
__device__ __forceinline__ void pdl_trigger() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }
__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }

__device__ __forceinline__ uint4 ld_stream(const void* p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}
__device__ __forceinline__ uint32_t ld_stream_u8(const uint8_t* p) {
    uint16_t v;
    asm volatile("ld.global.nc.L1::no_allocate.u8 %0, [%1];" : "=h"(v) : "l"(p));
    return v;
}
__device__ __forceinline__ float bf_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf_hi(uint32_t w) { return __uint_as_float(w & 0xFFFF0000u); }
__device__ __forceinline__ float dot8(uint4 w, float4 a, float4 b, float acc) {
    acc = fmaf(a.x, bf_lo(w.x), acc);
    acc = fmaf(a.y, bf_hi(w.x), acc);
    acc = fmaf(a.z, bf_lo(w.y), acc);
    acc = fmaf(a.w, bf_hi(w.y), acc);
    acc = fmaf(b.x, bf_lo(w.z), acc);
    acc = fmaf(b.y, bf_hi(w.z), acc);
    acc = fmaf(b.z, bf_lo(w.w), acc);
    acc = fmaf(b.w, bf_hi(w.w), acc);
    return acc;
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
    return v;
}
__device__ __forceinline__ float2 h2f(uint32_t bits) {
    __half2 h;
    memcpy(&h, &bits, 4);
    return __half22float2(h);
}
// sum_e x[e] * fp4[e] * 2^-14 over the 8 values of one u32 of an MXFP4 block (as moe.cu)
__device__ __forceinline__ float dot8_fp4(uint32_t w, float4 xa, float4 xb, float p) {
    const float2 a = h2f(((w << 9) & 0x0E000E00u) | ((w << 12) & 0x80008000u));
    const float2 b = h2f(((w << 5) & 0x0E000E00u) | ((w << 8) & 0x80008000u));
    const float2 c = h2f(((w << 1) & 0x0E000E00u) | ((w << 4) & 0x80008000u));
    const float2 d = h2f(((w >> 3) & 0x0E000E00u) | (w & 0x80008000u));
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
__device__ __forceinline__ float dot_block(uint4 q, const float4* x4) {
    float p = 0.0f;
    p = dot8_fp4(q.x, __ldg(x4 + 0), __ldg(x4 + 1), p);
    p = dot8_fp4(q.y, __ldg(x4 + 2), __ldg(x4 + 3), p);
    p = dot8_fp4(q.z, __ldg(x4 + 4), __ldg(x4 + 5), p);
    p = dot8_fp4(q.w, __ldg(x4 + 6), __ldg(x4 + 7), p);
    return p;
}
__device__ __forceinline__ float exp2i(int e) {
    if (e >= -126) return __uint_as_float((uint32_t) (e + 127) << 23);
    return __uint_as_float(1u << (e + 149));
}
__device__ __forceinline__ float swiglu(float glu, float lin, float limit) {
    const float g = fminf(glu, limit);
    const float l = fminf(fmaxf(lin, -limit), limit);
    const float sw = g / (1.0f + expf(-1.702f * g));
    return fmaf(sw, l, sw);
}

// Region GEMV, one token (the stepbench "C" design applied to a matrix-vector product).
// Block b owns the rows [b*RB, b*RB + RB) of W, a contiguous run of n = rows * C/8 16-byte
// chunks; thread t streams chunks t, t + 256, t + 512, ... PRE of them are issued before
// griddepcontrol.wait (weights are never written by a kernel), the rest after it in batches of
// POST (double-buffered). Each chunk's dot with x goes to shared memory part[i]; a warp then
// sums each row's partials in column order (lane-strided, butterfly) and adds the bias.
// One wave: the grid is at most BPS blocks per SM.
template <int PRE, int POST, int BPS, bool ADD, int MODE = 0>
__global__ void __launch_bounds__(256, BPS) gemv_region(const float* __restrict__ x, const uint16_t* __restrict__ w,
                                                        const uint16_t* __restrict__ bias, float* __restrict__ out,
                                                        uint32_t C, uint32_t R, uint32_t RB) {
    extern __shared__ float part[];
    pdl_trigger();
    const uint32_t tid = threadIdx.x, nchunks = C / 8;
    const uint32_t r0 = blockIdx.x * RB, rows = min(RB, R - r0), n = rows * nchunks;
    const uint4* base = (const uint4*) (w + (size_t) r0 * C);
    const float4* x4 = (const float4*) x;
    uint4 a[PRE];
#pragma unroll
    for (int k = 0; k < PRE; k++) {
        const uint32_t i = tid + 256u * k;
        a[k] = i < n ? ld_stream(base + i) : make_uint4(0, 0, 0, 0);
    }
    pdl_wait();
    auto dot_chunk = [&](uint32_t i, uint4 q) {
        const uint32_t c = i % nchunks;
        if (MODE == 1) { /* lab: no x (a constant), to time the x reads */
            part[i] = dot8(q, make_float4(1, 2, 3, 4), make_float4(5, 6, 7, 8), 0.0f);
        } else {
            part[i] = dot8(q, __ldg(x4 + 2 * c), __ldg(x4 + 2 * c + 1), 0.0f);
        }
    };
    uint32_t k0 = PRE;
    uint4 b[POST];
#pragma unroll
    for (int k = 0; k < POST; k++) {
        const uint32_t i = tid + 256u * (k0 + k);
        b[k] = i < n ? ld_stream(base + i) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int k = 0; k < PRE; k++) {
        const uint32_t i = tid + 256u * k;
        if (i < n) dot_chunk(i, a[k]);
    }
    while (tid + 256u * k0 < n) {
        uint4 c[POST];
#pragma unroll
        for (int k = 0; k < POST; k++) {
            const uint32_t i = tid + 256u * (k0 + POST + k);
            c[k] = i < n ? ld_stream(base + i) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int k = 0; k < POST; k++) {
            const uint32_t i = tid + 256u * (k0 + k);
            if (i < n) dot_chunk(i, b[k]);
        }
#pragma unroll
        for (int k = 0; k < POST; k++) b[k] = c[k];
        k0 += POST;
    }
    if (MODE == 2) { /* lab: no row reduction, to time it */
        if (tid < rows) out[r0 + tid] = part[tid];
        return;
    }
    __syncthreads();
    const uint32_t warp = tid >> 5, lane = tid & 31u;
    for (uint32_t rr = warp; rr < rows; rr += 8) {
        float s = 0.0f;
        for (uint32_t c = lane; c < nchunks; c += 32) s += part[rr * nchunks + c];
        s = warp_sum(s);
        if (lane == 0) {
            const uint32_t r = r0 + rr;
            const float v = s + __uint_as_float((uint32_t) bias[r] << 16);
            out[r] = ADD ? out[r] + v : v;
        }
    }
}

// Lab control: the stepbench "C" stream (grid-stride over the op's weight bytes, PRE loads
// before griddepcontrol.wait, the rest unrolled by 8), no arithmetic but a sum per block.
template <int PRE>
__global__ void __launch_bounds__(256, 4) stream_c(const uint4* __restrict__ p, size_t n, float* __restrict__ sink) {
    __shared__ uint32_t red[8];
    pdl_trigger();
    const size_t S = (size_t) gridDim.x * 256, t = (size_t) blockIdx.x * 256 + threadIdx.x;
    uint32_t acc = 0;
    uint4 v[PRE];
#pragma unroll
    for (int k = 0; k < PRE; k++) v[k] = t + k * S < n ? ld_stream(p + t + k * S) : make_uint4(0, 0, 0, 0);
    pdl_wait();
#pragma unroll
    for (int k = 0; k < PRE; k++) acc += v[k].x + v[k].y + v[k].z + v[k].w;
#pragma unroll 8
    for (size_t i = t + PRE * S; i < n; i += S) {
        const uint4 q = ld_stream(p + i);
        acc += q.x + q.y + q.z + q.w;
    }
    for (int o = 16; o > 0; o >>= 1) acc += __shfl_xor_sync(0xFFFFFFFFu, acc, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        uint32_t s = 0;
        for (int w = 0; w < 8; w++) s += red[w];
        sink[blockIdx.x] = __uint_as_float(s & 0x3FFFFFFFu);
    }
}

// Region MoE, one token, k slots. Block (j, b) owns rows [b*RB, b*RB + RB) of expert
// ids[j]'s matrix (up: 2 I rows, glu/linear interleaved, RB even; down: H rows): n = rows * NB
// MXFP4 blocks of 16 bytes plus their scale bytes, streamed as in gemv_region; part[i] =
// x . block * scale. Up: a warp per row pair, SwiGLU; down: a warp per row.
// IDS_EARLY: ids read before griddepcontrol.wait (only when the kernel before triggers its
// dependents after its own wait: TRIGGER_LATE in the up-projection).
template <bool SWIGLU, bool IDS_EARLY, bool TRIGGER_LATE, int PRE, int POST, int BPS>
__global__ void __launch_bounds__(256, BPS) moe_region(const float* __restrict__ input,
                                                       const uint32_t* __restrict__ ids,
                                                       const uint8_t* __restrict__ mbase, size_t stride,
                                                       size_t blocks_off, size_t scales_off, size_t bias_off,
                                                       float* __restrict__ out, uint32_t num_w_rows, uint32_t RB,
                                                       uint32_t blocks_per_pair, float limit) {
    extern __shared__ float part[];
    if (!TRIGGER_LATE) pdl_trigger();
    const uint32_t tid = threadIdx.x;
    const uint32_t j = blockIdx.x / blocks_per_pair, rb = blockIdx.x % blocks_per_pair;
    const uint32_t r0 = rb * RB, rows = min(RB, num_w_rows - r0), n = rows * NB;
    uint32_t e = 0;
    const uint4* base = nullptr;
    const uint8_t* sbase = nullptr;
    auto locate = [&]() {
        e = ids[j];
        const uint8_t* ex = mbase + (size_t) e * stride;
        base = (const uint4*) (ex + blocks_off + (size_t) r0 * NB * 16);
        sbase = ex + scales_off + (size_t) r0 * NB;
    };
    uint4 a[PRE];
    uint32_t as[PRE];
    auto load_a = [&]() {
#pragma unroll
        for (int k = 0; k < PRE; k++) {
            const uint32_t i = tid + 256u * k;
            a[k] = i < n ? ld_stream(base + i) : make_uint4(0, 0, 0, 0);
            as[k] = i < n ? ld_stream_u8(sbase + i) : 0u;
        }
    };
    if (IDS_EARLY) {
        locate();
        load_a();
    }
    pdl_wait();
    if (TRIGGER_LATE) pdl_trigger();
    if (!IDS_EARLY) {
        locate();
        load_a();
    }
    const float* x = input + (SWIGLU ? 0 : (size_t) j * (NB * 32));
    auto dot_chunk = [&](uint32_t i, uint4 q, uint32_t sc) {
        const uint32_t blk = i % NB;
        part[i] = dot_block(q, (const float4*) (x + (size_t) blk * 32)) * 0x1.0p14f * exp2i((int) sc - 141);
    };
    uint32_t k0 = PRE;
    uint4 b[POST];
    uint32_t bs[POST];
#pragma unroll
    for (int k = 0; k < POST; k++) {
        const uint32_t i = tid + 256u * (k0 + k);
        b[k] = i < n ? ld_stream(base + i) : make_uint4(0, 0, 0, 0);
        bs[k] = i < n ? ld_stream_u8(sbase + i) : 0u;
    }
#pragma unroll
    for (int k = 0; k < PRE; k++) {
        const uint32_t i = tid + 256u * k;
        if (i < n) dot_chunk(i, a[k], as[k]);
    }
    while (tid + 256u * k0 < n) {
        uint4 c[POST];
        uint32_t cs[POST];
#pragma unroll
        for (int k = 0; k < POST; k++) {
            const uint32_t i = tid + 256u * (k0 + POST + k);
            c[k] = i < n ? ld_stream(base + i) : make_uint4(0, 0, 0, 0);
            cs[k] = i < n ? ld_stream_u8(sbase + i) : 0u;
        }
#pragma unroll
        for (int k = 0; k < POST; k++) {
            const uint32_t i = tid + 256u * (k0 + k);
            if (i < n) dot_chunk(i, b[k], bs[k]);
        }
#pragma unroll
        for (int k = 0; k < POST; k++) b[k] = c[k], bs[k] = cs[k];
        k0 += POST;
    }
    __syncthreads();
    const uint32_t warp = tid >> 5, lane = tid & 31u;
    const uint8_t* bb = mbase + (size_t) e * stride + bias_off;
    auto row_sum = [&](uint32_t rr) {
        float s = 0.0f;
        for (uint32_t c = lane; c < NB; c += 32) s += part[rr * NB + c];
        s = warp_sum(s);
        const uint32_t r = r0 + rr;
        return s + __uint_as_float((uint32_t) (bb[2 * r] | (bb[2 * r + 1] << 8)) << 16);
    };
    if (SWIGLU) {
        for (uint32_t u = warp; 2 * u < rows; u += 8) {
            const float g = row_sum(2 * u), l = row_sum(2 * u + 1);
            if (lane == 0) out[(size_t) j * (num_w_rows / 2) + r0 / 2 + u] = swiglu(g, l, limit);
        }
    } else {
        for (uint32_t rr = warp; rr < rows; rr += 8) {
            const float v = row_sum(rr);
            if (lane == 0) out[(size_t) j * num_w_rows + r0 + rr] = v;
        }
    }
}

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
    const uint32_t sa = (uint32_t) __cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(sa), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async4(void* smem, const void* gmem) {
    const uint32_t sa = (uint32_t) __cvta_generic_to_shared(smem);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(sa), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_all;" ::: "memory"); }

// "All in flight" GEMV, one token: as gemv_region, but every weight chunk of the block is
// requested before griddepcontrol.wait: REG chunks per thread into registers, the other NS
// (runtime) into shared memory by cp.async (no registers held). After the wait only x is
// read. Dynamic shared memory: NS * 256 uint4, then RB * C/8 floats of partials.
template <int REG, int BPS, bool ADD>
__global__ void __launch_bounds__(256, BPS) gemv_all(const float* __restrict__ x, const uint16_t* __restrict__ w,
                                                     const uint16_t* __restrict__ bias, float* __restrict__ out,
                                                     uint32_t C, uint32_t R, uint32_t RB, uint32_t NS) {
    extern __shared__ uint4 dsm[];
    uint4* wbuf = dsm;
    float* part = (float*) (dsm + (size_t) NS * 256);
    pdl_trigger();
    const uint32_t tid = threadIdx.x, nchunks = C / 8;
    const uint32_t r0 = blockIdx.x * RB, rows = min(RB, R - r0), n = rows * nchunks;
    const uint4* base = (const uint4*) (w + (size_t) r0 * C);
    uint4 a[REG];
#pragma unroll
    for (int k = 0; k < REG; k++) {
        const uint32_t i = tid + 256u * k;
        a[k] = i < n ? ld_stream(base + i) : make_uint4(0, 0, 0, 0);
    }
    for (uint32_t k = 0; k < NS; k++) {
        const uint32_t i = tid + 256u * (REG + k);
        if (i < n) cp_async16(wbuf + k * 256 + tid, base + i);
    }
    asm volatile("cp.async.commit_group;" ::: "memory");
    pdl_wait();
    const float4* x4 = (const float4*) x;
#pragma unroll
    for (int k = 0; k < REG; k++) {
        const uint32_t i = tid + 256u * k;
        if (i < n) {
            const uint32_t c = i % nchunks;
            part[i] = dot8(a[k], __ldg(x4 + 2 * c), __ldg(x4 + 2 * c + 1), 0.0f);
        }
    }
    cp_async_wait_all();
    for (uint32_t k = 0; k < NS; k++) {
        const uint32_t i = tid + 256u * (REG + k);
        if (i < n) {
            const uint32_t c = i % nchunks;
            part[i] = dot8(wbuf[k * 256 + tid], __ldg(x4 + 2 * c), __ldg(x4 + 2 * c + 1), 0.0f);
        }
    }
    __syncthreads();
    const uint32_t warp = tid >> 5, lane = tid & 31u;
    for (uint32_t rr = warp; rr < rows; rr += 8) {
        float s = 0.0f;
        for (uint32_t c = lane; c < nchunks; c += 32) s += part[rr * nchunks + c];
        s = warp_sum(s);
        if (lane == 0) {
            const uint32_t r = r0 + rr;
            const float v = s + __uint_as_float((uint32_t) bias[r] << 16);
            out[r] = ADD ? out[r] + v : v;
        }
    }
}

// "All in flight" MoE: as moe_region, with REG chunks per thread in registers and NS in
// shared memory (cp.async), the region's scale bytes copied to shared memory (4-byte
// cp.async, region start 4-byte aligned), x staged in shared memory (36-float rows per MXFP4
// block: conflict-free 16-byte reads). Chunks beyond REG + NS (when the region does not fit)
// are loaded REG at a time afterwards. Dynamic shared memory: NS * 256 uint4 | RB*NB floats
// (partials) | NB*36 floats (x) | RB*NB bytes (scales, rounded up to 16).
template <bool SWIGLU, bool IDS_EARLY, bool TRIGGER_LATE, int REG, int BPS>
__global__ void __launch_bounds__(256, BPS) moe_all(const float* __restrict__ input, const uint32_t* __restrict__ ids,
                                                    const uint8_t* __restrict__ mbase, size_t stride,
                                                    size_t blocks_off, size_t scales_off, size_t bias_off,
                                                    float* __restrict__ out, uint32_t num_w_rows, uint32_t RB,
                                                    uint32_t blocks_per_pair, uint32_t NS, float limit) {
    extern __shared__ uint4 dsm[];
    uint4* wbuf = dsm;
    float* part = (float*) (dsm + (size_t) NS * 256);
    float* xs = part + (size_t) RB * NB;
    uint8_t* sc = (uint8_t*) (xs + NB * 36);
    if (!TRIGGER_LATE) pdl_trigger();
    const uint32_t tid = threadIdx.x;
    const uint32_t j = blockIdx.x / blocks_per_pair, rb = blockIdx.x % blocks_per_pair;
    const uint32_t r0 = rb * RB, rows = min(RB, num_w_rows - r0), n = rows * NB;
    uint32_t e = 0;
    const uint4* base = nullptr;
    uint4 a[REG];
    auto issue = [&]() {
        e = ids[j];
        const uint8_t* ex = mbase + (size_t) e * stride;
        base = (const uint4*) (ex + blocks_off + (size_t) r0 * NB * 16);
        const uint8_t* sbase = ex + scales_off + (size_t) r0 * NB;
#pragma unroll
        for (int k = 0; k < REG; k++) {
            const uint32_t i = tid + 256u * k;
            a[k] = i < n ? ld_stream(base + i) : make_uint4(0, 0, 0, 0);
        }
        for (uint32_t k = 0; k < NS; k++) {
            const uint32_t i = tid + 256u * (REG + k);
            if (i < n) cp_async16(wbuf + k * 256 + tid, base + i);
        }
        for (uint32_t i = tid; 4 * i < n; i += 256) cp_async4(sc + 4 * i, sbase + 4 * i);
        asm volatile("cp.async.commit_group;" ::: "memory");
    };
    if (IDS_EARLY) issue();
    pdl_wait();
    if (TRIGGER_LATE) pdl_trigger();
    if (!IDS_EARLY) issue();
    const float* x = input + (SWIGLU ? 0 : (size_t) j * (NB * 32));
    for (uint32_t i = tid; i < NB * 8; i += 256) {
        const float4 v = __ldg((const float4*) x + i);
        *(float4*) (xs + (i / 8) * 36 + (i % 8) * 4) = v;
    }
    cp_async_wait_all();
    __syncthreads();
    auto dot_chunk = [&](uint32_t i, uint4 q) {
        const uint32_t blk = i % NB;
        const float4* x4 = (const float4*) (xs + blk * 36);
        float p = 0.0f;
        p = dot8_fp4(q.x, x4[0], x4[1], p);
        p = dot8_fp4(q.y, x4[2], x4[3], p);
        p = dot8_fp4(q.z, x4[4], x4[5], p);
        p = dot8_fp4(q.w, x4[6], x4[7], p);
        part[i] = p * 0x1.0p14f * exp2i((int) sc[i] - 141);
    };
#pragma unroll
    for (int k = 0; k < REG; k++) {
        const uint32_t i = tid + 256u * k;
        if (i < n) dot_chunk(i, a[k]);
    }
    for (uint32_t k = 0; k < NS; k++) {
        const uint32_t i = tid + 256u * (REG + k);
        if (i < n) dot_chunk(i, wbuf[k * 256 + tid]);
    }
    for (uint32_t k0 = REG + NS; tid + 256u * k0 < n; k0 += REG) { // overflow, REG at a time
#pragma unroll
        for (int k = 0; k < REG; k++) {
            const uint32_t i = tid + 256u * (k0 + k);
            a[k] = i < n ? ld_stream(base + i) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int k = 0; k < REG; k++) {
            const uint32_t i = tid + 256u * (k0 + k);
            if (i < n) dot_chunk(i, a[k]);
        }
    }
    __syncthreads();
    const uint32_t warp = tid >> 5, lane = tid & 31u;
    const uint8_t* bb = mbase + (size_t) e * stride + bias_off;
    auto row_sum = [&](uint32_t rr) {
        float s = 0.0f;
        for (uint32_t c = lane; c < NB; c += 32) s += part[rr * NB + c];
        s = warp_sum(s);
        const uint32_t r = r0 + rr;
        return s + __uint_as_float((uint32_t) (bb[2 * r] | (bb[2 * r + 1] << 8)) << 16);
    };
    if (SWIGLU) {
        for (uint32_t u = warp; 2 * u < rows; u += 8) {
            const float g = row_sum(2 * u), l = row_sum(2 * u + 1);
            if (lane == 0) out[(size_t) j * (num_w_rows / 2) + r0 / 2 + u] = swiglu(g, l, limit);
        }
    } else {
        for (uint32_t rr = warp; rr < rows; rr += 8) {
            const float v = row_sum(rr);
            if (lane == 0) out[(size_t) j * num_w_rows + r0 + rr] = v;
        }
    }
}

// Region GEMV v2: as gemv_region with (1) RP rows per slot: a thread loads the 16-byte chunks
// of RP consecutive rows at one column chunk and reads x once for them (x reads / RP); (2) x
// staged in shared memory after the wait, as two planes (x[8c..8c+3] and x[8c+4..8c+7] at
// c * 16 bytes: consecutive lanes read consecutive 16 bytes, conflict-free); (3) the block's
// biases read into shared memory before the wait (weights). R % RP == 0, RB % RP == 0.
// Shared memory: C/8 * 32 (x) + RB * C/8 * 4 (partials) + RB * 4 (bias) bytes.
template <int RP, int PRE, int POST, int BPS, bool ADD>
__global__ void __launch_bounds__(256, BPS) gemv_r2(const float* __restrict__ x, const uint16_t* __restrict__ w,
                                                    const uint16_t* __restrict__ bias, float* __restrict__ out,
                                                    uint32_t C, uint32_t R, uint32_t RB) {
    extern __shared__ float4 sm4[];
    const uint32_t tid = threadIdx.x, nchunks = C / 8;
    float4* xlo = sm4;
    float4* xhi = sm4 + nchunks;
    float* part = (float*) (sm4 + 2 * nchunks);
    float* sbias = part + (size_t) RB * nchunks;
    pdl_trigger();
    const uint32_t r0 = blockIdx.x * RB, rows = min(RB, R - r0), nslots = rows / RP * nchunks;
    if (tid < rows) sbias[tid] = __uint_as_float((uint32_t) bias[r0 + tid] << 16);
    const uint4* base = (const uint4*) (w + (size_t) r0 * C);
    auto load = [&](uint32_t sl, uint4 (&q)[RP]) {
        const uint32_t g = sl / nchunks, c = sl % nchunks;
#pragma unroll
        for (int r = 0; r < RP; r++)
            q[r] = sl < nslots ? ld_stream(base + (size_t) (g * RP + r) * nchunks + c) : make_uint4(0, 0, 0, 0);
    };
    uint4 a[PRE][RP];
#pragma unroll
    for (int k = 0; k < PRE; k++) load(tid + 256u * k, a[k]);
    pdl_wait();
    const float4* x4 = (const float4*) x;
    for (uint32_t c = tid; c < nchunks; c += 256) {
        xlo[c] = __ldg(x4 + 2 * c);
        xhi[c] = __ldg(x4 + 2 * c + 1);
    }
    __syncthreads();
    auto dot_slot = [&](uint32_t sl, const uint4 (&q)[RP]) {
        const uint32_t g = sl / nchunks, c = sl % nchunks;
        const float4 lo = xlo[c], hi = xhi[c];
#pragma unroll
        for (int r = 0; r < RP; r++) part[(g * RP + r) * nchunks + c] = dot8(q[r], lo, hi, 0.0f);
    };
    for (uint32_t k0 = 0;; k0 += PRE) {
        if (k0 > 0) {
#pragma unroll
            for (int k = 0; k < PRE; k++) load(tid + 256u * (k0 + k), a[k]);
        }
#pragma unroll
        for (int k = 0; k < PRE; k++) {
            const uint32_t sl = tid + 256u * (k0 + k);
            if (sl < nslots) dot_slot(sl, a[k]);
        }
        if (tid + 256u * (k0 + PRE) >= nslots) break;
    }
    __syncthreads();
    const uint32_t warp = tid >> 5, lane = tid & 31u;
    for (uint32_t rr = warp; rr < rows; rr += 8) {
        float s = 0.0f;
        for (uint32_t c = lane; c < nchunks; c += 32) s += part[rr * nchunks + c];
        s = warp_sum(s);
        if (lane == 0) {
            const float v = s + sbias[rr];
            out[r0 + rr] = ADD ? out[r0 + rr] + v : v;
        }
    }
}

// Region MoE v2: slots are (row pair, MXFP4 block): the glu/linear pair of the up-projection
// (or two rows of the down-projection) share the x block, staged in shared memory with
// 36-float rows (conflict-free 16-byte reads); biases and scales come with the weights.
template <bool SWIGLU, bool IDS_EARLY, bool TRIGGER_LATE, int PRE, int POST, int BPS>
__global__ void __launch_bounds__(256, BPS) moe_r2(const float* __restrict__ input, const uint32_t* __restrict__ ids,
                                                   const uint8_t* __restrict__ mbase, size_t stride,
                                                   size_t blocks_off, size_t scales_off, size_t bias_off,
                                                   float* __restrict__ out, uint32_t num_w_rows, uint32_t RB,
                                                   uint32_t blocks_per_pair, float limit) {
    extern __shared__ float dsmf[];
    float* xs = dsmf;                  /* NB * 36 */
    float* part = xs + NB * 36;        /* RB * NB */
    float* sbias = part + RB * NB;     /* RB */
    if (!TRIGGER_LATE) pdl_trigger();
    const uint32_t tid = threadIdx.x;
    const uint32_t j = blockIdx.x / blocks_per_pair, rb = blockIdx.x % blocks_per_pair;
    const uint32_t r0 = rb * RB, rows = min(RB, num_w_rows - r0), nslots = rows / 2 * NB;
    const uint8_t* bblk = nullptr;
    const uint8_t* bsc = nullptr;
    uint4 a[PRE][2];
    uint32_t as[PRE][2];
    auto load = [&](uint32_t sl, uint4 (&q)[2], uint32_t (&sc)[2]) {
        const uint32_t g = sl / NB, blk = sl % NB;
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const size_t row = (size_t) (2 * g + r);
            q[r] = sl < nslots ? ld_stream(bblk + (row * NB + blk) * 16) : make_uint4(0, 0, 0, 0);
            sc[r] = sl < nslots ? ld_stream_u8(bsc + row * NB + blk) : 0u;
        }
    };
    auto issue = [&]() {
        const uint8_t* ex = mbase + (size_t) ids[j] * stride;
        bblk = ex + blocks_off + (size_t) r0 * NB * 16;
        bsc = ex + scales_off + (size_t) r0 * NB;
        if (tid < rows) {
            const uint8_t* bb = ex + bias_off + 2 * (size_t) (r0 + tid);
            sbias[tid] = __uint_as_float((uint32_t) (bb[0] | (bb[1] << 8)) << 16);
        }
#pragma unroll
        for (int k = 0; k < PRE; k++) load(tid + 256u * k, a[k], as[k]);
    };
    if (IDS_EARLY) issue();
    pdl_wait();
    if (TRIGGER_LATE) pdl_trigger();
    if (!IDS_EARLY) issue();
    const float* x = input + (SWIGLU ? 0 : (size_t) j * (NB * 32));
    for (uint32_t i = tid; i < NB * 8; i += 256) {
        const float4 v = __ldg((const float4*) x + i);
        *(float4*) (xs + (i / 8) * 36 + (i % 8) * 4) = v;
    }
    __syncthreads();
    auto dot_slot = [&](uint32_t sl, const uint4 (&q)[2], const uint32_t (&sc)[2]) {
        const uint32_t g = sl / NB, blk = sl % NB;
        const float4* x4 = (const float4*) (xs + blk * 36);
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float p = 0.0f;
            p = dot8_fp4(q[r].x, x4[0], x4[1], p);
            p = dot8_fp4(q[r].y, x4[2], x4[3], p);
            p = dot8_fp4(q[r].z, x4[4], x4[5], p);
            p = dot8_fp4(q[r].w, x4[6], x4[7], p);
            part[(2 * g + r) * NB + blk] = p * 0x1.0p14f * exp2i((int) sc[r] - 141);
        }
    };
    for (uint32_t k0 = 0;; k0 += PRE) {
        if (k0 > 0) {
#pragma unroll
            for (int k = 0; k < PRE; k++) load(tid + 256u * (k0 + k), a[k], as[k]);
        }
#pragma unroll
        for (int k = 0; k < PRE; k++) {
            const uint32_t sl = tid + 256u * (k0 + k);
            if (sl < nslots) dot_slot(sl, a[k], as[k]);
        }
        if (tid + 256u * (k0 + PRE) >= nslots) break;
    }
    __syncthreads();
    const uint32_t warp = tid >> 5, lane = tid & 31u;
    auto row_sum = [&](uint32_t rr) {
        float s = 0.0f;
        for (uint32_t c = lane; c < NB; c += 32) s += part[rr * NB + c];
        return warp_sum(s) + sbias[rr];
    };
    if (SWIGLU) {
        for (uint32_t u = warp; 2 * u < rows; u += 8) {
            const float g = row_sum(2 * u), l = row_sum(2 * u + 1);
            if (lane == 0) out[(size_t) j * (num_w_rows / 2) + r0 / 2 + u] = swiglu(g, l, limit);
        }
    } else {
        for (uint32_t rr = warp; rr < rows; rr += 8) {
            const float v = row_sum(rr);
            if (lane == 0) out[(size_t) j * num_w_rows + r0 + rr] = v;
        }
    }
}

__global__ void fix_scales(uint8_t* p, size_t n) { // scale bytes -> 137..142 (raw 123..128)
    for (size_t i = blockIdx.x * (size_t) blockDim.x + threadIdx.x; i < n; i += (size_t) gridDim.x * blockDim.x)
        p[i] = (uint8_t) (137 + p[i] % 6);
}

// ------------------------------------------------------------------------------ host
cudaStream_t g_stream;

template <typename... KA, typename... A>
void launch(void (*k)(KA...), dim3 grid, dim3 block, A... a) {
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t c = {};
    c.gridDim = grid;
    c.blockDim = block;
    c.stream = g_stream;
    c.attrs = at;
    c.numAttrs = 1;
    CK(cudaLaunchKernelEx(&c, k, ((KA) a)...));
}

int g_sms;

template <typename K>
void set_smem(K kernel, size_t bytes) {
    CK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int) bytes));
}

template <typename... KA, typename... A>
void launch_smem(void (*k)(KA...), dim3 grid, dim3 block, size_t smem, A... a) {
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t c = {};
    c.gridDim = grid;
    c.blockDim = block;
    c.dynamicSmemBytes = smem;
    c.stream = g_stream;
    c.attrs = at;
    c.numAttrs = 1;
    CK(cudaLaunchKernelEx(&c, k, ((KA) a)...));
}

// a dense GEMV variant: name + launcher (x, w, b, out, C, R, add)
struct Gemv {
    std::string name;
    std::function<void(const float*, const uint16_t*, const uint16_t*, float*, uint32_t, uint32_t, bool)> run;
};
template <int PRE, int POST, int BPS>
Gemv gemv_variant() {
    char n[64];
    snprintf(n, sizeof n, "region pre%d post%d %db/SM", PRE, POST, BPS);
    return {n, [](const float* x, const uint16_t* w, const uint16_t* b, float* out, uint32_t C, uint32_t R, bool add) {
                const uint32_t RB = (R + BPS * g_sms - 1) / (BPS * g_sms);
                const size_t smem = (size_t) RB * (C / 8) * 4;
                const dim3 grid((R + RB - 1) / RB), block(256);
                if (add) {
                    set_smem(gemv_region<PRE, POST, BPS, true>, smem);
                    launch_smem(gemv_region<PRE, POST, BPS, true>, grid, block, smem, x, w, b, out, C, R, RB);
                } else {
                    set_smem(gemv_region<PRE, POST, BPS, false>, smem);
                    launch_smem(gemv_region<PRE, POST, BPS, false>, grid, block, smem, x, w, b, out, C, R, RB);
                }
            }};
}

template <int PRE, int POST, int BPS, int MODE>
Gemv gemv_mode_variant(const char* what) {
    char n[80];
    snprintf(n, sizeof n, "region pre%d post%d %db/SM %s", PRE, POST, BPS, what);
    return {n, [](const float* x, const uint16_t* w, const uint16_t* b, float* out, uint32_t C, uint32_t R, bool add) {
                const uint32_t RB = (R + BPS * g_sms - 1) / (BPS * g_sms);
                const size_t smem = (size_t) RB * (C / 8) * 4;
                const dim3 grid((R + RB - 1) / RB), block(256);
                set_smem(gemv_region<PRE, POST, BPS, false, MODE>, smem);
                launch_smem(gemv_region<PRE, POST, BPS, false, MODE>, grid, block, smem, x, w, b, out, C, R, RB);
            }};
}
float* g_sink;
template <int PRE>
Gemv stream_variant() {
    char n[64];
    snprintf(n, sizeof n, "control: stream only, pre%d 4b/SM", PRE);
    return {n, [](const float*, const uint16_t* w, const uint16_t*, float*, uint32_t C, uint32_t R, bool) {
                const size_t n16 = (size_t) R * C / 8;
                const size_t want = (n16 + 1023) / 1024, cap = (size_t) 4 * g_sms;
                launch(stream_c<PRE>, dim3((unsigned) std::min(want, cap)), dim3(256), (const uint4*) w, n16, g_sink);
            }};
}

bool is_control(const Gemv& v) {
    return v.name.find("no-") != std::string::npos || v.name.find("control") != std::string::npos;
}

struct Moe {
    std::string name;
    std::function<void(bool swiglu, const float*, const uint32_t*, const uint8_t*, size_t, size_t, size_t, size_t,
                        float*, uint32_t)>
        run;
};
template <int PRE, int POST, int BPS, bool EARLY>
Moe moe_variant() {
    char n[96];
    snprintf(n, sizeof n, "region pre%d post%d %db/SM%s", PRE, POST, BPS, EARLY ? " ids-early" : "");
    return {n, [](bool sw, const float* in, const uint32_t* ids, const uint8_t* base, size_t stride, size_t bo,
                  size_t so, size_t bio, float* out, uint32_t num_out) {
                const uint32_t rows = sw ? 2 * num_out : num_out;
                uint32_t RB = (K * rows + BPS * g_sms - 1) / (BPS * g_sms);
                RB += RB & 1u;
                const uint32_t bpp = (rows + RB - 1) / RB;
                const size_t smem = (size_t) RB * NB * 4;
                const dim3 grid(bpp * K), block(256);
                if (sw) {
                    auto k = moe_region<true, false, EARLY, PRE, POST, BPS>;
                    set_smem(k, smem);
                    launch_smem(k, grid, block, smem, in, ids, base, stride, bo, so, bio, out, rows, RB, bpp, 7.0f);
                } else {
                    auto k = moe_region<false, EARLY, false, PRE, POST, BPS>;
                    set_smem(k, smem);
                    launch_smem(k, grid, block, smem, in, ids, base, stride, bo, so, bio, out, rows, RB, bpp, 7.0f);
                }
            }};
}

size_t g_smem_max;

template <int REG, int BPS>
Gemv gemv_all_variant() {
    char n[64];
    snprintf(n, sizeof n, "all reg%d %db/SM", REG, BPS);
    return {n, [](const float* x, const uint16_t* w, const uint16_t* b, float* out, uint32_t C, uint32_t R, bool add) {
                const uint32_t RB = (R + BPS * g_sms - 1) / (BPS * g_sms);
                const uint32_t n = RB * (C / 8), nk = (n + 255) / 256, NS = nk > REG ? nk - REG : 0;
                const size_t smem = (size_t) NS * 4096 + (size_t) n * 4;
                if (smem * BPS > g_smem_max) {
                    fprintf(stderr, "gemv all reg%d %db/SM: %zu B of shared memory per block does not fit\n", REG, BPS, smem);
                    exit(4);
                }
                const dim3 grid((R + RB - 1) / RB), block(256);
                if (add) {
                    set_smem(gemv_all<REG, BPS, true>, smem);
                    launch_smem(gemv_all<REG, BPS, true>, grid, block, smem, x, w, b, out, C, R, RB, NS);
                } else {
                    set_smem(gemv_all<REG, BPS, false>, smem);
                    launch_smem(gemv_all<REG, BPS, false>, grid, block, smem, x, w, b, out, C, R, RB, NS);
                }
            }};
}

template <int REG, int BPS, bool EARLY>
Moe moe_all_variant() {
    char n[96];
    snprintf(n, sizeof n, "all reg%d %db/SM%s", REG, BPS, EARLY ? " ids-early" : "");
    return {n, [](bool sw, const float* in, const uint32_t* ids, const uint8_t* base, size_t stride, size_t bo,
                  size_t so, size_t bio, float* out, uint32_t num_out) {
                const uint32_t rows = sw ? 2 * num_out : num_out;
                uint32_t RB = (K * rows + BPS * g_sms - 1) / (BPS * g_sms);
                RB += RB & 1u;
                const uint32_t bpp = (rows + RB - 1) / RB;
                const uint32_t n = RB * NB, nk = (n + 255) / 256;
                const size_t fixed = (size_t) n * 4 + NB * 36 * 4 + (n + 15) / 16 * 16;
                const size_t per_block = g_smem_max / BPS;
                uint32_t NS = nk > REG ? nk - REG : 0;
                if (fixed + (size_t) NS * 4096 > per_block) NS = per_block > fixed ? (uint32_t) ((per_block - fixed) / 4096) : 0;
                const size_t smem = fixed + (size_t) NS * 4096;
                if (smem > per_block) {
                    fprintf(stderr, "moe all: %zu B of shared memory per block does not fit\n", smem);
                    exit(4);
                }
                const dim3 grid(bpp * K), block(256);
                if (sw) {
                    auto k = moe_all<true, false, EARLY, REG, BPS>;
                    set_smem(k, smem);
                    launch_smem(k, grid, block, smem, in, ids, base, stride, bo, so, bio, out, rows, RB, bpp, NS, 7.0f);
                } else {
                    auto k = moe_all<false, EARLY, false, REG, BPS>;
                    set_smem(k, smem);
                    launch_smem(k, grid, block, smem, in, ids, base, stride, bo, so, bio, out, rows, RB, bpp, NS, 7.0f);
                }
            }};
}

template <int RP, int PRE, int POST, int BPS>
Gemv gemv_r2_variant() {
    char n[64];
    snprintf(n, sizeof n, "r2 rp%d pre%d post%d %db/SM", RP, PRE, POST, BPS);
    return {n, [](const float* x, const uint16_t* w, const uint16_t* b, float* out, uint32_t C, uint32_t R, bool add) {
                uint32_t RB = (R + BPS * g_sms - 1) / (BPS * g_sms);
                RB = (RB + RP - 1) / RP * RP;
                const size_t smem = (size_t) (C / 8) * 32 + (size_t) RB * (C / 8) * 4 + RB * 4;
                const dim3 grid((R + RB - 1) / RB), block(256);
                if (add) {
                    set_smem(gemv_r2<RP, PRE, POST, BPS, true>, smem);
                    launch_smem(gemv_r2<RP, PRE, POST, BPS, true>, grid, block, smem, x, w, b, out, C, R, RB);
                } else {
                    set_smem(gemv_r2<RP, PRE, POST, BPS, false>, smem);
                    launch_smem(gemv_r2<RP, PRE, POST, BPS, false>, grid, block, smem, x, w, b, out, C, R, RB);
                }
            }};
}

template <int PRE, int POST, int BPS, bool EARLY>
Moe moe_r2_variant() {
    char n[96];
    snprintf(n, sizeof n, "r2 pre%d post%d %db/SM%s", PRE, POST, BPS, EARLY ? " ids-early" : "");
    return {n, [](bool sw, const float* in, const uint32_t* ids, const uint8_t* base, size_t stride, size_t bo,
                  size_t so, size_t bio, float* out, uint32_t num_out) {
                const uint32_t rows = sw ? 2 * num_out : num_out;
                uint32_t RB = (K * rows + BPS * g_sms - 1) / (BPS * g_sms);
                RB += RB & 1u;
                const uint32_t bpp = (rows + RB - 1) / RB;
                const size_t smem = ((size_t) NB * 36 + (size_t) RB * NB + RB) * 4;
                const dim3 grid(bpp * K), block(256);
                if (sw) {
                    auto k = moe_r2<true, false, EARLY, PRE, POST, BPS>;
                    set_smem(k, smem);
                    launch_smem(k, grid, block, smem, in, ids, base, stride, bo, so, bio, out, rows, RB, bpp, 7.0f);
                } else {
                    auto k = moe_r2<false, EARLY, false, PRE, POST, BPS>;
                    set_smem(k, smem);
                    launch_smem(k, grid, block, smem, in, ids, base, stride, bo, so, bio, out, rows, RB, bpp, 7.0f);
                }
            }};
}

// ---- host reference (float64) helpers
float bf2f(uint16_t b) {
    uint32_t u = (uint32_t) b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
double fp4(uint32_t nib) {
    static const double v[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
    return (nib & 8) ? -v[nib & 7] : v[nib & 7];
}
template <typename T>
std::vector<T> fetch(const T* d, size_t n) {
    std::vector<T> h(n);
    CK(cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
}
// max over rows of |got - ref| / bound, bound = 2 C 2^-24 sum|x w| + 2^-24 |ref| (+ tiny)
double check_rows(const std::vector<float>& got, const std::vector<double>& ref, const std::vector<double>& mag,
                  uint32_t C) {
    double worst = 0;
    for (size_t i = 0; i < got.size(); i++) {
        if (!std::isfinite(got[i])) return INFINITY;
        const double bound = 2.0 * C * 0x1.0p-24 * mag[i] + 0x1.0p-24 * fabs(ref[i]) + 1e-30;
        worst = std::max(worst, fabs(got[i] - ref[i]) / bound);
    }
    return worst;
}

} // namespace

int main(int argc, char** argv) {
    uint32_t L = 24, iters = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--layers") && i + 1 < argc) L = (uint32_t) atoi(argv[++i]);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = (uint32_t) atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--layers L] [--iters N]\n", argv[0]);
            return 2;
        }
    }
    cudaDeviceProp pr;
    CK(cudaGetDeviceProperties(&pr, 0));
    CK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
    gptoss_backend_t be;
    GK(gptoss_backend_create_cuda(0, g_stream, &be));

    // ---- weights (model-file MoE layout: per expert mlp1 blocks, scales, bias, mlp2 ...)
    const size_t up_blocks = (size_t) 2 * I * NB * 16, up_scales = (size_t) 2 * I * NB, up_bias = (size_t) 2 * I * 2;
    const size_t dn_blocks = (size_t) H * NB * 16, dn_scales = (size_t) H * NB, dn_bias = (size_t) H * 2;
    auto al = [](size_t x) { return (x + 255) / 256 * 256; };
    const size_t o_ub = 0, o_us = al(o_ub + up_blocks), o_ubi = al(o_us + up_scales), o_db = al(o_ubi + up_bias),
                 o_ds = al(o_db + dn_blocks), o_dbi = al(o_ds + dn_scales), stride = al(o_dbi + dn_bias);
    struct Layer {
        uint16_t *wqkv, *bqkv, *wout, *bout, *norm, *router, *rbias, *norm2;
        uint8_t* moe;
    };
    std::vector<Layer> lw(L);
    uint64_t seed = 1;
    auto fill_bf16 = [&](uint16_t** p, size_t n, float a) {
        GK(gptoss_backend_alloc(be, n * 2, (void**) p));
        GK(gptoss_bf16_fill_random(be, (gptoss_bf16*) *p, n, seed++, 0, -a, a));
    };
    for (uint32_t l = 0; l < L; l++) {
        Layer& y = lw[l];
        fill_bf16(&y.wqkv, (size_t) QKV * H, 1.0f / sqrtf((float) H));
        fill_bf16(&y.bqkv, QKV, 0.05f);
        fill_bf16(&y.wout, (size_t) H * ATT, 1.0f / sqrtf((float) ATT));
        fill_bf16(&y.bout, H, 0.05f);
        fill_bf16(&y.norm, H, 1.0f);
        fill_bf16(&y.norm2, H, 1.0f);
        fill_bf16(&y.router, (size_t) E * H, 1.0f / sqrtf((float) H));
        fill_bf16(&y.rbias, E, 0.05f);
        GK(gptoss_backend_alloc(be, stride * E, (void**) &y.moe));
        GK(gptoss_u32_fill_random(be, (uint32_t*) y.moe, stride * E / 4, seed++, 0));
        for (uint32_t e = 0; e < E; e++) {
            fix_scales<<<264, 256, 0, g_stream>>>(y.moe + e * stride + o_us, up_scales);
            fix_scales<<<264, 256, 0, g_stream>>>(y.moe + e * stride + o_ds, dn_scales);
            GK(gptoss_bf16_fill_random(be, (gptoss_bf16*) (y.moe + e * stride + o_ubi), 2 * I, seed++, 0, -0.05f,
                                       0.05f));
            GK(gptoss_bf16_fill_random(be, (gptoss_bf16*) (y.moe + e * stride + o_dbi), H, seed++, 0, -0.05f,
                                       0.05f));
        }
        CK(cudaGetLastError());
    }
    // ---- activations
    float *residual, *residual0, *norm, *qkv, *gate, *scores, *hbuf, *ybuf;
    uint32_t* ids;
    GK(gptoss_backend_alloc(be, H * 4, (void**) &residual));
    GK(gptoss_backend_alloc(be, H * 4, (void**) &residual0));
    GK(gptoss_backend_alloc(be, H * 4, (void**) &norm));
    GK(gptoss_backend_alloc(be, QKV * 4, (void**) &qkv));
    GK(gptoss_backend_alloc(be, E * 4, (void**) &gate));
    GK(gptoss_backend_alloc(be, K * 4, (void**) &scores));
    GK(gptoss_backend_alloc(be, K * 4, (void**) &ids));
    GK(gptoss_backend_alloc(be, (size_t) K * I * 4, (void**) &hbuf));
    GK(gptoss_backend_alloc(be, (size_t) K * H * 4, (void**) &ybuf));
    GK(gptoss_f32_fill_random(be, residual0, H, seed++, 0, -1.0f, 1.0f));
    GK(gptoss_backend_synchronize(be));

    const double bytes_layer = 2.0 * ((double) QKV * H + QKV + (double) H * ATT + H + (double) E * H + E + 2 * H) +
                               K * (double) (up_blocks + up_scales + up_bias + dn_blocks + dn_scales + dn_bias);
    const double bytes_step = bytes_layer * L;

    // ---- copy bandwidth (read + write), best of 5
    double copy_gbs = 0;
    {
        const size_t cb = (size_t) 2 << 30;
        void *a, *b;
        CK(cudaMalloc(&a, cb));
        CK(cudaMalloc(&b, cb));
        CK(cudaMemsetAsync(a, 1, cb, g_stream));
        cudaEvent_t e0, e1;
        CK(cudaEventCreate(&e0));
        CK(cudaEventCreate(&e1));
        float best = 1e30f, t;
        for (int i = 0; i <= 5; i++) {
            CK(cudaEventRecord(e0, g_stream));
            CK(cudaMemcpyAsync(b, a, cb, cudaMemcpyDeviceToDevice, g_stream));
            CK(cudaEventRecord(e1, g_stream));
            CK(cudaEventSynchronize(e1));
            CK(cudaEventElapsedTime(&t, e0, e1));
            if (i) best = std::min(best, t);
        }
        copy_gbs = 2.0 * cb / (best * 1e-3) / 1e9;
        CK(cudaFree(a));
        CK(cudaFree(b));
    }
    printf("decode_lab: %s, %d SMs, %u layers, %.1f MB per layer, copy %.0f GB/s (rd+wr)\n", pr.name,
           pr.multiProcessorCount, L, bytes_layer / 1e6, copy_gbs);

    // ---- variants
    g_sms = pr.multiProcessorCount;
    g_smem_max = pr.sharedMemPerMultiprocessor - 1024 * 4; /* minus the per-block reservation */
    CK(cudaMalloc(&g_sink, 16 * g_sms * sizeof(float)));
    std::vector<Gemv> dense_v = {
        gemv_r2_variant<2, 4, 0, 4>(),          /* what src/cuda/matmul.cu runs (gemv_region_kernel) */
        gemv_r2_variant<1, 4, 0, 6>(),          gemv_variant<4, 2, 6>(), /* region v1: x via L1 */
        gemv_all_variant<8, 4>(),               /* every chunk requested before the wait (cp.async) */
        stream_variant<8>(),                    /* control: the loads alone */
        gemv_mode_variant<4, 2, 6, 1>("no-x"),  /* control: v1 without reading x */
    };    std::vector<Gemv>& qkv_v = dense_v;
    std::vector<Gemv>& out_v = dense_v;
    std::vector<Moe> moe_v = {
        moe_r2_variant<4, 0, 4, true>(), moe_r2_variant<4, 0, 4, false>(), moe_all_variant<4, 4, true>(),
        moe_variant<8, 2, 4, true>(), /* region v1: x read through L1 per block, 32 lines per warp load */
    };
    // ---- correctness on layer 0 against float64
    {
        const Layer& y = lw[0];
        std::vector<float> x = fetch(residual0, H);
        std::vector<uint16_t> wq = fetch(y.wqkv, (size_t) QKV * H), bq = fetch(y.bqkv, QKV);
        std::vector<double> ref(QKV), mag(QKV);
        for (uint32_t r = 0; r < QKV; r++) {
            double s = 0, m = 0;
            for (uint32_t c = 0; c < H; c++) {
                const double p = (double) x[c] * bf2f(wq[(size_t) r * H + c]);
                s += p, m += fabs(p);
            }
            ref[r] = s + bf2f(bq[r]);
            mag[r] = m + fabs(bf2f(bq[r]));
        }
        GK(gptoss_f32_bf16w_matmul(be, residual0, (const gptoss_bf16*) y.wqkv, (const gptoss_bf16*) y.bqkv, qkv, 1, H,
                                   QKV));
        GK(gptoss_backend_synchronize(be));
        printf("check qkv   %-28s worst err/bound %.3f\n", "library", check_rows(fetch(qkv, QKV), ref, mag, H));
        for (auto& v : qkv_v) {
            if (is_control(v)) continue;
            CK(cudaMemsetAsync(qkv, 0xFF, QKV * 4, g_stream));
            v.run(residual0, y.wqkv, y.bqkv, qkv, H, QKV, false);
            CK(cudaStreamSynchronize(g_stream));
            const double w = check_rows(fetch(qkv, QKV), ref, mag, H);
            printf("check qkv   %-28s worst err/bound %.3f%s\n", v.name.c_str(), w, w <= 1 ? "" : "  FAIL");
            if (!(w <= 1)) return 3;
        }
        // MoE: ids = 3, 17, 29, 8 of the static gate; up then down on layer 0
        const uint32_t hid[K] = {3, 17, 29, 8};
        CK(cudaMemcpy(ids, hid, sizeof hid, cudaMemcpyHostToDevice));
        std::vector<uint8_t> moe = fetch(y.moe, stride * E);
        auto dot_mf4 = [&](uint32_t e, size_t bo, size_t so, uint32_t r, const float* xv, double* mg) {
            const uint8_t* ex = moe.data() + (size_t) e * stride;
            double s = 0, m = 0;
            for (uint32_t b = 0; b < NB; b++) {
                const double mult = ldexp(1.0, (int) ex[so + (size_t) r * NB + b] - 141 + 14 - 14);
                for (uint32_t i = 0; i < 32; i++) {
                    const uint8_t byte = ex[bo + ((size_t) r * NB + b) * 16 + i / 2];
                    const double wv = fp4(i % 2 ? byte >> 4 : byte & 15) * mult;
                    const double p = (double) xv[b * 32 + i] * wv;
                    s += p, m += fabs(p);
                }
            }
            *mg = m;
            return s;
        };
        auto bias_of = [&](uint32_t e, size_t bio, uint32_t r) {
            const uint8_t* bb = moe.data() + (size_t) e * stride + bio;
            return (double) bf2f((uint16_t) (bb[2 * r] | (bb[2 * r + 1] << 8)));
        };
        // up reference: pre-SwiGLU rows, compared after SwiGLU on the host in double (bound: the
        // SwiGLU is Lipschitz <= ~8 near the limit: use bound x 8 on its inputs)
        std::vector<double> href((size_t) K * I), hmag((size_t) K * I);
        for (uint32_t j = 0; j < K; j++)
            for (uint32_t o = 0; o < I; o++) {
                double m0, m1;
                const double g0 = dot_mf4(hid[j], o_ub, o_us, 2 * o, x.data(), &m0) + bias_of(hid[j], o_ubi, 2 * o);
                const double l0 =
                    dot_mf4(hid[j], o_ub, o_us, 2 * o + 1, x.data(), &m1) + bias_of(hid[j], o_ubi, 2 * o + 1);
                const double g = std::min(g0, 7.0), l = std::max(std::min(l0, 7.0), -7.0);
                href[(size_t) j * I + o] = g / (1 + exp(-1.702 * g)) * (l + 1);
                hmag[(size_t) j * I + o] = 8 * (m0 + m1) + 1e-3;
            }
        std::vector<float> h_lib;
        GK(gptoss_f32_mf4w_moe_matmul_swiglu(be, residual0, ids, y.moe + o_ub, y.moe + o_us,
                                             (const gptoss_bf16*) (y.moe + o_ubi), stride, hbuf, 1, K, E, H, I, 7.0f));
        GK(gptoss_backend_synchronize(be));
        h_lib = fetch(hbuf, (size_t) K * I);
        printf("check up    %-28s worst err/bound %.3f\n", "library", check_rows(h_lib, href, hmag, H));
        // down reference on the library's h
        std::vector<double> yref((size_t) K * H), ymag((size_t) K * H);
        for (uint32_t j = 0; j < K; j++)
            for (uint32_t r = 0; r < H; r++) {
                double m;
                yref[(size_t) j * H + r] = dot_mf4(hid[j], o_db, o_ds, r, h_lib.data() + (size_t) j * I, &m) +
                                           bias_of(hid[j], o_dbi, r);
                ymag[(size_t) j * H + r] = m + 1e-3;
            }
        for (auto& v : moe_v) {
            CK(cudaMemsetAsync(ybuf, 0xFF, (size_t) K * H * 4, g_stream));
            CK(cudaMemsetAsync(hbuf, 0xFF, (size_t) K * I * 4, g_stream));
            v.run(true, residual0, ids, y.moe, stride, o_ub, o_us, o_ubi, hbuf, I);
            CK(cudaStreamSynchronize(g_stream));
            const double wu = check_rows(fetch(hbuf, (size_t) K * I), href, hmag, H);
            CK(cudaMemcpy(hbuf, h_lib.data(), h_lib.size() * 4, cudaMemcpyHostToDevice));
            v.run(false, hbuf, ids, y.moe, stride, o_db, o_ds, o_dbi, ybuf, H);
            CK(cudaStreamSynchronize(g_stream));
            const double wd = check_rows(fetch(ybuf, (size_t) K * H), yref, ymag, I);
            printf("check moe   %-40s up %.3f down %.3f%s\n", v.name.c_str(), wu, wd, wu <= 1 && wd <= 1 ? "" : "  FAIL");
            if (!(wu <= 1 && wd <= 1)) return 3;
        }
    }

    // ---- the chain, captured into a graph
    auto step = [&](const Gemv* q, const Gemv* o, const Moe* m) {
        CK(cudaMemcpyAsync(residual, residual0, H * 4, cudaMemcpyDeviceToDevice, g_stream));
        GK(gptoss_f32_bf16w_rmsnorm(be, residual, (const gptoss_bf16*) lw[0].norm, norm, 1, H, 1e-5f));
        for (uint32_t l = 0; l < L; l++) {
            const Layer& y = lw[l];
            if (q) q->run(norm, y.wqkv, y.bqkv, qkv, H, QKV, false);
            else GK(gptoss_f32_bf16w_matmul(be, norm, (const gptoss_bf16*) y.wqkv, (const gptoss_bf16*) y.bqkv, qkv, 1, H, QKV));
            if (o) o->run(qkv, y.wout, y.bout, residual, ATT, H, true);
            else GK(gptoss_f32_bf16w_matmul_add(be, qkv, (const gptoss_bf16*) y.wout, (const gptoss_bf16*) y.bout, residual, 1, ATT, H));
            GK(gptoss_f32_bf16w_rmsnorm_matmul_topk(be, residual, (const gptoss_bf16*) y.norm2, norm,
                                                    (const gptoss_bf16*) y.router, (const gptoss_bf16*) y.rbias, gate,
                                                    ids, scores, 1, H, E, K, 1e-5f));
            if (m) {
                m->run(true, norm, ids, y.moe, stride, o_ub, o_us, o_ubi, hbuf, I);
                m->run(false, hbuf, ids, y.moe, stride, o_db, o_ds, o_dbi, ybuf, H);
            } else {
                GK(gptoss_f32_mf4w_moe_matmul_swiglu(be, norm, ids, y.moe + o_ub, y.moe + o_us,
                                                     (const gptoss_bf16*) (y.moe + o_ubi), stride, hbuf, 1, K, E, H, I, 7.0f));
                GK(gptoss_f32_mf4w_moe_matmul(be, hbuf, ids, y.moe + o_db, y.moe + o_ds,
                                              (const gptoss_bf16*) (y.moe + o_dbi), stride, ybuf, 1, K, E, I, H));
            }
            const uint16_t* nxt = l + 1 < L ? lw[l + 1].norm : lw[0].norm;
            GK(gptoss_f32_accumulate_bf16w_rmsnorm(be, ybuf, scores, residual, (const gptoss_bf16*) nxt, norm, H, 1, K,
                                                   1e-5f));
        }
    };
    struct Result {
        std::string what;
        double us, us_min, bytes;
        float r0;
    };
    std::vector<Result> rows;
    auto measure = [&](const std::string& what, double bytes, const std::function<void()>& body) {
        cudaGraph_t gr;
        cudaGraphExec_t ge;
        CK(cudaStreamBeginCapture(g_stream, cudaStreamCaptureModeThreadLocal));
        body();
        CK(cudaStreamEndCapture(g_stream, &gr));
        CK(cudaGraphInstantiate(&ge, gr, 0));
        for (int i = 0; i < 3; i++) CK(cudaGraphLaunch(ge, g_stream));
        std::vector<cudaEvent_t> ev(iters + 1);
        for (auto& e : ev) CK(cudaEventCreate(&e));
        CK(cudaEventRecord(ev[0], g_stream));
        for (uint32_t i = 0; i < iters; i++) {
            CK(cudaGraphLaunch(ge, g_stream));
            CK(cudaEventRecord(ev[i + 1], g_stream));
        }
        CK(cudaEventSynchronize(ev[iters]));
        std::vector<float> t(iters);
        for (uint32_t i = 0; i < iters; i++) CK(cudaEventElapsedTime(&t[i], ev[i], ev[i + 1]));
        for (auto& e : ev) CK(cudaEventDestroy(e));
        GK(gptoss_backend_synchronize(be));
        float r0;
        CK(cudaMemcpy(&r0, residual, 4, cudaMemcpyDeviceToHost));
        std::sort(t.begin(), t.end());
        rows.push_back({what, 1e3 * t[iters / 2], 1e3 * t[0], bytes, r0});
        fprintf(stderr, "  %-60s %8.1f us\n", what.c_str(), 1e3 * t[iters / 2]);
        CK(cudaGraphExecDestroy(ge));
        CK(cudaGraphDestroy(gr));
    };
    step(nullptr, nullptr, nullptr); /* sizes the library's scratch outside a capture */
    GK(gptoss_backend_synchronize(be));
    // per-op chains: L dependent calls of one op (griddepcontrol.wait orders them as in a step)
    const double bq_op = 2.0 * ((double) QKV * H + QKV), bo_op = 2.0 * ((double) H * ATT + H);
    const double bm_op = 2.0 * ((double) E * H + E + H) +
                         K * (double) (up_blocks + up_scales + up_bias + dn_blocks + dn_scales + dn_bias);
    auto qkv_chain = [&](const Gemv* q) {
        return [&, q] {
            for (uint32_t l = 0; l < L; l++) {
                const Layer& y = lw[l];
                if (q) q->run(norm, y.wqkv, y.bqkv, qkv, H, QKV, false);
                else GK(gptoss_f32_bf16w_matmul(be, norm, (const gptoss_bf16*) y.wqkv, (const gptoss_bf16*) y.bqkv, qkv, 1, H, QKV));
            }
        };
    };
    auto out_chain = [&](const Gemv* o) {
        return [&, o] {
            for (uint32_t l = 0; l < L; l++) {
                const Layer& y = lw[l];
                if (o) o->run(qkv, y.wout, y.bout, residual, ATT, H, true);
                else GK(gptoss_f32_bf16w_matmul_add(be, qkv, (const gptoss_bf16*) y.wout, (const gptoss_bf16*) y.bout, residual, 1, ATT, H));
            }
        };
    };
    auto moe_chain = [&](const Moe* m) {
        return [&, m] {
            for (uint32_t l = 0; l < L; l++) {
                const Layer& y = lw[l];
                GK(gptoss_f32_bf16w_rmsnorm_matmul_topk(be, residual, (const gptoss_bf16*) y.norm2, norm,
                                                        (const gptoss_bf16*) y.router, (const gptoss_bf16*) y.rbias,
                                                        gate, ids, scores, 1, H, E, K, 1e-5f));
                if (m) {
                    m->run(true, norm, ids, y.moe, stride, o_ub, o_us, o_ubi, hbuf, I);
                    m->run(false, hbuf, ids, y.moe, stride, o_db, o_ds, o_dbi, ybuf, H);
                } else {
                    GK(gptoss_f32_mf4w_moe_matmul_swiglu(be, norm, ids, y.moe + o_ub, y.moe + o_us,
                                                         (const gptoss_bf16*) (y.moe + o_ubi), stride, hbuf, 1, K, E, H, I, 7.0f));
                    GK(gptoss_f32_mf4w_moe_matmul(be, hbuf, ids, y.moe + o_db, y.moe + o_ds,
                                                  (const gptoss_bf16*) (y.moe + o_dbi), stride, ybuf, 1, K, E, I, H));
                }
            }
        };
    };
    measure("qkv x L: library", bq_op * L, qkv_chain(nullptr));
    size_t bq = 0, bo = 0, bm = 0;
    double tq = 1e30, to = 1e30, tm = 1e30;
    for (size_t i = 0; i < qkv_v.size(); i++) {
        measure("qkv x L: " + qkv_v[i].name, bq_op * L, qkv_chain(&qkv_v[i]));
        if (rows.back().us < tq && !is_control(qkv_v[i])) tq = rows.back().us, bq = i;
    }
    measure("attn-out x L: library", bo_op * L, out_chain(nullptr));
    for (size_t i = 0; i < out_v.size(); i++) {
        measure("attn-out x L: " + out_v[i].name, bo_op * L, out_chain(&out_v[i]));
        if (rows.back().us < to && !is_control(out_v[i])) to = rows.back().us, bo = i;
    }
    measure("(gate, up, down) x L: library", bm_op * L, moe_chain(nullptr));
    for (size_t i = 0; i < moe_v.size(); i++) {
        measure("(gate, up, down) x L: " + moe_v[i].name, bm_op * L, moe_chain(&moe_v[i]));
        if (rows.back().us < tm) tm = rows.back().us, bm = i;
    }
    measure("step: library", bytes_step, [&] { step(nullptr, nullptr, nullptr); });
    measure("step: best of each (" + qkv_v[bq].name + " | " + out_v[bo].name + " | " + moe_v[bm].name + ")",
            bytes_step, [&] { step(&qkv_v[bq], &out_v[bo], &moe_v[bm]); });
    measure("step: library dense, best moe", bytes_step, [&] { step(nullptr, nullptr, &moe_v[bm]); });
    measure("step: best dense, library moe", bytes_step, [&] { step(&qkv_v[bq], &out_v[bo], nullptr); });

    printf("\n%-100s %9s %9s %8s %6s %10s\n", "chain (median of the graph launches)", "us", "min us", "GB/s", "%copy", "residual0");
    for (const Result& r : rows) {
        const double gbs = r.bytes / (r.us * 1e-6) / 1e9;
        printf("%-100s %9.1f %9.1f %8.0f %5.1f%% %10.6f\n", r.what.c_str(), r.us, r.us_min, gbs, 100 * gbs / copy_gbs,
               r.r0);
    }
    GK(gptoss_backend_release(be));
    return 0;
}
