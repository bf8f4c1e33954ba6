/* CPU backend: expert routing metadata, scatter, gather-and-accumulate, accumulate
 * (kernels.h, KERNELS.md 3.14, 3.15, 3.20, 3.21).
 *
 * Ranks within an expert are assigned in increasing pair order (deterministic). The
 * accumulations are fma chains in slot order 0..k-1 starting from the residual; the AVX2
 * variant computes the same fmas 8 channels at a time, so both variants agree bit for bit. */
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "cpu/cpu.h"

enum gptoss_status gptoss_cpu_expert_routing_metadata(gptoss_backend_t backend,
                                                      const struct gptoss_expert_routing_metadata_args* args) {
    /* expert_offsets[e + 1] counts expert e's pairs so far (= the rank of the next one),
     * then becomes the exclusive prefix sum in place. */
    const uint32_t* ids = args->expert_ids;
    uint32_t* offsets = args->expert_offsets;
    uint32_t* intra = args->intra_expert_offsets;
    const uint32_t num_pairs = args->num_pairs, num_experts = args->num_experts;
    memset(offsets, 0, ((size_t) num_experts + 1) * sizeof *offsets);
    for (uint32_t p = 0; p < num_pairs; p++) intra[p] = offsets[ids[p] + 1]++;
    for (uint32_t e = 0; e < num_experts; e++) offsets[e + 1] += offsets[e];
    return gptoss_status_success;
}

/* ---------------------------------------------------------------------------------- */

struct scatter_context {
    const float* input;
    const uint32_t* expert_ids;
    const uint32_t* expert_offsets;
    const uint32_t* intra;
    float* output;
    uint32_t C, k;
};

static void scatter_task(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct scatter_context* ctx = context;
    const size_t C = ctx->C;
    for (size_t t = begin; t < end; t++) {
        for (uint32_t j = 0; j < ctx->k; j++) {
            const size_t p = t * ctx->k + j;
            const size_t row = (size_t) ctx->expert_offsets[ctx->expert_ids[p]] + ctx->intra[p];
            memcpy(ctx->output + row * C, ctx->input + t * C, C * sizeof(float));
        }
    }
}

enum gptoss_status gptoss_cpu_f32_scatter(gptoss_backend_t backend, const struct gptoss_f32_scatter_args* args) {
    struct scatter_context ctx = {args->input,  args->expert_ids,   args->expert_offsets,    args->intra_expert_offsets,
                                  args->output, args->num_channels, args->num_active_experts};
    const size_t grain = 1 + 16384 / ((size_t) args->num_channels * args->num_active_experts);
    gptoss_cpu_parallelize(backend, scatter_task, &ctx, args->num_tokens, grain);
    return gptoss_status_success;
}

/* ---------------------------------------------------------------------------------- */

/* residual[c] = fma(y_{k-1}[c], s_{k-1}, ... fma(y_0[c], s_0, residual[c])) for c in [c0, c1). */
static void fma_chain_scalar(float* residual, const float* const* y, const float* s, uint32_t k, size_t c0,
                             size_t c1) {
    for (size_t c = c0; c < c1; c++) {
        float r = residual[c];
        for (uint32_t j = 0; j < k; j++) r = fmaf(y[j][c], s[j], r);
        residual[c] = r;
    }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static void fma_chain_avx2(float* residual, const float* const* y,
                                                                const float* s, uint32_t k, size_t c0,
                                                                size_t c1) {
    size_t c = c0;
    for (; c + 8 <= c1; c += 8) {
        __m256 r = _mm256_loadu_ps(residual + c);
        for (uint32_t j = 0; j < k; j++) r = _mm256_fmadd_ps(_mm256_loadu_ps(y[j] + c), _mm256_set1_ps(s[j]), r);
        _mm256_storeu_ps(residual + c, r);
    }
    fma_chain_scalar(residual, y, s, k, c, c1);
}
#endif

/* Items are (token, channel chunk) so that decode (one token) still uses every thread. */
#define ACC_CHUNK 1024
#define ACC_MAX_K 64

struct accumulate_context {
    const float* input;
    const uint32_t* expert_ids;     /* NULL: decode layout input[j][t][c] */
    const float* expert_scores;
    const uint32_t* expert_offsets;
    const uint32_t* intra;
    float* residual;
    uint32_t C, T, k;
    size_t chunks_per_token;
    int avx2;
};

static void accumulate_task(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct accumulate_context* ctx = context;
    const size_t C = ctx->C;
    const float* y[ACC_MAX_K];
    for (size_t item = begin; item < end; item++) {
        const size_t t = item / ctx->chunks_per_token, chunk = item % ctx->chunks_per_token;
        const size_t c0 = chunk * ACC_CHUNK, c1 = c0 + ACC_CHUNK < C ? c0 + ACC_CHUNK : C;
        float* residual = ctx->residual + t * C;
        /* slots in groups of ACC_MAX_K: the chain continues through residual unchanged */
        for (uint32_t j0 = 0; j0 < ctx->k; j0 += ACC_MAX_K) {
            const uint32_t n = ctx->k - j0 < ACC_MAX_K ? ctx->k - j0 : ACC_MAX_K;
            for (uint32_t j = 0; j < n; j++) {
                const size_t p = t * ctx->k + j0 + j;
                size_t row;
                if (ctx->expert_ids != NULL) {
                    row = (size_t) ctx->expert_offsets[ctx->expert_ids[p]] + ctx->intra[p];
                } else {
                    row = (size_t) (j0 + j) * ctx->T + t;
                }
                y[j] = ctx->input + row * C;
            }
            const float* s = ctx->expert_scores + t * ctx->k + j0;
#if defined(__x86_64__)
            if (ctx->avx2) {
                fma_chain_avx2(residual, y, s, n, c0, c1);
                continue;
            }
#endif
            fma_chain_scalar(residual, y, s, n, c0, c1);
        }
    }
}

static void run_accumulate(gptoss_backend_t backend, struct accumulate_context* ctx) {
    ctx->chunks_per_token = ((size_t) ctx->C + ACC_CHUNK - 1) / ACC_CHUNK;
    ctx->avx2 = gptoss_cpu(backend)->isa >= gptoss_cpu_isa_avx2;
    gptoss_cpu_parallelize(backend, accumulate_task, ctx, (size_t) ctx->T * ctx->chunks_per_token, 1);
}

enum gptoss_status gptoss_cpu_f32_gather_and_accumulate(gptoss_backend_t backend,
                                                        const struct gptoss_f32_gather_and_accumulate_args* args) {
    struct accumulate_context ctx = {
        .input = args->input,
        .expert_ids = args->expert_ids,
        .expert_scores = args->expert_scores,
        .expert_offsets = args->expert_offsets,
        .intra = args->intra_expert_offsets,
        .residual = args->residual,
        .C = args->num_channels,
        .T = args->num_tokens,
        .k = args->num_active_experts,
    };
    run_accumulate(backend, &ctx);
    return gptoss_status_success;
}

enum gptoss_status gptoss_cpu_f32_accumulate(gptoss_backend_t backend, const struct gptoss_f32_accumulate_args* args) {
    struct accumulate_context ctx = {
        .input = args->input,
        .expert_scores = args->expert_scores,
        .residual = args->residual,
        .C = args->num_channels,
        .T = args->num_tokens,
        .k = args->num_active_experts,
    };
    run_accumulate(backend, &ctx);
    return gptoss_status_success;
}
