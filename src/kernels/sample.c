/* Public sampling kernels (softmax pass, draw): argument checks, then the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_f32_softmax(gptoss_backend_t backend, const float* logits, const uint32_t* argmax,
                                      float* prob, float* sum, uint32_t num_tokens, uint32_t num_channels,
                                      float temperature) {
    gptoss_clear_error();
    GPTOSS_TRY(gptoss_check_backend(backend));
    GPTOSS_TRY(gptoss_check_pointer(logits, "logits", 4));
    GPTOSS_TRY(gptoss_check_pointer(argmax, "argmax", 4));
    GPTOSS_TRY(gptoss_check_pointer(prob, "prob", 4));
    GPTOSS_TRY(gptoss_check_pointer(sum, "sum", 4));
    GPTOSS_TRY(gptoss_check_nonzero(num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(num_channels, "num_channels"));
    GPTOSS_TRY(gptoss_check_finite_positive(temperature, "temperature"));
    uint64_t elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("logits", 4, &elements, num_tokens, num_channels));
    const uint64_t bytes = elements * 4, row_bytes = (uint64_t) num_tokens * 4;
    GPTOSS_TRY(gptoss_check_disjoint(prob, bytes, "prob", logits, bytes, "logits"));
    GPTOSS_TRY(gptoss_check_disjoint(prob, bytes, "prob", argmax, row_bytes, "argmax"));
    GPTOSS_TRY(gptoss_check_disjoint(sum, row_bytes, "sum", logits, bytes, "logits"));
    GPTOSS_TRY(gptoss_check_disjoint(sum, row_bytes, "sum", argmax, row_bytes, "argmax"));
    GPTOSS_TRY(gptoss_check_disjoint(sum, row_bytes, "sum", prob, bytes, "prob"));
    if (backend->host_memory) {
        GPTOSS_TRY(gptoss_check_ids_below(argmax, num_tokens, "argmax", num_channels, "num_channels"));
    }
    return backend->ops->f32_softmax(backend, logits, argmax, prob, sum, num_tokens, num_channels, temperature);
}

enum gptoss_status gptoss_f32_sample(gptoss_backend_t backend, const float* prob, const float* sum,
                                     uint32_t* prediction, uint32_t num_channels, uint64_t rng_seed,
                                     uint64_t rng_offset) {
    gptoss_clear_error();
    GPTOSS_TRY(gptoss_check_backend(backend));
    GPTOSS_TRY(gptoss_check_pointer(prob, "prob", 4));
    GPTOSS_TRY(gptoss_check_pointer(sum, "sum", 4));
    GPTOSS_TRY(gptoss_check_pointer(prediction, "prediction", 4));
    GPTOSS_TRY(gptoss_check_nonzero(num_channels, "num_channels"));
    GPTOSS_TRY(GPTOSS_SIZE1("prob", 4, NULL, num_channels));
    const uint64_t prob_bytes = (uint64_t) num_channels * 4;
    GPTOSS_TRY(gptoss_check_disjoint(prediction, 4, "prediction", prob, prob_bytes, "prob"));
    GPTOSS_TRY(gptoss_check_disjoint(prediction, 4, "prediction", sum, 4, "sum"));
    if (backend->host_memory) {
        const float total = *sum;
        if (!isfinite(total) || !(total > 0.0f)) {
            return gptoss_fail(GPTOSS_INVALID, "*sum %g is not a finite value > 0", (double) total);
        }
    }
    return backend->ops->f32_sample(backend, prob, sum, prediction, num_channels, rng_seed, rng_offset);
}
