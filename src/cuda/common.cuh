/* CUDA backend internals: error checking macros that turn CUDA errors into statuses (never
 * exit, never print), launch helpers (PDL), the scratch buffer and counters, warp and
 * block reductions. Included by every .cu file of src/cuda (with src/common/math.h, the
 * scalar helpers shared with the host). */
#ifndef GPTOSS_CUDA_COMMON_CUH
#define GPTOSS_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <stdint.h>
#include <math.h>

extern "C" {
#include "internal/backend.h"
#include "internal/error.h"
}
#include "common/math.h"
#include "cuda/cuda.h"

/* ---------------------------------------------------------------------------------
 * Host side
 * ------------------------------------------------------------------------------- */

/* Maps a CUDA error to a status and sets the thread-local message ("<what>: <cuda text>").
 * Defined in backend.cu. */
enum gptoss_status gptoss_cuda_fail(cudaError_t error, const char* what);

#define GPTOSS_CUDA_CHECK(call)                                       \
    do {                                                              \
        const cudaError_t gptoss_cuda_err_ = (call);                  \
        if (gptoss_cuda_err_ != cudaSuccess) {                        \
            return gptoss_cuda_fail(gptoss_cuda_err_, #call);         \
        }                                                             \
    } while (0)

/* After every launch: a launch error (bad configuration, no kernel image...) becomes a status. */
#define GPTOSS_CUDA_LAUNCHED(name)                                    \
    do {                                                              \
        const cudaError_t gptoss_cuda_err_ = cudaGetLastError();      \
        if (gptoss_cuda_err_ != cudaSuccess) {                        \
            return gptoss_cuda_fail(gptoss_cuda_err_, "launch of " name); \
        }                                                             \
    } while (0)

/* Graph recording (graph.cu): while a graph records on `backend`, the kernel launches go
 * to the graph's capture stream instead of the backend's stream. */
static inline bool gptoss_cuda_capturing(gptoss_backend_t backend) { return gptoss_cuda(backend)->capture_stream != NULL; }

/* The stream kernels are enqueued on (the capture stream while a graph records). */
static inline cudaStream_t gptoss_cuda_stream(gptoss_backend_t backend) {
    const struct gptoss_cuda_backend* cuda = gptoss_cuda(backend);
    return (cudaStream_t) (cuda->capture_stream != NULL ? cuda->capture_stream : cuda->stream);
}

static inline uint32_t* gptoss_cuda_error_word(gptoss_backend_t backend) { return gptoss_cuda(backend)->error_word; }

static inline int gptoss_cuda_num_sms(gptoss_backend_t backend) { return gptoss_cuda(backend)->num_sms; }

/* Temporaries of the kernels that need them (SDPA partials, routing counts, argmax slots).
 * Takes the backend's scratch lock and returns, where the pointer is not NULL, a scratch
 * buffer of at least `scratch_bytes` and `num_counters` u32 counters that are zero on entry
 * (a kernel that counts in them must leave them at zero, e.g. the last block resets what
 * it counted). Kernels on the one stream use them one after another. Outside a graph
 * recording both grow as needed; during one they must already be large enough (the same
 * call run once before recording sizes them), else invalid_state. On success the lock is
 * held: call gptoss_cuda_scratch_release after enqueueing. */
enum gptoss_status gptoss_cuda_scratch_acquire(gptoss_backend_t backend, size_t scratch_bytes, void** scratch_out,
                                               size_t num_counters, uint32_t** counters_out);
void gptoss_cuda_scratch_release(gptoss_backend_t backend);

static inline bool gptoss_aligned(const void* ptr, size_t alignment) {
    return ((uintptr_t) ptr % alignment) == 0;
}

static inline uint32_t gptoss_div_up_u32(uint64_t a, uint64_t b) { return (uint32_t) ((a + b - 1) / b); }

/* Grid dimension y/z limit; kernels loop over the remainder. */
#define GPTOSS_CUDA_MAX_GRID_YZ 65535u

/* ---------------------------------------------------------------------------------
 * Programmatic dependent launch (PDL, sm_90+)
 *
 * A kernel launched with gptoss_cuda_launch_pdl may start while the kernel before it on
 * the stream is still running (once every block of that one has called
 * gptoss_d_pdl_trigger or exited). It must therefore call gptoss_d_pdl_wait() before it
 * reads anything an earlier kernel wrote and before it writes anything; what it may do
 * before: compute addresses, read its arguments and data no kernel writes (the weights:
 * the GEMV kernels issue their first weight loads before waiting). Every kernel calls
 * gptoss_d_pdl_trigger() first thing, so the next one can be scheduled early. Without PDL
 * (older GPUs, GPTOSS_CUDA_NO_PDL) the launch is an ordinary one and both calls do nothing.
 * ------------------------------------------------------------------------------- */
__device__ __forceinline__ void gptoss_d_pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void gptoss_d_pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

template <typename... KArgs, typename... Args>
static inline cudaError_t gptoss_cuda_launch_pdl(gptoss_backend_t backend, void (*kernel)(KArgs...), dim3 grid,
                                                 dim3 block, size_t smem, Args... args) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = gptoss_cuda_stream(backend);
    cfg.attrs = attr;
    cfg.numAttrs = gptoss_cuda(backend)->pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, ((KArgs) args)...);
}

/* ---------------------------------------------------------------------------------
 * Device side (the scalar helpers are in src/common/math.h, shared with the host)
 * ------------------------------------------------------------------------------- */

__device__ __forceinline__ void gptoss_d_set_error(uint32_t* error_word, uint32_t bits) {
    atomicOr(error_word, bits);
}

/* Warp reductions over all 32 lanes (fixed butterfly order: deterministic). */
__device__ __forceinline__ float gptoss_d_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
    return v;
}

__device__ __forceinline__ float gptoss_d_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, o));
    return v;
}

/* Block sum for blockDim.x a multiple of 32 (<= 1024); result valid in every thread.
 * scratch: 32 floats of shared memory. Deterministic. */
__device__ __forceinline__ float gptoss_d_block_sum(float v, float* scratch) {
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const unsigned num_warps = blockDim.x >> 5;
    v = gptoss_d_warp_sum(v);
    __syncthreads(); /* scratch may be in use by a previous call */
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float r = lane < num_warps ? scratch[lane] : 0.0f;
    r = gptoss_d_warp_sum(r);
    return r;
}

#endif /* GPTOSS_CUDA_COMMON_CUH */
