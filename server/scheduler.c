/* The engine thread: it alone touches the contexts. Requests wait in a bounded FIFO; the
 * thread admits one into a context (a slot) and advances it one step at a time (a prefill
 * chunk or one sampled token), checking between steps whether its client left, its
 * deadline passed or the server is shutting down.
 *
 * Prompt cache: each slot remembers the tokens its context holds. A request whose prompt
 * extends a slot's last prompt (contains all of it, less at most the two tokens of the
 * `<|start|>assistant` that opened the reply, which the next turn renders differently when
 * the reply was not a well-formed message) goes to that slot (the one with the longest
 * common prefix if several); any other request goes to the least recently used slot, so
 * that a new conversation does not evict another one only because they share a system
 * prompt. After gptoss_context_reset the engine keeps the K/V of a re-appended identical
 * prefix (every layer, sliding-window ones included, holds all positions), so only the
 * rest of the prompt is computed.
 *
 * Continuous batching (several running sequences per forward step) replaces step() and
 * admit()'s one-at-a-time rule; a request's state is already its own (struct seq: slot,
 * sampler, output processor, progress). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

struct slot {
    gptoss_context_t ctx;
    uint32_t* tokens;      /* what the context holds (K/V of all but a pending last token) */
    size_t num_tokens;
    size_t prompt_len;     /* the prompt part of tokens (the last request's) */
    uint64_t last_used;
};

/* A running request. */
struct seq {
    struct srv_request* req;
    struct slot* slot;
    gptoss_sampler_t sampler;
    struct srv_output* out;
    size_t appended;       /* prompt tokens appended to the context */
    size_t generated;
    double t_first;
};

struct srv_scheduler {
    gptoss_model_t model;
    gptoss_tokenizer_t tokenizer;
    uint32_t vocabulary_size;
    struct srv_metrics* metrics;
    struct srv_store* store;
    struct slot* slots;
    size_t num_slots, context_length, max_batch;
    float* logits;         /* host copy for logprobs */
    uint64_t clock;

    pthread_mutex_t mu;
    pthread_cond_t work, idle;
    struct srv_request** queue;
    size_t queue_cap, queue_head, queue_count;
    bool running;          /* `current` holds a request */
    struct seq current;
    bool accepting, stop;
    pthread_t thread;
    bool thread_started;
};

/* ---- finishing ---------------------------------------------------------------------- */

static bool client_gone(struct srv_request* req) {
    if (atomic_load(&req->cancel) != 0) return true;
    pthread_mutex_lock(&req->mu);
    const bool gone = req->peer_gone != NULL && req->peer_gone(req);
    pthread_mutex_unlock(&req->mu);
    if (gone) atomic_store(&req->cancel, 1);
    return gone;
}

/* Finishes a request that never ran. */
static void refuse(struct srv_scheduler* s, struct srv_request* req, int status, const char* code, const char* msg) {
    srv_error_set(&req->result.error, status, "server_error", code, NULL, "%s", msg);
    req->result.prompt_tokens = req->num_prompt;
    srv_request_finish(req);
    srv_request_release(req);
}

static void set_running(struct srv_scheduler* s, bool running) {
    pthread_mutex_lock(&s->mu);
    s->running = running;
    if (!running && s->queue_count == 0) pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->mu);
}

/* Ends the current request: closes its output, records the slot's tokens, metrics and the
 * responses store. error_status 0 = success. */
static void finish(struct srv_scheduler* s, int error_status, const char* code, const char* message) {
    struct seq* q = &s->current;
    struct srv_request* req = q->req;
    struct srv_result* res = &req->result;
    srv_output_finish(q->out);
    if (error_status != 0) srv_error_set(&res->error, error_status, "server_error", code, NULL, "%s", message);
    if (res->finish == srv_finish_none) res->finish = srv_finish_length;
    res->completion_tokens = q->generated;
    size_t n = 0;
    if (gptoss_context_get_tokens(q->slot->ctx, q->slot->tokens, s->context_length, &n) != gptoss_status_success) n = 0;
    q->slot->num_tokens = n;
    q->slot->prompt_len = req->num_prompt;
    const double t_end = srv_now();
    srv_metrics_tokens(s->metrics, res->prompt_tokens, res->cached_tokens, q->generated);
    srv_metrics_parse_errors(s->metrics, res->parse_errors);
    if (q->generated > 1 && t_end > q->t_first) srv_metrics_decode_rate(s->metrics, (double) (q->generated - 1) / (t_end - q->t_first));
    if (error_status == 0 && req->params.api == srv_api_responses && req->params.store && s->store != NULL) {
        json_t* output = srv_format_output_items(req);
        srv_store_put(s->store, req->id, json_object_get(req->info, "input"), output);
        json_decref(output);
    }
    srv_request_finish(req);
    srv_output_free(q->out);
    gptoss_sampler_release(q->sampler);
    srv_request_release(req);
    memset(q, 0, sizeof(*q));
    set_running(s, false);
}

static void finish_engine_error(struct srv_scheduler* s, const char* what) {
    char msg[600];
    snprintf(msg, sizeof(msg), "engine error (%s): %s", what, gptoss_last_error());
    fprintf(stderr, "gptoss serve: %s\n", msg);
    finish(s, 500, NULL, msg);
    /* the context's state is uncertain: do not offer it as a cache */
}

/* ---- admission ---------------------------------------------------------------------- */

static size_t common_prefix(const uint32_t* a, size_t na, const uint32_t* b, size_t nb) {
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

static bool make_sampler(const struct srv_params* p, gptoss_sampler_t* out) {
    gptoss_sampler_t smp = NULL;
    if (gptoss_sampler_create(&smp) != gptoss_status_success) return false;
    if (gptoss_sampler_set_temperature(smp, p->temperature) != gptoss_status_success ||
        gptoss_sampler_set_top_p(smp, p->top_p) != gptoss_status_success ||
        gptoss_sampler_set_top_k(smp, p->top_k) != gptoss_status_success ||
        gptoss_sampler_set_presence_penalty(smp, p->presence_penalty) != gptoss_status_success ||
        gptoss_sampler_set_frequency_penalty(smp, p->frequency_penalty) != gptoss_status_success ||
        gptoss_sampler_set_seed(smp, p->seed) != gptoss_status_success) {
        gptoss_sampler_release(smp);
        return false;
    }
    *out = smp;
    return true;
}

static void admit(struct srv_scheduler* s, struct srv_request* req) {
    if (client_gone(req)) {
        const bool shutdown = atomic_load(&req->cancel) == 2;
        refuse(s, req, 503, shutdown ? "server_shutdown" : "cancelled",
               shutdown ? "the server is shutting down" : "the client disconnected");
        return;
    }
    if (srv_now() > req->deadline) {
        refuse(s, req, 503, "timeout", "the request waited in the queue past the server's timeout");
        return;
    }
    /* a slot whose conversation this prompt continues, else the least recently used one */
    struct slot* best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < s->num_slots; i++) {
        struct slot* sl = &s->slots[i];
        const size_t l = common_prefix(sl->tokens, sl->num_tokens, req->prompt, req->num_prompt);
        if (sl->num_tokens > 0 && l + 2 >= sl->prompt_len && (best == NULL || l > best_len)) {
            best = sl;
            best_len = l;
        }
    }
    if (best == NULL) {
        best = &s->slots[0];
        for (size_t i = 1; i < s->num_slots; i++)
            if (s->slots[i].last_used < best->last_used) best = &s->slots[i];
        best_len = common_prefix(best->tokens, best->num_tokens, req->prompt, req->num_prompt);
    }
    struct seq* q = &s->current;
    memset(q, 0, sizeof(*q));
    q->req = req;
    q->slot = best;
    best->last_used = ++s->clock;
    if (!make_sampler(&req->params, &q->sampler) || (q->out = srv_output_create(s->tokenizer, req)) == NULL) {
        gptoss_sampler_release(q->sampler);
        memset(q, 0, sizeof(*q));
        refuse(s, req, 500, NULL, "out of memory");
        return;
    }
    set_running(s, true);
    req->result.prompt_tokens = req->num_prompt;
    /* the cached prefix costs nothing to append; the rest goes in prefill chunks */
    size_t kv = 0;
    if (gptoss_context_reset(best->ctx) != gptoss_status_success ||
        gptoss_context_append_tokens(best->ctx, best_len, req->prompt) != gptoss_status_success ||
        gptoss_context_get_num_kv_tokens(best->ctx, &kv) != gptoss_status_success) {
        best->num_tokens = 0;
        finish_engine_error(s, "appending the prompt");
        return;
    }
    q->appended = best_len;
    size_t cached = kv < best_len ? kv : best_len;
    if (cached == req->num_prompt) cached--; /* the last token runs again for its logits */
    req->result.cached_tokens = cached;
    if (req->num_header > 0) srv_output_feed_header(q->out, req->prompt + req->num_prompt - req->num_header, req->num_header);
}

/* ---- steps -------------------------------------------------------------------------- */

/* One step of the current request: a prefill chunk, or one token. */
static void step(struct srv_scheduler* s) {
    struct seq* q = &s->current;
    struct srv_request* req = q->req;
    if (client_gone(req)) {
        const bool shutdown = atomic_load(&req->cancel) == 2;
        finish(s, 503, shutdown ? "server_shutdown" : "cancelled",
               shutdown ? "the server is shutting down" : "the client disconnected");
        return;
    }
    if (srv_now() > req->deadline) {
        finish(s, 504, "timeout", "the request ran past the server's timeout");
        return;
    }
    const size_t n = req->num_prompt;
    if (q->appended + 1 < n) { /* prefill all but the last prompt token, a chunk per step */
        const size_t left = n - 1 - q->appended;
        const size_t chunk = left < s->max_batch ? left : s->max_batch;
        if (gptoss_context_append_tokens(q->slot->ctx, chunk, req->prompt + q->appended) != gptoss_status_success ||
            gptoss_context_process(q->slot->ctx) != gptoss_status_success) {
            finish_engine_error(s, "prefill");
            return;
        }
        q->appended += chunk;
        return;
    }
    if (q->appended < n) { /* the last prompt token: the first sample runs it */
        if (gptoss_context_append_tokens(q->slot->ctx, n - q->appended, req->prompt + q->appended) != gptoss_status_success) {
            finish_engine_error(s, "prefill");
            return;
        }
        q->appended = n;
    }
    const bool logprobs = req->params.logprobs;
    if (logprobs && gptoss_context_get_logits(q->slot->ctx, s->logits, s->vocabulary_size) != gptoss_status_success) {
        finish_engine_error(s, "logits");
        return;
    }
    uint32_t token = 0;
    size_t got = 0;
    const enum gptoss_status st = gptoss_context_sample(q->slot->ctx, q->sampler, 1, &token, &got);
    if (st == gptoss_status_context_overflow || (st == gptoss_status_success && got == 0)) {
        req->result.finish = srv_finish_length;
        finish(s, 0, NULL, NULL);
        return;
    }
    if (st != gptoss_status_success) {
        finish_engine_error(s, "decode");
        return;
    }
    q->generated++;
    if (q->generated == 1) {
        q->t_first = srv_now();
        srv_metrics_ttft(s->metrics, q->t_first - req->t_arrival);
    }
    if (srv_output_feed(q->out, token, logprobs ? s->logits : NULL, s->vocabulary_size)) {
        finish(s, 0, NULL, NULL);
        return;
    }
    size_t in_context = 0;
    gptoss_context_get_num_tokens(q->slot->ctx, &in_context);
    if (q->generated >= req->params.max_tokens || in_context >= s->context_length) {
        req->result.finish = srv_finish_length;
        finish(s, 0, NULL, NULL);
    }
}

static void* engine_main(void* arg) {
    struct srv_scheduler* s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->running && s->queue_count == 0 && !s->stop) pthread_cond_wait(&s->work, &s->mu);
        if (!s->running && s->queue_count == 0) break; /* stop */
        if (!s->running) {
            struct srv_request* req = s->queue[s->queue_head];
            s->queue_head = (s->queue_head + 1) % s->queue_cap;
            s->queue_count--;
            pthread_mutex_unlock(&s->mu);
            admit(s, req);
            pthread_mutex_lock(&s->mu);
            if (!s->running && s->queue_count == 0) pthread_cond_broadcast(&s->idle);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        step(s);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- public ------------------------------------------------------------------------- */

bool srv_scheduler_create(gptoss_model_t model, const struct srv_scheduler_options* o, struct srv_metrics* metrics,
                          struct srv_store* store, struct srv_scheduler** out, char* why, size_t why_size) {
    struct srv_scheduler* s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(why, why_size, "out of memory");
        return false;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->idle, NULL);
    s->model = model;
    gptoss_model_retain(model);
    s->metrics = metrics;
    s->store = store;
    s->num_slots = o->num_slots;
    s->context_length = o->context_length;
    s->accepting = true;
    s->queue_cap = o->max_queue ? o->max_queue : 1;
    s->queue = calloc(s->queue_cap, sizeof(*s->queue));
    s->slots = calloc(s->num_slots, sizeof(*s->slots));
    if (s->queue == NULL || s->slots == NULL || gptoss_model_get_tokenizer(model, &s->tokenizer) != gptoss_status_success ||
        gptoss_tokenizer_get_num_tokens(s->tokenizer, &s->vocabulary_size) != gptoss_status_success) {
        snprintf(why, why_size, "setting up: %s", gptoss_last_error());
        goto fail;
    }
    s->logits = malloc((size_t) s->vocabulary_size * sizeof(float));
    for (size_t i = 0; i < s->num_slots; i++) {
        struct slot* sl = &s->slots[i];
        if (gptoss_context_create(model, o->context_length, 0, &sl->ctx) != gptoss_status_success) {
            snprintf(why, why_size, "context %zu of %zu tokens: %s", i + 1, o->context_length, gptoss_last_error());
            goto fail;
        }
        sl->tokens = malloc(o->context_length * sizeof(uint32_t));
        if (sl->tokens == NULL || s->logits == NULL) {
            snprintf(why, why_size, "out of memory");
            goto fail;
        }
    }
    gptoss_context_get_max_batch_tokens(s->slots[0].ctx, &s->max_batch);
    if (pthread_create(&s->thread, NULL, engine_main, s) != 0) {
        snprintf(why, why_size, "cannot start the engine thread");
        goto fail;
    }
    s->thread_started = true;
    *out = s;
    return true;
fail:
    srv_scheduler_destroy(s);
    return false;
}

enum srv_submit srv_scheduler_submit(struct srv_scheduler* s, struct srv_request* req) {
    enum srv_submit r = srv_submit_ok;
    pthread_mutex_lock(&s->mu);
    if (!s->accepting) {
        r = srv_submit_stopping;
    } else if (s->queue_count == s->queue_cap) {
        r = srv_submit_full;
    } else {
        srv_request_retain(req);
        s->queue[(s->queue_head + s->queue_count) % s->queue_cap] = req;
        s->queue_count++;
        pthread_cond_signal(&s->work);
    }
    pthread_mutex_unlock(&s->mu);
    return r;
}

void srv_scheduler_counts(struct srv_scheduler* s, size_t* queued, size_t* running) {
    pthread_mutex_lock(&s->mu);
    *queued = s->queue_count;
    *running = s->running ? 1 : 0;
    pthread_mutex_unlock(&s->mu);
}

void srv_scheduler_stop_accepting(struct srv_scheduler* s) {
    pthread_mutex_lock(&s->mu);
    s->accepting = false;
    pthread_mutex_unlock(&s->mu);
}

void srv_scheduler_cancel_all(struct srv_scheduler* s) {
    pthread_mutex_lock(&s->mu);
    s->accepting = false;
    for (size_t i = 0; i < s->queue_count; i++) atomic_store(&s->queue[(s->queue_head + i) % s->queue_cap]->cancel, 2);
    if (s->running) atomic_store(&s->current.req->cancel, 2);
    pthread_mutex_unlock(&s->mu);
}

bool srv_scheduler_wait_idle(struct srv_scheduler* s, double timeout_s) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    if (timeout_s >= 0) {
        const double t = (double) until.tv_sec + 1e-9 * (double) until.tv_nsec + timeout_s;
        until.tv_sec = (time_t) t;
        until.tv_nsec = (long) ((t - (double) until.tv_sec) * 1e9);
    }
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while ((s->running || s->queue_count > 0) && rc == 0) {
        rc = timeout_s < 0 ? pthread_cond_wait(&s->idle, &s->mu) : pthread_cond_timedwait(&s->idle, &s->mu, &until);
    }
    const bool idle = !s->running && s->queue_count == 0;
    pthread_mutex_unlock(&s->mu);
    return idle;
}

void srv_scheduler_destroy(struct srv_scheduler* s) {
    if (s == NULL) return;
    if (s->thread_started) {
        srv_scheduler_cancel_all(s);
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_broadcast(&s->work);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL); /* it finishes what it holds first */
    }
    for (size_t i = 0; i < s->num_slots && s->slots; i++) {
        gptoss_context_release(s->slots[i].ctx);
        free(s->slots[i].tokens);
    }
    free(s->slots);
    free(s->queue);
    free(s->logits);
    gptoss_tokenizer_release(s->tokenizer);
    gptoss_model_release(s->model);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
