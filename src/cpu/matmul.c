/* CPU bf16-weight matrix products: matmul, matmul_add and the three "dense" names all run
 * one GEMM core, out[t][r] (=|+=) sum_c x[t][c] * f32(w[r][c]) + f32(b[r]).
 *
 * Work is split over OUTPUT ROWS (contiguous slices per thread), so every output element
 * is computed by exactly one thread, in an order that depends only on (num_cols, isa) --
 * not on the number of tokens, the row blocking or where a thread's slice starts: results
 * do not depend on the thread count, and a token's results do not depend on the other
 * tokens of the call (batch invariance: a sequence gives the same bits alone or in a
 * batch, however its prompt is split into chunks).
 *
 * One schedule, dot products: each output element has its own vector accumulator over the
 * columns (one lane per pair of columns of a 16/32-column chunk), summed horizontally at
 * the end, the columns past the last whole chunk added in order. One token: each weight
 * row is streamed from memory once, 8 rows at a time (8 independent accumulator chains;
 * no software prefetch: docs/CPU_NOTES.md). Several tokens: blocks of DOT_TOKENS tokens
 * (activations in L2), register tiles of 6 rows x 4 tokens (AVX-512) or 4 x 2 (AVX2) running over all the
 * columns, the tile's rows staying in L1 while the block's tokens pass. The activations
 * are first copied into a permuted layout (per chunk of 16/32 columns: even columns, then
 * odd columns) so that a chunk of bf16 weights widens with one shift (even) and one AND
 * (odd), no shuffles.
 * Widening is exact (bits << 16); activations stay f32 (no bf16 dot instructions). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/math.h"
#include "cpu/cpu.h"
#include "internal/error.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GPTOSS_CPU_X86 1
#else
#define GPTOSS_CPU_X86 0
#endif

/* Several tokens: tokens per cache block. */
#define DOT_TOKENS 96
/* Rows per parallel grain. */
#define DECODE_GRAIN 8

struct gemm {
    const float* x;     /* [T][C] */
    const uint16_t* w;  /* [R][C] bf16 bits */
    const uint16_t* b;  /* [R] or NULL */
    float* out;         /* [T][R] */
    size_t T, C, R;
    bool add;
    /* permuted activations [T][cmain], cmain = C rounded down to `chunk` */
    const float* xp;
    size_t cmain;
};

static inline void finish(const struct gemm* g, size_t t, size_t r, float dot) {
    const float v = g->b != NULL ? dot + gptoss_bf16_to_f32(g->b[r]) : dot;
    float* o = &g->out[t * g->R + r];
    *o = g->add ? *o + v : v;
}

/* The columns past the last whole chunk (x86 variants): row r for token t, in order. */
static inline float tail_dot(const struct gemm* g, size_t t, size_t r) {
    const float* x = g->x + t * g->C;
    const uint16_t* w = g->w + r * g->C;
    float tail = 0.0f;
    for (size_t c = g->cmain; c < g->C; c++) tail = fmaf(x[c], gptoss_bf16_to_f32(w[c]), tail);
    return tail;
}

/* ------------------------------------------------------------------------------------
 * Portable scalar variant: blocks of 64 rows so the rows stay in L2 while every token of
 * the batch passes over them; 4 partial sums per dot product.
 * ---------------------------------------------------------------------------------- */

static void scalar_rows(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct gemm* g = context;
    const size_t C = g->C;
    for (size_t r0 = begin; r0 < end; r0 += 64) {
        const size_t r1 = r0 + 64 < end ? r0 + 64 : end;
        for (size_t t = 0; t < g->T; t++) {
            const float* x = g->x + t * C;
            for (size_t r = r0; r < r1; r++) {
                const uint16_t* w = g->w + r * C;
                float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
                size_t c = 0;
                for (; c + 4 <= C; c += 4) {
                    s0 += x[c + 0] * gptoss_bf16_to_f32(w[c + 0]);
                    s1 += x[c + 1] * gptoss_bf16_to_f32(w[c + 1]);
                    s2 += x[c + 2] * gptoss_bf16_to_f32(w[c + 2]);
                    s3 += x[c + 3] * gptoss_bf16_to_f32(w[c + 3]);
                }
                for (; c < C; c++) s0 += x[c] * gptoss_bf16_to_f32(w[c]);
                finish(g, t, r, (s0 + s2) + (s1 + s3));
            }
        }
    }
}

#if GPTOSS_CPU_X86

/* Permuted activations for the decode kernels: per chunk of `chunk` columns, the
 * chunk/2 even columns then the chunk/2 odd ones. */
static void permute_activations(const float* x, float* xp, size_t T, size_t C, size_t cmain, size_t chunk) {
    const size_t half = chunk / 2;
    for (size_t t = 0; t < T; t++) {
        const float* xr = x + t * C;
        float* pr = xp + t * cmain;
        for (size_t c = 0; c < cmain; c += chunk) {
            for (size_t j = 0; j < half; j++) {
                pr[c + j] = xr[c + 2 * j];
                pr[c + half + j] = xr[c + 2 * j + 1];
            }
        }
    }
}

/* The dot schedule for several tokens: tokens in blocks of DOT_TOKENS (their activations
 * stay in L2), rows in tiles of nr_max (the tile's rows stay in L1 while every token tile
 * of the block passes over them), tiles of nr_max rows x nt_max tokens (the last rows and
 * tokens in smaller tiles). Every output element keeps its own accumulator over all
 * columns, so its value does not depend on the tile it falls in. */
static void dot_schedule(const struct gemm* g, size_t begin, size_t end, int nr_max, int nt_max,
                         void (*tile)(const struct gemm*, size_t, size_t, int, int)) {
    for (size_t t0 = 0; t0 < g->T; t0 += DOT_TOKENS) {
        const size_t t1 = g->T - t0 < DOT_TOKENS ? g->T : t0 + DOT_TOKENS;
        for (size_t r = begin; r < end;) {
            const int nr = end - r < (size_t) nr_max ? (int) (end - r) : nr_max;
            for (size_t t = t0; t < t1; t += (size_t) nt_max) {
                tile(g, r, t, nr, t1 - t < (size_t) nt_max ? (int) (t1 - t) : nt_max);
            }
            r += (size_t) nr;
        }
    }
}

/* ------------------------------------------------------------------------------------
 * AVX2 + FMA
 * ---------------------------------------------------------------------------------- */

__attribute__((target("avx2,fma"))) static inline float hsum_avx2(__m256 v) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 h = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}

/* One token: NR rows from r, all columns, one accumulator per row (its chain: two FMAs per
 * 16 columns). Eight rows in flight: one row alone was bound by its FMA chain (4 bytes a
 * cycle, 14.6 GB/s per core on Zen 4); eight streams without software prefetch read 21-23
 * GB/s on one core (with the prefetch of one row's stream 15: docs/CPU_NOTES.md). */
__attribute__((target("avx2,fma"), always_inline)) static inline void decode_block_avx2(const struct gemm* g, size_t r,
                                                                                         const int NR) {
    const __m256i hi_mask = _mm256_set1_epi32((int) 0xFFFF0000u);
    const uint16_t* w[8];
    __m256 acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < NR; i++) {
        w[i] = g->w + (r + i) * g->C;
        acc[i] = _mm256_setzero_ps();
    }
    for (size_t c = 0; c < g->cmain; c += 16) {
        const __m256 xe = _mm256_load_ps(g->xp + c), xo = _mm256_load_ps(g->xp + c + 8);
#pragma GCC unroll 8
        for (int i = 0; i < NR; i++) {
            const __m256i wv = _mm256_loadu_si256((const __m256i*) (w[i] + c));
            acc[i] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(wv, 16)), xe, acc[i]);
            acc[i] = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(wv, hi_mask)), xo, acc[i]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < NR; i++) finish(g, 0, r + i, hsum_avx2(acc[i]) + tail_dot(g, 0, r + i));
}

/* Several tokens: NR rows from r x NT tokens from t, all columns, the same arithmetic per
 * output as decode_block_avx2. Per chunk the even halves of the NR rows are widened and
 * used by every token, then the odd halves (NR x NT accumulators + NR weights + one
 * activation: 13 of the 16 registers at 4 x 2). */
__attribute__((target("avx2,fma"), always_inline)) static inline void dot_block_avx2(const struct gemm* g,
                                                                                      size_t r, size_t t,
                                                                                      const int NR,
                                                                                      const int NT) {
    const size_t C = g->C, cmain = g->cmain;
    const __m256i hi_mask = _mm256_set1_epi32((int) 0xFFFF0000u);
    __m256 acc[4][2];
    const uint16_t* wr[4];
    const float* xr[2];
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) {
        wr[i] = g->w + (r + i) * C;
#pragma GCC unroll 2
        for (int j = 0; j < NT; j++) acc[i][j] = _mm256_setzero_ps();
    }
#pragma GCC unroll 2
    for (int j = 0; j < NT; j++) xr[j] = g->xp + (t + j) * cmain;
    for (size_t c = 0; c < cmain; c += 16) {
        __m256 wh[4];
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) {
            wh[i] = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_loadu_si256((const __m256i*) (wr[i] + c)), 16));
        }
#pragma GCC unroll 2
        for (int j = 0; j < NT; j++) {
            const __m256 xe = _mm256_load_ps(xr[j] + c);
#pragma GCC unroll 4
            for (int i = 0; i < NR; i++) acc[i][j] = _mm256_fmadd_ps(wh[i], xe, acc[i][j]);
        }
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) {
            wh[i] = _mm256_castsi256_ps(_mm256_and_si256(_mm256_loadu_si256((const __m256i*) (wr[i] + c)), hi_mask));
        }
#pragma GCC unroll 2
        for (int j = 0; j < NT; j++) {
            const __m256 xo = _mm256_load_ps(xr[j] + c + 8);
#pragma GCC unroll 4
            for (int i = 0; i < NR; i++) acc[i][j] = _mm256_fmadd_ps(wh[i], xo, acc[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) {
#pragma GCC unroll 2
        for (int j = 0; j < NT; j++) finish(g, t + j, r + i, hsum_avx2(acc[i][j]) + tail_dot(g, t + j, r + i));
    }
}

/* The cases of a tile dispatch: nr rows (1..NR) x nt tokens (1..NT) -> block(g, r, t, nr, nt). */
#define DOT_CASE(block, NR, NT) \
    case (NR) * 8 + (NT): block(g, r, t, NR, NT); break;
#define DOT_CASES_2(block, NR) DOT_CASE(block, NR, 1) DOT_CASE(block, NR, 2)
#define DOT_CASES_4(block, NR) DOT_CASES_2(block, NR) DOT_CASE(block, NR, 3) DOT_CASE(block, NR, 4)

/* One tile of the dot schedule: nr (1..4) rows from r x nt (1..2) tokens from t. */
__attribute__((target("avx2,fma"))) static void dot_tile_avx2(const struct gemm* g, size_t r, size_t t, int nr,
                                                               int nt) {
    switch (nr * 8 + nt) {
        DOT_CASES_2(dot_block_avx2, 1)
        DOT_CASES_2(dot_block_avx2, 2)
        DOT_CASES_2(dot_block_avx2, 3)
        DOT_CASES_2(dot_block_avx2, 4)
        default: break;
    }
}

__attribute__((target("avx2,fma"))) static void decode_rows_avx2(void* context, uint32_t thread_index,
                                                                  size_t begin, size_t end) {
    const struct gemm* g = context;
    (void) thread_index;
    if (g->T == 1) {
        size_t r = begin;
        for (; r + 8 <= end; r += 8) decode_block_avx2(g, r, 8);
        for (; r < end; r++) decode_block_avx2(g, r, 1);
        return;
    }
    dot_schedule(g, begin, end, 4, 2, dot_tile_avx2);
}

/* ------------------------------------------------------------------------------------
 * AVX-512 (F/BW/VL): the AVX2 kernels with 512-bit vectors (32-column chunks).
 * ---------------------------------------------------------------------------------- */

/* One token: NR rows from r, all columns. Each row's line at the same columns of the next
 * NR rows is prefetched into L2 (prefetcht1): the next block's eight streams start warm
 * (2 threads on the 2-core EPYC, `gptoss bench --profile` at a 58 GB/s read pass:
 * unembedding 31.0 -> 27.1 ms a token, qkv 20.2 -> 17.2, attention output 14.5 -> 12.8; tg16
 * 8.56 -> 9.44 tok/s; docs/CPU_NOTES.md). The same on AVX2 measured within the noise. */
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) static inline void decode_block_avx512(
    const struct gemm* g, size_t r, const int NR) {
    const size_t C = g->C;
    const __m512i hi_mask = _mm512_set1_epi32((int) 0xFFFF0000u);
    __m512 acc[8];
    const uint16_t* wr[8];
#pragma GCC unroll 8
    for (int i = 0; i < NR; i++) {
        wr[i] = g->w + (r + i) * C;
        acc[i] = _mm512_setzero_ps();
    }
    for (size_t c = 0; c < g->cmain; c += 32) {
        __m512 we[8], wo[8];
#pragma GCC unroll 8
        for (int i = 0; i < NR; i++) {
            _mm_prefetch((const char*) (wr[i] + (size_t) NR * C + c), _MM_HINT_T1);
            const __m512i wv = _mm512_loadu_si512((const void*) (wr[i] + c));
            we[i] = _mm512_castsi512_ps(_mm512_slli_epi32(wv, 16));
            wo[i] = _mm512_castsi512_ps(_mm512_and_si512(wv, hi_mask));
        }
        const __m512 xe = _mm512_load_ps(g->xp + c), xo = _mm512_load_ps(g->xp + c + 16);
#pragma GCC unroll 8
        for (int i = 0; i < NR; i++) {
            acc[i] = _mm512_fmadd_ps(we[i], xe, acc[i]);
            acc[i] = _mm512_fmadd_ps(wo[i], xo, acc[i]);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < NR; i++) finish(g, 0, r + i, _mm512_reduce_add_ps(acc[i]) + tail_dot(g, 0, r + i));
}

/* Several tokens: NR rows from r x NT tokens from t, all columns, the same arithmetic per
 * output as decode_block_avx512. Per chunk the even halves of the NR rows are widened and
 * used by every token, then the odd halves (NR x NT accumulators + NR weights + one
 * activation: 31 of the 32 registers at 6 x 4). */
__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) static inline void dot_block_avx512(
    const struct gemm* g, size_t r, size_t t, const int NR, const int NT) {
    const size_t C = g->C, cmain = g->cmain;
    const __m512i hi_mask = _mm512_set1_epi32((int) 0xFFFF0000u);
    __m512 acc[6][4];
    const uint16_t* wr[6];
    const float* xr[4];
#pragma GCC unroll 6
    for (int i = 0; i < NR; i++) {
        wr[i] = g->w + (r + i) * C;
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) acc[i][j] = _mm512_setzero_ps();
    }
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) xr[j] = g->xp + (t + j) * cmain;
    for (size_t c = 0; c < cmain; c += 32) {
        __m512 wh[6];
#pragma GCC unroll 6
        for (int i = 0; i < NR; i++) {
            wh[i] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_loadu_si512((const void*) (wr[i] + c)), 16));
        }
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) {
            const __m512 xe = _mm512_load_ps(xr[j] + c);
#pragma GCC unroll 6
            for (int i = 0; i < NR; i++) acc[i][j] = _mm512_fmadd_ps(wh[i], xe, acc[i][j]);
        }
#pragma GCC unroll 6
        for (int i = 0; i < NR; i++) {
            wh[i] = _mm512_castsi512_ps(_mm512_and_si512(_mm512_loadu_si512((const void*) (wr[i] + c)), hi_mask));
        }
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) {
            const __m512 xo = _mm512_load_ps(xr[j] + c + 16);
#pragma GCC unroll 6
            for (int i = 0; i < NR; i++) acc[i][j] = _mm512_fmadd_ps(wh[i], xo, acc[i][j]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < NR; i++) {
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) {
            finish(g, t + j, r + i, _mm512_reduce_add_ps(acc[i][j]) + tail_dot(g, t + j, r + i));
        }
    }
}

/* One tile of the dot schedule: nr (1..6) rows from r x nt (1..4) tokens from t. */
__attribute__((target("avx512f,avx512bw,avx512vl"))) static void dot_tile_avx512(const struct gemm* g, size_t r,
                                                                                   size_t t, int nr, int nt) {
    switch (nr * 8 + nt) {
        DOT_CASES_4(dot_block_avx512, 1)
        DOT_CASES_4(dot_block_avx512, 2)
        DOT_CASES_4(dot_block_avx512, 3)
        DOT_CASES_4(dot_block_avx512, 4)
        DOT_CASES_4(dot_block_avx512, 5)
        DOT_CASES_4(dot_block_avx512, 6)
        default: break;
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) static void decode_rows_avx512(void* context,
                                                                                      uint32_t thread_index,
                                                                                      size_t begin, size_t end) {
    const struct gemm* g = context;
    (void) thread_index;
    if (g->T == 1) {
        size_t r = begin;
        for (; r + 8 <= end; r += 8) decode_block_avx512(g, r, 8);
        for (; r < end; r++) decode_block_avx512(g, r, 1);
        return;
    }
    dot_schedule(g, begin, end, 6, 4, dot_tile_avx512);
}

#endif /* GPTOSS_CPU_X86 */

/* ------------------------------------------------------------------------------------
 * Entry points
 * ---------------------------------------------------------------------------------- */

static enum gptoss_status gemm_run(gptoss_backend_t backend, const float* input, const gptoss_bf16* weight,
                                   const gptoss_bf16* bias, float* output, uint32_t num_tokens,
                                   uint32_t num_cols, uint32_t num_rows, bool add) {
    struct gemm g = {
        .x = input,
        .w = (const uint16_t*) weight,
        .b = (const uint16_t*) bias,
        .out = output,
        .T = num_tokens,
        .C = num_cols,
        .R = num_rows,
        .add = add,
    };
    const enum gptoss_cpu_isa isa = gptoss_cpu(backend)->isa;
#if GPTOSS_CPU_X86
    if (isa == gptoss_cpu_isa_avx2 || isa == gptoss_cpu_isa_avx512) {
        const bool wide = isa == gptoss_cpu_isa_avx512;
        const size_t chunk = wide ? 32 : 16;
        g.cmain = g.C / chunk * chunk;
        void* xp = NULL;
        GPTOSS_TRY(gptoss_cpu_scratch_acquire(backend, g.T * g.cmain * sizeof(float), &xp));
        if (g.cmain != 0) permute_activations(g.x, xp, g.T, g.C, g.cmain, chunk);
        g.xp = xp;
        gptoss_cpu_parallelize(backend, wide ? decode_rows_avx512 : decode_rows_avx2, &g, g.R, DECODE_GRAIN);
        gptoss_cpu_scratch_release(backend);
        return gptoss_status_success;
    }
#endif
    (void) isa;
    gptoss_cpu_parallelize(backend, scalar_rows, &g, g.R, 16);
    return gptoss_status_success;
}

enum gptoss_status gptoss_cpu_f32_bf16w_matmul(gptoss_backend_t backend,
                                               const struct gptoss_f32_bf16w_matmul_args* args) {
    return gemm_run(backend, args->input, args->weight, args->bias, args->output, args->num_tokens, args->num_cols,
                    args->num_rows, false);
}

enum gptoss_status gptoss_cpu_f32_bf16w_matmul_add(gptoss_backend_t backend,
                                                   const struct gptoss_f32_bf16w_matmul_add_args* args) {
    return gemm_run(backend, args->input, args->weight, args->bias, args->output, args->num_tokens, args->num_cols,
                    args->num_rows, true);
}

enum gptoss_status gptoss_cpu_f32_bf16w_dense_matmul_qkv(gptoss_backend_t backend,
                                                         const struct gptoss_f32_bf16w_dense_matmul_qkv_args* args) {
    return gemm_run(backend, args->input, args->weight, args->bias, args->output, args->num_tokens, args->num_cols,
                    args->num_rows, false);
}

enum gptoss_status gptoss_cpu_f32_bf16w_dense_matmul_attn_output(
    gptoss_backend_t backend, const struct gptoss_f32_bf16w_dense_matmul_attn_output_args* args) {
    return gemm_run(backend, args->input, args->weight, args->bias, args->output, args->num_tokens, args->num_cols,
                    args->num_rows, true);
}

enum gptoss_status gptoss_cpu_f32_bf16w_dense_matmul_mlp_gate(
    gptoss_backend_t backend, const struct gptoss_f32_bf16w_dense_matmul_mlp_gate_args* args) {
    return gemm_run(backend, args->input, args->weight, args->bias, args->output, args->num_tokens, args->num_cols,
                    args->num_rows, false);
}
