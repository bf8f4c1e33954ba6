/* The pattern DFA (server/pattern_dfa.c) against PCRE2 on the same regex: random regexes of
 * the form json_schema.c's translator writes (byte ranges, groups, alternation, the
 * quantifiers with their lazy forms, '^' first and '$' last in top-level alternatives) and
 * random byte strings; at every non-empty prefix the DFA's state is live exactly when PCRE2
 * finds a match or a partial match (PCRE2_PARTIAL_HARD, anchored), and at every prefix
 * accepting exactly when PCRE2 matches (not partially). Also: the caps and the budget (a DFA
 * too large is refused; the server then refuses its pattern) and malformed regexes
 * (refused, never read past their end).
 *
 *   test_pattern_dfa [--seed N] [--regexes N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "../engine/test_util.h"
#include "pattern_dfa.h"

static unsigned long long g_state;
static uint32_t below(uint32_t n) {
    g_state = g_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t) (g_state >> 33) % n;
}

static unsigned g_too_large;

/* bytes the strings are drawn from: four letters, and two bytes above 0x7F */
static const uint8_t kBytes[] = {'a', 'b', 'c', 'd', 0xC3, 0xA9};

struct buf {
    char s[4096];
    size_t n;
};
static void put(struct buf* b, const char* t) {
    const size_t k = strlen(t);
    if (b->n + k < sizeof(b->s)) {
        memcpy(b->s + b->n, t, k);
        b->n += k;
        b->s[b->n] = '\0';
    }
}

static void gen_alt(struct buf* b, int depth);

static void gen_atom(struct buf* b, int depth) {
    if (depth < 3 && below(3) == 0) {
        put(b, "(?:");
        gen_alt(b, depth + 1);
        put(b, ")");
        return;
    }
    uint32_t lo = kBytes[below(6)], hi = lo;
    if (below(3) == 0) hi = kBytes[below(6)];
    if (hi < lo) {
        const uint32_t t = lo;
        lo = hi;
        hi = t;
    }
    char r[16];
    snprintf(r, sizeof(r), "[\\x%02x-\\x%02x]", lo, hi);
    put(b, r);
}

static void gen_piece(struct buf* b, int depth) {
    gen_atom(b, depth);
    char q[24];
    switch (below(9)) {
    case 0: put(b, "*"); break;
    case 1: put(b, "+"); break;
    case 2: put(b, "?"); break;
    case 3: snprintf(q, sizeof(q), "{%u}", below(4)); put(b, q); break;
    case 4: snprintf(q, sizeof(q), "{%u,}", below(3)); put(b, q); break;
    case 5: {
        const uint32_t lo = below(3);
        snprintf(q, sizeof(q), "{%u,%u}", lo, lo + below(3));
        put(b, q);
        break;
    }
    default: return;
    }
    if (below(4) == 0) put(b, "?"); /* lazy */
}

static void gen_concat(struct buf* b, int depth) {
    for (uint32_t k = below(4); k > 0; k--) gen_piece(b, depth);
}

static void gen_alt(struct buf* b, int depth) {
    gen_concat(b, depth);
    for (uint32_t k = below(3) == 0 ? 1 + below(2) : 0; k > 0; k--) {
        put(b, "|");
        gen_concat(b, depth);
    }
}

static void gen_regex(struct buf* b) {
    b->n = 0;
    b->s[0] = '\0';
    for (uint32_t k = 1 + (below(3) == 0 ? below(2) + 1 : 0); k > 0; k--) {
        put(b, "^");
        gen_concat(b, 0);
        if (below(2)) put(b, "$");
        if (k > 1) put(b, "|");
    }
}

static int pcre_test(pcre2_code* re, pcre2_match_data* md, const uint8_t* s, size_t n, int partial) {
    const int rc = pcre2_match(re, s, n, 0, partial ? PCRE2_PARTIAL_HARD : 0, md, NULL);
    if (rc >= 0) return 1;
    if (partial && rc == PCRE2_ERROR_PARTIAL) return 1;
    return rc == PCRE2_ERROR_NOMATCH || rc == PCRE2_ERROR_PARTIAL ? 0 : -1;
}

static void check_regex(const char* regex, unsigned strings) {
    int code;
    PCRE2_SIZE at;
    pcre2_code* re = pcre2_compile((PCRE2_SPTR) regex, strlen(regex),
                                   PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_UTF | PCRE2_NEVER_UCP | PCRE2_NO_AUTO_CAPTURE |
                                       PCRE2_ANCHORED,
                                   &code, &at, NULL);
    if (re == NULL) {
        CHECK(0, "PCRE2 refuses the generated %s", regex);
        return;
    }
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(re, NULL);
    int why = -1;
    uint64_t budget = 50000000;
    struct srv_dfa* d = srv_dfa_build(regex, strlen(regex), &budget, &why);
    /* past the caps (DFA states: a few random regexes need thousands) is not an error of the
     * DFA: the server refuses such a pattern; counted and bounded below */
    if (why == SRV_DFA_TOO_LARGE) g_too_large++;
    else CHECK(d != NULL && why == SRV_DFA_BUILT, "no DFA for %s (why %d)", regex, why);
    for (unsigned r = 0; d != NULL && r < strings; r++) {
        uint8_t s[12];
        const size_t n = below(sizeof(s) + 1);
        for (size_t i = 0; i < n; i++) s[i] = kBytes[below(6)];
        uint32_t q = 1;
        for (size_t i = 0; i <= n; i++) {
            /* PCRE2 never reports a partial match of the empty subject; the recognizer asks it
             * nothing there either (a string's start is viable when the pattern matches
             * something, which a built DFA's start state means) */
            const int whole = pcre_test(re, md, s, i, 0), viable = i == 0 ? 1 : pcre_test(re, md, s, i, 1);
            if (viable < 0 || whole < 0) { /* PCRE2 reached its match limit (backtracking): it cannot tell */
                g_skipped++;
                if (i < n) q = srv_dfa_step(d, q, s[i]);
                continue;
            }
            CHECK((q != 0) == (viable == 1) && (q != 0 && d->accepting[q]) == (whole == 1),
                  "%s on %zu bytes (%.*s): DFA state %u (accepting %d), PCRE2 partial %d, whole %d", regex, i, (int) i,
                  (const char*) s, q, q ? d->accepting[q] : 0, viable, whole);
            if (q == 0 && viable != 1) break; /* dead stays dead: the rest of the prefixes agree */
            if (i < n) q = srv_dfa_step(d, q, s[i]);
        }
    }
    srv_dfa_free(d);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
}

int main(int argc, char** argv) {
    unsigned long long seed = 0;
    unsigned regexes = 1500;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--seed") == 0) seed = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--regexes") == 0) regexes = (unsigned) strtoul(argv[i + 1], NULL, 10);
    }
    if (seed == 0) {
        FILE* f = fopen("/dev/urandom", "rb");
        if (f == NULL || fread(&seed, sizeof(seed), 1, f) != 1) seed = 12345;
        if (f) fclose(f);
        seed %= 1000000000ull;
    }
    printf("seed %llu (replay: --seed %llu)\n", seed, seed);
    g_state = seed;
    struct buf b;
    for (unsigned k = 0; k < regexes; k++) {
        gen_regex(&b);
        check_regex(b.s, 60);
    }
    /* fixed ones: every byte value as a range's end, the empty regex forms, a long count */
    check_regex("^[\\x00-\\xff]*$", 200);
    check_regex("^", 20);
    check_regex("^$", 20);
    check_regex("^(?:[\\x61-\\x61]){0}$|^(?:[\\x62-\\x62]){3,}", 200);
    check_regex("^(?:(?:[\\x61-\\x62])(?:[\\x63-\\x63])?){5,7}?$", 200);
    /* the caps: 2^21 states needed (an 'a' 21st from the end) is refused, as is an NFA past
     * SRV_DFA_MAX_NFA states (copies of copies) */
    uint64_t budget = 50000000;
    const char* expo = "^(?:[\\x61-\\x62])*(?:[\\x61-\\x61])(?:[\\x61-\\x62]){20}$";
    int why = -1;
    CHECK(srv_dfa_build(expo, strlen(expo), &budget, &why) == NULL && why == SRV_DFA_TOO_LARGE, "an exponential DFA is refused");
    const char* big = "^(?:(?:(?:[\\x61-\\x61]){1000}){1000})$";
    CHECK(srv_dfa_build(big, strlen(big), &budget, &why) == NULL && why == SRV_DFA_TOO_LARGE, "an NFA of a million states is refused");
    /* the budget: a build that needs more work than is left is refused, and takes its work */
    uint64_t little = 100;
    const char* k1000 = "^(?:[\\x61-\\x61]){1000}$";
    CHECK(srv_dfa_build(k1000, strlen(k1000), &little, &why) == NULL && why == SRV_DFA_TOO_LARGE && little == 0,
          "a{1000} on a budget of 100 steps: refused (why %d, %llu left)", why, (unsigned long long) little);
    budget = 50000000;
    struct srv_dfa* d1000 = srv_dfa_build(k1000, strlen(k1000), &budget, &why);
    CHECK(d1000 != NULL && d1000->num_states == 1002, "a{1000}: 1,002 states (dead, start, 1,000 more)");
    srv_dfa_free(d1000);
    /* malformed: refused, and never read past the given length (the copy has no NUL after it) */
    static const char* const kBad[] = {"", "a", "[\\x61-\\x61]", "^(?:[\\x61-\\x61]", "^[\\x61-\\x6", "^[\\x62-\\x61]",
                                       "^(?:)", "^$x", "^*", "^[\\x61-\\x61]{2", "^[\\x61-\\x61]{3,1}", "^(?=[\\x61-\\x61])",
                                       "^[\\x61-\\x61]|[\\x61-\\x61]", "^[\\x61-\\x61])"};
    for (size_t k = 0; k < sizeof(kBad) / sizeof(kBad[0]); k++) {
        const size_t n = strlen(kBad[k]);
        char* copy = malloc(n ? n : 1);
        memcpy(copy, kBad[k], n);
        struct srv_dfa* d = srv_dfa_build(copy, n, &budget, &why);
        /* "^(?:)" is a well-formed empty group: accepted, and it matches everything */
        if (strcmp(kBad[k], "^(?:)") == 0) CHECK(d != NULL && d->accepting[1], "^(?:) matches the empty prefix");
        else CHECK(d == NULL && why == SRV_DFA_MALFORMED, "malformed %s refused (why %d)", kBad[k], why);
        srv_dfa_free(d);
        free(copy);
    }
    CHECK(g_too_large * 20 <= regexes, "%u of %u random regexes past the DFA's caps (at most 5 %%)", g_too_large, regexes);
    printf("%u regexes past the DFA's caps (the server refuses such patterns); skipped below: prefixes where PCRE2 reached its "
           "match limit and cannot tell\n", g_too_large);
    return finish();
}
