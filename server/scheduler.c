/* The engine thread: it alone touches the batch. Requests wait in a bounded FIFO; the
 * thread admits them into one batch (engine.h: gptoss_batch_*) while it holds fewer than
 * --parallel sequences and their KV blocks fit the budget, and runs all admitted requests
 * together, one gptoss_batch_step at a time: each step takes the next token of every
 * decoding request and a chunk of any new prompt (so long prompts are prefilled in chunks
 * while the others keep decoding), and draws each request's next token with its own
 * sampler and seed. Between steps it checks every request: a client that left, a passed
 * deadline or a shutdown finishes it, and a finished request's sequence is released at once
 * (its blocks go back to the budget).
 *
 * Admission: a request reserves the KV blocks of its prompt + max_tokens
 * (gptoss_sequence_create) for each of its n choices (a sequence each, all admitted at once,
 * choice i drawing with seed + i); one that does not fit waits at the head of the queue until
 * running requests release theirs (never evicting anything), or is refused (400
 * kv_budget_exceeded) when it could not fit even alone. A request ends when its last choice
 * does; the first error of a choice is the request's, and its other choices are cancelled.
 *
 * Prompt cache: the batch's KV blocks keep a released sequence's K/V until the memory is
 * needed, and a new sequence takes the longest cached prefix of its prompt, to the token
 * (gptoss_sequence_get_num_kv_tokens), so a conversation's next turn or a shared system
 * prompt is not computed again.
 *
 * A step that fails (a backend error) fails the requests in it (500, with the message); the
 * batch and the server go on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

/* A running choice of a request (a request of n choices runs n of them). */
struct seq {
    struct srv_request* req;   /* one reference per seq */
    uint32_t choice;
    gptoss_sequence_t sq;
    gptoss_sampler_t sampler;
    struct srv_output* out;
    size_t generated;
    double t_first;
};

struct srv_scheduler {
    gptoss_model_t model;
    gptoss_tokenizer_t tokenizer;
    uint32_t vocabulary_size;
    struct srv_metrics* metrics;
    struct srv_store* store;
    gptoss_batch_t batch;
    size_t context_length, parallel, kv_blocks;
    struct seq* seqs;      /* [parallel]: req NULL = free */
    struct gptoss_batch_token* drawn; /* [parallel] */
    float* logits;         /* host copy for logprobs */
    struct srv_json_vocab* json_vocab; /* JSON mode's token table: made at the first such request */
    uint32_t* json_words;  /* a mask being made (the sampler copies it) */

    pthread_mutex_t mu;
    pthread_cond_t work, idle;
    struct srv_request** queue;
    size_t queue_cap, queue_head, queue_count;
    size_t num_running;    /* seqs holding a request */
    struct gptoss_batch_info info; /* the batch's numbers after the last admission or step */
    gptoss_backend_t backend;      /* for its memory (may be NULL) */
    uint64_t memory[2];            /* used, total bytes; total 0 = not known */
    double memory_at;              /* when (srv_now) the engine thread last looked */
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
static void refuse(struct srv_request* req, int status, const char* type, const char* code, const char* msg) {
    srv_error_set(&req->result.error, status, type, code, NULL, "%s", msg);
    req->result.prompt_tokens = req->num_prompt;
    srv_request_finish(req);
    srv_request_release(req);
}

/* Ends running request q: closes its output, releases its sequence (its KV blocks go back
 * at once), metrics and the responses store. error_status 0 = success. */
static void finish(struct srv_scheduler* s, struct seq* q, int error_status, const char* code, const char* message) {
    struct srv_request* req = q->req;
    struct srv_result* res = srv_result_of(req, q->choice);
    if (q->out != NULL) srv_output_finish(q->out);
    if (error_status != 0) {
        /* the request's first error is its answer; its other choices stop at the next check */
        if (req->result.error.status == 0) {
            srv_error_set(&req->result.error, error_status, "server_error", code, NULL, "%s", message);
        }
        if (req->params.n > 1) atomic_store(&req->cancel, 1);
    }
    if (res->finish == srv_finish_none) res->finish = srv_finish_length;
    res->completion_tokens = q->generated;
    gptoss_sequence_release(q->sq);
    pthread_mutex_lock(&s->mu);
    s->num_running--;
    q->req = NULL; /* under the lock: srv_scheduler_cancel_all reads it (req may be freed below) */
    pthread_mutex_unlock(&s->mu);
    const double t_end = srv_now();
    srv_metrics_tokens(s->metrics, q->choice == 0 ? res->prompt_tokens : 0, q->choice == 0 ? res->cached_tokens : 0,
                       q->generated);
    srv_metrics_parse_errors(s->metrics, res->parse_errors);
    if (q->generated > 1 && t_end > q->t_first) srv_metrics_decode_rate(s->metrics, (double) (q->generated - 1) / (t_end - q->t_first));
    if (error_status == 0 && req->params.api == srv_api_responses && req->params.store && s->store != NULL) {
        json_t* output = srv_format_output_items(req);
        srv_store_put(s->store, req->id, json_object_get(req->info, "input"), output);
        json_decref(output);
    }
    srv_request_finish_choice(req, q->choice);
    srv_output_free(q->out);
    gptoss_sampler_release(q->sampler);
    srv_request_release(req);
    memset(q, 0, sizeof(*q));
}

static void finish_engine_error(struct srv_scheduler* s, struct seq* q, const char* what, const char* error) {
    char msg[600];
    snprintf(msg, sizeof(msg), "engine error (%s): %s", what, error);
    fprintf(stderr, "gptoss serve: %s\n", msg);
    finish(s, q, 500, NULL, msg);
}

/* JSON mode or a schema: the tokens q's next draw may take, on its sampler (the whole
 * vocabulary where nothing is constrained). False after finishing q (out of memory). */
static bool constrain(struct srv_scheduler* s, struct seq* q) {
    if (!q->req->params.json_object && q->req->params.schema == NULL) return true;
    if (s->json_vocab == NULL) {
        s->json_vocab = srv_json_vocab_create(s->tokenizer, s->vocabulary_size);
        if (s->json_vocab != NULL) s->json_words = malloc(s->json_vocab->num_words * sizeof(uint32_t));
        if (s->json_vocab == NULL || s->json_words == NULL) {
            srv_json_vocab_free(s->json_vocab);
            s->json_vocab = NULL;
            finish(s, q, 500, NULL, "out of memory (the JSON mode's token table)");
            return false;
        }
    }
    const size_t n = srv_output_json_mask(q->out, s->json_vocab, s->json_words);
    if (n == SIZE_MAX) {
        finish(s, q, 500, NULL, "out of memory (the JSON schema's allowed tokens)");
        return false;
    }
    const enum gptoss_status st = n == 0 ? gptoss_sampler_set_allowed_tokens(q->sampler, 0, NULL)
                                         : gptoss_sampler_set_allowed_tokens(q->sampler, s->json_vocab->num_words,
                                                                             s->json_words);
    if (st != gptoss_status_success) {
        finish_engine_error(s, q, "the JSON mode's mask", gptoss_last_error());
        return false;
    }
    return true;
}

/* ---- admission ---------------------------------------------------------------------- */

static bool make_sampler(const struct srv_params* p, uint32_t choice, gptoss_sampler_t* out) {
    gptoss_sampler_t smp = NULL;
    if (gptoss_sampler_create(&smp) != gptoss_status_success) return false;
    if (gptoss_sampler_set_temperature(smp, p->temperature) != gptoss_status_success ||
        gptoss_sampler_set_top_p(smp, p->top_p) != gptoss_status_success ||
        gptoss_sampler_set_top_k(smp, p->top_k) != gptoss_status_success ||
        gptoss_sampler_set_presence_penalty(smp, p->presence_penalty) != gptoss_status_success ||
        gptoss_sampler_set_frequency_penalty(smp, p->frequency_penalty) != gptoss_status_success ||
        gptoss_sampler_set_seed(smp, p->seed + choice) != gptoss_status_success ||
        gptoss_sampler_set_logit_bias(smp, p->num_bias, p->bias_ids, p->bias_values) != gptoss_status_success) {
        gptoss_sampler_release(smp);
        return false;
    }
    *out = smp;
    return true;
}

enum admit_result {
    admit_done = 0, /* running, or finished (refused, failed) */
    admit_wait = 1, /* its KV blocks do not fit beside the running requests': it stays queued */
};

static enum admit_result admit(struct srv_scheduler* s, struct srv_request* req) {
    if (client_gone(req)) {
        const bool shutdown = atomic_load(&req->cancel) == 2;
        refuse(req, 503, "server_error", shutdown ? "server_shutdown" : "cancelled",
               shutdown ? "the server is shutting down" : "the client disconnected");
        return admit_done;
    }
    if (srv_now() > req->deadline) {
        refuse(req, 503, "server_error", "timeout", "the request waited in the queue past the server's timeout");
        return admit_done;
    }
    const uint32_t n = req->params.n;
    if (n > s->parallel) {
        char msg[200];
        snprintf(msg, sizeof(msg), "n: %u choices run at once, and the server runs at most %zu sequences (--parallel)",
                 n, s->parallel);
        refuse(req, 400, "invalid_request_error", "invalid_value", msg);
        return admit_done;
    }
    const size_t max_tokens = req->num_prompt + req->params.max_tokens; /* <= context_length (api.c) */
    size_t blocks = 0;
    gptoss_batch_get_sequence_blocks(s->batch, max_tokens, &blocks);
    if (blocks * n > s->kv_blocks) {
        char msg[300];
        snprintf(msg, sizeof(msg),
                 "the prompt (%zu tokens) and max_tokens (%zu) need %zu KV blocks%s; the server's KV budget "
                 "(--kv-budget) holds %zu", req->num_prompt, req->params.max_tokens, blocks * n,
                 n > 1 ? " for its n choices" : "", s->kv_blocks);
        refuse(req, 400, "invalid_request_error", "kv_budget_exceeded", msg);
        return admit_done;
    }
    size_t free_slots = 0;
    for (size_t i = 0; i < s->parallel; i++) free_slots += s->seqs[i].req == NULL;
    if (free_slots < n) return admit_wait;
    /* every choice's sequence first: all run, or the request waits (or fails) whole */
    gptoss_sequence_t sq[SRV_MAX_CHOICES] = {0};
    for (uint32_t c = 0; c < n; c++) {
        const enum gptoss_status st = gptoss_sequence_create(s->batch, max_tokens, &sq[c]);
        if (st == gptoss_status_success) continue;
        char msg[600];
        snprintf(msg, sizeof(msg), "engine error (admission): %s", gptoss_last_error());
        for (uint32_t d = 0; d < c; d++) gptoss_sequence_release(sq[d]);
        if (st == gptoss_status_insufficient_resources) return admit_wait;
        refuse(req, 500, "server_error", NULL, msg);
        return admit_done;
    }
    struct seq* qs[SRV_MAX_CHOICES] = {0};
    pthread_mutex_lock(&s->mu);
    for (uint32_t c = 0, i = 0; c < n; c++) {
        while (s->seqs[i].req != NULL) i++;
        qs[c] = &s->seqs[i];
        memset(qs[c], 0, sizeof(*qs[c]));
        qs[c]->sq = sq[c];
        qs[c]->choice = c;
        qs[c]->req = req;
        if (c > 0) srv_request_retain(req); /* the queue's reference is the first choice's */
        s->num_running++;
    }
    pthread_mutex_unlock(&s->mu);
    req->result.prompt_tokens = req->num_prompt;
    for (uint32_t c = 0; c < n; c++) {
        struct seq* q = qs[c];
        if (!make_sampler(&req->params, c, &q->sampler) || (q->out = srv_output_create(s->tokenizer, req, c)) == NULL) {
            finish(s, q, 500, NULL, "out of memory");
            continue;
        }
        /* the cached prefix costs nothing; the rest is prefilled by the steps, in chunks */
        size_t kv = 0;
        if (gptoss_sequence_append_tokens(q->sq, req->num_prompt, req->prompt) != gptoss_status_success ||
            gptoss_sequence_get_num_kv_tokens(q->sq, &kv) != gptoss_status_success ||
            gptoss_sequence_generate(q->sq, q->sampler, req->params.max_tokens) != gptoss_status_success) {
            finish_engine_error(s, q, "appending the prompt", gptoss_last_error());
            continue;
        }
        if (c == 0) {
            size_t cached = kv < req->num_prompt ? kv : req->num_prompt;
            if (cached == req->num_prompt) cached--; /* the last token runs again for its logits */
            req->result.cached_tokens = cached;
        }
        if (req->num_header > 0) srv_output_feed_header(q->out, req->prompt + req->num_prompt - req->num_header, req->num_header);
        constrain(s, q); /* before the step that draws the first token */
    }
    return admit_done;
}

/* ---- steps -------------------------------------------------------------------------- */

/* Finishes the running requests whose client left, whose deadline passed, or that the
 * shutdown cancelled. */
static void check_running(struct srv_scheduler* s) {
    const double now = srv_now();
    for (size_t i = 0; i < s->parallel; i++) {
        struct seq* q = &s->seqs[i];
        if (q->req == NULL) continue;
        if (client_gone(q->req)) {
            const bool shutdown = atomic_load(&q->req->cancel) == 2;
            finish(s, q, 503, shutdown ? "server_shutdown" : "cancelled",
                   shutdown ? "the server is shutting down" : "the client disconnected");
        } else if (now > q->req->deadline) {
            finish(s, q, 504, "timeout", "the request ran past the server's timeout");
        }
    }
}

static struct seq* seq_of(struct srv_scheduler* s, gptoss_sequence_t sq) {
    for (size_t i = 0; i < s->parallel; i++) {
        if (s->seqs[i].req != NULL && s->seqs[i].sq == sq) return &s->seqs[i];
    }
    return NULL;
}

/* A drawn token of request q. */
static void take_token(struct srv_scheduler* s, struct seq* q, uint32_t token) {
    struct srv_request* req = q->req;
    const bool logprobs = req->params.logprobs;
    if (logprobs && gptoss_sequence_get_logits(q->sq, s->logits, s->vocabulary_size) != gptoss_status_success) {
        finish_engine_error(s, q, "logits", gptoss_last_error());
        return;
    }
    q->generated++;
    if (q->generated == 1) {
        q->t_first = srv_now();
        srv_metrics_ttft(s->metrics, q->t_first - req->t_arrival);
    }
    if (srv_output_feed(q->out, token, logprobs ? s->logits : NULL, s->vocabulary_size)) {
        finish(s, q, 0, NULL, NULL);
        return;
    }
    if (q->generated >= req->params.max_tokens) { /* the sequence is full then, too */
        srv_result_of(req, q->choice)->finish = srv_finish_length;
        finish(s, q, 0, NULL, NULL);
        return;
    }
    constrain(s, q);
}

/* One forward step of all running requests. */
static void step(struct srv_scheduler* s) {
    size_t n = 0;
    const enum gptoss_status st = gptoss_batch_step(s->batch, s->drawn, s->parallel, &n);
    char error[520] = "";
    if (st != gptoss_status_success) {
        snprintf(error, sizeof(error), "%s", gptoss_last_error());
        if (n == 0) { /* no request was in it (nothing can be retried): fail them all rather than spin */
            for (size_t i = 0; i < s->parallel; i++) {
                if (s->seqs[i].req != NULL) finish_engine_error(s, &s->seqs[i], "step", error);
            }
            return;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct seq* q = seq_of(s, s->drawn[i].sequence);
        if (q == NULL) continue;
        if (s->drawn[i].token == UINT32_MAX) finish_engine_error(s, q, "step", error);
        else take_token(s, q, s->drawn[i].token);
    }
}

static void* engine_main(void* arg) {
    struct srv_scheduler* s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->num_running == 0 && s->queue_count == 0 && !s->stop) pthread_cond_wait(&s->work, &s->mu);
        if (s->num_running == 0 && s->queue_count == 0) break; /* stop */
        /* new requests join between steps, first come first served */
        while (s->queue_count > 0 && s->num_running < s->parallel) {
            struct srv_request* req = s->queue[s->queue_head];
            pthread_mutex_unlock(&s->mu);
            const enum admit_result r = admit(s, req);
            pthread_mutex_lock(&s->mu);
            if (r == admit_wait) break;
            s->queue_head = (s->queue_head + 1) % s->queue_cap;
            s->queue_count--;
        }
        const bool any = s->num_running > 0;
        pthread_mutex_unlock(&s->mu);
        if (any) {
            check_running(s);
            step(s);
        }
        struct gptoss_batch_info info;
        const bool got = gptoss_batch_get_info(s->batch, &info) == gptoss_status_success;
        uint64_t mem[2] = {0, 0};
        const double now = srv_now();
        const bool look = s->backend != NULL && now - s->memory_at >= 1.0 &&
                          gptoss_backend_get_memory_info(s->backend, &mem[0], &mem[1]) == gptoss_status_success;
        pthread_mutex_lock(&s->mu);
        if (got) s->info = info;
        if (look) {
            s->memory[0] = mem[0];
            s->memory[1] = mem[1];
            s->memory_at = now;
        }
        if (s->num_running == 0 && s->queue_count == 0) pthread_cond_broadcast(&s->idle);
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
    s->parallel = o->parallel;
    s->context_length = o->context_length;
    s->accepting = true;
    s->queue_cap = o->max_queue ? o->max_queue : 1;
    s->queue = calloc(s->queue_cap, sizeof(*s->queue));
    s->seqs = calloc(s->parallel, sizeof(*s->seqs));
    s->drawn = calloc(s->parallel, sizeof(*s->drawn));
    if (s->queue == NULL || s->seqs == NULL || s->drawn == NULL ||
        gptoss_model_get_tokenizer(model, &s->tokenizer) != gptoss_status_success ||
        gptoss_tokenizer_get_num_tokens(s->tokenizer, &s->vocabulary_size) != gptoss_status_success) {
        snprintf(why, why_size, "setting up: %s", gptoss_last_error());
        goto fail;
    }
    s->logits = malloc((size_t) s->vocabulary_size * sizeof(float));
    if (s->logits == NULL) {
        snprintf(why, why_size, "out of memory");
        goto fail;
    }
    struct gptoss_context_params p;
    gptoss_context_params_init(&p);
    p.context_length = o->context_length;
    p.max_sequences = (uint32_t) o->parallel;
    p.kv_budget = o->kv_budget;
    p.batch_invariant = o->batch_invariant;
    struct gptoss_batch_info info;
    if (gptoss_batch_create(model, &p, &s->batch) != gptoss_status_success ||
        gptoss_batch_get_info(s->batch, &info) != gptoss_status_success) {
        snprintf(why, why_size, "the batch (--parallel %zu, %zu tokens each): %s", o->parallel, o->context_length,
                 gptoss_last_error());
        goto fail;
    }
    s->kv_blocks = info.num_blocks;
    s->info = info;
    s->backend = o->backend;
    if (s->backend != NULL && gptoss_backend_get_memory_info(s->backend, &s->memory[0], &s->memory[1]) == gptoss_status_success) {
        s->memory_at = srv_now();
    }
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

void srv_scheduler_counts(struct srv_scheduler* s, size_t* queued, size_t* running, struct gptoss_batch_info* info) {
    pthread_mutex_lock(&s->mu);
    *queued = s->queue_count;
    *running = s->num_running;
    *info = s->info;
    pthread_mutex_unlock(&s->mu);
}

bool srv_scheduler_memory(struct srv_scheduler* s, uint64_t* used_bytes, uint64_t* total_bytes) {
    pthread_mutex_lock(&s->mu);
    *used_bytes = s->memory[0];
    *total_bytes = s->memory[1];
    pthread_mutex_unlock(&s->mu);
    return *total_bytes != 0;
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
    for (size_t i = 0; i < s->parallel; i++) {
        if (s->seqs[i].req != NULL) atomic_store(&s->seqs[i].req->cancel, 2);
    }
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
    while ((s->num_running > 0 || s->queue_count > 0) && rc == 0) {
        rc = timeout_s < 0 ? pthread_cond_wait(&s->idle, &s->mu) : pthread_cond_timedwait(&s->idle, &s->mu, &until);
    }
    const bool idle = s->num_running == 0 && s->queue_count == 0;
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
    gptoss_batch_release(s->batch);
    free(s->seqs);
    free(s->drawn);
    free(s->queue);
    free(s->logits);
    srv_json_vocab_free(s->json_vocab);
    free(s->json_words);
    gptoss_tokenizer_release(s->tokenizer);
    gptoss_model_release(s->model);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
