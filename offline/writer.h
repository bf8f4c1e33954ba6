/* Internal (offline library): writing model files ("GPT-OSS v1.0", docs/MODEL_FORMAT.md),
 * bit-compatible with upstream's converter; the layout is the format module's
 * (engine/format.h). Used by the converter and the random-model writer. */
#ifndef GPTOSS_OFFLINE_WRITER_H
#define GPTOSS_OFFLINE_WRITER_H

#include <stdint.h>
#include <stdio.h>

#include "files.h"
#include "format.h"
#include "outfile.h"

/* The o200k_base pre-tokenisation pattern (274 characters), MODEL_FORMAT.md 4.3. */
extern const char gptoss_o200k_regex[];

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
enum gptoss_status gptoss_writer_write(struct gptoss_writer* w, const void* data, size_t size);
/* Drops the partly written file (after a failure); `path` is untouched. */
void gptoss_writer_abort(struct gptoss_writer* w);

/* Writes exactly t->size bytes of tensor t with gptoss_writer_write. */
typedef enum gptoss_status (*gptoss_tensor_source_fn)(void* source, struct gptoss_writer* w,
                                                      const struct gptoss_tensor_ref* t);
/* Writes every weight after gptoss_writer_open in file order (gptoss_file_for_each_tensor),
 * each at the layout's offset (checked), with a progress line on stderr if `progress`;
 * then checks the size and commits: the file appears at `path`. On failure the partial
 * file is dropped and `path` is untouched. */
enum gptoss_status gptoss_writer_write_weights(struct gptoss_writer* w, gptoss_tensor_source_fn fn, void* source,
                                               int progress);

/* Header fields derived as upstream's converter does (MODEL_FORMAT.md 3): context_length =
 * int(initial_context_length * factor), interpolation_scale = 1/factor, YaRN offset/scale
 * from the NTK alpha/beta, multiplier 0.1*ln(factor)+1 (double precision, then f32). */
void gptoss_writer_set_rope(struct gptoss_model_config* c, double initial_context_length, double rope_scaling_factor,
                            double rope_theta, double ntk_alpha, double ntk_beta);

/* Tokenizer section [148, tokenizer_end) of a model file for `vocab`: 16 special slots
 * (MODEL_FORMAT.md 4.2, slot 10 = <|message|>), the o200k regex, the length-prefixed
 * text tokens. *section_out is malloc'ed (the caller frees it); sizes for the header
 * (num_special_tokens is 16). */
enum gptoss_status gptoss_tokenizer_section_build(const struct gptoss_vocab* vocab, uint8_t** section_out,
                                                  size_t* section_size_out, uint32_t* regex_size_out,
                                                  uint32_t* tokens_size_out);

/* bf16 bits (round to nearest even; NaN kept quiet), through the kernel library's helpers. */
static inline uint16_t gptoss_f32_to_bf16_bits(float f) { return gptoss_bf16_from_f32(f).bits; }
static inline float gptoss_bf16_bits_to_f32(uint16_t b) { return gptoss_bf16_to_float((gptoss_bf16){b}); }

#endif
