/* bf16-weight matrix products: decode GEMV kernels (one token: the region kernel, each
 * block streaming a contiguous run of rows; a few tokens or other shapes: one warp per group
 * of rows, 16-byte weight loads, up to 8 tokens of activations per pass), a tensor-core
 * split-bf16 GEMM for prefill (>= 32 tokens; see the comment above gemm_bf16_tc_kernel) and
 * a tiled f32 SIMT GEMM as fallback. f32 activations and accumulation (explicit fmaf), exact bf16
 * widening, bias added to the full dot product, then the residual (add variant). */
#include "cuda/matmul.cuh"
#include "cuda/wgmma.cuh"
#include "cuda/rope.cuh"

namespace {

constexpr int kGemvWarps = 8; /* warps per block of the GEMV kernels */
constexpr uint32_t kGemvMaxTokens = 16;
constexpr uint32_t kGemvMaxRowsForPrefill = 128; /* prefill with R <= this uses the GEMV kernel */
constexpr uint32_t kSplitKMaxRows = 256;         /* one token, R <= this: split-K GEMV */
constexpr uint32_t kManyGemvRowTokens = 128;     /* row order many, R <= kGemvMaxRowsForPrefill: up to
                                                    this many tokens a warp a row and token */


/* Vector GEMV: C % 8 == 0, weight and input 16-byte aligned. Each warp handles RPW
 * consecutive rows for a tile of up to TT tokens (blockIdx.y). Lane l sums the row's 16-byte
 * chunks l, l + 32, l + 64, ... in order, whatever TT, RPW and U, then the warp butterfly:
 * a row's bits do not depend on the tokens sharing the call. REGION_ORDER: the sums of
 * gemv_region_kernel instead (row order one, see gptoss_backend_set_row_order). ROPE (TT = 1, RPW = 2): the
 * qkv projection of one token; the warp's two rows are one RoPE pair, rotated (Q and K
 * heads) and written to the KV cache (K and V heads) in the epilogue, exactly as
 * qkv_rope_cache_kernel does after the plain GEMV. */
template <int TT, int RPW, bool ROPE = false, bool REGION_ORDER = false, bool TILES_X = false>
__global__ void __launch_bounds__(kGemvWarps * 32) gemv_bf16_vec_kernel(const float* __restrict__ x,
                                                                        const uint16_t* __restrict__ w,
                                                                        const uint16_t* __restrict__ bias,
                                                                        float* __restrict__ out, uint32_t T,
                                                                        uint32_t C, uint32_t R, bool add,
                                                                        gptoss_qkv_rope rope) {
    constexpr int U = RPW >= 4 ? 1 : 8 / (RPW * (TT > 2 ? 2 : 1)); /* chunks per lane in flight per row */
    gptoss_d_pdl_trigger();
    const uint32_t lane = threadIdx.x & 31u;
    /* TILES_X: the token tiles along x (launched first), so that the tiles of a group of rows
     * run together and read its weights once from memory, then from L2 */
    const uint32_t row_block = TILES_X ? blockIdx.y : blockIdx.x, tile = TILES_X ? blockIdx.x : blockIdx.y;
    const uint32_t row0 = (row_block * kGemvWarps + (threadIdx.x >> 5)) * RPW;
    if (row0 >= R) {
        gptoss_d_pdl_wait();
        return;
    }
    const uint32_t t0 = tile * TT;
    const uint32_t nt = min((uint32_t) TT, T - t0);
    const uint32_t nchunks = C / 8;

    const uint4* wrow[RPW];
#pragma unroll
    for (int rr = 0; rr < RPW; rr++) {
        const uint32_t r = min(row0 + rr, R - 1);
        wrow[rr] = (const uint4*) (w + (size_t) r * C);
    }
    const float* xt = x + (size_t) t0 * C;

    float acc[RPW][TT];
#pragma unroll
    for (int rr = 0; rr < RPW; rr++)
#pragma unroll
        for (int t = 0; t < TT; t++) acc[rr][t] = 0.0f;

    uint4 wv[U][RPW];
    auto load_weights = [&](uint32_t c) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            const uint32_t cc = c + 32 * u;
#pragma unroll
            for (int rr = 0; rr < RPW; rr++) {
                wv[u][rr] = cc < nchunks ? gptoss_d_ld_stream(wrow[rr] + cc) : make_uint4(0, 0, 0, 0);
            }
        }
    };
    /* the weights are not written by earlier kernels: the first loads are issued before
     * waiting for the kernel that produces x (PDL), so their latency overlaps its tail */
    load_weights(lane);
    gptoss_d_pdl_wait();
    for (uint32_t c = lane; c < nchunks; c += 32 * U) {
        if (c != lane) load_weights(c);
#pragma unroll
        for (int u = 0; u < U; u++) {
            const uint32_t cc = c + 32 * u;
            if (cc < nchunks) {
#pragma unroll
                for (int t = 0; t < TT; t++) {
                    if (t < (int) nt) {
                        const float4* xp = (const float4*) (xt + (size_t) t * C) + 2 * cc;
                        const float4 a = __ldg(xp), b = __ldg(xp + 1);
#pragma unroll
                        for (int rr = 0; rr < RPW; rr++) {
                            /* REGION_ORDER: each chunk's dot product on its own, added to the
                             * lane's sum (gemv_region_kernel's order); else one fmaf chain */
                            acc[rr][t] = REGION_ORDER ? acc[rr][t] + gptoss_d_dot8(wv[u][rr], a, b, 0.0f)
                                                      : gptoss_d_dot8(wv[u][rr], a, b, acc[rr][t]);
                        }
                    }
                }
            }
        }
    }
    __syncwarp(); /* the warp is whole (a warp returns above as one): plain shuffles in the sums below */
    if constexpr (ROPE) {
        static_assert(TT == 1 && RPW == 2, "the RoPE epilogue works on one token and one row pair");
        const float v0 = gptoss_d_warp_sum(acc[0][0]), v1 = gptoss_d_warp_sum(acc[1][0]);
        if (lane == 0) {
            const float xv = bias != nullptr ? v0 + gptoss_bf16_to_f32(bias[row0]) : v0;
            const float yv = bias != nullptr ? v1 + gptoss_bf16_to_f32(bias[row0 + 1]) : v1;
            gptoss_d_qkv_rope_row(xv, yv, out + row0, row0 / 2, 0, rope.pos, rope.p, rope.kv, rope.num_q_heads,
                                  rope.num_kv_heads, rope.head_dim);
        }
    } else {
#pragma unroll
        for (int rr = 0; rr < RPW; rr++) {
#pragma unroll
            for (int t = 0; t < TT; t++) {
                const float v = gptoss_d_warp_sum(acc[rr][t]);
                const uint32_t r = row0 + rr;
                if (lane == (uint32_t) ((rr * TT + t) & 31) && t < (int) nt && r < R) {
                    gptoss_d_store_result(out + (size_t) (t0 + t) * R + r, bias, r, v, add);
                }
            }
        }
    }
}

/* Split-K GEMV for few rows (the MoE router, 2880 -> 32 / 128, one token): one 256-thread
 * block per row (and per token, blockIdx.y: several tokens in row order one), 16-byte chunks
 * strided over the threads, fixed-order block reduction.
 * The row-per-warp kernel would give R / 8 blocks (4 for 32 rows). vec conditions. */
__global__ void __launch_bounds__(256) gemv_bf16_splitk_kernel(const float* __restrict__ x,
                                                               const uint16_t* __restrict__ w,
                                                               const uint16_t* __restrict__ bias,
                                                               float* __restrict__ out, uint32_t C, uint32_t R,
                                                               bool add) {
    __shared__ float red[32];
    gptoss_d_pdl_trigger();
    const uint32_t r = blockIdx.x, t = blockIdx.y; /* row, token (one token but in row order one) */
    const uint4* wr = (const uint4*) (w + (size_t) r * C);
    uint4 w0, w1;
    gptoss_d_splitk_first(wr, C / 8, w0, w1); /* before the wait: see gemv_bf16_vec_kernel */
    gptoss_d_pdl_wait();
    const float acc = gptoss_d_splitk_dot<false>(wr, (const float4*) (x + (size_t) t * C), C / 8, w0, w1);
    const float v = gptoss_d_block_sum(acc, red);
    if (threadIdx.x == 0) gptoss_d_store_result(out + (size_t) t * R + r, bias, r, v, add);
}

/* Scalar GEMV for any C / alignment: one warp per row, one token per blockIdx.y. */
__global__ void __launch_bounds__(kGemvWarps * 32) gemv_bf16_scalar_kernel(const float* __restrict__ x,
                                                                           const uint16_t* __restrict__ w,
                                                                           const uint16_t* __restrict__ bias,
                                                                           float* __restrict__ out, uint32_t T,
                                                                           uint32_t C, uint32_t R, bool add) {
    const uint32_t lane = threadIdx.x & 31u;
    const uint32_t r = blockIdx.x * kGemvWarps + (threadIdx.x >> 5);
    if (r >= R) return;
    const uint32_t t = blockIdx.y;
    const float* xr = x + (size_t) t * C;
    const uint16_t* wr = w + (size_t) r * C;
    float acc = 0.0f;
    for (uint32_t c = lane; c < C; c += 32) acc = fmaf(xr[c], gptoss_bf16_to_f32(wr[c]), acc);
    acc = gptoss_d_warp_sum(acc);
    if (lane == 0) gptoss_d_store_result(out + (size_t) t * R + r, bias, r, acc, add);
}

/* Tiled f32 SIMT GEMM: out[M][N] (+)= A[M][K] * W[N][K]^T + b. 64x64 tiles, BK 32,
 * 256 threads, 4x4 outputs per thread. vec: K % 8 == 0 and A, W 16-byte aligned. */
constexpr int BM = 64, BN = 64, BK = 32;

__global__ void __launch_bounds__(256) gemm_bf16_kernel(const float* __restrict__ A, const uint16_t* __restrict__ W,
                                                        const uint16_t* __restrict__ bias, float* __restrict__ out,
                                                        uint32_t M, uint32_t K, uint32_t N, bool add, bool vec) {
    __shared__ __align__(16) float As[BK][BM + 4];
    __shared__ __align__(16) float Bs[BK][BN + 4];
    const uint32_t tid = threadIdx.x;
    const uint32_t tx = tid % 16, ty = tid / 16;
    const uint32_t lr = tid / 4, lc = (tid % 4) * 8; /* loader: row within tile, first column */
    const uint32_t n0 = blockIdx.x * BN;
    const uint32_t num_m_tiles = (M + BM - 1) / BM;

    for (uint32_t mt = blockIdx.y; mt < num_m_tiles; mt += gridDim.y) {
        const uint32_t m0 = mt * BM;
        float acc[4][4];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;

        for (uint32_t k0 = 0; k0 < K; k0 += BK) {
            float av[8], bv[8];
            const uint32_t am = m0 + lr, bn = n0 + lr, kk = k0 + lc;
            if (vec && kk + 8 <= K) {
                if (am < M) {
                    const float4* p = (const float4*) (A + (size_t) am * K + kk);
                    const float4 a0 = __ldg(p), a1 = __ldg(p + 1);
                    av[0] = a0.x; av[1] = a0.y; av[2] = a0.z; av[3] = a0.w;
                    av[4] = a1.x; av[5] = a1.y; av[6] = a1.z; av[7] = a1.w;
                } else {
#pragma unroll
                    for (int q = 0; q < 8; q++) av[q] = 0.0f;
                }
                if (bn < N) {
                    const uint4 wv = __ldg((const uint4*) (W + (size_t) bn * K + kk));
                    bv[0] = gptoss_d_bf16_lo(wv.x); bv[1] = gptoss_d_bf16_hi(wv.x); bv[2] = gptoss_d_bf16_lo(wv.y); bv[3] = gptoss_d_bf16_hi(wv.y);
                    bv[4] = gptoss_d_bf16_lo(wv.z); bv[5] = gptoss_d_bf16_hi(wv.z); bv[6] = gptoss_d_bf16_lo(wv.w); bv[7] = gptoss_d_bf16_hi(wv.w);
                } else {
#pragma unroll
                    for (int q = 0; q < 8; q++) bv[q] = 0.0f;
                }
            } else {
#pragma unroll
                for (int q = 0; q < 8; q++) {
                    const bool kin = kk + q < K;
                    av[q] = (kin && am < M) ? A[(size_t) am * K + kk + q] : 0.0f;
                    bv[q] = (kin && bn < N) ? gptoss_bf16_to_f32(W[(size_t) bn * K + kk + q]) : 0.0f;
                }
            }
#pragma unroll
            for (int q = 0; q < 8; q++) {
                As[lc + q][lr] = av[q];
                Bs[lc + q][lr] = bv[q];
            }
            __syncthreads();
#pragma unroll 8
            for (int k = 0; k < BK; k++) {
                const float4 a = *(const float4*) &As[k][ty * 4];
                const float4 b = *(const float4*) &Bs[k][tx * 4];
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
            const uint32_t m = m0 + ty * 4 + i;
            if (m >= M) continue;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const uint32_t n = n0 + tx * 4 + j;
                if (n < N) gptoss_d_store_result(out + (size_t) m * N + n, bias, n, acc[i][j], add);
            }
        }
    }
}

/* ---------------------------------------------------------------------------------
 * Tensor-core prefill GEMM with split-bf16 activations (a different numerics path, within
 * the harness tolerance; see docs/CUDA_NOTES.md).
 *
 * Every f32 activation x is split exactly into NP bf16 parts: x1 = bf16_rne(x),
 * x2 = bf16_rne(x - x1) (and x3 = bf16_rne(x - x1 - x2) for NP = 3); the differences are
 * exact in f32. The weights are already bf16, so each part times a weight is an exact
 * product, and mma.sync.m16n8k16 (bf16 x bf16 -> f32) accumulates them in f32. Dropped
 * remainder per term: |x - x1 - x2| <= 2^-16 |x| (NP = 2), <= 2^-24 |x| (NP = 3); the
 * harness allows 8 sqrt(K) 2^-23 sum|x w| per output, i.e. 2^-16 sum|x w| is inside the
 * tolerance even in the worst case once K >= 256, which is where NP = 2 is used; smaller or
 * unaligned K uses NP = 3. The tensor cores' internal f32 accumulation (products aligned
 * and summed per k16 step) adds an error of the order of the f32 accumulation itself.
 * Inf/NaN activations keep x1 = x (the other parts 0), so they propagate like f32.
 *
 * Tiles: 128 tokens x 128 weight rows x 32 columns, 256 threads (8 warps as 4 x 2, warp
 * tile 32 x 64), two shared-memory stages fed through registers, K tail padded with zeros
 * in shared memory. The activations are split once per call into NP bf16 planes
 * (split_planes_kernel, before the GEMM) rather than in each of the R / 128 weight tiles.
 * ------------------------------------------------------------------------------- */
constexpr int TC_BM = 128, TC_BN = 128, TC_BK = 32, TC_LD = TC_BK + 8; /* LD: padded row, bf16 */
constexpr uint32_t kTcMinTokens = 32;
/* Below this many tokens the 128 x 128 tiles must still give one block per SM, else the
 * SIMT GEMM (64 x 64 tiles) is used: a card with idle SMs is slower on the tensor cores than
 * full on the SIMT path (docs/CUDA_NOTES.md). */
constexpr uint32_t kTcFullTokens = 128;
constexpr uint32_t kTcTwoPartMinCols = 256;
/* 128 tokens and more through the ring GEMM (1) or gemm_bf16_tc_kernel (0): a build-time
 * switch for measuring the choice; both give the same sums */
#ifndef GPTOSS_CUDA_GEMM_RING_PREFILL
#define GPTOSS_CUDA_GEMM_RING_PREFILL 1
#endif

template <int NP>
constexpr size_t tc_smem_bytes() {
    return (size_t) 2 * (NP * TC_BM + TC_BN) * TC_LD * sizeof(uint16_t);
}

/* planes[p][i] = part p of the split of A[i] (gptoss_cuda_split_bf16_planes) */
template <int NP>
__global__ void __launch_bounds__(256) split_planes_kernel(const float* __restrict__ A, uint16_t* __restrict__ planes,
                                                           size_t n, bool vec) {
    const size_t n4 = n / 4, stride = (size_t) gridDim.x * blockDim.x, ps = gptoss_plane_stride(n);
    for (size_t i = (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += stride) {
        float a[4];
        if (vec) {
            const float4 v = __ldg((const float4*) A + i);
            a[0] = v.x; a[1] = v.y; a[2] = v.z; a[3] = v.w;
        } else {
#pragma unroll
            for (int q = 0; q < 4; q++) a[q] = A[4 * i + q];
        }
        uint32_t parts[4][NP];
#pragma unroll
        for (int q = 0; q < 4; q++) gptoss_d_split_bf16<NP>(a[q], parts[q]);
#pragma unroll
        for (int p = 0; p < NP; p++) {
            uint2 v;
            v.x = parts[0][p] | (parts[1][p] << 16);
            v.y = parts[2][p] | (parts[3][p] << 16);
            *(uint2*) (planes + (size_t) p * ps + 4 * i) = v;
        }
    }
    /* the n % 4 tail */
    for (size_t i = 4 * n4 + (size_t) blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        uint32_t parts[NP];
        gptoss_d_split_bf16<NP>(A[i], parts);
#pragma unroll
        for (int p = 0; p < NP; p++) planes[(size_t) p * ps + i] = (uint16_t) parts[p];
    }
}

template <bool VEC, int NP>
__global__ void __launch_bounds__(256, 2) gemm_bf16_tc_kernel(const uint16_t* __restrict__ planes,
                                                             const uint16_t* __restrict__ W,
                                                             const uint16_t* __restrict__ bias,
                                                             float* __restrict__ out, uint32_t M, uint32_t K,
                                                             uint32_t N, bool add) {
    extern __shared__ __align__(16) uint16_t tc_smem[];
    uint16_t* As = tc_smem;                           /* [2][NP][TC_BM][TC_LD] */
    uint16_t* Ws = tc_smem + 2 * NP * TC_BM * TC_LD;  /* [2][TC_BN][TC_LD] */
    const uint32_t tid = threadIdx.x, lane = tid & 31u, warp = tid >> 5;
    const uint32_t wm = warp & 3u, wn = warp >> 2;
    const uint32_t g = lane >> 2, tg = lane & 3u;
    const uint32_t m0 = blockIdx.x * TC_BM, n0 = blockIdx.y * TC_BN;

    float acc[2][8][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 8; j++)
#pragma unroll
            for (int q = 0; q < 4; q++) acc[i][j][q] = 0.0f;

    /* loader mapping: A 4 x (row, 4 columns) of each plane, W 2 x (row, 8 columns) */
    const size_t plane_size = gptoss_plane_stride((size_t) M * K);
    uint2 ap[4][NP];
    uint32_t wv[2][4];
    auto gload = [&](uint32_t k0) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const uint32_t idx = tid + 256u * i;
            const uint32_t row = idx >> 3, col = (idx & 7u) * 4;
            const uint32_t m = m0 + row, k = k0 + col;
#pragma unroll
            for (int p = 0; p < NP; p++) {
                const uint16_t* src = planes + (size_t) p * plane_size + (size_t) m * K + k;
                if (VEC) { /* K % 8 == 0: the 4 columns are in the row and 8-byte aligned */
                    ap[i][p] = (m < M && k < K) ? __ldg((const uint2*) src) : make_uint2(0, 0);
                } else {
                    uint32_t h[4];
#pragma unroll
                    for (int q = 0; q < 4; q++) h[q] = (m < M && k + q < K) ? src[q] : 0u;
                    ap[i][p] = make_uint2(h[0] | (h[1] << 16), h[2] | (h[3] << 16));
                }
            }
        }
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const uint32_t idx = tid + 256u * i;
            const uint32_t row = idx >> 2, col = (idx & 3u) * 8;
            const uint32_t n = n0 + row, k = k0 + col;
            if (VEC) {
                uint4 v = make_uint4(0, 0, 0, 0);
                if (n < N && k < K) v = __ldg((const uint4*) (W + (size_t) n * K + k));
                wv[i][0] = v.x; wv[i][1] = v.y; wv[i][2] = v.z; wv[i][3] = v.w;
            } else {
#pragma unroll
                for (int q = 0; q < 4; q++) {
                    const uint32_t lo = (n < N && k + 2 * q < K) ? W[(size_t) n * K + k + 2 * q] : 0u;
                    const uint32_t hi = (n < N && k + 2 * q + 1 < K) ? W[(size_t) n * K + k + 2 * q + 1] : 0u;
                    wv[i][q] = lo | (hi << 16);
                }
            }
        }
    };
    auto sstore = [&](int stage) {
        uint16_t* as = As + (size_t) stage * NP * TC_BM * TC_LD;
        uint16_t* ws = Ws + (size_t) stage * TC_BN * TC_LD;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const uint32_t idx = tid + 256u * i;
            const uint32_t row = idx >> 3, col = (idx & 7u) * 4;
#pragma unroll
            for (int p = 0; p < NP; p++) *(uint2*) (as + ((size_t) p * TC_BM + row) * TC_LD + col) = ap[i][p];
        }
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const uint32_t idx = tid + 256u * i;
            const uint32_t row = idx >> 2, col = (idx & 3u) * 8;
            *(uint4*) (ws + (size_t) row * TC_LD + col) = make_uint4(wv[i][0], wv[i][1], wv[i][2], wv[i][3]);
        }
    };

    const uint32_t ktiles = (K + TC_BK - 1) / TC_BK;
    gload(0);
    sstore(0);
    __syncthreads();
    for (uint32_t kt = 0; kt < ktiles; kt++) {
        const int st = (int) (kt & 1u);
        const bool more = kt + 1 < ktiles;
        if (more) gload((kt + 1) * TC_BK);
        const uint16_t* as = As + (size_t) st * NP * TC_BM * TC_LD;
        const uint16_t* ws = Ws + (size_t) st * TC_BN * TC_LD;
#pragma unroll
        for (int kk = 0; kk < TC_BK; kk += 16) {
            uint32_t af[NP][2][4];
#pragma unroll
            for (int p = 0; p < NP; p++)
#pragma unroll
                for (int mi = 0; mi < 2; mi++) {
                    const uint16_t* base = as + ((size_t) p * TC_BM + wm * 32 + mi * 16 + g) * TC_LD + kk + 2 * tg;
                    af[p][mi][0] = *(const uint32_t*) base;
                    af[p][mi][1] = *(const uint32_t*) (base + 8 * TC_LD);
                    af[p][mi][2] = *(const uint32_t*) (base + 8);
                    af[p][mi][3] = *(const uint32_t*) (base + 8 * TC_LD + 8);
                }
#pragma unroll
            for (int ni = 0; ni < 8; ni++) {
                const uint16_t* bb = ws + (size_t) (wn * 64 + ni * 8 + g) * TC_LD + kk + 2 * tg;
                const uint32_t b0 = *(const uint32_t*) bb, b1 = *(const uint32_t*) (bb + 8);
#pragma unroll
                for (int mi = 0; mi < 2; mi++)
#pragma unroll
                    for (int p = NP - 1; p >= 0; p--) gptoss_d_mma_bf16_16816(acc[mi][ni], af[p][mi], b0, b1);
            }
        }
        if (more) sstore(st ^ 1);
        __syncthreads();
    }

#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 8; ni++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const uint32_t m = m0 + wm * 32 + mi * 16 + g + 8 * h;
                const uint32_t n = n0 + wn * 64 + ni * 8 + 2 * tg;
                if (m < M) {
                    if (n < N) gptoss_d_store_result(out + (size_t) m * N + n, bias, n, acc[mi][ni][2 * h], add);
                    if (n + 1 < N) gptoss_d_store_result(out + (size_t) m * N + n + 1, bias, n + 1, acc[mi][ni][2 * h + 1], add);
                }
            }
}

template <bool VEC, int NP>
cudaError_t launch_gemm_tc(gptoss_backend_t backend, const uint16_t* planes, const uint16_t* w, const uint16_t* b,
                           float* out, uint32_t T, uint32_t C, uint32_t R, bool add) {
    constexpr size_t smem = tc_smem_bytes<NP>();
    const cudaError_t err =
        cudaFuncSetAttribute(gemm_bf16_tc_kernel<VEC, NP>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem);
    if (err != cudaSuccess) return err;
    const dim3 grid((T + TC_BM - 1) / TC_BM, (R + TC_BN - 1) / TC_BN);
    gemm_bf16_tc_kernel<VEC, NP><<<grid, 256, smem, gptoss_cuda_stream(backend)>>>(planes, w, b, out, T, C, R, add);
    return cudaGetLastError();
}

/* The same GEMM for 32 to 127 tokens (a decode step of many streams): gemm_bf16_tc_kernel's
 * 128-token tiles run half empty there, and with few weight tiles (qkv: 40, attention
 * output: 23) the SIMT GEMM that ran instead kept ~80 SMs busy on f32 FMAs. Here: tiles of
 * 64 tokens x BN (64, or 32 when 64 would not give every SM a block) weight rows, 8 warps as
 * 2 x 4 (warp tile 32 x BN/4), and a cp.async ring of ST stages of 64 columns (the bf16
 * weight rows and the activation planes, zero-filled past K, T and R), ST - 1 of them in
 * flight. From 128 tokens on (prefill) the same kernel with BN = 128 replaces
 * gemm_bf16_tc_kernel's two register-fed stages of 32 columns. Per output the same MMAs in the same order as gemm_bf16_tc_kernel
 * (every k-step of 16 up to K rounded up to 32, the planes from the last to the first, one
 * accumulator): the same bits. Needs K % 8 == 0 and 16-byte aligned weights (cp.async);
 * NP = 2 (K >= 256). */
constexpr int kRingBM = 64, kRingSK = 64, kRingLd = kRingSK + 8; /* LD: padded row, bf16 */

/* ST stages: 4 for BN <= 64; 3 for BN = 128 (prefill, 128 tokens and more), so that two
 * blocks (2 x 110.6 KB) share an SM */
template <int BN, int ST>
constexpr size_t ring_smem_bytes() {
    return (size_t) ST * (2 * kRingBM + BN) * kRingLd * sizeof(uint16_t);
}

template <int BN, int ST>
__global__ void __launch_bounds__(256, 2) gemm_bf16_tc_ring_kernel(const uint16_t* __restrict__ planes,
                                                                  const uint16_t* __restrict__ W,
                                                                  const uint16_t* __restrict__ bias,
                                                                  float* __restrict__ out, uint32_t M, uint32_t K,
                                                                  uint32_t N, bool add) {
    constexpr int NP = 2, NI = BN / 32; /* n8 tiles per warp */
    extern __shared__ __align__(16) uint16_t ring_smem[];
    uint16_t* As = ring_smem;                                         /* [stages][NP][64][Ld] */
    uint16_t* Ws = ring_smem + (size_t) ST * NP * kRingBM * kRingLd; /* [stages][BN][Ld] */
    const uint32_t tid = threadIdx.x, lane = tid & 31u, warp = tid >> 5;
    const uint32_t wm = warp & 1u, wn = warp >> 1;
    const uint32_t g = lane >> 2, tg = lane & 3u;
    const uint32_t m0 = blockIdx.x * kRingBM, n0 = blockIdx.y * BN;
    const size_t plane_size = gptoss_plane_stride((size_t) M * K);
    const uint32_t ksteps = (K + 31) / 32 * 2; /* k-steps of 16, as the 32-column tiles of gemm_bf16_tc_kernel */
    const uint32_t ns = (ksteps * 16 + kRingSK - 1) / kRingSK;

    /* stage s: columns s*64 .. s*64+63; 16-byte chunks (8 columns), zero past K / M / N */
    auto issue = [&](uint32_t s) {
        if (s < ns) {
            uint16_t* as = As + (size_t) (s % ST) * NP * kRingBM * kRingLd;
            uint16_t* ws = Ws + (size_t) (s % ST) * BN * kRingLd;
            constexpr uint32_t kChunks = kRingSK / 8;
            for (uint32_t c = tid; c < NP * kRingBM * kChunks; c += 256) {
                const uint32_t p = c / (kRingBM * kChunks), r = c / kChunks % kRingBM, ch = c % kChunks;
                const uint32_t m = m0 + r, k = s * kRingSK + ch * 8;
                const bool in = m < M && k < K;
                gptoss_d_cp_async16_zfill(as + ((size_t) p * kRingBM + r) * kRingLd + ch * 8,
                                          in ? planes + (size_t) p * plane_size + (size_t) m * K + k : planes,
                                          in ? 16u : 0u);
            }
            for (uint32_t c = tid; c < BN * kChunks; c += 256) {
                const uint32_t r = c / kChunks, ch = c % kChunks;
                const uint32_t n = n0 + r, k = s * kRingSK + ch * 8;
                const bool in = n < N && k < K;
                gptoss_d_cp_async16_zfill(ws + (size_t) r * kRingLd + ch * 8, in ? W + (size_t) n * K + k : W,
                                          in ? 16u : 0u);
            }
        }
        gptoss_d_cp_async_commit();
    };

    float acc[2][NI][4];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < NI; j++)
#pragma unroll
            for (int q = 0; q < 4; q++) acc[i][j][q] = 0.0f;

#pragma unroll
    for (int st = 0; st < ST - 1; st++) issue((uint32_t) st);
    for (uint32_t s = 0; s < ns; s++) {
        gptoss_d_cp_async_wait<ST - 2>(); /* this thread's copies of stage s landed */
        __syncthreads();                           /* everyone's; stage s - 1 consumed */
        issue(s + ST - 1);                /* into stage s - 1's buffer */
        const uint16_t* as = As + (size_t) (s % ST) * NP * kRingBM * kRingLd;
        const uint16_t* ws = Ws + (size_t) (s % ST) * BN * kRingLd;
#pragma unroll
        for (int kk = 0; kk < kRingSK; kk += 16) {
            if (s * kRingSK + kk >= ksteps * 16) break; /* block-uniform */
            uint32_t af[NP][2][4];
#pragma unroll
            for (int p = 0; p < NP; p++)
#pragma unroll
                for (int mi = 0; mi < 2; mi++) {
                    gptoss_d_ldmatrix_x4(af[p][mi], as + ((size_t) p * kRingBM + wm * 32 + mi * 16 + (lane & 15u)) * kRingLd +
                                                        kk + (lane >> 4) * 8);
                }
            uint32_t bf[NI][2];
            if constexpr (NI % 2 == 0) {
#pragma unroll
                for (int q = 0; q < NI / 2; q++) {
                    uint32_t b4[4];
                    gptoss_d_ldmatrix_x4(b4, ws + (size_t) (wn * (BN / 4) + q * 16 + (lane & 7u) + ((lane >> 4) << 3)) *
                                                     kRingLd + kk + ((lane >> 3) & 1u) * 8);
                    bf[2 * q][0] = b4[0];
                    bf[2 * q][1] = b4[1];
                    bf[2 * q + 1][0] = b4[2];
                    bf[2 * q + 1][1] = b4[3];
                }
            } else {
                gptoss_d_ldmatrix_x2(bf[0], ws + (size_t) (wn * 8 + (lane & 7u)) * kRingLd + kk + ((lane >> 3) & 1u) * 8);
            }
#pragma unroll
            for (int ni = 0; ni < NI; ni++)
#pragma unroll
                for (int mi = 0; mi < 2; mi++)
#pragma unroll
                    for (int p = NP - 1; p >= 0; p--) gptoss_d_mma_bf16_16816(acc[mi][ni], af[p][mi], bf[ni][0], bf[ni][1]);
        }
    }
    gptoss_d_cp_async_wait<0>(); /* no copy outlives the block (the groups past ns are empty) */

#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < NI; ni++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const uint32_t m = m0 + wm * 32 + mi * 16 + g + 8 * h;
                const uint32_t n = n0 + wn * (BN / 4) + ni * 8 + 2 * tg;
                if (m < M) {
                    if (n < N) gptoss_d_store_result(out + (size_t) m * N + n, bias, n, acc[mi][ni][2 * h], add);
                    if (n + 1 < N) gptoss_d_store_result(out + (size_t) m * N + n + 1, bias, n + 1, acc[mi][ni][2 * h + 1], add);
                }
            }
}

template <int BN, int ST>
cudaError_t launch_gemm_tc_ring(gptoss_backend_t backend, const uint16_t* planes, const uint16_t* w, const uint16_t* b,
                                float* out, uint32_t T, uint32_t C, uint32_t R, bool add) {
    constexpr size_t smem = ring_smem_bytes<BN, ST>();
    const cudaError_t err = cudaFuncSetAttribute(gemm_bf16_tc_ring_kernel<BN, ST>,
                                                 cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem);
    if (err != cudaSuccess) return err;
    const dim3 grid((T + kRingBM - 1) / kRingBM, (R + BN - 1) / BN);
    gemm_bf16_tc_ring_kernel<BN, ST><<<grid, 256, smem, gptoss_cuda_stream(backend)>>>(planes, w, b, out, T, C, R, add);
    return cudaGetLastError();
}

/* 128 tokens and more on Hopper's warpgroup MMA (gptoss_wg::gemm_kernel, src/cuda/wgmma.cuh:
 * 128-token x BN-row tiles, two warpgroups, cp.async stages in the 128-byte swizzle) where
 * the device runs sm_90a code; the same sums as the ring kernel (measured bit-equal at the
 * 20b shapes, docs/CUDA_NOTES.md). The tile width fills the card: of 96..256 rows, the one
 * with the fewest waves of one block an SM times its width (the 20b pp512 qkv: 160, the
 * attention output: 96, the widths the lab measured fastest). A build-time switch for
 * measuring the choice (0: never). */
#ifndef GPTOSS_CUDA_GEMM_WGMMA
#define GPTOSS_CUDA_GEMM_WGMMA 1
#endif

/* Fewer than 128 tokens (a decode step of many streams, a prompt's short last chunk): the same
 * kernel with one warpgroup, 64-token tiles (WG = 1, two blocks an SM), so that a 64-stream
 * step's 64 tokens fill a tile; the ring kernel it replaces there read the 20b qkv weights at
 * 17 % of copy (63.3 us on an H100; 27.6 us with this). A build-time switch for measuring the
 * choice (0: never). */
#ifndef GPTOSS_CUDA_GEMM_WGMMA_FEW
#define GPTOSS_CUDA_GEMM_WGMMA_FEW 1
#endif

template <int BN, int ST, int WG = 2>
cudaError_t launch_gemm_wgmma(gptoss_backend_t backend, const uint16_t* planes, const uint16_t* w, const uint16_t* b,
                              float* out, uint32_t T, uint32_t C, uint32_t R, bool add) {
    constexpr size_t smem = gptoss_wg::smem_bytes<BN, ST, WG>();
    const cudaError_t err = cudaFuncSetAttribute(gptoss_wg::gemm_kernel<BN, ST, WG>,
                                                 cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem);
    if (err != cudaSuccess) return err;
    constexpr uint32_t kRows = 64u * WG;
    const dim3 grid((T + kRows - 1) / kRows, (R + BN - 1) / BN);
    gptoss_wg::gemm_kernel<BN, ST, WG><<<grid, 128 * WG, smem, gptoss_cuda_stream(backend)>>>(
        planes, gptoss_plane_stride((size_t) T * C), w, b, out, T, C, R, add);
    return cudaGetLastError();
}

/* The tile width of the one-warpgroup form for T < 128 tokens: the widest of 128, 64, 32 rows
 * whose blocks reach two thirds of the SMs (each block re-reads the tokens' planes from L2, so
 * wider is better once the card is covered: the 20b qkv and attention output at 64 tokens
 * take 32, the unembedding 128), else 16; 0 when the grid or shared memory does not fit.
 * Stages: as many as keep two blocks an SM (~100 KB each). */
static uint32_t gemm_wgmma_few_bn(gptoss_backend_t backend, uint32_t T, uint32_t R) {
    if (gptoss_cuda(backend)->max_shared_per_block < gptoss_wg::smem_bytes<32, 5, 1>()) return 0;
    const uint64_t sms = (uint64_t) gptoss_cuda_num_sms(backend), mt = (T + 63) / 64;
    static const uint32_t widths[] = {128, 64, 32, 16};
    for (uint32_t bn : widths) {
        const uint64_t nt = (R + bn - 1) / bn;
        if (nt > GPTOSS_CUDA_MAX_GRID_YZ) return 0;
        if (3 * mt * nt >= 2 * sms || bn == 16) return bn;
    }
    return 0;
}

static cudaError_t launch_gemm_wgmma_few(gptoss_backend_t backend, uint32_t bn, const uint16_t* planes,
                                         const uint16_t* w, const uint16_t* b, float* out, uint32_t T, uint32_t C,
                                         uint32_t R, bool add) {
    switch (bn) {
        case 128: return launch_gemm_wgmma<128, 3, 1>(backend, planes, w, b, out, T, C, R, add);
        case 64: return launch_gemm_wgmma<64, 4, 1>(backend, planes, w, b, out, T, C, R, add);
        case 32: return launch_gemm_wgmma<32, 5, 1>(backend, planes, w, b, out, T, C, R, add);
        default: return launch_gemm_wgmma<16, 5, 1>(backend, planes, w, b, out, T, C, R, add);
    }
}

/* The wgmma tile width for T tokens x R rows (above), 0 when the largest smem variant does
 * not fit the device */
static uint32_t gemm_wgmma_bn(gptoss_backend_t backend, uint32_t T, uint32_t R) {
    if (gptoss_cuda(backend)->max_shared_per_block < gptoss_wg::smem_bytes<192, 4>()) return 0;
    const uint64_t sms = (uint64_t) gptoss_cuda_num_sms(backend), mt = (T + gptoss_wg::BM - 1) / gptoss_wg::BM;
    static const uint32_t widths[] = {96, 128, 160, 192, 256};
    uint32_t best = 0;
    uint64_t best_cost = UINT64_MAX;
    for (uint32_t bn : widths) {
        const uint64_t blocks = mt * ((R + bn - 1) / bn), cost = (blocks + sms - 1) / sms * bn;
        if (cost < best_cost) best = bn, best_cost = cost;
    }
    return best;
}

static cudaError_t launch_gemm_wgmma_bn(gptoss_backend_t backend, uint32_t bn, const uint16_t* planes,
                                        const uint16_t* w, const uint16_t* b, float* out, uint32_t T, uint32_t C,
                                        uint32_t R, bool add) {
    switch (bn) {
        case 96: return launch_gemm_wgmma<96, 5>(backend, planes, w, b, out, T, C, R, add);
        case 128: return launch_gemm_wgmma<128, 4>(backend, planes, w, b, out, T, C, R, add);
        case 160: return launch_gemm_wgmma<160, 4>(backend, planes, w, b, out, T, C, R, add);
        case 192: return launch_gemm_wgmma<192, 4>(backend, planes, w, b, out, T, C, R, add);
        default: return launch_gemm_wgmma<256, 3>(backend, planes, w, b, out, T, C, R, add);
    }
}

/* Decode GEMV for one token ("region" kernel): block b owns the weight rows [b*RB, b*RB+RB),
 * a contiguous run of the matrix; its 256 threads stream it in slots of (row pair, 16-byte
 * column chunk), slot s at thread s % 256, so that a thread's loads are independent and
 * coalesced across the block. kRegionBatch slots per thread are requested before
 * griddepcontrol.wait (weights and biases are never written by a kernel), the rest in
 * batches of the same size after it; x is read once per slot for both rows, from shared
 * memory (two planes x[8c..8c+3], x[8c+4..8c+7] of 16 bytes each: consecutive lanes read
 * consecutive 16 bytes). Each slot's two dot products go to shared memory; a warp then sums
 * each row's partials in column order (lane-strided fmaf-free adds, the warp butterfly),
 * adds the bias and stores (or rotates the row pair and writes the KV cache: ROPE).
 * Grid: at most kRegionBlocksPerSM blocks per SM, one wave. Why this shape: docs/CUDA_NOTES.md (the decode lab).
 * Requires C % 8 == 0, R % 2 == 0, 16-byte aligned x and w, and the shared memory below. */
constexpr int kRegionBlocksPerSM = 4;
constexpr int kRegionBatch = 4;
constexpr size_t kRegionMaxSmem = 48 * 1024;

__host__ __device__ inline size_t region_smem_bytes(uint32_t C, uint32_t RB) {
    return (size_t) (C / 8) * 32 + (size_t) RB * (C / 8) * sizeof(float) + (size_t) RB * sizeof(float);
}

template <bool ADD, bool ROPE>
__global__ void __launch_bounds__(256, kRegionBlocksPerSM) gemv_region_kernel(
    const float* __restrict__ x, const uint16_t* __restrict__ w, const uint16_t* __restrict__ bias,
    float* __restrict__ out, uint32_t C, uint32_t R, uint32_t RB, gptoss_qkv_rope rope) {
    extern __shared__ float4 region_smem[];
    const uint32_t tid = threadIdx.x, nchunks = C / 8;
    float4* xlo = region_smem;
    float4* xhi = region_smem + nchunks;
    float* part = (float*) (region_smem + 2 * nchunks);
    float* sbias = part + (size_t) RB * nchunks;
    gptoss_d_pdl_trigger();
    const uint32_t r0 = blockIdx.x * RB, rows = min(RB, R - r0), nslots = rows / 2 * nchunks;
    if (bias != nullptr && tid < rows) sbias[tid] = gptoss_bf16_to_f32(bias[r0 + tid]);
    const uint4* base = (const uint4*) (w + (size_t) r0 * C);
    /* slot sl is row pair g = sl / nchunks, chunk c = sl % nchunks; a thread's slots advance
     * by 256 (and a batch's first by 256 kRegionBatch), so (g, c) is carried and stepped
     * (one compare: the step's remainder and c are both below nchunks) instead of divided
     * for each slot (a runtime division is ~15 instructions) */
    const uint32_t q1 = 256u / nchunks, r1 = 256u % nchunks;
    const uint32_t qb = 256u * kRegionBatch / nchunks, rb = 256u * kRegionBatch % nchunks;
    auto step = [&](uint32_t& g, uint32_t& c, uint32_t q, uint32_t r) {
        c += r;
        g += q;
        if (c >= nchunks) {
            c -= nchunks;
            g++;
        }
    };
    uint32_t gb = tid / nchunks, cb = tid % nchunks; /* the current batch's first slot */
    uint4 q[kRegionBatch][2];
    auto load = [&](uint32_t k0) {
        uint32_t g = gb, c = cb;
#pragma unroll
        for (int k = 0; k < kRegionBatch; k++) {
            const uint32_t sl = tid + 256u * (k0 + k);
#pragma unroll
            for (int r = 0; r < 2; r++)
                q[k][r] = sl < nslots ? gptoss_d_ld_stream(base + (size_t) (2 * g + r) * nchunks + c)
                                      : make_uint4(0, 0, 0, 0);
            step(g, c, q1, r1);
        }
    };
    load(0);
    gptoss_d_pdl_wait();
    const float4* x4 = (const float4*) x;
    for (uint32_t c = tid; c < nchunks; c += 256) {
        xlo[c] = __ldg(x4 + 2 * c);
        xhi[c] = __ldg(x4 + 2 * c + 1);
    }
    __syncthreads();
    for (uint32_t k0 = 0;; k0 += kRegionBatch) {
        if (k0 > 0) load(k0);
        uint32_t g = gb, c = cb;
#pragma unroll
        for (int k = 0; k < kRegionBatch; k++) {
            const uint32_t sl = tid + 256u * (k0 + k);
            if (sl < nslots) {
                const float4 lo = xlo[c], hi = xhi[c];
#pragma unroll
                for (int r = 0; r < 2; r++) part[(2 * g + r) * nchunks + c] = gptoss_d_dot8(q[k][r], lo, hi, 0.0f);
            }
            step(g, c, q1, r1);
        }
        step(gb, cb, qb, rb);
        if (tid + 256u * (k0 + kRegionBatch) >= nslots) break;
    }
    __syncthreads();
    const uint32_t warp = tid >> 5, lane = tid & 31u;
    for (uint32_t u = warp; 2 * u < rows; u += 8) {
        float s[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float a = 0.0f;
            for (uint32_t c = lane; c < nchunks; c += 32) a += part[(2 * u + r) * nchunks + c];
            __syncwarp(); /* the warp is whole here (u is the warp's); the sum's shuffles need no collective fallback */
            s[r] = gptoss_d_warp_sum(a);
        }
        if (lane == 0) {
            const uint32_t row = r0 + 2 * u;
            if constexpr (ROPE) {
                const float xv = bias != nullptr ? s[0] + sbias[2 * u] : s[0];
                const float yv = bias != nullptr ? s[1] + sbias[2 * u + 1] : s[1];
                gptoss_d_qkv_rope_row(xv, yv, out + row, row / 2, 0, rope.pos, rope.p, rope.kv, rope.num_q_heads,
                                      rope.num_kv_heads, rope.head_dim);
            } else {
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    const float v = bias != nullptr ? s[r] + sbias[2 * u + r] : s[r];
                    out[row + r] = ADD ? out[row + r] + v : v;
                }
            }
        }
    }
}

/* The region kernel's weight rows a block (even) for this shape, 0 where it does not apply
 * (see gemv_region_kernel). */
static uint32_t region_rows_per_block(gptoss_backend_t backend, const float* x, const uint16_t* w, uint32_t C,
                                      uint32_t R) {
    if (C % 8 != 0 || R % 2 != 0 || !gptoss_aligned(w, 16) || !gptoss_aligned(x, 16)) return 0;
    const uint64_t slots = (uint64_t) kRegionBlocksPerSM * gptoss_cuda_num_sms(backend);
    uint64_t RB = (R + slots - 1) / slots;
    RB += RB & 1u;
    return region_smem_bytes(C, (uint32_t) RB) <= kRegionMaxSmem ? (uint32_t) RB : 0;
}

/* The region kernel for one token where it applies; false: not launched (the caller picks
 * another kernel). */
template <bool ADD, bool ROPE>
bool launch_gemv_region(gptoss_backend_t backend, const float* x, const uint16_t* w, const uint16_t* b, float* out,
                        uint32_t C, uint32_t R, const gptoss_qkv_rope& rope, cudaError_t* err) {
    const uint32_t RB = region_rows_per_block(backend, x, w, C, R);
    if (RB == 0) return false;
    const dim3 grid((R + RB - 1) / RB);
    *err = gptoss_cuda_launch_pdl(backend, gemv_region_kernel<ADD, ROPE>, grid, dim3(256), region_smem_bytes(C, RB), x,
                                  w, b, out, C, R, RB, rope);
    return true;
}

template <int TT, int RPW, bool REGION_ORDER = false>
cudaError_t launch_gemv_vec(gptoss_backend_t backend, const float* x, const uint16_t* w, const uint16_t* b,
                            float* out, uint32_t T, uint32_t C, uint32_t R, bool add) {
    const uint32_t row_groups = (R + RPW - 1) / RPW;
    const dim3 grid((row_groups + kGemvWarps - 1) / kGemvWarps, (T + TT - 1) / TT);
    return gptoss_cuda_launch_pdl(backend, gemv_bf16_vec_kernel<TT, RPW, false, REGION_ORDER>, grid,
                                  dim3(kGemvWarps * 32), 0, x, w, b, out, T, C, R, add, gptoss_qkv_rope{});
}

/* Whether launch_gemv_region launches for this shape. */
bool region_applies(gptoss_backend_t backend, const float* x, const uint16_t* w, uint32_t C, uint32_t R) {
    return region_rows_per_block(backend, x, w, C, R) != 0;
}

/* Row order one over tiles of 8 tokens with the tile's activations in shared memory: the
 * order-one GEMVs of a many-stream decode step (the qkv and unembedding of 64 drawn rows in
 * `on`). A block is one token tile (blockIdx.x) and kGemvWarps warps of kOneRows consecutive
 * rows each (blockIdx.y). The tile's x is staged once as two planes of 16 bytes a chunk
 * (conflict-free reads); each x chunk read from shared memory serves 4 rows, each weight chunk
 * 8 tokens. gemv_bf16_vec_kernel<8, 2, ...> reads x through L1 for every row pair instead,
 * and Nsight Compute found it L1-bound (L1 throughput 91 %, twenty-third sitting). Lane l's
 * sums are gemv_bf16_vec_kernel's (chunks l, l + 32, ... in order; REGION_ORDER: each chunk's
 * dot product from zero, added to the lane's sum), then the warp butterfly: the same bits. */
constexpr uint32_t kOneTokens = 8, kOneRows = 4;
/* The tile's x is staged in pieces of at most kOnePieceChunks 16-byte chunks a token (a
 * multiple of 32: each lane's chunks l, l + 32, ... fall into the pieces in order), 96 KB:
 * two blocks an SM. The 20b's 2,880 columns (360 chunks) are one piece, the attention
 * output's 4,096 two pieces of 256 chunks (one piece of 128 KB gave one block an SM and was
 * no faster than the vector kernel, twenty-third sitting). */
constexpr uint32_t kOnePieceChunks = 384;

/* chunks a piece: the pieces of equal size, a multiple of 32 */
__host__ __device__ inline uint32_t one_piece_chunks(uint32_t nchunks) {
    const uint32_t pieces = (nchunks + kOnePieceChunks - 1) / kOnePieceChunks;
    return ((nchunks + pieces - 1) / pieces + 31) / 32 * 32;
}

inline size_t one_staged_smem_bytes(uint32_t C) {
    return (size_t) kOneTokens * 2 * one_piece_chunks(C / 8) * sizeof(float4);
}
constexpr size_t kOneMaxSmem = (size_t) kOneTokens * 2 * kOnePieceChunks * 16;

/* bf16 pairs widened once: the opaque move keeps the compiler from repeating the shift / mask
 * at every use (each weight is used by 8 tokens) */
__device__ __forceinline__ float one_opaque_f32(uint32_t bits) {
    float f;
    asm volatile("mov.b32 %0, %1;" : "=f"(f) : "r"(bits));
    return f;
}

/* gptoss_d_dot8 on widened weights */
__device__ __forceinline__ float one_dot8(const float (&w)[8], float4 a, float4 b, float acc) {
    acc = fmaf(a.x, w[0], acc);
    acc = fmaf(a.y, w[1], acc);
    acc = fmaf(a.z, w[2], acc);
    acc = fmaf(a.w, w[3], acc);
    acc = fmaf(b.x, w[4], acc);
    acc = fmaf(b.y, w[5], acc);
    acc = fmaf(b.z, w[6], acc);
    acc = fmaf(b.w, w[7], acc);
    return acc;
}

template <bool REGION_ORDER>
__global__ void __launch_bounds__(kGemvWarps * 32) gemv_one_staged_kernel(const float* __restrict__ x,
                                                                          const uint16_t* __restrict__ w,
                                                                          const uint16_t* __restrict__ bias,
                                                                          float* __restrict__ out, uint32_t T,
                                                                          uint32_t C, uint32_t R, bool add) {
    extern __shared__ float4 one_xs[]; /* [token][plane][chunk of the piece] */
    gptoss_d_pdl_trigger();
    const uint32_t lane = threadIdx.x & 31u, nchunks = C / 8;
    const uint32_t t0 = blockIdx.x * kOneTokens, nt = min(kOneTokens, T - t0);
    const uint32_t row0 = (blockIdx.y * kGemvWarps + (threadIdx.x >> 5)) * kOneRows;
    const bool rows = row0 < R;
    const uint4* wrow[kOneRows];
#pragma unroll
    for (uint32_t rr = 0; rr < kOneRows; rr++) wrow[rr] = (const uint4*) (w + (size_t) min(row0 + rr, R - 1) * C);
    /* the weights are not written by earlier kernels: the first chunk is requested before
     * waiting for the kernel that produces x (PDL) */
    uint4 next[kOneRows];
#pragma unroll
    for (uint32_t rr = 0; rr < kOneRows; rr++) {
        next[rr] = rows && lane < nchunks ? gptoss_d_ld_stream(wrow[rr] + lane) : make_uint4(0, 0, 0, 0);
    }
    gptoss_d_pdl_wait();
    const uint32_t piece = one_piece_chunks(nchunks);
    float acc[kOneRows][kOneTokens];
#pragma unroll
    for (uint32_t rr = 0; rr < kOneRows; rr++)
#pragma unroll
        for (uint32_t t = 0; t < kOneTokens; t++) acc[rr][t] = 0.0f;
    for (uint32_t p0 = 0; p0 < nchunks; p0 += piece) {
        const uint32_t pn = min(piece, nchunks - p0);
        if (p0 > 0) __syncthreads(); /* every warp is done with the last piece */
        for (uint32_t t = 0; t < nt; t++) {
            const float4* xp = (const float4*) (x + (size_t) (t0 + t) * C) + 2 * p0;
            for (uint32_t c = threadIdx.x; c < pn; c += blockDim.x) {
                one_xs[(2 * t) * piece + c] = __ldg(xp + 2 * c);
                one_xs[(2 * t + 1) * piece + c] = __ldg(xp + 2 * c + 1);
            }
        }
        __syncthreads();
        if (!rows) continue; /* whole warps (row0 is the warp's); they still stage and sync */
        for (uint32_t c = p0 + lane; c < p0 + pn; c += 32) {
            float wf[kOneRows][8];
#pragma unroll
            for (uint32_t rr = 0; rr < kOneRows; rr++) {
                wf[rr][0] = one_opaque_f32(next[rr].x << 16);
                wf[rr][1] = one_opaque_f32(next[rr].x & 0xFFFF0000u);
                wf[rr][2] = one_opaque_f32(next[rr].y << 16);
                wf[rr][3] = one_opaque_f32(next[rr].y & 0xFFFF0000u);
                wf[rr][4] = one_opaque_f32(next[rr].z << 16);
                wf[rr][5] = one_opaque_f32(next[rr].z & 0xFFFF0000u);
                wf[rr][6] = one_opaque_f32(next[rr].w << 16);
                wf[rr][7] = one_opaque_f32(next[rr].w & 0xFFFF0000u);
            }
            if (c + 32 < nchunks) { /* the next chunk's weights in flight while these are used */
#pragma unroll
                for (uint32_t rr = 0; rr < kOneRows; rr++) next[rr] = gptoss_d_ld_stream(wrow[rr] + c + 32);
            }
#pragma unroll
            for (uint32_t t = 0; t < kOneTokens; t++) {
                if (t < nt) {
                    const float4 a = one_xs[(2 * t) * piece + c - p0], b = one_xs[(2 * t + 1) * piece + c - p0];
#pragma unroll
                    for (uint32_t rr = 0; rr < kOneRows; rr++) {
                        acc[rr][t] = REGION_ORDER ? acc[rr][t] + one_dot8(wf[rr], a, b, 0.0f)
                                                  : one_dot8(wf[rr], a, b, acc[rr][t]);
                    }
                }
            }
        }
    }
    if (!rows) return;
    __syncwarp();
#pragma unroll
    for (uint32_t rr = 0; rr < kOneRows; rr++) {
#pragma unroll
        for (uint32_t t = 0; t < kOneTokens; t++) {
            const float v = gptoss_d_warp_sum(acc[rr][t]);
            const uint32_t r = row0 + rr;
            if (lane == ((rr * kOneTokens + t) & 31u) && t < nt && r < R) {
                gptoss_d_store_result(out + (size_t) (t0 + t) * R + r, bias, r, v, add);
            }
        }
    }
}

/* The staged kernel where it applies (more than one tile, a piece within the device's limit,
 * the grid within its bounds); false: not launched. */
bool launch_gemv_one_staged(gptoss_backend_t backend, const float* x, const uint16_t* w, const uint16_t* b,
                            float* out, uint32_t T, uint32_t C, uint32_t R, bool add, bool region,
                            cudaError_t* err) {
    const size_t smem = one_staged_smem_bytes(C);
    const uint32_t row_blocks = ((R + kOneRows - 1) / kOneRows + kGemvWarps - 1) / kGemvWarps;
    if (T <= kOneTokens || smem > gptoss_cuda(backend)->max_shared_per_block ||
        row_blocks > GPTOSS_CUDA_MAX_GRID_YZ) {
        return false;
    }
    auto kernel = region ? gemv_one_staged_kernel<true> : gemv_one_staged_kernel<false>;
    static bool attribute_set[2]; /* the largest size once a kernel (setting it twice is harmless) */
    if (!attribute_set[region]) {
        *err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int) kOneMaxSmem);
        if (*err != cudaSuccess) return true;
        attribute_set[region] = true;
    }
    *err = gptoss_cuda_launch_pdl(backend, kernel, dim3((T + kOneTokens - 1) / kOneTokens, row_blocks),
                                  dim3(kGemvWarps * 32), smem, x, w, b, out, T, C, R, add);
    return true;
}

/* Row order one (gptoss_backend_set_row_order) over T tokens, C % 8 == 0 and 16-byte
 * aligned: each token's sums as the one-token GEMV that gptoss_cuda_bf16w_matmul_launch
 * runs for it (split-K for R <= kSplitKMaxRows unless qkv, then the region kernel's order
 * where it applies, else the vector kernel's), read once per 8 tokens. qkv: the choice of
 * gptoss_cuda_qkv_rope_gemv (no split-K). */
cudaError_t launch_gemv_one(gptoss_backend_t backend, const float* x, const uint16_t* w, const uint16_t* b,
                            float* out, uint32_t T, uint32_t C, uint32_t R, bool add, bool qkv) {
    if (!qkv && R <= kSplitKMaxRows) {
        return gptoss_cuda_launch_pdl(backend, gemv_bf16_splitk_kernel, dim3(R, T), dim3(256), 0, x, w, b, out, C, R,
                                      add);
    }
    const bool region = region_applies(backend, x, w, C, R);
    cudaError_t err;
    if (launch_gemv_one_staged(backend, x, w, b, out, T, C, R, add, region, &err)) return err;
    const uint32_t row_blocks = ((R + 1) / 2 + kGemvWarps - 1) / kGemvWarps; /* as launch_gemv_vec<8, 2> */
    if (T > 8 && row_blocks <= GPTOSS_CUDA_MAX_GRID_YZ) {
        /* several token tiles: tiles along x, rows along y (the weights read once) */
        const dim3 grid((T + 7) / 8, row_blocks);
        auto kernel = region ? gemv_bf16_vec_kernel<8, 2, false, true, true> : gemv_bf16_vec_kernel<8, 2, false, false, true>;
        return gptoss_cuda_launch_pdl(backend, kernel, grid, dim3(kGemvWarps * 32), 0, x, w, b, out, T, C, R, add,
                                      gptoss_qkv_rope{});
    }
    if (region) return launch_gemv_vec<8, 2, true>(backend, x, w, b, out, T, C, R, add);
    return launch_gemv_vec<8, 2>(backend, x, w, b, out, T, C, R, add);
}

}  // namespace

enum gptoss_status gptoss_cuda_split_bf16_planes(gptoss_backend_t backend, const float* A, size_t n, int np,
                                                 const uint16_t** planes_out) {
    void* scratch = nullptr;
    const enum gptoss_status st =
        gptoss_cuda_scratch_acquire(backend, (size_t) np * gptoss_plane_stride(n) * sizeof(uint16_t), &scratch, 0,
                                    nullptr);
    if (st != gptoss_status_success) return st;
    uint16_t* planes = (uint16_t*) scratch;
    const size_t want = (n / 4 + 255) / 256 + 1, cap = (size_t) gptoss_cuda_num_sms(backend) * 8;
    const unsigned blocks = (unsigned) (want < cap ? want : cap);
    const bool vec = gptoss_aligned(A, 16);
    const cudaStream_t stream = gptoss_cuda_stream(backend);
    if (np == 2) {
        split_planes_kernel<2><<<blocks, 256, 0, stream>>>(A, planes, n, vec);
    } else {
        split_planes_kernel<3><<<blocks, 256, 0, stream>>>(A, planes, n, vec);
    }
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) {
        gptoss_cuda_scratch_release(backend);
        return gptoss_cuda_fail(err, "launch of the activation split");
    }
    *planes_out = planes;
    return gptoss_status_success;
}

/* The split-bf16 tensor-core GEMM (gemm_bf16_tc_kernel; NP = 2 for aligned K >= 256, else 3),
 * its activation planes split first. what: the failure's message. */
static enum gptoss_status run_gemm_tc(gptoss_backend_t backend, const float* input, const uint16_t* w,
                                      const uint16_t* b, float* output, uint32_t T, uint32_t C, uint32_t R, bool add,
                                      bool vec, const char* what) {
    const uint16_t* planes = nullptr;
    const enum gptoss_status st = gptoss_cuda_split_bf16_planes(backend, input, (size_t) T * C, vec ? 2 : 3, &planes);
    if (st != gptoss_status_success) return st;
    const cudaError_t err = vec ? launch_gemm_tc<true, 2>(backend, planes, w, b, output, T, C, R, add)
                                : launch_gemm_tc<false, 3>(backend, planes, w, b, output, T, C, R, add);
    gptoss_cuda_scratch_release(backend);
    if (err != cudaSuccess) return gptoss_cuda_fail(err, what);
    return gptoss_status_success;
}

/* The SIMT GEMM (gemm_bf16_kernel), for the shapes no other kernel takes. */
static enum gptoss_status run_gemm_simt(gptoss_backend_t backend, const float* input, const uint16_t* w,
                                        const uint16_t* b, float* output, uint32_t T, uint32_t C, uint32_t R, bool add,
                                        bool vec) {
    const uint32_t m_tiles = (T + BM - 1) / BM;
    const dim3 grid((R + BN - 1) / BN, m_tiles < GPTOSS_CUDA_MAX_GRID_YZ ? m_tiles : GPTOSS_CUDA_MAX_GRID_YZ);
    gemm_bf16_kernel<<<grid, 256, 0, gptoss_cuda_stream(backend)>>>(input, w, b, output, T, C, R, add, vec);
    GPTOSS_CUDA_LAUNCHED("bf16 GEMM");
    return gptoss_status_success;
}

/* Row order many (gptoss_backend_set_row_order): for any T, the kernel the same shape takes
 * from 128 tokens on, whose sums of a row do not depend on the rows beside it: the vector
 * GEMV for few weight rows (the router), on Hopper the wgmma GEMM (its one-warpgroup form
 * below 128 tokens: the same sums, tests/test_invariance.c), else the mma.sync tensor-core
 * GEMM, and the SIMT GEMM for shapes neither takes. */
static enum gptoss_status matmul_many(gptoss_backend_t backend, const float* input, const uint16_t* w,
                                      const uint16_t* b, float* output, uint32_t T, uint32_t C, uint32_t R, bool add,
                                      bool vec) {
    if (vec && R <= kGemvMaxRowsForPrefill && (T + 7) / 8 <= GPTOSS_CUDA_MAX_GRID_YZ) {
        /* up to kManyGemvRowTokens tokens (decode steps), a warp a row and token: with 8 tokens
         * and 2 rows a warp the router of one token was 2 blocks (R = 32), 64 tokens 16 blocks,
         * each lane walking all its chunks for 16 sums. A row's sums do not depend on TT and
         * RPW (gemv_bf16_vec_kernel), so both launches give the same bits. */
        const cudaError_t err = T <= kManyGemvRowTokens
                                    ? launch_gemv_vec<1, 1>(backend, input, w, b, output, T, C, R, add)
                                    : launch_gemv_vec<8, 2>(backend, input, w, b, output, T, C, R, add);
        if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of the bf16 GEMV kernel (row order many)");
        return gptoss_status_success;
    }
    const uint32_t few_bn = GPTOSS_CUDA_GEMM_WGMMA_FEW && T < kTcFullTokens ? gemm_wgmma_few_bn(backend, T, R) : 0;
    const uint32_t wg_bn = GPTOSS_CUDA_GEMM_WGMMA && T >= kTcFullTokens ? gemm_wgmma_bn(backend, T, R) : 0;
    if (vec && C >= kTcTwoPartMinCols && gptoss_cuda(backend)->wgmma && (few_bn != 0 || wg_bn != 0)) {
        const uint16_t* planes = nullptr;
        const enum gptoss_status st = gptoss_cuda_split_bf16_planes(backend, input, (size_t) T * C, 2, &planes);
        if (st != gptoss_status_success) return st;
        const cudaError_t err = wg_bn != 0 ? launch_gemm_wgmma_bn(backend, wg_bn, planes, w, b, output, T, C, R, add)
                                           : launch_gemm_wgmma_few(backend, few_bn, planes, w, b, output, T, C, R, add);
        gptoss_cuda_scratch_release(backend);
        if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of the bf16 wgmma GEMM (row order many)");
        return gptoss_status_success;
    }
    if ((!vec || C >= kTcTwoPartMinCols) && (uint64_t) (R + TC_BN - 1) / TC_BN <= GPTOSS_CUDA_MAX_GRID_YZ) {
        return run_gemm_tc(backend, input, w, b, output, T, C, R, add, vec,
                           "launch of the bf16 tensor-core GEMM (row order many)");
    }
    return run_gemm_simt(backend, input, w, b, output, T, C, R, add, vec);
}

enum gptoss_status gptoss_cuda_bf16w_matmul_launch(gptoss_backend_t backend, const float* input,
                                                   const gptoss_bf16* weight, const gptoss_bf16* bias,
                                                   float* output, uint32_t T, uint32_t C, uint32_t R, bool add) {
    const cudaStream_t stream = gptoss_cuda_stream(backend);
    const uint16_t* w = (const uint16_t*) weight;
    const uint16_t* b = (const uint16_t*) bias;
    const bool vec = C % 8 == 0 && gptoss_aligned(weight, 16) && gptoss_aligned(input, 16);
    const enum gptoss_row_order order = backend->row_order;
    if (order == gptoss_row_order_one && T > 1) {
        /* each token as the one-token call below would compute it */
        cudaError_t err;
        if (vec) {
            err = launch_gemv_one(backend, input, w, b, output, T, C, R, add, false);
        } else {
            const dim3 grid((R + kGemvWarps - 1) / kGemvWarps, T);
            gemv_bf16_scalar_kernel<<<grid, kGemvWarps * 32, 0, stream>>>(input, w, b, output, T, C, R, add);
            err = cudaGetLastError();
        }
        if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of the bf16 GEMV kernel (row order one)");
        return gptoss_status_success;
    }
    if (order == gptoss_row_order_many) return matmul_many(backend, input, w, b, output, T, C, R, add, vec);
    if (T <= kGemvMaxTokens) {
        cudaError_t err;
        if (vec) {
            if (T == 1 && R <= kSplitKMaxRows) {
                err = gptoss_cuda_launch_pdl(backend, gemv_bf16_splitk_kernel, dim3(R), dim3(256), 0, input, w, b,
                                             output, C, R, add);
            } else if (T == 1) {
                const bool region = add ? launch_gemv_region<true, false>(backend, input, w, b, output, C, R,
                                                                          gptoss_qkv_rope{}, &err)
                                        : launch_gemv_region<false, false>(backend, input, w, b, output, C, R,
                                                                           gptoss_qkv_rope{}, &err);
                if (!region) err = launch_gemv_vec<1, 1>(backend, input, w, b, output, T, C, R, add);
            } else if (T == 2) {
                err = launch_gemv_vec<2, 2>(backend, input, w, b, output, T, C, R, add);
            } else if (T <= 4) {
                err = launch_gemv_vec<4, 2>(backend, input, w, b, output, T, C, R, add);
            } else {
                err = launch_gemv_vec<8, 2>(backend, input, w, b, output, T, C, R, add);
            }
        } else {
            const dim3 grid((R + kGemvWarps - 1) / kGemvWarps, T);
            gemv_bf16_scalar_kernel<<<grid, kGemvWarps * 32, 0, stream>>>(input, w, b, output, T, C, R, add);
            err = cudaGetLastError();
        }
        if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of the bf16 GEMV kernel");
        return gptoss_status_success;
    }
    /* few weight rows (the MoE router, 2880 -> 32 / 128): the tensor-core tiles would give
     * T/128 blocks; the GEMV kernel over tiles of 8 tokens keeps every SM busy and reads the
     * small matrix from L2 */
    if (vec && R <= kGemvMaxRowsForPrefill && (T + 7) / 8 <= GPTOSS_CUDA_MAX_GRID_YZ) {
        /* as in row order many (matmul_many): a warp a row and token up to kManyGemvRowTokens */
        const cudaError_t err = T <= kManyGemvRowTokens
                                    ? launch_gemv_vec<1, 1>(backend, input, w, b, output, T, C, R, add)
                                    : launch_gemv_vec<8, 2>(backend, input, w, b, output, T, C, R, add);
        if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of the bf16 GEMV kernel");
        return gptoss_status_success;
    }
    /* from 32 tokens, aligned K >= 256: the ring GEMM (the same sums as the tensor-core GEMM
     * below). Up to 127 tokens (a decode step of many streams) tiles of 64 tokens x 64 weight
     * rows, or 32 when 64 would not give every SM a block; from 128 on (prefill) 64 x 128,
     * which GPTOSS_CUDA_GEMM_RING_PREFILL=0 leaves to the GEMM below. On Hopper the wgmma
     * kernel takes both (128-token tiles from 128 tokens on, 64-token tiles below): the same
     * products per k-step in the same order, but not always the ring kernel's last bits
     * (mma.sync and wgmma do not round alike in every case: docs/CUDA_NOTES.md, fourteenth
     * sitting). */
    const bool ring_prefill = T >= kTcFullTokens;
    const uint32_t ring_min_bn = ring_prefill ? 128 : 32;
    if (vec && T >= kTcMinTokens && C >= kTcTwoPartMinCols && (!ring_prefill || GPTOSS_CUDA_GEMM_RING_PREFILL) &&
        (uint64_t) (R + ring_min_bn - 1) / ring_min_bn <= GPTOSS_CUDA_MAX_GRID_YZ) {
        const uint16_t* planes = nullptr;
        const enum gptoss_status st = gptoss_cuda_split_bf16_planes(backend, input, (size_t) T * C, 2, &planes);
        if (st != gptoss_status_success) return st;
        const uint64_t tiles64 = (uint64_t) ((T + kRingBM - 1) / kRingBM) * ((R + 63) / 64);
        const bool wg = gptoss_cuda(backend)->wgmma;
        const uint32_t wg_bn = ring_prefill && GPTOSS_CUDA_GEMM_WGMMA && wg ? gemm_wgmma_bn(backend, T, R) : 0;
        const uint32_t few_bn = !ring_prefill && GPTOSS_CUDA_GEMM_WGMMA_FEW && wg ? gemm_wgmma_few_bn(backend, T, R) : 0;
        const cudaError_t err = wg_bn != 0    ? launch_gemm_wgmma_bn(backend, wg_bn, planes, w, b, output, T, C, R, add)
                                : few_bn != 0 ? launch_gemm_wgmma_few(backend, few_bn, planes, w, b, output, T, C, R, add)
                                : ring_prefill ? launch_gemm_tc_ring<128, 3>(backend, planes, w, b, output, T, C, R, add)
                                : tiles64 < (uint64_t) gptoss_cuda_num_sms(backend)
                                    ? launch_gemm_tc_ring<32, 4>(backend, planes, w, b, output, T, C, R, add)
                                    : launch_gemm_tc_ring<64, 4>(backend, planes, w, b, output, T, C, R, add);
        gptoss_cuda_scratch_release(backend);
        if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of the bf16 tensor-core ring GEMM");
        return gptoss_status_success;
    }
    /* tensor-core split-bf16 GEMM for prefill: NP = 2 for aligned K >= 256, NP = 3 for any
     * unaligned / odd K; aligned small K (no model shape) keeps the SIMT GEMM */
    const uint64_t tc_blocks = (uint64_t) ((T + TC_BM - 1) / TC_BM) * ((R + TC_BN - 1) / TC_BN);
    const bool tc_fills = T >= kTcFullTokens || tc_blocks >= (uint64_t) gptoss_cuda_num_sms(backend);
    if (T >= kTcMinTokens && tc_fills && (uint64_t) (R + TC_BN - 1) / TC_BN <= GPTOSS_CUDA_MAX_GRID_YZ &&
        (!vec || C >= kTcTwoPartMinCols)) {
        return run_gemm_tc(backend, input, w, b, output, T, C, R, add, vec, "launch of the bf16 tensor-core GEMM");
    }
    return run_gemm_simt(backend, input, w, b, output, T, C, R, add, vec);
}

bool gptoss_cuda_qkv_rope_gemv(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight,
                               const gptoss_bf16* bias, float* output, uint32_t C, uint32_t R,
                               const gptoss_qkv_rope& rope, enum gptoss_status* status) {
    if (!(C % 8 == 0 && R % 2 == 0 && gptoss_aligned(weight, 16) && gptoss_aligned(input, 16))) return false;
    cudaError_t err;
    if (!launch_gemv_region<false, true>(backend, input, (const uint16_t*) weight, (const uint16_t*) bias, output, C,
                                         R, rope, &err)) {
        const dim3 grid((R / 2 + kGemvWarps - 1) / kGemvWarps, 1);
        err = gptoss_cuda_launch_pdl(backend, gemv_bf16_vec_kernel<1, 2, true>, grid, dim3(kGemvWarps * 32), 0,
                                     input, (const uint16_t*) weight, (const uint16_t*) bias, output, 1u, C, R, false,
                                     rope);
    }
    *status = err == cudaSuccess ? gptoss_status_success : gptoss_cuda_fail(err, "launch of the qkv GEMV");
    return true;
}

bool gptoss_cuda_qkv_gemv_one(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight,
                              const gptoss_bf16* bias, float* output, uint32_t T, uint32_t C, uint32_t R,
                              enum gptoss_status* status) {
    if (!(C % 8 == 0 && R % 2 == 0 && gptoss_aligned(weight, 16) && gptoss_aligned(input, 16))) return false;
    const cudaError_t err =
        launch_gemv_one(backend, input, (const uint16_t*) weight, (const uint16_t*) bias, output, T, C, R, false, true);
    *status = err == cudaSuccess ? gptoss_status_success : gptoss_cuda_fail(err, "launch of the qkv GEMV (row order one)");
    return true;
}

extern "C" enum gptoss_status gptoss_cuda_f32_bf16w_matmul(gptoss_backend_t backend,
                                                           const struct gptoss_f32_bf16w_matmul_args* args) {
    return gptoss_cuda_bf16w_matmul_launch(backend, args->input, args->weight, args->bias, args->output,
                                           args->num_tokens, args->num_cols, args->num_rows, false);
}

extern "C" enum gptoss_status gptoss_cuda_f32_bf16w_matmul_add(gptoss_backend_t backend,
                                                               const struct gptoss_f32_bf16w_matmul_add_args* args) {
    return gptoss_cuda_bf16w_matmul_launch(backend, args->input, args->weight, args->bias, args->output,
                                           args->num_tokens, args->num_cols, args->num_rows, true);
}

extern "C" enum gptoss_status gptoss_cuda_f32_bf16w_dense_matmul_qkv(
    gptoss_backend_t backend, const struct gptoss_f32_bf16w_dense_matmul_qkv_args* args) {
    return gptoss_cuda_bf16w_matmul_launch(backend, args->input, args->weight, args->bias, args->output,
                                           args->num_tokens, args->num_cols, args->num_rows, false);
}

extern "C" enum gptoss_status gptoss_cuda_f32_bf16w_dense_matmul_attn_output(
    gptoss_backend_t backend, const struct gptoss_f32_bf16w_dense_matmul_attn_output_args* args) {
    return gptoss_cuda_bf16w_matmul_launch(backend, args->input, args->weight, args->bias, args->output,
                                           args->num_tokens, args->num_cols, args->num_rows, true);
}

extern "C" enum gptoss_status gptoss_cuda_f32_bf16w_dense_matmul_mlp_gate(
    gptoss_backend_t backend, const struct gptoss_f32_bf16w_dense_matmul_mlp_gate_args* args) {
    return gptoss_cuda_bf16w_matmul_launch(backend, args->input, args->weight, args->bias, args->output,
                                           args->num_tokens, args->num_cols, args->num_rows, false);
}
