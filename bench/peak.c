/* Arithmetic peak loops (peak.h). */
#include "peak.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PEAK_X86 1
#else
#define PEAK_X86 0
#endif

#define PEAK_ACC 12 /* independent chains: >= 2 pipes x 4-5 cycles of FMA latency, and with
                     * the two operands within the 16 ymm registers of AVX2 (no spills) */
#define PEAK_STEPS 100000  /* loop iterations between two looks at the clock */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

/* Each loop runs PEAK_STEPS iterations of PEAK_ACC independent operations and returns a
 * value that depends on all of them (so none can be removed). acc = acc * m + a with
 * m < 1 stays bounded and normal. */
#if PEAK_X86
__attribute__((target("avx2,fma"))) static float loop_avx2(void) {
    __m256 acc[PEAK_ACC];
    for (int i = 0; i < PEAK_ACC; i++) acc[i] = _mm256_set1_ps((float) i);
    volatile float vm = 0.999f, va = 0.001f;
    const __m256 m = _mm256_set1_ps(vm), a = _mm256_set1_ps(va);
    for (int s = 0; s < PEAK_STEPS; s++) {
#pragma GCC unroll 12
        for (int i = 0; i < PEAK_ACC; i++) acc[i] = _mm256_fmadd_ps(acc[i], m, a);
    }
    __m256 sum = acc[0];
    for (int i = 1; i < PEAK_ACC; i++) sum = _mm256_add_ps(sum, acc[i]);
    return _mm256_cvtss_f32(sum);
}

__attribute__((target("avx512f"))) static float loop_avx512(void) {
    __m512 acc[PEAK_ACC];
    for (int i = 0; i < PEAK_ACC; i++) acc[i] = _mm512_set1_ps((float) i);
    volatile float vm = 0.999f, va = 0.001f;
    const __m512 m = _mm512_set1_ps(vm), a = _mm512_set1_ps(va);
    for (int s = 0; s < PEAK_STEPS; s++) {
#pragma GCC unroll 12
        for (int i = 0; i < PEAK_ACC; i++) acc[i] = _mm512_fmadd_ps(acc[i], m, a);
    }
    __m512 sum = acc[0];
    for (int i = 1; i < PEAK_ACC; i++) sum = _mm512_add_ps(sum, acc[i]);
    return _mm512_reduce_add_ps(sum);
}

/* acc += a . b per lane (two bf16 products); a, b of small magnitude so acc grows slowly */
__attribute__((target("avx512f,avx512bf16"))) static float loop_dpbf16(void) {
    __m512 acc[PEAK_ACC];
    for (int i = 0; i < PEAK_ACC; i++) acc[i] = _mm512_set1_ps((float) i);
    volatile float va = 0.001f;
    const __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(va), _mm512_set1_ps(va));
    for (int s = 0; s < PEAK_STEPS; s++) {
#pragma GCC unroll 12
        for (int i = 0; i < PEAK_ACC; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, a);
    }
    __m512 sum = acc[0];
    for (int i = 1; i < PEAK_ACC; i++) sum = _mm512_add_ps(sum, acc[i]);
    return _mm512_reduce_add_ps(sum);
}
#endif

struct peak_job {
    enum gptoss_peak_kind kind;
    double seconds;
    atomic_int* go; /* 0 wait, 1 run, -1 give up */
    double steps;   /* loops done */
    float sink;
};

static void* peak_thread(void* arg) {
    struct peak_job* job = arg;
    int go;
    while ((go = atomic_load_explicit(job->go, memory_order_acquire)) == 0) {
    }
    if (go < 0) return NULL;
    const double t0 = now_s();
    do {
        switch (job->kind) {
#if PEAK_X86
            case gptoss_peak_fma_avx2: job->sink += loop_avx2(); break;
            case gptoss_peak_fma_avx512: job->sink += loop_avx512(); break;
            case gptoss_peak_dpbf16: job->sink += loop_dpbf16(); break;
#endif
            default: break;
        }
        job->steps += PEAK_STEPS;
    } while (now_s() - t0 < job->seconds);
    return NULL;
}

static int supported(enum gptoss_peak_kind kind) {
#if PEAK_X86
    __builtin_cpu_init();
    switch (kind) {
        case gptoss_peak_fma_avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        case gptoss_peak_fma_avx512: return __builtin_cpu_supports("avx512f");
        case gptoss_peak_dpbf16: return __builtin_cpu_supports("avx512bf16");
    }
#endif
    return 0;
}

double gptoss_bench_peak_gflops(enum gptoss_peak_kind kind, uint32_t threads, double seconds, int passes) {
    static const double flops_per_op[] = {16, 32, 64};
    if (threads == 0 || passes < 1 || seconds <= 0 || !supported(kind)) return 0;
    struct peak_job* jobs = calloc(threads, sizeof *jobs);
    pthread_t* tid = calloc(threads, sizeof *tid);
    double best = 0;
    for (int p = 0; jobs != NULL && tid != NULL && p < passes; p++) {
        atomic_int go = 0;
        uint32_t started = 0;
        for (uint32_t t = 0; t < threads; t++) {
            jobs[t] = (struct peak_job){kind, seconds, &go, 0, 0};
            if (pthread_create(&tid[t], NULL, peak_thread, &jobs[t]) != 0) break;
            started++;
        }
        const double t0 = now_s();
        atomic_store_explicit(&go, started == threads ? 1 : -1, memory_order_release);
        for (uint32_t t = 0; t < started; t++) pthread_join(tid[t], NULL);
        const double dt = now_s() - t0;
        if (started != threads) {
            best = 0;
            break;
        }
        double ops = 0;
        for (uint32_t t = 0; t < threads; t++) ops += jobs[t].steps * PEAK_ACC;
        const double gflops = ops * flops_per_op[kind] / dt * 1e-9;
        if (gflops > best) best = gflops;
    }
    free(jobs);
    free(tid);
    return best;
}
