/* gptoss: the command-line front end of the engine; each subcommand is a file
 * (tools/cmd_<name>.c, cli.h).
 *
 *   gptoss generate -m FILE -p PROMPT [-n N] [sampling] [backend]   text completion
 *   gptoss chat -m FILE [--show-analysis] [sampling] [backend]       harmony chat on stdin
 *   gptoss bench -m FILE [-p 512] [-n 128] [-r 3] [backend]          pp/tg tokens per second
 *   (each also takes --random tiny|20b|120b [--layers N] instead of -m FILE: random weights
 *   made in backend memory, gptoss_model_create_random)
 *   gptoss tokenize | convert | make-model | inspect ...
 *   gptoss serve | render ...                                        tools/cmd_serve.h
 *   gptoss version (or --version)
 *
 * Exit status: 0 success, 1 failure (bad file, engine error, a failed write to stdout),
 * 2 usage error. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#ifdef GPTOSS_WITH_SERVE
#include "cmd_serve.h"
#endif

#ifndef GPTOSS_VERSION
#error "GPTOSS_VERSION (the CMake project version) is not defined"
#endif

static void help(void) {
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

static const struct {
    const char* name;
    int (*run)(int argc, char** argv);
} commands[] = {
    {"generate", gptoss_cmd_generate}, {"chat", gptoss_cmd_chat},       {"bench", gptoss_cmd_bench},
    {"tokenize", gptoss_cmd_tokenize}, {"convert", gptoss_cmd_convert}, {"make-model", gptoss_cmd_make_model},
    {"inspect", gptoss_cmd_inspect},
#ifdef GPTOSS_WITH_SERVE
    {"serve", gptoss_cli_serve},       {"render", gptoss_cli_render},
#endif
};

static int run_command(const char* cmd, int argc, char** argv) {
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        help();
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("gptoss %s\n", GPTOSS_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(cmd, commands[i].name) == 0) return commands[i].run(argc, argv);
    }
#ifndef GPTOSS_WITH_SERVE
    if (strcmp(cmd, "serve") == 0 || strcmp(cmd, "render") == 0) {
        fprintf(stderr, "gptoss %s: this build has no server (libmicrohttpd or jansson was missing at build "
                        "time: tools/setup.sh installs them)\n", cmd);
        return 1;
    }
#endif
    fprintf(stderr, "gptoss: unknown command '%s' (see gptoss --help)\n", cmd);
    return GPTOSS_EXIT_USAGE;
}

int main(int argc, char** argv) {
    if (argc < 2) {
        help();
        return gptoss_cli_check_stdout() > 0 ? 1 : GPTOSS_EXIT_USAGE;
    }
    gptoss_cli_set_command(argv[1]);
    const int rc = run_command(argv[1], argc - 1, argv + 1);
    /* every subcommand's output, its --help included, must have reached stdout */
    return gptoss_cli_check_stdout() > 0 && rc == 0 ? 1 : rc;
}
