/* dump_logits: runs the engine on a prompt and writes, as binary, the logits of the last
 * prompt token and of each of S greedy decode steps (for tests/e2e/forward_ref.py).
 *
 *   dump_logits MODEL OUT [--prompt TEXT | --random-prompt N [--seed S]] [--steps S] [--batch B] [--threads T]
 *               [--backend cpu|cuda] [--isa auto|scalar|avx2|avx512] [--mode process|direct|reuse]
 *               [--fused-ops 0|1] [--graphs 0|1] [--profile 0|1] [--moe-dense-rows N] [--pdl 0|1]
 *
 * --random-prompt N: a prompt of N text token ids drawn from a fixed generator (seed S,
 * default 1) instead of encoding TEXT: prompts longer than a command line can hold (the
 * long-context check, tests/e2e/long_context.py).
 * --isa picks the CPU backend's instruction-set variant (default auto: the best one).
 * --fused-ops, --graphs, --profile and --moe-dense-rows set the context's params of the
 * same names (gptoss_context_params; defaults 1, 1, 0 and 0 = the backend's choice);
 * --pdl 0 creates the CUDA backend with GPTOSS_CUDA_NO_PDL.
 *
 * mode process: append the prompt, gptoss_context_process (prefill without logits), then
 *   get_logits (runs the last token again); direct: append, get_logits (the last batch of
 *   the prefill produces the logits); reuse: as process, then after the decode steps the
 *   context is reset and the same tokens re-appended (KV reuse), and the logits of the
 *   last position are written once more (must match the last step).
 *
 * OUT: "GPTOSSLG" | u32 version=1 | u32 V | u32 n_prompt | u32 steps | u32 extra |
 *      u32 prompt ids[n_prompt] | steps+1+extra times: f32 logits[V], u32 token
 *      (token = the greedy token sampled after these logits; UINT32_MAX for the last). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gptoss/engine.h>

static int fail(const char* what, enum gptoss_status st) {
    fprintf(stderr, "dump_logits: %s: %s: %s\n", what, gptoss_status_to_string(st), gptoss_last_error());
    return 1;
}

static unsigned long parse_ul(const char* s, const char* flag) {
    char* end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0') {
        fprintf(stderr, "dump_logits: bad value '%s' for %s\n", s, flag);
        exit(2);
    }
    return v;
}

int main(int argc, char** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: dump_logits MODEL OUT [--prompt TEXT | --random-prompt N [--seed S]] [--steps S] [--batch B] [--threads T] "
                        "[--backend cpu|cuda] [--isa auto|scalar|avx2|avx512] [--mode process|direct|reuse] "
                        "[--fused-ops 0|1] [--graphs 0|1] [--profile 0|1] [--moe-dense-rows N] [--pdl 0|1]\n");
        return 2;
    }
    const char* model_path = argv[1];
    const char* out_path = argv[2];
    const char* prompt = "The gpt-oss models use alternating banded and dense attention. Here is a test "
                         "sentence with enough tokens to cross several prefill chunks, 12345 67890!";
    unsigned long steps = 32, batch = 16, threads = 0;
    const char* backend_name = "cpu";
    const char* mode = "process";
    const char* isa_name = "auto";
    struct gptoss_context_params params;
    gptoss_context_params_init(&params);
    unsigned long pdl = 1, random_prompt = 0, seed = 1;
    for (int i = 3; i < argc; i++) {
        if (i + 1 >= argc) {
            fprintf(stderr, "dump_logits: %s needs a value\n", argv[i]);
            return 2;
        }
        if (strcmp(argv[i], "--prompt") == 0) prompt = argv[++i];
        else if (strcmp(argv[i], "--random-prompt") == 0) random_prompt = parse_ul(argv[++i], "--random-prompt");
        else if (strcmp(argv[i], "--seed") == 0) seed = parse_ul(argv[++i], "--seed");
        else if (strcmp(argv[i], "--steps") == 0) steps = parse_ul(argv[++i], "--steps");
        else if (strcmp(argv[i], "--batch") == 0) batch = parse_ul(argv[++i], "--batch");
        else if (strcmp(argv[i], "--threads") == 0) threads = parse_ul(argv[++i], "--threads");
        else if (strcmp(argv[i], "--backend") == 0) backend_name = argv[++i];
        else if (strcmp(argv[i], "--mode") == 0) mode = argv[++i];
        else if (strcmp(argv[i], "--isa") == 0) isa_name = argv[++i];
        else if (strcmp(argv[i], "--fused-ops") == 0) params.fused_ops = (int) parse_ul(argv[++i], "--fused-ops");
        else if (strcmp(argv[i], "--graphs") == 0) params.graphs = (int) parse_ul(argv[++i], "--graphs");
        else if (strcmp(argv[i], "--profile") == 0) params.profile = (int) parse_ul(argv[++i], "--profile");
        else if (strcmp(argv[i], "--pdl") == 0) pdl = parse_ul(argv[++i], "--pdl");
        else if (strcmp(argv[i], "--moe-dense-rows") == 0) {
            params.moe_dense_min_rows = (uint32_t) parse_ul(argv[++i], "--moe-dense-rows");
        }
        else {
            fprintf(stderr, "dump_logits: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    const int reuse = strcmp(mode, "reuse") == 0;
    const int direct = strcmp(mode, "direct") == 0;
    if (!reuse && !direct && strcmp(mode, "process") != 0) {
        fprintf(stderr, "dump_logits: bad --mode %s\n", mode);
        return 2;
    }

    static const char* const isa_names[] = {"auto", "scalar", "avx2", "avx512"};
    int isa = -1;
    for (int i = 0; i < 4; i++) {
        if (strcmp(isa_name, isa_names[i]) == 0) isa = i; /* the enum gptoss_cpu_isa values */
    }
    if (isa < 0) {
        fprintf(stderr, "dump_logits: bad --isa %s\n", isa_name);
        return 2;
    }

    gptoss_backend_t backend = NULL;
    enum gptoss_status st;
    if (strcmp(backend_name, "cuda") == 0) st = gptoss_backend_create_cuda_ex(0, NULL, pdl ? 0 : GPTOSS_CUDA_NO_PDL, &backend);
    else st = gptoss_backend_create_cpu_isa((uint32_t) threads, (enum gptoss_cpu_isa) isa, &backend);
    if (st != gptoss_status_success) return fail("backend", st);
    gptoss_model_t model = NULL;
    if ((st = gptoss_model_create_from_file(model_path, backend, &model)) != gptoss_status_success) {
        return fail("model", st);
    }
    gptoss_tokenizer_t tok = NULL;
    gptoss_model_get_tokenizer(model, &tok);
    uint32_t V = 0;
    gptoss_tokenizer_get_num_tokens(tok, &V);

    size_t n_prompt = 0;
    uint32_t* ids = NULL;
    if (random_prompt > 0) {
        uint32_t num_text = 0;
        gptoss_tokenizer_get_num_text_tokens(tok, &num_text);
        if (num_text == 0 || random_prompt > (1ul << 24)) {
            fprintf(stderr, "dump_logits: --random-prompt %lu: %s\n", random_prompt,
                    num_text == 0 ? "the model has no text tokens" : "at most 2^24 tokens");
            return 2;
        }
        ids = malloc(random_prompt * sizeof(uint32_t));
        if (ids == NULL) {
            fprintf(stderr, "dump_logits: out of memory\n");
            return 1;
        }
        uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1; /* splitmix64 */
        for (size_t i = 0; i < random_prompt; i++) {
            uint64_t z = (x += 0x9E3779B97F4A7C15ull);
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            ids[i] = (uint32_t) ((z ^ (z >> 31)) % num_text);
        }
        n_prompt = random_prompt;
    } else {
        const size_t plen = strlen(prompt);
        ids = malloc((plen + 1) * sizeof(uint32_t));
        if (ids == NULL) {
            fprintf(stderr, "dump_logits: out of memory\n");
            return 1;
        }
        if ((st = gptoss_tokenizer_encode(tok, prompt, plen, ids, plen + 1, &n_prompt)) != gptoss_status_success) {
            return fail("encode", st);
        }
    }
    gptoss_context_t ctx = NULL;
    params.context_length = n_prompt + steps + 8;
    params.max_batch_tokens = batch;
    if ((st = gptoss_context_create_with_params(model, &params, &ctx)) != gptoss_status_success) {
        return fail("context", st);
    }
    if ((st = gptoss_context_append_tokens(ctx, n_prompt, ids)) != gptoss_status_success) return fail("append", st);
    if (!direct && (st = gptoss_context_process(ctx)) != gptoss_status_success) return fail("process", st);

    FILE* f = fopen(out_path, "wb");
    if (f == NULL) {
        perror(out_path);
        return 1;
    }
    const uint32_t extra = reuse ? 1 : 0;
    const uint32_t header[5] = {1, V, (uint32_t) n_prompt, (uint32_t) steps, extra};
    fwrite("GPTOSSLG", 1, 8, f);
    fwrite(header, sizeof(uint32_t), 5, f);
    fwrite(ids, sizeof(uint32_t), n_prompt, f);
    float* logits = malloc((size_t) V * sizeof(float));
    for (unsigned long i = 0; i <= steps; i++) {
        if ((st = gptoss_context_get_logits(ctx, logits, V)) != gptoss_status_success) return fail("logits", st);
        uint32_t t = UINT32_MAX;
        if (i < steps) {
            size_t got = 0;
            if ((st = gptoss_context_sample(ctx, NULL, 1, &t, &got)) != gptoss_status_success || got != 1) {
                return fail("sample", st);
            }
        }
        fwrite(logits, sizeof(float), V, f);
        fwrite(&t, sizeof(uint32_t), 1, f);
    }
    if (reuse) {
        /* reset, re-append everything (reused from the cache), logits of the last position */
        size_t n = 0;
        uint32_t* all = malloc((n_prompt + steps) * sizeof(uint32_t));
        if ((st = gptoss_context_get_tokens(ctx, all, n_prompt + steps, &n)) != gptoss_status_success) {
            return fail("get_tokens", st);
        }
        gptoss_context_reset(ctx);
        if ((st = gptoss_context_append_tokens(ctx, n, all)) != gptoss_status_success) return fail("re-append", st);
        if ((st = gptoss_context_get_logits(ctx, logits, V)) != gptoss_status_success) return fail("logits", st);
        const uint32_t t = UINT32_MAX;
        fwrite(logits, sizeof(float), V, f);
        fwrite(&t, sizeof(uint32_t), 1, f);
        free(all);
    }
    if (fclose(f) != 0) {
        perror(out_path);
        return 1;
    }
    free(logits);
    free(ids);
    gptoss_context_release(ctx);
    gptoss_tokenizer_release(tok);
    gptoss_model_release(model);
    gptoss_backend_release(backend);
    return 0;
}
