/* safetensors reader: 8-byte little-endian header length, JSON header
 * {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
 * then the data buffer (offsets relative to its start). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gptoss/error.h>
#include <jansson.h>

#include "safetensors.h"

static const struct {
    const char* name;
    uint32_t size;
} dtypes[] = {
    {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
    {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4}, {"F64", 8}, {"I64", 8}, {"U64", 8},
};

#define BAD(...) return gptoss_fail(gptoss_status_invalid_argument, __VA_ARGS__)

/* A non-negative integer (jansson's integers are signed 64-bit). */
static int get_uint(const json_t* v, uint64_t* out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return 0;
    *out = (uint64_t) json_integer_value(v);
    return 1;
}

static enum gptoss_status add_tensor(struct gptoss_st_set* set, const char* name, const json_t* v, uint64_t data_start,
                                     uint64_t data_size, uint32_t file, const char* what) {
    if (name[0] == '\0') BAD("%s: empty tensor name", what);
    if (!json_is_object(v)) BAD("%s: tensor %s: entry is not an object", what, name);
    const json_t* dt = json_object_get(v, "dtype");
    const json_t* sh = json_object_get(v, "shape");
    const json_t* off = json_object_get(v, "data_offsets");
    if (!json_is_string(dt)) BAD("%s: tensor %s: no string \"dtype\"", what, name);
    if (!json_is_array(sh)) BAD("%s: tensor %s: no array \"shape\"", what, name);
    uint64_t b = 0, e = 0;
    if (!json_is_array(off) || json_array_size(off) != 2 || !get_uint(json_array_get(off, 0), &b) ||
        !get_uint(json_array_get(off, 1), &e)) {
        BAD("%s: tensor %s: \"data_offsets\" is not [begin, end] of non-negative integers", what, name);
    }
    struct gptoss_st_tensor t;
    memset(&t, 0, sizeof(t));
    const char* dtype = json_string_value(dt);
    for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++) {
        if (strcmp(dtype, dtypes[i].name) == 0 && json_string_length(dt) == strlen(dtypes[i].name)) {
            strcpy(t.dtype, dtypes[i].name);
            t.element_size = dtypes[i].size;
        }
    }
    if (t.element_size == 0) BAD("%s: tensor %s: unknown dtype \"%.20s\"", what, name, dtype);
    if (json_array_size(sh) > GPTOSS_ST_MAX_RANK) {
        BAD("%s: tensor %s: rank %zu over %d", what, name, json_array_size(sh), GPTOSS_ST_MAX_RANK);
    }
    t.rank = (uint32_t) json_array_size(sh);
    uint64_t bytes = t.element_size;
    for (uint32_t i = 0; i < t.rank; i++) {
        if (!get_uint(json_array_get(sh, i), &t.shape[i])) {
            BAD("%s: tensor %s: shape[%u] is not a non-negative integer", what, name, i);
        }
        if (__builtin_mul_overflow(bytes, t.shape[i], &bytes)) BAD("%s: tensor %s: shape overflows", what, name);
    }
    if (b > e || e > data_size) {
        BAD("%s: tensor %s: data_offsets [%llu, %llu] outside the data buffer of %llu bytes", what, name,
            (unsigned long long) b, (unsigned long long) e, (unsigned long long) data_size);
    }
    if (e - b != bytes) {
        BAD("%s: tensor %s: data_offsets give %llu bytes, dtype %s x shape gives %llu", what, name,
            (unsigned long long) (e - b), t.dtype, (unsigned long long) bytes);
    }
    t.offset = data_start + b;
    t.size = bytes;
    t.file = file;
    if (gptoss_st_find(set, name) != NULL) BAD("%s: tensor %s appears more than once", what, name);
    t.name = strdup(name);
    struct gptoss_st_tensor* grown = realloc(set->tensors, (set->num_tensors + 1) * sizeof(*grown));
    if (t.name == NULL || grown == NULL) {
        free(t.name);
        if (grown) set->tensors = grown;
        return gptoss_fail(gptoss_status_insufficient_memory, "out of memory");
    }
    set->tensors = grown;
    set->tensors[set->num_tensors++] = t;
    return gptoss_status_success;
}

enum gptoss_status gptoss_st_parse(const uint8_t* data, uint64_t size, uint32_t file, const char* what,
                                   struct gptoss_st_set* set) {
    if (size < 8) BAD("%s: %llu bytes, too short for a safetensors header", what, (unsigned long long) size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | data[i];
    if (n < 2 || n > GPTOSS_ST_MAX_HEADER || n > size - 8) {
        BAD("%s: header length %llu is invalid (file %llu bytes, limit %u)", what, (unsigned long long) n,
            (unsigned long long) size, GPTOSS_ST_MAX_HEADER);
    }
    /* trailing spaces are allowed by the format: the parser skips whitespace; a tensor
     * named twice is an error, not the last one wins */
    json_error_t error;
    json_t* root = json_loadb((const char*) data + 8, (size_t) n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &error);
    if (root == NULL) BAD("%s: header: %s (byte %d)", what, error.text, error.position);
    enum gptoss_status st = gptoss_status_success;
    if (!json_is_object(root)) {
        st = gptoss_fail(gptoss_status_invalid_argument, "%s: header is not a JSON object", what);
        goto done;
    }
    const char* name;
    json_t* value;
    json_object_foreach(root, name, value) {
        if (strcmp(name, "__metadata__") == 0) continue;
        st = add_tensor(set, name, value, 8 + n, size - 8 - n, file, what);
        if (st != gptoss_status_success) goto done;
    }
done:
    json_decref(root);
    return st;
}

const struct gptoss_st_tensor* gptoss_st_find(const struct gptoss_st_set* set, const char* name) {
    for (size_t i = 0; i < set->num_tensors; i++) {
        if (strcmp(set->tensors[i].name, name) == 0) return &set->tensors[i];
    }
    return NULL;
}

void gptoss_st_close(struct gptoss_st_set* set) {
    for (size_t i = 0; i < set->num_files; i++) {
        if (set->files[i].map != NULL && set->files[i].size != 0) munmap((void*) set->files[i].map, set->files[i].size);
        free(set->files[i].path);
    }
    for (size_t i = 0; i < set->num_tensors; i++) free(set->tensors[i].name);
    free(set->files);
    free(set->tensors);
    memset(set, 0, sizeof(*set));
}

static int cmp_str(const void* a, const void* b) { return strcmp(*(char* const*) a, *(char* const*) b); }

enum gptoss_status gptoss_st_open_dir(const char* dir, struct gptoss_st_set* set) {
    memset(set, 0, sizeof(*set));
    DIR* d = opendir(dir);
    if (d == NULL) return gptoss_fail(gptoss_status_io_error, "%s: cannot open directory: %s", dir, strerror(errno));
    char** names = NULL;
    size_t count = 0;
    enum gptoss_status st = gptoss_status_success;
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 12 && strcmp(e->d_name + len - 12, ".safetensors") == 0 && e->d_name[0] != '.') {
            char** grown = realloc(names, (count + 1) * sizeof(char*));
            if (grown == NULL) break;
            names = grown;
            names[count] = strdup(e->d_name);
            if (names[count] != NULL) count++;
        }
    }
    closedir(d);
    if (count == 0) {
        free(names);
        return gptoss_fail(gptoss_status_io_error, "%s: no *.safetensors files", dir);
    }
    qsort(names, count, sizeof(char*), cmp_str);
    set->files = calloc(count, sizeof(*set->files));
    if (set->files == NULL) {
        st = gptoss_fail(gptoss_status_insufficient_memory, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < count; i++) {
        struct gptoss_st_file* f = &set->files[i];
        set->num_files = i + 1;
        size_t plen = strlen(dir) + strlen(names[i]) + 2;
        f->path = malloc(plen);
        if (f->path == NULL) {
            st = gptoss_fail(gptoss_status_insufficient_memory, "out of memory");
            goto done;
        }
        snprintf(f->path, plen, "%s/%s", dir, names[i]);
        int fd = open(f->path, O_RDONLY | O_CLOEXEC);
        struct stat sb;
        if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            st = gptoss_fail(gptoss_status_io_error, "%s: cannot open: %s", f->path, fd < 0 ? strerror(errno) : "not a regular file");
            if (fd >= 0) close(fd);
            goto done;
        }
        f->size = (uint64_t) sb.st_size;
        if (f->size > 0) {
            void* map = mmap(NULL, (size_t) f->size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (map == MAP_FAILED) {
                st = gptoss_fail(gptoss_status_io_error, "%s: mmap failed: %s", f->path, strerror(errno));
                close(fd);
                goto done;
            }
            f->map = map;
        }
        close(fd);
        st = gptoss_st_parse(f->map, f->size, (uint32_t) i, f->path, set);
        if (st != gptoss_status_success) goto done;
    }
done:
    for (size_t i = 0; i < count; i++) free(names[i]);
    free(names);
    if (st != gptoss_status_success) gptoss_st_close(set);
    return st;
}
