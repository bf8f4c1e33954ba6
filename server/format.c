/* Response JSON and server-sent events of the three APIs, from a request's result (complete
 * once the request is done) or from its events (while it streams).
 *
 * Chat completions: `message` {content, reasoning_content, tool_calls}; chunks with
 * `delta`, tool calls as {index, id, type, function {name, arguments}} then argument
 * deltas; a last chunk with finish_reason, a usage chunk (choices []) with
 * stream_options.include_usage, then `data: [DONE]`.
 * Responses: the event sequence of OpenAI's Responses API (response.created,
 * response.in_progress, per item output_item.added, content_part.added, text /
 * reasoning_text / function_call_arguments deltas and their .done, content_part.done,
 * output_item.done; response.completed, or response.incomplete when max_output_tokens cut
 * it, or response.failed), each with a sequence_number.
 * Completions: text chunks, the same closing as chat. */
#include <string.h>

#include "server.h"

static const char* finish_name(enum srv_finish f) {
    switch (f) {
    case srv_finish_length: return "length";
    case srv_finish_tool_calls: return "tool_calls";
    default: return "stop";
    }
}

static json_t* str_or_empty(const struct srv_buf* b) { return json_stringn(b->data ? b->data : "", b->len); }

static void put_json(struct srv_buf* out, json_t* j) {
    char* s = json_dumps(j, JSON_COMPACT);
    if (s != NULL) {
        srv_buf_puts(out, s);
        free(s);
    } else {
        out->oom = true;
    }
    json_decref(j);
}

/* ---- usage ------------------------------------------------------------------------ */

/* The prompt once, the completion tokens of every choice. */
static json_t* usage_json(const struct srv_request* req) {
    const struct srv_result* r = &req->result;
    size_t completion = 0, reasoning = 0;
    for (uint32_t c = 0; c < req->params.n; c++) {
        completion += srv_result_of_const(req, c)->completion_tokens;
        reasoning += srv_result_of_const(req, c)->reasoning_tokens;
    }
    const size_t total = r->prompt_tokens + completion;
    if (req->params.api == srv_api_responses) {
        return json_pack("{s:I, s:{s:I}, s:I, s:{s:I}, s:I}", "input_tokens", (json_int_t) r->prompt_tokens,
                         "input_tokens_details", "cached_tokens", (json_int_t) r->cached_tokens, "output_tokens",
                         (json_int_t) completion, "output_tokens_details", "reasoning_tokens", (json_int_t) reasoning,
                         "total_tokens", (json_int_t) total);
    }
    json_t* u = json_pack("{s:I, s:I, s:I, s:{s:I}}", "prompt_tokens", (json_int_t) r->prompt_tokens,
                          "completion_tokens", (json_int_t) completion, "total_tokens", (json_int_t) total,
                          "prompt_tokens_details", "cached_tokens", (json_int_t) r->cached_tokens);
    if (req->params.api == srv_api_chat) {
        json_object_set_new(u, "completion_tokens_details", json_pack("{s:I}", "reasoning_tokens", (json_int_t) reasoning));
    }
    return u;
}

/* ---- completions logprobs (the legacy form) ------------------------------------------ */

static json_t* completion_logprobs(const json_t* entries, size_t* offset) {
    json_t* tokens = json_array();
    json_t* lps = json_array();
    json_t* tops = json_array();
    json_t* offsets = json_array();
    size_t i;
    json_t* e;
    json_array_foreach(entries, i, e) {
        json_t* tok = json_object_get(e, "token");
        json_array_append(tokens, tok);
        json_array_append(lps, json_object_get(e, "logprob"));
        json_t* top = json_object();
        size_t j;
        json_t* t;
        json_array_foreach(json_object_get(e, "top_logprobs"), j, t) {
            json_object_set(top, json_string_value(json_object_get(t, "token")), json_object_get(t, "logprob"));
        }
        json_array_append_new(tops, top);
        json_array_append_new(offsets, json_integer((json_int_t) *offset));
        *offset += json_string_length(tok);
    }
    return json_pack("{s:o, s:o, s:o, s:o}", "tokens", tokens, "token_logprobs", lps, "top_logprobs", tops,
                     "text_offset", offsets);
}

/* ---- responses items ---------------------------------------------------------------- */

static json_t* response_item(const struct srv_item* it, bool complete) {
    const char* status = complete ? "completed" : "in_progress";
    switch (it->kind) {
    case srv_item_tool_call:
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "id", it->id, "type", "function_call", "status", status,
                         "call_id", it->call_id, "name", it->name ? it->name : "", "arguments",
                         complete ? str_or_empty(&it->text) : json_string(""));
    case srv_item_reasoning: {
        json_t* content = json_array();
        if (complete)
            json_array_append_new(content, json_pack("{s:s, s:o}", "type", "reasoning_text", "text", str_or_empty(&it->text)));
        return json_pack("{s:s, s:s, s:s, s:[], s:o}", "id", it->id, "type", "reasoning", "status", status, "summary",
                         "content", content);
    }
    default: {
        json_t* content = json_array();
        if (complete) {
            json_array_append_new(content, json_pack("{s:s, s:o, s:[], s:o}", "type", "output_text", "text",
                                                     str_or_empty(&it->text), "annotations", "logprobs",
                                                     it->logprobs ? json_incref(it->logprobs) : json_array()));
        }
        return json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", it->id, "type", "message", "role", "assistant", "status",
                         status, "content", content);
    }
    }
}

json_t* srv_format_output_items(const struct srv_request* req) {
    json_t* out = json_array();
    for (size_t i = 0; i < req->result.num_items; i++) json_array_append_new(out, response_item(&req->result.items[i], true));
    return out;
}

/* The response object; `status` "in_progress" gives the opening snapshot (no output). */
static json_t* response_object(const struct srv_request* req, const char* status) {
    const bool open = strcmp(status, "in_progress") == 0;
    json_t* o = json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", req->id, "object", "response", "created_at",
                          (json_int_t) req->created, "status", status, "model", req->model ? req->model : "");
    json_object_set_new(o, "output", open ? json_array() : srv_format_output_items(req));
    json_object_set_new(o, "error", json_null());
    json_object_set_new(o, "incomplete_details",
                        strcmp(status, "incomplete") == 0 ? json_pack("{s:s}", "reason", "max_output_tokens") : json_null());
    json_t* echo = json_object_get(req->info, "echo");
    const char* key;
    json_t* value;
    json_object_foreach(echo, key, value) json_object_set(o, key, value);
    json_object_set_new(o, "usage", open ? json_null() : usage_json(req));
    if (strcmp(status, "failed") == 0) {
        json_object_set_new(o, "error", json_pack("{s:s, s:s}", "code", req->result.error.code[0] ? req->result.error.code : "server_error",
                                                  "message", req->result.error.message));
    }
    return o;
}

static const char* response_status(const struct srv_request* req) {
    if (req->result.error.status != 0) return "failed";
    return req->result.finish == srv_finish_length ? "incomplete" : "completed";
}

/* ---- chat --------------------------------------------------------------------------- */

static json_t* chat_message(const struct srv_request* req, uint32_t choice, json_t** logprobs_out) {
    const struct srv_result* res = srv_result_of_const(req, choice);
    struct srv_buf content = {0}, reasoning = {0};
    json_t* calls = json_array();
    json_t* lps = req->params.logprobs ? json_array() : NULL;
    bool any_message = false;
    for (size_t i = 0; i < res->num_items; i++) {
        const struct srv_item* it = &res->items[i];
        if (it->kind == srv_item_message) {
            any_message = true;
            srv_buf_put(&content, it->text.data ? it->text.data : "", it->text.len);
            if (lps && it->logprobs) json_array_extend(lps, it->logprobs);
        } else if (it->kind == srv_item_reasoning) {
            srv_buf_put(&reasoning, it->text.data ? it->text.data : "", it->text.len);
        } else {
            json_array_append_new(calls, json_pack("{s:s, s:s, s:{s:s, s:o}}", "id", it->call_id, "type", "function",
                                                   "function", "name", it->name ? it->name : "", "arguments",
                                                   str_or_empty(&it->text)));
        }
    }
    json_t* m = json_pack("{s:s}", "role", "assistant");
    /* content is null only for a reply that is nothing but tool calls (as OpenAI) */
    json_object_set_new(m, "content", any_message || json_array_size(calls) == 0 ? str_or_empty(&content) : json_null());
    if (reasoning.len > 0) json_object_set_new(m, "reasoning_content", str_or_empty(&reasoning));
    if (json_array_size(calls) > 0) json_object_set_new(m, "tool_calls", calls);
    else json_decref(calls);
    srv_buf_free(&content);
    srv_buf_free(&reasoning);
    *logprobs_out = lps ? json_pack("{s:o}", "content", lps) : json_null();
    return m;
}

json_t* srv_format_response(const struct srv_request* req) {
    const struct srv_params* p = &req->params;
    if (p->api == srv_api_responses) return response_object(req, response_status(req));
    json_t* choices = json_array();
    for (uint32_t c = 0; c < p->n; c++) {
        const struct srv_result* res = srv_result_of_const(req, c);
        if (p->api == srv_api_chat) {
            json_t* logprobs;
            json_t* message = chat_message(req, c, &logprobs);
            json_array_append_new(choices, json_pack("{s:i, s:o, s:o, s:s}", "index", (int) c, "message", message,
                                                     "logprobs", logprobs, "finish_reason", finish_name(res->finish)));
        } else {
            const struct srv_item* it = res->num_items ? &res->items[0] : NULL;
            size_t offset = 0;
            json_t* lp = it && it->logprobs ? completion_logprobs(it->logprobs, &offset) : json_null();
            json_array_append_new(choices, json_pack("{s:o, s:i, s:o, s:s}", "text",
                                                     it ? str_or_empty(&it->text) : json_string(""), "index", (int) c,
                                                     "logprobs", lp, "finish_reason", finish_name(res->finish)));
        }
    }
    return json_pack("{s:s, s:s, s:I, s:s, s:o, s:o}", "id", req->id, "object",
                     p->api == srv_api_chat ? "chat.completion" : "text_completion", "created", (json_int_t) req->created,
                     "model", req->model ? req->model : "", "choices", choices, "usage", usage_json(req));
}

/* ---- streams ------------------------------------------------------------------------ */

static void sse_data(struct srv_buf* out, json_t* j) {
    srv_buf_puts(out, "data: ");
    put_json(out, j);
    srv_buf_puts(out, "\n\n");
}

static void sse_event(struct srv_buf* out, uint64_t* seq, const char* type, json_t* j) {
    json_t* e = json_pack("{s:s}", "type", type);
    json_object_update(e, j);
    json_decref(j);
    json_object_set_new(e, "sequence_number", json_integer((json_int_t) (*seq)++));
    srv_buf_printf(out, "event: %s\ndata: ", type);
    put_json(out, e);
    srv_buf_puts(out, "\n\n");
}

/* A chat or completions chunk around `choice` (NULL: the usage chunk, choices []). */
static json_t* chunk(const struct srv_request* req, json_t* choice) {
    const bool chat = req->params.api == srv_api_chat;
    json_t* c = json_pack("{s:s, s:s, s:I, s:s}", "id", req->id, "object", chat ? "chat.completion.chunk" : "text_completion",
                          "created", (json_int_t) req->created, "model", req->model ? req->model : "");
    json_t* choices = json_array();
    if (choice) json_array_append_new(choices, choice);
    json_object_set_new(c, "choices", choices);
    if (req->params.include_usage) json_object_set_new(c, "usage", choice ? json_null() : usage_json(req));
    return c;
}

static json_t* chat_choice(uint32_t index, json_t* delta, json_t* logprobs, const char* finish) {
    return json_pack("{s:i, s:o, s:o, s:o}", "index", (int) index, "delta", delta, "logprobs", logprobs ? logprobs : json_null(),
                     "finish_reason", finish ? json_string(finish) : json_null());
}

void srv_format_stream_begin(const struct srv_request* req, uint64_t* seq, struct srv_buf* out) {
    if (req->params.api == srv_api_responses) {
        sse_event(out, seq, "response.created", json_pack("{s:o}", "response", response_object(req, "in_progress")));
        sse_event(out, seq, "response.in_progress", json_pack("{s:o}", "response", response_object(req, "in_progress")));
    } else if (req->params.api == srv_api_chat) {
        for (uint32_t c = 0; c < req->params.n; c++) {
            sse_data(out, chunk(req, chat_choice(c, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL, NULL)));
        }
    }
}

/* The finishing chunk of a chat or completions choice (none once the request has failed:
 * the error closes the stream). */
static void stream_choice_done(const struct srv_request* req, uint32_t choice, struct srv_buf* out) {
    if (req->result.error.status != 0) return;
    const char* finish = finish_name(srv_result_of_const(req, choice)->finish);
    if (req->params.api == srv_api_chat) {
        sse_data(out, chunk(req, chat_choice(choice, json_object(), NULL, finish)));
    } else {
        sse_data(out, chunk(req, json_pack("{s:s, s:i, s:n, s:s}", "text", "", "index", (int) choice, "logprobs",
                                           "finish_reason", finish)));
    }
}

static void stream_done(const struct srv_request* req, uint64_t* seq, struct srv_buf* out) {
    if (req->result.error.status != 0) {
        if (req->params.api == srv_api_responses) {
            sse_event(out, seq, "response.failed", json_pack("{s:o}", "response", response_object(req, "failed")));
        } else {
            sse_data(out, srv_error_json(&req->result.error));
            srv_buf_puts(out, "data: [DONE]\n\n");
        }
        return;
    }
    if (req->params.api == srv_api_responses) {
        const char* status = response_status(req);
        const char* type = strcmp(status, "incomplete") == 0 ? "response.incomplete" : "response.completed";
        sse_event(out, seq, type, json_pack("{s:o}", "response", response_object(req, status)));
        return;
    }
    /* (each choice's finishing chunk came with its choice_done event) */
    if (req->params.include_usage) sse_data(out, chunk(req, NULL));
    srv_buf_puts(out, "data: [DONE]\n\n");
}

static void stream_responses(const struct srv_request* req, const struct srv_event* ev, uint64_t* seq,
                             struct srv_buf* out) {
    /* a snapshot of the item from the event's fields */
    struct srv_item it = {.kind = ev->kind, .name = ev->name, .tool_index = ev->tool_index};
    memcpy(it.id, ev->id, sizeof(it.id));
    memcpy(it.call_id, ev->call_id, sizeof(it.call_id));
    const json_int_t index = (json_int_t) ev->item;
    json_t* text = json_stringn(ev->text ? ev->text : "", ev->text_len);
    switch (ev->type) {
    case srv_event_item_begin:
        sse_event(out, seq, "response.output_item.added", json_pack("{s:I, s:o}", "output_index", index, "item", response_item(&it, false)));
        if (ev->kind == srv_item_message) {
            sse_event(out, seq, "response.content_part.added",
                      json_pack("{s:s, s:I, s:i, s:{s:s, s:s, s:[]}}", "item_id", ev->id, "output_index", index,
                                "content_index", 0, "part", "type", "output_text", "text", "", "annotations"));
        } else if (ev->kind == srv_item_reasoning) {
            sse_event(out, seq, "response.content_part.added",
                      json_pack("{s:s, s:I, s:i, s:{s:s, s:s}}", "item_id", ev->id, "output_index", index,
                                "content_index", 0, "part", "type", "reasoning_text", "text", ""));
        }
        break;
    case srv_event_delta:
        if (ev->kind == srv_item_message) {
            sse_event(out, seq, "response.output_text.delta",
                      json_pack("{s:s, s:I, s:i, s:O, s:o}", "item_id", ev->id, "output_index", index, "content_index", 0,
                                "delta", text, "logprobs", ev->logprobs ? json_incref(ev->logprobs) : json_array()));
        } else if (ev->kind == srv_item_reasoning) {
            sse_event(out, seq, "response.reasoning_text.delta",
                      json_pack("{s:s, s:I, s:i, s:O}", "item_id", ev->id, "output_index", index, "content_index", 0,
                                "delta", text));
        } else {
            sse_event(out, seq, "response.function_call_arguments.delta",
                      json_pack("{s:s, s:I, s:O}", "item_id", ev->id, "output_index", index, "delta", text));
        }
        break;
    case srv_event_item_end: {
        it.text = (struct srv_buf){.data = ev->text, .len = ev->text_len};
        if (ev->kind == srv_item_tool_call) {
            sse_event(out, seq, "response.function_call_arguments.done",
                      json_pack("{s:s, s:I, s:s, s:O}", "item_id", ev->id, "output_index", index, "name",
                                ev->name ? ev->name : "", "arguments", text));
        } else {
            const bool msg = ev->kind == srv_item_message;
            /* the done events repeat the whole text; the item's logprobs are in the deltas */
            if (msg) {
                sse_event(out, seq, "response.output_text.done",
                          json_pack("{s:s, s:I, s:i, s:O, s:[]}", "item_id", ev->id, "output_index", index, "content_index", 0,
                                    "text", text, "logprobs"));
            } else {
                sse_event(out, seq, "response.reasoning_text.done",
                          json_pack("{s:s, s:I, s:i, s:O}", "item_id", ev->id, "output_index", index, "content_index", 0,
                                    "text", text));
            }
            json_t* part = msg ? json_pack("{s:s, s:O, s:[]}", "type", "output_text", "text", text, "annotations")
                               : json_pack("{s:s, s:O}", "type", "reasoning_text", "text", text);
            sse_event(out, seq, "response.content_part.done",
                      json_pack("{s:s, s:I, s:i, s:o}", "item_id", ev->id, "output_index", index, "content_index", 0, "part", part));
        }
        sse_event(out, seq, "response.output_item.done", json_pack("{s:I, s:o}", "output_index", index, "item", response_item(&it, true)));
        break;
    }
    case srv_event_done:
        stream_done(req, seq, out);
        break;
    case srv_event_choice_done: /* one choice: the response's closing events come with done */
        break;
    }
    json_decref(text);
}

void srv_format_stream(const struct srv_request* req, const struct srv_event* events, size_t n, uint64_t* seq,
                       struct srv_buf* out) {
    for (size_t i = 0; i < n; i++) {
        const struct srv_event* ev = &events[i];
        if (req->params.api == srv_api_responses) {
            stream_responses(req, ev, seq, out);
            continue;
        }
        if (ev->type == srv_event_done) {
            stream_done(req, seq, out);
            continue;
        }
        if (ev->type == srv_event_choice_done) {
            stream_choice_done(req, ev->choice, out);
            continue;
        }
        if (req->params.api == srv_api_completions) {
            if (ev->type != srv_event_delta || (ev->text_len == 0 && ev->logprobs == NULL)) continue;
            size_t offset = 0; /* offsets within this chunk's text */
            json_t* lp = ev->logprobs ? completion_logprobs(ev->logprobs, &offset) : json_null();
            sse_data(out, chunk(req, json_pack("{s:s%, s:i, s:o, s:n}", "text", ev->text, ev->text_len, "index", (int) ev->choice,
                                               "logprobs", lp, "finish_reason")));
            continue;
        }
        /* chat */
        json_t* delta = NULL;
        json_t* logprobs = NULL;
        if (ev->kind == srv_item_tool_call && ev->type == srv_event_item_begin) {
            delta = json_pack("{s:[{s:i, s:s, s:s, s:{s:s, s:s}}]}", "tool_calls", "index", (int) ev->tool_index, "id",
                              ev->call_id, "type", "function", "function", "name", ev->name ? ev->name : "",
                              "arguments", "");
        } else if (ev->type == srv_event_delta && (ev->text_len > 0 || ev->logprobs != NULL)) {
            json_t* text = json_stringn(ev->text ? ev->text : "", ev->text_len);
            if (ev->kind == srv_item_tool_call) {
                delta = json_pack("{s:[{s:i, s:{s:o}}]}", "tool_calls", "index", (int) ev->tool_index, "function",
                                  "arguments", text);
            } else {
                delta = json_pack("{s:o}", ev->kind == srv_item_reasoning ? "reasoning_content" : "content", text);
                if (ev->logprobs) logprobs = json_pack("{s:O}", "content", ev->logprobs);
            }
        }
        if (delta) sse_data(out, chunk(req, chat_choice(ev->choice, delta, logprobs, NULL)));
    }
}
