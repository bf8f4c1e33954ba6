/* Fused kernels (the FUSION entries of the kernel list: gptoss_f32_accumulate_bf16w_rmsnorm,
 * gptoss_f32_bf16w_rmsnorm_matmul_topk) give results bit-identical to the kernels they
 * fuse, called in sequence through the public functions on the same backend: every CPU
 * variant this processor has, and CUDA where a device is present (else those cases are
 * reported as skipped, by name). The harness checks the fused kernels against the float64
 * reference; this test checks the stronger claim the engine relies on (fusing changes
 * nothing), on every case of the fusions' test modules (gpt-oss shapes and odd ones, the
 * CUDA fallbacks included): the same inputs in two copies, the fusion on one, its parts
 * (the module's `unfused`) on the other, every output compared bit for bit.
 *
 * Random inputs (seed printed; $GPTOSS_TEST_SEED overrides). Output: one line per case,
 * then "N passed, N failed, N skipped". */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gptoss/kernels.h>

#include "ops/ops.h"

/* Both copies: the inputs, old values and (outputs) any contents; returns the host copies
 * of every non-input buffer after `run` in out[i]. */
static int run_copy(gptoss_backend_t b, const struct tc_problem* p, int fused, void* out[], char* detail,
                    size_t detail_size) {
    void* dev[TC_MAX_BUFFERS] = {0};
    int ok = 1;
    for (int i = 0; i < p->n && ok; i++) {
        ok = gptoss_backend_alloc(b, p->b[i].size, &dev[i]) == gptoss_status_success &&
             gptoss_backend_copy(b, dev[i], p->b[i].host, p->b[i].size, gptoss_copy_host_to_backend) ==
                 gptoss_status_success;
    }
    if (!ok) snprintf(detail, detail_size, "backend allocation failed: %s", gptoss_last_error());
    if (ok) {
        union gptoss_kernel_args args;
        memset(&args, 0, sizeof args);
        p->op->args(p, dev, &args);
        const enum gptoss_status st = fused ? gptoss_kernel_run(b, p->op->kernel, &args) : p->op->unfused(b, &args);
        if (st != gptoss_status_success) {
            ok = 0;
            snprintf(detail, detail_size, "%s: %s: %s", fused ? "fused" : "unfused", gptoss_status_to_string(st),
                     gptoss_last_error());
        }
    }
    for (int i = 0; i < p->n && ok; i++) {
        if (p->b[i].role == TC_IN) continue;
        out[i] = tc_xmalloc(p->b[i].size);
        ok = gptoss_backend_copy(b, out[i], dev[i], p->b[i].size, gptoss_copy_backend_to_host) ==
                 gptoss_status_success &&
             gptoss_backend_synchronize(b) == gptoss_status_success;
        if (!ok) snprintf(detail, detail_size, "copy back failed: %s", gptoss_last_error());
    }
    for (int i = 0; i < p->n; i++) gptoss_backend_free(b, dev[i]);
    return ok;
}

static void fused_case(gptoss_backend_t b, const char* backend_name, const struct tc_op* op, const struct tc_case* c,
                       uint64_t seed) {
    char name[160], detail[512] = "";
    snprintf(name, sizeof name, "%s_%s", c->name, backend_name);
    struct tc_problem p;
    if (tc_problem_create(&p, op, c, seed ^ tc_hash_string(c->name)) != 0) {
        tc_report(name, 0, "host allocation failed");
        return;
    }
    /* outputs start as any bits (here: the poison of the harness) */
    for (int i = 0; i < p.n; i++) {
        if (p.b[i].role == TC_OUT) memset(p.b[i].host, 0xFF, p.b[i].size);
    }
    void* fused[TC_MAX_BUFFERS] = {0};
    void* parts[TC_MAX_BUFFERS] = {0};
    int ok = run_copy(b, &p, 0, parts, detail, sizeof detail) && run_copy(b, &p, 1, fused, detail, sizeof detail);
    if (ok) {
        char* d = detail;
        size_t changed = 0, total = 0;
        for (int i = 0; i < p.n; i++) {
            if (p.b[i].role == TC_IN) continue;
            size_t bad = 0;
            for (size_t j = 0; j < p.b[i].size; j += 4) {
                bad += memcmp((uint8_t*) fused[i] + j, (uint8_t*) parts[i] + j, 4) != 0;
                changed += memcmp((uint8_t*) fused[i] + j, (uint8_t*) p.b[i].host + j, 4) != 0;
            }
            total += p.b[i].size / 4;
            ok = ok && bad == 0;
            d += snprintf(d, sizeof detail - (size_t) (d - detail), "%s%zu %s", d == detail ? "" : ", ", bad,
                          p.b[i].name);
        }
        /* the call must have written something (the test would pass trivially otherwise) */
        ok = ok && changed > 0;
        snprintf(d, sizeof detail - (size_t) (d - detail), " values differ; %zu of %zu written", changed, total);
    }
    tc_report(name, ok, detail);
    for (int i = 0; i < TC_MAX_BUFFERS; i++) {
        free(fused[i]);
        free(parts[i]);
    }
    tc_problem_destroy(&p);
}

/* Every case of every fusion on backend b (NULL: skipped, `why`). */
static void run_backend(gptoss_backend_t b, const char* backend_name, const char* why, uint64_t seed) {
    for (int k = 0; k < gptoss_kernel_count; k++) {
        const struct tc_op* op = tc_ops[k];
        if (op->unfused == NULL) continue;
        for (size_t i = 0; i < op->num_cases; i++) {
            const struct tc_case* c = &op->cases[i];
            if (c->flags & TC_BENCH_ONLY) continue;
            if (b != NULL) {
                fused_case(b, backend_name, op, c, seed);
            } else {
                char name[160];
                snprintf(name, sizeof name, "%s_%s", c->name, backend_name);
                tc_skip(name, why);
            }
        }
    }
}

int main(void) {
    const char* env = getenv("GPTOSS_TEST_SEED");
    const uint64_t seed = env != NULL ? strtoull(env, NULL, 0) : (uint64_t) time(NULL);
    printf("seed %" PRIu64 " (GPTOSS_TEST_SEED=%" PRIu64 " replays)\n", seed, seed);
    static const struct {
        const char* name;
        enum gptoss_cpu_isa isa;
    } cpus[] = {{"scalar", gptoss_cpu_isa_scalar}, {"avx2", gptoss_cpu_isa_avx2}, {"avx512", gptoss_cpu_isa_avx512}};
    for (size_t i = 0; i < sizeof cpus / sizeof cpus[0]; i++) {
        gptoss_backend_t b = NULL;
        gptoss_backend_create_cpu_isa(2, cpus[i].isa, &b);
        run_backend(b, cpus[i].name, gptoss_last_error(), seed);
        gptoss_backend_release(b);
    }
    gptoss_backend_t cuda = NULL;
    gptoss_backend_create_cuda(0, NULL, &cuda);
    run_backend(cuda, "cuda", gptoss_last_error(), seed);
    gptoss_backend_release(cuda);
    return tc_summary();
}
