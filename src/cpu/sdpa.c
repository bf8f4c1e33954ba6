/* CPU backend: scaled dot-product attention with sinks, sliding window and GQA
 * (kernels.h gptoss_f32_sdpa, KERNELS.md 3.11).
 *
 * One item per (query token i, kv head h): the G = num_q_heads / num_kv_heads Q heads of
 * that kv head are processed together, so each K/V row is read once per item. Online
 * softmax in f32: running max m initialised to the sink logit S (running sum l = 1 for
 * e^(S-S)), or m = -inf, l = 0 without sinks; exp is expf.
 *
 * AVX2: keys in blocks of 8. Per block and head: 8 dot products (8-wide fma over the
 * head dimension, then a horizontal-add tree), s = dot * scale. Then for up to 8 heads at
 * once, head g in lane g: m' = max(m, block max), c = e^(m - m') (1 when m' == m), p =
 * e^(s - m') (a vectorised exp of about 1 ulp: expf per key cost as much as the rest of the
 * kernel), l = l*c + sum p; then acc = acc*c + sum p V. A partial last block is copied into
 * a zero-padded 8-row buffer. head_dim % 8 == 4 uses masked loads (zero lanes).
 *
 * AVX-512 (head_dim % 16 == 0; else the AVX2 code): keys in blocks of 16 at positions
 * aligned to 16, all 16 scores of a head in one vector (per key an accumulator over the head
 * dimension, then one transposing tree sums the 16), the softmax state of 8 heads at once
 * as AVX2, P.V for tiles of 4 heads x 4 vectors in registers; the next block prefetched
 * into L2 a few lines per head. About 3x the older AVX2 code from memory on Zen 4
 * (docs/CPU_NOTES.md, "Attention at long contexts").
 *
 * Scalar: the same recurrence key by key.
 *
 * f32_sdpa_varlen runs the same code per (query row, kv head) item: only the position of
 * a row and the address of a key row (its slot through the sequence's block table) differ,
 * so a row's arithmetic depends on its own query and keys alone (batch invariance), and a
 * sequence gives the same bits through either entry. A block of 8 keys whose rows are not
 * consecutive in the cache (it spans two cache blocks) is copied into the padded buffer
 * first, as a partial block is. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common/math.h"
#include "cpu/cpu.h"
#include "internal/error.h"

struct sdpa_context {
    const float* q;
    const float* kv;
    const gptoss_bf16* sinks;
    float* output;
    uint64_t kv_stride;
    size_t qkv_dim;
    uint32_t window;
    uint32_t num_kv_tokens;   /* f32_sdpa: row i is at position num_kv_tokens + i */
    const uint32_t* positions; /* varlen: per row (NULL for f32_sdpa) */
    const uint32_t* seq_ids;
    const uint32_t* block_tables;
    uint32_t block_size, table_stride;
    uint32_t num_q_heads;
    uint32_t num_kv_heads;
    uint32_t head_dim;
    uint32_t G;
    float scale;
    float* scratch; /* per thread: a block of the floats sdpa_run sizes */
    size_t scratch_stride; /* between two threads' blocks (gptoss_cpu_thread_stride) */
};

/* Where the keys of one (query row, kv head) item are: kv head base and the sequence's block
 * table (NULL: position t is row t of the head). */
struct key_source {
    const float* head;
    const uint32_t* table;
    uint32_t block_size;
    uint32_t row_floats; /* 2 * head_dim */
};

static inline const float* key_row(const struct key_source* src, uint64_t t) {
    if (src->table == NULL) return src->head + t * src->row_floats;
    const uint64_t slot = (uint64_t) src->table[t / src->block_size] * src->block_size + t % src->block_size;
    return src->head + slot * src->row_floats;
}

/* Keys [lo, hi] of query row i and where they are for kv head h. */
static void item_keys(const struct sdpa_context* ctx, size_t i, size_t h, uint64_t* lo, uint64_t* hi,
                      struct key_source* src) {
    const uint64_t P = ctx->positions != NULL ? ctx->positions[i] : (uint64_t) ctx->num_kv_tokens + i;
    *hi = P;
    *lo = P + 1 > (uint64_t) ctx->window ? P + 1 - ctx->window : 0;
    src->head = ctx->kv + h * ctx->kv_stride;
    src->table = ctx->positions != NULL ? ctx->block_tables + (size_t) ctx->seq_ids[i] * ctx->table_stride : NULL;
    src->block_size = ctx->block_size;
    src->row_floats = 2 * ctx->head_dim;
}

static void init_state(const struct sdpa_context* ctx, uint32_t hq, float* m, float* l) {
    if (ctx->sinks != NULL) {
        *m = gptoss_bf16_to_f32(ctx->sinks[hq].bits);
        *l = 1.0f;
    } else {
        *m = -INFINITY;
        *l = 0.0f;
    }
}

/* ---------------------------------------------------------------------------------- */

static void sdpa_task_scalar(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct sdpa_context* ctx = context;
    const uint32_t D = ctx->head_dim, G = ctx->G;
    float* acc = ctx->scratch + thread_index * ctx->scratch_stride;
    for (size_t item = begin; item < end; item++) {
        const size_t i = item / ctx->num_kv_heads, h = item % ctx->num_kv_heads;
        uint64_t lo, hi;
        struct key_source src;
        item_keys(ctx, i, h, &lo, &hi, &src);
        for (uint32_t g = 0; g < G; g++) {
            const uint32_t hq = (uint32_t) h * G + g;
            const float* qv = ctx->q + i * ctx->qkv_dim + (size_t) hq * D;
            float m, l;
            init_state(ctx, hq, &m, &l);
            for (uint32_t d = 0; d < D; d++) acc[d] = 0.0f;
            for (uint64_t t = lo; t <= hi; t++) {
                const float* k = key_row(&src, t);
                const float* v = k + D;
                float dot = 0.0f;
                for (uint32_t d = 0; d < D; d++) dot = fmaf(qv[d], k[d], dot);
                const float s = dot * ctx->scale;
                if (s == -INFINITY) continue;
                if (s > m) {
                    const float c = expf(m - s);
                    l *= c;
                    for (uint32_t d = 0; d < D; d++) acc[d] *= c;
                    m = s;
                }
                const float p = expf(s - m);
                l += p;
                for (uint32_t d = 0; d < D; d++) acc[d] = fmaf(p, v[d], acc[d]);
            }
            float* out = ctx->output + i * (size_t) ctx->num_q_heads * D + (size_t) hq * D;
            for (uint32_t d = 0; d < D; d++) out[d] = acc[d] / l;
        }
    }
}

/* ---------------------------------------------------------------------------------- */

#if defined(__x86_64__)

#define AVX2 __attribute__((target("avx2,fma")))

/* lanes j of the result = horizontal sum of a[j] */
AVX2 static inline __m256 hsum8x8(const __m256 a[8]) {
    const __m256 h01 = _mm256_hadd_ps(a[0], a[1]); /* a0:01 a0:23 a1:01 a1:23 | a0:45 a0:67 a1:45 a1:67 */
    const __m256 h23 = _mm256_hadd_ps(a[2], a[3]);
    const __m256 h45 = _mm256_hadd_ps(a[4], a[5]);
    const __m256 h67 = _mm256_hadd_ps(a[6], a[7]);
    const __m256 h0123 = _mm256_hadd_ps(h01, h23); /* a0 a1 a2 a3 (low halves) | a0 a1 a2 a3 (high halves) */
    const __m256 h4567 = _mm256_hadd_ps(h45, h67);
    const __m256 lo = _mm256_permute2f128_ps(h0123, h4567, 0x20);
    const __m256 hi = _mm256_permute2f128_ps(h0123, h4567, 0x31);
    return _mm256_add_ps(lo, hi);
}

/* The layout of _mm256_hadd_ps(a, b) with max instead of +. */
AVX2 static inline __m256 pairmax(__m256 a, __m256 b) {
    return _mm256_max_ps(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)), _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* lanes j of the result = horizontal max of a[j] (hsum8x8's tree) */
AVX2 static inline __m256 hmax8x8(const __m256 a[8]) {
    const __m256 h0123 = pairmax(pairmax(a[0], a[1]), pairmax(a[2], a[3]));
    const __m256 h4567 = pairmax(pairmax(a[4], a[5]), pairmax(a[6], a[7]));
    return _mm256_max_ps(_mm256_permute2f128_ps(h0123, h4567, 0x20), _mm256_permute2f128_ps(h0123, h4567, 0x31));
}

/* e^x for x <= 0 (the softmax arguments s - m), about 1 ulp: x = n ln2 + r, |r| <= ln2/2,
 * e^r by a degree-7 Taylor/minimax polynomial (Cephes expf coefficients), times 2^n built
 * in the exponent field. Results below 2^-126 are flushed to 0 (they are negligible next to
 * the running sum, which holds e^0 = 1); -inf gives 0 and NaN stays NaN. */
AVX2 static inline __m256 exp_nonpositive(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.0f);
    const __m256 tiny = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_max_ps(lo, x); /* NaN stays in x */
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(tiny, y);
}

/* Keys t0 .. t0 + n - 1 (n <= 8) as 8 rows of 2D floats from the returned pointer: the
 * cache itself when the 8 rows are consecutive there, else a copy in pad with zero rows
 * after n (the values the kernel then reads are the same either way). */
static const float* key_block(const struct key_source* src, uint64_t t0, uint32_t n, float* pad) {
    const size_t rf = src->row_floats;
    const float* first = key_row(src, t0);
    /* rows of at most two cache blocks are consecutive when the last is 7 rows after the first */
    if (n == 8 && (src->table == NULL || src->block_size >= 8) && key_row(src, t0 + 7) == first + 7 * rf) return first;
    for (uint32_t r = 0; r < 8; r++) {
        if (r < n) memcpy(pad + r * rf, key_row(src, t0 + r), rf * sizeof(float));
        else memset(pad + r * rf, 0, rf * sizeof(float));
    }
    return pad;
}

AVX2 static void sdpa_task_avx2(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct sdpa_context* ctx = context;
    const uint32_t D = ctx->head_dim, G = ctx->G;
    const uint32_t D8 = D / 8, Dp = (D + 7) / 8 * 8;
    const int dtail = (D % 8) != 0; /* D % 8 == 4 */
    const __m256i tail_mask = _mm256_setr_epi32(-1, -1, -1, -1, 0, 0, 0, 0);
    const __m256 minus_inf = _mm256_set1_ps(-INFINITY);
    const __m256i lane_index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);

    /* scratch: acc[G][Dp], m[G], l[G], corr[G], p[G][8], pad[8][2D] */
    float* acc = ctx->scratch + thread_index * ctx->scratch_stride;
    float* m = acc + (size_t) G * Dp;
    float* l = m + G;
    float* corr = l + G;
    float* p = corr + G;
    float* pad = p + (size_t) G * 8;

    for (size_t item = begin; item < end; item++) {
        const size_t i = item / ctx->num_kv_heads, h = item % ctx->num_kv_heads;
        uint64_t lo, hi;
        struct key_source src;
        item_keys(ctx, i, h, &lo, &hi, &src);
        const float* qbase = ctx->q + i * ctx->qkv_dim + (size_t) h * G * D;
        for (uint32_t g = 0; g < G; g++) init_state(ctx, (uint32_t) h * G + g, &m[g], &l[g]);
        memset(acc, 0, (size_t) G * Dp * sizeof(float));

        for (uint64_t t0 = lo; t0 <= hi; t0 += 8) {
            const uint32_t nk = hi + 1 - t0 >= 8 ? 8 : (uint32_t) (hi + 1 - t0);
            const float* kb = key_block(&src, t0, nk, pad); /* row r: K at kb + r*2D, V at + D */
            /* the next block's rows into L2, spread over the heads below (Zen 4, 32,768 keys,
             * 1 / 2 threads: all 64 lines into L1 at once 6.1 / 11.7 GB/s, spread into L2
             * 10.7-11.1 / 20-21) */
            const char* next_rows[8] = {NULL};
            if (t0 + 16 <= hi + 1) {
                for (int r = 0; r < 8; r++) next_rows[r] = (const char*) key_row(&src, t0 + 8 + r);
            }
            const __m256 valid = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int) nk), lane_index));

            /* scores of up to 8 heads, then their softmax state at once, head g in lane g:
             * block max (invalid lanes are -inf; a NaN score is skipped here and reaches the
             * output through l), new max, correction (1 where the max stays: also -inf =
             * -inf), p, l; no serial chain of scalar maxima, expf and sums per head */
            for (uint32_t g0 = 0; g0 < G; g0 += 8) {
                const uint32_t gh = G - g0 < 8 ? G - g0 : 8;
                __m256 S[8];
                unsigned nan_heads = 0;
                for (uint32_t g = 0; g < 8; g++) {
                    if (g >= gh) {
                        S[g] = minus_inf;
                        continue;
                    }
                    for (uint32_t r = g0 + g; r < 8 && next_rows[r] != NULL; r += G) {
                        for (size_t off = 0; off < 2 * D * sizeof(float); off += 64) _mm_prefetch(next_rows[r] + off, _MM_HINT_T1);
                    }
                    const float* qg = qbase + (size_t) (g0 + g) * D;
                    __m256 a[8];
#pragma GCC unroll 8
                    for (int r = 0; r < 8; r++) a[r] = _mm256_setzero_ps();
                    for (uint32_t c = 0; c < D8; c++) {
                        const __m256 qv = _mm256_loadu_ps(qg + 8 * c);
#pragma GCC unroll 8
                        for (int r = 0; r < 8; r++) a[r] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(kb + r * 2 * D + 8 * c), a[r]);
                    }
                    if (dtail) {
                        const __m256 qv = _mm256_maskload_ps(qg + 8 * D8, tail_mask);
#pragma GCC unroll 8
                        for (int r = 0; r < 8; r++) {
                            a[r] = _mm256_fmadd_ps(qv, _mm256_maskload_ps(kb + r * 2 * D + 8 * D8, tail_mask), a[r]);
                        }
                    }
                    S[g] = _mm256_blendv_ps(minus_inf, _mm256_mul_ps(hsum8x8(a), _mm256_set1_ps(ctx->scale)), valid);
                    if (_mm256_movemask_ps(_mm256_cmp_ps(S[g], S[g], _CMP_UNORD_Q))) nan_heads |= 1u << g;
                }
                const __m256i heads = _mm256_cmpgt_epi32(_mm256_set1_epi32((int) gh), lane_index);
                const __m256 mo = _mm256_maskload_ps(m + g0, heads);
                const __m256 mb = _mm256_max_ps(hmax8x8(S), mo); /* a NaN block max: mo */
                const __m256 same = _mm256_cmp_ps(mo, mb, _CMP_EQ_OQ);
                const __m256 cv = exp_nonpositive(_mm256_andnot_ps(same, _mm256_sub_ps(mo, mb)));
                /* no key yet (max -inf, no sinks): p = e^(-inf - 0) = 0 */
                float mbs[8] __attribute__((aligned(32)));
                _mm256_store_ps(mbs, _mm256_andnot_ps(_mm256_cmp_ps(mb, minus_inf, _CMP_EQ_OQ), mb));
                __m256 P[8];
#pragma GCC unroll 8
                for (int g = 0; g < 8; g++) {
                    P[g] = exp_nonpositive(_mm256_sub_ps(S[g], _mm256_set1_ps(mbs[g])));
                    if ((uint32_t) g < gh) _mm256_storeu_ps(p + (size_t) (g0 + g) * 8, P[g]);
                }
                float lv[8] __attribute__((aligned(32)));
                _mm256_store_ps(lv, _mm256_fmadd_ps(_mm256_maskload_ps(l + g0, heads), cv, hsum8x8(P)));
                for (uint32_t g = 0; g < gh; g++) {
                    if (nan_heads >> g & 1) lv[g] = NAN; /* NaN score: NaN out */
                }
                _mm256_maskstore_ps(m + g0, heads, mb);
                _mm256_maskstore_ps(l + g0, heads, _mm256_load_ps(lv));
                _mm256_maskstore_ps(corr + g0, heads, cv);
            }

            /* acc[g] = acc[g] * corr[g] + sum_r p[g][r] V_r */
            for (uint32_t c = 0; c < (D + 7) / 8; c++) {
                __m256 v[8];
                if (c < D8) {
#pragma GCC unroll 8
                    for (int r = 0; r < 8; r++) v[r] = _mm256_loadu_ps(kb + r * 2 * D + D + 8 * c);
                } else {
#pragma GCC unroll 8
                    for (int r = 0; r < 8; r++) v[r] = _mm256_maskload_ps(kb + r * 2 * D + D + 8 * c, tail_mask);
                }
                for (uint32_t g = 0; g < G; g++) {
                    float* ag = acc + (size_t) g * Dp + 8 * c;
                    const float* pg = p + (size_t) g * 8;
                    __m256 x = _mm256_mul_ps(_mm256_load_ps(ag), _mm256_broadcast_ss(&corr[g]));
#pragma GCC unroll 8
                    for (int r = 0; r < 8; r++) x = _mm256_fmadd_ps(_mm256_broadcast_ss(&pg[r]), v[r], x);
                    _mm256_store_ps(ag, x);
                }
            }
        }

        float* out = ctx->output + i * (size_t) ctx->num_q_heads * D + (size_t) h * G * D;
        for (uint32_t g = 0; g < G; g++) {
            const __m256 lv = _mm256_set1_ps(l[g]);
            const float* ag = acc + (size_t) g * Dp;
            for (uint32_t c = 0; c < D8; c++) _mm256_storeu_ps(out + g * D + 8 * c, _mm256_div_ps(_mm256_load_ps(ag + 8 * c), lv));
            if (dtail) _mm256_maskstore_ps(out + g * D + 8 * D8, tail_mask, _mm256_div_ps(_mm256_load_ps(ag + 8 * D8), lv));
        }
    }
}


/* ---------------------------------------------------------------------------------- */
/* AVX-512 (head_dim % 16 == 0)                                                        */

#define AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma")))
#define SDPA_KEYS 16 /* keys per block: one score per lane */

/* exp_nonpositive on 16 lanes: the same function on each half (the same bits as AVX2). */
AVX512 static inline __m512 exp_nonpositive16(__m512 x) {
    const __m256 lo = exp_nonpositive(_mm512_castps512_ps256(x));
    const __m256 hi = exp_nonpositive(_mm512_extractf32x8_ps(x, 1));
    return _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
}

/* Lane L of the result = the sum of the 16 lanes of a[4 (L % 4) + L / 4]: halves, then
 * quarters (128-bit blocks), then within blocks; a fixed tree. */
AVX512 static inline __m512 sum16x16(const __m512 a[16]) {
    __m512 w[8], x[4];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        w[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        x[i] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(w[2 * i], w[2 * i + 1], 0xDD));
    }
    const __m512 y0 = _mm512_add_ps(_mm512_unpacklo_ps(x[0], x[1]), _mm512_unpackhi_ps(x[0], x[1]));
    const __m512 y1 = _mm512_add_ps(_mm512_unpacklo_ps(x[2], x[3]), _mm512_unpackhi_ps(x[2], x[3]));
    return _mm512_add_ps(_mm512_shuffle_ps(y0, y1, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(y0, y1, _MM_SHUFFLE(3, 2, 3, 2)));
}

/* Lane 4g (g < 4) and 4 (g - 4) + 1 (g >= 4) of the result: OP over the 16 lanes of s[g]
 * (sum16x16's tree on 8 inputs); head_lanes (in sdpa_task_avx512) moves them to lane g. */
#define TREE8X16(NAME, OP)                                                                                   \
    AVX512 static inline __m512 NAME(const __m512 s[8]) {                                                    \
        __m512 w[4];                                                                                         \
        for (int i = 0; i < 4; i++) {                                                                        \
            w[i] = OP(_mm512_shuffle_f32x4(s[2 * i], s[2 * i + 1], 0x44),                                    \
                      _mm512_shuffle_f32x4(s[2 * i], s[2 * i + 1], 0xEE));                                   \
        }                                                                                                    \
        const __m512 x0 = OP(_mm512_shuffle_f32x4(w[0], w[1], 0x88), _mm512_shuffle_f32x4(w[0], w[1], 0xDD)); \
        const __m512 x1 = OP(_mm512_shuffle_f32x4(w[2], w[3], 0x88), _mm512_shuffle_f32x4(w[2], w[3], 0xDD)); \
        const __m512 y = OP(_mm512_unpacklo_ps(x0, x1), _mm512_unpackhi_ps(x0, x1));                         \
        return OP(_mm512_shuffle_ps(y, y, _MM_SHUFFLE(1, 0, 1, 0)), _mm512_shuffle_ps(y, y, _MM_SHUFFLE(3, 2, 3, 2))); \
    }
TREE8X16(max8x16, _mm512_max_ps)
TREE8X16(sum8x16, _mm512_add_ps)

/* Lane k: q . K_k for the 16 keys of a block (rows of 2 x 16 * D16 floats), over the head
 * dimension in vectors: one accumulator per key, then sum16x16 (accumulator j holds key
 * 4 (j % 4) + j / 4, the lane sum16x16 puts it in). */
AVX512 static inline __attribute__((always_inline)) __m512 scores16(const uint32_t D16, const float* q,
                                                                    const float* kb) {
    __m512 a[SDPA_KEYS];
#pragma GCC unroll 16
    for (int j = 0; j < SDPA_KEYS; j++) a[j] = _mm512_setzero_ps();
    for (uint32_t c = 0; c < D16; c++) {
        const __m512 qv = _mm512_loadu_ps(q + 16 * c);
#pragma GCC unroll 16
        for (int j = 0; j < SDPA_KEYS; j++) {
            const int key = 4 * (j % 4) + j / 4;
            a[j] = _mm512_fmadd_ps(qv, _mm512_loadu_ps(kb + (size_t) key * 32 * D16 + 16 * c), a[j]);
        }
    }
    return sum16x16(a);
}

AVX512 static __m512 scores16_any(uint32_t D16, const float* q, const float* kb) { return scores16(D16, q, kb); }

/* Keys tb .. tb + 15 of which [a, b] are wanted: the cache's rows when all 16 are wanted and
 * consecutive there, else a copy in pad of the wanted rows, zero rows elsewhere (never
 * reading a row outside [a, b]: it may belong to a released cache block). */
static const float* key_block16(const struct key_source* src, uint64_t tb, uint64_t a, uint64_t b, float* pad) {
    const size_t rf = src->row_floats;
    /* 16 rows of at most two cache blocks (block_size >= 16) are consecutive when the last is
     * 15 rows after the first; with smaller blocks a middle block may lie elsewhere */
    if (a == tb && b == tb + SDPA_KEYS - 1 && (src->table == NULL || src->block_size >= SDPA_KEYS)) {
        const float* first = key_row(src, tb);
        if (key_row(src, tb + SDPA_KEYS - 1) == first + (SDPA_KEYS - 1) * rf) return first;
    }
    for (uint64_t t = tb; t < tb + SDPA_KEYS; t++) {
        float* row = pad + (t - tb) * rf;
        if (t >= a && t <= b) memcpy(row, key_row(src, t), rf * sizeof(float));
        else memset(row, 0, rf * sizeof(float));
    }
    return pad;
}

/* acc[g] = acc[g] * corr[g] + sum_r p[g][r] V_r for heads g0 .. g0 + GH - 1 and the head
 * dimension's vectors c0 .. c0 + CC - 1 (GH x CC <= 16 accumulators in registers). */
AVX512 static inline __attribute__((always_inline)) void pv_tile(const int GH, const int CC, float* acc,
                                                                 const float* p, const float* corr,
                                                                 const float* kb, uint32_t D, uint32_t g0,
                                                                 uint32_t c0) {
    __m512 x[4][4];
#pragma GCC unroll 4
    for (int g = 0; g < GH; g++) {
        const __m512 cg = _mm512_set1_ps(corr[g0 + g]);
#pragma GCC unroll 4
        for (int c = 0; c < CC; c++) x[g][c] = _mm512_mul_ps(_mm512_load_ps(acc + (size_t) (g0 + g) * D + 16 * (c0 + c)), cg);
    }
    for (int r = 0; r < SDPA_KEYS; r++) {
        const float* v = kb + (size_t) r * 2 * D + D + 16 * c0;
        __m512 vr[4];
#pragma GCC unroll 4
        for (int c = 0; c < CC; c++) vr[c] = _mm512_loadu_ps(v + 16 * c);
#pragma GCC unroll 4
        for (int g = 0; g < GH; g++) {
            const __m512 pr = _mm512_set1_ps(p[(size_t) (g0 + g) * SDPA_KEYS + r]);
#pragma GCC unroll 4
            for (int c = 0; c < CC; c++) x[g][c] = _mm512_fmadd_ps(pr, vr[c], x[g][c]);
        }
    }
#pragma GCC unroll 4
    for (int g = 0; g < GH; g++) {
#pragma GCC unroll 4
        for (int c = 0; c < CC; c++) _mm512_store_ps(acc + (size_t) (g0 + g) * D + 16 * (c0 + c), x[g][c]);
    }
}

/* pv_tile over all heads and the whole head dimension: tiles of up to 4 heads x 4 vectors. */
AVX512 static void pv_block(float* acc, const float* p, const float* corr, const float* kb, uint32_t D, uint32_t G) {
    const uint32_t D16 = D / 16;
    for (uint32_t c0 = 0; c0 < D16; c0 += 4) {
        const uint32_t cc = D16 - c0 < 4 ? D16 - c0 : 4;
        for (uint32_t g0 = 0; g0 < G; g0 += 4) {
            const uint32_t gh = G - g0 < 4 ? G - g0 : 4;
#define PV_CASE(GH, CC) \
    case (GH) * 8 + (CC): pv_tile(GH, CC, acc, p, corr, kb, D, g0, c0); break;
            switch (gh * 8 + cc) {
                PV_CASE(4, 4) PV_CASE(4, 3) PV_CASE(4, 2) PV_CASE(4, 1)
                PV_CASE(3, 4) PV_CASE(3, 3) PV_CASE(3, 2) PV_CASE(3, 1)
                PV_CASE(2, 4) PV_CASE(2, 3) PV_CASE(2, 2) PV_CASE(2, 1)
                PV_CASE(1, 4) PV_CASE(1, 3) PV_CASE(1, 2)
                default: pv_tile(1, 1, acc, p, corr, kb, D, g0, c0);
            }
#undef PV_CASE
        }
    }
}

/* As sdpa_task_avx2 with blocks of 16 keys at positions aligned to 16 (so that a block is
 * one cache block of the paged cache; the first and last block of an item are copies with
 * zero rows outside its keys) and all 16 scores of a head in one vector: per head 16
 * accumulators over the head dimension, summed by sum16x16; the softmax state as AVX2;
 * then P.V for 4 heads at a time. A row's arithmetic depends on its position, window and
 * keys only. */
AVX512 static void sdpa_task_avx512(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct sdpa_context* ctx = context;
    const uint32_t D = ctx->head_dim, G = ctx->G, D16 = D / 16;
    const __m512 minus_inf = _mm512_set1_ps(-INFINITY);
    const __m512 scale = _mm512_set1_ps(ctx->scale);
    const __m512i head_lanes = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);

    /* scratch: acc[G][D], p[G][16], pad[16][2D], m[G], l[G], corr[G] (sdpa_run) */
    float* acc = ctx->scratch + thread_index * ctx->scratch_stride;
    float* p = acc + (size_t) G * D;
    float* pad = p + (size_t) G * SDPA_KEYS;
    float* m = pad + (size_t) SDPA_KEYS * 2 * D;
    float* l = m + G;
    float* corr = l + G;

    for (size_t item = begin; item < end; item++) {
        const size_t i = item / ctx->num_kv_heads, h = item % ctx->num_kv_heads;
        uint64_t lo, hi;
        struct key_source src;
        item_keys(ctx, i, h, &lo, &hi, &src);
        const float* qbase = ctx->q + i * ctx->qkv_dim + (size_t) h * G * D;
        for (uint32_t g = 0; g < G; g++) init_state(ctx, (uint32_t) h * G + g, &m[g], &l[g]);
        memset(acc, 0, (size_t) G * D * sizeof(float));

        for (uint64_t tb = lo / SDPA_KEYS * SDPA_KEYS; tb <= hi; tb += SDPA_KEYS) {
            const uint64_t a = tb > lo ? tb : lo, b = tb + SDPA_KEYS - 1 < hi ? tb + SDPA_KEYS - 1 : hi;
            const float* kb = key_block16(&src, tb, a, b, pad); /* row r: K at kb + r*2D, V at + D */
            /* the next block into L2, its lines spread over the heads below (Zen 4, 32,768
             * keys, 1 / 2 threads: into L1 8.5 / 16 GB/s, into L2 16 / 24-30; all lines at
             * once stalled the loads behind the prefetches) */
            const char* next = NULL;
            if (tb + 2 * SDPA_KEYS - 1 <= hi && (src.table == NULL || src.block_size % SDPA_KEYS == 0)) {
                next = (const char*) key_row(&src, tb + SDPA_KEYS);
            }
            const size_t lines = SDPA_KEYS * 2 * (size_t) D * sizeof(float) / 64, per_head = (lines + G - 1) / G;
            const __mmask16 valid = (__mmask16) (((1u << (b - a + 1)) - 1) << (a - tb));

            for (uint32_t g0 = 0; g0 < G; g0 += 8) {
                const uint32_t gh = G - g0 < 8 ? G - g0 : 8;
                __m512 S[8];
                __mmask16 nan_heads = 0;
                for (uint32_t g = 0; g < 8; g++) {
                    if (g >= gh) {
                        S[g] = minus_inf;
                        continue;
                    }
                    if (next != NULL) {
                        for (size_t line = (g0 + g) * per_head; line < (g0 + g + 1) * per_head && line < lines; line++) {
                            _mm_prefetch(next + 64 * line, _MM_HINT_T1);
                        }
                    }
                    const float* qg = qbase + (size_t) (g0 + g) * D;
                    __m512 dots;
                    switch (D16) { /* the head dimension as a constant: row offsets in the instructions */
                        case 2: dots = scores16(2, qg, kb); break;
                        case 4: dots = scores16(4, qg, kb); break;
                        case 8: dots = scores16(8, qg, kb); break;
                        default: dots = scores16_any(D16, qg, kb); break;
                    }
                    S[g] = _mm512_mask_mov_ps(minus_inf, valid, _mm512_mul_ps(dots, scale));
                    if (_mm512_cmp_ps_mask(S[g], S[g], _CMP_UNORD_Q)) nan_heads |= (__mmask16) (1u << g);
                }
                /* the softmax state of the 8 heads at once, head g in lane g: block max (a
                 * NaN score is skipped here and reaches the output through l), new max,
                 * correction (1 where the max stays: also -inf = -inf), p, l */
                const __mmask16 heads = (__mmask16) ((1u << gh) - 1);
                const __m512 bm = _mm512_permutexvar_ps(head_lanes, max8x16(S));
                const __m512 mo = _mm512_maskz_loadu_ps(heads, m + g0);
                const __m512 mb = _mm512_max_ps(bm, mo); /* bm NaN: mo */
                const __mmask16 same = _mm512_cmp_ps_mask(mo, mb, _CMP_EQ_OQ);
                const __m512 cv = exp_nonpositive16(_mm512_maskz_sub_ps((__mmask16) ~same, mo, mb));
                /* no key yet (max -inf, no sinks): p = e^(-inf - 0) = 0 */
                const __m512 mb_safe = _mm512_mask_mov_ps(mb, _mm512_cmp_ps_mask(mb, minus_inf, _CMP_EQ_OQ),
                                                          _mm512_setzero_ps());
                float mbs[16] __attribute__((aligned(64)));
                _mm512_store_ps(mbs, mb_safe);
                __m512 P[8];
#pragma GCC unroll 8
                for (int g = 0; g < 8; g++) {
                    P[g] = exp_nonpositive16(_mm512_sub_ps(S[g], _mm512_set1_ps(mbs[g])));
                    if ((uint32_t) g < gh) _mm512_store_ps(p + (size_t) (g0 + g) * SDPA_KEYS, P[g]);
                }
                const __m512 sums = _mm512_permutexvar_ps(head_lanes, sum8x16(P));
                __m512 lv = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(heads, l + g0), cv, sums);
                lv = _mm512_mask_mov_ps(lv, nan_heads, _mm512_set1_ps(NAN)); /* NaN score: NaN out */
                _mm512_mask_storeu_ps(m + g0, heads, mb);
                _mm512_mask_storeu_ps(l + g0, heads, lv);
                _mm512_mask_storeu_ps(corr + g0, heads, cv);
            }

            pv_block(acc, p, corr, kb, D, G);
        }

        float* out = ctx->output + i * (size_t) ctx->num_q_heads * D + (size_t) h * G * D;
        for (uint32_t g = 0; g < G; g++) {
            const __m512 lv = _mm512_set1_ps(l[g]);
            for (uint32_t c = 0; c < D16; c++) {
                _mm512_storeu_ps(out + g * D + 16 * c, _mm512_div_ps(_mm512_load_ps(acc + (size_t) g * D + 16 * c), lv));
            }
        }
    }
}

#endif

/* Runs the items (query row, kv head) of ctx (filled but for the scratch) over the pool. */
static enum gptoss_status sdpa_run(gptoss_backend_t backend, struct sdpa_context* ctx, uint32_t num_q_tokens) {
    const size_t Dp = (ctx->head_dim + 7) / 8 * 8;
    /* AVX2: acc[G][Dp] + m, l, corr [G] + p[G][8] + pad[8][2D], rounded to 32 bytes;
     * AVX-512: acc[G][D] + p[G][16] + pad[16][2D] + m, l, corr [G] */
    const size_t floats_avx2 = ((size_t) ctx->G * Dp + 11 * (size_t) ctx->G + 16 * (size_t) ctx->head_dim + 7) / 8 * 8;
    const size_t floats_avx512 = (size_t) ctx->G * ctx->head_dim + 19 * (size_t) ctx->G + 32 * (size_t) ctx->head_dim;
    const size_t floats = floats_avx2 > floats_avx512 ? floats_avx2 : floats_avx512;
    const uint32_t threads = gptoss_threadpool_num_threads(gptoss_cpu(backend)->pool);
    void* scratch = NULL;
    const size_t stride = gptoss_cpu_thread_stride(floats);
    GPTOSS_TRY(gptoss_cpu_scratch_acquire(backend, (size_t) threads * stride * sizeof(float), &scratch));
    ctx->scratch = scratch;
    ctx->scratch_stride = stride;
    gptoss_parallel_fn fn = sdpa_task_scalar;
#if defined(__x86_64__)
    if (gptoss_cpu(backend)->isa >= gptoss_cpu_isa_avx2) fn = sdpa_task_avx2;
    if (gptoss_cpu(backend)->isa == gptoss_cpu_isa_avx512 && ctx->head_dim % 16 == 0) fn = sdpa_task_avx512;
#endif
    gptoss_cpu_parallelize(backend, fn, ctx, (size_t) num_q_tokens * ctx->num_kv_heads, 1);
    gptoss_cpu_scratch_release(backend);
    return gptoss_status_success;
}

enum gptoss_status gptoss_cpu_f32_sdpa(gptoss_backend_t backend, const struct gptoss_f32_sdpa_args* args) {
    struct sdpa_context ctx = {
        .q = args->q,
        .kv = args->kv,
        .sinks = args->sinks,
        .output = args->output,
        .kv_stride = args->kv_stride,
        .qkv_dim = (size_t) args->head_dim * (args->num_q_heads + 2 * (size_t) args->num_kv_heads),
        .window = args->window,
        .num_kv_tokens = args->num_kv_tokens,
        .num_q_heads = args->num_q_heads,
        .num_kv_heads = args->num_kv_heads,
        .head_dim = args->head_dim,
        .G = args->num_q_heads / args->num_kv_heads,
        .scale = args->scale,
    };
    return sdpa_run(backend, &ctx, args->num_q_tokens);
}

enum gptoss_status gptoss_cpu_f32_sdpa_varlen(gptoss_backend_t backend, const struct gptoss_f32_sdpa_varlen_args* args) {
    struct sdpa_context ctx = {
        .q = args->q,
        .kv = args->kv,
        .sinks = args->sinks,
        .output = args->output,
        .kv_stride = args->kv_stride,
        .qkv_dim = (size_t) args->head_dim * (args->num_q_heads + 2 * (size_t) args->num_kv_heads),
        .window = args->window,
        .positions = args->positions,
        .seq_ids = args->seq_ids,
        .block_tables = args->block_tables,
        .block_size = args->block_size,
        .table_stride = args->table_stride,
        .num_q_heads = args->num_q_heads,
        .num_kv_heads = args->num_kv_heads,
        .head_dim = args->head_dim,
        .G = args->num_q_heads / args->num_kv_heads,
        .scale = args->scale,
    };
    return sdpa_run(backend, &ctx, args->num_q_tokens);
}
