/* CPU backend: MXFP4 -> f32 with RAW E8M0 scales (KERNELS.md 3.4, kernels.h).
 * out = fp4 * 2^(s-127) exactly: the multiplier is an exact f32 for s <= 254 (s = 0 is
 * the subnormal 2^-127), and fp4 (2 significant bits) times a power of two is exact
 * unless it overflows, which IEEE rounds to +-inf. s = 255 (E8M0 NaN) gives NaN.
 * Per block a 16-entry table fp4[n] * multiplier is built, then 32 lookups. */
#include <math.h>

#include "common/math.h"
#include "cpu/cpu.h"

#define CONVERT_GRAIN ((size_t) 256) /* blocks */

struct convert_context {
    const uint8_t* blocks;
    const uint8_t* scales;
    float* output;
};

static float raw_scale_multiplier(uint8_t s) {
    if (s == 255) return NAN;
    if (s == 0) return gptoss_f32_from_bits(0x00400000u); /* 2^-127 */
    return gptoss_f32_from_bits((uint32_t) s << 23);
}

static void convert_task(void* context, uint32_t thread_index, size_t begin, size_t end) {
    const struct convert_context* ctx = context;
    for (size_t b = begin; b < end; b++) {
        const float m = raw_scale_multiplier(ctx->scales[b]);
        float table[16];
        for (int n = 0; n < 16; n++) table[n] = gptoss_fp4_values[n] * m;
        const uint8_t* in = ctx->blocks + b * 16;
        float* out = ctx->output + b * 32;
        for (int j = 0; j < 16; j++) {
            out[2 * j] = table[in[j] & 15];
            out[2 * j + 1] = table[in[j] >> 4];
        }
    }
}

enum gptoss_status gptoss_cpu_mf4_f32_convert(gptoss_backend_t backend,
                                              const struct gptoss_mf4_f32_convert_args* args) {
    struct convert_context ctx = {.blocks = args->blocks, .scales = args->scales, .output = args->output};
    gptoss_cpu_parallelize(backend, convert_task, &ctx, (size_t) (args->num_elements / 32), CONVERT_GRAIN);
    return gptoss_status_success;
}
