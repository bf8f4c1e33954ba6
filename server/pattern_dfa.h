/* A byte DFA for a structured output's anchored pattern (server/json_schema.c), built from
 * the regex that json_schema.c's translator writes for PCRE2: byte ranges [\xHH-\xHH],
 * non-capturing groups (?:...), alternation, the quantifiers * + ? {n} {n,} {n,m} (lazy or
 * not: the same strings), '^' at the start of every top-level alternative and '$' at the
 * end of some. PCRE2 stays the reference for what a pattern means (the tests compare the
 * two); the DFA answers the questions a walk of the vocabulary asks at every byte in O(1):
 * can this prefix still be completed into a match, and is it a match. A top-level
 * alternative without '$' matches a string that begins with one of its matches (JSON
 * Schema's patterns are searches; anchored, only the start is fixed).
 *
 * State 0 is dead (no completion), state 1 the start. Built eagerly, so a built DFA is
 * immutable (shared by a request's choices); NULL where the regex is not of this form, or
 * its NFA or DFA would pass the caps (json_schema.c then refuses the pattern: too complex to
 * enforce). */
#ifndef GPTOSS_SERVER_PATTERN_DFA_H
#define GPTOSS_SERVER_PATTERN_DFA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SRV_DFA_MAX_NFA 100000  /* NFA states of a pattern (counted repetitions are copies) */
#define SRV_DFA_MAX_STATES 16384 /* DFA states, the dead one included (ids are 16-bit) */

struct srv_dfa {
    uint32_t num_states, num_classes;
    uint8_t cls[256];     /* byte -> class of bytes every state treats alike */
    uint16_t* next;       /* [num_states][num_classes]: the next state (0: dead) */
    uint8_t* accepting;   /* [num_states]: the bytes so far are a match */
};

/* *budget: the work left to the caller (NFA states made and states visited by the
 * construction's closures), shared by a schema's patterns; what this build used is taken
 * from it, and a build that would need more is refused (SRV_DFA_TOO_LARGE). why (may be
 * NULL): SRV_DFA_BUILT, or why NULL came back. */
enum { SRV_DFA_BUILT = 0, SRV_DFA_MALFORMED = 1, SRV_DFA_TOO_LARGE = 2, SRV_DFA_NO_MEMORY = 3, SRV_DFA_MATCHES_NOTHING = 4 };
struct srv_dfa* srv_dfa_build(const char* regex, size_t len, uint64_t* budget, int* why);
void srv_dfa_free(struct srv_dfa* d);

static inline uint32_t srv_dfa_step(const struct srv_dfa* d, uint32_t state, uint8_t byte) {
    return d->next[(size_t) state * d->num_classes + d->cls[byte]];
}

#endif
