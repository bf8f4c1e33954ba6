/* Arithmetic peak of this machine, measured in the same run as a benchmark: every thread
 * runs a loop of independent f32 fused multiply-adds (12 accumulators, enough to cover
 * the latency of two FMA pipes) on registers, so nothing but the FMA issue rate limits
 * it. The f32 GFLOP/s of an exact-f32 GEMM cannot exceed it. */
#ifndef GPTOSS_BENCH_PEAK_H
#define GPTOSS_BENCH_PEAK_H

#include <stdint.h>

enum gptoss_peak_kind {
    gptoss_peak_fma_avx2,   /* 256-bit vfmadd231ps (8 lanes) */
    gptoss_peak_fma_avx512, /* 512-bit vfmadd231ps (16 lanes) */
    gptoss_peak_dpbf16,     /* 512-bit vdpbf16ps (16 lanes x 2 bf16 products): AVX512_BF16 */
};

/* GFLOP/s (1e9; an FMA counts 2, a vdpbf16ps lane 4) of the best of `passes` runs of
 * `threads` threads started together, each running `seconds` of the loop; 0 if the kind
 * is not supported by this processor or the threads cannot be started. */
double gptoss_bench_peak_gflops(enum gptoss_peak_kind kind, uint32_t threads, double seconds, int passes);

#endif
