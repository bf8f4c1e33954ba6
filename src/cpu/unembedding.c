/* CPU unembedding: logits through the shared bf16 GEMM core (matmul.c, no bias), then a
 * per-token argmax pass in gptoss_argmax_key order (smaller key = larger value, +NaN above
 * +inf, -NaN below -inf), lowest index on ties. The argmax pass reads T x num_rows floats
 * (0.8 MB per token for the 201088-row vocabulary): small next to the weight stream.
 * For a single token the argmax pass is split over row ranges and the per-range winners
 * combined (min of (key, index) is order-independent, so the result is the same for any
 * thread count). */
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

#define ARGMAX_CHUNK 16384

struct argmax {
    const float* logits;
    size_t R, T;
    uint64_t* best; /* per (token, chunk): key << 32 | index */
    size_t chunks;  /* chunks per token */
    enum gptoss_cpu_isa isa;
};

static uint64_t argmax_scalar(const float* v, size_t begin, size_t end) {
    uint32_t best_key = UINT32_MAX, best_index = (uint32_t) begin;
    for (size_t i = begin; i < end; i++) {
        const uint32_t key = gptoss_argmax_key(v[i]);
        if (key < best_key) {
            best_key = key;
            best_index = (uint32_t) i;
        }
    }
    return (uint64_t) best_key << 32 | best_index;
}

#if GPTOSS_CPU_X86
/* Minimum key over [begin, end) with vectors (keys compared as unsigned via the sign-flip
 * trick), then the first index holding it. */
__attribute__((target("avx2,fma"))) static uint64_t argmax_avx2(const float* v, size_t begin, size_t end) {
    const __m256i flip = _mm256_set1_epi32(0x7FFFFFFF), bias = _mm256_set1_epi32((int) 0x80000000u);
    __m256i m = _mm256_set1_epi32(0x7FFFFFFF); /* biased UINT32_MAX */
    size_t i = begin;
    for (; i + 8 <= end; i += 8) {
        const __m256i u = _mm256_loadu_si256((const __m256i*) (v + i));
        /* key = u ^ 0x7FFFFFFF where the sign bit is clear, else u */
        const __m256i neg = _mm256_srai_epi32(u, 31);
        const __m256i key = _mm256_xor_si256(u, _mm256_andnot_si256(neg, flip));
        m = _mm256_min_epi32(m, _mm256_xor_si256(key, bias));
    }
    int32_t lanes[8];
    _mm256_storeu_si256((__m256i*) lanes, m);
    uint32_t best_key = UINT32_MAX;
    for (int l = 0; l < 8; l++) {
        const uint32_t k = (uint32_t) lanes[l] ^ 0x80000000u;
        if (k < best_key) best_key = k;
    }
    for (; i < end; i++) {
        const uint32_t k = gptoss_argmax_key(v[i]);
        if (k < best_key) best_key = k;
    }
    for (size_t j = begin; j < end; j++) {
        if (gptoss_argmax_key(v[j]) == best_key) return (uint64_t) best_key << 32 | (uint32_t) j;
    }
    return (uint64_t) best_key << 32 | (uint32_t) begin; /* not reached */
}
#endif

static void argmax_chunks(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct argmax* a = context;
    for (size_t item = begin; item < end; item++) {
        const size_t t = item / a->chunks, c = item % a->chunks;
        const size_t r0 = c * ARGMAX_CHUNK, r1 = r0 + ARGMAX_CHUNK < a->R ? r0 + ARGMAX_CHUNK : a->R;
        const float* v = a->logits + t * a->R;
#if GPTOSS_CPU_X86
        if (a->isa != gptoss_cpu_isa_scalar) {
            a->best[item] = argmax_avx2(v, r0, r1);
            continue;
        }
#endif
        a->best[item] = argmax_scalar(v, r0, r1);
    }
}

enum gptoss_status gptoss_cpu_f32_bf16w_unembedding(gptoss_backend_t backend,
                                                    const struct gptoss_f32_bf16w_unembedding_args* args) {
    const struct gptoss_f32_bf16w_matmul_args matmul = {
        args->input, args->weight, NULL, args->logits, args->num_tokens, args->num_cols, args->num_rows,
    };
    enum gptoss_status status = gptoss_cpu_f32_bf16w_matmul(backend, &matmul);
    if (status != gptoss_status_success) return status;
    struct argmax a = {
        .logits = args->logits,
        .R = args->num_rows,
        .T = args->num_tokens,
        .chunks = ((size_t) args->num_rows + ARGMAX_CHUNK - 1) / ARGMAX_CHUNK,
        .isa = gptoss_cpu(backend)->isa,
    };
    const size_t items = a.T * a.chunks;
    void* scratch = NULL;
    GPTOSS_TRY(gptoss_cpu_scratch_acquire(backend, items * sizeof(uint64_t), &scratch));
    a.best = scratch;
    gptoss_cpu_parallelize(backend, argmax_chunks, &a, items, 1);
    for (size_t t = 0; t < a.T; t++) {
        uint64_t best = UINT64_MAX;
        for (size_t c = 0; c < a.chunks; c++) {
            if (a.best[t * a.chunks + c] < best) best = a.best[t * a.chunks + c];
        }
        args->argmax[t] = (uint32_t) best;
    }
    gptoss_cpu_scratch_release(backend);
    return gptoss_status_success;
}
