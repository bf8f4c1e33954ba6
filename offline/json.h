/* Internal: a small, strict JSON reader (RFC 8259) for config.json, safetensors headers and
 * test data. Robust to malformed input: bounded nesting depth, every length checked,
 * errors reported with the byte offset. */
#ifndef GPTOSS_ENGINE_JSON_H
#define GPTOSS_ENGINE_JSON_H

#include <stddef.h>
#include <stdint.h>

enum gptoss_json_type {
    gptoss_json_null,
    gptoss_json_bool,
    gptoss_json_number,
    gptoss_json_string,
    gptoss_json_array,
    gptoss_json_object,
};

struct gptoss_json_member;

struct gptoss_json {
    enum gptoss_json_type type;
    int boolean;
    double number;
    int is_uint;          /* number written as a non-negative integer that fits uint64 */
    uint64_t uint_value;
    char* string;         /* NUL-terminated UTF-8 (may contain NUL from \u0000: use length) */
    size_t length;        /* string length in bytes, or number of items / members */
    struct gptoss_json* items;            /* array */
    struct gptoss_json_member* members;   /* object, in file order */
};

struct gptoss_json_member {
    char* key;
    size_t key_length;
    struct gptoss_json value;
};

#define GPTOSS_JSON_MAX_DEPTH 64

/* Parses text[0..size) (the whole input must be one value plus whitespace). Returns 0 and
 * *out (free with gptoss_json_free) or -1 with a message in err. */
int gptoss_json_parse(const char* text, size_t size, struct gptoss_json** out, char* err, size_t err_size);
void gptoss_json_free(struct gptoss_json* value);

/* Object member by key (the last one if repeated), or NULL. NULL/non-object -> NULL. */
const struct gptoss_json* gptoss_json_get(const struct gptoss_json* object, const char* key);

#endif
