/* Small helpers shared by the engine, the offline library, the CLI, the benchmarks and
 * the tests (each defined here once). Header only; the read-bandwidth pass is readbw.h. */
#ifndef GPTOSS_UTIL_H
#define GPTOSS_UTIL_H

#include <stdint.h>
#include <time.h>

/* SplitMix64's finaliser: a bijective 64-bit mix (Steele, Lea, Flood 2014). */
static inline uint64_t gptoss_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* SplitMix64: the next value of the generator whose state is *state. */
static inline uint64_t gptoss_splitmix64(uint64_t* state) {
    return gptoss_mix64(*state += 0x9E3779B97F4A7C15ull);
}

/* Monotonic clock (CLOCK_MONOTONIC) in nanoseconds and in seconds; async-signal-safe. */
static inline uint64_t gptoss_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * UINT64_C(1000000000) + (uint64_t) ts.tv_nsec;
}
static inline double gptoss_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + 1e-9 * (double) ts.tv_nsec;
}

#endif
