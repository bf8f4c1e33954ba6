/* gptoss inspect: the header fields and layout of a model file (the format module,
 * engine/format.h). */
#include <stdio.h>

#include <gptoss/engine.h>

#include "cli.h"
#include "format.h"

static void help(void) {
    printf("usage: gptoss inspect MODEL\n"
           "  Validates a model file (header, tokenizer, layout against the file size) and prints\n"
           "  its header fields and tensor layout. Reads no weights.\n");
}

int gptoss_cmd_inspect(int argc, char** argv) {
    char* path = NULL;
    size_t n = 0;
    const int r = gptoss_options_parse(argc, argv, NULL, 0, help, &path, 1, &n);
    if (r != 0) return r > 0 ? 0 : GPTOSS_EXIT_USAGE;
    if (n == 0) {
        gptoss_cli_usage_error("MODEL is required");
        return GPTOSS_EXIT_USAGE;
    }
    uint64_t size = 0;
    struct gptoss_file_info in;
    enum gptoss_status st = gptoss_file_read_header(path, &size, &in);
    if (st != gptoss_status_success) {
        fprintf(stderr, "gptoss inspect: %s: %s\n", gptoss_status_to_string(st), gptoss_last_error());
        return 1;
    }
    const struct gptoss_model_config* c = &in.config;
    printf("file                 %s (%llu bytes; layout needs %llu)\n", path, (unsigned long long) size,
           (unsigned long long) in.file_size);
    printf("context_length       %u\nnum_blocks           %u\nnum_experts          %u\nnum_active_experts   %u\n",
           c->context_length, c->num_blocks, c->num_experts, c->num_active_experts);
    printf("embedding_dim        %u\nmlp_dim              %u\nswiglu_limit         %.9g\nhead_dim             %u\n",
           c->embedding_dim, c->mlp_dim, (double) c->swiglu_limit, c->head_dim);
    printf("num_heads            %u\nnum_kv_heads         %u\nattention_window     %u\nrope_theta           %.9g\n",
           c->num_heads, c->num_kv_heads, c->attention_window, (double) c->rope_theta);
    printf("interpolation_scale  %.9g\nyarn_offset          %.9g\nyarn_scale           %.9g\nyarn_multiplier      %.9g\n",
           (double) c->interpolation_scale, (double) c->yarn_offset, (double) c->yarn_scale, (double) c->yarn_multiplier);
    printf("rmsnorm_epsilon      %.9g\n", (double) c->rmsnorm_epsilon);
    printf("tokens               %u text + %u special; regex %u bytes; token table %u bytes\n", in.num_text_tokens,
           in.num_special_tokens, in.regex_size, in.tokens_size);
    printf("weights at           %llu (shared %llu, per block %llu, MoE per layer %llu, per expert %zu)\n",
           (unsigned long long) in.weights_offset, (unsigned long long) in.shared_size, (unsigned long long) in.per_block,
           (unsigned long long) in.moe_size, in.expert.per_expert);
    if (size < in.file_size) {
        fprintf(stderr, "gptoss inspect: %s: file is truncated (%llu < %llu bytes)\n", path, (unsigned long long) size,
                (unsigned long long) in.file_size);
        return 1;
    }
    gptoss_tokenizer_t tok;
    st = gptoss_tokenizer_create_from_file(path, &tok);
    if (st != gptoss_status_success) {
        fprintf(stderr, "gptoss inspect: %s: %s\n", gptoss_status_to_string(st), gptoss_last_error());
        return 1;
    }
    printf("special tokens      ");
    for (int e = 1; e < gptoss_special_token_max; e++) {
        uint32_t id;
        if (gptoss_tokenizer_get_special_token_id(tok, (enum gptoss_special_token) e, &id) == gptoss_status_success) {
            const void* p;
            size_t n;
            gptoss_tokenizer_decode(tok, id, &p, &n);
            printf(" %.*s=%u", (int) n, (const char*) p, id);
        }
    }
    printf("\n");
    gptoss_tokenizer_release(tok);
    return gptoss_cli_check_stdout() > 0;
}
