/*
 * gptoss serve: an OpenAI-compatible HTTP server over the engine (internal header).
 *
 * Layers, each in its own file:
 *   http.c       libmicrohttpd: routes, API key, body limit, SSE streaming, disconnects
 *   api.c        request JSON -> validated srv_request (params, prompt token ids), errors;
 *                the prompt through harmony.c (chat, responses) or the tokenizer (completions)
 *   format.c     srv_result / srv_event -> response JSON and SSE chunks of each API
 *   output.c     sampled tokens -> output items (harmony parser, stop strings, logprobs)
 *   json_mode.c  response_format json_object: a JSON recognizer, the tokens it allows
 *   json_schema.c response_format json_schema: a schema compiled into such a recognizer
 *   scheduler.c  the engine thread: queue, contexts (prompt cache), one step at a time
 *   store.c      responses kept for previous_response_id (bounded)
 *   metrics.c    counters and histograms, Prometheus text
 *   utf8.c       lossy UTF-8 (U+FFFD for invalid bytes, held-back incomplete tails)
 * The `gptoss serve` and `gptoss render` subcommands on top of it: tools/cmd_serve.c.
 *
 * Threads: HTTP threads parse a request into a srv_request and hand it to the scheduler;
 * the engine thread runs it and appends srv_events (under the request's mutex); the HTTP
 * thread that owns the connection formats them. A request is reference counted: the HTTP
 * side and the scheduler each hold one reference while they use it.
 */
#ifndef GPTOSS_SERVER_SERVER_H
#define GPTOSS_SERVER_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <gptoss/engine.h>

#include "harmony.h"

/* ---- growable byte buffer ----------------------------------------------------------- */

struct srv_buf {
    char* data; /* NUL-terminated when not NULL */
    size_t len, cap;
    bool oom;   /* an append failed: the content is incomplete */
};
void srv_buf_put(struct srv_buf* b, const void* s, size_t n);
void srv_buf_puts(struct srv_buf* b, const char* s);
void srv_buf_printf(struct srv_buf* b, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void srv_buf_free(struct srv_buf* b);

/* ---- UTF-8 (utf8.c) ----------------------------------------------------------------- */

/* Appends s[0, n) to out with every ill-formed subsequence replaced by U+FFFD (one per
 * maximal subpart, as Python's errors="replace" and Rust's from_utf8_lossy). With
 * `partial`, an incomplete but valid-so-far sequence at the end is not written: the
 * return value is the number of bytes consumed (the caller keeps the rest); else n. */
size_t srv_utf8_lossy(struct srv_buf* out, const char* s, size_t n, bool partial);

/* ---- errors ------------------------------------------------------------------------- */

/* An OpenAI-style error: {"error": {"message", "type", "param", "code"}} with an HTTP status. */
struct srv_error {
    int status;
    const char* type;  /* "invalid_request_error", "authentication_error", "server_error", ... */
    char code[48];     /* "" = null */
    char param[160];   /* "" = null */
    char message[640];
};
void srv_error_set(struct srv_error* e, int status, const char* type, const char* code, const char* param,
                   const char* fmt, ...) __attribute__((format(printf, 6, 7)));
json_t* srv_error_json(const struct srv_error* e);

/* ---- requests ----------------------------------------------------------------------- */

enum srv_api {
    srv_api_chat = 0,        /* POST /v1/chat/completions */
    srv_api_responses = 1,   /* POST /v1/responses */
    srv_api_completions = 2, /* POST /v1/completions (plain text, no chat format) */
};

#define SRV_MAX_STOP 4
#define SRV_MAX_LOGIT_BIAS 1024 /* entries of logit_bias */
#define SRV_MAX_CHOICES 16      /* n: choices of a chat or completions request */
#define SRV_MAX_TOP_LOGPROBS 20

struct srv_params {
    enum srv_api api;
    bool stream;
    bool include_usage;        /* chat/completions: stream_options.include_usage */
    size_t max_tokens;         /* completion tokens; set by api.c (never 0) */
    float temperature;         /* 0 = greedy */
    float top_p;
    uint32_t top_k;            /* extension (as vLLM and llama-server); 0 = off */
    float presence_penalty, frequency_penalty;
    uint64_t seed;             /* choice i draws with seed + i */
    uint32_t n;                /* choices (chat, completions); >= 1 */
    char* stop[SRV_MAX_STOP];  /* stop strings (chat, completions), malloc'd */
    size_t num_stop;
    size_t num_bias;           /* logit_bias (chat, completions): malloc'd ids and values */
    uint32_t* bias_ids;
    float* bias_values;
    bool logprobs;
    uint32_t top_logprobs;
    bool store;                /* responses: keep it for previous_response_id */
    bool json_object;          /* response_format / text.format json_object: the final message
                                * (completions: the text) is constrained to a JSON object */
    struct srv_schema* schema; /* json_schema: the same, to a value valid against it (owned) */
};

enum srv_item_kind {
    srv_item_message = 0,   /* final (or commentary without recipient) text */
    srv_item_reasoning = 1, /* analysis channel */
    srv_item_tool_call = 2, /* a message to functions.NAME: its content is the arguments */
};

/* One output item; the result holds them in order. */
struct srv_item {
    enum srv_item_kind kind;
    char id[40];          /* msg_..., rs_..., fc_... */
    char call_id[40];     /* tool calls: call_... */
    char* name;           /* tool calls: the function name */
    struct srv_buf text;  /* content, reasoning text or arguments */
    json_t* logprobs;     /* message items with logprobs: array of chat-style entries */
    uint32_t tool_index;  /* tool calls: index among the tool calls */
    bool done;
};

enum srv_finish {
    srv_finish_none = 0,
    srv_finish_stop = 1,       /* <|return|>, an end of stream or a stop string */
    srv_finish_length = 2,     /* max_tokens or a full context */
    srv_finish_tool_calls = 3, /* <|call|> after a tool call */
};

/* The whole output of a request's choice: complete (immutable) once the request is done.
 * The request's own numbers (prompt and cached tokens, the error) are those of choice 0's. */
struct srv_result {
    struct srv_item* items;
    size_t num_items, cap_items;
    uint32_t num_tool_calls;
    enum srv_finish finish;
    size_t prompt_tokens, cached_tokens, completion_tokens, reasoning_tokens;
    size_t parse_errors;       /* malformed harmony output (dropped) */
    struct srv_error error;    /* status 0 = none */
};

enum srv_event_type {
    srv_event_item_begin = 1, /* items[item] was added */
    srv_event_delta = 2,      /* text for items[item] (+ logprobs) */
    srv_event_item_end = 3,   /* items[item] is complete */
    srv_event_done = 4,       /* the request is finished (result complete, maybe an error) */
    srv_event_choice_done = 5, /* a choice is finished (its result complete); before done */
};

/* An event carries the item fields a stream needs, so it is formatted without the result. */
struct srv_event {
    enum srv_event_type type;
    uint32_t choice;      /* the choice it belongs to */
    uint32_t item;
    enum srv_item_kind kind;
    char id[40], call_id[40]; /* the item's */
    char* name;           /* tool calls: the function name (owned) */
    uint32_t tool_index;
    char* text;           /* delta: the new text; end: the item's whole text */
    size_t text_len;
    json_t* logprobs;     /* delta of a message item with logprobs: array (owned) */
};

struct srv_request;
/* Called by the engine thread with the request's mutex held, after events were appended. */
typedef void (*srv_notify_fn)(struct srv_request* req);
/* Called by the engine thread with the request's mutex held: 1 when the client is gone. */
typedef int (*srv_peer_gone_fn)(struct srv_request* req);

struct srv_request {
    atomic_int refs;
    char id[48];               /* chatcmpl-..., resp_..., cmpl-... */
    int64_t created;           /* unix seconds */
    struct srv_params params;
    uint32_t* prompt;          /* malloc'd */
    size_t num_prompt;
    /* the last num_header prompt tokens open the assistant's reply (a forced tool call):
     * the output parser reads them before the sampled tokens */
    size_t num_header;
    char* model;               /* as the response reports it */
    json_t* info;              /* responses: fields echoed in the response object, and what
                                * the store keeps (input items, instructions) */
    double t_arrival, deadline; /* monotonic seconds */
    atomic_int cancel;         /* 1: the client is gone; 2: shutdown */

    pthread_mutex_t mu;
    struct srv_event* events;  /* appended by the engine, taken by the HTTP side */
    size_t num_events, cap_events, taken;
    bool done;
    struct srv_result result;  /* choice 0, and the request's numbers */
    struct srv_result* more;   /* choices 1 .. n - 1 (NULL when n = 1) */
    uint32_t choices_done;

    /* the HTTP side (http.c) */
    void* conn;                /* struct MHD_Connection*, NULL once closed */
    bool suspended;
    srv_notify_fn notify;
    srv_peer_gone_fn peer_gone;
};

struct srv_request* srv_request_new(enum srv_api api);
/* The result of choice c (< params.n). */
static inline struct srv_result* srv_result_of(struct srv_request* req, uint32_t c) {
    return c == 0 ? &req->result : &req->more[c - 1];
}
static inline const struct srv_result* srv_result_of_const(const struct srv_request* req, uint32_t c) {
    return c == 0 ? &req->result : &req->more[c - 1];
}
/* Sets params.n and makes room for its results; false on out-of-memory. */
bool srv_request_set_choices(struct srv_request* req, uint32_t n);
void srv_request_retain(struct srv_request* req);
void srv_request_release(struct srv_request* req);
/* Engine side (mutex NOT held by the caller): */
uint32_t srv_request_item_begin(struct srv_request* req, uint32_t choice, enum srv_item_kind kind, const char* name);
void srv_request_item_delta(struct srv_request* req, uint32_t choice, uint32_t item, const char* text, size_t len,
                            json_t* logprobs);
void srv_request_item_end(struct srv_request* req, uint32_t choice, uint32_t item);
/* Marks choice `choice` finished (its result's finish set by the caller first); the last
 * choice finishes the request (srv_request_finish). */
void srv_request_finish_choice(struct srv_request* req, uint32_t choice);
/* Marks the request done (result.finish / result.error set by the caller first). */
void srv_request_finish(struct srv_request* req);
/* HTTP side, mutex held: moves the events not yet taken to *out (caller frees them with
 * srv_events_free); returns their count. */
size_t srv_request_take_events(struct srv_request* req, struct srv_event** out);
void srv_events_free(struct srv_event* events, size_t n);
/* A random id "PREFIX" + 24 hex digits. */
void srv_make_id(char* out, size_t size, const char* prefix);

/* ---- the API layer (api.c) ---------------------------------------------------------- */

struct srv_store;

struct srv_api_config {
    gptoss_tokenizer_t tokenizer;
    const char* model_id;        /* the one model served; NULL: any "model" is accepted */
    size_t context_length;       /* tokens per context */
    struct gptoss_harmony_render_options render; /* current_date set per request when NULL */
    struct srv_store* store;     /* NULL: previous_response_id is refused */
    size_t max_choices;          /* n at most (the sequences run at once, --parallel; 0 = SRV_MAX_CHOICES) */
};

/* Parses and validates a request body for `api` and renders its prompt. On success
 * *req_out is a new request (one reference) ready for the scheduler; on failure *err is
 * filled (status 400/404/...) and *req_out untouched. Thread-safe. */
bool srv_api_prepare(const struct srv_api_config* cfg, enum srv_api api, const char* body, size_t len,
                     struct srv_request** req_out, struct srv_error* err);

/* POST /apply-template and `gptoss render`: the rendered prompt of a chat (messages) or
 * responses (input) request as {"prompt": text, "tokens": [ids], "num_tokens": n}. */
bool srv_api_render(const struct srv_api_config* cfg, const char* body, size_t len, json_t** out,
                    struct srv_error* err);

/* Decoded text of token ids (special tokens by name), lossy UTF-8. */
void srv_decode_tokens(gptoss_tokenizer_t tokenizer, const uint32_t* ids, size_t n, struct srv_buf* out);

/* ---- formatting (format.c) ---------------------------------------------------------- */

/* The output items of a finished responses request, as the response object lists them. */
json_t* srv_format_output_items(const struct srv_request* req);
/* The non-streamed response of a finished request (no error). */
json_t* srv_format_response(const struct srv_request* req);
/* SSE bytes for events taken from a streaming request; `done` events write the closing
 * chunks ([DONE], response.completed, ...). *seq is the responses API sequence number. */
void srv_format_stream(const struct srv_request* req, const struct srv_event* events, size_t n, uint64_t* seq,
                       struct srv_buf* out);
/* The opening of a stream (responses: response.created and response.in_progress; chat:
 * the role chunk). */
void srv_format_stream_begin(const struct srv_request* req, uint64_t* seq, struct srv_buf* out);

/* ---- JSON mode (json_mode.c) --------------------------------------------------------- */

/* A recognizer of a JSON object's bytes (response_format json_object): srv_json_feed_byte
 * accepts a byte when the bytes so far can still begin a JSON object (RFC 8259, valid UTF-8
 * in strings), the object alone ('{' first, nothing after its '}'), at most
 * SRV_JSON_MAX_DEPTH nested containers and SRV_JSON_MAX_WS whitespace bytes in a row; on
 * refusal the state is undefined (feed a copy). srv_json_complete: the object is whole.
 * Plain data: copy it to try bytes. */
#define SRV_JSON_MAX_DEPTH 64
#define SRV_JSON_MAX_WS 64
struct srv_json {
    uint8_t state, sub, key, depth, wsrun;
    uint8_t u8left, u8lo, u8hi; /* in a string: continuation bytes of the open character */
    uint8_t stack[SRV_JSON_MAX_DEPTH]; /* '{' or '[' */
};
/* The first byte c of a multi-byte UTF-8 character (RFC 3629: no overlong forms, no
 * surrogates, at most U+10FFFF): false if it is none; else *left continuation bytes follow,
 * the next one in *lo .. *hi (later ones 0x80 .. 0xBF). */
bool srv_utf8_lead(uint8_t c, uint8_t* left, uint8_t* lo, uint8_t* hi);
void srv_json_init(struct srv_json* j);
bool srv_json_feed_byte(struct srv_json* j, uint8_t c);
bool srv_json_feed(struct srv_json* j, const void* bytes, size_t n);
bool srv_json_complete(const struct srv_json* j);

/* A byte trie of text tokens, in preorder: node 0 is the root (no byte); the children of
 * node i are i + 1, then each next one at the end of the one before, up to nodes[i].end. */
struct srv_trie_node {
    uint32_t end;       /* the index after its subtree */
    uint32_t first_id;  /* ids[first_id, first_id + num_ids): the tokens whose bytes end here */
    uint16_t num_ids;
    uint8_t byte;
    uint8_t unused;
};
struct srv_trie {
    struct srv_trie_node* nodes;
    uint32_t num_nodes;
    uint32_t* ids;
};

/* The text tokens' bytes, plain tokens and byte tries, for the tokens a state allows. */
#define SRV_PLAIN_SHORT 16      /* plain tokens of up to this many code points have a mask each */
struct srv_json_vocab {
    uint32_t vocabulary_size, num_words, num_text;
    uint32_t* offsets;          /* [num_text + 1]: token id's bytes are bytes[offsets[id], offsets[id + 1]) */
    uint8_t* bytes;
    uint32_t max_bytes;         /* the longest token's */
    uint32_t* plain;            /* [num_words] bitmask: whole printable characters, no '"' or '\' */
    /* plain tokens by their number of code points (a string's maxLength): plain_short[k]
     * ([num_words] each, k <= SRV_PLAIN_SHORT) holds those of 1 to k; the longer ones are
     * plain_long, by increasing plain_long_cps; max_plain_cps is the most of any */
    uint32_t* plain_short;
    uint32_t* plain_long;
    uint8_t* plain_long_cps;
    uint32_t num_plain_long, max_plain_cps;
    struct srv_trie trie;       /* every text token */
    struct srv_trie trie_other; /* the tokens that are not plain */
};
/* NULL on out-of-memory or a tokenizer error. */
struct srv_json_vocab* srv_json_vocab_create(gptoss_tokenizer_t tokenizer, uint32_t vocabulary_size);
void srv_json_vocab_free(struct srv_json_vocab* v);
/* words[v->num_words]: the text tokens whose bytes j accepts in turn (special tokens never);
 * returns their number. */
size_t srv_json_allowed(const struct srv_json* j, const struct srv_json_vocab* v, uint32_t* words);

/* ---- structured outputs (json_schema.c) ------------------------------------------------ */

/* response_format json_schema: a JSON Schema of the supported subset (type, enum, const,
 * properties, required, additionalProperties, items, minItems, maxItems, minLength,
 * maxLength, minimum, maximum, exclusiveMinimum, exclusiveMaximum, pattern, format date,
 * time, date-time, uuid and ipv4, anyOf, allOf of one schema, $ref to "#", "#/$defs/NAME"
 * or "#/definitions/NAME", annotations), compiled into a recognizer of the JSON texts valid
 * against it: srv_schema_feed accepts bytes when the text so far can still be completed into
 * such a text, and srv_schema_complete says when it is one. Beyond JSON Schema: keys are
 * written without escapes, "integer" is a number without fraction or exponent, the value is
 * alone (nothing before or after it), at most SRV_JSON_MAX_DEPTH nested containers and
 * SRV_JSON_MAX_WS whitespace bytes in a row (as JSON mode), a number has at most
 * SRV_SCHEMA_MAX_NUMBER_DIGITS digits before its exponent and SRV_SCHEMA_MAX_EXPONENT_DIGITS
 * in it, a string under a pattern no lone surrogate escape. Bounds compare decimal values
 * exactly (a real bound: its shortest round-trip spelling); a pattern is ECMA-262's subset
 * that PCRE2 matches alike (json_schema.c says which), matched anywhere in the decoded
 * string (a ^-anchored one through its byte DFA, pattern_dfa.h); a format is the pattern
 * srv_schema_format_pattern gives; pattern or format beside minLength/maxLength is refused.
 * The limits below bound a schema; larger ones are refused. */
#define SRV_SCHEMA_MAX_NODES 1024       /* subschemas, with enum/const arrays and objects */
#define SRV_SCHEMA_MAX_PROPERTIES 128   /* properties (and required names) of one object */
#define SRV_SCHEMA_MAX_ENUM 128         /* values of one enum */
#define SRV_SCHEMA_MAX_ALTERNATIVES 32  /* anyOf alternatives followed at once (a bound the
                                         * compiler proves; schemas it cannot prove are refused) */
#define SRV_SCHEMA_MAX_NUMBER_DIGITS 64 /* a number's digits before its exponent, every number */
#define SRV_SCHEMA_MAX_EXPONENT_DIGITS 4 /* the digits of its exponent (leading zeros count) */
#define SRV_SCHEMA_MAX_PATTERN 1000     /* bytes of a pattern */
#define SRV_SCHEMA_PLAIN_CACHE 8        /* (pattern, DFA state) masks of plain tokens kept a state */
#define SRV_SCHEMA_DFA_WORK 50000000ull /* a schema's patterns' DFA constructions: steps (~0.2 s) */
#define SRV_SCHEMA_DFA_BYTES (8u << 20) /* a schema's patterns' DFA tables: bytes */
#define SRV_SCHEMA_MATCH_LIMIT 100000   /* PCRE2's match limit per test of an unanchored
                                         * pattern's string at its closing quote (its depth
                                         * limit: a tenth of it); a test that reaches it
                                         * refuses the quote */
struct srv_schema;       /* compiled: immutable, shared by a request's choices */
struct srv_schema_state; /* a recognizer: one per choice */
/* NULL with *err filled: 400 invalid_value (a malformed schema: a keyword of the wrong type, a
 * $ref that does not resolve, no valid value at all) or unsupported_value (a keyword or a
 * size beyond the subset), the message naming the JSON pointer in the schema; 500 on
 * out-of-memory. `param` names the schema in messages ("response_format.json_schema.schema"). */
struct srv_schema* srv_schema_compile(const json_t* schema, const char* param, struct srv_error* err);
void srv_schema_free(struct srv_schema* s);
/* NULL on out-of-memory. */
struct srv_schema_state* srv_schema_state_create(const struct srv_schema* s);
void srv_schema_state_reset(struct srv_schema_state* st); /* back to the empty text */
void srv_schema_state_free(struct srv_schema_state* st);
/* Feeds bytes: true when every one is accepted (the state moves on); false leaves the state
 * as it was. srv_schema_try: the same answer, the state never moved. */
bool srv_schema_feed(struct srv_schema_state* st, const void* bytes, size_t n);
bool srv_schema_try(struct srv_schema_state* st, const void* bytes, size_t n);
bool srv_schema_complete(const struct srv_schema_state* st);
/* words[v->num_words]: the text tokens whose bytes st accepts (special tokens never); returns
 * their number, SIZE_MAX on out-of-memory. The state is not moved (st is its scratch). */
size_t srv_schema_allowed(struct srv_schema_state* st, const struct srv_json_vocab* v, uint32_t* words);
/* The pattern (ECMA-262) that format `name` stands for, NULL when the format is not supported. */
const char* srv_schema_format_pattern(const char* name);

/* ---- output processing (output.c) --------------------------------------------------- */

struct srv_output;
/* Creates the token -> items processor of a request (harmony parser for chat and
 * responses, plain text for completions). NULL on out-of-memory. */
struct srv_output* srv_output_create(gptoss_tokenizer_t tokenizer, struct srv_request* req, uint32_t choice);
/* The prompt's forced header tokens (req->num_header), before any sampled token. */
void srv_output_feed_header(struct srv_output* out, const uint32_t* ids, size_t n);
/* Feeds one sampled token; logits (vocabulary size entries) when logprobs were asked.
 * Returns true when the generation must stop here (stop token or stop string); sets
 * req->result.finish then. */
bool srv_output_feed(struct srv_output* out, uint32_t token, const float* logits, uint32_t vocabulary_size);
/* JSON mode or a schema: the tokens the next draw may take (words[v->num_words]: the text
 * tokens the JSON so far allows, and <|return|> once the object or value is complete);
 * returns their number, 0 when nothing is constrained now (neither; in chat, outside the
 * final message), SIZE_MAX on out-of-memory. */
size_t srv_output_json_mask(struct srv_output* out, const struct srv_json_vocab* v, uint32_t* words);
/* End of generation: flushes held-back text, closes open items. */
void srv_output_finish(struct srv_output* out);
void srv_output_free(struct srv_output* out);

/* ---- metrics (metrics.c) ------------------------------------------------------------ */

struct srv_metrics;
struct srv_metrics* srv_metrics_create(void);
void srv_metrics_free(struct srv_metrics* m);
void srv_metrics_request(struct srv_metrics* m, const char* endpoint, int status);
void srv_metrics_tokens(struct srv_metrics* m, size_t prompt, size_t cached, size_t completion);
void srv_metrics_ttft(struct srv_metrics* m, double seconds);
void srv_metrics_decode_rate(struct srv_metrics* m, double tokens_per_second);
void srv_metrics_parse_errors(struct srv_metrics* m, size_t n);
/* Prometheus text exposition; queue_length and running are gauges read by the caller. */
void srv_metrics_render(struct srv_metrics* m, size_t queue_length, size_t running, const struct gptoss_batch_info* kv,
                        const uint64_t* memory /* [used, total] bytes, or NULL */,
                        struct srv_buf* out);

/* ---- the responses store (store.c) -------------------------------------------------- */

struct srv_store* srv_store_create(size_t max_entries, size_t max_bytes);
void srv_store_free(struct srv_store* s);
/* Keeps a finished response: `input` (the full input item list it answered, new
 * reference taken) and its output items. */
void srv_store_put(struct srv_store* s, const char* id, json_t* input, json_t* output);
/* The input items followed by the output items of a stored response, as a new array;
 * NULL when unknown (never stored or evicted). */
json_t* srv_store_get_conversation(struct srv_store* s, const char* id);

/* ---- the scheduler (scheduler.c) ---------------------------------------------------- */

struct srv_scheduler;

struct srv_scheduler_options {
    size_t parallel;        /* requests run together in one batch; >= 1 */
    size_t context_length;  /* tokens per request: prompt + reply */
    size_t max_queue;       /* waiting requests; a submit beyond it fails */
    size_t kv_budget;       /* bytes of KV cache (gptoss_context_params.kv_budget; 0 = enough for
                             * `parallel` requests of context_length tokens) */
    gptoss_backend_t backend; /* the model's backend: its memory in /metrics (NULL: not shown);
                               * queried by the engine thread, which alone uses the backend */
    int batch_invariant;      /* gptoss_context_params.batch_invariant (enum gptoss_batch_invariance) */
};

/* Creates the batch and starts the engine thread. The model is retained. */
bool srv_scheduler_create(gptoss_model_t model, const struct srv_scheduler_options* options,
                          struct srv_metrics* metrics, struct srv_store* store, struct srv_scheduler** out,
                          char* why, size_t why_size);
enum srv_submit {
    srv_submit_ok = 0,
    srv_submit_full = 1,     /* the queue holds max_queue requests: 429 */
    srv_submit_stopping = 2, /* draining for shutdown: 503 */
};
/* Queues a request (the scheduler takes its own reference). */
enum srv_submit srv_scheduler_submit(struct srv_scheduler* s, struct srv_request* req);
/* Queued and running requests, and the batch's numbers (KV blocks) as of the last step. */
void srv_scheduler_counts(struct srv_scheduler* s, size_t* queued, size_t* running, struct gptoss_batch_info* info);
/* The backend's memory in use and in all (gptoss_backend_get_memory_info) as of the engine
 * thread's last look (at start, then at most once a second while it runs steps); false when
 * not known. */
bool srv_scheduler_memory(struct srv_scheduler* s, uint64_t* used_bytes, uint64_t* total_bytes);
/* Refuses new requests from now on; queued and running ones still complete. */
void srv_scheduler_stop_accepting(struct srv_scheduler* s);
/* Cancels every queued and running request (they finish with a 503 error). */
void srv_scheduler_cancel_all(struct srv_scheduler* s);
/* Waits until nothing is queued or running, at most timeout_s (< 0: forever); true when idle. */
bool srv_scheduler_wait_idle(struct srv_scheduler* s, double timeout_s);
/* Stops the engine thread (after cancel_all/wait_idle) and frees everything. */
void srv_scheduler_destroy(struct srv_scheduler* s);

/* ---- HTTP (http.c) ------------------------------------------------------------------ */

struct srv_http;
struct srv_http_options {
    const char* host;
    uint16_t port;            /* 0 = any free port */
    const char* api_key;      /* NULL = no authentication */
    size_t max_body;          /* bytes; larger bodies get 413 */
    unsigned threads;         /* HTTP thread pool */
    unsigned max_connections;
    unsigned timeout_s;       /* idle connection timeout; also the request deadline */
};
bool srv_http_start(const struct srv_http_options* options, const struct srv_api_config* api,
                    struct srv_scheduler* scheduler, struct srv_metrics* metrics, struct srv_http** out,
                    uint16_t* port_out, char* why, size_t why_size);
/* Generation requests whose response is not completely sent yet. */
unsigned srv_http_active(struct srv_http* h);
void srv_http_stop(struct srv_http* h);

/* ---- misc --------------------------------------------------------------------------- */

double srv_now(void); /* monotonic seconds */

#endif /* GPTOSS_SERVER_SERVER_H */
