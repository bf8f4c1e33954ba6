/* The paged KV cache (kv.h): the block pool, the free list, the prefix cache's index and
 * the per-sequence tables. Host bookkeeping only, except block copies (backend copies of
 * block rows, when a step must write a block another sequence holds). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gptoss/error.h>

#include "kv.h"
#include "util.h"

#define NONE GPTOSS_KV_NONE
#define ROOT_HASH UINT64_C(0x6770746F73736B76) /* the parent of block 0 */

static uint64_t chain_hash(uint64_t parent, const uint32_t* tokens, uint32_t n) {
    uint64_t h = parent;
    for (uint32_t i = 0; i < n; i++) h = gptoss_mix64(h ^ ((uint64_t) tokens[i] + UINT64_C(0x9E3779B97F4A7C15)));
    return h;
}

/* ---- the free list ------------------------------------------------------------------- */

static void free_unlink(struct gptoss_kv_pool* p, uint32_t b) {
    struct gptoss_kv_block* k = &p->blocks[b];
    if (k->prev != NONE) p->blocks[k->prev].next = k->next;
    else p->free_head = k->next;
    if (k->next != NONE) p->blocks[k->next].prev = k->prev;
    else p->free_tail = k->prev;
    p->num_free--;
}

/* Head: reused first (nothing worth keeping); tail: reused last (registered contents). */
static void free_insert(struct gptoss_kv_pool* p, uint32_t b, int at_tail) {
    struct gptoss_kv_block* k = &p->blocks[b];
    if (at_tail) {
        k->prev = p->free_tail;
        k->next = NONE;
        if (p->free_tail != NONE) p->blocks[p->free_tail].next = b;
        else p->free_head = b;
        p->free_tail = b;
    } else {
        k->prev = NONE;
        k->next = p->free_head;
        if (p->free_head != NONE) p->blocks[p->free_head].prev = b;
        else p->free_tail = b;
        p->free_head = b;
    }
    p->num_free++;
}

/* ---- the prefix cache's index --------------------------------------------------------- */

static uint32_t bucket_of(const struct gptoss_kv_pool* p, uint32_t group, uint64_t parent) {
    return (uint32_t) (gptoss_mix64(parent + group) & (p->num_buckets - 1));
}

static const uint32_t* block_tokens(const struct gptoss_kv_pool* p, uint32_t b) {
    return p->registered_tokens + (size_t) b * p->block_size;
}

static void unregister(struct gptoss_kv_pool* p, uint32_t b) {
    struct gptoss_kv_block* k = &p->blocks[b];
    if (k->count == 0) return;
    uint32_t* link = &p->buckets[bucket_of(p, k->group, k->parent)];
    while (*link != b) link = &p->blocks[*link].chain;
    *link = k->chain;
    k->count = 0;
}

/* The registered block of `group` after `parent` whose tokens share the longest prefix
 * (at least 1) with tokens[0, n); *common_out = that length. NONE if none. */
static uint32_t find(const struct gptoss_kv_pool* p, uint32_t group, uint64_t parent, const uint32_t* tokens, uint32_t n,
                     uint32_t* common_out) {
    uint32_t best = NONE, best_common = 0;
    for (uint32_t b = p->buckets[bucket_of(p, group, parent)]; b != NONE; b = p->blocks[b].chain) {
        const struct gptoss_kv_block* k = &p->blocks[b];
        if (k->group != group || k->parent != parent) continue;
        const uint32_t* t = block_tokens(p, b);
        uint32_t c = 0;
        while (c < k->count && c < n && t[c] == tokens[c]) c++;
        if (c > best_common) {
            best = b;
            best_common = c;
        }
    }
    *common_out = best_common;
    return best;
}

/* Registers block b (held or free) as the first n tokens after parent, unless it is
 * registered or another block already holds exactly these tokens. */
static void register_block(struct gptoss_kv_pool* p, uint32_t b, uint32_t group, uint64_t parent,
                           const uint32_t* tokens, uint32_t n) {
    struct gptoss_kv_block* k = &p->blocks[b];
    if (k->count != 0 || n == 0) return;
    uint32_t common = 0;
    const uint32_t other = find(p, group, parent, tokens, n, &common);
    if (other != NONE && common == n && p->blocks[other].count == n) return;
    memcpy(p->registered_tokens + (size_t) b * p->block_size, tokens, n * sizeof(uint32_t));
    k->group = group;
    k->parent = parent;
    k->count = n;
    uint32_t* head = &p->buckets[bucket_of(p, group, parent)];
    k->chain = *head;
    *head = b;
}

/* ---- blocks ---------------------------------------------------------------------------- */

static void acquire(struct gptoss_kv_pool* p, uint32_t b) {
    if (p->blocks[b].ref++ == 0) free_unlink(p, b);
}

static void release(struct gptoss_kv_pool* p, uint32_t b) {
    if (--p->blocks[b].ref == 0) free_insert(p, b, p->blocks[b].count != 0);
}

/* A block from the free list (its registration dropped), held once. The reservations
 * guarantee one exists for a sequence below its reservation. */
static uint32_t take_free(struct gptoss_kv_pool* p) {
    const uint32_t b = p->free_head;
    free_unlink(p, b);
    unregister(p, b);
    p->blocks[b].ref = 1;
    return b;
}

/* Copies positions [0, n) of block src into block dst for every layer of the group. */
static enum gptoss_status copy_rows(struct gptoss_kv_pool* p, uint32_t group, uint32_t dst, uint32_t src, uint32_t n) {
    if (n == 0 || dst == src) return gptoss_status_success;
    const size_t row = 2 * (size_t) p->head_dim, bytes = (size_t) n * row * sizeof(float);
    for (uint32_t l = group; l < p->num_layers; l += 2) {
        const float* layer = gptoss_kv_layer(p, l);
        for (uint32_t h = 0; h < p->num_kv_heads; h++) {
            const float* head = layer + h * p->head_stride;
            const enum gptoss_status st =
                gptoss_backend_copy(p->backend, (void*) (head + (size_t) dst * p->block_size * row),
                                    head + (size_t) src * p->block_size * row, bytes, gptoss_copy_backend_to_backend);
            if (st != gptoss_status_success) return st;
        }
    }
    return gptoss_status_success;
}

/* ---- the pool -------------------------------------------------------------------------- */

uint64_t gptoss_kv_block_bytes(uint32_t num_layers, uint32_t num_kv_heads, uint32_t head_dim) {
    return (uint64_t) (num_layers + 1) / 2 * num_kv_heads * GPTOSS_KV_BLOCK_SIZE * 2 * head_dim * sizeof(float);
}

float* gptoss_kv_layer(const struct gptoss_kv_pool* pool, uint32_t layer) {
    return pool->memory + (size_t) (layer / 2) * pool->num_kv_heads * pool->head_stride;
}

enum gptoss_status gptoss_kv_pool_init(struct gptoss_kv_pool* pool, gptoss_backend_t backend, uint32_t num_layers,
                                       uint32_t num_kv_heads, uint32_t head_dim, uint32_t window,
                                       uint32_t num_blocks) {
    memset(pool, 0, sizeof(*pool));
    pool->backend = backend;
    pool->block_size = GPTOSS_KV_BLOCK_SIZE;
    pool->num_blocks = num_blocks;
    pool->num_layers = num_layers;
    pool->layer_slots = (num_layers + 1) / 2;
    pool->num_kv_heads = num_kv_heads;
    pool->head_dim = head_dim;
    pool->window = window;
    pool->head_stride = (uint64_t) num_blocks * GPTOSS_KV_BLOCK_SIZE * 2 * head_dim;
    pool->num_buckets = 1;
    while (pool->num_buckets < num_blocks) pool->num_buckets *= 2;
    const uint64_t bytes = (uint64_t) num_blocks * gptoss_kv_block_bytes(num_layers, num_kv_heads, head_dim);
    pool->blocks = calloc(num_blocks, sizeof(*pool->blocks));
    pool->registered_tokens = malloc((size_t) num_blocks * GPTOSS_KV_BLOCK_SIZE * sizeof(uint32_t));
    pool->buckets = malloc(pool->num_buckets * sizeof(uint32_t));
    if (pool->blocks == NULL || pool->registered_tokens == NULL || pool->buckets == NULL || bytes > SIZE_MAX) {
        gptoss_kv_pool_free(pool);
        return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate the bookkeeping of %u KV blocks",
                           num_blocks);
    }
    void* memory = NULL;
    const enum gptoss_status st = gptoss_backend_alloc(backend, (size_t) bytes, &memory);
    if (st != gptoss_status_success) {
        char msg[400];
        snprintf(msg, sizeof(msg), "%s", gptoss_last_error());
        gptoss_kv_pool_free(pool);
        return gptoss_fail(st, "cannot allocate the KV cache (%u blocks of %u positions, %.1f MiB) on %s: %s",
                           num_blocks, GPTOSS_KV_BLOCK_SIZE, (double) bytes / 1048576.0,
                           gptoss_backend_get_name(backend), msg);
    }
    pool->memory = memory;
    for (uint32_t i = 0; i < pool->num_buckets; i++) pool->buckets[i] = NONE;
    pool->free_head = pool->free_tail = NONE;
    for (uint32_t b = 0; b < num_blocks; b++) free_insert(pool, b, 1);
    return gptoss_status_success;
}

void gptoss_kv_pool_free(struct gptoss_kv_pool* pool) {
    if (pool->memory != NULL) gptoss_backend_free(pool->backend, pool->memory);
    free(pool->blocks);
    free(pool->registered_tokens);
    free(pool->buckets);
    memset(pool, 0, sizeof(*pool));
}

void gptoss_kv_pool_counts(const struct gptoss_kv_pool* pool, uint32_t* free_out, uint32_t* cached_out) {
    uint32_t cached = 0;
    for (uint32_t b = pool->free_head; b != NONE; b = pool->blocks[b].next) cached += pool->blocks[b].count != 0;
    *free_out = pool->num_free;
    *cached_out = cached;
}

/* ---- sequences ----------------------------------------------------------------------- */

static uint32_t div_up(size_t a, size_t b) { return (uint32_t) ((a + b - 1) / b); }

uint32_t gptoss_kv_seq_blocks(uint32_t window, size_t max_tokens, size_t max_chunk) {
    const uint32_t full = div_up(max_tokens, GPTOSS_KV_BLOCK_SIZE);
    /* the sliding layers hold positions [first - window, first + chunk) at most, which may
     * start inside a block */
    uint32_t sliding = full;
    if (window != UINT32_MAX && (uint64_t) window + max_chunk < max_tokens) {
        const uint32_t live = div_up((size_t) window + max_chunk, GPTOSS_KV_BLOCK_SIZE) + 1;
        if (live < sliding) sliding = live;
    }
    return full + sliding;
}

static void mark_dirty(struct gptoss_kv_seq* seq, int group, uint32_t i) {
    if (seq->dirty_lo[group] >= seq->dirty_hi[group]) {
        seq->dirty_lo[group] = i;
        seq->dirty_hi[group] = i + 1;
        return;
    }
    if (i < seq->dirty_lo[group]) seq->dirty_lo[group] = i;
    if (i + 1 > seq->dirty_hi[group]) seq->dirty_hi[group] = i + 1;
}

static void set_entry(struct gptoss_kv_seq* seq, int group, uint32_t i, uint32_t block) {
    uint32_t* e = &seq->table[group][i];
    if (*e == block) return;
    if (*e == NONE) seq->held++;
    if (block == NONE) seq->held--;
    *e = block;
    mark_dirty(seq, group, i);
}

enum gptoss_status gptoss_kv_seq_init(struct gptoss_kv_pool* pool, struct gptoss_kv_seq* seq, size_t max_tokens,
                                      size_t max_chunk) {
    memset(seq, 0, sizeof(*seq));
    const uint32_t need = gptoss_kv_seq_blocks(pool->window, max_tokens, max_chunk);
    if (pool->reserved + need > pool->num_blocks) {
        return gptoss_fail(gptoss_status_insufficient_resources,
                           "KV budget: a sequence of %zu tokens needs %u blocks of %u positions; %llu of the %u "
                           "blocks are reserved by the running sequences",
                           max_tokens, need, pool->block_size, (unsigned long long) pool->reserved, pool->num_blocks);
    }
    seq->max_blocks = div_up(max_tokens, pool->block_size);
    seq->table[0] = malloc((size_t) seq->max_blocks * sizeof(uint32_t));
    seq->table[1] = malloc((size_t) seq->max_blocks * sizeof(uint32_t));
    seq->hash = malloc((size_t) seq->max_blocks * sizeof(uint64_t));
    if (seq->table[0] == NULL || seq->table[1] == NULL || seq->hash == NULL) {
        free(seq->table[0]);
        free(seq->table[1]);
        free(seq->hash);
        memset(seq, 0, sizeof(*seq));
        return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate the block tables of a sequence");
    }
    for (int g = 0; g < GPTOSS_KV_GROUPS; g++) {
        for (uint32_t i = 0; i < seq->max_blocks; i++) seq->table[g][i] = NONE;
        seq->dirty_lo[g] = 0;
        seq->dirty_hi[g] = seq->max_blocks; /* the device copy starts unknown */
    }
    seq->reserve = need;
    pool->reserved += need;
    return gptoss_status_success;
}

/* Hash of the tokens before logical block i (its parent). */
static uint64_t parent_of(const struct gptoss_kv_seq* seq, uint32_t i) { return i == 0 ? ROOT_HASH : seq->hash[i - 1]; }

void gptoss_kv_seq_clear(struct gptoss_kv_pool* pool, struct gptoss_kv_seq* seq, const uint32_t* tokens) {
    const uint32_t bs = pool->block_size;
    const uint32_t last = (uint32_t) (seq->kv_tokens / bs), tail = (uint32_t) (seq->kv_tokens % bs);
    for (int g = 0; g < GPTOSS_KV_GROUPS; g++) {
        for (uint32_t i = 0; i < seq->max_blocks; i++) {
            const uint32_t b = seq->table[g][i];
            if (b == NONE) continue;
            /* the partial last block: worth keeping for a sequence that continues from here */
            if (i == last && tail != 0 && seq->hashed >= last && pool->blocks[b].ref == 1) {
                register_block(pool, b, (uint32_t) g, parent_of(seq, i), tokens + (size_t) i * bs, tail);
            }
            release(pool, b);
            set_entry(seq, g, i, NONE);
        }
    }
    seq->kv_tokens = 0;
    seq->hashed = 0;
    seq->sliding_first = 0;
}

void gptoss_kv_seq_release(struct gptoss_kv_pool* pool, struct gptoss_kv_seq* seq, const uint32_t* tokens) {
    if (seq->table[0] == NULL) return;
    gptoss_kv_seq_clear(pool, seq, tokens);
    pool->reserved -= seq->reserve;
    free(seq->table[0]);
    free(seq->table[1]);
    free(seq->hash);
    memset(seq, 0, sizeof(*seq));
}

void gptoss_kv_seq_truncate(struct gptoss_kv_seq* seq, size_t p) {
    if (seq->kv_tokens > p) seq->kv_tokens = p;
    const uint32_t full = (uint32_t) (seq->kv_tokens / GPTOSS_KV_BLOCK_SIZE);
    if (seq->hashed > full) seq->hashed = full;
}

/* First position the sliding layers still need when a step starts at first. */
static size_t sliding_keep(const struct gptoss_kv_pool* pool, size_t first) {
    if (pool->window == UINT32_MAX || first <= pool->window) return 0;
    return first - pool->window;
}

enum gptoss_status gptoss_kv_seq_lookup(struct gptoss_kv_pool* pool, struct gptoss_kv_seq* seq, const uint32_t* tokens,
                                        size_t n) {
    if (seq->held != 0 || seq->kv_tokens != 0 || n == 0) return gptoss_status_success;
    const uint32_t bs = pool->block_size;
    if (n > (size_t) seq->max_blocks * bs) n = (size_t) seq->max_blocks * bs;
    /* Found blocks go into the tables provisionally (not held, not counted) and are
     * acquired once the prefix is known. Full-attention layers: the longest chain of full
     * blocks from position 0, then the registered block after it that shares the most
     * tokens (a partial block). */
    uint32_t nfull = 0;
    while ((size_t) (nfull + 1) * bs <= n) {
        uint32_t common = 0;
        const uint32_t b = find(pool, GPTOSS_KV_FULL, parent_of(seq, nfull), tokens + (size_t) nfull * bs, bs, &common);
        if (b == NONE || common != bs || pool->blocks[b].count != bs) break;
        seq->table[GPTOSS_KV_FULL][nfull] = b;
        seq->hash[nfull] = chain_hash(parent_of(seq, nfull), tokens + (size_t) nfull * bs, bs);
        nfull++;
    }
    uint32_t tail = 0;
    if ((size_t) nfull * bs < n) {
        const size_t left = n - (size_t) nfull * bs;
        seq->table[GPTOSS_KV_FULL][nfull] = find(pool, GPTOSS_KV_FULL, parent_of(seq, nfull),
                                                 tokens + (size_t) nfull * bs, (uint32_t) (left < bs ? left : bs), &tail);
    }
    /* the longest prefix P <= nfull * bs + tail whose sliding-window blocks are there too:
     * those of positions [P - window, P) */
    size_t P = (size_t) nfull * bs + tail;
    while (P > 0) {
        const uint32_t last = (uint32_t) ((P - 1) / bs), partial = (uint32_t) (P % bs);
        const uint32_t from = (uint32_t) (sliding_keep(pool, P) / bs);
        uint32_t missing = NONE;
        for (uint32_t i = from; i <= last && missing == NONE; i++) {
            uint32_t common = 0;
            const uint32_t want = (i == last && partial != 0) ? partial : bs;
            const uint32_t b = find(pool, GPTOSS_KV_SLIDING, parent_of(seq, i), tokens + (size_t) i * bs, want, &common);
            if (b == NONE || common < want || (want == bs && pool->blocks[b].count != bs)) missing = i;
            else seq->table[GPTOSS_KV_SLIDING][i] = b;
        }
        if (missing == NONE) break;
        for (uint32_t i = from; i < missing; i++) seq->table[GPTOSS_KV_SLIDING][i] = NONE;
        /* a prefix that ends where the missing block starts, of full blocks only */
        P = (size_t) missing * bs < (size_t) nfull * bs ? (size_t) missing * bs : (size_t) nfull * bs;
    }
    const uint32_t nblocks = (uint32_t) ((P + bs - 1) / bs), partial = (uint32_t) (P % bs);
    const uint32_t from = (uint32_t) (sliding_keep(pool, P) / bs);
    /* hold them: full-attention blocks [0, nblocks), sliding ones [from, nblocks) */
    for (int g = 0; g < GPTOSS_KV_GROUPS; g++) {
        for (uint32_t i = 0; i < seq->max_blocks; i++) {
            const uint32_t b = seq->table[g][i];
            seq->table[g][i] = NONE;
            if (b == NONE || i >= nblocks || (g == GPTOSS_KV_SLIDING && i < from)) continue;
            acquire(pool, b);
            set_entry(seq, g, i, b);
        }
    }
    /* a partial last block is written by the next step: the sequence's own (kept when it
     * holds it alone and its cached contents end at the prefix, or no other block is free;
     * else its rows copied into a new block, so that a cached longer continuation -- another
     * conversation after a shared system prompt -- stays in the cache) */
    enum gptoss_status st = gptoss_status_success;
    for (int g = 0; g < GPTOSS_KV_GROUPS && partial != 0; g++) {
        const uint32_t b = seq->table[g][nblocks - 1];
        if (pool->blocks[b].ref == 1 && (pool->blocks[b].count <= partial || pool->num_free == 0)) {
            unregister(pool, b);
            continue;
        }
        const uint32_t own = take_free(pool);
        if (st == gptoss_status_success) st = copy_rows(pool, (uint32_t) g, own, b, partial);
        release(pool, b);
        set_entry(seq, g, nblocks - 1, own);
    }
    seq->kv_tokens = P;
    seq->hashed = (uint32_t) (P / bs);
    seq->sliding_first = from;
    if (st != gptoss_status_success) {
        gptoss_error_keep_begin();
        gptoss_kv_seq_clear(pool, seq, tokens);
        gptoss_error_keep_end();
    }
    return st;
}

enum gptoss_status gptoss_kv_seq_prepare(struct gptoss_kv_pool* pool, struct gptoss_kv_seq* seq, size_t first,
                                         size_t n) {
    const uint32_t bs = pool->block_size;
    gptoss_kv_seq_truncate(seq, first);
    /* the sliding layers: give back the blocks wholly before the window */
    const uint32_t keep_block = (uint32_t) (sliding_keep(pool, first) / bs);
    for (uint32_t i = seq->sliding_first; i < keep_block && i < seq->max_blocks; i++) {
        const uint32_t b = seq->table[GPTOSS_KV_SLIDING][i];
        if (b == NONE) continue;
        release(pool, b);
        set_entry(seq, GPTOSS_KV_SLIDING, i, NONE);
    }
    if (keep_block > seq->sliding_first) seq->sliding_first = keep_block;
    /* the blocks the step writes: the sequence's own, unregistered */
    const uint32_t lo = (uint32_t) (first / bs), hi = (uint32_t) ((first + n - 1) / bs);
    for (int g = 0; g < GPTOSS_KV_GROUPS; g++) {
        for (uint32_t i = lo; i <= hi; i++) {
            const uint32_t b = seq->table[g][i];
            if (b == NONE) {
                set_entry(seq, g, i, take_free(pool));
            } else if (pool->blocks[b].ref > 1) { /* shared: copy the rows before first */
                release(pool, b);
                const uint32_t own = take_free(pool);
                const size_t start = (size_t) i * bs;
                const enum gptoss_status st =
                    copy_rows(pool, (uint32_t) g, own, b, first > start ? (uint32_t) (first - start) : 0);
                set_entry(seq, g, i, own);
                if (st != gptoss_status_success) return st;
            } else {
                unregister(pool, b);
            }
        }
    }
    return gptoss_status_success;
}

void gptoss_kv_seq_commit(struct gptoss_kv_pool* pool, struct gptoss_kv_seq* seq, const uint32_t* tokens, size_t end) {
    const uint32_t bs = pool->block_size;
    seq->kv_tokens = end;
    while ((size_t) (seq->hashed + 1) * bs <= end) {
        const uint32_t i = seq->hashed;
        const uint64_t parent = parent_of(seq, i);
        seq->hash[i] = chain_hash(parent, tokens + (size_t) i * bs, bs);
        for (int g = 0; g < GPTOSS_KV_GROUPS; g++) {
            const uint32_t b = seq->table[g][i];
            if (b != NONE) register_block(pool, b, (uint32_t) g, parent, tokens + (size_t) i * bs, bs);
        }
        seq->hashed++;
    }
}
