/* Request validation: JSON body -> srv_request (parameters and prompt token ids), or an
 * OpenAI-style error. Every field OpenAI defines for the endpoint is accepted with its
 * type checked; values this server cannot honour (schema keywords outside the supported
 * subset, best_of, ...) are refused with 400 rather than ignored; unknown top-level fields are
 * refused as OpenAI does ("Unrecognized request argument supplied"). null means absent. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

#define BAD(err, param, ...) srv_error_set(err, 400, "invalid_request_error", "invalid_value", param, __VA_ARGS__)
#define UNSUPPORTED(err, param, ...) \
    srv_error_set(err, 400, "invalid_request_error", "unsupported_value", param, __VA_ARGS__)

/* ---- fields ------------------------------------------------------------------------- */

static const char* const chat_fields[] = {
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p",
    "top_k", "n", "seed", "stop", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "tools",
    "tool_choice", "parallel_tool_calls", "reasoning_effort", "user", "metadata", "store", "service_tier",
    "logit_bias", "response_format", "modalities", "prompt_cache_key", "safety_identifier", "verbosity", NULL};
static const char* const responses_fields[] = {
    "model", "input", "instructions", "tools", "tool_choice", "reasoning", "max_output_tokens", "stream",
    "stream_options", "temperature", "top_p", "top_k", "seed", "previous_response_id", "store", "metadata",
    "parallel_tool_calls", "text", "truncation", "user", "include", "background", "service_tier", "top_logprobs",
    "prompt_cache_key", "safety_identifier", "max_tool_calls", NULL};
static const char* const completions_fields[] = {
    "model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "n", "stream", "stream_options", "logprobs",
    "echo", "stop", "presence_penalty", "frequency_penalty", "best_of", "logit_bias", "seed", "suffix", "user",
    "response_format", NULL};

static bool known_fields(const json_t* body, const char* const* fields, struct srv_error* err) {
    const char* key;
    json_t* value;
    json_object_foreach((json_t*) body, key, value) {
        bool known = false;
        for (const char* const* f = fields; *f && !known; f++) known = strcmp(key, *f) == 0;
        if (!known) {
            srv_error_set(err, 400, "invalid_request_error", "unknown_parameter", key,
                          "Unrecognized request argument supplied: %.200s", key);
            return false;
        }
    }
    return true;
}

/* The field or NULL when absent or null. */
static json_t* field(const json_t* o, const char* key) {
    json_t* v = json_object_get(o, key);
    return json_is_null(v) ? NULL : v;
}

static bool get_bool(const json_t* o, const char* key, bool* out, struct srv_error* err) {
    json_t* v = field(o, key);
    if (v == NULL) return true;
    if (!json_is_boolean(v)) {
        BAD(err, key, "%s: expected a boolean", key);
        return false;
    }
    *out = json_is_true(v);
    return true;
}

static bool get_number(const json_t* o, const char* key, double lo, double hi, float* out, struct srv_error* err) {
    json_t* v = field(o, key);
    if (v == NULL) return true;
    if (!json_is_number(v)) {
        BAD(err, key, "%s: expected a number", key);
        return false;
    }
    const double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) {
        BAD(err, key, "%s: %g is not in [%g, %g]", key, x, lo, hi);
        return false;
    }
    *out = (float) x;
    return true;
}

/* An integer (a number with an integral value is accepted) in [lo, hi]. */
static bool get_int(const json_t* o, const char* key, int64_t lo, int64_t hi, int64_t* out, bool* given,
                    struct srv_error* err) {
    json_t* v = field(o, key);
    if (v == NULL) return true;
    int64_t x;
    if (json_is_integer(v)) {
        x = (int64_t) json_integer_value(v);
    } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) && fabs(json_real_value(v)) < 9.2e18) {
        x = (int64_t) json_real_value(v);
    } else {
        BAD(err, key, "%s: expected an integer", key);
        return false;
    }
    if (x < lo || x > hi) {
        BAD(err, key, "%s: %lld is not in [%lld, %lld]", key, (long long) x, (long long) lo, (long long) hi);
        return false;
    }
    *out = x;
    if (given) *given = true;
    return true;
}

static bool check_type(const json_t* o, const char* key, json_type type, const char* what, struct srv_error* err) {
    json_t* v = field(o, key);
    if (v == NULL || json_typeof(v) == type) return true;
    BAD(err, key, "%s: expected %s", key, what);
    return false;
}

/* ---- common sampling fields --------------------------------------------------------- */

/* logit_bias: {"token id": bias in [-100, 100], ...} (OpenAI's), ids below the vocabulary */
static bool logit_bias(const struct srv_api_config* cfg, const json_t* b, struct srv_params* p,
                       struct srv_error* err) {
    json_t* bias = field(b, "logit_bias");
    if (bias == NULL || (json_is_object(bias) && json_object_size(bias) == 0)) return true;
    if (!json_is_object(bias)) {
        BAD(err, "logit_bias", "logit_bias: expected an object of token ids to numbers");
        return false;
    }
    const size_t n = json_object_size(bias);
    if (n > SRV_MAX_LOGIT_BIAS) {
        BAD(err, "logit_bias", "logit_bias: at most %d tokens, got %zu", SRV_MAX_LOGIT_BIAS, n);
        return false;
    }
    uint32_t vocab = 0;
    gptoss_tokenizer_get_num_tokens(cfg->tokenizer, &vocab);
    p->bias_ids = malloc(n * sizeof(uint32_t));
    p->bias_values = malloc(n * sizeof(float));
    if (p->bias_ids == NULL || p->bias_values == NULL) {
        srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    const char* key;
    json_t* value;
    json_object_foreach(bias, key, value) {
        char* end = NULL;
        const bool digits = key[0] >= '0' && key[0] <= '9' && strlen(key) <= 10;
        const unsigned long long id = digits ? strtoull(key, &end, 10) : 0;
        if (!digits || *end != '\0' || id >= vocab) {
            BAD(err, "logit_bias", "logit_bias: key \"%.40s\" is not a token id in [0, %u)", key, vocab);
            return false;
        }
        if (!json_is_number(value) || !(json_number_value(value) >= -100.0 && json_number_value(value) <= 100.0)) {
            BAD(err, "logit_bias", "logit_bias[\"%s\"]: expected a number in [-100, 100]", key);
            return false;
        }
        for (size_t i = 0; i < p->num_bias; i++) {
            if (p->bias_ids[i] == (uint32_t) id) { /* "7" and "07" */
                BAD(err, "logit_bias", "logit_bias: token id %llu appears twice", id);
                return false;
            }
        }
        p->bias_ids[p->num_bias] = (uint32_t) id;
        p->bias_values[p->num_bias++] = (float) json_number_value(value);
    }
    return true;
}

static bool sampling(const struct srv_api_config* cfg, const json_t* b, struct srv_params* p,
                     struct srv_error* err) {
    p->temperature = 1.0f; /* OpenAI's defaults */
    p->top_p = 1.0f;
    if (!get_number(b, "temperature", 0.0, 2.0, &p->temperature, err)) return false;
    if (!get_number(b, "top_p", 0.0, 1.0, &p->top_p, err)) return false;
    if (!get_number(b, "presence_penalty", -2.0, 2.0, &p->presence_penalty, err)) return false;
    if (!get_number(b, "frequency_penalty", -2.0, 2.0, &p->frequency_penalty, err)) return false;
    int64_t v = 0;
    if (!get_int(b, "top_k", 0, UINT32_MAX, &v, NULL, err)) return false;
    p->top_k = (uint32_t) v;
    bool seed_given = false;
    if (!get_int(b, "seed", INT64_MIN, INT64_MAX, &v, &seed_given, err)) return false;
    if (seed_given) {
        p->seed = (uint64_t) v;
    } else {
        char id[40]; /* no seed: a fresh one per request */
        srv_make_id(id, sizeof(id), "");
        p->seed = strtoull(id + 8, NULL, 16);
    }
    if (p->top_p == 0.0f) { /* the smallest nucleus: the most likely token */
        p->temperature = 0.0f;
        p->top_p = 1.0f;
    }
    if (!logit_bias(cfg, b, p, err)) return false;
    if (!check_type(b, "user", JSON_STRING, "a string", err)) return false;
    if (!get_bool(b, "stream", &p->stream, err)) return false;
    json_t* so = field(b, "stream_options");
    if (so != NULL) {
        if (!json_is_object(so)) {
            BAD(err, "stream_options", "stream_options: expected an object");
            return false;
        }
        if (!p->stream && p->api != srv_api_responses) {
            BAD(err, "stream_options", "stream_options: only allowed when stream is true");
            return false;
        }
        if (!get_bool(so, "include_usage", &p->include_usage, err)) {
            snprintf(err->param, sizeof(err->param), "stream_options.include_usage");
            return false;
        }
    }
    return true;
}

static bool stop_strings(const json_t* b, struct srv_params* p, struct srv_error* err) {
    json_t* v = field(b, "stop");
    if (v == NULL) return true;
    json_t* one = json_is_string(v) ? v : NULL;
    if (one == NULL && !json_is_array(v)) {
        BAD(err, "stop", "stop: expected a string or an array of strings");
        return false;
    }
    const size_t n = one ? 1 : json_array_size(v);
    if (n > SRV_MAX_STOP) {
        BAD(err, "stop", "stop: at most %d sequences, got %zu", SRV_MAX_STOP, n);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        json_t* s = one ? one : json_array_get(v, i);
        if (!json_is_string(s) || json_string_length(s) == 0 || strlen(json_string_value(s)) != json_string_length(s)) {
            BAD(err, "stop", "stop[%zu]: expected a non-empty string", i);
            return false;
        }
        p->stop[p->num_stop] = strdup(json_string_value(s));
        if (p->stop[p->num_stop] == NULL) {
            srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
            return false;
        }
        p->num_stop++;
    }
    return true;
}

/* ---- prompts ------------------------------------------------------------------------ */

static bool harmony_error(struct srv_error* err, enum gptoss_status st, const struct gptoss_harmony_error* he) {
    if (st == gptoss_status_insufficient_memory) {
        srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
    } else {
        srv_error_set(err, 400, "invalid_request_error",
                      st == gptoss_status_unsupported_argument ? "unsupported_value" : "invalid_value", he->param, "%s",
                      he->message);
    }
    return false;
}

/* The forced function of tool_choice, or NULL. */
static const char* forced_tool(const json_t* b, enum srv_api api) {
    json_t* c = field(b, "tool_choice");
    if (!json_is_object(c) || !json_is_string(json_object_get(c, "type")) ||
        strcmp(json_string_value(json_object_get(c, "type")), "function") != 0)
        return NULL;
    json_t* fn = api == srv_api_chat ? json_object_get(c, "function") : c;
    return json_string_value(json_object_get(fn, "name"));
}

/* Renders a chat or responses request (already merged with its previous response) into
 * prompt ids: the conversation, then the forced tool-call header. */
static bool render_harmony(const struct srv_api_config* cfg, enum srv_api api, const json_t* b, uint32_t** ids_out,
                           size_t* n_out, size_t* num_header, struct srv_error* err) {
    struct gptoss_harmony_render_options opt = cfg->render;
    char date[16];
    if (opt.current_date == NULL) {
        const time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(date, sizeof(date), "%Y-%m-%d", &tm);
        opt.current_date = date;
    }
    struct gptoss_harmony_error he;
    json_t* conv = NULL;
    enum gptoss_status st = api == srv_api_chat ? gptoss_harmony_conversation_from_chat(b, &opt, &conv, &he)
                                                : gptoss_harmony_conversation_from_responses(b, &opt, &conv, &he);
    if (st != gptoss_status_success) return harmony_error(err, st, &he);
    uint32_t* ids = NULL;
    size_t n = 0;
    st = gptoss_harmony_render_conversation(cfg->tokenizer, conv, &ids, &n, &he);
    json_decref(conv);
    if (st != gptoss_status_success) return harmony_error(err, st, &he);
    *num_header = 0;
    const char* tool = forced_tool(b, api);
    if (tool != NULL) {
        uint32_t* h = NULL;
        size_t nh = 0;
        st = gptoss_harmony_render_tool_call_header(cfg->tokenizer, tool, &h, &nh, &he);
        if (st != gptoss_status_success) {
            free(ids);
            return harmony_error(err, st, &he);
        }
        uint32_t* all = realloc(ids, (n + nh) * sizeof(uint32_t));
        if (all == NULL) {
            free(ids);
            free(h);
            srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
            return false;
        }
        memcpy(all + n, h, nh * sizeof(uint32_t));
        free(h);
        ids = all;
        n += nh;
        *num_header = nh;
    }
    *ids_out = ids;
    *n_out = n;
    return true;
}

static bool encode_text(gptoss_tokenizer_t t, const char* s, size_t len, uint32_t** ids_out, size_t* n_out,
                        struct srv_error* err) {
    uint32_t* ids = malloc((len ? len : 1) * sizeof(uint32_t)); /* a token covers at least one byte */
    size_t n = 0;
    if (ids == NULL || gptoss_tokenizer_encode(t, s, len, ids, len, &n) != gptoss_status_success) {
        free(ids);
        srv_error_set(err, 500, "server_error", NULL, NULL, "tokenizing the prompt failed: %s", gptoss_last_error());
        return false;
    }
    *ids_out = ids;
    *n_out = n;
    return true;
}

/* The completions prompt: a string, an array of token ids, or an array of one string. */
static bool completion_prompt(const struct srv_api_config* cfg, const json_t* b, uint32_t** ids, size_t* n,
                              struct srv_error* err) {
    json_t* p = field(b, "prompt");
    if (json_is_array(p) && json_array_size(p) == 1 && json_is_string(json_array_get(p, 0))) p = json_array_get(p, 0);
    if (json_is_string(p)) return encode_text(cfg->tokenizer, json_string_value(p), json_string_length(p), ids, n, err);
    if (!json_is_array(p)) {
        BAD(err, "prompt", "prompt: expected a string or an array of token ids");
        return false;
    }
    uint32_t vocab = 0;
    gptoss_tokenizer_get_num_tokens(cfg->tokenizer, &vocab);
    const size_t count = json_array_size(p);
    uint32_t* out = malloc((count ? count : 1) * sizeof(uint32_t));
    if (out == NULL) {
        srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        json_t* v = json_array_get(p, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= (json_int_t) vocab) {
            free(out);
            char param[32];
            snprintf(param, sizeof(param), "prompt[%zu]", i);
            BAD(err, param, "%s: expected a token id in [0, %u) (one prompt per request)", param, vocab);
            return false;
        }
        out[i] = (uint32_t) json_integer_value(v);
    }
    *ids = out;
    *n = count;
    return true;
}

/* ---- responses: previous_response_id and echoed fields ------------------------------ */

/* input as an item array (a string is one user message). New reference. */
static json_t* input_items(const json_t* input) {
    if (json_is_string(input)) {
        return json_pack("[{s:s, s:s, s:O}]", "type", "message", "role", "user", "content", input);
    }
    return json_is_array(input) ? json_copy((json_t*) input) : json_array();
}

/* Resolves previous_response_id: *merged is a copy of the body whose input is the stored
 * conversation followed by this input. */
static bool merge_previous(const struct srv_api_config* cfg, const json_t* b, json_t** merged, json_t** input_out,
                           struct srv_error* err) {
    json_t* prev_id = field(b, "previous_response_id");
    json_t* input = field(b, "input");
    if (input != NULL && !json_is_string(input) && !json_is_array(input)) {
        BAD(err, "input", "input: expected a string or an array of items");
        return false;
    }
    if (input == NULL) {
        BAD(err, "input", "input: required");
        return false;
    }
    json_t* items = input_items(input);
    if (prev_id != NULL) {
        if (!json_is_string(prev_id)) {
            json_decref(items);
            BAD(err, "previous_response_id", "previous_response_id: expected a string");
            return false;
        }
        json_t* conv = cfg->store ? srv_store_get_conversation(cfg->store, json_string_value(prev_id)) : NULL;
        if (conv == NULL) {
            json_decref(items);
            srv_error_set(err, 404, "invalid_request_error", "previous_response_not_found", "previous_response_id",
                          "Previous response with id '%.100s' not found.", json_string_value(prev_id));
            return false;
        }
        json_array_extend(conv, items);
        json_decref(items);
        items = conv;
    }
    *merged = json_copy((json_t*) b);
    json_object_set(*merged, "input", items);
    *input_out = items;
    return true;
}

static json_t* responses_echo(const json_t* b, const struct srv_params* p, size_t max_output) {
    json_t* e = json_object();
    json_t* v;
    json_object_set_new(e, "instructions", (v = field(b, "instructions")) ? json_incref(v) : json_null());
    json_object_set_new(e, "max_output_tokens", field(b, "max_output_tokens") ? json_integer((json_int_t) max_output) : json_null());
    json_object_set_new(e, "previous_response_id", (v = field(b, "previous_response_id")) ? json_incref(v) : json_null());
    json_t* r = field(b, "reasoning");
    json_object_set_new(e, "reasoning", json_pack("{s:o, s:n}", "effort",
                                                  (v = field(r, "effort")) ? json_incref(v) : json_null(), "summary"));
    json_object_set_new(e, "tools", (v = field(b, "tools")) ? json_incref(v) : json_array());
    json_object_set_new(e, "tool_choice", (v = field(b, "tool_choice")) ? json_incref(v) : json_string("auto"));
    json_object_set_new(e, "parallel_tool_calls", json_boolean(!json_is_false(field(b, "parallel_tool_calls"))));
    json_object_set_new(e, "temperature", json_real(p->temperature));
    json_object_set_new(e, "top_p", json_real(p->top_p));
    json_object_set_new(e, "store", json_boolean(p->store));
    json_object_set_new(e, "metadata", (v = field(b, "metadata")) ? json_incref(v) : json_object());
    json_t* format = field(field(b, "text"), "format"); /* as given (validated), the schema's fields too */
    json_object_set_new(e, "text", json_pack("{s:o}", "format", format ? json_incref(format) : json_pack("{s:s}", "type", "text")));
    json_object_set_new(e, "truncation", json_string("disabled"));
    json_object_set_new(e, "background", json_false());
    return e;
}

/* ---- the endpoints ------------------------------------------------------------------ */

/* A json_schema format's fields (chat and completions: response_format.json_schema; responses:
 * text.format itself, beside "type"): name (OpenAI's: 1 to 64 letters, digits, '_' or '-'),
 * schema, strict, description. The schema is compiled into p->schema (json_schema.c); strict
 * changes nothing, as the output always validates. */
static bool json_schema_format(const json_t* js, const char* where, bool flat, struct srv_params* p,
                               struct srv_error* err) {
    static const char* const fields[] = {"name", "schema", "strict", "description", NULL};
    char param[96];
    const char* key;
    json_t* value;
    json_object_foreach((json_t*) js, key, value) {
        bool known = flat && strcmp(key, "type") == 0;
        for (const char* const* f = fields; *f && !known; f++) known = strcmp(key, *f) == 0;
        if (!known) {
            snprintf(param, sizeof(param), "%s.%.40s", where, key);
            srv_error_set(err, 400, "invalid_request_error", "unknown_parameter", param,
                          "Unrecognized request argument supplied: %s", param);
            return false;
        }
    }
    snprintf(param, sizeof(param), "%s.name", where);
    json_t* name = json_object_get(js, "name");
    const char* s = json_string_value(name);
    size_t n = s ? strlen(s) : 0;
    bool ok = n >= 1 && n <= 64;
    for (size_t i = 0; i < n && ok; i++)
        ok = (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
             s[i] == '-';
    if (!ok) {
        BAD(err, param, "%s: expected 1 to 64 letters, digits, '_' or '-'%s%.70s%s", param, s ? ", got \"" : "",
            s ? s : "", s ? "\"" : "");
        return false;
    }
    json_t* description = field(js, "description");
    if (description != NULL && !json_is_string(description)) {
        snprintf(param, sizeof(param), "%s.description", where);
        BAD(err, param, "%s: expected a string", param);
        return false;
    }
    json_t* strict = field(js, "strict");
    if (strict != NULL && !json_is_boolean(strict)) {
        snprintf(param, sizeof(param), "%s.strict", where);
        BAD(err, param, "%s: expected a boolean", param);
        return false;
    }
    snprintf(param, sizeof(param), "%s.schema", where);
    json_t* schema = json_object_get(js, "schema");
    if (!json_is_object(schema)) {
        BAD(err, param, "%s: expected a JSON Schema object", param);
        return false;
    }
    p->schema = srv_schema_compile(schema, param, err);
    return p->schema != NULL;
}

/* response_format (chat, completions) or text.format (responses): "text", "json_object"
 * (p->json_object: the reply's final message is a JSON object, json_mode.c) or "json_schema"
 * (p->schema: a value valid against the schema, json_schema.c) */
static bool output_format(const json_t* fmt, const char* param, struct srv_params* p, struct srv_error* err) {
    if (fmt == NULL) return true;
    json_t* t = json_is_object(fmt) ? json_object_get(fmt, "type") : NULL;
    if (!json_is_string(t)) {
        BAD(err, param, "%s: expected an object with a type", param);
        return false;
    }
    if (strcmp(json_string_value(t), "json_object") == 0) {
        p->json_object = true;
        return true;
    }
    if (strcmp(json_string_value(t), "json_schema") == 0) {
        if (p->api == srv_api_responses) return json_schema_format(fmt, param, true, p, err);
        char where[64];
        snprintf(where, sizeof(where), "%s.json_schema", param);
        const char* key;
        json_t* value;
        json_object_foreach((json_t*) fmt, key, value) {
            if (strcmp(key, "type") != 0 && strcmp(key, "json_schema") != 0) {
                char bad[96];
                snprintf(bad, sizeof(bad), "%s.%.40s", param, key);
                srv_error_set(err, 400, "invalid_request_error", "unknown_parameter", bad,
                              "Unrecognized request argument supplied: %s", bad);
                return false;
            }
        }
        json_t* js = json_object_get(fmt, "json_schema");
        if (!json_is_object(js)) {
            BAD(err, where, "%s: expected an object with name and schema", where);
            return false;
        }
        return json_schema_format(js, where, false, p, err);
    }
    if (strcmp(json_string_value(t), "text") != 0) {
        UNSUPPORTED(err, param,
                    "%s: only types \"text\", \"json_object\" and \"json_schema\" are supported, got \"%.40s\"",
                    param, json_string_value(t));
        return false;
    }
    return true;
}

static bool chat_params(const json_t* b, struct srv_params* p, int64_t* max_tokens, struct srv_error* err) {
    bool given = false;
    if (!get_int(b, "max_completion_tokens", 1, INT64_MAX, max_tokens, &given, err)) return false;
    if (!given && !get_int(b, "max_tokens", 1, INT64_MAX, max_tokens, NULL, err)) return false;
    if (!get_bool(b, "logprobs", &p->logprobs, err)) return false;
    int64_t top = 0;
    bool top_given = false;
    if (!get_int(b, "top_logprobs", 0, SRV_MAX_TOP_LOGPROBS, &top, &top_given, err)) return false;
    if (top_given && !p->logprobs) {
        BAD(err, "top_logprobs", "top_logprobs: requires logprobs to be true");
        return false;
    }
    p->top_logprobs = (uint32_t) top;
    if (!stop_strings(b, p, err)) return false;
    if (!output_format(field(b, "response_format"), "response_format", p, err)) return false;
    json_t* mod = field(b, "modalities");
    if (mod != NULL) {
        if (!json_is_array(mod) || json_array_size(mod) != 1 || !json_is_string(json_array_get(mod, 0)) ||
            strcmp(json_string_value(json_array_get(mod, 0)), "text") != 0) {
            UNSUPPORTED(err, "modalities", "modalities: only [\"text\"] is supported");
            return false;
        }
    }
    bool ignored = false;
    if (!get_bool(b, "parallel_tool_calls", &ignored, err) || !get_bool(b, "store", &ignored, err)) return false;
    static const char* const strings[] = {"service_tier", "prompt_cache_key", "safety_identifier", "verbosity"};
    for (size_t i = 0; i < sizeof(strings) / sizeof(*strings); i++)
        if (!check_type(b, strings[i], JSON_STRING, "a string", err)) return false;
    return check_type(b, "metadata", JSON_OBJECT, "an object", err);
}

static bool responses_params(const json_t* b, struct srv_params* p, int64_t* max_tokens, struct srv_error* err) {
    if (!get_int(b, "max_output_tokens", 1, INT64_MAX, max_tokens, NULL, err)) return false;
    p->store = true;
    if (!get_bool(b, "store", &p->store, err)) return false;
    bool background = false, ignored = false;
    if (!get_bool(b, "background", &background, err) || !get_bool(b, "parallel_tool_calls", &ignored, err)) return false;
    if (background) {
        UNSUPPORTED(err, "background", "background: not supported");
        return false;
    }
    json_t* trunc = field(b, "truncation");
    if (trunc != NULL && (!json_is_string(trunc) || strcmp(json_string_value(trunc), "disabled") != 0)) {
        UNSUPPORTED(err, "truncation", "truncation: only \"disabled\" is supported");
        return false;
    }
    json_t* text = field(b, "text");
    if (text != NULL && !json_is_object(text)) {
        BAD(err, "text", "text: expected an object");
        return false;
    }
    if (!output_format(field(text, "format"), "text.format", p, err)) return false;
    int64_t top = 0;
    if (!get_int(b, "top_logprobs", 0, SRV_MAX_TOP_LOGPROBS, &top, NULL, err)) return false;
    p->top_logprobs = (uint32_t) top;
    json_t* inc = field(b, "include");
    if (inc != NULL && !json_is_array(inc)) {
        BAD(err, "include", "include: expected an array of strings");
        return false;
    }
    size_t i;
    json_t* v;
    json_array_foreach(inc, i, v) {
        if (!json_is_string(v)) {
            BAD(err, "include", "include[%zu]: expected a string", i);
            return false;
        }
        if (strcmp(json_string_value(v), "message.output_text.logprobs") == 0) p->logprobs = true;
    }
    int64_t ignored_int = 0;
    if (!get_int(b, "max_tool_calls", 0, INT64_MAX, &ignored_int, NULL, err)) return false;
    static const char* const strings[] = {"service_tier", "prompt_cache_key", "safety_identifier", "instructions",
                                          "previous_response_id"};
    for (size_t k = 0; k < sizeof(strings) / sizeof(*strings); k++)
        if (!check_type(b, strings[k], JSON_STRING, "a string", err)) return false;
    if (!check_type(b, "reasoning", JSON_OBJECT, "an object", err)) return false;
    if (!check_type(b, "stream_options", JSON_OBJECT, "an object", err)) return false;
    return check_type(b, "metadata", JSON_OBJECT, "an object", err);
}

static bool completions_params(const json_t* b, struct srv_params* p, int64_t* max_tokens, struct srv_error* err) {
    *max_tokens = 16; /* OpenAI's default for completions */
    if (!get_int(b, "max_tokens", 1, INT64_MAX, max_tokens, NULL, err)) return false;
    int64_t top = 0;
    bool given = false;
    if (!get_int(b, "logprobs", 0, 5, &top, &given, err)) return false;
    p->logprobs = given;
    p->top_logprobs = (uint32_t) top;
    bool echo = false;
    if (!get_bool(b, "echo", &echo, err)) return false;
    if (echo) {
        UNSUPPORTED(err, "echo", "echo: not supported");
        return false;
    }
    int64_t best_of = 1;
    if (!get_int(b, "best_of", INT64_MIN, INT64_MAX, &best_of, NULL, err)) return false;
    if (best_of != 1) {
        UNSUPPORTED(err, "best_of", "best_of: only 1 is supported");
        return false;
    }
    json_t* suffix = field(b, "suffix");
    if (suffix != NULL && !(json_is_string(suffix) && json_string_length(suffix) == 0)) {
        UNSUPPORTED(err, "suffix", "suffix: not supported");
        return false;
    }
    /* an extension (as vLLM): the completion text is a JSON object, or a value of the schema */
    if (!output_format(field(b, "response_format"), "response_format", p, err)) return false;
    return stop_strings(b, p, err);
}

static bool check_model(const struct srv_api_config* cfg, const json_t* b, bool required, struct srv_error* err) {
    json_t* m = field(b, "model");
    if (m == NULL) {
        if (!required) return true;
        BAD(err, "model", "model: required");
        return false;
    }
    if (!json_is_string(m)) {
        BAD(err, "model", "model: expected a string");
        return false;
    }
    if (cfg->model_id != NULL && strcmp(json_string_value(m), cfg->model_id) != 0) {
        srv_error_set(err, 400, "invalid_request_error", "model_not_found", "model",
                      "The model '%.100s' does not exist: this server serves '%.100s'", json_string_value(m),
                      cfg->model_id);
        return false;
    }
    return true;
}

static json_t* parse_body(const char* body, size_t len, struct srv_error* err) {
    json_error_t je;
    json_t* b = json_loadb(body, len, 0, &je);
    if (b == NULL) {
        srv_error_set(err, 400, "invalid_request_error", "invalid_json", NULL,
                      "The request body is not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
        return NULL;
    }
    if (!json_is_object(b)) {
        json_decref(b);
        srv_error_set(err, 400, "invalid_request_error", "invalid_json", NULL, "The request body must be a JSON object");
        return NULL;
    }
    return b;
}

bool srv_api_prepare(const struct srv_api_config* cfg, enum srv_api api, const char* body, size_t len,
                     struct srv_request** req_out, struct srv_error* err) {
    json_t* b = parse_body(body, len, err);
    if (b == NULL) return false;
    static const char* const* const fields[] = {chat_fields, responses_fields, completions_fields};
    struct srv_request* req = NULL;
    json_t* merged = NULL; /* responses with previous_response_id */
    json_t* input = NULL;
    bool ok = false;
    if (!known_fields(b, fields[api], err) || !check_model(cfg, b, true, err)) goto done;
    req = srv_request_new(api);
    if (req == NULL) {
        srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
        goto done;
    }
    struct srv_params* p = &req->params;
    int64_t max_tokens = 0;
    if (!sampling(cfg, b, p, err)) goto done;
    /* n (chat, completions): the choices run at once, choice i drawing with seed + i */
    int64_t choices = 1;
    const size_t max_choices = cfg->max_choices != 0 && cfg->max_choices < SRV_MAX_CHOICES ? cfg->max_choices
                                                                                          : SRV_MAX_CHOICES;
    if (!get_int(b, "n", 1, INT64_MAX, &choices, NULL, err)) goto done;
    if (choices > (int64_t) max_choices) {
        BAD(err, "n", "n: %lld choices; this server runs at most %zu at once (--parallel, at most %d)",
            (long long) choices, max_choices, SRV_MAX_CHOICES);
        goto done;
    }
    if (!srv_request_set_choices(req, (uint32_t) choices)) {
        srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
        goto done;
    }
    switch (api) {
    case srv_api_chat:
        if (!chat_params(b, p, &max_tokens, err)) goto done;
        if (!render_harmony(cfg, api, b, &req->prompt, &req->num_prompt, &req->num_header, err)) goto done;
        break;
    case srv_api_responses:
        if (!responses_params(b, p, &max_tokens, err)) goto done;
        if (!merge_previous(cfg, b, &merged, &input, err)) goto done;
        if (!render_harmony(cfg, api, merged, &req->prompt, &req->num_prompt, &req->num_header, err)) goto done;
        break;
    case srv_api_completions:
        if (!completions_params(b, p, &max_tokens, err)) goto done;
        if (!completion_prompt(cfg, b, &req->prompt, &req->num_prompt, err)) goto done;
        if (req->num_prompt == 0) {
            BAD(err, "prompt", "prompt: empty");
            goto done;
        }
        break;
    }
    if (req->num_prompt >= cfg->context_length) {
        srv_error_set(err, 400, "invalid_request_error", "context_length_exceeded",
                      api == srv_api_completions ? "prompt" : api == srv_api_chat ? "messages" : "input",
                      "This model's maximum context length is %zu tokens, but the prompt has %zu tokens "
                      "(and at least one token must be generated)",
                      cfg->context_length, req->num_prompt);
        goto done;
    }
    const size_t room = cfg->context_length - req->num_prompt;
    p->max_tokens = max_tokens > 0 && (uint64_t) max_tokens < room ? (size_t) max_tokens : room;
    req->model = strdup(cfg->model_id ? cfg->model_id : "");
    if (api == srv_api_responses) {
        req->info = json_pack("{s:o, s:O}", "echo", responses_echo(b, p, p->max_tokens), "input", input);
    }
    if (req->model == NULL || (api == srv_api_responses && req->info == NULL)) {
        srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
        goto done;
    }
    ok = true;
done:
    json_decref(merged);
    json_decref(input);
    json_decref(b);
    if (ok) {
        *req_out = req;
    } else {
        srv_request_release(req);
    }
    return ok;
}

void srv_decode_tokens(gptoss_tokenizer_t tokenizer, const uint32_t* ids, size_t n, struct srv_buf* out) {
    struct srv_buf raw = {0};
    for (size_t i = 0; i < n; i++) {
        const void* bytes = NULL;
        size_t size = 0;
        if (gptoss_tokenizer_decode(tokenizer, ids[i], &bytes, &size) == gptoss_status_success) srv_buf_put(&raw, bytes, size);
    }
    srv_utf8_lossy(out, raw.data ? raw.data : "", raw.len, false);
    srv_buf_free(&raw);
}

bool srv_api_render(const struct srv_api_config* cfg, const char* body, size_t len, json_t** out, struct srv_error* err) {
    json_t* b = parse_body(body, len, err);
    if (b == NULL) return false;
    const bool chat = json_object_get(b, "messages") != NULL;
    json_t* merged = NULL;
    json_t* input = NULL;
    uint32_t* ids = NULL;
    size_t n = 0, nh = 0;
    bool ok = check_model(cfg, b, false, err);
    if (ok && !chat) ok = merge_previous(cfg, b, &merged, &input, err);
    if (ok) ok = render_harmony(cfg, chat ? srv_api_chat : srv_api_responses, chat ? b : merged, &ids, &n, &nh, err);
    if (ok) {
        struct srv_buf text = {0};
        srv_decode_tokens(cfg->tokenizer, ids, n, &text);
        json_t* list = json_array();
        for (size_t i = 0; i < n; i++) json_array_append_new(list, json_integer(ids[i]));
        *out = json_pack("{s:s%, s:o, s:I}", "prompt", text.data ? text.data : "", text.len, "tokens", list,
                         "num_tokens", (json_int_t) n);
        srv_buf_free(&text);
        if (*out == NULL) {
            srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
            ok = false;
        }
    }
    free(ids);
    json_decref(merged);
    json_decref(input);
    json_decref(b);
    return ok;
}
