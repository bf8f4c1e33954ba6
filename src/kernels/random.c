/* Public random-fill kernels: argument checks, then the backend entry. */
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

enum gptoss_status gptoss_u32_fill_random(gptoss_backend_t backend, uint32_t* output, uint64_t num_elements,
                                          uint64_t seed, uint64_t offset) {
    gptoss_clear_error();
    GPTOSS_TRY(gptoss_check_backend(backend));
    GPTOSS_TRY(gptoss_check_pointer(output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(num_elements, "num_elements"));
    GPTOSS_TRY(GPTOSS_SIZE1("output", 4, NULL, num_elements));
    return backend->ops->u32_fill_random(backend, output, num_elements, seed, offset);
}

enum gptoss_status gptoss_f32_fill_random(gptoss_backend_t backend, float* output, uint64_t num_elements,
                                          uint64_t seed, uint64_t offset, float min, float max) {
    gptoss_clear_error();
    GPTOSS_TRY(gptoss_check_backend(backend));
    GPTOSS_TRY(gptoss_check_pointer(output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(num_elements, "num_elements"));
    GPTOSS_TRY(GPTOSS_SIZE1("output", 4, NULL, num_elements));
    GPTOSS_TRY(check_float_range(min, max));
    return backend->ops->f32_fill_random(backend, output, num_elements, seed, offset, min, max);
}

enum gptoss_status gptoss_bf16_fill_random(gptoss_backend_t backend, gptoss_bf16* output, uint64_t num_elements,
                                           uint64_t seed, uint64_t offset, float min, float max) {
    gptoss_clear_error();
    GPTOSS_TRY(gptoss_check_backend(backend));
    GPTOSS_TRY(gptoss_check_pointer(output, "output", 2));
    GPTOSS_TRY(gptoss_check_nonzero(num_elements, "num_elements"));
    GPTOSS_TRY(GPTOSS_SIZE1("output", 2, NULL, num_elements));
    GPTOSS_TRY(check_float_range(min, max));
    return backend->ops->bf16_fill_random(backend, output, num_elements, seed, offset, min, max);
}
