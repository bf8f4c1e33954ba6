/* Reference: random fills (exact; the kernel's own formula, see KERNELS.md 1.9 and 3.1-3.3). */
#include "reference/reference.h"

#include "common/math.h"

void gptoss_ref_u32_fill_random(const struct gptoss_u32_fill_random_args* args) {
    for (uint64_t i = 0; i < args->num_elements; i++) {
        args->output[i] = gptoss_squares32(args->offset + i, args->seed);
    }
}

/* The two f32 constants of the kernel, computed in f32 as the host does. */
static float fill_scale(float min, float max) { return (max - min) * 0x1.0p-32f; }
static float fill_bias(float min, float max) { return (min + max) * 0.5f; }

void gptoss_ref_f32_fill_random(const struct gptoss_f32_fill_random_args* args) {
    const float scale = fill_scale(args->min, args->max);
    const float bias = fill_bias(args->min, args->max);
    for (uint64_t i = 0; i < args->num_elements; i++) {
        args->output[i] = gptoss_random_f32(gptoss_squares32(args->offset + i, args->seed), scale, bias);
    }
}

void gptoss_ref_bf16_fill_random(const struct gptoss_bf16_fill_random_args* args) {
    const float scale = fill_scale(args->min, args->max);
    const float bias = fill_bias(args->min, args->max);
    for (uint64_t i = 0; i < args->num_elements; i++) {
        const float value = gptoss_random_f32(gptoss_squares32(args->offset + i, args->seed), scale, bias);
        args->output[i].bits = gptoss_f32_to_bf16(value);
    }
}
