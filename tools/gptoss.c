/* gptoss: command-line front end of the engine.
 *
 *   gptoss generate -m FILE -p PROMPT [-n N] [sampling] [backend]   text completion
 *   gptoss chat -m FILE [--show-analysis] [sampling] [backend]       harmony chat on stdin
 *   gptoss bench -m FILE [-p 512] [-n 128] [-r 3] [backend]          pp/tg tokens per second
 *   (each also takes --random tiny|20b|120b [--layers N] instead of -m FILE: random weights
 *   made in backend memory, gptoss_model_create_random)
 *   gptoss tokenize | convert | make-model | inspect ...             engine/cli_tools.h
 *   gptoss version (or --version)
 *
 * Exit status: 0 success, 1 failure (bad file, engine error, a failed write to stdout),
 * 2 usage error. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gptoss/engine.h>

#include "chat.h"
#include "cli_tools.h"
#include "readbw.h"
#ifdef GPTOSS_WITH_SERVE
#include "serve.h"
#endif
#include "engine_internal.h" /* gptoss_context_print_profile (bench, $GPTOSS_PROFILE) */

#define EXIT_USAGE 2

static const char* g_cmd = "gptoss";

static void usage_error(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gptoss %s: ", g_cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see gptoss %s --help)\n", g_cmd);
    va_end(ap);
}

static void engine_error(const char* what, enum gptoss_status st) {
    const char* msg = gptoss_last_error();
    fprintf(stderr, "gptoss %s: %s failed (%s)%s%s\n", g_cmd, what, gptoss_status_to_string(st), *msg ? ": " : "",
            msg);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

/* ---- full-string number parsing ------------------------------------------------------ */

static int parse_u64(const char* flag, const char* s, unsigned long long min, unsigned long long max,
                     unsigned long long* out) {
    if (s == NULL || *s == '\0' || *s == '-' || *s == '+' || *s == ' ') {
        usage_error("%s expects an integer in [%llu, %llu], got '%s'", flag, min, max, s ? s : "");
        return -1;
    }
    errno = 0;
    char* end = NULL;
    const unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        usage_error("%s expects an integer in [%llu, %llu], got '%s'", flag, min, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_f32(const char* flag, const char* s, double min, double max, float* out) {
    if (s == NULL || *s == '\0' || *s == ' ') {
        usage_error("%s expects a number in [%g, %g], got '%s'", flag, min, max, s ? s : "");
        return -1;
    }
    errno = 0;
    char* end = NULL;
    const double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < min || v > max) {
        usage_error("%s expects a number in [%g, %g], got '%s'", flag, min, max, s);
        return -1;
    }
    *out = (float) v;
    return 0;
}

/* ---- options ------------------------------------------------------------------------- */

struct options {
    const char* model;
    const char* random;               /* --random PRESET instead of -m FILE */
    unsigned long long layers;        /* --layers (random models; 0 = the preset's) */
    unsigned long long random_seed;   /* --random-seed (bench: also -s) */
    const char* prompt;
    const char* prompt_file;
    const char* backend;
    int device;
    unsigned long long threads;
    unsigned long long context;
    unsigned long long batch;
    int no_mmap;
    unsigned long long num_tokens;
    int num_tokens_set;
    unsigned long long prompt_tokens; /* bench */
    unsigned long long repetitions;   /* bench */
    float temperature, top_p, presence, frequency;
    unsigned long long top_k;
    unsigned long long seed;
    int show_analysis;
    int ignore_eos;
    int timings;                      /* chat --timings */
    int dump_prompt;                  /* chat --dump-prompt */
    const char* system;
    const char* developer;
    const char* reasoning;
};

/* Flag tables per subcommand: which flags are accepted. */
enum { F_MODEL = 1 << 0, F_PROMPT = 1 << 1, F_N = 1 << 2, F_SAMPLING = 1 << 3, F_BACKEND = 1 << 4, F_CHAT = 1 << 5,
       F_BENCH = 1 << 6, F_EOS = 1 << 7 };
/* F_MODEL: -m FILE or --random PRESET [--layers N] [--random-seed S] (exactly one of the two) */

/* Splits "--flag=value"; returns the value of a flag that takes one (advancing *i). */
static const char* take_value(int argc, char** argv, int* i, const char* flag, const char* inline_value) {
    if (inline_value != NULL) return inline_value;
    if (*i + 1 >= argc) {
        usage_error("%s needs a value", flag);
        return NULL;
    }
    return argv[++*i];
}

/* Returns 0 ok, 1 help printed, -1 usage error. */
static int parse_options(int argc, char** argv, unsigned flags, struct options* o, void (*help)(void)) {
    for (int i = 1; i < argc; i++) {
        char flagbuf[64];
        const char* arg = argv[i];
        const char* inline_value = NULL;
        const char* flag = arg;
        if (strncmp(arg, "--", 2) == 0) {
            const char* eq = strchr(arg, '=');
            if (eq != NULL) {
                const size_t len = (size_t) (eq - arg);
                if (len >= sizeof(flagbuf)) {
                    usage_error("unknown option '%s'", arg);
                    return -1;
                }
                memcpy(flagbuf, arg, len);
                flagbuf[len] = '\0';
                flag = flagbuf;
                inline_value = eq + 1;
            }
        }
#define IS(a) (strcmp(flag, (a)) == 0)
#define VALUE()                                                               \
    const char* v = take_value(argc, argv, &i, flag, inline_value);           \
    if (v == NULL) return -1
        if (IS("-h") || IS("--help")) {
            help();
            return 1;
        } else if ((flags & F_MODEL) && (IS("-m") || IS("--model"))) {
            VALUE();
            o->model = v;
        } else if ((flags & F_MODEL) && IS("--random")) {
            VALUE();
            if (strcmp(v, "tiny") != 0 && strcmp(v, "20b") != 0 && strcmp(v, "120b") != 0) {
                usage_error("--random expects tiny, 20b or 120b, got '%s'", v);
                return -1;
            }
            o->random = v;
        } else if ((flags & F_MODEL) && IS("--layers")) {
            VALUE();
            if (parse_u64(flag, v, 1, 1024, &o->layers)) return -1;
        } else if ((flags & F_MODEL) && (IS("--random-seed") || (!(flags & F_SAMPLING) && (IS("-s") || IS("--seed"))))) {
            VALUE();
            if (parse_u64(flag, v, 0, UINT64_MAX, &o->random_seed)) return -1;
        } else if ((flags & F_PROMPT) && (IS("-p") || IS("--prompt"))) {
            VALUE();
            o->prompt = v;
        } else if ((flags & F_PROMPT) && (IS("-f") || IS("--prompt-file"))) {
            VALUE();
            o->prompt_file = v;
        } else if ((flags & F_BENCH) && (IS("-p") || IS("--n-prompt"))) {
            VALUE();
            if (parse_u64(flag, v, 1, 1u << 20, &o->prompt_tokens)) return -1;
        } else if ((flags & F_BENCH) && (IS("-r") || IS("--repetitions"))) {
            VALUE();
            if (parse_u64(flag, v, 1, 1000, &o->repetitions)) return -1;
        } else if ((flags & F_N) && (IS("-n") || IS("--n-predict") || IS("--n-gen"))) {
            VALUE();
            if (parse_u64(flag, v, 0, 1u << 24, &o->num_tokens)) return -1;
            o->num_tokens_set = 1;
        } else if ((flags & F_SAMPLING) && (IS("--temp") || IS("--temperature"))) {
            VALUE();
            if (parse_f32(flag, v, 0.0, 1e6, &o->temperature)) return -1;
        } else if ((flags & F_SAMPLING) && IS("--top-p")) {
            VALUE();
            if (parse_f32(flag, v, 1e-9, 1.0, &o->top_p)) return -1;
        } else if ((flags & F_SAMPLING) && IS("--top-k")) {
            VALUE();
            if (parse_u64(flag, v, 0, UINT32_MAX, &o->top_k)) return -1;
        } else if ((flags & F_SAMPLING) && IS("--presence-penalty")) {
            VALUE();
            if (parse_f32(flag, v, -1e6, 1e6, &o->presence)) return -1;
        } else if ((flags & F_SAMPLING) && IS("--frequency-penalty")) {
            VALUE();
            if (parse_f32(flag, v, -1e6, 1e6, &o->frequency)) return -1;
        } else if ((flags & F_SAMPLING) && (IS("-s") || IS("--seed"))) {
            VALUE();
            if (parse_u64(flag, v, 0, UINT64_MAX, &o->seed)) return -1;
        } else if ((flags & F_BACKEND) && IS("--backend")) {
            VALUE();
            if (strcmp(v, "cpu") != 0 && strcmp(v, "cuda") != 0) {
                usage_error("--backend expects cpu or cuda, got '%s'", v);
                return -1;
            }
            o->backend = v;
        } else if ((flags & F_BACKEND) && IS("--device")) {
            VALUE();
            unsigned long long d;
            if (parse_u64(flag, v, 0, 1023, &d)) return -1;
            o->device = (int) d;
        } else if ((flags & F_BACKEND) && (IS("-t") || IS("--threads"))) {
            VALUE();
            if (parse_u64(flag, v, 0, 1024, &o->threads)) return -1;
        } else if ((flags & F_BACKEND) && (IS("-c") || IS("--ctx-size"))) {
            VALUE();
            if (parse_u64(flag, v, 1, UINT32_MAX, &o->context)) return -1;
        } else if ((flags & F_BACKEND) && IS("--no-mmap")) {
            o->no_mmap = 1;
        } else if ((flags & F_BACKEND) && (IS("-b") || IS("--batch-size"))) {
            VALUE();
            if (parse_u64(flag, v, 1, 65536, &o->batch)) return -1;
        } else if ((flags & F_CHAT) && IS("--show-analysis")) {
            o->show_analysis = 1;
        } else if ((flags & F_CHAT) && IS("--timings")) {
            o->timings = 1;
        } else if ((flags & F_CHAT) && IS("--dump-prompt")) {
            o->dump_prompt = 1;
        } else if ((flags & F_CHAT) && IS("--system")) {
            VALUE();
            o->system = v;
        } else if ((flags & F_CHAT) && IS("--developer")) {
            VALUE();
            o->developer = v;
        } else if ((flags & F_CHAT) && IS("--reasoning")) {
            VALUE();
            if (strcmp(v, "low") != 0 && strcmp(v, "medium") != 0 && strcmp(v, "high") != 0) {
                usage_error("--reasoning expects low, medium or high, got '%s'", v);
                return -1;
            }
            o->reasoning = v;
        } else if ((flags & F_EOS) && IS("--ignore-eos")) {
            o->ignore_eos = 1;
        } else {
            if (arg[0] == '-') {
                usage_error("unknown option '%s'", arg);
            } else {
                usage_error("unexpected argument '%s'", arg);
            }
            return -1;
        }
        if (inline_value != NULL && (IS("--show-analysis") || IS("--ignore-eos") || IS("--timings") ||
                                     IS("--dump-prompt") || IS("--no-mmap"))) {
            usage_error("%s takes no value", flag);
            return -1;
        }
#undef IS
#undef VALUE
    }
    if ((flags & F_MODEL) && (o->model == NULL) == (o->random == NULL)) {
        usage_error("exactly one of -m FILE and --random PRESET is required");
        return -1;
    }
    if ((flags & F_MODEL) && o->random == NULL && o->layers != 0) {
        usage_error("--layers needs --random");
        return -1;
    }
    return 0;
}

static void defaults(struct options* o) {
    memset(o, 0, sizeof(*o));
    o->backend = "cpu";
    o->top_p = 1.0f;
    o->repetitions = 3;
    o->prompt_tokens = 512;
}

#define BACKEND_HELP                                                                                   \
    "  --backend cpu|cuda   where to run (default cpu)\n"                                              \
    "  --device N           CUDA device (default 0)\n"                                                 \
    "  -t, --threads N      CPU threads (default: one per online processor; more warns)\n"             \
    "  -c, --ctx-size N     context length (default: as needed, at most the model's)\n"                \
    "  -b, --batch-size N   prefill chunk, max_batch_tokens (default: 128 cpu, 512 cuda)\n"       \
    "  --no-mmap            cpu: copy the weights into memory with huge pages instead of\n"         \
    "                       mapping the file (slower load, faster decode)\n"
#define MODEL_HELP                                                                                     \
    "  -m, --model FILE     model file (GPT-OSS v1.0)\n"                                               \
    "  --random PRESET      instead of -m: random weights made in backend memory (no file),\n"       \
    "                       shapes of make-model's presets: tiny | 20b | 120b\n"                       \
    "  --layers N           with --random: N layers instead of the preset's\n"                        \
    "  --random-seed S      with --random: weight seed (default 0)\n"
#define SAMPLING_HELP                                                                                  \
    "  --temp T             temperature, divides the logits (default 0 = greedy)\n"                    \
    "  --top-p P            nucleus sampling, 0 < P <= 1 (default 1 = off)\n"                          \
    "  --top-k K            keep the K most likely tokens (default 0 = off)\n"                         \
    "  --presence-penalty X, --frequency-penalty X   (default 0)\n"                                    \
    "  -s, --seed S         sampling seed (default 0)\n"

static void help_generate(void) {
    printf("usage: gptoss generate (-m FILE | --random PRESET) (-p PROMPT | -f FILE) [-n N] [options]\n"
           "Completes the prompt (plain text, no chat template) and streams the text to stdout;\n"
           "timings (load, prefill and decode tokens/s) go to stderr.\n" MODEL_HELP
           "  -p, --prompt TEXT    prompt text\n"
           "  -f, --prompt-file F  read the prompt from a file (- = stdin)\n"
           "  -n, --n-predict N    tokens to generate (default 128)\n"
           "  --ignore-eos         do not stop at <|return|> / <|call|>\n" SAMPLING_HELP BACKEND_HELP);
}
static void help_chat(void) {
    printf("usage: gptoss chat (-m FILE | --random PRESET) [options]\n"
           "Harmony chat: each line of stdin is a user turn; the reply's final channel goes to\n"
           "stdout, ended by a newline (an empty line when the reply has no final text).\n"
           "Ctrl-C stops the current reply and returns to the prompt; Ctrl-C at the prompt, or a\n"
           "second one within a second, quits (status 130); end of input (Ctrl-D) quits (status 0).\n"
           "The history keeps the final answers of earlier turns, not their analysis (harmony).\n"
           "When the next prompt and a reply of -n tokens (at most half the context) would not\n"
           "fit the context, the oldest turns are dropped (said on stderr).\n" MODEL_HELP
           "  --system TEXT        replaces the model identity line of the system message\n"
           "  --developer TEXT     adds a developer message with these instructions\n"
           "  --reasoning LEVEL    low | medium | high (default medium)\n"
           "  --show-analysis      also print the analysis channel (to stderr)\n"
           "  --timings            prefill and decode tokens/s of each reply (to stderr)\n"
           "  --dump-prompt        print the token ids of the rendered conversation before each\n"
           "                       reply (to stderr; for debugging)\n"
           "  -n, --n-predict N    at most N tokens per reply (default 4096)\n" SAMPLING_HELP BACKEND_HELP);
}
static void help_bench(void) {
    printf("usage: gptoss bench (-m FILE | --random PRESET [--layers N] [-s SEED]) [-p 512] [-n 128] [-r 3]\n"
           "                    [options]\n"
           "Measures prompt processing (ppP: prefill of P tokens) and text generation (tgN: N\n"
           "greedy decode steps from a 1-token context), like llama-bench. Before and after tg\n"
           "it measures the memory bandwidth, 5 passes each (cpu: read passes over 1 GiB with the\n"
           "same threads; cuda: device-to-device copies, read + write), and prints to stderr the\n"
           "bytes one decode step reads, the bound they set with the best pass (bandwidth /\n"
           "bytes), the slowest pass, and tg as a share of the bound (a model whose bytes fit in\n"
           "the CPU's last-level cache is not bound by memory: said so).\n" MODEL_HELP
           "  -s, --seed S         same as --random-seed (bench has no sampler)\n"
           "  -p, --n-prompt P     prompt tokens (default 512; 0 not allowed)\n"
           "  -n, --n-gen N        generated tokens (default 128; 0 skips tg)\n"
           "  -r, --repetitions R  runs per test (default 3), after an untimed warm-up: a prefill of\n"
           "                       min(P, batch size) tokens and one decode step\n" BACKEND_HELP
           "environment:\n"
           "  GPTOSS_PROFILE=1     per-kernel profile of the timed runs on stderr (the backend is\n"
           "                       synchronised around every kernel call: slower, t/s not comparable)\n"
           "  GPTOSS_CUDA_GRAPHS=0 CUDA: run decode steps as direct kernel launches instead of\n"
           "                       recorded graphs (for comparison)\n"
           "  GPTOSS_CUDA_PDL=0    CUDA: no programmatic dependent launch (for comparison)\n"
           "  GPTOSS_FUSED_OPS=0   decode without the fused kernels (the MoE accumulate and the\n"
           "                       RMSNorm after it as two calls; same results, for comparison)\n");
}

static void help_main(void) {
    printf("usage: gptoss COMMAND [options]   (gptoss COMMAND --help for details)\n"
           "commands:\n"
           "  generate    complete a prompt, streaming the text\n"
           "  chat        interactive harmony chat on stdin/stdout\n"
           "  bench       prefill and decode tokens per second\n"
           "  tokenize    text <-> token ids\n"
           "  convert     checkpoint directory -> model file\n"
           "  make-model  random model file of a preset shape\n"
           "  inspect     header and layout of a model file\n"
           "  serve       OpenAI-compatible HTTP server (chat, responses, completions)\n"
           "  render      the harmony prompt of a chat or responses request (JSON)\n"
           "  version     the version (also --version)\n");
}

/* ---- engine set-up ------------------------------------------------------------------- */

struct engine {
    gptoss_backend_t backend;
    gptoss_model_t model;
    gptoss_tokenizer_t tokenizer;
    gptoss_context_t context;
    gptoss_sampler_t sampler;
    double load_s;
    char label[96]; /* "m20b.bin" or "random-20b (seed 0)" */
};

static void engine_close(struct engine* e) {
    gptoss_sampler_release(e->sampler);
    gptoss_context_release(e->context);
    gptoss_tokenizer_release(e->tokenizer);
    gptoss_model_release(e->model);
    gptoss_backend_release(e->backend);
    memset(e, 0, sizeof(*e));
}

/* Backend, model, tokenizer (context and sampler are made by the caller). */
static int engine_open(const struct options* o, struct engine* e) {
    memset(e, 0, sizeof(*e));
    enum gptoss_status st;
    if (o->model != NULL && access(o->model, R_OK) != 0) {
        fprintf(stderr, "gptoss %s: cannot read model file '%s': %s\n", g_cmd, o->model, strerror(errno));
        return 1;
    }
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (strcmp(o->backend, "cpu") == 0 && online > 0 && o->threads > (unsigned long long) online) {
        fprintf(stderr, "gptoss %s: warning: -t %llu is more than the %ld online processors: threads will share them\n",
                g_cmd, o->threads, online);
    }
    if (strcmp(o->backend, "cuda") == 0) {
        st = gptoss_backend_create_cuda(o->device, NULL, &e->backend);
    } else {
        st = gptoss_backend_create_cpu((uint32_t) o->threads, &e->backend);
    }
    if (st != gptoss_status_success) {
        engine_error("creating the backend", st);
        return 1;
    }
    const double t0 = now_s();
    if (o->random != NULL) {
        st = gptoss_model_create_random(o->random, (uint32_t) o->layers, (uint64_t) o->random_seed, e->backend,
                                        &e->model);
        if (o->layers != 0) {
            snprintf(e->label, sizeof(e->label), "random-%s-L%llu (seed %llu)", o->random, o->layers, o->random_seed);
        } else {
            snprintf(e->label, sizeof(e->label), "random-%s (seed %llu)", o->random, o->random_seed);
        }
    } else {
        st = gptoss_model_create_from_file_ex(o->model, e->backend, o->no_mmap ? GPTOSS_MODEL_NO_MMAP : 0,
                                              &e->model);
        const char* slash = strrchr(o->model, '/');
        snprintf(e->label, sizeof(e->label), "%s", slash != NULL ? slash + 1 : o->model);
    }
    if (st != gptoss_status_success) {
        engine_error(o->random != NULL ? "creating the random model" : "loading the model", st);
        engine_close(e);
        return 1;
    }
    e->load_s = now_s() - t0;
    st = gptoss_model_get_tokenizer(e->model, &e->tokenizer);
    if (st != gptoss_status_success) {
        engine_error("getting the tokenizer", st);
        engine_close(e);
        return 1;
    }
    return 0;
}

static int make_context(const struct options* o, struct engine* e, size_t wanted) {
    size_t max_ctx = 0;
    gptoss_model_get_max_context_length(e->model, &max_ctx);
    size_t ctx = o->context != 0 ? (size_t) o->context : wanted;
    if (ctx > max_ctx) {
        if (o->context != 0) {
            fprintf(stderr, "gptoss %s: -c %zu exceeds the model's context length %zu\n", g_cmd, ctx, max_ctx);
            return 1;
        }
        ctx = max_ctx;
    }
    if (ctx == 0) ctx = 1;
    enum gptoss_status st = gptoss_context_create(e->model, ctx, (size_t) o->batch, &e->context);
    if (st != gptoss_status_success) {
        engine_error("creating the context", st);
        return 1;
    }
    return 0;
}

static int make_sampler(const struct options* o, struct engine* e) {
    enum gptoss_status st = gptoss_sampler_create(&e->sampler);
    if (st == gptoss_status_success) st = gptoss_sampler_set_temperature(e->sampler, o->temperature);
    if (st == gptoss_status_success) st = gptoss_sampler_set_top_p(e->sampler, o->top_p);
    if (st == gptoss_status_success) st = gptoss_sampler_set_top_k(e->sampler, (uint32_t) o->top_k);
    if (st == gptoss_status_success) st = gptoss_sampler_set_presence_penalty(e->sampler, o->presence);
    if (st == gptoss_status_success) st = gptoss_sampler_set_frequency_penalty(e->sampler, o->frequency);
    if (st == gptoss_status_success) st = gptoss_sampler_set_seed(e->sampler, (uint64_t) o->seed);
    if (st != gptoss_status_success) {
        engine_error("creating the sampler", st);
        return 1;
    }
    return 0;
}

static uint32_t special_id(struct engine* e, enum gptoss_special_token t) {
    uint32_t id = UINT32_MAX;
    if (gptoss_tokenizer_get_special_token_id(e->tokenizer, t, &id) != gptoss_status_success) return UINT32_MAX;
    return id;
}

static void write_token(struct engine* e, uint32_t id, FILE* f) {
    const void* p = NULL;
    size_t n = 0;
    if (gptoss_tokenizer_decode(e->tokenizer, id, &p, &n) == gptoss_status_success && n != 0) fwrite(p, 1, n, f);
}

/* The whole file; "-" reads stdin. */
static char* read_file(const char* path, size_t* size_out) {
    const int is_stdin = strcmp(path, "-") == 0;
    FILE* f = is_stdin ? stdin : fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "gptoss %s: cannot open '%s': %s\n", g_cmd, path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char* buf = malloc(cap);
    while (buf != NULL) {
        const size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) break;
        char* nb = realloc(buf, cap * 2);
        if (nb == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    const int failed = buf == NULL || ferror(f);
    if (!is_stdin) fclose(f);
    if (failed) {
        fprintf(stderr, "gptoss %s: cannot read '%s'\n", g_cmd, is_stdin ? "stdin" : path);
        free(buf);
        return NULL;
    }
    *size_out = n;
    return buf;
}

/* stderr: the prefill rate (the n_prefill tokens computed, from t0 to the first sampled
 * token at t_first; n_cached more came from the KV cache) and the decode rate (the other
 * generated - 1 tokens, up to t_end). */
static void print_speeds(size_t n_prefill, size_t n_cached, size_t generated, double t0, double t_first,
                         double t_end) {
    if (generated == 0) return;
    const double tp = t_first - t0;
    fprintf(stderr, "prefill: %zu tokens", n_prefill);
    if (n_cached != 0) fprintf(stderr, " (+ %zu cached)", n_cached);
    fprintf(stderr, " in %.3f s, %.2f tok/s\n", tp, (double) n_prefill / tp);
    if (generated > 1) {
        const double td = t_end - t_first;
        fprintf(stderr, "decode: %zu tokens in %.3f s, %.2f tok/s\n", generated - 1, td, (double) (generated - 1) / td);
    }
}

/* ---- generate ------------------------------------------------------------------------ */

static int cmd_generate(int argc, char** argv) {
    struct options o;
    defaults(&o);
    o.num_tokens = 128;
    int r = parse_options(argc, argv, F_MODEL | F_PROMPT | F_N | F_SAMPLING | F_BACKEND | F_EOS, &o, help_generate);
    if (r != 0) return r > 0 ? 0 : EXIT_USAGE;
    if ((o.prompt == NULL) == (o.prompt_file == NULL)) {
        usage_error("exactly one of -p PROMPT and -f FILE is required");
        return EXIT_USAGE;
    }
    char* file_text = NULL;
    size_t prompt_size;
    const char* prompt = o.prompt;
    if (o.prompt_file != NULL) {
        file_text = read_file(o.prompt_file, &prompt_size);
        if (file_text == NULL) return 1;
        prompt = file_text;
    } else {
        prompt_size = strlen(prompt);
    }

    struct engine e;
    if (engine_open(&o, &e) != 0) {
        free(file_text);
        return 1;
    }
    int rc = 1;
    uint32_t* ids = NULL;
    enum gptoss_status st;
    size_t n_prompt = 0;
    /* count the prompt tokens first, to size the context */
    st = gptoss_tokenizer_encode(e.tokenizer, prompt, prompt_size, NULL, 0, &n_prompt);
    if (st != gptoss_status_success && st != gptoss_status_insufficient_memory) {
        engine_error("tokenizing the prompt", st);
        goto done;
    }
    if (n_prompt == 0) {
        fprintf(stderr, "gptoss generate: the prompt is empty\n");
        goto done;
    }
    ids = malloc(n_prompt * sizeof(uint32_t));
    if (ids == NULL) {
        fprintf(stderr, "gptoss generate: out of memory\n");
        goto done;
    }
    st = gptoss_tokenizer_encode(e.tokenizer, prompt, prompt_size, ids, n_prompt, &n_prompt);
    if (st != gptoss_status_success) {
        engine_error("tokenizing the prompt", st);
        goto done;
    }
    if (make_context(&o, &e, n_prompt + (size_t) o.num_tokens) != 0) goto done;
    if (make_sampler(&o, &e) != 0) goto done;
    size_t max_tokens = 0;
    gptoss_context_get_max_tokens(e.context, &max_tokens);
    if (n_prompt > max_tokens) {
        fprintf(stderr, "gptoss generate: the prompt has %zu tokens, the context holds %zu\n", n_prompt, max_tokens);
        goto done;
    }

    fwrite(prompt, 1, prompt_size, stdout);
    int w = gptoss_cli_check_stdout(g_cmd);
    if (w != 0) {
        rc = w > 0;
        goto done;
    }
    /* prefill all but the last prompt token; the first sample step runs the last one and
     * produces its logits (no token is run twice) */
    const double t0 = now_s();
    st = gptoss_context_append_tokens(e.context, n_prompt - 1, ids);
    if (st == gptoss_status_success) st = gptoss_context_process(e.context);
    if (st == gptoss_status_success) st = gptoss_context_append_tokens(e.context, 1, ids + n_prompt - 1);
    if (st != gptoss_status_success) {
        engine_error("prefill", st);
        goto done;
    }
    const uint32_t stop_return = special_id(&e, gptoss_special_token_return);
    const uint32_t stop_call = special_id(&e, gptoss_special_token_call);
    double t_first = 0.0;
    size_t generated = 0;
    int overflow = 0;
    while (generated < o.num_tokens) {
        uint32_t tok;
        size_t got = 0;
        st = gptoss_context_sample(e.context, e.sampler, 1, &tok, &got);
        if (st == gptoss_status_context_overflow || (st == gptoss_status_success && got == 0)) {
            overflow = 1;
            break;
        }
        if (st != gptoss_status_success) {
            fputc('\n', stdout);
            engine_error("decode", st);
            goto done;
        }
        if (generated == 0) t_first = now_s();
        generated++;
        write_token(&e, tok, stdout);
        if ((w = gptoss_cli_check_stdout(g_cmd)) != 0) {
            rc = w > 0;
            goto done;
        }
        if (!o.ignore_eos && (tok == stop_return || tok == stop_call)) break;
    }
    const double t_end = now_s();
    fputc('\n', stdout);
    if ((w = gptoss_cli_check_stdout(g_cmd)) != 0) {
        rc = w > 0;
        goto done;
    }
    if (overflow) fprintf(stderr, "gptoss generate: context full (%zu tokens), stopped\n", max_tokens);
    fprintf(stderr, "load: %.3f s (%s, %s)\n", e.load_s, e.label, gptoss_backend_get_name(e.backend));
    print_speeds(n_prompt, 0, generated, t0, t_first, t_end);
    rc = 0;
done:
    free(ids);
    free(file_text);
    engine_close(&e);
    return rc;
}

/* ---- chat ---------------------------------------------------------------------------- */

/* Ctrl-C: during a reply (g_in_reply) the first one stops the reply (g_stop_reply, seen
 * between two tokens); one at the prompt, a second one before the stop took effect, or one
 * within a second of the previous quits at once with status 130 (128 + SIGINT). stdout is
 * flushed after every token, so nothing written is lost. */
static volatile sig_atomic_t g_in_reply, g_stop_reply;
static double g_last_interrupt = -1e9; /* only the handler uses it */

static void on_sigint(int sig) {
    (void) sig;
    const double t = now_s(); /* clock_gettime is async-signal-safe */
    if (!g_in_reply || g_stop_reply || t - g_last_interrupt < 1.0) {
        if (write(STDERR_FILENO, "\n", 1) < 0) { /* nothing to do */
        }
        _exit(130);
    }
    g_last_interrupt = t;
    g_stop_reply = 1;
}

static int cmd_chat(int argc, char** argv) {
    struct options o;
    defaults(&o);
    o.num_tokens = 4096;
    int r = parse_options(argc, argv, F_MODEL | F_N | F_SAMPLING | F_BACKEND | F_CHAT, &o, help_chat);
    if (r != 0) return r > 0 ? 0 : EXIT_USAGE;
    struct engine e;
    if (engine_open(&o, &e) != 0) return 1;
    int rc = 1, w;
    char* line = NULL;
    char* developer = NULL;
    size_t line_cap = 0;
    uint32_t *prompt = NULL, *previous = NULL, *reply = NULL;
    struct chat chat;
    enum gptoss_status st = chat_init(&chat, e.tokenizer);
    if (st == gptoss_status_invalid_argument) {
        fprintf(stderr, "gptoss chat: the model's tokenizer lacks harmony special tokens\n");
        goto done;
    }
    if (st != gptoss_status_success) {
        engine_error("setting up the chat", st);
        goto done;
    }
    if (make_context(&o, &e, 8192) != 0) goto done;
    if (make_sampler(&o, &e) != 0) goto done;
    size_t max_tokens = 0;
    gptoss_context_get_max_tokens(e.context, &max_tokens);
    const size_t max_reply = o.num_tokens < max_tokens ? (size_t) o.num_tokens : max_tokens;
    /* when old turns are dropped, room is kept for a reply of -n tokens, at most half the context */
    const size_t reserve = max_reply < max_tokens / 2 ? max_reply : max_tokens / 2;
    prompt = malloc(max_tokens * sizeof(uint32_t));
    previous = malloc(max_tokens * sizeof(uint32_t));
    reply = malloc((max_reply != 0 ? max_reply : 1) * sizeof(uint32_t));
    if (prompt == NULL || previous == NULL || reply == NULL) {
        fprintf(stderr, "gptoss chat: out of memory\n");
        goto done;
    }

    /* system message, developer message */
    char date[32] = "2025-01-01";
    const time_t now = time(NULL);
    struct tm tmv;
    if (localtime_r(&now, &tmv) != NULL) strftime(date, sizeof(date), "%Y-%m-%d", &tmv);
    char system[2048];
    snprintf(system, sizeof(system),
             "%s\nKnowledge cutoff: 2024-06\nCurrent date: %s\n\nReasoning: %s\n\n"
             "# Valid channels: analysis, commentary, final. Channel must be included for every message.",
             o.system != NULL ? o.system : "You are ChatGPT, a large language model trained by OpenAI.", date,
             o.reasoning != NULL ? o.reasoning : "medium");
    st = chat_add_message(&chat, "system", system, strlen(system));
    if (st == gptoss_status_success && o.developer != NULL) {
        static const char heading[] = "# Instructions\n\n";
        const size_t n = strlen(heading) + strlen(o.developer);
        developer = malloc(n + 1);
        st = gptoss_status_insufficient_memory;
        if (developer != NULL) {
            snprintf(developer, n + 1, "%s%s", heading, o.developer);
            st = chat_add_message(&chat, "developer", developer, n);
        }
    }
    if (st != gptoss_status_success) {
        engine_error("rendering the system and developer messages", st);
        goto done;
    }

    /* Ctrl-C handling, unless SIGINT is ignored (a background job of a script) */
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, NULL, &old_sa) == 0 && old_sa.sa_handler != SIG_IGN) sigaction(SIGINT, &sa, NULL);
    const int tty = isatty(STDIN_FILENO);
    for (;;) {
        if (tty) {
            fputs("> ", stderr);
            fflush(stderr);
        }
        const ssize_t len = getline(&line, &line_cap, stdin);
        if (len < 0) break;
        size_t n = (size_t) len;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n == 0) continue;
        if ((st = chat_begin_turn(&chat)) != gptoss_status_success ||
            (st = chat_add_message(&chat, "user", line, n)) != gptoss_status_success) {
            engine_error("adding the message", st);
            goto done;
        }
        /* fit the context: a message that does not fit even without the earlier turns is
         * refused (the history stays); otherwise the oldest turns are dropped until a reply
         * has room, never the new one */
        size_t np = 0, dropped = 0;
        chat_render(&chat, prompt, max_tokens, &np);
        const size_t np_alone = np - (chat.turns[chat.num_turns - 1] - chat.turns[0]);
        if (np_alone >= max_tokens) {
            fprintf(stderr, "[the message does not fit in the context: %zu tokens with it, %zu available; not sent]\n",
                    np_alone, max_tokens);
            chat_drop_turn(&chat, chat.num_turns - 1);
            continue;
        }
        while (np + reserve > max_tokens && chat.num_turns > 1) {
            chat_drop_turn(&chat, 0);
            dropped++;
            chat_render(&chat, prompt, max_tokens, &np);
        }
        if (dropped != 0) {
            fprintf(stderr, "[context full (%zu tokens): dropped the oldest %zu turn%s]\n", max_tokens, dropped,
                    dropped > 1 ? "s" : "");
        }
        if (o.dump_prompt) {
            fprintf(stderr, "prompt tokens (%zu):", np);
            for (size_t i = 0; i < np; i++) fprintf(stderr, " %u", prompt[i]);
            fputc('\n', stderr);
        }
        /* the engine reuses the K/V of the prefix shared with the previous context (all of
         * whose tokens but the last sampled one were computed) */
        size_t num_previous = 0, cached = 0;
        if (gptoss_context_get_tokens(e.context, previous, max_tokens, &num_previous) != gptoss_status_success) {
            num_previous = 0;
        }
        while (cached + 1 < num_previous && cached + 1 < np && previous[cached] == prompt[cached]) cached++;

        /* prefill all but the last prompt token; the first sample step runs the last one */
        g_stop_reply = 0;
        g_in_reply = 1;
        const double t0 = now_s();
        st = gptoss_context_reset(e.context);
        if (st == gptoss_status_success) st = gptoss_context_append_tokens(e.context, np - 1, prompt);
        if (st == gptoss_status_success) st = gptoss_context_process(e.context);
        if (st == gptoss_status_success) st = gptoss_context_append_tokens(e.context, 1, prompt + np - 1);
        if (st != gptoss_status_success) {
            engine_error("prefill", st);
            goto done;
        }
        struct chat_parser parser;
        chat_parser_reset(&parser);
        size_t generated = 0;
        double t_first = t0;
        int interrupted = 0, cut_off = 0, printed_final = 0, analysis_open = 0;
        while (generated < max_reply) {
            if (g_stop_reply) {
                interrupted = 1;
                break;
            }
            uint32_t tok;
            size_t got = 0;
            st = gptoss_context_sample(e.context, e.sampler, 1, &tok, &got);
            if (st == gptoss_status_context_overflow || (st == gptoss_status_success && got == 0)) {
                cut_off = 1;
                break;
            }
            if (st != gptoss_status_success) {
                engine_error("decode", st);
                goto done;
            }
            if (generated == 0) t_first = now_s();
            reply[generated++] = tok;
            const int was_in_content = parser.in_content;
            const enum chat_event ev = chat_parse(&chat, &parser, tok);
            if (ev == chat_event_reply_end) {
                if (tok == chat.call) fprintf(stderr, "\n[tool call requested; tools are not supported]\n");
                break;
            } else if (ev == chat_event_message_end && analysis_open) {
                fputc('\n', stderr);
                analysis_open = 0;
            } else if (ev == chat_event_header && parser.in_content && !was_in_content && !parser.final &&
                       o.show_analysis) {
                fprintf(stderr, "[%s] ", parser.channel);
                analysis_open = 1;
            } else if (ev == chat_event_text && parser.final) {
                write_token(&e, tok, stdout);
                if ((w = gptoss_cli_check_stdout(g_cmd)) != 0) {
                    rc = w > 0;
                    goto done;
                }
                printed_final = 1;
            } else if (ev == chat_event_text && o.show_analysis) {
                write_token(&e, tok, stderr);
                fflush(stderr);
            }
        }
        g_in_reply = 0;
        const double t_end = now_s();
        if (analysis_open) fputc('\n', stderr);
        fputc('\n', stdout);
        if ((w = gptoss_cli_check_stdout(g_cmd)) != 0) {
            rc = w > 0;
            goto done;
        }
        if (interrupted) fprintf(stderr, "[reply interrupted]\n");
        if (cut_off) {
            fprintf(stderr, "[context full (%zu tokens): the reply was cut off; the oldest turns will be dropped]\n",
                    max_tokens);
        }
        if (!printed_final && !interrupted) fprintf(stderr, "[no final-channel text in the reply]\n");
        if ((st = chat_add_reply(&chat, reply, generated)) != gptoss_status_success) {
            engine_error("adding the reply to the history", st);
            goto done;
        }
        if (o.timings) print_speeds(np - cached, cached, generated, t0, t_first, t_end);
    }
    rc = 0;
done:
    g_in_reply = 0;
    free(line);
    free(developer);
    free(prompt);
    free(previous);
    free(reply);
    chat_free(&chat);
    engine_close(&e);
    return rc;
}

/* ---- bench --------------------------------------------------------------------------- */

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
        const double t0 = now_s();
        enum gptoss_status st = gptoss_status_success;
        for (int i = 0; i < 8 && st == gptoss_status_success; i++) {
            st = gptoss_backend_copy(b, (i & 1) ? x : y, (i & 1) ? y : x, n, gptoss_copy_backend_to_backend);
        }
        if (st == gptoss_status_success) st = gptoss_backend_synchronize(b);
        gbs[pass] = 2.0 * 8 * (double) n / (now_s() - t0) * 1e-9;
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

/* stderr: bytes per decode step of tgN (mean over its N steps, num_kv_tokens 0..N-1), the
 * best bandwidth of the passes before and after the tg runs (and the slowest, as the
 * spread), the bound it sets and tg's share of it. */
static void report_decode_bound(const struct engine* e, size_t N, double tg_tps, uint32_t threads, const double* gbs,
                                int num_passes) {
    double bytes = 0;
    for (size_t k = 0; k < N; k++) {
        uint64_t b = 0;
        if (gptoss_model_get_decode_bytes(e->model, k, &b) != gptoss_status_success) return;
        bytes += (double) b;
    }
    bytes /= (double) N;
    if (num_passes == 0) {
        fprintf(stderr, "tg%zu: %.3f GB read per token; bandwidth not measured\n", N, bytes * 1e-9);
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
            "tg%zu: %.3f GB read per token; %s best of %d passes (%d before tg, %d after) %.1f GB/s,"
            " slowest %.1f -> bound %.1f tok/s; tg %.2f tok/s = %.0f%% of it",
            N, bytes * 1e-9, how, num_passes, num_passes == 2 * BW_PASSES ? BW_PASSES : num_passes,
            num_passes == 2 * BW_PASSES ? BW_PASSES : 0, best, slowest, bound, tg_tps, 100.0 * tg_tps / bound);
    /* a model this small decodes from the cache, faster than memory allows */
    const double llc = gptoss_backend_get_kind(e->backend) == gptoss_backend_kind_cpu ? last_level_cache_bytes() : 0;
    if (bytes <= llc) {
        fprintf(stderr, " (the %.0f MB per token fit in the %.0f MiB last-level cache: not bound by memory)", bytes * 1e-6,
                llc / 1048576.0);
    }
    fputc('\n', stderr);
}

static int cmd_bench(int argc, char** argv) {
    struct options o;
    defaults(&o);
    o.num_tokens = 128;
    int r = parse_options(argc, argv, F_MODEL | F_N | F_BACKEND | F_BENCH, &o, help_bench);
    if (r != 0) return r > 0 ? 0 : EXIT_USAGE;
    struct engine e;
    if (engine_open(&o, &e) != 0) return 1;
    int rc = 1;
    uint32_t* ids = NULL;
    uint32_t* out = NULL;
    double* runs = NULL;
    const size_t P = (size_t) o.prompt_tokens, N = (size_t) o.num_tokens;
    if (make_context(&o, &e, (P > N + 1 ? P : N + 1)) != 0) goto done;
    size_t max_tokens = 0;
    gptoss_context_get_max_tokens(e.context, &max_tokens);
    if (P > max_tokens || N + 1 > max_tokens) {
        fprintf(stderr, "gptoss bench: -p %zu / -n %zu do not fit the context (%zu tokens)\n", P, N, max_tokens);
        goto done;
    }
    uint32_t num_text = 0;
    gptoss_tokenizer_get_num_text_tokens(e.tokenizer, &num_text);
    if (num_text == 0) {
        fprintf(stderr, "gptoss bench: the model has no text tokens\n");
        goto done;
    }
    ids = malloc(P * sizeof(uint32_t));
    out = malloc((N + 1) * sizeof(uint32_t));
    runs = malloc(o.repetitions * sizeof(double));
    if (ids == NULL || out == NULL || runs == NULL) {
        fprintf(stderr, "gptoss bench: out of memory\n");
        goto done;
    }
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < P; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        ids[i] = (uint32_t) (x % num_text);
    }
    const char* bname = gptoss_backend_get_name(e.backend);
    printf("| %-24s | %-28s | %8s | %6s | %18s |\n", "model", "backend", "threads", "test", "t/s");
    printf("| %.24s | %.28s | %.8s | %.6s | %.18s |\n", "------------------------------", "------------------------------",
           "--------", "------", "------------------");
    const char* mname = e.label;
    fprintf(stderr, "model: %s, %s in %.3f s\n", e.label, o.random != NULL ? "created" : "loaded", e.load_s);
    char threads[24];
    if (o.threads == 0) snprintf(threads, sizeof(threads), "auto");
    else snprintf(threads, sizeof(threads), "%llu", o.threads);
    if (strcmp(o.backend, "cuda") == 0) snprintf(threads, sizeof(threads), "-");
    enum gptoss_status st;
    /* warm-up, not timed: a prefill of one full chunk (min(P, max_batch_tokens) tokens: the
     * kernels, modules and pools the timed prefill uses; 8 tokens would not reach the CUDA
     * prefill paths) and one decode step from a 1-token context as in tg (page-in, thread
     * start, the decode paths), then a reset */
    {
        size_t chunk = 0;
        st = gptoss_context_get_max_batch_tokens(e.context, &chunk);
        if (st != gptoss_status_success) {
            engine_error("warm-up", st);
            goto done;
        }
        const size_t w = P < chunk ? P : chunk; /* P <= max_tokens (checked above) */
        const uint32_t other = (ids[0] + 1) % num_text;
        size_t got;
        st = gptoss_context_append_tokens(e.context, w, ids);
        if (st == gptoss_status_success) st = gptoss_context_process(e.context);
        if (st == gptoss_status_success) st = gptoss_context_reset(e.context);
        if (st == gptoss_status_success) st = gptoss_context_append_tokens(e.context, 1, &other);
        if (st == gptoss_status_success) st = gptoss_context_sample(e.context, NULL, 1, out, &got);
        if (st != gptoss_status_success) {
            engine_error("warm-up", st);
            goto done;
        }
        gptoss_context_reset(e.context);
        gptoss_context_reset_profile(e.context); /* $GPTOSS_PROFILE: the table covers the timed runs */
    }
    for (size_t rep = 0; rep < o.repetitions; rep++) {
        /* a fresh context: reset, then a first token that differs so nothing is reused */
        gptoss_context_reset(e.context);
        uint32_t other = (ids[0] + 1) % num_text;
        gptoss_context_append_tokens(e.context, 1, &other);
        gptoss_context_reset(e.context);
        st = gptoss_context_append_tokens(e.context, P, ids);
        const double t0 = now_s();
        if (st == gptoss_status_success) st = gptoss_context_process(e.context);
        const double t1 = now_s();
        if (st != gptoss_status_success) {
            engine_error("prefill", st);
            goto done;
        }
        runs[rep] = (double) P / (t1 - t0);
    }
    double mean, sd;
    char test[32], tps[48];
    mean_std(runs, o.repetitions, &mean, &sd);
    snprintf(test, sizeof(test), "pp%zu", P);
    snprintf(tps, sizeof(tps), "%.2f ± %.2f", mean, sd);
    printf("| %-24.24s | %-28.28s | %8s | %6s | %18s |\n", mname, bname, threads, test, tps);
    int w = gptoss_cli_check_stdout(g_cmd);
    if (w != 0) {
        rc = w > 0;
        goto done;
    }
    uint32_t bw_threads = (uint32_t) o.threads;
    if (bw_threads == 0) {
        const long np = sysconf(_SC_NPROCESSORS_ONLN);
        bw_threads = np > 0 ? (uint32_t) np : 1;
    }
    if (N > 0) {
        double gbs[2 * BW_PASSES];
        const int before = bench_bandwidth(e.backend, bw_threads, gbs);
        for (size_t rep = 0; rep < o.repetitions; rep++) {
            gptoss_context_reset(e.context);
            uint32_t first = (ids[0] + 1 + (uint32_t) rep) % num_text; /* differs from the cached token */
            st = gptoss_context_append_tokens(e.context, 1, &first);
            size_t got = 0;
            const double t0 = now_s();
            if (st == gptoss_status_success) st = gptoss_context_sample(e.context, NULL, N, out, &got);
            const double t1 = now_s();
            if (st != gptoss_status_success || got != N) {
                engine_error("decode", st);
                goto done;
            }
            runs[rep] = (double) N / (t1 - t0);
        }
        mean_std(runs, o.repetitions, &mean, &sd);
        snprintf(test, sizeof(test), "tg%zu", N);
        snprintf(tps, sizeof(tps), "%.2f ± %.2f", mean, sd);
        printf("| %-24.24s | %-28.28s | %8s | %6s | %18s |\n", mname, bname, threads, test, tps);
        if ((w = gptoss_cli_check_stdout(g_cmd)) != 0) {
            rc = w > 0;
            goto done;
        }
        const int after = before && bench_bandwidth(e.backend, bw_threads, gbs + BW_PASSES);
        report_decode_bound(&e, N, mean, bw_threads, gbs, before ? (after ? 2 * BW_PASSES : BW_PASSES) : 0);
    }
    gptoss_context_print_profile(e.context, stderr); /* only with $GPTOSS_PROFILE */
    rc = 0;
done:
    free(ids);
    free(out);
    free(runs);
    engine_close(&e);
    return rc;
}

/* ---- dispatch ------------------------------------------------------------------------ */

#ifndef GPTOSS_VERSION
#error "GPTOSS_VERSION (the CMake project version) is not defined"
#endif

static int run_command(const char* cmd, int argc, char** argv) {
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        help_main();
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("gptoss %s\n", GPTOSS_VERSION);
        return 0;
    }
    if (strcmp(cmd, "generate") == 0) return cmd_generate(argc, argv);
    if (strcmp(cmd, "chat") == 0) return cmd_chat(argc, argv);
    if (strcmp(cmd, "bench") == 0) return cmd_bench(argc, argv);
    if (strcmp(cmd, "tokenize") == 0) return gptoss_cli_tokenize(argc, argv);
    if (strcmp(cmd, "convert") == 0) return gptoss_cli_convert(argc, argv);
    if (strcmp(cmd, "make-model") == 0) return gptoss_cli_make_model(argc, argv);
    if (strcmp(cmd, "inspect") == 0) return gptoss_cli_inspect(argc, argv);
#ifdef GPTOSS_WITH_SERVE
    if (strcmp(cmd, "serve") == 0) return gptoss_cli_serve(argc, argv);
    if (strcmp(cmd, "render") == 0) return gptoss_cli_render(argc, argv);
#else
    if (strcmp(cmd, "serve") == 0 || strcmp(cmd, "render") == 0) {
        fprintf(stderr, "gptoss %s: this build has no server (libmicrohttpd or jansson was missing at build "
                        "time: tools/setup.sh installs them)\n", cmd);
        return 1;
    }
#endif
    fprintf(stderr, "gptoss: unknown command '%s' (see gptoss --help)\n", cmd);
    return EXIT_USAGE;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        help_main();
        return gptoss_cli_check_stdout(g_cmd) > 0 ? 1 : EXIT_USAGE;
    }
    g_cmd = argv[1];
    const int rc = run_command(argv[1], argc - 1, argv + 1);
    /* every subcommand's output, its --help included, must have reached stdout */
    return gptoss_cli_check_stdout(g_cmd) > 0 && rc == 0 ? 1 : rc;
}
