/* Reference: random fills (exact; the kernel's own formula, see KERNELS.md 1.9 and 3.1-3.3). */
#include "reference/reference.h"

#include "common/math.h"

void gptoss_ref_u32_fill_random(uint32_t* output, uint64_t num_elements, uint64_t seed, uint64_t offset) {
    for (uint64_t i = 0; i < num_elements; i++) {
        output[i] = gptoss_squares32(offset + i, seed);
    }
}

/* The two f32 constants of the kernel, computed in f32 as the host does. */
static float fill_scale(float min, float max) { return (max - min) * 0x1.0p-32f; }
static float fill_bias(float min, float max) { return (min + max) * 0.5f; }

void gptoss_ref_f32_fill_random(float* output, uint64_t num_elements, uint64_t seed, uint64_t offset, float min,
                                float max) {
    const float scale = fill_scale(min, max);
    const float bias = fill_bias(min, max);
    for (uint64_t i = 0; i < num_elements; i++) {
        output[i] = gptoss_random_f32(gptoss_squares32(offset + i, seed), scale, bias);
    }
}

void gptoss_ref_bf16_fill_random(gptoss_bf16* output, uint64_t num_elements, uint64_t seed, uint64_t offset,
                                 float min, float max) {
    const float scale = fill_scale(min, max);
    const float bias = fill_bias(min, max);
    for (uint64_t i = 0; i < num_elements; i++) {
        const float value = gptoss_random_f32(gptoss_squares32(offset + i, seed), scale, bias);
        output[i].bits = gptoss_f32_to_bf16(value);
    }
}
