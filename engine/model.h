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

    /* weights allocated with gptoss_backend_alloc (CUDA upload, random models): freed
     * with gptoss_backend_free on release */
    int weights_owned;
    /* random-weight model (gptoss_model_create_random): preset name, seed */
    int is_random;
    char random_preset[16];
    uint64_t random_seed;

    /* mapping bookkeeping (reader-private) */
    void* mapping;
    size_t mapping_size;
    int fd;
};

/* ---- file format helpers (engine/model.c; shared with the tokenizer and the writer) ---- */

#define GPTOSS_FILE_ALIGNMENT 16384u     /* the writer's alignment (MODEL_FORMAT.md 6.4) */
#define GPTOSS_FILE_HEADER_SIZE 148u     /* file header .. tokenizer header inclusive */
#define GPTOSS_TENSOR_ALIGNMENT 16u      /* every tensor starts 16-byte aligned */

extern const uint8_t gptoss_file_magic[12];
extern const uint8_t gptoss_model_uuid[16];
extern const uint8_t gptoss_layout_uuid[16];
extern const uint8_t gptoss_tokenizer_uuid[16];
/* UUID of each special-token enum value (index = enum; [0] unused). */
extern const uint8_t gptoss_special_token_uuids[gptoss_special_token_max][16];

/* Header (offsets 0..148) after validation, and the layout derived from it. All offsets
 * are absolute file offsets unless stated; everything fits in 64 bits (checked). */
struct gptoss_file_info {
    struct gptoss_model_config config;
    uint32_t num_special_tokens, num_text_tokens, regex_size, tokens_size;
    uint64_t special_uuids_offset;     /* 148 */
    uint64_t regex_offset;             /* 148 + 16*S */
    uint64_t tokens_offset;            /* regex_offset + regex_size */
    uint64_t tokenizer_end;            /* tokens_offset + tokens_size */
    uint64_t weights_offset;           /* W0 = round_up(tokenizer_end, 16384) */
    /* relative to W0: */
    uint64_t embedding, final_norm, unembedding, shared_size, per_block;
    struct gptoss_layer_offsets layer0; /* block 0's fields (moe = W0-relative start of layer 0's MoE) */
    uint64_t moe_size;                  /* MOE = round_up(E*PER_EXPERT, 16384) */
    struct gptoss_expert_layout expert;
    uint64_t weights_size;              /* SHARED + (L-1)*MOE + E*PER_EXPERT */
    uint64_t file_size;                 /* W0 + weights_size: the size the layout needs */
    /* tensor sizes (bytes, unpadded) */
    uint64_t embedding_bytes, norm_bytes, qkv_weight_bytes, qkv_bias_bytes, sinks_bytes, out_weight_bytes,
        out_bias_bytes, gate_weight_bytes, gate_bias_bytes;
    uint64_t mlp1_blocks_bytes, mlp1_scales_bytes, mlp1_bias_bytes, mlp2_blocks_bytes, mlp2_scales_bytes,
        mlp2_bias_bytes;
};

/* Checks that the engine can run a model of this shape, once for every path (the reader,
 * the writer, make-model, inspect, random models): every field in its range, embedding_dim
 * and mlp_dim multiples of 32 (MXFP4 blocks), head_dim a multiple of 4 (f32_sdpa; RoPE needs
 * it even), num_heads a multiple of num_kv_heads, 1 <= num_active_experts <= num_experts,
 * attention_window >= 1, the float fields finite and in range. invalid_argument with a
 * message naming the field and its value. */
enum gptoss_status gptoss_model_config_validate(const struct gptoss_model_config* config);

/* Validates the first 148 bytes (magic, zero word, UUIDs, every header field) and computes
 * the layout. invalid_argument with a message naming the field on bad content. */
enum gptoss_status gptoss_file_parse_header(const uint8_t header[GPTOSS_FILE_HEADER_SIZE],
                                            struct gptoss_file_info* info_out);
/* The reader's first step, also used by `gptoss inspect`: opens `path` (a regular file),
 * reads and validates its header. *size_out: the file's size. io_error or
 * invalid_argument with a message naming the path and the cause. */
enum gptoss_status gptoss_file_read_header(const char* path, uint64_t* size_out, struct gptoss_file_info* info_out);
/* Computes the layout of info->config + tokenizer sizes (fills everything after the
 * tokenizer header fields); used by the parser and by the writer. */
enum gptoss_status gptoss_file_compute_layout(struct gptoss_file_info* info);

/* Fills m->layers (allocated), embedding/final_norm/unembedding, expert and weights_size
 * from a computed layout; insufficient_memory if the layer table cannot be allocated. */
enum gptoss_status gptoss_model_set_layout(struct gptoss_model* m, const struct gptoss_file_info* info);

/* Builds a tokenizer from the tokenizer section bytes [148, tokenizer_end) of a file
 * (special UUID table, regex, text-token table); the bytes are copied. */
enum gptoss_status gptoss_tokenizer_create_from_section(const struct gptoss_file_info* info,
                                                        const uint8_t* section, size_t section_size,
                                                        gptoss_tokenizer_t* tokenizer_out);

/* Little-endian helpers. */
static inline uint32_t gptoss_load_u32le(const uint8_t* p) {
    return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}
static inline void gptoss_store_u32le(uint8_t* p, uint32_t v) {
    p[0] = (uint8_t) v; p[1] = (uint8_t) (v >> 8); p[2] = (uint8_t) (v >> 16); p[3] = (uint8_t) (v >> 24);
}

#endif
