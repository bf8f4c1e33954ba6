/* CPU embeddings: out[t][c] = f32(weight[token_ids[t]][c]) (exact widening). Token ids
 * were checked by src/kernels. Split over tokens. */
#include "common/math.h"
#include "cpu/cpu.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define GPTOSS_CPU_X86 1
#else
#define GPTOSS_CPU_X86 0
#endif

struct embeddings {
    const uint32_t* ids;
    const uint16_t* w;
    float* out;
    size_t C;
};

static void embeddings_scalar(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct embeddings* e = context;
    for (size_t t = begin; t < end; t++) {
        const uint16_t* w = e->w + (size_t) e->ids[t] * e->C;
        float* o = e->out + t * e->C;
        for (size_t c = 0; c < e->C; c++) o[c] = gptoss_bf16_to_f32(w[c]);
    }
}

#if GPTOSS_CPU_X86
__attribute__((target("avx2,fma"))) static void embeddings_avx2(void* context, uint32_t thread_index,
                                                                 size_t begin, size_t end) {
    const struct embeddings* e = context;
    for (size_t t = begin; t < end; t++) {
        const uint16_t* w = e->w + (size_t) e->ids[t] * e->C;
        float* o = e->out + t * e->C;
        size_t c = 0;
        for (; c + 8 <= e->C; c += 8) {
            const __m128i raw = _mm_loadu_si128((const __m128i*) (w + c));
            _mm256_storeu_si256((__m256i*) (o + c), _mm256_slli_epi32(_mm256_cvtepu16_epi32(raw), 16));
        }
        for (; c < e->C; c++) o[c] = gptoss_bf16_to_f32(w[c]);
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl"))) static void embeddings_avx512(void* context,
                                                                                     uint32_t thread_index,
                                                                                     size_t begin, size_t end) {
    const struct embeddings* e = context;
    for (size_t t = begin; t < end; t++) {
        const uint16_t* w = e->w + (size_t) e->ids[t] * e->C;
        float* o = e->out + t * e->C;
        size_t c = 0;
        for (; c + 16 <= e->C; c += 16) {
            const __m256i raw = _mm256_loadu_si256((const __m256i*) (w + c));
            _mm512_storeu_si512((void*) (o + c), _mm512_slli_epi32(_mm512_cvtepu16_epi32(raw), 16));
        }
        for (; c < e->C; c++) o[c] = gptoss_bf16_to_f32(w[c]);
    }
}
#endif

enum gptoss_status gptoss_cpu_bf16_f32_embeddings(gptoss_backend_t backend,
                                                  const struct gptoss_bf16_f32_embeddings_args* args) {
    struct embeddings e = {
        .ids = args->token_ids, .w = (const uint16_t*) args->weight, .out = args->output, .C = args->num_channels};
    gptoss_parallel_fn fn = embeddings_scalar;
#if GPTOSS_CPU_X86
    switch (gptoss_cpu(backend)->isa) {
        case gptoss_cpu_isa_avx2: fn = embeddings_avx2; break;
        case gptoss_cpu_isa_avx512: fn = embeddings_avx512; break;
        default: break;
    }
#endif
    /* a grain of >= 16K channels per slice so tiny batches stay on one thread */
    const size_t grain = args->num_channels >= 16384 ? 1 : 16384 / args->num_channels;
    gptoss_cpu_parallelize(backend, fn, &e, args->num_tokens, grain);
    return gptoss_status_success;
}
