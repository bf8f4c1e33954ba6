#define _GNU_SOURCE /* posix_memalign, madvise(MADV_HUGEPAGE) */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <unistd.h>

#include "common/math.h"
#include "cpu/cpu.h"
#include "internal/error.h"

enum gptoss_cpu_isa gptoss_cpu_detect_isa(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl")) {
        return gptoss_cpu_isa_avx512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return gptoss_cpu_isa_avx2;
#endif
    return gptoss_cpu_isa_scalar;
}

int gptoss_cpu_isa_available(enum gptoss_cpu_isa isa) {
    return isa == gptoss_cpu_isa_scalar || (isa != gptoss_cpu_isa_auto && isa <= gptoss_cpu_detect_isa());
}

static const char* isa_name(enum gptoss_cpu_isa isa) {
    switch (isa) {
        case gptoss_cpu_isa_scalar: return "scalar";
        case gptoss_cpu_isa_avx2: return "avx2";
        case gptoss_cpu_isa_avx512: return "avx512";
        default: return "auto";
    }
}

static enum gptoss_status cpu_release(gptoss_backend_t backend) {
    struct gptoss_cpu_backend* cpu = gptoss_cpu(backend);
    gptoss_threadpool_release(cpu->pool);
    pthread_mutex_destroy(&cpu->lock);
    pthread_mutex_destroy(&cpu->scratch_lock);
    free(cpu->scratch);
    free(cpu->mxfp4_tables);
    free(cpu);
    return gptoss_status_success;
}

/* Large buffers (>= 4 MiB) are 2 MiB aligned and advised for transparent huge pages: the
 * decode kernels stream them once per token, and with 4 KiB pages every 4 KiB costs a TLB
 * miss and stops the hardware prefetchers (where THP is off, the advice does nothing). */
#define GPTOSS_CPU_HUGE_MIN ((size_t) 4 << 20)
#define GPTOSS_CPU_HUGE_ALIGN ((size_t) 2 << 20)

static enum gptoss_status cpu_alloc(gptoss_backend_t backend, size_t size, void** ptr_out) {
    void* ptr = NULL;
    const int huge = size >= GPTOSS_CPU_HUGE_MIN;
    const size_t align = huge ? GPTOSS_CPU_HUGE_ALIGN : 64;
    const size_t rounded = (size + align - 1) / align * align;
    if (rounded < size || posix_memalign(&ptr, align, rounded) != 0) {
        return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate %zu bytes of host memory", size);
    }
#ifdef MADV_HUGEPAGE
    if (huge) madvise(ptr, rounded, MADV_HUGEPAGE);
#endif
    *ptr_out = ptr;
    return gptoss_status_success;
}

static enum gptoss_status cpu_free(gptoss_backend_t backend, void* ptr) {
    free(ptr);
    return gptoss_status_success;
}

static enum gptoss_status cpu_copy(gptoss_backend_t backend, void* dst, const void* src, size_t size,
                                   enum gptoss_copy_kind kind) {
    memmove(dst, src, size);
    return gptoss_status_success;
}

static enum gptoss_status cpu_synchronize(gptoss_backend_t backend) { return gptoss_status_success; }

/* This process's resident memory (/proc/self/statm, second field, in pages) and the
 * machine's physical memory. */
static enum gptoss_status cpu_memory_info(gptoss_backend_t backend, uint64_t* used_bytes, uint64_t* total_bytes) {
    const long page = sysconf(_SC_PAGESIZE), pages = sysconf(_SC_PHYS_PAGES);
    unsigned long long size = 0, resident = 0;
    FILE* f = fopen("/proc/self/statm", "r");
    const int got = f != NULL ? fscanf(f, "%llu %llu", &size, &resident) : 0;
    if (f != NULL) fclose(f);
    if (got != 2 || page <= 0 || pages <= 0) {
        return gptoss_fail(gptoss_status_unsupported_system,
                           "the process's resident memory is not known here (no /proc/self/statm)");
    }
    *used_bytes = (uint64_t) resident * (uint64_t) page;
    *total_bytes = (uint64_t) pages * (uint64_t) page;
    return gptoss_status_success;
}

static const struct gptoss_backend_ops cpu_ops = {.release = cpu_release,
                                                  .alloc = cpu_alloc,
                                                  .free = cpu_free,
                                                  .copy = cpu_copy,
                                                  .synchronize = cpu_synchronize,
                                                  .memory_info = cpu_memory_info,
#define GPTOSS_CPU_ENTRY(name, family) .name = gptoss_cpu_##name,
#define GPTOSS_CPU_NO_ENTRY(name, family) /* a fusion: src/kernels runs its parts */
                                                  GPTOSS_KERNEL_LIST(GPTOSS_CPU_ENTRY, GPTOSS_CPU_NO_ENTRY)
#undef GPTOSS_CPU_NO_ENTRY
#undef GPTOSS_CPU_ENTRY
};

enum gptoss_status gptoss_cpu_backend_create(uint32_t num_threads, enum gptoss_cpu_isa isa,
                                             gptoss_backend_t* backend_out) {
    if (isa == gptoss_cpu_isa_auto) isa = gptoss_cpu_detect_isa();
    if (!gptoss_cpu_isa_available(isa)) {
        return gptoss_fail(gptoss_status_unsupported_system, "CPU variant %s is not supported by this processor",
                           isa_name(isa));
    }
    if (num_threads == 0) {
        const long online = sysconf(_SC_NPROCESSORS_ONLN);
        num_threads = online > 0 ? (uint32_t) online : 1;
    }
    struct gptoss_cpu_backend* cpu = calloc(1, sizeof *cpu);
    if (cpu == NULL) return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate a CPU backend");
    enum gptoss_status status = gptoss_threadpool_create(num_threads, &cpu->pool);
    if (status != gptoss_status_success) {
        free(cpu);
        return status;
    }
    pthread_mutex_init(&cpu->lock, NULL);
    pthread_mutex_init(&cpu->scratch_lock, NULL);
    cpu->isa = isa;
    for (int s = 0; s < 256; s++) cpu->mxfp4_multipliers[s] = gptoss_exp2i(s - 141);
    cpu->mxfp4_tables = aligned_alloc(64, 256 * sizeof *cpu->mxfp4_tables);
    if (cpu->mxfp4_tables == NULL) {
        cpu_release(&cpu->base);
        return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate the CPU backend's MXFP4 tables");
    }
    for (int s = 0; s < 256; s++) {
        for (int i = 0; i < 16; i++) {
            cpu->mxfp4_tables[s][i] = gptoss_fp4_values[i] * cpu->mxfp4_multipliers[s];
            const uint32_t bits = gptoss_f32_to_bits(cpu->mxfp4_tables[s][i]);
            cpu->mxfp4_bf16_bytes[s][0][i] = (uint8_t) (bits >> 16);
            cpu->mxfp4_bf16_bytes[s][1][i] = (uint8_t) (bits >> 24);
        }
    }
    cpu->base.ops = &cpu_ops;
    cpu->base.kind = gptoss_backend_kind_cpu;
    cpu->base.host_memory = true;
    snprintf(cpu->base.name, sizeof cpu->base.name, "cpu-%s (%u thread%s)", isa_name(isa), num_threads,
             num_threads == 1 ? "" : "s");
    *backend_out = &cpu->base;
    return gptoss_status_success;
}

void gptoss_cpu_parallelize(gptoss_backend_t backend, gptoss_parallel_fn fn, void* context, size_t range,
                            size_t grain) {
    struct gptoss_cpu_backend* cpu = gptoss_cpu(backend);
    pthread_mutex_lock(&cpu->lock);
    gptoss_threadpool_parallelize(cpu->pool, fn, context, range, grain);
    pthread_mutex_unlock(&cpu->lock);
}

enum gptoss_status gptoss_cpu_scratch_acquire(gptoss_backend_t backend, size_t bytes, void** scratch_out) {
    struct gptoss_cpu_backend* cpu = gptoss_cpu(backend);
    pthread_mutex_lock(&cpu->scratch_lock);
    if (bytes > cpu->scratch_size) {
        const size_t rounded = (bytes + 4095) / 4096 * 4096;
        void* grown = rounded >= bytes ? aligned_alloc(4096, rounded) : NULL;
        if (grown == NULL) {
            pthread_mutex_unlock(&cpu->scratch_lock);
            return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate %zu bytes of scratch", bytes);
        }
        free(cpu->scratch);
        cpu->scratch = grown;
        cpu->scratch_size = rounded;
    }
    *scratch_out = cpu->scratch;
    return gptoss_status_success;
}

void gptoss_cpu_scratch_release(gptoss_backend_t backend) { pthread_mutex_unlock(&gptoss_cpu(backend)->scratch_lock); }
