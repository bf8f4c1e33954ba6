/* Argument checks of the random-fill kernels; src/kernels/run.c runs them
 * before the backend entry. */
#include <math.h>

#include "kernels/check.h"

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

enum gptoss_status gptoss_check_u32_fill_random(gptoss_backend_t backend,
                                                const struct gptoss_u32_fill_random_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_elements, "num_elements"));
    GPTOSS_TRY(GPTOSS_SIZE1("output", 4, NULL, args->num_elements));
    return gptoss_status_success;
}

enum gptoss_status gptoss_check_f32_fill_random(gptoss_backend_t backend,
                                                const struct gptoss_f32_fill_random_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_elements, "num_elements"));
    GPTOSS_TRY(GPTOSS_SIZE1("output", 4, NULL, args->num_elements));
    GPTOSS_TRY(check_float_range(args->min, args->max));
    return gptoss_status_success;
}

enum gptoss_status gptoss_check_bf16_fill_random(gptoss_backend_t backend,
                                                 const struct gptoss_bf16_fill_random_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->output, "output", 2));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_elements, "num_elements"));
    GPTOSS_TRY(GPTOSS_SIZE1("output", 2, NULL, args->num_elements));
    GPTOSS_TRY(check_float_range(args->min, args->max));
    return gptoss_status_success;
}
