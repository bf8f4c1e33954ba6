/* The model file format ("GPT-OSS v1.0", docs/MODEL_FORMAT.md), once, for every part that
 * reads or writes it: header layout and validation, the shapes the engine can run, the
 * tensor layout (order, offsets, alignment). The engine's one header shared with other
 * layers: the reader (engine/model.c), the offline library (writer, converter, random
 * models) and `gptoss inspect` use it; every other engine header is private. */
#ifndef GPTOSS_ENGINE_FORMAT_H
#define GPTOSS_ENGINE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include <gptoss/engine.h>

#define GPTOSS_FILE_ALIGNMENT 16384u     /* the weights and each MoE layer start 16384-aligned */
#define GPTOSS_FILE_HEADER_SIZE 148u     /* file header .. tokenizer header inclusive */
#define GPTOSS_TENSOR_ALIGNMENT 16u      /* every tensor starts 16-byte aligned */

extern const uint8_t gptoss_file_magic[12];
extern const uint8_t gptoss_model_uuid[16];
extern const uint8_t gptoss_layout_uuid[16];
extern const uint8_t gptoss_tokenizer_uuid[16];
/* UUID of each special-token enum value (index = enum; [0] unused). */
extern const uint8_t gptoss_special_token_uuids[gptoss_special_token_max][16];

/* The model header fields (offsets 32..100). */
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

/* Byte offsets of one layer's tensors, relative to the start of the weights W0 (on a
 * backend: relative to the model's weights). */
struct gptoss_layer_offsets {
    size_t attn_norm, qkv_weight, qkv_bias, sinks, out_weight, out_bias, mlp_norm, gate_weight, gate_bias;
    size_t moe;            /* start of this layer's MoE region (expert 0's mlp1 blocks) */
};

/* Inside one expert (relative to its start); the expert stride is per_expert. */
struct gptoss_expert_layout {
    size_t mlp1_blocks, mlp1_scales, mlp1_bias, mlp2_blocks, mlp2_scales, mlp2_bias, per_expert;
};

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
/* The inverse: the 148-byte header for config + tokenizer sizes. */
void gptoss_file_build_header(uint8_t header[GPTOSS_FILE_HEADER_SIZE], const struct gptoss_model_config* config,
                              uint32_t num_special_tokens, uint32_t num_text_tokens, uint32_t regex_size,
                              uint32_t tokens_size);
/* Computes the layout of info->config + tokenizer sizes (fills everything after the
 * tokenizer header fields); used by the parser. invalid_argument when a size overflows. */
enum gptoss_status gptoss_file_compute_layout(struct gptoss_file_info* info);
/* The reader's first step (engine/model.c), also used by `gptoss inspect`: opens `path` (a
 * regular file), reads and validates its header. *size_out: the file's size. io_error or
 * invalid_argument with a message naming the path and the cause. */
enum gptoss_status gptoss_file_read_header(const char* path, uint64_t* size_out, struct gptoss_file_info* info_out);

/* ---- tensors ------------------------------------------------------------------------ */

/* The tensors of a model file, in the order they are written. */
enum gptoss_tensor_kind {
    gptoss_tensor_embedding,
    gptoss_tensor_attn_norm,
    gptoss_tensor_qkv_weight,
    gptoss_tensor_qkv_bias,
    gptoss_tensor_sinks,
    gptoss_tensor_out_weight,
    gptoss_tensor_out_bias,
    gptoss_tensor_mlp_norm,
    gptoss_tensor_gate_weight,
    gptoss_tensor_gate_bias,
    gptoss_tensor_final_norm,
    gptoss_tensor_unembedding,
    gptoss_tensor_mlp1_blocks,
    gptoss_tensor_mlp1_scales, /* stored +14 biased */
    gptoss_tensor_mlp1_bias,
    gptoss_tensor_mlp2_blocks,
    gptoss_tensor_mlp2_scales, /* stored +14 biased */
    gptoss_tensor_mlp2_bias,
};
/* "attn.qkv.weight", ... (the checkpoint's names after "block.N."; "?" for other values). */
const char* gptoss_tensor_kind_name(enum gptoss_tensor_kind kind);

/* One tensor of a layout: layer 0 and expert 0 where the tensor has none. */
struct gptoss_tensor_ref {
    enum gptoss_tensor_kind kind;
    uint32_t layer, expert;
    uint64_t offset; /* relative to W0; a multiple of 16 */
    uint64_t size;   /* bytes */
};
/* Calls fn for every tensor of the layout in file order (embedding; per layer its 9 shared
 * tensors; final norm; unembedding; per layer and expert its 6 MoE tensors); stops at and
 * returns the first status that is not success. */
enum gptoss_status gptoss_file_for_each_tensor(const struct gptoss_file_info* info,
                                               enum gptoss_status (*fn)(void* arg, const struct gptoss_tensor_ref* t),
                                               void* arg);

/* ---- models built by other layers ---------------------------------------------------- */

/* For models made in memory by the offline library (gptoss_model_create_random): a model
 * of layout `info` (from gptoss_file_parse_header), with the tokenizer of `section` (the
 * bytes [148, tokenizer_end) of the equivalent file; copied) and info->weights_size bytes
 * of weights allocated, uninitialised, on `backend` (borrowed: it must outlive the model).
 * *weights_out: the weights (backend memory), which the caller fills before the model is
 * used. `what` names the model in messages. */
enum gptoss_status gptoss_model_create_with_layout(const struct gptoss_file_info* info, const uint8_t* section,
                                                   size_t section_size, gptoss_backend_t backend, const char* what,
                                                   gptoss_model_t* model_out, uint8_t** weights_out);

/* Little-endian helpers. */
static inline uint32_t gptoss_load_u32le(const uint8_t* p) {
    return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}
static inline void gptoss_store_u32le(uint8_t* p, uint32_t v) {
    p[0] = (uint8_t) v; p[1] = (uint8_t) (v >> 8); p[2] = (uint8_t) (v >> 16); p[3] = (uint8_t) (v >> 24);
}

#endif
