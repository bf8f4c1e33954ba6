/* CUDA benchmark of the kernels' benchmark rows with CUDA events: the TC_BENCH and
 * TC_BENCH_CUDA cases of the test modules (tests/ops/<family>.c), with their inputs,
 * calls, byte and FLOP counts. Per row: every buffer rotated over enough copies that the
 * bytes touched exceed 400 MB (past the L2 cache), 3 warm-up calls, then the median of 5
 * runs of N calls (20; 3 for rows over 50 GFLOP) between two events. GB/s is compared with
 * a device-to-device copy of 1 GiB (read + write) measured first. Built with the
 * benchmarks when CUDA is on (build/bench/cuda_bench); run by tools/gpu-check.sh.
 *
 *   cuda_bench [--filter SUBSTR] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>
#include <gptoss/kernels.h>

#include "ops/ops.h"

#define ROTATE_BYTES (400.0 * 1024 * 1024)
#define MAX_MEMORY (8.0 * 1024 * 1024 * 1024)

#define CHECK(x)                                                                                          \
    do {                                                                                                  \
        enum gptoss_status s_ = (x);                                                                      \
        if (s_ != gptoss_status_success) {                                                                \
            fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #x, gptoss_status_to_string(s_), \
                    gptoss_last_error());                                                                 \
            exit(1);                                                                                      \
        }                                                                                                 \
    } while (0)

static gptoss_backend_t B;
static cudaEvent_t ev0, ev1;

static int cmp_double(const void* a, const void* b) {
    const double x = *(const double*) a, y = *(const double*) b;
    return (x > y) - (x < y);
}

/* median of 5 runs of `iters` calls, in ms per call; call(ctx, i) makes call i */
static double time_it(void (*call)(void*, int), void* ctx, int iters) {
    for (int i = 0; i < 3; i++) call(ctx, i);
    CHECK(gptoss_backend_synchronize(B));
    double ms[5];
    for (int r = 0; r < 5; r++) {
        cudaEventRecord(ev0, 0);
        for (int i = 0; i < iters; i++) call(ctx, i);
        cudaEventRecord(ev1, 0);
        CHECK(gptoss_backend_synchronize(B));
        float t = 0;
        cudaEventElapsedTime(&t, ev0, ev1);
        ms[r] = t / iters;
    }
    qsort(ms, 5, sizeof ms[0], cmp_double);
    return ms[2];
}

struct copy_ctx {
    void* a;
    void* b;
    size_t n;
};
static void copy_call(void* c, int i) {
    struct copy_ctx* x = c;
    CHECK(gptoss_backend_copy(B, (i & 1) ? x->a : x->b, (i & 1) ? x->b : x->a, x->n, gptoss_copy_backend_to_backend));
}

struct case_ctx {
    struct tc_problem* p;
    void** dev; /* copies x TC_MAX_BUFFERS */
    uint32_t copies;
};
static void case_call(void* c, int i) {
    struct case_ctx* x = c;
    CHECK(tc_launch(B, x->p, &x->dev[(size_t) (i % x->copies) * TC_MAX_BUFFERS]));
}

static void bench_case(const struct tc_op* op, const struct tc_case* c, double copy_bw) {
    struct tc_problem p;
    if (tc_problem_create(&p, op, c, 0x5EEDull ^ tc_hash_string(c->name)) != 0) {
        printf("%-48s out of host memory\n", c->name);
        return;
    }
    const double bytes = tc_bytes(op, c), flops = tc_flops(op, c);
    size_t alloc_bytes = 0;
    for (int i = 0; i < p.n; i++) alloc_bytes += p.b[i].size;
    uint32_t copies = bytes > 0 ? (uint32_t) (ROTATE_BYTES / bytes) + 1 : 1;
    if (copies > 16) copies = 16;
    while (copies > 1 && (double) copies * alloc_bytes > MAX_MEMORY) copies--;
    struct case_ctx ctx = {&p, calloc((size_t) copies * TC_MAX_BUFFERS, sizeof(void*)), copies};
    for (uint32_t k = 0; k < copies; k++) {
        for (int i = 0; i < p.n; i++) {
            void** d = &ctx.dev[(size_t) k * TC_MAX_BUFFERS + i];
            CHECK(gptoss_backend_alloc(B, p.b[i].size, d));
            CHECK(gptoss_backend_copy(B, *d, p.b[i].host, p.b[i].size, gptoss_copy_host_to_backend));
        }
    }
    const double ms = time_it(case_call, &ctx, flops > 5e10 ? 3 : 20);
    const double gbs = bytes / (ms * 1e-3) / 1e9;
    char shape[96];
    tc_shape_string(op, c, shape, sizeof shape);
    printf("%-48s %-34s %9.1f us %8.1f GB/s %6.1f%%", c->name, shape, ms * 1e3, gbs, 100 * gbs / copy_bw);
    if (flops > 0) printf(" %8.2f TFLOP/s", flops / (ms * 1e-3) / 1e12);
    printf("\n");
    fflush(stdout);
    for (size_t i = 0; i < (size_t) copies * TC_MAX_BUFFERS; i++) {
        if (ctx.dev[i] != NULL) gptoss_backend_free(B, ctx.dev[i]);
    }
    free(ctx.dev);
    tc_problem_destroy(&p);
}

int main(int argc, char** argv) {
    const char* filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc) {
            filter = argv[++i];
        } else {
            fprintf(stderr, "usage: cuda_bench [--filter SUBSTR]\n");
            return 2;
        }
    }
    CHECK(gptoss_backend_create_cuda(0, NULL, &B));
    printf("backend: %s\n", gptoss_backend_get_name(B));
    cudaEventCreate(&ev0);
    cudaEventCreate(&ev1);
    struct copy_ctx cc = {NULL, NULL, (size_t) 1 << 30};
    CHECK(gptoss_backend_alloc(B, cc.n, &cc.a));
    CHECK(gptoss_backend_alloc(B, cc.n, &cc.b));
    CHECK(gptoss_u32_fill_random(B, cc.a, cc.n / 4, 1, 0));
    const double copy_ms = time_it(copy_call, &cc, 10);
    const double copy_bw = 2.0 * cc.n / (copy_ms * 1e-3) / 1e9;
    printf("%-48s %-34s %9.1f us %8.1f GB/s (read + write)\n", "device copy 1 GiB", "", copy_ms * 1e3, copy_bw);
    gptoss_backend_free(B, cc.a);
    gptoss_backend_free(B, cc.b);
    printf("%-48s %-34s %12s %13s %7s\n", "case", "shape", "time", "bandwidth", "%copy");
    for (size_t i = 0; i < tc_num_cases(); i++) {
        const struct tc_op* op;
        const struct tc_case* c = tc_case_at(i, &op);
        if (!(c->flags & (TC_BENCH | TC_BENCH_CUDA))) continue;
        if (filter != NULL && strstr(c->name, filter) == NULL) continue;
        bench_case(op, c, copy_bw);
    }
    CHECK(gptoss_backend_release(B));
    return 0;
}
