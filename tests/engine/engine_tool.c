/* Stand-in driver for the file/tokenizer subcommands (the real CLI is tools/gptoss.c):
 * engine_tool convert|make-model|tokenize|inspect ARGS... */
#include <stdio.h>
#include <string.h>

#include "cli_tools.h"

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s convert|make-model|tokenize|inspect [--help]\n", argv[0]);
        return 2;
    }
    if (strcmp(argv[1], "convert") == 0) return gptoss_cli_convert(argc - 1, argv + 1);
    if (strcmp(argv[1], "make-model") == 0) return gptoss_cli_make_model(argc - 1, argv + 1);
    if (strcmp(argv[1], "tokenize") == 0) return gptoss_cli_tokenize(argc - 1, argv + 1);
    if (strcmp(argv[1], "inspect") == 0) return gptoss_cli_inspect(argc - 1, argv + 1);
    fprintf(stderr, "%s: unknown command '%s'\n", argv[0], argv[1]);
    return 2;
}
