/* harmony_tool: the harmony layer from the command line, for tests and for looking at
 * prompts.
 *
 *   harmony_tool [-m MODEL] render [--api chat|responses|conversation] [--date D]
 *                [--identity S | --no-identity] [--cutoff C | --no-cutoff] [--effort E]
 *                [--lines] FILE
 *       FILE: a request (or with --lines one request per line). Prints per request one
 *       line {"tokens": [...], "text": "...", "conversation": {...}} or
 *       {"error": {"status", "param", "message"}}.
 *   harmony_tool [-m MODEL] parse [--role R] [--lenient] [--lines] FILE
 *       FILE: a JSON array of token ids (or with --lines one per line). Prints per array
 *       one line {"completion": {"messages": [...]} | {"error": ...},
 *                 "steps": [[event, ...] per token, then one for the end of stream]}
 *       where an event is {"type": "begin"|"delta"|"end"|"error", "header": {...},
 *       "text", "stop", "error"}.
 *
 * The tokenizer comes from MODEL, or without -m from the random tiny model
 * (gptoss_model_create_random: the real o200k_harmony tokenizer, no file needed).
 * Exit status: 0 when every request rendered / every array parsed without error, 1
 * otherwise, 2 for bad usage. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <gptoss/engine.h>
#include <gptoss/offline.h>

#include "harmony.h"

static int usage(void) {
    fprintf(stderr,
            "usage: harmony_tool [-m MODEL] render [--api chat|responses|conversation] [--date D]\n"
            "                    [--identity S | --no-identity] [--cutoff C | --no-cutoff] [--effort low|medium|high]\n"
            "                    [--lines] FILE\n"
            "       harmony_tool [-m MODEL] parse [--role ROLE] [--lenient] [--lines] FILE\n");
    return 2;
}

static json_t* error_json(enum gptoss_status st, const struct gptoss_harmony_error* err) {
    return json_pack("{s:{s:s,s:s,s:s}}", "error", "status", gptoss_status_to_string(st), "param", err->param,
                     "message", err->message);
}

static void print_line(json_t* out) {
    char* s = json_dumps(out, JSON_COMPACT);
    if (s == NULL) {
        fprintf(stderr, "harmony_tool: cannot print the result\n");
        exit(1);
    }
    puts(s);
    free(s);
    json_decref(out);
}

struct render_args {
    const char* api;
    struct gptoss_harmony_render_options options;
};

static int render_one(gptoss_tokenizer_t tok, const struct render_args* a, const json_t* request) {
    struct gptoss_harmony_error err = {{0}, {0}};
    json_t* conv = NULL;
    enum gptoss_status st;
    if (strcmp(a->api, "chat") == 0) st = gptoss_harmony_conversation_from_chat(request, &a->options, &conv, &err);
    else if (strcmp(a->api, "responses") == 0)
        st = gptoss_harmony_conversation_from_responses(request, &a->options, &conv, &err);
    else {
        conv = json_incref((json_t*) request);
        st = gptoss_status_success;
    }
    uint32_t* tokens = NULL;
    size_t n = 0;
    if (st == gptoss_status_success) st = gptoss_harmony_render_conversation(tok, conv, &tokens, &n, &err);
    if (st != gptoss_status_success) {
        json_decref(conv);
        print_line(error_json(st, &err));
        return 1;
    }
    json_t* ids = json_array();
    size_t text_size = 0;
    char* text = NULL;
    for (size_t i = 0; i < n; i++) {
        const void* p;
        size_t s;
        json_array_append_new(ids, json_integer(tokens[i]));
        if (gptoss_tokenizer_decode(tok, tokens[i], &p, &s) != gptoss_status_success) s = 0;
        text = realloc(text, text_size + s + 1);
        if (text == NULL) abort();
        memcpy(text + text_size, p, s);
        text_size += s;
    }
    json_t* out = json_object();
    json_object_set_new(out, "tokens", ids);
    /* whole messages decode to valid UTF-8 */
    json_object_set_new(out, "text", json_stringn(text ? text : "", text_size));
    json_object_set_new(out, "conversation", conv);
    print_line(out);
    free(text);
    free(tokens);
    return 0;
}

static const char* const stop_names[] = {"none", "end", "return", "call"};

static json_t* header_json(const struct gptoss_harmony_header* h) {
    json_t* o = json_object();
    json_object_set_new(o, "role", json_string(h->role));
    json_object_set_new(o, "name", h->name ? json_string(h->name) : json_null());
    json_object_set_new(o, "channel", h->channel ? json_string(h->channel) : json_null());
    json_object_set_new(o, "recipient", h->recipient ? json_string(h->recipient) : json_null());
    json_object_set_new(o, "content_type", h->content_type ? json_string(h->content_type) : json_null());
    return o;
}

static json_t* events_json(const struct gptoss_harmony_event* events, size_t n) {
    static const char* const types[] = {"", "begin", "delta", "end", "error"};
    json_t* list = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct gptoss_harmony_event* ev = &events[i];
        json_t* o = json_object();
        json_object_set_new(o, "type", json_string(types[ev->type]));
        if (ev->header) json_object_set_new(o, "header", header_json(ev->header));
        if (ev->text) json_object_set_new(o, "text", json_stringn(ev->text, ev->text_size));
        if (ev->type == gptoss_harmony_event_message_end) json_object_set_new(o, "stop", json_string(stop_names[ev->stop]));
        if (ev->error) json_object_set_new(o, "error", json_string(ev->error));
        json_array_append_new(list, o);
    }
    return list;
}

static int parse_one(gptoss_tokenizer_t tok, const char* role, uint32_t flags, const json_t* ids_json) {
    size_t n = json_array_size(ids_json);
    uint32_t* ids = malloc((n ? n : 1) * sizeof(uint32_t));
    if (!json_is_array(ids_json) || ids == NULL) {
        free(ids);
        fprintf(stderr, "harmony_tool: the input must be an array of token ids\n");
        return 2;
    }
    for (size_t i = 0; i < n; i++) {
        json_int_t v = json_integer_value(json_array_get(ids_json, i));
        if (!json_is_integer(json_array_get(ids_json, i)) || v < 0 || v > (json_int_t) UINT32_MAX) {
            fprintf(stderr, "harmony_tool: tokens[%zu] is not a token id\n", i);
            free(ids);
            return 2;
        }
        ids[i] = (uint32_t) v;
    }
    json_t* out = json_object();
    struct gptoss_harmony_error err = {{0}, {0}};
    json_t* messages = NULL;
    enum gptoss_status st = gptoss_harmony_parse_completion(tok, ids, n, role, flags, &messages, &err);
    json_object_set_new(out, "completion",
                        st == gptoss_status_success ? json_pack("{s:o}", "messages", messages) : error_json(st, &err));
    gptoss_harmony_parser_t p;
    json_t* steps = json_array();
    if (gptoss_harmony_parser_create(tok, role, flags, &p) != gptoss_status_success) {
        fprintf(stderr, "harmony_tool: cannot create a parser\n");
        exit(1);
    }
    for (size_t i = 0; i <= n; i++) {
        const struct gptoss_harmony_event* events;
        size_t num_events;
        enum gptoss_status fs = i < n ? gptoss_harmony_parser_feed(p, ids[i], &events, &num_events)
                                      : gptoss_harmony_parser_finish(p, &events, &num_events);
        if (fs != gptoss_status_success) {
            fprintf(stderr, "harmony_tool: parser: %s\n", gptoss_status_to_string(fs));
            exit(1);
        }
        json_array_append_new(steps, events_json(events, num_events));
    }
    gptoss_harmony_parser_release(p);
    json_object_set_new(out, "steps", steps);
    print_line(out);
    free(ids);
    return st == gptoss_status_success ? 0 : 1;
}

/* Calls fn on the JSON of FILE, or on each non-empty line of it. */
static int for_each_input(const char* path, bool lines, int (*fn)(void*, const json_t*), void* ctx) {
    json_error_t jerr;
    int worst = 0;
    if (!lines) {
        json_t* v = json_load_file(path, JSON_DECODE_ANY, &jerr);
        if (v == NULL) {
            fprintf(stderr, "harmony_tool: %s:%d: %s\n", path, jerr.line, jerr.text);
            return 2;
        }
        worst = fn(ctx, v);
        json_decref(v);
        return worst;
    }
    FILE* f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return 2;
    }
    char* line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (len == 1 && line[0] == '\n') continue;
        json_t* v = json_loadb(line, (size_t) len, JSON_DECODE_ANY, &jerr);
        if (v == NULL) {
            fprintf(stderr, "harmony_tool: %s:%d: %s\n", path, lineno, jerr.text);
            worst = 2;
            break;
        }
        int r = fn(ctx, v);
        if (r > worst) worst = r;
        json_decref(v);
        fflush(stdout);
    }
    free(line);
    fclose(f);
    return worst;
}

struct ctx {
    gptoss_tokenizer_t tok;
    struct render_args render;
    const char* role;
    uint32_t flags;
};

static int render_cb(void* c, const json_t* v) {
    struct ctx* x = c;
    return render_one(x->tok, &x->render, v);
}

static int parse_cb(void* c, const json_t* v) {
    struct ctx* x = c;
    return parse_one(x->tok, x->role, x->flags, v);
}

int main(int argc, char** argv) {
    const char* model = NULL;
    int i = 1;
    if (i + 1 < argc && strcmp(argv[i], "-m") == 0) {
        model = argv[i + 1];
        i += 2;
    }
    if (i >= argc) return usage();
    const char* cmd = argv[i++];
    struct ctx x = {.render = {.api = "chat"}};
    gptoss_harmony_render_options_init(&x.render.options);
    bool lines = false;
    const char* file = NULL;
    for (; i < argc; i++) {
        const char* a = argv[i];
        bool has_value = i + 1 < argc;
        if (strcmp(a, "--lines") == 0) lines = true;
        else if (strcmp(a, "--lenient") == 0) x.flags |= GPTOSS_HARMONY_PARSE_LENIENT;
        else if (strcmp(a, "--no-identity") == 0) x.render.options.model_identity = NULL;
        else if (strcmp(a, "--no-cutoff") == 0) x.render.options.knowledge_cutoff = NULL;
        else if (strcmp(a, "--api") == 0 && has_value) x.render.api = argv[++i];
        else if (strcmp(a, "--date") == 0 && has_value) x.render.options.current_date = argv[++i];
        else if (strcmp(a, "--identity") == 0 && has_value) x.render.options.model_identity = argv[++i];
        else if (strcmp(a, "--cutoff") == 0 && has_value) x.render.options.knowledge_cutoff = argv[++i];
        else if (strcmp(a, "--role") == 0 && has_value) x.role = argv[++i];
        else if (strcmp(a, "--effort") == 0 && has_value) {
            const char* e = argv[++i];
            x.render.options.default_effort = strcmp(e, "low") == 0      ? gptoss_harmony_effort_low
                                              : strcmp(e, "medium") == 0 ? gptoss_harmony_effort_medium
                                              : strcmp(e, "high") == 0   ? gptoss_harmony_effort_high
                                                                         : 0;
            if (x.render.options.default_effort == 0) return usage();
        } else if (a[0] != '-' && file == NULL) file = a;
        else return usage();
    }
    if (file == NULL) return usage();
    bool is_render = strcmp(cmd, "render") == 0;
    if (!is_render && strcmp(cmd, "parse") != 0) return usage();
    if (is_render && strcmp(x.render.api, "chat") != 0 && strcmp(x.render.api, "responses") != 0 &&
        strcmp(x.render.api, "conversation") != 0)
        return usage();

    gptoss_backend_t backend = NULL;
    gptoss_model_t m = NULL;
    enum gptoss_status st;
    if (model != NULL) {
        st = gptoss_tokenizer_create_from_file(model, &x.tok);
    } else {
        st = gptoss_backend_create_cpu(1, &backend);
        if (st == gptoss_status_success) st = gptoss_model_create_random("tiny", 1, 1, backend, &m);
        if (st == gptoss_status_success) st = gptoss_model_get_tokenizer(m, &x.tok);
    }
    if (st != gptoss_status_success) {
        fprintf(stderr, "harmony_tool: no tokenizer: %s\n", gptoss_last_error());
        return 1;
    }
    int rc = for_each_input(file, lines, is_render ? render_cb : parse_cb, &x);
    gptoss_tokenizer_release(x.tok);
    gptoss_model_release(m);
    gptoss_backend_release(backend);
    return rc;
}
