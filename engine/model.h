/* Internal: the loaded model (engine/model.c) as the forward pass (engine/context.c) and
 * the tokenizer see it. All offsets were checked against the weights' size. */
#ifndef GPTOSS_ENGINE_MODEL_H
#define GPTOSS_ENGINE_MODEL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <gptoss/engine.h>

#include "format.h"

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

    /* weights allocated with gptoss_backend_alloc (CUDA upload, models made in memory):
     * freed with gptoss_backend_free on release */
    int weights_owned;

    /* mapping bookkeeping (reader-private) */
    void* mapping;
    size_t mapping_size;
    int fd;
};

/* Builds a tokenizer from the tokenizer section bytes [148, tokenizer_end) of a file
 * (special UUID table, regex, text-token table); the bytes are copied. */
enum gptoss_status gptoss_tokenizer_create_from_section(const struct gptoss_file_info* info,
                                                        const uint8_t* section, size_t section_size,
                                                        gptoss_tokenizer_t* tokenizer_out);

#endif
