/* gptoss make-model: a model file with random weights at any shape and the real o200k
 * tokenizer, streamed to disk (the offline library's random-model generator,
 * offline/random.c: the weights of gptoss_model_create_random for the same seed). */
#include <limits.h>
#include <stdio.h>

#include <gptoss/engine.h>

#include "cli.h"
#include "files.h"

static void help(void) {
    printf("usage: gptoss make-model --preset tiny|20b|120b [options] OUT\n"
           "  Writes a model file with random weights and the real o200k_harmony tokenizer\n"
           "  (200014 tokens), streamed to disk. The weights are those `--random PRESET` makes in\n"
           "  memory for the same shape and seed. OUT appears only when complete (written to a\n"
           "  temporary file next to it, then renamed); an existing OUT is kept unless --force.\n"
           "  --preset tiny   4 layers, 8 experts (4 active), hidden 64, mlp 128, 8 Q / 2 KV heads\n"
           "                  of dim 16, window 16, context 4096 (about 55 MB)\n"
           "  --preset 20b    gpt-oss-20b shapes (24 layers, 32 experts; about 13.8 GB)\n"
           "  --preset 120b   gpt-oss-120b shapes (36 layers, 128 experts; about 65 GB)\n"
           "  --layers N, --experts N, --active-experts N, --hidden N, --mlp N, --heads N,\n"
           "  --kv-heads N, --head-dim N, --window N, --context N   override the preset (header\n"
           "                  fields num_blocks, num_experts, num_active_experts, embedding_dim,\n"
           "                  mlp_dim, num_heads, num_kv_heads, head_dim, attention_window,\n"
           "                  context_length; checked as the engine will when loading)\n"
           "  -s, --seed S    random seed (default 0)\n"
           "  --force         replace OUT if it exists\n"
           "  --vocab PATH    o200k_base.tiktoken (default: $GPTOSS_VOCAB or the repository's\n"
           "                  data/o200k_base.tiktoken)\n"
           "  --quiet         no progress line\n");
}

#define NOT_SET ULLONG_MAX /* above every override's range */

int gptoss_cmd_make_model(int argc, char** argv) {
    const char* preset = NULL;
    const char* vocab_path = NULL;
    unsigned long long seed = 0;
    int quiet = 0, force = 0;
    /* the overrides, in the order of `fields` below */
    unsigned long long ov[10];
    for (int i = 0; i < 10; i++) ov[i] = NOT_SET;
    const struct gptoss_option options[] = {
        GPTOSS_OPTION_CHOICE("preset", 0, &preset, "tiny|20b|120b"),
        GPTOSS_OPTION_U64("seed", 's', &seed, 0, UINT64_MAX),
        GPTOSS_OPTION_STRING("vocab", 0, &vocab_path),
        GPTOSS_OPTION_FLAG("quiet", 0, &quiet),
        GPTOSS_OPTION_FLAG("force", 0, &force),
        GPTOSS_OPTION_U64("layers", 0, &ov[0], 0, UINT32_MAX),
        GPTOSS_OPTION_U64("experts", 0, &ov[1], 0, UINT32_MAX),
        GPTOSS_OPTION_U64("active-experts", 0, &ov[2], 0, UINT32_MAX),
        GPTOSS_OPTION_U64("hidden", 0, &ov[3], 0, UINT32_MAX),
        GPTOSS_OPTION_U64("mlp", 0, &ov[4], 0, UINT32_MAX),
        GPTOSS_OPTION_U64("heads", 0, &ov[5], 0, UINT32_MAX),
        GPTOSS_OPTION_U64("kv-heads", 0, &ov[6], 0, UINT32_MAX),
        GPTOSS_OPTION_U64("head-dim", 0, &ov[7], 0, UINT32_MAX),
        GPTOSS_OPTION_U64("window", 0, &ov[8], 0, UINT32_MAX),
        GPTOSS_OPTION_U64("context", 0, &ov[9], 0, UINT32_MAX),
    };
    char* out = NULL;
    size_t n = 0;
    const int r = gptoss_options_parse(argc, argv, options, sizeof(options) / sizeof(options[0]), help, &out, 1, &n);
    if (r != 0) return r > 0 ? 0 : GPTOSS_EXIT_USAGE;
    if (preset == NULL || n == 0) {
        gptoss_cli_usage_error("--preset and OUT are required");
        return GPTOSS_EXIT_USAGE;
    }
    if (gptoss_cli_check_output(out, force) != 0) return GPTOSS_EXIT_USAGE;
    struct gptoss_model_config c;
    gptoss_model_preset(preset, &c); /* a valid name: checked as a choice */
    uint32_t* fields[10] = {&c.num_blocks, &c.num_experts, &c.num_active_experts, &c.embedding_dim, &c.mlp_dim,
                            &c.num_heads,  &c.num_kv_heads, &c.head_dim,          &c.attention_window,
                            &c.context_length};
    for (int k = 0; k < 9; k++) {
        if (ov[k] != NOT_SET) *fields[k] = (uint32_t) ov[k];
    }
    /* RoPE/YaRN as the released models, again: the YaRN offset/scale depend on head_dim */
    gptoss_model_preset_set_rope(preset, &c);
    if (ov[9] != NOT_SET) c.context_length = (uint32_t) ov[9];
    if (gptoss_model_config_validate(&c) != gptoss_status_success) {
        fprintf(stderr, "gptoss make-model: %s\n", gptoss_last_error());
        return GPTOSS_EXIT_USAGE;
    }

    vocab_path = gptoss_cli_vocab_path(vocab_path);
    struct gptoss_vocab vocab;
    enum gptoss_status st = gptoss_vocab_load_tiktoken(vocab_path, &vocab);
    if (st != gptoss_status_success) {
        fprintf(stderr, "gptoss make-model: %s\n", gptoss_last_error());
        return 1;
    }
    if (vocab.num_tokens != 199998) {
        fprintf(stderr, "gptoss make-model: warning: %s has %u tokens, o200k_base has 199998\n", vocab_path,
                vocab.num_tokens);
    }
    st = gptoss_write_random_model(out, &c, (uint64_t) seed, &vocab,
                                   (force ? GPTOSS_WRITE_REPLACE : 0) | (quiet ? 0 : GPTOSS_WRITE_PROGRESS));
    gptoss_vocab_free(&vocab);
    if (st != gptoss_status_success) {
        fprintf(stderr, "gptoss make-model: %s\n", gptoss_last_error());
        return 1;
    }
    if (!quiet) fprintf(stderr, "wrote %s\n", out);
    return 0;
}
