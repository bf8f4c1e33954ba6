// step_floor: the floor of a decode step on this card, with the engine's own op sizes (issue
// 14: "repeat the floor with your own kernels' sizes after any change of the step's shape").
// Not part of the library or the tests.
//
// A decode step of gpt-oss is a chain of dependent ops whose bytes are known before the step
// starts. This lab lays out exactly those bytes (one buffer per op, sizes from the model's
// shape and the context depth) and times kernels that only read them, in three designs:
//
//   A  a CUDA graph of one plain kernel per op (each waits for the previous to finish);
//   C  the same graph with programmatic dependent launch, every kernel issuing its first
//      loads before griddepcontrol.wait (what the engine's kernels do);
//   E  one kernel streaming all the bytes (no dependencies: the ceiling).
//
// and prints us/step, tok/s and the share of a device-to-device copy's rate (read + write).
// The engine's own step is measured by `gptoss bench` (its bound line uses the copy rate).
//
//   step_floor [--preset 20b|120b] [--depth N] [--iters N]
//
// The ops of a layer (the engine's kernels, tools/ncu_decode.py): qkv + RoPE + KV write, SDPA
// over the layer's keys (f32 K and V; windowed layers at most the window), attention output +
// residual, the gate, MoE up + SwiGLU and MoE down of the active experts (MXFP4 blocks, scales,
// bf16 bias), accumulate + norm (the residual row); then the unembedding.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "lab_check.h"

namespace {

struct Shape {
    uint32_t layers, hidden, head_dim, q_heads, kv_heads, experts, active, mlp, vocab, window;
};
const Shape k20b = {24, 2880, 64, 64, 8, 32, 4, 2880, 201088, 128};
const Shape k120b = {36, 2880, 64, 64, 8, 128, 4, 2880, 201088, 128};

struct Op {
    const char* name;
    size_t bytes;
};

std::vector<Op> step_ops(const Shape& s, uint64_t depth) {
    const size_t H = s.hidden, D = s.head_dim, QKV = (size_t) D * (s.q_heads + 2 * s.kv_heads);
    const size_t mxfp4_row = H / 2 + H / 32; /* one weight row of H columns: blocks + scales */
    std::vector<Op> ops;
    for (uint32_t l = 0; l < s.layers; l++) {
        const uint64_t keys = (l % 2 == 0) ? std::min<uint64_t>(depth + 1, s.window) : depth + 1;
        ops.push_back({"qkv", QKV * H * 2 + QKV * 2 + H * 4});
        ops.push_back({"sdpa", (size_t) (2 * s.kv_heads * D * 4 * keys + s.q_heads * D * 4)});
        ops.push_back({"attn-out", (size_t) s.q_heads * D * H * 2 + H * 2 + s.q_heads * D * 4});
        ops.push_back({"gate", (size_t) s.experts * H * 2 + s.experts * 2 + H * 4});
        ops.push_back({"moe-up", (size_t) s.active * (2 * s.mlp * mxfp4_row + 2 * s.mlp * 2) + H * 4});
        ops.push_back({"moe-down", (size_t) s.active * (H * (s.mlp / 2 + s.mlp / 32) + H * 2) + s.active * s.mlp * 4});
        ops.push_back({"acc-norm", (size_t) (s.active + 2) * H * 4 + H * 2});
    }
    ops.push_back({"unembedding", (size_t) s.vocab * H * 2 + H * 4});
    return ops;
}

constexpr int kThreads = 256, kPre = 8; /* 16-byte loads a thread issues before the wait */

/* Reads n16 16-byte words; PDL: the first kPre per thread before griddepcontrol.wait. The XOR
 * of everything read goes to sink when it equals a value it never has (keeps the loads). */
template <bool PDL>
__global__ void __launch_bounds__(kThreads) read_op(const uint4* __restrict__ p, size_t n16, uint32_t* sink) {
    if (PDL) asm volatile("griddepcontrol.launch_dependents;");
    const size_t stride = (size_t) gridDim.x * kThreads;
    size_t i = (size_t) blockIdx.x * kThreads + threadIdx.x;
    uint32_t acc = 0;
    uint4 pre[kPre];
#pragma unroll
    for (int k = 0; k < kPre; k++) {
        const size_t j = i + (size_t) k * stride;
        pre[k] = j < n16 ? __ldg(p + j) : make_uint4(0, 0, 0, 0);
    }
    if (PDL) asm volatile("griddepcontrol.wait;" ::: "memory");
#pragma unroll
    for (int k = 0; k < kPre; k++) acc ^= pre[k].x ^ pre[k].y ^ pre[k].z ^ pre[k].w;
    for (size_t j = i + (size_t) kPre * stride; j < n16; j += stride) {
        const uint4 v = __ldg(p + j);
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x9E3779B9u) sink[blockIdx.x] = acc;
}

cudaStream_t g_stream;

void launch(bool pdl, const uint4* p, size_t n16, uint32_t* sink, int blocks) {
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t c = {};
    c.gridDim = dim3((unsigned) blocks);
    c.blockDim = dim3(kThreads);
    c.stream = g_stream;
    c.attrs = pdl ? at : nullptr;
    c.numAttrs = pdl ? 1 : 0;
    if (pdl) CK(cudaLaunchKernelEx(&c, read_op<true>, p, n16, sink));
    else CK(cudaLaunchKernelEx(&c, read_op<false>, p, n16, sink));
}

}  // namespace

int main(int argc, char** argv) {
    std::string preset = "20b";
    uint64_t depth = 0;
    int iters = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--preset") && i + 1 < argc) preset = argv[++i];
        else if (!strcmp(argv[i], "--depth") && i + 1 < argc) depth = strtoull(argv[++i], nullptr, 10);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--preset 20b|120b] [--depth N] [--iters N]\n", argv[0]);
            return 2;
        }
    }
    if (preset != "20b" && preset != "120b") {
        fprintf(stderr, "step_floor: unknown preset '%s' (20b, 120b)\n", preset.c_str());
        return 2;
    }
    const Shape& shape = preset == "20b" ? k20b : k120b;
    const std::vector<Op> ops = step_ops(shape, depth);
    std::vector<size_t> off(ops.size() + 1, 0);
    for (size_t i = 0; i < ops.size(); i++) off[i + 1] = off[i] + (ops[i].bytes + 255) / 256 * 256;
    const size_t total = off.back();

    cudaDeviceProp pr;
    CK(cudaGetDeviceProperties(&pr, 0));
    CK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
    uint8_t* buf;
    uint32_t* sink;
    CK(cudaMalloc(&buf, total));
    CK(cudaMalloc(&sink, 1 << 20));
    CK(cudaMemset(buf, 0x5A, total));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    auto best_ms = [&](auto&& body) {
        float best = 1e30f;
        for (int it = 0; it < iters; it++) {
            CK(cudaEventRecord(e0, g_stream));
            body();
            CK(cudaEventRecord(e1, g_stream));
            CK(cudaEventSynchronize(e1));
            float ms;
            CK(cudaEventElapsedTime(&ms, e0, e1));
            best = std::min(best, ms);
        }
        return (double) best;
    };

    /* the copy rate: device-to-device of 2 GiB (or less memory), read + write */
    const size_t cbytes = std::min<size_t>((size_t) 1 << 30, total / 2);
    const double copy_ms = best_ms([&] { CK(cudaMemcpyAsync(buf + cbytes, buf, cbytes, cudaMemcpyDeviceToDevice, g_stream)); });
    const double copy_gbs = 2.0 * cbytes / (copy_ms * 1e-3) / 1e9;
    printf("step_floor: %s, %d SMs; gpt-oss-%s decode step at depth %llu: %zu ops, %.3f GB; copy %.0f GB/s (read + write)\n",
           pr.name, pr.multiProcessorCount, preset.c_str(), (unsigned long long) depth, ops.size(), total / 1e9,
           copy_gbs);

    const int blocks = pr.multiProcessorCount * 8;
    auto report = [&](const char* name, double ms) {
        const double gbs = total / (ms * 1e-3) / 1e9;
        printf("  %-44s %8.1f us/step %8.1f tok/s %6.0f GB/s %5.1f %% of copy\n", name, ms * 1e3, 1e3 / ms, gbs,
               100.0 * gbs / copy_gbs);
    };
    for (int design = 0; design < 2; design++) {
        const bool pdl = design == 1;
        cudaGraph_t graph;
        cudaGraphExec_t exec;
        CK(cudaStreamBeginCapture(g_stream, cudaStreamCaptureModeThreadLocal));
        for (size_t i = 0; i < ops.size(); i++) {
            const size_t n16 = ops[i].bytes / 16;
            /* small ops: as many blocks as their bytes need (the engine's small kernels are small) */
            const int b = (int) std::max<size_t>(1, std::min<size_t>(blocks, (n16 + kThreads * kPre - 1) / (kThreads * kPre)));
            launch(pdl, (const uint4*) (buf + off[i]), n16, sink, b);
        }
        CK(cudaStreamEndCapture(g_stream, &graph));
        CK(cudaGraphInstantiate(&exec, graph, 0));
        CK(cudaGraphLaunch(exec, g_stream)); /* warm-up */
        const double ms = best_ms([&] { CK(cudaGraphLaunch(exec, g_stream)); });
        report(pdl ? "C  graph + PDL, loads before the wait" : "A  graph of plain kernels", ms);
        CK(cudaGraphExecDestroy(exec));
        CK(cudaGraphDestroy(graph));
    }
    const double ms_e = best_ms([&] { launch(false, (const uint4*) buf, total / 16, sink, blocks); });
    report("E  one kernel streaming every byte", ms_e);
    CK(cudaFree(buf));
    CK(cudaFree(sink));
    return 0;
}
