/* CPU backend: Squares32 random fills (KERNELS.md 3.1-3.3). Value i depends only on
 * (seed, offset + i), so the split over threads does not matter. Scalar only: the
 * 64-bit multiplies of Squares32 have no AVX2 form and the kernel is only used by tests. */
#include "common/math.h"
#include "cpu/cpu.h"

#define RANDOM_GRAIN ((size_t) 1 << 14)

struct random_context {
    void* output;
    uint64_t seed;
    uint64_t offset;
    float scale;
    float bias;
};

static void u32_task(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct random_context* ctx = context;
    uint32_t* out = ctx->output;
    for (size_t i = begin; i < end; i++) out[i] = gptoss_squares32(ctx->offset + (uint64_t) i, ctx->seed);
}

static void f32_task(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct random_context* ctx = context;
    float* out = ctx->output;
    for (size_t i = begin; i < end; i++) {
        out[i] = gptoss_random_f32(gptoss_squares32(ctx->offset + (uint64_t) i, ctx->seed), ctx->scale, ctx->bias);
    }
}

static void bf16_task(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct random_context* ctx = context;
    gptoss_bf16* out = ctx->output;
    for (size_t i = begin; i < end; i++) {
        const float v =
            gptoss_random_f32(gptoss_squares32(ctx->offset + (uint64_t) i, ctx->seed), ctx->scale, ctx->bias);
        out[i].bits = gptoss_f32_to_bf16(v);
    }
}

/* scale = (max - min) * 2^-32 and bias = (min + max) * 0.5, both in f32 (KERNELS.md 3.2). */
static void set_range(struct random_context* ctx, float min, float max) {
    ctx->scale = (max - min) * 0x1.0p-32f;
    ctx->bias = (min + max) * 0.5f;
}

enum gptoss_status gptoss_cpu_u32_fill_random(gptoss_backend_t backend,
                                              const struct gptoss_u32_fill_random_args* args) {
    struct random_context ctx = {.output = args->output, .seed = args->seed, .offset = args->offset};
    gptoss_cpu_parallelize(backend, u32_task, &ctx, (size_t) args->num_elements, RANDOM_GRAIN);
    return gptoss_status_success;
}

enum gptoss_status gptoss_cpu_f32_fill_random(gptoss_backend_t backend,
                                              const struct gptoss_f32_fill_random_args* args) {
    struct random_context ctx = {.output = args->output, .seed = args->seed, .offset = args->offset};
    set_range(&ctx, args->min, args->max);
    gptoss_cpu_parallelize(backend, f32_task, &ctx, (size_t) args->num_elements, RANDOM_GRAIN);
    return gptoss_status_success;
}

enum gptoss_status gptoss_cpu_bf16_fill_random(gptoss_backend_t backend,
                                               const struct gptoss_bf16_fill_random_args* args) {
    struct random_context ctx = {.output = args->output, .seed = args->seed, .offset = args->offset};
    set_range(&ctx, args->min, args->max);
    gptoss_cpu_parallelize(backend, bf16_task, &ctx, (size_t) args->num_elements, RANDOM_GRAIN);
    return gptoss_status_success;
}
