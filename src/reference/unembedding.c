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

void gptoss_ref_f32_bf16w_unembedding(const struct gptoss_f32_bf16w_unembedding_args* args, double* logits) {
    /* logits = x W^T */
    const struct gptoss_f32_bf16w_matmul_args matmul = {
        args->input, args->weight, NULL, args->logits, args->num_tokens, args->num_cols, args->num_rows,
    };
    gptoss_ref_f32_bf16w_matmul(&matmul, logits);

    for (uint32_t t = 0; t < args->num_tokens; t++) {
        const double* row = logits + (size_t) t * args->num_rows;
        uint32_t best = 0;
        for (uint32_t v = 1; v < args->num_rows; v++) {
            if (argmax_key(row[v]) < argmax_key(row[best])) { /* strict: lowest index on ties */
                best = v;
            }
        }
        args->argmax[t] = best;
    }
}
