/* Argument checks of the random-fill kernels; src/kernels/run.c runs them before the
 * backend entry. */
#include <math.h>

#include "common/math.h"
#include "kernels/check.h"

uint32_t gptoss_random_u32(uint64_t counter, uint64_t seed) { return gptoss_squares32(counter, seed); }

static enum gptoss_status check_float_range(float min, float max) {
    GPTOSS_TRY(gptoss_check_finite(min, "min"));
    GPTOSS_TRY(gptoss_check_finite(max, "max"));
    if (!(min < max)) {
        return gptoss_fail(GPTOSS_INVALID, "min %g is not below max %g", (double) min, (double) max);
    }
    /* The kernels scale by (max - min) * 2^-32 computed in f32; an infinite width would
     * produce inf/NaN outside [min, max]. */
    if (!isfinite(max - min)) {
        return gptoss_fail(GPTOSS_INVALID, "max %g - min %g overflows f32", (double) max, (double) min);
    }
    return gptoss_status_success;
}

/* output: num_elements >= 1 values of element_size bytes (naturally aligned) */
static enum gptoss_status check_output(const void* output, uint64_t num_elements, size_t element_size) {
    GPTOSS_TRY(gptoss_check_pointer(output, "output", element_size));
    GPTOSS_TRY(gptoss_check_nonzero(num_elements, "num_elements"));
    return GPTOSS_SIZE1("output", element_size, NULL, num_elements);
}

enum gptoss_status gptoss_check_u32_fill_random(gptoss_backend_t backend,
                                                const struct gptoss_u32_fill_random_args* args) {
    return check_output(args->output, args->num_elements, 4);
}

enum gptoss_status gptoss_check_f32_fill_random(gptoss_backend_t backend,
                                                const struct gptoss_f32_fill_random_args* args) {
    GPTOSS_TRY(check_output(args->output, args->num_elements, 4));
    return check_float_range(args->min, args->max);
}

enum gptoss_status gptoss_check_bf16_fill_random(gptoss_backend_t backend,
                                                 const struct gptoss_bf16_fill_random_args* args) {
    GPTOSS_TRY(check_output(args->output, args->num_elements, 2));
    return check_float_range(args->min, args->max);
}
