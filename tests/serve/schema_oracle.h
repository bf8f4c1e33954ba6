/* The test oracle of server/json_schema.c, written apart from it: a JSON Schema validator over
 * jansson values (the schema as the request gave it, keywords read where they stand, $ref
 * looked up when met) and a scan of the text for the recognizer's own rules.
 *
 * oracle_verdict(schema, text): 1 when the text is a valid document (the recognizer must take
 * it whole), 0 when not, -1 when the oracle cannot tell: PCRE2 reached its match limit on a
 * pattern, or jansson's limits (which RFC 8259 does not
 * have: integers beyond int64, lone surrogate escapes, numbers with more significant digits
 * than a double keeps or far exponents: the recognizer compares an enum's numbers by their
 * decimal digits, jansson reads them rounded).
 *
 * Semantics: JSON Schema's for type, enum, const (JSON equality: numbers by value, objects in
 * any key order), properties, required, additionalProperties, items, minItems, maxItems,
 * minLength, maxLength (code points), anyOf, allOf, $ref ("#", "#/$defs/NAME",
 * "#/definitions/NAME"); "integer" is a number written without fraction or exponent (jansson
 * loads it as an integer); minimum, maximum, exclusiveMinimum, exclusiveMaximum (2020-12's
 * numbers) compared as jansson holds the values (exact where the oracle answers at all: at
 * most 15 significant digits); pattern by PCRE2 on the string (UTF, unanchored: a match
 * anywhere), the ECMA-262 differences of the test patterns mapped ('.' excludes the four line
 * terminators, '$' only at the end (PCRE2_DOLLAR_ENDONLY), [] and [^] as ECMA reads them
 * (PCRE2_ALLOW_EMPTY_CLASS: nothing, anything), \uXXXX (PCRE2_ALT_BSUX; a
 * surrogate pair as its character), \s as ECMA's list, \S outside classes as its complement);
 * format date, time, date-time, uuid, ipv4 checked by hand from RFC 3339 (years 0001-9999),
 * RFC 4122's hex form and dotted quads without leading zeros. The text's own rules:
 * duplicate keys refused (jansson's JSON_REJECT_DUPLICATES), no backslash in a key, nothing
 * before or after the value, at most SRV_JSON_MAX_DEPTH nested containers and
 * SRV_JSON_MAX_WS whitespace bytes in a row, a number of at most
 * SRV_SCHEMA_MAX_NUMBER_DIGITS digits before its exponent and SRV_SCHEMA_MAX_EXPONENT_DIGITS
 * in it. */
#ifndef GPTOSS_TESTS_SERVE_SCHEMA_ORACLE_H
#define GPTOSS_TESTS_SERVE_SCHEMA_ORACLE_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "server.h"

/* number a vs bound b (integers exactly, else as doubles): <0, 0, >0 */
static int oracle_cmp(const json_t* a, const json_t* b) {
    if (json_is_integer(a) && json_is_integer(b))
        return (json_integer_value(a) > json_integer_value(b)) - (json_integer_value(a) < json_integer_value(b));
    const double x = json_number_value(a), y = json_number_value(b);
    return (x > y) - (x < y);
}

/* The pattern on a string: PCRE2 (UTF), a match anywhere. */
/* Set when PCRE2 could not decide a pattern (its match limit, on a backtracking pattern the
 * recognizer's DFA decides): oracle_verdict then answers -1, cannot tell. */
static int oracle_undecided;

static int oracle_pattern(const char* pat, const char* s, size_t n) {
    char re[8192];
    size_t k = 0;
    int in_class = 0;
    for (const char* p = pat; *p && k + 200 < sizeof(re); p++) {
        if (*p == '\\' && p[1] == 'u' && p[6] == '\\' && p[7] == 'u') { /* a surrogate pair: the character */
            char h[5] = {p[2], p[3], p[4], p[5], 0}, l[5] = {p[8], p[9], p[10], p[11], 0};
            const long hi = strtol(h, NULL, 16), lo = strtol(l, NULL, 16);
            if (hi >= 0xD800 && hi <= 0xDBFF && lo >= 0xDC00 && lo <= 0xDFFF) {
                const long cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                re[k++] = (char) (0xF0 | cp >> 18);
                re[k++] = (char) (0x80 | (cp >> 12 & 0x3F));
                re[k++] = (char) (0x80 | (cp >> 6 & 0x3F));
                re[k++] = (char) (0x80 | (cp & 0x3F));
                p += 11;
                continue;
            }
        }
        if (*p == '\\' && p[1]) {
            if (in_class && p[1] == 's') { /* ECMA's list inside the class (\\S in a class: not in the tests) */
                k += (size_t) sprintf(re + k, "\\t\\n\\u000b\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029"
                                      "\\u202f\\u205f\\u3000\\ufeff");
            } else if (!in_class && (p[1] == 's' || p[1] == 'S')) {
                k += (size_t) sprintf(re + k, "[%s\\t\\n\\u000b\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029"
                                      "\\u202f\\u205f\\u3000\\ufeff]", p[1] == 'S' ? "^" : "");
            } else {
                re[k++] = p[0];
                re[k++] = p[1];
            }
            p++;
            continue;
        }
        if (*p == '[') in_class = 1;
        else if (*p == ']') in_class = 0;
        if (*p == '.' && !in_class) k += (size_t) sprintf(re + k, "[^\\n\\r\\u2028\\u2029]");
        else re[k++] = *p;
    }
    int code;
    PCRE2_SIZE at;
    pcre2_code* c = pcre2_compile((PCRE2_SPTR) re, k, PCRE2_UTF | PCRE2_ALT_BSUX | PCRE2_DOLLAR_ENDONLY | PCRE2_ALLOW_EMPTY_CLASS,
                                  &code, &at, NULL);
    if (c == NULL) return 0;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(c, NULL);
    const int rc = pcre2_match(c, (PCRE2_SPTR) s, n, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    pcre2_code_free(c);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) oracle_undecided = 1;
    return rc >= 0;
}

static int oracle_digits(const char* s, int n) {
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return -1;
    int v = 0;
    for (int i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
    return v;
}

/* RFC 3339 full-date (year 0001 or later), full-time; RFC 4122; a dotted quad. */
static int oracle_date(const char* s) {
    const int y = oracle_digits(s, 4), m = oracle_digits(s + 5, 2), d = oracle_digits(s + 8, 2);
    if (s[4] != '-' || s[7] != '-' || y < 1 || m < 1 || m > 12 || d < 1) return 0;
    static const int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= kDays[m - 1] + (m == 2 && leap);
}

static int oracle_time(const char* s, size_t n) {
    if (n < 9 || s[2] != ':' || s[5] != ':') return 0;
    const int h = oracle_digits(s, 2), mi = oracle_digits(s + 3, 2), se = oracle_digits(s + 6, 2);
    if (h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 60) return 0;
    size_t i = 8;
    if (s[i] == '.') {
        size_t j = i + 1;
        while (j < n && s[j] >= '0' && s[j] <= '9') j++;
        if (j == i + 1) return 0;
        i = j;
    }
    if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z')) return 1;
    if (i + 6 != n || (s[i] != '+' && s[i] != '-') || s[i + 3] != ':') return 0;
    const int oh = oracle_digits(s + i + 1, 2), om = oracle_digits(s + i + 4, 2);
    return oh >= 0 && oh <= 23 && om >= 0 && om <= 59;
}

static int oracle_format(const char* f, const char* s, size_t n) {
    if (strlen(s) != n) return 0; /* a NUL inside: none of these */
    if (strcmp(f, "date") == 0) return n == 10 && oracle_date(s);
    if (strcmp(f, "time") == 0) return oracle_time(s, n);
    if (strcmp(f, "date-time") == 0) return n > 11 && oracle_date(s) && (s[10] == 'T' || s[10] == 't') &&
                                                    oracle_time(s + 11, n - 11);
    if (strcmp(f, "uuid") == 0) {
        if (n != 36) return 0;
        for (size_t i = 0; i < n; i++) {
            const int dash = i == 8 || i == 13 || i == 18 || i == 23;
            const char c = s[i];
            const int hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
            if (dash ? c != '-' : !hex) return 0;
        }
        return 1;
    }
    if (strcmp(f, "ipv4") == 0) {
        const char* p = s;
        for (int part = 0; part < 4; part++) {
            int len = 0, v = 0;
            while (p[len] >= '0' && p[len] <= '9' && len < 4) v = v * 10 + (p[len++] - '0');
            if (len == 0 || len > 3 || v > 255 || (len > 1 && p[0] == '0')) return 0;
            p += len;
            if (part < 3 && *p++ != '.') return 0;
        }
        return *p == '\0';
    }
    return 0;
}

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
        if ((x = json_object_get(sch, "pattern")) != NULL &&
            !oracle_pattern(json_string_value(x), json_string_value(v), json_string_length(v)))
            return 0;
        if ((x = json_object_get(sch, "format")) != NULL &&
            !oracle_format(json_string_value(x), json_string_value(v), json_string_length(v)))
            return 0;
    }
    if (json_is_number(v)) {
        if ((x = json_object_get(sch, "minimum")) != NULL && oracle_cmp(v, x) < 0) return 0;
        if ((x = json_object_get(sch, "exclusiveMinimum")) != NULL && oracle_cmp(v, x) <= 0) return 0;
        if ((x = json_object_get(sch, "maximum")) != NULL && oracle_cmp(v, x) > 0) return 0;
        if ((x = json_object_get(sch, "exclusiveMaximum")) != NULL && oracle_cmp(v, x) >= 0) return 0;
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
            int all = 0, edigits = 0;
            for (size_t k = i; k < j; k++) all += s[k] >= '0' && s[k] <= '9';
            if (j < n && (s[j] == 'e' || s[j] == 'E')) {
                j++;
                if (j < n && (s[j] == '+' || s[j] == '-')) sign = s[j++] == '-' ? -1 : 1;
                for (; j < n && s[j] >= '0' && s[j] <= '9'; j++, edigits++) e = e < 100000 ? e * 10 + (s[j] - '0') : e;
            }
            if (all > SRV_SCHEMA_MAX_NUMBER_DIGITS || edigits > SRV_SCHEMA_MAX_EXPONENT_DIGITS) return 0;
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
    oracle_undecided = 0;
    const int rules = oracle_text_rules((const unsigned char*) text, n, &beyond);
    const int ok = rules && oracle_valid(schema, schema, v, 0);
    json_decref(v);
    return (beyond && rules) || oracle_undecided ? -1 : ok;
}

#endif
