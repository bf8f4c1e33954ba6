/* Argument checks of the MXFP4 mixture-of-experts matrix products (decode and
 * expert-grouped prefill, each with and without SwiGLU); src/kernels/run.c runs them before
 * the backend entry. */
#include "kernels/check.h"

/* Which layout the kernel uses. */
enum moe_layout {
    moe_decode_up,     /* input f32[T][C], output f32[k][T][R], routed by expert_ids */
    moe_decode_down,   /* input f32[k][T][C], output f32[k][T][R], routed by expert_ids */
    moe_dense,         /* input f32[P][C], output f32[P][R], routed by expert_offsets */
};

static enum gptoss_status check_moe(gptoss_backend_t backend, enum moe_layout layout, const float* input,
                                    const uint32_t* routing, const uint8_t* weight_blocks,
                                    const uint8_t* weight_scales, const gptoss_bf16* bias, size_t expert_stride,
                                    const float* output, uint32_t num_tokens, uint32_t num_active_experts,
                                    uint32_t num_experts, uint32_t num_cols, uint32_t num_rows, bool swiglu,
                                    float swiglu_limit) {
    const bool dense = layout == moe_dense;
    const char* routing_name = dense ? "expert_offsets" : "expert_ids";
    GPTOSS_TRY(gptoss_check_pointer(input, "input", 4));
    GPTOSS_TRY(gptoss_check_pointer(routing, routing_name, 4));
    GPTOSS_TRY(gptoss_check_pointer(weight_blocks, "weight_blocks", 1));
    GPTOSS_TRY(gptoss_check_pointer(weight_scales, "weight_scales", 1));
    GPTOSS_TRY(gptoss_check_pointer(bias, "bias", 2));
    GPTOSS_TRY(gptoss_check_pointer(output, "output", 4));
    uint64_t num_pairs = 0;
    GPTOSS_TRY(gptoss_check_routing(num_tokens, num_active_experts, num_experts, dense, &num_pairs));
    GPTOSS_TRY(gptoss_check_nonzero(num_cols, "num_cols"));
    GPTOSS_TRY(gptoss_check_multiple(num_cols, "num_cols", 32, "the MXFP4 block size"));
    GPTOSS_TRY(gptoss_check_nonzero(num_rows, "num_rows"));
    /* Rows of each expert's weight: 2 * num_rows for the SwiGLU up-projection. */
    const uint64_t weight_rows = swiglu ? 2 * (uint64_t) num_rows : num_rows;
    if (weight_rows > UINT32_MAX) {
        return gptoss_fail(GPTOSS_UNSUPPORTED, "2 x num_rows %u weight rows exceed UINT32_MAX", num_rows);
    }
    if (swiglu) GPTOSS_TRY(gptoss_check_finite_positive(swiglu_limit, "swiglu_limit"));
    if (num_experts > 1 && expert_stride % 2 != 0) {
        return gptoss_fail(GPTOSS_INVALID, "expert_stride %zu is odd: the bf16 bias of expert 1 is not 2-byte aligned",
                           expert_stride);
    }
    /* Extent of each weight array over all experts: (num_experts - 1) * expert_stride +
     * per-expert bytes; must be addressable. */
    const uint64_t block_bytes = weight_rows * (num_cols / 2); /* < 2^64 */
    const uint64_t scale_bytes = weight_rows * (num_cols / 32), bias_bytes = weight_rows * 2;
    uint64_t experts_span = 0;
    if (!gptoss_mul_u64((uint64_t) num_experts - 1, (uint64_t) expert_stride, &experts_span) ||
        experts_span > (uint64_t) SIZE_MAX - block_bytes || block_bytes > (uint64_t) SIZE_MAX) {
        return gptoss_fail(GPTOSS_INVALID, "weight size (num_experts %u - 1) x expert_stride %zu + %llu bytes overflows size_t",
                           num_experts, expert_stride, (unsigned long long) block_bytes);
    }
    const uint64_t blocks_extent = experts_span + block_bytes;
    const uint64_t scales_extent = experts_span + scale_bytes, bias_extent = experts_span + bias_bytes;

    uint64_t input_elements = 0, output_elements = 0;
    if (layout == moe_decode_up) {
        GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &input_elements, num_tokens, num_cols));
    } else {
        GPTOSS_TRY(GPTOSS_SIZE2("input", 4, &input_elements, num_pairs, num_cols));
    }
    GPTOSS_TRY(GPTOSS_SIZE2("output", 4, &output_elements, num_pairs, num_rows));
    const uint64_t output_bytes = output_elements * 4;
    const uint64_t routing_bytes = dense ? ((uint64_t) num_experts + 1) * 4 : num_pairs * 4;
    GPTOSS_TRY(gptoss_check_disjoint(output, output_bytes, "output", input, input_elements * 4, "input"));
    GPTOSS_TRY(gptoss_check_disjoint(output, output_bytes, "output", routing, routing_bytes, routing_name));
    GPTOSS_TRY(gptoss_check_disjoint(output, output_bytes, "output", weight_blocks, blocks_extent, "weight_blocks"));
    GPTOSS_TRY(gptoss_check_disjoint(output, output_bytes, "output", weight_scales, scales_extent, "weight_scales"));
    GPTOSS_TRY(gptoss_check_disjoint(output, output_bytes, "output", bias, bias_extent, "bias"));

    if (backend->host_memory) {
        if (dense) {
            GPTOSS_TRY(gptoss_check_expert_offsets(routing, num_experts, num_pairs,
                                                   "num_tokens x num_active_experts ="));
        } else {
            GPTOSS_TRY(gptoss_check_ids_below(routing, num_pairs, "expert_ids", num_experts, "num_experts"));
        }
    }
    return gptoss_status_success;
}

enum gptoss_status gptoss_check_f32_mf4w_moe_matmul_swiglu(gptoss_backend_t backend,
                                                           const struct gptoss_f32_mf4w_moe_matmul_swiglu_args* args) {
    return check_moe(backend, moe_decode_up, args->input, args->expert_ids, args->weight_blocks, args->weight_scales,
                     args->bias, args->expert_stride, args->output, args->num_tokens, args->num_active_experts,
                     args->num_experts, args->num_cols, args->num_rows, true, args->swiglu_limit);
}

enum gptoss_status gptoss_check_f32_mf4w_moe_matmul(gptoss_backend_t backend,
                                                    const struct gptoss_f32_mf4w_moe_matmul_args* args) {
    return check_moe(backend, moe_decode_down, args->input, args->expert_ids, args->weight_blocks, args->weight_scales,
                     args->bias, args->expert_stride, args->output, args->num_tokens, args->num_active_experts,
                     args->num_experts, args->num_cols, args->num_rows, false, 0.0f);
}

enum gptoss_status gptoss_check_f32_mf4w_moe_dense_matmul_swiglu(
    gptoss_backend_t backend, const struct gptoss_f32_mf4w_moe_dense_matmul_swiglu_args* args) {
    return check_moe(backend, moe_dense, args->input, args->expert_offsets, args->weight_blocks, args->weight_scales,
                     args->bias, args->expert_stride, args->output, args->num_tokens, args->num_active_experts,
                     args->num_experts, args->num_cols, args->num_rows, true, args->swiglu_limit);
}

enum gptoss_status gptoss_check_f32_mf4w_moe_dense_matmul(gptoss_backend_t backend,
                                                          const struct gptoss_f32_mf4w_moe_dense_matmul_args* args) {
    return check_moe(backend, moe_dense, args->input, args->expert_offsets, args->weight_blocks, args->weight_scales,
                     args->bias, args->expert_stride, args->output, args->num_tokens, args->num_active_experts,
                     args->num_experts, args->num_cols, args->num_rows, false, 0.0f);
}
