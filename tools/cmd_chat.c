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

struct options {
    struct gptoss_cli_run run;
    unsigned long long num_tokens;
    const char *system, *developer, *reasoning;
    int show_analysis, timings, dump_prompt;
};

/* A chat session: the engine, the history and the buffers of one prompt and reply. */
struct session {
    const struct options* o;
    struct gptoss_cli_engine e;
    struct chat chat;
    size_t max_tokens, max_reply;
    size_t reserve; /* room kept for a reply when old turns are dropped */
    uint32_t *prompt, *previous, *reply;
};

/* The system message and the optional developer message. 0, or 1 after saying why. */
static int add_preamble(struct session* s) {
    char date[32] = "2025-01-01";
    const time_t now = time(NULL);
    struct tm tmv;
    if (localtime_r(&now, &tmv) != NULL) strftime(date, sizeof(date), "%Y-%m-%d", &tmv);
    char system[2048];
    snprintf(system, sizeof(system),
             "%s\nKnowledge cutoff: 2024-06\nCurrent date: %s\n\nReasoning: %s\n\n"
             "# Valid channels: analysis, commentary, final. Channel must be included for every message.",
             s->o->system != NULL ? s->o->system : "You are ChatGPT, a large language model trained by OpenAI.", date,
             s->o->reasoning);
    enum gptoss_status st = chat_add_message(&s->chat, "system", system, strlen(system));
    if (st == gptoss_status_success && s->o->developer != NULL) {
        static const char heading[] = "# Instructions\n\n";
        const size_t n = strlen(heading) + strlen(s->o->developer);
        char* developer = malloc(n + 1);
        st = gptoss_status_insufficient_memory;
        if (developer != NULL) {
            snprintf(developer, n + 1, "%s%s", heading, s->o->developer);
            st = chat_add_message(&s->chat, "developer", developer, n);
            free(developer);
        }
    }
    if (st != gptoss_status_success) {
        gptoss_cli_engine_error("rendering the system and developer messages", st);
        return 1;
    }
    return 0;
}

/* Renders the history with the new user message into s->prompt (*np tokens), fitting the
 * context: a message that does not fit even without the earlier turns is refused (the
 * history stays; returns 0); otherwise the oldest turns are dropped until a reply has
 * room, never the new one (returns 1). */
static int fit_prompt(struct session* s, size_t* np) {
    struct chat* chat = &s->chat;
    size_t dropped = 0;
    chat_render(chat, s->prompt, s->max_tokens, np);
    const size_t np_alone = *np - (chat->turns[chat->num_turns - 1] - chat->turns[0]);
    if (np_alone >= s->max_tokens) {
        fprintf(stderr, "[the message does not fit in the context: %zu tokens with it, %zu available; not sent]\n",
                np_alone, s->max_tokens);
        chat_drop_turn(chat, chat->num_turns - 1);
        return 0;
    }
    while (*np + s->reserve > s->max_tokens && chat->num_turns > 1) {
        chat_drop_turn(chat, 0);
        dropped++;
        chat_render(chat, s->prompt, s->max_tokens, np);
    }
    if (dropped != 0) {
        fprintf(stderr, "[context full (%zu tokens): dropped the oldest %zu turn%s]\n", s->max_tokens, dropped,
                dropped > 1 ? "s" : "");
    }
    if (s->o->dump_prompt) {
        fprintf(stderr, "prompt tokens (%zu):", *np);
        for (size_t i = 0; i < *np; i++) fprintf(stderr, " %u", s->prompt[i]);
        fputc('\n', stderr);
    }
    return 1;
}

/* One reply to the prompt s->prompt[0, np): prefill, then decode until the reply ends,
 * -n tokens, the context is full or Ctrl-C; the final channel to stdout (the analysis to
 * stderr with --show-analysis); the reply joins the history. -1 to go on, else the exit
 * status. */
static int run_reply(struct session* s, size_t np) {
    const struct options* o = s->o;
    gptoss_context_t ctx = s->e.context;
    /* the engine reuses the K/V of the prefix shared with the previous context (all of
     * whose tokens but the last sampled one were computed) */
    size_t num_previous = 0, cached = 0;
    if (gptoss_context_get_tokens(ctx, s->previous, s->max_tokens, &num_previous) != gptoss_status_success) {
        num_previous = 0;
    }
    while (cached + 1 < num_previous && cached + 1 < np && s->previous[cached] == s->prompt[cached]) cached++;

    /* prefill all but the last prompt token; the first sample step runs the last one */
    g_stop_reply = 0;
    g_in_reply = 1;
    const double t0 = gptoss_now_s();
    enum gptoss_status st = gptoss_context_reset(ctx);
    if (st == gptoss_status_success) st = gptoss_context_append_tokens(ctx, np - 1, s->prompt);
    if (st == gptoss_status_success) st = gptoss_context_process(ctx);
    if (st == gptoss_status_success) st = gptoss_context_append_tokens(ctx, 1, s->prompt + np - 1);
    if (st != gptoss_status_success) {
        gptoss_cli_engine_error("prefill", st);
        return 1;
    }
    struct chat_parser parser;
    chat_parser_reset(&parser);
    size_t generated = 0;
    double t_first = t0;
    int w, interrupted = 0, cut_off = 0, printed_final = 0, analysis_open = 0;
    while (generated < s->max_reply) {
        if (g_stop_reply) {
            interrupted = 1;
            break;
        }
        uint32_t tok;
        size_t got = 0;
        st = gptoss_context_sample(ctx, s->e.sampler, 1, &tok, &got);
        if (st == gptoss_status_context_overflow || (st == gptoss_status_success && got == 0)) {
            cut_off = 1;
            break;
        }
        if (st != gptoss_status_success) {
            gptoss_cli_engine_error("decode", st);
            return 1;
        }
        if (generated == 0) t_first = gptoss_now_s();
        s->reply[generated++] = tok;
        const int was_in_content = parser.in_content;
        const enum chat_event ev = chat_parse(&s->chat, &parser, tok);
        if (ev == chat_event_reply_end) {
            if (tok == s->chat.call) fprintf(stderr, "\n[tool call requested; tools are not supported]\n");
            break;
        } else if (ev == chat_event_message_end && analysis_open) {
            fputc('\n', stderr);
            analysis_open = 0;
        } else if (ev == chat_event_header && parser.in_content && !was_in_content && !parser.final &&
                   o->show_analysis) {
            fprintf(stderr, "[%s] ", parser.channel);
            analysis_open = 1;
        } else if (ev == chat_event_text && parser.final) {
            gptoss_cli_write_token(&s->e, tok, stdout);
            if ((w = gptoss_cli_check_stdout()) != 0) return w > 0;
            printed_final = 1;
        } else if (ev == chat_event_text && o->show_analysis) {
            gptoss_cli_write_token(&s->e, tok, stderr);
            fflush(stderr);
        }
    }
    g_in_reply = 0;
    const double t_end = gptoss_now_s();
    if (analysis_open) fputc('\n', stderr);
    fputc('\n', stdout);
    if ((w = gptoss_cli_check_stdout()) != 0) return w > 0;
    if (interrupted) fprintf(stderr, "[reply interrupted]\n");
    if (cut_off) {
        fprintf(stderr, "[context full (%zu tokens): the reply was cut off; the oldest turns will be dropped]\n",
                s->max_tokens);
    }
    if (!printed_final && !interrupted) fprintf(stderr, "[no final-channel text in the reply]\n");
    if ((st = chat_add_reply(&s->chat, s->reply, generated)) != gptoss_status_success) {
        gptoss_cli_engine_error("adding the reply to the history", st);
        return 1;
    }
    if (o->timings) gptoss_cli_print_speeds(np - cached, cached, generated, t0, t_first, t_end);
    return -1;
}

/* The engine, the history and the buffers. 0, or 1 after saying why. */
static int session_open(struct session* s, const struct options* o) {
    memset(s, 0, sizeof(*s));
    s->o = o;
    if (gptoss_cli_engine_open(&o->run, &s->e) != 0) return 1;
    const enum gptoss_status st = chat_init(&s->chat, s->e.tokenizer);
    if (st == gptoss_status_invalid_argument) {
        fprintf(stderr, "gptoss chat: the model's tokenizer lacks harmony special tokens\n");
        return 1;
    }
    if (st != gptoss_status_success) {
        gptoss_cli_engine_error("setting up the chat", st);
        return 1;
    }
    if (gptoss_cli_make_context(&o->run, &s->e, 8192) != 0 || gptoss_cli_make_sampler(&o->run, &s->e) != 0) return 1;
    gptoss_context_get_max_tokens(s->e.context, &s->max_tokens);
    s->max_reply = o->num_tokens < s->max_tokens ? (size_t) o->num_tokens : s->max_tokens;
    /* when old turns are dropped, room is kept for a reply of -n tokens, at most half the context */
    s->reserve = s->max_reply < s->max_tokens / 2 ? s->max_reply : s->max_tokens / 2;
    s->prompt = malloc(s->max_tokens * sizeof(uint32_t));
    s->previous = malloc(s->max_tokens * sizeof(uint32_t));
    s->reply = malloc((s->max_reply != 0 ? s->max_reply : 1) * sizeof(uint32_t));
    if (s->prompt == NULL || s->previous == NULL || s->reply == NULL) {
        fprintf(stderr, "gptoss chat: out of memory\n");
        return 1;
    }
    return add_preamble(s);
}

static void session_close(struct session* s) {
    free(s->prompt);
    free(s->previous);
    free(s->reply);
    chat_free(&s->chat);
    gptoss_cli_engine_close(&s->e);
}

int gptoss_cmd_chat(int argc, char** argv) {
    struct options o = {.num_tokens = 4096, .system = NULL, .developer = NULL, .reasoning = "medium"};
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
    struct session s;
    int rc = session_open(&s, &o);
    if (rc != 0) {
        session_close(&s);
        return rc;
    }

    /* Ctrl-C handling, unless SIGINT is ignored (a background job of a script) */
    struct sigaction sa, old_sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, NULL, &old_sa) == 0 && old_sa.sa_handler != SIG_IGN) sigaction(SIGINT, &sa, NULL);
    const int tty = isatty(STDIN_FILENO);
    char* line = NULL;
    size_t line_cap = 0;
    rc = -1;
    while (rc < 0) {
        if (tty) {
            fputs("> ", stderr);
            fflush(stderr);
        }
        const ssize_t len = getline(&line, &line_cap, stdin);
        if (len < 0) break;
        size_t n = (size_t) len;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n == 0) continue;
        enum gptoss_status st;
        if ((st = chat_begin_turn(&s.chat)) != gptoss_status_success ||
            (st = chat_add_message(&s.chat, "user", line, n)) != gptoss_status_success) {
            gptoss_cli_engine_error("adding the message", st);
            rc = 1;
            break;
        }
        size_t np = 0;
        if (fit_prompt(&s, &np)) rc = run_reply(&s, np);
    }
    g_in_reply = 0;
    free(line);
    session_close(&s);
    return rc < 0 ? 0 : rc;
}
