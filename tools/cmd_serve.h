/* The `gptoss serve` and `gptoss render` subcommands (tools/cmd_serve.c, on the server
 * library in server/), dispatched by
 * tools/gptoss.c: argv[0] is the subcommand name, options follow. Each returns the
 * process exit status (0 ok, 1 failure, 2 usage error) and prints --help. */
#ifndef GPTOSS_TOOLS_CMD_SERVE_H
#define GPTOSS_TOOLS_CMD_SERVE_H

/* gptoss serve (-m MODEL | --random PRESET) [--host H] [--port P] [--backend cpu|cuda] [-t N]
 *              [-c CTX] [--api-key KEY | --api-key-file F] [--max-queue N] [--timeout S] ... */
int gptoss_cli_serve(int argc, char** argv);
/* gptoss render -m MODEL REQUEST.json: the harmony prompt of a request, as /apply-template */
int gptoss_cli_render(int argc, char** argv);

#endif
