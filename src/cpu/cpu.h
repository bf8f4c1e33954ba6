/* CPU backend: the backend object and one entry point per kernel (implemented in the
 * family files src/cpu/<family>.c). Arguments were checked by src/kernels/. Every entry
 * runs to completion on the backend's thread pool. */
#ifndef GPTOSS_CPU_CPU_H
#define GPTOSS_CPU_CPU_H

#include <pthread.h>

#include "cpu/threadpool.h"
#include "internal/backend.h"

struct gptoss_cpu_backend {
    struct gptoss_backend base; /* first: a gptoss_backend_t points here */
    struct gptoss_threadpool* pool;
    enum gptoss_cpu_isa isa;    /* resolved: never auto */
    pthread_mutex_t lock;       /* one kernel at a time per backend */
};

static inline struct gptoss_cpu_backend* gptoss_cpu(gptoss_backend_t backend) {
    return (struct gptoss_cpu_backend*) backend;
}

/* Best ISA of this processor and build, and whether a given one is runnable. */
enum gptoss_cpu_isa gptoss_cpu_detect_isa(void);
int gptoss_cpu_isa_available(enum gptoss_cpu_isa isa);

/* Runs fn over [0, range) on the backend's pool (see gptoss_threadpool_parallelize). */
void gptoss_cpu_parallelize(gptoss_backend_t backend, gptoss_parallel_fn fn, void* context, size_t range,
                            size_t grain);

/* The kernel entries: gptoss_cpu_<name>(backend, args) for every kernel of the list but
 * the fusions, which the CPU runs as their parts (src/kernels): a fused pass would save
 * kernel launches, which the CPU does not have. */
#define GPTOSS_CPU_KERNEL(name, family) \
    enum gptoss_status gptoss_cpu_##name(gptoss_backend_t backend, const struct gptoss_##name##_args* args);
#define GPTOSS_CPU_FUSION(name, family)
GPTOSS_KERNEL_LIST(GPTOSS_CPU_KERNEL, GPTOSS_CPU_FUSION)
#undef GPTOSS_CPU_FUSION
#undef GPTOSS_CPU_KERNEL

#endif
