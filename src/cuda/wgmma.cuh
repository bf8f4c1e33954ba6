/* Hopper warpgroup MMA (wgmma) for the split-bf16 prefill GEMMs: the instruction wrappers,
 * shared-memory descriptors and the kernels, first written and measured in bench/lab/
 * wgmma_lab.cu (docs/CUDA_NOTES.md, tenth and eleventh sittings):
 *   gptoss_wg::gemm_kernel<BN, ST, WG, H>     out = x W^T + b over split activation planes
 *   gptoss_wg::moe_kernel<SWIGLU, BN, ST, H>  the MXFP4 MoE GEMM over expert-grouped rows
 *   gptoss_wg::moe_rega_kernel<SWIGLU, TN, ST, MS, MODE>  the same with the weights as M,
 *                                              dequantised in registers as the MMA's A
 * The library launches gemm_kernel and moe_kernel with H = 1 and moe_rega_kernel with MS = 2,
 * MODE = 0 (matmul.cu, moe.cu); all gave
 * the bits of the library's mma.sync GEMMs on an H100 (the same products per k-step of 16,
 * planes from the last). In the labs only: H = 2 (each warpgroup's columns as two slices on
 * their own accumulators; the same bits, no faster: docs/CUDA_NOTES.md). The forms measured
 * no faster are in bench/lab: warp-specialised (wgmma_ws.cuh), the MoE with the operands'
 * roles swapped and the MoE with switches (moe_lab.cuh). wgmma exists on sm_90a only: compiled for another
 * target the kernels trap, so a caller launches them only where the sm_90a code runs (the
 * labs are built for sm_90a alone). */
#ifndef GPTOSS_CUDA_WGMMA_CUH
#define GPTOSS_CUDA_WGMMA_CUH

#include "cuda/matmul.cuh" /* gptoss_d_cp_async16_zfill, gptoss_d_store_result */
#include "cuda/moe_tc.cuh"  /* moe_tc_mult, moe_tc_dequant2, kMoeTcPrescale, moe_row_tile */

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define GPTOSS_WGMMA_ASM(...) asm volatile(__VA_ARGS__)
#else
#define GPTOSS_WGMMA_ASM(...) __trap()
#endif

namespace gptoss_wg {

constexpr int NP = 2;   /* activation planes (the library's at K >= 256) */
constexpr int BK = 64;  /* columns a stage: one 128-byte swizzle row of bf16 */
constexpr int BM = 128; /* token rows a block of the dense kernel (its default: two warpgroups of 64) */

/* wgmma.mma_async m64nNk16, f32 += bf16 x bf16, both operands K-major in shared memory
 * (descriptors), D in registers (N / 2 a thread). Generated for the N the variants use. */
template <int N>
struct Wgmma;
template <>
struct Wgmma<16> {
    static __device__ __forceinline__ void mma(float* d, uint64_t a, uint64_t b) {
        GPTOSS_WGMMA_ASM(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p, 1, 1, 0, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
            : "l"(a), "l"(b), "r"(1));
    }
};
template <>
struct Wgmma<32> {
    static __device__ __forceinline__ void mma(float* d, uint64_t a, uint64_t b) {
        GPTOSS_WGMMA_ASM(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, %16, %17, p, 1, 1, 0, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
            : "l"(a), "l"(b), "r"(1));
    }
};
template <>
struct Wgmma<48> {
    static __device__ __forceinline__ void mma(float* d, uint64_t a, uint64_t b) {
        GPTOSS_WGMMA_ASM(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %26, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n48k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23}, %24, %25, p, 1, 1, 0, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23])
            : "l"(a), "l"(b), "r"(1));
    }
};
template <>
struct Wgmma<64> {
    static __device__ __forceinline__ void mma(float* d, uint64_t a, uint64_t b) {
        GPTOSS_WGMMA_ASM(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
            : "l"(a), "l"(b), "r"(1));
    }
};
template <>
struct Wgmma<80> {
    static __device__ __forceinline__ void mma(float* d, uint64_t a, uint64_t b) {
        GPTOSS_WGMMA_ASM(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %42, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n80k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39}, %40, %41, p, 1, 1, 0, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39])
            : "l"(a), "l"(b), "r"(1));
    }
};
template <>
struct Wgmma<96> {
    static __device__ __forceinline__ void mma(float* d, uint64_t a, uint64_t b) {
        GPTOSS_WGMMA_ASM(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %50, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n96k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47}, %48, %49, p, 1, 1, 0, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47])
            : "l"(a), "l"(b), "r"(1));
    }
};
template <>
struct Wgmma<128> {
    static __device__ __forceinline__ void mma(float* d, uint64_t a, uint64_t b) {
        GPTOSS_WGMMA_ASM(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1, 0, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
            : "l"(a), "l"(b), "r"(1));
    }
};
template <>
struct Wgmma<160> {
    static __device__ __forceinline__ void mma(float* d, uint64_t a, uint64_t b) {
        GPTOSS_WGMMA_ASM(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %82, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n160k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79}, %80, %81, p, 1, 1, 0, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79])
            : "l"(a), "l"(b), "r"(1));
    }
};
template <>
struct Wgmma<192> {
    static __device__ __forceinline__ void mma(float* d, uint64_t a, uint64_t b) {
        GPTOSS_WGMMA_ASM(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %98, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n192k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95}, %96, %97, p, 1, 1, 0, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
            : "l"(a), "l"(b), "r"(1));
    }
};
template <>
struct Wgmma<256> {
    static __device__ __forceinline__ void mma(float* d, uint64_t a, uint64_t b) {
        GPTOSS_WGMMA_ASM(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, %128, %129, p, 1, 1, 0, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
            : "l"(a), "l"(b), "r"(1));
    }
};

/* A shared-memory matrix descriptor: K-major, 128-byte swizzle, 8-row groups 1024 bytes
 * apart (stride byte offset), leading byte offset unused for this layout (1), base offset
 * 0 (tiles 1024-byte aligned). */
static __device__ __forceinline__ uint64_t desc_sw128(uint32_t saddr) {
    return (uint64_t) ((saddr & 0x3FFFFu) >> 4) | ((uint64_t) 1 << 16) | ((uint64_t) (1024 >> 4) << 32) |
           ((uint64_t) 1 << 62);
}
/* desc_sw128(saddr + off) from desc_sw128(saddr): the start address is the low 14-bit field
 * (bits 4 .. 17 of the address), which cannot carry into the next field since shared
 * memory ends below 256 KB (saddr + off < 2^18); off a multiple of 16. */
static __device__ __forceinline__ uint64_t desc_add(uint64_t desc, uint32_t off) { return desc + (off >> 4); }
static __device__ __forceinline__ void wg_fence() { GPTOSS_WGMMA_ASM("wgmma.fence.sync.aligned;" ::: "memory"); }
static __device__ __forceinline__ void wg_commit() { GPTOSS_WGMMA_ASM("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
static __device__ __forceinline__ void wg_wait() {
    GPTOSS_WGMMA_ASM("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
/* cp.async writes (generic proxy) become visible to wgmma's reads (async proxy) */
static __device__ __forceinline__ void fence_proxy_async() { GPTOSS_WGMMA_ASM("fence.proxy.async.shared::cta;" ::: "memory"); }
/* the accumulators are read only after the wait (the compiler cannot see wgmma's asynchrony) */
template <int R>
static __device__ __forceinline__ void fence_regs(float* d) {
#pragma unroll
    for (int i = 0; i < R; i++) asm volatile("" : "+f"(d[i])::"memory");
}

/* One stage's MMAs of a warpgroup: per k-step of 16 (4 in a 64-column stage), the planes
 * from the last to the first, A (64 rows a plane, plane_bytes apart) and B from shared
 * memory at the descriptors' layout; then the group is committed and all but it drained
 * (the previous stage's MMAs are done after this returns). */
template <int N, int H = 1>
static __device__ __forceinline__ void stage_mma(float* acc, uint32_t a, uint32_t plane_bytes, uint32_t b) {
    /* H > 1: the N columns as H slices of N / H on their own accumulators, issued alternately
     * (consecutive wgmmas independent; each output gets the same products in the same order,
     * and acc keeps gemm_kernel's layout: slice h holds columns h N / H .. at acc + h N / 2H) */
    static_assert(N % (8 * H) == 0, "slices of whole 8-row groups");
    constexpr int NH = N / H;
    wg_fence();
    if constexpr (H == 1) {
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++)
#pragma unroll
            for (int p = NP - 1; p >= 0; p--)
                Wgmma<N>::mma(acc, desc_sw128(a + p * plane_bytes + kk * 32), desc_sw128(b + kk * 32));
    } else {
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++)
#pragma unroll
            for (int p = NP - 1; p >= 0; p--)
#pragma unroll
                for (int h = 0; h < H; h++)
                    Wgmma<NH>::mma(acc + h * (NH / 2), desc_sw128(a + p * plane_bytes + kk * 32),
                                   desc_sw128(b + h * NH * 128 + kk * 32));
    }
    wg_commit();
    wg_wait<1>();
}

/* The dense kernel's block: WG warpgroups (1 or 2), 64 WG token rows x BN weight rows. */
template <int BN, int WG = 2>
__host__ __device__ constexpr uint32_t stage_bytes() {
    return (uint32_t) (NP * 64 * WG + BN) * 128u;
}
template <int BN, int ST, int WG = 2>
constexpr size_t smem_bytes() {
    return (size_t) ST * stage_bytes<BN, WG>() + 1024; /* + the alignment of the ring to 1024 */
}

/* The copies of a dense stage (columns k0 .. k0 + 63): the NP plane tiles of kRows token rows
 * (rows 0 .. NP kRows - 1 of the stage) and BN weight rows (rows NP kRows ..), 16-byte chunks
 * in the 128-byte swizzle, zero past M, N and K; chunk c by thread c % nthreads. */
template <int BN, uint32_t kRows>
static __device__ __forceinline__ void copy_dense_stage(uint8_t* st, const uint16_t* planes, size_t plane_size,
                                                        const uint16_t* W, uint32_t m0, uint32_t n0, uint32_t M,
                                                        uint32_t K, uint32_t N, uint32_t k0, uint32_t tid,
                                                        uint32_t nthreads) {
    for (uint32_t c = tid; c < (uint32_t) (NP * kRows + BN) * 8u; c += nthreads) {
        const uint32_t row = c >> 3, ch = c & 7u, k = k0 + ch * 8u;
        const void* src;
        bool in;
        if (row < (uint32_t) (NP * kRows)) {
            const uint32_t m = m0 + row % kRows;
            in = m < M && k < K;
            src = in ? planes + (size_t) (row / kRows) * plane_size + (size_t) m * K + k : planes;
        } else {
            const uint32_t n = n0 + row - NP * kRows;
            in = n < N && k < K;
            src = in ? W + (size_t) n * K + k : W;
        }
        gptoss_d_cp_async16_zfill(st + (size_t) row * 128u + ((ch ^ (row & 7u)) << 4), src, in ? 16u : 0u);
    }
}

/* The same copies with their stage-invariant parts computed once a block (the form the
 * library's gemm_kernel runs): with kThreads threads a pass covers kThreads / 8 rows of the
 * stage (a thread's row tid / 8 + pass x kThreads / 8, its 16-byte column chunk tid % 8, the
 * same swizzle in every pass), so each pass's plane and row offset are compile-time, its source
 * a fixed offset from the thread's first token or weight row, and a stage adds its 64 columns.
 * copy_dense_stage (above) ran a loop of runtime trip count with 64-bit multiplies per chunk:
 * ~400 of the dense kernel's ~550 instructions a stage at BN = 256 (SASS). */
template <int BN, uint32_t kRows, uint32_t kThreads>
struct DenseCopy {
    static constexpr uint32_t kPassRows = kThreads / 8;
    static constexpr uint32_t kTokPasses = NP * kRows / kPassRows, kWPasses = BN / kPassRows;
    static_assert(kRows % kPassRows == 0 && BN % kPassRows == 0 && kPassRows % 8 == 0, "whole passes");
    const uint16_t* tok; /* the thread's first token row (plane 0) at its column chunk */
    const uint16_t* w;   /* its first weight row */
    const uint16_t* planes;
    size_t plane_size;
    uint32_t K, dst, ch8;
    int mlim, nlim; /* passes whose row offset is below these are in the matrices */

    __device__ __forceinline__ DenseCopy(const uint16_t* planes_, size_t plane_size_, const uint16_t* W, uint32_t m0,
                                         uint32_t n0, uint32_t M, uint32_t K_, uint32_t N, uint32_t tid)
        : planes(planes_), plane_size(plane_size_), K(K_) {
        const uint32_t row = tid >> 3;
        ch8 = (tid & 7u) * 8u;
        dst = row * 128u + (((tid & 7u) ^ (row & 7u)) << 4);
        tok = planes + (size_t) (m0 + row) * K + ch8;
        w = W + (size_t) (n0 + row) * K + ch8;
        mlim = (int) M - (int) (m0 + row);
        nlim = (int) N - (int) (n0 + row);
    }
    /* stage columns k0 .. k0 + 63 into st (rows: the NP planes' kRows, then BN weight rows) */
    __device__ __forceinline__ void issue(uint8_t* st, const uint16_t* W, uint32_t k0) const {
        const bool kin = k0 + ch8 < K;
#pragma unroll
        for (uint32_t i = 0; i < kTokPasses; i++) {
            const uint32_t p = kPassRows * i / kRows, d = kPassRows * i % kRows;
            const bool in = kin && (int) d < mlim;
            gptoss_d_cp_async16_zfill(st + dst + kPassRows * 128u * i,
                                      in ? tok + p * plane_size + (size_t) d * K + k0 : planes, in ? 16u : 0u);
        }
#pragma unroll
        for (uint32_t i = 0; i < kWPasses; i++) {
            const uint32_t d = kPassRows * i;
            const bool in = kin && (int) d < nlim;
            gptoss_d_cp_async16_zfill(st + dst + kPassRows * 128u * (kTokPasses + i),
                                      in ? w + (size_t) d * K + k0 : W, in ? 16u : 0u);
        }
    }
};

template <int BN, int ST, int WG = 2, int H = 1>
__global__ void __launch_bounds__(128 * WG, WG == 1 ? 2 : 1)
    gemm_kernel(const uint16_t* __restrict__ planes, size_t plane_size, const uint16_t* __restrict__ W,
                const uint16_t* __restrict__ bias, float* __restrict__ out, uint32_t M, uint32_t K, uint32_t N,
                bool add) {
    static_assert(ST >= 3, "the ring keeps ST - 2 stages in flight");
    static_assert(WG == 1 || WG == 2, "one or two warpgroups");
    constexpr uint32_t kRows = 64 * WG, kThreads = 128 * WG; /* token rows and threads of a block */
    extern __shared__ uint8_t smem_raw[];
    const uint32_t raw = (uint32_t) __cvta_generic_to_shared(smem_raw);
    const uint32_t base = (raw + 1023u) & ~1023u;
    uint8_t* ring = smem_raw + (base - raw);
    const uint32_t tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3u, lane = tid & 31u;
    const uint32_t m0 = blockIdx.x * kRows, n0 = blockIdx.y * BN;
    const uint32_t nk = (K + BK - 1) / BK;
    constexpr uint32_t kA = kRows * 128u; /* one plane's tile */
    constexpr uint32_t kStage = stage_bytes<BN, WG>();

    const DenseCopy<BN, kRows, kThreads> copies(planes, plane_size, W, m0, n0, M, K, N, tid);
    auto issue = [&](uint32_t s) { /* stage s into its ring slot, as one cp.async group */
        if (s < nk) copies.issue(ring + (size_t) (s % ST) * kStage, W, s * BK);
        gptoss_d_cp_async_commit();
    };

    float acc[BN / 2];
#pragma unroll
    for (int i = 0; i < BN / 2; i++) acc[i] = 0.0f;

#pragma unroll
    for (int s = 0; s < ST - 2; s++) issue((uint32_t) s);
    for (uint32_t s = 0; s < nk; s++) {
        gptoss_d_cp_async_wait<ST - 3>(); /* this thread's copies of stage s landed */
        fence_proxy_async();
        __syncthreads(); /* everyone's; and stage s - 2's MMAs are done in both warpgroups */
        issue(s + ST - 2); /* into stage s - 2's buffer */
        const uint32_t st = base + (s % ST) * kStage;
        const uint32_t a0 = st + wg * 64u * 128u, b0 = st + NP * kA;
        stage_mma<BN, H>(acc, a0, kA, b0);
    }
    wg_wait<0>();
    gptoss_d_cp_async_wait<0>();
    fence_regs<BN / 2>(acc);

#pragma unroll
    for (int i = 0; i < BN / 8; i++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const uint32_t m = m0 + wg * 64u + warp * 16u + (lane >> 2) + 8u * h;
            const uint32_t n = n0 + 8u * i + 2u * (lane & 3u);
            if (m < M) {
                if (n < N) gptoss_d_store_result(out + (size_t) m * N + n, bias, n, acc[4 * i + 2 * h], add);
                if (n + 1 < N) gptoss_d_store_result(out + (size_t) m * N + n + 1, bias, n + 1, acc[4 * i + 2 * h + 1], add);
            }
        }
}

/* moe_kernel<SWIGLU, BN, ST>: the prefill MoE GEMM over expert-grouped rows (the library's
 * gptoss_f32_mf4w_moe_dense_matmul[_swiglu]). A block owns 64 rows of one expert (blockIdx.y
 * walks the experts' 64-row tiles in order, as the library's) x BN weight rows, each
 * warpgroup BN / 2 of them (m64 n(BN/2) k16). A ring stage of 64 columns holds both
 * activation planes (swizzled, as the dense kernel) and the raw MXFP4 bytes of the weight
 * rows (two blocks of 16 bytes a row); after it lands the block dequantises it (integer ops and
 * two exact bf16x2 multiplies, src/cuda/moe_tc.cuh: weights x 2^10) into one of two bf16 tiles
 * in the 128-byte swizzle, then each warpgroup's wgmmas read the tile. The scale bytes of the
 * block's weight rows are loaded once. The epilogue is the library's (x 2^-10, bias, SwiGLU).
 */
constexpr int MBM = 64;

template <int BN>
struct MoeLayout {
    static constexpr uint32_t kA = NP * MBM * 128u; /* a stage's activation planes */
    static constexpr uint32_t kW = BN * 32u;        /* a stage's raw MXFP4 bytes */
    static constexpr uint32_t kRaw = kA + kW;       /* a ring stage (a multiple of 1024) */
    static constexpr uint32_t kB = BN * 128u;       /* a dequantised bf16 tile */
};
template <int BN, int ST>
inline size_t moe_smem_bytes(uint32_t K) {
    return (size_t) ST * MoeLayout<BN>::kRaw + 2 * MoeLayout<BN>::kB + (size_t) BN * (K / 32) + 1024;
}

static __device__ __forceinline__ float wg_bias(const uint8_t* b, uint32_t r) {
    return gptoss_bf16_to_f32((uint16_t) (b[2 * (size_t) r] | (b[2 * (size_t) r + 1] << 8)));
}

template <bool SWIGLU, int BN, int ST, int H = 1>
__global__ void __launch_bounds__(256, BN == 128 ? 2 : 1)
    moe_kernel(const uint32_t* __restrict__ offsets, const uint16_t* __restrict__ planes, size_t plane_size,
               const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales, const uint8_t* __restrict__ bias,
               size_t stride, float* __restrict__ out, uint32_t P, uint32_t E, uint32_t K, uint32_t N,
               uint32_t out_width, float limit, uint32_t* error_word) {
    using L = MoeLayout<BN>;
    static_assert(ST >= 3, "the ring keeps ST - 2 stages in flight");
    /* the (expert, 64-row tile) of blockIdx.y; offsets that are not a partition of the P rows:
     * the error bit and NaN over the block's part of the output */
    uint32_t e, rb, re;
    if (!moe_row_tile<SWIGLU, MBM, BN>(offsets, P, E, blockIdx.x * BN, out, out_width, error_word, e, rb, re)) return;
    extern __shared__ uint8_t smem_raw[];
    const uint32_t raw = (uint32_t) __cvta_generic_to_shared(smem_raw);
    const uint32_t base = (raw + 1023u) & ~1023u;
    uint8_t* ring = smem_raw + (base - raw);
    uint8_t* btiles = ring + ST * L::kRaw;
    uint8_t* Ss = btiles + 2 * L::kB;
    const uint32_t tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3u, lane = tid & 31u;
    const uint32_t n0 = blockIdx.x * BN, nb = K / 32, ns = (K + 63) / 64;
    const uint32_t rows = re - rb, wrows = min((uint32_t) BN, N - n0);
    const uint8_t* wb = blocks + (size_t) e * stride;
    const uint8_t* wbias = bias + (size_t) e * stride;
    {
        const uint8_t* src = scales + (size_t) e * stride + (size_t) n0 * nb;
        for (uint32_t i = tid; i < wrows * nb; i += 256) Ss[i] = src[i];
    }

    auto issue = [&](uint32_t s) {
        if (s < ns) {
            uint8_t* st = ring + (size_t) (s % ST) * L::kRaw;
            const uint32_t k0 = s * 64u;
            for (uint32_t c = tid; c < NP * MBM * 8u; c += 256) {
                const uint32_t row = c >> 3, ch = c & 7u, r = row % MBM, k = k0 + ch * 8u;
                const bool in = r < rows && k < K;
                gptoss_d_cp_async16_zfill(st + (size_t) row * 128u + ((ch ^ (row & 7u)) << 4),
                                          in ? planes + (size_t) (row / MBM) * plane_size + (size_t) (rb + r) * K + k
                                             : planes,
                                          in ? 16u : 0u);
            }
            for (uint32_t c = tid; c < BN * 2u; c += 256) {
                const uint32_t r = c % BN, j = c / BN, kb = 2 * s + j;
                const bool in = r < wrows && kb < nb;
                gptoss_d_cp_async16_zfill(st + L::kA + (j * BN + r) * 16u,
                                          in ? wb + ((size_t) (n0 + r) * nb + kb) * 16 : wb, in ? 16u : 0u);
            }
        }
        gptoss_d_cp_async_commit();
    };

    float acc[BN / 4];
#pragma unroll
    for (int i = 0; i < BN / 4; i++) acc[i] = 0.0f;
#pragma unroll
    for (int s = 0; s < ST - 2; s++) issue((uint32_t) s);
    for (uint32_t s = 0; s < ns; s++) {
        gptoss_d_cp_async_wait<ST - 3>();
        __syncthreads(); /* stage s landed everywhere; stage s - 2's MMAs are done */
        issue(s + ST - 2);
        const uint8_t* st = ring + (size_t) (s % ST) * L::kRaw;
        uint8_t* bt = btiles + (size_t) (s & 1u) * L::kB;
        for (uint32_t c = tid; c < BN * 2u; c += 256) {
            const uint32_t r = c % BN, j = c / BN, kb = 2 * s + j;
            const bool valid = r < wrows && kb < nb;
            const MoeTcMult m = moe_tc_mult(valid ? Ss[(size_t) r * nb + kb] : 0u, valid);
            const uint4 q = *(const uint4*) (st + L::kA + (j * BN + r) * 16u);
            const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
            for (uint32_t w = 0; w < 4; w++) {
                const uint32_t chunk = 4 * j + w; /* columns 8 chunk .. 8 chunk + 7 of the stage */
                *(uint4*) (bt + (size_t) r * 128u + ((chunk ^ (r & 7u)) << 4)) =
                    make_uint4(moe_tc_dequant2(words[w], 0, m), moe_tc_dequant2(words[w], 1, m),
                               moe_tc_dequant2(words[w], 2, m), moe_tc_dequant2(words[w], 3, m));
            }
        }
        fence_proxy_async();
        __syncthreads();
        const uint32_t a0 = base + (s % ST) * L::kRaw;
        const uint32_t b0 = base + ST * L::kRaw + (s & 1u) * L::kB + wg * (BN / 2) * 128u;
        stage_mma<BN / 2, H>(acc, a0, MBM * 128u, b0);
    }
    wg_wait<0>();
    gptoss_d_cp_async_wait<0>();
    fence_regs<BN / 4>(acc);

    constexpr float kUnscale = 1.0f / (float) (1 << kMoeTcPrescale);
#pragma unroll
    for (int i = 0; i < BN / 16; i++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const uint32_t m = rb + warp * 16u + (lane >> 2) + 8u * h;
            const uint32_t n = n0 + wg * (BN / 2) + 8u * i + 2u * (lane & 3u);
            if (m >= re) continue;
            const float v0 = acc[4 * i + 2 * h] * kUnscale, v1 = acc[4 * i + 2 * h + 1] * kUnscale;
            if (SWIGLU) {
                if (n + 1 < N)
                    out[(size_t) m * out_width + n / 2] =
                        gptoss_swiglu(v0 + wg_bias(wbias, n), v1 + wg_bias(wbias, n + 1), limit);
            } else {
                if (n < N) out[(size_t) m * out_width + n] = v0 + wg_bias(wbias, n);
                if (n + 1 < N) out[(size_t) m * out_width + n + 1] = v1 + wg_bias(wbias, n + 1);
            }
        }
}

/* moe_rega_kernel<SWIGLU, TN, ST, MS, MODE>: the MoE GEMM with the roles swapped (weights as
 * M, an expert's tokens as N) and the weights dequantised in registers, straight into wgmma's
 * register-fed A operand (twelfth sitting; the library runs MS = 2 for the 32- and 64-row
 * tiles, src/cuda/moe.cu). A stage: the token planes (TN rows of 128 bytes each, swizzled,
 * wgmma's B) and the raw MXFP4 bytes of the block's 128 MS weight rows in a cp.async ring;
 * each thread reads the bytes of two weight rows a slice (slice ms, warp w of warpgroup g:
 * rows 128 ms + 64 g + 16 w + lane / 4 and + 8) and dequantises byte lane % 4 of each word
 * (the ring kernel's fragment walk: the mma.sync A layout, which wgmma's register A has per
 * warp), then the MMAs run and are waited for (the A registers are reused next stage), so
 * ST - 1 stages are in flight and one barrier a stage remains. The same products in the same
 * order per output as the library's other MoE GEMMs (the planes from the last to the first
 * per k-step of 16). MODE (lab diagnostics, wrong sums, timing only): bit 0 no
 * dequantisation, bit 1 no copies after the prologue, bit 2 no MMAs. */
template <int N>
struct WgmmaRA;
template <>
struct WgmmaRA<16> {
    static __device__ __forceinline__ void mma(float* d, const uint32_t* a, uint64_t b) {
        GPTOSS_WGMMA_ASM(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %13, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7}, {%8, %9, %10, %11}, %12, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
    }
};
template <>
struct WgmmaRA<32> {
    static __device__ __forceinline__ void mma(float* d, const uint32_t* a, uint64_t b) {
        GPTOSS_WGMMA_ASM(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, {%16, %17, %18, %19}, %20, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
    }
};
template <>
struct WgmmaRA<64> {
    static __device__ __forceinline__ void mma(float* d, const uint32_t* a, uint64_t b) {
        GPTOSS_WGMMA_ASM(
            "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
            "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, 1, 1, 0;\n}\n"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
            : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
    }
};

/* MS: m64 slices of weight rows a warpgroup (1 or 2): a block of 128 MS weight rows, whose
 * MMAs share each stage's token planes (MS = 2 reads them from L2 half as often) */
template <int TN, int MS>
struct MoeRegaLayout {
    static constexpr uint32_t kBW = 128 * MS;                /* weight rows a block */
    static constexpr uint32_t kP = NP * TN * 128u;           /* a stage's token planes */
    static constexpr uint32_t kW = kBW * 32u;                /* a stage's raw MXFP4 bytes */
    static constexpr uint32_t kRaw = (kP + kW + 1023u) / 1024u * 1024u;
};
template <int TN, int ST, int MS = 1>
inline size_t moe_rega_smem_bytes(uint32_t K) {
    using L = MoeRegaLayout<TN, MS>;
    return (size_t) ST * L::kRaw + (size_t) L::kBW * (K / 32) + 1024;
}

template <int N, int MS, int TN>
static __device__ __forceinline__ void stage_mma_rega_t(float (&acc)[MS][TN / 2], const uint32_t (&a)[MS][BK / 16][4],
                                                        uint32_t b, uint32_t plane_bytes) {
    const uint64_t bd = desc_sw128(b); /* the stage's descriptor once; each MMA's is an offset from it */
    wg_fence();
#pragma unroll
    for (int kk = 0; kk < BK / 16; kk++)
#pragma unroll
        for (int p = NP - 1; p >= 0; p--)
#pragma unroll
            for (int ms = 0; ms < MS; ms++)
                WgmmaRA<N>::mma(acc[ms], a[ms][kk], desc_add(bd, p * plane_bytes + kk * 32));
    wg_commit();
    wg_wait<0>();
}

template <bool SWIGLU, int TN, int ST, int MS = 1, int MODE = 0>
__global__ void __launch_bounds__(256, MS == 2 ? (TN <= 32 ? 2 : 1) : (TN <= 32 ? 3 : 2))
    moe_rega_kernel(const uint32_t* __restrict__ offsets, const uint16_t* __restrict__ planes, size_t plane_size,
                    const uint8_t* __restrict__ blocks, const uint8_t* __restrict__ scales,
                    const uint8_t* __restrict__ bias, size_t stride, float* __restrict__ out, uint32_t P, uint32_t E,
                    uint32_t K, uint32_t N, uint32_t out_width, float limit, uint32_t* error_word) {
    using L = MoeRegaLayout<TN, MS>;
    constexpr uint32_t BW = L::kBW;
    static_assert(ST >= 3, "a ring of three stages at least");
    static_assert(TN == 16 || TN == 32 || TN == 64, "token tiles of 16 .. 64");
    static_assert(MS == 1 || MS == 2, "one or two m64 slices a warpgroup");
    uint32_t e, rb, re;
    if (!moe_row_tile<SWIGLU, TN, BW>(offsets, P, E, blockIdx.x * BW, out, out_width, error_word, e, rb, re)) return;
    extern __shared__ uint8_t smem_raw[];
    const uint32_t raw = (uint32_t) __cvta_generic_to_shared(smem_raw);
    const uint32_t base = (raw + 1023u) & ~1023u;
    uint8_t* ring = smem_raw + (base - raw);
    uint8_t* Ss = ring + ST * L::kRaw;
    const uint32_t tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3u, lane = tid & 31u;
    const uint32_t n0 = blockIdx.x * BW, nb = K / 32, ns = (K + 63) / 64;
    const uint32_t rows = re - rb, wrows = min(BW, N - n0);
    const uint32_t nsel = rows <= 16 ? 0 : rows <= 32 ? 1 : 2;
    const uint8_t* wb = blocks + (size_t) e * stride;
    const uint8_t* wbias = bias + (size_t) e * stride;
    {
        const uint8_t* src = scales + (size_t) e * stride + (size_t) n0 * nb;
        for (uint32_t i = tid; i < wrows * nb; i += 256) Ss[i] = src[i];
    }

    /* The copies' stage-invariant parts, computed once (the kernel runs 256 threads): token
     * chunk i of a stage is row tid / 8 + 32 i of the NP planes' TN rows (plane 32 i / TN, its
     * row tid / 8 + 32 i % TN; for TN = 16 one chunk, plane tid / 128), column chunk tid % 8;
     * weight chunk i is 16-byte block j = (tid + 256 i) / BW of the stage's two, of weight row
     * (tid + 256 i) % BW. A stage adds 64 columns (128 bytes of a plane row, 32 bytes of a
     * weight row). */
    constexpr uint32_t kTokChunks = NP * TN / 32, kWChunks = BW * 2 / 256, kWStep = 256 / BW;
    const uint32_t ch = tid & 7u, row0 = tid >> 3;
    const uint32_t tr0 = TN >= 32 ? row0 : row0 % TN, tp0 = TN >= 32 ? 0u : row0 / TN;
    const uint32_t tdst = row0 * 128u + ((ch ^ (row0 & 7u)) << 4);
    const uint16_t* tsrc = planes + (size_t) tp0 * plane_size + (size_t) (rb + tr0) * K + ch * 8u;
    const uint32_t wr = tid % BW, wj0 = tid / BW;
    const uint8_t* wsrc = wb + ((size_t) (n0 + wr) * nb + wj0) * 16;
    const uint32_t wdst = L::kP + (wj0 * BW + wr) * 16u;
    const bool wrow_in = wr < wrows;
    auto issue = [&](uint32_t s) {
        if (s < ns && !((MODE & 2) && s >= (uint32_t) ST - 1)) { /* MODE 2: no copies after the prologue */
            uint8_t* st = ring + (size_t) (s % ST) * L::kRaw;
            const uint32_t k0 = s * 64u;
            const bool kin = k0 + ch * 8u < K;
#pragma unroll
            for (uint32_t i = 0; i < kTokChunks; i++) {
                const uint32_t p = TN >= 32 ? 32u * i / TN : 0u, d = TN >= 32 ? 32u * i % TN : 0u;
                const bool in = kin && tr0 + d < rows;
                gptoss_d_cp_async16_zfill(st + tdst + 4096u * i,
                                          in ? tsrc + p * plane_size + (size_t) d * K + k0 : planes, in ? 16u : 0u);
            }
#pragma unroll
            for (uint32_t i = 0; i < kWChunks; i++) {
                const bool in = wrow_in && 2 * s + wj0 + kWStep * i < nb;
                gptoss_d_cp_async16_zfill(st + wdst + 4096u * i, in ? wsrc + (2 * s + kWStep * i) * 16 : wb,
                                          in ? 16u : 0u);
            }
        }
        gptoss_d_cp_async_commit();
    };

    /* this thread's weight rows in the block (slice ms: 128 ms + 64 wg + 16 warp + lane / 4,
     * and 8 more) and the byte of each word it takes */
    const uint32_t rbase = wg * 64u + warp * 16u + (lane >> 2), tg = lane & 3u;
    float acc[MS][TN / 2];
#pragma unroll
    for (int ms = 0; ms < MS; ms++)
#pragma unroll
        for (int i = 0; i < TN / 2; i++) acc[ms][i] = 0.0f;
#pragma unroll
    for (int s = 0; s < ST - 1; s++) issue((uint32_t) s);
    for (uint32_t s = 0; s < ns; s++) {
        gptoss_d_cp_async_wait<ST - 2>();
        __syncthreads(); /* stage s landed everywhere; stage s - 1's slot is free (its MMAs were waited for) */
        issue(s + ST - 1);
        const uint8_t* st = ring + (size_t) (s % ST) * L::kRaw;
        uint32_t a[MS][BK / 16][4];
#pragma unroll
        for (int ms = 0; ms < MS; ms++) {
            const uint32_t r0 = 128u * ms + rbase, r1 = r0 + 8u;
            if constexpr ((MODE & 1) != 0) { /* MODE 1: the raw words as the weights (no dequantisation) */
#pragma unroll
                for (uint32_t j = 0; j < 2; j++) {
                    const uint4 q0 = *(const uint4*) (st + L::kP + (j * BW + r0) * 16u);
                    const uint4 q1 = *(const uint4*) (st + L::kP + (j * BW + r1) * 16u);
                    a[ms][2 * j][0] = q0.x, a[ms][2 * j][1] = q1.x, a[ms][2 * j][2] = q0.y, a[ms][2 * j][3] = q1.y;
                    a[ms][2 * j + 1][0] = q0.z, a[ms][2 * j + 1][1] = q1.z;
                    a[ms][2 * j + 1][2] = q0.w, a[ms][2 * j + 1][3] = q1.w;
                }
            } else {
#pragma unroll
                for (uint32_t j = 0; j < 2; j++) {
                    const uint32_t kb = 2 * s + j;
                    const bool v0 = r0 < wrows && kb < nb, v1 = r1 < wrows && kb < nb;
                    const MoeTcMult m0 = moe_tc_mult(v0 ? Ss[(size_t) r0 * nb + kb] : 0u, v0);
                    const MoeTcMult m1 = moe_tc_mult(v1 ? Ss[(size_t) r1 * nb + kb] : 0u, v1);
                    const uint4 q0 = *(const uint4*) (st + L::kP + (j * BW + r0) * 16u);
                    const uint4 q1 = *(const uint4*) (st + L::kP + (j * BW + r1) * 16u);
                    /* k-steps 2 j (words 0, 1 of the block) and 2 j + 1 (words 2, 3) */
                    a[ms][2 * j][0] = moe_tc_dequant2(q0.x, tg, m0);
                    a[ms][2 * j][1] = moe_tc_dequant2(q1.x, tg, m1);
                    a[ms][2 * j][2] = moe_tc_dequant2(q0.y, tg, m0);
                    a[ms][2 * j][3] = moe_tc_dequant2(q1.y, tg, m1);
                    a[ms][2 * j + 1][0] = moe_tc_dequant2(q0.z, tg, m0);
                    a[ms][2 * j + 1][1] = moe_tc_dequant2(q1.z, tg, m1);
                    a[ms][2 * j + 1][2] = moe_tc_dequant2(q0.w, tg, m0);
                    a[ms][2 * j + 1][3] = moe_tc_dequant2(q1.w, tg, m1);
                }
            }
        }
        fence_proxy_async(); /* the cp.async-written token planes, read by wgmma */
        const uint32_t b0 = base + (s % ST) * L::kRaw;
        if constexpr ((MODE & 4) != 0) { /* MODE 4: no MMAs (the registers kept live) */
#pragma unroll
            for (int ms = 0; ms < MS; ms++)
#pragma unroll
                for (int kk = 0; kk < BK / 16; kk++) acc[ms][kk] += __uint_as_float(a[ms][kk][0] ^ a[ms][kk][3]);
            continue;
        }
        if (nsel == 2) stage_mma_rega_t<TN < 64 ? TN : 64, MS, TN>(acc, a, b0, TN * 128u);
        else if (nsel == 1) stage_mma_rega_t<TN < 32 ? TN : 32, MS, TN>(acc, a, b0, TN * 128u);
        else stage_mma_rega_t<16, MS, TN>(acc, a, b0, TN * 128u);
    }
    gptoss_d_cp_async_wait<0>();
#pragma unroll
    for (int ms = 0; ms < MS; ms++) fence_regs<TN / 2>(acc[ms]);

    /* acc[ms][4 i + 2 h + j]: weight row 128 ms + wg 64 + warp 16 + lane / 4 + 8 h, token 8 i + 2 (lane % 4) + j */
    constexpr float kUnscale = 1.0f / (float) (1 << kMoeTcPrescale);
    const uint32_t ntok = 16u << nsel;
#pragma unroll
    for (int ms = 0; ms < MS; ms++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const uint32_t wrow = n0 + 128u * ms + rbase + 8u * h;
            const float b0 = wrow < N ? wg_bias(wbias, wrow) : 0.0f;
            const float b1 = SWIGLU && wrow + 1 < N ? wg_bias(wbias, wrow + 1) : 0.0f;
#pragma unroll
            for (int i = 0; i < TN / 8; i++) {
                if (8u * i >= ntok) break;
#pragma unroll
                for (int j = 0; j < 2; j++) {
                    const uint32_t t = 8u * i + 2u * (lane & 3u) + j;
                    const float v = acc[ms][4 * i + 2 * h + j] * kUnscale;
                    if (SWIGLU) {
                        const float odd = __shfl_xor_sync(0xFFFFFFFFu, v, 4);
                        if (((lane >> 2) & 1u) == 0 && t < rows && wrow + 1 < N)
                            out[(size_t) (rb + t) * out_width + wrow / 2] = gptoss_swiglu(v + b0, odd + b1, limit);
                    } else if (t < rows && wrow < N) {
                        out[(size_t) (rb + t) * out_width + wrow] = v + b0;
                    }
                }
            }
        }
}

}  // namespace gptoss_wg

#endif
