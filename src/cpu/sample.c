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
 * prob > 0; if every prob is 0 (or NaN), num_channels - 1.
 *
 * apply_penalties: one loop, the f32 formula of the contract.
 *
 * sample_logits: the contract's steps literally, on one thread: the first logit in draw
 * order by its key; the candidates (z > -745) gathered by index and, when top-k or top-p
 * is on, put in draw order by a stable radix sort on the key (ties stay by index); the
 * masses of the kept ones (math.h) summed in 128-bit integers; the top-p and draw
 * thresholds are exact (math.h), the first prefix that reaches each wins. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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

enum gptoss_status gptoss_cpu_f32_apply_penalties(gptoss_backend_t backend,
                                                  const struct gptoss_f32_apply_penalties_args* args) {
    const float presence = args->presence_penalty, frequency = args->frequency_penalty;
    for (uint32_t i = 0; i < args->num_channels; i++) {
        const uint32_t count = args->counts[i];
        const float logit = args->logits[i];
        args->output[i] = count != 0 ? logit - (presence + frequency * (float) count) : logit;
    }
    return gptoss_status_success;
}

/* Sorts ids[0..n) (given in increasing order) by gptoss_sample_key, stably: least
 * significant byte first, a pass skipped when every key has the same byte there. */
static void sort_by_key(uint32_t* ids, uint32_t n, const float* logits, uint32_t* tmp) {
    uint32_t *src = ids, *dst = tmp;
    for (unsigned shift = 0; shift < 32; shift += 8) {
        uint32_t count[256] = {0};
        for (uint32_t j = 0; j < n; j++) count[(gptoss_sample_key(logits[src[j]]) >> shift) & 255]++;
        if (count[(gptoss_sample_key(logits[src[0]]) >> shift) & 255] == n) continue;
        uint32_t start[256], sum = 0;
        for (int d = 0; d < 256; d++) {
            start[d] = sum;
            sum += count[d];
        }
        for (uint32_t j = 0; j < n; j++) dst[start[(gptoss_sample_key(logits[src[j]]) >> shift) & 255]++] = src[j];
        uint32_t* t = src;
        src = dst;
        dst = t;
    }
    if (src != ids) memcpy(ids, src, (size_t) n * sizeof *ids);
}

enum gptoss_status gptoss_cpu_f32_sample_logits(gptoss_backend_t backend,
                                                const struct gptoss_f32_sample_logits_args* args) {
    const uint32_t V = args->num_channels;
    const float* logits = args->logits;
    /* step 1: the first logit in draw order (lowest key, then lowest index) */
    uint32_t first = 0, first_key = gptoss_sample_key(logits[0]);
    for (uint32_t i = 1; i < V; i++) {
        const uint32_t key = gptoss_sample_key(logits[i]);
        if (key < first_key) {
            first_key = key;
            first = i;
        }
    }
    if (first_key == UINT32_MAX) { /* every logit NaN */
        *args->prediction = 0;
        return gptoss_status_success;
    }
    const float m_f32 = logits[first];
    if (args->temperature == 0.0f || !isfinite(m_f32)) {
        *args->prediction = first;
        return gptoss_status_success;
    }
    const double m = (double) m_f32, inv_t = 1.0 / (double) args->temperature;
    const uint32_t u24 = gptoss_squares32(args->rng_offset, args->rng_seed) & 0xFFFFFFu;

    /* the candidates by index (then in draw order), their masses: 16-byte aligned first */
    void* scratch = NULL;
    GPTOSS_TRY(gptoss_cpu_scratch_acquire(backend, (size_t) V * (sizeof(gptoss_u128) + 2 * sizeof(uint32_t)),
                                          &scratch));
    gptoss_u128* mass = scratch;
    uint32_t* ids = (uint32_t*) (mass + V);
    uint32_t* tmp = ids + V;
    uint32_t n = 0;
    for (uint32_t i = 0; i < V; i++) {
        if (gptoss_sample_z(logits[i], m, inv_t) > GPTOSS_SAMPLE_NEVER) ids[n++] = i;
    }
    if (args->top_k != 0 || args->top_p < 1.0f) sort_by_key(ids, n, logits, tmp);
    if (args->top_k != 0 && args->top_k < n) n = args->top_k;
    gptoss_u128 total = 0;
    for (uint32_t j = 0; j < n; j++) {
        mass[j] = gptoss_sample_mass(gptoss_sample_z(logits[ids[j]], m, inv_t));
        total += mass[j];
    }
    uint32_t keep = n;
    if (args->top_p < 1.0f) { /* K: the first prefix that reaches top_p C_n */
        const gptoss_u128 threshold = gptoss_sample_top_p_threshold(total, args->top_p);
        gptoss_u128 prefix = 0;
        for (uint32_t j = 0; j < n; j++) {
            prefix += mass[j];
            if (prefix >= threshold) {
                keep = j + 1;
                total = prefix;
                break;
            }
        }
    }
    const gptoss_u128 threshold = gptoss_sample_draw_threshold(total, u24);
    gptoss_u128 prefix = 0;
    uint32_t pick = ids[keep - 1];
    for (uint32_t j = 0; j < keep; j++) {
        prefix += mass[j];
        if (prefix >= threshold) {
            pick = ids[j];
            break;
        }
    }
    gptoss_cpu_scratch_release(backend);
    *args->prediction = pick;
    return gptoss_status_success;
}
