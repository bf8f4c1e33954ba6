/* Reference: MXFP4 -> f32 with RAW E8M0 scales (exact). */
#include "reference/reference.h"

#include <math.h>

#include "common/math.h"

/* Element e (0..31) of a 16-byte block: element 2j is the low nibble of byte j. */
static unsigned block_nibble(const uint8_t* block, unsigned e) {
    const uint8_t byte = block[e / 2];
    return (e % 2 == 0) ? (byte & 0x0Fu) : (byte >> 4);
}

void gptoss_ref_mf4_f32_convert(const struct gptoss_mf4_f32_convert_args* args) {
    const uint64_t num_blocks = args->num_elements / 32;
    for (uint64_t b = 0; b < num_blocks; b++) {
        const uint8_t* block = args->blocks + b * 16;
        const int exponent = (int) args->scales[b] - 127;
        for (unsigned e = 0; e < 32; e++) {
            float value;
            if (args->scales[b] == 255) {
                value = NAN; /* E8M0 NaN */
            } else {
                /* exact in double; the narrowing to f32 is exact or overflows to +-inf */
                value = (float) ldexp((double) gptoss_fp4_values[block_nibble(block, e)], exponent);
            }
            args->output[b * 32 + e] = value;
        }
    }
}
