/* CPU RoPE (YaRN, KERNELS.md 1.7), in place over the Q and K heads of qkv rows.
 * Per token the pair factors are computed once (cosf/sinf of the f32 angle, times the
 * YaRN multiplier) into a per-thread table laid out per element: cs[2i] = cs[2i+1] = c,
 * sn[2i] = -s, sn[2i+1] = s, so that out = v * cs + swap(v) * sn gives
 * (x*c - y*s, y*c + x*s) with the same roundings as the scalar formula (no fma).
 * Split over tokens. Rows at their own positions (gptoss_cpu_rope_rows) for the varlen QKV
 * kernel. */
#include <math.h>
#include <stdlib.h>

#include "common/math.h"
#include "cpu/cpu.h"
#include "internal/error.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GPTOSS_CPU_X86 1
#else
#define GPTOSS_CPU_X86 0
#endif

struct rope {
    float* act;
    size_t row_stride; /* floats per token row */
    size_t heads;      /* rotated heads per row (Q + K) */
    size_t D;
    uint32_t token_offset;
    const uint32_t* positions; /* per row, or NULL: token_offset + row */
    float freq_scale, interpolation_scale, yarn_offset, yarn_scale, yarn_multiplier;
    float* scratch;        /* per thread: cos[D], sin[D] */
    size_t scratch_stride; /* floats between two threads' tables (gptoss_cpu_thread_stride) */
};

static inline uint32_t row_position(const struct rope* p, size_t t) {
    return p->positions != NULL ? p->positions[t] : p->token_offset + (uint32_t) t;
}

static void rope_table(const struct rope* p, uint32_t pos, float* cs, float* sn) {
    for (size_t i = 0; i < p->D / 2; i++) {
        const float inv_freq = gptoss_rope_inv_freq((uint32_t) i, p->freq_scale, p->interpolation_scale,
                                                    p->yarn_offset, p->yarn_scale);
        const float phi = (float) pos * inv_freq;
        const float c = cosf(phi) * p->yarn_multiplier, s = sinf(phi) * p->yarn_multiplier;
        cs[2 * i] = c;
        cs[2 * i + 1] = c;
        sn[2 * i] = -s;
        sn[2 * i + 1] = s;
    }
}

/* GCC's SLP vectoriser recognises (x*c - y*s, x*s + y*c) as a complex multiplication and
 * emits vfmaddsub for it even under -ffp-contract=off (GCC 12 -O3 in an AVX2-targeted
 * function: one rounding instead of two). An empty asm on each product keeps it a
 * separately rounded value. */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define OPAQUE(v) __asm__("" : "+x"(v))
#elif defined(__GNUC__) && defined(__aarch64__)
#define OPAQUE(v) __asm__("" : "+w"(v))
#elif defined(__GNUC__)
#define OPAQUE(v) __asm__("" : "+m"(v))
#else
#define OPAQUE(v) ((void) 0)
#endif

/* Scalar rotation of elements [d0, D) of one head (d0 even). */
static inline void rotate_scalar(float* v, const float* cs, const float* sn, size_t d0, size_t D) {
    for (size_t d = d0; d < D; d += 2) {
        const float x = v[d], y = v[d + 1], c = cs[d], s = sn[d + 1];
        float xc = x * c, ys = y * s, xs = x * s, yc = y * c;
        OPAQUE(xc);
        OPAQUE(ys);
        OPAQUE(xs);
        OPAQUE(yc);
        v[d] = xc - ys;
        v[d + 1] = xs + yc;
    }
}

static void rope_scalar(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct rope* p = context;
    float* cs = p->scratch + (size_t) thread_index * p->scratch_stride;
    float* sn = cs + p->D;
    for (size_t t = begin; t < end; t++) {
        rope_table(p, row_position(p, t), cs, sn);
        float* row = p->act + t * p->row_stride;
        for (size_t h = 0; h < p->heads; h++) rotate_scalar(row + h * p->D, cs, sn, 0, p->D);
    }
}

#if GPTOSS_CPU_X86
__attribute__((target("avx2,fma"))) static void rope_avx2(void* context, uint32_t thread_index, size_t begin,
                                                           size_t end) {
    const struct rope* p = context;
    const size_t D = p->D;
    float* cs = p->scratch + (size_t) thread_index * p->scratch_stride;
    float* sn = cs + D;
    for (size_t t = begin; t < end; t++) {
        rope_table(p, row_position(p, t), cs, sn);
        float* row = p->act + t * p->row_stride;
        for (size_t h = 0; h < p->heads; h++) {
            float* v = row + h * D;
            size_t d = 0;
            for (; d + 8 <= D; d += 8) {
                const __m256 x = _mm256_loadu_ps(v + d);
                const __m256 sw = _mm256_permute_ps(x, 0xB1); /* (y, x) per pair */
                const __m256 a = _mm256_mul_ps(x, _mm256_loadu_ps(cs + d));
                const __m256 b = _mm256_mul_ps(sw, _mm256_loadu_ps(sn + d));
                _mm256_storeu_ps(v + d, _mm256_add_ps(a, b));
            }
            rotate_scalar(v, cs, sn, d, D);
        }
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) static void rope_avx512(void* context, uint32_t thread_index,
                                                                               size_t begin, size_t end) {
    const struct rope* p = context;
    const size_t D = p->D;
    float* cs = p->scratch + (size_t) thread_index * p->scratch_stride;
    float* sn = cs + D;
    for (size_t t = begin; t < end; t++) {
        rope_table(p, row_position(p, t), cs, sn);
        float* row = p->act + t * p->row_stride;
        for (size_t h = 0; h < p->heads; h++) {
            float* v = row + h * D;
            size_t d = 0;
            for (; d + 16 <= D; d += 16) {
                const __m512 x = _mm512_loadu_ps(v + d);
                const __m512 sw = _mm512_permute_ps(x, 0xB1);
                const __m512 a = _mm512_mul_ps(x, _mm512_loadu_ps(cs + d));
                const __m512 b = _mm512_mul_ps(sw, _mm512_loadu_ps(sn + d));
                _mm512_storeu_ps(v + d, _mm512_add_ps(a, b));
            }
            rotate_scalar(v, cs, sn, d, D);
        }
    }
}
#endif

enum gptoss_status gptoss_cpu_rope_rows(gptoss_backend_t backend, const struct gptoss_f32_rope_args* args,
                                        const uint32_t* positions) {
    const uint32_t threads = gptoss_threadpool_num_threads(gptoss_cpu(backend)->pool);
    struct rope p = {
        .act = args->activations,
        .row_stride = (size_t) args->head_dim * ((size_t) args->num_q_heads + 2 * (size_t) args->num_kv_heads),
        .heads = (size_t) args->num_q_heads + args->num_kv_heads,
        .D = args->head_dim,
        .token_offset = args->token_offset,
        .positions = positions,
        .freq_scale = -logf(args->rope_base) / (float) (args->head_dim / 2),
        .interpolation_scale = args->interpolation_scale,
        .yarn_offset = args->yarn_offset,
        .yarn_scale = args->yarn_scale,
        .yarn_multiplier = args->yarn_multiplier,
    };
    void* scratch = NULL;
    p.scratch_stride = gptoss_cpu_thread_stride(2 * (size_t) args->head_dim);
    GPTOSS_TRY(gptoss_cpu_scratch_acquire(backend, (size_t) threads * p.scratch_stride * sizeof(float), &scratch));
    p.scratch = scratch;
    gptoss_parallel_fn fn = rope_scalar;
#if GPTOSS_CPU_X86
    switch (gptoss_cpu(backend)->isa) {
        case gptoss_cpu_isa_avx2: fn = rope_avx2; break;
        case gptoss_cpu_isa_avx512: fn = rope_avx512; break;
        default: break;
    }
#endif
    /* per token: D/2 sincos + heads * D/2 rotations; keep tiny batches on one thread */
    const size_t work = p.heads * args->head_dim + 16 * (size_t) args->head_dim;
    const size_t grain = work >= 32768 ? 1 : 32768 / work;
    gptoss_cpu_parallelize(backend, fn, &p, args->num_tokens, grain);
    gptoss_cpu_scratch_release(backend);
    return gptoss_status_success;
}

enum gptoss_status gptoss_cpu_f32_rope(gptoss_backend_t backend, const struct gptoss_f32_rope_args* args) {
    return gptoss_cpu_rope_rows(backend, args, NULL);
}
