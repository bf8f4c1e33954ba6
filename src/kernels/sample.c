/* Argument checks of the sampling kernels (softmax pass, draw); src/kernels/run.c runs them
 * before the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_check_f32_softmax(gptoss_backend_t backend, const struct gptoss_f32_softmax_args* a) {
    GPTOSS_TRY(gptoss_check_pointer(a->logits, "logits", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->argmax, "argmax", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->prob, "prob", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->sum, "sum", 4));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_channels, "num_channels"));
    GPTOSS_TRY(gptoss_check_finite_positive(a->temperature, "temperature"));
    uint64_t elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("logits", 4, &elements, a->num_tokens, a->num_channels));
    const uint64_t bytes = elements * 4, row_bytes = (uint64_t) a->num_tokens * 4;
    GPTOSS_TRY(gptoss_check_disjoint(a->prob, bytes, "prob", a->logits, bytes, "logits"));
    GPTOSS_TRY(gptoss_check_disjoint(a->prob, bytes, "prob", a->argmax, row_bytes, "argmax"));
    GPTOSS_TRY(gptoss_check_disjoint(a->sum, row_bytes, "sum", a->logits, bytes, "logits"));
    GPTOSS_TRY(gptoss_check_disjoint(a->sum, row_bytes, "sum", a->argmax, row_bytes, "argmax"));
    GPTOSS_TRY(gptoss_check_disjoint(a->sum, row_bytes, "sum", a->prob, bytes, "prob"));
    if (backend->host_memory) {
        GPTOSS_TRY(gptoss_check_ids_below(a->argmax, a->num_tokens, "argmax", a->num_channels, "num_channels"));
    }
    return gptoss_status_success;
}

enum gptoss_status gptoss_check_f32_sample(gptoss_backend_t backend, const struct gptoss_f32_sample_args* a) {
    GPTOSS_TRY(gptoss_check_pointer(a->prob, "prob", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->sum, "sum", 4));
    GPTOSS_TRY(gptoss_check_pointer(a->prediction, "prediction", 4));
    GPTOSS_TRY(gptoss_check_nonzero(a->num_channels, "num_channels"));
    GPTOSS_TRY(GPTOSS_SIZE1("prob", 4, NULL, a->num_channels));
    const uint64_t prob_bytes = (uint64_t) a->num_channels * 4;
    GPTOSS_TRY(gptoss_check_disjoint(a->prediction, 4, "prediction", a->prob, prob_bytes, "prob"));
    GPTOSS_TRY(gptoss_check_disjoint(a->prediction, 4, "prediction", a->sum, 4, "sum"));
    if (backend->host_memory) {
        const float total = *a->sum;
        if (!isfinite(total) || !(total > 0.0f)) {
            return gptoss_fail(GPTOSS_INVALID, "*sum %g is not a finite value > 0", (double) total);
        }
    }
    return gptoss_status_success;
}
