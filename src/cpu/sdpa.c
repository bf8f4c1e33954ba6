/* CPU backend: scaled dot-product attention with sinks, sliding window and GQA
 * (kernels.h gptoss_f32_sdpa, KERNELS.md 3.11).
 *
 * One item per (query token i, kv head h): the G = num_q_heads / num_kv_heads Q heads of
 * that kv head are processed together, so each K/V row is read once per item. Online
 * softmax in f32: running max m initialised to the sink logit S (running sum l = 1 for
 * e^(S-S)), or m = -inf, l = 0 without sinks; exp is expf.
 *
 * AVX2: keys in blocks of 8. Per block and head: 8 dot products (8-wide fma over the
 * head dimension, then a horizontal-add tree), s = dot * scale; m' = max(m, block max),
 * c = expf(m - m') (1 when m' == m), p = e^(s - m') by a vectorised exp of about 1 ulp
 * (expf per key costs as much as the rest of the kernel), l = l*c + sum p, acc = acc*c +
 * sum p V. A partial last block is copied into a zero-padded 8-row buffer. head_dim % 8 == 4
 * uses masked loads (zero lanes). The AVX-512 variant runs the AVX2 code.
 *
 * Scalar: the same recurrence key by key. */
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
    uint32_t num_kv_tokens;
    uint32_t num_q_heads;
    uint32_t num_kv_heads;
    uint32_t head_dim;
    uint32_t G;
    float scale;
    float* scratch; /* per thread: scratch_floats */
    size_t scratch_floats;
};

/* Keys [lo, hi] of query token i. */
static void key_range(const struct sdpa_context* ctx, size_t i, uint64_t* lo, uint64_t* hi) {
    const uint64_t P = (uint64_t) ctx->num_kv_tokens + i;
    *hi = P;
    *lo = P + 1 > (uint64_t) ctx->window ? P + 1 - ctx->window : 0;
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
    float* acc = ctx->scratch + thread_index * ctx->scratch_floats;
    for (size_t item = begin; item < end; item++) {
        const size_t i = item / ctx->num_kv_heads, h = item % ctx->num_kv_heads;
        uint64_t lo, hi;
        key_range(ctx, i, &lo, &hi);
        const float* kvh = ctx->kv + h * ctx->kv_stride;
        for (uint32_t g = 0; g < G; g++) {
            const uint32_t hq = (uint32_t) h * G + g;
            const float* qv = ctx->q + i * ctx->qkv_dim + (size_t) hq * D;
            float m, l;
            init_state(ctx, hq, &m, &l);
            for (uint32_t d = 0; d < D; d++) acc[d] = 0.0f;
            for (uint64_t t = lo; t <= hi; t++) {
                const float* k = kvh + t * 2 * D;
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

AVX2 static inline float hmax256(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

AVX2 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
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
    float* acc = ctx->scratch + thread_index * ctx->scratch_floats;
    float* m = acc + (size_t) G * Dp;
    float* l = m + G;
    float* corr = l + G;
    float* p = corr + G;
    float* pad = p + (size_t) G * 8;

    for (size_t item = begin; item < end; item++) {
        const size_t i = item / ctx->num_kv_heads, h = item % ctx->num_kv_heads;
        uint64_t lo, hi;
        key_range(ctx, i, &lo, &hi);
        const float* kvh = ctx->kv + h * ctx->kv_stride;
        const float* qbase = ctx->q + i * ctx->qkv_dim + (size_t) h * G * D;
        for (uint32_t g = 0; g < G; g++) init_state(ctx, (uint32_t) h * G + g, &m[g], &l[g]);
        memset(acc, 0, (size_t) G * Dp * sizeof(float));

        for (uint64_t t0 = lo; t0 <= hi; t0 += 8) {
            const uint32_t nk = hi + 1 - t0 >= 8 ? 8 : (uint32_t) (hi + 1 - t0);
            const float* kb = kvh + t0 * 2 * D; /* row r: K at kb + r*2D, V at + D */
            if (nk < 8) {
                memset(pad, 0, (size_t) 8 * 2 * D * sizeof(float));
                memcpy(pad, kb, (size_t) nk * 2 * D * sizeof(float));
                kb = pad;
            }
            if (t0 + 16 <= hi + 1) { /* next block's K/V rows (8 x 2D floats) */
                const char* next = (const char*) (kvh + (t0 + 8) * 2 * D);
                for (size_t off = 0; off < (size_t) 8 * 2 * D * sizeof(float); off += 64) {
                    _mm_prefetch(next + off, _MM_HINT_T0);
                }
            }
            const __m256 valid = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int) nk), lane_index));

            /* scores and softmax state per head */
            for (uint32_t g = 0; g < G; g++) {
                const float* qg = qbase + (size_t) g * D;
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
                __m256 s = _mm256_mul_ps(hsum8x8(a), _mm256_set1_ps(ctx->scale));
                s = _mm256_blendv_ps(minus_inf, s, valid);
                /* block max (invalid lanes are -inf; a NaN score is skipped here and
                 * reaches the output through its p) */
                const float mb = fmaxf(m[g], hmax256(s));
                float* pg = p + (size_t) g * 8;
                if (mb == -INFINITY) { /* nothing to add yet */
                    corr[g] = 1.0f;
                    _mm256_storeu_ps(pg, _mm256_setzero_ps());
                    continue;
                }
                const float c = mb == m[g] ? 1.0f : expf(m[g] - mb);
                const __m256 pv = exp_nonpositive(_mm256_sub_ps(s, _mm256_set1_ps(mb)));
                _mm256_storeu_ps(pg, pv);
                l[g] = fmaf(l[g], c, hsum256(pv));
                if (_mm256_movemask_ps(_mm256_cmp_ps(s, s, _CMP_UNORD_Q))) l[g] = NAN; /* NaN score: NaN out */
                m[g] = mb;
                corr[g] = c;
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

#endif

enum gptoss_status gptoss_cpu_f32_sdpa(gptoss_backend_t backend, const struct gptoss_f32_sdpa_args* args) {
    const uint32_t G = args->num_q_heads / args->num_kv_heads;
    const size_t Dp = (args->head_dim + 7) / 8 * 8;
    /* acc[G][Dp] + m, l, corr [G] + p[G][8] + pad[8][2D], rounded to 32 bytes */
    const size_t floats =
        ((size_t) G * Dp + 3 * (size_t) G + 8 * (size_t) G + 16 * (size_t) args->head_dim + 7) / 8 * 8;
    const uint32_t threads = gptoss_threadpool_num_threads(gptoss_cpu(backend)->pool);
    void* scratch = NULL;
    GPTOSS_TRY(gptoss_cpu_scratch_acquire(backend, (size_t) threads * floats * sizeof(float), &scratch));
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
        .G = G,
        .scale = args->scale,
        .scratch = scratch,
        .scratch_floats = floats,
    };
    gptoss_parallel_fn fn = sdpa_task_scalar;
#if defined(__x86_64__)
    if (gptoss_cpu(backend)->isa >= gptoss_cpu_isa_avx2) fn = sdpa_task_avx2;
#endif
    gptoss_cpu_parallelize(backend, fn, &ctx, (size_t) args->num_q_tokens * args->num_kv_heads, 1);
    gptoss_cpu_scratch_release(backend);
    return gptoss_status_success;
}
