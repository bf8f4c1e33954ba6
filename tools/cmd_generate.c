/* gptoss generate: completes a prompt (plain text, no chat template), streaming the text
 * to stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

static void help(void) {
    printf("usage: gptoss generate (-m FILE | --random PRESET) (-p PROMPT | -f FILE) [-n N] [options]\n"
           "Completes the prompt (plain text, no chat template) and streams the text to stdout;\n"
           "timings (load, prefill and decode tokens/s) go to stderr.\n" GPTOSS_CLI_MODEL_HELP
           "  -p, --prompt TEXT    prompt text\n"
           "  -f, --prompt-file F  read the prompt from a file (- = stdin)\n"
           "  -n, --n-predict N    tokens to generate (default 128)\n"
           "  --ignore-eos         do not stop at <|return|> / <|call|>\n" GPTOSS_CLI_SAMPLING_HELP GPTOSS_CLI_BACKEND_HELP);
}

/* The prompt's token ids (*ids_out malloc'ed, *n_out of them, at least one). 0, or 1
 * after saying why. */
static int tokenize_prompt(const struct gptoss_cli_engine* e, const char* prompt, size_t size, uint32_t** ids_out,
                           size_t* n_out) {
    size_t n = 0;
    /* count the tokens first, to size the buffer and the context */
    enum gptoss_status st = gptoss_tokenizer_encode(e->tokenizer, prompt, size, NULL, 0, &n);
    if (st != gptoss_status_success && st != gptoss_status_insufficient_memory) {
        gptoss_cli_engine_error("tokenizing the prompt", st);
        return 1;
    }
    if (n == 0) {
        fprintf(stderr, "gptoss generate: the prompt is empty\n");
        return 1;
    }
    uint32_t* ids = malloc(n * sizeof(uint32_t));
    if (ids == NULL) {
        fprintf(stderr, "gptoss generate: out of memory\n");
        return 1;
    }
    st = gptoss_tokenizer_encode(e->tokenizer, prompt, size, ids, n, &n);
    if (st != gptoss_status_success) {
        gptoss_cli_engine_error("tokenizing the prompt", st);
        free(ids);
        return 1;
    }
    *ids_out = ids;
    *n_out = n;
    return 0;
}

/* Prefill, then up to num_tokens tokens streamed to stdout (stopping at <|return|> and
 * <|call|> unless ignore_eos); timings to stderr. The exit status. */
static int generate(struct gptoss_cli_engine* e, const uint32_t* ids, size_t n_prompt, size_t num_tokens,
                    int ignore_eos) {
    /* prefill all but the last prompt token; the first sample step runs the last one and
     * produces its logits (no token is run twice) */
    const double t0 = gptoss_now_s();
    enum gptoss_status st = gptoss_context_append_tokens(e->context, n_prompt - 1, ids);
    if (st == gptoss_status_success) st = gptoss_context_process(e->context);
    if (st == gptoss_status_success) st = gptoss_context_append_tokens(e->context, 1, ids + n_prompt - 1);
    if (st != gptoss_status_success) {
        gptoss_cli_engine_error("prefill", st);
        return 1;
    }
    const uint32_t stop_return = gptoss_cli_special_id(e, gptoss_special_token_return);
    const uint32_t stop_call = gptoss_cli_special_id(e, gptoss_special_token_call);
    double t_first = 0.0;
    size_t generated = 0;
    int overflow = 0, w;
    while (generated < num_tokens) {
        uint32_t tok;
        size_t got = 0;
        st = gptoss_context_sample(e->context, e->sampler, 1, &tok, &got);
        if (st == gptoss_status_context_overflow || (st == gptoss_status_success && got == 0)) {
            overflow = 1;
            break;
        }
        if (st != gptoss_status_success) {
            fputc('\n', stdout);
            gptoss_cli_engine_error("decode", st);
            return 1;
        }
        if (generated == 0) t_first = gptoss_now_s();
        generated++;
        gptoss_cli_write_token(e, tok, stdout);
        if ((w = gptoss_cli_check_stdout()) != 0) return w > 0;
        if (!ignore_eos && (tok == stop_return || tok == stop_call)) break;
    }
    const double t_end = gptoss_now_s();
    fputc('\n', stdout);
    if ((w = gptoss_cli_check_stdout()) != 0) return w > 0;
    size_t max_tokens = 0;
    gptoss_context_get_max_tokens(e->context, &max_tokens);
    if (overflow) fprintf(stderr, "gptoss generate: context full (%zu tokens), stopped\n", max_tokens);
    fprintf(stderr, "load: %.3f s (%s, %s)\n", e->load_s, e->label, gptoss_backend_get_name(e->backend));
    gptoss_cli_print_speeds(n_prompt, 0, generated, t0, t_first, t_end);
    return 0;
}

int gptoss_cmd_generate(int argc, char** argv) {
    struct {
        struct gptoss_cli_run run;
        const char *prompt, *prompt_file;
        unsigned long long num_tokens;
        int ignore_eos;
    } o = {.prompt = NULL, .prompt_file = NULL, .num_tokens = 128, .ignore_eos = 0};
    gptoss_cli_run_defaults(&o.run);
    const struct gptoss_option options[] = {
        GPTOSS_CLI_MODEL_OPTIONS(&o.run),
        GPTOSS_CLI_SAMPLING_OPTIONS(&o.run),
        GPTOSS_CLI_BACKEND_OPTIONS(&o.run),
        GPTOSS_OPTION_STRING("prompt", 'p', &o.prompt),
        GPTOSS_OPTION_STRING("prompt-file", 'f', &o.prompt_file),
        GPTOSS_OPTION_U64("n-predict", 'n', &o.num_tokens, 0, 1u << 24),
        GPTOSS_OPTION_U64("n-gen", 0, &o.num_tokens, 0, 1u << 24),
        GPTOSS_OPTION_FLAG("ignore-eos", 0, &o.ignore_eos),
    };
    const int r = gptoss_options_parse(argc, argv, options, sizeof(options) / sizeof(options[0]), help, NULL, 0, NULL);
    if (r != 0) return r > 0 ? 0 : GPTOSS_EXIT_USAGE;
    if (gptoss_cli_run_check(&o.run) != 0) return GPTOSS_EXIT_USAGE;
    if ((o.prompt == NULL) == (o.prompt_file == NULL)) {
        gptoss_cli_usage_error("exactly one of -p PROMPT and -f FILE is required");
        return GPTOSS_EXIT_USAGE;
    }
    char* file_text = NULL;
    size_t prompt_size;
    const char* prompt = o.prompt;
    if (o.prompt_file != NULL) {
        file_text = gptoss_cli_read_file(o.prompt_file, &prompt_size);
        if (file_text == NULL) return 1;
        prompt = file_text;
    } else {
        prompt_size = strlen(prompt);
    }
    struct gptoss_cli_engine e;
    uint32_t* ids = NULL;
    size_t n_prompt = 0, max_tokens = 0;
    int rc = gptoss_cli_engine_open(&o.run, &e);
    if (rc != 0) goto done;
    if ((rc = tokenize_prompt(&e, prompt, prompt_size, &ids, &n_prompt)) != 0) goto done;
    if ((rc = gptoss_cli_make_context(&o.run, &e, n_prompt + (size_t) o.num_tokens)) != 0) goto done;
    if ((rc = gptoss_cli_make_sampler(&o.run, &e)) != 0) goto done;
    gptoss_context_get_max_tokens(e.context, &max_tokens);
    if (n_prompt > max_tokens) {
        fprintf(stderr, "gptoss generate: the prompt has %zu tokens, the context holds %zu\n", n_prompt, max_tokens);
        rc = 1;
        goto done;
    }
    fwrite(prompt, 1, prompt_size, stdout);
    const int w = gptoss_cli_check_stdout();
    rc = w != 0 ? w > 0 : generate(&e, ids, n_prompt, (size_t) o.num_tokens, o.ignore_eos);
done:
    free(ids);
    free(file_text);
    gptoss_cli_engine_close(&e);
    return rc;
}
