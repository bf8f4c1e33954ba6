/* No CPU kernel allocates memory once warm: every test case of every kernel (tests/ops/;
 * up to 1 GFLOP and 64 MB of inputs and outputs per call, which still takes each kernel
 * through its decode and prefill paths) runs once on every CPU variant this processor
 * has, then 3 more times while the allocator calls of the program are counted; the count
 * must be 0. The kernels take their
 * temporaries from the backend's scratch (gptoss_cpu_scratch_acquire), which grows only
 * when a call needs more than an earlier one did.
 *
 * Counting (alloc_count.h): malloc, calloc, realloc, aligned_alloc and posix_memalign are
 * wrapped at link time in this program and the static library, and counted while a kernel
 * call runs (on any thread). The first case checks that the counter
 * sees an allocation (gptoss_backend_alloc). Output: one line per case and variant, then
 * "N passed, N failed, N skipped". */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gptoss/kernels.h>

#include "alloc_count.h"
#include "ops/ops.h"

#define MAX_FLOPS 1e9
#define MAX_BYTES 64e6
#define COUNTED_CALLS 3

/* A result named "<case> <variant>". */
static void report(int ok, const char* name, const char* variant, const char* detail) {
    char full[192];
    snprintf(full, sizeof full, "%s %s", name, variant);
    tc_report(full, ok, detail);
}

/* The counter itself: an allocation by the library is seen. */
static void counter_case(gptoss_backend_t b, const char* variant) {
    void* p = NULL;
    alloc_count_start();
    const enum gptoss_status st = gptoss_backend_alloc(b, 4096, &p);
    const long counted = alloc_count_stop();
    gptoss_backend_free(b, p);
    char detail[128];
    snprintf(detail, sizeof detail, "%ld allocation(s) counted in gptoss_backend_alloc", counted);
    report(st == gptoss_status_success && counted > 0, "counter_sees_backend_alloc", variant, detail);
}

static void run_case(gptoss_backend_t b, const char* variant, const struct tc_op* op, const struct tc_case* c) {
    struct tc_problem p;
    char detail[256] = "";
    if (tc_problem_create(&p, op, c, tc_hash_string(c->name)) != 0) {
        report(0, c->name, variant, "out of host memory");
        return;
    }
    void* dev[TC_MAX_BUFFERS] = {0};
    int ok = 1;
    for (int i = 0; i < p.n && ok; i++) {
        ok = gptoss_backend_alloc(b, p.b[i].size, &dev[i]) == gptoss_status_success &&
             gptoss_backend_copy(b, dev[i], p.b[i].host, p.b[i].size, gptoss_copy_host_to_backend) ==
                 gptoss_status_success;
    }
    enum gptoss_status st = ok ? tc_launch(b, &p, dev) : gptoss_status_insufficient_memory; /* warm-up */
    long counted = 0;
    for (int r = 0; r < COUNTED_CALLS && st == gptoss_status_success; r++) {
        alloc_count_start();
        st = tc_launch(b, &p, dev);
        counted += alloc_count_stop();
    }
    if (st != gptoss_status_success) {
        snprintf(detail, sizeof detail, "%s: %s", gptoss_status_to_string(st), gptoss_last_error());
    } else {
        snprintf(detail, sizeof detail, "%ld allocation(s) in %d calls after a warm-up", counted, COUNTED_CALLS);
    }
    report(st == gptoss_status_success && counted == 0, c->name, variant, detail);
    for (int i = 0; i < p.n; i++) gptoss_backend_free(b, dev[i]);
    tc_problem_destroy(&p);
}

int main(void) {
    static const struct {
        const char* name;
        enum gptoss_cpu_isa isa;
    } cpus[] = {{"scalar", gptoss_cpu_isa_scalar}, {"avx2", gptoss_cpu_isa_avx2}, {"avx512", gptoss_cpu_isa_avx512}};
    for (size_t v = 0; v < sizeof cpus / sizeof cpus[0]; v++) {
        gptoss_backend_t b = NULL;
        if (gptoss_backend_create_cpu_isa(2, cpus[v].isa, &b) != gptoss_status_success) {
            tc_skip(cpus[v].name, gptoss_last_error());
            continue;
        }
        counter_case(b, cpus[v].name);
        for (size_t i = 0; i < tc_num_cases(); i++) {
            const struct tc_op* op;
            const struct tc_case* c = tc_case_at(i, &op);
            if (c->flags & (TC_BENCH_ONLY | TC_FAULT)) continue; /* a fault case's call fails */
            /* the large cases are slow on the scalar variant and take the paths of smaller ones */
            if (tc_flops(op, c) > MAX_FLOPS || tc_bytes(op, c) > MAX_BYTES) continue;
            run_case(b, cpus[v].name, op, c);
        }
        gptoss_backend_release(b);
    }
    return tc_summary();
}
