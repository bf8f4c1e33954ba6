/* gptoss bench: prompt processing and text generation tokens per second, with the decode
 * bound that the measured memory bandwidth sets. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gptoss/error.h>

#include "cli.h"
#include "options.h"
#include "readbw.h"
#include "util.h"

static void help(void) {
    printf("usage: gptoss bench (-m FILE | --random PRESET [--layers N] [-s SEED]) [-p 512] [-n 128] [-d 0]\n"
           "                    [-r 3] [options]\n"
           "Measures prompt processing (ppP: prefill of P tokens) and text generation (tgN: N\n"
           "decode steps from a 2-token context, each the forward pass of the token drawn\n"
           "before it: the first token's pass, a prompt row, is untimed; greedy unless --temp\n"
           "or a penalty is given),\n"
           "like llama-bench; with -d D both run after D tokens already in the context (ppP @ dD,\n"
           "tgN @ dD; the D tokens are prefilled once, untimed, and reused from the KV cache). Before and after tg it measures the memory bandwidth, 5 passes\n"
           "each (cpu: read passes over 1 GiB with the same threads; cuda: device-to-device\n"
           "copies, read + write), and prints to stderr the bytes one decode step reads, the\n"
           "bound they set with the best pass (bandwidth / bytes), the slowest pass, and tg as a\n"
           "share of the bound (a model whose bytes fit in the CPU's last-level cache is not\n"
           "bound by memory: said so).\n" GPTOSS_CLI_MODEL_HELP
           "  -s, --seed S         same as --random-seed (tg's sampler has seed 0)\n"
           "  -p, --n-prompt P     prompt tokens (default 512; 0 not allowed)\n"
           "  -n, --n-gen N        generated tokens (default 128; 0 skips tg)\n"
           "  -d, --n-depth D      tokens in the context before each pp and tg run (default 0)\n"
           "  -r, --repetitions R  runs per test (default 3), after an untimed warm-up: a prefill of\n"
           "                       min(P, batch size) tokens and one decode step\n"
           "  --parallel S         instead: S streams in one batch (the batch API, no HTTP): each\n"
           "                       prefills a prompt of P fresh random tokens, then N decode steps\n"
           "                       of S tokens each, timed from the step after the last stream's\n"
           "                       first token (every stream draws in every timed step): rows\n"
           "                       'tgN xS' (aggregate decode tokens per second over all streams),\n"
           "                       'tgN xS /stream' (each stream's rate);\n"
           "                       then TTFT under load: S - 1 streams decoding, a new stream's\n"
           "                       prompt of P tokens arrives: 'ttft ppP xS', the milliseconds to\n"
           "                       its first token (prefilled in chunks beside the decoding rows)\n"
           "  --kv-budget BYTES    with --parallel: the KV cache's memory, e.g. 8G (default: enough\n"
           "                       for S streams)\n"
           "  --profile            per-kernel profile of the timed runs on stderr (the backend is\n"
           "                       synchronised around every kernel call: slower, t/s not\n"
           "                       comparable; $GPTOSS_PROFILE=1 too)\n" GPTOSS_CLI_DRAW_HELP GPTOSS_CLI_BACKEND_HELP);
}

/* Returns the status of a call that failed (the message is the engine's). */
#define GPTOSS_TRY_CLI(expr)                                   \
    do {                                                       \
        const enum gptoss_status try_st_ = (expr);             \
        if (try_st_ != gptoss_status_success) return try_st_;  \
    } while (0)

static void mean_std(const double* v, size_t n, double* mean, double* sd) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += v[i];
    *mean = s / (double) n;
    double q = 0.0;
    for (size_t i = 0; i < n; i++) q += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(q / (double) (n - 1)) : 0.0;
}

/* Passes of the bandwidth measurement before tg and again after it. The bound uses the
 * best of all of them: one slow pass (another process, a frequency dip) must not lower it,
 * or tg could show more than 100% of the bound. */
#define BW_PASSES 5

/* Memory bandwidth for the decode bound: writes the GB/s of BW_PASSES passes to gbs and
 * returns 1, or 0 if unavailable. cpu: read passes over 1 GiB with `threads` threads; cuda:
 * timed batches of 8 device-to-device copies of 512 MiB, counting read + write (as the
 * kernel benchmark's 100%). */
static int bench_bandwidth(gptoss_backend_t b, uint32_t threads, double gbs[BW_PASSES]) {
    if (gptoss_backend_get_kind(b) == gptoss_backend_kind_cpu) {
        return gptoss_tools_read_bandwidth((size_t) 1 << 30, threads, BW_PASSES, gbs, NULL) > 0;
    }
    const size_t n = (size_t) 512 << 20;
    void *x = NULL, *y = NULL;
    int ok = gptoss_backend_alloc(b, n, &x) == gptoss_status_success &&
             gptoss_backend_alloc(b, n, &y) == gptoss_status_success &&
             gptoss_backend_copy(b, y, x, n, gptoss_copy_backend_to_backend) == gptoss_status_success &&
             gptoss_backend_synchronize(b) == gptoss_status_success;
    for (int pass = 0; pass < BW_PASSES && ok; pass++) {
        const double t0 = gptoss_now_s();
        enum gptoss_status st = gptoss_status_success;
        for (int i = 0; i < 8 && st == gptoss_status_success; i++) {
            st = gptoss_backend_copy(b, (i & 1) ? x : y, (i & 1) ? y : x, n, gptoss_copy_backend_to_backend);
        }
        if (st == gptoss_status_success) st = gptoss_backend_synchronize(b);
        gbs[pass] = 2.0 * 8 * (double) n / (gptoss_now_s() - t0) * 1e-9;
        ok = st == gptoss_status_success;
    }
    if (x != NULL) gptoss_backend_free(b, x);
    if (y != NULL) gptoss_backend_free(b, y);
    return ok;
}

/* Size of the CPU's last-level cache in bytes (sysfs, cpu0), 0 if unknown. */
static double last_level_cache_bytes(void) {
    double best = 0;
    for (int i = 0; i < 8; i++) {
        char path[80], text[32];
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        FILE* f = fopen(path, "r");
        if (f == NULL) continue;
        char unit = 0;
        unsigned long long v = 0;
        if (fgets(text, sizeof(text), f) != NULL && sscanf(text, "%llu%c", &v, &unit) >= 1) {
            const double b = (double) v * (unit == 'K' ? 1024.0 : unit == 'M' ? 1048576.0 : 1.0);
            if (b > best) best = b;
        }
        fclose(f);
    }
    return best;
}

/* stderr: bytes per decode step of tgN (mean over its N steps, num_kv_tokens depth ..
 * depth + N - 1), the
 * best bandwidth of the passes before and after the tg runs (and the slowest, as the
 * spread), the bound it sets and tg's share of it. */
static void report_decode_bound(const struct gptoss_cli_engine* e, size_t depth, size_t N, double tg_tps, uint32_t threads, const double* gbs,
                                int num_passes, const char* test) {
    double bytes = 0;
    for (size_t k = 0; k < N; k++) {
        uint64_t b = 0;
        if (gptoss_model_get_decode_bytes(e->model, depth + k, &b) != gptoss_status_success) return;
        bytes += (double) b;
    }
    bytes /= (double) N;
    if (num_passes == 0) {
        fprintf(stderr, "%s: %.3f GB read per token; bandwidth not measured\n", test, bytes * 1e-9);
        return;
    }
    double best = gbs[0], slowest = gbs[0];
    for (int i = 1; i < num_passes; i++) {
        if (gbs[i] > best) best = gbs[i];
        if (gbs[i] < slowest) slowest = gbs[i];
    }
    char how[64];
    if (gptoss_backend_get_kind(e->backend) == gptoss_backend_kind_cpu) {
        snprintf(how, sizeof(how), "read pass (1 GiB, %u thread%s)", threads, threads > 1 ? "s" : "");
    } else {
        snprintf(how, sizeof(how), "copy (read + write, 8 x 512 MiB)");
    }
    const double bound = best * 1e9 / bytes;
    fprintf(stderr,
            "%s: %.3f GB read per token; %s best of %d passes (%d before tg, %d after) %.1f GB/s,"
            " slowest %.1f -> bound %.1f tok/s; tg %.2f tok/s = %.0f%% of it",
            test, bytes * 1e-9, how, num_passes, num_passes == 2 * BW_PASSES ? BW_PASSES : num_passes,
            num_passes == 2 * BW_PASSES ? BW_PASSES : 0, best, slowest, bound, tg_tps, 100.0 * tg_tps / bound);
    /* a model this small decodes from the cache, faster than memory allows */
    const double llc = gptoss_backend_get_kind(e->backend) == gptoss_backend_kind_cpu ? last_level_cache_bytes() : 0;
    if (bytes <= llc) {
        fprintf(stderr, " (the %.0f MB per token fit in the %.0f MiB last-level cache: not bound by memory)", bytes * 1e-6,
                llc / 1048576.0);
    }
    fputc('\n', stderr);
}

/* One benchmark: the engine, the prompt's ids, the timed runs. */
struct bench {
    struct gptoss_cli_engine e;
    size_t P, N, D, repetitions;
    uint32_t num_text;
    uint32_t* ids;  /* [D + P] random text tokens: the depth, then the prompt */
    uint32_t* out;  /* [N + 1] */
    double* runs;   /* [repetitions] tokens per second */
    char threads[24];
};

/* stderr: the backend's memory in use (gptoss_backend_get_memory_info), after the warm-up
 * (weights, the context's KV cache and scratch, the depth prefilled). */
static void report_memory(gptoss_backend_t backend) {
    uint64_t used = 0, total = 0;
    if (gptoss_backend_get_memory_info(backend, &used, &total) != gptoss_status_success) return;
    const int cpu = gptoss_backend_get_kind(backend) == gptoss_backend_kind_cpu;
    fprintf(stderr, "memory: %.2f GiB in use %s, of %.2f GiB\n", used / 1073741824.0,
            cpu ? "(this process's resident memory)" : "on the device (every process)", total / 1073741824.0);
}

/* Not timed: a prefill of one full chunk (min(P, max_batch_tokens) tokens: the kernels,
 * modules and pools the timed prefill uses; 8 tokens would not reach the CUDA prefill
 * paths) and one decode step from a 1-token context as in tg (page-in, thread start, the
 * decode paths), then a reset; then the D depth tokens are prefilled, to be reused by every
 * run. 0, or 1 after saying why. */
static int warm_up(struct bench* b) {
    size_t chunk = 0;
    enum gptoss_status st = gptoss_context_get_max_batch_tokens(b->e.context, &chunk);
    const uint32_t* prompt = b->ids + b->D;
    const size_t w = b->P < chunk ? b->P : chunk; /* P <= max_tokens (checked) */
    const uint32_t other = (prompt[0] + 1) % b->num_text;
    size_t got;
    if (st == gptoss_status_success) st = gptoss_context_append_tokens(b->e.context, w, prompt);
    if (st == gptoss_status_success) st = gptoss_context_process(b->e.context);
    if (st == gptoss_status_success) st = gptoss_context_reset(b->e.context);
    if (st == gptoss_status_success) st = gptoss_context_append_tokens(b->e.context, 1, &other);
    if (st == gptoss_status_success) st = gptoss_context_sample(b->e.context, b->e.sampler, 1, b->out, &got);
    if (st == gptoss_status_success) st = gptoss_context_reset(b->e.context);
    if (st == gptoss_status_success && b->D > 0) {
        const double t0 = gptoss_now_s();
        st = gptoss_context_append_tokens(b->e.context, b->D, b->ids);
        if (st == gptoss_status_success) st = gptoss_context_process(b->e.context);
        if (st == gptoss_status_success) st = gptoss_context_reset(b->e.context);
        if (st == gptoss_status_success) fprintf(stderr, "depth: %zu tokens prefilled in %.3f s\n", b->D, gptoss_now_s() - t0);
    }
    if (st != gptoss_status_success) {
        gptoss_cli_engine_error("warm-up", st);
        return 1;
    }
    report_memory(b->e.backend);
    gptoss_context_reset_profile(b->e.context); /* --profile: the table covers the timed runs */
    return 0;
}

/* Tokens a run holds: the depth, then the prompt, or the first token and the N + 1 drawn. */
static size_t run_tokens(const struct bench* b) { return b->D + (b->P > b->N + 2 ? b->P : b->N + 2); }

/* The context length bench asks for (without -c). With a depth, every run resumes the
 * cached depth, which needs the sliding-window layers' blocks of its last window. A prompt
 * prefilled in several chunks releases those blocks as its window moves on, and in a KV
 * budget of exactly one context its later chunks take them back (the depth then could not
 * be reused and the run would say so): the context is P tokens longer, which leaves the
 * budget that many free blocks. */
static size_t context_with_room(const struct bench* b) { return run_tokens(b) + (b->D > 0 ? b->P : 0); }

/* Starts a run: a reset context holding the D depth tokens, reused from the cache, then
 * `first` (an id that differs from the one cached at position D, so that nothing after
 * the depth is reused). 0, or 1 after saying why (the depth was not reused: the run would
 * time its prefill). */
static int start_run(struct bench* b, uint32_t first) {
    size_t cached = 0;
    enum gptoss_status st = gptoss_context_reset(b->e.context);
    if (st == gptoss_status_success) st = gptoss_context_append_tokens(b->e.context, b->D, b->ids);
    if (st == gptoss_status_success) st = gptoss_context_append_tokens(b->e.context, 1, &first);
    if (st == gptoss_status_success) st = gptoss_context_get_num_kv_tokens(b->e.context, &cached);
    if (st != gptoss_status_success) {
        gptoss_cli_engine_error("starting a run", st);
        return 1;
    }
    if (cached < b->D) {
        fprintf(stderr, "gptoss bench: %zu of the %zu depth tokens were reused from the KV cache (a prompt prefilled "
                "in chunks takes the depth's blocks back when the budget has no room; -c %zu leaves it)\n", cached,
                b->D, context_with_room(b));
        return 1;
    }
    return 0;
}

/* ppP: each run a prefill of the P prompt ids after the depth. 0, or 1 after saying why. */
static int time_prefill(struct bench* b) {
    uint32_t* prompt = b->ids + b->D;
    const uint32_t first = prompt[0];
    for (size_t rep = 0; rep < b->repetitions; rep++) {
        if (start_run(b, (first + 1) % b->num_text) != 0) return 1;
        /* nothing of the prompt in the KV cache (the warm-up's and the earlier runs' K/V stay
         * there as a prefix cache): a first id of its own in every run */
        prompt[0] = (uint32_t) ((first + 2 + rep) % b->num_text);
        enum gptoss_status st = gptoss_context_reset(b->e.context);
        if (st == gptoss_status_success) st = gptoss_context_append_tokens(b->e.context, b->D, b->ids);
        if (st == gptoss_status_success) st = gptoss_context_append_tokens(b->e.context, b->P, prompt);
        prompt[0] = first;
        const double t0 = gptoss_now_s();
        if (st == gptoss_status_success) st = gptoss_context_process(b->e.context);
        const double t1 = gptoss_now_s();
        if (st != gptoss_status_success) {
            gptoss_cli_engine_error("prefill", st);
            return 1;
        }
        b->runs[rep] = (double) b->P / (t1 - t0);
    }
    return 0;
}

/* tgN: each run N decode steps (the sampler of the options) from the depth and two more
 * tokens: the first token's forward pass (a prompt row: in the batch-invariant modes it runs
 * the prefill's kernels, which at depth cost far more than a decode step) and its draw are
 * untimed, then N steps, each the forward pass of the token drawn before it and a draw. 0, or
 * 1 after saying why. */
static int time_decode(struct bench* b) {
    const uint32_t* prompt = b->ids + b->D;
    for (size_t rep = 0; rep < b->repetitions; rep++) {
        /* differs from the cached prompt and from the earlier runs' first tokens */
        if (start_run(b, (prompt[0] + 1 + (uint32_t) rep) % b->num_text) != 0) return 1;
        size_t got = 0;
        enum gptoss_status st = gptoss_context_sample(b->e.context, b->e.sampler, 1, b->out, &got);
        if (st != gptoss_status_success || got != 1) {
            gptoss_cli_engine_error("decode", st);
            return 1;
        }
        got = 0;
        const double t0 = gptoss_now_s();
        st = gptoss_context_sample(b->e.context, b->e.sampler, b->N, b->out, &got);
        const double t1 = gptoss_now_s();
        if (st != gptoss_status_success || got != b->N) {
            gptoss_cli_engine_error("decode", st);
            return 1;
        }
        b->runs[rep] = (double) b->N / (t1 - t0);
    }
    return 0;
}

/* A table row of the runs (mean and standard deviation); what gptoss_cli_check_stdout says. */
static int print_row(const struct bench* b, const char* test, double* mean) {
    double sd;
    char tps[48];
    mean_std(b->runs, b->repetitions, mean, &sd);
    snprintf(tps, sizeof(tps), "%.2f ± %.2f", *mean, sd);
    printf("| %-24.24s | %-28.28s | %8s | %14s | %18s |\n", b->e.label, gptoss_backend_get_name(b->e.backend),
           b->threads, test, tps);
    return gptoss_cli_check_stdout();
}

/* The context and the buffers; the random depth and prompt. 0, or 1 after saying why. */
static int bench_open(struct bench* b, const struct gptoss_cli_run* run) {
    if (gptoss_cli_engine_open(run, &b->e) != 0) return 1;
    const size_t P = b->P, N = b->N, D = b->D;
    const size_t wanted = run_tokens(b);
    if (gptoss_cli_make_context(run, &b->e, context_with_room(b)) != 0) return 1;
    if (gptoss_cli_make_sampler(run, &b->e) != 0) return 1;
    size_t max_tokens = 0;
    gptoss_context_get_max_tokens(b->e.context, &max_tokens);
    if (wanted > max_tokens) {
        fprintf(stderr, "gptoss bench: -d %zu with -p %zu / -n %zu needs %zu tokens; the context holds %zu\n", D, P, N,
                wanted, max_tokens);
        return 1;
    }
    gptoss_tokenizer_get_num_text_tokens(b->e.tokenizer, &b->num_text);
    if (b->num_text == 0) {
        fprintf(stderr, "gptoss bench: the model has no text tokens\n");
        return 1;
    }
    b->ids = malloc((D + P) * sizeof(uint32_t));
    b->out = malloc((N + 1) * sizeof(uint32_t));
    b->runs = malloc(b->repetitions * sizeof(double));
    if (b->ids == NULL || b->out == NULL || b->runs == NULL) {
        fprintf(stderr, "gptoss bench: out of memory\n");
        return 1;
    }
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < D + P; i++) { /* the prompt first: -d 0 times the same ids as before */
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        b->ids[i < P ? D + i : i - P] = (uint32_t) (x % b->num_text);
    }
    if (strcmp(run->backend, "cuda") == 0) snprintf(b->threads, sizeof(b->threads), "-");
    else if (run->threads == 0) snprintf(b->threads, sizeof(b->threads), "auto");
    else snprintf(b->threads, sizeof(b->threads), "%llu", run->threads);
    return 0;
}

/* ---- --parallel S: S streams in one batch ------------------------------------------ */

struct pbench {
    struct gptoss_cli_engine* e;
    gptoss_batch_t batch;
    size_t S, P, N, repetitions;
    size_t rows; /* of a step (the batch's max_batch_tokens) */
    uint32_t num_text;
    uint64_t rng;
    uint32_t* prompt;                /* [P] */
    gptoss_sequence_t* seqs;         /* [S] */
    size_t* drawn;                   /* [S] */
    size_t* base;                    /* [S]: drawn when the timed steps began */
    struct gptoss_batch_token* toks; /* [S] */
    double *agg, *ttft;              /* [repetitions] */
};

/* Stream i of b->seqs: a new sequence with a prompt of P fresh random ids (no prefix shared
 * with any earlier stream) that draws `draws` tokens. */
static enum gptoss_status add_stream(struct pbench* b, size_t i, size_t draws) {
    for (size_t k = 0; k < b->P; k++) {
        b->rng ^= b->rng << 13;
        b->rng ^= b->rng >> 7;
        b->rng ^= b->rng << 17;
        b->prompt[k] = (uint32_t) (b->rng % b->num_text);
    }
    b->drawn[i] = 0;
    enum gptoss_status st = gptoss_sequence_create(b->batch, b->P + draws, &b->seqs[i]);
    if (st == gptoss_status_success) st = gptoss_sequence_append_tokens(b->seqs[i], b->P, b->prompt);
    if (st == gptoss_status_success) st = gptoss_sequence_generate(b->seqs[i], b->e->sampler, draws);
    return st;
}

static void release_streams(struct pbench* b) {
    for (size_t i = 0; i < b->S; i++) {
        gptoss_sequence_release(b->seqs[i]);
        b->seqs[i] = NULL;
    }
}

/* One step; counts each stream's draws. */
static enum gptoss_status pstep(struct pbench* b) {
    size_t n = 0;
    GPTOSS_TRY_CLI(gptoss_batch_step(b->batch, b->toks, b->S, &n));
    for (size_t k = 0; k < n; k++) {
        for (size_t i = 0; i < b->S; i++) b->drawn[i] += b->seqs[i] != NULL && b->toks[k].sequence == b->seqs[i];
    }
    return gptoss_status_success;
}

/* Steps until each stream i of [0, n) has drawn at least base[i] + until tokens (base NULL:
 * until). */
static enum gptoss_status steps_until(struct pbench* b, size_t n, const size_t* base, size_t until) {
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++) done += b->drawn[i] >= (base != NULL ? base[i] : 0) + until;
        if (done == n) return gptoss_status_success;
        GPTOSS_TRY_CLI(pstep(b));
    }
}

/* Tokens a decode stream draws: N timed, one first, and room for what it draws before the
 * last stream's first token. A step of R rows (R >= S) holds at least R - S + 1 prompt rows
 * while the prompts last (each decoding stream takes one), so the S prompts of P tokens are
 * prefilled within ceil(S P / (R - S + 1)) steps: a stream draws at most one token a step
 * before the window starts. */
static size_t pdecode_draws(size_t S, size_t P, size_t N, size_t R) {
    const size_t per_step = R >= S ? R - S + 1 : 1;
    return N + (S * P + per_step - 1) / per_step + 3;
}

/* Tokens a stream of the TTFT load draws: it must still be drawing when the new prompt's
 * first token comes, after the load's own prompts (as pdecode_draws, S - 1 streams) and the
 * new prompt's steps (at least R - S + 1 of its rows a step). */
static size_t pttft_draws(size_t S, size_t P, size_t R) {
    const size_t L = S - 1, per_step = R >= S ? R - L : 1;
    const size_t stagger = (L * P + per_step - 1) / per_step, probe = (P + per_step - 1) / per_step;
    return stagger + probe + 3 > P + 2 ? stagger + probe + 3 : P + 2;
}

/* Decode: S streams prefill their prompts (in chunks, so the first streams start drawing
 * while the last prefill); from the step after every stream drew its first token, N steps
 * in which every stream draws one token (none runs out: pdecode_draws); the aggregate rate
 * of the tokens drawn in those steps. */
static enum gptoss_status pdecode(struct pbench* b, size_t N, double* aggregate) {
    const size_t draws = pdecode_draws(b->S, b->P, N, b->rows);
    for (size_t i = 0; i < b->S; i++) GPTOSS_TRY_CLI(add_stream(b, i, draws));
    GPTOSS_TRY_CLI(steps_until(b, b->S, NULL, 1));
    for (size_t i = 0; i < b->S; i++) {
        if (b->drawn[i] + N > draws) {
            return gptoss_fail(gptoss_status_unsupported_argument,
                               "stream %zu drew %zu tokens before the timed steps, more than the %zu it has room "
                               "for", i, b->drawn[i], draws - N);
        }
        b->base[i] = b->drawn[i];
    }
    const double t0 = gptoss_now_s();
    GPTOSS_TRY_CLI(steps_until(b, b->S, b->base, N));
    const double dt = gptoss_now_s() - t0;
    size_t tokens = 0;
    for (size_t i = 0; i < b->S; i++) tokens += b->drawn[i] - b->base[i];
    *aggregate = (double) tokens / dt;
    release_streams(b);
    return gptoss_status_success;
}

/* TTFT under load: S - 1 streams decoding, then a new stream's prompt; the time from its
 * arrival to its first token. */
static enum gptoss_status pttft(struct pbench* b, double* seconds) {
    const size_t load = b->S - 1, draws = pttft_draws(b->S, b->P, b->rows);
    for (size_t i = 0; i < load; i++) GPTOSS_TRY_CLI(add_stream(b, i, draws)); /* outlasts the probe */
    GPTOSS_TRY_CLI(steps_until(b, load, NULL, 1));
    const double t0 = gptoss_now_s();
    GPTOSS_TRY_CLI(add_stream(b, load, 1));
    while (b->drawn[load] == 0) GPTOSS_TRY_CLI(pstep(b));
    *seconds = gptoss_now_s() - t0;
    for (size_t i = 0; i < load; i++) { /* the load lasted: every stream still drawing */
        if (b->drawn[i] >= draws) {
            return gptoss_fail(gptoss_status_unsupported_argument,
                               "stream %zu of the TTFT load drew all its %zu tokens before the new prompt's first "
                               "token", i, draws);
        }
    }
    release_streams(b);
    return gptoss_status_success;
}

static int print_value(const struct bench* b, const char* test, const double* v, size_t n, double scale,
                       const char* unit) {
    double mean, sd;
    char text[48];
    mean_std(v, n, &mean, &sd);
    snprintf(text, sizeof(text), "%.2f ± %.2f%s", mean * scale, sd * scale, unit);
    printf("| %-24.24s | %-28.28s | %8s | %14s | %18s |\n", b->e.label, gptoss_backend_get_name(b->e.backend),
           b->threads, test, text);
    return gptoss_cli_check_stdout();
}

/* gptoss bench --parallel S: aggregate and per-stream decode rates and TTFT under load, on
 * the batch API (no HTTP). 0, or 1 after saying why. */
static int bench_parallel(struct bench* b, const struct gptoss_cli_run* run, size_t S, size_t kv_budget) {
    if (gptoss_cli_engine_open(run, &b->e) != 0 || gptoss_cli_make_sampler(run, &b->e) != 0) return 1;
    struct pbench p = {.e = &b->e, .S = S, .P = b->P, .N = b->N, .repetitions = b->repetitions,
                       .rng = 0x9E3779B97F4A7C15ull};
    size_t max_ctx = 0;
    gptoss_model_get_max_context_length(b->e.model, &max_ctx);
    gptoss_tokenizer_get_num_text_tokens(b->e.tokenizer, &p.num_text);
    p.prompt = malloc(b->P * sizeof(uint32_t));
    p.seqs = calloc(S, sizeof(*p.seqs));
    p.drawn = calloc(S, sizeof(*p.drawn));
    p.base = calloc(S, sizeof(*p.base));
    p.toks = calloc(S, sizeof(*p.toks));
    p.agg = calloc(b->repetitions, sizeof(double));
    p.ttft = calloc(b->repetitions, sizeof(double));
    int rc = 1;
    enum gptoss_status st = gptoss_status_success;
    if (p.num_text == 0 || p.prompt == NULL || p.seqs == NULL || p.drawn == NULL || p.base == NULL || p.toks == NULL ||
        p.agg == NULL || p.ttft == NULL) {
        fprintf(stderr, "gptoss bench: %s\n", p.num_text == 0 ? "the model has no text tokens" : "out of memory");
        goto done;
    }
    /* a stream's tokens: the decode streams' draws or the TTFT load's (pdecode_draws,
     * pttft_draws: they depend on the rows of a step, which grow with the context up to the
     * batch size); the batch is made again, once or twice, until its context holds them */
    size_t ctx = run->context != 0 ? (size_t) run->context : b->P + (b->N + 4 > b->P + 2 ? b->N + 4 : b->P + 2);
    for (int attempt = 0;; attempt++) {
        size_t wanted = 0;
        if (ctx <= max_ctx) {
            struct gptoss_context_params params;
            gptoss_cli_context_params(run, ctx, &params);
            params.max_sequences = (uint32_t) S;
            params.kv_budget = kv_budget;
            if ((st = gptoss_batch_create(b->e.model, &params, &p.batch)) != gptoss_status_success) {
                gptoss_cli_engine_error("creating the batch", st);
                goto done;
            }
            struct gptoss_batch_info created;
            gptoss_batch_get_info(p.batch, &created);
            p.rows = created.max_batch_tokens;
            const size_t draws = pdecode_draws(S, b->P, b->N, p.rows), load = pttft_draws(S, b->P, p.rows);
            wanted = b->P + (draws > load ? draws : load);
            if (wanted <= ctx) break;
            gptoss_batch_release(p.batch);
            p.batch = NULL;
        }
        if (run->context != 0 || ctx > max_ctx || wanted > max_ctx || attempt == 3) {
            fprintf(stderr, "gptoss bench: --parallel %zu with -p %zu -n %zu needs %zu tokens per stream (-c %zu, the "
                    "model's maximum %zu)\n", S, b->P, b->N, wanted != 0 ? wanted : ctx, ctx, max_ctx);
            goto done;
        }
        ctx = wanted;
    }
    struct gptoss_batch_info info;
    gptoss_batch_get_info(p.batch, &info);
    fprintf(stderr, "model: %s, %s in %.3f s; %zu streams, prompts of %zu tokens, %zu rows per step, KV budget %zu "
            "blocks (%.1f MiB), %s\n", b->e.label, run->random != NULL ? "created" : "loaded", b->e.load_s, S, b->P,
            info.max_batch_tokens, info.num_blocks, (double) info.num_blocks * (double) info.block_bytes / 1048576.0,
            gptoss_cli_batch_invariance(run) == gptoss_batch_invariant_off    ? "steps not batch-invariant"
            : gptoss_cli_batch_invariance(run) == gptoss_batch_invariant_many ? "batch-invariant steps (many)"
                                                                               : "batch-invariant steps");
    double warm;
    if ((st = pdecode(&p, b->N < 4 ? b->N : 4, &warm)) != gptoss_status_success) goto fail; /* untimed warm-up */
    gptoss_batch_reset_profile(p.batch);
    for (size_t r = 0; r < b->repetitions; r++) {
        if (b->N > 0 && (st = pdecode(&p, b->N, &p.agg[r])) != gptoss_status_success) goto fail;
        if ((st = pttft(&p, &p.ttft[r])) != gptoss_status_success) goto fail;
    }
    char test[40];
    int w = 0;
    if (b->N > 0) {
        snprintf(test, sizeof(test), "tg%zu x%zu", b->N, S);
        w = print_value(b, test, p.agg, b->repetitions, 1.0, "");
        snprintf(test, sizeof(test), "tg%zu x%zu /stream", b->N, S);
        if (w == 0) w = print_value(b, test, p.agg, b->repetitions, 1.0 / (double) S, "");
    }
    snprintf(test, sizeof(test), "ttft pp%zu x%zu", b->P, S);
    if (w == 0) w = print_value(b, test, p.ttft, b->repetitions, 1e3, " ms");
    gptoss_batch_print_profile(p.batch, stderr); /* only with --profile */
    rc = w > 0;
    goto done;
fail:
    gptoss_cli_engine_error("parallel run", st);
done:
    release_streams(&p);
    gptoss_batch_release(p.batch);
    free(p.prompt);
    free(p.seqs);
    free(p.drawn);
    free(p.base);
    free(p.toks);
    free(p.agg);
    free(p.ttft);
    return rc;
}

int gptoss_cmd_bench(int argc, char** argv) {
    struct {
        struct gptoss_cli_run run;
        unsigned long long prompt_tokens, num_tokens, depth, repetitions, parallel;
        const char* kv_budget;
    } o = {.prompt_tokens = 512, .num_tokens = 128, .repetitions = 3};
    gptoss_cli_run_defaults(&o.run);
    const struct gptoss_option options[] = {
        GPTOSS_CLI_MODEL_OPTIONS(&o.run),
        GPTOSS_OPTION_U64("seed", 's', &o.run.random_seed, 0, UINT64_MAX), /* the weights' seed */
        GPTOSS_CLI_DRAW_OPTIONS(&o.run),
        GPTOSS_CLI_BACKEND_OPTIONS(&o.run),
        GPTOSS_OPTION_FLAG("profile", 0, &o.run.profile),
        GPTOSS_OPTION_U64("n-prompt", 'p', &o.prompt_tokens, 1, 1u << 20),
        GPTOSS_OPTION_U64("n-gen", 'n', &o.num_tokens, 0, 1u << 24),
        GPTOSS_OPTION_U64("n-predict", 0, &o.num_tokens, 0, 1u << 24),
        GPTOSS_OPTION_U64("n-depth", 'd', &o.depth, 0, 1u << 24),
        GPTOSS_OPTION_U64("repetitions", 'r', &o.repetitions, 1, 1000),
        GPTOSS_OPTION_U64("parallel", 0, &o.parallel, 1, 65536),
        GPTOSS_OPTION_STRING("kv-budget", 0, &o.kv_budget),
    };
    const int r = gptoss_options_parse(argc, argv, options, sizeof(options) / sizeof(options[0]), help, NULL, 0, NULL);
    if (r != 0) return r > 0 ? 0 : GPTOSS_EXIT_USAGE;
    if (gptoss_cli_run_check(&o.run) != 0) return GPTOSS_EXIT_USAGE;
    unsigned long long kv_budget = 0;
    if (o.kv_budget != NULL && o.parallel == 0) {
        gptoss_cli_usage_error("--kv-budget goes with --parallel");
        return GPTOSS_EXIT_USAGE;
    }
    if (o.kv_budget != NULL && gptoss_cli_parse_bytes(o.kv_budget, &kv_budget) != 0) {
        gptoss_cli_usage_error("--kv-budget expects a byte count such as 8G, got '%s'", o.kv_budget);
        return GPTOSS_EXIT_USAGE;
    }
    if (o.parallel != 0 && o.depth != 0) {
        gptoss_cli_usage_error("--parallel does not take -d");
        return GPTOSS_EXIT_USAGE;
    }
    struct bench b;
    memset(&b, 0, sizeof(b));
    b.P = (size_t) o.prompt_tokens;
    b.N = (size_t) o.num_tokens;
    b.D = (size_t) o.depth;
    b.repetitions = (size_t) o.repetitions;
    int rc;
    if (o.parallel != 0) {
        if (strcmp(o.run.backend, "cuda") == 0) snprintf(b.threads, sizeof(b.threads), "-");
        else if (o.run.threads == 0) snprintf(b.threads, sizeof(b.threads), "auto");
        else snprintf(b.threads, sizeof(b.threads), "%llu", o.run.threads);
        printf("| %-24s | %-28s | %8s | %14s | %18s |\n", "model", "backend", "threads", "test", "t/s");
        printf("| %.24s | %.28s | %.8s | %.14s | %.18s |\n", "------------------------------",
               "------------------------------", "--------", "--------------", "------------------");
        rc = bench_parallel(&b, &o.run, (size_t) o.parallel, (size_t) kv_budget);
        gptoss_cli_engine_close(&b.e);
        return rc;
    }
    rc = bench_open(&b, &o.run);
    if (rc != 0) goto done;
    printf("| %-24s | %-28s | %8s | %14s | %18s |\n", "model", "backend", "threads", "test", "t/s");
    printf("| %.24s | %.28s | %.8s | %.14s | %.18s |\n", "------------------------------", "------------------------------",
           "--------", "--------------", "------------------");
    fprintf(stderr, "model: %s, %s in %.3f s\n", b.e.label, o.run.random != NULL ? "created" : "loaded", b.e.load_s);
    if ((rc = warm_up(&b)) != 0 || (rc = time_prefill(&b)) != 0) goto done;
    char test[32];
    double mean;
    if (b.D) snprintf(test, sizeof(test), "pp%zu @ d%zu", b.P, b.D);
    else snprintf(test, sizeof(test), "pp%zu", b.P);
    int w = print_row(&b, test, &mean);
    if (w != 0) {
        rc = w > 0;
        goto done;
    }
    uint32_t bw_threads = (uint32_t) o.run.threads;
    if (bw_threads == 0) {
        const long np = sysconf(_SC_NPROCESSORS_ONLN);
        bw_threads = np > 0 ? (uint32_t) np : 1;
    }
    if (b.N > 0) {
        double gbs[2 * BW_PASSES];
        const int before = bench_bandwidth(b.e.backend, bw_threads, gbs);
        if ((rc = time_decode(&b)) != 0) goto done;
        if (b.D) snprintf(test, sizeof(test), "tg%zu @ d%zu", b.N, b.D);
        else snprintf(test, sizeof(test), "tg%zu", b.N);
        if ((w = print_row(&b, test, &mean)) != 0) {
            rc = w > 0;
            goto done;
        }
        const int after = before && bench_bandwidth(b.e.backend, bw_threads, gbs + BW_PASSES);
        report_decode_bound(&b.e, b.D, b.N, mean, bw_threads, gbs, before ? (after ? 2 * BW_PASSES : BW_PASSES) : 0, test);
    }
    gptoss_context_print_profile(b.e.context, stderr); /* only with --profile */
done:
    free(b.ids);
    free(b.out);
    free(b.runs);
    gptoss_cli_engine_close(&b.e);
    return rc;
}
