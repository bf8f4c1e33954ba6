/* gptoss convert: original checkpoint (config.json + *.safetensors) -> model file (the
 * offline library's converter, offline/convert.c). */
#include <stdio.h>

#include <gptoss/engine.h>

#include "cli.h"
#include "files.h"

static void help(void) {
    printf("usage: gptoss convert [--vocab PATH] [--quiet] [--force] CHECKPOINT_DIR OUT\n"
           "  Converts an original gpt-oss checkpoint (the original/ directory: config.json and\n"
           "  *.safetensors) into a model file, bit-compatible with upstream's converter:\n"
           "  vocabulary truncated to 200014 rows, QKV rows permuted for adjacent-pair RoPE,\n"
           "  Q*0.5 / K*0.25 folded in (bf16), MXFP4 scales +14. OUT appears only when complete\n"
           "  (written to a temporary file next to it, then renamed).\n"
           "  --vocab PATH   o200k_base.tiktoken (default: $GPTOSS_VOCAB or the repository's\n"
           "                 data/o200k_base.tiktoken)\n"
           "  --quiet        no progress line\n"
           "  --force        replace OUT if it exists (without it, an existing OUT is kept)\n");
}

int gptoss_cmd_convert(int argc, char** argv) {
    const char* vocab_path = NULL;
    int quiet = 0, force = 0;
    const struct gptoss_option options[] = {
        GPTOSS_OPTION_STRING("vocab", 0, &vocab_path),
        GPTOSS_OPTION_FLAG("quiet", 0, &quiet),
        GPTOSS_OPTION_FLAG("force", 0, &force),
    };
    char* paths[2];
    size_t n = 0;
    const int r = gptoss_options_parse(argc, argv, options, sizeof(options) / sizeof(options[0]), help, paths, 2, &n);
    if (r != 0) return r > 0 ? 0 : GPTOSS_EXIT_USAGE;
    if (n != 2) {
        gptoss_cli_usage_error("CHECKPOINT_DIR and OUT are required");
        return GPTOSS_EXIT_USAGE;
    }
    const char* dir = paths[0];
    const char* out = paths[1];
    if (gptoss_cli_check_output(out, force) != 0) return GPTOSS_EXIT_USAGE;
    struct gptoss_convert_notes notes;
    const enum gptoss_status st = gptoss_convert_checkpoint(
        dir, out, gptoss_cli_vocab_path(vocab_path), (force ? GPTOSS_WRITE_REPLACE : 0) | (quiet ? 0 : GPTOSS_WRITE_PROGRESS),
        &notes);
    if (st != gptoss_status_success) {
        fprintf(stderr, "gptoss convert: %s\n", gptoss_last_error());
        return 1;
    }
    if (notes.experts_per_token != 4) {
        fprintf(stderr, "gptoss convert: note: experts_per_token is %u; the file says 4 active experts, as upstream's\n"
                        "converter does (MODEL_FORMAT.md 3)\n", notes.experts_per_token);
    }
    if (notes.overflowing_scales != 0) {
        fprintf(stderr, "gptoss convert: warning: %llu MXFP4 scale bytes are >= 241 and wrapped/overflowed when biased by\n"
                        "+14 (written as upstream does; MODEL_FORMAT.md 5.4 item 4)\n",
                (unsigned long long) notes.overflowing_scales);
    }
    if (!quiet) fprintf(stderr, "wrote %s\n", out);
    return 0;
}
