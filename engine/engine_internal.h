/* Internal: what the context (engine/context.c) and the sampler (engine/sampler.c) share. */
#ifndef GPTOSS_ENGINE_INTERNAL_H
#define GPTOSS_ENGINE_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <gptoss/engine.h>

/* Added to the sampler seed before it reaches Squares32 (as upstream's engine). */
#define GPTOSS_SAMPLER_SEED_OFFSET UINT64_C(0x0123456789ABCDEF)

struct gptoss_sampler {
    atomic_uint_least64_t ref_count;
    float temperature;        /* 0 = greedy */
    float top_p;              /* 1 = off */
    float presence_penalty;   /* 0 = off */
    float frequency_penalty;  /* 0 = off */
    uint32_t top_k;           /* 0 = off */
    uint64_t seed;
    size_t num_bias;          /* logit bias: num_bias entries, ids increasing and distinct */
    uint32_t* bias_ids;
    float* bias_values;
    size_t allow_words;       /* allowed tokens: 0 = all; else bit id % 32 of allow[id / 32] */
    uint32_t* allow;
};

/* Host scratch for one draw, owned by the context (allocated once at context creation, so
 * that a decode step allocates nothing). The arrays of ids have vocabulary_size entries,
 * the buckets GPTOSS_SAMPLER_BUCKETS + 2: the buckets of z, the far one and one for the ids
 * that are not candidates (engine/sampler.c says how they are used). */
#define GPTOSS_SAMPLER_BUCKETS 4096u
#define GPTOSS_SAMPLER_TOP_K_DIRECT 256u /* top-k up to this takes the k best directly */
struct gptoss_sampler_bucket {
    double mass;     /* sum of exp(z) over its ids (far bucket: unused) */
    double scale;    /* exp(-b w): its ids' exp(z) over their polynomial values */
    uint32_t head;   /* first id of its list (next[] links the others) */
    uint32_t count;  /* ids in it */
    uint32_t first;  /* position of its first id in the draw order */
};
struct gptoss_sampler_scratch {
    uint32_t vocabulary_size;
    uint32_t* next;    /* per id: the next id of its bucket's list */
    uint32_t* order;   /* candidate ids by position in the draw order */
    uint32_t* tmp;     /* radix sort buffer */
    double* prob;      /* exact path: exp(z) per position */
    uint32_t* count;   /* occurrences of each id in the context (all zero between draws) */
    uint64_t* top;     /* top-k path: (key, id) of the k best, GPTOSS_SAMPLER_TOP_K_DIRECT entries */
    struct gptoss_sampler_bucket* buckets;
    /* Bucketed draws since init: decided by the buckets, and handed to the exact path
     * (engine/sampler.c); tests and benchmarks read them. */
    uint64_t fast_draws, fallback_draws;
};
/* Allocates the arrays for vocabulary_size ids; 0 on success, -1 when out of memory (then
 * nothing stays allocated). */
int gptoss_sampler_scratch_init(struct gptoss_sampler_scratch* scratch, uint32_t vocabulary_size);
/* Frees the arrays (a zeroed or failed scratch is fine). */
void gptoss_sampler_scratch_free(struct gptoss_sampler_scratch* scratch);

/* How the context should pick the next token with this sampler (NULL = greedy). */
enum gptoss_sampler_mode {
    gptoss_sampler_mode_greedy = 0,  /* argmax of the unembedding */
    gptoss_sampler_mode_softmax = 1, /* f32_softmax + f32_sample on the backend (temperature only) */
    gptoss_sampler_mode_host = 2,    /* logits to the host: penalties, top-k, top-p */
    gptoss_sampler_mode_kernels = 3, /* f32_apply_penalties + f32_sample_logits on the backend */
};
/* sampling: enum gptoss_sampling, resolved (host or kernels; never auto). */
enum gptoss_sampler_mode gptoss_sampler_get_mode(const struct gptoss_sampler* sampler, int sampling);
/* Whether the sampler subtracts penalties. */
int gptoss_sampler_has_penalties(const struct gptoss_sampler* sampler);
/* invalid_argument (with the message) when the sampler's logit bias names an id >= V */
enum gptoss_status gptoss_sampler_check_vocabulary(const struct gptoss_sampler* sampler, uint32_t vocabulary_size);

/* Host draw. logits (f32[V], modified in place) of the token at position rng_offset - 1;
 * context tokens (for the penalties); the draw uses u = (squares32(rng_offset, seed +
 * GPTOSS_SAMPLER_SEED_OFFSET) & 0xFFFFFF) * 2^-24. Returns the id. No allocation. */
uint32_t gptoss_sampler_pick_host(const struct gptoss_sampler* sampler, float* logits, const uint32_t* tokens,
                                  size_t num_tokens, uint64_t rng_offset, struct gptoss_sampler_scratch* scratch);

#endif
