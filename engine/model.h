/* Internal: the parsed model file (engine/model.c) as the forward pass (engine/context.c)
 * sees it. All offsets were checked against the file size by the reader. */
#ifndef GPTOSS_ENGINE_MODEL_H
#define GPTOSS_ENGINE_MODEL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <gptoss/engine.h>

struct gptoss_model_config {
    uint32_t context_length;
    uint32_t num_blocks;
    uint32_t num_experts;
    uint32_t num_active_experts;
    uint32_t embedding_dim;   /* H */
    uint32_t mlp_dim;         /* I */
    float swiglu_limit;
    uint32_t head_dim;        /* D */
    uint32_t num_heads;       /* Hq */
    uint32_t num_kv_heads;    /* Hkv */
    uint32_t attention_window;
    float rope_theta;
    float interpolation_scale;
    float yarn_offset;
    float yarn_scale;
    float yarn_multiplier;
    float rmsnorm_epsilon;
};

/* Byte offsets of one layer's tensors, relative to the start of the weights as they live
 * on the backend (model->weights). */
struct gptoss_layer_offsets {
    size_t attn_norm, qkv_weight, qkv_bias, sinks, out_weight, out_bias, mlp_norm, gate_weight, gate_bias;
    size_t moe;            /* start of this layer's MoE region (expert 0's mlp1 blocks) */
};

/* Inside one expert (relative to its start); the expert stride is per_expert. */
struct gptoss_expert_layout {
    size_t mlp1_blocks, mlp1_scales, mlp1_bias, mlp2_blocks, mlp2_scales, mlp2_bias, per_expert;
};

struct gptoss_model {
    atomic_uint_least64_t ref_count;
    struct gptoss_model_config config;
    uint32_t vocabulary_size;             /* num_text + num_special */
    gptoss_tokenizer_t tokenizer;
    gptoss_backend_t backend;             /* borrowed: must outlive the model */

    /* Weights region [W0, EOF) of the file: on CPU a pointer into the read-only mapping,
     * on CUDA a device allocation holding the same bytes. */
    const uint8_t* weights;
    size_t weights_size;
    size_t embedding, final_norm, unembedding; /* offsets relative to weights */
    struct gptoss_layer_offsets* layers;       /* [num_blocks] */
    struct gptoss_expert_layout expert;

    /* mapping bookkeeping (reader-private) */
    void* mapping;
    size_t mapping_size;
    int fd;
};

#endif
