/* The host's share of a decode step (issue 14; a lab, not a test). One sequence of a random
 * model decodes N tokens greedily through gptoss_batch_step, timed on the wall clock; then
 * the decode graph its steps recorded is launched N times back to back
 * (gptoss_batch_lab_replay, engine/batch.h) and timed the same way. The difference a token
 * is what a step spends outside its graph: the argmax kernel and the copy of its token, the
 * host's bookkeeping (KV blocks, the step's rows), the upload of the rows, the graph's
 * launch and the waits. That is the most that launching step N + 1 before step N's token
 * reaches the host (CUDA_NOTES, "the host's share of a decode step") could save.
 *
 *   step_replay [--preset 20b] [--layers L] [-p PROMPT] [-n TOKENS] [-r ROUNDS] [--backend cuda|cpu]
 *
 * The vocabulary is $GPTOSS_VOCAB (else the library's default path). Rounds alternate the
 * two measurements; each prints both. The replays write the last
 * step's K/V slots again with the same values, so the sequence is unchanged by them. On a
 * backend without graphs (CPU) the replay is reported as not applicable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gptoss/engine.h>
#include <gptoss/kernels.h>
#include <gptoss/offline.h>

#include "batch.h"
#include "util.h"

static int fail(const char* what, enum gptoss_status st) {
    fprintf(stderr, "step_replay: %s: %s: %s\n", what, gptoss_status_to_string(st), gptoss_last_error());
    return 1;
}

static int usage(void) {
    fprintf(stderr,
            "usage: step_replay [--preset 20b|120b|tiny] [--layers L] [-p PROMPT] [-n TOKENS] [-r ROUNDS]\n"
            "                   [--backend cuda|cpu]\n");
    return 2;
}

int main(int argc, char** argv) {
    const char* preset = "20b";
    const char* backend_name = "cuda";
    long layers = 0, prompt = 512, tokens = 128, rounds = 3;
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        if (i + 1 >= argc) return usage();
        const char* v = argv[++i];
        char* end = NULL;
        long x = strtol(v, &end, 10);
        if (strcmp(a, "--preset") == 0) {
            preset = v;
            continue;
        }
        if (strcmp(a, "--backend") == 0) {
            backend_name = v;
            continue;
        }
        if (end == v || *end != '\0' || x < 0 || x > 1000000) return usage();
        if (strcmp(a, "--layers") == 0) layers = x;
        else if (strcmp(a, "-p") == 0) prompt = x;
        else if (strcmp(a, "-n") == 0) tokens = x;
        else if (strcmp(a, "-r") == 0) rounds = x;
        else return usage();
    }
    if (prompt < 1 || tokens < 4 || rounds < 1) return usage();

    gptoss_backend_t backend = NULL;
    enum gptoss_status st = strcmp(backend_name, "cpu") == 0 ? gptoss_backend_create_cpu(0, &backend)
                            : strcmp(backend_name, "cuda") == 0 ? gptoss_backend_create_cuda(0, NULL, &backend)
                                                                : gptoss_status_invalid_argument;
    if (st != gptoss_status_success) return fail("backend", st);
    gptoss_model_t model = NULL;
    /* the vocabulary: $GPTOSS_VOCAB, else the library's default path */
    if ((st = gptoss_model_create_random_ex(preset, (uint32_t) layers, 1, getenv("GPTOSS_VOCAB"), backend, &model)) !=
        gptoss_status_success) {
        return fail("random model", st);
    }
    /* room for every round's draws */
    const size_t max_tokens = (size_t) prompt + (size_t) (rounds + 1) * (size_t) tokens + 8;
    struct gptoss_context_params params;
    gptoss_context_params_init(&params);
    params.context_length = max_tokens;
    gptoss_batch_t batch = NULL;
    if ((st = gptoss_batch_create(model, &params, &batch)) != gptoss_status_success) return fail("batch", st);
    gptoss_sequence_t seq = NULL;
    if ((st = gptoss_sequence_create(batch, max_tokens, &seq)) != gptoss_status_success) return fail("sequence", st);
    uint32_t* ids = malloc((size_t) prompt * sizeof(uint32_t));
    if (ids == NULL) return fail("prompt", gptoss_status_insufficient_memory);
    uint64_t rng = 7;
    for (long i = 0; i < prompt; i++) ids[i] = (uint32_t) (gptoss_splitmix64(&rng) % 50000u);
    if ((st = gptoss_sequence_append_tokens(seq, (size_t) prompt, ids)) != gptoss_status_success) {
        return fail("append", st);
    }
    free(ids);

    struct gptoss_batch_token out[1];
    size_t n = 0;
    /* the prompt, then a few draws: the second decode step records the graph */
    if ((st = gptoss_sequence_generate(seq, NULL, (size_t) (rounds + 1) * (size_t) tokens)) != gptoss_status_success) {
        return fail("generate", st);
    }
    long drawn = 0;
    while (drawn < 4) {
        if ((st = gptoss_batch_step(batch, out, 1, &n)) != gptoss_status_success) return fail("step", st);
        drawn += (long) n;
    }
    printf("step_replay: %s, %s, prompt %ld, %ld tokens a round\n", preset, gptoss_backend_get_name(backend), prompt,
           tokens);
    for (long r = 0; r < rounds; r++) {
        double t0 = gptoss_now_s();
        long got = 0;
        while (got < tokens) {
            if ((st = gptoss_batch_step(batch, out, 1, &n)) != gptoss_status_success) return fail("step", st);
            got += (long) n;
        }
        const double steps_s = gptoss_now_s() - t0;
        t0 = gptoss_now_s();
        st = gptoss_batch_lab_replay(batch, 1, (uint32_t) tokens);
        const double replay_s = gptoss_now_s() - t0;
        if (st == gptoss_status_invalid_state) {
            printf("round %ld: steps %.1f us a token (%.1f tok/s); replay: not applicable (%s)\n", r,
                   1e6 * steps_s / (double) got, (double) got / steps_s, gptoss_last_error());
            continue;
        }
        if (st != gptoss_status_success) return fail("replay", st);
        printf("round %ld: steps %.1f us a token (%.1f tok/s), graph replays %.1f us a step (%.1f tok/s): "
               "%.1f us a token outside the graph (%.1f %%)\n",
               r, 1e6 * steps_s / (double) got, (double) got / steps_s, 1e6 * replay_s / (double) tokens,
               (double) tokens / replay_s, 1e6 * (steps_s / (double) got - replay_s / (double) tokens),
               100.0 * (1.0 - (replay_s / (double) tokens) / (steps_s / (double) got)));
    }
    gptoss_sequence_release(seq);
    gptoss_batch_release(batch);
    gptoss_model_release(model);
    gptoss_backend_release(backend);
    return 0;
}
