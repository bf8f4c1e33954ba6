/* The offline library's interface for the CLI and the tests: the o200k vocabulary, the
 * random-model presets, and writing model files (`gptoss make-model`, `gptoss convert`).
 * Random models in memory are public API (<gptoss/offline.h>). Files are written
 * atomically (offline/outfile.h): OUT appears only when complete. */
#ifndef GPTOSS_OFFLINE_FILES_H
#define GPTOSS_OFFLINE_FILES_H

#include <stddef.h>
#include <stdint.h>

#include <gptoss/offline.h>

#include "format.h"

/* A text-token vocabulary: token t has bytes[offsets[t] .. offsets[t+1]). */
struct gptoss_vocab {
    uint32_t num_tokens;
    uint8_t* bytes;
    uint32_t* offsets; /* [num_tokens + 1] */
};

/* Where the o200k_base vocabulary is found when no path is given: the repository's
 * data/o200k_base.tiktoken (path fixed at build time), then ../data/o200k_base.tiktoken,
 * ../share/gptoss/o200k_base.tiktoken and data/o200k_base.tiktoken next to the
 * executable, then data/o200k_base.tiktoken in the working directory. Returns the first
 * that exists, or the build-time path. (The CLI puts --vocab and $GPTOSS_VOCAB first.) */
const char* gptoss_default_vocab_path(void);
/* Loads a tiktoken file ("<base64> <rank>" per line, ranks 0, 1, 2, ... in order). */
enum gptoss_status gptoss_vocab_load_tiktoken(const char* path, struct gptoss_vocab* vocab_out);
void gptoss_vocab_free(struct gptoss_vocab* vocab);

/* ---- random-model presets ---------------------------------------------------------- *
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

/* ---- model files --------------------------------------------------------------------- */

enum {
    GPTOSS_WRITE_REPLACE = 1u << 0,  /* replace an existing OUT (else it is an error) */
    GPTOSS_WRITE_PROGRESS = 1u << 1, /* a progress line on stderr */
};

/* Writes a model file of `config` with the random weights of seed (offline/random.c: the
 * weights gptoss_model_create_random makes in memory for the same shape and seed) and the
 * real o200k_harmony tokenizer from `vocab`. flags: GPTOSS_WRITE_*. */
enum gptoss_status gptoss_write_random_model(const char* path, const struct gptoss_model_config* config,
                                             uint64_t seed, const struct gptoss_vocab* vocab, uint32_t flags);

/* What a conversion noticed that the CLI reports. */
struct gptoss_convert_notes {
    uint32_t experts_per_token;   /* from config.json; the file says 4, as upstream's converter */
    uint64_t overflowing_scales;  /* MXFP4 scale bytes >= 241, wrapped by the +14 bias as upstream */
};
/* Converts an original checkpoint (config.json + *.safetensors in `dir`) into a model file
 * at `path`, bit-compatible with upstream's create-local-model.py (docs/MODEL_FORMAT.md):
 * every tensor's dtype and shape is checked before the output is created. flags:
 * GPTOSS_WRITE_*. notes_out (may be NULL) is filled on success. */
enum gptoss_status gptoss_convert_checkpoint(const char* dir, const char* path, const char* vocab_path,
                                             uint32_t flags, struct gptoss_convert_notes* notes_out);
/* Parses config.json text into a model config as the converter does (shape keys required;
 * RoPE keys default to torch/model.py's ModelConfig values). invalid_argument with a
 * message naming the key (the caller adds the file's path). */
enum gptoss_status gptoss_convert_parse_config(const char* text, size_t size, struct gptoss_model_config* config,
                                               uint32_t* vocab_size_out, uint32_t* experts_per_token_out);

#endif
