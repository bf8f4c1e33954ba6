/* Samplers: temperature, top-k, top-p (nucleus), presence/frequency penalties, a logit bias
 * and a seeded Squares32 draw, in one of two ways (gptoss_context_params.sampling,
 * engine/context.c; a sampler with a logit bias or a mask of allowed tokens always takes the
 * first):
 *  - the host sampler, the CPU backends' way: plain temperature sampling runs on the
 *    backend (f32_softmax + f32_sample); anything else copies the logits to the host and
 *    uses gptoss_sampler_pick_host (below "host path": what a draw is, and how it is made
 *    fast without changing a single token);
 *  - the kernels, the CUDA backend's way: f32_apply_penalties (counts of the context's
 *    tokens kept on the device) and f32_sample_logits (kernels.h), the logits never leave
 *    the device. Their steps are the host path's steps 1-6 below, except that the masses
 *    exp(z) are rounded down to multiples of 2^-94 and summed exactly (128-bit integers:
 *    any order, so a parallel device sum gives the same token every time), and top_p C_n and
 *    u C_K are exact. Where the host path's double sums (each prefix within about n 2^-53
 *    of the exact one, n candidates) or exp's last bit (libm here, CUDA's exp there) put a
 *    boundary on the other side of top_p C_n or u C_K, the two give different tokens; a
 *    candidate with exp(z) < 2^-94 is never drawn by the kernels (the host path draws it
 *    with probability below 2^-94 / C_K). Elsewhere the token is the same. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gptoss/error.h>

#include "engine_internal.h"


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

struct bias_entry {
    uint32_t id;
    float value;
};

static int compare_bias(const void* a, const void* b) {
    const uint32_t x = ((const struct bias_entry*) a)->id, y = ((const struct bias_entry*) b)->id;
    return (x > y) - (x < y);
}

enum gptoss_status gptoss_sampler_set_logit_bias(gptoss_sampler_t sampler, size_t num, const uint32_t* token_ids,
                                                 const float* biases) {
    gptoss_clear_error();
    if (sampler == NULL) return gptoss_fail(gptoss_status_invalid_argument, "sampler is NULL");
    if (num > GPTOSS_SAMPLER_MAX_LOGIT_BIAS) {
        return gptoss_fail(gptoss_status_invalid_argument, "logit bias of %zu tokens: at most %u", num,
                           GPTOSS_SAMPLER_MAX_LOGIT_BIAS);
    }
    if (num > 0 && (token_ids == NULL || biases == NULL)) {
        return gptoss_fail(gptoss_status_invalid_argument, "token_ids or biases is NULL (num %zu)", num);
    }
    uint32_t* ids = NULL;
    float* values = NULL;
    struct bias_entry* e = NULL;
    enum gptoss_status st = gptoss_status_success;
    if (num > 0) {
        e = malloc(num * sizeof(*e));
        ids = malloc(num * sizeof(*ids));
        values = malloc(num * sizeof(*values));
        if (e == NULL || ids == NULL || values == NULL) {
            st = gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate a logit bias of %zu tokens", num);
            goto done;
        }
        for (size_t i = 0; i < num; i++) {
            if (!isfinite(biases[i])) {
                st = gptoss_fail(gptoss_status_invalid_argument, "bias %zu (token id %u) is %g, not finite", i,
                                 token_ids[i], (double) biases[i]);
                goto done;
            }
            e[i] = (struct bias_entry){token_ids[i], biases[i]};
        }
        qsort(e, num, sizeof(*e), compare_bias);
        for (size_t i = 0; i < num; i++) {
            if (i > 0 && e[i].id == e[i - 1].id) {
                st = gptoss_fail(gptoss_status_invalid_argument, "token id %u has two biases", e[i].id);
                goto done;
            }
            ids[i] = e[i].id;
            values[i] = e[i].value;
        }
    }
    /* replaced only now: a refused bias leaves the earlier one */
    free(sampler->bias_ids);
    free(sampler->bias_values);
    sampler->bias_ids = ids;
    sampler->bias_values = values;
    sampler->num_bias = num;
    ids = NULL;
    values = NULL;
done:
    free(e);
    free(ids);
    free(values);
    return st;
}

enum gptoss_status gptoss_sampler_set_allowed_tokens(gptoss_sampler_t sampler, size_t num_words,
                                                     const uint32_t* words) {
    gptoss_clear_error();
    if (sampler == NULL) return gptoss_fail(gptoss_status_invalid_argument, "sampler is NULL");
    if (num_words == 0) {
        free(sampler->allow);
        sampler->allow = NULL;
        sampler->allow_words = 0;
        return gptoss_status_success;
    }
    if (words == NULL) return gptoss_fail(gptoss_status_invalid_argument, "words is NULL (num_words %zu)", num_words);
    if (num_words > (size_t) UINT32_MAX / 32 + 1) {
        return gptoss_fail(gptoss_status_invalid_argument, "num_words %zu: token ids are 32-bit", num_words);
    }
    uint32_t any = 0;
    for (size_t i = 0; i < num_words; i++) any |= words[i];
    if (any == 0) return gptoss_fail(gptoss_status_invalid_argument, "the mask of %zu words allows no token", num_words);
    uint32_t* allow = sampler->allow;
    if (num_words != sampler->allow_words) {
        allow = malloc(num_words * sizeof(uint32_t));
        if (allow == NULL) {
            return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate a mask of %zu words", num_words);
        }
        free(sampler->allow);
    }
    memcpy(allow, words, num_words * sizeof(uint32_t));
    sampler->allow = allow;
    sampler->allow_words = num_words;
    return gptoss_status_success;
}

enum gptoss_status gptoss_sampler_check_vocabulary(const struct gptoss_sampler* s, uint32_t vocabulary_size) {
    if (s != NULL && s->num_bias > 0 && s->bias_ids[s->num_bias - 1] >= vocabulary_size) {
        return gptoss_fail(gptoss_status_invalid_argument,
                           "the sampler's logit bias names token id %u; the vocabulary has %u tokens",
                           s->bias_ids[s->num_bias - 1], vocabulary_size);
    }
    if (s != NULL && s->allow != NULL) {
        /* some allowed id below the vocabulary size */
        const size_t full = vocabulary_size / 32, words = s->allow_words;
        uint32_t any = 0;
        for (size_t i = 0; i < full && i < words; i++) any |= s->allow[i];
        if (full < words && vocabulary_size % 32 != 0) any |= s->allow[full] & ((1u << (vocabulary_size % 32)) - 1u);
        if (any == 0) {
            return gptoss_fail(gptoss_status_invalid_argument,
                               "the sampler's mask allows no token below the vocabulary size %u", vocabulary_size);
        }
    }
    return gptoss_status_success;
}

enum gptoss_status gptoss_sampler_retain(gptoss_sampler_t sampler) {
    gptoss_clear_error();
    if (sampler == NULL) return gptoss_fail(gptoss_status_invalid_argument, "sampler is NULL");
    atomic_fetch_add_explicit(&sampler->ref_count, 1, memory_order_relaxed);
    return gptoss_status_success;
}

enum gptoss_status gptoss_sampler_release(gptoss_sampler_t sampler) {
    if (sampler == NULL) return gptoss_status_success;
    if (atomic_fetch_sub_explicit(&sampler->ref_count, 1, memory_order_acq_rel) == 1) {
        free(sampler->bias_ids);
        free(sampler->bias_values);
        free(sampler->allow);
        free(sampler);
    }
    return gptoss_status_success;
}

int gptoss_sampler_has_penalties(const struct gptoss_sampler* s) {
    return s != NULL && (s->presence_penalty != 0.0f || s->frequency_penalty != 0.0f);
}

enum gptoss_sampler_mode gptoss_sampler_get_mode(const struct gptoss_sampler* s, int sampling) {
    const int penalties = gptoss_sampler_has_penalties(s);
    if (s == NULL || (s->temperature == 0.0f && !penalties && s->num_bias == 0 && s->allow == NULL)) {
        return gptoss_sampler_mode_greedy;
    }
    if (s->num_bias > 0 || s->allow != NULL) return gptoss_sampler_mode_host; /* the kernels take neither */
    if (sampling == gptoss_sampling_kernels) return gptoss_sampler_mode_kernels;
    if (penalties || s->temperature == 0.0f || s->top_k != 0 || s->top_p < 1.0f) return gptoss_sampler_mode_host;
    return gptoss_sampler_mode_softmax;
}

/* ---- host path ----------------------------------------------------------------------
 *
 * What a draw is (the definition the result equals, token for token):
 *  1. penalties: logit[t] -= presence + frequency * count(t) for each id t in the context;
 *     then the logit bias: logit[t] += bias(t) for each biased id t; then the mask of
 *     allowed tokens: logit[t] = NaN for each id t it does not allow (never drawn: below
 *     everything in step 2, never a candidate in step 3);
 *  2. the argmax: larger logit first, NaN below everything, ties by lower id. Temperature 0
 *     returns it; so does a maximum m that is not finite (+inf, or only -inf and NaN);
 *  3. candidates: the ids with z = ((double) logit - m) * (1 / (double) T) > -745 (exp(z) > 0
 *     in double; NaN is out), in draw order: by logit descending, ties by lower id, when
 *     top-k or top-p is on, else by id; top-k keeps the first k (z is monotone in the logit:
 *     the candidates are a prefix of the sorted ids, so this is "the k best, then z > -745");
 *  4. p_i = exp(z_i) (libm) and C_k = (((p_1 + p_2) + p_3) + ... + p_k) in double;
 *  5. top-p keeps the first K candidates, K = min { k : C_k >= top_p * C_n };
 *  6. u = (squares32(rng_offset, seed + GPTOSS_SAMPLER_SEED_OFFSET) & 0xFFFFFF) * 2^-24; the
 *     token is candidate number min { i : C_i > u * C_K }.
 * pick_exact does steps 4-6 literally. With top-p at full vocabulary step 3 would sort
 * 201,088 ids and step 4 call exp 201,088 times (tens of ms per draw: docs/RESULTS.md), so:
 *
 *  - top-k <= TOP_K_DIRECT: the k best by a heap of integer (key, id) ranks (blocks of ids
 *    whose best key cannot enter are skipped), then pick_exact on them.
 *  - Otherwise buckets of z: bucket b < B (B = GPTOSS_SAMPLER_BUCKETS) holds z in
 *    (-(b + 1) w, -b w], w a power of two <= 1/64 with B w above the span of z (else 1/64);
 *    z <= -B w goes to the far bucket B. z is monotone in the logit, so the buckets follow
 *    the draw order and each holds consecutive positions; a bucket is sorted (ids gathered in
 *    increasing order, a stable radix sort on the logit's bits) only when a boundary (the k-th,
 *    the K-th or the drawn candidate) falls in it. By id (top-k and top-p off) the prefix
 *    masses are summed block by block instead.
 *  - Masses without an exp per id: d = z + b w is exact (Sterbenz) and in (-w, 0], so
 *    exp(z) = exp(-b w) exp(d), exp(d) by its degree-6 Taylor polynomial (truncation < 5e-17;
 *    rounding: 1.6e-16 relative at most over 2e7 points against expl), exp(-b w) by libm once
 *    per bucket.
 *  - Certified decisions: Q, a prefix sum of these masses in any order, and the draw's C of the
 *    same prefix satisfy |C - Q| <= R Q with R = 4 (n + B + 64) 2^-53 + 2^-40 (n candidates:
 *    the recursive-summation bound, about n 2^-53, of each sum, with margin; 2^-40 covers the
 *    error per id: polynomial, libm's exp within 8 ulp (glibc: < 1), products); a far id adds
 *    0 to 2^-92 > e^-64. K is taken only when hi(Q_{K-1}) < lo(top_p C_n) and lo(Q_K) >=
 *    hi(top_p C_n), the drawn I only when hi(Q_{I-1}) <= lo(u C_K) and lo(Q_I) > hi(u C_K)
 *    (the rounded products: 2^-50 more); C is nondecreasing, so the definition's K and I are
 *    these. Otherwise (an exact tie at a boundary, as with equal logits, a boundary within
 *    ~1e-10 relative, or one among the far ids) the exact path puts every candidate in draw
 *    order and runs pick_exact. */

#define NUM_BUCKETS GPTOSS_SAMPLER_BUCKETS
#define FAR_SPAN 64.0           /* B w at most: z <= -64 is far */
#define FAR_MASS 0x1p-92        /* > exp(-64) = 1.6e-28: the most a far id weighs */
#define NO_ID UINT32_MAX
#define TOP_K_DIRECT GPTOSS_SAMPLER_TOP_K_DIRECT /* the k best by a heap, then the exact path */

int gptoss_sampler_scratch_init(struct gptoss_sampler_scratch* scratch, uint32_t vocabulary_size) {
    memset(scratch, 0, sizeof(*scratch));
    const size_t V = vocabulary_size;
    scratch->vocabulary_size = vocabulary_size;
    scratch->next = malloc(V * sizeof(uint32_t));
    scratch->order = malloc(V * sizeof(uint32_t));
    scratch->tmp = malloc(V * sizeof(uint32_t));
    scratch->prob = malloc(V * sizeof(double));
    scratch->count = calloc(V, sizeof(uint32_t));
    scratch->top = malloc(TOP_K_DIRECT * sizeof(uint64_t));
    scratch->buckets = malloc((NUM_BUCKETS + 2) * sizeof(struct gptoss_sampler_bucket));
    if (scratch->next == NULL || scratch->order == NULL || scratch->tmp == NULL || scratch->prob == NULL ||
        scratch->count == NULL || scratch->top == NULL || scratch->buckets == NULL) {
        gptoss_sampler_scratch_free(scratch);
        return -1;
    }
    return 0;
}

void gptoss_sampler_scratch_free(struct gptoss_sampler_scratch* scratch) {
    free(scratch->next);
    free(scratch->order);
    free(scratch->tmp);
    free(scratch->prob);
    free(scratch->count);
    free(scratch->top);
    free(scratch->buckets);
    memset(scratch, 0, sizeof(*scratch));
}

#if defined(__x86_64__) && defined(__GNUC__)
/* the loops over the vocabulary, compiled for AVX-512, AVX2 and the baseline (picked at load) */
#define VOCABULARY_LOOP __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define VOCABULARY_LOOP
#endif

static inline uint32_t all_ones_if(int condition) { return 0u - (uint32_t) (condition != 0); }

/* Draw order as an integer: ascending key = descending logit; -0 and +0 equal; NaN last
 * (UINT32_MAX). Integer masks, no branches: the loops over the vocabulary vectorize. */
static inline uint32_t order_key(uint32_t bits) {
    const uint32_t magnitude = bits & 0x7FFFFFFFu;
    const uint32_t negative = all_ones_if(bits > 0x80000000u); /* -0 is +0 */
    const uint32_t key = (negative & bits) | (~negative & (0x7FFFFFFFu - magnitude));
    return key | all_ones_if(magnitude > 0x7F800000u);
}

static inline uint32_t logit_key(const float* logits, uint32_t id) {
    uint32_t bits;
    memcpy(&bits, &logits[id], sizeof(bits));
    return order_key(bits);
}

/* The logit of a key that is not NaN's (+0 for the zeros). */
static float key_logit(uint32_t key) {
    const uint32_t bits = key < 0x80000000u ? 0x7FFFFFFFu - key : key;
    float x;
    memcpy(&x, &bits, sizeof(x));
    return x;
}

/* Smallest key (the argmax's) and largest key that is not NaN's (the smallest logit; 0
 * when all are NaN). */
VOCABULARY_LOOP static void key_range(const float* logits, uint32_t V, uint32_t* min_out, uint32_t* max_out) {
    uint32_t lo = UINT32_MAX, hi = 0;
    for (uint32_t i = 0; i < V; i++) {
        const uint32_t key = logit_key(logits, i), not_nan = key & all_ones_if(key != UINT32_MAX);
        lo = key < lo ? key : lo;
        hi = not_nan > hi ? not_nan : hi;
    }
    *min_out = lo;
    *max_out = hi;
}

/* Step 2: the argmax is the lowest id with the smallest key. */
static uint32_t first_with_key(const float* logits, uint32_t V, uint32_t key) {
    for (uint32_t i = 0; i < V; i++) {
        if (logit_key(logits, i) == key) return i;
    }
    return 0;
}

/* Sorts ids, given in increasing order, into draw order (stable sort by order_key). */
static void sort_ids(uint32_t* ids, uint32_t n, const float* logits, uint32_t* tmp) {
    if (n <= 32) {
        for (uint32_t i = 1; i < n; i++) {
            const uint32_t id = ids[i], key = logit_key(logits, id);
            uint32_t j = i;
            for (; j > 0 && logit_key(logits, ids[j - 1]) > key; j--) ids[j] = ids[j - 1];
            ids[j] = id;
        }
        return;
    }
    uint32_t hist[4][256];
    memset(hist, 0, sizeof(hist));
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t key = logit_key(logits, ids[i]);
        for (int d = 0; d < 4; d++) hist[d][(key >> (8 * d)) & 255]++;
    }
    uint32_t *src = ids, *dst = tmp;
    for (int d = 0; d < 4; d++) {
        const unsigned shift = 8 * (unsigned) d;
        if (hist[d][(logit_key(logits, src[0]) >> shift) & 255] == n) continue; /* one digit value */
        uint32_t offset[256], sum = 0;
        for (int v = 0; v < 256; v++) {
            offset[v] = sum;
            sum += hist[d][v];
        }
        for (uint32_t i = 0; i < n; i++) dst[offset[(logit_key(logits, src[i]) >> shift) & 255]++] = src[i];
        uint32_t* t = src;
        src = dst;
        dst = t;
    }
    if (src != ids) memcpy(ids, src, n * sizeof(uint32_t));
}

/* Steps 4-6 literally, over the candidates ids[0..n) in draw order (prob: n doubles). */
static uint32_t pick_exact(const uint32_t* ids, uint32_t n, const float* logits, double m, double inv_t,
                           float top_p, double u, double* prob) {
    double total = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        prob[i] = exp(((double) logits[ids[i]] - m) * inv_t);
        total += prob[i];
    }
    if (top_p < 1.0f) {
        const double target = (double) top_p * total;
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
    const double target = u * total;
    double cum = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        cum += prob[i];
        if (cum > target) return ids[i];
    }
    return ids[n - 1];
}

/* The bucketed candidates of one draw. */
struct buckets {
    struct gptoss_sampler_scratch* sc;
    const float* logits;
    double m, inv_t;       /* z = ((double) logit - m) * inv_t */
    double w;              /* bucket width in z */
    uint32_t max_bits;     /* the largest logit's bits */
    uint32_t near_key;     /* keys up to this are in a bucket b < B */
    uint32_t valid_key;    /* keys up to this are candidates (z > -745) */
    uint32_t n;            /* candidates (positions 0..n-1 of the draw order) */
    uint32_t last;         /* bucket of position n - 1 */
    uint32_t sorted[3];    /* buckets already sorted into sc->order */
    uint32_t num_sorted;
};

/* exp(d) for d in [-1/64, 0]: Taylor polynomial of degree 6 (Estrin's scheme) */
static inline double exp_small(double d) {
    const double d2 = d * d;
    return (1.0 + d) + d2 * ((1.0 / 2 + d * (1.0 / 6)) + d2 * ((1.0 / 24 + d * (1.0 / 120)) + d2 * (1.0 / 720)));
}

/* exp(z) / exp(-b w) of a candidate in bucket b < B */
static inline double bucket_mass(const struct buckets* bk, uint32_t id, uint32_t b) {
    const double z = ((double) bk->logits[id] - bk->m) * bk->inv_t;
    return exp_small(z + (double) b * bk->w);
}

/* The largest key whose logit has t = -z / w < B (near = 1) or z > -745 (near = 0): both
 * hold at the maximum (key lo) and fail at -inf; monotone in between. */
static uint32_t last_key(const struct buckets* bk, uint32_t lo, double inv_w, int near) {
    uint32_t hi = 0xFF800000u; /* -inf */
    while (hi - lo > 1) {
        const uint32_t mid = lo + (hi - lo) / 2;
        const double z = ((double) key_logit(mid) - bk->m) * bk->inv_t;
        if (near ? -z * inv_w < (double) NUM_BUCKETS : z > -745.0) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* Per id of logits[0..len): its bucket (B far, B + 1 not a candidate) and, in a bucket b < B,
 * exp(z) / exp(-b w). Keys up to near_key are in a bucket b < B, up to valid_key candidates.
 * max_bits: the bits of the largest logit, m its value (passed apart: gcc does not vectorize
 * the loop when it derives one from the other). */
VOCABULARY_LOOP static void classify(const float* logits, uint32_t len, uint32_t max_bits, double m, double inv_t,
                                     double w, uint32_t near_key, uint32_t valid_key, int32_t* bucket_out,
                                     double* mass_out) {
    const double inv_w = 1.0 / w;
    for (uint32_t j = 0; j < len; j++) {
        uint32_t bits;
        memcpy(&bits, &logits[j], sizeof(bits));
        const uint32_t key = order_key(bits);
        const int near = key <= near_key;
        const uint32_t near_bits = near ? bits : max_bits; /* others: z = 0, no conversion out of range */
        float x;
        memcpy(&x, &near_bits, sizeof(x));
        const double z = ((double) x - m) * inv_t;
        const int32_t b = (int32_t) (-z * inv_w); /* in [0, B): exact scaling by a power of two, then floor */
        mass_out[j] = exp_small(z + (double) b * w); /* exact sum (Sterbenz), in (-w, 0] */
        bucket_out[j] = near ? b : key <= valid_key ? (int32_t) NUM_BUCKETS : (int32_t) NUM_BUCKETS + 1;
    }
}

enum { BLOCK = 512 }; /* ids per classify call */

static void classify_block(const struct buckets* bk, uint32_t i0, uint32_t len, int32_t* bucket_out,
                           double* mass_out) {
    classify(bk->logits + i0, len, bk->max_bits, bk->m, bk->inv_t, bk->w, bk->near_key, bk->valid_key, bucket_out,
             mass_out);
}

/* Puts the candidates in buckets: per bucket its list of ids, count, first position and
 * mass (for b < B: exp(-b w) times the sum of bucket_mass). max_key, min_key: the keys of
 * the largest and the smallest logit. */
static void fill_buckets(struct buckets* bk, const struct gptoss_sampler* s, uint32_t max_key, uint32_t min_key) {
    struct gptoss_sampler_scratch* sc = bk->sc;
    const uint32_t V = sc->vocabulary_size;
    const double zspan = (bk->m - (double) key_logit(min_key)) * bk->inv_t; /* = -(smallest z), exactly */
    double w = 1.0 / 64.0;
    if (zspan < FAR_SPAN) {
        while (w > 0x1p-1000 && 0.5 * w * NUM_BUCKETS > zspan) w *= 0.5;
    }
    bk->w = w;
    bk->num_sorted = 0;
    bk->near_key = last_key(bk, max_key, 1.0 / w, 1);
    bk->valid_key = last_key(bk, max_key, 1.0 / w, 0);
    const float max_logit = key_logit(max_key);
    memcpy(&bk->max_bits, &max_logit, sizeof(bk->max_bits));
    struct gptoss_sampler_bucket* bucket = sc->buckets;
    uint32_t* next = sc->next;
    for (uint32_t b = 0; b <= NUM_BUCKETS + 1; b++) bucket[b] = (struct gptoss_sampler_bucket){.head = NO_ID};
    int32_t block_bucket[BLOCK];
    double block_mass[BLOCK];
    for (uint32_t i0 = 0; i0 < V; i0 += BLOCK) {
        const uint32_t len = V - i0 < BLOCK ? V - i0 : BLOCK;
        classify_block(bk, i0, len, block_bucket, block_mass);
        for (uint32_t j = 0; j < len; j++) {
            struct gptoss_sampler_bucket* bj = &bucket[block_bucket[j]];
            bj->mass += block_mass[j];
            bj->count++;
            next[i0 + j] = bj->head;
            bj->head = i0 + j;
        }
    }
    uint32_t pos = 0;
    for (uint32_t b = 0; b <= NUM_BUCKETS; b++) {
        bucket[b].first = pos;
        pos += bucket[b].count;
    }
    bk->n = s->top_k != 0 && s->top_k < pos ? s->top_k : pos;
    for (uint32_t b = 0; b <= NUM_BUCKETS; b++) {
        if (b < NUM_BUCKETS && bucket[b].count != 0) {
            bucket[b].scale = exp(-(double) b * w);
            bucket[b].mass *= bucket[b].scale;
        }
        if (bucket[b].first + bucket[b].count >= bk->n) {
            bk->last = b;
            break;
        }
    }
}

/* The ids of bucket b in draw order (sorted on first use), at sc->order + buckets[b].first. */
static const uint32_t* bucket_ids(struct buckets* bk, uint32_t b) {
    struct gptoss_sampler_scratch* sc = bk->sc;
    uint32_t* ids = sc->order + sc->buckets[b].first;
    for (uint32_t i = 0; i < bk->num_sorted; i++) {
        if (bk->sorted[i] == b) return ids;
    }
    const uint32_t n = sc->buckets[b].count;
    uint32_t j = n;
    for (uint32_t id = sc->buckets[b].head; id != NO_ID; id = sc->next[id]) ids[--j] = id; /* list: ids decreasing */
    sort_ids(ids, n, bk->logits, sc->tmp);
    if (bk->num_sorted < 3) bk->sorted[bk->num_sorted++] = b;
    return ids;
}

/* The first position p < end with Q_p > x (strict) or >= x, where Q_p is the mass of
 * positions 0..p; its mass before (Q_{p-1}, 0 for p = 0) and at. The last position before
 * end when none reaches x (rounding). 0 when it falls in the far bucket. */
struct crossing {
    uint32_t pos;
    double before, at;
};
static int find_crossing(struct buckets* bk, uint32_t end, double x, int strict, struct crossing* out) {
    const struct gptoss_sampler_scratch* sc = bk->sc;
    double acc = 0.0;
    for (uint32_t b = 0; b < NUM_BUCKETS; b++) {
        const uint32_t first = sc->buckets[b].first, count = sc->buckets[b].count;
        if (count == 0) continue;
        const int last = first + count >= end;
        const double mass = sc->buckets[b].mass;
        if (!last && (strict ? acc + mass > x : acc + mass >= x) == 0) {
            acc += mass;
            continue;
        }
        const uint32_t* ids = bucket_ids(bk, b);
        const uint32_t lim = last ? end - first : count;
        const double scale = sc->buckets[b].scale;
        double ysum = 0.0, before = acc, at = acc;
        uint32_t j = 0;
        for (; j < lim; j++) {
            before = at;
            ysum += bucket_mass(bk, ids[j], b);
            at = acc + scale * ysum;
            if (strict ? at > x : at >= x) break;
        }
        if (j == lim) j--;
        out->pos = first + j;
        out->before = j == 0 ? acc : before;
        out->at = at;
        return 1;
    }
    return 0;
}

/* Steps 3-6 by buckets; NO_ID when the intervals do not decide the token. */
static uint32_t pick_bucketed(struct buckets* bk, float top_p, double u) {
    const struct gptoss_sampler_scratch* sc = bk->sc;
    const uint32_t n = bk->n, last = bk->last;
    const double R = 4.0 * ((double) n + NUM_BUCKETS + 64) * 0x1p-53 + 0x1p-40, lo = 1.0 - R, hi = 1.0 + R;
    const double x_lo = 1.0 - 0x1p-50, x_hi = 1.0 + 0x1p-50;

    /* C_n: the buckets before the last one and the candidates in the last one */
    double total = 0.0, far = 0.0;
    const uint32_t in_last = n - sc->buckets[last].first;
    if (last == NUM_BUCKETS) {
        for (uint32_t b = 0; b < last; b++) total += sc->buckets[b].mass;
        far = (double) in_last * FAR_MASS;
    } else if (in_last == sc->buckets[last].count) {
        for (uint32_t b = 0; b <= last; b++) total += sc->buckets[b].mass;
    } else {
        struct crossing c;
        find_crossing(bk, n, INFINITY, 0, &c); /* walks the sorted last bucket */
        total = c.at;
    }
    double t_mid = total, t_lo = total * lo, t_hi = (total + far) * hi;
    uint32_t keep = n;
    if (top_p < 1.0f) {
        struct crossing c;
        if (!find_crossing(bk, n, (double) top_p * total, 0, &c)) return NO_ID;
        if (!(c.before * hi < (double) top_p * t_lo * x_lo && c.at * lo >= (double) top_p * t_hi * x_hi)) return NO_ID;
        keep = c.pos + 1;
        t_mid = c.at;
        t_lo = c.at * lo;
        t_hi = c.at * hi;
    }
    struct crossing c;
    if (!find_crossing(bk, keep, u * t_mid, 1, &c)) return NO_ID;
    if (!(c.before * hi <= u * t_lo * x_lo && c.at * lo > u * t_hi * x_hi)) return NO_ID;
    return sc->order[c.pos];
}

/* Step 6 when the draw order is by id (top-k and top-p off): the first id whose prefix mass
 * exceeds u C_n, found block by block (masses recomputed, times each bucket's scale); the
 * prefix intervals add up to FAR_MASS per far id. NO_ID when the intervals do not decide it. */
static uint32_t pick_by_id(struct buckets* bk, double u) {
    const struct gptoss_sampler_scratch* sc = bk->sc;
    const struct gptoss_sampler_bucket* bucket = sc->buckets;
    const double R = 4.0 * ((double) bk->n + NUM_BUCKETS + 64) * 0x1p-53 + 0x1p-40, lo = 1.0 - R, hi = 1.0 + R;
    double total = 0.0;
    for (uint32_t b = 0; b < NUM_BUCKETS; b++) total += bucket[b].mass; /* empty buckets: 0 */
    const double far_total = (double) bucket[NUM_BUCKETS].count * FAR_MASS;
    const double x = u * total, x_lo = u * total * lo * (1.0 - 0x1p-50), x_hi = u * (total + far_total) * hi * (1.0 + 0x1p-50);
    int32_t block_bucket[BLOCK];
    double block_mass[BLOCK];
    double acc = 0.0;  /* mass of the ids before the block, far ones as 0 */
    uint32_t far = 0;  /* far ids before the block */
    for (uint32_t i0 = 0; i0 < sc->vocabulary_size; i0 += BLOCK) {
        const uint32_t len = sc->vocabulary_size - i0 < BLOCK ? sc->vocabulary_size - i0 : BLOCK;
        classify_block(bk, i0, len, block_bucket, block_mass);
        double sum = 0.0;
        uint32_t block_far = 0;
        for (uint32_t j = 0; j < len; j++) {
            const uint32_t b = (uint32_t) block_bucket[j];
            if (b < NUM_BUCKETS) sum += block_mass[j] * bucket[b].scale;
            block_far += b == NUM_BUCKETS;
        }
        if (!(acc + sum > x)) {
            acc += sum;
            far += block_far;
            continue;
        }
        double part = 0.0;
        for (uint32_t j = 0; j < len; j++) { /* the id that crosses x */
            const uint32_t b = (uint32_t) block_bucket[j];
            if (b > NUM_BUCKETS) continue; /* not a candidate */
            const double before = acc + part;
            const uint32_t far_before = far;
            if (b == NUM_BUCKETS) { /* widens the intervals after it; never certified itself */
                far++;
                continue;
            }
            part += block_mass[j] * bucket[b].scale;
            if (acc + part > x) {
                const int decided = (before + (double) far_before * FAR_MASS) * hi <= x_lo && (acc + part) * lo > x_hi;
                return decided ? i0 + j : NO_ID;
            }
        }
        break; /* the block's sum crossed x, none of its prefixes did (rounding) */
    }
    return NO_ID;
}

/* Draw order of ids as one integer: (key, id). */
static inline uint64_t rank(const float* logits, uint32_t id) { return (uint64_t) logit_key(logits, id) << 32 | id; }

static void sift_down(uint64_t* heap, uint32_t n, uint32_t i) { /* max-heap */
    for (;;) {
        uint32_t top = i;
        const uint32_t l = 2 * i + 1, r = l + 1;
        if (l < n && heap[l] > heap[top]) top = l;
        if (r < n && heap[r] > heap[top]) top = r;
        if (top == i) return;
        const uint64_t t = heap[i];
        heap[i] = heap[top];
        heap[top] = t;
        i = top;
    }
}

/* The k (< V) first ids in draw order, in draw order (heap: k entries). */
static void first_k(const float* logits, uint32_t V, uint32_t k, uint64_t* heap, uint32_t* ids_out) {
    for (uint32_t i = 0; i < k; i++) heap[i] = rank(logits, i);
    for (uint32_t i = k / 2; i-- > 0;) sift_down(heap, k, i);
    enum { BLOCK = 64 };
    for (uint32_t i0 = k; i0 < V; i0 += BLOCK) {
        const uint32_t end = V - i0 < BLOCK ? V : i0 + BLOCK;
        uint32_t lo, hi;
        key_range(logits + i0, end - i0, &lo, &hi);
        if (lo >= (uint32_t) (heap[0] >> 32)) continue; /* none ranks before the worst kept (ids are larger) */
        for (uint32_t i = i0; i < end; i++) {
            const uint64_t r = rank(logits, i);
            if (r < heap[0]) {
                heap[0] = r;
                sift_down(heap, k, 0);
            }
        }
    }
    for (uint32_t n = k; n-- > 1;) { /* heap sort: ascending */
        const uint64_t t = heap[0];
        heap[0] = heap[n];
        heap[n] = t;
        sift_down(heap, n, 0);
    }
    for (uint32_t i = 0; i < k; i++) ids_out[i] = (uint32_t) heap[i];
}

uint32_t gptoss_sampler_pick_host(const struct gptoss_sampler* s, float* logits, const uint32_t* tokens,
                                  size_t num_tokens, uint64_t rng_offset, struct gptoss_sampler_scratch* scratch) {
    const uint32_t V = scratch->vocabulary_size;

    /* step 1: penalties (OpenAI style) */
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

    for (size_t i = 0; i < s->num_bias; i++) { /* ids < V: gptoss_sampler_check_vocabulary */
        if (s->bias_ids[i] < V) logits[s->bias_ids[i]] += s->bias_values[i];
    }
    if (s->allow != NULL) { /* some id < V allowed: gptoss_sampler_check_vocabulary */
        const float nan = nanf("");
        for (uint32_t i = 0; i < V; i++) {
            const uint32_t w = i / 32;
            if (w >= s->allow_words || !((s->allow[w] >> (i % 32)) & 1u)) logits[i] = nan;
        }
    }

    /* step 2 */
    uint32_t max_key, min_key;
    key_range(logits, V, &max_key, &min_key);
    if (max_key == UINT32_MAX) return 0; /* all NaN */
    const float max_logit = key_logit(max_key);
    if (s->temperature == 0.0f || !isfinite(max_logit)) return first_with_key(logits, V, max_key);
    const double m = (double) max_logit;
    const double inv_t = 1.0 / (double) s->temperature;
    const uint32_t word = gptoss_random_u32(rng_offset, s->seed + GPTOSS_SAMPLER_SEED_OFFSET);
    const double u = (double) (word & 0xFFFFFFu) * 0x1.0p-24;

    if (s->top_k != 0 && s->top_k <= TOP_K_DIRECT && s->top_k < V) { /* a few candidates: exact */
        first_k(logits, V, s->top_k, scratch->top, scratch->order);
        uint32_t n = 0;
        while (n < s->top_k && ((double) logits[scratch->order[n]] - m) * inv_t > -745.0) n++;
        return pick_exact(scratch->order, n, logits, m, inv_t, s->top_p, u, scratch->prob);
    }

    struct buckets bk = {.sc = scratch, .logits = logits, .m = m, .inv_t = inv_t};
    fill_buckets(&bk, s, max_key, min_key);
    const int by_id = s->top_p == 1.0f && s->top_k == 0;
    const uint32_t id = by_id ? pick_by_id(&bk, u) : pick_bucketed(&bk, s->top_p, u);
    if (id != NO_ID) {
        scratch->fast_draws++;
        return id;
    }
    /* exact path: every candidate in draw order */
    scratch->fallback_draws++;
    if (by_id) {
        uint32_t n = 0;
        for (uint32_t i = 0; i < V; i++) {
            if (((double) logits[i] - m) * inv_t > -745.0) scratch->order[n++] = i;
        }
        return pick_exact(scratch->order, n, logits, m, inv_t, s->top_p, u, scratch->prob);
    }
    for (uint32_t b = 0; b <= bk.last; b++) {
        if (scratch->buckets[b].count != 0) bucket_ids(&bk, b);
    }
    return pick_exact(scratch->order, bk.n, logits, m, inv_t, s->top_p, u, scratch->prob);
}
