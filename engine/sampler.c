/* Samplers: temperature, top-k, top-p (nucleus), presence/frequency penalties and a seeded
 * Squares32 draw. Plain temperature sampling runs on the backend (f32_softmax + f32_sample);
 * anything else copies the logits to the host (engine/context.c) and uses
 * gptoss_sampler_pick_host. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "internal/error.h"

enum gptoss_status gptoss_sampler_create(gptoss_sampler_t* sampler_out) {
    gptoss_clear_error();
    if (sampler_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "sampler_out is NULL");
    struct gptoss_sampler* s = calloc(1, sizeof(*s));
    if (s == NULL) return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate the sampler");
    atomic_init(&s->ref_count, 1);
    s->temperature = 0.0f;
    s->top_p = 1.0f;
    s->top_k = 0;
    s->presence_penalty = 0.0f;
    s->frequency_penalty = 0.0f;
    s->seed = 0;
    *sampler_out = s;
    return gptoss_status_success;
}

enum gptoss_status gptoss_sampler_set_temperature(gptoss_sampler_t sampler, float temperature) {
    gptoss_clear_error();
    if (sampler == NULL) return gptoss_fail(gptoss_status_invalid_argument, "sampler is NULL");
    if (!isfinite(temperature) || temperature < 0.0f) {
        return gptoss_fail(gptoss_status_invalid_argument, "temperature %g is not finite and >= 0", (double) temperature);
    }
    sampler->temperature = temperature;
    return gptoss_status_success;
}

enum gptoss_status gptoss_sampler_set_top_k(gptoss_sampler_t sampler, uint32_t top_k) {
    gptoss_clear_error();
    if (sampler == NULL) return gptoss_fail(gptoss_status_invalid_argument, "sampler is NULL");
    sampler->top_k = top_k;
    return gptoss_status_success;
}

enum gptoss_status gptoss_sampler_set_top_p(gptoss_sampler_t sampler, float top_p) {
    gptoss_clear_error();
    if (sampler == NULL) return gptoss_fail(gptoss_status_invalid_argument, "sampler is NULL");
    if (!(top_p > 0.0f && top_p <= 1.0f)) {
        return gptoss_fail(gptoss_status_invalid_argument, "top_p %g is not in (0, 1]", (double) top_p);
    }
    sampler->top_p = top_p;
    return gptoss_status_success;
}

enum gptoss_status gptoss_sampler_set_presence_penalty(gptoss_sampler_t sampler, float presence_penalty) {
    gptoss_clear_error();
    if (sampler == NULL) return gptoss_fail(gptoss_status_invalid_argument, "sampler is NULL");
    if (!isfinite(presence_penalty)) {
        return gptoss_fail(gptoss_status_invalid_argument, "presence_penalty %g is not finite", (double) presence_penalty);
    }
    sampler->presence_penalty = presence_penalty;
    return gptoss_status_success;
}

enum gptoss_status gptoss_sampler_set_frequency_penalty(gptoss_sampler_t sampler, float frequency_penalty) {
    gptoss_clear_error();
    if (sampler == NULL) return gptoss_fail(gptoss_status_invalid_argument, "sampler is NULL");
    if (!isfinite(frequency_penalty)) {
        return gptoss_fail(gptoss_status_invalid_argument, "frequency_penalty %g is not finite",
                           (double) frequency_penalty);
    }
    sampler->frequency_penalty = frequency_penalty;
    return gptoss_status_success;
}

enum gptoss_status gptoss_sampler_set_seed(gptoss_sampler_t sampler, uint64_t seed) {
    gptoss_clear_error();
    if (sampler == NULL) return gptoss_fail(gptoss_status_invalid_argument, "sampler is NULL");
    sampler->seed = seed;
    return gptoss_status_success;
}

enum gptoss_status gptoss_sampler_retain(gptoss_sampler_t sampler) {
    gptoss_clear_error();
    if (sampler == NULL) return gptoss_fail(gptoss_status_invalid_argument, "sampler is NULL");
    atomic_fetch_add_explicit(&sampler->ref_count, 1, memory_order_relaxed);
    return gptoss_status_success;
}

enum gptoss_status gptoss_sampler_release(gptoss_sampler_t sampler) {
    gptoss_clear_error();
    if (sampler == NULL) return gptoss_status_success;
    if (atomic_fetch_sub_explicit(&sampler->ref_count, 1, memory_order_acq_rel) == 1) free(sampler);
    return gptoss_status_success;
}

enum gptoss_sampler_mode gptoss_sampler_get_mode(const struct gptoss_sampler* s) {
    if (s == NULL) return gptoss_sampler_mode_greedy;
    const int penalties = s->presence_penalty != 0.0f || s->frequency_penalty != 0.0f;
    if (s->temperature == 0.0f) return penalties ? gptoss_sampler_mode_host : gptoss_sampler_mode_greedy;
    if (penalties || s->top_k != 0 || s->top_p < 1.0f) return gptoss_sampler_mode_host;
    return gptoss_sampler_mode_device;
}

/* ---- host path ---------------------------------------------------------------------- */

int gptoss_sampler_scratch_init(struct gptoss_sampler_scratch* scratch, uint32_t vocabulary_size) {
    memset(scratch, 0, sizeof(*scratch));
    scratch->vocabulary_size = vocabulary_size;
    scratch->index = malloc((size_t) vocabulary_size * sizeof(uint32_t));
    scratch->prob = malloc((size_t) vocabulary_size * sizeof(double));
    scratch->count = calloc(vocabulary_size, sizeof(uint32_t));
    if (scratch->index == NULL || scratch->prob == NULL || scratch->count == NULL) {
        gptoss_sampler_scratch_free(scratch);
        return -1;
    }
    return 0;
}

void gptoss_sampler_scratch_free(struct gptoss_sampler_scratch* scratch) {
    free(scratch->index);
    free(scratch->prob);
    free(scratch->count);
    memset(scratch, 0, sizeof(*scratch));
}

/* Larger logit first; NaN below everything; ties by lower id. */
static int before(float a, uint32_t ia, float b, uint32_t ib) {
    const int na = a != a, nb = b != b;
    if (na != nb) return nb;
    if (!na && a != b) return a > b;
    return ia < ib;
}

/* Min-heap on `before` (the root is the worst of the kept candidates). */
static void heap_sift_down(uint32_t* heap, uint32_t n, uint32_t i, const float* v) {
    for (;;) {
        uint32_t worst = i;
        const uint32_t l = 2 * i + 1, r = l + 1;
        if (l < n && before(v[heap[worst]], heap[worst], v[heap[l]], heap[l])) worst = l;
        if (r < n && before(v[heap[worst]], heap[worst], v[heap[r]], heap[r])) worst = r;
        if (worst == i) return;
        const uint32_t t = heap[i];
        heap[i] = heap[worst];
        heap[worst] = t;
        i = worst;
    }
}

/* qsort has no context argument */
static _Thread_local const float* tl_sort_values;

static int cmp_desc(const void* pa, const void* pb) {
    const uint32_t a = *(const uint32_t*) pa, b = *(const uint32_t*) pb;
    const float* v = tl_sort_values;
    if (a == b) return 0;
    return before(v[a], a, v[b], b) ? -1 : 1;
}

uint32_t gptoss_sampler_pick_host(const struct gptoss_sampler* s, float* logits, const uint32_t* tokens,
                                  size_t num_tokens, uint64_t rng_offset, struct gptoss_sampler_scratch* scratch) {
    const uint32_t V = scratch->vocabulary_size;
    uint32_t* idx = scratch->index;
    double* prob = scratch->prob;

    /* penalties (OpenAI style): logit -= presence * [count > 0] + frequency * count */
    if (s->presence_penalty != 0.0f || s->frequency_penalty != 0.0f) {
        uint32_t* count = scratch->count;
        for (size_t i = 0; i < num_tokens; i++) {
            if (tokens[i] < V) count[tokens[i]]++;
        }
        for (size_t i = 0; i < num_tokens; i++) {
            const uint32_t t = tokens[i];
            if (t < V && count[t] != 0) {
                logits[t] -= s->presence_penalty + s->frequency_penalty * (float) count[t];
                count[t] = 0; /* applied once; leaves the array zeroed */
            }
        }
    }

    if (s->temperature == 0.0f) {
        uint32_t best = 0;
        for (uint32_t i = 1; i < V; i++) {
            if (before(logits[i], i, logits[best], best)) best = i;
        }
        return best;
    }

    /* candidates: top-k (heap select), else everything */
    uint32_t n;
    if (s->top_k != 0 && s->top_k < V) {
        n = s->top_k;
        for (uint32_t i = 0; i < n; i++) idx[i] = i;
        for (uint32_t i = n / 2; i-- > 0;) heap_sift_down(idx, n, i, logits);
        for (uint32_t i = n; i < V; i++) {
            if (before(logits[i], i, logits[idx[0]], idx[0])) {
                idx[0] = i;
                heap_sift_down(idx, n, 0, logits);
            }
        }
    } else {
        n = V;
        for (uint32_t i = 0; i < V; i++) idx[i] = i;
    }

    /* max of the candidates */
    uint32_t best = idx[0];
    for (uint32_t i = 1; i < n; i++) {
        if (before(logits[idx[i]], idx[i], logits[best], best)) best = idx[i];
    }
    const double m = (double) logits[best];
    if (!isfinite(m)) return best; /* +inf or NaN dominates: nothing to draw from */
    const double inv_t = 1.0 / (double) s->temperature;

    /* drop candidates whose probability is 0 in double (exp underflow) or non-finite */
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; i++) {
        const double z = ((double) logits[idx[i]] - m) * inv_t;
        if (z > -745.0 && z == z) idx[kept++] = idx[i];
    }
    n = kept;

    if (s->top_p < 1.0f || s->top_k != 0) {
        tl_sort_values = logits;
        qsort(idx, n, sizeof(uint32_t), cmp_desc);
    }
    double total = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        prob[i] = exp(((double) logits[idx[i]] - m) * inv_t);
        total += prob[i];
    }
    if (s->top_p < 1.0f) {
        /* smallest prefix of the sorted candidates whose mass reaches top_p */
        const double target = (double) s->top_p * total;
        double cum = 0.0;
        uint32_t keep = n;
        for (uint32_t i = 0; i < n; i++) {
            cum += prob[i];
            if (cum >= target) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
        total = 0.0;
        for (uint32_t i = 0; i < n; i++) total += prob[i];
    }

    const uint32_t word = gptoss_engine_squares32(rng_offset, s->seed + GPTOSS_SAMPLER_SEED_OFFSET);
    const double u = (double) (word & 0xFFFFFFu) * 0x1.0p-24;
    const double target = u * total;
    double cum = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        cum += prob[i];
        if (cum > target) return idx[i];
    }
    return idx[n - 1];
}
