/* Structured outputs (server/json_schema.c) against an independent oracle (schema_oracle.h: a
 * validator over jansson values and the text's own rules):
 *   - hand cases: texts accepted whole, valid prefixes, refused; schemas refused, with their
 *     code and the JSON pointer in the message;
 *   - for a set of schemas (nested objects, arrays with min/max, enums of mixed types, anyOf of
 *     objects sharing a key prefix, recursive $ref, integer and number, string lengths with
 *     multi-byte UTF-8 and surrogate escapes, other keys), random valid instances written by
 *     this file's generator (every spelling: whitespace, key order, string escapes, numbers of
 *     equal value written differently): the oracle takes each, the recognizer takes every
 *     prefix and the whole (complete at the end and not before, but for a number at the top);
 *   - the same instances edited at random (bytes inserted, deleted, replaced): the
 *     recognizer takes the text whole exactly when the oracle does (texts beyond jansson's
 *     limits counted apart);
 *   - no dead end: from prefixes of instances and of edited texts, a completer that feeds the
 *     first accepted byte of a fixed preference list reaches a complete text, which the oracle
 *     takes;
 *   - the allowed tokens (the real o200k vocabulary): at states along instances, sampled token
 *     ids agree with feeding their bytes, no special token, and the count is the mask's; then
 *     random walks that draw only allowed tokens (and <|return|> once complete) never run out
 *     of tokens, and what they finish the oracle takes;
 *   - the chat path (output.c): free before the final message, then the schema, <|return|>
 *     only when the value is whole; the mask's cost per token on a realistic schema.
 * Seed: GPTOSS_TEST_SEED. */
#include <time.h>

#include "../engine/test_util.h"
#include <gptoss/offline.h>

#include "schema_oracle.h"
#include "server.h"

static uint32_t below(uint32_t n) { return (uint32_t) (rng_next() % n); }
static double ms_since(const struct timespec* t0);
static bool complete_from(const json_t* schema, struct srv_schema_state* st, struct srv_buf* text);

/* ---- the schemas ---------------------------------------------------------------------- */

static const char* const kSchemas[] = {
    /* 0: nested objects, required and optional, no other keys */
    "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"name\":{\"type\":\"string\",\"maxLength\":12},"
    "\"address\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},\"zip\":{\"type\":[\"string\",\"null\"],"
    "\"minLength\":5,\"maxLength\":5}},\"required\":[\"city\"],\"additionalProperties\":false},"
    "\"active\":{\"type\":\"boolean\"}},\"required\":[\"id\",\"name\"],\"additionalProperties\":false}",
    /* 1: arrays with min/max items, of numbers and of objects */
    "{\"type\":\"object\",\"properties\":{\"scores\":{\"type\":\"array\",\"items\":{\"type\":\"number\"},\"minItems\":2,"
    "\"maxItems\":4},\"pairs\":{\"type\":\"array\",\"maxItems\":2,\"items\":{\"type\":\"array\",\"items\":{\"type\":"
    "\"integer\"},\"minItems\":1,\"maxItems\":2}}},\"required\":[\"scores\",\"pairs\"],\"additionalProperties\":false}",
    /* 2: enums of mixed types, const */
    "{\"type\":\"object\",\"properties\":{\"e\":{\"enum\":[1.5,\"x\\\"y\",{\"k\":[1,2]},null,-0.0,1e-7,\"\\u00e9\\ud83d\\ude00\","
    "true,[],\"alpha\",\"alphabet\",100]},\"c\":{\"const\":{\"a\":[true,{\"b\":null}],\"n\":-12.25}},\"i\":{\"type\":"
    "\"integer\",\"enum\":[100,1.0,2.5,-3]}},\"required\":[\"e\",\"c\"],\"additionalProperties\":false}",
    /* 3: anyOf of objects that share a key and a prefix of its value */
    "{\"anyOf\":[{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"alpha\"},\"x\":{\"type\":\"integer\"}},"
    "\"required\":[\"kind\",\"x\"],\"additionalProperties\":false},{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":"
    "\"alphabet\"},\"y\":{\"type\":\"boolean\"},\"x\":{\"type\":\"string\"}},\"required\":[\"kind\",\"y\"],"
    "\"additionalProperties\":false},{\"type\":\"null\"}]}",
    /* 4: recursion through $defs */
    "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"value\":{\"type\":\"integer\"},\"children\":{\"type\":"
    "\"array\",\"items\":{\"$ref\":\"#/$defs/node\"},\"maxItems\":3}},\"required\":[\"value\",\"children\"],"
    "\"additionalProperties\":false}},\"$ref\":\"#/$defs/node\"}",
    /* 5: string lengths (code points) with multi-byte UTF-8 */
    "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"minLength\":2,\"maxLength\":4},\"maxItems\":5}",
    /* 6: other keys: a schema of theirs, a required one that is not a property */
    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"null\"},\"ab\":{\"type\":\"integer\"}},\"required\":[\"b\"],"
    "\"additionalProperties\":{\"type\":\"boolean\"}}",
    /* 7: any JSON value (true) and any object */
    "{\"type\":\"object\",\"properties\":{\"any\":true,\"obj\":{\"type\":\"object\"}},\"required\":[\"any\",\"obj\"]}",
    /* 8: a number at the top */
    "{\"type\":\"number\"}",
    /* 9: a string enum at the top, with escapes to match */
    "{\"enum\":[\"red\",\"green\",\"gr\\u00fcn\",\"tab\\there\",\"\\\\\"]}",
    /* 10: recursion through "#" and anyOf: an arithmetic tree */
    "{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"object\",\"properties\":{\"op\":{\"enum\":[\"+\",\"*\"]},\"args\":"
    "{\"type\":\"array\",\"items\":{\"$ref\":\"#\"},\"minItems\":2,\"maxItems\":2}},\"required\":[\"op\",\"args\"],"
    "\"additionalProperties\":false}]}",
    /* 11: numeric bounds: integers and numbers, inclusive and exclusive, both signs, fractions */
    "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\",\"minimum\":10,\"maximum\":99},\"b\":{\"type\":"
    "\"number\",\"exclusiveMinimum\":-2.5,\"maximum\":5.5},\"c\":{\"type\":\"number\",\"exclusiveMaximum\":0},\"d\":"
    "{\"type\":\"integer\",\"exclusiveMinimum\":-1000000,\"exclusiveMaximum\":-999990},\"e\":{\"type\":\"number\","
    "\"minimum\":1e-7,\"maximum\":0.001},\"f\":{\"type\":\"number\",\"minimum\":12345.678},\"g\":{\"type\":"
    "\"integer\",\"minimum\":0.5,\"exclusiveMaximum\":3.0001},\"h\":{\"type\":[\"number\",\"null\"],\"minimum\":"
    "-0.0,\"maximum\":0.1,\"exclusiveMinimum\":-1}},\"required\":[\"a\",\"b\"],\"additionalProperties\":false}",
    /* 12: patterns: anchored, unanchored, alternation, classes with escapes and UTF-8 */
    "{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{3}-\\\\d{2,4}$\"},"
    "\"word\":{\"type\":\"string\",\"pattern\":\"^(ab|c[de]*)+x?$\"},\"any\":{\"type\":\"string\",\"pattern\":"
    "\"[0-9]z\"},\"uni\":{\"type\":\"string\",\"pattern\":\"^[^a-z\\\\s\\\\\\\\\\\"]{1,3}\u00e9.\\\\.?$\"},"
    "\"alt\":{\"anyOf\":[{\"type\":\"string\",\"pattern\":\"^a\\\\u00e9\"},{\"type\":\"string\",\"pattern\":"
    "\"b\\\\x41$\"},{\"type\":\"integer\",\"maximum\":-5}]},\"sp\":{\"type\":\"string\",\"pattern\":\"^\\\\S+\\\\s\\\\w*$\"},"
    "\"e\":{\"enum\":[\"ab\",\"abc\",\"xyz\"],\"pattern\":\"b\"}},\"required\":[\"code\",\"word\"],"
    "\"additionalProperties\":false}",
    /* 13: formats */
    "{\"type\":\"object\",\"properties\":{\"d\":{\"type\":\"string\",\"format\":\"date\"},\"t\":{\"type\":"
    "\"string\",\"format\":\"time\"},\"dt\":{\"type\":\"string\",\"format\":\"date-time\"},\"u\":{\"type\":"
    "\"string\",\"format\":\"uuid\"},\"ip\":{\"type\":\"string\",\"format\":\"ipv4\"}},\"required\":[\"d\","
    "\"dt\"],\"additionalProperties\":false}",
    /* 14: a bounded number at the top */
    "{\"type\":\"number\",\"minimum\":-1.5,\"exclusiveMaximum\":1e3}",
    /* 15: a bounded integer at the top */
    "{\"type\":\"integer\",\"exclusiveMinimum\":-10,\"maximum\":10}",
};
#define NUM_SCHEMAS (sizeof(kSchemas) / sizeof(kSchemas[0]))

static json_t* load_schema(const char* text) {
    json_error_t e;
    json_t* s = json_loads(text, JSON_DECODE_ANY, &e);
    if (s == NULL) fprintf(stderr, "schema: %s: %s\n", e.text, text);
    return s;
}

static struct srv_schema* compile_text(const char* text, struct srv_error* err) {
    json_t* j = load_schema(text);
    struct srv_schema* s = j ? srv_schema_compile(j, "schema", err) : NULL;
    json_decref(j);
    return s;
}

/* 1 whole, 0 a valid prefix, -1 refused (*at: the first byte refused) */
static int verdict(struct srv_schema* s, const char* text, size_t n, size_t* at) {
    struct srv_schema_state* st = srv_schema_state_create(s);
    size_t i = 0;
    while (i < n && srv_schema_feed(st, text + i, 1)) i++;
    const int v = i < n ? -1 : srv_schema_complete(st) ? 1 : 0;
    srv_schema_state_free(st);
    if (at) *at = i;
    return v;
}

/* ---- the generator of valid instances ---------------------------------------------------- */

static void ws(struct srv_buf* b) {
    if (below(3) != 0) return;
    for (uint32_t k = 1 + below(3); k > 0; k--) srv_buf_put(b, &" \n\t\r"[below(4)], 1);
}

static void put_utf8(struct srv_buf* b, uint32_t cp) {
    char s[4];
    size_t n;
    if (cp < 0x80) { s[0] = (char) cp; n = 1; }
    else if (cp < 0x800) { s[0] = (char) (0xC0 | cp >> 6); s[1] = (char) (0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        s[0] = (char) (0xE0 | cp >> 12); s[1] = (char) (0x80 | (cp >> 6 & 0x3F)); s[2] = (char) (0x80 | (cp & 0x3F)); n = 3;
    } else {
        s[0] = (char) (0xF0 | cp >> 18); s[1] = (char) (0x80 | (cp >> 12 & 0x3F));
        s[2] = (char) (0x80 | (cp >> 6 & 0x3F)); s[3] = (char) (0x80 | (cp & 0x3F)); n = 4;
    }
    srv_buf_put(b, s, n);
}

/* A code point inside a JSON string: escaped where it must be, else raw or escaped at random
 * (\uXXXX, a surrogate pair above U+FFFF, the short forms). */
static void put_char(struct srv_buf* b, uint32_t cp) {
    static const char shorts[] = "\"\\/\b\f\n\r\t", names[] = "\"\\/bfnrt";
    const char* sh = cp < 0x80 && cp != 0 ? strchr(shorts, (int) cp) : NULL;
    const bool must = cp < 0x20 || cp == '"' || cp == '\\';
    const uint32_t how = below(8);
    if (sh != NULL && (must || how == 0) && below(2)) {
        srv_buf_printf(b, "\\%c", names[sh - shorts]);
    } else if (must || how == 1) {
        if (cp >= 0x10000) {
            srv_buf_printf(b, below(2) ? "\\u%04x\\u%04x" : "\\u%04X\\u%04X", 0xD800 + ((cp - 0x10000) >> 10),
                           0xDC00 + ((cp - 0x10000) & 0x3FF));
        } else {
            srv_buf_printf(b, below(2) ? "\\u%04x" : "\\u%04X", cp);
        }
    } else {
        put_utf8(b, cp);
    }
}

static uint32_t random_cp(void) {
    switch (below(8)) {
    case 0: return below(0x20);
    case 1: return below(2) ? '"' : '\\';
    case 2: return 0x80 + below(0x800 - 0x80);
    case 3: {
        uint32_t cp;
        do cp = 0x800 + below(0x10000 - 0x800);
        while (cp >= 0xD800 && cp <= 0xDFFF);
        return cp;
    }
    case 4: return 0x10000 + below(0x110000 - 0x10000);
    default: return 0x20 + below(0x5F);
    }
}

/* The string s (valid UTF-8) as a JSON string, escapes at random. */
static void put_string(struct srv_buf* b, const char* s, size_t n) {
    srv_buf_put(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        const unsigned char c = (unsigned char) s[i];
        const size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        uint32_t cp = len == 1 ? c : c & (0xFF >> (len + 1));
        for (size_t k = 1; k < len; k++) cp = cp << 6 | ((unsigned char) s[i + k] & 0x3F);
        put_char(b, cp);
        i += len;
    }
    srv_buf_put(b, "\"", 1);
}

/* A number equal to v, spelled at random: the point moved and an exponent to make up for it
 * (integers only as integers when `integer`). */
static void put_number(struct srv_buf* b, const json_t* v, bool integer) {
    char buf[48];
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else {
        for (int p = 1; p <= 17; p++) {
            snprintf(buf, sizeof(buf), "%.*e", p - 1, json_real_value(v));
            if (strtod(buf, NULL) == json_real_value(v)) break;
        }
    }
    /* digits and the position of the point after the first of them */
    char d[40];
    int nd = 0, point = 0, frac = 0;
    const char* p = buf;
    const bool neg = *p == '-';
    p += neg;
    for (; (*p >= '0' && *p <= '9') || *p == '.'; p++) {
        if (*p == '.') frac = 1;
        else { d[nd++] = *p; point += !frac; }
    }
    if (*p == 'e') point += atoi(p + 1);
    int lead = 0;
    while (lead < nd - 1 && d[lead] == '0') { lead++; point--; }
    while (nd > lead + 1 && d[nd - 1] == '0') nd--;
    const bool zero = nd == lead + 1 && d[lead] == '0';
    const int e = integer ? 0 : (int) below(7) - 3;
    const int q = point - e; /* digits before the point in the mantissa written */
    if (neg || (zero && below(4) == 0)) srv_buf_put(b, "-", 1);
    if (zero) {
        srv_buf_put(b, "0", 1);
        if (!integer && below(2)) srv_buf_printf(b, ".%0*d", 1 + (int) below(3), 0);
    } else if (q <= 0) {
        srv_buf_puts(b, "0.");
        for (int k = 0; k < -q; k++) srv_buf_put(b, "0", 1);
        srv_buf_printf(b, "%.*s", nd - lead, d + lead);
    } else if (q < nd - lead) {
        srv_buf_printf(b, "%.*s.%.*s", q, d + lead, nd - lead - q, d + lead + q);
    } else {
        srv_buf_printf(b, "%.*s", nd - lead, d + lead);
        for (int k = nd - lead; k < q; k++) srv_buf_put(b, "0", 1);
        if (!integer && below(4) == 0) srv_buf_put(b, ".0", 2);
    }
    if (e != 0 || (!integer && below(6) == 0)) srv_buf_printf(b, "%c%s%d", below(2) ? 'e' : 'E', e >= 0 && below(2) ? "+" : "", e);
}

/* ---- strings of a pattern, numbers near bounds ---------------------------------------------- */

/* A random string matching an ECMA-262 pattern of the tests' subset (literals, escapes, classes,
 * '.', groups, '|', quantifiers, '^' and '$' at the ends of top-level alternatives): an
 * alternative taken at random, repetitions at random (unbounded ones up to 3 more), and
 * random text before it (no '^') and after it (no '$'). Written independently of the
 * recognizer's translation. */
struct regen {
    const char* p;
    size_t i;
    struct srv_buf* out;
};

static uint32_t regen_char(struct regen* g);

static bool regen_in_class(const char* cls, size_t n, uint32_t cp) {
    /* cls: the text between '[' (after '^') and ']' */
    struct regen g = {cls, 0, NULL};
    while (g.i < n) {
        uint32_t a, b;
        if (cls[g.i] == '\\' && strchr("dDwWsS", cls[g.i + 1])) {
            const char e = cls[g.i + 1];
            g.i += 2;
            bool in = false;
            const char l = (char) (e | 0x20);
            if (l == 'd') in = cp >= '0' && cp <= '9';
            if (l == 'w') in = (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
            if (l == 's') in = (cp >= 9 && cp <= 13) || cp == ' ' || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
                               cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
            if (in != (e != l)) return true;
            continue;
        }
        a = regen_char(&g);
        b = a;
        if (g.i + 1 < n && cls[g.i] == '-') {
            g.i++;
            b = regen_char(&g);
        }
        if (cp >= a && cp <= b) return true;
    }
    return false;
}

/* a literal or escaped character at g->i (not a class escape) */
static uint32_t regen_char(struct regen* g) {
    const unsigned char c = (unsigned char) g->p[g->i];
    if (c == '\\') {
        const char e = g->p[g->i + 1];
        g->i += 2;
        switch (e) {
        case 't': return '\t';
        case 'n': return '\n';
        case 'r': return '\r';
        case 'f': return '\f';
        case 'v': return '\v';
        case 'b': return '\b';
        case '0': return 0;
        case 'x': {
            const uint32_t v = (uint32_t) strtoul((char[]){g->p[g->i], g->p[g->i + 1], 0}, NULL, 16);
            g->i += 2;
            return v;
        }
        case 'u': {
            char h[5] = {g->p[g->i], g->p[g->i + 1], g->p[g->i + 2], g->p[g->i + 3], 0};
            g->i += 4;
            return (uint32_t) strtoul(h, NULL, 16);
        }
        default: return (unsigned char) e;
        }
    }
    const size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    uint32_t cp = len == 1 ? c : c & (0xFF >> (len + 1));
    for (size_t k = 1; k < len; k++) cp = cp << 6 | ((unsigned char) g->p[g->i + k] & 0x3F);
    g->i += len;
    return cp;
}

static uint32_t random_cp_any(void) {
    for (;;) {
        const uint32_t cp = random_cp();
        if (cp != 0 || below(4) == 0) return cp;
    }
}

static void regen_alt(struct regen* g);

/* one atom, written n times (each time at random) */
static void regen_atom(struct regen* g, size_t start, size_t end, uint32_t times) {
    for (uint32_t t = 0; t < times; t++) {
        g->i = start;
        const char c = g->p[g->i];
        if (c == '(') {
            g->i += g->p[g->i + 1] == '?' ? 3 : 1;
            regen_alt(g);
        } else if (c == '[') {
            g->i++;
            const bool neg = g->p[g->i] == '^';
            if (neg) g->i++;
            const size_t from = g->i;
            while (g->p[g->i] != ']') g->i += g->p[g->i] == '\\' ? 2 : 1;
            for (int tries = 0;; tries++) { /* a code point of the class: drawn until one is in it */
                uint32_t cp = below(3) == 0 ? random_cp_any() : 0x20 + below(0x5F);
                if (!neg && below(2)) { /* an endpoint or a neighbour of one */
                    struct regen h = {g->p, from, NULL};
                    const uint32_t a = regen_char(&h);
                    cp = a + below(3);
                }
                if (regen_in_class(g->p + from, g->i - from, cp) != neg && !(cp >= 0xD800 && cp <= 0xDFFF)) {
                    put_utf8(g->out, cp);
                    break;
                }
            }
            g->i++;
        } else if (c == '.') {
            uint32_t cp;
            do cp = random_cp_any();
            while (cp == '\n' || cp == '\r' || cp == 0x2028 || cp == 0x2029);
            put_utf8(g->out, cp);
            g->i++;
        } else if (c == '\\' && strchr("dDwWsS", g->p[g->i + 1])) {
            char cls[3] = {'\\', g->p[g->i + 1], 0};
            uint32_t cp;
            do cp = below(2) ? 0x20 + below(0x5F) : random_cp_any();
            while (!regen_in_class(cls, 2, cp) || (cp >= 0xD800 && cp <= 0xDFFF));
            put_utf8(g->out, cp);
            g->i += 2;
        } else {
            put_utf8(g->out, regen_char(g));
        }
    }
    g->i = end;
}

/* the end of the atom at g->i */
static size_t regen_skip(const char* p, size_t i) {
    if (p[i] == '\\') return i + (p[i + 1] == 'u' ? 6 : p[i + 1] == 'x' ? 4 : 2);
    if (p[i] == '[') {
        i++;
        if (p[i] == '^') i++;
        while (p[i] != ']') i += p[i] == '\\' ? 2 : 1;
        return i + 1;
    }
    if (p[i] == '(') {
        int depth = 0;
        do {
            if (p[i] == '\\') i++;
            else if (p[i] == '[') i = regen_skip(p, i) - 1;
            else if (p[i] == '(') depth++;
            else if (p[i] == ')') depth--;
            i++;
        } while (depth > 0);
        return i;
    }
    const unsigned char c = (unsigned char) p[i];
    return i + (c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4);
}

/* an alternative of the group (or pattern) at g->i, to its ')' or end; one taken at random */
static void regen_alt(struct regen* g) {
    size_t alts[16];
    int n = 0;
    alts[n++] = g->i;
    size_t i = g->i;
    while (g->p[i] && g->p[i] != ')') {
        if (g->p[i] == '|') {
            alts[n++] = i + 1;
            i++;
        } else {
            i = regen_skip(g->p, i);
            while (g->p[i] && strchr("*+?{", g->p[i])) i = g->p[i] == '{' ? (size_t) (strchr(g->p + i, '}') - g->p) + 1 : i + 1;
        }
    }
    const size_t close = i;
    g->i = alts[below((uint32_t) n)];
    while (g->p[g->i] && g->p[g->i] != '|' && g->p[g->i] != ')') {
        if (g->p[g->i] == '^' || g->p[g->i] == '$') {
            g->i++;
            continue;
        }
        const size_t start = g->i, end = regen_skip(g->p, start);
        uint32_t lo = 1, hi = 1;
        size_t next = end;
        if (g->p[end] == '*') lo = 0, hi = 3, next++;
        else if (g->p[end] == '+') lo = 1, hi = 4, next++;
        else if (g->p[end] == '?') lo = 0, hi = 1, next++;
        else if (g->p[end] == '{') {
            char* q;
            lo = (uint32_t) strtoul(g->p + end + 1, &q, 10);
            hi = lo;
            if (*q == ',') hi = q[1] == '}' ? lo + 3 : (uint32_t) strtoul(q + 1, &q, 10);
            next = (size_t) (strchr(g->p + end, '}') - g->p) + 1;
        }
        if (g->p[next] == '?') next++;
        regen_atom(g, start, end, lo + below(hi - lo + 1));
        g->i = next;
    }
    g->i = close + (g->p[close] == ')');
}

static void random_text(struct srv_buf* b, uint32_t most) {
    for (uint32_t k = below(most + 1); k > 0; k--) put_utf8(b, random_cp_any());
}

static void pattern_string_alt(const char* pat, struct srv_buf* b, int which);
static void pattern_string(const char* pat, struct srv_buf* b) { pattern_string_alt(pat, b, -1); }

/* which: the top-level alternative taken (modulo their number), -1 at random */
static void pattern_string_alt(const char* pat, struct srv_buf* b, int which) {
    /* the top-level alternative taken decides the text around it */
    size_t alts[16];
    int n = 0;
    alts[n++] = 0;
    for (size_t i = 0, depth = 0; pat[i]; i++) {
        if (pat[i] == '\\') i++;
        else if (pat[i] == '[') i = regen_skip(pat, i) - 1;
        else if (pat[i] == '(') depth++;
        else if (pat[i] == ')') depth--;
        else if (pat[i] == '|' && depth == 0) alts[n++] = i + 1;
    }
    const size_t a = alts[which < 0 ? below((uint32_t) n) : (uint32_t) which % (uint32_t) n];
    size_t e = a;
    for (int depth = 0; pat[e] && !(pat[e] == '|' && depth == 0); e++) {
        if (pat[e] == '\\') e++;
        else if (pat[e] == '[') e = regen_skip(pat, e) - 1;
        else if (pat[e] == '(') depth++;
        else if (pat[e] == ')') depth--;
    }
    char one[1024];
    snprintf(one, sizeof(one), "%.*s", (int) (e - a), pat + a);
    if (one[0] != '^') random_text(b, 3);
    struct regen g = {one, 0, b};
    regen_alt(&g);
    if (e == a || one[e - a - 1] != '$') random_text(b, 3);
}

/* format strings, valid and at random (leap days, leap seconds, both cases of T and Z) */
static void format_string(const char* f, struct srv_buf* b) {
    if (strcmp(f, "date") == 0 || strcmp(f, "date-time") == 0) {
        static const int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int y = 1 + (int) below(9999);
        if (below(4) == 0) y = (int) (below(25) * 400) + (below(2) ? 0 : 100 * (1 + (int) below(3)));
        if (y == 0) y = 2000;
        const int m = 1 + (int) below(12);
        const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        const int most = kDays[m - 1] + (m == 2 && leap);
        const int d = below(3) == 0 ? most : 1 + (int) below((uint32_t) most);
        srv_buf_printf(b, "%04d-%02d-%02d", y, m, d);
        if (f[4] == '\0') return;
        srv_buf_puts(b, below(2) ? "T" : "t");
    }
    if (strcmp(f, "time") == 0 || strcmp(f, "date-time") == 0) {
        srv_buf_printf(b, "%02u:%02u:%02u", below(24), below(60), below(10) == 0 ? 60 : below(60));
        if (below(2)) srv_buf_printf(b, ".%u", below(100000));
        if (below(3) == 0) srv_buf_puts(b, below(2) ? "Z" : "z");
        else srv_buf_printf(b, "%c%02u:%02u", below(2) ? '+' : '-', below(24), below(60));
    } else if (strcmp(f, "uuid") == 0) {
        static const char hex[] = "0123456789abcdefABCDEF";
        for (int i = 0; i < 36; i++) srv_buf_printf(b, "%c", i == 8 || i == 13 || i == 18 || i == 23 ? '-' : hex[below(22)]);
    } else if (strcmp(f, "ipv4") == 0) {
        for (int i = 0; i < 4; i++) srv_buf_printf(b, "%s%u", i ? "." : "", below(3) == 0 ? 255 - below(6) : below(256));
    }
}

/* A number spelled from its digits (value 0.DIGITS x 10^point, no leading zero, neg: its
 * sign), every way at random: the point moved with an exponent to make up (exponent digits
 * with leading zeros), trailing zeros, -0. Integers (integer) without fraction or exponent. */
static void spell_decimal(struct srv_buf* b, bool neg, const char* d, int point, bool integer) {
    const int nd = (int) strlen(d);
    if (nd == 0) { /* zero */
        srv_buf_puts(b, below(3) == 0 ? "-0" : "0");
        if (!integer && below(2)) srv_buf_printf(b, ".%0*d", 1 + (int) below(3), 0);
        if (!integer && below(3) == 0) srv_buf_printf(b, "e%s%u", below(2) ? "-" : "", below(9));
        return;
    }
    const int e = integer ? 0 : (int) below(9) - 4;
    const int q = point - e;
    if (neg) srv_buf_put(b, "-", 1);
    if (q <= 0) {
        srv_buf_puts(b, "0.");
        for (int k = 0; k < -q; k++) srv_buf_put(b, "0", 1);
        srv_buf_puts(b, d);
    } else if (q < nd) {
        srv_buf_printf(b, "%.*s.%s", q, d, d + q);
    } else {
        srv_buf_puts(b, d);
        for (int k = nd; k < q; k++) srv_buf_put(b, "0", 1);
        if (!integer && below(3) == 0) srv_buf_put(b, ".", 1), srv_buf_put(b, "0", 1);
    }
    if (!integer && q < nd && below(3) == 0) for (uint32_t k = 1 + below(3); k > 0; k--) srv_buf_put(b, "0", 1);
    if (!integer && (e != 0 || below(5) == 0))
        srv_buf_printf(b, "%c%s%0*d", below(2) ? 'e' : 'E', e < 0 ? "-" : below(2) ? "+" : "", 1 + (int) below(2), abs(e));
}

/* The decimal digits of a jansson number (shortest round trip for reals) and its point. */
static void decimal_of(const json_t* v, bool* neg, char* d, int* point) {
    char buf[48];
    if (json_is_integer(v)) snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else {
        for (int p = 1; p <= 17; p++) {
            snprintf(buf, sizeof(buf), "%.*e", p - 1, json_real_value(v));
            if (strtod(buf, NULL) == json_real_value(v)) break;
        }
    }
    const char* p = buf;
    *neg = *p == '-';
    p += *neg;
    char all[40];
    int n = 0, ip = 0, frac = 0;
    for (; (*p >= '0' && *p <= '9') || *p == '.'; p++) {
        if (*p == '.') frac = 1;
        else all[n++] = *p, ip += !frac;
    }
    if (*p == 'e') ip += atoi(p + 1);
    int s = 0;
    while (s < n && all[s] == '0') s++, ip--;
    while (n > s && all[n - 1] == '0') n--;
    memcpy(d, all + s, (size_t) (n - s));
    d[n - s] = '\0';
    *point = ip;
    if (n == s) *neg = false;
}

/* A number near one of the bounds of sch (either side, or the bound itself), or anywhere
 * between: digits changed at the end (the last one raised or lowered, 9s or a 1 after it). */
static void near_bound(const json_t* sch, bool integer, struct srv_buf* b) {
    static const char* const kBounds[4] = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"};
    const json_t* v = NULL;
    for (int tries = 0; tries < 8 && v == NULL; tries++) v = json_object_get(sch, kBounds[below(4)]);
    bool neg = false;
    char d[64] = "";
    int point = 0;
    if (v == NULL) {
        snprintf(d, sizeof(d), "%u", 1 + below(999));
        point = (int) below(6) - 2;
        neg = below(2);
    } else {
        decimal_of(v, &neg, d, &point);
    }
    size_t nd = strlen(d);
    switch (below(5)) {
    case 0: break; /* the bound itself */
    case 1: /* a little more in magnitude */
        if (nd == 0) { snprintf(d, sizeof(d), "1"); point = -(int) below(4); neg = below(2); break; }
        for (uint32_t k = below(3); k > 0 && nd < 40; k--) d[nd++] = '0';
        d[nd++] = '1';
        d[nd] = '\0';
        break;
    case 2: /* a little less: the last digit down, 9s after it */
        if (nd == 0) break;
        d[nd - 1]--;
        for (uint32_t k = below(3); k > 0 && nd < 40; k--) d[nd++] = '9';
        d[nd] = '\0';
        if (d[0] == '0') { memmove(d, d + 1, nd); point--; }
        break;
    case 3: /* a unit more or less at the last integer digit */
        if (point > 0 && point <= 15) {
            long long x = 0;
            for (int i = 0; i < point; i++) x = x * 10 + (i < (int) nd ? d[i] - '0' : 0);
            x += below(2) ? 1 : -1;
            if (neg) x = -x;
            neg = x < 0;
            snprintf(d, sizeof(d), "%lld", neg ? -x : x);
            point = (int) strlen(d);
            nd = strlen(d);
            while (nd > 0 && d[nd - 1] == '0') d[--nd] = '\0';
            if (x == 0) d[0] = '\0';
        }
        break;
    default: /* the sign flipped */
        neg = !neg;
        break;
    }
    if (integer && point < (int) strlen(d)) { /* an integer: cut the fraction */
        if (point <= 0) d[0] = '\0';
        else d[point] = '\0';
    }
    spell_decimal(b, neg, d, point, integer);
}

static const json_t* resolve_ref(const json_t* root, const json_t* sch) {
    for (int hops = 0; hops < 100 && json_is_object(sch); hops++) {
        const json_t* r = json_object_get(sch, "$ref");
        const json_t* all = json_object_get(sch, "allOf");
        if (r != NULL) sch = oracle_ref(root, json_string_value(r));
        else if (all != NULL) sch = json_array_get(all, 0);
        else break;
    }
    return sch;
}

static void gen(const json_t* root, const json_t* sch, int depth, struct srv_buf* b);

/* any JSON value, small (the depth keeps it so) */
static void gen_any(int depth, struct srv_buf* b) {
    switch (below(depth > 3 ? 5 : 7)) {
    case 0: srv_buf_puts(b, "null"); break;
    case 1: srv_buf_puts(b, below(2) ? "true" : "false"); break;
    case 2: {
        json_t* n = below(2) ? json_integer((json_int_t) below(100000) - 50000) : json_real((double) below(10000) / 64.0);
        put_number(b, n, false);
        json_decref(n);
        break;
    }
    case 3:
    case 4: {
        struct srv_buf s = {0};
        for (uint32_t k = below(5); k > 0; k--) put_utf8(&s, random_cp());
        put_string(b, s.data ? s.data : "", s.len);
        srv_buf_free(&s);
        break;
    }
    case 5:
        srv_buf_put(b, "[", 1);
        for (uint32_t k = below(3), i = 0; i < k; i++) {
            if (i) srv_buf_put(b, ",", 1);
            ws(b);
            gen_any(depth + 1, b);
            ws(b);
        }
        srv_buf_put(b, "]", 1);
        break;
    default:
        srv_buf_put(b, "{", 1);
        for (uint32_t k = below(3), i = 0; i < k; i++) {
            srv_buf_printf(b, "%s\"k%u\"", i ? "," : "", i * 10 + below(10));
            ws(b);
            srv_buf_put(b, ":", 1);
            ws(b);
            gen_any(depth + 1, b);
        }
        srv_buf_put(b, "}", 1);
        break;
    }
}

/* an enum/const value written at random (numbers: any spelling of the value, but integers
 * where only "integer" is allowed beside them) */
static void gen_value(const json_t* v, bool integer, struct srv_buf* b) {
    if (json_is_number(v)) {
        put_number(b, v, integer);
    } else if (json_is_string(v)) {
        put_string(b, json_string_value(v), json_string_length(v));
    } else if (json_is_array(v)) {
        srv_buf_put(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) srv_buf_put(b, ",", 1);
            ws(b);
            gen_value(json_array_get(v, i), false, b);
            ws(b);
        }
        srv_buf_put(b, "]", 1);
    } else if (json_is_object(v)) { /* keys in a random order */
        const char* keys[16];
        size_t n = 0;
        const char* k;
        json_t* x;
        json_object_foreach((json_t*) v, k, x) keys[n++] = k;
        for (size_t i = n; i > 1; i--) {
            const size_t j = below((uint32_t) i);
            const char* t = keys[i - 1];
            keys[i - 1] = keys[j];
            keys[j] = t;
        }
        srv_buf_put(b, "{", 1);
        for (size_t i = 0; i < n; i++) {
            srv_buf_printf(b, "%s", i ? "," : "");
            ws(b);
            srv_buf_printf(b, "\"%s\"", keys[i]);
            ws(b);
            srv_buf_put(b, ":", 1);
            ws(b);
            gen_value(json_object_get(v, keys[i]), false, b);
        }
        srv_buf_put(b, "}", 1);
    } else {
        srv_buf_puts(b, json_is_null(v) ? "null" : json_is_true(v) ? "true" : "false");
    }
}

static bool type_allows(const json_t* t, const char* name) {
    if (t == NULL) return true;
    if (json_is_string(t)) return strcmp(json_string_value(t), name) == 0;
    for (size_t i = 0; i < json_array_size(t); i++)
        if (strcmp(json_string_value(json_array_get(t, i)), name) == 0) return true;
    return false;
}

static void gen_object(const json_t* root, const json_t* sch, int depth, struct srv_buf* b) {
    const json_t* props = json_object_get(sch, "properties");
    const json_t* required = json_object_get(sch, "required");
    const json_t* extra = json_object_get(sch, "additionalProperties");
    const char* names[64];
    const json_t* schemas[64];
    size_t n = 0;
    const char* k;
    json_t* x;
    json_object_foreach((json_t*) props, k, x) {
        bool req = false;
        for (size_t i = 0; i < json_array_size(required); i++) req |= strcmp(json_string_value(json_array_get(required, i)), k) == 0;
        if (req || (depth < 6 && below(2))) {
            names[n] = k;
            schemas[n++] = x;
        }
    }
    for (size_t i = 0; i < json_array_size(required); i++) { /* required names that are no property */
        const char* r = json_string_value(json_array_get(required, i));
        if (json_object_get(props, r) == NULL) {
            names[n] = r;
            schemas[n++] = extra ? extra : json_true();
        }
    }
    char others[3][16];
    if (!json_is_false(extra) && depth < 6) {
        for (uint32_t m = below(3), i = 0; i < m; i++) {
            snprintf(others[i], sizeof(others[i]), "o%u_%u", i, below(1000));
            names[n] = others[i];
            schemas[n++] = extra ? extra : json_true();
        }
    }
    for (size_t i = n; i > 1; i--) {
        const size_t j = below((uint32_t) i);
        const char* t = names[i - 1];
        names[i - 1] = names[j];
        names[j] = t;
        const json_t* u = schemas[i - 1];
        schemas[i - 1] = schemas[j];
        schemas[j] = u;
    }
    srv_buf_put(b, "{", 1);
    for (size_t i = 0; i < n; i++) {
        if (i) srv_buf_put(b, ",", 1);
        ws(b);
        srv_buf_printf(b, "\"%s\"", names[i]);
        ws(b);
        srv_buf_put(b, ":", 1);
        ws(b);
        gen(root, schemas[i], depth + 1, b);
        ws(b);
    }
    srv_buf_put(b, "}", 1);
}

static void gen(const json_t* root, const json_t* sch, int depth, struct srv_buf* b) {
    sch = resolve_ref(root, sch);
    if (json_is_true(sch) || json_object_size(sch) == 0) {
        gen_any(depth, b);
        return;
    }
    const json_t* any = json_object_get(sch, "anyOf");
    if (any != NULL) { /* deep down, the first alternative (the schemas make it end the recursion) */
        gen(root, json_array_get(any, depth > 5 ? 0 : below((uint32_t) json_array_size(any))), depth, b);
        return;
    }
    const json_t* t = json_object_get(sch, "type");
    const json_t* values = json_object_get(sch, "enum");
    const json_t* c = json_object_get(sch, "const");
    if (values != NULL || c != NULL) {
        const bool integer = type_allows(t, "integer") && !type_allows(t, "number") && t != NULL;
        for (;;) { /* a value the type takes */
            const json_t* v = c ? c : json_array_get(values, below((uint32_t) json_array_size(values)));
            const bool number = json_is_number(v) && (type_allows(t, "number") ||
                                                      (integer && json_number_value(v) == floor(json_number_value(v))));
            const bool fits = (t == NULL || (json_is_number(v) ? number : !json_is_string(v) || type_allows(t, "string"))) &&
                              oracle_valid(root, sch, v, 0);
            if (fits) {
                gen_value(v, integer, b);
                return;
            }
        }
    }
    const char* kinds[7];
    size_t n = 0;
    static const char* const all[7] = {"null", "boolean", "integer", "number", "string", "array", "object"};
    for (int i = 0; i < 7; i++)
        if (type_allows(t, all[i])) kinds[n++] = all[i];
    const char* kind = kinds[below((uint32_t) n)];
    if (strcmp(kind, "null") == 0) {
        srv_buf_puts(b, "null");
    } else if (strcmp(kind, "boolean") == 0) {
        srv_buf_puts(b, below(2) ? "true" : "false");
    } else if ((strcmp(kind, "integer") == 0 || strcmp(kind, "number") == 0) &&
               (json_object_get(sch, "minimum") || json_object_get(sch, "maximum") ||
                json_object_get(sch, "exclusiveMinimum") || json_object_get(sch, "exclusiveMaximum"))) {
        for (int tries = 0;; tries++) { /* near a bound, until the oracle takes it */
            struct srv_buf n = {0};
            near_bound(sch, kind[0] == 'i', &n);
            json_t* one = json_loadb(n.data, n.len, JSON_DECODE_ANY, NULL);
            const bool fits = one != NULL && oracle_valid(sch, sch, one, 0) &&
                              (kind[0] != 'i' || json_is_integer(one));
            json_decref(one);
            if (fits || tries > 500) {
                srv_buf_put(b, n.data, n.len);
                srv_buf_free(&n);
                break;
            }
            srv_buf_free(&n);
        }
    } else if (strcmp(kind, "integer") == 0 || strcmp(kind, "number") == 0) {
        const bool integer = kind[0] == 'i';
        /* at most 15 significant digits: what jansson reads exactly */
        json_t* v = integer || below(2) ? json_integer((json_int_t) (rng_next() >> (15 + below(49))) * (below(2) ? -1 : 1))
                                        : json_real((double) ((int64_t) (rng_next() >> 24) % 100000000) / 10000.0 *
                                                    (below(2) ? -1 : 1));
        put_number(b, v, integer);
        json_decref(v);
    } else if (strcmp(kind, "string") == 0 && (json_object_get(sch, "pattern") || json_object_get(sch, "format"))) {
        struct srv_buf s = {0};
        const json_t* pat = json_object_get(sch, "pattern");
        if (pat) pattern_string(json_string_value(pat), &s);
        else format_string(json_string_value(json_object_get(sch, "format")), &s);
        put_string(b, s.data ? s.data : "", s.len);
        srv_buf_free(&s);
    } else if (strcmp(kind, "string") == 0) {
        const json_t* mn = json_object_get(sch, "minLength");
        const json_t* mx = json_object_get(sch, "maxLength");
        const uint32_t lo = mn ? (uint32_t) json_integer_value(mn) : 0;
        const uint32_t hi = mx ? (uint32_t) json_integer_value(mx) : lo + 8;
        struct srv_buf s = {0};
        for (uint32_t k = lo + below(hi - lo + 1); k > 0; k--) put_utf8(&s, random_cp());
        put_string(b, s.data ? s.data : "", s.len);
        srv_buf_free(&s);
    } else if (strcmp(kind, "array") == 0) {
        const json_t* mn = json_object_get(sch, "minItems");
        const json_t* mx = json_object_get(sch, "maxItems");
        const uint32_t lo = mn ? (uint32_t) json_integer_value(mn) : 0;
        uint32_t hi = mx ? (uint32_t) json_integer_value(mx) : lo + 4;
        if (depth > 5) hi = lo;
        const json_t* items = json_object_get(sch, "items");
        srv_buf_put(b, "[", 1);
        for (uint32_t k = lo + below(hi - lo + 1), i = 0; i < k; i++) {
            if (i) srv_buf_put(b, ",", 1);
            ws(b);
            gen(root, items ? items : json_true(), depth + 1, b);
            ws(b);
        }
        srv_buf_put(b, "]", 1);
    } else {
        gen_object(root, sch, depth, b);
    }
}

static char* instance(const json_t* schema, size_t* n) {
    struct srv_buf b = {0};
    gen(schema, schema, 0, &b);
    *n = b.len;
    return b.data;
}

/* ---- hand cases ------------------------------------------------------------------------- */

static void test_hand_cases(void) {
    static const struct {
        int schema;
        const char* text;
        int want; /* 1 whole, 0 a valid prefix, -1 refused */
    } cases[] = {
        {0, "{\"id\":1,\"name\":\"x\"}", 1},
        {0, "{\"name\":\"x\",\"id\":-12, \"active\" : true}", 1},
        {0, "{\"id\":1,\"name\":\"x\",\"id\":2}", -1},           /* a duplicate */
        {0, "{\"id\":1}", -1},                                /* name is required */
        {0, "{\"id\":1,", 0},
        {0, "{\"id\":1.5", -1},                               /* an integer */
        {0, "{\"id\":01", -1},
        {0, "{\"nam\":", -1},                                 /* no other keys */
        {0, "{\"\\u0069d\":1", -1},                            /* keys without escapes */
        {0, " {\"id\":1,\"name\":\"\"}", -1},                    /* nothing before the value */
        {0, "{\"id\":1,\"name\":\"\"} ", -1},                    /* nor after it */
        {0, "{\"id\":1,\"name\":\"123456789012\"}", 1},
        {0, "{\"id\":1,\"name\":\"1234567890123\"}", -1},        /* maxLength 12 */
        {0, "{\"id\":1,\"name\":\"\",\"address\":{\"zip\":null,\"city\":\"\"}}", 1},
        {0, "{\"id\":1,\"name\":\"\",\"address\":{\"zip\":\"1234\"", -1},
        {0, "{\"id\":1,\"name\":\"\",\"address\":{\"zip\":\"12345\"}}", -1}, /* city required */
        {1, "{\"scores\":[1,2.5e-3],\"pairs\":[[1],[2,3]]}", 1},
        {1, "{\"scores\":[1],", -1},                           /* minItems 2 */
        {1, "{\"scores\":[1,2,3,4,", -1},                      /* maxItems 4 */
        {1, "{\"scores\":[1,2],\"pairs\":[[]", -1},
        {1, "{\"scores\":[-0.0,1E+2],\"pairs\":[]}", 1},
        {2, "{\"e\":15e-1,\"c\":{\"n\":-1225e-2,\"a\":[true,{\"b\":null}]}}", 1},
        {2, "{\"e\":0.15E+1,\"c\":{\"a\":[ true , { \"b\" : null } ],\"n\":-12.250}}", 1},
        {2, "{\"e\":1.6", -1},
        {2, "{\"e\":\"x\\u0022y\",", 0},
        {2, "{\"e\":\"x\"", -1},
        {2, "{\"e\":\"\\u00E9\\uD83D\\uDE00\",", 0},
        {2, "{\"e\":\"\\ud83d", -1},                           /* the text's next character is not U+1F600 */
        {2, "{\"e\":\"\\u00e9\\ud83d\\u0041", -1},
        {2, "{\"e\":-0.000e9,", 0},                            /* -0.0 */
        {2, "{\"e\":0.0000001,", 0},                           /* 1e-7 */
        {2, "{\"e\":10E-8,", 0},
        {2, "{\"e\":{\"k\":[1,2.0]},", 0},
        {2, "{\"e\":{\"k\":[1]", -1},
        {2, "{\"e\":{\"k\":[1,2],\"k\"", -1},
        {2, "{\"e\":\"alpha\",", 0},
        {2, "{\"e\":\"alphab\"", -1},
        {2, "{\"e\":1e2,", 0},                                 /* 100 */
        {2, "{\"e\":1,", -1},
        {2, "{\"c\":{\"a\":[true,{\"b\":null}],\"n\":-12.25},\"e\":[],\"i\":1}", 1},
        {2, "{\"i\":1.0", -1},                                 /* an integer: no fraction */
        {2, "{\"i\":1e2", -1},
        {2, "{\"i\":2.5", -1},                                 /* not an integer: not a value */
        {2, "{\"i\":100,", 0},
        {2, "{\"i\":10", 0},
        {2, "{\"i\":1000", -1},
        {2, "{\"i\":-3,", 0},
        {3, "{\"kind\":\"alpha\",\"x\":1}", 1},
        {3, "{\"kind\":\"alphabet\",\"y\":false,\"x\":\"s\"}", 1},
        {3, "{\"x\":1,\"kind\":\"alpha\"}", 1},
        {3, "{\"x\":\"1\",\"kind\":\"alphabet\",\"y\":true}", 1},
        {3, "{\"kind\":\"alpha\",\"y\"", -1},
        {3, "{\"kind\":\"alphab\"", -1},
        {3, "{\"x\":1,\"kind\":\"alphabet\"", -1},
        {3, "null", 1},
        {4, "{\"value\":1,\"children\":[{\"value\":2,\"children\":[]}]}", 1},
        {4, "{\"value\":1,\"children\":[{\"value\":2}", -1},
        {4, "{\"value\":1,\"children\":[{},", -1},
        {5, "[\"\\ud83d\\ude00x\",\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"]", 1},
        {5, "[\"\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80", -1},
        {5, "[\"a\"", -1},                                     /* minLength 2 */
        {5, "[\"\\ud83dx\"]", 1},                              /* a lone high surrogate is one code point */
        {5, "[\"abc\\ud83d\\ude00\"]", 1},                     /* the pair adds one: four */
        {5, "[\"abc\\ud83d\\u0041", -1},                       /* a fifth */
        {5, "[\"abcd\\", -1},
        {5, "[\"a\\u0000\"]", 1},
        {5, "[\"\xc0\xaf\"]", -1},                             /* overlong UTF-8 */
        {5, "[\"\xed\xa0\x80", -1},                            /* a surrogate in UTF-8 */
        {6, "{\"b\":true}", 1},
        {6, "{\"b\":1", -1},
        {6, "{\"a\":null}", -1},
        {6, "{\"a\":null,\"ab\":3,\"b\":false,\"c\":true,\"cd\":false}", 1},
        {6, "{\"b\":true,\"c\":true,\"c\"", -1},                 /* another key, twice */
        {6, "{\"b\":true,\"c\":true,\"cc\":true,\"c\":", -1},
        {6, "{\"b\":true,\"a\":true", -1},                      /* a is null */
        {6, "{\"b\":true,\"\":false}", 1},                      /* the empty key is another key */
        {7, "{\"any\":[1,{\"z\":\"\\n\"}],\"obj\":{\"q\":1,\"r\":{}}}", 1},
        {7, "{\"any\":1,\"obj\":{\"q\":1,\"q\"", -1},
        {7, "{\"obj\":{},\"any\":null,\"extra\":[]}", 1},
        {8, "-0.5e-3", 1},
        {8, "12", 1},
        {8, "12.", 0},
        {8, "1 ", -1},
        {8, "012", -1},
        {8, "-", 0},
        {9, "\"gr\\u00fcn\"", 1},
        {9, "\"gr\xc3\xbcn\"", 1},
        {9, "\"tab\\there\"", 1},
        {9, "\"tab\\u0009here\"", 1},
        {9, "\"tab\there\"", -1},                              /* a raw control byte */
        {9, "\"\\\\\"", 1},
        {9, "\"\\/\"", -1},
        {9, "\"gre\"", -1},
        {10, "{\"op\":\"+\",\"args\":[1,{\"args\":[2,3],\"op\":\"*\"}]}", 1},
        {10, "{\"op\":\"+\",\"args\":[1]", -1},
        {10, "7", 1},
        /* bounds: integer 10..99 */
        {11, "{\"a\":1", 0},                                  /* 10..19 to come */
        {11, "{\"a\":0", -1},                                 /* "0" is only 0 */
        {11, "{\"a\":-", -1},
        {11, "{\"a\":9,", -1},
        {11, "{\"a\":99,\"b\":0}", 1},
        {11, "{\"a\":100", -1},
        {11, "{\"a\":10.0", -1},                               /* an integer: no fraction */
        {11, "{\"a\":1e1", -1},
        /* number in (-2.5, 5.5] */
        {11, "{\"a\":10,\"b\":5.5}", 1},
        {11, "{\"a\":10,\"b\":5.50000}", 1},
        {11, "{\"a\":10,\"b\":5.51", 0},                       /* 5.51e-1 is within */
        {11, "{\"a\":10,\"b\":5.51}", -1},
        {11, "{\"a\":10,\"b\":55e-1}", 1},
        {11, "{\"a\":10,\"b\":0.55E+1}", 1},
        {11, "{\"a\":10,\"b\":0.55E+2", -1},
        {11, "{\"a\":10,\"b\":5.5e0}", 1},
        {11, "{\"a\":10,\"b\":5.5e1", -1},
        {11, "{\"a\":10,\"b\":5.5e-", 0},
        {11, "{\"a\":10,\"b\":5.5e-0001}", 1},
        {11, "{\"a\":10,\"b\":5.5e-00001", -1},               /* 4 exponent digits */
        {11, "{\"a\":10,\"b\":6", 0},                         /* 6e-1 ... */
        {11, "{\"a\":10,\"b\":6}", -1},
        {11, "{\"a\":10,\"b\":6e", 0},
        {11, "{\"a\":10,\"b\":6e0", -1},
        {11, "{\"a\":10,\"b\":6e+", -1},
        {11, "{\"a\":10,\"b\":-2.5", 0},                      /* -2.50...01 is not; -2.49 is */
        {11, "{\"a\":10,\"b\":-2.5}", -1},
        {11, "{\"a\":10,\"b\":-2.50", 0},
        {11, "{\"a\":10,\"b\":-2.51", 0},
        {11, "{\"a\":10,\"b\":-2.51}", -1},
        {11, "{\"a\":10,\"b\":-2.5e", 0},                     /* -2.5e-1 */
        {11, "{\"a\":10,\"b\":-2.5e1", -1},
        {11, "{\"a\":10,\"b\":-0}", 1},
        {11, "{\"a\":10,\"b\":-3", 0},                        /* -3e-1 */
        {11, "{\"a\":10,\"b\":-3e+", -1},
        /* below 0, exclusive; 1e-7 .. 0.001; at least 12345.678 */
        {11, "{\"a\":10,\"b\":1,\"c\":0", -1},                /* 0.x is not below 0, 0e5 is 0 */
        {11, "{\"a\":10,\"b\":1,\"c\":-0.", 0},
        {11, "{\"a\":10,\"b\":1,\"c\":0}", -1},
        {11, "{\"a\":10,\"b\":1,\"c\":-0.0}", -1},
        {11, "{\"a\":10,\"b\":1,\"c\":-0.000001}", 1},
        {11, "{\"a\":10,\"b\":1,\"c\":-0e5", -1},
        {11, "{\"a\":10,\"b\":1,\"e\":0.0000001}", 1},
        {11, "{\"a\":10,\"b\":1,\"e\":0.00000009}", -1},
        {11, "{\"a\":10,\"b\":1,\"e\":0.00000009", 0},       /* 9e-8 x 10 */
        {11, "{\"a\":10,\"b\":1,\"e\":0.00000009e1}", 1},
        {11, "{\"a\":10,\"b\":1,\"e\":0.00000009e-", -1},
        {11, "{\"a\":10,\"b\":1,\"e\":0.000000099}", -1},
        {11, "{\"a\":10,\"b\":1,\"e\":0.00000010001}", 1},
        {11, "{\"a\":10,\"b\":1,\"e\":1e-3}", 1},
        {11, "{\"a\":10,\"b\":1,\"e\":1.0001e-3", -1},
        {11, "{\"a\":10,\"b\":1,\"e\":10e-4}", 1},
        {11, "{\"a\":10,\"b\":1,\"f\":12345.678}", 1},
        {11, "{\"a\":10,\"b\":1,\"f\":12345.677", 0},       /* 12345.6779 */
        {11, "{\"a\":10,\"b\":1,\"f\":12345.677}", -1},
        {11, "{\"a\":10,\"b\":1,\"f\":1.2345678e4}", 1},
        {11, "{\"a\":10,\"b\":1,\"f\":1.2345677e4}", -1},
        {11, "{\"a\":10,\"b\":1,\"f\":1e", 0},
        /* an integer in [0.5, 3.0001): 1, 2, 3 */
        {11, "{\"a\":10,\"b\":1,\"g\":0", -1},
        {11, "{\"a\":10,\"b\":1,\"g\":3}", 1},
        {11, "{\"a\":10,\"b\":1,\"g\":4", -1},
        /* [-0.0, 0.1] and > -1 (the tighter: -0.0 inclusive) or null */
        {11, "{\"a\":10,\"b\":1,\"h\":-0}", 1},
        {11, "{\"a\":10,\"b\":1,\"h\":-0.", 0},
        {11, "{\"a\":10,\"b\":1,\"h\":-0.1", -1},
        {11, "{\"a\":10,\"b\":1,\"h\":0.1}", 1},
        {11, "{\"a\":10,\"b\":1,\"h\":0.10000000000000000000001}", -1},
        {11, "{\"a\":10,\"b\":1,\"h\":0.10000000000000000000001e-", 0},
        {11, "{\"a\":10,\"b\":1,\"h\":null}", 1},
        /* patterns */
        {12, "{\"code\":\"ABC-12\",\"word\":\"ab\"}", 1},
        {12, "{\"code\":\"ABC-1\"", -1},
        {12, "{\"code\":\"ABC-12345", -1},
        {12, "{\"code\":\"AbC", -1},
        {12, "{\"code\":\"\\u0041\\u0042C-\\u0031\\u0032\"", 0}, /* escapes decoded */
        {12, "{\"code\":\"\\u004", 0},
        {12, "{\"code\":\"\\u006", -1},                          /* \\u0060..\\u006F: no capital */
        {12, "{\"code\":\"\\", 0},
        {12, "{\"code\":\"\\n", -1},
        {12, "{\"word\":\"cdedeabx\"", 0},
        {12, "{\"word\":\"cdedeabxx", -1},
        {12, "{\"word\":\"\"", -1},
        {12, "{\"any\":\"zz9\"", -1},                           /* "9z" anywhere */
        {12, "{\"any\":\"zz9", 0},
        {12, "{\"any\":\"zz9z\"", 0},
        {12, "{\"any\":\"x\\ud83d\\ude00 1z\"", 0},
        {12, "{\"any\":\"\\ud83d\"", -1},                        /* no lone surrogate */
        {12, "{\"any\":\"\\udc", -1},
        {12, "{\"uni\":\"ABC\u00e9\u00e9.\"", 0},
        {12, "{\"uni\":\"ABC\xc3\xa9\xe2\x82\xac\"", 0},    /* é then any, then an optional '.' */
        {12, "{\"uni\":\"ABC\xc3\xa8", -1},                     /* è */
        {12, "{\"uni\":\"ABCD", -1},                              /* at most 3 */
        {12, "{\"uni\":\"a", -1},
        {12, "{\"uni\":\"\xc2\xa0", -1},                         /* U+00A0 is \s in ECMA */
        {12, "{\"uni\":\"A\xc3\xa9\\n", -1},                     /* '.' is no line terminator */
        {12, "{\"uni\":\"A\xc3\xa9\\r", -1},
        {12, "{\"uni\":\"A\xc3\xa9\\t\"", 0},
        {12, "{\"uni\":\"A\xc3\xa9\\u2028", -1},
        {12, "{\"uni\":\"A\xc3\xa9\\u2027\"", 0},
        {12, "{\"alt\":\"a\u00e9 and more\"", 0},
        {12, "{\"alt\":\"xbA\"", 0},
        {12, "{\"alt\":\"xbAx\"", -1},
        {12, "{\"alt\":-5,", 0},
        {12, "{\"alt\":-4", 0},                                /* -45 */
        {12, "{\"alt\":-4}", -1},
        {12, "{\"e\":\"ab\",", 0},
        {12, "{\"e\":\"xyz\"", -1},                              /* no "b" */
        /* formats */
        {13, "{\"d\":\"2024-02-29\",\"dt\":\"2000-02-29T23:59:60.5+14:00\"}", 1},
        {13, "{\"d\":\"2023-02-29", -1},
        {13, "{\"d\":\"1900-02-29", -1},
        {13, "{\"d\":\"0000", -1},
        {13, "{\"d\":\"2023-04-31", -1},
        {13, "{\"d\":\"2023-13", -1},
        {13, "{\"d\":\"2023-1-01", -1},
        {13, "{\"d\":\"2023-12-31\"", 0},
        {13, "{\"dt\":\"2023-12-31t00:00:00z\"", 0},
        {13, "{\"dt\":\"2023-12-31 00", -1},
        {13, "{\"dt\":\"2023-12-31T24", -1},
        {13, "{\"dt\":\"2023-12-31T00:00:00\"", -1},            /* an offset */
        {13, "{\"t\":\"12:30:00.123-05:30\"", 0},
        {13, "{\"t\":\"12:30:61", -1},
        {13, "{\"u\":\"123e4567-e89b-12d3-A456-426614174000\"", 0},
        {13, "{\"u\":\"123e4567e", -1},
        {13, "{\"ip\":\"255.255.255.255\"", 0},
        {13, "{\"ip\":\"256", -1},
        {13, "{\"ip\":\"01", -1},
        {13, "{\"ip\":\"1.2.3\"", -1},
        {13, "{\"ip\":\"0.0.0.0\"", 0},
        /* at the top: [-1.5, 1000), (-10, 10] */
        {14, "-1.5", 1},
        {14, "-1.50001", 0},                                     /* not whole: -1.50001e-1 is within */
        {14, "-1.50001e0", -1},
        {14, "-15e-1", 1},
        {14, "999.9999", 1},
        {14, "1000", 0},
        {14, "1000e0", -1},
        {14, "1e3", -1},
        {14, "1e", 0},
        {14, "9.99e2", 1},
        {14, "-0.0", 1},
        {14, "-2", 0},
        {14, "-2e0", -1},
        {14, "-2e-", 0},
        {14, "-1", 1},
        {15, "-9", 1},
        {15, "-10", -1},
        {15, "10", 1},
        {15, "-", 0},
        {15, "0", 1},
        {15, "1", 1},
        {15, "11", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct srv_error err;
        struct srv_schema* s = compile_text(kSchemas[cases[i].schema], &err);
        CHECK(s != NULL, "schema %d: %s", cases[i].schema, s ? "" : err.message);
        if (s == NULL) continue;
        size_t at = 0;
        const int got = verdict(s, cases[i].text, strlen(cases[i].text), &at);
        CHECK(got == cases[i].want, "schema %d, %s: %d (refused at byte %zu), want %d", cases[i].schema, cases[i].text,
              got, at, cases[i].want);
        srv_schema_free(s);
    }
    /* nesting: SRV_JSON_MAX_DEPTH arrays, not one more; whitespace: SRV_JSON_MAX_WS bytes */
    struct srv_error err;
    struct srv_schema* s = compile_text("{\"type\":\"array\",\"items\":{\"$ref\":\"#\"}}", &err);
    struct srv_schema_state* st = srv_schema_state_create(s);
    bool ok = true;
    for (int d = 0; d < SRV_JSON_MAX_DEPTH; d++) ok = ok && srv_schema_feed(st, "[", 1);
    CHECK(ok && !srv_schema_feed(st, "[", 1), "%d nested arrays, not %d", SRV_JSON_MAX_DEPTH, SRV_JSON_MAX_DEPTH + 1);
    for (int k = 0; k < SRV_JSON_MAX_WS; k++) ok = ok && srv_schema_feed(st, k % 2 ? " " : "\n", 1);
    CHECK(ok && !srv_schema_feed(st, " ", 1), "%d whitespace bytes in a row, not more", SRV_JSON_MAX_WS);
    for (int d = 0; d < SRV_JSON_MAX_DEPTH; d++) ok = ok && srv_schema_feed(st, "]", 1);
    CHECK(ok && srv_schema_complete(st), "then they close");
    srv_schema_state_free(st);
    srv_schema_free(s);
    /* a value that needs 3 levels is not begun where only 2 are left */
    s = compile_text("{\"type\":\"array\",\"items\":{\"anyOf\":[{\"$ref\":\"#\"},{\"$ref\":\"#/$defs/three\"}]},"
                     "\"$defs\":{\"three\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"array\",\"minItems\":1,"
                     "\"items\":{\"type\":\"array\",\"minItems\":1,\"items\":{\"type\":\"null\"}}}},\"required\":[\"a\"]}}}",
                     &err);
    st = srv_schema_state_create(s);
    ok = true;
    for (int d = 0; d < SRV_JSON_MAX_DEPTH - 2; d++) ok = ok && srv_schema_feed(st, "[", 1);
    CHECK(ok && !srv_schema_try(st, "{", 1) && srv_schema_try(st, "[", 1), "an object needing 3 more levels at depth %d",
          SRV_JSON_MAX_DEPTH - 2);
    srv_schema_state_free(st);
    srv_schema_free(s);
    /* the same where one node admits null, arrays and such objects: '{' refused, the others not */
    s = compile_text("{\"$ref\":\"#/$defs/x\",\"$defs\":{\"x\":{\"type\":[\"array\",\"object\",\"null\"],\"items\":"
                     "{\"$ref\":\"#/$defs/x\"},\"properties\":{\"a\":{\"type\":\"array\",\"minItems\":1,\"items\":"
                     "{\"type\":\"array\",\"minItems\":1,\"items\":{\"type\":\"null\"}}}},\"required\":[\"a\"]}}}",
                     &err);
    st = srv_schema_state_create(s);
    ok = true;
    for (int d = 0; d < SRV_JSON_MAX_DEPTH - 3; d++) ok = ok && srv_schema_feed(st, "[", 1);
    CHECK(ok && srv_schema_try(st, "{\"a\":[[null]]}", 13), "one node: the object fits at depth %d", SRV_JSON_MAX_DEPTH - 3);
    ok = srv_schema_feed(st, "[", 1);
    CHECK(ok && !srv_schema_try(st, "{", 1) && srv_schema_try(st, "[", 1) && srv_schema_try(st, "n", 1),
          "one node: an object needing 3 more levels refused at depth %d, an array and null not", SRV_JSON_MAX_DEPTH - 2);
    srv_schema_state_free(st);
    srv_schema_free(s);
}

static void test_refusals(void) {
    static const struct {
        const char* schema;
        const char* code;    /* "unsupported_value" or "invalid_value" */
        const char* message; /* a part of the message */
    } cases[] = {
        {"{\"type\":\"integer\",\"multipleOf\":2}", "unsupported_value", "#/multipleOf: \"multipleOf\" is not supported"},
        {"{\"properties\":{\"a\":{\"minimum\":\"1\"}}}", "invalid_value", "#/properties/a: minimum: expected a number"},
        {"{\"exclusiveMinimum\":true,\"minimum\":1}", "invalid_value", "boolean form"},
        {"{\"properties\":{\"a/b\":{\"format\":\"email\"}}}", "unsupported_value",
         "#/properties/a~1b/format: format \"email\" is not supported"},
        {"{\"format\":\"uri\"}", "unsupported_value", "format \"uri\""},
        {"{\"format\":5}", "invalid_value", "#/format: expected a string"},
        {"{\"pattern\":\"^a\",\"maxLength\":3}", "unsupported_value", "beside minLength/maxLength"},
        {"{\"format\":\"date\",\"minLength\":1}", "unsupported_value", "beside minLength/maxLength"},
        {"{\"pattern\":\"a\",\"format\":\"date\"}", "unsupported_value", "beside \"format\""},
        {"{\"pattern\":\"(?=a)\"}", "unsupported_value", "#/pattern: \"(?=a)\": '(?' groups"},
        {"{\"pattern\":\"(?<n>a)\"}", "unsupported_value", "lookaround, named groups"},
        {"{\"pattern\":\"(a)\\\\1\"}", "unsupported_value", "backreferences"},
        /* an automaton of 2^21 states (an 'a' 21 characters before the end): refused, where
         * its masks would otherwise have cost tens of ms a token */
        {"{\"pattern\":\"^[ab]*a[ab]{20}$\"}", "unsupported_value", "too complex to enforce"},
        {"{\"pattern\":\"\\\\bword\"}", "unsupported_value", "word boundary"},
        {"{\"pattern\":\"\\\\p{L}\"}", "unsupported_value", "Unicode property"},
        {"{\"pattern\":\"\\\\a\"}", "unsupported_value", "the escape \\a"},
        {"{\"pattern\":\"a^b\"}", "unsupported_value", "'^' only at the start"},
        {"{\"pattern\":\"(a$)b\"}", "unsupported_value", "'$' only at the end"},
        {"{\"pattern\":\"[]\"}", "unsupported_value", "matches nothing"},
        {"{\"pattern\":\"[^\\\\s\\\\S]\"}", "unsupported_value", "matches no character"},
        {"{\"pattern\":\"a{,3}\"}", "unsupported_value", "not a quantifier"},
        {"{\"pattern\":\"a{3,1}\"}", "unsupported_value", "out of order"},
        {"{\"pattern\":\"*a\"}", "unsupported_value", "nothing to repeat"},
        {"{\"pattern\":\"a**\"}", "unsupported_value", "nothing to repeat"},
        {"{\"pattern\":\"(a\"}", "unsupported_value", "without its ')'"},
        {"{\"pattern\":\"[z-a]\"}", "unsupported_value", "out of order"},
        {"{\"pattern\":\"\\\\ud800\"}", "unsupported_value", "lone surrogate"},
        {"{\"pattern\":\"a{2000}\"}", "unsupported_value", "above 1000"},
        {"{\"type\":\"integer\",\"minimum\":1.5,\"maximum\":1.9}", "invalid_value", "admits no value"},
        {"{\"type\":\"number\",\"exclusiveMinimum\":2,\"maximum\":2}", "invalid_value", "admits no value"},
        {"{\"type\":\"integer\",\"minimum\":1e70}", "invalid_value", "admits no value"}, /* 64 digits at most */
        {"{\"type\":\"integer\",\"enum\":[1,2],\"minimum\":3}", "invalid_value", "admits no value"},
        {"{\"enum\":[\"a\",\"b\"],\"pattern\":\"c\"}", "invalid_value", "admits no value"},
        {"{\"type\":\"array\",\"items\":{\"uniqueItems\":true}}", "unsupported_value", "#/items/uniqueItems"},
        {"{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"null\"}]}", "unsupported_value", "\"oneOf\" is not supported"},
        {"{\"not\":{}}", "unsupported_value", "\"not\""},
        {"{\"allOf\":[{\"type\":\"string\"},{\"maxLength\":2}]}", "unsupported_value", "allOf of one schema"},
        {"{\"prefixItems\":[{}]}", "unsupported_value", "prefixItems"},
        {"{\"items\":[{}]}", "unsupported_value", "tuple validation"},
        {"{\"if\":{},\"then\":{}}", "unsupported_value", "\"if\""},
        {"{\"type\":\"object\",\"anyOf\":[{\"required\":[\"a\"]}]}", "unsupported_value", "beside"},
        {"{\"$ref\":\"#/$defs/a\",\"type\":\"string\",\"$defs\":{\"a\":{}}}", "unsupported_value", "beside"},
        {"{\"$ref\":\"http://example.com/s\"}", "unsupported_value", "only \"#\""},
        {"{\"$ref\":\"#/properties/a\"}", "unsupported_value", "only \"#\""},
        {"{\"properties\":{\"a\":{\"$id\":\"x\"}}}", "unsupported_value", "$id"},
        {"{\"properties\":{\"a\\\"b\":{}}}", "unsupported_value", "needs an escape"},
        {"{\"required\":[\"a\\nb\"]}", "unsupported_value", "needs an escape"},
        {"{\"enum\":[{\"a\\\\b\":1}]}", "unsupported_value", "needs an escape"},
        {"{\"type\":\"strin\"}", "invalid_value", "\"strin\" is not a type"},
        {"{\"type\":[]}", "invalid_value", "type"},
        {"{\"type\":[\"string\",\"string\"]}", "invalid_value", "twice"},
        {"{\"enum\":[]}", "invalid_value", "enum"},
        {"{\"enum\":\"a\"}", "invalid_value", "enum"},
        {"{\"minLength\":-1}", "invalid_value", "minLength"},
        {"{\"maxItems\":1.5}", "invalid_value", "maxItems"},
        {"{\"properties\":[]}", "invalid_value", "properties"},
        {"{\"required\":\"a\"}", "invalid_value", "required"},
        {"{\"required\":[\"a\",\"a\"]}", "invalid_value", "twice"},
        {"{\"additionalProperties\":1}", "invalid_value", "additionalProperties"},
        {"{\"$ref\":\"#/$defs/missing\"}", "invalid_value", "does not resolve"},
        {"{\"$ref\":5}", "invalid_value", "$ref"},
        {"{\"$ref\":\"#/$defs/a\",\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"$ref\":\"#/$defs/a\"}}}", "invalid_value",
         "refer back"},
        {"{\"anyOf\":[{\"$ref\":\"#\"},{\"type\":\"null\"}]}", "invalid_value", "anyOf contains itself"},
        {"{\"properties\":{\"a\":5}}", "invalid_value", "#/properties/a: a schema must be"},
        {"{\"title\":5}", "invalid_value", "title"},
        /* no valid value at all */
        {"{\"type\":\"string\",\"minLength\":3,\"maxLength\":2}", "invalid_value", "admits no value"},
        {"{\"type\":\"integer\",\"enum\":[1.5,\"a\"]}", "invalid_value", "admits no value"},
        {"{\"type\":\"object\",\"required\":[\"a\"],\"additionalProperties\":false}", "invalid_value", "admits no value"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#\"}},\"required\":[\"a\"]}", "invalid_value",
         "admits no value"},
        {"{\"type\":\"array\",\"minItems\":1,\"items\":false}", "invalid_value", "admits no value"},
        {"false", "invalid_value", "admits no value"},
        /* alternatives nesting in each other: 2^depth of them at once */
        {"{\"anyOf\":[{\"type\":\"array\",\"items\":{\"$ref\":\"#\"}},{\"type\":\"array\",\"items\":{\"$ref\":\"#\"},"
         "\"maxItems\":3}]}",
         "unsupported_value", "more than 32 at once"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct srv_error err;
        memset(&err, 0, sizeof(err));
        struct srv_schema* s = compile_text(cases[i].schema, &err);
        CHECK(s == NULL && err.status == 400 && strcmp(err.code, cases[i].code) == 0 &&
                  strcmp(err.param, "schema") == 0 && strstr(err.message, cases[i].message) != NULL,
              "%s: %s (%s: %s), want %s with \"%s\"", cases[i].schema, s ? "compiled" : "refused", err.code, err.message,
              cases[i].code, cases[i].message);
        srv_schema_free(s);
    }
    /* the limits */
    struct srv_buf b = {0};
    srv_buf_puts(&b, "{\"properties\":{");
    for (int i = 0; i <= SRV_SCHEMA_MAX_PROPERTIES; i++) srv_buf_printf(&b, "%s\"p%d\":{}", i ? "," : "", i);
    srv_buf_puts(&b, "}}");
    struct srv_error err;
    struct srv_schema* s = compile_text(b.data, &err);
    CHECK(s == NULL && strcmp(err.code, "unsupported_value") == 0 && strstr(err.message, "more than 128 properties"),
          "%d properties: %s", SRV_SCHEMA_MAX_PROPERTIES + 1, err.message);
    b.len = 0;
    srv_buf_puts(&b, "{\"enum\":[");
    for (int i = 0; i <= SRV_SCHEMA_MAX_ENUM; i++) srv_buf_printf(&b, "%s%d", i ? "," : "", i);
    srv_buf_puts(&b, "]}");
    s = compile_text(b.data, &err);
    CHECK(s == NULL && strstr(err.message, "more than 128 values"), "%d enum values: %s", SRV_SCHEMA_MAX_ENUM + 1,
          err.message);
    b.len = 0;
    srv_buf_puts(&b, "{\"type\":\"array\",\"items\":");
    for (int i = 0; i < SRV_SCHEMA_MAX_NODES; i++) srv_buf_puts(&b, "{\"type\":\"array\",\"items\":");
    srv_buf_puts(&b, "{}");
    for (int i = 0; i <= SRV_SCHEMA_MAX_NODES; i++) srv_buf_puts(&b, "}");
    json_error_t je;
    json_t* deep = json_loads(b.data, 0, &je);
    s = deep ? srv_schema_compile(deep, "schema", &err) : NULL;
    CHECK(deep == NULL || (s == NULL && strstr(err.message, "more than 1024 subschemas")), "%d nested schemas: %s",
          SRV_SCHEMA_MAX_NODES + 1, deep ? err.message : je.text);
    json_decref(deep);
    /* a chain of $ref through 2,000 definitions: refused, not a deep recursion */
    b.len = 0;
    srv_buf_puts(&b, "{\"$ref\":\"#/$defs/d0\",\"$defs\":{");
    for (int i = 0; i < 2000; i++) srv_buf_printf(&b, "%s\"d%d\":{\"$ref\":\"#/$defs/d%d\"}", i ? "," : "", i, i + 1);
    srv_buf_puts(&b, ",\"d2000\":{\"type\":\"null\"}}}");
    s = compile_text(b.data, &err);
    CHECK(s == NULL && strstr(err.message, "more than 1024 subschemas"), "a chain of 2,000 $ref: %s", err.message);
    /* 200 required names: refused before they are compared */
    b.len = 0;
    srv_buf_puts(&b, "{\"required\":[");
    for (int i = 0; i < 200; i++) srv_buf_printf(&b, "%s\"r%d\"", i ? "," : "", i);
    srv_buf_puts(&b, "]}");
    s = compile_text(b.data, &err);
    CHECK(s == NULL && strstr(err.message, "required: more than 128"), "200 required names: %s", err.message);
    /* a definition's long name is not cut (one of its first 255 bytes is there too) */
    char name[301];
    memset(name, 'n', 300);
    name[300] = '\0';
    b.len = 0;
    srv_buf_printf(&b, "{\"$ref\":\"#/$defs/%s\",\"$defs\":{\"%s\":{\"type\":\"null\"},\"%.255s\":{\"type\":\"integer\"}}}",
                   name, name, name);
    s = compile_text(b.data, &err);
    CHECK(s != NULL && verdict(s, "null", 4, NULL) == 1 && verdict(s, "1", 1, NULL) == -1, "a 300-byte definition name");
    srv_schema_free(s);
    /* an enum value checked against alternatives that nest in each other: refused, not 2^40 */
    b.len = 0;
    srv_buf_puts(&b, "{\"properties\":{\"a\":{\"$ref\":\"#/$defs/d\"}},\"$defs\":{\"d\":{\"anyOf\":["
                     "{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#/$defs/d\"}}},{\"type\":\"object\","
                     "\"properties\":{\"a\":{\"$ref\":\"#/$defs/d\"}},\"required\":[]}]}},\"enum\":[");
    for (int i = 0; i < 40; i++) srv_buf_puts(&b, "{\"a\":");
    srv_buf_puts(&b, "{}");
    for (int i = 0; i < 40; i++) srv_buf_puts(&b, "}");
    srv_buf_puts(&b, "]}");
    s = compile_text(b.data, &err);
    CHECK(s == NULL && strcmp(err.code, "unsupported_value") == 0, "an enum against doubling alternatives: %s",
          err.message);
    /* at the limits: accepted */
    b.len = 0;
    srv_buf_puts(&b, "{\"type\":\"object\",\"properties\":{");
    for (int i = 0; i < SRV_SCHEMA_MAX_PROPERTIES; i++) srv_buf_printf(&b, "%s\"p%d\":{\"enum\":[%d,\"v%d\"]}", i ? "," : "", i, i, i);
    srv_buf_puts(&b, "},\"additionalProperties\":false}");
    s = compile_text(b.data, &err);
    CHECK(s != NULL && verdict(s, "{\"p127\":127,\"p0\":\"v0\"}", 22, NULL) == 1, "%d properties of enums: %s",
          SRV_SCHEMA_MAX_PROPERTIES, s ? "" : err.message);
    srv_schema_free(s);
    srv_buf_free(&b);
    /* a pattern of SRV_SCHEMA_MAX_PATTERN bytes, not one more */
    for (int extra = 0; extra < 2; extra++) {
        b.len = 0;
        srv_buf_puts(&b, "{\"type\":\"string\",\"pattern\":\"^");
        for (int i = 1; i < SRV_SCHEMA_MAX_PATTERN + extra; i++) srv_buf_puts(&b, "a");
        srv_buf_puts(&b, "\"}");
        s = compile_text(b.data, &err);
        CHECK((s != NULL) == (extra == 0) && (extra == 0 || strstr(err.message, "more than 1000 bytes")),
              "a pattern of %d bytes: %s", SRV_SCHEMA_MAX_PATTERN + extra, s ? "compiled" : err.message);
        srv_schema_free(s);
    }
    /* numbers: SRV_SCHEMA_MAX_NUMBER_DIGITS digits before the exponent, not one more; the
     * exponent SRV_SCHEMA_MAX_EXPONENT_DIGITS; a fraction's point only where a digit fits */
    s = compile_text("{\"type\":\"number\"}", &err);
    b.len = 0;
    for (int i = 0; i < SRV_SCHEMA_MAX_NUMBER_DIGITS; i++) srv_buf_puts(&b, "7");
    CHECK(verdict(s, b.data, b.len, NULL) == 1, "%d digits", SRV_SCHEMA_MAX_NUMBER_DIGITS);
    srv_buf_puts(&b, "7");
    CHECK(verdict(s, b.data, b.len, NULL) == -1, "%d digits", SRV_SCHEMA_MAX_NUMBER_DIGITS + 1);
    b.data[--b.len] = '\0';
    srv_buf_puts(&b, ".");
    CHECK(verdict(s, b.data, b.len, NULL) == -1, "no point after %d digits", SRV_SCHEMA_MAX_NUMBER_DIGITS);
    CHECK(verdict(s, "1e-0000", 7, NULL) == 1 && verdict(s, "1e-00000", 8, NULL) == -1, "4 exponent digits");
    srv_schema_free(s);
    /* exclusiveMinimum 0: "0." and 62 zeros (64 digits) leave no room for a digit: refused */
    s = compile_text("{\"type\":\"number\",\"exclusiveMinimum\":0}", &err);
    b.len = 0;
    srv_buf_puts(&b, "0.");
    for (int i = 0; i < SRV_SCHEMA_MAX_NUMBER_DIGITS - 2; i++) srv_buf_puts(&b, "0");
    CHECK(verdict(s, b.data, b.len, NULL) == 0, "0. and %d zeros, then a 1", SRV_SCHEMA_MAX_NUMBER_DIGITS - 2);
    srv_buf_puts(&b, "0");
    CHECK(verdict(s, b.data, b.len, NULL) == -1, "0. and %d zeros: no room for a digit", SRV_SCHEMA_MAX_NUMBER_DIGITS - 1);
    srv_schema_free(s);
    /* the room for one more digit: a bound's digits raised early ("96" >= 0.951) where its
     * own digits (951) do not fit; at one scale with both bounds ("13" within 1.234567..1.5) */
    static const char* const kTight[2] = {"{\"type\":\"number\",\"minimum\":0.951,\"maximum\":1.05}",
                                          "{\"type\":\"number\",\"minimum\":1.234567,\"maximum\":1.5}"};
    for (int k = 0; k < 2; k++) {
        json_t* tight = load_schema(kTight[k]);
        s = srv_schema_compile(tight, "schema", &err);
        b.len = 0;
        srv_buf_puts(&b, "0.");
        for (int i = 0; i < SRV_SCHEMA_MAX_NUMBER_DIGITS - 3; i++) srv_buf_puts(&b, "0");
        srv_buf_puts(&b, k == 0 ? "9" : "1");
        CHECK(verdict(s, b.data, b.len, NULL) == 0, "%s: %d digits, one left", kTight[k], SRV_SCHEMA_MAX_NUMBER_DIGITS - 1);
        struct srv_schema_state* st = srv_schema_state_create(s);
        srv_schema_feed(st, b.data, b.len);
        CHECK(complete_from(tight, st, &b), "%s: completed", kTight[k]);
        srv_schema_state_free(st);
        srv_schema_free(s);
        json_decref(tight);
    }
    /* an enum number needs its digits: 1.5 after "0." and 61 zeros is refused */
    s = compile_text("{\"enum\":[1.5]}", &err);
    b.len = 0;
    srv_buf_puts(&b, "0.");
    for (int i = 0; i < SRV_SCHEMA_MAX_NUMBER_DIGITS - 3; i++) srv_buf_puts(&b, "0");
    CHECK(verdict(s, b.data, b.len, NULL) == 0, "enum 1.5: room for 15 after 0. and %d zeros", SRV_SCHEMA_MAX_NUMBER_DIGITS - 3);
    srv_buf_puts(&b, "0");
    CHECK(verdict(s, b.data, b.len, NULL) == -1, "enum 1.5: no room after one more zero");
    srv_schema_free(s);
    /* a catastrophic pattern is bounded by the match limit: the bytes it cannot decide are refused */
    s = compile_text("{\"type\":\"string\",\"pattern\":\"^(a|a)*(a|a)*b$\"}", &err);
    CHECK(s != NULL, "a backtracking pattern compiles: %s", s ? "" : err.message);
    if (s != NULL) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        b.len = 0;
        srv_buf_puts(&b, "\"");
        for (int i = 0; i < 60; i++) srv_buf_puts(&b, "a");
        srv_buf_puts(&b, "c");
        size_t at = 0;
        verdict(s, b.data, b.len, &at);
        const double ms = ms_since(&t0);
        printf("  a backtracking pattern: %zu bytes of %zu accepted in %.1f ms\n", at, b.len, ms);
        CHECK(ms < 5000 && at == 61, "the match limit bounds the time (%.0f ms), 'c' refused", ms);
    }
    srv_schema_free(s);
    srv_buf_free(&b);
    /* arguments */
    CHECK(srv_schema_compile(NULL, "schema", &err) == NULL && err.status == 400, "no schema");
    CHECK(srv_schema_state_create(NULL) == NULL && !srv_schema_feed(NULL, "x", 1) && !srv_schema_complete(NULL),
          "NULL states");
}

/* ---- random instances and edits ----------------------------------------------------------- */

static unsigned g_instances, g_edits, g_agree, g_valid, g_beyond, g_completed;

/* The names a completer tries at a key: every "required" entry, then every property name. */
static void collect_names(const json_t* sch, const char** names, size_t* n, size_t cap, bool required) {
    if (json_is_array(sch)) {
        for (size_t i = 0; i < json_array_size(sch); i++) collect_names(json_array_get(sch, i), names, n, cap, required);
        return;
    }
    const char* k;
    json_t* v;
    json_object_foreach((json_t*) sch, k, v) {
        if (strcmp(k, "enum") == 0 || strcmp(k, "const") == 0) continue;
        if (required && strcmp(k, "required") == 0) {
            for (size_t i = 0; i < json_array_size(v) && *n < cap; i++) names[(*n)++] = json_string_value(json_array_get(v, i));
        }
        if (!required && strcmp(k, "properties") == 0) {
            const char* p;
            json_t* x;
            json_object_foreach(v, p, x) if (*n < cap) names[(*n)++] = p;
        }
        collect_names(v, names, n, cap, required);
    }
}

/* Whether the next string of text would be an object's key (a scan of the text: inside an
 * object, after '{' or ','). */
static bool at_key(const struct srv_buf* text) {
    char stack[SRV_JSON_MAX_DEPTH + 2];
    int depth = 0;
    char last = 0;
    bool in_string = false;
    for (size_t i = 0; i < text->len; i++) {
        const char c = text->data[i];
        if (in_string) {
            if (c == '\\') i++;
            else if (c == '"') in_string = false, last = '"';
            continue;
        }
        if (c == '"') in_string = true;
        else if ((c == '{' || c == '[') && depth < SRV_JSON_MAX_DEPTH + 1) stack[depth++] = c, last = c;
        else if ((c == '}' || c == ']') && depth > 0) depth--, last = c;
        else if (!oracle_is_ws((unsigned char) c)) last = c;
    }
    return !in_string && depth > 0 && stack[depth - 1] == '{' && (last == '{' || last == ',');
}

/* Strings of every pattern and format in the schema, JSON-escaped, each with its closing quote. */
static void collect_witnesses(const json_t* sch, struct srv_buf* w, size_t* n, size_t cap) {
    if (json_is_array(sch)) {
        for (size_t i = 0; i < json_array_size(sch); i++) collect_witnesses(json_array_get(sch, i), w, n, cap);
        return;
    }
    const char* k;
    json_t* v;
    json_object_foreach((json_t*) sch, k, v) {
        if (strcmp(k, "enum") == 0 || strcmp(k, "const") == 0) continue;
        if ((strcmp(k, "pattern") == 0 || strcmp(k, "format") == 0) && json_is_string(v)) {
            for (int r = 0; r < 8 && *n < cap; r++) {
                struct srv_buf raw = {0}, q = {0};
                if (k[0] == 'p') pattern_string_alt(json_string_value(v), &raw, r);
                else format_string(json_string_value(v), &raw);
                put_string(&q, raw.data ? raw.data : "", raw.len);
                memset(&w[*n], 0, sizeof(w[*n]));
                srv_buf_put(&w[(*n)++], q.data + 1, q.len - 1); /* without the opening quote */
                srv_buf_free(&raw);
                srv_buf_free(&q);
            }
        }
        collect_witnesses(v, w, n, cap);
    }
}

/* Whether the text ends inside a string. */
static bool in_string(const struct srv_buf* text) {
    bool in = false;
    for (size_t i = 0; i < text->len; i++) {
        if (in && text->data[i] == '\\') i++;
        else if (text->data[i] == '"') in = !in;
    }
    return in;
}

/* From the state after `text` (accepted), feeds what the recognizer takes until the text is
 * whole: at a key, a name of the schema's it takes with its quotes; in a string, a string of
 * a pattern or format of the schema's it takes with the closing quote (a pattern that may
 * match anywhere takes any byte: the preference below would never end it); else the first
 * byte it takes of a fixed preference (closing first). The text then goes to the oracle. */
static bool complete_from(const json_t* schema, struct srv_schema_state* st, struct srv_buf* text) {
    static const char prefer[] = "\"Z}],:123456789nulltruefalse.eE-+0[{\\uabcdefABCDEF/ ";
    const char* names[256];
    size_t num_names = 0;
    collect_names(schema, names, &num_names, 256, true);
    collect_names(schema, names, &num_names, 256, false);
    struct srv_buf wit[96];
    size_t num_wit = 0;
    collect_witnesses(schema, wit, &num_wit, 96);
    bool ok = false, dead = false;
    for (int steps = 0; steps < 4000; steps++) {
        if (num_wit > 0 && !srv_schema_try(st, "\"", 1) && in_string(text) && !at_key(text)) {
            /* a witness, or the shortest of their suffixes that the recognizer takes */
            size_t best = SIZE_MAX, best_from = 0;
            for (size_t i = 0; i < num_wit; i++) {
                for (size_t from = 0, next = 0; from < wit[i].len; from = next) {
                    /* whole characters from here: an escape (a surrogate pair's two), or UTF-8 */
                    const char* w = wit[i].data;
                    const unsigned char c = (unsigned char) w[from];
                    if (c == '\\') {
                        next = from + (w[from + 1] == 'u' ? 6 : 2);
                        if (w[from + 1] == 'u' && (w[from + 2] == 'd' || w[from + 2] == 'D') && strchr("89abAB", w[from + 3]))
                            next += 6;
                    } else {
                        next = from + (c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4);
                    }
                    if (wit[i].len - from < (best == SIZE_MAX ? SIZE_MAX : wit[best].len - best_from) &&
                        srv_schema_try(st, wit[i].data + from, wit[i].len - from))
                        best = i, best_from = from;
                }
            }
            if (best != SIZE_MAX) {
                srv_schema_feed(st, wit[best].data + best_from, wit[best].len - best_from);
                srv_buf_put(text, wit[best].data + best_from, wit[best].len - best_from);
                continue;
            }
        }
        if (at_key(text)) {
            char key[300];
            size_t i = 0;
            int len = 0;
            for (; i < num_names; i++) {
                len = snprintf(key, sizeof(key), "\"%s\"", names[i]);
                if (srv_schema_try(st, key, (size_t) len)) break;
            }
            if (i < num_names) {
                srv_schema_feed(st, key, (size_t) len);
                srv_buf_put(text, key, (size_t) len);
                continue;
            }
        }
        if (srv_schema_complete(st)) {
            const int o = oracle_verdict(schema, text->data ? text->data : "", text->len);
            CHECK(o != 0, "a completed text the oracle refuses: %.*s", (int) (text->len < 300 ? text->len : 300), text->data);
            if (getenv("GPTOSS_TEST_VERBOSE") && steps > 300) printf("    completed in %d steps: %.*s\n", steps, (int) (text->len < 120 ? text->len : 120), text->data);
            ok = true;
            break;
        }
        int pick = -1;
        for (const char* p = prefer; *p && pick < 0; p++)
            if (srv_schema_try(st, p, 1)) pick = (unsigned char) *p;
        for (int c = 0; c < 256 && pick < 0; c++) {
            const char ch = (char) c;
            if (srv_schema_try(st, &ch, 1)) pick = c;
        }
        if (pick < 0) {
            CHECK(false, "a dead end: no byte after %.*s", (int) (text->len < 300 ? text->len : 300), text->data);
            dead = true;
            break;
        }
        const char ch = (char) pick;
        srv_schema_feed(st, &ch, 1);
        srv_buf_put(text, &ch, 1);
    }
    CHECK(ok || dead, "no completion in 4000 steps after %.*s", (int) (text->len < 200 ? text->len : 200), text->data);
    for (size_t i = 0; i < num_wit; i++) srv_buf_free(&wit[i]);
    return ok;
}

static void test_instances(const json_t* schema, struct srv_schema* s, int index, unsigned count) {
    for (unsigned d = 0; d < count; d++) {
        size_t n = 0;
        char* text = instance(schema, &n);
        const bool top_number = text[0] == '-' || (text[0] >= '0' && text[0] <= '9'); /* may end at any digit */
        CHECK(oracle_verdict(schema, text, n) != 0, "schema %d: the generator's instance is not valid: %.200s", index, text);
        struct srv_schema_state* st = srv_schema_state_create(s);
        size_t bad = SIZE_MAX, early = SIZE_MAX;
        for (size_t i = 0; i < n && bad == SIZE_MAX; i++) {
            if (!srv_schema_feed(st, text + i, 1)) bad = i;
            else if (srv_schema_complete(st) && i + 1 < n && early == SIZE_MAX) early = i;
        }
        CHECK(bad == SIZE_MAX, "schema %d: instance %u refused at byte %zu of %zu: %.300s", index, d, bad, n, text);
        CHECK(bad != SIZE_MAX || srv_schema_complete(st), "schema %d: instance %u not complete: %.300s", index, d, text);
        CHECK(early == SIZE_MAX || top_number, "schema %d: instance %u complete at byte %zu of %zu", index, d, early, n);
        g_instances++;
        /* a random prefix completed by preference */
        srv_schema_state_free(st);
        st = srv_schema_state_create(s);
        const size_t cut = below((uint32_t) n + 1);
        struct srv_buf b = {0};
        srv_buf_put(&b, text, cut);
        if (srv_schema_feed(st, text, cut)) g_completed += complete_from(schema, st, &b);
        srv_buf_free(&b);
        srv_schema_state_free(st);
        free(text);
    }
}

static void test_edits(const json_t* schema, struct srv_schema* s, int index, unsigned count) {
    static const char interesting[] =
        "{}[]\":,\\ -+.eE0123456789tfnulrsabxyk\t\n\x01\x7f\xc0\xc2\xa9\xe0\xed\xf0\xf4\xf5\x80\xbf";
    for (unsigned d = 0; d < count; d++) {
        size_t n = 0;
        char* doc = instance(schema, &n);
        char* t = malloc(n + 16);
        memcpy(t, doc, n);
        for (uint32_t e = 1 + below(3); e > 0; e--) {
            const size_t at = below((uint32_t) n + 1);
            const char c = interesting[below(sizeof(interesting) - 1)];
            switch (below(3)) {
            case 0:
                memmove(t + at + 1, t + at, n - at);
                t[at] = c;
                n++;
                break;
            case 1:
                if (at < n) {
                    memmove(t + at, t + at + 1, n - at - 1);
                    n--;
                }
                break;
            default:
                if (at < n) t[at] = c;
                break;
            }
        }
        size_t stop = 0;
        const int ours = verdict(s, t, n, &stop);
        const int theirs = oracle_verdict(schema, t, n);
        g_edits++;
        if (theirs < 0) {
            g_beyond++;
        } else {
            CHECK((ours == 1) == (theirs == 1), "schema %d, edit %u: recognizer %d (refused at byte %zu), oracle %d on %zu bytes: %.*s",
                  index, d, ours, stop, theirs, n, (int) (n < 200 ? n : 200), t);
            g_agree += (ours == 1) == (theirs == 1);
            g_valid += theirs == 1;
        }
        /* the longest accepted prefix can still be completed */
        if (ours < 0 && below(4) == 0) {
            struct srv_schema_state* st = srv_schema_state_create(s);
            struct srv_buf b = {0};
            srv_buf_put(&b, t, stop);
            if (srv_schema_feed(st, t, stop)) g_completed += complete_from(schema, st, &b);
            srv_buf_free(&b);
            srv_schema_state_free(st);
        }
        free(t);
        free(doc);
    }
}

/* ---- bounds and patterns, differential ---------------------------------------------------- */

static const char* const kBounded[] = {
    "{\"type\":\"number\",\"minimum\":-1.5,\"exclusiveMaximum\":1e3}",
    "{\"type\":\"integer\",\"exclusiveMinimum\":-10,\"maximum\":10}",
    "{\"type\":\"number\",\"exclusiveMinimum\":0}",
    "{\"type\":\"number\",\"maximum\":-0.001,\"minimum\":-0.0011}",
    "{\"type\":\"number\",\"minimum\":0.1,\"maximum\":0.1}",
    "{\"type\":\"number\",\"exclusiveMinimum\":99.99,\"exclusiveMaximum\":100.01}",
    "{\"type\":\"integer\",\"minimum\":-0.5,\"maximum\":0.5}",
    "{\"type\":\"number\",\"minimum\":1.7976931348623157e308}",
    "{\"type\":\"number\",\"maximum\":5e-324,\"exclusiveMinimum\":0}",
    "{\"type\":\"integer\",\"minimum\":-9223372036854775807,\"maximum\":9223372036854775807}",
    "{\"type\":\"integer\",\"minimum\":19,\"exclusiveMaximum\":91}",
    "{\"type\":\"number\",\"minimum\":-99,\"maximum\":-10,\"exclusiveMaximum\":-10.5}",
    "{\"type\":[\"integer\",\"string\"],\"minimum\":3,\"maximum\":3}",
    "{\"type\":\"number\",\"exclusiveMaximum\":0.3}",
    "{\"type\":\"integer\",\"maximum\":-1}",
};

/* Every text of up to 3 bytes over the bytes of numbers, 6,000 of 4 at random, and random numbers near each bound
 * in every spelling: the recognizer's verdict is the oracle's; from the prefixes it takes
 * (some at random), the completer reaches a whole value the oracle takes. */
static void test_bounded(void) {
    static const char alphabet[] = "-0123456789.eE+";
    const uint32_t A = sizeof(alphabet) - 1;
    unsigned texts = 0, agree = 0, valid = 0, beyond = 0, prefixes = 0, completed = 0;
    for (size_t k = 0; k < sizeof(kBounded) / sizeof(kBounded[0]); k++) {
        json_t* schema = load_schema(kBounded[k]);
        struct srv_error err;
        struct srv_schema* s = srv_schema_compile(schema, "schema", &err);
        CHECK(s != NULL, "%s: %s", kBounded[k], s ? "" : err.message);
        if (s == NULL) continue;
        char t[64];
        for (uint32_t len = 1; len <= 4; len++) {
            uint32_t total = 1;
            for (uint32_t i = 0; i < len; i++) total *= A;
            for (uint32_t r = 0; r < (len < 4 ? total : 6000); r++) { /* 4 bytes: 6,000 at random */
                const uint32_t code = len < 4 ? r : below(total);
                for (uint32_t i = 0, c = code; i < len; i++, c /= A) t[i] = alphabet[c % A];
                const int ours = verdict(s, t, len, NULL), theirs = oracle_verdict(schema, t, len);
                texts++;
                if (theirs < 0) {
                    beyond++;
                    continue;
                }
                CHECK((ours == 1) == (theirs == 1), "%s: %.*s: recognizer %d, oracle %d", kBounded[k], (int) len, t, ours, theirs);
                agree += (ours == 1) == (theirs == 1);
                valid += theirs == 1;
                if (ours == 0 && below(20) == 0) {
                    prefixes++;
                    struct srv_schema_state* st = srv_schema_state_create(s);
                    struct srv_buf b = {0};
                    srv_buf_put(&b, t, len);
                    srv_schema_feed(st, t, len);
                    completed += complete_from(schema, st, &b);
                    srv_buf_free(&b);
                    srv_schema_state_free(st);
                }
            }
        }
        for (int r = 0; r < 2000; r++) {
            struct srv_buf b = {0};
            near_bound(schema, below(4) == 0, &b);
            const int ours = verdict(s, b.data, b.len, NULL), theirs = oracle_verdict(schema, b.data, b.len);
            texts++;
            if (theirs < 0) {
                beyond++;
            } else {
                CHECK((ours == 1) == (theirs == 1), "%s: %s: recognizer %d, oracle %d", kBounded[k], b.data, ours, theirs);
                agree += (ours == 1) == (theirs == 1);
                valid += theirs == 1;
            }
            if (below(4) != 0) {
                srv_buf_free(&b);
                continue;
            }
            /* a prefix of it, completed */
            const size_t cut = below((uint32_t) b.len + 1);
            struct srv_schema_state* st = srv_schema_state_create(s);
            size_t i = 0;
            while (i < cut && srv_schema_feed(st, b.data + i, 1)) i++;
            struct srv_buf c = {0};
            srv_buf_put(&c, b.data, i);
            prefixes++;
            completed += complete_from(schema, st, &c);
            srv_buf_free(&c);
            srv_schema_state_free(st);
            srv_buf_free(&b);
        }
        srv_schema_free(s);
        json_decref(schema);
    }
    printf("  bounds: %u texts (every one of up to 3 bytes, of 4 at random, and near the bounds): %u agree with the oracle (%u valid), "
           "%u beyond jansson's limits; %u of %u prefixes completed\n", texts, agree, valid, beyond, completed, prefixes);
    CHECK(valid > 1000 && agree - valid > 1000 && completed == prefixes, "bounds: both verdicts, every prefix completed");
}

static const char* const kPatterns[] = {
    "^[A-Z]{3}-\\d{2,4}$", "^(ab|c[de]*)+x?$", "[0-9]z", "^[^a-z\\s\\\\\"]{1,3}\u00e9.\\.?$", "^a\\u00e9|b\\x41$",
    "^\\S+\\s\\w*$", "^\\d+(\\.\\d{1,2})?$", "(?:foo|bar)+", "^[\\u0400-\\u04ff]+$", "^.{2}$", "^\\w+@\\w+\\.com$",
    "^\\ud83d\\ude00*[\\u00e0-\\u00ff\\t]?$", "x|^y", "^$", "^(a|b)?(c|d)?$", "^.{0,40}$", "^[^\\s,]{3,60}$",
};
static const char* const kFormatNames[] = {"date", "time", "date-time", "uuid", "ipv4"};

/* Strings of each pattern and format, and the same mutated by code points (inserted, deleted,
 * replaced): as a JSON string (escapes at random), the recognizer's verdict is the oracle's;
 * prefixes of them are completed. */
static void test_patterns(void) {
    unsigned texts = 0, agree = 0, valid = 0, prefixes = 0, completed = 0;
    const size_t np = sizeof(kPatterns) / sizeof(kPatterns[0]), nf = sizeof(kFormatNames) / sizeof(kFormatNames[0]);
    for (size_t k = 0; k < np + nf; k++) {
        struct timespec tp;
        clock_gettime(CLOCK_MONOTONIC, &tp);
        json_t* schema = json_object();
        json_object_set_new(schema, "type", json_string("string"));
        json_object_set_new(schema, k < np ? "pattern" : "format", json_string(k < np ? kPatterns[k] : kFormatNames[k - np]));
        struct srv_error err;
        struct srv_schema* s = srv_schema_compile(schema, "schema", &err);
        CHECK(s != NULL, "pattern %zu: %s", k, s ? "" : err.message);
        if (s == NULL) {
            json_decref(schema);
            continue;
        }
        for (int r = 0; r < 400; r++) {
            struct srv_buf raw = {0}, doc = {0};
            if (k < np) pattern_string(kPatterns[k], &raw);
            else format_string(kFormatNames[k - np], &raw);
            /* code points of it, mutated half the time */
            uint32_t cps[256];
            size_t n = 0;
            for (size_t i = 0; i < raw.len && n < 250;) {
                const unsigned char c = (unsigned char) raw.data[i];
                const size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
                uint32_t cp = len == 1 ? c : c & (0xFF >> (len + 1));
                for (size_t j = 1; j < len; j++) cp = cp << 6 | ((unsigned char) raw.data[i + j] & 0x3F);
                cps[n++] = cp;
                i += len;
            }
            for (uint32_t m = below(2) ? 1 + below(2) : 0; m > 0; m--) {
                const size_t at = below((uint32_t) n + 1);
                static const uint32_t kEdge[] = {'\n', '\r', 0x2028, 0x2029, 0xA0, 0xFEFF, '"', '\\', '\t', 0x85, '.', 0};
                const uint32_t cp = below(3) == 0 ? kEdge[below(sizeof(kEdge) / sizeof(kEdge[0]))]
                                    : below(2) ? random_cp_any() : n > 0 ? cps[below((uint32_t) n)] + below(3) - 1 : 'a';
                switch (below(3)) {
                case 0: memmove(cps + at + 1, cps + at, (n - at) * sizeof(uint32_t)), cps[at] = cp, n++; break;
                case 1: if (at < n) memmove(cps + at, cps + at + 1, (n - at - 1) * sizeof(uint32_t)), n--; break;
                default: if (at < n) cps[at] = cp; break;
                }
            }
            struct srv_buf str = {0};
            for (size_t i = 0; i < n; i++)
                if (!(cps[i] >= 0xD800 && cps[i] <= 0xDFFF) && cps[i] <= 0x10FFFF) put_utf8(&str, cps[i]);
            put_string(&doc, str.data ? str.data : "", str.len);
            const int ours = verdict(s, doc.data, doc.len, NULL), theirs = oracle_verdict(schema, doc.data, doc.len);
            texts++;
            CHECK(theirs >= 0 && (ours == 1) == (theirs == 1), "%s: %s: recognizer %d, oracle %d",
                  k < np ? kPatterns[k] : kFormatNames[k - np], doc.data, ours, theirs);
            agree += (ours == 1) == (theirs == 1);
            valid += theirs == 1;
            if (below(4) == 0) {
                struct srv_schema_state* st = srv_schema_state_create(s);
                const size_t cut = below((uint32_t) doc.len + 1);
                size_t i = 0;
                while (i < cut && srv_schema_feed(st, doc.data + i, 1)) i++;
                struct srv_buf c = {0};
                srv_buf_put(&c, doc.data, i);
                prefixes++;
                completed += complete_from(schema, st, &c);
                srv_buf_free(&c);
                srv_schema_state_free(st);
            }
            srv_buf_free(&str);
            srv_buf_free(&raw);
            srv_buf_free(&doc);
        }
        srv_schema_free(s);
        json_decref(schema);
        if (getenv("GPTOSS_TEST_VERBOSE")) printf("    %s: %.2f s\n", k < np ? kPatterns[k] : kFormatNames[k - np], ms_since(&tp) / 1e3);
    }
    printf("  patterns and formats: %u strings (half of them mutated): %u agree with the oracle (%u valid); %u of %u "
           "prefixes completed\n", texts, agree, valid, completed, prefixes);
    CHECK(valid > 500 && agree - valid > 500 && completed == prefixes, "patterns: both verdicts, every prefix completed");
}

/* ---- allowed tokens ------------------------------------------------------------------------ */

static bool allowed(const uint32_t* w, uint32_t id) { return w[id / 32] >> (id % 32) & 1u; }

static void test_allowed(const json_t* schema, struct srv_schema* s, int index, gptoss_tokenizer_t tok,
                         const struct srv_json_vocab* v, uint32_t V, unsigned docs) {
    uint32_t* words = malloc(v->num_words * sizeof(uint32_t));
    unsigned states = 0, sampled = 0;
    for (unsigned d = 0; d < docs; d++) {
        size_t n = 0;
        char* text = instance(schema, &n);
        struct srv_schema_state* st = srv_schema_state_create(s);
        for (size_t i = 0; i <= n; i++) {
            if (below(6) == 0 || i == n) {
                states++;
                const size_t count = srv_schema_allowed(st, v, words);
                size_t counted = 0;
                for (uint32_t w = 0; w < v->num_words; w++) counted += (size_t) __builtin_popcount(words[w]);
                CHECK(count == counted, "schema %d: the count %zu is the mask's %zu", index, count, counted);
                CHECK(count > 0 || srv_schema_complete(st), "schema %d: no token allowed, not complete, after %.*s", index,
                      (int) i, text);
                for (uint32_t id = v->num_text; id < V; id++) CHECK(!allowed(words, id), "special id %u allowed", id);
                for (int k = 0; k < 200; k++) {
                    const uint32_t id = below(v->num_text);
                    const uint32_t len = v->offsets[id + 1] - v->offsets[id];
                    const bool fits = len > 0 && srv_schema_try(st, v->bytes + v->offsets[id], len);
                    if (fits != allowed(words, id)) {
                        fprintf(stderr, "token bytes:");
                        for (uint32_t q = 0; q < len; q++) fprintf(stderr, " %02x", (unsigned char) v->bytes[v->offsets[id] + q]);
                        fprintf(stderr, "\nprefix:");
                        for (size_t q = 0; q < i; q++) fprintf(stderr, " %02x", (unsigned char) text[q]);
                        fprintf(stderr, "\n");
                    }
                    CHECK(fits == allowed(words, id), "schema %d: token %u: fits %d, mask %d after %.*s", index, id, fits,
                          !fits, (int) i, text);
                    sampled++;
                }
                if (i < n) {
                    uint32_t id = 0;
                    size_t got = 0;
                    if (gptoss_tokenizer_encode(tok, text + i, 1, &id, 1, &got) == gptoss_status_success && got == 1)
                        CHECK(allowed(words, id), "schema %d: the next byte 0x%02x is not allowed", index,
                              (unsigned char) text[i]);
                }
            }
            if (i < n && !srv_schema_feed(st, text + i, 1)) break;
        }
        srv_schema_state_free(st);
        free(text);
    }
    printf("  schema %d: allowed tokens at %u states, %u tokens checked one by one\n", index, states, sampled);
    free(words);
}

/* Random walks that draw allowed tokens (single bytes preferred, so that strings close): they
 * never run out, and what they complete the oracle takes. */
static void test_walks(const json_t* schema, struct srv_schema* s, int index, const struct srv_json_vocab* v,
                       unsigned walks, unsigned* done_out) {
    uint32_t* words = malloc(v->num_words * sizeof(uint32_t));
    uint32_t* ids = malloc(v->num_text * sizeof(uint32_t));
    unsigned done = 0;
    for (unsigned k = 0; k < walks; k++) {
        struct srv_schema_state* st = srv_schema_state_create(s);
        struct srv_buf text = {0};
        for (int step = 0; step < 120; step++) {
            const size_t count = srv_schema_allowed(st, v, words);
            const bool complete = srv_schema_complete(st);
            if (count == 0 || (complete && below(3) == 0)) {
                CHECK(complete, "schema %d: a walk ran out of tokens after %.*s", index, (int) text.len, text.data);
                if (complete) {
                    CHECK(oracle_verdict(schema, text.data ? text.data : "", text.len) != 0,
                          "schema %d: a walk's text the oracle refuses: %.*s", index, (int) text.len, text.data);
                    done++;
                }
                break;
            }
            uint32_t n = 0;
            const bool short_only = below(4) != 0;
            for (uint32_t w = 0; w < v->num_words; w++) {
                for (uint32_t bits = words[w]; bits != 0; bits &= bits - 1) {
                    const uint32_t id = w * 32 + (uint32_t) __builtin_ctz(bits);
                    if (!short_only || v->offsets[id + 1] - v->offsets[id] == 1) ids[n++] = id;
                }
            }
            if (n == 0) continue;
            const uint32_t id = ids[below(n)];
            const uint32_t len = v->offsets[id + 1] - v->offsets[id];
            CHECK(srv_schema_feed(st, v->bytes + v->offsets[id], len), "schema %d: an allowed token refused", index);
            srv_buf_put(&text, v->bytes + v->offsets[id], len);
        }
        srv_buf_free(&text);
        srv_schema_state_free(st);
    }
    *done_out += done;
    free(ids);
    free(words);
}

/* ---- the chat path, the cost ------------------------------------------------------------- */

static uint32_t special(gptoss_tokenizer_t tok, enum gptoss_special_token which) {
    uint32_t id = UINT32_MAX;
    gptoss_tokenizer_get_special_token_id(tok, which, &id);
    return id;
}

static void feed_text(struct srv_output* o, gptoss_tokenizer_t tok, const char* t, uint32_t V) {
    uint32_t ids[64];
    size_t n = 0;
    gptoss_tokenizer_encode(tok, t, strlen(t), ids, 64, &n);
    for (size_t i = 0; i < n; i++) srv_output_feed(o, ids[i], NULL, V);
}

static void test_chat(gptoss_tokenizer_t tok, const struct srv_json_vocab* v, uint32_t V) {
    struct srv_error err;
    struct srv_request* req = srv_request_new(srv_api_chat);
    req->params.schema = compile_text("{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\"}},\"required\":[\"n\"],"
                                      "\"additionalProperties\":false}",
                                      &err);
    uint32_t* w = malloc(v->num_words * sizeof(uint32_t));
    const uint32_t ret = special(tok, gptoss_special_token_return);
    struct srv_output* o = srv_output_create(tok, req, 0);
    CHECK(srv_output_json_mask(o, v, w) == 0, "nothing constrained before a message");
    srv_output_feed(o, special(tok, gptoss_special_token_channel), NULL, V);
    feed_text(o, tok, "analysis", V);
    srv_output_feed(o, special(tok, gptoss_special_token_message), NULL, V);
    feed_text(o, tok, "Think freely.", V);
    CHECK(srv_output_json_mask(o, v, w) == 0, "the analysis is free");
    srv_output_feed(o, special(tok, gptoss_special_token_end), NULL, V);
    srv_output_feed(o, special(tok, gptoss_special_token_start), NULL, V);
    feed_text(o, tok, "assistant", V);
    srv_output_feed(o, special(tok, gptoss_special_token_channel), NULL, V);
    feed_text(o, tok, "final", V);
    srv_output_feed(o, special(tok, gptoss_special_token_message), NULL, V);
    const char* doc = "{\"n\":12}";
    for (const char* p = doc; *p; p++) {
        const size_t n = srv_output_json_mask(o, v, w);
        uint32_t id = 0;
        size_t got = 0;
        gptoss_tokenizer_encode(tok, p, 1, &id, 1, &got);
        CHECK(n > 0 && allowed(w, id) && !allowed(w, ret), "before '%c': allowed (%zu tokens), no <|return|>", *p, n);
        CHECK(!srv_output_feed(o, id, NULL, V), "'%c' does not stop", *p);
    }
    size_t n = srv_output_json_mask(o, v, w);
    CHECK(n == 1 && allowed(w, ret), "the value is whole: only <|return|> (%zu allowed)", n);
    CHECK(srv_output_feed(o, ret, NULL, V), "<|return|> stops");
    srv_output_finish(o);
    srv_output_free(o);
    srv_request_finish_choice(req, 0);
    const struct srv_item* last = &req->result.items[req->result.num_items - 1];
    CHECK(strcmp(last->text.data, doc) == 0, "the final message is '%s'", last->text.data);
    srv_request_release(req);
    /* completions: the whole text, a number at the top: its digits and <|return|> */
    req = srv_request_new(srv_api_completions);
    req->params.schema = compile_text("{\"type\":\"integer\"}", &err);
    o = srv_output_create(tok, req, 0);
    feed_text(o, tok, "4", V);
    n = srv_output_json_mask(o, v, w);
    uint32_t five = 0;
    size_t got = 0;
    gptoss_tokenizer_encode(tok, "5", 1, &five, 1, &got);
    CHECK(allowed(w, ret) && allowed(w, five) && n > 2, "after \"4\": digits and <|return|> (%zu)", n);
    srv_output_free(o);
    srv_request_release(req);
    free(w);
}

/* The mask's cost on a realistic schema (an order of a shop), at the token boundaries of its
 * instances (each tokenized by the vocabulary), next to JSON mode's on the same texts. */
static double ms_since(const struct timespec* t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double) (t1.tv_sec - t0->tv_sec) * 1e3 + (double) (t1.tv_nsec - t0->tv_nsec) * 1e-6;
}

static void measure_one(gptoss_tokenizer_t tok, const struct srv_json_vocab* v, const char* name, const char* order);

static void measure(gptoss_tokenizer_t tok, const struct srv_json_vocab* v) {
    static const char* const order =
        "{\"type\":\"object\",\"properties\":{\"order_id\":{\"type\":\"string\",\"maxLength\":20},\"customer\":{\"type\":"
        "\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"email\":{\"type\":\"string\",\"maxLength\":64},"
        "\"tier\":{\"enum\":[\"free\",\"pro\",\"enterprise\"]}},\"required\":[\"name\",\"email\",\"tier\"],"
        "\"additionalProperties\":false},\"items\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":10,\"items\":{\"type\":"
        "\"object\",\"properties\":{\"sku\":{\"type\":\"string\"},\"quantity\":{\"type\":\"integer\"},\"price\":{\"type\":"
        "\"number\"},\"gift\":{\"type\":\"boolean\"}},\"required\":[\"sku\",\"quantity\",\"price\"],\"additionalProperties\":"
        "false}},\"note\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"null\"}]},\"status\":{\"enum\":[\"pending\",\"paid\","
        "\"shipped\",\"cancelled\"]}},\"required\":[\"order_id\",\"customer\",\"items\",\"status\"],"
        "\"additionalProperties\":false}";
    measure_one(tok, v, "an order schema", order);
    /* the same order with constraints of this commit: a pattern on the order id and the sku, formats, bounds */
    static const char* const constrained =
        "{\"type\":\"object\",\"properties\":{\"order_id\":{\"type\":\"string\",\"pattern\":\"^ORD-[0-9]{6}$\"},"
        "\"placed\":{\"type\":\"string\",\"format\":\"date-time\"},\"customer\":{\"type\":\"object\",\"properties\":"
        "{\"name\":{\"type\":\"string\"},\"email\":{\"type\":\"string\",\"pattern\":\"^[a-z0-9._-]+@[a-z0-9-]+(\\\\.[a-z]+)+$\"},"
        "\"id\":{\"type\":\"string\",\"format\":\"uuid\"}},\"required\":[\"name\",\"email\",\"id\"],"
        "\"additionalProperties\":false},\"items\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":10,\"items\":"
        "{\"type\":\"object\",\"properties\":{\"sku\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{2,4}-\\\\d{3,5}$\"},"
        "\"quantity\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100},\"price\":{\"type\":\"number\","
        "\"exclusiveMinimum\":0,\"maximum\":10000}},\"required\":[\"sku\",\"quantity\",\"price\"],"
        "\"additionalProperties\":false}},\"note\":{\"type\":\"string\",\"pattern\":\"[.!?]$\"}},\"required\":"
        "[\"order_id\",\"placed\",\"customer\",\"items\"],\"additionalProperties\":false}";
    measure_one(tok, v, "the order with patterns, formats and bounds", constrained);
}

static void measure_one(gptoss_tokenizer_t tok, const struct srv_json_vocab* v, const char* name, const char* order) {
    json_t* schema = load_schema(order);
    struct srv_error err;
    struct srv_schema* s = srv_schema_compile(schema, "schema", &err);
    uint32_t* words = malloc(v->num_words * sizeof(uint32_t));
    uint32_t* ids = malloc(4096 * sizeof(uint32_t));
    double total = 0, worst = 0, json_total = 0, json_worst = 0;
    unsigned tokens = 0;
    for (int d = 0; d < 12; d++) {
        size_t n = 0, num_ids = 0;
        char* text = instance(schema, &n);
        if (gptoss_tokenizer_encode(tok, text, n, ids, 4096, &num_ids) != gptoss_status_success) num_ids = 0;
        struct srv_schema_state* st = srv_schema_state_create(s);
        struct srv_json j;
        srv_json_init(&j);
        for (size_t i = 0; i <= num_ids; i++) {
            struct timespec t0;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            srv_schema_allowed(st, v, words);
            double ms = ms_since(&t0);
            total += ms;
            worst = ms > worst ? ms : worst;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            srv_json_allowed(&j, v, words);
            ms = ms_since(&t0);
            json_total += ms;
            json_worst = ms > json_worst ? ms : json_worst;
            tokens++;
            if (i == num_ids) break;
            const uint32_t len = v->offsets[ids[i] + 1] - v->offsets[ids[i]];
            CHECK(srv_schema_feed(st, v->bytes + v->offsets[ids[i]], len) && srv_json_feed(&j, v->bytes + v->offsets[ids[i]], len),
                  "the order's token %zu", i);
        }
        srv_schema_state_free(st);
        free(text);
    }
    printf("  the mask on %s: %.3f ms a token on average, %.3f ms at most; JSON mode on the same "
           "texts: %.3f and %.3f ms (%u tokens, one core)\n", name, total / tokens, worst, json_total / tokens, json_worst, tokens);
    free(ids);
    free(words);
    srv_schema_free(s);
    json_decref(schema);
}

int main(int argc, char** argv) {
    const char* seed_env = getenv("GPTOSS_TEST_SEED");
    g_rng = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t) time(NULL);
    printf("seed %llu (GPTOSS_TEST_SEED)\n", (unsigned long long) g_rng);
    const unsigned scale = argc > 1 ? (unsigned) atoi(argv[1]) : 1; /* more documents: a longer run */
    test_hand_cases();
    test_refusals();
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    test_bounded();
    printf("  (%.1f s)\n", ms_since(&t0) / 1e3);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    test_patterns();
    printf("  (%.1f s)\n", ms_since(&t0) / 1e3);
    gptoss_backend_t b = NULL;
    gptoss_model_t m = NULL;
    gptoss_tokenizer_t tok = NULL;
    uint32_t V = 0;
    if (gptoss_backend_create_cpu(1, &b) != gptoss_status_success ||
        gptoss_model_create_random("tiny", 1, 1, b, &m) != gptoss_status_success ||
        gptoss_model_get_tokenizer(m, &tok) != gptoss_status_success ||
        gptoss_tokenizer_get_num_tokens(tok, &V) != gptoss_status_success) {
        fprintf(stderr, "set-up: %s\n", gptoss_last_error());
        return 1;
    }
    struct srv_json_vocab* v = srv_json_vocab_create(tok, V);
    CHECK(v != NULL, "vocabulary");
    unsigned walked = 0;
    const char* only = getenv("GPTOSS_TEST_SCHEMA"); /* one schema only (its index): a quicker run */
    for (size_t i = 0; i < NUM_SCHEMAS && v != NULL; i++) {
        if (only != NULL && (size_t) atoi(only) != i) continue;
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        json_t* schema = load_schema(kSchemas[i]);
        struct srv_error err;
        struct srv_schema* s = schema ? srv_schema_compile(schema, "schema", &err) : NULL;
        CHECK(s != NULL, "schema %zu: %s", i, s ? "" : err.message);
        if (s != NULL) {
            test_instances(schema, s, (int) i, 300 * scale);
            test_edits(schema, s, (int) i, 1500 * scale);
            test_allowed(schema, s, (int) i, tok, v, V, 3 * scale);
            test_walks(schema, s, (int) i, v, 6 * scale, &walked);
        }
        srv_schema_free(s);
        json_decref(schema);
        printf("  schema %zu: %.1f s\n", i, ms_since(&t0) / 1e3);
    }
    printf("  %u instances taken whole; %u edited texts: %u agree with the oracle (%u valid), %u beyond jansson's "
           "limits; %u prefixes completed; %u walks completed\n",
           g_instances, g_edits, g_agree, g_valid, g_beyond, g_completed, walked);
    if (only == NULL) {
        CHECK(g_valid > 0 && g_valid < g_agree, "edits must give both valid and invalid texts (%u of %u)", g_valid, g_agree);
        CHECK(walked > 0, "some walks complete");
    }
    if (v != NULL) {
        test_chat(tok, v, V);
        measure(tok, v);
    }
    srv_json_vocab_free(v);
    gptoss_tokenizer_release(tok);
    gptoss_model_release(m);
    gptoss_backend_release(b);
    return finish();
}
