/* The two ways a context draws tokens (gptoss_context_params.sampling: the host sampler,
 * and the kernels f32_apply_penalties + f32_sample_logits on the backend) give the same
 * tokens on a small model file (argv[1]): two contexts on one backend, the same
 * operations on both, for samplers with top-p, top-k, penalties (both signs) and
 * temperature 0 with penalties. The operations move the kernels' token counts every way
 * the engine keeps them: a prompt and decode steps (a count copied per token), a reset
 * and the prompt again (the sampled tokens' counts dropped one by one), a much shorter
 * prefix (dropped at once), a prefix with other ids after it (a replaced token: all
 * counted again). The logits are the same in both contexts (same backend, same calls), so
 * the tokens can differ only where a draw falls within the rounding of the host's double
 * sums (about 1e-11 of a draw's mass here): none is expected. A third context repeats the
 * second's kernel draws: same seed, same tokens. Temperature alone is not compared: the
 * host way runs f32_softmax + f32_sample there (f32 sums: other tokens at that rounding).
 *
 *   test_sampling MODEL [--backend cpu|cuda]
 *
 * Output: PASS/FAIL lines, then "N passed, N failed, N skipped". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gptoss/engine.h>

static int passed, failed;

static void report(int ok, const char* name, const char* detail) {
    printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name, detail[0] ? ": " : "", detail);
    if (ok) passed++;
    else failed++;
}

struct sampler_spec {
    const char* name;
    float temperature, top_p, presence, frequency;
    uint32_t top_k;
};

static const struct sampler_spec samplers[] = {
    {"top-p 0.9", 1.0f, 0.9f, 0.0f, 0.0f, 0},
    {"top-k 40 + penalties", 0.7f, 1.0f, 1.5f, 0.8f, 40},
    {"temperature 0 + penalties", 0.0f, 1.0f, 3.0f, 0.0f, 0},
    {"top-p 0.5 + top-k 200 + negative presence", 0.8f, 0.5f, -0.5f, 0.25f, 200},
    {"top-p 0.95 + frequency", 1.2f, 0.95f, 0.0f, 2.0f, 0},
};

#define MAX_OUT 64

/* What a context does, as steps on the token ids; `out` gets the tokens sampled. */
static enum gptoss_status run_steps(gptoss_context_t c, gptoss_sampler_t s, const uint32_t* prompt, uint32_t* out,
                                    size_t* num_out) {
    static const uint32_t other[10] = {1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000};
    enum gptoss_status st;
    size_t got, n = 0;
#define STEP(call)                                         \
    do {                                                   \
        if ((st = (call)) != gptoss_status_success) return st; \
    } while (0)
    /* a prompt, decode steps (the first draw copies every count, then one per token) */
    STEP(gptoss_context_append_tokens(c, 60, prompt));
    STEP(gptoss_context_sample(c, s, 16, out + n, &got));
    n += got;
    /* a reset and the prompt again: the sampled tokens' counts dropped one by one */
    STEP(gptoss_context_reset(c));
    STEP(gptoss_context_append_tokens(c, 60, prompt));
    STEP(gptoss_context_sample(c, s, 8, out + n, &got));
    n += got;
    /* a shorter prefix: 48 counts dropped (copied at once) */
    STEP(gptoss_context_reset(c));
    STEP(gptoss_context_append_tokens(c, 20, prompt));
    STEP(gptoss_context_sample(c, s, 4, out + n, &got));
    n += got;
    /* the prefix with other ids after it: counted tokens replaced */
    STEP(gptoss_context_reset(c));
    STEP(gptoss_context_append_tokens(c, 20, prompt));
    STEP(gptoss_context_append_tokens(c, 10, other));
    STEP(gptoss_context_sample(c, s, 8, out + n, &got));
    n += got;
    /* a few more ids, a few more steps */
    STEP(gptoss_context_append_tokens(c, 3, prompt + 50));
    STEP(gptoss_context_sample(c, s, 4, out + n, &got));
    n += got;
    /* another first id, then many steps from it */
    STEP(gptoss_context_reset(c));
    STEP(gptoss_context_append_tokens(c, 1, prompt + 7));
    STEP(gptoss_context_sample(c, s, 24, out + n, &got));
    n += got;
#undef STEP
    *num_out = n;
    return gptoss_status_success;
}

static gptoss_context_t make_context(gptoss_model_t model, int sampling) {
    struct gptoss_context_params params;
    gptoss_context_params_init(&params);
    params.context_length = 256;
    params.max_batch_tokens = 16;
    params.sampling = sampling;
    gptoss_context_t c = NULL;
    if (gptoss_context_create_with_params(model, &params, &c) != gptoss_status_success) return NULL;
    return c;
}

static void compare(gptoss_model_t model, const struct sampler_spec* spec, const uint32_t* prompt) {
    gptoss_sampler_t s = NULL;
    enum gptoss_status st = gptoss_sampler_create(&s);
    if (st == gptoss_status_success) st = gptoss_sampler_set_temperature(s, spec->temperature);
    if (st == gptoss_status_success) st = gptoss_sampler_set_top_p(s, spec->top_p);
    if (st == gptoss_status_success) st = gptoss_sampler_set_top_k(s, spec->top_k);
    if (st == gptoss_status_success) st = gptoss_sampler_set_presence_penalty(s, spec->presence);
    if (st == gptoss_status_success) st = gptoss_sampler_set_frequency_penalty(s, spec->frequency);
    if (st == gptoss_status_success) st = gptoss_sampler_set_seed(s, 1234);
    const int ways[3] = {gptoss_sampling_host, gptoss_sampling_kernels, gptoss_sampling_kernels};
    uint32_t out[3][MAX_OUT];
    size_t n[3] = {0, 0, 0};
    char detail[512] = "";
    for (int w = 0; w < 3 && st == gptoss_status_success; w++) {
        gptoss_context_t c = make_context(model, ways[w]);
        st = c != NULL ? run_steps(c, s, prompt, out[w], &n[w]) : gptoss_status_insufficient_memory;
        gptoss_context_release(c);
    }
    char name[128];
    snprintf(name, sizeof name, "%s: host = kernels", spec->name);
    if (st != gptoss_status_success) {
        snprintf(detail, sizeof detail, "%s: %s", gptoss_status_to_string(st), gptoss_last_error());
        report(0, name, detail);
    } else {
        size_t first = 0;
        while (first < n[0] && first < n[1] && out[0][first] == out[1][first]) first++;
        if (first < n[0]) {
            snprintf(detail, sizeof detail, "token %zu of %zu: host %u, kernels %u", first, n[0], out[0][first],
                     out[1][first]);
        } else {
            snprintf(detail, sizeof detail, "%zu tokens", n[0]);
        }
        report(n[0] == n[1] && first == n[0], name, detail);
        snprintf(name, sizeof name, "%s: kernels twice, same tokens", spec->name);
        report(n[1] == n[2] && memcmp(out[1], out[2], n[1] * sizeof(uint32_t)) == 0, name, "");
    }
    gptoss_sampler_release(s);
}

int main(int argc, char** argv) {
    if (argc != 2 && !(argc == 4 && strcmp(argv[2], "--backend") == 0)) {
        fprintf(stderr, "usage: test_sampling MODEL [--backend cpu|cuda]\n");
        return 2;
    }
    const int cuda = argc == 4 && strcmp(argv[3], "cuda") == 0;
    gptoss_backend_t backend = NULL;
    enum gptoss_status st = cuda ? gptoss_backend_create_cuda(0, NULL, &backend) : gptoss_backend_create_cpu(2, &backend);
    if (st != gptoss_status_success) {
        printf("SKIP %s backend: %s\n0 passed, 0 failed, 1 skipped\n", cuda ? "cuda" : "cpu", gptoss_last_error());
        return 0;
    }
    gptoss_model_t model = NULL;
    st = gptoss_model_create_from_file(argv[1], backend, &model);
    if (st != gptoss_status_success) {
        fprintf(stderr, "test_sampling: loading %s: %s\n", argv[1], gptoss_last_error());
        gptoss_backend_release(backend);
        return 1;
    }
    uint32_t prompt[60];
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 60; i++) { /* text ids, some repeated (the penalties count them) */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        prompt[i] = i % 4 == 3 ? prompt[i / 2] : (uint32_t) (x % 100000);
    }
    for (size_t i = 0; i < sizeof samplers / sizeof samplers[0]; i++) compare(model, &samplers[i], prompt);
    gptoss_model_release(model);
    gptoss_backend_release(backend);
    printf("%d passed, %d failed, 0 skipped\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
