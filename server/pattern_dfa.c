/* The byte DFA of an anchored pattern (pattern_dfa.h): the translated regex parsed into a
 * Thompson NFA, then the subset construction over classes of bytes, eagerly and within
 * caps (NFA states, DFA states, and the work of the construction, so that a request's
 * schema compiles in bounded time). */
#include "pattern_dfa.h"

#include <stdlib.h>
#include <string.h>

enum { N_RANGE, N_EPS, N_SPLIT, N_ACCEPT, N_ANY };
#define NONE UINT32_MAX
#define INF UINT32_MAX

struct nfa {
    struct nstate {
        uint8_t type, lo, hi;
        uint32_t out1, out2;
    } * s;
    uint32_t n, cap;
    bool bad; /* malformed, or over SRV_DFA_MAX_NFA */
};

static uint32_t add(struct nfa* a, uint8_t type, uint8_t lo, uint8_t hi) {
    if (a->bad) return 0;
    if (a->n >= SRV_DFA_MAX_NFA) {
        a->bad = true;
        return 0;
    }
    if (a->n == a->cap) {
        const uint32_t cap = a->cap ? 2 * a->cap : 256;
        struct nstate* s = realloc(a->s, (size_t) cap * sizeof(*s));
        if (s == NULL) {
            a->bad = true;
            return 0;
        }
        a->s = s;
        a->cap = cap;
    }
    a->s[a->n] = (struct nstate){type, lo, hi, NONE, NONE};
    return a->n++;
}

/* A fragment: its start, and its end, a state whose out1 is still to be set. */
struct frag {
    uint32_t start, end;
};

struct parser {
    const char* p;
    size_t i, n;
    struct nfa* a;
};

static bool at(const struct parser* ps, char c) { return ps->i < ps->n && ps->p[ps->i] == c; }
static void patch(struct nfa* a, uint32_t s, uint32_t to) {
    if (!a->bad) a->s[s].out1 = to;
}

static struct frag empty(struct nfa* a) {
    const uint32_t e = add(a, N_EPS, 0, 0);
    return (struct frag){e, e};
}

static struct frag concat(struct nfa* a, struct frag x, struct frag y) {
    patch(a, x.end, y.start);
    return (struct frag){x.start, y.end};
}

static struct frag parse_alt(struct parser* ps);

static int hex(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* [\xHH-\xHH] at ps->i */
static bool parse_range(struct parser* ps, uint8_t* lo, uint8_t* hi) {
    if (ps->i + 11 > ps->n) return false;
    const char* q = ps->p + ps->i;
    if (memcmp(q, "[\\x", 3) != 0 || memcmp(q + 5, "-\\x", 3) != 0 || q[10] != ']') return false;
    const int a1 = hex(q[3]), a0 = hex(q[4]), b1 = hex(q[8]), b0 = hex(q[9]);
    if (a1 < 0 || a0 < 0 || b1 < 0 || b0 < 0) return false;
    *lo = (uint8_t) (a1 << 4 | a0);
    *hi = (uint8_t) (b1 << 4 | b0);
    ps->i += 11;
    return *lo <= *hi;
}

static struct frag parse_atom(struct parser* ps) {
    struct nfa* a = ps->a;
    if (at(ps, '(')) {
        if (ps->i + 3 > ps->n || ps->p[ps->i + 1] != '?' || ps->p[ps->i + 2] != ':') {
            a->bad = true;
            return (struct frag){0, 0};
        }
        ps->i += 3;
        const struct frag f = parse_alt(ps);
        if (!at(ps, ')')) a->bad = true;
        ps->i++;
        return f;
    }
    uint8_t lo, hi;
    if (!parse_range(ps, &lo, &hi)) {
        a->bad = true;
        return (struct frag){0, 0};
    }
    const uint32_t r = add(a, N_RANGE, lo, hi);
    return (struct frag){r, r};
}

static bool parse_count(struct parser* ps, uint32_t* v) {
    uint32_t x = 0, digits = 0;
    while (ps->i < ps->n && ps->p[ps->i] >= '0' && ps->p[ps->i] <= '9' && digits < 6) {
        x = x * 10 + (uint32_t) (ps->p[ps->i++] - '0');
        digits++;
    }
    *v = x;
    return digits > 0;
}

/* An atom and its quantifier: copies of the atom (its text parsed again) as the
 * quantifier asks. */
static struct frag parse_piece(struct parser* ps) {
    struct nfa* a = ps->a;
    const size_t begin = ps->i;
    struct frag f = parse_atom(ps);
    const size_t end = ps->i;
    uint32_t lo = 1, hi = 1;
    if (at(ps, '*') || at(ps, '+') || at(ps, '?')) {
        const char q = ps->p[ps->i++];
        lo = q == '+' ? 1 : 0;
        hi = q == '?' ? 1 : INF;
    } else if (at(ps, '{')) {
        ps->i++;
        if (!parse_count(ps, &lo)) a->bad = true;
        hi = lo;
        if (at(ps, ',')) {
            ps->i++;
            if (!parse_count(ps, &hi)) hi = INF;
        }
        if (!at(ps, '}') || hi < lo) a->bad = true;
        ps->i++;
    } else {
        return f;
    }
    if (at(ps, '?')) ps->i++; /* lazy: the same strings */
    if (a->bad) return f;
    const size_t resume = ps->i;
    /* copy k of the atom: the first is f, the others parsed again from its text */
    uint32_t made = 0, skip_to = NONE; /* skip_to: the end the optional copies skip to */
    struct frag out = empty(a);
    const uint32_t copies = hi == INF ? (lo > 0 ? lo : 1) : hi;
    for (uint32_t k = 0; k < copies && !a->bad; k++) {
        struct frag g = f;
        if (made++ > 0) {
            ps->i = begin;
            g = parse_atom(ps);
            if (ps->i != end) a->bad = true;
        }
        if (a->bad) break;
        if (hi == INF && k + 1 == copies) {
            /* the last copy repeats: g+ (or g* when lo is 0) */
            const uint32_t e = add(a, N_EPS, 0, 0), s = add(a, N_SPLIT, 0, 0);
            if (a->bad) break;
            a->s[s].out1 = g.start;
            a->s[s].out2 = e;
            patch(a, g.end, s);
            out = concat(a, out, (struct frag){lo == 0 ? s : g.start, e});
        } else if (k >= lo) {
            /* optional, nested: x{lo,hi} as x^lo (x (x (...)?)?)?, every skip straight to the
             * end (flat x? x? ... would make each closure, and each DFA state's set, as long as
             * the optional copies left: quadratic work for .{0,280}) */
            if (skip_to == NONE) skip_to = add(a, N_EPS, 0, 0);
            const uint32_t s = add(a, N_SPLIT, 0, 0);
            if (a->bad) break;
            a->s[s].out1 = g.start;
            a->s[s].out2 = skip_to;
            out = concat(a, out, (struct frag){s, g.end});
        } else {
            out = concat(a, out, g);
        }
    }
    if (skip_to != NONE && !a->bad) {
        patch(a, out.end, skip_to);
        out.end = skip_to;
    }
    ps->i = resume;
    return out;
}

/* Pieces up to '|', ')', '$' or the end. */
static struct frag parse_concat(struct parser* ps) {
    struct frag f = empty(ps->a);
    while (ps->i < ps->n && !at(ps, '|') && !at(ps, ')') && !at(ps, '$') && !ps->a->bad) f = concat(ps->a, f, parse_piece(ps));
    return f;
}

/* Alternatives inside a group: a chain of splits, alt1 | (alt2 | (alt3 | ...)). */
static struct frag parse_alt(struct parser* ps) {
    struct nfa* a = ps->a;
    struct frag f = parse_concat(ps);
    if (!at(ps, '|')) return f;
    const uint32_t e = add(a, N_EPS, 0, 0);
    patch(a, f.end, e);
    uint32_t start = f.start, last = NONE; /* last: the split whose out2 is the last alternative */
    while (at(ps, '|') && !a->bad) {
        ps->i++;
        const struct frag g = parse_concat(ps);
        patch(a, g.end, e);
        const uint32_t s = add(a, N_SPLIT, 0, 0);
        if (a->bad) break;
        if (last == NONE) {
            a->s[s].out1 = start;
            start = s;
        } else {
            a->s[s].out1 = a->s[last].out2;
            a->s[last].out2 = s;
        }
        a->s[s].out2 = g.start;
        last = s;
    }
    return (struct frag){start, e};
}

/* The whole regex: top-level alternatives, each '^' ...  ['$']. */
static uint32_t parse_top(struct parser* ps) {
    struct nfa* a = ps->a;
    const uint32_t accept = add(a, N_ACCEPT, 0, 0), any = add(a, N_ANY, 0, 0);
    uint32_t start = NONE;
    for (;;) {
        if (!at(ps, '^')) {
            a->bad = true;
            return 0;
        }
        ps->i++;
        const struct frag f = parse_concat(ps);
        bool dollar = false;
        if (at(ps, '$')) {
            dollar = true;
            ps->i++;
        }
        patch(a, f.end, dollar ? accept : any);
        if (start == NONE) {
            start = f.start;
        } else {
            const uint32_t s = add(a, N_SPLIT, 0, 0);
            if (a->bad) return 0;
            a->s[s].out1 = start;
            a->s[s].out2 = f.start;
            start = s;
        }
        if (a->bad) return 0;
        if (ps->i == ps->n) return start;
        if (!at(ps, '|')) {
            a->bad = true;
            return 0;
        }
        ps->i++;
    }
}

/* ---- the subset construction ---------------------------------------------------------- */

struct builder {
    const struct nfa* a;
    uint32_t* mark; /* [nfa states]: generation of the last visit */
    uint32_t gen;
    uint32_t* stack;
    uint64_t work;
    /* the DFA's states as sets of NFA states (RANGE, ACCEPT, ANY only), sorted */
    uint32_t* pool;
    size_t pool_n, pool_cap;
    size_t* set_at; /* [state]: offset in pool; set_at[state + 1] - set_at[state]: size */
    uint32_t num;
    uint32_t* table; /* hash of a set -> state + 1 (0: empty slot) */
    uint32_t table_size;
};

static int cmp_u32(const void* x, const void* y) {
    const uint32_t a = *(const uint32_t*) x, b = *(const uint32_t*) y;
    return (a > b) - (a < b);
}

/* The closure of seeds[0, n) into the pool's tail (sorted, unique); its size. */
static size_t closure(struct builder* b, const uint32_t* seeds, size_t n) {
    const struct nfa* a = b->a;
    b->gen++;
    size_t top = 0, count = 0;
    for (size_t k = 0; k < n; k++) {
        if (b->mark[seeds[k]] == b->gen) continue;
        b->mark[seeds[k]] = b->gen;
        b->stack[top++] = seeds[k];
    }
    while (top > 0) {
        const uint32_t q = b->stack[--top];
        b->work++;
        const struct nstate* s = &a->s[q];
        if (s->type == N_EPS || s->type == N_SPLIT) {
            const uint32_t outs[2] = {s->out1, s->out2};
            for (int o = 0; o < (s->type == N_SPLIT ? 2 : 1); o++) {
                const uint32_t t = outs[o];
                if (t != NONE && b->mark[t] != b->gen) {
                    b->mark[t] = b->gen;
                    b->stack[top++] = t;
                }
            }
        } else {
            b->pool[b->pool_n + count++] = q;
        }
    }
    qsort(b->pool + b->pool_n, count, sizeof(uint32_t), cmp_u32);
    return count;
}

static uint32_t hash_set(const uint32_t* x, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t k = 0; k < n; k++) h = (h ^ x[k]) * 16777619u;
    return h ^ (uint32_t) n;
}

/* The state of the set at the pool's tail (size n): an existing one, or a new one (the set
 * kept); NONE past the cap. */
static uint32_t intern(struct builder* b, size_t n) {
    const uint32_t* x = b->pool + b->pool_n;
    if (n == 0) return 0;
    uint32_t h = hash_set(x, n) & (b->table_size - 1);
    for (;; h = (h + 1) & (b->table_size - 1)) {
        const uint32_t e = b->table[h];
        if (e == 0) break;
        const uint32_t st = e - 1;
        const size_t m = b->set_at[st + 1] - b->set_at[st];
        if (m == n && memcmp(b->pool + b->set_at[st], x, n * sizeof(uint32_t)) == 0) return st;
    }
    if (b->num >= SRV_DFA_MAX_STATES) return NONE;
    const uint32_t st = b->num++;
    b->table[h] = st + 1;
    b->pool_n += n;
    b->set_at[st + 1] = b->pool_n;
    return st;
}

static bool reserve_pool(struct builder* b, size_t more) {
    if (b->pool_n + more <= b->pool_cap) return true;
    size_t cap = b->pool_cap ? b->pool_cap : 1024;
    while (cap < b->pool_n + more) cap *= 2;
    uint32_t* p = realloc(b->pool, cap * sizeof(uint32_t));
    if (p == NULL) return false;
    b->pool = p;
    b->pool_cap = cap;
    return true;
}

void srv_dfa_free(struct srv_dfa* d) {
    if (d == NULL) return;
    free(d->next);
    free(d->accepting);
    free(d);
}

static struct srv_dfa* construct(const struct nfa* a, uint32_t start, uint64_t budget, uint64_t* used, int* why) {
    struct builder b = {.a = a, .table_size = 2 * SRV_DFA_MAX_STATES};
    struct srv_dfa* d = calloc(1, sizeof(*d));
    b.mark = calloc(a->n, sizeof(uint32_t));
    b.stack = malloc((size_t) a->n * sizeof(uint32_t));
    b.set_at = calloc(SRV_DFA_MAX_STATES + 1, sizeof(size_t));
    b.table = calloc(b.table_size, sizeof(uint32_t));
    uint32_t* seeds = malloc((size_t) a->n * sizeof(uint32_t));
    bool ok = d != NULL && b.mark != NULL && b.stack != NULL && b.set_at != NULL && b.table != NULL && seeds != NULL;
    /* classes of bytes: a class starts at every range's first byte and after its last */
    uint8_t starts[257] = {0};
    starts[0] = 1;
    for (uint32_t q = 0; ok && q < a->n; q++) {
        if (a->s[q].type != N_RANGE) continue;
        starts[a->s[q].lo] = 1;
        starts[a->s[q].hi + 1] = 1;
    }
    uint8_t first[256]; /* a class's first byte */
    uint32_t classes = 0;
    for (int c = 0; ok && c < 256; c++) {
        if (starts[c]) first[classes++] = (uint8_t) c;
        d->cls[c] = (uint8_t) (classes - 1);
    }
    if (ok) d->num_classes = classes;
    /* state 0: dead (the empty set), 1: the start's closure */
    b.num = 1;
    ok = ok && reserve_pool(&b, a->n);
    if (ok) {
        const size_t n = closure(&b, &start, 1);
        ok = n > 0 && intern(&b, n) == 1;
    }
    uint16_t* next = ok ? malloc((size_t) SRV_DFA_MAX_STATES * classes * sizeof(uint16_t)) : NULL;
    ok = ok && next != NULL;
    for (uint32_t st = 1; ok && st < b.num; st++) {
        for (uint32_t c = 0; ok && c < classes; c++) {
            const uint8_t byte = first[c];
            size_t ns = 0;
            for (size_t k = b.set_at[st]; k < b.set_at[st + 1]; k++) {
                const struct nstate* s = &a->s[b.pool[k]];
                if (s->type == N_RANGE && byte >= s->lo && byte <= s->hi && s->out1 != NONE) seeds[ns++] = s->out1;
                else if (s->type == N_ANY) seeds[ns++] = b.pool[k];
            }
            if (!reserve_pool(&b, a->n)) {
                ok = false;
                break;
            }
            const uint32_t to = intern(&b, closure(&b, seeds, ns));
            if (to == NONE || b.work > budget) {
                *why = SRV_DFA_TOO_LARGE;
                ok = false;
            }
            else next[(size_t) st * classes + c] = (uint16_t) to;
        }
    }
    if (ok) {
        for (uint32_t c = 0; c < classes; c++) next[c] = 0; /* dead stays dead */
        d->num_states = b.num;
        d->accepting = calloc(b.num, 1);
        ok = d->accepting != NULL;
    }
    /* accepting: the set holds ACCEPT or ANY; live: an accepting state is reachable (a
     * state that is not becomes the dead one, so that 0 means no completion) */
    uint8_t* live = ok ? calloc(b.num, 1) : NULL;
    ok = ok && live != NULL;
    for (uint32_t st = 1; ok && st < b.num; st++) {
        for (size_t k = b.set_at[st]; k < b.set_at[st + 1]; k++) {
            const uint8_t t = a->s[b.pool[k]].type;
            if (t == N_ACCEPT || t == N_ANY) d->accepting[st] = live[st] = 1;
        }
    }
    /* backwards from the accepting states over the reversed transitions (counting sort by
     * target: rev[first[t] ..] are the states with an edge to t) */
    uint32_t* first_in = ok ? calloc((size_t) b.num + 1, sizeof(uint32_t)) : NULL;
    uint32_t* rev = ok ? malloc((size_t) b.num * classes * sizeof(uint32_t)) : NULL;
    uint32_t* queue = ok ? malloc((size_t) b.num * sizeof(uint32_t)) : NULL;
    ok = ok && first_in != NULL && rev != NULL && queue != NULL;
    if (ok) {
        for (size_t k = classes; k < (size_t) b.num * classes; k++) first_in[next[k] + 1]++;
        for (uint32_t t = 0; t < b.num; t++) first_in[t + 1] += first_in[t];
        for (uint32_t st = 1; st < b.num; st++)
            for (uint32_t c = 0; c < classes; c++) rev[first_in[next[(size_t) st * classes + c]]++] = st;
        for (uint32_t t = b.num; t > 0; t--) first_in[t] = first_in[t - 1]; /* back to the starts */
        first_in[0] = 0;
        uint32_t qn = 0;
        for (uint32_t st = 1; st < b.num; st++)
            if (live[st]) queue[qn++] = st;
        for (uint32_t qi = 0; qi < qn; qi++) {
            const uint32_t t = queue[qi];
            for (uint32_t k = first_in[t]; k < first_in[t + 1]; k++) {
                if (!live[rev[k]]) {
                    live[rev[k]] = 1;
                    queue[qn++] = rev[k];
                }
            }
        }
    }
    free(first_in);
    free(rev);
    free(queue);
    if (ok) {
        for (size_t k = 0; k < (size_t) b.num * classes; k++)
            if (!live[next[k]]) next[k] = 0;
        if (!live[1]) { /* no string matches: PCRE2 says so on its own */
            *why = SRV_DFA_MATCHES_NOTHING;
            ok = false;
        }
    }
    *used = b.work;
    free(live);
    free(seeds);
    free(b.mark);
    free(b.stack);
    free(b.set_at);
    free(b.table);
    free(b.pool);
    if (!ok) {
        if (*why == SRV_DFA_BUILT) *why = SRV_DFA_NO_MEMORY;
        free(next);
        srv_dfa_free(d);
        return NULL;
    }
    uint16_t* fit = realloc(next, (size_t) b.num * classes * sizeof(uint16_t));
    d->next = fit != NULL ? fit : next;
    return d;
}

struct srv_dfa* srv_dfa_build(const char* regex, size_t len, uint64_t* budget, int* why) {
    int w = SRV_DFA_BUILT;
    struct srv_dfa* d = NULL;
    if (regex == NULL || budget == NULL) {
        w = SRV_DFA_MALFORMED;
    } else {
        struct nfa a = {0};
        struct parser ps = {regex, 0, len, &a};
        const uint32_t start = parse_top(&ps);
        *budget -= a.n < *budget ? a.n : *budget; /* the NFA's states, made whatever follows */
        if (a.bad || ps.i != len) {
            w = a.n >= SRV_DFA_MAX_NFA ? SRV_DFA_TOO_LARGE : SRV_DFA_MALFORMED;
        } else if (*budget == 0) {
            w = SRV_DFA_TOO_LARGE;
        } else {
            uint64_t used = 0;
            d = construct(&a, start, *budget, &used, &w);
            *budget -= used < *budget ? used : *budget;
        }
        free(a.s);
    }
    if (why != NULL) *why = w;
    return d;
}
