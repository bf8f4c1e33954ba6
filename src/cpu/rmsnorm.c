/* CPU RMSNorm: per token, ss = sum_c x^2 (f32, fma, several partial sums),
 * r = 1 / sqrtf(ss / (float)C + eps), out = (x * r) * f32(w) (two roundings, no fma).
 * In place is safe (the sum pass reads the whole row before the write pass). Split over
 * tokens. */
#include <math.h>

#include "common/math.h"
#include "cpu/cpu.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GPTOSS_CPU_X86 1
#else
#define GPTOSS_CPU_X86 0
#endif

struct rmsnorm {
    const float* x;
    const uint16_t* w;
    float* out;
    size_t C;
    float eps;
};

static inline float rms_scale(float ss, size_t C, float eps) { return 1.0f / sqrtf(ss / (float) C + eps); }

static void rmsnorm_scalar(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct rmsnorm* n = context;
    const size_t C = n->C;
    for (size_t t = begin; t < end; t++) {
        const float* x = n->x + t * C;
        float* o = n->out + t * C;
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        size_t c = 0;
        for (; c + 4 <= C; c += 4) {
            s0 = fmaf(x[c + 0], x[c + 0], s0);
            s1 = fmaf(x[c + 1], x[c + 1], s1);
            s2 = fmaf(x[c + 2], x[c + 2], s2);
            s3 = fmaf(x[c + 3], x[c + 3], s3);
        }
        for (; c < C; c++) s0 = fmaf(x[c], x[c], s0);
        const float r = rms_scale((s0 + s2) + (s1 + s3), C, n->eps);
        for (c = 0; c < C; c++) o[c] = (x[c] * r) * gptoss_bf16_to_f32(n->w[c]);
    }
}

#if GPTOSS_CPU_X86
__attribute__((target("avx2,fma"))) static void rmsnorm_avx2(void* context, uint32_t thread_index, size_t begin,
                                                              size_t end) {
    const struct rmsnorm* n = context;
    const size_t C = n->C;
    for (size_t t = begin; t < end; t++) {
        const float* x = n->x + t * C;
        float* o = n->out + t * C;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        size_t c = 0;
        for (; c + 32 <= C; c += 32) {
            const __m256 v0 = _mm256_loadu_ps(x + c), v1 = _mm256_loadu_ps(x + c + 8);
            const __m256 v2 = _mm256_loadu_ps(x + c + 16), v3 = _mm256_loadu_ps(x + c + 24);
            a0 = _mm256_fmadd_ps(v0, v0, a0);
            a1 = _mm256_fmadd_ps(v1, v1, a1);
            a2 = _mm256_fmadd_ps(v2, v2, a2);
            a3 = _mm256_fmadd_ps(v3, v3, a3);
        }
        for (; c + 8 <= C; c += 8) {
            const __m256 v = _mm256_loadu_ps(x + c);
            a0 = _mm256_fmadd_ps(v, v, a0);
        }
        const __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3));
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        float ss = _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
        for (; c < C; c++) ss = fmaf(x[c], x[c], ss);
        const float r = rms_scale(ss, C, n->eps);
        const __m256 rv = _mm256_set1_ps(r);
        for (c = 0; c + 8 <= C; c += 8) {
            const __m128i raw = _mm_loadu_si128((const __m128i*) (n->w + c));
            const __m256 w = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
            _mm256_storeu_ps(o + c, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + c), rv), w));
        }
        for (; c < C; c++) o[c] = (x[c] * r) * gptoss_bf16_to_f32(n->w[c]);
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) static void rmsnorm_avx512(void* context,
                                                                                  uint32_t thread_index,
                                                                                  size_t begin, size_t end) {
    const struct rmsnorm* n = context;
    const size_t C = n->C;
    for (size_t t = begin; t < end; t++) {
        const float* x = n->x + t * C;
        float* o = n->out + t * C;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        size_t c = 0;
        for (; c + 64 <= C; c += 64) {
            const __m512 v0 = _mm512_loadu_ps(x + c), v1 = _mm512_loadu_ps(x + c + 16);
            const __m512 v2 = _mm512_loadu_ps(x + c + 32), v3 = _mm512_loadu_ps(x + c + 48);
            a0 = _mm512_fmadd_ps(v0, v0, a0);
            a1 = _mm512_fmadd_ps(v1, v1, a1);
            a2 = _mm512_fmadd_ps(v2, v2, a2);
            a3 = _mm512_fmadd_ps(v3, v3, a3);
        }
        for (; c + 16 <= C; c += 16) {
            const __m512 v = _mm512_loadu_ps(x + c);
            a0 = _mm512_fmadd_ps(v, v, a0);
        }
        float ss = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a2), _mm512_add_ps(a1, a3)));
        for (; c < C; c++) ss = fmaf(x[c], x[c], ss);
        const float r = rms_scale(ss, C, n->eps);
        const __m512 rv = _mm512_set1_ps(r);
        for (c = 0; c + 16 <= C; c += 16) {
            const __m256i raw = _mm256_loadu_si256((const __m256i*) (n->w + c));
            const __m512 w = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
            _mm512_storeu_ps(o + c, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + c), rv), w));
        }
        for (; c < C; c++) o[c] = (x[c] * r) * gptoss_bf16_to_f32(n->w[c]);
    }
}
#endif

enum gptoss_status gptoss_cpu_f32_bf16w_rmsnorm(gptoss_backend_t backend,
                                                const struct gptoss_f32_bf16w_rmsnorm_args* args) {
    struct rmsnorm n = {.x = args->input,
                        .w = (const uint16_t*) args->weight,
                        .out = args->output,
                        .C = args->num_channels,
                        .eps = args->epsilon};
    gptoss_parallel_fn fn = rmsnorm_scalar;
#if GPTOSS_CPU_X86
    switch (gptoss_cpu(backend)->isa) {
        case gptoss_cpu_isa_avx2: fn = rmsnorm_avx2; break;
        case gptoss_cpu_isa_avx512: fn = rmsnorm_avx512; break;
        default: break;
    }
#endif
    const size_t grain = args->num_channels >= 16384 ? 1 : 16384 / args->num_channels;
    gptoss_cpu_parallelize(backend, fn, &n, args->num_tokens, grain);
    return gptoss_status_success;
}
