/* Internal: batches and sequences (engine/batch.c), as the context API (engine/context.c)
 * uses them: a context is a batch of one sequence. */
#ifndef GPTOSS_ENGINE_BATCH_H
#define GPTOSS_ENGINE_BATCH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <gptoss/engine.h>

#include "kv.h"

/* Returns the status of expr unless it is success (as src/internal/error.h). */
#define GPTOSS_TRY(expr)                                      \
    do {                                                      \
        const enum gptoss_status gptoss_try_status_ = (expr); \
        if (gptoss_try_status_ != gptoss_status_success) {    \
            return gptoss_try_status_;                        \
        }                                                     \
    } while (0)

struct gptoss_sequence {
    atomic_uint_least64_t ref_count;
    struct gptoss_batch* batch;
    uint32_t slot;            /* its row of the block tables, its seq_id in the kernels */
    uint64_t order;           /* creation order: prompt chunks are served first come, first served */
    size_t max_tokens;
    size_t num_tokens;
    uint32_t* tokens;         /* host [max_tokens] */
    uint8_t* drawn;           /* host [max_tokens]: 1 where the batch drew the token (batch invariance:
                               * computed in row order one), 0 where it was appended (order many) */
    struct gptoss_kv_seq kv;
    int looked_up;            /* the prefix cache was consulted since the sequence last held nothing */
    /* requests */
    struct gptoss_sampler* sampler; /* retained; NULL = greedy */
    size_t draws_left;        /* tokens still to draw (gptoss_sequence_generate) */
    int want_logits;          /* context API: the logits of the last token, without a draw */
    /* kernels sampling (params.sampling) with penalties: the counts of its slot (batch.c)
     * are those of the ids of tokens[0, counted); counts_stale: a counted token was
     * replaced, or the slot was another sequence's (count them all again) */
    size_t counted;
    int counts_stale;
    /* the logits row of the last step it took part in */
    uint64_t logits_step;     /* the step that computed it (0: none) */
    uint32_t logits_row;
    size_t logits_pos;        /* the position they are the logits of */
    int drew;                 /* that step drew a token from them */
};

/* Creates a sequence (gptoss_sequence_create without the argument checks of the public
 * call). */
enum gptoss_status gptoss_batch_sequence_create(struct gptoss_batch* batch, size_t max_tokens,
                                                struct gptoss_sequence** sequence_out);
/* Runs steps until the sequence's tokens are all computed, with the logits of its last
 * token when want_logits (kept in its logits row; the token runs again when its logits are
 * not the current ones). The other sequences of the batch take part as usual. */
enum gptoss_status gptoss_batch_compute(struct gptoss_batch* batch, struct gptoss_sequence* seq, int want_logits);
/* Copies the logits row of the sequence's last step to the host. */
enum gptoss_status gptoss_batch_copy_logits(struct gptoss_batch* batch, const struct gptoss_sequence* seq,
                                            float* logits_out);
/* Lab hook (bench/lab/step_replay.c; not API): launches the recorded decode graph of n rows
 * `times` times back to back, then waits for the backend. Each replay reads the last step's
 * rows and block tables and writes the same K/V slots again, so nothing a sequence holds
 * changes; the time is the device's share of a decode step without the host's work between
 * steps. invalid_state when no graph of n rows is recorded (graphs off, or a backend
 * without them). */
enum gptoss_status gptoss_batch_lab_replay(struct gptoss_batch* batch, uint32_t n, uint32_t times);
/* Forgets the sequence's tokens; its blocks go to the prefix cache. */
void gptoss_batch_sequence_reset(struct gptoss_sequence* seq);
/* Resolved options (defaults filled in) of the batch. */
const struct gptoss_context_params* gptoss_batch_params(const struct gptoss_batch* batch);
/* The prefix cache lookup of a sequence that holds nothing (no-op otherwise). */
enum gptoss_status gptoss_batch_sequence_lookup(struct gptoss_sequence* seq);

#endif
