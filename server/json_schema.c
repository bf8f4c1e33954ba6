/* Structured outputs (response_format {"type": "json_schema"}): a JSON Schema subset compiled
 * into a recognizer of the JSON texts valid against it, byte by byte, and the tokens it allows.
 *
 * Compiling (once per request, from the request's jansson value). Every subschema becomes a
 * node: the types it admits and the constraints of each (string lengths, array items and
 * their number, an object's properties, required names and other keys); $ref and a
 * one-schema allOf are the node of their target (recursion is a cycle of nodes); anyOf is a
 * node of alternatives, flattened so that none of them is an anyOf. enum and const become
 * candidate values: strings and numbers are matched as they are written, by JSON equality
 * (escapes and every spelling of the same number: 1.5, 1.50, 15e-1), arrays and objects
 * become nodes that admit that one value (keys in any order). Numeric bounds are kept as
 * decimals (struct bound: numc, as enum numbers), a pattern or format as a compiled PCRE2
 * regex (struct pattern; see "patterns" and "bounded numbers" below for how each is
 * recognized exactly). Any other keyword is refused,
 * never ignored: the output would not be guaranteed to validate. Two analyses follow: the
 * least nesting of an instance of each node (no prefix is accepted that cannot be completed
 * within SRV_JSON_MAX_DEPTH containers: a required property, minItems, a deep recursion are
 * all counted, so the recognizer never reaches a dead end), and a bound on the anyOf
 * alternatives followed at once (schemas whose bound passes SRV_SCHEMA_MAX_ALTERNATIVES are
 * refused; it grows only where alternatives of one type nest inside each other).
 *
 * The recognizer is a set of configurations, one per way the text so far can be read: an
 * anyOf opens one per alternative, and they fall back into one when their value ends (equal
 * configurations are merged). A configuration holds the value being read and its innermost
 * container; the containers around it are frames in a pool (a configuration points at its
 * parent, a push appends), so that copying one costs 112 bytes whatever the depth. An
 * object's other keys (not among its properties) are kept in the same way, their bytes in
 * a text pool, so that a duplicate is refused exactly. The pools grow by appending; a walk
 * (the allowed tokens) truncates them back, a committed byte drops what no configuration
 * reaches any more.
 *
 * Restrictions beyond JSON Schema's, all documented in the README: keys are written without
 * backslash escapes (a key matches a property byte for byte), "integer" is a number without
 * fraction or exponent, whitespace and nesting are bounded as in JSON mode (json_mode.c),
 * numbers have at most 64 digits before the exponent and 4 in it, a string under a pattern
 * has no lone surrogate escape, and the text is the value alone (nothing before or after it).
 *
 * The allowed tokens: a walk of the vocabulary's byte trie with one configuration set per
 * level, a subtree skipped at its first refused byte. A configuration in a string without
 * candidates (or a key that may be any other key) allows the plain tokens (whole printable
 * characters, no '"' or '\') of at most as many code points as it has room for at once;
 * only the other tokens are walked for it. One in an anchored pattern's string takes at once
 * the plain tokens its pattern's DFA state allows (pattern_dfa.h; made once a state, kept). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pattern_dfa.h"
#include "server.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* ---- compiled schemas ---------------------------------------------------------------- */

enum {
    T_NULL = 1,
    T_TRUE = 2,
    T_FALSE = 4,
    T_INTEGER = 8,   /* a number without fraction or exponent */
    T_FRACTION = 16, /* a number with them (with T_INTEGER: "number") */
    T_STRING = 32,
    T_ARRAY = 64,
    T_OBJECT = 128,
};
#define T_ALL 0xFF

enum {
    K_PLAIN = 0, /* the constraints of its types */
    K_ANYOF = 1, /* refs[first, first + count): the alternatives (never an anyOf) */
    K_ENUM = 2,  /* compiling only: enum/const values not yet filtered by their siblings */
};

#define NODE_NONE 0   /* false: no value */
#define NODE_ANY 1    /* true, {}: any value */
#define NO_LIMIT UINT32_MAX
#define NO_INDEX UINT32_MAX
#define DEPTH_NONE (SRV_JSON_MAX_DEPTH + 1) /* md: no instance within the nesting limit */
#define PROP_OTHER 0xFF                     /* a key that is none of the object's properties */
#define NUMBER_DIGITS_MAX (1u << 20)        /* enum numbers: digits of a spelling, at most */

/* An enum number: 0.DIGITS x 10^point (zero: any spelling of 0, either sign). */
struct numc {
    uint8_t neg, zero, nd;
    char d[24];
    int32_t point;
};

/* A bound of numbers (minimum and the like): its value as a decimal, exclusive or not. */
struct bound {
    struct numc v;
    uint8_t on, excl;
};

struct node {
    uint8_t kind, types;
    uint8_t enumerated;       /* strings and numbers are candidates (strs, nums); literals by types */
    uint8_t tuple;            /* an array of exactly min_items items, refs[tuple_first + i] */
    uint8_t md, md_obj, md_arr; /* the least nesting of an instance (of an object, of an array) */
    uint16_t items, additional; /* additional: an object's other keys (NODE_NONE: none) */
    uint32_t min_len, max_len;  /* strings, in code points */
    uint32_t min_items, max_items;
    uint32_t first, count;      /* K_ANYOF: refs; objects: props */
    uint32_t tuple_first;
    uint32_t str_first, num_str, num_first, num_num;
    uint64_t required[2];       /* props */
    struct bound lo, hi;        /* numbers: minimum/exclusiveMinimum, maximum/exclusiveMaximum */
    uint16_t pattern;           /* strings: 1 + the index of its pattern in patterns (0: none) */
    char* where;                /* its JSON pointer, for messages */
};

struct prop {
    char* name;
    uint32_t len;
    uint16_t node;
};

struct pattern { /* a string's pattern, translated and compiled */
    pcre2_code* code;    /* an unanchored pattern's regex (NULL when anchored) */
    struct srv_dfa* dfa; /* an anchored pattern's byte DFA (NULL when unanchored) */
    uint8_t anchored;    /* every top-level alternative begins with '^' */
};

struct strc {
    char* s;
    uint32_t len;
};

struct srv_schema {
    struct node* nodes;
    struct prop* props;
    uint16_t* refs;
    struct strc* strs;
    struct numc* nums;
    uint32_t num_nodes, num_props, num_refs, num_strs, num_nums;
    uint32_t cap_nodes, cap_props, cap_refs, cap_strs, cap_nums;
    uint16_t root;
    uint32_t width; /* configurations followed at once, at most */
    struct pattern* patterns;
    uint32_t num_patterns, cap_patterns;
    pcre2_match_context* mctx; /* the match limits (read only once compiled: shared) */
    uint64_t dfa_work;         /* the patterns' DFA construction: work left (SRV_SCHEMA_DFA_WORK) */
    size_t dfa_bytes;          /* their tables' bytes so far (at most SRV_SCHEMA_DFA_BYTES) */
};

static bool grow(void** p, uint32_t* cap, uint32_t need, size_t size) {
    if (need <= *cap) return true;
    uint32_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void* q = realloc(*p, (size_t) c * size);
    if (q == NULL) return false;
    *p = q;
    *cap = c;
    return true;
}

void srv_schema_free(struct srv_schema* s) {
    if (s == NULL) return;
    for (uint32_t i = 0; i < s->num_nodes; i++) free(s->nodes[i].where);
    for (uint32_t i = 0; i < s->num_props; i++) free(s->props[i].name);
    for (uint32_t i = 0; i < s->num_strs; i++) free(s->strs[i].s);
    free(s->nodes);
    free(s->props);
    free(s->refs);
    free(s->strs);
    free(s->nums);
    for (uint32_t i = 0; i < s->num_patterns; i++) {
        pcre2_code_free(s->patterns[i].code);
        srv_dfa_free(s->patterns[i].dfa);
    }
    free(s->patterns);
    pcre2_match_context_free(s->mctx);
    free(s);
}

/* Sets of properties and of enum values: 128 bits. */
_Static_assert(SRV_SCHEMA_MAX_PROPERTIES <= 128 && SRV_SCHEMA_MAX_ENUM <= 128, "candidate sets hold 128");

static bool has(const uint64_t* set, uint32_t k) { return set[k >> 6] >> (k & 63) & 1u; }
static void put(uint64_t* set, uint32_t k) { set[k >> 6] |= 1ull << (k & 63); }
static void keep(uint64_t* set, uint32_t k, bool yes) {
    if (!yes) set[k >> 6] &= ~(1ull << (k & 63));
}
static bool any(const uint64_t* set) { return (set[0] | set[1]) != 0; }
static void fill_bits(uint64_t* set, uint32_t n) {
    set[0] = n >= 64 ? ~0ull : (1ull << n) - 1;
    set[1] = n >= 128 ? ~0ull : n > 64 ? (1ull << (n - 64)) - 1 : 0;
}
#define FOR_BITS(set, k)                                                     \
    for (uint32_t k##_w = 0; k##_w < 2; k##_w++)                             \
        for (uint64_t k##_b = (set)[k##_w]; k##_b != 0; k##_b &= k##_b - 1) \
            for (uint32_t k = k##_w * 64 + (uint32_t) __builtin_ctzll(k##_b), k##_once = 1; k##_once; k##_once = 0)

static bool is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static int hex_value(uint8_t c) {
    if (is_digit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A key is written without escapes: no '"', '\' or control character in it. */
static bool writable_key(const char* s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const uint8_t c = (uint8_t) s[i];
        if (c == '"' || c == '\\' || c < 0x20) return false;
    }
    return true;
}

/* Code points of valid UTF-8. */
static uint32_t code_points(const char* s, size_t n) {
    uint32_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((uint8_t) s[i] & 0xC0) != 0x80;
    return k;
}

/* The code point at s (valid UTF-8) and its length. */
static uint32_t decode(const uint8_t* s, uint32_t* len) {
    if (s[0] < 0x80) {
        *len = 1;
        return s[0];
    }
    if (s[0] < 0xE0) {
        *len = 2;
        return (uint32_t) (s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    }
    if (s[0] < 0xF0) {
        *len = 3;
        return (uint32_t) (s[0] & 0x0F) << 12 | (uint32_t) (s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    }
    *len = 4;
    return (uint32_t) (s[0] & 0x07) << 18 | (uint32_t) (s[1] & 0x3F) << 12 | (uint32_t) (s[2] & 0x3F) << 6 |
           (s[3] & 0x3F);
}

/* ---- numbers of enum and const --------------------------------------------------------- */

/* A number's decimal parts: integers exactly, reals by their shortest spelling that reads
 * back as the same double (so 0.1 is 0.1, not 0.1000000000000000055511151231257827). */
static void number_parts(const json_t* v, struct numc* out) {
    char buf[48];
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else {
        const double x = json_real_value(v);
        for (int p = 1; p <= 17; p++) {
            snprintf(buf, sizeof(buf), "%.*e", p - 1, x);
            if (strtod(buf, NULL) == x) break;
        }
    }
    memset(out, 0, sizeof(*out));
    const char* p = buf;
    if (*p == '-') {
        out->neg = 1;
        p++;
    }
    char digits[40];
    int nd = 0, int_digits = 0;
    bool frac = false;
    for (; is_digit((uint8_t) *p) || *p == '.'; p++) {
        if (*p == '.') {
            frac = true;
        } else if (nd < (int) sizeof(digits)) {
            digits[nd++] = *p;
            int_digits += !frac;
        }
    }
    const int exp = (*p == 'e' || *p == 'E') ? atoi(p + 1) : 0;
    int start = 0, end = nd;
    while (start < end && digits[start] == '0') start++;
    while (end > start && digits[end - 1] == '0') end--;
    if (start == end) {
        out->zero = 1;
        return;
    }
    out->nd = (uint8_t) (end - start);
    memcpy(out->d, digits + start, (size_t) (end - start));
    out->point = int_digits - start + exp;
}

static bool numc_equal(const struct numc* a, const struct numc* b) {
    if (a->zero || b->zero) return a->zero == b->zero;
    return a->neg == b->neg && a->nd == b->nd && a->point == b->point && memcmp(a->d, b->d, a->nd) == 0;
}

/* Magnitudes of two nonzero numbers: <0, 0, >0. */
static int mag_cmp(const struct numc* a, const struct numc* b) {
    if (a->point != b->point) return a->point < b->point ? -1 : 1;
    for (uint32_t i = 0; i < a->nd || i < b->nd; i++) {
        const char x = i < a->nd ? a->d[i] : '0', y = i < b->nd ? b->d[i] : '0';
        if (x != y) return x < y ? -1 : 1;
    }
    return 0;
}

static int numc_cmp(const struct numc* a, const struct numc* b) {
    const int sa = a->zero ? 0 : a->neg ? -1 : 1, sb = b->zero ? 0 : b->neg ? -1 : 1;
    if (sa != sb || sa == 0) return (sa > sb) - (sa < sb);
    return sa * mag_cmp(a, b);
}

/* Whether v is within the node's bounds. */
static bool within_bounds(const struct node* n, const struct numc* v) {
    if (n->lo.on) {
        const int c = numc_cmp(v, &n->lo.v);
        if (c < 0 || (c == 0 && n->lo.excl)) return false;
    }
    if (n->hi.on) {
        const int c = numc_cmp(v, &n->hi.v);
        if (c > 0 || (c == 0 && n->hi.excl)) return false;
    }
    return true;
}

/* JSON equality: numbers by value (1 == 1.0), objects whatever their keys' order. */
static bool same_value(const json_t* a, const json_t* b) {
    if (json_is_number(a) && json_is_number(b)) {
        struct numc x, y;
        number_parts(a, &x);
        number_parts(b, &y);
        return numc_equal(&x, &y);
    }
    if (json_typeof(a) != json_typeof(b)) return false;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b)) return false;
        for (size_t i = 0; i < json_array_size(a); i++) {
            if (!same_value(json_array_get(a, i), json_array_get(b, i))) return false;
        }
        return true;
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b)) return false;
        const char* key;
        json_t* value;
        json_object_foreach((json_t*) a, key, value) {
            const json_t* other = json_object_get(b, key);
            if (other == NULL || !same_value(value, other)) return false;
        }
        return true;
    }
    default: return true; /* true, false, null */
    }
}

/* ---- patterns ------------------------------------------------------------------------ */

/* A pattern (ECMA-262, as JSON Schema says: a match anywhere in the string) becomes a PCRE2
 * regex over the string's UTF-8 bytes: each character, class or '.' a group of the byte
 * sequences of its code points (so a prefix that ends inside a character is matched
 * partially as exactly as a whole one), '$' only at the end (PCRE2_DOLLAR_ENDONLY). The
 * subset is one where ECMA-262 (with the u flag: code points) and this translation agree
 * and where a prefix that PCRE2 matches partially (PCRE2_PARTIAL_HARD) can be completed:
 * every class matches some character, no lookaround, backreference or word boundary, '^'
 * only first and '$' only last in a top-level alternative. A pattern whose top-level
 * alternatives all begin with '^' is matched from the start of the string at every prefix,
 * through a byte DFA built from the same regex (pattern_dfa.h; its live states are PCRE2's
 * partial matches, tests/serve/test_pattern_dfa.c); any other can match at the end of
 * whatever came before, so every prefix can be completed and PCRE2 matches only the whole
 * string. */

struct ranges { /* code point ranges, [lo, hi] pairs */
    uint32_t (*r)[2];
    uint32_t n, cap;
};

static bool ranges_add(struct ranges* rs, uint32_t lo, uint32_t hi) {
    if (!grow((void**) &rs->r, &rs->cap, rs->n + 1, sizeof(rs->r[0]))) return false;
    rs->r[rs->n][0] = lo;
    rs->r[rs->n][1] = hi;
    rs->n++;
    return true;
}

static int range_order(const void* a, const void* b) {
    const uint32_t *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

/* Sorted, merged, complemented when asked, surrogates taken out. */
static bool ranges_normalize(struct ranges* rs, bool negate) {
    if (rs->n > 1) qsort(rs->r, rs->n, sizeof(rs->r[0]), range_order);
    struct ranges out = {0};
    bool ok = true;
    int64_t next = 0; /* complement: the first code point not yet covered */
    for (uint32_t i = 0; i < rs->n && ok; i++) {
        uint32_t lo = rs->r[i][0], hi = rs->r[i][1];
        if (negate) {
            if ((int64_t) lo > next) ok = ranges_add(&out, (uint32_t) next, lo - 1);
            if ((int64_t) hi + 1 > next) next = (int64_t) hi + 1;
        } else if (out.n > 0 && lo <= out.r[out.n - 1][1] + 1) {
            if (hi > out.r[out.n - 1][1]) out.r[out.n - 1][1] = hi;
        } else {
            ok = ranges_add(&out, lo, hi);
        }
    }
    if (ok && negate && next <= 0x10FFFF) ok = ranges_add(&out, (uint32_t) next, 0x10FFFF);
    free(rs->r);
    *rs = (struct ranges){0};
    for (uint32_t i = 0; i < out.n && ok; i++) { /* without surrogates */
        const uint32_t lo = out.r[i][0], hi = out.r[i][1];
        if (lo < 0xD800) ok = ranges_add(rs, lo, hi < 0xD7FF ? hi : 0xD7FF);
        if (ok && hi > 0xDFFF) ok = ranges_add(rs, lo > 0xE000 ? lo : 0xE000, hi);
    }
    free(out.r);
    return ok;
}

static int utf8_put(uint32_t cp, uint8_t* b) {
    if (cp < 0x80) {
        b[0] = (uint8_t) cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (uint8_t) (0xC0 | cp >> 6);
        b[1] = (uint8_t) (0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (uint8_t) (0xE0 | cp >> 12);
        b[1] = (uint8_t) (0x80 | (cp >> 6 & 0x3F));
        b[2] = (uint8_t) (0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (uint8_t) (0xF0 | cp >> 18);
    b[1] = (uint8_t) (0x80 | (cp >> 12 & 0x3F));
    b[2] = (uint8_t) (0x80 | (cp >> 6 & 0x3F));
    b[3] = (uint8_t) (0x80 | (cp & 0x3F));
    return 4;
}

/* The UTF-8 encodings of [lo, hi] as sequences of byte ranges (utf8-ranges' split: every
 * sequence's bytes range independently): f(ctx, lo bytes, hi bytes, length) for each. */
typedef bool (*utf8_seq_fn)(void* ctx, const uint8_t* lo, const uint8_t* hi, int n);

static bool utf8_split(uint32_t lo, uint32_t hi, utf8_seq_fn f, void* ctx) {
    if (lo > hi) return true;
    static const uint32_t kMax[3] = {0x7F, 0x7FF, 0xFFFF};
    for (int i = 0; i < 3; i++) {
        if (lo <= kMax[i] && hi > kMax[i]) return utf8_split(lo, kMax[i], f, ctx) && utf8_split(kMax[i] + 1, hi, f, ctx);
    }
    if (hi >= 0x80) {
        for (int i = 1; i < 4; i++) {
            const uint32_t m = (1u << (6 * i)) - 1;
            if ((lo & ~m) != (hi & ~m)) {
                if ((lo & m) != 0) return utf8_split(lo, lo | m, f, ctx) && utf8_split((lo | m) + 1, hi, f, ctx);
                if ((hi & m) != m) return utf8_split(lo, (hi & ~m) - 1, f, ctx) && utf8_split(hi & ~m, hi, f, ctx);
            }
        }
    }
    uint8_t a[4], b[4];
    const int n = utf8_put(lo, a);
    utf8_put(hi, b);
    return f(ctx, a, b, n);
}

struct emit {
    struct srv_buf* out;
    int alts;
};

static bool emit_seq(void* ctx, const uint8_t* lo, const uint8_t* hi, int n) {
    struct emit* e = ctx;
    srv_buf_puts(e->out, e->alts++ ? "|" : "");
    for (int i = 0; i < n; i++) srv_buf_printf(e->out, "[\\x%02x-\\x%02x]", lo[i], hi[i]);
    return true;
}

/* A set of code points (normalized, not empty) as a group of byte sequences. */
static void emit_ranges(struct srv_buf* out, const struct ranges* rs) {
    struct emit e = {out, 0};
    srv_buf_puts(out, "(?:");
    for (uint32_t i = 0; i < rs->n; i++) utf8_split(rs->r[i][0], rs->r[i][1], emit_seq, &e);
    srv_buf_puts(out, ")");
}

static bool add_class_escape(struct ranges* rs, uint8_t c) {
    static const uint32_t kSpace[][2] = {{0x09, 0x0D}, {0x20, 0x20}, {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A},
                                         {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
                                         {0xFEFF, 0xFEFF}};
    static const uint32_t kWord[][2] = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
    struct ranges one = {0};
    bool ok = true;
    const uint8_t lower = c | 0x20;
    if (lower == 'd') ok = ranges_add(&one, '0', '9');
    for (size_t i = 0; lower == 'w' && ok && i < 4; i++) ok = ranges_add(&one, kWord[i][0], kWord[i][1]);
    for (size_t i = 0; lower == 's' && ok && i < sizeof(kSpace) / sizeof(kSpace[0]); i++)
        ok = ranges_add(&one, kSpace[i][0], kSpace[i][1]);
    ok = ok && ranges_normalize(&one, c != lower); /* \D, \W, \S: the complement */
    for (uint32_t i = 0; ok && i < one.n; i++) ok = ranges_add(rs, one.r[i][0], one.r[i][1]);
    free(one.r);
    return ok;
}

struct translator {
    const uint8_t* p;
    size_t i, n;
    struct srv_buf* out;
    char err[160];
};

static bool tr_fail(struct translator* t, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
static bool tr_fail(struct translator* t, const char* fmt, ...) {
    if (t->err[0] != '\0') return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err, sizeof(t->err), fmt, ap);
    va_end(ap);
    return false;
}

static int tr_hex(struct translator* t, size_t at, int digits) {
    int v = 0;
    for (int k = 0; k < digits; k++) {
        const int h = at + k < t->n ? hex_value(t->p[at + k]) : -1;
        if (h < 0) return -1;
        v = v << 4 | h;
    }
    return v;
}

/* A character escape after '\' at t->i (the letter): its code point, -1 when it is a class
 * (\d \D \w \W \s \S: *cls set), -2 when refused. in_class: \b is a backspace there. */
static int64_t tr_escape(struct translator* t, bool in_class, uint8_t* cls) {
    if (t->i >= t->n) return tr_fail(t, "a '\\' at the end"), -2;
    const uint8_t c = t->p[t->i++];
    *cls = 0;
    switch (c) {
    case 'd': case 'D': case 'w': case 'W': case 's': case 'S': *cls = c; return -1;
    case 't': return '\t';
    case 'n': return '\n';
    case 'r': return '\r';
    case 'f': return '\f';
    case 'v': return '\v';
    case 'b':
        if (in_class) return '\b';
        return tr_fail(t, "\\b (a word boundary) is not supported"), -2;
    case '0':
        if (t->i < t->n && is_digit(t->p[t->i])) return tr_fail(t, "octal escapes are not supported"), -2;
        return 0;
    case 'x': {
        const int v = tr_hex(t, t->i, 2);
        if (v < 0) return tr_fail(t, "\\x needs two hex digits"), -2;
        t->i += 2;
        return v;
    }
    case 'u': {
        int v = tr_hex(t, t->i, 4);
        if (v < 0) return tr_fail(t, "\\u needs four hex digits (\\u{...} is not supported)"), -2;
        t->i += 4;
        if (v >= 0xD800 && v <= 0xDBFF && t->i + 6 <= t->n && t->p[t->i] == '\\' && t->p[t->i + 1] == 'u') {
            const int lo = tr_hex(t, t->i + 2, 4);
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                t->i += 6;
                return 0x10000 + ((int64_t) (v - 0xD800) << 10) + (lo - 0xDC00);
            }
        }
        if (v >= 0xD800 && v <= 0xDFFF) return tr_fail(t, "a lone surrogate \\u%04X", (unsigned) v), -2;
        return v;
    }
    default:
        if (strchr("^$\\.*+?()[]{}|/-", c) != NULL && c != '\0') return c;
        if (is_digit(c) || c == 'k') return tr_fail(t, "backreferences are not supported"), -2;
        if (c == 'B') return tr_fail(t, "\\B (a word boundary) is not supported"), -2;
        if (c == 'p' || c == 'P') return tr_fail(t, "Unicode property escapes (\\%c) are not supported", c), -2;
        if (c >= 0x20 && c < 0x7F) return tr_fail(t, "the escape \\%c is not supported", c), -2;
        return tr_fail(t, "an escape of a character that needs none"), -2;
    }
}

/* A literal character of the pattern at t->i (valid UTF-8: the pattern is a JSON string). */
static uint32_t tr_char(struct translator* t) {
    uint32_t len = 0;
    const uint32_t cp = decode(t->p + t->i, &len);
    t->i += len;
    return cp;
}

/* A member of a class at t->i: an escape (-1 with *cls set for \d \w \s and their
 * complements, -2 when refused) or a character. */
static int64_t tr_class_member(struct translator* t, uint8_t* cls) {
    *cls = 0;
    if (t->p[t->i] != '\\') return tr_char(t);
    t->i++;
    return tr_escape(t, true, cls);
}

static bool tr_class(struct translator* t) {
    struct ranges rs = {0};
    bool negate = false, ok = true;
    t->i++; /* '[' */
    if (t->i < t->n && t->p[t->i] == '^') {
        negate = true;
        t->i++;
    }
    if (t->i < t->n && t->p[t->i] == ']' && !negate) {
        free(rs.r);
        return tr_fail(t, "the empty class [] matches nothing");
    }
    while (ok) {
        if (t->i >= t->n) {
            ok = tr_fail(t, "a '[' without its ']'");
            break;
        }
        if (t->p[t->i] == ']') {
            t->i++;
            break;
        }
        uint8_t cls = 0;
        const int64_t a = tr_class_member(t, &cls);
        if (a == -2) {
            ok = false;
            break;
        }
        if (cls != 0) {
            ok = add_class_escape(&rs, cls);
            if (ok && t->i + 1 < t->n && t->p[t->i] == '-' && t->p[t->i + 1] != ']')
                ok = tr_fail(t, "a range from a class escape (\\%c-)", cls);
            continue;
        }
        int64_t b = a;
        if (t->i + 1 < t->n && t->p[t->i] == '-' && t->p[t->i + 1] != ']') {
            t->i++;
            b = tr_class_member(t, &cls);
            if (b == -2) {
                ok = false;
                break;
            }
            if (cls != 0) ok = tr_fail(t, "a range to a class escape (-\\%c)", cls);
            else if (b < a) ok = tr_fail(t, "a range out of order in a class");
        }
        ok = ok && ranges_add(&rs, (uint32_t) a, (uint32_t) b);
    }
    ok = ok && ranges_normalize(&rs, negate);
    if (ok && rs.n == 0) ok = tr_fail(t, "a class that matches no character");
    if (ok) emit_ranges(t->out, &rs);
    free(rs.r);
    return ok;
}

/* Translates the whole pattern; *anchored: every top-level alternative begins with '^'. */
static bool translate(struct translator* t, bool* anchored) {
    int depth = 0;
    bool quantifiable = false, alt_start = true;
    *anchored = true;
    bool this_anchored = false;
    while (t->i < t->n) {
        const uint8_t c = t->p[t->i];
        const bool was_start = alt_start;
        alt_start = false;
        switch (c) {
        case '^':
            if (depth > 0 || !was_start) return tr_fail(t, "'^' only at the start of the pattern or of a top-level alternative");
            this_anchored = true;
            srv_buf_puts(t->out, "^");
            t->i++;
            quantifiable = false;
            alt_start = false;
            break;
        case '$':
            if (depth > 0 || !(t->i + 1 == t->n || t->p[t->i + 1] == '|'))
                return tr_fail(t, "'$' only at the end of the pattern or of a top-level alternative");
            srv_buf_puts(t->out, "$");
            t->i++;
            quantifiable = false;
            break;
        case '|':
            if (depth == 0) {
                *anchored &= this_anchored;
                this_anchored = false;
                alt_start = true;
            }
            srv_buf_puts(t->out, "|");
            t->i++;
            quantifiable = false;
            break;
        case '(':
            if (t->i + 1 < t->n && t->p[t->i + 1] == '?') {
                if (!(t->i + 2 < t->n && t->p[t->i + 2] == ':'))
                    return tr_fail(t, "'(?' groups other than (?:...) (lookaround, named groups) are not supported");
                t->i += 2;
            }
            t->i++;
            if (++depth > 100) return tr_fail(t, "groups nest more than 100 deep");
            srv_buf_puts(t->out, "(?:");
            quantifiable = false;
            break;
        case ')':
            if (depth == 0) return tr_fail(t, "a ')' without its '('");
            depth--;
            srv_buf_puts(t->out, ")");
            t->i++;
            quantifiable = true;
            break;
        case '*':
        case '+':
        case '?':
        case '{': {
            if (!quantifiable) return tr_fail(t, "a quantifier '%c' with nothing to repeat", c);
            if (c == '{') {
                size_t j = t->i + 1;
                uint32_t lo = 0, hi = 0, digits = 0;
                bool comma = false;
                for (; j < t->n && is_digit(t->p[j]); j++, digits++) lo = lo < 100000 ? lo * 10 + (t->p[j] - '0') : lo;
                if (digits == 0) return tr_fail(t, "a '{' that is not a quantifier {n}, {n,} or {n,m} (write \\{)");
                hi = lo;
                if (j < t->n && t->p[j] == ',') {
                    comma = true;
                    j++;
                    digits = 0;
                    hi = 0;
                    for (; j < t->n && is_digit(t->p[j]); j++, digits++) hi = hi < 100000 ? hi * 10 + (t->p[j] - '0') : hi;
                    if (digits == 0) hi = UINT32_MAX;
                }
                if (j >= t->n || t->p[j] != '}') return tr_fail(t, "a '{' that is not a quantifier {n}, {n,} or {n,m} (write \\{)");
                if (hi < lo) return tr_fail(t, "a quantifier {%u,%u} out of order", lo, hi);
                if (lo > 1000 || (hi != UINT32_MAX && hi > 1000)) return tr_fail(t, "a quantifier above 1000");
                if (comma && hi == UINT32_MAX) srv_buf_printf(t->out, "{%u,}", lo);
                else if (comma) srv_buf_printf(t->out, "{%u,%u}", lo, hi);
                else srv_buf_printf(t->out, "{%u}", lo);
                t->i = j + 1;
            } else {
                srv_buf_put(t->out, &c, 1);
                t->i++;
            }
            if (t->i < t->n && t->p[t->i] == '?') { /* lazy: the same strings match */
                srv_buf_puts(t->out, "?");
                t->i++;
            }
            quantifiable = false;
            break;
        }
        case '}':
            return tr_fail(t, "a lone '}' (write \\})");
        case ']':
            return tr_fail(t, "a lone ']' (write \\])");
        case '[':
            if (!tr_class(t)) return false;
            quantifiable = true;
            break;
        case '.': {
            struct ranges rs = {0};
            bool ok = ranges_add(&rs, '\n', '\n') && ranges_add(&rs, '\r', '\r') && ranges_add(&rs, 0x2028, 0x2029) &&
                      ranges_normalize(&rs, true);
            if (ok) emit_ranges(t->out, &rs);
            free(rs.r);
            if (!ok) return tr_fail(t, "out of memory");
            t->i++;
            quantifiable = true;
            break;
        }
        default: {
            int64_t cp;
            uint8_t cls = 0;
            if (c == '\\') {
                t->i++;
                cp = tr_escape(t, false, &cls);
                if (cp == -2) return false;
            } else {
                cp = tr_char(t);
            }
            struct ranges rs = {0};
            bool ok = cls != 0 ? add_class_escape(&rs, cls) : ranges_add(&rs, (uint32_t) cp, (uint32_t) cp);
            ok = ok && ranges_normalize(&rs, false);
            if (ok) emit_ranges(t->out, &rs);
            free(rs.r);
            if (!ok) return tr_fail(t, "out of memory");
            quantifiable = true;
            break;
        }
        }
    }
    if (depth != 0) return tr_fail(t, "a '(' without its ')'");
    *anchored &= this_anchored;
    return !t->out->oom || tr_fail(t, "out of memory");
}

/* The formats supported, as patterns of the same strings (RFC 3339 full-date with the days
 * of each month and leap years, years 0001-9999; full-time; RFC 4122's hex form; dotted
 * quads without leading zeros). */
#define FMT_DATE                                                                                                   \
    "(?:(?:[1-9]\\d{3}|0[1-9]\\d{2}|00[1-9]\\d|000[1-9])-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])|"         \
    "(?:0[469]|11)-(?:0[1-9]|[12]\\d|30)|02-(?:0[1-9]|1\\d|2[0-8]))|(?:\\d\\d(?:0[48]|[2468][048]|[13579][26])|" \
    "(?:0[48]|[2468][048]|[13579][26])00)-02-29)"
#define FMT_TIME "(?:[01]\\d|2[0-3]):[0-5]\\d:(?:[0-5]\\d|60)(?:\\.\\d+)?(?:[Zz]|[+-](?:[01]\\d|2[0-3]):[0-5]\\d)"
static const struct {
    const char* name;
    const char* pattern;
} kFormats[] = {
    {"date", "^" FMT_DATE "$"},
    {"time", "^" FMT_TIME "$"},
    {"date-time", "^" FMT_DATE "[Tt]" FMT_TIME "$"},
    {"uuid", "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"},
    {"ipv4", "^(?:(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)$"},
};

const char* srv_schema_format_pattern(const char* name) {
    for (size_t i = 0; i < sizeof(kFormats) / sizeof(kFormats[0]); i++)
        if (strcmp(kFormats[i].name, name) == 0) return kFormats[i].pattern;
    return NULL;
}

/* ---- compiling ----------------------------------------------------------------------- */

struct memo {
    const json_t* schema;
    int node; /* -1: a $ref or allOf being resolved (met again: a cycle of references) */
};

struct pending { /* an enum/const node: its values, filtered at the end by its siblings' node */
    uint16_t node, sibling;
    const json_t* values;   /* the enum array, or NULL */
    const json_t* constant; /* const, or NULL */
};

struct compiler {
    struct srv_schema* s;
    const json_t* root;
    const char* param;
    struct srv_error* err;
    bool failed;
    struct memo* memo;
    uint32_t num_memo, cap_memo;
    struct pending* pending;
    uint32_t num_pending, cap_pending;
    uint8_t* state; /* flattening anyOf: 0 not yet, 1 under way, 2 done */
    uint32_t num_schemas; /* schema objects compiled ($ref and allOf included): bounds the recursion */
    uint32_t budget;      /* valid() calls left: enum values are checked against their siblings */
    char where[256]; /* the JSON pointer of the schema being compiled */
    size_t where_len;
};

static void fail(struct compiler* c, const char* code, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct compiler* c, const char* code, const char* fmt, ...) {
    if (c->failed) return;
    c->failed = true;
    char msg[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (code == NULL) {
        srv_error_set(c->err, 500, "server_error", NULL, NULL, "out of memory");
        return;
    }
    srv_error_set(c->err, 400, "invalid_request_error", code, c->param, "%s at %s: %s", c->param,
                  c->where_len > 0 ? c->where : "#", msg);
}
#define BAD(c, ...) fail(c, "invalid_value", __VA_ARGS__)
#define UNSUPPORTED(c, ...) fail(c, "unsupported_value", __VA_ARGS__)
#define OOM(c) fail(c, NULL, "out of memory")

/* Appends "/key" (RFC 6901: ~ and / escaped) or "/index" to the pointer; returns the length
 * to restore. A pointer that does not fit is cut. */
static size_t where_push(struct compiler* c, const char* key, size_t index) {
    const size_t mark = c->where_len;
    char num[24];
    if (key == NULL) {
        snprintf(num, sizeof(num), "%zu", index);
        key = num;
    }
    const size_t room = sizeof(c->where) - 1;
    if (c->where_len == 0) c->where[c->where_len++] = '#';
    if (c->where_len < room) c->where[c->where_len++] = '/';
    for (const char* k = key; *k && c->where_len < room; k++) {
        if (*k == '~' || *k == '/') {
            if (c->where_len + 2 > room) break;
            c->where[c->where_len++] = '~';
            c->where[c->where_len++] = *k == '~' ? '0' : '1';
        } else {
            c->where[c->where_len++] = *k;
        }
    }
    c->where[c->where_len] = '\0';
    return mark;
}

static void where_pop(struct compiler* c, size_t mark) {
    c->where_len = mark;
    c->where[mark] = '\0';
}

static int new_node(struct compiler* c) {
    struct srv_schema* s = c->s;
    if (s->num_nodes >= SRV_SCHEMA_MAX_NODES) {
        UNSUPPORTED(c, "the schema has more than %d subschemas (counting enum and const arrays and objects)",
                    SRV_SCHEMA_MAX_NODES);
        return -1;
    }
    if (!grow((void**) &s->nodes, &s->cap_nodes, s->num_nodes + 1, sizeof(struct node))) {
        OOM(c);
        return -1;
    }
    struct node* n = &s->nodes[s->num_nodes];
    memset(n, 0, sizeof(*n));
    n->types = T_ALL;
    n->max_len = n->max_items = NO_LIMIT;
    n->items = n->additional = NODE_ANY;
    n->where = strdup(c->where_len > 0 ? c->where : "#");
    if (n->where == NULL) {
        OOM(c);
        return -1;
    }
    return (int) s->num_nodes++;
}

static bool memo_put(struct compiler* c, const json_t* schema, int node) {
    for (uint32_t i = 0; i < c->num_memo; i++) {
        if (c->memo[i].schema == schema) {
            c->memo[i].node = node;
            return true;
        }
    }
    if (!grow((void**) &c->memo, &c->cap_memo, c->num_memo + 1, sizeof(struct memo))) {
        OOM(c);
        return false;
    }
    c->memo[c->num_memo++] = (struct memo){schema, node};
    return true;
}

static bool append_refs(struct compiler* c, const uint16_t* ids, uint32_t n, uint32_t* first) {
    struct srv_schema* s = c->s;
    if (!grow((void**) &s->refs, &s->cap_refs, s->num_refs + n, sizeof(uint16_t))) {
        OOM(c);
        return false;
    }
    *first = s->num_refs;
    if (n == 0) return true; /* an empty array's, refs maybe still NULL */
    memcpy(s->refs + s->num_refs, ids, n * sizeof(uint16_t));
    s->num_refs += n;
    return true;
}

static int compile(struct compiler* c, const json_t* schema);

static int compile_at(struct compiler* c, const json_t* schema, const char* key, size_t index) {
    const size_t mark = where_push(c, key, index);
    const int id = compile(c, schema);
    where_pop(c, mark);
    return id;
}

/* A non-negative integer keyword (2.0 is one); larger than NO_LIMIT - 1: NO_LIMIT. */
static bool count_keyword(struct compiler* c, const json_t* schema, const char* key, uint32_t* out) {
    const json_t* v = json_object_get(schema, key);
    if (v == NULL) return true;
    double x = json_is_integer(v) ? (double) json_integer_value(v) : json_is_real(v) ? json_real_value(v) : -1.0;
    if (!json_is_number(v) || x < 0 || x != floor(x)) {
        BAD(c, "%s: expected a non-negative integer", key);
        return false;
    }
    *out = x >= (double) NO_LIMIT ? NO_LIMIT : (uint32_t) x;
    return true;
}

static const char* const kAssertions[] = {"type", "enum", "const", "properties", "required", "additionalProperties",
                                          "items", "minItems", "maxItems", "minLength", "maxLength", "minimum",
                                          "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern", "format", NULL};
/* annotations and definitions: no effect on what is valid */
static const char* const kIgnored[] = {"title", "description", "default", "examples", "$schema", "$id", "$comment",
                                       "deprecated", "readOnly", "writeOnly", "$defs", "definitions", NULL};

static bool listed(const char* const* list, const char* key) {
    for (; *list != NULL; list++)
        if (strcmp(*list, key) == 0) return true;
    return false;
}

/* The target of "$ref": "#", "#/$defs/NAME" or "#/definitions/NAME" (NAME with RFC 6901's
 * ~0 and ~1). */
static const json_t* resolve(struct compiler* c, const char* ref) {
    if (strcmp(ref, "#") == 0) return c->root;
    const char* defs = strncmp(ref, "#/$defs/", 8) == 0         ? "$defs"
                       : strncmp(ref, "#/definitions/", 14) == 0 ? "definitions"
                                                                 : NULL;
    const char* name = defs == NULL ? NULL : ref + (defs[0] == '$' ? 8 : 14);
    if (name == NULL || strchr(name, '/') != NULL || strchr(name, '%') != NULL) {
        UNSUPPORTED(c, "$ref \"%.100s\": only \"#\", \"#/$defs/NAME\" and \"#/definitions/NAME\" are supported", ref);
        return NULL;
    }
    char* key = malloc(strlen(name) + 1);
    if (key == NULL) {
        OOM(c);
        return NULL;
    }
    size_t n = 0;
    for (const char* p = name; *p; p++) {
        if (*p == '~' && (p[1] == '0' || p[1] == '1')) {
            key[n++] = p[1] == '0' ? '~' : '/';
            p++;
        } else if (*p == '~') {
            BAD(c, "$ref \"%.100s\": '~' must be followed by 0 or 1", ref);
            free(key);
            return NULL;
        } else {
            key[n++] = *p;
        }
    }
    key[n] = '\0';
    const json_t* target = json_object_get(json_object_get(c->root, defs), key);
    if (target == NULL) BAD(c, "$ref \"%.100s\" does not resolve: no %s \"%.100s\"", ref, defs, key);
    free(key);
    return target;
}

/* $ref stands for its target, compiled under the target's own pointer (the reference as
 * written) and memoized as under way first, so that a cycle of references alone is found. */
static int compile_ref(struct compiler* c, const json_t* schema, const json_t* target, const char* ref) {
    if (!memo_put(c, schema, -1)) return -1;
    char saved[sizeof(c->where)];
    const size_t saved_len = c->where_len;
    memcpy(saved, c->where, sizeof(saved));
    snprintf(c->where, sizeof(c->where), "%s", ref);
    c->where_len = strlen(c->where);
    const int id = compile(c, target);
    memcpy(c->where, saved, sizeof(saved));
    c->where_len = saved_len;
    if (id < 0 || !memo_put(c, schema, id)) return -1;
    return id;
}

static bool compile_type(struct compiler* c, const json_t* t, uint8_t* types) {
    static const struct {
        const char* name;
        uint8_t bits;
    } kTypes[] = {{"null", T_NULL},           {"boolean", T_TRUE | T_FALSE}, {"integer", T_INTEGER},
                  {"number", T_INTEGER | T_FRACTION}, {"string", T_STRING},  {"array", T_ARRAY},
                  {"object", T_OBJECT}};
    const bool one = json_is_string(t);
    if (!one && !(json_is_array(t) && json_array_size(t) > 0)) {
        BAD(c, "type: expected a type name or a non-empty array of them");
        return false;
    }
    *types = 0;
    for (size_t i = 0; i < (one ? 1 : json_array_size(t)); i++) {
        const json_t* name = one ? t : json_array_get(t, i);
        size_t k = 0;
        while (k < sizeof(kTypes) / sizeof(kTypes[0]) &&
               !(json_is_string(name) && strcmp(json_string_value(name), kTypes[k].name) == 0))
            k++;
        if (k == sizeof(kTypes) / sizeof(kTypes[0])) {
            BAD(c, "type: \"%.60s\" is not a type (null, boolean, integer, number, string, array, object)",
                json_is_string(name) ? json_string_value(name) : "(not a string)");
            return false;
        }
        for (size_t j = 0; j < i; j++) {
            if (json_equal(json_array_get(t, j), name)) {
                BAD(c, "type: \"%s\" appears twice", kTypes[k].name);
                return false;
            }
        }
        *types |= kTypes[k].bits;
    }
    return true;
}

/* Node id's properties: local[0, n) copied (names too) into the schema's. */
static bool add_props(struct compiler* c, int id, const struct prop* local, uint32_t n) {
    struct srv_schema* s = c->s;
    if (!grow((void**) &s->props, &s->cap_props, s->num_props + n, sizeof(struct prop))) {
        OOM(c);
        return false;
    }
    s->nodes[id].first = s->num_props;
    s->nodes[id].count = n;
    for (uint32_t k = 0; k < n; k++) {
        struct prop* p = &s->props[s->num_props];
        *p = local[k];
        p->name = malloc(local[k].len + 1);
        if (p->name == NULL) {
            OOM(c);
            return false;
        }
        memcpy(p->name, local[k].name, local[k].len + 1);
        s->num_props++;
    }
    return true;
}

/* The object keywords of node id: properties, additionalProperties, required (a required name
 * that is not a property is one with additionalProperties' schema). */
static bool compile_object(struct compiler* c, int id, const json_t* schema) {
    const json_t* properties = json_object_get(schema, "properties");
    const json_t* required = json_object_get(schema, "required");
    const json_t* additional = json_object_get(schema, "additionalProperties");
    if (properties != NULL && !json_is_object(properties)) {
        BAD(c, "properties: expected an object of schemas");
        return false;
    }
    if (required != NULL && !json_is_array(required)) {
        BAD(c, "required: expected an array of property names");
        return false;
    }
    if (additional != NULL && !json_is_object(additional) && !json_is_boolean(additional)) {
        BAD(c, "additionalProperties: expected a schema or a boolean");
        return false;
    }
    int other = NODE_ANY;
    if (additional != NULL && (other = compile_at(c, additional, "additionalProperties", 0)) < 0) return false;
    if (json_object_size(properties) > SRV_SCHEMA_MAX_PROPERTIES ||
        json_array_size(required) > SRV_SCHEMA_MAX_PROPERTIES) {
        UNSUPPORTED(c, "%s: more than %d properties in one object",
                    json_object_size(properties) > SRV_SCHEMA_MAX_PROPERTIES ? "properties" : "required",
                    SRV_SCHEMA_MAX_PROPERTIES);
        return false;
    }
    /* the names point into the request's values until they are copied at the end */
    struct prop* local = calloc(SRV_SCHEMA_MAX_PROPERTIES, sizeof(struct prop));
    if (local == NULL) {
        OOM(c);
        return false;
    }
    uint32_t n = 0;
    bool ok = true;
    const char* key;
    json_t* value;
    const size_t mark = where_push(c, "properties", 0);
    json_object_foreach((json_t*) properties, key, value) {
        if (!writable_key(key, strlen(key))) {
            UNSUPPORTED(c, "the name \"%.60s\" needs an escape in JSON; keys are written without escapes here", key);
            ok = false;
            break;
        }
        const int child = compile_at(c, value, key, 0);
        if (child < 0) {
            ok = false;
            break;
        }
        local[n++] = (struct prop){(char*) key, (uint32_t) strlen(key), (uint16_t) child};
    }
    where_pop(c, mark);
    uint64_t req[2] = {0, 0};
    for (size_t i = 0; ok && i < json_array_size(required); i++) {
        const json_t* name = json_array_get(required, i);
        if (!json_is_string(name)) {
            BAD(c, "required[%zu]: expected a property name", i);
            ok = false;
            break;
        }
        for (size_t j = 0; j < i; j++) {
            if (json_equal(json_array_get(required, j), name)) {
                BAD(c, "required: \"%.60s\" appears twice", json_string_value(name));
                ok = false;
            }
        }
        if (!ok) break;
        const char* s = json_string_value(name);
        if (!writable_key(s, json_string_length(name)) || strlen(s) != json_string_length(name)) {
            UNSUPPORTED(c, "required: the name \"%.60s\" needs an escape in JSON; keys are written without escapes here",
                        s);
            ok = false;
            break;
        }
        uint32_t k = 0;
        while (k < n && strcmp(local[k].name, s) != 0) k++;
        if (k == n) {
            if (n == SRV_SCHEMA_MAX_PROPERTIES) {
                UNSUPPORTED(c, "required: more than %d properties in one object", SRV_SCHEMA_MAX_PROPERTIES);
                ok = false;
                break;
            }
            local[n++] = (struct prop){(char*) s, (uint32_t) json_string_length(name), (uint16_t) other};
        }
        put(req, k);
    }
    ok = ok && add_props(c, id, local, n);
    free(local);
    if (!ok) return false;
    struct node* node = &c->s->nodes[id];
    node->additional = (uint16_t) other;
    memcpy(node->required, req, sizeof(req));
    return true;
}

/* minimum, exclusiveMinimum (the lower bound: the larger, the exclusive one at a tie),
 * maximum, exclusiveMaximum, as JSON Schema 2020-12 writes them (numbers). A bound is the
 * decimal value of the number as jansson holds it: an integer exactly, a real by its shortest
 * spelling that reads back as the same double (0.1 is 0.1), as enum numbers. */
static bool compile_bounds(struct compiler* c, struct node* n, const json_t* schema) {
    static const char* const kBounds[4] = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"};
    for (int k = 0; k < 4; k++) {
        const json_t* v = json_object_get(schema, kBounds[k]);
        if (v == NULL) continue;
        if (!json_is_number(v)) {
            BAD(c, "%s: expected a number%s", kBounds[k],
                json_is_boolean(v) ? " (JSON Schema 2020-12; draft 4's boolean form is not supported)" : "");
            return false;
        }
        struct bound b = {.on = 1, .excl = (uint8_t) (k % 2)};
        number_parts(v, &b.v);
        struct bound* slot = k < 2 ? &n->lo : &n->hi;
        if (slot->on) {
            const int cmp = numc_cmp(&b.v, &slot->v) * (k < 2 ? 1 : -1); /* > 0: b is tighter */
            if (cmp < 0 || (cmp == 0 && !b.excl)) continue;
        }
        *slot = b;
    }
    return true;
}

static bool numbers_exist(const struct node* n);

/* pattern, or format as the pattern of its strings, into node n. Beside minLength/maxLength
 * both are refused: a pattern's partial matches say nothing of the lengths its completions
 * can have, so the two together could leave a prefix with no completion. */
static bool compile_pattern(struct compiler* c, struct node* n, const json_t* schema) {
    const json_t* pattern = json_object_get(schema, "pattern");
    const json_t* format = json_object_get(schema, "format");
    if (pattern == NULL && format == NULL) return true;
    const char* key = pattern ? "pattern" : "format";
    const size_t mark = where_push(c, key, 0);
    bool ok = false;
    const char* text = NULL;
    size_t len = 0;
    if (!json_is_string(pattern ? pattern : format)) {
        BAD(c, "expected a string");
    } else if (pattern != NULL && format != NULL) {
        UNSUPPORTED(c, "\"pattern\" beside \"format\" is not supported");
    } else if (n->min_len > 0 || n->max_len != NO_LIMIT) {
        UNSUPPORTED(c, "\"%s\" beside minLength/maxLength is not supported (together they could leave a prefix "
                    "that no string completes)", key);
    } else if (format != NULL && (text = srv_schema_format_pattern(json_string_value(format))) == NULL) {
        UNSUPPORTED(c, "format \"%.60s\" is not supported (date, time, date-time, uuid and ipv4 are)",
                    json_string_value(format));
    } else if (pattern != NULL && json_string_length(pattern) > SRV_SCHEMA_MAX_PATTERN) {
        UNSUPPORTED(c, "a pattern of more than %d bytes", SRV_SCHEMA_MAX_PATTERN);
    } else {
        if (text == NULL) {
            text = json_string_value(pattern);
            len = json_string_length(pattern);
        } else {
            len = strlen(text);
        }
        ok = true;
    }
    if (!ok) {
        where_pop(c, mark);
        return false;
    }
    struct srv_buf out = {0};
    struct translator t = {.p = (const uint8_t*) text, .n = len, .out = &out};
    bool anchored = false;
    ok = translate(&t, &anchored);
    if (!ok) {
        UNSUPPORTED(c, "\"%.80s\": %s", text, t.err[0] ? t.err : "out of memory");
    } else if (!grow((void**) &c->s->patterns, &c->s->cap_patterns, c->s->num_patterns + 1, sizeof(struct pattern))) {
        OOM(c);
        ok = false;
    } else if (anchored) {
        /* tested at every byte of its string, and its tokens at every trie node: through its
         * DFA (pattern_dfa.h), one table lookup a byte, with the answers of PCRE2's partial
         * and whole matches (tests/serve/test_pattern_dfa.c); a schema's DFAs share a
         * construction budget and SRV_SCHEMA_DFA_BYTES of tables, and a pattern past them is
         * refused (a partial match a trie node would cost tens of ms a mask) */
        struct srv_schema* s = c->s;
        int why = SRV_DFA_BUILT;
        struct srv_dfa* dfa = srv_dfa_build(out.data, out.len, &s->dfa_work, &why);
        const size_t bytes = dfa ? (size_t) dfa->num_states * dfa->num_classes * sizeof(uint16_t) : 0;
        if (dfa == NULL || bytes > SRV_SCHEMA_DFA_BYTES - s->dfa_bytes) {
            srv_dfa_free(dfa);
            if (why == SRV_DFA_NO_MEMORY) {
                OOM(c);
            } else {
                UNSUPPORTED(c, "\"%.80s\": too complex to enforce (its automaton would need more than %d states, or "
                            "the schema's patterns more than %u MB of tables or their construction budget)",
                            text, SRV_DFA_MAX_STATES - 1, (unsigned) (SRV_SCHEMA_DFA_BYTES >> 20));
            }
            ok = false;
        } else {
            s->dfa_bytes += bytes;
            s->patterns[s->num_patterns] = (struct pattern){NULL, dfa, 1};
            n->pattern = (uint16_t) ++s->num_patterns;
        }
    } else {
        /* unanchored: any prefix can be completed, and only the whole string is matched, by
         * PCRE2 (JIT where it has it; the interpreter otherwise, with the same answers) */
        int code = 0;
        PCRE2_SIZE at = 0;
        pcre2_code* re = pcre2_compile((PCRE2_SPTR) out.data, out.len,
                                       PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_UTF | PCRE2_NEVER_UCP | PCRE2_NO_AUTO_CAPTURE,
                                       &code, &at, NULL);
        if (re == NULL) {
            char msg[120];
            pcre2_get_error_message(code, (PCRE2_UCHAR*) msg, sizeof(msg));
            UNSUPPORTED(c, "\"%.80s\": PCRE2 refuses it as translated (%s)", text, msg);
            ok = false;
        } else {
            pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
            c->s->patterns[c->s->num_patterns] = (struct pattern){re, NULL, 0};
            n->pattern = (uint16_t) ++c->s->num_patterns;
        }
    }
    srv_buf_free(&out);
    where_pop(c, mark);
    return ok;
}

/* The assertion keywords of a schema into node id (the siblings of an enum/const: its own node). */
static bool compile_assertions(struct compiler* c, int id, const json_t* schema) {
    const json_t* t = json_object_get(schema, "type");
    uint8_t types = T_ALL;
    if (t != NULL && !compile_type(c, t, &types)) return false;
    uint32_t lens[4] = {0, NO_LIMIT, 0, NO_LIMIT};
    static const char* const kCounts[4] = {"minLength", "maxLength", "minItems", "maxItems"};
    for (int k = 0; k < 4; k++) {
        if (!count_keyword(c, schema, kCounts[k], &lens[k])) return false;
        if (k % 2 == 0 && lens[k] == NO_LIMIT) {
            UNSUPPORTED(c, "%s: at most %u", kCounts[k], NO_LIMIT - 1);
            return false;
        }
    }
    const json_t* items = json_object_get(schema, "items");
    int item = NODE_ANY;
    if (json_is_array(items)) {
        UNSUPPORTED(c, "items: an array of schemas (tuple validation) is not supported");
        return false;
    }
    if (items != NULL && !json_is_object(items) && !json_is_boolean(items)) {
        BAD(c, "items: expected a schema");
        return false;
    }
    if (items != NULL && (item = compile_at(c, items, "items", 0)) < 0) return false;
    if (!compile_object(c, id, schema)) return false;
    struct node* n = &c->s->nodes[id];
    n->min_len = lens[0];
    n->max_len = lens[1];
    n->min_items = lens[2];
    n->max_items = lens[3];
    n->items = (uint16_t) item;
    if (!compile_bounds(c, n, schema)) return false;
    if (!compile_pattern(c, n, schema)) return false;
    n = &c->s->nodes[id];
    /* a type whose own constraints contradict each other admits nothing */
    if (n->min_len > n->max_len) types &= (uint8_t) ~T_STRING;
    if (n->min_items > n->max_items) types &= (uint8_t) ~T_ARRAY;
    n->types = types;
    if ((n->lo.on || n->hi.on) && !numbers_exist(n)) n->types &= (uint8_t) ~(T_INTEGER | T_FRACTION);
    return true;
}

static int compile(struct compiler* c, const json_t* schema) {
    if (json_is_true(schema)) return NODE_ANY;
    if (json_is_false(schema)) return NODE_NONE;
    if (!json_is_object(schema)) {
        BAD(c, "a schema must be an object or a boolean");
        return -1;
    }
    for (uint32_t i = 0; i < c->num_memo; i++) {
        if (c->memo[i].schema != schema) continue;
        if (c->memo[i].node < 0) BAD(c, "$ref/allOf refer back to themselves with no schema in between");
        return c->memo[i].node;
    }
    /* each schema object once: a chain of $ref through $defs nests no deeper than this either */
    if (++c->num_schemas > SRV_SCHEMA_MAX_NODES) {
        UNSUPPORTED(c, "the schema has more than %d subschemas (counting $ref and allOf)", SRV_SCHEMA_MAX_NODES);
        return -1;
    }
    /* every keyword is one of ours; what kind of schema it is */
    const char* assertion = NULL;
    const json_t *ref = NULL, *any_of = NULL, *all_of = NULL;
    const char* key;
    json_t* value;
    json_object_foreach((json_t*) schema, key, value) {
        if (listed(kAssertions, key)) {
            if (assertion == NULL) assertion = key;
        } else if (strcmp(key, "$ref") == 0) {
            ref = value;
        } else if (strcmp(key, "anyOf") == 0) {
            any_of = value;
        } else if (strcmp(key, "allOf") == 0) {
            all_of = value;
        } else if (!listed(kIgnored, key)) {
            const size_t mark = where_push(c, key, 0);
            if (strcmp(key, "oneOf") == 0 || strcmp(key, "not") == 0) {
                UNSUPPORTED(c, "\"%s\" is not supported (anyOf is)", key);
            } else {
                UNSUPPORTED(c, "\"%.60s\" is not supported; the keywords are type, enum, const, properties, required, "
                            "additionalProperties, items, minItems, maxItems, minLength, maxLength, pattern, format, "
                            "minimum, maximum, exclusiveMinimum, exclusiveMaximum, anyOf, allOf of one schema, $ref "
                            "and annotations", key);
            }
            where_pop(c, mark);
            return -1;
        }
    }
    static const char* const kStrings[] = {"$schema", "$id", "$comment", "title", "description", NULL};
    for (const char* const* k = kStrings; *k; k++) {
        const json_t* v = json_object_get(schema, *k);
        if (v != NULL && !json_is_string(v)) {
            BAD(c, "%s: expected a string", *k);
            return -1;
        }
    }
    for (int k = 0; k < 2; k++) {
        const json_t* v = json_object_get(schema, k == 0 ? "$defs" : "definitions");
        if (v != NULL && !json_is_object(v)) {
            BAD(c, "%s: expected an object of schemas", k == 0 ? "$defs" : "definitions");
            return -1;
        }
    }
    if (schema != c->root && json_object_get(schema, "$id") != NULL) {
        UNSUPPORTED(c, "\"$id\" inside the schema is not supported (it changes what $ref refers to)");
        return -1;
    }
    /* $ref, anyOf and allOf stand alone (beside annotations): the other keywords would be a
     * conjunction with them, which is not supported */
    const char* kinds[4];
    int num_kinds = 0;
    if (ref != NULL) kinds[num_kinds++] = "$ref";
    if (any_of != NULL) kinds[num_kinds++] = "anyOf";
    if (all_of != NULL) kinds[num_kinds++] = "allOf";
    if (assertion != NULL) kinds[num_kinds++] = assertion;
    if (num_kinds > 1) {
        UNSUPPORTED(c, "\"%s\" beside \"%s\" is not supported (move the other keywords into the referenced or "
                    "alternative schemas)", kinds[0], kinds[1]);
        return -1;
    }
    if (ref != NULL) {
        if (!json_is_string(ref)) {
            BAD(c, "$ref: expected a string");
            return -1;
        }
        const size_t mark = where_push(c, "$ref", 0);
        const json_t* target = resolve(c, json_string_value(ref));
        where_pop(c, mark);
        if (target == NULL) return -1;
        return compile_ref(c, schema, target, json_string_value(ref));
    }
    if (all_of != NULL) {
        if (!json_is_array(all_of) || json_array_size(all_of) != 1) {
            if (json_is_array(all_of)) UNSUPPORTED(c, "allOf: only an allOf of one schema is supported");
            else BAD(c, "allOf: expected an array of schemas");
            return -1;
        }
        if (!memo_put(c, schema, -1)) return -1;
        const size_t mark = where_push(c, "allOf", 0);
        const int id = compile_at(c, json_array_get(all_of, 0), NULL, 0);
        where_pop(c, mark);
        if (id < 0 || !memo_put(c, schema, id)) return -1;
        return id;
    }
    const int id = new_node(c);
    if (id < 0 || !memo_put(c, schema, id)) return -1;
    if (any_of != NULL) {
        if (!json_is_array(any_of) || json_array_size(any_of) == 0) {
            BAD(c, "anyOf: expected a non-empty array of schemas");
            return -1;
        }
        const size_t n = json_array_size(any_of);
        if (n > SRV_SCHEMA_MAX_NODES) {
            UNSUPPORTED(c, "anyOf: more than %d alternatives", SRV_SCHEMA_MAX_NODES);
            return -1;
        }
        uint16_t* alts = malloc(n * sizeof(uint16_t));
        if (alts == NULL) {
            OOM(c);
            return -1;
        }
        const size_t mark = where_push(c, "anyOf", 0);
        bool ok = true;
        for (size_t i = 0; i < n && ok; i++) {
            const int alt = compile_at(c, json_array_get(any_of, i), NULL, i);
            ok = alt >= 0;
            alts[i] = (uint16_t) (ok ? alt : 0);
        }
        where_pop(c, mark);
        uint32_t first = 0;
        ok = ok && append_refs(c, alts, (uint32_t) n, &first);
        free(alts);
        if (!ok) return -1;
        c->s->nodes[id].kind = K_ANYOF;
        c->s->nodes[id].first = first;
        c->s->nodes[id].count = (uint32_t) n;
        return id;
    }
    const json_t* values = json_object_get(schema, "enum");
    const json_t* constant = json_object_get(schema, "const");
    if (values == NULL && constant == NULL) return compile_assertions(c, id, schema) ? id : -1;
    if (values != NULL && (!json_is_array(values) || json_array_size(values) == 0)) {
        BAD(c, "enum: expected a non-empty array of values");
        return -1;
    }
    if (json_array_size(values) > SRV_SCHEMA_MAX_ENUM) {
        UNSUPPORTED(c, "enum: more than %d values", SRV_SCHEMA_MAX_ENUM);
        return -1;
    }
    const int sibling = new_node(c);
    if (sibling < 0 || !compile_assertions(c, sibling, schema)) return -1;
    if (!grow((void**) &c->pending, &c->cap_pending, c->num_pending + 1, sizeof(struct pending))) {
        OOM(c);
        return -1;
    }
    c->pending[c->num_pending++] = (struct pending){(uint16_t) id, (uint16_t) sibling, values, constant};
    c->s->nodes[id].kind = K_ENUM;
    return id;
}

/* ---- after compiling: anyOf flattened, enum values filtered -------------------------------- */

static bool flatten(struct compiler* c, uint16_t id) {
    if (c->state[id] == 2) return true;
    if (c->state[id] == 1) {
        snprintf(c->where, sizeof(c->where), "%s", c->s->nodes[id].where);
        c->where_len = strlen(c->where);
        BAD(c, "anyOf contains itself (through $ref) with no object or array in between");
        return false;
    }
    c->state[id] = 1;
    struct srv_schema* s = c->s;
    uint16_t* alts = NULL;
    uint32_t n = 0, cap = 0;
    bool ok = true;
    for (uint32_t i = 0; i < s->nodes[id].count && ok; i++) {
        const uint16_t b = s->refs[s->nodes[id].first + i];
        const bool nested = s->nodes[b].kind == K_ANYOF;
        if (nested && !flatten(c, b)) {
            ok = false;
            break;
        }
        const uint32_t from = nested ? s->nodes[b].first : 0, count = nested ? s->nodes[b].count : 1;
        for (uint32_t k = 0; k < count && ok; k++) {
            const uint16_t leaf = nested ? s->refs[from + k] : b;
            bool dup = leaf == NODE_NONE;
            for (uint32_t j = 0; j < n && !dup; j++) dup = alts[j] == leaf;
            if (dup) continue;
            if (!grow((void**) &alts, &cap, n + 1, sizeof(uint16_t))) {
                OOM(c);
                ok = false;
                break;
            }
            alts[n++] = leaf;
        }
    }
    uint32_t first = 0;
    if (ok && n > 0) ok = append_refs(c, alts, n, &first);
    free(alts);
    if (!ok) return false;
    s->nodes[id].first = first;
    s->nodes[id].count = n;
    c->state[id] = 2;
    return true;
}

static bool flatten_all(struct compiler* c) {
    free(c->state);
    c->state = calloc(c->s->num_nodes, 1);
    if (c->state == NULL) {
        OOM(c);
        return false;
    }
    for (uint32_t id = 0; id < c->s->num_nodes; id++) {
        if (c->s->nodes[id].kind == K_ANYOF && !flatten(c, (uint16_t) id)) return false;
    }
    return true;
}

static const struct pending* pending_of(const struct compiler* c, uint16_t id) {
    for (uint32_t i = 0; i < c->num_pending; i++)
        if (c->pending[i].node == id) return &c->pending[i];
    return NULL;
}

static bool in_values(const struct pending* p, const json_t* v) {
    if (p->constant != NULL && !same_value(p->constant, v)) return false;
    if (p->values == NULL) return true;
    for (size_t i = 0; i < json_array_size(p->values); i++)
        if (same_value(json_array_get(p->values, i), v)) return true;
    return false;
}

static uint16_t item_node(const struct srv_schema* s, const struct node* n, uint32_t i) {
    return n->tuple ? s->refs[n->tuple_first + i] : n->items;
}

/* Whether value v is valid against node id as the recognizer reads it (a real is an integer
 * when integral, as it can be written so; keys were checked to need no escape): enum values are filtered by
 * their siblings with it. Terminates: every call descends into v, but an enum's (to its
 * siblings' node) and an anyOf's (to an alternative, never an anyOf or an enum's siblings). */
static bool valid(struct compiler* c, uint16_t id, const json_t* v) {
    const struct srv_schema* s = c->s;
    if (c->budget == 0) { /* anyOf alternatives nesting in each other: exponential in v's depth */
        UNSUPPORTED(c, "enum/const values too costly to check against the keywords beside them");
        return false;
    }
    c->budget--;
    const struct node* n = &s->nodes[id];
    if (n->kind == K_ENUM) {
        const struct pending* p = pending_of(c, id);
        return in_values(p, v) && valid(c, p->sibling, v);
    }
    if (n->kind == K_ANYOF) {
        for (uint32_t i = 0; i < n->count; i++)
            if (valid(c, s->refs[n->first + i], v)) return true;
        return false;
    }
    switch (json_typeof(v)) {
    case JSON_NULL: return n->types & T_NULL;
    case JSON_TRUE: return n->types & T_TRUE;
    case JSON_FALSE: return n->types & T_FALSE;
    case JSON_INTEGER:
    case JSON_REAL: {
        const bool integral = json_is_integer(v) || json_real_value(v) == floor(json_real_value(v));
        if (!(n->types & T_FRACTION) && !(integral && (n->types & T_INTEGER))) return false;
        struct numc x;
        number_parts(v, &x);
        if (!within_bounds(n, &x)) return false;
        if (!n->enumerated) return true;
        for (uint32_t k = 0; k < n->num_num; k++)
            if (numc_equal(&x, &s->nums[n->num_first + k])) return true;
        return false;
    }
    case JSON_STRING: {
        if (!(n->types & T_STRING)) return false;
        if (n->enumerated) {
            for (uint32_t k = 0; k < n->num_str; k++) {
                const struct strc* cs = &s->strs[n->str_first + k];
                if (cs->len == json_string_length(v) && memcmp(cs->s, json_string_value(v), cs->len) == 0) return true;
            }
            return false;
        }
        const uint32_t len = code_points(json_string_value(v), json_string_length(v));
        if (len < n->min_len || len > n->max_len) return false;
        if (n->pattern == 0) return true;
        const struct pattern* p = &s->patterns[n->pattern - 1];
        if (p->dfa != NULL) { /* anchored: the DFA's whole match */
            const uint8_t* b = (const uint8_t*) json_string_value(v);
            uint32_t q = 1;
            for (size_t i = 0; i < json_string_length(v) && q != 0; i++) q = srv_dfa_step(p->dfa, q, b[i]);
            return p->dfa->accepting[q];
        }
        pcre2_match_data* md = pcre2_match_data_create(1, NULL);
        const int rc = md ? pcre2_match(p->code, (PCRE2_SPTR) json_string_value(v), json_string_length(v), 0, 0, md,
                                        s->mctx)
                          : PCRE2_ERROR_NOMEMORY;
        pcre2_match_data_free(md);
        return rc >= 0;
    }
    case JSON_ARRAY: {
        const size_t size = json_array_size(v);
        if (!(n->types & T_ARRAY) || size < n->min_items || size > n->max_items) return false;
        for (size_t i = 0; i < size; i++)
            if (!valid(c, item_node(s, n, (uint32_t) i), json_array_get(v, i))) return false;
        return true;
    }
    case JSON_OBJECT: {
        if (!(n->types & T_OBJECT)) return false;
        uint64_t seen[2] = {0, 0};
        const char* key;
        json_t* value;
        json_object_foreach((json_t*) v, key, value) {
            uint32_t k = 0;
            while (k < n->count && strcmp(s->props[n->first + k].name, key) != 0) k++;
            if (k < n->count) put(seen, k);
            if (!valid(c, k < n->count ? s->props[n->first + k].node : n->additional, value)) return false;
        }
        return (n->required[0] & ~seen[0]) == 0 && (n->required[1] & ~seen[1]) == 0;
    }
    }
    return false;
}

static int const_node(struct compiler* c, const json_t* v, uint16_t guide);

/* The node that guides how a value nested in an enum/const array or object may be written
 * (where the siblings say "integer", a number is written without fraction): the siblings'
 * node for an enum, the one alternative that takes v; several alternatives that take an array
 * or object cannot guide it exactly, and are refused. */
static int guide_of(struct compiler* c, uint16_t guide, const json_t* v) {
    const struct node* n = &c->s->nodes[guide];
    if (n->kind == K_ENUM) return guide_of(c, pending_of(c, guide)->sibling, v);
    if (n->kind != K_ANYOF || !(json_is_array(v) || json_is_object(v))) return guide;
    int found = -1;
    for (uint32_t i = 0; i < n->count; i++) {
        const uint16_t b = c->s->refs[n->first + i];
        if (!valid(c, b, v)) continue;
        if (found >= 0) {
            UNSUPPORTED(c, "enum/const: a value nested in an array or object is taken by several anyOf alternatives "
                        "of its siblings at %s", n->where);
            return -1;
        }
        found = b;
    }
    return found < 0 ? guide : guide_of(c, (uint16_t) found, v);
}

/* A number may be written with a fraction where the guide admits one (any alternative that
 * takes the value, for an anyOf). */
static bool fraction_allowed(struct compiler* c, uint16_t guide, const json_t* v) {
    const struct node* n = &c->s->nodes[guide];
    if (n->kind == K_ENUM) return fraction_allowed(c, pending_of(c, guide)->sibling, v);
    if (n->kind != K_ANYOF) return (n->types & T_FRACTION) != 0;
    for (uint32_t i = 0; i < n->count; i++) {
        const uint16_t b = c->s->refs[n->first + i];
        if (valid(c, b, v) && fraction_allowed(c, b, v)) return true;
    }
    return false;
}

/* Scalars as the candidates of node id: strings, numbers (candidates_of the values). */
static bool add_scalar(struct compiler* c, struct node* n, const json_t* v, bool fraction) {
    struct srv_schema* s = c->s;
    if (json_is_string(v)) {
        if (!grow((void**) &s->strs, &s->cap_strs, s->num_strs + 1, sizeof(struct strc))) return false;
        struct strc* cs = &s->strs[s->num_strs];
        cs->len = (uint32_t) json_string_length(v);
        cs->s = malloc(cs->len + 1);
        if (cs->s == NULL) return false;
        memcpy(cs->s, json_string_value(v), cs->len + 1);
        if (n->num_str++ == 0) n->str_first = s->num_strs;
        s->num_strs++;
        n->types |= T_STRING;
    } else if (json_is_number(v)) {
        if (!grow((void**) &s->nums, &s->cap_nums, s->num_nums + 1, sizeof(struct numc))) return false;
        number_parts(v, &s->nums[s->num_nums]);
        if (n->num_num++ == 0) n->num_first = s->num_nums;
        s->num_nums++;
        n->types |= fraction ? T_INTEGER | T_FRACTION : T_INTEGER;
    } else {
        n->types |= json_is_null(v) ? T_NULL : json_is_true(v) ? T_TRUE : T_FALSE;
    }
    return true;
}

static int const_node(struct compiler* c, const json_t* v, uint16_t guide) {
    const int g = guide_of(c, guide, v);
    if (g < 0) return -1;
    const int id = new_node(c);
    if (id < 0) return -1;
    struct srv_schema* s = c->s;
    if (!json_is_array(v) && !json_is_object(v)) {
        struct node* n = &s->nodes[id];
        n->types = 0;
        n->enumerated = 1;
        if (!add_scalar(c, n, v, !json_is_number(v) || fraction_allowed(c, (uint16_t) g, v))) {
            OOM(c);
            return -1;
        }
        return id;
    }
    const struct node* gn = &s->nodes[g];
    const bool plain_guide = gn->kind == K_PLAIN;
    if (json_is_array(v)) {
        const size_t size = json_array_size(v);
        uint16_t* items = malloc((size ? size : 1) * sizeof(uint16_t));
        if (items == NULL) {
            OOM(c);
            return -1;
        }
        bool ok = true;
        for (size_t i = 0; i < size && ok; i++) {
            const json_t* item = json_array_get(v, i);
            const int child = const_node(c, item, plain_guide ? item_node(s, &s->nodes[g], (uint32_t) i) : NODE_ANY);
            ok = child >= 0;
            items[i] = (uint16_t) (ok ? child : 0);
        }
        uint32_t first = 0;
        ok = ok && append_refs(c, items, (uint32_t) size, &first);
        free(items);
        if (!ok) return -1;
        struct node* n = &s->nodes[id];
        n->types = T_ARRAY;
        n->tuple = 1;
        n->tuple_first = first;
        n->min_items = n->max_items = (uint32_t) size;
        return id;
    }
    if (json_object_size(v) > SRV_SCHEMA_MAX_PROPERTIES) {
        UNSUPPORTED(c, "enum/const: an object of more than %d keys", SRV_SCHEMA_MAX_PROPERTIES);
        return -1;
    }
    struct prop* local = calloc(SRV_SCHEMA_MAX_PROPERTIES, sizeof(struct prop));
    if (local == NULL) {
        OOM(c);
        return -1;
    }
    uint32_t n = 0;
    bool ok = true;
    const char* key;
    json_t* value;
    json_object_foreach((json_t*) v, key, value) {
        uint16_t child_guide = NODE_ANY;
        if (plain_guide) {
            const struct node* gg = &s->nodes[g];
            uint32_t k = 0;
            while (k < gg->count && strcmp(s->props[gg->first + k].name, key) != 0) k++;
            child_guide = k < gg->count ? s->props[gg->first + k].node : gg->additional;
        }
        const int child = const_node(c, value, child_guide);
        if (child < 0) {
            ok = false;
            break;
        }
        local[n++] = (struct prop){(char*) key, (uint32_t) strlen(key), (uint16_t) child};
    }
    ok = ok && add_props(c, id, local, n);
    free(local);
    if (!ok) return -1;
    struct node* node = &s->nodes[id];
    node->types = T_OBJECT;
    node->additional = NODE_NONE;
    fill_bits(node->required, n);
    return id;
}

/* Whether the keys of v's objects, all the way down, can be written without escapes; refused
 * with the first that cannot. */
static bool writable_value(struct compiler* c, const json_t* v) {
    const char* key;
    json_t* value;
    size_t i;
    json_object_foreach((json_t*) v, key, value) {
        if (!writable_key(key, strlen(key))) {
            UNSUPPORTED(c, "enum/const: the key \"%.60s\" needs an escape in JSON; keys are written without escapes "
                        "here", key);
            return false;
        }
        if (!writable_value(c, value)) return false;
    }
    json_array_foreach((json_t*) v, i, value) if (!writable_value(c, value)) return false;
    return true;
}

/* An enum/const node made final: the values its siblings take (all found before the node
 * changes, as the siblings may contain it), scalars as candidates on the node, or, beside
 * arrays and objects, on an alternative of an anyOf with one node per array or object. */
static bool finish_enum(struct compiler* c, const struct pending* p) {
    struct srv_schema* s = c->s;
    const size_t count = p->values ? json_array_size(p->values) : 1;
    snprintf(c->where, sizeof(c->where), "%s", s->nodes[p->node].where);
    c->where_len = strlen(c->where);
    const json_t* taken[SRV_SCHEMA_MAX_ENUM];
    bool fraction[SRV_SCHEMA_MAX_ENUM];
    uint32_t num_taken = 0;
    bool containers = false;
    for (size_t i = 0; i < count; i++) {
        const json_t* v = p->values ? json_array_get(p->values, i) : p->constant;
        if (!writable_value(c, v)) return false;
        if (!in_values(p, v) || !valid(c, p->sibling, v)) continue;
        containers |= json_is_array(v) || json_is_object(v);
        fraction[num_taken] = !json_is_number(v) || fraction_allowed(c, p->sibling, v);
        taken[num_taken++] = v;
    }
    if (c->failed) return false; /* out of valid()'s budget */
    uint16_t alts[SRV_SCHEMA_MAX_ENUM];
    uint32_t num_alts = 0;
    int scalars = containers ? -1 : p->node;
    for (uint32_t i = 0; i < num_taken; i++) {
        if (json_is_array(taken[i]) || json_is_object(taken[i])) {
            const int id = const_node(c, taken[i], p->sibling);
            if (id < 0) return false;
            alts[num_alts++] = (uint16_t) id;
        }
    }
    for (uint32_t i = 0; i < num_taken; i++) {
        if (json_is_array(taken[i]) || json_is_object(taken[i])) continue;
        if (scalars < 0) {
            if ((scalars = new_node(c)) < 0) return false;
            alts[num_alts++] = (uint16_t) scalars;
        }
        struct node* n = &s->nodes[scalars];
        if (n->enumerated == 0) {
            n->kind = K_PLAIN;
            n->types = 0;
            n->enumerated = 1;
        }
        if (!add_scalar(c, n, taken[i], fraction[i])) {
            OOM(c);
            return false;
        }
    }
    struct node* n = &s->nodes[p->node];
    if (!containers) {
        n->kind = K_PLAIN;
        n->enumerated = 1;
        if (num_taken == 0) n->types = 0; /* no value: it admits none */
        return true;
    }
    uint32_t first = 0;
    if (!append_refs(c, alts, num_alts, &first)) return false;
    n = &s->nodes[p->node];
    n->kind = K_ANYOF;
    n->first = first;
    n->count = num_alts;
    return true;
}

/* ---- analyses ------------------------------------------------------------------------ */

static uint8_t md_max(uint8_t a, uint8_t b) { return a > b ? a : b; }

/* The least nesting of an instance of each node, from "none" down to the fixed point. */
static void least_depths(struct srv_schema* s) {
    for (uint32_t i = 0; i < s->num_nodes; i++) s->nodes[i].md = s->nodes[i].md_obj = s->nodes[i].md_arr = DEPTH_NONE;
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t i = s->num_nodes; i-- > 0;) {
            struct node* n = &s->nodes[i];
            uint8_t md = DEPTH_NONE, obj = DEPTH_NONE, arr = DEPTH_NONE;
            if (n->kind == K_ANYOF) {
                for (uint32_t k = 0; k < n->count; k++) {
                    const uint8_t b = s->nodes[s->refs[n->first + k]].md;
                    if (b < md) md = b;
                }
            } else {
                if (n->types & T_OBJECT) {
                    uint8_t deepest = 0;
                    FOR_BITS(n->required, k) deepest = md_max(deepest, s->nodes[s->props[n->first + k].node].md);
                    obj = deepest >= DEPTH_NONE ? DEPTH_NONE : (uint8_t) (deepest + 1);
                }
                if (n->types & T_ARRAY) {
                    uint8_t deepest = 0;
                    if (n->tuple) {
                        for (uint32_t k = 0; k < n->min_items; k++)
                            deepest = md_max(deepest, s->nodes[s->refs[n->tuple_first + k]].md);
                    } else if (n->min_items > 0) {
                        deepest = s->nodes[n->items].md;
                    }
                    arr = deepest >= DEPTH_NONE ? DEPTH_NONE : (uint8_t) (deepest + 1);
                }
                md = (n->types & (T_NULL | T_TRUE | T_FALSE | T_INTEGER | T_STRING)) ? 0 : obj < arr ? obj : arr;
            }
            if (md != n->md || obj != n->md_obj || arr != n->md_arr) {
                n->md = md;
                n->md_obj = obj;
                n->md_arr = arr;
                changed = true;
            }
        }
    }
}

/* How many configurations a value of each node can need at once: before its first byte
 * (w[0]: one per alternative) and once it is an object, array, string, number or literal
 * (w[1..5]: an anyOf sums its alternatives of that type; a container takes the most of its
 * members' values). The least fixed point from below; false when it passes the limit (or
 * does not settle in the passes allowed: both refused). */
enum { W_BEFORE, W_OBJECT, W_ARRAY, W_STRING, W_NUMBER, W_LITERAL, W_KINDS };

static uint32_t w_all(uint16_t (*w)[W_KINDS], uint16_t id) {
    uint32_t most = 0;
    for (int k = 0; k < W_KINDS; k++)
        if (w[id][k] > most) most = w[id][k];
    return most;
}

static bool widths(struct compiler* c) {
    struct srv_schema* s = c->s;
    const uint32_t cap = SRV_SCHEMA_MAX_ALTERNATIVES + 1;
    uint16_t (*w)[W_KINDS] = calloc(s->num_nodes, sizeof(*w));
    if (w == NULL) {
        OOM(c);
        return false;
    }
    bool settled = false;
    int over = -1;
    for (int pass = 0; pass < 4 * (SRV_SCHEMA_MAX_ALTERNATIVES + 2) && !settled && over < 0; pass++) {
        settled = true;
        for (uint32_t i = s->num_nodes; i-- > 0 && over < 0;) {
            const struct node* n = &s->nodes[i];
            uint32_t nw[W_KINDS] = {0};
            if (n->kind == K_ANYOF) {
                for (uint32_t k = 0; k < n->count; k++)
                    for (int t = 0; t < W_KINDS; t++) nw[t] += w[s->refs[n->first + k]][t];
            } else if (n->types != 0) {
                nw[W_BEFORE] = 1;
                if (n->types & T_OBJECT) {
                    nw[W_OBJECT] = 1;
                    for (uint32_t k = 0; k < n->count; k++) {
                        const uint32_t x = w_all(w, s->props[n->first + k].node);
                        if (x > nw[W_OBJECT]) nw[W_OBJECT] = x;
                    }
                    if (n->additional != NODE_NONE && w_all(w, n->additional) > nw[W_OBJECT])
                        nw[W_OBJECT] = w_all(w, n->additional);
                }
                if (n->types & T_ARRAY) {
                    nw[W_ARRAY] = 1;
                    const uint32_t items = n->tuple ? n->min_items : 1;
                    for (uint32_t k = 0; k < items; k++) {
                        const uint32_t x = w_all(w, item_node(s, n, k));
                        if (x > nw[W_ARRAY]) nw[W_ARRAY] = x;
                    }
                }
                nw[W_STRING] = (n->types & T_STRING) != 0;
                nw[W_NUMBER] = (n->types & T_INTEGER) != 0;
                nw[W_LITERAL] = (n->types & (T_NULL | T_TRUE | T_FALSE)) != 0;
            }
            for (int t = 0; t < W_KINDS; t++) {
                const uint16_t x = (uint16_t) (nw[t] < cap ? nw[t] : cap);
                if (x != w[i][t]) {
                    w[i][t] = x;
                    settled = false;
                }
                if (x >= cap) over = (int) i;
            }
        }
    }
    s->width = w_all(w, s->root);
    free(w);
    if (over >= 0 || !settled) {
        snprintf(c->where, sizeof(c->where), "%s", over >= 0 ? s->nodes[over].where : "#");
        c->where_len = strlen(c->where);
        UNSUPPORTED(c, "anyOf alternatives that nest in each other could have to be followed more than %d at once",
                    SRV_SCHEMA_MAX_ALTERNATIVES);
        return false;
    }
    return true;
}

struct srv_schema* srv_schema_compile(const json_t* schema, const char* param, struct srv_error* err) {
    if (err == NULL) return NULL;
    if (schema == NULL || param == NULL) {
        srv_error_set(err, 400, "invalid_request_error", "invalid_value", param, "%s: no schema",
                      param ? param : "schema");
        return NULL;
    }
    struct compiler c = {.root = schema, .param = param, .err = err, .budget = 1u << 20};
    c.s = calloc(1, sizeof(struct srv_schema));
    if (c.s != NULL) c.s->dfa_work = SRV_SCHEMA_DFA_WORK;
    if (c.s != NULL && (c.s->mctx = pcre2_match_context_create(NULL)) != NULL) {
        pcre2_set_match_limit(c.s->mctx, SRV_SCHEMA_MATCH_LIMIT);
        pcre2_set_depth_limit(c.s->mctx, SRV_SCHEMA_MATCH_LIMIT / 10);
    }
    if (c.s == NULL || c.s->mctx == NULL) {
        srv_schema_free(c.s);
        srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
        return NULL;
    }
    /* NODE_NONE and NODE_ANY first */
    int root = -1;
    if (new_node(&c) == NODE_NONE && new_node(&c) == NODE_ANY) {
        c.s->nodes[NODE_NONE].types = 0;
        root = compile(&c, schema);
    }
    bool ok = root >= 0 && !c.failed && flatten_all(&c);
    for (uint32_t i = 0; ok && i < c.num_pending; i++) ok = finish_enum(&c, &c.pending[i]);
    /* enums made anyOf nodes, which may be alternatives of an anyOf: flattened again */
    ok = ok && flatten_all(&c);
    if (ok) {
        c.s->root = (uint16_t) root;
        least_depths(c.s);
        ok = widths(&c);
    }
    if (ok && c.s->nodes[root].md > SRV_JSON_MAX_DEPTH) {
        c.where_len = 0;
        c.where[0] = '\0';
        BAD(&c, "the schema admits no value (within %d levels of nesting)", SRV_JSON_MAX_DEPTH);
        ok = false;
    }
    free(c.memo);
    free(c.pending);
    free(c.state);
    if (!ok || c.failed) {
        if (!c.failed) srv_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
        srv_schema_free(c.s);
        return NULL;
    }
    return c.s;
}

/* ---- the recognizer ------------------------------------------------------------------ */

enum {
    M_VALUE,        /* a value of cfg.node (never an anyOf): whitespace (inside a container), its first byte */
    M_ARRAY_FIRST,  /* after '[': a value of cfg.node (NODE_NONE: none may come) or ']' */
    M_OBJECT_FIRST, /* after '{': a key or '}' */
    M_KEY,          /* after ',' in an object: a key */
    M_COLON,        /* after a key */
    M_AFTER,        /* after a value in a container: ',' or its closing bracket */
    M_STRING,       /* in a string (key: an object's key) */
    M_NUMBER,
    M_LITERAL,
    M_DONE,
};

enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

static const char* const kLiterals[3] = {"true", "false", "null"};

/* An open container. */
struct frame {
    uint64_t seen[2];  /* object: the properties present */
    uint32_t count;    /* array: the items so far (saturating) */
    uint32_t parent;   /* the pool's frame of the container around it (NO_INDEX: none) */
    uint32_t last_key; /* object: its last other key in the key pool (NO_INDEX: none) */
    uint16_t node;
    uint8_t prop;      /* object: the property of the key just read (PROP_OTHER: another key) */
    uint8_t bracket;   /* '{' or '[' */
};

/* One way of reading the text (no padding: configurations are compared with memcmp). */
struct cfg {
    struct frame top;  /* the innermost open container (depth > 0; zero at depth 0) */
    uint16_t node;     /* the value being read or expected */
    uint8_t mode, depth, wsrun, unused[3];
    /* the value being read (zero between values) */
    uint64_t cand[2];  /* the candidates still matched: a key's properties, a string's or number's values */
    uint64_t also[2];  /* a key that may be another key: the properties it still matches */
    uint32_t len;      /* a string: code points; an enum or bounded number: digits of its integer part */
    uint32_t pos;      /* candidates: bytes matched; a key: its bytes; a literal: bytes; a string with
                        * a pattern: its decoded bytes; a number: its digits before the exponent */
    uint32_t kstart;   /* a key that may be another key, a string with a pattern: its bytes in the text pool */
    uint32_t lead;     /* an enum or bounded number: zeros between the point and its first significant digit */
    uint32_t ev;       /* an enum or bounded number: its exponent so far (saturating) */
    uint16_t hex;      /* a \u escape's value so far; a number: the digits of its exponent */
    uint8_t sub;       /* a number: N_*; a literal: which */
    uint8_t key, addl; /* a key; one that may be another key (additionalProperties) */
    uint8_t esc;       /* a string: 1 after '\', 2 + the hex digits read in \u */
    uint8_t hi;        /* a string: a high surrogate escape just before */
    uint8_t u8left, u8lo, u8hi; /* continuation bytes of the character open */
    uint8_t neg, eneg, sig, nsig; /* an enum or bounded number: signs, a significant digit seen, their count */
    uint8_t clo, chi;  /* a bounded number: its significant digits against the bounds' (CMP_*) */
    uint8_t unused2[2];
};
_Static_assert(sizeof(struct cfg) == 112, "struct cfg has no padding");

struct keyent { /* an object's other key: its bytes text[text, text + len) */
    uint32_t text, len, prev;
};

struct srv_schema_state {
    const struct srv_schema* s;
    uint32_t width, n;
    struct cfg* cfgs;       /* [width]: the configurations now */
    struct cfg* levels;     /* [num_levels * width]: the sets of a feed or a walk */
    uint32_t* level_n;
    uint32_t num_levels;
    struct frame* frames;   /* the pools */
    struct keyent* keys;
    uint8_t* text;
    uint32_t num_frames, num_keys, num_text;
    uint32_t cap_frames, cap_keys, cap_text;
    pcre2_match_data* md; /* patterns: the match data of this state's tests */
    /* the plain tokens an anchored pattern's DFA state allows (dfa_plain_words), the last
     * few asked, for the vocabulary they were made from */
    struct dfa_plain {
        const struct pattern* p;
        uint32_t state;
        uint32_t* words;
    } plain_cache[SRV_SCHEMA_PLAIN_CACHE];
    uint32_t plain_next;
    const struct srv_json_vocab* plain_vocab;
};

static const struct node* node_of(const struct srv_schema_state* st, uint16_t id) { return &st->s->nodes[id]; }

static bool fits(const struct srv_schema* s, uint32_t depth, uint16_t id) {
    return depth + s->nodes[id].md <= SRV_JSON_MAX_DEPTH;
}

static void clear_value(struct cfg* x) {
    memset(&x->cand, 0, sizeof(*x) - offsetof(struct cfg, cand));
}

static void push(struct srv_schema_state* st, struct cfg* x, uint16_t node, uint8_t bracket) {
    uint32_t parent = NO_INDEX;
    if (x->depth > 0) {
        st->frames[st->num_frames] = x->top;
        parent = st->num_frames++;
    }
    memset(&x->top, 0, sizeof(x->top));
    x->top.parent = parent;
    x->top.last_key = NO_INDEX;
    x->top.node = node;
    x->top.bracket = bracket;
    x->depth++;
}

static void pop(struct srv_schema_state* st, struct cfg* x) {
    if (--x->depth > 0) x->top = st->frames[x->top.parent];
    else memset(&x->top, 0, sizeof(x->top));
}

/* A value ended: back to its container, or the end of the text. */
static void end_value(struct cfg* x) {
    clear_value(x);
    x->node = 0;
    if (x->depth == 0) {
        x->mode = M_DONE;
        return;
    }
    if (x->top.bracket == '{') {
        if (x->top.prop != PROP_OTHER) put(x->top.seen, x->top.prop);
        x->top.prop = 0;
    } else if (x->top.count < UINT32_MAX) {
        x->top.count++;
    }
    x->mode = M_AFTER;
}

static uint16_t prop_node(const struct srv_schema* s, const struct frame* f) {
    const struct node* n = &s->nodes[f->node];
    return f->prop == PROP_OTHER ? n->additional : s->props[n->first + f->prop].node;
}

/* The properties of the object a key may be (not present yet, their value fits the depth),
 * and whether it may be another key. */
static bool key_choices(const struct srv_schema* s, const struct cfg* x, uint64_t* cand, bool* other) {
    const struct node* n = &s->nodes[x->top.node];
    cand[0] = cand[1] = 0;
    for (uint32_t k = 0; k < n->count; k++) {
        if (!has(x->top.seen, k) && fits(s, x->depth, s->props[n->first + k].node)) put(cand, k);
    }
    *other = n->additional != NODE_NONE && fits(s, x->depth, n->additional);
    return any(cand) || *other;
}

static bool start_key(struct srv_schema_state* st, struct cfg* x) {
    bool other = false;
    if (!key_choices(st->s, x, x->cand, &other)) return false;
    x->mode = M_STRING;
    x->key = 1;
    x->addl = other;
    if (other) {
        fill_bits(x->also, node_of(st, x->top.node)->count);
        x->kstart = st->num_text;
    }
    return true;
}

static bool close_container(struct srv_schema_state* st, struct cfg* x, uint8_t c) {
    if (x->top.bracket != (c == '}' ? '{' : '[')) return false;
    const struct node* n = node_of(st, x->top.node);
    if (c == '}' && ((n->required[0] & ~x->top.seen[0]) | (n->required[1] & ~x->top.seen[1])) != 0) return false;
    if (c == ']' && x->top.count < n->min_items) return false;
    pop(st, x);
    end_value(x);
    return true;
}

/* ',' in a container: another member must be able to come. */
static bool next_member(struct srv_schema_state* st, struct cfg* x) {
    const struct srv_schema* s = st->s;
    const struct node* n = node_of(st, x->top.node);
    if (x->top.bracket == '{') {
        uint64_t cand[2];
        bool other = false;
        if (!key_choices(s, x, cand, &other)) return false;
        x->mode = M_KEY;
        return true;
    }
    if (x->top.count >= n->max_items) return false;
    const uint16_t item = item_node(s, n, x->top.count);
    if (!fits(s, x->depth, item)) return false;
    x->mode = M_VALUE;
    x->node = item;
    return true;
}

static bool utf8_lead(struct cfg* x, uint8_t c) { return srv_utf8_lead(c, &x->u8left, &x->u8lo, &x->u8hi); }

static bool utf8_continue(struct cfg* x, uint8_t c, bool* ok) {
    if (x->u8left == 0) return false;
    *ok = c >= x->u8lo && c <= x->u8hi;
    x->u8left--;
    x->u8lo = 0x80;
    x->u8hi = 0xBF;
    return true;
}

static int short_escape(uint8_t c) {
    switch (c) {
    case '"': return '"';
    case '\\': return '\\';
    case '/': return '/';
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    default: return -1;
    }
}

/* A key: written without escapes; its bytes match properties (cand), or another key (addl:
 * none of the properties, none of the other keys before). */
static bool key_byte(struct srv_schema_state* st, struct cfg* x, uint8_t c) {
    const struct srv_schema* s = st->s;
    const struct node* n = node_of(st, x->top.node);
    const struct prop* props = n->count > 0 ? s->props + n->first : NULL; /* no properties: none at all */
    if (c == '"' && x->u8left == 0) {
        uint32_t prop = NO_INDEX;
        FOR_BITS(x->cand, k) if (props[k].len == x->pos) prop = k;
        if (prop == NO_INDEX) {
            if (!x->addl) return false;
            FOR_BITS(x->also, k) if (props[k].len == x->pos) return false; /* a property present or too deep */
            for (uint32_t e = x->top.last_key; e != NO_INDEX; e = st->keys[e].prev) {
                if (st->keys[e].len == x->pos && memcmp(st->text + st->keys[e].text, st->text + x->kstart, x->pos) == 0)
                    return false; /* a duplicate */
            }
            st->keys[st->num_keys] = (struct keyent){x->kstart, x->pos, x->top.last_key};
            x->top.last_key = st->num_keys++;
            prop = PROP_OTHER;
        }
        x->top.prop = (uint8_t) prop;
        clear_value(x);
        x->mode = M_COLON;
        return true;
    }
    bool ok = true;
    if (!utf8_continue(x, c, &ok)) ok = c >= 0x20 && c != '\\' && (c < 0x80 || utf8_lead(x, c));
    if (!ok) return false;
    FOR_BITS(x->cand, k) keep(x->cand, k, props[k].len > x->pos && (uint8_t) props[k].name[x->pos] == c);
    FOR_BITS(x->also, k) keep(x->also, k, props[k].len > x->pos && (uint8_t) props[k].name[x->pos] == c);
    if (x->addl) {
        st->text[x->kstart + x->pos] = c;
        if (x->kstart + x->pos + 1 > st->num_text) st->num_text = x->kstart + x->pos + 1;
    }
    x->pos++;
    return x->addl || any(x->cand);
}

/* A string without candidates: escapes and UTF-8 checked, code points counted (a pair of
 * surrogate escapes is one, as JSON reads it). */
static bool free_string_byte(const struct node* n, struct cfg* x, uint8_t c) {
    bool ok = true;
    if (utf8_continue(x, c, &ok)) return ok;
    if (x->esc == 1) {
        if (c == 'u') {
            x->esc = 2;
            x->hex = 0;
            return true;
        }
        if (short_escape(c) < 0 || x->len >= n->max_len) return false;
        x->len++;
        x->hi = 0;
        x->esc = 0;
        return true;
    }
    if (x->esc >= 2) {
        const int h = hex_value(c);
        if (h < 0) return false;
        const uint32_t k = x->esc - 2u; /* digits before this one */
        x->hex = (uint16_t) (x->hex << 4 | (uint32_t) h);
        /* no room left: only the low surrogate after a high one, which adds no code point */
        if (x->len >= n->max_len && ((k == 0 && h != 0xD) || (k == 1 && h < 0xC))) return false;
        if (k < 3) {
            x->esc++;
            return true;
        }
        const bool low = x->hex >= 0xDC00 && x->hex <= 0xDFFF;
        if (!(x->hi && low)) x->len++;
        x->hi = x->hex >= 0xD800 && x->hex <= 0xDBFF;
        x->esc = 0;
        x->hex = 0;
        return true;
    }
    if (c == '"') {
        if (x->len < n->min_len) return false;
        end_value(x);
        return true;
    }
    if (c == '\\') {
        if (x->len >= n->max_len && !x->hi) return false;
        x->esc = 1;
        return true;
    }
    if (c < 0x20 || x->len >= n->max_len) return false;
    x->hi = 0;
    if (c >= 0x80 && !utf8_lead(x, c)) return false;
    x->len++;
    return true;
}

/* ---- strings with a pattern ----
 *
 * A pattern matched from the start tests every prefix of the decoded string (escapes read,
 * UTF-8), a character byte by byte, through its DFA (the state in x->lead: one table lookup
 * a byte). Inside an escape, the code points it can still stand for are tried by their
 * UTF-8 byte ranges, a branch left at its first refused byte. The closing quote needs an
 * accepting state. An unanchored pattern's decoded bytes are kept in the text pool from
 * kstart (pos of them), as other keys are, for PCRE2's whole match at the closing quote
 * (under the match limits: a test that reaches them fails, and the quote is refused). A
 * lone surrogate escape is refused here (its string is no UTF-8 to match). */

/* An unanchored pattern: the whole string so far has a match (PCRE2 on the pool's bytes). */
static bool pat_whole(struct srv_schema_state* st, const struct pattern* p, const struct cfg* x) {
    const int rc = pcre2_match(p->code, (PCRE2_SPTR) (st->text + x->kstart), x->pos, 0, 0, st->md, st->s->mctx);
    return rc >= 0;
}

/* Decoded bytes of the string: an anchored pattern's DFA moves on (its state in x->lead),
 * an unanchored one's are kept for the closing quote's test. */
static bool pat_append(struct srv_schema_state* st, const struct pattern* p, struct cfg* x, const uint8_t* b, int n) {
    if (p->anchored) {
        uint32_t q = x->lead;
        for (int i = 0; i < n && q != 0; i++) q = srv_dfa_step(p->dfa, q, b[i]);
        x->lead = q;
        return q != 0;
    }
    for (int i = 0; i < n; i++) st->text[x->kstart + x->pos + (uint32_t) i] = b[i];
    x->pos += (uint32_t) n;
    if (x->kstart + x->pos > st->num_text) st->num_text = x->kstart + x->pos;
    return true;
}

/* The same walk over a DFA: some byte sequence of the ranges leads to a live state. */
struct dfa_dfs {
    const struct srv_dfa* dfa;
    uint32_t state;
    bool found;
};

static bool dfa_dfs_bytes(const struct srv_dfa* dfa, uint32_t q, const uint8_t* lo, const uint8_t* hi, int n, int i) {
    for (uint32_t b = lo[i]; b <= hi[i]; b++) {
        const uint32_t t = srv_dfa_step(dfa, q, (uint8_t) b);
        if (t != 0 && (i + 1 == n || dfa_dfs_bytes(dfa, t, lo, hi, n, i + 1))) return true;
    }
    return false;
}

static bool dfa_dfs_seq(void* ctx, const uint8_t* lo, const uint8_t* hi, int n) {
    struct dfa_dfs* d = ctx;
    d->found = dfa_dfs_bytes(d->dfa, d->state, lo, hi, n, 0);
    return !d->found;
}

/* Inside an escape (after '\', "\u" and some hex digits, or a high surrogate's): some code
 * point it can still stand for continues the prefix. */
static bool pat_escape_viable(struct srv_schema_state* st, const struct pattern* p, const struct cfg* x) {
    const uint32_t k = x->esc >= 2 ? x->esc - 2u : 0, shift = 4 * (4 - k);
    const uint32_t lo = (uint32_t) x->hex << shift, hi = lo + (1u << shift) - 1;
    uint32_t r[3][2];
    int nr = 0;
    if (x->hi) {
        const uint32_t base = 0x10000 + ((x->ev - 0xD800) << 10);
        const uint32_t a = lo > 0xDC00 ? lo : 0xDC00, b = hi < 0xDFFF ? hi : 0xDFFF;
        if (a <= b) r[nr][0] = base + a - 0xDC00, r[nr++][1] = base + b - 0xDC00;
    } else {
        if (lo < 0xD800) r[nr][0] = lo, r[nr++][1] = hi < 0xD7FF ? hi : 0xD7FF;
        if (hi > 0xDFFF) r[nr][0] = lo > 0xE000 ? lo : 0xE000, r[nr++][1] = hi;
        const uint32_t a = lo > 0xD800 ? lo : 0xD800, b = hi < 0xDBFF ? hi : 0xDBFF;
        if (a <= b) r[nr][0] = 0x10000 + ((a - 0xD800) << 10), r[nr++][1] = 0x10000 + ((b - 0xD800) << 10) + 0x3FF;
    }
    if (!p->anchored) return nr > 0; /* no lone surrogate */
    struct dfa_dfs d = {p->dfa, x->lead, false};
    for (int i = 0; i < nr && !d.found; i++) utf8_split(r[i][0], r[i][1], dfa_dfs_seq, &d);
    return d.found;
}

static bool pattern_string_byte(struct srv_schema_state* st, const struct node* n, struct cfg* x, uint8_t c) {
    const struct pattern* p = &st->s->patterns[n->pattern - 1];
    bool ok = true;
    if (utf8_continue(x, c, &ok)) return ok && pat_append(st, p, x, &c, 1);
    if (x->esc == 1) {
        if (c == 'u') {
            x->esc = 2;
            x->hex = 0;
            return pat_escape_viable(st, p, x);
        }
        const int ch = short_escape(c);
        if (ch < 0 || x->hi) return false;
        x->esc = 0;
        const uint8_t b = (uint8_t) ch;
        return pat_append(st, p, x, &b, 1);
    }
    if (x->esc >= 2) {
        const int h = hex_value(c);
        if (h < 0) return false;
        x->hex = (uint16_t) (x->hex << 4 | (uint32_t) h);
        if (x->esc < 5) {
            x->esc++;
            return pat_escape_viable(st, p, x);
        }
        const uint32_t u = x->hex;
        x->esc = 0;
        x->hex = 0;
        uint32_t cp = u;
        if (x->hi) {
            if (u < 0xDC00 || u > 0xDFFF) return false;
            cp = 0x10000 + ((x->ev - 0xD800) << 10) + (u - 0xDC00);
            x->hi = 0;
            x->ev = 0;
        } else if (u >= 0xD800 && u <= 0xDBFF) {
            x->hi = 1;
            x->ev = u;
            return pat_escape_viable(st, p, x);
        } else if (u >= 0xDC00 && u <= 0xDFFF) {
            return false;
        }
        uint8_t b[4];
        return pat_append(st, p, x, b, utf8_put(cp, b));
    }
    if (x->hi) { /* after a high surrogate escape: its low one */
        if (c != '\\') return false;
        x->esc = 1;
        return true;
    }
    if (c == '"') {
        if (p->anchored ? !p->dfa->accepting[x->lead] : !pat_whole(st, p, x)) return false;
        end_value(x);
        return true;
    }
    if (c == '\\') {
        x->esc = 1;
        return pat_escape_viable(st, p, x);
    }
    if (c < 0x20 || (c >= 0x80 && !utf8_lead(x, c))) return false;
    return pat_append(st, p, x, &c, 1);
}

/* The UTF-16 unit a \u escape at candidate cs's byte pos stands for: the character, its high
 * surrogate (after one: its low); NO_INDEX at the candidate's end. */
static uint32_t escape_unit(const struct strc* cs, uint32_t pos, bool after_high) {
    if (pos >= cs->len) return NO_INDEX;
    uint32_t len = 0;
    const uint32_t cp = decode((const uint8_t*) cs->s + pos, &len);
    if (cp < 0x10000) return after_high ? NO_INDEX : cp;
    return after_high ? 0xDC00 + ((cp - 0x10000) & 0x3FF) : 0xD800 + ((cp - 0x10000) >> 10);
}

/* A string with candidates (enum/const): their decoded text matched, escapes included (not
 * inside a character written raw). */
static bool enum_string_byte(const struct srv_schema* s, const struct node* n, struct cfg* x, uint8_t c) {
    const struct strc* strs = s->strs + n->str_first;
    bool ok = true;
    if (x->u8left > 0 || (x->esc == 0 && !x->hi && c >= 0x80)) {
        if (!utf8_continue(x, c, &ok)) ok = utf8_lead(x, c);
        if (!ok) return false;
        FOR_BITS(x->cand, k) keep(x->cand, k, strs[k].len > x->pos && (uint8_t) strs[k].s[x->pos] == c);
        x->pos++;
        return any(x->cand);
    }
    if (x->esc == 1) {
        if (c == 'u') {
            x->esc = 2;
            x->hex = 0;
            return true;
        }
        const int ch = short_escape(c);
        if (x->hi || ch < 0) return false;
        FOR_BITS(x->cand, k) keep(x->cand, k, strs[k].len > x->pos && strs[k].s[x->pos] == ch);
        x->pos++;
        x->esc = 0;
        return any(x->cand);
    }
    if (x->esc >= 2) {
        const int h = hex_value(c);
        if (h < 0) return false;
        const uint32_t k = x->esc - 2u;
        x->hex = (uint16_t) (x->hex << 4 | (uint32_t) h);
        const uint32_t shift = 4 * (3 - k);
        FOR_BITS(x->cand, i) keep(x->cand, i, (escape_unit(&strs[i], x->pos, x->hi) >> shift) == x->hex);
        if (!any(x->cand)) return false;
        if (k < 3) {
            x->esc++;
            return true;
        }
        if (x->hi) { /* the low surrogate: the character is whole */
            x->pos += 4;
            x->hi = 0;
        } else if (x->hex >= 0xD800 && x->hex <= 0xDBFF) {
            x->hi = 1;
        } else {
            x->pos += x->hex < 0x80 ? 1 : x->hex < 0x800 ? 2 : 3;
        }
        x->esc = 0;
        x->hex = 0;
        return true;
    }
    if (x->hi) { /* after a high surrogate escape, its low one */
        if (c != '\\') return false;
        x->esc = 1;
        return true;
    }
    if (c == '"') {
        FOR_BITS(x->cand, k) keep(x->cand, k, strs[k].len == x->pos);
        if (!any(x->cand)) return false;
        end_value(x);
        return true;
    }
    if (c == '\\') {
        bool more = false;
        FOR_BITS(x->cand, k) more |= strs[k].len > x->pos;
        x->esc = 1;
        return more;
    }
    if (c < 0x20) return false;
    FOR_BITS(x->cand, k) keep(x->cand, k, strs[k].len > x->pos && (uint8_t) strs[k].s[x->pos] == c);
    x->pos++;
    return any(x->cand);
}

/* ---- numbers ---- */

static int32_t enum_exponent(const struct numc* v, const struct cfg* x) {
    /* the exponent that makes the digits read equal v: the first significant digit stands at
     * position len (integer part) or -lead (fraction) */
    const int32_t q = x->len > 0 ? (int32_t) x->len : -(int32_t) x->lead;
    return v->point - q;
}

static bool mantissa_complete(const struct numc* v, const struct cfg* x) {
    return v->zero ? !x->sig : x->sig && x->nsig >= v->nd;
}

/* whether ev (read so far) can still grow, digit by digit, into want */
static bool exponent_prefix(uint32_t ev, uint32_t want) {
    while (want > ev) want /= 10;
    return want == ev;
}

/* A digit of the mantissa (frac: of the fraction) against the candidates. */
static bool enum_digit(const struct srv_schema* s, const struct node* n, struct cfg* x, uint8_t c, bool frac) {
    const struct numc* nums = s->nums + n->num_first;
    if (!frac && x->sub != N_ZERO) {
        if (x->len >= NUMBER_DIGITS_MAX) return false;
        x->len++;
    }
    if (!x->sig && c == '0') {
        if (frac) {
            if (x->lead >= NUMBER_DIGITS_MAX) return false;
            x->lead++;
        } else if (!(n->types & T_FRACTION)) {
            FOR_BITS(x->cand, k) keep(x->cand, k, nums[k].zero); /* "0" can only be 0 */
        }
        return any(x->cand);
    }
    x->sig = 1;
    const uint32_t i = x->nsig;
    if (x->nsig < 255) x->nsig++;
    FOR_BITS(x->cand, k) {
        const struct numc* v = &nums[k];
        bool alive = v->zero ? c == '0' : i < v->nd ? (uint8_t) v->d[i] == c : c == '0';
        /* an integer written as one: never more digits than the value has */
        if (alive && !v->zero && !(n->types & T_FRACTION)) alive = (int32_t) x->len <= v->point;
        keep(x->cand, k, alive);
    }
    return any(x->cand);
}

static bool enum_exponent_sign(const struct srv_schema* s, const struct node* n, struct cfg* x) {
    const struct numc* nums = s->nums + n->num_first;
    FOR_BITS(x->cand, k) {
        const int32_t e = enum_exponent(&nums[k], x);
        keep(x->cand, k, nums[k].zero || (x->eneg ? e <= 0 : e >= 0));
    }
    return any(x->cand);
}

static uint32_t num_digits(uint32_t v) {
    uint32_t k = 0;
    for (; v > 0; v /= 10) k++;
    return k;
}

static bool enum_exponent_digit(const struct srv_schema* s, const struct node* n, struct cfg* x, uint8_t c) {
    const struct numc* nums = s->nums + n->num_first;
    x->ev = x->ev > 100000000u ? x->ev : x->ev * 10 + (uint32_t) (c - '0');
    FOR_BITS(x->cand, k) {
        const int32_t e = enum_exponent(&nums[k], x);
        const uint32_t want = (uint32_t) (e < 0 ? -e : e);
        /* its digits still to come fit the exponent's room */
        keep(x->cand, k, nums[k].zero || (exponent_prefix(x->ev, want) &&
                                          num_digits(want) - num_digits(x->ev) <= (uint32_t) (SRV_SCHEMA_MAX_EXPONENT_DIGITS - x->hex)));
    }
    return any(x->cand);
}

/* The candidates whose digits still to come fit the room left before the exponent (an
 * integer: all its integer digits; else its significant digits, the exponent doing the rest). */
static bool enum_room(const struct srv_schema* s, const struct node* n, struct cfg* x) {
    const struct numc* nums = s->nums + n->num_first;
    const uint32_t left = SRV_SCHEMA_MAX_NUMBER_DIGITS - x->pos;
    const uint32_t must = x->sub == N_MINUS || x->sub == N_DOT; /* a digit must come */
    FOR_BITS(x->cand, k) {
        const struct numc* v = &nums[k];
        int64_t need = 0;
        if (!v->zero && !(n->types & T_FRACTION)) need = (int64_t) v->point - x->len;
        else if (!v->zero) need = (int64_t) v->nd - (x->sig ? x->nsig : 0);
        if (need < must) need = must;
        keep(x->cand, k, need <= (int64_t) left);
    }
    return any(x->cand);
}

/* ---- bounded numbers ----
 *
 * A number is read as its sign, its significant digits S (0.S x 10^p: p the digits of its
 * integer part, or minus the zeros after the point) and its exponent. Against each bound's
 * digits D (of its magnitude) the recognizer keeps only how S compares with D's first |S|
 * digits (clo, chi: CMP_EQ while S is a prefix of D or D followed by zeros). Whether the
 * number can still end within the bounds follows exactly from that, p, and the room left:
 *   - for the sign read, the bounds become an interval (L, U) of magnitudes (either end may
 *     be open: L none means any magnitude above 0, U none any below infinity), and zero is
 *     within the bounds or not;
 *   - a "number" before its exponent can take any scale (an exponent of at most 4 digits
 *     reaches 10^+-9999, past any bound a double or an int64 can be): it needs some S'
 *     extending S by the digits left, and a scale q, with 0.S' x 10^q in (L, U). The scales
 *     strictly between L's and U's are whole decades inside; at L's scale S' >= D_L, at U's
 *     S' <= D_U, at one scale both;
 *   - an "integer" (no fraction, no exponent) has its scale fixed by its digits: p + j after
 *     j more digits;
 *   - in the exponent, S is fixed: the scales allowed are an interval, and the exponent's
 *     digits so far (and the room for more) must reach one of them.
 * The smallest extension S' >= D (or > D) is D itself or D cut after a digit below 9 and that
 * digit raised, whichever is shorter. */

enum { CMP_EQ = 0, CMP_LT = 1, CMP_GT = 2 };
#define COST_NONE 0x7FFFFFFFu

static bool bounded(const struct node* n) { return n->lo.on || n->hi.on; }

struct side { /* a bound on the magnitude: its digits, exclusive, how S compares with them */
    const struct numc* d;
    uint8_t excl, cmp;
};

static void cmp_step(uint8_t* st, const struct numc* b, uint32_t i, uint8_t c) {
    if (*st != CMP_EQ) return;
    const uint8_t d = b->zero || i >= b->nd ? '0' : (uint8_t) b->d[i];
    if (c < d) *st = CMP_LT;
    else if (c > d) *st = CMP_GT;
}

/* A mantissa digit of a bounded number (x->sub already moved on). */
static void bound_digit(const struct node* n, struct cfg* x, uint8_t c, bool frac) {
    if (!frac && x->sub != N_ZERO) x->len++;
    if (!x->sig && c == '0') {
        if (frac) x->lead++;
        return;
    }
    x->sig = 1;
    const uint32_t i = x->nsig;
    if (x->nsig < 255) x->nsig++;
    cmp_step(&x->clo, &n->lo.v, i, c);
    cmp_step(&x->chi, &n->hi.v, i, c);
}

/* More digits (fewest) that make S (n digits) >= D (> D when exclusive). */
static uint32_t geq_cost(const struct side* L, uint32_t n) {
    if (L->cmp == CMP_GT) return 0;
    if (L->cmp == CMP_LT) return COST_NONE;
    const struct numc* D = L->d;
    if (n >= D->nd) return L->excl ? 1 : 0;
    uint32_t best = D->nd - n + L->excl;
    for (uint32_t i = n; i < D->nd; i++) {
        if (D->d[i] != '9') {
            if (i - n + 1 < best) best = i - n + 1;
            break;
        }
    }
    return best;
}

/* S itself <= D (< D when exclusive): more digits only make it larger. */
static bool leq_ok(const struct side* U, uint32_t n) {
    if (U->cmp != CMP_EQ) return U->cmp == CMP_LT;
    return n < U->d->nd || !U->excl;
}

/* More digits (fewest) that make D_L <= S' <= D_U at one scale. */
static uint32_t between_cost(const struct side* L, const struct side* U, uint32_t n) {
    if (L->cmp == CMP_LT || U->cmp == CMP_GT) return COST_NONE;
    if (L->cmp == CMP_GT) return leq_ok(U, n) ? 0 : COST_NONE;
    if (U->cmp == CMP_LT) return geq_cost(L, n);
    /* S is a prefix of both: the least g-digit string >= D_L, for g = n, n + 1, ... */
    const struct numc *A = L->d, *B = U->d;
    uint32_t most = (A->nd > B->nd ? A->nd : B->nd) + 1;
    if (most < n) most = n; /* S longer than both: itself (its digits past theirs are zeros) */
    for (uint32_t g = n; g <= most; g++) {
        char c[SRV_SCHEMA_MAX_NUMBER_DIGITS + 32];
        for (uint32_t i = 0; i < g; i++) c[i] = i < A->nd ? A->d[i] : '0';
        if (A->nd > g || L->excl) {
            uint32_t i = g;
            while (i > 0 && c[i - 1] == '9') c[--i] = '0';
            if (i == 0 || i - 1 < n) continue; /* the carry reaches S */
            c[i - 1]++;
        }
        int r = 0;
        for (uint32_t i = 0; (i < g || i < B->nd) && r == 0; i++) {
            const char a = i < g ? c[i] : '0', b = i < B->nd ? B->d[i] : '0';
            r = (a > b) - (a < b);
        }
        if (r < 0 || (r == 0 && !U->excl)) return g - n;
    }
    return COST_NONE;
}

/* Some S' extending S by at most k digits has 0.S' x 10^q in (L, U) (NULL: no bound). */
static bool fits_at(const struct side* L, const struct side* U, uint32_t n, int32_t q, uint32_t k) {
    if ((L && q < L->d->point) || (U && q > U->d->point)) return false;
    const bool at_l = L && q == L->d->point, at_u = U && q == U->d->point;
    if (at_l && at_u) return between_cost(L, U, n) <= k;
    if (at_l) return geq_cost(L, n) <= k;
    if (at_u) return leq_ok(U, n);
    return true;
}

/* The same at any scale. */
static bool fits_somewhere(const struct side* L, const struct side* U, uint32_t n, uint32_t k) {
    if (L == NULL || U == NULL) return true;
    const int32_t pl = L->d->point, pu = U->d->point;
    if (pu - pl >= 2) return true;
    if (pl + 1 == pu) return geq_cost(L, n) <= k || leq_ok(U, n);
    return pl == pu && between_cost(L, U, n) <= k;
}

static bool zero_ok(const struct node* n) {
    const bool lo = !n->lo.on || n->lo.v.neg || (n->lo.v.zero && !n->lo.excl);
    const bool hi = !n->hi.on || (!n->hi.v.neg && !n->hi.v.zero) || (n->hi.v.zero && !n->hi.excl);
    return lo && hi;
}

/* The bounds on the magnitude of a nonzero number of x's sign; false: none is within them. */
static bool sides(const struct node* n, const struct cfg* x, struct side* L, struct side* U, bool* has_l, bool* has_u) {
    const struct bound *lo = &n->lo, *hi = &n->hi;
    *has_l = *has_u = false;
    if (!x->neg) {
        if (hi->on && (hi->v.zero || hi->v.neg)) return false;
        if (lo->on && !lo->v.zero && !lo->v.neg) *L = (struct side){&lo->v, lo->excl, x->clo}, *has_l = true;
        if (hi->on) *U = (struct side){&hi->v, hi->excl, x->chi}, *has_u = true;
    } else {
        if (lo->on && (lo->v.zero || !lo->v.neg)) return false;
        if (lo->on) *U = (struct side){&lo->v, lo->excl, x->clo}, *has_u = true;
        if (hi->on && !hi->v.zero && hi->v.neg) *L = (struct side){&hi->v, hi->excl, x->chi}, *has_l = true;
    }
    return true;
}

static int32_t number_point(const struct cfg* x) { return x->len > 0 ? (int32_t) x->len : -(int32_t) x->lead; }

/* Some exponent in [lo, hi] is reachable from the exponent's digits so far. */
static bool exponent_reach(const struct cfg* x, int64_t lo, int64_t hi) {
    for (int neg = 0; neg < 2; neg++) {
        if (x->sub != N_E && neg != x->eneg) continue;
        int64_t a = neg ? -hi : lo, b = neg ? -lo : hi;
        if (a < 0) a = 0;
        if (b < a) continue;
        int64_t base = x->ev, span = 1;
        for (uint32_t j = 0; x->hex + j <= SRV_SCHEMA_MAX_EXPONENT_DIGITS; j++, base *= 10, span *= 10)
            if ((j > 0 || x->hex > 0) && base <= b && base + span - 1 >= a) return true;
    }
    return false;
}

/* Whether the bounded number read so far can still be completed within the bounds (and the
 * limits on its digits). */
static bool bounded_viable(const struct node* n, const struct cfg* x) {
    const bool fraction = (n->types & T_FRACTION) != 0;
    const bool in_exp = x->sub == N_E || x->sub == N_ESIGN || x->sub == N_EXP;
    const uint32_t left = SRV_SCHEMA_MAX_NUMBER_DIGITS - x->pos;
    if (!in_exp && (x->sub == N_MINUS || x->sub == N_DOT) && left == 0) return false;
    if (!x->sig) {
        if (zero_ok(n)) return true; /* 0, its digit or exponent to come */
        if (in_exp || (x->sub == N_ZERO && !fraction) || left == 0) return false;
        for (uint8_t c = '1'; c <= '9'; c++) { /* a first significant digit */
            struct cfg y = *x;
            y.pos++;
            y.sub = y.sub == N_MINUS ? N_INT : N_FRAC; /* "0": after a point */
            bound_digit(n, &y, c, y.sub == N_FRAC);
            if (bounded_viable(n, &y)) return true;
        }
        return false;
    }
    struct side ls, us;
    bool has_l, has_u;
    if (!sides(n, x, &ls, &us, &has_l, &has_u)) return false;
    const struct side *L = has_l ? &ls : NULL, *U = has_u ? &us : NULL;
    const int32_t p = number_point(x);
    if (in_exp) {
        int64_t qmin = -1000000, qmax = 1000000;
        if (L) qmin = geq_cost(L, x->nsig) == 0 ? L->d->point : L->d->point + 1;
        if (U) qmax = leq_ok(U, x->nsig) ? U->d->point : U->d->point - 1;
        return qmin <= qmax && exponent_reach(x, qmin - p, qmax - p);
    }
    if (fraction) return fits_somewhere(L, U, x->nsig, left);
    for (uint32_t j = 0; j <= left; j++)
        if (fits_at(L, U, x->nsig, p + (int32_t) j, j)) return true;
    return false;
}

/* Whether the bounded number read so far is within the bounds as it is. */
static bool bounded_can_end(const struct node* n, const struct cfg* x) {
    if (!x->sig) return zero_ok(n);
    struct side ls, us;
    bool has_l, has_u;
    if (!sides(n, x, &ls, &us, &has_l, &has_u)) return false;
    const int64_t e = x->sub == N_EXP ? (x->eneg ? -(int64_t) x->ev : (int64_t) x->ev) : 0;
    return fits_at(has_l ? &ls : NULL, has_u ? &us : NULL, x->nsig, (int32_t) (number_point(x) + e), 0);
}

/* Whether the number read so far is a whole value of the node (it may end here). */
static bool number_can_end(const struct srv_schema* s, const struct node* n, const struct cfg* x) {
    if (x->sub != N_ZERO && x->sub != N_INT && x->sub != N_FRAC && x->sub != N_EXP) return false;
    if (bounded(n)) return bounded_can_end(n, x);
    if (!n->enumerated) return true;
    const struct numc* nums = s->nums + n->num_first;
    FOR_BITS(x->cand, k) {
        const struct numc* v = &nums[k];
        const int32_t e = enum_exponent(v, x);
        if (v->zero || (x->sub == N_EXP ? x->ev == (uint32_t) (e < 0 ? -e : e) : mantissa_complete(v, x) && e == 0))
            return true;
    }
    return false;
}

static bool step(struct srv_schema_state* st, struct cfg* x, uint8_t c);

/* A digit before the exponent (x->sub already moved on): the room for it, the candidates or
 * the bounds. */
static bool mantissa_digit(const struct srv_schema* s, const struct node* n, struct cfg* x, uint8_t c, bool frac) {
    if (x->pos >= SRV_SCHEMA_MAX_NUMBER_DIGITS) return false;
    x->pos++;
    if (n->enumerated) return enum_digit(s, n, x, c, frac) && enum_room(s, n, x);
    if (bounded(n)) bound_digit(n, x, c, frac);
    return true;
}

static bool exponent_digit(const struct srv_schema* s, const struct node* n, struct cfg* x, uint8_t c) {
    if (x->hex >= SRV_SCHEMA_MAX_EXPONENT_DIGITS) return false;
    x->hex++;
    if (n->enumerated) return enum_exponent_digit(s, n, x, c);
    if (bounded(n)) x->ev = x->ev * 10 + (uint32_t) (c - '0');
    return true;
}

static bool number_step(struct srv_schema_state* st, struct cfg* x, uint8_t c) {
    const struct srv_schema* s = st->s;
    const struct node* n = node_of(st, x->node);
    const bool fraction = (n->types & T_FRACTION) != 0, e = n->enumerated;
    switch (x->sub) {
    case N_MINUS:
        if (!is_digit(c)) return false;
        x->sub = c == '0' ? N_ZERO : N_INT;
        return mantissa_digit(s, n, x, c, false);
    case N_DOT:
        if (!is_digit(c)) return false;
        x->sub = N_FRAC;
        return mantissa_digit(s, n, x, c, true);
    case N_E:
        if (c == '+' || c == '-') {
            x->sub = N_ESIGN;
            x->eneg = c == '-';
            return !e || enum_exponent_sign(s, n, x);
        }
        if (!is_digit(c)) return false;
        x->sub = N_EXP;
        return (!e || enum_exponent_sign(s, n, x)) && exponent_digit(s, n, x, c);
    case N_ESIGN:
        if (!is_digit(c)) return false;
        x->sub = N_EXP;
        return exponent_digit(s, n, x, c);
    default: /* N_ZERO, N_INT, N_FRAC, N_EXP: the number may end here */
        if (is_digit(c)) {
            if (x->sub == N_ZERO) return false;
            if (x->sub == N_EXP) return exponent_digit(s, n, x, c);
            return mantissa_digit(s, n, x, c, x->sub == N_FRAC);
        }
        if (c == '.' && (x->sub == N_ZERO || x->sub == N_INT)) {
            x->sub = N_DOT;
            return fraction && x->pos < SRV_SCHEMA_MAX_NUMBER_DIGITS && (!e || enum_room(s, n, x));
        }
        if ((c == 'e' || c == 'E') && x->sub != N_EXP) {
            if (!fraction) return false;
            x->sub = N_E;
            if (e) {
                const struct numc* nums = s->nums + n->num_first;
                FOR_BITS(x->cand, k) keep(x->cand, k, mantissa_complete(&nums[k], x));
            }
            return !e || any(x->cand);
        }
        /* the byte belongs to what follows the number (never at the top level) */
        if (x->depth == 0 || !number_can_end(s, n, x)) return false;
        end_value(x);
        return step(st, x, c);
    }
}

static bool number_byte(struct srv_schema_state* st, struct cfg* x, uint8_t c) {
    const struct node* n = node_of(st, x->node);
    if (!number_step(st, x, c)) return false;
    return x->mode != M_NUMBER || !bounded(n) || bounded_viable(n, x);
}

/* Whether a node's bounds (and the limits on digits) leave it some number. */
static bool numbers_exist(const struct node* n) {
    if (!(n->types & T_INTEGER)) return false;
    for (const char* c = "-0123456789"; *c; c++) {
        struct cfg x;
        memset(&x, 0, sizeof(x));
        x.neg = *c == '-';
        x.sub = *c == '-' ? N_MINUS : *c == '0' ? N_ZERO : N_INT;
        if (*c != '-') {
            x.pos = 1;
            bound_digit(n, &x, (uint8_t) *c, false);
        }
        if (bounded_viable(n, &x)) return true;
    }
    return false;
}

static bool start_value(struct srv_schema_state* st, struct cfg* x, uint8_t c) {
    const struct srv_schema* s = st->s;
    const uint16_t id = x->node;
    const struct node* n = node_of(st, id);
    switch (c) {
    case '{':
        if (!(n->types & T_OBJECT) || x->depth + n->md_obj > SRV_JSON_MAX_DEPTH) return false;
        push(st, x, id, '{');
        x->mode = M_OBJECT_FIRST;
        x->node = 0;
        return true;
    case '[': {
        if (!(n->types & T_ARRAY) || x->depth + n->md_arr > SRV_JSON_MAX_DEPTH) return false;
        push(st, x, id, '[');
        x->mode = M_ARRAY_FIRST;
        const uint16_t item = item_node(s, n, 0);
        x->node = n->max_items > 0 && fits(s, x->depth, item) ? item : NODE_NONE;
        return true;
    }
    case '"':
        if (!(n->types & T_STRING)) return false;
        x->mode = M_STRING;
        if (n->enumerated) fill_bits(x->cand, n->num_str);
        if (n->pattern) {
            x->kstart = st->num_text;
            x->lead = 1; /* a DFA's start state */
        }
        return true;
    case 't':
    case 'f':
    case 'n':
        if (!(n->types & (c == 't' ? T_TRUE : c == 'f' ? T_FALSE : T_NULL))) return false;
        x->mode = M_LITERAL;
        x->sub = c == 't' ? 0 : c == 'f' ? 1 : 2;
        x->pos = 1;
        return true;
    default:
        if ((c != '-' && !is_digit(c)) || !(n->types & T_INTEGER)) return false;
        x->mode = M_NUMBER;
        if (n->enumerated) {
            fill_bits(x->cand, n->num_num);
            const struct numc* nums = s->nums + n->num_first;
            FOR_BITS(x->cand, k) keep(x->cand, k, nums[k].zero || nums[k].neg == (c == '-'));
        }
        if (c == '-') {
            x->sub = N_MINUS;
            x->neg = 1;
            if (n->enumerated) return any(x->cand) && enum_room(s, n, x);
            return !bounded(n) || bounded_viable(n, x);
        }
        x->sub = c == '0' ? N_ZERO : N_INT;
        return mantissa_digit(s, n, x, c, false) && (!bounded(n) || bounded_viable(n, x));
    }
}

static bool step(struct srv_schema_state* st, struct cfg* x, uint8_t c) {
    switch (x->mode) {
    case M_VALUE: return (is_ws(c) && x->depth > 0) || start_value(st, x, c);
    case M_ARRAY_FIRST:
        if (is_ws(c)) return true;
        if (c == ']') return close_container(st, x, c);
        return x->node != NODE_NONE && start_value(st, x, c);
    case M_OBJECT_FIRST:
        if (is_ws(c)) return true;
        if (c == '}') return close_container(st, x, c);
        return c == '"' && start_key(st, x);
    case M_KEY: return is_ws(c) || (c == '"' && start_key(st, x));
    case M_COLON:
        if (is_ws(c)) return true;
        if (c != ':') return false;
        x->mode = M_VALUE;
        x->node = prop_node(st->s, &x->top);
        return true;
    case M_AFTER:
        if (is_ws(c)) return true;
        if (c == ',') return next_member(st, x);
        return (c == '}' || c == ']') && close_container(st, x, c);
    case M_STRING:
        if (x->key) return key_byte(st, x, c);
        if (node_of(st, x->node)->enumerated) return enum_string_byte(st->s, node_of(st, x->node), x, c);
        if (node_of(st, x->node)->pattern) return pattern_string_byte(st, node_of(st, x->node), x, c);
        return free_string_byte(node_of(st, x->node), x, c);
    case M_NUMBER: return number_byte(st, x, c);
    case M_LITERAL: {
        const char* lit = kLiterals[x->sub];
        if (c != (uint8_t) lit[x->pos]) return false;
        if (lit[++x->pos] == '\0') end_value(x);
        return true;
    }
    default: return false; /* M_DONE: nothing follows the value */
    }
}

/* Appends x to out[0, m) unless an equal one is there; a value expected of an anyOf becomes one
 * configuration per alternative that fits the depth. Returns the new count. */
static uint32_t add(const struct srv_schema_state* st, struct cfg* out, uint32_t m, const struct cfg* x) {
    const struct srv_schema* s = st->s;
    const struct node* n = &s->nodes[x->node];
    const bool expand = (x->mode == M_VALUE || x->mode == M_ARRAY_FIRST) && n->kind == K_ANYOF;
    for (uint32_t a = 0; a < (expand ? n->count : 1); a++) {
        struct cfg y = *x;
        if (expand) {
            y.node = s->refs[n->first + a];
            if (!fits(s, y.depth, y.node)) continue;
        }
        uint32_t i = 0;
        while (i < m && memcmp(&out[i], &y, sizeof(y)) != 0) i++;
        /* m < width always (the width analysis bounds the set); checked for memory's sake */
        if (i == m && m < st->width) out[m++] = y;
    }
    return m;
}

/* in[0, n) after byte c, into out; returns their number (0: refused). The pools must have room
 * for one frame and one key per configuration and one text byte. */
static uint32_t feed_set(struct srv_schema_state* st, const struct cfg* in, uint32_t n, struct cfg* out, uint8_t c) {
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct cfg x = in[i];
        const bool ws = is_ws(c) && x.mode != M_STRING && x.mode != M_LITERAL;
        if (ws && x.wsrun >= SRV_JSON_MAX_WS) continue;
        if (!step(st, &x, c)) continue;
        x.wsrun = ws ? (uint8_t) (x.wsrun + 1) : 0;
        m = add(st, out, m, &x);
    }
    return m;
}

static bool reserve(struct srv_schema_state* st, uint32_t bytes) {
    const uint32_t per = bytes * st->width;
    return grow((void**) &st->frames, &st->cap_frames, st->num_frames + per, sizeof(struct frame)) &&
           grow((void**) &st->keys, &st->cap_keys, st->num_keys + per, sizeof(struct keyent)) &&
           grow((void**) &st->text, &st->cap_text, st->num_text + 4 * bytes + 8, 1); /* a pattern's string: an
                                                                                       * escape appends up to 4
                                                                                       * decoded bytes, tried 4 */
}

static bool ensure_levels(struct srv_schema_state* st, uint32_t levels) {
    if (levels <= st->num_levels) return true;
    struct cfg* l = realloc(st->levels, (size_t) levels * st->width * sizeof(struct cfg));
    if (l == NULL) return false;
    st->levels = l;
    uint32_t* ln = realloc(st->level_n, levels * sizeof(uint32_t));
    if (ln == NULL) return false;
    st->level_n = ln;
    st->num_levels = levels;
    return true;
}

static void initial(struct srv_schema_state* st) {
    struct cfg x;
    memset(&x, 0, sizeof(x));
    x.mode = M_VALUE;
    x.node = st->s->root;
    st->num_frames = st->num_keys = st->num_text = 0;
    st->n = add(st, st->cfgs, 0, &x);
}

struct srv_schema_state* srv_schema_state_create(const struct srv_schema* s) {
    if (s == NULL) return NULL;
    struct srv_schema_state* st = calloc(1, sizeof(*st));
    if (st == NULL) return NULL;
    st->s = s;
    st->width = s->width;
    st->cfgs = malloc(st->width * sizeof(struct cfg));
    if (s->num_patterns > 0) st->md = pcre2_match_data_create(1, NULL);
    if (st->cfgs == NULL || (s->num_patterns > 0 && st->md == NULL) || !ensure_levels(st, 2) || !reserve(st, 64)) {
        srv_schema_state_free(st);
        return NULL;
    }
    initial(st);
    return st;
}

void srv_schema_state_reset(struct srv_schema_state* st) {
    if (st != NULL) initial(st);
}

void srv_schema_state_free(struct srv_schema_state* st) {
    if (st == NULL) return;
    free(st->cfgs);
    free(st->levels);
    free(st->level_n);
    free(st->frames);
    free(st->keys);
    free(st->text);
    pcre2_match_data_free(st->md);
    for (int i = 0; i < SRV_SCHEMA_PLAIN_CACHE; i++) free(st->plain_cache[i].words);
    free(st);
}

/* After a committed byte: the pools end after the last entry a configuration reaches (what
 * is appended later is above it; closed containers and their keys go). */
static void trim(struct srv_schema_state* st) {
    uint32_t frames = 0, keys = 0, text = 0;
    for (uint32_t i = 0; i < st->n; i++) {
        const struct cfg* x = &st->cfgs[i];
        if (x->mode == M_STRING && x->key && x->addl && x->kstart + x->pos > text) text = x->kstart + x->pos;
        if (x->mode == M_STRING && !x->key && node_of(st, x->node)->pattern && x->kstart + x->pos > text)
            text = x->kstart + x->pos;
        if (x->depth == 0) continue;
        if (x->top.parent != NO_INDEX && x->top.parent + 1 > frames) frames = x->top.parent + 1;
        for (const struct frame* f = &x->top;; f = &st->frames[f->parent]) {
            if (f->last_key != NO_INDEX && f->last_key + 1 > keys) keys = f->last_key + 1;
            if (f->parent == NO_INDEX) break;
        }
    }
    /* keys are appended in the order they are written, their bytes too */
    if (keys > 0 && st->keys[keys - 1].text + st->keys[keys - 1].len > text)
        text = st->keys[keys - 1].text + st->keys[keys - 1].len;
    st->num_frames = frames;
    st->num_keys = keys;
    st->num_text = text;
}

/* Feeds bytes to the set: *committed decides whether the result replaces it. */
static bool feed_bytes(struct srv_schema_state* st, const uint8_t* b, size_t len, bool commit) {
    const uint32_t frames = st->num_frames, keys = st->num_keys, text = st->num_text;
    struct cfg* cur = st->cfgs;
    uint32_t n = st->n;
    bool ok = true;
    for (size_t i = 0; i < len && ok; i++) {
        struct cfg* next = st->levels + (i % 2) * st->width;
        ok = reserve(st, 1) && (n = feed_set(st, cur, n, next, b[i])) > 0;
        cur = next;
    }
    if (ok && commit) {
        memcpy(st->cfgs, cur, n * sizeof(struct cfg));
        st->n = n;
        trim(st);
        return true;
    }
    st->num_frames = frames;
    st->num_keys = keys;
    st->num_text = text;
    return ok;
}

bool srv_schema_feed(struct srv_schema_state* st, const void* bytes, size_t n) {
    if (st == NULL || (bytes == NULL && n > 0)) return false;
    return feed_bytes(st, bytes, n, true);
}

bool srv_schema_try(struct srv_schema_state* st, const void* bytes, size_t n) {
    if (st == NULL || (bytes == NULL && n > 0)) return false;
    return feed_bytes(st, bytes, n, false);
}

bool srv_schema_complete(const struct srv_schema_state* st) {
    if (st == NULL) return false;
    for (uint32_t i = 0; i < st->n; i++) {
        const struct cfg* x = &st->cfgs[i];
        if (x->mode == M_DONE) return true;
        if (x->mode == M_NUMBER && x->depth == 0 && number_can_end(st->s, node_of(st, x->node), x)) return true;
    }
    return false;
}

/* ---- the allowed tokens ---------------------------------------------------------------- */

/* How many code points of plain tokens configuration x takes at once (UINT32_MAX: any); 0
 * when it is not in a string that takes them (its tokens are walked). */
static uint32_t plain_room(const struct srv_schema_state* st, const struct cfg* x) {
    if (x->mode != M_STRING || x->u8left != 0 || x->esc != 0) return 0;
    if (x->key) return x->addl ? UINT32_MAX : 0;
    const struct node* n = node_of(st, x->node);
    if (n->enumerated || (n->pattern && (st->s->patterns[n->pattern - 1].anchored || x->hi))) return 0;
    return n->max_len == NO_LIMIT ? UINT32_MAX : n->max_len - x->len;
}

static void set_bit(uint32_t* words, uint32_t id) { words[id / 32] |= 1u << (id % 32); }

static void or_plain(const struct srv_json_vocab* v, uint32_t room, uint32_t* words) {
    const uint32_t k = room < SRV_PLAIN_SHORT ? room : SRV_PLAIN_SHORT;
    const uint32_t* mask = room >= v->max_plain_cps ? v->plain : v->plain_short + (size_t) k * v->num_words;
    for (uint32_t w = 0; w < v->num_words; w++) words[w] |= mask[w];
    if (room < v->max_plain_cps) {
        for (uint32_t i = 0; i < v->num_plain_long && v->plain_long_cps[i] <= room; i++)
            set_bit(words, v->plain_long[i]);
    }
}

/* The pattern of configuration x when its plain tokens can be told by its DFA state: in an
 * anchored pattern's string at a character's boundary, outside an escape. */
static const struct pattern* dfa_plain_pattern(const struct srv_schema_state* st, const struct cfg* x) {
    if (x->mode != M_STRING || x->key || x->u8left != 0 || x->esc != 0 || x->hi) return NULL;
    const struct node* n = node_of(st, x->node);
    if (n->enumerated || n->pattern == 0) return NULL;
    const struct pattern* p = &st->s->patterns[n->pattern - 1];
    return p->anchored ? p : NULL;
}

static void dfa_plain_walk(const struct srv_dfa* d, const struct srv_trie* trie, const uint32_t* plain, uint32_t node,
                           uint32_t q, uint32_t* words) {
    const struct srv_trie_node* t = trie->nodes;
    for (uint32_t ch = node + 1; ch < t[node].end; ch = t[ch].end) {
        const uint8_t b = t[ch].byte;
        if (b == '"' || b == '\\' || b < 0x20) continue; /* in no plain token */
        const uint32_t r = srv_dfa_step(d, q, b);
        if (r == 0) continue;
        for (uint32_t i = 0; i < t[ch].num_ids; i++) {
            const uint32_t id = trie->ids[t[ch].first_id + i];
            if (plain[id / 32] >> (id % 32) & 1u) words[id / 32] |= 1u << (id % 32);
        }
        if (t[ch].end > ch + 1) dfa_plain_walk(d, trie, plain, ch, r, words);
    }
}

/* The plain tokens (whole printable characters, no '"' or '\\') whose bytes keep pattern p's
 * DFA live from state q: the same tokens the walk would allow one byte at a time (no length
 * limit stands beside a pattern), made once a (pattern, state) and kept. NULL: out of memory. */
static const uint32_t* dfa_plain_words(struct srv_schema_state* st, const struct srv_json_vocab* v,
                                       const struct pattern* p, uint32_t q) {
    if (st->plain_vocab != v) { /* the buffers are sized by a vocabulary's words: made again */
        for (int i = 0; i < SRV_SCHEMA_PLAIN_CACHE; i++) {
            free(st->plain_cache[i].words);
            st->plain_cache[i] = (struct dfa_plain){NULL, 0, NULL};
        }
        st->plain_vocab = v;
    }
    for (int i = 0; i < SRV_SCHEMA_PLAIN_CACHE; i++)
        if (st->plain_cache[i].p == p && st->plain_cache[i].state == q) return st->plain_cache[i].words;
    struct dfa_plain* e = &st->plain_cache[st->plain_next];
    st->plain_next = (st->plain_next + 1) % SRV_SCHEMA_PLAIN_CACHE;
    if (e->words == NULL && (e->words = malloc(v->num_words * sizeof(uint32_t))) == NULL) return NULL;
    memset(e->words, 0, v->num_words * sizeof(uint32_t));
    dfa_plain_walk(p->dfa, &v->trie, v->plain, 0, q, e->words);
    e->p = p;
    e->state = q;
    return e->words;
}

struct walk {
    struct srv_schema_state* st;
    const struct srv_trie* trie;
    uint32_t* words;
};

/* The children of trie node `node` from the set at `level`: a child's byte fed to it, its
 * tokens allowed when some configuration survives, and its own children walked then. */
static void walk(struct walk* w, uint32_t node, uint32_t level) {
    struct srv_schema_state* st = w->st;
    const struct srv_trie_node* t = w->trie->nodes;
    const uint32_t frames = st->num_frames, keys = st->num_keys, text = st->num_text;
    const struct cfg* in = st->levels + (size_t) level * st->width;
    struct cfg* out = st->levels + (size_t) (level + 1) * st->width;
    for (uint32_t ch = node + 1; ch < t[node].end; ch = t[ch].end) {
        st->num_frames = frames;
        st->num_keys = keys;
        st->num_text = text;
        const uint32_t m = feed_set(st, in, st->level_n[level], out, t[ch].byte);
        if (m == 0) continue;
        for (uint32_t i = 0; i < t[ch].num_ids; i++) set_bit(w->words, w->trie->ids[t[ch].first_id + i]);
        if (t[ch].end > ch + 1) {
            st->level_n[level + 1] = m;
            walk(w, ch, level + 1);
        }
    }
    st->num_frames = frames;
    st->num_keys = keys;
    st->num_text = text;
}

size_t srv_schema_allowed(struct srv_schema_state* st, const struct srv_json_vocab* v, uint32_t* words) {
    if (st == NULL || v == NULL || words == NULL) return 0;
    if (!ensure_levels(st, v->max_bytes + 2) || !reserve(st, v->max_bytes + 1)) return SIZE_MAX;
    memset(words, 0, v->num_words * sizeof(uint32_t));
    /* configurations in a string that takes plain tokens: those at once, the others walked in
     * the trie of the other tokens; the rest: the whole trie */
    struct cfg* plain = st->levels;
    uint32_t num_plain = 0, num_rest = 0;
    for (uint32_t i = 0; i < st->n; i++) {
        const uint32_t room = plain_room(st, &st->cfgs[i]);
        const struct pattern* p = room == 0 ? dfa_plain_pattern(st, &st->cfgs[i]) : NULL;
        if (room == 0 && p == NULL) continue;
        if (room > 0) {
            or_plain(v, room, words);
        } else {
            const uint32_t* pw = dfa_plain_words(st, v, p, st->cfgs[i].lead);
            if (pw == NULL) return SIZE_MAX;
            for (uint32_t w = 0; w < v->num_words; w++) words[w] |= pw[w];
        }
        plain[num_plain++] = st->cfgs[i];
    }
    struct walk w = {st, &v->trie_other, words};
    if (num_plain > 0) {
        st->level_n[0] = num_plain;
        walk(&w, 0, 0);
    }
    for (uint32_t i = 0; i < st->n; i++) {
        if (plain_room(st, &st->cfgs[i]) == 0 && dfa_plain_pattern(st, &st->cfgs[i]) == NULL)
            st->levels[num_rest++] = st->cfgs[i];
    }
    if (num_rest > 0) {
        st->level_n[0] = num_rest;
        w.trie = &v->trie;
        walk(&w, 0, 0);
    }
    size_t n = 0;
    for (uint32_t i = 0; i < v->num_words; i++) n += (size_t) __builtin_popcount(words[i]);
    return n;
}
