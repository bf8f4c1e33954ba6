/* CUDA backend: the backend object and one entry point per kernel (implemented in the
 * family files src/cuda/<family>.cu).
 * C-compatible: no CUDA types. Arguments were checked by src/kernels/ (except the contents
 * of device buffers: token ids, expert ids, routing offsets are checked by the kernels,
 * which set the backend's device error word; gptoss_backend_synchronize reports it).
 * Every entry enqueues its work on the backend's stream and returns at once. */
#ifndef GPTOSS_CUDA_CUDA_H
#define GPTOSS_CUDA_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "internal/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bits of the device error word. */
#define GPTOSS_CUDA_ERROR_TOKEN_ID 1u
#define GPTOSS_CUDA_ERROR_EXPERT_ID 2u
#define GPTOSS_CUDA_ERROR_ROUTING_OFFSET 4u
#define GPTOSS_CUDA_ERROR_ARGMAX 8u
#define GPTOSS_CUDA_ERROR_KV_ROW 16u

struct gptoss_cuda_backend {
    struct gptoss_backend base; /* first: a gptoss_backend_t points here */
    void* stream;               /* cudaStream_t, owned by the caller (NULL = legacy default stream) */
    int device;
    int num_sms;
    size_t max_shared_per_block; /* opt-in maximum, bytes */
    int pdl;                     /* programmatic dependent launch (sm_90+, without GPTOSS_CUDA_NO_PDL) */
    int wgmma;                   /* the running code is sm_90a's: the wgmma kernels (wgmma.cuh) can launch */
    uint32_t* error_word;        /* device u32, set by kernels (bits above), reset by synchronize */
    void* mem_pool;              /* cudaMemPool_t the scratch and counter buffers come from */
    /* Scratch for kernels that need a temporary (SDPA partials, routing counts): one
     * buffer, grown on demand; outgrown buffers stay allocated until release because a
     * recorded graph may still point at them. Guarded by scratch_lock (held from the
     * acquire until the launch that uses it is enqueued). */
    void* scratch_lock;          /* pthread_mutex_t */
    void* scratch;
    size_t scratch_size;
    void* counters;              /* u32 counters, zero between kernels (kernels reset them) */
    size_t counters_size;
    void* retired[64];
    uint32_t num_retired;
    /* cudaStream_t of the graph recording on this backend (graph.cu), NULL when none: the
     * kernels enqueue on it instead of `stream` (gptoss_cuda_stream, common.cuh) */
    void* capture_stream;
};

static inline struct gptoss_cuda_backend* gptoss_cuda(gptoss_backend_t backend) {
    return (struct gptoss_cuda_backend*) backend;
}

/* graph.cu: the graph entries of the backend's ops table */
enum gptoss_status gptoss_cuda_graph_create(gptoss_backend_t backend, gptoss_graph_t* graph_out);
enum gptoss_status gptoss_cuda_graph_begin(gptoss_graph_t graph);
enum gptoss_status gptoss_cuda_graph_end(gptoss_graph_t graph);
enum gptoss_status gptoss_cuda_graph_launch(gptoss_graph_t graph);
enum gptoss_status gptoss_cuda_graph_release(gptoss_graph_t graph);

/* The kernel entries: gptoss_cuda_<name>(backend, args) for every kernel of the list; for
 * a fusion also gptoss_cuda_supports_<name>(backend, args), true where the fused kernel
 * applies (src/kernels runs the parts for the other arguments). */
#define GPTOSS_CUDA_KERNEL(name, family) \
    enum gptoss_status gptoss_cuda_##name(gptoss_backend_t backend, const struct gptoss_##name##_args* args);
#define GPTOSS_CUDA_FUSION(name, family) \
    GPTOSS_CUDA_KERNEL(name, family)     \
    bool gptoss_cuda_supports_##name(gptoss_backend_t backend, const struct gptoss_##name##_args* args);
GPTOSS_KERNEL_LIST(GPTOSS_CUDA_KERNEL, GPTOSS_CUDA_FUSION)
#undef GPTOSS_CUDA_FUSION
#undef GPTOSS_CUDA_KERNEL

#ifdef __cplusplus
}
#endif

#endif /* GPTOSS_CUDA_CUDA_H */
