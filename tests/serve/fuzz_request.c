/* Fuzz target of the server's request layer: the first byte picks the endpoint
 * (chat completions, responses, completions, apply-template), the rest is the body. A body
 * that validates is rendered to prompt ids, which are then fed back as if the model had
 * generated them through the output layer (harmony parser, stop strings, logprob-free
 * items) and formatted as a whole response and as a stream: malformed requests and any
 * token sequence a request can produce must give an error or a response, never a crash,
 * a leak or an out-of-bounds access. A stored response ("resp_fuzz") lets
 * previous_response_id resolve.
 *
 * Built as a corpus replay (replay_main.c, ctest serve_fuzz_request_replay) and, with
 * -DGPTOSS_FUZZ=ON and clang, as a libFuzzer binary (tests/serve/fuzz.sh). */
#include <stdlib.h>
#include <string.h>

#include <gptoss/offline.h>

#include "server.h"

static gptoss_backend_t g_backend;
static gptoss_model_t g_model;
static gptoss_tokenizer_t g_tok;
static struct srv_store* g_store;

static void init(void) {
    if (g_tok != NULL) return;
    if (gptoss_backend_create_cpu(1, &g_backend) != gptoss_status_success ||
        gptoss_model_create_random("tiny", 1, 1, g_backend, &g_model) != gptoss_status_success ||
        gptoss_model_get_tokenizer(g_model, &g_tok) != gptoss_status_success) {
        fprintf(stderr, "fuzz_request: set-up failed: %s\n", gptoss_last_error());
        abort();
    }
    g_store = srv_store_create(4, 1 << 20);
    json_t* input = json_pack("[{s:s, s:s, s:s}]", "type", "message", "role", "user", "content", "stored question");
    json_t* output = json_pack("[{s:s, s:s, s:s, s:[{s:s, s:s}]}]", "type", "message", "role", "assistant", "id", "msg_1",
                               "content", "type", "output_text", "text", "stored answer");
    srv_store_put(g_store, "resp_fuzz", input, output);
    json_decref(input);
    json_decref(output);
}

/* The prompt's tokens fed back as a completion of every choice (choice c from token c on),
 * then both response forms. */
static struct srv_json_vocab* g_vocab; /* JSON mode's table, made at the first such request */
static uint32_t* g_words;

/* JSON mode: the mask after the fed tokens; its count must be its bits' */
static void json_mask(struct srv_output* out) {
    if (g_vocab == NULL) {
        uint32_t V = 0;
        gptoss_tokenizer_get_num_tokens(g_tok, &V);
        g_vocab = srv_json_vocab_create(g_tok, V);
        if (g_vocab == NULL || (g_words = malloc(g_vocab->num_words * sizeof(uint32_t))) == NULL) abort();
    }
    const size_t n = srv_output_json_mask(out, g_vocab, g_words);
    size_t bits = 0;
    for (uint32_t w = 0; w < g_vocab->num_words && n > 0; w++) bits += (size_t) __builtin_popcount(g_words[w]);
    if (n > 0 && bits != n) abort();
}

static void replay_as_output(struct srv_request* req) {
    for (uint32_t c = 0; c < req->params.n; c++) {
        struct srv_output* out = srv_output_create(g_tok, req, c);
        if (out == NULL) return;
        if (req->num_header > 0) srv_output_feed_header(out, req->prompt + req->num_prompt - req->num_header, req->num_header);
        size_t fed = c < req->num_prompt ? c : req->num_prompt;
        while (fed < req->num_prompt && fed < req->params.max_tokens && !srv_output_feed(out, req->prompt[fed], NULL, 0)) fed++;
        if (req->params.json_object) json_mask(out);
        srv_output_finish(out);
        srv_output_free(out);
        srv_result_of(req, c)->completion_tokens = fed;
        srv_request_finish_choice(req, c);
    }
    json_t* whole = srv_format_response(req);
    if (whole == NULL) abort(); /* every result has a response */
    json_decref(whole);
    struct srv_buf sse = {0};
    uint64_t seq = 0;
    srv_format_stream_begin(req, &seq, &sse);
    struct srv_event* ev = NULL;
    const size_t n = srv_request_take_events(req, &ev);
    srv_format_stream(req, ev, n, &seq, &sse);
    srv_events_free(ev, n);
    srv_buf_free(&sse);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    init();
    if (size < 1) return 0;
    struct srv_api_config cfg = {.tokenizer = g_tok, .model_id = "tiny", .context_length = 4096, .store = g_store};
    gptoss_harmony_render_options_init(&cfg.render);
    cfg.render.current_date = "2026-01-01";
    const char* body = (const char*) data + 1;
    const size_t len = size - 1;
    struct srv_error err;
    if (data[0] % 4 == 3) {
        json_t* out = NULL;
        if (srv_api_render(&cfg, body, len, &out, &err)) json_decref(out);
        else if (err.status < 400 || err.status > 599) abort();
        return 0;
    }
    struct srv_request* req = NULL;
    if (!srv_api_prepare(&cfg, (enum srv_api) (data[0] % 4), body, len, &req, &err)) {
        if (err.status < 400 || err.status > 599 || err.type == NULL) abort(); /* an error has a status */
        json_decref(srv_error_json(&err));
        return 0;
    }
    if (req->num_prompt == 0 || req->num_prompt >= cfg.context_length || req->params.max_tokens == 0) abort();
    replay_as_output(req);
    srv_request_release(req);
    return 0;
}
