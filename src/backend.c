/* Public backend functions: argument checks, then the backend's own entry. */
#include <stdint.h>

#include "internal/backend.h"
#include "internal/error.h"

enum gptoss_status gptoss_backend_create_cpu(uint32_t num_threads, gptoss_backend_t* backend_out) {
    return gptoss_backend_create_cpu_isa(num_threads, gptoss_cpu_isa_auto, backend_out);
}

enum gptoss_status gptoss_backend_create_cpu_isa(uint32_t num_threads, enum gptoss_cpu_isa isa,
                                                 gptoss_backend_t* backend_out) {
    gptoss_clear_error();
    if (backend_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "backend_out is NULL");
    if (num_threads > 1024) {
        return gptoss_fail(gptoss_status_invalid_argument, "num_threads %u is over the limit of 1024", num_threads);
    }
    if ((int) isa < gptoss_cpu_isa_auto || (int) isa > gptoss_cpu_isa_avx512) {
        return gptoss_fail(gptoss_status_invalid_argument, "isa %d is not a gptoss_cpu_isa value", (int) isa);
    }
    return gptoss_cpu_backend_create(num_threads, isa, backend_out);
}

enum gptoss_status gptoss_backend_create_cuda(int device, void* stream, gptoss_backend_t* backend_out) {
    return gptoss_backend_create_cuda_ex(device, stream, 0, backend_out);
}

enum gptoss_status gptoss_backend_create_cuda_ex(int device, void* stream, uint32_t flags,
                                                 gptoss_backend_t* backend_out) {
    gptoss_clear_error();
    if (backend_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "backend_out is NULL");
    if (device < 0) return gptoss_fail(gptoss_status_invalid_argument, "device %d is negative", device);
    if ((flags & ~(uint32_t) GPTOSS_CUDA_NO_PDL) != 0) {
        return gptoss_fail(gptoss_status_invalid_argument, "unknown CUDA backend flags 0x%x", flags);
    }
#ifdef GPTOSS_WITH_CUDA
    return gptoss_cuda_backend_create(device, stream, flags, backend_out);
#else
    return gptoss_fail(gptoss_status_unsupported_system, "this build has no CUDA backend (configure with -DGPTOSS_CUDA=ON)");
#endif
}

enum gptoss_status gptoss_backend_release(gptoss_backend_t backend) {
    if (backend == NULL) return gptoss_status_success;
    return backend->ops->release(backend);
}

enum gptoss_backend_kind gptoss_backend_get_kind(gptoss_backend_t backend) {
    return backend == NULL ? (enum gptoss_backend_kind) 0 : backend->kind;
}

enum gptoss_status gptoss_backend_set_row_order(gptoss_backend_t backend, enum gptoss_row_order order) {
    gptoss_clear_error();
    if (backend == NULL) return gptoss_fail(gptoss_status_invalid_argument, "backend is NULL");
    if (order != gptoss_row_order_auto && order != gptoss_row_order_one && order != gptoss_row_order_many) {
        return gptoss_fail(gptoss_status_invalid_argument, "row order %d is not one of auto (0), one (1), many (2)",
                           (int) order);
    }
    backend->row_order = order;
    return gptoss_status_success;
}

enum gptoss_row_order gptoss_backend_get_row_order(gptoss_backend_t backend) {
    return backend == NULL ? gptoss_row_order_auto : backend->row_order;
}

const char* gptoss_backend_get_name(gptoss_backend_t backend) { return backend == NULL ? "(null)" : backend->name; }

enum gptoss_status gptoss_backend_alloc(gptoss_backend_t backend, size_t size, void** ptr_out) {
    gptoss_clear_error();
    if (backend == NULL) return gptoss_fail(gptoss_status_invalid_argument, "backend is NULL");
    if (ptr_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "ptr_out is NULL");
    if (size == 0) return gptoss_fail(gptoss_status_invalid_argument, "size is 0");
    return backend->ops->alloc(backend, size, ptr_out);
}

enum gptoss_status gptoss_backend_get_memory_info(gptoss_backend_t backend, uint64_t* used_bytes_out,
                                                  uint64_t* total_bytes_out) {
    gptoss_clear_error();
    if (backend == NULL) return gptoss_fail(gptoss_status_invalid_argument, "backend is NULL");
    if (used_bytes_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "used_bytes_out is NULL");
    if (total_bytes_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "total_bytes_out is NULL");
    uint64_t used = 0, total = 0;
    const enum gptoss_status st = backend->ops->memory_info(backend, &used, &total);
    if (st != gptoss_status_success) return st;
    *used_bytes_out = used;
    *total_bytes_out = total;
    return gptoss_status_success;
}

enum gptoss_status gptoss_backend_free(gptoss_backend_t backend, void* ptr) {
    if (backend == NULL) return gptoss_fail(gptoss_status_invalid_argument, "backend is NULL");
    if (ptr == NULL) return gptoss_status_success;
    return backend->ops->free(backend, ptr);
}

enum gptoss_status gptoss_backend_copy(gptoss_backend_t backend, void* dst, const void* src, size_t size,
                                       enum gptoss_copy_kind kind) {
    gptoss_clear_error();
    if (backend == NULL) return gptoss_fail(gptoss_status_invalid_argument, "backend is NULL");
    if ((int) kind < gptoss_copy_host_to_backend || (int) kind > gptoss_copy_backend_to_backend) {
        return gptoss_fail(gptoss_status_invalid_argument, "copy kind %d is not a gptoss_copy_kind value", (int) kind);
    }
    if (size == 0) return gptoss_status_success;
    if (dst == NULL) return gptoss_fail(gptoss_status_invalid_argument, "dst is NULL");
    if (src == NULL) return gptoss_fail(gptoss_status_invalid_argument, "src is NULL");
    return backend->ops->copy(backend, dst, src, size, kind);
}

enum gptoss_status gptoss_backend_synchronize(gptoss_backend_t backend) {
    gptoss_clear_error();
    if (backend == NULL) return gptoss_fail(gptoss_status_invalid_argument, "backend is NULL");
    return backend->ops->synchronize(backend);
}

/* ---- graphs (backends with graph entries: CUDA) ------------------------------------ */

enum gptoss_status gptoss_graph_create(gptoss_backend_t backend, gptoss_graph_t* graph_out) {
    gptoss_clear_error();
    if (backend == NULL) return gptoss_fail(gptoss_status_invalid_argument, "backend is NULL");
    if (graph_out == NULL) return gptoss_fail(gptoss_status_invalid_argument, "graph_out is NULL");
    if (backend->ops->graph_create == NULL) {
        return gptoss_fail(gptoss_status_unsupported_system, "backend %s does not record graphs", backend->name);
    }
    return backend->ops->graph_create(backend, graph_out);
}

enum gptoss_status gptoss_graph_begin(gptoss_graph_t graph) {
    gptoss_clear_error();
    if (graph == NULL) return gptoss_fail(gptoss_status_invalid_argument, "graph is NULL");
    return graph->backend->ops->graph_begin(graph);
}

enum gptoss_status gptoss_graph_end(gptoss_graph_t graph) {
    gptoss_clear_error();
    if (graph == NULL) return gptoss_fail(gptoss_status_invalid_argument, "graph is NULL");
    return graph->backend->ops->graph_end(graph);
}

enum gptoss_status gptoss_graph_launch(gptoss_graph_t graph) {
    gptoss_clear_error();
    if (graph == NULL) return gptoss_fail(gptoss_status_invalid_argument, "graph is NULL");
    return graph->backend->ops->graph_launch(graph);
}

enum gptoss_status gptoss_graph_release(gptoss_graph_t graph) {
    if (graph == NULL) return gptoss_status_success;
    return graph->backend->ops->graph_release(graph);
}
