/* The gptoss CLI: one file per subcommand (cmd_<name>.c), the options module (options.h)
 * and what the subcommands share (cli.c): messages, checked stdout, reading files, and
 * for generate, chat and bench the engine they run (backend, model, context, sampler)
 * with the options that set it up.
 *
 * gptoss_cmd_<name>(argc, argv): argv[0] is the subcommand's name, its options follow.
 * Returns the exit status: 0 success, 1 failure (bad file, engine error, a failed write
 * to stdout), 2 usage error. */
#ifndef GPTOSS_TOOLS_CLI_H
#define GPTOSS_TOOLS_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <gptoss/engine.h>

#include "options.h"

#define GPTOSS_EXIT_USAGE 2

int gptoss_cmd_generate(int argc, char** argv);
int gptoss_cmd_chat(int argc, char** argv);
int gptoss_cmd_bench(int argc, char** argv);
int gptoss_cmd_tokenize(int argc, char** argv);
int gptoss_cmd_inspect(int argc, char** argv);
int gptoss_cmd_convert(int argc, char** argv);
int gptoss_cmd_make_model(int argc, char** argv);

/* ---- messages ---------------------------------------------------------------------- */

/* The subcommand messages name ("gptoss CMD: ..."); set by main. */
void gptoss_cli_set_command(const char* command);
const char* gptoss_cli_command(void);
/* "gptoss CMD: MESSAGE (see gptoss CMD --help)" on stderr. */
void gptoss_cli_usage_error(const char* format, ...) __attribute__((format(printf, 1, 2)));
/* "gptoss CMD: WHAT failed (STATUS): MESSAGE" on stderr, the message of gptoss_last_error. */
void gptoss_cli_engine_error(const char* what, enum gptoss_status status);

/* Checked output: flushes stdout and tells whether everything written to it so far
 * arrived. 0: yes. 1: a write failed (full disk, I/O error, closed stdout); "gptoss CMD:
 * cannot write to stdout: REASON" was printed on stderr (once per process); stop writing
 * and end with status 1. -1: the reader went away (EPIPE, as in `gptoss ... | head -1` when
 * SIGPIPE is ignored; by default SIGPIPE ends the process first): stop writing, quietly,
 * without changing the exit status (as coreutils' close_stdout with EPIPE ignored).
 * Called after every streamed token, after each table row, and at the end. */
int gptoss_cli_check_stdout(void);

/* Output files of convert/make-model: 0 if `out` does not exist or `force`; otherwise
 * prints "gptoss CMD: OUT exists: pass --force to replace it" and returns 2. */
int gptoss_cli_check_output(const char* out, int force);

/* The whole file ("-" = stdin), NUL-terminated (not counted in *size_out); NULL after
 * printing why. Free with free(). */
char* gptoss_cli_read_file(const char* path, size_t* size_out);

/* The o200k vocabulary: the flag's value, else $GPTOSS_VOCAB, else the default lookup. */
const char* gptoss_cli_vocab_path(const char* flag_value);

/* ---- the engine of generate, chat and bench ------------------------------------------- */

struct gptoss_cli_run {
    /* model: -m FILE, or --random PRESET [--layers N] [--random-seed S] */
    const char* model;
    const char* random;
    unsigned long long layers, random_seed;
    /* backend and context */
    const char* backend;              /* "cpu" | "cuda" */
    const char* isa;                  /* cpu: "auto" | "scalar" | "avx2" | "avx512" */
    unsigned long long device, threads, context, batch, moe_dense_rows;
    int no_mmap, no_fused_ops, no_graphs, no_pdl, profile, no_batch_invariant;
    /* sampling */
    float temperature, top_p, presence, frequency;
    unsigned long long top_k, seed;
    const char* sampler;              /* "auto" | "host" | "kernels": params.sampling */
    const char* logit_bias;           /* "ID=BIAS,ID=BIAS,...": gptoss_sampler_set_logit_bias */
    const char* batch_invariant;      /* "on" | "many" | "off": params.batch_invariant */
};

/* The defaults, with the environment's (GPTOSS_FUSED_OPS=0, GPTOSS_CUDA_GRAPHS=0,
 * GPTOSS_CUDA_PDL=0, GPTOSS_PROFILE=1, GPTOSS_MOE_DENSE_ROWS=N,
 * GPTOSS_BATCH_INVARIANT=on|many|off) under the flags: call
 * before parsing. */
void gptoss_cli_run_defaults(struct gptoss_cli_run* run);
/* params.batch_invariant of the run's flags (enum gptoss_batch_invariance). */
int gptoss_cli_batch_invariance(const struct gptoss_cli_run* run);
/* After parsing: exactly one of -m and --random, --layers only with --random; 0 or -1
 * (usage error printed). */
int gptoss_cli_run_check(const struct gptoss_cli_run* run);

/* Option table entries: the model (--random-seed; bench adds -s/--seed itself), backend
 * and context, and sampling options; and their --help lines. */
#define GPTOSS_CLI_MODEL_OPTIONS(r)                                                   \
    GPTOSS_OPTION_STRING("model", 'm', &(r)->model),                                  \
    GPTOSS_OPTION_CHOICE("random", 0, &(r)->random, "tiny|20b|120b"),                 \
    GPTOSS_OPTION_U64("layers", 0, &(r)->layers, 1, 1024),                            \
    GPTOSS_OPTION_U64("random-seed", 0, &(r)->random_seed, 0, UINT64_MAX)
#define GPTOSS_CLI_BACKEND_OPTIONS(r)                                                 \
    GPTOSS_OPTION_CHOICE("backend", 0, &(r)->backend, "cpu|cuda"),                    \
    GPTOSS_OPTION_CHOICE("isa", 0, &(r)->isa, "auto|scalar|avx2|avx512"),             \
    GPTOSS_OPTION_U64("device", 0, &(r)->device, 0, 1023),                            \
    GPTOSS_OPTION_U64("threads", 't', &(r)->threads, 0, 1024),                        \
    GPTOSS_OPTION_U64("ctx-size", 'c', &(r)->context, 1, UINT32_MAX),                 \
    GPTOSS_OPTION_U64("batch-size", 'b', &(r)->batch, 1, 65536),                      \
    GPTOSS_OPTION_FLAG("no-mmap", 0, &(r)->no_mmap),                                  \
    GPTOSS_OPTION_FLAG("no-fused-ops", 0, &(r)->no_fused_ops),                        \
    GPTOSS_OPTION_FLAG("no-graphs", 0, &(r)->no_graphs),                              \
    GPTOSS_OPTION_FLAG("no-pdl", 0, &(r)->no_pdl),                                    \
    GPTOSS_OPTION_FLAG("no-batch-invariant", 0, &(r)->no_batch_invariant),            \
    GPTOSS_OPTION_CHOICE("batch-invariant", 0, &(r)->batch_invariant, "on|many|off"), \
    GPTOSS_OPTION_U64("moe-dense-rows", 0, &(r)->moe_dense_rows, 1, UINT32_MAX)
#define GPTOSS_CLI_DRAW_OPTIONS(r)                                                    \
    GPTOSS_OPTION_F32("temp", 0, &(r)->temperature, 0.0, 1e6),                        \
    GPTOSS_OPTION_F32("temperature", 0, &(r)->temperature, 0.0, 1e6),                 \
    GPTOSS_OPTION_F32("top-p", 0, &(r)->top_p, 1e-9, 1.0),                            \
    GPTOSS_OPTION_U64("top-k", 0, &(r)->top_k, 0, UINT32_MAX),                        \
    GPTOSS_OPTION_F32("presence-penalty", 0, &(r)->presence, -1e6, 1e6),              \
    GPTOSS_OPTION_F32("frequency-penalty", 0, &(r)->frequency, -1e6, 1e6),            \
    GPTOSS_OPTION_STRING("logit-bias", 0, &(r)->logit_bias),                          \
    GPTOSS_OPTION_CHOICE("sampler", 0, &(r)->sampler, "auto|host|kernels")
#define GPTOSS_CLI_SAMPLING_OPTIONS(r) \
    GPTOSS_CLI_DRAW_OPTIONS(r), GPTOSS_OPTION_U64("seed", 's', &(r)->seed, 0, UINT64_MAX)

#define GPTOSS_CLI_MODEL_HELP                                                                      \
    "  -m, --model FILE     model file (GPT-OSS v1.0)\n"                                               \
    "  --random PRESET      instead of -m: random weights made in backend memory (no file),\n"       \
    "                       shapes of make-model's presets: tiny | 20b | 120b\n"                       \
    "  --layers N           with --random: N layers instead of the preset's\n"                        \
    "  --random-seed S      with --random: weight seed (default 0)\n"
#define GPTOSS_CLI_DRAW_HELP                                                                       \
    "  --temp T             temperature, divides the logits (default 0 = greedy)\n"                    \
    "  --top-p P            nucleus sampling, 0 < P <= 1 (default 1 = off)\n"                          \
    "  --top-k K            keep the K most likely tokens (default 0 = off)\n"                         \
    "  --presence-penalty X, --frequency-penalty X   (default 0)\n"                                    \
    "  --logit-bias ID=B[,ID=B...]  add B to token ID's logit before each draw (e.g.\n"              \
    "                       200002=-100 all but forbids it; such draws run on the host)\n"        \
    "  --sampler W          where a token is drawn: host (the logits are copied to the host),\n"     \
    "                       kernels (on the backend) or auto (default: host on cpu, kernels\n"        \
    "                       on cuda); the same distribution, tokens differ only at near ties\n"
#define GPTOSS_CLI_SAMPLING_HELP GPTOSS_CLI_DRAW_HELP "  -s, --seed S         sampling seed (default 0)\n"
#define GPTOSS_CLI_BACKEND_HELP                                                                    \
    "  --backend cpu|cuda   where to run (default cpu)\n"                                              \
    "  --isa auto|scalar|avx2|avx512   cpu: the kernels' instruction set (default auto: the\n"    \
    "                       best this processor runs)\n"                                              \
    "  --device N           CUDA device (default 0)\n"                                                 \
    "  -t, --threads N      CPU threads (default: one per online processor; more warns)\n"             \
    "  -c, --ctx-size N     context length (default: as needed, at most the model's)\n"                \
    "  -b, --batch-size N   prefill chunk, max_batch_tokens (default: 128 cpu, 512 cuda)\n"            \
    "  --no-mmap            cpu: copy the weights into memory with huge pages instead of\n"            \
    "                       mapping the file (slower load, faster decode)\n"                           \
    "  --no-fused-ops       the fused kernels' parts as separate calls (same results; for\n"           \
    "                       comparison; $GPTOSS_FUSED_OPS=0 too)\n"                                    \
    "  --no-graphs          cuda: decode steps as direct kernel launches instead of recorded\n"        \
    "                       graphs (same results; $GPTOSS_CUDA_GRAPHS=0 too)\n"                        \
    "  --no-pdl             cuda: no programmatic dependent launch (same results;\n"                   \
    "                       $GPTOSS_CUDA_PDL=0 too)\n"                                                 \
    "  --batch-invariant on|many|off   a sequence's results bit for bit the same alone or\n"     \
    "                       among others, however its prompt is chunked (on cuda; the cpu's\n"      \
    "                       always are). on (default): drawn tokens as a token alone (exact f32\n"  \
    "                       decode; many streams slower); many: every token in the prefill\n"      \
    "                       kernels' arithmetic (split-bf16 tensor cores; many streams decode\n"   \
    "                       on off's kernels, one runs slower); off: each step's kernels by rows\n" \
    "                       --no-batch-invariant is off; $GPTOSS_BATCH_INVARIANT too\n"           \
    "  --moe-dense-rows N   with --batch-invariant off: a group of N or more rows runs the\n"        \
    "                       expert-grouped MoE kernels (default: the backend's: never on cpu;\n"     \
    "                       on cuda 4 rows per expert on average: 32 for 20b, 128 for 120b;\n"       \
    "                       $GPTOSS_MOE_DENSE_ROWS)\n"

/* The engine of one run. */
struct gptoss_cli_engine {
    gptoss_backend_t backend;
    gptoss_model_t model;
    gptoss_tokenizer_t tokenizer;
    gptoss_context_t context;
    gptoss_sampler_t sampler;
    double load_s;
    char label[96]; /* "m20b.bin" or "random-20b (seed 0)" */
};
/* Backend, model, tokenizer (0, or 1 after printing why). */
int gptoss_cli_engine_open(const struct gptoss_cli_run* run, struct gptoss_cli_engine* e);
/* The options of a context or batch of context_length tokens from run (the rest defaults). */
void gptoss_cli_context_params(const struct gptoss_cli_run* run, size_t context_length,
                               struct gptoss_context_params* params);
/* The context: -c, else `wanted` tokens, at most the model's; the other params from run. */
int gptoss_cli_make_context(const struct gptoss_cli_run* run, struct gptoss_cli_engine* e, size_t wanted);
int gptoss_cli_make_sampler(const struct gptoss_cli_run* run, struct gptoss_cli_engine* e);
void gptoss_cli_engine_close(struct gptoss_cli_engine* e);
/* The bytes of token id to f (nothing for an unknown id). */
void gptoss_cli_write_token(const struct gptoss_cli_engine* e, uint32_t id, FILE* f);
/* The id of a special token, UINT32_MAX if the tokenizer has none. */
uint32_t gptoss_cli_special_id(const struct gptoss_cli_engine* e, enum gptoss_special_token t);
/* stderr: the prefill rate (the n_prefill tokens computed, from t0 to the first sampled
 * token at t_first; n_cached more came from the KV cache) and the decode rate (the other
 * generated - 1 tokens, up to t_end). */
void gptoss_cli_print_speeds(size_t n_prefill, size_t n_cached, size_t generated, double t0, double t_first,
                             double t_end);

#endif
