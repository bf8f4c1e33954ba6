/* Argument checks of the sampling kernels (softmax pass, draw from probabilities,
 * penalties, draw from logits); src/kernels/run.c runs them before the backend entry. */
#include "kernels/check.h"

enum gptoss_status gptoss_check_f32_softmax(gptoss_backend_t backend, const struct gptoss_f32_softmax_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->logits, "logits", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->argmax, "argmax", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->prob, "prob", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->sum, "sum", 4));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_tokens, "num_tokens"));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_channels, "num_channels"));
    GPTOSS_TRY(gptoss_check_finite_positive(args->temperature, "temperature"));
    uint64_t elements = 0;
    GPTOSS_TRY(GPTOSS_SIZE2("logits", 4, &elements, args->num_tokens, args->num_channels));
    const uint64_t bytes = elements * 4, row_bytes = (uint64_t) args->num_tokens * 4;
    GPTOSS_TRY(gptoss_check_disjoint(args->prob, bytes, "prob", args->logits, bytes, "logits"));
    GPTOSS_TRY(gptoss_check_disjoint(args->prob, bytes, "prob", args->argmax, row_bytes, "argmax"));
    GPTOSS_TRY(gptoss_check_disjoint(args->sum, row_bytes, "sum", args->logits, bytes, "logits"));
    GPTOSS_TRY(gptoss_check_disjoint(args->sum, row_bytes, "sum", args->argmax, row_bytes, "argmax"));
    GPTOSS_TRY(gptoss_check_disjoint(args->sum, row_bytes, "sum", args->prob, bytes, "prob"));
    if (backend->host_memory) {
        GPTOSS_TRY(
            gptoss_check_ids_below(args->argmax, args->num_tokens, "argmax", args->num_channels, "num_channels"));
    }
    return gptoss_status_success;
}

enum gptoss_status gptoss_check_f32_sample(gptoss_backend_t backend, const struct gptoss_f32_sample_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->prob, "prob", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->sum, "sum", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->prediction, "prediction", 4));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_channels, "num_channels"));
    GPTOSS_TRY(GPTOSS_SIZE1("prob", 4, NULL, args->num_channels));
    const uint64_t prob_bytes = (uint64_t) args->num_channels * 4;
    GPTOSS_TRY(gptoss_check_disjoint(args->prediction, 4, "prediction", args->prob, prob_bytes, "prob"));
    GPTOSS_TRY(gptoss_check_disjoint(args->prediction, 4, "prediction", args->sum, 4, "sum"));
    if (backend->host_memory) {
        const float total = *args->sum;
        if (!isfinite(total) || !(total > 0.0f)) {
            return gptoss_fail(GPTOSS_INVALID, "*sum %g is not a finite value > 0", (double) total);
        }
    }
    return gptoss_status_success;
}

enum gptoss_status gptoss_check_f32_apply_penalties(gptoss_backend_t backend,
                                                    const struct gptoss_f32_apply_penalties_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->logits, "logits", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->counts, "counts", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->output, "output", 4));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_channels, "num_channels"));
    GPTOSS_TRY(gptoss_check_finite(args->presence_penalty, "presence_penalty"));
    GPTOSS_TRY(gptoss_check_finite(args->frequency_penalty, "frequency_penalty"));
    GPTOSS_TRY(GPTOSS_SIZE1("logits", 4, NULL, args->num_channels));
    const uint64_t bytes = (uint64_t) args->num_channels * 4;
    /* In place (output == logits) is allowed; any other overlap is not. */
    if ((const void*) args->output != (const void*) args->logits) {
        GPTOSS_TRY(gptoss_check_disjoint(args->output, bytes, "output", args->logits, bytes, "logits"));
    }
    GPTOSS_TRY(gptoss_check_disjoint(args->output, bytes, "output", args->counts, bytes, "counts"));
    return gptoss_status_success;
}

enum gptoss_status gptoss_check_f32_sample_logits(gptoss_backend_t backend,
                                                  const struct gptoss_f32_sample_logits_args* args) {
    GPTOSS_TRY(gptoss_check_pointer(args->logits, "logits", 4));
    GPTOSS_TRY(gptoss_check_pointer(args->prediction, "prediction", 4));
    GPTOSS_TRY(gptoss_check_nonzero(args->num_channels, "num_channels"));
    GPTOSS_TRY(gptoss_check_finite(args->temperature, "temperature"));
    if (!(args->temperature >= 0.0f)) {
        return gptoss_fail(GPTOSS_INVALID, "temperature %g is negative", (double) args->temperature);
    }
    if (!(args->top_p > 0.0f && args->top_p <= 1.0f)) {
        return gptoss_fail(GPTOSS_INVALID, "top_p %g is not in (0, 1]", (double) args->top_p);
    }
    GPTOSS_TRY(GPTOSS_SIZE1("logits", 4, NULL, args->num_channels));
    GPTOSS_TRY(gptoss_check_disjoint(args->prediction, 4, "prediction", args->logits,
                                     (uint64_t) args->num_channels * 4, "logits"));
    return gptoss_status_success;
}
