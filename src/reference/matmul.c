/* Reference: bf16-weight matrix products (out = x W^T + b, optionally + old). */
#include "reference/reference.h"

#include "common/math.h"

/* x . w + b for one input row and one weight row, in double. */
static double dot_bias(const float* x, const gptoss_bf16* w, const gptoss_bf16* bias, uint32_t r,
                       uint32_t num_cols) {
    double sum = 0.0;
    for (uint32_t c = 0; c < num_cols; c++) {
        sum += (double) x[c] * (double) gptoss_bf16_to_f32(w[c].bits);
    }
    if (bias != NULL) {
        sum += (double) gptoss_bf16_to_f32(bias[r].bits);
    }
    return sum;
}

void gptoss_ref_f32_bf16w_matmul(const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias,
                                 double* output, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows) {
    for (uint32_t t = 0; t < num_tokens; t++) {
        const float* x = input + (size_t) t * num_cols;
        for (uint32_t r = 0; r < num_rows; r++) {
            output[(size_t) t * num_rows + r] = dot_bias(x, weight + (size_t) r * num_cols, bias, r, num_cols);
        }
    }
}

void gptoss_ref_f32_bf16w_matmul_add(const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias,
                                     const float* output_old, double* output, uint32_t num_tokens,
                                     uint32_t num_cols, uint32_t num_rows) {
    for (uint32_t t = 0; t < num_tokens; t++) {
        const float* x = input + (size_t) t * num_cols;
        for (uint32_t r = 0; r < num_rows; r++) {
            const size_t i = (size_t) t * num_rows + r;
            output[i] = (double) output_old[i] + dot_bias(x, weight + (size_t) r * num_cols, bias, r, num_cols);
        }
    }
}
