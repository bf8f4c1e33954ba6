/* The paged KV cache (engine/kv.c), white-box, on a CPU backend with small shapes. A step is
 * simulated: gptoss_kv_seq_prepare, then the "K/V" of each written position (a value made
 * from the token, the position, the layer slot and the head, in every row element) stored
 * through the sequence's tables, then gptoss_kv_seq_commit. Checked:
 *   - admission: reservations up to the pool and not beyond (insufficient_resources, the
 *     message with the numbers, nothing reserved), a released sequence's blocks and
 *     reservation back at once;
 *   - the sliding-window layers hold only their window (and a chunk), never more than the
 *     reservation; the full-attention layers every position;
 *   - the prefix cache: a sequence with a common prefix shares the full blocks of another
 *     (same blocks, counted twice), a partial last block is copied when shared and taken
 *     when free, the sliding blocks of the window before the prefix's end come back from
 *     the cache; every position read through the tables holds its own K/V;
 *   - a fork from a released sequence's cached block copies it, keeping that cache whole;
 *   - eviction: cached blocks are reused when blocks run out, and a later lookup then finds
 *     only what is left (no stale block);
 *   - after every operation the bookkeeping is consistent: the references equal the table
 *     entries of the live sequences, the free list holds exactly the unreferenced blocks. */
#include <time.h>

#include <gptoss/error.h>

#include "kv.h"
#include "test_util.h"

enum { L = 3, HKV = 2, D = 4, MAXSEQ = 4 };

static struct gptoss_kv_seq* g_live[MAXSEQ];

static void consistent(const struct gptoss_kv_pool* p, const char* when) {
    uint32_t* refs = calloc(p->num_blocks, sizeof(uint32_t));
    for (int s = 0; s < MAXSEQ; s++) {
        if (g_live[s] == NULL) continue;
        uint32_t held = 0;
        for (int g = 0; g < GPTOSS_KV_GROUPS; g++) {
            for (uint32_t i = 0; i < g_live[s]->max_blocks; i++) {
                const uint32_t b = g_live[s]->table[g][i];
                if (b == GPTOSS_KV_NONE) continue;
                refs[b]++;
                held++;
            }
        }
        CHECK(held == g_live[s]->held && held <= g_live[s]->reserve, "%s: sequence %d holds %u (counted %u, reserve %u)",
              when, s, held, g_live[s]->held, g_live[s]->reserve);
    }
    uint32_t bad = 0, unreferenced = 0, listed = 0;
    for (uint32_t b = 0; b < p->num_blocks; b++) {
        bad += refs[b] != p->blocks[b].ref;
        unreferenced += refs[b] == 0;
    }
    for (uint32_t b = p->free_head; b != GPTOSS_KV_NONE && listed <= p->num_blocks; b = p->blocks[b].next) {
        bad += p->blocks[b].ref != 0;
        listed++;
    }
    CHECK(bad == 0 && listed == unreferenced && p->num_free == unreferenced,
          "%s: %u references off, free list %u, unreferenced %u, num_free %u", when, bad, listed, unreferenced,
          p->num_free);
    free(refs);
}

/* The K/V value of position pos (token t) in layer slot j, head h. */
static float kv_value(uint32_t t, size_t pos, uint32_t j, uint32_t h) {
    return (float) (t % 1000) + 1000.0f * (float) (pos % 1000) + 0.25f * (float) j + 0.125f * (float) h;
}

static float* row_of(const struct gptoss_kv_pool* p, const struct gptoss_kv_seq* s, int g, uint32_t layer, uint32_t h,
                     size_t pos) {
    const uint32_t b = s->table[g][pos / p->block_size];
    return gptoss_kv_layer(p, layer) + h * p->head_stride + ((size_t) b * p->block_size + pos % p->block_size) * 2 * D;
}

/* A step of positions [first, first + n) of tokens: prepare, write, commit. */
static void run_step(struct gptoss_kv_pool* p, struct gptoss_kv_seq* s, const uint32_t* tokens, size_t first,
                     size_t n) {
    CHECK(gptoss_kv_seq_prepare(p, s, first, n) == gptoss_status_success, "prepare: %s", gptoss_last_error());
    for (size_t pos = first; pos < first + n; pos++) {
        for (uint32_t l = 0; l < L; l++) {
            for (uint32_t h = 0; h < HKV; h++) {
                float* r = row_of(p, s, gptoss_kv_group(l), l, h, pos);
                for (uint32_t e = 0; e < 2 * D; e++) r[e] = kv_value(tokens[pos], pos, l / 2, h);
            }
        }
    }
    gptoss_kv_seq_commit(p, s, tokens, first + n);
}

/* Every position a step starting at kv_tokens may read holds its K/V: all of [0, kv) in the
 * full layers, [kv - window, kv) in the sliding ones. */
static int holds(const struct gptoss_kv_pool* p, const struct gptoss_kv_seq* s, const uint32_t* tokens) {
    const size_t kv = s->kv_tokens, lo = kv > p->window ? kv - p->window : 0;
    for (uint32_t l = 0; l < L; l++) {
        const int g = gptoss_kv_group(l);
        for (size_t pos = g == GPTOSS_KV_FULL ? 0 : lo; pos < kv; pos++) {
            if (s->table[g][pos / p->block_size] == GPTOSS_KV_NONE) return 0;
            for (uint32_t h = 0; h < HKV; h++) {
                if (row_of(p, s, g, l, h, pos)[2 * D - 1] != kv_value(tokens[pos], pos, l / 2, h)) return 0;
            }
        }
    }
    return 1;
}

static void prefill(struct gptoss_kv_pool* p, struct gptoss_kv_seq* s, const uint32_t* tokens, size_t n, size_t chunk) {
    for (size_t first = s->kv_tokens; first < n; first += chunk) run_step(p, s, tokens, first, n - first < chunk ? n - first : chunk);
}

static void random_tokens(uint32_t* t, size_t n) {
    for (size_t i = 0; i < n; i++) t[i] = (uint32_t) (rng_next() % 50000);
}

static void test_admission(gptoss_backend_t backend) {
    const uint32_t window = 16, chunk = 8;
    const uint32_t per_seq = gptoss_kv_seq_blocks(window, 100, chunk); /* 7 full + 3 sliding */
    CHECK(per_seq == 7 + 3, "blocks of a sequence of 100 tokens: %u", per_seq);
    CHECK(gptoss_kv_seq_blocks(window, 20, chunk) == 4, "a short sequence: its positions in both groups");
    CHECK(gptoss_kv_seq_blocks(UINT32_MAX, 100, chunk) == 14, "no window: every position in both groups");
    struct gptoss_kv_pool p;
    CHECK(gptoss_kv_pool_init(&p, backend, L, HKV, D, window, 2 * per_seq + 4) == gptoss_status_success, "pool");
    struct gptoss_kv_seq a, b, c;
    CHECK(gptoss_kv_seq_init(&p, &a, 100, chunk) == gptoss_status_success, "first sequence");
    CHECK(gptoss_kv_seq_init(&p, &b, 100, chunk) == gptoss_status_success, "second sequence");
    const enum gptoss_status st = gptoss_kv_seq_init(&p, &c, 100, chunk);
    CHECK(st == gptoss_status_insufficient_resources && strstr(gptoss_last_error(), "KV budget") != NULL &&
              strstr(gptoss_last_error(), "needs 10 blocks") != NULL && p.reserved == 2 * per_seq,
          "third refused: %s (%s), reserved %llu", gptoss_status_to_string(st), gptoss_last_error(),
          (unsigned long long) p.reserved);
    uint32_t tokens[100];
    random_tokens(tokens, 100);
    g_live[0] = &a;
    prefill(&p, &a, tokens, 100, chunk);
    consistent(&p, "after a prefill");
    CHECK(holds(&p, &a, tokens), "the prefilled sequence holds its K/V");
    CHECK(gptoss_kv_seq_init(&p, &c, 30, chunk) == gptoss_status_success, "a shorter third fits (%u blocks)",
          gptoss_kv_seq_blocks(window, 30, chunk));
    gptoss_kv_seq_release(&p, &c, tokens);
    g_live[0] = NULL;
    gptoss_kv_seq_release(&p, &a, tokens);
    consistent(&p, "after releases");
    CHECK(p.num_free == p.num_blocks && p.reserved == per_seq, "released blocks are free at once (%u of %u free)",
          p.num_free, p.num_blocks);
    CHECK(gptoss_kv_seq_init(&p, &c, 100, chunk) == gptoss_status_success, "then a full one fits again");
    gptoss_kv_seq_release(&p, &c, tokens);
    gptoss_kv_seq_release(&p, &b, tokens);
    gptoss_kv_pool_free(&p);
}

static void test_sliding(gptoss_backend_t backend) {
    const uint32_t window = 16, chunk = 5;
    const size_t n = 400;
    struct gptoss_kv_pool p;
    CHECK(gptoss_kv_pool_init(&p, backend, L, HKV, D, window, gptoss_kv_seq_blocks(window, n, chunk)) ==
              gptoss_status_success, "pool");
    struct gptoss_kv_seq s;
    CHECK(gptoss_kv_seq_init(&p, &s, n, chunk) == gptoss_status_success, "sequence");
    g_live[0] = &s;
    uint32_t* tokens = malloc(n * sizeof(uint32_t));
    random_tokens(tokens, n);
    int ok = 1;
    uint32_t most = 0;
    for (size_t first = 0; first < n; first += chunk) {
        run_step(&p, &s, tokens, first, chunk);
        uint32_t sliding = 0;
        for (uint32_t i = 0; i < s.max_blocks; i++) sliding += s.table[GPTOSS_KV_SLIDING][i] != GPTOSS_KV_NONE;
        if (sliding > most) most = sliding;
        ok = ok && holds(&p, &s, tokens);
    }
    consistent(&p, "after 80 steps");
    CHECK(ok, "every step holds the K/V its next step reads");
    CHECK(most <= (window + chunk + 15) / 16 + 1 && most >= 2,
          "the sliding layers hold at most their window and a chunk: %u blocks", most);
    /* the last token again (its logits): one position back stays in the window */
    gptoss_kv_seq_truncate(&s, n - 1);
    CHECK(holds(&p, &s, tokens), "rerunning the last token finds its window");
    run_step(&p, &s, tokens, n - 1, 1);
    consistent(&p, "after a rerun");
    g_live[0] = NULL;
    gptoss_kv_seq_release(&p, &s, tokens);
    CHECK(p.num_free == p.num_blocks, "all free");
    free(tokens);
    gptoss_kv_pool_free(&p);
}

static void test_prefix(gptoss_backend_t backend) {
    const uint32_t window = 16, chunk = 8;
    struct gptoss_kv_pool p;
    CHECK(gptoss_kv_pool_init(&p, backend, L, HKV, D, window, 4 * gptoss_kv_seq_blocks(window, 200, chunk)) ==
              gptoss_status_success, "pool");
    uint32_t ta[200], tb[200];
    random_tokens(ta, 200);
    memcpy(tb, ta, 70 * sizeof(uint32_t));
    random_tokens(tb + 70, 130);
    if (tb[70] == ta[70]) tb[70] ^= 1;
    struct gptoss_kv_seq a, b;
    gptoss_kv_seq_init(&p, &a, 200, chunk);
    gptoss_kv_seq_init(&p, &b, 200, chunk);
    g_live[0] = &a;
    g_live[1] = &b;
    prefill(&p, &a, ta, 100, chunk); /* a keeps running: blocks 0..5 full, 6 partial */
    CHECK(gptoss_kv_seq_lookup(&p, &b, tb, 150) == gptoss_status_success, "lookup");
    consistent(&p, "after a lookup");
    int shared = 1;
    for (uint32_t i = 0; i < 4; i++) shared = shared && b.table[GPTOSS_KV_FULL][i] == a.table[GPTOSS_KV_FULL][i];
    CHECK(b.kv_tokens == 70, "the common prefix is reused, to the token: %zu", b.kv_tokens);
    CHECK(shared && p.blocks[a.table[GPTOSS_KV_FULL][0]].ref == 2, "full blocks are shared");
    CHECK(b.table[GPTOSS_KV_FULL][4] != a.table[GPTOSS_KV_FULL][4], "the shared partial block is copied");
    CHECK(holds(&p, &b, tb) && holds(&p, &a, ta), "both hold their own K/V (sliding ones from the cache)");
    prefill(&p, &b, tb, 150, chunk);
    prefill(&p, &a, ta, 200, chunk);
    consistent(&p, "after both ran on");
    CHECK(holds(&p, &b, tb) && holds(&p, &a, ta), "writes after the fork stay in each sequence's blocks");
    /* a sequence that rewrites positions of a block it shares gets its own copy */
    struct gptoss_kv_seq c;
    uint32_t tc[200];
    memcpy(tc, ta, sizeof(tc));
    gptoss_kv_seq_init(&p, &c, 200, chunk);
    g_live[2] = &c;
    CHECK(gptoss_kv_seq_lookup(&p, &c, tc, 96) == gptoss_status_success && c.kv_tokens == 96 &&
              c.table[GPTOSS_KV_FULL][5] == a.table[GPTOSS_KV_FULL][5],
          "a block-aligned prefix shares its last block: %zu", c.kv_tokens);
    for (int i = 88; i < 96; i++) tc[i] ^= 7;
    gptoss_kv_seq_truncate(&c, 88);
    run_step(&p, &c, tc, 88, 8);
    CHECK(c.table[GPTOSS_KV_FULL][5] != a.table[GPTOSS_KV_FULL][5] && holds(&p, &a, ta) && holds(&p, &c, tc),
          "rewriting a shared block copies it first");
    consistent(&p, "after a copy on write");
    g_live[2] = NULL;
    gptoss_kv_seq_release(&p, &c, tc);
    /* a finished sequence's blocks serve the next turn: the same tokens and more */
    g_live[1] = NULL;
    gptoss_kv_seq_clear(&p, &b, tb);
    CHECK(b.held == 0 && b.kv_tokens == 0, "cleared");
    g_live[1] = &b;
    CHECK(gptoss_kv_seq_lookup(&p, &b, tb, 180) == gptoss_status_success && b.kv_tokens == 150,
          "a cleared sequence finds all of its 150 tokens again: %zu", b.kv_tokens);
    CHECK(holds(&p, &b, tb), "with their K/V");
    consistent(&p, "after a re-lookup");
    g_live[0] = g_live[1] = NULL;
    gptoss_kv_seq_release(&p, &a, ta);
    gptoss_kv_seq_release(&p, &b, tb);
    uint32_t free_blocks = 0, cached = 0;
    gptoss_kv_pool_counts(&p, &free_blocks, &cached);
    CHECK(free_blocks == p.num_blocks && cached > 0, "released: all free, %u cached", cached);
    gptoss_kv_pool_free(&p);
}

/* Two conversations after a shared prompt: b forks from released a inside a block that a
 * alone holds cached; writing b's continuation must not destroy a's (the block is copied,
 * not taken), so a's next turn finds all of its tokens again. */
static void test_fork(gptoss_backend_t backend) {
    const uint32_t window = 16, chunk = 8;
    struct gptoss_kv_pool p;
    CHECK(gptoss_kv_pool_init(&p, backend, L, HKV, D, window, 4 * gptoss_kv_seq_blocks(window, 100, chunk)) ==
              gptoss_status_success, "pool");
    uint32_t ta[100], tb[100];
    random_tokens(ta, 100);
    memcpy(tb, ta, 70 * sizeof(uint32_t));
    random_tokens(tb + 70, 30);
    if (tb[70] == ta[70]) tb[70] ^= 1;
    struct gptoss_kv_seq a, b;
    gptoss_kv_seq_init(&p, &a, 100, chunk);
    g_live[0] = &a;
    prefill(&p, &a, ta, 76, chunk);
    g_live[0] = NULL;
    gptoss_kv_seq_release(&p, &a, ta);
    gptoss_kv_seq_init(&p, &b, 100, chunk);
    g_live[0] = &b;
    CHECK(gptoss_kv_seq_lookup(&p, &b, tb, 100) == gptoss_status_success && b.kv_tokens == 70, "b forks at 70: %zu",
          b.kv_tokens);
    prefill(&p, &b, tb, 100, chunk);
    consistent(&p, "after a fork from a cached block");
    g_live[0] = NULL;
    gptoss_kv_seq_release(&p, &b, tb);
    gptoss_kv_seq_init(&p, &a, 100, chunk);
    g_live[0] = &a;
    CHECK(gptoss_kv_seq_lookup(&p, &a, ta, 100) == gptoss_status_success && a.kv_tokens == 76 && holds(&p, &a, ta),
          "after b forked from it, a finds all of its 76 tokens: %zu", a.kv_tokens);
    g_live[0] = NULL;
    gptoss_kv_seq_release(&p, &a, ta);
    gptoss_kv_pool_free(&p);
}

/* The same fork when the budget has no other block free (a context, one sequence's blocks,
 * re-appending a prompt that diverges inside its last block): the block is taken. */
static void test_fork_full(gptoss_backend_t backend) {
    const uint32_t chunk = 16, n = 48;
    struct gptoss_kv_pool p;
    CHECK(gptoss_kv_pool_init(&p, backend, L, HKV, D, UINT32_MAX, gptoss_kv_seq_blocks(UINT32_MAX, n, chunk)) ==
              gptoss_status_success, "pool");
    uint32_t ta[48], tb[48];
    random_tokens(ta, n);
    memcpy(tb, ta, sizeof(tb));
    tb[40] ^= 1;
    struct gptoss_kv_seq a;
    gptoss_kv_seq_init(&p, &a, n, chunk);
    g_live[0] = &a;
    prefill(&p, &a, ta, n, chunk);
    g_live[0] = NULL;
    gptoss_kv_seq_clear(&p, &a, ta);
    g_live[0] = &a;
    CHECK(gptoss_kv_seq_lookup(&p, &a, tb, n) == gptoss_status_success && a.kv_tokens == 40 && p.num_free == 0 &&
              holds(&p, &a, tb), "the fork takes the block when none is free: %zu tokens, %u free", a.kv_tokens,
          p.num_free);
    consistent(&p, "after a fork in a full pool");
    g_live[0] = NULL;
    gptoss_kv_seq_release(&p, &a, tb);
    gptoss_kv_pool_free(&p);
}

static void test_eviction(gptoss_backend_t backend) {
    const uint32_t window = 16, chunk = 16;
    const uint32_t per_seq = gptoss_kv_seq_blocks(window, 160, chunk);
    struct gptoss_kv_pool p;
    CHECK(gptoss_kv_pool_init(&p, backend, L, HKV, D, window, per_seq) == gptoss_status_success, "pool");
    uint32_t t1[160], t2[160];
    random_tokens(t1, 160);
    random_tokens(t2, 160);
    struct gptoss_kv_seq s;
    gptoss_kv_seq_init(&p, &s, 160, chunk);
    g_live[0] = &s;
    prefill(&p, &s, t1, 160, chunk);
    g_live[0] = NULL;
    gptoss_kv_seq_release(&p, &s, t1);
    /* a different sequence of the same length takes every block */
    gptoss_kv_seq_init(&p, &s, 160, chunk);
    g_live[0] = &s;
    prefill(&p, &s, t2, 160, chunk);
    g_live[0] = NULL;
    gptoss_kv_seq_release(&p, &s, t2);
    gptoss_kv_seq_init(&p, &s, 160, chunk);
    g_live[0] = &s;
    CHECK(gptoss_kv_seq_lookup(&p, &s, t1, 160) == gptoss_status_success, "lookup");
    CHECK(holds(&p, &s, t1), "what is found of the evicted sequence holds its K/V (%zu tokens)", s.kv_tokens);
    CHECK(s.kv_tokens < 160, "the evicted sequence is not found whole: %zu", s.kv_tokens);
    consistent(&p, "after eviction");
    g_live[0] = NULL;
    gptoss_kv_seq_release(&p, &s, t1);
    gptoss_kv_pool_free(&p);
}

int main(void) {
    const char* seed_env = getenv("GPTOSS_TEST_SEED");
    g_rng = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t) time(NULL);
    printf("seed %llu (GPTOSS_TEST_SEED)\n", (unsigned long long) g_rng);
    gptoss_backend_t backend = NULL;
    if (gptoss_backend_create_cpu(1, &backend) != gptoss_status_success) {
        fprintf(stderr, "backend: %s\n", gptoss_last_error());
        return 1;
    }
    test_admission(backend);
    test_sliding(backend);
    test_prefix(backend);
    test_fork(backend);
    test_fork_full(backend);
    test_eviction(backend);
    gptoss_backend_release(backend);
    return finish();
}
