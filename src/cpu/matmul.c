/* CPU bf16-weight matrix products: matmul, matmul_add and the three "dense" names all run
 * one GEMM core, out[t][r] (=|+=) sum_c x[t][c] * f32(w[r][c]) + f32(b[r]).
 *
 * Work is split over OUTPUT ROWS (contiguous slices per thread), so every output element
 * is computed by exactly one thread, in an order that depends only on (num_tokens,
 * num_cols, isa) -- not on the row blocking or where a thread's slice starts: results do
 * not depend on the thread count.
 *
 * Two schedules, chosen by num_tokens only:
 *   - decode (<= DECODE_MAX_TOKENS tokens, memory-bound): each weight row is streamed
 *     from memory once and used for every token of the batch: 8 rows x 1 token, or
 *     groups of 12 rows (still in L1/L2 for the next token tile) as 4 rows x 3 tokens or
 *     6 rows x 2 tokens, accumulators in registers, software prefetch ahead along the
 *     rows (AVX2). The activations are first copied into a permuted
 *     layout (per chunk of 16/32 columns: even columns, then odd columns) so that a
 *     chunk of bf16 weights widens with one shift (even) and one AND (odd), no shuffles.
 *   - prefill (many tokens, compute-bound): a cache-blocked GEMM. Per panel of 64 rows and
 *     256 columns the weights are widened once into a thread-local f32 panel
 *     ([16-row strip][k][16]) and a register micro-kernel (6 tokens x 16 rows on AVX2,
 *     12 x 16 on AVX-512) accumulates over the panel into a thread-local f32 tile; the
 *     bias and the residual are applied once the whole row is summed.
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

/* Batches up to this many tokens use the decode schedule. */
#define DECODE_MAX_TOKENS 8
/* Prefill blocking: rows per panel (multiple of 16) and columns per panel. */
#define PANEL_ROWS 64
#define PANEL_COLS 256
/* Decode: software prefetch distance along a weight row, in elements (0 = none). A
 * prefetch past the end of a row lands in the next row or is dropped (no fault). */
#ifndef PREFETCH_DISTANCE
#define PREFETCH_DISTANCE 1024
#endif
/* Decode: rows per parallel grain. */
#define DECODE_GRAIN 8

struct gemm {
    const float* x;     /* [T][C] */
    const uint16_t* w;  /* [R][C] bf16 bits */
    const uint16_t* b;  /* [R] or NULL */
    float* out;         /* [T][R] */
    size_t T, C, R;
    bool add;
    /* decode: permuted activations [T][cmain], cmain = C rounded down to `chunk` */
    const float* xp;
    size_t cmain;
    /* prefill: per-thread scratch (panel + accumulator tile) */
    float* scratch;
    size_t scratch_floats; /* per thread */
};

static inline void finish(const struct gemm* g, size_t t, size_t r, float dot) {
    const float v = g->b != NULL ? dot + gptoss_bf16_to_f32(g->b[r]) : dot;
    float* o = &g->out[t * g->R + r];
    *o = g->add ? *o + v : v;
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

/* ------------------------------------------------------------------------------------
 * AVX2 + FMA
 * ---------------------------------------------------------------------------------- */

__attribute__((target("avx2,fma"))) static inline float hsum_avx2(__m256 v) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 h = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
}

/* NR rows starting at r x NT tokens starting at t, all columns. */
__attribute__((target("avx2,fma"), always_inline)) static inline void decode_block_avx2(const struct gemm* g,
                                                                                         size_t r, size_t t,
                                                                                         const int NR,
                                                                                         const int NT) {
    const size_t C = g->C, cmain = g->cmain;
    const __m256i hi_mask = _mm256_set1_epi32((int) 0xFFFF0000u);
    __m256 acc[8][3];
    const uint16_t* wr[8];
    const float* xr[3];
#pragma GCC unroll 8
    for (int i = 0; i < NR; i++) {
        wr[i] = g->w + (r + i) * C;
#pragma GCC unroll 3
        for (int j = 0; j < NT; j++) acc[i][j] = _mm256_setzero_ps();
    }
#pragma GCC unroll 3
    for (int j = 0; j < NT; j++) xr[j] = g->xp + (t + j) * cmain;
    for (size_t c = 0; c < cmain; c += 16) {
#pragma GCC unroll 8
        for (int i = 0; i < NR; i++) {
#if PREFETCH_DISTANCE
            if ((c & 16) == 0) _mm_prefetch((const char*) (wr[i] + c + PREFETCH_DISTANCE), _MM_HINT_T0);
#endif
            const __m256i wv = _mm256_loadu_si256((const __m256i*) (wr[i] + c));
            const __m256 we = _mm256_castsi256_ps(_mm256_slli_epi32(wv, 16));
            const __m256 wo = _mm256_castsi256_ps(_mm256_and_si256(wv, hi_mask));
#pragma GCC unroll 3
            for (int j = 0; j < NT; j++) {
                acc[i][j] = _mm256_fmadd_ps(we, _mm256_load_ps(xr[j] + c), acc[i][j]);
                acc[i][j] = _mm256_fmadd_ps(wo, _mm256_load_ps(xr[j] + c + 8), acc[i][j]);
            }
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < NR; i++) {
#pragma GCC unroll 3
        for (int j = 0; j < NT; j++) {
            const float* x = g->x + (t + j) * C;
            float tail = 0.0f;
            for (size_t c = cmain; c < C; c++) tail = fmaf(x[c], gptoss_bf16_to_f32(wr[i][c]), tail);
            finish(g, t + j, r + i, hsum_avx2(acc[i][j]) + tail);
        }
    }
}

__attribute__((target("avx2,fma"))) static void decode_rows_avx2(void* context, uint32_t thread_index,
                                                                  size_t begin, size_t end) {
    const struct gemm* g = context;
    const size_t T = g->T;
    size_t r = begin;
    if (T == 1) {
        /* One row at a time: a single sequential stream per thread, which the hardware
         * prefetchers follow better than 8 interleaved rows (docs/RESULTS.md). Each row
         * keeps its own accumulator either way, so results are identical. */
        for (; r < end; r++) decode_block_avx2(g, r, 0, 1, 1);
        return;
    }
    /* Blocks of 12 rows (still in L1 for the second token tile): 4 rows x 3 tokens or
     * 6 rows x 1-2 tokens per pass; remaining rows one at a time. */
    for (; r + 12 <= end; r += 12) {
        for (size_t t = 0; t < T;) {
            const size_t rem = T - t, tiles = (rem + 2) / 3, nt = (rem + tiles - 1) / tiles;
            if (nt == 3) {
                decode_block_avx2(g, r, t, 4, 3);
                decode_block_avx2(g, r + 4, t, 4, 3);
                decode_block_avx2(g, r + 8, t, 4, 3);
            } else if (nt == 2) {
                decode_block_avx2(g, r, t, 6, 2);
                decode_block_avx2(g, r + 6, t, 6, 2);
            } else {
                decode_block_avx2(g, r, t, 6, 1);
                decode_block_avx2(g, r + 6, t, 6, 1);
            }
            t += nt;
        }
    }
    for (; r < end; r++) {
        for (size_t t = 0; t < T;) {
            const size_t rem = T - t, tiles = (rem + 2) / 3, nt = (rem + tiles - 1) / tiles;
            if (nt == 3) decode_block_avx2(g, r, t, 1, 3);
            else if (nt == 2) decode_block_avx2(g, r, t, 1, 2);
            else decode_block_avx2(g, r, t, 1, 1);
            t += nt;
        }
    }
}

/* Widens rows [row0, row0 + nvalid) (nvalid <= 16), columns [pc, pc + kc) into
 * dst[k][16] (missing rows are zero). */
__attribute__((target("avx2,fma"))) static void pack_strip_avx2(const uint16_t* w, size_t C, size_t row0,
                                                                 size_t nvalid, size_t pc, size_t kc,
                                                                 float* dst) {
    size_t k = 0;
    if (nvalid == 16) {
        for (; k + 8 <= kc; k += 8) {
            for (int h = 0; h < 2; h++) {
                __m256 v[8];
                for (int i = 0; i < 8; i++) {
                    const __m128i raw = _mm_loadu_si128((const __m128i*) (w + (row0 + 8 * h + i) * C + pc + k));
                    v[i] = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
                }
                /* 8x8 transpose: v[i][j] (row i, column k+j) -> dst[k+j][8h+i] */
                const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
                const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
                const __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
                const __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
                const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
                const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
                const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
                const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
                float* d = dst + k * 16 + 8 * h;
                _mm256_store_ps(d + 0 * 16, _mm256_permute2f128_ps(u0, u4, 0x20));
                _mm256_store_ps(d + 1 * 16, _mm256_permute2f128_ps(u1, u5, 0x20));
                _mm256_store_ps(d + 2 * 16, _mm256_permute2f128_ps(u2, u6, 0x20));
                _mm256_store_ps(d + 3 * 16, _mm256_permute2f128_ps(u3, u7, 0x20));
                _mm256_store_ps(d + 4 * 16, _mm256_permute2f128_ps(u0, u4, 0x31));
                _mm256_store_ps(d + 5 * 16, _mm256_permute2f128_ps(u1, u5, 0x31));
                _mm256_store_ps(d + 6 * 16, _mm256_permute2f128_ps(u2, u6, 0x31));
                _mm256_store_ps(d + 7 * 16, _mm256_permute2f128_ps(u3, u7, 0x31));
            }
        }
    }
    for (; k < kc; k++) {
        for (size_t i = 0; i < 16; i++) {
            dst[k * 16 + i] = i < nvalid ? gptoss_bf16_to_f32(w[(row0 + i) * C + pc + k]) : 0.0f;
        }
    }
}

/* acc[MR tokens][16 rows] (+)= a[MR][0..kc) . b[0..kc)[16]; c is the f32 tile (row
 * stride PANEL_ROWS). */
__attribute__((target("avx2,fma"), always_inline)) static inline void micro_avx2(const int MR, const float* a,
                                                                                  size_t lda, const float* b,
                                                                                  size_t kc, float* c,
                                                                                  bool init) {
    __m256 acc[6][2];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        acc[i][0] = init ? _mm256_setzero_ps() : _mm256_load_ps(c + i * PANEL_ROWS);
        acc[i][1] = init ? _mm256_setzero_ps() : _mm256_load_ps(c + i * PANEL_ROWS + 8);
    }
    for (size_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_load_ps(b + k * 16), b1 = _mm256_load_ps(b + k * 16 + 8);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            const __m256 av = _mm256_broadcast_ss(a + i * lda + k);
            acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        _mm256_store_ps(c + i * PANEL_ROWS, acc[i][0]);
        _mm256_store_ps(c + i * PANEL_ROWS + 8, acc[i][1]);
    }
}

__attribute__((target("avx2,fma"))) static void micro_any_avx2(size_t mr, const float* a, size_t lda,
                                                                const float* b, size_t kc, float* c, bool init) {
    switch (mr) {
        case 6: micro_avx2(6, a, lda, b, kc, c, init); break;
        case 5: micro_avx2(5, a, lda, b, kc, c, init); break;
        case 4: micro_avx2(4, a, lda, b, kc, c, init); break;
        case 3: micro_avx2(3, a, lda, b, kc, c, init); break;
        case 2: micro_avx2(2, a, lda, b, kc, c, init); break;
        default: micro_avx2(1, a, lda, b, kc, c, init); break;
    }
}

/* Prefill schedule shared by AVX2 and AVX-512 (mr_max tokens per micro-kernel call). */
static void prefill_rows(const struct gemm* g, uint32_t thread_index, size_t begin, size_t end, size_t mr_max,
                         void (*micro)(size_t, const float*, size_t, const float*, size_t, float*, bool)) {
    const size_t T = g->T, C = g->C;
    float* panel = g->scratch + (size_t) thread_index * g->scratch_floats; /* [4][PANEL_COLS][16] */
    float* tile = panel + (size_t) (PANEL_ROWS / 16) * PANEL_COLS * 16;    /* [T][PANEL_ROWS] */
    for (size_t jc = begin; jc < end; jc += PANEL_ROWS) {
        const size_t nc = end - jc < PANEL_ROWS ? end - jc : PANEL_ROWS;
        const size_t strips = (nc + 15) / 16;
        for (size_t pc = 0; pc < C; pc += PANEL_COLS) {
            const size_t kc = C - pc < PANEL_COLS ? C - pc : PANEL_COLS;
            for (size_t s = 0; s < strips; s++) {
                const size_t valid = nc - 16 * s < 16 ? nc - 16 * s : 16;
                pack_strip_avx2(g->w, C, jc + 16 * s, valid, pc, kc, panel + s * PANEL_COLS * 16);
            }
            for (size_t t = 0; t < T; t += mr_max) {
                const size_t mr = T - t < mr_max ? T - t : mr_max;
                for (size_t s = 0; s < strips; s++) {
                    micro(mr, g->x + t * C + pc, C, panel + s * PANEL_COLS * 16, kc,
                          tile + t * PANEL_ROWS + 16 * s, pc == 0);
                }
            }
        }
        for (size_t t = 0; t < T; t++) {
            for (size_t i = 0; i < nc; i++) finish(g, t, jc + i, tile[t * PANEL_ROWS + i]);
        }
    }
}

__attribute__((target("avx2,fma"))) static void prefill_rows_avx2(void* context, uint32_t thread_index,
                                                                   size_t begin, size_t end) {
    prefill_rows(context, thread_index, begin, end, 6, micro_any_avx2);
}

/* ------------------------------------------------------------------------------------
 * AVX-512 (F/BW/VL): the AVX2 schedule with 512-bit vectors (32-column decode chunks,
 * 12-token micro-kernel over the same 16-row strips).
 * ---------------------------------------------------------------------------------- */

__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) static inline void decode_block_avx512(
    const struct gemm* g, size_t r, size_t t, const int NR, const int NT) {
    const size_t C = g->C, cmain = g->cmain;
    const __m512i hi_mask = _mm512_set1_epi32((int) 0xFFFF0000u);
    __m512 acc[8][3];
    const uint16_t* wr[8];
    const float* xr[3];
#pragma GCC unroll 8
    for (int i = 0; i < NR; i++) {
        wr[i] = g->w + (r + i) * C;
#pragma GCC unroll 3
        for (int j = 0; j < NT; j++) acc[i][j] = _mm512_setzero_ps();
    }
#pragma GCC unroll 3
    for (int j = 0; j < NT; j++) xr[j] = g->xp + (t + j) * cmain;
    for (size_t c = 0; c < cmain; c += 32) {
#pragma GCC unroll 8
        for (int i = 0; i < NR; i++) {
            const __m512i wv = _mm512_loadu_si512((const void*) (wr[i] + c));
            const __m512 we = _mm512_castsi512_ps(_mm512_slli_epi32(wv, 16));
            const __m512 wo = _mm512_castsi512_ps(_mm512_and_si512(wv, hi_mask));
#pragma GCC unroll 3
            for (int j = 0; j < NT; j++) {
                acc[i][j] = _mm512_fmadd_ps(we, _mm512_load_ps(xr[j] + c), acc[i][j]);
                acc[i][j] = _mm512_fmadd_ps(wo, _mm512_load_ps(xr[j] + c + 16), acc[i][j]);
            }
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < NR; i++) {
#pragma GCC unroll 3
        for (int j = 0; j < NT; j++) {
            const float* x = g->x + (t + j) * C;
            float tail = 0.0f;
            for (size_t c = cmain; c < C; c++) tail = fmaf(x[c], gptoss_bf16_to_f32(wr[i][c]), tail);
            finish(g, t + j, r + i, _mm512_reduce_add_ps(acc[i][j]) + tail);
        }
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) static void decode_rows_avx512(void* context,
                                                                                      uint32_t thread_index,
                                                                                      size_t begin, size_t end) {
    const struct gemm* g = context;
    const size_t T = g->T;
    size_t r = begin;
    if (T == 1) {
        for (; r + 8 <= end; r += 8) decode_block_avx512(g, r, 0, 8, 1);
        for (; r < end; r++) decode_block_avx512(g, r, 0, 1, 1);
        return;
    }
    /* Blocks of 12 rows (still in L1 for the second token tile): 4 rows x 3 tokens or
     * 6 rows x 1-2 tokens per pass; remaining rows one at a time. */
    for (; r + 12 <= end; r += 12) {
        for (size_t t = 0; t < T;) {
            const size_t rem = T - t, tiles = (rem + 2) / 3, nt = (rem + tiles - 1) / tiles;
            if (nt == 3) {
                decode_block_avx512(g, r, t, 4, 3);
                decode_block_avx512(g, r + 4, t, 4, 3);
                decode_block_avx512(g, r + 8, t, 4, 3);
            } else if (nt == 2) {
                decode_block_avx512(g, r, t, 6, 2);
                decode_block_avx512(g, r + 6, t, 6, 2);
            } else {
                decode_block_avx512(g, r, t, 6, 1);
                decode_block_avx512(g, r + 6, t, 6, 1);
            }
            t += nt;
        }
    }
    for (; r < end; r++) {
        for (size_t t = 0; t < T;) {
            const size_t rem = T - t, tiles = (rem + 2) / 3, nt = (rem + tiles - 1) / tiles;
            if (nt == 3) decode_block_avx512(g, r, t, 1, 3);
            else if (nt == 2) decode_block_avx512(g, r, t, 1, 2);
            else decode_block_avx512(g, r, t, 1, 1);
            t += nt;
        }
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) static inline void micro_avx512(
    const int MR, const float* a, size_t lda, const float* b, size_t kc, float* c, bool init) {
    __m512 acc[12];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) acc[i] = init ? _mm512_setzero_ps() : _mm512_load_ps(c + i * PANEL_ROWS);
    for (size_t k = 0; k < kc; k++) {
        const __m512 bv = _mm512_load_ps(b + k * 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i * lda + k]), bv, acc[i]);
    }
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) _mm512_store_ps(c + i * PANEL_ROWS, acc[i]);
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) static void micro_any_avx512(size_t mr, const float* a,
                                                                                    size_t lda, const float* b,
                                                                                    size_t kc, float* c, bool init) {
    switch (mr) {
        case 12: micro_avx512(12, a, lda, b, kc, c, init); break;
        case 11: micro_avx512(11, a, lda, b, kc, c, init); break;
        case 10: micro_avx512(10, a, lda, b, kc, c, init); break;
        case 9: micro_avx512(9, a, lda, b, kc, c, init); break;
        case 8: micro_avx512(8, a, lda, b, kc, c, init); break;
        case 7: micro_avx512(7, a, lda, b, kc, c, init); break;
        case 6: micro_avx512(6, a, lda, b, kc, c, init); break;
        case 5: micro_avx512(5, a, lda, b, kc, c, init); break;
        case 4: micro_avx512(4, a, lda, b, kc, c, init); break;
        case 3: micro_avx512(3, a, lda, b, kc, c, init); break;
        case 2: micro_avx512(2, a, lda, b, kc, c, init); break;
        default: micro_avx512(1, a, lda, b, kc, c, init); break;
    }
}

static void prefill_rows_avx512(void* context, uint32_t thread_index, size_t begin, size_t end) {
    prefill_rows(context, thread_index, begin, end, 12, micro_any_avx512);
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
        if (g.T <= DECODE_MAX_TOKENS) {
            const size_t chunk = wide ? 32 : 16;
            g.cmain = g.C / chunk * chunk;
            void* xp = NULL;
            GPTOSS_TRY(gptoss_cpu_scratch_acquire(backend, g.T * g.cmain * sizeof(float), &xp));
            if (g.cmain != 0) permute_activations(g.x, xp, g.T, g.C, g.cmain, chunk);
            g.xp = xp;
            gptoss_cpu_parallelize(backend, wide ? decode_rows_avx512 : decode_rows_avx2, &g, g.R, DECODE_GRAIN);
            gptoss_cpu_scratch_release(backend);
        } else {
            const uint32_t threads = gptoss_threadpool_num_threads(gptoss_cpu(backend)->pool);
            g.scratch_floats = (size_t) (PANEL_ROWS / 16) * PANEL_COLS * 16 + g.T * PANEL_ROWS;
            g.scratch_floats = (g.scratch_floats + 15) / 16 * 16; /* keep 64-byte alignment per thread */
            const size_t bytes = g.scratch_floats * sizeof(float) * threads;
            void* scratch = NULL;
            GPTOSS_TRY(gptoss_cpu_scratch_acquire(backend, bytes, &scratch));
            g.scratch = scratch;
            /* Whole panels per thread when there are enough rows, else 16-row strips (the
             * arithmetic of an element does not depend on where a slice starts). */
            const size_t grain = g.R >= (size_t) threads * 2 * PANEL_ROWS ? PANEL_ROWS : 16;
            gptoss_cpu_parallelize(backend, wide ? prefill_rows_avx512 : prefill_rows_avx2, &g, g.R, grain);
            gptoss_cpu_scratch_release(backend);
        }
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
