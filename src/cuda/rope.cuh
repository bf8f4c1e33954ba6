/* RoPE/YaRN over qkv rows, shared by rope.cu and qkv.cu. */
#ifndef GPTOSS_CUDA_ROPE_CUH
#define GPTOSS_CUDA_ROPE_CUH

#include "cuda/paged.cuh"

struct gptoss_rope_params {
    float freq_scale; /* -logf(rope_base) / (float)(head_dim / 2) */
    float interpolation_scale;
    float yarn_offset;
    float yarn_scale;
    float yarn_multiplier;
};

static inline gptoss_rope_params gptoss_make_rope_params(float rope_base, float interpolation_scale, float yarn_offset,
                                                         float yarn_scale, float yarn_multiplier, uint32_t head_dim) {
    gptoss_rope_params p;
    p.freq_scale = -logf(rope_base) / (float) (head_dim / 2);
    p.interpolation_scale = interpolation_scale;
    p.yarn_offset = yarn_offset;
    p.yarn_scale = yarn_scale;
    p.yarn_multiplier = yarn_multiplier;
    return p;
}

/* Rotates (x, y) of pair i at position pos. */
__device__ __forceinline__ void gptoss_d_rope_pair(float& x, float& y, uint32_t i, uint32_t pos,
                                                   const gptoss_rope_params& p) {
    const float f = gptoss_rope_inv_freq(i, p.freq_scale, p.interpolation_scale, p.yarn_offset, p.yarn_scale);
    const float phi = (float) pos * f;
    float s, c;
    sincosf(phi, &s, &c);
    c = c * p.yarn_multiplier;
    s = s * p.yarn_multiplier;
    const float nx = x * c - y * s;
    const float ny = x * s + y * c;
    x = nx;
    y = ny;
}

/* Where the K and V of qkv rows go (kernels.h): a plain cache ([kv head][max_tokens][2]
 * [head_dim], head_stride = max_tokens * 2 * head_dim, row t at position token_offset + t),
 * or, with positions, a paged cache (paged.cuh): row t at positions[t], in the slot of that
 * position of sequence seq_ids[t] through its block table. */
struct gptoss_kv_dest : gptoss_kv_pages {
    float* kv_cache;
    uint64_t head_stride; /* floats per kv head */
};

/* Position and cache slot of row t (plain: position and slot plain_pos). A paged row whose
 * sequence, position or block table entry is out of range sets GPTOSS_CUDA_ERROR_KV_ROW
 * and returns false (the caller writes NaN instead). */
__device__ __forceinline__ bool gptoss_d_row_slot(const gptoss_kv_dest& d, uint32_t t, uint32_t plain_pos,
                                                  uint32_t& pos, uint64_t& slot) {
    if (d.positions == nullptr) {
        pos = plain_pos;
        slot = plain_pos;
        return true;
    }
    const uint32_t* table;
    if (!gptoss_d_kv_row(d, t, pos, table) || !gptoss_d_kv_slot(d, table, pos, slot)) {
        gptoss_d_set_error(d.error_word, GPTOSS_CUDA_ERROR_KV_ROW);
        return false;
    }
    return true;
}

/* One RoPE pair (x, y) of a qkv row at position pos: pair pr of the row (elements 2 pr,
 * 2 pr + 1; head pr / (head_dim / 2)). Q and K heads are rotated; the pair is written to
 * v[0], v[1], and for K and V heads also to cache slot `slot` ([kv head][head_stride]:
 * slots of 2 * head_dim floats, K then V). Shared by the qkv GEMV epilogue (matmul.cu) and
 * the rope + cache kernels (qkv.cu). */
__device__ __forceinline__ void gptoss_d_qkv_rope_store(float x, float y, float* v, uint32_t pr, uint32_t pos,
                                                        const gptoss_rope_params& p, float* kv_cache,
                                                        uint32_t num_q_heads, uint32_t num_kv_heads,
                                                        uint32_t head_dim, uint64_t head_stride, uint64_t slot) {
    const uint32_t half_dim = head_dim / 2;
    const uint32_t head = pr / half_dim, i = pr % half_dim;
    if (head < num_q_heads + num_kv_heads) gptoss_d_rope_pair(x, y, i, pos, p);
    v[0] = x;
    v[1] = y;
    if (head >= num_q_heads) {
        const bool is_k = head < num_q_heads + num_kv_heads;
        const uint32_t h = is_k ? head - num_q_heads : head - num_q_heads - num_kv_heads;
        float* dst = kv_cache + (size_t) h * head_stride + slot * 2 * head_dim + (is_k ? 0 : head_dim) + 2 * i;
        dst[0] = x;
        dst[1] = y;
    }
}

/* The pair of row t with the cache destination of the row (both kernels' epilogue). */
__device__ __forceinline__ void gptoss_d_qkv_rope_row(float x, float y, float* v, uint32_t pr, uint32_t t,
                                                      uint32_t plain_pos, const gptoss_rope_params& p,
                                                      const gptoss_kv_dest& d, uint32_t num_q_heads,
                                                      uint32_t num_kv_heads, uint32_t head_dim) {
    uint32_t pos;
    uint64_t slot;
    if (!gptoss_d_row_slot(d, t, plain_pos, pos, slot)) {
        v[0] = v[1] = __uint_as_float(0x7FC00000u);
        return;
    }
    gptoss_d_qkv_rope_store(x, y, v, pr, pos, p, d.kv_cache, num_q_heads, num_kv_heads, head_dim, d.head_stride,
                            slot);
}

#endif
