/* Internal: the paged KV cache of a batch (engine/kv.c), shared by all its sequences.
 *
 * Memory: one pool of blocks of GPTOSS_KV_BLOCK_SIZE positions. The layers are in two
 * groups, the sliding-window layers (even: GPTOSS_KV_SLIDING) and the full-attention ones
 * (odd: GPTOSS_KV_FULL); a block belongs to one group at a time and holds its positions
 * for every layer of that group: layer l keeps its K/V in layer slot l / 2, laid out as
 * the varlen kernels read a cache (kernels.h, "Paged KV cache"): [kv head][num_blocks *
 * block_size][2][head_dim] per slot, head stride head_stride floats. A sequence has one
 * block table per group (logical block p / block_size -> block). Sliding-window layers
 * keep only their window: before a step computes positions [first, ...), the sequence's
 * sliding blocks wholly before first - window go back to the pool (one position more than
 * the window needs, so that the last token can run again for its logits).
 *
 * Budget: a sequence reserves at creation the blocks it can hold at once at its maximum
 * length (gptoss_kv_seq_blocks); the reservations of the live sequences never exceed the
 * pool, so a step never runs out of blocks and never takes one from another sequence
 * (admission control: a sequence that does not fit is refused). Sharing a prefix saves
 * computation, not reservation.
 *
 * Prefix cache: every full block is registered under (group, hash of the tokens before it,
 * its tokens) once computed, and a released sequence registers its last, partial blocks
 * too. Blocks no sequence holds stay in the pool with their contents, registered ones at
 * the end of the free list (the last to be reused), until a new block is needed. A
 * sequence that holds nothing looks up the longest prefix of its tokens whose blocks are
 * all there (the full-attention ones from position 0, the sliding ones over the window
 * before the prefix's end) and shares them (gptoss_kv_seq_lookup); a block a step will
 * write is made its own first (copied when another sequence holds it). Blocks are
 * immutable while registered. */
#ifndef GPTOSS_ENGINE_KV_H
#define GPTOSS_ENGINE_KV_H

#include <stddef.h>
#include <stdint.h>

#include <gptoss/kernels.h>

#define GPTOSS_KV_BLOCK_SIZE 16u
#define GPTOSS_KV_NONE UINT32_MAX /* a table entry without a block */

enum { GPTOSS_KV_SLIDING = 0, GPTOSS_KV_FULL = 1, GPTOSS_KV_GROUPS = 2 };

/* The bookkeeping of a block. */
struct gptoss_kv_block {
    uint32_t ref;         /* sequences holding it; 0: in the free list */
    uint32_t prev, next;  /* free list links */
    uint32_t chain;       /* next registered block of its bucket */
    uint64_t parent;      /* registered: hash of the tokens before the block */
    uint32_t count;       /* registered: its tokens (registered_tokens); 0: not registered */
    uint32_t group;
};

struct gptoss_kv_pool {
    gptoss_backend_t backend;
    float* memory;          /* backend memory: [layer_slots][num_kv_heads][head_stride] */
    uint32_t block_size, num_blocks, num_layers, layer_slots, num_kv_heads, head_dim;
    uint32_t window;        /* of the sliding-window layers; UINT32_MAX: none */
    uint64_t head_stride;   /* floats per kv head of one layer slot */
    uint64_t reserved;      /* blocks reserved by the live sequences */
    /* host bookkeeping (kv.c) */
    struct gptoss_kv_block* blocks; /* [num_blocks] */
    uint32_t* registered_tokens;    /* [num_blocks][block_size] */
    uint32_t* buckets;              /* [num_buckets]: hash chains of registered blocks */
    uint32_t num_buckets;
    uint32_t free_head, free_tail, num_free;
};

/* The KV state of one sequence. */
struct gptoss_kv_seq {
    uint32_t* table[GPTOSS_KV_GROUPS]; /* [max_blocks] */
    uint64_t* hash;          /* [max_blocks]: chain hash of the tokens up to the end of block i */
    uint32_t max_blocks;     /* ceil(max_tokens / block_size) */
    uint32_t reserve;        /* blocks reserved */
    uint32_t held;           /* table entries with a block, both groups */
    size_t kv_tokens;        /* positions [0, kv_tokens) hold the K/V of its tokens */
    uint32_t hashed;         /* leading full blocks whose hash is set (and registered) */
    uint32_t sliding_first;  /* sliding table entries below it are released */
    uint32_t dirty_lo[GPTOSS_KV_GROUPS], dirty_hi[GPTOSS_KV_GROUPS]; /* entries changed, [lo, hi) */
};

/* Pool of num_blocks blocks for a model's shapes on backend: num_layers layers (layer l
 * in group l % 2: even layers have the sliding window), window the sliding layers'
 * (UINT32_MAX: none). insufficient_memory names the size when the backend cannot allocate
 * it. */
enum gptoss_status gptoss_kv_pool_init(struct gptoss_kv_pool* pool, gptoss_backend_t backend, uint32_t num_layers,
                                       uint32_t num_kv_heads, uint32_t head_dim, uint32_t window,
                                       uint32_t num_blocks);
void gptoss_kv_pool_free(struct gptoss_kv_pool* pool);
/* Bytes of backend memory one block takes (all layers of its group). */
uint64_t gptoss_kv_block_bytes(uint32_t num_layers, uint32_t num_kv_heads, uint32_t head_dim);
/* The cache of layer l (the varlen kernels' kv_cache) and the group whose tables it reads. */
float* gptoss_kv_layer(const struct gptoss_kv_pool* pool, uint32_t layer);
static inline int gptoss_kv_group(uint32_t layer) { return layer % 2 == 0 ? GPTOSS_KV_SLIDING : GPTOSS_KV_FULL; }
/* Blocks a sequence of max_tokens positions computed in steps of at most max_chunk
 * positions can hold at once (its reservation). */
uint32_t gptoss_kv_seq_blocks(uint32_t window, size_t max_tokens, size_t max_chunk);

/* A sequence of at most max_tokens positions: reserves its blocks (insufficient_resources
 * with the numbers when they do not fit beside the other sequences' reservations; nothing
 * is reserved then) and allocates its tables. */
enum gptoss_status gptoss_kv_seq_init(struct gptoss_kv_pool* pool, struct gptoss_kv_seq* seq, size_t max_tokens,
                                      size_t max_chunk);
/* Gives every block back (registering the partial ones with tokens[0, kv_tokens)) and
 * keeps the reservation: the sequence holds nothing, kv_tokens 0. */
void gptoss_kv_seq_clear(struct gptoss_kv_pool* pool, struct gptoss_kv_seq* seq, const uint32_t* tokens);
/* gptoss_kv_seq_clear, then frees the tables and the reservation. */
void gptoss_kv_seq_release(struct gptoss_kv_pool* pool, struct gptoss_kv_seq* seq, const uint32_t* tokens);
/* For a sequence that holds nothing: shares the blocks of the longest cached prefix of
 * tokens[0, n) and sets kv_tokens to its length; no-op otherwise. Fails only when a
 * block copy fails (backend error; the sequence then holds nothing). */
enum gptoss_status gptoss_kv_seq_lookup(struct gptoss_kv_pool* pool, struct gptoss_kv_seq* seq, const uint32_t* tokens,
                                        size_t n);
/* Before a step computes positions [first, first + n) (first <= kv_tokens): releases the
 * sliding blocks before the window, gives every table entry the step writes a block the
 * sequence alone holds, unregistered (new ones from the pool; shared ones copied). The
 * tables may change (dirty ranges). kv_tokens becomes first. */
enum gptoss_status gptoss_kv_seq_prepare(struct gptoss_kv_pool* pool, struct gptoss_kv_seq* seq, size_t first,
                                         size_t n);
/* After the step succeeded: kv_tokens = end; registers the blocks it completed. */
void gptoss_kv_seq_commit(struct gptoss_kv_pool* pool, struct gptoss_kv_seq* seq, const uint32_t* tokens, size_t end);
/* Forgets the K/V from position p on (kv_tokens = min(kv_tokens, p)). */
void gptoss_kv_seq_truncate(struct gptoss_kv_seq* seq, size_t p);

/* Counts for reports: blocks free (cached ones included), registered among them. */
void gptoss_kv_pool_counts(const struct gptoss_kv_pool* pool, uint32_t* free_out, uint32_t* cached_out);

#endif
