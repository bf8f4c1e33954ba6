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
    /* Scratch of the kernels that need a temporary (per-thread blocks included): one
     * buffer, grown when a call needs more than it has and kept for the next calls, so a
     * kernel call allocates nothing once the largest shape has run. Guarded by
     * scratch_lock from gptoss_cpu_scratch_acquire to gptoss_cpu_scratch_release. */
    pthread_mutex_t scratch_lock;
    void* scratch;
    size_t scratch_size;
    /* MXFP4 scale multipliers, built once at creation: [s] = 2^(s - 141) (an exact f32
     * for every +14-biased scale byte; bytes <= 14 give subnormals) */
    float mxfp4_multipliers[256];
    /* and the 16 fp4 values times each of them ([s][i] = fp4 value i * multiplier s, exact),
     * 64-byte aligned rows: the AVX-512 MXFP4 kernels look a block's weights up in its row */
    float (*mxfp4_tables)[16];
    /* and their two upper bytes: [s][0][i] byte 2 and [s][1][i] byte 3 of the f32, which
     * the AVX2 MXFP4 decode looks up with byte shuffles; the value exactly only for scale
     * bytes >= GPTOSS_CPU_MXFP4_BF16_MIN (bytes 0 and 1 zero: a bf16), unused below */
    uint8_t mxfp4_bf16_bytes[256][2][16];
};

/* The smallest scale byte whose 16 fp4 products are all bf16: 0.5 * 2^(9 - 141) = 2^-133
 * is bf16's smallest subnormal. */
#define GPTOSS_CPU_MXFP4_BF16_MIN 9

static inline struct gptoss_cpu_backend* gptoss_cpu(gptoss_backend_t backend) {
    return (struct gptoss_cpu_backend*) backend;
}

/* Best ISA of this processor and build, and whether a given one is runnable. */
enum gptoss_cpu_isa gptoss_cpu_detect_isa(void);
int gptoss_cpu_isa_available(enum gptoss_cpu_isa isa);

/* Per-thread blocks inside one scratch buffer: thread i's block of `floats` starts at
 * i * gptoss_cpu_thread_stride(floats) floats (the buffer is page aligned). The stride
 * rounds the block up to whole 4 KiB pages and adds GPTOSS_CPU_THREAD_GUARD bytes between
 * two blocks: one core's hardware prefetchers, following the strided pattern of its own
 * block, pull lines of the next thread's block into its cache when the blocks are close,
 * and the other core then misses on every write to them. Measured on a Zen 4 EPYC (2
 * threads, MoE prefill of 64 tokens): blocks back to back, or 8 KiB apart, made the second
 * thread's half 1.45x slower (93 ms vs 64); 16 KiB apart or more, both halves 64 ms. */
#define GPTOSS_CPU_THREAD_GUARD 65536
static inline size_t gptoss_cpu_thread_stride(size_t floats) {
    return ((floats * sizeof(float) + 4095) / 4096 * 4096 + GPTOSS_CPU_THREAD_GUARD) / sizeof(float);
}

/* Scratch memory for one kernel call: *scratch_out = at least `bytes`, 4096-byte aligned,
 * contents undefined. Takes the backend's scratch lock (release it with
 * gptoss_cpu_scratch_release once the call is done with the memory); on failure
 * (insufficient_memory, message set) the lock is not held. */
enum gptoss_status gptoss_cpu_scratch_acquire(gptoss_backend_t backend, size_t bytes, void** scratch_out);
void gptoss_cpu_scratch_release(gptoss_backend_t backend);

/* Runs fn over [0, range) on the backend's pool (see gptoss_threadpool_parallelize). */
void gptoss_cpu_parallelize(gptoss_backend_t backend, gptoss_parallel_fn fn, void* context, size_t range,
                            size_t grain);

/* f32_rope with row t at positions[t] instead of token_offset + t (positions NULL: the
 * plain kernel); the rotation of a row is the same either way (rope.c). */
enum gptoss_status gptoss_cpu_rope_rows(gptoss_backend_t backend, const struct gptoss_f32_rope_args* args,
                                        const uint32_t* positions);

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
