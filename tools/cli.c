/* What the subcommands of the CLI share (cli.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gptoss/engine.h>
#include <gptoss/offline.h>

#include "cli.h"
#include "files.h"
#include "util.h"

/* ---- messages ---------------------------------------------------------------------- */

static const char* g_command = "gptoss";

void gptoss_cli_set_command(const char* command) { g_command = command; }

const char* gptoss_cli_command(void) { return g_command; }

void gptoss_cli_usage_error(const char* format, ...) {
    va_list ap;
    va_start(ap, format);
    fprintf(stderr, "gptoss %s: ", g_command);
    vfprintf(stderr, format, ap);
    fprintf(stderr, " (see gptoss %s --help)\n", g_command);
    va_end(ap);
}

void gptoss_cli_engine_error(const char* what, enum gptoss_status st) {
    const char* msg = gptoss_last_error();
    fprintf(stderr, "gptoss %s: %s failed (%s)%s%s\n", g_command, what, gptoss_status_to_string(st),
            *msg ? ": " : "", msg);
}

int gptoss_cli_check_stdout(void) {
    static int state = 0; /* sticky: a failed stream stays failed */
    if (state != 0) return state;
    errno = 0;
    const int flush_failed = fflush(stdout) != 0;
    const int err = errno;
    if (!flush_failed && !ferror(stdout)) return 0;
    if (err == EPIPE) {
        state = -1;
    } else {
        state = 1;
        fprintf(stderr, "gptoss %s: cannot write to stdout: %s\n", g_command,
                err != 0 ? strerror(err) : "write error");
    }
    return state;
}

int gptoss_cli_check_output(const char* out, int force) {
    struct stat sb;
    if (force || lstat(out, &sb) != 0) return 0;
    fprintf(stderr, "gptoss %s: %s exists: pass --force to replace it\n", g_command, out);
    return GPTOSS_EXIT_USAGE;
}

char* gptoss_cli_read_file(const char* path, size_t* size_out) {
    const int is_stdin = strcmp(path, "-") == 0;
    FILE* f = is_stdin ? stdin : fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "gptoss %s: cannot open '%s': %s\n", g_command, path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char* buf = malloc(cap);
    while (buf != NULL) {
        const size_t r = fread(buf + n, 1, cap - n - 1, f);
        n += r;
        if (n < cap - 1) break;
        char* grown = cap < ((size_t) 1 << 40) ? realloc(buf, cap * 2) : NULL;
        if (grown == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = grown;
        cap *= 2;
    }
    const int failed = buf == NULL || ferror(f);
    if (!is_stdin) fclose(f);
    if (failed) {
        fprintf(stderr, "gptoss %s: cannot read '%s'\n", g_command, is_stdin ? "stdin" : path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *size_out = n;
    return buf;
}

const char* gptoss_cli_vocab_path(const char* flag_value) {
    if (flag_value != NULL) return flag_value;
    const char* env = getenv("GPTOSS_VOCAB");
    return env != NULL && env[0] != '\0' ? env : gptoss_default_vocab_path();
}

/* ---- the engine of generate, chat and bench ------------------------------------------- */

/* $NAME is set to "0". */
static int env_is_zero(const char* name) {
    const char* v = getenv(name);
    return v != NULL && strcmp(v, "0") == 0;
}

int gptoss_cli_batch_invariance(const struct gptoss_cli_run* r) {
    if (r->no_batch_invariant || strcmp(r->batch_invariant, "off") == 0) return gptoss_batch_invariant_off;
    return strcmp(r->batch_invariant, "many") == 0 ? gptoss_batch_invariant_many : gptoss_batch_invariant_on;
}

void gptoss_cli_run_defaults(struct gptoss_cli_run* r) {
    memset(r, 0, sizeof(*r));
    r->backend = "cpu";
    r->isa = "auto";
    r->top_p = 1.0f;
    r->sampler = "auto";
    r->no_fused_ops = env_is_zero("GPTOSS_FUSED_OPS");
    r->no_graphs = env_is_zero("GPTOSS_CUDA_GRAPHS");
    r->no_pdl = env_is_zero("GPTOSS_CUDA_PDL");
    const char* inv = getenv("GPTOSS_BATCH_INVARIANT");
    r->batch_invariant = inv == NULL || inv[0] == '\0'   ? "on"
                         : strcmp(inv, "0") == 0 || strcmp(inv, "off") == 0 ? "off"
                         : strcmp(inv, "2") == 0 || strcmp(inv, "many") == 0 ? "many"
                                                                               : "on";
    const char* prof = getenv("GPTOSS_PROFILE");
    r->profile = prof != NULL && prof[0] != '\0' && strcmp(prof, "0") != 0;
    unsigned long long rows;
    if (gptoss_cli_parse_u64(getenv("GPTOSS_MOE_DENSE_ROWS"), UINT32_MAX, &rows) == 0 && rows >= 1) {
        r->moe_dense_rows = rows;
    }
}

int gptoss_cli_run_check(const struct gptoss_cli_run* r) {
    if ((r->model == NULL) == (r->random == NULL)) {
        gptoss_cli_usage_error("exactly one of -m FILE and --random PRESET is required");
        return -1;
    }
    if (r->random == NULL && r->layers != 0) {
        gptoss_cli_usage_error("--layers needs --random");
        return -1;
    }
    return 0;
}

void gptoss_cli_engine_close(struct gptoss_cli_engine* e) {
    gptoss_sampler_release(e->sampler);
    gptoss_context_release(e->context);
    gptoss_tokenizer_release(e->tokenizer);
    gptoss_model_release(e->model);
    gptoss_backend_release(e->backend);
    memset(e, 0, sizeof(*e));
}

int gptoss_cli_engine_open(const struct gptoss_cli_run* r, struct gptoss_cli_engine* e) {
    memset(e, 0, sizeof(*e));
    enum gptoss_status st;
    if (r->model != NULL && access(r->model, R_OK) != 0) {
        fprintf(stderr, "gptoss %s: cannot read model file '%s': %s\n", g_command, r->model, strerror(errno));
        return 1;
    }
    const long online = sysconf(_SC_NPROCESSORS_ONLN);
    if (strcmp(r->backend, "cpu") == 0 && online > 0 && r->threads > (unsigned long long) online) {
        fprintf(stderr, "gptoss %s: warning: -t %llu is more than the %ld online processors: threads will share them\n",
                g_command, r->threads, online);
    }
    if (strcmp(r->backend, "cuda") == 0) {
        st = gptoss_backend_create_cuda_ex((int) r->device, NULL, r->no_pdl ? GPTOSS_CUDA_NO_PDL : 0, &e->backend);
    } else {
        static const char* const isas[] = {"auto", "scalar", "avx2", "avx512"}; /* enum gptoss_cpu_isa order */
        enum gptoss_cpu_isa isa = gptoss_cpu_isa_auto;
        for (int i = 0; i < 4; i++) {
            if (r->isa != NULL && strcmp(r->isa, isas[i]) == 0) isa = (enum gptoss_cpu_isa) i;
        }
        st = gptoss_backend_create_cpu_isa((uint32_t) r->threads, isa, &e->backend);
    }
    if (st != gptoss_status_success) {
        gptoss_cli_engine_error("creating the backend", st);
        return 1;
    }
    const double t0 = gptoss_now_s();
    if (r->random != NULL) {
        const char* vocab = getenv("GPTOSS_VOCAB");
        st = gptoss_model_create_random_ex(r->random, (uint32_t) r->layers, (uint64_t) r->random_seed,
                                           vocab != NULL && vocab[0] != '\0' ? vocab : NULL, e->backend, &e->model);
        if (r->layers != 0) {
            snprintf(e->label, sizeof(e->label), "random-%s-L%llu (seed %llu)", r->random, r->layers, r->random_seed);
        } else {
            snprintf(e->label, sizeof(e->label), "random-%s (seed %llu)", r->random, r->random_seed);
        }
    } else {
        st = gptoss_model_create_from_file_ex(r->model, e->backend, r->no_mmap ? GPTOSS_MODEL_NO_MMAP : 0, &e->model);
        const char* slash = strrchr(r->model, '/');
        snprintf(e->label, sizeof(e->label), "%s", slash != NULL ? slash + 1 : r->model);
    }
    if (st != gptoss_status_success) {
        gptoss_cli_engine_error(r->random != NULL ? "creating the random model" : "loading the model", st);
        gptoss_cli_engine_close(e);
        return 1;
    }
    e->load_s = gptoss_now_s() - t0;
    st = gptoss_model_get_tokenizer(e->model, &e->tokenizer);
    if (st != gptoss_status_success) {
        gptoss_cli_engine_error("getting the tokenizer", st);
        gptoss_cli_engine_close(e);
        return 1;
    }
    return 0;
}

void gptoss_cli_context_params(const struct gptoss_cli_run* r, size_t context_length,
                               struct gptoss_context_params* params) {
    gptoss_context_params_init(params);
    params->context_length = context_length;
    params->max_batch_tokens = (size_t) r->batch;
    params->moe_dense_min_rows = (uint32_t) r->moe_dense_rows;
    params->fused_ops = !r->no_fused_ops;
    params->graphs = !r->no_graphs;
    params->batch_invariant = gptoss_cli_batch_invariance(r);
    params->profile = r->profile;
    params->sampling = strcmp(r->sampler, "host") == 0      ? gptoss_sampling_host
                       : strcmp(r->sampler, "kernels") == 0 ? gptoss_sampling_kernels
                                                            : gptoss_sampling_auto;
}

int gptoss_cli_make_context(const struct gptoss_cli_run* r, struct gptoss_cli_engine* e, size_t wanted) {
    size_t max_ctx = 0;
    gptoss_model_get_max_context_length(e->model, &max_ctx);
    size_t ctx = r->context != 0 ? (size_t) r->context : wanted;
    if (ctx > max_ctx) {
        if (r->context != 0) {
            fprintf(stderr, "gptoss %s: -c %zu exceeds the model's context length %zu\n", g_command, ctx, max_ctx);
            return 1;
        }
        ctx = max_ctx;
    }
    if (ctx == 0) ctx = 1;
    struct gptoss_context_params params;
    gptoss_cli_context_params(r, ctx, &params);
    const enum gptoss_status st = gptoss_context_create_with_params(e->model, &params, &e->context);
    if (st != gptoss_status_success) {
        gptoss_cli_engine_error("creating the context", st);
        return 1;
    }
    return 0;
}

/* "ID=BIAS,ID=BIAS,..." -> ids[], biases[] (at most max entries); 0 and a message on error */
static int parse_logit_bias(const char* text, uint32_t* ids, float* biases, size_t max, size_t* num_out) {
    size_t n = 0;
    const char* p = text;
    while (*p != '\0') {
        char* end = NULL;
        errno = 0;
        const unsigned long long id = strtoull(p, &end, 10);
        if (end == p || *end != '=' || errno != 0 || id > UINT32_MAX || *p == '-' || *p == '+') {
            fprintf(stderr, "gptoss: --logit-bias: expected ID=BIAS at \"%s\"\n", p);
            return 0;
        }
        p = end + 1;
        errno = 0;
        const float bias = strtof(p, &end);
        if (end == p || (*end != ',' && *end != '\0') || errno != 0 || !isfinite(bias)) {
            fprintf(stderr, "gptoss: --logit-bias: expected a finite bias after \"%llu=\", at \"%s\"\n", id, p);
            return 0;
        }
        if (n == max) {
            fprintf(stderr, "gptoss: --logit-bias: more than %zu entries\n", max);
            return 0;
        }
        ids[n] = (uint32_t) id;
        biases[n++] = bias;
        p = *end == ',' ? end + 1 : end;
    }
    *num_out = n;
    return 1;
}

int gptoss_cli_make_sampler(const struct gptoss_cli_run* r, struct gptoss_cli_engine* e) {
    enum gptoss_status st = gptoss_sampler_create(&e->sampler);
    if (st == gptoss_status_success) st = gptoss_sampler_set_temperature(e->sampler, r->temperature);
    if (st == gptoss_status_success) st = gptoss_sampler_set_top_p(e->sampler, r->top_p);
    if (st == gptoss_status_success) st = gptoss_sampler_set_top_k(e->sampler, (uint32_t) r->top_k);
    if (st == gptoss_status_success) st = gptoss_sampler_set_presence_penalty(e->sampler, r->presence);
    if (st == gptoss_status_success) st = gptoss_sampler_set_frequency_penalty(e->sampler, r->frequency);
    if (st == gptoss_status_success) st = gptoss_sampler_set_seed(e->sampler, (uint64_t) r->seed);
    if (st == gptoss_status_success && r->logit_bias != NULL) {
        enum { kMaxCliBias = 1024 };
        uint32_t ids[kMaxCliBias];
        float biases[kMaxCliBias];
        size_t n = 0;
        if (!parse_logit_bias(r->logit_bias, ids, biases, kMaxCliBias, &n)) return 1;
        uint32_t vocab = 0;
        if (e->tokenizer != NULL && gptoss_tokenizer_get_num_tokens(e->tokenizer, &vocab) == gptoss_status_success) {
            for (size_t i = 0; i < n; i++) { /* refused before any output (the engine checks it when drawing) */
                if (ids[i] >= vocab) {
                    fprintf(stderr, "gptoss: --logit-bias: token id %u is past the vocabulary (%u tokens)\n", ids[i],
                            vocab);
                    return 1;
                }
            }
        }
        st = gptoss_sampler_set_logit_bias(e->sampler, n, ids, biases);
    }
    if (st != gptoss_status_success) {
        gptoss_cli_engine_error("creating the sampler", st);
        return 1;
    }
    return 0;
}

uint32_t gptoss_cli_special_id(const struct gptoss_cli_engine* e, enum gptoss_special_token t) {
    uint32_t id = UINT32_MAX;
    if (gptoss_tokenizer_get_special_token_id(e->tokenizer, t, &id) != gptoss_status_success) return UINT32_MAX;
    return id;
}

void gptoss_cli_write_token(const struct gptoss_cli_engine* e, uint32_t id, FILE* f) {
    const void* p = NULL;
    size_t n = 0;
    if (gptoss_tokenizer_decode(e->tokenizer, id, &p, &n) == gptoss_status_success && n != 0) fwrite(p, 1, n, f);
}

void gptoss_cli_print_speeds(size_t n_prefill, size_t n_cached, size_t generated, double t0, double t_first,
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
