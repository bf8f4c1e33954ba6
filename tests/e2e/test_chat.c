/* The chat history of `gptoss chat` (tools/chat.c) with the tokenizer of a model file
 * (argv[1]). The oracle is the harmony text written out by hand: the rendered ids are
 * decoded (special tokens as their names) and compared with it, and every "<|...|>" in it
 * must be one special token, never text.
 *   - a finished turn keeps only its final message; the analysis is dropped;
 *   - replies cut off in the analysis (nothing kept) or in the final answer (kept, closed);
 *     a message without a channel counts as final; a tool call keeps nothing;
 *   - the parser's events and channels for the same streams;
 *   - dropping turns keeps the system and developer messages; bad index and small buffer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gptoss/engine.h>

#include "chat.h"

static int failures = 0;
#define CHECK(cond, ...)                                            \
    do {                                                            \
        if (!(cond)) {                                              \
            failures++;                                             \
            fprintf(stderr, "FAIL line %d: %s: ", __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                           \
            fprintf(stderr, "\n");                                  \
        }                                                           \
    } while (0)

static gptoss_tokenizer_t tok;
static uint32_t num_text;

/* A token stream under construction. */
struct ids {
    uint32_t v[512];
    size_t n;
};
static void add_id(struct ids* s, uint32_t id) { s->v[s->n++] = id; }
static void add_text(struct ids* s, const char* text) {
    size_t n = 0;
    enum gptoss_status st = gptoss_tokenizer_encode(tok, text, strlen(text), s->v + s->n, 512 - s->n, &n);
    if (st != gptoss_status_success) {
        fprintf(stderr, "encoding '%s' failed: %s\n", text, gptoss_last_error());
        exit(1);
    }
    s->n += n;
}

/* Decodes ids: text tokens as their bytes, special tokens as their names. Returns 0 if a
 * text token's bytes contain "<|" (it would pass for a special token). */
static int decode(const uint32_t* ids, size_t n, char* out, size_t cap) {
    size_t k = 0;
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        const void* p;
        size_t len;
        if (gptoss_tokenizer_decode(tok, ids[i], &p, &len) != gptoss_status_success || k + len + 1 > cap) return 0;
        memcpy(out + k, p, len);
        if (ids[i] < num_text && (memchr(p, '<', len) != NULL || memchr(p, '|', len) != NULL)) ok = 0;
        k += len;
    }
    out[k] = '\0';
    return ok;
}

static size_t count_specials(const uint32_t* ids, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ids[i] >= num_text;
    return c;
}
static size_t count_str(const char* s, const char* sub) {
    size_t c = 0;
    for (const char* p = strstr(s, sub); p != NULL; p = strstr(p + 1, sub)) c++;
    return c;
}

/* Renders the chat and compares it with the harmony text `want`. */
static void expect_render(const struct chat* c, const char* want, int line) {
    static uint32_t ids[4096];
    static char text[65536];
    size_t n = 0;
    enum gptoss_status st = chat_render(c, ids, 4096, &n);
    if (st != gptoss_status_success) {
        fprintf(stderr, "FAIL line %d: render failed\n", line);
        failures++;
        return;
    }
    const int ok = decode(ids, n, text, sizeof(text));
    if (!ok || strcmp(text, want) != 0 || count_specials(ids, n) != count_str(want, "<|")) {
        fprintf(stderr, "FAIL line %d: rendered\n  %s\nexpected\n  %s\n(%zu special tokens, %zu expected%s)\n", line,
                text, want, count_specials(ids, n), count_str(want, "<|"), ok ? "" : "; text token with <|");
        failures++;
    }
}

static int contains(const uint32_t* s, size_t n, const uint32_t* sub, size_t m) {
    for (size_t i = 0; i + m <= n; i++) {
        if (memcmp(s + i, sub, m * sizeof(uint32_t)) == 0) return 1;
    }
    return 0;
}

#define SYS "<|start|>system<|message|>You are a test.<|end|>"
#define DEV "<|start|>developer<|message|># Instructions\n\nBe brief.<|end|>"
#define PROMPT "<|start|>assistant"

int main(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_chat MODEL\n");
        return 2;
    }
    if (gptoss_tokenizer_create_from_file(argv[1], &tok) != gptoss_status_success) {
        fprintf(stderr, "cannot read the tokenizer of %s: %s\n", argv[1], gptoss_last_error());
        return 1;
    }
    gptoss_tokenizer_get_num_text_tokens(tok, &num_text);
    struct chat c;
    enum gptoss_status st = chat_init(&c, tok);
    CHECK(st == gptoss_status_success, "chat_init");
    st = chat_add_message(&c, "system", "You are a test.", strlen("You are a test."));
    CHECK(st == gptoss_status_success, "system message");
    const char* dev = "# Instructions\n\nBe brief.";
    st = chat_add_message(&c, "developer", dev, strlen(dev));
    CHECK(st == gptoss_status_success, "developer message");
    expect_render(&c, SYS DEV PROMPT, __LINE__);

    /* turn 1: analysis, then the final answer */
    CHECK(chat_begin_turn(&c) == gptoss_status_success, "turn 1");
    chat_add_message(&c, "user", "What is 2+2?", 12);
    struct ids r1 = {.n = 0};
    add_id(&r1, c.channel); add_text(&r1, "analysis"); add_id(&r1, c.message);
    add_text(&r1, "Add them up: 4.");
    const size_t analysis_begin = 3, analysis_end = r1.n;
    add_id(&r1, c.end);
    add_id(&r1, c.start); add_text(&r1, "assistant"); add_id(&r1, c.channel); add_text(&r1, "final");
    add_id(&r1, c.message);
    const size_t final_begin = r1.n;
    add_text(&r1, "It is 4.");
    const size_t final_end = r1.n;
    add_id(&r1, c.ret);

    /* the parser on this reply */
    struct chat_parser p;
    chat_parser_reset(&p);
    size_t analysis_text = 0, final_text = 0, other_text = 0;
    enum chat_event last = chat_event_header;
    for (size_t i = 0; i < r1.n; i++) {
        last = chat_parse(&c, &p, r1.v[i]);
        if (last == chat_event_text) {
            if (i >= analysis_begin && i < analysis_end && !p.final && strcmp(p.channel, "analysis") == 0) {
                analysis_text++;
            } else if (i >= final_begin && i < final_end && p.final && strcmp(p.channel, "final") == 0) {
                final_text++;
            } else {
                other_text++;
            }
        }
        CHECK(last != chat_event_message_end || i == analysis_end, "message end at %zu", i);
    }
    CHECK(analysis_text == analysis_end - analysis_begin && final_text == final_end - final_begin && other_text == 0,
          "text events: %zu analysis, %zu final, %zu other", analysis_text, final_text, other_text);
    CHECK(last == chat_event_reply_end, "<|return|> ends the reply");

    st = chat_add_reply(&c, r1.v, r1.n);
    CHECK(st == gptoss_status_success, "reply 1");
    expect_render(&c, SYS DEV "<|start|>user<|message|>What is 2+2?<|end|>"
                  "<|start|>assistant<|channel|>final<|message|>It is 4.<|end|>" PROMPT, __LINE__);
    CHECK(contains(c.ids, c.num_ids, r1.v + final_begin, final_end - final_begin),
          "the history keeps the sampled ids of the final answer");

    /* turn 2: cut off in the analysis (interrupted): nothing of the reply is kept */
    chat_begin_turn(&c);
    chat_add_message(&c, "user", "And 3+3?", 8);
    struct ids r2 = {.n = 0};
    add_id(&r2, c.channel); add_text(&r2, "analysis"); add_id(&r2, c.message); add_text(&r2, "Hmm, 3 and");
    chat_add_reply(&c, r2.v, r2.n);
    const char* two_turns = SYS DEV "<|start|>user<|message|>What is 2+2?<|end|>"
                            "<|start|>assistant<|channel|>final<|message|>It is 4.<|end|>"
                            "<|start|>user<|message|>And 3+3?<|end|>" PROMPT;
    expect_render(&c, two_turns, __LINE__);

    /* turn 3: a tool call keeps nothing; the channel name ends at the space */
    chat_begin_turn(&c);
    chat_add_message(&c, "user", "Call f.", 7);
    struct ids r3 = {.n = 0};
    add_id(&r3, c.channel); add_text(&r3, "commentary to=functions.f "); add_id(&r3, c.constrain);
    add_text(&r3, "json"); add_id(&r3, c.message); add_text(&r3, "{}"); add_id(&r3, c.call);
    chat_parser_reset(&p);
    for (size_t i = 0; i + 1 < r3.n; i++) chat_parse(&c, &p, r3.v[i]);
    CHECK(strcmp(p.channel, "commentary") == 0 && !p.final, "channel '%s', final %d", p.channel, p.final);
    CHECK(chat_parse(&c, &p, c.call) == chat_event_reply_end, "<|call|> ends the reply");
    chat_add_reply(&c, r3.v, r3.n);

    /* turn 4: cut off in the final answer (-n, full context): kept and closed; a second
     * message without a channel counts as final */
    chat_begin_turn(&c);
    chat_add_message(&c, "user", "Count.", 6);
    struct ids r4 = {.n = 0};
    add_id(&r4, c.message); add_text(&r4, "One,"); add_id(&r4, c.end);
    add_id(&r4, c.start); add_text(&r4, "assistant"); add_id(&r4, c.channel); add_text(&r4, "final");
    add_id(&r4, c.message); add_text(&r4, "two, three");
    chat_add_reply(&c, r4.v, r4.n);
    const char* turns_3_4 = "<|start|>user<|message|>Call f.<|end|>"
                            "<|start|>user<|message|>Count.<|end|>"
                            "<|start|>assistant<|channel|>final<|message|>One,<|end|>"
                            "<|start|>assistant<|channel|>final<|message|>two, three<|end|>";
    char want[4096];
    snprintf(want, sizeof(want), "%.*s%s" PROMPT, (int) (strlen(two_turns) - strlen(PROMPT)), two_turns, turns_3_4);
    expect_render(&c, want, __LINE__);

    /* dropping turns: the oldest goes, system and developer stay; a bad index changes nothing */
    CHECK(c.num_turns == 4, "%zu turns", c.num_turns);
    CHECK(chat_drop_turn(&c, 4) == gptoss_status_invalid_argument, "drop turn 4 of 4");
    CHECK(chat_drop_turn(&c, 0) == gptoss_status_success, "drop the oldest");
    snprintf(want, sizeof(want), SYS DEV "<|start|>user<|message|>And 3+3?<|end|>%s" PROMPT, turns_3_4);
    expect_render(&c, want, __LINE__);
    CHECK(chat_drop_turn(&c, 2) == gptoss_status_success, "drop the newest");
    snprintf(want, sizeof(want), SYS DEV "<|start|>user<|message|>And 3+3?<|end|>"
             "<|start|>user<|message|>Call f.<|end|>" PROMPT);
    expect_render(&c, want, __LINE__);

    /* a buffer too small: the count is set, nothing written */
    uint32_t small[8];
    for (int i = 0; i < 8; i++) small[i] = 0xDEADBEEFu;
    size_t n = 0;
    CHECK(chat_render(&c, small, 8, &n) == gptoss_status_insufficient_memory && n == c.num_ids + 1 + c.assistant_len,
          "small buffer: count %zu", n);
    int untouched = 1;
    for (int i = 0; i < 8; i++) untouched &= small[i] == 0xDEADBEEFu;
    CHECK(untouched, "small buffer written");

    chat_free(&c);
    gptoss_tokenizer_release(tok);
    printf("%s: %d failures\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
