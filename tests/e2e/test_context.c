/* Context and sampler API behaviour on a small model file (argv[1]):
 *   - argument and state errors (bad ids append nothing, overflow keeps what fit, empty
 *     context, small buffers);
 *   - no KV hole: after sampling, appending more tokens gives the same logits as a fresh
 *     context fed the same ids;
 *   - KV reuse after reset (same prefix) and truncation (different id) give the logits of
 *     a fresh context;
 *   - samplers: same seed same tokens, top-k 1 = greedy, temperature 0 = greedy, bad
 *     parameters rejected. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gptoss/engine.h>

static int failures = 0;
#define CHECK(cond, ...)                                                \
    do {                                                                \
        if (!(cond)) {                                                  \
            failures++;                                                 \
            fprintf(stderr, "FAIL line %d: %s: ", __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                               \
            fprintf(stderr, " [%s]\n", gptoss_last_error());            \
        }                                                               \
    } while (0)

static gptoss_model_t model;
static uint32_t V;

static double max_rel_diff(const float* a, const float* b) {
    double m = 0.0, d = 0.0;
    for (uint32_t i = 0; i < V; i++) {
        m = fmax(m, fabs((double) b[i]));
        d = fmax(d, fabs((double) a[i] - (double) b[i]));
    }
    return d / m;
}

/* Logits of a fresh context fed `ids`. */
static void fresh_logits(const uint32_t* ids, size_t n, size_t batch, float* out) {
    gptoss_context_t c;
    enum gptoss_status st = gptoss_context_create(model, 256, batch, &c);
    CHECK(st == gptoss_status_success, "create");
    st = gptoss_context_append_tokens(c, n, ids);
    CHECK(st == gptoss_status_success, "append");
    st = gptoss_context_get_logits(c, out, V);
    CHECK(st == gptoss_status_success, "logits");
    gptoss_context_release(c);
}

static int memchr_u32(const uint32_t* a, size_t n, uint32_t v) {
    for (size_t i = 0; i < n; i++) {
        if (a[i] == v) return 1;
    }
    return 0;
}

int main(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_context MODEL\n");
        return 2;
    }
    gptoss_backend_t backend;
    if (gptoss_backend_create_cpu(2, &backend) != gptoss_status_success) return 1;
    if (gptoss_model_create_from_file(argv[1], backend, &model) != gptoss_status_success) {
        fprintf(stderr, "cannot load %s: %s\n", argv[1], gptoss_last_error());
        return 1;
    }
    gptoss_tokenizer_t tok;
    gptoss_model_get_tokenizer(model, &tok);
    gptoss_tokenizer_get_num_tokens(tok, &V);
    float* a = malloc(V * sizeof(float));
    float* b = malloc(V * sizeof(float));
    enum gptoss_status st;
    gptoss_context_t ctx;

    /* ---- GPTOSS_MODEL_NO_MMAP: a private copy of the weights gives the same logits ---- */
    {
        gptoss_model_t copied = NULL;
        st = gptoss_model_create_from_file_ex(argv[1], backend, 0x80u, &copied);
        CHECK(st == gptoss_status_invalid_argument && copied == NULL, "unknown flag accepted (%d)", st);
        st = gptoss_model_create_from_file_ex(argv[1], backend, GPTOSS_MODEL_NO_MMAP, &copied);
        CHECK(st == gptoss_status_success, "no-mmap load");
        if (st == gptoss_status_success) {
            const uint32_t ids[5] = {7, 70, 700, 7000, 17};
            fresh_logits(ids, 5, 4, a);
            gptoss_model_t mapped = model;
            model = copied;
            fresh_logits(ids, 5, 4, b);
            model = mapped;
            CHECK(memcmp(a, b, V * sizeof(float)) == 0, "no-mmap logits differ by %g", max_rel_diff(a, b));
            gptoss_model_release(copied);
        }
    }

    /* ---- params: bad fields are refused; other settings give the same logits ---- */
    {
        struct gptoss_context_params params;
        const uint32_t ids[9] = {9, 90, 900, 9000, 19, 190, 1900, 19000, 29};
        fresh_logits(ids, 9, 4, a);
        gptoss_context_params_init(&params);
        CHECK(params.backend == NULL && params.context_length == 0 && params.max_batch_tokens == 0 &&
                  params.moe_dense_min_rows == 0 && params.fused_ops == 1 && params.graphs == 1 && params.profile == 0,
              "defaults");
        gptoss_context_t none = NULL;
        const char* field[3] = {"fused_ops", "graphs", "profile"};
        for (int f = 0; f < 3; f++) {
            gptoss_context_params_init(&params);
            int* flag = f == 0 ? &params.fused_ops : f == 1 ? &params.graphs : &params.profile;
            *flag = 2;
            st = gptoss_context_create_with_params(model, &params, &none);
            CHECK(st == gptoss_status_invalid_argument && none == NULL && strstr(gptoss_last_error(), field[f]) != NULL,
                  "%s 2 accepted (%d)", field[f], st);
        }
        gptoss_context_params_init(&params);
        params.context_length = 1u << 30;
        st = gptoss_context_create_with_params(model, &params, &none);
        CHECK(st == gptoss_status_invalid_argument && none == NULL, "context_length 2^30 accepted (%d)", st);
        /* fused off, profiling on, another CPU backend of the same ISA: the same bits */
        gptoss_backend_t other = NULL;
        CHECK(gptoss_backend_create_cpu(1, &other) == gptoss_status_success, "second backend");
        for (int v = 0; v < 4; v++) {
            gptoss_context_params_init(&params);
            if (v == 3) memset(&params, 0, sizeof(params)); /* no fusions, no graphs */
            params.context_length = 64;
            params.max_batch_tokens = 4;
            if (v == 0) params.fused_ops = 0;
            if (v == 1) params.profile = 1;
            if (v == 2) params.backend = other;
            gptoss_context_t c2 = NULL;
            st = gptoss_context_create_with_params(model, &params, &c2);
            CHECK(st == gptoss_status_success, "create, variant %d", v);
            if (st != gptoss_status_success) continue;
            st = gptoss_context_append_tokens(c2, 9, ids);
            if (st == gptoss_status_success) st = gptoss_context_get_logits(c2, b, V);
            CHECK(st == gptoss_status_success && memcmp(a, b, V * sizeof(float)) == 0,
                  "variant %d: logits differ by %g", v, max_rel_diff(a, b));
            if (v == 1) {
                FILE* f = tmpfile();
                CHECK(f != NULL && gptoss_context_print_profile(c2, f) == gptoss_status_success && ftell(f) > 0,
                      "profile table");
                if (f != NULL) fclose(f);
            }
            gptoss_context_release(c2);
        }
        gptoss_backend_release(other);
    }

    /* ---- errors and bookkeeping ---- */
    st = gptoss_context_create(model, 8, 4, &ctx);
    CHECK(st == gptoss_status_success, "create");
    size_t n = 99;
    uint32_t out[16];
    st = gptoss_context_sample(ctx, NULL, 1, out, &n);
    CHECK(st == gptoss_status_invalid_state, "sample on an empty context gave %d", st);
    st = gptoss_context_get_logits(ctx, a, V);
    CHECK(st == gptoss_status_invalid_state, "logits of an empty context gave %d", st);
    const uint32_t bad[3] = {1, V, 2};
    st = gptoss_context_append_tokens(ctx, 3, bad);
    CHECK(st == gptoss_status_invalid_argument, "id V accepted (%d)", st);
    gptoss_context_get_num_tokens(ctx, &n);
    CHECK(n == 0, "bad append left %zu tokens", n);
    const uint32_t ten[10] = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
    st = gptoss_context_append_tokens(ctx, 10, ten);
    CHECK(st == gptoss_status_context_overflow, "overflow gave %d", st);
    gptoss_context_get_num_tokens(ctx, &n);
    CHECK(n == 8, "overflow kept %zu tokens, want 8", n);
    st = gptoss_context_get_tokens(ctx, out, 4, &n);
    CHECK(st == gptoss_status_insufficient_memory && n == 8, "small buffer: %d, %zu", st, n);
    st = gptoss_context_sample(ctx, NULL, 3, out, &n);
    CHECK(st == gptoss_status_context_overflow && n == 0, "sample on a full context: %d, %zu", st, n);
    st = gptoss_context_get_logits(ctx, a, V - 1);
    CHECK(st == gptoss_status_invalid_argument, "small logits buffer gave %d", st);
    /* full context, logits still available */
    st = gptoss_context_get_logits(ctx, a, V);
    CHECK(st == gptoss_status_success, "logits of a full context");
    fresh_logits(ten, 8, 3, b);
    CHECK(max_rel_diff(a, b) < 1e-5, "full-context logits differ by %g", max_rel_diff(a, b));
    /* sample fills the context and stops */
    gptoss_context_reset(ctx);
    gptoss_context_append_tokens(ctx, 5, ten);
    st = gptoss_context_sample(ctx, NULL, 10, out, &n);
    CHECK(st == gptoss_status_success && n == 3, "sample to the end: %d, %zu (want 3)", st, n);
    gptoss_context_release(ctx);

    /* ---- no KV hole: sample, then append and compare with a fresh context ---- */
    st = gptoss_context_create(model, 256, 16, &ctx);
    CHECK(st == gptoss_status_success, "create");
    uint32_t ids[64];
    for (int i = 0; i < 20; i++) ids[i] = (uint32_t) (1000 + 37 * i);
    gptoss_context_append_tokens(ctx, 20, ids);
    st = gptoss_context_process(ctx);
    CHECK(st == gptoss_status_success, "process");
    st = gptoss_context_sample(ctx, NULL, 3, out, &n);
    CHECK(st == gptoss_status_success && n == 3, "sample 3");
    const uint32_t more[2] = {555, 777};
    gptoss_context_append_tokens(ctx, 2, more);
    st = gptoss_context_get_logits(ctx, a, V);
    CHECK(st == gptoss_status_success, "logits");
    memcpy(ids + 20, out, 3 * sizeof(uint32_t));
    memcpy(ids + 23, more, 2 * sizeof(uint32_t));
    fresh_logits(ids, 25, 16, b);
    CHECK(max_rel_diff(a, b) < 1e-5, "KV hole? logits differ by %g", max_rel_diff(a, b));

    /* ---- reuse after reset: same prefix, then a different token (truncation) ---- */
    gptoss_context_reset(ctx);
    gptoss_context_append_tokens(ctx, 22, ids);
    st = gptoss_context_get_logits(ctx, a, V);
    CHECK(st == gptoss_status_success, "logits after reset");
    fresh_logits(ids, 22, 16, b);
    CHECK(max_rel_diff(a, b) < 1e-5, "reuse: logits differ by %g", max_rel_diff(a, b));
    ids[22] = 4242;
    gptoss_context_append_tokens(ctx, 3, ids + 22);
    st = gptoss_context_get_logits(ctx, a, V);
    CHECK(st == gptoss_status_success, "logits after truncation");
    fresh_logits(ids, 25, 16, b);
    CHECK(max_rel_diff(a, b) < 1e-5, "truncation: logits differ by %g", max_rel_diff(a, b));
    size_t nt = 0;
    uint32_t got[64];
    gptoss_context_get_tokens(ctx, got, 64, &nt);
    CHECK(nt == 25 && memcmp(got, ids, 25 * sizeof(uint32_t)) == 0, "tokens after truncation");

    /* ---- samplers ---- */
    gptoss_sampler_t s;
    gptoss_sampler_create(&s);
    CHECK(gptoss_sampler_set_temperature(s, -1.0f) == gptoss_status_invalid_argument, "negative temperature");
    CHECK(gptoss_sampler_set_temperature(s, NAN) == gptoss_status_invalid_argument, "NaN temperature");
    CHECK(gptoss_sampler_set_top_p(s, 0.0f) == gptoss_status_invalid_argument, "top_p 0");
    CHECK(gptoss_sampler_set_top_p(s, 1.5f) == gptoss_status_invalid_argument, "top_p 1.5");
    uint32_t greedy[8], t1[8], t2[8];
    gptoss_context_reset(ctx);
    gptoss_context_append_tokens(ctx, 20, ids);
    gptoss_context_sample(ctx, NULL, 8, greedy, &n);
    struct { float temp; uint32_t top_k; float top_p; int same_as_greedy; } cases[] = {
        {0.0f, 0, 1.0f, 1}, {1.0f, 1, 1.0f, 1}, {1.0f, 0, 1e-7f, 1}, {0.7f, 0, 1.0f, 0}, {1.0f, 50, 0.9f, 0},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        gptoss_sampler_set_temperature(s, cases[c].temp);
        gptoss_sampler_set_top_k(s, cases[c].top_k);
        gptoss_sampler_set_top_p(s, cases[c].top_p);
        gptoss_sampler_set_seed(s, 1234);
        for (int rep = 0; rep < 2; rep++) {
            gptoss_context_reset(ctx);
            gptoss_context_append_tokens(ctx, 20, ids);
            st = gptoss_context_sample(ctx, s, 8, rep ? t2 : t1, &n);
            CHECK(st == gptoss_status_success && n == 8, "case %zu sample", c);
        }
        CHECK(memcmp(t1, t2, sizeof(t1)) == 0, "case %zu: same seed, different tokens", c);
        if (cases[c].same_as_greedy) CHECK(memcmp(t1, greedy, sizeof(t1)) == 0, "case %zu is not greedy", c);
    }
    /* logit bias: +100 on a token the greedy run never drew makes every greedy draw it; -100
     * on the greedy run's first token keeps it out; an id past the vocabulary is refused by
     * the draw call and nothing is sampled */
    {
        uint32_t forced = 0;
        while (memchr_u32(greedy, 8, forced)) forced++;
        const float up = 100.0f, down = -100.0f;
        gptoss_sampler_set_temperature(s, 0.0f);
        gptoss_sampler_set_top_k(s, 0);
        gptoss_sampler_set_top_p(s, 1.0f);
        CHECK(gptoss_sampler_set_logit_bias(s, 1, &forced, &up) == gptoss_status_success, "set bias");
        gptoss_context_reset(ctx);
        gptoss_context_append_tokens(ctx, 20, ids);
        st = gptoss_context_sample(ctx, s, 8, t1, &n);
        CHECK(st == gptoss_status_success && n == 8, "biased sample: %s", gptoss_last_error());
        for (size_t i = 0; i < n; i++) CHECK(t1[i] == forced, "biased draw %zu is %u, not %u", i, t1[i], forced);
        CHECK(gptoss_sampler_set_logit_bias(s, 1, &greedy[0], &down) == gptoss_status_success, "set bias down");
        gptoss_context_reset(ctx);
        gptoss_context_append_tokens(ctx, 20, ids);
        st = gptoss_context_sample(ctx, s, 1, t1, &n);
        CHECK(st == gptoss_status_success && n == 1 && t1[0] != greedy[0], "-100 on token %u: drew %u", greedy[0],
              t1[0]);
        uint32_t V = 0;
        gptoss_tokenizer_get_num_tokens(tok, &V);
        const uint32_t past = 1u << 30;
        CHECK(gptoss_sampler_set_logit_bias(s, 1, &past, &up) == gptoss_status_success, "set bias past");
        size_t before = 0, after = 0;
        gptoss_context_get_num_tokens(ctx, &before);
        n = 99;
        st = gptoss_context_sample(ctx, s, 4, t1, &n);
        char message[512];
        snprintf(message, sizeof(message), "%s", gptoss_last_error());
        gptoss_context_get_num_tokens(ctx, &after);
        CHECK(st == gptoss_status_invalid_argument && n == 0 && after == before && strstr(message, "1073741824") != NULL,
              "a bias past the vocabulary (%u tokens): %d, %zu drawn, %s", V, (int) st, n, message);
    }
    gptoss_sampler_release(s);
    gptoss_context_release(ctx);

    free(a);
    free(b);
    gptoss_tokenizer_release(tok);
    gptoss_model_release(model);
    gptoss_backend_release(backend);
    if (failures == 0) printf("test_context: all checks passed\n");
    return failures == 0 ? 0 : 1;
}
