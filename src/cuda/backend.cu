/* CUDA backend object: creation, memory, copies, synchronisation and the device error
 * word through which kernels report out-of-range ids and offsets. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include "cuda/common.cuh"

enum gptoss_status gptoss_cuda_fail(cudaError_t error, const char* what) {
    enum gptoss_status status;
    switch (error) {
        case cudaErrorMemoryAllocation:
            status = gptoss_status_insufficient_memory;
            break;
        case cudaErrorNoDevice:
        case cudaErrorInvalidDevice:
        case cudaErrorInsufficientDriver:
        case cudaErrorNoKernelImageForDevice:
        case cudaErrorUnsupportedPtxVersion:
            status = gptoss_status_unsupported_system;
            break;
        case cudaErrorInvalidValue:
        case cudaErrorInvalidConfiguration:
            status = gptoss_status_invalid_argument;
            break;
        case cudaErrorLaunchOutOfResources:
            status = gptoss_status_insufficient_resources;
            break;
        default:
            status = gptoss_status_invalid_state;
            break;
    }
    return gptoss_fail(status, "CUDA error in %s: %s (%s)", what, cudaGetErrorString(error), cudaGetErrorName(error));
}

/* Makes *buf hold at least `need` bytes (doubling, at least `min_size`; zeroed if `zero`).
 * Called with the scratch lock held. The outgrown buffer is kept until release: a recorded
 * graph may still point at it. */
static enum gptoss_status grow_buffer(gptoss_backend_t backend, void** buf, size_t* buf_size, size_t need,
                                      size_t min_size, bool zero, const char* what) {
    struct gptoss_cuda_backend* cuda = gptoss_cuda(backend);
    if (need <= *buf_size) return gptoss_status_success;
    if (gptoss_cuda_capturing(backend)) {
        return gptoss_fail(gptoss_status_invalid_state,
                           "a kernel needs %zu bytes of %s during a graph recording (the backend has %zu); run the "
                           "same call once outside a recording first",
                           need, what, *buf_size);
    }
    if (cuda->num_retired == sizeof(cuda->retired) / sizeof(cuda->retired[0])) {
        return gptoss_fail(gptoss_status_insufficient_resources, "the %s grew too many times", what);
    }
    size_t grown = *buf_size * 2;
    if (grown < need) grown = need;
    if (grown < min_size) grown = min_size;
    void* ptr = NULL;
    const cudaStream_t stream = (cudaStream_t) cuda->stream;
    cudaError_t err = cudaMallocFromPoolAsync(&ptr, grown, (cudaMemPool_t) cuda->mem_pool, stream);
    if (err == cudaSuccess && zero) err = cudaMemsetAsync(ptr, 0, grown, stream);
    if (err != cudaSuccess) {
        if (ptr != NULL) cudaFreeAsync(ptr, stream);
        return gptoss_cuda_fail(err, what);
    }
    if (*buf != NULL) cuda->retired[cuda->num_retired++] = *buf;
    *buf = ptr;
    *buf_size = grown;
    return gptoss_status_success;
}

enum gptoss_status gptoss_cuda_scratch_acquire(gptoss_backend_t backend, size_t scratch_bytes, void** scratch_out,
                                               size_t num_counters, uint32_t** counters_out) {
    struct gptoss_cuda_backend* cuda = gptoss_cuda(backend);
    pthread_mutex_lock((pthread_mutex_t*) cuda->scratch_lock);
    enum gptoss_status st = gptoss_status_success;
    if (scratch_out != NULL) {
        st = grow_buffer(backend, &cuda->scratch, &cuda->scratch_size, scratch_bytes, (size_t) 1 << 20, false,
                         "scratch buffer");
        *scratch_out = cuda->scratch;
    }
    if (st == gptoss_status_success && counters_out != NULL) {
        st = grow_buffer(backend, &cuda->counters, &cuda->counters_size, num_counters * sizeof(uint32_t), 4096, true,
                         "counter buffer");
        *counters_out = (uint32_t*) cuda->counters;
    }
    if (st != gptoss_status_success) pthread_mutex_unlock((pthread_mutex_t*) cuda->scratch_lock);
    return st;
}

void gptoss_cuda_scratch_release(gptoss_backend_t backend) {
    pthread_mutex_unlock((pthread_mutex_t*) gptoss_cuda(backend)->scratch_lock);
}

/* Operations that cannot be recorded in a graph. */
static enum gptoss_status check_not_capturing(gptoss_backend_t backend, const char* what) {
    if (gptoss_cuda_capturing(backend)) {
        return gptoss_fail(gptoss_status_invalid_state, "%s is not allowed while the backend records a graph", what);
    }
    return gptoss_status_success;
}

static enum gptoss_status cuda_release(gptoss_backend_t backend) {
    struct gptoss_cuda_backend* cuda = gptoss_cuda(backend);
    int previous = 0;
    cudaGetDevice(&previous);
    cudaSetDevice(cuda->device);
    const cudaError_t sync_err = cudaStreamSynchronize((cudaStream_t) cuda->stream);
    cudaFree(cuda->error_word);
    for (uint32_t i = 0; i < cuda->num_retired; i++) cudaFreeAsync(cuda->retired[i], (cudaStream_t) cuda->stream);
    if (cuda->scratch != NULL) cudaFreeAsync(cuda->scratch, (cudaStream_t) cuda->stream);
    if (cuda->counters != NULL) cudaFreeAsync(cuda->counters, (cudaStream_t) cuda->stream);
    cudaStreamSynchronize((cudaStream_t) cuda->stream);
    pthread_mutex_destroy((pthread_mutex_t*) cuda->scratch_lock);
    free(cuda->scratch_lock);
    if (cuda->mem_pool != NULL) cudaMemPoolDestroy((cudaMemPool_t) cuda->mem_pool);
    free(cuda);
    cudaSetDevice(previous);
    if (sync_err != cudaSuccess) return gptoss_cuda_fail(sync_err, "cudaStreamSynchronize (release)");
    return gptoss_status_success;
}

static enum gptoss_status cuda_alloc(gptoss_backend_t backend, size_t size, void** ptr_out) {
    struct gptoss_cuda_backend* cuda = gptoss_cuda(backend);
    const enum gptoss_status st = check_not_capturing(backend, "gptoss_backend_alloc");
    if (st != gptoss_status_success) return st;
    GPTOSS_CUDA_CHECK(cudaSetDevice(cuda->device));
    void* ptr = NULL;
    const size_t rounded = (size + 255) / 256 * 256;
    if (rounded < size) {
        return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate %zu bytes of device memory", size);
    }
    const cudaError_t err = cudaMalloc(&ptr, rounded);
    if (err != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky-free error state */
        return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate %zu bytes of device memory: %s", size,
                           cudaGetErrorString(err));
    }
    *ptr_out = ptr;
    return gptoss_status_success;
}

static enum gptoss_status cuda_free(gptoss_backend_t backend, void* ptr) {
    struct gptoss_cuda_backend* cuda = gptoss_cuda(backend);
    const enum gptoss_status st = check_not_capturing(backend, "gptoss_backend_free");
    if (st != gptoss_status_success) return st;
    GPTOSS_CUDA_CHECK(cudaSetDevice(cuda->device));
    GPTOSS_CUDA_CHECK(cudaStreamSynchronize(gptoss_cuda_stream(backend)));
    GPTOSS_CUDA_CHECK(cudaFree(ptr));
    return gptoss_status_success;
}

static enum gptoss_status cuda_copy(gptoss_backend_t backend, void* dst, const void* src, size_t size,
                                    enum gptoss_copy_kind kind) {
    struct gptoss_cuda_backend* cuda = gptoss_cuda(backend);
    const enum gptoss_status st = check_not_capturing(backend, "gptoss_backend_copy");
    if (st != gptoss_status_success) return st;
    const cudaStream_t stream = gptoss_cuda_stream(backend);
    GPTOSS_CUDA_CHECK(cudaSetDevice(cuda->device));
    switch (kind) {
        case gptoss_copy_host_to_backend:
            GPTOSS_CUDA_CHECK(cudaMemcpyAsync(dst, src, size, cudaMemcpyHostToDevice, stream));
            break;
        case gptoss_copy_backend_to_host:
            GPTOSS_CUDA_CHECK(cudaMemcpyAsync(dst, src, size, cudaMemcpyDeviceToHost, stream));
            GPTOSS_CUDA_CHECK(cudaStreamSynchronize(stream));
            break;
        case gptoss_copy_backend_to_backend:
            GPTOSS_CUDA_CHECK(cudaMemcpyAsync(dst, src, size, cudaMemcpyDeviceToDevice, stream));
            break;
    }
    return gptoss_status_success;
}

static enum gptoss_status cuda_synchronize(gptoss_backend_t backend) {
    struct gptoss_cuda_backend* cuda = gptoss_cuda(backend);
    const enum gptoss_status st = check_not_capturing(backend, "gptoss_backend_synchronize");
    if (st != gptoss_status_success) return st;
    const cudaStream_t stream = gptoss_cuda_stream(backend);
    GPTOSS_CUDA_CHECK(cudaSetDevice(cuda->device));
    /* the error word's copy follows the enqueued work on the stream: one wait covers both
     * (a wait for the stream and then one for the copy cost a second host round trip after
     * every decode step) */
    uint32_t word = 0;
    GPTOSS_CUDA_CHECK(cudaMemcpyAsync(&word, cuda->error_word, sizeof word, cudaMemcpyDeviceToHost, stream));
    GPTOSS_CUDA_CHECK(cudaStreamSynchronize(stream));
    if (word != 0) {
        GPTOSS_CUDA_CHECK(cudaMemsetAsync(cuda->error_word, 0, sizeof(uint32_t), stream));
        GPTOSS_CUDA_CHECK(cudaStreamSynchronize(stream));
        char what[160];
        what[0] = '\0';
        if (word & GPTOSS_CUDA_ERROR_TOKEN_ID) strcat(what, ", a token id >= vocabulary_size");
        if (word & GPTOSS_CUDA_ERROR_EXPERT_ID) strcat(what, ", an expert id >= num_experts");
        if (word & GPTOSS_CUDA_ERROR_ROUTING_OFFSET) strcat(what, ", an out-of-range routing offset");
        if (word & GPTOSS_CUDA_ERROR_ARGMAX) strcat(what, ", an argmax >= num_channels");
        if (word & GPTOSS_CUDA_ERROR_KV_ROW)
            strcat(what, ", a varlen row with seq_ids >= num_seqs, a position past the block table or a block >= num_blocks");
        return gptoss_fail(gptoss_status_invalid_argument,
                           "a kernel met invalid device-side input (%s); the affected output rows were written as "
                           "NaN or left unwritten",
                           what + 2);
    }
    return gptoss_status_success;
}

static enum gptoss_status cuda_memory_info(gptoss_backend_t backend, uint64_t* used_bytes, uint64_t* total_bytes) {
    size_t free_bytes = 0, total = 0;
    GPTOSS_CUDA_CHECK(cudaSetDevice(gptoss_cuda(backend)->device));
    GPTOSS_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
    *used_bytes = total - free_bytes;
    *total_bytes = total;
    return gptoss_status_success;
}

static const struct gptoss_backend_ops cuda_ops = {
    /* .release = */ cuda_release,
    /* .alloc = */ cuda_alloc,
    /* .free = */ cuda_free,
    /* .copy = */ cuda_copy,
    /* .synchronize = */ cuda_synchronize,
    /* .memory_info = */ cuda_memory_info,
    /* .graph_create = */ gptoss_cuda_graph_create,
    /* .graph_begin = */ gptoss_cuda_graph_begin,
    /* .graph_end = */ gptoss_cuda_graph_end,
    /* .graph_launch = */ gptoss_cuda_graph_launch,
    /* .graph_release = */ gptoss_cuda_graph_release,
#define GPTOSS_CUDA_ENTRY(name, family) gptoss_cuda_##name,
#define GPTOSS_CUDA_FUSED_ENTRY(name, family) gptoss_cuda_##name, gptoss_cuda_supports_##name,
    GPTOSS_KERNEL_LIST(GPTOSS_CUDA_ENTRY, GPTOSS_CUDA_FUSED_ENTRY)
#undef GPTOSS_CUDA_FUSED_ENTRY
#undef GPTOSS_CUDA_ENTRY
};

/* 1 where the code the device runs was compiled for sm_90a (wgmma exists there alone; a
 * build for sm_80 and compute_90 runs without it) */
__global__ void wgmma_probe_kernel(uint32_t* out) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    *out = 1u;
#else
    *out = 0u;
#endif
}

extern "C" enum gptoss_status gptoss_cuda_backend_create(int device, void* stream, uint32_t flags,
                                                         gptoss_backend_t* backend_out) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        cudaGetLastError();
        return gptoss_fail(gptoss_status_unsupported_system, "no CUDA device is available (%s)",
                           err != cudaSuccess ? cudaGetErrorString(err) : "device count 0");
    }
    if (device >= count) {
        return gptoss_fail(gptoss_status_unsupported_system, "CUDA device %d is not present (%d device%s)", device,
                           count, count == 1 ? "" : "s");
    }
    GPTOSS_CUDA_CHECK(cudaSetDevice(device));
    cudaDeviceProp props;
    GPTOSS_CUDA_CHECK(cudaGetDeviceProperties(&props, device));
    if (props.major < 8) {
        return gptoss_fail(gptoss_status_unsupported_system,
                           "CUDA device %d (%s) has compute capability %d.%d; this build needs 8.0 or newer", device,
                           props.name, props.major, props.minor);
    }

    struct gptoss_cuda_backend* cuda = (struct gptoss_cuda_backend*) calloc(1, sizeof *cuda);
    if (cuda == NULL) return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate a CUDA backend");
    cuda->stream = stream;
    cuda->device = device;
    cuda->num_sms = props.multiProcessorCount;
    cuda->max_shared_per_block = props.sharedMemPerBlockOptin;
    cuda->pdl = props.major >= 9 && !(flags & GPTOSS_CUDA_NO_PDL);

    err = cudaMalloc((void**) &cuda->error_word, sizeof(uint32_t));
    if (err == cudaSuccess && props.major == 9) {
        /* the error word holds the probe's answer for a moment */
        uint32_t has = 0;
        wgmma_probe_kernel<<<1, 1>>>(cuda->error_word);
        err = cudaGetLastError();
        if (err == cudaSuccess) err = cudaMemcpy(&has, cuda->error_word, sizeof has, cudaMemcpyDeviceToHost);
        cuda->wgmma = has == 1u;
    }
    if (err == cudaSuccess) err = cudaMemset(cuda->error_word, 0, sizeof(uint32_t));
    if (err != cudaSuccess) {
        if (cuda->error_word != NULL) cudaFree(cuda->error_word);
        free(cuda);
        return gptoss_cuda_fail(err, "allocation of the error word");
    }

    cudaMemPoolProps pool_props;
    memset(&pool_props, 0, sizeof pool_props);
    pool_props.allocType = cudaMemAllocationTypePinned;
    pool_props.handleTypes = cudaMemHandleTypeNone;
    pool_props.location.type = cudaMemLocationTypeDevice;
    pool_props.location.id = device;
    cudaMemPool_t pool = NULL;
    err = cudaMemPoolCreate(&pool, &pool_props);
    if (err == cudaSuccess) {
        uint64_t threshold = UINT64_MAX; /* keep freed buffers for reuse */
        err = cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold);
    }
    if (err != cudaSuccess) {
        if (pool != NULL) cudaMemPoolDestroy(pool);
        cudaFree(cuda->error_word);
        free(cuda);
        return gptoss_cuda_fail(err, "creation of the memory pool");
    }
    cuda->mem_pool = pool;
    cuda->scratch_lock = malloc(sizeof(pthread_mutex_t));
    if (cuda->scratch_lock == NULL || pthread_mutex_init((pthread_mutex_t*) cuda->scratch_lock, NULL) != 0) {
        free(cuda->scratch_lock);
        cudaMemPoolDestroy(pool);
        cudaFree(cuda->error_word);
        free(cuda);
        return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate a CUDA backend");
    }

    cuda->base.ops = &cuda_ops;
    cuda->base.kind = gptoss_backend_kind_cuda;
    cuda->base.host_memory = false;
    snprintf(cuda->base.name, sizeof cuda->base.name, "cuda:%d (%s)", device, props.name);
    *backend_out = &cuda->base;
    return gptoss_status_success;
}
