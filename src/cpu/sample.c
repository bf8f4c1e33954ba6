/* CPU backend: sampling (kernels.h gptoss_f32_softmax, gptoss_f32_sample; KERNELS.md
 * 3.22-3.23 with the contract's changes: temperature DIVIDES, sum[t] is one total).
 *
 * softmax: prob[i] = expf((logit[i] - m) / temperature), two roundings before expf. The
 * vocabulary is cut into fixed chunks (independent of the thread count); each chunk's sum
 * is accumulated in double, the chunk sums are added in chunk order in double and the
 * total rounded once to f32. Items are (token, chunk) so one token uses every thread.
 *
 * sample: target u * sum and the prefix sums in double, prob in index order; the first index whose
 * inclusive prefix reaches target wins; if none does (rounding), the last index with
 * prob > 0; if every prob is 0 (or NaN), num_channels - 1. */
#include <math.h>
#include <stdlib.h>

#include "common/math.h"
#include "cpu/cpu.h"
#include "internal/error.h"

#define SOFTMAX_CHUNK 8192

struct softmax_context {
    const float* logits;
    const uint32_t* argmax;
    float* prob;
    double* partial; /* [T][chunks] */
    uint32_t V;
    size_t chunks;
    float temperature;
};

static void softmax_task(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct softmax_context* ctx = context;
    for (size_t item = begin; item < end; item++) {
        const size_t t = item / ctx->chunks, chunk = item % ctx->chunks;
        const size_t i0 = chunk * SOFTMAX_CHUNK;
        const size_t i1 = i0 + SOFTMAX_CHUNK < ctx->V ? i0 + SOFTMAX_CHUNK : ctx->V;
        const float* logits = ctx->logits + t * ctx->V;
        float* prob = ctx->prob + t * ctx->V;
        const float m = logits[ctx->argmax[t]];
        const float temperature = ctx->temperature;
        double s = 0.0;
        for (size_t i = i0; i < i1; i++) {
            const float p = expf((logits[i] - m) / temperature);
            prob[i] = p;
            s += (double) p;
        }
        ctx->partial[item] = s;
    }
}

enum gptoss_status gptoss_cpu_f32_softmax(gptoss_backend_t backend, const struct gptoss_f32_softmax_args* args) {
    const size_t chunks = ((size_t) args->num_channels + SOFTMAX_CHUNK - 1) / SOFTMAX_CHUNK;
    void* scratch = NULL;
    GPTOSS_TRY(gptoss_cpu_scratch_acquire(backend, (size_t) args->num_tokens * chunks * sizeof(double), &scratch));
    double* partial = scratch;
    struct softmax_context ctx = {
        .logits = args->logits,
        .argmax = args->argmax,
        .prob = args->prob,
        .partial = partial,
        .V = args->num_channels,
        .chunks = chunks,
        .temperature = args->temperature,
    };
    gptoss_cpu_parallelize(backend, softmax_task, &ctx, (size_t) args->num_tokens * chunks, 1);
    for (uint32_t t = 0; t < args->num_tokens; t++) {
        double s = 0.0;
        for (size_t c = 0; c < chunks; c++) s += partial[(size_t) t * chunks + c];
        args->sum[t] = (float) s;
    }
    gptoss_cpu_scratch_release(backend);
    return gptoss_status_success;
}

enum gptoss_status gptoss_cpu_f32_sample(gptoss_backend_t backend, const struct gptoss_f32_sample_args* args) {
    const uint32_t word = gptoss_squares32(args->rng_offset, args->rng_seed);
    const double u = (double) (word & 0xFFFFFFu) * 0x1.0p-24;
    const double goal = fmax(u * (double) args->sum[0], 0x1.0p-149); /* max(u * sum, 2^-149), exact in double */
    double prefix = 0.0;
    uint32_t last_positive = UINT32_MAX;
    for (uint32_t i = 0; i < args->num_channels; i++) {
        const float p = args->prob[i];
        if (p > 0.0f) last_positive = i;
        prefix += (double) p;
        if (prefix >= goal) {
            *args->prediction = i;
            return gptoss_status_success;
        }
    }
    *args->prediction = last_positive != UINT32_MAX ? last_positive : args->num_channels - 1;
    return gptoss_status_success;
}
