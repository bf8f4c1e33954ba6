/* Requests: the object shared by an HTTP thread and the engine thread, its result and the
 * events that stream it. Every mutation of the result and the event list happens under
 * the request's mutex; the done flag publishes the complete result. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

struct srv_request* srv_request_new(enum srv_api api) {
    struct srv_request* r = calloc(1, sizeof(*r));
    if (r == NULL) return NULL;
    atomic_init(&r->refs, 1);
    atomic_init(&r->cancel, 0);
    pthread_mutex_init(&r->mu, NULL);
    r->params.api = api;
    r->params.n = 1;
    r->created = (int64_t) time(NULL);
    static const char* const prefix[] = {"chatcmpl-", "resp_", "cmpl-"};
    srv_make_id(r->id, sizeof(r->id), prefix[api]);
    return r;
}

void srv_request_retain(struct srv_request* req) { atomic_fetch_add(&req->refs, 1); }

bool srv_request_set_choices(struct srv_request* req, uint32_t n) {
    if (n > 1) {
        req->more = calloc(n - 1, sizeof(*req->more));
        if (req->more == NULL) return false; /* n stays 1 */
    }
    req->params.n = n;
    return true;
}

static void result_free(struct srv_result* r) {
    for (size_t i = 0; i < r->num_items; i++) {
        free(r->items[i].name);
        srv_buf_free(&r->items[i].text);
        json_decref(r->items[i].logprobs);
    }
    free(r->items);
}

void srv_events_free(struct srv_event* events, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(events[i].text);
        free(events[i].name);
        json_decref(events[i].logprobs);
    }
    free(events);
}

void srv_request_release(struct srv_request* req) {
    if (req == NULL || atomic_fetch_sub(&req->refs, 1) != 1) return;
    for (size_t i = 0; i < req->params.num_stop; i++) free(req->params.stop[i]);
    free(req->params.bias_ids);
    free(req->params.bias_values);
    srv_schema_free(req->params.schema);
    free(req->prompt);
    free(req->model);
    json_decref(req->info);
    for (size_t i = req->taken; i < req->num_events; i++) {
        free(req->events[i].text);
        free(req->events[i].name);
        json_decref(req->events[i].logprobs);
    }
    free(req->events);
    for (uint32_t c = 0; c < req->params.n; c++) result_free(srv_result_of(req, c));
    free(req->more);
    pthread_mutex_destroy(&req->mu);
    free(req);
}

/* Appends an event (mutex held). Out of memory drops the event: the result (what a
 * non-streamed response and the final stream chunk report) stays complete. */
static void push_event(struct srv_request* req, struct srv_event ev) {
    if (req->num_events == req->cap_events) {
        /* compact what the HTTP side has taken before growing */
        if (req->taken > 0) {
            memmove(req->events, req->events + req->taken, (req->num_events - req->taken) * sizeof(*req->events));
            req->num_events -= req->taken;
            req->taken = 0;
        }
        if (req->num_events == req->cap_events) {
            const size_t cap = req->cap_events ? 2 * req->cap_events : 16;
            struct srv_event* p = realloc(req->events, cap * sizeof(*p));
            if (p == NULL) {
                free(ev.text);
                free(ev.name);
                json_decref(ev.logprobs);
                return;
            }
            req->events = p;
            req->cap_events = cap;
        }
    }
    req->events[req->num_events++] = ev;
}

static char* dup_n(const char* s, size_t n) {
    char* p = malloc(n + 1);
    if (p == NULL) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* An event about `it` (index `item` of choice `choice`) with its identity fields. */
static struct srv_event item_event(enum srv_event_type type, uint32_t choice, uint32_t item, const struct srv_item* it) {
    struct srv_event ev = {.type = type, .choice = choice, .item = item, .kind = it->kind, .tool_index = it->tool_index};
    memcpy(ev.id, it->id, sizeof(ev.id));
    memcpy(ev.call_id, it->call_id, sizeof(ev.call_id));
    if (it->name != NULL) ev.name = dup_n(it->name, strlen(it->name));
    return ev;
}

static void notify(struct srv_request* req) {
    if (req->notify != NULL) req->notify(req);
}

uint32_t srv_request_item_begin(struct srv_request* req, uint32_t choice, enum srv_item_kind kind, const char* name) {
    pthread_mutex_lock(&req->mu);
    struct srv_result* res = srv_result_of(req, choice);
    if (res->num_items == res->cap_items) {
        const size_t cap = res->cap_items ? 2 * res->cap_items : 4;
        struct srv_item* p = realloc(res->items, cap * sizeof(*p));
        if (p == NULL) {
            pthread_mutex_unlock(&req->mu);
            return UINT32_MAX;
        }
        res->items = p;
        res->cap_items = cap;
    }
    const uint32_t index = (uint32_t) res->num_items++;
    struct srv_item* it = &res->items[index];
    memset(it, 0, sizeof(*it));
    it->kind = kind;
    static const char* const prefix[] = {"msg_", "rs_", "fc_"};
    srv_make_id(it->id, sizeof(it->id), prefix[kind]);
    if (kind == srv_item_tool_call) {
        srv_make_id(it->call_id, sizeof(it->call_id), "call_");
        it->name = dup_n(name ? name : "", name ? strlen(name) : 0);
        it->tool_index = res->num_tool_calls++;
    }
    if (kind == srv_item_message && req->params.logprobs) it->logprobs = json_array();
    if (req->params.stream) {
        push_event(req, item_event(srv_event_item_begin, choice, index, it));
        notify(req);
    }
    pthread_mutex_unlock(&req->mu);
    return index;
}

void srv_request_item_delta(struct srv_request* req, uint32_t choice, uint32_t item, const char* text, size_t len,
                            json_t* logprobs) {
    pthread_mutex_lock(&req->mu);
    struct srv_result* res = srv_result_of(req, choice);
    if (item >= res->num_items) {
        pthread_mutex_unlock(&req->mu);
        json_decref(logprobs);
        return;
    }
    struct srv_item* it = &res->items[item];
    srv_buf_put(&it->text, text, len);
    if (logprobs != NULL && it->logprobs != NULL) json_array_extend(it->logprobs, logprobs);
    if (req->params.stream) {
        struct srv_event ev = item_event(srv_event_delta, choice, item, it);
        ev.text = dup_n(text, len);
        ev.text_len = len;
        ev.logprobs = logprobs;
        push_event(req, ev);
        notify(req);
    } else {
        json_decref(logprobs);
    }
    pthread_mutex_unlock(&req->mu);
}

void srv_request_item_end(struct srv_request* req, uint32_t choice, uint32_t item) {
    pthread_mutex_lock(&req->mu);
    struct srv_result* res = srv_result_of(req, choice);
    if (item < res->num_items && !res->items[item].done) {
        struct srv_item* it = &res->items[item];
        it->done = true;
        if (req->params.stream) {
            const size_t n = it->text.len;
            struct srv_event ev = item_event(srv_event_item_end, choice, item, it);
            ev.text = dup_n(it->text.data ? it->text.data : "", n);
            ev.text_len = n;
            push_event(req, ev);
            notify(req);
        }
    }
    pthread_mutex_unlock(&req->mu);
}

void srv_request_finish_choice(struct srv_request* req, uint32_t choice) {
    pthread_mutex_lock(&req->mu);
    push_event(req, (struct srv_event){.type = srv_event_choice_done, .choice = choice});
    const bool last = ++req->choices_done == req->params.n;
    if (last) {
        req->done = true;
        push_event(req, (struct srv_event){.type = srv_event_done});
    }
    notify(req);
    pthread_mutex_unlock(&req->mu);
}

void srv_request_finish(struct srv_request* req) {
    pthread_mutex_lock(&req->mu);
    req->done = true;
    push_event(req, (struct srv_event){.type = srv_event_done});
    notify(req);
    pthread_mutex_unlock(&req->mu);
}

size_t srv_request_take_events(struct srv_request* req, struct srv_event** out) {
    const size_t n = req->num_events - req->taken;
    *out = NULL;
    if (n == 0) return 0;
    struct srv_event* copy = malloc(n * sizeof(*copy));
    if (copy == NULL) return 0; /* taken later */
    memcpy(copy, req->events + req->taken, n * sizeof(*copy));
    req->taken = req->num_events = 0;
    *out = copy;
    return n;
}
