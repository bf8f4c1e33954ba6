/* Fuzz target: tokenizer encode with the real o200k vocabulary. Any byte string must encode
 * without error, and decoding the ids must give the input back byte for byte.
 * The vocabulary: the repository's data/o200k_base.tiktoken (gptoss_default_vocab_path). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gptoss/engine.h>

#include "model.h"
#include "writer.h"

static gptoss_tokenizer_t g_tok;

static gptoss_tokenizer_t load(void) {
    struct gptoss_vocab vocab;
    if (gptoss_vocab_load_tiktoken(gptoss_default_vocab_path(), &vocab) != gptoss_status_success) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", gptoss_last_error());
        abort();
    }
    struct gptoss_model_config c = {
        .context_length = 4096, .num_blocks = 1, .num_experts = 1, .num_active_experts = 1, .embedding_dim = 32,
        .mlp_dim = 32, .swiglu_limit = 7.0f, .head_dim = 4, .num_heads = 1, .num_kv_heads = 1,
        .attention_window = 128, .rope_theta = 150000.0f, .interpolation_scale = 1.0f, .yarn_offset = 0.0f,
        .yarn_scale = 1.0f, .yarn_multiplier = 1.0f, .rmsnorm_epsilon = 1e-5f};
    /* the tokenizer section as the writer lays it out, read as the reader does */
    uint8_t* section = NULL;
    size_t section_size = 0;
    uint32_t regex_size = 0, tokens_size = 0;
    if (gptoss_tokenizer_section_build(&vocab, &section, &section_size, &regex_size, &tokens_size) !=
        gptoss_status_success) {
        abort();
    }
    uint8_t header[GPTOSS_FILE_HEADER_SIZE];
    gptoss_file_build_header(header, &c, 16, vocab.num_tokens, regex_size, tokens_size);
    gptoss_vocab_free(&vocab);
    struct gptoss_file_info info;
    gptoss_tokenizer_t t = NULL;
    if (gptoss_file_parse_header(header, &info) != gptoss_status_success ||
        gptoss_tokenizer_create_from_section(&info, section, section_size, &t) != gptoss_status_success) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", gptoss_last_error());
        abort();
    }
    free(section);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (g_tok == NULL) g_tok = load();
    size_t n = 0;
    enum gptoss_status st = gptoss_tokenizer_encode(g_tok, (const char*) data, size, NULL, 0, &n);
    if (st != gptoss_status_success && st != gptoss_status_insufficient_memory) __builtin_trap();
    uint32_t* ids = malloc((n ? n : 1) * sizeof(uint32_t));
    size_t m = 0;
    if (gptoss_tokenizer_encode(g_tok, (const char*) data, size, ids, n, &m) != gptoss_status_success || m != n) __builtin_trap();
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const void* p;
        size_t s;
        if (gptoss_tokenizer_decode(g_tok, ids[i], &p, &s) != gptoss_status_success) __builtin_trap();
        if (ids[i] >= 199998 || pos + s > size || memcmp(data + pos, p, s) != 0) __builtin_trap();
        pos += s;
    }
    if (pos != size) __builtin_trap();
    free(ids);
    return 0;
}
