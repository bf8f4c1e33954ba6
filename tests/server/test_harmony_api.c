/* The contract of server/harmony.h that the comparison with openai-harmony
 * (test_harmony.py) does not see: argument checks, outputs untouched on failure, error
 * paths, the forced tool-call header, event order and lifetimes in a server-like stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <gptoss/engine.h>
#include <gptoss/offline.h>

#include "harmony.h"

static int failures;

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                            \
        }                                                                          \
    } while (0)

static gptoss_tokenizer_t tok;

static uint32_t* const POISON_PTR = (uint32_t*) (uintptr_t) 0x5a5a5a5a;
static json_t* const POISON_JSON = (json_t*) (uintptr_t) 0x5a5a5a5a;

static void encode(const char* text, uint32_t* out, size_t* n) {
    size_t cap = *n;
    if (gptoss_tokenizer_encode(tok, text, strlen(text), out, cap, n) != gptoss_status_success) abort();
}

static void test_arguments(void) {
    struct gptoss_harmony_error err;
    uint32_t* tokens = POISON_PTR;
    size_t n = 12345;
    json_t* conv = POISON_JSON;
    json_t* req = json_pack("{s:[{s:s,s:s}]}", "messages", "role", "user", "content", "hi");

    CHECK(gptoss_harmony_render_conversation(NULL, req, &tokens, &n, &err) == gptoss_status_invalid_argument);
    CHECK(strstr(err.message, "tokenizer") != NULL);
    CHECK(gptoss_harmony_render_conversation(tok, NULL, &tokens, &n, NULL) == gptoss_status_invalid_argument);
    CHECK(gptoss_harmony_render_conversation(tok, req, NULL, &n, &err) == gptoss_status_invalid_argument);
    CHECK(gptoss_harmony_conversation_from_chat(NULL, NULL, &conv, &err) == gptoss_status_invalid_argument);
    CHECK(gptoss_harmony_conversation_from_chat(req, NULL, NULL, &err) == gptoss_status_invalid_argument);
    CHECK(gptoss_harmony_conversation_from_responses(req, NULL, &conv, &err) == gptoss_status_invalid_argument);
    CHECK(strcmp(err.param, "input") == 0);
    CHECK(tokens == POISON_PTR && n == 12345 && conv == POISON_JSON);

    /* a bad option */
    struct gptoss_harmony_render_options opts;
    gptoss_harmony_render_options_init(&opts);
    CHECK(opts.default_effort == gptoss_harmony_effort_medium && opts.current_date == NULL);
    CHECK(strcmp(opts.knowledge_cutoff, "2024-06") == 0);
    opts.default_effort = 0;
    CHECK(gptoss_harmony_conversation_from_chat(req, &opts, &conv, &err) == gptoss_status_invalid_argument);
    CHECK(conv == POISON_JSON);

    /* the request path is named; outputs untouched */
    json_t* bad = json_pack("{s:[{s:s,s:s},{s:s,s:s,s:s}]}", "messages", "role", "user", "content", "hi", "role",
                            "tool", "tool_call_id", "nope", "content", "x");
    CHECK(gptoss_harmony_conversation_from_chat(bad, NULL, &conv, &err) == gptoss_status_invalid_argument);
    CHECK(strcmp(err.param, "messages[1].tool_call_id") == 0);
    CHECK(strncmp(err.message, "messages[1].tool_call_id: ", 26) == 0);
    CHECK(conv == POISON_JSON);
    json_t* bad_conv = json_pack("{s:[{s:s,s:i}]}", "messages", "role", "user", "content", 3);
    CHECK(gptoss_harmony_render_conversation(tok, bad_conv, &tokens, &n, &err) == gptoss_status_invalid_argument);
    CHECK(strcmp(err.param, "messages[0].content") == 0);
    CHECK(tokens == POISON_PTR && n == 12345);

    /* parser arguments */
    gptoss_harmony_parser_t p = (gptoss_harmony_parser_t) POISON_PTR;
    CHECK(gptoss_harmony_parser_create(NULL, NULL, 0, &p) == gptoss_status_invalid_argument);
    CHECK(gptoss_harmony_parser_create(tok, "wizard", 0, &p) == gptoss_status_invalid_argument);
    CHECK(gptoss_harmony_parser_create(tok, NULL, 0x80, &p) == gptoss_status_invalid_argument);
    CHECK(p == (gptoss_harmony_parser_t) POISON_PTR);
    CHECK(gptoss_harmony_parser_feed(NULL, 1, NULL, NULL) == gptoss_status_invalid_argument);
    CHECK(gptoss_harmony_parser_release(NULL) == gptoss_status_success);
    json_t* msgs = POISON_JSON;
    uint32_t stray[] = {200006, 200008, 200007, 42};
    CHECK(gptoss_harmony_parse_completion(tok, stray, 4, NULL, 0, &msgs, &err) == gptoss_status_invalid_argument);
    CHECK(strcmp(err.param, "tokens[1]") == 0); /* <|start|><|message|>: a header without a role */
    CHECK(msgs == POISON_JSON);
    CHECK(gptoss_harmony_parse_completion(tok, stray, 4, "wizard", 0, &msgs, &err) == gptoss_status_invalid_argument);
    CHECK(strcmp(err.param, "role") == 0);

    /* the tool-call header */
    CHECK(gptoss_harmony_render_tool_call_header(tok, "bad name", &tokens, &n, &err) == gptoss_status_invalid_argument);
    CHECK(strcmp(err.param, "name") == 0 && tokens == POISON_PTR);
    json_decref(req);
    json_decref(bad);
    json_decref(bad_conv);
}

/* What the server does for a forced call: prompt, the header appended and fed to the
 * parser, then the sampled arguments byte by byte (a split character), <|call|>. */
static void test_forced_tool_call(void) {
    struct gptoss_harmony_error err;
    uint32_t* header;
    size_t nh;
    CHECK(gptoss_harmony_render_tool_call_header(tok, "get_weather", &header, &nh, &err) == gptoss_status_success);
    CHECK(nh > 4 && header[0] == 200005 && header[nh - 1] == 200008 && header[nh - 3] == 200003);
    gptoss_harmony_parser_t p;
    CHECK(gptoss_harmony_parser_create(tok, "assistant", 0, &p) == gptoss_status_success);
    const struct gptoss_harmony_event* ev;
    size_t num;
    for (size_t i = 0; i + 1 < nh; i++) {
        CHECK(gptoss_harmony_parser_feed(p, header[i], &ev, &num) == gptoss_status_success);
        CHECK(num == 0);
    }
    CHECK(gptoss_harmony_parser_feed(p, header[nh - 1], &ev, &num) == gptoss_status_success);
    CHECK(num == 1 && ev[0].type == gptoss_harmony_event_message_begin);
    if (num == 1) {
        CHECK(strcmp(ev[0].header->role, "assistant") == 0 && ev[0].header->name == NULL);
        CHECK(strcmp(ev[0].header->channel, "commentary") == 0);
        CHECK(strcmp(ev[0].header->recipient, "functions.get_weather") == 0);
        CHECK(strcmp(ev[0].header->content_type, "<|constrain|>json") == 0);
    }
    /* {"city":"€"} with the euro sign given as its three single-byte tokens */
    uint32_t ids[64];
    size_t n = 32, m = 8;
    encode("{\"city\":\"", ids, &n);
    static const char euro[] = "\xE2\x82\xAC";
    size_t euro_at = n;
    for (int b = 0; b < 3; b++) {
        /* find the single-byte token of this byte */
        for (uint32_t id = 0; id < 199998; id++) {
            const void* s;
            size_t len;
            if (gptoss_tokenizer_decode(tok, id, &s, &len) == gptoss_status_success && len == 1 &&
                ((const char*) s)[0] == euro[b]) {
                ids[n++] = id;
                break;
            }
        }
    }
    encode("\"}", ids + n, &m);
    n += m;
    char args[64] = "";
    for (size_t i = 0; i < n; i++) {
        CHECK(gptoss_harmony_parser_feed(p, ids[i], &ev, &num) == gptoss_status_success);
        for (size_t k = 0; k < num; k++) {
            CHECK(ev[k].type == gptoss_harmony_event_content_delta);
            strncat(args, ev[k].text, ev[k].text_size);
        }
        if (i == euro_at || i == euro_at + 1) CHECK(num == 0); /* a cut character waits */
    }
    CHECK(strcmp(args, "{\"city\":\"\xE2\x82\xAC\"}") == 0);
    CHECK(gptoss_harmony_parser_feed(p, 200012, &ev, &num) == gptoss_status_success);
    CHECK(num == 1 && ev[0].type == gptoss_harmony_event_message_end && ev[0].stop == gptoss_harmony_stop_call);
    CHECK(num == 1 && ev[0].text_size == strlen(args) && memcmp(ev[0].text, args, strlen(args)) == 0);
    /* then a stray token: an error event that keeps its text; the parser goes on */
    uint32_t hello;
    size_t one = 1;
    encode("Hello", &hello, &one);
    CHECK(gptoss_harmony_parser_feed(p, hello, &ev, &num) == gptoss_status_success);
    CHECK(num == 1 && ev[0].type == gptoss_harmony_event_error && ev[0].text_size == 5 &&
          memcmp(ev[0].text, "Hello", 5) == 0);
    CHECK(gptoss_harmony_parser_finish(p, &ev, &num) == gptoss_status_success && num == 0);
    json_t* msgs;
    CHECK(gptoss_harmony_parser_get_messages(p, &msgs) == gptoss_status_success);
    CHECK(json_array_size(msgs) == 1);
    json_array_clear(msgs); /* a copy: the parser's list is unchanged */
    json_decref(msgs);
    CHECK(gptoss_harmony_parser_get_messages(p, &msgs) == gptoss_status_success && json_array_size(msgs) == 1);
    json_t* m0 = json_array_get(msgs, 0);
    CHECK(strcmp(json_string_value(json_object_get(m0, "recipient")), "functions.get_weather") == 0);
    json_decref(msgs);
    gptoss_harmony_parser_release(p);
    free(header);
}

int main(void) {
    gptoss_backend_t backend;
    gptoss_model_t model;
    if (gptoss_backend_create_cpu(1, &backend) != gptoss_status_success ||
        gptoss_model_create_random("tiny", 1, 1, backend, &model) != gptoss_status_success ||
        gptoss_model_get_tokenizer(model, &tok) != gptoss_status_success) {
        fprintf(stderr, "test_harmony_api: %s\n", gptoss_last_error());
        return 1;
    }
    test_arguments();
    test_forced_tool_call();
    gptoss_tokenizer_release(tok);
    gptoss_model_release(model);
    gptoss_backend_release(backend);
    printf("test_harmony_api: %s (%d failed checks)\n", failures ? "FAILED" : "passed", failures);
    return failures ? 1 : 0;
}
