/* Internal: the backend object and its table of entry points.
 *
 * src/kernels/ checks every argument once and then calls backend->ops-><kernel>; a
 * backend may therefore assume valid arguments (sizes >= 1, products fit in 64 bits,
 * divisibility, ranges; on host-memory backends also token/expert ids and routing
 * offsets). Kernel entries take the kernel's arguments struct (kernel-args.h). */
#ifndef GPTOSS_INTERNAL_BACKEND_H
#define GPTOSS_INTERNAL_BACKEND_H

#include <stdbool.h>
#include <gptoss/kernel-args.h>

struct gptoss_backend_ops {
    enum gptoss_status (*release)(gptoss_backend_t backend);
    enum gptoss_status (*alloc)(gptoss_backend_t backend, size_t size, void** ptr_out);
    enum gptoss_status (*free)(gptoss_backend_t backend, void* ptr);
    enum gptoss_status (*copy)(gptoss_backend_t backend, void* dst, const void* src, size_t size,
                               enum gptoss_copy_kind kind);
    enum gptoss_status (*synchronize)(gptoss_backend_t backend);
    enum gptoss_status (*memory_info)(gptoss_backend_t backend, uint64_t* used_bytes, uint64_t* total_bytes);

    /* Graphs (kernels.h): NULL on a backend that does not record them. The public
     * functions in src/backend.c check their arguments first. */
    enum gptoss_status (*graph_create)(gptoss_backend_t backend, gptoss_graph_t* graph_out);
    enum gptoss_status (*graph_begin)(gptoss_graph_t graph);
    enum gptoss_status (*graph_end)(gptoss_graph_t graph);
    enum gptoss_status (*graph_launch)(gptoss_graph_t graph);
    enum gptoss_status (*graph_release)(gptoss_graph_t graph);

    /* One entry per kernel of the list, named after it: `name`(backend, args). A fusion's
     * entry may be NULL (src/kernels then runs the kernels it fuses through their entries);
     * supports_<fusion>, where not NULL, says for which arguments the fused entry applies
     * (for the others src/kernels runs the kernels it fuses). */
#define GPTOSS_OPS_KERNEL(name, family) \
    enum gptoss_status (*name)(gptoss_backend_t backend, const struct gptoss_##name##_args* args);
#define GPTOSS_OPS_FUSION(name, family) \
    GPTOSS_OPS_KERNEL(name, family)     \
    bool (*supports_##name)(gptoss_backend_t backend, const struct gptoss_##name##_args* args);
    GPTOSS_KERNEL_LIST(GPTOSS_OPS_KERNEL, GPTOSS_OPS_FUSION)
#undef GPTOSS_OPS_FUSION
#undef GPTOSS_OPS_KERNEL
};

struct gptoss_backend {
    const struct gptoss_backend_ops* ops;
    enum gptoss_backend_kind kind;
    /* true when kernel pointers are host-readable: src/kernels then also checks the
     * contents of id and offset buffers before the call. */
    bool host_memory;
    enum gptoss_row_order row_order; /* gptoss_backend_set_row_order; zero (auto) at creation */
    char name[128];
};

/* The start of every backend's graph object: the backend that recorded it. */
struct gptoss_graph {
    gptoss_backend_t backend;
};

#ifdef __cplusplus
extern "C" {
#endif
/* The backends' constructors (src/cpu/backend.c, src/cuda/backend.cu; the latter only in
 * builds with CUDA). Arguments were checked by src/backend.c. */
enum gptoss_status gptoss_cpu_backend_create(uint32_t num_threads, enum gptoss_cpu_isa isa,
                                             gptoss_backend_t* backend_out);
enum gptoss_status gptoss_cuda_backend_create(int device, void* stream, uint32_t flags, gptoss_backend_t* backend_out);
#ifdef __cplusplus
}
#endif

#endif /* GPTOSS_INTERNAL_BACKEND_H */
