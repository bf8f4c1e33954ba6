// tc_gemv_lab: a kernel lab for batch invariance on CUDA (not part of the library or the tests).
//
// Batch invariance on CUDA needs one summation order per output for every number of rows.
// Prefill runs the split-bf16 tensor-core GEMM (src/cuda/matmul.cu, gemm_bf16_tc_kernel):
// each output is one f32 accumulator over k-steps of 16, and per k-step the activation
// planes from the last to the first (mma.sync m16n8k16, activations as the A operand,
// weights as B). Decode needs a kernel with that order which streams the weights at the
// memory bandwidth. This lab tries one: the weights as the A operand (16 weight rows per
// warp), the tokens as B (up to 8), so a token is not padded to 16 rows. It answers:
//
//   1. Does mma.sync give the same bits for an output when the operands' roles swap
//      (D[t][r] of X W^T against D'[r][t] of W X^T)? Random inputs, some with wide exponents.
//   2. Is the lab GEMV bit-equal to the library's tensor-core GEMM (the library at 128
//      tokens, the lab on the first 1 and 8 of them), and how far from a float64 reference?
//      (The library splits the activations in two planes at these shapes, so only the np2
//      variants can be bit-equal; with two planes each product loses up to 2^-16 of x, so
//      expect max |err| / sum |x w| near 1e-5, with three near the f32 rounding, ~1e-7.)
//   3. How fast is it for one token, against the library's one-token GEMV (the region
//      kernel), on the qkv, attention-output and unembedding shapes of gpt-oss-20b?
//
//   tc_gemv_lab [--iters N]
//
// The kernel (tc_gemv): a warp owns 16 weight rows and streams them through a ring of
// STAGES shared-memory stages of 64 columns (cp.async, 16 bytes per lane and request; the
// first STAGES - 1 stages are requested before griddepcontrol.wait: weights are never written
// by a kernel), reads each 16 x 16 tile with ldmatrix (the A fragment), and the token planes
// from shared memory (split once per block after the wait, as gptoss_d_split_bf16 does).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gptoss/kernels.h>

#include "cuda/matmul.cuh" /* gptoss_d_split_bf16, gptoss_d_mma_bf16_16816, gptoss_d_ldmatrix_x4 */

#include "lab_check.h"

namespace {

// ------------------------------------------------------------------ 1. the operand roles
__device__ __forceinline__ uint32_t pk(const uint16_t* p, int i0) { return (uint32_t) p[i0] | ((uint32_t) p[i0 + 1] << 16); }

// One warp per trial: X [16 tokens][16 KS], W [16 rows][16 KS] (bf16), Cinit [16][16] (t, r).
// Normal: A = X (tokens as M), B = W (rows as N): D[t][r]. Swapped: A = W, B = X: D'[r][t],
// stored transposed. Fragment layouts of m16n8k16 (PTX ISA): A a0..a3 = (row g, k 2tg..+1),
// (g + 8, same), (g, k 2tg + 8..), (g + 8, same); B b0, b1 = (k 2tg..+1, col g), (k 2tg + 8..,
// col g); C c0..c3 = (g, 2tg), (g, 2tg + 1), (g + 8, 2tg), (g + 8, 2tg + 1).
template <int KS>
__global__ void mma_roles_kernel(const uint16_t* X, const uint16_t* W, const float* Cinit, float* Dn, float* Ds,
                                 int trials) {
    const int lane = threadIdx.x, g = lane >> 2, tg = lane & 3, K = KS * 16;
    for (int tr = blockIdx.x; tr < trials; tr += gridDim.x) {
        const uint16_t* x = X + (size_t) tr * 16 * K;
        const uint16_t* w = W + (size_t) tr * 16 * K;
        const float* ci = Cinit + (size_t) tr * 256;
        float* dn = Dn + (size_t) tr * 256;
        float* ds = Ds + (size_t) tr * 256;
        for (int half = 0; half < 2; half++) {
            const int c0 = 8 * half + 2 * tg; /* columns of this lane's c0, c1 */
            float cn[4] = {ci[g * 16 + c0], ci[g * 16 + c0 + 1], ci[(g + 8) * 16 + c0], ci[(g + 8) * 16 + c0 + 1]};
            float cs[4] = {ci[c0 * 16 + g], ci[(c0 + 1) * 16 + g], ci[c0 * 16 + g + 8], ci[(c0 + 1) * 16 + g + 8]};
            for (int ks = 0; ks < KS; ks++) {
                const int k0 = ks * 16 + 2 * tg, n = 8 * half + g;
                const uint32_t ax[4] = {pk(x, g * K + k0), pk(x, (g + 8) * K + k0), pk(x, g * K + k0 + 8),
                                        pk(x, (g + 8) * K + k0 + 8)};
                const uint32_t aw[4] = {pk(w, g * K + k0), pk(w, (g + 8) * K + k0), pk(w, g * K + k0 + 8),
                                        pk(w, (g + 8) * K + k0 + 8)};
                gptoss_d_mma_bf16_16816(cn, ax, pk(w, n * K + k0), pk(w, n * K + k0 + 8));
                gptoss_d_mma_bf16_16816(cs, aw, pk(x, n * K + k0), pk(x, n * K + k0 + 8));
            }
            dn[g * 16 + c0] = cn[0], dn[g * 16 + c0 + 1] = cn[1];
            dn[(g + 8) * 16 + c0] = cn[2], dn[(g + 8) * 16 + c0 + 1] = cn[3];
            ds[c0 * 16 + g] = cs[0], ds[(c0 + 1) * 16 + g] = cs[1];
            ds[c0 * 16 + g + 8] = cs[2], ds[(c0 + 1) * 16 + g + 8] = cs[3];
        }
    }
}

uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t) (u >> 16); /* truncation: any bf16 will do */
}

template <int KS>
bool mma_roles(int mode) {
    const int trials = 20000, K = KS * 16;
    std::mt19937_64 r(1234 + 7 * mode + KS);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::uniform_int_distribution<int> ex(-40, 40);
    auto val = [&]() {
        const float v = u(r);
        return mode == 0 ? v : ldexpf(v, mode == 1 ? ex(r) : ex(r) / 4);
    };
    std::vector<uint16_t> X((size_t) trials * 16 * K), W(X.size());
    std::vector<float> C((size_t) trials * 256), Dn(C.size()), Ds(C.size());
    for (auto& v : X) v = to_bf16(val());
    for (auto& v : W) v = to_bf16(val());
    for (auto& v : C) v = mode == 0 ? 0.0f : val();
    uint16_t *dX, *dW;
    float *dC, *dn, *ds;
    CK(cudaMalloc(&dX, X.size() * 2));
    CK(cudaMalloc(&dW, W.size() * 2));
    CK(cudaMalloc(&dC, C.size() * 4));
    CK(cudaMalloc(&dn, C.size() * 4));
    CK(cudaMalloc(&ds, C.size() * 4));
    CK(cudaMemcpy(dX, X.data(), X.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dW, W.data(), W.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dC, C.data(), C.size() * 4, cudaMemcpyHostToDevice));
    mma_roles_kernel<KS><<<264, 32>>>(dX, dW, dC, dn, ds, trials);
    CK(cudaGetLastError());
    CK(cudaMemcpy(Dn.data(), dn, C.size() * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(Ds.data(), ds, C.size() * 4, cudaMemcpyDeviceToHost));
    size_t diff = 0;
    for (size_t i = 0; i < C.size(); i++) diff += memcmp(&Dn[i], &Ds[i], 4) != 0;
    printf("mma roles, %d k-steps, %s: %zu of %zu outputs differ\n", KS,
           mode == 0 ? "U(-1,1), C = 0" : mode == 1 ? "exponents -40..40, random C" : "exponents -10..10, random C",
           diff, C.size());
    CK(cudaFree(dX));
    CK(cudaFree(dW));
    CK(cudaFree(dC));
    CK(cudaFree(dn));
    CK(cudaFree(ds));
    return diff == 0;
}

// ------------------------------------------------------------------ 2. the GEMV
constexpr int kStageCols = 64;                /* columns per ring stage (4 k-steps) */
constexpr int kStageLd = kStageCols + 8;      /* bf16 per staged row: 144 bytes, ldmatrix without conflicts */
constexpr int kMaxTokens = 8;

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
    const uint32_t s = (uint32_t) __cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(s), "l"(gmem) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory"); }

size_t tc_gemv_smem(int np, int warps, int stages, uint32_t T, uint32_t C) {
    return (size_t) np * T * (C + 8) * 2 + (size_t) warps * stages * 16 * kStageLd * 2;
}

/* out[t][r] = x[t] . w[r] + bias[r] for t < T <= 8; C % 64 == 0, w and x 16-byte aligned. */
template <int NP, int WARPS, int STAGES>
__global__ void __launch_bounds__(WARPS * 32) tc_gemv(const float* __restrict__ x, const uint16_t* __restrict__ w,
                                                      const uint16_t* __restrict__ bias, float* __restrict__ out,
                                                      uint32_t T, uint32_t C, uint32_t R) {
    extern __shared__ __align__(16) uint16_t smem[];
    const uint32_t ld = C + 8;                   /* bf16 per staged token row */
    uint16_t* xs = smem;                         /* [NP][T][ld] */
    uint16_t* ring = smem + (size_t) NP * T * ld; /* [WARPS][STAGES][16][kStageLd] */
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    const uint32_t lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    const uint32_t g = lane >> 2, tg = lane & 3u;
    const uint32_t row0 = (blockIdx.x * WARPS + warp) * 16;
    uint16_t* wring = ring + (size_t) warp * STAGES * 16 * kStageLd;
    const uint32_t nst = C / kStageCols;
    /* stage s of this warp: rows row0 .. row0 + 15 (clamped), columns 64 s .. 64 s + 63;
     * chunk c = lane + 32 i: row c / 8, 16 bytes c % 8 */
    auto issue = [&](uint32_t s) {
        if (s < nst) {
            uint16_t* dst = wring + (size_t) (s % STAGES) * 16 * kStageLd;
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const uint32_t c = lane + 32u * i, r = c >> 3, q = c & 7u;
                const uint32_t rr = min(row0 + r, R - 1);
                cp_async16(dst + r * kStageLd + q * 8, w + (size_t) rr * C + (size_t) s * kStageCols + q * 8);
            }
        }
        cp_async_commit(); /* an empty group past the end keeps the counting uniform */
    };
    const bool active = row0 < R;
    if (active) {
#pragma unroll
        for (int s = 0; s < STAGES - 1; s++) issue((uint32_t) s);
    }
    asm volatile("griddepcontrol.wait;" ::: "memory");
    /* the token planes, split as the library's GEMM splits them */
    const uint32_t n4 = T * C / 4; /* float4s (C % 4 == 0) */
#pragma unroll 4
    for (uint32_t i = threadIdx.x; i < n4; i += WARPS * 32) {
        const float4 v = __ldg((const float4*) x + i);
        const uint32_t t = 4 * i / C, k = 4 * i % C;
        uint32_t parts[4][NP];
        gptoss_d_split_bf16<NP>(v.x, parts[0]);
        gptoss_d_split_bf16<NP>(v.y, parts[1]);
        gptoss_d_split_bf16<NP>(v.z, parts[2]);
        gptoss_d_split_bf16<NP>(v.w, parts[3]);
#pragma unroll
        for (int p = 0; p < NP; p++) {
            *(uint2*) (xs + ((size_t) p * T + t) * ld + k) =
                make_uint2(parts[0][p] | (parts[1][p] << 16), parts[2][p] | (parts[3][p] << 16));
        }
    }
    __syncthreads();
    if (!active) return;

    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    const bool has_token = g < T;
    for (uint32_t s = 0; s < nst; s++) {
        issue(s + STAGES - 1);
        cp_async_wait<STAGES - 1>();
        __syncwarp();
        const uint16_t* st = wring + (size_t) (s % STAGES) * 16 * kStageLd;
#pragma unroll
        for (int kk = 0; kk < kStageCols; kk += 16) {
            uint32_t a[4];
            gptoss_d_ldmatrix_x4(a, st + (lane & 15u) * kStageLd + kk + (lane >> 4) * 8);
            const uint32_t k = s * kStageCols + kk + 2 * tg;
            uint32_t b[NP][2];
#pragma unroll
            for (int p = 0; p < NP; p++) {
                const uint16_t* xr = xs + ((size_t) p * T + (has_token ? g : 0)) * ld + k;
                b[p][0] = has_token ? *(const uint32_t*) xr : 0u;
                b[p][1] = has_token ? *(const uint32_t*) (xr + 8) : 0u;
            }
#pragma unroll
            for (int p = NP - 1; p >= 0; p--) gptoss_d_mma_bf16_16816(acc, a, b[p][0], b[p][1]);
        }
        __syncwarp(); /* every lane is done with this stage before it is refilled */
    }
    /* acc: (row g, tokens 2tg, 2tg + 1), (row g + 8, the same) */
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const uint32_t r = row0 + g + 8 * h;
#pragma unroll
        for (int j = 0; j < 2; j++) {
            const uint32_t t = 2 * tg + j;
            if (r < R && t < T) {
                const float v = acc[2 * h + j];
                out[(size_t) t * R + r] = bias != nullptr ? v + gptoss_bf16_to_f32(bias[r]) : v;
            }
        }
    }
}

// ------------------------------------------------------------------ host
cudaStream_t g_stream;

template <int NP, int WARPS, int STAGES>
void run_tc_gemv(const float* x, const uint16_t* w, const uint16_t* b, float* out, uint32_t T, uint32_t C,
                 uint32_t R) {
    const size_t smem = tc_gemv_smem(NP, WARPS, STAGES, T, C);
    CK(cudaFuncSetAttribute(tc_gemv<NP, WARPS, STAGES>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int) smem));
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t c = {};
    c.gridDim = dim3((R + 16 * WARPS - 1) / (16 * WARPS));
    c.blockDim = dim3(WARPS * 32);
    c.dynamicSmemBytes = smem;
    c.stream = g_stream;
    c.attrs = at;
    c.numAttrs = 1;
    CK(cudaLaunchKernelEx(&c, tc_gemv<NP, WARPS, STAGES>, x, w, b, out, T, C, R));
}

struct Variant {
    const char* name;
    int np;
    void (*run)(const float*, const uint16_t*, const uint16_t*, float*, uint32_t, uint32_t, uint32_t);
};
const Variant kVariants[] = {
    {"tc_gemv np2 1 warp 8 stages", 2, run_tc_gemv<2, 1, 8>},
    {"tc_gemv np2 1 warp 16 stages", 2, run_tc_gemv<2, 1, 16>},
    {"tc_gemv np2 2 warps 8 stages", 2, run_tc_gemv<2, 2, 8>},
    {"tc_gemv np2 4 warps 6 stages", 2, run_tc_gemv<2, 4, 6>},
    {"tc_gemv np3 1 warp 8 stages", 3, run_tc_gemv<3, 1, 8>},
};

float bf16_to_f32_host(uint16_t b) {
    const uint32_t u = (uint32_t) b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

}  // namespace

int main(int argc, char** argv) {
    int iters = 20;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--iters N]\n", argv[0]);
            return 2;
        }
    }
    cudaDeviceProp pr;
    CK(cudaGetDeviceProperties(&pr, 0));
    printf("tc_gemv_lab: %s, %d SMs\n", pr.name, pr.multiProcessorCount);

    // 1. operand roles
    bool roles = true;
    for (int m = 0; m < 3; m++) roles = mma_roles<1>(m) && roles, roles = mma_roles<4>(m) && roles;
    printf("mma roles: %s\n", roles ? "the same bits either way" : "DIFFERENT bits: the swapped GEMV cannot equal the GEMM");

    CK(cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking));
    gptoss_backend_t be;
    GK(gptoss_backend_create_cuda(0, g_stream, &be));
    struct Shape {
        const char* name;
        uint32_t C, R;
    };
    const Shape shapes[] = {{"qkv 2880 -> 5120", 2880, 5120}, {"attn-out 4096 -> 2880", 4096, 2880},
                            {"unembedding 2880 -> 201088", 2880, 201088}};
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    uint64_t seed = 1;
    for (const Shape& sh : shapes) {
        const uint32_t C = sh.C, R = sh.R, TB = 128; /* the library's GEMM batch */
        uint16_t *w, *b;
        float *x, *out_lib, *out_lab;
        GK(gptoss_backend_alloc(be, (size_t) R * C * 2, (void**) &w));
        GK(gptoss_backend_alloc(be, (size_t) R * 2, (void**) &b));
        GK(gptoss_backend_alloc(be, (size_t) TB * C * 4, (void**) &x));
        GK(gptoss_backend_alloc(be, (size_t) TB * R * 4, (void**) &out_lib));
        GK(gptoss_backend_alloc(be, (size_t) kMaxTokens * R * 4, (void**) &out_lab));
        GK(gptoss_bf16_fill_random(be, (gptoss_bf16*) w, (size_t) R * C, seed++, 0, -1.0f / sqrtf((float) C),
                                   1.0f / sqrtf((float) C)));
        GK(gptoss_bf16_fill_random(be, (gptoss_bf16*) b, R, seed++, 0, -0.05f, 0.05f));
        GK(gptoss_f32_fill_random(be, x, (size_t) TB * C, seed++, 0, -1.0f, 1.0f));
        GK(gptoss_f32_bf16w_matmul(be, x, (const gptoss_bf16*) w, (const gptoss_bf16*) b, out_lib, TB, C, R));
        GK(gptoss_backend_synchronize(be));
        const uint32_t RC = std::min<uint32_t>(R, 8192); /* rows checked against float64 */
        std::vector<uint16_t> hw((size_t) RC * C), hb(RC);
        std::vector<float> hx((size_t) kMaxTokens * C), hlib((size_t) kMaxTokens * R), hlab(hlib.size());
        CK(cudaMemcpy(hw.data(), w, hw.size() * 2, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(hb.data(), b, hb.size() * 2, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(hx.data(), x, hx.size() * 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(hlib.data(), out_lib, hlib.size() * 4, cudaMemcpyDeviceToHost));
        printf("\n%s (%.1f MB of weights)\n", sh.name, (double) R * C * 2 / 1e6);
        for (const Variant& v : kVariants) {
            for (uint32_t T : {1u, 8u}) {
                CK(cudaMemset(out_lab, 0xFF, (size_t) kMaxTokens * R * 4)); /* NaN: unwritten outputs fail */
                v.run(x, w, b, out_lab, T, C, R);
                CK(cudaStreamSynchronize(g_stream));
                CK(cudaMemcpy(hlab.data(), out_lab, (size_t) T * R * 4, cudaMemcpyDeviceToHost));
                size_t diff = 0;
                for (size_t i = 0; i < (size_t) T * R; i++) diff += memcmp(&hlab[i], &hlib[i], 4) != 0;
                /* float64: |err| / sum |x w| over the checked rows */
                double worst = 0;
                for (uint32_t t = 0; t < T; t++) {
                    for (uint32_t r = 0; r < RC; r++) {
                        double s = bf16_to_f32_host(hb[r]), a = 0;
                        for (uint32_t k = 0; k < C; k++) {
                            const double p = (double) hx[(size_t) t * C + k] * bf16_to_f32_host(hw[(size_t) r * C + k]);
                            s += p;
                            a += fabs(p);
                        }
                        const double e = fabs((double) hlab[(size_t) t * R + r] - s) / (a > 0 ? a : 1);
                        worst = std::isnan(e) ? INFINITY : std::max(worst, e);
                    }
                }
                printf("  %-30s T=%u: %s (%zu of %zu outputs differ from the library GEMM); max |err| / sum |x w| "
                       "%.2e (%u rows)\n",
                       v.name, T, diff == 0 ? "bit-equal" : "NOT bit-equal", diff, (size_t) T * R, worst, RC);
            }
        }
        // 3. one token: 24 calls back to back (PDL), best of `iters` rounds
        auto time_it = [&](const char* name, auto&& call) {
            float best = 1e30f;
            for (int it = 0; it < iters; it++) {
                CK(cudaEventRecord(e0, g_stream));
                for (int c = 0; c < 24; c++) call();
                CK(cudaEventRecord(e1, g_stream));
                CK(cudaEventSynchronize(e1));
                float ms;
                CK(cudaEventElapsedTime(&ms, e0, e1));
                best = std::min(best, ms);
            }
            const double us = best * 1e3 / 24;
            printf("  %-30s T=1: %8.2f us per call, %7.0f GB/s of weights\n", name, us,
                   (double) R * C * 2 / (us * 1e-6) / 1e9);
        };
        time_it("library (one-token GEMV)", [&] {
            GK(gptoss_f32_bf16w_matmul(be, x, (const gptoss_bf16*) w, (const gptoss_bf16*) b, out_lab, 1, C, R));
        });
        for (const Variant& v : kVariants) time_it(v.name, [&] { v.run(x, w, b, out_lab, 1, C, R); });
        GK(gptoss_backend_free(be, w));
        GK(gptoss_backend_free(be, b));
        GK(gptoss_backend_free(be, x));
        GK(gptoss_backend_free(be, out_lib));
        GK(gptoss_backend_free(be, out_lab));
    }
    gptoss_backend_release(be);
    return 0;
}
