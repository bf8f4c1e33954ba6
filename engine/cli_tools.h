/* Subcommands of the gptoss CLI that deal with files and the tokenizer. tools/gptoss.c
 * dispatches to them: argv[0] is the subcommand name ("convert"), options follow. Each
 * returns the process exit status (0 ok, 1 failure, 2 usage error) and prints --help. */
#ifndef GPTOSS_ENGINE_CLI_TOOLS_H
#define GPTOSS_ENGINE_CLI_TOOLS_H

#include <stddef.h>
#include <stdint.h>

#include <gptoss/kernels.h>

#ifdef __cplusplus
extern "C" {
#endif

/* gptoss convert [--vocab PATH] [--quiet] [--force] CHECKPOINT_DIR OUT */
int gptoss_cli_convert(int argc, char** argv);
/* gptoss make-model --preset tiny|20b|120b [shape overrides] [--seed S] [--vocab PATH]
 *                   [--quiet] [--force] OUT */
int gptoss_cli_make_model(int argc, char** argv);
/* gptoss tokenize -m FILE [--decode]: text on stdin -> ids on one line (or ids -> text) */
int gptoss_cli_tokenize(int argc, char** argv);
/* gptoss inspect FILE: header fields and layout of a model file */
int gptoss_cli_inspect(int argc, char** argv);

/* Internal (tests, fuzzers): parses config.json text into a model config as `convert`
 * does (shape keys required; RoPE keys default to torch/model.py's ModelConfig values). */
struct gptoss_model_config;
enum gptoss_status gptoss_convert_parse_config(const char* text, size_t size, struct gptoss_model_config* config,
                                               uint32_t* vocab_size_out, uint32_t* experts_per_token_out);

/* Output files of convert/make-model: 0 if `out` does not exist or `force`; otherwise
 * prints "gptoss COMMAND: OUT exists: pass --force to replace it" and returns 2. */
int gptoss_cli_check_output(const char* command, const char* out, int force);

/* Checked output: flushes stdout and tells whether everything written to it so far
 * arrived. 0: yes. 1: a write failed (full disk, I/O error, closed stdout); "gptoss CMD:
 * cannot write to stdout: REASON" was printed on stderr (once per process); stop writing
 * and end with status 1. -1: the reader went away (EPIPE, as in `gptoss ... | head -1` when
 * SIGPIPE is ignored; by default SIGPIPE ends the process first): stop writing, quietly,
 * without changing the exit status (as coreutils' close_stdout with EPIPE ignored).
 * The CLI calls it after every streamed token, after each table row, and at the end. */
int gptoss_cli_check_stdout(const char* cmd);

/* Full-string number parsing for CLI flags: 0 on success. */
int gptoss_cli_parse_u64(const char* s, unsigned long long max, unsigned long long* out);

#ifdef __cplusplus
}
#endif

#endif
