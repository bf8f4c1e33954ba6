/* CPU backend: the four MXFP4 expert matmuls (kernels.h; KERNELS.md 1.4, 1.8, 3.16-3.19).
 *
 * Weights of expert e: blocks u8[rows][cols/32][16], scales u8[rows][cols/32] (+14 biased:
 * multiplier 2^(stored-141), an exact f32 for every byte, made once per backend), bias
 * bf16[rows]; all three at base + e * expert_stride.
 *
 * One code path runs the four kernels. The input vectors (decode up-projection: token t; decode
 * down-projection: vector j*T + t of slot j; dense: the expert-grouped rows) are grouped by
 * expert: decode by a stable counting sort of the (token, slot) pairs, dense by the
 * expert_offsets ranges. Work items are (tile of MOE_TILE_ROWS weight rows, group), split
 * over the threads by work in expert-major order (moe_task); an item computes the dot
 * products of its rows with every vector of its group (in passes of up to
 * MOE_MAX_VECTORS), adds the bias and, for SwiGLU, combines the row pair (2o, 2o+1) into
 * output o. Each output is computed by one item, in an order set by the shapes, the size
 * of its group and the ISA only: results do not depend on the thread count.
 *
 * Dot products:
 *   scalar: per 32-element block a partial sum of fp4 * x in element order, then
 *           acc = fma(partial, multiplier, acc) (upstream's order); bias added last.
 *   SIMD:   the exact weights w = fp4 * 2^(scale - 141) (subnormals included) in the
 *           vectors' element order, acc = fma(w, x, acc) on one accumulator of 16
 *           (AVX-512) or 8 (AVX2) lanes per (row, vector) along the whole row, then a
 *           fixed horizontal sum.
 *           AVX-512, any group: rows_direct_avx512_n decodes 4 rows at a time in registers
 *             as they stream in (the next rows prefetched into L2), no copy, and runs them against
 *             a pass of up to 4 vectors (16 accumulators; passes balanced: 7 vectors = 3 +
 *             4); a group of more than 4 vectors decodes the rows once per pass, from L1.
 *             Per block each 8-byte half is broadcast to every qword by its load, shifted
 *             per lane to put one nibble at the bottom of each dword and looked up with
 *             vpermps in the block's row of the backend's scaled table (fp4 value x
 *             multiplier, one per scale byte). (Dequantising chunks into an L1 buffer for a register
 *             tile, as AVX2 does, cost 10 cycles per block in shuffles and stores: 40 % of
 *             a 64-token prefill call.)
 *           AVX2, two ways:
 *           - groups of more than MOE_DIRECT_MAX vectors (prefill): per chunk of
 *             MOE_CHUNK_BLOCKS blocks the tile's rows are dequantised into a per-thread
 *             buffer, then a register tile (4 rows x 2 vectors) runs over the chunk; the
 *             lane accumulators of every (row, vector) are kept between chunks. The chunk
 *             of weights and of the vectors stays in L1; each weight is decoded once per
 *             pass. (Decoding in registers measured slower here: the byte-shuffle decode
 *             and the multiplications by the block multipliers take the vector pipes.)
 *           - groups of 1 or 2 vectors (decode): 4 rows at a time decoded in registers
 *             as they stream in, by byte shuffles in the two blocks' scaled bf16 byte
 *             tables (no multiplications; a block pair with a scale byte below
 *             GPTOSS_CPU_MXFP4_BF16_MIN, whose products are not bf16: the fp4 values times
 *             the multipliers). 10 % faster than multiplying every pair. With one vector
 *             two rows' pairs are decoded together and their FMAs interleaved: each row's
 *             8 FMAs a pair form one dependent chain (the invariant order), and two chains
 *             in program order keep both FMA pipes fed (+4-6 %).
 *           So a vector's results do not depend on the size of its group: a token's
 *           outputs are the same alone or in a batch (tests/test_invariance.c).
 * The vectors are permuted once per call into the decoded element order
 * (permute_input_avx512, permute_input_avx2). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common/math.h"
#include "cpu/cpu.h"
#include "internal/error.h"

#define MOE_TILE_ROWS 16    /* weight rows per work item (even: a SwiGLU pair stays together) */
#define MOE_ITEM_COST 2     /* work of decoding an item's rows, in dot products of its rows with a vector */
#define MOE_CHUNK_BLOCKS 8  /* blocks per chunk of the dequantised tile (even: AVX2 decodes pairs) */
#define MOE_SMALL_GROUP 16  /* groups of up to this many vectors use chunks of half as many blocks
                               (AVX2, 64-token prefill on Zen 4: 140 -> 134 ms; no change at 128 and 512 tokens) */
#define MOE_MAX_VECTORS 32  /* vectors per pass over a tile */
#define MOE_DIRECT_MAX 2    /* AVX2: groups of up to this many vectors decode in registers */

/* Per-thread scratch of the dequantising path (AVX2): the tile's chunk of weights
 * [MOE_TILE_ROWS][cb * 32] (cb <= MOE_CHUNK_BLOCKS blocks) and the lane accumulators [MOE_TILE_ROWS][n][8]
 * for a pass of n <= MOE_MAX_VECTORS vectors, packed: with a fixed row stride of
 * MOE_MAX_VECTORS slots the rows of a pass fell on a quarter of L1's sets (a 64-token
 * prefill call 150 -> 140 ms on Zen 4 packed). */
#define MOE_WBUF_FLOATS (MOE_TILE_ROWS * MOE_CHUNK_BLOCKS * 32)
#define MOE_THREAD_FLOATS (MOE_WBUF_FLOATS + MOE_TILE_ROWS * MOE_MAX_VECTORS * 8)

struct moe_run {
    const uint8_t* blocks;
    const uint8_t* scales;
    const uint8_t* bias;
    size_t expert_stride;
    const float* x;               /* vectors: permuted (SIMD) or natural (scalar) */
    size_t xstride;               /* floats between two vectors */
    float* output;
    const uint32_t* group_expert; /* [num_groups] */
    const uint32_t* group_begin;  /* [num_groups + 1] into the pair lists */
    const uint32_t* pair_vector;  /* [P], grouped by expert: input vector index */
    const uint32_t* pair_output;  /* [P], grouped by expert: output vector index */
    uint32_t num_groups;
    uint32_t num_cols;
    uint32_t num_weight_rows;     /* 2 * num_out for SwiGLU */
    uint32_t num_out;             /* outputs per vector */
    uint32_t num_shares;          /* work shares (one per thread) */
    int swiglu;
    float limit;
    enum gptoss_cpu_isa isa;
    const float* mult;            /* [256] multipliers */
    const float (*tables)[16];    /* [256][16] fp4 values times each multiplier */
    const uint8_t (*bf16_bytes)[2][16]; /* [256][2][16]: bytes 2 and 3 of the same (bf16) */
    float* scratch;               /* AVX2: MOE_THREAD_FLOATS per thread, blocks thread_stride apart */
    size_t thread_stride;         /* gptoss_cpu_thread_stride(MOE_THREAD_FLOATS) */
};

typedef float moe_sums[MOE_TILE_ROWS][MOE_MAX_VECTORS];

static inline float bias_value(const uint8_t* bias_base, size_t offset, uint32_t row) {
    if (bias_base == NULL) return 0.0f;
    const gptoss_bf16* b = (const gptoss_bf16*) (bias_base + offset);
    return gptoss_bf16_to_f32(b[row].bits);
}

/* sums[n] = sum over blocks of (partial of row . x_n) * multiplier, natural order */
static void row_dot_scalar(const uint8_t* blocks, const uint8_t* scales, uint32_t nb, const float* const* x,
                           uint32_t n, const float* mult, float* sums) {
    for (uint32_t v = 0; v < n; v++) {
        float acc = 0.0f;
        for (uint32_t b = 0; b < nb; b++) {
            const uint8_t* q = blocks + (size_t) b * 16;
            const float* xb = x[v] + (size_t) b * 32;
            float ps = gptoss_fp4_values[q[0] & 15] * xb[0];
            ps = fmaf(gptoss_fp4_values[q[0] >> 4], xb[1], ps);
            for (int j = 1; j < 16; j++) {
                ps = fmaf(gptoss_fp4_values[q[j] & 15], xb[2 * j], ps);
                ps = fmaf(gptoss_fp4_values[q[j] >> 4], xb[2 * j + 1], ps);
            }
            acc = fmaf(ps, mult[scales[b]], acc);
        }
        sums[v] = acc;
    }
}

#if defined(__x86_64__)

#define AVX2 __attribute__((target("avx2,fma")))

/* Decoded element order of a pair of blocks (A = 2bp, B = 2bp + 1), 64 floats:
 * vector w (0..7), lane i (0..7): block 2bp + i/4, element
 * 16*((w/2)%2) + 4*(i%4) + 2*(w%2) + w/4 (see decode_pair_bf16).
 * A lone last block (odd count) uses the lane-0 half only: 32 floats, vector w (0..7) of
 * 4 floats, lane q: element 16*((w/2)%2) + 4*q + 2*(w%2) + w/4. */
#define MOE_PERM_ELEM(w, q) (16 * (((w) / 2) % 2) + 4 * (q) + 2 * ((w) % 2) + (w) / 4)
AVX2 static void permute_input_avx2(const float* x, float* xp, uint32_t nb) {
    uint32_t bp = 0;
    for (; 2 * bp + 1 < nb; bp++) {
#pragma GCC unroll 8
        for (int w = 0; w < 8; w++) {
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) {
                xp[64 * bp + 8 * w + i] = x[32 * (2 * bp + i / 4) + MOE_PERM_ELEM(w, i % 4)];
            }
        }
    }
    if (nb % 2) {
#pragma GCC unroll 8
        for (int w = 0; w < 8; w++) {
#pragma GCC unroll 8
            for (int qq = 0; qq < 4; qq++) xp[64 * bp + 4 * w + qq] = x[32 * (2 * bp) + MOE_PERM_ELEM(w, qq)];
        }
    }
}

/* f32 bytes 3 and 2 of the fp4 values by nibble (bytes 0 and 1 are zero). */
#define FP4_B3 0x00, 0x3F, 0x3F, 0x3F, 0x40, 0x40, 0x40, 0x40, 0x80, 0xBF, 0xBF, 0xBF, 0xC0, 0xC0, 0xC0, 0xC0
#define FP4_B2 0x00, 0x00, 0x80, 0xC0, 0x00, 0x40, 0x80, 0xC0, 0x00, 0x00, 0x80, 0xC0, 0x00, 0x40, 0x80, 0xC0

/* Decodes 32 bytes (two blocks) into the bf16 bits of 64 values in d[4] (16-bit lanes; the
 * order above, through pair_vector): two byte shuffles per nibble vector look up bytes 3
 * and 2 of the f32 in the tables t3 and t2 (one 16-entry table per 128-bit lane = per
 * block: the plain fp4 values, or the values times the block's multiplier), and one unpack
 * per 16 values pairs them into 16-bit lanes. pair_vector then makes the even 16-bit lanes
 * f32 by a 16-bit left shift and the odd ones by masking the low half (fewer shuffle-port
 * uops than unpacking against zero twice). */
AVX2 static inline __attribute__((always_inline)) void decode_pair_bf16(const uint8_t* q, __m256i t3, __m256i t2,
                                                                       __m256i d[4]) {
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i raw = _mm256_loadu_si256((const __m256i*) q);
    const __m256i lo = _mm256_and_si256(raw, low4);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
    const __m256i l3 = _mm256_shuffle_epi8(t3, lo), l2 = _mm256_shuffle_epi8(t2, lo);
    const __m256i h3 = _mm256_shuffle_epi8(t3, hi), h2 = _mm256_shuffle_epi8(t2, hi);
    d[0] = _mm256_unpacklo_epi8(l2, l3), d[1] = _mm256_unpackhi_epi8(l2, l3);
    d[2] = _mm256_unpacklo_epi8(h2, h3), d[3] = _mm256_unpackhi_epi8(h2, h3);
}

/* Vector j (0..7) of a decoded pair: the even 16-bit lanes of d[j / 2] (j even) or the odd
 * ones (j odd) as f32. */
AVX2 static inline __attribute__((always_inline)) __m256 pair_vector(const __m256i d[4], int j) {
    return _mm256_castsi256_ps(j % 2 == 0 ? _mm256_slli_epi32(d[j / 2], 16)
                                          : _mm256_and_si256(d[j / 2], _mm256_set1_epi32((int) 0xFFFF0000u)));
}

/* The multipliers of the blocks s[0] and s[1], one per 128-bit lane. */
AVX2 static inline __m256 pair_multipliers(const float* mult, const uint8_t* s) {
    return _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_broadcast_ss(&mult[s[0]])), _mm_broadcast_ss(&mult[s[1]]),
                                1);
}

/* acc[v] = fma(w_j, xp[v] + 8 j, acc[v]) for the 8 vectors w_j of a decoded pair, in order;
 * w_j times m first when MUL (N, MUL compile-time constants after inlining). */
AVX2 static inline __attribute__((always_inline)) void fma_pair(__m256 acc[2], const __m256i d[4], const int MUL,
                                                               __m256 m, const float* const* xp, const int N) {
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
        const __m256 wj = MUL ? _mm256_mul_ps(pair_vector(d, j), m) : pair_vector(d, j);
#pragma GCC unroll 2
        for (int v = 0; v < N; v++) acc[v] = _mm256_fmadd_ps(wj, _mm256_load_ps(xp[v] + 8 * j), acc[v]);
    }
}

/* Same for one block (16 bytes): 8 vectors of 4. */
AVX2 static inline void decode_single(const uint8_t* q, __m128 w[8]) {
    const __m128i t3 = _mm_setr_epi8(FP4_B3);
    const __m128i t2 = _mm_setr_epi8(FP4_B2);
    const __m128i low4 = _mm_set1_epi8(0x0F);
    const __m128i himask = _mm_set1_epi32((int) 0xFFFF0000u);
    const __m128i raw = _mm_loadu_si128((const __m128i*) q);
    const __m128i lo = _mm_and_si128(raw, low4);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), low4);
    const __m128i l3 = _mm_shuffle_epi8(t3, lo), l2 = _mm_shuffle_epi8(t2, lo);
    const __m128i h3 = _mm_shuffle_epi8(t3, hi), h2 = _mm_shuffle_epi8(t2, hi);
    const __m128i v0 = _mm_unpacklo_epi8(l2, l3), v1 = _mm_unpackhi_epi8(l2, l3);
    const __m128i v2 = _mm_unpacklo_epi8(h2, h3), v3 = _mm_unpackhi_epi8(h2, h3);
    w[0] = _mm_castsi128_ps(_mm_slli_epi32(v0, 16));
    w[1] = _mm_castsi128_ps(_mm_and_si128(v0, himask));
    w[2] = _mm_castsi128_ps(_mm_slli_epi32(v1, 16));
    w[3] = _mm_castsi128_ps(_mm_and_si128(v1, himask));
    w[4] = _mm_castsi128_ps(_mm_slli_epi32(v2, 16));
    w[5] = _mm_castsi128_ps(_mm_and_si128(v2, himask));
    w[6] = _mm_castsi128_ps(_mm_slli_epi32(v3, 16));
    w[7] = _mm_castsi128_ps(_mm_and_si128(v3, himask));
}

AVX2 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* decode_pair_bf16 in the blocks' scaled byte tables (both scale bytes >=
 * GPTOSS_CPU_MXFP4_BF16_MIN: the products are bf16). */
AVX2 static inline __attribute__((always_inline)) void decode_pair_scaled(const uint8_t* q, const uint8_t* s,
                                                                         const uint8_t (*bytes)[2][16], __m256i d[4]) {
    decode_pair_bf16(q, _mm256_loadu2_m128i((const __m128i*) bytes[s[1]][1], (const __m128i*) bytes[s[0]][1]),
                     _mm256_loadu2_m128i((const __m128i*) bytes[s[1]][0], (const __m128i*) bytes[s[0]][0]), d);
}

/* One row's pair of blocks bp into acc[0..N) (rows_direct_avx2_n). */
AVX2 static inline __attribute__((always_inline)) void row_pair_avx2(__m256 acc[2], const uint8_t* q, const uint8_t* s,
                                                                    const float* const* xp, const int N,
                                                                    const float* mult,
                                                                    const uint8_t (*bytes)[2][16]) {
    __m256i d[4];
    if (s[0] >= GPTOSS_CPU_MXFP4_BF16_MIN && s[1] >= GPTOSS_CPU_MXFP4_BF16_MIN) {
        /* the products are bf16: the blocks' scaled byte tables give them */
        decode_pair_scaled(q, s, bytes, d);
        fma_pair(acc, d, 0, _mm256_setzero_ps(), xp, N);
    } else {
        /* subnormal products: the fp4 values times the multipliers */
        decode_pair_bf16(q, _mm256_setr_epi8(FP4_B3, FP4_B3), _mm256_setr_epi8(FP4_B2, FP4_B2), d);
        fma_pair(acc, d, 1, pair_multipliers(mult, s), xp, N);
    }
}

/* Rows [0, NR) of a tile against N = 1 or 2 permuted vectors, decoded in registers as
 * they stream in (NR, N compile-time constants after inlining): the same arithmetic as
 * the dequantising path below (tile_dots_avx2), so that a vector's result does not depend
 * on how many vectors its group has. Per pair of blocks and row the 8 decoded vectors
 * times the blocks' multipliers (exact), then acc = fma(w_j, x_j, acc) for j = 0..7 on
 * one 8-lane accumulator per (row, vector); a lone last block pairs its 4-float vectors.
 * Finally hsum256. The next rows of the same tile position are prefetched into L2. */
AVX2 static inline __attribute__((always_inline)) void rows_direct_avx2_n(const uint8_t* blocks,
                                                                         const uint8_t* scales, uint32_t nb,
                                                                         const int NR, const float* const* x,
                                                                         const int N, const float* mult,
                                                                         const uint8_t (*bytes)[2][16],
                                                                         moe_sums sums) {
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) {
#pragma GCC unroll 2
        for (int v = 0; v < N; v++) acc[i][v] = _mm256_setzero_ps();
    }
    const size_t row = (size_t) nb * 16;
    const uint32_t npairs = nb / 2;
    for (uint32_t bp = 0; bp < npairs; bp++) {
        const float* xp[2];
#pragma GCC unroll 2
        for (int v = 0; v < N; v++) xp[v] = x[v] + 64 * (size_t) bp;
#pragma GCC unroll 2
        for (int i = 0; i < NR; i += 2) {
            const uint8_t* q = blocks + i * row + 32 * (size_t) bp;
            const uint8_t* s = scales + (size_t) i * nb + 2 * bp;
            const int two = i + 1 < NR; /* rows i and i + 1 */
            const uint8_t* s1 = s + nb;
            _mm_prefetch((const char*) (q + NR * row), _MM_HINT_T1);
            if (two) _mm_prefetch((const char*) (q + (NR + 1) * row), _MM_HINT_T1);
            /* one vector, both rows' products bf16: the two rows at once, their FMAs
             * interleaved (two chains in flight, each vector of x loaded once for both), the
             * same order per row; with two vectors the 4 accumulators leave no registers
             * for two decoded pairs */
            if (two && N == 1 && s[0] >= GPTOSS_CPU_MXFP4_BF16_MIN && s[1] >= GPTOSS_CPU_MXFP4_BF16_MIN &&
                s1[0] >= GPTOSS_CPU_MXFP4_BF16_MIN && s1[1] >= GPTOSS_CPU_MXFP4_BF16_MIN) {
                __m256i d0[4], d1[4];
                decode_pair_scaled(q, s, bytes, d0);
                decode_pair_scaled(q + row, s1, bytes, d1);
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) {
                    const __m256 xj = _mm256_load_ps(xp[0] + 8 * j);
                    acc[i][0] = _mm256_fmadd_ps(pair_vector(d0, j), xj, acc[i][0]);
                    acc[i + 1][0] = _mm256_fmadd_ps(pair_vector(d1, j), xj, acc[i + 1][0]);
                }
            } else {
                row_pair_avx2(acc[i], q, s, xp, N, mult, bytes);
                if (two) row_pair_avx2(acc[i + 1], q + row, s1, xp, N, mult, bytes);
            }
        }
    }
    if (nb % 2) {
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) {
            __m128 w[8];
            decode_single(blocks + i * row + 32 * (size_t) npairs, w);
            const __m128 m = _mm_broadcast_ss(&mult[scales[(size_t) i * nb + nb - 1]]);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                const __m256 wj = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_mul_ps(w[2 * j], m)),
                                                       _mm_mul_ps(w[2 * j + 1], m), 1);
#pragma GCC unroll 2
                for (int v = 0; v < N; v++) {
                    acc[i][v] = _mm256_fmadd_ps(wj, _mm256_load_ps(x[v] + 64 * (size_t) npairs + 8 * j), acc[i][v]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) {
#pragma GCC unroll 2
        for (int v = 0; v < N; v++) sums[i][v] = hsum256(acc[i][v]);
    }
}

/* Rows [0, nr) of a tile against n = 1 or 2 vectors: rows_direct_avx2_n 4 rows at a time. */
AVX2 static void tile_direct_avx2(const uint8_t* blocks, const uint8_t* scales, uint32_t nb, uint32_t nr,
                                  const float* const* x, uint32_t n, const float* mult,
                                  const uint8_t (*bytes)[2][16], moe_sums sums) {
    for (uint32_t i = 0; i < nr; i += 4) {
        const uint8_t* q = blocks + (size_t) i * nb * 16;
        const uint8_t* s = scales + (size_t) i * nb;
#define MOE_DIRECT_CASE(R, N) \
    case (R) * 4 + (N): rows_direct_avx2_n(q, s, nb, R, x, N, mult, bytes, sums + i); break;
        switch ((nr - i < 4 ? nr - i : 4) * 4 + n) {
            MOE_DIRECT_CASE(4, 1) MOE_DIRECT_CASE(4, 2) MOE_DIRECT_CASE(3, 1) MOE_DIRECT_CASE(3, 2)
            MOE_DIRECT_CASE(2, 1) MOE_DIRECT_CASE(2, 2) MOE_DIRECT_CASE(1, 2)
            default: rows_direct_avx2_n(q, s, nb, 1, x, 1, mult, bytes, sums + i);
        }
#undef MOE_DIRECT_CASE
    }
}

/* The dequantising path reads each row of a tile a chunk at a time (rows far apart for the
 * hardware prefetchers): the next chunk of the row, or the next row's start, is requested
 * while this one is decoded and multiplied. */
static inline void prefetch_next_chunk(const uint8_t* q, const uint8_t* s, uint32_t cb) {
    __builtin_prefetch(q + cb * 16);
    __builtin_prefetch(q + cb * 16 + 64);
    __builtin_prefetch(s + cb);
}

/* Dequantises rows [0, nr) of a tile (row pointers at `blocks`, `scales`, row strides
 * nb * 16 and nb), blocks [b0, b0 + cb) (b0 even), into w[row][cb * 32] in
 * the permuted order of permute_input_avx2: fp4 * multiplier, exact. */
AVX2 static void dequantize_chunk_avx2(const uint8_t* blocks, const uint8_t* scales, uint32_t nb, uint32_t nr,
                                       uint32_t b0, uint32_t cb, const float* mult, float* w) {
    for (uint32_t i = 0; i < nr; i++) {
        const uint8_t* q = blocks + ((size_t) i * nb + b0) * 16;
        const uint8_t* s = scales + (size_t) i * nb + b0;
        float* out = w + (size_t) i * cb * 32;
        prefetch_next_chunk(q, s, cb);
        uint32_t b = 0;
        for (; b + 2 <= cb; b += 2) {
            __m256i d[4];
            decode_pair_bf16(q + 16 * b, _mm256_setr_epi8(FP4_B3, FP4_B3), _mm256_setr_epi8(FP4_B2, FP4_B2), d);
            const __m256 m = pair_multipliers(mult, s + b);
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) _mm256_store_ps(out + 32 * b + 8 * j, _mm256_mul_ps(pair_vector(d, j), m));
        }
        if (b < cb) {
            __m128 v[8];
            decode_single(q + 16 * b, v);
            const __m128 m = _mm_broadcast_ss(&mult[s[b]]);
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++) _mm_store_ps(out + 32 * b + 4 * j, _mm_mul_ps(v[j], m));
        }
    }
}

/* acc[NI rows][NV vectors][8] (+)= w[i][0..len) . x[j][0..len) lane by lane; rows of w len floats apart,
 * row i of acc at i * an * 8. */
AVX2 static inline __attribute__((always_inline)) void tile_avx2(const int NI, const int NV, const float* w,
                                                                const float* const* x, size_t xo, size_t len,
                                                                float* acc, size_t an, int first) {
    __m256 a[4][2];
#pragma GCC unroll 4
    for (int i = 0; i < NI; i++) {
#pragma GCC unroll 2
        for (int j = 0; j < NV; j++) {
            a[i][j] = first ? _mm256_setzero_ps() : _mm256_load_ps(acc + ((size_t) i * an + j) * 8);
        }
    }
    for (size_t k = 0; k < len; k += 8) {
        __m256 xv[2];
#pragma GCC unroll 2
        for (int j = 0; j < NV; j++) xv[j] = _mm256_load_ps(x[j] + xo + k);
#pragma GCC unroll 4
        for (int i = 0; i < NI; i++) {
            /* one load per row (a register operand), not one per fma */
            __m256 wv = _mm256_load_ps(w + (size_t) i * len + k);
            __asm__("" : "+x"(wv));
#pragma GCC unroll 2
            for (int j = 0; j < NV; j++) a[i][j] = _mm256_fmadd_ps(wv, xv[j], a[i][j]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NI; i++) {
#pragma GCC unroll 2
        for (int j = 0; j < NV; j++) _mm256_store_ps(acc + ((size_t) i * an + j) * 8, a[i][j]);
    }
}

AVX2 static void tile_any_avx2(uint32_t ni, uint32_t nv, const float* w, const float* const* x, size_t xo,
                               size_t len, float* acc, size_t an, int first) {
#define MOE_TILE_CASE(I, J) \
    case (I) * 4 + (J): tile_avx2(I, J, w, x, xo, len, acc, an, first); break;
    switch (ni * 4 + nv) {
        MOE_TILE_CASE(4, 2) MOE_TILE_CASE(4, 1) MOE_TILE_CASE(3, 2) MOE_TILE_CASE(3, 1)
        MOE_TILE_CASE(2, 2) MOE_TILE_CASE(2, 1) MOE_TILE_CASE(1, 2) default: tile_avx2(1, 1, w, x, xo, len, acc, an, first);
    }
#undef MOE_TILE_CASE
}

/* sums[i][v] = row i of the tile . x[v] through the dequantised chunks (n > MOE_DIRECT_MAX). */
AVX2 static void tile_dots_avx2(const uint8_t* blocks, const uint8_t* scales, uint32_t nb, uint32_t nr,
                                const float* const* x, uint32_t n, const float* mult, float* scratch,
                                moe_sums sums) {
    float* w = scratch;
    float* acc = scratch + MOE_WBUF_FLOATS;
    const uint32_t chunk = n <= MOE_SMALL_GROUP ? MOE_CHUNK_BLOCKS / 2 : MOE_CHUNK_BLOCKS;
    for (uint32_t b0 = 0; b0 < nb; b0 += chunk) {
        const uint32_t cb = nb - b0 < chunk ? nb - b0 : chunk;
        dequantize_chunk_avx2(blocks, scales, nb, nr, b0, cb, mult, w);
        for (uint32_t v = 0; v < n; v += 2) {
            const uint32_t nv = n - v < 2 ? n - v : 2;
            for (uint32_t i = 0; i < nr; i += 4) {
                tile_any_avx2(nr - i < 4 ? nr - i : 4, nv, w + (size_t) i * cb * 32, x + v,
                              (size_t) b0 * 32, (size_t) cb * 32, acc + ((size_t) i * n + v) * 8,
                              n, b0 == 0);
            }
        }
    }
    for (uint32_t i = 0; i < nr; i++) {
        for (uint32_t v = 0; v < n; v++) sums[i][v] = hsum256(_mm256_load_ps(acc + ((size_t) i * n + v) * 8));
    }
}

/* ------------------------------------------------------------------------------------ */
/* AVX-512                                                                              */
/* ------------------------------------------------------------------------------------ */

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))

/* Per block, in the order decode_block_avx512 yields the weights: lane d of the first half
 * holds element 8 (d % 2) + d / 2 (low byte half), lane d of the second half 16 + the same. */
AVX512 static void permute_input_avx512(const float* x, float* xp, uint32_t nb) {
    for (uint32_t b = 0; b < nb; b++) {
        for (int d = 0; d < 16; d++) {
            xp[32 * b + d] = x[32 * b + 8 * (d % 2) + d / 2];
            xp[32 * b + 16 + d] = x[32 * b + 16 + 8 * (d % 2) + d / 2];
        }
    }
}

/* The 32 weights of a block, times its multiplier (exact), looked up with vpermps in the
 * block's scaled table (gptoss_cpu_backend.mxfp4_tables: one 64-byte load). The indices
 * come without a shuffle: each 8-byte half of the block is broadcast to every qword by the
 * load itself, and a per-lane shift (4 (d / 2) bits) brings nibble d / 2 of dword d % 2 to
 * the bottom of lane d (vpermps reads only the low 4 bits). The widening (vpmovzxbd) and a
 * 128-bit broadcast both issue on the two shuffle pipes that the lookups also need; the
 * shifts have a pipe of their own. On Zen 4, weights in L1/L2: ~3.6 cycles a block instead
 * of ~4.1 (docs/CPU_NOTES.md). permute_input_avx512 orders x to match. */
AVX512 static inline __attribute__((always_inline)) void decode_block_avx512(const uint8_t* q, const float* table,
                                                                            __m512i shifts, __m512* lo,
                                                                            __m512* hi) {
    const __m512 scaled = _mm512_load_ps(table);
    int64_t q0, q1;
    memcpy(&q0, q, 8);
    memcpy(&q1, q + 8, 8);
    *lo = _mm512_permutexvar_ps(_mm512_srlv_epi32(_mm512_set1_epi64(q0), shifts), scaled);
    *hi = _mm512_permutexvar_ps(_mm512_srlv_epi32(_mm512_set1_epi64(q1), shifts), scaled);
}

/* Rows [0, NR) of a tile (NR <= 4) against N <= 4 permuted vectors, decoded in registers:
 * per block and row acc = fma(lo, x, acc), then acc = fma(hi, x + 16, acc) on one 16-lane
 * accumulator per (row, vector); then _mm512_reduce_add_ps. The next rows of the same
 * tile position are prefetched into L2 (prefetcht1: into L1 the loop waited on memory,
 * 11-13 vs 15-16 GB/s a core on Zen 4). */
AVX512 static inline __attribute__((always_inline)) void rows_direct_avx512_n(const uint8_t* blocks,
                                                                             const uint8_t* scales, uint32_t nb,
                                                                             const int NR, const float* const* x,
                                                                             const int N,
                                                                             const float (*tables)[16],
                                                                             moe_sums sums) {
    const __m512i shifts = _mm512_set_epi32(28, 28, 24, 24, 20, 20, 16, 16, 12, 12, 8, 8, 4, 4, 0, 0);
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) {
#pragma GCC unroll 4
        for (int v = 0; v < N; v++) acc[i][v] = _mm512_setzero_ps();
    }
    const size_t row = (size_t) nb * 16;
    for (uint32_t b = 0; b < nb; b++) {
        __m512 lo[4], hi[4];
#pragma GCC unroll 4
        for (int i = 0; i < NR; i++) {
            const uint8_t* q = blocks + i * row + 16 * (size_t) b;
            if (b % 4 == 0) _mm_prefetch((const char*) (q + NR * row), _MM_HINT_T1);
            decode_block_avx512(q, tables[scales[(size_t) i * nb + b]], shifts, &lo[i], &hi[i]);
        }
#pragma GCC unroll 4
        for (int v = 0; v < N; v++) {
            const __m512 xl = _mm512_load_ps(x[v] + 32 * (size_t) b), xh = _mm512_load_ps(x[v] + 32 * (size_t) b + 16);
#pragma GCC unroll 4
            for (int i = 0; i < NR; i++) {
                acc[i][v] = _mm512_fmadd_ps(lo[i], xl, acc[i][v]);
                acc[i][v] = _mm512_fmadd_ps(hi[i], xh, acc[i][v]);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NR; i++) {
#pragma GCC unroll 4
        for (int v = 0; v < N; v++) sums[i][v] = _mm512_reduce_add_ps(acc[i][v]);
    }
}

AVX512 static void tile_direct_avx512(const uint8_t* blocks, const uint8_t* scales, uint32_t nb, uint32_t nr,
                                      const float* const* x, uint32_t n, const float (*tables)[16],
                                      moe_sums sums) {
    const uint32_t passes = (n + 3) / 4;
    for (uint32_t p = 0, v = 0; p < passes; p++) {
        const uint32_t V = (n - v) / (passes - p); /* balanced passes of up to 4 vectors */
        for (uint32_t i = 0; i < nr; i += 4) {
            const uint8_t* q = blocks + (size_t) i * nb * 16;
            const uint8_t* s = scales + (size_t) i * nb;
            const uint32_t R = nr - i < 4 ? nr - i : 4;
            float (*out)[MOE_MAX_VECTORS] = (float (*)[MOE_MAX_VECTORS]) &sums[i][v];
#define MOE_DIRECT_CASE(R, N) \
    case (R) * 8 + (N): rows_direct_avx512_n(q, s, nb, R, x + v, N, tables, out); break;
            switch (R * 8 + V) {
                MOE_DIRECT_CASE(4, 1) MOE_DIRECT_CASE(4, 2) MOE_DIRECT_CASE(4, 3) MOE_DIRECT_CASE(4, 4)
                MOE_DIRECT_CASE(3, 1) MOE_DIRECT_CASE(3, 2) MOE_DIRECT_CASE(3, 3) MOE_DIRECT_CASE(3, 4)
                MOE_DIRECT_CASE(2, 1) MOE_DIRECT_CASE(2, 2) MOE_DIRECT_CASE(2, 3) MOE_DIRECT_CASE(2, 4)
                MOE_DIRECT_CASE(1, 2) MOE_DIRECT_CASE(1, 3) MOE_DIRECT_CASE(1, 4)
                default: rows_direct_avx512_n(q, s, nb, 1, x + v, 1, tables, out);
            }
#undef MOE_DIRECT_CASE
        }
        v += V;
    }
}

#endif /* __x86_64__ */

/* ==================================================================================== */
/* Work items                                                                           */
/* ==================================================================================== */

/* sums[i][v] = weight row i of the tile (row pointers at blocks/scales) . x[v]. */
static void tile_dots(const struct moe_run* r, const uint8_t* blocks, const uint8_t* scales, uint32_t nr,
                      const float* const* x, uint32_t n, float* scratch, moe_sums sums) {
    const uint32_t nb = r->num_cols / 32;
#if defined(__x86_64__)
    if (r->isa == gptoss_cpu_isa_avx512 || r->isa == gptoss_cpu_isa_avx2) {
        const int wide = r->isa == gptoss_cpu_isa_avx512;
        if (wide) tile_direct_avx512(blocks, scales, nb, nr, x, n, r->tables, sums);
        else if (n > MOE_DIRECT_MAX) tile_dots_avx2(blocks, scales, nb, nr, x, n, r->mult, scratch, sums);
        else tile_direct_avx2(blocks, scales, nb, nr, x, n, r->mult, r->bf16_bytes, sums);
        return;
    }
#endif
    (void) scratch;
    for (uint32_t i = 0; i < nr; i++) {
        row_dot_scalar(blocks + (size_t) i * nb * 16, scales + (size_t) i * nb, nb, x, n, r->mult, sums[i]);
    }
}

/* Item (g, tile): rows [tile * MOE_TILE_ROWS, ...) of group g's expert with the group's vectors. */
static void moe_item(const struct moe_run* r, uint32_t g, uint32_t r0, float* scratch) {
    const uint32_t nb = r->num_cols / 32, O = r->num_out;
    const uint32_t nr = r->num_weight_rows - r0 < MOE_TILE_ROWS ? r->num_weight_rows - r0 : MOE_TILE_ROWS;
    const size_t off = (size_t) r->group_expert[g] * r->expert_stride;
    const uint8_t* blocks = r->blocks + off + (size_t) r0 * nb * 16;
    const uint8_t* scales = r->scales + off + (size_t) r0 * nb;
    for (uint32_t p0 = r->group_begin[g]; p0 < r->group_begin[g + 1]; p0 += MOE_MAX_VECTORS) {
        const uint32_t left = r->group_begin[g + 1] - p0;
        const uint32_t n = left < MOE_MAX_VECTORS ? left : MOE_MAX_VECTORS;
        const float* x[MOE_MAX_VECTORS];
        for (uint32_t v = 0; v < n; v++) x[v] = r->x + (size_t) r->pair_vector[p0 + v] * r->xstride;
        moe_sums sums;
        tile_dots(r, blocks, scales, nr, x, n, scratch, sums);
        for (uint32_t v = 0; v < n; v++) {
            float* out = r->output + (size_t) r->pair_output[p0 + v] * O;
            for (uint32_t i = 0; i < nr; i++) {
                const float y = sums[i][v] + bias_value(r->bias, off, r0 + i);
                if (!r->swiglu) {
                    out[r0 + i] = y;
                } else if (i % 2 == 1) {
                    out[(r0 + i) / 2] = gptoss_swiglu(sums[i - 1][v] + bias_value(r->bias, off, r0 + i - 1), y,
                                                      r->limit);
                }
            }
        }
    }
}

/* Items are (group, tile), expert-major: a thread streams each expert's rows in order and
 * a group's vectors stay in cache across its tiles. They are split over the threads by
 * work, an item of group g weighing MOE_ITEM_COST + (vectors of g): share i of S takes
 * the items whose work starts in [i W / S, (i + 1) W / S). */
static void moe_task(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct moe_run* r = context;
    float* scratch = r->isa == gptoss_cpu_isa_avx2 ? r->scratch + (size_t) thread_index * r->thread_stride : NULL;
    const uint64_t tiles = ((uint64_t) r->num_weight_rows + MOE_TILE_ROWS - 1) / MOE_TILE_ROWS;
    uint64_t total = 0;
    for (uint32_t g = 0; g < r->num_groups; g++) total += tiles * (MOE_ITEM_COST + r->group_begin[g + 1] - r->group_begin[g]);
    for (size_t share = begin; share < end; share++) {
        const uint64_t lo = total * share / r->num_shares, hi = total * (share + 1) / r->num_shares;
        uint64_t start = 0; /* work before group g */
        for (uint32_t g = 0; g < r->num_groups && start < hi; g++) {
            const uint64_t w = MOE_ITEM_COST + r->group_begin[g + 1] - r->group_begin[g];
            /* items j with lo <= start + j w < hi */
            const uint64_t j0 = lo > start ? (lo - start + w - 1) / w : 0;
            const uint64_t j1 = (hi - start + w - 1) / w;
            for (uint64_t j = j0; j < j1 && j < tiles; j++) moe_item(r, g, (uint32_t) j * MOE_TILE_ROWS, scratch);
            start += tiles * w;
        }
    }
}

#if defined(__x86_64__)
struct permute_context {
    const float* input;
    float* xperm;
    uint32_t C;
    size_t stride;
    int wide;
};

AVX2 static void permute_task(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct permute_context* ctx = context;
    const uint32_t nb = ctx->C / 32;
    for (size_t v = begin; v < end; v++) {
        if (ctx->wide) permute_input_avx512(ctx->input + v * ctx->C, ctx->xperm + v * ctx->stride, nb);
        else permute_input_avx2(ctx->input + v * ctx->C, ctx->xperm + v * ctx->stride, nb);
    }
}
#endif

/* Runs a call whose pair lists are filled by `group` (below): the scratch holds
 * [ints: head] | permuted vectors | per-thread buffers. */
struct moe_call {
    const float* input;
    uint32_t num_vectors; /* input vectors */
    uint32_t num_pairs;
    /* decode: (token, slot) pairs by expert; dense: NULL */
    const uint32_t* expert_ids;
    uint32_t num_tokens, k;
    /* dense: expert ranges of the input rows; decode: NULL */
    const uint32_t* expert_offsets;
};

static enum gptoss_status moe_run_call(gptoss_backend_t backend, const struct moe_call* call, struct moe_run* r,
                                       uint32_t num_experts) {
    struct gptoss_cpu_backend* cpu = gptoss_cpu(backend);
    const uint32_t P = call->num_pairs, C = r->num_cols, nb = C / 32;
    const uint32_t threads = gptoss_threadpool_num_threads(cpu->pool);
    r->isa = cpu->isa;
    r->mult = cpu->mxfp4_multipliers;
    r->tables = (const float (*)[16]) cpu->mxfp4_tables;
    r->bf16_bytes = (const uint8_t (*)[2][16]) cpu->mxfp4_bf16_bytes;
    const int simd = r->isa == gptoss_cpu_isa_avx2 || r->isa == gptoss_cpu_isa_avx512;
    /* floats per permuted vector: whole pairs of blocks (AVX2), 64-byte aligned */
    const size_t xstride = simd ? ((size_t) nb + 1) / 2 * 64 : C;
    const size_t ints = 3 * (size_t) num_experts + 2 + 2 * (size_t) P;
    const size_t head = (ints * sizeof(uint32_t) + 63) / 64 * 64;
    r->thread_stride = gptoss_cpu_thread_stride(MOE_THREAD_FLOATS);
    const size_t xbytes = simd ? (size_t) call->num_vectors * xstride * sizeof(float) : 0;
    const size_t tbytes = r->isa == gptoss_cpu_isa_avx2 ? (size_t) threads * r->thread_stride * sizeof(float) : 0;
    void* memory = NULL;
    GPTOSS_TRY(gptoss_cpu_scratch_acquire(backend, head + xbytes + tbytes, &memory));
    uint8_t* mem = memory;
    uint32_t* counts = (uint32_t*) mem;
    uint32_t* group_expert = counts + num_experts + 1;
    uint32_t* group_begin = group_expert + num_experts;
    uint32_t* pair_vector = group_begin + num_experts + 1;
    uint32_t* pair_output = pair_vector + P;
    r->scratch = (float*) (mem + head + xbytes);

    uint32_t num_groups = 0;
    group_begin[0] = 0;
    if (call->expert_ids != NULL) {
        /* stable counting sort of the (token, slot) pairs by expert */
        memset(counts, 0, ((size_t) num_experts + 1) * sizeof *counts);
        for (size_t p = 0; p < P; p++) counts[call->expert_ids[p] + 1]++;
        for (uint32_t e = 0; e < num_experts; e++) {
            const uint32_t c = counts[e + 1];
            counts[e + 1] = counts[e] + c; /* counts[e] = start of expert e */
            if (c != 0) {
                group_expert[num_groups] = e;
                group_begin[num_groups + 1] = counts[e + 1];
                num_groups++;
            }
        }
        for (size_t p = 0; p < P; p++) {
            const size_t t = p / call->k, j = p % call->k;
            const uint32_t slot = counts[call->expert_ids[p]]++;
            /* up-projection: every slot of token t reads vector t; down: vector j*T + t */
            pair_vector[slot] = (uint32_t) (r->swiglu ? t : j * call->num_tokens + t);
            pair_output[slot] = (uint32_t) (j * call->num_tokens + t);
        }
    } else {
        for (uint32_t e = 0; e < num_experts; e++) {
            if (call->expert_offsets[e + 1] > call->expert_offsets[e]) {
                group_expert[num_groups] = e;
                group_begin[num_groups] = call->expert_offsets[e];
                group_begin[num_groups + 1] = call->expert_offsets[e + 1];
                num_groups++;
            }
        }
        for (uint32_t p = 0; p < P; p++) pair_vector[p] = pair_output[p] = p;
    }
    r->group_expert = group_expert;
    r->group_begin = group_begin;
    r->pair_vector = pair_vector;
    r->pair_output = pair_output;
    r->num_groups = num_groups;

    r->x = call->input;
    r->xstride = C;
#if defined(__x86_64__)
    if (simd) {
        struct permute_context pctx = {call->input, (float*) (mem + head), C, xstride,
                                       r->isa == gptoss_cpu_isa_avx512};
        gptoss_cpu_parallelize(backend, permute_task, &pctx, call->num_vectors, 1 + 65536 / C);
        r->x = pctx.xperm;
        r->xstride = xstride;
    }
#endif
    r->num_shares = threads;
    if (num_groups != 0) gptoss_cpu_parallelize(backend, moe_task, r, threads, 1);
    gptoss_cpu_scratch_release(backend);
    return gptoss_status_success;
}

enum gptoss_status gptoss_cpu_f32_mf4w_moe_matmul_swiglu(gptoss_backend_t backend,
                                                         const struct gptoss_f32_mf4w_moe_matmul_swiglu_args* a) {
    struct moe_run r = {.blocks = a->weight_blocks, .scales = a->weight_scales, .bias = (const uint8_t*) a->bias,
                        .expert_stride = a->expert_stride, .output = a->output, .num_cols = a->num_cols,
                        .num_weight_rows = 2 * a->num_rows, .num_out = a->num_rows, .swiglu = 1,
                        .limit = a->swiglu_limit};
    const struct moe_call call = {.input = a->input, .num_vectors = a->num_tokens,
                                  .num_pairs = a->num_tokens * a->num_active_experts, .expert_ids = a->expert_ids,
                                  .num_tokens = a->num_tokens, .k = a->num_active_experts};
    return moe_run_call(backend, &call, &r, a->num_experts);
}

enum gptoss_status gptoss_cpu_f32_mf4w_moe_matmul(gptoss_backend_t backend,
                                                  const struct gptoss_f32_mf4w_moe_matmul_args* a) {
    struct moe_run r = {.blocks = a->weight_blocks, .scales = a->weight_scales, .bias = (const uint8_t*) a->bias,
                        .expert_stride = a->expert_stride, .output = a->output, .num_cols = a->num_cols,
                        .num_weight_rows = a->num_rows, .num_out = a->num_rows};
    const uint32_t P = a->num_tokens * a->num_active_experts;
    const struct moe_call call = {.input = a->input, .num_vectors = P, .num_pairs = P, .expert_ids = a->expert_ids,
                                  .num_tokens = a->num_tokens, .k = a->num_active_experts};
    return moe_run_call(backend, &call, &r, a->num_experts);
}

enum gptoss_status gptoss_cpu_f32_mf4w_moe_dense_matmul_swiglu(
    gptoss_backend_t backend, const struct gptoss_f32_mf4w_moe_dense_matmul_swiglu_args* a) {
    struct moe_run r = {.blocks = a->weight_blocks, .scales = a->weight_scales, .bias = (const uint8_t*) a->bias,
                        .expert_stride = a->expert_stride, .output = a->output, .num_cols = a->num_cols,
                        .num_weight_rows = 2 * a->num_rows, .num_out = a->num_rows, .swiglu = 1,
                        .limit = a->swiglu_limit};
    const uint32_t P = a->num_tokens * a->num_active_experts;
    const struct moe_call call = {.input = a->input, .num_vectors = P, .num_pairs = P,
                                  .expert_offsets = a->expert_offsets};
    return moe_run_call(backend, &call, &r, a->num_experts);
}

enum gptoss_status gptoss_cpu_f32_mf4w_moe_dense_matmul(gptoss_backend_t backend,
                                                        const struct gptoss_f32_mf4w_moe_dense_matmul_args* a) {
    struct moe_run r = {.blocks = a->weight_blocks, .scales = a->weight_scales, .bias = (const uint8_t*) a->bias,
                        .expert_stride = a->expert_stride, .output = a->output, .num_cols = a->num_cols,
                        .num_weight_rows = a->num_rows, .num_out = a->num_rows};
    const uint32_t P = a->num_tokens * a->num_active_experts;
    const struct moe_call call = {.input = a->input, .num_vectors = P, .num_pairs = P,
                                  .expert_offsets = a->expert_offsets};
    return moe_run_call(backend, &call, &r, a->num_experts);
}
