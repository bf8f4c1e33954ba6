/* bf16-weight matrix product shared by matmul.cu, qkv.cu and unembedding.cu. */
#ifndef GPTOSS_CUDA_MATMUL_CUH
#define GPTOSS_CUDA_MATMUL_CUH

#include "cuda/common.cuh"

/* out[t][r] = (add ? out[t][r] : 0) + (sum_c x[t][c] * w[r][c] + b[r]); bias may be NULL.
 * Picks the decode (GEMV) kernels for small T, the tiled GEMM otherwise. */
enum gptoss_status gptoss_cuda_bf16w_matmul_launch(gptoss_backend_t backend, const float* input,
                                                   const gptoss_bf16* weight, const gptoss_bf16* bias,
                                                   float* output, uint32_t num_tokens, uint32_t num_cols,
                                                   uint32_t num_rows, bool add);

/* The activations of the split-bf16 tensor-core GEMMs (matmul.cu, moe.cu), split once per
 * call instead of once per weight tile: acquires the backend scratch and enqueues
 * planes[p * gptoss_plane_stride(n) + i] = part p of gptoss_d_split_bf16<np>(A[i]) for
 * i < n (np = 2 or 3; each plane starts 16-byte aligned) on the backend's stream. On
 * success *planes_out points at them and the scratch stays held: the caller launches its
 * GEMM, then calls gptoss_cuda_scratch_release (stream order keeps the planes valid until
 * the GEMM has read them). On failure nothing is held. */
static inline __host__ __device__ size_t gptoss_plane_stride(size_t n) { return (n + 7) / 8 * 8; }
enum gptoss_status gptoss_cuda_split_bf16_planes(gptoss_backend_t backend, const float* A, size_t n, int np,
                                                 const uint16_t** planes_out);

/* The qkv projection of one token with RoPE and the KV-cache write in the GEMV epilogue
 * (matmul.cu). Returns false (nothing launched) when the shape or alignment does not fit
 * the vector kernel; else *status is the launch result. */
#include "cuda/rope.cuh"
struct gptoss_qkv_rope {
    gptoss_kv_dest kv; /* row 0's K and V (pos: its position in a plain cache) */
    gptoss_rope_params p;
    uint32_t num_q_heads, num_kv_heads, head_dim, pos;
};
bool gptoss_cuda_qkv_rope_gemv(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight,
                               const gptoss_bf16* bias, float* output, uint32_t num_cols, uint32_t num_rows,
                               const gptoss_qkv_rope& rope, enum gptoss_status* status);

/* Row order one (gptoss_backend_set_row_order) for the qkv projection of T > 1 tokens: each
 * token's sums as gptoss_cuda_qkv_rope_gemv computes a token alone (RoPE and the cache write
 * follow, as after any matmul). false (nothing launched) where that call would not apply. */
bool gptoss_cuda_qkv_gemv_one(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight,
                              const gptoss_bf16* bias, float* output, uint32_t T, uint32_t C, uint32_t R,
                              enum gptoss_status* status);

__device__ __forceinline__ float gptoss_d_bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float gptoss_d_bf16_hi(uint32_t w) { return __uint_as_float(w & 0xFFFF0000u); }

/* acc += a . w[0..3], b . w[4..7] (8 bf16 weights in a uint4), in element order. */
__device__ __forceinline__ float gptoss_d_dot8(uint4 w, float4 a, float4 b, float acc) {
    acc = fmaf(a.x, gptoss_d_bf16_lo(w.x), acc);
    acc = fmaf(a.y, gptoss_d_bf16_hi(w.x), acc);
    acc = fmaf(a.z, gptoss_d_bf16_lo(w.y), acc);
    acc = fmaf(a.w, gptoss_d_bf16_hi(w.y), acc);
    acc = fmaf(b.x, gptoss_d_bf16_lo(w.z), acc);
    acc = fmaf(b.y, gptoss_d_bf16_hi(w.z), acc);
    acc = fmaf(b.z, gptoss_d_bf16_lo(w.w), acc);
    acc = fmaf(b.w, gptoss_d_bf16_hi(w.w), acc);
    return acc;
}

/* out = (add ? out : 0) + (dot + bias[r]) */
__device__ __forceinline__ void gptoss_d_store_result(float* out, const uint16_t* bias, uint32_t r, float dot,
                                                      bool add) {
    const float s = bias != nullptr ? dot + gptoss_bf16_to_f32(bias[r]) : dot;
    *out = add ? *out + s : s;
}

/* Streaming 16-byte load (read once: do not allocate in L1). */
__device__ __forceinline__ uint4 gptoss_d_ld_stream(const void* ptr) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(ptr));
    return v;
}


/* ---------------------------------------------------------------------------------
 * Tensor-core building blocks shared by the split-bf16 GEMMs (matmul.cu, moe.cu).
 * ------------------------------------------------------------------------------- */

/* bf16 bits of x split into NP parts (exact differences; non-finite x: x1 = x, rest 0) */
template <int NP>
__device__ __forceinline__ void gptoss_d_split_bf16(float x, uint32_t (&p)[NP]) {
    const uint32_t u = __float_as_uint(x);
    if ((u & 0x7F800000u) == 0x7F800000u) {
        p[0] = gptoss_f32_to_bf16(x);
#pragma unroll
        for (int i = 1; i < NP; i++) p[i] = 0;
        return;
    }
    uint32_t h = gptoss_f32_to_bf16(x);
    if ((h & 0x7F80u) == 0x7F80u) h = u >> 16; /* rounding reached inf: truncate instead */
    p[0] = h;
    float r = x - __uint_as_float(h << 16);
#pragma unroll
    for (int i = 1; i < NP; i++) {
        const uint32_t b = gptoss_f32_to_bf16(r);
        p[i] = b;
        r = r - __uint_as_float(b << 16);
    }
}

__device__ __forceinline__ void gptoss_d_mma_bf16_16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* cp.async: 16 bytes global -> shared memory without registers (.cg: through L2 only);
 * commit closes a group, wait<N> waits until at most N of this thread's groups are
 * pending. Both addresses 16-byte aligned. The _s forms here and of ldmatrix .x4 take a
 * shared-space address (__cvta_generic_to_shared of a buffer once a block, offsets added
 * per use: a loop that converts a generic pointer per copy recomputes the window base and
 * the 64-bit arithmetic each time). */
__device__ __forceinline__ void gptoss_d_cp_async16_s(uint32_t saddr, const void* gmem) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(saddr), "l"(gmem) : "memory");
}
__device__ __forceinline__ void gptoss_d_cp_async16(void* smem, const void* gmem) {
    gptoss_d_cp_async16_s((uint32_t) __cvta_generic_to_shared(smem), gmem);
}
/* The same with src_bytes of the 16 read (0: the destination is zero-filled; src must still
 * be a valid address). */
__device__ __forceinline__ void gptoss_d_cp_async16_zfill(void* smem, const void* gmem, uint32_t src_bytes) {
    const uint32_t a = (uint32_t) __cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(a), "l"(gmem), "r"(src_bytes) : "memory");
}
/* ldmatrix .x2: two 8x8 b16 matrices; lanes 0..15 give the row addresses. */
__device__ __forceinline__ void gptoss_d_ldmatrix_x2(uint32_t (&r)[2], const void* smem_row) {
    const uint32_t a = (uint32_t) __cvta_generic_to_shared(smem_row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
}
__device__ __forceinline__ void gptoss_d_cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void gptoss_d_cp_async_wait() {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

/* ldmatrix .x4: four 8x8 b16 matrices; lanes 8j..8j+7 give the row addresses of matrix j. */
__device__ __forceinline__ void gptoss_d_ldmatrix_x4_s(uint32_t (&r)[4], uint32_t saddr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(saddr));
}
__device__ __forceinline__ void gptoss_d_ldmatrix_x4(uint32_t (&r)[4], const void* smem_row) {
    gptoss_d_ldmatrix_x4_s(r, (uint32_t) __cvta_generic_to_shared(smem_row));
}

/* ldmatrix .x4 .trans: the same four matrices, each transposed (lane (g, t) of matrix j gets
 * its elements [2t][g] and [2t + 1][g]: a B fragment from a row-major k x n tile). */
__device__ __forceinline__ void gptoss_d_ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem_row) {
    const uint32_t a = (uint32_t) __cvta_generic_to_shared(smem_row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

/* Split-K dot product of one bf16 weight row with x (the split-K GEMV and the fused MoE
 * gate): 16-byte weight chunks (8 columns) strided over the block's threads, two chunks
 * per step, a per-thread fmaf chain in chunk order; the caller reduces the partial sums
 * (gptoss_d_block_sum). splitk_first loads the thread's first two chunks (issued before a
 * PDL wait: weights are never written by a kernel); splitk_dot continues from them. X_SMEM:
 * x is in shared memory (plain loads) rather than global (__ldg). */
__device__ __forceinline__ void gptoss_d_splitk_first(const uint4* wr, uint32_t nchunks, uint4& w0, uint4& w1) {
    const uint32_t c0 = threadIdx.x, c1 = c0 + blockDim.x;
    w0 = c0 < nchunks ? gptoss_d_ld_stream(wr + c0) : make_uint4(0, 0, 0, 0);
    w1 = c1 < nchunks ? gptoss_d_ld_stream(wr + c1) : make_uint4(0, 0, 0, 0);
}

template <bool X_SMEM>
__device__ __forceinline__ float gptoss_d_splitk_dot(const uint4* wr, const float4* x4, uint32_t nchunks, uint4 w0,
                                                     uint4 w1) {
    float acc = 0.0f;
    for (uint32_t c0 = threadIdx.x; c0 < nchunks; c0 += 2 * blockDim.x) {
        const uint32_t c1 = c0 + blockDim.x;
        if (c0 != threadIdx.x) {
            if (c0 < nchunks) w0 = gptoss_d_ld_stream(wr + c0);
            if (c1 < nchunks) w1 = gptoss_d_ld_stream(wr + c1);
        }
        const float4 a0 = X_SMEM ? x4[2 * c0] : __ldg(x4 + 2 * c0);
        const float4 b0 = X_SMEM ? x4[2 * c0 + 1] : __ldg(x4 + 2 * c0 + 1);
        acc = gptoss_d_dot8(w0, a0, b0, acc);
        if (c1 < nchunks) {
            const float4 a1 = X_SMEM ? x4[2 * c1] : __ldg(x4 + 2 * c1);
            const float4 b1 = X_SMEM ? x4[2 * c1 + 1] : __ldg(x4 + 2 * c1 + 1);
            acc = gptoss_d_dot8(w1, a1, b1, acc);
        }
    }
    return acc;
}

#endif
