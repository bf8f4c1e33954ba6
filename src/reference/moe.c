/* Reference: the four MXFP4 expert matmuls (decode and prefill, with and without SwiGLU),
 * in double. Scales are the model file's +14-biased bytes: multiplier 2^(stored-14-127). */
#include "reference/reference.h"

#include <math.h>

#include "common/math.h"

/* One expert's weights: W[rows][cols] as MXFP4 and bias bf16[rows]. */
struct expert_weights {
    const uint8_t* blocks; /* [rows][cols/32][16] */
    const uint8_t* scales; /* [rows][cols/32], +14-biased */
    const gptoss_bf16* bias;
};

static struct expert_weights expert_at(const uint8_t* weight_blocks, const uint8_t* weight_scales,
                                       const gptoss_bf16* bias, size_t expert_stride, uint32_t e) {
    struct expert_weights w;
    w.blocks = weight_blocks + (size_t) e * expert_stride;
    w.scales = weight_scales + (size_t) e * expert_stride;
    w.bias = (const gptoss_bf16*) ((const uint8_t*) bias + (size_t) e * expert_stride);
    return w;
}

/* Multiplier of a +14-biased scale byte: 2^(stored - 14 - 127), exact in double. */
static double block_scale(uint8_t stored) { return ldexp(1.0, (int) stored - 14 - 127); }

/* fp4 value of element e (0..31) of a 16-byte block. */
static double block_element(const uint8_t* block, unsigned e) {
    const uint8_t byte = block[e / 2];
    const unsigned nibble = (e % 2 == 0) ? (byte & 0x0Fu) : (byte >> 4);
    return (double) gptoss_fp4_values[nibble];
}

/* x . W[r] + b[r]: per 32-element block, sum x * fp4 and scale once (a power of two, so
 * the result equals summing x * W[r][c] exactly element by element). */
static double expert_row_dot(const struct expert_weights* w, const float* x, uint32_t num_cols, uint32_t r) {
    const uint32_t num_blocks = num_cols / 32;
    double sum = 0.0;
    for (uint32_t g = 0; g < num_blocks; g++) {
        const size_t block = (size_t) r * num_blocks + g;
        double partial = 0.0;
        for (unsigned e = 0; e < 32; e++) {
            partial += (double) x[32 * g + e] * block_element(w->blocks + block * 16, e);
        }
        sum += partial * block_scale(w->scales[block]);
    }
    return sum + (double) gptoss_bf16_to_f32(w->bias[r].bits);
}

/* SwiGLU of kernels.h in double: g = min(glu, L), l = clamp(lin, -L, L),
 * g / (1 + exp(-1.702 g)) * (l + 1). fmin/fmax as the kernels (NaN operand ignored). */
static double swiglu(double glu, double lin, double limit) {
    const double g = fmin(glu, limit);
    const double l = fmin(fmax(lin, -limit), limit);
    return g / (1.0 + exp(-1.702 * g)) * (l + 1.0);
}

/* out[o] = swiglu(x . W[2o] + b[2o], x . W[2o+1] + b[2o+1]), o < num_rows */
static void up_swiglu_row(const struct expert_weights* w, const float* x, double* out, uint32_t num_cols,
                          uint32_t num_rows, float swiglu_limit) {
    for (uint32_t o = 0; o < num_rows; o++) {
        const double glu = expert_row_dot(w, x, num_cols, 2 * o);
        const double lin = expert_row_dot(w, x, num_cols, 2 * o + 1);
        out[o] = swiglu(glu, lin, (double) swiglu_limit);
    }
}

/* out[r] = x . W[r] + b[r], r < num_rows */
static void down_row(const struct expert_weights* w, const float* x, double* out, uint32_t num_cols,
                     uint32_t num_rows) {
    for (uint32_t r = 0; r < num_rows; r++) {
        out[r] = expert_row_dot(w, x, num_cols, r);
    }
}

void gptoss_ref_f32_mf4w_moe_matmul_swiglu(const struct gptoss_f32_mf4w_moe_matmul_swiglu_args* args, double* output) {
    for (uint32_t j = 0; j < args->num_active_experts; j++) {
        for (uint32_t t = 0; t < args->num_tokens; t++) {
            const uint32_t e = args->expert_ids[(size_t) t * args->num_active_experts + j];
            const struct expert_weights w =
                expert_at(args->weight_blocks, args->weight_scales, args->bias, args->expert_stride, e);
            const float* x = args->input + (size_t) t * args->num_cols;
            double* out = output + ((size_t) j * args->num_tokens + t) * args->num_rows; /* [k][T][rows] */
            up_swiglu_row(&w, x, out, args->num_cols, args->num_rows, args->swiglu_limit);
        }
    }
}

void gptoss_ref_f32_mf4w_moe_matmul(const struct gptoss_f32_mf4w_moe_matmul_args* args, double* output) {
    for (uint32_t j = 0; j < args->num_active_experts; j++) {
        for (uint32_t t = 0; t < args->num_tokens; t++) {
            const uint32_t e = args->expert_ids[(size_t) t * args->num_active_experts + j];
            const struct expert_weights w =
                expert_at(args->weight_blocks, args->weight_scales, args->bias, args->expert_stride, e);
            const float* x = args->input + ((size_t) j * args->num_tokens + t) * args->num_cols; /* [k][T][cols] */
            double* out = output + ((size_t) j * args->num_tokens + t) * args->num_rows;         /* [k][T][rows] */
            down_row(&w, x, out, args->num_cols, args->num_rows);
        }
    }
}

void gptoss_ref_f32_mf4w_moe_dense_matmul_swiglu(const struct gptoss_f32_mf4w_moe_dense_matmul_swiglu_args* args,
                                                 double* output) {
    for (uint32_t e = 0; e < args->num_experts; e++) {
        const struct expert_weights w =
            expert_at(args->weight_blocks, args->weight_scales, args->bias, args->expert_stride, e);
        for (uint32_t p = args->expert_offsets[e]; p < args->expert_offsets[e + 1]; p++) {
            up_swiglu_row(&w, args->input + (size_t) p * args->num_cols, output + (size_t) p * args->num_rows,
                          args->num_cols, args->num_rows, args->swiglu_limit);
        }
    }
}

void gptoss_ref_f32_mf4w_moe_dense_matmul(const struct gptoss_f32_mf4w_moe_dense_matmul_args* args, double* output) {
    for (uint32_t e = 0; e < args->num_experts; e++) {
        const struct expert_weights w =
            expert_at(args->weight_blocks, args->weight_scales, args->bias, args->expert_stride, e);
        for (uint32_t p = args->expert_offsets[e]; p < args->expert_offsets[e + 1]; p++) {
            down_row(&w, args->input + (size_t) p * args->num_cols, output + (size_t) p * args->num_rows,
                     args->num_cols, args->num_rows);
        }
    }
}
