/* Internal: the forward plan (engine/plan.c). A plan is the gpt-oss forward pass of one
 * step shape, n token rows (of any sequences of the batch) of which the last o produce
 * logits, as the list of its kernel calls: a kernel id and its arguments struct
 * (<gptoss/kernel-args.h>). It is built once per shape, with every decision made then:
 * fused kernels or their parts, the MoE path of each layer's rows, which RMSNorm a fused
 * call already computed. What changes between steps (the rows' token ids, positions and
 * sequences, the block tables) is in device buffers the step fills first: a plan's
 * arguments depend on its shape only, so a recorded graph of it can be replayed. One
 * executor runs a plan directly, profiled, or records it into a graph; it formats nothing
 * unless a call fails. The batch (engine/batch.c) owns the buffers and a few plans. */
#ifndef GPTOSS_ENGINE_PLAN_H
#define GPTOSS_ENGINE_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <gptoss/kernel-args.h>

#include "kv.h"
#include "model.h"

/* The context's buffers the forward pass reads and writes (backend memory; sizes in
 * engine/context.c). */
struct gptoss_forward_buffers {
    const struct gptoss_kv_pool* kv; /* the paged KV cache (kv.h) */
    uint32_t* batch_tokens;   /* [B] token ids of the rows */
    uint32_t* positions;      /* [B] their positions */
    uint32_t* seq_ids;        /* [B] their sequences (slots < S) */
    uint32_t* tables[2];      /* [S][table_stride] per group (kv.h) */
    float *residual, *norm;   /* [B][H] */
    float* qkv;               /* [B][QKV] */
    float* attn;              /* [B][Hq*D] */
    float* gate;              /* [B][E] */
    uint32_t* expert_ids;     /* [B][k] */
    float* expert_scores;     /* [B][k] */
    uint32_t* expert_offsets; /* [E+1] */
    uint32_t* intra;          /* [B][k] */
    float* moe_input;         /* [B*k][H] */
    float* swiglu;            /* [B*k][I] */
    float* moe_output;        /* [B*k][H] */
    float* logits;            /* [S][V] */
    uint32_t* argmax;         /* [S] */
};

/* What a plan is built from: the model, the buffers and the batch's choices. */
struct gptoss_plan_setup {
    const struct gptoss_model* model;
    const struct gptoss_forward_buffers* buffers;
    uint32_t max_seqs;           /* S: rows of the tables */
    uint32_t table_stride;       /* entries per table row */
    uint32_t moe_dense_min_rows; /* rows from which the expert-grouped MoE kernels run */
    int fused_ops;
    /* plans built by gptoss_plan_build_kinds (batch invariance): the MoE of prompt rows
     * (row order many) on the expert-grouped kernels (CUDA), or on the per-token ones (the
     * CPU, where both give the same bits) */
    int moe_dense_many;
    /* plans of gptoss_plan_build_kinds: the row order of the drawn rows' matmuls and MoE (and
     * of the unembedding): one (zero means one too) or many */
    enum gptoss_row_order drawn_order;
};

/* Batch-invariant plans: a run of the expert-grouped MoE arithmetic (setup->moe_dense_many)
 * of up to this many rows takes the per-pair kernels in row order many (the same bits on
 * CUDA, kernels.h), more rows the grouped ones. */
#define GPTOSS_PLAN_MOE_PAIRS_MANY_MAX_ROWS 4

struct gptoss_plan_call {
    enum gptoss_kernel kernel;
    enum gptoss_row_order order; /* set on the backend before the call (kernels.h) */
    uint32_t row0;               /* the step's row its rows start at (calls over rows of the step) */
    uint32_t layer;   /* for messages; UINT32_MAX outside the layers */
    const char* what; /* for messages: "qkv", "moe accumulate + next rmsnorm", ... */
    union gptoss_kernel_args args;
};

/* The rows of a step by kind, in this order (gptoss_plan_build_kinds): prompt rows and
 * drawn rows without logits, then prompt rows and drawn rows with logits (the last o). */
enum { GPTOSS_PLAN_KINDS = 4 };
/* A run of rows computed in one row order. */
struct gptoss_plan_segment {
    uint32_t start, len;
    enum gptoss_row_order order;
};

struct gptoss_plan {
    uint32_t n, o;   /* the shape; n = 0: no plan built */
    uint32_t num_calls, capacity;
    struct gptoss_plan_call* calls;
    const struct gptoss_forward_buffers* buffers; /* what its calls read and write */
    int kinds_set;                     /* built by gptoss_plan_build_kinds */
    enum gptoss_row_order drawn_order; /* its drawn rows' order (setup->drawn_order) */
    uint32_t kinds[GPTOSS_PLAN_KINDS]; /* its rows per kind (0 otherwise) */
    uint32_t num_segments;
    struct gptoss_plan_segment segments[GPTOSS_PLAN_KINDS]; /* rows 0..n-1, adjacent orders differ */
    /* the prompt rows' attention runs (gptoss_plan_build_kinds): runs[2 i] first row, runs[2 i
     * + 1] rows; capacity: runs_capacity runs (allocated by the caller) */
    uint32_t num_runs, runs_capacity;
    uint32_t* runs;
};

/* Calls of the largest plan of a model with num_layers layers (the capacity to allocate),
 * with at most max_runs attention runs of prompt rows (gptoss_plan_build_kinds; 0 for
 * gptoss_plan_build). */
uint32_t gptoss_plan_max_calls(uint32_t num_layers);
uint32_t gptoss_plan_max_calls_runs(uint32_t num_layers, uint32_t max_runs);
/* Builds the plan of n rows (1 <= n <= the buffers' B) of which the last o (<= S, <= n)
 * produce logits (rows 0..o-1 of logits and argmax) into plan (calls allocated by the
 * caller with gptoss_plan_max_calls entries). */
void gptoss_plan_build(struct gptoss_plan* plan, const struct gptoss_plan_setup* setup, uint32_t n, uint32_t o);
/* The same for a batch-invariant step (engine.h, batch_invariant): kinds[0..3] rows of
 * prompt tokens (row order many) and of drawn tokens (row order setup->drawn_order: one, or
 * many) without logits, then
 * the same two with logits; n = their sum, o = kinds[2] + kinds[3]. Every kernel call whose
 * sums depend on the row order (kernels.h, gptoss_backend_set_row_order) runs once per run
 * of rows of one order, in that order; the MoE of a prompt run on the expert-grouped
 * kernels (setup->moe_dense_many) or the per-token ones, of a drawn run on the per-token
 * ones, whatever moe_dense_min_rows says (in drawn order many, the drawn rows' MoE as the
 * prompt rows'); the unembedding of every logits row in the drawn rows' order. Attention
 * (whatever the drawn order): the drawn rows of a kind in one call
 * (order one), the prompt rows in one call per attention run: runs[2 i], runs[2 i + 1] =
 * first row and rows of run i (num_runs of them, at most plan->runs_capacity), rows of one
 * sequence at consecutive positions that tile the prompt rows (on CUDA order many computes
 * a row's attention on tensor cores when its call's rows are such a run). */
void gptoss_plan_build_kinds(struct gptoss_plan* plan, const struct gptoss_plan_setup* setup,
                             const uint32_t kinds[GPTOSS_PLAN_KINDS], const uint32_t* runs, uint32_t num_runs);

/* ---- the executor -------------------------------------------------------------------- */

/* Per-kernel profile (params.profile): every call bracketed by gptoss_backend_synchronize,
 * its host wall time added, with a call count, to its kernel id or to one of the other
 * entries below, separately for prefill steps (some rows that produce no logits) and
 * decode steps (every row produces logits: one token per sequence). */
enum {
    gptoss_profile_copy_tokens = gptoss_kernel_count, /* copy h2d (rows and block tables) */
    gptoss_profile_copy_argmax,                       /* copy d2h (argmax) */
    gptoss_profile_copy_logits,                       /* copy d2h (logits) */
    gptoss_profile_copy_sampled,                      /* copy d2h (sampled id) */
    gptoss_profile_host_sampler,                      /* sampler_pick_host (host) */
    gptoss_profile_copy_counts,                       /* copy h2d (token counts, kernels sampling) */
    gptoss_profile_num_entries,
};
struct gptoss_profile {
    int phase;            /* of the last forward batch: 0 prefill, 1 decode */
    uint64_t t0;          /* start of the call being timed */
    uint64_t phase_ns[2]; /* wall time of the forward batches and samplings */
    uint64_t tokens[2];   /* rows of the forward batches */
    uint64_t batches[2];
    uint64_t calls[gptoss_profile_num_entries][2];
    uint64_t ns[gptoss_profile_num_entries][2];
};
/* Before a profiled call: let earlier work finish, start the clock. */
void gptoss_profile_begin(struct gptoss_profile* prof, gptoss_backend_t backend);
/* After it: wait for it (an asynchronous error is reported by the call that caused it)
 * and add its time to `entry`, unless st (the call's status) is a failure. */
enum gptoss_status gptoss_profile_end(struct gptoss_profile* prof, gptoss_backend_t backend, int entry,
                                      enum gptoss_status st);
/* The table (engine.h, gptoss_context_print_profile). */
void gptoss_profile_print(const struct gptoss_profile* prof, FILE* f);

/* The profile's phase of a forward batch of n rows, o of them with logits: 0 (prefill) when
 * it holds a prompt row (kinds set: rows of kinds 0 and 2; else rows without logits), 1
 * (decode) when every row is a drawn token. */
static inline int gptoss_plan_phase(int kinds_set, const uint32_t kinds[GPTOSS_PLAN_KINDS], uint32_t n, uint32_t o) {
    return (kinds_set ? kinds[0] + kinds[2] > 0 : n > o) ? 0 : 1;
}

/* One kernel call, timed under `entry` when prof is not NULL. */
enum gptoss_status gptoss_plan_call(gptoss_backend_t backend, struct gptoss_profile* prof, enum gptoss_kernel kernel,
                                    const void* args);
/* Runs the plan's calls in order (profiled when prof is not NULL; it then also counts the
 * batch in its phase). On failure: the call's status, its message prefixed with what
 * failed ("layer 3 qkv: ..."). */
enum gptoss_status gptoss_plan_run(const struct gptoss_plan* plan, gptoss_backend_t backend,
                                   struct gptoss_profile* prof);
/* Test-only (white-box tests set it; the library never does): when not NULL,
 * gptoss_plan_run calls it after every call that succeeded, with the plan and the call;
 * it may synchronise the backend and copy the plan's buffers to the host (test_batch
 * records the router's expert choices this way). Never while recording a graph, and a
 * replayed graph calls nothing: an observing test makes its batches with params.graphs 0. */
typedef void (*gptoss_plan_observer_fn)(gptoss_backend_t backend, const struct gptoss_plan* plan,
                                        const struct gptoss_plan_call* call);
extern gptoss_plan_observer_fn gptoss_plan_observer;

/* Records the plan's calls into graph (begin, the calls, end); graph keeps its previous
 * recording on failure. */
enum gptoss_status gptoss_plan_record(const struct gptoss_plan* plan, gptoss_backend_t backend, gptoss_graph_t graph);

#endif
