/* Internal: writing model files ("GPT-OSS v1.0", MODEL_FORMAT.md 10), bit-compatible with
 * upstream's converter. Used by `gptoss convert` and `gptoss make-model`. */
#ifndef GPTOSS_ENGINE_WRITER_H
#define GPTOSS_ENGINE_WRITER_H

#include <stdint.h>
#include <stdio.h>

#include "model.h"
#include "outfile.h"

/* The o200k_base pre-tokenisation pattern (274 characters), MODEL_FORMAT.md 4.3. */
extern const char gptoss_o200k_regex[];

/* A text-token vocabulary: token t has bytes[offsets[t] .. offsets[t+1]). */
struct gptoss_vocab {
    uint32_t num_tokens;
    uint8_t* bytes;
    uint32_t* offsets; /* [num_tokens + 1] */
};

/* Where the o200k_base vocabulary is looked for when no path is given: $GPTOSS_VOCAB,
 * then the repository's data/o200k_base.tiktoken (path fixed at build time), then
 * ../data/o200k_base.tiktoken and ../share/gptoss/o200k_base.tiktoken next to the
 * executable. Returns the first that exists, or the build-time path. */
const char* gptoss_default_vocab_path(void);

/* Loads a tiktoken file ("<base64> <rank>" per line, ranks 0, 1, 2, ... in order). */
enum gptoss_status gptoss_vocab_load_tiktoken(const char* path, struct gptoss_vocab* vocab_out);
void gptoss_vocab_free(struct gptoss_vocab* vocab);

struct gptoss_writer {
    struct gptoss_outfile out;     /* the temporary file; out.path is the model file's path */
    uint64_t offset;               /* bytes written so far */
    struct gptoss_file_info info;  /* the layout being written */
};

/* Starts writing a model file to `path` (atomically: outfile.h; an existing `path` is an
 * error unless `replace`) and writes everything up to W0: file header, model header (from
 * config), tokenizer (16 special slots, MODEL_FORMAT.md 4.2 with slot 10 = <|message|>;
 * regex; vocab), zero padding. The config is validated exactly as the reader would, before
 * anything is created. */
enum gptoss_status gptoss_writer_open(struct gptoss_writer* w, const char* path,
                                      const struct gptoss_model_config* config, const struct gptoss_vocab* vocab,
                                      int replace);
/* Pads with zeros to a 16-byte boundary and checks that the position is W0 + rel_offset
 * (the reader's layout); `what` names the tensor in the error. */
enum gptoss_status gptoss_writer_begin_tensor(struct gptoss_writer* w, uint64_t rel_offset, const char* what);
enum gptoss_status gptoss_writer_write(struct gptoss_writer* w, const void* data, size_t size);
enum gptoss_status gptoss_writer_write_zeros(struct gptoss_writer* w, uint64_t size);
/* Checks the final size equals the layout's, then commits: the file appears at `path`. */
enum gptoss_status gptoss_writer_close(struct gptoss_writer* w);
/* Drops the partly written file (after a failure); `path` is untouched. */
void gptoss_writer_abort(struct gptoss_writer* w);

/* Builds the 148-byte header for config + tokenizer sizes (used by open and by tests). */
void gptoss_writer_build_header(uint8_t header[GPTOSS_FILE_HEADER_SIZE], const struct gptoss_model_config* config,
                                uint32_t num_special_tokens, uint32_t num_text_tokens, uint32_t regex_size,
                                uint32_t tokens_size);

/* Header fields derived as upstream's converter does (MODEL_FORMAT.md 3): context_length =
 * int(initial_context_length * factor), interpolation_scale = 1/factor, YaRN offset/scale
 * from the NTK alpha/beta, multiplier 0.1*ln(factor)+1 (double precision, then f32). */
void gptoss_writer_set_rope(struct gptoss_model_config* c, double initial_context_length, double rope_scaling_factor,
                            double rope_theta, double ntk_alpha, double ntk_beta);

/* ---- random-model presets (shared by `gptoss make-model` and gptoss_model_create_random) ----
 * "tiny": 4 layers, 8 experts (4 active), hidden 64, mlp 128, 8 Q / 2 KV heads of dim 16,
 * window 16, context 4096; "20b": 24 layers, 32 experts; "120b": 36 layers, 128 experts
 * (both: 4 active, hidden/mlp 2880, 64 Q / 8 KV heads of dim 64, window 128, context
 * 131072). Fills every field of *c (RoPE/YaRN as gptoss_model_preset_set_rope) and returns
 * 0, or -1 (c untouched) for an unknown name. */
int gptoss_model_preset(const char* name, struct gptoss_model_config* c);
/* RoPE/YaRN fields as the released models (initial context 4096, factor 32, theta 150000;
 * offset/scale depend on c->head_dim, so call again after overriding it); the "tiny"
 * preset keeps context_length 4096. */
void gptoss_model_preset_set_rope(const char* name, struct gptoss_model_config* c);

/* Tokenizer section [148, tokenizer_end) of a model file for `vocab`: 16 special slots
 * (MODEL_FORMAT.md 4.2, slot 10 = <|message|>), the o200k regex, the length-prefixed
 * text tokens. *section_out is malloc'ed (the caller frees it); sizes for the header
 * (num_special_tokens is 16). */
enum gptoss_status gptoss_tokenizer_section_build(const struct gptoss_vocab* vocab, uint8_t** section_out,
                                                  size_t* section_size_out, uint32_t* regex_size_out,
                                                  uint32_t* tokens_size_out);

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
    gptoss_tensor_mlp1_scales, /* written +14 biased */
    gptoss_tensor_mlp1_bias,
    gptoss_tensor_mlp2_blocks,
    gptoss_tensor_mlp2_scales, /* written +14 biased */
    gptoss_tensor_mlp2_bias,
};
const char* gptoss_tensor_kind_name(enum gptoss_tensor_kind kind);

/* Writes exactly `size` bytes of tensor `kind` (of `layer`, `expert` where they apply)
 * with gptoss_writer_write. */
typedef enum gptoss_status (*gptoss_tensor_source_fn)(void* source, struct gptoss_writer* w,
                                                      enum gptoss_tensor_kind kind, uint32_t layer, uint32_t expert,
                                                      uint64_t size);

/* Writes every weight after gptoss_writer_open, in MODEL_FORMAT.md 10 order, each at the
 * reader's offset (checked), with a progress line on stderr if `progress`; then closes.
 * On failure the partial file is dropped and `path` is untouched. */
enum gptoss_status gptoss_writer_write_weights(struct gptoss_writer* w, gptoss_tensor_source_fn fn, void* source,
                                               int progress);

/* bf16 helpers (round to nearest even; NaN kept quiet). */
static inline uint16_t gptoss_f32_to_bf16_bits(float f) {
    uint32_t u;
    __builtin_memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t) ((u >> 16) | 0x40);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t) (u >> 16);
}
static inline float gptoss_bf16_bits_to_f32(uint16_t b) {
    uint32_t u = (uint32_t) b << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
}

#endif
