/* Fuzz target: the harmony layer (server/harmony.c) on untrusted requests and token streams.
 *
 * The first byte picks the input kind; the rest is
 *   0: a Chat Completions request (JSON)   -> conversation -> prompt ids
 *   1: a Responses request (JSON)          -> conversation -> prompt ids
 *   2: a harmony conversation (JSON)       -> prompt ids
 *   3: a completion, one byte per token from an alphabet of the ids that matter (harmony
 *      tokens, reserved and invalid ids, single bytes of UTF-8 characters, header words)
 *   4: a completion, 4 bytes per token id (any uint32)
 * Any input must give a result or an error with a message, never a crash; the checks below
 * trap on a broken promise of harmony.h. The tokenizer is the random tiny model's. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <gptoss/engine.h>
#include <gptoss/offline.h>

#include "harmony.h"

static gptoss_tokenizer_t g_tok;
static uint32_t g_alphabet[256];

static void load(void) {
    gptoss_backend_t backend;
    gptoss_model_t model;
    if (gptoss_backend_create_cpu(1, &backend) != gptoss_status_success ||
        gptoss_model_create_random("tiny", 1, 1, backend, &model) != gptoss_status_success ||
        gptoss_model_get_tokenizer(model, &g_tok) != gptoss_status_success) {
        fprintf(stderr, "fuzz_harmony: %s\n", gptoss_last_error());
        abort();
    }
    gptoss_model_release(model); /* the tokenizer keeps its own reference */
    /* the alphabet: specials and odd ids, then ids of single bytes and header words */
    static const uint32_t fixed[] = {200006, 200008, 200007, 200002, 200012, 200005, 200003, 199998, 199999,
                                     200000, 200001, 200004, 200013, 200014, 201088, 201089, 250000, UINT32_MAX};
    static const char* const words[] = {"assistant", "user", "tool", "system", "developer", "analysis",
                                        "commentary", "final", " to=functions.f", "functions.f", "json", " ",
                                        "\n", "\t", "\x0b", "to=", "=", "a", "{\"x\":1}", "\xc2\xa0", "\xe3\x80\x80"};
    size_t n = 0;
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) g_alphabet[n++] = fixed[i];
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        uint32_t ids[8];
        size_t k = 0;
        if (gptoss_tokenizer_encode(g_tok, words[i], strlen(words[i]), ids, 8, &k) != gptoss_status_success) abort();
        for (size_t j = 0; j < k && n < 128; j++) g_alphabet[n++] = ids[j];
    }
    /* the rest: text tokens of one byte (every byte value has one in o200k) */
    for (uint32_t id = 0; n < 256 && id < 199998; id++) {
        const void* p;
        size_t s;
        if (gptoss_tokenizer_decode(g_tok, id, &p, &s) == gptoss_status_success && s == 1 &&
            ((const uint8_t*) p)[0] >= 0x80)
            g_alphabet[n++] = id;
    }
    while (n < 256) g_alphabet[n] = g_alphabet[n % 40], n++;
    gptoss_backend_release(backend);
}

static void check_error(const struct gptoss_harmony_error* err) {
    size_t np = strlen(err->param);
    if (err->message[0] == '\0' || strncmp(err->message, err->param, np) != 0) __builtin_trap();
}

static void render(uint8_t kind, const uint8_t* data, size_t size) {
    json_t* request = json_loadb((const char*) data, size, JSON_DECODE_ANY, NULL);
    if (request == NULL) return;
    struct gptoss_harmony_error err = {{0}, {0}};
    json_t* conv = NULL;
    enum gptoss_status st = gptoss_status_success;
    if (kind == 0) st = gptoss_harmony_conversation_from_chat(request, NULL, &conv, &err);
    else if (kind == 1) st = gptoss_harmony_conversation_from_responses(request, NULL, &conv, &err);
    else conv = json_incref(request);
    uint32_t* tokens = NULL;
    size_t n = 0;
    if (st == gptoss_status_success) {
        if (conv == NULL) __builtin_trap();
        st = gptoss_harmony_render_conversation(g_tok, conv, &tokens, &n, &err);
    } else if (conv != NULL) {
        __builtin_trap(); /* outputs untouched on failure */
    }
    if (st == gptoss_status_success) {
        /* ends with <|start|>assistant */
        if (tokens == NULL || n < 2 || tokens[n - 2] != 200006) __builtin_trap();
    } else {
        if (tokens != NULL) __builtin_trap();
        check_error(&err);
    }
    free(tokens);
    json_decref(conv);
    json_decref(request);
}

static bool valid_utf8(const char* s, size_t n) {
    json_t* j = json_stringn(s, n); /* jansson checks UTF-8 */
    json_decref(j);
    return j != NULL;
}

static void parse(const uint32_t* ids, size_t n, const char* role, uint32_t flags) {
    gptoss_harmony_parser_t p;
    if (gptoss_harmony_parser_create(g_tok, role, flags, &p) != gptoss_status_success) __builtin_trap();
    size_t ended = 0, errors = 0;
    bool in_message = false;
    struct {
        char* p;
        size_t n;
    } content = {NULL, 0};
    for (size_t i = 0; i <= n; i++) {
        const struct gptoss_harmony_event* ev;
        size_t num;
        enum gptoss_status st = i < n ? gptoss_harmony_parser_feed(p, ids[i], &ev, &num)
                                      : gptoss_harmony_parser_finish(p, &ev, &num);
        if (st != gptoss_status_success || num > 3) __builtin_trap();
        for (size_t k = 0; k < num; k++) {
            if (ev[k].text != NULL && !valid_utf8(ev[k].text, ev[k].text_size)) __builtin_trap();
            switch (ev[k].type) {
            case gptoss_harmony_event_message_begin:
                if (in_message || ev[k].header == NULL || ev[k].header->role == NULL) __builtin_trap();
                in_message = true;
                content.n = 0;
                break;
            case gptoss_harmony_event_content_delta:
                if (!in_message || ev[k].text_size == 0) __builtin_trap();
                content.p = realloc(content.p, content.n + ev[k].text_size);
                memcpy(content.p + content.n, ev[k].text, ev[k].text_size);
                content.n += ev[k].text_size;
                break;
            case gptoss_harmony_event_message_end:
                /* the deltas are the start of the message's text */
                if (!in_message || ev[k].text_size < content.n ||
                    (content.n && memcmp(ev[k].text, content.p, content.n) != 0))
                    __builtin_trap();
                in_message = false;
                ended++;
                break;
            case gptoss_harmony_event_error:
                if (ev[k].error == NULL || ev[k].error[0] == '\0') __builtin_trap();
                errors++;
                break;
            }
        }
    }
    json_t* messages;
    if (gptoss_harmony_parser_get_messages(p, &messages) != gptoss_status_success ||
        json_array_size(messages) != ended)
        __builtin_trap();
    json_decref(messages);
    gptoss_harmony_parser_release(p);
    free(content.p);
    /* the whole-stream call fails exactly when the stream had an error */
    struct gptoss_harmony_error err = {{0}, {0}};
    json_t* all = NULL;
    enum gptoss_status st = gptoss_harmony_parse_completion(g_tok, ids, n, role, flags, &all, &err);
    if ((st == gptoss_status_success) != (errors == 0)) __builtin_trap();
    if (st == gptoss_status_success && json_array_size(all) != ended) __builtin_trap();
    if (st != gptoss_status_success) check_error(&err);
    json_decref(all);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (g_tok == NULL) load();
    if (size < 1) return 0;
    uint8_t kind = data[0] % 5;
    data++, size--;
    if (kind <= 2) {
        render(kind, data, size);
        return 0;
    }
    if (size < 1) return 0;
    static const char* const roles[] = {NULL, "assistant", "user", "tool"};
    const char* role = roles[data[0] & 3];
    uint32_t flags = (data[0] & 4) ? GPTOSS_HARMONY_PARSE_LENIENT : 0;
    data++, size--;
    size_t n = kind == 3 ? size : size / 4;
    uint32_t* ids = malloc((n ? n : 1) * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) {
        if (kind == 3) ids[i] = g_alphabet[data[i]];
        else memcpy(&ids[i], data + 4 * i, 4);
    }
    parse(ids, n, role, flags);
    free(ids);
    return 0;
}
