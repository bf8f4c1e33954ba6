/* Reference: bf16-weight matrix products (out = x W^T + b, optionally + old; the "dense"
 * kernels compute the same two functions). */
#include "reference/reference.h"

#include "common/math.h"

/* out[t][r] = (old[t][r] +) x[t] . w[r] + b[r], in double; old may be NULL. */
static void matmul(const float* input, const gptoss_bf16* weight, const gptoss_bf16* bias, const float* old,
                   double* output, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows) {
    for (uint32_t t = 0; t < num_tokens; t++) {
        const float* x = input + (size_t) t * num_cols;
        for (uint32_t r = 0; r < num_rows; r++) {
            const gptoss_bf16* w = weight + (size_t) r * num_cols;
            double sum = 0.0;
            for (uint32_t c = 0; c < num_cols; c++) {
                sum += (double) x[c] * (double) gptoss_bf16_to_f32(w[c].bits);
            }
            if (bias != NULL) {
                sum += (double) gptoss_bf16_to_f32(bias[r].bits);
            }
            const size_t i = (size_t) t * num_rows + r;
            output[i] = old != NULL ? (double) old[i] + sum : sum;
        }
    }
}

void gptoss_ref_f32_bf16w_matmul(const struct gptoss_f32_bf16w_matmul_args* args, double* output) {
    matmul(args->input, args->weight, args->bias, NULL, output, args->num_tokens, args->num_cols, args->num_rows);
}

void gptoss_ref_f32_bf16w_matmul_add(const struct gptoss_f32_bf16w_matmul_add_args* args, double* output) {
    matmul(args->input, args->weight, args->bias, args->output, output, args->num_tokens, args->num_cols,
           args->num_rows);
}
