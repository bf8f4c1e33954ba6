/* JSON mode (response_format {"type": "json_object"}): a recognizer of JSON text byte by
 * byte, and the tokens it allows next.
 *
 * The recognizer accepts a byte when the bytes so far can still begin a JSON object (RFC
 * 8259: objects, arrays, strings with their escapes and valid UTF-8, numbers, true, false,
 * null, whitespace between tokens), and says when one is complete. The text is the object
 * alone: it starts with '{' and nothing follows the closing '}' (the caller then allows the
 * end of the message). Nesting is limited to SRV_JSON_MAX_DEPTH containers and whitespace
 * to SRV_JSON_MAX_WS bytes in a row, so that a weak model cannot pad forever where a grammar
 * allows it (as llama.cpp's JSON grammar bounds its whitespace). It is a prefix check, not a
 * parser: it keeps no values, so its state is a few bytes and a copy tries a token.
 *
 * The allowed tokens of a state are the text tokens whose bytes it accepts one after the
 * other: a walk of the vocabulary's byte trie that leaves a subtree at its first refused
 * byte (each state copied once a trie node, not once a token); inside a string, "plain"
 * tokens (printable bytes that are neither '"' nor '\', whole UTF-8 characters) are
 * allowed without trying them, and only the trie of the others is walked. */
#include <stdlib.h>
#include <string.h>

#include "server.h"

enum {
    J_TOP,       /* before the object: '{' */
    J_VALUE,     /* a value (after ':' or ',' in an array) */
    J_VALUE_END, /* after '[': a value or ']' */
    J_KEY_END,   /* after '{': a key or '}' */
    J_KEY,       /* after ',' in an object: a key */
    J_COLON,     /* after a key */
    J_AFTER,     /* after a value in an array or object: ',' or its closing bracket */
    J_STRING,    /* in a string (key: an object's key) */
    J_ESCAPE,    /* after '\' */
    J_HEX,       /* in \uXXXX: sub digits left */
    J_NUMBER,    /* sub: the number's part */
    J_LITERAL,   /* sub: literal (high nibble) and position (low nibble) */
    J_DONE,      /* the object is complete: nothing more */
};

enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

static const char* const kLiterals[3] = {"true", "false", "null"};

void srv_json_init(struct srv_json* j) { memset(j, 0, sizeof(*j)); }

bool srv_json_complete(const struct srv_json* j) { return j->state == J_DONE; }

static bool is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static bool is_hex(uint8_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

static bool end_value(struct srv_json* j) {
    j->state = j->depth == 0 ? J_DONE : J_AFTER;
    return true;
}

static bool open_container(struct srv_json* j, uint8_t c) {
    if (j->depth >= SRV_JSON_MAX_DEPTH) return false;
    j->stack[j->depth++] = c;
    j->state = c == '{' ? J_KEY_END : J_VALUE_END;
    return true;
}

static bool close_container(struct srv_json* j, uint8_t c) {
    if (j->depth == 0 || j->stack[j->depth - 1] != (c == '}' ? '{' : '[')) return false;
    j->depth--;
    return end_value(j);
}

static bool start_string(struct srv_json* j, bool key) {
    j->state = J_STRING;
    j->key = key;
    j->u8left = 0;
    return true;
}

static bool start_value(struct srv_json* j, uint8_t c) {
    switch (c) {
    case '{':
    case '[': return open_container(j, c);
    case '"': return start_string(j, false);
    case '-': j->state = J_NUMBER; j->sub = N_MINUS; return true;
    case '0': j->state = J_NUMBER; j->sub = N_ZERO; return true;
    case 't':
    case 'f':
    case 'n':
        j->state = J_LITERAL;
        j->sub = (uint8_t) ((c == 't' ? 0 : c == 'f' ? 1 : 2) << 4 | 1);
        return true;
    default:
        if (c >= '1' && c <= '9') {
            j->state = J_NUMBER;
            j->sub = N_INT;
            return true;
        }
        return false;
    }
}

/* A byte of a string: its end, an escape, or content (valid UTF-8, no control bytes). */
static bool string_byte(struct srv_json* j, uint8_t c) {
    if (j->u8left > 0) {
        if (c < j->u8lo || c > j->u8hi) return false;
        j->u8left--;
        j->u8lo = 0x80;
        j->u8hi = 0xBF;
        return true;
    }
    if (c == '"') {
        if (j->key) {
            j->state = J_COLON;
            return true;
        }
        return end_value(j);
    }
    if (c == '\\') {
        j->state = J_ESCAPE;
        return true;
    }
    if (c < 0x20) return false;
    if (c < 0x80) return true;
    return srv_utf8_lead(c, &j->u8left, &j->u8lo, &j->u8hi);
}

bool srv_utf8_lead(uint8_t c, uint8_t* left, uint8_t* lo, uint8_t* hi) {
    *lo = 0x80;
    *hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        *left = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        *left = 2;
        if (c == 0xE0) *lo = 0xA0; /* no overlong forms */
        if (c == 0xED) *hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        *left = 3;
        if (c == 0xF0) *lo = 0x90;
        if (c == 0xF4) *hi = 0x8F; /* at most U+10FFFF */
    } else {
        return false; /* a continuation byte, or C0, C1, F5-FF */
    }
    return true;
}

static bool step(struct srv_json* j, uint8_t c);

static bool number_byte(struct srv_json* j, uint8_t c) {
    switch (j->sub) {
    case N_MINUS:
        if (c == '0') j->sub = N_ZERO;
        else if (c >= '1' && c <= '9') j->sub = N_INT;
        else return false;
        return true;
    case N_DOT:
        if (!is_digit(c)) return false;
        j->sub = N_FRAC;
        return true;
    case N_E:
        if (c == '+' || c == '-') j->sub = N_ESIGN;
        else if (is_digit(c)) j->sub = N_EXP;
        else return false;
        return true;
    case N_ESIGN:
        if (!is_digit(c)) return false;
        j->sub = N_EXP;
        return true;
    default: /* N_ZERO, N_INT, N_FRAC, N_EXP: the number may end here */
        if (is_digit(c) && j->sub != N_ZERO) return true;
        if (c == '.' && (j->sub == N_ZERO || j->sub == N_INT)) {
            j->sub = N_DOT;
            return true;
        }
        if ((c == 'e' || c == 'E') && j->sub != N_EXP) {
            j->sub = N_E;
            return true;
        }
        end_value(j); /* the byte belongs to what follows the number (never the top level) */
        return step(j, c);
    }
}

static bool step(struct srv_json* j, uint8_t c) {
    switch (j->state) {
    case J_TOP: return c == '{' && open_container(j, c);
    case J_DONE: return false;
    case J_VALUE: return is_ws(c) || start_value(j, c);
    case J_VALUE_END: return is_ws(c) || (c == ']' ? close_container(j, c) : start_value(j, c));
    case J_KEY_END:
        if (c == '}') return close_container(j, c);
        return is_ws(c) || (c == '"' && start_string(j, true));
    case J_KEY: return is_ws(c) || (c == '"' && start_string(j, true));
    case J_COLON:
        if (c == ':') {
            j->state = J_VALUE;
            return true;
        }
        return is_ws(c);
    case J_AFTER:
        if (is_ws(c)) return true;
        if (c == ',') {
            j->state = j->stack[j->depth - 1] == '{' ? J_KEY : J_VALUE;
            return true;
        }
        return (c == '}' || c == ']') && close_container(j, c);
    case J_STRING: return string_byte(j, c);
    case J_ESCAPE:
        if (c == 'u') {
            j->state = J_HEX;
            j->sub = 4;
            return true;
        }
        if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' || c == 't') {
            j->state = J_STRING;
            return true;
        }
        return false;
    case J_HEX:
        if (!is_hex(c)) return false;
        if (--j->sub == 0) j->state = J_STRING;
        return true;
    case J_NUMBER: return number_byte(j, c);
    case J_LITERAL: {
        const char* lit = kLiterals[j->sub >> 4];
        const uint8_t pos = j->sub & 15u;
        if (c != (uint8_t) lit[pos]) return false;
        if (lit[pos + 1] == '\0') return end_value(j);
        j->sub++;
        return true;
    }
    default: return false;
    }
}

bool srv_json_feed_byte(struct srv_json* j, uint8_t c) {
    const bool ws = is_ws(c) && j->state != J_STRING && j->state != J_ESCAPE && j->state != J_HEX;
    if (ws && j->wsrun >= SRV_JSON_MAX_WS) return false;
    if (!step(j, c)) return false;
    j->wsrun = ws ? (uint8_t) (j->wsrun + 1) : 0;
    return true;
}

bool srv_json_feed(struct srv_json* j, const void* bytes, size_t n) {
    const uint8_t* b = bytes;
    for (size_t i = 0; i < n; i++) {
        if (!srv_json_feed_byte(j, b[i])) return false;
    }
    return true;
}

/* ---- the vocabulary ------------------------------------------------------------------ */

/* plain_short, plain_long: the plain tokens by their code points (cps[id]; by_cps: counts) */
static bool plain_by_length(struct srv_json_vocab* v, const uint8_t* cps, const uint32_t* by_cps) {
    v->plain_short = calloc((size_t) (SRV_PLAIN_SHORT + 1) * v->num_words, sizeof(uint32_t));
    uint32_t start[257] = {0}; /* plain_long: by code points, from SRV_PLAIN_SHORT + 1 */
    for (int k = SRV_PLAIN_SHORT + 1; k < 256; k++) start[k + 1] = start[k] + by_cps[k];
    v->num_plain_long = start[256];
    v->plain_long = malloc((v->num_plain_long > 0 ? v->num_plain_long : 1) * sizeof(uint32_t));
    v->plain_long_cps = malloc(v->num_plain_long > 0 ? v->num_plain_long : 1);
    if (v->plain_short == NULL || v->plain_long == NULL || v->plain_long_cps == NULL) return false;
    for (uint32_t id = 0; id < v->num_text; id++) {
        const uint32_t k = cps[id];
        if (k == 0) continue; /* not plain */
        if (k > SRV_PLAIN_SHORT) {
            v->plain_long_cps[start[k]] = (uint8_t) k;
            v->plain_long[start[k]++] = id;
            continue;
        }
        for (uint32_t m = k; m <= SRV_PLAIN_SHORT; m++) v->plain_short[(size_t) m * v->num_words + id / 32] |= 1u << (id % 32);
    }
    return true;
}

static int compare_tokens(const void* a, const void* b, void* arg) {
    const struct srv_json_vocab* v = arg;
    const uint32_t x = *(const uint32_t*) a, y = *(const uint32_t*) b;
    const uint32_t nx = v->offsets[x + 1] - v->offsets[x], ny = v->offsets[y + 1] - v->offsets[y];
    const int c = memcmp(v->bytes + v->offsets[x], v->bytes + v->offsets[y], nx < ny ? nx : ny);
    if (c != 0) return c;
    return nx != ny ? (nx < ny ? -1 : 1) : (x < y ? -1 : x > y);
}

/* The trie of the non-empty text tokens with plain == want_plain (or all when want_all), built
 * from the tokens sorted by their bytes: each token shares the path of its common prefix with
 * the one before. */
static bool build_trie(const struct srv_json_vocab* v, bool want_all, bool want_plain, struct srv_trie* t) {
    uint32_t n = 0;
    size_t total = 0;
    for (uint32_t id = 0; id < v->num_text; id++) {
        const bool plain = v->plain[id / 32] >> (id % 32) & 1u;
        if (v->offsets[id + 1] > v->offsets[id] && (want_all || plain == want_plain)) {
            n++;
            total += v->offsets[id + 1] - v->offsets[id];
        }
    }
    t->ids = malloc((n > 0 ? n : 1) * sizeof(uint32_t));
    t->nodes = malloc((total + 1) * sizeof(struct srv_trie_node));
    uint32_t* path = malloc(((size_t) v->max_bytes + 1) * sizeof(uint32_t));
    if (t->ids == NULL || t->nodes == NULL || path == NULL) {
        free(path);
        return false;
    }
    n = 0;
    for (uint32_t id = 0; id < v->num_text; id++) {
        const bool plain = v->plain[id / 32] >> (id % 32) & 1u;
        if (v->offsets[id + 1] > v->offsets[id] && (want_all || plain == want_plain)) t->ids[n++] = id;
    }
    qsort_r(t->ids, n, sizeof(uint32_t), compare_tokens, (void*) v);
    memset(&t->nodes[0], 0, sizeof(t->nodes[0]));
    t->num_nodes = 1;
    path[0] = 0;
    uint32_t depth = 0; /* path[0, depth]: the nodes of the previous token's bytes */
    const uint8_t* prev = NULL;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t* b = v->bytes + v->offsets[t->ids[i]];
        const uint32_t len = v->offsets[t->ids[i] + 1] - v->offsets[t->ids[i]];
        uint32_t common = 0;
        while (common < depth && common < len && prev[common] == b[common]) common++;
        for (; depth > common; depth--) t->nodes[path[depth]].end = t->num_nodes;
        for (; depth < len; depth++) {
            struct srv_trie_node* node = &t->nodes[t->num_nodes];
            memset(node, 0, sizeof(*node));
            node->byte = b[depth];
            path[depth + 1] = t->num_nodes++;
        }
        struct srv_trie_node* last = &t->nodes[path[len]];
        if (last->num_ids == 0) last->first_id = i; /* tokens of equal bytes are next to each other */
        last->num_ids++;
        prev = b;
    }
    for (; depth > 0; depth--) t->nodes[path[depth]].end = t->num_nodes;
    t->nodes[0].end = t->num_nodes;
    free(path);
    struct srv_trie_node* fit = realloc(t->nodes, (size_t) t->num_nodes * sizeof(struct srv_trie_node));
    if (fit != NULL) t->nodes = fit;
    return true;
}

static bool build_tries(struct srv_json_vocab* v) {
    return build_trie(v, true, false, &v->trie) && build_trie(v, false, false, &v->trie_other);
}

struct srv_json_vocab* srv_json_vocab_create(gptoss_tokenizer_t tokenizer, uint32_t vocabulary_size) {
    uint32_t num_text = 0;
    if (gptoss_tokenizer_get_num_text_tokens(tokenizer, &num_text) != gptoss_status_success) return NULL;
    if (num_text > vocabulary_size) num_text = vocabulary_size;
    struct srv_json_vocab* v = calloc(1, sizeof(*v));
    if (v == NULL) return NULL;
    v->vocabulary_size = vocabulary_size;
    v->num_words = (vocabulary_size + 31) / 32;
    v->num_text = num_text;
    v->offsets = malloc(((size_t) num_text + 1) * sizeof(uint32_t));
    v->plain = calloc(v->num_words, sizeof(uint32_t));
    size_t total = 0;
    for (uint32_t id = 0; id < num_text; id++) {
        const void* p = NULL;
        size_t n = 0;
        if (gptoss_tokenizer_decode(tokenizer, id, &p, &n) == gptoss_status_success) total += n;
    }
    v->bytes = malloc(total > 0 ? total : 1);
    if (v->offsets == NULL || v->plain == NULL || v->bytes == NULL) {
        srv_json_vocab_free(v);
        return NULL;
    }
    uint32_t by_cps[256] = {0}; /* plain tokens by code points (capped at 255) */
    uint8_t* cps = calloc(num_text > 0 ? num_text : 1, 1);
    if (cps == NULL) {
        srv_json_vocab_free(v);
        return NULL;
    }
    size_t at = 0;
    for (uint32_t id = 0; id < num_text; id++) {
        const void* p = NULL;
        size_t n = 0;
        if (gptoss_tokenizer_decode(tokenizer, id, &p, &n) != gptoss_status_success || at + n > total) n = 0;
        v->offsets[id] = (uint32_t) at;
        memcpy(v->bytes + at, p, n);
        at += n;
        if (n > v->max_bytes) v->max_bytes = (uint32_t) n;
        if (n == 0) continue;
        /* plain: printable, neither '"' nor '\', whole UTF-8 characters (a fresh string state
         * accepts it and ends with no character open) */
        struct srv_json s;
        srv_json_init(&s);
        s.state = J_STRING;
        bool plain = true;
        uint32_t chars = 0;
        for (size_t i = 0; i < n && plain; i++) {
            const uint8_t c = v->bytes[v->offsets[id] + i];
            chars += (c & 0xC0) != 0x80;
            plain = c != '"' && c != '\\' && string_byte(&s, c);
        }
        if (plain && s.u8left == 0) {
            v->plain[id / 32] |= 1u << (id % 32);
            cps[id] = (uint8_t) (chars < 255 ? chars : 255);
            by_cps[cps[id]]++;
            if (cps[id] > v->max_plain_cps) v->max_plain_cps = cps[id];
        }
    }
    v->offsets[num_text] = (uint32_t) at;
    const bool ok = plain_by_length(v, cps, by_cps) && build_tries(v);
    free(cps);
    if (!ok) {
        srv_json_vocab_free(v);
        return NULL;
    }
    return v;
}

void srv_json_vocab_free(struct srv_json_vocab* v) {
    if (v == NULL) return;
    free(v->offsets);
    free(v->plain);
    free(v->plain_short);
    free(v->plain_long);
    free(v->plain_long_cps);
    free(v->bytes);
    free(v->trie.nodes);
    free(v->trie.ids);
    free(v->trie_other.nodes);
    free(v->trie_other.ids);
    free(v);
}

/* The tokens of trie `tr` below node `node` whose bytes j (the state after node's bytes)
 * accepts, into words: a walk that leaves a subtree at its first refused byte. Returns
 * their number. The recursion is as deep as the longest token. */
static size_t walk(const struct srv_trie* tr, uint32_t node, const struct srv_json* j, uint32_t* words) {
    const struct srv_trie_node* t = tr->nodes;
    size_t n = 0;
    for (uint32_t ch = node + 1; ch < t[node].end; ch = t[ch].end) {
        struct srv_json x = *j;
        if (!srv_json_feed_byte(&x, t[ch].byte)) continue;
        for (uint32_t i = 0; i < t[ch].num_ids; i++) {
            const uint32_t id = tr->ids[t[ch].first_id + i];
            words[id / 32] |= 1u << (id % 32);
        }
        n += t[ch].num_ids + walk(tr, ch, &x, words);
    }
    return n;
}

size_t srv_json_allowed(const struct srv_json* j, const struct srv_json_vocab* v, uint32_t* words) {
    /* inside a string the plain tokens are allowed at once and only the others are walked */
    const bool plain_ok = j->state == J_STRING && j->u8left == 0;
    size_t n = 0;
    if (plain_ok) {
        memcpy(words, v->plain, v->num_words * sizeof(uint32_t));
        for (uint32_t w = 0; w < v->num_words; w++) n += (size_t) __builtin_popcount(words[w]);
    } else {
        memset(words, 0, v->num_words * sizeof(uint32_t));
    }
    return n + walk(plain_ok ? &v->trie_other : &v->trie, 0, j, words);
}
