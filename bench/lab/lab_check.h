/* The kernel labs' (bench/lab) error exits: CK for CUDA runtime calls, GK for the library's. */
#ifndef GPTOSS_BENCH_LAB_CHECK_H
#define GPTOSS_BENCH_LAB_CHECK_H

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#include <gptoss/kernels.h>

#define CK(x)                                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__, __LINE__, #x); \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#define GK(x)                                                                                      \
    do {                                                                                           \
        enum gptoss_status s_ = (x);                                                               \
        if (s_ != gptoss_status_success) {                                                         \
            fprintf(stderr, "gptoss error %s at %s:%d: %s\n", gptoss_status_to_string(s_), __FILE__, __LINE__, \
                    gptoss_last_error());                                                          \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#endif
