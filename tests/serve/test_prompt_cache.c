/* The prompt cache the server relies on: after gptoss_context_reset, appending a prompt
 * that extends the tokens the context held reuses their K/V (gptoss_context_get_num_kv_tokens
 * counts them: only the rest is computed), and the logits after the cached continuation
 * equal those of a fresh prefill of the same tokens.
 *
 * Exactly: a token's results do not depend on the other tokens of its forward step (batch
 * invariance, engine.h), so however the two runs split the tokens into steps (128-token
 * prefill chunks; a token sampled after process() reruns the last prompt token alone) the
 * logits must be bit-identical. Sizes cross the 128-token chunk and the sliding window (16
 * on the tiny preset), with random ids. */
#include <math.h>
#include <stdbool.h>
#include <time.h>

#include "../engine/test_util.h"
#include <gptoss/engine.h>
#include <gptoss/offline.h>

static uint32_t g_vocab;

static void random_ids(uint32_t* v, size_t n) {
    for (size_t i = 0; i < n; i++) v[i] = (uint32_t) (rng_next() % g_vocab);
}

static size_t kv_tokens(gptoss_context_t c) {
    size_t n = SIZE_MAX;
    gptoss_context_get_num_kv_tokens(c, &n);
    return n;
}

/* Fresh context: the tokens, then their last logits. */
static void fresh_logits(gptoss_model_t m, const uint32_t* ids, size_t n, float* out) {
    gptoss_context_t c = NULL;
    gptoss_context_create(m, 1024, 0, &c);
    CHECK(gptoss_context_append_tokens(c, n, ids) == gptoss_status_success, "append");
    CHECK(kv_tokens(c) == 0, "a new context has nothing cached");
    CHECK(gptoss_context_get_logits(c, out, g_vocab) == gptoss_status_success, "logits: %s", gptoss_last_error());
    gptoss_context_release(c);
}

/* prefix P (+ a divergent tail D run before), then continuation Q */
static void check_case(gptoss_model_t m, size_t np, size_t nd, size_t nq, bool sample_before) {
    uint32_t ids[1024], other[1024];
    random_ids(ids, np + nq);
    memcpy(other, ids, np * sizeof(uint32_t));
    random_ids(other + np, nd);
    if (nd > 0 && other[np] == ids[np]) other[np] = (other[np] + 1) % g_vocab; /* diverge at np */
    float* cached = malloc(g_vocab * sizeof(float));
    float* fresh = malloc(g_vocab * sizeof(float));
    for (uint32_t i = 0; i < g_vocab; i++) cached[i] = fresh[i] = NAN; /* poison */

    gptoss_context_t c = NULL;
    gptoss_context_create(m, 1024, 0, &c);
    gptoss_context_append_tokens(c, np + nd, other);
    CHECK(gptoss_context_process(c) == gptoss_status_success, "first turn");
    size_t expect_kv = np + nd;
    if (sample_before) { /* as the server: the reply's last token is pending, not cached */
        uint32_t t[3];
        size_t got = 0;
        gptoss_context_sample(c, NULL, 3, t, &got);
        expect_kv += got - 1;
        if (nd == 0 && ids[np] == t[0]) ids[np] = (ids[np] + 1) % g_vocab; /* diverge at np */
    }
    CHECK(kv_tokens(c) == expect_kv, "after the first turn: %zu cached, expected %zu", kv_tokens(c), expect_kv);
    gptoss_context_reset(c);
    CHECK(gptoss_context_append_tokens(c, np + nq, ids) == gptoss_status_success, "second turn");
    const size_t reused = kv_tokens(c) < np + nq ? kv_tokens(c) : np + nq;
    /* with a divergent tail (or sampled tokens) the shared prefix is exactly P */
    const size_t expect_reused = (nd > 0 || sample_before) ? np : (np + nd < np + nq ? np + nd : np + nq);
    CHECK(reused == expect_reused, "np %zu nd %zu nq %zu: %zu reused, expected %zu", np, nd, nq, reused, expect_reused);
    CHECK(gptoss_context_get_logits(c, cached, g_vocab) == gptoss_status_success, "cached logits");
    CHECK(kv_tokens(c) == np + nq, "all cached after the continuation: %zu", kv_tokens(c));
    printf("np %4zu nd %3zu nq %4zu%s: reused %4zu, computed %4zu of %4zu", np, nd, nq,
           sample_before ? " (sampled)" : "          ", reused, np + nq - reused, np + nq);
    gptoss_context_release(c);

    fresh_logits(m, ids, np + nq, fresh);
    float maxdiff = 0.0f, maxabs = 0.0f;
    size_t mismatches = 0;
    for (uint32_t i = 0; i < g_vocab; i++) {
        if (memcmp(&cached[i], &fresh[i], sizeof(float)) != 0) mismatches++;
        const float d = fabsf(cached[i] - fresh[i]);
        if (!(d <= maxdiff)) maxdiff = d; /* NaN propagates */
        if (fabsf(fresh[i]) > maxabs) maxabs = fabsf(fresh[i]);
    }
    const double rel = (double) maxdiff / (double) maxabs;
    printf(", logits: %6zu of %u differ, max |diff| / max |logit| %.2e\n", mismatches, g_vocab, rel);
    CHECK(mismatches == 0, "cached continuation logits are bit-identical to a fresh prefill (%zu differ)", mismatches);
    free(cached);
    free(fresh);
}

int main(void) {
    const char* seed_env = getenv("GPTOSS_TEST_SEED");
    g_rng = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t) time(NULL);
    printf("seed %llu (GPTOSS_TEST_SEED)\n", (unsigned long long) g_rng);
    gptoss_backend_t b = NULL;
    gptoss_model_t m = NULL;
    gptoss_tokenizer_t t = NULL;
    if (gptoss_backend_create_cpu(2, &b) != gptoss_status_success ||
        gptoss_model_create_random("tiny", 0, g_rng, b, &m) != gptoss_status_success ||
        gptoss_model_get_tokenizer(m, &t) != gptoss_status_success ||
        gptoss_tokenizer_get_num_tokens(t, &g_vocab) != gptoss_status_success) {
        fprintf(stderr, "set-up: %s\n", gptoss_last_error());
        return 1;
    }
    static const size_t cases[][3] = {
        /* np, nd, nq */
        {1, 0, 1}, {15, 3, 2}, {17, 5, 19}, {127, 9, 1}, {128, 1, 128}, {200, 40, 99}, {300, 0, 211},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        check_case(m, cases[i][0], cases[i][1], cases[i][2], false);
        check_case(m, cases[i][0], cases[i][1], cases[i][2], true);
    }
    gptoss_tokenizer_release(t);
    gptoss_model_release(m);
    gptoss_backend_release(b);
    return finish();
}
