/* Graphs (kernels.h, "Graphs"): a recording of kernel calls replayed with one launch.
 *
 * Recording uses CUDA stream capture on a private stream: while a graph records, its
 * backend holds the capture stream (capture_stream, cuda.h) and gptoss_cuda_stream()
 * hands every launch on the backend that stream (common.cuh): an explicit state of the
 * backend, which one thread uses at a time, not of the calling thread. gptoss_graph_end
 * turns the capture into an executable graph; when one exists
 * already it is updated in place (cudaGraphExecUpdate: same sequence of kernels, new
 * arguments and grid sizes, much cheaper than instantiating), else instantiated anew. */
#include <stdlib.h>

#include "cuda/common.cuh"

struct cuda_graph {
    struct gptoss_graph base;    /* first: a gptoss_graph_t points here */
    cudaStream_t capture_stream; /* owned */
    cudaGraphExec_t exec;        /* NULL until the first successful end */
    bool recording;
    unsigned long errors_at_begin; /* gptoss_error_count() when the recording began */
};

extern "C" enum gptoss_status gptoss_cuda_graph_create(gptoss_backend_t backend, gptoss_graph_t* graph_out) {
    GPTOSS_CUDA_CHECK(cudaSetDevice(gptoss_cuda(backend)->device));
    struct cuda_graph* g = (struct cuda_graph*) calloc(1, sizeof *g);
    if (g == NULL) return gptoss_fail(gptoss_status_insufficient_memory, "cannot allocate a graph");
    const cudaError_t err = cudaStreamCreateWithFlags(&g->capture_stream, cudaStreamNonBlocking);
    if (err != cudaSuccess) {
        free(g);
        return gptoss_cuda_fail(err, "cudaStreamCreateWithFlags (graph capture stream)");
    }
    g->base.backend = backend;
    *graph_out = &g->base;
    return gptoss_status_success;
}

extern "C" enum gptoss_status gptoss_cuda_graph_begin(gptoss_graph_t handle) {
    struct cuda_graph* g = (struct cuda_graph*) handle;
    if (g->recording) return gptoss_fail(gptoss_status_invalid_state, "the graph is already recording");
    struct gptoss_cuda_backend* cuda = gptoss_cuda(g->base.backend);
    if (cuda->capture_stream != nullptr) {
        return gptoss_fail(gptoss_status_invalid_state, "the backend is already recording a graph");
    }
    GPTOSS_CUDA_CHECK(cudaSetDevice(cuda->device));
    GPTOSS_CUDA_CHECK(cudaStreamBeginCapture(g->capture_stream, cudaStreamCaptureModeThreadLocal));
    g->recording = true;
    g->errors_at_begin = gptoss_error_count();
    cuda->capture_stream = g->capture_stream;
    return gptoss_status_success;
}

/* Ends the capture; *graph_out is NULL when the capture was invalidated. */
static cudaError_t end_capture(struct cuda_graph* g, cudaGraph_t* graph_out) {
    g->recording = false;
    gptoss_cuda(g->base.backend)->capture_stream = nullptr;
    *graph_out = nullptr;
    const cudaError_t err = cudaStreamEndCapture(g->capture_stream, graph_out);
    if (err != cudaSuccess && *graph_out != nullptr) {
        cudaGraphDestroy(*graph_out);
        *graph_out = nullptr;
    }
    return err;
}

extern "C" enum gptoss_status gptoss_cuda_graph_end(gptoss_graph_t handle) {
    struct cuda_graph* g = (struct cuda_graph*) handle;
    if (!g->recording) return gptoss_fail(gptoss_status_invalid_state, "the graph is not recording");
    cudaGraph_t graph = nullptr;
    const cudaError_t err = end_capture(g, &graph);
    if (err != cudaSuccess) {
        cudaGetLastError();
        return gptoss_cuda_fail(err, "cudaStreamEndCapture (a call during the recording failed)");
    }
    if (gptoss_error_count() != g->errors_at_begin) {
        cudaGraphDestroy(graph);
        return gptoss_fail(gptoss_status_invalid_state,
                           "a call failed during the recording; the graph keeps its previous recording");
    }
    if (g->exec != nullptr) {
        cudaGraphExecUpdateResultInfo info;
        if (cudaGraphExecUpdate(g->exec, graph, &info) == cudaSuccess) {
            cudaGraphDestroy(graph);
            return gptoss_status_success;
        }
        cudaGetLastError(); /* a different shape: instantiate anew */
        cudaGraphExecDestroy(g->exec);
        g->exec = nullptr;
    }
    const cudaError_t ierr = cudaGraphInstantiate(&g->exec, graph, 0);
    cudaGraphDestroy(graph);
    if (ierr != cudaSuccess) {
        g->exec = nullptr;
        return gptoss_cuda_fail(ierr, "cudaGraphInstantiate");
    }
    return gptoss_status_success;
}

extern "C" enum gptoss_status gptoss_cuda_graph_launch(gptoss_graph_t handle) {
    struct cuda_graph* g = (struct cuda_graph*) handle;
    if (g->recording) return gptoss_fail(gptoss_status_invalid_state, "the graph is still recording");
    if (g->exec == nullptr) return gptoss_fail(gptoss_status_invalid_state, "the graph holds no recording");
    GPTOSS_CUDA_CHECK(cudaSetDevice(gptoss_cuda(g->base.backend)->device));
    GPTOSS_CUDA_CHECK(cudaGraphLaunch(g->exec, (cudaStream_t) gptoss_cuda(g->base.backend)->stream));
    return gptoss_status_success;
}

extern "C" enum gptoss_status gptoss_cuda_graph_release(gptoss_graph_t handle) {
    struct cuda_graph* g = (struct cuda_graph*) handle;
    if (g->recording) {
        cudaGraph_t graph = nullptr;
        end_capture(g, &graph);
        if (graph != nullptr) cudaGraphDestroy(graph);
        cudaGetLastError();
    }
    /* a launched graph may still run: wait for the backend's stream before destroying */
    cudaStreamSynchronize((cudaStream_t) gptoss_cuda(g->base.backend)->stream);
    if (g->exec != nullptr) cudaGraphExecDestroy(g->exec);
    cudaStreamDestroy(g->capture_stream);
    free(g);
    return gptoss_status_success;
}
