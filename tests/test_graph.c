/* The graph API (kernels.h, "Graphs").
 *
 * Everywhere: argument checks, and CPU backends refuse to record (unsupported_system).
 * With a CUDA device: a recorded sequence (rmsnorm -> matmul_add -> sdpa-free chain of
 * kernels whose scalar arguments change between recordings) gives bit-identical results
 * to the same calls launched directly; a re-recording with other arguments updates the
 * graph; copies and synchronisation are refused while recording; a failing call makes
 * gptoss_graph_end fail and leaves the previous recording launchable. Without a device the
 * CUDA cases are reported as skipped, by name.
 *
 * Random inputs (seed printed; $GPTOSS_TEST_SEED overrides). Output: one line per case,
 * then "N passed, N failed, N skipped". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gptoss/kernels.h>

#include "ops/ops.h"

static void checks(void) {
    gptoss_graph_t g = (gptoss_graph_t) 1;
    tc_report("create_null_backend",
              gptoss_graph_create(NULL, &g) == gptoss_status_invalid_argument && g == (gptoss_graph_t) 1,
              gptoss_last_error());
    tc_report("begin_null", gptoss_graph_begin(NULL) == gptoss_status_invalid_argument, "");
    tc_report("end_null", gptoss_graph_end(NULL) == gptoss_status_invalid_argument, "");
    tc_report("launch_null", gptoss_graph_launch(NULL) == gptoss_status_invalid_argument, "");
    tc_report("release_null_ok", gptoss_graph_release(NULL) == gptoss_status_success, "");
    gptoss_backend_t cpu;
    if (gptoss_backend_create_cpu(1, &cpu) != gptoss_status_success) {
        tc_report("cpu_backend", 0, gptoss_last_error());
        return;
    }
    tc_report("create_null_out", gptoss_graph_create(cpu, NULL) == gptoss_status_invalid_argument, "");
    const enum gptoss_status st = gptoss_graph_create(cpu, &g);
    tc_report("cpu_unsupported", st == gptoss_status_unsupported_system && g == (gptoss_graph_t) 1,
              gptoss_last_error());
    gptoss_backend_release(cpu);
}

/* The sequence under test: out = x + W2 (rmsnorm(x) W1 + b1) ... (T tokens). */
struct bufs {
    float *x, *norm, *hidden, *out;
    gptoss_bf16 *nw, *w1, *b1, *w2, *b2;
};

enum { C = 96, R = 160, TMAX = 5 };

static enum gptoss_status sequence(gptoss_backend_t b, const struct bufs* d, uint32_t T) {
    enum gptoss_status st = gptoss_f32_bf16w_rmsnorm(b, d->x, d->nw, d->norm, T, C, 1e-5f);
    if (st == gptoss_status_success) st = gptoss_f32_bf16w_matmul(b, d->norm, d->w1, d->b1, d->hidden, T, C, R);
    if (st == gptoss_status_success) st = gptoss_f32_bf16w_matmul_add(b, d->hidden, d->w2, d->b2, d->out, T, R, C);
    return st;
}

static int run_direct(gptoss_backend_t b, const struct bufs* d, uint32_t T, const float* x0, float* result) {
    if (gptoss_backend_copy(b, d->x, x0, sizeof(float) * T * C, gptoss_copy_host_to_backend)) return 0;
    if (gptoss_backend_copy(b, d->out, x0, sizeof(float) * T * C, gptoss_copy_host_to_backend)) return 0;
    if (sequence(b, d, T)) return 0;
    if (gptoss_backend_synchronize(b)) return 0;
    return gptoss_backend_copy(b, result, d->out, sizeof(float) * T * C, gptoss_copy_backend_to_host) == 0;
}

static int run_graph(gptoss_backend_t b, gptoss_graph_t g, const struct bufs* d, uint32_t T, const float* x0,
                     float* result) {
    if (gptoss_backend_copy(b, d->x, x0, sizeof(float) * T * C, gptoss_copy_host_to_backend)) return 0;
    if (gptoss_backend_copy(b, d->out, x0, sizeof(float) * T * C, gptoss_copy_host_to_backend)) return 0;
    if (gptoss_graph_launch(g)) return 0;
    if (gptoss_backend_synchronize(b)) return 0;
    return gptoss_backend_copy(b, result, d->out, sizeof(float) * T * C, gptoss_copy_backend_to_host) == 0;
}

static void cuda_cases(uint64_t seed) {
    static const char* names[] = {"cuda_replay_bit_identical", "cuda_update_other_shape", "cuda_copy_refused",
                                  "cuda_failed_recording_keeps_previous", "cuda_launch_twice"};
    gptoss_backend_t b;
    if (gptoss_backend_create_cuda(0, NULL, &b) != gptoss_status_success) {
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) tc_skip(names[i], gptoss_last_error());
        return;
    }
    struct bufs d;
    void* p[9];
    const size_t sizes[9] = {sizeof(float) * TMAX * C, sizeof(float) * TMAX * C, sizeof(float) * TMAX * R,
                             sizeof(float) * TMAX * C, 2 * C, 2 * (size_t) R * C, 2 * R, 2 * (size_t) C * R, 2 * C};
    for (int i = 0; i < 9; i++) {
        if (gptoss_backend_alloc(b, sizes[i], &p[i])) {
            tc_report("cuda_alloc", 0, gptoss_last_error());
            return;
        }
    }
    d.x = p[0]; d.norm = p[1]; d.hidden = p[2]; d.out = p[3];
    d.nw = p[4]; d.w1 = p[5]; d.b1 = p[6]; d.w2 = p[7]; d.b2 = p[8];
    gptoss_bf16_fill_random(b, d.nw, C, seed, 0, 0.5f, 1.5f);
    gptoss_bf16_fill_random(b, d.w1, (uint64_t) R * C, seed, 1000, -0.1f, 0.1f);
    gptoss_bf16_fill_random(b, d.b1, R, seed, 50000, -0.1f, 0.1f);
    gptoss_bf16_fill_random(b, d.w2, (uint64_t) C * R, seed, 70000, -0.1f, 0.1f);
    gptoss_bf16_fill_random(b, d.b2, C, seed, 90000, -0.1f, 0.1f);

    float x0[TMAX * C], x1[TMAX * C], direct[TMAX * C], graphed[TMAX * C];
    srand((unsigned) seed);
    for (int i = 0; i < TMAX * C; i++) {
        x0[i] = (float) rand() / RAND_MAX * 2.0f - 1.0f;
        x1[i] = (float) rand() / RAND_MAX * 4.0f - 2.0f;
    }
    gptoss_graph_t g;
    if (gptoss_graph_create(b, &g)) {
        tc_report("cuda_graph_create", 0, gptoss_last_error());
        return;
    }
    /* 1: record T = 3, replay = direct */
    int ok = gptoss_graph_begin(g) == 0 && sequence(b, &d, 3) == 0 && gptoss_graph_end(g) == 0;
    ok = ok && run_direct(b, &d, 3, x0, direct) && run_graph(b, g, &d, 3, x0, graphed) &&
         memcmp(direct, graphed, sizeof(float) * 3 * C) == 0;
    tc_report(names[0], ok, ok ? "" : gptoss_last_error());
    /* 2: re-record with T = 5 (other grid sizes and scalars): update or re-instantiate */
    ok = gptoss_graph_begin(g) == 0 && sequence(b, &d, 5) == 0 && gptoss_graph_end(g) == 0;
    ok = ok && run_direct(b, &d, 5, x1, direct) && run_graph(b, g, &d, 5, x1, graphed) &&
         memcmp(direct, graphed, sizeof(float) * 5 * C) == 0;
    tc_report(names[1], ok, ok ? "" : gptoss_last_error());
    /* 3: copies and synchronisation are refused while recording (and fail the recording) */
    ok = gptoss_graph_begin(g) == 0;
    const enum gptoss_status cst = gptoss_backend_copy(b, d.x, x0, 16, gptoss_copy_host_to_backend);
    const enum gptoss_status sst = gptoss_backend_synchronize(b);
    ok = ok && gptoss_graph_end(g) == gptoss_status_invalid_state && cst == gptoss_status_invalid_state &&
         sst == gptoss_status_invalid_state;
    tc_report(names[2], ok, "");
    /* 4: a failing call (bad argument) during recording: end fails, the previous recording
     * (T = 5, recorded first) stays */
    ok = gptoss_graph_begin(g) == 0 && sequence(b, &d, 5) == 0 && gptoss_graph_end(g) == 0;
    ok = ok && gptoss_graph_begin(g) == 0;
    const enum gptoss_status bad = gptoss_f32_bf16w_matmul(b, d.norm, d.w1, d.b1, NULL, 5, C, R);
    const enum gptoss_status end = gptoss_graph_end(g);
    ok = ok && bad == gptoss_status_invalid_argument && end == gptoss_status_invalid_state && run_direct(b, &d, 5, x0, direct) &&
         run_graph(b, g, &d, 5, x0, graphed) && memcmp(direct, graphed, sizeof(float) * 5 * C) == 0;
    tc_report(names[3], ok, ok ? "" : gptoss_last_error());
    /* 5: two launches back to back give the same as one (out += ... twice from x0) */
    ok = gptoss_graph_begin(g) == 0 && sequence(b, &d, 5) == 0 && gptoss_graph_end(g) == 0;
    float twice_direct[TMAX * C];
    ok = ok && gptoss_backend_copy(b, d.x, x0, sizeof x0, gptoss_copy_host_to_backend) == 0 &&
         gptoss_backend_copy(b, d.out, x0, sizeof x0, gptoss_copy_host_to_backend) == 0 && sequence(b, &d, 5) == 0 &&
         sequence(b, &d, 5) == 0 && gptoss_backend_copy(b, twice_direct, d.out, sizeof x0, gptoss_copy_backend_to_host) == 0;
    ok = ok && gptoss_backend_copy(b, d.x, x0, sizeof x0, gptoss_copy_host_to_backend) == 0 &&
         gptoss_backend_copy(b, d.out, x0, sizeof x0, gptoss_copy_host_to_backend) == 0 && gptoss_graph_launch(g) == 0 &&
         gptoss_graph_launch(g) == 0 && gptoss_backend_copy(b, graphed, d.out, sizeof x0, gptoss_copy_backend_to_host) == 0;
    ok = ok && memcmp(twice_direct, graphed, sizeof x0) == 0;
    tc_report(names[4], ok, ok ? "" : gptoss_last_error());
    gptoss_graph_release(g);
    for (int i = 0; i < 9; i++) gptoss_backend_free(b, p[i]);
    gptoss_backend_release(b);
}

int main(void) {
    uint64_t seed = (uint64_t) time(NULL);
    const char* env = getenv("GPTOSS_TEST_SEED");
    if (env != NULL && *env != '\0') seed = strtoull(env, NULL, 10);
    printf("test_graph: seed %llu\n", (unsigned long long) seed);
    checks();
    cuda_cases(seed);
    return tc_summary();
}
