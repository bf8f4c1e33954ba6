/* Fuzz target: model-file reader. The input is a whole model file: it goes through
 * gptoss_file_parse_header, gptoss_tokenizer_create_from_file and
 * gptoss_model_create_from_file (CPU backend) via an in-memory file; when a tokenizer
 * loads, a few strings are encoded and every token decoded. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gptoss/engine.h>

#include "model.h"

static gptoss_backend_t g_backend;

static void exercise_tokenizer(gptoss_tokenizer_t t) {
    static const char* const texts[] = {"Hello, world!", "  \n\t x'S 123456 ǈ🙂", "\xff\xfe abc"};
    uint32_t ids[256];
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        size_t n = 0;
        gptoss_tokenizer_encode(t, texts[i], strlen(texts[i]), ids, 256, &n);
    }
    uint32_t total = 0;
    gptoss_tokenizer_get_num_tokens(t, &total);
    for (uint32_t id = 0; id < total && id < 100000; id++) {
        const void* p;
        size_t s;
        if (gptoss_tokenizer_decode(t, id, &p, &s) != gptoss_status_success) __builtin_trap();
        volatile uint8_t sink = 0;
        for (size_t k = 0; k < s; k++) sink ^= ((const uint8_t*) p)[k];
        (void) sink;
    }
    for (int e = 0; e <= gptoss_special_token_max; e++) {
        uint32_t id;
        gptoss_tokenizer_get_special_token_id(t, (enum gptoss_special_token) e, &id);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (g_backend == NULL && gptoss_backend_create_cpu(1, &g_backend) != gptoss_status_success) return 0;
    if (size >= GPTOSS_FILE_HEADER_SIZE) {
        struct gptoss_file_info info;
        gptoss_file_parse_header(data, &info);
    }
    int fd = memfd_create("fuzz-model", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (size > 0 && write(fd, data, size) != (ssize_t) size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    gptoss_tokenizer_t t = NULL;
    if (gptoss_tokenizer_create_from_file(path, &t) == gptoss_status_success) {
        exercise_tokenizer(t);
        gptoss_tokenizer_release(t);
    }
    gptoss_model_t m = NULL;
    if (gptoss_model_create_from_file(path, g_backend, &m) == gptoss_status_success) {
        /* every offset the forward pass will use lies inside the weights */
        const size_t last = m->layers[m->config.num_blocks - 1].moe + (size_t) m->config.num_experts * m->expert.per_expert;
        if (last > m->weights_size || m->unembedding >= m->weights_size) __builtin_trap();
        volatile uint8_t sink = m->weights[m->weights_size - 1];
        (void) sink;
        gptoss_model_release(m);
    }
    close(fd);
    return 0;
}
