/* A decode step allocates nothing: on a random tiny model, after a prompt and a warm-up of
 * two decode steps (the decode plan built and run, its scratch grown, on CUDA its graphs
 * recorded), 32 more decode steps (gptoss_context_sample, one token at a time) are counted
 * and must make no allocation: host malloc, calloc, realloc, aligned_alloc and
 * posix_memalign (from any thread: the CPU backend's pool included; tests/alloc_count.h),
 * gptoss_backend_alloc, and with CUDA cudaMalloc and cudaMallocFromPoolAsync (wrapped here,
 * tests/e2e/CMakeLists.txt). Greedy, temperature alone (f32_softmax + f32_sample on the
 * CPU), top-p with penalties (the host sampler on the CPU) and the same through the
 * sampling kernels (params.sampling; with counts copied per token) each get a context (on
 * CUDA all sampling goes through the kernels); every CPU variant of this processor runs (or
 * --backend cuda). A first case
 * checks that the counter sees an allocation. Output: PASS/FAIL/SKIP lines, then "N
 * passed, N failed, N skipped".
 *
 *   test_engine_alloc [--backend cpu|cuda] [--graphs 0|1]
 *
 * --graphs 0: decode steps as direct launches on CUDA (default 1: graphs; to tell the
 * engine's allocations from those of a graph update). $GPTOSS_VOCAB: the o200k vocabulary,
 * else the default places. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gptoss/offline.h>

#include "alloc_count.h"

enum gptoss_status __real_gptoss_backend_alloc(gptoss_backend_t backend, size_t size, void** ptr_out);
enum gptoss_status __wrap_gptoss_backend_alloc(gptoss_backend_t backend, size_t size, void** ptr_out) {
    alloc_count_hit();
    return __real_gptoss_backend_alloc(backend, size, ptr_out);
}

#ifdef GPTOSS_TEST_CUDA
/* The CUDA runtime's allocations (cudaError_t is an int-sized enum; the stream and pool
 * are pointers). */
int __real_cudaMalloc(void** ptr, size_t size);
int __real_cudaMallocFromPoolAsync(void** ptr, size_t size, void* pool, void* stream);
int __wrap_cudaMalloc(void** ptr, size_t size) {
    alloc_count_hit();
    return __real_cudaMalloc(ptr, size);
}
int __wrap_cudaMallocFromPoolAsync(void** ptr, size_t size, void* pool, void* stream) {
    alloc_count_hit();
    return __real_cudaMallocFromPoolAsync(ptr, size, pool, stream);
}
#endif

static int passed, failed, skipped;

static void report(int ok, const char* name, const char* variant, const char* detail) {
    printf("%s %s %s: %s\n", ok ? "PASS" : "FAIL", name, variant, detail);
    if (ok) passed++;
    else failed++;
}

/* The counter itself: gptoss_backend_alloc and the host allocator are seen. */
static void counter_case(gptoss_backend_t b, const char* variant) {
    void* p = NULL;
    alloc_count_start();
    const enum gptoss_status st = gptoss_backend_alloc(b, 4096, &p);
    void* q = malloc(16);
    const long counted = alloc_count_stop();
    free(q);
    gptoss_backend_free(b, p);
    char detail[128];
    snprintf(detail, sizeof detail, "%ld allocation(s) counted for one gptoss_backend_alloc and one malloc", counted);
    report(st == gptoss_status_success && counted >= 2, "counter", variant, detail);
}

enum mode { mode_greedy, mode_device, mode_host, mode_kernels };
static const char* const mode_names[] = {"greedy", "device_sampler", "host_sampler", "kernel_sampler"};

#define DECODE_STEPS 32

static int g_graphs = 1;

static void decode_case(gptoss_model_t model, enum mode mode, const char* variant) {
    gptoss_context_t ctx = NULL;
    gptoss_sampler_t sampler = NULL;
    char detail[512] = "";
    long counted = -1;
    struct gptoss_context_params params;
    gptoss_context_params_init(&params);
    params.context_length = 256;
    params.max_batch_tokens = 7;
    params.graphs = g_graphs;
    params.sampling = mode == mode_kernels ? gptoss_sampling_kernels : gptoss_sampling_auto;
    enum gptoss_status st = gptoss_context_create_with_params(model, &params, &ctx);
    if (st == gptoss_status_success && mode != mode_greedy) {
        st = gptoss_sampler_create(&sampler);
        if (st == gptoss_status_success) st = gptoss_sampler_set_temperature(sampler, 0.8f);
        if (st == gptoss_status_success) st = gptoss_sampler_set_seed(sampler, 42);
        if (st == gptoss_status_success && mode >= mode_host) st = gptoss_sampler_set_top_p(sampler, 0.9f);
        if (st == gptoss_status_success && mode >= mode_host) st = gptoss_sampler_set_presence_penalty(sampler, 0.5f);
    }
    static const char prompt[] = "Counting allocations: a prompt of some thirty tokens, processed in chunks of "
                                 "seven, then decode steps one token at a time.";
    if (st == gptoss_status_success) st = gptoss_context_append_chars(ctx, prompt, strlen(prompt), NULL);
    if (st == gptoss_status_success) st = gptoss_context_process(ctx);
    uint32_t token;
    size_t got = 0;
    for (int i = 0; i < 2 && st == gptoss_status_success; i++) { /* warm-up */
        st = gptoss_context_sample(ctx, sampler, 1, &token, &got);
    }
    if (st == gptoss_status_success) {
        alloc_count_start();
        for (int i = 0; i < DECODE_STEPS && st == gptoss_status_success; i++) {
            st = gptoss_context_sample(ctx, sampler, 1, &token, &got);
        }
        counted = alloc_count_stop();
    }
    if (st != gptoss_status_success) {
        snprintf(detail, sizeof detail, "%s: %s", gptoss_status_to_string(st), gptoss_last_error());
    } else {
        snprintf(detail, sizeof detail, "%ld allocation(s) in %d decode steps after a warm-up", counted, DECODE_STEPS);
    }
    report(st == gptoss_status_success && counted == 0, mode_names[mode], variant, detail);
    gptoss_sampler_release(sampler);
    gptoss_context_release(ctx);
}

static void run_backend(gptoss_backend_t b, const char* variant) {
    counter_case(b, variant);
    gptoss_model_t model = NULL;
    const enum gptoss_status st = gptoss_model_create_random_ex("tiny", 0, 5, getenv("GPTOSS_VOCAB"), b, &model);
    if (st != gptoss_status_success) {
        char detail[400];
        snprintf(detail, sizeof detail, "random tiny model: %s: %s", gptoss_status_to_string(st), gptoss_last_error());
        report(0, "model", variant, detail);
        return;
    }
    for (int m = mode_greedy; m <= mode_kernels; m++) decode_case(model, (enum mode) m, variant);
    gptoss_model_release(model);
}

int main(int argc, char** argv) {
    const char* backend = "cpu";
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--backend") == 0) {
            backend = argv[++i];
        } else if (i + 1 < argc && strcmp(argv[i], "--graphs") == 0 && (argv[i + 1][0] == '0' || argv[i + 1][0] == '1') &&
                   argv[i + 1][1] == '\0') {
            g_graphs = argv[++i][0] == '1';
        } else {
            fprintf(stderr, "usage: %s [--backend cpu|cuda] [--graphs 0|1]\n", argv[0]);
            return 2;
        }
    }
    if (strcmp(backend, "cuda") == 0) {
        gptoss_backend_t b = NULL;
        if (gptoss_backend_create_cuda(0, NULL, &b) != gptoss_status_success) {
            printf("SKIP cuda: %s\n", gptoss_last_error());
            skipped++;
        } else {
            run_backend(b, "cuda");
            gptoss_backend_release(b);
        }
    } else {
        static const struct {
            const char* name;
            enum gptoss_cpu_isa isa;
        } cpus[] = {{"scalar", gptoss_cpu_isa_scalar}, {"avx2", gptoss_cpu_isa_avx2}, {"avx512", gptoss_cpu_isa_avx512}};
        for (size_t v = 0; v < sizeof cpus / sizeof cpus[0]; v++) {
            gptoss_backend_t b = NULL;
            if (gptoss_backend_create_cpu_isa(2, cpus[v].isa, &b) != gptoss_status_success) {
                printf("SKIP %s: %s\n", cpus[v].name, gptoss_last_error());
                skipped++;
                continue;
            }
            run_backend(b, cpus[v].name);
            gptoss_backend_release(b);
        }
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed == 0 ? 0 : 1;
}
