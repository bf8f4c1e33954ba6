/* Host sampler (gptoss_sampler_pick_host) against an oracle: the sampler as it was before the
 * bucketed path (heap top-k, qsort of every candidate, exp per candidate, sums left to
 * right), kept here verbatim. Token for token, and the logits after the penalties bit for
 * bit, on:
 *  - random draws: vocabulary sizes 1..20,000 and 201,088; logits normal (several scales),
 *    with ties (few distinct values), all equal, peaked, wide (beyond exp's range), with
 *    +-inf, NaN, +-0, subnormals and +-FLT_MAX; temperature 0 to 1e4; top-p off, 1e-7 to the
 *    largest float below 1; top-k off, 1, 2, 40, random, V and above; penalties with
 *    histories (repeated ids, ids >= V); random seeds and offsets;
 *  - near ties: logits tuned (two "tuner" ids at the end of the draw order) until top_p * C_n,
 *    or u * C_n, equals a prefix sum C_k to the last bits (nucleus boundary, drawn boundary
 *    sorted and by id), then swept over the tuner's neighbouring floats (the draw's rounding
 *    decides these: the bucketed path must hand them to the exact one) and over gaps of
 *    1e-16 .. 1e-8 of the total (some decided by the buckets).
 * The bucketed path and its hand-over to the exact path must both run (the scratch counts
 * them; printed per section). Guard words after the logits; the penalty counts must be
 * zero after every draw. With the error intervals set to zero the near ties fail.
 *
 * Every draw also goes through the sampling kernels (kernels.h: f32_apply_penalties with
 * the history's counts, f32_sample_logits; CPU backend), which add the probabilities
 * exactly instead of in double: their penalized logits must equal the host sampler's bit
 * for bit, and their token the host's on the random draws and fixed cases (a draw within
 * the host's rounding of a boundary, about 1e-11 of the mass, is not expected there). At
 * the near ties they may differ: how often is printed.
 * Usage: test_sampler [SEED] (default: from the clock; printed). */
#include <float.h>
#include <math.h>
#include <time.h>

#include <gptoss/kernels.h>

#include "engine_internal.h"
#include "test_util.h"

#define GUARD 8
#define GUARD_BITS 0x7FC0DEADu /* a NaN payload no draw writes */

/* ---- the oracle: the sampler before the bucketed path ---------------------------------- */

struct oracle_scratch {
    uint32_t vocabulary_size;
    uint32_t* index;
    double* prob;
    uint32_t* count;
};

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
static const float* sort_values;

static unsigned g_masked_draws; /* draws with a mask of allowed tokens */

static int cmp_desc(const void* pa, const void* pb) {
    const uint32_t a = *(const uint32_t*) pa, b = *(const uint32_t*) pb;
    const float* v = sort_values;
    if (a == b) return 0;
    return before(v[a], a, v[b], b) ? -1 : 1;
}

static uint32_t oracle_pick(const struct gptoss_sampler* s, float* logits, const uint32_t* tokens, size_t num_tokens,
                            uint64_t rng_offset, struct oracle_scratch* scratch, int* near_tie) {
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
    /* logit bias, after the penalties */
    for (size_t i = 0; i < s->num_bias; i++) logits[s->bias_ids[i]] += s->bias_values[i];
    /* allowed tokens: the others are out of the draw (NaN: below everything, never a
     * candidate) */
    if (s->allow != NULL) {
        for (uint32_t i = 0; i < V; i++) {
            if (i / 32 >= s->allow_words || (s->allow[i / 32] & (1u << (i % 32))) == 0) logits[i] = nanf("");
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
        sort_values = logits;
        qsort(idx, n, sizeof(uint32_t), cmp_desc);
    }
    double total = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        prob[i] = exp(((double) logits[idx[i]] - m) * inv_t);
        total += prob[i];
    }
    /* near_tie: top_p C_n or u C_K within (64 n 2^-53 relative) of a prefix sum, where double
     * sums (the host sampler, this oracle) and the kernels' exact ones may decide apart
     * (kernels.h, gptoss_f32_sample_logits) */
    *near_tie = 0;
    if (s->top_p < 1.0f) {
        /* smallest prefix of the sorted candidates whose mass reaches top_p */
        const double target = (double) s->top_p * total, tol = 64.0 * n * 0x1.0p-53 * total;
        double cum = 0.0;
        uint32_t keep = n;
        for (uint32_t i = 0; i < n; i++) {
            cum += prob[i];
            if (fabs(cum - target) <= tol) *near_tie = 1;
            if (cum >= target) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
        total = 0.0;
        for (uint32_t i = 0; i < n; i++) total += prob[i];
    }

    const uint32_t word = gptoss_random_u32(rng_offset, s->seed + GPTOSS_SAMPLER_SEED_OFFSET);
    const double u = (double) (word & 0xFFFFFFu) * 0x1.0p-24;
    const double target = u * total, tol = 64.0 * n * 0x1.0p-53 * total;
    double cum = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        cum += prob[i];
        if (fabs(cum - target) <= tol) *near_tie = 1;
        if (cum > target) return idx[i];
    }
    return idx[n - 1];
}

/* ---- one comparison ---------------------------------------------------------------------- */

static struct gptoss_sampler_scratch g_lib;
static struct oracle_scratch g_ora;
static float *g_logits_lib, *g_logits_ora, *g_logits_ker;
static uint32_t* g_counts; /* the kernels' counts of the history's ids */
static uint32_t g_capacity;
static unsigned g_draws;
static gptoss_backend_t g_cpu;   /* the sampling kernels' backend */
static int g_kernels_strict = 1; /* 0: near ties, where the kernels may differ (counted) */
static unsigned g_kernel_draws, g_kernel_differ;
static unsigned g_random_ties; /* strict draws where the kernels differ at a near tie (allowed) */
static uint64_t g_fast_done, g_fallback_done; /* counts of freed scratches */

static uint64_t fast_draws(void) { return g_fast_done + g_lib.fast_draws; }
static uint64_t fallback_draws(void) { return g_fallback_done + g_lib.fallback_draws; }

static void prepare(uint32_t V) {
    if (g_lib.vocabulary_size == V) return;
    g_fast_done += g_lib.fast_draws;
    g_fallback_done += g_lib.fallback_draws;
    gptoss_sampler_scratch_free(&g_lib);
    if (gptoss_sampler_scratch_init(&g_lib, V) != 0) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    if (V > g_capacity) {
        free(g_ora.index);
        free(g_ora.prob);
        free(g_ora.count);
        free(g_logits_lib);
        free(g_logits_ora);
        free(g_logits_ker);
        free(g_counts);
        g_ora.index = malloc(V * sizeof(uint32_t));
        g_ora.prob = malloc(V * sizeof(double));
        g_ora.count = calloc(V, sizeof(uint32_t));
        g_logits_lib = malloc((V + GUARD) * sizeof(float));
        g_logits_ora = malloc((V + GUARD) * sizeof(float));
        g_logits_ker = malloc(V * sizeof(float));
        g_counts = malloc(V * sizeof(uint32_t));
        g_capacity = V;
    }
    g_ora.vocabulary_size = V;
}

/* The draw through the kernels (penalties in place, then f32_sample_logits); the logits
 * after the penalties in g_logits_ker. UINT32_MAX when a call fails (a failure is
 * reported). */
static uint32_t kernels_pick(const float* logits, uint32_t V, const struct gptoss_sampler* s, const uint32_t* history,
                             size_t history_size, uint64_t rng_offset) {
    memcpy(g_logits_ker, logits, V * sizeof(float));
    enum gptoss_status st = gptoss_status_success;
    if (s->presence_penalty != 0.0f || s->frequency_penalty != 0.0f) {
        memset(g_counts, 0, V * sizeof(uint32_t));
        for (size_t i = 0; i < history_size; i++) {
            if (history[i] < V) g_counts[history[i]]++;
        }
        st = gptoss_f32_apply_penalties(g_cpu, g_logits_ker, g_counts, g_logits_ker, V, s->presence_penalty,
                                        s->frequency_penalty);
    }
    /* the kernels take no bias (a biased sampler draws on the host): added here, after the
     * penalties as the host path does, so the kernels' draw stays comparable */
    for (size_t i = 0; i < s->num_bias; i++) g_logits_ker[s->bias_ids[i]] += s->bias_values[i];
    uint32_t token = UINT32_MAX;
    if (st == gptoss_status_success) {
        st = gptoss_f32_sample_logits(g_cpu, g_logits_ker, &token, V, s->temperature, s->top_k, s->top_p,
                                      s->seed + GPTOSS_SAMPLER_SEED_OFFSET, rng_offset);
    }
    CHECK(st == gptoss_status_success, "sampling kernels: %s", gptoss_last_error());
    return st == gptoss_status_success ? token : UINT32_MAX;
}

/* Draws with both; 1 when they agree (token, logits after the penalties, guards, counts).
 * Also with the kernels (g_kernels_strict: the same token). */
static int compare(const char* what, const float* logits, uint32_t V, const struct gptoss_sampler* s,
                   const uint32_t* history, size_t history_size, uint64_t rng_offset) {
    prepare(V);
    memcpy(g_logits_lib, logits, V * sizeof(float));
    memcpy(g_logits_ora, logits, V * sizeof(float));
    for (uint32_t g = 0; g < GUARD; g++) memcpy(&g_logits_lib[V + g], &(uint32_t){GUARD_BITS}, sizeof(float));
    const uint32_t got = gptoss_sampler_pick_host(s, g_logits_lib, history, history_size, rng_offset, &g_lib);
    int near_tie = 0;
    const uint32_t want = oracle_pick(s, g_logits_ora, history, history_size, rng_offset, &g_ora, &near_tie);
    g_draws++;
    int ok = got == want;
    ok = ok && memcmp(g_logits_lib, g_logits_ora, V * sizeof(float)) == 0;
    for (uint32_t g = 0; g < GUARD; g++) {
        uint32_t bits;
        memcpy(&bits, &g_logits_lib[V + g], sizeof(bits));
        ok = ok && bits == GUARD_BITS;
    }
    for (size_t i = 0; i < history_size; i++) ok = ok && (history[i] >= V || g_lib.count[history[i]] == 0);
    if (s->allow == NULL) { /* the kernels take no mask (a sampler with one draws on the host) */
        const uint32_t kernels = kernels_pick(logits, V, s, history, history_size, rng_offset);
        g_kernel_draws++;
        g_kernel_differ += kernels != got;
        CHECK(memcmp(g_logits_ker, g_logits_lib, V * sizeof(float)) == 0, "%s: V %u presence %g frequency %g: the "
              "penalties kernel's logits differ from the host sampler's", what, V, (double) s->presence_penalty,
              (double) s->frequency_penalty);
        g_random_ties += g_kernels_strict && kernels != got && near_tie;
        CHECK(!g_kernels_strict || kernels == got || near_tie, "%s: V %u T %.9g top_p %.9g top_k %u presence %g "
              "frequency %g seed %llu offset %llu: kernels %u, host %u", what, V, (double) s->temperature,
              (double) s->top_p, s->top_k, (double) s->presence_penalty, (double) s->frequency_penalty,
              (unsigned long long) s->seed, (unsigned long long) rng_offset, kernels, got);
    } else {
        g_masked_draws++;
        /* never a disallowed id, unless every allowed logit is NaN (fill's extreme shape: the
         * batch refuses such rows before drawing) */
        int allowed_finite = 0;
        for (uint32_t i = 0; i < V && !allowed_finite; i++) {
            allowed_finite = i / 32 < s->allow_words && (s->allow[i / 32] >> (i % 32) & 1u) && logits[i] == logits[i];
        }
        CHECK(!allowed_finite || (got / 32 < s->allow_words && (s->allow[got / 32] >> (got % 32) & 1u)),
              "%s: V %u: drew %u, which the mask does not allow", what, V, got);
    }
    CHECK(ok, "%s: V %u T %.9g top_p %.9g top_k %u presence %g frequency %g bias %zu ids seed %llu offset %llu: "
          "token %u, oracle %u%s", what, V, (double) s->temperature, (double) s->top_p, s->top_k,
          (double) s->presence_penalty, (double) s->frequency_penalty, s->num_bias, (unsigned long long) s->seed,
          (unsigned long long) rng_offset, got, want,
          got == want ? " (logits, guards or counts differ)" : "");
    return ok;
}

/* ---- random draws -------------------------------------------------------------------------- */

static double uniform(void) { return (double) (rng_next() >> 11) * 0x1p-53; }
static double normal(void) { return sqrt(-2.0 * log(1.0 - uniform())) * cos(6.283185307179586 * uniform()); }
static uint32_t below(uint32_t n) { return (uint32_t) (rng_next() % n); }

enum shape { shape_normal, shape_ties, shape_equal, shape_peaked, shape_wide, shape_extreme, num_shapes };
static const char* shape_names[] = {"normal", "ties", "equal", "peaked", "wide", "extreme"};

static void fill(float* x, uint32_t V, enum shape shape) {
    static const double scales[] = {0.001, 0.3, 1.0, 3.0, 30.0};
    const double scale = scales[below(5)], offset = 20.0 * normal();
    const uint32_t levels = 1 + below(6);
    const float equal = (float) (10.0 * normal());
    static const float special[] = {INFINITY, -INFINITY, NAN, 0.0f, -0.0f, FLT_MAX, -FLT_MAX, FLT_TRUE_MIN,
                                    -FLT_TRUE_MIN, 1e30f, -1e30f};
    for (uint32_t i = 0; i < V; i++) {
        switch (shape) {
        case shape_normal: x[i] = (float) (offset + scale * normal()); break;
        case shape_ties: x[i] = (float) (0.5 * below(levels)) - 1.0f; break;
        case shape_equal: x[i] = equal; break;
        case shape_peaked: x[i] = (float) (2.0 * normal()); break;
        case shape_wide: x[i] = (float) (2000.0 * uniform() - 1000.0); break;
        default:
            x[i] = below(8) == 0 ? special[below(sizeof(special) / sizeof(special[0]))] : (float) normal();
            break;
        }
    }
    if (shape == shape_peaked) {
        for (uint32_t j = 0; j < 1 + V / 1000 && j < 64; j++) x[below(V)] = (float) (18.0 - 0.4 * j + normal());
    }
}

static void random_params(struct gptoss_sampler* s, uint32_t V) {
    static const float temps[] = {0.0f, 1e-30f, 1e-3f, 0.1f, 0.7f, 1.0f, 1.5f, 10.0f, 1e4f};
    static const float top_ps[] = {1.0f, 1.0f, 0.9f, 0.95f, 0.5f, 0.1f, 1e-7f, 0.99999994f, 0.0f};
    memset(s, 0, sizeof(*s));
    s->temperature = below(4) == 0 ? (float) (3.0 * uniform()) : temps[below(sizeof(temps) / sizeof(temps[0]))];
    s->top_p = top_ps[below(sizeof(top_ps) / sizeof(top_ps[0]))];
    if (s->top_p == 0.0f) s->top_p = (float) uniform() + 1e-6f > 1.0f ? 1.0f : (float) uniform() + 1e-6f;
    switch (below(8)) {
    case 0: s->top_k = 1; break;
    case 1: s->top_k = 2; break;
    case 2: s->top_k = 40; break;
    case 3: s->top_k = 1 + below(V); break;
    case 4: s->top_k = V + below(3); break;
    default: s->top_k = 0; break;
    }
    if (below(4) == 0) {
        s->presence_penalty = (float) (4.0 * uniform() - 2.0);
        s->frequency_penalty = (float) (2.0 * uniform() - 1.0);
    }
    if (below(4) == 0) { /* a logit bias: distinct ids, increasing (as the sampler keeps them) */
        static uint32_t ids[8];
        static float values[8];
        size_t n = 0;
        for (uint32_t id = below(V < 3 ? V : 3); id < V && n < 8; id += 1 + below(V / 4 + 1)) {
            ids[n] = id;
            values[n++] = below(3) == 0 ? 100.0f : (float) (200.0 * uniform() - 100.0);
        }
        s->num_bias = n;
        s->bias_ids = ids;
        s->bias_values = values;
    }
    if (below(4) == 0) { /* allowed tokens: dense or sparse, sometimes short of V or past it */
        static uint32_t words[201088 / 32 + 2];
        const size_t need = (V + 31) / 32;
        size_t n = need;
        switch (below(4)) {
        case 0: n = 1 + below((uint32_t) need); break;
        case 1: n = need + 1; break;
        default: break;
        }
        const int sparse = below(2) == 0;
        for (size_t i = 0; i < n; i++) words[i] = sparse ? 0u : (uint32_t) rng_next();
        for (uint32_t k = 0, m = 1 + below(4); k < m; k++) {
            const uint32_t id = below(n * 32 < V ? (uint32_t) n * 32 : V); /* one allowed id below V at least */
            words[id / 32] |= 1u << (id % 32);
        }
        s->allow_words = n;
        s->allow = words;
    }
    s->seed = rng_next();
}

static void test_random(uint32_t V, unsigned iterations) {
    float* x = malloc(V * sizeof(float));
    uint32_t history[200];
    for (unsigned it = 0; it < iterations; it++) {
        const enum shape shape = (enum shape) below(num_shapes);
        fill(x, V, shape);
        struct gptoss_sampler s;
        random_params(&s, V);
        size_t history_size = 0;
        if (s.presence_penalty != 0.0f) {
            history_size = 1 + below(200);
            for (size_t i = 0; i < history_size; i++) {
                /* repeats (a few ids), any id, and ids >= V (ignored) */
                const uint32_t r = below(10);
                history[i] = r < 4 ? below(V < 5 ? V : 5) : r < 9 ? below(V) : V + below(5);
            }
        }
        char what[64];
        snprintf(what, sizeof(what), "random %s", shape_names[shape]);
        compare(what, x, V, &s, history, history_size, rng_next() % 100000);
    }
    free(x);
}

/* ---- near ties ------------------------------------------------------------------------------- */

/* The draw's prefix sums C_1..C_n over all V ids (oracle arithmetic; all valid), in draw
 * order (by_id = 0: sorted; 1: by id). */
static void prefix_sums(const float* x, uint32_t V, double inv_t, int by_id, double* C, uint32_t* ids) {
    for (uint32_t i = 0; i < V; i++) ids[i] = i;
    sort_values = x;
    qsort(ids, V, sizeof(uint32_t), cmp_desc);
    const double m = (double) x[ids[0]];
    double cum = 0.0;
    for (uint32_t i = 0; i < V; i++) {
        cum += exp(((double) x[by_id ? i : ids[i]] - m) * inv_t);
        C[i] = cum;
    }
}

/* Tunes the total C_n (two "tuner" ids last in the draw order) until fraction * C_n equals
 * a prefix sum C_k as nearly as floats allow, then draws with the tie and gaps around it.
 * mode 0: top-p = fraction, the boundary of the nucleus; mode 1: top-k = V, top-p off, an
 * offset whose u is the fraction: the boundary of the drawn id; mode 2: the same by id
 * (top-k and top-p off; the tuners are the last ids). */
static void near_tie(uint32_t V, int mode) {
    float* x = malloc(V * sizeof(float));
    double* C = malloc(V * sizeof(double));
    uint32_t* ids = malloc(V * sizeof(uint32_t));
    const uint32_t head = V - 2, tuner1 = V - 2, tuner2 = V - 1;
    struct gptoss_sampler s = {.temperature = (float) (0.5 + uniform()), .top_p = 1.0f, .seed = rng_next()};
    const double t = (double) s.temperature, inv_t = 1.0 / t;
    for (uint32_t i = 0; i < head; i++) x[i] = (float) (0.5 * normal());
    float m = x[0];
    for (uint32_t i = 0; i < head; i++) m = x[i] > m ? x[i] : m;
    double smallest = 1.0; /* the tuners stay below every head id */
    for (uint32_t i = 0; i < head; i++) smallest = fmin(smallest, exp(((double) x[i] - m) * inv_t));
    x[tuner1] = (float) (m + t * log(0.1 * smallest));
    x[tuner2] = (float) (m + t * log(1e-6 * smallest));
    prefix_sums(x, V, inv_t, mode == 2, C, ids);

    uint64_t offset = 0;
    double fraction;
    uint32_t k; /* C_k (1-based) is the boundary */
    if (mode == 0) {
        k = 1 + below(head / 2);
        s.top_p = (float) (C[k - 1] / C[V - 1]);
        fraction = (double) s.top_p;
    } else {
        s.top_k = mode == 1 ? V : 0;
        for (offset = 1;; offset++) { /* an offset whose boundary is within the tuners' reach */
            const uint32_t word = gptoss_random_u32(offset, s.seed + GPTOSS_SAMPLER_SEED_OFFSET);
            fraction = (double) (word & 0xFFFFFFu) * 0x1.0p-24;
            uint32_t i = 0;
            while (i < V && C[i] <= fraction * C[V - 1]) i++;
            if (i < head && fraction > 0.0 && C[i] / fraction - C[V - 1] < 0.05 * smallest) {
                k = i + 1;
                break;
            }
        }
    }
    for (int round = 0; round < 3; round++) { /* tuner1 coarse, then tuner2 fine */
        const uint32_t tuner = round == 0 ? tuner1 : tuner2;
        const double lacking = C[k - 1] / fraction - C[V - 1];
        const double mass = exp(((double) x[tuner] - m) * inv_t) + lacking;
        x[tuner] = (float) (m + t * log(mass));
        prefix_sums(x, V, inv_t, mode == 2, C, ids);
    }
    /* the tie itself (tuner2 over its neighbouring floats), then gaps of +-10^-16 .. 10^-8 of
     * C_n (tuner2 below 10^-11, else tuner1), so that some are decided by the buckets */
    const float tuned1 = x[tuner1], tuned2 = x[tuner2];
    static const char* names[] = {"near tie (top-p boundary)", "near tie (drawn boundary)",
                                  "near tie (drawn boundary, by id)"};
    const char* what = names[mode];
    float v = tuned2;
    for (int step = 0; step < 8; step++) v = nextafterf(v, -INFINITY);
    for (int step = 0; step < 17; step++, v = nextafterf(v, INFINITY)) {
        x[tuner2] = v;
        compare(what, x, V, &s, NULL, 0, offset);
    }
    for (int e = -16; e <= -8; e++) {
        for (int sign = -1; sign <= 1; sign += 2) {
            const uint32_t tuner = e < -11 ? tuner2 : tuner1;
            x[tuner1] = tuned1;
            x[tuner2] = tuned2;
            const double mass = exp(((double) x[tuner] - m) * inv_t) + sign * pow(10.0, e) * C[V - 1];
            x[tuner] = (float) (m + t * log(mass));
            compare(what, x, V, &s, NULL, 0, offset);
        }
    }
    free(x);
    free(C);
    free(ids);
}

/* ---- fixed cases ------------------------------------------------------------------------------ */

static void test_fixed(void) {
    /* equal logits: every prefix sum is an integer; top_p 0.5 of an even count is a tie */
    const uint32_t V = 1024;
    float* x = malloc(V * sizeof(float));
    for (uint32_t i = 0; i < V; i++) x[i] = 1.5f;
    const uint64_t exact_before = fallback_draws();
    for (uint64_t offset = 0; offset < 20; offset++) {
        struct gptoss_sampler s = {.temperature = 1.0f, .top_p = 0.5f, .seed = offset};
        compare("equal logits, top-p 0.5", x, V, &s, NULL, 0, offset);
        s.top_p = 1.0f;
        s.top_k = V;
        compare("equal logits, top-k V", x, V, &s, NULL, 0, offset);
    }
    CHECK(fallback_draws() > exact_before, "equal logits at a top-p boundary did not take the exact path");
    /* one finite logit among -inf; +inf among finite; all NaN; NaN and -inf */
    for (uint32_t i = 0; i < V; i++) x[i] = -INFINITY;
    x[700] = 3.0f;
    struct gptoss_sampler s = {.temperature = 1.0f, .top_p = 0.9f, .seed = 1};
    compare("one finite logit", x, V, &s, NULL, 0, 5);
    x[300] = INFINITY;
    x[900] = INFINITY;
    compare("+inf logits", x, V, &s, NULL, 0, 5);
    for (uint32_t i = 0; i < V; i++) x[i] = NAN;
    compare("all NaN", x, V, &s, NULL, 0, 5);
    for (uint32_t i = 0; i < V; i += 2) x[i] = -INFINITY;
    compare("NaN and -inf", x, V, &s, NULL, 0, 5);
    free(x);
}

/* gptoss_sampler_set_logit_bias: what it refuses (the sampler keeps its bias), what it keeps
 * (sorted by id), and that a bias decides a greedy draw. */
static void test_logit_bias_api(void) {
    gptoss_sampler_t s = NULL;
    CHECK(gptoss_sampler_create(&s) == gptoss_status_success, "sampler_create");
    const uint32_t ids[3] = {900, 7, 300};
    const float biases[3] = {-100.0f, 100.0f, 0.5f};
    CHECK(gptoss_sampler_set_logit_bias(s, 3, ids, biases) == gptoss_status_success, "set 3: %s", gptoss_last_error());
    CHECK(s->num_bias == 3 && s->bias_ids[0] == 7 && s->bias_ids[1] == 300 && s->bias_ids[2] == 900 &&
              s->bias_values[0] == 100.0f && s->bias_values[2] == -100.0f,
          "the bias is kept sorted by id");
    const uint32_t dup[2] = {5, 5};
    const float nan_bias[2] = {1.0f, NAN};
    const float two[2] = {1.0f, 2.0f};
    const uint32_t pair[2] = {5, 6};
    CHECK(gptoss_sampler_set_logit_bias(s, 2, dup, two) == gptoss_status_invalid_argument &&
              strstr(gptoss_last_error(), "token id 5") != NULL,
          "a repeated id is refused, named: %s", gptoss_last_error());
    CHECK(gptoss_sampler_set_logit_bias(s, 2, pair, nan_bias) == gptoss_status_invalid_argument &&
              strstr(gptoss_last_error(), "token id 6") != NULL,
          "a NaN bias is refused, its id named: %s", gptoss_last_error());
    CHECK(gptoss_sampler_set_logit_bias(s, 2, NULL, two) == gptoss_status_invalid_argument, "NULL ids refused");
    CHECK(gptoss_sampler_set_logit_bias(s, GPTOSS_SAMPLER_MAX_LOGIT_BIAS + 1u, pair, two) ==
              gptoss_status_invalid_argument,
          "more than the maximum refused");
    CHECK(gptoss_sampler_set_logit_bias(NULL, 0, NULL, NULL) == gptoss_status_invalid_argument, "NULL sampler");
    CHECK(s->num_bias == 3 && s->bias_ids[1] == 300, "a refused bias leaves the earlier one");
    CHECK(gptoss_sampler_check_vocabulary(s, 901) == gptoss_status_success, "ids below 901 fit");
    CHECK(gptoss_sampler_check_vocabulary(s, 900) == gptoss_status_invalid_argument &&
              strstr(gptoss_last_error(), "900") != NULL,
          "id 900 is outside a vocabulary of 900: %s", gptoss_last_error());
    CHECK(gptoss_sampler_get_mode(s, gptoss_sampling_kernels) == gptoss_sampler_mode_host,
          "a biased greedy sampler draws on the host, also where the kernels are asked for");
    /* greedy: +100 on id 7 wins over the largest logit (id 900, biased down) */
    const uint32_t V = 1000;
    prepare(V);
    for (uint32_t i = 0; i < V; i++) g_logits_lib[i] = (float) (i % 17) * 0.1f;
    g_logits_lib[900] = 50.0f;
    const uint32_t got = gptoss_sampler_pick_host(s, g_logits_lib, NULL, 0, 0, &g_lib);
    CHECK(got == 7, "greedy with the bias drew %u, not 7", got);
    CHECK(gptoss_sampler_set_logit_bias(s, 0, NULL, NULL) == gptoss_status_success && s->num_bias == 0 &&
              gptoss_sampler_get_mode(s, gptoss_sampling_kernels) == gptoss_sampler_mode_greedy,
          "num 0 removes the bias");
    gptoss_sampler_release(s);
}

/* gptoss_sampler_set_allowed_tokens: what it refuses (the sampler keeps its mask), that a
 * mask decides a greedy draw and moves it to the host, the vocabulary check. */
static void test_allowed_api(void) {
    gptoss_sampler_t s = NULL;
    CHECK(gptoss_sampler_create(&s) == gptoss_status_success, "create");
    uint32_t words[40] = {0};
    words[0] = 1u << 7;             /* id 7 */
    words[900 / 32] |= 1u << (900 % 32); /* id 900 */
    words[33] = 1u << 5;            /* id 1061: past a vocabulary of 1000 */
    CHECK(gptoss_sampler_set_allowed_tokens(s, 34, words) == gptoss_status_success, "set: %s", gptoss_last_error());
    CHECK(s->allow_words == 34 && s->allow[0] == (1u << 7), "the words are kept");
    words[0] = 0;
    CHECK(s->allow[0] == (1u << 7), "the words are copied");
    const uint32_t none[3] = {0, 0, 0};
    CHECK(gptoss_sampler_set_allowed_tokens(s, 3, none) == gptoss_status_invalid_argument &&
              strstr(gptoss_last_error(), "allows no token") != NULL,
          "a mask allowing nothing is refused: %s", gptoss_last_error());
    CHECK(gptoss_sampler_set_allowed_tokens(s, 3, NULL) == gptoss_status_invalid_argument, "NULL words refused");
    CHECK(gptoss_sampler_set_allowed_tokens(NULL, 0, NULL) == gptoss_status_invalid_argument, "NULL sampler");
    CHECK(s->allow_words == 34 && s->allow[0] == (1u << 7), "a refused mask leaves the earlier one");
    CHECK(gptoss_sampler_get_mode(s, gptoss_sampling_kernels) == gptoss_sampler_mode_host,
          "a greedy sampler with a mask draws on the host, also where the kernels are asked for");
    CHECK(gptoss_sampler_check_vocabulary(s, 1000) == gptoss_status_success, "ids 7 and 900 are below 1000");
    /* greedy: the best allowed id (900 at 50 over 7), not the largest logit (id 3) */
    const uint32_t V = 1000;
    prepare(V);
    for (uint32_t i = 0; i < V; i++) g_logits_lib[i] = (float) (i % 17) * 0.1f;
    g_logits_lib[3] = 99.0f;
    g_logits_lib[900] = 50.0f;
    uint32_t got = gptoss_sampler_pick_host(s, g_logits_lib, NULL, 0, 0, &g_lib);
    CHECK(got == 900, "greedy with the mask drew %u, not 900", got);
    /* sampled at a high temperature: only 7 and 900, whatever the seed */
    CHECK(gptoss_sampler_set_temperature(s, 50.0f) == gptoss_status_success, "temperature");
    for (uint64_t off = 0; off < 64; off++) {
        for (uint32_t i = 0; i < V; i++) g_logits_lib[i] = (float) (i % 17) * 0.1f;
        got = gptoss_sampler_pick_host(s, g_logits_lib, NULL, 0, off, &g_lib);
        CHECK(got == 7 || got == 900, "a sampled draw with the mask gave %u (offset %llu)", got,
              (unsigned long long) off);
    }
    /* only id 1061 allowed: nothing below a vocabulary of 1000 */
    uint32_t far[34] = {0};
    far[33] = 1u << 5;
    CHECK(gptoss_sampler_set_allowed_tokens(s, 34, far) == gptoss_status_success, "set far");
    CHECK(gptoss_sampler_check_vocabulary(s, 1000) == gptoss_status_invalid_argument &&
              strstr(gptoss_last_error(), "1000") != NULL,
          "a mask with nothing below the vocabulary is refused at the draw: %s", gptoss_last_error());
    CHECK(gptoss_sampler_check_vocabulary(s, 1062) == gptoss_status_success, "id 1061 fits 1062");
    CHECK(gptoss_sampler_check_vocabulary(s, 1061) == gptoss_status_invalid_argument, "id 1061 does not fit 1061");
    CHECK(gptoss_sampler_set_temperature(s, 0.0f) == gptoss_status_success &&
              gptoss_sampler_set_allowed_tokens(s, 0, NULL) == gptoss_status_success && s->allow == NULL &&
              gptoss_sampler_get_mode(s, gptoss_sampling_kernels) == gptoss_sampler_mode_greedy,
          "num_words 0 removes the mask");
    gptoss_sampler_release(s);
}

/* Runs a section and prints how its sorted draws were decided. */
static void section(const char* name, void (*run)(void)) {
    const uint64_t fast = fast_draws(), fallback = fallback_draws();
    const unsigned draws = g_draws;
    run();
    printf("  %-28s %6u draws: %6llu bucketed, %5llu handed to the exact path\n", name, g_draws - draws,
           (unsigned long long) (fast_draws() - fast), (unsigned long long) (fallback_draws() - fallback));
}

static void run_small(void) {
    static const uint32_t sizes[] = {1, 2, 3, 7, 64, 100, 1000, 4099, 20000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) test_random(sizes[i], sizes[i] > 5000 ? 300 : 2000);
}
static void run_real(void) { test_random(201088, 60); }
static void run_near_ties(void) {
    const unsigned draws = g_kernel_draws, differ = g_kernel_differ;
    g_kernels_strict = 0;
    for (int i = 0; i < 40; i++) {
        for (int mode = 0; mode < 3; mode++) near_tie(50 + below(400), mode);
    }
    g_kernels_strict = 1;
    printf("  (near ties: the kernels' token differs from the host's in %u of %u draws)\n", g_kernel_differ - differ,
           g_kernel_draws - draws);
}

int main(int argc, char** argv) {
    const uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : (uint64_t) time(NULL);
    printf("test_sampler seed %llu\n", (unsigned long long) seed);
    g_rng = seed;
    if (gptoss_backend_create_cpu(1, &g_cpu) != gptoss_status_success) {
        fprintf(stderr, "test_sampler: CPU backend: %s\n", gptoss_last_error());
        return 1;
    }

    section("fixed cases", test_fixed);
    section("logit bias", test_logit_bias_api);
    section("allowed tokens", test_allowed_api);
    section("random, V 1..20000", run_small);
    section("random, V 201088", run_real);
    section("near ties", run_near_ties);
    CHECK(fast_draws() > 0 && fallback_draws() > 0, "both paths must run");
    CHECK(g_masked_draws > 0, "draws with a mask must run");
    printf("  (random draws with a mask of allowed tokens: %u)\n", g_masked_draws);
    printf("  (random draws at a near tie, where the kernels' token differed from the host's: %u)\n", g_random_ties);
    gptoss_sampler_scratch_free(&g_lib);
    gptoss_backend_release(g_cpu);
    return finish();
}
