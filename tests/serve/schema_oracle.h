/* The test oracle of server/json_schema.c, written apart from it: a JSON Schema validator over
 * jansson values (the schema as the request gave it, keywords read where they stand, $ref
 * looked up when met) and a scan of the text for the recognizer's own rules.
 *
 * oracle_verdict(schema, text): 1 when the text is a valid document (the recognizer must take
 * it whole), 0 when not, -1 when jansson cannot tell (its limits, which RFC 8259 does not
 * have: integers beyond int64, lone surrogate escapes, numbers with more significant digits
 * than a double keeps or far exponents: the recognizer compares an enum's numbers by their
 * decimal digits, jansson reads them rounded).
 *
 * Semantics: JSON Schema's for type, enum, const (JSON equality: numbers by value, objects in
 * any key order), properties, required, additionalProperties, items, minItems, maxItems,
 * minLength, maxLength (code points), anyOf, allOf, $ref ("#", "#/$defs/NAME",
 * "#/definitions/NAME"); "integer" is a number written without fraction or exponent (jansson
 * loads it as an integer). The text's own rules: duplicate keys refused (jansson's
 * JSON_REJECT_DUPLICATES), no backslash in a key, nothing before or after the value, at most
 * SRV_JSON_MAX_DEPTH nested containers and SRV_JSON_MAX_WS whitespace bytes in a row. */
#ifndef GPTOSS_TESTS_SERVE_SCHEMA_ORACLE_H
#define GPTOSS_TESTS_SERVE_SCHEMA_ORACLE_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "server.h"

static int oracle_is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int oracle_equal(const json_t* a, const json_t* b) {
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b)) return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b)) return 0;
    if (json_is_string(a)) {
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    }
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b)) return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!oracle_equal(json_array_get(a, i), json_array_get(b, i))) return 0;
        return 1;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b)) return 0;
        const char* k;
        json_t* v;
        json_object_foreach((json_t*) a, k, v) {
            const json_t* w = json_object_get(b, k);
            if (w == NULL || !oracle_equal(v, w)) return 0;
        }
        return 1;
    }
    return 1;
}

static int oracle_has_type(const char* t, const json_t* v) {
    if (strcmp(t, "null") == 0) return json_is_null(v);
    if (strcmp(t, "boolean") == 0) return json_is_boolean(v);
    if (strcmp(t, "integer") == 0) return json_is_integer(v);
    if (strcmp(t, "number") == 0) return json_is_number(v);
    if (strcmp(t, "string") == 0) return json_is_string(v);
    if (strcmp(t, "array") == 0) return json_is_array(v);
    if (strcmp(t, "object") == 0) return json_is_object(v);
    return 0;
}

static size_t oracle_code_points(const char* s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char) s[i] & 0xC0) != 0x80;
    return k;
}

static const json_t* oracle_ref(const json_t* root, const char* ref) {
    if (strcmp(ref, "#") == 0) return root;
    const char* prefixes[2] = {"#/$defs/", "#/definitions/"};
    for (int i = 0; i < 2; i++) {
        const size_t n = strlen(prefixes[i]);
        if (strncmp(ref, prefixes[i], n) != 0) continue;
        char name[256];
        size_t k = 0;
        for (const char* p = ref + n; *p && k + 1 < sizeof(name); p++) {
            if (p[0] == '~' && p[1] == '1') { name[k++] = '/'; p++; }
            else if (p[0] == '~' && p[1] == '0') { name[k++] = '~'; p++; }
            else name[k++] = *p;
        }
        name[k] = '\0';
        return json_object_get(json_object_get(root, i == 0 ? "$defs" : "definitions"), name);
    }
    return NULL;
}

/* depth: $ref hops without descending into v (a guard; the schemas under test have none) */
static int oracle_valid(const json_t* root, const json_t* sch, const json_t* v, int hops) {
    if (json_is_true(sch)) return 1;
    if (json_is_false(sch) || !json_is_object(sch) || hops > 1000) return 0;
    const json_t* x;
    if ((x = json_object_get(sch, "$ref")) != NULL && !oracle_valid(root, oracle_ref(root, json_string_value(x)), v, hops + 1))
        return 0;
    if ((x = json_object_get(sch, "allOf")) != NULL) {
        for (size_t i = 0; i < json_array_size(x); i++)
            if (!oracle_valid(root, json_array_get(x, i), v, hops + 1)) return 0;
    }
    if ((x = json_object_get(sch, "anyOf")) != NULL) {
        int one = 0;
        for (size_t i = 0; i < json_array_size(x) && !one; i++) one = oracle_valid(root, json_array_get(x, i), v, hops + 1);
        if (!one) return 0;
    }
    if ((x = json_object_get(sch, "type")) != NULL) {
        int one = 0;
        if (json_is_string(x)) one = oracle_has_type(json_string_value(x), v);
        for (size_t i = 0; i < json_array_size(x) && !one; i++) one = oracle_has_type(json_string_value(json_array_get(x, i)), v);
        if (!one) return 0;
    }
    if ((x = json_object_get(sch, "const")) != NULL && !oracle_equal(x, v)) return 0;
    if ((x = json_object_get(sch, "enum")) != NULL) {
        int one = 0;
        for (size_t i = 0; i < json_array_size(x) && !one; i++) one = oracle_equal(json_array_get(x, i), v);
        if (!one) return 0;
    }
    if (json_is_string(v)) {
        const size_t n = oracle_code_points(json_string_value(v), json_string_length(v));
        if ((x = json_object_get(sch, "minLength")) != NULL && (double) n < json_number_value(x)) return 0;
        if ((x = json_object_get(sch, "maxLength")) != NULL && (double) n > json_number_value(x)) return 0;
    }
    if (json_is_array(v)) {
        const size_t n = json_array_size(v);
        if ((x = json_object_get(sch, "minItems")) != NULL && (double) n < json_number_value(x)) return 0;
        if ((x = json_object_get(sch, "maxItems")) != NULL && (double) n > json_number_value(x)) return 0;
        if ((x = json_object_get(sch, "items")) != NULL) {
            for (size_t i = 0; i < n; i++)
                if (!oracle_valid(root, x, json_array_get(v, i), 0)) return 0;
        }
    }
    if (json_is_object(v)) {
        const json_t* props = json_object_get(sch, "properties");
        const json_t* extra = json_object_get(sch, "additionalProperties");
        const char* k;
        json_t* w;
        json_object_foreach((json_t*) v, k, w) {
            const json_t* p = json_object_get(props, k);
            if (p != NULL ? !oracle_valid(root, p, w, 0) : extra != NULL && !oracle_valid(root, extra, w, 0)) return 0;
        }
        x = json_object_get(sch, "required");
        for (size_t i = 0; i < json_array_size(x); i++)
            if (json_object_get(v, json_string_value(json_array_get(x, i))) == NULL) return 0;
    }
    return 1;
}

/* The text's own rules (a text jansson loaded), and whether a number in it is beyond what
 * jansson keeps exactly (*beyond). */
static int oracle_text_rules(const unsigned char* s, size_t n, int* beyond) {
    int depth = 0, run = 0;
    *beyond = 0;
    if (n == 0 || oracle_is_ws(s[0]) || oracle_is_ws(s[n - 1])) return 0;
    for (size_t i = 0; i < n; i++) {
        const unsigned char c = s[i];
        if (c == '"') { /* a string: a key when ':' follows it */
            int escaped = 0;
            for (i++; i < n && s[i] != '"'; i++) {
                if (s[i] == '\\') {
                    escaped = 1;
                    i++;
                }
            }
            size_t j = i + 1;
            while (j < n && oracle_is_ws(s[j])) j++;
            if (escaped && j < n && s[j] == ':') return 0;
            run = 0;
            continue;
        }
        if (oracle_is_ws(c)) {
            if (++run > SRV_JSON_MAX_WS) return 0;
            continue;
        }
        run = 0;
        if (c == '\0') return 0; /* jansson takes NUL between tokens; RFC 8259 does not */
        if (c == '{' || c == '[') {
            if (++depth > SRV_JSON_MAX_DEPTH) return 0;
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == '-' || (c >= '0' && c <= '9')) { /* significant digits and decimal exponent */
            int digits = 0, seen = 0, point = 0, frac = 0;
            size_t j = i + (c == '-');
            for (; j < n && ((s[j] >= '0' && s[j] <= '9') || s[j] == '.'); j++) {
                if (s[j] == '.') { frac = 1; continue; }
                if (s[j] != '0' || seen) { seen = 1; digits++; }
                if (!frac) point++;
            }
            long e = 0, sign = 1;
            if (j < n && (s[j] == 'e' || s[j] == 'E')) {
                j++;
                if (j < n && (s[j] == '+' || s[j] == '-')) sign = s[j++] == '-' ? -1 : 1;
                for (; j < n && s[j] >= '0' && s[j] <= '9'; j++) e = e < 100000 ? e * 10 + (s[j] - '0') : e;
            }
            if (digits > 15 || labs(sign * e + point) > 300) *beyond = 1;
            i = j - 1;
        }
    }
    return 1;
}

static int oracle_verdict(const json_t* schema, const char* text, size_t n) {
    json_error_t err;
    json_t* v = json_loadb(text, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (v == NULL) {
        if (strstr(err.text, "too big") != NULL || strstr(err.text, "overflow") != NULL ||
            strstr(err.text, "surrogate") != NULL || strstr(err.text, "Unicode") != NULL)
            return -1;
        return 0;
    }
    int beyond = 0;
    const int rules = oracle_text_rules((const unsigned char*) text, n, &beyond);
    const int ok = rules && oracle_valid(schema, schema, v, 0);
    json_decref(v);
    return beyond && rules ? -1 : ok;
}

#endif
