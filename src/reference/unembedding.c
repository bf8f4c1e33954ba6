/* Reference: unembedding logits (no bias) and the argmax of each token, in double. */
#include "reference/reference.h"

#include <string.h>

#include "common/math.h"

/* Order key of a double logit, the double analogue of gptoss_argmax_key: smaller key =
 * larger value; +NaN above +inf, -NaN below -inf, -0 just below +0. */
static uint64_t argmax_key(double value) {
    uint64_t u;
    memcpy(&u, &value, sizeof u);
    return (u & 0x8000000000000000ull) ? u : (u ^ 0x7FFFFFFFFFFFFFFFull);
}

void gptoss_ref_f32_bf16w_unembedding(const float* input, const gptoss_bf16* weight, double* logits,
                                      uint32_t* argmax, uint32_t num_tokens, uint32_t num_cols, uint32_t num_rows) {
    /* logits = x W^T */
    gptoss_ref_f32_bf16w_matmul(input, weight, NULL, logits, num_tokens, num_cols, num_rows);

    for (uint32_t t = 0; t < num_tokens; t++) {
        const double* row = logits + (size_t) t * num_rows;
        uint32_t best = 0;
        for (uint32_t v = 1; v < num_rows; v++) {
            if (argmax_key(row[v]) < argmax_key(row[best])) { /* strict: lowest index on ties */
                best = v;
            }
        }
        argmax[t] = best;
    }
}
