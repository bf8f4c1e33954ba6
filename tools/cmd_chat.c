/* gptoss chat: a harmony chat on stdin/stdout (the history: chat.h). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat.h"
#include "cli.h"
#include "util.h"

static void help(void) {
    printf("usage: gptoss chat (-m FILE | --random PRESET) [options]\n"
           "Harmony chat: each line of stdin is a user turn; the reply's final channel goes to\n"
           "stdout, ended by a newline (an empty line when the reply has no final text).\n"
           "Ctrl-C stops the current reply and returns to the prompt; Ctrl-C at the prompt, or a\n"
           "second one within a second, quits (status 130); end of input (Ctrl-D) quits (status 0).\n"
           "The history keeps the final answers of earlier turns, not their analysis (harmony).\n"
           "When the next prompt and a reply of -n tokens (at most half the context) would not\n"
           "fit the context, the oldest turns are dropped (said on stderr).\n" GPTOSS_CLI_MODEL_HELP
           "  --system TEXT        replaces the model identity line of the system message\n"
           "  --developer TEXT     adds a developer message with these instructions\n"
           "  --reasoning LEVEL    low | medium | high (default medium)\n"
           "  --show-analysis      also print the analysis channel (to stderr)\n"
           "  --timings            prefill and decode tokens/s of each reply (to stderr)\n"
           "  --dump-prompt        print the token ids of the rendered conversation before each\n"
           "                       reply (to stderr; for debugging)\n"
           "  -n, --n-predict N    at most N tokens per reply (default 4096)\n" GPTOSS_CLI_SAMPLING_HELP GPTOSS_CLI_BACKEND_HELP);
}

/* Ctrl-C: during a reply (g_in_reply) the first one stops the reply (g_stop_reply, seen
 * between two tokens); one at the prompt, a second one before the stop took effect, or one
 * within a second of the previous quits at once with status 130 (128 + SIGINT). stdout is
 * flushed after every token, so nothing written is lost. */
static volatile sig_atomic_t g_in_reply, g_stop_reply;
static double g_last_interrupt = -1e9; /* only the handler uses it */

static void on_sigint(int sig) {
    (void) sig;
    const double t = gptoss_now_s(); /* clock_gettime is async-signal-safe */
    if (!g_in_reply || g_stop_reply || t - g_last_interrupt < 1.0) {
        if (write(STDERR_FILENO, "\n", 1) < 0) { /* nothing to do */
        }
        _exit(130);
    }
    g_last_interrupt = t;
    g_stop_reply = 1;
}

int gptoss_cmd_chat(int argc, char** argv) {
    struct {
        struct gptoss_cli_run run;
        unsigned long long num_tokens;
        const char *system, *developer, *reasoning;
        int show_analysis, timings, dump_prompt;
    } o = {.num_tokens = 4096, .system = NULL, .developer = NULL, .reasoning = "medium"};
    gptoss_cli_run_defaults(&o.run);
    const struct gptoss_option options[] = {
        GPTOSS_CLI_MODEL_OPTIONS(&o.run),
        GPTOSS_CLI_SAMPLING_OPTIONS(&o.run),
        GPTOSS_CLI_BACKEND_OPTIONS(&o.run),
        GPTOSS_OPTION_U64("n-predict", 'n', &o.num_tokens, 0, 1u << 24),
        GPTOSS_OPTION_U64("n-gen", 0, &o.num_tokens, 0, 1u << 24),
        GPTOSS_OPTION_STRING("system", 0, &o.system),
        GPTOSS_OPTION_STRING("developer", 0, &o.developer),
        GPTOSS_OPTION_CHOICE("reasoning", 0, &o.reasoning, "low|medium|high"),
        GPTOSS_OPTION_FLAG("show-analysis", 0, &o.show_analysis),
        GPTOSS_OPTION_FLAG("timings", 0, &o.timings),
        GPTOSS_OPTION_FLAG("dump-prompt", 0, &o.dump_prompt),
    };
    const int r = gptoss_options_parse(argc, argv, options, sizeof(options) / sizeof(options[0]), help, NULL, 0, NULL);
    if (r != 0) return r > 0 ? 0 : GPTOSS_EXIT_USAGE;
    if (gptoss_cli_run_check(&o.run) != 0) return GPTOSS_EXIT_USAGE;
    struct gptoss_cli_engine e;
    if (gptoss_cli_engine_open(&o.run, &e) != 0) return 1;
    int rc = 1, w;
    char* line = NULL;
    char* developer = NULL;
    size_t line_cap = 0;
    uint32_t *prompt = NULL, *previous = NULL, *reply = NULL;
    struct chat chat;
    enum gptoss_status st = chat_init(&chat, e.tokenizer);
    if (st == gptoss_status_invalid_argument) {
        fprintf(stderr, "gptoss chat: the model's tokenizer lacks harmony special tokens\n");
        goto done;
    }
    if (st != gptoss_status_success) {
        gptoss_cli_engine_error("setting up the chat", st);
        goto done;
    }
    if (gptoss_cli_make_context(&o.run, &e, 8192) != 0) goto done;
    if (gptoss_cli_make_sampler(&o.run, &e) != 0) goto done;
    size_t max_tokens = 0;
    gptoss_context_get_max_tokens(e.context, &max_tokens);
    const size_t max_reply = o.num_tokens < max_tokens ? (size_t) o.num_tokens : max_tokens;
    /* when old turns are dropped, room is kept for a reply of -n tokens, at most half the context */
    const size_t reserve = max_reply < max_tokens / 2 ? max_reply : max_tokens / 2;
    prompt = malloc(max_tokens * sizeof(uint32_t));
    previous = malloc(max_tokens * sizeof(uint32_t));
    reply = malloc((max_reply != 0 ? max_reply : 1) * sizeof(uint32_t));
    if (prompt == NULL || previous == NULL || reply == NULL) {
        fprintf(stderr, "gptoss chat: out of memory\n");
        goto done;
    }

    /* system message, developer message */
    char date[32] = "2025-01-01";
    const time_t now = time(NULL);
    struct tm tmv;
    if (localtime_r(&now, &tmv) != NULL) strftime(date, sizeof(date), "%Y-%m-%d", &tmv);
    char system[2048];
    snprintf(system, sizeof(system),
             "%s\nKnowledge cutoff: 2024-06\nCurrent date: %s\n\nReasoning: %s\n\n"
             "# Valid channels: analysis, commentary, final. Channel must be included for every message.",
             o.system != NULL ? o.system : "You are ChatGPT, a large language model trained by OpenAI.", date,
             o.reasoning);
    st = chat_add_message(&chat, "system", system, strlen(system));
    if (st == gptoss_status_success && o.developer != NULL) {
        static const char heading[] = "# Instructions\n\n";
        const size_t n = strlen(heading) + strlen(o.developer);
        developer = malloc(n + 1);
        st = gptoss_status_insufficient_memory;
        if (developer != NULL) {
            snprintf(developer, n + 1, "%s%s", heading, o.developer);
            st = chat_add_message(&chat, "developer", developer, n);
        }
    }
    if (st != gptoss_status_success) {
        gptoss_cli_engine_error("rendering the system and developer messages", st);
        goto done;
    }

    /* Ctrl-C handling, unless SIGINT is ignored (a background job of a script) */
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, NULL, &old_sa) == 0 && old_sa.sa_handler != SIG_IGN) sigaction(SIGINT, &sa, NULL);
    const int tty = isatty(STDIN_FILENO);
    for (;;) {
        if (tty) {
            fputs("> ", stderr);
            fflush(stderr);
        }
        const ssize_t len = getline(&line, &line_cap, stdin);
        if (len < 0) break;
        size_t n = (size_t) len;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n == 0) continue;
        if ((st = chat_begin_turn(&chat)) != gptoss_status_success ||
            (st = chat_add_message(&chat, "user", line, n)) != gptoss_status_success) {
            gptoss_cli_engine_error("adding the message", st);
            goto done;
        }
        /* fit the context: a message that does not fit even without the earlier turns is
         * refused (the history stays); otherwise the oldest turns are dropped until a reply
         * has room, never the new one */
        size_t np = 0, dropped = 0;
        chat_render(&chat, prompt, max_tokens, &np);
        const size_t np_alone = np - (chat.turns[chat.num_turns - 1] - chat.turns[0]);
        if (np_alone >= max_tokens) {
            fprintf(stderr, "[the message does not fit in the context: %zu tokens with it, %zu available; not sent]\n",
                    np_alone, max_tokens);
            chat_drop_turn(&chat, chat.num_turns - 1);
            continue;
        }
        while (np + reserve > max_tokens && chat.num_turns > 1) {
            chat_drop_turn(&chat, 0);
            dropped++;
            chat_render(&chat, prompt, max_tokens, &np);
        }
        if (dropped != 0) {
            fprintf(stderr, "[context full (%zu tokens): dropped the oldest %zu turn%s]\n", max_tokens, dropped,
                    dropped > 1 ? "s" : "");
        }
        if (o.dump_prompt) {
            fprintf(stderr, "prompt tokens (%zu):", np);
            for (size_t i = 0; i < np; i++) fprintf(stderr, " %u", prompt[i]);
            fputc('\n', stderr);
        }
        /* the engine reuses the K/V of the prefix shared with the previous context (all of
         * whose tokens but the last sampled one were computed) */
        size_t num_previous = 0, cached = 0;
        if (gptoss_context_get_tokens(e.context, previous, max_tokens, &num_previous) != gptoss_status_success) {
            num_previous = 0;
        }
        while (cached + 1 < num_previous && cached + 1 < np && previous[cached] == prompt[cached]) cached++;

        /* prefill all but the last prompt token; the first sample step runs the last one */
        g_stop_reply = 0;
        g_in_reply = 1;
        const double t0 = gptoss_now_s();
        st = gptoss_context_reset(e.context);
        if (st == gptoss_status_success) st = gptoss_context_append_tokens(e.context, np - 1, prompt);
        if (st == gptoss_status_success) st = gptoss_context_process(e.context);
        if (st == gptoss_status_success) st = gptoss_context_append_tokens(e.context, 1, prompt + np - 1);
        if (st != gptoss_status_success) {
            gptoss_cli_engine_error("prefill", st);
            goto done;
        }
        struct chat_parser parser;
        chat_parser_reset(&parser);
        size_t generated = 0;
        double t_first = t0;
        int interrupted = 0, cut_off = 0, printed_final = 0, analysis_open = 0;
        while (generated < max_reply) {
            if (g_stop_reply) {
                interrupted = 1;
                break;
            }
            uint32_t tok;
            size_t got = 0;
            st = gptoss_context_sample(e.context, e.sampler, 1, &tok, &got);
            if (st == gptoss_status_context_overflow || (st == gptoss_status_success && got == 0)) {
                cut_off = 1;
                break;
            }
            if (st != gptoss_status_success) {
                gptoss_cli_engine_error("decode", st);
                goto done;
            }
            if (generated == 0) t_first = gptoss_now_s();
            reply[generated++] = tok;
            const int was_in_content = parser.in_content;
            const enum chat_event ev = chat_parse(&chat, &parser, tok);
            if (ev == chat_event_reply_end) {
                if (tok == chat.call) fprintf(stderr, "\n[tool call requested; tools are not supported]\n");
                break;
            } else if (ev == chat_event_message_end && analysis_open) {
                fputc('\n', stderr);
                analysis_open = 0;
            } else if (ev == chat_event_header && parser.in_content && !was_in_content && !parser.final &&
                       o.show_analysis) {
                fprintf(stderr, "[%s] ", parser.channel);
                analysis_open = 1;
            } else if (ev == chat_event_text && parser.final) {
                gptoss_cli_write_token(&e, tok, stdout);
                if ((w = gptoss_cli_check_stdout()) != 0) {
                    rc = w > 0;
                    goto done;
                }
                printed_final = 1;
            } else if (ev == chat_event_text && o.show_analysis) {
                gptoss_cli_write_token(&e, tok, stderr);
                fflush(stderr);
            }
        }
        g_in_reply = 0;
        const double t_end = gptoss_now_s();
        if (analysis_open) fputc('\n', stderr);
        fputc('\n', stdout);
        if ((w = gptoss_cli_check_stdout()) != 0) {
            rc = w > 0;
            goto done;
        }
        if (interrupted) fprintf(stderr, "[reply interrupted]\n");
        if (cut_off) {
            fprintf(stderr, "[context full (%zu tokens): the reply was cut off; the oldest turns will be dropped]\n",
                    max_tokens);
        }
        if (!printed_final && !interrupted) fprintf(stderr, "[no final-channel text in the reply]\n");
        if ((st = chat_add_reply(&chat, reply, generated)) != gptoss_status_success) {
            gptoss_cli_engine_error("adding the reply to the history", st);
            goto done;
        }
        if (o.timings) gptoss_cli_print_speeds(np - cached, cached, generated, t0, t_first, t_end);
    }
    rc = 0;
done:
    g_in_reply = 0;
    free(line);
    free(developer);
    free(prompt);
    free(previous);
    free(reply);
    chat_free(&chat);
    gptoss_cli_engine_close(&e);
    return rc;
}

