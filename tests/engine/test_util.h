/* Shared helpers for the engine tests: counters, file I/O, temp dirs. */
#ifndef GPTOSS_TEST_ENGINE_UTIL_H
#define GPTOSS_TEST_ENGINE_UTIL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static int g_passed, g_failed, g_skipped;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (cond) {                                                               \
            g_passed++;                                                           \
        } else {                                                                  \
            g_failed++;                                                           \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
        }                                                                         \
    } while (0)

static void skip(const char* what) {
    g_skipped++;
    fprintf(stderr, "SKIP %s\n", what);
}

static int finish(void) {
    printf("%d passed, %d failed, %d skipped\n", g_passed, g_failed, g_skipped);
    return g_failed == 0 ? 0 : 1;
}

static uint8_t* read_whole(const char* path, size_t* size_out) {
    FILE* f = fopen(path, "rb");
    if (f == NULL) return NULL;
    size_t cap = 1 << 16, n = 0;
    uint8_t* buf = malloc(cap);
    for (;;) {
        if (n == cap) buf = realloc(buf, cap *= 2);
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0) break;
        n += r;
    }
    fclose(f);
    *size_out = n;
    return buf;
}

static int write_whole(const char* path, const void* data, size_t size) {
    FILE* f = fopen(path, "wb");
    if (f == NULL) return 0;
    int ok = fwrite(data, 1, size, f) == size;
    return fclose(f) == 0 && ok;
}

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t rng_next(void) { return gptoss_splitmix64(&g_rng); }

#endif
