/* Small strict JSON reader; see json.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

struct parser {
    const char* s;
    size_t n, i;
    char* err;
    size_t err_size;
    int failed;
};

static void fail(struct parser* p, const char* fmt, ...) {
    if (p->failed) return;
    p->failed = 1;
    if (p->err == NULL || p->err_size == 0) return;
    int k = snprintf(p->err, p->err_size, "JSON error at byte %zu: ", p->i);
    if (k < 0 || (size_t) k >= p->err_size) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + k, p->err_size - (size_t) k, fmt, ap);
    va_end(ap);
}

static void skip_ws(struct parser* p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r')) p->i++;
}

static void value_free(struct gptoss_json* v) {
    if (v == NULL) return;
    free(v->string);
    if (v->type == gptoss_json_array) {
        for (size_t i = 0; i < v->length; i++) value_free(&v->items[i]);
        free(v->items);
    } else if (v->type == gptoss_json_object) {
        for (size_t i = 0; i < v->length; i++) {
            free(v->members[i].key);
            value_free(&v->members[i].value);
        }
        free(v->members);
    }
}

void gptoss_json_free(struct gptoss_json* value) {
    value_free(value);
    free(value);
}

static int hex4(struct parser* p, unsigned* out) {
    if (p->n - p->i < 4) return 0;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = p->s[p->i + k];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned) (c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned) (c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned) (c - 'A' + 10);
        else return 0;
    }
    p->i += 4;
    *out = v;
    return 1;
}

/* p->s[p->i] == '"'. Unescaped output is never longer than the input. */
static int parse_string(struct parser* p, char** out, size_t* out_len) {
    p->i++;
    size_t start = p->i;
    size_t end = start;
    while (end < p->n && p->s[end] != '"') {
        if (p->s[end] == '\\') end++;
        end++;
    }
    if (end >= p->n) {
        fail(p, "unterminated string");
        return 0;
    }
    char* buf = malloc(end - start + 1);
    if (buf == NULL) {
        fail(p, "out of memory");
        return 0;
    }
    size_t k = 0;
    while (p->i < end) {
        unsigned char c = (unsigned char) p->s[p->i];
        if (c < 0x20) {
            fail(p, "control character 0x%02X in string", c);
            goto bad;
        }
        if (c != '\\') {
            buf[k++] = (char) c;
            p->i++;
            continue;
        }
        p->i++;
        char e = p->s[p->i++];
        switch (e) {
            case '"': buf[k++] = '"'; break;
            case '\\': buf[k++] = '\\'; break;
            case '/': buf[k++] = '/'; break;
            case 'b': buf[k++] = '\b'; break;
            case 'f': buf[k++] = '\f'; break;
            case 'n': buf[k++] = '\n'; break;
            case 'r': buf[k++] = '\r'; break;
            case 't': buf[k++] = '\t'; break;
            case 'u': {
                unsigned cp;
                if (!hex4(p, &cp)) {
                    fail(p, "bad \\u escape");
                    goto bad;
                }
                if (cp >= 0xD800 && cp < 0xDC00) {
                    unsigned lo;
                    if (p->i + 2 <= end && p->s[p->i] == '\\' && p->s[p->i + 1] == 'u') {
                        p->i += 2;
                        if (!hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                            fail(p, "bad low surrogate");
                            goto bad;
                        }
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    } else {
                        fail(p, "unpaired high surrogate");
                        goto bad;
                    }
                } else if (cp >= 0xDC00 && cp < 0xE000) {
                    fail(p, "unpaired low surrogate");
                    goto bad;
                }
                /* \uXXXX is 6 input bytes (12 for a pair): UTF-8 is at most 3 (4) bytes */
                if (cp < 0x80) {
                    buf[k++] = (char) cp;
                } else if (cp < 0x800) {
                    buf[k++] = (char) (0xC0 | (cp >> 6));
                    buf[k++] = (char) (0x80 | (cp & 0x3F));
                } else if (cp < 0x10000) {
                    buf[k++] = (char) (0xE0 | (cp >> 12));
                    buf[k++] = (char) (0x80 | ((cp >> 6) & 0x3F));
                    buf[k++] = (char) (0x80 | (cp & 0x3F));
                } else {
                    buf[k++] = (char) (0xF0 | (cp >> 18));
                    buf[k++] = (char) (0x80 | ((cp >> 12) & 0x3F));
                    buf[k++] = (char) (0x80 | ((cp >> 6) & 0x3F));
                    buf[k++] = (char) (0x80 | (cp & 0x3F));
                }
                break;
            }
            default:
                fail(p, "bad escape \\%c", e);
                goto bad;
        }
    }
    p->i = end + 1;
    buf[k] = '\0';
    *out = buf;
    *out_len = k;
    return 1;
bad:
    free(buf);
    return 0;
}

static int parse_number(struct parser* p, struct gptoss_json* v) {
    size_t start = p->i;
    int integral = 1, negative = 0;
    if (p->i < p->n && p->s[p->i] == '-') {
        negative = 1;
        p->i++;
    }
    if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') {
        fail(p, "bad number");
        return 0;
    }
    if (p->s[p->i] == '0') {
        p->i++;
    } else {
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && p->s[p->i] == '.') {
        integral = 0;
        p->i++;
        size_t d = p->i;
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
        if (p->i == d) {
            fail(p, "bad number fraction");
            return 0;
        }
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        integral = 0;
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        size_t d = p->i;
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
        if (p->i == d) {
            fail(p, "bad number exponent");
            return 0;
        }
    }
    size_t len = p->i - start;
    if (len > 64) {
        fail(p, "number too long");
        return 0;
    }
    char tmp[72];
    memcpy(tmp, p->s + start, len);
    tmp[len] = '\0';
    v->type = gptoss_json_number;
    v->number = strtod(tmp, NULL);
    if (integral && !negative) {
        uint64_t u = 0;
        int ovf = 0;
        for (size_t k = 0; k < len; k++) {
            if (__builtin_mul_overflow(u, 10, &u) || __builtin_add_overflow(u, (uint64_t) (tmp[k] - '0'), &u)) ovf = 1;
        }
        if (!ovf) {
            v->is_uint = 1;
            v->uint_value = u;
        }
    }
    return 1;
}

static int match_literal(struct parser* p, const char* lit) {
    size_t n = strlen(lit);
    if (p->n - p->i >= n && memcmp(p->s + p->i, lit, n) == 0) {
        p->i += n;
        return 1;
    }
    fail(p, "unexpected character '%c'", p->s[p->i]);
    return 0;
}

static int parse_value(struct parser* p, struct gptoss_json* v, int depth) {
    memset(v, 0, sizeof(*v));
    skip_ws(p);
    if (p->i >= p->n) {
        fail(p, "unexpected end of input");
        return 0;
    }
    if (depth > GPTOSS_JSON_MAX_DEPTH) {
        fail(p, "nesting deeper than %d", GPTOSS_JSON_MAX_DEPTH);
        return 0;
    }
    char c = p->s[p->i];
    if (c == '{') {
        v->type = gptoss_json_object;
        p->i++;
        size_t cap = 0;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == '}') {
            p->i++;
            return 1;
        }
        for (;;) {
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != '"') {
                fail(p, "expected a string key");
                return 0;
            }
            if (v->length == cap) {
                size_t nc = cap ? cap * 2 : 8;
                struct gptoss_json_member* m = realloc(v->members, nc * sizeof(*m));
                if (m == NULL) {
                    fail(p, "out of memory");
                    return 0;
                }
                v->members = m;
                cap = nc;
            }
            struct gptoss_json_member* m = &v->members[v->length];
            memset(m, 0, sizeof(*m));
            if (!parse_string(p, &m->key, &m->key_length)) return 0;
            v->length++; /* counted now so that value_free frees the key */
            skip_ws(p);
            if (p->i >= p->n || p->s[p->i] != ':') {
                fail(p, "expected ':'");
                return 0;
            }
            p->i++;
            if (!parse_value(p, &m->value, depth + 1)) return 0;
            skip_ws(p);
            if (p->i < p->n && p->s[p->i] == ',') {
                p->i++;
                continue;
            }
            if (p->i < p->n && p->s[p->i] == '}') {
                p->i++;
                return 1;
            }
            fail(p, "expected ',' or '}'");
            return 0;
        }
    }
    if (c == '[') {
        v->type = gptoss_json_array;
        p->i++;
        size_t cap = 0;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ']') {
            p->i++;
            return 1;
        }
        for (;;) {
            if (v->length == cap) {
                size_t nc = cap ? cap * 2 : 8;
                struct gptoss_json* it = realloc(v->items, nc * sizeof(*it));
                if (it == NULL) {
                    fail(p, "out of memory");
                    return 0;
                }
                v->items = it;
                cap = nc;
            }
            int ok = parse_value(p, &v->items[v->length], depth + 1);
            v->length++;
            if (!ok) return 0;
            skip_ws(p);
            if (p->i < p->n && p->s[p->i] == ',') {
                p->i++;
                continue;
            }
            if (p->i < p->n && p->s[p->i] == ']') {
                p->i++;
                return 1;
            }
            fail(p, "expected ',' or ']'");
            return 0;
        }
    }
    if (c == '"') {
        v->type = gptoss_json_string;
        return parse_string(p, &v->string, &v->length);
    }
    if (c == 't') {
        v->type = gptoss_json_bool;
        v->boolean = 1;
        return match_literal(p, "true");
    }
    if (c == 'f') {
        v->type = gptoss_json_bool;
        return match_literal(p, "false");
    }
    if (c == 'n') {
        v->type = gptoss_json_null;
        return match_literal(p, "null");
    }
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p, v);
    fail(p, "unexpected character 0x%02X", (unsigned char) c);
    return 0;
}

int gptoss_json_parse(const char* text, size_t size, struct gptoss_json** out, char* err, size_t err_size) {
    struct parser p = {text, size, 0, err, err_size, 0};
    if (err != NULL && err_size > 0) err[0] = '\0';
    if (text == NULL || out == NULL) {
        fail(&p, "NULL argument");
        return -1;
    }
    struct gptoss_json* v = calloc(1, sizeof(*v));
    if (v == NULL) {
        fail(&p, "out of memory");
        return -1;
    }
    if (!parse_value(&p, v, 0)) {
        gptoss_json_free(v);
        return -1;
    }
    skip_ws(&p);
    if (p.i != p.n) {
        fail(&p, "trailing data after the value");
        gptoss_json_free(v);
        return -1;
    }
    *out = v;
    return 0;
}

const struct gptoss_json* gptoss_json_get(const struct gptoss_json* object, const char* key) {
    if (object == NULL || object->type != gptoss_json_object || key == NULL) return NULL;
    const size_t n = strlen(key);
    const struct gptoss_json* found = NULL;
    for (size_t i = 0; i < object->length; i++) {
        if (object->members[i].key_length == n && memcmp(object->members[i].key, key, n) == 0) {
            found = &object->members[i].value;
        }
    }
    return found;
}
