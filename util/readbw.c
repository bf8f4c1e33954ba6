/* Read-bandwidth pass (readbw.h). */
#include "readbw.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

struct bw_job {
    const float* x;
    size_t n;
    double sum;
    atomic_int* go; /* 0 wait, 1 run, -1 give up */
};

#if defined(__x86_64__)
__attribute__((target("avx2"))) static double sum_avx2(const float* x, size_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(x + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(x + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(x + i + 24));
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    double s = 0;
    for (int j = 0; j < 8; j++) s += lanes[j];
    for (; i < n; i++) s += x[i];
    return s;
}
#endif

static double sum_scalar(const float* x, size_t n) {
    float a[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; j++) a[j] += x[i + j];
    }
    double s = 0;
    for (int j = 0; j < 8; j++) s += a[j];
    for (; i < n; i++) s += x[i];
    return s;
}

static void* bw_thread(void* arg) {
    struct bw_job* job = arg;
    int go;
    while ((go = atomic_load_explicit(job->go, memory_order_acquire)) == 0) {
    }
    if (go < 0) return NULL;
#if defined(__x86_64__)
    job->sum = __builtin_cpu_supports("avx2") ? sum_avx2(job->x, job->n) : sum_scalar(job->x, job->n);
#else
    job->sum = sum_scalar(job->x, job->n);
#endif
    return NULL;
}

double gptoss_tools_read_bandwidth(size_t bytes, uint32_t threads, int passes, double* pass_gbs_out,
                                   double* checksum_out) {
    if (threads == 0) threads = 1;
    const size_t n = bytes / sizeof(float) / 16 * 16; /* aligned_alloc: a multiple of 64 bytes */
    if (n < 32 * (size_t) threads || passes < 1) return 0;
    float* x = aligned_alloc(64, n * sizeof(float));
    struct bw_job* jobs = calloc(threads, sizeof *jobs);
    pthread_t* tid = calloc(threads, sizeof *tid);
    if (x == NULL || jobs == NULL || tid == NULL) {
        free(x);
        free(jobs);
        free(tid);
        return 0;
    }
    for (size_t i = 0; i < n; i++) x[i] = (float) (i & 1023) * 0.001f; /* touch every page */
    double best = 0, checksum = 0;
    const size_t per = (n / threads + 31) / 32 * 32;
    for (int p = 0; p < passes; p++) {
        /* threads spin until released, so their start-up is not timed */
        atomic_int go = 0;
        uint32_t started = 0;
        for (uint32_t t = 0; t < threads; t++) {
            const size_t start = per * t < n ? per * t : n;
            const size_t end = start + per < n ? start + per : n;
            jobs[t] = (struct bw_job){x + start, end - start, 0, &go};
            if (pthread_create(&tid[t], NULL, bw_thread, &jobs[t]) != 0) break;
            started++;
        }
        const double t0 = gptoss_now_s();
        atomic_store_explicit(&go, started == threads ? 1 : -1, memory_order_release);
        for (uint32_t t = 0; t < started; t++) pthread_join(tid[t], NULL);
        const double dt = gptoss_now_s() - t0;
        if (started != threads) {
            best = 0;
            break;
        }
        for (uint32_t t = 0; t < threads; t++) checksum += jobs[t].sum;
        const double gbs = (double) (n * sizeof(float)) / dt * 1e-9;
        if (pass_gbs_out != NULL) pass_gbs_out[p] = gbs;
        if (gbs > best) best = gbs;
    }
    free(jobs);
    free(tid);
    free(x);
    if (checksum_out != NULL) *checksum_out = checksum;
    return best;
}
