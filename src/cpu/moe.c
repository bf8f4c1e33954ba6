/* CPU backend: the four MXFP4 expert matmuls (kernels.h; KERNELS.md 1.4, 1.8, 3.16-3.19).
 *
 * Weights of expert e: blocks u8[rows][cols/32][16], scales u8[rows][cols/32] (+14 biased:
 * multiplier 2^(stored-141), an exact f32 for every byte; stored <= 14 gives a subnormal),
 * bias bf16[rows]; all three at base + e * expert_stride.
 *
 * Decode (moe_matmul_swiglu, moe_matmul): the (token, slot) pairs are grouped by expert
 * (stable, increasing pair order); work items are (expert group, output row) so each
 * weight row is streamed once and used for every pair routed to that expert (up to 4 at a
 * time; more pairs make further passes over the row). Dot products as upstream: per
 * 32-element block a partial sum of fp4 * x (exact fp4 values), then
 * acc = fma(partial, multiplier, acc); bias added last.
 *   scalar: one partial sum per block, elements in order.
 *   AVX2:   two blocks (32 bytes) per step; nibbles -> f32 fp4 values built with two
 *           byte shuffles (bytes 2 and 3 of the f32) and unpacks against zero; the input
 *           vectors are permuted once per call to the decoded element order
 *           (see permute_input_avx2), so no weight reordering is needed.
 *   AVX-512: one block per 512-bit step, vpermps with the 16-entry fp4 table (see
 *           row_dot_avx512_n); the input is permuted to even-then-odd elements per block.
 * Prefill (moe_dense_*): items are (row tile, expert), tile-major so that every thread
 * gets a share of each expert. A tile of weight rows is dequantised to exact f32
 * (fp4 * multiplier, exact as upstream's), then an f32 GEMM with the expert's input rows
 * (AVX2: 4 input rows x 2 weight rows register tile, 8-wide fma along the columns).
 * The AVX-512 variant runs the AVX2 code for prefill. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common/math.h"
#include "cpu/cpu.h"
#include "internal/error.h"

/* multiplier of a +14-biased scale byte: 2^(stored - 141) */
static void build_multipliers(float table[256]) {
    for (int s = 0; s < 256; s++) table[s] = ldexpf(1.0f, s - 141);
}

static inline float bias_value(const uint8_t* bias_base, size_t offset, uint32_t row) {
    if (bias_base == NULL) return 0.0f;
    const gptoss_bf16* b = (const gptoss_bf16*) (bias_base + offset);
    return gptoss_bf16_to_f32(b[row].bits);
}

/* ==================================================================================== */
/* Decode                                                                               */
/* ==================================================================================== */

#define MOE_MAX_GROUP 4 /* pairs sharing one pass over a weight row */

struct moe_decode_context {
    const uint8_t* blocks;
    const uint8_t* scales;
    const uint8_t* bias;
    size_t expert_stride;
    const float* input;       /* vectors of num_cols floats (natural order, scalar path) */
    const float* xperm;       /* same vectors permuted for the SIMD decode, or NULL */
    int variant;              /* 0 scalar, 1 AVX2, 2 AVX-512 */
    float* output;
    const uint32_t* group_expert; /* [num_groups] */
    const uint32_t* group_begin;  /* [num_groups + 1] into pair_list */
    const uint32_t* pair_vector;  /* [num_pairs sorted by expert]: input vector index */
    const uint32_t* pair_output;  /* [num_pairs sorted by expert]: output vector index */
    uint32_t num_cols;
    uint32_t num_out;         /* outputs per vector (rows, or num_rows of swiglu) */
    int swiglu;
    float limit;
    const float* mult;        /* [256] */
};

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

/* software prefetch distance in the block stream (bytes) */
#define MOE_PREFETCH 2048

/* Decoded element order of a pair of blocks (A = 2bp, B = 2bp + 1), 64 floats:
 * vector w (0..7), lane i (0..7): block 2bp + i/4, element
 * 16*((w/2)%2) + 4*(i%4) + 2*(w%2) + w/4 (see decode_pair).
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

/* Decodes 32 bytes (two blocks) into 8 vectors of f32 fp4 values (order above): two
 * byte shuffles give bytes 3 and 2 of the f32 (bf16 bits), one unpack per 16 values
 * pairs them into 16-bit lanes, then the even 16-bit lanes become f32 by a 16-bit left
 * shift and the odd ones by masking the low half (fewer shuffle-port uops than
 * unpacking against zero twice). */
AVX2 static inline void decode_pair(const uint8_t* q, __m256 w[8]) {
    const __m256i t3 = _mm256_setr_epi8(FP4_B3, FP4_B3);
    const __m256i t2 = _mm256_setr_epi8(FP4_B2, FP4_B2);
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const __m256i himask = _mm256_set1_epi32((int) 0xFFFF0000u);
    const __m256i raw = _mm256_loadu_si256((const __m256i*) q);
    const __m256i lo = _mm256_and_si256(raw, low4);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
    const __m256i l3 = _mm256_shuffle_epi8(t3, lo), l2 = _mm256_shuffle_epi8(t2, lo);
    const __m256i h3 = _mm256_shuffle_epi8(t3, hi), h2 = _mm256_shuffle_epi8(t2, hi);
    const __m256i v0 = _mm256_unpacklo_epi8(l2, l3), v1 = _mm256_unpackhi_epi8(l2, l3);
    const __m256i v2 = _mm256_unpacklo_epi8(h2, h3), v3 = _mm256_unpackhi_epi8(h2, h3);
    w[0] = _mm256_castsi256_ps(_mm256_slli_epi32(v0, 16));
    w[1] = _mm256_castsi256_ps(_mm256_and_si256(v0, himask));
    w[2] = _mm256_castsi256_ps(_mm256_slli_epi32(v1, 16));
    w[3] = _mm256_castsi256_ps(_mm256_and_si256(v1, himask));
    w[4] = _mm256_castsi256_ps(_mm256_slli_epi32(v2, 16));
    w[5] = _mm256_castsi256_ps(_mm256_and_si256(v2, himask));
    w[6] = _mm256_castsi256_ps(_mm256_slli_epi32(v3, 16));
    w[7] = _mm256_castsi256_ps(_mm256_and_si256(v3, himask));
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

/* One weight row against N permuted vectors (N = 1..4, a compile-time constant after
 * inlining). Per block: partial = w0*x0 + ... (lo-nibble elements), partial' (hi-nibble
 * elements), acc = fma(partial, m, acc), acc = fma(partial', m, acc). */
AVX2 static inline __attribute__((always_inline)) void row_dot_avx2_n(const uint8_t* blocks, const uint8_t* scales,
                                                                     uint32_t nb, const float* const* x, const int N,
                                                                     const float* mult, float* sums) {
    /* acc (lo-nibble partials) and acc2 (hi-nibble partials): two chains per vector, so a
     * single vector is not bound by the fma latency; for every N, so that a vector's sum
     * does not depend on how many others share the pass (batch invariance) */
    __m256 acc[MOE_MAX_GROUP], acc2[MOE_MAX_GROUP];
#pragma GCC unroll 8
    for (int v = 0; v < N; v++) acc[v] = acc2[v] = _mm256_setzero_ps();
    const uint32_t npairs = nb / 2;
    for (uint32_t bp = 0; bp < npairs; bp++) {
        __m256 w[8];
        /* stream ahead (rows are contiguous, so this runs into the next row) */
        _mm_prefetch((const char*) (blocks + 32 * (size_t) bp + MOE_PREFETCH), _MM_HINT_T0);
        decode_pair(blocks + 32 * (size_t) bp, w);
        const __m256 m = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_broadcast_ss(&mult[scales[2 * bp]])),
                                              _mm_broadcast_ss(&mult[scales[2 * bp + 1]]), 1);
#pragma GCC unroll 8
        for (int v = 0; v < N; v++) {
            const float* xp = x[v] + 64 * (size_t) bp;
            __m256 p0 = _mm256_mul_ps(w[0], _mm256_load_ps(xp));
            __m256 p1 = _mm256_mul_ps(w[4], _mm256_load_ps(xp + 32));
            p0 = _mm256_fmadd_ps(w[1], _mm256_load_ps(xp + 8), p0);
            p1 = _mm256_fmadd_ps(w[5], _mm256_load_ps(xp + 40), p1);
            p0 = _mm256_fmadd_ps(w[2], _mm256_load_ps(xp + 16), p0);
            p1 = _mm256_fmadd_ps(w[6], _mm256_load_ps(xp + 48), p1);
            p0 = _mm256_fmadd_ps(w[3], _mm256_load_ps(xp + 24), p0);
            p1 = _mm256_fmadd_ps(w[7], _mm256_load_ps(xp + 56), p1);
            acc[v] = _mm256_fmadd_ps(p0, m, acc[v]);
            acc2[v] = _mm256_fmadd_ps(p1, m, acc2[v]);
        }
    }
#pragma GCC unroll 8
    for (int v = 0; v < N; v++) sums[v] = hsum256(_mm256_add_ps(acc[v], acc2[v]));
    if (nb % 2) {
        __m128 w[8];
        decode_single(blocks + 32 * (size_t) npairs, w);
        const __m128 m = _mm_broadcast_ss(&mult[scales[nb - 1]]);
#pragma GCC unroll 8
        for (int v = 0; v < N; v++) {
            const float* xp = x[v] + 64 * (size_t) npairs;
            __m128 p0 = _mm_mul_ps(w[0], _mm_load_ps(xp));
            __m128 p1 = _mm_mul_ps(w[4], _mm_load_ps(xp + 16));
            p0 = _mm_fmadd_ps(w[1], _mm_load_ps(xp + 4), p0);
            p1 = _mm_fmadd_ps(w[5], _mm_load_ps(xp + 20), p1);
            p0 = _mm_fmadd_ps(w[2], _mm_load_ps(xp + 8), p0);
            p1 = _mm_fmadd_ps(w[6], _mm_load_ps(xp + 24), p1);
            p0 = _mm_fmadd_ps(w[3], _mm_load_ps(xp + 12), p0);
            p1 = _mm_fmadd_ps(w[7], _mm_load_ps(xp + 28), p1);
            __m128 a = _mm_fmadd_ps(p1, m, _mm_mul_ps(p0, m));
            a = _mm_add_ps(a, _mm_movehl_ps(a, a));
            a = _mm_add_ss(a, _mm_movehdup_ps(a));
            sums[v] += _mm_cvtss_f32(a);
        }
    }
}

AVX2 static void row_dot_avx2(const uint8_t* blocks, const uint8_t* scales, uint32_t nb, const float* const* x,
                              uint32_t n, const float* mult, float* sums) {
    switch (n) {
        case 1: row_dot_avx2_n(blocks, scales, nb, x, 1, mult, sums); break;
        case 2: row_dot_avx2_n(blocks, scales, nb, x, 2, mult, sums); break;
        case 3: row_dot_avx2_n(blocks, scales, nb, x, 3, mult, sums); break;
        default: row_dot_avx2_n(blocks, scales, nb, x, 4, mult, sums); break;
    }
}

/* AVX-512: one block per 512-bit step. Bytes widened to 16 dwords; vpermps with the
 * 16-entry fp4 table on the low nibble gives the even elements, on (dword >> 4) the odd
 * ones (vpermps reads only the low 4 index bits). Input order per block: the 16 even
 * elements, then the 16 odd ones. Two blocks per iteration on separate accumulators. */
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma")))

AVX512 static void permute_input_avx512(const float* x, float* xp, uint32_t nb) {
    for (uint32_t b = 0; b < nb; b++) {
        for (int j = 0; j < 16; j++) {
            xp[32 * b + j] = x[32 * b + 2 * j];
            xp[32 * b + 16 + j] = x[32 * b + 2 * j + 1];
        }
    }
}

AVX512 static inline __m512 block_partial_avx512(const uint8_t* q, const float* xp, __m512 table) {
    const __m512i t = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*) q));
    const __m512 lo = _mm512_permutexvar_ps(t, table);
    const __m512 hi = _mm512_permutexvar_ps(_mm512_srli_epi32(t, 4), table);
    return _mm512_fmadd_ps(hi, _mm512_load_ps(xp + 16), _mm512_mul_ps(lo, _mm512_load_ps(xp)));
}

AVX512 static inline __attribute__((always_inline)) void row_dot_avx512_n(const uint8_t* blocks,
                                                                         const uint8_t* scales, uint32_t nb,
                                                                         const float* const* x, const int N,
                                                                         const float* mult, float* sums) {
    const __m512 table = _mm512_loadu_ps(gptoss_fp4_values);
    __m512 acc0[MOE_MAX_GROUP], acc1[MOE_MAX_GROUP];
#pragma GCC unroll 8
    for (int v = 0; v < N; v++) acc0[v] = acc1[v] = _mm512_setzero_ps();
    uint32_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        _mm_prefetch((const char*) (blocks + 16 * (size_t) b + MOE_PREFETCH), _MM_HINT_T0);
        const __m512 m0 = _mm512_set1_ps(mult[scales[b]]), m1 = _mm512_set1_ps(mult[scales[b + 1]]);
        const __m512i t0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*) (blocks + 16 * (size_t) b)));
        const __m512i t1 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*) (blocks + 16 * (size_t) b + 16)));
        const __m512 lo0 = _mm512_permutexvar_ps(t0, table), hi0 = _mm512_permutexvar_ps(_mm512_srli_epi32(t0, 4), table);
        const __m512 lo1 = _mm512_permutexvar_ps(t1, table), hi1 = _mm512_permutexvar_ps(_mm512_srli_epi32(t1, 4), table);
#pragma GCC unroll 8
        for (int v = 0; v < N; v++) {
            const float* xp = x[v] + 32 * (size_t) b;
            const __m512 p0 = _mm512_fmadd_ps(hi0, _mm512_load_ps(xp + 16), _mm512_mul_ps(lo0, _mm512_load_ps(xp)));
            const __m512 p1 = _mm512_fmadd_ps(hi1, _mm512_load_ps(xp + 48), _mm512_mul_ps(lo1, _mm512_load_ps(xp + 32)));
            acc0[v] = _mm512_fmadd_ps(p0, m0, acc0[v]);
            acc1[v] = _mm512_fmadd_ps(p1, m1, acc1[v]);
        }
    }
    if (b < nb) {
        const __m512 m0 = _mm512_set1_ps(mult[scales[b]]);
#pragma GCC unroll 8
        for (int v = 0; v < N; v++) {
            acc0[v] = _mm512_fmadd_ps(block_partial_avx512(blocks + 16 * (size_t) b, x[v] + 32 * (size_t) b, table), m0, acc0[v]);
        }
    }
#pragma GCC unroll 8
    for (int v = 0; v < N; v++) sums[v] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[v], acc1[v]));
}

AVX512 static void row_dot_avx512(const uint8_t* blocks, const uint8_t* scales, uint32_t nb, const float* const* x,
                                  uint32_t n, const float* mult, float* sums) {
    switch (n) {
        case 1: row_dot_avx512_n(blocks, scales, nb, x, 1, mult, sums); break;
        case 2: row_dot_avx512_n(blocks, scales, nb, x, 2, mult, sums); break;
        case 3: row_dot_avx512_n(blocks, scales, nb, x, 3, mult, sums); break;
        default: row_dot_avx512_n(blocks, scales, nb, x, 4, mult, sums); break;
    }
}

#endif /* __x86_64__ */

static void moe_decode_task(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct moe_decode_context* ctx = context;
    const uint32_t C = ctx->num_cols, nb = C / 32, O = ctx->num_out;
    const size_t row_blocks = (size_t) nb * 16;
    const size_t xstride = ctx->xperm != NULL ? ((size_t) nb + 1) / 2 * 64 : C; /* >= 32 * nb */
    const float* xbase = ctx->xperm != NULL ? ctx->xperm : ctx->input;
    for (size_t item = begin; item < end; item++) {
        const size_t g = item / O;
        const uint32_t o = (uint32_t) (item % O);
        const size_t off = (size_t) ctx->group_expert[g] * ctx->expert_stride;
        const uint8_t* blocks = ctx->blocks + off;
        const uint8_t* scales = ctx->scales + off;
        for (uint32_t p0 = ctx->group_begin[g]; p0 < ctx->group_begin[g + 1]; p0 += MOE_MAX_GROUP) {
            const uint32_t n = ctx->group_begin[g + 1] - p0 < MOE_MAX_GROUP ? ctx->group_begin[g + 1] - p0 : MOE_MAX_GROUP;
            const float* x[MOE_MAX_GROUP];
            for (uint32_t v = 0; v < n; v++) x[v] = xbase + (size_t) ctx->pair_vector[p0 + v] * xstride;
            const int rows = ctx->swiglu ? 2 : 1;
            float sums[2][MOE_MAX_GROUP];
            for (int rr = 0; rr < rows; rr++) {
                const uint32_t r = ctx->swiglu ? 2 * o + (uint32_t) rr : o;
#if defined(__x86_64__)
                if (ctx->variant == 2) {
                    row_dot_avx512(blocks + r * row_blocks, scales + (size_t) r * nb, nb, x, n, ctx->mult, sums[rr]);
                    continue;
                }
                if (ctx->variant == 1) {
                    row_dot_avx2(blocks + r * row_blocks, scales + (size_t) r * nb, nb, x, n, ctx->mult, sums[rr]);
                    continue;
                }
#endif
                row_dot_scalar(blocks + r * row_blocks, scales + (size_t) r * nb, nb, x, n, ctx->mult, sums[rr]);
            }
            for (uint32_t v = 0; v < n; v++) {
                float* out = ctx->output + (size_t) ctx->pair_output[p0 + v] * O + o;
                if (ctx->swiglu) {
                    const float glu = sums[0][v] + bias_value(ctx->bias, off, 2 * o);
                    const float lin = sums[1][v] + bias_value(ctx->bias, off, 2 * o + 1);
                    *out = gptoss_swiglu(glu, lin, ctx->limit);
                } else {
                    *out = sums[0][v] + bias_value(ctx->bias, off, o);
                }
            }
        }
    }
}

#if defined(__x86_64__)
struct permute_context {
    const float* input;
    float* xperm;
    uint32_t C;
    int variant;
};

AVX2 static void permute_task(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct permute_context* ctx = context;
    const uint32_t nb = ctx->C / 32;
    const size_t stride = ((size_t) nb + 1) / 2 * 64;
    for (size_t v = begin; v < end; v++) {
        if (ctx->variant == 2) {
            permute_input_avx512(ctx->input + v * ctx->C, ctx->xperm + v * stride, nb);
        } else {
            permute_input_avx2(ctx->input + v * ctx->C, ctx->xperm + v * stride, nb);
        }
    }
}
#endif

/* swiglu: input vector of pair (t, j) is token t; down: vector j*T + t. Output vector j*T+t. */
static enum gptoss_status moe_decode(gptoss_backend_t backend, const float* input, const uint32_t* expert_ids,
                                     const uint8_t* weight_blocks, const uint8_t* weight_scales,
                                     const gptoss_bf16* bias, size_t expert_stride, float* output,
                                     uint32_t num_tokens, uint32_t k, uint32_t num_experts, uint32_t num_cols,
                                     uint32_t num_out, int swiglu, float limit) {
    const size_t P = (size_t) num_tokens * k;
    const size_t num_vectors = swiglu ? num_tokens : P;
    const enum gptoss_cpu_isa isa = gptoss_cpu(backend)->isa;
    const int variant = isa >= gptoss_cpu_isa_avx512 ? 2 : (isa >= gptoss_cpu_isa_avx2 ? 1 : 0);
    const int avx2 = variant != 0;
    const uint32_t nb = num_cols / 32;
    const size_t xstride = ((size_t) nb + 1) / 2 * 64;

    /* one allocation: counts[E+1] | group_expert[E] | group_begin[E+1] | pair_vector[P]
     * | pair_output[P] | mult[256] | (aligned) xperm */
    const size_t ints = 3 * (size_t) num_experts + 2 + 2 * P;
    const size_t head_bytes = (ints * sizeof(uint32_t) + 256 * sizeof(float) + 63) / 64 * 64;
    const size_t xbytes = avx2 ? num_vectors * xstride * sizeof(float) : 0;
    void* scratch = NULL;
    GPTOSS_TRY(gptoss_cpu_scratch_acquire(backend, head_bytes + xbytes, &scratch));
    uint8_t* mem = scratch;
    uint32_t* counts = (uint32_t*) mem;
    uint32_t* group_expert = counts + num_experts + 1;
    uint32_t* group_begin = group_expert + num_experts;
    uint32_t* pair_vector = group_begin + num_experts + 1;
    uint32_t* pair_output = pair_vector + P;
    float* mult = (float*) (pair_output + P);
    float* xperm = avx2 ? (float*) (mem + head_bytes) : NULL;
    build_multipliers(mult);

    /* stable counting sort of the pairs by expert */
    memset(counts, 0, ((size_t) num_experts + 1) * sizeof *counts);
    for (size_t p = 0; p < P; p++) counts[expert_ids[p] + 1]++;
    uint32_t num_groups = 0;
    group_begin[0] = 0;
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
        const size_t t = p / k, j = p % k;
        const uint32_t slot = counts[expert_ids[p]]++;
        pair_vector[slot] = (uint32_t) (swiglu ? t : j * num_tokens + t);
        pair_output[slot] = (uint32_t) (j * num_tokens + t);
    }

#if defined(__x86_64__)
    if (avx2) {
        struct permute_context pctx = {input, xperm, num_cols, variant};
        gptoss_cpu_parallelize(backend, permute_task, &pctx, num_vectors, 1 + 65536 / num_cols);
    }
#endif

    struct moe_decode_context ctx = {
        .blocks = weight_blocks,
        .scales = weight_scales,
        .bias = (const uint8_t*) bias,
        .expert_stride = expert_stride,
        .input = input,
        .xperm = xperm,
        .variant = variant,
        .output = output,
        .group_expert = group_expert,
        .group_begin = group_begin,
        .pair_vector = pair_vector,
        .pair_output = pair_output,
        .num_cols = num_cols,
        .num_out = num_out,
        .swiglu = swiglu,
        .limit = limit,
        .mult = mult,
    };
    gptoss_cpu_parallelize(backend, moe_decode_task, &ctx, (size_t) num_groups * num_out, 8);
    gptoss_cpu_scratch_release(backend);
    return gptoss_status_success;
}

enum gptoss_status gptoss_cpu_f32_mf4w_moe_matmul_swiglu(gptoss_backend_t backend,
                                                         const struct gptoss_f32_mf4w_moe_matmul_swiglu_args* args) {
    return moe_decode(backend, args->input, args->expert_ids, args->weight_blocks, args->weight_scales, args->bias,
                      args->expert_stride, args->output, args->num_tokens, args->num_active_experts, args->num_experts,
                      args->num_cols, args->num_rows, 1, args->swiglu_limit);
}

enum gptoss_status gptoss_cpu_f32_mf4w_moe_matmul(gptoss_backend_t backend,
                                                  const struct gptoss_f32_mf4w_moe_matmul_args* args) {
    return moe_decode(backend, args->input, args->expert_ids, args->weight_blocks, args->weight_scales, args->bias,
                      args->expert_stride, args->output, args->num_tokens, args->num_active_experts, args->num_experts,
                      args->num_cols, args->num_rows, 0, 0.0f);
}

/* ==================================================================================== */
/* Prefill (expert-grouped rows)                                                        */
/* ==================================================================================== */

#define DENSE_TILE 32 /* weight rows per item (even: swiglu pairs stay together) */

struct moe_dense_context {
    const uint32_t* expert_offsets;
    const float* input;
    const uint8_t* blocks;
    const uint8_t* scales;
    const uint8_t* bias;
    size_t expert_stride;
    float* output;
    uint32_t num_experts;
    uint32_t num_cols;
    uint32_t num_weight_rows; /* 2 * num_rows for swiglu */
    uint32_t num_out;         /* output columns */
    int swiglu;
    float limit;
    int avx2;
    const float* mult;
    float* scratch; /* per thread: DENSE_TILE * num_cols floats (+ DENSE_TILE sums) */
    size_t scratch_floats;
};

/* Dequantises weight rows [r0, r0 + n) of one expert to exact f32 (natural order). */
static void dequantize_rows(const struct moe_dense_context* ctx, const uint8_t* blocks, const uint8_t* scales,
                            uint32_t r0, uint32_t n, float* w) {
    const uint32_t C = ctx->num_cols, nb = C / 32;
    for (uint32_t r = 0; r < n; r++) {
        for (uint32_t b = 0; b < nb; b++) {
            const size_t blk = (size_t) (r0 + r) * nb + b;
            const uint8_t* q = blocks + blk * 16;
            const float m = ctx->mult[scales[blk]];
            float* out = w + (size_t) r * C + (size_t) b * 32;
            for (int j = 0; j < 16; j++) {
                out[2 * j] = gptoss_fp4_values[q[j] & 15] * m;
                out[2 * j + 1] = gptoss_fp4_values[q[j] >> 4] * m;
            }
        }
    }
}

static void store_result(const struct moe_dense_context* ctx, size_t x_row, uint32_t r, size_t bias_off,
                         float dot, float* pending_glu) {
    const float y = dot + bias_value(ctx->bias, bias_off, r);
    if (!ctx->swiglu) {
        ctx->output[x_row * ctx->num_out + r] = y;
    } else if (r % 2 == 0) {
        *pending_glu = y;
    } else {
        ctx->output[x_row * ctx->num_out + r / 2] = gptoss_swiglu(*pending_glu, y, ctx->limit);
    }
}

static void dense_rows_scalar(const struct moe_dense_context* ctx, const float* w, uint32_t r0, uint32_t n,
                              size_t x0, size_t x1, size_t bias_off) {
    const uint32_t C = ctx->num_cols;
    for (size_t xr = x0; xr < x1; xr++) {
        const float* x = ctx->input + xr * C;
        float glu = 0.0f;
        for (uint32_t r = 0; r < n; r++) {
            const float* wr = w + (size_t) r * C;
            float acc = 0.0f;
            for (uint32_t c = 0; c < C; c++) acc = fmaf(x[c], wr[c], acc);
            store_result(ctx, xr, r0 + r, bias_off, acc, &glu);
        }
    }
}

#if defined(__x86_64__)
/* Dequantises with the byte-shuffle decode; natural order via an interleave of the
 * lo/hi nibbles first. */
AVX2 static void dequantize_rows_avx2(const struct moe_dense_context* ctx, const uint8_t* blocks,
                                      const uint8_t* scales, uint32_t r0, uint32_t n, float* w) {
    const uint32_t C = ctx->num_cols, nb = C / 32;
    const __m128i t3 = _mm_setr_epi8(FP4_B3), t2 = _mm_setr_epi8(FP4_B2);
    const __m128i low4 = _mm_set1_epi8(0x0F), zero = _mm_setzero_si128();
    for (uint32_t r = 0; r < n; r++) {
        for (uint32_t b = 0; b < nb; b++) {
            const size_t blk = (size_t) (r0 + r) * nb + b;
            const __m128i raw = _mm_loadu_si128((const __m128i*) (blocks + blk * 16));
            const __m256 m = _mm256_broadcast_ss(&ctx->mult[scales[blk]]);
            const __m128i lo = _mm_and_si128(raw, low4);
            const __m128i hi = _mm_and_si128(_mm_srli_epi16(raw, 4), low4);
            const __m128i n0 = _mm_unpacklo_epi8(lo, hi), n1 = _mm_unpackhi_epi8(lo, hi); /* elements 0..15, 16..31 */
            float* out = w + (size_t) r * C + (size_t) b * 32;
            const __m128i nn[2] = {n0, n1};
#pragma GCC unroll 8
            for (int h = 0; h < 2; h++) {
                const __m128i b3 = _mm_shuffle_epi8(t3, nn[h]), b2 = _mm_shuffle_epi8(t2, nn[h]);
                const __m128i wl = _mm_unpacklo_epi8(b2, b3), wh = _mm_unpackhi_epi8(b2, b3);
                const __m256 f0 = _mm256_castsi256_ps(
                    _mm256_set_m128i(_mm_unpackhi_epi16(zero, wl), _mm_unpacklo_epi16(zero, wl)));
                const __m256 f1 = _mm256_castsi256_ps(
                    _mm256_set_m128i(_mm_unpackhi_epi16(zero, wh), _mm_unpacklo_epi16(zero, wh)));
                _mm256_storeu_ps(out + 16 * h, _mm256_mul_ps(f0, m));
                _mm256_storeu_ps(out + 16 * h + 8, _mm256_mul_ps(f1, m));
            }
        }
    }
}

/* 8 horizontal sums -> lanes */
AVX2 static inline __m256 hsum8x8_moe(const __m256 a[8]) {
    const __m256 h01 = _mm256_hadd_ps(a[0], a[1]), h23 = _mm256_hadd_ps(a[2], a[3]);
    const __m256 h45 = _mm256_hadd_ps(a[4], a[5]), h67 = _mm256_hadd_ps(a[6], a[7]);
    const __m256 h0123 = _mm256_hadd_ps(h01, h23), h4567 = _mm256_hadd_ps(h45, h67);
    return _mm256_add_ps(_mm256_permute2f128_ps(h0123, h4567, 0x20), _mm256_permute2f128_ps(h0123, h4567, 0x31));
}

/* GEMM of input rows [x0, x1) with the n dequantised rows w (n even). */
AVX2 static void dense_rows_avx2(const struct moe_dense_context* ctx, const float* w, uint32_t r0, uint32_t n,
                                 size_t x0, size_t x1, size_t bias_off) {
    const uint32_t C = ctx->num_cols; /* multiple of 32 */
    size_t xr = x0;
    for (; xr + 4 <= x1; xr += 4) {
        const float* x = ctx->input + xr * C;
        float glu[4] = {0};
        for (uint32_t r = 0; r < n; r += 2) {
            const float* w0 = w + (size_t) r * C;
            const float* w1 = w0 + C;
            __m256 a[8];
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) a[i] = _mm256_setzero_ps();
            for (uint32_t c = 0; c < C; c += 8) {
                const __m256 wa = _mm256_loadu_ps(w0 + c), wb = _mm256_loadu_ps(w1 + c);
#pragma GCC unroll 8
                for (int i = 0; i < 4; i++) {
                    const __m256 xv = _mm256_loadu_ps(x + (size_t) i * C + c);
                    a[2 * i] = _mm256_fmadd_ps(xv, wa, a[2 * i]);
                    a[2 * i + 1] = _mm256_fmadd_ps(xv, wb, a[2 * i + 1]);
                }
            }
            float s[8];
            _mm256_storeu_ps(s, hsum8x8_moe(a));
#pragma GCC unroll 8
            for (int i = 0; i < 4; i++) {
                store_result(ctx, xr + i, r0 + r, bias_off, s[2 * i], &glu[i]);
                store_result(ctx, xr + i, r0 + r + 1, bias_off, s[2 * i + 1], &glu[i]);
            }
        }
    }
    for (; xr < x1; xr++) {
        const float* x = ctx->input + xr * C;
        float glu = 0.0f;
        for (uint32_t r = 0; r < n; r += 2) {
            const float* w0 = w + (size_t) r * C;
            const float* w1 = w0 + C;
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
            for (uint32_t c = 0; c < C; c += 8) {
                const __m256 xv = _mm256_loadu_ps(x + c);
                a0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w0 + c), a0);
                a1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(w1 + c), a1);
            }
            store_result(ctx, xr, r0 + r, bias_off, hsum256(a0), &glu);
            store_result(ctx, xr, r0 + r + 1, bias_off, hsum256(a1), &glu);
        }
    }
}
#endif

static void moe_dense_task(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct moe_dense_context* ctx = context;
    const uint32_t E = ctx->num_experts;
    float* w = ctx->scratch + thread_index * ctx->scratch_floats;
    for (size_t item = begin; item < end; item++) {
        const uint32_t tile = (uint32_t) (item / E), e = (uint32_t) (item % E);
        const size_t x0 = ctx->expert_offsets[e], x1 = ctx->expert_offsets[e + 1];
        if (x0 == x1) continue;
        const uint32_t r0 = tile * DENSE_TILE;
        const uint32_t n = ctx->num_weight_rows - r0 < DENSE_TILE ? ctx->num_weight_rows - r0 : DENSE_TILE;
        const size_t off = (size_t) e * ctx->expert_stride;
#if defined(__x86_64__)
        if (ctx->avx2 && n % 2 == 0) {
            dequantize_rows_avx2(ctx, ctx->blocks + off, ctx->scales + off, r0, n, w);
            dense_rows_avx2(ctx, w, r0, n, x0, x1, off);
            continue;
        }
#endif
        dequantize_rows(ctx, ctx->blocks + off, ctx->scales + off, r0, n, w);
        dense_rows_scalar(ctx, w, r0, n, x0, x1, off);
    }
}

static enum gptoss_status moe_dense(gptoss_backend_t backend, const uint32_t* expert_offsets, const float* input,
                                    const uint8_t* weight_blocks, const uint8_t* weight_scales,
                                    const gptoss_bf16* bias, size_t expert_stride, float* output,
                                    uint32_t num_experts, uint32_t num_cols, uint32_t num_weight_rows,
                                    uint32_t num_out, int swiglu, float limit) {
    const uint32_t threads = gptoss_threadpool_num_threads(gptoss_cpu(backend)->pool);
    const size_t per_thread = ((size_t) DENSE_TILE * num_cols + 15) / 16 * 16;
    void* memory = NULL;
    GPTOSS_TRY(gptoss_cpu_scratch_acquire(backend, ((size_t) threads * per_thread + 256) * sizeof(float), &memory));
    float* scratch = memory;
    float* mult = scratch + (size_t) threads * per_thread;
    build_multipliers(mult);
    struct moe_dense_context ctx = {
        .expert_offsets = expert_offsets,
        .input = input,
        .blocks = weight_blocks,
        .scales = weight_scales,
        .bias = (const uint8_t*) bias,
        .expert_stride = expert_stride,
        .output = output,
        .num_experts = num_experts,
        .num_cols = num_cols,
        .num_weight_rows = num_weight_rows,
        .num_out = num_out,
        .swiglu = swiglu,
        .limit = limit,
        .avx2 = gptoss_cpu(backend)->isa >= gptoss_cpu_isa_avx2,
        .mult = mult,
        .scratch = scratch,
        .scratch_floats = per_thread,
    };
    const size_t tiles = ((size_t) num_weight_rows + DENSE_TILE - 1) / DENSE_TILE;
    gptoss_cpu_parallelize(backend, moe_dense_task, &ctx, tiles * num_experts, 1);
    gptoss_cpu_scratch_release(backend);
    return gptoss_status_success;
}

enum gptoss_status gptoss_cpu_f32_mf4w_moe_dense_matmul_swiglu(
    gptoss_backend_t backend, const struct gptoss_f32_mf4w_moe_dense_matmul_swiglu_args* args) {
    return moe_dense(backend, args->expert_offsets, args->input, args->weight_blocks, args->weight_scales, args->bias,
                     args->expert_stride, args->output, args->num_experts, args->num_cols, 2 * args->num_rows,
                     args->num_rows, 1, args->swiglu_limit);
}

enum gptoss_status gptoss_cpu_f32_mf4w_moe_dense_matmul(gptoss_backend_t backend,
                                                        const struct gptoss_f32_mf4w_moe_dense_matmul_args* args) {
    return moe_dense(backend, args->expert_offsets, args->input, args->weight_blocks, args->weight_scales, args->bias,
                     args->expert_stride, args->output, args->num_experts, args->num_cols, args->num_rows,
                     args->num_rows, 0, 0.0f);
}
