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
 * other. The vocabulary is kept by first byte, so only tokens whose first byte the state
 * accepts are tried; inside a string, "plain" tokens (printable bytes that are neither '"'
 * nor '\', whole UTF-8 characters) are allowed without trying them. */
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
    /* the first byte of a multi-byte character: how many follow, and the range of the next */
    j->u8lo = 0x80;
    j->u8hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        j->u8left = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        j->u8left = 2;
        if (c == 0xE0) j->u8lo = 0xA0; /* no overlong forms */
        if (c == 0xED) j->u8hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        j->u8left = 3;
        if (c == 0xF0) j->u8lo = 0x90;
        if (c == 0xF4) j->u8hi = 0x8F; /* at most U+10FFFF */
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
    v->by_first = malloc((size_t) num_text * sizeof(uint32_t));
    v->plain = calloc(v->num_words, sizeof(uint32_t));
    size_t total = 0;
    for (uint32_t id = 0; id < num_text; id++) {
        const void* p = NULL;
        size_t n = 0;
        if (gptoss_tokenizer_decode(tokenizer, id, &p, &n) == gptoss_status_success) total += n;
    }
    v->bytes = malloc(total > 0 ? total : 1);
    if (v->offsets == NULL || v->by_first == NULL || v->plain == NULL || v->bytes == NULL) {
        srv_json_vocab_free(v);
        return NULL;
    }
    uint32_t count[256] = {0};
    size_t at = 0;
    for (uint32_t id = 0; id < num_text; id++) {
        const void* p = NULL;
        size_t n = 0;
        if (gptoss_tokenizer_decode(tokenizer, id, &p, &n) != gptoss_status_success || at + n > total) n = 0;
        v->offsets[id] = (uint32_t) at;
        memcpy(v->bytes + at, p, n);
        at += n;
        if (n == 0) continue;
        count[v->bytes[v->offsets[id]]]++;
        /* plain: printable, neither '"' nor '\', whole UTF-8 characters (a fresh string state
         * accepts it and ends with no character open) */
        struct srv_json s;
        srv_json_init(&s);
        s.state = J_STRING;
        bool plain = true;
        for (size_t i = 0; i < n && plain; i++) {
            const uint8_t c = v->bytes[v->offsets[id] + i];
            plain = c != '"' && c != '\\' && string_byte(&s, c);
        }
        if (plain && s.u8left == 0) v->plain[id / 32] |= 1u << (id % 32);
    }
    v->offsets[num_text] = (uint32_t) at;
    for (int b = 0; b < 256; b++) v->first_start[b + 1] = v->first_start[b] + count[b];
    uint32_t fill[256];
    memcpy(fill, v->first_start, sizeof(fill));
    for (uint32_t id = 0; id < num_text; id++) {
        if (v->offsets[id + 1] > v->offsets[id]) v->by_first[fill[v->bytes[v->offsets[id]]]++] = id;
    }
    return v;
}

void srv_json_vocab_free(struct srv_json_vocab* v) {
    if (v == NULL) return;
    free(v->offsets);
    free(v->by_first);
    free(v->plain);
    free(v->bytes);
    free(v);
}

size_t srv_json_allowed(const struct srv_json* j, const struct srv_json_vocab* v, uint32_t* words) {
    const bool plain_ok = j->state == J_STRING && j->u8left == 0;
    if (plain_ok) memcpy(words, v->plain, v->num_words * sizeof(uint32_t));
    else memset(words, 0, v->num_words * sizeof(uint32_t));
    size_t n = 0;
    if (plain_ok) {
        for (uint32_t w = 0; w < v->num_words; w++) n += (size_t) __builtin_popcount(words[w]);
    }
    for (int b = 0; b < 256; b++) {
        struct srv_json first = *j;
        if (v->first_start[b] == v->first_start[b + 1] || !srv_json_feed_byte(&first, (uint8_t) b)) continue;
        for (uint32_t k = v->first_start[b]; k < v->first_start[b + 1]; k++) {
            const uint32_t id = v->by_first[k];
            if (plain_ok && (v->plain[id / 32] >> (id % 32) & 1u)) continue; /* counted above */
            struct srv_json t = first;
            const uint32_t end = v->offsets[id + 1];
            bool ok = true;
            for (uint32_t i = v->offsets[id] + 1; i < end && ok; i++) ok = srv_json_feed_byte(&t, v->bytes[i]);
            if (ok) {
                words[id / 32] |= 1u << (id % 32);
                n++;
            }
        }
    }
    return n;
}
