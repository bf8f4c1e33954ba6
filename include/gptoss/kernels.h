/*
 * gpt-oss-kernels: the kernel contract.
 *
 * One function per kernel of the gpt-oss inference stack (names as upstream's Metal
 * kernels, arguments in the order of the gpt_oss_metal_kernels Python signatures where
 * one exists). Every function:
 *
 *   - takes a backend handle first; all pointers must point to memory the backend
 *     computes on (host memory for CPU backends, device memory for CUDA backends);
 *   - checks its arguments before anything runs; on failure it returns a status other
 *     than gptoss_status_success, sets the thread-local message (gptoss_last_error())
 *     naming the bad value, and writes nothing;
 *   - writes its outputs in place; weights are W[out][in] (row = output channel);
 *   - uses f32 activations and f32 accumulation; bf16 weights are widened exactly.
 *
 * Execution: CPU backends run the kernel to completion before returning. CUDA backends
 * enqueue the kernel on the backend's stream and return at once (no host
 * synchronisation); gptoss_backend_synchronize() waits. Checks that need the *contents*
 * of device buffers (token ids, expert ids, routing offsets) cannot run on the host
 * without a synchronisation: on CUDA these values are checked by the kernel, an
 * offending row is written as NaN instead of being read out of bounds, and the next
 * gptoss_backend_synchronize() returns gptoss_status_invalid_argument with a message.
 * On CPU backends they are checked before the call, like every other argument.
 *
 * Sizes are counts of elements unless the name says bytes. Byte strides are size_t.
 */
#ifndef GPTOSS_KERNELS_H
#define GPTOSS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------
 * Status and errors
 * ---------------------------------------------------------------------------------- */

enum gptoss_status {
    gptoss_status_success = 0,
    gptoss_status_invalid_argument = 1,
    gptoss_status_unsupported_argument = 2,
    gptoss_status_invalid_state = 3,
    gptoss_status_io_error = 4,
    gptoss_status_insufficient_memory = 5,
    gptoss_status_insufficient_resources = 6,
    gptoss_status_unsupported_system = 7,
    gptoss_status_context_overflow = 8,
};

/* Static name of a status ("invalid_argument"); "unknown_status" for other values. */
const char* gptoss_status_to_string(enum gptoss_status status);

/* The message of the last failed call on this thread ("num_q_heads 63 is not a multiple
 * of num_kv_heads 8"), or "". Calls clear it on entry, except the release and free
 * functions (gptoss_*_release, gptoss_backend_free): they leave it as it is unless they
 * fail themselves, so that cleaning up after a failure keeps the failure's message. The
 * pointer stays valid until the next library call on this thread. */
const char* gptoss_last_error(void);

/* ------------------------------------------------------------------------------------
 * Element types
 * ---------------------------------------------------------------------------------- */

/* bfloat16: the upper 16 bits of an IEEE binary32. A one-field struct so it cannot be
 * mixed up with plain integers. Widening to f32 is exact (bits << 16). */
typedef struct gptoss_bf16 {
    uint16_t bits;
} gptoss_bf16;

/* f32 -> bf16, round to nearest even (NaN stays a quiet NaN), as every kernel rounds;
 * bf16 -> f32 is exact. For host code that writes or reads weights. */
gptoss_bf16 gptoss_bf16_from_f32(float value);
float gptoss_bf16_to_float(gptoss_bf16 value);

/* ------------------------------------------------------------------------------------
 * Backends
 * ---------------------------------------------------------------------------------- */

typedef struct gptoss_backend* gptoss_backend_t;

enum gptoss_backend_kind {
    gptoss_backend_kind_cpu = 1,
    gptoss_backend_kind_cuda = 2,
};

/* Instruction-set variant of the CPU backend. auto picks the best the processor has. */
enum gptoss_cpu_isa {
    gptoss_cpu_isa_auto = 0,
    gptoss_cpu_isa_scalar = 1,  /* portable C, no intrinsics */
    gptoss_cpu_isa_avx2 = 2,    /* AVX2 + FMA */
    gptoss_cpu_isa_avx512 = 3,  /* AVX-512F/BW/VL (+ BF16 where present) */
};

/* Creates a CPU backend with a persistent pool of num_threads threads (0 = one per
 * online processor; the calling thread counts as one). On success *backend_out holds
 * the new handle; on failure it is left unchanged. */
enum gptoss_status gptoss_backend_create_cpu(uint32_t num_threads, gptoss_backend_t* backend_out);

/* As gptoss_backend_create_cpu with an explicit instruction-set variant.
 * gptoss_status_unsupported_system if the processor (or this build) lacks it. */
enum gptoss_status gptoss_backend_create_cpu_isa(uint32_t num_threads, enum gptoss_cpu_isa isa,
                                                 gptoss_backend_t* backend_out);

/* Creates a CUDA backend on device `device`; `stream` is a cudaStream_t (NULL = the
 * legacy default stream) owned by the caller, which must outlive the backend.
 * gptoss_status_unsupported_system if the library was built without CUDA or no such
 * device is present. */
enum gptoss_status gptoss_backend_create_cuda(int device, void* stream, gptoss_backend_t* backend_out);

/* Flags of gptoss_backend_create_cuda_ex. */
enum {
    /* No programmatic dependent launch (sm_90+: each decode kernel starts loading its
     * weights while the previous one finishes; kernels.h results are the same either way):
     * every launch is an ordinary one, for comparisons. */
    GPTOSS_CUDA_NO_PDL = 1u << 0,
};
/* gptoss_backend_create_cuda with flags (0 = the same). invalid_argument for an unknown flag. */
enum gptoss_status gptoss_backend_create_cuda_ex(int device, void* stream, uint32_t flags,
                                                 gptoss_backend_t* backend_out);

/* Releases a backend (waits for its work first). NULL is accepted. */
enum gptoss_status gptoss_backend_release(gptoss_backend_t backend);

enum gptoss_backend_kind gptoss_backend_get_kind(gptoss_backend_t backend);

/* Human-readable name: "cpu-avx2 (2 threads)", "cuda:0 (NVIDIA H100 80GB HBM3)". */
const char* gptoss_backend_get_name(gptoss_backend_t backend);

/* Row order: how a backend chooses the arithmetic of a call over several rows (tokens).
 * Every kernel computes each row from that row's inputs alone; what the order fixes is the
 * summation order, so the last bits of a row:
 *   auto (the default): the fastest kernels for the call's shape. A row's last bits may
 *     depend on how many rows share the call (CUDA: one-token GEMVs, tensor-core GEMMs
 *     from 32 rows, attention on tensor cores from 32 rows).
 *   one:  every row's outputs are bitwise those of a call of that row alone (num_tokens 1,
 *     order auto), for any number of rows: the decode kernels' exact f32 sums.
 *   many: every row's outputs are bitwise the same for any number of rows in the call,
 *     1 included: the prefill kernels' arithmetic (CUDA: the split-bf16 tensor-core GEMMs,
 *     within the same tolerances as auto).
 * The engine's batch invariance (engine.h, batch_invariant) computes a sequence's drawn
 * tokens in order one and its prompt tokens in order many. CPU backends: every order is
 * the same (their kernels' sums never depend on the rows of a call). Affects the bf16
 * matmuls (matmul, matmul_add, the dense_* and qkv forms, unembedding), the MoE gate
 * fusion, attention (CUDA: in order one never on tensor cores; in order many always,
 * which makes a row's bits the same alone and in any call whose rows are one sequence's
 * consecutive positions, as the engine's calls of prompt rows are; a varlen call that
 * mixes sequences runs the rows whose tensor-core group holds another sequence's rows on
 * the decode kernels, so those rows may differ in the last bits) and on CUDA the per-pair MXFP4 expert kernels (moe_matmul_swiglu, moe_matmul): in
 * order many they take the expert-grouped (dense) kernels' arithmetic, bit for bit the
 * outputs the dense entries give the same pairs (they then need 16-byte aligned weight
 * blocks and scales, an expert stride of a multiple of 16 and num_cols <= 18432, else
 * unsupported_argument). The dense MXFP4 entries, norms, RoPE, top-k and sampling are
 * row-invariant in every order. The order applies to calls made (or recorded into a graph)
 * after it is set. */
enum gptoss_row_order {
    gptoss_row_order_auto = 0,
    gptoss_row_order_one = 1,
    gptoss_row_order_many = 2,
};
/* invalid_argument for a NULL backend or an order not listed above. */
enum gptoss_status gptoss_backend_set_row_order(gptoss_backend_t backend, enum gptoss_row_order order);
/* The order set last (auto for a NULL backend). */
enum gptoss_row_order gptoss_backend_get_row_order(gptoss_backend_t backend);

/* Memory where the backend computes, aligned to at least 64 bytes. size 0 is invalid.
 * On failure *ptr_out is unchanged. */
enum gptoss_status gptoss_backend_alloc(gptoss_backend_t backend, size_t size, void** ptr_out);
/* Frees memory from gptoss_backend_alloc (NULL accepted). CUDA: waits for the stream. */
enum gptoss_status gptoss_backend_free(gptoss_backend_t backend, void* ptr);

enum gptoss_copy_kind {
    gptoss_copy_host_to_backend = 0,
    gptoss_copy_backend_to_host = 1,
    gptoss_copy_backend_to_backend = 2,
};
/* Copies size bytes, ordered with the kernels on the backend's stream. A copy to the
 * host is complete when the call returns. */
enum gptoss_status gptoss_backend_copy(gptoss_backend_t backend, void* dst, const void* src, size_t size,
                                       enum gptoss_copy_kind kind);
/* Waits for all work enqueued on the backend; reports asynchronous errors (see top). */
enum gptoss_status gptoss_backend_synchronize(gptoss_backend_t backend);
/* Memory where the backend's buffers live: *used_bytes_out in use and *total_bytes_out in
 * all. CUDA: the device's memory in use by every process on it (the CUDA runtime's
 * cudaMemGetInfo: this backend's buffers, its context, other programs) and its size. CPU:
 * this process's resident memory and the machine's physical memory (Linux /proc; other
 * systems: gptoss_status_unsupported_system). */
enum gptoss_status gptoss_backend_get_memory_info(gptoss_backend_t backend, uint64_t* used_bytes_out,
                                                  uint64_t* total_bytes_out);

/* ------------------------------------------------------------------------------------
 * Graphs: record a sequence of kernel calls once, replay it with one launch (CUDA graphs).
 * Meant for the engine's decode step, where ~300 small launches per token would otherwise
 * each pay the launch latency. CPU backends: gptoss_graph_create returns
 * gptoss_status_unsupported_system (callers run the kernels directly).
 *
 *   gptoss_graph_begin(g);            // the kernel calls on g's backend are now recorded
 *   gptoss_f32_...(backend, ...);     // (arguments checked as always), not run
 *   gptoss_graph_end(g);              // g now holds the recording (an update in place if
 *                                     // the sequence has the same shape as the last one)
 *   gptoss_graph_launch(g);           // runs it on the backend's stream, asynchronously
 *
 * Recording is a state of the backend (which one thread uses at a time): while a graph
 * records, gptoss_backend_copy, _alloc, _free and _synchronize on its backend fail with
 * gptoss_status_invalid_state, and a second graph cannot begin on it. Pointers and scalar arguments are baked into the recording: buffers must stay
 * allocated while the graph may run. If any call fails during a recording (a rejected
 * argument included), gptoss_graph_end fails with gptoss_status_invalid_state and the
 * graph keeps its previous recording.
 * ---------------------------------------------------------------------------------- */
typedef struct gptoss_graph* gptoss_graph_t;

enum gptoss_status gptoss_graph_create(gptoss_backend_t backend, gptoss_graph_t* graph_out);
enum gptoss_status gptoss_graph_begin(gptoss_graph_t graph);
enum gptoss_status gptoss_graph_end(gptoss_graph_t graph);
enum gptoss_status gptoss_graph_launch(gptoss_graph_t graph);
/* Releases a graph (ends a recording in progress). NULL is accepted. */
enum gptoss_status gptoss_graph_release(gptoss_graph_t graph);

/* ------------------------------------------------------------------------------------
 * Random fill (Squares32 counter RNG; value i depends only on (seed, offset + i), so the
 * result is bit-identical on every backend)
 * ---------------------------------------------------------------------------------- */

/* Squares32 (the counter RNG of the fill kernels and gptoss_f32_sample) on the host: the
 * value gptoss_u32_fill_random writes at index i is gptoss_random_u32(offset + i, seed).
 * For host code that must draw from the same stream (the engine's host sampler). */
uint32_t gptoss_random_u32(uint64_t counter, uint64_t seed);

/* out[i] = squares32(offset + i, seed), i < num_elements. */
enum gptoss_status gptoss_u32_fill_random(gptoss_backend_t backend, uint32_t* output, uint64_t num_elements,
                                          uint64_t seed, uint64_t offset);

/* out[i] = fma((float)(int32_t)squares32(offset+i, seed), (max-min)*2^-32, (min+max)/2),
 * a value in [min, max]. Requires finite min < max. */
enum gptoss_status gptoss_f32_fill_random(gptoss_backend_t backend, float* output, uint64_t num_elements,
                                          uint64_t seed, uint64_t offset, float min, float max);

/* As f32_fill_random, each value rounded to bf16 (round to nearest even). */
enum gptoss_status gptoss_bf16_fill_random(gptoss_backend_t backend, gptoss_bf16* output,
                                           uint64_t num_elements, uint64_t seed, uint64_t offset, float min,
                                           float max);

/* ------------------------------------------------------------------------------------
 * MXFP4
 * ---------------------------------------------------------------------------------- */

/* Dequantises num_elements (a multiple of 32) MXFP4 values: blocks u8[n/2] (16 bytes per
 * 32 values; element 2j is the low nibble of byte j, 2j+1 the high nibble), scales
 * u8[n/32] RAW E8M0 (bias 127, as in the checkpoint; NOT the +14-biased model-file
 * scales). out[32b+e] = fp4(nibble) * 2^(scales[b]-127), exactly; values that overflow
 * f32 give +-inf; scale 255 (E8M0 NaN) gives NaN. (Upstream yields garbage for s>=242.) */
enum gptoss_status gptoss_mf4_f32_convert(gptoss_backend_t backend, const uint8_t* blocks, const uint8_t* scales,
                                          float* output, uint64_t num_elements);

/* ------------------------------------------------------------------------------------
 * Embeddings and normalisation
 * ---------------------------------------------------------------------------------- */

/* out[t][c] = f32(weight[token_ids[t]][c]). token_ids u32[num_tokens], weight
 * bf16[vocabulary_size][num_channels], out f32[num_tokens][num_channels]. A token id >=
 * vocabulary_size is invalid_argument (CUDA: see top). */
enum gptoss_status gptoss_bf16_f32_embeddings(gptoss_backend_t backend, const uint32_t* token_ids,
                                              const gptoss_bf16* weight, float* output, uint32_t num_tokens,
                                              uint32_t num_channels, uint32_t vocabulary_size);

/* RMSNorm: out[t][c] = (x[t][c] * r) * f32(weight[c]) with
 * r = 1 / sqrt(sum_c x[t][c]^2 / num_channels + epsilon). input and output f32[T][C];
 * output may equal input (in place). epsilon must be finite and >= 0. */
enum gptoss_status gptoss_f32_bf16w_rmsnorm(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight,
                                            float* output, uint32_t num_tokens, uint32_t num_channels,
                                            float epsilon);

/* The decode MoE epilogue and the RMSNorm that follows it, in one call (a fusion of two
 * kernels above; not an upstream op): first residual is updated exactly as
 * gptoss_f32_accumulate(input, expert_scores, residual, num_channels, num_tokens,
 * num_active_experts) does (input f32[k][T][C], expert_scores f32[T][k], residual
 * f32[T][C]), then output = gptoss_f32_bf16w_rmsnorm(residual, weight, num_tokens,
 * num_channels, epsilon). Both results are bit-identical to those two calls in sequence on
 * the same backend; CUDA runs one kernel instead of two where num_channels % 4 == 0,
 * num_channels <= 4096 and the rows are 16-byte aligned (the others: the two kernels).
 * output f32[T][C] must not overlap input, expert_scores, residual or weight. */
enum gptoss_status gptoss_f32_accumulate_bf16w_rmsnorm(gptoss_backend_t backend, const float* input,
                                                       const float* expert_scores, float* residual,
                                                       const gptoss_bf16* weight, float* output,
                                                       uint32_t num_channels, uint32_t num_tokens,
                                                       uint32_t num_active_experts, float epsilon);

/* ------------------------------------------------------------------------------------
 * bf16-weight matrix products. input f32[num_tokens][num_cols], weight
 * bf16[num_rows][num_cols], bias bf16[num_rows] (NULL = no bias), output
 * f32[num_tokens][num_rows]. Any sizes >= 1. output must not overlap input or weight.
 * The "dense" names are the prefill kernels of upstream; here they compute exactly the
 * same function as the decode ones (each backend picks its own tiling by size).
 * ---------------------------------------------------------------------------------- */

/* out[t][r] = sum_c x[t][c] * w[r][c] + b[r] */
enum gptoss_status gptoss_f32_bf16w_matmul(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight,
                                           const gptoss_bf16* bias, float* output, uint32_t num_tokens,
                                           uint32_t num_cols, uint32_t num_rows);

/* out[t][r] = out[t][r] + (sum_c x[t][c] * w[r][c] + b[r])  (residual add; bias added to
 * the dot product first) */
enum gptoss_status gptoss_f32_bf16w_matmul_add(gptoss_backend_t backend, const float* input,
                                               const gptoss_bf16* weight, const gptoss_bf16* bias, float* output,
                                               uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);

/* Plain GEMM, same as gptoss_f32_bf16w_matmul (the seed's dense_matmul_qkv, no RoPE). */
enum gptoss_status gptoss_f32_bf16w_dense_matmul_qkv(gptoss_backend_t backend, const float* input,
                                                     const gptoss_bf16* weight, const gptoss_bf16* bias,
                                                     float* output, uint32_t num_tokens, uint32_t num_cols,
                                                     uint32_t num_rows);
/* Accumulating GEMM, same as gptoss_f32_bf16w_matmul_add. */
enum gptoss_status gptoss_f32_bf16w_dense_matmul_attn_output(gptoss_backend_t backend, const float* input,
                                                             const gptoss_bf16* weight, const gptoss_bf16* bias,
                                                             float* output, uint32_t num_tokens,
                                                             uint32_t num_cols, uint32_t num_rows);
/* Plain GEMM, same as gptoss_f32_bf16w_matmul. */
enum gptoss_status gptoss_f32_bf16w_dense_matmul_mlp_gate(gptoss_backend_t backend, const float* input,
                                                          const gptoss_bf16* weight, const gptoss_bf16* bias,
                                                          float* output, uint32_t num_tokens, uint32_t num_cols,
                                                          uint32_t num_rows);

/* ------------------------------------------------------------------------------------
 * RoPE with YaRN (KERNELS.md 1.7). For pair i < head_dim/2 of a head at position pos:
 *   e = expf(i * (-logf(rope_base) / (head_dim/2))), ip = e * interpolation_scale,
 *   a = clamp(i * yarn_scale + yarn_offset, 0, 1), f = e + (ip - e) * a,
 *   c = cos(pos * f) * yarn_multiplier, s = sin(pos * f) * yarn_multiplier,
 *   (x, y) = (v[2i], v[2i+1]) -> (x*c - y*s, x*s + y*c).
 * Adjacent pairs are rotated (the model file permutes Q/K rows accordingly).
 * ---------------------------------------------------------------------------------- */

/* Fused QKV projection for the attention block: y = x * W^T + b over
 * num_rows = head_dim * (num_q_heads + 2 * num_kv_heads) rows (Q heads, then K heads,
 * then V heads), then:
 *   - Q and K heads are rotated with RoPE at positions token_offset + t;
 *   - output f32[num_tokens][num_rows] receives rotated Q, rotated K and V (all columns
 *     are written; upstream leaves K/V columns stale);
 *   - kv_cache (one layer, f32[num_kv_heads][max_tokens][2][head_dim], K then V per
 *     token) receives rotated K and V at positions token_offset .. token_offset+T-1.
 * Requirements: num_q_heads a multiple of num_kv_heads; head_dim even (>= 2);
 * token_offset + num_tokens <= max_tokens. */
enum gptoss_status gptoss_f32_bf16w_matmul_qkv(gptoss_backend_t backend, const float* input,
                                               const gptoss_bf16* weight, const gptoss_bf16* bias, float* output,
                                               float* kv_cache, uint32_t num_tokens, uint32_t num_cols,
                                               uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim,
                                               uint32_t token_offset, uint32_t max_tokens, float rope_base,
                                               float interpolation_scale, float yarn_offset, float yarn_scale,
                                               float yarn_multiplier);

/* Paged KV cache (the varlen kernels below, for many sequences in one call). One layer's
 * cache is kv_cache f32[num_kv_heads][kv_stride] (kv_stride in floats, a multiple of
 * 2 * head_dim * block_size): per kv head, slots of 2 * head_dim floats (K then V), grouped
 * in blocks of block_size slots; num_blocks = kv_stride / (2 * head_dim * block_size).
 * block_tables u32[num_seqs][table_stride] maps the positions of each sequence to blocks:
 * position p of sequence s is in slot block_tables[s][p / block_size] * block_size +
 * p % block_size. Token row t belongs to sequence seq_ids[t] (< num_seqs) at position
 * positions[t] (< table_stride * block_size); rows may come in any order, and sequences may
 * share blocks (a common prefix). On CUDA, seq_ids, positions and the table entries a call
 * reads are device contents (see the top): an offending row is written as NaN and the next
 * synchronize reports it. */

/* gptoss_f32_bf16w_matmul_qkv for rows of many sequences: row t is rotated at position
 * positions[t] and its rotated K and V are written to the slot of (seq_ids[t],
 * positions[t]) in the paged cache (see above), for every kv head. The projection and the
 * RoPE of each row are computed as gptoss_f32_bf16w_matmul_qkv computes a call of the same
 * num_tokens. No two rows may write the same slot. Requirements as there; block_size,
 * table_stride, num_seqs >= 1; kv_stride a multiple of 2 * head_dim * block_size. */
enum gptoss_status gptoss_f32_bf16w_matmul_qkv_varlen(
    gptoss_backend_t backend, const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, float* output,
    float* kv_cache, const uint32_t* positions, const uint32_t* seq_ids, const uint32_t* block_tables,
    uint32_t num_tokens, uint32_t num_cols, uint32_t num_q_heads, uint32_t num_kv_heads, uint32_t head_dim,
    uint64_t kv_stride, uint32_t block_size, uint32_t table_stride, uint32_t num_seqs, float rope_base,
    float interpolation_scale, float yarn_offset, float yarn_scale, float yarn_multiplier);

/* In-place RoPE over the Q and K heads of qkv rows: activations
 * f32[num_tokens][head_dim * (num_q_heads + 2 * num_kv_heads)]; V heads untouched;
 * token t is at position token_offset + t. No KV-cache write. head_dim even. */
enum gptoss_status gptoss_f32_rope(gptoss_backend_t backend, float* activations, float rope_base,
                                   float interpolation_scale, float yarn_offset, float yarn_scale,
                                   float yarn_multiplier, uint32_t num_tokens, uint32_t num_q_heads,
                                   uint32_t num_kv_heads, uint32_t head_dim, uint32_t token_offset);

/* ------------------------------------------------------------------------------------
 * Attention
 * ---------------------------------------------------------------------------------- */

/* Scaled dot-product attention with sinks, sliding window and GQA over the KV cache.
 *   q: f32 rows of head_dim * (num_q_heads + 2 * num_kv_heads) floats (a qkv buffer);
 *      only the Q part of each row is read. Row i is the query at absolute position
 *      P = num_kv_tokens + i.
 *   kv: one layer of the cache; kv head h, position t: K at kv[h*kv_stride + t*2*head_dim],
 *      V right after it. kv_stride is in floats (2 * max_tokens * head_dim for the
 *      engine's cache) and must be >= 2 * head_dim * (num_kv_tokens + num_q_tokens).
 *   sinks: bf16[num_q_heads] sink logits (NULL = no sinks).
 *   output: f32[num_q_tokens][num_q_heads * head_dim].
 * For query i, Q head hq, kv head h = hq / (num_q_heads / num_kv_heads):
 *   keys t with max(0, P + 1 - window) <= t <= P (the query's own position included);
 *   s_t = scale * q . K_t, S = f32(sinks[hq]) (-inf without sinks), M = max(S, max s_t);
 *   out = sum_t e^(s_t - M) V_t / (e^(S - M) + sum_t e^(s_t - M)).
 * window >= 1; UINT32_MAX = full causal attention (window 0 is rejected: upstream reads
 * it as "attend to nothing"). scale: 1/sqrt(head_dim) for checkpoint weights, 1.0 for
 * upstream model files (which fold it into Q and K). K/V of the query positions must
 * already be in the cache. Any GQA ratio; head_dim a multiple of 4. */
enum gptoss_status gptoss_f32_sdpa(gptoss_backend_t backend, const float* q, const float* kv,
                                   const gptoss_bf16* sinks, float* output, uint32_t window, uint64_t kv_stride,
                                   uint32_t num_q_tokens, uint32_t num_kv_tokens, uint32_t num_q_heads,
                                   uint32_t num_kv_heads, uint32_t head_dim, float scale);

/* gptoss_f32_sdpa for query rows of many sequences over a paged cache (see above the
 * varlen QKV kernel): row i (q row as in gptoss_f32_sdpa) is the query of sequence
 * seq_ids[i] at position P = positions[i]; it attends to the keys of that sequence at
 * positions max(0, P + 1 - window) .. P with the formula of gptoss_f32_sdpa (sinks, scale,
 * GQA), reading key t from the slot block_tables[s][t / block_size] * block_size +
 * t % block_size. Every such slot must hold the sequence's K/V (the block table entries
 * read must be below num_blocks). A row's result depends only on its own query, keys and
 * position, never on the other rows of the call: the same whether a sequence runs alone or
 * among others (batch invariance), bit for bit on the CPU backends. On CUDA, in a call of
 * 32 rows or more, runs of rows of one sequence at consecutive positions (prefill chunks)
 * are computed on tensor cores (exact to f32 rounding, but other bits than the kernel of
 * the other rows), so there a row's bits depend on whether its chunk ran that way (README,
 * "Batch invariance"). output f32[num_q_tokens][num_q_heads * head_dim]. head_dim a
 * multiple of 4. */
enum gptoss_status gptoss_f32_sdpa_varlen(gptoss_backend_t backend, const float* q, const float* kv,
                                          const gptoss_bf16* sinks, float* output, const uint32_t* positions,
                                          const uint32_t* seq_ids, const uint32_t* block_tables, uint32_t window,
                                          uint64_t kv_stride, uint32_t block_size, uint32_t table_stride,
                                          uint32_t num_q_tokens, uint32_t num_seqs, uint32_t num_q_heads,
                                          uint32_t num_kv_heads, uint32_t head_dim, float scale);

/* ------------------------------------------------------------------------------------
 * Unembedding
 * ---------------------------------------------------------------------------------- */

/* logits[t][v] = sum_c x[t][c] * w[v][c] (no bias), x f32[T][num_cols], w
 * bf16[num_rows][num_cols], logits f32[T][num_rows]; argmax[t] = index of the largest
 * logit of token t (lowest index on ties; order as upstream: +NaN > +inf > ... > -inf).
 * argmax is fully written (upstream needs it pre-filled with 0xFF). */
enum gptoss_status gptoss_f32_bf16w_unembedding(gptoss_backend_t backend, const float* input,
                                                const gptoss_bf16* weight, float* logits, uint32_t* argmax,
                                                uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows);

/* ------------------------------------------------------------------------------------
 * Mixture of experts. Routing data is kept as two parallel arrays, as in the seed's
 * Python ops: expert_ids u32[num_tokens][num_active_experts] and expert_scores
 * f32[num_tokens][num_active_experts] (slot j of token t at t*k + j).
 * ---------------------------------------------------------------------------------- */

/* Router: per token, picks the num_active_experts largest of scores f32[T][num_experts]
 * (descending; ties: lowest expert index; +0 == -0) and writes their ids and a softmax
 * over the selected logits: e_j = expf(v_j - v_0), score_j = e_j * (1 / sum_j e_j).
 * 1 <= num_active_experts <= num_experts. */
enum gptoss_status gptoss_f32_topk(gptoss_backend_t backend, const float* scores, uint32_t* expert_ids,
                                   float* expert_scores, uint32_t num_tokens, uint32_t num_experts,
                                   uint32_t num_active_experts);

/* The MoE gate of a layer in one call (a fusion of three kernels above; not an upstream
 * op): output = gptoss_f32_bf16w_rmsnorm(input, norm_weight, T, C, epsilon) (f32[T][C]),
 * scores = gptoss_f32_bf16w_matmul(output, router_weight, router_bias, T, C, num_experts)
 * (f32[T][num_experts]; router_bias may be NULL), then gptoss_f32_topk(scores,
 * expert_ids, expert_scores, T, num_experts, num_active_experts). Every output is
 * bit-identical to those three calls in sequence on the same backend; CUDA runs one kernel
 * for one token where C % 8 == 0, C <= 4096, num_experts <= 256 and input, output and
 * router_weight are 16-byte aligned (else the three kernels). The four outputs must not
 * overlap each other or any input (no in-place). */
enum gptoss_status gptoss_f32_bf16w_rmsnorm_matmul_topk(gptoss_backend_t backend, const float* input,
                                                        const gptoss_bf16* norm_weight, float* output,
                                                        const gptoss_bf16* router_weight,
                                                        const gptoss_bf16* router_bias, float* scores,
                                                        uint32_t* expert_ids, float* expert_scores,
                                                        uint32_t num_tokens, uint32_t num_channels,
                                                        uint32_t num_experts, uint32_t num_active_experts,
                                                        float epsilon);

/* Groups the num_pairs (token, slot) pairs by expert: expert_offsets u32[num_experts+1]
 * = exclusive prefix sum of the per-expert counts (expert_offsets[E] = num_pairs);
 * intra_expert_offsets u32[num_pairs] = rank of pair p among the pairs of its expert,
 * in increasing p (deterministic; upstream's order is arbitrary). */
enum gptoss_status gptoss_expert_routing_metadata(gptoss_backend_t backend, const uint32_t* expert_ids,
                                                  uint32_t* expert_offsets, uint32_t* intra_expert_offsets,
                                                  uint32_t num_pairs, uint32_t num_experts);

/* Copies token rows to their expert-grouped rows: for token t, slot j (p = t*k + j),
 * output[expert_offsets[expert_ids[p]] + intra_expert_offsets[p]][:] = input[t][:].
 * input f32[num_tokens][num_channels], output f32[num_tokens*k][num_channels]. */
enum gptoss_status gptoss_f32_scatter(gptoss_backend_t backend, const float* input, const uint32_t* expert_ids,
                                      const uint32_t* expert_offsets, const uint32_t* intra_expert_offsets,
                                      float* output, uint32_t num_channels, uint32_t num_tokens,
                                      uint32_t num_active_experts, uint32_t num_experts);

/* MXFP4 expert weights: expert e's mlp blocks, scales and bias start at
 * weight_blocks + e*expert_stride, weight_scales + e*expert_stride and
 * (const uint8_t*)bias + e*expert_stride (one byte stride for all three, as the model
 * file interleaves them). Per expert: blocks u8[rows][cols/32][16], scales
 * u8[rows][cols/32] stored with the model file's +14 bias (multiplier
 * 2^(stored - 14 - 127); see gptoss_mf4_f32_convert for raw scales), bias bf16[rows].
 * cols must be a multiple of 32. SwiGLU (limit L, alpha 1.702): g = min(glu, L),
 * l = clamp(lin, -L, L), out = g / (1 + expf(-1.702 g)) * (l + 1), with glu = row 2o and
 * lin = row 2o+1 of the up-projection. */

/* Decode up-projection + SwiGLU: input f32[T][num_cols]; output f32[k][T][num_rows]
 * (slot-major): output[j][t][o] = swiglu(row 2o, row 2o+1 of expert expert_ids[t*k+j]).
 * The expert's weight has 2*num_rows rows of num_cols. */
enum gptoss_status gptoss_f32_mf4w_moe_matmul_swiglu(gptoss_backend_t backend, const float* input,
                                                     const uint32_t* expert_ids, const uint8_t* weight_blocks,
                                                     const uint8_t* weight_scales, const gptoss_bf16* bias,
                                                     size_t expert_stride, float* output, uint32_t num_tokens,
                                                     uint32_t num_active_experts, uint32_t num_experts,
                                                     uint32_t num_cols, uint32_t num_rows, float swiglu_limit);

/* Decode down-projection: input f32[k][T][num_cols], output f32[k][T][num_rows]:
 * output[j][t][r] = input[j][t] . W_e[r] + b_e[r], e = expert_ids[t*k+j]. */
enum gptoss_status gptoss_f32_mf4w_moe_matmul(gptoss_backend_t backend, const float* input,
                                              const uint32_t* expert_ids, const uint8_t* weight_blocks,
                                              const uint8_t* weight_scales, const gptoss_bf16* bias,
                                              size_t expert_stride, float* output, uint32_t num_tokens,
                                              uint32_t num_active_experts, uint32_t num_experts, uint32_t num_cols,
                                              uint32_t num_rows);

/* Prefill up-projection + SwiGLU over expert-grouped rows: input f32[P][num_cols]
 * (P = num_tokens * num_active_experts, scatter's output), output f32[P][num_rows];
 * rows expert_offsets[e] .. expert_offsets[e+1]-1 use expert e. expert_offsets
 * u32[num_experts+1] must be non-decreasing from 0 to P. */
enum gptoss_status gptoss_f32_mf4w_moe_dense_matmul_swiglu(gptoss_backend_t backend, const uint32_t* expert_offsets,
                                                           const float* input, const uint8_t* weight_blocks,
                                                           const uint8_t* weight_scales, const gptoss_bf16* bias,
                                                           size_t expert_stride, float* output,
                                                           uint32_t num_tokens, uint32_t num_active_experts,
                                                           uint32_t num_experts, uint32_t num_cols,
                                                           uint32_t num_rows, float swiglu_limit);

/* Prefill down-projection over expert-grouped rows: input f32[P][num_cols], output
 * f32[P][num_rows]. Same offsets rule. */
enum gptoss_status gptoss_f32_mf4w_moe_dense_matmul(gptoss_backend_t backend, const uint32_t* expert_offsets,
                                                    const float* input, const uint8_t* weight_blocks,
                                                    const uint8_t* weight_scales, const gptoss_bf16* bias,
                                                    size_t expert_stride, float* output, uint32_t num_tokens,
                                                    uint32_t num_active_experts, uint32_t num_experts,
                                                    uint32_t num_cols, uint32_t num_rows);

/* residual[t][c] = fma(y_{k-1}, s_{k-1}, ... fma(y_0, s_0, residual[t][c])) with
 * y_j = input[expert_offsets[e_j] + intra_expert_offsets[t*k+j]][c], s_j =
 * expert_scores[t*k+j], slots in order 0..k-1. input f32[P][C], residual f32[T][C]. */
enum gptoss_status gptoss_f32_gather_and_accumulate(gptoss_backend_t backend, const float* input,
                                                    const uint32_t* expert_ids, const float* expert_scores,
                                                    const uint32_t* expert_offsets,
                                                    const uint32_t* intra_expert_offsets, float* residual,
                                                    uint32_t num_channels, uint32_t num_tokens,
                                                    uint32_t num_active_experts, uint32_t num_experts);

/* residual[t][c] = fma chain as above with y_j = input[j][t][c] (decode layout
 * f32[k][T][C]). */
enum gptoss_status gptoss_f32_accumulate(gptoss_backend_t backend, const float* input, const float* expert_scores,
                                         float* residual, uint32_t num_channels, uint32_t num_tokens,
                                         uint32_t num_active_experts);

/* ------------------------------------------------------------------------------------
 * Sampling
 * ---------------------------------------------------------------------------------- */

/* prob[t][i] = expf((logits[t][i] - m_t) / temperature), m_t = logits[t][argmax[t]],
 * sum[t] = sum_i prob[t][i]. temperature finite and > 0 (it DIVIDES, as in PyTorch and
 * llama.cpp; upstream multiplies, so upstream T equals 1/T here). argmax as produced by
 * gptoss_f32_bf16w_unembedding. */
enum gptoss_status gptoss_f32_softmax(gptoss_backend_t backend, const float* logits, const uint32_t* argmax,
                                      float* prob, float* sum, uint32_t num_tokens, uint32_t num_channels,
                                      float temperature);

/* Draws one index from unnormalised probabilities prob f32[num_channels] with total
 * *sum: u = (squares32(rng_offset, rng_seed) & 0xFFFFFF) * 2^-24, target =
 * max(u * sum, 2^-149); *prediction = smallest i whose inclusive prefix sum >= target
 * (the last index with prob > 0 if rounding leaves none). Same seed and offset, same
 * draw on one backend. */
enum gptoss_status gptoss_f32_sample(gptoss_backend_t backend, const float* prob, const float* sum,
                                     uint32_t* prediction, uint32_t num_channels, uint64_t rng_seed,
                                     uint64_t rng_offset);

/* Presence and frequency penalties (OpenAI's): where counts[i] != 0,
 * output[i] = logits[i] - (presence_penalty + frequency_penalty * (float) counts[i]) in
 * f32 (product, sum and difference each rounded once); elsewhere output[i] = logits[i]
 * (the same bits). counts u32[num_channels]: how often token i occurs in the context.
 * Penalties finite. output may be logits (in place); otherwise the buffers must not
 * overlap. */
enum gptoss_status gptoss_f32_apply_penalties(gptoss_backend_t backend, const float* logits, const uint32_t* counts,
                                              float* output, uint32_t num_channels, float presence_penalty,
                                              float frequency_penalty);

/* Draws one token from logits f32[num_channels] (temperature, top-k, top-p) into
 * *prediction, with the distribution of the engine's sampler (engine.h gptoss_sampler_*):
 *  1. Draw order: larger logit first, ties by lower index, -0 == +0, NaN after
 *     everything. m = the first logit in draw order. Every logit NaN: token 0.
 *     temperature == 0 or m not finite (+inf, or only -inf and NaN): the index of m.
 *  2. z_i = ((double) logit_i - (double) m) * (1 / (double) temperature), in double;
 *     the candidates are the i with z_i > -745 (NaN never), in draw order when
 *     top_k != 0 or top_p < 1, else in index order. top_k != 0 keeps the first top_k.
 *  3. Masses w_i = floor(exp(z_i) * 2^94) (exp in double), 128-bit integers;
 *     C_k = w_1 + ... + w_k, exactly.
 *  4. top_p < 1 keeps the first K, K = min { k : C_k >= top_p * C_n } (n kept by step 2;
 *     K = n when top_p is 1).
 *  5. u = squares32(rng_offset, rng_seed) & 0xFFFFFF: the token is candidate number
 *     min { i : 2^24 C_i > u C_K }.
 * Every sum and comparison is exact; only exp's last bit may differ between backends
 * (libm on the CPU, CUDA's exp on the device). The engine's host sampler adds exp(z_i) in
 * double, left to right: the tokens differ from it (and between backends) only where
 * u C_K or top_p C_n lies within that rounding (about n 2^-53 relative) of a prefix sum,
 * or on a candidate with exp(z) < 2^-94 (never drawn here). Same arguments, same token on
 * one backend. temperature finite and >= 0; top_p in (0, 1]; any top_k (0 = off). */
enum gptoss_status gptoss_f32_sample_logits(gptoss_backend_t backend, const float* logits, uint32_t* prediction,
                                            uint32_t num_channels, float temperature, uint32_t top_k, float top_p,
                                            uint64_t rng_seed, uint64_t rng_offset);

#ifdef __cplusplus
}
#endif

#endif /* GPTOSS_KERNELS_H */
