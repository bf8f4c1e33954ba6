/* The server's output layer on scripted token streams (no model run): harmony completions
 * -> items (reasoning, content, tool calls), finish reasons, stop strings, logprobs, the
 * streamed events and chunks against the whole response; plain completions with UTF-8
 * split across tokens; the lossy UTF-8 decoder against hand-made cases.
 * The tokenizer is the real o200k_harmony one (a random tiny model's). */
#include <math.h>
#include <time.h>

#include "../engine/test_util.h"
#include <gptoss/offline.h>

#include "server.h"

static gptoss_tokenizer_t g_tok;

static uint32_t sp(enum gptoss_special_token t) {
    uint32_t id = 0;
    gptoss_tokenizer_get_special_token_id(g_tok, t, &id);
    return id;
}

/* A token stream built from text and special tokens. */
struct ids {
    uint32_t v[512];
    size_t n;
};

static void text(struct ids* s, const char* t) {
    size_t n = 0;
    gptoss_tokenizer_encode(g_tok, t, strlen(t), s->v + s->n, 512 - s->n, &n);
    s->n += n;
}

static void special(struct ids* s, enum gptoss_special_token t) { s->v[s->n++] = sp(t); }

/* "<|channel|>CH<|message|>BODY" after the prompt's <|start|>assistant */
static void header(struct ids* s, const char* channel_and_rest) {
    special(s, gptoss_special_token_channel);
    text(s, channel_and_rest);
    special(s, gptoss_special_token_message);
}

static struct srv_request* new_request(enum srv_api api, bool stream) {
    struct srv_request* r = srv_request_new(api);
    r->params.stream = stream;
    r->params.max_tokens = 1000;
    r->model = strdup("test-model");
    return r;
}

/* Feeds s (stops where the output says so); returns the number of tokens fed. */
static size_t run(struct srv_request* req, const struct ids* s, const float* logits, uint32_t V) {
    struct srv_output* o = srv_output_create(g_tok, req, 0);
    size_t i = 0;
    bool stop = false;
    while (i < s->n && !stop) stop = srv_output_feed(o, s->v[i++], logits, V);
    srv_output_finish(o);
    srv_output_free(o);
    req->result.completion_tokens = i;
    srv_request_finish_choice(req, 0); /* as the scheduler ends a choice */
    return i;
}

static const char* item_text(const struct srv_request* r, size_t i) {
    return i < r->result.num_items && r->result.items[i].text.data ? r->result.items[i].text.data : "";
}

/* The chat chunks of a streamed request, parsed back: content, reasoning and arguments
 * concatenated, the finish reason, the usage chunk. */
struct chat_stream {
    struct srv_buf content, reasoning, args;
    char name[64], finish[32];
    int usage_chunks, done, tool_begins;
};

static void parse_chat_stream(struct srv_request* req, struct chat_stream* cs) {
    memset(cs, 0, sizeof(*cs));
    struct srv_buf sse = {0};
    uint64_t seq = 0;
    srv_format_stream_begin(req, &seq, &sse);
    struct srv_event* ev = NULL;
    const size_t n = srv_request_take_events(req, &ev);
    srv_format_stream(req, ev, n, &seq, &sse);
    srv_events_free(ev, n);
    char* line = sse.data;
    while (line != NULL && *line) {
        char* end = strstr(line, "\n\n");
        if (end == NULL) break;
        *end = '\0';
        CHECK(strncmp(line, "data: ", 6) == 0, "SSE line '%.40s'", line);
        if (strcmp(line + 6, "[DONE]") == 0) {
            cs->done++;
        } else {
            json_t* j = json_loads(line + 6, 0, NULL);
            CHECK(j != NULL, "chunk is JSON: %.80s", line + 6);
            json_t* choices = json_object_get(j, "choices");
            if (json_array_size(choices) == 0) {
                cs->usage_chunks += json_is_object(json_object_get(j, "usage"));
            } else {
                json_t* c = json_array_get(choices, 0);
                json_t* d = json_object_get(c, "delta");
                const char* s;
                if ((s = json_string_value(json_object_get(d, "content")))) srv_buf_puts(&cs->content, s);
                if ((s = json_string_value(json_object_get(d, "reasoning_content")))) srv_buf_puts(&cs->reasoning, s);
                json_t* tc = json_array_get(json_object_get(d, "tool_calls"), 0);
                if (tc) {
                    json_t* fn = json_object_get(tc, "function");
                    if ((s = json_string_value(json_object_get(fn, "name")))) {
                        snprintf(cs->name, sizeof(cs->name), "%s", s);
                        cs->tool_begins++;
                        CHECK(json_is_string(json_object_get(tc, "id")), "tool call chunk has an id");
                    }
                    if ((s = json_string_value(json_object_get(fn, "arguments")))) srv_buf_puts(&cs->args, s);
                }
                if ((s = json_string_value(json_object_get(c, "finish_reason")))) snprintf(cs->finish, sizeof(cs->finish), "%s", s);
            }
            json_decref(j);
        }
        line = end + 2;
    }
    srv_buf_free(&sse);
}

static void free_stream(struct chat_stream* cs) {
    srv_buf_free(&cs->content);
    srv_buf_free(&cs->reasoning);
    srv_buf_free(&cs->args);
}

static void test_reasoning_then_final(void) {
    struct ids s = {0};
    header(&s, "analysis");
    text(&s, "Let me think about it.");
    special(&s, gptoss_special_token_end);
    special(&s, gptoss_special_token_start);
    text(&s, "assistant");
    header(&s, "final");
    text(&s, "Hello world! Ünïcödé ✓");
    special(&s, gptoss_special_token_return);
    text(&s, "never read");
    for (int stream = 0; stream < 2; stream++) {
        struct srv_request* r = new_request(srv_api_chat, stream);
        r->params.include_usage = true;
        const size_t fed = run(r, &s, NULL, 0);
        CHECK(fed == s.n - 2, "stops at <|return|>: fed %zu of %zu", fed, s.n);
        CHECK(r->result.num_items == 2, "items %zu", r->result.num_items);
        CHECK(r->result.items[0].kind == srv_item_reasoning && strcmp(item_text(r, 0), "Let me think about it.") == 0,
              "reasoning '%s'", item_text(r, 0));
        CHECK(r->result.items[1].kind == srv_item_message && strcmp(item_text(r, 1), "Hello world! Ünïcödé ✓") == 0,
              "content '%s'", item_text(r, 1));
        CHECK(r->result.finish == srv_finish_stop, "finish %d", r->result.finish);
        /* reasoning tokens: the analysis content and its <|end|> */
        size_t expect = 0;
        for (size_t i = 0; i < s.n && s.v[i] != sp(gptoss_special_token_end); i++) expect++;
        expect = expect + 1 - 3; /* minus <|channel|>analysis<|message|> */
        CHECK(r->result.reasoning_tokens == expect, "reasoning tokens %zu, expected %zu", r->result.reasoning_tokens, expect);
        CHECK(r->result.parse_errors == 0, "parse errors %zu", r->result.parse_errors);
        json_t* resp = srv_format_response(r);
        json_t* msg = json_object_get(json_array_get(json_object_get(resp, "choices"), 0), "message");
        CHECK(strcmp(json_string_value(json_object_get(msg, "content")), "Hello world! Ünïcödé ✓") == 0, "message.content");
        CHECK(strcmp(json_string_value(json_object_get(msg, "reasoning_content")), "Let me think about it.") == 0,
              "message.reasoning_content");
        CHECK(json_object_get(msg, "tool_calls") == NULL, "no tool_calls");
        json_decref(resp);
        if (stream) {
            struct chat_stream cs;
            parse_chat_stream(r, &cs);
            CHECK(cs.content.data && strcmp(cs.content.data, "Hello world! Ünïcödé ✓") == 0, "streamed content");
            CHECK(cs.reasoning.data && strcmp(cs.reasoning.data, "Let me think about it.") == 0, "streamed reasoning");
            CHECK(strcmp(cs.finish, "stop") == 0 && cs.usage_chunks == 1 && cs.done == 1, "closing chunks %s %d %d",
                  cs.finish, cs.usage_chunks, cs.done);
            free_stream(&cs);
        }
        srv_request_release(r);
    }
}

static void test_tool_call(void) {
    struct ids s = {0};
    header(&s, "analysis");
    text(&s, "Need the weather.");
    special(&s, gptoss_special_token_end);
    special(&s, gptoss_special_token_start);
    text(&s, "assistant");
    special(&s, gptoss_special_token_channel);
    text(&s, "commentary to=functions.get_weather ");
    special(&s, gptoss_special_token_constrain);
    text(&s, "json");
    special(&s, gptoss_special_token_message);
    text(&s, "{\"city\": \"Paris\"}");
    special(&s, gptoss_special_token_call);
    for (int stream = 0; stream < 2; stream++) {
        struct srv_request* r = new_request(srv_api_chat, stream);
        run(r, &s, NULL, 0);
        CHECK(r->result.num_items == 2 && r->result.items[1].kind == srv_item_tool_call, "a tool call item");
        CHECK(r->result.items[1].name && strcmp(r->result.items[1].name, "get_weather") == 0, "name");
        CHECK(strcmp(item_text(r, 1), "{\"city\": \"Paris\"}") == 0, "arguments '%s'", item_text(r, 1));
        CHECK(r->result.finish == srv_finish_tool_calls, "finish %d", r->result.finish);
        json_t* resp = srv_format_response(r);
        json_t* choice = json_array_get(json_object_get(resp, "choices"), 0);
        json_t* msg = json_object_get(choice, "message");
        CHECK(json_is_null(json_object_get(msg, "content")), "content null with only tool calls");
        CHECK(strcmp(json_string_value(json_object_get(choice, "finish_reason")), "tool_calls") == 0, "finish_reason");
        json_t* call = json_array_get(json_object_get(msg, "tool_calls"), 0);
        CHECK(strcmp(json_string_value(json_object_get(json_object_get(call, "function"), "arguments")),
                     "{\"city\": \"Paris\"}") == 0, "tool_calls[0].function.arguments");
        json_decref(resp);
        if (stream) {
            struct chat_stream cs;
            parse_chat_stream(r, &cs);
            CHECK(cs.tool_begins == 1 && strcmp(cs.name, "get_weather") == 0, "one tool call chunk named get_weather");
            CHECK(cs.args.data && strcmp(cs.args.data, "{\"city\": \"Paris\"}") == 0, "streamed arguments '%s'",
                  cs.args.data ? cs.args.data : "");
            CHECK(strcmp(cs.finish, "tool_calls") == 0, "streamed finish %s", cs.finish);
            free_stream(&cs);
        }
        srv_request_release(r);
    }
    /* the forced header (tool_choice naming a function) given before the sampled tokens */
    uint32_t* h = NULL;
    size_t nh = 0;
    CHECK(gptoss_harmony_render_tool_call_header(g_tok, "get_weather", &h, &nh, NULL) == gptoss_status_success, "header");
    struct ids args = {0};
    text(&args, "{\"city\":\"Oslo\"}");
    special(&args, gptoss_special_token_call);
    struct srv_request* r = new_request(srv_api_responses, false);
    struct srv_output* o = srv_output_create(g_tok, r, 0);
    srv_output_feed_header(o, h, nh);
    bool stop = false;
    for (size_t i = 0; i < args.n && !stop; i++) stop = srv_output_feed(o, args.v[i], NULL, 0);
    srv_output_finish(o);
    srv_output_free(o);
    CHECK(stop && r->result.finish == srv_finish_tool_calls, "forced call ends with tool_calls");
    CHECK(r->result.num_items == 1 && strcmp(item_text(r, 0), "{\"city\":\"Oslo\"}") == 0, "forced call arguments");
    srv_request_release(r);
    free(h);
}

/* The responses API's streamed events for reasoning then a final message: the order and
 * types, sequence numbers from 0, the deltas adding up to the done events' text and to the
 * final response's output. */
static void test_responses_stream(void) {
    struct ids s = {0};
    header(&s, "analysis");
    text(&s, "Think.");
    special(&s, gptoss_special_token_end);
    special(&s, gptoss_special_token_start);
    text(&s, "assistant");
    header(&s, "final");
    text(&s, "Answer here.");
    special(&s, gptoss_special_token_return);
    struct srv_request* r = new_request(srv_api_responses, true);
    r->info = json_pack("{s:{s:n}, s:[]}", "echo", "instructions", "input");
    run(r, &s, NULL, 0);
    struct srv_buf sse = {0};
    uint64_t seq = 0;
    srv_format_stream_begin(r, &seq, &sse);
    struct srv_event* ev = NULL;
    const size_t n = srv_request_take_events(r, &ev);
    srv_format_stream(r, ev, n, &seq, &sse);
    srv_events_free(ev, n);
    static const char* const expect[] = {
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.reasoning_text.delta", "response.reasoning_text.done", "response.content_part.done",
        "response.output_item.done", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"};
    size_t k = 0, events = 0;
    struct srv_buf reasoning = {0}, answer = {0};
    json_t* last = NULL;
    for (char* line = sse.data; line != NULL && *line;) {
        char* end = strstr(line, "\n\n");
        if (end == NULL) break;
        *end = '\0';
        char* data = strstr(line, "\ndata: ");
        CHECK(strncmp(line, "event: ", 7) == 0 && data != NULL, "event line '%.40s'", line);
        if (data == NULL) break;
        *data = '\0';
        json_t* j = json_loads(data + 7, 0, NULL);
        const char* type = json_string_value(json_object_get(j, "type"));
        CHECK(type && strcmp(type, line + 7) == 0, "event name = type");
        CHECK(json_integer_value(json_object_get(j, "sequence_number")) == (json_int_t) events, "sequence_number %zu", events);
        /* exactly the expected sequence, where a delta may repeat */
        const bool repeat = k > 0 && type && strstr(type, ".delta") && strcmp(type, expect[k - 1]) == 0;
        if (!repeat) {
            CHECK(k < sizeof(expect) / sizeof(*expect) && type && strcmp(type, expect[k]) == 0,
                  "event %zu is %s, expected %s", events, type ? type : "?",
                  k < sizeof(expect) / sizeof(*expect) ? expect[k] : "(end)");
            k++;
        }
        if (type && strcmp(type, "response.reasoning_text.delta") == 0)
            srv_buf_puts(&reasoning, json_string_value(json_object_get(j, "delta")));
        if (type && strcmp(type, "response.output_text.delta") == 0)
            srv_buf_puts(&answer, json_string_value(json_object_get(j, "delta")));
        if (type && strcmp(type, "response.output_text.done") == 0)
            CHECK(answer.data && strcmp(json_string_value(json_object_get(j, "text")), answer.data) == 0, "text.done");
        json_decref(last);
        last = j;
        events++;
        line = end + 2;
    }
    CHECK(k == sizeof(expect) / sizeof(*expect), "all expected events seen (%zu)", k);
    CHECK(reasoning.data && strcmp(reasoning.data, "Think.") == 0, "reasoning deltas");
    CHECK(answer.data && strcmp(answer.data, "Answer here.") == 0, "text deltas");
    json_t* out = json_object_get(json_object_get(last, "response"), "output");
    CHECK(json_array_size(out) == 2, "final response output items");
    json_t* part = json_array_get(json_object_get(json_array_get(out, 1), "content"), 0);
    CHECK(strcmp(json_string_value(json_object_get(part, "text")), "Answer here.") == 0, "final output_text");
    json_decref(last);
    srv_buf_free(&reasoning);
    srv_buf_free(&answer);
    srv_buf_free(&sse);
    srv_request_release(r);
}

static void test_stop_strings(void) {
    struct ids s = {0};
    header(&s, "final");
    text(&s, "The quick brown fox jumps over the lazy dog");
    special(&s, gptoss_special_token_return);
    struct {
        const char* stop[2];
        const char* expect;
        bool stopped;
    } cases[] = {
        {{"fox", NULL}, "The quick brown ", true},
        {{"own f", "lazy"}, "The quick br", true},          /* spans tokens; the earliest match wins */
        {{"dog!", NULL}, "The quick brown fox jumps over the lazy dog", false}, /* held "dog" released */
        {{"T", NULL}, "", true},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(*cases); c++) {
        for (int stream = 0; stream < 2; stream++) {
            struct srv_request* r = new_request(srv_api_chat, stream);
            for (int k = 0; k < 2 && cases[c].stop[k]; k++) r->params.stop[r->params.num_stop++] = strdup(cases[c].stop[k]);
            const size_t fed = run(r, &s, NULL, 0);
            CHECK(strcmp(item_text(r, 0), cases[c].expect) == 0, "case %zu: content '%s', expected '%s'", c,
                  item_text(r, 0), cases[c].expect);
            CHECK(cases[c].stopped == (fed < s.n), "case %zu: stopped early: fed %zu of %zu", c, fed, s.n);
            CHECK(r->result.finish == srv_finish_stop, "case %zu: finish %d", c, r->result.finish);
            if (stream) {
                struct chat_stream cs;
                parse_chat_stream(r, &cs);
                CHECK(strcmp(cs.content.data ? cs.content.data : "", cases[c].expect) == 0, "case %zu streamed '%s'", c,
                      cs.content.data ? cs.content.data : "");
                free_stream(&cs);
            }
            srv_request_release(r);
        }
    }
}

static void test_malformed(void) {
    /* a message, stray text where <|start|> belongs, another role's turn, a final message */
    struct ids s = {0};
    header(&s, "final");
    text(&s, "first");
    special(&s, gptoss_special_token_end);
    text(&s, "garbage");
    special(&s, gptoss_special_token_start);
    text(&s, "user");
    special(&s, gptoss_special_token_message);
    text(&s, "not the assistant");
    special(&s, gptoss_special_token_end);
    special(&s, gptoss_special_token_start);
    text(&s, "assistant");
    header(&s, "final");
    text(&s, "ok");
    special(&s, gptoss_special_token_return);
    struct srv_request* r = new_request(srv_api_chat, false);
    run(r, &s, NULL, 0);
    CHECK(r->result.parse_errors >= 1, "parse errors counted: %zu", r->result.parse_errors);
    CHECK(r->result.num_items == 2 && strcmp(item_text(r, 0), "first") == 0 && strcmp(item_text(r, 1), "ok") == 0,
          "only the assistant's messages: %zu '%s'", r->result.num_items, item_text(r, 1));
    srv_request_release(r);
    /* cut by max_tokens inside a message: the message is kept, finish set by the caller */
    struct ids t = {0};
    header(&t, "final");
    text(&t, "unfinished sentence");
    struct srv_request* r2 = new_request(srv_api_chat, false);
    run(r2, &t, NULL, 0);
    CHECK(r2->result.num_items == 1 && strcmp(item_text(r2, 0), "unfinished sentence") == 0, "cut message kept");
    CHECK(r2->result.finish == srv_finish_none, "no stop reason from the output");
    srv_request_release(r2);
}

static void test_logprobs(void) {
    struct ids s = {0};
    header(&s, "final");
    text(&s, "alpha beta gamma");
    special(&s, gptoss_special_token_return);
    uint32_t V = 0;
    gptoss_tokenizer_get_num_tokens(g_tok, &V);
    float* logits = malloc((size_t) V * sizeof(float));
    for (uint32_t i = 0; i < V; i++) logits[i] = (float) ((double) (rng_next() >> 11) * 0x1.0p-53 * 8.0 - 4.0);
    double mx = -INFINITY, sum = 0.0;
    for (uint32_t i = 0; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    for (uint32_t i = 0; i < V; i++) sum += exp((double) logits[i] - mx);
    const double lse = mx + log(sum);
    struct srv_request* r = new_request(srv_api_chat, false);
    r->params.logprobs = true;
    r->params.top_logprobs = 5;
    run(r, &s, logits, V);
    json_t* lp = r->result.items[0].logprobs;
    const size_t content_tokens = s.n - 4; /* minus <|channel|>final<|message|> and <|return|> */
    CHECK(json_array_size(lp) == content_tokens, "one entry per content token: %zu vs %zu", json_array_size(lp), content_tokens);
    /* the reference top 5, by a full sort */
    uint32_t top[5] = {0};
    for (int k = 0; k < 5; k++) {
        uint32_t best = UINT32_MAX;
        for (uint32_t i = 0; i < V; i++) {
            bool used = false;
            for (int j = 0; j < k; j++) used |= top[j] == i;
            if (!used && (best == UINT32_MAX || logits[i] > logits[best])) best = i;
        }
        top[k] = best;
    }
    size_t i;
    json_t* e;
    size_t tok = 3;
    json_array_foreach(lp, i, e) {
        const double got = json_real_value(json_object_get(e, "logprob"));
        const double want = (double) logits[s.v[tok + i]] - lse;
        /* both are f32 logit minus a double log-sum-exp: equal up to the summation order */
        CHECK(fabs(got - want) < 1e-9, "logprob %zu: %.12f vs %.12f", i, got, want);
        json_t* t = json_object_get(e, "top_logprobs");
        CHECK(json_array_size(t) == 5, "5 top logprobs");
        for (int k = 0; k < 5 && k < (int) json_array_size(t); k++) {
            const double tl = json_real_value(json_object_get(json_array_get(t, (size_t) k), "logprob"));
            CHECK(fabs(tl - ((double) logits[top[k]] - lse)) < 1e-9, "top %d", k);
        }
    }
    free(logits);
    srv_request_release(r);
}

static void test_completions_utf8(void) {
    const char* textv = "héllo 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ✓ 日本語";
    struct ids s = {0};
    text(&s, textv);
    special(&s, gptoss_special_token_return);
    for (int stream = 0; stream < 2; stream++) {
        struct srv_request* r = new_request(srv_api_completions, stream);
        run(r, &s, NULL, 0);
        CHECK(strcmp(item_text(r, 0), textv) == 0, "completion text '%s'", item_text(r, 0));
        if (stream) {
            struct srv_event* ev = NULL;
            const size_t n = srv_request_take_events(r, &ev);
            struct srv_buf cat = {0};
            for (size_t k = 0; k < n; k++)
                if (ev[k].type == srv_event_delta) srv_buf_put(&cat, ev[k].text, ev[k].text_len);
            CHECK(cat.data && strcmp(cat.data, textv) == 0, "deltas are whole characters and add up");
            srv_buf_free(&cat);
            srv_events_free(ev, n);
        }
        srv_request_release(r);
    }
}

static void test_utf8_lossy(void) {
    static const struct {
        const char* in;
        size_t n;
        const char* out;
    } cases[] = {
        {"abc", 3, "abc"},
        {"\xff", 1, "\xEF\xBF\xBD"},
        {"a\xe2\x82", 3, "a\xEF\xBF\xBD"},                                    /* truncated: one U+FFFD */
        {"\xed\xa0\x80", 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},          /* surrogate: three */
        {"\xf0\x9f\x98\x80x", 5, "\xf0\x9f\x98\x80x"},
        {"\xf0\x9f\x98x", 4, "\xEF\xBF\xBDx"},                                /* maximal subpart */
        {"\xc0\xaf", 2, "\xEF\xBF\xBD\xEF\xBF\xBD"},                          /* overlong */
        {"\xf4\x90\x80\x80", 4, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* > U+10FFFF */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct srv_buf b = {0};
        srv_utf8_lossy(&b, cases[i].in, cases[i].n, false);
        CHECK(b.data && strcmp(b.data, cases[i].out) == 0, "utf8 case %zu", i);
        srv_buf_free(&b);
    }
    struct srv_buf b = {0};
    CHECK(srv_utf8_lossy(&b, "ab\xe2\x82", 4, true) == 2 && b.len == 2, "partial: the incomplete tail is kept back");
    srv_buf_free(&b);
}

/* JSON mode in chat: nothing constrained before the final message (the analysis is free),
 * then its content is a JSON object: '{' first, then what the recognizer allows, and once
 * the object is whole only <|return|>. A commentary message stays free. */
static bool allowed(const uint32_t* w, uint32_t id) { return w[id / 32] >> (id % 32) & 1u; }

static uint32_t one_token(const char* t) {
    uint32_t id = UINT32_MAX;
    size_t n = 0;
    gptoss_tokenizer_encode(g_tok, t, strlen(t), &id, 1, &n);
    return n == 1 ? id : UINT32_MAX;
}

static void test_json_mode_chat(void) {
    uint32_t V = 0;
    gptoss_tokenizer_get_num_tokens(g_tok, &V);
    struct srv_json_vocab* v = srv_json_vocab_create(g_tok, V);
    CHECK(v != NULL, "vocabulary");
    if (v == NULL) return;
    uint32_t* w = malloc(v->num_words * sizeof(uint32_t));
    const uint32_t open = one_token("{"), close = one_token("}"), letter = one_token("a"), ret = sp(gptoss_special_token_return);
    CHECK(open != UINT32_MAX && close != UINT32_MAX && letter != UINT32_MAX, "one-token texts");
    struct srv_request* req = new_request(srv_api_chat, false);
    req->params.json_object = true;
    struct srv_output* o = srv_output_create(g_tok, req, 0);
    CHECK(srv_output_json_mask(o, v, w) == 0, "nothing constrained before a message");
    struct ids s = {0};
    header(&s, "analysis");
    text(&s, "Let me think. The user wants JSON.");
    special(&s, gptoss_special_token_end);
    special(&s, gptoss_special_token_start);
    text(&s, "assistant");
    special(&s, gptoss_special_token_channel);
    text(&s, "commentary");
    special(&s, gptoss_special_token_message);
    text(&s, "Working on it.");
    special(&s, gptoss_special_token_end);
    special(&s, gptoss_special_token_start);
    text(&s, "assistant");
    header(&s, "final");
    size_t i = 0;
    for (; i < s.n; i++) {
        CHECK(srv_output_json_mask(o, v, w) == 0, "token %zu: nothing constrained outside the final message", i);
        CHECK(!srv_output_feed(o, s.v[i], NULL, V), "token %zu does not stop", i);
    }
    size_t n = srv_output_json_mask(o, v, w);
    CHECK(n > 0 && allowed(w, open) && !allowed(w, close) && !allowed(w, letter) && !allowed(w, ret),
          "the final message starts with '{': %zu allowed, '{' %d, '}' %d, 'a' %d, <|return|> %d", n,
          allowed(w, open), allowed(w, close), allowed(w, letter), allowed(w, ret));
    CHECK(!srv_output_feed(o, open, NULL, V), "'{'");
    n = srv_output_json_mask(o, v, w);
    CHECK(allowed(w, close) && !allowed(w, letter) && !allowed(w, ret), "after '{': '}' yes, 'a' and <|return|> no");
    CHECK(!srv_output_feed(o, close, NULL, V), "'}'");
    n = srv_output_json_mask(o, v, w);
    CHECK(n == 1 && allowed(w, ret), "the object is whole: only <|return|> (%zu allowed)", n);
    CHECK(srv_output_feed(o, ret, NULL, V), "<|return|> stops");
    srv_output_finish(o);
    srv_output_free(o);
    srv_request_finish_choice(req, 0);
    CHECK(req->result.num_items == 3 && strcmp(item_text(req, 2), "{}") == 0, "the final message is '%s' (%zu items)",
          item_text(req, 2), req->result.num_items);
    srv_request_release(req);
    /* without the format nothing is ever constrained */
    req = new_request(srv_api_chat, false);
    o = srv_output_create(g_tok, req, 0);
    for (i = 0; i < s.n; i++) srv_output_feed(o, s.v[i], NULL, V);
    CHECK(srv_output_json_mask(o, v, w) == 0, "no JSON mode: no mask in the final message");
    srv_output_finish(o);
    srv_output_free(o);
    srv_request_release(req);
    free(w);
    srv_json_vocab_free(v);
}

int main(void) {
    const char* seed_env = getenv("GPTOSS_TEST_SEED");
    g_rng = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t) time(NULL);
    printf("seed %llu (GPTOSS_TEST_SEED)\n", (unsigned long long) g_rng);
    gptoss_backend_t b = NULL;
    gptoss_model_t m = NULL;
    if (gptoss_backend_create_cpu(1, &b) != gptoss_status_success ||
        gptoss_model_create_random("tiny", 1, 1, b, &m) != gptoss_status_success ||
        gptoss_model_get_tokenizer(m, &g_tok) != gptoss_status_success) {
        fprintf(stderr, "set-up: %s\n", gptoss_last_error());
        return 1;
    }
    test_reasoning_then_final();
    test_tool_call();
    test_responses_stream();
    test_stop_strings();
    test_malformed();
    test_logprobs();
    test_completions_utf8();
    test_utf8_lossy();
    test_json_mode_chat();
    gptoss_tokenizer_release(g_tok);
    gptoss_model_release(m);
    gptoss_backend_release(b);
    return finish();
}
