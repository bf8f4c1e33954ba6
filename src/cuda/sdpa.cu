/* Scaled dot-product attention with sinks, sliding window and GQA over the KV cache.
 *
 * Fast path (head_dim 64, up to 8 Q heads per KV head): flash-decoding. The key range of
 * every (query, KV head) is split into chunks; one 128-thread block handles one chunk for
 * all Q heads of the KV head (K/V tiles of 64 keys staged in shared memory, online
 * softmax), and writes a partial (max, sum, unnormalised output). The chunks are combined
 * with the sink by the last chunk block of each (query, KV head) to finish when there are
 * at most 16 of them (one launch; with one chunk the block normalises in place), else by a
 * merge kernel with one block per Q head. Other shapes use a simple one-warp-per-(query, Q head) kernel.
 *
 * f32_sdpa_varlen runs the same kernels with each row's position, sequence and block table
 * (gptoss_paged_keys): a key's row is found through the table, and the chunk length is
 * fixed by the call's bound on the key range (min(window, table_stride * block_size)), not
 * by the number of rows, so that a row's arithmetic (its chunks and their merge) does not
 * depend on the other rows of the call: batch invariance. Rows whose sequence, position or
 * table entries are out of range give NaN and GPTOSS_CUDA_ERROR_KV_ROW. */
#include "cuda/common.cuh"

namespace {

constexpr int D = 64;       /* head_dim of the fast path */
constexpr int G = 8;        /* Q heads per KV head handled by a block (padded) */
constexpr int TK = 64;      /* keys per tile */
constexpr int THREADS = 128;
constexpr uint64_t kMaxChunks = 256;          /* chunks per (query, KV head) */
/* Up to this many chunks the last chunk block merges (one launch); more go to the merge
 * kernel, which spreads the combination over one block per Q head instead of serialising
 * it in one block (the measurements behind the threshold: docs/CUDA_NOTES.md). */
constexpr uint64_t kFusedMergeMaxChunks = 16;

/* The keys of a varlen row (positions == nullptr: f32_sdpa, row i at num_kv_tokens + i,
 * key t at row t of the head). */
struct gptoss_paged_keys {
    const uint32_t* positions;
    const uint32_t* seq_ids;
    const uint32_t* block_tables;
    uint32_t block_size, table_stride, num_seqs;
    uint64_t num_blocks;
    uint32_t* error_word;
};

/* Position of row i and its sequence's table row; false (error set) for a row out of range. */
__device__ __forceinline__ bool row_keys(const gptoss_paged_keys& k, uint32_t i, uint32_t num_kv_tokens, uint32_t& P,
                                         const uint32_t*& table) {
    if (k.positions == nullptr) {
        P = num_kv_tokens + i;
        table = nullptr;
        return true;
    }
    const uint32_t s = k.seq_ids[i];
    P = k.positions[i];
    if (s >= k.num_seqs || P / k.block_size >= k.table_stride) return false;
    table = k.block_tables + (size_t) s * k.table_stride;
    return true;
}

/* Row of key t in a kv head (nullptr: a table entry out of range). */
__device__ __forceinline__ const float* key_row(const gptoss_paged_keys& k, const uint32_t* table, const float* head,
                                                uint32_t t, uint32_t head_dim) {
    if (table == nullptr) return head + (size_t) t * 2 * head_dim;
    const uint32_t entry = table[t / k.block_size];
    if (entry >= k.num_blocks) return nullptr;
    return head + ((uint64_t) entry * k.block_size + t % k.block_size) * 2 * head_dim;
}

struct SdpaShape {
    const float* q;
    const float* kv;
    float* partial; /* [Tq][Hq][nchunks][D + 2]: o[D], m, l */
    uint32_t* counters; /* [Tq * Hkv], zero: chunks done per (query, KV head); NULL: the
                         * merge kernel combines the partials */
    const uint16_t* sinks;
    float* out;
    uint64_t kv_stride;
    uint32_t window;
    uint32_t num_q_tokens, num_kv_tokens, num_q_heads, num_kv_heads, group;
    uint32_t qkv_dim;
    uint32_t chunk, nchunks;
    float scale;
    gptoss_paged_keys paged;
};

/* o / denom; 0 when nothing was attended (denom 0), NaN when denom is NaN (a NaN score, or
 * a varlen row out of range) */
__device__ __forceinline__ float normalise(float o, float denom) {
    return denom > 0.0f ? o / denom : (denom != denom ? denom : 0.0f);
}

__device__ __forceinline__ void key_range(uint32_t P, uint32_t window, uint32_t& lo, uint32_t& len) {
    /* keys max(0, P + 1 - window) .. P */
    const uint64_t p1 = (uint64_t) P + 1;
    lo = p1 > window ? (uint32_t) (p1 - window) : 0u;
    len = (uint32_t) (p1 - lo);
}

__global__ void __launch_bounds__(THREADS) sdpa_chunk_kernel(SdpaShape s) {
    __shared__ __align__(16) float qs[G][D];
    __shared__ __align__(16) float ks[TK][D + 4];
    __shared__ __align__(16) float vs[TK][D];
    __shared__ __align__(16) float ps[TK][G]; /* scores, then probabilities */
    __shared__ float factor_s[G];

    gptoss_d_pdl_trigger();
    gptoss_d_pdl_wait();
    const uint32_t tid = threadIdx.x;
    const uint32_t chunk = blockIdx.x;
    const uint32_t i = blockIdx.y / s.num_kv_heads;
    const uint32_t h = blockIdx.y % s.num_kv_heads;
    __shared__ int bad; /* a row or a table entry out of range (varlen): NaN out */
    if (tid == 0) bad = 0;
    uint32_t P;
    const uint32_t* table;
    uint32_t lo, len;
    if (row_keys(s.paged, i, s.num_kv_tokens, P, table)) {
        key_range(P, s.window, lo, len);
    } else {
        lo = len = 0;
        if (tid == 0) bad = 1;
    }
    const uint32_t begin = chunk * s.chunk; /* relative to lo */
    const uint32_t end = min(begin + s.chunk, len);
    const uint32_t hq0 = h * s.group;

    /* Q heads of this KV head (padded with zeros): loaded now, stored to shared memory
     * after the first K/V tile's loads are issued (one memory round trip for both) */
    constexpr int kQLoads = G * D / THREADS;
    float qv[kQLoads];
#pragma unroll
    for (int r = 0; r < kQLoads; r++) {
        const uint32_t idx = tid + (uint32_t) r * THREADS;
        const uint32_t g = idx / D, d = idx % D;
        qv[r] = g < s.group ? s.q[(size_t) i * s.qkv_dim + (size_t) (hq0 + g) * D + d] : 0.0f;
    }

    /* score/probability ownership: key k = tid % 64, heads gg*4 .. gg*4+3 */
    const uint32_t kk = tid % TK, gg = tid / TK;
    /* output ownership: dim d = tid % 64, heads gg*4 .. +3 */
    const uint32_t od = tid % D;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    /* running max / sum for head g are kept by warp g/2 (redundantly in all its lanes) */
    const uint32_t warp = tid / 32, lane = tid % 32;
    float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};

    const float* kv_head = s.kv + (size_t) h * s.kv_stride;
    for (uint32_t t0 = begin; t0 < end; t0 += TK) {
        const uint32_t ntile = min((uint32_t) TK, end - t0);
        __syncthreads(); /* previous tile fully consumed; qs written */
        /* stage K and V: 64 keys x 128 floats = 2048 float4 */
        /* all 16 loads of this thread issued before the first store (one memory round trip
         * per tile instead of several) */
        constexpr int kLoads = TK * 2 * D / 4 / THREADS;
        float4 v[kLoads];
#pragma unroll
        for (int j = 0; j < kLoads; j++) {
            const uint32_t idx = tid + (uint32_t) j * THREADS;
            const uint32_t key = idx / (2 * D / 4), c4 = idx % (2 * D / 4);
            v[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (key < ntile) {
                const float* row = key_row(s.paged, table, kv_head, lo + t0 + key, D);
                if (row != nullptr) {
                    v[j] = __ldg((const float4*) row + c4);
                } else {
                    bad = 1;
                }
            }
        }
        if (t0 == begin) {
#pragma unroll
            for (int r = 0; r < kQLoads; r++) {
                const uint32_t idx = tid + (uint32_t) r * THREADS;
                qs[idx / D][idx % D] = qv[r];
            }
        }
#pragma unroll
        for (int j = 0; j < kLoads; j++) {
            const uint32_t idx = tid + (uint32_t) j * THREADS;
            const uint32_t key = idx / (2 * D / 4), c4 = idx % (2 * D / 4);
            if (c4 < D / 4) {
                *(float4*) &ks[key][c4 * 4] = v[j];
            } else {
                *(float4*) &vs[key][(c4 - D / 4) * 4] = v[j];
            }
        }
        __syncthreads();
        /* scores */
        {
            float sc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll 4
            for (int d = 0; d < D; d += 4) {
                const float4 k4 = *(const float4*) &ks[kk][d];
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const float4 q4 = *(const float4*) &qs[gg * 4 + j][d];
                    sc[j] = fmaf(q4.x, k4.x, sc[j]);
                    sc[j] = fmaf(q4.y, k4.y, sc[j]);
                    sc[j] = fmaf(q4.z, k4.z, sc[j]);
                    sc[j] = fmaf(q4.w, k4.w, sc[j]);
                }
            }
#pragma unroll
            for (int j = 0; j < 4; j++) ps[kk][gg * 4 + j] = kk < ntile ? sc[j] * s.scale : -INFINITY;
        }
        __syncthreads();
        /* online softmax: warp w handles heads 2w, 2w+1 */
#pragma unroll
        for (int jj = 0; jj < 2; jj++) {
            const uint32_t g = warp * 2 + jj;
            const float a = ps[lane][g], b = ps[lane + 32][g];
            const float tmax = gptoss_d_warp_max(fmaxf(a, b));
            const float m_new = fmaxf(m_run[jj], tmax);
            float pa = 0.0f, pb = 0.0f, f = 1.0f;
            if (m_new != -INFINITY) {
                pa = expf(a - m_new);
                pb = expf(b - m_new);
                f = expf(m_run[jj] - m_new);
            }
            const float tsum = gptoss_d_warp_sum(pa + pb);
            l_run[jj] = fmaf(l_run[jj], f, tsum);
            m_run[jj] = m_new;
            ps[lane][g] = pa;
            ps[lane + 32][g] = pb;
            if (lane == 0) factor_s[g] = f;
        }
        __syncthreads();
        /* P V */
        {
            float f4[4];
#pragma unroll
            for (int j = 0; j < 4; j++) f4[j] = factor_s[gg * 4 + j];
#pragma unroll
            for (int j = 0; j < 4; j++) acc[j] *= f4[j];
#pragma unroll 8
            for (uint32_t k = 0; k < ntile; k++) {
                const float v = vs[k][od];
                const float4 p4 = *(const float4*) &ps[k][gg * 4];
                acc[0] = fmaf(p4.x, v, acc[0]);
                acc[1] = fmaf(p4.y, v, acc[1]);
                acc[2] = fmaf(p4.z, v, acc[2]);
                acc[3] = fmaf(p4.w, v, acc[3]);
            }
        }
    }
    __syncthreads(); /* bad is final */
    if (bad) {
        if (tid == 0) gptoss_d_set_error(s.paged.error_word, GPTOSS_CUDA_ERROR_KV_ROW);
#pragma unroll
        for (int j = 0; j < 4; j++) acc[j] = __uint_as_float(0x7FC00000u);
#pragma unroll
        for (int jj = 0; jj < 2; jj++) {
            m_run[jj] = 0.0f;
            l_run[jj] = __uint_as_float(0x7FC00000u);
        }
    }
    const size_t stride_chunk = D + 2;
    if (s.nchunks == 1) {
        /* the whole key range in this block: normalise with the sink here (the merge
         * formula with one chunk) */
        __shared__ float ml_s[G][2];
#pragma unroll
        for (int jj = 0; jj < 2; jj++) {
            if (lane == 0) {
                ml_s[warp * 2 + jj][0] = m_run[jj];
                ml_s[warp * 2 + jj][1] = l_run[jj];
            }
        }
        __syncthreads();
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const uint32_t g = gg * 4 + j;
            if (g >= s.group) continue;
            const float S = s.sinks != nullptr ? gptoss_bf16_to_f32(s.sinks[hq0 + g]) : -INFINITY;
            const float m = ml_s[g][0], l = ml_s[g][1];
            const float M = fmaxf(S, m);
            const float f = (M == -INFINITY || m == -INFINITY) ? 0.0f : expf(m - M);
            float denom = fmaf(l, f, 0.0f);
            if (s.sinks != nullptr && M != -INFINITY) denom += expf(S - M);
            const float o = fmaf(acc[j], f, 0.0f);
            s.out[((size_t) i * s.num_q_heads + hq0 + g) * D + od] = normalise(o, denom);
        }
        return;
    }
    /* write the partial of every real head */
#pragma unroll
    for (int j = 0; j < 4; j++) {
        const uint32_t g = gg * 4 + j;
        if (g < s.group) {
            float* part = s.partial + (((size_t) i * s.num_q_heads + hq0 + g) * s.nchunks + chunk) * stride_chunk;
            part[od] = acc[j];
        }
    }
#pragma unroll
    for (int jj = 0; jj < 2; jj++) {
        const uint32_t g = warp * 2 + jj;
        if (g < s.group && lane == 0) {
            float* part = s.partial + (((size_t) i * s.num_q_heads + hq0 + g) * s.nchunks + chunk) * stride_chunk;
            part[D] = m_run[jj];
            part[D + 1] = l_run[jj];
        }
    }

    /* The last chunk block of this (query, KV head) to finish merges the partials with the
     * sink (no second kernel): fence the partials, count, and let the last one read them. */
    if (s.counters == nullptr) return;
    __shared__ uint32_t is_last;
    __threadfence();
    __syncthreads();
    if (tid == 0) is_last = atomicAdd(s.counters + blockIdx.y, 1u) == s.nchunks - 1;
    __syncthreads();
    if (!is_last) return;
    __threadfence();
    if (tid == 0) s.counters[blockIdx.y] = 0; /* zero again for the next call */
    /* warp w merges heads 2w, 2w+1 (the formula of sdpa_merge_kernel): lane c holds chunk
     * c's max and sum (nchunks <= kFusedMergeMaxChunks <= 32); output loads in batches */
#pragma unroll
    for (int jj = 0; jj < 2; jj++) {
        const uint32_t g = warp * 2 + jj;
        if (g >= s.group) continue;
        const uint32_t row = i * s.num_q_heads + hq0 + g;
        const float* part = s.partial + (size_t) row * s.nchunks * stride_chunk;
        const float S = s.sinks != nullptr ? gptoss_bf16_to_f32(s.sinks[hq0 + g]) : -INFINITY;
        const bool has = lane < s.nchunks;
        const float mc = has ? __ldcg(part + (size_t) lane * stride_chunk + D) : -INFINITY;
        const float lc = has ? __ldcg(part + (size_t) lane * stride_chunk + D + 1) : 0.0f;
        const float M = fmaxf(S, gptoss_d_warp_max(mc));
        const float f = (M == -INFINITY || mc == -INFINITY) ? 0.0f : expf(mc - M);
        float denom = gptoss_d_warp_sum(fmaf(lc, f, 0.0f));
        if (s.sinks != nullptr && M != -INFINITY) denom += expf(S - M);
        float o0 = 0.0f, o1 = 0.0f;
        for (uint32_t c0 = 0; c0 < s.nchunks; c0 += 8) { /* 16 loads in flight per batch */
            float v0[8], v1[8];
#pragma unroll
            for (int c = 0; c < 8; c++) {
                if (c0 + c < s.nchunks) {
                    v0[c] = __ldcg(part + (size_t) (c0 + c) * stride_chunk + lane);
                    v1[c] = __ldcg(part + (size_t) (c0 + c) * stride_chunk + lane + 32);
                }
            }
#pragma unroll
            for (int c = 0; c < 8; c++) {
                const float fc = __shfl_sync(0xFFFFFFFFu, f, (c0 + c) & 31u);
                if (c0 + c < s.nchunks) {
                    o0 = fmaf(v0[c], fc, o0);
                    o1 = fmaf(v1[c], fc, o1);
                }
            }
        }
        float* o = s.out + (size_t) row * D;
        o[lane] = normalise(o0, denom);
        o[lane + 32] = normalise(o1, denom);
    }
}

/* One 256-thread block per (query, Q head): combines the chunk partials with the sink.
 * Chunks are read in parallel (fixed order of combination: deterministic). */
constexpr int MERGE_THREADS = 256;
__global__ void __launch_bounds__(MERGE_THREADS) sdpa_merge_kernel(const float* partial, const uint16_t* sinks,
                                                                  float* out, uint32_t num_q_tokens,
                                                                  uint32_t num_q_heads, uint32_t nchunks) {
    __shared__ float red[32];
    __shared__ float o_part[MERGE_THREADS / D][D];
    extern __shared__ float f_s[]; /* nchunks factors */
    gptoss_d_pdl_trigger();
    gptoss_d_pdl_wait();
    const uint32_t row = blockIdx.x; /* i * Hq + hq */
    const uint32_t tid = threadIdx.x;
    const float* part = partial + (size_t) row * nchunks * (D + 2);
    const float S = sinks != nullptr ? gptoss_bf16_to_f32(sinks[row % num_q_heads]) : -INFINITY;
    float m = -INFINITY;
    for (uint32_t c = tid; c < nchunks; c += MERGE_THREADS) m = fmaxf(m, part[(size_t) c * (D + 2) + D]);
    m = gptoss_d_warp_max(m);
    if ((tid & 31) == 0) red[tid >> 5] = m;
    __syncthreads();
    float M = S;
    for (int w = 0; w < MERGE_THREADS / 32; w++) M = fmaxf(M, red[w]);
    __syncthreads();
    float lsum = 0.0f;
    for (uint32_t c = tid; c < nchunks; c += MERGE_THREADS) {
        const float mc = part[(size_t) c * (D + 2) + D];
        const float f = (M == -INFINITY || mc == -INFINITY) ? 0.0f : expf(mc - M);
        f_s[c] = f;
        lsum = fmaf(part[(size_t) c * (D + 2) + D + 1], f, lsum);
    }
    float denom = gptoss_d_block_sum(lsum, red); /* includes a barrier: f_s complete */
    if (sinks != nullptr && M != -INFINITY) denom += expf(S - M);
    const uint32_t d = tid % D, q = tid / D;
    float o = 0.0f;
    for (uint32_t c = q; c < nchunks; c += MERGE_THREADS / D) o = fmaf(part[(size_t) c * (D + 2) + d], f_s[c], o);
    o_part[q][d] = o;
    __syncthreads();
    if (tid < D) {
        float acc = 0.0f;
        for (int k = 0; k < MERGE_THREADS / D; k++) acc += o_part[k][tid];
        out[(size_t) row * D + tid] = normalise(acc, denom);
    }
}

/* Generic: one warp per (query i, Q head hq); any head_dim (multiple of 4), any GQA. */
__global__ void sdpa_generic_kernel(const float* q, const float* kv, const uint16_t* sinks, float* out,
                                    uint32_t window, uint64_t kv_stride, uint32_t num_q_tokens, uint32_t num_kv_tokens,
                                    uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim, float scale,
                                    gptoss_paged_keys paged) {
    const uint32_t warp_global = (blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const uint32_t lane = threadIdx.x % 32;
    if (warp_global >= num_q_tokens * num_q_heads) return;
    const uint32_t i = warp_global / num_q_heads, hq = warp_global % num_q_heads;
    const uint32_t h = hq / (num_q_heads / num_kv_heads);
    const uint32_t qkv_dim = head_dim * (num_q_heads + 2 * num_kv_heads);
    const float* qr = q + (size_t) i * qkv_dim + (size_t) hq * head_dim;
    float* o = out + (size_t) i * num_q_heads * head_dim + (size_t) hq * head_dim;
    const float* kvh = kv + (size_t) h * kv_stride;
    uint32_t P, lo, len;
    const uint32_t* table;
    bool ok = row_keys(paged, i, num_kv_tokens, P, table);
    if (ok) {
        key_range(P, window, lo, len);
        if (table != nullptr) {
            for (uint32_t t = lo; t <= P && ok; t++) ok = key_row(paged, table, kvh, t, head_dim) != nullptr;
        }
    }
    if (!ok) {
        if (lane == 0) gptoss_d_set_error(paged.error_word, GPTOSS_CUDA_ERROR_KV_ROW);
        for (uint32_t d = lane; d < head_dim; d += 32) o[d] = __uint_as_float(0x7FC00000u);
        return;
    }
    /* pass 1: max; pass 2: sums (two passes keep the arithmetic simple) */
    const float S = sinks != nullptr ? gptoss_bf16_to_f32(sinks[hq]) : -INFINITY;
    float M = S;
    for (uint32_t t = lo; t <= P; t++) {
        const float* k = key_row(paged, table, kvh, t, head_dim);
        float dot = 0.0f;
        for (uint32_t d = lane; d < head_dim; d += 32) dot = fmaf(qr[d], k[d], dot);
        dot = gptoss_d_warp_sum(dot) * scale;
        M = fmaxf(M, dot);
    }
    float denom = (sinks != nullptr && M != -INFINITY) ? expf(S - M) : 0.0f;
    for (uint32_t d = lane; d < head_dim; d += 32) o[d] = 0.0f;
    __syncwarp();
    if (M == -INFINITY) return;
    for (uint32_t t = lo; t <= P; t++) {
        const float* k = key_row(paged, table, kvh, t, head_dim);
        float dot = 0.0f;
        for (uint32_t d = lane; d < head_dim; d += 32) dot = fmaf(qr[d], k[d], dot);
        dot = gptoss_d_warp_sum(dot) * scale;
        const float p = expf(dot - M);
        denom += p;
        const float* v = k + head_dim;
        for (uint32_t d = lane; d < head_dim; d += 32) o[d] = fmaf(p, v[d], o[d]);
    }
    __syncwarp();
    for (uint32_t d = lane; d < head_dim; d += 32) o[d] = normalise(o[d], denom);
    (void) len;
}

/* The launches of one call: q rows with their keys (paged.positions nullptr: f32_sdpa, rows
 * at num_kv_tokens + i); chunk = 0: chosen by the number of rows (f32_sdpa), else the
 * chunk length in keys (a multiple of TK) for the fast path. */
enum gptoss_status sdpa_launch(gptoss_backend_t backend, const float* q, const float* kv, const gptoss_bf16* sinks,
                               float* output, uint32_t window, uint64_t kv_stride, uint32_t num_q_tokens,
                               uint32_t num_kv_tokens, uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim,
                               float scale, const gptoss_paged_keys& paged, uint64_t max_len, uint64_t chunk) {
    const cudaStream_t stream = gptoss_cuda_stream(backend);
    const uint32_t group = num_q_heads / num_kv_heads;
    const uint64_t warps = (uint64_t) num_q_tokens * num_q_heads;
    const bool fast = head_dim == D && group <= (uint32_t) G && gptoss_aligned(q, 16) && gptoss_aligned(kv, 16) &&
                      kv_stride % 4 == 0 && (uint64_t) num_q_tokens * num_kv_heads <= GPTOSS_CUDA_MAX_GRID_YZ &&
                      (uint64_t) num_q_tokens * num_q_heads <= 0x7FFFFFFFu;
    if (!fast) {
        const uint64_t blocks = (warps * 32 + 255) / 256;
        sdpa_generic_kernel<<<(unsigned) blocks, 256, 0, stream>>>(q, kv, (const uint16_t*) sinks, output, window,
                                                                   kv_stride, num_q_tokens, num_kv_tokens,
                                                                   num_q_heads, num_kv_heads, head_dim, scale, paged);
        GPTOSS_CUDA_LAUNCHED("f32_sdpa (generic)");
        return gptoss_status_success;
    }
    const uint64_t pairs = (uint64_t) num_q_tokens * num_kv_heads;
    if (chunk == 0) {
        const uint64_t target_blocks = (uint64_t) gptoss_cuda_num_sms(backend) * 8;
        uint64_t want_chunks = (target_blocks + pairs - 1) / pairs;
        if (want_chunks < 1) want_chunks = 1;
        if (want_chunks > kMaxChunks) want_chunks = kMaxChunks; /* merge factors in shared memory */
        chunk = (max_len + want_chunks - 1) / want_chunks;
        chunk = (chunk + TK - 1) / TK * TK;
        if (chunk < (uint64_t) TK) chunk = TK;
    }
    const uint64_t nchunks = (max_len + chunk - 1) / chunk;

    SdpaShape s;
    s.q = q;
    s.kv = kv;
    s.kv_stride = kv_stride;
    s.window = window;
    s.num_q_tokens = num_q_tokens;
    s.num_kv_tokens = num_kv_tokens;
    s.num_q_heads = num_q_heads;
    s.num_kv_heads = num_kv_heads;
    s.group = group;
    s.qkv_dim = head_dim * (num_q_heads + 2 * num_kv_heads);
    s.chunk = (uint32_t) chunk;
    s.nchunks = (uint32_t) nchunks;
    s.scale = scale;
    s.paged = paged;
    /* few chunks: the last chunk block merges (one launch; counters pick it); many: a merge
     * kernel spreads the combination over one block per Q head (a single block would
     * serialise it) */
    const bool fused = nchunks <= kFusedMergeMaxChunks;
    void* partial = nullptr;
    s.counters = nullptr;
    const enum gptoss_status status = gptoss_cuda_scratch_acquire(
        backend, (size_t) num_q_tokens * num_q_heads * nchunks * (D + 2) * sizeof(float), &partial, (size_t) pairs,
        fused && nchunks > 1 ? &s.counters : nullptr);
    if (status != gptoss_status_success) return status;
    s.partial = (float*) partial;
    s.sinks = (const uint16_t*) sinks;
    s.out = output;
    cudaError_t err = gptoss_cuda_launch_pdl(backend, sdpa_chunk_kernel, dim3((unsigned) nchunks, (unsigned) pairs),
                                             dim3(THREADS), 0, s);
    if (err == cudaSuccess && !fused) {
        err = gptoss_cuda_launch_pdl(backend, sdpa_merge_kernel, dim3((unsigned) warps), dim3(MERGE_THREADS),
                                     nchunks * sizeof(float), (const float*) s.partial, (const uint16_t*) sinks,
                                     output, num_q_tokens, num_q_heads, (uint32_t) nchunks);
    }
    gptoss_cuda_scratch_release(backend);
    if (err != cudaSuccess) return gptoss_cuda_fail(err, "launch of f32_sdpa");
    return gptoss_status_success;
}

}  // namespace

extern "C" enum gptoss_status gptoss_cuda_f32_sdpa(gptoss_backend_t backend, const struct gptoss_f32_sdpa_args* args) {
    /* longest key range over the queries */
    const uint64_t p_max1 = (uint64_t) args->num_kv_tokens + args->num_q_tokens;
    const uint64_t max_len = p_max1 < args->window ? p_max1 : args->window;
    const gptoss_paged_keys plain = {};
    return sdpa_launch(backend, args->q, args->kv, args->sinks, args->output, args->window, args->kv_stride,
                       args->num_q_tokens, args->num_kv_tokens, args->num_q_heads, args->num_kv_heads, args->head_dim,
                       args->scale, plain, max_len, 0);
}

/* Chunk length of the varlen fast path, from the bound on a row's key range alone (never from
 * the rows: batch invariance): kVarlenChunk keys, or more when the bound would need more
 * than kMaxChunks of them. */
constexpr uint64_t kVarlenChunk = 256;

extern "C" enum gptoss_status gptoss_cuda_f32_sdpa_varlen(gptoss_backend_t backend,
                                                          const struct gptoss_f32_sdpa_varlen_args* args) {
    gptoss_paged_keys paged;
    paged.positions = args->positions;
    paged.seq_ids = args->seq_ids;
    paged.block_tables = args->block_tables;
    paged.block_size = args->block_size;
    paged.table_stride = args->table_stride;
    paged.num_seqs = args->num_seqs;
    paged.num_blocks = args->kv_stride / (2 * (uint64_t) args->head_dim * args->block_size);
    paged.error_word = gptoss_cuda_error_word(backend);
    const uint64_t positions = (uint64_t) args->table_stride * args->block_size;
    const uint64_t max_len = positions < args->window ? positions : args->window;
    uint64_t chunk = kVarlenChunk;
    if ((max_len + chunk - 1) / chunk > kMaxChunks) chunk = ((max_len + kMaxChunks - 1) / kMaxChunks + TK - 1) / TK * TK;
    return sdpa_launch(backend, args->q, args->kv, args->sinks, args->output, args->window, args->kv_stride,
                       args->num_q_tokens, 0, args->num_q_heads, args->num_kv_heads, args->head_dim, args->scale,
                       paged, max_len, chunk);
}
