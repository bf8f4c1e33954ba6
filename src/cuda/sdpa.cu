/* Scaled dot-product attention with sinks, sliding window and GQA over the KV cache.
 *
 * Fast path (head_dim 64, up to 8 Q heads per KV head): flash-decoding. The keys of every
 * (query row, KV head) are split into chunks; a task is one chunk of one (row, KV head), run
 * by a 128-thread block for all Q heads of the KV head (a quarter of the chunk's keys a
 * warp, copied into a ring of the warp's own, online softmax per warp, the warps merged in
 * order), which leaves a partial (max, sum, unnormalised output) per Q head. A row of one
 * chunk is normalised with the sink by its task; up to 16 chunks the last task of the (row, KV head) to finish merges the partials
 * (one launch); more are merged by the merge kernel, one block per (row, Q head), which
 * spreads the combination instead of serialising it in one block (the measurements behind
 * the threshold: docs/CUDA_NOTES.md). Other shapes run a one-warp-per-(row, Q head) kernel.
 * Prefill chunks (calls of 32 rows or more) run on tensor cores instead, in groups of rows
 * of one sequence (sdpa_prefill_tc_kernel below); the other rows of such a call stay here.
 *
 * Batch invariance: a row's arithmetic (its chunk length and count, the tile order within a
 * chunk, which merge combines its partials and in what order) follows from the row's own
 * key count (position and window) and the head shape alone (row_chunk), never from the
 * other rows, the SM count or the capacity of the call (and from whether its row group
 * runs on the tensor-core prefill, which depends on the call: see there). A launch has a fixed number of
 * blocks that take the tasks of all its rows in turn (a prefix sum of the rows' task counts,
 * computed by every block, maps a task number to its row): which block runs a task changes
 * nothing. f32_sdpa (row i at position num_kv_tokens + i, key t at row t of the head) and
 * f32_sdpa_varlen (each row's position, sequence and block table: a key's cache slot
 * through the table, gptoss_kv_pages) run the same kernels.
 *
 * Calls are run in slices of at most kSliceRows rows whose partials fit kScratchBudget
 * (rows are independent: slicing changes no result). Varlen rows whose sequence, position
 * or read table entries are out of range give NaN and GPTOSS_CUDA_ERROR_KV_ROW. */
#include "cuda/matmul.cuh"
#include "cuda/paged.cuh"

namespace {

constexpr int D = 64;       /* head_dim of the fast path */
constexpr int G = 8;        /* Q heads per KV head handled by a block (padded) */
constexpr int TK = 64;      /* keys per tile */
constexpr int THREADS = 128;
constexpr uint32_t kPartialFloats = D + 2; /* a partial: o[D], m, l */
/* Up to this many chunks the last task of a (row, KV head) merges (lane c of a warp holds
 * chunk c: at most 32). */
constexpr uint32_t kFusedMergeMaxChunks = 16;
/* Rows of one launch: the prefix sum of their task counts is kept in shared memory. */
constexpr uint32_t kSliceRows = 512;
/* Scratch for the partials of one launch: 62 rows of the engine's 131,072-position full
 * attention layers (8.65 MB a row: 64 Q heads x 512 chunks x 66 floats), 248 rows where a
 * row has at most 128 chunks (a key bound of 32,768). */
constexpr uint64_t kScratchBudget = (uint64_t) 512 << 20;
/* The chunk kernel's warps, and each warp's group of keys: kSteps steps of two keys (one a
 * half-warp). */
constexpr int kWarps = THREADS / 32;
constexpr int kSteps = 2;
constexpr uint32_t kGroupKeys = 2 * kSteps;
constexpr int kRing = 4; /* groups a warp's copies run ahead: kRing - 1 */

/* Keys per chunk of a row that attends `len` keys (the only input: batch invariance).
 * Up to 8,192 keys, chunks of one tile (at most 128 chunks): short rows are latency-bound,
 * and one-tile tasks fill the card soonest (65 one-tile chunks + the merge kernel took
 * 17.6 us at 4,097 keys vs 20.4 for 22 three-tile chunks merged in one block,
 * docs/CUDA_NOTES.md; main's f32_sdpa ran the same 65 at one row). Then 2 tiles up to
 * 16,384 keys and 4 tiles (256 keys) beyond, where a chunk's partials (66 floats per Q
 * head, written and read) are 3% of the bytes of its keys (13% with one-tile chunks); for
 * the 8 KV heads of gpt-oss 32,768 / 131,072 keys are 1,024 / 4,096 tasks (2 / 8 per block
 * of an H200's 528 resident ones). Past 2^20 keys the chunk doubles, so that a row never has more than 4,096
 * chunks (bounded scratch). A sliding window of 128 keys is 2 one-tile chunks. */
__host__ __device__ __forceinline__ uint32_t row_chunk(uint64_t len) {
    uint32_t c = TK;
    while (c < 4 * TK && len > (uint64_t) 128 * c) c *= 2;
    while (len > (uint64_t) 4096 * c) c *= 2;
    return c;
}

/* The most chunks a row of at most max_len keys can have (row_chunk): the partial slots
 * per (row, Q head). */
static uint64_t max_row_chunks(uint64_t max_len) {
    if (max_len <= 32768) return max_len < 8192 ? (max_len + TK - 1) / TK : 128;
    const uint64_t n = (max_len + 4 * TK - 1) / (4 * TK);
    return n < 4096 ? n : 4096;
}

struct SdpaShape {
    const float* q;
    const float* kv;
    float* partial;     /* [num_rows][num_q_heads][slots][kPartialFloats] */
    uint32_t* counters; /* [num_rows * num_kv_heads], zero: finished tasks of a (row, KV
                         * head) with 2..kFusedMergeMaxChunks chunks; reset by the last */
    const uint16_t* sinks;
    float* out;
    uint64_t kv_stride;
    uint32_t window;
    uint32_t num_rows;
    uint32_t first_position; /* plain (paged.positions == nullptr): row i at first_position + i */
    uint32_t num_q_heads, num_kv_heads, group, qkv_dim;
    uint32_t slots; /* partial slots per (row, Q head): max_row_chunks of the call's key bound */
    float scale;
    gptoss_kv_pages paged;
    /* the tensor-core prefill (sdpa_prefill_tc_kernel): tc != 0 when the call's row groups
     * may run there; a group is tc_rows consecutive call rows (Q heads per KV head rounded
     * up to 1 << tc_gp_shift); tc_row0 = the call row of this shape's row 0 (a slice),
     * tc_call_rows = the call's rows */
    uint32_t tc, tc_rows, tc_gp_shift, tc_row0, tc_call_rows;
    float tc_scale_log2; /* scale * log2(e) */
    /* a launch of the tensor-core prefill: groups tc_g0 .. tc_g0 + tc_ng - 1; the partials
     * of rows whose keys span chunks, [launch row][num_q_heads][tc_slots][kPartialFloats];
     * two counters (tasks drawn, blocks finished), zero before and after */
    uint32_t tc_g0, tc_ng, tc_slots;
    float* tc_partial;
    uint32_t* tc_counters;
};

/* Row i's keys lo .. lo + len - 1 (max(0, P + 1 - window) .. P) and its table row (nullptr:
 * plain, key t at row t of the head); false for a varlen row out of range (len 0). */
__device__ __forceinline__ bool row_keys(const SdpaShape& s, uint32_t i, uint32_t& lo, uint32_t& len,
                                         const uint32_t*& table) {
    uint32_t P;
    table = nullptr;
    lo = len = 0;
    if (s.paged.positions == nullptr) {
        P = s.first_position + i;
    } else if (!gptoss_d_kv_row(s.paged, i, P, table)) {
        return false;
    }
    const uint64_t p1 = (uint64_t) P + 1; /* len <= window < 2^32 when lo > 0, else len = P + 1 <= window */
    lo = p1 > s.window ? (uint32_t) (p1 - s.window) : 0u;
    len = (uint32_t) (p1 - lo);
    return true;
}

/* Chunks of a row (a row out of range: one, whose task writes its NaN output). */
__device__ __forceinline__ uint32_t row_chunks(bool ok, uint32_t len) {
    if (!ok) return 1;
    const uint32_t c = row_chunk(len);
    return (uint32_t) (((uint64_t) len + c - 1) / c);
}

/* Whether row group grp of the call (call rows grp * tc_rows ..) runs on the tensor-core
 * prefill kernel: the call's groups may (s.tc), and the group's rows are one sequence at
 * consecutive positions, all in range (a plain call: always). Read the same way by every
 * kernel of a call, whatever its slice. */
__device__ __forceinline__ bool tc_group(const SdpaShape& s, uint32_t grp) {
    if (!s.tc) return false;
    if (s.paged.positions == nullptr) return true;
    const uint64_t c0 = (uint64_t) grp * s.tc_rows;
    const uint32_t n = (uint32_t) min((uint64_t) s.tc_rows, (uint64_t) s.tc_call_rows - c0);
    const uint32_t* pos = s.paged.positions - s.tc_row0; /* call row c at pos[c] */
    const uint32_t* ids = s.paged.seq_ids - s.tc_row0;
    const uint32_t seq = ids[c0];
    const uint64_t p0 = pos[c0];
    if (seq >= s.paged.num_seqs || (p0 + n - 1) / s.paged.block_size >= s.paged.table_stride) return false;
    for (uint32_t r = 1; r < n; r++) {
        if (ids[c0 + r] != seq || (uint64_t) pos[c0 + r] != p0 + r) return false;
    }
    return true;
}

/* Whether row i of this shape (a slice's row) runs on the tensor-core prefill kernel. */
__device__ __forceinline__ bool tc_row(const SdpaShape& s, uint32_t i) {
    return s.tc && tc_group(s, (s.tc_row0 + i) / s.tc_rows);
}

/* o / denom; 0 when nothing was attended (denom 0), NaN when denom is NaN (a NaN score, or
 * a varlen row out of range) */
__device__ __forceinline__ float normalise(float o, float denom) {
    return denom > 0.0f ? o / denom : (denom != denom ? denom : 0.0f);
}

/* first_task[i] = tasks (chunks x KV heads) of rows 0 .. i-1, for i <= num_rows; returns the
 * total, and in most_chunks the most chunks of a row. Each thread sums 4 consecutive rows,
 * then a scan over the 128 threads. */
__device__ uint32_t task_offsets(const SdpaShape& s, uint32_t* first_task, uint32_t* warp_total, uint32_t* warp_most,
                                 uint32_t& most_chunks) {
    constexpr uint32_t kPer = kSliceRows / THREADS;
    const uint32_t tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
    uint32_t counts[kPer], sum = 0, most = 0;
#pragma unroll
    for (uint32_t r = 0; r < kPer; r++) {
        const uint32_t i = tid * kPer + r;
        uint32_t lo, len;
        const uint32_t* table;
        counts[r] = 0;
        if (i < s.num_rows && !tc_row(s, i)) {
            const bool ok = row_keys(s, i, lo, len, table);
            const uint32_t n = row_chunks(ok, len);
            counts[r] = n * s.num_kv_heads;
            most = max(most, n);
        }
        sum += counts[r];
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) most = max(most, __shfl_xor_sync(0xFFFFFFFFu, most, o));
    uint32_t incl = sum; /* inclusive scan over the warp */
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const uint32_t v = __shfl_up_sync(0xFFFFFFFFu, incl, o);
        if (lane >= (uint32_t) o) incl += v;
    }
    if (lane == 31) {
        warp_total[warp] = incl;
        warp_most[warp] = most;
    }
    __syncthreads();
    uint32_t base = incl - sum, total = 0;
    most_chunks = 0;
    for (uint32_t w = 0; w < THREADS / 32; w++) {
        if (w < warp) base += warp_total[w];
        total += warp_total[w];
        most_chunks = max(most_chunks, warp_most[w]);
    }
    /* every thread has read warp_total before any writes first_task: without this barrier
     * compute-sanitizer racecheck reports read/write hazards between the two in the
     * harness's sdpa_varlen_fault_* cases (docs/CUDA_NOTES.md, 2026-12-05) */
    __syncthreads();
#pragma unroll
    for (uint32_t r = 0; r < kPer; r++) {
        first_task[tid * kPer + r] = base;
        base += counts[r];
    }
    if (tid == 0) first_task[kSliceRows] = total;
    __syncthreads();
    return total;
}

__global__ void __launch_bounds__(THREADS, 4) sdpa_chunk_kernel(SdpaShape s) {
    __shared__ __align__(16) float4 ring[kWarps][kRing][kGroupKeys][2 * D / 4]; /* K | V of kRing groups, by warp */
    __shared__ __align__(16) float pw[kWarps][kGroupKeys][G]; /* a group's probabilities, by warp */
    __shared__ __align__(16) float fw[kWarps][G];              /* a group's rescale factors, by warp */
    __shared__ __align__(16) float ow[kWarps][G][D];           /* the warps' outputs, merged at the end */
    __shared__ float mlw[kWarps][G][2];                        /* the warps' (max, sum) */
    __shared__ float ml_s[G][2];
    __shared__ uint32_t first_task[kSliceRows + 1];   /* task_offsets */
    __shared__ uint32_t warp_total[THREADS / 32], warp_most[THREADS / 32];
    __shared__ uint32_t is_last;

    gptoss_d_pdl_trigger();
    gptoss_d_pdl_wait();
    const uint32_t tid = threadIdx.x;
    uint32_t most;
    const uint32_t total = task_offsets(s, first_task, warp_total, warp_most, most);
    /* Task order. Row-major (a row's KV heads, then its chunks; row after row) or, when the
     * rows have about as many chunks each (at least half of the slots of most x rows x
     * KV heads are tasks: a prefill chunk, many decode rows of similar lengths),
     * chunk-major (chunk c of every (KV head, row): the blocks resident at once read the
     * same keys, which stay in L2 for all the rows; row-major, each row of a long prefill
     * streamed its whole K/V from memory again). Which block runs a task, and when,
     * changes no result. */
    const uint32_t rows_x_heads = s.num_rows * s.num_kv_heads;
    const uint64_t grid_slots = (uint64_t) most * rows_x_heads;
    const bool chunk_major = s.num_rows > 1 && 2ull * total >= grid_slots && grid_slots <= 0xFFFFFFFFull;
    const uint32_t work_items = chunk_major ? (uint32_t) grid_slots : total;
    /* the merged output's layout (the epilogue's): dim od = tid % 64 of heads gg * 4 ..
     * gg * 4 + 3; the running max / sum of head g kept by warp g / 2 (in all its lanes) */
    const uint32_t gg = tid / D, od = tid % D;
    const uint32_t warp = tid / 32, lane = tid % 32;

    for (uint32_t work = blockIdx.x; work < work_items; work += gridDim.x) {
        uint32_t i = 0, h, chunk;
        if (chunk_major) {
            /* work = (chunk * KV heads + h) * rows + i; nothing past the row's chunks */
            chunk = work / rows_x_heads;
            h = work / s.num_rows % s.num_kv_heads;
            i = work % s.num_rows;
            if (chunk * s.num_kv_heads >= first_task[i + 1] - first_task[i]) continue; /* block-uniform */
        } else {
            /* the row: first_task[i] <= work < first_task[i + 1] (every row has tasks) */
            uint32_t hi = s.num_rows;
            while (hi - i > 1) {
                const uint32_t mid = (i + hi) / 2;
                if (first_task[mid] <= work) {
                    i = mid;
                } else {
                    hi = mid;
                }
            }
            h = (work - first_task[i]) % s.num_kv_heads;
            chunk = (work - first_task[i]) / s.num_kv_heads;
        }
        uint32_t lo, len;
        const uint32_t* table;
        const bool ok = row_keys(s, i, lo, len, table);
        const uint32_t n = row_chunks(ok, len);
        const uint32_t clen_max = ok ? row_chunk(len) : 0;
        const uint64_t begin = (uint64_t) chunk * clen_max; /* first key of the chunk, relative to lo */
        const uint32_t clen = ok ? (uint32_t) (len - begin < clen_max ? len - begin : clen_max) : 0;
        const uint32_t key0 = lo + (uint32_t) begin; /* <= P: no wrap */
        const uint32_t hq0 = h * s.group;
        int bad = !ok; /* this thread met a row or table entry out of range */

        /* The chunk's keys by warp: warp w takes keys [kb, ke) = [w W, (w + 1) W) of the chunk
         * (W: a quarter, rounded up to whole groups), each with its own online softmax; the
         * four warps' (max, sum, output) are merged in a fixed order at the end. A group is
         * kGroupKeys keys in kSteps steps; in a step half-warp hw takes one key, lane sl of it
         * dims 4 sl .. 4 sl + 3 of Q (every head, in registers) and of the key's K and V,
         * which the lane itself copies by cp.async into its warp's ring kRing - 1 groups
         * ahead (no registers held for loads in flight, no block barrier in the loop; the
         * same loads into registers one group ahead spent half their stalls waiting on
         * memory: docs/CUDA_NOTES.md). A score is each lane's 4-dim dot products, then a
         * reduce-scatter over the 16 lanes (8 shuffles and adds for 8 heads: lane sl's Q
         * registers are in the order of head j ^ (sl >> 1), so that every level keeps its
         * first half and adds the partner's second half), which leaves head sl >> 1's score
         * in lanes sl and sl ^ 1. The
         * probabilities go through the warp's shared memory to the P V step, where each lane
         * accumulates its 4 dims of every head. A group that raises no head's maximum skips
         * the rescale (a factor of exactly 1). The order of every sum follows from the row's
         * own keys alone (batch invariance, as above). */
        const uint32_t hw = lane >> 4, sl = lane & 15u, mh = sl >> 1;
        const uint32_t wkeys = ((clen + 3u) / 4u + kGroupKeys - 1u) / kGroupKeys * kGroupKeys;
        const uint32_t kb = min(warp * wkeys, clen), nkeys = min(kb + wkeys, clen) - kb;
        float4 qr[G];
#pragma unroll
        for (int j = 0; j < G; j++) {
            const uint32_t g = (uint32_t) j ^ mh;
            const float* qp = s.q + (size_t) i * s.qkv_dim + (size_t) (hq0 + g) * D + 4u * sl;
            qr[j] = g < s.group ? make_float4(qp[0], qp[1], qp[2], qp[3]) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
        float4 acc8[G];
#pragma unroll
        for (int j = 0; j < G; j++) acc8[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        float mw = -INFINITY, lw = 0.0f; /* head mh's running max and sum in this warp */
        const float4* kv_lane = (const float4*) (s.kv + (size_t) h * s.kv_stride) + sl; /* a key's K dims 4 sl .. */
        /* the cache slot of the warp's key 32 win + lane (slots a window ahead) */
        auto lookup = [&](uint32_t win) -> uint64_t {
            const uint32_t r = 32u * win + lane;
            if (r >= nkeys) return 0;
            const uint32_t t = key0 + kb + r;
            uint64_t slot = t;
            if (table != nullptr && !gptoss_d_kv_slot(s.paged, table, t, slot)) {
                slot = 0; /* slot 0 exists (num_blocks >= 1); the chunk's values become NaN */
                bad = 1;
            }
            return slot;
        };
        if (nkeys > 0) { /* warp-uniform */
            uint64_t slotw = lookup(0), slotn = nkeys > 32u ? lookup(1) : 0;
            /* step st of the group at g0: key g0 + 2 st + hw of the warp's keys; its K and V
             * (this lane's 16 bytes of each) by cp.async into the warp's ring, stage
             * (g0 / kGroupKeys) % kRing; only this lane reads them back, so its own waits
             * order the copies and the reads (the warp's ring has no barrier) */
            auto issue = [&](uint32_t g0) {
                if (g0 % 32u == 0 && g0 > 0) { /* the next window's slots, and the one after's lookups */
                    slotw = slotn;
                    if (g0 + 32u < nkeys) slotn = lookup(g0 / 32u + 1u);
                }
                float4(*stage)[2 * D / 4] = ring[warp][g0 / kGroupKeys % kRing];
#pragma unroll
                for (int st = 0; st < kSteps; st++) {
                    const uint32_t key = g0 + 2u * (uint32_t) st + hw;
                    const uint64_t slot = __shfl_sync(0xFFFFFFFFu, slotw, (key % 32u));
                    const uint32_t bytes = key < nkeys ? 16u : 0u; /* zeros past the warp's keys */
                    const float4* src = kv_lane + slot * (2 * D / 4);
                    gptoss_d_cp_async16_zfill(&stage[2 * st + hw][sl], src, bytes);
                    gptoss_d_cp_async16_zfill(&stage[2 * st + hw][D / 4 + sl], src + D / 4, bytes);
                }
            };
#pragma unroll
            for (uint32_t q = 0; q + 1 < (uint32_t) kRing; q++) {
                if (q * kGroupKeys < nkeys) issue(q * kGroupKeys);
                gptoss_d_cp_async_commit();
            }
            for (uint32_t g0 = 0; g0 < nkeys; g0 += kGroupKeys) {
                const uint32_t ga = g0 + (kRing - 1) * kGroupKeys; /* kRing - 1 groups ahead */
                if (ga < nkeys) issue(ga);
                gptoss_d_cp_async_commit();
                gptoss_d_cp_async_wait<kRing - 1>(); /* this lane's copies of this group landed */
                const float4(*stage)[2 * D / 4] = ring[warp][g0 / kGroupKeys % kRing];
                float4 kr[kSteps], vr[kSteps];
#pragma unroll
                for (int st = 0; st < kSteps; st++) kr[st] = stage[2 * st + hw][sl];
                float sc[kSteps];
#pragma unroll
                for (int st = 0; st < kSteps; st++) {
                    float v[G];
#pragma unroll
                    for (int j = 0; j < G; j++) {
                        v[j] = qr[j].x * kr[st].x;
                        v[j] = fmaf(qr[j].y, kr[st].y, v[j]);
                        v[j] = fmaf(qr[j].z, kr[st].z, v[j]);
                        v[j] = fmaf(qr[j].w, kr[st].w, v[j]);
                    }
#pragma unroll
                    for (int j = 0; j < 4; j++) v[j] += __shfl_xor_sync(0xFFFFFFFFu, v[j + 4], 8);
#pragma unroll
                    for (int j = 0; j < 2; j++) v[j] += __shfl_xor_sync(0xFFFFFFFFu, v[j + 2], 4);
                    v[0] += __shfl_xor_sync(0xFFFFFFFFu, v[1], 2);
                    v[0] += __shfl_xor_sync(0xFFFFFFFFu, v[0], 1);
                    sc[st] = g0 + 2u * (uint32_t) st + hw < nkeys ? v[0] * s.scale : -INFINITY;
                }
#pragma unroll
                for (int st = 0; st < kSteps; st++) vr[st] = stage[2 * st + hw][D / 4 + sl];
                float mx = sc[0];
#pragma unroll
                for (int st = 1; st < kSteps; st++) mx = fmaxf(mx, sc[st]);
                mx = fmaxf(mx, __shfl_xor_sync(0xFFFFFFFFu, mx, 16));
                const float m_new = fmaxf(mw, mx);
                float p[kSteps], f = 1.0f;
#pragma unroll
                for (int st = 0; st < kSteps; st++) p[st] = 0.0f;
                if (m_new != -INFINITY) {
#pragma unroll
                    for (int st = 0; st < kSteps; st++) p[st] = expf(sc[st] - m_new);
                    f = expf(mw - m_new);
                }
                float psum = p[0];
#pragma unroll
                for (int st = 1; st < kSteps; st++) psum += p[st];
                psum += __shfl_xor_sync(0xFFFFFFFFu, psum, 16);
                lw = fmaf(lw, f, psum);
                mw = m_new;
                if ((sl & 1u) == 0) {
#pragma unroll
                    for (int st = 0; st < kSteps; st++) pw[warp][2 * st + hw][mh] = p[st];
                    if (hw == 0) fw[warp][mh] = f;
                }
                __syncwarp();
                if (__any_sync(0xFFFFFFFFu, f != 1.0f)) {
                    const float4 f0 = *(const float4*) &fw[warp][0], f1 = *(const float4*) &fw[warp][4];
                    const float ff[G] = {f0.x, f0.y, f0.z, f0.w, f1.x, f1.y, f1.z, f1.w};
#pragma unroll
                    for (int j = 0; j < G; j++) {
                        acc8[j].x *= ff[j];
                        acc8[j].y *= ff[j];
                        acc8[j].z *= ff[j];
                        acc8[j].w *= ff[j];
                    }
                }
#pragma unroll
                for (int st = 0; st < kSteps; st++) {
                    const float4 p0 = *(const float4*) &pw[warp][2 * st + hw][0];
                    const float4 p1 = *(const float4*) &pw[warp][2 * st + hw][4];
                    const float pp[G] = {p0.x, p0.y, p0.z, p0.w, p1.x, p1.y, p1.z, p1.w};
#pragma unroll
                    for (int j = 0; j < G; j++) {
                        acc8[j].x = fmaf(pp[j], vr[st].x, acc8[j].x);
                        acc8[j].y = fmaf(pp[j], vr[st].y, acc8[j].y);
                        acc8[j].z = fmaf(pp[j], vr[st].z, acc8[j].z);
                        acc8[j].w = fmaf(pp[j], vr[st].w, acc8[j].w);
                    }
                }
                __syncwarp(); /* pw and fw are rewritten by the next group */
            }
            gptoss_d_cp_async_wait<0>(); /* no copy in flight past the task */
        }
        /* the two halves' sums (the same max), then the four warps merged in warp order into
         * the layout of the epilogue: acc[j] = dim od of head gg * 4 + j, m_run / l_run[jj] =
         * head warp * 2 + jj */
#pragma unroll
        for (int j = 0; j < G; j++) {
            acc8[j].x += __shfl_xor_sync(0xFFFFFFFFu, acc8[j].x, 16);
            acc8[j].y += __shfl_xor_sync(0xFFFFFFFFu, acc8[j].y, 16);
            acc8[j].z += __shfl_xor_sync(0xFFFFFFFFu, acc8[j].z, 16);
            acc8[j].w += __shfl_xor_sync(0xFFFFFFFFu, acc8[j].w, 16);
        }
        if (hw == 0) {
#pragma unroll
            for (int j = 0; j < G; j++) *(float4*) &ow[warp][j][4 * sl] = acc8[j];
            if ((sl & 1u) == 0) {
                mlw[warp][mh][0] = mw;
                mlw[warp][mh][1] = lw;
            }
        }
        __syncthreads();
        /* head g's maximum over the warps, and warp w's factor against it (0 for a warp that
         * attended nothing) */
        auto head_max = [&](uint32_t g) {
            float M = mlw[0][g][0];
#pragma unroll
            for (int w = 1; w < kWarps; w++) M = fmaxf(M, mlw[w][g][0]);
            return M;
        };
        auto factor = [&](int w, uint32_t g, float M) {
            const float m = mlw[w][g][0];
            return m == -INFINITY ? 0.0f : expf(m - M);
        };
        float acc[4], m_run[2], l_run[2];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const uint32_t g = gg * 4 + (uint32_t) j;
            const float M = head_max(g);
            float o = 0.0f;
#pragma unroll
            for (int w = 0; w < kWarps; w++) o = fmaf(ow[w][g][od], factor(w, g, M), o);
            acc[j] = o;
        }
#pragma unroll
        for (int jj = 0; jj < 2; jj++) {
            const uint32_t g = warp * 2 + (uint32_t) jj;
            const float M = head_max(g);
            float l = 0.0f;
#pragma unroll
            for (int w = 0; w < kWarps; w++) l = fmaf(mlw[w][g][1], factor(w, g, M), l);
            m_run[jj] = M;
            l_run[jj] = l;
        }
        if (__syncthreads_or(bad)) { /* every thread done with the tiles */
            if (tid == 0) gptoss_d_set_error(s.paged.error_word, GPTOSS_CUDA_ERROR_KV_ROW);
#pragma unroll
            for (int j = 0; j < 4; j++) acc[j] = __uint_as_float(0x7FC00000u);
#pragma unroll
            for (int jj = 0; jj < 2; jj++) {
                m_run[jj] = 0.0f;
                l_run[jj] = __uint_as_float(0x7FC00000u);
            }
        }
        if (n == 1) {
            /* the whole key range in this task: normalise with the sink here (the merge
             * formula with one chunk) */
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
            continue;
        }
        /* the partial of every real head, in slot `chunk` */
        const size_t first_slot = ((size_t) i * s.num_q_heads + hq0) * s.slots;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const uint32_t g = gg * 4 + j;
            if (g < s.group) s.partial[(first_slot + (size_t) g * s.slots + chunk) * kPartialFloats + od] = acc[j];
        }
#pragma unroll
        for (int jj = 0; jj < 2; jj++) {
            const uint32_t g = warp * 2 + jj;
            if (g < s.group && lane == 0) {
                float* part = s.partial + (first_slot + (size_t) g * s.slots + chunk) * kPartialFloats;
                part[D] = m_run[jj];
                part[D + 1] = l_run[jj];
            }
        }
        if (n > kFusedMergeMaxChunks) continue; /* the merge kernel combines them */

        /* The last task of this (row, KV head) to finish merges the partials with the sink:
         * fence the partials, count, and let the last one read them. */
        const uint32_t pair = i * s.num_kv_heads + h;
        __threadfence();
        __syncthreads();
        if (tid == 0) is_last = atomicAdd(s.counters + pair, 1u) == n - 1;
        __syncthreads();
        if (!is_last) continue;
        __threadfence();
        if (tid == 0) s.counters[pair] = 0; /* zero again for the next launch */
        /* warp w merges heads 2w, 2w+1 (the formula of sdpa_merge_kernel): lane c holds
         * chunk c's max and sum; output loads in batches */
#pragma unroll
        for (int jj = 0; jj < 2; jj++) {
            const uint32_t g = warp * 2 + jj;
            if (g >= s.group) continue;
            const float* part = s.partial + (first_slot + (size_t) g * s.slots) * kPartialFloats;
            const float S = s.sinks != nullptr ? gptoss_bf16_to_f32(s.sinks[hq0 + g]) : -INFINITY;
            const bool has = lane < n;
            const float mc = has ? __ldcg(part + (size_t) lane * kPartialFloats + D) : -INFINITY;
            const float lc = has ? __ldcg(part + (size_t) lane * kPartialFloats + D + 1) : 0.0f;
            const float M = fmaxf(S, gptoss_d_warp_max(mc));
            const float f = (M == -INFINITY || mc == -INFINITY) ? 0.0f : expf(mc - M);
            float denom = gptoss_d_warp_sum(fmaf(lc, f, 0.0f));
            if (s.sinks != nullptr && M != -INFINITY) denom += expf(S - M);
            float o0 = 0.0f, o1 = 0.0f;
            for (uint32_t c0 = 0; c0 < n; c0 += 4) { /* 8 loads in flight per batch */
                float v0[4], v1[4];
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    if (c0 + c < n) {
                        v0[c] = __ldcg(part + (size_t) (c0 + c) * kPartialFloats + lane);
                        v1[c] = __ldcg(part + (size_t) (c0 + c) * kPartialFloats + lane + 32);
                    }
                }
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    const float fc = __shfl_sync(0xFFFFFFFFu, f, (c0 + c) & 31u);
                    if (c0 + c < n) {
                        o0 = fmaf(v0[c], fc, o0);
                        o1 = fmaf(v1[c], fc, o1);
                    }
                }
            }
            float* o = s.out + ((size_t) i * s.num_q_heads + hq0 + g) * D;
            o[lane] = normalise(o0, denom);
            o[lane + 32] = normalise(o1, denom);
        }
    }
}

/* One 256-thread block per (row, Q head) of a row with more than kFusedMergeMaxChunks
 * chunks (the others exit): combines the row's own chunk partials with the sink; chunks
 * are read in parallel, combined in a fixed order (deterministic). The chunks' maxima and
 * sums go to shared memory and each chunk's factor is computed once there; a thread's
 * partial values are loaded kMergeBatch at a time, the first batch with the maxima (up to
 * 64 chunks, 4,096 keys: one round trip to memory), then summed in order. Before, each
 * loop iteration of a chunk waited on its load and recomputed its factor: 11.7 us for 128
 * chunks at 32,768 keys on an H100 (docs/CUDA_NOTES.md). The same sums in the same order. */
constexpr int MERGE_THREADS = 256;
constexpr uint32_t kMaxRowChunks = 4096; /* max_row_chunks' bound */
static_assert(2 * kMaxRowChunks * sizeof(float) <= 48 * 1024, "the merge kernel's dynamic shared memory needs no opt-in");
constexpr int kMergeBatch = 16;
__global__ void __launch_bounds__(MERGE_THREADS) sdpa_merge_kernel(SdpaShape s) {
    __shared__ float red[32];
    __shared__ float o_part[MERGE_THREADS / D][D];
    /* dynamic: 2 x s.slots floats (merge_smem), sized by the call's key bound, not by
     * kMaxRowChunks (32 KB a block would be reserved for the engine's 512 slots too) */
    extern __shared__ float merge_dyn[];
    float* factor_s = merge_dyn;           /* [slots]: a chunk's max, then its factor */
    float* sum_s = merge_dyn + s.slots;    /* [slots] */
    gptoss_d_pdl_trigger();
    gptoss_d_pdl_wait();
    const uint32_t row = blockIdx.x; /* i * Hq + hq */
    const uint32_t i = row / s.num_q_heads, hq = row % s.num_q_heads;
    if (tc_row(s, i)) return; /* the tensor-core kernel's row */
    uint32_t lo, len;
    const uint32_t* table;
    const bool ok = row_keys(s, i, lo, len, table);
    if (row_chunks(ok, len) <= kFusedMergeMaxChunks) return; /* finished by the chunk kernel */
    const uint32_t n = row_chunks(ok, len), tid = threadIdx.x;
    const float* part = s.partial + (size_t) row * s.slots * kPartialFloats;
    const float S = s.sinks != nullptr ? gptoss_bf16_to_f32(s.sinks[hq]) : -INFINITY;
    /* thread (d, q) sums dimension d of chunks q, q + 4, q + 8, ... in that order: its first
     * kMergeBatch values are loaded now, with the maxima and sums below (they do not depend
     * on the maximum) */
    const uint32_t d = tid % D, q = tid / D;
    constexpr uint32_t kStep = MERGE_THREADS / D;
    float v[kMergeBatch];
    auto load_batch = [&](uint32_t c0) {
#pragma unroll
        for (int u = 0; u < kMergeBatch; u++) {
            const uint32_t c = c0 + kStep * (uint32_t) u;
            v[u] = c < n ? part[(size_t) c * kPartialFloats + d] : 0.0f;
        }
    };
    load_batch(q);
    float m = -INFINITY;
    for (uint32_t c = tid; c < n; c += MERGE_THREADS) {
        const float mc = part[(size_t) c * kPartialFloats + D];
        factor_s[c] = mc;
        sum_s[c] = part[(size_t) c * kPartialFloats + D + 1];
        m = fmaxf(m, mc);
    }
    m = gptoss_d_warp_max(m);
    if ((tid & 31) == 0) red[tid >> 5] = m;
    __syncthreads();
    float M = S;
    for (int w = 0; w < MERGE_THREADS / 32; w++) M = fmaxf(M, red[w]);
    __syncthreads();
    /* each chunk's factor, once (a thread reads back only the maxima it wrote) */
    float lsum = 0.0f;
    for (uint32_t c = tid; c < n; c += MERGE_THREADS) {
        const float mc = factor_s[c];
        const float f = (M == -INFINITY || mc == -INFINITY) ? 0.0f : expf(mc - M);
        factor_s[c] = f;
        lsum = fmaf(sum_s[c], f, lsum);
    }
    float denom = gptoss_d_block_sum(lsum, red);
    if (s.sinks != nullptr && M != -INFINITY) denom += expf(S - M);
    __syncthreads(); /* factor_s complete */
    float o = 0.0f;
    for (uint32_t c0 = q; c0 < n; c0 += kStep * kMergeBatch) {
        if (c0 != q) load_batch(c0);
#pragma unroll
        for (int u = 0; u < kMergeBatch; u++) {
            const uint32_t c = c0 + kStep * (uint32_t) u;
            if (c < n) o = fmaf(v[u], factor_s[c], o);
        }
    }
    o_part[q][d] = o;
    __syncthreads();
    if (tid < D) {
        float acc = 0.0f;
        for (int k = 0; k < MERGE_THREADS / D; k++) acc += o_part[k][tid];
        s.out[(size_t) row * D + tid] = normalise(acc, denom);
    }
}

/* ---------------------------------------------------------------------------------------
 * Prefill on tensor cores. In a call of at least kTcMinRows rows (head_dim 64, up to 8 Q
 * heads per KV head), rows are taken in groups of tc_rows = 16 W / GP consecutive call rows
 * (W: the warps of a block, 4 or 8; GP: the Q heads per KV head rounded up to a power of
 * two; the call's last group may be short). A group whose rows are one sequence at
 * consecutive positions (a prefill chunk, or a plain call) runs here: a task per (group, KV
 * head, chunk of kTcChunk keys at absolute multiples of it that holds keys of the group),
 * run by a block of W warps, its 16 W MMA rows (token, Q head) in W warps of 16, walking
 * the chunk's keys of the group in tiles of 64 at multiples of 64 (absolute positions),
 * flash-attention style: scores, online softmax and P V in registers. A row whose keys lie
 * in one chunk is finished by that task; a row across chunks leaves a partial a chunk,
 * combined in chunk order by sdpa_tc_merge_kernel. W = GPTOSS_SDPA_TC_WARPS (compile
 * time, default 8: one 256-thread block an SM, each K/V tile split once for twice the rows
 * of 4, two 128-thread blocks an SM; 8 measured 1.10-1.13x faster on an H100 with the same
 * bits, docs/CUDA_NOTES.md); both are compiled, the define picks the launched one. The other rows (decode rows, the ragged edges of chunks, rows out of range)
 * run on the chunk kernel, which gives the rows taken here no tasks.
 *
 * Exact f32 on bf16 tensor cores: Q, K, V and the probabilities are split into three bf16
 * parts (x = x0 + x1 + x2 + r, |r| <= 2^-27 |x|: tc_split_pair) and each product is the
 * sum of the six part products of orders i + j <= 2 (the dropped ones are below 2^-26 of
 * it), smallest first, accumulated in f32 by the MMA: logits and P V within f32 rounding (the
 * harness's f32 tolerances). Exponentials: exp2 of log2-scaled logits (ex2.approx, the
 * fast exp of the tolerance).
 *
 * K and V of a tile: copied raw (f32) into a staging buffer with cp.async while the previous
 * tile is computed, then split into bf16 planes in shared memory by the whole block. Keys
 * read: from the first row's window start to the last row's position (the others are
 * zero-filled, and masked); a varlen key whose table entry is out of range is read from slot
 * 0, and the group's rows whose keys include it get NaN and GPTOSS_CUDA_ERROR_KV_ROW.
 *
 * Batch invariance: a row's arithmetic depends on its own keys alone: chunks and tiles at
 * absolute multiples of 2,048 and 64, its own masks, the same MMAs, the same merge; a tile
 * with none of its keys leaves its
 * state exactly as it was (the max unchanged, factor 1, probabilities 0), so which rows share
 * its block changes no bit. Its bits differ from the chunk kernel's: a row's result depends
 * on whether its group ran here. */
#ifndef GPTOSS_SDPA_TC_WARPS
#define GPTOSS_SDPA_TC_WARPS 8
#endif
constexpr int kTcWarps = GPTOSS_SDPA_TC_WARPS; /* the launched instantiation's warps */
static_assert(kTcWarps == 4 || kTcWarps == 8, "GPTOSS_SDPA_TC_WARPS must be 4 or 8");
template <int W> constexpr int kTcRows = 16 * W;    /* MMA rows of a block */
template <int W> constexpr int kTcThreads = 32 * W;
constexpr int kTcLd = D + 8; /* bf16 pitch of a key row of the planes (ldmatrix conflict-free) */
constexpr uint32_t kTcMinRows = 32;
/* Keys of a chunk: a block walks one chunk of a group's keys (absolute multiples of it),
 * so a short prompt at depth spreads over the card (16 rows after 32,768 keys: 128 blocks,
 * not 8). A row's keys within one chunk (any row of a context under 2,048 keys) are
 * normalised by its block; a row's keys across chunks leave one partial a chunk (66
 * floats a Q head), merged in chunk order. */
constexpr uint32_t kTcChunk = 2048;
/* Row groups of one launch (their chunk ranges are kept in shared memory) */
constexpr uint32_t kTcMaxGroups = 512;
constexpr size_t kTcStageBytes = (size_t) TK * 2 * D * sizeof(float);
constexpr size_t kTcPlanesBytes = (size_t) 3 * TK * kTcLd * sizeof(uint16_t);
constexpr size_t kTcSmem = kTcStageBytes + 2 * kTcPlanesBytes; /* 88,064 bytes: two blocks an SM (W = 4) */
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float tc_ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* bf16x2 of (lo, hi), rounded to nearest (lo in the low half) */
__device__ __forceinline__ uint32_t tc_bf16x2(float lo, float hi) {
    uint32_t d;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(hi), "f"(lo));
    return d;
}

/* x - part where the difference is finite, else 0 (x infinite or NaN: part 0 carries it; a
 * finite x whose bf16 rounding overflows counts as infinite) */
__device__ __forceinline__ float tc_rest(float x, float part) {
    const float r = x - part;
    return fabsf(r) < INFINITY ? r : 0.0f;
}

/* a and b (a in the low halves) as three bf16x2 parts: x0 = bf16(x), x1 = bf16(x - x0),
 * x2 = bf16(x - x0 - x1), each rounded to nearest (the differences are exact), so
 * |x - x0 - x1 - x2| <= 2^-27 |x|; one conversion per part for both values (this runs for
 * every K and V value of every tile a block reads, and every probability). */
__device__ __forceinline__ void tc_split_pair(float a, float b, uint32_t (&out)[3]) {
    out[0] = tc_bf16x2(a, b);
    const float a1 = tc_rest(a, gptoss_d_bf16_lo(out[0])), b1 = tc_rest(b, gptoss_d_bf16_hi(out[0]));
    out[1] = tc_bf16x2(a1, b1);
    out[2] = tc_bf16x2(a1 - gptoss_d_bf16_lo(out[1]), b1 - gptoss_d_bf16_hi(out[1]));
}

/* tc_split_pair of values that are never infinite (probabilities: 0 .. 1 or NaN; a NaN
 * makes every part NaN, which the product keeps) */
__device__ __forceinline__ void tc_split_pair_p(float a, float b, uint32_t (&out)[3]) {
    out[0] = tc_bf16x2(a, b);
    const float a1 = a - gptoss_d_bf16_lo(out[0]), b1 = b - gptoss_d_bf16_hi(out[0]);
    out[1] = tc_bf16x2(a1, b1);
    out[2] = tc_bf16x2(a1 - gptoss_d_bf16_lo(out[1]), b1 - gptoss_d_bf16_hi(out[1]));
}

/* c[n0 + 2 q + h] += A B_q,h for the two 16-column blocks q of b (n8 tiles h: registers 2 h,
 * 2 h + 1 of each part) from the parts of A (a0, a1, a2) and of B (b[q][j]): the six products
 * of part orders i + j <= 2, smallest first, each over the 4 accumulators (independent MMAs
 * in a row; a chain on one accumulator waits on each result) */
__device__ __forceinline__ void tc_mma6x4(float (&c)[8][4], int n0, const uint32_t (&a0)[4], const uint32_t (&a1)[4],
                                          const uint32_t (&a2)[4], const uint32_t (&b)[2][3][4]) {
    const uint32_t(*const a[3])[4] = {&a0, &a1, &a2};
    constexpr int kI[6] = {2, 1, 0, 1, 0, 0}, kJ[6] = {0, 1, 2, 0, 1, 0};
#pragma unroll
    for (int k = 0; k < 6; k++)
#pragma unroll
        for (int t = 0; t < 4; t++) {
            const int q = t >> 1, h = t & 1;
            gptoss_d_mma_bf16_16816(c[n0 + t], *a[kI[k]], b[q][kJ[k]][2 * h], b[q][kJ[k]][2 * h + 1]);
        }
}

/* c[h] += A B_h for one 16-column block of b (n8 tiles h = 0, 1), the six products of
 * tc_mma6x4 in its order, over 2 accumulators */
__device__ __forceinline__ void tc_mma6x2(float (&c)[2][4], const uint32_t (&a0)[4], const uint32_t (&a1)[4],
                                          const uint32_t (&a2)[4], const uint32_t (&b)[3][4]) {
    const uint32_t(*const a[3])[4] = {&a0, &a1, &a2};
    constexpr int kI[6] = {2, 1, 0, 1, 0, 0}, kJ[6] = {0, 1, 2, 0, 1, 0};
#pragma unroll
    for (int k = 0; k < 6; k++)
#pragma unroll
        for (int h = 0; h < 2; h++) gptoss_d_mma_bf16_16816(c[h], *a[kI[k]], b[kJ[k]][2 * h], b[kJ[k]][2 * h + 1]);
}

/* The chunk ranges of the launch's row groups (tc_g0 .. tc_g0 + tc_ng - 1) into c0[], c1[]
 * (absolute chunks of kTcChunk keys: the group's first row's first key .. its last row's
 * last key; c0 > c1: the group does not run here) and the most chunks of a group into
 * *most_s; the caller syncs before reading them. */
__device__ void tc_group_chunks(const SdpaShape& s, uint32_t* c0, uint32_t* c1, uint32_t* most_s) {
    for (uint32_t gl = threadIdx.x; gl < s.tc_ng; gl += blockDim.x) {
        const uint32_t grp = s.tc_g0 + gl;
        uint32_t a = 1, b = 0;
        if (tc_group(s, grp)) {
            const uint32_t i0 = grp * s.tc_rows, nrow = min(s.tc_rows, s.num_rows - i0);
            uint32_t lo0, len0, lo_last, len_last;
            const uint32_t *t0, *t1;
            row_keys(s, i0, lo0, len0, t0);
            row_keys(s, i0 + nrow - 1, lo_last, len_last, t1);
            a = lo0 / kTcChunk;
            b = (uint32_t) (((uint64_t) lo_last + len_last - 1) / kTcChunk);
            atomicMax(most_s, b - a + 1);
        }
        c0[gl] = a;
        c1[gl] = b;
    }
}

/* W warps (4: two blocks an SM, 8: one; ~231 registers a thread either way). The blocks of a
 * launch are resident at once and take tasks (chunk k of a group's own chunks, KV head,
 * group) from a counter in turn: the k = 0 tasks of every KV head and group first, the last
 * groups (the most keys) first among them; a block that draws a task its group does not
 * have draws again. The last block to finish zeroes the counters for the next launch. */
template <int W>
__global__ void __launch_bounds__(kTcThreads<W>, W == 4 ? 2 : 1) sdpa_prefill_tc_kernel(SdpaShape s) {
    static_assert(W == 4 || W == 8, "4 or 8 warps");
    static_assert(TK % W == 0, "a tile's key rows spread evenly over the warps");
    static_assert(kTcChunk % TK == 0, "chunks of whole tiles");
    extern __shared__ __align__(16) uint8_t tc_smem[];
    float* stage = (float*) tc_smem;                              /* [TK][2 D]: K | V of a tile, f32 */
    uint16_t* kp = (uint16_t*) (tc_smem + kTcStageBytes);         /* [3][TK][kTcLd]: K's parts */
    uint16_t* vp = kp + 3 * TK * kTcLd;                           /* [3][TK][kTcLd]: V's parts */
    __shared__ uint32_t bad_lo, bad_hi; /* keys whose table entry was out of range: their span */
    __shared__ uint64_t slot_s[TK];     /* cache slots of the next tile's keys (UINT64_MAX: not read) */
    __shared__ uint32_t grp_c0[kTcMaxGroups], grp_c1[kTcMaxGroups]; /* tc_group_chunks */
    __shared__ uint32_t most_s, work_s;

    gptoss_d_pdl_trigger();
    gptoss_d_pdl_wait();
    const uint32_t tid = threadIdx.x, lane = tid & 31u, warp = tid >> 5;
    const uint32_t g = lane >> 2, tg = lane & 3u;
    if (tid == 0) most_s = 0;
    __syncthreads();
    tc_group_chunks(s, grp_c0, grp_c1, &most_s);
    __syncthreads();
    const uint32_t tasks = most_s * s.num_kv_heads * s.tc_ng; /* < 2^32: tc_launch */
    for (;;) {
    __syncthreads(); /* the previous task is done with shared memory and work_s */
    if (tid == 0) {
        work_s = atomicAdd(s.tc_counters, 1u);
        bad_lo = 0xFFFFFFFFu;
        bad_hi = 0;
    }
    __syncthreads();
    const uint32_t work = work_s;
    if (work >= tasks) break; /* block-uniform */
    const uint32_t gl = s.tc_ng - 1 - work % s.tc_ng, h = work / s.tc_ng % s.num_kv_heads;
    const uint32_t chunk = grp_c0[gl] + work / (s.tc_ng * s.num_kv_heads);
    if (chunk > grp_c1[gl]) continue; /* not a task of this group (or not a group of this kernel) */
    const uint32_t grp = s.tc_g0 + gl;
    const uint32_t i0 = grp * s.tc_rows, nrow = min(s.tc_rows, s.num_rows - i0);
    uint32_t lo0, len0, lo_last, len_last;
    const uint32_t *table, *table_last;
    row_keys(s, i0, lo0, len0, table); /* in range (tc_group) */
    row_keys(s, i0 + nrow - 1, lo_last, len_last, table_last);
    const uint32_t P0 = lo0 + len0 - 1, key_end = lo_last + len_last; /* keys lo0 .. key_end - 1 */
    /* this task's tiles: those of the group's keys in chunk `chunk` */
    const uint32_t kt_begin = max(lo0 / TK * TK, chunk * kTcChunk);
    const uint32_t kt_stop = (uint32_t) min((uint64_t) key_end, (uint64_t) (chunk + 1) * kTcChunk);

    /* this thread's rows: warp * 16 + g (hh 0) and + 8 (hh 1), below 16 W = tc_rows << shift;
     * row r = (token r >> shift, Q head r & (GP - 1)); padding heads and tokens past the call
     * attend nothing */
    const uint32_t gp_mask = (1u << s.tc_gp_shift) - 1u;
    uint32_t r_lo[2], r_p[2], r_tok[2], r_head[2];
    bool r_ok[2];
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        const uint32_t r = warp * 16 + g + 8 * hh;
        r_tok[hh] = r >> s.tc_gp_shift;
        r_head[hh] = r & gp_mask;
        r_ok[hh] = r_tok[hh] < nrow && r_head[hh] < s.group;
        const uint64_t p1 = (uint64_t) P0 + r_tok[hh] + 1;
        r_p[hh] = r_ok[hh] ? (uint32_t) (p1 - 1) : 0u;
        r_lo[hh] = r_ok[hh] ? (p1 > s.window ? (uint32_t) (p1 - s.window) : 0u) : 1u; /* lo > P: none */
    }

    /* the keys a row keeps as key - k_lo <= k_span (unsigned: a row without keys has
     * k_lo = 2^32 - 1, above every key of a tile) */
    uint32_t k_lo[2], k_span[2];
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        const bool any = r_lo[hh] <= r_p[hh];
        k_lo[hh] = any ? r_lo[hh] : 0xFFFFFFFFu;
        k_span[hh] = any ? r_p[hh] - r_lo[hh] : 0u;
    }

    /* Q's A fragments, three parts: k-step kk, registers a0..a3 = (row hh = j & 1, columns
     * 16 kk + 8 (j >> 1) + 2 tg, +1) */
    uint32_t qf[3][4][4];
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int hh = j & 1;
            const uint32_t col = 16 * kk + 8 * (j >> 1) + 2 * tg;
            float2 v = make_float2(0.0f, 0.0f);
            if (r_ok[hh]) {
                v = *(const float2*) (s.q + (size_t) (i0 + r_tok[hh]) * s.qkv_dim +
                                      (size_t) (h * s.group + r_head[hh]) * D + col);
            }
            uint32_t parts[3];
            tc_split_pair(v.x, v.y, parts);
#pragma unroll
            for (int p = 0; p < 3; p++) qf[p][kk][j] = parts[p];
        }

    const float* kv_head = s.kv + (size_t) h * s.kv_stride;
    const uint32_t col4 = lane; /* this thread's 16 bytes of each key row it copies (a warp: one row) */
    /* the slots of tile kt0's keys into slot_s, one key per thread of the first TK (one table
     * lookup a key, not one per copy); the caller syncs before issue reads them */
    auto lookup = [&](uint32_t kt0) {
        if (tid < (uint32_t) TK) {
            const uint32_t t = kt0 + tid;
            uint64_t slot = UINT64_MAX;
            if (t >= lo0 && t < key_end) {
                slot = t;
                if (table != nullptr && !gptoss_d_kv_slot(s.paged, table, t, slot)) {
                    slot = 0; /* exists (num_blocks >= 1); the rows that attend t become NaN */
                    atomicMin(&bad_lo, t);
                    atomicMax(&bad_hi, t);
                }
            }
            slot_s[tid] = slot;
        }
    };
    /* the tile of slot_s into the stage: key warp + W j, one cp.async group */
    auto issue = [&]() {
#pragma unroll
        for (int j = 0; j < TK / W; j++) {
            const uint32_t key = warp + (uint32_t) W * j;
            const uint64_t slot = slot_s[key];
            float* dst = stage + (size_t) key * 2 * D + col4 * 4;
            if (slot != UINT64_MAX) {
                gptoss_d_cp_async16(dst, kv_head + slot * 2 * D + col4 * 4);
            } else {
                gptoss_d_cp_async16_zfill(dst, kv_head, 0u);
            }
        }
        gptoss_d_cp_async_commit();
    };

    float oacc[8][4];
#pragma unroll
    for (int n = 0; n < 8; n++)
#pragma unroll
        for (int q = 0; q < 4; q++) oacc[n][q] = 0.0f;
    float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};

    lookup(kt_begin);
    __syncthreads();
    issue();
    for (uint32_t kt0 = kt_begin; kt0 < kt_stop; kt0 += TK) {
        gptoss_d_cp_async_wait<0>();
        __syncthreads(); /* the tile landed (every thread's copies); the previous planes consumed */
#pragma unroll 4
        for (int j = 0; j < TK / W; j++) {
            const uint32_t key = warp + (uint32_t) W * j;
            const float4 v = *(const float4*) (stage + (size_t) key * 2 * D + col4 * 4);
            uint32_t a[3], b[3];
            tc_split_pair(v.x, v.y, a);
            tc_split_pair(v.z, v.w, b);
            uint16_t* dst = (col4 < D / 4 ? kp + key * kTcLd + col4 * 4 : vp + key * kTcLd + (col4 - D / 4) * 4);
#pragma unroll
            for (int p = 0; p < 3; p++) *(uint2*) (dst + p * TK * kTcLd) = make_uint2(a[p], b[p]);
        }
        if (kt0 + TK < kt_stop) lookup(kt0 + TK); /* slot_s was last read by issue() before the sync above */
        __syncthreads(); /* the planes and the next slots are ready, the stage is free */
        if (kt0 + TK < kt_stop) issue();

        /* S = Q K^T: this warp's 16 rows x 64 keys (n8 tiles n = keys 8 n ..) */
        float sacc[8][4];
#pragma unroll
        for (int n = 0; n < 8; n++)
#pragma unroll
            for (int q = 0; q < 4; q++) sacc[n][q] = 0.0f;
        /* two 16-key column blocks at a time: each of the six products goes to 4 independent
         * accumulators in a row (a chain of dependent MMAs would wait on each result) */
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
#pragma unroll
            for (int np = 0; np < 2; np++) {
                uint32_t kb[2][3][4];
#pragma unroll
                for (int q = 0; q < 2; q++)
#pragma unroll
                    for (int p = 0; p < 3; p++) {
                        gptoss_d_ldmatrix_x4(kb[q][p], kp + p * TK * kTcLd +
                                                           (32 * np + 16 * q + (lane & 7u) + ((lane >> 4) << 3)) * kTcLd +
                                                           16 * kk + ((lane >> 3) & 1u) * 8);
                    }
                tc_mma6x4(sacc, 4 * np, qf[0][kk], qf[1][kk], qf[2][kk], kb);
            }

        /* online softmax per row (its 64 scores over the 4 threads of a quad); a tile inside
         * every row's keys (the last row's first key .. the first row's position: most tiles
         * at depth) needs no masks (the same values: every key is kept) */
        const bool interior = kt0 >= lo_last && kt0 + (TK - 1) <= P0;
#pragma unroll
        for (int hh = 0; hh < 2; hh++) {
            /* kept: key - lo <= span, one unsigned compare and a select a score (written so
             * that the compiler keeps it branch-free: a branch a score cost ~13 % of this
             * loop's instructions, docs/CUDA_NOTES.md) */
            const uint32_t lo = interior ? 0u : k_lo[hh], span = interior ? 0xFFFFFFFFu : k_span[hh];
            float tmax = -INFINITY;
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const uint32_t key = kt0 + 8 * n + 2 * tg + e;
                    const float sc = sacc[n][2 * hh + e] * s.tc_scale_log2;
                    const float v = key - lo <= span ? sc : -INFINITY;
                    sacc[n][2 * hh + e] = v;
                    tmax = fmaxf(tmax, v);
                }
            tmax = fmaxf(tmax, __shfl_xor_sync(0xFFFFFFFFu, tmax, 1));
            tmax = fmaxf(tmax, __shfl_xor_sync(0xFFFFFFFFu, tmax, 2));
            const float m_new = fmaxf(m_run[hh], tmax);
            const float f = m_new == m_run[hh] ? 1.0f : tc_ex2(m_run[hh] - m_new);
            float ls = 0.0f;
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float p = m_new == -INFINITY ? 0.0f : tc_ex2(sacc[n][2 * hh + e] - m_new);
                    sacc[n][2 * hh + e] = p;
                    ls += p;
                }
            l_run[hh] = l_run[hh] * f + ls;
            m_run[hh] = m_new;
#pragma unroll
            for (int n = 0; n < 8; n++) {
                oacc[n][2 * hh] *= f;
                oacc[n][2 * hh + 1] *= f;
            }
        }

        /* O += P V: k-steps of 16 keys (P's A fragments from S's C fragments), n8 tiles of
         * dimensions */
#pragma unroll
        for (int kk = 0; kk < 4; kk++) {
            uint32_t pa[3][4], parts[3];
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const float* c = sacc[2 * kk + (j >> 1)];
                tc_split_pair_p(c[2 * (j & 1)], c[2 * (j & 1) + 1], parts);
#pragma unroll
                for (int p = 0; p < 3; p++) pa[p][j] = parts[p];
            }
            /* 16 dimensions (two n8 tiles) at a time: V's parts of this k-step, and each
             * k-step's products from zero, then added to O in f32, rounded to nearest (the
             * MMA rounds its sums toward zero: O chained through every tile of a long row,
             * ~2,000 at 131,072 keys, came out ~1e-3 small; docs/CUDA_NOTES.md) */
#pragma unroll
            for (int c16 = 0; c16 < 4; c16++) {
                uint32_t vb[3][4];
#pragma unroll
                for (int p = 0; p < 3; p++) {
                    gptoss_d_ldmatrix_x4_trans(vb[p], vp + p * TK * kTcLd +
                                                          (16 * kk + ((lane >> 3) & 1u) * 8 + (lane & 7u)) * kTcLd +
                                                          16 * c16 + (lane >> 4) * 8);
                }
                float pacc[2][4];
#pragma unroll
                for (int t = 0; t < 2; t++)
#pragma unroll
                    for (int e = 0; e < 4; e++) pacc[t][e] = 0.0f;
                tc_mma6x2(pacc, pa[0], pa[1], pa[2], vb);
#pragma unroll
                for (int t = 0; t < 2; t++)
#pragma unroll
                    for (int e = 0; e < 4; e++) oacc[2 * c16 + t][e] += pacc[t][e];
            }
        }
    }
    gptoss_d_cp_async_wait<0>();
    __syncthreads(); /* bad_lo, bad_hi final */

    /* Each row of this task: one whose keys lie in this chunk alone is normalised with the
     * sink here (the merge formula of one chunk, in log2 units); one whose keys span chunks
     * leaves its partial (unnormalised O, max, sum) in slot chunk - its first chunk, which
     * sdpa_tc_merge_kernel combines; a row without keys here writes nothing. A row whose
     * keys include one out of range (bad) gets NaN, its partial NaN. */
#pragma unroll
    for (int hh = 0; hh < 2; hh++) {
        float l = l_run[hh];
        l += __shfl_xor_sync(0xFFFFFFFFu, l, 1);
        l += __shfl_xor_sync(0xFFFFFFFFu, l, 2);
        if (!r_ok[hh]) continue;
        const uint32_t cf = r_lo[hh] / kTcChunk, cl = r_p[hh] / kTcChunk;
        if (chunk < cf || chunk > cl) continue;
        const uint32_t hq = h * s.group + r_head[hh];
        const bool bad = bad_lo <= r_p[hh] && bad_hi >= r_lo[hh];
        if (bad && tg == 0) gptoss_d_set_error(s.paged.error_word, GPTOSS_CUDA_ERROR_KV_ROW);
        const float nan = __uint_as_float(0x7FC00000u);
        if (cf < cl) {
            const uint32_t r = i0 + r_tok[hh] - s.tc_g0 * s.tc_rows; /* the launch's row */
            float* part = s.tc_partial + (((size_t) r * s.num_q_heads + hq) * s.tc_slots + (chunk - cf)) * kPartialFloats;
#pragma unroll
            for (int n = 0; n < 8; n++) {
                *(float2*) (part + 8 * n + 2 * tg) = bad ? make_float2(nan, nan) : make_float2(oacc[n][2 * hh], oacc[n][2 * hh + 1]);
            }
            if (tg == 0) {
                part[D] = bad ? 0.0f : m_run[hh];
                part[D + 1] = bad ? nan : l;
            }
            continue;
        }
        const float S = s.sinks != nullptr ? gptoss_bf16_to_f32(s.sinks[hq]) * kLog2e : -INFINITY;
        const float m = m_run[hh], M = fmaxf(S, m);
        const float f = (M == -INFINITY || m == -INFINITY) ? 0.0f : tc_ex2(m - M);
        float denom = l * f;
        if (s.sinks != nullptr && M != -INFINITY) denom += tc_ex2(S - M);
        float* o = s.out + ((size_t) (i0 + r_tok[hh]) * s.num_q_heads + hq) * D + 2 * tg;
#pragma unroll
        for (int n = 0; n < 8; n++) {
            float2 v = make_float2(normalise(oacc[n][2 * hh] * f, denom), normalise(oacc[n][2 * hh + 1] * f, denom));
            if (bad) v = make_float2(nan, nan);
            *(float2*) (o + 8 * n) = v;
        }
    }
    }  /* tasks */
    /* every block has drawn past the last task: the last one out zeroes the counters */
    if (tid == 0) {
        __threadfence();
        if (atomicAdd(s.tc_counters + 1, 1u) == gridDim.x - 1) {
            s.tc_counters[0] = 0;
            s.tc_counters[1] = 0;
        }
    }
}

/* One warp per (row, Q head) of a launch of the tensor-core prefill whose row's keys span
 * more than one chunk: its partials combined in chunk order with the sink (log2 units, as
 * there); the other rows exit. A row's arithmetic follows from its own key range. */
__global__ void __launch_bounds__(256) sdpa_tc_merge_kernel(SdpaShape s) {
    gptoss_d_pdl_trigger();
    gptoss_d_pdl_wait();
    const uint32_t lane = threadIdx.x & 31u;
    const uint64_t w = ((uint64_t) blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const uint32_t first = s.tc_g0 * s.tc_rows;
    const uint32_t rows = min(s.tc_ng * s.tc_rows, s.num_rows - first);
    if (w >= (uint64_t) rows * s.num_q_heads) return;
    const uint32_t r = (uint32_t) (w / s.num_q_heads), hq = (uint32_t) (w % s.num_q_heads), i = first + r;
    if (!tc_group(s, i / s.tc_rows)) return;
    uint32_t lo, len;
    const uint32_t* table;
    row_keys(s, i, lo, len, table);
    const uint32_t cf = lo / kTcChunk, cl = (uint32_t) (((uint64_t) lo + len - 1) / kTcChunk);
    if (cf == cl) return; /* normalised by its task */
    const uint32_t n = cl - cf + 1;
    const float* part = s.tc_partial + ((size_t) r * s.num_q_heads + hq) * s.tc_slots * kPartialFloats;
    const float S = s.sinks != nullptr ? gptoss_bf16_to_f32(s.sinks[hq]) * kLog2e : -INFINITY;
    float M = S;
    for (uint32_t c = 0; c < n; c++) M = fmaxf(M, part[(size_t) c * kPartialFloats + D]);
    float denom = 0.0f, o0 = 0.0f, o1 = 0.0f;
#pragma unroll 4
    for (uint32_t c = 0; c < n; c++) {
        const float* pc = part + (size_t) c * kPartialFloats;
        const float mc = pc[D];
        const float f = (M == -INFINITY || mc == -INFINITY) ? 0.0f : tc_ex2(mc - M);
        denom = fmaf(pc[D + 1], f, denom);
        o0 = fmaf(pc[lane], f, o0);
        o1 = fmaf(pc[lane + 32], f, o1);
    }
    if (s.sinks != nullptr && M != -INFINITY) denom += tc_ex2(S - M);
    float* o = s.out + ((size_t) i * s.num_q_heads + hq) * D;
    o[lane] = normalise(o0, denom);
    o[lane + 32] = normalise(o1, denom);
}

/* Address of key t of a KV head (generic kernel; varlen: its table entry checked before). */
__device__ __forceinline__ const float* key_ptr(const SdpaShape& s, const uint32_t* table, const float* head,
                                                uint32_t t, uint32_t head_dim) {
    uint64_t slot = t;
    if (table != nullptr) gptoss_d_kv_slot(s.paged, table, t, slot);
    return head + slot * 2 * head_dim;
}

/* Generic: one warp per (row i, Q head hq); any head_dim (multiple of 4), any GQA. */
__global__ void sdpa_generic_kernel(SdpaShape s, uint32_t head_dim) {
    const uint64_t warp_global = ((uint64_t) blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const uint32_t lane = threadIdx.x % 32;
    if (warp_global >= (uint64_t) s.num_rows * s.num_q_heads) return;
    const uint32_t i = (uint32_t) (warp_global / s.num_q_heads), hq = (uint32_t) (warp_global % s.num_q_heads);
    const uint32_t h = hq / s.group;
    const float* qr = s.q + (size_t) i * s.qkv_dim + (size_t) hq * head_dim;
    float* o = s.out + ((size_t) i * s.num_q_heads + hq) * head_dim;
    const float* kvh = s.kv + (size_t) h * s.kv_stride;
    uint32_t lo, len;
    const uint32_t* table;
    bool ok = row_keys(s, i, lo, len, table);
    if (ok && table != nullptr) {
        uint64_t slot;
        for (uint32_t k = 0; k < len && ok; k++) ok = gptoss_d_kv_slot(s.paged, table, lo + k, slot);
    }
    if (!ok) {
        if (lane == 0) gptoss_d_set_error(s.paged.error_word, GPTOSS_CUDA_ERROR_KV_ROW);
        for (uint32_t d = lane; d < head_dim; d += 32) o[d] = __uint_as_float(0x7FC00000u);
        return;
    }
    /* pass 1: max; pass 2: sums (two passes keep the arithmetic simple) */
    const float S = s.sinks != nullptr ? gptoss_bf16_to_f32(s.sinks[hq]) : -INFINITY;
    float M = S;
    for (uint32_t k = 0; k < len; k++) {
        const float* key = key_ptr(s, table, kvh, lo + k, head_dim);
        float dot = 0.0f;
        for (uint32_t d = lane; d < head_dim; d += 32) dot = fmaf(qr[d], key[d], dot);
        dot = gptoss_d_warp_sum(dot) * s.scale;
        M = fmaxf(M, dot);
    }
    float denom = (s.sinks != nullptr && M != -INFINITY) ? expf(S - M) : 0.0f;
    for (uint32_t d = lane; d < head_dim; d += 32) o[d] = 0.0f;
    __syncwarp();
    if (M == -INFINITY) return;
    for (uint32_t k = 0; k < len; k++) {
        const float* key = key_ptr(s, table, kvh, lo + k, head_dim);
        float dot = 0.0f;
        for (uint32_t d = lane; d < head_dim; d += 32) dot = fmaf(qr[d], key[d], dot);
        dot = gptoss_d_warp_sum(dot) * s.scale;
        const float p = expf(dot - M);
        denom += p;
        const float* v = key + head_dim;
        for (uint32_t d = lane; d < head_dim; d += 32) o[d] = fmaf(p, v[d], o[d]);
    }
    __syncwarp();
    for (uint32_t d = lane; d < head_dim; d += 32) o[d] = normalise(o[d], denom);
}

/* Partial slots of a row of at most max_len keys on the tensor-core prefill: the most
 * chunks its keys can touch. */
static uint32_t tc_row_slots(uint64_t max_len) {
    return max_len <= 1 ? 1u : (uint32_t) ((max_len + kTcChunk - 2) / kTcChunk + 1);
}

/* The tensor-core prefill with W warps a block over the groups of s, whose tc_rows it sets
 * (16 W >> tc_gp_shift: the chunk kernel reads the same groups); max_len bounds a row's
 * keys. Launches of at most kTcMaxGroups groups whose partials fit kScratchBudget, each
 * followed by its merge. *ran = false (nothing launched) where one group's partials would
 * not fit: the chunk kernel then takes every row. */
template <int W>
enum gptoss_status tc_launch(gptoss_backend_t backend, SdpaShape& s, uint64_t max_len, const char* name, bool* ran) {
    *ran = false;
    s.tc_rows = (uint32_t) kTcRows<W> >> s.tc_gp_shift;
    s.tc_slots = tc_row_slots(max_len);
    const uint64_t row_bytes = (uint64_t) s.num_q_heads * s.tc_slots * kPartialFloats * sizeof(float);
    const uint64_t group_bytes = s.tc_slots > 1 ? row_bytes * s.tc_rows : 0;
    if (group_bytes > kScratchBudget) return gptoss_status_success;
    cudaError_t err =
        cudaFuncSetAttribute(sdpa_prefill_tc_kernel<W>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int) kTcSmem);
    if (err != cudaSuccess) return gptoss_cuda_fail(err, name);
    /* resident blocks an SM (the devices of a process are taken to be of one kind; a wrong
     * count only changes how many blocks draw tasks) */
    static const int blocks_per_sm = [] {
        int n = 0;
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, sdpa_prefill_tc_kernel<W>, kTcThreads<W>, kTcSmem) !=
                cudaSuccess ||
            n < 1) {
            cudaGetLastError(); /* not sticky: clear it */
            n = 1;
        }
        return n;
    }();
    const uint64_t resident = (uint64_t) gptoss_cuda_num_sms(backend) * blocks_per_sm;
    /* the most chunks a group touches: its keys are at most max_len + tc_rows - 1 */
    const uint64_t group_chunks = (max_len + s.tc_rows - 1 + kTcChunk - 2) / kTcChunk + 1;
    const uint32_t groups = (s.num_rows + s.tc_rows - 1) / s.tc_rows;
    uint32_t per_launch = kTcMaxGroups;
    if (group_bytes > 0 && kScratchBudget / group_bytes < per_launch) per_launch = (uint32_t) (kScratchBudget / group_bytes);
    *ran = true;
    for (uint32_t g0 = 0; g0 < groups; g0 += per_launch) {
        SdpaShape t = s;
        t.tc_g0 = g0;
        t.tc_ng = groups - g0 < per_launch ? groups - g0 : per_launch;
        const uint32_t rows = min(t.tc_ng * t.tc_rows, s.num_rows - g0 * t.tc_rows);
        const uint64_t tasks = group_chunks * s.num_kv_heads * t.tc_ng; /* < 2^32: kScratchBudget */
        void* partial = nullptr;
        const enum gptoss_status st = gptoss_cuda_scratch_acquire(
            backend, (size_t) (group_bytes > 0 ? rows * row_bytes : 0), group_bytes > 0 ? &partial : nullptr, 2,
            &t.tc_counters);
        if (st != gptoss_status_success) return st;
        t.tc_partial = (float*) partial;
        err = gptoss_cuda_launch_pdl(backend, sdpa_prefill_tc_kernel<W>, dim3((unsigned) min(tasks, resident)),
                                     dim3(kTcThreads<W>), kTcSmem, t);
        if (err == cudaSuccess && group_bytes > 0) {
            const uint64_t warps = (uint64_t) rows * s.num_q_heads;
            err = gptoss_cuda_launch_pdl(backend, sdpa_tc_merge_kernel, dim3((unsigned) ((warps + 7) / 8)), dim3(256),
                                         0, t);
        }
        gptoss_cuda_scratch_release(backend);
        if (err != cudaSuccess) return gptoss_cuda_fail(err, name);
    }
    return gptoss_status_success;
}
/* both block sizes are compiled whichever one GPTOSS_SDPA_TC_WARPS launches (the other one
 * must not rot) */
template enum gptoss_status tc_launch<4>(gptoss_backend_t, SdpaShape&, uint64_t, const char*, bool*);
template enum gptoss_status tc_launch<8>(gptoss_backend_t, SdpaShape&, uint64_t, const char*, bool*);

/* Resident chunk-kernel blocks per SM (the launches' block count: every block resident,
 * each looping over tasks). The devices of a process are taken to be of one kind; a wrong
 * count only changes how tasks are spread, never a result. */
int chunk_blocks_per_sm() {
    static const int cached = [] {
        int n = 0;
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, sdpa_chunk_kernel, THREADS, 0) != cudaSuccess || n < 1) {
            cudaGetLastError(); /* not sticky: clear it */
            n = 1;
        }
        return n;
    }();
    return cached;
}

/* The launches of one call: s describes all rows (num_rows of them); max_len bounds a
 * row's key count. */
enum gptoss_status sdpa_launch(gptoss_backend_t backend, SdpaShape s, uint32_t head_dim, uint64_t max_len,
                               const char* name) {
    const bool fast = head_dim == D && s.group <= (uint32_t) G && gptoss_aligned(s.q, 16) &&
                      gptoss_aligned(s.kv, 16) && s.kv_stride % 4 == 0;
    if (!fast) {
        const uint64_t warps = (uint64_t) s.num_rows * s.num_q_heads;
        sdpa_generic_kernel<<<(unsigned) ((warps * 32 + 255) / 256), 256, 0, gptoss_cuda_stream(backend)>>>(s,
                                                                                                         head_dim);
        const cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess) return gptoss_cuda_fail(err, name);
        return gptoss_status_success;
    }
    /* the tensor-core prefill: the rows of whole groups of one sequence (a plain call: all) */
    uint32_t gp_shift = 0;
    while ((1u << gp_shift) < s.group) gp_shift++;
    /* row order one: never (a row alone never runs here); many: every call (its rows are
     * then one sequence's consecutive positions, every group runs here whatever the rows:
     * gptoss_backend_set_row_order); auto: from kTcMinRows rows */
    const enum gptoss_row_order order = backend->row_order;
    const bool tc_rows = order == gptoss_row_order_many || (order == gptoss_row_order_auto && s.num_rows >= kTcMinRows);
    if (tc_rows && gptoss_aligned(s.out, 8) &&
        gptoss_cuda(backend)->max_shared_per_block >= kTcSmem) {
        s.tc = 1;
        s.tc_gp_shift = gp_shift;
        s.tc_row0 = 0;
        s.tc_call_rows = s.num_rows;
        s.tc_scale_log2 = s.scale * kLog2e;
        bool ran = false;
        const enum gptoss_status st = tc_launch<kTcWarps>(backend, s, max_len, name, &ran); /* sets s.tc_rows */
        if (st != gptoss_status_success) return st;
        if (!ran) {
            s.tc = 0;
        } else if (s.paged.positions == nullptr) {
            return gptoss_status_success; /* every row ran there */
        }
    }
    s.slots = (uint32_t) max_row_chunks(max_len);
    /* partial bytes of a row (none when every row is one chunk, normalised in place) */
    const uint64_t row_bytes = s.slots > 1 ? (uint64_t) s.num_q_heads * s.slots * kPartialFloats * sizeof(float) : 0;
    if (row_bytes > kScratchBudget) {
        return gptoss_fail(gptoss_status_unsupported_argument,
                           "%s on CUDA: num_q_heads %u need %llu bytes of partial results a row (%u chunks), more "
                           "than the kernel's %llu bytes of scratch",
                           name, s.num_q_heads, (unsigned long long) row_bytes, s.slots,
                           (unsigned long long) kScratchBudget);
    }
    uint64_t slice = kSliceRows;
    if (row_bytes > 0 && kScratchBudget / row_bytes < slice) slice = kScratchBudget / row_bytes;
    const uint64_t resident = (uint64_t) gptoss_cuda_num_sms(backend) * chunk_blocks_per_sm();
    const uint32_t rows = s.num_rows;
    for (uint32_t i0 = 0; i0 < rows; i0 += (uint32_t) slice) {
        SdpaShape t = s;
        t.tc_row0 = i0;
        t.num_rows = (uint32_t) (rows - i0 < slice ? rows - i0 : slice);
        t.q = s.q + (size_t) i0 * s.qkv_dim;
        t.out = s.out + (size_t) i0 * s.num_q_heads * D;
        if (s.paged.positions != nullptr) {
            t.paged.positions = s.paged.positions + i0;
            t.paged.seq_ids = s.paged.seq_ids + i0;
        } else {
            t.first_position = s.first_position + i0;
        }
        const uint64_t pairs = (uint64_t) t.num_rows * s.num_kv_heads, most_tasks = pairs * s.slots;
        const uint64_t blocks = most_tasks < resident ? most_tasks : resident;
        void* partial = nullptr;
        t.counters = nullptr;
        const enum gptoss_status status =
            gptoss_cuda_scratch_acquire(backend, (size_t) (t.num_rows * row_bytes), row_bytes > 0 ? &partial : nullptr,
                                        (size_t) pairs, s.slots > 1 ? &t.counters : nullptr);
        if (status != gptoss_status_success) return status;
        t.partial = (float*) partial;
        cudaError_t err = gptoss_cuda_launch_pdl(backend, sdpa_chunk_kernel, dim3((unsigned) blocks), dim3(THREADS), 0, t);
        if (err == cudaSuccess && s.slots > kFusedMergeMaxChunks) {
            err = gptoss_cuda_launch_pdl(backend, sdpa_merge_kernel, dim3(t.num_rows * s.num_q_heads),
                                         dim3(MERGE_THREADS), (size_t) 2 * s.slots * sizeof(float), t);
        }
        gptoss_cuda_scratch_release(backend);
        if (err != cudaSuccess) return gptoss_cuda_fail(err, name);
    }
    return gptoss_status_success;
}

SdpaShape make_shape(const float* q, const float* kv, const gptoss_bf16* sinks, float* output, uint32_t window,
                     uint64_t kv_stride, uint32_t num_rows, uint32_t num_q_heads, uint32_t num_kv_heads,
                     uint32_t head_dim, float scale) {
    SdpaShape s = {};
    s.q = q;
    s.kv = kv;
    s.sinks = (const uint16_t*) sinks;
    s.out = output;
    s.kv_stride = kv_stride;
    s.window = window;
    s.num_rows = num_rows;
    s.num_q_heads = num_q_heads;
    s.num_kv_heads = num_kv_heads;
    s.group = num_q_heads / num_kv_heads;
    s.qkv_dim = head_dim * (num_q_heads + 2 * num_kv_heads);
    s.scale = scale;
    return s;
}

}  // namespace

extern "C" enum gptoss_status gptoss_cuda_f32_sdpa(gptoss_backend_t backend, const struct gptoss_f32_sdpa_args* args) {
    SdpaShape s = make_shape(args->q, args->kv, args->sinks, args->output, args->window, args->kv_stride,
                             args->num_q_tokens, args->num_q_heads, args->num_kv_heads, args->head_dim, args->scale);
    s.first_position = args->num_kv_tokens;
    /* the longest key range: the last row's */
    const uint64_t p_max1 = (uint64_t) args->num_kv_tokens + args->num_q_tokens;
    return sdpa_launch(backend, s, args->head_dim, p_max1 < args->window ? p_max1 : args->window, "f32_sdpa");
}

extern "C" enum gptoss_status gptoss_cuda_f32_sdpa_varlen(gptoss_backend_t backend,
                                                          const struct gptoss_f32_sdpa_varlen_args* args) {
    SdpaShape s = make_shape(args->q, args->kv, args->sinks, args->output, args->window, args->kv_stride,
                             args->num_q_tokens, args->num_q_heads, args->num_kv_heads, args->head_dim, args->scale);
    s.paged.positions = args->positions;
    s.paged.seq_ids = args->seq_ids;
    s.paged.block_tables = args->block_tables;
    s.paged.block_size = args->block_size;
    s.paged.table_stride = args->table_stride;
    s.paged.num_seqs = args->num_seqs;
    s.paged.num_blocks = args->kv_stride / (2 * (uint64_t) args->head_dim * args->block_size);
    s.paged.error_word = gptoss_cuda_error_word(backend);
    /* a row's key range is bounded by the window and the positions a table can address */
    const uint64_t positions = (uint64_t) args->table_stride * args->block_size;
    return sdpa_launch(backend, s, args->head_dim, positions < args->window ? positions : args->window,
                       "f32_sdpa_varlen");
}
