/* Standalone CUDA benchmark of the decode-critical kernels (public API only, CUDA events
 * for timing). Built and run by tools/gpu-check.sh; not part of the library build.
 * Weights are rotated across enough copies to exceed the L2 cache, inputs are random. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>
#include <gptoss/kernels.h>

#define CHECK(x)                                                                                  \
    do {                                                                                          \
        enum gptoss_status s_ = (x);                                                              \
        if (s_ != gptoss_status_success) {                                                        \
            fprintf(stderr, "%s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #x,                    \
                    gptoss_status_to_string(s_), gptoss_last_error());                            \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

static gptoss_backend_t B;
static cudaEvent_t ev0, ev1;
static double copy_bw = 0.0;

static void* alloc(size_t n) {
    void* p = NULL;
    CHECK(gptoss_backend_alloc(B, n, &p));
    return p;
}
static float* frand(size_t n, uint64_t seed) {
    float* p = alloc(n * 4);
    CHECK(gptoss_f32_fill_random(B, p, n, seed, 0, -1.0f, 1.0f));
    return p;
}
static gptoss_bf16* brand(size_t n, uint64_t seed) {
    gptoss_bf16* p = alloc(n * 2);
    CHECK(gptoss_bf16_fill_random(B, p, n, seed, 0, -1.0f, 1.0f));
    return p;
}
static uint8_t* urand(size_t bytes, uint64_t seed) {
    uint8_t* p = alloc((bytes + 3) / 4 * 4);
    CHECK(gptoss_u32_fill_random(B, (uint32_t*) p, (bytes + 3) / 4, seed, 0));
    return p;
}

typedef void (*bench_fn)(void* ctx, int iter);

/* median of 5 runs of `iters` calls, in ms per call */
static double time_it(bench_fn fn, void* ctx, int iters) {
    for (int i = 0; i < 3; i++) fn(ctx, i);
    CHECK(gptoss_backend_synchronize(B));
    double best[5];
    for (int r = 0; r < 5; r++) {
        cudaEventRecord(ev0, 0);
        for (int i = 0; i < iters; i++) fn(ctx, i);
        cudaEventRecord(ev1, 0);
        CHECK(gptoss_backend_synchronize(B));
        float ms = 0;
        cudaEventElapsedTime(&ms, ev0, ev1);
        best[r] = ms / iters;
    }
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            if (best[j] < best[i]) { double t = best[i]; best[i] = best[j]; best[j] = t; }
    return best[2];
}

static void report(const char* name, double ms, double bytes, double flops) {
    const double gbs = bytes / (ms * 1e-3) / 1e9;
    if (flops > 0) {
        printf("%-44s %9.1f us %8.1f GB/s %6.1f%% %8.2f TFLOP/s\n", name, ms * 1e3, gbs, copy_bw > 0 ? 100 * gbs / copy_bw : 0,
               flops / (ms * 1e-3) / 1e12);
    } else {
        printf("%-44s %9.1f us %8.1f GB/s %6.1f%%\n", name, ms * 1e3, gbs, copy_bw > 0 ? 100 * gbs / copy_bw : 0);
    }
    fflush(stdout);
}

/* ---- copy ---- */
struct copy_ctx { void* a; void* b; size_t n; };
static void copy_fn(void* c, int i) {
    struct copy_ctx* x = c;
    CHECK(gptoss_backend_copy(B, (i & 1) ? x->a : x->b, (i & 1) ? x->b : x->a, x->n, gptoss_copy_backend_to_backend));
}

/* ---- bf16 matmul ---- */
struct mm_ctx { float* x; gptoss_bf16* w[16]; int nw; float* y; uint32_t T, C, R; int kind; uint32_t* am; };
static void mm_fn(void* c, int i) {
    struct mm_ctx* m = c;
    gptoss_bf16* w = m->w[i % m->nw];
    if (m->kind == 0) CHECK(gptoss_f32_bf16w_matmul(B, m->x, w, w, m->y, m->T, m->C, m->R));
    else if (m->kind == 1) CHECK(gptoss_f32_bf16w_matmul_add(B, m->x, w, w, m->y, m->T, m->C, m->R));
    else CHECK(gptoss_f32_bf16w_unembedding(B, m->x, w, m->y, m->am, m->T, m->C, m->R));
}
static void bench_mm(const char* name, uint32_t T, uint32_t C, uint32_t R, int kind) {
    struct mm_ctx m = {0};
    m.T = T; m.C = C; m.R = R; m.kind = kind;
    const size_t wbytes = (size_t) R * C * 2;
    m.nw = (int) ((400u << 20) / wbytes) + 1;
    if (m.nw > 16) m.nw = 16;
    for (int i = 0; i < m.nw; i++) m.w[i] = brand((size_t) R * C, 100 + i);
    m.x = frand((size_t) T * C, 7);
    m.y = frand((size_t) T * R, 8);
    m.am = alloc(4 * T);
    const double ms = time_it(mm_fn, &m, 20);
    report(name, ms, (double) wbytes + 4.0 * T * C + 4.0 * T * R * (kind == 1 ? 2 : 1), 2.0 * T * C * R);
    for (int i = 0; i < m.nw; i++) gptoss_backend_free(B, m.w[i]);
    gptoss_backend_free(B, m.x); gptoss_backend_free(B, m.y); gptoss_backend_free(B, m.am);
}

/* ---- MoE ---- */
struct moe_ctx { float* x; uint32_t* ids[8]; uint8_t* w; size_t stride, blocks_bytes, scales_bytes; float* y; uint32_t T, k, E, C, R; int swiglu; uint32_t* offsets; };
static void moe_fn(void* c, int i) {
    struct moe_ctx* m = c;
    const uint8_t* blocks = m->w;
    const uint8_t* scales = m->w + m->blocks_bytes;
    const gptoss_bf16* bias = (const gptoss_bf16*) (m->w + m->blocks_bytes + m->scales_bytes);
    if (m->swiglu) CHECK(gptoss_f32_mf4w_moe_matmul_swiglu(B, m->x, m->ids[i % 8], blocks, scales, bias, m->stride, m->y, m->T, m->k, m->E, m->C, m->R, 7.0f));
    else CHECK(gptoss_f32_mf4w_moe_matmul(B, m->x, m->ids[i % 8], blocks, scales, bias, m->stride, m->y, m->T, m->k, m->E, m->C, m->R));
}
static void moe_dense_fn(void* c, int i) {
    struct moe_ctx* m = c;
    const uint8_t* blocks = m->w;
    const uint8_t* scales = m->w + m->blocks_bytes;
    const gptoss_bf16* bias = (const gptoss_bf16*) (m->w + m->blocks_bytes + m->scales_bytes);
    if (m->swiglu) CHECK(gptoss_f32_mf4w_moe_dense_matmul_swiglu(B, m->offsets, m->x, blocks, scales, bias, m->stride, m->y, m->T, m->k, m->E, m->C, m->R, 7.0f));
    else CHECK(gptoss_f32_mf4w_moe_dense_matmul(B, m->offsets, m->x, blocks, scales, bias, m->stride, m->y, m->T, m->k, m->E, m->C, m->R));
}
static void setup_moe(struct moe_ctx* m, uint32_t T, uint32_t k, uint32_t E, uint32_t C, uint32_t R, int swiglu) {
    memset(m, 0, sizeof *m);
    m->T = T; m->k = k; m->E = E; m->C = C; m->R = R; m->swiglu = swiglu;
    const uint32_t wrows = swiglu ? 2 * R : R;
    m->blocks_bytes = (size_t) wrows * C / 2;
    m->scales_bytes = (size_t) wrows * C / 32;
    m->stride = (m->blocks_bytes + m->scales_bytes + (size_t) wrows * 2 + 255) / 256 * 256;
    m->w = urand(m->stride * E, 55);
    /* sane scales: stored 141 +- 3 for every expert (overwrite the scale bytes) */
    uint8_t* sc = malloc(m->scales_bytes);
    for (size_t i = 0; i < m->scales_bytes; i++) sc[i] = (uint8_t) (138 + (i * 2654435761u >> 7) % 7);
    for (uint32_t e = 0; e < E; e++) CHECK(gptoss_backend_copy(B, m->w + e * m->stride + m->blocks_bytes, sc, m->scales_bytes, gptoss_copy_host_to_backend));
    free(sc);
    m->x = frand((size_t) T * k * C, 9);
    m->y = frand((size_t) T * k * (swiglu ? R : R), 10);
    uint32_t* ids = malloc(4 * T * k);
    for (int s = 0; s < 8; s++) {
        for (uint32_t t = 0; t < T; t++)
            for (uint32_t j = 0; j < k; j++) ids[t * k + j] = (s * 4 + t * 7 + j * 5) % E; /* distinct per token for k<=E/5 */
        m->ids[s] = alloc(4 * T * k);
        CHECK(gptoss_backend_copy(B, m->ids[s], ids, 4 * T * k, gptoss_copy_host_to_backend));
    }
    free(ids);
    uint32_t* off = malloc(4 * (E + 1));
    for (uint32_t e = 0; e <= E; e++) off[e] = (uint32_t) ((uint64_t) T * k * e / E);
    m->offsets = alloc(4 * (E + 1));
    CHECK(gptoss_backend_copy(B, m->offsets, off, 4 * (E + 1), gptoss_copy_host_to_backend));
    free(off);
}
static void free_moe(struct moe_ctx* m) {
    gptoss_backend_free(B, m->w); gptoss_backend_free(B, m->x); gptoss_backend_free(B, m->y); gptoss_backend_free(B, m->offsets);
    for (int s = 0; s < 8; s++) gptoss_backend_free(B, m->ids[s]);
}
static void bench_moe(const char* name, uint32_t T, uint32_t C, uint32_t R, int swiglu) {
    struct moe_ctx m;
    setup_moe(&m, T, 4, 32, C, R, swiglu);
    const uint32_t wrows = swiglu ? 2 * R : R;
    const double per_expert = (double) wrows * (C / 2 + C / 32 + 2);
    const double ms = time_it(moe_fn, &m, 20);
    report(name, ms, per_expert * 4 * T, 2.0 * T * 4 * C * wrows);
    free_moe(&m);
}
static void bench_moe_dense(const char* name, uint32_t T, uint32_t C, uint32_t R, int swiglu) {
    struct moe_ctx m;
    setup_moe(&m, T, 4, 32, C, R, swiglu);
    const uint32_t wrows = swiglu ? 2 * R : R;
    const double ms = time_it(moe_dense_fn, &m, 3);
    report(name, ms, (double) wrows * (C / 2 + C / 32 + 2) * 32, 2.0 * T * 4 * C * wrows);
    free_moe(&m);
}

/* ---- SDPA ---- */
struct sdpa_ctx { float* q; float* kv[8]; int nkv; gptoss_bf16* sinks; float* out; uint32_t Tq, N, window; uint64_t stride; };
static void sdpa_fn(void* c, int i) {
    struct sdpa_ctx* s = c;
    CHECK(gptoss_f32_sdpa(B, s->q, s->kv[i % s->nkv], s->sinks, s->out, s->window, s->stride, s->Tq, s->N, 64, 8, 64, 0.125f));
}
static void bench_sdpa(const char* name, uint32_t Tq, uint32_t N, uint32_t window) {
    struct sdpa_ctx s = {0};
    s.Tq = Tq; s.N = N; s.window = window;
    const uint32_t maxt = N + Tq;
    s.stride = (uint64_t) 2 * maxt * 64;
    const size_t kv_floats = (size_t) 8 * s.stride;
    s.nkv = (int) ((400u << 20) / (kv_floats * 4)) + 1;
    if (s.nkv > 8) s.nkv = 8;
    for (int i = 0; i < s.nkv; i++) s.kv[i] = frand(kv_floats, 200 + i);
    s.q = frand((size_t) Tq * 64 * 80, 3);
    s.sinks = brand(64, 4);
    s.out = frand((size_t) Tq * 4096, 5);
    const double ms = time_it(sdpa_fn, &s, 20);
    const uint64_t keys = window < N + 1 ? window : N + 1;
    report(name, ms, (double) keys * 8 * 2 * 64 * 4, 0);
    for (int i = 0; i < s.nkv; i++) gptoss_backend_free(B, s.kv[i]);
    gptoss_backend_free(B, s.q); gptoss_backend_free(B, s.sinks); gptoss_backend_free(B, s.out);
}

int main(int argc, char** argv) {
    CHECK(gptoss_backend_create_cuda(0, NULL, &B));
    printf("backend: %s\n", gptoss_backend_get_name(B));
    cudaEventCreate(&ev0);
    cudaEventCreate(&ev1);
    {
        struct copy_ctx c;
        c.n = (size_t) 1 << 30;
        c.a = alloc(c.n);
        c.b = alloc(c.n);
        CHECK(gptoss_u32_fill_random(B, c.a, c.n / 4, 1, 0));
        const double ms = time_it(copy_fn, &c, 10);
        copy_bw = 2.0 * c.n / (ms * 1e-3) / 1e9;
        printf("%-44s %9.1f us %8.1f GB/s (read + write)\n", "device copy 1 GiB", ms * 1e3, copy_bw);
        gptoss_backend_free(B, c.a);
        gptoss_backend_free(B, c.b);
    }
    printf("%-44s %12s %13s %7s\n", "kernel", "time", "bandwidth", "%copy");
    bench_mm("matmul T=1 2880->5120 (qkv decode)", 1, 2880, 5120, 0);
    bench_mm("matmul_add T=1 4096->2880 (attn out)", 1, 4096, 2880, 1);
    bench_mm("matmul T=1 2880->32 (router)", 1, 2880, 32, 0);
    bench_mm("matmul T=4 2880->5120", 4, 2880, 5120, 0);
    bench_mm("matmul T=8 2880->5120", 8, 2880, 5120, 0);
    bench_mm("unembedding T=1 2880->201088", 1, 2880, 201088, 2);
    bench_moe("moe_matmul_swiglu T=1 k=4 2880->2x2880", 1, 2880, 2880, 1);
    bench_moe("moe_matmul T=1 k=4 2880->2880", 1, 2880, 2880, 0);
    bench_moe("moe_matmul_swiglu T=4 k=4 2880->2x2880", 4, 2880, 2880, 1);
    bench_sdpa("sdpa decode N=4096 full", 1, 4096, UINT32_MAX);
    bench_sdpa("sdpa decode N=32768 full", 1, 32768, UINT32_MAX);
    bench_sdpa("sdpa decode N=32768 window 128", 1, 32768, 128);
    printf("-- prefill (compute-bound: TFLOP/s) --\n");
    bench_mm("dense matmul T=1024 2880->5120", 1024, 2880, 5120, 0);
    bench_mm("dense matmul_add T=512 4096->2880", 512, 4096, 2880, 1);
    bench_mm("matmul T=64 2880->5120", 64, 2880, 5120, 0);
    bench_mm("matmul T=128 2880->5120", 128, 2880, 5120, 0);
    bench_mm("unembedding T=32 2880->201088", 32, 2880, 201088, 2);
    bench_moe_dense("moe_dense_swiglu T=512 k=4 E=32", 512, 2880, 2880, 1);
    bench_sdpa("sdpa prefill Tq=512 N=0 full", 512, 0, UINT32_MAX);
    CHECK(gptoss_backend_release(B));
    return 0;
}
