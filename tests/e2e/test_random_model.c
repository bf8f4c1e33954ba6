/* gptoss_model_create_random on the CPU backend: a random tiny model made in memory runs the
 * forward pass (prefill + 8 greedy tokens), is deterministic for a seed (two creations give
 * bit-identical logits and tokens), differs for another seed, honours num_layers, equals
 * the model file make-model writes for the same seed (one generator: bit-identical logits
 * and tokens), and bad arguments give invalid_argument with a message. Exit 0 on success. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gptoss/offline.h>

#include "files.h"

static int failures = 0;

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);          \
            fprintf(stderr, __VA_ARGS__);                                 \
            fprintf(stderr, " [%s]\n", gptoss_last_error());              \
            failures++;                                                   \
        }                                                                 \
    } while (0)

struct run {
    uint32_t tokens[8];
    size_t num_tokens;
    float* logits; /* after the prompt, f32[V] */
    uint32_t vocab;
};

/* Creates the model (random in memory, or from `file`), prefills a fixed prompt, takes its
 * logits, samples 8 greedy tokens. */
static int run_model(gptoss_backend_t backend, uint64_t seed, uint32_t layers, const char* file, struct run* r) {
    memset(r, 0, sizeof(*r));
    gptoss_model_t model = NULL;
    gptoss_context_t ctx = NULL;
    gptoss_tokenizer_t tok = NULL;
    enum gptoss_status st = file != NULL ? gptoss_model_create_from_file(file, backend, &model)
                                         : gptoss_model_create_random("tiny", layers, seed, backend, &model);
    CHECK(st == gptoss_status_success, "model (tiny, %u, %llu, %s) = %s", layers, (unsigned long long) seed,
          file != NULL ? file : "in memory", gptoss_status_to_string(st));
    if (st != gptoss_status_success) return -1;
    int rc = -1;
    st = gptoss_model_get_tokenizer(model, &tok);
    CHECK(st == gptoss_status_success, "get_tokenizer");
    uint32_t num_tokens = 0;
    gptoss_tokenizer_get_num_tokens(tok, &num_tokens);
    CHECK(num_tokens == 200014, "num_tokens %u, expected 200014 (o200k_harmony)", num_tokens);
    r->vocab = num_tokens;
    uint32_t end_id = 0;
    st = gptoss_tokenizer_get_special_token_id(tok, gptoss_special_token_end, &end_id);
    CHECK(st == gptoss_status_success && end_id == 200007, "<|end|> id %u", end_id);
    size_t max_ctx = 0;
    gptoss_model_get_max_context_length(model, &max_ctx);
    CHECK(max_ctx == 4096, "max context %zu, expected 4096", max_ctx);

    st = gptoss_context_create(model, 64, 0, &ctx);
    CHECK(st == gptoss_status_success, "context_create");
    if (st != gptoss_status_success) goto done;
    static const char prompt[] = "The quick brown fox jumps over the lazy dog.";
    size_t n = 0;
    st = gptoss_context_append_chars(ctx, prompt, strlen(prompt), &n);
    CHECK(st == gptoss_status_success && n > 4, "append_chars gave %zu tokens", n);
    if (st != gptoss_status_success) goto done;
    r->logits = malloc(num_tokens * sizeof(float));
    if (r->logits == NULL) goto done;
    st = gptoss_context_get_logits(ctx, r->logits, num_tokens);
    CHECK(st == gptoss_status_success, "get_logits");
    if (st != gptoss_status_success) goto done;
    size_t finite = 0;
    for (uint32_t i = 0; i < num_tokens; i++) finite += isfinite(r->logits[i]) ? 1 : 0;
    CHECK(finite == num_tokens, "%zu of %u logits are finite", finite, num_tokens);
    st = gptoss_context_sample(ctx, NULL, 8, r->tokens, &r->num_tokens);
    CHECK(st == gptoss_status_success && r->num_tokens == 8, "sample: %s, %zu tokens", gptoss_status_to_string(st),
          r->num_tokens);
    for (size_t i = 0; i < r->num_tokens; i++) CHECK(r->tokens[i] < num_tokens, "token %u", r->tokens[i]);
    rc = st == gptoss_status_success ? 0 : -1;
done:
    gptoss_context_release(ctx);
    gptoss_tokenizer_release(tok);
    gptoss_model_release(model);
    return rc;
}

int main(void) {
    gptoss_backend_t backend = NULL;
    enum gptoss_status st = gptoss_backend_create_cpu(2, &backend);
    if (st != gptoss_status_success) {
        fprintf(stderr, "cannot create the CPU backend: %s\n", gptoss_last_error());
        return 1;
    }

    /* ---- error cases ---- */
    gptoss_model_t model = (gptoss_model_t) (uintptr_t) 0x1;
    st = gptoss_model_create_random("7b", 0, 0, backend, &model);
    CHECK(st == gptoss_status_invalid_argument, "unknown preset gave %s", gptoss_status_to_string(st));
    CHECK(strstr(gptoss_last_error(), "7b") != NULL, "message does not name the preset");
    CHECK(model == (gptoss_model_t) (uintptr_t) 0x1, "model_out written on failure");
    st = gptoss_model_create_random("tiny", 0, 0, backend, NULL);
    CHECK(st == gptoss_status_invalid_argument, "NULL model_out gave %s", gptoss_status_to_string(st));
    CHECK(strstr(gptoss_last_error(), "model_out") != NULL, "message does not name model_out");
    st = gptoss_model_create_random(NULL, 0, 0, backend, &model);
    CHECK(st == gptoss_status_invalid_argument && *gptoss_last_error() != '\0', "NULL preset gave %s",
          gptoss_status_to_string(st));
    st = gptoss_model_create_random("tiny", 0, 0, NULL, &model);
    CHECK(st == gptoss_status_invalid_argument && strstr(gptoss_last_error(), "backend") != NULL,
          "NULL backend gave %s", gptoss_status_to_string(st));
    st = gptoss_model_create_random("tiny", 5000, 0, backend, &model);
    CHECK(st == gptoss_status_invalid_argument && strstr(gptoss_last_error(), "num_layers") != NULL,
          "5000 layers gave %s", gptoss_status_to_string(st));
    CHECK(model == (gptoss_model_t) (uintptr_t) 0x1, "model_out written on failure");
    st = gptoss_model_create_random_ex("tiny", 0, 0, "/nonexistent/o200k.tiktoken", backend, &model);
    CHECK(st == gptoss_status_io_error && strstr(gptoss_last_error(), "/nonexistent/o200k.tiktoken") != NULL,
          "missing vocabulary gave %s", gptoss_status_to_string(st));
    CHECK(model == (gptoss_model_t) (uintptr_t) 0x1, "model_out written on failure");

    /* the file make-model writes for seed 1234 */
    char file[] = "/tmp/gptoss-random-model-XXXXXX";
    const int fd = mkstemp(file);
    struct gptoss_vocab vocab;
    struct gptoss_model_config config;
    int have_file = fd >= 0 && gptoss_model_preset("tiny", &config) == 0 &&
                    gptoss_vocab_load_tiktoken(gptoss_default_vocab_path(), &vocab) == gptoss_status_success;
    if (have_file) {
        have_file = gptoss_write_random_model(file, &config, 1234, &vocab, GPTOSS_WRITE_REPLACE) == gptoss_status_success;
        gptoss_vocab_free(&vocab);
    }
    CHECK(have_file, "writing the random model file %s", file);
    if (fd >= 0) close(fd);

    /* ---- forward pass, determinism, the file ---- */
    struct run a, b, c, d, f;
    memset(&f, 0, sizeof(f));
    const int ra = run_model(backend, 1234, 0, NULL, &a);
    const int rb = run_model(backend, 1234, 0, NULL, &b);
    const int rc = run_model(backend, 99, 0, NULL, &c);
    const int rd = run_model(backend, 1234, 2, NULL, &d);
    const int rf = have_file ? run_model(backend, 1234, 0, file, &f) : -1;
    unlink(file);
    if (ra == 0 && rf == 0) {
        CHECK(memcmp(a.logits, f.logits, a.vocab * sizeof(float)) == 0, "file and memory: logits differ");
        CHECK(memcmp(a.tokens, f.tokens, sizeof(a.tokens)) == 0, "file and memory: tokens differ");
    }
    if (ra == 0 && rb == 0) {
        CHECK(memcmp(a.logits, b.logits, a.vocab * sizeof(float)) == 0, "same seed: logits differ");
        CHECK(memcmp(a.tokens, b.tokens, sizeof(a.tokens)) == 0, "same seed: tokens differ");
        float lo = a.logits[0], hi = a.logits[0];
        for (uint32_t i = 0; i < a.vocab; i++) {
            lo = a.logits[i] < lo ? a.logits[i] : lo;
            hi = a.logits[i] > hi ? a.logits[i] : hi;
        }
        CHECK(hi - lo > 1e-3f, "logits are constant (%g)", (double) lo);
        printf("seed 1234 logits in [%g, %g]; tokens", (double) lo, (double) hi);
        for (int i = 0; i < 8; i++) printf(" %u", a.tokens[i]);
        printf("\n");
    }
    if (ra == 0 && rc == 0) {
        CHECK(memcmp(a.logits, c.logits, a.vocab * sizeof(float)) != 0, "seeds 1234 and 99: identical logits");
        size_t diff = 0;
        for (uint32_t i = 0; i < a.vocab; i++) diff += a.logits[i] != c.logits[i];
        CHECK(diff > a.vocab / 2, "seeds 1234 and 99: only %zu logits differ", diff);
    }
    if (ra == 0 && rd == 0) {
        CHECK(memcmp(a.logits, d.logits, a.vocab * sizeof(float)) != 0, "4 and 2 layers: identical logits");
    }
    CHECK(ra == 0 && rb == 0 && rc == 0 && rd == 0 && rf == 0, "a run failed");
    free(f.logits);
    free(a.logits);
    free(b.logits);
    free(c.logits);
    free(d.logits);
    gptoss_backend_release(backend);
    if (failures != 0) {
        fprintf(stderr, "%d failure(s)\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
