/*
 * The harmony format: requests -> harmony conversation -> prompt ids; completion ids ->
 * messages. The reference is openai-harmony (see harmony.h); where this file does
 * something odd (a description written twice, one invalid UTF-8 sequence replaced per
 * token) it is because openai-harmony does, and the tests compare against it.
 */
#include "harmony.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* o200k_harmony: ids past the text tokens are special up to this one (tiktoken's table). */
#define HARMONY_LAST_TOKEN_ID 201088u
/* Deeper JSON schemas are refused (openai-harmony's JSON reader stops at 128 levels). */
#define HARMONY_MAX_SCHEMA_DEPTH 128

/* ---- errors ---------------------------------------------------------------------------- */

static enum gptoss_status fail(struct gptoss_harmony_error* err, enum gptoss_status status, const char* param,
                               const char* fmt, ...) {
    if (err != NULL) {
        snprintf(err->param, sizeof(err->param), "%s", param != NULL ? param : "");
        char what[sizeof(err->message) - sizeof(err->param) - 2];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        if (param != NULL && param[0] != '\0')
            snprintf(err->message, sizeof(err->message), "%s: %s", param, what);
        else
            snprintf(err->message, sizeof(err->message), "%s", what);
    }
    return status;
}

static enum gptoss_status fail_oom(struct gptoss_harmony_error* err) {
    return fail(err, gptoss_status_insufficient_memory, NULL, "out of memory");
}

/* JSON paths of request values: "messages[3].tool_call_id". */
struct path {
    char s[160];
};

static struct path path_at(const struct path* base, const char* fmt, ...) {
    struct path p;
    size_t n = 0;
    if (base != NULL) n = (size_t) snprintf(p.s, sizeof(p.s), "%s", base->s);
    if (n >= sizeof(p.s)) n = sizeof(p.s) - 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p.s + n, sizeof(p.s) - n, fmt, ap);
    va_end(ap);
    if (n == 0 && p.s[0] == '.') memmove(p.s, p.s + 1, strlen(p.s)); /* a top-level member */
    return p;
}

/* ---- growable buffers ---------------------------------------------------------------- */

struct sbuf {
    char* p;
    size_t n, cap;
    bool oom;
};

static void sb_put(struct sbuf* b, const char* s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char* p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_puts(struct sbuf* b, const char* s) { sb_put(b, s, strlen(s)); }

static void sb_printf(struct sbuf* b, const char* fmt, ...) {
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t) n < sizeof(tmp)) sb_put(b, tmp, (size_t) n);
    else b->oom = true; /* only short numeric formats are printed this way */
}

static void sb_clear(struct sbuf* b) {
    b->n = 0;
    if (b->p) b->p[0] = '\0';
}

static void sb_free(struct sbuf* b) {
    free(b->p);
    *b = (struct sbuf){0};
}

struct tvec {
    uint32_t* p;
    size_t n, cap;
    bool oom;
};

static bool tv_reserve(struct tvec* v, size_t extra) {
    if (v->oom) return false;
    if (v->n + extra <= v->cap) return true;
    size_t cap = v->cap ? v->cap : 256;
    while (cap < v->n + extra) cap *= 2;
    uint32_t* p = realloc(v->p, cap * sizeof(uint32_t));
    if (p == NULL) {
        v->oom = true;
        return false;
    }
    v->p = p;
    v->cap = cap;
    return true;
}

static void tv_push(struct tvec* v, uint32_t t) {
    if (tv_reserve(v, 1)) v->p[v->n++] = t;
}

/* ---- the tokenizer's harmony tokens -------------------------------------------------- */

struct enc {
    gptoss_tokenizer_t tok;
    uint32_t num_text_tokens;
    uint32_t start, message, end, ret, call, channel, constrain;
};

static enum gptoss_status enc_init(struct enc* e, gptoss_tokenizer_t tok, struct gptoss_harmony_error* err) {
    static const struct {
        enum gptoss_special_token type;
        size_t offset;
        const char* name;
    } specials[] = {
        {gptoss_special_token_start, offsetof(struct enc, start), "<|start|>"},
        {gptoss_special_token_message, offsetof(struct enc, message), "<|message|>"},
        {gptoss_special_token_end, offsetof(struct enc, end), "<|end|>"},
        {gptoss_special_token_return, offsetof(struct enc, ret), "<|return|>"},
        {gptoss_special_token_call, offsetof(struct enc, call), "<|call|>"},
        {gptoss_special_token_channel, offsetof(struct enc, channel), "<|channel|>"},
        {gptoss_special_token_constrain, offsetof(struct enc, constrain), "<|constrain|>"},
    };
    e->tok = tok;
    if (gptoss_tokenizer_get_num_text_tokens(tok, &e->num_text_tokens) != gptoss_status_success)
        return fail(err, gptoss_status_invalid_argument, NULL, "tokenizer: %s", gptoss_last_error());
    for (size_t i = 0; i < sizeof(specials) / sizeof(specials[0]); i++) {
        uint32_t* id = (uint32_t*) ((char*) e + specials[i].offset);
        if (gptoss_tokenizer_get_special_token_id(tok, specials[i].type, id) != gptoss_status_success ||
            *id == UINT32_MAX)
            return fail(err, gptoss_status_invalid_argument, NULL, "tokenizer: no %s token", specials[i].name);
    }
    return gptoss_status_success;
}

/* Appends the ids of ordinary text (one tiktoken encode_ordinary call: pieces encoded
 * separately never merge across their boundary, which the reference relies on). */
static enum gptoss_status enc_text(const struct enc* e, struct tvec* out, const char* s, size_t n,
                                   struct gptoss_harmony_error* err) {
    if (n == 0) return gptoss_status_success;
    for (;;) {
        size_t count = 0;
        size_t room = out->cap - out->n;
        enum gptoss_status st = gptoss_tokenizer_encode(e->tok, s, n, out->p ? out->p + out->n : NULL, room, &count);
        if (st == gptoss_status_success) {
            out->n += count;
            return st;
        }
        if (st != gptoss_status_insufficient_memory || count <= room)
            return fail(err, st, NULL, "tokenizer: %s", gptoss_last_error());
        if (!tv_reserve(out, count)) return fail_oom(err);
    }
}

static enum gptoss_status enc_str(const struct enc* e, struct tvec* out, const char* s,
                                  struct gptoss_harmony_error* err) {
    return enc_text(e, out, s, strlen(s), err);
}

/* ---- JSON values as serde_json prints them ------------------------------------------- */
/* The reference writes schema defaults with Rust's serde_json (compact, keys in order,
 * lowercase \u00xx escapes, floats in ryu's shortest form): jansson's printer differs. */

static void serde_string(struct sbuf* b, const char* s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    sb_put(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        const char* esc = NULL;
        char u[7];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) {
                memcpy(u, "\\u00", 4);
                u[4] = hex[c >> 4];
                u[5] = hex[c & 15];
                u[6] = '\0';
                esc = u;
            }
        }
        if (esc != NULL) {
            sb_put(b, s + i - run, run);
            run = 0;
            sb_puts(b, esc);
        } else {
            run++;
        }
    }
    sb_put(b, s + n - run, run);
    sb_put(b, "\"", 1);
}

/* The shortest decimal digits that read back as v (the correctly rounded ones of the
 * smallest length, which is what ryu finds), in ryu's layout: "1.0", "0.001", "1e20",
 * "1.5e-7". */
static void serde_real(struct sbuf* b, double v) {
    if (v != v || v - v != 0) { /* NaN or infinite: serde_json writes null */
        sb_puts(b, "null");
        return;
    }
    if (v == 0) {
        sb_puts(b, signbit(v) ? "-0.0" : "0.0");
        return;
    }
    char buf[40];
    for (int prec = 0; prec < 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    /* buf: [-]d[.ddd]e[+-]xx */
    const char* p = buf;
    if (*p == '-') {
        sb_put(b, "-", 1);
        p++;
    }
    char digits[20];
    int len = 0;
    for (; *p != 'e'; p++)
        if (*p != '.') digits[len++] = *p;
    while (len > 1 && digits[len - 1] == '0') len--;
    int exp10 = atoi(p + 1); /* v = d.ddd * 10^exp10 */
    int k = exp10 - (len - 1), kk = exp10 + 1;
    if (k >= 0 && kk <= 16) {
        sb_put(b, digits, (size_t) len);
        for (int i = 0; i < k; i++) sb_put(b, "0", 1);
        sb_puts(b, ".0");
    } else if (kk > 0 && kk <= 16) {
        sb_put(b, digits, (size_t) kk);
        sb_put(b, ".", 1);
        sb_put(b, digits + kk, (size_t) (len - kk));
    } else if (kk > -5 && kk <= 0) {
        sb_puts(b, "0.");
        for (int i = 0; i < -kk; i++) sb_put(b, "0", 1);
        sb_put(b, digits, (size_t) len);
    } else {
        sb_put(b, digits, 1);
        if (len > 1) {
            sb_put(b, ".", 1);
            sb_put(b, digits + 1, (size_t) (len - 1));
        }
        sb_printf(b, "e%d", kk - 1);
    }
}

static void serde_value(struct sbuf* b, const json_t* v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char* key;
        json_t* item;
        bool first = true;
        sb_put(b, "{", 1);
        json_object_foreach((json_t*) v, key, item) {
            if (!first) sb_put(b, ",", 1);
            first = false;
            serde_string(b, key, strlen(key));
            sb_put(b, ":", 1);
            serde_value(b, item);
        }
        sb_put(b, "}", 1);
        break;
    }
    case JSON_ARRAY:
        sb_put(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) sb_put(b, ",", 1);
            serde_value(b, json_array_get(v, i));
        }
        sb_put(b, "]", 1);
        break;
    case JSON_STRING: serde_string(b, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER: sb_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
    case JSON_REAL: serde_real(b, json_real_value(v)); break;
    case JSON_TRUE: sb_puts(b, "true"); break;
    case JSON_FALSE: sb_puts(b, "false"); break;
    case JSON_NULL: sb_puts(b, "null"); break;
    }
}

/* ---- JSON schema -> harmony's TypeScript-like types ---------------------------------- */
/* Follows openai-harmony's json_schema_to_typescript rule for rule. */

static const json_t* jget(const json_t* obj, const char* key) {
    return json_is_object(obj) ? json_object_get(obj, key) : NULL;
}

static const char* jstr(const json_t* obj, const char* key) { return json_string_value(jget(obj, key)); }

static void sb_json_str(struct sbuf* b, const json_t* s) { sb_put(b, json_string_value(s), json_string_length(s)); }

static bool is_enum(const json_t* schema) {
    const json_t* e = jget(schema, "enum");
    return json_is_array(e) && json_array_size(e) > 0;
}

static bool is_nullable(const json_t* schema) { return json_is_true(jget(schema, "nullable")); }

/* "default: ..." text. Strings of non-enum schemas are quoted without escaping; strings
 * of enum schemas are bare, except in top-level oneOf variants (then JSON). */
static void ts_default(struct sbuf* b, const json_t* def, const json_t* schema, bool bare_enum_string) {
    sb_puts(b, "default: ");
    if (json_is_string(def) && !is_enum(schema)) {
        sb_put(b, "\"", 1);
        sb_json_str(b, def);
        sb_put(b, "\"", 1);
    } else if (json_is_string(def) && bare_enum_string) {
        sb_json_str(b, def);
    } else {
        serde_value(b, def);
    }
}

static void ts_type(struct sbuf* out, const json_t* schema, const char* indent, int depth, bool* too_deep);

/* ts_type of `schema` into a fresh buffer, with " | null" added for nullable schemas
 * whose type text does not already mention null. */
static void ts_variant(struct sbuf* out, const json_t* schema, const char* indent, size_t extra_indent, int depth,
                       bool* too_deep) {
    struct sbuf ind = {0}, t = {0};
    sb_puts(&ind, indent);
    for (size_t i = 0; i < extra_indent; i++) sb_put(&ind, " ", 1);
    ts_type(&t, schema, ind.p ? ind.p : "", depth + 1, too_deep);
    if (ind.oom || t.oom) out->oom = true;
    if (t.p != NULL) sb_put(out, t.p, t.n);
    if (is_nullable(schema) && (t.p == NULL || strstr(t.p, "null") == NULL)) sb_puts(out, " | null");
    sb_free(&ind);
    sb_free(&t);
}

static void ts_object(struct sbuf* out, const json_t* schema, const char* indent, int depth, bool* too_deep) {
    const char* desc = jstr(schema, "description");
    if (desc != NULL) {
        sb_puts(out, indent);
        sb_puts(out, "// ");
        sb_json_str(out, jget(schema, "description"));
        sb_put(out, "\n", 1);
    }
    sb_puts(out, "{\n");
    const json_t* props = jget(schema, "properties");
    const json_t* required = jget(schema, "required");
    const char* key;
    json_t* val;
    if (json_is_object(props)) json_object_foreach((json_t*) props, key, val) {
        bool is_required = false;
        for (size_t i = 0; json_is_array(required) && i < json_array_size(required); i++) {
            const char* r = json_string_value(json_array_get(required, i));
            if (r != NULL && strcmp(r, key) == 0) is_required = true;
        }
        const json_t* title = jget(val, "title");
        if (json_is_string(title)) {
            sb_puts(out, indent);
            sb_puts(out, "// ");
            sb_json_str(out, title);
            sb_put(out, "\n", 1);
            sb_puts(out, indent);
            sb_puts(out, "//\n");
        }
        const json_t* one_of = jget(val, "oneOf");
        const json_t* vdesc = jget(val, "description");
        if (one_of == NULL && json_is_string(vdesc)) {
            sb_puts(out, indent);
            sb_puts(out, "// ");
            sb_json_str(out, vdesc);
            sb_put(out, "\n", 1);
        }
        const json_t* examples = jget(val, "examples");
        if (json_is_array(examples) && json_array_size(examples) > 0) {
            sb_puts(out, indent);
            sb_puts(out, "// Examples:\n");
            for (size_t i = 0; i < json_array_size(examples); i++) {
                const json_t* ex = json_array_get(examples, i);
                if (!json_is_string(ex)) continue;
                sb_puts(out, indent);
                sb_puts(out, "// - \"");
                sb_json_str(out, ex);
                sb_puts(out, "\"\n");
            }
        }
        const json_t* def = jget(val, "default");
        if (json_is_array(one_of)) {
            const char* prop_desc = json_string_value(vdesc);
            const char* first_desc = jstr(json_array_get(one_of, 0), "description");
            bool skip_desc = prop_desc != NULL && first_desc != NULL && strcmp(prop_desc, first_desc) == 0;
            bool desc_above = false;
            if (!skip_desc && prop_desc != NULL) {
                sb_puts(out, indent);
                sb_puts(out, "// ");
                sb_json_str(out, vdesc);
                sb_put(out, "\n", 1);
                desc_above = true;
            }
            if (def != NULL) {
                sb_puts(out, indent);
                sb_puts(out, "// ");
                ts_default(out, def, val, true);
                sb_put(out, "\n", 1);
            }
            sb_puts(out, indent);
            sb_puts(out, key);
            sb_puts(out, is_required ? ":\n" : "?:\n");
            for (size_t i = 0; i < json_array_size(one_of); i++) {
                const json_t* variant = json_array_get(one_of, i);
                sb_puts(out, indent);
                sb_puts(out, " | ");
                ts_variant(out, variant, indent, 3, depth, too_deep);
                const json_t* var_desc = jget(variant, "description");
                const json_t* var_def = jget(variant, "default");
                bool with_desc = !(i == 0 && desc_above) && json_is_string(var_desc) &&
                                 (prop_desc == NULL || strcmp(prop_desc, json_string_value(var_desc)) != 0);
                if (with_desc || var_def != NULL) sb_puts(out, " // ");
                if (with_desc) sb_json_str(out, var_desc);
                if (with_desc && var_def != NULL) sb_put(out, " ", 1);
                if (var_def != NULL) ts_default(out, var_def, variant, true);
                sb_put(out, "\n", 1);
            }
            sb_puts(out, indent);
            sb_puts(out, ",\n");
            continue;
        }
        sb_puts(out, indent);
        sb_puts(out, key);
        sb_puts(out, is_required ? ": " : "?: ");
        ts_variant(out, val, indent, 4, depth, too_deep);
        sb_put(out, ",", 1);
        if (one_of == NULL && def != NULL) {
            sb_puts(out, " // ");
            ts_default(out, def, val, true);
        }
        sb_put(out, "\n", 1);
    }
    sb_puts(out, indent);
    sb_put(out, "}", 1);
}

static void ts_type(struct sbuf* out, const json_t* schema, const char* indent, int depth, bool* too_deep) {
    if (depth > HARMONY_MAX_SCHEMA_DEPTH) {
        *too_deep = true;
        return;
    }
    const json_t* one_of = jget(schema, "oneOf");
    if (json_is_array(one_of)) {
        for (size_t i = 0; i < json_array_size(one_of); i++) {
            const json_t* variant = json_array_get(one_of, i);
            sb_put(out, "\n", 1);
            sb_puts(out, indent);
            sb_puts(out, " | ");
            ts_variant(out, variant, indent, 3, depth, too_deep);
            const json_t* var_desc = jget(variant, "description");
            const json_t* var_def = jget(variant, "default");
            if (json_is_string(var_desc) || var_def != NULL) sb_puts(out, " // ");
            if (json_is_string(var_desc)) sb_json_str(out, var_desc);
            if (json_is_string(var_desc) && var_def != NULL) sb_put(out, " ", 1);
            if (var_def != NULL) ts_default(out, var_def, variant, false);
        }
        return;
    }
    const json_t* type = jget(schema, "type");
    if (json_is_array(type)) {
        bool any = false;
        for (size_t i = 0; i < json_array_size(type); i++) {
            const char* t = json_string_value(json_array_get(type, i));
            if (t == NULL) continue;
            if (any) sb_puts(out, " | ");
            sb_puts(out, strcmp(t, "integer") == 0 ? "number" : t);
            any = true;
        }
        if (any) return;
    }
    const char* t = json_string_value(type);
    if (t == NULL) {
        sb_puts(out, "any");
    } else if (strcmp(t, "object") == 0) {
        ts_object(out, schema, indent, depth, too_deep);
    } else if (strcmp(t, "string") == 0) {
        const json_t* values = jget(schema, "enum");
        bool any = false;
        for (size_t i = 0; json_is_array(values) && i < json_array_size(values); i++) {
            const json_t* v = json_array_get(values, i);
            if (!json_is_string(v)) continue;
            if (any) sb_puts(out, " | ");
            sb_put(out, "\"", 1);
            sb_json_str(out, v);
            sb_put(out, "\"", 1);
            any = true;
        }
        if (!any) sb_puts(out, "string");
    } else if (strcmp(t, "number") == 0 || strcmp(t, "integer") == 0) {
        sb_puts(out, "number");
    } else if (strcmp(t, "boolean") == 0) {
        sb_puts(out, "boolean");
    } else if (strcmp(t, "array") == 0) {
        const json_t* items = jget(schema, "items");
        if (items != NULL) {
            ts_type(out, items, indent, depth + 1, too_deep);
            sb_puts(out, "[]");
        } else {
            sb_puts(out, "Array<any>");
        }
    } else {
        sb_puts(out, "any");
    }
}

/* ---- harmony conversation -> tokens ------------------------------------------------- */

struct render {
    const struct enc* e;
    struct tvec* out;
    struct sbuf text; /* scratch for the system/developer texts */
    bool has_function_tools;
    struct gptoss_harmony_error* err;
};

/* A member that must be a string when present: *s is NULL when absent or null. */
static enum gptoss_status opt_string(const json_t* obj, const char* key, const struct path* at, const json_t** s,
                                     struct gptoss_harmony_error* err) {
    const json_t* v = json_object_get(obj, key);
    *s = NULL;
    if (v == NULL || json_is_null(v)) return gptoss_status_success;
    if (!json_is_string(v))
        return fail(err, gptoss_status_invalid_argument, path_at(at, ".%s", key).s, "must be a string or null");
    *s = v;
    return gptoss_status_success;
}

static enum gptoss_status req_string(const json_t* obj, const char* key, const struct path* at, const json_t** s,
                                     struct gptoss_harmony_error* err) {
    const json_t* v = json_object_get(obj, key);
    *s = NULL;
    if (!json_is_string(v))
        return fail(err, gptoss_status_invalid_argument, path_at(at, ".%s", key).s,
                    v == NULL ? "missing (a string is required)" : "must be a string");
    *s = v;
    return gptoss_status_success;
}

/* Rust's str::lines: split at '\n' (a '\r' before it is dropped); no empty last line. */
static void put_lines(struct sbuf* b, const json_t* text, const char* prefix, bool* first_part) {
    const char* s = json_string_value(text);
    size_t n = json_string_length(text), pos = 0;
    while (pos < n) {
        const char* nl = memchr(s + pos, '\n', n - pos);
        size_t end = nl ? (size_t) (nl - s) : n, len = end - pos;
        if (nl && len > 0 && s[end - 1] == '\r') len--;
        if (!*first_part) sb_put(b, "\n", 1);
        *first_part = false;
        sb_puts(b, prefix);
        sb_put(b, s + pos, len);
        pos = nl ? end + 1 : n;
    }
}

static int cmp_keys(const void* a, const void* b) { return strcmp(*(const char* const*) a, *(const char* const*) b); }

/* "# Tools" and one section per namespace, in key order (a BTreeMap in the reference). */
static enum gptoss_status tools_section(struct render* r, const json_t* tools, const struct path* at) {
    struct sbuf* b = &r->text;
    size_t num_ns = json_object_size(tools);
    const char** keys = malloc((num_ns ? num_ns : 1) * sizeof(char*));
    if (keys == NULL) return fail_oom(r->err);
    size_t k = 0;
    const char* key;
    json_t* ns;
    json_object_foreach((json_t*) tools, key, ns) keys[k++] = key;
    qsort(keys, num_ns, sizeof(char*), cmp_keys);
    enum gptoss_status st = gptoss_status_success;
    sb_puts(b, "# Tools");
    for (k = 0; k < num_ns && st == gptoss_status_success; k++) {
        ns = json_object_get(tools, keys[k]);
        struct path nsp = path_at(at, ".%s", keys[k]);
        const json_t *name, *desc, *list = json_object_get(ns, "tools");
        if (!json_is_object(ns)) {
            st = fail(r->err, gptoss_status_invalid_argument, nsp.s, "must be an object");
            break;
        }
        if ((st = req_string(ns, "name", &nsp, &name, r->err)) != gptoss_status_success ||
            (st = opt_string(ns, "description", &nsp, &desc, r->err)) != gptoss_status_success)
            break;
        if (!json_is_array(list)) {
            st = fail(r->err, gptoss_status_invalid_argument, path_at(&nsp, ".tools").s, "must be an array");
            break;
        }
        bool has_tools = json_array_size(list) > 0, first = false;
        sb_puts(b, "\n\n## ");
        sb_json_str(b, name);
        sb_put(b, "\n", 1);
        if (desc != NULL) put_lines(b, desc, has_tools ? "// " : "", &first);
        if (!has_tools) continue;
        sb_puts(b, "\nnamespace ");
        sb_json_str(b, name);
        sb_puts(b, " {\n");
        for (size_t i = 0; i < json_array_size(list); i++) {
            const json_t* tool = json_array_get(list, i);
            struct path tp = path_at(&nsp, ".tools[%zu]", i);
            const json_t *tname, *tdesc, *params = json_object_get(tool, "parameters");
            if (!json_is_object(tool)) {
                st = fail(r->err, gptoss_status_invalid_argument, tp.s, "must be an object");
                break;
            }
            if ((st = req_string(tool, "name", &tp, &tname, r->err)) != gptoss_status_success ||
                (st = req_string(tool, "description", &tp, &tdesc, r->err)) != gptoss_status_success)
                break;
            put_lines(b, tdesc, "// ", &first);
            sb_puts(b, "\ntype ");
            sb_json_str(b, tname);
            if (params != NULL && !json_is_null(params)) {
                bool too_deep = false;
                sb_puts(b, " = (_: ");
                ts_type(b, params, "", 0, &too_deep);
                sb_puts(b, ") => any;\n");
                if (too_deep) {
                    st = fail(r->err, gptoss_status_invalid_argument, path_at(&tp, ".parameters").s,
                              "schema nested deeper than %d levels", HARMONY_MAX_SCHEMA_DEPTH);
                    break;
                }
            } else {
                sb_puts(b, " = () => any;\n");
            }
        }
        sb_puts(b, "\n} // namespace ");
        sb_json_str(b, name);
    }
    free(keys);
    return st;
}

static bool tools_nonempty(const json_t* tools) { return json_is_object(tools) && json_object_size(tools) > 0; }

static enum gptoss_status render_system(struct render* r, const json_t* c, const struct path* at) {
    static const char* const efforts[][2] = {{"Low", "low"}, {"Medium", "medium"}, {"High", "high"}};
    const json_t *identity, *cutoff, *date, *effort, *tools = json_object_get(c, "tools");
    const json_t* channels = json_object_get(c, "channel_config");
    enum gptoss_status st;
    if ((st = opt_string(c, "model_identity", at, &identity, r->err)) != gptoss_status_success ||
        (st = opt_string(c, "knowledge_cutoff", at, &cutoff, r->err)) != gptoss_status_success ||
        (st = opt_string(c, "conversation_start_date", at, &date, r->err)) != gptoss_status_success ||
        (st = opt_string(c, "reasoning_effort", at, &effort, r->err)) != gptoss_status_success)
        return st;
    const char* effort_text = NULL;
    for (size_t i = 0; effort != NULL && i < 3; i++)
        if (strcmp(json_string_value(effort), efforts[i][0]) == 0) effort_text = efforts[i][1];
    if (effort != NULL && effort_text == NULL)
        return fail(r->err, gptoss_status_invalid_argument, path_at(at, ".reasoning_effort").s,
                    "must be \"Low\", \"Medium\" or \"High\"");
    if (tools != NULL && !json_is_null(tools) && !json_is_object(tools))
        return fail(r->err, gptoss_status_invalid_argument, path_at(at, ".tools").s, "must be an object or null");
    const json_t *valid = NULL, *required = NULL;
    if (channels != NULL && !json_is_null(channels)) {
        valid = json_object_get(channels, "valid_channels");
        required = json_object_get(channels, "channel_required");
        if (!json_is_object(channels) || !json_is_array(valid) || !json_is_boolean(required))
            return fail(r->err, gptoss_status_invalid_argument, path_at(at, ".channel_config").s,
                        "must be {\"valid_channels\": [strings], \"channel_required\": bool}");
        for (size_t i = 0; i < json_array_size(valid); i++)
            if (!json_is_string(json_array_get(valid, i)))
                return fail(r->err, gptoss_status_invalid_argument,
                            path_at(at, ".channel_config.valid_channels[%zu]", i).s, "must be a string");
    }
    struct sbuf* b = &r->text;
    sb_clear(b);
    /* sections joined by a blank line; the first one's lines by "\n" */
    int sections = 0, lines = 0;
    const json_t* top[3] = {identity, cutoff, date};
    static const char* const top_prefix[3] = {"", "Knowledge cutoff: ", "Current date: "};
    for (int i = 0; i < 3; i++) {
        if (top[i] == NULL) continue;
        if (lines++) sb_put(b, "\n", 1);
        sb_puts(b, top_prefix[i]);
        sb_json_str(b, top[i]);
    }
    sections += lines > 0;
    if (effort_text != NULL) {
        if (sections++) sb_puts(b, "\n\n");
        sb_puts(b, "Reasoning: ");
        sb_puts(b, effort_text);
    }
    if (tools_nonempty(tools)) {
        if (sections++) sb_puts(b, "\n\n");
        struct path tp = path_at(at, ".tools");
        if ((st = tools_section(r, tools, &tp)) != gptoss_status_success) return st;
    }
    if (valid != NULL && json_array_size(valid) > 0) {
        if (sections++) sb_puts(b, "\n\n");
        sb_puts(b, "# Valid channels: ");
        for (size_t i = 0; i < json_array_size(valid); i++) {
            if (i) sb_puts(b, ", ");
            sb_json_str(b, json_array_get(valid, i));
        }
        sb_puts(b, ".");
        if (json_is_true(required)) sb_puts(b, " Channel must be included for every message.");
        if (r->has_function_tools) sb_puts(b, "\nCalls to these tools must go to the commentary channel: 'functions'.");
    }
    if (b->oom) return fail_oom(r->err);
    return enc_text(r->e, r->out, b->p ? b->p : "", b->n, r->err);
}

/* "# Response Formats" at the end of the developer message (the harmony guide's structured
 * output; openai-harmony has no field for it): a section a format, "## NAME", its
 * description as // comment lines, then its schema as compact JSON. The developer
 * content's "response_formats" is this project's extension: [{"name", "description"
 * (optional), "schema"}]. */
static enum gptoss_status formats_section(struct render* r, const json_t* formats, const struct path* at) {
    struct sbuf* b = &r->text;
    if (b->n > 0) sb_puts(b, "\n\n");
    sb_puts(b, "# Response Formats");
    for (size_t i = 0; i < json_array_size(formats); i++) {
        const json_t *f = json_array_get(formats, i), *name, *desc, *schema = json_object_get(f, "schema");
        struct path p = path_at(at, "[%zu]", i);
        enum gptoss_status st;
        if (!json_is_object(f)) return fail(r->err, gptoss_status_invalid_argument, p.s, "must be an object");
        if ((st = req_string(f, "name", &p, &name, r->err)) != gptoss_status_success ||
            (st = opt_string(f, "description", &p, &desc, r->err)) != gptoss_status_success)
            return st;
        if (!json_is_object(schema) && !json_is_boolean(schema))
            return fail(r->err, gptoss_status_invalid_argument, path_at(&p, ".schema").s, "must be a JSON Schema");
        char* text = json_dumps(schema, JSON_COMPACT | JSON_ENCODE_ANY);
        if (text == NULL) return fail_oom(r->err);
        bool first = true;
        sb_puts(b, "\n\n## ");
        sb_json_str(b, name);
        sb_puts(b, "\n\n");
        if (desc != NULL && json_string_length(desc) > 0) {
            put_lines(b, desc, "// ", &first);
            sb_put(b, "\n", 1);
        }
        sb_puts(b, text);
        free(text);
    }
    return gptoss_status_success;
}

static enum gptoss_status render_developer(struct render* r, const json_t* c, const struct path* at) {
    const json_t *instructions, *tools = json_object_get(c, "tools");
    enum gptoss_status st = opt_string(c, "instructions", at, &instructions, r->err);
    if (st != gptoss_status_success) return st;
    if (tools != NULL && !json_is_null(tools) && !json_is_object(tools))
        return fail(r->err, gptoss_status_invalid_argument, path_at(at, ".tools").s, "must be an object or null");
    struct sbuf* b = &r->text;
    sb_clear(b);
    if (instructions != NULL) {
        sb_puts(b, "# Instructions\n\n");
        sb_json_str(b, instructions);
    }
    if (tools_nonempty(tools)) {
        if (instructions != NULL) sb_puts(b, "\n\n");
        struct path tp = path_at(at, ".tools");
        if ((st = tools_section(r, tools, &tp)) != gptoss_status_success) return st;
    }
    const json_t* formats = json_object_get(c, "response_formats");
    if (json_array_size(formats) > 0) {
        struct path fp = path_at(at, ".response_formats");
        if ((st = formats_section(r, formats, &fp)) != gptoss_status_success) return st;
    }
    if (b->oom) return fail_oom(r->err);
    return enc_text(r->e, r->out, b->p ? b->p : "", b->n, r->err);
}

static const char* const roles[] = {"user", "assistant", "system", "developer", "tool"};

static bool is_role(const char* s) {
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        if (strcmp(s, roles[i]) == 0) return true;
    return false;
}

/* One message. With render_checks false (a message the auto-drop rule leaves out) only
 * its form is checked, as the reference reads every message before rendering. */
static enum gptoss_status render_message(struct render* r, const json_t* m, size_t index, bool render_checks) {
    struct path at = path_at(NULL, "messages[%zu]", index);
    const struct enc* e = r->e;
    const json_t *role, *name, *recipient, *channel, *content_type, *content = json_object_get(m, "content");
    enum gptoss_status st;
    if (!json_is_object(m)) return fail(r->err, gptoss_status_invalid_argument, at.s, "must be an object");
    if ((st = req_string(m, "role", &at, &role, r->err)) != gptoss_status_success ||
        (st = opt_string(m, "name", &at, &name, r->err)) != gptoss_status_success ||
        (st = opt_string(m, "recipient", &at, &recipient, r->err)) != gptoss_status_success ||
        (st = opt_string(m, "channel", &at, &channel, r->err)) != gptoss_status_success ||
        (st = opt_string(m, "content_type", &at, &content_type, r->err)) != gptoss_status_success)
        return st;
    const char* role_s = json_string_value(role);
    if (!is_role(role_s))
        return fail(r->err, gptoss_status_invalid_argument, path_at(&at, ".role").s,
                    "unknown role \"%s\" (user, assistant, system, developer or tool)", role_s);
    if (!json_is_string(content) && !json_is_array(content))
        return fail(r->err, gptoss_status_invalid_argument, path_at(&at, ".content").s,
                    "must be a string or a list of contents");
    bool is_tool = strcmp(role_s, "tool") == 0;
    if (render_checks && is_tool && name == NULL)
        return fail(r->err, gptoss_status_invalid_argument, path_at(&at, ".name").s, "a tool message needs a name");

    tv_push(r->out, e->start);
    if (is_tool) {
        if (name != NULL) st = enc_text(e, r->out, json_string_value(name), json_string_length(name), r->err);
    } else {
        st = enc_str(e, r->out, role_s, r->err);
        if (st == gptoss_status_success && name != NULL) {
            sb_clear(&r->text);
            sb_put(&r->text, ":", 1);
            sb_json_str(&r->text, name);
            st = r->text.oom ? fail_oom(r->err) : enc_text(e, r->out, r->text.p, r->text.n, r->err);
        }
    }
    if (st == gptoss_status_success && recipient != NULL && strcmp(json_string_value(recipient), "all") != 0) {
        sb_clear(&r->text);
        sb_puts(&r->text, " to=");
        sb_json_str(&r->text, recipient);
        st = r->text.oom ? fail_oom(r->err) : enc_text(e, r->out, r->text.p, r->text.n, r->err);
    }
    if (st == gptoss_status_success && channel != NULL) {
        tv_push(r->out, e->channel);
        st = enc_text(e, r->out, json_string_value(channel), json_string_length(channel), r->err);
    }
    if (st == gptoss_status_success && content_type != NULL) {
        static const char marker[] = "<|constrain|>";
        const char* ct = json_string_value(content_type);
        size_t n = json_string_length(content_type);
        if (n >= sizeof(marker) - 1 && memcmp(ct, marker, sizeof(marker) - 1) == 0) {
            st = enc_str(e, r->out, " ", r->err);
            tv_push(r->out, e->constrain);
            if (st == gptoss_status_success)
                st = enc_text(e, r->out, ct + sizeof(marker) - 1, n - (sizeof(marker) - 1), r->err);
        } else {
            sb_clear(&r->text);
            sb_put(&r->text, " ", 1);
            sb_put(&r->text, ct, n);
            st = r->text.oom ? fail_oom(r->err) : enc_text(e, r->out, r->text.p, r->text.n, r->err);
        }
    }
    if (st != gptoss_status_success) return st;
    tv_push(r->out, e->message);

    if (json_is_string(content)) {
        st = enc_text(e, r->out, json_string_value(content), json_string_length(content), r->err);
    } else {
        for (size_t i = 0; i < json_array_size(content) && st == gptoss_status_success; i++) {
            const json_t* c = json_array_get(content, i);
            struct path cp = path_at(&at, ".content[%zu]", i);
            const json_t* type;
            if (!json_is_object(c)) return fail(r->err, gptoss_status_invalid_argument, cp.s, "must be an object");
            if ((st = req_string(c, "type", &cp, &type, r->err)) != gptoss_status_success) return st;
            const char* t = json_string_value(type);
            if (strcmp(t, "text") == 0) {
                const json_t* text;
                if ((st = req_string(c, "text", &cp, &text, r->err)) == gptoss_status_success)
                    st = enc_text(e, r->out, json_string_value(text), json_string_length(text), r->err);
            } else if (strcmp(t, "system_content") == 0) {
                if (render_checks && strcmp(role_s, "system") != 0)
                    return fail(r->err, gptoss_status_invalid_argument, cp.s,
                                "system_content may only appear in system messages");
                st = render_system(r, c, &cp);
            } else if (strcmp(t, "developer_content") == 0) {
                if (render_checks && strcmp(role_s, "developer") != 0)
                    return fail(r->err, gptoss_status_invalid_argument, cp.s,
                                "developer_content may only appear in developer messages");
                st = render_developer(r, c, &cp);
            } else {
                return fail(r->err, gptoss_status_invalid_argument, path_at(&cp, ".type").s,
                            "unknown content type \"%s\" (text, system_content or developer_content)", t);
            }
        }
        if (st != gptoss_status_success) return st;
    }
    tv_push(r->out, strcmp(role_s, "assistant") == 0 && recipient != NULL ? e->call : e->end);
    return r->out->oom ? fail_oom(r->err) : gptoss_status_success;
}

/* Whether a developer content lists function tools (the reference's "functions"
 * namespace with at least one tool); read loosely: render_message checks the form. */
static bool lists_function_tools(const json_t* m) {
    const json_t* content = json_object_get(m, "content");
    for (size_t i = 0; json_is_array(content) && i < json_array_size(content); i++) {
        const json_t* c = json_array_get(content, i);
        const char* type = jstr(c, "type");
        const json_t* fns = jget(jget(c, "tools"), "functions");
        const json_t* list = jget(fns, "tools");
        if (type != NULL && strcmp(type, "developer_content") == 0 && json_is_array(list) && json_array_size(list) > 0)
            return true;
    }
    return false;
}

static bool on_channel(const json_t* m, const char* channel) {
    const char* c = jstr(m, "channel");
    return c != NULL && strcmp(c, channel) == 0;
}

enum gptoss_status gptoss_harmony_render_conversation(gptoss_tokenizer_t tokenizer, const json_t* conversation,
                                                      uint32_t** tokens_out, size_t* num_tokens_out,
                                                      struct gptoss_harmony_error* error_out) {
    struct gptoss_harmony_error scratch;
    struct gptoss_harmony_error* err = error_out != NULL ? error_out : &scratch;
    if (tokenizer == NULL || conversation == NULL || tokens_out == NULL || num_tokens_out == NULL)
        return fail(err, gptoss_status_invalid_argument, NULL, "%s is NULL",
                    tokenizer == NULL      ? "tokenizer"
                    : conversation == NULL ? "conversation"
                    : tokens_out == NULL   ? "tokens_out"
                                           : "num_tokens_out");
    const json_t* messages = json_object_get(conversation, "messages");
    if (!json_is_object(conversation) || !json_is_array(messages))
        return fail(err, gptoss_status_invalid_argument, "messages", "the conversation needs a \"messages\" array");
    struct enc e;
    enum gptoss_status st = enc_init(&e, tokenizer, err);
    if (st != gptoss_status_success) return st;

    /* The auto-drop rule: if the last assistant message is on the final channel, drop the
     * analysis messages before the first final one. */
    size_t n = json_array_size(messages), first_final = n;
    bool last_assistant_final = false, has_function_tools = false;
    for (size_t i = 0; i < n; i++) {
        const json_t* m = json_array_get(messages, i);
        has_function_tools = has_function_tools || lists_function_tools(m);
        if (first_final == n && on_channel(m, "final")) first_final = i;
        const char* role = jstr(m, "role");
        if (role != NULL && strcmp(role, "assistant") == 0) last_assistant_final = on_channel(m, "final");
    }
    struct tvec out = {0}, dropped = {0};
    struct render r = {.e = &e, .has_function_tools = has_function_tools, .err = err};
    for (size_t i = 0; i < n && st == gptoss_status_success; i++) {
        const json_t* m = json_array_get(messages, i);
        bool drop = last_assistant_final && i < first_final && on_channel(m, "analysis");
        dropped.n = 0;
        r.out = drop ? &dropped : &out;
        st = render_message(&r, m, i, !drop);
    }
    if (st == gptoss_status_success) {
        tv_push(&out, e.start);
        st = enc_str(&e, &out, "assistant", err);
        if (st == gptoss_status_success && (out.oom || r.text.oom)) st = fail_oom(err);
    }
    sb_free(&r.text);
    free(dropped.p);
    if (st != gptoss_status_success) {
        free(out.p);
        return st;
    }
    *tokens_out = out.p;
    *num_tokens_out = out.n;
    return gptoss_status_success;
}

static bool valid_function_name(const char* s, size_t n) {
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

enum gptoss_status gptoss_harmony_render_tool_call_header(gptoss_tokenizer_t tokenizer, const char* name,
                                                          uint32_t** tokens_out, size_t* num_tokens_out,
                                                          struct gptoss_harmony_error* error_out) {
    struct gptoss_harmony_error scratch;
    struct gptoss_harmony_error* err = error_out != NULL ? error_out : &scratch;
    if (tokenizer == NULL || name == NULL || tokens_out == NULL || num_tokens_out == NULL)
        return fail(err, gptoss_status_invalid_argument, NULL, "%s is NULL",
                    tokenizer == NULL ? "tokenizer" : name == NULL ? "name" : tokens_out == NULL ? "tokens_out" : "num_tokens_out");
    if (!valid_function_name(name, strlen(name)))
        return fail(err, gptoss_status_invalid_argument, "name", "\"%.64s\" is not a function name ([A-Za-z0-9_-]{1,64})",
                    name);
    struct enc e;
    enum gptoss_status st = enc_init(&e, tokenizer, err);
    if (st != gptoss_status_success) return st;
    struct tvec out = {0};
    struct sbuf text = {0};
    sb_puts(&text, "commentary to=functions.");
    sb_puts(&text, name);
    sb_puts(&text, " ");
    tv_push(&out, e.channel);
    st = text.oom ? fail_oom(err) : enc_text(&e, &out, text.p, text.n, err);
    tv_push(&out, e.constrain);
    if (st == gptoss_status_success) st = enc_str(&e, &out, "json", err);
    tv_push(&out, e.message);
    if (st == gptoss_status_success && out.oom) st = fail_oom(err);
    sb_free(&text);
    if (st != gptoss_status_success) {
        free(out.p);
        return st;
    }
    *tokens_out = out.p;
    *num_tokens_out = out.n;
    return gptoss_status_success;
}

/* ---- requests -> harmony conversation ------------------------------------------------ */

void gptoss_harmony_render_options_init(struct gptoss_harmony_render_options* options) {
    if (options == NULL) return;
    options->model_identity = "You are ChatGPT, a large language model trained by OpenAI.";
    options->knowledge_cutoff = "2024-06";
    options->current_date = NULL;
    options->default_effort = gptoss_harmony_effort_medium;
}

/* Builds JSON; any failed allocation sets oom (jansson's *_new calls release what they
 * were given on failure). */
struct build {
    json_t* messages;
    json_t* calls; /* tool call id -> function name */
    bool oom;
    struct gptoss_harmony_error* err;
};

static void b_set(struct build* b, json_t* obj, const char* key, json_t* value) {
    if (json_object_set_new(obj, key, value) != 0) b->oom = true;
}

static void b_append(struct build* b, json_t* array, json_t* value) {
    if (json_array_append_new(array, value) != 0) b->oom = true;
}

/* Appends {"role", "channel"?, "recipient"?, "content_type"?, "name"?, "content"}. */
static void b_message(struct build* b, const char* role, const json_t* name, const char* channel,
                      const json_t* recipient, const char* content_type, json_t* content) {
    json_t* m = json_object();
    b_set(b, m, "role", json_string(role));
    if (name != NULL) b_set(b, m, "name", json_incref((json_t*) name));
    if (channel != NULL) b_set(b, m, "channel", json_string(channel));
    if (recipient != NULL) b_set(b, m, "recipient", json_incref((json_t*) recipient));
    if (content_type != NULL) b_set(b, m, "content_type", json_string(content_type));
    b_set(b, m, "content", content);
    b_append(b, b->messages, m);
}

static json_t* b_text_content(struct build* b, const json_t* text) {
    json_t* c = json_object();
    b_set(b, c, "type", json_string("text"));
    b_set(b, c, "text", json_incref((json_t*) text));
    json_t* list = json_array();
    b_append(b, list, c);
    return list;
}

static json_t* b_prefixed(const char* prefix, const json_t* s) {
    size_t np = strlen(prefix), ns = json_string_length(s);
    char* buf = malloc(np + ns + 1);
    if (buf == NULL) return NULL;
    memcpy(buf, prefix, np);
    memcpy(buf + np, json_string_value(s), ns);
    json_t* out = json_stringn(buf, np + ns);
    free(buf);
    return out;
}

/* The text of a content value: a string, or a list of parts whose type is one of
 * text_types (concatenated). NULL content is allowed when null_ok (then *text_out NULL).
 * *text_out: a new JSON string. */
static enum gptoss_status content_text(struct build* b, const json_t* content, const struct path* at,
                                       const char* const* text_types, bool null_ok, json_t** text_out) {
    *text_out = NULL;
    if ((content == NULL || json_is_null(content)) && null_ok) return gptoss_status_success;
    if (json_is_string(content)) {
        *text_out = json_incref((json_t*) content);
        return gptoss_status_success;
    }
    if (!json_is_array(content))
        return fail(b->err, gptoss_status_invalid_argument, at->s,
                    content == NULL ? "missing (a string or a list of text parts is required)"
                                    : "must be a string or a list of text parts");
    struct sbuf text = {0};
    for (size_t i = 0; i < json_array_size(content); i++) {
        const json_t* part = json_array_get(content, i);
        struct path pp = path_at(at, "[%zu]", i);
        const json_t *type, *t;
        enum gptoss_status st;
        if (!json_is_object(part)) {
            sb_free(&text);
            return fail(b->err, gptoss_status_invalid_argument, pp.s, "must be a content part object");
        }
        if ((st = req_string(part, "type", &pp, &type, b->err)) != gptoss_status_success) {
            sb_free(&text);
            return st;
        }
        bool is_text = false;
        for (const char* const* tt = text_types; *tt != NULL; tt++) is_text = is_text || strcmp(*tt, json_string_value(type)) == 0;
        if (!is_text) {
            sb_free(&text);
            return fail(b->err, gptoss_status_unsupported_argument, path_at(&pp, ".type").s,
                        "\"%.40s\" parts are not supported (only text)", json_string_value(type));
        }
        if ((st = req_string(part, "text", &pp, &t, b->err)) != gptoss_status_success) {
            sb_free(&text);
            return st;
        }
        sb_json_str(&text, t);
    }
    *text_out = text.oom ? NULL : json_stringn(text.p ? text.p : "", text.n);
    sb_free(&text);
    if (*text_out == NULL) return fail_oom(b->err);
    return gptoss_status_success;
}

static enum gptoss_status parse_effort(struct build* b, const json_t* v, const struct path* at,
                                       enum gptoss_harmony_effort* effort) {
    static const char* const names[] = {"low", "medium", "high"};
    if (v == NULL || json_is_null(v)) return gptoss_status_success;
    for (int i = 0; i < 3; i++)
        if (json_is_string(v) && strcmp(json_string_value(v), names[i]) == 0) {
            *effort = (enum gptoss_harmony_effort) (i + 1);
            return gptoss_status_success;
        }
    return fail(b->err, gptoss_status_invalid_argument, at->s, "must be \"low\", \"medium\" or \"high\"");
}

static int json_depth(const json_t* v) {
    int d = 0;
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            int c = json_depth(json_array_get(v, i));
            if (c > d) d = c;
        }
        return d + 1;
    }
    if (json_is_object(v)) {
        const char* key;
        json_t* item;
        json_object_foreach((json_t*) v, key, item) {
            int c = json_depth(item);
            if (c > d) d = c;
        }
        return d + 1;
    }
    return 0;
}

/* One function tool -> {"name", "description", "parameters"?} appended to `list`. */
static enum gptoss_status add_tool(struct build* b, json_t* list, const json_t* fn, const struct path* at) {
    const json_t *name, *desc, *params = json_object_get(fn, "parameters");
    enum gptoss_status st;
    if ((st = req_string(fn, "name", at, &name, b->err)) != gptoss_status_success ||
        (st = opt_string(fn, "description", at, &desc, b->err)) != gptoss_status_success)
        return st;
    if (!valid_function_name(json_string_value(name), json_string_length(name)))
        return fail(b->err, gptoss_status_invalid_argument, path_at(at, ".name").s,
                    "\"%.64s\" is not a function name ([A-Za-z0-9_-]{1,64})", json_string_value(name));
    for (size_t i = 0; i < json_array_size(list); i++)
        if (json_equal(json_object_get(json_array_get(list, i), "name"), (json_t*) name))
            return fail(b->err, gptoss_status_invalid_argument, path_at(at, ".name").s, "tool \"%s\" is listed twice",
                        json_string_value(name));
    if (params != NULL && !json_is_null(params) && !json_is_object(params))
        return fail(b->err, gptoss_status_invalid_argument, path_at(at, ".parameters").s,
                    "must be a JSON schema object");
    if (params != NULL && json_depth(params) > HARMONY_MAX_SCHEMA_DEPTH)
        return fail(b->err, gptoss_status_invalid_argument, path_at(at, ".parameters").s,
                    "nested deeper than %d levels", HARMONY_MAX_SCHEMA_DEPTH);
    json_t* tool = json_object();
    b_set(b, tool, "name", json_incref((json_t*) name));
    b_set(b, tool, "description", desc != NULL ? json_incref((json_t*) desc) : json_string(""));
    if (params != NULL && !json_is_null(params)) b_set(b, tool, "parameters", json_incref((json_t*) params));
    b_append(b, list, tool);
    return gptoss_status_success;
}

/* tool_choice ("auto" | "required" | "none" | a named function; flat: the Responses form
 * {"type": "function", "name"}) applied to the listed tools: "none" lists none, a named
 * function only itself. */
static enum gptoss_status apply_tool_choice(struct build* b, const json_t* choice, bool flat, json_t* tools) {
    struct path at = path_at(NULL, "tool_choice");
    if (choice == NULL || json_is_null(choice)) return gptoss_status_success;
    if (json_is_string(choice)) {
        const char* s = json_string_value(choice);
        if (strcmp(s, "none") == 0) json_array_clear(tools);
        else if (strcmp(s, "auto") != 0 && strcmp(s, "required") != 0)
            return fail(b->err, gptoss_status_invalid_argument, at.s, "must be \"auto\", \"none\", \"required\" or a function");
        return gptoss_status_success;
    }
    const char* type = jstr(choice, "type");
    if (type == NULL) return fail(b->err, gptoss_status_invalid_argument, at.s, "must be a string or {\"type\": \"function\", ...}");
    if (strcmp(type, "function") != 0)
        return fail(b->err, gptoss_status_unsupported_argument, path_at(&at, ".type").s, "\"%.40s\" is not supported",
                    type);
    struct path fp = flat ? at : path_at(&at, ".function");
    const json_t* fn = flat ? choice : json_object_get(choice, "function");
    const json_t* name;
    if (!json_is_object(fn)) return fail(b->err, gptoss_status_invalid_argument, fp.s, "must be an object");
    enum gptoss_status st = req_string(fn, "name", &fp, &name, b->err);
    if (st != gptoss_status_success) return st;
    json_t* only = NULL;
    for (size_t t = 0; t < json_array_size(tools) && only == NULL; t++)
        if (json_equal(json_object_get(json_array_get(tools, t), "name"), (json_t*) name))
            only = json_incref(json_array_get(tools, t));
    if (only == NULL)
        return fail(b->err, gptoss_status_invalid_argument, path_at(&fp, ".name").s, "no tool \"%.64s\" in tools",
                    json_string_value(name));
    json_array_clear(tools);
    b_append(b, tools, only);
    return gptoss_status_success;
}

/* The json_schema response format of a request ({"name", "description", "schema"}, as the
 * request gives them), or NULL: chat's response_format.json_schema, the Responses API's
 * text.format. The server checked the fields (api.c). */
static const json_t* schema_format(const json_t* request, bool responses) {
    const json_t* f = responses ? jget(json_object_get(request, "text"), "format") : json_object_get(request, "response_format");
    const char* type = jstr(f, "type");
    if (type == NULL || strcmp(type, "json_schema") != 0) return NULL;
    if (!responses) f = json_object_get(f, "json_schema");
    return json_is_string(json_object_get(f, "name")) && json_object_get(f, "schema") != NULL ? f : NULL;
}

/* The system message, then the developer message when there are instructions, tools or a
 * response format. */
static void add_prologue(struct build* b, const struct gptoss_harmony_render_options* options,
                         enum gptoss_harmony_effort effort, const json_t* instructions, json_t* tools,
                         const json_t* format) {
    static const char* const efforts[] = {"Low", "Medium", "High"};
    json_t* sys = json_object();
    b_set(b, sys, "type", json_string("system_content"));
    /* absent parts as null: openai-harmony's Python classes read a missing one as its default */
    b_set(b, sys, "model_identity", options->model_identity ? json_string(options->model_identity) : json_null());
    b_set(b, sys, "reasoning_effort", json_string(efforts[effort - 1]));
    b_set(b, sys, "conversation_start_date", options->current_date ? json_string(options->current_date) : json_null());
    b_set(b, sys, "knowledge_cutoff", options->knowledge_cutoff ? json_string(options->knowledge_cutoff) : json_null());
    json_t* channels = json_object();
    b_set(b, channels, "valid_channels", json_pack("[sss]", "analysis", "commentary", "final"));
    b_set(b, channels, "channel_required", json_true());
    b_set(b, sys, "channel_config", channels);
    json_t* content = json_array();
    b_append(b, content, sys);
    b_message(b, "system", NULL, NULL, NULL, NULL, content);

    if (instructions == NULL && json_array_size(tools) == 0 && format == NULL) return;
    json_t* dev = json_object();
    b_set(b, dev, "type", json_string("developer_content"));
    if (instructions != NULL) b_set(b, dev, "instructions", json_incref((json_t*) instructions));
    if (format != NULL) {
        json_t* f = json_object();
        b_set(b, f, "name", json_incref(json_object_get(format, "name")));
        const json_t* desc = json_object_get(format, "description");
        if (json_is_string(desc)) b_set(b, f, "description", json_incref((json_t*) desc));
        b_set(b, f, "schema", json_incref(json_object_get(format, "schema")));
        b_set(b, dev, "response_formats", json_pack("[o]", f));
    }
    if (json_array_size(tools) > 0) {
        json_t* ns = json_object();
        b_set(b, ns, "name", json_string("functions"));
        b_set(b, ns, "tools", json_incref(tools));
        json_t* map = json_object();
        b_set(b, map, "functions", ns);
        b_set(b, dev, "tools", map);
    }
    content = json_array();
    b_append(b, content, dev);
    b_message(b, "developer", NULL, NULL, NULL, NULL, content);
}

static void add_developer(struct build* b, const json_t* instructions) {
    json_t* dev = json_object();
    b_set(b, dev, "type", json_string("developer_content"));
    b_set(b, dev, "instructions", json_incref((json_t*) instructions));
    json_t* content = json_array();
    b_append(b, content, dev);
    b_message(b, "developer", NULL, NULL, NULL, NULL, content);
}

/* Joins instruction texts with a blank line: *acc (new reference or NULL) += text. */
static void join_instructions(struct build* b, json_t** acc, const json_t* text) {
    if (*acc == NULL) {
        *acc = json_incref((json_t*) text);
        return;
    }
    struct sbuf s = {0};
    sb_json_str(&s, *acc);
    sb_puts(&s, "\n\n");
    sb_json_str(&s, text);
    json_decref(*acc);
    *acc = s.oom ? NULL : json_stringn(s.p, s.n);
    if (*acc == NULL) b->oom = true;
    sb_free(&s);
}

/* A tool call -> the assistant's commentary message to functions.NAME; remembers the id. */
static void add_tool_call(struct build* b, const json_t* id, const json_t* name, const json_t* arguments) {
    json_t* recipient = b_prefixed("functions.", name);
    if (recipient == NULL) b->oom = true;
    b_message(b, "assistant", NULL, "commentary", recipient, "<|constrain|>json", b_text_content(b, arguments));
    json_decref(recipient);
    b_set(b, b->calls, json_string_value(id), json_incref((json_t*) name));
}

static enum gptoss_status add_tool_result(struct build* b, const json_t* id, const struct path* id_at,
                                          const json_t* text) {
    const json_t* name = json_object_get(b->calls, json_string_value(id));
    if (name == NULL)
        return fail(b->err, gptoss_status_invalid_argument, id_at->s, "no earlier tool call has the id \"%.64s\"",
                    json_string_value(id));
    json_t* author = b_prefixed("functions.", name);
    json_t* recipient = json_string("assistant");
    if (author == NULL || recipient == NULL) b->oom = true;
    b_message(b, "tool", author, "commentary", recipient, NULL, b_text_content(b, text));
    json_decref(author);
    json_decref(recipient);
    return gptoss_status_success;
}

static bool is_instruction_role(const char* role) {
    return role != NULL && (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0);
}

static const char* const chat_text_parts[] = {"text", NULL};
static const char* const responses_text_parts[] = {"input_text", "output_text", NULL};

static enum gptoss_status chat_assistant(struct build* b, const json_t* m, const struct path* at) {
    const json_t* reasoning = json_object_get(m, "reasoning_content");
    const json_t* calls = json_object_get(m, "tool_calls");
    struct path cp = path_at(at, ".content");
    json_t* text = NULL;
    enum gptoss_status st;
    if (reasoning != NULL && !json_is_null(reasoning) && !json_is_string(reasoning))
        return fail(b->err, gptoss_status_invalid_argument, path_at(at, ".reasoning_content").s,
                    "must be a string or null");
    if (calls != NULL && !json_is_null(calls) && !json_is_array(calls))
        return fail(b->err, gptoss_status_invalid_argument, path_at(at, ".tool_calls").s, "must be an array");
    size_t num_calls = json_array_size(calls);
    if ((st = content_text(b, json_object_get(m, "content"), &cp, chat_text_parts, true, &text)) != gptoss_status_success)
        return st;
    bool has_reasoning = json_string_length(reasoning) > 0;
    if (text == NULL && num_calls == 0 && !has_reasoning)
        return fail(b->err, gptoss_status_invalid_argument, cp.s,
                    "an assistant message needs content, reasoning_content or tool_calls");
    /* check the calls before building anything */
    for (size_t j = 0; j < num_calls; j++) {
        const json_t* call = json_array_get(calls, j);
        struct path kp = path_at(at, ".tool_calls[%zu]", j), fp = path_at(&kp, ".function");
        const json_t *id, *name, *args, *fn = json_object_get(call, "function");
        const char* type = jstr(call, "type");
        if (!json_is_object(call)) st = fail(b->err, gptoss_status_invalid_argument, kp.s, "must be an object");
        else if (type != NULL && strcmp(type, "function") != 0)
            st = fail(b->err, gptoss_status_unsupported_argument, path_at(&kp, ".type").s,
                      "\"%.40s\" tool calls are not supported", type);
        else if ((st = req_string(call, "id", &kp, &id, b->err)) != gptoss_status_success) {
        } else if (!json_is_object(fn)) st = fail(b->err, gptoss_status_invalid_argument, fp.s, "must be an object");
        else if ((st = req_string(fn, "name", &fp, &name, b->err)) != gptoss_status_success ||
                 (st = req_string(fn, "arguments", &fp, &args, b->err)) != gptoss_status_success) {
        } else if (!valid_function_name(json_string_value(name), json_string_length(name)))
            st = fail(b->err, gptoss_status_invalid_argument, path_at(&fp, ".name").s,
                      "\"%.64s\" is not a function name ([A-Za-z0-9_-]{1,64})", json_string_value(name));
        if (st != gptoss_status_success) {
            json_decref(text);
            return st;
        }
    }
    if (has_reasoning) b_message(b, "assistant", NULL, "analysis", NULL, NULL, b_text_content(b, reasoning));
    if (text != NULL && (num_calls == 0 || json_string_length(text) > 0))
        b_message(b, "assistant", NULL, num_calls ? "commentary" : "final", NULL, NULL, b_text_content(b, text));
    json_decref(text);
    for (size_t j = 0; j < num_calls; j++) {
        const json_t* call = json_array_get(calls, j);
        const json_t* fn = json_object_get(call, "function");
        add_tool_call(b, json_object_get(call, "id"), json_object_get(fn, "name"), json_object_get(fn, "arguments"));
    }
    return gptoss_status_success;
}

static enum gptoss_status chat_message(struct build* b, const json_t* m, size_t index) {
    struct path at = path_at(NULL, "messages[%zu]", index), cp = path_at(&at, ".content");
    const char* role = jstr(m, "role");
    json_t* text = NULL;
    enum gptoss_status st = gptoss_status_success;
    if (strcmp(role, "assistant") == 0) return chat_assistant(b, m, &at);
    if ((st = content_text(b, json_object_get(m, "content"), &cp, chat_text_parts, false, &text)) != gptoss_status_success)
        return st;
    if (strcmp(role, "user") == 0) {
        b_message(b, "user", NULL, NULL, NULL, NULL, b_text_content(b, text));
    } else if (is_instruction_role(role)) {
        add_developer(b, text);
    } else { /* tool */
        const json_t* id;
        if ((st = req_string(m, "tool_call_id", &at, &id, b->err)) == gptoss_status_success) {
            struct path ip = path_at(&at, ".tool_call_id");
            st = add_tool_result(b, id, &ip, text);
        }
    }
    json_decref(text);
    return st;
}

static enum gptoss_status finish_build(struct build* b, enum gptoss_status st, json_t** conversation_out) {
    if (st == gptoss_status_success && (b->oom || b->messages == NULL || b->calls == NULL)) st = fail_oom(b->err);
    if (st == gptoss_status_success) {
        json_t* conv = json_object();
        if (json_object_set(conv, "messages", b->messages) != 0) {
            json_decref(conv);
            st = fail_oom(b->err);
        } else {
            *conversation_out = conv;
        }
    }
    json_decref(b->messages);
    json_decref(b->calls);
    return st;
}

static enum gptoss_status check_request(const json_t* request, const struct gptoss_harmony_render_options** options,
                                        json_t** conversation_out, struct gptoss_harmony_error* err,
                                        struct gptoss_harmony_render_options* defaults) {
    if (request == NULL || conversation_out == NULL)
        return fail(err, gptoss_status_invalid_argument, NULL, "%s is NULL", request == NULL ? "request" : "conversation_out");
    if (!json_is_object(request)) return fail(err, gptoss_status_invalid_argument, NULL, "the request must be a JSON object");
    if (*options == NULL) {
        gptoss_harmony_render_options_init(defaults);
        *options = defaults;
    }
    if ((*options)->default_effort < gptoss_harmony_effort_low || (*options)->default_effort > gptoss_harmony_effort_high)
        return fail(err, gptoss_status_invalid_argument, NULL, "options->default_effort %d is not an effort",
                    (int) (*options)->default_effort);
    return gptoss_status_success;
}

enum gptoss_status gptoss_harmony_conversation_from_chat(const json_t* request,
                                                         const struct gptoss_harmony_render_options* options,
                                                         json_t** conversation_out,
                                                         struct gptoss_harmony_error* error_out) {
    struct gptoss_harmony_error scratch;
    struct gptoss_harmony_render_options defaults;
    struct build b = {.err = error_out != NULL ? error_out : &scratch};
    enum gptoss_status st = check_request(request, &options, conversation_out, b.err, &defaults);
    if (st != gptoss_status_success) return st;
    b.messages = json_array();
    b.calls = json_object();
    json_t *tools = json_array(), *instructions = NULL;
    const json_t* messages = json_object_get(request, "messages");
    const json_t* tool_defs = json_object_get(request, "tools");
    enum gptoss_harmony_effort effort = options->default_effort;
    size_t n = json_array_size(messages), i = 0;

    if (!json_is_array(messages) || n == 0)
        st = fail(b.err, gptoss_status_invalid_argument, "messages", "must be a non-empty array of messages");
    if (st == gptoss_status_success)
        st = parse_effort(&b, json_object_get(request, "reasoning_effort"), &(struct path){"reasoning_effort"}, &effort);
    if (st == gptoss_status_success && tool_defs != NULL && !json_is_null(tool_defs) && !json_is_array(tool_defs))
        st = fail(b.err, gptoss_status_invalid_argument, "tools", "must be an array");
    for (size_t t = 0; st == gptoss_status_success && t < json_array_size(tool_defs); t++) {
        const json_t* def = json_array_get(tool_defs, t);
        struct path tp = path_at(NULL, "tools[%zu]", t), fp = path_at(&tp, ".function");
        const char* type = jstr(def, "type");
        if (!json_is_object(def) || type == NULL)
            st = fail(b.err, gptoss_status_invalid_argument, tp.s, "must be {\"type\": \"function\", \"function\": {...}}");
        else if (strcmp(type, "function") != 0)
            st = fail(b.err, gptoss_status_unsupported_argument, path_at(&tp, ".type").s,
                      "\"%.40s\" tools are not supported", type);
        else if (!json_is_object(json_object_get(def, "function")))
            st = fail(b.err, gptoss_status_invalid_argument, fp.s, "must be an object");
        else
            st = add_tool(&b, tools, json_object_get(def, "function"), &fp);
    }
    if (st == gptoss_status_success) st = apply_tool_choice(&b, json_object_get(request, "tool_choice"), false, tools);
    /* roles first, so that every message is checked before the prologue is built */
    for (size_t k = 0; st == gptoss_status_success && k < n; k++) {
        const json_t* m = json_array_get(messages, k);
        struct path at = path_at(NULL, "messages[%zu]", k);
        const json_t* role;
        if (!json_is_object(m)) st = fail(b.err, gptoss_status_invalid_argument, at.s, "must be an object");
        else if ((st = req_string(m, "role", &at, &role, b.err)) == gptoss_status_success && !is_role(json_string_value(role)))
            st = fail(b.err, gptoss_status_invalid_argument, path_at(&at, ".role").s,
                      "unknown role \"%.40s\" (system, developer, user, assistant or tool)", json_string_value(role));
    }
    for (; st == gptoss_status_success && i < n && is_instruction_role(jstr(json_array_get(messages, i), "role")); i++) {
        json_t* text;
        struct path cp = path_at(NULL, "messages[%zu].content", i);
        st = content_text(&b, json_object_get(json_array_get(messages, i), "content"), &cp, chat_text_parts, false, &text);
        if (st == gptoss_status_success) join_instructions(&b, &instructions, text);
        json_decref(text);
    }
    if (st == gptoss_status_success) add_prologue(&b, options, effort, instructions, tools, schema_format(request, false));
    for (; st == gptoss_status_success && i < n; i++) st = chat_message(&b, json_array_get(messages, i), i);
    json_decref(instructions);
    json_decref(tools);
    return finish_build(&b, st, conversation_out);
}

static enum gptoss_status responses_item(struct build* b, const json_t* item, size_t index) {
    struct path at = path_at(NULL, "input[%zu]", index), cp = path_at(&at, ".content");
    const char* type = jstr(item, "type");
    const json_t *id, *name, *args;
    json_t* text = NULL;
    enum gptoss_status st;
    if (type == NULL || strcmp(type, "message") == 0) {
        const char* role = jstr(item, "role");
        if ((st = content_text(b, json_object_get(item, "content"), &cp, responses_text_parts, false, &text)) !=
            gptoss_status_success)
            return st;
        if (strcmp(role, "user") == 0) b_message(b, "user", NULL, NULL, NULL, NULL, b_text_content(b, text));
        else if (strcmp(role, "assistant") == 0)
            b_message(b, "assistant", NULL, "final", NULL, NULL, b_text_content(b, text));
        else add_developer(b, text);
        json_decref(text);
        return gptoss_status_success;
    }
    if (strcmp(type, "reasoning") == 0) {
        static const char* const reasoning_parts[] = {"reasoning_text", NULL};
        const json_t* content = json_object_get(item, "content");
        if (content == NULL || json_is_null(content)) return gptoss_status_success; /* summary only */
        if (!json_is_array(content))
            return fail(b->err, gptoss_status_invalid_argument, cp.s, "must be a list of reasoning_text parts");
        if ((st = content_text(b, content, &cp, reasoning_parts, false, &text)) != gptoss_status_success) return st;
        if (json_string_length(text) > 0)
            b_message(b, "assistant", NULL, "analysis", NULL, NULL, b_text_content(b, text));
        json_decref(text);
        return gptoss_status_success;
    }
    if (strcmp(type, "function_call") == 0) {
        if ((st = req_string(item, "call_id", &at, &id, b->err)) != gptoss_status_success ||
            (st = req_string(item, "name", &at, &name, b->err)) != gptoss_status_success ||
            (st = req_string(item, "arguments", &at, &args, b->err)) != gptoss_status_success)
            return st;
        if (!valid_function_name(json_string_value(name), json_string_length(name)))
            return fail(b->err, gptoss_status_invalid_argument, path_at(&at, ".name").s,
                        "\"%.64s\" is not a function name ([A-Za-z0-9_-]{1,64})", json_string_value(name));
        add_tool_call(b, id, name, args);
        return gptoss_status_success;
    }
    if (strcmp(type, "function_call_output") == 0) {
        struct path op = path_at(&at, ".output"), ip = path_at(&at, ".call_id");
        if ((st = req_string(item, "call_id", &at, &id, b->err)) != gptoss_status_success ||
            (st = content_text(b, json_object_get(item, "output"), &op, responses_text_parts, false, &text)) !=
                gptoss_status_success)
            return st;
        st = add_tool_result(b, id, &ip, text);
        json_decref(text);
        return st;
    }
    return fail(b->err, gptoss_status_unsupported_argument, path_at(&at, ".type").s,
                "\"%.40s\" items are not supported (message, reasoning, function_call, function_call_output)", type);
}

enum gptoss_status gptoss_harmony_conversation_from_responses(const json_t* request,
                                                              const struct gptoss_harmony_render_options* options,
                                                              json_t** conversation_out,
                                                              struct gptoss_harmony_error* error_out) {
    struct gptoss_harmony_error scratch;
    struct gptoss_harmony_render_options defaults;
    struct build b = {.err = error_out != NULL ? error_out : &scratch};
    enum gptoss_status st = check_request(request, &options, conversation_out, b.err, &defaults);
    if (st != gptoss_status_success) return st;
    b.messages = json_array();
    b.calls = json_object();
    json_t *tools = json_array(), *instructions = NULL;
    const json_t* input = json_object_get(request, "input");
    const json_t* tool_defs = json_object_get(request, "tools");
    const json_t* reasoning = json_object_get(request, "reasoning");
    const json_t* instr;
    enum gptoss_harmony_effort effort = options->default_effort;
    size_t n = json_array_size(input), i = 0;

    if (!json_is_string(input) && (!json_is_array(input) || n == 0))
        st = fail(b.err, gptoss_status_invalid_argument, "input", "must be a string or a non-empty list of items");
    if (st == gptoss_status_success) st = opt_string(request, "instructions", NULL, &instr, b.err);
    if (st == gptoss_status_success && instr != NULL) instructions = json_incref((json_t*) instr);
    if (st == gptoss_status_success && reasoning != NULL && !json_is_null(reasoning) && !json_is_object(reasoning))
        st = fail(b.err, gptoss_status_invalid_argument, "reasoning", "must be an object or null");
    if (st == gptoss_status_success)
        st = parse_effort(&b, jget(reasoning, "effort"), &(struct path){"reasoning.effort"}, &effort);
    if (st == gptoss_status_success && tool_defs != NULL && !json_is_null(tool_defs) && !json_is_array(tool_defs))
        st = fail(b.err, gptoss_status_invalid_argument, "tools", "must be an array");
    for (size_t t = 0; st == gptoss_status_success && t < json_array_size(tool_defs); t++) {
        const json_t* def = json_array_get(tool_defs, t);
        struct path tp = path_at(NULL, "tools[%zu]", t);
        const char* type = jstr(def, "type");
        if (!json_is_object(def) || type == NULL)
            st = fail(b.err, gptoss_status_invalid_argument, tp.s, "must be {\"type\": \"function\", \"name\": ...}");
        else if (strcmp(type, "function") != 0)
            st = fail(b.err, gptoss_status_unsupported_argument, path_at(&tp, ".type").s,
                      "\"%.40s\" tools are not supported", type);
        else
            st = add_tool(&b, tools, def, &tp);
    }
    if (st == gptoss_status_success) st = apply_tool_choice(&b, json_object_get(request, "tool_choice"), true, tools);
    for (size_t k = 0; st == gptoss_status_success && k < n; k++) {
        const json_t* item = json_array_get(input, k);
        struct path at = path_at(NULL, "input[%zu]", k);
        const char* type = jstr(item, "type");
        const json_t* role;
        if (!json_is_object(item)) st = fail(b.err, gptoss_status_invalid_argument, at.s, "must be an object");
        else if (json_object_get(item, "type") != NULL && type == NULL)
            st = fail(b.err, gptoss_status_invalid_argument, path_at(&at, ".type").s, "must be a string");
        else if (type != NULL && strcmp(type, "message") != 0) {
        } else if ((st = req_string(item, "role", &at, &role, b.err)) == gptoss_status_success &&
                   (strcmp(json_string_value(role), "tool") == 0 || !is_role(json_string_value(role))))
            st = fail(b.err, gptoss_status_invalid_argument, path_at(&at, ".role").s,
                      "unknown role \"%.40s\" (user, assistant, system or developer)", json_string_value(role));
    }
    for (; st == gptoss_status_success && i < n; i++) {
        const json_t* item = json_array_get(input, i);
        const char* type = jstr(item, "type");
        if ((type != NULL && strcmp(type, "message") != 0) || !is_instruction_role(jstr(item, "role"))) break;
        json_t* text;
        struct path cp = path_at(NULL, "input[%zu].content", i);
        st = content_text(&b, json_object_get(item, "content"), &cp, responses_text_parts, false, &text);
        if (st == gptoss_status_success) join_instructions(&b, &instructions, text);
        json_decref(text);
    }
    if (st == gptoss_status_success) add_prologue(&b, options, effort, instructions, tools, schema_format(request, true));
    if (st == gptoss_status_success && json_is_string(input))
        b_message(&b, "user", NULL, NULL, NULL, NULL, b_text_content(&b, input));
    for (; st == gptoss_status_success && i < n; i++) st = responses_item(&b, json_array_get(input, i), i);
    json_decref(instructions);
    json_decref(tools);
    return finish_build(&b, st, conversation_out);
}

/* ---- completion tokens -> messages ---------------------------------------------------- */

/* Rust's UTF-8 check (str::from_utf8): true if s is valid; otherwise *valid_up_to and
 * *error_len (1-3 bytes of an invalid sequence, 0 for a sequence cut by the end). */
static bool utf8_check(const unsigned char* s, size_t n, size_t* valid_up_to, int* error_len) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int w = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        *valid_up_to = i;
        *error_len = 1;
        if (w == 0) return false;
        for (int k = 1; k < w; k++) {
            if (i + (size_t) k >= n) {
                *error_len = 0;
                return false;
            }
            unsigned char d = s[i + (size_t) k];
            bool ok = (d & 0xC0) == 0x80;
            if (k == 1 && c == 0xE0) ok = d >= 0xA0 && d <= 0xBF;
            if (k == 1 && c == 0xED) ok = d >= 0x80 && d <= 0x9F;
            if (k == 1 && c == 0xF0) ok = d >= 0x90 && d <= 0xBF;
            if (k == 1 && c == 0xF4) ok = d >= 0x80 && d <= 0x8F;
            if (!ok) {
                *error_len = k;
                return false;
            }
        }
        i += (size_t) w;
    }
    return true;
}

static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* Rust's String::from_utf8_lossy: each invalid sequence (or a cut one at the end) -> U+FFFD. */
static void utf8_lossy(struct sbuf* out, const char* s, size_t n) {
    const unsigned char* u = (const unsigned char*) s;
    for (;;) {
        size_t valid;
        int error_len;
        if (utf8_check(u, n, &valid, &error_len)) {
            sb_put(out, (const char*) u, n);
            return;
        }
        sb_put(out, (const char*) u, valid);
        sb_puts(out, replacement);
        if (error_len == 0) return;
        u += valid + (size_t) error_len;
        n -= valid + (size_t) error_len;
    }
}

/* Rust's char::is_whitespace for the character at s (valid UTF-8): its length, or 0. */
static size_t whitespace_len(const char* s, size_t n) {
    const unsigned char* u = (const unsigned char*) s;
    uint32_t cp;
    size_t len;
    if (n == 0) return 0;
    if (u[0] < 0x80) {
        cp = u[0];
        len = 1;
    } else if ((u[0] & 0xE0) == 0xC0 && n >= 2) {
        cp = ((uint32_t) (u[0] & 0x1F) << 6) | (u[1] & 0x3F);
        len = 2;
    } else if ((u[0] & 0xF0) == 0xE0 && n >= 3) {
        cp = ((uint32_t) (u[0] & 0x0F) << 12) | ((uint32_t) (u[1] & 0x3F) << 6) | (u[2] & 0x3F);
        len = 3;
    } else {
        return 0; /* 4-byte characters are never white space */
    }
    bool ws = (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
              (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
              cp == 0x3000;
    return ws ? len : 0;
}

/* Rust's str::trim on b (in place). */
static void trim(struct sbuf* b) {
    size_t start = 0, end = b->n, w;
    if (b->p == NULL) return;
    while (start < end && (w = whitespace_len(b->p + start, end - start)) > 0) start += w;
    while (end > start) {
        size_t k = end - 1;
        while (k > start && ((unsigned char) b->p[k] & 0xC0) == 0x80) k--;
        if (whitespace_len(b->p + k, end - k) != end - k) break;
        end = k;
    }
    memmove(b->p, b->p + start, end - start);
    b->n = end - start;
    b->p[b->n] = '\0';
}

static bool ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\x0C' || c == '\r'; }

enum { ROLE_USER, ROLE_ASSISTANT, ROLE_SYSTEM, ROLE_DEVELOPER, ROLE_TOOL, ROLE_NONE = -1 };

static int role_index(const char* s, size_t n) {
    for (int i = 0; i < (int) (sizeof(roles) / sizeof(roles[0])); i++)
        if (strlen(roles[i]) == n && memcmp(roles[i], s, n) == 0) return i;
    return ROLE_NONE;
}

enum pstate { P_EXPECT_START, P_HEADER, P_CONTENT };

struct parsed_header {
    int role;
    char *name, *channel, *recipient, *content_type;
};

static void header_free(struct parsed_header* h) {
    free(h->name);
    free(h->channel);
    free(h->recipient);
    free(h->content_type);
    *h = (struct parsed_header){.role = ROLE_NONE};
}

static char* dup_n(const char* s, size_t n, bool* oom) {
    char* d = malloc(n + 1);
    if (d == NULL) {
        *oom = true;
        return NULL;
    }
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

struct gptoss_harmony_parser {
    struct enc e;
    bool strict;
    int next_role;
    enum pstate state;
    struct tvec header_tokens, undecoded_tokens;
    struct sbuf undecoded_bytes, content, delta, end_text, dropped, work;
    struct parsed_header cur;
    struct gptoss_harmony_header view;
    json_t* messages;
    char error[320];
    struct gptoss_harmony_event events[3];
    size_t num_events;
    bool oom;
    bool failed; /* an allocation failed: the parser refuses further tokens */
};

/* The bytes of a token as o200k_harmony decodes it; false for an id it does not have. */
static bool token_bytes(const struct gptoss_harmony_parser* p, uint32_t id, char name[32], const char** s, size_t* n) {
    const struct enc* e = &p->e;
    if (id < e->num_text_tokens) {
        const void* ptr;
        if (gptoss_tokenizer_decode(e->tok, id, &ptr, n) != gptoss_status_success) return false;
        *s = ptr;
        return true;
    }
    if (id > HARMONY_LAST_TOKEN_ID) return false;
    const char* fixed = id == e->start       ? "<|start|>"
                        : id == e->message   ? "<|message|>"
                        : id == e->end       ? "<|end|>"
                        : id == e->ret       ? "<|return|>"
                        : id == e->call      ? "<|call|>"
                        : id == e->channel   ? "<|channel|>"
                        : id == e->constrain ? "<|constrain|>"
                        : id == 199998       ? "<|startoftext|>"
                        : id == 199999       ? "<|endoftext|>"
                                             : NULL;
    if (fixed != NULL) snprintf(name, 32, "%s", fixed);
    else snprintf(name, 32, "<|reserved_%" PRIu32 "|>", id);
    *s = name;
    *n = strlen(name);
    return true;
}

/* Appends the bytes of tokens; false (nothing appended) if one id is not a token. */
static bool decode_tokens(const struct gptoss_harmony_parser* p, const struct tvec* t, struct sbuf* out) {
    size_t start = out->n;
    for (size_t i = 0; i < t->n; i++) {
        char name[32];
        const char* s;
        size_t n;
        if (!token_bytes(p, t->p[i], name, &s, &n)) {
            out->n = start;
            if (out->p) out->p[start] = '\0';
            return false;
        }
        sb_put(out, s, n);
    }
    return true;
}

/* The text a caller may show for dropped tokens: bytes of known ids, U+FFFD otherwise. */
static void lossy_tokens(const struct gptoss_harmony_parser* p, const uint32_t* ids, size_t num, struct sbuf* out) {
    struct sbuf bytes = {0};
    for (size_t i = 0; i < num; i++) {
        char name[32];
        const char* s;
        size_t n;
        if (token_bytes(p, ids[i], name, &s, &n)) sb_put(&bytes, s, n);
        else sb_puts(&bytes, replacement);
    }
    utf8_lossy(out, bytes.p ? bytes.p : "", bytes.n);
    if (bytes.oom) out->oom = true;
    sb_free(&bytes);
}

static void emit(struct gptoss_harmony_parser* p, enum gptoss_harmony_event_type type, const struct sbuf* text,
                 enum gptoss_harmony_stop stop) {
    struct gptoss_harmony_event* ev = &p->events[p->num_events++];
    *ev = (struct gptoss_harmony_event){.type = type, .stop = stop};
    if (type != gptoss_harmony_event_error) ev->header = &p->view;
    if (text != NULL) {
        ev->text = text->p ? text->p : "";
        ev->text_size = text->n;
    }
    if (type == gptoss_harmony_event_error) ev->error = p->error;
}

/* An error event: message (copied unless it is p->error already), and the text of the
 * dropped tokens. */
static void parse_error(struct gptoss_harmony_parser* p, const uint32_t* dropped, size_t num_dropped,
                        const char* message) {
    if (message != p->error) snprintf(p->error, sizeof(p->error), "%s", message);
    sb_clear(&p->dropped);
    lossy_tokens(p, dropped, num_dropped, &p->dropped);
    emit(p, gptoss_harmony_event_error, &p->dropped, gptoss_harmony_stop_none);
}

/* openai-harmony's header rule, on the decoded header text in p->work. role: the known
 * role or ROLE_NONE; parse_recipient: false for the lenient end of a header, whose words
 * after the channel are then content (into *remaining). Returns an error message or NULL. */
static const char* parse_header_text(struct gptoss_harmony_parser* p, int role, bool parse_recipient,
                                     struct parsed_header* h, struct sbuf* remaining, bool* has_remaining) {
    static const char channel_marker[] = "<|channel|>", constrain_marker[] = "<|constrain|>";
    struct sbuf* w = &p->work;
    *h = (struct parsed_header){.role = ROLE_NONE};
    *has_remaining = false;
    bool oom = false;
    const char* at = w->n ? memmem(w->p, w->n, channel_marker, sizeof(channel_marker) - 1) : NULL;
    if (at != NULL) {
        size_t idx = (size_t) (at - w->p), v0 = idx + sizeof(channel_marker) - 1, v1 = v0;
        while (v1 < w->n && w->p[v1] != '<' && whitespace_len(w->p + v1, w->n - v1) == 0) {
            v1++;
            while (v1 < w->n && ((unsigned char) w->p[v1] & 0xC0) == 0x80) v1++;
        }
        if (v1 == v0) return "channel marker present but no channel value found in header";
        h->channel = dup_n(w->p + v0, v1 - v0, &oom);
        memmove(w->p + idx, w->p + v1, w->n - v1 + 1);
        w->n -= v1 - idx;
    }
    trim(w);
    if (w->n && memmem(w->p, w->n, constrain_marker, sizeof(constrain_marker) - 1) != NULL) {
        struct sbuf spaced = {0};
        size_t pos = 0;
        const char* m;
        while ((m = memmem(w->p + pos, w->n - pos, constrain_marker, sizeof(constrain_marker) - 1)) != NULL) {
            sb_put(&spaced, w->p + pos, (size_t) (m - (w->p + pos)));
            sb_put(&spaced, " ", 1);
            sb_put(&spaced, constrain_marker, sizeof(constrain_marker) - 1);
            pos = (size_t) (m - w->p) + sizeof(constrain_marker) - 1;
        }
        sb_put(&spaced, w->p + pos, w->n - pos);
        sb_free(w);
        *w = spaced;
        if (w->oom) oom = true;
        else trim(w);
    }
    /* split_ascii_whitespace */
    size_t num_parts = 0, cap = 8;
    struct {
        const char* s;
        size_t n;
    }* parts = malloc(cap * sizeof(*parts));
    if (parts == NULL || oom) {
        free(parts);
        p->oom = true;
        return "out of memory";
    }
    for (size_t i = 0; i < w->n;) {
        while (i < w->n && ascii_space(w->p[i])) i++;
        size_t j = i;
        while (j < w->n && !ascii_space(w->p[j])) j++;
        if (j > i) {
            if (num_parts == cap) {
                void* grown = realloc(parts, (cap *= 2) * sizeof(*parts));
                if (grown == NULL) {
                    free(parts);
                    p->oom = true;
                    return "out of memory";
                }
                parts = grown;
            }
            parts[num_parts].s = w->p + i;
            parts[num_parts++].n = j - i;
        }
        i = j;
    }
    size_t first = 0; /* parts[first..num_parts) remain */
    const char* error = NULL;
    bool role_given = role != ROLE_NONE;
    if (!role_given) {
        if (num_parts == 0) {
            error = "message header did not contain a role";
            goto done;
        }
        role = role_index(parts[0].s, parts[0].n);
        if (role == ROLE_NONE) {
            if (num_parts > 1 || (parts[0].n >= 3 && memcmp(parts[0].s, "to=", 3) == 0)) {
                role = ROLE_TOOL; /* an unknown author with a recipient: a tool */
                first = 1;
            } else {
                snprintf(p->error, sizeof(p->error), "Unknown role: %.*s", (int) parts[0].n, parts[0].s);
                error = p->error;
                goto done;
            }
        }
    }
    if (first < num_parts && role_index(parts[first].s, parts[first].n) == role) first++;
    size_t last = num_parts;
    if (parse_recipient && first < last) {
        size_t count = last - first;
        const char* s = parts[--last].s;
        size_t n = parts[last].n;
        if (n >= 3 && memcmp(s, "to=", 3) == 0) {
            h->recipient = dup_n(s + 3, n - 3, &oom);
        } else if (count == 1) {
            h->recipient = dup_n(s, n, &oom);
        } else {
            h->content_type = dup_n(s, n, &oom);
            s = parts[--last].s;
            n = parts[last].n;
            h->recipient = n >= 3 && memcmp(s, "to=", 3) == 0 ? dup_n(s + 3, n - 3, &oom) : dup_n(s, n, &oom);
        }
    }
    if (first < last) {
        *has_remaining = true;
        for (size_t i = first; i < last; i++) {
            if (i > first) sb_put(remaining, " ", 1);
            sb_put(remaining, parts[i].s, parts[i].n);
        }
    }
    if (!role_given && role == ROLE_TOOL) h->name = dup_n(parts[0].s, parts[0].n, &oom);
    h->role = role;
done:
    free(parts);
    if (oom || remaining->oom) {
        p->oom = true;
        return "out of memory";
    }
    return error;
}

static void set_current(struct gptoss_harmony_parser* p, struct parsed_header* h) {
    header_free(&p->cur);
    p->cur = *h;
    p->view = (struct gptoss_harmony_header){
        .role = roles[h->role],
        .name = h->name,
        .channel = h->channel,
        .recipient = h->recipient,
        .content_type = h->content_type,
    };
}

/* Appends the ended message to p->messages and emits the end event. */
static void end_message(struct gptoss_harmony_parser* p, const struct sbuf* text, enum gptoss_harmony_stop stop) {
    json_t* m = json_object();
    json_t* part = json_object();
    json_t* content = json_array();
    bool ok = m && part && content;
    ok = ok && json_object_set_new(m, "role", json_string(p->view.role)) == 0;
    if (p->view.name) ok = ok && json_object_set_new(m, "name", json_string(p->view.name)) == 0;
    if (p->view.channel) ok = ok && json_object_set_new(m, "channel", json_string(p->view.channel)) == 0;
    if (p->view.recipient) ok = ok && json_object_set_new(m, "recipient", json_string(p->view.recipient)) == 0;
    if (p->view.content_type) ok = ok && json_object_set_new(m, "content_type", json_string(p->view.content_type)) == 0;
    ok = ok && json_object_set_new(part, "type", json_string("text")) == 0;
    ok = ok && json_object_set_new(part, "text", json_stringn(text->p ? text->p : "", text->n)) == 0;
    ok = ok && json_array_append(content, part) == 0 && json_object_set(m, "content", content) == 0;
    ok = ok && json_array_append(p->messages, m) == 0;
    if (!ok) p->oom = true;
    json_decref(part);
    json_decref(content);
    json_decref(m);
    emit(p, gptoss_harmony_event_message_end, text, stop);
}

static enum gptoss_harmony_stop stop_kind(const struct enc* e, uint32_t token) {
    return token == e->end ? gptoss_harmony_stop_end : token == e->ret ? gptoss_harmony_stop_return : gptoss_harmony_stop_call;
}

/* The header tokens decoded as strict UTF-8 into p->work; false if they are not. */
static bool decode_header(struct gptoss_harmony_parser* p) {
    sb_clear(&p->work);
    size_t valid;
    int error_len;
    return decode_tokens(p, &p->header_tokens, &p->work) &&
           utf8_check((const unsigned char*) p->work.p, p->work.n, &valid, &error_len);
}

static void on_header_token(struct gptoss_harmony_parser* p, uint32_t token, bool eos) {
    const struct enc* e = &p->e;
    bool is_stop = !eos && (token == e->end || token == e->ret || token == e->call);
    struct parsed_header h = {.role = ROLE_NONE};
    struct sbuf remaining = {0};
    bool has_remaining;
    if (eos) {
        parse_error(p, p->header_tokens.p, p->header_tokens.n,
                    "Unexpected EOS while waiting for message header to complete");
    } else if (token == e->message) {
        p->state = P_EXPECT_START;
        const char* error = NULL;
        if (!decode_header(p)) error = "could not decode header";
        else error = parse_header_text(p, p->next_role, true, &h, &remaining, &has_remaining);
        if (error == NULL && has_remaining) {
            snprintf(p->error, sizeof(p->error), "unexpected tokens remaining in message header: Some(\"%.200s\")",
                     remaining.p);
            error = p->error;
        }
        if (error != NULL) {
            header_free(&h);
            parse_error(p, p->header_tokens.p, p->header_tokens.n, error);
        } else {
            p->next_role = ROLE_NONE;
            p->state = P_CONTENT;
            set_current(p, &h);
            sb_clear(&p->content);
            emit(p, gptoss_harmony_event_message_begin, NULL, gptoss_harmony_stop_none);
        }
    } else if (is_stop && !p->strict) {
        if (p->next_role != ROLE_NONE && p->header_tokens.n > 0) {
            const char* error = NULL;
            if (!decode_header(p)) error = "could not decode header";
            else error = parse_header_text(p, p->next_role, false, &h, &remaining, &has_remaining);
            if (error != NULL) { /* the state stays as it was, as in the reference */
                header_free(&h);
                parse_error(p, p->header_tokens.p, p->header_tokens.n, error);
                sb_free(&remaining);
                return;
            }
            set_current(p, &h);
            emit(p, gptoss_harmony_event_message_begin, NULL, gptoss_harmony_stop_none);
            sb_clear(&p->end_text);
            if (has_remaining) sb_put(&p->end_text, remaining.p, remaining.n);
            if (p->end_text.n > 0) emit(p, gptoss_harmony_event_content_delta, &p->end_text, gptoss_harmony_stop_none);
            end_message(p, &p->end_text, stop_kind(e, token));
        }
        p->state = P_EXPECT_START;
        p->next_role = ROLE_NONE;
    } else {
        tv_push(&p->header_tokens, token);
        if (p->header_tokens.oom) p->oom = true;
    }
    sb_free(&remaining);
}

static void on_content_token(struct gptoss_harmony_parser* p, uint32_t token, bool eos) {
    const struct enc* e = &p->e;
    if (!eos && token != e->end && token != e->ret && token != e->call) {
        tv_push(&p->undecoded_tokens, token);
        if (!decode_tokens(p, &p->undecoded_tokens, &p->undecoded_bytes)) return; /* wait: an unknown id */
        struct sbuf* u = &p->undecoded_bytes;
        struct sbuf* d = &p->delta;
        size_t valid;
        int error_len;
        sb_clear(d);
        if (utf8_check((const unsigned char*) u->p, u->n, &valid, &error_len)) {
            sb_put(d, u->p, u->n);
            sb_clear(u);
        } else {
            /* the complete characters, and at most one invalid sequence as U+FFFD; a cut
             * character waits for the next token */
            size_t drop = valid + (size_t) error_len;
            sb_put(d, u->p, valid);
            if (error_len > 0) sb_puts(d, replacement);
            memmove(u->p, u->p + drop, u->n - drop + 1);
            u->n -= drop;
        }
        p->undecoded_tokens.n = 0;
        sb_put(&p->content, d->p ? d->p : "", d->n);
        if (d->oom || p->content.oom || u->oom || p->undecoded_tokens.oom) p->oom = true;
        if (d->n > 0) emit(p, gptoss_harmony_event_content_delta, d, gptoss_harmony_stop_none);
        return;
    }
    struct sbuf* t = &p->end_text;
    sb_clear(t);
    sb_put(t, p->content.p ? p->content.p : "", p->content.n);
    if (p->undecoded_tokens.n > 0) {
        struct sbuf bytes = {0};
        size_t valid;
        int error_len;
        if (decode_tokens(p, &p->undecoded_tokens, &bytes) &&
            utf8_check((const unsigned char*) bytes.p, bytes.n, &valid, &error_len))
            sb_put(t, bytes.p, bytes.n);
        else
            sb_puts(t, replacement);
        if (bytes.oom) p->oom = true;
        sb_free(&bytes);
    }
    utf8_lossy(t, p->undecoded_bytes.p ? p->undecoded_bytes.p : "", p->undecoded_bytes.n);
    if (t->oom) p->oom = true;
    p->state = P_EXPECT_START;
    p->undecoded_tokens.n = 0;
    sb_clear(&p->undecoded_bytes);
    end_message(p, t, eos ? gptoss_harmony_stop_none : stop_kind(e, token));
}

static enum gptoss_status step(gptoss_harmony_parser_t p, uint32_t token, bool eos,
                               const struct gptoss_harmony_event** events_out, size_t* num_events_out) {
    p->num_events = 0;
    switch (p->state) {
    case P_EXPECT_START:
        if (!eos && token == p->e.start) {
            p->state = P_HEADER;
            p->header_tokens.n = 0;
        } else if (!eos) {
            snprintf(p->error, sizeof(p->error), "Unexpected token %" PRIu32 " while expecting start token %" PRIu32,
                     token, p->e.start);
            parse_error(p, &token, 1, p->error);
        }
        break;
    case P_HEADER: on_header_token(p, token, eos); break;
    case P_CONTENT: on_content_token(p, token, eos); break;
    }
    if (p->oom || p->dropped.oom || p->end_text.oom || p->work.oom) {
        p->failed = true;
        return gptoss_status_insufficient_memory;
    }
    *events_out = p->events;
    *num_events_out = p->num_events;
    return gptoss_status_success;
}

enum gptoss_status gptoss_harmony_parser_create(gptoss_tokenizer_t tokenizer, const char* role, uint32_t flags,
                                                gptoss_harmony_parser_t* parser_out) {
    struct gptoss_harmony_error err;
    if (tokenizer == NULL || parser_out == NULL) return gptoss_status_invalid_argument;
    if ((flags & ~GPTOSS_HARMONY_PARSE_LENIENT) != 0) return gptoss_status_invalid_argument;
    int r = role != NULL ? role_index(role, strlen(role)) : ROLE_NONE;
    if (role != NULL && r == ROLE_NONE) return gptoss_status_invalid_argument;
    gptoss_harmony_parser_t p = calloc(1, sizeof(*p));
    if (p == NULL) return gptoss_status_insufficient_memory;
    enum gptoss_status st = enc_init(&p->e, tokenizer, &err);
    if (st != gptoss_status_success) {
        free(p);
        return st;
    }
    p->messages = json_array();
    if (p->messages == NULL) {
        free(p);
        return gptoss_status_insufficient_memory;
    }
    gptoss_tokenizer_retain(tokenizer);
    p->strict = (flags & GPTOSS_HARMONY_PARSE_LENIENT) == 0;
    p->next_role = r;
    p->state = r != ROLE_NONE ? P_HEADER : P_EXPECT_START;
    p->cur.role = ROLE_NONE;
    *parser_out = p;
    return gptoss_status_success;
}

enum gptoss_status gptoss_harmony_parser_feed(gptoss_harmony_parser_t parser, uint32_t token,
                                              const struct gptoss_harmony_event** events_out,
                                              size_t* num_events_out) {
    if (parser == NULL || events_out == NULL || num_events_out == NULL) return gptoss_status_invalid_argument;
    if (parser->failed) return gptoss_status_invalid_state;
    return step(parser, token, false, events_out, num_events_out);
}

enum gptoss_status gptoss_harmony_parser_finish(gptoss_harmony_parser_t parser,
                                                const struct gptoss_harmony_event** events_out,
                                                size_t* num_events_out) {
    if (parser == NULL || events_out == NULL || num_events_out == NULL) return gptoss_status_invalid_argument;
    if (parser->failed) return gptoss_status_invalid_state;
    return step(parser, 0, true, events_out, num_events_out);
}

enum gptoss_status gptoss_harmony_parser_get_messages(gptoss_harmony_parser_t parser, json_t** messages_out) {
    if (parser == NULL || messages_out == NULL) return gptoss_status_invalid_argument;
    json_t* copy = json_deep_copy(parser->messages);
    if (copy == NULL) return gptoss_status_insufficient_memory;
    *messages_out = copy;
    return gptoss_status_success;
}

enum gptoss_status gptoss_harmony_parser_release(gptoss_harmony_parser_t parser) {
    if (parser == NULL) return gptoss_status_success;
    gptoss_tokenizer_release(parser->e.tok);
    free(parser->header_tokens.p);
    free(parser->undecoded_tokens.p);
    struct sbuf* bufs[] = {&parser->undecoded_bytes, &parser->content, &parser->delta,
                           &parser->end_text,        &parser->dropped, &parser->work};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) sb_free(bufs[i]);
    header_free(&parser->cur);
    json_decref(parser->messages);
    free(parser);
    return gptoss_status_success;
}

enum gptoss_status gptoss_harmony_parse_completion(gptoss_tokenizer_t tokenizer, const uint32_t* tokens,
                                                   size_t num_tokens, const char* role, uint32_t flags,
                                                   json_t** messages_out, struct gptoss_harmony_error* error_out) {
    struct gptoss_harmony_error scratch;
    struct gptoss_harmony_error* err = error_out != NULL ? error_out : &scratch;
    if (tokenizer == NULL || (tokens == NULL && num_tokens > 0) || messages_out == NULL)
        return fail(err, gptoss_status_invalid_argument, NULL, "%s is NULL",
                    tokenizer == NULL ? "tokenizer" : tokens == NULL ? "tokens" : "messages_out");
    if (role != NULL && role_index(role, strlen(role)) == ROLE_NONE)
        return fail(err, gptoss_status_invalid_argument, "role", "unknown role \"%.40s\"", role);
    if ((flags & ~GPTOSS_HARMONY_PARSE_LENIENT) != 0)
        return fail(err, gptoss_status_invalid_argument, "flags", "unknown flags 0x%" PRIx32, flags);
    gptoss_harmony_parser_t p;
    enum gptoss_status st = gptoss_harmony_parser_create(tokenizer, role, flags, &p);
    if (st != gptoss_status_success) return fail(err, st, NULL, "cannot create the parser");
    for (size_t i = 0; i <= num_tokens && st == gptoss_status_success; i++) {
        const struct gptoss_harmony_event* events;
        size_t num_events;
        st = i < num_tokens ? gptoss_harmony_parser_feed(p, tokens[i], &events, &num_events)
                            : gptoss_harmony_parser_finish(p, &events, &num_events);
        if (st != gptoss_status_success) {
            st = fail_oom(err);
            break;
        }
        for (size_t k = 0; k < num_events; k++)
            if (events[k].type == gptoss_harmony_event_error) {
                char at[32];
                if (i < num_tokens) snprintf(at, sizeof(at), "tokens[%zu]", i);
                else snprintf(at, sizeof(at), "tokens");
                st = fail(err, gptoss_status_invalid_argument, at, "%s", events[k].error);
            }
    }
    if (st == gptoss_status_success) st = gptoss_harmony_parser_get_messages(p, messages_out);
    if (st == gptoss_status_insufficient_memory) fail_oom(err);
    gptoss_harmony_parser_release(p);
    return st;
}
