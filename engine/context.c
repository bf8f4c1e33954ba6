/* Contexts (engine.h): one sequence with its KV cache, as a batch of one sequence
 * (engine/batch.c): the same forward steps, so a context gives the bits that sequence
 * would get in any batch. What is a context's own: its API (appends that stop at a full
 * context, sampling token by token, the logits of the last token, reset with the prefix
 * cache). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gptoss/error.h>

#include "batch.h"
#include "model.h"

struct gptoss_context {
    atomic_uint_least64_t ref_count;
    struct gptoss_model* model;
    struct gptoss_batch* batch;
    struct gptoss_sequence* seq;
};

static void context_free(struct gptoss_context* c) {
    gptoss_error_keep_begin();
    gptoss_sequence_release(c->seq);
    gptoss_batch_release(c->batch);
    gptoss_model_release(c->model);
    free(c);
    gptoss_error_keep_end();
}

enum gptoss_status gptoss_context_create(gptoss_model_t model, size_t context_length, size_t max_batch_tokens,
                                         gptoss_context_t* context_out) {
    struct gptoss_context_params params;
    gptoss_context_params_init(&params);
    params.context_length = context_length;
    params.max_batch_tokens = max_batch_tokens;
    return gptoss_context_create_with_params(model, &params, context_out);
}

enum gptoss_status gptoss_context_create_with_params(gptoss_model_t model, const struct gptoss_context_params* params,
                                                     gptoss_context_t* context_out) {
    gptoss_clear_error();
    if (model == NULL) return gptoss_fail(gptoss_status_invalid_argument, "model is NULL");
    if (context_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context_out is NULL");
    struct gptoss_context_params p;
    if (params != NULL) p = *params;
    else gptoss_context_params_init(&p);
    p.max_sequences = 1;
    p.kv_budget = 0;
    struct gptoss_context* c = calloc(1, sizeof(*c));
    if (c == NULL) return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate the context");
    atomic_init(&c->ref_count, 1);
    gptoss_model_retain(model);
    c->model = model;
    enum gptoss_status st = gptoss_batch_create(model, &p, &c->batch);
    if (st == gptoss_status_success) st = gptoss_batch_sequence_create(c->batch, 0, &c->seq);
    if (st != gptoss_status_success) {
        context_free(c);
        return st;
    }
    *context_out = c;
    return gptoss_status_success;
}

#define CHECK_CONTEXT(c)                                                                  \
    do {                                                                                  \
        gptoss_clear_error();                                                             \
        if ((c) == NULL) return gptoss_fail(gptoss_status_invalid_argument, "context is NULL"); \
    } while (0)

enum gptoss_status gptoss_context_get_num_tokens(gptoss_context_t c, size_t* num_tokens_out) {
    CHECK_CONTEXT(c);
    if (num_tokens_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "num_tokens_out is NULL");
    *num_tokens_out = c->seq->num_tokens;
    return gptoss_status_success;
}

enum gptoss_status gptoss_context_get_max_tokens(gptoss_context_t c, size_t* max_tokens_out) {
    CHECK_CONTEXT(c);
    if (max_tokens_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "max_tokens_out is NULL");
    *max_tokens_out = c->seq->max_tokens;
    return gptoss_status_success;
}

enum gptoss_status gptoss_context_get_max_batch_tokens(gptoss_context_t c, size_t* max_batch_tokens_out) {
    CHECK_CONTEXT(c);
    if (max_batch_tokens_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "max_batch_tokens_out is NULL");
    *max_batch_tokens_out = gptoss_batch_params(c->batch)->max_batch_tokens;
    return gptoss_status_success;
}

enum gptoss_status gptoss_context_get_tokens(gptoss_context_t c, uint32_t* tokens_out, size_t max_tokens,
                                             size_t* num_tokens_out) {
    CHECK_CONTEXT(c);
    return gptoss_sequence_get_tokens(c->seq, tokens_out, max_tokens, num_tokens_out);
}

/* Appends what fits; context_overflow names how many did. */
enum gptoss_status gptoss_context_append_tokens(gptoss_context_t c, size_t num_tokens, const uint32_t* tokens) {
    CHECK_CONTEXT(c);
    if (tokens == NULL && num_tokens != 0) return gptoss_fail(gptoss_status_invalid_argument, "tokens is NULL");
    const uint32_t V = c->model->vocabulary_size;
    for (size_t i = 0; i < num_tokens; i++) {
        if (tokens[i] >= V) {
            return gptoss_fail(gptoss_status_invalid_argument, "token %zu has id %u, not below the vocabulary size %u",
                               i, tokens[i], V);
        }
    }
    struct gptoss_sequence* s = c->seq;
    const size_t room = s->max_tokens - s->num_tokens, n = num_tokens < room ? num_tokens : room;
    GPTOSS_TRY(gptoss_sequence_append_tokens(s, n, tokens));
    if (n < num_tokens) {
        return gptoss_fail(gptoss_status_context_overflow, "context is full (%zu tokens): %zu of %zu tokens appended",
                           s->max_tokens, n, num_tokens);
    }
    return gptoss_status_success;
}

enum gptoss_status gptoss_context_append_chars(gptoss_context_t c, const char* text, size_t text_length,
                                               size_t* num_tokens_out) {
    CHECK_CONTEXT(c);
    if (text == NULL && text_length != 0) return gptoss_fail(gptoss_status_invalid_argument, "text is NULL");
    if (text_length == 0) {
        if (num_tokens_out != NULL) *num_tokens_out = 0;
        return gptoss_status_success;
    }
    /* every token covers at least one byte */
    uint32_t* ids = malloc(text_length * sizeof(uint32_t));
    if (ids == NULL) return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate %zu token ids", text_length);
    size_t n = 0;
    enum gptoss_status st = gptoss_tokenizer_encode(c->model->tokenizer, text, text_length, ids, text_length, &n);
    if (st != gptoss_status_success) {
        free(ids);
        return st;
    }
    const size_t before = c->seq->num_tokens;
    st = gptoss_context_append_tokens(c, n, ids);
    free(ids);
    if (st == gptoss_status_success || st == gptoss_status_context_overflow) {
        if (num_tokens_out != NULL) *num_tokens_out = c->seq->num_tokens - before;
    }
    return st;
}

enum gptoss_status gptoss_context_reset(gptoss_context_t c) {
    CHECK_CONTEXT(c);
    gptoss_batch_sequence_reset(c->seq);
    return gptoss_status_success;
}

enum gptoss_status gptoss_context_get_num_kv_tokens(gptoss_context_t c, size_t* num_kv_tokens_out) {
    CHECK_CONTEXT(c);
    return gptoss_sequence_get_num_kv_tokens(c->seq, num_kv_tokens_out);
}

enum gptoss_status gptoss_context_process(gptoss_context_t c) {
    CHECK_CONTEXT(c);
    return gptoss_batch_compute(c->batch, c->seq, 0);
}

enum gptoss_status gptoss_context_get_logits(gptoss_context_t c, float* logits_out, size_t capacity) {
    CHECK_CONTEXT(c);
    if (logits_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "logits_out is NULL");
    const uint32_t V = c->model->vocabulary_size;
    if (capacity < V) {
        return gptoss_fail(gptoss_status_invalid_argument, "capacity %zu is below the vocabulary size %u", capacity, V);
    }
    if (c->seq->num_tokens == 0) return gptoss_fail(gptoss_status_invalid_state, "the context has no tokens");
    GPTOSS_TRY(gptoss_batch_compute(c->batch, c->seq, 1));
    return gptoss_batch_copy_logits(c->batch, c->seq, logits_out);
}

enum gptoss_status gptoss_context_sample(gptoss_context_t c, gptoss_sampler_t sampler, size_t max_tokens,
                                         uint32_t* tokens_out, size_t* num_tokens_out) {
    CHECK_CONTEXT(c);
    if (tokens_out == NULL && max_tokens != 0) return gptoss_fail(gptoss_status_invalid_argument, "tokens_out is NULL");
    if (num_tokens_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "num_tokens_out is NULL");
    struct gptoss_sequence* s = c->seq;
    if (s->num_tokens == 0) return gptoss_fail(gptoss_status_invalid_state, "the context has no tokens to continue from");
    size_t produced = 0;
    enum gptoss_status st = gptoss_sequence_generate(s, sampler, max_tokens);
    struct gptoss_batch_token out[1];
    while (st == gptoss_status_success && produced < max_tokens) {
        if (s->num_tokens >= s->max_tokens) {
            st = gptoss_fail(gptoss_status_context_overflow, "context is full (%zu tokens) after %zu sampled tokens",
                             s->max_tokens, produced);
            break;
        }
        size_t n = 0;
        st = gptoss_batch_step(c->batch, out, 1, &n);
        if (st == gptoss_status_success && n == 1) tokens_out[produced++] = out[0].token;
    }
    gptoss_error_keep_begin();
    gptoss_sequence_generate(s, NULL, 0);
    gptoss_error_keep_end();
    *num_tokens_out = produced;
    /* "stops early on context_overflow": the tokens sampled so far are reported */
    if (st == gptoss_status_context_overflow && produced > 0) {
        gptoss_clear_error();
        return gptoss_status_success;
    }
    return st;
}

enum gptoss_status gptoss_context_print_profile(gptoss_context_t c, FILE* f) {
    CHECK_CONTEXT(c);
    return gptoss_batch_print_profile(c->batch, f);
}

enum gptoss_status gptoss_context_reset_profile(gptoss_context_t c) {
    CHECK_CONTEXT(c);
    return gptoss_batch_reset_profile(c->batch);
}

enum gptoss_status gptoss_context_retain(gptoss_context_t c) {
    CHECK_CONTEXT(c);
    atomic_fetch_add_explicit(&c->ref_count, 1, memory_order_relaxed);
    return gptoss_status_success;
}

enum gptoss_status gptoss_context_release(gptoss_context_t c) {
    if (c == NULL) return gptoss_status_success;
    if (atomic_fetch_sub_explicit(&c->ref_count, 1, memory_order_acq_rel) == 1) context_free(c);
    return gptoss_status_success;
}
