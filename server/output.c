/* Sampled tokens -> output items of a request.
 *
 * Chat and responses: the harmony parser (harmony.h) reads the completion; each message it
 * opens becomes an item: a recipient other than "assistant" makes a tool call (name: the
 * recipient without "functions."), the analysis channel reasoning, anything else (final,
 * a commentary preamble) a message. Messages of other roles than the assistant and
 * malformed stretches (the parser's error events) are dropped and counted. <|return|> and
 * <|call|> end the generation (finish_reason stop, or tool_calls after a tool call).
 * Completions: the tokens' bytes are the text (special tokens by name), up to <|return|>
 * or <|call|>, as `gptoss generate` prints them.
 *
 * Stop strings apply to message text: text that could be the start of a stop string is
 * held back until it is known not to be; a match ends the generation with the text before
 * it. Logprobs: one entry per token of message content (log-softmax of the raw logits). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

struct srv_output {
    struct srv_request* req;
    uint32_t choice;
    gptoss_tokenizer_t tokenizer;
    gptoss_harmony_parser_t parser; /* NULL for completions */
    uint32_t tok_return, tok_call;
    /* the item being written (UINT32_MAX: none) */
    uint32_t item;
    enum srv_item_kind kind;
    bool dropping;              /* inside a message that is not shown */
    bool ended;                 /* the last token ended a message */
    bool last_was_tool_call;
    /* stop strings: message text not yet released, and its logprob entries */
    struct srv_buf held;
    json_t* held_logprobs;
    bool stopped;
    /* completions: bytes of an incomplete UTF-8 character */
    struct srv_buf raw;
    /* JSON mode (req->params.json_object) or a schema (req->params.schema): the recognizer of
     * the text constrained now (the final message's content; completions: all the text),
     * json_active while there is one */
    bool json_active;
    struct srv_json json;
    struct srv_schema_state* schema; /* with a schema; json unused then */
    uint32_t num_text; /* ids below: text tokens */
};

static uint32_t special(gptoss_tokenizer_t t, enum gptoss_special_token which) {
    uint32_t id = UINT32_MAX;
    if (gptoss_tokenizer_get_special_token_id(t, which, &id) != gptoss_status_success) return UINT32_MAX;
    return id;
}

struct srv_output* srv_output_create(gptoss_tokenizer_t tokenizer, struct srv_request* req, uint32_t choice) {
    struct srv_output* o = calloc(1, sizeof(*o));
    if (o == NULL) return NULL;
    o->req = req;
    o->choice = choice;
    o->tokenizer = tokenizer;
    o->item = UINT32_MAX;
    o->tok_return = special(tokenizer, gptoss_special_token_return);
    o->tok_call = special(tokenizer, gptoss_special_token_call);
    if (req->params.schema != NULL && (o->schema = srv_schema_state_create(req->params.schema)) == NULL) {
        free(o);
        return NULL;
    }
    if (req->params.api != srv_api_completions &&
        gptoss_harmony_parser_create(tokenizer, "assistant", 0, &o->parser) != gptoss_status_success) {
        srv_schema_state_free(o->schema);
        free(o);
        return NULL;
    }
    if (req->params.api == srv_api_completions) {
        o->item = srv_request_item_begin(req, choice, srv_item_message, NULL);
        o->kind = srv_item_message;
        o->json_active = req->params.json_object || o->schema != NULL;
    }
    srv_json_init(&o->json);
    if (gptoss_tokenizer_get_num_text_tokens(tokenizer, &o->num_text) != gptoss_status_success) o->num_text = 0;
    return o;
}

void srv_output_free(struct srv_output* o) {
    if (o == NULL) return;
    gptoss_harmony_parser_release(o->parser);
    srv_schema_state_free(o->schema);
    srv_buf_free(&o->held);
    srv_buf_free(&o->raw);
    json_decref(o->held_logprobs);
    free(o);
}

/* ---- stop strings ------------------------------------------------------------------- */

/* Releases held[0, n) (and every held logprob entry) to the item. */
static void release_held(struct srv_output* o, size_t n) {
    json_t* lp = o->held_logprobs;
    o->held_logprobs = NULL;
    if (n == 0 && lp == NULL) return;
    srv_request_item_delta(o->req, o->choice, o->item, o->held.data ? o->held.data : "", n, lp);
    memmove(o->held.data, o->held.data + n, o->held.len - n);
    o->held.len -= n;
    if (o->held.data) o->held.data[o->held.len] = '\0';
}

/* Message text (valid UTF-8) with the logprob entries of the tokens that made it. */
static void message_text(struct srv_output* o, const char* text, size_t len, json_t* logprobs) {
    const struct srv_params* p = &o->req->params;
    if (logprobs != NULL) {
        if (o->held_logprobs == NULL) o->held_logprobs = json_array();
        json_array_extend(o->held_logprobs, logprobs);
        json_decref(logprobs);
    }
    if (p->num_stop == 0) {
        srv_request_item_delta(o->req, o->choice, o->item, text, len, o->held_logprobs);
        o->held_logprobs = NULL;
        return;
    }
    srv_buf_put(&o->held, text, len);
    if (o->held.oom) return;
    /* the earliest match of any stop string ends the text */
    size_t cut = SIZE_MAX;
    for (size_t i = 0; i < p->num_stop; i++) {
        const char* m = memmem(o->held.data, o->held.len, p->stop[i], strlen(p->stop[i]));
        if (m != NULL && (size_t) (m - o->held.data) < cut) cut = (size_t) (m - o->held.data);
    }
    if (cut != SIZE_MAX) {
        release_held(o, cut);
        o->held.len = 0;
        o->stopped = true;
        return;
    }
    /* keep the longest tail that is a proper prefix of a stop string */
    size_t keep = 0;
    for (size_t i = 0; i < p->num_stop; i++) {
        const size_t sl = strlen(p->stop[i]);
        for (size_t k = sl - 1 < o->held.len ? sl - 1 : o->held.len; k > keep; k--) {
            if (memcmp(o->held.data + o->held.len - k, p->stop[i], k) == 0) {
                keep = k;
                break;
            }
        }
    }
    release_held(o, o->held.len - keep);
}

/* ---- items -------------------------------------------------------------------------- */

static void end_item(struct srv_output* o) {
    if (o->item == UINT32_MAX) return;
    if (o->kind == srv_item_message) release_held(o, o->held.len);
    srv_request_item_end(o->req, o->choice, o->item);
    o->item = UINT32_MAX;
}

static void begin_item(struct srv_output* o, const struct gptoss_harmony_header* h) {
    end_item(o);
    o->dropping = false;
    /* JSON mode or a schema: the content of a final-channel message to the user */
    if ((o->req->params.json_object || o->schema != NULL) && (h->role == NULL || strcmp(h->role, "assistant") == 0) &&
        h->channel != NULL && strcmp(h->channel, "final") == 0 &&
        (h->recipient == NULL || strcmp(h->recipient, "assistant") == 0)) {
        o->json_active = true;
        srv_json_init(&o->json);
        srv_schema_state_reset(o->schema);
    }
    if (h->role != NULL && strcmp(h->role, "assistant") != 0) {
        o->dropping = true; /* the model wrote another role's turn: not part of the reply */
        return;
    }
    const char* name = NULL;
    if (h->recipient != NULL && strcmp(h->recipient, "assistant") != 0) {
        o->kind = srv_item_tool_call;
        name = strncmp(h->recipient, "functions.", 10) == 0 ? h->recipient + 10 : h->recipient;
    } else if (h->channel != NULL && strcmp(h->channel, "analysis") == 0) {
        o->kind = srv_item_reasoning;
    } else {
        o->kind = srv_item_message;
    }
    o->item = srv_request_item_begin(o->req, o->choice, o->kind, name);
}

static void on_events(struct srv_output* o, const struct gptoss_harmony_event* ev, size_t n, json_t* logprobs) {
    for (size_t i = 0; i < n; i++) {
        switch (ev[i].type) {
        case gptoss_harmony_event_message_begin:
            begin_item(o, ev[i].header);
            break;
        case gptoss_harmony_event_content_delta:
            if (o->item == UINT32_MAX || o->stopped) break;
            if (o->kind == srv_item_message) {
                message_text(o, ev[i].text, ev[i].text_size, json_incref(logprobs));
                logprobs = NULL; /* attached once */
            } else {
                srv_request_item_delta(o->req, o->choice, o->item, ev[i].text, ev[i].text_size, NULL);
            }
            break;
        case gptoss_harmony_event_message_end:
            o->json_active = false;
            o->last_was_tool_call = o->item != UINT32_MAX && o->kind == srv_item_tool_call;
            o->ended = true;
            end_item(o);
            o->dropping = false;
            break;
        case gptoss_harmony_event_error:
            srv_result_of(o->req, o->choice)->parse_errors++;
            break;
        }
    }
    /* a content token whose bytes are held back by the parser (an incomplete character):
     * its entry waits with the text */
    if (logprobs != NULL && o->item != UINT32_MAX && o->kind == srv_item_message) message_text(o, "", 0, json_incref(logprobs));
}

/* ---- logprobs ----------------------------------------------------------------------- */

static json_t* token_entry(struct srv_output* o, uint32_t id, double logprob, bool with_top) {
    const void* bytes = NULL;
    size_t size = 0;
    if (gptoss_tokenizer_decode(o->tokenizer, id, &bytes, &size) != gptoss_status_success) size = 0;
    struct srv_buf s = {0};
    srv_utf8_lossy(&s, bytes, size, false);
    json_t* b = json_array();
    for (size_t i = 0; i < size; i++) json_array_append_new(b, json_integer(((const unsigned char*) bytes)[i]));
    json_t* e = json_object();
    json_object_set_new(e, "token", json_stringn(s.data ? s.data : "", s.len));
    json_object_set_new(e, "logprob", json_real(logprob));
    json_object_set_new(e, "bytes", b);
    srv_buf_free(&s);
    if (with_top) json_object_set_new(e, "top_logprobs", json_array());
    return e;
}

/* The chat-style entry of `token` under `logits`: log-softmax (double accumulation) and
 * the top_logprobs most likely tokens. */
static json_t* logprob_entry(struct srv_output* o, uint32_t token, const float* logits, uint32_t V) {
    float max = -INFINITY;
    for (uint32_t i = 0; i < V; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0.0;
    for (uint32_t i = 0; i < V; i++) sum += exp((double) logits[i] - (double) max);
    const double lse = (double) max + log(sum);
    json_t* e = token_entry(o, token, (double) logits[token] - lse, true);
    const uint32_t k = o->req->params.top_logprobs;
    if (k > 0) {
        uint32_t top[SRV_MAX_TOP_LOGPROBS];
        uint32_t n = 0;
        for (uint32_t i = 0; i < V; i++) {
            /* insertion into top[0, n), sorted by logit descending (ties: lower id first) */
            if (n == k && !(logits[i] > logits[top[n - 1]])) continue;
            uint32_t j = n < k ? n++ : k - 1;
            while (j > 0 && logits[i] > logits[top[j - 1]]) {
                top[j] = top[j - 1];
                j--;
            }
            top[j] = i;
        }
        json_t* list = json_object_get(e, "top_logprobs");
        for (uint32_t j = 0; j < n; j++)
            json_array_append_new(list, token_entry(o, top[j], (double) logits[top[j]] - lse, false));
    }
    return e;
}

/* ---- feeding ------------------------------------------------------------------------ */

void srv_output_feed_header(struct srv_output* o, const uint32_t* ids, size_t n) {
    for (size_t i = 0; i < n && o->parser != NULL; i++) {
        const struct gptoss_harmony_event* ev = NULL;
        size_t nev = 0;
        if (gptoss_harmony_parser_feed(o->parser, ids[i], &ev, &nev) == gptoss_status_success) on_events(o, ev, nev, NULL);
    }
}

bool srv_output_feed(struct srv_output* o, uint32_t token, const float* logits, uint32_t V) {
    struct srv_result* res = srv_result_of(o->req, o->choice);
    if (o->json_active && token < o->num_text) {
        const void* bytes = NULL;
        size_t size = 0;
        if (gptoss_tokenizer_decode(o->tokenizer, token, &bytes, &size) != gptoss_status_success ||
            !(o->schema != NULL ? srv_schema_feed(o->schema, bytes, size) : srv_json_feed(&o->json, bytes, size))) {
            o->json_active = false; /* not drawn under the mask (cannot happen): unconstrained from here */
        }
    }
    const bool is_stop = token == o->tok_return || token == o->tok_call;
    const bool in_message = o->item != UINT32_MAX && o->kind == srv_item_message;
    if (o->item != UINT32_MAX && o->kind == srv_item_reasoning) res->reasoning_tokens++;
    json_t* lp = NULL;
    if (logits != NULL && in_message && !is_stop && token < V) lp = logprob_entry(o, token, logits, V);

    if (o->parser == NULL) { /* completions */
        if (is_stop) {
            json_decref(lp);
            res->finish = srv_finish_stop;
            return true;
        }
        const void* bytes = NULL;
        size_t size = 0;
        if (gptoss_tokenizer_decode(o->tokenizer, token, &bytes, &size) != gptoss_status_success) size = 0;
        srv_buf_put(&o->raw, bytes, size);
        struct srv_buf text = {0};
        const size_t used = srv_utf8_lossy(&text, o->raw.data ? o->raw.data : "", o->raw.len, true);
        memmove(o->raw.data, o->raw.data + used, o->raw.len - used);
        o->raw.len -= used;
        json_t* arr = NULL;
        if (lp != NULL) {
            arr = json_array();
            json_array_append_new(arr, lp);
        }
        message_text(o, text.data ? text.data : "", text.len, arr);
        srv_buf_free(&text);
        if (o->stopped) res->finish = srv_finish_stop;
        return o->stopped;
    }

    const struct gptoss_harmony_event* ev = NULL;
    size_t nev = 0;
    o->ended = false;
    json_t* arr = NULL;
    if (lp != NULL) {
        arr = json_array();
        json_array_append_new(arr, lp);
    }
    if (gptoss_harmony_parser_feed(o->parser, token, &ev, &nev) == gptoss_status_success) {
        /* the token that ends a message is not content: no logprob entry for it */
        bool ends = false;
        for (size_t i = 0; i < nev; i++) ends |= ev[i].type == gptoss_harmony_event_message_end;
        on_events(o, ev, nev, ends ? NULL : arr);
    }
    json_decref(arr);
    if (o->stopped) {
        res->finish = srv_finish_stop;
        return true;
    }
    if (is_stop) {
        res->finish = token == o->tok_call && o->ended && o->last_was_tool_call ? srv_finish_tool_calls : srv_finish_stop;
        return true;
    }
    return false;
}

size_t srv_output_json_mask(struct srv_output* o, const struct srv_json_vocab* v, uint32_t* words) {
    if (!o->json_active) return 0;
    size_t n = o->schema != NULL ? srv_schema_allowed(o->schema, v, words) : srv_json_allowed(&o->json, v, words);
    if (n == SIZE_MAX) return n;
    if ((o->schema != NULL ? srv_schema_complete(o->schema) : srv_json_complete(&o->json)) &&
        o->tok_return < v->vocabulary_size) {
        words[o->tok_return / 32] |= 1u << (o->tok_return % 32);
        n++;
    }
    return n;
}

void srv_output_finish(struct srv_output* o) {
    if (o->parser != NULL && !o->stopped) {
        const struct gptoss_harmony_event* ev = NULL;
        size_t nev = 0;
        if (gptoss_harmony_parser_finish(o->parser, &ev, &nev) == gptoss_status_success) on_events(o, ev, nev, NULL);
    }
    if (o->parser == NULL && o->raw.len > 0 && !o->stopped) { /* an incomplete character at the end */
        struct srv_buf text = {0};
        srv_utf8_lossy(&text, o->raw.data, o->raw.len, false);
        o->raw.len = 0;
        message_text(o, text.data ? text.data : "", text.len, NULL);
        srv_buf_free(&text);
    }
    end_item(o);
}
